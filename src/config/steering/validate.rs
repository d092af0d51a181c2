//! The steering sections as read ([`SteeringSpec`]) → [`SteeringConfig`].
//!
//! Sections are checked in the order they depend on each other: sites, then
//! pools (which name sites), then steered names (which name pools, and
//! whose policies name pools, regions and map files). Every error is
//! collected with its key path, `steer[1].policy[2].geo.EU[0]`, so one
//! `steer check` shows everything to fix; a bad value is replaced by a
//! harmless one so that checking can go on, and the caller throws the
//! result away when there was any error.
//!
//! A policy may only name pools of its own steered name: a step that
//! reorders or filters the candidates cannot bring in a pool the name never
//! offered, so such a name is a mistake (most often a typo) and is refused.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::maps::{MapKey, parse_map_file};
use super::probes;
use super::region::is_letter_pair;
use super::{
    CONTINENTS, EcsConfig, Endpoint, GeoConfig, GeoFields, IpNet, Pool, PoolMembers, Probe, Region,
    Site, SteeredName, SteeredType, SteeringConfig, Step, WhenAllDown,
};
use crate::config::ConfigError;
use crate::config::spec::steering::{
    AddressSpec, DatabaseSpec, EcsSpec, Entries, GeoFieldsSpec, GeoIpSpec, MapEntrySpec, PoolSpec,
    SiteSpec, SteerSpec, SteeringSpec, StepSpec, WhenAllDownSpec,
};

/// TTL of steered answers when `ttl` is not set.
const DEFAULT_TTL: u32 = 60;
/// Longest TTL accepted: a day, beyond which steering stops steering.
const MAX_TTL: i64 = 86_400;
/// Largest pool and endpoint weight.
const MAX_WEIGHT: i64 = 1_000;
/// Most pools a steered name may list, and most addresses `first` may keep.
const MAX_POOLS: usize = 64;

/// Checks the steering sections of `file` (relative paths are resolved
/// against `base`), appending every error to `errors`.
pub(crate) fn validate(
    file: &Path,
    (base, state): (&Path, &Path),
    spec: SteeringSpec,
    errors: &mut Vec<ConfigError>,
) -> SteeringConfig {
    let mut checker = Checker {
        file,
        base,
        errors,
        reported_map_files: HashSet::new(),
    };
    let geoip = spec.geoip.map(|geoip| checker.geoip(geoip));
    let ecs = checker.ecs(spec.ecs.unwrap_or_default());
    let (health, peers) = {
        let mut report = |path: String, message: String| checker.error(path, message);
        // As written: a quorum is checked against the peers listed, even
        // those with an error of their own.
        let peer_count = spec.peers.as_ref().map(|peers| peers.urls.len());
        let peers = spec
            .peers
            .map(|peers| probes::peers(peers, base, &mut report));
        let health = probes::health(spec.health.unwrap_or_default(), peer_count, &mut report);
        (health, peers)
    };
    let probes: Vec<Probe> = spec
        .probes
        .into_iter()
        .map(|(id, probe)| {
            checker.id("probes", &id);
            let path = key_path("probes", &id);
            let mut report = |path: String, message: String| checker.error(path, message);
            probes::probe(id, &path, probe, &mut report)
        })
        .collect();
    let sites: Vec<Site> = spec
        .sites
        .into_iter()
        .map(|(id, site)| checker.site(id, site))
        .collect();
    let pools: Vec<Pool> = spec
        .pools
        .into_iter()
        .map(|(id, pool)| checker.pool(id, pool, &sites, &probes))
        .collect();
    let latency = {
        let mut report = |path: String, message: String| checker.error(path, message);
        probes::latency(
            spec.latency.unwrap_or_default(),
            file,
            (base, state),
            &mut report,
        )
    };
    let resolver = {
        let mut report = |path: String, message: String| checker.error(path, message);
        probes::resolver(spec.resolver.unwrap_or_default(), &mut report)
    };
    if resolver.servers.is_empty() {
        for pool in &pools {
            if matches!(pool.members, PoolMembers::Alias(_)) {
                checker.error(
                    format!("{}.alias", key_path("pools", &pool.id)),
                    "needs [resolver] servers to be resolved through",
                );
            }
        }
    }
    let mut config = SteeringConfig {
        geoip,
        ecs,
        sites,
        pools,
        steered: Vec::new(),
        probes,
        health,
        latency,
        peers,
        resolver,
    };
    let mut steered = Vec::new();
    for (index, steer) in spec.steer.into_iter().enumerate() {
        if let Some(name) = checker.steered(index, steer, &config) {
            steered.push(name);
        }
    }
    checker.conflicts(&steered);
    config.steered = steered;
    config
}

struct Checker<'run> {
    file: &'run Path,
    base: &'run Path,
    errors: &'run mut Vec<ConfigError>,
    /// Map files whose own errors were already reported: a file shared by
    /// an A and an AAAA name is wrong once, not twice.
    reported_map_files: HashSet<PathBuf>,
}

/// What a policy step of one steered name is checked against.
struct Owner<'a> {
    /// `steer[i]`.
    key: &'a str,
    /// The name's pools that exist, in order.
    pools: &'a [String],
    config: &'a SteeringConfig,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::at(self.file, path, message));
    }

    /// `value` when it is in `range`, else an error and `None`.
    fn ranged(&mut self, path: &str, value: i64, range: RangeInclusive<i64>) -> Option<i64> {
        if range.contains(&value) {
            Some(value)
        } else {
            self.error(
                path,
                format!(
                    "must be between {} and {}, not {value}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    /// A weight, 0..=1000; 1 when absent or wrong.
    fn weight(&mut self, path: &str, weight: Option<i64>) -> u32 {
        weight
            .and_then(|weight| self.ranged(path, weight, 0..=MAX_WEIGHT))
            .and_then(|weight| u32::try_from(weight).ok())
            .unwrap_or(1)
    }

    /// A file named in the config, resolved against its directory.
    fn file_path(&mut self, path: &str, text: &str) -> PathBuf {
        if text.trim().is_empty() {
            self.error(path, "must name a file");
        }
        self.base.join(text)
    }

    fn geoip(&mut self, spec: GeoIpSpec) -> GeoConfig {
        let databases = self.databases(spec.database);
        let asn_database = spec
            .asn_database
            .map(|text| self.file_path("geoip.asn_database", &text));
        let written = spec.fields.unwrap_or_default();
        let default = GeoFields::default();
        let GeoFieldsSpec {
            country,
            continent,
            subdivision,
            latitude,
            longitude,
            asn,
        } = written;
        let fields = GeoFields {
            country: self.field_path("country", country, default.country),
            continent: self.field_path("continent", continent, default.continent),
            subdivision: self.field_path("subdivision", subdivision, default.subdivision),
            latitude: self.field_path("latitude", latitude, default.latitude),
            longitude: self.field_path("longitude", longitude, default.longitude),
            asn: self.field_path("asn", asn, default.asn),
        };
        GeoConfig {
            databases,
            asn_database,
            fields,
        }
    }

    /// `geoip.database`: one file or a non-empty list of distinct files.
    /// Which file locates which address family is only known once they are
    /// open (`GeoDatabase::open`).
    fn databases(&mut self, spec: DatabaseSpec) -> Vec<PathBuf> {
        let texts = match spec {
            DatabaseSpec::One(text) => {
                return vec![self.file_path("geoip.database", &text)];
            }
            DatabaseSpec::List(texts) => texts,
        };
        if texts.is_empty() {
            self.error("geoip.database", "must name at least one file");
        }
        let mut databases: Vec<PathBuf> = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let key = format!("geoip.database[{index}]");
            let path = self.file_path(&key, text);
            // The same file twice can only be a mistake: the second copy
            // would never locate anything.
            if let Some(first) = databases.iter().position(|seen| *seen == path) {
                self.error(
                    key,
                    format!("\"{text}\" is already listed as geoip.database[{first}]"),
                );
            }
            databases.push(path);
        }
        databases
    }

    /// `geoip.fields.NAME`: a dotted path, `""` for "not available".
    fn field_path(
        &mut self,
        name: &str,
        written: Option<String>,
        default: Option<Vec<String>>,
    ) -> Option<Vec<String>> {
        let Some(text) = written else {
            return default;
        };
        if text.is_empty() {
            return None;
        }
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if segments
            .iter()
            .any(|segment| segment.is_empty() || segment.contains(char::is_whitespace))
        {
            self.error(
                format!("geoip.fields.{name}"),
                format!(
                    "invalid field path \"{text}\": expected keys and array indexes joined by \
                     dots, e.g. \"subdivisions.0.iso_code\", or \"\" when the database has no \
                     such field"
                ),
            );
            return None;
        }
        Some(segments)
    }

    fn ecs(&mut self, spec: EcsSpec) -> EcsConfig {
        let default = EcsConfig::default();
        let mut limit = |key: &str, value: Option<i64>, most: i64, default: u8| {
            value
                .and_then(|value| self.ranged(&format!("ecs.{key}"), value, 0..=most))
                .and_then(|value| u8::try_from(value).ok())
                .unwrap_or(default)
        };
        EcsConfig {
            max_source_v4: limit(
                "max_source_v4",
                spec.max_source_v4,
                32,
                default.max_source_v4,
            ),
            max_source_v6: limit(
                "max_source_v6",
                spec.max_source_v6,
                128,
                default.max_source_v6,
            ),
        }
    }

    /// Pool and site ids end up in messages, metrics and other tables' keys;
    /// keeping them to TOML's bare-key characters means they never need
    /// quoting anywhere.
    fn id(&mut self, section: &str, id: &str) {
        let bare = !id.is_empty()
            && id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !bare {
            self.error(
                key_path(section, id),
                "invalid id: use only letters, digits, \"-\" and \"_\"",
            );
        }
    }

    fn site(&mut self, id: String, spec: SiteSpec) -> Site {
        self.id("sites", &id);
        let path = key_path("sites", &id);
        let coordinates = spec
            .location
            .and_then(|location| self.location(&format!("{path}.location"), &location));
        let country = spec.country.and_then(|country| {
            if is_letter_pair(&country) {
                Some(country.to_ascii_uppercase())
            } else {
                self.error(
                    format!("{path}.country"),
                    format!("expected a two-letter country code, not \"{country}\""),
                );
                None
            }
        });
        let continent = spec.continent.and_then(|continent| {
            let upper = continent.to_ascii_uppercase();
            if CONTINENTS.contains(&upper.as_str()) {
                Some(upper)
            } else {
                self.error(
                    format!("{path}.continent"),
                    format!(
                        "unknown continent \"{continent}\", expected one of {}",
                        CONTINENTS.join(", ")
                    ),
                );
                None
            }
        });
        let latency_target = spec.latency_target.and_then(|text| {
            match text.trim().parse::<std::net::SocketAddr>() {
                Ok(target) if target.port() != 0 => Some(target),
                _ => {
                    self.error(
                        format!("{path}.latency_target"),
                        format!(
                            "invalid target \"{text}\": expected IP:PORT, e.g. \"192.0.2.10:443\""
                        ),
                    );
                    None
                }
            }
        });
        Site {
            id,
            coordinates,
            country,
            continent,
            latency_target,
        }
    }

    fn location(&mut self, path: &str, location: &[f64]) -> Option<(f64, f64)> {
        let [latitude, longitude] = location else {
            self.error(
                path,
                format!(
                    "expected two numbers, [latitude, longitude], not {}",
                    location.len()
                ),
            );
            return None;
        };
        let mut good = true;
        if !(-90.0..=90.0).contains(latitude) {
            self.error(
                format!("{path}[0]"),
                format!("latitude must be between -90 and 90, not {latitude}"),
            );
            good = false;
        }
        if !(-180.0..=180.0).contains(longitude) {
            self.error(
                format!("{path}[1]"),
                format!("longitude must be between -180 and 180, not {longitude}"),
            );
            good = false;
        }
        good.then_some((*latitude, *longitude))
    }

    fn pool(&mut self, id: String, spec: PoolSpec, sites: &[Site], probes: &[Probe]) -> Pool {
        self.id("pools", &id);
        let path = key_path("pools", &id);
        if !sites.iter().any(|site| site.id == spec.site) {
            self.error(
                format!("{path}.site"),
                format!("unknown site \"{}\"", spec.site),
            );
        }
        let weight = self.weight(&format!("{path}.weight"), spec.weight);
        let members = match (spec.addresses, spec.cname, spec.alias) {
            (Some(addresses), None, None) => PoolMembers::Addresses(self.endpoints(
                &format!("{path}.addresses"),
                addresses,
                probes,
            )),
            (None, Some(cname), None) => match absolute_name(&cname) {
                Ok(target) => PoolMembers::Cname(target),
                Err(message) => {
                    self.error(format!("{path}.cname"), message);
                    PoolMembers::Cname(Name::root())
                }
            },
            (None, None, Some(alias)) => match absolute_name(&alias) {
                // Lower case: one target asked once however it is spelled.
                Ok(target) if !target.is_root() => PoolMembers::Alias(target.to_lowercase()),
                Ok(_) => {
                    self.error(format!("{path}.alias"), "the root has no addresses");
                    PoolMembers::Alias(Name::root())
                }
                Err(message) => {
                    self.error(format!("{path}.alias"), message);
                    PoolMembers::Alias(Name::root())
                }
            },
            (None, None, None) => {
                self.error(&path, "needs addresses, a cname or an alias");
                PoolMembers::Addresses(Vec::new())
            }
            _ => {
                self.error(
                    &path,
                    "has more than one of addresses, cname and alias; a pool answers with one",
                );
                PoolMembers::Addresses(Vec::new())
            }
        };
        let probe = spec
            .probe
            .filter(|probe| self.known_probe(&format!("{path}.probe"), probe, probes));
        if probe.is_some() && matches!(members, PoolMembers::Cname(_)) {
            self.error(
                format!("{path}.probe"),
                "a CNAME pool has no addresses to probe",
            );
        }
        if probe.is_some() && matches!(members, PoolMembers::Alias(_)) {
            self.error(
                format!("{path}.probe"),
                "an alias pool's addresses change with its target's, so they are not probed; \
                 the target's operator keeps them healthy",
            );
        }
        let min_healthy = spec.min_healthy.filter(|fraction| {
            let good = (0.0..=1.0).contains(fraction);
            if !good {
                self.error(
                    format!("{path}.min_healthy"),
                    format!("must be between 0.0 and 1.0, not {fraction}"),
                );
            }
            good
        });
        Pool {
            id,
            site: spec.site,
            weight,
            members,
            probe,
            min_healthy,
        }
    }

    /// Whether `id` names a probe; an error at `path` if not.
    fn known_probe(&mut self, path: &str, id: &str, probes: &[Probe]) -> bool {
        let known = probes.iter().any(|probe| probe.id == id);
        if !known {
            self.error(path, format!("unknown probe \"{id}\""));
        }
        known
    }

    fn endpoints(
        &mut self,
        path: &str,
        addresses: Vec<AddressSpec>,
        probes: &[Probe],
    ) -> Vec<Endpoint> {
        if addresses.is_empty() {
            self.error(path, "must list at least one address");
        }
        let mut endpoints = Vec::new();
        let mut first_seen: HashMap<IpAddr, usize> = HashMap::new();
        for (index, spec) in addresses.into_iter().enumerate() {
            let entry = format!("{path}[{index}]");
            let mut probe = None;
            let mut probe_target = None;
            let (text, address_path, weight) = match spec {
                AddressSpec::Bare(text) => (text, entry.clone(), 1),
                AddressSpec::Table(table) => {
                    let weight = self.weight(&format!("{entry}.weight"), table.weight);
                    probe = table
                        .probe
                        .filter(|probe| self.known_probe(&format!("{entry}.probe"), probe, probes));
                    if let Some(text) = table.probe_target {
                        match parse_probe_target(&text) {
                            Ok(target) => probe_target = Some(target),
                            Err(message) => self.error(format!("{entry}.probe_target"), message),
                        }
                    }
                    (table.address, format!("{entry}.address"), weight)
                }
            };
            let Ok(address) = text.parse::<IpAddr>() else {
                self.error(address_path, format!("invalid IP address \"{text}\""));
                continue;
            };
            if let Some(first) = first_seen.get(&address) {
                self.error(
                    address_path,
                    format!("{address} is already listed as {path}[{first}]"),
                );
                continue;
            }
            first_seen.insert(address, index);
            endpoints.push(Endpoint {
                address,
                weight,
                probe,
                probe_target,
            });
        }
        endpoints
    }

    fn steered(
        &mut self,
        index: usize,
        spec: SteerSpec,
        config: &SteeringConfig,
    ) -> Option<SteeredName> {
        let key = format!("steer[{index}]");
        let name = absolute_name(&spec.name)
            .map_err(|message| self.error(format!("{key}.name"), message))
            .ok();
        let record_type = match spec.record_type.to_ascii_uppercase().as_str() {
            "A" => Some(SteeredType::A),
            "AAAA" => Some(SteeredType::Aaaa),
            "CNAME" => Some(SteeredType::Cname),
            _ => {
                self.error(
                    format!("{key}.type"),
                    format!(
                        "unknown type \"{}\", expected A, AAAA or CNAME",
                        spec.record_type
                    ),
                );
                None
            }
        };
        let ttl = spec
            .ttl
            .map(|ttl| {
                self.ranged(&format!("{key}.ttl"), ttl, 0..=MAX_TTL)
                    .and_then(|ttl| u32::try_from(ttl).ok())
                    .unwrap_or(DEFAULT_TTL)
            })
            .unwrap_or(DEFAULT_TTL);
        let pools = self.steered_pools(&key, spec.pools, record_type, config);
        let owner = Owner {
            key: &key,
            pools: &pools,
            config,
        };
        let policy: Vec<Step> = spec
            .policy
            .into_iter()
            .enumerate()
            .filter_map(|(position, step)| {
                self.step(&format!("{key}.policy[{position}]"), step, &owner)
            })
            .collect();
        let when_all_down = match spec.when_all_down {
            None | Some(WhenAllDownSpec::FailOpen) => WhenAllDown::FailOpen,
            Some(WhenAllDownSpec::NoData) => WhenAllDown::NoData,
            Some(WhenAllDownSpec::ServFail) => WhenAllDown::ServFail,
            Some(WhenAllDownSpec::Pool(id)) => {
                let path = format!("{key}.when_all_down.pool");
                match config.pool(&id) {
                    None => self.error(path, format!("unknown pool \"{id}\"")),
                    Some(pool) => {
                        if let Some(record_type) = record_type {
                            self.pool_kind(&path, pool, record_type);
                        }
                    }
                }
                WhenAllDown::Pool(id)
            }
        };
        Some(SteeredName {
            name: name?,
            record_type: record_type?,
            ttl,
            pools,
            policy,
            when_all_down,
            key_path: key,
        })
    }

    /// `steer[i].pools`: the existing pools listed, in order.
    fn steered_pools(
        &mut self,
        key: &str,
        listed: Vec<String>,
        record_type: Option<SteeredType>,
        config: &SteeringConfig,
    ) -> Vec<String> {
        let path = format!("{key}.pools");
        if listed.is_empty() {
            self.error(&path, "must list at least one pool");
        } else if listed.len() > MAX_POOLS {
            self.error(
                &path,
                format!("must list at most {MAX_POOLS} pools, not {}", listed.len()),
            );
        }
        let mut pools: Vec<String> = Vec::new();
        for (index, id) in listed.into_iter().enumerate() {
            let entry = format!("{path}[{index}]");
            let Some(pool) = config.pool(&id) else {
                self.error(entry, format!("unknown pool \"{id}\""));
                continue;
            };
            if let Some(first) = pools.iter().position(|listed| *listed == id) {
                self.error(
                    entry,
                    format!("\"{id}\" is already listed as {path}[{first}]"),
                );
                continue;
            }
            if let Some(record_type) = record_type {
                self.pool_kind(&entry, pool, record_type);
            }
            pools.push(id);
        }
        pools
    }

    /// An error when `pool` cannot answer `record_type`.
    fn pool_kind(&mut self, path: &str, pool: &Pool, record_type: SteeredType) {
        if pool.serves(record_type) {
            return;
        }
        let id = &pool.id;
        let why = match (&pool.members, record_type) {
            (PoolMembers::Cname(_), _) => "answers with a CNAME",
            (PoolMembers::Alias(_), _) => "is an alias, which answers A and AAAA",
            (PoolMembers::Addresses(_), SteeredType::Cname) => "has addresses, not a cname",
            (PoolMembers::Addresses(_), SteeredType::A) => "has no IPv4 address",
            (PoolMembers::Addresses(_), SteeredType::Aaaa) => "has no IPv6 address",
        };
        self.error(
            path,
            format!("pool \"{id}\" {why}, so it cannot answer {record_type}"),
        );
    }

    /// Why `id` cannot be named by a step of `owner`, if it cannot.
    fn foreign_pool(owner: &Owner<'_>, id: &str) -> Option<String> {
        if owner.pools.iter().any(|pool| pool == id) {
            None
        } else if owner.config.pool(id).is_some() {
            Some(format!("pool \"{id}\" is not in {}.pools", owner.key))
        } else {
            Some(format!("unknown pool \"{id}\""))
        }
    }

    /// A list of pools inside a step: not empty, no repeats, all the owner's.
    fn step_pools(&mut self, path: &str, listed: Vec<String>, owner: &Owner<'_>) -> Vec<String> {
        if listed.is_empty() {
            self.error(path, "must list at least one pool");
        }
        let mut pools: Vec<String> = Vec::new();
        for (index, id) in listed.into_iter().enumerate() {
            let entry = format!("{path}[{index}]");
            if let Some(message) = Self::foreign_pool(owner, &id) {
                self.error(entry, message);
            } else if let Some(first) = pools.iter().position(|listed| *listed == id) {
                self.error(
                    entry,
                    format!("\"{id}\" is already listed as {path}[{first}]"),
                );
            } else {
                pools.push(id);
            }
        }
        pools
    }

    /// An error when the step at `path` cannot work without `[geoip]`.
    fn needs_geoip(&mut self, path: &str, step: &str, owner: &Owner<'_>) -> Option<GeoFields> {
        match &owner.config.geoip {
            Some(geoip) => Some(geoip.fields.clone()),
            None => {
                self.error(
                    path,
                    format!("{step} needs a [geoip] database to know where clients are"),
                );
                None
            }
        }
    }

    fn step(&mut self, path: &str, spec: StepSpec, owner: &Owner<'_>) -> Option<Step> {
        match spec {
            StepSpec::Healthy(healthy) => {
                let min_healthy = healthy.min_healthy.unwrap_or(0.0);
                if !(0.0..=1.0).contains(&min_healthy) {
                    self.error(
                        format!("{path}.healthy.min_healthy"),
                        format!("must be between 0.0 and 1.0, not {min_healthy}"),
                    );
                    return None;
                }
                Some(Step::Healthy { min_healthy })
            }
            StepSpec::Geofence(entries) => self.geofence(path, entries, owner),
            StepSpec::Geo(entries) => self.geo(path, entries, owner),
            StepSpec::Cidr(entries) => self
                .map_step::<IpNet>(&format!("{path}.cidr"), entries, owner)
                .map(Step::Cidr),
            StepSpec::Asn(entries) => {
                if let Some(fields) = self.needs_geoip(path, "asn", owner)
                    && fields.asn.is_none()
                {
                    self.error(path, "asn needs geoip.fields.asn, which is set to \"\"");
                }
                self.map_step::<u32>(&format!("{path}.asn"), entries, owner)
                    .map(Step::Asn)
            }
            StepSpec::Nearest(nearest) => {
                if let Some(fields) = self.needs_geoip(path, "nearest", owner)
                    && (fields.latitude.is_none() || fields.longitude.is_none())
                {
                    self.error(
                        path,
                        "nearest needs geoip.fields.latitude and geoip.fields.longitude, \
                         and one of them is set to \"\"",
                    );
                }
                self.coordinates_of_sites(path, owner);
                let mut bias_km = Vec::new();
                for (id, kilometres) in nearest.bias.unwrap_or_default().0 {
                    let entry = key_path(&format!("{path}.nearest.bias"), &id);
                    if let Some(message) = Self::foreign_pool(owner, &id) {
                        self.error(entry, message);
                    } else if !kilometres.is_finite() {
                        self.error(entry, "must be a number of kilometres");
                    } else {
                        bias_km.push((id, kilometres));
                    }
                }
                Some(Step::Nearest { bias_km })
            }
            StepSpec::Latency(latency) => {
                let margin = |checker: &mut Self, key: &str, value: Option<f64>, most: f64| {
                    let value = value.unwrap_or(0.0);
                    if value.is_finite() && (0.0..=most).contains(&value) {
                        value
                    } else {
                        checker.error(
                            format!("{path}.latency.{key}"),
                            format!("must be between 0 and {most}, not {value}"),
                        );
                        0.0
                    }
                };
                let margin_percent = margin(self, "margin_percent", latency.margin_percent, 100.0);
                let margin_ms = margin(self, "margin_ms", latency.margin_ms, 10_000.0);
                Some(Step::Latency {
                    margin_percent,
                    margin_ms,
                })
            }
            StepSpec::Priority => Some(Step::Priority),
            StepSpec::Weighted => Some(Step::Weighted),
            StepSpec::Sticky => Some(Step::Sticky),
            StepSpec::First(count) => {
                let most = i64::try_from(MAX_POOLS).unwrap_or(i64::MAX);
                self.ranged(&format!("{path}.first"), count, 1..=most)
                    .and_then(|count| usize::try_from(count).ok())
                    .map(Step::First)
            }
        }
    }

    /// `nearest` orders by the distance to each pool's site, so every site
    /// the name can reach needs coordinates.
    fn coordinates_of_sites(&mut self, path: &str, owner: &Owner<'_>) {
        let mut reported: Vec<&str> = Vec::new();
        for id in owner.pools {
            let Some(pool) = owner.config.pool(id) else {
                continue;
            };
            let Some(site) = owner.config.site(&pool.site) else {
                continue;
            };
            if site.coordinates.is_none() && !reported.contains(&site.id.as_str()) {
                reported.push(&site.id);
                self.error(
                    path,
                    format!(
                        "nearest needs coordinates for site \"{}\" ({}.site)",
                        site.id,
                        key_path("pools", id)
                    ),
                );
            }
        }
    }

    fn geofence(
        &mut self,
        path: &str,
        entries: Entries<Vec<String>>,
        owner: &Owner<'_>,
    ) -> Option<Step> {
        let fields = self.needs_geoip(path, "geofence", owner);
        let step_path = format!("{path}.geofence");
        if entries.0.is_empty() {
            self.error(&step_path, "must list at least one pool");
        }
        let mut fences = Vec::new();
        for (id, written) in entries.0 {
            let entry = key_path(&step_path, &id);
            if let Some(message) = Self::foreign_pool(owner, &id) {
                self.error(&entry, message);
            }
            if written.is_empty() {
                self.error(&entry, "must list at least one region");
            }
            let mut regions: Vec<Region> = Vec::new();
            for (index, text) in written.iter().enumerate() {
                let region_path = format!("{entry}[{index}]");
                if text.eq_ignore_ascii_case("default") {
                    self.error(region_path, "\"default\" is only valid as a key of geo");
                    continue;
                }
                match Region::parse(text) {
                    Err(message) => self.error(region_path, message),
                    Ok(region) => {
                        if let Some(first) = regions.iter().position(|seen| *seen == region) {
                            self.error(
                                region_path,
                                format!("{region} is already listed as {entry}[{first}]"),
                            );
                            continue;
                        }
                        self.region_field(&region_path, &region, fields.as_ref());
                        regions.push(region);
                    }
                }
            }
            fences.push((id, regions));
        }
        Some(Step::Geofence(fences))
    }

    fn geo(
        &mut self,
        path: &str,
        entries: Entries<Vec<String>>,
        owner: &Owner<'_>,
    ) -> Option<Step> {
        let fields = self.needs_geoip(path, "geo", owner);
        let step_path = format!("{path}.geo");
        if entries.0.is_empty() {
            self.error(&step_path, "must map at least one region");
        }
        let mut map: Vec<(Region, Vec<String>)> = Vec::new();
        let mut default: Option<Vec<String>> = None;
        // Where each region was first written, to name both in the error.
        let mut first_key: HashMap<Region, String> = HashMap::new();
        let mut default_key: Option<String> = None;
        for (key, listed) in entries.0 {
            let entry = key_path(&step_path, &key);
            let pools = self.step_pools(&entry, listed, owner);
            if key.eq_ignore_ascii_case("default") {
                if let Some(first) = &default_key {
                    self.error(&entry, format!("the default is already given as {first}"));
                } else {
                    default_key = Some(entry);
                    default = Some(pools);
                }
                continue;
            }
            match Region::parse(&key) {
                Err(message) => self.error(entry, message),
                Ok(region) => {
                    if let Some(first) = first_key.get(&region) {
                        self.error(&entry, format!("{region} is already mapped as {first}"));
                        continue;
                    }
                    self.region_field(&entry, &region, fields.as_ref());
                    first_key.insert(region.clone(), entry);
                    map.push((region, pools));
                }
            }
        }
        Some(Step::Geo { map, default })
    }

    /// A region that the configured database fields can never produce.
    fn region_field(&mut self, path: &str, region: &Region, fields: Option<&GeoFields>) {
        let Some(fields) = fields else {
            return;
        };
        let missing = match region {
            Region::Subdivision(..) if fields.subdivision.is_none() => {
                "subdivisions need geoip.fields.subdivision, which is set to \"\""
            }
            Region::Country(_) if fields.country.is_none() => {
                "countries need geoip.fields.country, which is set to \"\""
            }
            // A missing continent is derived from the country.
            Region::Continent(_) if fields.continent.is_none() && fields.country.is_none() => {
                "continents need geoip.fields.continent or geoip.fields.country, which are \
                 both set to \"\""
            }
            _ => return,
        };
        self.error(path, missing);
    }

    /// `cidr` and `asn`: inline keys, or `{ file = "..." }`.
    fn map_step<K: MapKey>(
        &mut self,
        path: &str,
        entries: Entries<MapEntrySpec>,
        owner: &Owner<'_>,
    ) -> Option<Vec<(K, Vec<String>)>> {
        let file_entry = entries.0.iter().position(|(key, _)| key == "file");
        if let Some(position) = file_entry {
            if entries.0.len() > 1 {
                self.error(
                    path,
                    "file cannot be combined with entries written here; move them into the file",
                );
                return None;
            }
            let file_path = format!("{path}.file");
            return match entries.0.into_iter().nth(position) {
                Some((_, MapEntrySpec::File(text))) => self.map_file::<K>(&file_path, &text, owner),
                _ => {
                    self.error(file_path, "expected the path of a map file");
                    None
                }
            };
        }
        if entries.0.is_empty() {
            self.error(path, "must map at least one entry, or name a file");
        }
        let mut map: Vec<(K, Vec<String>)> = Vec::new();
        let mut first_key: HashMap<K, String> = HashMap::new();
        for (written, value) in entries.0 {
            let entry = key_path(path, &written);
            let listed = match value {
                MapEntrySpec::Pools(listed) => listed,
                MapEntrySpec::File(_) => {
                    self.error(entry, "expected a list of pool names");
                    continue;
                }
            };
            let pools = self.step_pools(&entry, listed, owner);
            match K::parse_key(&written) {
                Err(message) => self.error(entry, message),
                Ok(key) => {
                    if let Some(first) = first_key.get(&key) {
                        self.error(&entry, format!("{key} is already mapped as {first}"));
                        continue;
                    }
                    first_key.insert(key, entry);
                    map.push((key, pools));
                }
            }
        }
        Some(map)
    }

    /// A map file named by `{ cidr = { file = "..." } }` or the `asn` form.
    fn map_file<K: MapKey>(
        &mut self,
        path: &str,
        text: &str,
        owner: &Owner<'_>,
    ) -> Option<Vec<(K, Vec<String>)>> {
        let file = self.file_path(path, text);
        if text.trim().is_empty() {
            return None;
        }
        let content = match std::fs::read_to_string(&file) {
            Ok(content) => content,
            Err(error) => {
                self.error(path, format!("cannot read {}: {error}", file.display()));
                return None;
            }
        };
        let (lines, file_errors) = parse_map_file::<K>(&file, &content);
        if self.reported_map_files.insert(file.clone()) {
            self.errors.extend(file_errors);
        }
        let mut map = Vec::with_capacity(lines.len());
        for line in lines {
            let mut good = true;
            for id in &line.pools {
                if let Some(message) = Self::foreign_pool(owner, id) {
                    good = false;
                    self.errors.push(ConfigError {
                        file: file.clone(),
                        line: Some(line.line),
                        path: None,
                        message: format!("{message} (used by {path})"),
                    });
                }
            }
            if good {
                map.push((line.key, line.pools));
            }
        }
        Some(map)
    }

    /// Two entries for one (name, type), or a CNAME beside other types at
    /// one name: either would leave the answer undefined.
    fn conflicts(&mut self, steered: &[SteeredName]) {
        let mut first: HashMap<(&Name, SteeredType), &str> = HashMap::new();
        let mut by_name: HashMap<&Name, Vec<(SteeredType, &str)>> = HashMap::new();
        for entry in steered {
            let key = &entry.key_path;
            if let Some(earlier) = first.get(&(&entry.name, entry.record_type)) {
                self.error(
                    key,
                    format!(
                        "{} {} is already steered by {earlier}",
                        entry.name, entry.record_type
                    ),
                );
                continue;
            }
            first.insert((&entry.name, entry.record_type), key);
            let others = by_name.entry(&entry.name).or_default();
            let clash = others.iter().find(|(other, _)| {
                (*other == SteeredType::Cname) != (entry.record_type == SteeredType::Cname)
            });
            if let Some((other, earlier)) = clash {
                self.error(
                    key,
                    format!(
                        "{} is already steered for {other} by {earlier}; a CNAME cannot share \
                         its name with other types",
                        entry.name
                    ),
                );
                continue;
            }
            others.push((entry.record_type, key));
        }
    }
}

/// An absolute domain name as written in the config.
/// `IP` or `IP:PORT` (`[IPv6]:PORT`).
fn parse_probe_target(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok((address, None));
    }
    match text.parse::<std::net::SocketAddr>() {
        Ok(socket) if socket.port() != 0 => Ok((socket.ip(), Some(socket.port()))),
        _ => Err(format!(
            "invalid probe target \"{text}\": expected IP or IP:PORT, e.g. \"10.0.0.5:8080\" \
             or \"[2001:db8::5]:8080\""
        )),
    }
}

fn absolute_name(text: &str) -> Result<Name, String> {
    if text.is_empty() || text.contains(|character: char| character.is_whitespace()) {
        return Err(format!("invalid name \"{text}\""));
    }
    let name =
        Name::from_ascii(text).map_err(|error| format!("invalid name \"{text}\": {error}"))?;
    if !name.is_fqdn() {
        return Err(format!(
            "name \"{text}\" must be absolute, with a final dot: \"{text}.\""
        ));
    }
    Ok(name)
}

/// `prefix.key`, quoting a key that is not a bare TOML key, as the TOML
/// reader's errors do (`geo."country:AS"`).
fn key_path(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if bare {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}.{key:?}")
    }
}
