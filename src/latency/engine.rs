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

use super::journal::{Entry, Journal};
use super::matrix::LatencyMatrix;
use super::model::{ClientPrefix, LatencyModel, ModelSettings};
use super::snapshot::{Choices, LatencySnapshot};
use super::state_file::{self, SavedModel};
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
    /// Samples posted here, for the peers ([`super::journal`]).
    journal: Journal,
}

struct State {
    model: LatencyModel,
    sites: Vec<String>,
    /// `sites`, shared, for the journal.
    site_names: Vec<Arc<str>>,
    settings: ModelSettings,
    /// Per policy label: the site each latency source chose last.
    chosen: HashMap<String, Arc<Choices>>,
    /// This node's own RTT to each site (active measurements): site id →
    /// (moving average in ms, unix time of the last measurement).
    node: HashMap<String, (f64, u64)>,
    /// Bumped when `node` changes, folded into [`LatencyEngine::version`].
    node_version: u64,
    /// Bumped whenever `model` is replaced, so that (epoch, model version)
    /// names one state of the model for [`LatencyEngine::state_to_save`].
    epoch: u64,
    /// The state last written to the state file.
    saved: Option<SaveMark>,
}

/// One state of the model, as [`LatencyEngine::state_to_save`] encoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveMark {
    epoch: u64,
    version: u64,
}

/// What [`LatencyEngine::restore`] made of a saved model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Measurements put back.
    pub restored: usize,
    /// Measurements left out: of sites the configuration no longer has, or
    /// stale by now (or otherwise refused, like a bad sample).
    pub dropped: usize,
    /// Sources whose last choice (for a steered name's margin) was put
    /// back; those of sites the configuration no longer has are left out.
    pub choices: usize,
}

impl LatencyEngine {
    /// An empty model for `sites` (the config's site ids, sorted).
    pub fn new(config: &LatencyConfig, sites: Vec<String>) -> Self {
        let settings = settings(config);
        Self {
            state: Mutex::new(State {
                model: LatencyModel::new(settings.clone(), sites.len()),
                site_names: shared_names(&sites),
                sites,
                settings,
                chosen: HashMap::new(),
                node: HashMap::new(),
                node_version: 0,
                epoch: 0,
                saved: None,
            }),
            accepted: AtomicU64::new(0),
            rejected: Default::default(),
            journal: Journal::default(),
        }
    }

    /// The samples posted here, for the peers.
    pub fn journal(&self) -> &Journal {
        &self.journal
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
        state.site_names = shared_names(&sites);
        state.sites = sites;
        state.settings = settings;
        state.epoch += 1;
    }

    /// The model encoded for its state file ([`super::state_file`]), with
    /// the mark to pass to [`LatencyEngine::mark_saved`] once it is
    /// written; `None` when it has not changed since the last save (an
    /// unused model is never written). Encodes under the lock, into a
    /// buffer prepared before it, so ingest waits only for the copy.
    pub fn state_to_save(&self, now: u64) -> Option<(SaveMark, Vec<u8>)> {
        let (entries, choices) = {
            let state = lock(&self.state);
            (
                state.model.len() * state.model.sites(),
                state.chosen.values().map(|chosen| chosen.len()).sum(),
            )
        };
        let mut out = state_file::buffer_for(entries, choices);
        let locked = std::time::Instant::now();
        let state = lock(&self.state);
        let mark = SaveMark {
            epoch: state.epoch,
            version: state.model.version(),
        };
        if state.saved == Some(mark) || (state.saved.is_none() && mark.version == 0) {
            return None;
        }
        let entries = state
            .model
            .fresh_prefixes(now)
            .flat_map(|(prefix, sites)| sites.map(move |(site, latency)| (prefix, site, latency)));
        state_file::encode_into(&mut out, &state.sites, entries);
        // The choices are shared, not copied: written after the lock.
        let mut chosen: Vec<(String, Arc<Choices>)> = state
            .chosen
            .iter()
            .map(|(label, chosen)| (label.clone(), Arc::clone(chosen)))
            .collect();
        drop(state);
        tracing::debug!(
            seconds = locked.elapsed().as_secs_f64(),
            bytes = out.len(),
            "encoded the latency model (samples waited meanwhile)"
        );
        chosen.sort_by(|left, right| left.0.cmp(&right.0));
        state_file::append_choices(
            &mut out,
            chosen
                .iter()
                .map(|(label, chosen)| (label.as_str(), &**chosen)),
        );
        state_file::seal(&mut out);
        Some((mark, out))
    }

    /// Notes that the state `mark` names is on disk.
    pub fn mark_saved(&self, mark: SaveMark) {
        lock(&self.state).saved = Some(mark);
    }

    /// Puts back a model saved by an earlier run: each measurement under
    /// its site's id, as it was (average, samples, time), oldest first so
    /// that the eviction order is the one it had, and each steered name's
    /// last choices, so that the first compile keeps the margins. Stale ones, and those of
    /// sites the configuration no longer has, are dropped. The result
    /// counts as saved: nothing is written again until it changes.
    pub fn restore(&self, saved: &SavedModel, now: u64) -> Restored {
        let mut state = lock(&self.state);
        let moves = site_moves(&saved.sites, &state.sites);
        let mut report = Restored::default();
        for (prefix, site, latency) in saved.entries() {
            let restored = moves
                .get(site)
                .copied()
                .flatten()
                .is_some_and(|site| state.model.restore(prefix, site, latency, now).is_ok());
            if restored {
                report.restored += 1;
            } else {
                report.dropped += 1;
            }
        }
        for (label, choices) in saved.choices() {
            let chosen: Choices = choices
                .filter_map(|(source, site)| Some((source, moves.get(site).copied().flatten()?)))
                .collect();
            report.choices += chosen.len();
            state.chosen.insert(label.to_owned(), Arc::new(chosen));
        }
        state.saved = Some(SaveMark {
            epoch: state.epoch,
            version: state.model.version(),
        });
        report
    }

    /// Records a batch posted to this node; each sample is accepted or
    /// rejected on its own, counted, and the accepted ones are journaled
    /// for the peers.
    pub fn ingest(&self, batch: &PostedBatch, now: u64) -> IngestReport {
        let report = if self.journal.is_enabled() {
            let mut accepted = Vec::new();
            let report = self.record_batch(batch, now, Some(&mut accepted));
            self.journal.append(accepted);
            report
        } else {
            self.record_batch(batch, now, None)
        };
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

    /// Records a batch fetched from a peer's journal: checked like a
    /// posted one, but neither journaled again nor counted with the posted
    /// samples (the caller counts it per peer).
    pub fn ingest_from_peer(&self, batch: &PostedBatch, now: u64) -> IngestReport {
        self.record_batch(batch, now, None)
    }

    /// Records `batch` into the model; pushes each accepted sample to
    /// `journal` when one is given and journaling is on.
    fn record_batch(
        &self,
        batch: &PostedBatch,
        now: u64,
        mut journal: Option<&mut Vec<Entry>>,
    ) -> IngestReport {
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
                Ok(()) => {
                    report.accepted += 1;
                    if let Some(journal) = journal.as_deref_mut() {
                        journal.push(Entry {
                            client: prefix,
                            site: Arc::clone(&state.site_names[site]),
                            rtt_ms: sample.rtt_ms,
                            at,
                        });
                    }
                }
                Err(rejected) => reject(rejected.label(), rejected.to_string()),
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

fn shared_names(sites: &[String]) -> Vec<Arc<str>> {
    sites.iter().map(|site| Arc::from(site.as_str())).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::snapshot::SourceKey;

    const NOW: u64 = 1_700_000_000;

    fn ids(sites: &[&str]) -> Vec<String> {
        sites.iter().map(|&site| site.to_owned()).collect()
    }

    fn batch(samples: &[(&str, &str, f64)]) -> PostedBatch {
        PostedBatch {
            samples: samples
                .iter()
                .map(|&(client, site, rtt_ms)| PostedSample {
                    client: client.to_owned(),
                    site: site.to_owned(),
                    rtt_ms,
                    timestamp: None,
                })
                .collect(),
        }
    }

    fn described(engine: &LatencyEngine, client: &str, now: u64) -> Vec<(String, f64, u32)> {
        engine
            .describe(client.parse().expect("address"), now)
            .into_iter()
            .map(|(site, rtt, samples, _)| (site, rtt, samples))
            .collect()
    }

    #[test]
    fn posted_samples_are_journaled_with_peers_and_fetched_ones_never() {
        let engine = LatencyEngine::new(&LatencyConfig::default(), ids(&["fra", "iad"]));
        let posted = batch(&[
            ("203.0.113.5", "fra", 30.0),
            ("203.0.113.0/24", "nowhere", 9.0),
        ]);
        engine.ingest(&posted, NOW);
        assert!(engine.journal().is_empty(), "no [peers]: nothing kept");
        engine.journal().set_enabled(true);
        let report = engine.ingest(&posted, NOW);
        assert_eq!((report.accepted, report.rejected.len()), (1, 1));
        let page = engine.journal().page(None, 0, 10);
        assert_eq!(page.samples.len(), 1, "only accepted samples are journaled");
        assert_eq!(page.samples[0].client, "203.0.113.0/24");
        assert_eq!(page.samples[0].site, "fra");
        assert_eq!(page.samples[0].timestamp, NOW);
        let fetched = batch(&[("198.51.100.0/24", "iad", 50.0)]);
        let report = engine.ingest_from_peer(&fetched, NOW);
        assert_eq!(report.accepted, 1);
        assert_eq!(
            engine.journal().len(),
            1,
            "a fetched sample is not passed on"
        );
        assert_eq!(
            engine.totals().accepted,
            2,
            "nor counted with the posted ones"
        );
        assert_eq!(
            described(&engine, "198.51.100.7", NOW),
            vec![("iad".to_owned(), 50.0, 1)]
        );
    }

    #[test]
    fn a_saved_model_is_restored_by_site_id_and_saved_again_only_after_a_change() {
        let config = LatencyConfig::default();
        let engine = LatencyEngine::new(&config, ids(&["fra", "iad", "sin"]));
        assert!(
            engine.state_to_save(NOW).is_none(),
            "an unused model is not written"
        );
        let report = engine.ingest(
            &batch(&[
                ("198.51.100.0/24", "fra", 20.0),
                ("198.51.100.0/24", "fra", 30.0),
                ("198.51.100.0/24", "sin", 200.0),
                ("2001:db8:1::/48", "iad", 80.0),
            ]),
            NOW,
        );
        assert_eq!(report.accepted, 4);
        // What the served table's latency step chose last, per name.
        let network = SourceKey::Network("198.51.100.0".parse().expect("address"), 24);
        let chosen: Choices = [(network, 2), (SourceKey::MatrixAsn(3320), 0)]
            .into_iter()
            .collect();
        engine.remember_choices(HashMap::from([(
            "www.example.test. A".to_owned(),
            Arc::new(chosen),
        )]));
        let (mark, bytes) = engine.state_to_save(NOW).expect("changed");
        engine.mark_saved(mark);
        assert!(engine.state_to_save(NOW).is_none(), "nothing new since");

        // The next run has renamed sin away and put a site before fra.
        let saved = state_file::decode(bytes).expect("decodes");
        let restarted = LatencyEngine::new(&config, ids(&["ams", "fra", "iad"]));
        let restored = restarted.restore(&saved, NOW + 60);
        assert_eq!(
            restored,
            Restored {
                restored: 2,
                dropped: 1,
                // sin's choice is gone with sin; fra's moved to index 1.
                choices: 1,
            }
        );
        let previous = restarted
            .snapshot(
                &LatencyMatrix::default(),
                &ids(&["ams", "fra", "iad"]),
                NOW + 60,
            )
            .previous;
        let kept = &previous["www.example.test. A"];
        assert_eq!(kept.get(&SourceKey::MatrixAsn(3320)), Some(&1));
        assert_eq!(kept.get(&network), None);
        assert_eq!(
            described(&restarted, "198.51.100.7", NOW + 60),
            [("fra".to_owned(), 23.0, 2)]
        );
        assert_eq!(
            described(&restarted, "2001:db8:1::1", NOW + 60),
            [("iad".to_owned(), 80.0, 1)]
        );
        assert!(
            restarted.state_to_save(NOW + 60).is_none(),
            "what was just read back is not written again"
        );
        restarted.ingest(&batch(&[("192.0.2.0/24", "ams", 5.0)]), NOW + 60);
        assert!(restarted.state_to_save(NOW + 60).is_some());

        // Two hours later everything saved is stale: nothing comes back.
        let late = LatencyEngine::new(&config, ids(&["fra", "iad", "sin"]));
        let restored = late.restore(&saved, NOW + 7_200);
        assert_eq!(restored.restored, 0);
        assert_eq!(restored.dropped, 3);
    }
}
