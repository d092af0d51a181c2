//! Steering policies: a steered name's chain of steps, split in two.
//!
//! Location steps (`geofence`, `geo`, `cidr`, `asn`, `nearest`) depend only
//! on where the client is, so [`locate`] evaluates them on the control plane
//! for every distinct (location, CIDR match) and the table compiles the
//! results into a [`prefix_map::PrefixMap`] whose leaves are *decisions*:
//! ordered candidate pool lists. Location steps filter and reorder, so they
//! commute with the `healthy` filter and run first wherever `healthy` is
//! written; a selection step (`priority`, `weighted`, `sticky`, `first`)
//! must come after every location step (the config check says so).
//!
//! The remaining [`Dynamic`] steps run per query on the decision's short
//! pool list in [`select`]: health from atomics, randomness from a
//! thread-local generator, no locks and no allocation.

pub mod large_table;
pub mod prefix_map;

use std::cell::{Cell, RefCell};
use std::net::IpAddr;

use crate::config::steering::{Region, Step};
use crate::geo::Location;
use crate::latency::snapshot::{Choices, SourceKey};

/// Most pools a steered name can have (the config check enforces it).
pub const MAX_POOLS: usize = 64;
/// Most records one steered answer carries.
pub const MAX_ANSWER: usize = 64;

/// A step that runs per query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dynamic {
    /// Drop down endpoints, and pools below their healthy fraction.
    Healthy {
        /// Fraction of a pool's endpoints that must be up.
        min_healthy: f64,
    },
    /// Keep the first pool.
    Priority,
    /// Keep one pool at random by weight; weighted order of its addresses.
    Weighted,
    /// Keep one pool by consistent hash of the client's prefix.
    Sticky,
    /// At most N addresses across the remaining pools.
    First(usize),
}

/// True for steps that depend only on the client's location.
pub fn is_location_step(step: &Step) -> bool {
    matches!(
        step,
        Step::Geofence(_)
            | Step::Geo { .. }
            | Step::Cidr(_)
            | Step::Asn(_)
            | Step::Nearest { .. }
            | Step::Latency { .. }
    )
}

/// Splits a chain into its per-query part; errors name the step index of a
/// location step written after a selection step.
pub fn dynamic_steps(policy: &[Step]) -> Result<Vec<Dynamic>, (usize, String)> {
    let mut dynamic = Vec::new();
    let mut selection_seen: Option<&'static str> = None;
    for (index, step) in policy.iter().enumerate() {
        let (name, converted) = match step {
            Step::Healthy { min_healthy } => (
                None,
                Dynamic::Healthy {
                    min_healthy: *min_healthy,
                },
            ),
            Step::Priority => (Some("priority"), Dynamic::Priority),
            Step::Weighted => (Some("weighted"), Dynamic::Weighted),
            Step::Sticky => (Some("sticky"), Dynamic::Sticky),
            Step::First(count) => (Some("first"), Dynamic::First(*count)),
            location => {
                if let Some(selection) = selection_seen {
                    return Err((
                        index,
                        format!(
                            "{} cannot follow {selection}: location steps choose among pools, so they must come before any step that keeps only some of them",
                            step_name(location)
                        ),
                    ));
                }
                continue;
            }
        };
        if name.is_some() {
            selection_seen = name;
        }
        dynamic.push(converted);
    }
    Ok(dynamic)
}

/// The config name of a step.
pub fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Geofence(_) => "geofence",
        Step::Geo { .. } => "geo",
        Step::Cidr(_) => "cidr",
        Step::Asn(_) => "asn",
        Step::Nearest { .. } => "nearest",
        Step::Latency { .. } => "latency",
        Step::Healthy { .. } => "healthy",
        Step::Priority => "priority",
        Step::Weighted => "weighted",
        Step::Sticky => "sticky",
        Step::First(_) => "first",
    }
}

/// A pool as location steps see it.
#[derive(Clone, Debug)]
pub struct PoolPlace {
    /// Pool id.
    pub id: String,
    /// The site's coordinates in degrees, when known.
    pub coordinates: Option<(f64, f64)>,
    /// The site's index in the config's sites (latency data is per site).
    pub site: usize,
}

/// Latency data for one client network, as the `latency` step reads it.
#[derive(Default)]
pub struct LatencyInput<'a> {
    /// Where RTTs are known, most specific first: a label (`network
    /// 198.51.100.0/24`, `matrix AS3320`, ...) that also keys the margin,
    /// and (site index, RTT in ms) pairs. The first source with an RTT for
    /// any candidate decides.
    pub sources: Vec<(SourceKey, &'a [(usize, f64)])>,
    /// The site each source chose at the previous compile.
    pub previous: Option<&'a Choices>,
    /// Where this compile's choices are written, for the next one.
    pub chosen: Option<&'a RefCell<Choices>>,
}

/// Orders `candidates` by RTT from the first source of `latency` that has
/// any of their sites; candidates without an RTT there follow, by
/// distance when the client's coordinates are known. The previous winner
/// of that source stays first unless the fastest is better by both margins.
fn order_by_latency(
    candidates: &mut Vec<u16>,
    pools: &[PoolPlace],
    location: &Location,
    latency: &LatencyInput<'_>,
    margins: (f64, f64),
    describe: bool,
) -> String {
    let rtt_of = |rtts: &[(usize, f64)], pool: u16| {
        let site = pools[usize::from(pool)].site;
        rtts.iter()
            .find(|(known, _)| *known == site)
            .map(|(_, rtt)| *rtt)
    };
    let Some((key, rtts)) = latency
        .sources
        .iter()
        .find(|(_, rtts)| candidates.iter().any(|&pool| rtt_of(rtts, pool).is_some()))
    else {
        // No latency data at all: distance is the last fallback.
        return match location.degrees() {
            Some(client) => {
                sort_by_distance(candidates, pools, client, &[]);
                if describe {
                    "no latency data: by distance".to_owned()
                } else {
                    String::new()
                }
            }
            None if describe => "no latency data and no coordinates: order unchanged".to_owned(),
            None => String::new(),
        };
    };
    let mut measured: Vec<(f64, u16)> = Vec::new();
    let mut unmeasured: Vec<u16> = Vec::new();
    for &pool in candidates.iter() {
        match rtt_of(rtts, pool) {
            Some(rtt) => measured.push((rtt, pool)),
            None => unmeasured.push(pool),
        }
    }
    measured.sort_by(|left, right| left.0.total_cmp(&right.0));
    // Hysteresis: a previous winner still measured keeps the lead unless
    // the fastest beats it by both margins.
    let (margin_percent, margin_ms) = margins;
    let previous = latency
        .previous
        .and_then(|previous| previous.get(key))
        .and_then(|site| {
            measured
                .iter()
                .position(|(_, pool)| pools[usize::from(*pool)].site == *site)
        });
    if let Some(position) = previous.filter(|position| *position > 0) {
        let (best, _) = measured[0];
        let (held, _) = measured[position];
        let beaten = best <= held * (1.0 - margin_percent / 100.0) && best <= held - margin_ms;
        if !beaten {
            let winner = measured.remove(position);
            measured.insert(0, winner);
        }
    }
    if let Some(client) = location.degrees() {
        sort_by_distance(&mut unmeasured, pools, client, &[]);
    }
    if let (Some(chosen), Some((_, winner))) = (latency.chosen, measured.first()) {
        chosen
            .borrow_mut()
            .insert(*key, pools[usize::from(*winner)].site);
    }
    let description = if describe {
        let detail: Vec<String> = measured
            .iter()
            .map(|(rtt, pool)| format!("{} {rtt:.1} ms", pools[usize::from(*pool)].id))
            .collect();
        format!("{key}: {}", detail.join(", "))
    } else {
        String::new()
    };
    *candidates = measured
        .into_iter()
        .map(|(_, pool)| pool)
        .chain(unmeasured)
        .collect();
    description
}

/// Stable sort of `candidates` by distance from `client` to their sites
/// plus a per-pool bias; sites without coordinates go last.
fn sort_by_distance(
    candidates: &mut Vec<u16>,
    pools: &[PoolPlace],
    client: (f64, f64),
    bias_km: &[(String, f64)],
) {
    let score = |pool: u16| {
        let place = &pools[usize::from(pool)];
        let bias = bias_km
            .iter()
            .find(|(id, _)| id == &place.id)
            .map_or(0.0, |(_, bias)| *bias);
        place
            .coordinates
            .map_or(f64::INFINITY, |site| distance_km(client, site) + bias)
    };
    // Each distance once (trigonometry dominates compile time with many
    // sites); a stable sort keeps the configured order for equal distances.
    let mut scored: Vec<(f64, u16)> = candidates.iter().map(|&pool| (score(pool), pool)).collect();
    scored.sort_by(|left, right| left.0.total_cmp(&right.0));
    *candidates = scored.into_iter().map(|(_, pool)| pool).collect();
}

/// What one location step did, for `steer explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTrace {
    /// Step name.
    pub step: &'static str,
    /// What it matched on (`country DE`, `prefix 81.2.69.0/24`, `no match`).
    pub matched: String,
    /// Pool ids after the step.
    pub pools: Vec<String>,
}

fn region_matches(region: &Region, location: &Location) -> bool {
    match region {
        Region::Continent(code) => location.continent.as_deref() == Some(code),
        Region::Country(code) => location.country.as_deref() == Some(code),
        Region::Subdivision(country, subdivision) => {
            location.country.as_deref() == Some(country)
                && location.subdivision.as_deref() == Some(subdivision)
        }
    }
}

fn region_rank(region: &Region) -> u8 {
    match region {
        Region::Subdivision(..) => 3,
        Region::Country(_) => 2,
        Region::Continent(_) => 1,
    }
}

/// Great-circle distance in km (haversine).
pub fn distance_km(from: (f64, f64), to: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (latitude_from, longitude_from) = (from.0.to_radians(), from.1.to_radians());
    let (latitude_to, longitude_to) = (to.0.to_radians(), to.1.to_radians());
    let half_chord = ((latitude_to - latitude_from) / 2.0).sin().powi(2)
        + latitude_from.cos()
            * latitude_to.cos()
            * ((longitude_to - longitude_from) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * half_chord.sqrt().min(1.0).asin()
}

/// Keeps the pools of `wanted` (by id) that are candidates, in `wanted`'s order.
fn restrict(candidates: &[u16], wanted: &[String], pools: &[PoolPlace]) -> Vec<u16> {
    wanted
        .iter()
        .filter_map(|id| pools.iter().position(|pool| &pool.id == id))
        .map(|index| index as u16)
        .filter(|index| candidates.contains(index))
        .collect()
}

/// Runs the location steps of `policy` for a client at `location`, whose
/// longest matching prefix in each `cidr` step is given by `cidr_matches`
/// (one entry per cidr step, in order: the entry index, or None). Returns
/// the ordered candidate pools (indexes into `pools`) and, when `trace` is
/// given, what each step did.
pub fn locate(
    policy: &[Step],
    pools: &[PoolPlace],
    location: &Location,
    cidr_matches: &[Option<usize>],
    trace: Option<&mut Vec<StepTrace>>,
) -> Vec<u16> {
    locate_with_latency(
        policy,
        pools,
        location,
        cidr_matches,
        &LatencyInput::default(),
        trace,
    )
}

/// [`locate`], with the client network's latency data for `latency` steps.
pub fn locate_with_latency(
    policy: &[Step],
    pools: &[PoolPlace],
    location: &Location,
    cidr_matches: &[Option<usize>],
    latency: &LatencyInput<'_>,
    mut trace: Option<&mut Vec<StepTrace>>,
) -> Vec<u16> {
    let mut candidates: Vec<u16> = (0..pools.len() as u16).collect();
    let mut cidr_step = 0usize;
    // What each step matched is only for explain: a compile evaluates a
    // million locations and must not format text for each.
    let describe = trace.is_some();
    let text = |make: &dyn Fn() -> String| if describe { make() } else { String::new() };
    for step in policy.iter().filter(|step| is_location_step(step)) {
        let matched: String;
        match step {
            Step::Geofence(fences) => {
                let mut excluded = Vec::new();
                candidates.retain(|&pool| {
                    let id = &pools[usize::from(pool)].id;
                    let allowed = fences.iter().find(|(fenced, _)| fenced == id).is_none_or(
                        |(_, regions)| {
                            regions
                                .iter()
                                .any(|region| region_matches(region, location))
                        },
                    );
                    if !allowed {
                        excluded.push(id.clone());
                    }
                    allowed
                });
                matched = text(&|| {
                    if excluded.is_empty() {
                        "all allowed".to_owned()
                    } else {
                        format!("fenced out: {}", excluded.join(", "))
                    }
                });
            }
            Step::Geo { map, default } => {
                let best = map
                    .iter()
                    .filter(|(region, _)| region_matches(region, location))
                    .max_by_key(|(region, _)| region_rank(region));
                match (best, default) {
                    (Some((region, wanted)), _) => {
                        matched = text(&|| region_label(region));
                        candidates = restrict(&candidates, wanted, pools);
                    }
                    (None, Some(wanted)) => {
                        matched = text(&|| "default".to_owned());
                        candidates = restrict(&candidates, wanted, pools);
                    }
                    (None, None) => {
                        matched = text(&|| "no match and no default".to_owned());
                        candidates.clear();
                    }
                }
            }
            Step::Cidr(entries) => {
                let found = cidr_matches.get(cidr_step).copied().flatten();
                cidr_step += 1;
                match found.and_then(|index| entries.get(index)) {
                    Some((network, wanted)) => {
                        matched =
                            text(&|| format!("prefix {}/{}", network.address, network.prefix_len));
                        candidates = restrict(&candidates, wanted, pools);
                    }
                    None => matched = text(&|| "no match".to_owned()),
                }
            }
            Step::Asn(entries) => {
                match location
                    .asn
                    .and_then(|asn| entries.iter().find(|(listed, _)| *listed == asn))
                {
                    Some((asn, wanted)) => {
                        matched = text(&|| format!("AS{asn}"));
                        candidates = restrict(&candidates, wanted, pools);
                    }
                    None => {
                        matched = text(&|| {
                            location.asn.map_or_else(
                                || "no ASN known".to_owned(),
                                |asn| format!("AS{asn}: no match"),
                            )
                        });
                    }
                }
            }
            Step::Nearest { bias_km } => match location.degrees() {
                Some(client) => {
                    sort_by_distance(&mut candidates, pools, client, bias_km);
                    matched = text(&|| format!("client at {:.2},{:.2}", client.0, client.1));
                }
                None => matched = text(&|| "no coordinates: order unchanged".to_owned()),
            },
            Step::Latency {
                margin_percent,
                margin_ms,
            } => {
                matched = order_by_latency(
                    &mut candidates,
                    pools,
                    location,
                    latency,
                    (*margin_percent, *margin_ms),
                    describe,
                );
            }
            _ => continue,
        }
        if let Some(trace) = trace.as_deref_mut() {
            trace.push(StepTrace {
                step: step_name(step),
                matched,
                pools: candidates
                    .iter()
                    .map(|&pool| pools[usize::from(pool)].id.clone())
                    .collect(),
            });
        }
    }
    candidates
}

fn region_label(region: &Region) -> String {
    match region {
        Region::Continent(code) => format!("continent {code}"),
        Region::Country(code) => format!("country {code}"),
        Region::Subdivision(country, subdivision) => format!("subdivision {country}-{subdivision}"),
    }
}

thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0) };
}

/// A fast per-thread pseudo-random number (xorshift64*), seeded from the
/// thread's address space the first time. Steering only needs spread, not
/// secrecy.
pub fn random() -> u64 {
    RANDOM.with(|state| {
        let mut value = state.get();
        if value == 0 {
            let seed = state as *const Cell<u64> as u64;
            value = splitmix(
                seed ^ std::time::UNIX_EPOCH
                    .elapsed()
                    .map_or(1, |elapsed| elapsed.as_nanos() as u64),
            );
            value |= 1;
        }
        value ^= value >> 12;
        value ^= value << 25;
        value ^= value >> 27;
        state.set(value);
        value.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A well-mixed 64-bit hash of one integer (SplitMix64's finalizer).
pub fn splitmix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// The prefix `sticky` hashes: /24 of an IPv4 client, /48 of an IPv6 one.
pub fn sticky_key(client: IpAddr) -> u64 {
    match client {
        IpAddr::V4(address) => u64::from(u32::from(address) >> 8),
        IpAddr::V6(address) => (u128::from(address) >> 80) as u64 | (1 << 63),
    }
}

/// A pool's identity for `sticky`: a hash of its id, so that reordering,
/// adding or removing other pools never moves its clients.
pub fn sticky_seed(pool_id: &str) -> u64 {
    // FNV-1a, then mixed: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in pool_id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(hash)
}

/// Scope an answer needs when `sticky` decided it: the hashed prefix.
pub fn sticky_scope(client: IpAddr) -> u8 {
    match client {
        IpAddr::V4(_) => 24,
        IpAddr::V6(_) => 48,
    }
}

/// Index of the pool `sticky` keeps among `weights` (weighted rendezvous
/// hashing: adding or removing a pool moves only that pool's clients).
/// A pool of weight 0 is kept only when every candidate weighs 0.
pub fn sticky_choice(key: u64, pool_seeds: &[u64], weights: &[u32]) -> usize {
    let all_zero = weights.iter().all(|&weight| weight == 0);
    let mut best = 0usize;
    let mut best_score = f64::NEG_INFINITY;
    for (position, (&seed, &weight)) in pool_seeds.iter().zip(weights).enumerate() {
        let hash = splitmix(key ^ seed);
        // Uniform in (0, 1].
        let uniform = ((hash >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let weight = if all_zero { 1 } else { weight };
        let score = if weight == 0 {
            f64::NEG_INFINITY
        } else {
            -f64::from(weight) / uniform.ln()
        };
        if score > best_score {
            best_score = score;
            best = position;
        }
    }
    best
}

/// Index chosen at random with probability proportional to `weights`;
/// all-zero weights choose uniformly.
pub fn weighted_choice(weights: &[u32], random: u64) -> usize {
    let total: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
    if total == 0 {
        return (random % weights.len().max(1) as u64) as usize;
    }
    let mut point = random % total;
    for (index, &weight) in weights.iter().enumerate() {
        if point < u64::from(weight) {
            return index;
        }
        point -= u64::from(weight);
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests;
