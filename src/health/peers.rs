//! Health views shared between nodes, and the quorum that combines them
//! (control plane).
//!
//! Every node publishes what its own probes say about each target at
//! `GET /health/view` on its admin API: a [`View`]. A node that lists
//! peers in `[peers]` fetches their views on an interval, and each
//! target's verdict, the state answers follow, becomes a vote among the
//! vantage points: this node and every peer whose view is fresh. One node
//! whose network to an endpoint breaks then no longer takes that endpoint
//! out of every answer it gives, and all nodes that see the same views
//! reach the same verdict, as Route 53's health checkers do from several
//! regions.
//!
//! A view carries only the node's own probe results, never its verdict:
//! verdicts that fed back into other nodes' views would let one node's
//! opinion count several times and keep a target down after every probe
//! saw it come back. A peer that has no result for a target, or whose view
//! is stale, does not vote on it. When no vantage point has a result the
//! target is `Unknown`, which counts as up, as it does without peers.
//!
//! Nothing here is on the query path: votes are counted when a probe result
//! or a peer's view arrives, and the verdict reaches the table the way a
//! probe result always has.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::observed::Observed;
use crate::config::steering::Quorum;

/// Where a node publishes its view on its admin API.
pub const VIEW_PATH: &str = "/health/view";

/// What one node's probes say, as it publishes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// The node's `health.node`.
    pub node: String,
    /// The serving run's id (its latency journal's epoch): how a node
    /// recognizes itself, or one peer listed under two URLs.
    #[serde(default)]
    pub instance: String,
    /// With `peers.share_admin`: the node's drains and overrides, each with
    /// when and where it was set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin: Vec<super::SharedSetting>,
    /// Every target it probes.
    pub targets: Vec<ViewTarget>,
}

/// One target in a [`View`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewTarget {
    /// The probe's id in the shared config.
    pub probe: String,
    /// Address and port probed.
    pub target: SocketAddr,
    /// The node's own probes' state of it (after their rise and fall).
    pub observed: Observed,
}

/// The votes on one target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Votes {
    /// Vantage points whose probes say up.
    pub up: u32,
    /// Vantage points whose probes say down.
    pub down: u32,
}

impl Votes {
    /// Adds one vantage point's state; `Unknown` is no vote.
    pub fn add(&mut self, observed: Observed) {
        match observed {
            Observed::Up => self.up += 1,
            Observed::Down => self.down += 1,
            Observed::Unknown => {}
        }
    }

    /// The verdict under `quorum`: `Unknown` when nobody voted, `Down` when
    /// the quorum is met, `Up` otherwise. A tie under `Majority` is up:
    /// taking an endpoint out of the answers needs more than half.
    pub fn verdict(self, quorum: Quorum) -> Observed {
        if self.up + self.down == 0 {
            return Observed::Unknown;
        }
        let down = match quorum {
            Quorum::Majority => self.down > self.up,
            Quorum::AtLeast(count) => self.down >= count,
        };
        if down { Observed::Down } else { Observed::Up }
    }
}

/// Fetches one peer's view; the error is one line for logs and `/status`.
pub async fn fetch(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<View, String> {
    crate::peers::fetch_json(client, &format!("{base}{VIEW_PATH}"), token, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(up: u32, down: u32) -> Votes {
        Votes { up, down }
    }

    #[test]
    fn a_majority_takes_more_than_half_of_the_votes_cast() {
        assert_eq!(votes(0, 0).verdict(Quorum::Majority), Observed::Unknown);
        assert_eq!(votes(0, 1).verdict(Quorum::Majority), Observed::Down);
        assert_eq!(
            votes(1, 1).verdict(Quorum::Majority),
            Observed::Up,
            "a tie serves"
        );
        assert_eq!(votes(1, 2).verdict(Quorum::Majority), Observed::Down);
        assert_eq!(votes(2, 1).verdict(Quorum::Majority), Observed::Up);
    }

    #[test]
    fn a_count_needs_that_many_down_votes_whoever_else_voted() {
        assert_eq!(votes(0, 1).verdict(Quorum::AtLeast(2)), Observed::Up);
        assert_eq!(votes(0, 2).verdict(Quorum::AtLeast(2)), Observed::Down);
        assert_eq!(votes(5, 2).verdict(Quorum::AtLeast(2)), Observed::Down);
        assert_eq!(votes(3, 0).verdict(Quorum::AtLeast(1)), Observed::Up);
        assert_eq!(votes(0, 0).verdict(Quorum::AtLeast(1)), Observed::Unknown);
    }

    #[test]
    fn unknown_is_no_vote() {
        let mut tally = Votes::default();
        for observed in [Observed::Unknown, Observed::Down, Observed::Unknown] {
            tally.add(observed);
        }
        assert_eq!(tally, votes(0, 1));
    }

    #[test]
    fn a_view_reads_back_as_written() {
        let view = View {
            node: "fra-1".to_owned(),
            instance: "5eed".to_owned(),
            admin: Vec::new(),
            targets: vec![ViewTarget {
                probe: "web".to_owned(),
                target: "192.0.2.10:80".parse().expect("address"),
                observed: Observed::Down,
            }],
        };
        let text = serde_json::to_string(&view).expect("json");
        assert_eq!(
            text,
            r#"{"node":"fra-1","instance":"5eed","targets":[{"probe":"web","target":"192.0.2.10:80","observed":"down"}]}"#
        );
        assert_eq!(serde_json::from_str::<View>(&text).expect("read"), view);
        // A newer node may add fields; they are ignored.
        let newer = r#"{"node":"x","version":2,"targets":[{"probe":"p","target":"[::1]:80","observed":"up","since":1}]}"#;
        assert_eq!(
            serde_json::from_str::<View>(newer)
                .expect("read")
                .targets
                .len(),
            1
        );
    }
}
