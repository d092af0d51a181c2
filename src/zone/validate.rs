//! Zone validation: the rules a zone must pass before it can be served.
//!
//! Runs after parsing, on all records of a zone: out-of-zone owners, SOA and
//! apex NS, CNAME exclusivity, and delegations (what may sit at and below a
//! zone cut, and glue for NS targets inside the delegated subtree).
//! Identical duplicate records are dropped and TTLs within an RRset are
//! aligned to the first record's, since both are harmless and common in
//! hand-written files.
//!
//! The checks read the records in place (maps borrow the owner names) and
//! only touch the record vector at the end, when the zone is known to be
//! good: records are large, and a zone may hold millions of them.

use std::collections::hash_map::Entry;
use std::path::Path;

use hickory_proto::rr::{Name, RData, RecordType};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Location, ZoneError, ZoneRecord};

/// Past this many records, an RRset's duplicate check switches from a linear
/// scan to a hash set, so that huge RRsets stay linear overall.
const LINEAR_RRSET: usize = 16;

/// One RRset seen so far, for duplicate detection and TTL alignment. Kept
/// small: there is one per owner and type.
struct Rrset {
    ttl: u32,
    first: usize,
    /// Further members; `None` (no allocation) for single-record RRsets.
    more: Option<Box<Members>>,
}

/// Members of an RRset after the first.
enum Members {
    Few(Vec<usize>),
    Many(FxHashSet<RData>),
}

impl Rrset {
    fn contains(&self, records: &[ZoneRecord], data: &RData) -> bool {
        let same = |index: &usize| {
            records
                .get(*index)
                .is_some_and(|member| member.record.data == *data)
        };
        if same(&self.first) {
            return true;
        }
        match self.more.as_deref() {
            None => false,
            Some(Members::Few(members)) => members.iter().any(same),
            Some(Members::Many(set)) => set.contains(data),
        }
    }

    fn add(&mut self, records: &[ZoneRecord], index: usize) {
        let data = |index: &usize| records.get(*index).map(|member| member.record.data.clone());
        match self.more.as_deref_mut() {
            None => self.more = Some(Box::new(Members::Few(vec![index]))),
            Some(Members::Many(set)) => set.extend(data(&index)),
            Some(Members::Few(members)) => {
                members.push(index);
                if members.len() > LINEAR_RRSET {
                    let set = std::iter::once(&self.first)
                        .chain(members.iter())
                        .filter_map(data)
                        .collect();
                    self.more = Some(Box::new(Members::Many(set)));
                }
            }
        }
    }
}

/// What the checks need to know about one owner name.
#[derive(Default)]
struct OwnerSummary {
    first_cname: Option<usize>,
    /// First record that is not a CNAME.
    first_other: Option<usize>,
    first_ns: Option<usize>,
    first_dname: Option<usize>,
    has_address: bool,
}

/// What [`validate`] learned about the records, indexed like them.
struct Analysis<'r> {
    /// Owner id of each record.
    owner_of: Vec<u32>,
    /// Records to drop: out of zone (an error) or duplicates (silently).
    dropped: Vec<bool>,
    /// Owner names to ids.
    owners: FxHashMap<&'r Name, u32>,
    summaries: Vec<OwnerSummary>,
}

/// Validates the records of the zone at `apex` read from `file`, returning
/// the SOA serial. Duplicates are removed from `records` and RRset TTLs
/// aligned only when the zone is valid. When `complete` is false (the parser
/// reported errors), checks that something is missing are skipped: it may be
/// on a line that failed to parse.
pub(super) fn validate(
    apex: &Name,
    file: &Path,
    records: &mut Vec<ZoneRecord>,
    complete: bool,
) -> Result<u32, Vec<ZoneError>> {
    // Errors carry their record's index so they come out in file order.
    let mut errors: Vec<(usize, ZoneError)> = Vec::new();
    let mut ttl_fixes: Vec<(usize, u32)> = Vec::new();
    let (serial, zone_errors, any_dropped, dropped) = {
        let records: &[ZoneRecord] = records;
        let mut analysis = analyse(apex, records, &mut errors, &mut ttl_fixes);
        let soa = check_records(apex, records, &mut analysis, &mut errors);
        check_cnames(apex, records, &analysis, &mut errors);
        check_delegations(apex, records, &analysis, complete, &mut errors);
        check_dnames(records, &analysis, &mut errors);

        let apex_summary = analysis
            .owners
            .get(apex)
            .and_then(|&owner| analysis.summaries.get(owner as usize));
        let mut zone_errors = Vec::new();
        if complete && soa.is_none() {
            zone_errors.push(zone_error(
                file,
                format!("no SOA record at the zone apex {apex}"),
            ));
        }
        if complete && apex_summary.and_then(|summary| summary.first_ns).is_none() {
            zone_errors.push(zone_error(
                file,
                format!("no NS record at the zone apex {apex}"),
            ));
        }
        let serial = soa.and_then(|index| match &records[index].record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        });
        let any_dropped = analysis.dropped.contains(&true);
        (serial, zone_errors, any_dropped, analysis.dropped)
    };

    match serial {
        Some(serial) if errors.is_empty() && zone_errors.is_empty() => {
            for (index, ttl) in ttl_fixes {
                records[index].record.ttl = ttl;
            }
            if any_dropped {
                let mut flags = dropped.iter();
                records.retain(|_| !flags.next().copied().unwrap_or(false));
            }
            Ok(serial)
        }
        _ => {
            errors.sort_by_key(|(index, _)| *index);
            Err(errors
                .into_iter()
                .map(|(_, error)| error)
                .chain(zone_errors)
                .collect())
        }
    }
}

/// Assigns owner ids, finds duplicates and TTL mismatches, reports
/// out-of-zone owners.
fn analyse<'r>(
    apex: &Name,
    records: &'r [ZoneRecord],
    errors: &mut Vec<(usize, ZoneError)>,
    ttl_fixes: &mut Vec<(usize, u32)>,
) -> Analysis<'r> {
    let mut owners: FxHashMap<&Name, u32> = FxHashMap::default();
    owners.reserve(records.len());
    let mut rrsets: FxHashMap<(u32, RecordType), Rrset> = FxHashMap::default();
    rrsets.reserve(records.len());
    let mut owner_of = Vec::with_capacity(records.len());
    let mut dropped = vec![false; records.len()];

    for (index, zone_record) in records.iter().enumerate() {
        let record = &zone_record.record;
        let name = &record.name;
        if !apex.zone_of(name) {
            let message = format!("owner {name} is outside the zone {apex}");
            errors.push((index, error_at(&zone_record.location, message)));
            dropped[index] = true;
            owner_of.push(u32::MAX);
            continue;
        }
        let next_id = u32::try_from(owners.len()).unwrap_or(u32::MAX);
        let owner = *owners.entry(name).or_insert(next_id);
        owner_of.push(owner);
        match rrsets.entry((owner, record.record_type())) {
            Entry::Vacant(vacant) => {
                vacant.insert(Rrset {
                    ttl: record.ttl,
                    first: index,
                    more: None,
                });
            }
            Entry::Occupied(occupied) => {
                let rrset = occupied.into_mut();
                if rrset.contains(records, &record.data) {
                    dropped[index] = true;
                    continue;
                }
                if record.ttl != rrset.ttl {
                    ttl_fixes.push((index, rrset.ttl));
                }
                rrset.add(records, index);
            }
        }
    }
    let mut summaries = Vec::new();
    summaries.resize_with(owners.len(), OwnerSummary::default);
    Analysis {
        owner_of,
        dropped,
        owners,
        summaries,
    }
}

/// Fills the owner summaries; checks SOA placement and CNAME count. Returns
/// the index of the apex SOA.
fn check_records(
    apex: &Name,
    records: &[ZoneRecord],
    analysis: &mut Analysis<'_>,
    errors: &mut Vec<(usize, ZoneError)>,
) -> Option<usize> {
    let mut soa: Option<usize> = None;
    for (index, zone_record) in records.iter().enumerate() {
        if analysis.dropped[index] {
            continue;
        }
        let Some(summary) = analysis
            .summaries
            .get_mut(analysis.owner_of[index] as usize)
        else {
            continue;
        };
        let record = &zone_record.record;
        match record.record_type() {
            RecordType::CNAME => match summary.first_cname {
                Some(first) => {
                    let message = format!(
                        "more than one CNAME at {} (the first is at {})",
                        record.name,
                        reference(&records[first].location, &zone_record.location)
                    );
                    errors.push((index, error_at(&zone_record.location, message)));
                }
                None => summary.first_cname = Some(index),
            },
            other => {
                summary.first_other.get_or_insert(index);
                match other {
                    RecordType::NS => {
                        summary.first_ns.get_or_insert(index);
                    }
                    RecordType::DNAME => {
                        summary.first_dname.get_or_insert(index);
                    }
                    RecordType::A | RecordType::AAAA => summary.has_address = true,
                    RecordType::SOA if record.name != *apex => {
                        let message =
                            format!("SOA at {} is not at the zone apex {apex}", record.name);
                        errors.push((index, error_at(&zone_record.location, message)));
                    }
                    RecordType::SOA => match soa {
                        Some(first) => {
                            let message = format!(
                                "second SOA record at the zone apex {apex} (the first is at {})",
                                reference(&records[first].location, &zone_record.location)
                            );
                            errors.push((index, error_at(&zone_record.location, message)));
                        }
                        None => soa = Some(index),
                    },
                    _ => {}
                }
            }
        }
    }
    soa
}

/// CNAME exclusivity (RFC 1034 §3.6.2, RFC 2181 §10.1): no other data
/// beside a CNAME, and none at the apex, which always has SOA and NS.
fn check_cnames(
    apex: &Name,
    records: &[ZoneRecord],
    analysis: &Analysis<'_>,
    errors: &mut Vec<(usize, ZoneError)>,
) {
    for summary in &analysis.summaries {
        let Some(cname) = summary.first_cname else {
            continue;
        };
        let zone_record = &records[cname];
        let name = &zone_record.record.name;
        let message = if name == apex {
            format!(
                "CNAME at the zone apex {apex} is not allowed (the apex has SOA and NS records)"
            )
        } else if let Some(other) = summary.first_other {
            format!(
                "CNAME at {name} cannot coexist with other data ({} at {})",
                records[other].record.record_type(),
                reference(&records[other].location, &zone_record.location)
            )
        } else {
            continue;
        };
        errors.push((cname, error_at(&zone_record.location, message)));
    }
}

/// DNAME (RFC 6672 §2.4): no name may exist below a DNAME's owner, since
/// every name there is answered by substitution.
fn check_dnames(
    records: &[ZoneRecord],
    analysis: &Analysis<'_>,
    errors: &mut Vec<(usize, ZoneError)>,
) {
    let dname_at = |name: &Name| {
        analysis
            .owners
            .get(name)
            .and_then(|&owner| analysis.summaries.get(owner as usize))
            .and_then(|summary| summary.first_dname)
    };
    if !analysis
        .summaries
        .iter()
        .any(|summary| summary.first_dname.is_some())
    {
        return;
    }
    for (index, zone_record) in records.iter().enumerate() {
        if analysis.dropped[index] {
            continue;
        }
        let mut ancestor = zone_record.record.name.base_name();
        while !ancestor.is_root() {
            if let Some(dname) = dname_at(&ancestor) {
                let message = format!(
                    "{} at {} is below the DNAME at {} ({}); RFC 6672 allows no names below a \
                     DNAME, whose whole subtree is answered by substitution",
                    zone_record.record.record_type(),
                    zone_record.record.name,
                    ancestor,
                    reference(&records[dname].location, &zone_record.location)
                );
                errors.push((index, error_at(&zone_record.location, message)));
                break;
            }
            ancestor = ancestor.base_name();
        }
    }
}

/// Zone cuts (RFC 1034 §4.2.1): an NS RRset below the apex delegates the
/// subtree. Only glue may live below a cut; at the cut only NS, DS and glue;
/// and an NS target inside the delegated subtree needs glue, or no resolver
/// could ever reach it.
fn check_delegations(
    apex: &Name,
    records: &[ZoneRecord],
    analysis: &Analysis<'_>,
    complete: bool,
    errors: &mut Vec<(usize, ZoneError)>,
) {
    let summaries = &analysis.summaries;
    let apex_owner = analysis.owners.get(apex).copied();
    let is_cut = |owner: u32| {
        Some(owner) != apex_owner
            && summaries
                .get(owner as usize)
                .is_some_and(|summary| summary.first_ns.is_some())
    };
    if !(0..summaries.len())
        .filter_map(|owner| u32::try_from(owner).ok())
        .any(is_cut)
    {
        return;
    }
    // The highest cut strictly above each owner (the one that takes the
    // whole subtree out of this zone), computed once per owner.
    let apex_labels = apex.iter().count();
    let mut enclosing: Vec<Option<u32>> = vec![None; summaries.len()];
    for (&name, &owner) in &analysis.owners {
        let mut labels = name.iter().count();
        let mut current = name.clone();
        while labels > apex_labels + 1 {
            current = current.base_name();
            labels -= 1;
            if let Some(&ancestor) = analysis.owners.get(&current)
                && is_cut(ancestor)
            {
                enclosing[owner as usize] = Some(ancestor);
            }
        }
    }
    let delegation_ns = |cut: u32| {
        summaries[cut as usize]
            .first_ns
            .map(|index| &records[index])
    };

    for (index, zone_record) in records.iter().enumerate() {
        if analysis.dropped[index] {
            continue;
        }
        let owner = analysis.owner_of[index];
        let record = &zone_record.record;
        let record_type = record.record_type();
        if let Some(cut) = enclosing[owner as usize] {
            if let (false, Some(ns)) = (
                matches!(record_type, RecordType::A | RecordType::AAAA),
                delegation_ns(cut),
            ) {
                let message = format!(
                    "{record_type} at {} is below the delegation {} (NS at {}); only glue A/AAAA records may be there",
                    record.name,
                    ns.record.name,
                    reference(&ns.location, &zone_record.location)
                );
                errors.push((index, error_at(&zone_record.location, message)));
            }
            continue;
        }
        if !is_cut(owner) {
            continue;
        }
        match (record_type, &record.data) {
            (RecordType::NS, RData::NS(target)) => {
                let target = &target.0;
                let needs_glue = record.name.zone_of(target);
                let has_glue = analysis
                    .owners
                    .get(target)
                    .and_then(|&target_owner| summaries.get(target_owner as usize))
                    .is_some_and(|summary| summary.has_address);
                if complete && needs_glue && !has_glue {
                    let message = format!(
                        "delegation {}: NS target {target} has no glue (no A or AAAA record at that name)",
                        record.name
                    );
                    errors.push((index, error_at(&zone_record.location, message)));
                }
            }
            // CNAME beside NS is already reported as CNAME beside other data.
            (
                RecordType::NS
                | RecordType::DS
                | RecordType::A
                | RecordType::AAAA
                | RecordType::CNAME,
                _,
            ) => {}
            _ => {
                if let Some(ns) = delegation_ns(owner) {
                    let message = format!(
                        "{record_type} at {} is not allowed at a delegation point (NS at {}); only NS, DS and glue A/AAAA records may be there",
                        record.name,
                        reference(&ns.location, &zone_record.location)
                    );
                    errors.push((index, error_at(&zone_record.location, message)));
                }
            }
        }
    }
}

/// `line N` when `target` is in the same file as `from`, else `file:N`.
fn reference(target: &Location, from: &Location) -> String {
    if target.file == from.file {
        format!("line {}", target.line)
    } else {
        target.to_string()
    }
}

fn error_at(location: &Location, message: String) -> ZoneError {
    ZoneError {
        file: location.file.to_path_buf(),
        line: Some(location.line),
        message,
    }
}

fn zone_error(file: &Path, message: String) -> ZoneError {
    ZoneError {
        file: file.to_path_buf(),
        line: None,
        message,
    }
}
