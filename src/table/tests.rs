//! Table and responder tests on hand-built zones: each response is parsed
//! back with hickory-proto and checked section by section.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::RoutingTable;
use crate::dns::{Outcome, Transport, respond};
use crate::zone::{Location, Zone, ZoneRecord};

fn zone(origin: &str, lines: &[(&str, u32, &str, &str)]) -> Zone {
    let origin = Name::from_ascii(origin).expect("origin");
    let file: Arc<std::path::Path> = Arc::from(PathBuf::from("test.zone").as_path());
    let records = lines
        .iter()
        .enumerate()
        .map(|(line, (owner, ttl, record_type, data))| {
            let record_type: RecordType = record_type.parse().expect("type");
            let data = RData::try_from_str(record_type, data).expect("rdata");
            let name = Name::from_ascii(owner).expect("owner");
            ZoneRecord {
                record: Record::from_rdata(name, *ttl, data),
                location: Location {
                    file: Arc::clone(&file),
                    line: line as u32 + 1,
                },
            }
        })
        .collect();
    Zone {
        origin,
        file: PathBuf::from("test.zone"),
        serial: 1,
        records,
        signing: None,
        signer: None,
    }
}

fn example() -> RoutingTable {
    let zones = [zone(
        "example.test.",
        &[
            (
                "example.test.",
                3600,
                "SOA",
                "ns1.example.test. admin.example.test. 7 3600 600 86400 300",
            ),
            ("example.test.", 3600, "NS", "ns1.example.test."),
            ("example.test.", 3600, "NS", "ns2.example.test."),
            ("ns1.example.test.", 3600, "A", "192.0.2.53"),
            ("ns2.example.test.", 3600, "A", "192.0.2.54"),
            ("www.example.test.", 300, "A", "192.0.2.1"),
            ("www.example.test.", 300, "A", "192.0.2.2"),
            ("www.example.test.", 300, "AAAA", "2001:db8::1"),
            ("web.example.test.", 60, "CNAME", "www.example.test."),
            ("alias.example.test.", 60, "CNAME", "web.example.test."),
            (
                "dangling.example.test.",
                60,
                "CNAME",
                "nothing.example.test.",
            ),
            ("outside.example.test.", 60, "CNAME", "www.example.org."),
            ("loop1.example.test.", 60, "CNAME", "loop2.example.test."),
            ("loop2.example.test.", 60, "CNAME", "loop1.example.test."),
            ("example.test.", 300, "MX", "10 mail.example.test."),
            ("mail.example.test.", 300, "A", "192.0.2.25"),
            ("*.apps.example.test.", 120, "A", "192.0.2.80"),
            ("deep.a.b.example.test.", 120, "TXT", "\"hello\""),
            ("sub.example.test.", 86400, "NS", "ns1.sub.example.test."),
            ("ns1.sub.example.test.", 86400, "A", "192.0.2.99"),
            (
                "big.example.test.",
                60,
                "TXT",
                &format!("\"{}\" \"{}\"", "x".repeat(250), "y".repeat(250)),
            ),
            (
                "big.example.test.",
                60,
                "TXT",
                &format!("\"{}\"", "z".repeat(200)),
            ),
        ],
    )];
    RoutingTable::compile_zones(&zones, 1).expect("compile")
}

fn ask(
    table: &RoutingTable,
    name: &str,
    record_type: RecordType,
    transport: Transport,
    edns: bool,
) -> Message {
    let mut message = Message::query();
    message.metadata.id = 4242;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        record_type,
    ));
    if edns {
        let edns = message.edns.get_or_insert_with(Default::default);
        edns.set_max_payload(1232);
    }
    let packet = message.to_vec().expect("encode");
    let mut out = Vec::new();
    let outcome = respond(
        table,
        &packet,
        transport,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &mut out,
    );
    assert!(matches!(outcome, Outcome::Reply { .. }), "{outcome:?}");
    let response = Message::from_bytes(&out).expect("response parses");
    assert_eq!(response.metadata.id, 4242);
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert_eq!(response.metadata.op_code, OpCode::Query);
    assert!(response.metadata.recursion_desired);
    assert!(!response.metadata.recursion_available);
    response
}

fn records(section: &[Record]) -> Vec<String> {
    section
        .iter()
        .map(|record| {
            format!(
                "{} {} {} {}",
                record.name.to_ascii().to_lowercase(),
                record.ttl,
                record.record_type(),
                record.data
            )
        })
        .collect()
}

#[test]
fn positive_answer_is_authoritative_and_minimal() {
    let table = example();
    let response = ask(
        &table,
        "WWW.Example.TEST.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert_eq!(
        response.queries[0].name().to_ascii(),
        "WWW.Example.TEST.",
        "case preserved"
    );
    assert_eq!(
        records(&response.answers),
        [
            "www.example.test. 300 A 192.0.2.1",
            "www.example.test. 300 A 192.0.2.2"
        ]
    );
    assert!(response.authorities.is_empty());
    assert!(response.additionals.is_empty());
}

#[test]
fn nodata_and_nxdomain_carry_the_soa_with_negative_ttl() {
    let table = example();
    let response = ask(
        &table,
        "www.example.test.",
        RecordType::MX,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(
        records(&response.authorities),
        ["example.test. 300 SOA ns1.example.test. admin.example.test. 7 3600 600 86400 300"]
    );
    let response = ask(
        &table,
        "nope.deeper.example.test.",
        RecordType::A,
        Transport::Udp,
        true,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(response.metadata.authoritative);
    assert_eq!(
        records(&response.authorities),
        ["example.test. 300 SOA ns1.example.test. admin.example.test. 7 3600 600 86400 300"]
    );
    // Empty non-terminal: NODATA, not NXDOMAIN.
    let response = ask(
        &table,
        "a.b.example.test.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.authorities.len(), 1);
}

#[test]
fn cname_chains_are_followed_in_zone() {
    let table = example();
    let response = ask(
        &table,
        "alias.example.test.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(
        records(&response.answers),
        [
            "alias.example.test. 60 CNAME web.example.test.",
            "web.example.test. 60 CNAME www.example.test.",
            "www.example.test. 300 A 192.0.2.1",
            "www.example.test. 300 A 192.0.2.2",
        ]
    );
    let response = ask(
        &table,
        "dangling.example.test.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(response.answers.len(), 1);
    assert_eq!(response.authorities.len(), 1);
    let response = ask(
        &table,
        "outside.example.test.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        records(&response.answers),
        ["outside.example.test. 60 CNAME www.example.org."]
    );
    let response = ask(
        &table,
        "loop1.example.test.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.answers.len(), 2);
    let response = ask(
        &table,
        "web.example.test.",
        RecordType::CNAME,
        Transport::Udp,
        false,
    );
    assert_eq!(
        records(&response.answers),
        ["web.example.test. 60 CNAME www.example.test."]
    );
}

#[test]
fn wildcards_synthesize_the_query_name() {
    let table = example();
    let response = ask(
        &table,
        "Foo.Bar.apps.example.test.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        response.answers[0].name.to_ascii(),
        "Foo.Bar.apps.example.test."
    );
    assert_eq!(
        records(&response.answers),
        ["foo.bar.apps.example.test. 120 A 192.0.2.80"]
    );
    let response = ask(
        &table,
        "x.apps.example.test.",
        RecordType::AAAA,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(
        records(&response.authorities)[0].split(' ').next(),
        Some("example.test.")
    );
}

#[test]
fn referrals_carry_ns_and_glue_without_aa() {
    let table = example();
    for name in [
        "sub.example.test.",
        "host.sub.example.test.",
        "ns1.sub.example.test.",
    ] {
        let response = ask(&table, name, RecordType::A, Transport::Udp, false);
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert!(!response.metadata.authoritative, "{name}");
        assert!(response.answers.is_empty());
        assert_eq!(
            records(&response.authorities),
            ["sub.example.test. 86400 NS ns1.sub.example.test."]
        );
        assert_eq!(
            records(&response.additionals),
            ["ns1.sub.example.test. 86400 A 192.0.2.99"]
        );
    }
    // DS at the cut is the parent's: NODATA, authoritative.
    let response = ask(
        &table,
        "sub.example.test.",
        RecordType::DS,
        Transport::Udp,
        false,
    );
    assert!(response.metadata.authoritative);
    assert_eq!(response.authorities.len(), 1);
}

#[test]
fn outside_our_zones_is_refused() {
    let table = example();
    let response = ask(
        &table,
        "www.example.org.",
        RecordType::A,
        Transport::Udp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    assert!(!response.metadata.authoritative);
    assert!(response.answers.is_empty());
}

#[test]
fn any_is_one_rrset_over_udp_and_all_over_tcp() {
    let table = example();
    let response = ask(
        &table,
        "www.example.test.",
        RecordType::ANY,
        Transport::Udp,
        false,
    );
    assert_eq!(
        records(&response.answers),
        [
            "www.example.test. 300 A 192.0.2.1",
            "www.example.test. 300 A 192.0.2.2"
        ]
    );
    let response = ask(
        &table,
        "www.example.test.",
        RecordType::ANY,
        Transport::Tcp,
        false,
    );
    assert_eq!(response.answers.len(), 3);
}

#[test]
fn large_answers_truncate_over_udp_but_not_tcp() {
    let table = example();
    let response = ask(
        &table,
        "big.example.test.",
        RecordType::TXT,
        Transport::Udp,
        false,
    );
    assert!(response.metadata.truncation);
    assert!(response.answers.is_empty());
    assert_eq!(response.queries.len(), 1);
    let response = ask(
        &table,
        "big.example.test.",
        RecordType::TXT,
        Transport::Udp,
        true,
    );
    assert!(!response.metadata.truncation);
    assert_eq!(response.answers.len(), 2);
    let response = ask(
        &table,
        "big.example.test.",
        RecordType::TXT,
        Transport::Tcp,
        false,
    );
    assert!(!response.metadata.truncation);
    assert_eq!(response.answers.len(), 2);
}

#[test]
fn edns_is_echoed_and_badvers_answered() {
    let table = example();
    let response = ask(
        &table,
        "www.example.test.",
        RecordType::A,
        Transport::Udp,
        true,
    );
    let edns = response.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    let mut message = Message::query();
    message.add_query(Query::query(
        Name::from_ascii("www.example.test.").expect("name"),
        RecordType::A,
    ));
    message
        .edns
        .get_or_insert_with(Default::default)
        .set_version(1);
    let packet = message.to_vec().expect("encode");
    let mut out = Vec::new();
    let outcome = respond(
        &table,
        &packet,
        Transport::Udp,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &mut out,
    );
    assert_eq!(
        outcome,
        Outcome::Reply {
            rcode: 16,
            decision: None,
            zone: None
        }
    );
    let response = Message::from_bytes(&out).expect("parses");
    // Code 16 is BADVERS with OPT (hickory names it BADSIG, the TSIG meaning).
    assert_eq!(u16::from(response.metadata.response_code), 16);
    assert_eq!(response.edns.as_ref().map(|edns| edns.version()), Some(0));
    assert!(response.answers.is_empty());
}

#[test]
fn class_and_transfer_types_are_refused() {
    let table = example();
    let mut message = Message::query();
    let mut query = Query::query(
        Name::from_ascii("www.example.test.").expect("name"),
        RecordType::TXT,
    );
    query.set_query_class(DNSClass::CH);
    message.add_query(query);
    let mut out = Vec::new();
    let outcome = respond(
        &table,
        &message.to_vec().expect("encode"),
        Transport::Udp,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &mut out,
    );
    assert_eq!(
        outcome,
        Outcome::Reply {
            rcode: 5,
            decision: None,
            zone: None
        }
    );
    let response = ask(
        &table,
        "example.test.",
        RecordType::AXFR,
        Transport::Tcp,
        false,
    );
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
}

mod rate_limited {
    //! `respond_udp` under `[rate_limit]`: which responses share a bucket,
    //! what a slipped response looks like, and who is let through.

    use super::*;
    use crate::config::RateLimitConfig;
    use crate::dns::rate_limit::Buckets;
    use crate::dns::{OverLimit, respond_udp};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    fn limits(rate: u32, slip: u32) -> RateLimitConfig {
        RateLimitConfig {
            responses_per_second: rate,
            errors_per_second: rate,
            slip,
            window_seconds: 15,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            table_size: 1024,
            dry_run: false,
        }
    }

    fn query(name: &str, record_type: RecordType, cookie: Option<&[u8]>) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 777;
        message.add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            record_type,
        ));
        let edns = message.edns.get_or_insert_with(Default::default);
        edns.set_max_payload(1232);
        if let Some(cookie) = cookie {
            edns.options_mut().insert(EdnsOption::Unknown(
                u16::from(EdnsCode::Cookie),
                cookie.to_vec(),
            ));
        }
        message.to_vec().expect("encode")
    }

    /// Sends `packet` `count` times and returns the outcomes.
    fn burst(table: &RoutingTable, buckets: &Buckets, packet: &[u8], count: usize) -> Vec<Outcome> {
        let mut out = Vec::new();
        (0..count)
            .map(|_| respond_udp(table, buckets, packet, CLIENT, &mut out))
            .collect()
    }

    fn sent_whole(outcomes: &[Outcome]) -> usize {
        outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Outcome::Reply { .. }))
            .count()
    }

    #[test]
    fn a_slipped_referral_keeps_the_question_and_the_opt_only() {
        let table = example().with_rate_limit(limits(1, 1));
        let buckets = Buckets::frozen(1024);
        let client_cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let packet = query(
            "host.sub.example.test.",
            RecordType::A,
            Some(&client_cookie),
        );
        let mut out = Vec::new();
        let first = respond_udp(&table, &buckets, &packet, CLIENT, &mut out);
        assert!(
            matches!(first, Outcome::Reply { rcode: 0, .. }),
            "{first:?}"
        );
        let whole = Message::from_bytes(&out).expect("parses");
        // A referral: NS in authority, glue and OPT in additional.
        assert_eq!(whole.authorities.len(), 1);
        assert_eq!(whole.additionals.len(), 1);

        let second = respond_udp(&table, &buckets, &packet, CLIENT, &mut out);
        assert_eq!(
            second,
            Outcome::OverLimit {
                rcode: 0,
                decision: None,
                zone: None,
                action: OverLimit::Slipped,
            }
        );
        let slipped = Message::from_bytes(&out).expect("a slipped response parses");
        assert!(slipped.metadata.truncation);
        assert_eq!(slipped.metadata.id, 777);
        assert_eq!(slipped.metadata.message_type, MessageType::Response);
        assert_eq!(slipped.queries, whole.queries);
        assert!(slipped.answers.is_empty());
        assert!(slipped.authorities.is_empty());
        assert!(slipped.additionals.is_empty());
        // The OPT survives, cookie and all, so the retry can be exempt.
        let edns = slipped.edns.as_ref().expect("OPT kept");
        assert_eq!(edns.max_payload(), 1232);
        match edns.option(EdnsCode::Cookie) {
            Some(EdnsOption::Unknown(_, data)) => assert_eq!(&data[..8], &client_cookie),
            other => panic!("cookie: {other:?}"),
        }
    }

    #[test]
    fn nxdomain_is_one_bucket_per_zone_and_answers_one_per_rrset() {
        let table = example().with_rate_limit(limits(3, 0));
        let buckets = Buckets::frozen(1 << 12);
        let mut out = Vec::new();
        // Ten different names that do not exist: one bucket, three pass.
        let nxdomain_passed = (0..10)
            .filter(|index| {
                let packet = query(&format!("nope{index}.example.test."), RecordType::A, None);
                matches!(
                    respond_udp(&table, &buckets, &packet, CLIENT, &mut out),
                    Outcome::Reply { rcode: 3, .. }
                )
            })
            .count();
        assert_eq!(nxdomain_passed, 3);
        // Distinct RRsets are distinct buckets, each with its own three.
        for (name, record_type) in [
            ("www.example.test.", RecordType::A),
            ("www.example.test.", RecordType::AAAA),
            ("ns1.example.test.", RecordType::A),
        ] {
            let outcomes = burst(&table, &buckets, &query(name, record_type, None), 5);
            assert_eq!(sent_whole(&outcomes), 3, "{name} {record_type}");
        }
        // Names outside our zones: errors, one bucket for the network.
        let refused = (0..6)
            .filter(|index| {
                let packet = query(&format!("x{index}.example.org."), RecordType::A, None);
                respond_udp(&table, &buckets, &packet, CLIENT, &mut out).is_sent()
            })
            .count();
        assert_eq!(refused, 3);
        // Another /24 has its own buckets; the same /24 does not.
        let packet = query("www.example.test.", RecordType::A, None);
        let neighbour = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 200));
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 101, 7));
        assert!(!respond_udp(&table, &buckets, &packet, neighbour, &mut out).is_sent());
        assert!(respond_udp(&table, &buckets, &packet, other, &mut out).is_sent());
        // TCP goes through `respond`, which never limits.
        for _ in 0..5 {
            let outcome = respond(&table, &packet, Transport::Tcp, CLIENT, &mut out);
            assert!(matches!(outcome, Outcome::Reply { .. }));
        }
    }

    #[test]
    fn a_server_cookie_we_issued_exempts_and_a_forged_one_does_not() {
        let table = example().with_rate_limit(limits(1, 0));
        let buckets = Buckets::frozen(1024);
        let mut out = Vec::new();
        let packet = query("www.example.test.", RecordType::A, Some(&[9; 8]));
        respond_udp(&table, &buckets, &packet, CLIENT, &mut out);
        let issued = match Message::from_bytes(&out)
            .expect("parses")
            .edns
            .expect("OPT")
            .option(EdnsCode::Cookie)
        {
            Some(EdnsOption::Unknown(_, data)) => data.clone(),
            other => panic!("cookie: {other:?}"),
        };
        assert_eq!(issued.len(), 24);
        let returning = query("www.example.test.", RecordType::A, Some(&issued));
        let outcomes = burst(&table, &buckets, &returning, 4);
        assert!(
            outcomes.iter().all(|outcome| matches!(
                outcome,
                Outcome::OverLimit {
                    action: OverLimit::Exempt,
                    ..
                }
            )),
            "{outcomes:?}"
        );
        let mut forged = issued.clone();
        forged[23] ^= 0xff;
        let outcomes = burst(
            &table,
            &buckets,
            &query("www.example.test.", RecordType::A, Some(&forged)),
            2,
        );
        assert!(
            outcomes.iter().all(|outcome| !outcome.is_sent()),
            "{outcomes:?}"
        );
        // The cookie proves the address it was issued to, not a neighbour's.
        let neighbour = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
        assert!(!respond_udp(&table, &buckets, &returning, neighbour, &mut out).is_sent());
    }

    #[test]
    fn exempt_networks_and_dry_runs_send_everything_whole() {
        let mut exempt = limits(1, 0);
        exempt.exempt =
            vec![crate::config::steering::IpNet::parse("198.51.100.0/24").expect("prefix")];
        let mut dry_run = limits(1, 0);
        dry_run.dry_run = true;
        for (limits, action) in [(exempt, OverLimit::Exempt), (dry_run, OverLimit::DryRun)] {
            let table = example().with_rate_limit(limits);
            let buckets = Buckets::frozen(1024);
            let outcomes = burst(
                &table,
                &buckets,
                &query("www.example.test.", RecordType::A, None),
                3,
            );
            assert!(matches!(outcomes[0], Outcome::Reply { .. }));
            // Sent whole: counted under the zone, like any answer.
            assert!(outcomes[0].zone().is_some());
            for outcome in &outcomes[1..] {
                assert_eq!(
                    *outcome,
                    Outcome::OverLimit {
                        rcode: 0,
                        decision: None,
                        zone: outcomes[0].zone(),
                        action
                    }
                );
            }
        }
    }
}
