//! Steered names in the routing table.
//!
//! Compile time ([`compile_policies`]): each `[[steer]]` entry becomes a
//! [`CompiledPolicy`]: its pools and their endpoints as pre-encoded answer
//! records (owner `0xC00C`, so no fixups), the per-query steps, and one
//! prefix map per address family whose leaves are decisions (ordered
//! candidate pools), built from the GeoIP partition and the CIDR maps and
//! merged so that a leaf's depth is the widest correct ECS scope. The
//! policy also gets, from the long-lived [`DecisionRegistry`], the counter
//! slot of every (pool, reason) it can answer with.
//!
//! Query time ([`CompiledPolicy::select`]): one prefix-map walk, then the
//! dynamic steps over at most [`MAX_POOLS`] pools held on the stack, then
//! the chosen records are copied into the response and the decision's
//! counter slot is returned for the worker to bump. No lock, no
//! allocation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::alias::AliasAddresses;
use crate::config::steering::{PoolMembers, SteeringConfig, Step, WhenAllDown};
use crate::explain::{
    DynamicStepTrace, DynamicTrace, EndpointTrace, LocationStep, Outcome, PoolTrace,
};
use crate::geo::Location;
use crate::geo::location_maps::LocationMaps;
use crate::health::{AdminState, EndpointSlot, HealthView};
use crate::latency::explain::{Candidate, ClientLatency};
use crate::latency::snapshot::{Choices, LatencySnapshot};
use crate::metrics::{DecisionKey, DecisionRegistry, DecisionSlot, OVERFLOW_SLOT, Reason};
use crate::policy::prefix_map::{PrefixMap, PrefixMapBuilder};
use crate::policy::{
    self, Dynamic, LatencyInput, MAX_ANSWER, MAX_POOLS, PoolPlace, random, sticky_choice,
    sticky_key, sticky_scope, weighted_choice,
};

/// Record type codes.
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;

/// A pool of one policy.
#[derive(Clone, Debug)]
struct PolicyPool {
    /// Index in the health view.
    health_pool: u32,
    /// The pool's identity for `sticky` (a hash of its id).
    sticky_seed: u64,
    weight: u32,
    /// Range of `CompiledPolicy::endpoints`.
    endpoints_start: u32,
    endpoints_len: u16,
    /// The pool's own `min_healthy`, which wins over the step's.
    min_healthy: Option<f64>,
}

/// One answer record of a policy.
#[derive(Clone, Copy, Debug)]
struct PolicyEndpoint {
    /// Range of `CompiledPolicy::records`.
    start: u32,
    length: u16,
    weight: u32,
    /// Health slot (`u32::MAX` for a CNAME target, which only drains).
    slot: u32,
}

/// What `when_all_down` says, compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AllDown {
    FailOpen,
    NoData,
    ServFail,
    Pool(u16),
}

/// The outcome of [`CompiledPolicy::select`], with the counter of the
/// decision (see [`crate::metrics::DecisionRegistry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selected {
    /// `count` records were appended.
    Records {
        /// Records written.
        count: u16,
        /// Counts the answered pool and why it was chosen.
        decision: DecisionSlot,
    },
    /// No pool for this client (location steps left none, or `nodata`).
    NoData {
        /// Counts this name's NODATA answers.
        decision: DecisionSlot,
    },
    /// `when_all_down = "servfail"` and everything is down.
    ServFail {
        /// Counts this name's SERVFAIL answers.
        decision: DecisionSlot,
    },
}

impl Selected {
    /// The counter to add one to for this answer.
    #[inline]
    pub fn decision(self) -> DecisionSlot {
        match self {
            Selected::Records { decision, .. }
            | Selected::NoData { decision }
            | Selected::ServFail { decision } => decision,
        }
    }
}

/// Positions in `CompiledPolicy::decision_counters`: NODATA, SERVFAIL, then per
/// policy pool (in `CompiledPolicy::pools` order) one per [`Reason`] a pool
/// can be answered for.
const NODATA_DECISION: usize = 0;
const SERVFAIL_DECISION: usize = 1;
const POOL_DECISIONS: usize = 2;
const REASONS_PER_POOL: usize = 3;

/// Where the counter of `pool` answered for `reason` sits in
/// `CompiledPolicy::decision_counters`.
fn pool_decision(pool: u16, reason: Reason) -> usize {
    let offset = match reason {
        Reason::FailOpen => 1,
        Reason::Fallback => 2,
        // Only the three pool reasons come here.
        Reason::Policy | Reason::NoData | Reason::ServFail => 0,
    };
    POOL_DECISIONS + usize::from(pool) * REASONS_PER_POOL + offset
}

/// A steered name and type, compiled.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    /// `www.example.test. A`, for status and explain.
    pub label: String,
    /// For a `latency` step: the site each latency source chose, which the
    /// next compile keeps unless a challenger beats it by the margins.
    pub latency_chosen: Arc<Choices>,
    /// Decisions hold only their first pool (no per-query step looks
    /// further), so explain compares only that.
    pub only_first_pool: bool,
    qtype: u16,
    pools: Vec<PolicyPool>,
    endpoints: Vec<PolicyEndpoint>,
    records: Vec<u8>,
    /// Decision → ordered pools: a range of `decision_pools`.
    decisions: Vec<(u32, u16)>,
    decision_pools: Vec<u16>,
    v4: PrefixMap,
    v6: PrefixMap,
    dynamic: Vec<Dynamic>,
    when_all_down: AllDown,
    sticky: bool,
    /// Some pool is an alias whose target has no known addresses: an
    /// answer left with no record is SERVFAIL (the truth is unknown), not
    /// a NODATA that resolvers would cache.
    unresolved: bool,
    /// The steps as written, for explain.
    steps: Vec<Step>,
    places: Vec<PoolPlace>,
    cidr_steps: Vec<Vec<(crate::config::steering::IpNet, Vec<String>)>>,
    /// The decision counters of this name, laid out as [`pool_decision`]
    /// says; outcomes the policy cannot reach hold [`OVERFLOW_SLOT`] and
    /// are never counted.
    decision_counters: Vec<DecisionSlot>,
}

/// Fixed-size list of pool indexes, on the stack.
struct PoolList {
    pools: [u16; MAX_POOLS],
    len: usize,
}

impl PoolList {
    fn as_slice(&self) -> &[u16] {
        &self.pools[..self.len]
    }

    fn keep_only(&mut self, position: usize) {
        self.pools[0] = self.pools[position];
        self.len = 1;
    }
}

impl CompiledPolicy {
    /// The query type this policy answers.
    pub fn qtype(&self) -> u16 {
        self.qtype
    }

    fn decision_for(&self, client: IpAddr) -> (u32, u8) {
        match client {
            IpAddr::V4(address) => self.v4.lookup(u128::from(u32::from(address))),
            IpAddr::V6(address) => self.v6.lookup(u128::from(address)),
        }
    }

    fn pool_is_up(&self, health: &HealthView, pool: &PolicyPool, min_healthy: f64) -> bool {
        let min_healthy = pool.min_healthy.unwrap_or(min_healthy);
        let endpoints = self.pool_endpoints(pool);
        let up = endpoints
            .iter()
            .filter(|endpoint| health.is_up(pool.health_pool, endpoint.slot))
            .count();
        up > 0 && up as f64 >= min_healthy * endpoints.len() as f64
    }

    fn pool_endpoints(&self, pool: &PolicyPool) -> &[PolicyEndpoint] {
        let start = pool.endpoints_start as usize;
        &self.endpoints[start..start + usize::from(pool.endpoints_len)]
    }

    /// The ECS scope for `client`'s answer and the decision's pool list.
    fn start(&self, client: IpAddr) -> (PoolList, u8) {
        let (decision, mut scope) = self.decision_for(client);
        if self.sticky {
            scope = scope.max(sticky_scope(client));
        }
        let (start, len) = self.decisions[decision as usize];
        let mut list = PoolList {
            pools: [0; MAX_POOLS],
            len: usize::from(len),
        };
        list.pools[..list.len]
            .copy_from_slice(&self.decision_pools[start as usize..start as usize + list.len]);
        (list, scope)
    }

    /// Chooses the answer for `client` (the ECS network, or the source
    /// address) and appends its records to `out`. Returns what happened and
    /// the ECS scope prefix the answer is valid for.
    pub fn select(&self, health: &HealthView, client: IpAddr, out: &mut Vec<u8>) -> (Selected, u8) {
        let (mut list, scope) = self.start(client);
        if list.len == 0 {
            return (self.no_data(), scope);
        }
        // Why the final list holds what it holds: the policy's choice unless
        // `when_all_down` stepped in.
        let mut reason = Reason::Policy;
        let mut filter_health = false;
        let mut weighted_order = false;
        let mut limit: Option<usize> = None;
        for step in &self.dynamic {
            match *step {
                Dynamic::Healthy { min_healthy } => {
                    let mut kept = PoolList {
                        pools: [0; MAX_POOLS],
                        len: 0,
                    };
                    for &pool in list.as_slice() {
                        if self.pool_is_up(health, &self.pools[usize::from(pool)], min_healthy) {
                            kept.pools[kept.len] = pool;
                            kept.len += 1;
                        }
                    }
                    if kept.len > 0 {
                        list = kept;
                        filter_health = true;
                    } else {
                        match self.when_all_down {
                            // Route 53's rule: answer as if everything were up.
                            AllDown::FailOpen => {
                                filter_health = false;
                                reason = Reason::FailOpen;
                            }
                            AllDown::NoData => return (self.no_data(), scope),
                            AllDown::ServFail => {
                                let decision = self.decision_counter(SERVFAIL_DECISION);
                                return (Selected::ServFail { decision }, scope);
                            }
                            AllDown::Pool(pool) => {
                                list.pools[0] = pool;
                                list.len = 1;
                                filter_health = false;
                                reason = Reason::Fallback;
                            }
                        }
                    }
                }
                Dynamic::Priority => list.len = list.len.min(1),
                Dynamic::Weighted => {
                    let mut weights = [0u32; MAX_POOLS];
                    for (slot, &pool) in weights.iter_mut().zip(list.as_slice()) {
                        *slot = self.pools[usize::from(pool)].weight;
                    }
                    let chosen = weighted_choice(&weights[..list.len], random());
                    list.keep_only(chosen);
                    weighted_order = true;
                }
                Dynamic::Sticky => {
                    let mut weights = [0u32; MAX_POOLS];
                    for (slot, &pool) in weights.iter_mut().zip(list.as_slice()) {
                        *slot = self.pools[usize::from(pool)].weight;
                    }
                    let mut seeds = [0u64; MAX_POOLS];
                    for (seed, &pool) in seeds.iter_mut().zip(list.as_slice()) {
                        *seed = self.pools[usize::from(pool)].sticky_seed;
                    }
                    let chosen =
                        sticky_choice(sticky_key(client), &seeds[..list.len], &weights[..list.len]);
                    list.keep_only(chosen);
                }
                Dynamic::First(count) => limit = Some(count.min(MAX_ANSWER)),
            }
        }
        let pools_used = if limit.is_some() {
            list.len
        } else {
            list.len.min(1)
        };
        let limit = limit.unwrap_or(MAX_ANSWER);
        let mut count = 0usize;
        for &pool in &list.as_slice()[..pools_used] {
            let pool = &self.pools[usize::from(pool)];
            let endpoints = self.pool_endpoints(pool);
            let mut usable = [0u16; MAX_ANSWER];
            let mut usable_len = 0usize;
            for (index, endpoint) in endpoints.iter().enumerate().take(MAX_ANSWER) {
                if !filter_health || health.is_up(pool.health_pool, endpoint.slot) {
                    usable[usable_len] = index as u16;
                    usable_len += 1;
                }
            }
            if weighted_order {
                // Weighted sampling without replacement, in place.
                for position in 0..usable_len {
                    let mut weights = [0u32; MAX_ANSWER];
                    for (slot, &index) in weights.iter_mut().zip(&usable[position..usable_len]) {
                        *slot = endpoints[usize::from(index)].weight;
                    }
                    let chosen = weighted_choice(&weights[..usable_len - position], random());
                    usable.swap(position, position + chosen);
                }
            }
            for &index in &usable[..usable_len] {
                if count == limit {
                    break;
                }
                let endpoint = endpoints[usize::from(index)];
                let start = endpoint.start as usize;
                out.extend_from_slice(&self.records[start..start + usize::from(endpoint.length)]);
                count += 1;
            }
        }
        if count == 0 {
            if self.unresolved {
                let decision = self.decision_counter(SERVFAIL_DECISION);
                return (Selected::ServFail { decision }, scope);
            }
            return (self.no_data(), scope);
        }
        // With `first = N` the records may come from several pools; the
        // first one is the pool the policy answered with.
        let decision = self.decision_counter(pool_decision(list.pools[0], reason));
        (
            Selected::Records {
                count: count as u16,
                decision,
            },
            scope,
        )
    }

    /// NODATA, counted.
    #[inline]
    fn no_data(&self) -> Selected {
        Selected::NoData {
            decision: self.decision_counter(NODATA_DECISION),
        }
    }

    /// The counter at `position` of `decision_counters`, which holds every
    /// position (the fallback only keeps a panic off the query path).
    #[inline]
    fn decision_counter(&self, position: usize) -> DecisionSlot {
        self.decision_counters
            .get(position)
            .copied()
            .unwrap_or(OVERFLOW_SLOT)
    }

    /// What the location steps did for the client at `client`, located at
    /// `location` (explain's view): each step with its input and output
    /// pools, the decision they leave, and the table's ECS scope for it.
    /// `latency` holds the client's latency sources, built as a compile
    /// builds them; with it a `latency` step reads what the compile read,
    /// and its margin starts from this table's own choices, so the step
    /// orders the pools as the table does (given the same data).
    pub fn trace(
        &self,
        client: IpAddr,
        location: &Location,
        latency: Option<&ClientLatency>,
    ) -> (Vec<LocationStep>, Vec<String>, u8) {
        let cidr_matches: Vec<Option<usize>> = self
            .cidr_steps
            .iter()
            .map(|entries| longest_match(entries, client))
            .collect();
        let input = LatencyInput {
            sources: latency.map(ClientLatency::input).unwrap_or_default(),
            previous: Some(&self.latency_chosen),
            chosen: None,
        };
        let mut trace = Vec::new();
        let pools = policy::locate_with_latency(
            &self.steps,
            &self.places,
            location,
            &cidr_matches,
            &input,
            Some(&mut trace),
        );
        let mut candidates = self.pool_ids();
        // One trace entry per location step, in order.
        let steps = self
            .steps
            .iter()
            .filter(|step| policy::is_location_step(step))
            .zip(trace)
            .map(|(step, traced)| {
                let before = std::mem::replace(&mut candidates, traced.pools.clone());
                let latency = match (step, latency) {
                    (
                        Step::Latency {
                            margin_percent,
                            margin_ms,
                        },
                        Some(latency),
                    ) => {
                        let places: Vec<Candidate<'_>> = before
                            .iter()
                            .filter_map(|id| self.places.iter().find(|place| &place.id == id))
                            .map(|place| Candidate {
                                pool: &place.id,
                                site: place.site,
                            })
                            .collect();
                        Some(latency.trace_step(
                            &places,
                            &traced.pools,
                            &self.latency_chosen,
                            (*margin_percent, *margin_ms),
                            location.degrees().is_some(),
                        ))
                    }
                    _ => None,
                };
                LocationStep {
                    step: traced.step.to_owned(),
                    // The source's own label (with the matrix line or
                    // "measured"); the step's text when no source decided.
                    matched: latency
                        .as_ref()
                        .and_then(|latency| latency.source.as_ref())
                        .map_or(traced.matched, |source| source.label.clone()),
                    input: before,
                    output: traced.pools,
                    latency,
                }
            })
            .collect();
        let (_, scope) = self.start(client);
        let ids = pools
            .iter()
            .map(|&pool| self.places[usize::from(pool)].id.clone())
            .collect();
        (steps, ids, scope)
    }

    /// Whether the policy has a `latency` step (explain then looks up the
    /// client's latency sources).
    pub fn uses_latency(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, Step::Latency { .. }))
    }
}

fn longest_match(
    entries: &[(crate::config::steering::IpNet, Vec<String>)],
    client: IpAddr,
) -> Option<usize> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, (network, _))| prefix_contains(network.address, network.prefix_len, client))
        .max_by_key(|(_, (network, _))| network.prefix_len)
        .map(|(index, _)| index)
}

fn prefix_contains(network: IpAddr, prefix_len: u8, address: IpAddr) -> bool {
    match (network, address) {
        (IpAddr::V4(network), IpAddr::V4(address)) => {
            let mask = if prefix_len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix_len))
            };
            u32::from(network) & mask == u32::from(address) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(address)) => {
            let mask = if prefix_len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix_len))
            };
            u128::from(network) & mask == u128::from(address) & mask
        }
        _ => false,
    }
}

fn address_bits(address: IpAddr) -> (u128, u8) {
    match address {
        IpAddr::V4(address) => (u128::from(u32::from(address)), 32),
        IpAddr::V6(address) => (u128::from(address), 128),
    }
}

/// Compiles every steered name. `zone_nodata` is not needed here: the
/// table answers NODATA from the zone. Errors name the config key path.
pub(super) fn compile_policies(
    config: &SteeringConfig,
    maps: &LocationMaps,
    admin: &AdminState,
    config_file: &std::path::Path,
    registry: &DecisionRegistry,
    latency: Option<&LatencySnapshot>,
    aliases: Option<&AliasAddresses>,
) -> Result<(Vec<CompiledPolicy>, HealthView), Vec<String>> {
    let health_pools: Vec<(String, Vec<EndpointSlot>)> = config
        .pools
        .iter()
        .map(|pool| {
            let slots = match &pool.members {
                PoolMembers::Addresses(endpoints) => endpoints
                    .iter()
                    .map(|endpoint| EndpointSlot {
                        address: endpoint.address,
                        target: config.probe_target(pool, endpoint),
                    })
                    .collect(),
                // Alias addresses are the target operator's to keep
                // healthy: never probed, so no slots (always up).
                PoolMembers::Cname(_) | PoolMembers::Alias(_) => Vec::new(),
            };
            (pool.id.clone(), slots)
        })
        .collect();
    let health = HealthView::new(&health_pools, admin);
    // First health slot of each config pool.
    let mut first_slot = Vec::with_capacity(config.pools.len());
    let mut next = 0u32;
    for (_, slots) in &health_pools {
        first_slot.push(next);
        next += slots.len() as u32;
    }

    let mut errors = Vec::new();
    let mut policies = Vec::new();
    for steered in &config.steered {
        match compile_one(
            config,
            steered,
            maps,
            &first_slot,
            registry,
            latency,
            aliases,
        ) {
            Ok(policy) => policies.push(policy),
            // `policy[2]: ...` continues the key path; anything else follows it.
            Err(error) if error.starts_with("policy[") => errors.push(format!(
                "{}: {}.{error}",
                config_file.display(),
                steered.key_path
            )),
            Err(error) => errors.push(format!(
                "{}: {}: {error}",
                config_file.display(),
                steered.key_path
            )),
        }
    }
    if errors.is_empty() {
        Ok((policies, health))
    } else {
        Err(errors)
    }
}

fn compile_one(
    config: &SteeringConfig,
    steered: &crate::config::steering::SteeredName,
    maps: &LocationMaps,
    first_slot: &[u32],
    registry: &DecisionRegistry,
    latency: Option<&LatencySnapshot>,
    aliases: Option<&AliasAddresses>,
) -> Result<CompiledPolicy, String> {
    let dynamic = policy::dynamic_steps(&steered.policy)
        .map_err(|(index, message)| format!("policy[{index}]: {message}"))?;
    let qtype = u16::from(steered.record_type.record_type());
    // The policy's pools: the steered pools, then a fallback pool if it is another one.
    let mut pool_ids: Vec<&String> = steered.pools.iter().collect();
    let when_all_down = match &steered.when_all_down {
        WhenAllDown::FailOpen => AllDown::FailOpen,
        WhenAllDown::NoData => AllDown::NoData,
        WhenAllDown::ServFail => AllDown::ServFail,
        WhenAllDown::Pool(id) => {
            let position = match pool_ids.iter().position(|known| *known == id) {
                Some(position) => position,
                None => {
                    pool_ids.push(id);
                    pool_ids.len() - 1
                }
            };
            AllDown::Pool(position as u16)
        }
    };
    if pool_ids.len() > MAX_POOLS {
        return Err(format!("at most {MAX_POOLS} pools per steered name"));
    }
    let mut pools = Vec::new();
    let mut endpoints = Vec::new();
    let mut records = Vec::new();
    let mut places = Vec::new();
    let mut unresolved = false;
    for id in &pool_ids {
        let (index, pool) = config
            .pools
            .iter()
            .enumerate()
            .find(|(_, pool)| &pool.id == *id)
            .ok_or_else(|| format!("unknown pool {id:?}"))?;
        let site_index = config
            .sites
            .iter()
            .position(|site| site.id == pool.site)
            .unwrap_or(usize::MAX);
        let site = config.sites.get(site_index);
        places.push(PoolPlace {
            id: pool.id.clone(),
            coordinates: site.and_then(|site| site.coordinates),
            site: site_index,
        });
        let endpoints_start = endpoints.len() as u32;
        match &pool.members {
            PoolMembers::Addresses(members) => {
                for (offset, member) in members.iter().enumerate() {
                    let rdata: Vec<u8> = match (qtype, member.address) {
                        (TYPE_A, IpAddr::V4(address)) => address.octets().to_vec(),
                        (TYPE_AAAA, IpAddr::V6(address)) => address.octets().to_vec(),
                        _ => continue,
                    };
                    let start = records.len() as u32;
                    push_record(&mut records, qtype, steered.ttl, &rdata);
                    endpoints.push(PolicyEndpoint {
                        start,
                        length: (records.len() as u32 - start) as u16,
                        weight: member.weight,
                        slot: first_slot[index] + offset as u32,
                    });
                }
            }
            PoolMembers::Cname(target) => {
                if qtype != TYPE_CNAME {
                    return Err(format!("pool {id:?} holds a CNAME, not addresses"));
                }
                let start = records.len() as u32;
                // Uncompressed: the target is rarely below the question.
                let mut rdata = Vec::new();
                for label in target.iter() {
                    rdata.push(label.len() as u8);
                    rdata.extend_from_slice(label);
                }
                rdata.push(0);
                push_record(&mut records, qtype, steered.ttl, &rdata);
                endpoints.push(PolicyEndpoint {
                    start,
                    length: (records.len() as u32 - start) as u16,
                    weight: 1,
                    slot: u32::MAX,
                });
            }
            PoolMembers::Alias(target) => {
                let known = aliases.and_then(|aliases| aliases.get(target));
                unresolved |= known.is_none();
                let (v4, v6) = known.map_or((&[][..], &[][..]), |known| {
                    (known.v4.as_slice(), known.v6.as_slice())
                });
                let rdata: Vec<Vec<u8>> = match qtype {
                    TYPE_A => v4.iter().map(|address| address.octets().to_vec()).collect(),
                    TYPE_AAAA => v6.iter().map(|address| address.octets().to_vec()).collect(),
                    _ => return Err(format!("pool {id:?} is an alias, not a CNAME")),
                };
                for rdata in rdata.iter().take(MAX_ANSWER) {
                    let start = records.len() as u32;
                    push_record(&mut records, qtype, steered.ttl, rdata);
                    endpoints.push(PolicyEndpoint {
                        start,
                        length: (records.len() as u32 - start) as u16,
                        weight: 1,
                        slot: u32::MAX,
                    });
                }
            }
        }
        let endpoints_len = endpoints.len() as u32 - endpoints_start;
        // An alias pool may be empty: its target has no such address (a
        // NODATA) or none known yet; a `healthy` step passes over it.
        if endpoints_len == 0 && !matches!(pool.members, PoolMembers::Alias(_)) {
            return Err(format!(
                "pool {id:?} has no address for {}",
                type_label(qtype)
            ));
        }
        pools.push(PolicyPool {
            health_pool: index as u32,
            sticky_seed: policy::sticky_seed(&pool.id),
            weight: pool.weight,
            endpoints_start,
            endpoints_len: endpoints_len.min(u32::from(u16::MAX)) as u16,
            min_healthy: pool.min_healthy,
        });
    }
    // Only the steered pools are candidates; a fallback pool is not.
    let candidates = steered.pools.len();
    let candidate_places = &places[..candidates];

    let cidr_steps: Vec<Vec<(crate::config::steering::IpNet, Vec<String>)>> = steered
        .policy
        .iter()
        .filter_map(|step| match step {
            Step::Cidr(entries) => Some(entries.clone()),
            _ => None,
        })
        .collect();
    let needs_location = steered.policy.iter().any(|step| {
        matches!(
            step,
            Step::Geofence(_)
                | Step::Geo { .. }
                | Step::Asn(_)
                | Step::Nearest { .. }
                | Step::Latency { .. }
        )
    });
    let has_latency = steered
        .policy
        .iter()
        .any(|step| matches!(step, Step::Latency { .. }));
    // Without a step that can drop, choose among or take several pools,
    // the answer is the first pool of the decision: decisions that agree
    // on it are one decision, which merges more prefixes (wider ECS
    // scopes) and keeps the decision tables small.
    let only_first_pool = !dynamic.iter().any(|step| {
        matches!(
            step,
            Dynamic::Healthy { .. } | Dynamic::Weighted | Dynamic::Sticky | Dynamic::First(_)
        )
    });
    let empty_snapshot = LatencySnapshot::default();
    let snapshot = latency.filter(|_| has_latency).unwrap_or(&empty_snapshot);
    let label = format!("{} {}", steered.name, type_label(qtype));
    let no_previous = Choices::default();
    let previous: &Choices = snapshot
        .previous
        .get(&label)
        .map_or(&no_previous, |previous| previous);
    // Sized for last time's sources: a million inserts never rehash.
    let chosen = std::cell::RefCell::new(Choices::with_capacity_and_hasher(
        previous.len(),
        Default::default(),
    ));

    let mut decisions: Vec<(u32, u16)> = Vec::new();
    let mut decision_pools: Vec<u16> = Vec::new();
    // Fx for the maps keyed by this compile's own integers: each sees one
    // lookup per leaf of the prefix map, a million with a latency model.
    let mut decision_ids: FxHashMap<Vec<u16>, u32> = FxHashMap::default();
    let mut intern_decision = |pools: Vec<u16>| -> u32 {
        // Most leaves reach a decision already seen: look it up before
        // giving the map a key of its own.
        if let Some(&id) = decision_ids.get(&pools) {
            return id;
        }
        decisions.push((decision_pools.len() as u32, pools.len() as u16));
        decision_pools.extend_from_slice(&pools);
        let id = (decisions.len() - 1) as u32;
        decision_ids.insert(pools, id);
        id
    };

    let mut family_map = |bits: u8, location_map: &PrefixMap| -> PrefixMap {
        // CIDR matches: one map per cidr step (entry index + 1, 0 = none),
        // combined into one map of tuple ids.
        let mut tuples: Vec<Vec<Option<usize>>> = vec![Vec::new()];
        let mut tuple_map = PrefixMap::uniform(bits, 0);
        for entries in &cidr_steps {
            let mut builder = PrefixMapBuilder::new(bits, 0);
            let mut ordered: Vec<(usize, &(crate::config::steering::IpNet, Vec<String>))> =
                entries.iter().enumerate().collect();
            // Longest prefix wins: insert shorter ones first.
            ordered.sort_by_key(|(_, (network, _))| network.prefix_len);
            for (index, (network, _)) in ordered {
                let (address, width) = address_bits(network.address);
                if width == bits {
                    builder.insert(address, network.prefix_len, index as u32 + 1);
                }
            }
            let step_map = builder.finish();
            let mut ids: HashMap<Vec<Option<usize>>, u32> = HashMap::new();
            for (id, tuple) in tuples.iter().enumerate() {
                ids.insert(tuple.clone(), id as u32);
            }
            let mut next_tuples = tuples.clone();
            tuple_map = PrefixMap::product(&tuple_map, &step_map, &mut |tuple, matched| {
                let mut combined = tuples[tuple as usize].clone();
                combined.push(matched.checked_sub(1).map(|index| index as usize));
                *ids.entry(combined.clone()).or_insert_with(|| {
                    next_tuples.push(combined);
                    (next_tuples.len() - 1) as u32
                })
            });
            tuples = next_tuples;
        }
        // Latency prefix sources: the most specific one covering each
        // address (index + 1, 0 = none), paired with the CIDR tuple.
        let mut pairs: Vec<(u32, u32)> = (0..tuples.len() as u32).map(|id| (id, 0)).collect();
        if !snapshot.prefixes.is_empty() {
            let mut builder = PrefixMapBuilder::new(bits, 0);
            // Sorted shortest first, so the most specific is inserted last.
            for (index, source) in snapshot.prefixes.iter().enumerate() {
                let (network, prefix_len) = source.network();
                let (address, width) = address_bits(network);
                if width == bits {
                    builder.insert(address, prefix_len, index as u32 + 1);
                }
            }
            let sources = builder.finish();
            if cidr_steps.is_empty() {
                // One tuple everywhere: each source value is its own pair,
                // and the product would only copy a million-leaf map.
                pairs = (0..=snapshot.prefixes.len() as u32)
                    .map(|source| (0, source))
                    .collect();
                tuple_map = sources;
            } else {
                let mut ids: FxHashMap<(u32, u32), u32> = FxHashMap::default();
                let mut next_pairs = Vec::new();
                tuple_map = PrefixMap::product(&tuple_map, &sources, &mut |tuple, source| {
                    *ids.entry((tuple, source)).or_insert_with(|| {
                        next_pairs.push((tuple, source));
                        (next_pairs.len() - 1) as u32
                    })
                });
                pairs = next_pairs;
            }
        }
        let default_location = Location::default();
        let empty_location_map = PrefixMap::uniform(bits, 0);
        let locations = if needs_location {
            location_map
        } else {
            &empty_location_map
        };
        PrefixMap::product(locations, &tuple_map, &mut |location, pair| {
            let location = maps
                .locations
                .get(location as usize)
                .unwrap_or(&default_location);
            let (tuple, source) = pairs[pair as usize];
            let matches = &tuples[tuple as usize];
            // Tuples carry one entry per cidr step once every step was combined.
            let padded: Vec<Option<usize>> = (0..cidr_steps.len())
                .map(|step| matches.get(step).copied().flatten())
                .collect();
            let input = LatencyInput {
                sources: if has_latency {
                    snapshot.sources(source.checked_sub(1).map(|index| index as usize), location)
                } else {
                    Vec::new()
                },
                previous: Some(previous),
                chosen: Some(&chosen),
            };
            let mut pools = policy::locate_with_latency(
                &steered.policy,
                candidate_places,
                location,
                &padded,
                &input,
                None,
            );
            if only_first_pool {
                pools.truncate(1);
            }
            intern_decision(pools)
        })
    };
    let mut v4 = family_map(32, &maps.v4);
    let mut v6 = family_map(128, &maps.v6);
    v4.accelerate();
    v6.accelerate();
    let decision_counters = register_decisions(
        registry,
        &steered.name.to_string(),
        type_label(qtype),
        &pool_ids,
        candidates,
        &dynamic,
        when_all_down,
    );

    let latency_chosen = Arc::new(chosen.into_inner());
    Ok(CompiledPolicy {
        label,
        latency_chosen,
        only_first_pool,
        qtype,
        pools,
        endpoints,
        records,
        decisions,
        decision_pools,
        v4,
        v6,
        sticky: dynamic.contains(&Dynamic::Sticky),
        dynamic,
        when_all_down,
        unresolved,
        steps: steered.policy.clone(),
        places: candidate_places.to_vec(),
        cidr_steps,
        decision_counters,
    })
}

/// Registers the keys of every outcome the policy can reach and lays their
/// slots out as [`pool_decision`] says. `pool_ids` are the policy's pools,
/// the `candidates` first; `when_all_down` only acts through a `healthy`
/// step, so without one only the policy's own choices are registered.
fn register_decisions(
    registry: &DecisionRegistry,
    name: &str,
    record_type: &str,
    pool_ids: &[&String],
    candidates: usize,
    dynamic: &[Dynamic],
    when_all_down: AllDown,
) -> Vec<DecisionSlot> {
    let key = |pool: &str, reason: Reason| DecisionKey {
        name: name.to_owned(),
        record_type: record_type.to_owned(),
        pool: pool.to_owned(),
        reason,
    };
    let all_down = dynamic
        .iter()
        .any(|step| matches!(step, Dynamic::Healthy { .. }))
        .then_some(when_all_down);
    let mut counters = vec![OVERFLOW_SLOT; POOL_DECISIONS + pool_ids.len() * REASONS_PER_POOL];
    // Always reachable: even a pool that was up a moment ago can have no
    // usable endpoint by the time its records are copied.
    counters[NODATA_DECISION] = registry.slot(key("", Reason::NoData));
    if all_down == Some(AllDown::ServFail) {
        counters[SERVFAIL_DECISION] = registry.slot(key("", Reason::ServFail));
    }
    for (position, pool) in pool_ids.iter().enumerate() {
        let index = position as u16;
        let mut reasons = Vec::new();
        if position < candidates {
            reasons.push(Reason::Policy);
            if all_down == Some(AllDown::FailOpen) {
                reasons.push(Reason::FailOpen);
            }
        }
        if all_down == Some(AllDown::Pool(index)) {
            reasons.push(Reason::Fallback);
        }
        for reason in reasons {
            counters[pool_decision(index, reason)] = registry.slot(key(pool, reason));
        }
    }
    counters
}

fn type_label(qtype: u16) -> &'static str {
    match qtype {
        TYPE_A => "A",
        TYPE_AAAA => "AAAA",
        _ => "CNAME",
    }
}

/// Appends `0xC00C TYPE IN TTL RDLENGTH RDATA`.
fn push_record(records: &mut Vec<u8>, qtype: u16, ttl: u32, rdata: &[u8]) {
    records.extend_from_slice(&[0xC0, 0x0C]);
    records.extend_from_slice(&qtype.to_be_bytes());
    records.extend_from_slice(&1u16.to_be_bytes());
    records.extend_from_slice(&ttl.to_be_bytes());
    records.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    records.extend_from_slice(rdata);
}

/// Explain-side views of a compiled policy. They allocate freely and are
/// never on the query path; `explain_dynamic` mirrors `select` step for
/// step (a test in `tests/explain.rs` holds them to the same answers).
impl CompiledPolicy {
    /// The owner name, absolute (`www.example.test.`).
    pub fn name(&self) -> &str {
        self.label
            .rsplit_once(' ')
            .map_or(self.label.as_str(), |(name, _)| name)
    }

    /// `A`, `AAAA` or `CNAME`.
    pub fn type_name(&self) -> &'static str {
        type_label(self.qtype)
    }

    /// The candidate pools, in configured order (a `when_all_down` pool
    /// that is not a candidate is not listed).
    pub fn pool_ids(&self) -> Vec<String> {
        self.places.iter().map(|place| place.id.clone()).collect()
    }

    /// The TTL of every answer record.
    pub fn ttl(&self) -> u32 {
        // Every record starts owner (2), type (2), class (2), TTL (4).
        self.records
            .get(6..10)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map_or(0, u32::from_be_bytes)
    }

    /// True when answers are drawn at random (a `weighted` step).
    pub fn is_random(&self) -> bool {
        self.dynamic.contains(&Dynamic::Weighted)
    }

    /// `when_all_down` as written: `fail_open`, `nodata`, `servfail`,
    /// `pool web-iad`. `pool_names` are the configuration's pool ids in
    /// config order (the health view's numbering).
    pub fn when_all_down_label(&self, pool_names: &[String]) -> String {
        match self.when_all_down {
            AllDown::FailOpen => "fail_open".to_owned(),
            AllDown::NoData => "nodata".to_owned(),
            AllDown::ServFail => "servfail".to_owned(),
            AllDown::Pool(pool) => format!("pool {}", self.pool_name(pool, pool_names)),
        }
    }

    fn pool_name(&self, pool: u16, pool_names: &[String]) -> String {
        if let Some(place) = self.places.get(usize::from(pool)) {
            return place.id.clone();
        }
        // Only a `when_all_down` pool is not a candidate place.
        self.pools
            .get(usize::from(pool))
            .and_then(|compiled| pool_names.get(compiled.health_pool as usize))
            .cloned()
            .unwrap_or_else(|| format!("pool #{pool}"))
    }

    /// Runs the per-query steps for `client` with the current `health`, as
    /// [`CompiledPolicy::select`] does, and reports each step's input and
    /// output. A `weighted` step draws here independently of any answer.
    pub fn explain_dynamic(
        &self,
        health: &HealthView,
        client: IpAddr,
        pool_names: &[String],
    ) -> DynamicTrace {
        let names = |pools: &[u16]| -> Vec<String> {
            pools
                .iter()
                .map(|&pool| self.pool_name(pool, pool_names))
                .collect()
        };
        let (list, _) = self.start(client);
        let mut pools: Vec<u16> = list.as_slice().to_vec();
        let decision = names(&pools);
        let mut steps = Vec::new();
        let mut filter_health = false;
        let mut weighted_order = false;
        let mut limit = None;
        let mut ended: Option<(Outcome, String)> = None;
        if pools.is_empty() {
            ended = Some((
                Outcome::NoData,
                "the location steps left no pool for this client".to_owned(),
            ));
        }
        for step in &self.dynamic {
            if ended.is_some() {
                break;
            }
            let input = names(&pools);
            let mut random_step = false;
            let (step_name, detail) = match *step {
                Dynamic::Healthy { min_healthy } => {
                    let mut kept = Vec::new();
                    let mut dropped = Vec::new();
                    for &pool in &pools {
                        let compiled = &self.pools[usize::from(pool)];
                        if self.pool_is_up(health, compiled, min_healthy) {
                            kept.push(pool);
                        } else {
                            dropped.push(self.pool_health(health, pool, min_healthy, pool_names));
                        }
                    }
                    let detail = if !kept.is_empty() {
                        pools = kept;
                        filter_health = true;
                        if dropped.is_empty() {
                            "every pool is healthy; down endpoints are left out".to_owned()
                        } else {
                            format!("dropped {}", dropped.join("; "))
                        }
                    } else {
                        let none = format!("no pool is healthy ({})", dropped.join("; "));
                        match self.when_all_down {
                            AllDown::FailOpen => {
                                filter_health = false;
                                format!(
                                    "{none}; when_all_down = fail_open: answer as if all were up"
                                )
                            }
                            AllDown::NoData => {
                                pools.clear();
                                ended = Some((
                                    Outcome::NoData,
                                    format!("{none}; when_all_down = nodata"),
                                ));
                                "when_all_down = nodata".to_owned()
                            }
                            AllDown::ServFail => {
                                pools.clear();
                                ended = Some((
                                    Outcome::ServFail,
                                    format!("{none}; when_all_down = servfail"),
                                ));
                                "when_all_down = servfail".to_owned()
                            }
                            AllDown::Pool(pool) => {
                                pools = vec![pool];
                                filter_health = false;
                                format!(
                                    "{none}; when_all_down = pool {}: answer with it whatever \
                                     its health",
                                    self.pool_name(pool, pool_names)
                                )
                            }
                        }
                    };
                    ("healthy", detail)
                }
                Dynamic::Priority => {
                    pools.truncate(1);
                    ("priority", "kept the first pool".to_owned())
                }
                Dynamic::Weighted => {
                    let weights: Vec<u32> = pools
                        .iter()
                        .map(|&pool| self.pools[usize::from(pool)].weight)
                        .collect();
                    let offered: Vec<String> = pools
                        .iter()
                        .zip(&weights)
                        .map(|(&pool, weight)| {
                            format!("{} weight {weight}", self.pool_name(pool, pool_names))
                        })
                        .collect();
                    let chosen = weighted_choice(&weights, random());
                    if let Some(&pool) = pools.get(chosen) {
                        pools = vec![pool];
                    }
                    weighted_order = true;
                    random_step = true;
                    (
                        "weighted",
                        format!(
                            "kept one pool at random by weight ({}); this draw is not the \
                             answer's: every query draws again and orders the pool's \
                             addresses at random by weight",
                            offered.join(", ")
                        ),
                    )
                }
                Dynamic::Sticky => {
                    let weights: Vec<u32> = pools
                        .iter()
                        .map(|&pool| self.pools[usize::from(pool)].weight)
                        .collect();
                    let seeds: Vec<u64> = pools
                        .iter()
                        .map(|&pool| self.pools[usize::from(pool)].sticky_seed)
                        .collect();
                    let chosen = sticky_choice(sticky_key(client), &seeds, &weights);
                    if let Some(&pool) = pools.get(chosen) {
                        pools = vec![pool];
                    }
                    (
                        "sticky",
                        format!(
                            "kept one pool by a hash of the client's /{}",
                            sticky_scope(client)
                        ),
                    )
                }
                Dynamic::First(count) => {
                    limit = Some(count.min(MAX_ANSWER));
                    (
                        "first",
                        format!("answer with at most {count} records, from these pools in order"),
                    )
                }
            };
            steps.push(DynamicStepTrace {
                step: step_name,
                input,
                output: names(&pools),
                detail,
                random: random_step,
            });
        }

        let mut answer_pools = Vec::new();
        let mut count = 0usize;
        if ended.is_none() {
            let pools_used = if limit.is_some() {
                pools.len()
            } else {
                pools.len().min(1)
            };
            let most = limit.unwrap_or(MAX_ANSWER);
            for &pool in &pools[..pools_used] {
                let compiled = &self.pools[usize::from(pool)];
                let mut endpoints = Vec::new();
                for endpoint in self.pool_endpoints(compiled).iter().take(MAX_ANSWER) {
                    let up = health.is_up(compiled.health_pool, endpoint.slot);
                    let answered = (!filter_health || up) && count < most;
                    if answered {
                        count += 1;
                    }
                    endpoints.push(EndpointTrace {
                        value: self.endpoint_value(endpoint),
                        weight: endpoint.weight,
                        up,
                        answered,
                    });
                }
                answer_pools.push(PoolTrace {
                    pool: self.pool_name(pool, pool_names),
                    endpoints,
                });
            }
        }
        let (outcome, reason) = ended.unwrap_or_else(|| {
            if count == 0 {
                (
                    Outcome::NoData,
                    "no endpoint of the answer pools is usable".to_owned(),
                )
            } else {
                let order = if weighted_order {
                    ", in random order by weight"
                } else {
                    ""
                };
                let from = names(&pools[..answer_pools.len()]).join(", ");
                let records = if count == 1 { "record" } else { "records" };
                (
                    Outcome::Records,
                    format!("{count} {records} from {from}{order}"),
                )
            }
        });
        DynamicTrace {
            decision,
            steps,
            answer_pools,
            limit,
            outcome,
            reason,
            random: self.is_random(),
        }
    }

    /// Why `healthy` dropped a pool: drained, or how many endpoints are up.
    fn pool_health(
        &self,
        health: &HealthView,
        pool: u16,
        min_healthy: f64,
        pool_names: &[String],
    ) -> String {
        let compiled = &self.pools[usize::from(pool)];
        let min_healthy = compiled.min_healthy.unwrap_or(min_healthy);
        let name = self.pool_name(pool, pool_names);
        // Slot u32::MAX has no endpoint state, so only the drain decides it
        // (CNAME targets rely on the same rule).
        if !health.is_up(compiled.health_pool, u32::MAX) {
            return format!("{name} (drained)");
        }
        let endpoints = self.pool_endpoints(compiled);
        let up = endpoints
            .iter()
            .filter(|endpoint| health.is_up(compiled.health_pool, endpoint.slot))
            .count();
        if min_healthy > 0.0 {
            format!(
                "{name} ({up} of {} endpoints up, min_healthy {min_healthy})",
                endpoints.len()
            )
        } else {
            format!("{name} ({up} of {} endpoints up)", endpoints.len())
        }
    }

    /// An endpoint's address or CNAME target, decoded from its record.
    fn endpoint_value(&self, endpoint: &PolicyEndpoint) -> String {
        let start = endpoint.start as usize;
        // Owner, type, class, TTL and RDLENGTH take 12 bytes.
        let rdata = self
            .records
            .get(start + 12..start + usize::from(endpoint.length))
            .unwrap_or_default();
        match self.qtype {
            TYPE_A => {
                if let Ok(octets) = <[u8; 4]>::try_from(rdata) {
                    return std::net::Ipv4Addr::from(octets).to_string();
                }
            }
            TYPE_AAAA => {
                if let Ok(octets) = <[u8; 16]>::try_from(rdata) {
                    return std::net::Ipv6Addr::from(octets).to_string();
                }
            }
            _ => {}
        }
        super::display_wire_name(rdata)
    }
}
