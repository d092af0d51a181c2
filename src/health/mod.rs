//! Endpoint health as the data plane reads it, and the admin overrides.
//!
//! Every (pool, address) of the config is an endpoint slot with one atomic
//! state byte; every pool has an atomic "drained" flag. The `healthy` step
//! reads them with relaxed loads: no lock on the query path. The admin
//! state (drain a pool, force an endpoint up or down) is kept by the
//! control task in [`AdminState`] and written into the current table's
//! [`HealthView`] at once, and into each new table when it is compiled, so
//! a reload never forgets what an operator did. Observed state from probes
//! ([`observed`], run by [`crate::probe`]) is one more bit of the same
//! byte, set per probe target on every slot that target checks; until a
//! probe says otherwise an endpoint counts as up. Both writers change the
//! byte with atomic read-modify-write operations, so an admin change and a
//! probe result arriving together never undo each other.

pub mod observed;
pub mod peers;
pub mod state_file;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde::Serialize;

use crate::config::steering::ProbeTarget;

/// An operator's override for one address (in every pool that has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forced {
    /// Always up, whatever probes say.
    Up,
    /// Always down.
    Down,
}

/// What operators have set through the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminState {
    /// Drained pool ids.
    pub drained: BTreeSet<String>,
    /// Forced endpoint addresses.
    pub forced: BTreeMap<IpAddr, Forced>,
    /// When each pool's drain and each address's override was last set
    /// (undrains and `auto` included), and on which node: with
    /// `peers.share_admin`, the latest setting wins across the fleet.
    pub stamps: BTreeMap<AdminKey, Stamp>,
}

/// What one admin setting is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminKey {
    /// A pool's drain.
    Pool(String),
    /// An address's override.
    Address(IpAddr),
}

impl AdminKey {
    /// `pool:ID` or `address:IP`, as the state file and the view write it.
    pub fn to_text(&self) -> String {
        match self {
            Self::Pool(pool) => format!("pool:{pool}"),
            Self::Address(address) => format!("address:{address}"),
        }
    }

    /// Reads [`AdminKey::to_text`]'s form.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(pool) = text.strip_prefix("pool:") {
            return (!pool.is_empty()).then(|| Self::Pool(pool.to_owned()));
        }
        text.strip_prefix("address:")?
            .parse()
            .ok()
            .map(Self::Address)
    }
}

/// When a setting was made and where: later wins, then the node's name,
/// so that every node picks the same one.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The `health.node` that made it.
    pub node: String,
}

/// One admin setting as nodes share it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SharedSetting {
    /// `pool:ID` or `address:IP`.
    pub key: String,
    /// `drained`, `undrained`, `forced_up`, `forced_down` or `auto`.
    pub state: String,
    /// When it was set, Unix milliseconds.
    pub at_ms: u64,
    /// Where it was set.
    pub node: String,
}

impl AdminState {
    /// Every stamped setting, as the view shares them.
    pub fn shared(&self) -> Vec<SharedSetting> {
        self.stamps
            .iter()
            .map(|(key, stamp)| SharedSetting {
                key: key.to_text(),
                state: match key {
                    AdminKey::Pool(pool) if self.drained.contains(pool) => "drained",
                    AdminKey::Pool(_) => "undrained",
                    AdminKey::Address(address) => match self.forced.get(address) {
                        Some(Forced::Up) => "forced_up",
                        Some(Forced::Down) => "forced_down",
                        None => "auto",
                    },
                }
                .to_owned(),
                at_ms: stamp.at_ms,
                node: stamp.node.clone(),
            })
            .collect()
    }

    /// Takes `setting` if it is newer than what this state has for its
    /// key; returns the key when it changed anything. Settings that do not
    /// parse are skipped.
    pub fn merge(&mut self, setting: &SharedSetting) -> Option<AdminKey> {
        let key = AdminKey::parse(&setting.key)?;
        let stamp = Stamp {
            at_ms: setting.at_ms,
            node: setting.node.clone(),
        };
        if self.stamps.get(&key).is_some_and(|known| *known >= stamp) {
            return None;
        }
        match (&key, setting.state.as_str()) {
            (AdminKey::Pool(pool), "drained") => {
                self.drained.insert(pool.clone());
            }
            (AdminKey::Pool(pool), "undrained") => {
                self.drained.remove(pool);
            }
            (AdminKey::Address(address), "forced_up") => {
                self.forced.insert(*address, Forced::Up);
            }
            (AdminKey::Address(address), "forced_down") => {
                self.forced.insert(*address, Forced::Down);
            }
            (AdminKey::Address(address), "auto") => {
                self.forced.remove(address);
            }
            _ => return None,
        }
        self.stamps.insert(key.clone(), stamp);
        Some(key)
    }
}

const FORCED_UP: u8 = 1;
const FORCED_DOWN: u8 = 2;
const OBSERVED_DOWN: u8 = 4;

/// Marks a slot with no probe.
const NO_TARGET: u32 = u32::MAX;

/// The health atomics of one table generation.
#[derive(Debug, Default)]
pub struct HealthView {
    pool_ids: Vec<String>,
    drained: Vec<AtomicBool>,
    /// Per endpoint: its pool (index into `pool_ids`) and address.
    endpoints: Vec<(u32, IpAddr)>,
    states: Vec<AtomicU8>,
    /// Every distinct probe target of this generation.
    targets: Vec<ProbeTarget>,
    target_index: HashMap<ProbeTarget, u32>,
    /// Per endpoint: index into `targets`, or `NO_TARGET`.
    slot_target: Vec<u32>,
}

/// One endpoint of a pool, as the health view is built from it.
#[derive(Clone, Debug)]
pub struct EndpointSlot {
    /// The answered address.
    pub address: IpAddr,
    /// How it is probed, if it is.
    pub target: Option<ProbeTarget>,
}

/// One endpoint's state, for `/status` and `steer explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    /// Pool id.
    pub pool: String,
    /// Address.
    pub address: IpAddr,
    /// Whether answers may use it now.
    pub up: bool,
    /// Whether its pool is drained.
    pub drained: bool,
    /// Admin override, if any.
    pub forced: Option<Forced>,
    /// `auto`, `drained`, `forced_up` or `forced_down`; a drain wins over
    /// an override, as it does in answers.
    pub admin: &'static str,
    /// Id of the probe that checks it.
    pub probe: Option<String>,
    /// Where it is probed.
    pub target: Option<SocketAddr>,
    /// Whether the table has its probe's verdict as down (`/status`
    /// shows the probe's own state instead, which leads it by the debounce).
    #[serde(skip)]
    pub observed_down: bool,
}

impl HealthView {
    /// Slots for `pools`: (pool id, its addresses), in the order the table
    /// numbers them. Starts with `admin` applied.
    pub fn new(pools: &[(String, Vec<EndpointSlot>)], admin: &AdminState) -> Self {
        let mut view = HealthView::default();
        for (index, (id, slots)) in pools.iter().enumerate() {
            view.pool_ids.push(id.clone());
            view.drained.push(AtomicBool::new(false));
            for slot in slots {
                view.endpoints.push((index as u32, slot.address));
                view.states.push(AtomicU8::new(0));
                let target = match &slot.target {
                    None => NO_TARGET,
                    Some(target) => *view.target_index.entry(target.clone()).or_insert_with(|| {
                        view.targets.push(target.clone());
                        (view.targets.len() - 1) as u32
                    }),
                };
                view.slot_target.push(target);
            }
        }
        view.apply(admin);
        view
    }

    /// Every distinct probe target of this generation, each once however
    /// many endpoints and names it checks.
    pub fn targets(&self) -> &[ProbeTarget] {
        &self.targets
    }

    /// Records what probes say about `target` on every endpoint it checks.
    /// Returns false when no endpoint of this generation uses it.
    pub fn set_observed(&self, target: &ProbeTarget, down: bool) -> bool {
        let Some(&index) = self.target_index.get(target) else {
            return false;
        };
        for (slot, state) in self.slot_target.iter().zip(&self.states) {
            if *slot == index {
                if down {
                    state.fetch_or(OBSERVED_DOWN, Ordering::Relaxed);
                } else {
                    state.fetch_and(!OBSERVED_DOWN, Ordering::Relaxed);
                }
            }
        }
        true
    }

    /// Writes the admin state into the atomics (drains and overrides that
    /// are no longer set are cleared).
    pub fn apply(&self, admin: &AdminState) {
        for (id, drained) in self.pool_ids.iter().zip(&self.drained) {
            drained.store(admin.drained.contains(id), Ordering::Relaxed);
        }
        for ((_, address), state) in self.endpoints.iter().zip(&self.states) {
            let forced = match admin.forced.get(address) {
                Some(Forced::Up) => FORCED_UP,
                Some(Forced::Down) => FORCED_DOWN,
                None => 0,
            };
            // One atomic update: a probe result landing at the same time
            // keeps its bit.
            let _ = state.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & OBSERVED_DOWN) | forced)
            });
        }
    }

    /// Whether answers may use endpoint `slot` of pool `pool` now.
    #[inline]
    pub fn is_up(&self, pool: u32, slot: u32) -> bool {
        let drained = self
            .drained
            .get(pool as usize)
            .is_some_and(|drained| drained.load(Ordering::Relaxed));
        if drained {
            return false;
        }
        let state = self
            .states
            .get(slot as usize)
            .map_or(0, |state| state.load(Ordering::Relaxed));
        if state & FORCED_DOWN != 0 {
            return false;
        }
        state & FORCED_UP != 0 || state & OBSERVED_DOWN == 0
    }

    /// Index of a pool id.
    pub fn pool_index(&self, id: &str) -> Option<u32> {
        self.pool_ids
            .iter()
            .position(|known| known == id)
            .map(|index| index as u32)
    }

    /// Whether any endpoint has this address.
    pub fn has_address(&self, address: IpAddr) -> bool {
        self.endpoints.iter().any(|(_, known)| *known == address)
    }

    /// Every endpoint's state.
    pub fn statuses(&self, admin: &AdminState) -> Vec<EndpointStatus> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(slot, (pool, address))| {
                let drained = self.drained[*pool as usize].load(Ordering::Relaxed);
                let forced = admin.forced.get(address).copied();
                let target = self
                    .targets
                    .get(self.slot_target[slot] as usize)
                    .filter(|_| self.slot_target[slot] != NO_TARGET);
                EndpointStatus {
                    pool: self.pool_ids[*pool as usize].clone(),
                    address: *address,
                    up: self.is_up(*pool, slot as u32),
                    drained,
                    forced,
                    admin: match (drained, forced) {
                        (true, _) => "drained",
                        (false, Some(Forced::Up)) => "forced_up",
                        (false, Some(Forced::Down)) => "forced_down",
                        (false, None) => "auto",
                    },
                    probe: target.map(|target| target.probe.id.clone()),
                    target: target.map(|target| target.address),
                    observed_down: self.states[slot].load(Ordering::Relaxed) & OBSERVED_DOWN != 0,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(text: &str) -> EndpointSlot {
        EndpointSlot {
            address: text.parse().expect("ip"),
            target: None,
        }
    }

    fn view(admin: &AdminState) -> HealthView {
        HealthView::new(
            &[
                ("fra".to_owned(), vec![slot("192.0.2.1"), slot("192.0.2.2")]),
                ("iad".to_owned(), vec![slot("192.0.2.1")]),
            ],
            admin,
        )
    }

    #[test]
    fn the_latest_shared_setting_wins_and_ties_go_by_node() {
        let setting = |key: &str, state: &str, at_ms: u64, node: &str| SharedSetting {
            key: key.to_owned(),
            state: state.to_owned(),
            at_ms,
            node: node.to_owned(),
        };
        let mut admin = AdminState::default();
        assert_eq!(
            admin.merge(&setting("pool:fra", "drained", 100, "b")),
            Some(AdminKey::Pool("fra".to_owned()))
        );
        assert!(admin.drained.contains("fra"));
        // Older, or as old from a node that sorts first: ignored.
        assert_eq!(
            admin.merge(&setting("pool:fra", "undrained", 99, "z")),
            None
        );
        assert_eq!(
            admin.merge(&setting("pool:fra", "undrained", 100, "a")),
            None
        );
        assert!(admin.drained.contains("fra"));
        // As old from a node that sorts after: taken, so every node agrees.
        assert!(
            admin
                .merge(&setting("pool:fra", "undrained", 100, "c"))
                .is_some()
        );
        assert!(admin.drained.is_empty());
        assert!(
            admin
                .merge(&setting("address:192.0.2.1", "forced_down", 5, "a"))
                .is_some()
        );
        assert_eq!(
            admin
                .forced
                .get(&"192.0.2.1".parse::<IpAddr>().expect("ip")),
            Some(&Forced::Down)
        );
        // What does not parse changes nothing.
        for bad in [
            setting("site:fra", "drained", 500, "a"),
            setting("pool:fra", "forced_up", 500, "a"),
            setting("address:nowhere", "auto", 500, "a"),
        ] {
            assert_eq!(admin.merge(&bad), None, "{bad:?}");
        }
        // What a node shares is what it would take back.
        let mut copy = AdminState::default();
        for shared in admin.shared() {
            copy.merge(&shared);
        }
        assert_eq!(copy, admin);
    }

    #[test]
    fn everything_starts_up_and_admin_overrides_apply() {
        let mut admin = AdminState::default();
        let health = view(&admin);
        assert!((0..3).all(|slot| health.is_up(if slot < 2 { 0 } else { 1 }, slot)));
        admin.drained.insert("fra".to_owned());
        health.apply(&admin);
        assert!(!health.is_up(0, 0) && !health.is_up(0, 1));
        assert!(
            health.is_up(1, 2),
            "the same address in another pool is not drained"
        );
        admin.drained.clear();
        admin
            .forced
            .insert("192.0.2.1".parse().expect("ip"), Forced::Down);
        health.apply(&admin);
        assert!(!health.is_up(0, 0) && health.is_up(0, 1) && !health.is_up(1, 2));
        // A new generation starts from the same admin state.
        let next = view(&admin);
        assert!(!next.is_up(0, 0) && !next.is_up(1, 2));
        let statuses = next.statuses(&admin);
        assert_eq!(statuses[0].forced, Some(Forced::Down));
        assert_eq!(statuses[0].admin, "forced_down");
        assert!(!statuses[0].up);
    }

    #[test]
    fn probe_results_reach_every_slot_of_their_target_and_admin_overrides_win() {
        use crate::config::steering::{Probe, ProbeKind};
        use std::time::Duration;
        let probe = Probe {
            id: "tcp".to_owned(),
            kind: ProbeKind::Tcp,
            port: 443,
            interval: Duration::from_secs(1),
            jitter: Duration::ZERO,
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        };
        let target = ProbeTarget {
            probe,
            address: "192.0.2.1:443".parse().expect("socket"),
        };
        let probed = |text: &str| EndpointSlot {
            target: Some(target.clone()),
            ..slot(text)
        };
        let mut admin = AdminState::default();
        let health = HealthView::new(
            &[
                (
                    "fra".to_owned(),
                    vec![probed("192.0.2.1"), slot("192.0.2.2")],
                ),
                ("iad".to_owned(), vec![probed("192.0.2.1")]),
            ],
            &admin,
        );
        assert_eq!(health.targets().len(), 1, "one target, probed once");
        assert!(health.set_observed(&target, true));
        assert!(!health.is_up(0, 0) && health.is_up(0, 1) && !health.is_up(1, 2));
        let statuses = health.statuses(&admin);
        assert!(statuses[0].observed_down && !statuses[1].observed_down);
        assert_eq!(statuses[0].probe.as_deref(), Some("tcp"));
        // Forced up beats the probe; a drain beats both; auto returns to the probe.
        admin
            .forced
            .insert("192.0.2.1".parse().expect("ip"), Forced::Up);
        health.apply(&admin);
        assert!(health.is_up(0, 0) && health.is_up(1, 2));
        admin.drained.insert("iad".to_owned());
        health.apply(&admin);
        assert!(health.is_up(0, 0) && !health.is_up(1, 2));
        admin = AdminState::default();
        health.apply(&admin);
        assert!(
            !health.is_up(0, 0),
            "the probe's verdict survives admin changes"
        );
        assert!(health.set_observed(&target, false));
        assert!(health.is_up(0, 0) && health.is_up(1, 2));
        let other = ProbeTarget {
            address: "192.0.2.9:443".parse().expect("socket"),
            ..target
        };
        assert!(!health.set_observed(&other, true));
    }
}
