//! The meaning of an UPDATE message (RFC 2136 §3.2–3.4) over a zone's
//! records: prerequisites checked, the update section checked in full
//! (syntax and the grant) before anything is applied, then applied in
//! order. Pure: the caller reads the zone, keeps the result and serves it.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Types that are questions, not data: never in an update's records.
fn is_meta(record_type: RecordType) -> bool {
    matches!(
        record_type,
        RecordType::ANY
            | RecordType::AXFR
            | RecordType::IXFR
            | RecordType::OPT
            | RecordType::TSIG
            | RecordType::NULL
    ) || u16::from(record_type) == 253 // MAILB
        || u16::from(record_type) == 254 // MAILA
}

fn empty(record: &Record) -> bool {
    matches!(record.data, RData::Update0(_))
}

/// Checks the prerequisite section against `records` (RFC 2136 §3.2).
pub fn prerequisites(
    zone: &Name,
    records: &[Record],
    prerequisites: &[Record],
) -> Result<(), ResponseCode> {
    // Value-dependent prerequisites, gathered then compared as RRsets.
    let mut expected: Vec<&Record> = Vec::new();
    for prerequisite in prerequisites {
        if prerequisite.ttl != 0 {
            return Err(ResponseCode::FormErr);
        }
        if !zone.zone_of(&prerequisite.name) {
            return Err(ResponseCode::NotZone);
        }
        let name = &prerequisite.name;
        let record_type = prerequisite.record_type();
        let at_name = || records.iter().filter(move |record| record.name == *name);
        match prerequisite.dns_class {
            DNSClass::ANY => {
                if !empty(prerequisite) {
                    return Err(ResponseCode::FormErr);
                }
                if record_type == RecordType::ANY {
                    if at_name().next().is_none() {
                        return Err(ResponseCode::NXDomain);
                    }
                } else if !at_name().any(|record| record.record_type() == record_type) {
                    return Err(ResponseCode::NXRRSet);
                }
            }
            DNSClass::NONE => {
                if !empty(prerequisite) {
                    return Err(ResponseCode::FormErr);
                }
                if record_type == RecordType::ANY {
                    if at_name().next().is_some() {
                        return Err(ResponseCode::YXDomain);
                    }
                } else if at_name().any(|record| record.record_type() == record_type) {
                    return Err(ResponseCode::YXRRSet);
                }
            }
            DNSClass::IN => {
                if is_meta(record_type) || empty(prerequisite) {
                    return Err(ResponseCode::FormErr);
                }
                expected.push(prerequisite);
            }
            _ => return Err(ResponseCode::FormErr),
        }
    }
    // Each (name, type) of the value-dependent ones must be exactly that RRset.
    for (index, first) in expected.iter().enumerate() {
        let key = (first.name.to_lowercase(), first.record_type());
        if expected[..index]
            .iter()
            .any(|seen| (seen.name.to_lowercase(), seen.record_type()) == key)
        {
            continue;
        }
        let wanted: Vec<&RData> = expected
            .iter()
            .filter(|record| (record.name.to_lowercase(), record.record_type()) == key)
            .map(|record| &record.data)
            .collect();
        let present: Vec<&RData> = records
            .iter()
            .filter(|record| {
                record.name == first.name && record.record_type() == first.record_type()
            })
            .map(|record| &record.data)
            .collect();
        let covers = |left: &[&RData], right: &[&RData]| {
            left.iter()
                .all(|data| right.iter().any(|other| other == data))
        };
        if !(covers(&wanted, &present) && covers(&present, &wanted)) {
            return Err(ResponseCode::NXRRSet);
        }
    }
    Ok(())
}

/// Checks every record of the update section before anything is applied
/// (RFC 2136 §3.4.1): in the zone, well formed for its class, and allowed
/// by `permits(name, type)` (`ANY` for a deletion of every type at a name).
pub fn prescan(
    zone: &Name,
    updates: &[Record],
    permits: impl Fn(&Name, RecordType) -> bool,
) -> Result<(), ResponseCode> {
    for update in updates {
        if !zone.zone_of(&update.name) {
            return Err(ResponseCode::NotZone);
        }
        let record_type = update.record_type();
        let well_formed = match update.dns_class {
            DNSClass::IN => !is_meta(record_type) && !empty(update),
            DNSClass::ANY => {
                update.ttl == 0
                    && empty(update)
                    && (record_type == RecordType::ANY || !is_meta(record_type))
            }
            DNSClass::NONE => update.ttl == 0 && !is_meta(record_type) && !empty(update),
            _ => false,
        };
        if !well_formed {
            return Err(ResponseCode::FormErr);
        }
        if !permits(&update.name, record_type) {
            return Err(ResponseCode::Refused);
        }
    }
    Ok(())
}

/// Applies the (prescanned) update section to `records` in order (RFC
/// 2136 §3.4.2); true when something changed. The apex SOA and the last
/// apex NS are never removed; a CNAME is not added beside other data nor
/// other data beside a CNAME (the update is skipped, as the RFC says).
pub fn apply(zone: &Name, records: &mut Vec<Record>, updates: &[Record]) -> bool {
    let before = records.clone();
    for update in updates {
        let name = &update.name;
        let record_type = update.record_type();
        let at_apex = name == zone;
        let protected = |record: &Record| {
            at_apex && matches!(record.record_type(), RecordType::SOA | RecordType::NS)
        };
        match update.dns_class {
            DNSClass::IN => {
                let has_cname = records.iter().any(|record| {
                    record.name == *name && record.record_type() == RecordType::CNAME
                });
                let has_other = records.iter().any(|record| {
                    record.name == *name && record.record_type() != RecordType::CNAME
                });
                if (record_type == RecordType::CNAME && has_other)
                    || (record_type != RecordType::CNAME && has_cname)
                {
                    continue;
                }
                if record_type == RecordType::CNAME {
                    // One CNAME per name: the new one replaces it.
                    records.retain(|record| {
                        !(record.name == *name && record.record_type() == RecordType::CNAME)
                    });
                }
                records.retain(|record| {
                    !(record.name == *name
                        && record.record_type() == record_type
                        && record.data == update.data)
                });
                // An RRset has one TTL: the one last given.
                for record in records.iter_mut() {
                    if record.name == *name && record.record_type() == record_type {
                        record.ttl = update.ttl;
                    }
                }
                let mut added = update.clone();
                added.dns_class = DNSClass::IN;
                records.push(added);
            }
            DNSClass::ANY => records.retain(|record| {
                !(record.name == *name
                    && (record_type == RecordType::ANY || record.record_type() == record_type)
                    && !protected(record))
            }),
            DNSClass::NONE => {
                if at_apex && record_type == RecordType::SOA {
                    continue;
                }
                if at_apex && record_type == RecordType::NS {
                    let apex_ns = records
                        .iter()
                        .filter(|record| {
                            record.name == *zone && record.record_type() == RecordType::NS
                        })
                        .count();
                    if apex_ns <= 1 {
                        continue;
                    }
                }
                records.retain(|record| {
                    !(record.name == *name
                        && record.record_type() == record_type
                        && record.data == update.data)
                });
            }
            _ => {}
        }
    }
    *records != before
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, CNAME, NS, TXT};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).expect("name")
    }

    fn zone() -> Name {
        name("example.test.")
    }

    fn record(owner: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(name(owner), ttl, data)
    }

    fn txt(text: &str) -> RData {
        RData::TXT(TXT::new(vec![text.to_owned()]))
    }

    fn with_class(mut record: Record, class: DNSClass) -> Record {
        record.dns_class = class;
        record
    }

    /// A class ANY or NONE record with empty data.
    fn empty_of(owner: &str, record_type: RecordType, class: DNSClass) -> Record {
        with_class(record(owner, 0, RData::Update0(record_type)), class)
    }

    fn records() -> Vec<Record> {
        vec![
            record(
                "example.test.",
                300,
                RData::NS(NS(name("ns1.example.test."))),
            ),
            record("ns1.example.test.", 300, RData::A(A::new(192, 0, 2, 1))),
            record("www.example.test.", 300, RData::A(A::new(192, 0, 2, 10))),
            record("www.example.test.", 300, RData::A(A::new(192, 0, 2, 11))),
            record(
                "alias.example.test.",
                300,
                RData::CNAME(CNAME(name("www.example.test."))),
            ),
        ]
    }

    #[test]
    fn prerequisites_follow_rfc_2136_section_3_2() {
        let records = records();
        let check = |prerequisite: Record| prerequisites(&zone(), &records, &[prerequisite]);
        // Name in use / not in use.
        assert_eq!(
            check(empty_of(
                "WWW.example.test.",
                RecordType::ANY,
                DNSClass::ANY
            )),
            Ok(())
        );
        assert_eq!(
            check(empty_of(
                "new.example.test.",
                RecordType::ANY,
                DNSClass::ANY
            )),
            Err(ResponseCode::NXDomain)
        );
        assert_eq!(
            check(empty_of(
                "www.example.test.",
                RecordType::ANY,
                DNSClass::NONE
            )),
            Err(ResponseCode::YXDomain)
        );
        // RRset exists / does not exist.
        assert_eq!(
            check(empty_of(
                "www.example.test.",
                RecordType::TXT,
                DNSClass::ANY
            )),
            Err(ResponseCode::NXRRSet)
        );
        assert_eq!(
            check(empty_of("www.example.test.", RecordType::A, DNSClass::NONE)),
            Err(ResponseCode::YXRRSet)
        );
        // Value dependent: exactly the RRset, in any order.
        let www = |last: u8| record("www.example.test.", 0, RData::A(A::new(192, 0, 2, last)));
        assert_eq!(
            prerequisites(&zone(), &records, &[www(11), www(10)]),
            Ok(())
        );
        assert_eq!(
            prerequisites(&zone(), &records, &[www(10)]),
            Err(ResponseCode::NXRRSet)
        );
        // Malformed, or outside the zone.
        let mut with_ttl = empty_of("www.example.test.", RecordType::A, DNSClass::ANY);
        with_ttl.ttl = 5;
        assert_eq!(check(with_ttl), Err(ResponseCode::FormErr));
        assert_eq!(
            check(empty_of("www.example.org.", RecordType::A, DNSClass::ANY)),
            Err(ResponseCode::NotZone)
        );
    }

    #[test]
    fn prescan_checks_form_and_grant_before_anything_applies() {
        let everything = |_: &Name, _: RecordType| true;
        let only_txt = |_: &Name, record_type: RecordType| record_type == RecordType::TXT;
        let add = record("_acme-challenge.example.test.", 60, txt("token"));
        assert_eq!(
            prescan(&zone(), std::slice::from_ref(&add), only_txt),
            Ok(())
        );
        let address = record("x.example.test.", 60, RData::A(A::new(192, 0, 2, 5)));
        assert_eq!(
            prescan(&zone(), &[add.clone(), address], only_txt),
            Err(ResponseCode::Refused)
        );
        // Deleting every type needs a grant of every type.
        let delete_name = empty_of("x.example.test.", RecordType::ANY, DNSClass::ANY);
        assert_eq!(
            prescan(&zone(), std::slice::from_ref(&delete_name), only_txt),
            Err(ResponseCode::Refused)
        );
        assert_eq!(prescan(&zone(), &[delete_name], everything), Ok(()));
        let outside = record("x.example.org.", 60, txt("x"));
        assert_eq!(
            prescan(&zone(), &[outside], everything),
            Err(ResponseCode::NotZone)
        );
        let mut delete_with_ttl = with_class(add.clone(), DNSClass::NONE);
        delete_with_ttl.ttl = 60;
        assert_eq!(
            prescan(&zone(), &[delete_with_ttl], everything),
            Err(ResponseCode::FormErr)
        );
        let add_any = empty_of("x.example.test.", RecordType::ANY, DNSClass::IN);
        assert_eq!(
            prescan(&zone(), &[add_any], everything),
            Err(ResponseCode::FormErr)
        );
    }

    #[test]
    fn apply_adds_replaces_and_deletes_in_order() {
        let mut zone_records = records();
        let challenge = "_acme-challenge.example.test.";
        let updates = vec![
            record(challenge, 60, txt("one")),
            record(challenge, 120, txt("two")),
            // A duplicate replaces the record; the RRset takes the last TTL.
            record(challenge, 30, txt("one")),
        ];
        assert!(apply(&zone(), &mut zone_records, &updates));
        let at_challenge: Vec<(u32, String)> = zone_records
            .iter()
            .filter(|record| record.name == name(challenge))
            .map(|record| (record.ttl, record.data.to_string()))
            .collect();
        assert_eq!(at_challenge.len(), 2);
        assert!(
            at_challenge.iter().all(|(ttl, _)| *ttl == 30),
            "{at_challenge:?}"
        );
        // The same update again changes nothing.
        assert!(!apply(&zone(), &mut zone_records, &updates[2..]));
        // Delete one record, then the rest of the RRset.
        let one = with_class(record(challenge, 0, txt("two")), DNSClass::NONE);
        assert!(apply(&zone(), &mut zone_records, &[one]));
        let rrset = empty_of(challenge, RecordType::TXT, DNSClass::ANY);
        assert!(apply(&zone(), &mut zone_records, &[rrset]));
        assert!(
            !zone_records
                .iter()
                .any(|record| record.name == name(challenge))
        );
    }

    #[test]
    fn apply_keeps_the_apex_and_cname_rules() {
        let mut zone_records = records();
        // Deleting everything at the apex keeps its NS (and SOA).
        let everything = empty_of("example.test.", RecordType::ANY, DNSClass::ANY);
        assert!(!apply(&zone(), &mut zone_records, &[everything]));
        // The last apex NS stays.
        let last_ns = with_class(
            record("example.test.", 0, RData::NS(NS(name("ns1.example.test.")))),
            DNSClass::NONE,
        );
        assert!(!apply(&zone(), &mut zone_records, &[last_ns]));
        // No CNAME beside other data, no other data beside a CNAME.
        let cname = record(
            "www.example.test.",
            60,
            RData::CNAME(CNAME(name("x.example.test."))),
        );
        assert!(!apply(&zone(), &mut zone_records, &[cname]));
        let beside = record("alias.example.test.", 60, txt("x"));
        assert!(!apply(&zone(), &mut zone_records, &[beside]));
        // A CNAME replaces the CNAME.
        let moved = record(
            "alias.example.test.",
            60,
            RData::CNAME(CNAME(name("ns1.example.test."))),
        );
        assert!(apply(&zone(), &mut zone_records, &[moved]));
        let targets: Vec<String> = zone_records
            .iter()
            .filter(|record| record.record_type() == RecordType::CNAME)
            .map(|record| record.data.to_string())
            .collect();
        assert_eq!(targets, vec!["ns1.example.test.".to_owned()]);
    }
}
