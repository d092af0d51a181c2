//! The steering sections: defaults, a full example, region and prefix
//! parsing, map files, and every kind of error with its exact message.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::*;
use crate::config::{ConfigError, parse};

const FILE: &str = "conf/steer.toml";
const SERVER: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\n";

/// Sites fra, iad (with coordinates) and sin (without); pools with both
/// families in each site, one IPv6-only pool and one CNAME pool.
const WORLD: &str = r#"
[geoip]
database = "geoip/city.mmdb"

[sites.fra]
location = [50.11, 8.68]
[sites.iad]
location = [38.94, -77.46]
[sites.sin]

[pools.web-fra]
site = "fra"
addresses = ["192.0.2.10", "2001:db8::10"]
[pools.web-iad]
site = "iad"
addresses = ["198.51.100.10", "2001:db8:1::10"]
[pools.web-sin]
site = "sin"
addresses = ["203.0.113.10", "2001:db8:2::10"]
[pools.v6-only]
site = "fra"
addresses = ["2001:db8:3::10"]
[pools.cdn]
site = "fra"
cname = "fra.cdn.example.net."
"#;

fn parsed(text: &str) -> Result<SteeringConfig, Vec<ConfigError>> {
    parse(Path::new(FILE), &format!("{SERVER}{text}")).map(|config| config.steering)
}

fn config_of(text: &str) -> SteeringConfig {
    match parsed(text) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

fn errors_of(text: &str) -> Vec<String> {
    match parsed(text) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The errors of the world plus one steered name with these keys.
fn steer_errors(steer: &str) -> Vec<String> {
    errors_of(&format!("{WORLD}\n[[steer]]\n{steer}\n"))
}

fn steer_config(steer: &str) -> SteeredName {
    let mut config = config_of(&format!("{WORLD}\n[[steer]]\n{steer}\n"));
    assert_eq!(config.steered.len(), 1);
    config.steered.remove(0)
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn address(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn net(text: &str) -> IpNet {
    IpNet::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_string()).collect()
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default `[latency]` of `conf/steer.toml`: its state file beside it.
fn conf_latency() -> super::LatencyConfig {
    super::LatencyConfig {
        state_file: PathBuf::from("conf/steer.latency"),
        ..super::LatencyConfig::default()
    }
}

// ---------------------------------------------------------------- defaults

#[test]
fn a_file_without_steering_has_an_empty_steering_config() {
    let config = config_of("");
    assert_eq!(
        config,
        SteeringConfig {
            latency: conf_latency(),
            ..SteeringConfig::default()
        }
    );
    assert!(config.is_empty());
    assert_eq!(
        config.ecs,
        EcsConfig {
            max_source_v4: 24,
            max_source_v6: 56
        }
    );
}

#[test]
fn unset_keys_take_their_defaults() {
    let config = config_of(
        r#"
[geoip]
database = "city.mmdb"
[sites.fra]
[pools.web]
site = "fra"
addresses = ["192.0.2.1"]
[[steer]]
name = "www.example.test."
type = "a"
pools = ["web"]
"#,
    );
    assert!(!config.is_empty());
    let geoip = config.geoip.as_ref().expect("geoip");
    assert_eq!(geoip.databases, [PathBuf::from("conf/city.mmdb")]);
    assert_eq!(geoip.asn_database, None);
    assert_eq!(geoip.fields, GeoFields::default());
    assert_eq!(
        geoip.fields.subdivision,
        Some(strings(&["subdivisions", "0", "iso_code"]))
    );
    assert_eq!(
        geoip.fields.latitude,
        Some(strings(&["location", "latitude"]))
    );
    assert_eq!(config.ecs, EcsConfig::default());
    assert_eq!(
        config.sites,
        vec![Site {
            id: "fra".to_string(),
            coordinates: None,
            country: None,
            continent: None,
            latency_target: None,
        }]
    );
    assert_eq!(config.pools[0].weight, 1);
    assert_eq!(
        config.pools[0].members,
        PoolMembers::Addresses(vec![Endpoint {
            address: address("192.0.2.1"),
            weight: 1,
            probe: None,
            probe_target: None,
        }])
    );
    let steered = &config.steered[0];
    assert_eq!(steered.record_type, SteeredType::A);
    assert_eq!(steered.ttl, 60);
    assert_eq!(steered.policy, Vec::new());
    assert_eq!(steered.when_all_down, WhenAllDown::FailOpen);
    assert_eq!(steered.key_path, "steer[0]");
}

#[test]
fn bare_healthy_and_nearest_take_their_defaults() {
    let steered = steer_config(
        r#"name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = ["healthy", { healthy = {} }, { nearest = {} }, "nearest"]"#,
    );
    assert_eq!(
        steered.policy,
        vec![
            Step::Healthy { min_healthy: 0.0 },
            Step::Healthy { min_healthy: 0.0 },
            Step::Nearest { bias_km: vec![] },
            Step::Nearest { bias_km: vec![] },
        ]
    );
}

// ------------------------------------------------------------ full example

#[test]
fn full_example_is_read_as_written() {
    let config = config_of(
        r#"
[geoip]
database = "geoip/sample-city.mmdb"
asn_database = "/srv/geoip/asn.mmdb"
[geoip.fields]
country = "country_code"
continent = "continent.code"
subdivision = ""
latitude = "latitude"
longitude = "longitude"
asn = "autonomous_system_number"

[ecs]
max_source_v4 = 20
max_source_v6 = 48

[sites.sin]
location = [1.35, 103.82]
country = "SG"
continent = "as"
[sites.fra]
location = [50.11, 8]
country = "de"
continent = "EU"
[sites.cdn]

[pools.web-fra]
site = "fra"
weight = 3
addresses = ["192.0.2.10", { address = "192.0.2.11", weight = 2 }, "2001:db8::10"]
[pools.web-sin]
site = "sin"
weight = 0
addresses = [{ address = "2001:db8:2::10" }, "203.0.113.10"]
[pools.edge]
site = "cdn"
cname = "Edge.CDN.example.net."

[[steer]]
name = "www.example.test."
type = "A"
ttl = 30
pools = ["web-sin", "web-fra"]
policy = [
  { healthy = { min_healthy = 0.5 } },
  { geofence = { web-sin = ["AS", "country:au", "oc"], web-fra = ["continent:EU"] } },
  { geo = { EU = ["web-fra"], DE = ["web-fra"], "country:NA" = ["web-sin"], default = ["web-fra", "web-sin"] } },
  { cidr = { "81.2.69.0/24" = ["web-fra"], "2001:db8::/32" = ["web-sin"], "10.1.2.3" = ["web-fra"] } },
  { asn = { "3320" = ["web-fra"], AS701 = ["web-sin", "web-fra"] } },
  { nearest = { bias = { web-fra = -200.0, web-sin = 150 } } },
  "priority", "weighted", "sticky",
  { first = 2 },
]
when_all_down = { pool = "web-fra" }

[[steer]]
name = "www.example.test."
type = "AAAA"
pools = ["web-fra", "web-sin"]
when_all_down = "servfail"

[[steer]]
name = "cdn.example.test."
type = "cname"
ttl = 0
pools = ["edge"]
when_all_down = "nodata"

[[steer]]
name = "api.example.test."
type = "A"
pools = ["web-fra"]
when_all_down = "fail_open"
"#,
    );
    let expected = SteeringConfig {
        geoip: Some(GeoConfig {
            databases: vec![PathBuf::from("conf/geoip/sample-city.mmdb")],
            asn_database: Some(PathBuf::from("/srv/geoip/asn.mmdb")),
            fields: GeoFields {
                country: Some(strings(&["country_code"])),
                continent: Some(strings(&["continent", "code"])),
                subdivision: None,
                latitude: Some(strings(&["latitude"])),
                longitude: Some(strings(&["longitude"])),
                asn: Some(strings(&["autonomous_system_number"])),
            },
        }),
        ecs: EcsConfig {
            max_source_v4: 20,
            max_source_v6: 48,
        },
        sites: vec![
            Site {
                id: "cdn".to_string(),
                coordinates: None,
                country: None,
                continent: None,
                latency_target: None,
            },
            Site {
                id: "fra".to_string(),
                coordinates: Some((50.11, 8.0)),
                country: Some("DE".to_string()),
                continent: Some("EU".to_string()),
                latency_target: None,
            },
            Site {
                id: "sin".to_string(),
                coordinates: Some((1.35, 103.82)),
                country: Some("SG".to_string()),
                continent: Some("AS".to_string()),
                latency_target: None,
            },
        ],
        pools: vec![
            Pool {
                id: "edge".to_string(),
                site: "cdn".to_string(),
                weight: 1,
                members: PoolMembers::Cname(name("Edge.CDN.example.net.")),
                probe: None,
                min_healthy: None,
            },
            Pool {
                id: "web-fra".to_string(),
                site: "fra".to_string(),
                weight: 3,
                members: PoolMembers::Addresses(vec![
                    Endpoint {
                        address: address("192.0.2.10"),
                        weight: 1,
                        probe: None,
                        probe_target: None,
                    },
                    Endpoint {
                        address: address("192.0.2.11"),
                        weight: 2,
                        probe: None,
                        probe_target: None,
                    },
                    Endpoint {
                        address: address("2001:db8::10"),
                        weight: 1,
                        probe: None,
                        probe_target: None,
                    },
                ]),
                probe: None,
                min_healthy: None,
            },
            Pool {
                id: "web-sin".to_string(),
                site: "sin".to_string(),
                weight: 0,
                members: PoolMembers::Addresses(vec![
                    Endpoint {
                        address: address("2001:db8:2::10"),
                        weight: 1,
                        probe: None,
                        probe_target: None,
                    },
                    Endpoint {
                        address: address("203.0.113.10"),
                        weight: 1,
                        probe: None,
                        probe_target: None,
                    },
                ]),
                probe: None,
                min_healthy: None,
            },
        ],
        steered: vec![
            SteeredName {
                name: name("www.example.test."),
                record_type: SteeredType::A,
                ttl: 30,
                pools: strings(&["web-sin", "web-fra"]),
                policy: vec![
                    Step::Healthy { min_healthy: 0.5 },
                    // File order, not the sorted order TOML tables come in.
                    Step::Geofence(vec![
                        (
                            "web-sin".to_string(),
                            vec![
                                Region::Continent("AS".to_string()),
                                Region::Country("AU".to_string()),
                                Region::Continent("OC".to_string()),
                            ],
                        ),
                        (
                            "web-fra".to_string(),
                            vec![Region::Continent("EU".to_string())],
                        ),
                    ]),
                    Step::Geo {
                        map: vec![
                            (Region::Continent("EU".to_string()), strings(&["web-fra"])),
                            (Region::Country("DE".to_string()), strings(&["web-fra"])),
                            (Region::Country("NA".to_string()), strings(&["web-sin"])),
                        ],
                        default: Some(strings(&["web-fra", "web-sin"])),
                    },
                    Step::Cidr(vec![
                        (net("81.2.69.0/24"), strings(&["web-fra"])),
                        (net("2001:db8::/32"), strings(&["web-sin"])),
                        (net("10.1.2.3/32"), strings(&["web-fra"])),
                    ]),
                    Step::Asn(vec![
                        (3320, strings(&["web-fra"])),
                        (701, strings(&["web-sin", "web-fra"])),
                    ]),
                    Step::Nearest {
                        bias_km: vec![
                            ("web-fra".to_string(), -200.0),
                            ("web-sin".to_string(), 150.0),
                        ],
                    },
                    Step::Priority,
                    Step::Weighted,
                    Step::Sticky,
                    Step::First(2),
                ],
                when_all_down: WhenAllDown::Pool("web-fra".to_string()),
                key_path: "steer[0]".to_string(),
            },
            SteeredName {
                name: name("www.example.test."),
                record_type: SteeredType::Aaaa,
                ttl: 60,
                pools: strings(&["web-fra", "web-sin"]),
                policy: vec![],
                when_all_down: WhenAllDown::ServFail,
                key_path: "steer[1]".to_string(),
            },
            SteeredName {
                name: name("cdn.example.test."),
                record_type: SteeredType::Cname,
                ttl: 0,
                pools: strings(&["edge"]),
                policy: vec![],
                when_all_down: WhenAllDown::NoData,
                key_path: "steer[2]".to_string(),
            },
            SteeredName {
                name: name("api.example.test."),
                record_type: SteeredType::A,
                ttl: 60,
                pools: strings(&["web-fra"]),
                policy: vec![],
                when_all_down: WhenAllDown::FailOpen,
                key_path: "steer[3]".to_string(),
            },
        ],
        probes: Vec::new(),
        health: super::HealthConfig::default(),
        latency: conf_latency(),
        peers: None,
        resolver: crate::config::steering::ResolverConfig::default(),
    };
    assert_eq!(config, expected);
    // The lookups other modules use.
    assert_eq!(config.pool("web-sin").map(|pool| pool.weight), Some(0));
    assert_eq!(config.pool("web-iad"), None);
    assert_eq!(
        config.site("fra").and_then(|site| site.coordinates),
        Some((50.11, 8.0))
    );
    assert_eq!(config.site("zzz"), None);
}

#[test]
fn the_bundled_steer_toml_steers_www() {
    let path = manifest().join("steer.toml");
    let config = crate::config::load(&path).expect("the bundled steer.toml is valid");
    let steering = config.steering;
    assert_eq!(
        steering.geoip.as_ref().map(|geoip| geoip.databases.clone()),
        Some(vec![manifest().join("geoip/sample-city.mmdb")])
    );
    let sites = steering
        .sites
        .iter()
        .map(|site| {
            (
                site.id.as_str(),
                site.coordinates,
                site.country.as_deref(),
                site.continent.as_deref(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(
        sites,
        vec![
            ("fra", Some((50.11, 8.68)), Some("DE"), Some("EU")),
            ("iad", Some((38.94, -77.46)), Some("US"), Some("NA")),
            ("sin", Some((1.35, 103.82)), Some("SG"), Some("AS")),
        ]
    );
    let pool_addresses = |id: &str| match steering.pool(id).map(|pool| &pool.members) {
        Some(PoolMembers::Addresses(endpoints)) => endpoints
            .iter()
            .map(|endpoint| endpoint.address.to_string())
            .collect::<Vec<_>>(),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(pool_addresses("web-fra"), ["192.0.2.10", "2001:db8::10"]);
    assert_eq!(
        pool_addresses("web-iad"),
        ["198.51.100.10", "2001:db8:1::10"]
    );
    assert_eq!(
        pool_addresses("web-sin"),
        ["203.0.113.10", "2001:db8:2::10"]
    );
    let continent = |code: &str| Region::Continent(code.to_string());
    let policy = vec![
        Step::Healthy { min_healthy: 0.0 },
        Step::Geo {
            map: vec![
                (continent("EU"), strings(&["web-fra"])),
                (continent("AF"), strings(&["web-fra"])),
                (continent("NA"), strings(&["web-iad"])),
                (continent("SA"), strings(&["web-iad"])),
                (continent("AS"), strings(&["web-sin"])),
                (continent("OC"), strings(&["web-sin"])),
            ],
            default: Some(strings(&["web-iad"])),
        },
        Step::Priority,
    ];
    let steered: Vec<(String, SteeredType, &Vec<Step>)> = steering
        .steered
        .iter()
        .map(|steered| {
            (
                steered.name.to_string(),
                steered.record_type,
                &steered.policy,
            )
        })
        .collect();
    assert_eq!(
        steered,
        vec![
            ("www.example.test.".to_string(), SteeredType::A, &policy),
            ("www.example.test.".to_string(), SteeredType::Aaaa, &policy),
        ]
    );
}

// ----------------------------------------------------------------- regions

#[test]
fn region_keys_follow_the_documented_rules() {
    let cases = [
        ("EU", Region::Continent("EU".to_string())),
        ("na", Region::Continent("NA".to_string())),
        ("DE", Region::Country("DE".to_string())),
        ("us", Region::Country("US".to_string())),
        ("country:NA", Region::Country("NA".to_string())),
        ("Country:as", Region::Country("AS".to_string())),
        ("continent:oc", Region::Continent("OC".to_string())),
        (
            "US-CA",
            Region::Subdivision("US".to_string(), "CA".to_string()),
        ),
        (
            "gb-eng",
            Region::Subdivision("GB".to_string(), "ENG".to_string()),
        ),
        (
            "FR-75C",
            Region::Subdivision("FR".to_string(), "75C".to_string()),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(Region::parse(text), Ok(expected.clone()), "{text}");
        // The displayed form reads back as the same region.
        assert_eq!(Region::parse(&expected.to_string()), Ok(expected), "{text}");
    }
    assert_eq!(Region::Country("NA".to_string()).to_string(), "country:NA");
    assert_eq!(Region::Country("DE".to_string()).to_string(), "DE");
}

#[test]
fn bad_region_keys_are_refused_with_the_reason() {
    let expected = "expected a continent (AF AN AS EU NA OC SA), a country (DE), a \
                    subdivision (US-CA), continent:XX or country:XX";
    for text in [
        "Europe", "D", "DEU", "", "U1", "US-", "-CA", "USA-CA", "US-CALI", "US-C A", "default",
    ] {
        assert_eq!(
            Region::parse(text),
            Err(format!("invalid region \"{text}\": {expected}")),
            "{text}"
        );
    }
    assert_eq!(
        Region::parse("continent:XX"),
        Err(
            "invalid region \"continent:XX\": unknown continent \"XX\", expected one of AF, \
             AN, AS, EU, NA, OC, SA"
                .to_string()
        )
    );
    assert_eq!(
        Region::parse("country:USA"),
        Err(
            "invalid region \"country:USA\": country:XX needs a two-letter country code"
                .to_string()
        )
    );
}

// -------------------------------------------------------- prefixes and ASNs

#[test]
fn prefixes_are_read_and_matched() {
    let prefix = net("81.2.69.0/24");
    assert_eq!(prefix.address, address("81.2.69.0"));
    assert_eq!(prefix.prefix_len, 24);
    assert_eq!(prefix.to_string(), "81.2.69.0/24");
    assert!(prefix.contains(address("81.2.69.255")));
    assert!(!prefix.contains(address("81.2.70.0")));
    assert!(!prefix.contains(address("::ffff:81.2.69.1")));
    assert_eq!(net("192.0.2.7"), net("192.0.2.7/32"));
    assert_eq!(net("2001:db8::1").prefix_len, 128);
    assert_eq!(net("2001:DB8::/32"), net("2001:db8::/32"));
    let everything = net("0.0.0.0/0");
    assert!(everything.contains(address("203.0.113.9")));
    assert!(!everything.contains(address("2001:db8::1")));
    assert!(net("::/0").contains(address("2001:db8::1")));
    assert!(net("2001:db8::/127").contains(address("2001:db8::1")));
}

#[test]
fn prefixes_with_host_bits_show_the_prefix_they_would_be() {
    assert_eq!(
        IpNet::parse("81.2.69.1/24"),
        Err(
            "prefix \"81.2.69.1/24\" has bits set beyond its length; did you mean \
             81.2.69.0/24?"
                .to_string()
        )
    );
    assert_eq!(
        IpNet::parse("2001:db8::1/32"),
        Err(
            "prefix \"2001:db8::1/32\" has bits set beyond its length; did you mean \
             2001:db8::/32?"
                .to_string()
        )
    );
    assert_eq!(
        IpNet::parse("10.0.0.0/33"),
        Err("invalid prefix \"10.0.0.0/33\": the length must be 0 to 32".to_string())
    );
    assert_eq!(
        IpNet::parse("::/129"),
        Err("invalid prefix \"::/129\": the length must be 0 to 128".to_string())
    );
    for text in [
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0/8",
        "ten/8",
        "10.0.0.0/8/8",
        "",
    ] {
        assert_eq!(
            IpNet::parse(text),
            Err(format!(
                "invalid prefix \"{text}\": expected an address and a length, \
                 e.g. 192.0.2.0/24 or 2001:db8::/32"
            )),
            "{text}"
        );
    }
}

#[test]
fn asns_take_an_optional_as_prefix() {
    assert_eq!(parse_asn("3320"), Ok(3320));
    assert_eq!(parse_asn("AS3320"), Ok(3320));
    assert_eq!(parse_asn("as701"), Ok(701));
    assert_eq!(parse_asn("4294967295"), Ok(u32::MAX));
    for text in ["", "AS", "ASX", "-1", "3320a", "AS 3320", "é1"] {
        assert_eq!(
            parse_asn(text),
            Err(format!(
                "invalid ASN \"{text}\": expected a number such as 3320 or AS3320"
            )),
            "{text}"
        );
    }
    assert_eq!(
        parse_asn("4294967296"),
        Err("invalid ASN \"4294967296\": AS numbers are at most 4294967295".to_string())
    );
}

// --------------------------------------------------------------- map files

#[test]
fn map_files_are_read_relative_to_the_config() {
    let path = manifest().join("tests/fixtures/config/steering/steer.toml");
    let config = crate::config::load(&path).expect("valid fixture");
    let steering = config.steering;
    assert_eq!(
        steering.steered[0].policy,
        vec![
            Step::Cidr(vec![
                (net("81.2.69.0/24"), strings(&["web-fra"])),
                (net("192.0.2.7/32"), strings(&["web-iad"])),
                (net("2001:db8::/32"), strings(&["web-iad", "web-fra"])),
                (net("10.0.0.0/8"), strings(&["web-fra", "web-iad"])),
            ]),
            Step::Asn(vec![
                (3320, strings(&["web-fra"])),
                (701, strings(&["web-iad", "web-fra"])),
                (7018, strings(&["web-iad"])),
            ]),
            Step::Priority,
        ]
    );
    // Both names share the prefix map.
    assert_eq!(steering.steered[1].policy[0], steering.steered[0].policy[0]);
}

#[test]
fn map_file_lines_allow_comments_tabs_and_windows_line_ends() {
    let text = "\u{feff}# header\r\n\r\nAS3320\tweb-fra  web-iad # comment\r\n   # indented\r\n701 web-iad\r\n";
    let (lines, errors) = maps::parse_map_file::<u32>(Path::new("maps/asn.txt"), text);
    assert_eq!(errors, Vec::new());
    assert_eq!(
        lines,
        vec![
            maps::MapLine {
                line: 3,
                key: 3320,
                pools: strings(&["web-fra", "web-iad"]),
            },
            maps::MapLine {
                line: 5,
                key: 701,
                pools: strings(&["web-iad"]),
            },
        ]
    );
    let (lines, errors) =
        maps::parse_map_file::<IpNet>(Path::new("maps/cidr.txt"), "10.0.0.0/8 # no pool\n");
    assert!(lines.is_empty());
    assert_eq!(
        errors,
        vec![ConfigError {
            file: PathBuf::from("maps/cidr.txt"),
            line: Some(1),
            path: None,
            message: "10.0.0.0/8 maps to no pool: expected PREFIX pool [pool...]".to_string(),
        }]
    );
}

#[test]
fn every_map_file_error_names_its_file_and_line() {
    let directory = manifest().join("tests/fixtures/config/steering");
    let errors = crate::config::load(&directory.join("bad-maps.toml")).expect_err("bad maps");
    let shown: Vec<String> = errors
        .iter()
        .map(|error| {
            let text = error.to_string();
            let prefix = format!("{}/", directory.display());
            text.strip_prefix(&prefix).unwrap_or(&text).to_string()
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            "bad-maps/cidr.txt:2: prefix \"81.2.69.1/24\" has bits set beyond its length; did \
             you mean 81.2.69.0/24?",
            "bad-maps/cidr.txt:3: invalid prefix \"10.0.0.0/33\": the length must be 0 to 32",
            "bad-maps/cidr.txt:4: 10.0.0.0/32 maps to no pool: expected PREFIX pool [pool...]",
            "bad-maps/cidr.txt:5: pool \"web-fra\" is listed twice",
            "bad-maps/cidr.txt:6: invalid prefix \"not-a-prefix\": expected an address and a \
             length, e.g. 192.0.2.0/24 or 2001:db8::/32",
            "bad-maps/cidr.txt:10: 2001:db8::/32 is already mapped on line 9",
            "bad-maps/cidr.txt:7: unknown pool \"web-frx\" (used by steer[0].policy[0].cidr.file)",
            "bad-maps/cidr.txt:8: pool \"web-iad\" is not in steer[0].pools (used by \
             steer[0].policy[0].cidr.file)",
            "bad-maps/asn.txt:1: invalid ASN \"ASX\": expected a number such as 3320 or AS3320",
            "bad-maps/asn.txt:2: invalid ASN \"4294967296\": AS numbers are at most 4294967295",
            "bad-maps/asn.txt:4: 3320 is already mapped on line 3",
            "bad-maps/asn.txt:5: unknown pool \"web-frx\" (used by steer[0].policy[1].asn.file)",
        ]
    );
    // Each error is a file:line error, not a key path in steer.toml.
    assert!(
        errors
            .iter()
            .all(|error| error.line.is_some() && error.path.is_none())
    );
}

#[test]
fn a_shared_map_file_reports_its_own_errors_once() {
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        directory.path().join("asn.txt"),
        "AS3320 web-fra\nbad web-fra\n701 web-iad\n",
    )
    .expect("write map");
    let config = format!(
        "{SERVER}{WORLD}
[[steer]]
name = \"www.example.test.\"
type = \"A\"
pools = [\"web-fra\"]
policy = [{{ asn = {{ file = \"asn.txt\" }} }}]
[[steer]]
name = \"www.example.test.\"
type = \"AAAA\"
pools = [\"web-fra\", \"web-iad\"]
policy = [{{ asn = {{ file = \"asn.txt\" }} }}]
"
    );
    let path = directory.path().join("steer.toml");
    std::fs::write(&path, config).expect("write config");
    let errors: Vec<String> = crate::config::load(&path)
        .expect_err("bad map")
        .iter()
        .map(ToString::to_string)
        .collect();
    let map = directory.path().join("asn.txt");
    let map = map.display();
    assert_eq!(
        errors,
        vec![
            format!("{map}:2: invalid ASN \"bad\": expected a number such as 3320 or AS3320"),
            // Pool membership is per steered name: only steer[0] lacks web-iad.
            format!(
                "{map}:3: pool \"web-iad\" is not in steer[0].pools (used by \
                 steer[0].policy[0].asn.file)"
            ),
        ]
    );
}

#[test]
fn an_unreadable_map_file_is_an_error_at_its_key() {
    let errors = steer_errors(
        r#"name = "www.example.test."
type = "A"
pools = ["web-fra"]
policy = [{ cidr = { file = "no-such-map.txt" } }]"#,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "conf/steer.toml: steer[0].policy[0].cidr.file: cannot read conf/no-such-map.txt: "
        ),
        "{errors:?}"
    );
}

#[test]
fn a_map_file_cannot_be_mixed_with_entries() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra"]
policy = [{ cidr = { file = "map.txt", "10.0.0.0/8" = ["web-fra"] } }, { asn = { file = ["web-fra"] } }, { asn = { "701" = "web-fra" } }, { cidr = { file = "" } }]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[0].cidr: file cannot be combined with entries \
             written here; move them into the file",
            "conf/steer.toml: steer[0].policy[1].asn.file: expected the path of a map file",
            "conf/steer.toml: steer[0].policy[2].asn.701: expected a list of pool names",
            "conf/steer.toml: steer[0].policy[3].cidr.file: must name a file",
        ]
    );
}

// ------------------------------------------------------------- latency

#[test]
fn latency_state_file_is_beside_the_config_and_its_settings_are_checked() {
    let config = config_of("[latency]\nstate_file = \"var/model.bin\"\nsave_interval = \"1m\"\n");
    assert_eq!(
        config.latency.state_file,
        PathBuf::from("conf/var/model.bin")
    );
    assert_eq!(config.latency.save_interval, Duration::from_secs(60));
    assert_eq!(
        errors_of("[latency]\nstate_file = \" \"\nsave_interval = \"1s\"\n"),
        vec![
            "conf/steer.toml: latency.state_file: must name a file",
            "conf/steer.toml: latency.save_interval: must be between 10s and 86400s, not \"1s\"",
        ]
    );
}

// ------------------------------------------------------ geoip, ecs, sites

#[test]
fn geoip_errors() {
    assert_eq!(
        errors_of(
            r#"
[geoip]
database = " "
asn_database = ""
[geoip.fields]
country = "country..iso_code"
latitude = ".latitude"
longitude = "location.longitude "
"#
        ),
        vec![
            "conf/steer.toml: geoip.database: must name a file",
            "conf/steer.toml: geoip.asn_database: must name a file",
            "conf/steer.toml: geoip.fields.country: invalid field path \"country..iso_code\": \
             expected keys and array indexes joined by dots, e.g. \"subdivisions.0.iso_code\", \
             or \"\" when the database has no such field",
            "conf/steer.toml: geoip.fields.latitude: invalid field path \".latitude\": \
             expected keys and array indexes joined by dots, e.g. \"subdivisions.0.iso_code\", \
             or \"\" when the database has no such field",
            "conf/steer.toml: geoip.fields.longitude: invalid field path \"location.longitude \
             \": expected keys and array indexes joined by dots, e.g. \
             \"subdivisions.0.iso_code\", or \"\" when the database has no such field",
        ]
    );
    assert_eq!(
        errors_of("[geoip]\nasn_database = \"asn.mmdb\"\n"),
        vec!["conf/steer.toml:3: missing key geoip.database"]
    );
    assert_eq!(
        errors_of("[geoip]\ndatabase = \"city.mmdb\"\n[geoip.fields]\ncity = \"city\"\n"),
        vec![
            "conf/steer.toml:6: unknown key geoip.fields.city, expected one of country, \
             continent, subdivision, latitude, longitude, asn"
        ]
    );
}

#[test]
fn geoip_database_is_a_file_or_a_list_of_files() {
    let databases = |text: &str| {
        config_of(&format!("[geoip]\n{text}\n"))
            .geoip
            .expect("geoip")
            .databases
    };
    assert_eq!(
        databases("database = \"city.mmdb\""),
        [PathBuf::from("conf/city.mmdb")]
    );
    let list = databases("database = [\"download/city-ipv4.mmdb\", \"/srv/geoip/city-ipv6.mmdb\"]");
    assert_eq!(
        list,
        [
            PathBuf::from("conf/download/city-ipv4.mmdb"),
            PathBuf::from("/srv/geoip/city-ipv6.mmdb"),
        ],
        "in order, each resolved against the config file's directory"
    );
    assert_eq!(
        databases("database = [\"city.mmdb\"]"),
        [PathBuf::from("conf/city.mmdb")]
    );
    let geoip = config_of("[geoip]\ndatabase = [\"a.mmdb\", \"b.mmdb\"]\n")
        .geoip
        .expect("geoip");
    assert_eq!(geoip.database_key(1), "geoip.database[1]");
    let geoip = config_of("[geoip]\ndatabase = \"a.mmdb\"\n")
        .geoip
        .expect("geoip");
    assert_eq!(geoip.database_key(0), "geoip.database");
}

#[test]
fn geoip_database_list_errors_name_the_entry() {
    assert_eq!(
        errors_of("[geoip]\ndatabase = []\n"),
        vec!["conf/steer.toml: geoip.database: must name at least one file"]
    );
    assert_eq!(
        errors_of("[geoip]\ndatabase = [\"a.mmdb\", \" \", \"b.mmdb\", \"a.mmdb\"]\n"),
        vec![
            "conf/steer.toml: geoip.database[1]: must name a file",
            "conf/steer.toml: geoip.database[3]: \"a.mmdb\" is already listed as geoip.database[0]",
        ]
    );
    assert_eq!(
        errors_of("[geoip]\ndatabase = [\"a.mmdb\", 4]\n"),
        vec!["conf/steer.toml:4: geoip.database[1]: invalid type: integer `4`, expected a string"]
    );
    assert_eq!(
        errors_of("[geoip]\ndatabase = 4\n"),
        vec![
            "conf/steer.toml:4: geoip.database: invalid type: integer `4`, expected a file \
             name, or a list of file names"
        ]
    );
}

#[test]
fn ecs_limits_are_bounded() {
    assert_eq!(
        errors_of("[ecs]\nmax_source_v4 = 33\nmax_source_v6 = -1\n"),
        vec![
            "conf/steer.toml: ecs.max_source_v4: must be between 0 and 32, not 33",
            "conf/steer.toml: ecs.max_source_v6: must be between 0 and 128, not -1",
        ]
    );
    assert_eq!(
        config_of("[ecs]\nmax_source_v4 = 0\nmax_source_v6 = 128\n").ecs,
        EcsConfig {
            max_source_v4: 0,
            max_source_v6: 128
        }
    );
    assert_eq!(
        config_of("[ecs]\nmax_source_v4 = 32\n").ecs,
        EcsConfig {
            max_source_v4: 32,
            max_source_v6: 56
        }
    );
}

#[test]
fn site_errors() {
    assert_eq!(
        errors_of(
            r#"
[sites.a]
location = [91, 180.5]
country = "DEU"
continent = "Europe"
[sites.b]
location = [1.0]
[sites."c d"]
location = [-90, -180]
"#
        ),
        vec![
            "conf/steer.toml: sites.a.location[0]: latitude must be between -90 and 90, not 91",
            "conf/steer.toml: sites.a.location[1]: longitude must be between -180 and 180, not \
             180.5",
            "conf/steer.toml: sites.a.country: expected a two-letter country code, not \"DEU\"",
            "conf/steer.toml: sites.a.continent: unknown continent \"Europe\", expected one of \
             AF, AN, AS, EU, NA, OC, SA",
            "conf/steer.toml: sites.b.location: expected two numbers, [latitude, longitude], \
             not 1",
            "conf/steer.toml: sites.\"c d\": invalid id: use only letters, digits, \"-\" and \
             \"_\"",
        ]
    );
    assert_eq!(
        errors_of("[sites.a]\ncolor = \"red\"\n"),
        vec![
            "conf/steer.toml:4: unknown key sites.a.color, expected one of location, country, continent, latency_target"
        ]
    );
}

// ------------------------------------------------------------------- pools

#[test]
fn pool_errors() {
    assert_eq!(
        errors_of(
            r#"
[sites.fra]
[pools.none]
site = "fra"
[pools.both]
site = "fra"
addresses = ["192.0.2.1"]
cname = "x.example.net."
[pools.empty]
site = "fra"
addresses = []
[pools.lost]
site = "frx"
weight = 1001
addresses = ["192.0.2.300", { address = "192.0.2.1", weight = -1 }, { address = "nope" }, "192.0.2.1", "2001:db8::1", "2001:DB8::1"]
[pools.relative]
site = "fra"
cname = "fra.cdn.example.net"
[pools.spaced]
site = "fra"
cname = "fra cdn.example.net."
[pools.long]
site = "fra"
cname = "a012345678901234567890123456789012345678901234567890123456789012345.example."
"#
        ),
        vec![
            "conf/steer.toml: pools.both: has more than one of addresses, cname and alias; a \
             pool answers with one",
            "conf/steer.toml: pools.empty.addresses: must list at least one address",
            "conf/steer.toml: pools.long.cname: invalid name \
             \"a012345678901234567890123456789012345678901234567890123456789012345.example.\": \
             decoding error: label bytes exceed 63: 67",
            "conf/steer.toml: pools.lost.site: unknown site \"frx\"",
            "conf/steer.toml: pools.lost.weight: must be between 0 and 1000, not 1001",
            "conf/steer.toml: pools.lost.addresses[0]: invalid IP address \"192.0.2.300\"",
            "conf/steer.toml: pools.lost.addresses[1].weight: must be between 0 and 1000, not -1",
            "conf/steer.toml: pools.lost.addresses[2].address: invalid IP address \"nope\"",
            "conf/steer.toml: pools.lost.addresses[3]: 192.0.2.1 is already listed as \
             pools.lost.addresses[1]",
            "conf/steer.toml: pools.lost.addresses[5]: 2001:db8::1 is already listed as \
             pools.lost.addresses[4]",
            "conf/steer.toml: pools.none: needs addresses, a cname or an alias",
            "conf/steer.toml: pools.relative.cname: name \"fra.cdn.example.net\" must be \
             absolute, with a final dot: \"fra.cdn.example.net.\"",
            "conf/steer.toml: pools.spaced.cname: invalid name \"fra cdn.example.net.\"",
        ]
    );
    assert_eq!(
        errors_of("[pools.web]\naddresses = [\"192.0.2.1\"]\n"),
        vec!["conf/steer.toml:3: missing key pools.web.site"]
    );
    assert_eq!(
        errors_of(
            "[sites.a]\n[pools.web]\nsite = \"a\"\naddresses = [{ address = \"192.0.2.1\", wieght = 2 }]\n"
        ),
        vec![
            "conf/steer.toml:6: unknown key pools.web.addresses[0].wieght, expected one of \
             address, weight, probe, probe_target"
        ]
    );
}

#[test]
fn probes_are_read_as_written_with_defaults_and_attached_to_endpoints() {
    let config = config_of(
        r#"
[health]
debounce = "500ms"
[probes.web]
type = "https"
path = "/healthz?full=1"
host = "www.example.com"
headers = { X-Check = "steer", Accept = "text/plain" }
expect_status = [200, "300-302"]
body_contains = "OK"
verify_certificate = false
interval = "5s"
jitter = "1s"
timeout = "2s"
rise = 1
fall = 2
[probes.port]
type = "tcp"
port = 8443
[sites.fra]
[pools.fra]
site = "fra"
probe = "web"
min_healthy = 0.5
addresses = ["192.0.2.1", { address = "192.0.2.2", probe = "port", probe_target = "10.0.0.2" }, { address = "192.0.2.3", probe_target = "[2001:db8::3]:8080" }]
"#,
    );
    assert_eq!(
        config.health.debounce,
        std::time::Duration::from_millis(500)
    );
    let web = config.probe("web").expect("web");
    assert_eq!(web.kind_name(), "https");
    assert_eq!(web.port, 443);
    assert_eq!(
        (web.interval, web.jitter, web.timeout, web.rise, web.fall),
        (
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(2),
            1,
            2
        )
    );
    let ProbeKind::Http(http) = &web.kind else {
        panic!("not http: {web:?}");
    };
    assert_eq!(http.method, "GET");
    assert_eq!(http.path, "/healthz?full=1");
    assert_eq!(http.host.as_deref(), Some("www.example.com"));
    assert_eq!(
        http.headers,
        vec![
            ("X-Check".to_owned(), "steer".to_owned()),
            ("Accept".to_owned(), "text/plain".to_owned())
        ],
        "headers keep file order"
    );
    assert_eq!(http.expect_status, vec![200..=200, 300..=302]);
    assert_eq!(http.body_contains.as_deref(), Some("OK"));
    assert!(!http.verify_certificate);
    let port = config.probe("port").expect("port");
    assert_eq!(
        (port.kind.clone(), port.port, port.interval, port.timeout),
        (
            ProbeKind::Tcp,
            8443,
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(2)
        )
    );
    let pool = config.pool("fra").expect("pool");
    assert_eq!(pool.min_healthy, Some(0.5));
    let PoolMembers::Addresses(endpoints) = &pool.members else {
        panic!("addresses");
    };
    let targets: Vec<(String, String)> = endpoints
        .iter()
        .map(|endpoint| {
            let target = config.probe_target(pool, endpoint).expect("probed");
            (target.probe.id, target.address.to_string())
        })
        .collect();
    assert_eq!(
        targets,
        vec![
            ("web".to_owned(), "192.0.2.1:443".to_owned()),
            ("port".to_owned(), "10.0.0.2:8443".to_owned()),
            ("web".to_owned(), "[2001:db8::3]:8080".to_owned()),
        ]
    );
}

#[test]
fn probe_errors_name_their_key_paths() {
    let errors = errors_of(
        r#"
[health]
debounce = "2m"
[probes.bad]
type = "icmp"
[probes.slow]
type = "http"
interval = "1s"
timeout = "3s"
jitter = "800ms"
rise = 0
fall = 101
method = "get"
path = "healthz"
headers = { Host = "x", "bad name" = "y" }
expect_status = [99, "300-200", "2xx"]
body_contains = ""
verify_certificate = false
[probes.raw]
type = "tcp"
path = "/"
[sites.fra]
[pools.fra]
site = "fra"
probe = "nope"
min_healthy = 1.5
addresses = [{ address = "192.0.2.1", probe = "missing", probe_target = "10.0.0.1:0" }]
[pools.alias]
site = "fra"
cname = "edge.example.net."
probe = "slow"
"#,
    );
    assert_eq!(
        errors,
        vec![
            "conf/steer.toml: health.debounce: must be between 0s and 60s, not \"2m\"",
            "conf/steer.toml: probes.bad.type: unknown probe type \"icmp\", expected http, https, \
             tcp, dns or dns-tcp",
            "conf/steer.toml: probes.raw.port: a tcp probe needs a port",
            "conf/steer.toml: probes.raw.path: only http and https probes have this setting",
            "conf/steer.toml: probes.slow.timeout: 3s is longer than the interval (1s); probes \
             of one target would overlap",
            "conf/steer.toml: probes.slow.jitter: 800ms is more than half the interval (1s)",
            "conf/steer.toml: probes.slow.rise: must be between 1 and 100, not 0",
            "conf/steer.toml: probes.slow.fall: must be between 1 and 100, not 101",
            "conf/steer.toml: probes.slow.method: invalid method \"get\": expected upper-case \
             letters, e.g. GET or HEAD",
            "conf/steer.toml: probes.slow.path: invalid path \"healthz\": it starts with \"/\" \
             and has no spaces, control characters or \"#\"",
            "conf/steer.toml: probes.slow.headers.Host: set the Host header with probes.slow.host",
            "conf/steer.toml: probes.slow.headers.bad name: invalid header name",
            "conf/steer.toml: probes.slow.expect_status[0]: 99 is not an HTTP status code \
             (100-599)",
            "conf/steer.toml: probes.slow.expect_status[1]: invalid status range \"300-200\": \
             300 is above 200",
            "conf/steer.toml: probes.slow.expect_status[2]: invalid status range \"2xx\": \
             expected e.g. 200 or \"200-299\"",
            "conf/steer.toml: probes.slow.body_contains: must not be empty (leave it out to \
             accept any body)",
            "conf/steer.toml: probes.slow.verify_certificate: only https probes have this \
             setting",
            "conf/steer.toml: pools.alias.probe: a CNAME pool has no addresses to probe",
            "conf/steer.toml: pools.fra.addresses[0].probe: unknown probe \"missing\"",
            "conf/steer.toml: pools.fra.addresses[0].probe_target: invalid probe target \
             \"10.0.0.1:0\": expected IP or IP:PORT, e.g. \"10.0.0.5:8080\" or \
             \"[2001:db8::5]:8080\"",
            "conf/steer.toml: pools.fra.probe: unknown probe \"nope\"",
            "conf/steer.toml: pools.fra.min_healthy: must be between 0.0 and 1.0, not 1.5",
        ]
    );
}

#[test]
fn pool_kinds_answer_their_types() {
    let config = config_of(WORLD);
    let serves = |id: &str| {
        let pool = config.pool(id).expect("pool");
        [SteeredType::A, SteeredType::Aaaa, SteeredType::Cname].map(|kind| pool.serves(kind))
    };
    assert_eq!(serves("web-fra"), [true, true, false]);
    assert_eq!(serves("v6-only"), [false, true, false]);
    assert_eq!(serves("cdn"), [false, false, true]);
    assert_eq!(SteeredType::Aaaa.to_string(), "AAAA");
}

// --------------------------------------------------------- steered names

#[test]
fn steered_name_errors() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test"
type = "MX"
ttl = 86401
pools = ["web-fra", "web-frx", "web-fra"]"#
        ),
        vec![
            "conf/steer.toml: steer[0].name: name \"www.example.test\" must be absolute, with a \
             final dot: \"www.example.test.\"",
            "conf/steer.toml: steer[0].type: unknown type \"MX\", expected A, AAAA or CNAME",
            "conf/steer.toml: steer[0].ttl: must be between 0 and 86400, not 86401",
            "conf/steer.toml: steer[0].pools[1]: unknown pool \"web-frx\"",
            "conf/steer.toml: steer[0].pools[2]: \"web-fra\" is already listed as \
             steer[0].pools[0]",
        ]
    );
    assert_eq!(
        steer_errors("name = \"www.example.test.\"\ntype = \"A\"\nttl = -1\npools = []"),
        vec![
            "conf/steer.toml: steer[0].ttl: must be between 0 and 86400, not -1",
            "conf/steer.toml: steer[0].pools: must list at least one pool",
        ]
    );
    let many: Vec<String> = (0..65).map(|index| format!("\"p{index}\"")).collect();
    let pools: String = (0..65)
        .map(|index| format!("[pools.p{index}]\nsite = \"s\"\naddresses = [\"192.0.2.1\"]\n"))
        .collect();
    assert_eq!(
        errors_of(&format!(
            "[sites.s]\n{pools}[[steer]]\nname = \"a.example.\"\ntype = \"A\"\npools = [{}]\n",
            many.join(", ")
        )),
        vec!["conf/steer.toml: steer[0].pools: must list at most 64 pools, not 65"]
    );
    assert_eq!(
        steer_errors(
            "name = \"www.example.test.\"\ntype = \"A\"\npools = [\"web-fra\"]\ncolour = 1"
        ),
        vec![
            "conf/steer.toml:33: unknown key steer[0].colour, expected one of name, type, ttl, \
             pools, policy, when_all_down"
        ]
    );
    assert_eq!(
        steer_errors("type = \"A\"\npools = [\"web-fra\"]"),
        vec!["conf/steer.toml:29: missing key steer[0].name"]
    );
}

#[test]
fn pools_must_answer_the_steered_type() {
    assert_eq!(
        errors_of(&format!(
            r#"{WORLD}
[[steer]]
name = "a.example.test."
type = "A"
pools = ["v6-only", "cdn"]
when_all_down = {{ pool = "v6-only" }}
[[steer]]
name = "b.example.test."
type = "AAAA"
pools = ["web-fra", "cdn"]
when_all_down = {{ pool = "nowhere" }}
[[steer]]
name = "c.example.test."
type = "CNAME"
pools = ["cdn", "web-fra"]
when_all_down = {{ pool = "cdn" }}
"#
        )),
        vec![
            "conf/steer.toml: steer[0].pools[0]: pool \"v6-only\" has no IPv4 address, so it \
             cannot answer A",
            "conf/steer.toml: steer[0].pools[1]: pool \"cdn\" answers with a CNAME, so it cannot \
             answer A",
            "conf/steer.toml: steer[0].when_all_down.pool: pool \"v6-only\" has no IPv4 \
             address, so it cannot answer A",
            "conf/steer.toml: steer[1].pools[1]: pool \"cdn\" answers with a CNAME, so it cannot \
             answer AAAA",
            "conf/steer.toml: steer[1].when_all_down.pool: unknown pool \"nowhere\"",
            "conf/steer.toml: steer[2].pools[1]: pool \"web-fra\" has addresses, not a cname, \
             so it cannot answer CNAME",
        ]
    );
    // when_all_down may name a pool outside `pools`, of the right kind.
    let steered = steer_config(
        "name = \"a.example.test.\"\ntype = \"AAAA\"\npools = [\"web-fra\"]\n\
         when_all_down = { pool = \"v6-only\" }",
    );
    assert_eq!(
        steered.when_all_down,
        WhenAllDown::Pool("v6-only".to_string())
    );
}

#[test]
fn when_all_down_errors() {
    assert_eq!(
        steer_errors(
            "name = \"www.example.test.\"\ntype = \"A\"\npools = [\"web-fra\"]\nwhen_all_down = \"never\""
        ),
        vec![
            "conf/steer.toml:33: steer[0].when_all_down: unknown when_all_down \"never\", \
             expected fail_open, nodata, servfail or { pool = \"ID\" }"
        ]
    );
    assert_eq!(
        steer_errors(
            "name = \"www.example.test.\"\ntype = \"A\"\npools = [\"web-fra\"]\nwhen_all_down = { pool = \"web-fra\", after = \"5s\" }"
        ),
        vec!["conf/steer.toml:33: unknown key steer[0].when_all_down.after, expected pool"]
    );
}

#[test]
fn a_name_and_type_is_steered_once_and_a_cname_alone() {
    assert_eq!(
        errors_of(&format!(
            r#"{WORLD}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra"]
[[steer]]
name = "WWW.Example.Test."
type = "A"
pools = ["web-iad"]
[[steer]]
name = "www.example.test."
type = "CNAME"
pools = ["cdn"]
[[steer]]
name = "cdn.example.test."
type = "CNAME"
pools = ["cdn"]
[[steer]]
name = "cdn.example.test."
type = "AAAA"
pools = ["web-fra"]
[[steer]]
name = "www.example.test."
type = "AAAA"
pools = ["web-fra"]
"#
        )),
        vec![
            "conf/steer.toml: steer[1]: WWW.Example.Test. A is already steered by steer[0]",
            "conf/steer.toml: steer[2]: www.example.test. is already steered for A by steer[0]; \
             a CNAME cannot share its name with other types",
            "conf/steer.toml: steer[4]: cdn.example.test. is already steered for CNAME by \
             steer[3]; a CNAME cannot share its name with other types",
        ]
    );
}

// ----------------------------------------------------------------- policy

#[test]
fn policy_pools_must_exist_and_belong_to_the_name() {
    assert_eq!(
        errors_of(&format!(
            r#"{WORLD}
[[steer]]
name = "api.example.test."
type = "A"
pools = ["web-fra"]
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [
  "healthy",
  "priority",
  {{ geo = {{ EU = ["web-frx"], NA = ["web-iad", "web-sin", "web-iad"], AS = [], default = ["web-fra"] }} }},
]
"#
        )),
        vec![
            "conf/steer.toml: steer[1].policy[2].geo.EU[0]: unknown pool \"web-frx\"",
            "conf/steer.toml: steer[1].policy[2].geo.NA[1]: pool \"web-sin\" is not in \
             steer[1].pools",
            "conf/steer.toml: steer[1].policy[2].geo.NA[2]: \"web-iad\" is already listed as \
             steer[1].policy[2].geo.NA[0]",
            "conf/steer.toml: steer[1].policy[2].geo.AS: must list at least one pool",
        ]
    );
}

#[test]
fn geo_errors() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [
  { geo = { EU = ["web-fra"], "continent:eu" = ["web-iad"], Europe = ["web-fra"], default = ["web-iad"], DEFAULT = ["web-fra"], "us-ca" = ["web-iad"], "US-CA" = ["web-fra"] } },
  { geo = {} },
]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[0].geo.\"continent:eu\": EU is already mapped as \
             steer[0].policy[0].geo.EU",
            "conf/steer.toml: steer[0].policy[0].geo.Europe: invalid region \"Europe\": expected \
             a continent (AF AN AS EU NA OC SA), a country (DE), a subdivision (US-CA), \
             continent:XX or country:XX",
            "conf/steer.toml: steer[0].policy[0].geo.DEFAULT: the default is already given as \
             steer[0].policy[0].geo.default",
            "conf/steer.toml: steer[0].policy[0].geo.US-CA: US-CA is already mapped as \
             steer[0].policy[0].geo.us-ca",
            "conf/steer.toml: steer[0].policy[1].geo: must map at least one region",
        ]
    );
}

#[test]
fn geofence_errors() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [
  { geofence = { web-fra = ["EU", "default", "eu", "Mars"], web-iad = [], web-sin = ["AS"] } },
  { geofence = {} },
]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[0].geofence.web-fra[1]: \"default\" is only valid \
             as a key of geo",
            "conf/steer.toml: steer[0].policy[0].geofence.web-fra[2]: EU is already listed as \
             steer[0].policy[0].geofence.web-fra[0]",
            "conf/steer.toml: steer[0].policy[0].geofence.web-fra[3]: invalid region \"Mars\": \
             expected a continent (AF AN AS EU NA OC SA), a country (DE), a subdivision \
             (US-CA), continent:XX or country:XX",
            "conf/steer.toml: steer[0].policy[0].geofence.web-iad: must list at least one region",
            "conf/steer.toml: steer[0].policy[0].geofence.web-sin: pool \"web-sin\" is not in \
             steer[0].pools",
            "conf/steer.toml: steer[0].policy[1].geofence: must list at least one pool",
        ]
    );
}

#[test]
fn cidr_and_asn_entry_errors() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [
  { cidr = { "81.2.69.1/24" = ["web-fra"], "2001:db8::/32" = ["web-iad"], "2001:DB8::/32" = ["web-fra"], "10.0.0.0/8" = ["nowhere"] } },
  { asn = { "3320" = ["web-fra"], AS3320 = ["web-iad"], "AS-1" = ["web-fra"] } },
  { cidr = {} },
]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[0].cidr.\"81.2.69.1/24\": prefix \"81.2.69.1/24\" \
             has bits set beyond its length; did you mean 81.2.69.0/24?",
            "conf/steer.toml: steer[0].policy[0].cidr.\"2001:DB8::/32\": 2001:db8::/32 is \
             already mapped as steer[0].policy[0].cidr.\"2001:db8::/32\"",
            "conf/steer.toml: steer[0].policy[0].cidr.\"10.0.0.0/8\"[0]: unknown pool \
             \"nowhere\"",
            "conf/steer.toml: steer[0].policy[1].asn.AS3320: 3320 is already mapped as \
             steer[0].policy[1].asn.3320",
            "conf/steer.toml: steer[0].policy[1].asn.AS-1: invalid ASN \"AS-1\": expected a \
             number such as 3320 or AS3320",
            "conf/steer.toml: steer[0].policy[2].cidr: must map at least one entry, or name a \
             file",
        ]
    );
}

#[test]
fn nearest_needs_coordinates_for_every_reachable_site() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra", "web-sin", "web-iad"]
policy = ["healthy", "priority", "weighted", "nearest"]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[3]: nearest needs coordinates for site \"sin\" \
             (pools.web-sin.site)"
        ]
    );
    // Without nearest, or when no pool of the site is reachable, no coordinates are needed.
    steer_config(
        "name = \"a.example.test.\"\ntype = \"A\"\npools = [\"web-sin\"]\npolicy = [\"priority\"]",
    );
    steer_config(
        "name = \"a.example.test.\"\ntype = \"A\"\npools = [\"web-fra\", \"web-iad\"]\npolicy = [\"nearest\"]",
    );
}

#[test]
fn nearest_bias_errors() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [{ nearest = { bias = { web-fra = inf, web-sin = 10, web-iad = nan, cdn = 1 } } }]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[0].nearest.bias.web-fra: must be a number of \
             kilometres",
            "conf/steer.toml: steer[0].policy[0].nearest.bias.web-sin: pool \"web-sin\" is not \
             in steer[0].pools",
            "conf/steer.toml: steer[0].policy[0].nearest.bias.web-iad: must be a number of \
             kilometres",
            "conf/steer.toml: steer[0].policy[0].nearest.bias.cdn: pool \"cdn\" is not in \
             steer[0].pools",
        ]
    );
}

#[test]
fn healthy_and_first_are_bounded() {
    assert_eq!(
        steer_errors(
            r#"name = "www.example.test."
type = "A"
pools = ["web-fra"]
policy = [{ healthy = { min_healthy = 1.5 } }, { healthy = { min_healthy = -0.1 } }, { first = 0 }, { first = 65 }]"#
        ),
        vec![
            "conf/steer.toml: steer[0].policy[0].healthy.min_healthy: must be between 0.0 and \
             1.0, not 1.5",
            "conf/steer.toml: steer[0].policy[1].healthy.min_healthy: must be between 0.0 and \
             1.0, not -0.1",
            "conf/steer.toml: steer[0].policy[2].first: must be between 1 and 64, not 0",
            "conf/steer.toml: steer[0].policy[3].first: must be between 1 and 64, not 65",
        ]
    );
    let steered = steer_config(
        "name = \"a.example.test.\"\ntype = \"A\"\npools = [\"web-fra\"]\n\
         policy = [{ healthy = { min_healthy = 1 } }, { first = 64 }, { first = 1 }]",
    );
    assert_eq!(
        steered.policy,
        vec![
            Step::Healthy { min_healthy: 1.0 },
            Step::First(64),
            Step::First(1)
        ]
    );
}

#[test]
fn location_steps_need_geoip() {
    let sites_and_pools = WORLD
        .split_once("[sites.fra]")
        .map(|(_, rest)| format!("[sites.fra]{rest}"))
        .expect("WORLD has sites");
    assert_eq!(
        errors_of(&format!(
            r#"{sites_and_pools}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [
  "nearest",
  {{ geo = {{ EU = ["web-fra"] }} }},
  {{ geofence = {{ web-fra = ["EU"] }} }},
  {{ asn = {{ "3320" = ["web-fra"] }} }},
  {{ cidr = {{ "10.0.0.0/8" = ["web-fra"] }} }},
  "healthy", "priority", "weighted", "sticky", {{ first = 1 }},
]
"#
        )),
        vec![
            "conf/steer.toml: steer[0].policy[0]: nearest needs a [geoip] database to know \
             where clients are",
            "conf/steer.toml: steer[0].policy[1]: geo needs a [geoip] database to know where \
             clients are",
            "conf/steer.toml: steer[0].policy[2]: geofence needs a [geoip] database to know \
             where clients are",
            "conf/steer.toml: steer[0].policy[3]: asn needs a [geoip] database to know where \
             clients are",
        ]
    );
}

#[test]
fn steps_that_need_a_field_turned_off_are_refused() {
    let world = WORLD.replace(
        "database = \"geoip/city.mmdb\"\n",
        "database = \"geoip/city.mmdb\"\n[geoip.fields]\ncountry = \"\"\ncontinent = \"\"\n\
         subdivision = \"\"\nlatitude = \"\"\nasn = \"\"\n",
    );
    assert_eq!(
        errors_of(&format!(
            r#"{world}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = [
  "nearest",
  {{ asn = {{ "3320" = ["web-fra"] }} }},
  {{ geo = {{ "US-CA" = ["web-iad"], DE = ["web-fra"], EU = ["web-fra"], default = ["web-iad"] }} }},
  {{ geofence = {{ web-fra = ["country:NA"] }} }},
]
"#
        )),
        vec![
            "conf/steer.toml: steer[0].policy[0]: nearest needs geoip.fields.latitude and \
             geoip.fields.longitude, and one of them is set to \"\"",
            "conf/steer.toml: steer[0].policy[1]: asn needs geoip.fields.asn, which is set to \
             \"\"",
            "conf/steer.toml: steer[0].policy[2].geo.US-CA: subdivisions need \
             geoip.fields.subdivision, which is set to \"\"",
            "conf/steer.toml: steer[0].policy[2].geo.DE: countries need geoip.fields.country, \
             which is set to \"\"",
            "conf/steer.toml: steer[0].policy[2].geo.EU: continents need \
             geoip.fields.continent or geoip.fields.country, which are both set to \"\"",
            "conf/steer.toml: steer[0].policy[3].geofence.web-fra[0]: countries need \
             geoip.fields.country, which is set to \"\"",
        ]
    );
}

#[test]
fn policy_step_shapes_are_strict() {
    let step = |policy: &str| {
        steer_errors(&format!(
            "name = \"www.example.test.\"\ntype = \"A\"\npools = [\"web-fra\"]\npolicy = [{policy}]"
        ))
    };
    let steps =
        "healthy, geofence, geo, cidr, asn, nearest, latency, priority, weighted, sticky, first";
    assert_eq!(
        step("{ first = 2, extra = 1 }"),
        vec![
            "conf/steer.toml:33: steer[0].policy[0]: unknown key extra in a first step: a \
             policy step table has exactly one key, the step's name"
        ]
    );
    assert_eq!(
        step("{ zzz = 1, first = 2 }"),
        vec![
            "conf/steer.toml:33: steer[0].policy[0]: unknown key zzz in a first step: a policy \
             step table has exactly one key, the step's name"
        ]
    );
    assert_eq!(
        step("\"nearst\""),
        vec![format!(
            "conf/steer.toml:33: steer[0].policy[0]: unknown policy step \"nearst\", expected \
             one of {steps}"
        )]
    );
    assert_eq!(
        step("{ frist = 2 }"),
        vec![format!(
            "conf/steer.toml:33: steer[0].policy[0]: unknown policy step \"frist\", expected \
             one of {steps}"
        )]
    );
    assert_eq!(
        step("\"geo\""),
        vec!["conf/steer.toml:33: steer[0].policy[0]: geo needs its table: { geo = { ... } }"]
    );
    assert_eq!(
        step("\"first\""),
        vec!["conf/steer.toml:33: steer[0].policy[0]: first needs a count: { first = N }"]
    );
    assert_eq!(
        step("{ priority = true }"),
        vec![
            "conf/steer.toml:33: steer[0].policy[0]: priority takes no settings: write \
             \"priority\""
        ]
    );
    assert_eq!(
        step("{}"),
        vec![
            "conf/steer.toml:33: steer[0].policy[0]: a policy step table needs one key, the \
             step's name, e.g. { first = 2 }"
        ]
    );
    assert_eq!(
        step("{ healthy = { min_healthy = 0.5, max = 1 } }"),
        vec![
            "conf/steer.toml:33: unknown key steer[0].policy[0].healthy.max, expected min_healthy"
        ]
    );
    assert_eq!(
        step("{ nearest = { bais = {} } }"),
        vec!["conf/steer.toml:33: unknown key steer[0].policy[0].nearest.bais, expected bias"]
    );
    assert_eq!(
        step("{ geo = { EU = \"web-fra\" } }"),
        vec![
            "conf/steer.toml:33: steer[0].policy[0].geo.EU: invalid type: string \"web-fra\", \
             expected a sequence"
        ]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = errors_of(&format!(
        r#"
[ecs]
max_source_v4 = 40
{}
[[steer]]
name = "www.example.test."
type = "A"
ttl = 100000
pools = ["web-fra", "nowhere"]
policy = [{{ first = 0 }}, {{ geo = {{ Mars = ["web-fra"] }} }}]
"#,
        WORLD
    ));
    assert_eq!(
        errors,
        vec![
            "conf/steer.toml: ecs.max_source_v4: must be between 0 and 32, not 40",
            "conf/steer.toml: steer[0].ttl: must be between 0 and 86400, not 100000",
            "conf/steer.toml: steer[0].pools[1]: unknown pool \"nowhere\"",
            "conf/steer.toml: steer[0].policy[0].first: must be between 1 and 64, not 0",
            "conf/steer.toml: steer[0].policy[1].geo.Mars: invalid region \"Mars\": expected a \
             continent (AF AN AS EU NA OC SA), a country (DE), a subdivision (US-CA), \
             continent:XX or country:XX",
        ]
    );
}

#[test]
fn steering_errors_follow_server_errors() {
    let errors = parse(
        Path::new(FILE),
        "[server]\nlisten = [\"nope\"]\n[ecs]\nmax_source_v6 = 129\n",
    )
    .expect_err("two errors");
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "conf/steer.toml: server.listen[0]: invalid socket address \"nope\": expected \
             IP:port, e.g. \"127.0.0.1:5300\" or \"[::1]:5300\"",
            "conf/steer.toml: ecs.max_source_v6: must be between 0 and 128, not 129",
        ]
    );
}

#[test]
fn peers_take_their_defaults_and_keep_the_order_written() {
    let config = config_of(
        r#"
[health]
node = "fra-1"
[peers]
urls = ["http://10.0.0.3:8053/", "https://[2001:db8::2]:8053"]
"#,
    );
    assert_eq!(config.health.node, "fra-1");
    assert_eq!(config.health.quorum, super::Quorum::Majority);
    let peers = config.peers.expect("peers");
    assert_eq!(
        peers.urls,
        strings(&["http://10.0.0.3:8053", "https://[2001:db8::2]:8053"])
    );
    assert_eq!(peers.interval, Duration::from_secs(2));
    assert_eq!(
        peers.stale_after,
        Duration::from_secs(6),
        "three missed fetches"
    );
    assert!(peers.token.is_none());
    let counted = config_of(
        "[health]\nquorum = 2\n[peers]\nurls = [\"http://10.0.0.3:8053\"]\ninterval = \"500ms\"\n",
    );
    assert_eq!(counted.health.quorum, super::Quorum::AtLeast(2));
    let peers = counted.peers.expect("peers");
    assert_eq!(peers.stale_after, Duration::from_millis(1_500));
    assert!(
        !counted.health.node.is_empty(),
        "the node defaults to the host name"
    );
}

#[test]
fn peer_errors_name_their_key_paths_and_never_show_a_password() {
    let errors = errors_of(
        r#"
[health]
node = "fra 1"
quorum = 6
[peers]
urls = ["10.0.0.2:8053", "http://admin:secret@10.0.0.3:8053", "http://10.0.0.4", "http://10.0.0.4/"]
token_file = "missing.token"
interval = "50ms"
stale_after = "10ms"
"#,
    );
    let expected = [
        "health.node: must be 1 to 64 visible ASCII characters",
        "health.quorum: must be between 1 and 5 (this node and 4 peers), not 6",
        "peers.urls[0]: \"10.0.0.2:8053\" must start with http:// or https://",
        "peers.urls[1]: must not carry credentials",
        "peers.urls[3]: http://10.0.0.4 is listed twice",
        "peers.token_file: cannot read",
        "peers.interval: must be between 100ms and 60s",
        "peers.stale_after: must be between",
    ];
    for part in expected {
        assert!(
            errors.iter().any(|error| error.contains(part)),
            "no error contains {part:?}: {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    assert!(errors.iter().all(|error| !error.contains("secret")));
    let word = errors_of("[health]\nquorum = \"most\"\n[peers]\nurls = [\"http://10.0.0.2\"]\n");
    assert_eq!(
        word,
        vec![
            "conf/steer.toml: health.quorum: must be \"majority\" or a number of vantage \
             points, not \"most\""
        ]
    );
    let alone = errors_of("[health]\nquorum = 1\n");
    assert_eq!(
        alone,
        vec!["conf/steer.toml: health.quorum: counts the votes of [peers]; there are none"]
    );
    let none = errors_of("[peers]\nurls = []\n");
    assert!(
        none[0].contains("peers.urls: must list at least one peer"),
        "{none:?}"
    );
}

#[test]
fn alias_pools_read_their_target_and_the_resolver() {
    let config = config_of(
        r#"
[resolver]
servers = ["127.0.0.53", "[::1]:5353"]
timeout = "500ms"
min_refresh = "5s"
max_refresh = "10m"
max_stale = "2h"
[sites.fra]
[pools.lb]
site = "fra"
alias = "LB-1.Elb.Example.NET."
[pools.lb-again]
site = "fra"
alias = "lb-1.elb.example.net."
[[steer]]
name = "example.test."
type = "AAAA"
ttl = 60
pools = ["lb"]
policy = [{ first = 2 }]
"#,
    );
    let pool = config
        .pools
        .iter()
        .find(|pool| pool.id == "lb")
        .expect("pool");
    assert_eq!(
        pool.members,
        PoolMembers::Alias(name("lb-1.elb.example.net."))
    );
    // One target, however it is spelled.
    assert_eq!(config.alias_targets(), vec![name("lb-1.elb.example.net.")]);
    assert_eq!(
        config.resolver,
        crate::config::steering::ResolverConfig {
            servers: vec![
                "127.0.0.53:53".parse().expect("address"),
                "[::1]:5353".parse().expect("address")
            ],
            timeout: std::time::Duration::from_millis(500),
            min_refresh: std::time::Duration::from_secs(5),
            max_refresh: std::time::Duration::from_secs(600),
            max_stale: std::time::Duration::from_secs(7_200),
        }
    );
}

#[test]
fn alias_errors_name_their_key_paths() {
    let errors = errors_of(
        r#"
[sites.fra]
[probes.web]
type = "tcp"
port = 443
[pools.both]
site = "fra"
addresses = ["192.0.2.1"]
alias = "lb.example.net."
[pools.probed]
site = "fra"
alias = "lb.example.net."
probe = "web"
[pools.root]
site = "fra"
alias = "."
[[steer]]
name = "example.test."
type = "CNAME"
ttl = 60
pools = ["probed"]
policy = [{ first = 2 }]
"#,
    );
    assert_eq!(
        errors,
        vec![
            "conf/steer.toml: pools.both: has more than one of addresses, cname and alias; a \
             pool answers with one",
            "conf/steer.toml: pools.probed.probe: an alias pool's addresses change with its \
             target's, so they are not probed; the target's operator keeps them healthy",
            "conf/steer.toml: pools.root.alias: the root has no addresses",
            "conf/steer.toml: pools.probed.alias: needs [resolver] servers to be resolved through",
            "conf/steer.toml: pools.root.alias: needs [resolver] servers to be resolved through",
            "conf/steer.toml: steer[0].pools[0]: pool \"probed\" is an alias, which answers A and \
             AAAA, so it cannot answer CNAME",
        ]
    );
    let errors = errors_of(
        r#"
[resolver]
servers = ["resolver.example.net", "127.0.0.1", "127.0.0.1:53"]
timeout = "1m"
min_refresh = "1h"
max_refresh = "1m"
"#,
    );
    assert_eq!(
        errors,
        vec![
            "conf/steer.toml: resolver.servers[0]: \"resolver.example.net\" is not an address \
             (IP or IP:PORT)",
            "conf/steer.toml: resolver.servers[2]: 127.0.0.1:53 is listed twice",
            "conf/steer.toml: resolver.timeout: must be between 100ms and 30s, not \"1m\"",
            "conf/steer.toml: resolver.max_refresh: must not be shorter than min_refresh (3600s)",
        ]
    );
}
