//! Dynamic updates (RFC 2136) over real sockets, sent by BIND's `nsupdate`
//! (Debian's dnsutils) over UDP and TCP and read back with `dig`.
//!
//! Checked: an ACME-style TXT is added and removed under a grant, the
//! serial moves one per change, and the change is answered only once it
//! is served; prerequisites are honoured; unsigned updates, a wrong key,
//! a name or type outside the grant, an address the grant does not allow
//! and a steered name are refused and change nothing; the updates survive
//! a reload with an edited zone file and a restart; without `[update]` an
//! UPDATE is NOTIMP as before.

mod common;

use std::time::Duration;

use common::{Family, TestServer, Transport};

const SECRET: &str = "8xR6ZPhz9rN6f0yS7pQmA1cJ2bV4kL3uW5eT9yH0gDs=";
const WRONG_SECRET: &str = "b3RoZXIgc2VjcmV0LCBvdGhlciBzZWNyZXQsIG90aGVy";

/// `[update]` granting key `acme` TXT at `_acme-challenge` names (from
/// anywhere), and key `hosts` anything under `hosts.example.test.` from
/// 192.0.2.0/24 only (so never from loopback).
fn config(update: bool) -> String {
    let update = if update {
        format!(
            r#"
[tsig.acme]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[tsig.hosts]
algorithm = "hmac-sha256"
secret = "{WRONG_SECRET}"

[update]
[[update.grant]]
tsig_key = "acme"
zones = ["example.test."]
names = ["_acme-challenge.example.test.", "_acme-challenge.www.example.test."]
types = ["TXT"]

[[update.grant]]
tsig_key = "hosts"
zones = ["example.test."]
names = ["hosts.example.test."]
allow = ["192.0.2.0/24"]
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[sites.fra]
[pools.web]
site = "fra"
addresses = ["192.0.2.10"]

[[steer]]
name = "www.example.test."
type = "A"
pools = ["web"]
policy = ["priority"]
{update}"#
    )
}

/// `nsupdate` against `server` (see [`common::tools::nsupdate`]).
async fn nsupdate(
    server: &TestServer,
    key: Option<&str>,
    tcp: bool,
    commands: &str,
) -> (bool, String) {
    let address = server.dns_addr(Transport::Udp, Family::V4);
    common::tools::nsupdate(address, "example.test.", key, tcp, commands).await
}

fn acme() -> String {
    format!("acme:{SECRET}")
}

/// `dig +short NAME TYPE`, sorted lines.
async fn short(server: &TestServer, name: &str, record_type: &str) -> Vec<String> {
    let output = common::tools::dig_text(
        server.dns_addr(Transport::Udp, Family::V4),
        vec!["+short".to_owned(), name.to_owned(), record_type.to_owned()],
    )
    .await;
    let mut lines: Vec<String> = output.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

async fn serial(server: &TestServer) -> u32 {
    let soa = short(server, "example.test.", "SOA").await;
    soa.first()
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|serial| serial.parse().ok())
        .unwrap_or_else(|| panic!("no SOA: {soa:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_updates_are_served_kept_and_survive_reloads_and_restarts() {
    let directory = common::example_directory(&config(true));
    let server = TestServer::start_prepared(directory).await;
    let first_serial = serial(&server).await;
    let challenge = "_acme-challenge.example.test.";

    // Over UDP: added, and served by the time nsupdate returns.
    let (ok, output) = nsupdate(
        &server,
        Some(&acme()),
        false,
        &format!("update add {challenge} 60 TXT \"token-1\""),
    )
    .await;
    assert!(ok, "{output}");
    assert_eq!(short(&server, challenge, "TXT").await, vec!["\"token-1\""]);
    assert_eq!(serial(&server).await, first_serial + 1);

    // Over TCP, a second record in the same RRset and one below www.
    let (ok, output) = nsupdate(
        &server,
        Some(&acme()),
        true,
        &format!(
            "update add {challenge} 60 TXT \"token-2\"\n\
             update add _acme-challenge.www.example.test. 60 TXT \"www-token\""
        ),
    )
    .await;
    assert!(ok, "{output}");
    assert_eq!(
        short(&server, challenge, "TXT").await,
        vec!["\"token-1\"", "\"token-2\""]
    );
    assert_eq!(serial(&server).await, first_serial + 2);

    // A prerequisite that does not hold: nothing changes.
    let (ok, output) = nsupdate(
        &server,
        Some(&acme()),
        false,
        &format!("prereq nxrrset {challenge} TXT\nupdate delete {challenge} TXT"),
    )
    .await;
    assert!(!ok && output.contains("YXRRSET"), "{output}");
    assert_eq!(short(&server, challenge, "TXT").await.len(), 2);

    // Refused: unsigned, the wrong secret, a type or name outside the
    // grant, a grant whose addresses exclude loopback, a steered name.
    let refusals = [
        (
            None,
            format!("update add {challenge} 60 TXT \"x\""),
            "REFUSED",
        ),
        (
            Some(format!("acme:{WRONG_SECRET}")),
            format!("update add {challenge} 60 TXT \"x\""),
            "",
        ),
        (
            Some(acme()),
            format!("update add {challenge} 60 A 192.0.2.99"),
            "REFUSED",
        ),
        (
            Some(acme()),
            "update add mail.example.test. 60 TXT \"x\"".to_owned(),
            "REFUSED",
        ),
        (
            Some(format!("hosts:{WRONG_SECRET}")),
            "update add pc1.hosts.example.test. 60 A 192.0.2.50".to_owned(),
            "REFUSED",
        ),
    ];
    for (key, command, expected) in refusals {
        let (ok, output) = nsupdate(&server, key.as_deref(), false, &command).await;
        assert!(!ok, "{command} was accepted: {output}");
        assert!(output.contains(expected), "{command}: {output}");
    }
    assert_eq!(serial(&server).await, first_serial + 2);

    // Kept across a reload that brings an operator's edit of the file.
    // Its serial moved by one, less than the updates did: the zone is
    // served one above the updates' serial, so secondaries see a change.
    let zone_file = server.zones_dir().join("example.test.zone");
    let edited = std::fs::read_to_string(&zone_file)
        .expect("zone")
        .replace(&first_serial.to_string(), &(first_serial + 1).to_string())
        + "mail2 IN A 192.0.2.26\n";
    std::fs::write(&zone_file, edited).expect("zone written");
    let reloaded = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    assert_eq!(
        short(&server, "mail2.example.test.", "A").await,
        vec!["192.0.2.26"]
    );
    assert_eq!(short(&server, challenge, "TXT").await.len(), 2);
    assert_eq!(serial(&server).await, first_serial + 3);

    // Removed again, one record then the name.
    let (ok, output) = nsupdate(
        &server,
        Some(&acme()),
        true,
        &format!("update delete {challenge} TXT \"token-1\""),
    )
    .await;
    assert!(ok, "{output}");
    assert_eq!(short(&server, challenge, "TXT").await, vec!["\"token-2\""]);
    let metrics = common::http_request(server.admin_addr(), "GET", "/metrics").await;
    assert!(
        metrics
            .body
            .contains("steer_updates_total{zone=\"example.test.\",rcode=\"NOERROR\"} 3\n"),
        "{}",
        metrics.body
    );

    // A restart reads the kept updates back.
    let directory_path = server.directory.path().to_path_buf();
    let directory = tempfile::tempdir().expect("directory");
    common::copy_tree(&directory_path, directory.path());
    let before = serial(&server).await;
    server.shutdown().await;
    let restarted = TestServer::start_prepared(directory).await;
    assert_eq!(
        short(&restarted, challenge, "TXT").await,
        vec!["\"token-2\""]
    );
    assert_eq!(
        short(&restarted, "_acme-challenge.www.example.test.", "TXT").await,
        vec!["\"www-token\""]
    );
    assert_eq!(serial(&restarted).await, before);
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_an_update_is_notimp() {
    let directory = common::example_directory(&config(false));
    let server = TestServer::start_prepared(directory).await;
    let (ok, output) = nsupdate(
        &server,
        Some(&acme()),
        false,
        "update add _acme-challenge.example.test. 60 TXT \"x\"",
    )
    .await;
    assert!(!ok, "{output}");
    assert!(output.contains("NOTIMP"), "{output}");
    // Nothing was kept anywhere.
    assert!(!server.directory.path().join("updates").exists());
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_check_warns_of_a_grant_for_a_zone_not_served_here() {
    let text = config(true).replace(
        "zones = [\"example.test.\"]\nnames = [\"hosts",
        "zones = [\"example.test.\", \"missing.test.\"]\nnames = [\"hosts",
    );
    let directory = common::example_directory(&text);
    let output = common::run_steer(&["check", "--config", "steer.toml"], directory.path()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "update.grant[1].zones[1]: missing.test. is not a zone served here, so its updates \
             are refused"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_udp_on_a_wildcard_address_the_answer_comes_from_the_address_asked() {
    let text = config(true).replace("listen = [\"127.0.0.1:0\"]", "listen = [\"0.0.0.0:0\"]");
    let directory = common::example_directory(&text);
    let server = TestServer::start_prepared(directory).await;
    let port = server.dns_addr(Transport::Udp, Family::V4).port();
    // Not the address the kernel would answer 127.0.0.1 from by itself.
    let asked: std::net::SocketAddr = ([127, 0, 0, 2], port).into();
    let (ok, output) = common::tools::nsupdate(
        asked,
        "example.test.",
        Some(&acme()),
        false,
        "update add _acme-challenge.example.test. 60 TXT \"wildcard\"",
    )
    .await;
    assert!(ok, "{output}");
    let answer = common::tools::dig_text(
        asked,
        vec![
            "+short".to_owned(),
            "_acme-challenge.example.test.".to_owned(),
            "TXT".to_owned(),
        ],
    )
    .await;
    assert_eq!(answer.trim(), "\"wildcard\"");
    server.shutdown().await;
}

/// The bytes of an update adding `name` TXT `text`, signed with the acme
/// key now, as a client sends it.
fn signed_update(name: &str, text: &str) -> Vec<u8> {
    use hickory_proto::op::{Message, OpCode, Query};
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    let mut message = Message::query();
    message.metadata.id = 4242;
    message.metadata.op_code = OpCode::Update;
    message.add_query(Query::query(
        Name::from_ascii("example.test.").expect("zone"),
        RecordType::SOA,
    ));
    message.add_authority(Record::from_rdata(
        Name::from_ascii(name).expect("name"),
        60,
        RData::TXT(TXT::new(vec![text.to_owned()])),
    ));
    let mut bytes = message.to_vec().expect("encoded");
    let key = steer::transfer::tsig::TsigKey::new("acme", "hmac-sha256", SECRET).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    steer::transfer::tsig::sign_request(&key, &mut bytes, now).expect("signed");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_update_gets_its_first_answer_and_changes_nothing() {
    let directory = common::example_directory(&config(true));
    let server = TestServer::start_prepared(directory).await;
    let address = server.dns_addr(Transport::Udp, Family::V4);
    let challenge = "_acme-challenge.example.test.";
    let update = signed_update(challenge, "captured");
    let first = common::exchange_udp(address, &update, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(first[3] & 0x0F, 0, "NOERROR");
    assert_eq!(short(&server, challenge, "TXT").await, vec!["\"captured\""]);
    let after_first = serial(&server).await;

    // The owner removes the record; the captured update sent again (within
    // the TSIG time window) gets the same answer and adds nothing back.
    let (ok, output) = nsupdate(
        &server,
        Some(&acme()),
        false,
        &format!("update delete {challenge} TXT"),
    )
    .await;
    assert!(ok, "{output}");
    let replayed = common::exchange_udp(address, &update, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(replayed, first);
    assert!(short(&server, challenge, "TXT").await.is_empty());
    assert_eq!(serial(&server).await, after_first + 1);
    server.shutdown().await;
}

/// `reloads.ok` of `/status`.
async fn reloads(server: &TestServer) -> u64 {
    let response = common::http_request(server.admin_addr(), "GET", "/status").await;
    let status: serde_json::Value = serde_json::from_str(&response.body).expect("status JSON");
    status["reloads"]["ok"].as_u64().expect("reloads.ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_updates_shares_reloads_and_each_applies_once() {
    let directory = common::example_directory(&config(true));
    let server = TestServer::start_prepared(directory).await;
    let address = server.dns_addr(Transport::Udp, Family::V4);
    let challenge = "_acme-challenge.example.test.";
    let before = (serial(&server).await, reloads(&server).await);
    // Eight updates from one client at once, and the first again, as a
    // client that retransmits sends it.
    let mut updates: Vec<Vec<u8>> = (0..8)
        .map(|index| signed_update(challenge, &format!("token-{index}")))
        .collect();
    updates.push(updates[0].clone());
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("socket");
    for update in &updates {
        socket.send_to(update, address).await.expect("sent");
    }
    let mut responses = Vec::new();
    let mut buffer = vec![0u8; 4096];
    while responses.len() < updates.len() {
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(20), socket.recv_from(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("{} of {} answered", responses.len(), updates.len()))
                .expect("received");
        responses.push(buffer[..length].to_vec());
    }
    assert!(
        responses.iter().all(|response| response[3] & 0x0F == 0),
        "every update NOERROR"
    );
    // The retransmission got the first answer again: eight distinct ones.
    let mut distinct = responses.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8);
    // Each applied once, in turn: eight records, the serial eight on.
    let expected: Vec<String> = (0..8).map(|index| format!("\"token-{index}\"")).collect();
    assert_eq!(short(&server, challenge, "TXT").await, expected);
    assert_eq!(serial(&server).await, before.0 + 8);
    // Served by fewer reloads than updates: those waiting went together.
    let reloaded = reloads(&server).await - before.1;
    assert!(
        (1..8).contains(&reloaded),
        "{reloaded} reloads for 8 updates"
    );
    server.shutdown().await;
}
