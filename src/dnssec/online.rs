//! Signatures made at query time, for steered answers.
//!
//! A steered name's RRset is chosen per query: which pool, which of its
//! addresses are healthy, which one a weighted or sticky step picked. The
//! sets it can take are few for any real policy but cannot all be listed
//! at compile time (every subset of a pool's healthy addresses is one), so
//! they are signed when first answered and the signature is kept in a
//! cache of each answering thread. Every later answer with the same RRset
//! copies it: a hash, a comparison, a copy, and no allocation once the
//! cache and its scratch buffer exist (made on the thread's first signed
//! answer). A miss costs one signature, some tens of microseconds with
//! ECDSA or Ed25519, about a millisecond with 2048-bit RSA; a client
//! cannot cause more misses than the policy has answers, since it never
//! chooses the records.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::keys::Signer;
use super::sign::{canonical_record, label_count, rrsig_prefix};

/// RRSIG's type code.
const TYPE_RRSIG: u16 = 46;
/// CNAME's type code: its RDATA is a name, lower-cased for signing.
const TYPE_CNAME: u16 = 5;
/// Signatures each thread keeps (direct-mapped by hash).
const CACHE_ENTRIES: usize = 1024;
/// Longest RRSIG RDATA: 18 fixed bytes, a signer name, and a signature of
/// up to 512 bytes (RSA with a 4096-bit modulus; ECDSA and Ed25519 make
/// 64). A thread's cache is then about 800 KB.
const MAX_RRSIG: usize = 18 + 255 + 512;

/// Numbers every signer made, so that cached signatures of an older
/// table (other keys, other validity) are never used by a newer one.
static NEXT_SIGNER: AtomicU64 = AtomicU64::new(1);

/// One key that signs answers.
#[derive(Clone)]
pub struct OnlineKey {
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// The private key.
    pub signer: Arc<Signer>,
}

/// What a signed zone signs steered answers with: its zone signing keys
/// and the validity period of its compile.
pub struct OnlineSigner {
    id: u64,
    /// The zone apex, lower-cased wire form: the RRSIG's signer name.
    apex: Box<[u8]>,
    inception: u32,
    expiration: u32,
    keys: Vec<OnlineKey>,
}

impl std::fmt::Debug for OnlineSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OnlineSigner")
            .field("id", &self.id)
            .field(
                "keys",
                &self.keys.iter().map(|key| key.tag).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A cached signature: the hash of what was signed, and the RRSIG RDATA.
struct Entry {
    hash: u128,
    length: u16,
    rdata: [u8; MAX_RRSIG],
}

/// A thread's signatures, and the buffer the data to sign is put in.
struct Cache {
    entries: Vec<Entry>,
    scratch: Vec<u8>,
    /// Where each record's canonical form is in `scratch`, to sort them.
    records: Vec<(u32, u32)>,
}

thread_local! {
    static CACHE: RefCell<Option<Box<Cache>>> = const { RefCell::new(None) };
}

impl OnlineSigner {
    /// A signer for the zone `apex` (lower-cased wire form) whose
    /// signatures run from `inception` to `expiration` (Unix seconds).
    pub fn new(apex: &[u8], inception: u64, expiration: u64, keys: Vec<OnlineKey>) -> Self {
        Self {
            id: NEXT_SIGNER.fetch_add(1, Ordering::Relaxed),
            apex: apex.into(),
            // RFC 4034 §3.1.5: serial number arithmetic on 32 bits.
            inception: inception as u32,
            expiration: expiration as u32,
            keys,
        }
    }

    /// Appends to `out` the RRSIGs over the `count` records at
    /// `out[start..]`, which a steered answer just wrote: all owned by the
    /// question (`0xC00C`), whose lower-cased wire form is `owner`, of one
    /// type and TTL. Returns how many were appended.
    pub fn sign_answer(&self, owner: &[u8], out: &mut Vec<u8>, start: usize, count: u16) -> u16 {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let cache = cache.get_or_insert_with(|| {
                Box::new(Cache {
                    entries: (0..CACHE_ENTRIES)
                        .map(|_| Entry {
                            hash: 0,
                            length: 0,
                            rdata: [0; MAX_RRSIG],
                        })
                        .collect(),
                    scratch: Vec::with_capacity(128 * 1024),
                    records: Vec::with_capacity(crate::policy::MAX_ANSWER),
                })
            });
            self.sign_with(cache, owner, out, start, count)
        })
    }

    fn sign_with(
        &self,
        cache: &mut Cache,
        owner: &[u8],
        out: &mut Vec<u8>,
        start: usize,
        count: u16,
    ) -> u16 {
        // Each record: 0xC00C, type, class, TTL, RDLENGTH, RDATA.
        let Some((record_type, ttl)) = out.get(start + 2..start + 10).map(|fixed| {
            (
                u16::from_be_bytes([fixed[0], fixed[1]]),
                u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            )
        }) else {
            return 0;
        };
        // The canonical records (RFC 4034 §6.3), each in `scratch`, sorted
        // by RDATA (which follows the same owner, type, class and TTL).
        cache.scratch.clear();
        cache.records.clear();
        let mut at = start;
        for _ in 0..count {
            let Some(length) = out
                .get(at + 10..at + 12)
                .map(|bytes| usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
            else {
                return 0;
            };
            let Some(rdata) = out.get(at + 12..at + 12 + length) else {
                return 0;
            };
            let begin = cache.scratch.len();
            canonical_record(&mut cache.scratch, owner, (record_type, ttl), rdata);
            let rdata_at = cache.scratch.len() - length;
            if record_type == TYPE_CNAME {
                cache.scratch[rdata_at..].make_ascii_lowercase();
            }
            cache
                .records
                .push((begin as u32, cache.scratch.len() as u32));
            at += 12 + length;
        }
        let prefix_length = owner.len() + 10;
        {
            let (scratch, records) = (&cache.scratch, &mut cache.records);
            records.sort_unstable_by(|left, right| {
                scratch[left.0 as usize + prefix_length..left.1 as usize]
                    .cmp(&scratch[right.0 as usize + prefix_length..right.1 as usize])
            });
        }
        let records_end = cache.scratch.len();
        let labels = label_count(owner) as u8;
        let mut appended = 0;
        for key in &self.keys {
            // The data to sign: RRSIG RDATA without the signature, then
            // the sorted records, built after the records in `scratch`.
            cache.scratch.truncate(records_end);
            let rdata_start = cache.scratch.len();
            rrsig_prefix(
                &mut cache.scratch,
                (record_type, labels, ttl),
                (key.algorithm, key.tag),
                (self.inception, self.expiration),
                &self.apex,
            );
            let prefix_end = cache.scratch.len();
            for index in 0..cache.records.len() {
                let (begin, end) = cache.records[index];
                cache
                    .scratch
                    .extend_from_within(begin as usize..end as usize);
            }
            let data = &cache.scratch[rdata_start..];
            let hash = {
                use std::hash::Hasher;
                let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(self.id, 0);
                hasher.write(data);
                siphasher::sip128::Hasher128::finish128(&hasher).as_u128()
            };
            let slot = (hash as usize) % CACHE_ENTRIES;
            let entry = &mut cache.entries[slot];
            if entry.hash != hash || entry.length == 0 {
                let Ok(signature) = key.signer.sign(data) else {
                    continue;
                };
                let prefix = &cache.scratch[rdata_start..prefix_end];
                let length = prefix.len() + signature.len();
                if length > MAX_RRSIG {
                    continue;
                }
                entry.rdata[..prefix.len()].copy_from_slice(prefix);
                entry.rdata[prefix.len()..length].copy_from_slice(&signature);
                entry.length = length as u16;
                entry.hash = hash;
            }
            let rdata = &entry.rdata[..usize::from(entry.length)];
            out.extend_from_slice(&[0xC0, 0x0C]);
            out.extend_from_slice(&TYPE_RRSIG.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
            appended += 1;
        }
        appended
    }
}
