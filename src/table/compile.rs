//! Zones → routing table (control plane).
//!
//! Groups records into nodes and RRsets, adds empty non-terminals, finds
//! zone cuts, resolves CNAME chains (through all the zones served) and
//! wildcard synthesis, and
//! encodes every reply the data plane can give into [`Sections`]. Runs off
//! the hot path; deterministic for the same input.

use std::borrow::Cow;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::encode::{Owner, Part, SectionEncoder, wire_lower};
use super::index::NameIndex;
use super::nsec::{Denial, MAX_KEY, Nsec3Index, NsecIndex, canonical_key};
use super::steer::{CompiledPolicy, compile_policies};
use super::{
    FIRST, NONE, Node, Prepared, Reply, RoutingTable, STEERED, Section, Sections, ZoneData,
    ZoneReplies, ZoneSummary, rcode,
};
use crate::config::steering::{SteeringConfig, Step};
use crate::config::{CookieSecrets, RateLimitConfig};
use crate::dnssec::sign::{Nsec3Entry, nsec3_hash};
use crate::geo::GeoDatabase;
use crate::geo::location_maps::LocationMaps;
use crate::health::{AdminState, HealthView};
use crate::latency::snapshot::LatencySnapshot;
use crate::metrics::DecisionRegistry;
use crate::zone::{Location, Zone};

/// Longest CNAME chain followed (RFC 1034 §3.6.2 asks servers to
/// follow chains; a bound keeps loops and long chains finite).
const MAX_CHAIN: usize = 8;

/// A steered name handed to the zone that holds it.
struct Steered<'config> {
    name: &'config Name,
    record_type: RecordType,
    policy: u32,
}

/// A node as compiled, before [`layout`] packs it for the query path.
#[derive(Clone, Debug)]
struct DraftNode {
    /// Answers by query type: a range of `Compiler::answers`, sorted by type.
    answers_start: u32,
    answers_len: u16,
    fallback: Reply,
    any_udp: Reply,
    any_tcp: Reply,
    wildcard: u32,
    /// Section id of the referral when at or below a cut, or NONE.
    referral: u32,
    is_cut: bool,
    parent_cut: u32,
    zone: u32,
    /// Index into `Compiler::dnames` when the node owns a DNAME, or NONE.
    dname: u32,
}

/// One RRset: type, records in file order, TTL of the first record.
/// Borrows from the zones so that a large zone is not held twice.
struct RecordSet<'zone> {
    record_type: RecordType,
    /// Inline when one record, as most are: a zone of a million names
    /// would otherwise make a million small allocations (and free them).
    records: SmallVec<[&'zone Record; 1]>,
    ttl: u32,
    /// Where the first record was written, for conflict messages.
    location: &'zone Location,
}

/// A node while building.
struct BuildNode<'zone> {
    name: Cow<'zone, Name>,
    /// Lower-case wire form, shared with its key in `BuildZone::by_name`
    /// (one allocation per name, not two).
    wire: Rc<[u8]>,
    /// Most names own one RRset: inline, for the same reason.
    sets: SmallVec<[RecordSet<'zone>; 1]>,
    /// Steered types at this name: (type, policy id).
    steered: Vec<(RecordType, u32)>,
}

impl<'zone> BuildNode<'zone> {
    fn set(&self, record_type: RecordType) -> Option<&RecordSet<'zone>> {
        self.sets.iter().find(|set| set.record_type == record_type)
    }
}

/// A zone while building.
struct BuildZone<'zone> {
    zone: &'zone Zone,
    apex: Vec<u8>,
    nodes: Vec<BuildNode<'zone>>,
    by_name: FxHashMap<Rc<[u8]>, usize>,
    /// Per node: the cut it is at or below (node index), if any.
    cut_of: Vec<Option<usize>>,
    /// Whether any owner is a wildcard (saves a probe per name when not).
    has_wildcards: bool,
    /// Whether the zone was signed: the signed table serves its RRSIGs
    /// and NSEC proofs.
    signed: bool,
    /// The nodes that own an NSEC, in canonical order, with their keys.
    nsec_order: Vec<(Vec<u8>, usize)>,
    /// With NSEC3: the chain, in hash order.
    nsec3: &'zone [Nsec3Entry],
}

/// Where a name leads inside a zone.
enum Resolution {
    /// An existing node that is not occluded.
    Node(usize),
    /// No such node; the wildcard node that synthesizes it.
    Wildcard(usize),
    /// At or below a zone cut.
    Delegated,
    /// Below the owner (this node) of a DNAME: answered by substitution.
    BelowDname(usize),
    /// No such name.
    NxDomain,
    /// Not in this zone.
    OutOfZone,
}

fn parent_wire(wire: &[u8]) -> Option<&[u8]> {
    let length = usize::from(*wire.first()?);
    if length == 0 {
        return None;
    }
    wire.get(1 + length..)
}

fn is_at_or_below(wire: &[u8], apex: &[u8]) -> bool {
    wire.len() >= apex.len() && wire.ends_with(apex) && {
        // The suffix must start on a label boundary.
        let mut at = 0usize;
        loop {
            if at == wire.len() - apex.len() {
                break true;
            }
            if at > wire.len() - apex.len() {
                break false;
            }
            at += 1 + usize::from(wire[at]);
        }
    }
}

impl<'zone> BuildZone<'zone> {
    fn new(zone: &'zone Zone, steered: &[Steered<'zone>]) -> Self {
        let apex = wire_lower(&zone.origin);
        let mut build = Self {
            zone,
            apex,
            // About a node per record: sized once, not doubled and copied.
            nodes: Vec::with_capacity(zone.records.len()),
            by_name: FxHashMap::with_capacity_and_hasher(zone.records.len(), Default::default()),
            cut_of: Vec::new(),
            has_wildcards: false,
            signed: zone.signing.is_some(),
            nsec_order: Vec::new(),
            nsec3: zone
                .signing
                .as_ref()
                .map_or(&[], |signing| signing.nsec3.as_slice()),
        };
        for zone_record in &zone.records {
            let record = &zone_record.record;
            let location = &zone_record.location;
            let node = build.node_for(Cow::Borrowed(&record.name));
            let record_type = record.record_type();
            let sets = &mut build.nodes[node].sets;
            match sets.iter_mut().find(|set| set.record_type == record_type) {
                // The zone loader has already merged identical records.
                Some(set) => set.records.push(record),
                None => sets.push(RecordSet {
                    record_type,
                    records: smallvec::smallvec![record],
                    ttl: record.ttl,
                    location,
                }),
            }
        }
        for entry in steered {
            let node = build.node_for(Cow::Borrowed(entry.name));
            build.nodes[node]
                .steered
                .push((entry.record_type, entry.policy));
        }
        // Empty non-terminals: every name between an owner and the apex exists.
        let mut index = 0;
        while index < build.nodes.len() {
            let node = &build.nodes[index];
            if node.wire.len() > build.apex.len()
                && let Some(parent) = parent_wire(&node.wire)
                && !build.by_name.contains_key(parent)
            {
                let parent = node.name.base_name();
                build.node_for(Cow::Owned(parent));
            }
            index += 1;
        }
        for node in &mut build.nodes {
            node.sets.sort_by_key(|set| u16::from(set.record_type));
        }
        build.has_wildcards = build
            .nodes
            .iter()
            .any(|node| node.wire.starts_with(b"\x01*"));
        build.cut_of = (0..build.nodes.len())
            .map(|node| build.find_cut(node))
            .collect();
        if build.signed {
            let mut buffer = [0u8; MAX_KEY];
            build.nsec_order = (0..build.nodes.len())
                .filter(|&node| build.nodes[node].set(RecordType::NSEC).is_some())
                .map(|node| {
                    let length = canonical_key(&build.nodes[node].wire, &mut buffer);
                    (buffer[..length].to_vec(), node)
                })
                .collect();
            build.nsec_order.sort();
        }
        build
    }

    /// The node whose NSEC owns or covers `wire` (signed zones only).
    fn covering_node(&self, wire: &[u8]) -> Option<usize> {
        let mut buffer = [0u8; MAX_KEY];
        let length = canonical_key(wire, &mut buffer);
        let after = self
            .nsec_order
            .partition_point(|(key, _)| key.as_slice() <= &buffer[..length]);
        let index = after
            .checked_sub(1)
            .unwrap_or(self.nsec_order.len().checked_sub(1)?);
        self.nsec_order.get(index).map(|&(_, node)| node)
    }

    /// The NSEC or NSEC3 that matches `wire` or covers it.
    fn cover(&self, wire: &[u8]) -> Option<Proof> {
        if self.nsec3.is_empty() {
            return self.covering_node(wire).map(Proof::Nsec);
        }
        let hash = nsec3_hash(wire);
        let after = self.nsec3.partition_point(|entry| entry.hash <= hash);
        let index = after.checked_sub(1).unwrap_or(self.nsec3.len() - 1);
        Some(Proof::Nsec3(index))
    }

    /// The name one label below `encloser` on the way to `wire` (RFC 5155
    /// §1.3's next closer name).
    fn next_closer<'wire>(wire: &'wire [u8], encloser: &[u8]) -> &'wire [u8] {
        let mut at: &[u8] = wire;
        while let Some(parent) = parent_wire(at) {
            if parent.len() <= encloser.len() {
                break;
            }
            at = parent;
        }
        at
    }

    /// The proofs that `wire` does not exist (RFC 4035 §3.1.3.2, RFC 5155
    /// §7.2.2): with NSEC, the NSECs covering it and the wildcard at its
    /// closest encloser; with NSEC3, the closest encloser's NSEC3, the one
    /// covering the next closer name and the one covering the wildcard.
    fn nonexistence(&self, wire: &[u8]) -> Vec<Proof> {
        let encloser = self.closest_encloser(wire);
        let mut wildcard = b"\x01*".to_vec();
        wildcard.extend_from_slice(encloser);
        let names: Vec<&[u8]> = if self.nsec3.is_empty() {
            vec![wire, &wildcard]
        } else {
            vec![encloser, Self::next_closer(wire, encloser), &wildcard]
        };
        names
            .into_iter()
            .filter_map(|name| self.cover(name))
            .collect()
    }

    /// The proof that `wire`, answered by a wildcard, has no closer match
    /// (RFC 4035 §3.1.3.3, RFC 5155 §7.2.6).
    fn expansion(&self, wire: &[u8]) -> Vec<Proof> {
        let name = if self.nsec3.is_empty() {
            wire
        } else {
            Self::next_closer(wire, self.closest_encloser(wire))
        };
        self.cover(name).into_iter().collect()
    }

    /// The proof that the existing name `wire` has no data of a type: its
    /// NSEC or NSEC3 (an empty non-terminal's covering NSEC); for a
    /// wildcard's owner with NSEC3, its closest encloser's too (RFC 5155
    /// §7.2.5).
    fn nodata(&self, wire: &[u8]) -> Vec<Proof> {
        let mut proofs: Vec<Proof> = self.cover(wire).into_iter().collect();
        if !self.nsec3.is_empty()
            && wire.starts_with(b"\x01*")
            && let Some(parent) = parent_wire(wire)
        {
            proofs.extend(self.cover(parent));
        }
        proofs
    }

    /// The closest encloser of `wire` in this zone: the deepest existing
    /// name at or above it.
    fn closest_encloser<'wire>(&self, mut wire: &'wire [u8]) -> &'wire [u8] {
        while !self.by_name.contains_key(wire) {
            match parent_wire(wire) {
                Some(parent) => wire = parent,
                None => break,
            }
        }
        wire
    }

    /// The RRSIGs at `node` that cover `covered`.
    fn signatures(&self, node: usize, covered: RecordType) -> Vec<&'zone Record> {
        let Some(set) = self.nodes[node].set(RecordType::RRSIG) else {
            return Vec::new();
        };
        set.records
            .iter()
            .copied()
            .filter(|record| match &record.data {
                RData::Unknown { rdata, .. } => {
                    rdata.anything.get(..2) == Some(&u16::from(covered).to_be_bytes()[..])
                }
                _ => false,
            })
            .collect()
    }

    fn apex_node(&self) -> Option<usize> {
        self.by_name.get(self.apex.as_slice()).copied()
    }

    /// Steered names that clash with the zone's own data.
    fn steered_conflicts(&self, key_paths: &[&str]) -> Vec<String> {
        let mut errors = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            for &(record_type, policy) in &node.steered {
                let key = key_paths.get(policy as usize).copied().unwrap_or("steer");
                if let Some(cut) = self.cut_of[index] {
                    errors.push(format!(
                        "{key}: {} is at or below the delegation {} ({}); a parent zone cannot answer for it",
                        node.name, self.nodes[cut].name, self.zone.file.display()
                    ));
                    continue;
                }
                // RRSIG and NSEC, which signing adds, stand beside any
                // name, a CNAME's too (RFC 4035 §2.5).
                let signing_made = |set: &&RecordSet<'_>| {
                    matches!(set.record_type, RecordType::RRSIG | RecordType::NSEC)
                };
                for set in node.sets.iter().filter(|set| !signing_made(set)) {
                    let clash = set.record_type == record_type
                        || record_type == RecordType::CNAME
                        || set.record_type == RecordType::CNAME;
                    if clash {
                        errors.push(format!(
                            "{key}: {} {record_type} is steered, but {} has {} data there ({}); a name cannot be both static and steered for the same type, and a CNAME stands alone",
                            node.name, self.zone.file.display(), set.record_type, set.location
                        ));
                    }
                }
                if record_type == RecordType::CNAME && node.steered.len() > 1 {
                    errors.push(format!(
                        "{key}: {} is steered as a CNAME and for other types too; a CNAME stands alone",
                        node.name
                    ));
                }
                if *node.wire == *self.apex && record_type == RecordType::CNAME {
                    errors.push(format!(
                        "{key}: {} is a zone apex and cannot be a CNAME",
                        node.name
                    ));
                }
            }
        }
        errors
    }

    fn node_for(&mut self, name: Cow<'zone, Name>) -> usize {
        let wire = wire_lower(&name);
        if let Some(&node) = self.by_name.get(wire.as_slice()) {
            return node;
        }
        let node = self.nodes.len();
        let wire: Rc<[u8]> = wire.into();
        self.by_name.insert(Rc::clone(&wire), node);
        self.nodes.push(BuildNode {
            name,
            wire,
            sets: SmallVec::new(),
            steered: Vec::new(),
        });
        node
    }

    fn is_cut(&self, node: usize) -> bool {
        *self.nodes[node].wire != *self.apex && self.nodes[node].set(RecordType::NS).is_some()
    }

    /// The cut closest to the apex at or above `node`.
    fn find_cut(&self, node: usize) -> Option<usize> {
        let mut found = None;
        let mut wire: &[u8] = &self.nodes[node].wire;
        while wire.len() > self.apex.len() {
            if let Some(&ancestor) = self.by_name.get(wire)
                && self.is_cut(ancestor)
            {
                found = Some(ancestor);
            }
            match parent_wire(wire) {
                Some(parent) => wire = parent,
                None => break,
            }
        }
        found
    }

    fn wildcard_of(&self, wire: &[u8]) -> Option<usize> {
        if !self.has_wildcards {
            return None;
        }
        let mut wildcard = Vec::with_capacity(wire.len() + 2);
        wildcard.extend_from_slice(b"\x01*");
        wildcard.extend_from_slice(wire);
        self.by_name.get(wildcard.as_slice()).copied()
    }

    fn resolve(&self, name: &Name) -> Resolution {
        let wire = wire_lower(name);
        if !is_at_or_below(&wire, &self.apex) {
            return Resolution::OutOfZone;
        }
        if let Some(&node) = self.by_name.get(wire.as_slice()) {
            return if self.cut_of[node].is_some() {
                Resolution::Delegated
            } else {
                Resolution::Node(node)
            };
        }
        let mut suffix: &[u8] = &wire;
        while let Some(parent) = parent_wire(suffix) {
            suffix = parent;
            if let Some(&encloser) = self.by_name.get(suffix) {
                if self.cut_of[encloser].is_some() {
                    return Resolution::Delegated;
                }
                if self.nodes[encloser].set(RecordType::DNAME).is_some() {
                    return Resolution::BelowDname(encloser);
                }
                return match self.wildcard_of(suffix) {
                    Some(wildcard) => Resolution::Wildcard(wildcard),
                    None => Resolution::NxDomain,
                };
            }
        }
        Resolution::OutOfZone
    }

    fn soa(&self) -> Result<(&'zone Record, u32), String> {
        let apex = self
            .by_name
            .get(self.apex.as_slice())
            .map(|&node| &self.nodes[node]);
        let set = apex
            .and_then(|node| node.set(RecordType::SOA))
            .ok_or_else(|| format!("{}: zone has no SOA at its apex", self.zone.file.display()))?;
        let record = set.records[0];
        let minimum = match &record.data {
            RData::SOA(soa) => soa.minimum,
            _ => set.ttl,
        };
        // RFC 2308 §5: the negative TTL is the lesser of the SOA TTL and MINIMUM.
        Ok((record, set.ttl.min(minimum)))
    }
}

/// A record that proves something in a negative answer of a signed zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    /// The NSEC of this node.
    Nsec(usize),
    /// This entry of the zone's NSEC3 chain.
    Nsec3(usize),
}

/// A CNAME chain resolved at compile time.
struct Chain {
    /// The records of the chain, in order. Zones are indexes into the
    /// table's zones: a chain goes on into every zone this server is
    /// authoritative for.
    links: Vec<Link>,
    end: ChainEnd,
    /// Targets a wildcard answered (zone, wire name): a signed zone
    /// proves each has no closer match (RFC 4035 §3.1.3.3).
    expansions: Vec<(usize, Vec<u8>)>,
}

/// One step of a chain.
enum Link {
    /// The CNAME RRset of `node` in `zone`, owned by `owner` (None: the
    /// question).
    Cname {
        owner: Option<Name>,
        zone: usize,
        node: usize,
    },
    /// The DNAME RRset of `node` in `zone`, whose subtree the chain entered.
    Dname { zone: usize, node: usize },
    /// The CNAME that DNAME substitution makes (RFC 6672 §3.1).
    Synthesized {
        owner: Name,
        record: Box<Record>,
        ttl: u32,
    },
}

enum ChainEnd {
    /// The chain ends at a node with data; `owner` names it.
    Data {
        zone: usize,
        node: usize,
        owner: Name,
    },
    /// The last target, `name` (wire), does not exist in `zone`.
    NxDomain { zone: usize, name: Vec<u8> },
    /// Out of our zones, delegated, steered, a loop or too long: the chain
    /// alone is the answer.
    Stop,
}

/// The CNAME that the DNAME at `owner` makes for `name` below it, and its
/// TTL (the DNAME's); `None` when the new name would pass 255 bytes.
fn synthesize(owner: &BuildNode<'_>, name: &Name) -> Option<(Record, u32)> {
    let set = owner.set(RecordType::DNAME)?;
    let RData::Unknown { rdata, .. } = &set.records.first()?.data else {
        return None;
    };
    // The zone loader keeps the target as its wire form.
    let mut target_labels: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    while let Some(&length) = rdata.anything.get(at) {
        if length == 0 {
            break;
        }
        target_labels.push(rdata.anything.get(at + 1..at + 1 + usize::from(length))?);
        at += 1 + usize::from(length);
    }
    let kept = name.num_labels().checked_sub(owner.name.num_labels())?;
    let labels: Vec<&[u8]> = name
        .iter()
        .take(usize::from(kept))
        .chain(target_labels)
        .collect();
    let mut new_name = Name::from_labels(labels).ok()?;
    new_name.set_fqdn(true);
    let record = Record::from_rdata(
        name.clone(),
        set.ttl,
        RData::CNAME(hickory_proto::rr::rdata::CNAME(new_name)),
    );
    Some((record, set.ttl))
}

/// The zone of `zones` with the deepest apex at or above `name`: where
/// RFC 1034 §4.3.2 step 1 looks for a name.
fn best_zone(zones: &[BuildZone<'_>], name: &Name) -> Option<usize> {
    let wire = wire_lower(name);
    zones
        .iter()
        .enumerate()
        .filter(|(_, zone)| is_at_or_below(&wire, &zone.apex))
        .max_by_key(|(_, zone)| zone.apex.len())
        .map(|(index, _)| index)
}

struct Compiler {
    sections: Sections,
    answers: Vec<(u16, Reply)>,
    dnames: Vec<super::Dname>,
    /// Compiling the table for queries with the DO bit: signed zones'
    /// RRSIGs go beside their RRsets, NSEC proofs into negative answers.
    signed: bool,
    /// Per steered policy of a signed zone: its NODATA with the NSEC that
    /// leaves the steered type out.
    policy_nodata: Vec<(u32, Reply)>,
    /// In the zone being compiled (signed, NSEC): each node's proof
    /// section, its NSEC and RRSIGs, which the node's answer to a query
    /// for type NSEC shares rather than holding the same bytes again.
    nsec_proofs: FxHashMap<usize, u32>,
}

impl Compiler {
    /// Whether `zone`'s DNSSEC records go into this table's answers.
    fn signs(&self, zone: &BuildZone<'_>) -> bool {
        self.signed && zone.signed
    }

    /// Pushes `set` of `node` and, when signing, its RRSIGs.
    fn push_signed(
        &self,
        encoder: &mut SectionEncoder,
        part: Part,
        owner: Owner<'_>,
        zone: &BuildZone<'_>,
        node: usize,
        set: &RecordSet<'_>,
    ) -> Result<(), String> {
        if set.record_type == RecordType::RRSIG {
            // Asked for by type: each RRSIG keeps the TTL of the RRset it
            // covers (RFC 4034 §3), which signing gave it.
            for record in &set.records {
                encoder.push(part, owner, record, record.ttl)?;
            }
            return Ok(());
        }
        encoder.push_set(part, owner, &set.records, set.ttl)?;
        if self.signs(zone) {
            let signatures = zone.signatures(node, set.record_type);
            encoder.push_set(part, owner, &signatures, set.ttl)?;
        }
        Ok(())
    }

    /// Pushes the NSEC of `node` and its RRSIGs into the authority section.
    fn push_nsec(
        &self,
        encoder: &mut SectionEncoder,
        zone: &BuildZone<'_>,
        node: usize,
    ) -> Result<(), String> {
        if let Some(set) = zone.nodes[node].set(RecordType::NSEC) {
            let owner = Owner::Name(&zone.nodes[node].name);
            self.push_signed(encoder, Part::Authority, owner, zone, node, set)?;
        }
        Ok(())
    }

    /// Pushes a proof (an NSEC or an NSEC3, with its RRSIGs) into the
    /// authority section.
    fn push_proof(
        &self,
        encoder: &mut SectionEncoder,
        zone: &BuildZone<'_>,
        proof: Proof,
    ) -> Result<(), String> {
        match proof {
            Proof::Nsec(node) => self.push_nsec(encoder, zone, node),
            Proof::Nsec3(entry) => {
                for record in &zone.nsec3[entry].records {
                    encoder.push(
                        Part::Authority,
                        Owner::Name(&record.name),
                        record,
                        record.ttl,
                    )?;
                }
                Ok(())
            }
        }
    }

    /// Pushes `proofs` of `zone` when signing, each unless `seen` says this
    /// section has it already (one record can prove two things; RFC 2181
    /// §5 wants records once).
    fn push_proofs(
        &self,
        encoder: &mut SectionEncoder,
        zone: &BuildZone<'_>,
        proofs: Vec<Proof>,
        seen: &mut Vec<(usize, Proof)>,
    ) -> Result<(), String> {
        if !self.signs(zone) {
            return Ok(());
        }
        for proof in proofs {
            let key = (std::ptr::from_ref(zone) as usize, proof);
            if !seen.contains(&key) {
                seen.push(key);
                self.push_proof(encoder, zone, proof)?;
            }
        }
        Ok(())
    }

    fn negative(&mut self, zone: &BuildZone<'_>) -> Result<u32, String> {
        let mut encoder = SectionEncoder::new(&zone.apex, 0);
        self.push_soa(zone, &mut encoder)?;
        encoder.finish(&mut self.sections)
    }

    fn referral(&mut self, zone: &BuildZone<'_>, cut: usize) -> Result<u32, String> {
        let node = &zone.nodes[cut];
        let mut encoder = SectionEncoder::new(&node.wire, 0);
        let Some(ns) = node.set(RecordType::NS) else {
            return Err(format!("{}: cut without NS", zone.zone.file.display()));
        };
        encoder.push_set(
            Part::Authority,
            Owner::Name(&node.name),
            &ns.records,
            ns.ttl,
        )?;
        if self.signs(zone) {
            // RFC 4035 §3.1.4: the DS RRset, or the NSEC proving there is none.
            match node.set(RecordType::DS) {
                Some(ds) => self.push_signed(
                    &mut encoder,
                    Part::Authority,
                    Owner::Name(&node.name),
                    zone,
                    cut,
                    ds,
                )?,
                None => {
                    let proofs = zone.nodata(&node.wire);
                    self.push_proofs(&mut encoder, zone, proofs, &mut Vec::new())?;
                }
            }
        }
        for record in &ns.records {
            let RData::NS(target) = &record.data else {
                continue;
            };
            let Some(&target_index) = zone.by_name.get(wire_lower(&target.0).as_slice()) else {
                continue;
            };
            let target_node = &zone.nodes[target_index];
            // Glue (at or below a cut) is never signed; an address the zone
            // is authoritative for is, and its RRSIG comes with it (RFC 4035
            // §3.1.1).
            let glue = zone.cut_of[target_index].is_some();
            for address_type in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = target_node.set(address_type) {
                    if glue {
                        encoder.push_set(
                            Part::Additional,
                            Owner::Name(&target.0),
                            &set.records,
                            set.ttl,
                        )?;
                    } else {
                        self.push_signed(
                            &mut encoder,
                            Part::Additional,
                            Owner::Name(&target.0),
                            zone,
                            target_index,
                            set,
                        )?;
                    }
                }
            }
        }
        encoder.finish(&mut self.sections)
    }

    /// The chain from node `start` of zone `zone`, followed through every
    /// zone in `zones` (RFC 1034 §4.3.2 step 3a goes back to step 1, which
    /// looks in all of them), up to [`MAX_CHAIN`] links and never round a
    /// loop.
    fn chain(zones: &[BuildZone<'_>], zone: usize, start: usize) -> Chain {
        let mut links = vec![Link::Cname {
            owner: None,
            zone,
            node: start,
        }];
        let mut visited = HashSet::new();
        visited.insert(zones[zone].nodes[start].wire.to_vec());
        let mut expansions = Vec::new();
        let stop = |links, expansions| Chain {
            links,
            end: ChainEnd::Stop,
            expansions,
        };
        let cname_target = |zone: usize, node: usize| match zones[zone].nodes[node]
            .set(RecordType::CNAME)
            .and_then(|set| set.records.first())
            .map(|record| &record.data)
        {
            Some(RData::CNAME(target)) => Some(target.0.clone()),
            _ => None,
        };
        let Some(mut target) = cname_target(zone, start) else {
            return stop(links, expansions);
        };
        let mut current_zone = zone;
        loop {
            if links.len() > MAX_CHAIN || !visited.insert(wire_lower(&target)) {
                return stop(links, expansions);
            }
            // Below a cut of this zone, or outside it, the target may be in
            // another zone of ours (a child zone, or an unrelated one).
            let mut next_zone = current_zone;
            let mut resolution = zones[current_zone].resolve(&target);
            if matches!(resolution, Resolution::Delegated | Resolution::OutOfZone)
                && let Some(other) = best_zone(zones, &target)
                && other != current_zone
            {
                next_zone = other;
                resolution = zones[other].resolve(&target);
            }
            let next = match resolution {
                Resolution::Node(node) => node,
                Resolution::Wildcard(node) => {
                    expansions.push((next_zone, wire_lower(&target)));
                    node
                }
                Resolution::NxDomain => {
                    return Chain {
                        links,
                        end: ChainEnd::NxDomain {
                            zone: next_zone,
                            name: wire_lower(&target),
                        },
                        expansions,
                    };
                }
                Resolution::BelowDname(owner) => {
                    // RFC 6672 §3.1: the DNAME, the CNAME it makes, and on
                    // with the new name, as a query for it would go.
                    let Some((record, ttl)) = synthesize(&zones[next_zone].nodes[owner], &target)
                    else {
                        // Past 255 bytes: the resolver gets YXDOMAIN when
                        // it asks for the target.
                        return stop(links, expansions);
                    };
                    let RData::CNAME(new_name) = &record.data else {
                        return stop(links, expansions);
                    };
                    let new_name = new_name.0.clone();
                    links.push(Link::Dname {
                        zone: next_zone,
                        node: owner,
                    });
                    links.push(Link::Synthesized {
                        owner: target,
                        record: Box::new(record),
                        ttl,
                    });
                    target = new_name;
                    current_zone = next_zone;
                    continue;
                }
                Resolution::Delegated | Resolution::OutOfZone => return stop(links, expansions),
            };
            if !zones[next_zone].nodes[next].steered.is_empty() {
                // A steered target is chosen per client: the resolver asks
                // for it itself. Adding the SOA here would claim it has no data.
                return stop(links, expansions);
            }
            match cname_target(next_zone, next) {
                Some(following) => {
                    links.push(Link::Cname {
                        owner: Some(target),
                        zone: next_zone,
                        node: next,
                    });
                    target = following;
                    current_zone = next_zone;
                }
                None => {
                    return Chain {
                        links,
                        end: ChainEnd::Data {
                            zone: next_zone,
                            node: next,
                            owner: target,
                        },
                        expansions,
                    };
                }
            }
        }
    }

    fn push_chain(
        &self,
        zones: &[BuildZone<'_>],
        encoder: &mut SectionEncoder,
        chain: &Chain,
    ) -> Result<(), String> {
        for link in &chain.links {
            match link {
                Link::Cname { owner, zone, node } => {
                    let Some(set) = zones[*zone].nodes[*node].set(RecordType::CNAME) else {
                        continue;
                    };
                    let owner = match owner {
                        Some(name) => Owner::Name(name),
                        None => Owner::Question,
                    };
                    self.push_signed(encoder, Part::Answer, owner, &zones[*zone], *node, set)?;
                }
                Link::Dname { zone, node } => {
                    let build = &zones[*zone];
                    let owner = &build.nodes[*node];
                    if let Some(set) = owner.set(RecordType::DNAME) {
                        self.push_signed(
                            encoder,
                            Part::Answer,
                            Owner::Name(&owner.name),
                            build,
                            *node,
                            set,
                        )?;
                    }
                }
                Link::Synthesized { owner, record, ttl } => {
                    encoder.push(Part::Answer, Owner::Name(owner), record, *ttl)?;
                }
            }
        }
        Ok(())
    }

    /// Encodes the replies of one node and returns the table node.
    fn node(
        &mut self,
        zones: &[BuildZone<'_>],
        zone_index: usize,
        node_index: usize,
        zone_id: u32,
        nodata: Reply,
        referrals: &FxHashMap<usize, u32>,
    ) -> Result<DraftNode, String> {
        let zone = &zones[zone_index];
        let node = &zone.nodes[node_index];
        let cut = zone.cut_of[node_index];
        let referral = cut
            .and_then(|cut| referrals.get(&cut).copied())
            .unwrap_or(NONE);
        let is_cut = cut == Some(node_index);
        let mut table_node = DraftNode {
            answers_start: self.answers.len() as u32,
            answers_len: 0,
            fallback: nodata,
            any_udp: nodata,
            any_tcp: nodata,
            wildcard: NONE,
            referral,
            is_cut,
            parent_cut: NONE,
            zone: zone_id,
            dname: NONE,
        };
        if referral != NONE && !is_cut {
            // Occluded by a cut: only the referral is ever answered.
            return Ok(table_node);
        }
        if let Some(set) = node.set(RecordType::DNAME)
            && let Some(RData::Unknown { rdata, .. }) =
                set.records.first().map(|record| &record.data)
        {
            // Names below are answered by substitution at query time. The
            // zone loader keeps the target as its wire form (hickory has
            // no DNAME type).
            table_node.dname = self.dnames.len() as u32;
            let mut signatures = Vec::new();
            let mut signature_count = 0u16;
            if self.signs(zone) {
                // The synthesized CNAME is never signed (RFC 6672 §5.3.1):
                // a validator checks the DNAME's signature and makes the
                // CNAME itself.
                for signature in zone.signatures(node_index, RecordType::DNAME) {
                    if let RData::Unknown { rdata, .. } = &signature.data {
                        signatures.extend_from_slice(&u16::from(RecordType::RRSIG).to_be_bytes());
                        signatures.extend_from_slice(&1u16.to_be_bytes());
                        signatures.extend_from_slice(&set.ttl.to_be_bytes());
                        signatures.extend_from_slice(&(rdata.anything.len() as u16).to_be_bytes());
                        signatures.extend_from_slice(&rdata.anything);
                        signature_count += 1;
                    }
                }
            }
            self.dnames.push(super::Dname {
                ttl: set.ttl,
                target: rdata.anything.clone().into_boxed_slice(),
                signatures: signatures.into_boxed_slice(),
                signature_count,
            });
        }
        for &(record_type, policy) in &node.steered {
            let reply = Reply {
                section: policy,
                rcode: STEERED,
                authoritative: true,
            };
            if self.signs(zone) {
                let proof = zone.zone.signing.as_ref().and_then(|signing| {
                    signing.nodata_proofs.iter().find(|proof| {
                        proof.record_type == record_type && *wire_lower(&proof.owner) == *node.wire
                    })
                });
                let mut section = SectionEncoder::new(&node.wire, 0);
                self.push_soa(zone, &mut section)?;
                if let Some(proof) = proof {
                    // The NSEC (or NSEC3, at its hash) and its RRSIGs.
                    for record in &proof.records {
                        section.push(
                            Part::Authority,
                            Owner::Name(&record.name),
                            record,
                            record.ttl,
                        )?;
                    }
                }
                let nodata = Reply {
                    section: section.finish(&mut self.sections)?,
                    rcode: rcode::NOERROR,
                    authoritative: true,
                };
                self.policy_nodata.push((policy, nodata));
            }
            self.answers.push((u16::from(record_type), reply));
            if record_type == RecordType::CNAME {
                // A steered CNAME answers every type, like a static one.
                table_node.fallback = reply;
                table_node.any_udp = reply;
                table_node.any_tcp = reply;
            }
        }
        let is_wildcard = node.wire.starts_with(b"\x01*");
        let reusable_from_label = usize::from(is_wildcard);
        let positive = |section| Reply {
            section,
            rcode: rcode::NOERROR,
            authoritative: true,
        };
        let encoder = || SectionEncoder::new(&node.wire, reusable_from_label);

        if node.set(RecordType::CNAME).is_some() && !is_cut {
            let chain = Self::chain(zones, zone_index, node_index);
            let mut only_cname = encoder();
            if let Some(set) = node.set(RecordType::CNAME) {
                self.push_signed(
                    &mut only_cname,
                    Part::Answer,
                    Owner::Question,
                    zone,
                    node_index,
                    set,
                )?;
            }
            let only_cname = positive(only_cname.finish(&mut self.sections)?);
            self.answers
                .push((u16::from(RecordType::CNAME), only_cname));
            table_node.any_udp = only_cname;
            table_node.any_tcp = only_cname;
            let mut fallback = encoder();
            self.push_chain(zones, &mut fallback, &chain)?;
            let mut fallback_rcode = rcode::NOERROR;
            // The SOA of a negative end is that of the zone the chain
            // ended in (RFC 2308 §2.1: the negative answer is that zone's).
            match &chain.end {
                ChainEnd::Data {
                    zone: end_zone,
                    node: end,
                    owner,
                } => {
                    let end_zone = &zones[*end_zone];
                    for set in &end_zone.nodes[*end].sets {
                        let mut section = encoder();
                        self.push_chain(zones, &mut section, &chain)?;
                        self.push_signed(
                            &mut section,
                            Part::Answer,
                            Owner::Name(owner),
                            end_zone,
                            *end,
                            set,
                        )?;
                        self.push_expansions(zones, &mut section, &chain, &mut Vec::new())?;
                        let reply = positive(section.finish(&mut self.sections)?);
                        self.answers.push((u16::from(set.record_type), reply));
                    }
                    self.push_soa(end_zone, &mut fallback)?;
                    let mut seen = Vec::new();
                    let proofs = end_zone.nodata(&end_zone.nodes[*end].wire);
                    self.push_proofs(&mut fallback, end_zone, proofs, &mut seen)?;
                    self.push_expansions(zones, &mut fallback, &chain, &mut seen)?;
                }
                ChainEnd::NxDomain {
                    zone: end_zone,
                    name,
                } => {
                    // RFC 6604: the rcode speaks for the last name in the chain.
                    fallback_rcode = rcode::NXDOMAIN;
                    self.push_soa(&zones[*end_zone], &mut fallback)?;
                    let mut seen = Vec::new();
                    let end_zone = &zones[*end_zone];
                    let proofs = end_zone.nonexistence(name);
                    self.push_proofs(&mut fallback, end_zone, proofs, &mut seen)?;
                    self.push_expansions(zones, &mut fallback, &chain, &mut seen)?;
                }
                ChainEnd::Stop => {
                    self.push_expansions(zones, &mut fallback, &chain, &mut Vec::new())?;
                }
            }
            table_node.fallback = Reply {
                section: fallback.finish(&mut self.sections)?,
                rcode: fallback_rcode,
                authoritative: true,
            };
        } else {
            // At a cut only DS is answered, from the parent side. The table
            // for queries without DO leaves RRSIG and NSEC to the other
            // one, which answers them (`RoutingTable::lookup`).
            let plain_of_signed = zone.signed && !self.signed;
            let answerable = |set: &&RecordSet<'_>| {
                (!is_cut || set.record_type == RecordType::DS)
                    && !(plain_of_signed
                        && matches!(set.record_type, RecordType::RRSIG | RecordType::NSEC))
            };
            let overlapped =
                self.overlap_signatures(zone, node_index, is_cut, reusable_from_label)?;
            for set in node.sets.iter().filter(answerable) {
                let proof = (set.record_type == RecordType::NSEC && !is_wildcard)
                    .then(|| self.nsec_proofs.get(&node_index).copied())
                    .flatten();
                let view = overlapped
                    .iter()
                    .find(|(record_type, _)| *record_type == set.record_type)
                    .map(|(_, section)| *section);
                let section = match (proof, view) {
                    // The proof's records, counted as answers: its names
                    // point into the question at the zone's apex, which
                    // ends this name too.
                    (Some(proof), _) => {
                        let mut section = self.sections.list[proof as usize];
                        section.counts = [section.counts[1], 0, 0];
                        self.sections.list.push(section);
                        (self.sections.list.len() - 1) as u32
                    }
                    (None, Some(view)) => view,
                    (None, None) => {
                        let mut section = encoder();
                        self.push_signed(
                            &mut section,
                            Part::Answer,
                            Owner::Question,
                            zone,
                            node_index,
                            set,
                        )?;
                        section.finish(&mut self.sections)?
                    }
                };
                self.answers
                    .push((u16::from(set.record_type), positive(section)));
            }
            // NODATA (the shared one, SOA and its RRSIGs) gets its proof per
            // query: the name's NSEC, or the one covering an empty
            // non-terminal, found as an NXDOMAIN's are. A section per name
            // would hold the same SOA a million times.
            let answered = self.answers.len() - table_node.answers_start as usize;
            // ANY leaves out what signing made: RRSIGs come with each
            // RRset, and the NSEC is for proofs.
            let in_any = |set: &&RecordSet<'_>| {
                !matches!(set.record_type, RecordType::RRSIG | RecordType::NSEC)
            };
            let any_sets: Vec<&RecordSet<'_>> =
                node.sets.iter().filter(answerable).filter(in_any).collect();
            if answered == 0 {
                // An empty non-terminal: ANY is NODATA like everything else.
            } else if any_sets.len() <= 1 {
                let only = any_sets.first().map(|set| u16::from(set.record_type));
                let start = table_node.answers_start as usize;
                table_node.any_tcp = self.answers[start..]
                    .iter()
                    .find(|(qtype, _)| Some(*qtype) == only)
                    .unwrap_or(&self.answers[start])
                    .1;
            } else {
                let mut everything = encoder();
                for set in any_sets {
                    self.push_signed(
                        &mut everything,
                        Part::Answer,
                        Owner::Question,
                        zone,
                        node_index,
                        set,
                    )?;
                }
                table_node.any_tcp = positive(everything.finish(&mut self.sections)?);
            }
            if answered > 0 {
                // RFC 8482 §4.2: over UDP one RRset is enough; the lowest type code.
                table_node.any_udp = self.answers[table_node.answers_start as usize].1;
            }
        }
        table_node.answers_len = (self.answers.len() - table_node.answers_start as usize) as u16;
        self.answers[table_node.answers_start as usize..].sort_by_key(|(qtype, _)| *qtype);
        Ok(table_node)
    }

    /// For a signed name with one RRset whose data holds no name (A, AAAA,
    /// TXT: the most of any large zone), the answer to its type and the
    /// answer to a query for RRSIG as two views of one run of bytes: the
    /// RRset, its RRSIGs, then the NSEC's RRSIGs. Each RRSIG is held once
    /// instead of twice. Every owner is the question (`0xC00C`) and no
    /// RDATA compresses, so neither view has a pointer to fix up. Returns
    /// the sections by the type they answer; none when the name is not
    /// of that shape.
    fn overlap_signatures(
        &mut self,
        zone: &BuildZone<'_>,
        node_index: usize,
        is_cut: bool,
        reusable_from_label: usize,
    ) -> Result<Vec<(RecordType, u32)>, String> {
        let node = &zone.nodes[node_index];
        let data: Vec<&RecordSet<'_>> = node
            .sets
            .iter()
            .filter(|set| !matches!(set.record_type, RecordType::RRSIG | RecordType::NSEC))
            .collect();
        let shape = self.signs(zone)
            && !is_cut
            && node.steered.is_empty()
            && node.set(RecordType::RRSIG).is_some()
            && node.set(RecordType::NSEC).is_some()
            && matches!(
                data.as_slice(),
                [set] if matches!(set.record_type, RecordType::A | RecordType::AAAA | RecordType::TXT)
            );
        if !shape {
            return Ok(Vec::new());
        }
        let set = data[0];
        let mut run = SectionEncoder::new(&node.wire, reusable_from_label);
        run.push_set(Part::Answer, Owner::Question, &set.records, set.ttl)?;
        let data_bytes = run.written();
        let data_count = run.counts()[0];
        let own = zone.signatures(node_index, set.record_type);
        run.push_set(Part::Answer, Owner::Question, &own, set.ttl)?;
        let answer_bytes = run.written();
        let answer_count = run.counts()[0];
        let nsec = zone.signatures(node_index, RecordType::NSEC);
        let nsec_ttl = node.set(RecordType::NSEC).map_or(0, |set| set.ttl);
        // Each RRSIG at its own RRset's TTL (RFC 4034 §3), as they answer
        // a query for RRSIG.
        for signature in &nsec {
            run.push(Part::Answer, Owner::Question, signature, nsec_ttl)?;
        }
        let whole = run.finish(&mut self.sections)?;
        let section = self.sections.list[whole as usize];
        if section.fixup_count != 0 {
            return Ok(Vec::new());
        }
        let answer = Section {
            length: answer_bytes as u16,
            counts: [answer_count, 0, 0],
            ..section
        };
        let signatures = Section {
            start: section.start + data_bytes as u32,
            length: section.length - data_bytes as u16,
            counts: [section.counts[0] - data_count, 0, 0],
            ..section
        };
        self.sections.list.push(answer);
        let answer_id = (self.sections.list.len() - 1) as u32;
        self.sections.list.push(signatures);
        let signatures_id = (self.sections.list.len() - 1) as u32;
        Ok(vec![
            (set.record_type, answer_id),
            (RecordType::RRSIG, signatures_id),
        ])
    }

    fn push_soa(&self, zone: &BuildZone<'_>, encoder: &mut SectionEncoder) -> Result<(), String> {
        let (soa, ttl) = zone.soa()?;
        encoder.push(Part::Authority, Owner::Name(&zone.zone.origin), soa, ttl)?;
        if self.signs(zone)
            && let Some(apex) = zone.apex_node()
        {
            // The RRSIG's own TTL follows the SOA's negative TTL.
            let signatures = zone.signatures(apex, RecordType::SOA);
            encoder.push_set(
                Part::Authority,
                Owner::Name(&zone.zone.origin),
                &signatures,
                ttl,
            )?;
        }
        Ok(())
    }

    /// Pushes the wildcard proofs a chain needs.
    fn push_expansions(
        &self,
        zones: &[BuildZone<'_>],
        encoder: &mut SectionEncoder,
        chain: &Chain,
        seen: &mut Vec<(usize, Proof)>,
    ) -> Result<(), String> {
        for (zone, wire) in &chain.expansions {
            let zone = &zones[*zone];
            self.push_proofs(encoder, zone, zone.expansion(wire), seen)?;
        }
        Ok(())
    }
}

/// Everything a table is compiled from besides the zones.
pub struct Inputs<'input> {
    /// The steering part of the config.
    pub steering: &'input SteeringConfig,
    /// The GeoIP databases, when `[geoip]` is configured.
    pub geo: Option<&'input GeoDatabase>,
    /// Operators' drains and overrides, carried into the new table.
    pub admin: &'input AdminState,
    /// The config file as the operator named it, for messages.
    pub config_file: &'input std::path::Path,
    /// Where each steered name's decision counters are: the server's
    /// long-lived registry, so that counters keep their slots across
    /// reloads, or a throwaway one for a dry run.
    pub decisions: &'input DecisionRegistry,
    /// Latency data for `latency` steps (none: they order by distance).
    pub latency: Option<&'input LatencySnapshot>,
    /// Alias pools' resolved addresses (none: every alias pool is empty).
    pub aliases: Option<&'input crate::alias::AliasAddresses>,
    /// `server.nsid`: the identifier answered to NSID queries (empty: none).
    pub nsid: &'input [u8],
    /// `server.version`: answered to CHAOS `version.bind` (empty: none).
    pub version: &'input [u8],
    /// `[rate_limit]`, when configured.
    pub rate_limit: Option<&'input RateLimitConfig>,
    /// `server.cookie_secret_file`'s secrets (none: the process's own).
    pub cookie_secrets: Option<CookieSecrets>,
    /// `server.proxy_protocol_from`.
    pub proxy_from: &'input [crate::config::steering::IpNet],
}

/// The steering part of a table: every steered name's compiled policy, and
/// the endpoint health they share. Errors name the config key path.
fn compile_steering(inputs: &Inputs<'_>) -> Result<(Vec<CompiledPolicy>, HealthView), Vec<String>> {
    let steering = inputs.steering;
    let needs_geo = steering.steered.iter().any(|steered| {
        steered.policy.iter().any(|step| {
            matches!(
                step,
                Step::Geofence(_)
                    | Step::Geo { .. }
                    | Step::Asn(_)
                    | Step::Nearest { .. }
                    | Step::Latency { .. }
            )
        })
    });
    let maps = match inputs.geo.filter(|_| needs_geo) {
        // Latency recompiles come back to the same database every few
        // seconds: keep its partition for them (tens of megabytes for
        // GeoLite2-City, against seconds of CPU per recompile).
        Some(geo) if steering.uses_latency() => geo.location_maps(),
        // Nothing else compiles this database again (a reload opens it
        // anew): build, use, drop.
        Some(geo) => Arc::new(LocationMaps::build(geo)),
        None => Arc::new(LocationMaps::nowhere()),
    };
    compile_policies(
        steering,
        &maps,
        inputs.admin,
        inputs.config_file,
        inputs.decisions,
        inputs.latency,
        inputs.aliases,
    )
}

pub(super) fn compile(
    zones: &[Zone],
    inputs: &Inputs<'_>,
    generation: u64,
) -> Result<RoutingTable, Vec<String>> {
    let mut errors = Vec::new();
    let steering = inputs.steering;
    let config_file = inputs.config_file.display();
    let (policies, health) = compile_steering(inputs)?;
    // Each steered name goes to the deepest zone that holds it.
    let mut per_zone: Vec<Vec<Steered<'_>>> = zones.iter().map(|_| Vec::new()).collect();
    for (index, steered) in steering.steered.iter().enumerate() {
        let Some(zone_index) = crate::zone::holding_zone(zones, &steered.name) else {
            errors.push(format!(
                "{config_file}: {}: {} is not inside any loaded zone",
                steered.key_path, steered.name
            ));
            continue;
        };
        per_zone[zone_index].push(Steered {
            name: &steered.name,
            record_type: steered.record_type.record_type(),
            policy: index as u32,
        });
    }
    let key_paths: Vec<String> = steering
        .steered
        .iter()
        .map(|steered| format!("{config_file}: {}", steered.key_path))
        .collect();
    let key_paths: Vec<&str> = key_paths.iter().map(String::as_str).collect();
    let mut builds: Vec<BuildZone<'_>> = zones
        .iter()
        .zip(&per_zone)
        .map(|(zone, steered)| BuildZone::new(zone, steered))
        .collect();
    for build in &builds {
        errors.extend(build.steered_conflicts(&key_paths));
    }
    // Deeper apexes last, so a child zone's names win over the parent's glue.
    builds.sort_by(|left, right| {
        left.zone
            .origin
            .num_labels()
            .cmp(&right.zone.origin.num_labels())
            .then_with(|| left.apex.cmp(&right.apex))
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    let data = compile_data(zones, &builds, inputs, false)?;
    // Queries with the DO bit get a table of their own, with the RRSIGs
    // and NSEC proofs in its sections: the table without them stays as
    // small and fast as it was.
    let signed = if builds.iter().any(|build| build.signed) {
        Some(Arc::new(compile_data(zones, &builds, inputs, true)?))
    } else {
        None
    };
    Ok(RoutingTable {
        generation,
        data: Arc::new(data),
        signed,
        policies,
        health,
        notify: Arc::default(),
        accepts_updates: false,
        outbound: None,
    })
}

/// Compiles the zone part of a table from the built zones: for queries
/// without DO (`signed` false) or with it.
fn compile_data(
    zones: &[Zone],
    builds: &[BuildZone<'_>],
    inputs: &Inputs<'_>,
    signed: bool,
) -> Result<ZoneData, Vec<String>> {
    let mut errors = Vec::new();
    let steering = inputs.steering;
    let total_nodes: usize = builds.iter().map(|build| build.nodes.len()).sum();
    let mut compiler = Compiler {
        sections: Sections::default(),
        answers: Vec::new(),
        dnames: Vec::new(),
        signed,
        policy_nodata: Vec::new(),
        nsec_proofs: FxHashMap::default(),
    };
    let mut nsec = Vec::with_capacity(builds.len());
    let mut signers = Vec::with_capacity(builds.len());
    let mut index = NameIndex::with_capacity(total_nodes);
    let mut nodes = Vec::with_capacity(total_nodes);
    let mut zone_replies = Vec::with_capacity(builds.len());
    let mut zone_slots = Vec::with_capacity(builds.len());
    let mut seen_apexes = HashSet::new();

    for (build_index, build) in builds.iter().enumerate() {
        if !seen_apexes.insert(build.apex.clone()) {
            errors.push(format!(
                "{}: zone {} is loaded twice",
                build.zone.file.display(),
                build.zone.origin
            ));
            continue;
        }
        let result = (|| -> Result<(), String> {
            let zone_id = zone_replies.len() as u32;
            let negative = compiler.negative(build)?;
            let nodata = Reply {
                section: negative,
                rcode: rcode::NOERROR,
                authoritative: true,
            };
            let nxdomain = Reply {
                section: negative,
                rcode: rcode::NXDOMAIN,
                authoritative: true,
            };
            let mut referrals = FxHashMap::default();
            for node in 0..build.nodes.len() {
                if build.cut_of[node] == Some(node) {
                    referrals.insert(node, compiler.referral(build, node)?);
                }
            }
            compiler.nsec_proofs.clear();
            if compiler.signs(build) && build.nsec3.is_empty() {
                for (_, node) in &build.nsec_order {
                    let mut encoder = SectionEncoder::against_question(&build.apex);
                    compiler.push_nsec(&mut encoder, build, *node)?;
                    let id = encoder.finish(&mut compiler.sections)?;
                    compiler.nsec_proofs.insert(*node, id);
                }
            }
            let first_node = nodes.len() as u32;
            for node in 0..build.nodes.len() {
                nodes.push(compiler.node(
                    builds,
                    build_index,
                    node,
                    zone_id,
                    nodata,
                    &referrals,
                )?);
            }
            for (local, node) in build.nodes.iter().enumerate() {
                let id = first_node + local as u32;
                if let Some(wildcard) = build.wildcard_of(&node.wire) {
                    nodes[id as usize].wildcard = first_node + wildcard as u32;
                }
                if *node.wire == *build.apex
                    && let Some(parent) = index.get(&node.wire)
                    && nodes[parent as usize].is_cut
                {
                    // A child zone's apex replaces the parent's cut in the
                    // index; DS stays the parent's to answer.
                    nodes[id as usize].parent_cut = parent;
                }
                index.replace(&node.wire, id);
            }
            zone_replies.push((nxdomain, nodata));
            zone_slots.push(inputs.decisions.zone_slot(&build.zone.origin.to_ascii()));
            let mut denial = Denial::default();
            if compiler.signs(build) && !build.nsec3.is_empty() {
                let mut index = Nsec3Index::default();
                for (entry, nsec3) in build.nsec3.iter().enumerate() {
                    let mut encoder = SectionEncoder::against_question(&build.apex);
                    compiler.push_proof(&mut encoder, build, Proof::Nsec3(entry))?;
                    let id = encoder.finish(&mut compiler.sections)?;
                    index.push(nsec3.hash, compiler.sections.list[id as usize]);
                }
                denial = Denial::Nsec3(index);
            } else if compiler.signs(build) {
                let mut index = NsecIndex::default();
                for (key, node) in &build.nsec_order {
                    let id = compiler.nsec_proofs[node];
                    index.push(key, compiler.sections.list[id as usize]);
                }
                denial = Denial::Nsec(index);
            }
            nsec.push(denial);
            signers.push(build.zone.signer.clone().filter(|_| compiler.signs(build)));
            Ok(())
        })();
        if let Err(error) = result {
            errors.push(error);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut summaries: Vec<ZoneSummary> = zones
        .iter()
        .map(|zone| ZoneSummary {
            name: zone.origin.to_ascii(),
            serial: zone.serial,
            // The records the operator wrote, not those signing added.
            records: zone.records.len() - zone.signing.as_ref().map_or(0, |signing| signing.added),
            file: zone.file.clone(),
            dnssec: zone.signing.clone(),
        })
        .collect();
    summaries.sort_by(|left, right| left.name.cmp(&right.name));
    let mut packed = layout(&compiler, &nodes, &zone_replies);
    let mut policy_nodata = vec![NONE; steering.steered.len()];
    for &(policy, reply) in &compiler.policy_nodata {
        if let Some(slot) = policy_nodata.get_mut(policy as usize) {
            *slot = packed.replies.len() as u32;
            packed.replies.push(Prepared {
                section: compiler.sections.list[reply.section as usize],
                rcode: reply.rcode,
                authoritative: reply.authoritative,
            });
        }
    }
    Ok(ZoneData {
        summaries,
        index,
        nodes: packed.nodes,
        answers: packed.answers,
        replies: packed.replies,
        zones: packed.zones,
        section_bytes: compiler.sections.bytes,
        fixups: compiler.sections.fixups,
        ecs_limits: (steering.ecs.max_source_v4, steering.ecs.max_source_v6),
        nsid: inputs.nsid.into(),
        version: inputs.version.into(),
        cookie_secrets: inputs.cookie_secrets.unwrap_or(CookieSecrets {
            current: crate::dns::cookie::process_secret(),
            previous: None,
        }),
        rate_limit: inputs.rate_limit.cloned(),
        proxy_from: inputs.proxy_from.into(),
        dnames: compiler.dnames.into_boxed_slice(),
        zone_slots,
        nsec,
        signers,
        policy_nodata,
    })
}

/// The query-path form of the compiled nodes.
struct Packed {
    nodes: Vec<Node>,
    answers: Vec<(u16, Prepared)>,
    replies: Vec<Prepared>,
    zones: Vec<ZoneReplies>,
}

/// Packs draft nodes for the query path: each node's first answer inline,
/// every other reply interned once in a shared table (a million names
/// share one NODATA reply).
fn layout(compiler: &Compiler, drafts: &[DraftNode], zones: &[(Reply, Reply)]) -> Packed {
    let prepare = |reply: Reply| Prepared {
        section: if reply.rcode == STEERED {
            // A steered reply carries its policy id where a section would be.
            Section {
                start: reply.section,
                ..Section::default()
            }
        } else {
            compiler.sections.list[reply.section as usize]
        },
        rcode: reply.rcode,
        authoritative: reply.authoritative,
    };
    let mut replies = Vec::new();
    let mut interned: FxHashMap<Reply, u32> = FxHashMap::default();
    let mut intern = |reply: Reply| -> u32 {
        *interned.entry(reply).or_insert_with(|| {
            replies.push(prepare(reply));
            (replies.len() - 1) as u32
        })
    };
    let mut answers = Vec::new();
    let mut nodes = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let start = draft.answers_start as usize;
        let own = &compiler.answers[start..start + usize::from(draft.answers_len)];
        let first = own.first().copied();
        let same_as_first = |reply: Reply| first.is_some_and(|(_, first)| first == reply);
        let answers_start = answers.len() as u32;
        answers.extend(
            own.iter()
                .skip(1)
                .map(|&(qtype, reply)| (qtype, prepare(reply))),
        );
        nodes.push(Node {
            first_type: first.map_or(0, |(qtype, _)| qtype),
            more_answers: own.len().saturating_sub(1) as u16,
            answers_start,
            // With no answers, the first slot holds the fallback, so that
            // even query type 0 gets the NODATA it deserves.
            first: prepare(first.map_or(draft.fallback, |(_, reply)| reply)),
            fallback: intern(draft.fallback),
            any_udp: if same_as_first(draft.any_udp) {
                FIRST
            } else {
                intern(draft.any_udp)
            },
            any_tcp: if same_as_first(draft.any_tcp) {
                FIRST
            } else {
                intern(draft.any_tcp)
            },
            referral: if draft.referral == NONE {
                NONE
            } else {
                intern(Reply {
                    section: draft.referral,
                    rcode: rcode::NOERROR,
                    authoritative: false,
                })
            },
            wildcard: draft.wildcard,
            parent_cut: draft.parent_cut,
            zone: draft.zone,
            is_cut: draft.is_cut,
            dname: draft.dname,
        });
    }
    let zones = zones
        .iter()
        .map(|&(nxdomain, nodata)| ZoneReplies {
            nxdomain: intern(nxdomain),
            nodata: intern(nodata),
        })
        .collect();
    Packed {
        nodes,
        answers,
        replies,
        zones,
    }
}

impl RoutingTable {
    /// Compiles validated zones into a table stamped with `generation`.
    /// Errors are whole lines naming the zone file.
    pub fn compile(
        zones: &[Zone],
        inputs: &Inputs<'_>,
        generation: u64,
    ) -> Result<Self, Vec<String>> {
        compile(zones, inputs, generation)
    }

    /// A table with this table's zones and the steering decisions compiled
    /// anew from `inputs` (new latency data, say), stamped `generation`.
    /// The zone part is shared, not rebuilt: `inputs` must carry the config
    /// this table was compiled from, which the count of steered names
    /// checks.
    pub fn recompile_steering(
        &self,
        inputs: &Inputs<'_>,
        generation: u64,
    ) -> Result<Self, Vec<String>> {
        if inputs.steering.steered.len() != self.policies.len() {
            return Err(vec![format!(
                "internal: the table has {} steered names and the config {}; reload to recompile everything",
                self.policies.len(),
                inputs.steering.steered.len()
            )]);
        }
        let (policies, health) = compile_steering(inputs)?;
        Ok(RoutingTable {
            generation,
            data: Arc::clone(&self.data),
            signed: self.signed.clone(),
            policies,
            health,
            notify: Arc::clone(&self.notify),
            accepts_updates: self.accepts_updates,
            outbound: self.outbound.clone(),
        })
    }

    /// Compiles zones alone, with no steered names (tests, fuzzing, tools).
    pub fn compile_zones(zones: &[Zone], generation: u64) -> Result<Self, Vec<String>> {
        let steering = SteeringConfig::default();
        let admin = AdminState::default();
        let decisions = DecisionRegistry::default();
        let inputs = Inputs {
            steering: &steering,
            geo: None,
            admin: &admin,
            config_file: std::path::Path::new("steer.toml"),
            decisions: &decisions,
            latency: None,
            aliases: None,
            nsid: &[],
            version: &[],
            rate_limit: None,
            cookie_secrets: None,
            proxy_from: &[],
        };
        compile(zones, &inputs, generation)
    }
}
