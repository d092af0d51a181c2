//! The latency engine: takes measurements, keeps the model, and freezes
//! what a compile needs (control plane).
//!
//! Real-user measurements arrive in batches through `POST /latency`; each
//! sample is validated on its own (a bad client prefix, an unknown site, an
//! RTT that is not a positive number below the cap, or a timestamp too old
//! or in the future is rejected and counted by reason), so one bad sample
//! does not cost the good ones, and a batch that is not valid JSON is
//! refused whole before anything is recorded. The model sits behind one
//! mutex held for a batch at a time; the data plane never takes it, it only
//! reads what a compile made of it.
//!
//! The site list is the configuration's; a reload that changes it moves
//! every measurement to its site's new index and drops those of sites that
//! are gone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::matrix::LatencyMatrix;
use super::model::{ClientPrefix, LatencyModel, ModelSettings};
use super::snapshot::{Choices, LatencySnapshot};
use crate::config::steering::LatencyConfig;
use crate::lock;

/// Most samples one `POST /latency` may carry: a bound on the work one
/// request can cause while it holds the model.
pub const MAX_BATCH: usize = 100_000;

/// One sample as posted.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostedSample {
    /// The client: an address or its /24 (/48) prefix.
    pub client: String,
    /// Site id.
    pub site: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// When it was measured, Unix seconds (default: when it arrives).
    #[serde(default)]
    pub timestamp: Option<u64>,
}

/// A batch as posted: `{"samples": [...]}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostedBatch {
    /// The samples.
    pub samples: Vec<PostedSample>,
}

/// Why samples were rejected, counted since start.
pub const REJECTION_REASONS: [&str; 5] = [
    "bad_client",
    "unknown_site",
    "bad_rtt",
    "too_old",
    "in_future",
];

/// What became of one batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// Samples recorded.
    pub accepted: usize,
    /// Samples rejected: (index in the batch, reason, detail).
    pub rejected: Vec<RejectedSample>,
}

/// One rejected sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectedSample {
    /// Its index in `samples`.
    pub index: usize,
    /// One of [`REJECTION_REASONS`].
    pub reason: &'static str,
    /// What was wrong.
    pub detail: String,
}

/// Counters and sizes for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyTotals {
    /// Samples recorded since start.
    pub accepted: u64,
    /// Samples rejected since start, per [`REJECTION_REASONS`].
    pub rejected: [u64; 5],
    /// Client networks tracked now.
    pub prefixes: usize,
    /// The model's estimated heap use.
    pub memory_bytes: usize,
}

/// See the module docs.
pub struct LatencyEngine {
    state: Mutex<State>,
    accepted: AtomicU64,
    rejected: [AtomicU64; 5],
}

struct State {
    model: LatencyModel,
    sites: Vec<String>,
    settings: ModelSettings,
    /// Per policy label: the site each latency source chose last.
    chosen: HashMap<String, Arc<Choices>>,
    /// This node's own RTT to each site (active measurements): site id →
    /// (moving average in ms, unix time of the last measurement).
    node: HashMap<String, (f64, u64)>,
    /// Bumped when `node` changes, folded into [`LatencyEngine::version`].
    node_version: u64,
}

impl LatencyEngine {
    /// An empty model for `sites` (the config's site ids, sorted).
    pub fn new(config: &LatencyConfig, sites: Vec<String>) -> Self {
        let settings = settings(config);
        Self {
            state: Mutex::new(State {
                model: LatencyModel::new(settings.clone(), sites.len()),
                sites,
                settings,
                chosen: HashMap::new(),
                node: HashMap::new(),
                node_version: 0,
            }),
            accepted: AtomicU64::new(0),
            rejected: Default::default(),
        }
    }

    /// Takes a reloaded configuration: new settings, and measurements
    /// moved to the sites' new indexes (those of removed sites dropped).
    pub fn reconfigure(&self, config: &LatencyConfig, sites: Vec<String>, now: u64) {
        let mut state = lock(&self.state);
        let settings = settings(config);
        if state.sites == sites && state.settings == settings {
            return;
        }
        let mut model = LatencyModel::new(settings.clone(), sites.len());
        let moves = site_moves(&state.sites, &sites);
        for (prefix, latencies) in state.model.fresh_prefixes(now) {
            for (site, latency) in latencies {
                if let Some(Some(new_site)) = moves.get(site) {
                    // The moving average is carried as one sample at its value.
                    let _ = model.record(
                        prefix,
                        *new_site,
                        f64::from(latency.rtt_ms),
                        latency.updated,
                        now,
                    );
                }
            }
        }
        state.model = model;
        state.sites = sites;
        state.settings = settings;
    }

    /// Records a batch; each sample is accepted or rejected on its own.
    pub fn ingest(&self, batch: &PostedBatch, now: u64) -> IngestReport {
        let mut report = IngestReport::default();
        let mut state = lock(&self.state);
        for (index, sample) in batch.samples.iter().enumerate() {
            let mut reject = |reason: &'static str, detail: String| {
                report.rejected.push(RejectedSample {
                    index,
                    reason,
                    detail,
                });
            };
            let prefix = match ClientPrefix::parse(&sample.client) {
                Ok(prefix) => prefix,
                Err(message) => {
                    reject("bad_client", message);
                    continue;
                }
            };
            let Some(site) = state.sites.iter().position(|known| *known == sample.site) else {
                reject("unknown_site", format!("unknown site \"{}\"", sample.site));
                continue;
            };
            let at = sample.timestamp.unwrap_or(now);
            match state.model.record(prefix, site, sample.rtt_ms, at, now) {
                Ok(()) => report.accepted += 1,
                Err(rejected) => reject(rejected.label(), rejected.to_string()),
            }
        }
        drop(state);
        self.accepted
            .fetch_add(report.accepted as u64, Ordering::Relaxed);
        for rejected in &report.rejected {
            if let Some(position) = REJECTION_REASONS
                .iter()
                .position(|reason| *reason == rejected.reason)
            {
                self.rejected[position].fetch_add(1, Ordering::Relaxed);
            }
        }
        report
    }

    /// The model's version: it changes whenever a compile would see
    /// something new.
    pub fn version(&self) -> u64 {
        let state = lock(&self.state);
        state.model.version().wrapping_add(state.node_version << 40)
    }

    /// Records this node's RTT to `site` (an active measurement): folded
    /// into a moving average with the model's weight. Unknown sites and
    /// RTTs that are not positive numbers below the cap are ignored.
    pub fn record_node(&self, site: &str, rtt_ms: f64, now: u64) {
        let mut state = lock(&self.state);
        let believable = rtt_ms > 0.0 && rtt_ms <= state.settings.max_rtt_ms;
        if !believable || !state.sites.iter().any(|known| known == site) {
            return;
        }
        let weight = state.settings.weight;
        let entry = state.node.entry(site.to_owned()).or_insert((rtt_ms, now));
        entry.0 += weight * (rtt_ms - entry.0);
        entry.1 = now;
        state.node_version += 1;
    }

    /// Forgets this node's RTT to `sites` (their `latency_target` was
    /// removed by a reload).
    pub fn forget_node_sites(&self, sites: &[&str]) {
        if sites.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        let before = state.node.len();
        state.node.retain(|site, _| !sites.contains(&site.as_str()));
        if state.node.len() != before {
            state.node_version += 1;
        }
    }

    /// This node's RTT to each site, fresh ones only: (site id, ms, age s).
    pub fn node_latencies(&self, now: u64) -> Vec<(String, f64, u64)> {
        let state = lock(&self.state);
        let max_age = state.settings.max_age_seconds;
        let mut latencies: Vec<(String, f64, u64)> = state
            .node
            .iter()
            .filter(|(_, (_, at))| now.saturating_sub(*at) < max_age)
            .map(|(site, (rtt, at))| (site.clone(), *rtt, now.saturating_sub(*at)))
            .collect();
        latencies.sort_by(|left, right| left.0.cmp(&right.0));
        latencies
    }

    /// Drops measurements older than the maximum age; returns the client
    /// networks removed.
    pub fn expire(&self, now: u64) -> usize {
        lock(&self.state).model.expire(now)
    }

    /// The matrix and the fresh measurements, frozen for one compile of a
    /// configuration whose sites are `sites` (measurements of sites it no
    /// longer has are left out; the model itself is moved over by
    /// [`LatencyEngine::reconfigure`] once that configuration is served).
    pub fn snapshot(&self, matrix: &LatencyMatrix, sites: &[String], now: u64) -> LatencySnapshot {
        let mut snapshot = LatencySnapshot::from_matrix(matrix);
        let state = lock(&self.state);
        let moves = site_moves(&state.sites, sites);
        for (prefix, latencies) in state.model.fresh_prefixes(now) {
            let (address, prefix_len) = prefix.network();
            let rtts = latencies.filter_map(|(site, latency)| {
                moves
                    .get(site)
                    .copied()
                    .flatten()
                    .map(|site| (site, f64::from(latency.rtt_ms)))
            });
            snapshot.add_measured(address, prefix_len, rtts);
        }
        snapshot.previous = state.chosen.clone();
        let max_age = state.settings.max_age_seconds;
        snapshot.node = state
            .node
            .iter()
            .filter(|(_, (_, at))| now.saturating_sub(*at) < max_age)
            .filter_map(|(site, (rtt, _))| {
                sites
                    .iter()
                    .position(|known| known == site)
                    .map(|index| (index, *rtt))
            })
            .collect();
        snapshot.node.sort_by_key(|(site, _)| *site);
        drop(state);
        snapshot.finish();
        snapshot
    }

    /// Keeps what the served table's `latency` steps chose, per policy
    /// label, for the next compile's margins; returns how many sources
    /// chose another site than before (new sources included).
    pub fn remember_choices(&self, chosen: HashMap<String, Arc<Choices>>) -> u64 {
        // Counted outside the lock: a million sources take a while, and
        // samples keep arriving meanwhile.
        let before = std::mem::replace(&mut lock(&self.state).chosen, chosen.clone());
        chosen
            .iter()
            .map(|(label, sources)| {
                let before = before.get(label);
                if before.is_some_and(|before| Arc::ptr_eq(before, sources)) {
                    return 0;
                }
                sources
                    .iter()
                    .filter(|(source, site)| {
                        before.and_then(|before| before.get(*source)) != Some(*site)
                    })
                    .count() as u64
            })
            .sum()
    }

    /// What the model holds for `client`'s network, for explain: (site id,
    /// RTT ms, samples, seconds since the last one).
    pub fn describe(&self, client: IpAddr, now: u64) -> Vec<(String, f64, u32, u64)> {
        let state = lock(&self.state);
        state
            .model
            .site_latencies(ClientPrefix::of(client), now)
            .map(|(site, latency)| {
                (
                    state.sites.get(site).cloned().unwrap_or_default(),
                    f64::from(latency.rtt_ms),
                    latency.samples,
                    now.saturating_sub(latency.updated),
                )
            })
            .collect()
    }

    /// Counters and sizes.
    pub fn totals(&self) -> LatencyTotals {
        let state = lock(&self.state);
        LatencyTotals {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: std::array::from_fn(|index| self.rejected[index].load(Ordering::Relaxed)),
            prefixes: state.model.len(),
            memory_bytes: state.model.memory_bytes(),
        }
    }
}

/// For each site of `old`, its index in `new` (None: it is gone).
fn site_moves(old: &[String], new: &[String]) -> Vec<Option<usize>> {
    old.iter()
        .map(|site| new.iter().position(|known| known == site))
        .collect()
}

fn settings(config: &LatencyConfig) -> ModelSettings {
    ModelSettings {
        weight: config.weight,
        max_age_seconds: config.max_age.as_secs().max(1),
        max_prefixes: config.max_prefixes,
        max_rtt_ms: config.max_rtt_ms,
    }
}
