//! edns-tcp-keepalive (RFC 7828) over real sockets: a client that sends
//! the option over TCP is told how long the server keeps an idle
//! connection (`server.tcp_idle_timeout`, in units of 100 ms), in answers
//! and errors alike; over UDP, and to clients that did not ask, nothing is
//! added.

mod common;

use common::{Family, QueryOptions, TestServer, Transport, build_query};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

const KEEPALIVE: u16 = 11;

/// Asks `name` A with EDNS, with an empty edns-tcp-keepalive option when
/// `ask`.
async fn ask(server: &TestServer, transport: Transport, name: &str, ask: bool) -> Message {
    let options = QueryOptions {
        edns: true,
        ..QueryOptions::default()
    };
    let mut query = build_query(name, RecordType::A, &options);
    if ask {
        let edns = query.edns.as_mut().expect("EDNS");
        edns.options_mut()
            .insert(EdnsOption::Unknown(KEEPALIVE, Vec::new()));
    }
    common::ask(transport, server.dns_addr(transport, Family::V4), &query).await
}

/// The timeout the response's edns-tcp-keepalive option carries.
fn keepalive_of(response: &Message) -> Option<Vec<u8>> {
    let edns = response.edns.as_ref().expect("OPT in the response");
    match edns.option(EdnsCode::from(KEEPALIVE))? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        other => panic!("edns-tcp-keepalive read as {other:?}"),
    }
}

#[tokio::test]
async fn tcp_clients_that_ask_learn_the_idle_timeout() {
    let config = common::cidr_steered_config("tcp_idle_timeout = \"2500ms\"\n");
    let server = TestServer::start_prepared(common::example_directory(&config)).await;
    // 2.5 s is 25 units of 100 ms; static, steered and refused answers alike.
    for (name, rcode) in [
        ("ns1.example.test.", ResponseCode::NoError),
        ("www.example.test.", ResponseCode::NoError),
        ("nope.example.test.", ResponseCode::NXDomain),
        ("example.org.", ResponseCode::Refused),
    ] {
        let response = ask(&server, Transport::Tcp, name, true).await;
        assert_eq!(response.metadata.response_code, rcode, "{name}");
        assert_eq!(keepalive_of(&response), Some(vec![0, 25]), "{name}");
    }
    // Not asked, or over UDP: not sent (RFC 7828 §3.3.2).
    let unasked = ask(&server, Transport::Tcp, "ns1.example.test.", false).await;
    assert_eq!(keepalive_of(&unasked), None);
    let over_udp = ask(&server, Transport::Udp, "ns1.example.test.", true).await;
    assert_eq!(over_udp.metadata.response_code, ResponseCode::NoError);
    assert_eq!(keepalive_of(&over_udp), None);
    server.shutdown().await;
}
