//! `steer_steered_answers_total` against real DNS answers: a server started
//! in-process on loopback answers steered names over UDP and TCP while the
//! admin API drains pools and reloads the configuration, and `/metrics`
//! must count every answer under the pool it came from and why, with
//! counts that never go back across reloads (a good one that drops and adds
//! names, and a failed one).

mod common;

use common::{Family, QueryOptions, TestServer, Transport, ask, build_query, http_request};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Listeners, sites and pools shared by every configuration below; two
/// UDP workers, so that `/metrics` has more than one worker to sum.
const BASE: &str = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 2

[admin]
listen = "127.0.0.1:0"

[sites.fra]
[sites.iad]
[sites.ams]

[pools.fra]
site = "fra"
addresses = ["192.0.2.10"]

[pools.iad]
site = "iad"
addresses = ["198.51.100.10"]

[pools.ams]
site = "ams"
addresses = ["203.0.113.10"]
"#;

/// www fails over from fra to iad (`when_all_down` is `fail_open` by
/// default); api has one pool and SERVFAIL when it is down.
const FIRST: &str = r#"
[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra", "iad"]
policy = ["healthy", "priority"]

[[steer]]
name = "api.example.test."
type = "A"
pools = ["ams"]
policy = ["healthy"]
when_all_down = "servfail"
"#;

/// The reload: api is gone, www stays, and two names answer when their
/// only pool (fra) is down: one from a fallback pool, one failing open.
const SECOND: &str = r#"
[[steer]]
name = "fallback.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
when_all_down = { pool = "ams" }

[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra", "iad"]
policy = ["healthy", "priority"]

[[steer]]
name = "open.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
when_all_down = "fail_open"
"#;

/// A configuration that fails to load: the new name is in no zone, which
/// is found only after its policy was compiled (and its keys registered).
const BROKEN: &str = r#"
[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra", "iad"]
policy = ["healthy", "priority"]

[[steer]]
name = "typo.example.invalid."
type = "A"
pools = ["iad"]
policy = ["healthy"]
"#;

fn write_config(server: &TestServer, steering: &str) {
    std::fs::write(
        server.directory.path().join("steer.toml"),
        format!("{BASE}{steering}"),
    )
    .expect("config");
}

async fn start() -> TestServer {
    let directory = common::example_directory(&format!("{BASE}{FIRST}"));
    TestServer::start_prepared(directory).await
}

/// Asks for `name` A over `transport` and returns the rcode and addresses.
async fn answer(
    server: &TestServer,
    transport: Transport,
    name: &str,
) -> (ResponseCode, Vec<String>) {
    let query = build_query(name, RecordType::A, &QueryOptions::default());
    let response = ask(transport, server.dns_addr(transport, Family::V4), &query).await;
    let addresses = response
        .answers
        .iter()
        .map(|record| record.data.to_string())
        .collect();
    (response.metadata.response_code, addresses)
}

/// Asks `times` times over UDP and checks every answer.
async fn expect_udp(
    server: &TestServer,
    name: &str,
    times: usize,
    expected: (ResponseCode, &[&str]),
) {
    for _ in 0..times {
        let (code, addresses) = answer(server, Transport::Udp, name).await;
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        assert_eq!((code, addresses.as_slice()), expected, "{name}");
    }
}

async fn post(server: &TestServer, path: &str) -> String {
    let response = http_request(server.admin_addr(), "POST", path).await;
    assert_eq!(response.status, 200, "POST {path}: {}", response.body);
    response.body
}

/// Every `steer_steered_answers_total` series as `name type pool reason
/// count`, sorted, and the overflow count.
/// The counters once two scrapes 50 ms apart agree: a worker counts an
/// answer just after sending it, so a scrape right after the client got
/// the answer can be one behind.
async fn settled_decisions(server: &TestServer) -> (Vec<String>, u64) {
    let mut last = decisions(server).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = decisions(server).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn decisions(server: &TestServer) -> (Vec<String>, u64) {
    let response = http_request(server.admin_addr(), "GET", "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let mut series = Vec::new();
    let mut overflow = None;
    for line in response.body.lines() {
        if let Some(count) = line.strip_prefix("steer_steered_answers_overflow_total ") {
            overflow = count.parse().ok();
        }
        let Some(rest) = line.strip_prefix("steer_steered_answers_total{") else {
            continue;
        };
        let (labels, count) = rest.split_once("} ").expect("labels then count");
        let values: Vec<&str> = labels
            .split(',')
            .map(|label| {
                let (_, value) = label.split_once('=').expect("label=value");
                value.trim_matches('"')
            })
            .collect();
        series.push(format!("{} {count}", values.join(" ")));
    }
    series.sort();
    let overflow = overflow.unwrap_or_else(|| {
        panic!(
            "no steer_steered_answers_overflow_total in\n{}",
            response.body
        )
    });
    (series, overflow)
}

fn sorted(lines: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    lines.sort();
    lines
}

const FRA: &[&str] = &["192.0.2.10"];
const IAD: &[&str] = &["198.51.100.10"];
const AMS: &[&str] = &["203.0.113.10"];

#[tokio::test]
async fn answers_are_counted_by_pool_and_reason_across_drains_and_reloads() {
    let server = start().await;
    // Registered at compile time: every reachable outcome is there at 0.
    let (series, overflow) = settled_decisions(&server).await;
    assert_eq!(
        series,
        sorted(&[
            "www.example.test. A  nodata 0",
            "www.example.test. A fra policy 0",
            "www.example.test. A fra fail_open 0",
            "www.example.test. A iad policy 0",
            "www.example.test. A iad fail_open 0",
            "api.example.test. A  nodata 0",
            "api.example.test. A  servfail 0",
            "api.example.test. A ams policy 0",
        ])
    );
    assert_eq!(overflow, 0);

    // The policy's choice, over both transports (each its own counters).
    expect_udp(
        &server,
        "www.example.test.",
        3,
        (ResponseCode::NoError, FRA),
    )
    .await;
    assert_eq!(
        answer(&server, Transport::Tcp, "www.example.test.").await,
        (ResponseCode::NoError, vec![FRA[0].to_owned()])
    );
    // fra drained: priority moves to iad, still the policy's choice.
    post(&server, "/pools/fra/drain").await;
    expect_udp(
        &server,
        "www.example.test.",
        2,
        (ResponseCode::NoError, IAD),
    )
    .await;
    // api's only pool drained: SERVFAIL, with no pool.
    post(&server, "/pools/ams/drain").await;
    expect_udp(
        &server,
        "api.example.test.",
        2,
        (ResponseCode::ServFail, &[]),
    )
    .await;

    let before_reload = sorted(&[
        "www.example.test. A  nodata 0",
        "www.example.test. A fra policy 4",
        "www.example.test. A fra fail_open 0",
        "www.example.test. A iad policy 2",
        "www.example.test. A iad fail_open 0",
        "api.example.test. A  nodata 0",
        "api.example.test. A  servfail 2",
        "api.example.test. A ams policy 0",
    ]);
    assert_eq!(settled_decisions(&server).await, (before_reload.clone(), 0));

    // A reload that drops api and adds two names: nothing is renumbered,
    // api's series keep their counts, the new ones start at 0.
    write_config(&server, SECOND);
    let body = post(&server, "/reload").await;
    assert!(body.contains("\"generation\":2"), "{body}");
    let mut after_reload = before_reload.clone();
    after_reload.extend(
        [
            "fallback.example.test. A  nodata 0",
            "fallback.example.test. A fra policy 0",
            "fallback.example.test. A ams fallback 0",
            "open.example.test. A  nodata 0",
            "open.example.test. A fra policy 0",
            "open.example.test. A fra fail_open 0",
        ]
        .map(str::to_owned),
    );
    after_reload.sort();
    assert_eq!(settled_decisions(&server).await, (after_reload.clone(), 0));

    // A failed reload changes no count, and what it registered is gone:
    // the next good reload does not export it.
    write_config(&server, BROKEN);
    let response = http_request(server.admin_addr(), "POST", "/reload").await;
    assert_ne!(response.status, 200, "{}", response.body);
    assert!(
        response.body.contains("typo.example.invalid."),
        "{}",
        response.body
    );
    assert_eq!(settled_decisions(&server).await, (after_reload.clone(), 0));
    write_config(&server, SECOND);
    let body = post(&server, "/reload").await;
    assert!(body.contains("\"generation\":3"), "{body}");
    assert_eq!(settled_decisions(&server).await, (after_reload, 0));

    // The drains survived the reload: www stays on iad, fallback answers
    // from ams, and open answers from the drained fra anyway.
    expect_udp(
        &server,
        "www.example.test.",
        1,
        (ResponseCode::NoError, IAD),
    )
    .await;
    expect_udp(
        &server,
        "fallback.example.test.",
        2,
        (ResponseCode::NoError, AMS),
    )
    .await;
    expect_udp(
        &server,
        "open.example.test.",
        1,
        (ResponseCode::NoError, FRA),
    )
    .await;
    post(&server, "/pools/fra/undrain").await;
    expect_udp(
        &server,
        "www.example.test.",
        1,
        (ResponseCode::NoError, FRA),
    )
    .await;

    assert_eq!(
        settled_decisions(&server).await,
        (
            sorted(&[
                "www.example.test. A  nodata 0",
                "www.example.test. A fra policy 5",
                "www.example.test. A fra fail_open 0",
                "www.example.test. A iad policy 3",
                "www.example.test. A iad fail_open 0",
                "api.example.test. A  nodata 0",
                "api.example.test. A  servfail 2",
                "api.example.test. A ams policy 0",
                "fallback.example.test. A  nodata 0",
                "fallback.example.test. A fra policy 0",
                "fallback.example.test. A ams fallback 2",
                "open.example.test. A  nodata 0",
                "open.example.test. A fra policy 0",
                "open.example.test. A fra fail_open 1",
            ]),
            0
        )
    );
    server.shutdown().await;
}

#[tokio::test]
async fn fail_open_and_no_pool_for_the_client_are_counted() {
    let server = start().await;
    // Both of www's pools drained and fail_open: answered from the first
    // pool of the policy's list, as a fail-open.
    post(&server, "/pools/fra/drain").await;
    post(&server, "/pools/iad/drain").await;
    expect_udp(
        &server,
        "www.example.test.",
        2,
        (ResponseCode::NoError, FRA),
    )
    .await;
    // Two cidr steps that leave loopback clients no pool: NODATA, with no
    // pool, whatever the health.
    write_config(
        &server,
        r#"
[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra", "iad"]
policy = [
  { cidr = { "127.0.0.0/8" = ["fra"] } },
  { cidr = { "127.0.0.0/8" = ["iad"] } },
  "healthy",
  "priority",
]
"#,
    );
    post(&server, "/reload").await;
    expect_udp(
        &server,
        "www.example.test.",
        3,
        (ResponseCode::NoError, &[]),
    )
    .await;
    let (series, _) = settled_decisions(&server).await;
    for expected in [
        "www.example.test. A fra fail_open 2",
        "www.example.test. A  nodata 3",
    ] {
        assert!(
            series.iter().any(|line| line == expected),
            "no {expected:?} in {series:#?}"
        );
    }
    server.shutdown().await;
}
