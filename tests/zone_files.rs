//! Zone files end to end on the real server: a reverse zone written with
//! `$GENERATE`, the way BIND operators write one, answered over UDP and
//! TCP; and a reload that warns about a dangling CNAME and serves it.

mod common;

use common::{Family, QueryOptions, TestServer, Transport};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const REVERSE: &str = "\
$TTL 3600
@ IN SOA ns1.example.test. hostmaster.example.test. 1 2h 1h 2w 5m
@ IN NS ns1.example.test.
$GENERATE 1-200 $ PTR host-${0,3}.example.test.
";

#[tokio::test]
async fn generated_ptr_records_are_served() {
    let server = TestServer::start(&[
        ("example.test.zone", common::EXAMPLE_ZONE),
        ("2.0.192.in-addr.arpa.zone", REVERSE),
    ])
    .await;
    for transport in [Transport::Udp, Transport::Tcp] {
        let address = server.dns_addr(transport, Family::V4);
        for (octet, target) in [
            (7, "host-007.example.test."),
            (200, "host-200.example.test."),
        ] {
            let query = common::build_query(
                &format!("{octet}.2.0.192.in-addr.arpa."),
                RecordType::PTR,
                &QueryOptions::default(),
            );
            let response = common::ask(transport, address, &query).await;
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);
            let answers: Vec<String> = response
                .answers
                .iter()
                .map(|record| record.data.to_string())
                .collect();
            assert_eq!(answers, [target], "{transport:?}");
        }
        // Beyond the range there is nothing.
        let query = common::build_query(
            "201.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            &QueryOptions::default(),
        );
        let response = common::ask(transport, address, &query).await;
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_reload_says_what_dangles_and_serves_the_zone_anyway() {
    let server = TestServer::start(&[("example.test.zone", common::EXAMPLE_ZONE)]).await;
    let zone = format!("{}old IN CNAME renamed\n", common::EXAMPLE_ZONE);
    std::fs::write(server.zones_dir().join("example.test.zone"), zone).expect("zone");
    let response = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("JSON");
    let warnings = body["warnings"].to_string();
    assert!(
        warnings
            .contains("example.test.zone:6: CNAME target renamed.example.test. is in our zones"),
        "{body}"
    );
    let query = common::build_query(
        "old.example.test.",
        RecordType::CNAME,
        &QueryOptions::default(),
    );
    let response = common::ask(
        Transport::Udp,
        server.dns_addr(Transport::Udp, Family::V4),
        &query,
    )
    .await;
    assert_eq!(response.answers.len(), 1, "served despite the warning");
    server.shutdown().await;
}
