//! Property tests of steering: the merged prefix maps of a compiled table
//! against the policy evaluated one address at a time.
//!
//! Each case makes a random-ish world from a seed: a location database of
//! nested IPv4 and IPv6 networks (written with `steer::geo::writer`), a geo
//! map and a CIDR map over eight pools, and a config steering
//! `www.prop.test.` A and AAAA with `[geo, cidr, priority]`. The table is
//! built with `steer::control::build` from files in a temporary directory,
//! so the whole pipeline runs, and queried with `steer::dns::respond`
//! directly, with an ECS option holding the full client address (the
//! config raises `[ecs]` to /32 and /128, so nothing is shortened).
//!
//! The reference ("oracle") is the chain evaluated for one address:
//! `GeoDatabase::locate` for its location, the longest matching CIDR entry
//! found here, and `steer::policy::locate` for the pools. That decision is
//! constant between consecutive network boundaries (starts and ends of
//! every database network and CIDR entry), so whether it is constant over a
//! whole prefix can be checked exactly at those boundaries.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use steer::config::steering::{IpNet, Step};
use steer::dns::{Outcome, Transport};
use steer::geo::GeoDatabase;
use steer::geo::writer::{DatabaseWriter, Value};
use steer::health::AdminState;
use steer::policy::PoolPlace;
use steer::table::RoutingTable;

const NAME: &str = "www.prop.test.";
const POOLS: usize = 8;

/// SplitMix64: the world is a pure function of the proptest seed.
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

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn wide(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    /// Between 1 and `most` distinct pool ids, in random order.
    fn pools(&mut self, most: u64) -> Vec<String> {
        let count = 1 + self.below(most);
        let mut chosen: Vec<String> = Vec::new();
        while chosen.len() < count as usize {
            let id = format!("p{}", self.below(POOLS as u64));
            if !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        chosen
    }
}

/// What a database record says about a client.
struct Place {
    country: &'static str,
    continent: &'static str,
    subdivision: &'static str,
    coordinates: Option<(f64, f64)>,
}

const fn place(
    country: &'static str,
    continent: &'static str,
    subdivision: &'static str,
    coordinates: Option<(f64, f64)>,
) -> Place {
    Place {
        country,
        continent,
        subdivision,
        coordinates,
    }
}

/// The places records can hold ("" for absent). France has no continent
/// (Steer derives EU from the country); the last has no country at all,
/// only an ASN.
const PLACES: [Place; 11] = [
    place("GB", "EU", "ENG", Some((51.51, -0.09))),
    place("GB", "EU", "", Some((54.0, -2.0))),
    place("DE", "EU", "BY", Some((48.14, 11.58))),
    place("FR", "", "", None),
    place("US", "NA", "CA", Some((37.77, -122.42))),
    place("US", "NA", "VA", Some((38.96, -77.36))),
    place("CA", "NA", "", Some((43.65, -79.38))),
    place("JP", "AS", "13", Some((35.68, 139.69))),
    place("AU", "OC", "", Some((-33.87, 151.21))),
    place("NA", "AF", "", Some((-22.56, 17.07))),
    place("", "", "", None),
];

/// Keys the geo map may use.
const REGIONS: [&str; 12] = [
    "GB-ENG",
    "GB",
    "EU",
    "US-CA",
    "US",
    "NA",
    "country:NA",
    "AS",
    "OC",
    "AF",
    "DE",
    "FR",
];

/// The record of `PLACES[index]`, in MaxMind's City schema.
fn record(index: usize, asn: u32) -> Value {
    let Place {
        country,
        continent,
        subdivision,
        coordinates,
    } = PLACES[index];
    let mut pairs = Vec::new();
    if !continent.is_empty() {
        pairs.push(("continent", Value::map([("code", Value::from(continent))])));
    }
    if !country.is_empty() {
        pairs.push(("country", Value::map([("iso_code", Value::from(country))])));
    }
    if let Some((latitude, longitude)) = coordinates {
        pairs.push((
            "location",
            Value::map([
                ("latitude", Value::Double(latitude)),
                ("longitude", Value::Double(longitude)),
            ]),
        ));
    }
    if !subdivision.is_empty() {
        pairs.push((
            "subdivisions",
            Value::Array(vec![Value::map([("iso_code", Value::from(subdivision))])]),
        ));
    }
    pairs.push(("autonomous_system_number", Value::Uint32(asn)));
    Value::map(pairs)
}

/// `bits` of a `width`-bit address with everything past `length` cleared.
fn network_of(bits: u128, length: u8, width: u8) -> u128 {
    if length == 0 {
        return 0;
    }
    let host = if length >= width {
        0
    } else {
        (1u128 << (width - length)) - 1
    };
    bits & !host
}

/// One past the last address of `start/length`, unless that is past the
/// end of the address space.
fn end_of(start: u128, length: u8, width: u8) -> Option<u128> {
    let size = 1u128.checked_shl(u32::from(width - length))?;
    start
        .checked_add(size)
        .filter(|&end| end <= mask_width(width))
}

fn to_address(bits: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

fn address_bits(address: IpAddr) -> (u128, u8) {
    match address {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// A generated database and policy, as networks.
struct World {
    /// (network bits, length, place) per family; IPv4 bits in the low 32.
    v4: Vec<(u128, u8, usize)>,
    v6: Vec<(u128, u8, usize)>,
    cidr: Vec<(IpAddr, u8, Vec<String>)>,
    geo: Vec<(&'static str, Vec<String>)>,
    default: Option<Vec<String>>,
}

/// Networks nested in each other (a more specific one wins) and fresh ones.
fn networks(random: &mut Random, width: u8, count: usize) -> Vec<(u128, u8, usize)> {
    let mut networks: Vec<(u128, u8, usize)> = Vec::new();
    while networks.len() < count {
        let (bits, length) = if !networks.is_empty() && random.chance(65) {
            let (outer, outer_length, _) = networks[random.below(networks.len() as u64) as usize];
            let length = (outer_length + 1 + random.below(8) as u8).min(width);
            (inside(random, outer, outer_length, width), length)
        } else if width == 32 {
            (u128::from(random.next() as u32), 4 + random.below(17) as u8)
        } else {
            // Away from ::/96 (IPv4), ::ffff:0:0/96 and 2002::/16, where the
            // tree holds the IPv4 records.
            let top = 0x2400u128 + u128::from(random.below(0x800));
            (
                (top << 112) | (random.wide() >> 16),
                20 + random.below(30) as u8,
            )
        };
        let bits = network_of(bits, length, width);
        if networks
            .iter()
            .any(|&(known, known_length, _)| (known, known_length) == (bits, length))
        {
            continue;
        }
        networks.push((bits, length, random.below(PLACES.len() as u64) as usize));
    }
    networks
}

/// A random address inside `network/length`.
fn inside(random: &mut Random, network: u128, length: u8, width: u8) -> u128 {
    network_of(network, length, width) | (random.wide() & host_bits(length, width))
}

/// The bits of a `width`-bit address past a prefix of `length`.
fn host_bits(length: u8, width: u8) -> u128 {
    mask_width(width)
        .checked_shr(u32::from(length))
        .unwrap_or(0)
}

fn mask_width(width: u8) -> u128 {
    if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

fn world(seed: u64) -> World {
    let mut random = Random(seed);
    let v4 = networks(&mut random, 32, 40);
    let v6 = networks(&mut random, 128, 20);
    // CIDR entries: some inside database networks, some anywhere.
    let mut cidr: Vec<(IpAddr, u8, Vec<String>)> = Vec::new();
    let entries = 2 + random.below(10);
    while cidr.len() < entries as usize {
        let (family, width) = if random.chance(70) {
            (&v4, 32u8)
        } else {
            (&v6, 128u8)
        };
        let (outer, outer_length, _) = family[random.below(family.len() as u64) as usize];
        let length = if random.chance(70) {
            (outer_length + random.below(10) as u8).min(width)
        } else {
            outer_length.saturating_sub(random.below(6) as u8)
        };
        let bits = network_of(
            inside(&mut random, outer, outer_length, width),
            length,
            width,
        );
        let address = to_address(bits, width);
        if cidr
            .iter()
            .any(|(known, known_length, _)| (*known, *known_length) == (address, length))
        {
            continue;
        }
        cidr.push((address, length, random.pools(3)));
    }
    let mut geo: Vec<(&'static str, Vec<String>)> = Vec::new();
    for region in REGIONS {
        if random.chance(55) {
            geo.push((region, random.pools(3)));
        }
    }
    let default = random.chance(50).then(|| random.pools(2));
    World {
        v4,
        v6,
        cidr,
        geo,
        default,
    }
}

fn quoted_list(pools: &[String]) -> String {
    let items: Vec<String> = pools.iter().map(|pool| format!("\"{pool}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// Writes the database, zone and config of `world` into `directory`.
fn write_world(world: &World, directory: &Path) {
    let mut writer = DatabaseWriter::new("Steer-Property-City");
    writer.build_epoch(0);
    for (index, &(bits, length, place)) in world.v4.iter().chain(&world.v6).enumerate() {
        let width = if index < world.v4.len() { 32 } else { 128 };
        writer
            .insert(
                to_address(bits, width),
                length,
                record(place, 64_500 + place as u32),
            )
            .expect("network fits the database");
    }
    writer
        .write_file(&directory.join("geo.mmdb"))
        .expect("writing geo.mmdb");

    let zones = directory.join("zones");
    std::fs::create_dir_all(&zones).expect("zones directory");
    std::fs::write(
        zones.join("prop.test.zone"),
        "$ORIGIN prop.test.\n$TTL 300\n\
         @ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n\
         @ IN NS ns1\nns1 IN A 192.0.2.53\n",
    )
    .expect("writing the zone");

    let mut config = String::from(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\n\n\
         [geoip]\ndatabase = \"geo.mmdb\"\n\n\
         [ecs]\nmax_source_v4 = 32\nmax_source_v6 = 128\n\n",
    );
    for pool in 0..POOLS {
        let _ = write!(
            config,
            "[sites.s{pool}]\nlocation = [{}.5, {}.5]\n\n\
             [pools.p{pool}]\nsite = \"s{pool}\"\naddresses = [\"198.18.0.{}\", \"2001:db8:ffff::{}\"]\n\n",
            pool * 10,
            pool * 20,
            pool + 1,
            pool + 1
        );
    }
    let mut geo: Vec<String> = world
        .geo
        .iter()
        .map(|(region, pools)| format!("\"{region}\" = {}", quoted_list(pools)))
        .collect();
    if let Some(default) = &world.default {
        geo.push(format!("default = {}", quoted_list(default)));
    }
    if geo.is_empty() {
        // geo needs one key; a region no record has changes nothing.
        geo.push("AN = [\"p0\"]".to_owned());
    }
    let cidr: Vec<String> = world
        .cidr
        .iter()
        .map(|(address, length, pools)| format!("\"{address}/{length}\" = {}", quoted_list(pools)))
        .collect();
    let all_pools: Vec<String> = (0..POOLS).map(|pool| format!("p{pool}")).collect();
    for record_type in ["A", "AAAA"] {
        let _ = write!(
            config,
            "[[steer]]\nname = \"{NAME}\"\ntype = \"{record_type}\"\nttl = 30\npools = {}\n\
             policy = [{{ geo = {{ {} }} }}, {{ cidr = {{ {} }} }}, \"priority\"]\n\n",
            quoted_list(&all_pools),
            geo.join(", "),
            cidr.join(", ")
        );
    }
    std::fs::write(directory.join("steer.toml"), config).expect("writing steer.toml");
}

/// A compiled world and what the oracle needs.
struct Compiled {
    _directory: tempfile::TempDir,
    table: RoutingTable,
    geo: GeoDatabase,
    policy: Vec<Step>,
    places: Vec<PoolPlace>,
    cidr: Vec<(IpNet, Vec<String>)>,
    /// Pool index → its IPv4 address (the A answer).
    addresses: Vec<Ipv4Addr>,
    /// Sorted boundaries per family, each with the decision from there on.
    boundaries_v4: BTreeMap<u128, Vec<u16>>,
    boundaries_v6: BTreeMap<u128, Vec<u16>>,
}

fn compile(world: &World) -> Compiled {
    let directory = tempfile::tempdir().expect("temporary directory");
    write_world(world, directory.path());
    let built = steer::control::build(
        &directory.path().join("steer.toml"),
        1,
        &AdminState::default(),
    )
    .unwrap_or_else(|errors| panic!("the generated config must build:\n{}", errors.join("\n")));
    let steering = &built.config.steering;
    let geo = GeoDatabase::open(steering.geoip.as_ref().expect("[geoip] is configured"))
        .unwrap_or_else(|errors| panic!("opening geo.mmdb: {}", errors.join("\n")));
    let steered = &steering.steered[0];
    let places: Vec<PoolPlace> = steered
        .pools
        .iter()
        .map(|id| {
            let pool = steering.pool(id).expect("pool exists");
            PoolPlace {
                id: id.clone(),
                coordinates: steering.site(&pool.site).and_then(|site| site.coordinates),
                site: steering
                    .sites
                    .iter()
                    .position(|site| site.id == pool.site)
                    .expect("site exists"),
            }
        })
        .collect();
    let addresses = steered
        .pools
        .iter()
        .map(|id| {
            let number: u8 = id[1..].parse().expect("pool number");
            Ipv4Addr::new(198, 18, 0, number + 1)
        })
        .collect();
    let cidr = steered
        .policy
        .iter()
        .find_map(|step| match step {
            Step::Cidr(entries) => Some(entries.clone()),
            _ => None,
        })
        .expect("the policy has a cidr step");
    let mut compiled = Compiled {
        _directory: directory,
        table: built.table,
        geo,
        policy: steered.policy.clone(),
        places,
        cidr,
        addresses,
        boundaries_v4: BTreeMap::new(),
        boundaries_v6: BTreeMap::new(),
    };
    compiled.boundaries_v4 = compiled.boundaries(world, 32);
    compiled.boundaries_v6 = compiled.boundaries(world, 128);
    compiled
}

impl Compiled {
    /// The chain's decision for one address, evaluated on its own, as the
    /// answer sees it: `[geo, cidr, priority]` answers with the first pool
    /// alone, so decisions that agree on it are one (and the table merges
    /// their prefixes).
    fn decision(&self, address: IpAddr) -> Vec<u16> {
        let mut pools = self.full_decision(address);
        pools.truncate(1);
        pools
    }

    /// Every pool the location steps leave, in order.
    fn full_decision(&self, address: IpAddr) -> Vec<u16> {
        let location = self.geo.locate(address).location;
        let matched = self
            .cidr
            .iter()
            .enumerate()
            .filter(|(_, (network, _))| network.contains(address))
            .max_by_key(|(_, (network, _))| network.prefix_len)
            .map(|(index, _)| index);
        steer::policy::locate(&self.policy, &self.places, &location, &[matched], None)
    }

    /// Every address where the decision may change, with the decision
    /// that holds from there to the next one.
    fn boundaries(&self, world: &World, width: u8) -> BTreeMap<u128, Vec<u16>> {
        let mut points: Vec<u128> = vec![0];
        let mut add = |start: u128, length: u8, width: u8| {
            points.push(start);
            points.extend(end_of(start, length, width));
        };
        for (address, length, _) in &world.cidr {
            let (bits, family) = address_bits(*address);
            if family == width {
                add(bits, *length, width);
            }
        }
        if width == 32 {
            for &(bits, length, _) in &world.v4 {
                add(bits, length, 32);
            }
        } else {
            for &(bits, length, _) in &world.v6 {
                add(bits, length, 128);
            }
            // In an IPv6 tree the IPv4 records sit at ::/96 and, through the
            // writer's aliases, at ::ffff:0:0/96 and 2002::/16.
            add(0, 96, 128);
            add(0xffff_u128 << 32, 96, 128);
            add(0x2002_u128 << 112, 16, 128);
            for &(bits, length, _) in &world.v4 {
                add(bits, length + 96, 128);
                add((0xffff_u128 << 32) | bits, length + 96, 128);
                add((0x2002_u128 << 112) | (bits << 80), length + 16, 128);
            }
        }
        points.sort_unstable();
        points.dedup();
        points
            .into_iter()
            .filter(|&point| point <= mask_width(width))
            .map(|point| (point, self.decision(to_address(point, width))))
            .collect()
    }

    /// Whether the oracle's decision is the same over all of
    /// `network/length`.
    fn constant_over(&self, network: u128, length: u8, width: u8) -> bool {
        let boundaries = if width == 32 {
            &self.boundaries_v4
        } else {
            &self.boundaries_v6
        };
        let start = network_of(network, length, width);
        let first = self.decision(to_address(start, width));
        let last = start | host_bits(length, width);
        boundaries
            .range(start..=last)
            .all(|(_, decision)| *decision == first)
    }

    /// Answers `qtype` for `address` with an ECS option of the whole address.
    fn respond(&self, address: IpAddr, qtype: RecordType) -> (Vec<u8>, common::SteeredAnswer) {
        let packet = common::ecs_query(NAME, address, qtype);
        let mut out = Vec::new();
        let outcome = steer::dns::respond(
            &self.table,
            &packet,
            Transport::Udp,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            &mut out,
        );
        assert!(
            matches!(outcome, Outcome::Reply { rcode: 0, .. }),
            "{address}: {outcome:?}"
        );
        let answer = common::read_steered(&out);
        (out, answer)
    }
}

/// Client addresses worth asking about: inside database networks and CIDR
/// entries (often at their edges), IPv6 forms of the IPv4 networks (mapped,
/// 6to4, and at ::/96, where the tree keeps IPv4), and anywhere.
fn client(world: &World, random: &mut Random) -> IpAddr {
    let (bits, length, width) = match random.below(8) {
        0 | 1 => {
            let (bits, length, _) = world.v4[random.below(world.v4.len() as u64) as usize];
            (bits, length, 32)
        }
        2 => {
            let (bits, length, _) = world.v6[random.below(world.v6.len() as u64) as usize];
            (bits, length, 128)
        }
        3 => {
            let (address, length, _) = &world.cidr[random.below(world.cidr.len() as u64) as usize];
            let (bits, width) = address_bits(*address);
            (bits, *length, width)
        }
        4 => (0, 0, 32),
        5 => (0, 0, 128),
        _ => {
            let (bits, length, _) = world.v4[random.below(world.v4.len() as u64) as usize];
            match random.below(3) {
                0 => (bits, length + 96, 128),
                1 => ((0xffff_u128 << 32) | bits, length + 96, 128),
                _ => ((0x2002_u128 << 112) | (bits << 80), length + 16, 128),
            }
        }
    };
    let network = network_of(bits, length, width);
    let host = host_bits(length, width);
    let address = match random.below(4) {
        0 => network,
        1 => network | host,
        _ => inside(random, network, length, width),
    };
    to_address(address, width)
}

/// What the table must answer for a decision: the first pool's address,
/// or nothing (NODATA) when no pool is left.
fn expected_addresses(compiled: &Compiled, decision: &[u16]) -> Vec<IpAddr> {
    decision
        .first()
        .map(|&pool| IpAddr::V4(compiled.addresses[usize::from(pool)]))
        .into_iter()
        .collect()
}

fn describe(world: &World) -> String {
    format!(
        "geo {:?} default {:?}; cidr {:?}",
        world.geo, world.default, world.cidr
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        // The input is a seed: a smaller seed is not a simpler world.
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (a) Every address inside the scope of an answer gets that answer
    /// and scope; (b) the answer is the chain's for that address alone;
    /// and the scope is exactly the widest prefix over which the chain's
    /// decision is the same: constant over it, and not over its parent.
    #[test]
    fn merged_map_agrees_with_the_chain_address_by_address(seed in any::<u64>()) {
        let world = world(seed);
        let compiled = compile(&world);
        let mut random = Random(seed ^ 0x5eed);
        for _ in 0..150 {
            let address = client(&world, &mut random);
            let (_, answer) = compiled.respond(address, RecordType::A);
            let decision = compiled.decision(address);
            prop_assert_eq!(
                &answer.addresses,
                &expected_addresses(&compiled, &decision),
                "{} (decision {:?}): {}", address, decision, describe(&world)
            );

            let (bits, width) = address_bits(address);
            let scope = answer.scope;
            prop_assert!(scope <= width, "{}: scope {}", address, scope);
            let start = network_of(bits, scope, width);
            let last = start | host_bits(scope, width);
            let samples = [
                start,
                last,
                start | (random.wide() & host_bits(scope, width)),
                start | (random.wide() & host_bits(scope, width)),
                start | (random.wide() & host_bits(scope, width)),
            ];
            for sample in samples {
                let inside = to_address(sample, width);
                let (_, other) = compiled.respond(inside, RecordType::A);
                prop_assert_eq!(
                    &other, &answer,
                    "{} is inside {}/{} of {} but is answered differently: {}",
                    inside, to_address(start, width), scope, address, describe(&world)
                );
            }
            prop_assert!(
                compiled.constant_over(bits, scope, width),
                "{}: the decision changes inside the scope {}/{}: {}",
                address, to_address(start, width), scope, describe(&world)
            );
            if scope > 0 {
                prop_assert!(
                    !compiled.constant_over(bits, scope - 1, width),
                    "{}: scope {} is narrower than needed, the decision holds for /{} too: {}",
                    address, scope, scope - 1, describe(&world)
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (c) Compiling the same files twice gives byte-identical answers
    /// (addresses, TTLs, scopes) for 1,000 addresses, A and AAAA.
    #[test]
    fn compile_is_deterministic(seed in any::<u64>()) {
        let world = world(seed);
        let first = compile(&world);
        let second = compile(&world);
        let mut random = Random(seed ^ 0xd0d0);
        for _ in 0..1000 {
            let address = client(&world, &mut random);
            for qtype in [RecordType::A, RecordType::AAAA] {
                let (one, _) = first.respond(address, qtype);
                let (two, _) = second.respond(address, qtype);
                prop_assert_eq!(one, two, "{} {}: {}", address, qtype, describe(&world));
            }
        }
    }
}

/// The generator must make worlds the properties can say something about:
/// nested networks, answers and NODATA, scopes of many lengths.
#[test]
fn generated_worlds_exercise_the_maps() {
    let mut scopes = std::collections::BTreeSet::new();
    let mut nodata = 0;
    let mut answered = 0;
    for seed in 0..4u64 {
        let world = world(seed);
        let compiled = compile(&world);
        let mut random = Random(seed);
        for _ in 0..200 {
            let address = client(&world, &mut random);
            let (_, answer) = compiled.respond(address, RecordType::A);
            scopes.insert(answer.scope);
            if answer.addresses.is_empty() {
                nodata += 1;
            } else {
                answered += 1;
            }
        }
    }
    assert!(scopes.len() >= 10, "too few distinct scopes: {scopes:?}");
    assert!(
        nodata > 20 && answered > 200,
        "nodata {nodata}, answered {answered}"
    );
}
