//! Signing a zone: DNSKEY, the NSEC chain and an RRSIG for every
//! authoritative RRset, added to the zone's records.
//!
//! The output is what `dnssec-signzone` would write, as records the table
//! compiler reads like any others: it then serves the RRSIGs beside each
//! RRset and the NSEC records in negative answers to queries with the DO
//! bit. Signing happens on every compile of the zone (load, reload, and
//! the re-signing that keeps signatures fresh), off the query path; a
//! reload reuses the fresh signatures of RRsets that did not change
//! ([`SignatureCache`]).
//!
//! What is signed follows RFC 4035 §2: every RRset for which the zone is
//! authoritative; at a delegation only DS and NSEC; nothing below one
//! (glue). The NSEC chain (RFC 4034 §4) links the zone's owner names in
//! canonical order (RFC 4034 §6.1); empty non-terminals own no NSEC, and
//! a delegation's NSEC lists NS and DS only (RFC 4035 §2.3).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::keys::ZoneKey;
use super::online::{OnlineKey, OnlineSigner};
use crate::table::wire_lower;
use crate::zone::{Location, Zone, ZoneRecord};

/// How far back inception goes, for resolvers whose clock is behind.
pub const INCEPTION_SLACK: u64 = 3_600;

/// What signing a zone made, besides the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signing {
    /// When the signatures made now expire (Unix seconds).
    pub expires: u64,
    /// When the zone must be signed again: half the validity gone, or the
    /// next key event (a key published, activated, retired or deleted).
    pub refresh_at: u64,
    /// The keys in the DNSKEY RRset: tag, algorithm, KSK or not, signing.
    pub keys: Vec<KeyUse>,
    /// Records signing added (DNSKEY, NSEC, RRSIG).
    pub added: usize,
    /// RRSIGs in the zone: made by this signing, or reused from the last
    /// ([`SignatureCache`]).
    pub signatures: usize,
    /// Of those, the reused.
    pub reused: usize,
    /// For each steered name and type: the NSEC (and its RRSIGs) that
    /// proves NODATA when the policy leaves no answer for that type.
    pub nodata_proofs: Vec<NodataProof>,
    /// With NSEC3, the chain in hash order; empty with NSEC (whose
    /// records are in the zone).
    pub nsec3: Vec<Nsec3Entry>,
}

/// An NSEC3 owner hash: SHA-1 (RFC 5155 §5), 20 bytes.
pub type Nsec3Hash = [u8; 20];

/// One NSEC3 of a zone's chain, in hash order: its hash, the NSEC3
/// record (owned by the hash under the apex) and its RRSIGs. Kept apart
/// from the zone's records, since its owner name must not exist in the
/// zone (RFC 5155 §7.2.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nsec3Entry {
    /// The hashed name.
    pub hash: Nsec3Hash,
    /// The NSEC3, then its RRSIGs.
    pub records: Vec<Record>,
}

/// The NSEC3 hash of a lower-cased wire name with RFC 9276's parameters
/// (no salt, no extra iterations).
pub fn nsec3_hash(wire: &[u8]) -> Nsec3Hash {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, wire);
    let mut hash = [0u8; 20];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// The NODATA proof of a steered name for one type: an NSEC like the
/// name's own, without that type in its bitmap. The name's own NSEC lists
/// every type the policy can answer; when it answers none for this
/// client, a validator needs one that does not (RFC 4035 §3.1.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodataProof {
    /// The steered name.
    pub owner: Name,
    /// The type the proof denies.
    pub record_type: RecordType,
    /// The NSEC, then its RRSIGs.
    pub records: Vec<Record>,
}

/// One key of a signed zone, for `/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyUse {
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// KSK (SEP flag) or not.
    pub key_signing: bool,
    /// Whether it made signatures this time (else only published).
    pub signing: bool,
}

/// Canonical ordering of two lower-cased wire names (RFC 4034 §6.1):
/// label by label from the right, each label as bytes.
pub fn canonical_cmp(left: &[u8], right: &[u8]) -> Ordering {
    let left_labels = labels(left);
    let right_labels = labels(right);
    for (a, b) in left_labels.iter().rev().zip(right_labels.iter().rev()) {
        match a.cmp(b) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    left_labels.len().cmp(&right_labels.len())
}

/// The labels of a wire name, root excluded, leftmost first.
fn labels(wire: &[u8]) -> Vec<&[u8]> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(&length) = wire.get(at) {
        if length == 0 {
            break;
        }
        found.push(&wire[at + 1..at + 1 + usize::from(length)]);
        at += 1 + usize::from(length);
    }
    found
}

/// Writes the RDATA of an RRSIG without its signature (RFC 4034 §3.1):
/// the covered type, algorithm, labels and original TTL, the validity
/// period, the key tag and the signer's name. It begins the data signed.
pub(super) fn rrsig_prefix(
    out: &mut Vec<u8>,
    (covered, labels, ttl): (u16, u8, u32),
    (algorithm, tag): (u8, u16),
    (inception, expiration): (u32, u32),
    signer: &[u8],
) {
    out.extend_from_slice(&covered.to_be_bytes());
    out.push(algorithm);
    out.push(labels);
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&expiration.to_be_bytes());
    out.extend_from_slice(&inception.to_be_bytes());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(signer);
}

/// Writes one record in canonical form (RFC 4034 §6.2) as the data signed
/// holds it: owner (lower-cased wire), type, class IN, original TTL,
/// RDLENGTH, canonical RDATA.
pub(super) fn canonical_record(
    out: &mut Vec<u8>,
    owner: &[u8],
    (record_type, ttl): (u16, u32),
    rdata: &[u8],
) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&record_type.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// How many labels a wire name has, the root not counted.
pub(super) fn label_count(wire: &[u8]) -> usize {
    let mut count = 0;
    let mut at = 0;
    while let Some(&length) = wire.get(at) {
        if length == 0 {
            break;
        }
        count += 1;
        at += 1 + usize::from(length);
    }
    count
}

/// An owner's records while signing: the zone's, borrowed, and the
/// DNSKEY and NSEC records signing makes.
struct Owner<'zone> {
    name: Name,
    wire: Vec<u8>,
    /// RRsets: type, TTL of the first record, records in file order.
    sets: Vec<(RecordType, u32, Vec<Cow<'zone, Record>>)>,
    /// Types a policy answers here (`[[steer]]`), signed per answer.
    steered: Vec<RecordType>,
}

/// The signatures of the zones being served, kept so that the next
/// signing of an RRset that has not changed reuses its signature instead
/// of making one: a reload then costs a signature only for what changed,
/// as in BIND's and Knot's incremental signing, rather than one per RRset
/// of every signed zone (two million for a zone of a million names, tens
/// of seconds of every core). Keyed by a digest of what is signed (the
/// key, and the RRSIG fields and records without the validity times).
///
/// Held as one array sorted by digest, with an index of where each value
/// of the digest's first bits starts: 96 bytes an ECDSA or Ed25519
/// signature (an RSA one's bytes are apart, on the heap), where a hash
/// map's spare capacity would double that (two million signatures are
/// 190 MB this way).
#[derive(Debug, Default)]
pub struct SignatureCache {
    /// Sorted by digest.
    kept: Vec<(Digest, Kept)>,
    /// For each value of a digest's first `index_bits` bits, where its
    /// entries begin in `kept`; the last entry is `kept.len()`.
    starts: Vec<u32>,
    index_bits: u32,
}

/// The first 16 bytes of a SHA-256: two different RRsets share one with
/// odds of about 2^-88 in a zone of a million.
type Digest = [u8; 16];

/// Bytes of an ECDSA P-256 (r and s) or Ed25519 signature.
const SHORT_SIGNATURE: usize = 64;

/// A signature's bytes: held inline at the size of the elliptic-curve
/// algorithms', which most zones use, else (RSA: the modulus' length, 256
/// to 512 bytes) on the heap.
#[derive(Clone, Debug)]
enum Signature {
    Short([u8; SHORT_SIGNATURE]),
    Long(Box<[u8]>),
}

impl Signature {
    fn new(bytes: &[u8]) -> Signature {
        match <[u8; SHORT_SIGNATURE]>::try_from(bytes) {
            Ok(short) => Signature::Short(short),
            Err(_) => Signature::Long(bytes.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Signature::Short(bytes) => bytes,
            Signature::Long(bytes) => bytes,
        }
    }
}

/// A signature and its validity period.
#[derive(Clone, Debug)]
struct Kept {
    inception: u32,
    expiration: u32,
    signature: Signature,
}

/// The first bytes of a file [`SignatureCache::save`] writes: what it is,
/// and the version of its layout (little-endian: a count, then per
/// signature its digest, inception, expiration, length and bytes).
const SAVED_MAGIC: &[u8; 16] = b"steer-sigs-v1\n\0\0";

// The memory the cache's documentation promises per signature.
const _: () = assert!(std::mem::size_of::<(Digest, Kept)>() == 96);

impl SignatureCache {
    /// Signatures held.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// One cache of the signatures of several (the zones').
    pub fn combine(parts: Vec<SignatureCache>) -> SignatureCache {
        let mut parts = parts.into_iter();
        let Some(mut first) = parts.next() else {
            return SignatureCache::default();
        };
        for part in parts {
            first.kept.extend(part.kept);
        }
        Self::new(first.kept)
    }

    fn new(mut kept: Vec<(Digest, Kept)>) -> SignatureCache {
        kept.sort_unstable_by_key(|(digest, _)| *digest);
        kept.shrink_to_fit();
        // About one entry per index slot; digests are uniform.
        let index_bits = usize::BITS - kept.len().leading_zeros();
        let index_bits = index_bits.min(24);
        let mut starts = Vec::with_capacity((1 << index_bits) + 1);
        let mut at = 0;
        for slot in 0..1u32 << index_bits {
            while at < kept.len() && Self::slot(&kept[at].0, index_bits) < slot {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(kept.len() as u32);
        SignatureCache {
            kept,
            starts,
            index_bits,
        }
    }

    /// Writes the cache to `path` (a temporary file renamed over it), for
    /// the next start to sign only what changed: without it, a restart
    /// signs every RRset again (tens of seconds for a zone of a million
    /// names). Returns the bytes written.
    pub fn save(&self, path: &Path) -> std::io::Result<u64> {
        use std::io::Write;
        let mut written = (SAVED_MAGIC.len() + 8) as u64;
        crate::durable::replace_with(path, |out| {
            out.write_all(SAVED_MAGIC)?;
            out.write_all(&(self.kept.len() as u64).to_le_bytes())?;
            for (digest, kept) in &self.kept {
                let signature = kept.signature.as_slice();
                out.write_all(digest)?;
                out.write_all(&kept.inception.to_le_bytes())?;
                out.write_all(&kept.expiration.to_le_bytes())?;
                out.write_all(&(signature.len() as u16).to_le_bytes())?;
                out.write_all(signature)?;
                written += (digest.len() + 10 + signature.len()) as u64;
            }
            Ok(())
        })?;
        Ok(written)
    }

    /// Reads what [`SignatureCache::save`] wrote, without the signatures
    /// expired at `now`. A file that is not one says why; a signature is
    /// only ever reused for exactly the data and key it was made over (the
    /// digest covers both), so a stale file costs nothing but its reading.
    pub fn load(path: &Path, now: u64) -> Result<SignatureCache, String> {
        let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
        let body = bytes
            .strip_prefix(SAVED_MAGIC.as_slice())
            .ok_or("not a file of Steer's signatures")?;
        let (count, mut rest) = body.split_first_chunk::<8>().ok_or("cut short")?;
        let count = u64::from_le_bytes(*count);
        // Each entry takes at least 26 bytes: a count the file cannot
        // hold is a broken file, not an allocation to attempt.
        if count > (rest.len() / 26) as u64 {
            return Err(format!(
                "says {count} signatures, and is too short for them"
            ));
        }
        let mut kept = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (digest, after) = rest.split_first_chunk::<16>().ok_or("cut short")?;
            let (times, after) = after.split_first_chunk::<10>().ok_or("cut short")?;
            let inception = u32::from_le_bytes([times[0], times[1], times[2], times[3]]);
            let expiration = u32::from_le_bytes([times[4], times[5], times[6], times[7]]);
            let length = usize::from(u16::from_le_bytes([times[8], times[9]]));
            let (signature, after) = after.split_at_checked(length).ok_or("cut short")?;
            rest = after;
            if u64::from(expiration) > now {
                kept.push((
                    *digest,
                    Kept {
                        inception,
                        expiration,
                        signature: Signature::new(signature),
                    },
                ));
            }
        }
        if !rest.is_empty() {
            return Err("has bytes after its last signature".to_owned());
        }
        Ok(Self::new(kept))
    }

    /// The index slot of `digest`: its first `bits` bits.
    fn slot(digest: &Digest, bits: u32) -> u32 {
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        first.checked_shr(32 - bits).unwrap_or(0)
    }

    /// A signature for `digest` that may be served again, signed at `now`
    /// for `validity` seconds: one still valid for more than half of that
    /// (the half at which a zone is signed again), and not for longer than
    /// a signature made now would be (a shortened validity applies at once).
    fn reusable(&self, digest: &Digest, now: u64, validity: u64) -> Option<Kept> {
        let slot = Self::slot(digest, self.index_bits) as usize;
        let (start, end) = (*self.starts.get(slot)?, *self.starts.get(slot + 1)?);
        let candidates = &self.kept[start as usize..end as usize];
        let (_, kept) = candidates.iter().find(|(other, _)| other == digest)?;
        let expiration = u64::from(kept.expiration);
        (expiration > now + validity / 2 && expiration <= now + validity).then(|| kept.clone())
    }
}

/// Makes the RRSIGs over one RRset, or reuses those an earlier signing
/// made over the same data.
struct SetSigner<'keys> {
    apex: &'keys [u8],
    inception: u64,
    expires: u64,
    file: &'keys str,
    /// When the signing happens, and for how long signatures hold.
    now: u64,
    validity: u64,
    /// The signatures of the zones served so far.
    previous: &'keys SignatureCache,
    /// Every signature this signing used, made or reused, for the next.
    used: std::sync::Mutex<Vec<(Digest, Kept)>>,
    /// How many were reused.
    reused: std::sync::atomic::AtomicUsize,
}

impl SetSigner<'_> {
    fn sign(
        &self,
        owner: &Owner<'_>,
        set_type: RecordType,
        ttl: u32,
        records: &[Cow<'_, Record>],
        signers: &[&ZoneKey],
    ) -> Result<Vec<Record>, String> {
        let mut label_count = label_count(&owner.wire);
        if owner.wire.starts_with(b"\x01*") {
            label_count -= 1;
        }
        let mut rdatas = records
            .iter()
            .map(|record| canonical_rdata(record))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("{}: {}: {error}", self.file, owner.name))?;
        rdatas.sort();
        rdatas.dedup();
        let mut signatures = Vec::with_capacity(signers.len());
        let mut used = Vec::with_capacity(signers.len());
        for key in signers {
            let Some(signer) = &key.signer else { continue };
            let mut rrsig = Vec::with_capacity(128);
            // The times are written once known: the digest is of
            // everything else.
            rrsig_prefix(
                &mut rrsig,
                (u16::from(set_type), label_count as u8, ttl),
                (key.algorithm, key.tag),
                (0, 0),
                self.apex,
            );
            let mut signed = rrsig.clone();
            for rdata in &rdatas {
                canonical_record(&mut signed, &owner.wire, (u16::from(set_type), ttl), rdata);
            }
            let digest = {
                let mut context = ring::digest::Context::new(&ring::digest::SHA256);
                context.update(&key.public);
                context.update(&signed);
                let mut digest = Digest::default();
                digest.copy_from_slice(&context.finish().as_ref()[..16]);
                digest
            };
            let kept = match self.previous.reusable(&digest, self.now, self.validity) {
                Some(kept) => {
                    self.reused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    kept
                }
                None => {
                    // RFC 4034 §3.1.5: serial number arithmetic on 32 bits.
                    let (inception, expiration) = (self.inception as u32, self.expires as u32);
                    set_times(&mut signed, inception, expiration);
                    let made = signer
                        .sign(&signed)
                        .map_err(|error| format!("{}: {error}", key.file.display()))?;
                    Kept {
                        inception,
                        expiration,
                        signature: Signature::new(&made),
                    }
                }
            };
            set_times(&mut rrsig, kept.inception, kept.expiration);
            rrsig.extend_from_slice(kept.signature.as_slice());
            signatures.push(unknown(&owner.name, ttl, RecordType::RRSIG, rrsig));
            used.push((digest, kept));
        }
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(used);
        Ok(signatures)
    }
}

/// The keys that sign the DNSKEY RRset and those that sign the rest, of
/// the `active` keys: per algorithm, its KSKs and its ZSKs, or all of its
/// keys both when it lacks one kind (a combined signing key). Per
/// algorithm because every RRset needs a signature of each algorithm in
/// the DNSKEY RRset (RFC 4035 §2.2, RFC 6840 §5.11): in an algorithm
/// rollover the new algorithm may have a KSK only while the old one has
/// both.
fn split_roles<'keys>(active: &[&'keys ZoneKey]) -> (Vec<&'keys ZoneKey>, Vec<&'keys ZoneKey>) {
    let mut algorithms: Vec<u8> = active.iter().map(|key| key.algorithm).collect();
    algorithms.sort_unstable();
    algorithms.dedup();
    let (mut dnskey_signers, mut data_signers) = (Vec::new(), Vec::new());
    for algorithm in algorithms {
        let (key_signing, zone_signing): (Vec<&ZoneKey>, Vec<&ZoneKey>) = active
            .iter()
            .copied()
            .filter(|key| key.algorithm == algorithm)
            .partition(|key| key.is_key_signing());
        if key_signing.is_empty() {
            dnskey_signers.extend(&zone_signing);
        } else {
            dnskey_signers.extend(&key_signing);
        }
        if zone_signing.is_empty() {
            data_signers.extend(key_signing);
        } else {
            data_signers.extend(zone_signing);
        }
    }
    (dnskey_signers, data_signers)
}

/// Writes the validity period into RRSIG RDATA that [`rrsig_prefix`]
/// began.
fn set_times(rrsig: &mut [u8], inception: u32, expiration: u32) {
    rrsig[8..12].copy_from_slice(&expiration.to_be_bytes());
    rrsig[12..16].copy_from_slice(&inception.to_be_bytes());
}

/// The canonical RDATA of a record (RFC 4034 §6.2): no compression, and
/// names lower-cased for the types that list says.
fn canonical_rdata(record: &Record) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_form(true);
    record
        .data
        .emit(&mut encoder)
        .map_err(|error| format!("cannot encode {} data: {error}", record.record_type()))?;
    if record.record_type() == RecordType::DNAME {
        // Kept as its wire form (hickory has no DNAME type), and on RFC
        // 4034 §6.2's list: lower case. Length bytes (at most 63) are
        // below 'A', so lowering the whole name is safe.
        bytes.make_ascii_lowercase();
    }
    Ok(bytes)
}

fn parent(wire: &[u8]) -> Option<&[u8]> {
    let length = usize::from(*wire.first()?);
    (length > 0).then(|| &wire[1 + length..])
}

/// The NSEC type bitmap (RFC 4034 §4.1.2) of `types`.
fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut windows: std::collections::BTreeMap<u8, [u8; 32]> = Default::default();
    for &code in types {
        let window = windows.entry((code >> 8) as u8).or_insert([0; 32]);
        let low = (code & 0xFF) as usize;
        window[low / 8] |= 0x80 >> (low % 8);
    }
    let mut bytes = Vec::new();
    for (window, bits) in windows {
        let length = bits
            .iter()
            .rposition(|&byte| byte != 0)
            .map_or(0, |last| last + 1);
        bytes.push(window);
        bytes.push(length as u8);
        bytes.extend_from_slice(&bits[..length]);
    }
    bytes
}

fn unknown(name: &Name, ttl: u32, code: RecordType, rdata: Vec<u8>) -> Record {
    Record::from_rdata(
        name.clone(),
        ttl,
        RData::Unknown {
            code,
            rdata: NULL::with(rdata),
        },
    )
}

/// What signing a zone makes.
struct Signed {
    /// DNSKEY, NSEC and RRSIG records to add to the zone.
    records: Vec<ZoneRecord>,
    signing: Signing,
    signer: std::sync::Arc<OnlineSigner>,
    /// Every signature in the zone, for the next signing.
    cache: SignatureCache,
}

/// The types a denial record lists for `owner` (RFC 4035 §2.3, RFC 5155
/// §3.2): at a delegation NS and DS only, elsewhere every RRset, and the
/// types its policies answer. RRSIG and the record's own type are the
/// caller's to add.
fn owner_types(owner: &Owner<'_>, cut: bool) -> Vec<u16> {
    owner
        .sets
        .iter()
        .map(|(set_type, _, _)| *set_type)
        .filter(|set_type| !cut || matches!(set_type, RecordType::NS | RecordType::DS))
        .map(u16::from)
        .chain(owner.steered.iter().map(|&steered| u16::from(steered)))
        .collect()
}

/// For each type a policy answers at `original`: the denial record `make`
/// builds from `types` without that type, signed as owned by `holder` (the
/// name itself for NSEC, its hash for NSEC3), for the policy's NODATA.
fn steered_nodata(
    original: &Owner<'_>,
    holder: &Owner<'_>,
    types: &[u16],
    make: &dyn Fn(&[u16]) -> Record,
    (set_signer, signers): (&SetSigner<'_>, &[&ZoneKey]),
) -> Result<Vec<NodataProof>, String> {
    let mut proofs = Vec::with_capacity(original.steered.len());
    for &steered_type in &original.steered {
        let without: Vec<u16> = types
            .iter()
            .copied()
            .filter(|&code| code != u16::from(steered_type))
            .collect();
        let record = make(&without);
        let record_type = record.record_type();
        let mut records = set_signer.sign(
            holder,
            record_type,
            record.ttl,
            &[Cow::Borrowed(&record)],
            signers,
        )?;
        records.insert(0, record);
        proofs.push(NodataProof {
            owner: original.name.clone(),
            record_type: steered_type,
            records,
        });
    }
    Ok(proofs)
}

/// NSEC3 owners in hash order, each with its hash and its one NSEC3.
type HashedOwners<'zone> = Vec<(Nsec3Hash, Owner<'zone>)>;

/// The NSEC3 chain (RFC 5155 §7.1) over the authoritative owners of
/// `chain` and the empty non-terminals above them: each as an owner at its
/// hash, holding its unsigned NSEC3, in hash order; and the NODATA proofs
/// of the steered names. The bitmap is that of the original name: its
/// types, RRSIG where they are signed (not at an insecure delegation, nor
/// at an empty non-terminal), never NSEC3 itself.
fn nsec3_chain<'zone>(
    owners: &[Owner<'zone>],
    chain: &[usize],
    is_cut: &dyn Fn(&Owner<'zone>) -> bool,
    origin: &Name,
    ttl: u32,
    set_signer: &SetSigner<'_>,
    signers: &[&ZoneKey],
) -> Result<(HashedOwners<'zone>, Vec<NodataProof>), String> {
    // (hash, index of the owner, or None for an empty non-terminal).
    let mut names: Vec<(Nsec3Hash, Option<usize>)> = Vec::with_capacity(chain.len());
    let existing: std::collections::HashSet<&[u8]> = chain
        .iter()
        .map(|&index| owners[index].wire.as_slice())
        .collect();
    let apex_length = wire_lower(origin).len();
    let mut empty: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for &index in chain {
        names.push((nsec3_hash(&owners[index].wire), Some(index)));
        let mut at = parent(&owners[index].wire);
        while let Some(ancestor) = at {
            if ancestor.len() <= apex_length || existing.contains(ancestor) {
                break;
            }
            if empty.insert(ancestor.to_vec()) {
                names.push((nsec3_hash(ancestor), None));
            }
            at = parent(ancestor);
        }
    }
    names.sort_by_key(|(hash, _)| *hash);
    // RRSIG where the original name's RRsets are signed: not at an
    // insecure delegation, not at an empty non-terminal.
    let bitmap_types = |owner: &Owner<'zone>| -> Vec<u16> {
        let cut = is_cut(owner);
        let mut types = owner_types(owner, cut);
        let signed = !cut
            || owner
                .sets
                .iter()
                .any(|(set_type, _, _)| *set_type == RecordType::DS);
        if signed {
            types.push(u16::from(RecordType::RRSIG));
        }
        types
    };
    let hashed_owner = |hash: &Nsec3Hash| -> Result<Name, String> {
        let label = data_encoding::BASE32HEX_NOPAD
            .encode(hash)
            .to_ascii_lowercase();
        Name::from_ascii(&label)
            .and_then(|label| label.append_domain(origin))
            .map_err(|error| format!("{origin}: NSEC3 owner name: {error}"))
    };
    let rdata = |next: &Nsec3Hash, types: &[u16]| {
        // Algorithm 1 (SHA-1), flags 0, iterations 0, no salt.
        let mut rdata = vec![1, 0, 0, 0, 0, 20];
        rdata.extend_from_slice(next);
        rdata.extend_from_slice(&type_bitmap(types));
        rdata
    };
    let mut hashed = Vec::with_capacity(names.len());
    let mut proofs = Vec::new();
    for (position, (hash, index)) in names.iter().enumerate() {
        let next = &names[(position + 1) % names.len()].0;
        let name = hashed_owner(hash)?;
        let types = index
            .map(|index| bitmap_types(&owners[index]))
            .unwrap_or_default();
        let record = unknown(&name, ttl, RecordType::NSEC3, rdata(next, &types));
        let owner = Owner {
            wire: wire_lower(&name),
            name,
            sets: vec![(RecordType::NSEC3, ttl, vec![Cow::Owned(record)])],
            steered: Vec::new(),
        };
        if let Some(index) = index {
            let make =
                |types: &[u16]| unknown(&owner.name, ttl, RecordType::NSEC3, rdata(next, types));
            proofs.extend(steered_nodata(
                &owners[*index],
                &owner,
                &types,
                &make,
                (set_signer, signers),
            )?);
        }
        hashed.push((*hash, owner));
    }
    Ok((hashed, proofs))
}

/// Runs `work` over `items` on every core, a run of items per thread,
/// and returns what it made in the order of `items`. Signing costs tens of
/// microseconds an RRset, and a large zone has hundreds of thousands.
fn on_every_core<Item: Sync, Made: Send>(
    items: &[Item],
    file: &str,
    work: impl Fn(&Item) -> Result<Vec<Made>, String> + Sync,
) -> Result<Vec<Made>, String> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let run = items.len().div_ceil(threads).max(1024);
    let parts: Vec<Result<Vec<Made>, String>> = std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .chunks(run)
            .map(|part| {
                scope.spawn(move || {
                    let mut made = Vec::new();
                    for item in part {
                        made.extend(work(item)?);
                    }
                    Ok(made)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(format!("{file}: a signing thread panicked")))
            })
            .collect()
    });
    let mut made = Vec::with_capacity(items.len());
    for part in parts {
        made.extend(part?);
    }
    Ok(made)
}

/// Signs `zone` with `keys` at `now`: adds DNSKEY, NSEC and RRSIG records
/// to it and sets its [`Signing`] and the signer of its steered answers.
/// `steered` are the names and types policies answer in this zone: they
/// are in the NSEC chain, and get [`NodataProof`]s. A signature in
/// `previous` over the same data, still fresh, is reused. Returns the
/// signatures the zone now has, for the next signing. Errors name the
/// zone file; on error the zone is unchanged.
pub fn sign_zone(
    zone: &mut Zone,
    keys: &[ZoneKey],
    steered: &[(Name, RecordType)],
    (now, validity): (u64, u64),
    nsec3: bool,
    previous: &SignatureCache,
) -> Result<SignatureCache, String> {
    let signed = sign(zone, keys, steered, (now, validity), nsec3, previous)?;
    zone.records.extend(signed.records);
    zone.signing = Some(signed.signing);
    zone.signer = Some(signed.signer);
    Ok(signed.cache)
}

fn sign(
    zone: &Zone,
    keys: &[ZoneKey],
    steered: &[(Name, RecordType)],
    (now, validity): (u64, u64),
    nsec3: bool,
    previous: &SignatureCache,
) -> Result<Signed, String> {
    let file = zone.file.display();
    let file_text = file.to_string();
    let apex = wire_lower(&zone.origin);
    let published: Vec<&ZoneKey> = keys.iter().filter(|key| key.is_published(now)).collect();
    let active: Vec<&ZoneKey> = published
        .iter()
        .copied()
        .filter(|key| key.is_active(now))
        .collect();
    if active.is_empty() {
        return Err(format!(
            "{file}: zone {} has keys ({}) but none can sign now: each needs its .private file, \
             and its Activate time passed and Inactive time not yet",
            zone.origin,
            keys.iter()
                .map(|key| key.file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let (dnskey_signers, data_signers) = split_roles(&active);
    let (dnskey_signers, data_signers) = (&dnskey_signers, &data_signers);

    // Owners in file order, with their RRsets.
    let mut owners: Vec<Owner> = Vec::new();
    let mut by_wire: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut soa = None;
    for zone_record in &zone.records {
        let record = &zone_record.record;
        let record_type = record.record_type();
        if let RData::SOA(data) = &record.data {
            soa = Some((record.ttl, data.minimum));
        }
        let wire = wire_lower(&record.name);
        let index = *by_wire.entry(wire.clone()).or_insert_with(|| {
            owners.push(Owner {
                name: record.name.clone(),
                wire,
                sets: Vec::new(),
                steered: Vec::new(),
            });
            owners.len() - 1
        });
        let sets = &mut owners[index].sets;
        match sets
            .iter_mut()
            .find(|(set_type, _, _)| *set_type == record_type)
        {
            Some((_, _, records)) => records.push(Cow::Borrowed(record)),
            None => sets.push((record_type, record.ttl, vec![Cow::Borrowed(record)])),
        }
    }
    let Some((soa_ttl, minimum)) = soa else {
        return Err(format!("{file}: zone has no SOA"));
    };
    for (name, record_type) in steered {
        let wire = wire_lower(name);
        let index = *by_wire.entry(wire.clone()).or_insert_with(|| {
            owners.push(Owner {
                name: name.clone(),
                wire,
                sets: Vec::new(),
                steered: Vec::new(),
            });
            owners.len() - 1
        });
        owners[index].steered.push(*record_type);
    }
    let negative_ttl = soa_ttl.min(minimum);
    let is_cut = |owner: &Owner| {
        owner.wire != apex
            && owner
                .sets
                .iter()
                .any(|(set_type, _, _)| *set_type == RecordType::NS)
    };
    let cuts: std::collections::HashSet<Vec<u8>> = owners
        .iter()
        .filter(|owner| is_cut(owner))
        .map(|owner| owner.wire.clone())
        .collect();
    let occluded = |wire: &[u8]| {
        let mut at = parent(wire);
        while let Some(ancestor) = at {
            if ancestor.len() < apex.len() {
                break;
            }
            if cuts.contains(ancestor) {
                return true;
            }
            at = parent(ancestor);
        }
        false
    };

    let mut added: Vec<Record> = Vec::new();
    // DNSKEY at the apex: the published keys.
    let apex_index = *by_wire
        .get(&apex)
        .ok_or_else(|| format!("{file}: zone has no records at its apex"))?;
    let dnskeys: Vec<Record> = published
        .iter()
        .map(|key| {
            unknown(
                &owners[apex_index].name,
                soa_ttl,
                RecordType::DNSKEY,
                key.dnskey_rdata(),
            )
        })
        .collect();
    owners[apex_index].sets.push((
        RecordType::DNSKEY,
        soa_ttl,
        dnskeys.into_iter().map(Cow::Owned).collect(),
    ));
    // CDS and CDNSKEY (RFC 7344, RFC 8078): the DS the parent should
    // publish, for the KSKs whose SyncPublish time has come. A parent
    // that scans for them (many ccTLDs do) updates its DS by itself.
    let syncing: Vec<&&ZoneKey> = published
        .iter()
        .filter(|key| key.is_sync_published(now))
        .collect();
    if !syncing.is_empty() {
        let apex_name = owners[apex_index].name.clone();
        let cds = syncing
            .iter()
            .map(|key| {
                let rdata = key.dnskey_rdata();
                let mut digested = apex.clone();
                digested.extend_from_slice(&rdata);
                let digest = ring::digest::digest(&ring::digest::SHA256, &digested);
                let mut ds = Vec::with_capacity(4 + 32);
                ds.extend_from_slice(&key.tag.to_be_bytes());
                ds.push(key.algorithm);
                // Digest type 2: SHA-256 (RFC 4509), the one RFC 8624 asks for.
                ds.push(2);
                ds.extend_from_slice(digest.as_ref());
                Cow::Owned(unknown(&apex_name, soa_ttl, RecordType::CDS, ds))
            })
            .collect();
        let cdnskey = syncing
            .iter()
            .map(|key| {
                Cow::Owned(unknown(
                    &apex_name,
                    soa_ttl,
                    RecordType::CDNSKEY,
                    key.dnskey_rdata(),
                ))
            })
            .collect();
        let sets = &mut owners[apex_index].sets;
        sets.push((RecordType::CDS, soa_ttl, cds));
        sets.push((RecordType::CDNSKEY, soa_ttl, cdnskey));
    }

    // The NSEC chain over the authoritative owners.
    let mut chain: Vec<usize> = (0..owners.len())
        .filter(|&index| !occluded(&owners[index].wire))
        .collect();
    chain.sort_by(|&left, &right| canonical_cmp(&owners[left].wire, &owners[right].wire));
    let set_signer = SetSigner {
        apex: &apex,
        inception: now.saturating_sub(INCEPTION_SLACK),
        expires: now + validity,
        file: &file_text,
        now,
        validity,
        previous,
        used: std::sync::Mutex::default(),
        reused: std::sync::atomic::AtomicUsize::new(0),
    };
    let mut nodata_proofs = Vec::new();
    let mut nsec3_owners: Vec<(Nsec3Hash, Owner<'_>)> = Vec::new();
    if nsec3 {
        // RFC 9276's parameters: SHA-1, no extra iterations, no salt, no
        // opt-out; NSEC3PARAM says so to secondaries and tools.
        let apex_name = owners[apex_index].name.clone();
        let parameters = unknown(&apex_name, 0, RecordType::NSEC3PARAM, vec![1, 0, 0, 0, 0]);
        owners[apex_index]
            .sets
            .push((RecordType::NSEC3PARAM, 0, vec![Cow::Owned(parameters)]));
        let (chain_owners, proofs) = nsec3_chain(
            &owners,
            &chain,
            &is_cut,
            &zone.origin,
            negative_ttl,
            &set_signer,
            data_signers,
        )?;
        nsec3_owners = chain_owners;
        nodata_proofs = proofs;
    } else {
        for (position, &index) in chain.iter().enumerate() {
            let next = &owners[chain[(position + 1) % chain.len()]];
            let owner = &owners[index];
            // The NSEC itself is signed, at a delegation too: RRSIG always.
            let mut types = owner_types(owner, is_cut(owner));
            types.push(u16::from(RecordType::RRSIG));
            types.push(u16::from(RecordType::NSEC));
            let make = |types: &[u16]| {
                let mut rdata = next.wire.clone();
                rdata.extend_from_slice(&type_bitmap(types));
                unknown(&owner.name, negative_ttl, RecordType::NSEC, rdata)
            };
            nodata_proofs.extend(steered_nodata(
                owner,
                owner,
                &types,
                &make,
                (&set_signer, data_signers),
            )?);
            let record = make(&types);
            owners[index]
                .sets
                .push((RecordType::NSEC, negative_ttl, vec![Cow::Owned(record)]));
        }
    }

    // Signatures over every authoritative RRset, then over the NSEC3s.
    added.extend(on_every_core(&chain, &file_text, |&index| {
        let owner = &owners[index];
        let cut = is_cut(owner);
        let mut made = Vec::new();
        for (set_type, ttl, records) in &owner.sets {
            if cut && !matches!(set_type, RecordType::DS | RecordType::NSEC) {
                continue;
            }
            // RFC 7344 §4.1: CDS and CDNSKEY are signed by a key the
            // parent's DS points at, as DNSKEY is.
            let signers = if matches!(
                set_type,
                RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
            ) {
                dnskey_signers
            } else {
                data_signers
            };
            made.extend(set_signer.sign(owner, *set_type, *ttl, records, signers)?);
        }
        Ok(made)
    })?);
    let nsec3_chain_entries = on_every_core(&nsec3_owners, &file_text, |(hash, owner)| {
        let (_, ttl, records) = &owner.sets[0];
        let mut signed = set_signer.sign(owner, RecordType::NSEC3, *ttl, records, data_signers)?;
        signed.insert(0, records[0].as_ref().clone());
        Ok(vec![Nsec3Entry {
            hash: *hash,
            records: signed,
        }])
    })?;
    for owner in &owners {
        for (set_type, _, records) in &owner.sets {
            if matches!(
                set_type,
                RecordType::DNSKEY
                    | RecordType::CDS
                    | RecordType::CDNSKEY
                    | RecordType::NSEC
                    | RecordType::NSEC3PARAM
            ) {
                added.extend(records.iter().map(|record| record.as_ref().clone()));
            }
        }
    }

    let location = Location {
        file: std::sync::Arc::from(zone.file.as_path()),
        line: 0,
    };
    let added_count = added.len();
    let records = added
        .into_iter()
        .map(|record| ZoneRecord {
            record,
            location: location.clone(),
        })
        .collect();
    let signer = std::sync::Arc::new(OnlineSigner::new(
        &apex,
        set_signer.inception,
        set_signer.expires,
        data_signers
            .iter()
            .filter_map(|key| {
                Some(OnlineKey {
                    tag: key.tag,
                    algorithm: key.algorithm,
                    signer: std::sync::Arc::clone(key.signer.as_ref()?),
                })
            })
            .collect(),
    ));
    let reused = set_signer.reused.into_inner();
    let used = set_signer
        .used
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The oldest signature decides: a reused one expires before a new one.
    let expires = used
        .iter()
        .map(|(_, kept)| u64::from(kept.expiration))
        .min()
        .unwrap_or(set_signer.expires);
    let next_event = keys.iter().filter_map(|key| key.next_event(now)).min();
    let half_life = expires - validity / 2;
    let refresh_at = next_event.map_or(half_life, |event| event.min(half_life));
    let signing = Signing {
        added: added_count,
        signatures: used.len(),
        reused,
        expires,
        refresh_at,
        keys: published
            .iter()
            .map(|key| KeyUse {
                tag: key.tag,
                algorithm: key.algorithm,
                key_signing: key.is_key_signing(),
                signing: active.iter().any(|signer| std::ptr::eq(*signer, *key))
                    && (dnskey_signers.iter().chain(data_signers.iter()))
                        .any(|signer| std::ptr::eq(*signer, *key)),
            })
            .collect(),
        nodata_proofs,
        nsec3: nsec3_chain_entries,
    };
    Ok(Signed {
        records,
        signing,
        signer,
        cache: SignatureCache::new(used),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The lower-cased wire form of a name given as labels.
    pub(crate) fn wire(labels: &[&[u8]]) -> Vec<u8> {
        let mut wire = Vec::new();
        for label in labels {
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        wire
    }

    /// RFC 4034 §6.1's example names, in canonical order.
    pub(crate) const RFC_4034_ORDER: [&[&[u8]]; 9] = [
        &[b"example"],
        &[b"a", b"example"],
        &[b"yljkjljk", b"a", b"example"],
        &[b"Z", b"a", b"example"],
        &[b"zABC", b"a", b"EXAMPLE"],
        &[b"z", b"example"],
        &[b"\x01", b"z", b"example"],
        &[b"*", b"z", b"example"],
        &[b"\x80", b"z", b"example"],
    ];

    #[test]
    fn canonical_order_is_rfc_4034_example() {
        let wires: Vec<Vec<u8>> = RFC_4034_ORDER.iter().map(|labels| wire(labels)).collect();
        for pair in wires.windows(2) {
            assert_eq!(
                canonical_cmp(&pair[0], &pair[1]),
                Ordering::Less,
                "{pair:?}"
            );
        }
    }

    const ZONE: &str = "$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 300
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.10
mail MX 10 www
";
    /// Two weeks, Steer's default.
    const VALIDITY: u64 = 14 * 86_400;
    const NOW: u64 = 1_800_000_000;

    fn zone(text: &str) -> Zone {
        let origin = Name::from_ascii("example.test.").expect("name");
        crate::zone::parse_zone(text, std::path::Path::new("example.test.zone"), &origin)
            .expect("zone parses")
    }

    /// A combined signing key (Ed25519) for example.test.
    fn key() -> ZoneKey {
        ZoneKey::generate_ed25519(wire(&[b"example", b"test"])).expect("a key")
    }

    /// Signs `text` at `now` for `validity`, reusing from `previous`.
    fn signed(
        text: &str,
        key: &ZoneKey,
        (now, validity): (u64, u64),
        previous: &SignatureCache,
    ) -> (Zone, SignatureCache) {
        let mut zone = zone(text);
        let cache = sign_zone(
            &mut zone,
            std::slice::from_ref(key),
            &[],
            (now, validity),
            false,
            previous,
        )
        .expect("signs");
        (zone, cache)
    }

    /// Each RRSIG of the zone: owner, covered type, inception and the
    /// whole RDATA.
    fn rrsigs(zone: &Zone) -> Vec<(String, u16, u32, Vec<u8>)> {
        let mut rrsigs: Vec<_> = zone
            .records
            .iter()
            .filter_map(|record| match &record.record.data {
                RData::Unknown { code, rdata } if *code == RecordType::RRSIG => {
                    let bytes = rdata.anything.clone();
                    Some((
                        record.record.name.to_ascii(),
                        u16::from_be_bytes([bytes[0], bytes[1]]),
                        u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
                        bytes,
                    ))
                }
                _ => None,
            })
            .collect();
        rrsigs.sort();
        rrsigs
    }

    #[test]
    fn signing_an_unchanged_zone_again_reuses_every_signature() {
        let key = key();
        let (first, cache) = signed(ZONE, &key, (NOW, VALIDITY), &SignatureCache::default());
        let made = first.signing.as_ref().expect("signed");
        assert_eq!(made.reused, 0);
        // SOA, NS, DNSKEY and the NSEC at the apex; A and NSEC at ns1 and
        // www; MX and NSEC at mail.
        assert_eq!(made.signatures, 10);
        assert_eq!(cache.len(), 10);
        let (again, cache_again) = signed(ZONE, &key, (NOW + 600, VALIDITY), &cache);
        let signing = again.signing.as_ref().expect("signed");
        assert_eq!((signing.signatures, signing.reused), (10, 10));
        assert_eq!(rrsigs(&again), rrsigs(&first));
        assert_eq!(cache_again.len(), 10);
        // Still the first signing's times.
        assert_eq!(signing.expires, NOW + VALIDITY);
        assert_eq!(signing.refresh_at, NOW + VALIDITY / 2);
    }

    #[test]
    fn a_changed_rrset_alone_is_signed_again() {
        let key = key();
        let (first, cache) = signed(ZONE, &key, (NOW, VALIDITY), &SignatureCache::default());
        let changed = ZONE.replace("192.0.2.10", "192.0.2.11");
        let (again, _) = signed(&changed, &key, (NOW + 600, VALIDITY), &cache);
        assert_eq!(again.signing.as_ref().expect("signed").reused, 9);
        let inception = |zone: &Zone, owner: &str, covered: u16| {
            rrsigs(zone)
                .into_iter()
                .find(|rrsig| rrsig.0 == owner && rrsig.1 == covered)
                .map(|rrsig| rrsig.2)
                .expect("an RRSIG")
        };
        let www = "www.example.test.";
        let old = (NOW - INCEPTION_SLACK) as u32;
        let new = (NOW + 600 - INCEPTION_SLACK) as u32;
        assert_eq!(inception(&first, www, 1), old);
        assert_eq!(inception(&again, www, 1), new);
        // Its NSEC lists the same types: kept.
        assert_eq!(inception(&again, www, 47), old);
        assert_eq!(inception(&again, "ns1.example.test.", 1), old);
        // The oldest signature sets when the zone is signed again.
        assert_eq!(
            again.signing.as_ref().expect("signed").refresh_at,
            NOW + VALIDITY / 2
        );
    }

    #[test]
    fn signatures_half_way_to_expiry_are_made_again() {
        let key = key();
        let (_, cache) = signed(ZONE, &key, (NOW, VALIDITY), &SignatureCache::default());
        let reused = |now: u64, validity: u64| {
            let (zone, _) = signed(ZONE, &key, (now, validity), &cache);
            zone.signing.expect("signed").reused
        };
        assert_eq!(reused(NOW + VALIDITY / 2 - 1, VALIDITY), 10);
        // When the resigner signs again: every signature made anew.
        assert_eq!(reused(NOW + VALIDITY / 2, VALIDITY), 0);
        // A validity shortened since: none outlives it.
        assert_eq!(reused(NOW + 600, VALIDITY / 4), 0);
        // Lengthened: kept, until half of the new one is gone.
        assert_eq!(reused(NOW + 600, VALIDITY + 86_400), 10);
        let fresh = signed(ZONE, &key, (NOW + 600, VALIDITY), &cache).0;
        assert_eq!(fresh.signing.expect("signed").expires, NOW + VALIDITY);
    }

    #[test]
    fn the_cache_finds_every_digest_it_holds_and_no_other() {
        use ring::rand::SecureRandom;
        let random = ring::rand::SystemRandom::new();
        for count in [0usize, 1, 2, 3, 1000, 5000] {
            let entries: Vec<(Digest, Kept)> = (0..count)
                .map(|index| {
                    let mut digest = Digest::default();
                    random.fill(&mut digest).expect("random bytes");
                    let kept = Kept {
                        inception: index as u32,
                        expiration: (NOW + VALIDITY) as u32,
                        signature: Signature::new(&[index as u8; SHORT_SIGNATURE]),
                    };
                    (digest, kept)
                })
                .collect();
            let cache = SignatureCache::new(entries.clone());
            assert_eq!(cache.len(), count);
            for (digest, kept) in &entries {
                let found = cache.reusable(digest, NOW, VALIDITY).expect("held");
                assert_eq!(found.inception, kept.inception);
            }
            let mut other = Digest::default();
            random.fill(&mut other).expect("random bytes");
            assert!(cache.reusable(&other, NOW, VALIDITY).is_none());
        }
    }

    #[test]
    fn a_saved_cache_reads_back_without_what_expired() {
        let directory = tempfile::tempdir().expect("directory");
        let path = directory.path().join("steer.signatures");
        let entry = |first: u8, expiration: u64, signature: &[u8]| {
            (
                [first; 16],
                Kept {
                    inception: 7,
                    expiration: expiration as u32,
                    signature: Signature::new(signature),
                },
            )
        };
        let cache = SignatureCache::new(vec![
            entry(1, NOW + VALIDITY, &[0xAB; SHORT_SIGNATURE]),
            // RSA-sized.
            entry(2, NOW + VALIDITY, &[0xCD; 256]),
            entry(3, NOW - 1, &[0xEF; SHORT_SIGNATURE]),
        ]);
        let bytes = cache.save(&path).expect("saved");
        assert_eq!(bytes, std::fs::metadata(&path).expect("file").len());
        let read = SignatureCache::load(&path, NOW).expect("read");
        assert_eq!(read.len(), 2);
        for (digest, signature) in [([1; 16], vec![0xAB; 64]), ([2; 16], vec![0xCD; 256])] {
            let kept = read.reusable(&digest, NOW, VALIDITY).expect("kept");
            assert_eq!(kept.signature.as_slice(), signature.as_slice());
            assert_eq!(kept.inception, 7);
        }
        // Broken files say so, and are not half read.
        let whole = std::fs::read(&path).expect("file");
        for (broken, why) in [
            (b"something else entirely".to_vec(), "not a file"),
            (whole[..whole.len() - 1].to_vec(), "cut short"),
            ([whole.as_slice(), b"x"].concat(), "bytes after"),
            (
                [&whole[..16], &u64::MAX.to_le_bytes()[..], &whole[24..]].concat(),
                "too short",
            ),
        ] {
            std::fs::write(&path, broken).expect("file");
            let error = SignatureCache::load(&path, NOW).expect_err("broken");
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn another_key_makes_its_own_signatures() {
        let (_, cache) = signed(ZONE, &key(), (NOW, VALIDITY), &SignatureCache::default());
        let (zone, _) = signed(ZONE, &key(), (NOW + 600, VALIDITY), &cache);
        assert_eq!(zone.signing.expect("signed").reused, 0);
    }

    #[test]
    fn bitmap_is_rfc_4034_example() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let bitmap = type_bitmap(&[1, 15, 46, 47, 1234]);
        assert_eq!(
            bitmap,
            [
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20
            ]
        );
    }
}
