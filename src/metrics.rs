//! Query counters, kept per worker so that the data plane never contends.
//!
//! Each UDP worker and the TCP service own a [`WorkerCounters`]; they bump
//! relaxed atomics on their own cache line. The admin API sums them when
//! `/metrics` is scraped. Nothing here locks or allocates on the query path.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dns::{Outcome, Transport};

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

const TRANSPORTS: usize = 2;
const SLOTS: usize = COUNTED_RCODES.len() + 1;

/// Counters of one worker. Aligned to a cache line so workers do not share one.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerCounters {
    answered: [[AtomicU64; SLOTS]; TRANSPORTS],
    dropped: [AtomicU64; TRANSPORTS],
}

fn transport_index(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
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
            Outcome::Reply { rcode } => {
                self.answered[transport][rcode_slot(rcode)].fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Drop => {
                self.dropped[transport].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Totals over all workers, as scraped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryTotals {
    /// `[transport][slot]`: transport 0 = udp, 1 = tcp; slot per [`COUNTED_RCODES`], last = other.
    pub answered: [[u64; SLOTS]; TRANSPORTS],
    /// Packets dropped without an answer, per transport.
    pub dropped: [u64; TRANSPORTS],
}

impl QueryTotals {
    /// Names of the transports in index order.
    pub const TRANSPORT_NAMES: [&'static str; TRANSPORTS] = ["udp", "tcp"];

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
        let mut totals = QueryTotals::default();
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
        }
        totals
    }
}
