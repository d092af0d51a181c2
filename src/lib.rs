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
pub mod alias;
pub mod config;
pub mod control;
pub mod dns;
pub mod dnssec;
pub mod durable;
pub mod exchange;
pub mod explain;
pub mod geo;
pub mod health;
pub mod latency;
pub mod metrics;
pub mod peers;
pub mod policy;
pub mod probe;
pub mod query_log;
pub mod server;
pub mod systemd;
pub mod table;
pub mod transfer;
pub mod update;
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

/// A query ID from the system's secure random source, so that an off-path
/// attacker cannot forge the answer (health probes, SOA queries, NOTIFY).
pub(crate) fn random_query_id() -> u16 {
    let mut bytes = [0; 2];
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut bytes).is_err() {
        // Never seen on Linux; the query still goes, only guessable.
        bytes = (crate::policy::random() as u16).to_be_bytes();
    }
    u16::from_be_bytes(bytes)
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

/// `YYYY-MM-DD` of a Unix time, in UTC.
pub fn utc_date(epoch: u64) -> String {
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
