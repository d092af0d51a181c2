//! Malformed input over real UDP and TCP sockets. Each packet below gets
//! FORMERR (with the question echoed exactly when the question itself was
//! well-formed) or no reply at all (no readable header, or QR set), and the
//! server answers the next good query every time. Then bursts of seeded
//! random packets, after which a good query must still be answered.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Family, QueryOptions, TestServer, Transport};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const FIXTURE_ZONES: &str = "tests/fixtures/golden/zones";
/// Per-packet wait for a reply that must come.
const REPLY_WAIT: Duration = Duration::from_secs(2);
/// How long a stray reply to a dropped packet is waited for, after the good
/// query's reply (which the server sends later) has already arrived.
const STRAY_WAIT: Duration = Duration::from_millis(100);

/// What the server must do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// No reply at all.
    Drop,
    /// FORMERR; `question` says whether the question is echoed.
    FormErr { question: bool },
}

struct Case {
    name: &'static str,
    packet: Vec<u8>,
    expect: Expect,
}

const RD: u16 = 0x0100;
const QR: u16 = 0x8000;
const TYPE_A: u16 = 1;

fn question() -> Vec<u8> {
    common::question_bytes("www.example.test.", TYPE_A)
}

/// An OPT record: root owner, payload 1232, version 0, the given options.
fn opt(options: &[u8]) -> Vec<u8> {
    let mut record = vec![0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0];
    record.extend_from_slice(&u16::try_from(options.len()).expect("short").to_be_bytes());
    record.extend_from_slice(options);
    record
}

/// An A record owned by the question name (pointer to offset 12).
fn answer_record() -> Vec<u8> {
    vec![0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]
}

fn cases() -> Vec<Case> {
    let good_question = question();
    let with = |counts: [u16; 4], parts: &[&[u8]]| -> Vec<u8> {
        common::raw_query(0, RD, counts, &parts.concat())
    };
    let mut long_name = Vec::new();
    for _ in 0..4 {
        long_name.push(63);
        long_name.extend_from_slice(&[b'a'; 63]);
    }
    long_name.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut label_64 = vec![64];
    label_64.extend_from_slice(&[b'a'; 64]);
    label_64.extend_from_slice(&[0, 0, 1, 0, 1]);
    // An additional record whose owner points at itself: a compression loop.
    let self_pointer_at = 12 + good_question.len();
    let self_pointer = [
        0xC0 | (self_pointer_at >> 8) as u8,
        self_pointer_at as u8,
        0,
        1,
        0,
        1,
        0,
        0,
        0,
        60,
        0,
        4,
        192,
        0,
        2,
        1,
    ];
    let question_only = Expect::FormErr { question: false };
    let with_question = Expect::FormErr { question: true };
    vec![
        Case {
            name: "empty packet",
            packet: Vec::new(),
            expect: Expect::Drop,
        },
        Case {
            name: "one byte",
            packet: vec![0x12],
            expect: Expect::Drop,
        },
        Case {
            name: "truncated header (11 bytes)",
            packet: with([1, 0, 0, 0], &[])[..11].to_vec(),
            expect: Expect::Drop,
        },
        Case {
            name: "QR set on a good query",
            packet: common::raw_query(0, QR | RD, [1, 0, 0, 0], &good_question),
            expect: Expect::Drop,
        },
        Case {
            name: "QR set on a bare header",
            packet: common::raw_query(0, QR, [0, 0, 0, 0], &[]),
            expect: Expect::Drop,
        },
        Case {
            name: "qdcount 0",
            packet: with([0, 0, 0, 0], &[]),
            expect: question_only,
        },
        Case {
            name: "qdcount 2",
            packet: with([2, 0, 0, 0], &[&good_question, &good_question]),
            expect: question_only,
        },
        Case {
            name: "qdcount 65535",
            packet: with([0xFFFF, 0, 0, 0], &[&good_question]),
            expect: question_only,
        },
        Case {
            name: "label length 64",
            packet: with([1, 0, 0, 0], &[&label_64]),
            expect: question_only,
        },
        Case {
            name: "label type 0x80",
            packet: with([1, 0, 0, 0], &[&[0x80, b'a', 0, 0, 1, 0, 1]]),
            expect: question_only,
        },
        Case {
            name: "label longer than the packet",
            packet: with([1, 0, 0, 0], &[&[20, b'w', b'w', b'w']]),
            expect: question_only,
        },
        Case {
            name: "name over 255 bytes",
            packet: with([1, 0, 0, 0], &[&long_name]),
            expect: question_only,
        },
        Case {
            name: "compression pointer in the question",
            packet: with([1, 0, 0, 0], &[&[0xC0, 12, 0, 1, 0, 1]]),
            expect: question_only,
        },
        Case {
            name: "compression loop in the question",
            packet: with([1, 0, 0, 0], &[&[0xC0, 12]]),
            expect: question_only,
        },
        Case {
            name: "question without QTYPE",
            packet: with([1, 0, 0, 0], &[&common::wire_name("www.example.test.")]),
            expect: question_only,
        },
        Case {
            name: "question cut inside QCLASS",
            packet: with([1, 0, 0, 0], &[&good_question[..good_question.len() - 1]]),
            expect: question_only,
        },
        Case {
            name: "ancount 1 without records",
            packet: with([1, 1, 0, 0], &[&good_question]),
            expect: with_question,
        },
        Case {
            name: "ancount 65535 with one record",
            packet: with([1, 0xFFFF, 0, 0], &[&good_question, &answer_record()]),
            expect: with_question,
        },
        Case {
            name: "nscount 2 with one record",
            packet: with([1, 0, 2, 0], &[&good_question, &answer_record()]),
            expect: with_question,
        },
        Case {
            name: "arcount 3 without records",
            packet: with([1, 0, 0, 3], &[&good_question]),
            expect: with_question,
        },
        Case {
            name: "record data past the end",
            packet: with([1, 1, 0, 0], &[&good_question, &answer_record()[..14]]),
            expect: with_question,
        },
        Case {
            name: "compression loop in an additional record",
            packet: with([1, 0, 0, 1], &[&good_question, &self_pointer]),
            expect: with_question,
        },
        Case {
            name: "two OPT records",
            packet: with([1, 0, 0, 2], &[&good_question, &opt(&[]), &opt(&[])]),
            expect: with_question,
        },
        Case {
            name: "option overrunning the OPT",
            packet: with(
                [1, 0, 0, 1],
                &[&good_question, &opt(&[0, 10, 0, 8, 1, 2, 3, 4])],
            ),
            expect: with_question,
        },
        Case {
            name: "option header cut by the OPT end",
            packet: with([1, 0, 0, 1], &[&good_question, &opt(&[0, 10, 0])]),
            expect: with_question,
        },
        Case {
            name: "OPT data length past the packet",
            packet: with(
                [1, 0, 0, 1],
                &[
                    &good_question,
                    &[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 40, 0, 10],
                ],
            ),
            expect: with_question,
        },
        Case {
            name: "OPT cut in its fixed part",
            packet: with([1, 0, 0, 1], &[&good_question, &[0, 0, 41, 4, 0xD0, 0]]),
            expect: with_question,
        },
    ]
}

/// Gives each case its own id so a reply can be matched to its packet.
fn stamp(packet: &[u8], id: u16) -> Vec<u8> {
    let mut stamped = packet.to_vec();
    for (slot, byte) in stamped.iter_mut().zip(id.to_be_bytes()) {
        *slot = byte;
    }
    stamped
}

/// Checks a reply to a malformed packet; returns what is wrong, if anything.
fn check_reply(case: &Case, sent: &[u8], reply: &[u8]) -> Result<(), String> {
    let Expect::FormErr { question } = case.expect else {
        return Err(format!("expected no reply, got {reply:02x?}"));
    };
    let response = Message::from_vec(reply)
        .map_err(|error| format!("reply does not parse ({error}): {reply:02x?}"))?;
    let sent_id = u16::from_be_bytes([sent[0], sent[1]]);
    let mut problems = Vec::new();
    if response.metadata.id != sent_id {
        problems.push(format!("id {} instead of {sent_id}", response.metadata.id));
    }
    if response.metadata.message_type != MessageType::Response {
        problems.push("QR clear".to_owned());
    }
    if response.metadata.response_code != ResponseCode::FormErr {
        problems.push(format!("rcode {}", response.metadata.response_code));
    }
    if !response.metadata.recursion_desired {
        problems.push("RD not copied".to_owned());
    }
    if !response.answers.is_empty()
        || !response.authorities.is_empty()
        || !response.additionals.is_empty()
    {
        problems.push("records in a FORMERR".to_owned());
    }
    let echoed = &reply[12..];
    if question {
        let expected_question = question_bytes_of(sent);
        if response.queries.len() != 1 || echoed != expected_question {
            problems.push(format!("question not echoed as sent: {:02x?}", echoed));
        }
    } else if !response.queries.is_empty() || !echoed.is_empty() {
        problems.push(format!("unexpected question bytes {echoed:02x?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// The question section of a packet whose question is well-formed.
fn question_bytes_of(packet: &[u8]) -> &[u8] {
    let mut at = 12;
    while packet[at] != 0 {
        at += 1 + usize::from(packet[at]);
    }
    &packet[12..at + 5]
}

fn good_query() -> (Vec<u8>, u16) {
    let message = common::build_query("www.example.test.", RecordType::A, &QueryOptions::default());
    (message.to_vec().expect("encodes"), message.metadata.id)
}

/// Whether `reply` is the (positive) answer to the good query `id`.
fn is_good_answer(reply: &[u8], id: u16) -> bool {
    Message::from_vec(reply).is_ok_and(|response| {
        response.metadata.id == id
            && response.metadata.response_code == ResponseCode::NoError
            && response.answers.len() == 2
    })
}

/// Over UDP: the malformed packet, then a good query on the same socket.
/// The single worker answers in order, so a reply to the malformed packet
/// would arrive before the good answer; after it, a stray reply is waited
/// for a little longer.
async fn udp_case(server: SocketAddr, case: &Case, id: u16) -> Result<(), String> {
    let local = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = UdpSocket::bind(local).await.expect("bind");
    socket.connect(server).await.expect("connect");
    let packet = stamp(&case.packet, id);
    socket.send(&packet).await.expect("send");
    let (good, good_id) = good_query();
    socket.send(&good).await.expect("send");
    let mut buffer = vec![0u8; 65535];
    let mut replies = Vec::new();
    let deadline = Instant::now() + REPLY_WAIT;
    let mut good_answered = false;
    while Instant::now() < deadline {
        let wait = if good_answered {
            STRAY_WAIT
        } else {
            deadline - Instant::now()
        };
        let Ok(Ok(length)) = timeout(wait, socket.recv(&mut buffer)).await else {
            break;
        };
        let reply = buffer[..length].to_vec();
        if is_good_answer(&reply, good_id) {
            good_answered = true;
        } else {
            replies.push(reply);
        }
    }
    check_replies(case, &packet, &replies, good_answered)
}

fn check_replies(
    case: &Case,
    packet: &[u8],
    replies: &[Vec<u8>],
    good_answered: bool,
) -> Result<(), String> {
    if !good_answered {
        return Err("the good query after it was not answered".to_owned());
    }
    match (case.expect, replies) {
        (Expect::Drop, []) => Ok(()),
        (Expect::FormErr { .. }, []) => Err("no reply, expected FORMERR".to_owned()),
        (Expect::FormErr { .. }, [reply]) => check_reply(case, packet, reply),
        (_, replies) => Err(format!(
            "{} replies to the malformed packet: {replies:02x?}",
            replies.len()
        )),
    }
}

/// Over TCP: the malformed frame and a good query pipelined on one
/// connection; the replies come back in order.
async fn tcp_case(server: SocketAddr, case: &Case, id: u16) -> Result<(), String> {
    let mut stream = timeout(REPLY_WAIT, TcpStream::connect(server))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|error| format!("connect: {error}"))?;
    let packet = stamp(&case.packet, id);
    let (good, good_id) = good_query();
    let mut both = Vec::new();
    for message in [&packet, &good] {
        both.extend_from_slice(&u16::try_from(message.len()).expect("short").to_be_bytes());
        both.extend_from_slice(message);
    }
    stream
        .write_all(&both)
        .await
        .map_err(|error| format!("write: {error}"))?;
    let mut replies = Vec::new();
    let mut good_answered = false;
    for _ in 0..2 {
        let Ok(Ok(reply)) = timeout(REPLY_WAIT, common::read_frame(&mut stream)).await else {
            break;
        };
        if is_good_answer(&reply, good_id) {
            good_answered = true;
            break;
        }
        replies.push(reply);
    }
    check_replies(case, &packet, &replies, good_answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_formerr_or_silence_and_the_server_keeps_answering() {
    let server = TestServer::start_with_fixture(FIXTURE_ZONES).await;
    let mut failures = Vec::new();
    let mut id = 0x4000u16;
    for case in cases() {
        for (transport, family) in [
            (Transport::Udp, Family::V4),
            (Transport::Udp, Family::V6),
            (Transport::Tcp, Family::V4),
            (Transport::Tcp, Family::V6),
        ] {
            // A zero-length TCP frame is a framing question, not a DNS one;
            // the short cases still cover "no header" over TCP.
            if transport == Transport::Tcp && case.packet.is_empty() {
                continue;
            }
            id = id.wrapping_add(1);
            let address = server.dns_addr(transport, family);
            let outcome = match transport {
                Transport::Udp => udp_case(address, &case, id).await,
                Transport::Tcp => tcp_case(address, &case, id).await,
            };
            if let Err(problem) = outcome {
                failures.push(format!(
                    "{} over {transport}/{family}: {problem}",
                    case.name
                ));
            }
        }
    }
    server.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same packets on every run, so a failure can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next() as u8).collect()
    }
}

/// Random packets of three kinds: pure noise; a good query with a few
/// bytes changed (gets past the header, often into the parser's depths);
/// a plausible header followed by noise.
fn random_packet(random: &mut SplitMix) -> Vec<u8> {
    match random.below(3) {
        0 => {
            let length = random.below(600);
            random.bytes(length)
        }
        1 => {
            let (mut packet, _) = good_query();
            let mut edns_query = common::build_query(
                "a.b.cdn.example.test.",
                RecordType::ANY,
                &QueryOptions {
                    edns: true,
                    dnssec_ok: true,
                    ..QueryOptions::default()
                },
            )
            .to_vec()
            .expect("encodes");
            if random.below(2) == 0 {
                std::mem::swap(&mut packet, &mut edns_query);
            }
            for _ in 0..=random.below(4) {
                let at = random.below(packet.len());
                packet[at] = random.next() as u8;
            }
            packet.truncate(packet.len() - random.below(packet.len() / 4 + 1));
            packet
        }
        _ => {
            let flags = (random.next() as u16) & !QR;
            let counts = [
                1,
                random.below(3) as u16,
                random.below(3) as u16,
                random.below(3) as u16,
            ];
            let length = random.below(300);
            common::raw_query(random.next() as u16, flags, counts, &random.bytes(length))
        }
    }
}

/// Every reply to noise must be a well-formed response to a packet we sent.
fn check_noise_reply(
    reply: &[u8],
    sent_ids: &std::collections::HashSet<u16>,
) -> Result<(), String> {
    let response = Message::from_vec(reply)
        .map_err(|error| format!("reply does not parse ({error}): {reply:02x?}"))?;
    if response.metadata.message_type != MessageType::Response {
        return Err(format!("reply without QR: {reply:02x?}"));
    }
    if !sent_ids.contains(&response.metadata.id) {
        return Err(format!("reply with an id never sent: {reply:02x?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_a_burst_of_random_packets() {
    const PACKETS: usize = 2000;
    let server = TestServer::start_with_fixture(FIXTURE_ZONES).await;
    let mut random = SplitMix(0x5EED_0FD0_5EED);
    let packets: Vec<Vec<u8>> = (0..PACKETS).map(|_| random_packet(&mut random)).collect();
    let sent_ids: std::collections::HashSet<u16> = packets
        .iter()
        .filter(|packet| packet.len() >= 2)
        .map(|packet| u16::from_be_bytes([packet[0], packet[1]]))
        .collect();

    // UDP: the whole burst from one socket, replies collected meanwhile.
    let address = server.dns_addr(Transport::Udp, Family::V4);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(address).await.expect("connect");
    let mut buffer = vec![0u8; 65535];
    let mut problems = Vec::new();
    let mut noise_replies = 0usize;
    for packet in &packets {
        socket.send(packet).await.expect("send");
        // Drain what has arrived so the socket buffer never overflows.
        while let Ok(length) = socket.try_recv(&mut buffer) {
            noise_replies += 1;
            if let Err(problem) = check_noise_reply(&buffer[..length], &sent_ids) {
                problems.push(problem);
            }
        }
    }
    let (good, good_id) = good_query();
    let mut answered = false;
    // The good query may wait behind the burst; retry if a datagram is lost.
    for _ in 0..5 {
        socket.send(&good).await.expect("send");
        let deadline = Instant::now() + REPLY_WAIT;
        while let Ok(Ok(length)) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            socket.recv(&mut buffer),
        )
        .await
        {
            let reply = &buffer[..length];
            if is_good_answer(reply, good_id) {
                answered = true;
                break;
            }
            noise_replies += 1;
            if let Err(problem) = check_noise_reply(reply, &sent_ids) {
                problems.push(problem);
            }
        }
        if answered {
            break;
        }
    }
    assert!(
        answered,
        "UDP: no answer to a good query after {PACKETS} random packets"
    );
    // Noise must mostly be answered with FORMERR or dropped, never crash the
    // worker; some replies are expected since a third of the noise is close
    // to a real query.
    assert!(
        noise_replies > 0,
        "UDP: not a single reply to {PACKETS} packets, many of them nearly valid"
    );

    // TCP: the same packets framed on one connection, then the good query.
    let address = server.dns_addr(Transport::Tcp, Family::V4);
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let mut framed = Vec::new();
    for packet in packets.iter().chain(std::iter::once(&good)) {
        framed.extend_from_slice(&u16::try_from(packet.len()).expect("short").to_be_bytes());
        framed.extend_from_slice(packet);
    }
    // Write and read at the same time: the server may answer while we write.
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(&framed).await.expect("write burst");
    };
    let read = async {
        let mut replies = 0usize;
        loop {
            let reply = timeout(Duration::from_secs(10), read_frame_from(&mut reader))
                .await
                .expect("TCP replies keep coming")
                .expect("the connection stays open");
            if is_good_answer(&reply, good_id) {
                return (replies, Vec::<String>::new());
            }
            replies += 1;
            if let Err(problem) = check_noise_reply(&reply, &sent_ids) {
                return (replies, vec![problem]);
            }
        }
    };
    let ((), (tcp_replies, tcp_problems)) = tokio::join!(write, read);
    problems.extend(tcp_problems);
    assert!(
        tcp_replies > 0,
        "TCP: not a single reply to {PACKETS} packets"
    );

    // Unframed noise on a fresh connection, then a new connection must work.
    let mut noise = TcpStream::connect(address).await.expect("connect");
    noise
        .write_all(&random.bytes(4096))
        .await
        .expect("write noise");
    drop(noise);
    let response = common::ask(
        Transport::Tcp,
        address,
        &common::build_query("www.example.test.", RecordType::A, &QueryOptions::default()),
    )
    .await;
    assert_eq!(response.answers.len(), 2, "TCP after noise: {response}");

    server.shutdown().await;
    assert!(
        problems.is_empty(),
        "bad replies to noise:\n{}",
        problems.join("\n")
    );
}

async fn read_frame_from(reader: &mut tokio::net::tcp::ReadHalf<'_>) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut length = [0u8; 2];
    reader.read_exact(&mut length).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    reader.read_exact(&mut message).await?;
    Ok(message)
}
