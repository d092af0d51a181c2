//! Property test of latency steering: the ECS scope of an answer never
//! covers a client whose decision differs.
//!
//! Each case makes a random latency matrix from a seed: nested IPv4 and
//! IPv6 prefixes, each with RTTs to some of three sites, and a config
//! steering `www.lat.test.` A and AAAA with `["latency", "priority"]` over
//! one pool per site. The table is built with `steer::control::build`, so
//! the matrix file is parsed and compiled as in production, and queried
//! with `steer::dns::respond` with an ECS option holding the whole client
//! address (`[ecs]` is raised to /32 and /128).
//!
//! The oracle evaluates one address: the longest matching matrix prefix
//! gives the RTTs; the pools with an RTT come first, fastest first (ties
//! in pool order), then the others in pool order; `priority` keeps the
//! first. For every answer, the oracle's decision is checked at the first
//! and last address of the scope and at random addresses inside it.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use steer::dns::Transport;
use steer::health::AdminState;

const NAME: &str = "www.lat.test.";
const SITES: [&str; 3] = ["ams", "fra", "iad"];
/// The address each site's pool answers, per family.
const V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(192, 0, 2, 2),
    Ipv4Addr::new(192, 0, 2, 3),
];
const V6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3),
];

/// SplitMix64: the world is a pure function of the seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^ (value >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// One matrix prefix: network bits, length, width (32 or 128), RTT per site.
#[derive(Clone, Debug)]
struct Row {
    network: u128,
    length: u8,
    width: u8,
    rtts: [Option<u32>; 3],
}

fn mask(length: u8, width: u8) -> u128 {
    if length == 0 {
        0
    } else {
        (u128::MAX << (128 - u32::from(length))) >> (128 - u32::from(width))
    }
}

fn to_address(bits: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

/// Prefixes nested around a few random anchors, so longest-match matters.
fn world(seed: u64) -> Vec<Row> {
    let mut random = Random(seed);
    let mut rows: Vec<Row> = Vec::new();
    for width in [32u8, 128] {
        for _ in 0..4 {
            let anchor = if width == 32 {
                u128::from(random.next() as u32)
            } else {
                // Inside 2001:db8::/32-ish space and elsewhere.
                (u128::from(random.next()) << 64) | u128::from(random.next())
            };
            let mut length = 4 + random.below(8) as u8;
            while length <= width - 4 {
                let network = anchor & mask(length, width);
                let rtts = std::array::from_fn(|_| {
                    (random.below(4) > 0).then(|| 1 + random.below(200) as u32)
                });
                if !rows
                    .iter()
                    .any(|row| row.width == width && row.network == network && row.length == length)
                {
                    rows.push(Row {
                        network,
                        length,
                        width,
                        rtts,
                    });
                }
                length += 1 + random.below(if width == 32 { 6 } else { 24 }) as u8;
            }
        }
    }
    rows
}

fn matrix_text(rows: &[Row]) -> String {
    let mut text = String::from("selector,site,rtt_ms\n");
    for row in rows {
        for (site, rtt) in row.rtts.iter().enumerate() {
            if let Some(rtt) = rtt {
                text.push_str(&format!(
                    "{}/{},{},{rtt}\n",
                    to_address(row.network, row.width),
                    row.length,
                    SITES[site]
                ));
            }
        }
    }
    text
}

fn config_text() -> String {
    let mut text = String::from(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [ecs]\nmax_source_v4 = 32\nmax_source_v6 = 128\n\
         [latency]\nmatrix = \"latency.csv\"\n",
    );
    for (index, site) in SITES.iter().enumerate() {
        text.push_str(&format!(
            "[sites.{site}]\n[pools.{site}]\nsite = \"{site}\"\naddresses = [\"{}\", \"{}\"]\n",
            V4[index], V6[index]
        ));
    }
    for record_type in ["A", "AAAA"] {
        text.push_str(&format!(
            "[[steer]]\nname = \"{NAME}\"\ntype = \"{record_type}\"\n\
             pools = [\"ams\", \"fra\", \"iad\"]\npolicy = [\"latency\", \"priority\"]\n"
        ));
    }
    text
}

/// The site the oracle picks for `address`.
fn oracle(rows: &[Row], bits: u128, width: u8) -> usize {
    let best = rows
        .iter()
        .filter(|row| row.width == width && bits & mask(row.length, width) == row.network)
        .filter(|row| row.rtts.iter().any(Option::is_some))
        .max_by_key(|row| row.length);
    let Some(row) = best else {
        return 0;
    };
    // Fastest measured site; ties go to the earlier pool (a stable sort).
    (0..3)
        .filter_map(|site| row.rtts[site].map(|rtt| (rtt, site)))
        .min()
        .map_or(0, |(_, site)| site)
}

fn answered_site(addresses: &[IpAddr]) -> usize {
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    match addresses[0] {
        IpAddr::V4(address) => V4.iter().position(|known| *known == address),
        IpAddr::V6(address) => V6.iter().position(|known| *known == address),
    }
    .expect("a pool address")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_scope_never_covers_a_client_whose_decision_differs(seed in any::<u64>()) {
        let rows = world(seed);
        let directory = common::example_directory(&config_text());
        std::fs::write(
            directory.path().join("zones/lat.test.zone"),
            "$ORIGIN lat.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.53\n",
        ).expect("zone");
        std::fs::write(directory.path().join("latency.csv"), matrix_text(&rows)).expect("matrix");
        let built = steer::control::build(
            &directory.path().join("steer.toml"),
            1,
            &AdminState::default(),
        )
        .unwrap_or_else(|errors| panic!("build: {}", errors.join("\n")));
        let mut random = Random(seed ^ 0x5555);
        for case in 0..200 {
            // Clients at and around matrix prefixes, and anywhere.
            let width = if case % 2 == 0 { 32 } else { 128 };
            let candidates: Vec<&Row> = rows.iter().filter(|row| row.width == width).collect();
            let bits = if case % 3 == 0 || candidates.is_empty() {
                if width == 32 { u128::from(random.next() as u32) } else {
                    (u128::from(random.next()) << 64) | u128::from(random.next())
                }
            } else {
                let row = candidates[random.below(candidates.len() as u64) as usize];
                let host = !mask(row.length, width) & mask(width, width);
                let offset = (u128::from(random.next()) << 64 | u128::from(random.next())) & host;
                row.network | offset
            };
            let address = to_address(bits, width);
            let record_type = if width == 32 { RecordType::A } else { RecordType::AAAA };
            let mut out = Vec::new();
            steer::dns::respond(
                &built.table,
                &common::ecs_query(NAME, address, record_type),
                Transport::Udp,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                &mut out,
            );
            let answer = common::read_steered(&out);
            let site = answered_site(&answer.addresses);
            prop_assert_eq!(site, oracle(&rows, bits, width), "client {}", address);
            let scope = answer.scope;
            prop_assert!(scope <= width);
            let network = bits & mask(scope, width);
            let host = !mask(scope, width) & mask(width, width);
            let mut probes = vec![network, network | host];
            for _ in 0..16 {
                probes.push(network | ((u128::from(random.next()) << 64 | u128::from(random.next())) & host));
            }
            for probe in probes {
                prop_assert_eq!(
                    oracle(&rows, probe, width),
                    site,
                    "{}/{} covers {} whose decision differs",
                    to_address(network, width), scope, to_address(probe, width)
                );
            }
        }
    }
}
