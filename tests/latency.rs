//! Latency steering end to end: a real server, measurements posted to
//! `POST /latency` and a matrix file, and real DNS queries with EDNS Client
//! Subnet watching the answers move as the model is recompiled.
//!
//! `www.example.test A` is steered by `["latency", "priority"]` over
//! web-iad (listed first) and web-fra, with a 10% / 5 ms margin, and the
//! model is recompiled every 200 ms.

mod common;

use std::time::Duration;

use common::{TestServer, http_request, steered_answer, wait_for_steered};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{FRA, IAD};

fn config(max_age: &str) -> String {
    // FRA and IAD are the pools' addresses.
    let pools = common::WEB_POOLS;
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[latency]
matrix = "latency.csv"
compile_interval = "200ms"
max_age = "{max_age}"
{pools}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{{ latency = {{ margin_percent = 10, margin_ms = 5 }} }}, "priority"]
"#
    )
}

/// The matrix: 100.64.0.0/16 is faster to fra.
const MATRIX: &str = "selector,site,rtt_ms\n100.64.0.0/16,fra,20\n100.64.0.0/16,iad,90\n";

async fn start(max_age: &str) -> TestServer {
    let directory = common::example_directory(&config(max_age));
    std::fs::write(directory.path().join("latency.csv"), MATRIX).expect("matrix");
    TestServer::start_prepared(directory).await
}

/// POSTs `body` to `/latency`; returns the status and the JSON answer.
async fn post_latency(server: &TestServer, body: &str) -> (u16, Value) {
    let address = server.admin_addr();
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!(
        "POST /latency HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn samples(rows: &[(&str, &str, f64)]) -> String {
    let samples: Vec<Value> = rows
        .iter()
        .map(|(client, site, rtt)| json!({"client": client, "site": site, "rtt_ms": rtt}))
        .collect();
    json!({ "samples": samples }).to_string()
}

async fn status(server: &TestServer) -> Value {
    let response = http_request(server.admin_addr(), "GET", "/status").await;
    serde_json::from_str(&response.body).expect("status JSON")
}

#[tokio::test]
async fn posted_measurements_move_a_network_to_the_faster_site_and_the_margin_holds_it() {
    let server = start("1h").await;
    // No data: the pools' order (iad first); the matrix covers 100.64/16.
    assert_eq!(steered_answer(&server, "203.0.113.0").await.0, IAD);
    assert_eq!(steered_answer(&server, "100.64.7.0").await.0, FRA);

    let (code, reply) = post_latency(
        &server,
        &samples(&[
            ("203.0.113.5", "fra", 30.0),
            ("203.0.113.0/24", "iad", 90.0),
        ]),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["accepted"], 2);
    wait_for_steered(&server, "203.0.113.0", FRA).await;
    // Its neighbours have no data: the scope does not cover them.
    let (_, scope) = steered_answer(&server, "203.0.113.0").await;
    assert_eq!(scope, 24);
    assert_eq!(steered_answer(&server, "203.0.112.0").await.0, IAD);

    // iad gets a little faster than fra, but not by 10% and 5 ms: fra stays.
    for _ in 0..20 {
        post_latency(&server, &samples(&[("203.0.113.0/24", "iad", 28.0)])).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        steered_answer(&server, "203.0.113.0").await.0,
        FRA,
        "the margin holds"
    );
    // Much faster: it takes over.
    for _ in 0..20 {
        post_latency(&server, &samples(&[("203.0.113.0/24", "iad", 10.0)])).await;
    }
    wait_for_steered(&server, "203.0.113.0", IAD).await;

    let status = status(&server).await;
    assert_eq!(status["latency"]["prefixes"], 1, "{status}");
    assert!(status["latency"]["compiles"]["count"].as_u64() >= Some(2));
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_batches_are_refused_and_bad_samples_counted_without_losing_data() {
    let server = start("1h").await;
    let (code, _) = post_latency(&server, &samples(&[("203.0.113.0/24", "fra", 30.0)])).await;
    assert_eq!(code, 200);
    wait_for_steered(&server, "203.0.113.0", FRA).await;

    let (code, reply) = post_latency(&server, "{\"samples\": [{\"client\": ").await;
    assert_eq!(code, 400);
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|error| error.contains("nothing was recorded")),
        "{reply}"
    );
    let (code, reply) = post_latency(
        &server,
        &samples(&[
            ("203.0.113.0/24", "frx", 1.0),
            ("203.0.113.0/16", "iad", 1.0),
            ("203.0.113.0/24", "iad", -3.0),
            ("203.0.113.0/24", "iad", 1e9),
            ("198.51.100.0/24", "iad", 12.0),
        ]),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["accepted"], 1);
    let reasons: Vec<&str> = reply["rejected"]
        .as_array()
        .expect("rejected list")
        .iter()
        .map(|rejected| rejected["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        ["unknown_site", "bad_client", "bad_rtt", "bad_rtt"]
    );
    // What was accepted before is still what answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(steered_answer(&server, "203.0.113.0").await.0, FRA);

    let metrics = http_request(server.admin_addr(), "GET", "/metrics")
        .await
        .body;
    for expected in [
        "steer_latency_samples_total{result=\"accepted\"} 2\n",
        "steer_latency_samples_total{result=\"bad_rtt\"} 2\n",
        "steer_latency_samples_total{result=\"unknown_site\"} 1\n",
        "steer_latency_samples_total{result=\"bad_client\"} 1\n",
        "steer_latency_prefixes 2\n",
    ] {
        assert!(metrics.contains(expected), "no {expected:?} in\n{metrics}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn stale_measurements_fall_back_and_the_matrix_is_reloaded() {
    let server = start("3s").await;
    post_latency(&server, &samples(&[("100.64.9.0/24", "iad", 5.0)])).await;
    // Measured beats the covering matrix prefix...
    wait_for_steered(&server, "100.64.9.0", IAD).await;
    // ...until it is older than max_age: the matrix's /16 answers again.
    wait_for_steered(&server, "100.64.9.0", FRA).await;

    // The matrix is read again on reload.
    std::fs::write(
        server.directory.path().join("latency.csv"),
        "100.64.0.0/16,fra,90\n100.64.0.0/16,iad,20\n",
    )
    .expect("matrix");
    let response = http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(steered_answer(&server, "100.64.9.0").await.0, IAD);

    // A broken matrix is refused with its line, and the old one stays.
    std::fs::write(
        server.directory.path().join("latency.csv"),
        "100.64.0.0/16,fra,90\n100.64.0.0/16,ams,20\n",
    )
    .expect("matrix");
    let response = http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(response.status, 422, "{}", response.body);
    assert!(
        response.body.contains("latency.csv:2") && response.body.contains("unknown site"),
        "{}",
        response.body
    );
    assert_eq!(steered_answer(&server, "100.64.9.0").await.0, IAD);
    server.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_the_measurements_and_a_damaged_state_file_is_skipped() {
    let server = start("1h").await;
    post_latency(&server, &samples(&[("203.0.113.0/24", "fra", 20.0)])).await;
    post_latency(&server, &samples(&[("203.0.113.0/24", "iad", 90.0)])).await;
    wait_for_steered(&server, "203.0.113.0", FRA).await;
    let state_file = server.directory.path().join("steer.latency");
    // Saved on demand; again only once something changed.
    let saved = http_request(server.admin_addr(), "POST", "/latency/save").await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let saved: Value = serde_json::from_str(&saved.body).expect("JSON");
    assert_eq!(saved["written"], true, "{saved}");
    let size = std::fs::metadata(&state_file).expect("state file").len();
    assert_eq!(saved["bytes"], size);
    let again = http_request(server.admin_addr(), "POST", "/latency/save").await;
    assert!(again.body.contains("\"written\":false"), "{}", again.body);
    let saves = status(&server).await["latency"]["saves"].clone();
    assert_eq!(
        (saves["ok"].as_u64(), saves["failed"].as_u64()),
        (Some(1), Some(0)),
        "{saves}"
    );
    assert_eq!(saves["last_bytes"], size, "{saves}");
    let TestServer { directory, running } = server;
    running.expect("running").shutdown().await;
    assert!(state_file.exists(), "the model is written at shutdown");

    // The first answer after the restart already uses the measurements,
    // with no sample posted again.
    let server = TestServer::start_prepared(directory).await;
    assert_eq!(
        steered_answer(&server, "203.0.113.0").await,
        (FRA.to_owned(), 24)
    );
    let restored = status(&server).await;
    assert_eq!(restored["latency"]["prefixes"], 1, "{restored}");

    // A damaged file: the server starts, with an empty model.
    let TestServer { directory, running } = server;
    running.expect("running").shutdown().await;
    let mut bytes = std::fs::read(&state_file).expect("state file");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&state_file, bytes).expect("damage it");
    let server = TestServer::start_prepared(directory).await;
    assert_eq!(steered_answer(&server, "203.0.113.0").await.0, IAD);
    let empty = status(&server).await;
    assert_eq!(empty["latency"]["prefixes"], 0, "{empty}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_margin_holds_across_a_restart() {
    let server = start("1h").await;
    post_latency(
        &server,
        &samples(&[
            ("203.0.113.0/24", "fra", 30.0),
            ("203.0.113.0/24", "iad", 90.0),
        ]),
    )
    .await;
    wait_for_steered(&server, "203.0.113.0", FRA).await;
    // iad gets a little faster than fra, not by the margin: fra is held.
    for _ in 0..20 {
        post_latency(&server, &samples(&[("203.0.113.0/24", "iad", 28.0)])).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        steered_answer(&server, "203.0.113.0").await.0,
        FRA,
        "held before"
    );
    let TestServer { directory, running } = server;
    running.expect("running").shutdown().await;

    // Without the margin's memory the first compile would pick the
    // fastest site, iad, and the network would move on a restart alone.
    let server = TestServer::start_prepared(directory).await;
    assert_eq!(
        steered_answer(&server, "203.0.113.0").await.0,
        FRA,
        "held after"
    );
    // And it stays held through the compiles that follow.
    post_latency(&server, &samples(&[("203.0.113.0/24", "iad", 28.0)])).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        steered_answer(&server, "203.0.113.0").await.0,
        FRA,
        "held later"
    );

    // The file of the previous release (format 1, no choices) still
    // restores the measurements; the margin then starts afresh.
    let TestServer { directory, running } = server;
    running.expect("running").shutdown().await;
    let state_file = directory.path().join("steer.latency");
    let bytes = std::fs::read(&state_file).expect("state file");
    std::fs::write(&state_file, version_1(&bytes)).expect("rewrite as version 1");
    let server = TestServer::start_prepared(directory).await;
    assert_eq!(
        steered_answer(&server, "203.0.113.0").await.0,
        IAD,
        "fastest, no memory"
    );
    let restored = status(&server).await;
    assert_eq!(restored["latency"]["prefixes"], 1, "{restored}");
    server.shutdown().await;
}

/// A version 2 state file rewritten as version 1 (as the previous release
/// wrote it): the names section dropped, the checksum made again.
fn version_1(bytes: &[u8]) -> Vec<u8> {
    let read_u32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    // "STEERLAT", the version, then the number of sites.
    let sites = read_u32(12);
    let mut at = 16;
    for _ in 0..sites {
        at += 2 + usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    }
    let entries = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let entries_end = at + 8 + entries as usize * 26;
    let mut old = bytes[..entries_end].to_vec();
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let checksum = old.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    old.extend_from_slice(&checksum.to_le_bytes());
    old
}

#[tokio::test]
async fn a_state_file_that_cannot_be_written_is_reported_and_the_model_kept() {
    let directory = common::example_directory(&config("1h").replace(
        "[latency]\n",
        "[latency]\nstate_file = \"not-a-directory/steer.latency\"\n",
    ));
    std::fs::write(directory.path().join("latency.csv"), MATRIX).expect("matrix");
    // A file where the state file's directory belongs: Steer cannot make it.
    std::fs::write(directory.path().join("not-a-directory"), "").expect("blocker");
    let server = TestServer::start_prepared(directory).await;
    post_latency(&server, &samples(&[("203.0.113.0/24", "fra", 20.0)])).await;
    post_latency(&server, &samples(&[("203.0.113.0/24", "iad", 90.0)])).await;
    let refused = http_request(server.admin_addr(), "POST", "/latency/save").await;
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert!(
        refused.body.contains("not-a-directory/steer.latency"),
        "{}",
        refused.body
    );
    let saves = status(&server).await["latency"]["saves"].clone();
    assert_eq!(saves["failed"], 1, "{saves}");
    assert!(
        saves["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("not-a-directory"))
    );
    // The model is untouched: answers still follow it.
    wait_for_steered(&server, "203.0.113.0", FRA).await;
    server.shutdown().await;
}
