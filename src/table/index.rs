//! The name index: lower-cased wire names → node ids.
//!
//! Open addressing over 32-byte buckets that hold a hash tag, the value and,
//! for names up to 23 bytes (nearly all of them), the name itself. A lookup
//! that hits therefore touches one cache line of the index; longer names are
//! compared against one arena of name bytes. Built once at compile time;
//! lookups on the hot path hash the query name (or one of its suffixes) and
//! compare bytes, without allocating.

use std::hash::Hasher;

use rustc_hash::FxHasher;

/// Names up to this length are stored in the bucket.
const INLINE: usize = 23;

/// One slot. `length == 0` marks a free slot (no wire name is empty).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Bucket {
    tag: u32,
    value: u32,
    length: u8,
    /// The name when `length <= INLINE`, else its arena offset (4 bytes, LE).
    inline: [u8; INLINE],
}

const FREE: Bucket = Bucket {
    tag: 0,
    value: 0,
    length: 0,
    inline: [0; INLINE],
};

/// Maps names to `u32` values. The first insert of a name wins unless
/// [`NameIndex::replace`] is used.
pub struct NameIndex {
    buckets: Vec<Bucket>,
    mask: usize,
    count: usize,
    /// Bytes of names longer than [`INLINE`].
    long_names: Vec<u8>,
}

#[inline]
fn hash(name: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(name);
    // Fx mixes poorly into the low bits that pick the slot: finish with a
    // multiplicative mix so both the slot bits and the tag bits are spread.
    (hasher.finish() ^ (name.len() as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl NameIndex {
    /// An index sized for about `expected` names.
    ///
    /// Filled to at most two thirds: with 32-byte buckets, two to a cache
    /// line, a hit mostly reads one line and a miss (linear probing) about
    /// two, while the index is, for many sizes, half what it is kept at
    /// half full; the less of it a worker idle between queries has to fetch
    /// again, the cheaper each query at a modest rate.
    pub fn with_capacity(expected: usize) -> Self {
        let size = (expected.max(4) * 3 / 2).next_power_of_two();
        Self {
            buckets: vec![FREE; size],
            mask: size - 1,
            count: 0,
            long_names: Vec::new(),
        }
    }

    fn name_of<'index>(&'index self, bucket: &'index Bucket) -> &'index [u8] {
        let length = usize::from(bucket.length);
        if length <= INLINE {
            &bucket.inline[..length]
        } else {
            let mut offset = [0u8; 4];
            offset.copy_from_slice(&bucket.inline[..4]);
            let start = u32::from_le_bytes(offset) as usize;
            &self.long_names[start..start + length]
        }
    }

    fn grow(&mut self) {
        let size = self.buckets.len() * 2;
        let old = std::mem::replace(&mut self.buckets, vec![FREE; size]);
        self.mask = size - 1;
        for bucket in old.into_iter().filter(|bucket| bucket.length != 0) {
            let hash = hash(self.name_of(&bucket));
            let mut slot = (hash >> 16) as usize & self.mask;
            while self.buckets[slot].length != 0 {
                slot = (slot + 1) & self.mask;
            }
            self.buckets[slot] = bucket;
        }
    }

    /// The slot holding `name` (and true), or the free slot where it would
    /// go (and false), with the name's tag.
    #[inline]
    fn find_slot(&self, name: &[u8]) -> (usize, bool, u32) {
        let hash = hash(name);
        let tag = (hash >> 32) as u32;
        let mut slot = (hash >> 16) as usize & self.mask;
        loop {
            let bucket = &self.buckets[slot];
            if bucket.length == 0 {
                return (slot, false, tag);
            }
            if bucket.tag == tag
                && usize::from(bucket.length) == name.len()
                && self.name_of(bucket) == name
            {
                return (slot, true, tag);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// Inserts `name → value` unless the name is present; returns the value
    /// stored. Names are wire names: 1 to 255 bytes.
    pub fn insert(&mut self, name: &[u8], value: u32) -> u32 {
        if (self.count + 1) * 3 > self.buckets.len() * 2 {
            self.grow();
        }
        let (slot, found, tag) = self.find_slot(name);
        if found {
            return self.buckets[slot].value;
        }
        let mut bucket = Bucket {
            tag,
            value,
            length: name.len() as u8,
            inline: [0; INLINE],
        };
        if name.len() <= INLINE {
            bucket.inline[..name.len()].copy_from_slice(name);
        } else {
            let start = self.long_names.len() as u32;
            bucket.inline[..4].copy_from_slice(&start.to_le_bytes());
            self.long_names.extend_from_slice(name);
        }
        self.buckets[slot] = bucket;
        self.count += 1;
        value
    }

    /// Sets the value of a name already present (or inserts it).
    pub fn replace(&mut self, name: &[u8], value: u32) {
        let (slot, found, _) = self.find_slot(name);
        if found {
            self.buckets[slot].value = value;
        } else {
            self.insert(name, value);
        }
    }

    /// The value for `name`, if present.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<u32> {
        let (slot, found, _) = self.find_slot(name);
        found.then(|| self.buckets[slot].value)
    }

    /// Bytes held (for memory reporting).
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>() + self.long_names.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_grows_and_finds_short_and_long_names() {
        let mut index = NameIndex::with_capacity(1);
        let name = |value: u32| -> Vec<u8> {
            // Every third name is longer than a bucket holds.
            let label = if value.is_multiple_of(3) {
                format!("h{value:03}-{}", "x".repeat(30))
            } else {
                format!("h{value:03}")
            };
            let mut wire = vec![label.len() as u8];
            wire.extend_from_slice(label.as_bytes());
            wire.push(0);
            wire
        };
        for value in 0..1000u32 {
            assert_eq!(index.insert(&name(value), value), value);
        }
        for value in 0..1000u32 {
            assert_eq!(index.get(&name(value)), Some(value));
        }
        assert_eq!(index.get(b"\x04nope\x00"), None);
        assert_eq!(index.get(b"\x00"), None);
        assert_eq!(index.insert(&name(1), 7), 1, "first insert wins");
        index.replace(&name(1), 7);
        assert_eq!(index.get(&name(1)), Some(7));
        index.replace(&name(3), 9);
        assert_eq!(index.get(&name(3)), Some(9));
        assert_eq!(size_of::<Bucket>(), 32);
    }
}
