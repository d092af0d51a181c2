//! `[update]`: who may change which names of which zones with RFC 2136
//! dynamic updates (ACME DNS-01 clients such as certbot's and lego's
//! `rfc2136` plugins, cert-manager, DHCP servers), and where the applied
//! updates are kept.
//!
//! Every grant names a TSIG key: an update is accepted only signed with a
//! grant's key, from an address it allows, for names and types it lists.
//! SOA, DNSSEC records (Steer makes those itself) and the apex NS set are
//! never granted: they belong to the zone file and the signer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;

use super::ConfigError;
use super::secondary::Key;
use super::steering::IpNet;

/// Where applied updates are kept when `update.directory` is not set
/// (relative to the config file).
pub const DEFAULT_DIRECTORY: &str = "updates";

/// Types no grant may change: the SOA and NSEC3PARAM follow the zone file
/// and the signer, and the signer makes every DNSSEC record.
const NEVER_GRANTED: [RecordType; 8] = [
    RecordType::SOA,
    RecordType::DNSKEY,
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::NSEC3,
    RecordType::NSEC3PARAM,
    RecordType::CDS,
    RecordType::CDNSKEY,
];

/// `[update]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// Where applied updates are kept, relative to the config file.
    #[serde(default)]
    pub directory: Option<String>,
    /// `[[update.grant]]`; none: the kept updates are served, new ones
    /// refused.
    #[serde(default)]
    pub grant: Vec<GrantSpec>,
    /// Clients whose updates for secondary zones go to their primaries.
    #[serde(default)]
    pub forward_from: Vec<String>,
}

/// One `[[update.grant]]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The `[tsig.NAME]` key updates must be signed with.
    pub tsig_key: String,
    /// The zones it may change.
    pub zones: Vec<String>,
    /// Names it may change, each with everything below it; every name of
    /// its zones when absent.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// Types it may change; every type but those never granted when absent.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Addresses or prefixes updates may come from; any when absent.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

/// `[update]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateConfig {
    /// Where applied updates are kept, resolved against the config file.
    pub directory: PathBuf,
    /// The grants, in the order written.
    pub grants: Vec<Grant>,
    /// Clients whose updates for secondary zones go to their primaries
    /// (RFC 2136 §6), signed as the client signed them; from anyone else
    /// they are NOTAUTH. Empty: none are forwarded.
    pub forward_from: Vec<IpNet>,
}

impl UpdateConfig {
    /// Whether an update for a secondary zone from `client` is forwarded.
    pub fn forwards_from(&self, client: std::net::IpAddr) -> bool {
        self.forward_from
            .iter()
            .any(|network| network.contains(client))
    }

    /// The file the updates applied to `zone` are kept in.
    pub fn file_of(&self, zone: &Name) -> PathBuf {
        super::zone_file(&self.directory, zone, "updates")
    }
}

/// One grant, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Its key path, `update.grant[N]`, for messages.
    pub path: String,
    /// The key its updates are signed with.
    pub key: Key,
    /// The zones it may change (lower case, absolute).
    pub zones: Vec<Name>,
    /// The names it may change, each with everything below it; `None`:
    /// every name of its zones.
    pub names: Option<Vec<Name>>,
    /// The types it may change; `None`: every type but those never granted.
    pub types: Option<Vec<RecordType>>,
    /// Where its updates may come from; empty: anywhere.
    pub allow: Vec<IpNet>,
}

impl Grant {
    /// Whether this grant lets `name` (in `zone`) of `record_type` be
    /// changed: `RecordType::ANY` for a change of every type at a name,
    /// which needs every type.
    pub fn permits(&self, zone: &Name, name: &Name, record_type: RecordType) -> bool {
        if !self.zones.contains(zone) || NEVER_GRANTED.contains(&record_type) {
            return false;
        }
        if record_type == RecordType::NS && name == zone {
            return false;
        }
        let name = name.to_lowercase();
        let name_ok = self
            .names
            .as_ref()
            .is_none_or(|names| names.iter().any(|granted| granted.zone_of(&name)));
        let type_ok = match (&self.types, record_type) {
            (None, _) => true,
            (Some(_), RecordType::ANY) => false,
            (Some(types), record_type) => types.contains(&record_type),
        };
        name_ok && type_ok
    }

    /// Whether updates may come from `address`.
    pub fn allows(&self, address: std::net::IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|network| network.contains(address))
    }
}

/// Checks `[update]`; `keys` are the `[tsig]` keys (`None` for one with
/// an error of its own).
pub(super) fn validate(
    file: &Path,
    (base, state): (&Path, &Path),
    spec: UpdateSpec,
    keys: &HashMap<String, Option<Key>>,
    errors: &mut Vec<ConfigError>,
) -> UpdateConfig {
    let directory = super::path_or_default(
        (file, base),
        ("update.directory", "directory"),
        spec.directory.as_deref(),
        state.join(DEFAULT_DIRECTORY),
        errors,
    );
    let mut grants = Vec::with_capacity(spec.grant.len());
    for (index, grant) in spec.grant.into_iter().enumerate() {
        let path = format!("update.grant[{index}]");
        let mut error = |key: String, message: String| {
            errors.push(ConfigError::at(file, key, message));
        };
        let key = match keys.get(&grant.tsig_key) {
            Some(Some(key)) => Some(key.clone()),
            Some(None) => None,
            None => {
                error(
                    format!("{path}.tsig_key"),
                    format!("no [tsig.{}] is defined", grant.tsig_key),
                );
                None
            }
        };
        if grant.zones.is_empty() {
            error(
                format!("{path}.zones"),
                "must list at least one zone".to_owned(),
            );
        }
        let zones = names_at(&format!("{path}.zones"), &grant.zones, &mut error);
        let names = grant.names.map(|names| {
            let path = format!("{path}.names");
            if names.is_empty() {
                error(
                    path.clone(),
                    "must list at least one name (or leave it out: every name)".to_owned(),
                );
            }
            let parsed = names_at(&path, &names, &mut error);
            for (index, name) in parsed.iter().enumerate() {
                if !zones.iter().any(|zone| zone.zone_of(name)) {
                    error(
                        format!("{path}[{index}]"),
                        format!("{name} is in none of the grant's zones"),
                    );
                }
            }
            parsed
        });
        let types = grant.types.map(|types| {
            if types.is_empty() {
                error(
                    format!("{path}.types"),
                    "must list at least one type (or leave it out: every type)".to_owned(),
                );
            }
            let mut parsed = Vec::with_capacity(types.len());
            for (index, text) in types.iter().enumerate() {
                let key = format!("{path}.types[{index}]");
                match RecordType::from_str(&text.trim().to_ascii_uppercase()) {
                    Ok(record_type) if NEVER_GRANTED.contains(&record_type) => error(
                        key,
                        format!(
                            "{record_type} cannot be updated: it follows the zone file and the signer"
                        ),
                    ),
                    Ok(RecordType::Unknown(_)) | Err(_) => {
                        error(key, format!("\"{text}\" is not a record type"));
                    }
                    Ok(
                        record_type @ (RecordType::ANY
                        | RecordType::AXFR
                        | RecordType::IXFR
                        | RecordType::OPT
                        | RecordType::TSIG),
                    ) => error(key, format!("{record_type} is not a record type a zone holds")),
                    Ok(record_type) => parsed.push(record_type),
                }
            }
            parsed
        });
        let mut allow = Vec::new();
        for (index, text) in grant.allow.unwrap_or_default().iter().enumerate() {
            match IpNet::parse(text) {
                Ok(network) => allow.push(network),
                Err(message) => error(format!("{path}.allow[{index}]"), message),
            }
        }
        if let Some(key) = key {
            grants.push(Grant {
                path,
                key,
                zones,
                names,
                types,
                allow,
            });
        }
    }
    let mut forward_from = Vec::new();
    for (index, text) in spec.forward_from.iter().enumerate() {
        match IpNet::parse(text) {
            Ok(network) => forward_from.push(network),
            Err(message) => errors.push(ConfigError::at(
                file,
                format!("update.forward_from[{index}]"),
                message,
            )),
        }
    }
    UpdateConfig {
        directory,
        grants,
        forward_from,
    }
}

/// Domain names as written at `path`, absolute and lower case.
fn names_at(path: &str, texts: &[String], error: &mut impl FnMut(String, String)) -> Vec<Name> {
    let mut names: Vec<Name> = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        match Name::from_ascii(text.trim()) {
            Ok(mut name) if !text.trim().is_empty() => {
                name.set_fqdn(true);
                let name = name.to_lowercase();
                if names.contains(&name) {
                    error(
                        format!("{path}[{index}]"),
                        format!("{name} is listed twice"),
                    );
                }
                names.push(name);
            }
            _ => error(
                format!("{path}[{index}]"),
                format!("\"{text}\" is not a domain name"),
            ),
        }
    }
    names
}
