//! DNSSEC: zones signed online with the operator's keys (control plane).
//!
//! [`keys`] reads the key pairs of `[dnssec] keys` (BIND's file format);
//! [`sign`] adds DNSKEY, NSEC and RRSIG records to a zone, as a signer
//! would write them into the zone file. The table compiler then serves
//! the signed records: RRSIGs beside every RRset and NSEC proofs in
//! negative answers, to queries with the DO bit (RFC 4035 §3.1). The
//! query-time work DNSSEC adds is finding the NSEC that covers a name
//! that does not exist (a binary search in the table) and, for steered
//! answers, which are chosen per query, [`online`]'s signatures: made on
//! the first answer of each RRset, then copied from a per-thread cache.

pub mod keys;
pub mod online;
pub mod sign;

pub use keys::{KeyRing, ZoneKey, load_keys};
pub use online::OnlineSigner;
pub use sign::{KeyUse, NodataProof, Signing, canonical_cmp, sign_zone};
