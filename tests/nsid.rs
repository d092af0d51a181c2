//! The name server identifier (RFC 5001) over real sockets: a node with
//! `server.nsid` names itself to clients that send an empty NSID option,
//! in every kind of answer that carries OPT, beside Client Subnet, over UDP
//! and TCP; to others, and from a node without one, nothing is added.
//! The same name answers Debian's `dig` asking CHAOS TXT `id.server` and
//! `hostname.bind` (RFC 4892), and `server.version` answers
//! `version.bind`; unset, they are REFUSED.

mod common;

use std::net::IpAddr;

use common::{Family, QueryOptions, TestServer, Transport, build_query};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};

/// web-fra's address in [`common::WEB_POOLS`].
const WEB_FRA: &str = "192.0.2.10";

/// `dig` against `server` over `transport` with `arguments`: its whole
/// output.
async fn dig(server: &TestServer, transport: Transport, arguments: &str) -> String {
    let mut command = vec!["+norec".to_owned()];
    if transport == Transport::Tcp {
        command.push("+tcp".to_owned());
    }
    command.extend(arguments.split_whitespace().map(str::to_owned));
    common::tools::dig_text(server.dns_addr(transport, Family::V4), command).await
}

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

#[tokio::test]
async fn chaos_txt_queries_get_the_identity_and_the_version() {
    let directory = common::example_directory(&common::cidr_steered_config(
        "nsid = \"fra-1 steer\"\nversion = \"steer test\"\n",
    ));
    let server = TestServer::start_prepared(directory).await;
    // (question, status, answers)
    let cases = [
        (
            "CH TXT id.server",
            "NOERROR",
            vec!["id.server. 0 CH TXT \"fra-1 steer\""],
        ),
        // Letter case is the client's, the match is not.
        (
            "CH TXT HostName.Bind",
            "NOERROR",
            vec!["HostName.Bind. 0 CH TXT \"fra-1 steer\""],
        ),
        (
            "CH TXT version.bind",
            "NOERROR",
            vec!["version.bind. 0 CH TXT \"steer test\""],
        ),
        (
            "CH ANY version.server",
            "NOERROR",
            vec!["version.server. 0 CH TXT \"steer test\""],
        ),
        // Another type at a known name: NODATA.
        ("CH A id.server", "NOERROR", vec![]),
        // Other CHAOS names, and these names in class IN: REFUSED.
        ("CH TXT authors.bind", "REFUSED", vec![]),
        ("IN TXT id.server", "REFUSED", vec![]),
    ];
    for transport in [Transport::Udp, Transport::Tcp] {
        for (question, status, answers) in &cases {
            let output = dig(&server, transport, question).await;
            let what = format!("{question} over {transport}:\n{output}");
            assert_eq!(
                common::tools::status_and_answers(&output),
                (
                    status.to_string(),
                    answers.iter().map(ToString::to_string).collect()
                ),
                "{what}"
            );
            if *status == "NOERROR" {
                assert!(output.contains("flags: qr aa;"), "{what}");
            }
        }
    }
    // EDNS and NSID work beside it.
    let output = dig(&server, Transport::Udp, "+nsid CH TXT id.server").await;
    assert!(
        output.contains("NSID: 66 72 61 2d 31 20 73 74 65 65 72 (\"fra-1 steer\")"),
        "{output}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn chaos_txt_queries_are_refused_when_nothing_is_configured() {
    let server = TestServer::start_prepared(common::example_directory(&config(None))).await;
    for question in [
        "CH TXT id.server",
        "CH TXT hostname.bind",
        "CH TXT version.bind",
    ] {
        let output = dig(&server, Transport::Udp, question).await;
        assert_eq!(
            common::tools::status_and_answers(&output),
            ("REFUSED".to_owned(), Vec::new()),
            "{question}:\n{output}"
        );
    }
    server.shutdown().await;
}
