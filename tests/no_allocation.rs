//! The query path does not allocate in the steady state: once its output
//! buffer has grown to size, answering any query, static or steered, with
//! or without Client Subnet, NSID, a cookie or edns-tcp-keepalive, over
//! either transport, malformed or not, under UDP rate limits or not
//! (answered, dropped, truncated or exempt), logged to the query log or
//! not, signed (DO set, RRSIGs and NSEC proofs) or not, makes no heap
//! allocation.
//! Counted by a global allocator that tallies the allocations of the
//! thread they happen on, so nothing else running in the test binary can
//! add to or hide from the count.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption, NSIDPayload};
use hickory_proto::rr::{Name, RecordType};
use steer::config::QueryLogConfig;
use steer::dns::rate_limit::Buckets;
use steer::dns::{Transport, respond_tcp, respond_udp};
use steer::health::AdminState;
use steer::metrics::{DecisionRegistry, Metrics};
use steer::query_log::QueryLog;
use steer::table::RoutingTable;

thread_local! {
    /// Allocations (and reallocations) made by this thread so far.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// count is a const-initialised thread local without a destructor, which
// never allocates when touched.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded as received.
        unsafe { System.realloc(pointer, layout, new_size) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The table the config at `path` compiles to, with the names it steers.
fn table_of(path: &Path) -> (RoutingTable, Vec<(String, RecordType)>) {
    let built = steer::control::build(path, 1, &AdminState::default())
        .unwrap_or_else(|errors| panic!("{}: {errors:#?}", path.display()));
    let steered = built
        .config
        .steering
        .steered
        .iter()
        .map(|steered| {
            let record_type: RecordType =
                steered.record_type.as_str().parse().expect("a record type");
            (steered.name.to_string(), record_type)
        })
        .collect();
    (built.table, steered)
}

fn packet(name: &str, record_type: RecordType, edns: Option<Edns>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 0x4242;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        record_type,
    ));
    message.edns = edns;
    message.to_vec().expect("encodes")
}

fn edns(subnet: Option<(&str, u8)>, nsid: bool) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((address, length)) = subnet {
        let address: IpAddr = address.parse().expect("address");
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(address, length, 0)));
    }
    if nsid {
        edns.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(Vec::new()).expect("empty"),
        ));
        // And a client cookie (RFC 7873), answered with a server cookie,
        // and edns-tcp-keepalive (RFC 7828), answered over TCP.
        edns.options_mut()
            .insert(EdnsOption::Unknown(10, vec![0x24; 8]));
        edns.options_mut()
            .insert(EdnsOption::Unknown(11, Vec::new()));
    }
    edns
}

/// Every kind of query for `names`, with and without EDNS and Client
/// Subnet (IPv4 and IPv6), and a few that are refused or malformed.
fn queries(names: &[(String, RecordType)]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    for (name, record_type) in names {
        packets.push(packet(name, *record_type, None));
        for subnet in [
            None,
            Some(("81.2.69.0", 24)),
            Some(("8.8.8.0", 24)),
            Some(("2001:4860::", 48)),
            Some(("0.0.0.0", 0)),
        ] {
            packets.push(packet(name, *record_type, Some(edns(subnet, true))));
        }
        packets.push(packet(name, RecordType::ANY, Some(edns(None, false))));
        packets.push(packet(name, RecordType::TXT, None));
    }
    packets.push(packet("example.org.", RecordType::A, None));
    packets.push(packet(
        "nope.example.test.",
        RecordType::A,
        Some(edns(None, true)),
    ));
    let mut notify = Message::query();
    notify.metadata.op_code = OpCode::Notify;
    notify.add_query(Query::query(Name::root(), RecordType::SOA));
    packets.push(notify.to_vec().expect("encodes"));
    let mut bad_version = Edns::new();
    bad_version.set_version(1);
    packets.push(packet(
        "ns1.example.test.",
        RecordType::A,
        Some(bad_version),
    ));
    // A question cut short, and a header alone.
    let whole = packet("ns1.example.test.", RecordType::A, None);
    packets.push(whole[..whole.len() - 3].to_vec());
    packets.push(whole[..12].to_vec());
    packets
}

/// Answers every query over both transports from a few client addresses,
/// UDP as the workers do (through the rate limiter, which lets everything
/// through when the table has no limits), and offers each to the query
/// log, which logs every one.
fn answer_all(
    table: &RoutingTable,
    (buckets, log): (&Buckets, &QueryLog),
    packets: &[Vec<u8>],
    out: &mut Vec<u8>,
) -> usize {
    let sources: [IpAddr; 3] = [
        "192.0.2.7".parse().expect("address"),
        "81.2.69.160".parse().expect("address"),
        "2001:db8::7".parse().expect("address"),
    ];
    let mut replies = 0;
    for packet in packets {
        for source in sources {
            let udp = respond_udp(table, buckets, packet, source, out);
            log.record(packet, out, source, Transport::Udp, udp);
            let tcp = respond_tcp(table, packet, source, Duration::from_secs(10), out);
            log.record(packet, out, source, Transport::Tcp, tcp);
            replies += usize::from(udp.is_sent()) + usize::from(tcp.is_sent());
        }
    }
    replies
}

/// The bundled example with UDP rate limits low enough that the passes
/// below are mostly over them: some responses dropped, some truncated,
/// one client network exempt.
fn rate_limited_example(directory: &Path) -> std::path::PathBuf {
    let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for part in ["zones", "geoip"] {
        std::fs::create_dir_all(directory.join(part)).expect("create a directory");
        common::copy_tree(&crate_root.join(part), &directory.join(part));
    }
    let config = std::fs::read_to_string(crate_root.join("steer.toml")).expect("steer.toml");
    let path = directory.join("steer.toml");
    std::fs::write(
        &path,
        format!(
            "{config}\n[rate_limit]\nresponses_per_second = 2\nerrors_per_second = 1\n\
             slip = 3\nexempt = [\"81.2.69.0/24\"]\n"
        ),
    )
    .expect("write the config");
    path
}

#[test]
fn answering_allocates_nothing_once_warm() {
    let zones_only: Vec<(String, RecordType)> = [
        ("example.test.", RecordType::A),
        ("example.test.", RecordType::MX),
        ("ns1.example.test.", RecordType::AAAA),
        ("web.example.test.", RecordType::A),
        ("x.apps.example.test.", RecordType::A),
        ("_sip._udp.example.test.", RecordType::SRV),
        ("nope.example.test.", RecordType::A),
    ]
    .into_iter()
    .map(|(name, record_type)| (name.to_owned(), record_type))
    .collect();
    let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The steering tests' fixture, every step and chain among its names,
    // with its GeoIP database built as they build it.
    let fixture = tempfile::tempdir().expect("temporary directory");
    common::copy_steering_fixture("tests/fixtures/steering", fixture.path());
    let limited = tempfile::tempdir().expect("temporary directory");
    for config in [
        crate_root.join("steer.toml"),
        fixture.path().join("steer.toml"),
        rate_limited_example(limited.path()),
    ] {
        let (table, mut names) = table_of(&config);
        let config = config.display();
        names.extend(zones_only.iter().cloned());
        let packets = queries(&names);
        let (warm, made) = allocations_once_warm(&table, &packets);
        assert!(warm > packets.len(), "{config}: most queries are answered");
        assert_eq!(
            made,
            0,
            "{config}: {made} allocations in {} answers",
            20 * warm
        );
    }
}

/// Answers `packets` once to warm up (as [`answer_all`] does, into a
/// buffer, rate limiter and query log made as the server makes them),
/// then 20 times more: how many were answered in the first pass, and the
/// allocations the 20 made.
fn allocations_once_warm(table: &RoutingTable, packets: &[Vec<u8>]) -> (usize, u64) {
    // As a worker holds it: sized once, reused for every answer.
    let mut out = Vec::with_capacity(65_535);
    // As the server makes it: once, before the workers start.
    let buckets = Buckets::new(1 << 16);
    let log_directory = tempfile::tempdir().expect("temporary directory");
    let (log, writer) = QueryLog::start(
        &QueryLogConfig {
            output: steer::config::QueryLogOutput::File(log_directory.path().join("queries.log")),
            sample: 1,
            format: Default::default(),
        },
        "node",
        Arc::new(DecisionRegistry::default()),
        Arc::new(Metrics::default()),
    )
    .expect("start the query log");
    let warm = answer_all(table, (&buckets, &log), packets, &mut out);
    let before = allocations();
    for _ in 0..20 {
        answer_all(table, (&buckets, &log), packets, &mut out);
    }
    let made = allocations() - before;
    drop(log);
    writer.finish();
    (warm, made)
}

/// A signed zone with every kind of answer a DO query can get.
const SIGNED_ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
@ MX 10 mail
ns1 A 192.0.2.1
mail A 192.0.2.25
www A 192.0.2.10
alias CNAME www
gone CNAME nothing
*.wild TXT \"wildcard\"
a.b.c A 192.0.2.30
sub NS ns.sub
ns.sub A 192.0.2.53
";

#[test]
fn signed_answers_allocate_nothing_once_warm() {
    for denial in ["", "nsec3 = true\n"] {
        signed_answers_allocate_nothing(denial);
    }
}

/// [`signed_answers_allocate_nothing_once_warm`] with `denial` added to
/// `[dnssec]` (NSEC by default, or NSEC3).
fn signed_answers_allocate_nothing(denial: &str) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path();
    std::fs::create_dir_all(path.join("zones")).expect("zones directory");
    std::fs::write(path.join("zones/example.test.zone"), SIGNED_ZONE).expect("zone file");
    std::fs::create_dir_all(path.join("keys")).expect("keys directory");
    for extra in [&["-f", "KSK"][..], &[]] {
        let status = std::process::Command::new("dnssec-keygen")
            .args(["-q", "-K"])
            .arg(path.join("keys"))
            .args(["-a", "ECDSAP256SHA256"])
            .args(extra)
            .arg("example.test")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("dnssec-keygen (Debian's bind9-utils) runs");
        assert!(status.success(), "dnssec-keygen failed");
    }
    let config = path.join("steer.toml");
    // A steered name too, answered per client and signed per RRset.
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[dnssec]\nkeys = \"keys\"\n{denial}{}\n\
             [[steer]]\nname = \"steered.example.test.\"\ntype = \"A\"\n\
             pools = [\"web-iad\", \"web-fra\"]\n\
             policy = [{{ cidr = {{ \"81.2.69.0/24\" = [\"web-fra\"] }} }}, \"priority\"]\n",
            common::WEB_POOLS
        ),
    )
    .expect("config");
    let (table, _) = table_of(&config);
    assert!(table.has_signed_zones());
    let mut packets = Vec::new();
    for (name, record_type) in [
        ("example.test.", RecordType::DNSKEY),
        ("example.test.", RecordType::MX),
        ("example.test.", RecordType::ANY),
        ("www.example.test.", RecordType::A),
        ("www.example.test.", RecordType::TXT),
        ("alias.example.test.", RecordType::A),
        ("gone.example.test.", RecordType::A),
        ("x.wild.example.test.", RecordType::TXT),
        ("x.wild.example.test.", RecordType::A),
        ("b.c.example.test.", RecordType::A),
        ("nope.example.test.", RecordType::A),
        ("a.b.nope.example.test.", RecordType::AAAA),
        ("host.sub.example.test.", RecordType::A),
        ("sub.example.test.", RecordType::DS),
        ("steered.example.test.", RecordType::A),
        ("steered.example.test.", RecordType::AAAA),
    ] {
        let mut signed = edns(None, true);
        signed.set_dnssec_ok(true);
        packets.push(packet(name, record_type, Some(signed)));
        packets.push(packet(name, record_type, Some(edns(None, false))));
    }
    let (warm, made) = allocations_once_warm(&table, &packets);
    assert_eq!(warm, packets.len() * 6, "every query is answered");
    assert_eq!(
        made,
        0,
        "{denial}: {made} allocations in {} answers",
        20 * warm
    );
}
