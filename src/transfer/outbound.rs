//! Zone transfers out: AXFR (RFC 5936) of Steer's zones to its secondaries,
//! and NOTIFY (RFC 1996) to them when a reload changes a zone's serial.
//!
//! With `[transfer]`, every zone is kept as the zone file gave it (before
//! signing), its records encoded once at compile time, and an AXFR over TCP
//! that some `[transfer]` entry allows (its address, its zone, and its key
//! or the lack of one) is answered from those bytes, message by message, so a transfer
//! neither parses nor allocates per record. Steered names go out as their
//! zone file has them: a secondary that is not Steer cannot steer, so a
//! name it must answer needs static records in the zone file (another
//! Steer node adds the steering from its own `steer.toml`). Signed zones
//! go out unsigned, for a secondary that signs them itself.
//!
//! An IXFR (RFC 1995) from a serial the zone's history of changes reaches
//! is answered with those changes: each reload that moves a serial
//! forward keeps the records removed and added, computed against the
//! served table's copy ([`Outbound::new`]'s `previous`), up to
//! [`MAX_CHANGES`] and about the zone's size. From the current serial it
//! is the SOA alone; from any other, the whole zone, as §4 allows.
//!
//! Not on the UDP path: transfers are refused over UDP as before, and over
//! TCP only a query whose type is AXFR or IXFR reaches
//! [`Outbound::answer`].

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use tracing::{info, warn};

use super::tsig::{
    self, RCODE_FORMERR as FORMERR, RCODE_NOTAUTH as NOTAUTH, StreamSigner, TsigKey,
};
use crate::config::secondary::TransferConfig;
use crate::config::steering::IpNet;
use crate::zone::Zone;

/// AXFR's type code.
const TYPE_AXFR: u16 = 252;
/// IXFR's: answered as RFC 1995 §4 allows, with the whole zone (or the
/// SOA alone when the client is current).
const TYPE_IXFR: u16 = 251;
/// How many record bytes one message carries, at most: well under the
/// 65,535 a TCP message can hold, so that a TSIG always fits.
const MESSAGE_BYTES: usize = 16_000;
/// The response code of a transfer refused to its client.
const REFUSED: u8 = 5;

/// One zone as it goes out: every record encoded, the SOA first.
struct ZoneCopy {
    /// The apex, for the journal's file name.
    origin: Name,
    /// The apex in wire form, lower case, to compare with a question.
    apex: Vec<u8>,
    /// The records back to back, uncompressed.
    wire: Vec<u8>,
    /// Where each record ends in `wire`.
    ends: Vec<u32>,
    /// The SOA serial, for IXFR.
    serial: u32,
    /// The changes that led to this version, oldest first, each from the
    /// version before: what an IXFR from one of their serials is answered
    /// with (RFC 1995 §4).
    history: Vec<Arc<Change>>,
}

/// The difference between two versions of a zone, as IXFR sends it: the
/// old SOA, the records removed, the new SOA, the records added.
struct Change {
    /// The serial it starts from.
    from: u32,
    /// The records in that order, back to back.
    wire: Vec<u8>,
    /// Where each ends in `wire`.
    ends: Vec<u32>,
}

/// Most changes kept per zone.
const MAX_CHANGES: usize = 32;
/// Change bytes a zone may always keep, however small it is; past that,
/// no more than the zone's own size (an AXFR is then no dearer).
const MIN_HISTORY_BYTES: usize = 64 * 1024;

impl ZoneCopy {
    /// Record `index`'s bytes.
    fn record(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.wire[start..self.ends[index] as usize]
    }

    /// The change from `old` to this version, with the records of each
    /// compared as bytes (a new TTL is a removal and an addition).
    fn change_from(&self, old: &ZoneCopy) -> Change {
        // An edit leaves most of a zone file where it was: the records the
        // two versions share at the start and at the end are skipped, and
        // only those between are compared as sets.
        let (old_count, new_count) = (old.ends.len(), self.ends.len());
        let shorter = old_count.min(new_count);
        let mut head = 1;
        while head < shorter && old.record(head) == self.record(head) {
            head += 1;
        }
        let mut tail = 0;
        while tail < shorter - head
            && old.record(old_count - 1 - tail) == self.record(new_count - 1 - tail)
        {
            tail += 1;
        }
        let old_middle = head..old_count - tail;
        let new_middle = head..new_count - tail;
        let old_records: std::collections::HashSet<&[u8]> =
            old_middle.clone().map(|index| old.record(index)).collect();
        let new_records: std::collections::HashSet<&[u8]> =
            new_middle.clone().map(|index| self.record(index)).collect();
        let mut change = Change {
            from: old.serial,
            wire: Vec::new(),
            ends: Vec::new(),
        };
        let mut push = |record: &[u8]| {
            change.wire.extend_from_slice(record);
            change.ends.push(change.wire.len() as u32);
        };
        push(old.record(0));
        for index in old_middle {
            if !new_records.contains(old.record(index)) {
                push(old.record(index));
            }
        }
        push(self.record(0));
        for index in new_middle {
            if !old_records.contains(self.record(index)) {
                push(self.record(index));
            }
        }
        change.wire.shrink_to_fit();
        change
    }

    /// The history this version keeps, given the version served before
    /// it: that one's, and the change from it, the oldest dropped while
    /// there are more than [`MAX_CHANGES`] or they are larger than the
    /// zone (and [`MIN_HISTORY_BYTES`]): past that an AXFR is no dearer. None across a serial that did not go
    /// forward, or data that changed without a new serial: a secondary
    /// could not tell those versions apart.
    fn history_after(&self, old: &ZoneCopy) -> Vec<Arc<Change>> {
        if old.serial == self.serial {
            return if old.wire == self.wire {
                old.history.clone()
            } else {
                Vec::new()
            };
        }
        if !super::client::newer(self.serial, old.serial) {
            return Vec::new();
        }
        let mut history = old.history.clone();
        history.push(Arc::new(self.change_from(old)));
        let mut bytes: usize = history.iter().map(|change| change.wire.len()).sum();
        let limit = self.wire.len().max(MIN_HISTORY_BYTES);
        while !history.is_empty() && (history.len() > MAX_CHANGES || bytes > limit) {
            bytes -= history[0].wire.len();
            history.remove(0);
        }
        history
    }

    /// The history kept in `directory`'s journal of this zone, when it leads
    /// to exactly this version (same serial, same records); else none.
    fn journaled_history(&self, directory: &Path) -> Vec<Arc<Change>> {
        let Some(saved) = super::journal::read(&super::journal::path_of(directory, &self.origin))
        else {
            return Vec::new();
        };
        if saved.serial != self.serial || saved.digest != super::journal::digest(&self.wire) {
            return Vec::new();
        }
        saved
            .changes
            .into_iter()
            .map(|(from, wire, ends)| Arc::new(Change { from, wire, ends }))
            .collect()
    }

    /// The IXFR answer to a client at `serial`, when the history reaches
    /// back to it: the current SOA, then each change since, as one copy
    /// whose closing SOA is its first record.
    fn incremental_from(&self, serial: u32) -> Option<ZoneCopy> {
        let first = self
            .history
            .iter()
            .position(|change| change.from == serial)?;
        let mut copy = ZoneCopy {
            origin: self.origin.clone(),
            apex: Vec::new(),
            wire: self.record(0).to_vec(),
            ends: vec![self.ends[0]],
            serial: self.serial,
            history: Vec::new(),
        };
        for change in &self.history[first..] {
            let base = copy.wire.len() as u32;
            copy.wire.extend_from_slice(&change.wire);
            copy.ends.extend(change.ends.iter().map(|end| base + end));
        }
        Some(copy)
    }
}

/// What a table serves to secondaries: who may ask for which zones, with
/// which keys, and the zones.
pub struct Outbound {
    secondaries: Vec<Secondaries>,
    /// Every entry's key, so that a request is checked against all at once.
    keys: Vec<TsigKey>,
    zones: Vec<ZoneCopy>,
}

/// One `[transfer]` entry, resolved against the zones.
#[derive(Debug)]
struct Secondaries {
    allow: Vec<IpNet>,
    /// Index of its key in `Outbound::keys`.
    key: Option<usize>,
    /// The zones it gets (indexes in `Outbound::zones`); `None`: all.
    zones: Option<Vec<usize>>,
}

impl Secondaries {
    fn covers(&self, zone: usize) -> bool {
        self.zones
            .as_ref()
            .is_none_or(|zones| zones.contains(&zone))
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Outbound")
            .field("secondaries", &self.secondaries)
            .field("zones", &self.zones.len())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// The zones as loaded (before signing), ready to go out, each with
    /// the history of changes since the versions `previous` (the served
    /// table's) held; errors name a record hickory cannot encode (none a
    /// zone file can hold).
    pub fn new(
        config: &TransferConfig,
        zones: &[Zone],
        previous: Option<&Outbound>,
        journal: Option<&Path>,
    ) -> Result<Outbound, Vec<String>> {
        let mut copies = Vec::with_capacity(zones.len());
        let mut errors = Vec::new();
        for zone in zones {
            let mut copy = ZoneCopy {
                origin: zone.origin.clone(),
                apex: wire_name(&zone.origin),
                wire: Vec::new(),
                ends: Vec::with_capacity(zone.records.len()),
                serial: zone.serial,
                history: Vec::new(),
            };
            // The SOA first, as a transfer starts (and ends) with it.
            let soa = zone.records.iter().position(|record| {
                record.record.record_type() == hickory_proto::rr::RecordType::SOA
            });
            let order = soa
                .into_iter()
                .chain((0..zone.records.len()).filter(|index| Some(*index) != soa));
            let mut scratch = Vec::with_capacity(512);
            for index in order {
                let record = &zone.records[index];
                scratch.clear();
                // Uncompressed: a record's bytes are copied into messages
                // where a pointer into its own buffer would mean nothing.
                let mut encoder = BinEncoder::new(&mut scratch);
                encoder.set_name_encoding(NameEncoding::Uncompressed);
                match record.record.emit(&mut encoder) {
                    Ok(()) => {
                        copy.wire.extend_from_slice(&scratch);
                        copy.ends.push(copy.wire.len() as u32);
                    }
                    Err(error) => errors.push(format!(
                        "{}: cannot encode the record for transfers: {error}",
                        record.location
                    )),
                }
            }
            copy.wire.shrink_to_fit();
            if let Some(old) = previous
                .and_then(|previous| previous.zones.iter().find(|old| old.apex == copy.apex))
            {
                copy.history = copy.history_after(old);
            } else if previous.is_none()
                && let Some(directory) = journal
            {
                copy.history = copy.journaled_history(directory);
            }
            copies.push(copy);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut keys = Vec::new();
        let secondaries = config
            .secondaries
            .iter()
            .map(|secondaries| Secondaries {
                allow: secondaries.allow.clone(),
                key: secondaries.key.as_ref().map(|key| {
                    keys.push((*key.key).clone());
                    keys.len() - 1
                }),
                zones: secondaries.zones.as_ref().map(|names| {
                    zones
                        .iter()
                        .enumerate()
                        .filter(|(_, zone)| names.contains(&zone.origin.to_lowercase()))
                        .map(|(index, _)| index)
                        .collect()
                }),
            })
            .collect();
        Ok(Outbound {
            secondaries,
            keys,
            zones: copies,
        })
    }

    /// Writes the IXFR history of each zone that `moved(apex, serial)` says
    /// is at a new serial to its journal in `directory` (see
    /// [`super::journal`]). Blocking; a failure is logged: the journal only
    /// saves secondaries a whole transfer after a restart.
    pub fn save_journal(&self, directory: &Path, moved: impl Fn(&Name, u32) -> bool) {
        for copy in &self.zones {
            if copy.history.is_empty() || !moved(&copy.origin, copy.serial) {
                continue;
            }
            let changes: Vec<(u32, &[u8], &[u32])> = copy
                .history
                .iter()
                .map(|change| (change.from, &change.wire[..], &change.ends[..]))
                .collect();
            let path = super::journal::path_of(directory, &copy.origin);
            let digest = super::journal::digest(&copy.wire);
            if let Err(error) = super::journal::write(&path, copy.serial, &digest, &changes) {
                warn!(file = %path.display(), "cannot write the IXFR journal: {error}");
            }
        }
    }

    /// When `query` (a TCP message from `source`) is an AXFR or an IXFR,
    /// the stream of messages that answers it: the zone, or one refusal.
    /// `None` for every other query, which is answered as usual.
    pub fn answer(self: &Arc<Self>, query: &[u8], source: IpAddr) -> Option<AxfrStream> {
        let (question_end, qtype) = transfer_question(query)?;
        let id = u16::from_be_bytes([query[0], query[1]]);
        let question = query[12..question_end].to_vec();
        let refuse = |rcode: u8| {
            Some(AxfrStream::refusal(
                self,
                id,
                question.clone(),
                (rcode, None),
            ))
        };
        let source = source.to_canonical();
        let name = &question[..question.len() - 4];
        let zone = self
            .zones
            .iter()
            .position(|zone| zone.apex.eq_ignore_ascii_case(name));
        // The entries that let this client have this zone (for a zone not
        // served, those that let it in at all: the answer is then NOTAUTH).
        let allowed = |secondaries: &&Secondaries| {
            secondaries
                .allow
                .iter()
                .any(|network| network.contains(source))
                && zone.is_none_or(|zone| secondaries.covers(zone))
        };
        if !self
            .secondaries
            .iter()
            .any(|secondaries| allowed(&secondaries))
        {
            return refuse(REFUSED);
        }
        let now = crate::unix_now();
        let signer = match tsig::verify_request(&self.keys, query, now) {
            Ok(tsig::RequestCheck::NotSigned) => {
                let unkeyed = self
                    .secondaries
                    .iter()
                    .filter(allowed)
                    .any(|secondaries| secondaries.key.is_none());
                if !unkeyed {
                    return refuse(REFUSED);
                }
                None
            }
            Ok(tsig::RequestCheck::Verified {
                key,
                key_index,
                request_mac,
                ..
            }) => {
                // A key of ours, but not one that lets this client have
                // this zone.
                let keyed = self
                    .secondaries
                    .iter()
                    .filter(allowed)
                    .any(|secondaries| secondaries.key == Some(key_index));
                if !keyed {
                    return refuse(REFUSED);
                }
                Some(StreamSigner::new(key, request_mac))
            }
            Err(rejection) => {
                return Some(AxfrStream::refusal(
                    self,
                    id,
                    question,
                    (rejection.rcode(), Some(rejection_tsig(id, &rejection, now))),
                ));
            }
        };
        let Some(zone) = zone else {
            return refuse(NOTAUTH);
        };
        let mut next = 0;
        let mut incremental = None;
        if qtype == TYPE_IXFR {
            // RFC 1995: the client's SOA is in the authority section.
            let Some(serial) = ixfr_serial(query, question_end) else {
                return refuse(FORMERR);
            };
            if !super::client::newer(self.zones[zone].serial, serial) {
                // Current: the SOA alone says so (RFC 1995 §2).
                next = self.zones[zone].ends.len();
            } else {
                // The changes since, when they reach back that far;
                // else the whole zone (RFC 1995 §4).
                incremental = self.zones[zone].incremental_from(serial);
            }
        }
        Some(AxfrStream {
            outbound: Some(Arc::clone(self)),
            zone,
            incremental,
            id,
            question,
            next,
            first: true,
            closed: false,
            signer,
            refusal: None,
            rcode: 0,
        })
    }
}

/// The TSIG bytes a refusal of request `id` carries.
fn rejection_tsig(id: u16, rejection: &tsig::Rejection<'_>, now: u64) -> Vec<u8> {
    let mut message = vec![0; 12];
    message[..2].copy_from_slice(&id.to_be_bytes());
    let _ = rejection.append_tsig(&mut message, now);
    message.split_off(12)
}

/// The serial of the SOA in the authority section of IXFR `query`, whose
/// question ends at `question_end`.
fn ixfr_serial(query: &[u8], question_end: usize) -> Option<u32> {
    let authority = u16::from_be_bytes([query[8], query[9]]);
    if authority == 0 || query[6..8] != [0, 0] {
        return None;
    }
    let at = skip_name(query, question_end)?;
    let fixed = query.get(at..at + 10)?;
    if fixed[..2] != [0, 6] {
        return None;
    }
    let rdata = at + 10;
    let after_mname = skip_name(query, rdata)?;
    let after_rname = skip_name(query, after_mname)?;
    let serial = query.get(after_rname..after_rname + 4)?;
    Some(u32::from_be_bytes([
        serial[0], serial[1], serial[2], serial[3],
    ]))
}

/// Where the name at `at` ends (after its root label or its pointer).
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(length),
            0xc0..=0xff => return message.get(at + 1).map(|_| at + 2),
            _ => return None,
        }
    }
}

/// The end of the question of `query` and its type, when it is a
/// standard query of type AXFR or IXFR, class IN, with one question.
fn transfer_question(query: &[u8]) -> Option<(usize, u16)> {
    let header = query.get(..12)?;
    let opcode = (header[2] >> 3) & 0x0f;
    if header[2] & 0x80 != 0 || opcode != 0 || header[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            at += 1;
            break;
        }
        // A compressed or extended label: not a question we serve.
        if length > 63 {
            return None;
        }
        at += 1 + length;
    }
    let fixed = query.get(at..at + 4)?;
    let (qtype, qclass) = (
        u16::from_be_bytes([fixed[0], fixed[1]]),
        u16::from_be_bytes([fixed[2], fixed[3]]),
    );
    (matches!(qtype, TYPE_AXFR | TYPE_IXFR) && qclass == 1).then_some((at + 4, qtype))
}

/// The messages of one AXFR answer, made one at a time.
pub struct AxfrStream {
    outbound: Option<Arc<Outbound>>,
    zone: usize,
    /// For an IXFR answered with changes: those, sent instead of the zone.
    incremental: Option<ZoneCopy>,
    id: u16,
    /// The question as asked (name case kept), with type and class.
    question: Vec<u8>,
    /// The next record to send.
    next: usize,
    /// Whether the next message is the first (it repeats the question).
    first: bool,
    /// Whether the closing SOA has been sent.
    closed: bool,
    signer: Option<StreamSigner>,
    /// A refusal: its rcode and TSIG bytes; the stream is that one message.
    refusal: Option<(u8, Option<Vec<u8>>)>,
    /// The response code: 0, or the refusal's (kept once it is sent).
    rcode: u8,
}

impl AxfrStream {
    /// One message refusing the transfer asked of `outbound` (kept for
    /// [`AxfrStream::zone_served`]; after the refusal nothing is sent).
    fn refusal(
        outbound: &Arc<Outbound>,
        id: u16,
        question: Vec<u8>,
        (rcode, tsig): (u8, Option<Vec<u8>>),
    ) -> AxfrStream {
        AxfrStream {
            outbound: Some(Arc::clone(outbound)),
            zone: 0,
            incremental: None,
            id,
            question,
            next: 0,
            first: true,
            closed: false,
            signer: None,
            refusal: Some((rcode, tsig)),
            rcode,
        }
    }

    /// The zone this stream sends, lower case and absolute, when it is
    /// one Steer serves (refused or not); `None` for other names.
    pub fn zone_served(&self) -> Option<String> {
        let name = &self.question[..self.question.len().saturating_sub(4)];
        let outbound = self.outbound.as_ref()?;
        outbound
            .zones
            .iter()
            .find(|zone| zone.apex.eq_ignore_ascii_case(name))
            .map(|zone| crate::table::display_wire_name(&zone.apex.to_ascii_lowercase()))
    }

    /// What the stream sends: `zone` (the whole zone: an AXFR, or an
    /// IXFR from a version the history does not reach), `changes` (an
    /// IXFR answered with the changes since), `current` (an IXFR from the
    /// current serial: the SOA alone) or `none` (a refusal).
    pub fn sent(&self) -> &'static str {
        if self.rcode != 0 {
            "none"
        } else if self.incremental.is_some() {
            "changes"
        } else if self.next > 0 {
            "current"
        } else {
            "zone"
        }
    }

    /// The zone asked for, as asked (for the log).
    pub fn zone_asked(&self) -> String {
        let name = &self.question[..self.question.len().saturating_sub(4)];
        crate::table::display_wire_name(name)
    }

    /// The response code of the answer: NOERROR, or the refusal's.
    pub fn rcode(&self) -> u16 {
        u16::from(self.rcode)
    }

    /// Writes the next message into `out` (cleared first); false when the
    /// stream is over.
    pub fn next_message(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        if let Some((rcode, tsig)) = self.refusal.take() {
            write_header(out, self.id, rcode, 0, !self.question.is_empty());
            out.extend_from_slice(&self.question);
            if let Some(tsig) = tsig {
                out.extend_from_slice(&tsig);
                out[11] = 1;
            }
            self.closed = true;
            return true;
        }
        let Some(outbound) = &self.outbound else {
            return false;
        };
        if self.closed {
            return false;
        }
        let zone = self
            .incremental
            .as_ref()
            .unwrap_or(&outbound.zones[self.zone]);
        let first = std::mem::replace(&mut self.first, false);
        write_header(out, self.id, 0, 0, first);
        if first {
            out.extend_from_slice(&self.question);
        }
        let mut count: u16 = 0;
        let start = |index: usize| {
            if index == 0 {
                0
            } else {
                zone.ends[index - 1] as usize
            }
        };
        while self.next < zone.ends.len() && count < u16::MAX - 1 {
            let (from, to) = (start(self.next), zone.ends[self.next] as usize);
            if count > 0 && out.len() + (to - from) > MESSAGE_BYTES {
                break;
            }
            out.extend_from_slice(&zone.wire[from..to]);
            count += 1;
            self.next += 1;
        }
        if self.next == zone.ends.len() {
            // The closing SOA (RFC 5936 §2.2), in this message when it fits.
            let soa = &zone.wire[..zone.ends.first().copied().unwrap_or(0) as usize];
            if count == 0 || out.len() + soa.len() <= MESSAGE_BYTES {
                out.extend_from_slice(soa);
                count += 1;
                self.closed = true;
            }
        }
        out[6..8].copy_from_slice(&count.to_be_bytes());
        if let Some(signer) = &mut self.signer {
            // Within MESSAGE_BYTES, a TSIG always fits.
            let _ = signer.sign(out, crate::unix_now());
        }
        true
    }
}

/// A response header: QR and AA set, `rcode`, one question or none.
fn write_header(out: &mut Vec<u8>, id: u16, rcode: u8, answers: u16, question: bool) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x84, rcode]);
    out.extend_from_slice(&u16::from(question).to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// `name` in wire form, lower case.
pub(super) fn wire_name(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// Tells `secondaries` that `zone` has a new serial (RFC 1996): a NOTIFY
/// over UDP to each, signed with `key` when there is one, sent again
/// after 2 s (up to 3 times) until acknowledged. Logs who never answered.
pub async fn notify(
    zone: Name,
    serial: u32,
    secondaries: Vec<SocketAddr>,
    key: Option<TsigKey>,
    record: Arc<super::Secondaries>,
) {
    for secondary in secondaries {
        let (zone, key, record) = (zone.clone(), key.clone(), Arc::clone(&record));
        tokio::spawn(async move {
            let result = notify_one(&zone, secondary, key.as_ref()).await;
            match &result {
                Ok(()) => info!(%zone, serial, %secondary, "NOTIFY acknowledged"),
                Err(error) => warn!(%zone, serial, %secondary, "NOTIFY not acknowledged: {error}"),
            }
            record.record_notify_out(&zone, serial, secondary, result);
        });
    }
}

async fn notify_one(
    zone: &Name,
    secondary: SocketAddr,
    key: Option<&TsigKey>,
) -> Result<(), String> {
    let bind: SocketAddr = if secondary.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|error| error.to_string())?;
    socket
        .connect(secondary)
        .await
        .map_err(|error| error.to_string())?;
    let mut last_error = String::from("no answer");
    for _ in 0..3 {
        let id = crate::random_query_id();
        // Opcode NOTIFY, AA set (RFC 1996 §3.7).
        let flags = 0x2400;
        let (message, request_mac) = super::client::request_with_flags(
            id,
            flags,
            zone,
            hickory_proto::rr::RecordType::SOA,
            key,
        );
        if let Err(error) = socket.send(&message).await {
            last_error = error.to_string();
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let mut buffer = vec![0; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(length)) = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await
        {
            let response = &buffer[..length];
            if response.len() < 12 || u16::from_be_bytes([response[0], response[1]]) != id {
                continue;
            }
            if let Some(key) = key {
                let mut verifier = tsig::ResponseVerifier::new(key, &request_mac);
                if let Err(error) = verifier.verify(response, crate::unix_now()) {
                    return Err(format!("the acknowledgement's TSIG: {error}"));
                }
            }
            return match response[3] & 0x0f {
                0 => Ok(()),
                rcode => Err(format!("answered with rcode {rcode}")),
            };
        }
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `example.test` (SOA, NS, an address, `extra` TXT records) for
    /// transfers to 192.0.2.0/24, signed with a key when `keyed`.
    fn outbound(keyed: bool, extra: usize) -> Arc<Outbound> {
        let key = if keyed { "tsig_key = \"k\"\n" } else { "" };
        let config = crate::config::parse(
            std::path::Path::new("steer.toml"),
            &format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\n\
                 [tsig.k]\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0\"\n\
                 [transfer]\nallow = [\"192.0.2.0/24\"]\n{key}"
            ),
        )
        .expect("config");
        let mut text = "$ORIGIN example.test.\n$TTL 300\n\
            @ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n"
            .to_owned();
        for index in 0..extra {
            text.push_str(&format!("t{index} TXT \"{}\"\n", "z".repeat(200)));
        }
        let apex = Name::from_ascii("example.test.").expect("apex");
        let zone = crate::zone::parse_zone(&text, std::path::Path::new("example.test.zone"), &apex)
            .expect("zone");
        let transfer = config.transfer.expect("[transfer]");
        Arc::new(Outbound::new(&transfer, &[zone], None, None).expect("outbound"))
    }

    fn axfr(zone: &[u8]) -> Vec<u8> {
        let mut packet = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(zone);
        packet.extend_from_slice(&[0, 252, 0, 1]);
        packet
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn a_transfer_is_the_zone_between_two_soas_in_parsable_messages() {
        let outbound = outbound(false, 300);
        let mut stream = outbound
            .answer(&axfr(b"\x07EXAMPLE\x04test\x00"), CLIENT)
            .expect("an AXFR");
        assert_eq!(stream.rcode(), 0);
        let mut out = Vec::new();
        let mut records = Vec::new();
        let mut messages = 0;
        while stream.next_message(&mut out) {
            messages += 1;
            assert!(out.len() <= MESSAGE_BYTES + 512, "{} bytes", out.len());
            let message = hickory_proto::op::Message::from_vec(&out).expect("parses");
            assert_eq!(message.metadata.id, 0xabcd);
            assert!(message.metadata.authoritative);
            assert_eq!(message.queries.len(), usize::from(messages == 1));
            if let Some(question) = message.queries.first() {
                // As asked, letter case kept.
                assert_eq!(question.name.to_ascii(), "EXAMPLE.test.");
            }
            records.extend(message.answers);
        }
        assert!(messages > 3, "{messages} messages");
        // SOA, NS, A, 300 TXT, SOA.
        assert_eq!(records.len(), 304);
        assert_eq!(records[0].record_type(), hickory_proto::rr::RecordType::SOA);
        assert_eq!(records[303].data, records[0].data);
    }

    #[test]
    fn refusals_are_one_message() {
        let open = outbound(false, 0);
        let keyed = outbound(true, 0);
        let stranger = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
        let cases = [
            (&open, axfr(b"\x07example\x04test\x00"), stranger, 5),
            (&open, axfr(b"\x05other\x04test\x00"), CLIENT, 9),
            (&keyed, axfr(b"\x07example\x04test\x00"), CLIENT, 5),
        ];
        for (outbound, query, source, rcode) in cases {
            let mut stream = outbound.answer(&query, source).expect("an AXFR");
            assert_eq!(stream.rcode(), rcode);
            let mut out = Vec::new();
            assert!(stream.next_message(&mut out));
            assert_eq!(out[3] & 0x0f, rcode as u8);
            assert_eq!(&out[12..], &query[12..]);
            assert!(!stream.next_message(&mut out));
        }
        // Not an AXFR: answered as any query.
        let mut query = axfr(b"\x07example\x04test\x00");
        let length = query.len();
        query[length - 3] = 1;
        assert!(open.answer(&query, CLIENT).is_none());
    }

    /// A copy of records `records` (distinct byte strings; the first
    /// stands for the SOA).
    fn copy_of(records: &[Vec<u8>], serial: u32) -> ZoneCopy {
        let mut copy = ZoneCopy {
            origin: Name::root(),
            apex: Vec::new(),
            wire: Vec::new(),
            ends: Vec::new(),
            serial,
            history: Vec::new(),
        };
        for record in records {
            copy.wire.extend_from_slice(record);
            copy.ends.push(copy.wire.len() as u32);
        }
        copy
    }

    proptest! {
        /// For any two versions, in any order: the old records without
        /// those removed, with those added, are the new ones; nothing is
        /// both removed and added.
        #[test]
        fn a_change_turns_the_old_version_into_the_new(
            old in proptest::sample::subsequence((0u8..40).collect::<Vec<_>>(), 0..40)
                .prop_shuffle(),
            other in proptest::sample::subsequence((0u8..40).collect::<Vec<_>>(), 0..40)
                .prop_shuffle(),
            edits in proptest::collection::vec((any::<bool>(), 0usize..64, 40u8..80), 0..4),
            edited in any::<bool>(),
        ) {
            // Either an unrelated version, or the old one edited in place,
            // as an operator edits a file (most records stay where they were).
            let new = if edited {
                let mut new = old.clone();
                for (remove, at, value) in edits {
                    if remove && !new.is_empty() {
                        new.remove(at % new.len());
                    } else if !new.contains(&value) {
                        new.insert(at % (new.len() + 1), value);
                    }
                }
                new
            } else {
                other
            };
            let records = |picked: &[u8], soa: u8| {
                std::iter::once(vec![0xff, soa])
                    .chain(picked.iter().map(|&value| vec![value, value]))
                    .collect::<Vec<_>>()
            };
            let (old, new) = (copy_of(&records(&old, 1), 1), copy_of(&records(&new, 2), 2));
            let change = new.change_from(&old);
            let listed = copy_of(&[], 0);
            let listed = ZoneCopy { wire: change.wire.clone(), ends: change.ends.clone(), ..listed };
            let parts: Vec<&[u8]> = (0..listed.ends.len()).map(|index| listed.record(index)).collect();
            prop_assert_eq!(parts[0], old.record(0));
            let middle = parts.iter().position(|record| *record == new.record(0)).expect("new SOA");
            let removed: std::collections::BTreeSet<&[u8]> = parts[1..middle].iter().copied().collect();
            let added: std::collections::BTreeSet<&[u8]> = parts[middle + 1..].iter().copied().collect();
            prop_assert!(removed.is_disjoint(&added));
            let mut result: std::collections::BTreeSet<&[u8]> =
                (1..old.ends.len()).map(|index| old.record(index)).collect();
            for record in &removed {
                prop_assert!(result.remove(record), "removed a record it did not have");
            }
            for record in &added {
                prop_assert!(result.insert(record), "added a record it had");
            }
            let expected: std::collections::BTreeSet<&[u8]> =
                (1..new.ends.len()).map(|index| new.record(index)).collect();
            prop_assert_eq!(result, expected);
        }

        /// Whatever bytes come as a TCP query, nothing panics, and a stream
        /// that starts always ends.
        #[test]
        fn any_query_is_taken_or_left_without_panic(
            body in proptest::collection::vec(any::<u8>(), 0..120),
            signed in any::<bool>(),
        ) {
            let outbound = outbound(signed, 3);
            let mut query = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            query.extend_from_slice(&body);
            if let Some(mut stream) = outbound.answer(&query, CLIENT) {
                let mut out = Vec::new();
                let mut messages = 0;
                while stream.next_message(&mut out) {
                    messages += 1;
                    prop_assert!(messages < 100);
                }
            }
        }
    }

    /// An IXFR for example.test from a client at `serial`.
    fn ixfr_from(serial: u32) -> Vec<u8> {
        let mut packet = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
        packet.extend_from_slice(b"\x07example\x04test\x00\x00\xfb\x00\x01");
        // Owner and names compressed to the question, as clients write them.
        packet.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0]);
        let mut rdata = vec![0xc0, 12, 0xc0, 12];
        rdata.extend_from_slice(&serial.to_be_bytes());
        rdata.extend_from_slice(&[0; 16]);
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend_from_slice(&rdata);
        packet
    }

    #[test]
    fn ixfr_is_the_whole_zone_or_the_soa_alone() {
        let outbound = outbound(false, 10);
        // The zone's serial is 1; the client's SOA names its own.
        let ixfr = ixfr_from;
        let records = |serial: u32| {
            let mut stream = outbound.answer(&ixfr(serial), CLIENT).expect("an IXFR");
            let mut out = Vec::new();
            let mut records = Vec::new();
            while stream.next_message(&mut out) {
                let message = hickory_proto::op::Message::from_vec(&out).expect("parses");
                records.extend(message.answers);
            }
            records.len()
        };
        // Older: the whole zone (SOA, NS, A, 10 TXT, SOA).
        assert_eq!(records(0), 14);
        // Current or newer: the SOA alone.
        assert_eq!(records(1), 1);
        assert_eq!(records(7), 1);
        // No SOA in the authority section: FORMERR.
        let mut bare = ixfr(0);
        bare.truncate(12 + 18);
        bare[9] = 0;
        let stream = outbound.answer(&bare, CLIENT).expect("an IXFR");
        assert_eq!(stream.rcode(), u16::from(FORMERR));
        // Cut before the serial ends: FORMERR; anywhere: never a panic.
        let whole = ixfr(0);
        let serial_end = 12 + 18 + 2 + 10 + 2 + 2 + 4;
        for end in 12 + 18..whole.len() {
            let stream = outbound.answer(&whole[..end], CLIENT).expect("an IXFR");
            if end < serial_end {
                assert_eq!(stream.rcode(), u16::from(FORMERR), "cut at {end}");
            }
        }
    }

    /// example.test at `serial` with `body` (records after the apex NS),
    /// with the history since `previous`.
    fn version(serial: u32, body: &str, previous: Option<&Outbound>) -> Arc<Outbound> {
        let config = crate::config::parse(
            std::path::Path::new("steer.toml"),
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[transfer]\nallow = [\"192.0.2.0/24\"]\n",
        )
        .expect("config");
        let text = format!(
            "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
             @ NS ns1\nns1 A 192.0.2.1\n{body}"
        );
        let apex = Name::from_ascii("example.test.").expect("apex");
        let zone = crate::zone::parse_zone(&text, std::path::Path::new("example.test.zone"), &apex)
            .expect("zone");
        let transfer = config.transfer.expect("[transfer]");
        Arc::new(Outbound::new(&transfer, &[zone], previous, None).expect("outbound"))
    }

    /// What an IXFR from `serial` gets: each record as `owner TTL type
    /// data` (SOAs as `SOA <serial>`).
    fn ixfr_records(outbound: &Arc<Outbound>, serial: u32) -> Vec<String> {
        let mut stream = outbound
            .answer(&ixfr_from(serial), CLIENT)
            .expect("an IXFR");
        let mut out = Vec::new();
        let mut records = Vec::new();
        while stream.next_message(&mut out) {
            let message = hickory_proto::op::Message::from_vec(&out).expect("parses");
            for record in message.answers {
                records.push(match &record.data {
                    hickory_proto::rr::RData::SOA(soa) => format!("SOA {}", soa.serial),
                    data => format!(
                        "{} {} {} {data}",
                        record.name,
                        record.ttl,
                        record.record_type()
                    ),
                });
            }
        }
        records
    }

    #[test]
    fn ixfr_sends_the_changes_since_the_clients_serial() {
        let first = version(1, "a A 192.0.2.10\nb A 192.0.2.11\n", None);
        let second = version(2, "a A 192.0.2.10\nc A 192.0.2.12\n", Some(&first));
        let third = version(3, "a 600 A 192.0.2.10\nc A 192.0.2.12\n", Some(&second));
        assert_eq!(
            ixfr_records(&third, 1),
            [
                "SOA 3",
                "SOA 1",
                "b.example.test. 300 A 192.0.2.11",
                "SOA 2",
                "c.example.test. 300 A 192.0.2.12",
                "SOA 2",
                "a.example.test. 300 A 192.0.2.10",
                "SOA 3",
                "a.example.test. 600 A 192.0.2.10",
                "SOA 3",
            ]
        );
        assert_eq!(ixfr_records(&third, 2).len(), 6);
        // Current: the SOA alone. A serial the history does not reach:
        // the whole zone (SOA, NS, three addresses, SOA).
        assert_eq!(ixfr_records(&third, 3), ["SOA 3"]);
        assert_eq!(ixfr_records(&third, 0).len(), 6);
        // AXFR is the whole zone whatever the history.
        let mut stream = third
            .answer(&axfr(b"\x07example\x04test\x00"), CLIENT)
            .expect("an AXFR");
        let mut out = Vec::new();
        let mut records = 0;
        while stream.next_message(&mut out) {
            records += hickory_proto::op::Message::from_vec(&out)
                .expect("parses")
                .answers
                .len();
        }
        assert_eq!(records, 6);
    }

    #[test]
    fn history_stops_where_a_secondary_could_not_follow() {
        let first = version(5, "a A 192.0.2.10\n", None);
        // The same serial, other data: no version to send changes from.
        let silent = version(5, "a A 192.0.2.99\n", Some(&first));
        assert_eq!(ixfr_records(&silent, 4).len(), 5);
        let next = version(6, "a A 192.0.2.98\n", Some(&silent));
        assert_eq!(ixfr_records(&next, 5).len(), 6, "5 → 6 is one change");
        // Unchanged: the history stays.
        let again = version(6, "a A 192.0.2.98\n", Some(&next));
        assert_eq!(ixfr_records(&again, 5).len(), 6);
        // A serial that went back: no history (a client at 3 gets the
        // whole zone; one at 5 or 6 believes it is current).
        let back = version(4, "a A 192.0.2.97\n", Some(&again));
        assert_eq!(ixfr_records(&back, 3).len(), 5, "whole zone");
        let forward = version(7, "a A 192.0.2.96\n", Some(&back));
        assert_eq!(ixfr_records(&forward, 4).len(), 6);
        assert_eq!(ixfr_records(&forward, 5).len(), 5, "whole zone");
        let again = forward;
        // At most 32 changes: from 33 versions back, the whole zone.
        let mut latest = again;
        for serial in 8..=40 {
            latest = version(serial, &format!("a A 192.0.2.{serial}\n"), Some(&latest));
        }
        assert_eq!(ixfr_records(&latest, 7).len(), 5, "whole zone");
        assert_eq!(ixfr_records(&latest, 8).len(), 1 + 32 * 4 + 1);
    }

    #[test]
    fn only_transfer_questions_are_taken() {
        let query = |qtype: u16, flags: u8| {
            let mut packet = vec![0, 7, flags, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            packet.extend_from_slice(b"\x07example\x04test\x00");
            packet.extend_from_slice(&qtype.to_be_bytes());
            packet.extend_from_slice(&[0, 1]);
            packet
        };
        assert_eq!(transfer_question(&query(252, 0)), Some((12 + 14 + 4, 252)));
        assert_eq!(transfer_question(&query(251, 0)), Some((12 + 14 + 4, 251)));
        assert_eq!(transfer_question(&query(1, 0)), None);
        // A response, or another opcode: not ours.
        assert_eq!(transfer_question(&query(252, 0x80)), None);
        assert_eq!(transfer_question(&query(252, 0x20)), None);
        // Cut short anywhere: never a panic, never a question.
        let whole = query(252, 0);
        for end in 0..whole.len() {
            assert_eq!(transfer_question(&whole[..end]), None);
        }
    }
}
