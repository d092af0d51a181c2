//! Steering configuration, validated: GeoIP databases, ECS limits, sites,
//! pools and steered names with their policy chains.
//!
//! These are the types the rest of Steer reads; `spec` holds what serde
//! reads from the file. Every name here is checked against the others when
//! the config is loaded (a policy names only pools of its steered name, a
//! pool names an existing site, ...), so the compiler can trust them.
//!
//! Validation lives in the child modules: `region` reads `geo` and
//! `geofence` keys, `maps` reads prefixes, ASNs and map files, and
//! `validate` checks everything against everything else.

mod maps;
mod probes;
mod region;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;

pub use maps::parse_asn;
pub(crate) use probes::humanize;
pub(crate) use validate::validate;

/// The continent codes GeoIP databases use.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Everything about steering in one config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SteeringConfig {
    /// `[geoip]`, when configured.
    pub geoip: Option<GeoConfig>,
    /// `[ecs]`.
    pub ecs: EcsConfig,
    /// `[sites.ID]`, sorted by id.
    pub sites: Vec<Site>,
    /// `[pools.ID]`, sorted by id.
    pub pools: Vec<Pool>,
    /// `[[steer]]`, in file order.
    pub steered: Vec<SteeredName>,
    /// `[probes.ID]`, sorted by id.
    pub probes: Vec<Probe>,
    /// `[health]`.
    pub health: HealthConfig,
    /// `[latency]`.
    pub latency: LatencyConfig,
    /// `[peers]`, when configured.
    pub peers: Option<Peers>,
    /// `[resolver]`.
    pub resolver: ResolverConfig,
}

/// `[resolver]`: how alias pools' targets are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Recursive resolvers, asked in order until one answers; empty when
    /// no pool is an alias.
    pub servers: Vec<SocketAddr>,
    /// How long one server is waited for.
    pub timeout: Duration,
    /// A target is asked again no sooner than this after an answer, so a
    /// TTL of 0 does not turn into a query a second.
    pub min_refresh: Duration,
    /// A target is asked again at least this often, however long its TTL.
    pub max_refresh: Duration,
    /// The last addresses are answered this long after the last answer
    /// while every resolver fails; then the pool has none.
    pub max_stale: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3_600),
            max_stale: Duration::from_secs(86_400),
        }
    }
}

impl SteeringConfig {
    /// The alias pools' targets, each once, in pool order.
    pub fn alias_targets(&self) -> Vec<Name> {
        let mut targets: Vec<Name> = Vec::new();
        for pool in &self.pools {
            if let PoolMembers::Alias(target) = &pool.members
                && !targets.contains(target)
            {
                targets.push(target.clone());
            }
        }
        targets
    }
}

/// `[latency]`: the latency model and its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyConfig {
    /// The latency matrix file, resolved against the config's directory.
    pub matrix: Option<PathBuf>,
    /// Weight of a new sample in the exponentially weighted moving average.
    pub weight: f64,
    /// A (client network, site) not measured for this long is not used.
    pub max_age: Duration,
    /// Most client networks (/24, /48) tracked; the least recently
    /// updated are dropped first.
    pub max_prefixes: usize,
    /// RTTs above this (milliseconds) are rejected as absurd.
    pub max_rtt_ms: f64,
    /// How often the model is compiled into the answers, when it changed.
    pub compile_interval: Duration,
    /// How often this node measures its RTT to each site's `latency_target`.
    pub active_interval: Duration,
    /// Where the model is written (at shutdown and every `save_interval`)
    /// and read back at start; resolved against the config's directory.
    pub state_file: PathBuf,
    /// How often the model is written to `state_file`, when it changed.
    pub save_interval: Duration,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self {
            matrix: None,
            weight: 0.3,
            max_age: Duration::from_secs(3_600),
            max_prefixes: 1_000_000,
            max_rtt_ms: 10_000.0,
            compile_interval: Duration::from_secs(10),
            active_interval: Duration::from_secs(30),
            // Config files name it after themselves (`steer.latency`).
            state_file: PathBuf::from("steer.latency"),
            save_interval: Duration::from_secs(300),
        }
    }
}

/// `[health]`: how probe results become answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// State changes are collected for this long after the first one and
    /// published together, so that a site-wide failure moves every name in
    /// one step. Part of the failover time (interval × fall + debounce).
    pub debounce: Duration,
    /// This node's name: in the health view it publishes, and in its
    /// probes' `User-Agent`, so that endpoint logs tell vantage points
    /// apart. Defaults to the host name.
    pub node: String,
    /// With `[peers]`: when a target counts as down.
    pub quorum: Quorum,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(200),
            node: crate::peers::host_name(),
            quorum: Quorum::Majority,
        }
    }
}

/// `[peers]`: the other nodes of the fleet, where they publish their
/// health views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    /// A read-only listener for the peers (view and journal only), when
    /// configured; fixed at start.
    pub listen: Option<SocketAddr>,
    /// TLS for `listen`, when configured.
    pub tls: Option<std::sync::Arc<crate::config::tls::TlsIdentity>>,
    /// `ca_file` as read (PEM): the only CA trusted for https peers.
    pub ca: Option<Vec<u8>>,
    /// Drains and overrides made on any node apply on every node (the
    /// latest setting of each pool or address wins).
    pub share_admin: bool,
    /// Admin API base URLs, without a trailing slash.
    pub urls: Vec<String>,
    /// Sent as `Authorization: Bearer` to every peer.
    pub token: Option<crate::admin::auth::BearerToken>,
    /// Time between two fetches of each peer's view.
    pub interval: Duration,
    /// A peer whose view has not been fetched for this long does not vote.
    pub stale_after: Duration,
}

impl Peers {
    /// How long one fetch from a peer may take: the interval, so that
    /// rounds never overlap, but at most 5 s, so that a peer that accepts
    /// and never answers holds a start or a reload (which wait for the
    /// first round) no longer than that.
    pub fn fetch_timeout(&self) -> Duration {
        self.interval.min(Duration::from_secs(5))
    }
}

/// How many vantage points must see a target down for answers to leave it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of the vantage points that vote (this node and every
    /// peer with a fresh view that has a verdict on the target).
    #[default]
    Majority,
    /// At least this many vantage points.
    AtLeast(u32),
}

/// `[probes.ID]`: how an endpoint is checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Probe {
    /// The id (the table key).
    pub id: String,
    /// What is checked.
    pub kind: ProbeKind,
    /// Port probed when the endpoint has no `probe_target` with a port
    /// (default: 80 for http, 443 for https; required for tcp).
    pub port: u16,
    /// Time between probes of one target.
    pub interval: Duration,
    /// Each wait is `interval` plus or minus a random amount up to this, so
    /// that probes of many targets spread out (default: a tenth of interval).
    pub jitter: Duration,
    /// A probe not finished after this long failed.
    pub timeout: Duration,
    /// Consecutive good results that bring a down target up.
    pub rise: u32,
    /// Consecutive failed results that take an up target down.
    pub fall: u32,
}

impl Probe {
    /// `http`, `https`, `tcp`, `dns` or `dns-tcp`, as the file spells it.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Http(http) if http.tls => "https",
            ProbeKind::Http(_) => "http",
            ProbeKind::Dns(dns) if dns.tcp => "dns-tcp",
            ProbeKind::Dns(_) => "dns",
        }
    }
}

/// The kind of a probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP or HTTPS request gets an expected answer.
    Http(HttpProbe),
    /// A DNS query gets an expected answer.
    Dns(DnsProbe),
}

/// A `dns` or `dns-tcp` probe: the target is a DNS server (a resolver, or
/// an authoritative server of a zone Steer steers to).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsProbe {
    /// Over TCP only (`dns-tcp`); `dns` asks over UDP and again over TCP
    /// when the answer is truncated.
    pub tcp: bool,
    /// The name asked for, fully qualified.
    pub query: hickory_proto::rr::Name,
    /// The type asked for.
    pub query_type: hickory_proto::rr::RecordType,
    /// The response code that counts as up.
    pub expect_rcode: u16,
    /// A record the answer section must hold, as zone-file text,
    /// lower-cased and without a trailing dot.
    pub expect_answer: Option<String>,
    /// The RD bit of the query.
    pub recursion_desired: bool,
}

/// An `http` or `https` probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpProbe {
    /// `https` (TLS) rather than `http`.
    pub tls: bool,
    /// Request method, upper case (default `GET`).
    pub method: String,
    /// Path and query, starting with `/` (default `/`).
    pub path: String,
    /// Host header, and for https the TLS server name the certificate is
    /// checked against (default: the target address).
    pub host: Option<String>,
    /// Extra request headers, in file order.
    pub headers: Vec<(String, String)>,
    /// Status codes that count as up (default 200–399).
    pub expect_status: Vec<RangeInclusive<u16>>,
    /// The body must contain this text (the first 64 KiB are read).
    pub body_contains: Option<String>,
    /// Check the server's certificate (https; default true).
    pub verify_certificate: bool,
}

impl DnsProbe {
    /// Record data as `expect_answer` compares it: lower case, single
    /// spaces, no trailing dot.
    pub fn normalize(text: &str) -> String {
        let words: Vec<&str> = text.split_whitespace().collect();
        words.join(" ").trim_end_matches('.').to_ascii_lowercase()
    }
}

/// Where an endpoint is probed, and with which probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeTarget {
    /// The probe, as configured.
    pub probe: Probe,
    /// The address and port probed.
    pub address: SocketAddr,
}

/// `[geoip]`: where client locations come from.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoConfig {
    /// City or Country databases, or any mmdb with location fields
    /// (resolved against the config file's directory), in config order;
    /// never empty. Each address family is located by the first of them
    /// that holds networks of that family, so that split IPv4 and IPv6
    /// files (ip-location-db's) can be used together.
    pub databases: Vec<PathBuf>,
    /// An ASN database, when the ASN is not in the location databases.
    pub asn_database: Option<PathBuf>,
    /// Where each field sits in a record.
    pub fields: GeoFields,
}

/// Field paths inside an mmdb record, as lists of map keys and array
/// indexes (`["subdivisions", "0", "iso_code"]`). `None`: not available.
/// The defaults are MaxMind's GeoIP2/GeoLite2 schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeoFields {
    /// ISO 3166-1 alpha-2 country code. Default `country.iso_code`.
    pub country: Option<Vec<String>>,
    /// Two-letter continent code (AF AN AS EU NA OC SA). Default
    /// `continent.code`; when absent, derived from the country.
    pub continent: Option<Vec<String>>,
    /// ISO 3166-2 subdivision code without the country (`CA` for
    /// California). Default `subdivisions.0.iso_code`.
    pub subdivision: Option<Vec<String>>,
    /// Default `location.latitude`.
    pub latitude: Option<Vec<String>>,
    /// Default `location.longitude`.
    pub longitude: Option<Vec<String>>,
    /// Default `autonomous_system_number` (read from `asn_database` when set).
    pub asn: Option<Vec<String>>,
}

/// `[ecs]`: how much of an EDNS Client Subnet address Steer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcsConfig {
    /// Longest IPv4 source prefix used (default 24); longer ones are truncated.
    pub max_source_v4: u8,
    /// Longest IPv6 source prefix used (default 56).
    pub max_source_v6: u8,
}

impl Default for EcsConfig {
    fn default() -> Self {
        Self {
            max_source_v4: 24,
            max_source_v6: 56,
        }
    }
}

/// `[sites.ID]`: a place where endpoints run.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The id (the table key).
    pub id: String,
    /// Latitude and longitude in degrees, for `nearest`.
    pub coordinates: Option<(f64, f64)>,
    /// ISO country code of the site.
    pub country: Option<String>,
    /// Continent code of the site.
    pub continent: Option<String>,
    /// Where this node connects to measure its own RTT to the site.
    pub latency_target: Option<SocketAddr>,
}

/// `[pools.ID]`: a site's set of addresses, or one CNAME target.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// The id (the table key).
    pub id: String,
    /// Id of the site the pool belongs to.
    pub site: String,
    /// Weight for the `weighted` and `sticky` steps (default 1; 0 means
    /// "only when nothing else is left").
    pub weight: u32,
    /// What the pool answers with.
    pub members: PoolMembers,
    /// Id of the probe that checks its endpoints, if any.
    pub probe: Option<String>,
    /// Fraction of its endpoints that must be up for the pool to count as
    /// up in `healthy` (overrides the step's `min_healthy`).
    pub min_healthy: Option<f64>,
}

/// A pool's answers.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolMembers {
    /// Addresses, IPv4 and/or IPv6; a steered A name uses the IPv4 ones and
    /// an AAAA name the IPv6 ones.
    Addresses(Vec<Endpoint>),
    /// One CNAME target (absolute).
    Cname(Name),
    /// The addresses of a name resolved through `[resolver]` (absolute,
    /// lower case): Route 53's alias records and PowerDNS' ALIAS, so that
    /// a zone apex can follow a load balancer's or CDN's changing
    /// addresses where a CNAME may not stand.
    Alias(Name),
}

/// One address of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address answered.
    pub address: IpAddr,
    /// Weight among the pool's addresses (default 1).
    pub weight: u32,
    /// This endpoint's own probe id, instead of the pool's.
    pub probe: Option<String>,
    /// Probe this address (and port, when given) instead of `address`.
    pub probe_target: Option<(IpAddr, Option<u16>)>,
}

/// The record type a name is steered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SteeredType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// A CNAME to the chosen pool's target.
    Cname,
}

/// `[[steer]]`: a name whose answer is chosen per query.
#[derive(Clone, Debug, PartialEq)]
pub struct SteeredName {
    /// Owner name (absolute), inside a loaded zone.
    pub name: Name,
    /// The steered type.
    pub record_type: SteeredType,
    /// TTL of the answers.
    pub ttl: u32,
    /// Candidate pools, in order.
    pub pools: Vec<String>,
    /// The policy chain, applied in order.
    pub policy: Vec<Step>,
    /// What to answer when health leaves no pool.
    pub when_all_down: WhenAllDown,
    /// Where it was written, for messages: `steer[2]`.
    pub key_path: String,
}

/// A place a client can be in, as `geo` and `geofence` keys name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// A continent code: AF AN AS EU NA OC SA (written bare, or `continent:XX`).
    Continent(String),
    /// An ISO country code (written bare, or `country:XX` where the code is
    /// also a continent's, such as NA for Namibia).
    Country(String),
    /// An ISO 3166-2 subdivision, `US-CA`: country and subdivision code.
    Subdivision(String, String),
}

/// One step of a policy chain (see the README's table).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Keep a listed pool only when the client is in one of its regions;
    /// pools not listed are unrestricted.
    Geofence(Vec<(String, Vec<Region>)>),
    /// The most specific matching region (subdivision, country, continent,
    /// then `default`) gives the ordered pools; no match and no default
    /// leaves no pool (NODATA), as Route 53 geolocation does.
    Geo {
        /// Region → pools, in order.
        map: Vec<(Region, Vec<String>)>,
        /// When no region matches.
        default: Option<Vec<String>>,
    },
    /// Longest matching prefix → pools; no match leaves the list as it is.
    Cidr(Vec<(IpNet, Vec<String>)>),
    /// The client's ASN → pools; no match leaves the list as it is.
    Asn(Vec<(u32, Vec<String>)>),
    /// Order by great-circle distance from the client to each pool's site,
    /// plus a per-pool bias in kilometres.
    Nearest {
        /// Pool → km added to its distance (negative pulls it closer).
        bias_km: Vec<(String, f64)>,
    },
    /// Order by measured RTT from the client's network to each pool's
    /// site; the previous winner keeps its place unless a challenger is
    /// faster by both margins.
    Latency {
        /// Percent of the winner's RTT a challenger must beat it by.
        margin_percent: f64,
        /// Milliseconds a challenger must beat the winner by.
        margin_ms: f64,
    },
    /// Drop down endpoints, and pools with fewer than `min_healthy` of their
    /// endpoints up (a fraction; 0 keeps a pool while any endpoint is up).
    Healthy {
        /// Fraction of endpoints that must be up, 0.0..=1.0.
        min_healthy: f64,
    },
    /// Keep only the first pool.
    Priority,
    /// Keep one pool, chosen at random by pool weight (weight 0 only when
    /// nothing else is left); order its addresses by weighted random choice.
    Weighted,
    /// Keep one pool, chosen by a consistent hash of the client's prefix
    /// (/24 or /48), weighted by pool weight.
    Sticky,
    /// Answer with at most N addresses, taken from the remaining pools in
    /// order (without it, the answer is every address of the first pool).
    First(usize),
}

/// An IP prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    /// The network address (bits beyond `prefix_len` are zero).
    pub address: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

/// What to answer when the `healthy` step leaves nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Answer as if every endpoint were up (Route 53's rule).
    FailOpen,
    /// Answer NODATA.
    NoData,
    /// Answer SERVFAIL.
    ServFail,
    /// Answer with this pool, whatever its health.
    Pool(String),
}

impl SteeringConfig {
    /// True when the file configures no steering at all.
    pub fn is_empty(&self) -> bool {
        self.geoip.is_none()
            && self.ecs == EcsConfig::default()
            && self.sites.is_empty()
            && self.pools.is_empty()
            && self.steered.is_empty()
            && self.probes.is_empty()
            // The state file always has a place (beside the config).
            && self.latency
                == LatencyConfig {
                    state_file: self.latency.state_file.clone(),
                    ..LatencyConfig::default()
                }
    }

    /// Whether any steered name has a `latency` step (the server then
    /// recompiles on new measurements).
    pub fn uses_latency(&self) -> bool {
        self.steered.iter().any(|steered| {
            steered
                .policy
                .iter()
                .any(|step| matches!(step, Step::Latency { .. }))
        })
    }

    /// The site with this id.
    pub fn site(&self, id: &str) -> Option<&Site> {
        // Sorted by id when validated.
        self.sites
            .binary_search_by(|site| site.id.as_str().cmp(id))
            .ok()
            .and_then(|index| self.sites.get(index))
    }

    /// The pool with this id.
    pub fn pool(&self, id: &str) -> Option<&Pool> {
        self.pools
            .binary_search_by(|pool| pool.id.as_str().cmp(id))
            .ok()
            .and_then(|index| self.pools.get(index))
    }

    /// The probe with this id.
    pub fn probe(&self, id: &str) -> Option<&Probe> {
        self.probes
            .binary_search_by(|probe| probe.id.as_str().cmp(id))
            .ok()
            .and_then(|index| self.probes.get(index))
    }

    /// How `endpoint` of `pool` is probed: its own probe or the pool's, at
    /// its `probe_target` or its own address, on the target's port or the
    /// probe's. `None`: not probed (it counts as up unless an operator
    /// says otherwise).
    pub fn probe_target(&self, pool: &Pool, endpoint: &Endpoint) -> Option<ProbeTarget> {
        let id = endpoint.probe.as_ref().or(pool.probe.as_ref())?;
        let probe = self.probe(id)?;
        let (address, port) = endpoint.probe_target.unwrap_or((endpoint.address, None));
        Some(ProbeTarget {
            probe: probe.clone(),
            address: SocketAddr::new(address, port.unwrap_or(probe.port)),
        })
    }
}

impl GeoConfig {
    /// The config key of `databases[index]`, for messages: `geoip.database`
    /// when there is one file, `geoip.database[1]` in a list of several.
    pub fn database_key(&self, index: usize) -> String {
        if self.databases.len() == 1 {
            "geoip.database".to_owned()
        } else {
            format!("geoip.database[{index}]")
        }
    }
}

impl Default for GeoFields {
    /// MaxMind's GeoIP2/GeoLite2 City and ASN schema.
    fn default() -> Self {
        let path = |text: &str| Some(text.split('.').map(str::to_string).collect());
        Self {
            country: path("country.iso_code"),
            continent: path("continent.code"),
            subdivision: path("subdivisions.0.iso_code"),
            latitude: path("location.latitude"),
            longitude: path("location.longitude"),
            asn: path("autonomous_system_number"),
        }
    }
}

impl Pool {
    /// Whether the pool can answer a name steered for `record_type`: an
    /// IPv4 address for A, an IPv6 address for AAAA, a target for CNAME.
    pub fn serves(&self, record_type: SteeredType) -> bool {
        match (&self.members, record_type) {
            (PoolMembers::Addresses(endpoints), SteeredType::A) => {
                endpoints.iter().any(|endpoint| endpoint.address.is_ipv4())
            }
            (PoolMembers::Addresses(endpoints), SteeredType::Aaaa) => {
                endpoints.iter().any(|endpoint| endpoint.address.is_ipv6())
            }
            (PoolMembers::Cname(_), SteeredType::Cname) => true,
            // Whatever the target has now; a family it lacks is NODATA.
            (PoolMembers::Alias(_), SteeredType::A | SteeredType::Aaaa) => true,
            (PoolMembers::Addresses(_) | PoolMembers::Alias(_), SteeredType::Cname)
            | (PoolMembers::Cname(_), SteeredType::A | SteeredType::Aaaa) => false,
        }
    }
}

impl SteeredType {
    /// The record type answered.
    pub fn record_type(self) -> hickory_proto::rr::RecordType {
        use hickory_proto::rr::RecordType;
        match self {
            Self::A => RecordType::A,
            Self::Aaaa => RecordType::AAAA,
            Self::Cname => RecordType::CNAME,
        }
    }

    /// The type's mnemonic, as in the file and in zone files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
        }
    }
}

impl fmt::Display for SteeredType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}
