//! Steer: an authoritative DNS server for static zones and steered names.
//!
//! Two planes (see `DESIGN.md` §1 in the shared design notes):
//!
//! ```text
//!  CONTROL PLANE (tokio; one writer)                 DATA PLANE (one UDP worker per core, TCP on tokio)
//!  steer.toml ─► config ─┐                           packet bytes
//!  zones/*.zone ─► zone ─┴─► table::compile ─┐         └─► dns::wire::parse_query (no allocation)
//!  SIGHUP / POST /reload ─► control ──────────┴─store─► RoutingTable (arc-swap) ─► dns::respond
//!                                                       └─► pre-encoded bytes, counters (atomics)
//! ```
//!
//! The control plane parses, validates and compiles everything into an
//! immutable [`table::RoutingTable`]; [`control::Control`] publishes it with
//! `arc-swap`. The data plane only loads the current table, looks up
//! pre-encoded answers and copies bytes: it never locks, never does I/O and
//! never allocates in the steady state.

pub mod admin;
pub mod config;
pub mod control;
pub mod dns;
pub mod explain;
pub mod geo;
pub mod health;
pub mod latency;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod query_log;
pub mod server;
pub mod systemd;
pub mod table;
pub mod zone;

/// An error and all its causes, `outer: inner: innermost`: the outer
/// message of an HTTP or I/O error alone rarely says what went wrong.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Locks `mutex` even if a thread panicked while holding it: every mutex
/// of the control plane guards plain bookkeeping (counters, snapshots,
/// state machines) that stays usable, and a server that stops reloading or
/// reporting because one request panicked would be worse.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `time` as Unix seconds with a fraction, for `/status`.
pub fn unix_seconds(time: std::time::SystemTime) -> f64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
