//! `steer_zone_responses_total` against real DNS answers: every response
//! from a zone, static or steered, over UDP and TCP, is counted under that
//! zone by response code; REFUSED for names in no zone is counted in none.
//! A zone a reload removes keeps its count, and a reload that fails
//! leaves no series behind.

mod common;

use common::{Family, QueryOptions, TestServer, Transport, ask, build_query, http_request};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

async fn query(server: &TestServer, transport: Transport, name: &str, expected: ResponseCode) {
    let message = build_query(name, RecordType::A, &QueryOptions::default());
    let response = ask(transport, server.dns_addr(transport, Family::V4), &message).await;
    assert_eq!(response.metadata.response_code, expected, "{name}");
}

/// Every `steer_zone_responses_total` series as `zone rcode count`, sorted,
/// once two scrapes 50 ms apart agree (a worker counts an answer just after
/// sending it).
async fn zone_series(server: &TestServer) -> Vec<String> {
    let scrape = || async {
        let response = http_request(server.admin_addr(), "GET", "/metrics").await;
        assert_eq!(response.status, 200, "{}", response.body);
        let mut series: Vec<String> = response
            .body
            .lines()
            .filter_map(|line| line.strip_prefix("steer_zone_responses_total{"))
            .map(|rest| {
                let (labels, count) = rest.split_once("} ").expect("labels then count");
                let values: Vec<&str> = labels
                    .split(',')
                    .map(|label| {
                        label
                            .split_once('=')
                            .expect("label=value")
                            .1
                            .trim_matches('"')
                    })
                    .collect();
                format!("{} {count}", values.join(" "))
            })
            .collect();
        series.sort();
        series
    };
    let mut last = scrape().await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = scrape().await;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn responses_are_counted_per_zone_across_reloads() {
    let config = common::cidr_steered_config("");
    let directory = common::example_directory(&config);
    // A second zone beside example.test.
    common::write_zone(directory.path(), "other.test", "");
    let server = TestServer::start_prepared(directory).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        query(
            &server,
            transport,
            "ns1.example.test.",
            ResponseCode::NoError,
        )
        .await;
        // A steered name counts under its zone too.
        query(
            &server,
            transport,
            "www.example.test.",
            ResponseCode::NoError,
        )
        .await;
        query(
            &server,
            transport,
            "nope.example.test.",
            ResponseCode::NXDomain,
        )
        .await;
        query(&server, transport, "ns1.other.test.", ResponseCode::NoError).await;
        // In no zone of ours: counted in none.
        query(
            &server,
            transport,
            "www.example.org.",
            ResponseCode::Refused,
        )
        .await;
    }
    assert_eq!(
        zone_series(&server).await,
        [
            "example.test. NOERROR 4",
            "example.test. NXDOMAIN 2",
            "example.test. other 0",
            "other.test. NOERROR 2",
            "other.test. NXDOMAIN 0",
            "other.test. other 0",
        ]
    );

    // A reload that fails (a broken new zone) adds no series; one that
    // removes other.test keeps its count.
    let zones = server.directory.path().join("zones");
    std::fs::write(
        zones.join("broken.test.zone"),
        "$ORIGIN broken.test.\n@ IN A\n",
    )
    .expect("zone");
    let failed = http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(failed.status, 422, "{}", failed.body);
    std::fs::remove_file(zones.join("broken.test.zone")).expect("remove");
    std::fs::remove_file(zones.join("other.test.zone")).expect("remove");
    let reloaded = http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    query(
        &server,
        Transport::Udp,
        "ns1.other.test.",
        ResponseCode::Refused,
    )
    .await;
    query(
        &server,
        Transport::Udp,
        "ns1.example.test.",
        ResponseCode::NoError,
    )
    .await;
    let series = zone_series(&server).await;
    assert!(
        series.iter().all(|line| !line.starts_with("broken.test.")),
        "{series:?}"
    );
    assert!(
        series.contains(&"other.test. NOERROR 2".to_owned()),
        "{series:?}"
    );
    assert!(
        series.contains(&"example.test. NOERROR 5".to_owned()),
        "{series:?}"
    );
    server.shutdown().await;
}
