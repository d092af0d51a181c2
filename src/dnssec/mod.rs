//! DNSSEC: zones signed online with the operator's keys (control plane).
//!
//! [`keys`] reads the key pairs of `[dnssec] keys` (BIND's file format);
//! [`sign`] adds DNSKEY, NSEC and RRSIG records to a zone, as a signer
//! would write them into the zone file. The table compiler then serves
//! the signed records: RRSIGs beside every RRset and NSEC proofs in
//! negative answers, to queries with the DO bit (RFC 4035 §3.1). Nothing
//! here runs on the query path; the only query-time work DNSSEC adds is
//! finding the NSEC that covers a name that does not exist, a binary
//! search in the table.

pub mod keys;
pub mod sign;

pub use keys::{KeyRing, ZoneKey, load_keys};
pub use sign::{KeyUse, Signing, canonical_cmp, sign_zone};
