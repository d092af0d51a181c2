//! Alias pools over real sockets: a zone apex answers the addresses of a
//! name served elsewhere, resolved through `[resolver]`. A second Steer
//! serves the target zone and stands in for the recursive resolver (it
//! answers questions with the recursion-desired bit like any other).
//!
//! Checked: the apex answers the target's A and AAAA records (through a
//! CNAME at the target) with the steered TTL and AA; a change at the
//! target reaches the answers once its TTL runs out; while the resolver
//! is gone the last addresses keep being answered and `/status` and
//! `/metrics` say why; a pool added by a reload answers from the reload's
//! first table on; an alias nobody can resolve is SERVFAIL alone and is
//! passed over by `healthy`.

mod common;

use std::time::Duration;

use common::{Family, TestServer, Transport};

/// The target zone: `apex.cdn.test` is a CNAME to `lb.cdn.test`, whose
/// records live one second so that Steer asks again at `min_refresh`.
fn cdn_zone(v4: &str) -> String {
    format!(
        "$ORIGIN cdn.test.\n$TTL 1\n\
         @    IN SOA ns1 hostmaster {serial} 7200 900 1209600 1\n\
         @    IN NS  ns1\n\
         ns1  IN A   192.0.2.53\n\
         apex IN CNAME lb\n\
         lb   IN A   {v4}\n\
         lb   IN A   192.0.2.81\n\
         lb   IN AAAA 2001:db8::80\n\
         shop IN A   198.51.100.44\n",
        serial = if v4 == "192.0.2.80" { 1 } else { 2 },
    )
}

/// The upstream "resolver": a Steer serving `cdn.test`.
async fn start_upstream() -> TestServer {
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(directory.path().join("zones")).expect("zones");
    std::fs::write(
        directory.path().join("zones/cdn.test.zone"),
        cdn_zone("192.0.2.80"),
    )
    .expect("zone");
    std::fs::write(
        directory.path().join("steer.toml"),
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\nworkers = 1\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    TestServer::start_prepared(directory).await
}

/// Steer serving `example.test` with its apex steered (A and AAAA) to the
/// alias pool of `apex.cdn.test.`, asking `resolver`; `extra` is added.
fn config(resolver: &str, extra: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[resolver]
servers = ["{resolver}"]
timeout = "300ms"
min_refresh = "1s"

[sites.edge]

[pools.cdn]
site = "edge"
alias = "apex.cdn.test."

[[steer]]
name = "example.test."
type = "A"
ttl = 45
pools = ["cdn"]
policy = [{{ first = 8 }}]

[[steer]]
name = "example.test."
type = "AAAA"
ttl = 45
pools = ["cdn"]
policy = [{{ first = 8 }}]
{extra}"#
    )
}

/// `dig +norec @server NAME TYPE`: the status and the answer lines
/// (owner, TTL, class, type, data), sorted.
async fn dig(server: &TestServer, name: &str, record_type: &str) -> (String, Vec<String>) {
    let output = common::tools::dig_text(
        server.dns_addr(Transport::Udp, Family::V4),
        vec!["+norec".to_owned(), name.to_owned(), record_type.to_owned()],
    )
    .await;
    let (status, mut answers) = common::tools::status_and_answers(&output);
    answers.sort();
    if status == "NOERROR" {
        assert!(output.contains(" aa"), "not authoritative:\n{output}");
    }
    (status, answers)
}

async fn status_json(server: &TestServer) -> serde_json::Value {
    let response = common::http_request(server.admin_addr(), "GET", "/status").await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("status JSON")
}

/// Polls `dig` until `name A` answers `expected`; panics after 10 s.
async fn wait_for_answers(server: &TestServer, name: &str, expected: &[&str]) {
    let started = std::time::Instant::now();
    loop {
        let (_, answers) = dig(server, name, "A").await;
        if answers == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} still answers {answers:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apex_follows_its_target_and_keeps_the_last_addresses_while_the_resolver_is_gone() {
    let upstream = start_upstream().await;
    let resolver = upstream.dns_addr(Transport::Udp, Family::V4).to_string();
    let directory = common::example_directory(&config(&resolver, ""));
    let server = TestServer::start_prepared(directory).await;

    // Resolved before the first query: the target's records, the
    // steered TTL, AA.
    assert_eq!(
        dig(&server, "example.test.", "A").await,
        (
            "NOERROR".to_owned(),
            vec![
                "example.test. 45 IN A 192.0.2.80".to_owned(),
                "example.test. 45 IN A 192.0.2.81".to_owned(),
            ]
        )
    );
    assert_eq!(
        dig(&server, "example.test.", "AAAA").await,
        (
            "NOERROR".to_owned(),
            vec!["example.test. 45 IN AAAA 2001:db8::80".to_owned()]
        )
    );
    let status = status_json(&server).await;
    let target = &status["aliases"][0];
    assert_eq!(target["target"], "apex.cdn.test.");
    assert_eq!(target["resolved"], true);
    assert_eq!(target["server"], resolver.as_str());
    assert_eq!(target["ttl"], 1);
    assert_eq!(
        target["addresses"],
        serde_json::json!(["192.0.2.80", "192.0.2.81", "2001:db8::80"])
    );

    // `steer explain` resolves the targets itself.
    let explained = common::run_steer(
        &[
            "explain",
            "--config",
            "steer.toml",
            "example.test.",
            "A",
            "--client",
            "192.0.2.1",
        ],
        server.directory.path(),
    )
    .await;
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        explained.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&explained.stderr)
    );
    assert!(
        text.contains("192.0.2.80") && text.contains("192.0.2.81"),
        "{text}"
    );

    // The target moves; the apex follows once its TTL is out.
    std::fs::write(
        upstream.zones_dir().join("cdn.test.zone"),
        cdn_zone("203.0.113.5"),
    )
    .expect("zone");
    let reloaded = common::http_request(upstream.admin_addr(), "POST", "/reload").await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    wait_for_answers(
        &server,
        "example.test.",
        &[
            "example.test. 45 IN A 192.0.2.81",
            "example.test. 45 IN A 203.0.113.5",
        ],
    )
    .await;

    // A reload that adds an alias pool answers from its first table on.
    let shop = r#"
[pools.shop]
site = "edge"
alias = "shop.cdn.test."

[[steer]]
name = "shop.example.test."
type = "A"
ttl = 30
pools = ["shop"]
policy = [{ first = 8 }]
"#;
    std::fs::write(
        server.directory.path().join("steer.toml"),
        config(&resolver, shop),
    )
    .expect("config");
    let reloaded = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    assert_eq!(
        dig(&server, "shop.example.test.", "A").await,
        (
            "NOERROR".to_owned(),
            vec!["shop.example.test. 30 IN A 198.51.100.44".to_owned()]
        )
    );

    // The resolver goes away: the last addresses stay (max_stale is a
    // day), and /status and /metrics say what fails.
    upstream.shutdown().await;
    let started = std::time::Instant::now();
    let failing = loop {
        let status = status_json(&server).await;
        let target = status["aliases"]
            .as_array()
            .expect("aliases")
            .iter()
            .find(|target| target["target"] == "apex.cdn.test.")
            .expect("apex target")
            .clone();
        if target["failures"].as_u64().unwrap_or(0) > 0 {
            break target;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failure recorded: {target}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failing["resolved"], true);
    let error = failing["last_error"].as_str().expect("last error");
    assert!(error.starts_with(&format!("{resolver}: ")), "{error}");
    assert_eq!(
        dig(&server, "example.test.", "A").await.1,
        vec![
            "example.test. 45 IN A 192.0.2.81".to_owned(),
            "example.test. 45 IN A 203.0.113.5".to_owned(),
        ]
    );
    let metrics = common::http_request(server.admin_addr(), "GET", "/metrics").await;
    assert!(
        metrics
            .body
            .contains("steer_alias_resolved{target=\"apex.cdn.test.\"} 1\n"),
        "{}",
        metrics.body
    );
    let failed_line = metrics
        .body
        .lines()
        .find(|line| {
            line.starts_with(
                "steer_alias_resolutions_total{target=\"apex.cdn.test.\",result=\"failed\"}",
            )
        })
        .expect("failed resolutions counted");
    assert_ne!(failed_line.rsplit(' ').next(), Some("0"), "{failed_line}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_nobody_resolves_is_servfail_alone_and_passed_over_by_healthy() {
    // A resolver that never answers: a bound socket nobody reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    let resolver = silent.local_addr().expect("address").to_string();
    let fallback = r#"
[pools.static]
site = "edge"
addresses = ["192.0.2.99"]

[[steer]]
name = "www.example.test."
type = "A"
ttl = 20
pools = ["cdn", "static"]
policy = ["healthy", "priority"]
"#;
    let directory = common::example_directory(&config(&resolver, fallback));
    let server = TestServer::start_prepared(directory).await;
    // Nothing known: SERVFAIL, which resolvers retry, not a cached NODATA.
    let (status, answers) = dig(&server, "example.test.", "A").await;
    assert_eq!(status, "SERVFAIL");
    assert!(answers.is_empty(), "{answers:?}");
    // With another pool behind `healthy`, the empty alias pool is down.
    assert_eq!(
        dig(&server, "www.example.test.", "A").await,
        (
            "NOERROR".to_owned(),
            vec!["www.example.test. 20 IN A 192.0.2.99".to_owned()]
        )
    );
    let status = status_json(&server).await;
    let target = &status["aliases"][0];
    assert_eq!(target["resolved"], false);
    assert!(
        target["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("no answer to")),
        "{target}"
    );
    drop(silent);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_check_warns_when_the_resolver_is_steer_itself() {
    let text = config("127.0.0.1:5300", "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:5300\"]",
    );
    let directory = common::example_directory(&text);
    let output = common::run_steer(&["check", "--config", "steer.toml"], directory.path()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("resolver.servers[0]: 127.0.0.1:5300 is this server, which does not recurse"),
        "{stderr}"
    );
}
