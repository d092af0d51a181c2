//! The routing table: every zone compiled into pre-encoded answers.
//!
//! Built on the control plane by [`RoutingTable::compile`], published with
//! `arc-swap` by the control task, read by the data plane through
//! [`RoutingTable::lookup`]. Immutable once built.
//!
//! Every name of every zone is a node in one [`index::NameIndex`] (empty
//! non-terminals included, so NODATA and NXDOMAIN are told apart). A node
//! holds, per query type, the id of a pre-encoded [`Section`]; CNAME chains
//! inside the zone, referrals with glue, negative answers with their SOA and
//! wildcard synthesis are all resolved at compile time. A lookup is one hash
//! probe for a name that exists, plus one per label for a name that does
//! not, and never allocates.

mod compile;
mod encode;
mod index;
mod nsec;
mod steer;

pub use compile::Inputs;
pub use steer::{CompiledPolicy, Selected};

use crate::health::HealthView;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::steering::IpNet;
use crate::config::{CookieSecrets, RateLimitConfig};
use crate::dns::Transport;
use crate::metrics::ZoneSlot;
use index::NameIndex;

pub use encode::wire_lower;

const HEADER_LEN: usize = 12;
const NONE: u32 = u32::MAX;

/// Response codes used by the table.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
}

/// One zone as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSummary {
    /// Apex, absolute, e.g. `example.test.`.
    pub name: String,
    /// SOA serial.
    pub serial: u32,
    /// Number of records loaded from the file.
    pub records: usize,
    /// The zone file.
    pub file: PathBuf,
    /// How the zone was signed, when it was.
    pub dnssec: Option<crate::dnssec::Signing>,
}

/// Marks a [`Prepared`] reply as steered: its `section.start` is a policy id.
const STEERED: u8 = 0xFF;

/// A pre-encoded run of answer, authority and additional records.
#[derive(Clone, Copy, Debug, Default)]
struct Section {
    start: u32,
    length: u16,
    fixup_start: u32,
    fixup_count: u16,
    /// Records in answer, authority, additional.
    counts: [u16; 3],
    /// Length of the question name the section was encoded for.
    assumed_question_len: u8,
}

/// Arenas holding every section of a table.
#[derive(Default)]
struct Sections {
    list: Vec<Section>,
    bytes: Vec<u8>,
    fixups: Vec<u16>,
}

/// A compiled response during compilation: a section id plus rcode and
/// whether it is authoritative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Reply {
    section: u32,
    rcode: u8,
    authoritative: bool,
}

/// A response as the data plane reads it: the section's metadata inline, so
/// that answering costs no further lookup before the bytes.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    section: Section,
    rcode: u8,
    authoritative: bool,
}

/// Marks `Node::any_udp`/`any_tcp` as "the same as the first answer".
const FIRST: u32 = u32::MAX - 1;

/// A name in a zone, laid out for the query path: the index bucket gives
/// its id, and for the first (usually only) RRset this one cache line is all
/// a lookup reads before the answer bytes.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Node {
    /// Type of the inline first answer; 0 when the name answers no type.
    first_type: u16,
    /// Further answers: a range of `RoutingTable::answers`, sorted by type.
    more_answers: u16,
    answers_start: u32,
    first: Prepared,
    /// When the query type has no answer: NODATA, or the CNAME chain
    /// (index into `RoutingTable::replies`).
    fallback: u32,
    /// Answers to ANY (RFC 8482): one RRset over UDP, everything over TCP;
    /// an index into `replies`, or `FIRST`.
    any_udp: u32,
    any_tcp: u32,
    /// Referral when the node is at or below a zone cut (index into
    /// `replies`), or NONE.
    referral: u32,
    /// Node of `*.<this name>`, or NONE.
    wildcard: u32,
    /// At the apex of a zone whose parent zone we also serve: the parent's
    /// cut node, which answers DS (RFC 4035 §3.1.4.1). NONE otherwise.
    parent_cut: u32,
    /// Zone this node belongs to.
    zone: u32,
    /// True when this node is the cut itself (DS is answered here, by the parent).
    is_cut: bool,
    /// When the node owns a DNAME: its index in `ZoneData::dnames`, else NONE.
    dname: u32,
}

/// A DNAME (RFC 6672): the names below its owner are answered by
/// substituting `target` for the owner, at query time.
#[derive(Clone, Debug)]
pub struct Dname {
    /// The DNAME's TTL, which the synthesized CNAME takes too.
    pub ttl: u32,
    /// The target, in wire form as the zone file wrote it.
    pub target: Box<[u8]>,
    /// In a signed zone, for queries with DO: the DNAME's RRSIGs, each as
    /// its type, class, TTL, RDLENGTH and RDATA (the owner is written at
    /// query time, like the DNAME's). Empty otherwise.
    pub signatures: Box<[u8]>,
    /// How many RRSIGs `signatures` holds.
    pub signature_count: u16,
}

/// Per-zone replies shared by all its names.
#[derive(Clone, Copy, Debug)]
struct ZoneReplies {
    /// Index into `RoutingTable::replies`.
    nxdomain: u32,
    /// NODATA, for steered names whose policy leaves no answer.
    nodata: u32,
}

/// The outcome of a lookup, borrowed from the table.
#[derive(Clone, Copy, Debug)]
pub enum Lookup<'table> {
    /// The name is in none of our zones.
    Refused,
    /// An answer (positive, negative or referral) from the table.
    Answer(Answer<'table>),
    /// A steered name: the policy chooses per client.
    Steered(SteeredLookup<'table>),
    /// A name below a DNAME's owner: synthesized per query (RFC 6672).
    Dname(DnameLookup<'table>),
}

/// A DNAME substitution to make.
#[derive(Clone, Copy, Debug)]
pub struct DnameLookup<'table> {
    /// The DNAME.
    pub dname: &'table Dname,
    /// Where the DNAME's owner starts in the query name (its wire form):
    /// the bytes before are the labels kept.
    pub owner_at: usize,
    /// Which DNAME, for rate limiting: every name below it is one answer.
    pub key: u32,
    /// The counter of the owner's zone.
    pub zone: Option<ZoneSlot>,
}

/// A steered answer to make: the policy, the health it reads, and the
/// zone's NODATA for when the policy leaves nothing.
#[derive(Clone, Copy, Debug)]
pub struct SteeredLookup<'table> {
    /// The compiled policy.
    pub policy: &'table CompiledPolicy,
    /// Health of this table's endpoints.
    pub health: &'table HealthView,
    /// The zone's NODATA answer.
    pub nodata: Answer<'table>,
    /// The policy's number: which steered name this is, for rate limiting.
    pub key: u32,
    /// The counter of the name's zone.
    pub zone: Option<ZoneSlot>,
    /// Signs the answer, when the zone is signed and the query has DO.
    pub signer: Option<&'table crate::dnssec::OnlineSigner>,
}

/// Pre-encoded records to append after the question.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'table> {
    /// Response code (NOERROR or NXDOMAIN).
    pub rcode: u8,
    /// Whether to set AA (false for referrals).
    pub authoritative: bool,
    /// Record counts: answer, authority, additional.
    pub counts: [u16; 3],
    bytes: &'table [u8],
    fixups: &'table [u16],
    assumed_question_len: u8,
    /// Where the section starts in the table's bytes: the same for every
    /// name that gets this section, and across recompiles of the same
    /// zones.
    key: u32,
    /// The counter of the zone the answer comes from.
    pub zone: Option<ZoneSlot>,
    /// NSEC or NSEC3 proofs chosen for the query name (signed zones, DO
    /// queries): appended to the authority section, after `bytes`.
    proofs: [Proof<'table>; 3],
}

/// A proof section: its bytes, and its pointers into the question, made
/// for the zone's apex as the question.
#[derive(Clone, Copy, Debug, Default)]
struct Proof<'table> {
    bytes: &'table [u8],
    fixups: &'table [u16],
    assumed_question_len: u8,
}

impl Answer<'_> {
    /// Which response this is, for rate limiting: one RRset, one zone's
    /// NXDOMAIN, one wildcard's records, one referral.
    #[inline]
    pub fn key(&self) -> u32 {
        self.key
    }

    /// Length the section adds to the response.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
            + self
                .proofs
                .iter()
                .map(|proof| proof.bytes.len())
                .sum::<usize>()
    }

    /// True when the section holds no records.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the section to `out`, moving its compression pointers for a
    /// question name of `question_len` bytes.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>, question_len: usize) {
        append(
            out,
            (self.bytes, self.fixups, self.assumed_question_len),
            question_len,
        );
        // Proof sections point into the question only: they go anywhere.
        for proof in self.proofs {
            append(
                out,
                (proof.bytes, proof.fixups, proof.assumed_question_len),
                question_len,
            );
        }
    }
}

impl<'table> Answer<'table> {
    /// This answer with the NSEC proof `proof` appended (from the same
    /// table), unless it is already there.
    #[inline]
    fn with_proof(mut self, data: &'table ZoneData, proof: &Section) -> Self {
        let start = proof.start as usize;
        let bytes = &data.section_bytes[start..start + usize::from(proof.length)];
        // One record can prove two things: it goes once.
        if self
            .proofs
            .iter()
            .any(|known| known.bytes.as_ptr() == bytes.as_ptr())
        {
            return self;
        }
        let Some(slot) = self.proofs.iter().position(|known| known.bytes.is_empty()) else {
            return self;
        };
        let fixup_start = proof.fixup_start as usize;
        self.proofs[slot] = Proof {
            bytes,
            fixups: &data.fixups[fixup_start..fixup_start + usize::from(proof.fixup_count)],
            assumed_question_len: proof.assumed_question_len,
        };
        self.counts[1] += proof.counts[1];
        self
    }
}

/// Appends a pre-encoded section (bytes, pointer offsets, and the
/// question length it was made for) to `out`, moving its compression
/// pointers for a question of `question_len` bytes.
#[inline]
fn append(out: &mut Vec<u8>, (bytes, fixups, assumed): (&[u8], &[u16], u8), question_len: usize) {
    let start = out.len();
    out.extend_from_slice(bytes);
    let delta = question_len.saturating_sub(usize::from(assumed)) as u16;
    if delta != 0 {
        for &fixup in fixups {
            let at = start + usize::from(fixup);
            let pointer = u16::from_be_bytes([out[at], out[at + 1]]) + delta;
            out[at..at + 2].copy_from_slice(&pointer.to_be_bytes());
        }
    }
}

/// The compiled, immutable answer table. See the module docs.
pub struct RoutingTable {
    generation: u64,
    /// Everything compiled from the zone files, shared with the next
    /// generation when only the steering decisions change.
    data: Arc<ZoneData>,
    /// The same for queries with the DO bit, when some zone is signed:
    /// its sections carry RRSIGs and NSEC proofs.
    signed: Option<Arc<ZoneData>>,
    policies: Vec<CompiledPolicy>,
    health: HealthView,
    /// The secondary zones a primary may send NOTIFY for; set by the
    /// control plane before the table is published.
    notify: Arc<crate::transfer::NotifyTargets>,
    /// Whether UPDATE messages go to the control plane.
    accepts_updates: bool,
    /// The zones secondaries may transfer, with `[transfer]`.
    outbound: Option<Arc<crate::transfer::outbound::Outbound>>,
}

/// The part of a table compiled from the zone files and the config's
/// shape: steered names are in it as policy ids, not as decisions.
struct ZoneData {
    /// Per zone (by number): its NSEC proofs, in canonical order; empty
    /// for an unsigned zone and in the table for queries without DO.
    nsec: Vec<nsec::Denial>,
    /// Per zone: what signs its steered answers (signed zones, in the
    /// table for queries with DO).
    signers: Vec<Option<Arc<crate::dnssec::OnlineSigner>>>,
    /// Per steered policy: its NODATA reply (index into `replies`) when
    /// its zone is signed and this table is for DO; NONE: the zone's.
    policy_nodata: Vec<u32>,
    summaries: Vec<ZoneSummary>,
    index: NameIndex,
    nodes: Vec<Node>,
    answers: Vec<(u16, Prepared)>,
    replies: Vec<Prepared>,
    zones: Vec<ZoneReplies>,
    /// Section bytes and pointer fixups (the metadata lives in the replies).
    section_bytes: Vec<u8>,
    fixups: Vec<u16>,
    ecs_limits: (u8, u8),
    /// `server.nsid` (RFC 5001); empty: none is sent.
    nsid: Box<[u8]>,
    /// `server.version`, for CHAOS `version.bind`; empty: REFUSED.
    version: Box<[u8]>,
    /// The key of the server cookies this process issues (RFC 9018).
    cookie_secrets: CookieSecrets,
    /// `[rate_limit]`: the limits UDP responses are held to.
    rate_limit: Option<RateLimitConfig>,
    /// `server.proxy_protocol_from`: the proxies whose queries carry a
    /// PROXY v2 header.
    proxy_from: Box<[IpNet]>,
    /// The DNAMEs, by the index their owner nodes hold.
    dnames: Box<[Dname]>,
    /// Each zone's counter (by zone number), from the long-lived registry.
    zone_slots: Vec<ZoneSlot>,
}

/// Record type codes the lookup treats specially.
const TYPE_DS: u16 = 43;
const TYPE_RRSIG: u16 = 46;
const TYPE_NSEC: u16 = 47;
const TYPE_ANY: u16 = 255;

impl RoutingTable {
    /// A table with no zones: every query is REFUSED.
    pub fn empty() -> Self {
        Self {
            generation: 0,
            data: Arc::new(ZoneData {
                nsec: Vec::new(),
                signers: Vec::new(),
                policy_nodata: Vec::new(),
                summaries: Vec::new(),
                index: NameIndex::with_capacity(0),
                nodes: Vec::new(),
                answers: Vec::new(),
                replies: Vec::new(),
                zones: Vec::new(),
                section_bytes: Vec::new(),
                fixups: Vec::new(),
                ecs_limits: (24, 56),
                nsid: Box::default(),
                version: Box::default(),
                cookie_secrets: CookieSecrets {
                    current: crate::dns::cookie::process_secret(),
                    previous: None,
                },
                rate_limit: None,
                proxy_from: Box::default(),
                dnames: Box::default(),
                zone_slots: Vec::new(),
            }),
            signed: None,
            policies: Vec::new(),
            health: HealthView::default(),
            notify: Arc::default(),
            accepts_updates: false,
            outbound: None,
        }
    }

    /// The zones served to secondaries (AXFR), when `[transfer]` is set.
    pub fn outbound(&self) -> Option<&Arc<crate::transfer::outbound::Outbound>> {
        self.outbound.as_ref()
    }

    /// Sets the zones served to secondaries, before the table is published.
    pub fn set_outbound(&mut self, outbound: Option<Arc<crate::transfer::outbound::Outbound>>) {
        self.outbound = outbound;
    }

    /// The secondary zones NOTIFY is accepted for (RFC 1996).
    #[inline]
    pub fn notify_targets(&self) -> &crate::transfer::NotifyTargets {
        &self.notify
    }

    /// Whether UPDATE messages go to the control plane (`[update]` is set).
    #[inline]
    pub fn accepts_updates(&self) -> bool {
        self.accepts_updates
    }

    /// Sets whether UPDATE messages are taken, before the table is
    /// published.
    pub fn set_accepts_updates(&mut self, accepts: bool) {
        self.accepts_updates = accepts;
    }

    /// Sets the secondary zones NOTIFY is accepted for, before the table
    /// is published.
    pub fn set_notify_targets(&mut self, targets: Arc<crate::transfer::NotifyTargets>) {
        self.notify = targets;
    }

    /// Longest ECS source prefixes used, IPv4 and IPv6 (RFC 7871 §11.1
    /// recommends at most /24 and /56).
    #[inline]
    pub fn ecs_limits(&self) -> (u8, u8) {
        self.data.ecs_limits
    }

    /// This node's name server identifier for NSID queries; empty when
    /// none is configured.
    #[inline]
    pub fn nsid(&self) -> &[u8] {
        &self.data.nsid
    }

    /// The text of a CHAOS-class TXT query for `name` (wire format, lower
    /// case), when Steer answers it: this node's identity (`server.nsid`)
    /// for `id.server` and `hostname.bind` (RFC 4892), `server.version`
    /// for `version.bind` and `version.server`. `None` for other names, and
    /// for those whose text is not configured.
    pub fn chaos_text(&self, name: &[u8]) -> Option<&[u8]> {
        let text = match name {
            b"\x02id\x06server\x00" | b"\x08hostname\x04bind\x00" => &self.data.nsid,
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => &self.data.version,
            _ => return None,
        };
        (!text.is_empty()).then_some(&text[..])
    }

    /// Whether queries from `source` come through a proxy that prefixes
    /// them with a PROXY v2 header (`server.proxy_protocol_from`).
    #[inline]
    pub fn is_proxy(&self, source: IpAddr) -> bool {
        let proxies = &self.data.proxy_from;
        !proxies.is_empty() && {
            let source = source.to_canonical();
            proxies.iter().any(|network| network.contains(source))
        }
    }

    /// The limits UDP responses are held to, when `[rate_limit]` is
    /// configured.
    #[inline]
    pub fn rate_limit(&self) -> Option<&RateLimitConfig> {
        self.data.rate_limit.as_ref()
    }

    /// This table with `limits` in force (tests build tables from zones
    /// alone).
    #[cfg(test)]
    pub(crate) fn with_rate_limit(mut self, limits: RateLimitConfig) -> Self {
        Arc::get_mut(&mut self.data)
            .expect("a table just compiled is not shared")
            .rate_limit = Some(limits);
        self
    }

    /// The keys of the server cookies this node issues and accepts: from
    /// `server.cookie_secret_file`, else drawn by the process when the
    /// first table was compiled.
    #[inline]
    pub fn cookie_secrets(&self) -> &CookieSecrets {
        &self.data.cookie_secrets
    }

    /// Whether `other` shares this table's zone part (a steering-only
    /// recompile of it, or the other way round).
    #[cfg(test)]
    pub(crate) fn shares_zones_with(&self, other: &RoutingTable) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// The generation this table was compiled as (1 for the first load).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The zones in this table, sorted by name.
    pub fn zones(&self) -> &[ZoneSummary] {
        &self.data.summaries
    }

    /// Approximate heap bytes held by the table (for status and benchmarks).
    pub fn heap_bytes(&self) -> usize {
        self.data.heap_bytes() + self.signed.as_ref().map_or(0, |signed| signed.heap_bytes())
    }

    #[inline]
    fn found<'table>(
        &'table self,
        data: &'table ZoneData,
        reply: &'table Prepared,
        node: &Node,
    ) -> Lookup<'table> {
        let zone = data.zone_slots.get(node.zone as usize).copied();
        if reply.rcode != STEERED {
            return Lookup::Answer(Answer {
                zone,
                ..data.answer(reply)
            });
        }
        let policy = reply.section.start;
        let nodata = match data.policy_nodata.get(policy as usize) {
            Some(&index) if index != NONE => index,
            _ => data.zones[node.zone as usize].nodata,
        };
        Lookup::Steered(SteeredLookup {
            policy: &self.policies[policy as usize],
            health: &self.health,
            nodata: Answer {
                zone,
                ..data.answer(&data.replies[nodata as usize])
            },
            key: policy,
            zone,
            signer: data
                .signers
                .get(node.zone as usize)
                .and_then(|signer| signer.as_deref()),
        })
    }

    /// The steered policies, in config order (for explain and status).
    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    /// Endpoint health of this generation (the admin API writes to it).
    pub fn health(&self) -> &HealthView {
        &self.health
    }

    /// Whether some zone is signed (queries with DO get its DNSSEC records).
    pub fn has_signed_zones(&self) -> bool {
        self.signed.is_some()
    }

    /// When some signed zone must be signed again (Unix seconds): half its
    /// signatures' validity gone, or a key event due.
    pub fn resign_at(&self) -> Option<u64> {
        self.zones()
            .iter()
            .filter_map(|zone| zone.dnssec.as_ref().map(|signing| signing.refresh_at))
            .min()
    }

    /// Finds the answer for a lower-cased wire-format `name` and `qtype`;
    /// `dnssec_ok`: the query's DO bit, which asks for signed zones'
    /// RRSIGs and NSEC proofs.
    #[inline]
    pub fn lookup(
        &self,
        name: &[u8],
        qtype: u16,
        transport: Transport,
        dnssec_ok: bool,
    ) -> Lookup<'_> {
        // RRSIG and NSEC are answered from the signed table, DO or not:
        // the other leaves them out.
        let data: &ZoneData = match &self.signed {
            Some(signed) if dnssec_ok || qtype == TYPE_RRSIG || qtype == TYPE_NSEC => signed,
            _ => &self.data,
        };
        if let Some(id) = data.index.get(name) {
            let mut node = &data.nodes[id as usize];
            if qtype == TYPE_DS && node.parent_cut != NONE {
                node = &data.nodes[node.parent_cut as usize];
            }
            let reply = if node.referral != NONE && !(node.is_cut && qtype == TYPE_DS) {
                &data.replies[node.referral as usize]
            } else {
                data.node_reply(node, qtype, transport)
            };
            let proofs = &data.nsec[node.zone as usize];
            return match self.found(data, reply, node) {
                // NODATA in a signed zone: the name's NSEC proves it.
                Lookup::Answer(answer)
                    if answer.counts[0] == 0 && answer.authoritative && !proofs.is_empty() =>
                {
                    Lookup::Answer(data.prove_nodata(answer, proofs, name))
                }
                other => other,
            };
        }
        // The name does not exist: find its closest encloser.
        let mut at = 0usize;
        while let Some(&length) = name.get(at) {
            if length == 0 {
                break;
            }
            // The name one label longer than the encloser tried next: its
            // "next closer name" (RFC 5155 §1.3), which NSEC3 proofs cover.
            let next_closer = at;
            at += 1 + usize::from(length);
            let Some(suffix) = name.get(at..) else { break };
            let Some(id) = data.index.get(suffix) else {
                continue;
            };
            let encloser = &data.nodes[id as usize];
            if encloser.referral != NONE {
                return self.found(data, &data.replies[encloser.referral as usize], encloser);
            }
            if encloser.dname != NONE {
                // No name exists below a DNAME (the zone loader refuses
                // them), so its owner is the closest encloser.
                return Lookup::Dname(DnameLookup {
                    dname: &data.dnames[encloser.dname as usize],
                    owner_at: at,
                    key: encloser.dname,
                    zone: data.zone_slots.get(encloser.zone as usize).copied(),
                });
            }
            let wildcard = encloser.wildcard != NONE;
            let reply = if wildcard {
                let wildcard = &data.nodes[encloser.wildcard as usize];
                data.node_reply(wildcard, qtype, transport)
            } else {
                &data.replies[data.zones[encloser.zone as usize].nxdomain as usize]
            };
            let found = self.found(data, reply, encloser);
            let proofs = &data.nsec[encloser.zone as usize];
            return match found {
                Lookup::Answer(answer) if !proofs.is_empty() => Lookup::Answer(data.prove(
                    answer,
                    proofs,
                    (name, &name[next_closer..], suffix),
                    wildcard,
                )),
                other => other,
            };
        }
        Lookup::Refused
    }
}

impl ZoneData {
    fn heap_bytes(&self) -> usize {
        self.index.heap_bytes()
            + self.nodes.capacity() * size_of::<Node>()
            + self.answers.capacity() * size_of::<(u16, Prepared)>()
            + self.replies.capacity() * size_of::<Prepared>()
            + self.section_bytes.capacity()
            + self.fixups.capacity() * 2
            + self
                .nsec
                .iter()
                .map(nsec::Denial::heap_bytes)
                .sum::<usize>()
    }

    #[inline]
    fn answer(&self, reply: &Prepared) -> Answer<'_> {
        let section = &reply.section;
        let start = section.start as usize;
        let fixup_start = section.fixup_start as usize;
        Answer {
            rcode: reply.rcode,
            authoritative: reply.authoritative,
            counts: section.counts,
            bytes: &self.section_bytes[start..start + usize::from(section.length)],
            fixups: &self.fixups[fixup_start..fixup_start + usize::from(section.fixup_count)],
            assumed_question_len: section.assumed_question_len,
            key: section.start,
            zone: None,
            proofs: [Proof::default(); 3],
        }
    }

    /// Adds the proofs for `name`, which does not exist in the zone of
    /// `proofs`: `encloser` (a suffix of `name`) is its closest encloser,
    /// `next_closer` the suffix one label longer, and `wildcard` says
    /// whether the wildcard at the encloser answered. With NSEC (RFC 4035
    /// §3.1.3): a wildcard answer proves no closer name exists; a wildcard
    /// NODATA adds the wildcard's own NSEC; an NXDOMAIN proves neither the
    /// name nor the wildcard exists. With NSEC3 (RFC 5155 §7.2): the next
    /// closer name is covered, and but for a wildcard answer, the closest
    /// encloser and the wildcard are matched or covered too.
    #[inline]
    fn prove<'table>(
        &'table self,
        answer: Answer<'table>,
        proofs: &'table nsec::Denial,
        (name, next_closer, encloser): (&[u8], &[u8], &[u8]),
        wildcard: bool,
    ) -> Answer<'table> {
        let nsec3 = proofs.is_nsec3();
        let first = if nsec3 { next_closer } else { name };
        let mut answer = match proofs.covering(first) {
            Some(proof) => answer.with_proof(self, proof),
            None => answer,
        };
        if !wildcard || answer.counts[0] == 0 {
            if nsec3 && let Some(proof) = proofs.covering(encloser) {
                answer = answer.with_proof(self, proof);
            }
            let mut source = [0u8; 256];
            let length = (encloser.len() + 2).min(source.len());
            source[..2].copy_from_slice(b"\x01*");
            source[2..length].copy_from_slice(&encloser[..length - 2]);
            if let Some(proof) = proofs.covering(&source[..length]) {
                answer = answer.with_proof(self, proof);
            }
        }
        answer
    }

    /// Adds the proof that the existing `name` has no data of the type
    /// asked: its NSEC or NSEC3, or for an empty non-terminal with NSEC
    /// the one that covers it. For a wildcard's own name with NSEC3, its
    /// closest encloser's NSEC3 too, as for a name the wildcard matched
    /// (RFC 5155 §7.2.5), as NSD does.
    #[inline]
    fn prove_nodata<'table>(
        &'table self,
        answer: Answer<'table>,
        proofs: &'table nsec::Denial,
        name: &[u8],
    ) -> Answer<'table> {
        let mut answer = match proofs.covering(name) {
            Some(proof) => answer.with_proof(self, proof),
            None => answer,
        };
        if proofs.is_nsec3()
            && name.starts_with(b"\x01*")
            && let Some(proof) = proofs.covering(&name[2..])
        {
            answer = answer.with_proof(self, proof);
        }
        answer
    }

    #[inline]
    fn reply_at<'table>(&'table self, node: &'table Node, index: u32) -> &'table Prepared {
        if index == FIRST {
            &node.first
        } else {
            &self.replies[index as usize]
        }
    }

    #[inline]
    fn node_reply<'table>(
        &'table self,
        node: &'table Node,
        qtype: u16,
        transport: Transport,
    ) -> &'table Prepared {
        if qtype == TYPE_ANY {
            return match transport {
                Transport::Udp => self.reply_at(node, node.any_udp),
                Transport::Tcp | Transport::Tls => self.reply_at(node, node.any_tcp),
            };
        }
        if qtype == node.first_type {
            return &node.first;
        }
        let start = node.answers_start as usize;
        self.answers[start..start + usize::from(node.more_answers)]
            .iter()
            .find(|(answer_type, _)| *answer_type == qtype)
            .map_or_else(|| &self.replies[node.fallback as usize], |(_, reply)| reply)
    }
}

/// Formats a wire-format name for messages (`www.example.test.`).
pub fn display_wire_name(wire: &[u8]) -> String {
    let mut text = String::new();
    let mut at = 0usize;
    while let Some(&length) = wire.get(at) {
        if length == 0 {
            break;
        }
        let label = wire
            .get(at + 1..at + 1 + usize::from(length))
            .unwrap_or_default();
        for &byte in label {
            if byte.is_ascii_graphic() && byte != b'.' && byte != b'\\' {
                text.push(char::from(byte));
            } else {
                text.push_str(&format!("\\{byte:03}"));
            }
        }
        text.push('.');
        at += 1 + usize::from(length);
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests;
