//! Fuzz target `query`: arbitrary bytes as a query packet, answered by
//! `steer::dns::respond` over UDP and TCP from the golden fixture zones
//! (compiled once, on the first input).
//!
//! Beyond "never panics", it checks what must hold for any packet: a packet
//! is dropped exactly when it has no header or QR set; every reply echoes
//! the id, has QR set, parses with hickory-proto, and over UDP never
//! exceeds the largest payload Steer uses (1232 bytes).

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use steer::dns::{Outcome, Transport, respond};
use steer::table::RoutingTable;

/// The fixture, found from this crate at build time (no path is stored).
const FIXTURE_ZONES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/golden/zones"
);

fn table() -> &'static RoutingTable {
    static TABLE: OnceLock<RoutingTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let zones = steer::zone::load_dir(Path::new(FIXTURE_ZONES))
            .unwrap_or_else(|errors| panic!("fixture zones do not load: {errors:?}"));
        RoutingTable::compile_zones(&zones, 1)
            .unwrap_or_else(|errors| panic!("fixture does not compile: {errors:?}"))
    })
}

fuzz_target!(|packet: &[u8]| {
    let table = table();
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        let outcome = respond(
            table,
            packet,
            transport,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            &mut out,
        );
        let droppable = packet.len() < 12 || packet[2] & 0x80 != 0;
        match outcome {
            Outcome::OverLimit { .. } => {
                panic!("respond() limited a response; only respond_udp() may")
            }
            Outcome::Drop => assert!(droppable, "dropped a query with a header"),
            Outcome::Reply { rcode, .. } => {
                assert!(
                    !droppable,
                    "replied to a packet without header or with QR set"
                );
                assert_eq!(out[..2], packet[..2], "id not echoed");
                assert!(out[2] & 0x80 != 0, "QR not set");
                if transport == Transport::Udp {
                    assert!(out.len() <= 1232, "{} bytes over UDP", out.len());
                }
                let response = Message::from_vec(&out).expect("the reply parses");
                assert_eq!(u16::from(response.metadata.response_code), rcode);
            }
        }
    }
});
