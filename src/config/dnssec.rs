//! `[dnssec]`: where the signing keys are and how long signatures last.
//!
//! Steer signs zones online, as it compiles them: the keys are the key
//! pairs BIND's `dnssec-keygen` writes, one directory for every zone, so
//! an operator who already runs BIND's tools (or Knot's `keymgr`, which
//! can write the same files) needs no new key format. A zone with no key
//! in the directory is served unsigned.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::parse_duration;

/// How long a signature is valid when `signature_validity` is not set:
/// two weeks, BIND's `dnssec-policy` default.
pub const DEFAULT_SIGNATURE_VALIDITY: Duration = Duration::from_secs(14 * 86_400);
/// Shortest validity: signatures are made again when half of it is gone,
/// and a resolver's clock may be an hour out.
const MIN_SIGNATURE_VALIDITY: Duration = Duration::from_secs(3 * 3_600);
/// Longest validity: a year, as a stolen signature stays good that long.
const MAX_SIGNATURE_VALIDITY: Duration = Duration::from_secs(366 * 86_400);

/// `[dnssec]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecSpec {
    /// The key directory, relative to the config file.
    pub keys: String,
    /// How long each signature is valid, e.g. `"14d"`.
    #[serde(default)]
    pub signature_validity: Option<String>,
    /// Deny existence with NSEC3 (RFC 5155) instead of NSEC.
    #[serde(default)]
    pub nsec3: bool,
    /// Where the signatures are kept across restarts, relative to the
    /// config file.
    #[serde(default)]
    pub state_file: Option<String>,
}

/// `[dnssec]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnssecConfig {
    /// The key directory, resolved against the config file's directory.
    pub keys: PathBuf,
    /// How long each signature is valid from the moment it is made.
    pub signature_validity: Duration,
    /// NSEC3 (with RFC 9276's parameters: no salt, no extra iterations,
    /// no opt-out) instead of NSEC.
    pub nsec3: bool,
    /// Where the served signatures are kept from a stop to the next start.
    pub state_file: PathBuf,
}

/// Checks `[dnssec]`, pushing one error per bad key.
pub(super) fn validate(
    file: &Path,
    (base, state): (&Path, &Path),
    spec: DnssecSpec,
    errors: &mut Vec<ConfigError>,
) -> DnssecConfig {
    if spec.keys.trim().is_empty() {
        errors.push(ConfigError::at(
            file,
            "dnssec.keys",
            "must name a directory",
        ));
    }
    let signature_validity = match spec.signature_validity.as_deref().map(parse_duration) {
        None => DEFAULT_SIGNATURE_VALIDITY,
        Some(Ok(validity))
            if (MIN_SIGNATURE_VALIDITY..=MAX_SIGNATURE_VALIDITY).contains(&validity) =>
        {
            validity
        }
        Some(Ok(_)) => {
            errors.push(ConfigError::at(
                file,
                "dnssec.signature_validity",
                "must be between 3h and 366d",
            ));
            DEFAULT_SIGNATURE_VALIDITY
        }
        Some(Err(message)) => {
            errors.push(ConfigError::at(file, "dnssec.signature_validity", message));
            DEFAULT_SIGNATURE_VALIDITY
        }
    };
    let state_file = super::path_or_default(
        (file, base),
        ("dnssec.state_file", "file"),
        spec.state_file.as_deref(),
        super::state_file_named(file, state, "signatures"),
        errors,
    );
    DnssecConfig {
        keys: base.join(&spec.keys),
        signature_validity,
        nsec3: spec.nsec3,
        state_file,
    }
}
