//! Client location: MaxMind DB (`.mmdb`) files → locations (control plane).
//!
//! Opens a City/Country database (MaxMind's schema, or any mmdb through
//! configurable field paths) and optionally an ASN database, memory-mapped.
//! The policy compiler walks [`GeoDatabase::partition_v4`] and
//! [`GeoDatabase::partition_v6`] once per reload to build its prefix maps;
//! the data plane never touches an mmdb. `steer explain` uses
//! [`GeoDatabase::locate`] for one address.
//!
//! Reading goes through the `maxminddb` crate; [`writer`] makes databases
//! (the bundled sample through [`build`], and the tests' fixtures).

pub mod build;
mod continents;
mod fields;
mod partition;
#[cfg(test)]
mod tests;
pub mod writer;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{LookupResult, MaxMindDbError, Mmap, Reader, WithinOptions};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::steering::{GeoConfig, GeoFields};
pub use continents::continent_of;
use fields::FieldPath;
use partition::{Covering, Family, Intersection, tree_networks};

/// Where a client is, as far as the databases know. Coordinates are kept in
/// millionths of a degree so that locations can be compared and hashed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Continent code (AF AN AS EU NA OC SA), upper case.
    pub continent: Option<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code without the country (`CA`), upper case.
    pub subdivision: Option<String>,
    /// Latitude and longitude in millionths of a degree.
    pub coordinates: Option<(i32, i32)>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

impl Location {
    /// Latitude and longitude in degrees.
    pub fn degrees(&self) -> Option<(f64, f64)> {
        self.coordinates
            .map(|(latitude, longitude)| (f64::from(latitude) / 1e6, f64::from(longitude) / 1e6))
    }
}

/// The location of one address, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Located {
    /// What the databases say.
    pub location: Location,
    /// Prefix length of the network that holds the address: where the
    /// location and ASN databases' networks differ, the smaller one, as in
    /// the partition. IPv4 addresses get 0..=32 even from an IPv6 tree.
    pub prefix_len: u8,
    /// The database fields found, as `(path, raw value)`: `("country.iso_code",
    /// "GB")`. Fields of the ASN database are prefixed `asn_database:`.
    pub fields: Vec<(String, String)>,
}

/// The field paths of the flat ip-location-db files (`geolite2-city-mmdb`,
/// `geo-whois-asn-country-mmdb` on npm): `country_code`, `latitude`,
/// `longitude`. They hold no continent (it is derived from the country), no
/// subdivision code (`state1` is a name) and no ASN. MaxMind's schema is
/// `GeoFields::default()`.
pub fn ip_location_db_fields() -> GeoFields {
    let path = |name: &str| Some(vec![name.to_owned()]);
    GeoFields {
        country: path("country_code"),
        continent: None,
        subdivision: None,
        latitude: path("latitude"),
        longitude: path("longitude"),
        asn: None,
    }
}

/// One open mmdb file.
struct Source {
    /// The config key that named it, for messages.
    key: &'static str,
    path: PathBuf,
    reader: Reader<Mmap>,
    /// The fields read from it.
    paths: Vec<FieldPath>,
    /// Prefix of its field names in [`Located::fields`].
    label: &'static str,
}

/// The location database and, when configured, the ASN database, open and
/// memory-mapped.
pub struct GeoDatabase {
    location: Source,
    asn: Option<Source>,
}

impl std::fmt::Debug for GeoDatabase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.describe())
    }
}

/// How many records [`GeoDatabase::open`] reads to check that the
/// configured fields fit the database.
const SCHEMA_SAMPLE: usize = 1000;

impl GeoDatabase {
    /// Opens the databases named in `config`. Errors are whole lines naming
    /// the config key and file (`geoip.database: geoip/x.mmdb: not a MaxMind
    /// DB file (...)`). A database none of whose first records has any of the
    /// configured fields is refused, since every client would then be
    /// located nowhere: that is a schema mismatch, such as MaxMind's paths on
    /// a flat ip-location-db file.
    pub fn open(config: &GeoConfig) -> Result<GeoDatabase, Vec<String>> {
        let fields = &config.fields;
        let has_asn_database = config.asn_database.is_some();
        let location = Source::open(
            "geoip.database",
            &config.database,
            fields::paths(fields, true, !has_asn_database),
            "",
        );
        let asn = config.asn_database.as_ref().map(|path| {
            Source::open(
                "geoip.asn_database",
                path,
                fields::paths(fields, false, true),
                "asn_database:",
            )
        });
        match (location, asn) {
            (Ok(location), None) => Ok(GeoDatabase {
                location,
                asn: None,
            }),
            (Ok(location), Some(Ok(asn))) => Ok(GeoDatabase {
                location,
                asn: Some(asn),
            }),
            (location, asn) => Err(location
                .err()
                .into_iter()
                .chain(asn.and_then(Result::err))
                .collect()),
        }
    }

    /// The location of one address and the prefix length of the database
    /// network that holds it (IPv4 addresses: 0..=32 even when the tree is
    /// IPv6). `fields` lists the database fields read and their raw values,
    /// for `steer explain`.
    pub fn locate(&self, address: IpAddr) -> Located {
        let mut shown = Vec::new();
        let (mut location, mut prefix_len) = self.location.locate(address, &mut shown);
        if let Some(asn) = &self.asn {
            let (asn_location, asn_prefix_len) = asn.locate(address, &mut shown);
            location.asn = asn_location.asn;
            prefix_len = prefix_len.max(asn_prefix_len);
        }
        Located {
            location,
            prefix_len,
            fields: shown,
        }
    }

    /// Visits every IPv4 network in ascending address order, contiguous and
    /// non-overlapping, covering all of 0.0.0.0/0: networks the databases do
    /// not cover are visited with `Location::default()`, and where the
    /// location and ASN databases' networks differ, their intersection is
    /// visited with both.
    pub fn partition_v4(&self, visit: &mut dyn FnMut(u32, u8, &Location)) {
        self.partition(Family::V4, &mut |start, prefix_len, location| {
            // An IPv4 partition's addresses are in the low 32 bits.
            visit(start as u32, prefix_len, location);
        });
    }

    /// As [`GeoDatabase::partition_v4`], for all of `::/0`. The IPv4 subtree
    /// of an IPv6 tree appears at `::/96`, and the IPv4-mapped and 6to4
    /// ranges with whatever the tree holds there (usually the IPv4 records
    /// again). An IPv4-only database gives one network, `::/0`, with no
    /// location.
    pub fn partition_v6(&self, visit: &mut dyn FnMut(u128, u8, &Location)) {
        self.partition(Family::V6, visit);
    }

    fn partition(&self, family: Family, visit: &mut dyn FnMut(u128, u8, &Location)) {
        let nowhere = Location::default();
        // Decoded records are shared between the walk, which adds to them,
        // and the visits, which read them; never at the same time.
        let locations = RefCell::new(Decoded::default());
        let mut location_errors = 0;
        let mut resolve_location =
            |record: &LookupResult<'_, Mmap>| locations.borrow_mut().index(record, &self.location);
        let location_networks = Covering::new(
            tree_networks(
                &self.location.reader,
                family,
                &mut location_errors,
                &mut resolve_location,
            ),
            family,
        );

        let Some(asn_source) = &self.asn else {
            for (start, prefix_len, record) in location_networks {
                match record {
                    Some(index) => visit(start, prefix_len, &locations.borrow().locations[index]),
                    None => visit(start, prefix_len, &nowhere),
                }
            }
            self.warn(family, location_errors, 0);
            return;
        };

        let asns = RefCell::new(Decoded::default());
        let mut asn_errors = 0;
        let mut resolve_asn =
            |record: &LookupResult<'_, Mmap>| asns.borrow_mut().index(record, asn_source);
        let asn_networks = Covering::new(
            tree_networks(
                &asn_source.reader,
                family,
                &mut asn_errors,
                &mut resolve_asn,
            ),
            family,
        );
        // One location rebuilt in place whenever the pair of records
        // changes: caching every pair would hold millions of locations for
        // a City and an ASN database, and copying into the same strings
        // does not allocate.
        let mut merged = Location::default();
        let mut merged_pair = None;
        for (start, prefix_len, location_record, asn_record) in
            Intersection::new(location_networks, asn_networks, family)
        {
            if merged_pair != Some((location_record, asn_record)) {
                merged_pair = Some((location_record, asn_record));
                let locations = locations.borrow();
                let source = location_record.map_or(&nowhere, |index| &locations.locations[index]);
                merged.continent.clone_from(&source.continent);
                merged.country.clone_from(&source.country);
                merged.subdivision.clone_from(&source.subdivision);
                merged.coordinates = source.coordinates;
                merged.asn = asn_record.and_then(|index| asns.borrow().locations[index].asn);
            }
            visit(start, prefix_len, &merged);
        }
        self.warn(family, location_errors, asn_errors);
    }

    fn warn(&self, family: Family, location_errors: usize, asn_errors: usize) {
        for (source, errors) in [
            (Some(&self.location), location_errors),
            (self.asn.as_ref(), asn_errors),
        ] {
            if let Some(source) = source
                && errors > 0
            {
                tracing::warn!(
                    "{}: {}: {errors} damaged parts of the {family:?} search tree were read as networks without a location",
                    source.key,
                    source.path.display()
                );
            }
        }
    }

    /// Description for `/status` and `steer explain`: each file with its
    /// database type, IP version, build date and node count.
    pub fn describe(&self) -> String {
        let mut text = self.location.describe();
        if let Some(asn) = &self.asn {
            let _ = write!(text, "; ASN: {}", asn.describe());
        }
        text
    }
}

/// Records decoded so far, by data offset, so that the millions of networks
/// of a City database that share a few hundred thousand records decode each
/// record once.
#[derive(Default)]
struct Decoded {
    by_offset: FxHashMap<usize, usize>,
    locations: Vec<Location>,
}

impl Decoded {
    /// The index in `locations` of the network's record.
    fn index(&mut self, record: &LookupResult<'_, Mmap>, source: &Source) -> usize {
        let offset = record.offset().unwrap_or(usize::MAX);
        let next = self.locations.len();
        let index = *self.by_offset.entry(offset).or_insert(next);
        if index == next {
            self.locations
                .push(fields::extract(record, &source.paths, source.label, None));
        }
        index
    }
}

impl Source {
    fn open(
        key: &'static str,
        path: &Path,
        paths: Vec<FieldPath>,
        label: &'static str,
    ) -> Result<Source, String> {
        let fail = |problem: String| format!("{key}: {}: {problem}", path.display());
        match std::fs::metadata(path) {
            Err(error) => return Err(fail(format!("cannot open: {error}"))),
            Ok(metadata) if metadata.is_dir() => return Err(fail("is a directory".to_owned())),
            Ok(metadata) if metadata.len() == 0 => {
                return Err(fail("not a MaxMind DB file (the file is empty)".to_owned()));
            }
            Ok(_) => {}
        }
        // SAFETY: the mapping is undefined behaviour if the file is changed
        // in place while mapped. Databases are replaced by renaming a new
        // file over the old one (geoipupdate and `steer geoip build` do),
        // which leaves this mapping on the old file; geoip/README.md says
        // to replace files that way. Mapping instead of reading keeps a
        // reload from copying a 70 MB City file.
        let reader = unsafe { Reader::open_mmap(path) }.map_err(|error| {
            fail(match error {
                MaxMindDbError::Io(error) | MaxMindDbError::Mmap(error) => {
                    format!("cannot read: {error}")
                }
                other => format!("not a MaxMind DB file ({other})"),
            })
        })?;
        let source = Source {
            key,
            path: path.to_path_buf(),
            reader,
            paths,
            label,
        };
        source.check_schema().map_err(fail)?;
        Ok(source)
    }

    /// Refuses a database whose first records have none of the configured
    /// fields.
    fn check_schema(&self) -> Result<(), String> {
        if self.paths.is_empty() {
            return Ok(());
        }
        let Ok(networks) = self.reader.networks(WithinOptions::default()) else {
            return Ok(());
        };
        let mut first_keys = None;
        let mut seen = FxHashSet::default();
        for result in networks.flatten() {
            let Some(offset) = result.offset() else {
                continue;
            };
            if !seen.insert(offset) {
                continue;
            }
            if self.paths.iter().any(|path| {
                path.decode(&result)
                    .is_some_and(|raw| !matches!(raw, fields::Raw::Container(_)))
            }) {
                return Ok(());
            }
            if first_keys.is_none() {
                first_keys = Some(record_keys(&result));
            }
            if seen.len() >= SCHEMA_SAMPLE {
                break;
            }
        }
        let Some(keys) = first_keys else {
            // No records at all: nothing to mismatch.
            return Ok(());
        };
        let names: Vec<&str> = self.paths.iter().map(|path| path.name.as_str()).collect();
        Err(format!(
            "none of the configured fields ({}) is in its records, whose keys are {keys}; the field paths do not match this database",
            names.join(", ")
        ))
    }

    /// The location of `address` in this database alone, with the prefix
    /// length of its network.
    fn locate(&self, address: IpAddr, shown: &mut Vec<(String, String)>) -> (Location, u8) {
        // The only lookup error is an IPv6 address in an IPv4-only
        // database, which the partition has as ::/0 without a record.
        let Ok(result) = self.reader.lookup(address) else {
            return (Location::default(), 0);
        };
        let prefix_len = match (address, result.network()) {
            (IpAddr::V4(_), Ok(network)) if network.ip().is_ipv4() => network.prefix(),
            // The walk towards ::/96 ended above it: one network for all
            // of IPv4.
            (IpAddr::V4(_), _) => 0,
            (IpAddr::V6(_), Ok(network)) => network.prefix(),
            (IpAddr::V6(_), Err(_)) => 0,
        };
        let location = if result.has_data() {
            fields::extract(&result, &self.paths, self.label, Some(shown))
        } else {
            Location::default()
        };
        (location, prefix_len)
    }

    fn describe(&self) -> String {
        let metadata = self.reader.metadata();
        format!(
            "{} ({}, IPv{}, built {} (epoch {}), {} nodes)",
            self.path.display(),
            metadata.database_type,
            metadata.ip_version,
            utc_date(metadata.build_epoch),
            metadata.build_epoch,
            metadata.node_count
        )
    }
}

/// The top-level keys of a record, for a schema mismatch message.
fn record_keys(record: &LookupResult<'_, Mmap>) -> String {
    match record.decode::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>() {
        Ok(Some(map)) => map.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => "(not a map)".to_owned(),
    }
}

/// `YYYY-MM-DD` of a Unix time, in UTC.
fn utc_date(epoch: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm, for the proleptic Gregorian
    // calendar; a u64 of seconds is at most ~2^47 days, well within i64.
    let days = (epoch / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
