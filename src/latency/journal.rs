//! The real-user measurements posted to this node, kept for its peers to
//! fetch (control plane).
//!
//! A beacon lands on whichever node the browser reached, so without help
//! each node would steer on the samples it happened to get, and nodes
//! would disagree. With `[peers]`, every sample this node accepts from
//! `POST /latency` is appended to a bounded journal, numbered in order,
//! and the peers fetch it from `GET /latency/journal?from=N&epoch=E`
//! (see [`super::sharing`]), so every node's model learns every sample.
//!
//! Only samples posted to this node are journaled, never those fetched
//! from a peer: every node fetches from every other directly, so nothing
//! needs forwarding, and a sample can never go round in circles. The
//! journal is a ring: when it is full the oldest samples go, and a peer
//! that fell that far behind is told how many it missed. Sequence numbers
//! restart with the process; the epoch, drawn at start, tells a peer that
//! its cursor belongs to a previous run, and it then starts again from the
//! oldest sample held.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::model::ClientPrefix;
use crate::lock;

/// Samples kept: about 40 bytes each, so at most about 10 MB, and at the
/// default fetch interval (2 s) room for some 100,000 samples a second.
pub const JOURNAL_CAPACITY: usize = 262_144;

/// Most samples one fetch returns.
pub const PAGE_SAMPLES: usize = 10_000;

/// Where a node serves its journal on its admin API.
pub const JOURNAL_PATH: &str = "/latency/journal";

/// One accepted sample.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The client network.
    pub client: ClientPrefix,
    /// Site id.
    pub site: Arc<str>,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
    /// When it was measured, Unix seconds.
    pub at: u64,
}

/// See the module docs.
pub struct Journal {
    /// This run's epoch, as the peers see it.
    epoch: String,
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    /// Whether samples are kept (only with `[peers]`).
    enabled: bool,
    /// Sequence number of `entries[0]`.
    first: u64,
    entries: VecDeque<Entry>,
}

/// One page of the journal, as `GET /latency/journal` sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The serving run's epoch: send it back with the next request.
    pub epoch: String,
    /// Sequence number of the first sample in `samples`.
    pub from: u64,
    /// The sequence number to ask for next.
    pub next: u64,
    /// Samples the asker will never get: they left the journal before it
    /// asked for them.
    pub missed: u64,
    /// Whether more samples follow `next` already.
    pub more: bool,
    /// The samples, in the format `POST /latency` takes.
    pub samples: Vec<JournalSample>,
}

/// One sample in a [`Page`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalSample {
    /// The client network, e.g. `198.51.100.0/24`.
    pub client: String,
    /// Site id.
    pub site: String,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
    /// When it was measured, Unix seconds.
    pub timestamp: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_capacity(JOURNAL_CAPACITY)
    }
}

impl Journal {
    /// An empty, disabled journal that keeps at most `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Self {
        use std::hash::BuildHasher;
        // Unique per run, not secret: it only tells runs apart.
        let epoch =
            std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
        Self {
            epoch: format!("{epoch:016x}"),
            capacity: capacity.max(1),
            state: Mutex::new(State {
                enabled: false,
                first: 0,
                entries: VecDeque::new(),
            }),
        }
    }

    /// Keeps samples from now on, or stops and forgets them (a node whose
    /// `[peers]` were removed has nobody to keep them for).
    pub fn set_enabled(&self, enabled: bool) {
        let mut state = lock(&self.state);
        if state.enabled && !enabled {
            state.first += state.entries.len() as u64;
            state.entries = VecDeque::new();
        }
        state.enabled = enabled;
    }

    /// Whether samples are kept.
    pub fn is_enabled(&self) -> bool {
        lock(&self.state).enabled
    }

    /// Appends accepted samples, dropping the oldest beyond the capacity.
    pub fn append(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut state = lock(&self.state);
        if !state.enabled {
            return;
        }
        for entry in entries {
            if state.entries.len() == self.capacity {
                state.entries.pop_front();
                state.first += 1;
            }
            state.entries.push_back(entry);
        }
    }

    /// The samples from sequence number `from` on, at most `limit`, for a
    /// peer whose cursor belongs to `epoch`. A cursor of another run (or
    /// none) starts at the oldest sample held.
    pub fn page(&self, epoch: Option<&str>, from: u64, limit: usize) -> Page {
        let state = lock(&self.state);
        let end = state.first + state.entries.len() as u64;
        let (from, missed) = if epoch != Some(self.epoch.as_str()) || from > end {
            (state.first, 0)
        } else if from < state.first {
            (state.first, state.first - from)
        } else {
            (from, 0)
        };
        let skip = (from - state.first) as usize;
        let samples: Vec<JournalSample> = state
            .entries
            .iter()
            .skip(skip)
            .take(limit)
            .map(|entry| JournalSample {
                client: entry.client.to_string(),
                site: entry.site.to_string(),
                rtt_ms: entry.rtt_ms,
                timestamp: entry.at,
            })
            .collect();
        let next = from + samples.len() as u64;
        Page {
            epoch: self.epoch.clone(),
            from,
            next,
            missed,
            more: next < end,
            samples,
        }
    }

    /// This run's epoch. Drawn per server, it also names this node to
    /// itself: a peer URL that answers with it is this node.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Samples held now.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: u64) -> Entry {
        Entry {
            client: ClientPrefix::parse(&format!("198.51.{}.0/24", number % 256)).expect("prefix"),
            site: Arc::from("fra"),
            rtt_ms: number as f64,
            at: 1_000 + number,
        }
    }

    fn rtts(page: &Page) -> Vec<f64> {
        page.samples.iter().map(|sample| sample.rtt_ms).collect()
    }

    #[test]
    fn a_disabled_journal_keeps_nothing() {
        let journal = Journal::with_capacity(4);
        journal.append((0..3).map(entry));
        assert!(journal.is_empty());
        let page = journal.page(None, 0, 10);
        assert_eq!((page.from, page.next, page.more), (0, 0, false));
    }

    #[test]
    fn pages_follow_the_cursor_and_say_when_more_is_waiting() {
        let journal = Journal::with_capacity(100);
        journal.set_enabled(true);
        journal.append((0..5).map(entry));
        let first = journal.page(None, 0, 3);
        assert_eq!(rtts(&first), vec![0.0, 1.0, 2.0]);
        assert_eq!(
            (first.from, first.next, first.missed, first.more),
            (0, 3, 0, true)
        );
        assert_eq!(first.samples[1].client, "198.51.1.0/24");
        assert_eq!(first.samples[1].timestamp, 1_001);
        let second = journal.page(Some(&first.epoch), first.next, 3);
        assert_eq!(rtts(&second), vec![3.0, 4.0]);
        assert_eq!((second.next, second.more), (5, false));
        let idle = journal.page(Some(&first.epoch), second.next, 3);
        assert!(idle.samples.is_empty());
        assert_eq!(idle.next, 5);
    }

    #[test]
    fn a_full_journal_drops_the_oldest_and_tells_who_missed_them() {
        let journal = Journal::with_capacity(4);
        journal.set_enabled(true);
        let epoch = journal.page(None, 0, 0).epoch;
        journal.append((0..10).map(entry));
        assert_eq!(journal.len(), 4);
        let page = journal.page(Some(&epoch), 2, 10);
        assert_eq!(rtts(&page), vec![6.0, 7.0, 8.0, 9.0]);
        assert_eq!((page.from, page.missed, page.next), (6, 4, 10));
    }

    #[test]
    fn a_cursor_of_another_run_starts_again_from_the_oldest() {
        let journal = Journal::with_capacity(10);
        journal.set_enabled(true);
        journal.append((0..3).map(entry));
        let earlier_run = Journal::with_capacity(10).page(None, 0, 0).epoch;
        assert_ne!(earlier_run, journal.page(None, 0, 0).epoch);
        let page = journal.page(Some(&earlier_run), 2, 10);
        assert_eq!((page.from, page.missed), (0, 0));
        assert_eq!(rtts(&page), vec![0.0, 1.0, 2.0]);
        // A cursor past the end is not of this run either.
        let epoch = page.epoch.clone();
        assert_eq!(journal.page(Some(&epoch), 99, 10).from, 0);
    }

    #[test]
    fn disabling_forgets_but_keeps_the_numbering() {
        let journal = Journal::with_capacity(10);
        journal.set_enabled(true);
        journal.append((0..3).map(entry));
        journal.set_enabled(false);
        journal.set_enabled(true);
        journal.append([entry(7)]);
        let page = journal.page(None, 0, 10);
        assert_eq!((page.from, page.next), (3, 4));
        assert_eq!(rtts(&page), vec![7.0]);
    }
}
