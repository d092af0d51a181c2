//! `[rate_limit]`: response rate limiting (RRL) for UDP, validated.
//!
//! An authoritative server on the internet answers anyone, so forged
//! queries can turn it into a reflector aimed at the forged address. RRL
//! (as in BIND, Knot and NSD) bounds how many identical responses one
//! client network gets per second; past that, responses are dropped, and
//! every `slip`-th one goes out truncated so that a real resolver behind
//! the network retries over TCP, which cannot be forged. The section is off
//! unless present: limits that suit one deployment starve another.

use std::path::Path;
use std::time::Duration;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::steering::IpNet;
use serde::{Deserialize, Serialize, Serializer};

/// Most responses per second a limit may allow; with the longest window
/// the debt still fits the 24 bits a bucket keeps for it.
pub const MAX_RATE: u32 = 100_000;
/// Longest `window` (seconds).
pub const MAX_WINDOW_SECONDS: u32 = 60;
/// Largest `slip` (BIND's bound too).
pub const MAX_SLIP: u32 = 10;
/// Buckets by default: 2 MiB of table, touched only where used, ample for
/// the client networks an attack spreads over.
pub const DEFAULT_TABLE_SIZE: usize = 1 << 18;
/// Fewest and most buckets.
const TABLE_SIZE_RANGE: std::ops::RangeInclusive<i64> = 1024..=(1 << 26);

/// `[rate_limit]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Answers, NODATA and referrals per second per client network and
    /// response.
    pub responses_per_second: i64,
    /// NXDOMAIN and error responses per second per client network (default:
    /// `responses_per_second`).
    #[serde(default)]
    pub errors_per_second: Option<i64>,
    /// Every how many limited responses one goes out truncated (0: none).
    #[serde(default)]
    pub slip: Option<i64>,
    /// How far a network can go into debt, in seconds of its rate.
    #[serde(default)]
    pub window: Option<String>,
    /// Client IPv4 addresses are grouped into networks of this length.
    #[serde(default)]
    pub ipv4_prefix: Option<i64>,
    /// Client IPv6 addresses are grouped into networks of this length.
    #[serde(default)]
    pub ipv6_prefix: Option<i64>,
    /// Client networks that are never limited.
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Buckets in the table (rounded up to a power of two).
    #[serde(default)]
    pub table_size: Option<i64>,
    /// Count what would be limited, but send every response.
    #[serde(default)]
    pub dry_run: bool,
}

/// `[rate_limit]`, validated. `/status` shows it as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimitConfig {
    /// Answers, NODATA and referrals per second, per client network and
    /// response.
    pub responses_per_second: u32,
    /// NXDOMAIN and errors per second, per client network (NXDOMAIN per
    /// zone, errors whatever the name).
    pub errors_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 drops them all.
    pub slip: u32,
    /// A network over its rate stays limited until it has been quiet for
    /// up to this many seconds.
    pub window_seconds: u32,
    /// Length of the IPv4 client networks.
    pub ipv4_prefix: u8,
    /// Length of the IPv6 client networks.
    pub ipv6_prefix: u8,
    /// Never limited.
    #[serde(serialize_with = "as_text")]
    pub exempt: Vec<IpNet>,
    /// Buckets (a power of two).
    pub table_size: usize,
    /// Count, never limit.
    pub dry_run: bool,
}

/// Networks as operators write them, `192.0.2.0/24`.
fn as_text<S: Serializer>(networks: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(networks.iter().map(ToString::to_string))
}

/// Checks `[rate_limit]`, pushing one error per bad key.
pub(super) fn validate(
    file: &Path,
    spec: RateLimitSpec,
    errors: &mut Vec<ConfigError>,
) -> RateLimitConfig {
    let mut integer = |key: &str,
                       value: Option<i64>,
                       range: std::ops::RangeInclusive<i64>,
                       default: i64,
                       hint: &str| {
        let key = format!("rate_limit.{key}");
        super::in_range(file, &key, value, range, hint, errors).unwrap_or(default)
    };
    let rate_range = 1..=i64::from(MAX_RATE);
    let responses = integer(
        "responses_per_second",
        Some(spec.responses_per_second),
        rate_range.clone(),
        1,
        "",
    );
    let errors_rate = integer(
        "errors_per_second",
        spec.errors_per_second,
        rate_range,
        responses,
        "",
    );
    let slip = integer(
        "slip",
        spec.slip,
        0..=i64::from(MAX_SLIP),
        2,
        " (0 drops every limited response)",
    );
    let ipv4_prefix = integer("ipv4_prefix", spec.ipv4_prefix, 8..=32, 24, "");
    let ipv6_prefix = integer("ipv6_prefix", spec.ipv6_prefix, 16..=128, 56, "");
    let table_size = integer(
        "table_size",
        spec.table_size,
        TABLE_SIZE_RANGE,
        DEFAULT_TABLE_SIZE as i64,
        "",
    );
    let window_seconds = match spec.window.as_deref().map(parse_duration) {
        None => 15,
        Some(Ok(window))
            if window.subsec_nanos() == 0
                && (Duration::from_secs(1)
                    ..=Duration::from_secs(u64::from(MAX_WINDOW_SECONDS)))
                    .contains(&window) =>
        {
            window.as_secs() as u32
        }
        Some(Ok(_)) => {
            errors.push(ConfigError::at(
                file,
                "rate_limit.window",
                format!("must be whole seconds from 1s to {MAX_WINDOW_SECONDS}s"),
            ));
            15
        }
        Some(Err(message)) => {
            errors.push(ConfigError::at(file, "rate_limit.window", message));
            15
        }
    };
    let mut exempt = Vec::new();
    for (index, text) in spec.exempt.iter().enumerate() {
        match IpNet::parse(text.trim()) {
            Ok(network) => exempt.push(network),
            Err(message) => {
                errors.push(ConfigError::at(
                    file,
                    format!("rate_limit.exempt[{index}]"),
                    message,
                ));
            }
        }
    }
    // The ranges above keep every value inside its type.
    RateLimitConfig {
        responses_per_second: responses as u32,
        errors_per_second: errors_rate as u32,
        slip: slip as u32,
        window_seconds,
        ipv4_prefix: ipv4_prefix as u8,
        ipv6_prefix: ipv6_prefix as u8,
        exempt,
        table_size: (table_size as usize).next_power_of_two(),
        dry_run: spec.dry_run,
    }
}
