//! The steering sections of `steer.toml` as serde reads them: `[geoip]`,
//! `[ecs]`, `[sites.ID]`, `[pools.ID]` and `[[steer]]`.
//!
//! Like the rest of [`super`], values are kept as written and checked later
//! by `config::steering`, so that every value error is reported at once.
//! Several keys accept two shapes (an address or `{ address, weight }`, a
//! step name or a one-key step table, a `when_all_down` word or `{ pool }`);
//! those have hand-written visitors that accept exactly the documented
//! shapes and reject unknown keys, so a typo inside a policy step is as much
//! an error as a typo anywhere else.
//!
//! Tables whose keys are data rather than settings (geo regions, prefixes,
//! ASNs, pools) are read as [`Entries`], which keeps the order the operator
//! wrote them in: the TOML reader hands tables over sorted by key, and a
//! policy's entries, like its errors, read better in file order.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The steering sections of the file, gathered from [`super::Spec`] for
/// validation.
#[derive(Clone, Debug, Default)]
pub struct SteeringSpec {
    /// `[geoip]`.
    pub geoip: Option<GeoIpSpec>,
    /// `[ecs]`.
    pub ecs: Option<EcsSpec>,
    /// `[sites.ID]`, by id.
    pub sites: BTreeMap<String, SiteSpec>,
    /// `[pools.ID]`, by id.
    pub pools: BTreeMap<String, PoolSpec>,
    /// `[[steer]]`, in file order.
    pub steer: Vec<SteerSpec>,
    /// `[probes.ID]`, by id.
    pub probes: BTreeMap<String, ProbeSpec>,
    /// `[health]`.
    pub health: Option<HealthSpec>,
    /// `[latency]`.
    pub latency: Option<LatencySpec>,
    /// `[peers]`.
    pub peers: Option<PeersSpec>,
    /// `[resolver]`.
    pub resolver: Option<ResolverSpec>,
}

/// `[resolver]`: the recursive resolvers alias pools' targets are asked of.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverSpec {
    /// `IP` (port 53) or `IP:PORT`, asked in order.
    #[serde(default)]
    pub servers: Vec<String>,
    /// How long one server is waited for.
    #[serde(default)]
    pub timeout: Option<String>,
    /// A target is asked again no sooner than this, whatever its TTL.
    #[serde(default)]
    pub min_refresh: Option<String>,
    /// A target is asked again at least this often, whatever its TTL.
    #[serde(default)]
    pub max_refresh: Option<String>,
    /// How long the last addresses keep being answered while every
    /// resolver fails.
    #[serde(default)]
    pub max_stale: Option<String>,
}

/// `[latency]`: the latency model and its inputs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// A CSV latency matrix, relative to the config file.
    #[serde(default)]
    pub matrix: Option<String>,
    /// Weight of a new sample in the moving average.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Measurements older than this are not used.
    #[serde(default)]
    pub max_age: Option<String>,
    /// Most client networks tracked.
    #[serde(default)]
    pub max_prefixes: Option<i64>,
    /// Larger RTTs (milliseconds) are rejected as absurd.
    #[serde(default)]
    pub max_rtt_ms: Option<f64>,
    /// How often the model is compiled into the answers (when it changed).
    #[serde(default)]
    pub compile_interval: Option<String>,
    /// How often this node measures its own RTT to each site's
    /// `latency_target`.
    #[serde(default)]
    pub active_interval: Option<String>,
    /// Where the model is kept across restarts, relative to the config file.
    #[serde(default)]
    pub state_file: Option<String>,
    /// How often the model is written to its state file (when it changed).
    #[serde(default)]
    pub save_interval: Option<String>,
}

/// `[health]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// How long state changes are collected before they are published.
    #[serde(default)]
    pub debounce: Option<String>,
    /// This node's name in its health view and in its probes' `User-Agent`.
    #[serde(default)]
    pub node: Option<String>,
    /// `"majority"` or how many vantage points must see a target down.
    #[serde(default)]
    pub quorum: Option<QuorumSpec>,
}

/// `[peers]`: the other nodes of the fleet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersSpec {
    /// Where this node serves its view and journal to the peers alone
    /// (read-only), e.g. `10.0.0.1:8054`.
    #[serde(default)]
    pub listen: Option<String>,
    /// PEM certificate chain for `listen` (HTTPS), relative to the config.
    #[serde(default)]
    pub tls_certificate: Option<String>,
    /// PEM private key of `tls_certificate`, relative to the config.
    #[serde(default)]
    pub tls_key: Option<String>,
    /// PEM CA certificates: the only ones trusted for the peers' https URLs.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Whether drains and overrides made on any node apply on every node.
    #[serde(default)]
    pub share_admin: bool,
    /// Admin API base URLs of the other nodes, e.g. `http://10.0.0.2:8053`.
    pub urls: Vec<String>,
    /// A file holding the bearer token sent to the peers (their admin
    /// token), relative to the config file.
    #[serde(default)]
    pub token_file: Option<String>,
    /// How often each peer's view is fetched.
    #[serde(default)]
    pub interval: Option<String>,
    /// A view not refreshed for this long no longer votes.
    #[serde(default)]
    pub stale_after: Option<String>,
}

/// `health.quorum` as written: a word or a count.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum QuorumSpec {
    /// `"majority"`.
    Word(String),
    /// A number of vantage points.
    Count(i64),
}

/// `[probes.ID]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// `http`, `https`, `tcp`, `dns` or `dns-tcp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Port probed (default 80 for http, 443 for https, 53 for dns; tcp
    /// needs one).
    #[serde(default)]
    pub port: Option<i64>,
    /// Time between probes.
    #[serde(default)]
    pub interval: Option<String>,
    /// Largest random change to one interval.
    #[serde(default)]
    pub jitter: Option<String>,
    /// A probe not finished after this long failed.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Good results in a row that bring a target up.
    #[serde(default)]
    pub rise: Option<i64>,
    /// Failed results in a row that take a target down.
    #[serde(default)]
    pub fall: Option<i64>,
    /// HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// HTTP path.
    #[serde(default)]
    pub path: Option<String>,
    /// HTTP Host header and TLS server name.
    #[serde(default)]
    pub host: Option<String>,
    /// Extra HTTP headers.
    #[serde(default)]
    pub headers: Option<Entries<String>>,
    /// Status codes that count as up: numbers, or ranges `"200-299"`.
    #[serde(default)]
    pub expect_status: Option<Vec<StatusSpec>>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Whether the server's certificate is checked (https).
    #[serde(default)]
    pub verify_certificate: Option<bool>,
    /// DNS: the name asked for.
    #[serde(default)]
    pub query: Option<String>,
    /// DNS: the type asked for (default `A`).
    #[serde(default)]
    pub query_type: Option<String>,
    /// DNS: the response code that counts as up (default `NOERROR`).
    #[serde(default)]
    pub expect_rcode: Option<String>,
    /// DNS: a record the answer must hold, as its data is written in a
    /// zone file (`192.0.2.1`, `target.example.`).
    #[serde(default)]
    pub expect_answer: Option<String>,
    /// DNS: whether the query asks for recursion (default false: the
    /// target is an authoritative server).
    #[serde(default)]
    pub recursion_desired: Option<bool>,
}

/// One entry of `expect_status`: `200` or `"200-299"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One code.
    Code(i64),
    /// A range, `"FROM-TO"`.
    Range(String),
}

/// `[geoip]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpSpec {
    /// The location database (`.mmdb`), or a list of them, relative to the
    /// config file.
    pub database: DatabaseSpec,
    /// A separate ASN database, relative to the config file.
    #[serde(default)]
    pub asn_database: Option<String>,
    /// `[geoip.fields]`: where each field sits in a database record.
    #[serde(default)]
    pub fields: Option<GeoFieldsSpec>,
}

/// `geoip.database`: one file, or a list of files (the split IPv4 and IPv6
/// files of ip-location-db).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseSpec {
    /// `database = "city.mmdb"`.
    One(String),
    /// `database = ["city-ipv4.mmdb", "city-ipv6.mmdb"]`.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for DatabaseSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DatabaseVisitor;
        impl<'de> Visitor<'de> for DatabaseVisitor {
            type Value = DatabaseSpec;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a file name, or a list of file names")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DatabaseSpec, E> {
                Ok(DatabaseSpec::One(text.to_string()))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<DatabaseSpec, S::Error> {
                let mut files = Vec::new();
                while let Some(file) = seq.next_element::<String>()? {
                    files.push(file);
                }
                Ok(DatabaseSpec::List(files))
            }
        }
        deserializer.deserialize_any(DatabaseVisitor)
    }
}

/// `[geoip.fields]`: dotted paths; `""` means the field is not available.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoFieldsSpec {
    /// Country code path.
    #[serde(default)]
    pub country: Option<String>,
    /// Continent code path.
    #[serde(default)]
    pub continent: Option<String>,
    /// Subdivision code path.
    #[serde(default)]
    pub subdivision: Option<String>,
    /// Latitude path.
    #[serde(default)]
    pub latitude: Option<String>,
    /// Longitude path.
    #[serde(default)]
    pub longitude: Option<String>,
    /// ASN path.
    #[serde(default)]
    pub asn: Option<String>,
}

/// `[ecs]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsSpec {
    /// Longest IPv4 source prefix used.
    #[serde(default)]
    pub max_source_v4: Option<i64>,
    /// Longest IPv6 source prefix used.
    #[serde(default)]
    pub max_source_v6: Option<i64>,
}

/// `[sites.ID]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// `[latitude, longitude]` in degrees.
    #[serde(default)]
    pub location: Option<Vec<f64>>,
    /// Two-letter country code.
    #[serde(default)]
    pub country: Option<String>,
    /// Two-letter continent code.
    #[serde(default)]
    pub continent: Option<String>,
    /// `IP:PORT` this node connects to, to measure its RTT to the site.
    #[serde(default)]
    pub latency_target: Option<String>,
}

/// `[pools.ID]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Id of the site the pool runs in.
    pub site: String,
    /// Weight for `weighted` and `sticky`.
    #[serde(default)]
    pub weight: Option<i64>,
    /// The pool's addresses (or `cname`, not both).
    #[serde(default)]
    pub addresses: Option<Vec<AddressSpec>>,
    /// The pool's CNAME target (or `addresses`, not both).
    #[serde(default)]
    pub cname: Option<String>,
    /// A name whose addresses the pool answers with, resolved through
    /// `[resolver]` (instead of `addresses` or `cname`).
    #[serde(default)]
    pub alias: Option<String>,
    /// The probe that checks the pool's endpoints.
    #[serde(default)]
    pub probe: Option<String>,
    /// Fraction of the endpoints that must be up for the pool to count as up.
    #[serde(default)]
    pub min_healthy: Option<f64>,
}

/// One entry of `addresses`: `"192.0.2.10"` or
/// `{ address = "192.0.2.10", weight = 2 }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSpec {
    /// An address alone, weight 1.
    Bare(String),
    /// An address with settings.
    Table(WeightedAddressSpec),
}

/// The table form of an address.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedAddressSpec {
    /// The IP address.
    pub address: String,
    /// Weight among the pool's addresses.
    #[serde(default)]
    pub weight: Option<i64>,
    /// This address's own probe, instead of the pool's.
    #[serde(default)]
    pub probe: Option<String>,
    /// Where to probe instead of the address: `IP` or `IP:PORT`.
    #[serde(default)]
    pub probe_target: Option<String>,
}

impl<'de> Deserialize<'de> for AddressSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = AddressSpec;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(
                    "an IP address, or a table { address = \"...\", weight = N, probe = \"ID\", \
                     probe_target = \"IP[:PORT]\" }",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AddressSpec, E> {
                Ok(AddressSpec::Bare(text.to_string()))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<AddressSpec, M::Error> {
                WeightedAddressSpec::deserialize(MapAccessDeserializer::new(map))
                    .map(AddressSpec::Table)
            }
        }
        deserializer.deserialize_any(AddressVisitor)
    }
}

/// `[[steer]]`: one steered name.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteerSpec {
    /// The owner name, absolute.
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// TTL of the answers, in seconds.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// Candidate pools, in order.
    pub pools: Vec<String>,
    /// The policy chain.
    #[serde(default)]
    pub policy: Vec<StepSpec>,
    /// What to answer when health leaves no pool.
    #[serde(default)]
    pub when_all_down: Option<WhenAllDownSpec>,
}

/// The step names, as the file spells them, for messages.
pub const STEP_NAMES: [&str; 11] = [
    "healthy", "geofence", "geo", "cidr", "asn", "nearest", "latency", "priority", "weighted",
    "sticky", "first",
];

/// One policy step: a bare name (`"priority"`) or a table with exactly one
/// key, the step's name (`{ first = 2 }`).
#[derive(Clone, Debug, PartialEq)]
pub enum StepSpec {
    /// `"healthy"` or `{ healthy = { min_healthy = 0.5 } }`.
    Healthy(HealthySpec),
    /// `{ geofence = { POOL = [REGION, ...] } }`.
    Geofence(Entries<Vec<String>>),
    /// `{ geo = { REGION = [POOL, ...], default = [POOL, ...] } }`.
    Geo(Entries<Vec<String>>),
    /// `{ cidr = { PREFIX = [POOL, ...] } }` or `{ cidr = { file = "..." } }`.
    Cidr(Entries<MapEntrySpec>),
    /// `{ asn = { ASN = [POOL, ...] } }` or `{ asn = { file = "..." } }`.
    Asn(Entries<MapEntrySpec>),
    /// `"nearest"` or `{ nearest = { bias = { POOL = KM } } }`.
    Nearest(NearestSpec),
    /// `"latency"` or `{ latency = { margin_percent = 10, margin_ms = 5 } }`.
    Latency(LatencyStepSpec),
    /// `"priority"`.
    Priority,
    /// `"weighted"`.
    Weighted,
    /// `"sticky"`.
    Sticky,
    /// `{ first = N }`.
    First(i64),
}

/// Settings of `healthy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthySpec {
    /// Fraction of a pool's endpoints that must be up.
    #[serde(default)]
    pub min_healthy: Option<f64>,
}

/// Settings of `latency`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyStepSpec {
    /// A challenger must be this many percent faster to take over.
    #[serde(default)]
    pub margin_percent: Option<f64>,
    /// A challenger must be this many milliseconds faster to take over.
    #[serde(default)]
    pub margin_ms: Option<f64>,
}

/// Settings of `nearest`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearestSpec {
    /// Pool → kilometres added to its distance.
    #[serde(default)]
    pub bias: Option<Entries<f64>>,
}

/// A value of a `cidr` or `asn` table: a list of pools, or for the key
/// `file` the path of a map file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapEntrySpec {
    /// Pools, in order.
    Pools(Vec<String>),
    /// A path (only meaningful under the key `file`).
    File(String),
}

impl<'de> Deserialize<'de> for MapEntrySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = MapEntrySpec;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a list of pool names (or, for `file`, a path)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<MapEntrySpec, E> {
                Ok(MapEntrySpec::File(text.to_string()))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<MapEntrySpec, S::Error> {
                let mut pools = Vec::new();
                while let Some(pool) = seq.next_element::<String>()? {
                    pools.push(pool);
                }
                Ok(MapEntrySpec::Pools(pools))
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// `when_all_down`: `"fail_open"`, `"nodata"`, `"servfail"` or
/// `{ pool = "ID" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhenAllDownSpec {
    /// `"fail_open"`.
    FailOpen,
    /// `"nodata"`.
    NoData,
    /// `"servfail"`.
    ServFail,
    /// `{ pool = "ID" }`.
    Pool(String),
}

/// The table form of `when_all_down`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenAllDownPoolSpec {
    pool: String,
}

impl<'de> Deserialize<'de> for WhenAllDownSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WhenVisitor;
        impl<'de> Visitor<'de> for WhenVisitor {
            type Value = WhenAllDownSpec;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("\"fail_open\", \"nodata\", \"servfail\" or { pool = \"ID\" }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WhenAllDownSpec, E> {
                match text {
                    "fail_open" => Ok(WhenAllDownSpec::FailOpen),
                    "nodata" => Ok(WhenAllDownSpec::NoData),
                    "servfail" => Ok(WhenAllDownSpec::ServFail),
                    _ => Err(E::custom(format!(
                        "unknown when_all_down \"{text}\", expected fail_open, nodata, \
                         servfail or {{ pool = \"ID\" }}"
                    ))),
                }
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<WhenAllDownSpec, M::Error> {
                WhenAllDownPoolSpec::deserialize(MapAccessDeserializer::new(map))
                    .map(|spec| WhenAllDownSpec::Pool(spec.pool))
            }
        }
        deserializer.deserialize_any(WhenVisitor)
    }
}

impl<'de> Deserialize<'de> for StepSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StepVisitor)
    }
}

struct StepVisitor;

impl<'de> Visitor<'de> for StepVisitor {
    type Value = StepSpec;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a step name such as \"priority\", or a table such as { first = 2 }")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<StepSpec, E> {
        match name {
            "healthy" => Ok(StepSpec::Healthy(HealthySpec::default())),
            "nearest" => Ok(StepSpec::Nearest(NearestSpec::default())),
            "latency" => Ok(StepSpec::Latency(LatencyStepSpec::default())),
            "priority" => Ok(StepSpec::Priority),
            "weighted" => Ok(StepSpec::Weighted),
            "sticky" => Ok(StepSpec::Sticky),
            "geofence" | "geo" | "cidr" | "asn" => Err(E::custom(format!(
                "{name} needs its table: {{ {name} = {{ ... }} }}"
            ))),
            "first" => Err(E::custom("first needs a count: { first = N }")),
            _ => Err(E::custom(unknown_step(name))),
        }
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<StepSpec, M::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "a policy step table needs one key, the step's name, e.g. { first = 2 }",
            ));
        };
        let step = match name.as_str() {
            "healthy" => StepSpec::Healthy(map.next_value()?),
            "geofence" => StepSpec::Geofence(map.next_value()?),
            "geo" => StepSpec::Geo(map.next_value()?),
            "cidr" => StepSpec::Cidr(map.next_value()?),
            "asn" => StepSpec::Asn(map.next_value()?),
            "nearest" => StepSpec::Nearest(map.next_value()?),
            "latency" => StepSpec::Latency(map.next_value()?),
            "first" => StepSpec::First(map.next_value()?),
            "priority" | "weighted" | "sticky" => {
                return Err(de::Error::custom(format!(
                    "{name} takes no settings: write \"{name}\""
                )));
            }
            _ => {
                // The table arrives sorted by key, so the step's name may
                // come after the stray key: look at the others before
                // deciding which of the two mistakes this is.
                map.next_value::<IgnoredAny>()?;
                while let Some(other) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    if STEP_NAMES.contains(&other.as_str()) {
                        return Err(de::Error::custom(extra_key(&name, &other)));
                    }
                }
                return Err(de::Error::custom(unknown_step(&name)));
            }
        };
        if let Some(other) = map.next_key::<String>()? {
            return Err(de::Error::custom(extra_key(&other, &name)));
        }
        Ok(step)
    }
}

fn unknown_step(name: &str) -> String {
    format!(
        "unknown policy step \"{name}\", expected one of {}",
        STEP_NAMES.join(", ")
    )
}

fn extra_key(extra: &str, step: &str) -> String {
    format!(
        "unknown key {extra} in a {step} step: a policy step table has exactly one key, \
         the step's name"
    )
}

/// A table whose keys are data, in the order the operator wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entries<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a table")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entries<V>, M::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<V>()?;
                    entries.push((key.span().start, key.into_inner(), value));
                }
                entries.sort_by_key(|(start, _, _)| *start);
                Ok(Entries(
                    entries
                        .into_iter()
                        .map(|(_, key, value)| (key, value))
                        .collect(),
                ))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
