//! Fetching the peers' latency journals into this node's model (control
//! plane).
//!
//! Every `peers.interval`, this node asks each peer of `[peers]` for the
//! samples posted to it since the last fetch ([`super::journal`]), page by
//! page until it has caught up (at most [`MAX_PAGES`] pages a round, so
//! one busy peer cannot hold the round), and records them as if they had
//! been posted here, with the time they were measured. Every node then
//! builds its model from the same samples, and gives the same answers
//! whichever node a beacon reached. Samples arrive at each node in a
//! different order, so the moving averages can differ in their last
//! digits; the latency step's margin keeps such differences from moving
//! any answer.
//!
//! Samples fetched from a peer are checked like posted ones (a site this
//! node's config does not have is rejected) and counted per peer, apart
//! from the posted ones: accepted, rejected, and missed (samples the peer
//! had already dropped from its journal when this node asked, after an
//! outage longer than the journal holds). A peer that restarted has a new
//! epoch, and its journal is read again from its oldest sample.
//!
//! The epoch also names the node: a URL whose journal has this node's own
//! epoch is this node (a config shared by the whole fleet lists every
//! node, this one included), and two URLs with one epoch are one node. Such
//! a feed is checked every round (for where the journal stands, without
//! its samples) but nothing from it is recorded, so no sample counts twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use super::engine::{LatencyEngine, PostedBatch, PostedSample};
use super::journal::{JOURNAL_PATH, JournalSample, Page};
use crate::config::steering::Peers;
use crate::control::Control;
use crate::{lock, unix_now, unix_seconds};

/// Most journal pages fetched from one peer in one round.
pub const MAX_PAGES: usize = 16;

/// How often a node without `[peers]` checks whether a reload added some.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// One peer's feed, as `/status` and `/metrics` show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FeedStatus {
    /// The peer's URL, as `peers.urls` lists it.
    pub url: String,
    /// Samples taken into the model.
    pub accepted: u64,
    /// Samples refused (a site this node does not have, too old, ...).
    pub rejected: u64,
    /// Samples the peer no longer had when this node asked.
    pub missed: u64,
    /// Fetches that succeeded.
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// When the journal was last read (Unix seconds).
    pub last_fetch: Option<f64>,
    /// The error of the last fetch, when it failed.
    pub last_error: Option<String>,
    /// Why nothing is read from it: `this node itself`, or `the same node
    /// as URL`.
    pub ignored: Option<String>,
}

/// Where this node is in one peer's journal.
#[derive(Clone, Debug, Default)]
struct Feed {
    status: FeedStatus,
    /// The peer's epoch the cursor belongs to.
    epoch: Option<String>,
    /// The next sequence number to ask for.
    next: u64,
}

/// The feeds of every peer. See the module docs.
#[derive(Default)]
pub struct LatencySharing {
    feeds: Mutex<Vec<Feed>>,
}

/// What one round brought from one peer.
#[derive(Default)]
struct Pulled {
    epoch: Option<String>,
    next: u64,
    accepted: u64,
    rejected: u64,
    missed: u64,
    fetches: u64,
    error: Option<String>,
    ignored: Option<String>,
}

impl Pulled {
    fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// The HTTP client for the peers, or why there is none.
type PeerClient = Result<reqwest::Client, String>;

/// Fetches the peers' journals forever (see the module docs); the peers
/// are re-read from the served configuration every round.
pub async fn run(control: Arc<Control>) {
    let sharing = Arc::clone(control.latency_sharing());
    let engine = Arc::clone(control.latency());
    let node = control.config().steering.health.node.clone();
    // Made again only when `peers.ca_file` changes.
    let mut client: Option<(Option<Vec<u8>>, PeerClient)> = None;
    let own = engine.journal().epoch().to_owned();
    loop {
        let started = Instant::now();
        let steering = control.steering();
        let Some(peers) = steering.peers.as_ref() else {
            sharing.keep(&[]);
            tokio::time::sleep(IDLE_CHECK).await;
            continue;
        };
        sharing.keep(&peers.urls);
        if client.as_ref().is_none_or(|(ca, _)| *ca != peers.ca) {
            let made = crate::peers::client(&node, peers.ca.as_deref());
            client = Some((peers.ca.clone(), made));
        }
        match client.as_ref().map(|(_, made)| made) {
            Some(Ok(made)) => sharing.round(made, &engine, peers, &own).await,
            Some(Err(error)) => sharing.fail_all(error),
            None => {}
        }
        tokio::time::sleep_until(started + peers.interval).await;
    }
}

impl LatencySharing {
    /// Every peer's feed, in the configured order.
    pub fn statuses(&self) -> Vec<FeedStatus> {
        lock(&self.feeds)
            .iter()
            .map(|feed| feed.status.clone())
            .collect()
    }

    /// Keeps a feed for exactly `urls`, in their order; a peer still
    /// listed keeps its cursor and counts.
    fn keep(&self, urls: &[String]) {
        let mut feeds = lock(&self.feeds);
        if feeds.len() == urls.len()
            && feeds
                .iter()
                .zip(urls)
                .all(|(feed, url)| feed.status.url == *url)
        {
            return;
        }
        let mut old = std::mem::take(&mut *feeds);
        *feeds = urls
            .iter()
            .map(
                |url| match old.iter().position(|feed| feed.status.url == *url) {
                    Some(index) => old.swap_remove(index),
                    None => Feed {
                        status: FeedStatus {
                            url: url.clone(),
                            ..FeedStatus::default()
                        },
                        ..Feed::default()
                    },
                },
            )
            .collect();
    }

    fn fail_all(&self, error: &str) {
        for feed in lock(&self.feeds).iter_mut() {
            feed.status.failures += 1;
            feed.status.last_error = Some(error.to_owned());
        }
    }

    /// Reads every peer's journal at once, and records what came.
    async fn round(
        &self,
        client: &reqwest::Client,
        engine: &Arc<LatencyEngine>,
        peers: &Peers,
        own: &str,
    ) {
        let reader = Arc::new(Reader {
            client: client.clone(),
            engine: Arc::clone(engine),
            token: peers.token.as_ref().map(|token| token.expose().to_owned()),
            timeout: peers.fetch_timeout(),
        });
        let cursors: Vec<(String, Option<String>, u64)> = lock(&self.feeds)
            .iter()
            .map(|feed| (feed.status.url.clone(), feed.epoch.clone(), feed.next))
            .collect();

        // Where the journals not known yet stand, all at once: their epochs
        // say which node each URL reaches before any sample is fetched.
        let mut discoveries = JoinSet::new();
        for (index, (url, epoch, _)) in cursors.iter().enumerate() {
            if epoch.is_none() {
                let (reader, url) = (Arc::clone(&reader), url.clone());
                discoveries.spawn(async move { (index, reader.discover(&url).await) });
            }
        }
        let mut found: Vec<Option<Result<(String, u64), String>>> = vec![None; cursors.len()];
        while let Some(joined) = discoveries.join_next().await {
            if let Ok((index, result)) = joined {
                found[index] = Some(result);
            }
        }

        // Who is whom, in the order listed: this node is not read, and a
        // node listed twice is read through its first URL only.
        let mut readers: Vec<(&str, &str)> = Vec::new();
        let mut pulls = JoinSet::new();
        let mut outcomes: Vec<(String, Pulled)> = Vec::new();
        for (index, (url, epoch, next)) in cursors.iter().enumerate() {
            let discovered = u64::from(epoch.is_none() && matches!(found[index], Some(Ok(_))));
            let (epoch, next) = match (epoch, &found[index]) {
                (Some(epoch), _) => (epoch.as_str(), *next),
                (None, Some(Ok((epoch, from)))) => (epoch.as_str(), *from),
                (None, Some(Err(error))) => {
                    outcomes.push((url.clone(), Pulled::failed(error.clone())));
                    continue;
                }
                (None, None) => {
                    let error = "the fetch did not finish".to_owned();
                    outcomes.push((url.clone(), Pulled::failed(error)));
                    continue;
                }
            };
            let ignored = if epoch == own {
                Some("this node itself".to_owned())
            } else {
                readers
                    .iter()
                    .find(|(known, _)| *known == epoch)
                    .map(|(_, first)| format!("the same node as {first}"))
            };
            if let Some(ignored) = ignored {
                // Its samples are here already, or come through the first
                // URL: no cursor kept, nothing recorded.
                let pulled = Pulled {
                    fetches: discovered,
                    ignored: Some(ignored),
                    ..Pulled::default()
                };
                outcomes.push((url.clone(), pulled));
                continue;
            }
            readers.push((epoch, url));
            let (reader, url, epoch) = (Arc::clone(&reader), url.clone(), epoch.to_owned());
            pulls.spawn(async move {
                let mut pulled = reader.pull(&url, epoch, next).await;
                pulled.fetches += discovered;
                (url, pulled)
            });
        }
        while let Some(joined) = pulls.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
        let mut feeds = lock(&self.feeds);
        for (url, pulled) in outcomes {
            // Only this task changes the list, but match by URL anyway.
            if let Some(feed) = feeds.iter_mut().find(|feed| feed.status.url == url) {
                apply(feed, pulled);
            }
        }
    }
}

fn apply(feed: &mut Feed, pulled: Pulled) {
    let status = &mut feed.status;
    status.accepted += pulled.accepted;
    status.rejected += pulled.rejected;
    if pulled.missed > 0 {
        warn!(
            peer = %status.url, missed = pulled.missed,
            "the peer's latency journal no longer held samples this node had not read"
        );
    }
    status.missed += pulled.missed;
    status.fetches += pulled.fetches;
    if pulled.fetches > 0 {
        status.last_fetch = Some(unix_seconds(SystemTime::now()));
    }
    if pulled.ignored != status.ignored {
        if let Some(reason) = &pulled.ignored {
            info!(peer = %status.url, "this peer is {reason}; its latency journal is not read");
        }
        status.ignored = pulled.ignored;
    }
    match pulled.error {
        Some(error) => {
            if status.last_error.as_ref() != Some(&error) {
                warn!(peer = %status.url, "cannot fetch the peer's latency journal: {error}");
            }
            status.failures += 1;
            status.last_error = Some(error);
        }
        None => status.last_error = None,
    }
    feed.epoch = pulled.epoch;
    feed.next = pulled.next;
}

/// What one peer's reading needs.
struct Reader {
    client: reqwest::Client,
    engine: Arc<LatencyEngine>,
    token: Option<String>,
    timeout: Duration,
}

impl Reader {
    /// The epoch of `base`'s journal and its oldest sequence number,
    /// without any sample.
    async fn discover(&self, base: &str) -> Result<(String, u64), String> {
        let url = format!("{base}{JOURNAL_PATH}?limit=0");
        let page: Page =
            crate::peers::fetch_json(&self.client, &url, self.token.as_deref(), self.timeout)
                .await?;
        Ok((page.epoch, page.from))
    }

    /// Reads `base`'s journal from `next` (of `epoch`) until caught up, at
    /// most [`MAX_PAGES`] pages, recording each page as it comes.
    async fn pull(&self, base: &str, epoch: String, next: u64) -> Pulled {
        let mut pulled = Pulled {
            epoch: Some(epoch),
            next,
            ..Pulled::default()
        };
        for _ in 0..MAX_PAGES {
            let mut url = format!("{base}{JOURNAL_PATH}?from={}", pulled.next);
            if let Some(epoch) = &pulled.epoch {
                url.push_str("&epoch=");
                url.push_str(epoch);
            }
            let fetched =
                crate::peers::fetch_json(&self.client, &url, self.token.as_deref(), self.timeout);
            let page: Page = match fetched.await {
                Ok(page) => page,
                Err(error) => {
                    pulled.error = Some(error);
                    break;
                }
            };
            pulled.fetches += 1;
            if pulled
                .epoch
                .as_ref()
                .is_some_and(|epoch| *epoch != page.epoch)
            {
                info!(peer = %base, "the peer restarted; reading its latency journal from its oldest sample");
            }
            pulled.missed += page.missed;
            let more = page.more;
            pulled.epoch = Some(page.epoch);
            pulled.next = page.next;
            if !page.samples.is_empty() {
                match self.record(page.samples).await {
                    Ok((accepted, rejected)) => {
                        pulled.accepted += accepted;
                        pulled.rejected += rejected;
                    }
                    Err(error) => {
                        pulled.error = Some(error);
                        break;
                    }
                }
            }
            if !more {
                break;
            }
        }
        pulled
    }

    /// Records one page's samples; returns how many were accepted and
    /// rejected.
    async fn record(&self, samples: Vec<JournalSample>) -> Result<(u64, u64), String> {
        let batch = PostedBatch {
            samples: samples
                .into_iter()
                .map(|sample| PostedSample {
                    client: sample.client,
                    site: sample.site,
                    rtt_ms: sample.rtt_ms,
                    timestamp: Some(sample.timestamp),
                })
                .collect(),
        };
        let engine = Arc::clone(&self.engine);
        // A page holds the model for a while: off the async threads.
        tokio::task::spawn_blocking(move || engine.ingest_from_peer(&batch, unix_now()))
            .await
            .map(|report| (report.accepted as u64, report.rejected.len() as u64))
            .map_err(|join_error| format!("recording the samples failed: {join_error}"))
    }
}
