//! `[secondary]`, `[transfer]` and `[tsig.NAME]`: zone transfers in and out.
//!
//! Many operators keep their zones in a primary server they already run
//! (BIND, Knot, PowerDNS, a hidden primary fed by their tooling) and make
//! the public servers its secondaries. Each `[[secondary.zone]]` names a
//! zone, the primaries it is transferred from, and optionally the TSIG key
//! (`[tsig.NAME]`, RFC 8945) that authenticates the transfers and the
//! primaries' NOTIFY messages. Transferred zones are kept in
//! `secondary.directory` as zone files, one per zone, so a node that
//! restarts serves them before it reaches any primary.
//!
//! `[transfer]` is the other direction: which secondaries (other Steer
//! nodes, another provider's servers) may transfer Steer's zones with
//! AXFR, with which key, and whom Steer sends NOTIFY when a reload changes
//! a zone's serial. Written `[[transfer]]`, it is a list: one entry per
//! set of secondaries (a provider), each with its own addresses, key and
//! zones.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::error::ConfigError;
use crate::transfer::tsig::TsigKey;

/// Where transferred zones are kept when `secondary.directory` is not set
/// (relative to the config file).
pub const DEFAULT_DIRECTORY: &str = "secondary";

/// The DNS port, used when a primary is written without one.
const DNS_PORT: u16 = 53;

/// `[secondary]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondarySpec {
    /// The directory transferred zones are kept in, relative to the config file.
    #[serde(default)]
    pub directory: Option<String>,
    /// `[[secondary.zone]]`.
    #[serde(default)]
    pub zone: Vec<SecondaryZoneSpec>,
    /// `[[secondary.catalog]]`: catalog zones (RFC 9432) whose members
    /// are secondary zones too.
    #[serde(default)]
    pub catalog: Vec<SecondaryZoneSpec>,
}

/// One `[[secondary.zone]]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryZoneSpec {
    /// The zone's apex.
    pub name: String,
    /// Addresses of the primaries, `IP` or `IP:PORT` (`[IPv6]:PORT`).
    pub primaries: Vec<String>,
    /// The `[tsig.NAME]` key that signs transfers and NOTIFY.
    #[serde(default)]
    pub tsig_key: Option<String>,
}

/// One `[tsig.NAME]` as written; NAME is the key's name in DNS, which must
/// match the name the primary knows it by.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigSpec {
    /// `hmac-sha256` (recommended), `hmac-sha384`, `hmac-sha512` or `hmac-sha1`.
    pub algorithm: String,
    /// The shared secret in base64, as `tsig-keygen` prints it.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the base64 secret instead, relative to the config file,
    /// so that the config can be shown without the secret.
    #[serde(default)]
    pub secret_file: Option<String>,
}

/// One `[transfer]` (or `[[transfer]]` entry) as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// Addresses or prefixes that may transfer zones.
    pub allow: Vec<String>,
    /// The `[tsig.NAME]` key every transfer must be signed with.
    #[serde(default)]
    pub tsig_key: Option<String>,
    /// Secondaries sent NOTIFY when a zone's serial changes, `IP` or `IP:PORT`.
    #[serde(default)]
    pub notify: Vec<String>,
    /// The zones these secondaries get; every zone when absent.
    #[serde(default)]
    pub zones: Option<Vec<String>>,
}

/// `[transfer]`, one entry for every secondary, or `[[transfer]]`, a list
/// of them.
#[derive(Clone, Debug)]
pub enum TransferSpecs {
    /// `[transfer]`.
    One(TransferSpec),
    /// `[[transfer]]`.
    Many(Vec<TransferSpec>),
}

impl<'de> Deserialize<'de> for TransferSpecs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TransferSpecs;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a [transfer] table or [[transfer]] tables")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                TransferSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(TransferSpecs::One)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(TransferSpecs::Many)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[transfer]` or `[[transfer]]`, validated: who may transfer which
/// zones (AXFR over TCP), with which key, and whom NOTIFY goes to. A
/// transfer is answered when some entry allows its client, its zone and
/// its key (or its lack of one); anyone else is REFUSED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferConfig {
    /// The entries, in the order written.
    pub secondaries: Vec<TransferSecondaries>,
}

/// One set of secondaries: a `[transfer]`, or one `[[transfer]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferSecondaries {
    /// Its key path, `transfer` or `transfer[N]`, for messages.
    pub path: String,
    /// Who may transfer.
    pub allow: Vec<super::steering::IpNet>,
    /// When set, their transfers must be signed with it (and are answered
    /// signed), and NOTIFY to them is signed with it.
    pub key: Option<Key>,
    /// Who is told of a new serial.
    pub notify: Vec<SocketAddr>,
    /// The zones they get (lower case, absolute); `None`: every zone.
    pub zones: Option<Vec<Name>>,
}

impl TransferSecondaries {
    /// Whether these secondaries get `zone` (lower case, absolute).
    pub fn covers(&self, zone: &Name) -> bool {
        self.zones
            .as_ref()
            .is_none_or(|zones| zones.iter().any(|listed| listed == zone))
    }
}

/// `[secondary]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondaryConfig {
    /// Where transferred zones are kept, resolved against the config file.
    pub directory: PathBuf,
    /// The zones, in the order written.
    pub zones: Vec<SecondaryZone>,
}

impl SecondaryConfig {
    /// The secondary zone with apex `name`.
    pub fn zone(&self, name: &Name) -> Option<&SecondaryZone> {
        self.zones.iter().find(|zone| zone.name == *name)
    }

    /// The file a zone's transferred copy is kept in.
    pub fn file_of(&self, name: &Name) -> PathBuf {
        super::zone_file(&self.directory, name, "zone")
    }
}

/// One secondary zone, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondaryZone {
    /// The apex, absolute and lower case.
    pub name: Name,
    /// The primaries, asked in order.
    pub primaries: Vec<SocketAddr>,
    /// The key transfers and NOTIFY are signed with.
    pub key: Option<Key>,
    /// What the zone is: configured, a catalog, or a catalog's member.
    pub kind: ZoneKind,
}

/// Where a secondary zone comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// A `[[secondary.zone]]`: served.
    Configured,
    /// A `[[secondary.catalog]]`: transferred and kept, never served; its
    /// members are secondary zones.
    Catalog,
    /// A member of this catalog zone, with the catalog's primaries and key.
    Member(Name),
}

/// A named TSIG key from `[tsig.NAME]`.
#[derive(Clone)]
pub struct Key {
    /// The config name (`[tsig.NAME]`), to compare keys across reloads.
    pub id: String,
    /// The key, ready to sign and verify.
    pub key: Arc<TsigKey>,
    /// The secret as configured, for equality across reloads.
    secret: String,
    algorithm: String,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.secret == other.secret && self.algorithm == other.algorithm
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Key")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// Checks `[secondary]`, `[transfer]` and `[tsig]`, pushing one error per
/// bad key.
pub(super) fn validate(
    file: &Path,
    (base, state): (&Path, &Path),
    (spec, transfer): (Option<SecondarySpec>, Option<TransferSpecs>),
    keys: &HashMap<String, Option<Key>>,
    errors: &mut Vec<ConfigError>,
) -> (Option<SecondaryConfig>, Option<TransferConfig>) {
    let transfer = transfer.map(|transfer| validate_transfer(file, transfer, keys, errors));
    let Some(spec) = spec else {
        return (None, transfer);
    };
    let directory = super::path_or_default(
        (file, base),
        ("secondary.directory", "directory"),
        spec.directory.as_deref(),
        state.join(DEFAULT_DIRECTORY),
        errors,
    );
    let mut zones: Vec<SecondaryZone> = Vec::with_capacity(spec.zone.len());
    let mut seen: HashMap<Name, String> = HashMap::new();
    let listed = spec
        .zone
        .into_iter()
        .enumerate()
        .map(|(index, zone)| {
            (
                format!("secondary.zone[{index}]"),
                zone,
                ZoneKind::Configured,
            )
        })
        .chain(spec.catalog.into_iter().enumerate().map(|(index, zone)| {
            (
                format!("secondary.catalog[{index}]"),
                zone,
                ZoneKind::Catalog,
            )
        }));
    for (path, zone, kind) in listed {
        let name = match Name::from_ascii(zone.name.trim()) {
            Ok(mut name) if !zone.name.trim().is_empty() => {
                name.set_fqdn(true);
                name.to_lowercase()
            }
            _ => {
                errors.push(ConfigError::at(
                    file,
                    format!("{path}.name"),
                    format!("\"{}\" is not a domain name", zone.name),
                ));
                continue;
            }
        };
        if let Some(first) = seen.get(&name) {
            errors.push(ConfigError::at(
                file,
                format!("{path}.name"),
                format!("{name} is already {first}"),
            ));
            continue;
        }
        seen.insert(name.clone(), path.clone());
        if zone.primaries.is_empty() {
            errors.push(ConfigError::at(
                file,
                format!("{path}.primaries"),
                "must list at least one primary",
            ));
        }
        let mut primaries = Vec::with_capacity(zone.primaries.len());
        for (position, text) in zone.primaries.iter().enumerate() {
            match parse_primary(text) {
                Ok(address) => primaries.push(address),
                Err(message) => errors.push(ConfigError::at(
                    file,
                    format!("{path}.primaries[{position}]"),
                    message,
                )),
            }
        }
        let key = key_named(
            file,
            &format!("{path}.tsig_key"),
            zone.tsig_key,
            keys,
            errors,
        );
        zones.push(SecondaryZone {
            name,
            primaries,
            key,
            kind,
        });
    }
    let secondary = SecondaryConfig { directory, zones };
    (Some(secondary), transfer)
}

/// The key `id` names, if any; an error at `path` when there is no such key.
fn key_named(
    file: &Path,
    path: &str,
    id: Option<String>,
    keys: &HashMap<String, Option<Key>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Key> {
    let id = id?;
    match keys.get(&id) {
        Some(Some(key)) => Some(key.clone()),
        // The key's own error is already reported.
        Some(None) => None,
        None => {
            errors.push(ConfigError::at(
                file,
                path,
                format!("no [tsig.{id}] is defined"),
            ));
            None
        }
    }
}

/// Checks `[transfer]` or `[[transfer]]`.
fn validate_transfer(
    file: &Path,
    specs: TransferSpecs,
    keys: &HashMap<String, Option<Key>>,
    errors: &mut Vec<ConfigError>,
) -> TransferConfig {
    let specs = match specs {
        TransferSpecs::One(spec) => vec![("transfer".to_owned(), spec)],
        TransferSpecs::Many(specs) => {
            if specs.is_empty() {
                errors.push(ConfigError::at(
                    file,
                    "transfer",
                    "must have at least one entry (or leave it out: no transfers)",
                ));
            }
            specs
                .into_iter()
                .enumerate()
                .map(|(index, spec)| (format!("transfer[{index}]"), spec))
                .collect()
        }
    };
    let secondaries = specs
        .into_iter()
        .map(|(path, spec)| validate_secondaries(file, path, spec, keys, errors))
        .collect();
    TransferConfig { secondaries }
}

/// Checks one `[transfer]` entry, at key path `path`.
fn validate_secondaries(
    file: &Path,
    path: String,
    spec: TransferSpec,
    keys: &HashMap<String, Option<Key>>,
    errors: &mut Vec<ConfigError>,
) -> TransferSecondaries {
    let mut allow = Vec::with_capacity(spec.allow.len());
    if spec.allow.is_empty() {
        errors.push(ConfigError::at(
            file,
            format!("{path}.allow"),
            "must list the secondaries' addresses or prefixes",
        ));
    }
    for (index, text) in spec.allow.iter().enumerate() {
        match super::steering::IpNet::parse(text) {
            Ok(network) => allow.push(network),
            Err(message) => errors.push(ConfigError::at(
                file,
                format!("{path}.allow[{index}]"),
                message,
            )),
        }
    }
    let mut notify = Vec::with_capacity(spec.notify.len());
    for (index, text) in spec.notify.iter().enumerate() {
        match parse_primary(text) {
            Ok(address) => notify.push(address),
            Err(message) => errors.push(ConfigError::at(
                file,
                format!("{path}.notify[{index}]"),
                message,
            )),
        }
    }
    let zones = spec.zones.map(|zones| {
        if zones.is_empty() {
            errors.push(ConfigError::at(
                file,
                format!("{path}.zones"),
                "must list at least one zone (or leave it out: every zone)",
            ));
        }
        let mut names: Vec<Name> = Vec::with_capacity(zones.len());
        for (index, text) in zones.iter().enumerate() {
            match Name::from_ascii(text.trim()) {
                Ok(mut name) if !text.trim().is_empty() => {
                    name.set_fqdn(true);
                    let name = name.to_lowercase();
                    if names.contains(&name) {
                        errors.push(ConfigError::at(
                            file,
                            format!("{path}.zones[{index}]"),
                            format!("{name} is listed twice"),
                        ));
                    }
                    names.push(name);
                }
                _ => errors.push(ConfigError::at(
                    file,
                    format!("{path}.zones[{index}]"),
                    format!("\"{text}\" is not a domain name"),
                )),
            }
        }
        names
    });
    let key = key_named(
        file,
        &format!("{path}.tsig_key"),
        spec.tsig_key,
        keys,
        errors,
    );
    TransferSecondaries {
        path,
        allow,
        key,
        notify,
        zones,
    }
}

/// `[tsig.NAME]` → keys by NAME; `None` for a key with an error (reported).
pub(super) fn validate_keys(
    file: &Path,
    base: &Path,
    tsig: BTreeMap<String, TsigSpec>,
    errors: &mut Vec<ConfigError>,
) -> HashMap<String, Option<Key>> {
    let mut keys = HashMap::new();
    for (id, spec) in tsig {
        let path = format!("tsig.{id}");
        let secret = match (spec.secret, spec.secret_file) {
            (Some(secret), None) => Some(secret),
            (None, Some(secret_file)) => match std::fs::read_to_string(base.join(&secret_file)) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(error) => {
                    errors.push(ConfigError::at(
                        file,
                        format!("{path}.secret_file"),
                        format!("cannot read {secret_file}: {error}"),
                    ));
                    None
                }
            },
            _ => {
                errors.push(ConfigError::at(
                    file,
                    path.clone(),
                    "needs exactly one of secret and secret_file",
                ));
                None
            }
        };
        let key = secret.and_then(|secret| match TsigKey::new(&id, &spec.algorithm, &secret) {
            Ok(key) => Some(Key {
                id: id.clone(),
                key: Arc::new(key),
                secret,
                algorithm: spec.algorithm.clone(),
            }),
            Err(message) => {
                errors.push(ConfigError::at(file, path.clone(), message));
                None
            }
        });
        keys.insert(id, key);
    }
    keys
}

/// `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`.
pub(crate) fn parse_primary(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .map_err(|_| format!("\"{text}\" is not an address (IP or IP:PORT)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_default_to_port_53() {
        assert_eq!(
            parse_primary("192.0.2.1").ok(),
            Some("192.0.2.1:53".parse().expect("address"))
        );
        assert_eq!(
            parse_primary("[2001:db8::1]:5353").ok(),
            Some("[2001:db8::1]:5353".parse().expect("address"))
        );
        assert_eq!(
            parse_primary("2001:db8::1").ok(),
            Some("[2001:db8::1]:53".parse().expect("address"))
        );
        assert!(parse_primary("primary.example").is_err());
    }

    #[test]
    fn file_names_follow_the_zones_directory() {
        let config = SecondaryConfig {
            directory: PathBuf::from("secondary"),
            zones: Vec::new(),
        };
        let name = Name::from_ascii("Example.ORG.")
            .expect("name")
            .to_lowercase();
        assert_eq!(
            config.file_of(&name),
            PathBuf::from("secondary/example.org.zone")
        );
    }
}
