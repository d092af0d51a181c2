//! Latency measurements shared between nodes, end to end: real servers on
//! loopback that list each other in `[peers]`, real-user measurements
//! posted to one of them, and real DNS queries with EDNS Client Subnet
//! showing that every node steers on them.
//!
//! `www.example.test A` is steered by `["latency", "priority"]` over
//! web-iad (listed first, so it answers until measurements say otherwise)
//! and web-fra; the model is recompiled every 200 ms and the peers'
//! journals are read every 200 ms.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestServer, http_request, steered_answer, wait_for_steered};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{FRA, IAD};
const TOKEN: &str = "fleet-token-0123456789";

/// A node's config: admin on `admin` (port 0 picks one), reading the
/// journals of `peers`, with the token file when `token` is set.
fn config(admin: &str, peers: &[SocketAddr], token: bool) -> String {
    let pools = common::WEB_POOLS;
    let mut text = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "{admin}"
{admin_token}
[latency]
compile_interval = "200ms"
max_age = "1h"
{pools}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{{ latency = {{ margin_percent = 10, margin_ms = 5 }} }}, "priority"]
"#,
        admin_token = if token {
            "token_file = \"fleet.token\"\n"
        } else {
            ""
        }
    );
    if !peers.is_empty() {
        let urls: Vec<String> = peers
            .iter()
            .map(|address| format!("\"http://{address}\""))
            .collect();
        text.push_str(&format!(
            "\n[peers]\nurls = [{}]\ninterval = \"200ms\"\n{}",
            urls.join(", "),
            if token {
                "token_file = \"fleet.token\"\n"
            } else {
                ""
            }
        ));
    }
    text
}

async fn start(admin: &str, token: bool) -> TestServer {
    let directory = common::example_directory(&config(admin, &[], token));
    std::fs::write(directory.path().join("fleet.token"), format!("{TOKEN}\n")).expect("token");
    TestServer::start_prepared(directory).await
}

/// Rewrites `server`'s config to read `peers` and reloads it.
async fn set_peers(server: &TestServer, admin: &str, peers: &[SocketAddr], token: bool) {
    std::fs::write(
        server.directory.path().join("steer.toml"),
        config(admin, peers, token),
    )
    .expect("config");
    let reply = request(server.admin_addr(), "POST", "/reload", token).await;
    assert_eq!(reply.0, 200, "reload: {}", reply.1);
}

/// One admin request, with the fleet token when `token` is set.
async fn request(address: SocketAddr, method: &str, path: &str, token: bool) -> (u16, String) {
    if !token {
        let response = http_request(address, method, path).await;
        return (response.status, response.body);
    }
    send(address, method, path, "", Some(TOKEN)).await
}

/// A raw HTTP/1.1 exchange with an optional bearer token and body.
async fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let authorization = token.map_or_else(String::new, |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Content-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut raw))
        .await
        .expect("an answer within 30 s")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

async fn post_samples(server: &TestServer, rows: &[(&str, &str, f64)], token: bool) -> Value {
    let samples: Vec<Value> = rows
        .iter()
        .map(|(client, site, rtt)| json!({"client": client, "site": site, "rtt_ms": rtt}))
        .collect();
    let body = json!({ "samples": samples }).to_string();
    let (code, reply) = send(
        server.admin_addr(),
        "POST",
        "/latency",
        &body,
        token.then_some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    serde_json::from_str(&reply).expect("JSON")
}

async fn status(server: &TestServer, token: bool) -> Value {
    let (code, body) = request(server.admin_addr(), "GET", "/status", token).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// Polls `server`'s feed of the peer at `peer` (plain HTTP) until `check`
/// holds; returns the feed. Panics after 10 s.
async fn wait_for_feed(
    server: &TestServer,
    peer: SocketAddr,
    token: bool,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for_feed_url(server, &format!("http://{peer}"), token, check).await
}

/// Polls `server`'s feed whose URL is `url` until `check` holds; returns
/// the feed. Panics after 10 s.
async fn wait_for_feed_url(
    server: &TestServer,
    url: &str,
    token: bool,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let status = status(server, token).await;
        let feed = status["latency"]["peers"]
            .as_array()
            .and_then(|feeds| feeds.iter().find(|feed| feed["url"] == url))
            .cloned()
            .unwrap_or(Value::Null);
        if check(&feed) {
            return feed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the feed of {url} never got there: {feed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback port free now, for a node that must come back on the same
/// address after a restart.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn samples_posted_to_one_node_steer_every_node_and_are_counted_once() {
    let nodes = [
        start("127.0.0.1:0", false).await,
        start("127.0.0.1:0", false).await,
        start("127.0.0.1:0", false).await,
    ];
    let admins: Vec<SocketAddr> = nodes.iter().map(TestServer::admin_addr).collect();
    for (index, node) in nodes.iter().enumerate() {
        let others: Vec<SocketAddr> = admins
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, address)| *address)
            .collect();
        set_peers(node, &admins[index].to_string(), &others, false).await;
    }
    for node in &nodes {
        assert_eq!(
            steered_answer(node, "203.0.113.0").await.0,
            IAD,
            "no data: iad first"
        );
    }

    // A beacon reaches the first node only.
    let reply = post_samples(
        &nodes[0],
        &[
            ("203.0.113.5", "fra", 30.0),
            ("203.0.113.0/24", "iad", 90.0),
        ],
        false,
    )
    .await;
    assert_eq!(reply["accepted"], 2);
    for node in &nodes {
        wait_for_steered(node, "203.0.113.0", FRA).await;
    }

    // Each sample counted once where it was posted, once per peer that read
    // it, and never passed on: the third node reads nothing from the second.
    let first = status(&nodes[0], false).await;
    assert_eq!(first["latency"]["samples_accepted"], 2);
    assert_eq!(first["latency"]["journal"], 2);
    for node in &nodes[1..] {
        let feed = wait_for_feed(node, admins[0], false, |feed| feed["accepted"] == 2).await;
        assert_eq!(feed["missed"], 0);
        assert_eq!(feed["last_error"], Value::Null);
        let own = status(node, false).await;
        assert_eq!(own["latency"]["samples_accepted"], 0, "{own}");
        assert_eq!(
            own["latency"]["journal"], 0,
            "fetched samples are not journaled"
        );
    }
    let third = status(&nodes[2], false).await;
    let from_second = third["latency"]["peers"]
        .as_array()
        .and_then(|feeds| {
            feeds
                .iter()
                .find(|feed| feed["url"] == format!("http://{}", admins[1]).as_str())
        })
        .cloned()
        .expect("a feed of the second node");
    assert_eq!(from_second["accepted"], 0, "{from_second}");
    assert!(from_second["fetches"].as_u64() > Some(0), "{from_second}");

    // Still more: a later sample moves the network back on every node.
    post_samples(&nodes[0], &[("203.0.113.0/24", "fra", 300.0)], false).await;
    for node in &nodes {
        wait_for_steered(node, "203.0.113.0", IAD).await;
    }
    let metrics = request(admins[1], "GET", "/metrics", false).await.1;
    let line = format!(
        "steer_latency_peer_samples_total{{peer=\"http://{}\",result=\"accepted\"}} 3\n",
        admins[0]
    );
    assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn a_restarted_peer_is_read_again_from_its_oldest_sample() {
    let port = free_port();
    let fixed = format!("127.0.0.1:{port}");
    let reader = start("127.0.0.1:0", false).await;
    let reader_admin = reader.admin_addr().to_string();
    let peer = start(&fixed, false).await;
    let peer_admin = peer.admin_addr();
    set_peers(&peer, &fixed, &[reader.admin_addr()], false).await;
    set_peers(&reader, &reader_admin, &[peer_admin], false).await;

    let rows = [
        ("203.0.113.0/24", "fra", 30.0),
        ("198.18.0.0/24", "fra", 30.0),
        ("198.18.1.0/24", "fra", 30.0),
    ];
    post_samples(&peer, &rows, false).await;
    wait_for_feed(&reader, peer_admin, false, |feed| feed["accepted"] == 3).await;

    // The peer restarts on the same address, with an empty journal that
    // numbers from 0 again. Five new samples: a reader that kept its old
    // cursor (3) would skip the first three of them.
    peer.shutdown().await;
    let directory = common::example_directory(&config(&fixed, &[reader.admin_addr()], false));
    let peer = TestServer::start_prepared(directory).await;
    let five: Vec<(String, &str, f64)> = (0..5)
        .map(|index| (format!("198.19.{index}.0/24"), "iad", 40.0))
        .collect();
    let rows: Vec<(&str, &str, f64)> = five
        .iter()
        .map(|(client, site, rtt)| (client.as_str(), *site, *rtt))
        .collect();
    post_samples(&peer, &rows, false).await;
    let feed = wait_for_feed(&reader, peer_admin, false, |feed| feed["accepted"] == 8).await;
    assert_eq!(feed["missed"], 0, "{feed}");
    // Nothing more arrives than was posted.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let feed = wait_for_feed(&reader, peer_admin, false, |_| true).await;
    assert_eq!(feed["accepted"], 8, "{feed}");
    peer.shutdown().await;
    reader.shutdown().await;
}

#[tokio::test]
async fn the_journal_needs_the_admin_token_and_names_bad_cursors() {
    let reader = start("127.0.0.1:0", true).await;
    let writer = start("127.0.0.1:0", true).await;
    let writer_admin = writer.admin_addr();
    set_peers(
        &writer,
        &writer_admin.to_string(),
        &[reader.admin_addr()],
        true,
    )
    .await;
    post_samples(&writer, &[("203.0.113.0/24", "fra", 30.0)], true).await;

    let (code, body) = request(writer_admin, "GET", "/latency/journal?from=0", false).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = request(writer_admin, "GET", "/latency/journal?from=0", true).await;
    assert_eq!(code, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("page");
    assert_eq!(page["samples"][0]["client"], "203.0.113.0/24");
    assert_eq!(page["samples"][0]["site"], "fra");
    assert_eq!(page["next"], 1);
    assert_eq!(page["more"], false);
    let (code, body) = request(writer_admin, "GET", "/latency/journal?from=x", true).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("expected ?from=N&epoch=E"), "{body}");
    let (code, body) = request(writer_admin, "GET", "/latency/journal?limit=0", true).await;
    assert_eq!(code, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("page");
    assert_eq!(
        (page["next"].as_u64(), page["more"].as_bool()),
        (Some(0), Some(true))
    );

    // A reader without the token is refused and says so; with it, it reads.
    set_peers(
        &reader,
        &reader.admin_addr().to_string(),
        &[writer_admin],
        true,
    )
    .await;
    wait_for_feed(&reader, writer_admin, true, |feed| feed["accepted"] == 1).await;
    std::fs::write(
        reader.directory.path().join("steer.toml"),
        config(&reader.admin_addr().to_string(), &[writer_admin], true)
            .replace("[peers]\n", "[peers]\n# no token\n")
            .replace(
                "interval = \"200ms\"\ntoken_file = \"fleet.token\"\n",
                "interval = \"200ms\"\n",
            ),
    )
    .expect("config");
    let (code, body) = request(reader.admin_addr(), "POST", "/reload", true).await;
    assert_eq!(code, 200, "{body}");
    let feed = wait_for_feed(&reader, writer_admin, true, |feed| {
        feed["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("401"))
    })
    .await;
    assert_eq!(feed["accepted"], 1, "a failed fetch loses nothing: {feed}");
    reader.shutdown().await;
    writer.shutdown().await;
}

#[tokio::test]
async fn a_node_listed_as_its_own_peer_or_twice_is_read_once() {
    let a = start("127.0.0.1:0", false).await;
    let b = start("127.0.0.1:0", false).await;
    let (a_admin, b_admin) = (a.admin_addr(), b.admin_addr());
    set_peers(&b, &b_admin.to_string(), &[a_admin], false).await;
    // A config shared by the fleet lists every node, this one included;
    // b is listed a second time by name.
    let b_by_name = format!("http://localhost:{}", b_admin.port());
    let text = config(&a_admin.to_string(), &[a_admin, b_admin], false).replace(
        &format!("\"http://{b_admin}\"]"),
        &format!("\"http://{b_admin}\", \"{b_by_name}\"]"),
    );
    std::fs::write(a.directory.path().join("steer.toml"), text).expect("config");
    let (code, body) = request(a_admin, "POST", "/reload", false).await;
    assert_eq!(code, 200, "{body}");

    post_samples(
        &a,
        &[
            ("203.0.113.0/24", "fra", 30.0),
            ("198.18.0.0/24", "fra", 30.0),
        ],
        false,
    )
    .await;
    post_samples(&b, &[("198.18.1.0/24", "iad", 40.0)], false).await;
    wait_for_feed(&a, b_admin, false, |feed| feed["accepted"] == 1).await;
    let itself = wait_for_feed(&a, a_admin, false, |feed| !feed["ignored"].is_null()).await;
    assert_eq!(itself["ignored"], "this node itself", "{itself}");
    assert_eq!(
        itself["accepted"], 0,
        "its own samples are not recorded again: {itself}"
    );
    let status = status(&a, false).await;
    let again = status["latency"]["peers"]
        .as_array()
        .and_then(|feeds| feeds.iter().find(|feed| feed["url"] == b_by_name.as_str()))
        .cloned()
        .expect("the feed of b by name");
    assert_eq!(
        again["ignored"],
        format!("the same node as http://{b_admin}").as_str(),
        "{again}"
    );
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(status["latency"]["samples_accepted"], 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_peers_listener_serves_the_view_and_journal_and_nothing_else() {
    let writer = start("127.0.0.1:0", true).await;
    let reader = start("127.0.0.1:0", true).await;
    let (writer_admin, reader_admin) = (writer.admin_addr(), reader.admin_addr());
    // The writer's config gets a peers' listener; it opens at start.
    let text = config(&writer_admin.to_string(), &[reader_admin], true)
        .replace("[peers]\n", "[peers]\nlisten = \"127.0.0.1:0\"\n")
        .replace(&format!("\"{writer_admin}\""), "\"127.0.0.1:0\"");
    writer.shutdown().await;
    let directory = common::example_directory(&text);
    std::fs::write(directory.path().join("fleet.token"), format!("{TOKEN}\n")).expect("token");
    let writer = TestServer::start_prepared(directory).await;
    let listener = writer.running().peers.expect("a peers' listener");
    let status = status(&writer, true).await;
    assert_eq!(
        status["listen"]["peers"],
        listener.to_string().as_str(),
        "{status}"
    );

    post_samples(&writer, &[("203.0.113.0/24", "fra", 30.0)], true).await;
    let (code, body) = request(listener, "GET", "/latency/journal", false).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = request(listener, "GET", "/latency/journal", true).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("203.0.113.0/24"), "{body}");
    let (code, body) = request(listener, "GET", "/health/view", true).await;
    assert_eq!(code, 200, "{body}");
    // Nothing of the admin API is there, token or not.
    for (method, path) in [
        ("GET", "/status"),
        ("POST", "/reload"),
        ("POST", "/pools/web-fra/drain"),
    ] {
        let (code, body) = request(listener, method, path, true).await;
        assert_eq!(code, 404, "{method} {path}: {body}");
    }

    // A peer reads the journal through it.
    set_peers(&reader, &reader_admin.to_string(), &[listener], true).await;
    wait_for_feed(&reader, listener, true, |feed| feed["accepted"] == 1).await;
    wait_for_steered(&reader, "203.0.113.0", FRA).await;
    writer.shutdown().await;
    reader.shutdown().await;
}

#[test]
fn a_peers_listener_beyond_loopback_needs_a_token() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let text = config(
        "127.0.0.1:8053",
        &["127.0.0.1:9".parse().expect("address")],
        false,
    )
    .replace("[peers]\n", "[peers]\nlisten = \"192.0.2.1:8054\"\n");
    common::write_example(directory.path(), &text);
    let errors = common::check_errors(directory.path());
    assert!(
        errors.contains("peers.listen: 192.0.2.1:8054 is not a loopback address")
            && errors.contains("needs peers.token_file"),
        "{errors}"
    );
}

#[tokio::test]
async fn peers_read_each_other_over_tls_trusting_the_fleet_ca_alone() {
    let reader = start("127.0.0.1:0", true).await;
    let reader_admin = reader.admin_addr();
    // The writer serves its peers' listener over TLS.
    let directory =
        common::example_directory(&config("127.0.0.1:0", &[reader_admin], true).replace(
            "[peers]\n",
            "[peers]\nlisten = \"127.0.0.1:0\"\ntls_certificate = \"peer.pem\"\n\
             tls_key = \"peer.key\"\n",
        ));
    std::fs::write(directory.path().join("fleet.token"), format!("{TOKEN}\n")).expect("token");
    common::write_certificate(directory.path(), "peer");
    let certificates = directory.path().to_path_buf();
    let writer = TestServer::start_prepared(directory).await;
    let listener = writer.running().peers.expect("a peers' listener");
    post_samples(&writer, &[("203.0.113.0/24", "fra", 30.0)], true).await;

    // Plain HTTP gets no answer from a TLS listener.
    let mut stream = TcpStream::connect(listener).await.expect("connect");
    let plain = format!(
        "GET /latency/journal HTTP/1.1\r\nHost: {listener}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(plain.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    assert!(
        !String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"),
        "the listener answered in clear"
    );

    // A reader that trusts the system's roots only refuses the certificate.
    std::fs::copy(
        certificates.join("peer-ca.pem"),
        reader.directory.path().join("peer-ca.pem"),
    )
    .expect("copy");
    let https = format!("https://{listener}");
    let with_peers = |ca: bool| {
        config(&reader_admin.to_string(), &[listener], true)
            .replace(&format!("\"http://{listener}\""), &format!("\"{https}\""))
            .replace(
                "[peers]\n",
                if ca {
                    "[peers]\nca_file = \"peer-ca.pem\"\n"
                } else {
                    "[peers]\n"
                },
            )
    };
    std::fs::write(
        reader.directory.path().join("steer.toml"),
        with_peers(false),
    )
    .expect("config");
    let (code, body) = request(reader_admin, "POST", "/reload", true).await;
    assert_eq!(code, 200, "{body}");
    let feed = wait_for_feed_url(&reader, &https, true, |feed| {
        feed["last_error"]
            .as_str()
            .is_some_and(|error| error.to_lowercase().contains("certificate"))
    })
    .await;
    assert_eq!(feed["accepted"], 0, "{feed}");

    // Trusting the fleet CA, it reads the journal.
    std::fs::write(reader.directory.path().join("steer.toml"), with_peers(true)).expect("config");
    let (code, body) = request(reader_admin, "POST", "/reload", true).await;
    assert_eq!(code, 200, "{body}");
    let feed = wait_for_feed_url(&reader, &https, true, |feed| feed["accepted"] == 1).await;
    assert_eq!(feed["last_error"], Value::Null, "{feed}");
    wait_for_steered(&reader, "203.0.113.0", FRA).await;
    writer.shutdown().await;
    reader.shutdown().await;
}

#[test]
fn tls_files_that_do_not_fit_are_refused_naming_the_key() {
    let directory = tempfile::tempdir().expect("temporary directory");
    common::write_certificate(directory.path(), "peer");
    // A key of another certificate.
    let other = tempfile::tempdir().expect("temporary directory");
    common::write_certificate(other.path(), "peer");
    std::fs::copy(
        other.path().join("peer.key"),
        directory.path().join("other.key"),
    )
    .expect("copy");
    std::fs::write(directory.path().join("empty.pem"), "").expect("empty");
    let text = config(
        "127.0.0.1:8053",
        &["127.0.0.1:9".parse().expect("address")],
        false,
    )
    .replace(
        "[peers]\n",
        "[peers]\nlisten = \"127.0.0.1:8054\"\ntls_certificate = \"peer.pem\"\n\
             tls_key = \"other.key\"\nca_file = \"empty.pem\"\n",
    );
    common::write_example(directory.path(), &text);
    let errors = common::check_errors(directory.path());
    assert!(
        errors.contains("peers.tls_certificate:") && errors.contains("does not fit"),
        "{errors}"
    );
    assert!(
        errors.contains("peers.ca_file:") && errors.contains("no certificate"),
        "{errors}"
    );
    assert!(
        !errors.contains("PRIVATE KEY"),
        "the key never shows: {errors}"
    );
}
