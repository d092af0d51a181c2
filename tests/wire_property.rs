//! Property tests of the data plane on bytes, against the golden fixture
//! zones compiled once:
//!
//! - any bytes: `wire::parse_query` never panics, and what it accepts is
//!   within bounds;
//! - any bytes: `respond` never panics; it drops exactly the packets without
//!   a header or with QR set, and every reply parses with hickory-proto,
//!   echoes the id and has QR set;
//! - well-formed queries for names of the fixture (and names around them),
//!   in random letter case, for random types, with and without EDNS, over
//!   both transports: the reply parses, its question is the query's exactly,
//!   and a UDP reply never exceeds the size limit (and is empty when TC);
//! - any bytes and mutated queries over UDP under rate limits that truncate
//!   everything past the first response: every slipped response parses,
//!   echoes the id, has TC and QR set and carries no records.
//!
//! The fixture zones are signed (Ed25519, alternately NSEC and NSEC3), so
//! queries with the DO bit go through the signed table, its NSEC and NSEC3
//! searches and its proofs.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use steer::dns::rate_limit::Buckets;
use steer::dns::wire::{self, ParseError};
use steer::dns::{Outcome, OverLimit, Transport, respond, respond_udp};
use steer::table::RoutingTable;

const FIXTURE_ZONES: &str = "tests/fixtures/golden/zones";
const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The fixture compiled once for all cases, and every owner name in it.
fn fixture() -> &'static (RoutingTable, Vec<String>) {
    static FIXTURE: OnceLock<(RoutingTable, Vec<String>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_ZONES);
        let zones = steer::zone::load_dir(&directory).unwrap_or_else(|errors| {
            panic!(
                "fixture zones do not load: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        let mut names: Vec<String> = zones
            .iter()
            .flat_map(|zone| {
                zone.records
                    .iter()
                    .map(|record| record.record.name.to_ascii())
            })
            .collect();
        names.sort();
        names.dedup();
        let mut zones = zones;
        for (index, zone) in zones.iter_mut().enumerate() {
            let key = signing_key(zone);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            steer::dnssec::sign_zone(
                zone,
                &[key],
                &[],
                (now, 14 * 86_400),
                index % 2 == 1,
                &Default::default(),
            )
            .unwrap_or_else(|error| panic!("fixture zone does not sign: {error}"));
        }
        let table = RoutingTable::compile_zones(&zones, 1)
            .unwrap_or_else(|errors| panic!("fixture does not compile: {errors:?}"));
        assert!(table.has_signed_zones());
        (table, names)
    })
}

/// A combined signing key (Ed25519, made here) for `zone`.
fn signing_key(zone: &steer::zone::Zone) -> steer::dnssec::ZoneKey {
    steer::dnssec::ZoneKey::generate_ed25519(steer::table::wire_lower(&zone.origin))
        .expect("an Ed25519 key")
}

/// Responds and checks what holds for every packet, valid or not.
fn respond_checked(packet: &[u8], transport: Transport) -> Result<Option<Vec<u8>>, TestCaseError> {
    let (table, _) = fixture();
    let mut out = Vec::new();
    let outcome = respond(table, packet, transport, SOURCE, &mut out);
    let droppable = packet.len() < 12 || packet[2] & 0x80 != 0;
    match outcome {
        Outcome::OverLimit { .. } => Err(TestCaseError::fail(
            "respond() limited a response; only respond_udp() may",
        )),
        Outcome::Drop => {
            prop_assert!(
                droppable,
                "dropped a packet with a header and QR clear: {packet:02x?}"
            );
            Ok(None)
        }
        Outcome::Reply { rcode, .. } => {
            prop_assert!(
                !droppable,
                "replied to a packet without a header or with QR set: {packet:02x?}"
            );
            let response = Message::from_vec(&out).map_err(|error| {
                TestCaseError::fail(format!(
                    "reply does not parse ({error}): {out:02x?} to {packet:02x?}"
                ))
            })?;
            prop_assert_eq!(
                response.metadata.id,
                u16::from_be_bytes([packet[0], packet[1]])
            );
            prop_assert_eq!(response.metadata.message_type, MessageType::Response);
            prop_assert!(!response.metadata.recursion_available, "RA set");
            prop_assert_eq!(
                u16::from(response.metadata.response_code),
                rcode,
                "outcome and header disagree"
            );
            Ok(Some(out))
        }
    }
}

/// The fixture zones served under `[rate_limit]` with a rate of one and
/// `slip = 1` (everything past the first response to a bucket goes out
/// truncated), with its bucket table.
fn limited_fixture() -> &'static (RoutingTable, Buckets, tempfile::TempDir) {
    static FIXTURE: OnceLock<(RoutingTable, Buckets, tempfile::TempDir)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let directory = tempfile::tempdir().expect("temporary directory");
        let zones = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_ZONES);
        let config = directory.path().join("steer.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = {:?}\n\
                 [rate_limit]\nresponses_per_second = 1\nslip = 1\n",
                zones.display().to_string()
            ),
        )
        .expect("write the config");
        let built = steer::control::build(&config, 1, &steer::health::AdminState::default())
            .unwrap_or_else(|errors| panic!("the limited fixture does not build: {errors:?}"));
        (built.table, Buckets::new(1 << 12), directory)
    })
}

/// Answers `packet` over UDP under the limits of [`limited_fixture`] and
/// checks a slipped response.
fn respond_limited_checked(packet: &[u8]) -> Result<(), TestCaseError> {
    let (table, buckets, _) = limited_fixture();
    let mut out = Vec::new();
    let outcome = respond_udp(table, buckets, packet, SOURCE, &mut out);
    match outcome {
        Outcome::OverLimit {
            action: OverLimit::Slipped,
            rcode,
            ..
        } => {
            let response = Message::from_vec(&out).map_err(|error| {
                TestCaseError::fail(format!(
                    "slipped reply does not parse ({error}): {out:02x?} to {packet:02x?}"
                ))
            })?;
            prop_assert_eq!(
                response.metadata.id,
                u16::from_be_bytes([packet[0], packet[1]])
            );
            prop_assert_eq!(response.metadata.message_type, MessageType::Response);
            prop_assert!(response.metadata.truncation, "a slip without TC");
            prop_assert!(response.answers.is_empty() && response.authorities.is_empty());
            prop_assert!(response.additionals.is_empty(), "records beyond the OPT");
            prop_assert_eq!(u16::from(response.metadata.response_code), rcode);
            prop_assert!(out.len() <= 1232);
        }
        Outcome::OverLimit { action, .. } => {
            return Err(TestCaseError::fail(format!(
                "slip = 1 sends every limited response truncated, not {action:?}"
            )));
        }
        Outcome::Reply { .. } | Outcome::Drop => {}
    }
    Ok(())
}

/// A valid query for `name` as encoded by hickory-proto, as bytes.
fn query_bytes(
    name: &str,
    record_type: u16,
    edns: Option<(u16, bool)>,
    id: u16,
    flags_rd_cd: (bool, bool),
) -> Vec<u8> {
    let options = common::QueryOptions {
        recursion_desired: flags_rd_cd.0,
        checking_disabled: flags_rd_cd.1,
        edns: edns.is_some(),
        payload_size: edns.map_or(1232, |(size, _)| size),
        dnssec_ok: edns.is_some_and(|(_, dnssec_ok)| dnssec_ok),
        ..common::QueryOptions::default()
    };
    let mut message = common::build_query(name, RecordType::from(record_type), &options);
    message.metadata.id = id;
    message.to_vec().expect("query encodes")
}

/// Names from the fixture, a label added in front (wildcards, NXDOMAIN,
/// below cuts) or not, and names outside every zone.
fn name_strategy() -> impl Strategy<Value = String> {
    let names = fixture().1.clone();
    let in_fixture = proptest::sample::select(names);
    (
        in_fixture,
        proptest::option::of("[a-z0-9][a-z0-9-]{0,11}"),
        proptest::collection::vec(any::<bool>(), 64),
        any::<bool>(),
    )
        .prop_map(|(name, prefix, upper, outside)| {
            let base = if outside {
                name.replace(".test.", ".invalid.")
            } else {
                name
            };
            let full = match prefix {
                Some(label) => format!("{label}.{base}"),
                None => base,
            };
            // Random letter case: the reply must echo it exactly.
            full.chars()
                .zip(upper.iter().cycle())
                .map(|(character, &upper)| {
                    if upper {
                        character.to_ascii_uppercase()
                    } else {
                        character
                    }
                })
                .collect()
        })
}

fn type_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![
        proptest::sample::select(vec![
            1u16, 2, 5, 6, 12, 15, 16, 28, 33, 43, 255, 257, 251, 252, 253, 254, 41, 99
        ]),
        any::<u16>(),
    ]
}

/// Bytes that get past the header: a valid query with bytes changed,
/// truncated or extended.
fn mutated_query_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        name_strategy(),
        type_strategy(),
        proptest::option::of((any::<u16>(), any::<bool>())),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        0usize..8,
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(|(name, record_type, edns, changes, cut, tail)| {
            let mut packet = query_bytes(&name, record_type, edns, 0x7777, (true, false));
            for (index, byte) in changes {
                let at = index.index(packet.len());
                packet[at] = byte;
            }
            packet.truncate(packet.len().saturating_sub(cut));
            packet.extend_from_slice(&tail);
            packet
        })
}

fn transport_strategy() -> impl Strategy<Value = Transport> {
    prop_oneof![
        Just(Transport::Udp),
        Just(Transport::Tcp),
        Just(Transport::Tls)
    ]
}

/// `packet` (a query whose OPT record is last and has no options) with a
/// Padding option of `length` zero bytes.
fn padded(mut packet: Vec<u8>, length: usize) -> Vec<u8> {
    let rdlength = packet.len() - 2;
    packet[rdlength..].copy_from_slice(&u16::try_from(4 + length).expect("short").to_be_bytes());
    packet.extend_from_slice(&12u16.to_be_bytes());
    packet.extend_from_slice(&u16::try_from(length).expect("short").to_be_bytes());
    packet.resize(packet.len() + length, 0);
    packet
}

proptest! {
    // No regression files in the tree: a failure prints its minimal input.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_query_never_panics_and_stays_in_bounds(packet in proptest::collection::vec(any::<u8>(), 0..600)) {
        match wire::parse_query(&packet) {
            Ok(query) => {
                prop_assert!(query.question_end <= packet.len());
                let name = query.name.as_bytes();
                prop_assert!(!name.is_empty() && name.len() <= wire::MAX_NAME_LEN);
                prop_assert_eq!(name.last(), Some(&0u8));
                prop_assert!(!name.iter().any(u8::is_ascii_uppercase), "name not lower-cased");
            }
            Err(ParseError::Drop) => prop_assert!(packet.len() < 12 || packet[2] & 0x80 != 0),
            Err(ParseError::Malformed { question_end, .. } | ParseError::NotImplemented { question_end, .. }) => {
                prop_assert!(question_end.is_none_or(|end| end <= packet.len()));
            }
        }
    }

    #[test]
    fn respond_never_panics_on_random_bytes(
        packet in proptest::collection::vec(any::<u8>(), 0..600),
        transport in transport_strategy(),
    ) {
        respond_checked(&packet, transport)?;
    }

    #[test]
    fn respond_never_panics_on_mutated_queries(packet in mutated_query_strategy(), transport in transport_strategy()) {
        respond_checked(&packet, transport)?;
    }

    #[test]
    fn slipped_responses_are_well_formed(
        random in proptest::collection::vec(any::<u8>(), 0..600),
        mutated in mutated_query_strategy(),
    ) {
        respond_limited_checked(&random)?;
        respond_limited_checked(&mutated)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn well_formed_queries_round_trip(
        name in name_strategy(),
        record_type in type_strategy(),
        edns in proptest::option::of((any::<u16>(), any::<bool>())),
        id in any::<u16>(),
        flags in (any::<bool>(), any::<bool>()),
        transport in transport_strategy(),
    ) {
        let packet = query_bytes(&name, record_type, edns, id, flags);
        let reply = respond_checked(&packet, transport)?;
        let reply = reply.ok_or_else(|| TestCaseError::fail("a well-formed query was dropped"))?;
        let query = Message::from_vec(&packet).expect("our own query parses");
        let response = Message::from_vec(&reply).expect("checked above");
        prop_assert_eq!(response.queries.len(), 1);
        let question = &response.queries[0];
        // Exactly as sent: the name's letter case too.
        prop_assert_eq!(question.name().to_ascii(), query.queries[0].name().to_ascii());
        prop_assert_eq!(question.query_type(), query.queries[0].query_type());
        prop_assert_eq!(question.query_class(), query.queries[0].query_class());
        prop_assert_eq!(response.metadata.recursion_desired, flags.0, "RD not copied");
        prop_assert_eq!(response.metadata.checking_disabled, flags.1, "CD not copied");
        // OPT in, OPT out (FORMERR for qtype OPT is a header-only answer too).
        if u16::from(response.metadata.response_code) != 1 {
            prop_assert_eq!(response.edns.is_some(), edns.is_some(), "OPT not echoed as it came");
        }
        if let Some(response_edns) = &response.edns {
            prop_assert_eq!(response_edns.max_payload(), 1232);
            prop_assert_eq!(response_edns.flags().dnssec_ok, edns.is_some_and(|(_, dnssec_ok)| dnssec_ok));
        }
        if transport == Transport::Udp {
            let limit = match edns {
                None => 512,
                Some((size, _)) => usize::from(size.clamp(512, 1232)),
            };
            prop_assert!(reply.len() <= limit, "{} bytes over UDP, limit {limit}", reply.len());
        }
        if response.metadata.truncation {
            prop_assert!(transport == Transport::Udp, "TC over TCP");
            prop_assert!(response.answers.is_empty() && response.authorities.is_empty() && response.additionals.is_empty());
        }
    }
}

/// The fuzz target's seed corpus must be real queries, or fuzzing starts
/// from noise: every seed gets a reply, over both transports.
#[test]
fn fuzz_seed_corpus_is_answered() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/query");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&corpus).expect("fuzz/corpus/query exists") {
        let path = entry.expect("corpus entry").path();
        let packet = std::fs::read(&path).expect("seed readable");
        for transport in [Transport::Udp, Transport::Tcp] {
            let reply = respond_checked(&packet, transport)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert!(reply.is_some(), "{}: dropped", path.display());
        }
        seeds += 1;
    }
    assert!(seeds >= 10, "only {seeds} seeds in {}", corpus.display());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Over TLS a padded query gets a response of whole 468-byte blocks
    /// (RFC 8467) that still parses; an unpadded one gets no padding, and
    /// nothing is padded over TCP.
    #[test]
    fn tls_responses_to_padded_queries_are_whole_blocks(
        name in name_strategy(),
        record_type in type_strategy(),
        padding in proptest::option::of(0usize..600),
        id in any::<u16>(),
    ) {
        let packet = query_bytes(&name, record_type, Some((1232, false)), id, (false, false));
        let packet = match padding {
            Some(length) => padded(packet, length),
            None => packet,
        };
        let (table, _) = fixture();
        let mut tls = Vec::new();
        let outcome = steer::dns::respond_tls(table, &packet, SOURCE, std::time::Duration::from_secs(10), &mut tls);
        prop_assert!(matches!(outcome, Outcome::Reply { .. }), "{outcome:?}");
        let response = Message::from_vec(&tls)
            .map_err(|error| TestCaseError::fail(format!("{error}: {tls:02x?}")))?;
        let has_padding = response
            .edns
            .as_ref()
            .is_some_and(|edns| edns.options().as_ref().iter().any(|(code, _)| u16::from(*code) == 12));
        prop_assert_eq!(has_padding, padding.is_some());
        if padding.is_some() {
            prop_assert_eq!(tls.len() % 468, 0, "{} bytes", tls.len());
        }
        let mut tcp = Vec::new();
        steer::dns::respond_tcp(table, &packet, SOURCE, std::time::Duration::from_secs(10), &mut tcp);
        let response = Message::from_vec(&tcp).expect("the TCP reply parses");
        prop_assert!(!response
            .edns
            .as_ref()
            .is_some_and(|edns| edns.options().as_ref().iter().any(|(code, _)| u16::from(*code) == 12)));
    }

    /// Any bytes: reading a PROXY v2 header never panics, and a header it
    /// accepts lies within the bytes.
    #[test]
    fn proxy_headers_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..80),
        with_signature in any::<bool>(),
    ) {
        let mut bytes = if with_signature { steer::dns::proxy::SIGNATURE.to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&tail);
        if let Ok(header) = steer::dns::proxy::parse(&bytes) {
            prop_assert!(header.length >= steer::dns::proxy::FIXED_LENGTH && header.length <= bytes.len());
        }
        if let Ok(Some(length)) = steer::dns::proxy::total_length(&bytes) {
            prop_assert!(length >= steer::dns::proxy::FIXED_LENGTH);
        }
    }
}
