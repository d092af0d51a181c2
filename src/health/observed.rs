//! What probes say about one target, with hysteresis (control plane).
//!
//! A target starts `Unknown`, which counts as up, so that no answer ever
//! changes because probes have not run yet. Its first result decides at
//! once: the first probe round runs before the first table is published,
//! and an endpoint that is dead at start should not be served until `fall`
//! more probes have failed. After that, an up target goes down only after
//! `fall` failures in a row and a down target comes back only after `rise`
//! successes in a row, so a target that flaps faster than that does not
//! flip answers. The state machine takes the time as an argument; it keeps
//! no clock of its own and is tested without one. The time is tokio's, so
//! the probe runner's tests can pause it.

use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

/// The observed state of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// No result yet; counts as up.
    Unknown,
    /// Probes pass.
    Up,
    /// Probes fail.
    Down,
}

impl Observed {
    /// `up`, `down` or `unknown`, as logs and metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A change of observed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The state before.
    pub from: Observed,
    /// The state now (`Up` or `Down`).
    pub to: Observed,
    /// When the first result of the run that caused it arrived: for a
    /// target going down, the first failed probe. The failover time is
    /// measured from here to the moment answers change.
    pub run_started: Instant,
}

/// One target's observed state and counters.
#[derive(Clone, Debug)]
pub struct TargetHealth {
    observed: Observed,
    since: Instant,
    /// Results in a row that disagree with `observed`.
    run: u32,
    run_started: Instant,
}

impl TargetHealth {
    /// A target not yet probed, as of `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            observed: Observed::Unknown,
            since: now,
            run: 0,
            run_started: now,
        }
    }

    /// The observed state.
    pub fn observed(&self) -> Observed {
        self.observed
    }

    /// When the observed state last changed (or the target was added).
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Takes one probe result that arrived at `now`; returns the change it
    /// caused, if any.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32, now: Instant) -> Option<Change> {
        let agrees = matches!(
            (self.observed, ok),
            (Observed::Up, true) | (Observed::Down, false)
        );
        if agrees {
            self.run = 0;
            return None;
        }
        if self.run == 0 {
            self.run_started = now;
        }
        self.run += 1;
        let needed = match self.observed {
            Observed::Unknown => 1,
            Observed::Up => fall,
            Observed::Down => rise,
        };
        if self.run < needed.max(1) {
            return None;
        }
        let change = Change {
            from: self.observed,
            to: if ok { Observed::Up } else { Observed::Down },
            run_started: self.run_started,
        };
        self.observed = change.to;
        self.since = now;
        self.run = 0;
        Some(change)
    }

    /// How long after `change` began `now` is: the failover time when the
    /// answers changed at `now`.
    pub fn elapsed_since(change: &Change, now: Instant) -> Duration {
        now.saturating_duration_since(change.run_started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RISE: u32 = 2;
    const FALL: u32 = 3;

    fn feed(target: &mut TargetHealth, results: &[bool], start: Instant) -> Vec<(usize, Change)> {
        results
            .iter()
            .enumerate()
            .filter_map(|(index, &ok)| {
                let now = start + Duration::from_secs(index as u64);
                target
                    .record(ok, RISE, FALL, now)
                    .map(|change| (index, change))
            })
            .collect()
    }

    #[test]
    fn the_first_result_decides_an_unknown_target() {
        let start = Instant::now();
        let mut up = TargetHealth::new(start);
        assert_eq!(up.observed(), Observed::Unknown);
        let changes = feed(&mut up, &[true], start);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1.from, Observed::Unknown);
        assert_eq!(up.observed(), Observed::Up);

        let mut down = TargetHealth::new(start);
        feed(&mut down, &[false], start);
        assert_eq!(down.observed(), Observed::Down);
    }

    #[test]
    fn fall_failures_in_a_row_take_it_down_and_rise_successes_bring_it_back() {
        let start = Instant::now();
        let mut target = TargetHealth::new(start);
        // up, then three failures: down at the third (index 3), measured
        // from the first failure (index 1).
        let changes = feed(&mut target, &[true, false, false, false], start);
        assert_eq!(changes.len(), 2);
        let (index, down) = changes[1];
        assert_eq!(index, 3);
        assert_eq!(down.to, Observed::Down);
        assert_eq!(down.run_started, start + Duration::from_secs(1));
        assert_eq!(target.since(), start + Duration::from_secs(3));
        let now = start + Duration::from_secs(3) + Duration::from_millis(200);
        assert_eq!(
            TargetHealth::elapsed_since(&down, now),
            Duration::from_millis(2_200)
        );
        // Two successes bring it back.
        let later = start + Duration::from_secs(10);
        assert_eq!(target.record(true, RISE, FALL, later), None);
        let up = target
            .record(true, RISE, FALL, later + Duration::from_secs(1))
            .expect("up after rise");
        assert_eq!((up.from, up.to), (Observed::Down, Observed::Up));
    }

    #[test]
    fn a_flapping_target_never_changes_state() {
        let start = Instant::now();
        let mut target = TargetHealth::new(start);
        feed(&mut target, &[true], start);
        // Fails twice, recovers, fails twice...: never three in a row.
        let flapping: Vec<bool> = (0..60).map(|index| index % 3 == 2).collect();
        let changes = feed(&mut target, &flapping, start + Duration::from_secs(1));
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(target.observed(), Observed::Up);

        // Down, then a success between failures: never two successes in a row.
        feed(&mut target, &[false, false, false], start);
        assert_eq!(target.observed(), Observed::Down);
        let flapping: Vec<bool> = (0..60).map(|index| index % 2 == 0).collect();
        assert!(feed(&mut target, &flapping, start).is_empty());
        assert_eq!(target.observed(), Observed::Down);
    }
}
