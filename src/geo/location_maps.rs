//! The GeoIP partition as prefix maps of location ids, built once per
//! opened database.
//!
//! Every location step of every steered name reads the same partition, and
//! building it walks the whole database: seconds for GeoLite2-City. A
//! latency recompile (every `latency.compile_interval` while samples
//! arrive) keeps the database it compiled with, so with `latency` steps the
//! partition is built on the first compile and kept with the database
//! (measured with GeoLite2-City and 100,000 networks: recompiles from 5.2 s
//! to 0.8 s, 88 MB held); a reload opens the database again and so builds
//! it again. Without `latency` steps nothing compiles the same database
//! twice, and the partition is dropped after the compile.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{GeoDatabase, Location};
use crate::policy::prefix_map::{PrefixMap, PrefixMapBuilder};

/// Every address of each family → an index into `locations` (0: located
/// nowhere).
#[derive(Debug)]
pub struct LocationMaps {
    /// The distinct locations; index 0 is the empty location.
    pub locations: Vec<Location>,
    /// The IPv4 partition.
    pub v4: PrefixMap,
    /// The IPv6 partition.
    pub v6: PrefixMap,
}

impl LocationMaps {
    /// The maps of a compile without GeoIP: everything is located nowhere.
    pub fn nowhere() -> Self {
        Self {
            locations: vec![Location::default()],
            v4: PrefixMap::uniform(32, 0),
            v6: PrefixMap::uniform(128, 0),
        }
    }

    /// Walks `geo` once (uncached; see [`GeoDatabase::location_maps`]).
    pub fn build(geo: &GeoDatabase) -> Self {
        let mut locations = vec![Location::default()];
        // Fx: the keys are records of the operator's own database.
        let mut ids: FxHashMap<Location, u32> = FxHashMap::default();
        ids.insert(Location::default(), 0);
        let mut intern = |location: &Location, locations: &mut Vec<Location>| -> u32 {
            if let Some(&id) = ids.get(location) {
                return id;
            }
            let id = locations.len() as u32;
            locations.push(location.clone());
            ids.insert(location.clone(), id);
            id
        };
        let mut v4 = PrefixMapBuilder::new(32, 0);
        geo.partition_v4(&mut |network, prefix_len, location| {
            let id = intern(location, &mut locations);
            if id != 0 {
                v4.insert(u128::from(network), prefix_len, id);
            }
        });
        let mut v6 = PrefixMapBuilder::new(128, 0);
        geo.partition_v6(&mut |network, prefix_len, location| {
            let id = intern(location, &mut locations);
            if id != 0 {
                v6.insert(network, prefix_len, id);
            }
        });
        Self {
            locations,
            v4: v4.finish(),
            v6: v6.finish(),
        }
    }
}

impl GeoDatabase {
    /// The partition of this database, built by the first caller and kept
    /// for the next compiles (module docs).
    pub fn location_maps(&self) -> Arc<LocationMaps> {
        Arc::clone(
            self.location_maps
                .get_or_init(|| Arc::new(LocationMaps::build(self))),
        )
    }
}
