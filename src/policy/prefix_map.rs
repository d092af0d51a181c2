//! Prefix maps: every address of one family → a small integer, as a binary
//! trie merged into the largest prefixes with the same value.
//!
//! Built on the control plane: [`PrefixMapBuilder`] takes disjoint or
//! nested prefixes (a later insert overrides what it covers), and
//! [`PrefixMap::product`] combines two maps into one whose leaves are a
//! function of both (the geo partition × the operator's CIDR map), merging
//! sibling leaves as it goes. On the data plane [`PrefixMap::lookup`] finds
//! the value and the depth of its leaf: that depth is the widest prefix
//! around the address over which the value cannot change, which is exactly
//! the ECS scope to answer with. Lookups never allocate.
//!
//! A binary walk costs one dependent memory read per address bit, and a
//! large map (a GeoIP partition, a latency model with a million client
//! networks) is far bigger than the cache, so each read is a miss: the
//! profile of a latency-steered name put 6% of all server CPU in those
//! reads. [`PrefixMap::accelerate`] therefore compiles the trie into a
//! lookup form: a direct table indexed by the top 8, 16 or 20 bits, then
//! nodes of [`STRIDE`] bits whose 16 entries fill one cache line. A client
//! /24 in a million-network map is two reads (the table entry and one node)
//! instead of five, in tables placed on huge pages
//! ([`super::large_table`]). The binary trie stays for the control plane.

use rustc_hash::FxHashMap;

use super::large_table::LargeTable;

/// Marks a child slot as a leaf; the low 31 bits are the value.
const LEAF: u32 = 1 << 31;

/// Largest value a leaf can hold.
pub const MAX_VALUE: u32 = LEAF - 1;

/// Address bits one lookup node resolves.
pub const STRIDE: u8 = 4;

/// Entries of a lookup node.
const FANOUT: usize = 1 << STRIDE;

/// Address bits the direct table resolves for a small map: 256 entries.
const SMALL_DIRECT_BITS: u8 = 8;

/// Address bits the direct table resolves for a large map.
pub const DIRECT_BITS: u8 = 16;

/// Address bits the direct table resolves for a very large map.
pub const WIDE_DIRECT_BITS: u8 = 20;

/// From this many inner nodes the map outgrows the cache and a 256 KiB
/// direct table saves more reads than it costs.
const DIRECT_MIN_NODES: usize = 1 << 14;

/// From this many inner nodes (a latency model of a million networks has
/// two million), the table resolves [`WIDE_DIRECT_BITS`]: 4 MiB.
const WIDE_DIRECT_MIN_NODES: usize = 1 << 19;

/// Lookup entries: a leaf is `LEAF | depth << LEAF_DEPTH_SHIFT | value`,
/// anything else is the index of the next node.
const LEAF_DEPTH_SHIFT: u32 = 23;

/// Largest value the lookup form can hold; a map with larger values (never
/// seen: values are decision numbers) keeps the binary walk.
const LOOKUP_MAX_VALUE: u32 = (1 << LEAF_DEPTH_SHIFT) - 1;

/// One lookup node: the entries for the next [`STRIDE`] address bits, in one
/// cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Node([u32; FANOUT]);

/// A finished, merged map. Addresses are left-aligned in `bits` bits
/// (an IPv4 address is a `u128` holding the 32-bit value, `bits` = 32).
#[derive(Clone, Debug)]
pub struct PrefixMap {
    /// Inner nodes: the two children (node index or `LEAF | value`).
    nodes: Vec<[u32; 2]>,
    /// The root (a leaf when the whole space has one value).
    root: u32,
    bits: u8,
    /// When accelerated: the lookup entry for every value of the top
    /// `direct_bits` bits.
    direct: LargeTable<u32>,
    /// Bits the direct table resolves (0 without one).
    direct_bits: u8,
    /// When accelerated: the nodes below the direct table.
    strides: LargeTable<Node>,
}

impl PrefixMap {
    /// A map of inner `nodes` under `root`, not accelerated.
    fn from_trie(nodes: Vec<[u32; 2]>, root: u32, bits: u8) -> Self {
        Self {
            nodes,
            root,
            bits,
            direct: LargeTable::empty(),
            direct_bits: 0,
            strides: LargeTable::empty(),
        }
    }

    /// A map giving `value` to every address.
    pub fn uniform(bits: u8, value: u32) -> Self {
        Self::from_trie(Vec::new(), LEAF | value, bits)
    }

    /// Compiles the lookup form (module docs). Lookups give the same
    /// results either way. A map with one value needs none.
    pub fn accelerate(&mut self) {
        let direct_bits = match self.nodes.len() {
            0 => return,
            count if count >= WIDE_DIRECT_MIN_NODES => WIDE_DIRECT_BITS,
            count if count >= DIRECT_MIN_NODES => DIRECT_BITS,
            _ => SMALL_DIRECT_BITS,
        };
        // Every node must end on the address width, as the widths (32,
        // 128) and table sizes do.
        if self.bits < direct_bits
            || !(self.bits - direct_bits).is_multiple_of(STRIDE)
            || self.max_value() > LOOKUP_MAX_VALUE
        {
            return;
        }
        let shift = self.bits - direct_bits;
        let mut strides = Vec::new();
        let direct: Vec<u32> = (0..1u128 << direct_bits)
            .map(|top| {
                let (slot, depth) = self.walk(self.root, 0, top << shift, direct_bits);
                self.lookup_entry(slot, depth, &mut strides)
            })
            .collect();
        self.direct = LargeTable::from_slice(&direct);
        self.strides = LargeTable::from_slice(&strides);
        self.direct_bits = direct_bits;
    }

    /// The lookup entry for the walk standing at `slot` at `depth`: the
    /// leaf itself, or a node (built here, with those below it) for the
    /// next [`STRIDE`] bits.
    fn lookup_entry(&self, slot: u32, depth: u8, strides: &mut Vec<Node>) -> u32 {
        if slot & LEAF != 0 {
            return LEAF | u32::from(depth) << LEAF_DEPTH_SHIFT | (slot & MAX_VALUE);
        }
        let index = strides.len();
        strides.push(Node([0; FANOUT]));
        // The sub-address of the node's entries, left-aligned in the width.
        let shift = self.bits - depth - STRIDE;
        for nibble in 0..FANOUT {
            let address = (nibble as u128) << shift;
            let (child, child_depth) = self.walk(slot, depth, address, depth + STRIDE);
            let entry = self.lookup_entry(child, child_depth, strides);
            strides[index].0[nibble] = entry;
        }
        u32::try_from(index).expect("more lookup nodes than a u32 counts")
    }

    /// The largest leaf value.
    fn max_value(&self) -> u32 {
        let leaf_value = |slot: u32| {
            if slot & LEAF != 0 {
                slot & MAX_VALUE
            } else {
                0
            }
        };
        self.nodes
            .iter()
            .flat_map(|children| children.map(leaf_value))
            .chain([leaf_value(self.root)])
            .max()
            .unwrap_or(0)
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
        self.nodes.capacity() * size_of::<[u32; 2]>()
            + self.direct.allocated_bytes()
            + self.strides.allocated_bytes()
    }

    /// The value for `address` and the length of the merged prefix holding it.
    #[inline]
    pub fn lookup(&self, address: u128) -> (u32, u8) {
        if self.direct.is_empty() {
            let (slot, depth) = self.walk(self.root, 0, address, self.bits);
            return (slot & MAX_VALUE, depth);
        }
        let mut entry = self.direct[(address >> (self.bits - self.direct_bits)) as usize];
        let mut depth = self.direct_bits;
        while entry & LEAF == 0 {
            // A node at `depth` exists only when `depth + STRIDE <= bits`.
            let nibble = (address >> (self.bits - depth - STRIDE)) as usize & (FANOUT - 1);
            entry = self.strides[entry as usize].0[nibble];
            depth += STRIDE;
        }
        (
            entry & LOOKUP_MAX_VALUE,
            ((entry & !LEAF) >> LEAF_DEPTH_SHIFT) as u8,
        )
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
        // Fx: the keys are this process's own small integers, and a million
        // leaves are hashed per compile.
        let mut memo: FxHashMap<(u32, u32), u32> = FxHashMap::default();
        let mut combine = |a: u32, b: u32| *memo.entry((a, b)).or_insert_with(|| combine(a, b));
        let root = product_walk(
            left,
            left.root,
            right,
            right.root,
            &mut combine,
            &mut output,
        );
        PrefixMap::from_trie(output.nodes, root, left.bits)
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
        let raw = PrefixMap::from_trie(self.nodes, self.root, self.bits);
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

    /// A xorshift generator: deterministic test data without a dependency.
    fn generator(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// `count` random nested networks with distinct values (so that leaves
    /// do not merge); returns the plain map and the networks.
    fn random_map(bits: u8, count: u32, seed: u64) -> (PrefixMap, Vec<(u8, u128, u32)>) {
        let mut next = generator(seed);
        let mut networks: Vec<(u8, u128, u32)> = (1..count)
            .map(|value| {
                let length = 8 + (next() % u64::from(bits.min(40) - 8)) as u8;
                let network = (u128::from(next()) << 64 | u128::from(next())) >> (128 - bits);
                (length, network, value)
            })
            .collect();
        // Shorter first, so that longer ones nest instead of being wiped.
        networks.sort_by_key(|(length, _, _)| *length);
        let mut builder = PrefixMapBuilder::new(bits, 0);
        for &(length, network, value) in &networks {
            builder.insert(network, length, value);
        }
        (builder.finish(), networks)
    }

    /// Checks the accelerated map against the binary walk at random
    /// addresses and inside every inserted network (the deep leaves).
    fn assert_agrees(plain: &PrefixMap, fast: &PrefixMap, networks: &[(u8, u128, u32)], seed: u64) {
        let bits = plain.bits();
        let mut next = generator(seed);
        let mut random = || (u128::from(next()) << 64 | u128::from(next())) >> (128 - bits);
        for _ in 0..100_000 {
            let address = random();
            assert_eq!(fast.lookup(address), plain.lookup(address), "{address:#x}");
        }
        for &(length, network, _) in networks {
            let host_mask = if length >= bits {
                0
            } else {
                u128::MAX >> (128 - (bits - length))
            };
            for address in [
                network,
                network | host_mask,
                network | (random() & host_mask),
            ] {
                assert_eq!(fast.lookup(address), plain.lookup(address), "{address:#x}");
            }
        }
    }

    #[test]
    fn accelerated_lookups_agree_with_the_walk() {
        // Sizes for each direct table: 8 bits (small), 16, and 20 (IPv4).
        for (bits, count, direct_bits) in [
            (32u8, 300u32, SMALL_DIRECT_BITS),
            (128, 300, SMALL_DIRECT_BITS),
            (32, 40_000, DIRECT_BITS),
            (128, 40_000, DIRECT_BITS),
            (32, 700_000, WIDE_DIRECT_BITS),
        ] {
            let (plain, networks) = random_map(bits, count, 0x9E37_79B9_7F4A_7C15);
            let mut fast = plain.clone();
            fast.accelerate();
            assert_eq!(
                fast.direct_bits,
                direct_bits,
                "{} nodes",
                plain.node_count()
            );
            assert!(!fast.strides.is_empty());
            assert_agrees(&plain, &fast, &networks, u64::from(count));
        }
        // A map with one value has nothing to accelerate.
        for bits in [32u8, 128] {
            let mut small = PrefixMap::uniform(bits, 3);
            small.accelerate();
            assert!(small.direct.is_empty());
            assert_eq!(small.lookup(0), (3, 0));
        }
    }

    #[test]
    fn values_beyond_the_lookup_form_keep_the_walk() {
        let mut builder = PrefixMapBuilder::new(32, 0);
        builder.insert(v4("10.0.0.0"), 8, LOOKUP_MAX_VALUE + 1);
        builder.insert(v4("10.1.2.0"), 24, 5);
        let plain = builder.finish();
        let mut map = plain.clone();
        map.accelerate();
        assert!(map.direct.is_empty());
        assert_eq!(map.lookup(v4("10.9.9.9")), (LOOKUP_MAX_VALUE + 1, 13));
        assert_eq!(map.lookup(v4("10.1.2.3")), (5, 24));
        // The largest value the lookup form holds still gets it.
        let mut builder = PrefixMapBuilder::new(32, 0);
        builder.insert(v4("10.0.0.0"), 8, LOOKUP_MAX_VALUE);
        builder.insert(v4("10.1.2.0"), 24, 5);
        let mut map = builder.finish();
        map.accelerate();
        assert!(!map.direct.is_empty());
        assert_eq!(map.lookup(v4("10.9.9.9")), (LOOKUP_MAX_VALUE, 13));
        assert_eq!(map.lookup(v4("10.1.2.3")), (5, 24));
        assert_eq!(map.lookup(v4("11.0.0.0")), (0, 8));
    }
}
