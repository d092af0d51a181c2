//! Prefix maps: every address of one family → a small integer, as a binary
//! trie merged into the largest prefixes with the same value.
//!
//! Built on the control plane: [`PrefixMapBuilder`] takes disjoint or
//! nested prefixes (a later insert overrides what it covers), and
//! [`PrefixMap::product`] combines two maps into one whose leaves are a
//! function of both (the geo partition × the operator's CIDR map), merging
//! sibling leaves as it goes. On the data plane [`PrefixMap::lookup`] walks
//! the address bits from the top and returns the value and the depth of its
//! leaf: that depth is the widest prefix around the address over which the
//! value cannot change, which is exactly the ECS scope to answer with.
//! Lookups never allocate.
//!
//! A large map (a GeoIP partition, a latency model with a million client
//! networks) is too big for the cache, and a bit-by-bit walk costs one
//! cache miss per level. [`PrefixMap::accelerate`] adds a table indexed by
//! the top [`DIRECT_BITS`] bits that holds where the walk stands after
//! them, so a lookup starts with one load instead of sixteen.

use std::collections::HashMap;

/// Marks a child slot as a leaf; the low 31 bits are the value.
const LEAF: u32 = 1 << 31;

/// Largest value a leaf can hold.
pub const MAX_VALUE: u32 = LEAF - 1;

/// Address bits the direct table of [`PrefixMap::accelerate`] resolves.
pub const DIRECT_BITS: u8 = 16;

/// Address bits the direct table resolves for a very large map.
pub const WIDE_DIRECT_BITS: u8 = 20;

/// Below this many inner nodes a map fits in the cache and the direct
/// table (512 KiB) would cost more than it saves.
const DIRECT_MIN_NODES: usize = 1 << 14;

/// From this many inner nodes (a latency model of a million networks has
/// two million), the table resolves [`WIDE_DIRECT_BITS`]: 8 MiB, a quarter
/// of the map itself, for four fewer cache misses per lookup.
const WIDE_DIRECT_MIN_NODES: usize = 1 << 19;

/// A finished, merged map. Addresses are left-aligned in `bits` bits
/// (an IPv4 address is a `u128` holding the 32-bit value, `bits` = 32).
#[derive(Clone, Debug)]
pub struct PrefixMap {
    /// Inner nodes: the two children (node index or `LEAF | value`).
    nodes: Vec<[u32; 2]>,
    /// The root (a leaf when the whole space has one value).
    root: u32,
    bits: u8,
    /// When accelerated: per value of the top `direct_bits` bits, the
    /// slot the walk reaches and its depth (`slot | depth << 32`).
    direct: Vec<u64>,
    /// Bits the direct table resolves (0 without one).
    direct_bits: u8,
}

impl PrefixMap {
    /// A map giving `value` to every address.
    pub fn uniform(bits: u8, value: u32) -> Self {
        Self {
            nodes: Vec::new(),
            root: LEAF | value,
            bits,
            direct: Vec::new(),
            direct_bits: 0,
        }
    }

    /// Adds the direct table for the top [`DIRECT_BITS`] bits when the map
    /// is large enough to need it. Lookups give the same results either way.
    pub fn accelerate(&mut self) {
        let direct_bits = match self.nodes.len() {
            count if count >= WIDE_DIRECT_MIN_NODES => WIDE_DIRECT_BITS,
            count if count >= DIRECT_MIN_NODES => DIRECT_BITS,
            _ => return,
        };
        if self.bits < direct_bits {
            return;
        }
        let shift = self.bits - direct_bits;
        self.direct = (0..1u128 << direct_bits)
            .map(|top| {
                let (slot, depth) = self.walk(self.root, 0, top << shift, direct_bits);
                u64::from(slot) | (u64::from(depth) << 32)
            })
            .collect();
        self.direct_bits = direct_bits;
    }

    /// Walks from `slot` at `depth` until a leaf or depth `stop`.
    #[inline]
    fn walk(&self, mut slot: u32, mut depth: u8, address: u128, stop: u8) -> (u32, u8) {
        while slot & LEAF == 0 && depth < stop {
            let bit = (address >> (self.bits - 1 - depth)) & 1;
            slot = self.nodes[slot as usize][bit as usize];
            depth += 1;
        }
        (slot, depth)
    }

    /// Address width in bits (32 or 128).
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of inner nodes (for status and benchmarks).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<[u32; 2]>() + self.direct.capacity() * size_of::<u64>()
    }

    /// The value for `address` and the length of the merged prefix holding it.
    #[inline]
    pub fn lookup(&self, address: u128) -> (u32, u8) {
        let direct = if self.direct.is_empty() {
            None
        } else {
            self.direct
                .get((address >> (self.bits - self.direct_bits)) as usize)
        };
        let (slot, depth) = match direct {
            Some(&entry) => (entry as u32, (entry >> 32) as u8),
            None => (self.root, 0),
        };
        let (slot, depth) = self.walk(slot, depth, address, self.bits);
        (slot & MAX_VALUE, depth)
    }

    /// Visits every leaf in address order as (network, prefix length, value).
    pub fn for_each_leaf(&self, visit: &mut dyn FnMut(u128, u8, u32)) {
        fn walk(
            map: &PrefixMap,
            slot: u32,
            network: u128,
            depth: u8,
            visit: &mut dyn FnMut(u128, u8, u32),
        ) {
            if slot & LEAF != 0 {
                visit(network, depth, slot & MAX_VALUE);
                return;
            }
            let [left, right] = map.nodes[slot as usize];
            walk(map, left, network, depth + 1, visit);
            walk(
                map,
                right,
                network | (1u128 << (map.bits - 1 - depth)),
                depth + 1,
                visit,
            );
        }
        walk(self, self.root, 0, 0, visit);
    }

    /// Combines two maps of the same family into one whose value at every
    /// address is `combine(left value, right value)`. `combine` is called
    /// once per distinct pair. Equal sibling leaves are merged.
    pub fn product(
        left: &PrefixMap,
        right: &PrefixMap,
        combine: &mut dyn FnMut(u32, u32) -> u32,
    ) -> PrefixMap {
        let mut output = Merger::default();
        let mut memo: HashMap<(u32, u32), u32> = HashMap::new();
        let mut combine = |a: u32, b: u32| *memo.entry((a, b)).or_insert_with(|| combine(a, b));
        let root = product_walk(
            left,
            left.root,
            right,
            right.root,
            &mut combine,
            &mut output,
        );
        PrefixMap {
            nodes: output.nodes,
            root,
            bits: left.bits,
            direct: Vec::new(),
            direct_bits: 0,
        }
    }

    /// A copy with every value replaced by `map(value)`, merged again.
    pub fn map_values(&self, map: &mut dyn FnMut(u32) -> u32) -> PrefixMap {
        let uniform = PrefixMap::uniform(self.bits, 0);
        PrefixMap::product(self, &uniform, &mut |value, _| map(value))
    }
}

/// Output of a product: inner nodes, deduplicated children pairs not needed.
#[derive(Default)]
struct Merger {
    nodes: Vec<[u32; 2]>,
}

impl Merger {
    fn join(&mut self, left: u32, right: u32) -> u32 {
        if left & LEAF != 0 && left == right {
            return left;
        }
        self.nodes.push([left, right]);
        (self.nodes.len() - 1) as u32
    }
}

fn children(map: &PrefixMap, slot: u32) -> [u32; 2] {
    if slot & LEAF != 0 {
        [slot, slot]
    } else {
        map.nodes[slot as usize]
    }
}

fn product_walk(
    left: &PrefixMap,
    left_slot: u32,
    right: &PrefixMap,
    right_slot: u32,
    combine: &mut dyn FnMut(u32, u32) -> u32,
    output: &mut Merger,
) -> u32 {
    if left_slot & LEAF != 0 && right_slot & LEAF != 0 {
        return LEAF | (combine(left_slot & MAX_VALUE, right_slot & MAX_VALUE) & MAX_VALUE);
    }
    let [left_low, left_high] = children(left, left_slot);
    let [right_low, right_high] = children(right, right_slot);
    let low = product_walk(left, left_low, right, right_low, combine, output);
    let high = product_walk(left, left_high, right, right_high, combine, output);
    output.join(low, high)
}

/// Builds a map by inserting prefixes.
#[derive(Clone, Debug)]
pub struct PrefixMapBuilder {
    nodes: Vec<[u32; 2]>,
    root: u32,
    bits: u8,
}

impl PrefixMapBuilder {
    /// Every address starts with `default`.
    pub fn new(bits: u8, default: u32) -> Self {
        Self {
            nodes: Vec::new(),
            root: LEAF | (default & MAX_VALUE),
            bits,
        }
    }

    /// Gives `value` to every address in `network/prefix_len` (the network
    /// left-aligned in `bits`; host bits are ignored), overriding earlier
    /// inserts it covers.
    pub fn insert(&mut self, network: u128, prefix_len: u8, value: u32) {
        let prefix_len = prefix_len.min(self.bits);
        let leaf = LEAF | (value & MAX_VALUE);
        if prefix_len == 0 {
            self.nodes.clear();
            self.root = leaf;
            return;
        }
        if self.root & LEAF != 0 {
            let old = self.root;
            self.nodes.push([old, old]);
            self.root = (self.nodes.len() - 1) as u32;
        }
        let mut node = self.root as usize;
        for depth in 0..prefix_len {
            let bit = ((network >> (self.bits - 1 - depth)) & 1) as usize;
            if depth + 1 == prefix_len {
                // Subtrees below are dropped from reach; `finish` compacts.
                self.nodes[node][bit] = leaf;
                return;
            }
            let child = self.nodes[node][bit];
            if child & LEAF != 0 {
                self.nodes.push([child, child]);
                let created = (self.nodes.len() - 1) as u32;
                self.nodes[node][bit] = created;
                node = created as usize;
            } else {
                node = child as usize;
            }
        }
    }

    /// The merged map.
    pub fn finish(self) -> PrefixMap {
        let raw = PrefixMap {
            nodes: self.nodes,
            root: self.root,
            bits: self.bits,
            direct: Vec::new(),
            direct_bits: 0,
        };
        let uniform = PrefixMap::uniform(raw.bits, 0);
        PrefixMap::product(&raw, &uniform, &mut |value, _| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> u128 {
        u128::from(u32::from(text.parse::<std::net::Ipv4Addr>().expect("ip")))
    }

    #[test]
    fn nested_prefixes_override_and_scope_is_the_merged_depth() {
        let mut builder = PrefixMapBuilder::new(32, 0);
        builder.insert(v4("10.0.0.0"), 8, 1);
        builder.insert(v4("10.1.0.0"), 16, 2);
        let map = builder.finish();
        assert_eq!(map.lookup(v4("10.1.2.3")), (2, 16));
        assert_eq!(map.lookup(v4("10.2.0.1")).0, 1);
        assert_eq!(map.lookup(v4("11.0.0.1")).0, 0);
        // 10.128.0.0/9 is all 1: the leaf is that wide.
        assert_eq!(map.lookup(v4("10.200.0.1")), (1, 9));
        assert_eq!(map.lookup(v4("192.0.2.1")), (0, 1));
    }

    #[test]
    fn equal_neighbours_merge_into_one_supernet() {
        let mut builder = PrefixMapBuilder::new(32, 0);
        builder.insert(v4("10.0.0.0"), 9, 5);
        builder.insert(v4("10.128.0.0"), 9, 5);
        let map = builder.finish();
        assert_eq!(map.lookup(v4("10.3.4.5")), (5, 8));
        let uniform = PrefixMapBuilder::new(32, 7).finish();
        assert_eq!(uniform.lookup(v4("1.2.3.4")), (7, 0));
        assert_eq!(uniform.node_count(), 0);
    }

    #[test]
    fn product_combines_both_maps_and_merges() {
        let mut geo = PrefixMapBuilder::new(32, 0);
        geo.insert(v4("81.0.0.0"), 8, 1);
        let mut cidr = PrefixMapBuilder::new(32, 0);
        cidr.insert(v4("81.2.69.0"), 24, 1);
        let combined = PrefixMap::product(&geo.finish(), &cidr.finish(), &mut |geo, cidr| {
            if cidr == 1 { 10 } else { geo }
        });
        assert_eq!(combined.lookup(v4("81.2.69.7")), (10, 24));
        // 81.3/16 is the sibling of the /16 that holds the /24.
        assert_eq!(combined.lookup(v4("81.3.0.1")), (1, 16));
        assert_eq!(combined.lookup(v4("81.4.0.1")), (1, 14));
        assert_eq!(combined.lookup(v4("82.0.0.1")).0, 0);
        // A product that maps everything to one value collapses to a leaf.
        let flat = combined.map_values(&mut |_| 3);
        assert_eq!(flat.lookup(v4("81.2.69.7")), (3, 0));
    }

    #[test]
    fn leaves_cover_the_space_in_order() {
        let mut builder = PrefixMapBuilder::new(32, 0);
        builder.insert(v4("128.0.0.0"), 2, 1);
        let map = builder.finish();
        let mut leaves = Vec::new();
        map.for_each_leaf(&mut |network, length, value| leaves.push((network, length, value)));
        assert_eq!(
            leaves,
            [(0, 1, 0), (v4("128.0.0.0"), 2, 1), (v4("192.0.0.0"), 2, 0)]
        );
    }

    #[test]
    fn ipv6_uses_all_128_bits() {
        let address = |text: &str| u128::from(text.parse::<std::net::Ipv6Addr>().expect("ip"));
        let mut builder = PrefixMapBuilder::new(128, 0);
        builder.insert(address("2001:db8::"), 32, 4);
        builder.insert(address("2001:db8::1"), 128, 9);
        let map = builder.finish();
        assert_eq!(map.lookup(address("2001:db8::1")), (9, 128));
        assert_eq!(map.lookup(address("2001:db8::2")), (4, 127));
        assert_eq!(map.lookup(address("2001:db9::")).0, 0);
    }

    #[test]
    fn accelerated_lookups_agree_with_the_walk() {
        for bits in [32u8, 128] {
            let mut builder = PrefixMapBuilder::new(bits, 0);
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            // Enough nested networks to pass the size threshold (and, for
            // IPv4, the wide one).
            let count = if bits == 32 { 700_000u32 } else { 40_000 };
            let mut networks: Vec<(u8, u128, u32)> = (1..count)
                .map(|value| {
                    let length = 8 + (next() % u64::from(bits.min(40) - 8)) as u8;
                    let network = (u128::from(next()) << 64 | u128::from(next())) >> (128 - bits);
                    // Distinct values keep the leaves from merging.
                    (length, network, value)
                })
                .collect();
            // Shorter first, so that longer ones nest instead of being wiped.
            networks.sort_by_key(|(length, _, _)| *length);
            for (length, network, value) in networks {
                builder.insert(network, length, value);
            }
            let plain = builder.finish();
            assert!(
                plain.node_count() >= DIRECT_MIN_NODES,
                "{}",
                plain.node_count()
            );
            let mut fast = plain.clone();
            fast.accelerate();
            assert!(!fast.direct.is_empty());
            if bits == 32 {
                assert_eq!(fast.direct_bits, WIDE_DIRECT_BITS, "{}", plain.node_count());
            }
            for _ in 0..200_000 {
                let address = (u128::from(next()) << 64 | u128::from(next())) >> (128 - bits);
                assert_eq!(fast.lookup(address), plain.lookup(address), "{address:#x}");
            }
            // Small maps stay as they are.
            let mut small = PrefixMap::uniform(bits, 3);
            small.accelerate();
            assert!(small.direct.is_empty());
            assert_eq!(small.lookup(0), (3, 0));
        }
    }
}
