//! Client location: MaxMind DB (`.mmdb`) files → locations (control plane).
//!
//! Opens City/Country databases (MaxMind's schema, or any mmdb through
//! configurable field paths) and optionally an ASN database, memory-mapped.
//! Several location databases may be listed, such as the IPv4 and IPv6
//! halves of ip-location-db's GeoLite2-City: each address family is located
//! by the first of them that holds networks of that family.
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
pub mod location_maps;
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
    /// the partition. IPv4 addresses get 0..=32 even from an IPv6 tree;
    /// IPv4-mapped ones (`::ffff:a.b.c.d`) 96 + their IPv4 prefix length.
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
    /// The config key that named it, for messages: `geoip.database[1]`.
    key: String,
    path: PathBuf,
    reader: Reader<Mmap>,
    /// The fields read from it.
    paths: Vec<FieldPath>,
    /// Prefix of its field names in [`Located::fields`].
    label: &'static str,
}

/// `::ffff:0:0/96`, where IPv4 clients of dual-stack sockets and IPv4
/// addresses written as IPv6 appear: located as IPv4.
const MAPPED: u128 = 0xffff << 32;
const MAPPED_PREFIX_LEN: u8 = 96;

/// The location databases and, when configured, the ASN database, open and
/// memory-mapped, with the database that locates each address family.
pub struct GeoDatabase {
    /// Every `geoip.database` file, in config order.
    locations: Vec<Source>,
    /// Index in `locations` of the first file that holds IPv4 networks;
    /// `None` when none does, and IPv4 clients are located nowhere.
    v4: Option<usize>,
    /// As `v4`, for IPv6.
    v6: Option<usize>,
    asn: Option<Source>,
    /// The partition, once a compile asked for it ([`location_maps`]).
    location_maps: std::sync::OnceLock<std::sync::Arc<location_maps::LocationMaps>>,
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
    /// DB file (...)`, `geoip.database[1]: ...` in a list). A database none
    /// of whose first records has any of the configured fields is refused,
    /// since every client would then be located nowhere: that is a schema
    /// mismatch, such as MaxMind's paths on a flat ip-location-db file.
    ///
    /// Each address family is located by the first database of the list
    /// that holds networks of that family (an IPv6 tree holds IPv4 when its
    /// `::/96` subtree has a record), so the split IPv4 and IPv6 files of
    /// ip-location-db work together. A
    /// file of a longer list that is used for neither family is refused: it
    /// is almost certainly a mistake (a duplicate, or the wrong order).
    pub fn open(config: &GeoConfig) -> Result<GeoDatabase, Vec<String>> {
        let fields = &config.fields;
        let has_asn_database = config.asn_database.is_some();
        let mut errors = Vec::new();
        let mut locations = Vec::new();
        for (index, path) in config.databases.iter().enumerate() {
            match Source::open(
                config.database_key(index),
                path,
                fields::paths(fields, true, !has_asn_database),
                "",
            ) {
                Ok(source) => locations.push(source),
                Err(error) => errors.push(error),
            }
        }
        let asn = config.asn_database.as_ref().and_then(|path| {
            Source::open(
                "geoip.asn_database".to_owned(),
                path,
                fields::paths(fields, false, true),
                "asn_database:",
            )
            .map_err(|error| errors.push(error))
            .ok()
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        let (v4, v6) = choose_families(&locations)?;
        Ok(GeoDatabase {
            locations,
            v4,
            v6,
            asn,
            location_maps: std::sync::OnceLock::new(),
        })
    }

    /// The database that locates `family`.
    fn source(&self, family: Family) -> Option<&Source> {
        let index = match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        };
        index.and_then(|index| self.locations.get(index))
    }

    /// The location of one address and the prefix length of the database
    /// network that holds it (IPv4 addresses: 0..=32 even when the tree is
    /// IPv6). An IPv4-mapped address (`::ffff:81.2.69.142`) is located as
    /// its IPv4 address, with 96 + the IPv4 prefix length, as
    /// [`GeoDatabase::partition_v6`] has it. `fields` lists the database
    /// fields read and their raw values, for `steer explain`.
    pub fn locate(&self, address: IpAddr) -> Located {
        let (address, family, offset) = match address {
            IpAddr::V4(_) => (address, Family::V4, 0),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), Family::V4, MAPPED_PREFIX_LEN),
                None => (address, Family::V6, 0),
            },
        };
        let mut shown = Vec::new();
        let (mut location, mut prefix_len) = match self.source(family) {
            Some(source) => source.locate(address, &mut shown),
            // No database holds this family: all of it is one network
            // without a location, as in the partition.
            None => (Location::default(), 0),
        };
        if let Some(asn) = &self.asn {
            let (asn_location, asn_prefix_len) = asn.locate(address, &mut shown);
            location.asn = asn_location.asn;
            prefix_len = prefix_len.max(asn_prefix_len);
        }
        if let IpAddr::V6(v6) = address {
            // The partition cuts a network around the mapped range into
            // pieces on either side of it: the piece of this address ends
            // where the address and the range part.
            let shared = (u128::from(v6) ^ MAPPED).leading_zeros();
            if shared < u32::from(MAPPED_PREFIX_LEN) {
                prefix_len = prefix_len.max(shared as u8 + 1);
            }
        }
        Located {
            location,
            prefix_len: prefix_len + offset,
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

    /// As [`GeoDatabase::partition_v4`], for all of `::/0`, from the
    /// database that locates IPv6. The IPv4-mapped range `::ffff:0:0/96` is
    /// the IPv4 partition (from the database that locates IPv4), as
    /// [`GeoDatabase::locate`] has it, whatever the IPv6 file holds there.
    /// The IPv4 subtree of an IPv6 tree appears at `::/96`, and the 6to4
    /// range with whatever the tree holds there (usually the IPv4 records
    /// again). With no database for IPv6, everything outside the mapped
    /// range is nowhere.
    pub fn partition_v6(&self, visit: &mut dyn FnMut(u128, u8, &Location)) {
        let mapped_last = MAPPED | partition::host_mask(u32::from(MAPPED_PREFIX_LEN), 128);
        let visit_mapped = |visit: &mut dyn FnMut(u128, u8, &Location)| {
            self.partition(Family::V4, &mut |start, prefix_len, location| {
                visit(MAPPED | start, MAPPED_PREFIX_LEN + prefix_len, location);
            });
        };
        self.partition(Family::V6, &mut |start, prefix_len, location| {
            let last = start | partition::host_mask(u32::from(prefix_len), 128);
            if last < MAPPED || start > mapped_last {
                visit(start, prefix_len, location);
            } else if prefix_len >= MAPPED_PREFIX_LEN {
                // Inside the mapped range, which is replaced as a whole
                // where its first network would be.
                if start == MAPPED {
                    visit_mapped(visit);
                }
            } else {
                // A network around the mapped range (the partition is
                // aligned, so it holds all of it): its pieces on either side
                // keep its location.
                let (before, after) = partition::around(prefix_len, MAPPED, MAPPED_PREFIX_LEN);
                for (piece, piece_len) in before {
                    visit(piece, piece_len, location);
                }
                visit_mapped(visit);
                for (piece, piece_len) in after {
                    visit(piece, piece_len, location);
                }
            }
        });
    }

    fn partition(&self, family: Family, visit: &mut dyn FnMut(u128, u8, &Location)) {
        let nowhere = Location::default();
        let source = self.source(family);
        // Decoded records are shared between the walk, which adds to them,
        // and the visits, which read them; never at the same time.
        let locations = RefCell::new(Decoded::default());
        let mut location_errors = 0;
        let mut resolve_location = |record: &LookupResult<'_, Mmap>| {
            // Only called for records of `source`, so it is there.
            let (paths, label) = source.map_or((&[][..], ""), |source| {
                (source.paths.as_slice(), source.label)
            });
            locations.borrow_mut().index(record, paths, label)
        };
        let location_networks = Covering::new(
            tree_networks(
                source.map(|source| &source.reader),
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
            warn(family, source, location_errors);
            return;
        };

        let asns = RefCell::new(Decoded::default());
        let mut asn_errors = 0;
        let mut resolve_asn = |record: &LookupResult<'_, Mmap>| {
            asns.borrow_mut()
                .index(record, &asn_source.paths, asn_source.label)
        };
        let asn_networks = Covering::new(
            tree_networks(
                Some(&asn_source.reader),
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
        warn(family, source, location_errors);
        warn(family, Some(asn_source), asn_errors);
    }

    /// Description for `/status` and `steer explain`: each file with its
    /// database type, IP version, build date and node count, and, when
    /// several files locate clients, which family each one locates.
    pub fn describe(&self) -> String {
        let mut text = match self.locations.as_slice() {
            [only] => only.describe(),
            sources => {
                let mut parts: Vec<String> = sources
                    .iter()
                    .enumerate()
                    .map(|(index, source)| {
                        let families = match (self.v4 == Some(index), self.v6 == Some(index)) {
                            (true, true) => "IPv4 and IPv6",
                            (true, false) => "IPv4",
                            (false, true) => "IPv6",
                            // Refused by `open` in a list of several.
                            (false, false) => "nothing",
                        };
                        format!("{} for {families}", source.describe())
                    })
                    .collect();
                for (family, index) in [("IPv4", self.v4), ("IPv6", self.v6)] {
                    if index.is_none() {
                        parts.push(format!("no {family} database"));
                    }
                }
                parts.join("; ")
            }
        };
        if let Some(asn) = &self.asn {
            let _ = write!(text, "; ASN: {}", asn.describe());
        }
        text
    }
}

/// The index of the source that locates IPv4, and of the one that locates
/// IPv6 (`None`: no source holds that family).
type Families = (Option<usize>, Option<usize>);

/// For each family, the index of the first source that holds networks of
/// it; an error for every source of a list of several that is used for
/// neither.
fn choose_families(sources: &[Source]) -> Result<Families, Vec<String>> {
    let mut v4 = None;
    let mut v6 = None;
    let mut errors = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let holds_v4 = partition::holds(&source.reader, Family::V4);
        let holds_v6 = partition::holds(&source.reader, Family::V6);
        let mut used = false;
        for (holds, chosen) in [(holds_v4, &mut v4), (holds_v6, &mut v6)] {
            if holds && chosen.is_none() {
                *chosen = Some(index);
                used = true;
            }
        }
        // A lone file that holds nothing is not a mistake in the list, only
        // an empty database: every client is located nowhere.
        if used || sources.len() == 1 {
            continue;
        }
        let reasons: Vec<String> = [("IPv4", holds_v4, v4), ("IPv6", holds_v6, v6)]
            .into_iter()
            .map(|(family, holds, chosen)| match chosen {
                Some(chosen) if holds => format!(
                    "{family} is located by {}, earlier in the list",
                    sources[chosen].key
                ),
                _ => format!("it holds no {family} networks"),
            })
            .collect();
        errors.push(format!(
            "{}: {}: never used: {}; remove it, or move it up the list",
            source.key,
            source.path.display(),
            reasons.join(", and ")
        ));
    }
    if errors.is_empty() {
        Ok((v4, v6))
    } else {
        Err(errors)
    }
}

/// Logs the damaged parts of `source`'s tree that a walk of `family` read
/// as networks without a location.
fn warn(family: Family, source: Option<&Source>, errors: usize) {
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
    fn index(
        &mut self,
        record: &LookupResult<'_, Mmap>,
        paths: &[FieldPath],
        label: &str,
    ) -> usize {
        let offset = record.offset().unwrap_or(usize::MAX);
        let next = self.locations.len();
        let index = *self.by_offset.entry(offset).or_insert(next);
        if index == next {
            self.locations
                .push(fields::extract(record, paths, label, None));
        }
        index
    }
}

impl Source {
    fn open(
        key: String,
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
            key: key.clone(),
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
            crate::utc_date(metadata.build_epoch),
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
