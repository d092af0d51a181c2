//! Query counters, kept per worker so that the data plane never contends.
//!
//! Each UDP worker and the TCP service own a [`WorkerCounters`]; they bump
//! relaxed atomics on their own cache lines. Besides the response codes, a
//! worker counts steered answers by decision in a flat array of
//! [`DECISION_SLOTS`] counters, indexed by the [`DecisionSlot`] the policy
//! returned (which slot means which name, pool and reason is the
//! [`DecisionRegistry`]'s business, on the control plane). The admin API
//! sums them when `/metrics` is scraped. Nothing here locks or allocates on
//! the query path.

mod decisions;

pub use decisions::{
    DECISION_SLOTS, DecisionKey, DecisionRegistry, DecisionSlot, OVERFLOW_SLOT, Reason,
    ZONE_OVERFLOW_SLOT, ZONE_SLOTS, ZoneSlot,
};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dns::{Outcome, OverLimit, Transport};

/// Response codes counted separately; anything else lands in `other`.
pub const COUNTED_RCODES: [(u16, &str); 7] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (16, "BADVERS"),
];

const TRANSPORTS: usize = 3;
/// UDP and TCP: the transports a PROXY header comes over.
const PROXY_TRANSPORTS: usize = 2;

/// Response codes counted per zone; anything else counts as `other`.
pub const ZONE_RCODES: [(u16, &str); 2] = [(0, "NOERROR"), (3, "NXDOMAIN")];
const ZONE_COUNTERS: usize = ZONE_RCODES.len() + 1;
const OVER_LIMIT_ACTIONS: usize = OverLimit::ALL.len();
const SLOTS: usize = COUNTED_RCODES.len() + 1;

/// Decision counters per 128-byte block, the alignment the rest of the
/// worker's counters use (a cache line on Apple silicon, the pair of lines
/// x86 prefetches together).
const SLOTS_PER_LINE: usize = 16;

/// A cache line of decision counters. The array is made of whole aligned
/// lines so that no other allocation, written by another thread, shares a
/// line with its first or last counters.
#[repr(align(128))]
struct DecisionLine([AtomicU64; SLOTS_PER_LINE]);

/// Counters of one worker. Aligned to a cache line so workers do not share one.
#[repr(align(128))]
pub struct WorkerCounters {
    answered: [[AtomicU64; SLOTS]; TRANSPORTS],
    dropped: [AtomicU64; TRANSPORTS],
    /// UDP responses over the rate limit, by [`OverLimit::ALL`] action.
    over_limit: [AtomicU64; OVER_LIMIT_ACTIONS],
    /// The last IPv4 client held to the rate limit, `1 << 32 | address`
    /// (0: none yet), for the log's example.
    last_limited_v4: AtomicU64,
    /// The top 64 bits of the last IPv6 client held to it (0: none yet).
    last_limited_v6: AtomicU64,
    /// TCP connections closed at accept, by [`TcpRefusal`].
    tcp_refused: [AtomicU64; 2],
    /// DNS over TLS handshakes completed, and failed or timed out.
    tls_handshakes: [AtomicU64; 2],
    /// Responses per zone slot, by [`ZONE_RCODES`] (the last: any other).
    zones: Box<[[AtomicU64; ZONE_COUNTERS]]>,
    /// [`DECISION_SLOTS`] counters, allocated once when the worker starts
    /// (128 KiB).
    decisions: Box<[DecisionLine]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        Self {
            answered: Default::default(),
            dropped: Default::default(),
            over_limit: Default::default(),
            last_limited_v4: AtomicU64::new(0),
            last_limited_v6: AtomicU64::new(0),
            tcp_refused: Default::default(),
            tls_handshakes: Default::default(),
            zones: (0..ZONE_SLOTS).map(|_| Default::default()).collect(),
            decisions: (0..DECISION_SLOTS.div_ceil(SLOTS_PER_LINE))
                .map(|_| DecisionLine(Default::default()))
                .collect(),
        }
    }
}

fn transport_index(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
    }
}

fn rcode_slot(rcode: u16) -> usize {
    COUNTED_RCODES
        .iter()
        .position(|(code, _)| *code == rcode)
        .unwrap_or(COUNTED_RCODES.len())
}

impl WorkerCounters {
    /// Counts one handled packet.
    #[inline]
    pub fn record(&self, transport: Transport, outcome: Outcome) {
        let transport = transport_index(transport);
        match outcome {
            Outcome::Reply {
                rcode,
                decision,
                zone,
            } => self.answered(transport, rcode, decision, zone),
            Outcome::OverLimit {
                rcode,
                decision,
                zone,
                action,
            } => {
                self.over_limit[action as usize].fetch_add(1, Ordering::Relaxed);
                if action == OverLimit::Dropped {
                    self.dropped[transport].fetch_add(1, Ordering::Relaxed);
                } else {
                    self.answered(transport, rcode, decision, zone);
                }
            }
            Outcome::Drop => {
                self.dropped[transport].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a TCP connection closed at accept.
    pub fn refuse_tcp(&self, reason: TcpRefusal) {
        self.tcp_refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a DNS over TLS handshake that completed, or did not.
    pub fn tls_handshake(&self, completed: bool) {
        self.tls_handshakes[usize::from(!completed)].fetch_add(1, Ordering::Relaxed);
    }

    /// Notes `client` as the latest held to the rate limit (a store to
    /// this worker's own line, no more).
    #[inline]
    pub fn note_limited(&self, client: IpAddr) {
        match client.to_canonical() {
            IpAddr::V4(address) => self
                .last_limited_v4
                .store(1 << 32 | u64::from(u32::from(address)), Ordering::Relaxed),
            IpAddr::V6(address) => self
                .last_limited_v6
                .store((u128::from(address) >> 64) as u64, Ordering::Relaxed),
        }
    }

    #[inline]
    fn answered(
        &self,
        transport: usize,
        rcode: u16,
        decision: Option<DecisionSlot>,
        zone: Option<ZoneSlot>,
    ) {
        self.answered[transport][rcode_slot(rcode)].fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = decision {
            self.decision(slot).fetch_add(1, Ordering::Relaxed);
        }
        if let Some(zone) = zone {
            let counter = ZONE_RCODES
                .iter()
                .position(|(code, _)| *code == rcode)
                .unwrap_or(ZONE_RCODES.len());
            // Only a registry makes slots, all below ZONE_SLOTS.
            self.zones[zone.index()][counter].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter of `slot`. Only a registry makes slots, all below
    /// [`DECISION_SLOTS`], so the index is always in range.
    #[inline]
    fn decision(&self, slot: DecisionSlot) -> &AtomicU64 {
        let index = slot.index();
        &self.decisions[index / SLOTS_PER_LINE].0[index % SLOTS_PER_LINE]
    }
}

/// Decision counts summed over all workers, as scraped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionTotals {
    /// Slot `i`'s count at index `i`, for the slots asked for.
    counts: Vec<u64>,
    /// Answers of keys beyond the registry's cap.
    pub overflow: u64,
}

impl DecisionTotals {
    /// The count of `slot` (0 for a slot that was not summed).
    pub fn count(&self, slot: DecisionSlot) -> u64 {
        if slot == OVERFLOW_SLOT {
            return self.overflow;
        }
        self.counts.get(slot.index()).copied().unwrap_or(0)
    }
}

/// Why a TCP connection was closed as soon as it was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpRefusal {
    /// `server.tcp_max_connections` were open.
    Total,
    /// `server.tcp_max_connections_per_client` were open from its client.
    PerClient,
}

impl TcpRefusal {
    /// Every reason, in the order of [`QueryTotals::tcp_refused`].
    pub const ALL: [TcpRefusal; 2] = [TcpRefusal::Total, TcpRefusal::PerClient];

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            TcpRefusal::Total => "limit",
            TcpRefusal::PerClient => "per_client_limit",
        }
    }
}

/// Zone counts summed over all workers, as scraped: per slot, responses
/// by [`ZONE_RCODES`] and then any other code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneTotals {
    /// Slot `i`'s counts at index `i`, for the slots asked for.
    pub counts: Vec<[u64; ZONE_COUNTERS]>,
    /// Responses of zones beyond the registry's cap.
    pub overflow: [u64; ZONE_COUNTERS],
}

impl ZoneTotals {
    /// The rcode label of counter `index`.
    pub fn rcode_name(index: usize) -> &'static str {
        ZONE_RCODES.get(index).map_or("other", |(_, name)| name)
    }

    /// The counts of `slot` (zeros for a slot that was not summed).
    pub fn count(&self, slot: ZoneSlot) -> [u64; ZONE_COUNTERS] {
        if slot == ZONE_OVERFLOW_SLOT {
            return self.overflow;
        }
        self.counts.get(slot.index()).copied().unwrap_or_default()
    }
}

/// Totals over all workers, as scraped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryTotals {
    /// `[transport][slot]`: transport 0 = udp, 1 = tcp; slot per [`COUNTED_RCODES`], last = other.
    pub answered: [[u64; SLOTS]; TRANSPORTS],
    /// Packets dropped without an answer, per transport (rate-limited
    /// drops included).
    pub dropped: [u64; TRANSPORTS],
    /// UDP responses over the rate limit, by [`OverLimit::ALL`] action.
    pub over_limit: [u64; OVER_LIMIT_ACTIONS],
    /// TCP connections closed at accept, by [`TcpRefusal::ALL`] reason.
    pub tcp_refused: [u64; 2],
    /// DNS over TLS handshakes: completed, failed (or timed out).
    pub tls_handshakes: [u64; 2],
    /// Query log entries written and dropped.
    pub query_log: [u64; 2],
    /// Whether the dnstap collector is connected; `None` without one.
    pub query_log_connected: Option<bool>,
    /// `[transport][reason]`: packets (UDP) and connections (TCP) from a
    /// listed proxy refused for their PROXY header, by
    /// [`crate::dns::proxy::Refusal::ALL`] reason.
    pub proxy_refused: [[u64; 2]; PROXY_TRANSPORTS],
    /// Zone transfers out.
    pub transfers_out: Vec<TransferCount>,
}

impl QueryTotals {
    /// Names of the transports in index order.
    pub const TRANSPORT_NAMES: [&'static str; TRANSPORTS] = ["udp", "tcp", "tls"];

    /// Label of a slot: an rcode name, or `other`.
    pub fn rcode_name(slot: usize) -> &'static str {
        COUNTED_RCODES.get(slot).map_or("other", |(_, name)| name)
    }

    /// All answers of one transport.
    pub fn answered_total(&self, transport: Transport) -> u64 {
        self.answered[transport_index(transport)].iter().sum()
    }
}

/// Registry of every worker's counters.
#[derive(Default)]
pub struct Metrics {
    // Locked only when a worker starts and when /metrics is scraped.
    workers: Mutex<Vec<Arc<WorkerCounters>>>,
    /// Query log entries written (by its writer thread alone).
    pub query_log_written: AtomicU64,
    /// Query log entries dropped because the writer was behind or the
    /// file could not be written (rare by design: contention is no worry).
    pub query_log_dropped: AtomicU64,
    /// The dnstap collector's connection: 0 when the log has no socket, 1
    /// while it is not connected, 2 while it is.
    pub query_log_connected: std::sync::atomic::AtomicU8,
    /// PROXY headers refused, shared by the workers: only a misconfigured
    /// or hostile proxy ever counts here.
    pub proxy: Arc<ProxyCounters>,
    /// Zone transfers out, by zone and response code.
    pub transfers_out: Arc<TransferCounters>,
}

/// One series of [`TransferCounters`]: zone, what was sent, response
/// code, count.
pub type TransferCount = (String, &'static str, u16, u64);

/// Zone transfers (AXFR, IXFR) asked of Steer, by zone, what was sent
/// ([`crate::transfer::outbound::AxfrStream::sent`]) and response code.
/// A transfer is rare and slow, so a lock per count costs nothing that
/// matters. Only zones Steer serves are named: the rest count under
/// `""`, so that made-up names cannot grow the series without bound.
#[derive(Default)]
pub struct TransferCounters {
    counts: Mutex<std::collections::BTreeMap<(String, &'static str, u16), u64>>,
}

impl TransferCounters {
    /// Counts one transfer asked for `zone` (served, or `""`) that
    /// `sent` what it says, answered with `rcode`.
    pub fn count(&self, zone: String, sent: &'static str, rcode: u16) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((zone, sent, rcode))
            .or_default() += 1;
    }

    /// Every (zone, sent, rcode, count), in order.
    pub fn snapshot(&self) -> Vec<TransferCount> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|((zone, sent, rcode), count)| (zone.clone(), *sent, *rcode, *count))
            .collect()
    }
}

/// Packets and connections from a listed proxy refused for their PROXY v2
/// header, by transport and [`crate::dns::proxy::Refusal`].
#[derive(Default)]
pub struct ProxyCounters {
    refused: [[AtomicU64; 2]; PROXY_TRANSPORTS],
}

impl ProxyCounters {
    /// Counts one refusal.
    pub fn refuse(&self, transport: Transport, refusal: crate::dns::proxy::Refusal) {
        // DNS over TLS never carries a header: nothing to count there.
        if let Some(reasons) = self.refused.get(transport_index(transport)) {
            reasons[refusal as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Metrics {
    /// Counters for a new worker (UDP thread or the TCP service).
    pub fn register_worker(&self) -> Arc<WorkerCounters> {
        let counters = Arc::new(WorkerCounters::default());
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Arc::clone(&counters));
        counters
    }

    /// Sums every worker's counters.
    pub fn totals(&self) -> QueryTotals {
        let mut totals = QueryTotals {
            query_log: [
                self.query_log_written.load(Ordering::Relaxed),
                self.query_log_dropped.load(Ordering::Relaxed),
            ],
            query_log_connected: match self.query_log_connected.load(Ordering::Relaxed) {
                0 => None,
                state => Some(state == 2),
            },
            proxy_refused: self.proxy.refused.each_ref().map(|reasons| {
                reasons
                    .each_ref()
                    .map(|counter| counter.load(Ordering::Relaxed))
            }),
            transfers_out: self.transfers_out.snapshot(),
            ..QueryTotals::default()
        };
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for worker in workers.iter() {
            for transport in 0..TRANSPORTS {
                for slot in 0..SLOTS {
                    totals.answered[transport][slot] +=
                        worker.answered[transport][slot].load(Ordering::Relaxed);
                }
                totals.dropped[transport] += worker.dropped[transport].load(Ordering::Relaxed);
            }
            for (total, counter) in totals.over_limit.iter_mut().zip(&worker.over_limit) {
                *total += counter.load(Ordering::Relaxed);
            }
            for (total, counter) in totals.tcp_refused.iter_mut().zip(&worker.tcp_refused) {
                *total += counter.load(Ordering::Relaxed);
            }
            for (total, counter) in totals.tls_handshakes.iter_mut().zip(&worker.tls_handshakes) {
                *total += counter.load(Ordering::Relaxed);
            }
        }
        totals
    }

    /// A client some worker held to the rate limit since the last call
    /// (IPv4 first; an IPv6 client with its low 64 bits zero), for the
    /// log. Taking it clears it, so that a log line never names a client
    /// from an earlier interval.
    pub fn take_last_limited(&self) -> Option<IpAddr> {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut v4 = None;
        let mut v6 = None;
        for worker in workers.iter() {
            let address = worker.last_limited_v4.swap(0, Ordering::Relaxed);
            if address != 0 {
                v4 = Some(IpAddr::V4(Ipv4Addr::from(address as u32)));
            }
            let high = worker.last_limited_v6.swap(0, Ordering::Relaxed);
            if high != 0 {
                v6 = Some(IpAddr::V6(Ipv6Addr::from(u128::from(high) << 64)));
            }
        }
        v4.or(v6)
    }

    /// Sums the zone counters of slots `0..used` (the slots a registry
    /// has handed out so far) and of the overflow slot over every worker.
    pub fn zone_totals(&self, used: usize) -> ZoneTotals {
        let used = used.min(ZONE_OVERFLOW_SLOT.index());
        let mut totals = ZoneTotals {
            counts: vec![[0; ZONE_COUNTERS]; used],
            overflow: [0; ZONE_COUNTERS],
        };
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for worker in workers.iter() {
            let sum = |total: &mut [u64; ZONE_COUNTERS], counters: &[AtomicU64; ZONE_COUNTERS]| {
                for (total, counter) in total.iter_mut().zip(counters) {
                    *total += counter.load(Ordering::Relaxed);
                }
            };
            for (index, total) in totals.counts.iter_mut().enumerate() {
                sum(total, &worker.zones[index]);
            }
            sum(
                &mut totals.overflow,
                &worker.zones[ZONE_OVERFLOW_SLOT.index()],
            );
        }
        totals
    }

    /// Sums the decision counters of slots `0..used` (the slots a registry
    /// has handed out so far) and the overflow slot over every worker.
    pub fn decision_totals(&self, used: usize) -> DecisionTotals {
        let used = used.min(OVERFLOW_SLOT.index());
        let mut totals = DecisionTotals {
            counts: vec![0; used],
            overflow: 0,
        };
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for worker in workers.iter() {
            for (index, total) in totals.counts.iter_mut().enumerate() {
                *total += worker
                    .decision(DecisionSlot::at(index))
                    .load(Ordering::Relaxed);
            }
            totals.overflow += worker.decision(OVERFLOW_SLOT).load(Ordering::Relaxed);
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pool: &str, reason: Reason) -> DecisionKey {
        DecisionKey {
            name: "www.example.test.".to_owned(),
            record_type: "A".to_owned(),
            pool: pool.to_owned(),
            reason,
        }
    }

    fn steered(rcode: u16, slot: DecisionSlot) -> Outcome {
        Outcome::Reply {
            rcode,
            decision: Some(slot),
            zone: None,
        }
    }

    #[test]
    fn decision_counts_are_summed_over_workers() {
        let registry = DecisionRegistry::default();
        let fra = registry.slot(key("fra", Reason::Policy));
        let iad = registry.slot(key("iad", Reason::Policy));
        let servfail = registry.slot(key("", Reason::ServFail));
        registry.commit();

        let metrics = Metrics::default();
        let udp = metrics.register_worker();
        let tcp = metrics.register_worker();
        for _ in 0..3 {
            udp.record(Transport::Udp, steered(0, fra));
        }
        tcp.record(Transport::Tcp, steered(0, fra));
        udp.record(Transport::Udp, steered(0, iad));
        tcp.record(Transport::Tcp, steered(2, servfail));
        tcp.record(Transport::Tcp, steered(2, servfail));
        // Static answers and drops count no decision.
        udp.record(
            Transport::Udp,
            Outcome::Reply {
                rcode: 0,
                decision: None,
                zone: None,
            },
        );
        udp.record(Transport::Udp, Outcome::Drop);
        udp.record(Transport::Udp, steered(0, OVERFLOW_SLOT));

        let totals = metrics.decision_totals(registry.series().len());
        assert_eq!(totals.count(fra), 4);
        assert_eq!(totals.count(iad), 1);
        assert_eq!(totals.count(servfail), 2);
        assert_eq!(totals.overflow, 1);
        assert_eq!(totals.count(OVERFLOW_SLOT), 1);
        // The rcode counters are unchanged by the decision counting.
        let queries = metrics.totals();
        assert_eq!(queries.answered_total(Transport::Udp), 6);
        assert_eq!(queries.answered_total(Transport::Tcp), 3);
        assert_eq!(queries.dropped, [1, 0, 0]);
    }

    #[test]
    fn responses_over_the_limit_are_counted_by_action() {
        let registry = DecisionRegistry::default();
        let fra = registry.slot(key("fra", Reason::Policy));
        registry.commit();
        let metrics = Metrics::default();
        let worker = metrics.register_worker();
        let over = |rcode, decision, action| Outcome::OverLimit {
            rcode,
            decision,
            zone: None,
            action,
        };
        worker.record(Transport::Udp, over(0, None, OverLimit::Dropped));
        worker.record(Transport::Udp, over(3, None, OverLimit::Dropped));
        worker.record(Transport::Udp, over(0, None, OverLimit::Slipped));
        worker.record(Transport::Udp, over(0, Some(fra), OverLimit::Exempt));
        worker.record(Transport::Udp, over(0, Some(fra), OverLimit::DryRun));
        let totals = metrics.totals();
        assert_eq!(totals.over_limit, [2, 1, 1, 1]);
        // Drops are dropped packets; the rest were answered.
        assert_eq!(totals.dropped, [2, 0, 0]);
        assert_eq!(totals.answered_total(Transport::Udp), 3);
        assert_eq!(metrics.decision_totals(1).count(fra), 2);
        assert_eq!(metrics.take_last_limited(), None);
        worker.note_limited("2001:db8:1:2::7".parse().expect("address"));
        assert_eq!(
            metrics.take_last_limited(),
            Some("2001:db8:1:2::".parse().expect("address"))
        );
        // Taken: the next interval starts with none.
        assert_eq!(metrics.take_last_limited(), None);
        worker.note_limited("2001:db8:1:2::7".parse().expect("address"));
        worker.note_limited("::ffff:192.0.2.9".parse().expect("address"));
        assert_eq!(
            metrics.take_last_limited(),
            Some("192.0.2.9".parse().expect("address"))
        );
    }

    #[test]
    fn zone_counts_are_summed_over_workers_by_rcode() {
        let registry = DecisionRegistry::default();
        let example = registry.zone_slot("example.test.");
        let other = registry.zone_slot("other.test.");
        registry.commit();
        let metrics = Metrics::default();
        let udp = metrics.register_worker();
        let tcp = metrics.register_worker();
        let reply = |rcode, zone| Outcome::Reply {
            rcode,
            decision: None,
            zone,
        };
        udp.record(Transport::Udp, reply(0, Some(example)));
        tcp.record(Transport::Tcp, reply(0, Some(example)));
        udp.record(Transport::Udp, reply(3, Some(example)));
        udp.record(Transport::Udp, reply(2, Some(other)));
        // No zone (REFUSED), and a drop: counted in none.
        udp.record(Transport::Udp, reply(5, None));
        udp.record(
            Transport::Udp,
            Outcome::OverLimit {
                rcode: 0,
                decision: None,
                zone: None,
                action: OverLimit::Dropped,
            },
        );
        udp.record(Transport::Udp, reply(0, Some(ZONE_OVERFLOW_SLOT)));
        let totals = metrics.zone_totals(registry.zone_series().len());
        assert_eq!(totals.count(example), [2, 1, 0]);
        assert_eq!(totals.count(other), [0, 0, 1]);
        assert_eq!(totals.overflow, [1, 0, 0]);
        assert_eq!(ZoneTotals::rcode_name(2), "other");
    }

    #[test]
    fn only_the_slots_asked_for_are_summed() {
        let metrics = Metrics::default();
        let worker = metrics.register_worker();
        let registry = DecisionRegistry::default();
        let first = registry.slot(key("fra", Reason::Policy));
        let second = registry.slot(key("iad", Reason::Policy));
        worker.record(Transport::Udp, steered(0, second));
        let totals = metrics.decision_totals(1);
        assert_eq!(totals.count(first), 0);
        // Not summed: a key registered after the scrape read the registry.
        assert_eq!(totals.count(second), 0);
        assert_eq!(metrics.decision_totals(2).count(second), 1);
        // Asking for more than there are stops at the overflow slot.
        let everything = metrics.decision_totals(usize::MAX);
        assert_eq!(everything.count(second), 1);
        assert_eq!(everything.overflow, 0);
    }

    #[test]
    fn a_worker_has_every_decision_slot_on_whole_cache_lines() {
        let counters = WorkerCounters::default();
        assert_eq!(counters.decisions.len() * SLOTS_PER_LINE, DECISION_SLOTS);
        assert_eq!(size_of::<DecisionLine>(), 128);
        assert_eq!(counters.decisions.as_ptr() as usize % 128, 0);
        counters
            .decision(OVERFLOW_SLOT)
            .fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            counters.decisions[DECISION_SLOTS / SLOTS_PER_LINE - 1].0[SLOTS_PER_LINE - 1]
                .load(Ordering::Relaxed),
            1
        );
    }
}
