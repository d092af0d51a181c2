//! Catalog zones (RFC 9432): the list of secondary zones, kept on the primary.
//!
//! A `[[secondary.catalog]]` is transferred and kept like any secondary
//! zone, but never served. Each build reads the kept copy and adds its
//! members (the PTR records one label below `zones.<catalog>`) to the
//! secondary zones, with the catalog's primaries and key, so a zone added
//! to the catalog on the primary is transferred and served by every node
//! without touching `steer.toml`, and a zone removed from it stops being
//! served. Only schema version 2 (`version.<catalog> TXT "2"`) is read; the
//! optional properties (`coo`, `group`) are ignored.
//!
//! Control plane only, run by every build before the zones are loaded.

use hickory_proto::rr::{Name, RData};

use crate::config::secondary::{SecondaryConfig, SecondaryZone, ZoneKind};
use crate::zone;

/// Adds the members of every catalog kept in `config`'s directory to its
/// zones. Members that are already secondary zones, or zones of the zones
/// directory (`elsewhere`), are left out with a warning, as are the
/// members of a catalog not transferred yet, not loadable, or of another
/// schema version.
pub fn expand(config: &mut SecondaryConfig, elsewhere: &[Name]) -> Vec<String> {
    let mut warnings = Vec::new();
    let catalogs: Vec<SecondaryZone> = config
        .zones
        .iter()
        .filter(|zone| zone.kind == ZoneKind::Catalog)
        .cloned()
        .collect();
    for catalog in catalogs {
        let file = config.file_of(&catalog.name);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                warnings.push(format!(
                    "catalog zone {}: cannot read {}: {error}; its members are not served",
                    catalog.name,
                    file.display()
                ));
                continue;
            }
        };
        let members = match zone::parse_zone(&text, &file, &catalog.name) {
            Ok(parsed) => members(&catalog.name, &parsed),
            Err(errors) => Err(format!(
                "does not load ({})",
                errors.first().map(ToString::to_string).unwrap_or_default()
            )),
        };
        let members = match members {
            Ok(members) => members,
            Err(reason) => {
                warnings.push(format!(
                    "catalog zone {}: {reason}; its members are not served",
                    catalog.name
                ));
                continue;
            }
        };
        for member in members {
            if let Some(existing) = config.zones.iter().find(|zone| zone.name == member) {
                let what = match &existing.kind {
                    ZoneKind::Member(other) => format!("a member of catalog {other}"),
                    _ => "a secondary zone of steer.toml".to_owned(),
                };
                warnings.push(format!(
                    "catalog zone {}: member {member} is already {what}; left out",
                    catalog.name
                ));
                continue;
            }
            if elsewhere.contains(&member) {
                warnings.push(format!(
                    "catalog zone {}: member {member} is a zone of the zones directory; left out",
                    catalog.name
                ));
                continue;
            }
            config.zones.push(SecondaryZone {
                name: member,
                primaries: catalog.primaries.clone(),
                key: catalog.key.clone(),
                kind: ZoneKind::Member(catalog.name.clone()),
            });
        }
    }
    warnings
}

/// The member zones of catalog `apex` (lower case, in zone order), or why
/// they cannot be read.
fn members(apex: &Name, catalog: &zone::Zone) -> Result<Vec<Name>, String> {
    let version = Name::from_ascii("version")
        .and_then(|label| label.append_domain(apex))
        .map_err(|error| error.to_string())?;
    let zones = Name::from_ascii("zones")
        .and_then(|label| label.append_domain(apex))
        .map_err(|error| error.to_string())?;
    let versions: Vec<Vec<u8>> = catalog
        .records
        .iter()
        .filter(|record| record.record.name == version)
        .filter_map(|record| match &record.record.data {
            RData::TXT(txt) => Some(txt.txt_data.concat()),
            _ => None,
        })
        .collect();
    if versions != [b"2".to_vec()] {
        return Err(
            "has no single version TXT \"2\" (RFC 9432 schema version 2 is the one read)"
                .to_owned(),
        );
    }
    let mut members: Vec<Name> = Vec::new();
    for record in &catalog.records {
        let owner = &record.record.name;
        // A member is a PTR exactly one label below `zones`; properties
        // (`coo`, `group`) sit one label further down.
        if owner.num_labels() != zones.num_labels() + 1 || !zones.zone_of(owner) {
            continue;
        }
        if let RData::PTR(target) = &record.record.data {
            let mut member = target.0.to_lowercase();
            member.set_fqdn(true);
            if !members.contains(&member) {
                members.push(member);
            }
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(text: &str) -> zone::Zone {
        let apex = Name::from_ascii("catalog.invalid.").expect("apex");
        zone::parse_zone(text, std::path::Path::new("catalog.invalid.zone"), &apex)
            .expect("catalog loads")
    }

    const HEAD: &str = "$ORIGIN catalog.invalid.\n$TTL 0\n\
        @ SOA invalid. invalid. 1 3600 600 86400 0\n@ NS invalid.\n";

    #[test]
    fn members_are_the_ptr_records_below_zones() {
        let zone = catalog(&format!(
            "{HEAD}version TXT \"2\"\n\
             a1.zones PTR Example.ORG.\n\
             group.a1.zones TXT \"blue\"\n\
             b2.zones PTR example.net.\n\
             c3.zones PTR example.org.\n\
             other PTR ignored.example.\n"
        ));
        let apex = Name::from_ascii("catalog.invalid.").expect("apex");
        let found = members(&apex, &zone).expect("version 2");
        let names: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["example.org.", "example.net."]);
    }

    #[test]
    fn other_versions_are_not_read() {
        let apex = Name::from_ascii("catalog.invalid.").expect("apex");
        for version in [
            "",
            "version TXT \"1\"\n",
            "version TXT \"2\"\nversion TXT \"3\"\n",
        ] {
            let zone = catalog(&format!("{HEAD}{version}a1.zones PTR example.org.\n"));
            assert!(members(&apex, &zone).is_err(), "{version:?}");
        }
    }
}
