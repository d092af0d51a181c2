//! DNS Cookies (RFC 7873) over real sockets: a client cookie comes back
//! with an RFC 9018 server cookie for that client, in static, steered and
//! refused answers, over UDP and TCP; a stale server cookie is answered
//! like none; a COOKIE option of a length RFC 7873 does not allow is
//! FORMERR; and a query without one gets none.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Family, QueryOptions, TestServer, Transport, build_query};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

const CLIENT: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

fn config() -> String {
    common::cidr_steered_config("")
}

/// Asks `name` A with EDNS, carrying `cookie` as the COOKIE option's data.
async fn ask(
    server: &TestServer,
    transport: Transport,
    family: Family,
    name: &str,
    cookie: Option<Vec<u8>>,
) -> Message {
    let options = QueryOptions {
        edns: true,
        ..QueryOptions::default()
    };
    let mut query = build_query(name, RecordType::A, &options);
    if let Some(cookie) = cookie {
        let edns = query.edns.as_mut().expect("EDNS");
        edns.options_mut()
            .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), cookie));
    }
    common::ask(transport, server.dns_addr(transport, family), &query).await
}

/// The COOKIE option's data in the response.
fn cookie_of(response: &Message) -> Option<Vec<u8>> {
    let edns = response.edns.as_ref()?;
    match edns.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        other => panic!("COOKIE read as {other:?}"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn a_client_cookie_comes_back_with_a_server_cookie() {
    let server = TestServer::start_prepared(common::example_directory(&config())).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        for name in ["ns1.example.test.", "www.example.test.", "example.org."] {
            let response = ask(&server, transport, Family::V4, name, Some(CLIENT.to_vec())).await;
            let cookie = cookie_of(&response).unwrap_or_else(|| panic!("{name}: no COOKIE"));
            assert_eq!(cookie.len(), 24, "{name}");
            assert_eq!(cookie[..8], CLIENT, "{name}: the client cookie echoed");
            // RFC 9018: version 1, reserved zero, then the time.
            assert_eq!(cookie[8..12], [1, 0, 0, 0], "{name}");
            let stamp = u64::from(u32::from_be_bytes(cookie[12..16].try_into().expect("4")));
            assert!(now().abs_diff(stamp) <= 5, "{name}: timestamp {stamp}");
        }
    }
    // The hash covers the client's address: the same cookie from ::1 gets
    // another server cookie (compared within one second, or again).
    let mut differed = false;
    for _ in 0..3 {
        let v4 = ask(
            &server,
            Transport::Udp,
            Family::V4,
            "ns1.example.test.",
            Some(CLIENT.to_vec()),
        )
        .await;
        let v6 = ask(
            &server,
            Transport::Udp,
            Family::V6,
            "ns1.example.test.",
            Some(CLIENT.to_vec()),
        )
        .await;
        let (v4, v6) = (
            cookie_of(&v4).expect("cookie"),
            cookie_of(&v6).expect("cookie"),
        );
        if v4[12..16] == v6[12..16] {
            differed = v4[16..] != v6[16..];
            break;
        }
    }
    assert!(differed, "server cookies for two addresses should differ");

    // A server cookie Steer did not issue is answered like none: a fresh one.
    let mut stale = CLIENT.to_vec();
    stale.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9]);
    let response = ask(
        &server,
        Transport::Udp,
        Family::V4,
        "ns1.example.test.",
        Some(stale),
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers.len(), 1);
    let cookie = cookie_of(&response).expect("a fresh cookie");
    assert_eq!(cookie[..8], CLIENT);
    assert_ne!(cookie[8..16], [1, 0, 0, 0, 0, 0, 0, 1]);

    // Not sent: none back.
    let plain = ask(
        &server,
        Transport::Udp,
        Family::V4,
        "ns1.example.test.",
        None,
    )
    .await;
    assert_eq!(cookie_of(&plain), None);
    server.shutdown().await;
}

#[tokio::test]
async fn a_cookie_of_a_length_rfc_7873_forbids_is_formerr() {
    let server = TestServer::start_prepared(common::example_directory(&config())).await;
    for length in [7, 9, 15, 41] {
        let response = ask(
            &server,
            Transport::Udp,
            Family::V4,
            "ns1.example.test.",
            Some(vec![0x42; length]),
        )
        .await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::FormErr,
            "{length} bytes"
        );
        assert!(response.answers.is_empty());
    }
    server.shutdown().await;
}
