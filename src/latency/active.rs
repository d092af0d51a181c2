//! Active measurements: this node's own round-trip time to each site
//! (control plane).
//!
//! Every site with a `latency_target` (an `IP:PORT`) is measured by the
//! time a TCP connect to it takes, every `latency.active_interval`: the
//! first round at once, later ones with each site started at a random
//! offset within a tenth of the interval, so that the connects of many
//! sites do not leave in one burst. A connect is bounded by the smaller of
//! the interval and [`MAX_TIMEOUT`]; one that fails or times out records
//! nothing (a refused connect says nothing about the path's RTT), and is
//! logged at debug and counted. A good one goes to
//! [`LatencyEngine::record_node`], from which the `latency` step's
//! fallback "this node" is compiled (after the matrix's ASN and country
//! rows, before distance).
//!
//! One task does it for the whole server. It reads the served
//! configuration at the start of every round, so a reload that adds,
//! moves or removes targets or changes the interval takes effect at the
//! next round. The connects run on the async threads and take no lock
//! across an await; the engine's and the counters' mutexes are held only
//! to write one result. Nothing here is on the query path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::debug;

use super::engine::LatencyEngine;
use crate::config::steering::SteeringConfig;
use crate::control::Control;
use crate::{lock, unix_now};

/// Longest a connect may take before it counts as failed: a path slower
/// than this is not one latency steering should pick anyway, and a longer
/// wait only delays the next round.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(5);

/// Fraction of the interval within which each site's start is spread.
const JITTER_DIVISOR: u32 = 10;

/// Shortest RTT recorded: the engine refuses 0, and a connect measured as
/// taking no time at all is a coarse clock, not a free path.
const MIN_RTT_MS: f64 = 0.001;

/// One site to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Site id.
    pub site: String,
    /// Where the connect goes.
    pub address: SocketAddr,
}

/// What one round measures and how often, as the served configuration says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Sites with a `latency_target`, in site order.
    pub targets: Vec<Target>,
    /// Time between the starts of two rounds.
    pub interval: Duration,
}

impl Plan {
    /// The plan of a steering configuration.
    pub fn of(steering: &SteeringConfig) -> Self {
        Self {
            targets: steering
                .sites
                .iter()
                .filter_map(|site| {
                    site.latency_target.map(|address| Target {
                        site: site.id.clone(),
                        address,
                    })
                })
                .collect(),
            interval: steering.latency.active_interval,
        }
    }

    /// How long one connect may take.
    pub fn timeout(&self) -> Duration {
        self.interval.min(MAX_TIMEOUT)
    }
}

/// Measurements of one site since it was first measured, for `/status`
/// and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SiteMeasurements {
    /// Site id.
    pub site: String,
    /// Connects that succeeded (their RTT was recorded).
    pub ok: u64,
    /// Connects that failed or timed out.
    pub failed: u64,
}

/// This node's RTT to one site as the engine holds it, for `/status` and
/// `/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRtt {
    /// Site id.
    pub site: String,
    /// Moving average of the connect times, milliseconds.
    pub rtt_ms: f64,
    /// Seconds since the last good measurement.
    pub age_seconds: u64,
}

/// The engine's fresh node RTTs (see [`LatencyEngine::node_latencies`]).
pub fn node_rtts(engine: &LatencyEngine, now: u64) -> Vec<NodeRtt> {
    engine
        .node_latencies(now)
        .into_iter()
        .map(|(site, rtt_ms, age_seconds)| NodeRtt {
            site,
            rtt_ms,
            age_seconds,
        })
        .collect()
}

/// What became of one connect.
#[derive(Debug)]
enum Outcome {
    /// Connected after this many milliseconds.
    Connected(f64),
    /// Refused, unreachable, or not within the timeout.
    Failed(String),
}

/// The measuring loop and its counters. See the module docs.
#[derive(Debug, Default)]
pub struct ActiveLatency {
    /// Per site id, the sites of the served configuration only; a mutex
    /// rather than atomics because reloads add and remove sites.
    counts: Mutex<BTreeMap<String, SiteMeasurements>>,
}

/// Measures the served configuration's targets until the task is aborted,
/// recording into `control`'s latency engine and counting into its
/// [`ActiveLatency`]. Start one per server.
pub async fn run(control: Arc<Control>) {
    let active = Arc::clone(control.active_latency());
    active
        .run_with(control.latency(), || Plan::of(&control.serving().steering))
        .await;
}

impl ActiveLatency {
    /// Runs rounds forever: `plan` is asked at the start of each one, the
    /// first round starts at once and the next one `interval` after the
    /// start of the previous (at once when a round took longer).
    pub async fn run_with(&self, engine: &LatencyEngine, mut plan: impl FnMut() -> Plan) {
        let mut random = seed();
        let mut first = true;
        loop {
            let started = Instant::now();
            let current = plan();
            let jitter = if first {
                Duration::ZERO
            } else {
                current.interval / JITTER_DIVISOR
            };
            self.round(engine, &current, || offset(jitter, &mut random))
                .await;
            first = false;
            tokio::time::sleep_until(started + current.interval).await;
        }
    }

    /// Measures every target of `plan` concurrently, each after the delay
    /// `delay` gives it, and records the results as they come in.
    async fn round(
        &self,
        engine: &LatencyEngine,
        plan: &Plan,
        mut delay: impl FnMut() -> Duration,
    ) {
        // A site whose target was removed no longer speaks for this node.
        let dropped = self.track(&plan.targets);
        let dropped: Vec<&str> = dropped.iter().map(String::as_str).collect();
        engine.forget_node_sites(&dropped);
        let timeout = plan.timeout();
        let mut connects = JoinSet::new();
        for target in &plan.targets {
            let target = target.clone();
            let delay = delay();
            connects.spawn(async move {
                tokio::time::sleep(delay).await;
                let outcome = connect(target.address, timeout).await;
                (target, outcome)
            });
        }
        while let Some(joined) = connects.join_next().await {
            // A connect task only ends by returning: it is never aborted
            // while the set is alive, and it does not panic.
            let Ok((target, outcome)) = joined else {
                continue;
            };
            self.record(engine, &target, outcome);
        }
    }

    /// Keeps counters for exactly `targets`' sites, new ones at zero, so
    /// that `/metrics` shows every measured site from the first round and
    /// none that a reload removed.
    /// Keeps counters for exactly the sites of `targets`; returns the sites
    /// that had one before and have none now.
    fn track(&self, targets: &[Target]) -> Vec<String> {
        let mut counts = lock(&self.counts);
        let mut dropped = Vec::new();
        counts.retain(|site, _| {
            let kept = targets.iter().any(|target| target.site == *site);
            if !kept {
                dropped.push(site.clone());
            }
            kept
        });
        for target in targets {
            counts
                .entry(target.site.clone())
                .or_insert_with(|| SiteMeasurements {
                    site: target.site.clone(),
                    ..SiteMeasurements::default()
                });
        }
        dropped
    }

    fn record(&self, engine: &LatencyEngine, target: &Target, outcome: Outcome) {
        let ok = match outcome {
            Outcome::Connected(rtt_ms) => {
                engine.record_node(&target.site, rtt_ms, unix_now());
                true
            }
            Outcome::Failed(reason) => {
                debug!(
                    site = %target.site,
                    address = %target.address,
                    reason = %reason,
                    "active latency measurement failed"
                );
                false
            }
        };
        // `track` gave every target of this round an entry, and only this
        // loop changes the map, so the lookup always finds it.
        if let Some(counts) = lock(&self.counts).get_mut(&target.site) {
            if ok {
                counts.ok += 1;
            } else {
                counts.failed += 1;
            }
        }
    }

    /// Measurements per site of the served configuration, by site id.
    pub fn totals(&self) -> Vec<SiteMeasurements> {
        lock(&self.counts).values().cloned().collect()
    }
}

/// One TCP connect to `address`, timed; the connection is closed at once.
async fn connect(address: SocketAddr, timeout: Duration) -> Outcome {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => {
            let rtt_ms = started.elapsed().as_secs_f64() * 1_000.0;
            Outcome::Connected(rtt_ms.max(MIN_RTT_MS))
        }
        Ok(Err(error)) => Outcome::Failed(error.to_string()),
        Err(_) => Outcome::Failed(format!("no connection within {timeout:?}")),
    }
}

/// A random delay in `0..=jitter`.
fn offset(jitter: Duration, random: &mut u64) -> Duration {
    let span = jitter.as_micros() as u64;
    if span == 0 {
        return Duration::ZERO;
    }
    // xorshift64: spreading connects needs no cryptographic randomness.
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    Duration::from_micros(*random % (span + 1))
}

/// A seed that differs between processes, so that nodes started together
/// do not measure in step either.
fn seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(unix_now()) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::steering::{LatencyConfig, Site};
    use tokio::net::TcpListener;

    /// A listener on 127.0.0.1 that accepts and drops connections until
    /// the test ends, so that its backlog never fills.
    async fn listener() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        address
    }

    /// A loopback port nothing listens on: bound, then closed.
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("local address")
    }

    fn target(site: &str, address: SocketAddr) -> Target {
        Target {
            site: site.to_owned(),
            address,
        }
    }

    fn engine(sites: &[&str]) -> LatencyEngine {
        LatencyEngine::new(
            &LatencyConfig::default(),
            sites.iter().map(|site| (*site).to_owned()).collect(),
        )
    }

    fn counts(active: &ActiveLatency, site: &str) -> (u64, u64) {
        active
            .totals()
            .into_iter()
            .find(|measured| measured.site == site)
            .map_or((0, 0), |measured| (measured.ok, measured.failed))
    }

    #[tokio::test]
    async fn measures_listening_targets_and_counts_the_closed_one() {
        let engine = engine(&["ams", "fra", "iad"]);
        let plan = Plan {
            targets: vec![
                target("ams", listener().await),
                target("fra", listener().await),
                target("iad", closed_port().await),
            ],
            interval: Duration::from_millis(100),
        };
        let active = ActiveLatency::default();
        let measured = async {
            loop {
                let (_, iad_failed) = counts(&active, "iad");
                let (fra_ok, _) = counts(&active, "fra");
                if iad_failed >= 2 && fra_ok >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            () = active.run_with(&engine, || plan.clone()) => unreachable!("runs forever"),
            result = tokio::time::timeout(Duration::from_secs(10), measured) => {
                result.expect("two rounds within 10 s");
            }
        }
        let node = engine.node_latencies(unix_now());
        let sites: Vec<&str> = node.iter().map(|(site, _, _)| site.as_str()).collect();
        assert_eq!(sites, ["ams", "fra"], "{node:?}");
        for (site, rtt_ms, age) in &node {
            // Loopback: well under the timeout, whatever the machine's load.
            assert!(*rtt_ms > 0.0 && *rtt_ms < 100.0, "{site}: {rtt_ms} ms");
            assert!(*age <= 1, "{site}: {age} s old");
        }
        let (iad_ok, iad_failed) = counts(&active, "iad");
        assert_eq!(iad_ok, 0);
        assert!(iad_failed >= 2);
        assert_eq!(counts(&active, "ams").1, 0);
        assert_eq!(counts(&active, "fra").1, 0);
    }

    #[tokio::test]
    async fn the_first_round_measures_at_once() {
        let engine = engine(&["fra"]);
        let plan = Plan {
            targets: vec![target("fra", listener().await)],
            interval: Duration::from_secs(3_600),
        };
        let active = ActiveLatency::default();
        let first = async {
            while counts(&active, "fra").0 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = active.run_with(&engine, || plan.clone()) => unreachable!("runs forever"),
            result = tokio::time::timeout(Duration::from_secs(5), first) => {
                result.expect("measured without waiting for the hour-long interval");
            }
        }
        assert_eq!(engine.node_latencies(unix_now()).len(), 1);
    }

    #[tokio::test]
    async fn each_round_reads_the_plan_again() {
        let engine = engine(&["fra", "iad"]);
        let fra = target("fra", listener().await);
        let iad = target("iad", listener().await);
        let rounds = std::sync::atomic::AtomicUsize::new(0);
        // The first round measures fra, every later one iad only, as after
        // a reload that moved the target.
        let plan = || {
            let round = rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Plan {
                targets: vec![if round == 0 { fra.clone() } else { iad.clone() }],
                interval: Duration::from_millis(100),
            }
        };
        let active = ActiveLatency::default();
        let moved = async {
            while counts(&active, "iad").0 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = active.run_with(&engine, plan) => unreachable!("runs forever"),
            result = tokio::time::timeout(Duration::from_secs(10), moved) => {
                result.expect("the second round measured the new target");
            }
        }
        let sites: Vec<String> = active
            .totals()
            .into_iter()
            .map(|total| total.site)
            .collect();
        assert_eq!(sites, ["iad"], "fra's counters went with its target");
        let node = engine.node_latencies(unix_now());
        // fra's target is gone, so its RTT from this node is too.
        let measured: Vec<&str> = node.iter().map(|(site, _, _)| site.as_str()).collect();
        assert_eq!(measured, ["iad"], "{node:?}");
    }

    #[tokio::test]
    async fn a_target_that_never_answers_fails_within_the_timeout() {
        // A listener that never accepts, its queue filled: Linux drops
        // further SYNs, so the next connect hangs as to a dead host.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let silent = socket.listen(0).expect("listen");
        let address = silent.local_addr().expect("local address");
        let mut queued = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address)).await
            {
                queued.push(stream);
            }
        }
        let engine = engine(&["far"]);
        let plan = Plan {
            targets: vec![target("far", address)],
            interval: Duration::from_millis(300),
        };
        let active = ActiveLatency::default();
        let started = std::time::Instant::now();
        active.round(&engine, &plan, || Duration::ZERO).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
            "the round took {elapsed:?}, not about the 300 ms timeout"
        );
        assert_eq!(counts(&active, "far"), (0, 1));
        assert!(engine.node_latencies(unix_now()).is_empty());
        drop(queued);
    }

    #[test]
    fn the_plan_has_the_sites_with_a_target_and_a_bounded_timeout() {
        let site = |id: &str, target: Option<&str>| Site {
            id: id.to_owned(),
            coordinates: None,
            country: None,
            continent: None,
            latency_target: target.map(|text| text.parse().expect("address")),
        };
        let mut steering = SteeringConfig {
            sites: vec![
                site("ams", Some("192.0.2.10:443")),
                site("fra", None),
                site("iad", Some("[2001:db8::10]:80")),
            ],
            ..SteeringConfig::default()
        };
        steering.latency.active_interval = Duration::from_secs(30);
        let plan = Plan::of(&steering);
        assert_eq!(
            plan.targets,
            [
                target("ams", "192.0.2.10:443".parse().expect("address")),
                target("iad", "[2001:db8::10]:80".parse().expect("address")),
            ]
        );
        assert_eq!(plan.timeout(), MAX_TIMEOUT);
        steering.latency.active_interval = Duration::from_millis(100);
        assert_eq!(Plan::of(&steering).timeout(), Duration::from_millis(100));
    }

    #[test]
    fn offsets_stay_within_the_jitter_and_spread() {
        let mut random = 0x9e37_79b9_7f4a_7c15;
        let jitter = Duration::from_millis(100);
        let offsets: Vec<Duration> = (0..1_000).map(|_| offset(jitter, &mut random)).collect();
        assert!(offsets.iter().all(|offset| *offset <= jitter));
        assert!(offsets.iter().any(|offset| *offset < jitter / 4));
        assert!(offsets.iter().any(|offset| *offset > jitter * 3 / 4));
        assert_eq!(offset(Duration::ZERO, &mut random), Duration::ZERO);
    }
}
