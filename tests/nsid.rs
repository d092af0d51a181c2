//! The name server identifier (RFC 5001) over real sockets: a node with
//! `server.nsid` names itself to clients that send an empty NSID option,
//! in every kind of answer that carries OPT, beside Client Subnet, over UDP
//! and TCP; to others, and from a node without one, nothing is added.

mod common;

use std::net::IpAddr;

use common::{Family, QueryOptions, TestServer, Transport, build_query};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};

/// web-fra's address in [`common::WEB_POOLS`].
const WEB_FRA: &str = "192.0.2.10";

fn config(nsid: Option<&str>) -> String {
    let nsid = nsid.map_or(String::new(), |nsid| format!("nsid = \"{nsid}\"\n"));
    common::cidr_steered_config(&nsid)
}

/// Asks `name` `record_type` with EDNS (and an empty NSID option when
/// `ask_nsid`), optionally with Client Subnet.
async fn ask(
    server: &TestServer,
    transport: Transport,
    name: &str,
    record_type: RecordType,
    ask_nsid: bool,
    client_subnet: Option<(IpAddr, u8)>,
) -> Message {
    let options = QueryOptions {
        edns: true,
        client_subnet,
        ..QueryOptions::default()
    };
    let mut query = build_query(name, record_type, &options);
    if ask_nsid {
        let edns = query.edns.as_mut().expect("EDNS");
        edns.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(Vec::new()).expect("empty payload"),
        ));
    }
    common::ask(transport, server.dns_addr(transport, Family::V4), &query).await
}

/// The NSID the response carries, as text.
fn nsid_of(response: &Message) -> Option<String> {
    let edns = response.edns.as_ref().expect("OPT in the response");
    match edns.option(EdnsCode::NSID) {
        Some(EdnsOption::NSID(payload)) => {
            Some(String::from_utf8_lossy(payload.as_ref()).into_owned())
        }
        Some(other) => panic!("NSID option read as {other:?}"),
        None => None,
    }
}

#[tokio::test]
async fn a_node_names_itself_to_clients_that_ask() {
    let directory = common::example_directory(&config(Some("fra-1 steer")));
    let server = TestServer::start_prepared(directory).await;
    let uk = Some(("81.2.69.0".parse().expect("address"), 24));
    // (name, NSID asked, Client Subnet, rcode, answers, NSID answered)
    let cases = [
        (
            "ns1.example.test.",
            true,
            None,
            ResponseCode::NoError,
            1,
            Some("fra-1 steer"),
        ),
        // Steered, with Client Subnet beside it.
        (
            "www.example.test.",
            true,
            uk,
            ResponseCode::NoError,
            1,
            Some("fra-1 steer"),
        ),
        (
            "nope.example.test.",
            true,
            None,
            ResponseCode::NXDomain,
            0,
            Some("fra-1 steer"),
        ),
        (
            "example.org.",
            true,
            None,
            ResponseCode::Refused,
            0,
            Some("fra-1 steer"),
        ),
        // Not asked: not sent.
        (
            "ns1.example.test.",
            false,
            None,
            ResponseCode::NoError,
            1,
            None,
        ),
    ];
    for transport in [Transport::Udp, Transport::Tcp] {
        for (name, asked, subnet, rcode, answers, nsid) in cases {
            let response = ask(&server, transport, name, RecordType::A, asked, subnet).await;
            let what = format!("{name} over {transport}, NSID asked: {asked}");
            assert_eq!(response.metadata.response_code, rcode, "{what}");
            assert_eq!(response.answers.len(), answers, "{what}");
            assert_eq!(nsid_of(&response).as_deref(), nsid, "{what}");
            if subnet.is_some() {
                assert_eq!(response.answers[0].data.to_string(), WEB_FRA);
                assert_eq!(common::ecs_scope(&response), Some(24), "{what}");
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_node_without_an_nsid_sends_none() {
    let server = TestServer::start_prepared(common::example_directory(&config(None))).await;
    let response = ask(
        &server,
        Transport::Udp,
        "ns1.example.test.",
        RecordType::A,
        true,
        None,
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(nsid_of(&response), None);
    server.shutdown().await;
}
