//! The file format of `steer.toml`, as serde reads it.
//!
//! These types mirror the file one to one and reject unknown keys, so a typo
//! is an error instead of a silently ignored setting. Values that need
//! checking (addresses, durations, ranges) are kept as written here, as
//! strings or wide integers, so that [`super::load`] can check all of them
//! and report every error with its key path instead of stopping at the first
//! one serde meets.

use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `[server]`: where DNS is served and where the zones are.
    pub server: ServerSpec,
    /// `[admin]`: the HTTP admin API. Optional; defaults to loopback.
    #[serde(default)]
    pub admin: Option<AdminSpec>,
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
}
