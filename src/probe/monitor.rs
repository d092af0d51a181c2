//! Runs the probes and publishes what they find (control plane).
//!
//! One task per distinct [`ProbeTarget`] (probe settings and address), so a
//! target that many endpoints, pools and names share is probed once. Each
//! task checks its target at once, then every interval ± jitter, and sends
//! the result to one publisher task that owns the state machines
//! ([`TargetHealth`]). A change of state waits for the debounce (changes
//! that arrive meanwhile join it) and is then written into the served
//! table's per-endpoint atomics with one pass under the monitor's lock:
//! queries never wait for it. The failover time, from the first failed probe
//! of the run to this write, is logged, kept in `/status` and counted.
//!
//! A reload brings a new table whose atomics start all up; [`Monitor::publish_table`]
//! writes the current verdicts into it under the same lock before it is
//! stored, so a probe result is never lost between the two generations.
//! New targets of a reload, and every target at start, get their first
//! check before the table is published ([`Monitor::sync`]), bounded by the
//! probe timeout; targets that are gone are stopped.
//!
//! With `[peers]`, one more task fetches the other nodes' views
//! ([`crate::health::peers`]) every interval and sends each round to the
//! publisher too. What answers follow is then each target's verdict, the
//! vote of this node's state and the fresh peers' states under the quorum,
//! and it goes through the same debounce. Without peers the verdict is this
//! node's own state.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::steering::{Peers, ProbeTarget, Quorum, humanize};
use crate::health::observed::{Change, Observed, TargetHealth};
use crate::health::peers::{self, View, ViewTarget, Votes};
use crate::table::RoutingTable;

use super::check::{CheckResult, Checker, user_agent};
use crate::{lock, unix_seconds};

/// Upper bounds (seconds) of the probe latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Upper bounds (seconds) of the failover time histogram buckets.
pub const FAILOVER_BUCKETS: [f64; 10] = [0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0];
/// Extra time the first round may take beyond the longest probe timeout
/// (task start-up and scheduling).
const FIRST_ROUND_SLACK: Duration = Duration::from_millis(250);

/// One check of one target, boxed so that tests can script results.
pub trait ProbeCheck: Send + Sync + 'static {
    /// Runs one check; must finish within the probe's timeout.
    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>>;
}

impl ProbeCheck for Checker {
    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        Box::pin(Checker::check(self))
    }
}

/// Makes the check of a target: [`Checker`] in production.
pub type CheckFactory =
    Arc<dyn Fn(&ProbeTarget) -> Result<Box<dyn ProbeCheck>, String> + Send + Sync>;

/// The last result of a target, for `/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastProbe {
    /// Whether it passed.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// What happened: `HTTP 200`, `connection refused`, ...
    pub detail: String,
    /// When it finished, Unix seconds.
    pub at: f64,
}

/// One target as `/status` and `/metrics` show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetStatus {
    /// Probe id.
    pub probe: String,
    /// `http`, `https` or `tcp`.
    pub kind: &'static str,
    /// Address and port probed.
    pub target: std::net::SocketAddr,
    /// `unknown`, `up` or `down`.
    pub observed: Observed,
    /// When `observed` last changed (Unix seconds).
    pub since: f64,
    /// The last result, if any.
    pub last_probe: Option<LastProbe>,
    /// The last error seen (kept after the target recovers).
    pub last_error: Option<String>,
    /// State changes since the target was added.
    pub changes: u64,
    /// The last failover time: first failed probe to answers changed.
    pub last_failover_seconds: Option<f64>,
    /// What answers follow: `observed` alone, or with `[peers]` the
    /// vote of this node and the peers.
    pub verdict: Observed,
    /// The votes behind `verdict`, when peers are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub votes: Option<Votes>,
    /// Probe latency histogram: counts per [`LATENCY_BUCKETS`] bound
    /// (cumulative, as Prometheus wants), then the total count and sum.
    #[serde(skip)]
    pub latency: Histogram,
}

/// A cumulative histogram with fixed bounds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Cumulative count per bound.
    pub buckets: Vec<u64>,
    /// Every observation.
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum: f64,
}

impl Histogram {
    /// Empty, with one bucket per bound.
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, bounds: &[f64], value: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }
}

/// Totals over all targets, for `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorSnapshot {
    /// Every target.
    pub targets: Vec<TargetStatus>,
    /// Failover times of every change to down.
    pub failover: Histogram,
    /// Every peer of `[peers]`, in the configured order.
    pub peers: Vec<PeerStatus>,
    /// The quorum in force, when peers are configured.
    pub quorum: Option<Quorum>,
}

/// One peer as `/status` and `/metrics` show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeerStatus {
    /// Its URL, as `peers.urls` lists it.
    pub url: String,
    /// The name its view gives, once one was fetched.
    pub node: Option<String>,
    /// Whether its view is recent enough to vote.
    pub fresh: bool,
    /// Why it does not vote however fresh: `this node itself` (a shared
    /// config lists every node), or `the same node as URL`.
    pub ignored: Option<String>,
    /// When its view was last fetched (Unix seconds).
    pub last_fetch: Option<f64>,
    /// The error of the last fetch, when it failed.
    pub last_error: Option<String>,
    /// Targets its view holds.
    pub targets: usize,
    /// Fetches that succeeded.
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
}

struct Target {
    health: TargetHealth,
    since_wall: SystemTime,
    /// What answers follow (see the module docs); changes of it are what
    /// is published.
    verdict: Observed,
    votes: Votes,
    /// What the served table has for it.
    published_down: bool,
    last: Option<LastProbe>,
    last_error: Option<String>,
    changes: u64,
    last_failover: Option<Duration>,
    latency: Histogram,
    /// Signalled when the first result is in.
    first_result: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A change waiting for the debounce.
struct Pending {
    target: ProbeTarget,
    change: Change,
}

struct State {
    targets: HashMap<ProbeTarget, Target>,
    pending: Vec<Pending>,
    failover: Histogram,
    debounce: Duration,
    peers: PeerState,
}

/// The peers of `[peers]` and what they last said.
#[derive(Default)]
struct PeerState {
    settings: Option<Peers>,
    /// `health.quorum`.
    quorum: Quorum,
    /// One per URL of `settings`, in its order.
    views: Vec<PeerView>,
    /// Changes with the settings, so that a round of a replaced task is
    /// ignored.
    generation: u64,
    task: Option<JoinHandle<()>>,
    /// Signalled when the current task's first round is in.
    first_round: Option<watch::Sender<bool>>,
}

impl Drop for PeerState {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One peer's last view.
struct PeerView {
    url: String,
    node: Option<String>,
    /// When its view was last fetched.
    fetched: Option<(Instant, SystemTime)>,
    /// Its state per probe id and target: looked up by `&str`, so that
    /// counting the votes allocates nothing.
    observed: HashMap<String, HashMap<std::net::SocketAddr, Observed>>,
    /// The run id its view gave.
    instance: Option<String>,
    /// The drains and overrides its view shared.
    admin: Vec<crate::health::SharedSetting>,
    /// Why it does not vote whatever its freshness: it is this node, or
    /// a peer listed before under another URL.
    ignored: Option<String>,
    last_error: Option<String>,
    /// Whether it voted after the last round, to log when that changes.
    was_fresh: bool,
    fetches: u64,
    failures: u64,
}

impl PeerView {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            node: None,
            fetched: None,
            observed: HashMap::new(),
            instance: None,
            admin: Vec::new(),
            ignored: None,
            last_error: None,
            was_fresh: false,
            fetches: 0,
            failures: 0,
        }
    }

    fn is_fresh(&self, stale_after: Duration, now: Instant) -> bool {
        self.fetched
            .is_some_and(|(at, _)| now.saturating_duration_since(at) <= stale_after)
    }

    /// Whether its view counts now.
    fn votes(&self, stale_after: Duration, now: Instant) -> bool {
        self.ignored.is_none() && self.is_fresh(stale_after, now)
    }
}

/// What the publisher task takes in.
enum Event {
    /// One check of one target (boxed: a target's settings are large, and
    /// every event is as large as its largest kind).
    Probe(Box<ProbeTarget>, CheckResult),
    /// One round of fetches of the peers' views (one per URL, in order) by
    /// the task of `generation`.
    Peers {
        generation: u64,
        fetched: Vec<Result<View, String>>,
    },
}

struct Shared {
    table: Arc<ArcSwap<RoutingTable>>,
    state: Mutex<State>,
    factory: CheckFactory,
    /// `health.node`: in the published view and the peers' User-Agent.
    node: String,
    /// This run's id, in the published view: a peer URL whose view has it
    /// is this node.
    instance: String,
    events: mpsc::UnboundedSender<Event>,
}

/// The probe runner. See the module docs.
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Monitor {
    /// A monitor that publishes into `table`, with real HTTP and TCP checks
    /// that name `node` in their `User-Agent`; `instance` is this run's id
    /// in the published view. Must be created inside a tokio runtime: it
    /// starts the publisher.
    pub fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        debounce: Duration,
        node: &str,
        instance: &str,
    ) -> Self {
        let agent = user_agent(node);
        let factory: CheckFactory = Arc::new(move |target: &ProbeTarget| {
            Checker::new(target, &agent).map(|checker| Box::new(checker) as Box<dyn ProbeCheck>)
        });
        Self::with_checks(table, debounce, node, instance, factory)
    }

    /// A monitor with checks from `factory` (tests script results with it).
    pub fn with_checks(
        table: Arc<ArcSwap<RoutingTable>>,
        debounce: Duration,
        node: &str,
        instance: &str,
        factory: CheckFactory,
    ) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            table,
            state: Mutex::new(State {
                targets: HashMap::new(),
                pending: Vec::new(),
                failover: Histogram::new(&FAILOVER_BUCKETS),
                debounce,
                peers: PeerState::default(),
            }),
            factory,
            node: node.to_owned(),
            instance: instance.to_owned(),
            events,
        });
        tokio::spawn(publisher(Arc::downgrade(&shared), receiver));
        Self { shared }
    }

    /// Probes exactly `targets` from now on: starts the new ones, stops
    /// those not listed, keeps the state of the rest; and fetches the views
    /// of `peers` (restarting the fetches if they changed). Resolves once
    /// every new target has its first result and new peer settings their
    /// first round, or their timeouts (plus a little) have passed, whichever
    /// is first. Returns the targets that could not be set up (one line
    /// each); they are not probed and count as up.
    pub async fn sync(
        &self,
        targets: &[ProbeTarget],
        debounce: Duration,
        peers: Option<&Peers>,
        quorum: Quorum,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let mut waits = Vec::new();
        {
            let mut state = lock(&self.shared.state);
            state.debounce = debounce;
            state.peers.quorum = quorum;
            if let Some(first_round) = self.configure_peers(&mut state, peers) {
                let timeout = peers.map_or(Duration::ZERO, Peers::fetch_timeout);
                waits.push((timeout, first_round));
            }
            state.targets.retain(|target, _| targets.contains(target));
            for target in targets {
                if state.targets.contains_key(target) {
                    continue;
                }
                let check = match (self.shared.factory)(target) {
                    Ok(check) => check,
                    Err(message) => {
                        errors.push(format!(
                            "probe {} of {}: {message}",
                            target.probe.id, target.address
                        ));
                        continue;
                    }
                };
                let (first_result, first_seen) = watch::channel(false);
                waits.push((target.probe.timeout, first_seen));
                let task = tokio::spawn(probe_loop(
                    target.clone(),
                    check,
                    self.shared.events.clone(),
                ));
                let now = Instant::now();
                state.targets.insert(
                    target.clone(),
                    Target {
                        health: TargetHealth::new(now),
                        since_wall: SystemTime::now(),
                        verdict: Observed::Unknown,
                        votes: Votes::default(),
                        published_down: false,
                        last: None,
                        last_error: None,
                        changes: 0,
                        last_failover: None,
                        latency: Histogram::new(&LATENCY_BUCKETS),
                        first_result,
                        task,
                    },
                );
            }
        }
        let longest = waits
            .iter()
            .map(|(timeout, _)| *timeout)
            .max()
            .unwrap_or_default();
        let all_first_results = async {
            for (_, mut seen) in waits {
                // An error means the target was dropped meanwhile.
                let _ = seen.wait_for(|seen| *seen).await;
            }
        };
        let _ = tokio::time::timeout(longest + FIRST_ROUND_SLACK, all_first_results).await;
        // First results are published at once: a target dead at start must
        // not be served while the debounce runs. Verdicts are counted again
        // first, since the peers or their settings may have changed.
        let mut state = lock(&self.shared.state);
        decide_all(&mut state, Instant::now());
        publish_pending(&self.shared, &mut state);
        errors
    }

    /// Starts, restarts or stops the peer task for `peers`; returns what
    /// signals the first round of a newly started task.
    fn configure_peers(
        &self,
        state: &mut State,
        peers: Option<&Peers>,
    ) -> Option<watch::Receiver<bool>> {
        if state.peers.settings.as_ref() == peers {
            return None;
        }
        if let Some(task) = state.peers.task.take() {
            task.abort();
        }
        state.peers.generation += 1;
        state.peers.first_round = None;
        let Some(settings) = peers else {
            state.peers.settings = None;
            state.peers.views.clear();
            return None;
        };
        // Views of peers still listed are kept: a reload does not silence
        // them until their next fetch.
        let mut old = std::mem::take(&mut state.peers.views);
        state.peers.views = settings
            .urls
            .iter()
            .map(|url| match old.iter().position(|view| view.url == *url) {
                Some(index) => old.swap_remove(index),
                None => PeerView::new(url),
            })
            .collect();
        state.peers.settings = Some(settings.clone());
        let (first_round, first_seen) = watch::channel(false);
        state.peers.first_round = Some(first_round);
        state.peers.task = Some(tokio::spawn(peer_loop(
            state.peers.generation,
            settings.clone(),
            self.shared.node.clone(),
            self.shared.events.clone(),
        )));
        Some(first_seen)
    }

    /// This node's own probe results, as its peers fetch them.
    pub fn view(&self) -> View {
        let state = lock(&self.shared.state);
        let mut targets: Vec<ViewTarget> = state
            .targets
            .iter()
            .map(|(target, entry)| ViewTarget {
                probe: target.probe.id.clone(),
                target: target.address,
                observed: entry.health.observed(),
            })
            .collect();
        targets
            .sort_by(|left, right| (&left.probe, left.target).cmp(&(&right.probe, right.target)));
        View {
            node: self.shared.node.clone(),
            instance: self.shared.instance.clone(),
            admin: Vec::new(),
            targets,
        }
    }

    /// The drains and overrides the peers that vote now shared (a node
    /// itself and a duplicate URL are left out).
    pub fn peer_admin(&self) -> Vec<crate::health::SharedSetting> {
        let state = lock(&self.shared.state);
        let Some(settings) = &state.peers.settings else {
            return Vec::new();
        };
        let now = Instant::now();
        state
            .peers
            .views
            .iter()
            .filter(|view| view.votes(settings.stale_after, now))
            .flat_map(|view| view.admin.iter().cloned())
            .collect()
    }

    /// Publishes every pending change now.
    pub fn flush(&self) {
        let mut state = lock(&self.shared.state);
        publish_pending(&self.shared, &mut state);
    }

    /// Writes the current verdict of every target into `table` and then
    /// runs `store` (which publishes it), both under the monitor's lock, so
    /// that no result falls between the two generations.
    pub fn publish_table<T>(&self, table: &RoutingTable, store: impl FnOnce() -> T) -> T {
        let state = lock(&self.shared.state);
        for (target, entry) in &state.targets {
            table.health().set_observed(target, entry.published_down);
        }
        store()
    }

    /// Every target's state.
    pub fn snapshot(&self) -> MonitorSnapshot {
        let state = lock(&self.shared.state);
        let mut targets: Vec<TargetStatus> = state
            .targets
            .iter()
            .map(|(target, entry)| TargetStatus {
                probe: target.probe.id.clone(),
                kind: target.probe.kind_name(),
                target: target.address,
                observed: entry.health.observed(),
                since: unix_seconds(entry.since_wall),
                last_probe: entry.last.clone(),
                last_error: entry.last_error.clone(),
                changes: entry.changes,
                last_failover_seconds: entry.last_failover.map(|time| time.as_secs_f64()),
                verdict: entry.verdict,
                votes: state.peers.settings.as_ref().map(|_| entry.votes),
                latency: entry.latency.clone(),
            })
            .collect();
        targets
            .sort_by(|left, right| (&left.probe, left.target).cmp(&(&right.probe, right.target)));
        let now = Instant::now();
        let stale_after = state
            .peers
            .settings
            .as_ref()
            .map_or(Duration::ZERO, |settings| settings.stale_after);
        let peers = state
            .peers
            .views
            .iter()
            .map(|view| PeerStatus {
                url: view.url.clone(),
                node: view.node.clone(),
                fresh: view.is_fresh(stale_after, now),
                ignored: view.ignored.clone(),
                last_fetch: view.fetched.map(|(_, wall)| unix_seconds(wall)),
                last_error: view.last_error.clone(),
                targets: view.observed.values().map(HashMap::len).sum(),
                fetches: view.fetches,
                failures: view.failures,
            })
            .collect();
        MonitorSnapshot {
            targets,
            failover: state.failover.clone(),
            peers,
            quorum: state.peers.settings.as_ref().map(|_| state.peers.quorum),
        }
    }
}

/// Checks `target` at once, then every interval ± jitter, until aborted.
async fn probe_loop(
    target: ProbeTarget,
    check: Box<dyn ProbeCheck>,
    results: mpsc::UnboundedSender<Event>,
) {
    let mut random = seed(&target);
    loop {
        let started = Instant::now();
        let result = check.check().await;
        if results
            .send(Event::Probe(Box::new(target.clone()), result))
            .is_err()
        {
            return;
        }
        let wait = jittered(target.probe.interval, target.probe.jitter, &mut random);
        tokio::time::sleep_until(started + wait).await;
    }
}

/// `interval` plus or minus up to `jitter`, uniformly.
fn jittered(interval: Duration, jitter: Duration, random: &mut u64) -> Duration {
    let span = jitter.as_micros() as u64;
    if span == 0 {
        return interval;
    }
    // xorshift64: spreading probes needs no cryptographic randomness.
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    let offset = *random % (2 * span + 1);
    (interval + Duration::from_micros(offset)).saturating_sub(jitter)
}

/// A per-target seed, so targets added together do not probe in lockstep.
fn seed(target: &ProbeTarget) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(target) | 1
}

/// Fetches every peer's view at once, then again every interval, and
/// sends each round to the publisher, until aborted.
async fn peer_loop(
    generation: u64,
    settings: Peers,
    node: String,
    events: mpsc::UnboundedSender<Event>,
) {
    let client = crate::peers::client(&node, settings.ca.as_deref());
    let token = settings
        .token
        .as_ref()
        .map(|token| token.expose().to_owned());
    loop {
        let started = Instant::now();
        let fetched = match &client {
            Ok(client) => {
                let mut fetches = tokio::task::JoinSet::new();
                for (index, url) in settings.urls.iter().enumerate() {
                    let (client, url, token) = (client.clone(), url.clone(), token.clone());
                    let timeout = settings.fetch_timeout();
                    fetches.spawn(async move {
                        (
                            index,
                            peers::fetch(&client, &url, token.as_deref(), timeout).await,
                        )
                    });
                }
                let mut fetched: Vec<Result<View, String>> =
                    vec![Err("not fetched".to_owned()); settings.urls.len()];
                while let Some(done) = fetches.join_next().await {
                    match done {
                        Ok((index, result)) => fetched[index] = result,
                        Err(join_error) => warn!(%join_error, "a peer fetch failed"),
                    }
                }
                fetched
            }
            Err(error) => vec![Err(error.clone()); settings.urls.len()],
        };
        if events
            .send(Event::Peers {
                generation,
                fetched,
            })
            .is_err()
        {
            return;
        }
        tokio::time::sleep_until(started + settings.interval).await;
    }
}

/// Takes probe results and peer views, runs the state machines, counts
/// the votes and publishes changes once their debounce has passed. Ends
/// when the monitor is dropped.
async fn publisher(shared: std::sync::Weak<Shared>, mut results: mpsc::UnboundedReceiver<Event>) {
    let mut deadline: Option<Instant> = None;
    loop {
        let sleep = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = results.recv() => {
                let Some(event) = received else { return };
                let Some(shared) = shared.upgrade() else { return };
                let mut state = lock(&shared.state);
                let changed = match event {
                    Event::Probe(target, result) => record(&mut state, &target, result),
                    Event::Peers { generation, fetched } => {
                        take_round(&mut state, generation, fetched, &shared.instance)
                    }
                };
                if changed && deadline.is_none() {
                    deadline = Some(Instant::now() + state.debounce);
                }
            }
            () = sleep => {
                deadline = None;
                let Some(shared) = shared.upgrade() else { return };
                let mut state = lock(&shared.state);
                publish_pending(&shared, &mut state);
            }
        }
    }
}

/// Takes one result; true when it queued a change.
fn record(state: &mut State, target: &ProbeTarget, result: CheckResult) -> bool {
    let Some(entry) = state.targets.get_mut(target) else {
        // A result of a target removed by a reload meanwhile.
        return false;
    };
    let now = Instant::now();
    let latency = result.latency.as_secs_f64();
    entry.latency.observe(&LATENCY_BUCKETS, latency);
    if !result.ok {
        entry.last_error = Some(result.detail.clone());
    }
    entry.last = Some(LastProbe {
        ok: result.ok,
        latency_ms: latency * 1_000.0,
        detail: result.detail,
        at: unix_seconds(SystemTime::now()),
    });
    let change = entry
        .health
        .record(result.ok, target.probe.rise, target.probe.fall, now);
    entry.first_result.send_replace(true);
    let Some(change) = change else {
        return false;
    };
    entry.since_wall = SystemTime::now();
    entry.changes += 1;
    decide(state, target, change.run_started, now)
}

/// Takes one round of peer views; true when it queued a change.
fn take_round(
    state: &mut State,
    generation: u64,
    fetched: Vec<Result<View, String>>,
    instance: &str,
) -> bool {
    if generation != state.peers.generation {
        // A round of settings a reload replaced.
        return false;
    }
    let now = Instant::now();
    let stale_after = state
        .peers
        .settings
        .as_ref()
        .map_or(Duration::ZERO, |settings| settings.stale_after);
    for (view, result) in state.peers.views.iter_mut().zip(fetched) {
        match result {
            Ok(fetched) => {
                view.node = Some(fetched.node);
                view.instance = Some(fetched.instance).filter(|id| !id.is_empty());
                view.admin = fetched.admin;
                view.observed.clear();
                for target in fetched.targets {
                    view.observed
                        .entry(target.probe)
                        .or_default()
                        .insert(target.target, target.observed);
                }
                view.fetched = Some((now, SystemTime::now()));
                view.last_error = None;
                view.fetches += 1;
            }
            Err(error) => {
                if view.last_error.as_ref() != Some(&error) {
                    warn!(peer = %view.url, "cannot fetch the peer's health view: {error}");
                }
                view.last_error = Some(error);
                view.failures += 1;
            }
        }
    }
    recognize(&mut state.peers.views, instance);
    for view in &mut state.peers.views {
        let fresh = view.votes(stale_after, now);
        if fresh != view.was_fresh && view.ignored.is_none() {
            let node = view.node.as_deref().unwrap_or("?");
            if fresh {
                info!(peer = %view.url, %node, "the peer's health view votes");
            } else {
                warn!(
                    peer = %view.url, %node,
                    "the peer's health view is stale and no longer votes"
                );
            }
            view.was_fresh = fresh;
        }
    }
    if let Some(first_round) = &state.peers.first_round {
        first_round.send_replace(true);
    }
    decide_all(state, now)
}

/// Marks the views that must not vote: one that is this node (`instance`:
/// a shared config lists every node, this one included), and one that is
/// a node an earlier URL already reaches. Each is logged once.
fn recognize(views: &mut [PeerView], instance: &str) {
    for index in 0..views.len() {
        let ignored = match views[index].instance.as_deref() {
            None => None,
            Some(id) if id == instance => Some("this node itself".to_owned()),
            Some(id) => views[..index]
                .iter()
                .find(|earlier| earlier.instance.as_deref() == Some(id))
                .map(|earlier| format!("the same node as {}", earlier.url)),
        };
        let view = &mut views[index];
        if ignored != view.ignored {
            if let Some(reason) = &ignored {
                info!(peer = %view.url, "this peer is {reason}; its view does not vote");
            }
            view.ignored = ignored;
        }
    }
}

/// Counts the votes on `target` again and queues a change of its verdict;
/// true when it queued one. `run_started` is when the change began: the
/// first probe result that disagreed, or the moment this node learned the
/// vote that tipped it.
fn decide(state: &mut State, target: &ProbeTarget, run_started: Instant, now: Instant) -> bool {
    let Some(entry) = state.targets.get(target) else {
        return false;
    };
    let mut votes = Votes::default();
    votes.add(entry.health.observed());
    let quorum = match &state.peers.settings {
        None => Quorum::Majority,
        Some(settings) => {
            for view in &state.peers.views {
                if view.votes(settings.stale_after, now) {
                    let observed = view
                        .observed
                        .get(target.probe.id.as_str())
                        .and_then(|by_address| by_address.get(&target.address));
                    votes.add(observed.copied().unwrap_or(Observed::Unknown));
                }
            }
            state.peers.quorum
        }
    };
    let verdict = votes.verdict(quorum);
    let Some(entry) = state.targets.get_mut(target) else {
        return false;
    };
    entry.votes = votes;
    if verdict == entry.verdict {
        return false;
    }
    let change = Change {
        from: entry.verdict,
        to: verdict,
        run_started,
    };
    entry.verdict = verdict;
    // A change that undoes a pending one replaces it.
    state.pending.retain(|pending| pending.target != *target);
    state.pending.push(Pending {
        target: target.clone(),
        change,
    });
    true
}

/// Counts the votes on every target again; true when a verdict changed.
fn decide_all(state: &mut State, now: Instant) -> bool {
    let targets: Vec<ProbeTarget> = state.targets.keys().cloned().collect();
    let mut changed = false;
    for target in &targets {
        changed |= decide(state, target, now, now);
    }
    changed
}

/// Writes pending changes into the served table, logs and counts them.
fn publish_pending(shared: &Shared, state: &mut State) {
    if state.pending.is_empty() {
        return;
    }
    let table = shared.table.load();
    let now = Instant::now();
    let pending = std::mem::take(&mut state.pending);
    for Pending { target, change } in pending {
        let Some(entry) = state.targets.get_mut(&target) else {
            continue;
        };
        let down = change.to == Observed::Down;
        let answers_change = down != entry.published_down;
        entry.published_down = down;
        table.health().set_observed(&target, down);
        let elapsed = TargetHealth::elapsed_since(&change, now);
        let detail = entry.last.as_ref().map_or("", |last| last.detail.as_str());
        // With peers, the votes say why: this node's probes may disagree.
        let votes = match &state.peers.settings {
            Some(_) => format!(
                " ({} of {} vantage points see it down)",
                entry.votes.down,
                entry.votes.up + entry.votes.down
            ),
            None => String::new(),
        };
        if answers_change && change.from != Observed::Unknown {
            entry.last_failover = Some(elapsed);
            if down {
                state
                    .failover
                    .observe(&FAILOVER_BUCKETS, elapsed.as_secs_f64());
            }
            let since_first = humanize_precise(elapsed);
            if down {
                info!(
                    probe = %target.probe.id, target = %target.address, %detail,
                    "endpoint is down: answers changed {since_first} after the first failed probe{votes}"
                );
            } else {
                info!(
                    probe = %target.probe.id, target = %target.address,
                    "endpoint is up again: answers changed {since_first} after the first good probe{votes}"
                );
            }
        } else if change.from == Observed::Unknown {
            if down {
                info!(
                    probe = %target.probe.id, target = %target.address, %detail,
                    "endpoint is down at its first probe{votes}"
                );
            } else {
                info!(probe = %target.probe.id, target = %target.address, "endpoint is up{votes}");
            }
        }
    }
}

fn humanize_precise(duration: Duration) -> String {
    if duration >= Duration::from_secs(1) {
        format!("{:.2}s", duration.as_secs_f64())
    } else {
        humanize(Duration::from_millis(duration.as_millis() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{AdminState, Forced};
    use std::net::SocketAddr;

    const INTERVAL: Duration = Duration::from_secs(1);
    const DEBOUNCE: Duration = Duration::from_millis(200);

    /// Results per target address, set by the test.
    type Script = Arc<Mutex<HashMap<SocketAddr, bool>>>;

    struct Scripted {
        script: Script,
        address: SocketAddr,
    }

    impl ProbeCheck for Scripted {
        fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
            Box::pin(async move {
                // A probe takes a little time, like a real one.
                tokio::time::sleep(Duration::from_millis(10)).await;
                let ok = lock(&self.script)
                    .get(&self.address)
                    .copied()
                    .unwrap_or(true);
                CheckResult {
                    ok,
                    latency: Duration::from_millis(10),
                    detail: if ok { "HTTP 200" } else { "HTTP 503" }.to_owned(),
                }
            })
        }
    }

    /// A served table with pool `fra` (192.0.2.1, 192.0.2.2) probed every
    /// second, fall 3, rise 2, no jitter.
    fn served_table(directory: &std::path::Path) -> Arc<ArcSwap<RoutingTable>> {
        std::fs::create_dir_all(directory.join("zones")).expect("zones");
        std::fs::write(
            directory.join("zones/example.test.zone"),
            "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ NS ns1\nns1 A 192.0.2.53\n",
        )
        .expect("zone");
        let config = directory.join("steer.toml");
        std::fs::write(
            &config,
            r#"
[server]
listen = ["127.0.0.1:0"]
[sites.fra]
[probes.web]
type = "http"
interval = "1s"
jitter = "0ms"
timeout = "500ms"
rise = 2
fall = 3
[pools.fra]
site = "fra"
probe = "web"
addresses = ["192.0.2.1", "192.0.2.2"]
[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
"#,
        )
        .expect("config");
        let built = crate::control::build(&config, 1, &AdminState::default()).expect("build");
        Arc::new(ArcSwap::from_pointee(built.table))
    }

    fn monitor(table: &Arc<ArcSwap<RoutingTable>>, script: &Script) -> Monitor {
        let script = Arc::clone(script);
        let factory: CheckFactory = Arc::new(move |target: &ProbeTarget| {
            Ok(Box::new(Scripted {
                script: Arc::clone(&script),
                address: target.address,
            }) as Box<dyn ProbeCheck>)
        });
        Monitor::with_checks(Arc::clone(table), DEBOUNCE, "test", "0", factory)
    }

    /// Whether answers may use each endpoint, in slot order.
    fn served(table: &Arc<ArcSwap<RoutingTable>>) -> Vec<bool> {
        table
            .load()
            .health()
            .statuses(&AdminState::default())
            .iter()
            .map(|status| status.up)
            .collect()
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_round_is_in_the_table_before_sync_returns() {
        let directory = tempfile::tempdir().expect("tempdir");
        let table = served_table(directory.path());
        let script = Script::default();
        lock(&script).insert(address("192.0.2.2:80"), false);
        let monitor = monitor(&table, &script);
        assert_eq!(served(&table), vec![true, true], "unknown counts as up");
        let targets = table.load().health().targets().to_vec();
        assert_eq!(targets.len(), 2);
        let problems = monitor
            .sync(&targets, DEBOUNCE, None, Quorum::Majority)
            .await;
        assert!(problems.is_empty());
        assert_eq!(served(&table), vec![true, false]);
        let snapshot = monitor.snapshot();
        assert_eq!(snapshot.targets[0].observed, Observed::Up);
        assert_eq!(snapshot.targets[1].observed, Observed::Down);
        assert_eq!(snapshot.targets[1].last_error.as_deref(), Some("HTTP 503"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_target_leaves_within_interval_times_fall_plus_debounce_and_returns_after_rise()
     {
        let directory = tempfile::tempdir().expect("tempdir");
        let table = served_table(directory.path());
        let script = Script::default();
        let monitor = monitor(&table, &script);
        let targets = table.load().health().targets().to_vec();
        monitor
            .sync(&targets, DEBOUNCE, None, Quorum::Majority)
            .await;
        assert_eq!(served(&table), vec![true, true]);

        // Probes run at 0 s, 1 s, 2 s, ... (plus 10 ms each). It fails from
        // the probe at about 1 s on: the third failure is at about 3 s,
        // and answers change one debounce later.
        tokio::time::sleep(Duration::from_millis(500)).await;
        lock(&script).insert(address("192.0.2.1:80"), false);
        tokio::time::sleep(Duration::from_millis(2_600)).await; // t = 3.1 s
        assert_eq!(served(&table), vec![true, true], "debounce not over yet");
        tokio::time::sleep(Duration::from_millis(200)).await; // t = 3.3 s
        assert_eq!(served(&table), vec![false, true]);
        let down = &monitor.snapshot().targets[0];
        let failover = down.last_failover_seconds.expect("failover time");
        let bound = (INTERVAL * 3 + DEBOUNCE).as_secs_f64();
        assert!(failover <= bound, "{failover} > {bound}");
        assert!(
            failover >= (INTERVAL * 2 + DEBOUNCE).as_secs_f64(),
            "{failover}"
        );
        assert_eq!(monitor.snapshot().failover.count, 1);

        // It recovers before the probe at 4 s: two good probes (4 s, 5 s),
        // then the debounce.
        tokio::time::sleep(Duration::from_millis(500)).await; // t = 3.8 s
        lock(&script).insert(address("192.0.2.1:80"), true);
        tokio::time::sleep(Duration::from_millis(1_300)).await; // t = 5.1 s
        assert_eq!(served(&table), vec![false, true]);
        tokio::time::sleep(Duration::from_millis(250)).await; // t = 5.35 s
        assert_eq!(served(&table), vec![true, true]);
        assert_eq!(monitor.snapshot().targets[0].changes, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_target_does_not_flip_answers_and_admin_overrides_win() {
        let directory = tempfile::tempdir().expect("tempdir");
        let table = served_table(directory.path());
        let script = Script::default();
        let monitor = monitor(&table, &script);
        let targets = table.load().health().targets().to_vec();
        monitor
            .sync(&targets, DEBOUNCE, None, Quorum::Majority)
            .await;
        // Two failures, one success, for 30 probes: never `fall` in a row.
        for probe in 0..30 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            lock(&script).insert(address("192.0.2.1:80"), probe % 3 == 2);
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(served(&table), vec![true, true], "probe {probe}");
        }
        // Fail for good; an operator forcing it up wins, and forcing the
        // other one down wins too.
        lock(&script).insert(address("192.0.2.1:80"), false);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(served(&table), vec![false, true]);
        let mut admin = AdminState::default();
        admin
            .forced
            .insert("192.0.2.1".parse().expect("ip"), Forced::Up);
        admin
            .forced
            .insert("192.0.2.2".parse().expect("ip"), Forced::Down);
        table.load().health().apply(&admin);
        let up: Vec<bool> = table
            .load()
            .health()
            .statuses(&admin)
            .iter()
            .map(|status| status.up)
            .collect();
        assert_eq!(up, vec![true, false]);
        // Probe results keep arriving; the overrides still win.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(table.load().health().statuses(&admin)[0].up);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_table_gets_the_verdicts_before_it_is_stored_and_removed_targets_stop() {
        let directory = tempfile::tempdir().expect("tempdir");
        let table = served_table(directory.path());
        let script = Script::default();
        lock(&script).insert(address("192.0.2.1:80"), false);
        let monitor = monitor(&table, &script);
        let targets = table.load().health().targets().to_vec();
        monitor
            .sync(&targets, DEBOUNCE, None, Quorum::Majority)
            .await;
        assert_eq!(served(&table), vec![false, true]);
        // A reload compiles a fresh table (all up) of the same config.
        let config = directory.path().join("steer.toml");
        let fresh = crate::control::build(&config, 2, &AdminState::default()).expect("build");
        let fresh = Arc::new(fresh.table);
        monitor.publish_table(&fresh, || table.store(Arc::clone(&fresh)));
        assert_eq!(served(&table), vec![false, true]);
        // Only one target left: the other one's state is dropped.
        monitor
            .sync(&targets[..1], DEBOUNCE, None, Quorum::Majority)
            .await;
        assert_eq!(monitor.snapshot().targets.len(), 1);
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_spreads() {
        let mut random = 0x9e37_79b9_7f4a_7c15;
        let interval = Duration::from_secs(10);
        let jitter = Duration::from_secs(1);
        let waits: Vec<Duration> = (0..1_000)
            .map(|_| jittered(interval, jitter, &mut random))
            .collect();
        assert!(
            waits
                .iter()
                .all(|wait| *wait >= interval - jitter && *wait <= interval + jitter)
        );
        let below = waits.iter().filter(|wait| **wait < interval).count();
        assert!(
            (300..700).contains(&below),
            "{below} of 1000 below the interval"
        );
        assert_eq!(jittered(interval, Duration::ZERO, &mut random), interval);
    }
}
