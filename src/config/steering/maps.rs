//! Keys of the `cidr` and `asn` steps (IP prefixes, AS numbers) and the map
//! files that can hold them instead of the config.
//!
//! A map file has one entry per line, `PREFIX pool [pool...]` or
//! `ASN pool [pool...]`, separated by spaces or tabs; `#` starts a comment
//! and blank lines are skipped. These files are usually generated from an
//! IPAM or a peering database and can be long, so every line's error is
//! collected with its `file:line`. Whether the pools exist, and belong to the
//! steered name that uses the file, is checked by the caller: one file may
//! serve several names.
//!
//! A prefix with bits set beyond its length is refused rather than
//! truncated: `10.1.2.3/8` usually means the length is wrong, not the
//! address, and the message shows the prefix it would have been.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::IpNet;
use crate::config::ConfigError;

/// A key of a `cidr` or `asn` table or map file.
pub(super) trait MapKey: Copy + Eq + Hash + fmt::Display {
    /// What one map-file line looks like, for messages.
    const LINE_FORMAT: &'static str;
    /// Reads one key as written; the error quotes it.
    fn parse_key(text: &str) -> Result<Self, String>;
}

impl MapKey for IpNet {
    const LINE_FORMAT: &'static str = "PREFIX pool [pool...]";
    fn parse_key(text: &str) -> Result<Self, String> {
        IpNet::parse(text)
    }
}

impl MapKey for u32 {
    const LINE_FORMAT: &'static str = "ASN pool [pool...]";
    fn parse_key(text: &str) -> Result<Self, String> {
        parse_asn(text)
    }
}

/// One entry of a map file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MapLine<K> {
    /// 1-based line number.
    pub line: u32,
    /// The prefix or ASN.
    pub key: K,
    /// Pool ids, in order, not yet checked against the pools.
    pub pools: Vec<String>,
}

/// Reads the entries of map file `file` (already read into `text`),
/// returning the good lines and an error for each bad one.
pub(super) fn parse_map_file<K: MapKey>(
    file: &Path,
    text: &str,
) -> (Vec<MapLine<K>>, Vec<ConfigError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut first_line: HashMap<K, u32> = HashMap::new();
    // Files saved by some Windows tools start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line = u32::try_from(index).map_or(u32::MAX, |index| index.saturating_add(1));
        let error = |message: String| ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            path: None,
            message,
        };
        let content = raw.split_once('#').map_or(raw, |(before, _)| before);
        let mut words = content.split_whitespace();
        let Some(key_text) = words.next() else {
            continue;
        };
        let key = match K::parse_key(key_text) {
            Ok(key) => key,
            Err(message) => {
                errors.push(error(message));
                continue;
            }
        };
        let mut pools: Vec<String> = Vec::new();
        for pool in words {
            if pools.iter().any(|listed| listed == pool) {
                errors.push(error(format!("pool \"{pool}\" is listed twice")));
            } else {
                pools.push(pool.to_string());
            }
        }
        if pools.is_empty() {
            errors.push(error(format!(
                "{key} maps to no pool: expected {}",
                K::LINE_FORMAT
            )));
            continue;
        }
        if let Some(first) = first_line.get(&key) {
            errors.push(error(format!("{key} is already mapped on line {first}")));
            continue;
        }
        first_line.insert(key, line);
        entries.push(MapLine { line, key, pools });
    }
    (entries, errors)
}

/// Reads an AS number, `3320` or `AS3320` (any case).
pub fn parse_asn(text: &str) -> Result<u32, String> {
    let digits = match text.get(..2) {
        Some(prefix) if prefix.eq_ignore_ascii_case("AS") => &text[2..],
        _ => text,
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "invalid ASN \"{text}\": expected a number such as 3320 or AS3320"
        ));
    }
    digits.parse::<u32>().map_err(|_| {
        format!(
            "invalid ASN \"{text}\": AS numbers are at most {}",
            u32::MAX
        )
    })
}

impl IpNet {
    /// Reads a prefix, `192.0.2.0/24` or `2001:db8::/32`; an address
    /// without a length is a single host (/32 or /128).
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "invalid prefix \"{text}\": expected an address and a length, \
                 e.g. 192.0.2.0/24 or 2001:db8::/32"
            )
        };
        let (address_text, length_text) = match text.split_once('/') {
            Some((address, length)) => (address, Some(length)),
            None => (text, None),
        };
        let address: IpAddr = address_text.parse().map_err(|_| invalid())?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match length_text {
            None => most,
            Some(length) => {
                // Digits only: `u8::from_str` would also take "+24".
                if length.is_empty() || !length.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(invalid());
                }
                match length.parse::<u8>() {
                    Ok(length) if length <= most => length,
                    _ => {
                        return Err(format!(
                            "invalid prefix \"{text}\": the length must be 0 to {most}"
                        ));
                    }
                }
            }
        };
        let network = mask(address, prefix_len);
        if network != address {
            return Err(format!(
                "prefix \"{text}\" has bits set beyond its length; did you mean \
                 {network}/{prefix_len}?"
            ));
        }
        Ok(Self {
            address,
            prefix_len,
        })
    }

    /// Whether `address` is inside the prefix (never across families).
    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4()
            && mask(address, self.prefix_len) == self.address
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix_len)
    }
}

/// `address` with every bit beyond `prefix_len` cleared.
fn mask(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}
