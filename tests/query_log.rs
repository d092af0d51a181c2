//! The query log over real sockets: with `[query_log]`, sampled queries
//! and their answers land in the file as JSON lines (client, transport,
//! name, type, Client Subnet and scope, rcode, answer, the steered pool
//! and why), written off the query path; `sample = N` logs one in N per
//! worker; a rotated-away file is replaced at the configured path; the
//! counts show in `/metrics`.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Family, QueryOptions, TestServer, Transport, ask, build_query, http_request};
use hickory_proto::rr::RecordType;
use serde_json::Value;

fn config(sample: u64) -> String {
    common::cidr_steered_config("")
        + &format!("\n[query_log]\nfile = \"queries.log\"\nsample = {sample}\n")
}

async fn query(server: &TestServer, transport: Transport, name: &str, subnet: Option<&str>) {
    let options = QueryOptions {
        edns: true,
        client_subnet: subnet.map(|subnet| {
            let (address, length) = subnet.split_once('/').expect("ADDRESS/LENGTH");
            (
                address.parse::<IpAddr>().expect("address"),
                length.parse().expect("length"),
            )
        }),
        ..QueryOptions::default()
    };
    let message = build_query(name, RecordType::A, &options);
    ask(transport, server.dns_addr(transport, Family::V4), &message).await;
}

/// Two queries the dnstap tests look for: the steered name from a UK
/// subnet over UDP, and a missing name (NXDOMAIN) over TCP.
async fn steered_over_udp_and_missing_over_tcp(server: &TestServer) {
    query(
        server,
        Transport::Udp,
        "www.example.test.",
        Some("81.2.69.0/24"),
    )
    .await;
    query(server, Transport::Tcp, "nope.example.test.", None).await;
}

/// The log's lines once it holds `count` of them (the writer flushes when
/// its queue runs dry); panics after 10 s.
async fn lines(path: &Path, count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
            })
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} of {count} lines in the query log:\n{text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn answers_are_logged_as_json_lines() {
    let server = TestServer::start_prepared(common::example_directory(&config(1))).await;
    let log = server.directory.path().join("queries.log");
    query(
        &server,
        Transport::Udp,
        "www.example.test.",
        Some("81.2.69.0/24"),
    )
    .await;
    query(&server, Transport::Tcp, "ns1.example.test.", None).await;
    query(&server, Transport::Udp, "nope.example.test.", None).await;
    query(&server, Transport::Udp, "www.example.org.", None).await;
    let lines = lines(&log, 4).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let steered = &lines[0];
    assert_eq!(steered["transport"], "udp");
    assert_eq!(steered["client"], "127.0.0.1");
    assert_eq!(steered["name"], "www.example.test.");
    assert_eq!(steered["type"], "A");
    assert_eq!(steered["ecs"], "81.2.69.0/24");
    assert_eq!(steered["rcode"], "NOERROR");
    assert!(steered["scope"].as_u64().is_some(), "{steered}");
    assert!(
        steered["answer"][0]
            .as_str()
            .is_some_and(|answer| answer.starts_with("A ")),
        "{steered}"
    );
    // 81.2.69.0/24 is steered to web-fra by the cidr step.
    assert_eq!(steered["steered"]["pool"], "web-fra", "{steered}");
    assert_eq!(steered["answer"][0], "A 192.0.2.10", "{steered}");
    assert_eq!(steered["steered"]["reason"], "policy");
    assert!(
        // RFC 3339 in UTC, e.g. 2026-12-07T09:49:32.084105Z.
        steered["time"]
            .as_str()
            .is_some_and(|time| time.len() == 27 && time.ends_with('Z')),
        "{steered}"
    );
    let static_answer = &lines[1];
    assert_eq!(
        (
            static_answer["transport"].as_str(),
            static_answer["answer"][0].as_str()
        ),
        (Some("tcp"), Some("A 192.0.2.1"))
    );
    assert!(static_answer.get("steered").is_none(), "{static_answer}");
    assert_eq!(lines[2]["rcode"], "NXDOMAIN");
    assert_eq!(lines[3]["rcode"], "REFUSED");

    let status = http_request(server.admin_addr(), "GET", "/status").await;
    let status: Value = serde_json::from_str(&status.body).expect("JSON");
    assert_eq!(status["query_log"]["sample"], 1, "{status}");
    assert!(
        status["query_log"]["file"]
            .as_str()
            .is_some_and(|file| file.ends_with("queries.log")),
        "{status}"
    );
    let metrics = http_request(server.admin_addr(), "GET", "/metrics").await;
    assert!(
        metrics
            .body
            .contains("steer_query_log_total{result=\"written\"} 4\n"),
        "{}",
        metrics.body
    );
    server.shutdown().await;
}

#[tokio::test]
async fn one_query_in_n_is_logged_and_a_rotated_file_is_replaced() {
    let server = TestServer::start_prepared(common::example_directory(&config(5))).await;
    let log = server.directory.path().join("queries.log");
    for _ in 0..20 {
        query(&server, Transport::Udp, "ns1.example.test.", None).await;
    }
    // One UDP worker (the config has one): every fifth of its twenty queries.
    let logged = lines(&log, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(&log, 4).await.len(), 4, "{logged:#?}");

    // Log rotation: the file is renamed away; a new one takes its place.
    std::fs::rename(&log, server.directory.path().join("queries.log.1")).expect("rotate");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..10 {
        query(&server, Transport::Udp, "ns1.example.test.", None).await;
    }
    assert_eq!(lines(&log, 2).await.len(), 2);
    let rotated = std::fs::read_to_string(server.directory.path().join("queries.log.1"))
        .expect("the rotated file");
    assert_eq!(rotated.lines().count(), 4);
    server.shutdown().await;
}

/// `dnstap-read -y` (BIND's) of `path`: the YAML of each message.
fn dnstap_read(path: &Path) -> String {
    let output = common::tools::run_bounded(
        "dnstap-read",
        &["-y", path.to_str().expect("UTF-8 path")],
        None,
    );
    assert!(
        output.success,
        "dnstap-read failed: {}{}",
        output.stdout, output.stderr
    );
    output.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnstap_log_is_read_by_dnstap_read() {
    let config = config(1).replace(
        "file = \"queries.log\"",
        "file = \"queries.dnstap\"\nformat = \"dnstap\"",
    );
    let server = TestServer::start_prepared(common::example_directory(&config)).await;
    steered_over_udp_and_missing_over_tcp(&server).await;
    // Rotated away: that stream is ended, and a new file begins one.
    let path = server.directory.path().join("queries.dnstap");
    let rotated = server.directory.path().join("queries.dnstap.1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::rename(&path, &rotated).expect("rotate");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    query(&server, Transport::Udp, "ns1.example.test.", None).await;
    // Stopped: the writer ends the stream, and dnstap-read reads it whole.
    // (The directory lives until the files are read.)
    let _directory = server.stop().await;
    let after = dnstap_read(&path);
    assert_eq!(after.matches("type: AUTH_QUERY").count(), 1, "{after}");
    assert!(after.contains("ns1.example.test"), "{after}");
    let yaml = dnstap_read(&rotated);
    let messages: Vec<&str> = yaml
        .split("\n---")
        .filter(|part| part.contains("type:"))
        .collect();
    assert_eq!(messages.len(), 4, "{yaml}");
    let kinds: Vec<bool> = messages
        .iter()
        .map(|message| message.contains("type: AUTH_QUERY"))
        .collect();
    assert_eq!(kinds, [true, false, true, false], "{yaml}");
    for message in &messages {
        assert!(
            message.contains("query_address: \"127.0.0.1\""),
            "{message}"
        );
        assert!(message.contains("identity:"), "{message}");
    }
    assert!(
        messages[0].contains("socket_protocol: UDP"),
        "{}",
        messages[0]
    );
    assert!(
        messages[2].contains("socket_protocol: TCP"),
        "{}",
        messages[2]
    );
    // The messages themselves, as dig would print them: the steered
    // answer for the client's subnet, and the NXDOMAIN.
    assert!(messages[0].contains("www.example.test"), "{}", messages[0]);
    assert!(messages[1].contains("192.0.2.10"), "{}", messages[1]);
    assert!(messages[3].contains("NXDOMAIN"), "{}", messages[3]);
}

/// `fstrm_capture` (fstrm-bin, the Frame Streams reference collector)
/// listening with `listen` (`-u PATH`, or `-a ADDRESS -p PORT`) and
/// writing what it receives to `output`; once `ready` says it listens.
async fn capture(listen: &[&str], output: &Path, ready: impl Fn() -> bool) -> common::Process {
    let mut arguments = vec!["-t", "protobuf:dnstap.Dnstap"];
    arguments.extend_from_slice(listen);
    arguments.extend_from_slice(&["-w", output.to_str().expect("UTF-8 path")]);
    let process = common::Process(
        std::process::Command::new("fstrm_capture")
            .args(&arguments)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("fstrm_capture (apt-get install fstrm-bin)"),
    );
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "fstrm_capture did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process
}

/// Stops a collector as its service manager would (SIGTERM), so that it
/// ends its file.
fn stop_capture(mut capture: common::Process) {
    let pid = i32::try_from(capture.0.id()).expect("pid");
    // SAFETY: kill(2) on our own child, which is not reaped yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let started = Instant::now();
    while capture.0.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "fstrm_capture did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Once `/metrics` is `wanted` (named `what`), sending a query every
/// 100 ms meanwhile (a collector that went away is noticed at the next
/// write); panics after 15 s.
async fn until_metrics(server: &TestServer, what: &str, wanted: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        let metrics = http_request(server.admin_addr(), "GET", "/metrics").await;
        if wanted(&metrics.body) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never {what}:\n{}",
            metrics.body
        );
        query(server, Transport::Udp, "ns1.example.test.", None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Once the `steer_query_log_connected` gauge says `connected`.
async fn until_connected(server: &TestServer, connected: bool) {
    let line = format!("steer_query_log_connected {}\n", u8::from(connected));
    until_metrics(server, &line, |body| body.contains(&line)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnstap_goes_to_a_collector_that_comes_and_goes() {
    let config = config(1).replace("file = \"queries.log\"", "socket = \"unix:collector.sock\"");
    // The collector is not there yet: Steer starts and answers anyway.
    let server = TestServer::start_prepared(common::example_directory(&config)).await;
    let directory = server.directory.path().to_path_buf();
    let socket = directory.join("collector.sock");
    until_connected(&server, false).await;
    // Its entries are dropped meanwhile.
    until_metrics(&server, "entries dropped", |body| {
        body.contains("steer_query_log_total{result=\"dropped\"}")
            && !body.contains("steer_query_log_total{result=\"dropped\"} 0\n")
    })
    .await;
    let status = http_request(server.admin_addr(), "GET", "/status").await;
    let status: Value = serde_json::from_str(&status.body).expect("JSON");
    assert_eq!(status["query_log"]["format"], "dnstap", "{status}");
    assert_eq!(status["query_log"]["file"], Value::Null, "{status}");
    assert_eq!(
        status["query_log"]["socket"].as_str(),
        Some(format!("unix:{}", socket.display()).as_str()),
        "{status}"
    );

    // It starts: Steer connects within its backoff, and what is answered
    // from then on reaches it.
    let first = directory.join("first.dnstap");
    let collector = capture(
        &["-u", socket.to_str().expect("UTF-8 path")],
        &first,
        || socket.exists(),
    )
    .await;
    until_connected(&server, true).await;
    steered_over_udp_and_missing_over_tcp(&server).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // It restarts: Steer notices, and connects to the new one.
    stop_capture(collector);
    until_connected(&server, false).await;
    let second = directory.join("second.dnstap");
    let _ = std::fs::remove_file(&socket);
    let collector = capture(
        &["-u", socket.to_str().expect("UTF-8 path")],
        &second,
        || socket.exists(),
    )
    .await;
    until_connected(&server, true).await;
    query(&server, Transport::Udp, "www.example.test.", None).await;
    // Stopped: Steer ends its stream (STOP, FINISH) before the collector
    // ends its file.
    let _directory = server.stop().await;
    stop_capture(collector);

    let yaml = dnstap_read(&first);
    let queries: Vec<&str> = yaml
        .split("\n---")
        .filter(|part| part.contains("type: AUTH_QUERY"))
        .collect();
    assert!(
        queries
            .iter()
            .any(|query| query.contains("www.example.test")
                && query.contains("socket_protocol: UDP")),
        "{yaml}"
    );
    assert!(
        queries
            .iter()
            .any(|query| query.contains("nope.example.test")
                && query.contains("socket_protocol: TCP")),
        "{yaml}"
    );
    assert!(yaml.contains("192.0.2.10"), "{yaml}");
    assert!(yaml.contains("NXDOMAIN"), "{yaml}");
    let yaml = dnstap_read(&second);
    assert!(yaml.contains("www.example.test"), "{yaml}");
    assert!(!yaml.contains("nope.example.test"), "{yaml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnstap_goes_to_a_collector_over_tcp() {
    let port = common::free_port();
    let directory = common::example_directory(&config(1).replace(
        "file = \"queries.log\"",
        &format!("socket = \"tcp:127.0.0.1:{port}\""),
    ));
    let output = directory.path().join("captured.dnstap");
    let port_text = port.to_string();
    let collector = capture(&["-a", "127.0.0.1", "-p", &port_text], &output, || {
        // Listening: a connection is accepted (and, without a handshake,
        // dropped by the collector).
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let server = TestServer::start_prepared(directory).await;
    until_connected(&server, true).await;
    query(&server, Transport::Tcp, "www.example.test.", None).await;
    let directory = server.stop().await;
    stop_capture(collector);
    let yaml = dnstap_read(&directory.path().join("captured.dnstap"));
    assert!(
        yaml.contains("www.example.test") && yaml.contains("socket_protocol: TCP"),
        "{yaml}"
    );
    assert!(yaml.contains("type: AUTH_RESPONSE"), "{yaml}");
}
