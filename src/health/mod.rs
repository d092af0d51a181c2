//! Endpoint health as the data plane reads it, and the admin overrides.
//!
//! Every (pool, address) of the config is an endpoint slot with one atomic
//! state byte; every pool has an atomic "drained" flag. The `healthy` step
//! reads them with relaxed loads: no lock on the query path. The admin
//! state (drain a pool, force an endpoint up or down) is kept by the
//! control task in [`AdminState`] and written into the current table's
//! [`HealthView`] at once, and into each new table when it is compiled, so
//! a reload never forgets what an operator did. Observed state from probes
//! (a later milestone) plugs into the same byte; until a probe says
//! otherwise an endpoint counts as up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde::Serialize;

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
}

const FORCED_UP: u8 = 1;
const FORCED_DOWN: u8 = 2;
const OBSERVED_DOWN: u8 = 4;

/// The health atomics of one table generation.
#[derive(Debug, Default)]
pub struct HealthView {
    pool_ids: Vec<String>,
    drained: Vec<AtomicBool>,
    /// Per endpoint: its pool (index into `pool_ids`) and address.
    endpoints: Vec<(u32, IpAddr)>,
    states: Vec<AtomicU8>,
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
}

impl HealthView {
    /// Slots for `pools`: (pool id, its addresses), in the order the table
    /// numbers them. Starts with `admin` applied.
    pub fn new(pools: &[(String, Vec<IpAddr>)], admin: &AdminState) -> Self {
        let mut view = HealthView::default();
        for (index, (id, addresses)) in pools.iter().enumerate() {
            view.pool_ids.push(id.clone());
            view.drained.push(AtomicBool::new(false));
            for &address in addresses {
                view.endpoints.push((index as u32, address));
                view.states.push(AtomicU8::new(0));
            }
        }
        view.apply(admin);
        view
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
            let observed = state.load(Ordering::Relaxed) & OBSERVED_DOWN;
            state.store(observed | forced, Ordering::Relaxed);
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
            .map(|(slot, (pool, address))| EndpointStatus {
                pool: self.pool_ids[*pool as usize].clone(),
                address: *address,
                up: self.is_up(*pool, slot as u32),
                drained: self.drained[*pool as usize].load(Ordering::Relaxed),
                forced: admin.forced.get(address).copied(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(admin: &AdminState) -> HealthView {
        let address = |text: &str| text.parse::<IpAddr>().expect("ip");
        HealthView::new(
            &[
                (
                    "fra".to_owned(),
                    vec![address("192.0.2.1"), address("192.0.2.2")],
                ),
                ("iad".to_owned(), vec![address("192.0.2.1")]),
            ],
            admin,
        )
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
        assert!(!statuses[0].up);
    }
}
