//! The latency model: per client network (IPv4 /24, IPv6 /48) and site, an
//! exponentially weighted moving average of the round-trip times measured,
//! with a sample count and the time of the latest sample.
//!
//! Ingest (matrix file, real-user measurements, probes) writes into it and
//! the compiler reads it every few seconds, recompiling only when
//! [`LatencyModel::version`] moved. It is plain data: no I/O, no clock (every
//! call takes `now`), no locks (the owner serialises access). Real-user
//! batches arrive at hundreds of thousands of samples per second, for
//! networks a client chooses, so recording is O(1) and does not allocate once
//! the model is full, and memory never exceeds what
//! [`ModelSettings::max_prefixes`] networks need: at the cap, a new network
//! replaces the least recently updated one.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How far in the future a sample's timestamp may be: clients' clocks drift,
/// but a sample from much later is a bad clock or a forgery.
pub const MAX_FUTURE_SECONDS: u64 = 60;

/// Set on [`ClientPrefix`] keys of IPv6 networks, above the 48 network bits,
/// so that no IPv4 key equals an IPv6 one and IPv4 keys sort first.
const IPV6_FLAG: u64 = 1 << 48;

/// A client network, the unit latency is measured for: an IPv4 /24 or an
/// IPv6 /48, packed in one `u64` (a family flag and the network bits) so
/// that it hashes and compares as one word.
///
/// An IPv4-mapped IPv6 address (`::ffff:198.51.100.7`) is the IPv4 client
/// it maps, as in every other part of steering.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientPrefix(u64);

impl ClientPrefix {
    /// The /24 or /48 containing `address`.
    pub fn of(address: IpAddr) -> ClientPrefix {
        match address {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of_v4(v4),
                None => ClientPrefix(IPV6_FLAG | (u128::from(v6) >> 80) as u64),
            },
        }
    }

    fn of_v4(address: Ipv4Addr) -> ClientPrefix {
        ClientPrefix(u64::from(u32::from(address) >> 8))
    }

    /// The network address and its length, 24 or 48.
    pub fn network(self) -> (IpAddr, u8) {
        if self.is_v4() {
            (IpAddr::V4(Ipv4Addr::from((self.0 as u32) << 8)), 24)
        } else {
            let bits = u128::from(self.0 & (IPV6_FLAG - 1)) << 80;
            (IpAddr::V6(Ipv6Addr::from(bits)), 48)
        }
    }

    /// Whether this is an IPv4 network.
    pub fn is_v4(self) -> bool {
        self.0 & IPV6_FLAG == 0
    }

    /// The packed word, as the model's state file stores it.
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// The network a packed word stands for; `None` for a word no network
    /// packs to (bits beyond an IPv4 /24 or the IPv6 flag and /48).
    pub fn from_bits(bits: u64) -> Option<ClientPrefix> {
        let valid = if bits & IPV6_FLAG == 0 {
            bits < 1 << 24
        } else {
            bits < IPV6_FLAG << 1
        };
        valid.then_some(ClientPrefix(bits))
    }

    /// Reads a client network as a measurement names it: an address
    /// (`198.51.100.7`, `2001:db8:1:2::5`: the network containing it) or a
    /// prefix (`198.51.100.0/24`, `2001:db8:1::/48`). A prefix longer than
    /// /24 (/48) is widened to it, since that is the resolution the model
    /// keeps; a shorter one is refused, because it spans many client
    /// networks that may well see different latencies. As with ECS, a prefix
    /// with bits set beyond its length is refused rather than guessed at.
    /// IPv4-mapped IPv6 is IPv4, its length counted within the last 32 bits
    /// (`::ffff:198.51.100.0/120` is `198.51.100.0/24`).
    pub fn parse(text: &str) -> Result<ClientPrefix, String> {
        // The same syntax and checks as every other prefix in Steer.
        let network = crate::config::steering::IpNet::parse(text)?;
        let (address, length) = (network.address, network.prefix_len);
        let (address, length) = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // Below /96 the prefix reaches past the mapped range, so it
                // spans all of IPv4 at least: too short below.
                Some(v4) => (IpAddr::V4(v4), length.saturating_sub(96)),
                None => (address, length),
            },
            IpAddr::V4(_) => (address, length),
        };
        let shortest = if address.is_ipv4() { 24 } else { 48 };
        if length < shortest {
            return Err(format!(
                "client prefix \"{text}\" covers more than one client network; latency \
                 is kept per /24 (IPv4) or /48 (IPv6)"
            ));
        }
        Ok(ClientPrefix::of(address))
    }
}

impl fmt::Display for ClientPrefix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (address, length) = self.network();
        write!(formatter, "{address}/{length}")
    }
}

// By hand: the packed word means nothing to someone reading a test failure.
impl fmt::Debug for ClientPrefix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ClientPrefix({self})")
    }
}

/// How the model weighs, ages and bounds its measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSettings {
    /// Weight of a new sample in the moving average, `0 < weight <= 1`:
    /// higher follows changes faster, lower smooths noise more. Default 0.3.
    pub weight: f64,
    /// A (network, site) not updated for this many seconds is stale: hidden
    /// from readers, restarted by its next sample, removed by
    /// [`LatencyModel::expire`]. Samples this old are refused. Default 3600.
    pub max_age_seconds: u64,
    /// Most client networks tracked; beyond it the least recently updated
    /// one is dropped. Memory is about this many times
    /// [`LatencyModel::bytes_per_prefix`]. Default 1 000 000.
    pub max_prefixes: usize,
    /// Largest round-trip time believed, in milliseconds; larger ones are
    /// refused as absurd. Default 10 000.
    pub max_rtt_ms: f64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            weight: 0.3,
            max_age_seconds: 3600,
            max_prefixes: 1_000_000,
            max_rtt_ms: 10_000.0,
        }
    }
}

impl ModelSettings {
    /// Every problem with these settings, as one message per problem; the
    /// config loader reports them, and [`LatencyModel::new`] takes only
    /// settings that pass.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(self.weight > 0.0 && self.weight <= 1.0) {
            problems.push(format!(
                "weight must be greater than 0 and at most 1, not {}",
                self.weight
            ));
        }
        if self.max_age_seconds == 0 {
            problems.push("max_age_seconds must be at least 1".to_owned());
        }
        if self.max_prefixes == 0 || self.max_prefixes > MAX_PREFIXES_LIMIT {
            problems.push(format!(
                "max_prefixes must be 1 to {MAX_PREFIXES_LIMIT}, not {}",
                self.max_prefixes
            ));
        }
        if !(self.max_rtt_ms > 0.0 && self.max_rtt_ms.is_finite()) {
            problems.push(format!(
                "max_rtt_ms must be a positive number, not {}",
                self.max_rtt_ms
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// What the model knows of one site as seen from one client network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteLatency {
    /// The moving average of the round-trip time, in milliseconds.
    pub rtt_ms: f32,
    /// Samples folded into the average since it (re)started; saturates.
    pub samples: u32,
    /// Unix time (seconds) of the newest sample.
    pub updated: u64,
}

/// A slot with no measurement: `samples == 0` marks it.
const EMPTY: SiteLatency = SiteLatency {
    rtt_ms: 0.0,
    samples: 0,
    updated: 0,
};

impl SiteLatency {
    fn is_fresh(&self, now: u64, max_age_seconds: u64) -> bool {
        self.samples > 0 && now.saturating_sub(self.updated) < max_age_seconds
    }
}

/// Why a sample was not recorded. The caller counts these (per
/// [`Rejected::label`]); the model keeps no counters of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejected {
    /// The site index is not one of the model's sites.
    #[error("unknown site")]
    UnknownSite,
    /// The round-trip time is not a number, not positive, or above
    /// [`ModelSettings::max_rtt_ms`].
    #[error("round-trip time not positive or larger than believable")]
    BadRtt,
    /// The sample is [`ModelSettings::max_age_seconds`] old or older: it
    /// would be stale on arrival.
    #[error("sample older than the maximum age")]
    TooOld,
    /// The sample is more than [`MAX_FUTURE_SECONDS`] ahead of now.
    #[error("sample time in the future")]
    InFuture,
}

impl Rejected {
    /// Every reason, so that a caller can keep one counter per reason.
    pub const ALL: [Rejected; 4] = [
        Rejected::UnknownSite,
        Rejected::BadRtt,
        Rejected::TooOld,
        Rejected::InFuture,
    ];

    /// A short name for a metrics label, e.g. `too_old`.
    pub fn label(self) -> &'static str {
        match self {
            Rejected::UnknownSite => "unknown_site",
            Rejected::BadRtt => "bad_rtt",
            Rejected::TooOld => "too_old",
            Rejected::InFuture => "in_future",
        }
    }
}

/// The largest [`ModelSettings::max_prefixes`]: nodes are numbered in a
/// `u32` with [`NONE`] kept apart, and the index's buckets (up to twice the
/// cap, rounded up to a power of two) are picked by 32 bits of hash.
pub const MAX_PREFIXES_LIMIT: usize = 1 << 30;

/// "No node": the end of a list, an empty bucket. Never a valid node index,
/// since there are at most [`MAX_PREFIXES_LIMIT`] nodes.
const NONE: u32 = u32::MAX;

/// Nodes allocated on first growth: small, so that an idle model costs
/// almost nothing whatever its cap.
const FIRST_NODES: usize = 64;

/// One tracked client network, a link in the update-order list.
#[derive(Clone, Copy, Debug)]
struct Node {
    prefix: ClientPrefix,
    /// Towards the least recently updated end; [`NONE`] at it.
    older: u32,
    /// Towards the most recently updated end; [`NONE`] at it. While the node
    /// is free, the next free node.
    newer: u32,
}

/// Nodes and their per-site latencies in flat vectors, so that a network
/// costs no allocation of its own, with an intrusive list in update order
/// so that finding the least recently updated node and moving a node to the
/// newest end are both O(1).
struct Slab {
    nodes: Vec<Node>,
    /// `sites` slots per node, node `n` at `n * sites`.
    latencies: Vec<SiteLatency>,
    sites: usize,
    oldest: u32,
    newest: u32,
    /// Head of the free nodes, linked through [`Node::newer`].
    free: u32,
}

impl Slab {
    fn new(sites: usize) -> Self {
        Self {
            nodes: Vec::new(),
            latencies: Vec::new(),
            sites,
            oldest: NONE,
            newest: NONE,
            free: NONE,
        }
    }

    fn latencies(&self, node: u32) -> &[SiteLatency] {
        let start = node as usize * self.sites;
        &self.latencies[start..start + self.sites]
    }

    fn latencies_mut(&mut self, node: u32) -> &mut [SiteLatency] {
        let start = node as usize * self.sites;
        &mut self.latencies[start..start + self.sites]
    }

    fn unlink(&mut self, node: u32) {
        let Node { older, newer, .. } = self.nodes[node as usize];
        if older == NONE {
            self.oldest = newer;
        } else {
            self.nodes[older as usize].newer = newer;
        }
        if newer == NONE {
            self.newest = older;
        } else {
            self.nodes[newer as usize].older = older;
        }
    }

    fn link_newest(&mut self, node: u32) {
        let newest = self.newest;
        let linked = &mut self.nodes[node as usize];
        linked.older = newest;
        linked.newer = NONE;
        if newest == NONE {
            self.oldest = node;
        } else {
            self.nodes[newest as usize].newer = node;
        }
        self.newest = node;
    }

    fn touch(&mut self, node: u32) {
        if self.newest != node {
            self.unlink(node);
            self.link_newest(node);
        }
    }

    /// Unlinks `node` and keeps it for reuse, its latencies cleared.
    fn release(&mut self, node: u32) {
        self.unlink(node);
        self.latencies_mut(node).fill(EMPTY);
        self.nodes[node as usize].newer = self.free;
        self.free = node;
    }

    /// A node for `prefix`, linked as the newest, with no latencies. When
    /// `tracked` networks already fill `max_prefixes`, the oldest node is
    /// reused and its network returned, for the caller to drop from the
    /// index.
    fn acquire(
        &mut self,
        prefix: ClientPrefix,
        tracked: usize,
        max_prefixes: usize,
    ) -> (u32, Option<ClientPrefix>) {
        let (node, evicted) = if tracked >= max_prefixes && self.oldest != NONE {
            let node = self.oldest;
            self.unlink(node);
            self.latencies_mut(node).fill(EMPTY);
            (node, Some(self.nodes[node as usize].prefix))
        } else if self.free != NONE {
            let node = self.free;
            self.free = self.nodes[node as usize].newer;
            (node, None)
        } else {
            self.grow(max_prefixes);
            let node = self.nodes.len() as u32;
            self.nodes.push(Node {
                prefix,
                older: NONE,
                newer: NONE,
            });
            self.latencies
                .resize(self.latencies.len() + self.sites, EMPTY);
            (node, None)
        };
        self.nodes[node as usize].prefix = prefix;
        self.link_newest(node);
        (node, evicted)
    }

    /// Makes room for one more node. Doubling keeps growth amortised O(1);
    /// reserving exactly, clamped to the cap, keeps a full model from
    /// holding room for nodes it may never have.
    fn grow(&mut self, max_prefixes: usize) {
        if self.nodes.len() < self.nodes.capacity() {
            return;
        }
        let target = (self.nodes.len() * 2)
            .max(FIRST_NODES)
            .min(max_prefixes)
            .max(self.nodes.len() + 1);
        let more = target - self.nodes.len();
        self.nodes.reserve_exact(more);
        self.latencies.reserve_exact(more * self.sites);
    }
}

/// One bucket of the [`Index`]: a node and 32 bits of its network's hash,
/// so that probing compares within the table and only follows a node on a
/// likely match, and deleting finds each entry's home without rehashing.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    node: u32,
    hash: u32,
}

const VACANT: Bucket = Bucket {
    node: NONE,
    hash: 0,
};

/// Buckets allocated on first insert.
const FIRST_BUCKETS: usize = 32;

/// Network → node: open addressing with linear probing, at most half full,
/// deleting by shifting the rest of a cluster back (no tombstones). Not
/// std's `HashMap` because at the cap every new network is an insert and a
/// removal: std's table marks removals as deleted, and when the markers pile
/// up it may double (to about 4.6 buckets of 17 bytes per network) without
/// saying so, since its `capacity()` shrinks instead. Here memory is exactly
/// 8 bytes a bucket, 2 to 4 buckets per network at the cap, and a debug
/// build records several times faster, which keeps the flood test short.
///
/// Networks come from posted measurements, so a client picks the keys: with
/// a fixed hash such as Fx (one multiplication, invertible) anyone can
/// compute networks that share one probe sequence and make every sample
/// walk all of them. SipHash with per-process random keys closes that, for
/// some 10 to 20 ns a hash.
struct Index {
    buckets: Vec<Bucket>,
    len: usize,
    hasher: RandomState,
}

impl Index {
    fn new() -> Self {
        Self {
            buckets: Vec::new(),
            len: 0,
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, prefix: ClientPrefix) -> u32 {
        // Low bits: SipHash's output bits are all equally good.
        self.hasher.hash_one(prefix) as u32
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The node of `prefix`, whose hash is `hash`.
    fn get(&self, nodes: &[Node], prefix: ClientPrefix, hash: u32) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut at = hash as usize & mask;
        // Ends: the table is never more than half full.
        loop {
            let bucket = self.buckets[at];
            if bucket.node == NONE {
                return None;
            }
            if bucket.hash == hash && nodes[bucket.node as usize].prefix == prefix {
                return Some(bucket.node);
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds `node`, whose network (not in the index) hashes to `hash`.
    fn insert(&mut self, node: u32, hash: u32) {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        self.place(Bucket { node, hash });
        self.len += 1;
    }

    fn place(&mut self, bucket: Bucket) {
        let mask = self.mask();
        let mut at = bucket.hash as usize & mask;
        while self.buckets[at].node != NONE {
            at = (at + 1) & mask;
        }
        self.buckets[at] = bucket;
    }

    /// Doubles the buckets. Only ever to fit one more entry than there are,
    /// and there are never more than the cap: so never past twice the cap,
    /// rounded up to a power of two.
    fn grow(&mut self) {
        let size = (self.buckets.len() * 2).max(FIRST_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, vec![VACANT; size]);
        for bucket in old {
            if bucket.node != NONE {
                self.place(bucket);
            }
        }
    }

    /// Removes `node`, whose network hashes to `hash`.
    fn remove(&mut self, node: u32, hash: u32) {
        let mask = self.mask();
        let mut hole = hash as usize & mask;
        while self.buckets[hole].node != node {
            // Every node in the list is in the index: a vacant bucket here
            // is a bug, and probing on would never end.
            assert_ne!(
                self.buckets[hole].node, NONE,
                "node {node} is not in the index"
            );
            hole = (hole + 1) & mask;
        }
        // Shift back every later entry of the cluster whose probe sequence
        // passes through the hole, so that lookups, which stop at the first
        // vacant bucket, still find it.
        let mut next = (hole + 1) & mask;
        loop {
            let bucket = self.buckets[next];
            if bucket.node == NONE {
                break;
            }
            let home = bucket.hash as usize & mask;
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.buckets[hole] = bucket;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.buckets[hole] = VACANT;
        self.len -= 1;
    }

    fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }
}

/// The latency model: see the module documentation.
pub struct LatencyModel {
    settings: ModelSettings,
    index: Index,
    slab: Slab,
    version: u64,
}

impl LatencyModel {
    /// An empty model of `sites` sites (indices `0..sites`). It allocates
    /// nothing until the first sample, and then grows with the networks
    /// seen, never past `settings.max_prefixes`.
    ///
    /// # Panics
    ///
    /// If `settings` fail [`ModelSettings::validate`]; config loading checks
    /// them first.
    pub fn new(settings: ModelSettings, sites: usize) -> Self {
        if let Err(problems) = settings.validate() {
            panic!("invalid latency model settings: {}", problems.join("; "));
        }
        Self {
            settings,
            index: Index::new(),
            slab: Slab::new(sites),
            version: 0,
        }
    }

    /// The settings the model was made with.
    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    /// The number of sites.
    pub fn sites(&self) -> usize {
        self.slab.sites
    }

    /// Folds one sample into the average of (`prefix`, `site`): `rtt_ms`
    /// measured at unix time `at` (the sample's own timestamp, or `now`
    /// without one), checked against `now`. Refuses a site `>= sites()`, an
    /// RTT that is not a number, not positive or above `max_rtt_ms`, a
    /// sample `max_age_seconds` old or older, and one more than
    /// [`MAX_FUTURE_SECONDS`] ahead; a refused sample changes nothing.
    ///
    /// The first sample, or the first after the entry went stale, sets the
    /// average; later ones move it by `weight` of the difference. Batches
    /// arrive out of order, so a sample older than the entry's newest still
    /// counts, but `updated` never moves back. Any accepted sample makes its
    /// network the most recently updated, and when a new network arrives at
    /// the cap, the least recently updated one is dropped to make room.
    ///
    /// O(1): one hash and lookup, and for a new network at the cap a second
    /// hash to drop the evicted one; no allocation once the model is full.
    pub fn record(
        &mut self,
        prefix: ClientPrefix,
        site: usize,
        rtt_ms: f64,
        at: u64,
        now: u64,
    ) -> Result<(), Rejected> {
        self.check(site, rtt_ms, at, now)?;
        let node = self.node_for(prefix);
        let settings = &self.settings;
        let slot = &mut self.slab.latencies[node as usize * self.slab.sites + site];
        if slot.is_fresh(now, settings.max_age_seconds) {
            let average = f64::from(slot.rtt_ms);
            slot.rtt_ms = (average + settings.weight * (rtt_ms - average)) as f32;
            slot.samples = slot.samples.saturating_add(1);
            slot.updated = slot.updated.max(at);
        } else {
            // A stale average says nothing about today: start over, whether
            // or not `expire` got to it first.
            *slot = SiteLatency {
                rtt_ms: rtt_ms as f32,
                samples: 1,
                updated: at,
            };
        }
        self.version += 1;
        Ok(())
    }

    /// Puts back a measurement saved from an earlier run as it was: average,
    /// sample count and time. Checked like [`LatencyModel::record`] (the
    /// site, the RTT, the age against `now`, a zero sample count as a bad
    /// RTT); the network becomes the most recently updated, so restoring a
    /// saved model oldest first rebuilds its eviction order.
    pub fn restore(
        &mut self,
        prefix: ClientPrefix,
        site: usize,
        latency: SiteLatency,
        now: u64,
    ) -> Result<(), Rejected> {
        // A slot with no samples is an empty one, not a measurement.
        let rtt_ms = if latency.samples == 0 {
            f64::NAN
        } else {
            f64::from(latency.rtt_ms)
        };
        self.check(site, rtt_ms, latency.updated, now)?;
        let node = self.node_for(prefix);
        self.slab.latencies[node as usize * self.slab.sites + site] = latency;
        self.version += 1;
        Ok(())
    }

    /// Why a measurement of `site`, `rtt_ms` at `at` would be refused now.
    fn check(&self, site: usize, rtt_ms: f64, at: u64, now: u64) -> Result<(), Rejected> {
        let settings = &self.settings;
        if site >= self.slab.sites {
            return Err(Rejected::UnknownSite);
        }
        // Written so that NaN fails too.
        if !(rtt_ms > 0.0 && rtt_ms <= settings.max_rtt_ms) {
            return Err(Rejected::BadRtt);
        }
        if now.saturating_sub(at) >= settings.max_age_seconds {
            return Err(Rejected::TooOld);
        }
        if at > now.saturating_add(MAX_FUTURE_SECONDS) {
            return Err(Rejected::InFuture);
        }
        Ok(())
    }

    /// The node of `prefix`, made the most recently updated; a new one (at
    /// the cap, in place of the least recently updated) when it has none.
    fn node_for(&mut self, prefix: ClientPrefix) -> u32 {
        let hash = self.index.hash(prefix);
        match self.index.get(&self.slab.nodes, prefix, hash) {
            Some(node) => {
                self.slab.touch(node);
                node
            }
            None => {
                let (node, evicted) =
                    self.slab
                        .acquire(prefix, self.index.len, self.settings.max_prefixes);
                if let Some(evicted) = evicted {
                    self.index.remove(node, self.index.hash(evicted));
                }
                self.index.insert(node, hash);
                node
            }
        }
    }

    /// The fresh latencies of the sites measured from `prefix`, by site
    /// index; nothing for a network the model does not know.
    pub fn site_latencies(&self, prefix: ClientPrefix, now: u64) -> FreshSites<'_> {
        let hash = self.index.hash(prefix);
        let latencies = match self.index.get(&self.slab.nodes, prefix, hash) {
            Some(node) => self.slab.latencies(node),
            None => &[],
        };
        FreshSites {
            latencies: latencies.iter().enumerate(),
            now,
            max_age_seconds: self.settings.max_age_seconds,
        }
    }

    /// Every network with at least one fresh site, least recently updated
    /// first, with its fresh sites. Allocates nothing: the compiler walks it
    /// every few seconds over up to `max_prefixes` networks.
    pub fn fresh_prefixes(
        &self,
        now: u64,
    ) -> impl Iterator<Item = (ClientPrefix, FreshSites<'_>)> + '_ {
        let max_age_seconds = self.settings.max_age_seconds;
        let mut node = self.slab.oldest;
        std::iter::from_fn(move || {
            while node != NONE {
                let current = node;
                node = self.slab.nodes[current as usize].newer;
                let sites = FreshSites {
                    latencies: self.slab.latencies(current).iter().enumerate(),
                    now,
                    max_age_seconds,
                };
                if sites.clone().next().is_some() {
                    return Some((self.slab.nodes[current as usize].prefix, sites));
                }
            }
            None
        })
    }

    /// Removes the stale (network, site) entries, and the networks left
    /// with none; returns how many networks went. O(networks × sites), for
    /// a timer, not per sample. Freed room is kept for new networks, so
    /// memory stays at its high-water mark (which the cap bounds).
    pub fn expire(&mut self, now: u64) -> usize {
        let max_age_seconds = self.settings.max_age_seconds;
        let mut removed = 0;
        let mut changed = false;
        let mut node = self.slab.oldest;
        while node != NONE {
            let next = self.slab.nodes[node as usize].newer;
            let mut measured = false;
            for slot in self.slab.latencies_mut(node) {
                if slot.samples == 0 {
                    continue;
                }
                if slot.is_fresh(now, max_age_seconds) {
                    measured = true;
                } else {
                    *slot = EMPTY;
                    changed = true;
                }
            }
            if !measured {
                let prefix = self.slab.nodes[node as usize].prefix;
                self.slab.release(node);
                self.index.remove(node, self.index.hash(prefix));
                removed += 1;
            }
            node = next;
        }
        if changed {
            self.version += 1;
        }
        removed
    }

    /// The number of client networks tracked, stale ones included until
    /// [`LatencyModel::expire`] removes them.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether no network is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    /// A counter that moves on every change (an accepted sample, an
    /// eviction, an expiry), so a compiler can skip recompiling when it has
    /// not moved since the last compile.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The heap the model holds, in bytes: the capacity of its three
    /// vectors (nodes, per-site latencies, index buckets). Exact but for the
    /// allocator's own rounding; while the model grows, a vector being
    /// moved to a larger allocation briefly holds both.
    pub fn memory_bytes(&self) -> usize {
        self.slab.nodes.capacity() * size_of::<Node>()
            + self.slab.latencies.capacity() * size_of::<SiteLatency>()
            + self.index.memory_bytes()
    }

    /// The most heap a full model of `sites` sites holds per network, in
    /// bytes: the figure to multiply [`ModelSettings::max_prefixes`] by when
    /// sizing a host. A node, the network's latencies, and up to four index
    /// buckets (two to four, depending on how the cap rounds up to a power
    /// of two). With 10 sites: 16 + 160 + 32 = 208.
    pub fn bytes_per_prefix(sites: usize) -> usize {
        size_of::<Node>() + sites * size_of::<SiteLatency>() + 4 * size_of::<Bucket>()
    }
}

/// The fresh sites of one client network, as (site index, latency).
#[derive(Clone, Debug)]
pub struct FreshSites<'a> {
    latencies: std::iter::Enumerate<std::slice::Iter<'a, SiteLatency>>,
    now: u64,
    max_age_seconds: u64,
}

impl Iterator for FreshSites<'_> {
    type Item = (usize, SiteLatency);

    fn next(&mut self) -> Option<Self::Item> {
        let (now, max_age_seconds) = (self.now, self.max_age_seconds);
        self.latencies
            .find(|(_, latency)| latency.is_fresh(now, max_age_seconds))
            .map(|(site, latency)| (site, *latency))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn address(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn prefix(text: &str) -> ClientPrefix {
        ClientPrefix::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn settings(max_prefixes: usize) -> ModelSettings {
        ModelSettings {
            max_prefixes,
            ..ModelSettings::default()
        }
    }

    fn latencies(
        model: &LatencyModel,
        network: ClientPrefix,
        now: u64,
    ) -> Vec<(usize, SiteLatency)> {
        model.site_latencies(network, now).collect()
    }

    #[test]
    fn prefix_of_keeps_the_24_or_48() {
        let v4 = ClientPrefix::of(address("198.51.100.7"));
        assert_eq!(v4.network(), (address("198.51.100.0"), 24));
        assert!(v4.is_v4());
        let v6 = ClientPrefix::of(address("2001:db8:1:2::5"));
        assert_eq!(v6.network(), (address("2001:db8:1::"), 48));
        assert!(!v6.is_v4());
        let mapped = ClientPrefix::of(address("::ffff:198.51.100.200"));
        assert_eq!(mapped, v4);
        assert_eq!(v4.to_string(), "198.51.100.0/24");
        assert_eq!(v6.to_string(), "2001:db8:1::/48");
        assert_eq!(format!("{v6:?}"), "ClientPrefix(2001:db8:1::/48)");
    }

    #[test]
    fn packed_words_round_trip_and_stray_bits_are_refused() {
        for text in [
            "198.51.100.0/24",
            "0.0.0.0/24",
            "2001:db8:1::/48",
            "ffff:ffff:ffff::/48",
        ] {
            let network = prefix(text);
            assert_eq!(ClientPrefix::from_bits(network.to_bits()), Some(network));
        }
        assert_eq!(ClientPrefix::from_bits(1 << 24), None);
        assert_eq!(ClientPrefix::from_bits(IPV6_FLAG << 1), None);
    }

    #[test]
    fn restored_measurements_come_back_as_saved_and_in_eviction_order() {
        let mut model = LatencyModel::new(settings(2), 2);
        let saved = |rtt_ms: f32, samples: u32, updated: u64| SiteLatency {
            rtt_ms,
            samples,
            updated,
        };
        let (older, newer) = (prefix("192.0.2.0/24"), prefix("198.51.100.0/24"));
        model
            .restore(older, 1, saved(40.5, 12, NOW - 100), NOW)
            .expect("restored");
        model
            .restore(newer, 0, saved(9.25, 3, NOW - 10), NOW)
            .expect("restored");
        assert_eq!(
            latencies(&model, older, NOW),
            [(1, saved(40.5, 12, NOW - 100))]
        );
        assert_eq!(
            latencies(&model, newer, NOW),
            [(0, saved(9.25, 3, NOW - 10))]
        );
        // Restored oldest first, so the oldest is the one evicted at the cap.
        model
            .record(prefix("203.0.113.0/24"), 0, 5.0, NOW, NOW)
            .expect("recorded");
        assert!(latencies(&model, older, NOW).is_empty());
        // The next sample averages on from the restored value.
        model.record(newer, 0, 19.25, NOW, NOW).expect("recorded");
        let after = latencies(&model, newer, NOW)[0].1;
        assert_eq!((after.rtt_ms, after.samples), (12.25, 4));

        let version = model.version();
        let refused = [
            (2, saved(10.0, 1, NOW), Rejected::UnknownSite),
            (0, saved(10.0, 0, NOW), Rejected::BadRtt),
            (0, saved(f32::NAN, 1, NOW), Rejected::BadRtt),
            (0, saved(10.0, 1, NOW - 3_600), Rejected::TooOld),
            (0, saved(10.0, 1, NOW + 3_600), Rejected::InFuture),
        ];
        for (site, latency, why) in refused {
            assert_eq!(
                model.restore(newer, site, latency, NOW),
                Err(why),
                "{latency:?}"
            );
        }
        assert_eq!(
            model.version(),
            version,
            "a refused restore changes nothing"
        );
    }

    #[test]
    fn prefix_families_never_collide_and_v4_sorts_first() {
        let zero_v4 = ClientPrefix::of(address("0.0.0.0"));
        let zero_v6 = ClientPrefix::of(address("::"));
        let top_v4 = ClientPrefix::of(address("255.255.255.255"));
        let top_v6 = ClientPrefix::of(address("ffff:ffff:ffff:ffff::"));
        assert_ne!(zero_v4, zero_v6);
        assert!(top_v4 < zero_v6);
        assert_eq!(top_v6.network(), (address("ffff:ffff:ffff::"), 48));
        assert_eq!(top_v4.network(), (address("255.255.255.0"), 24));
    }

    #[test]
    fn prefix_parse_accepts_addresses_and_networks() {
        let v4 = prefix("198.51.100.0/24");
        for text in [
            "198.51.100.7",
            "198.51.100.7/32",
            "198.51.100.128/25",
            "::ffff:198.51.100.7",
            "::ffff:198.51.100.0/120",
            "::ffff:198.51.100.64/122",
        ] {
            assert_eq!(prefix(text), v4, "{text}");
        }
        let v6 = prefix("2001:db8:1::/48");
        for text in [
            "2001:db8:1:2::5",
            "2001:db8:1:ff00::/56",
            "2001:db8:1::1/128",
        ] {
            assert_eq!(prefix(text), v6, "{text}");
        }
        // Display reads back as itself.
        for network in [v4, v6] {
            assert_eq!(prefix(&network.to_string()), network);
        }
    }

    #[test]
    fn prefix_parse_rejects_wide_and_malformed_prefixes() {
        let cases = [
            (
                "198.51.0.0/16",
                "client prefix \"198.51.0.0/16\" covers more than one client network; \
                 latency is kept per /24 (IPv4) or /48 (IPv6)",
            ),
            ("2001:db8::/32", "covers more than one client network"),
            ("::ffff:0:0/96", "covers more than one client network"),
            (
                "::ffff:198.51.0.0/112",
                "covers more than one client network",
            ),
            (
                "198.51.100.7/24",
                "prefix \"198.51.100.7/24\" has bits set beyond its length; \
                 did you mean 198.51.100.0/24?",
            ),
            (
                "2001:db8:1::1/48",
                "has bits set beyond its length; did you mean 2001:db8:1::/48?",
            ),
            ("198.51.100.129/25", "did you mean 198.51.100.128/25?"),
            (
                "198.51.100.0/33",
                "invalid prefix \"198.51.100.0/33\": the length must be 0 to 32",
            ),
            ("2001:db8::/129", "the length must be 0 to 128"),
            ("198.51.100.0/+24", "expected an address and a length"),
            ("198.51.100.0/", "expected an address and a length"),
            ("example.com", "expected an address and a length"),
            ("", "expected an address and a length"),
        ];
        for (text, expected) in cases {
            match ClientPrefix::parse(text) {
                Ok(network) => panic!("{text} parsed as {network}"),
                Err(error) => assert!(error.contains(expected), "{text}: {error}"),
            }
        }
    }

    #[test]
    fn first_sample_sets_the_average_and_later_ones_move_it_by_weight() {
        let mut model = LatencyModel::new(
            ModelSettings {
                weight: 0.25,
                ..ModelSettings::default()
            },
            2,
        );
        let network = prefix("198.51.100.0/24");
        model.record(network, 1, 100.0, NOW, NOW).expect("accepted");
        assert_eq!(
            latencies(&model, network, NOW),
            [(
                1,
                SiteLatency {
                    rtt_ms: 100.0,
                    samples: 1,
                    updated: NOW
                }
            )]
        );
        model
            .record(network, 1, 200.0, NOW + 1, NOW + 1)
            .expect("accepted");
        model
            .record(network, 1, 25.0, NOW + 2, NOW + 2)
            .expect("accepted");
        // 100 + (200 - 100) / 4 = 125; 125 + (25 - 125) / 4 = 100.
        assert_eq!(
            latencies(&model, network, NOW + 2),
            [(
                1,
                SiteLatency {
                    rtt_ms: 100.0,
                    samples: 3,
                    updated: NOW + 2
                }
            )]
        );
        // Weight 1 is "latest sample wins".
        let mut latest = LatencyModel::new(
            ModelSettings {
                weight: 1.0,
                ..ModelSettings::default()
            },
            1,
        );
        latest.record(network, 0, 80.0, NOW, NOW).expect("accepted");
        latest.record(network, 0, 20.0, NOW, NOW).expect("accepted");
        assert_eq!(latencies(&latest, network, NOW)[0].1.rtt_ms, 20.0);
    }

    #[test]
    fn sample_count_saturates() {
        let mut model = LatencyModel::new(ModelSettings::default(), 1);
        let network = prefix("198.51.100.0/24");
        model.record(network, 0, 10.0, NOW, NOW).expect("accepted");
        model.slab.latencies[0].samples = u32::MAX;
        model.record(network, 0, 10.0, NOW, NOW).expect("accepted");
        assert_eq!(latencies(&model, network, NOW)[0].1.samples, u32::MAX);
    }

    #[test]
    fn late_sample_counts_without_moving_updated_back() {
        let mut model = LatencyModel::new(
            ModelSettings {
                weight: 0.5,
                ..ModelSettings::default()
            },
            1,
        );
        let network = prefix("2001:db8:1::/48");
        model.record(network, 0, 40.0, NOW, NOW).expect("accepted");
        model
            .record(network, 0, 20.0, NOW - 300, NOW)
            .expect("accepted");
        assert_eq!(
            latencies(&model, network, NOW),
            [(
                0,
                SiteLatency {
                    rtt_ms: 30.0,
                    samples: 2,
                    updated: NOW
                }
            )]
        );
    }

    #[test]
    fn each_rejection_is_reported_and_changes_nothing() {
        let mut model = LatencyModel::new(
            ModelSettings {
                max_age_seconds: 600,
                max_rtt_ms: 5_000.0,
                ..ModelSettings::default()
            },
            3,
        );
        let network = prefix("198.51.100.0/24");
        let cases = [
            (3, 10.0, NOW, Rejected::UnknownSite),
            (usize::MAX, 10.0, NOW, Rejected::UnknownSite),
            (0, 0.0, NOW, Rejected::BadRtt),
            (0, -5.0, NOW, Rejected::BadRtt),
            (0, f64::NAN, NOW, Rejected::BadRtt),
            (0, f64::INFINITY, NOW, Rejected::BadRtt),
            (0, 5_000.1, NOW, Rejected::BadRtt),
            (0, 10.0, NOW - 600, Rejected::TooOld),
            (0, 10.0, 0, Rejected::TooOld),
            (0, 10.0, NOW + MAX_FUTURE_SECONDS + 1, Rejected::InFuture),
            (0, 10.0, u64::MAX, Rejected::InFuture),
        ];
        for (site, rtt_ms, at, expected) in cases {
            assert_eq!(
                model.record(network, site, rtt_ms, at, NOW),
                Err(expected),
                "site {site}, {rtt_ms} ms at {at}"
            );
        }
        assert!(model.is_empty());
        assert_eq!(model.version(), 0);
        assert_eq!(model.memory_bytes(), 0);
        // The limits themselves are accepted.
        for (site, rtt_ms, at) in [
            (2, 5_000.0, NOW),
            (0, f64::MIN_POSITIVE, NOW),
            (1, 10.0, NOW - 599),
            (1, 10.0, NOW + MAX_FUTURE_SECONDS),
        ] {
            assert_eq!(model.record(network, site, rtt_ms, at, NOW), Ok(()));
        }
        assert_eq!(model.len(), 1);
        let labels: Vec<_> = Rejected::ALL.iter().map(|reason| reason.label()).collect();
        assert_eq!(labels, ["unknown_site", "bad_rtt", "too_old", "in_future"]);
        for reason in Rejected::ALL {
            assert!(!reason.to_string().is_empty());
        }
    }

    #[test]
    fn stale_entries_are_hidden_then_expired() {
        let mut model = LatencyModel::new(settings(10), 2);
        let network = prefix("198.51.100.0/24");
        model.record(network, 0, 10.0, NOW, NOW).expect("accepted");
        model
            .record(network, 1, 20.0, NOW + 100, NOW + 100)
            .expect("accepted");
        let later = NOW + 3600;
        let sites: Vec<usize> = model
            .site_latencies(network, later)
            .map(|(site, _)| site)
            .collect();
        assert_eq!(sites, [1]);

        let version = model.version();
        assert_eq!(model.expire(later), 0, "site 1 keeps the network");
        assert!(model.version() > version);
        assert_eq!(model.slab.latencies(0)[0], EMPTY);
        assert_eq!(model.len(), 1);

        assert_eq!(model.expire(NOW + 3700), 1);
        assert!(model.is_empty());
        assert_eq!(latencies(&model, network, NOW + 3700), []);
        assert_eq!(model.fresh_prefixes(NOW + 3700).count(), 0);
    }

    #[test]
    fn stale_average_restarts_on_its_next_sample() {
        let mut model = LatencyModel::new(settings(10), 1);
        let network = prefix("198.51.100.0/24");
        model.record(network, 0, 100.0, NOW, NOW).expect("accepted");
        let later = NOW + 3600;
        model
            .record(network, 0, 300.0, later, later)
            .expect("accepted");
        assert_eq!(
            latencies(&model, network, later),
            [(
                0,
                SiteLatency {
                    rtt_ms: 300.0,
                    samples: 1,
                    updated: later
                }
            )]
        );
    }

    #[test]
    fn cap_evicts_the_least_recently_updated_network() {
        let mut model = LatencyModel::new(settings(3), 1);
        let [first, second, third, fourth] = [
            "192.0.2.0/24",
            "198.51.100.0/24",
            "2001:db8:1::/48",
            "203.0.113.0/24",
        ]
        .map(prefix);
        for network in [first, second, third] {
            model.record(network, 0, 10.0, NOW, NOW).expect("accepted");
        }
        // Updating `first` makes `second` the least recently updated, even
        // though the update carries an older timestamp.
        model
            .record(first, 0, 10.0, NOW - 10, NOW)
            .expect("accepted");
        model.record(fourth, 0, 10.0, NOW, NOW).expect("accepted");
        assert_eq!(model.len(), 3);
        assert_eq!(latencies(&model, second, NOW), []);
        let order: Vec<ClientPrefix> = model
            .fresh_prefixes(NOW)
            .map(|(network, _)| network)
            .collect();
        assert_eq!(order, [third, first, fourth]);

        // The evicted node is reused: no growth past the cap.
        model.record(second, 0, 10.0, NOW, NOW).expect("accepted");
        assert_eq!(model.slab.nodes.len(), 3);
        assert_eq!(model.slab.nodes.capacity(), 3);
        assert_eq!(model.slab.latencies.capacity(), 3);
        assert_eq!(latencies(&model, third, NOW), []);
    }

    #[test]
    fn expired_nodes_are_reused() {
        let mut model = LatencyModel::new(settings(100), 4);
        for last in 0..50u8 {
            let network = ClientPrefix::of(IpAddr::V4(Ipv4Addr::new(10, 0, last, 0)));
            model
                .record(network, usize::from(last % 4), 10.0, NOW, NOW)
                .expect("accepted");
        }
        let capacity = model.slab.nodes.capacity();
        assert_eq!(model.expire(NOW + 3600), 50);
        for last in 0..50u8 {
            let network = ClientPrefix::of(IpAddr::V4(Ipv4Addr::new(10, 1, last, 0)));
            model
                .record(network, 0, 10.0, NOW + 3600, NOW + 3600)
                .expect("accepted");
        }
        assert_eq!(model.len(), 50);
        assert_eq!(model.slab.nodes.len(), 50);
        assert_eq!(model.slab.nodes.capacity(), capacity);
    }

    #[test]
    fn version_moves_on_every_change_only() {
        let mut model = LatencyModel::new(settings(1), 1);
        let [first, second] = ["192.0.2.0/24", "198.51.100.0/24"].map(prefix);
        let mut version = model.version();
        let mut assert_moved = |model: &LatencyModel, moved: bool, what: &str| {
            assert_eq!(model.version() != version, moved, "{what}");
            version = model.version();
        };
        model.record(first, 0, 10.0, NOW, NOW).expect("accepted");
        assert_moved(&model, true, "new network");
        model.record(first, 0, 10.0, NOW, NOW).expect("accepted");
        assert_moved(&model, true, "same value again");
        model.record(second, 0, 10.0, NOW, NOW).expect("accepted");
        assert_moved(&model, true, "eviction");
        let _ = model.record(second, 5, 10.0, NOW, NOW);
        assert_moved(&model, false, "rejected sample");
        model.expire(NOW + 10);
        assert_moved(&model, false, "expiry with nothing stale");
        model.expire(NOW + 3600);
        assert_moved(&model, true, "expiry");
        model.expire(NOW + 3600);
        assert_moved(&model, false, "expiry of an empty model");
    }

    #[test]
    fn fresh_prefixes_lists_only_fresh_sites() {
        let mut model = LatencyModel::new(settings(10), 3);
        let [old, mixed] = ["192.0.2.0/24", "2001:db8:1::/48"].map(prefix);
        model.record(old, 0, 10.0, NOW, NOW).expect("accepted");
        model.record(mixed, 2, 30.0, NOW, NOW).expect("accepted");
        model
            .record(mixed, 1, 20.0, NOW + 1000, NOW + 1000)
            .expect("accepted");
        let later = NOW + 3600;
        let listed: Vec<(ClientPrefix, Vec<(usize, SiteLatency)>)> = model
            .fresh_prefixes(later)
            .map(|(network, sites)| (network, sites.collect()))
            .collect();
        assert_eq!(
            listed,
            [(
                mixed,
                vec![(
                    1,
                    SiteLatency {
                        rtt_ms: 20.0,
                        samples: 1,
                        updated: NOW + 1000
                    }
                )]
            )]
        );
    }

    #[test]
    fn idle_model_holds_no_memory_whatever_its_cap() {
        let model = LatencyModel::new(ModelSettings::default(), 50);
        assert_eq!(model.memory_bytes(), 0);
        assert_eq!(model.sites(), 50);
        assert_eq!(model.settings().max_prefixes, 1_000_000);
    }

    #[test]
    fn settings_validation_lists_every_problem() {
        assert_eq!(ModelSettings::default().validate(), Ok(()));
        let problems = ModelSettings {
            weight: 0.0,
            max_age_seconds: 0,
            max_prefixes: 0,
            max_rtt_ms: f64::NAN,
        }
        .validate()
        .expect_err("every field is out of range");
        assert_eq!(problems.len(), 4, "{problems:?}");
        for weight in [f64::NAN, -0.1, 1.5] {
            let bad = ModelSettings {
                weight,
                ..ModelSettings::default()
            };
            assert!(bad.validate().is_err(), "{weight}");
        }
    }

    /// xorshift64: random networks for the memory test without a new
    /// dependency.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// A flood of samples for random networks, as a hostile or broken
    /// client could post, stays within the cap and within a memory bound
    /// derived from the layout: nodes and latencies for the cap and no more
    /// (reserved exactly, never past it), and index buckets for twice the
    /// cap rounded up to a power of two (grown only to keep the table at
    /// most half full).
    #[test]
    fn memory_stays_bounded_under_ten_million_random_networks() {
        const CAP: usize = 100_000;
        const SITES: usize = 10;
        let started = Instant::now();
        let mut model = LatencyModel::new(settings(CAP), SITES);
        let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);
        let bound = CAP * (size_of::<Node>() + SITES * size_of::<SiteLatency>())
            + (2 * CAP).next_power_of_two() * size_of::<Bucket>();
        assert!(bound <= CAP * LatencyModel::bytes_per_prefix(SITES));
        let mut high_water = 0;
        for sample in 0..10_000_000u64 {
            let bits = random.next();
            let address = if bits & 1 == 0 {
                IpAddr::V4(Ipv4Addr::from((bits >> 32) as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(u128::from(bits) << 64))
            };
            let site = (bits >> 8) as usize % SITES;
            let rtt_ms = 1.0 + ((bits >> 16) & 0xffff) as f64 / 100.0;
            let now = NOW + sample / 100_000;
            model
                .record(ClientPrefix::of(address), site, rtt_ms, now, now)
                .expect("accepted");
            if sample % 65_536 == 0 {
                assert!(model.len() <= CAP);
                high_water = high_water.max(model.memory_bytes());
            }
        }
        high_water = high_water.max(model.memory_bytes());
        assert_eq!(model.len(), CAP);
        assert_eq!(model.slab.nodes.capacity(), CAP);
        assert!(
            high_water <= bound,
            "{high_water} bytes, bound {bound} ({} per network)",
            LatencyModel::bytes_per_prefix(SITES)
        );
        eprintln!(
            "10M samples in {:?}: {high_water} bytes for {CAP} networks, bound {bound}",
            started.elapsed()
        );
    }

    /// The obvious model: a map of networks, each with a last-touched tick
    /// and an optional latency per site; eviction scans for the oldest tick.
    struct Reference {
        settings: ModelSettings,
        sites: usize,
        networks: HashMap<ClientPrefix, (u64, Vec<Option<SiteLatency>>)>,
        tick: u64,
    }

    impl Reference {
        fn record(
            &mut self,
            network: ClientPrefix,
            site: usize,
            rtt_ms: f64,
            at: u64,
            now: u64,
        ) -> Result<(), Rejected> {
            if site >= self.sites {
                return Err(Rejected::UnknownSite);
            }
            if rtt_ms.is_nan() || rtt_ms <= 0.0 || rtt_ms > self.settings.max_rtt_ms {
                return Err(Rejected::BadRtt);
            }
            if at + self.settings.max_age_seconds <= now {
                return Err(Rejected::TooOld);
            }
            if at > now + MAX_FUTURE_SECONDS {
                return Err(Rejected::InFuture);
            }
            if !self.networks.contains_key(&network)
                && self.networks.len() == self.settings.max_prefixes
            {
                let oldest = *self
                    .networks
                    .iter()
                    .min_by_key(|(_, (touched, _))| *touched)
                    .map(|(network, _)| network)
                    .expect("the reference is full, so not empty");
                self.networks.remove(&oldest);
            }
            self.tick += 1;
            let sites = self.sites;
            let (touched, latencies) = self
                .networks
                .entry(network)
                .or_insert_with(|| (0, vec![None; sites]));
            *touched = self.tick;
            let max_age = self.settings.max_age_seconds;
            latencies[site] = Some(match latencies[site] {
                Some(old) if old.updated + max_age > now => {
                    let average = f64::from(old.rtt_ms);
                    SiteLatency {
                        rtt_ms: (average + self.settings.weight * (rtt_ms - average)) as f32,
                        samples: old.samples + 1,
                        updated: old.updated.max(at),
                    }
                }
                _ => SiteLatency {
                    rtt_ms: rtt_ms as f32,
                    samples: 1,
                    updated: at,
                },
            });
            Ok(())
        }

        fn fresh(&self, network: ClientPrefix, now: u64) -> Vec<(usize, SiteLatency)> {
            let Some((_, latencies)) = self.networks.get(&network) else {
                return Vec::new();
            };
            latencies
                .iter()
                .enumerate()
                .filter_map(|(site, latency)| Some((site, (*latency)?)))
                .filter(|(_, latency)| latency.updated + self.settings.max_age_seconds > now)
                .collect()
        }

        /// Returns (networks removed, whether anything changed).
        fn expire(&mut self, now: u64) -> (usize, bool) {
            let max_age = self.settings.max_age_seconds;
            let mut changed = false;
            for (_, latencies) in self.networks.values_mut() {
                for latency in latencies.iter_mut() {
                    if latency.is_some_and(|latency| latency.updated + max_age <= now) {
                        *latency = None;
                        changed = true;
                    }
                }
            }
            let before = self.networks.len();
            self.networks
                .retain(|_, (_, latencies)| latencies.iter().any(Option::is_some));
            (before - self.networks.len(), changed)
        }
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Record {
            network: usize,
            site: usize,
            rtt_ms: f64,
            /// Seconds from now, negative for the past.
            offset: i64,
        },
        Expire,
    }

    /// Few networks, so that a small cap keeps evicting and networks come
    /// back; both families.
    const NETWORKS: [&str; 6] = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8:1::/48",
        "2001:db8:2::/48",
        "::ffff:192.0.2.0/120",
    ];

    fn operation() -> impl Strategy<Value = Operation> {
        let rtt_ms = prop_oneof![
            Just(0.0),
            Just(-1.0),
            Just(f64::NAN),
            Just(100.0),
            Just(100.5),
            Just(250.0),
            0.01f64..120.0,
        ];
        prop_oneof![
            6 => (0..NETWORKS.len(), 0..4usize, rtt_ms, -130i64..80).prop_map(
                |(network, site, rtt_ms, offset)| Operation::Record { network, site, rtt_ms, offset }
            ),
            1 => Just(Operation::Expire),
        ]
    }

    proptest! {
        /// The index under hashes chosen to collide and to wrap around the
        /// end of the table, where backward-shift deletion goes wrong if it
        /// goes wrong anywhere: SipHash would almost never produce them.
        #[test]
        fn index_finds_exactly_what_is_in_it(
            hashes in proptest::collection::vec(
                prop_oneof![0u32..3, 29u32..32, 61u32..64, Just(u32::MAX)],
                40,
            ),
            toggles in proptest::collection::vec(0..40usize, 1..300),
        ) {
            let nodes: Vec<Node> = (0..40u64)
                .map(|key| Node { prefix: ClientPrefix(key), older: NONE, newer: NONE })
                .collect();
            let mut index = Index::new();
            let mut present = [false; 40];
            for key in toggles {
                let node = key as u32;
                if present[key] {
                    index.remove(node, hashes[key]);
                } else {
                    index.insert(node, hashes[key]);
                }
                present[key] = !present[key];
                prop_assert_eq!(index.len, present.iter().filter(|&&present| present).count());
                for (key, &present) in present.iter().enumerate() {
                    let found = index.get(&nodes, ClientPrefix(key as u64), hashes[key]);
                    prop_assert_eq!(found, present.then_some(key as u32), "key {}", key);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn model_agrees_with_a_naive_reference(
            max_prefixes in 1..5usize,
            weight in prop_oneof![Just(1.0), Just(0.5), 0.01f64..1.0],
            steps in proptest::collection::vec((operation(), 0u64..40), 1..200),
        ) {
            let settings = ModelSettings {
                weight,
                max_age_seconds: 100,
                max_prefixes,
                max_rtt_ms: 200.0,
            };
            let sites = 3;
            let mut model = LatencyModel::new(settings.clone(), sites);
            let mut reference = Reference {
                settings,
                sites,
                networks: HashMap::new(),
                tick: 0,
            };
            let networks = NETWORKS.map(prefix);
            let mut now = NOW;
            for (operation, advance) in steps {
                now += advance;
                let version = model.version();
                let changed = match operation {
                    Operation::Record { network, site, rtt_ms, offset } => {
                        let at = now.saturating_add_signed(offset);
                        let network = networks[network];
                        let result = model.record(network, site, rtt_ms, at, now);
                        prop_assert_eq!(result, reference.record(network, site, rtt_ms, at, now));
                        result.is_ok()
                    }
                    Operation::Expire => {
                        let (removed, changed) = reference.expire(now);
                        prop_assert_eq!(model.expire(now), removed);
                        changed
                    }
                };
                prop_assert_eq!(model.version() != version, changed);
                prop_assert_eq!(model.len(), reference.networks.len());
                prop_assert!(model.len() <= max_prefixes);
                for network in networks {
                    prop_assert_eq!(
                        model.site_latencies(network, now).collect::<Vec<_>>(),
                        reference.fresh(network, now),
                        "{}", network
                    );
                }
                let mut listed: Vec<(ClientPrefix, Vec<(usize, SiteLatency)>)> = model
                    .fresh_prefixes(now)
                    .map(|(network, sites)| (network, sites.collect()))
                    .collect();
                listed.sort_by_key(|(network, _)| *network);
                let mut expected: Vec<(ClientPrefix, Vec<(usize, SiteLatency)>)> = reference
                    .networks
                    .keys()
                    .map(|&network| (network, reference.fresh(network, now)))
                    .filter(|(_, sites)| !sites.is_empty())
                    .collect();
                expected.sort_by_key(|(network, _)| *network);
                prop_assert_eq!(listed, expected);
            }
        }
    }
}
