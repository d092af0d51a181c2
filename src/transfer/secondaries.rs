//! Keeping secondary zones current: one task per zone, SOA timers, NOTIFY.
//!
//! Each `[[secondary.zone]]` gets a task that asks its primaries for the SOA
//! serial every `refresh` seconds of the zone's SOA (every `retry` after a
//! failure, RFC 1035 §4.3.5), and at once when a primary sends NOTIFY (RFC
//! 1996). A newer serial (RFC 1982 arithmetic) is transferred with AXFR,
//! checked as a zone file is, written to the secondary directory (a new file
//! renamed over the old, so a crash never leaves half a zone) and published
//! by a reload. A serial that is current touches the file: its modification
//! time is when the primary last vouched for the data, and a zone not
//! vouched for within its SOA `expire` is no longer served, after a restart
//! too.
//!
//! Control plane only. The data plane's share is [`Trigger::fire`], called
//! for an accepted NOTIFY: one atomic swap, and a wake-up the first time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::client::{self, Transferred};
use super::tsig::TsigKey;
use crate::config::secondary::{SecondaryConfig, SecondaryZone};
use crate::lock;
use crate::zone::{self, Zone, ZoneError};

/// How long one SOA query or one read of a transfer may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a whole transfer may take: a primary that sends a byte every
/// few seconds must not hold a zone's task for ever. A zone of a million
/// records takes about a second on loopback.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(600);

/// Waits before a zone's first transfer is tried again, doubling from
/// [`FIRST_RETRY`] to [`LONGEST_RETRY`]: a zone never transferred has no
/// SOA to take timers from.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// See [`FIRST_RETRY`].
const LONGEST_RETRY: Duration = Duration::from_secs(300);

/// Bounds on the SOA timers as used: a primary's SOA saying `refresh 0`
/// must not make a busy loop, and one saying a year must not stop checks.
const SHORTEST_TIMER: Duration = Duration::from_secs(1);
/// See [`SHORTEST_TIMER`].
const LONGEST_TIMER: Duration = Duration::from_secs(86_400);

/// Wakes a zone's task: set by an accepted NOTIFY.
#[derive(Debug, Default)]
pub struct Trigger {
    pending: AtomicBool,
    wake: Notify,
    /// Times fired, for `/status`.
    fired: AtomicU64,
}

impl Trigger {
    /// Asks for a check of the zone's serial now. A flood of NOTIFY costs
    /// two atomic operations each: only the first wakes the task.
    pub fn fire(&self) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        self.fire_quietly();
    }

    /// [`Trigger::fire`] without counting a NOTIFY.
    fn fire_quietly(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Waits for [`Trigger::fire`] (returns at once if it fired meanwhile).
    async fn fired(&self) {
        loop {
            if self.pending.swap(false, Ordering::AcqRel) {
                return;
            }
            self.wake.notified().await;
        }
    }
}

/// A secondary zone as the data plane sees it: who may send NOTIFY.
#[derive(Debug)]
pub struct NotifyTarget {
    /// The zone's apex.
    pub zone: Name,
    /// The apex in wire form, lower case, to compare with a question.
    pub zone_wire: Vec<u8>,
    /// The primaries' addresses; NOTIFY from anywhere else is refused.
    pub primaries: Vec<IpAddr>,
    /// When set, NOTIFY must be signed with this key.
    pub key: Option<Arc<TsigKey>>,
    /// Wakes the zone's task.
    pub trigger: Arc<Trigger>,
}

/// The secondary zones NOTIFY may name, published with each table.
#[derive(Debug, Default)]
pub struct NotifyTargets {
    targets: Vec<NotifyTarget>,
}

impl NotifyTargets {
    /// Every target.
    pub fn iter(&self) -> impl Iterator<Item = &NotifyTarget> {
        self.targets.iter()
    }

    /// Whether no zone is a secondary.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// What `/status` shows for one secondary zone.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SecondaryStatus {
    /// The zone.
    pub zone: String,
    /// `waiting` (never transferred), `current`, `stale` (the last check
    /// failed; still served) or `expired` (not served).
    pub state: &'static str,
    /// Serial of the copy kept, when there is one.
    pub serial: Option<u32>,
    /// When the primaries were last asked (Unix seconds).
    pub last_check: Option<u64>,
    /// When the zone was last transferred (Unix seconds).
    pub last_transfer: Option<u64>,
    /// How it came: `AXFR`, `IXFR` (the changes since the copy kept) or
    /// `IXFR (whole zone)`.
    pub last_transfer_type: Option<&'static str>,
    /// The primary the last transfer came from.
    pub last_primary: Option<String>,
    /// Records, messages and seconds of the last transfer.
    pub last_transfer_records: Option<usize>,
    /// Seconds the last transfer took, checks and writing included.
    pub last_transfer_seconds: Option<f64>,
    /// When the primaries will next be asked (Unix seconds).
    pub next_check: Option<u64>,
    /// When the kept copy expires unless a primary vouches for it (Unix seconds).
    pub expires_at: Option<u64>,
    /// Why the last check failed, one line per primary.
    pub last_error: Option<String>,
    /// Transfers done and failed since the server started.
    pub transfers: u64,
    /// See `transfers`.
    pub transfer_failures: u64,
    /// NOTIFY messages accepted since the server started.
    pub notifies: u64,
    /// `"catalog"` for a catalog zone, `"member of NAME"` for one of its
    /// members, null for a zone of `steer.toml`.
    pub catalog: Option<String>,
}

/// One zone's task.
struct Entry {
    config: SecondaryZone,
    file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

/// All secondary zones: their tasks, triggers and status.
#[derive(Default)]
pub struct Secondaries {
    entries: Mutex<HashMap<Name, Entry>>,
    /// Per zone, made by whichever comes first: the table that accepts
    /// its NOTIFY or the task that waits for it.
    triggers: Mutex<HashMap<Name, Arc<Trigger>>>,
    status: Mutex<HashMap<Name, SecondaryStatus>>,
    /// Set when a transfer or an expiry needs a reload to be served.
    reload_wanted: Trigger,
    /// The `[secondary]` of the table last published, for [`Secondaries::start`].
    published: Mutex<Option<SecondaryConfig>>,
    /// The last NOTIFY sent to each secondary for each zone ([`super::outbound`]).
    notified: Mutex<HashMap<(Name, SocketAddr), NotifyOutStatus>>,
}

/// What `/status` shows of the NOTIFY sent to one secondary for one zone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotifyOutStatus {
    /// The zone.
    pub zone: String,
    /// The secondary told.
    pub secondary: String,
    /// The serial it was told of.
    pub serial: u32,
    /// When (Unix seconds).
    pub at: u64,
    /// Whether it acknowledged.
    pub acknowledged: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// NOTIFY acknowledged and not, since the server started.
    pub acknowledged_total: u64,
    /// See `acknowledged_total`.
    pub failed_total: u64,
}

impl Secondaries {
    /// Starts tasks for new zones, stops those of zones no longer
    /// configured, and restarts those whose primaries, key or directory
    /// changed. Called with every configuration that is served.
    pub fn sync(self: &Arc<Self>, config: Option<&SecondaryConfig>) {
        let wanted: Vec<(SecondaryZone, PathBuf)> = config
            .map(|config| {
                config
                    .zones
                    .iter()
                    .map(|zone| (zone.clone(), config.file_of(&zone.name)))
                    .collect()
            })
            .unwrap_or_default();
        let mut entries = lock(&self.entries);
        entries.retain(|name, entry| {
            let keep = wanted
                .iter()
                .any(|(zone, file)| zone == &entry.config && *file == entry.file);
            if !keep {
                entry.task.abort();
                lock(&self.status).remove(name);
            }
            keep
        });
        lock(&self.triggers).retain(|name, _| wanted.iter().any(|(zone, _)| zone.name == *name));
        for (zone, file) in wanted {
            if entries.contains_key(&zone.name) {
                continue;
            }
            let trigger = self.trigger_of(&zone.name);
            self.list(&zone);
            let task = tokio::spawn(Arc::clone(self).run_zone(zone.clone(), file.clone(), trigger));
            entries.insert(
                zone.name.clone(),
                Entry {
                    config: zone,
                    file,
                    task,
                },
            );
        }
    }

    /// Stops the transfer tasks of `zones`, whose kept state a catalog
    /// dropped: the next [`Secondaries::sync`] starts a reset zone's task
    /// again, without a copy (a fresh transfer), and a removed zone's not
    /// at all.
    pub fn forget(&self, zones: &[Name]) {
        let mut entries = lock(&self.entries);
        for zone in zones {
            if let Some(entry) = entries.remove(zone) {
                entry.task.abort();
                lock(&self.status).remove(zone);
            }
        }
    }

    /// Starts the tasks of the table last published (the first table is
    /// published before the runtime runs tasks).
    pub fn start(self: &Arc<Self>) {
        let published = lock(&self.published).clone();
        self.sync(published.as_ref());
    }

    /// The served secondary zones (catalogs aside) and their primaries, in
    /// order: where their dynamic updates are forwarded.
    pub fn primaries(&self) -> Vec<(Name, Vec<std::net::SocketAddr>)> {
        lock(&self.published)
            .as_ref()
            .map(|config| {
                config
                    .zones
                    .iter()
                    .filter(|zone| zone.kind != crate::config::secondary::ZoneKind::Catalog)
                    .map(|zone| (zone.name.clone(), zone.primaries.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The NOTIFY targets for a table compiled from `config`, about to be
    /// published: the tasks' triggers, so that a NOTIFY reaches the task
    /// whichever table is served.
    pub fn targets(&self, config: Option<&SecondaryConfig>) -> Arc<NotifyTargets> {
        lock(&self.published).clone_from(&config.cloned());
        let Some(config) = config else {
            return Arc::default();
        };
        // Listed from the first table on, before their tasks start.
        for zone in &config.zones {
            self.list(zone);
        }
        let targets = config
            .zones
            .iter()
            .map(|zone| {
                let trigger = self.trigger_of(&zone.name);
                NotifyTarget {
                    zone: zone.name.clone(),
                    zone_wire: super::outbound::wire_name(&zone.name),
                    primaries: zone.primaries.iter().map(SocketAddr::ip).collect(),
                    key: zone.key.as_ref().map(|key| Arc::clone(&key.key)),
                    trigger,
                }
            })
            .collect();
        Arc::new(NotifyTargets { targets })
    }

    /// Asks `zone`'s primaries for its serial now, as a NOTIFY would (an
    /// operator's refresh); false when `zone` is not a secondary zone.
    pub fn refresh(&self, zone: &Name) -> bool {
        if !lock(&self.entries).contains_key(zone) {
            return false;
        }
        self.trigger_of(zone).fire_quietly();
        true
    }

    /// Lists `zone` in the status, as waiting, unless it is listed.
    fn list(&self, zone: &SecondaryZone) {
        lock(&self.status)
            .entry(zone.name.clone())
            .or_insert_with(|| SecondaryStatus {
                zone: zone.name.to_string(),
                state: "waiting",
                catalog: catalog_role(&zone.kind),
                ..SecondaryStatus::default()
            });
    }

    /// Records how a NOTIFY to `secondary` about `zone` at `serial` went.
    pub fn record_notify_out(
        &self,
        zone: &Name,
        serial: u32,
        secondary: SocketAddr,
        result: Result<(), String>,
    ) {
        let mut notified = lock(&self.notified);
        let entry = notified
            .entry((zone.clone(), secondary))
            .or_insert_with(|| NotifyOutStatus {
                zone: zone.to_string(),
                secondary: secondary.to_string(),
                serial,
                at: 0,
                acknowledged: false,
                error: None,
                acknowledged_total: 0,
                failed_total: 0,
            });
        entry.serial = serial;
        entry.at = unix(SystemTime::now());
        entry.acknowledged = result.is_ok();
        match result {
            Ok(()) => {
                entry.acknowledged_total += 1;
                entry.error = None;
            }
            Err(error) => {
                entry.failed_total += 1;
                entry.error = Some(error);
            }
        }
    }

    /// The NOTIFY sent to secondaries, by zone and secondary.
    pub fn notify_out_status(&self) -> Vec<NotifyOutStatus> {
        let mut all: Vec<NotifyOutStatus> = lock(&self.notified).values().cloned().collect();
        all.sort_by(|a, b| (&a.zone, &a.secondary).cmp(&(&b.zone, &b.secondary)));
        all
    }

    /// The trigger of `zone`'s task, made on first use.
    fn trigger_of(&self, zone: &Name) -> Arc<Trigger> {
        Arc::clone(lock(&self.triggers).entry(zone.clone()).or_default())
    }

    /// Every zone's status, sorted by zone.
    pub fn status(&self) -> Vec<SecondaryStatus> {
        let triggers = lock(&self.triggers);
        let mut all: Vec<SecondaryStatus> = lock(&self.status)
            .iter()
            .map(|(name, status)| {
                let mut status = status.clone();
                status.notifies = triggers
                    .get(name)
                    .map_or(0, |trigger| trigger.fired.load(Ordering::Relaxed));
                status
            })
            .collect();
        all.sort_by(|a, b| a.zone.cmp(&b.zone));
        all
    }

    /// Waits until a transfer or an expiry needs a reload.
    pub async fn reload_wanted(&self) {
        self.reload_wanted.fired().await;
    }

    fn update(&self, zone: &Name, change: impl FnOnce(&mut SecondaryStatus)) {
        if let Some(status) = lock(&self.status).get_mut(zone) {
            change(status);
        }
    }

    /// One zone's life: check, transfer, wait; until aborted.
    async fn run_zone(self: Arc<Self>, zone: SecondaryZone, file: PathBuf, trigger: Arc<Trigger>) {
        let mut kept = stored_soa(&file, &zone.name).await;
        let mut first_retry = FIRST_RETRY;
        // Whether the table already left the expired copy out: a reload is
        // asked for once when it expires, not at every failed retry.
        let mut expiry_published = kept
            .as_ref()
            .is_some_and(|soa| soa.vouched + soa.expire <= SystemTime::now());
        loop {
            let now = SystemTime::now();
            // Expiry: counted from the last time a primary vouched for the copy.
            if let Some(kept_soa) = &kept {
                let expires = kept_soa.vouched + kept_soa.expire;
                self.update(&zone.name, |status| {
                    status.serial = Some(kept_soa.serial);
                    status.expires_at = Some(unix(expires));
                    if expires <= now {
                        status.state = "expired";
                    } else if status.state == "waiting" {
                        // A copy kept from before a restart, still good.
                        status.state = "current";
                    }
                });
            }
            let outcome = self.check(&zone, &file, kept.as_ref()).await;
            let wait = match outcome {
                Ok(Some(fresh)) => {
                    kept = Some(fresh);
                    expiry_published = false;
                    self.reload_wanted.fire();
                    first_retry = FIRST_RETRY;
                    kept.as_ref().map_or(FIRST_RETRY, |soa| soa.refresh)
                }
                Ok(None) => {
                    // Current: the primary vouched for the copy again.
                    if let Some(kept_soa) = &mut kept {
                        let was_expired = kept_soa.vouched + kept_soa.expire <= now;
                        kept_soa.vouched = SystemTime::now();
                        if let Err(error) = touch(&file) {
                            warn!(zone = %zone.name, file = %file.display(), "cannot mark the zone current: {error}");
                        }
                        if was_expired {
                            expiry_published = false;
                            self.reload_wanted.fire();
                        }
                    }
                    kept.as_ref().map_or(FIRST_RETRY, |soa| soa.refresh)
                }
                Err(()) => match &kept {
                    Some(kept_soa) => {
                        let expired = kept_soa.vouched + kept_soa.expire <= SystemTime::now();
                        self.update(&zone.name, |status| {
                            status.state = if expired { "expired" } else { "stale" };
                        });
                        if expired && !expiry_published {
                            // Dropped from the table at the next reload.
                            expiry_published = true;
                            self.reload_wanted.fire();
                        }
                        kept_soa.retry
                    }
                    None => {
                        let wait = first_retry;
                        first_retry = (first_retry * 2).min(LONGEST_RETRY);
                        wait
                    }
                },
            };
            self.update(&zone.name, |status| {
                status.next_check = Some(unix(SystemTime::now() + wait));
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = trigger.fired() => {
                    info!(zone = %zone.name, "NOTIFY: checking the primaries now");
                }
            }
        }
    }

    /// The zone as the changes since the copy in `file` (at `serial`)
    /// make it, by IXFR from `primary`; the whole zone when the primary
    /// answers IXFR with it. `None` (logged) when the primary has no
    /// usable changes: the caller transfers the whole zone.
    async fn incremental(
        &self,
        zone: &SecondaryZone,
        primary: &SocketAddr,
        (file, serial): (&Path, u32),
        key: Option<&TsigKey>,
    ) -> Option<(Transferred, &'static str)> {
        let asked = client::ixfr(*primary, &zone.name, serial, key, EXCHANGE_TIMEOUT);
        let problem = match tokio::time::timeout(TRANSFER_DEADLINE, asked).await {
            Ok(Ok(client::Incremental::Whole(transferred))) => {
                return Some((transferred, "IXFR (whole zone)"));
            }
            Ok(Ok(client::Incremental::Changes {
                changes,
                messages,
                bytes,
            })) => {
                let applied = apply_changes(
                    zone.name.clone(),
                    file.to_path_buf(),
                    changes,
                    (messages, bytes),
                )
                .await;
                match applied {
                    Ok(transferred) => return Some((transferred, "IXFR")),
                    Err(error) => error,
                }
            }
            Ok(Ok(client::Incremental::Current)) => {
                "the primary answered IXFR with its SOA alone".to_owned()
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("not done within {TRANSFER_DEADLINE:?}"),
        };
        warn!(zone = %zone.name, %primary, "IXFR: {problem}; transferring the whole zone");
        None
    }

    /// The whole zone from `primary` by AXFR; the error says which step
    /// failed.
    async fn whole(
        &self,
        zone: &SecondaryZone,
        primary: &SocketAddr,
        key: Option<&TsigKey>,
    ) -> Result<Transferred, String> {
        let transfer = client::axfr(*primary, &zone.name, key, EXCHANGE_TIMEOUT);
        match tokio::time::timeout(TRANSFER_DEADLINE, transfer).await {
            Ok(Ok(transferred)) => Ok(transferred),
            Ok(Err(error)) => Err(format!("{primary}: AXFR: {error}")),
            Err(_) => Err(format!(
                "{primary}: AXFR: not done within {TRANSFER_DEADLINE:?}; abandoned"
            )),
        }
    }

    /// Asks the primaries in order; transfers when one has a newer serial.
    /// `Ok(Some)`: transferred and kept; `Ok(None)`: the copy is current;
    /// `Err`: no primary could be asked or transferred from (in status).
    async fn check(
        &self,
        zone: &SecondaryZone,
        file: &Path,
        kept: Option<&KeptSoa>,
    ) -> Result<Option<KeptSoa>, ()> {
        let key = zone.key.as_ref().map(|key| Arc::clone(&key.key));
        let mut errors = Vec::new();
        let started = std::time::Instant::now();
        self.update(&zone.name, |status| {
            status.last_check = Some(unix(SystemTime::now()));
        });
        for primary in &zone.primaries {
            let serial =
                match client::query_serial(*primary, &zone.name, key.as_deref(), EXCHANGE_TIMEOUT)
                    .await
                {
                    Ok(serial) => serial,
                    Err(error) => {
                        errors.push(format!("{primary}: SOA query: {error}"));
                        continue;
                    }
                };
            if let Some(kept) = kept
                && !client::newer(serial, kept.serial)
            {
                if serial != kept.serial {
                    warn!(zone = %zone.name, %primary, serial, kept = kept.serial, "the primary's serial is older than the copy kept; keeping it");
                }
                self.update(&zone.name, |status| {
                    status.state = "current";
                    status.last_error = None;
                });
                return Ok(None);
            }
            // With a copy, the changes since it (IXFR); any trouble with
            // them, and no copy, the whole zone (AXFR).
            let incremental = match kept {
                Some(kept) => {
                    self.incremental(zone, primary, (file, kept.serial), key.as_deref())
                        .await
                }
                None => None,
            };
            let mut attempt = incremental;
            let kept_now = loop {
                let (transferred, kind) = match attempt.take() {
                    Some(found) => found,
                    None => match self.whole(zone, primary, key.as_deref()).await {
                        Ok(transferred) => (transferred, "AXFR"),
                        Err(error) => break Err(error),
                    },
                };
                let (records, serial) = (transferred.records.len(), transferred.serial);
                match keep(zone.name.clone(), file.to_path_buf(), transferred).await {
                    Ok(soa) => break Ok((soa, kind, records, serial)),
                    // Changes that do not make a zone that loads: the
                    // whole zone from the same primary.
                    Err(error) if kind != "AXFR" => {
                        warn!(zone = %zone.name, %primary, "{kind} serial {serial}: {error}; transferring the whole zone");
                    }
                    Err(error) => break Err(format!("{primary}: serial {serial}: {error}")),
                }
            };
            match kept_now {
                Err(error) => errors.push(error),
                Ok((soa, kind, records, serial)) => {
                    let seconds = started.elapsed().as_secs_f64();
                    info!(zone = %zone.name, %primary, serial, records, seconds, kind, "transferred");
                    self.update(&zone.name, |status| {
                        status.state = "current";
                        status.last_transfer_type = Some(kind);
                        status.serial = Some(serial);
                        status.last_transfer = Some(unix(SystemTime::now()));
                        status.last_primary = Some(primary.to_string());
                        status.last_transfer_records = Some(records);
                        status.last_transfer_seconds = Some(seconds);
                        status.expires_at = Some(unix(soa.vouched + soa.expire));
                        status.last_error = None;
                        status.transfers += 1;
                    });
                    return Ok(Some(soa));
                }
            }
        }
        let message = errors.join("; ");
        warn!(zone = %zone.name, "no primary could be used: {message}");
        self.update(&zone.name, |status| {
            status.last_error = Some(message);
            status.transfer_failures += 1;
        });
        Err(())
    }
}

/// What `/status` says of a zone's place in a catalog.
fn catalog_role(kind: &crate::config::secondary::ZoneKind) -> Option<String> {
    match kind {
        crate::config::secondary::ZoneKind::Configured => None,
        crate::config::secondary::ZoneKind::Catalog => Some("catalog".to_owned()),
        crate::config::secondary::ZoneKind::Member(catalog) => Some(format!("member of {catalog}")),
    }
}

/// The SOA of the copy kept on disk, and when a primary last vouched for it.
#[derive(Clone, Debug)]
struct KeptSoa {
    serial: u32,
    refresh: Duration,
    retry: Duration,
    expire: Duration,
    vouched: SystemTime,
}

impl KeptSoa {
    fn of(zone: &Zone, vouched: SystemTime) -> Option<KeptSoa> {
        zone.records
            .iter()
            .find_map(|record| match &record.record.data {
                RData::SOA(soa) => Some(KeptSoa {
                    serial: soa.serial,
                    refresh: timer(soa.refresh),
                    retry: timer(soa.retry),
                    // The expiry is the zone's, not bounded: it says how long
                    // the data may be served unconfirmed.
                    expire: Duration::from_secs(u64::from(soa.expire.max(0).unsigned_abs())),
                    vouched,
                }),
                _ => None,
            })
    }
}

/// An SOA timer in seconds, within [`SHORTEST_TIMER`] and [`LONGEST_TIMER`].
fn timer(seconds: i32) -> Duration {
    Duration::from_secs(u64::from(seconds.max(0).unsigned_abs()))
        .clamp(SHORTEST_TIMER, LONGEST_TIMER)
}

/// Checks a transferred zone as a zone file is checked, then writes it;
/// the file is only replaced by a zone that loads.
async fn keep(name: Name, file: PathBuf, transferred: Transferred) -> Result<KeptSoa, String> {
    tokio::task::spawn_blocking(move || {
        let text = zone::write_zone(&name, &transferred.records);
        let header = format!(
            "; Transferred by Steer: zone {name} serial {}. Rewritten at every\n; transfer; edit the zone on its primary, not here.\n",
            transferred.serial
        );
        let text = header + &text;
        let parsed = zone::parse_zone(&text, &file, &name).map_err(|errors| {
            let shown: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
            format!("the zone does not load, so it is not kept: {}", shown.join("; "))
        })?;
        crate::durable::replace(&file, text.as_bytes())
            .map_err(|error| format!("cannot write {}: {error}", file.display()))?;
        KeptSoa::of(&parsed, SystemTime::now()).ok_or_else(|| "the zone has no SOA".to_owned())
    })
    .await
    .map_err(|error| format!("the writing task failed: {error}"))?
}

/// The kept copy of `name` in `file` at `serial`, with an IXFR's
/// `changes` applied, as a transfer for [`keep`]; an error when the copy
/// is not at the serial the changes start from, or lacks a record they
/// remove (a primary whose history does not match ours: the caller falls
/// back to AXFR).
async fn apply_changes(
    name: Name,
    file: PathBuf,
    changes: Vec<client::Change>,
    (messages, bytes): (usize, usize),
) -> Result<Transferred, String> {
    tokio::task::spawn_blocking(move || {
        let text = std::fs::read_to_string(&file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        let zone = zone::parse_zone(&text, &file, &name)
            .map_err(|_| "the kept copy does not load".to_owned())?;
        let mut records: Vec<Option<Record>> = zone
            .records
            .into_iter()
            .map(|kept| Some(kept.record))
            .collect();
        // Records by owner (lower case) and type, to find what to remove.
        let mut index: HashMap<(Name, RecordType), Vec<usize>> = HashMap::new();
        for (position, record) in records.iter().enumerate() {
            if let Some(record) = record {
                index
                    .entry((record.name.to_lowercase(), record.record_type()))
                    .or_default()
                    .push(position);
            }
        }
        let serial_of = |record: &Record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        };
        let mut soa_at = records
            .iter()
            .position(|record| record.as_ref().and_then(serial_of).is_some())
            .ok_or("the kept copy has no SOA")?;
        let mut serial = 0;
        for change in changes {
            let current = records[soa_at].as_ref().and_then(serial_of);
            if current != serial_of(&change.from) {
                return Err(format!(
                    "the changes start from serial {:?}, the copy is at {current:?}",
                    serial_of(&change.from)
                ));
            }
            for removed in &change.removed {
                let key = (removed.name.to_lowercase(), removed.record_type());
                let found = index.get(&key).and_then(|positions| {
                    positions.iter().copied().find(|&position| {
                        records[position]
                            .as_ref()
                            .is_some_and(|record| record.data == removed.data)
                    })
                });
                let Some(position) = found else {
                    return Err(format!(
                        "the changes remove {} {}, which the copy does not have",
                        removed.name,
                        removed.record_type()
                    ));
                };
                records[position] = None;
            }
            records[soa_at] = None;
            serial = serial_of(&change.to).unwrap_or_default();
            records.push(Some(change.to));
            soa_at = records.len() - 1;
            for added in change.added {
                let key = (added.name.to_lowercase(), added.record_type());
                let positions = index.entry(key).or_default();
                // An addition of a record already there changes its TTL.
                if let Some(&position) = positions.iter().find(|&&position| {
                    records[position]
                        .as_ref()
                        .is_some_and(|record| record.data == added.data)
                }) {
                    records[position] = None;
                }
                records.push(Some(added));
                positions.push(records.len() - 1);
            }
        }
        let soa = records[soa_at].take();
        let records: Vec<Record> = soa
            .into_iter()
            .chain(records.into_iter().flatten())
            .collect();
        Ok(Transferred {
            records,
            serial,
            messages,
            bytes,
        })
    })
    .await
    .map_err(|error| format!("the applying task failed: {error}"))?
}

/// Marks the kept copy as vouched for now (its modification time).
fn touch(file: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(file)?
        .set_modified(SystemTime::now())
}

/// The SOA of the copy in `file`, if there is one that loads.
async fn stored_soa(file: &Path, name: &Name) -> Option<KeptSoa> {
    let (file, name) = (file.to_path_buf(), name.clone());
    tokio::task::spawn_blocking(move || {
        let vouched = std::fs::metadata(&file)
            .and_then(|metadata| metadata.modified())
            .ok()?;
        let text = std::fs::read_to_string(&file).ok()?;
        let zone = zone::parse_zone(&text, &file, &name).ok()?;
        KeptSoa::of(&zone, vouched)
    })
    .await
    .ok()
    .flatten()
}

/// The kept copies of the secondary zones, for a build: zones that load
/// and have not expired; a warning for each zone not served and why; an
/// error for a kept file that does not load (the operator edited it, or
/// the disk is bad: delete it and it is transferred again). The copies of
/// the `fresh` zones are not served: they are transferred again first (a
/// catalog reset them).
pub fn load_kept(
    config: &SecondaryConfig,
    now: SystemTime,
    fresh: &[Name],
) -> (Vec<Zone>, Vec<String>, Vec<ZoneError>) {
    let (mut zones, mut warnings, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    // Catalog zones are read for their members, never served.
    let served = config
        .zones
        .iter()
        .filter(|zone| zone.kind != crate::config::secondary::ZoneKind::Catalog);
    for secondary in served {
        if fresh.contains(&secondary.name) {
            warnings.push(format!(
                "secondary zone {} is not served until it is transferred afresh",
                secondary.name
            ));
            continue;
        }
        let file = config.file_of(&secondary.name);
        let text = match std::fs::read(&file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    errors.push(ZoneError {
                        file,
                        line: None,
                        message: "zone file is not UTF-8 text".to_owned(),
                    });
                    continue;
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                warnings.push(format!(
                    "secondary zone {} is not served: not transferred yet",
                    secondary.name
                ));
                continue;
            }
            Err(error) => {
                errors.push(ZoneError {
                    file,
                    line: None,
                    message: format!("cannot read the kept copy: {error}"),
                });
                continue;
            }
        };
        let vouched = std::fs::metadata(&file)
            .and_then(|metadata| metadata.modified())
            .unwrap_or(now);
        match zone::parse_zone(&text, &file, &secondary.name) {
            Ok(zone) => {
                let expired =
                    KeptSoa::of(&zone, vouched).is_some_and(|soa| soa.vouched + soa.expire <= now);
                if expired {
                    warnings.push(format!(
                        "secondary zone {} is not served: no primary has confirmed it within its SOA expire time",
                        secondary.name
                    ));
                } else {
                    zones.push(zone);
                }
            }
            Err(zone_errors) => errors.extend(zone_errors),
        }
    }
    warnings.extend(leftovers(config));
    (zones, warnings, errors)
}

/// A warning for each kept copy in the secondary directory whose zone is
/// no longer a secondary zone (removed from `steer.toml` or from its
/// catalog): it is not served, and is never deleted for the operator.
fn leftovers(config: &SecondaryConfig) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&config.directory) else {
        return Vec::new();
    };
    let kept: Vec<PathBuf> = config
        .zones
        .iter()
        .map(|zone| config.file_of(&zone.name))
        .collect();
    let mut warnings: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "zone"))
        .filter(|path| !kept.contains(path))
        .map(|path| {
            format!(
                "{} is a kept copy of a zone that is no longer a secondary zone; it is not served (delete it if the zone is not coming back)",
                path.display()
            )
        })
        .collect();
    warnings.sort();
    warnings
}

/// `time` in whole seconds since the Unix epoch.
fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    fn address(owner: &str, ttl: u32, address: &str) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::A(address.parse().expect("address")),
        )
    }

    fn soa(serial: u32) -> Record {
        use hickory_proto::rr::rdata::SOA;
        let data = SOA::new(
            name("ns1.sec.test."),
            name("hostmaster.sec.test."),
            serial,
            3600,
            600,
            86400,
            300,
        );
        Record::from_rdata(name("sec.test."), 300, RData::SOA(data))
    }

    #[tokio::test]
    async fn changes_apply_to_the_kept_copy_or_are_refused() {
        let directory = tempfile::tempdir().expect("directory");
        let file = directory.path().join("sec.test.zone");
        std::fs::write(
            &file,
            "$ORIGIN sec.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.10\nold TXT \"gone\"\n",
        )
        .expect("kept copy");
        let zone = name("sec.test.");
        let changes = vec![client::Change {
            from: soa(1),
            removed: vec![
                Record::from_rdata(
                    name("old.sec.test."),
                    300,
                    RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["gone".to_owned()])),
                ),
                address("www.sec.test.", 300, "192.0.2.10"),
            ],
            to: soa(2),
            added: vec![
                address("www.sec.test.", 600, "192.0.2.10"),
                address("new.sec.test.", 300, "192.0.2.77"),
            ],
        }];
        let transferred = apply_changes(zone.clone(), file.clone(), changes, (1, 100))
            .await
            .expect("applied");
        assert_eq!(transferred.serial, 2);
        let mut lines: Vec<String> = transferred
            .records
            .iter()
            .map(|record| format!("{} {} {}", record.name, record.ttl, record.data))
            .collect();
        assert!(lines[0].contains("hostmaster.sec.test. 2 "), "{lines:?}");
        lines.sort();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(
            lines.contains(&"www.sec.test. 600 192.0.2.10".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"new.sec.test. 300 192.0.2.77".to_owned()),
            "{lines:?}"
        );
        assert!(
            !lines.iter().any(|line| line.starts_with("old.")),
            "{lines:?}"
        );

        // From another serial, or removing what is not there: refused.
        let from_elsewhere = vec![client::Change {
            from: soa(7),
            removed: Vec::new(),
            to: soa(8),
            added: Vec::new(),
        }];
        let refused = apply_changes(zone.clone(), file.clone(), from_elsewhere, (1, 1)).await;
        assert!(refused.is_err_and(|error| error.contains("serial")));
        let missing = vec![client::Change {
            from: soa(1),
            removed: vec![address("www.sec.test.", 300, "192.0.2.99")],
            to: soa(2),
            added: Vec::new(),
        }];
        let refused = apply_changes(zone, file, missing, (1, 1)).await;
        assert!(refused.is_err_and(|error| error.contains("does not have")));
    }
}
