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

use super::Zone;

/// The warnings for `zones`, where `steered` are the names `[[steer]]`
/// answers for; each names the file and line of the record.
pub fn lint(zones: &[Zone], steered: &[Name]) -> Vec<String> {
    let lower = |name: &Name| name.to_lowercase();
    let mut owners: HashSet<Name> = HashSet::new();
    let mut cnames: HashSet<Name> = HashSet::new();
    let mut wildcards: Vec<Name> = Vec::new();
    let mut cuts: Vec<Name> = Vec::new();
    let mut dnames: Vec<Name> = Vec::new();
    for zone in zones {
        for zone_record in &zone.records {
            let record = &zone_record.record;
            let owner = lower(&record.name);
            if record.record_type() == RecordType::CNAME {
                cnames.insert(owner.clone());
            }
            if record.record_type() == RecordType::NS && owner != lower(&zone.origin) {
                cuts.push(owner.clone());
            }
            if record.record_type() == RecordType::DNAME {
                dnames.push(owner.clone());
            }
            if owner.is_wildcard() {
                wildcards.push(owner.base_name());
            }
            owners.insert(owner);
        }
    }
    owners.extend(steered.iter().map(lower));
    let origins: Vec<Name> = zones.iter().map(|zone| lower(&zone.origin)).collect();
    let answered = |target: &Name| {
        owners.contains(target)
            // Below a delegation the child zone answers; below a DNAME,
            // substitution does.
            || cuts.iter().any(|cut| cut.zone_of(target))
            || dnames
                .iter()
                .any(|owner| owner.zone_of(target) && owner != target)
            || wildcards
                .iter()
                .any(|base| base.zone_of(target) && base != target)
    };

    let mut warnings = Vec::new();
    for zone in zones {
        for zone_record in &zone.records {
            let (what, target) = match &zone_record.record.data {
                RData::CNAME(target) => ("CNAME", &target.0),
                RData::MX(mx) => ("MX", &mx.exchange),
                RData::SRV(srv) => ("SRV", &srv.target),
                RData::NS(ns) => ("NS", &ns.0),
                _ => continue,
            };
            let target = lower(target);
            let location = format!(
                "{}:{}",
                zone_record.location.file.display(),
                zone_record.location.line
            );
            // SRV's "." means "no service here" (RFC 2782).
            if target.is_root() || !origins.iter().any(|origin| origin.zone_of(&target)) {
                continue;
            }
            if what != "CNAME" && cnames.contains(&target) {
                warnings.push(format!(
                    "{location}: {what} target {target} is a CNAME; RFC 2181 §10.3 forbids it, \
                     and mail servers and resolvers may not follow it"
                ));
            } else if !answered(&target) {
                warnings.push(format!(
                    "{location}: {what} target {target} is in our zones but has no records \
                     (queries for it get NXDOMAIN)"
                ));
            }
        }
    }
    warnings
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
