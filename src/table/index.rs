//! The name index: lower-cased wire names → node ids.
//!
//! An open-addressing hash table over one arena of name bytes, so that a
//! million names cost two flat allocations instead of a million boxed keys.
//! Built once at compile time; lookups on the hot path hash the query name
//! (or one of its suffixes) and compare bytes, without allocating.

use std::hash::Hasher;

use rustc_hash::FxHasher;

const EMPTY: u32 = u32::MAX;

/// Maps names to `u32` values. Insert-only; the first insert of a name wins
/// unless [`NameIndex::replace`] is used.
pub struct NameIndex {
    slots: Vec<u32>,
    mask: usize,
    /// Per entry: (start in `names`, length, value).
    entries: Vec<(u32, u8, u32)>,
    names: Vec<u8>,
}

#[inline]
fn hash(name: &[u8]) -> usize {
    let mut hasher = FxHasher::default();
    hasher.write(name);
    hasher.finish() as usize
}

impl NameIndex {
    /// An index sized for about `expected` names.
    pub fn with_capacity(expected: usize) -> Self {
        let size = (expected.max(4) * 2).next_power_of_two();
        Self {
            slots: vec![EMPTY; size],
            mask: size - 1,
            entries: Vec::with_capacity(expected),
            names: Vec::new(),
        }
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        self.slots = vec![EMPTY; size];
        self.mask = size - 1;
        for entry in 0..self.entries.len() {
            let (start, length, _) = self.entries[entry];
            let name = &self.names[start as usize..start as usize + usize::from(length)];
            let mut slot = hash(name) & self.mask;
            while self.slots[slot] != EMPTY {
                slot = (slot + 1) & self.mask;
            }
            self.slots[slot] = entry as u32;
        }
    }

    fn find_slot(&self, name: &[u8]) -> (usize, bool) {
        let mut slot = hash(name) & self.mask;
        loop {
            let entry = self.slots[slot];
            if entry == EMPTY {
                return (slot, false);
            }
            let (start, length, _) = self.entries[entry as usize];
            if usize::from(length) == name.len()
                && &self.names[start as usize..start as usize + name.len()] == name
            {
                return (slot, true);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// Inserts `name → value` unless the name is present; returns the value stored.
    pub fn insert(&mut self, name: &[u8], value: u32) -> u32 {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let (slot, found) = self.find_slot(name);
        if found {
            return self.entries[self.slots[slot] as usize].2;
        }
        let start = self.names.len() as u32;
        self.names.extend_from_slice(name);
        self.slots[slot] = self.entries.len() as u32;
        self.entries.push((start, name.len() as u8, value));
        value
    }

    /// Sets the value of a name already present (or inserts it).
    pub fn replace(&mut self, name: &[u8], value: u32) {
        let (slot, found) = self.find_slot(name);
        if found {
            self.entries[self.slots[slot] as usize].2 = value;
        } else {
            self.insert(name, value);
        }
    }

    /// The value for `name`, if present.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<u32> {
        let (slot, found) = self.find_slot(name);
        found.then(|| self.entries[self.slots[slot] as usize].2)
    }

    /// Bytes held (for memory reporting).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.entries.capacity() * 12 + self.names.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_grows_and_finds() {
        let mut index = NameIndex::with_capacity(1);
        for value in 0..1000u32 {
            let name = format!("\x04h{value:03}\x00");
            assert_eq!(index.insert(name.as_bytes(), value), value);
        }
        for value in 0..1000u32 {
            let name = format!("\x04h{value:03}\x00");
            assert_eq!(index.get(name.as_bytes()), Some(value));
        }
        assert_eq!(index.get(b"\x04nope\x00"), None);
        assert_eq!(index.insert(b"\x04h001\x00", 7), 1, "first insert wins");
        index.replace(b"\x04h001\x00", 7);
        assert_eq!(index.get(b"\x04h001\x00"), Some(7));
    }
}
