//! `dns` and `dns-tcp` health probes, over real sockets: the probed DNS
//! server is a second Steer, in-process on loopback, serving a zone the
//! probes ask about; the steering Steer answers `www.example.test` with
//! web-fra while the probe passes and fails over to web-iad when it does
//! not. What each check saw is read back from `/status`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{FRA, Family, IAD, QueryOptions, TestServer, Transport};
use serde_json::Value;

/// The probed server's zone: one address, and a TXT RRset too large for a
/// 512-byte UDP answer, so that only TCP can bring it.
fn probed_zone() -> String {
    let mut zone = String::from(
        "$ORIGIN probed.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 120\n\
         @ IN NS ns1\nns1 IN A 192.0.2.1\nservice IN A 192.0.2.53\n",
    );
    for index in 0..12 {
        zone.push_str(&format!("big IN TXT \"{index:02} {}\"\n", "x".repeat(60)));
    }
    zone
}

/// The steering server's config: web-fra probed by `probe` at `target`.
fn config(probe: &str, target: SocketAddr) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[health]
debounce = "0s"

[probes.dns]
interval = "100ms"
timeout = "90ms"
rise = 1
fall = 1
{probe}

[sites.fra]
[sites.iad]

[pools.web-fra]
site = "fra"
addresses = [{{ address = "{FRA}", probe = "dns", probe_target = "{target}" }}]

[pools.web-iad]
site = "iad"
addresses = ["{IAD}"]

[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = ["healthy", "priority"]
"#
    )
}

async fn answer(server: &TestServer) -> Vec<String> {
    common::ask_a(server, "www.example.test.", &QueryOptions::default())
        .await
        .1
}

/// web-fra's `/status` entry once `detail` of its last probe satisfies
/// `done`; panics after 10 s.
async fn wait_for_probe(server: &TestServer, done: impl Fn(&str) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let response = common::http_request(server.admin_addr(), "GET", "/status").await;
        let status: Value = serde_json::from_str(&response.body).expect("status JSON");
        let endpoint = common::endpoint_in(&status, FRA).expect("web-fra's endpoint");
        if endpoint["last_probe"]["detail"].as_str().is_some_and(&done) {
            return endpoint;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rewrites the steering server's config with `probe` and reloads.
async fn reprobe(server: &TestServer, probe: &str, target: SocketAddr) {
    std::fs::write(
        server.directory.path().join("steer.toml"),
        config(probe, target),
    )
    .expect("config");
    let response = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_probes_ask_a_real_question_and_fail_over_on_a_wrong_answer() {
    let probed = TestServer::start(&[("probed.test.zone", &probed_zone())]).await;
    let udp = probed.dns_addr(Transport::Udp, Family::V4);
    let good = "type = \"dns\"\nquery = \"service.probed.test\"\nexpect_answer = \"192.0.2.53\"";
    let directory = common::example_directory(&config(good, udp));
    let server = TestServer::start_prepared(directory).await;

    // The expected record: up, and answered.
    let endpoint = wait_for_probe(&server, |detail| detail == "NOERROR, 192.0.2.53").await;
    assert_eq!(endpoint["observed"], "up", "{endpoint}");
    assert_eq!(answer(&server).await, [FRA]);

    // Another record than the one expected: down, and the answers fail over.
    let wrong = "type = \"dns\"\nquery = \"service.probed.test\"\nexpect_answer = \"192.0.2.99\"";
    reprobe(&server, wrong, udp).await;
    let endpoint = wait_for_probe(&server, |detail| {
        detail == "NOERROR: 192.0.2.53 (expected 192.0.2.99)"
    })
    .await;
    assert_eq!(endpoint["observed"], "down", "{endpoint}");
    assert_eq!(answer(&server).await, [IAD]);

    // An expected NXDOMAIN passes; a REFUSED (a name the server does not
    // serve) does not.
    let nxdomain = "type = \"dns\"\nquery = \"nowhere.probed.test\"\nexpect_rcode = \"NXDOMAIN\"";
    reprobe(&server, nxdomain, udp).await;
    wait_for_probe(&server, |detail| detail == "NXDOMAIN, 0 answers").await;
    assert_eq!(answer(&server).await, [FRA]);
    let refused = "type = \"dns\"\nquery = \"elsewhere.example\"";
    reprobe(&server, refused, udp).await;
    wait_for_probe(&server, |detail| detail == "REFUSED (expected NOERROR)").await;
    assert_eq!(answer(&server).await, [IAD]);

    // A truncated UDP answer is asked again over TCP, which brings all 12
    // TXT records; dns-tcp asks over TCP alone.
    let truncated = "type = \"dns\"\nquery = \"big.probed.test\"\nquery_type = \"TXT\"";
    reprobe(&server, truncated, udp).await;
    wait_for_probe(&server, |detail| detail == "NOERROR, 12 answers").await;
    let tcp = "type = \"dns-tcp\"\nquery = \"ns1.probed.test\"\nexpect_answer = \"192.0.2.1\"";
    reprobe(&server, tcp, probed.dns_addr(Transport::Tcp, Family::V4)).await;
    wait_for_probe(&server, |detail| detail == "NOERROR, 192.0.2.1").await;
    assert_eq!(answer(&server).await, [FRA]);

    // The probed server stops: the check times out, and web-fra is down.
    probed.shutdown().await;
    let endpoint = wait_for_probe(&server, |detail| detail != "NOERROR, 192.0.2.1").await;
    assert_eq!(endpoint["observed"], "down", "{endpoint}");
    assert_eq!(answer(&server).await, [IAD]);
    server.shutdown().await;
}

#[test]
fn dns_probe_settings_are_checked() {
    let target: SocketAddr = "127.0.0.1:53".parse().expect("address");
    let run = |probe: &str| {
        let directory = common::example_directory(&config(probe, target));
        common::check_errors(directory.path())
    };
    let missing = run("type = \"dns\"");
    assert!(
        missing.contains("probes.dns.query: a dns probe needs query"),
        "{missing}"
    );
    let bad = run(
        "type = \"dns\"\nquery = \"a..b\"\nquery_type = \"NOPE\"\nexpect_rcode = \"MAYBE\"\n\
         path = \"/\"",
    );
    for expected in [
        "probes.dns.query: \"a..b\" is not a domain name",
        "probes.dns.query_type: \"NOPE\" is not a record type",
        "probes.dns.expect_rcode: \"MAYBE\" is not one of NOERROR",
        "probes.dns.path: only http and https probes have this setting",
    ] {
        assert!(bad.contains(expected), "missing {expected:?} in {bad}");
    }
    let misplaced = run("type = \"tcp\"\nport = 53\nquery = \"x.example\"");
    assert!(
        misplaced.contains("probes.dns.query: only dns and dns-tcp probes have this setting"),
        "{misplaced}"
    );
}
