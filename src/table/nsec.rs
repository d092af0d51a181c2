//! Finding the NSEC or NSEC3 record that covers a name, at query time.
//!
//! A signed zone's NSEC owners are kept sorted by a byte key that orders
//! as RFC 4034 §6.1's canonical order does: the labels from the right,
//! each lower-cased, with its bytes 0 and 1 escaped (as 1 1 and 1 2) and
//! a 0 after it, so that a label sorts before every longer label it
//! starts, and a name before every name below it. The key of a query
//! name is built on the stack; the search is a binary search over the
//! sorted keys. An NSEC3 zone's records are kept in the order of their
//! hashes, and a name is hashed (SHA-1, RFC 9276's parameters) and
//! searched the same way. Nothing allocates.

use super::Section;

/// Room for the key of any name: 255 wire bytes, every byte escaped.
pub(super) const MAX_KEY: usize = 512;

/// Writes the canonical-order key of the wire name `wire` (lower case or
/// not) into `out`; returns its length.
pub(super) fn canonical_key(wire: &[u8], out: &mut [u8; MAX_KEY]) -> usize {
    let mut starts = [0u8; 128];
    let mut count = 0;
    let mut at = 0usize;
    while let Some(&length) = wire.get(at) {
        if length == 0 || count == starts.len() {
            break;
        }
        starts[count] = at as u8;
        count += 1;
        at += 1 + usize::from(length);
    }
    let mut written = 0;
    for &start in starts[..count].iter().rev() {
        let start = usize::from(start);
        let length = usize::from(wire[start]);
        for &byte in wire.get(start + 1..start + 1 + length).unwrap_or_default() {
            let byte = byte.to_ascii_lowercase();
            let escaped: &[u8] = match byte {
                0 => &[1, 1],
                1 => &[1, 2],
                _ => std::slice::from_ref(&byte),
            };
            if written + escaped.len() + 1 > MAX_KEY {
                return written;
            }
            out[written..written + escaped.len()].copy_from_slice(escaped);
            written += escaped.len();
        }
        out[written] = 0;
        written += 1;
    }
    written
}

/// A zone's NSEC records in canonical order, with their proof sections.
#[derive(Default)]
pub(super) struct NsecIndex {
    keys: Vec<u8>,
    /// Where each key ends in `keys`.
    ends: Vec<u32>,
    /// Per NSEC owner: the NSEC record and its RRSIGs, uncompressed.
    proofs: Vec<Section>,
}

impl NsecIndex {
    /// Adds the next owner (callers add them in canonical order).
    pub(super) fn push(&mut self, key: &[u8], proof: Section) {
        self.keys.extend_from_slice(key);
        self.ends.push(self.keys.len() as u32);
        self.proofs.push(proof);
    }

    /// True for an unsigned zone.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.proofs.is_empty()
    }

    fn key(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.keys[start..self.ends[index] as usize]
    }

    /// The proof of the NSEC that owns `wire` or covers it (its owner is
    /// the last one before `wire` in canonical order).
    #[inline]
    pub(super) fn covering(&self, wire: &[u8]) -> Option<&Section> {
        if self.proofs.is_empty() {
            return None;
        }
        let mut buffer = [0u8; MAX_KEY];
        let length = canonical_key(wire, &mut buffer);
        let key = &buffer[..length];
        let mut low = 0usize;
        let mut high = self.proofs.len();
        // The first owner whose key is greater than `key`.
        while low < high {
            let middle = (low + high) / 2;
            if self.key(middle) <= key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        // Before the apex cannot happen in a zone; wrap like the chain.
        let index = if low == 0 {
            self.proofs.len() - 1
        } else {
            low - 1
        };
        self.proofs.get(index)
    }

    /// Bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.keys.capacity()
            + self.ends.capacity() * 4
            + self.proofs.capacity() * size_of::<Section>()
    }
}

/// A zone's NSEC3 records in hash order, with their proof sections.
#[derive(Default)]
pub(super) struct Nsec3Index {
    hashes: Vec<crate::dnssec::sign::Nsec3Hash>,
    proofs: Vec<Section>,
}

impl Nsec3Index {
    /// Adds the next hash (callers add them in order).
    pub(super) fn push(&mut self, hash: crate::dnssec::sign::Nsec3Hash, proof: Section) {
        self.hashes.push(hash);
        self.proofs.push(proof);
    }

    /// The proof of the NSEC3 that matches `wire`'s hash or covers it.
    #[inline]
    fn covering(&self, wire: &[u8]) -> Option<&Section> {
        let hash = crate::dnssec::sign::nsec3_hash(wire);
        let after = self.hashes.partition_point(|known| *known <= hash);
        // Before the first hash: the last NSEC3 wraps round to cover it.
        let index = after
            .checked_sub(1)
            .unwrap_or(self.hashes.len().checked_sub(1)?);
        self.proofs.get(index)
    }
}

/// How a zone denies existence, for queries with DO.
pub(super) enum Denial {
    /// NSEC (an empty index: an unsigned zone, or the table without DO).
    Nsec(NsecIndex),
    /// NSEC3.
    Nsec3(Nsec3Index),
}

impl Default for Denial {
    fn default() -> Self {
        Denial::Nsec(NsecIndex::default())
    }
}

impl Denial {
    /// True when there is nothing to prove with (an unsigned zone).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Denial::Nsec(index) => index.is_empty(),
            Denial::Nsec3(index) => index.proofs.is_empty(),
        }
    }

    /// True for NSEC3, whose proofs name the closest encloser.
    #[inline]
    pub(super) fn is_nsec3(&self) -> bool {
        matches!(self, Denial::Nsec3(_))
    }

    /// The record (NSEC, or NSEC3 by hash) that matches `wire` or covers it.
    #[inline]
    pub(super) fn covering(&self, wire: &[u8]) -> Option<&Section> {
        match self {
            Denial::Nsec(index) => index.covering(wire),
            Denial::Nsec3(index) => index.covering(wire),
        }
    }

    /// Bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Denial::Nsec(index) => index.heap_bytes(),
            Denial::Nsec3(index) => {
                index.hashes.capacity() * 20 + index.proofs.capacity() * size_of::<Section>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dnssec::sign::tests::{RFC_4034_ORDER, wire};

    fn key(labels: &[&[u8]]) -> Vec<u8> {
        let mut buffer = [0u8; MAX_KEY];
        let length = canonical_key(&wire(labels), &mut buffer);
        buffer[..length].to_vec()
    }

    #[test]
    fn keys_order_as_rfc_4034_section_6_1() {
        for pair in RFC_4034_ORDER.windows(2) {
            assert!(key(pair[0]) < key(pair[1]), "{:?} < {:?}", pair[0], pair[1]);
        }
        // The bytes escaped in keys keep their order too.
        let zero: &[&[u8]] = &[b"\x00", b"z", b"example"];
        let one: &[&[u8]] = &[b"\x00\x01", b"z", b"example"];
        assert!(key(RFC_4034_ORDER[5]) < key(zero));
        assert!(key(zero) < key(one));
        assert!(key(one) < key(RFC_4034_ORDER[6]));
    }

    #[test]
    fn covering_finds_the_owner_or_the_one_before() {
        let mut index = NsecIndex::default();
        for (position, labels) in RFC_4034_ORDER.iter().enumerate() {
            let proof = Section {
                start: position as u32,
                ..Section::default()
            };
            index.push(&key(labels), proof);
        }
        let start = |labels: &[&[u8]]| index.covering(&wire(labels)).map(|proof| proof.start);
        assert_eq!(start(&[b"yljkjljk", b"a", b"example"]), Some(2));
        assert_eq!(start(&[b"b", b"a", b"example"]), Some(1));
        assert_eq!(start(&[b"zz", b"a", b"example"]), Some(4));
        assert_eq!(start(&[b"zzz", b"example"]), Some(8));
        assert_eq!(start(&[b"y", b"z", b"example"]), Some(7));
    }
}
