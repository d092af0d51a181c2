//! The file format of `steer.toml`, as serde reads it.
//!
//! These types mirror the file one to one and reject unknown keys, so a typo
//! is an error instead of a silently ignored setting. Values that need
//! checking (addresses, durations, ranges) are kept as written here, as
//! strings or wide integers, so that [`super::load`] can check all of them
//! and report every error with its key path instead of stopping at the first
//! one serde meets.
//!
//! The steering sections (`[geoip]`, `[ecs]`, `[sites]`, `[pools]`,
//! `[[steer]]`) live in [`steering`]; all of them are optional, so a file
//! written before steering existed reads as it always did.

pub mod steering;

use std::collections::BTreeMap;

use serde::Deserialize;

use steering::{
    EcsSpec, GeoIpSpec, HealthSpec, LatencySpec, PeersSpec, PoolSpec, ProbeSpec, ResolverSpec,
    SiteSpec, SteerSpec, SteeringSpec,
};

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `[server]`: where DNS is served and where the zones are.
    pub server: ServerSpec,
    /// `[admin]`: the HTTP admin API. Optional; defaults to loopback.
    #[serde(default)]
    pub admin: Option<AdminSpec>,
    /// `[geoip]`: where client locations come from.
    #[serde(default)]
    pub geoip: Option<GeoIpSpec>,
    /// `[ecs]`: how much of an EDNS Client Subnet is used.
    #[serde(default)]
    pub ecs: Option<EcsSpec>,
    /// `[sites.ID]`: places where endpoints run.
    #[serde(default)]
    pub sites: BTreeMap<String, SiteSpec>,
    /// `[pools.ID]`: sets of addresses (or a CNAME target) in a site.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolSpec>,
    /// `[[steer]]`: names whose answer is chosen per query.
    #[serde(default)]
    pub steer: Vec<SteerSpec>,
    /// `[probes.ID]`: health checks that pools and addresses name.
    #[serde(default)]
    pub probes: BTreeMap<String, ProbeSpec>,
    /// `[health]`: how probe results are published.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// `[latency]`: measured latency for the `latency` step.
    #[serde(default)]
    pub latency: Option<LatencySpec>,
    /// `[peers]`: the other nodes, whose health views vote with ours.
    #[serde(default)]
    pub peers: Option<PeersSpec>,
    /// `[resolver]`: where alias pools' targets are resolved.
    #[serde(default)]
    pub resolver: Option<ResolverSpec>,
    /// `[rate_limit]`: response rate limiting over UDP. Off when absent.
    #[serde(default)]
    pub rate_limit: Option<super::rate_limit::RateLimitSpec>,
    /// `[query_log]`: a sampled log of queries. Off when absent.
    #[serde(default)]
    pub query_log: Option<super::query_log::QueryLogSpec>,
    /// `[dnssec]`: signing keys. Zones are unsigned when absent.
    #[serde(default)]
    pub dnssec: Option<super::dnssec::DnssecSpec>,
    /// `[secondary]`: zones transferred from primaries. None when absent.
    #[serde(default)]
    pub secondary: Option<super::secondary::SecondarySpec>,
    /// `[transfer]`: who may transfer Steer's zones. None when absent.
    #[serde(default)]
    pub transfer: Option<super::secondary::TransferSpecs>,
    /// `[update]`: who may send dynamic updates. Refused when absent.
    #[serde(default)]
    pub update: Option<super::update::UpdateSpec>,
    /// `[tsig.NAME]`: keys that sign zone transfers and NOTIFY.
    #[serde(default)]
    pub tsig: BTreeMap<String, super::secondary::TsigSpec>,
}

impl Spec {
    /// The steering sections, taken out for their own validation.
    pub fn take_steering(&mut self) -> SteeringSpec {
        SteeringSpec {
            geoip: self.geoip.take(),
            ecs: self.ecs.take(),
            sites: std::mem::take(&mut self.sites),
            pools: std::mem::take(&mut self.pools),
            steer: std::mem::take(&mut self.steer),
            probes: std::mem::take(&mut self.probes),
            health: self.health.take(),
            latency: self.latency.take(),
            peers: self.peers.take(),
            resolver: self.resolver.take(),
        }
    }
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Socket addresses; each one is served over both UDP and TCP.
    pub listen: Vec<String>,
    /// Directory of `*.zone` files, relative to the config file's directory.
    #[serde(default)]
    pub zones: Option<String>,
    /// UDP worker threads per listen address.
    #[serde(default)]
    pub workers: Option<i64>,
    /// How long an idle TCP connection is kept open, e.g. `"10s"`.
    #[serde(default)]
    pub tcp_idle_timeout: Option<String>,
    /// Most TCP connections open at once, over all listen addresses.
    #[serde(default)]
    pub tcp_max_connections: Option<i64>,
    /// Most TCP connections open at once from one client.
    #[serde(default)]
    pub tcp_max_connections_per_client: Option<i64>,
    /// This node's name server identifier (RFC 5001), sent to clients
    /// that ask for it.
    #[serde(default)]
    pub nsid: Option<String>,
    /// The version answered to CHAOS TXT `version.bind` and
    /// `version.server` (none: REFUSED).
    #[serde(default)]
    pub version: Option<String>,
    /// A file holding the DNS Cookie secret shared by the nodes (and the
    /// previous one during a rotation), relative to the config file.
    #[serde(default)]
    pub cookie_secret_file: Option<String>,
    /// Sources (addresses or prefixes) whose queries come through a proxy
    /// that prefixes each with a PROXY protocol version 2 header.
    #[serde(default)]
    pub proxy_protocol_from: Vec<String>,
    /// Socket addresses that serve DNS over TLS (RFC 7858), e.g.
    /// `"192.0.2.1:853"`.
    #[serde(default)]
    pub tls_listen: Vec<String>,
    /// PEM certificate chain for `tls_listen`, relative to the config file.
    #[serde(default)]
    pub tls_certificate: Option<String>,
    /// PEM private key of `tls_certificate`, relative to the config file.
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Where zones' IXFR histories are kept, relative to the config file.
    #[serde(default)]
    pub journal_directory: Option<String>,
    /// Where Steer's own state goes by default, relative to the config
    /// file.
    #[serde(default)]
    pub state_directory: Option<String>,
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// The admin API's socket address.
    #[serde(default)]
    pub listen: Option<String>,
    /// Must be `true` for a `listen` address that is not loopback.
    #[serde(default)]
    pub allow_remote: bool,
    /// A file holding the bearer token every admin request must carry,
    /// relative to the config file. No token file: no token is asked for.
    #[serde(default)]
    pub token_file: Option<String>,
    /// PEM certificate chain the admin API serves HTTPS with, relative to
    /// the config file. Without it the API speaks plain HTTP.
    #[serde(default)]
    pub tls_certificate: Option<String>,
    /// PEM private key of `tls_certificate`, relative to the config file.
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Where drains and overrides are kept across restarts, relative to the
    /// config file (default: the config file's name with `.state.json`).
    #[serde(default)]
    pub state_file: Option<String>,
}
