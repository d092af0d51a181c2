//! TSIG (RFC 8945) against real implementations over loopback: NSD as a
//! primary answering signed SOA queries over UDP and a signed AXFR over
//! TCP that spans many messages, checked with `ResponseVerifier`; and
//! BIND's dig as a client, whose signed queries `verify_request` checks
//! and whose verdict on the signed (or refused) replies is read from its
//! output. Both tools, Debian's `nsd` and `dnsutils`, must be installed:
//! a missing one fails the test.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::tools::{Output, run_bounded};
use common::{Process, QueryOptions, REPLY_TIMEOUT};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use steer::transfer::tsig::{
    BADKEY, BADSIG, BADTIME, MessageCheck, RequestCheck, ResponseVerifier, TsigError, TsigKey,
    sign_request, sign_response, verify_request,
};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// The name of the key both ends share.
const KEY_NAME: &str = "transfer-key";
/// Its secret: 32 bytes, the length `tsig-keygen` makes for hmac-sha256.
const SECRET: &str = "8xR6ZPhz9rN6f0yS7pQmA1cJ2bV4kL3uW5eT9yH0gDs=";
/// Another secret under the same name: what a mistyped key is.
const WRONG_SECRET: &str = "b3RoZXIgc2VjcmV0LCBvdGhlciBzZWNyZXQsIG90aGVy";

/// The zone NSD serves: SOA, NS, an address, and this many TXT records
/// of 100 bytes, about 400 KB: an AXFR of many messages.
const ZONE: &str = "tsig.test.";
const TXT_RECORDS: usize = 3000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn key() -> TsigKey {
    TsigKey::new(KEY_NAME, "hmac-sha256", SECRET).expect("key")
}

fn wrong_key() -> TsigKey {
    TsigKey::new(KEY_NAME, "hmac-sha256", WRONG_SECRET).expect("key")
}

/// NSD serving [`ZONE`] with the key, AXFR allowed to loopback clients
/// that sign with it; stopped when dropped.
struct Nsd {
    address: SocketAddr,
    _process: Process,
    _directory: tempfile::TempDir,
}

/// Starts NSD on [`ZONE`] with the key (see [`common::differential::start_nsd_with`]).
async fn start_nsd() -> Nsd {
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::set_permissions(
        directory.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("permissions");
    let mut zone = format!(
        "$ORIGIN {ZONE}\n$TTL 300\n\
         @ IN SOA ns1 hostmaster 2024060101 3600 600 86400 60\n\
         @ IN NS ns1\nns1 IN A 192.0.2.53\n"
    );
    for index in 0..TXT_RECORDS {
        zone.push_str(&format!("t{index} IN TXT \"{index:0>99}\"\n"));
    }
    std::fs::write(directory.path().join("tsig.test.zone"), zone).expect("zone file");
    let (process, address) = common::differential::start_nsd_with(
        directory.path(),
        &[(ZONE.to_owned(), "tsig.test.zone".to_owned())],
        "",
        &format!("  provide-xfr: 127.0.0.1 {KEY_NAME}\n"),
        &format!("key:\n  name: {KEY_NAME}\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\n"),
    )
    .await;
    Nsd {
        address,
        _process: process,
        _directory: directory,
    }
}

/// An unsigned query for [`ZONE`] of `record_type`, without recursion.
fn query(record_type: RecordType) -> Vec<u8> {
    let options = QueryOptions {
        recursion_desired: false,
        ..QueryOptions::default()
    };
    common::build_query(ZONE, record_type, &options)
        .to_vec()
        .expect("query encodes")
}

fn soa_query() -> Vec<u8> {
    query(RecordType::SOA)
}

/// `reply` without its TSIG (per `check`), parsed.
fn parse(mut reply: Vec<u8>, check: MessageCheck) -> Message {
    check.strip(&mut reply);
    Message::from_vec(&reply).expect("the reply parses without its TSIG")
}

/// Asks NSD for the SOA over UDP, signed with `signer`, and verifies the
/// reply with `key`: the verdict and the raw reply.
async fn signed_soa(
    nsd: &Nsd,
    signer: &TsigKey,
    key: &TsigKey,
) -> (Result<(), TsigError>, Vec<u8>) {
    let mut packet = soa_query();
    let request_mac = sign_request(signer, &mut packet, now()).expect("sign");
    let reply = common::exchange_udp(nsd.address, &packet, REPLY_TIMEOUT)
        .await
        .expect("NSD answers the signed query");
    let mut verifier = ResponseVerifier::new(key, request_mac.as_bytes());
    let verdict = verifier
        .verify(&reply, now())
        .and_then(|_| verifier.finish());
    (verdict, reply)
}

#[tokio::test]
async fn nsd_signs_its_answer_to_a_signed_soa_query_over_udp() {
    let nsd = start_nsd().await;
    let key = key();
    let mut packet = soa_query();
    let request_mac = sign_request(&key, &mut packet, now()).expect("sign");
    let reply = common::exchange_udp(nsd.address, &packet, REPLY_TIMEOUT)
        .await
        .expect("NSD answers the signed query");
    let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
    let check = verifier
        .verify(&reply, now())
        .expect("NSD's reply verifies");
    assert!(matches!(check, MessageCheck::Signed { .. }), "{check:?}");
    verifier.finish().expect("a one-message answer ends signed");
    let message = parse(reply.clone(), check);
    assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    let serials: Vec<u32> = message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .collect();
    assert_eq!(serials, [2024060101]);

    // The same reply changed by one bit in the SOA no longer verifies.
    let mut altered = reply;
    let serial = 2024060101u32.to_be_bytes();
    let at = altered
        .windows(4)
        .position(|window| window == serial)
        .expect("the serial is in the reply");
    altered[at + 3] ^= 1;
    let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
    assert_eq!(
        verifier.verify(&altered, now()),
        Err(TsigError::BadSignature)
    );
}

#[tokio::test]
async fn a_signed_axfr_from_nsd_verifies_message_by_message() {
    let nsd = start_nsd().await;
    let key = key();
    let mut packet = query(RecordType::AXFR);
    let request_mac = sign_request(&key, &mut packet, now()).expect("sign");
    let mut stream = timeout(REPLY_TIMEOUT, TcpStream::connect(nsd.address))
        .await
        .expect("connects in time")
        .expect("connects");
    common::write_frame(&mut stream, &packet)
        .await
        .expect("sends the AXFR query");
    let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
    let (mut records, mut soas, mut signed, mut unsigned) = (0, 0, Vec::new(), 0);
    let (mut messages, mut largest) = (0, 0);
    while soas < 2 {
        let frame = timeout(Duration::from_secs(10), common::read_frame(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("message {messages} of the AXFR within 10 s"))
            .unwrap_or_else(|error| panic!("message {messages} of the AXFR: {error}"));
        largest = largest.max(frame.len());
        let check = verifier
            .verify(&frame, now())
            .unwrap_or_else(|error| panic!("message {messages}: {error}"));
        match check {
            MessageCheck::Signed { .. } => signed.push(messages),
            MessageCheck::Unsigned => unsigned += 1,
        }
        let message = parse(frame, check);
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        records += message.answers.len();
        soas += message
            .answers
            .iter()
            .filter(|record| record.record_type() == RecordType::SOA)
            .count();
        messages += 1;
    }
    verifier.finish().expect("the last message is signed");
    eprintln!(
        "AXFR of {records} records in {messages} messages of at most {largest} bytes: \
         signed {signed:?}, {unsigned} unsigned"
    );
    // SOA, NS, A, the TXT records, SOA again.
    assert_eq!(records, TXT_RECORDS + 4);
    assert!(messages > 2, "the AXFR spans several messages: {messages}");
    assert_eq!(signed.first(), Some(&0));
    assert_eq!(signed.last(), Some(&(messages - 1)));
}

#[tokio::test]
async fn nsd_refuses_a_wrong_secret_and_an_unknown_key() {
    let nsd = start_nsd().await;
    // The wrong secret: NSD answers NOTAUTH and TSIG error BADSIG.
    let (verdict, reply) = signed_soa(&nsd, &wrong_key(), &wrong_key()).await;
    assert_eq!(verdict, Err(TsigError::Reported { code: BADSIG }));
    let rcode = reply[3] & 0x0F;
    assert_eq!(rcode, 9, "NOTAUTH");

    // A key NSD does not know: BADKEY.
    let stranger = TsigKey::new("stranger", "hmac-sha256", SECRET).expect("key");
    let (verdict, _) = signed_soa(&nsd, &stranger, &stranger).await;
    assert_eq!(verdict, Err(TsigError::Reported { code: BADKEY }));

    // Our key, but the reply checked with another secret: BADSIG here.
    let (verdict, _) = signed_soa(&nsd, &key(), &wrong_key()).await;
    assert_eq!(verdict, Err(TsigError::BadSignature));

    // An AXFR signed with the wrong secret is refused in its first
    // message.
    let mut packet = query(RecordType::AXFR);
    let request_mac = sign_request(&wrong_key(), &mut packet, now()).expect("sign");
    let reply = common::exchange_tcp(nsd.address, &packet, REPLY_TIMEOUT)
        .await
        .expect("NSD answers the AXFR");
    let mut verifier = ResponseVerifier::new(&wrong_key(), request_mac.as_bytes());
    assert_eq!(
        verifier.verify(&reply, now()),
        Err(TsigError::Reported { code: BADSIG })
    );
    assert!(verifier.finish().is_err());
}

/// How the test's server answers the query dig sent.
enum Answer {
    /// Verified, then answered with a SOA signed with the test key's name
    /// and this secret.
    Signed { secret: &'static str },
    /// Refused by `verify_request` at the clock `now` (dig's query
    /// verified or not): NOTAUTH and the TSIG the refusal says, its last
    /// MAC byte flipped when `tamper`.
    Refused { now: u64, tamper: bool },
}

/// Runs `dig` with `key_option` (dig's `-y`) and `extra` arguments at a
/// socket of the test's, checks dig's query with `verify_request` against
/// the test key and answers as `answer` says. Returns dig's output and
/// what `verify_request` said.
async fn dig_at_us(
    key_option: &str,
    extra: &[&str],
    answer: Answer,
) -> (Output, Result<(), TsigError>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("address").port().to_string();
    let mut arguments: Vec<String> = [
        "-p",
        &port,
        "@127.0.0.1",
        "-y",
        key_option,
        "+norecurse",
        "+tries=1",
        "+timeout=3",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    arguments.extend(extra.iter().map(ToString::to_string));
    let dig = tokio::task::spawn_blocking(move || {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        run_bounded("dig", &arguments, None)
    });
    let mut buffer = vec![0u8; 65535];
    let Ok(received) = timeout(Duration::from_secs(10), socket.recv_from(&mut buffer)).await else {
        // Say why dig sent nothing: not installed, or what it printed.
        let why = match dig.await {
            Ok(output) => printed(&output),
            Err(error) => match error.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "dig panicked".to_owned()),
                Err(error) => error.to_string(),
            },
        };
        panic!("dig's query did not arrive within 10 s: {why}");
    };
    let (length, client) = received.expect("receives");
    let request = &buffer[..length];
    let keys = [key()];
    let (checked, reply) = match answer {
        Answer::Signed { secret } => match verify_request(&keys, request, now()) {
            Ok(RequestCheck::Verified { request_mac, .. }) => {
                let signer = TsigKey::new(KEY_NAME, "hmac-sha256", secret).expect("key");
                let mut reply = soa_reply(request);
                sign_response(&signer, &request_mac, &mut reply, now()).expect("sign the reply");
                (Ok(()), Some(reply))
            }
            Ok(RequestCheck::NotSigned) => (Err(TsigError::Unsigned), None),
            Err(rejection) => (Err(rejection.error().clone()), None),
        },
        Answer::Refused { now, tamper } => match verify_request(&keys, request, now) {
            Err(rejection) => {
                let mut reply = reply_head(request, rejection.rcode(), 0);
                rejection.append_tsig(&mut reply, now).expect("append");
                if tamper {
                    let other_length = usize::from(reply[reply.len() - 1 - 6]);
                    let last_mac_byte = reply.len() - 6 - other_length - 1;
                    reply[last_mac_byte] ^= 1;
                }
                (Err(rejection.error().clone()), Some(reply))
            }
            Ok(_) => (Ok(()), None),
        },
    };
    if let Some(reply) = reply {
        socket.send_to(&reply, client).await.expect("send");
    }
    let output = timeout(Duration::from_secs(40), dig)
        .await
        .expect("dig finishes")
        .expect("dig thread");
    (output, checked)
}

/// Where the question of `request` ends (one question, name uncompressed).
fn question_end(request: &[u8]) -> usize {
    let mut at = 12;
    while request[at] != 0 {
        at += 1 + usize::from(request[at]);
    }
    at + 1 + 4
}

/// The start of a reply to `request`: its header (QR and AA set, the
/// opcode and RD kept, `rcode`, one question, `answers` answers) and its
/// question. dig's OPT and TSIG are not echoed.
fn reply_head(request: &[u8], rcode: u8, answers: u16) -> Vec<u8> {
    let mut reply = request[..question_end(request)].to_vec();
    reply[2] = 0x80 | (request[2] & 0x79) | 0x04;
    reply[3] = rcode;
    reply[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    reply[6..8].copy_from_slice(&answers.to_be_bytes());
    reply
}

/// A NOERROR reply to `request` with a SOA for the question's name.
fn soa_reply(request: &[u8]) -> Vec<u8> {
    let mut reply = reply_head(request, 0, 1);
    reply.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 1, 44]);
    let mut rdata = common::wire_name("ns1.tsig.test.");
    rdata.extend_from_slice(&common::wire_name("hostmaster.tsig.test."));
    for value in [2024060101u32, 3600, 600, 86400, 60] {
        rdata.extend_from_slice(&value.to_be_bytes());
    }
    reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    reply.extend_from_slice(&rdata);
    reply
}

/// dig's `-y` argument for a key.
fn dig_key(name: &str, secret: &str) -> String {
    format!("hmac-sha256:{name}:{secret}")
}

/// dig's output, both streams, for assertions and failure messages.
fn printed(output: &Output) -> String {
    format!("{}{}", output.stdout, output.stderr)
}

/// What dig 9.18 prints when a reply's TSIG does not validate: a warning
/// after the answer, and the reason before it.
const NOT_VALIDATED: &str = ";; WARNING -- Some TSIG could not be validated";

#[tokio::test]
async fn digs_signed_query_verifies_and_dig_accepts_our_signed_reply() {
    for extra in [
        &["tsig.test", "SOA"][..],
        &["+opcode=notify", "tsig.test", "SOA"],
    ] {
        let (output, checked) = dig_at_us(
            &dig_key(KEY_NAME, SECRET),
            extra,
            Answer::Signed { secret: SECRET },
        )
        .await;
        let text = printed(&output);
        assert_eq!(checked, Ok(()), "verify_request accepts dig's query");
        assert!(output.success, "{text}");
        assert!(!text.contains(NOT_VALIDATED), "{text}");
        assert!(!text.contains("Couldn't verify signature"), "{text}");
        assert!(text.contains("status: NOERROR"), "{text}");
        assert!(text.contains("2024060101"), "{text}");
        // The reply's TSIG, as dig shows it: our key, no error.
        assert!(text.contains("TSIG\thmac-sha256."), "{text}");
        assert!(text.contains(" NOERROR 0"), "{text}");
    }
}

#[tokio::test]
async fn dig_rejects_a_reply_signed_with_another_secret() {
    let (output, checked) = dig_at_us(
        &dig_key(KEY_NAME, SECRET),
        &["tsig.test", "SOA"],
        Answer::Signed {
            secret: WRONG_SECRET,
        },
    )
    .await;
    let text = printed(&output);
    assert_eq!(checked, Ok(()), "verify_request accepts dig's query");
    assert!(text.contains(NOT_VALIDATED), "{text}");
    assert!(
        text.contains("Couldn't verify signature: tsig verify failure"),
        "{text}"
    );
}

#[tokio::test]
async fn digs_query_with_another_secret_or_key_is_refused_unsigned() {
    for (name, secret, code, error) in [
        (KEY_NAME, WRONG_SECRET, BADSIG, "BADSIG"),
        ("stranger", SECRET, BADKEY, "BADKEY"),
    ] {
        let (output, checked) = dig_at_us(
            &dig_key(name, secret),
            &["tsig.test", "SOA"],
            Answer::Refused {
                now: now(),
                tamper: false,
            },
        )
        .await;
        let text = printed(&output);
        assert_eq!(checked.map_err(|error| error.code()), Err(Some(code)));
        assert!(text.contains("status: NOTAUTH"), "{text}");
        // An unsigned TSIG (MAC size 0) carrying the error, which dig
        // reads as the server's refusal.
        assert!(text.contains(" 300 0 "), "{text}");
        assert!(text.contains(&format!(" {error} 0")), "{text}");
        assert!(
            text.contains("Couldn't verify signature: tsig indicates error"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn dig_verifies_our_signed_badtime_refusal() {
    // Our clock 1000 s ahead of dig's: BADTIME, signed.
    let (output, checked) = dig_at_us(
        &dig_key(KEY_NAME, SECRET),
        &["tsig.test", "SOA"],
        Answer::Refused {
            now: now() + 1000,
            tamper: false,
        },
    )
    .await;
    let text = printed(&output);
    assert_eq!(checked.map_err(|error| error.code()), Err(Some(BADTIME)));
    assert!(text.contains("status: NOTAUTH"), "{text}");
    assert!(text.contains(" BADTIME 6 "), "{text}");
    // dig checks the MAC before reading the error: this is what it says
    // of a BADTIME whose MAC verified...
    assert!(
        text.contains("Couldn't verify signature: clocks are unsynchronized"),
        "{text}"
    );

    // ...and of one whose MAC does not.
    let (output, _) = dig_at_us(
        &dig_key(KEY_NAME, SECRET),
        &["tsig.test", "SOA"],
        Answer::Refused {
            now: now() + 1000,
            tamper: true,
        },
    )
    .await;
    let text = printed(&output);
    assert!(
        text.contains("Couldn't verify signature: tsig verify failure"),
        "{text}"
    );
}
