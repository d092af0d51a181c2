//! Which slot of the per-worker decision and zone counters counts what
//! (control plane).
//!
//! A steered answer is counted under a key: the steered name, its type, the
//! pool answered from and why that pool (a [`Reason`]). The compiler asks a
//! [`DecisionRegistry`] for each key's [`DecisionSlot`] and stores the slots
//! in the compiled policy, so that the data plane only adds one to
//! `counters[slot]`: no hashing, no lock and no string per query. Zones
//! get slots the same way, so that every response is also counted under
//! its zone.
//!
//! The registry outlives every table: [`crate::control::Control`] keeps one
//! for the life of the process and every reload compiles against it. A key
//! keeps its slot forever and new keys are appended, so a reload that drops
//! or adds names renumbers nothing and every Prometheus series stays
//! monotonic. Keys registered by a build that is never served are rolled
//! back ([`DecisionRegistry::rollback`]) so that a failed reload leaves no
//! series behind. `steer check` and `steer explain` compile against a
//! throwaway registry.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tracing::warn;

/// Slots of the per-worker decision counters, the overflow slot included.
///
/// Fixed so that a worker allocates its counters once at start and the data
/// plane indexes them without a bounds surprise or a resize; 16,384 slots
/// are 128 KiB per worker and cover about 3,000 steered names of two pools
/// each. Keys beyond the cap share [`OVERFLOW_SLOT`], exported as
/// `steer_steered_answers_overflow_total`, rather than growing memory
/// without bound as names come and go over many reloads.
pub const DECISION_SLOTS: usize = 16_384;

/// Where answers of keys beyond the cap are counted; it has no key.
pub const OVERFLOW_SLOT: DecisionSlot = DecisionSlot(DECISION_SLOTS as u32 - 1);

/// A slot of the per-worker decision counters. Only a registry hands them
/// out, so every slot is below [`DECISION_SLOTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecisionSlot(u32);

impl DecisionSlot {
    /// Position in the per-worker counters.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The slot at `index`, for summing every slot in order.
    pub(super) fn at(index: usize) -> Self {
        debug_assert!(index < DECISION_SLOTS);
        Self(index as u32)
    }
}

/// Why an answer came out as it did: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The policy chose the pool.
    Policy,
    /// Every pool was down and `when_all_down = "fail_open"` answered from
    /// the policy's pool anyway.
    FailOpen,
    /// Every pool was down and `when_all_down = { pool = ... }` answered
    /// from that pool.
    Fallback,
    /// No records: no pool for this client, `when_all_down = "nodata"`, or
    /// no usable endpoint. Counted with an empty pool.
    NoData,
    /// `when_all_down = "servfail"` and everything was down. Counted with
    /// an empty pool.
    ServFail,
}

impl Reason {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Policy => "policy",
            Reason::FailOpen => "fail_open",
            Reason::Fallback => "fallback",
            Reason::NoData => "nodata",
            Reason::ServFail => "servfail",
        }
    }
}

/// What one counter counts: the labels of its series.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    /// The steered name, absolute (`www.example.test.`).
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    pub record_type: String,
    /// The pool answered from (the first one when `first` takes records
    /// from several); empty for [`Reason::NoData`] and [`Reason::ServFail`].
    pub pool: String,
    /// Why.
    pub reason: Reason,
}

/// Slots of the per-worker zone counters, the overflow slot included: a
/// fleet's worth of zones at 24 bytes each per worker (96 KiB).
pub const ZONE_SLOTS: usize = 4096;

/// Where responses of zones beyond the cap are counted; it has no zone.
pub const ZONE_OVERFLOW_SLOT: ZoneSlot = ZoneSlot(ZONE_SLOTS as u32 - 1);

/// A slot of the per-worker zone counters; only a registry hands them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZoneSlot(u32);

impl ZoneSlot {
    /// Position in the per-worker counters.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Keys → slots, append-only, for steered decisions and for zones. See the
/// module docs.
#[derive(Default)]
pub struct DecisionRegistry {
    // Locked by the compiler (once per key) and by a /metrics scrape, never
    // by the data plane.
    inner: Mutex<Registries>,
}

#[derive(Default)]
struct Registries {
    decisions: Registered<DecisionKey>,
    /// Zone names, absolute (`example.test.`).
    zones: Registered<String>,
}

/// One append-only key → slot map with its served watermark.
struct Registered<K> {
    /// Key of each slot, in slot order.
    keys: Vec<K>,
    slots: HashMap<K, u32>,
    /// Keys below this are used by a table that was served.
    committed: usize,
    /// Whether hitting the cap was logged already (once is enough).
    warned: bool,
}

impl<K> Default for Registered<K> {
    fn default() -> Self {
        Registered {
            keys: Vec::new(),
            slots: HashMap::new(),
            committed: 0,
            warned: false,
        }
    }
}

impl<K: Clone + Eq + std::hash::Hash> Registered<K> {
    /// The slot of `key`, assigned now if new; `Err(true)` the first time
    /// every slot below `overflow` is taken, `Err(false)` after that.
    fn slot(&mut self, key: K, overflow: u32) -> Result<u32, bool> {
        if let Some(&slot) = self.slots.get(&key) {
            return Ok(slot);
        }
        let next = self.keys.len() as u32;
        if next >= overflow {
            let first = !self.warned;
            self.warned = true;
            return Err(first);
        }
        self.keys.push(key.clone());
        self.slots.insert(key, next);
        Ok(next)
    }

    fn commit(&mut self) {
        self.committed = self.keys.len();
    }

    fn rollback(&mut self) {
        let dropped: Vec<K> = self.keys.drain(self.committed..).collect();
        for key in &dropped {
            self.slots.remove(key);
        }
    }

    /// Served keys with their slots, in slot order.
    fn series(&self) -> impl Iterator<Item = (K, u32)> + '_ {
        self.keys[..self.committed]
            .iter()
            .enumerate()
            .map(|(slot, key)| (key.clone(), slot as u32))
    }
}

impl DecisionRegistry {
    /// The slot of `key`, assigned now if the key is new; [`OVERFLOW_SLOT`]
    /// when every other slot is taken.
    pub fn slot(&self, key: DecisionKey) -> DecisionSlot {
        let name = key.name.clone();
        match self.lock().decisions.slot(key, OVERFLOW_SLOT.0) {
            Ok(slot) => DecisionSlot(slot),
            Err(first) => {
                if first {
                    warn!(
                        slots = DECISION_SLOTS,
                        name = %name,
                        "every decision counter is taken; further steered answers are counted \
                         in steer_steered_answers_overflow_total"
                    );
                }
                OVERFLOW_SLOT
            }
        }
    }

    /// The slot of zone `name` (absolute), assigned now if new;
    /// [`ZONE_OVERFLOW_SLOT`] when every other slot is taken.
    pub fn zone_slot(&self, name: &str) -> ZoneSlot {
        match self
            .lock()
            .zones
            .slot(name.to_owned(), ZONE_OVERFLOW_SLOT.0)
        {
            Ok(slot) => ZoneSlot(slot),
            Err(first) => {
                if first {
                    warn!(
                        slots = ZONE_SLOTS,
                        zone = %name,
                        "every zone counter is taken; further zones are counted in \
                         steer_zone_responses_overflow_total"
                    );
                }
                ZONE_OVERFLOW_SLOT
            }
        }
    }

    /// Marks every key registered so far as served: a table compiled
    /// against them has been published.
    pub fn commit(&self) {
        let mut registries = self.lock();
        registries.decisions.commit();
        registries.zones.commit();
    }

    /// Forgets the keys registered since the last [`commit`](Self::commit):
    /// their build failed, and no table that counts into their slots was
    /// ever published, so the slots are free for the next build.
    pub fn rollback(&self) {
        let mut registries = self.lock();
        registries.decisions.rollback();
        registries.zones.rollback();
    }

    /// Every served key with its slot, in slot order: the series of
    /// `steer_steered_answers_total`. Keys of names a reload removed stay,
    /// with the count they reached.
    pub fn series(&self) -> Vec<(DecisionKey, DecisionSlot)> {
        self.lock()
            .decisions
            .series()
            .map(|(key, slot)| (key, DecisionSlot(slot)))
            .collect()
    }

    /// Every served zone with its slot, in slot order: the series of
    /// `steer_zone_responses_total`. Zones a reload removed stay.
    pub fn zone_series(&self) -> Vec<(String, ZoneSlot)> {
        self.lock()
            .zones
            .series()
            .map(|(zone, slot)| (zone, ZoneSlot(slot)))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Registries> {
        // Plain data, left consistent between statements: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, pool: &str, reason: Reason) -> DecisionKey {
        DecisionKey {
            name: name.to_owned(),
            record_type: "A".to_owned(),
            pool: pool.to_owned(),
            reason,
        }
    }

    /// What one build of a config registers: `(name, pool, reason)` each.
    fn compile(registry: &DecisionRegistry, keys: &[(&str, &str, Reason)]) -> Vec<u32> {
        keys.iter()
            .map(|&(name, pool, reason)| registry.slot(key(name, pool, reason)).0)
            .collect()
    }

    #[test]
    fn slots_survive_a_reload_that_drops_and_adds_names() {
        let registry = DecisionRegistry::default();
        let first = compile(
            &registry,
            &[
                ("www.example.test.", "fra", Reason::Policy),
                ("www.example.test.", "iad", Reason::Policy),
                ("api.example.test.", "ams", Reason::Policy),
                ("api.example.test.", "", Reason::ServFail),
            ],
        );
        assert_eq!(first, [0, 1, 2, 3]);
        registry.commit();

        // The reload drops api, adds cdn and a pool to www, in a new order.
        let second = compile(
            &registry,
            &[
                ("cdn.example.test.", "fra", Reason::Policy),
                ("www.example.test.", "ams", Reason::Policy),
                ("www.example.test.", "iad", Reason::Policy),
                ("www.example.test.", "fra", Reason::Policy),
            ],
        );
        assert_eq!(second, [4, 5, 1, 0]);
        registry.commit();

        // api comes back: its old slots, so its series continue.
        let third = compile(
            &registry,
            &[
                ("api.example.test.", "", Reason::ServFail),
                ("api.example.test.", "ams", Reason::Policy),
            ],
        );
        assert_eq!(third, [3, 2]);
        registry.commit();

        let series: Vec<(String, String, &str, u32)> = registry
            .series()
            .into_iter()
            .map(|(key, slot)| (key.name, key.pool, key.reason.label(), slot.0))
            .collect();
        assert_eq!(
            series,
            [
                ("www.example.test.".into(), "fra".into(), "policy", 0),
                ("www.example.test.".into(), "iad".into(), "policy", 1),
                ("api.example.test.".into(), "ams".into(), "policy", 2),
                ("api.example.test.".into(), "".into(), "servfail", 3),
                ("cdn.example.test.".into(), "fra".into(), "policy", 4),
                ("www.example.test.".into(), "ams".into(), "policy", 5),
            ]
        );
    }

    #[test]
    fn a_failed_build_leaves_no_series_and_frees_its_slots() {
        let registry = DecisionRegistry::default();
        compile(&registry, &[("www.example.test.", "fra", Reason::Policy)]);
        registry.commit();

        let failed = compile(
            &registry,
            &[
                ("www.example.test.", "fra", Reason::Policy),
                ("typo.example.test.", "fra", Reason::Policy),
            ],
        );
        assert_eq!(failed, [0, 1]);
        // Not served yet: not exported.
        assert_eq!(registry.series().len(), 1);
        registry.rollback();
        assert_eq!(registry.series().len(), 1);

        let next = compile(
            &registry,
            &[
                ("www.example.test.", "fra", Reason::Policy),
                ("cdn.example.test.", "fra", Reason::Policy),
            ],
        );
        assert_eq!(next, [0, 1]);
        registry.commit();
        let names: Vec<String> = registry
            .series()
            .into_iter()
            .map(|(key, _)| key.name)
            .collect();
        assert_eq!(names, ["www.example.test.", "cdn.example.test."]);
    }

    #[test]
    fn keys_beyond_the_cap_share_the_overflow_slot() {
        let registry = DecisionRegistry::default();
        for index in 0..OVERFLOW_SLOT.index() {
            let slot = registry.slot(key(&format!("n{index}.test."), "p", Reason::Policy));
            assert_eq!(slot.index(), index);
        }
        let beyond = registry.slot(key("late.test.", "p", Reason::Policy));
        assert_eq!(beyond, OVERFLOW_SLOT);
        assert_eq!(
            registry.slot(key("later.test.", "p", Reason::NoData)),
            OVERFLOW_SLOT
        );
        // Known keys keep their slots.
        assert_eq!(
            registry.slot(key("n7.test.", "p", Reason::Policy)).index(),
            7
        );
        registry.commit();
        let series = registry.series();
        assert_eq!(series.len(), DECISION_SLOTS - 1);
        assert!(series.iter().all(|(_, slot)| *slot != OVERFLOW_SLOT));
    }

    #[test]
    fn zones_keep_their_slots_and_a_failed_build_leaves_none() {
        let registry = DecisionRegistry::default();
        assert_eq!(registry.zone_slot("example.test.").index(), 0);
        assert_eq!(registry.zone_slot("other.test.").index(), 1);
        // The same registry's decisions count on their own.
        assert_eq!(
            registry
                .slot(key("www.example.test.", "fra", Reason::Policy))
                .index(),
            0
        );
        registry.commit();
        assert_eq!(registry.zone_slot("new.test.").index(), 2);
        registry.rollback();
        assert_eq!(registry.zone_slot("other.test.").index(), 1);
        assert_eq!(registry.zone_slot("later.test.").index(), 2);
        registry.commit();
        let zones: Vec<(String, usize)> = registry
            .zone_series()
            .into_iter()
            .map(|(zone, slot)| (zone, slot.index()))
            .collect();
        assert_eq!(
            zones,
            [
                ("example.test.".to_owned(), 0),
                ("other.test.".to_owned(), 1),
                ("later.test.".to_owned(), 2)
            ]
        );
        for index in 3..ZONE_OVERFLOW_SLOT.index() {
            assert_eq!(
                registry.zone_slot(&format!("z{index}.test.")).index(),
                index
            );
        }
        assert_eq!(registry.zone_slot("one.too.many."), ZONE_OVERFLOW_SLOT);
    }
}
