//! Alias pools: a pool whose addresses are another name's, resolved on the
//! control plane and compiled into the table like any other pool's.
//!
//! Route 53's alias records and PowerDNS' ALIAS exist because a zone apex
//! cannot be a CNAME, yet load balancers and CDNs hand out a name whose
//! addresses change. Steer resolves each target through `[resolver]`
//! ([`resolve`]) when its TTL runs out (bounded by `min_refresh` and
//! `max_refresh`), and when the addresses change the steering part of the
//! table is compiled again, as for new latency data: the query path reads
//! compiled bytes and never waits on a resolver. While every resolver
//! fails, the last addresses stay for `max_stale`; a target with no known
//! addresses leaves its pool empty, so a `healthy` step passes over it and
//! an answer that ends up with nothing is SERVFAIL, not a NODATA that
//! resolvers would cache.

pub mod resolve;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::rr::Name;
use serde::Serialize;

use crate::config::steering::ResolverConfig;
pub use resolve::Answer;

/// A target's addresses, as compiled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// For names steered for A.
    pub v4: Vec<Ipv4Addr>,
    /// For names steered for AAAA.
    pub v6: Vec<Ipv6Addr>,
}

/// The addresses a compile reads: every target with known addresses. A
/// target missing here has none known (never answered, or stale).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AliasAddresses {
    targets: HashMap<Name, Arc<Addresses>>,
}

impl AliasAddresses {
    /// The known addresses of `target` (a lower-case absolute name).
    pub fn get(&self, target: &Name) -> Option<&Addresses> {
        self.targets.get(target).map(|addresses| &**addresses)
    }
}

/// Every alias target's resolution state, shared by the resolving task,
/// reloads and `/status`.
#[derive(Debug, Default)]
pub struct Aliases {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    targets: HashMap<Name, Target>,
    /// Bumped whenever the addresses a compile would read change.
    version: u64,
}

#[derive(Debug)]
struct Target {
    /// The last answer's addresses; `None` before the first answer and
    /// after `max_stale` without one.
    addresses: Option<Arc<Addresses>>,
    /// When the last answer came (for staleness) and its wall-clock time.
    answered: Option<(Instant, SystemTime)>,
    /// The last answer's TTL and server.
    ttl: u32,
    server: Option<SocketAddr>,
    /// When to ask again.
    next: Instant,
    /// Whether a resolution was ever tried (reloads wait for the first).
    tried: bool,
    /// Failures since the last answer, and the last one's text.
    failures: u32,
    last_error: Option<String>,
    answers_total: u64,
    failures_total: u64,
}

impl Target {
    fn new(now: Instant) -> Self {
        Self {
            addresses: None,
            answered: None,
            ttl: 0,
            server: None,
            next: now,
            tried: false,
            failures: 0,
            last_error: None,
            answers_total: 0,
            failures_total: 0,
        }
    }
}

/// One target in `/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetStatus {
    /// The target name.
    pub target: String,
    /// Its addresses as compiled; empty when none are known.
    pub addresses: Vec<String>,
    /// Whether any are known (an answer within `max_stale`).
    pub resolved: bool,
    /// Unix seconds of the last answer.
    pub answered_at: Option<f64>,
    /// The last answer's TTL.
    pub ttl: u32,
    /// The server that gave the last answer.
    pub server: Option<String>,
    /// Seconds until it is asked again.
    pub next_in_seconds: u64,
    /// Failures since the last answer, and the last one's text.
    pub failures: u32,
    /// Why the last failure failed.
    pub last_error: Option<String>,
    /// Answers and failures since start.
    pub answers_total: u64,
    /// Failures since start.
    pub failures_total: u64,
}

impl Aliases {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tracks `targets` too: new ones are due at once. What a compile
    /// reads does not change (they have no addresses yet).
    pub fn track(&self, targets: &[Name], now: Instant) {
        let mut state = self.state();
        for target in targets {
            state
                .targets
                .entry(target.clone())
                .or_insert_with(|| Target::new(now));
        }
    }

    /// Forgets every target but `targets`: called once a table compiled
    /// from a config naming just these is served (never before, so that a
    /// reload that fails leaves the served table's targets in place).
    pub fn retain(&self, targets: &[Name]) {
        self.state()
            .targets
            .retain(|target, _| targets.contains(target));
    }

    /// Targets of `targets` never tried yet.
    pub fn untried(&self, targets: &[Name]) -> Vec<Name> {
        let state = self.state();
        targets
            .iter()
            .filter(|target| state.targets.get(*target).is_none_or(|known| !known.tried))
            .cloned()
            .collect()
    }

    /// The targets due to be asked at `now`.
    pub fn due(&self, now: Instant) -> Vec<Name> {
        self.state()
            .targets
            .iter()
            .filter(|(_, target)| target.next <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// When the next target is due, if any is tracked.
    pub fn next_due(&self) -> Option<Instant> {
        self.state()
            .targets
            .values()
            .map(|target| target.next)
            .min()
    }

    /// Records a resolution of `target` at `now`.
    pub fn record(
        &self,
        target: &Name,
        result: Result<Answer, String>,
        config: &ResolverConfig,
        now: Instant,
    ) {
        let mut state = self.state();
        let State { targets, version } = &mut *state;
        let Some(entry) = targets.get_mut(target) else {
            return;
        };
        entry.tried = true;
        match result {
            Ok(answer) => {
                let addresses = Addresses {
                    v4: answer.v4,
                    v6: answer.v6,
                };
                if entry.addresses.as_deref() != Some(&addresses) {
                    tracing::info!(
                        target = %target,
                        v4 = ?addresses.v4,
                        v6 = ?addresses.v6,
                        server = %answer.server,
                        "alias target's addresses changed"
                    );
                    entry.addresses = Some(Arc::new(addresses));
                    *version += 1;
                }
                entry.answered = Some((now, SystemTime::now()));
                entry.ttl = answer.ttl;
                entry.server = Some(answer.server);
                entry.failures = 0;
                entry.last_error = None;
                entry.answers_total += 1;
                let wait = Duration::from_secs(u64::from(answer.ttl))
                    .clamp(config.min_refresh, config.max_refresh);
                entry.next = now + wait;
            }
            Err(error) => {
                tracing::warn!(target = %target, "cannot resolve an alias target: {error}");
                entry.failures = entry.failures.saturating_add(1);
                entry.failures_total += 1;
                entry.last_error = Some(error);
                // 1 s, 2 s, 4 s ... up to min_refresh: a resolver back from
                // an outage is asked again soon, a dead one not every second.
                let backoff = Duration::from_secs(1u64 << entry.failures.min(16).saturating_sub(1));
                entry.next = now + backoff.min(config.min_refresh);
            }
        }
        if Self::expire_one(entry, config, now) {
            *version += 1;
        }
    }

    /// Forgets addresses last answered more than `max_stale` ago; true
    /// when something was forgotten.
    pub fn expire(&self, config: &ResolverConfig, now: Instant) -> bool {
        let mut state = self.state();
        let State { targets, version } = &mut *state;
        let mut changed = false;
        for (target, entry) in targets.iter_mut() {
            if Self::expire_one(entry, config, now) {
                tracing::warn!(
                    target = %target,
                    "an alias target has had no answer for max_stale; its pool has no addresses now"
                );
                changed = true;
            }
        }
        if changed {
            *version += 1;
        }
        changed
    }

    fn expire_one(entry: &mut Target, config: &ResolverConfig, now: Instant) -> bool {
        let stale = entry
            .answered
            .is_some_and(|(at, _)| now.saturating_duration_since(at) > config.max_stale);
        if stale && entry.addresses.is_some() && entry.failures > 0 {
            entry.addresses = None;
            return true;
        }
        false
    }

    /// The version of what [`Aliases::snapshot`] returns.
    pub fn version(&self) -> u64 {
        self.state().version
    }

    /// The known addresses of every target, for a compile, and their
    /// version.
    pub fn snapshot(&self) -> (AliasAddresses, u64) {
        let state = self.state();
        let targets = state
            .targets
            .iter()
            .filter_map(|(name, target)| {
                target
                    .addresses
                    .as_ref()
                    .map(|addresses| (name.clone(), Arc::clone(addresses)))
            })
            .collect();
        (AliasAddresses { targets }, state.version)
    }

    /// Every target's state, sorted by name, for `/status`.
    pub fn status(&self, now: Instant) -> Vec<TargetStatus> {
        let state = self.state();
        let mut targets: Vec<TargetStatus> = state
            .targets
            .iter()
            .map(|(name, target)| {
                let addresses = target
                    .addresses
                    .as_ref()
                    .map_or_else(Vec::new, |addresses| {
                        addresses
                            .v4
                            .iter()
                            .map(ToString::to_string)
                            .chain(addresses.v6.iter().map(ToString::to_string))
                            .collect()
                    });
                TargetStatus {
                    target: name.to_string(),
                    resolved: target.addresses.is_some(),
                    addresses,
                    answered_at: target.answered.map(|(_, at)| crate::unix_seconds(at)),
                    ttl: target.ttl,
                    server: target.server.map(|server| server.to_string()),
                    next_in_seconds: target.next.saturating_duration_since(now).as_secs(),
                    failures: target.failures,
                    last_error: target.last_error.clone(),
                    answers_total: target.answers_total,
                    failures_total: target.failures_total,
                }
            })
            .collect();
        targets.sort_by(|left, right| left.target.cmp(&right.target));
        targets
    }
}

/// Resolves each of `targets` once, all at the same time, and records the
/// results.
pub async fn resolve_all(aliases: &Aliases, targets: &[Name], config: &ResolverConfig) {
    let mut resolutions = tokio::task::JoinSet::new();
    for target in targets {
        let target = target.clone();
        let config = config.clone();
        resolutions.spawn(async move {
            let result = resolve::resolve(&target, &config).await;
            (target, result)
        });
    }
    while let Some(joined) = resolutions.join_next().await {
        match joined {
            Ok((target, result)) => aliases.record(&target, result, config, Instant::now()),
            Err(error) => tracing::error!("an alias resolution failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).expect("name")
    }

    fn answer(v4: &[[u8; 4]], ttl: u32) -> Result<Answer, String> {
        Ok(Answer {
            v4: v4.iter().map(|octets| Ipv4Addr::from(*octets)).collect(),
            v6: Vec::new(),
            ttl,
            server: "127.0.0.53:53".parse().expect("address"),
        })
    }

    fn config() -> ResolverConfig {
        ResolverConfig {
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3_600),
            max_stale: Duration::from_secs(600),
            ..ResolverConfig::default()
        }
    }

    #[test]
    fn answers_change_the_version_only_when_the_addresses_change() {
        let aliases = Aliases::default();
        let lb = name("lb.example.net.");
        let start = Instant::now();
        aliases.track(std::slice::from_ref(&lb), start);
        assert_eq!(aliases.due(start), vec![lb.clone()]);
        assert_eq!(aliases.untried(std::slice::from_ref(&lb)), vec![lb.clone()]);
        assert_eq!(aliases.version(), 0);
        assert!(aliases.snapshot().0.get(&lb).is_none());

        aliases.record(&lb, answer(&[[192, 0, 2, 1]], 5), &config(), start);
        assert_eq!(aliases.version(), 1);
        assert!(aliases.untried(std::slice::from_ref(&lb)).is_empty());
        let (snapshot, version) = aliases.snapshot();
        assert_eq!(version, 1);
        assert_eq!(
            snapshot.get(&lb).expect("resolved").v4,
            vec![Ipv4Addr::new(192, 0, 2, 1)]
        );
        // A TTL of 5 s waits min_refresh; one of a day waits max_refresh.
        assert_eq!(aliases.next_due(), Some(start + Duration::from_secs(30)));
        aliases.record(&lb, answer(&[[192, 0, 2, 1]], 86_400), &config(), start);
        assert_eq!(aliases.version(), 1, "same addresses, same version");
        assert_eq!(aliases.next_due(), Some(start + Duration::from_secs(3_600)));
        aliases.record(&lb, answer(&[[192, 0, 2, 2]], 60), &config(), start);
        assert_eq!(aliases.version(), 2);
        assert_eq!(aliases.next_due(), Some(start + Duration::from_secs(60)));
    }

    #[test]
    fn failures_back_off_and_keep_the_addresses_until_max_stale() {
        let aliases = Aliases::default();
        let lb = name("lb.example.net.");
        let start = Instant::now();
        aliases.track(std::slice::from_ref(&lb), start);
        aliases.record(&lb, answer(&[[192, 0, 2, 1]], 60), &config(), start);
        let failure = || Err("127.0.0.53:53: A: Server Failure".to_owned());
        let mut now = start + Duration::from_secs(60);
        for expected_wait in [1, 2, 4, 8, 16, 30, 30] {
            aliases.record(&lb, failure(), &config(), now);
            assert_eq!(
                aliases.next_due(),
                Some(now + Duration::from_secs(expected_wait))
            );
            now += Duration::from_secs(expected_wait);
        }
        // Still within max_stale (600 s) of the last answer.
        assert!(!aliases.expire(&config(), start + Duration::from_secs(600)));
        assert!(aliases.snapshot().0.get(&lb).is_some());
        let status = aliases.status(now);
        assert_eq!(status[0].failures, 7);
        assert_eq!(status[0].failures_total, 7);
        assert_eq!(status[0].answers_total, 1);
        assert!(status[0].resolved);
        // Past it: forgotten, and the version says so.
        let version = aliases.version();
        assert!(aliases.expire(&config(), start + Duration::from_secs(601)));
        assert_eq!(aliases.version(), version + 1);
        assert!(aliases.snapshot().0.get(&lb).is_none());
        assert!(!aliases.status(now)[0].resolved);
    }

    #[test]
    fn retain_forgets_targets_no_pool_names() {
        let aliases = Aliases::default();
        let (kept, gone) = (name("a.example.net."), name("b.example.net."));
        let start = Instant::now();
        aliases.track(&[kept.clone(), gone.clone()], start);
        aliases.record(&gone, answer(&[[192, 0, 2, 9]], 60), &config(), start);
        aliases.retain(std::slice::from_ref(&kept));
        let status = aliases.status(start);
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].target, "a.example.net.");
        // A result for a forgotten target (a resolution in flight) is dropped.
        aliases.record(&gone, answer(&[[192, 0, 2, 9]], 60), &config(), start);
        assert_eq!(aliases.status(start).len(), 1);
    }
}
