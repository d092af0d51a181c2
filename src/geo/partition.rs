//! One database's networks of an address family as a partition of the whole
//! space, and the intersection of two such partitions.
//!
//! The policy compiler needs every address to fall in exactly one network,
//! in order, so that it can build a flat prefix map without overlaps. An
//! mmdb search tree already is a partition, except that it may say nothing
//! at all for part of the space (an IPv4-only file has no IPv6 networks, an
//! IPv6 file without an IPv4 subtree has nothing at `::/96`), and a damaged
//! tree may leave holes. [`Covering`] fills every hole with aligned networks
//! that have no record, so the output always covers the space.

use std::net::IpAddr;

use maxminddb::{LookupResult, Mmap, Reader, WithinOptions};

/// A network and what its record resolved to (`None`: no record):
/// `(first address, prefix length, record)`. IPv4 addresses are in the low
/// 32 bits.
pub(super) type Network = (u128, u8, Option<usize>);

/// Turns the record of a network into a small number (an index into a
/// cache of decoded records), so that each distinct record is decoded once.
pub(super) type Resolve<'a> = dyn FnMut(&LookupResult<'_, Mmap>) -> usize + 'a;

/// Which address family to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    /// Bits in an address.
    pub(super) fn width(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// The bits of an address below a prefix of `prefix_len` in a `width`-bit
/// space.
pub(super) fn host_mask(prefix_len: u32, width: u32) -> u128 {
    let all = u128::MAX >> (128 - width);
    if prefix_len >= width {
        0
    } else {
        all >> prefix_len
    }
}

/// The networks that the database's search tree holds for `family`, in
/// ascending order, as the tree gives them: networks without a record are
/// included, and so are the IPv4 aliases of an IPv6 tree (`::ffff:0:0/96`
/// and `2002::/16` where the tree points them at the IPv4 subtree). Each
/// record goes through `resolve`. Errors in the tree are counted in `errors`
/// and leave a hole.
///
/// Without a reader (no database locates this family) there are no
/// networks, which the covering step turns into one network without a
/// record.
pub(super) fn tree_networks<'a>(
    reader: Option<&'a Reader<Mmap>>,
    family: Family,
    errors: &'a mut usize,
    resolve: &'a mut Resolve<'_>,
) -> Box<dyn Iterator<Item = Network> + 'a> {
    let Some(reader) = reader else {
        return Box::new(std::iter::empty());
    };
    let ip_version = reader.metadata().ip_version;
    let root = match (family, ip_version) {
        // An IPv4-only database says nothing about IPv6: the covering step
        // turns that into ::/0 without a record.
        (Family::V6, 4) => return Box::new(std::iter::empty()),
        (Family::V4, _) => "0.0.0.0/0",
        (Family::V6, _) => "::/0",
    };
    let options = WithinOptions::default()
        .include_networks_without_data()
        .include_aliased_networks();
    // The network type is inferred from `within`, so that the crate that
    // defines it need not be a dependency of ours.
    let within = match root.parse().map(|root| reader.within(root, options)) {
        Ok(Ok(within)) => within,
        Ok(Err(_)) | Err(_) => {
            *errors += 1;
            return Box::new(std::iter::empty());
        }
    };
    Box::new(within.filter_map(move |item| {
        let Ok(result) = item else {
            *errors += 1;
            return None;
        };
        let Ok(network) = result.network() else {
            *errors += 1;
            return None;
        };
        let (start, prefix_len) = match (family, network.ip()) {
            (Family::V4, IpAddr::V4(address)) => (u128::from(u32::from(address)), network.prefix()),
            // An IPv6 tree whose walk towards ::/96 ends above it: one
            // record (or none) for all of IPv4.
            (Family::V4, IpAddr::V6(_)) => (0, 0),
            // The IPv4 subtree seen from the IPv6 root: ::a.b.c.d/96+n.
            (Family::V6, IpAddr::V4(address)) => {
                (u128::from(u32::from(address)), network.prefix() + 96)
            }
            (Family::V6, IpAddr::V6(address)) => (u128::from(address), network.prefix()),
        };
        let record = result.has_data().then(|| resolve(&result));
        Some((start, prefix_len, record))
    }))
}

/// Whether the database's search tree holds any network with a record in
/// `family`. An IPv6 tree holds IPv4 when its `::/96` subtree (or a network
/// above it) has a record, and holds IPv6 when a network outside `::/96`
/// has one; the aliases of the IPv4 subtree (`::ffff:0:0/96`, `2002::/16`)
/// do not count, since they are IPv4 again.
///
/// A damaged part of the tree counts as holding nothing: the walk would
/// read it as networks without a record anyway.
pub(super) fn holds(reader: &Reader<Mmap>, family: Family) -> bool {
    let has_record = |root: &str| {
        // The default options skip networks without a record and aliases,
        // and stop at the first record found.
        match root
            .parse()
            .map(|root| reader.within(root, WithinOptions::default()))
        {
            Ok(Ok(mut within)) => within.any(|item| item.is_ok_and(|result| result.has_data())),
            Ok(Err(_)) | Err(_) => false,
        }
    };
    match (family, reader.metadata().ip_version) {
        (Family::V4, _) => has_record("0.0.0.0/0"),
        (Family::V6, 4) => false,
        // Everything outside ::/96 is the siblings of the path down to it:
        // 8000::/1, 4000::/2, ..., 0:0:0:0:0:1::/96.
        (Family::V6, _) => (1..=96_u32).any(|depth| {
            let sibling = std::net::Ipv6Addr::from(1_u128 << (128 - depth));
            has_record(&format!("{sibling}/{depth}"))
        }),
    }
}

/// Networks as `(first address, prefix length)`, in ascending order.
pub(super) type Pieces = Vec<(u128, u8)>;

/// The networks of a network of `prefix_len` bits that contains
/// `hole/hole_len` (`prefix_len < hole_len`), outside the hole: the siblings
/// of the path from the network down to the hole, as `(before, after)` the
/// hole, each in ascending address order. 128-bit space.
pub(super) fn around(prefix_len: u8, hole: u128, hole_len: u8) -> (Pieces, Pieces) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for depth in u32::from(prefix_len) + 1..=u32::from(hole_len) {
        // The hole's ancestor at this depth, and the bit that tells it from
        // its sibling.
        let ancestor = hole & !host_mask(depth, 128);
        let bit = 1_u128 << (128 - depth);
        let sibling = (ancestor ^ bit, depth as u8);
        if ancestor & bit != 0 {
            before.push(sibling);
        } else {
            after.push(sibling);
        }
    }
    // Deeper siblings after the hole are nearer to it.
    after.reverse();
    (before, after)
}

/// Networks in ascending order covering the whole `width`-bit space: the
/// inner networks, with every gap before, between and after them filled
/// with the largest aligned networks that fit, without a record. Networks
/// that overlap ones already given (a damaged tree) are dropped.
pub(super) struct Covering<I> {
    inner: I,
    width: u32,
    /// The first address not covered yet; `None` once all are.
    cursor: Option<u128>,
    /// A network that comes after a gap still being filled.
    held: Option<Network>,
}

impl<I: Iterator<Item = Network>> Covering<I> {
    pub(super) fn new(inner: I, family: Family) -> Covering<I> {
        Covering {
            inner,
            width: family.width(),
            cursor: Some(0),
            held: None,
        }
    }

    /// Moves the cursor past `start/prefix_len`.
    fn advance(&mut self, start: u128, prefix_len: u8) {
        let last = start | host_mask(u32::from(prefix_len), self.width);
        self.cursor = (last != host_mask(0, self.width)).then(|| last + 1);
    }

    /// The largest aligned network that starts at `cursor` and ends at or
    /// before `limit`.
    fn gap(&self, cursor: u128, limit: u128) -> Network {
        let mut prefix_len = if cursor == 0 {
            0
        } else {
            self.width - cursor.trailing_zeros().min(self.width)
        };
        while cursor | host_mask(prefix_len, self.width) > limit {
            prefix_len += 1;
        }
        // prefix_len ≤ width ≤ 128.
        (cursor, prefix_len as u8, None)
    }
}

impl<I: Iterator<Item = Network>> Iterator for Covering<I> {
    type Item = Network;

    fn next(&mut self) -> Option<Network> {
        loop {
            let cursor = self.cursor?;
            let Some(network) = self.held.take().or_else(|| self.inner.next()) else {
                let gap = self.gap(cursor, host_mask(0, self.width));
                self.advance(gap.0, gap.1);
                return Some(gap);
            };
            let (start, prefix_len, _) = network;
            if start < cursor {
                continue;
            }
            if start > cursor {
                self.held = Some(network);
                let gap = self.gap(cursor, start - 1);
                self.advance(gap.0, gap.1);
                return Some(gap);
            }
            self.advance(start, prefix_len);
            return Some(network);
        }
    }
}

/// The intersection of two partitions of the same space: wherever their
/// networks differ, the smaller one, with both records. Both inputs must
/// cover the whole space in order (as [`Covering`] does).
pub(super) struct Intersection<A, B> {
    first: A,
    second: B,
    width: u32,
    current_first: Option<Network>,
    current_second: Option<Network>,
}

impl<A, B> Intersection<A, B>
where
    A: Iterator<Item = Network>,
    B: Iterator<Item = Network>,
{
    pub(super) fn new(first: A, second: B, family: Family) -> Intersection<A, B> {
        Intersection {
            first,
            second,
            width: family.width(),
            current_first: None,
            current_second: None,
        }
    }
}

impl<A, B> Iterator for Intersection<A, B>
where
    A: Iterator<Item = Network>,
    B: Iterator<Item = Network>,
{
    /// `(first address, prefix length, first's offset, second's offset)`.
    type Item = (u128, u8, Option<usize>, Option<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let first = match self.current_first {
            Some(network) => network,
            None => self.first.next()?,
        };
        let second = match self.current_second {
            Some(network) => network,
            None => self.second.next()?,
        };
        // Both contain the first address not yet given, and aligned networks
        // that share an address nest: the longer prefix is the intersection.
        let (start, prefix_len) = if first.1 >= second.1 {
            (first.0, first.1)
        } else {
            (second.0, second.1)
        };
        let last = start | host_mask(u32::from(prefix_len), self.width);
        let ends_here =
            |network: &Network| network.0 | host_mask(u32::from(network.1), self.width) == last;
        self.current_first = (!ends_here(&first)).then_some(first);
        self.current_second = (!ends_here(&second)).then_some(second);
        Some((start, prefix_len, first.2, second.2))
    }
}
