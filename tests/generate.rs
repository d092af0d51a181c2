//! `$GENERATE` end to end: a reverse zone written the way BIND operators
//! write one is loaded by the real server and answered over UDP and TCP.

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
