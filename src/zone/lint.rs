//! Warnings about zone data that loads but is probably not what the
//! operator meant: `steer check`, reloads and the start say them, and
//! serve the zones anyway (BIND's `named-checkzone` warns about the same).
//!
//! - An MX, SRV or NS target that is a CNAME in our zones: RFC 2181 §10.3
//!   forbids it, and mail servers and resolvers may not follow it.
//! - A CNAME, MX, SRV or NS target inside one of our zones that nothing
//!   answers for: no records, no steered name, no wildcard, not below a
//!   delegation. Such a reference dangles (NXDOMAIN), usually after a
//!   rename. Names below a DNAME count as answered (by substitution).
//!
//! Only names inside the zones Steer serves are judged; anything else is
//! someone else's.

use std::collections::HashSet;

use hickory_proto::rr::{Name, RData, RecordType};

use super::{Zone, ZoneRecord};

/// A CNAME, MX, SRV or NS target inside our zones, and the record naming it.
struct Reference<'zone> {
    what: &'static str,
    /// Lower case, as the warning shows it.
    target: Name,
    record: &'zone ZoneRecord,
}

/// The warnings for `zones`, where `steered` are the names `[[steer]]`
/// answers for; each names the file and line of the record.
///
/// Linear in the records: the owners are looked up in a set of the
/// targets rather than gathered into a set of their own (a zone of a
/// million names references a handful), and "below a delegation, DNAME or
/// wildcard" walks up each target's labels through sets, so that a zone
/// with many delegations is not checked target by delegation. Names hash
/// and compare without regard to case.
pub fn lint(zones: &[Zone], steered: &[Name]) -> Vec<String> {
    let origins: HashSet<&Name> = zones.iter().map(|zone| &zone.origin).collect();
    let inside = |target: &Name| ancestors(target).any(|name| origins.contains(&name));
    let mut references = Vec::new();
    let mut cuts: HashSet<Name> = HashSet::new();
    let mut dnames: HashSet<Name> = HashSet::new();
    let mut wildcard_bases: HashSet<Name> = HashSet::new();
    for zone in zones {
        for zone_record in &zone.records {
            let record = &zone_record.record;
            match record.record_type() {
                RecordType::NS if record.name != zone.origin => {
                    cuts.insert(record.name.clone());
                }
                RecordType::DNAME => {
                    dnames.insert(record.name.clone());
                }
                _ => {}
            }
            if record.name.is_wildcard() {
                wildcard_bases.insert(record.name.base_name());
            }
            let (what, target) = match &record.data {
                RData::CNAME(target) => ("CNAME", &target.0),
                RData::MX(mx) => ("MX", &mx.exchange),
                RData::SRV(srv) => ("SRV", &srv.target),
                RData::NS(ns) => ("NS", &ns.0),
                _ => continue,
            };
            // SRV's "." means "no service here" (RFC 2782).
            if !target.is_root() && inside(target) {
                references.push(Reference {
                    what,
                    target: target.to_lowercase(),
                    record: zone_record,
                });
            }
        }
    }
    if references.is_empty() {
        return Vec::new();
    }
    // Which targets own records, and which of those are CNAMEs.
    let targets: HashSet<&Name> = references
        .iter()
        .map(|reference| &reference.target)
        .collect();
    let mut owned: HashSet<&Name> = HashSet::new();
    let mut cnames: HashSet<&Name> = HashSet::new();
    for record in zones.iter().flat_map(|zone| &zone.records) {
        let owner = &record.record.name;
        if let Some(target) = targets.get(owner) {
            owned.insert(target);
            if record.record.record_type() == RecordType::CNAME {
                cnames.insert(target);
            }
        }
    }
    owned.extend(steered.iter().filter_map(|name| targets.get(name).copied()));
    let answered = |target: &Name| {
        owned.contains(target)
            // Below a delegation the child zone answers; below a DNAME,
            // substitution does; below a wildcard's base, the wildcard.
            || ancestors(target).any(|name| cuts.contains(&name))
            || ancestors(target)
                .skip(1)
                .any(|name| dnames.contains(&name) || wildcard_bases.contains(&name))
    };
    let mut warnings = Vec::new();
    for Reference {
        what,
        target,
        record,
    } in &references
    {
        let location = format!(
            "{}:{}",
            record.location.file.display(),
            record.location.line
        );
        if *what != "CNAME" && cnames.contains(target) {
            warnings.push(format!(
                "{location}: {what} target {target} is a CNAME; RFC 2181 §10.3 forbids it, \
                 and mail servers and resolvers may not follow it"
            ));
        } else if !answered(target) {
            warnings.push(format!(
                "{location}: {what} target {target} is in our zones but has no records \
                 (queries for it get NXDOMAIN)"
            ));
        }
    }
    warnings
}

/// `name`, then its parent, up to and including the root.
fn ancestors(name: &Name) -> impl Iterator<Item = Name> {
    std::iter::successors(Some(name.clone()), |name| {
        (!name.is_root()).then(|| name.base_name())
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::zone::parse_zone;

    fn zone(records: &str) -> Zone {
        let text = format!(
            "$TTL 300\n@ SOA ns1 hostmaster 1 2h 1h 2w 5m\n@ NS ns1\nns1 A 192.0.2.1\n{records}"
        );
        parse_zone(
            &text,
            Path::new("zones/example.test.zone"),
            &Name::from_ascii("example.test.").expect("name"),
        )
        .unwrap_or_else(|errors| panic!("{errors:?}"))
    }

    #[test]
    fn dangling_targets_and_cname_targets_are_named_with_their_lines() {
        let zone = zone(
            "mail A 192.0.2.25\n\
             alias CNAME mail\n\
             @ MX 10 alias\n\
             @ MX 20 gone\n\
             _sip._tcp SRV 0 0 5060 nowhere\n\
             old CNAME renamed\n\
             www CNAME steered\n\
             app CNAME x.apps\n\
             *.apps A 192.0.2.80\n\
             child NS ns.child\n\
             ns.child A 192.0.2.53\n\
             deep CNAME host.child\n\
             out CNAME www.example.net.\n\
             old-site DNAME example.net.\n\
             via CNAME www.old-site\n\
             _none._tcp SRV 0 0 0 .\n",
        );
        let steered = [Name::from_ascii("steered.example.test.").expect("name")];
        assert_eq!(
            lint(&[zone], &steered),
            [
                "zones/example.test.zone:7: MX target alias.example.test. is a CNAME; RFC 2181 \
                 §10.3 forbids it, and mail servers and resolvers may not follow it",
                "zones/example.test.zone:8: MX target gone.example.test. is in our zones but \
                 has no records (queries for it get NXDOMAIN)",
                "zones/example.test.zone:9: SRV target nowhere.example.test. is in our zones \
                 but has no records (queries for it get NXDOMAIN)",
                "zones/example.test.zone:10: CNAME target renamed.example.test. is in our zones \
                 but has no records (queries for it get NXDOMAIN)",
            ]
        );
    }
}
