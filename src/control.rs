//! The single writer of the routing table (control plane).
//!
//! [`build`] is the one pipeline from files to a table: config load → zone
//! loading → [`RoutingTable::compile`]. `steer check` runs it as a dry run,
//! startup runs it for the first table, and [`Control::reload`] runs it for
//! every later one, so a configuration that passes `check` is exactly one
//! that reloads. A reload publishes the new table with one `store` into the
//! shared `ArcSwap` only when everything succeeded; on any error the data
//! plane keeps answering from the last good table and the errors are kept
//! for `/status`. Reloads run one at a time, off the async threads, and a
//! started reload always finishes even if whoever asked for it goes away.
//! The GeoIP databases and steering configuration a table was compiled
//! from are swapped in with it, so that explain ([`Control::serving`])
//! always reads one generation's table, database and pool names together.
//! Nothing here is on the query path: the data plane only ever calls
//! `ArcSwap::load`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tracing::{debug, error, info, warn};

use crate::alias::{AliasAddresses, Aliases};
use crate::config::steering::{Quorum, SteeringConfig};
use crate::config::{self, Config};
use crate::dnssec::sign::SignatureCache;
use crate::geo::GeoDatabase;
use crate::health::observed::Observed;
use crate::health::{
    AdminKey, AdminState, EndpointStatus, Forced, SharedSetting, Stamp, state_file,
};
use crate::latency::{
    self,
    engine::LatencyEngine,
    matrix::LatencyMatrix,
    snapshot::{Choices, LatencySnapshot},
};
use crate::metrics::DecisionRegistry;
use crate::probe::monitor::{Histogram, LastProbe, Monitor, PeerStatus, TargetStatus};
use crate::table::{Inputs, RoutingTable};
use crate::transfer::Secondaries;
use crate::transfer::catalog::Membership;
use crate::zone;
use crate::{lock, unix_now, unix_seconds};

/// A table built from the files, not yet published.
pub struct Built {
    /// The configuration the table was built from.
    pub config: Config,
    /// The compiled table.
    pub table: RoutingTable,
    /// The GeoIP databases the table was compiled from, kept open so that
    /// `steer explain` and `/explain` locate addresses in the same data the
    /// table's prefix maps came from.
    pub geo: Option<Arc<GeoDatabase>>,
    /// Number of zones in the table.
    pub zones: usize,
    /// Number of records over all zones.
    pub records: usize,
    /// Wall time of the whole build: config, zone files and compile.
    pub compile_duration: Duration,
    /// The registry the table's decision counter slots come from; a
    /// [`Control`] made from this build keeps it for every reload.
    pub decisions: Arc<DecisionRegistry>,
    /// What a latency recompile needs besides the model and the served
    /// table, kept only when some steered name has a `latency` step.
    pub inputs: Option<Arc<CompileInputs>>,
    /// What loads but is probably not meant ([`zone::lint`]): said by
    /// `steer check`, at start and by reloads, never refused.
    pub warnings: Vec<String>,
    /// The signatures of the signed zones, for the next reload to reuse;
    /// `None` when the build signed nothing anew (a latency recompile).
    pub signatures: Option<Arc<SignatureCache>>,
    /// What serving this build deletes and records in the secondary
    /// directory for catalog members ([`crate::transfer::catalog::apply`]).
    pub membership: Membership,
}

/// The parsed files of a build, for recompiling with new latency data
/// without reading anything again. The parsed zones are not kept: a
/// recompile shares the served table's compiled zones.
pub struct CompileInputs {
    /// The configuration.
    pub config: Arc<Config>,
    /// The GeoIP databases.
    pub geo: Option<Arc<GeoDatabase>>,
    /// The latency matrix (empty without `latency.matrix`).
    pub matrix: LatencyMatrix,
}

/// Runs the whole pipeline (config → zones → compile) for `generation`,
/// with a fresh decision registry (a first table, or a dry run), reusing
/// the signatures the server kept at its last stop ([`kept_signatures`]):
/// a start, `steer check` and `steer explain` sign only what changed.
///
/// Every error comes back as one line of text naming its file and line or
/// its key path, ready to print, log or return from the admin API. Blocking:
/// it reads files.
pub fn build(
    config_path: &Path,
    generation: u64,
    admin: &AdminState,
) -> Result<Built, Vec<String>> {
    // The config is read again by the build, which reports its errors.
    let signatures = config::load(config_path)
        .ok()
        .and_then(|config| config.dnssec)
        .and_then(|dnssec| kept_signatures(&dnssec.state_file));
    build_with_decisions(
        config_path,
        generation,
        admin,
        &Arc::new(DecisionRegistry::default()),
        Carried {
            signatures: signatures.as_ref(),
            ..Carried::default()
        },
    )
}

/// What a reload carries over from the state it replaces.
#[derive(Default, Clone, Copy)]
pub struct Carried<'a> {
    /// The latency measurements `latency` steps read.
    pub latency: Option<&'a LatencyEngine>,
    /// The served zones' signatures, reused where still good.
    pub signatures: Option<&'a SignatureCache>,
    /// The served table's transfer copies, whose versions IXFR answers
    /// changes from.
    pub outbound: Option<&'a crate::transfer::outbound::Outbound>,
    /// Alias pools' resolved addresses.
    pub aliases: Option<&'a AliasAddresses>,
    /// Zones the dynamic updates being served have just read and checked.
    pub updated: Option<&'a crate::update::handle::ParsedFiles>,
}

/// [`build`], compiling against `decisions` so that the new table counts
/// into the slots the served one does, with what the served state
/// `carried` over (reloads).
pub fn build_with_decisions(
    config_path: &Path,
    generation: u64,
    admin: &AdminState,
    decisions: &Arc<DecisionRegistry>,
    carried: Carried<'_>,
) -> Result<Built, Vec<String>> {
    let latency = carried.latency;
    let started = Instant::now();
    let config = config::load(config_path)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    // Report zone and database errors together: an operator fixes both at once.
    let mut config = config;
    let zones = load_zones(&mut config, carried.updated);
    let geo = config
        .steering
        .geoip
        .as_ref()
        .map(GeoDatabase::open)
        .transpose();
    let sites = site_ids(&config);
    let matrix = match &config.steering.latency.matrix {
        Some(path) => latency::matrix::load(path, &sites, config.steering.latency.max_rtt_ms),
        None => Ok(LatencyMatrix::default()),
    };
    let (loaded, geo, matrix) = match (zones, geo, matrix) {
        (Ok(loaded), Ok(geo), Ok(matrix)) => (loaded, geo, matrix),
        (zones, geo, matrix) => {
            let mut errors = zones.err().unwrap_or_default();
            errors.extend(geo.err().unwrap_or_default());
            errors.extend(matrix.err().unwrap_or_default());
            return Err(errors);
        }
    };
    let steered: Vec<hickory_proto::rr::Name> = config
        .steering
        .steered
        .iter()
        .map(|steered| steered.name.clone())
        .collect();
    let LoadedZones {
        zones,
        warnings: secondary_warnings,
        membership,
    } = loaded;
    // Lint the zones as the operator wrote them, before signing adds to them.
    let mut warnings = secondary_warnings;
    warnings.extend(zone::lint(&zones, &steered));
    if let Some(transfer) = &config.transfer {
        warnings.extend(transfer_warnings(transfer, &zones));
    }
    if let Some(update) = &config.update {
        warnings.extend(update_warnings(update, &zones, &config.server.zones));
    }
    // Steer does not recurse: asking itself resolves nothing but its zones.
    for (index, server) in config.steering.resolver.servers.iter().enumerate() {
        if config.server.listen.contains(server) {
            warnings.push(format!(
                "resolver.servers[{index}]: {server} is this server, which does not recurse; \
                 alias targets outside its zones will not resolve"
            ));
        }
    }
    let mut zones = zones;
    // Secondaries get the zones as loaded, before signing.
    let outbound = match &config.transfer {
        Some(transfer) => Some(Arc::new(crate::transfer::outbound::Outbound::new(
            transfer,
            &zones,
            carried.outbound,
            Some(&config.server.journal_directory),
        )?)),
        None => None,
    };
    let mut made = SignatureCache::default();
    if let Some(dnssec) = &config.dnssec {
        let none = SignatureCache::default();
        let signatures = carried.signatures.unwrap_or(&none);
        let (signing_warnings, signed) =
            sign_zones(&mut zones, dnssec, &config.steering, signatures)?;
        warnings.extend(signing_warnings);
        made = signed;
    }
    let inputs = CompileInputs {
        config: Arc::new(config),
        geo: geo.map(Arc::new),
        matrix,
    };
    let mut table = compile_inputs(
        &inputs,
        &zones,
        generation,
        admin,
        decisions,
        (latency, carried.aliases),
    )?;
    table.set_outbound(outbound);
    // A zone of a million records is hundreds of megabytes parsed: gone
    // before the table is served.
    drop(zones);
    let records = table.zones().iter().map(|zone| zone.records).sum();
    // A latency or alias recompile starts from these.
    let keep =
        inputs.config.steering.uses_latency() || !inputs.config.steering.alias_targets().is_empty();
    let config = (*inputs.config).clone();
    let geo = inputs.geo.clone();
    Ok(Built {
        zones: table.zones().len(),
        records,
        config,
        table,
        geo,
        compile_duration: started.elapsed(),
        decisions: Arc::clone(decisions),
        inputs: keep.then(|| Arc::new(inputs)),
        warnings,
        signatures: Some(Arc::new(made)),
        membership,
    })
}

/// Carries out a served build's catalog membership changes (IXFR
/// histories in `journals`), logging each.
fn apply_membership(secondary: &config::SecondaryConfig, membership: &Membership, journals: &Path) {
    for outcome in crate::transfer::catalog::apply(secondary, membership, journals) {
        match outcome {
            Ok(done) => info!("{done}"),
            Err(problem) => warn!("{problem}"),
        }
    }
}

/// What in `[transfer]` is probably not meant: an entry that lets
/// everyone transfer without a key, and a listed zone that is not served.
fn transfer_warnings(
    transfer: &config::secondary::TransferConfig,
    zones: &[zone::Zone],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for secondaries in &transfer.secondaries {
        let path = &secondaries.path;
        if secondaries.key.is_none()
            && let Some(everyone) = secondaries
                .allow
                .iter()
                .find(|network| network.prefix_len == 0)
        {
            let what = if secondaries.zones.is_some() {
                "its zones"
            } else {
                "every zone"
            };
            warnings.push(format!(
                "{path}.allow has {}/0 and no tsig_key: anyone can transfer {what}",
                everyone.address
            ));
        }
        for (index, name) in secondaries.zones.iter().flatten().enumerate() {
            if !zones.iter().any(|zone| zone.origin.to_lowercase() == *name) {
                warnings.push(format!(
                    "{path}.zones[{index}]: {name} is not a zone served here, so none of \
                     it is transferred"
                ));
            }
        }
    }
    warnings
}

/// Relays an update to `primaries` in order over TCP, as it came (its TSIG
/// is the client's, for the primary to check), and returns the first
/// answer and who gave it.
async fn forward_update(
    message: &[u8],
    primaries: &[std::net::SocketAddr],
) -> Result<(Vec<u8>, std::net::SocketAddr), String> {
    const WAIT: Duration = Duration::from_secs(30);
    let mut failures = Vec::new();
    for &primary in primaries {
        let exchange = async {
            let mut stream = crate::exchange::tcp_send(primary, message).await?;
            crate::exchange::tcp_receive(&mut stream).await
        };
        match tokio::time::timeout(WAIT, exchange).await {
            Ok(Ok(response)) if response.get(..2) == message.get(..2) => {
                return Ok((response, primary));
            }
            Ok(Ok(_)) => failures.push(format!("{primary}: an answer to another message")),
            Ok(Err(error)) => failures.push(format!("{primary}: {error}")),
            Err(_) => failures.push(format!("{primary}: no answer within {WAIT:?}")),
        }
    }
    Err(failures.join("; "))
}

/// Dynamic updates handled together at most: their changes are served by
/// one reload.
const UPDATE_BATCH: usize = 64;

/// The signatures the last run kept in `path` (`dnssec.state_file`), for
/// the first build to reuse; `None` (and a warning when the file is there
/// but unusable) when there are none. Blocking.
pub fn kept_signatures(path: &Path) -> Option<SignatureCache> {
    if !path.exists() {
        return None;
    }
    match SignatureCache::load(path, unix_now()) {
        Ok(signatures) => {
            info!(file = %path.display(), signatures = signatures.len(), "read the signatures kept at the last stop");
            Some(signatures)
        }
        Err(error) => {
            warn!(file = %path.display(), "the signatures kept at the last stop are not used: {error}; every RRset is signed anew");
            None
        }
    }
}

/// What in `[update]` cannot work: a grant's zone that is not served from
/// the zones directory (a secondary zone's updates go to its primary).
fn update_warnings(
    update: &config::update::UpdateConfig,
    zones: &[zone::Zone],
    zones_dir: &Path,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for grant in &update.grants {
        for (index, name) in grant.zones.iter().enumerate() {
            let served = zones
                .iter()
                .find(|zone| zone.origin.to_lowercase() == *name);
            let why = match served {
                None => "is not a zone served here",
                Some(zone) if zone.file.parent() != Some(zones_dir) => {
                    "is a secondary zone here (send its updates to its primary)"
                }
                Some(_) => continue,
            };
            warnings.push(format!(
                "{}.zones[{index}]: {name} {why}, so its updates are refused",
                grant.path
            ));
        }
    }
    warnings
}

/// Sends NOTIFY, for each zone of `table` whose serial is not the one in
/// `previous` (by zone name), to the `notify` addresses of each
/// `[transfer]` entry that has the zone, signed with its key.
fn notify_secondaries(
    config: &Config,
    table: &RoutingTable,
    previous: &HashMap<String, u32>,
    record: &Arc<Secondaries>,
) {
    let Some(transfer) = &config.transfer else {
        return;
    };
    for zone in table.zones() {
        if previous.get(&zone.name) == Some(&zone.serial) {
            continue;
        }
        let Ok(name) = hickory_proto::rr::Name::from_ascii(&zone.name) else {
            continue;
        };
        let lower = name.to_lowercase();
        for secondaries in &transfer.secondaries {
            if secondaries.notify.is_empty() || !secondaries.covers(&lower) {
                continue;
            }
            tokio::spawn(crate::transfer::outbound::notify(
                name.clone(),
                zone.serial,
                secondaries.notify.clone(),
                secondaries.key.as_ref().map(|key| (*key.key).clone()),
                Arc::clone(record),
            ));
        }
    }
}

/// The zones of the zones directory and the kept copies of the secondary
/// zones, with a warning for each secondary zone not served; every error of
/// every file otherwise.
fn load_zones(
    config: &mut Config,
    updated: Option<&crate::update::handle::ParsedFiles>,
) -> Result<LoadedZones, Vec<String>> {
    let file = config.file.clone();
    let secondary = config.secondary.as_mut();
    // A node may serve secondary zones only.
    let parsed = |path: &Path| updated.and_then(|updated| updated.take_file(path));
    let (mut zones, mut errors) =
        match zone::load_dir_reusing(&config.server.zones, secondary.is_some(), &parsed) {
            Ok(zones) => (zones, Vec::new()),
            Err(errors) => (Vec::new(), errors.iter().map(ToString::to_string).collect()),
        };
    if let Some(update) = &config.update {
        let (updated, update_errors) = apply_kept_updates(update, zones, updated);
        zones = updated;
        errors.extend(update_errors);
    }
    let Some(secondary) = secondary else {
        return if errors.is_empty() {
            Ok(LoadedZones {
                zones,
                warnings: Vec::new(),
                membership: Membership::default(),
            })
        } else {
            Err(errors)
        };
    };
    for zone in &zones {
        if let Some(index) = secondary
            .zones
            .iter()
            .position(|candidate| candidate.name == zone.origin)
        {
            errors.push(format!(
                "{}: zone {} is also secondary.{} in {}; serve it from one or the other",
                zone.file.display(),
                zone.origin,
                list_entry(secondary, index),
                file.display()
            ));
        }
    }
    // Catalog members join the secondary zones before those are loaded.
    let elsewhere: Vec<hickory_proto::rr::Name> =
        zones.iter().map(|zone| zone.origin.clone()).collect();
    let (mut warnings, membership) = crate::transfer::catalog::expand(secondary, &elsewhere);
    let (kept, kept_warnings, kept_errors) = crate::transfer::load_kept(
        secondary,
        std::time::SystemTime::now(),
        &membership.resets(),
    );
    warnings.extend(kept_warnings);
    errors.extend(kept_errors.iter().map(ToString::to_string));
    if !errors.is_empty() {
        return Err(errors);
    }
    zones.extend(kept);
    Ok(LoadedZones {
        zones,
        warnings,
        membership,
    })
}

/// The zones a build serves, from the zones directory and the secondary
/// directory.
struct LoadedZones {
    zones: Vec<zone::Zone>,
    /// About zones not served and catalog members changing.
    warnings: Vec<String>,
    /// What serving the build changes in the secondary directory.
    membership: Membership,
}

/// `zones` (from the zones directory) with the dynamic updates kept for
/// them applied; an error naming the file for updates that do not read or
/// no longer make a valid zone.
fn apply_kept_updates(
    update: &config::update::UpdateConfig,
    zones: Vec<zone::Zone>,
    checked: Option<&crate::update::handle::ParsedFiles>,
) -> (Vec<zone::Zone>, Vec<String>) {
    let mut errors = Vec::new();
    let mut updated = Vec::with_capacity(zones.len());
    for zone in zones {
        let path = update.file_of(&zone.origin);
        match crate::update::overlay::read(&path, &zone.origin) {
            Ok(None) => updated.push(zone),
            // As the update that wrote these changes made and checked it.
            Ok(Some(overlay))
                if let Some(zone) = checked
                    .and_then(|checked| checked.take_updated(&zone.file, &path, &overlay)) =>
            {
                updated.push(zone);
            }
            Ok(Some(overlay)) => match overlay.apply_to(zone, &path) {
                Ok(zone) => updated.push(zone),
                Err(zone_errors) => errors.extend(zone_errors.iter().map(|error| {
                    format!(
                        "{error} (with the dynamic updates kept in {}; fix the zone file, or delete that file to drop them)",
                        path.display()
                    )
                })),
            },
            Err(read_errors) => errors.extend(read_errors.iter().map(ToString::to_string)),
        }
    }
    (updated, errors)
}

/// How `steer.toml` names secondary zone `index`: `zone[N]` or `catalog[N]`.
fn list_entry(secondary: &config::SecondaryConfig, index: usize) -> String {
    let kind = &secondary.zones[index].kind;
    let position = secondary.zones[..index]
        .iter()
        .filter(|zone| zone.kind == *kind)
        .count();
    match kind {
        config::secondary::ZoneKind::Catalog => format!("catalog[{position}]"),
        _ => format!("zone[{position}]"),
    }
}

/// The zones with those that have keys in `[dnssec] keys` signed, reusing
/// the fresh signatures of `previous`; the warnings, and every signature
/// the zones now have. Errors name the key or zone file.
fn sign_zones(
    zones: &mut [zone::Zone],
    dnssec: &config::DnssecConfig,
    steering: &SteeringConfig,
    previous: &SignatureCache,
) -> Result<(Vec<String>, SignatureCache), Vec<String>> {
    use hickory_proto::rr::RecordType;
    let ring = crate::dnssec::load_keys(&dnssec.keys)?;
    // A key made for a misspelt zone leaves the zone it was meant for
    // unsigned, which a DS at the parent turns into an outage: say so.
    let served: Vec<Vec<u8>> = zones
        .iter()
        .map(|zone| crate::table::wire_lower(&zone.origin))
        .collect();
    let warnings: Vec<String> = ring
        .zones()
        .filter(|apex| !served.iter().any(|served| served.as_slice() == *apex))
        .map(|apex| {
            let keys = ring.keys_of(apex);
            format!(
                "{}: a key for zone {}, which is not served (no {}zone in the zones directory); \
                 no zone is signed with it",
                keys[0].file.display(),
                crate::table::display_wire_name(apex),
                crate::table::display_wire_name(apex)
            )
        })
        .collect();
    let now = unix_now();
    // Each steered name is answered by the deepest zone that holds it, as
    // the table compiler decides.
    let mut steered: Vec<Vec<(hickory_proto::rr::Name, RecordType)>> =
        vec![Vec::new(); zones.len()];
    for entry in &steering.steered {
        if let Some(index) = zone::holding_zone(zones, &entry.name) {
            steered[index].push((entry.name.clone(), entry.record_type.record_type()));
        }
    }
    let mut errors = Vec::new();
    let mut signatures = Vec::new();
    for (zone, steered) in zones.iter_mut().zip(&steered) {
        let keys = ring.keys_of(&crate::table::wire_lower(&zone.origin));
        if keys.is_empty() {
            continue;
        }
        let validity = dnssec.signature_validity.as_secs();
        let timing = (now, validity);
        match crate::dnssec::sign_zone(zone, keys, steered, timing, dnssec.nsec3, previous) {
            Ok(signed) => signatures.push(signed),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok((warnings, SignatureCache::combine(signatures)))
    } else {
        Err(errors)
    }
}

/// A table from the served table's parsed inputs and the latest latency
/// data: nothing is read from disk, and the zone part of `served` (compiled
/// from the same inputs) is shared, not compiled again.
fn rebuild(
    inputs: &Arc<CompileInputs>,
    served: &RoutingTable,
    generation: u64,
    admin: &AdminState,
    decisions: &Arc<DecisionRegistry>,
    (latency, aliases): (&LatencyEngine, Option<&AliasAddresses>),
) -> Result<Built, Vec<String>> {
    let started = Instant::now();
    let carried = (Some(latency), aliases);
    let table = with_table_inputs(inputs, admin, decisions, carried, |table_inputs| {
        served.recompile_steering(table_inputs, generation)
    })?;
    let records = table.zones().iter().map(|zone| zone.records).sum();
    Ok(Built {
        zones: table.zones().len(),
        records,
        config: (*inputs.config).clone(),
        table,
        geo: inputs.geo.clone(),
        compile_duration: started.elapsed(),
        decisions: Arc::clone(decisions),
        inputs: Some(Arc::clone(inputs)),
        // The zones are those of the served table, already linted.
        warnings: Vec::new(),
        signatures: None,
        membership: Membership::default(),
    })
}

/// The steering of `built` compiled again with alias pools' addresses, for
/// `steer explain`, which resolves them once itself; `None` when it has no
/// alias pool (nor latency step) to recompile.
pub fn with_alias_addresses(
    built: &Built,
    aliases: &AliasAddresses,
) -> Option<Result<RoutingTable, Vec<String>>> {
    let inputs = built.inputs.as_ref()?;
    let admin = AdminState::default();
    let generation = built.table.generation();
    Some(with_table_inputs(
        inputs,
        &admin,
        &built.decisions,
        (None, Some(aliases)),
        |table_inputs| built.table.recompile_steering(table_inputs, generation),
    ))
}

/// Compiles parsed inputs, with the latency engine's measurements when
/// there is one (else the matrix alone).
fn compile_inputs(
    inputs: &CompileInputs,
    zones: &[zone::Zone],
    generation: u64,
    admin: &AdminState,
    decisions: &Arc<DecisionRegistry>,
    carried: (Option<&LatencyEngine>, Option<&AliasAddresses>),
) -> Result<RoutingTable, Vec<String>> {
    with_table_inputs(inputs, admin, decisions, carried, |table_inputs| {
        RoutingTable::compile(zones, table_inputs, generation)
    })
}

/// Runs `compile` on the table inputs of parsed `inputs`, with the latency
/// engine's measurements frozen now when there is one (else the matrix
/// alone).
fn with_table_inputs(
    inputs: &CompileInputs,
    admin: &AdminState,
    decisions: &Arc<DecisionRegistry>,
    (latency, aliases): (Option<&LatencyEngine>, Option<&AliasAddresses>),
    compile: impl FnOnce(&Inputs<'_>) -> Result<RoutingTable, Vec<String>>,
) -> Result<RoutingTable, Vec<String>> {
    let config = &inputs.config;
    let snapshot = config.steering.uses_latency().then(|| match latency {
        Some(engine) => engine.snapshot(&inputs.matrix, &site_ids(config), unix_now()),
        None => {
            let mut snapshot = LatencySnapshot::from_matrix(&inputs.matrix);
            snapshot.finish();
            snapshot
        }
    });
    let table_inputs = Inputs {
        steering: &config.steering,
        geo: inputs.geo.as_deref(),
        admin,
        config_file: &config.file,
        decisions,
        latency: snapshot.as_ref(),
        aliases,
        nsid: &config.server.nsid,
        version: &config.server.version,
        rate_limit: config.rate_limit.as_ref(),
        cookie_secrets: config.server.cookie_secrets,
        proxy_from: &config.server.proxy_protocol_from,
    };
    compile(&table_inputs)
}

/// The configured site ids, in the order latency data indexes them.
fn site_ids(config: &Config) -> Vec<String> {
    site_ids_of(&config.steering.sites)
}

fn site_ids_of(sites: &[crate::config::steering::Site]) -> Vec<String> {
    sites.iter().map(|site| site.id.clone()).collect()
}

/// What a successful reload did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReloadReport {
    /// Generation of the table now being served.
    pub generation: u64,
    /// Zones in the new table.
    pub zones: usize,
    /// Records over all zones in the new table.
    pub records: usize,
    /// Build time in seconds.
    pub seconds: f64,
    /// Changes that were read but need a restart to take effect.
    pub warnings: Vec<String>,
}

/// Why a reload was refused; the previous table is still being served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("reload failed with {} error(s); still serving generation {generation}", errors.len())]
pub struct ReloadFailure {
    /// Generation still being served.
    pub generation: u64,
    /// Every error, one line each.
    pub errors: Vec<String>,
}

/// Addresses the server actually listens on (ports resolved).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Listeners {
    /// DNS over UDP.
    pub udp: Vec<SocketAddr>,
    /// DNS over TCP.
    pub tcp: Vec<SocketAddr>,
    /// DNS over TLS.
    pub tls: Vec<SocketAddr>,
    /// The peers' read-only listener (`peers.listen`), when there is one.
    pub peers: Option<SocketAddr>,
}

/// `/status` as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// Generation of the table being served.
    pub generation: u64,
    /// The zones being served.
    pub zones: Vec<ZoneStatus>,
    /// When the table being served was built, and how long it took.
    pub last_compile: CompileStatus,
    /// The most recent failed reload, if any reload ever failed. It is kept
    /// after a later success; compare its `at` with `last_compile.at`.
    pub last_reload_error: Option<ReloadErrorStatus>,
    /// Reloads since start (the first build is not counted).
    pub reloads: ReloadCounts,
    /// Where DNS is served.
    pub listen: Listeners,
    /// Every endpoint of every pool, with its health and admin state.
    pub endpoints: Vec<EndpointReport>,
    /// Every probe target (each probed once, however many endpoints use it).
    pub probes: Vec<TargetStatus>,
    /// Failover times (first failed probe to answers changed) of every
    /// endpoint that went down, for `/metrics`.
    #[serde(skip)]
    pub failover: Histogram,
    /// The latency model and its recompiles.
    pub latency: LatencyStatus,
    /// The steered names and types, in config order.
    pub steered: Vec<SteeredStatus>,
    /// The UDP rate limits in force, with the table size in use (fixed at
    /// start); `null` when `[rate_limit]` is not configured. What they did
    /// is in `/metrics`.
    pub rate_limit: Option<crate::config::RateLimitConfig>,
    /// The query log in use (set at start); `null` when there is none.
    pub query_log: Option<QueryLogStatus>,
    /// This node's name and the peers whose health views vote with it.
    pub health: HealthStatus,
    /// The secondary zones: serial, last check and transfer, expiry.
    pub secondary: Vec<crate::transfer::SecondaryStatus>,
    /// The NOTIFY this node sent its own secondaries (`[transfer] notify`).
    pub notify_out: Vec<crate::transfer::NotifyOutStatus>,
    /// Alias pools' targets: their addresses, last answer and failures.
    pub aliases: Vec<crate::alias::TargetStatus>,
    /// Dynamic updates answered since start, by zone and response code.
    pub updates: Vec<UpdateCount>,
}

/// Dynamic updates of one zone answered with one response code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpdateCount {
    /// The zone (`""` for one Steer does not serve).
    pub zone: String,
    /// The response code's name (`NOERROR`, `REFUSED`, `NXRRSET`...).
    pub rcode: String,
    /// How many.
    pub count: u64,
}

/// `[health]` in `/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthStatus {
    /// `health.node` (set at start).
    pub node: String,
    /// `"majority"` or how many vantage points must see a target down;
    /// `null` without `[peers]`.
    pub quorum: Option<String>,
    /// Every peer of `[peers]`, with its last fetch.
    pub peers: Vec<PeerStatus>,
}

/// `[query_log]` as started, in `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryLogStatus {
    /// The file the log is written to, or `null`.
    pub file: Option<String>,
    /// The dnstap collector's socket (`unix:PATH`, `tcp:ADDRESS:PORT`), or
    /// `null`.
    pub socket: Option<String>,
    /// `json` or `dnstap`.
    pub format: &'static str,
    /// One query in this many is logged, per worker.
    pub sample: u64,
}

/// The latency model in `/status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyStatus {
    /// Samples recorded since start.
    pub samples_accepted: u64,
    /// Samples rejected since start, by reason.
    pub samples_rejected: std::collections::BTreeMap<&'static str, u64>,
    /// Client networks tracked.
    pub prefixes: usize,
    /// The model's estimated heap use.
    pub memory_bytes: usize,
    /// Recompiles with new latency data.
    pub compiles: LatencyCompiles,
    /// Active measurements per site with a `latency_target`.
    pub active: Vec<latency::active::SiteMeasurements>,
    /// This node's fresh RTT to each site, from those measurements.
    pub node: Vec<latency::active::NodeRtt>,
    /// Writes of the model to its state file.
    pub saves: LatencySaves,
    /// Samples posted here that the journal holds for the peers.
    pub journal: usize,
    /// Each peer's journal as this node reads it.
    pub peers: Vec<latency::sharing::FeedStatus>,
}

/// Writes of the latency model to `latency.state_file`, in `/status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySaves {
    /// The state file.
    pub file: String,
    /// Writes that succeeded since start.
    pub ok: u64,
    /// Writes that failed since start.
    pub failed: u64,
    /// When the last successful one finished, Unix seconds.
    pub last_at: Option<u64>,
    /// Its size in bytes.
    pub last_bytes: u64,
    /// Why the last write failed, if the last one did.
    pub last_error: Option<String>,
}

/// What [`Control::save_latency_state`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencySave {
    /// Nothing changed since the last write (or nothing was ever recorded).
    Unchanged,
    /// The file was written, this many bytes.
    Written(usize),
}

/// One endpoint in `/status`: its slot in the table, and what its probe says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointReport {
    /// Pool, address, whether answers use it, admin state.
    #[serde(flatten)]
    pub endpoint: EndpointStatus,
    /// What its probe says (`unknown` until the first result); `None`
    /// when it has no probe.
    pub observed: Option<Observed>,
    /// When `observed` last changed, Unix seconds.
    pub since: Option<f64>,
    /// The last probe result.
    pub last_probe: Option<LastProbe>,
    /// The last failed probe's reason (kept after recovery).
    pub last_error: Option<String>,
    /// With `[peers]`: the votes of this node and its peers on its probe
    /// target, which answers follow rather than `observed` alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub votes: Option<crate::health::peers::Votes>,
}

/// One steered name and type in `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SteeredStatus {
    /// Owner name, absolute.
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Candidate pools, in order.
    pub pools: Vec<String>,
}

/// One zone in `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneStatus {
    /// Apex, absolute.
    pub name: String,
    /// SOA serial.
    pub serial: u32,
    /// Records loaded from the file.
    pub records: usize,
    /// The zone file.
    pub file: String,
    /// When the zone is signed: its keys and signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<ZoneSigningStatus>,
}

/// A signed zone in `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneSigningStatus {
    /// When the signatures served now expire (Unix seconds).
    pub expires: u64,
    /// When the zone is signed again (Unix seconds).
    pub resign_at: u64,
    /// The keys published in its DNSKEY RRset.
    pub keys: Vec<crate::dnssec::KeyUse>,
    /// RRSIGs over its RRsets (steered answers' aside, made per answer).
    pub signatures: usize,
    /// Of those, how many the last signing reused from the one before
    /// instead of making (the RRsets that had not changed).
    pub reused: usize,
}

/// The last successful build.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompileStatus {
    /// Unix time in seconds.
    pub at: f64,
    /// Build time in seconds.
    pub seconds: f64,
}

/// The last failed reload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReloadErrorStatus {
    /// Unix time in seconds.
    pub at: f64,
    /// Every error, one line each.
    pub errors: Vec<String>,
}

/// Reload outcomes since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadCounts {
    /// Reloads that published a new table.
    pub ok: u64,
    /// Reloads that kept the old table.
    pub failed: u64,
}

/// Bookkeeping behind `/status`; small, locked briefly, never on the query path.
struct Status {
    last_compile: CompileStatus,
    last_reload_error: Option<ReloadErrorStatus>,
    reloads: ReloadCounts,
    listeners: Listeners,
    /// What the served table was compiled from; replaced under this lock
    /// together with the table, so explain never pairs one generation's
    /// table with another's database.
    sources: Sources,
}

/// The inputs of the served table that explain reads besides the table.
#[derive(Clone)]
struct Sources {
    geo: Option<Arc<GeoDatabase>>,
    steering: Arc<SteeringConfig>,
    /// `[update]`, and the zones directory the zones it grants are in.
    update: Option<Arc<crate::config::update::UpdateConfig>>,
    zones_dir: PathBuf,
    /// `admin.tls_certificate` and its key as last read.
    admin_tls: Option<Arc<crate::config::tls::TlsIdentity>>,
    /// `server.tls_certificate` and its key as last read.
    dns_tls: Option<Arc<crate::config::tls::TlsIdentity>>,
    /// `dnssec.state_file`, with `[dnssec]`.
    signatures_file: Option<PathBuf>,
}

/// One generation as explain sees it: the table, what it was compiled
/// from, and the operators' overrides, all taken at one instant.
#[derive(Clone)]
pub struct Serving {
    /// The table being served.
    pub table: Arc<RoutingTable>,
    /// Its GeoIP databases, when configured.
    pub geo: Option<Arc<GeoDatabase>>,
    /// Its steering configuration (pool names, `when_all_down`).
    pub steering: Arc<SteeringConfig>,
    /// Drains and overrides in force.
    pub admin: AdminState,
    /// The latency engine, for the measured networks and this node's RTTs
    /// a `latency` step reads; `None` for `steer explain`, which has no
    /// measurements.
    pub latency: Option<Arc<LatencyEngine>>,
    /// The table's parsed inputs (the latency matrix), when some steered
    /// name has a `latency` step.
    pub inputs: Option<Arc<CompileInputs>>,
}

/// The control plane's owner of the routing table. See the module docs.
pub struct Control {
    config_path: PathBuf,
    /// The configuration the sockets were opened with; reloads cannot change it.
    active: Arc<Config>,
    table: Arc<ArcSwap<RoutingTable>>,
    /// Held for the whole of a reload, so there is only ever one writer.
    reload_lock: Arc<tokio::sync::Mutex<()>>,
    /// Also held while a new table is stored, so `/status` never pairs one
    /// generation with another's compile time.
    status: Arc<Mutex<Status>>,
    /// Operators' drains and overrides. Changed only while `reload_lock` is
    /// held, so a change can never fall between a build and its swap.
    admin: Arc<Mutex<AdminState>>,
    /// The probe runner, once [`Control::start_probes`] has run.
    monitor: std::sync::OnceLock<Monitor>,
    /// Latency measurements and the model `latency` steps read.
    latency: Arc<LatencyEngine>,
    /// The parsed inputs of the served table, when it has `latency` steps:
    /// a latency recompile starts from them instead of the files.
    inputs: Arc<Mutex<Option<Arc<CompileInputs>>>>,
    /// The model version the served table was compiled from.
    compiled_version: Arc<std::sync::atomic::AtomicU64>,
    /// Latency recompiles: count, last duration, answers changed.
    latency_compiles: Arc<Mutex<LatencyCompiles>>,
    /// Writes of the latency model to its state file.
    latency_saves: Mutex<LatencySaves>,
    /// Held for a whole save, so that the timer's, the API's and the
    /// shutdown's never write the same temporary file at once.
    latency_save_lock: tokio::sync::Mutex<()>,
    /// One write of `steer.signatures` at a time.
    signatures_save_lock: tokio::sync::Mutex<()>,
    /// This node's own measurements to the sites' `latency_target`s.
    active_latency: Arc<latency::active::ActiveLatency>,
    /// The peers' latency journals, as fetched ([`latency::sharing::run`]).
    latency_sharing: Arc<latency::sharing::LatencySharing>,
    /// Decision counter slots, from the first build on: every reload
    /// compiles against it so that `/metrics` series never renumber.
    decisions: Arc<DecisionRegistry>,
    /// The secondary zones' transfer tasks.
    secondaries: Arc<Secondaries>,
    /// The served zones' signatures, which the next reload reuses.
    signatures: Arc<Mutex<Arc<SignatureCache>>>,
    /// Alias pools' targets and what they resolved to.
    aliases: Arc<Aliases>,
    /// The [`Aliases::version`] the served table was compiled from.
    compiled_aliases: Arc<std::sync::atomic::AtomicU64>,
    /// Where transports hand dynamic updates, and the end they are read
    /// from (taken by [`Control::run_updates`]).
    update_queue: crate::update::UpdateQueue,
    update_receiver: Mutex<Option<tokio::sync::mpsc::Receiver<crate::update::UpdateRequest>>>,
    /// Dynamic updates answered, by zone and response code.
    update_counts: Mutex<std::collections::BTreeMap<(String, u16), u64>>,
    /// The answers to recent signed updates, by the request's bytes.
    update_replies: Mutex<crate::update::Replies>,
}

/// Why an admin change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such pool in the configuration being served.
    #[error("no pool named {0:?}")]
    UnknownPool(String),
    /// No pool has this address.
    #[error("no pool has the address {0}")]
    UnknownEndpoint(std::net::IpAddr),
    /// The change could not be saved, so it was not made: it would be
    /// forgotten at the next restart.
    #[error("not changed: {0}")]
    NotSaved(String),
}

impl Control {
    /// Publishes the first table. `config_path` is re-read on every reload.
    pub fn new(config_path: &Path, built: Built) -> Self {
        // The first table is served from here on: its keys are exported.
        built.decisions.commit();
        let built_latency = built.config.steering.latency.clone();
        let built_sites = built.config.steering.sites.clone();
        let status = Status {
            last_compile: CompileStatus {
                at: unix_seconds(SystemTime::now()),
                seconds: built.compile_duration.as_secs_f64(),
            },
            last_reload_error: None,
            reloads: ReloadCounts::default(),
            listeners: Listeners::default(),
            sources: Sources {
                geo: built.geo,
                steering: Arc::new(built.config.steering.clone()),
                update: built.config.update.clone().map(Arc::new),
                zones_dir: built.config.server.zones.clone(),
                admin_tls: built.config.admin.tls.clone(),
                dns_tls: built.config.server.tls.clone(),
                signatures_file: built
                    .config
                    .dnssec
                    .as_ref()
                    .map(|dnssec| dnssec.state_file.clone()),
            },
        };
        let latency_state_file = built.config.steering.latency.state_file.clone();
        let latency = LatencyEngine::new(&built_latency, site_ids_of(&built_sites));
        // Posted samples are kept for the peers from the first one on.
        latency
            .journal()
            .set_enabled(built.config.steering.peers.is_some());
        let secondaries = Arc::new(Secondaries::default());
        if let Some(secondary) = &built.config.secondary {
            apply_membership(
                secondary,
                &built.membership,
                &built.config.server.journal_directory,
            );
        }
        let mut table = built.table;
        table.set_notify_targets(secondaries.targets(built.config.secondary.as_ref()));
        table.set_accepts_updates(built.config.update.is_some());
        let table = Arc::new(ArcSwap::from_pointee(table));
        let (update_queue, update_receiver) = crate::update::UpdateQueue::new(Arc::clone(&table));
        Self {
            config_path: config_path.to_path_buf(),
            active: Arc::new(built.config),
            table,
            reload_lock: Arc::new(tokio::sync::Mutex::new(())),
            status: Arc::new(Mutex::new(status)),
            admin: Arc::new(Mutex::new(AdminState::default())),
            monitor: std::sync::OnceLock::new(),
            decisions: built.decisions,
            latency: Arc::new(latency),
            inputs: Arc::new(Mutex::new(built.inputs)),
            compiled_version: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            latency_compiles: Arc::new(Mutex::new(LatencyCompiles::default())),
            latency_saves: Mutex::new(LatencySaves {
                file: latency_state_file.display().to_string(),
                ..LatencySaves::default()
            }),
            latency_save_lock: tokio::sync::Mutex::new(()),
            signatures_save_lock: tokio::sync::Mutex::new(()),
            active_latency: Arc::default(),
            latency_sharing: Arc::default(),
            secondaries,
            signatures: Arc::new(Mutex::new(built.signatures.unwrap_or_default())),
            aliases: Arc::default(),
            compiled_aliases: Arc::default(),
            update_queue,
            update_receiver: Mutex::new(Some(update_receiver)),
            update_counts: Mutex::default(),
            update_replies: Mutex::default(),
        }
    }

    /// Where the transports hand dynamic updates.
    pub fn update_queue(&self) -> crate::update::UpdateQueue {
        self.update_queue.clone()
    }

    /// Dynamic updates answered since start, by zone and response code.
    pub fn update_counts(&self) -> Vec<(String, u16, u64)> {
        lock(&self.update_counts)
            .iter()
            .map(|((zone, rcode), count)| (zone.clone(), *rcode, *count))
            .collect()
    }

    /// Answers dynamic updates until the server stops. Each is checked and
    /// kept on disk ([`crate::update::handle`]) in the order it came, and
    /// acknowledged only once served. Those waiting together, up to
    /// [`UPDATE_BATCH`], are served by one reload, as Knot batches them:
    /// a burst of updates (a certificate with many names, many clients at
    /// once) costs one reload, not one each.
    pub async fn run_updates(self: Arc<Self>) {
        let Some(mut receiver) = lock(&self.update_receiver).take() else {
            return;
        };
        let mut batch = Vec::with_capacity(UPDATE_BATCH);
        while receiver.recv_many(&mut batch, UPDATE_BATCH).await > 0 {
            let requests: Vec<(&[u8], std::net::IpAddr)> = batch
                .iter()
                .map(|request| (request.message.as_slice(), request.client))
                .collect();
            let responses = self.apply_updates(&requests).await;
            for (request, response) in batch.drain(..).zip(responses) {
                if !response.is_empty() {
                    request.reply.send(response);
                }
            }
        }
    }

    /// The responses to `requests` (empty: none to send), in order.
    async fn apply_updates(&self, requests: &[(&[u8], std::net::IpAddr)]) -> Vec<Vec<u8>> {
        use crate::update::handle::{self, Outcome, Summary};
        use hickory_proto::op::ResponseCode;
        /// Where a request stands.
        enum Step {
            /// Its response, and what to log and count (none for a
            /// retransmission answered from the replies cache).
            Done(Vec<u8>, Option<Summary>),
            /// The same bytes as the request at this index of the batch.
            Same(usize),
            /// Not handled yet.
            Waiting,
            Changed(Box<handle::Change>),
            Forward(Box<handle::Forward>),
        }
        // The same signed bytes again are a client's retransmission or a
        // replay within the TSIG time window: the first answer again, and
        // nothing applied twice.
        let mut steps: Vec<Step> = Vec::with_capacity(requests.len());
        for (index, (message, client)) in requests.iter().enumerate() {
            if let Some(earlier) = requests[..index]
                .iter()
                .position(|(other, _)| other == message)
            {
                steps.push(Step::Same(earlier));
            } else if let Some(response) = lock(&self.update_replies).get(message, unix_now()) {
                info!(client = %client, "a dynamic update seen before: answered as before, not applied again");
                steps.push(Step::Done(response, None));
            } else {
                steps.push(Step::Waiting);
            }
        }
        let context = {
            let status = lock(&self.status);
            let served = self
                .table
                .load()
                .zones()
                .iter()
                .filter_map(|zone| {
                    let name = hickory_proto::rr::Name::from_ascii(&zone.name).ok()?;
                    Some((name.to_lowercase(), PathBuf::from(&zone.file)))
                })
                .collect();
            status.sources.update.clone().map(|update| handle::Context {
                secondaries: if update.forward_from.is_empty() {
                    Vec::new()
                } else {
                    self.secondaries.primaries()
                },
                update,
                zones_dir: status.sources.zones_dir.clone(),
                steering: Arc::clone(&status.sources.steering),
                served,
                files: handle::ParsedFiles::default(),
            })
        };
        let Some(context) = context else {
            // `[update]` went away after the messages were queued.
            return vec![Vec::new(); requests.len()];
        };
        // One after another, each seeing what the ones before it kept.
        let waiting: Vec<(Vec<u8>, std::net::IpAddr)> = requests
            .iter()
            .zip(&steps)
            .filter(|(_, step)| matches!(step, Step::Waiting))
            .map(|((message, client), _)| (message.to_vec(), *client))
            .collect();
        let handled = tokio::task::spawn_blocking(move || {
            let outcomes = waiting
                .iter()
                .map(|(message, client)| handle::handle(&context, message, *client, unix_now()))
                .collect::<Vec<Outcome>>();
            (outcomes, context.files)
        })
        .await;
        let Ok((outcomes, checked)) = handled else {
            error!("dynamic updates failed: the task that checks them ended");
            return vec![Vec::new(); requests.len()];
        };
        let mut outcomes = outcomes.into_iter();
        for step in &mut steps {
            if matches!(step, Step::Waiting) {
                *step = match outcomes.next() {
                    Some(Outcome::Answered(response, summary)) => {
                        Step::Done(response, Some(summary))
                    }
                    Some(Outcome::Changed(change)) => Step::Changed(change),
                    Some(Outcome::Forward(forward)) => Step::Forward(forward),
                    None => Step::Done(Vec::new(), None),
                };
            }
        }
        // Everything changed is served by one reload, or taken back.
        if steps.iter().any(|step| matches!(step, Step::Changed(_))) {
            let reloaded = self.reload_updated(checked).await;
            if reloaded.is_err() {
                // Newest first, so each puts back what the one before left.
                for step in steps.iter().rev() {
                    if let Step::Changed(change) = step
                        && let Err(error) = change.undo()
                    {
                        error!(
                            file = %change.path.display(),
                            "cannot take back a dynamic update that was not served: {error}"
                        );
                    }
                }
            }
            for (step, (_, client)) in steps.iter_mut().zip(requests) {
                let Step::Changed(change) = step else {
                    continue;
                };
                let mut summary = change.summary.clone();
                let response = match &reloaded {
                    Ok(report) => {
                        summary.rcode = 0;
                        info!(
                            zone = %change.zone,
                            client = %client,
                            key = summary.key.as_deref().unwrap_or_default(),
                            records = summary.updates,
                            serial = change.serial,
                            generation = report.generation,
                            "dynamic update applied"
                        );
                        change.responder.respond(ResponseCode::NoError)
                    }
                    Err(failure) => {
                        summary.rcode = u16::from(ResponseCode::ServFail);
                        summary.detail = Some(format!(
                            "the reload that would serve it failed: {}",
                            failure.errors.join("; ")
                        ));
                        change.responder.respond(ResponseCode::ServFail)
                    }
                };
                *step = Step::Done(response, Some(summary));
            }
        }
        for (step, (message, client)) in steps.iter_mut().zip(requests) {
            let Step::Forward(forward) = step else {
                continue;
            };
            let handle::Forward {
                primaries,
                responder,
                summary,
            } = &**forward;
            let mut summary = summary.clone();
            let response = match forward_update(message, primaries).await {
                Ok((response, primary)) => {
                    summary.rcode = u16::from(response.get(3).map_or(0, |flags| flags & 0x0F));
                    info!(
                        zone = summary.zone.as_ref().map(ToString::to_string).unwrap_or_default(),
                        client = %client,
                        primary = %primary,
                        rcode = summary.rcode,
                        "dynamic update forwarded to the primary"
                    );
                    response
                }
                Err(error) => {
                    summary.rcode = u16::from(ResponseCode::ServFail);
                    summary.detail = Some(format!("no primary took it: {error}"));
                    responder.respond(ResponseCode::ServFail)
                }
            };
            *step = Step::Done(response, Some(summary));
        }
        let mut responses: Vec<Vec<u8>> = Vec::with_capacity(requests.len());
        for (step, (message, client)) in steps.into_iter().zip(requests) {
            let response = match step {
                Step::Done(response, Some(summary)) => {
                    self.count_update(message, *client, &response, summary);
                    response
                }
                Step::Done(response, None) => response,
                Step::Same(earlier) => responses[earlier].clone(),
                Step::Waiting | Step::Changed(_) | Step::Forward(_) => Vec::new(),
            };
            responses.push(response);
        }
        responses
    }

    /// Logs why an update was not applied, keeps a signed update's
    /// response for its retransmissions, and counts it.
    fn count_update(
        &self,
        message: &[u8],
        client: std::net::IpAddr,
        response: &[u8],
        summary: crate::update::handle::Summary,
    ) {
        if let Some(detail) = &summary.detail {
            info!(
                zone = summary.zone.as_ref().map(ToString::to_string).unwrap_or_default(),
                client = %client,
                key = summary.key.as_deref().unwrap_or_default(),
                rcode = summary.rcode,
                "dynamic update not applied: {detail}"
            );
        }
        if summary.key.is_some() {
            lock(&self.update_replies).insert(message, response, unix_now());
        }
        // Zones Steer does not serve count as "": made-up names add no series.
        let zone = summary
            .zone
            .filter(|zone| {
                self.table
                    .load()
                    .zones()
                    .iter()
                    .any(|served| served.name.eq_ignore_ascii_case(&zone.to_ascii()))
            })
            .map(|zone| zone.to_ascii())
            .unwrap_or_default();
        *lock(&self.update_counts)
            .entry((zone, summary.rcode))
            .or_default() += 1;
    }

    /// Has secondary zone `zone` checked against its primaries now
    /// (`POST /secondary/{zone}/refresh`); false when it is not one.
    pub fn refresh_secondary(&self, zone: &hickory_proto::rr::Name) -> bool {
        self.secondaries.refresh(zone)
    }

    /// Stops the secondary zones' transfer tasks (shutdown).
    pub fn stop_secondaries(&self) {
        self.secondaries.sync(None);
    }

    /// Keeps the secondary zones current: starts their transfer tasks, and
    /// reloads whenever a transfer brings a new copy or one expires. Runs
    /// until the server stops.
    pub async fn run_secondaries(self: Arc<Self>) {
        // From here on the tasks follow each config served (`ReloadJob`).
        self.secondaries.start();
        // A primary tells its secondaries of its zones when it starts.
        notify_secondaries(
            &self.active,
            &self.table.load(),
            &HashMap::new(),
            &self.secondaries,
        );
        loop {
            self.secondaries.reload_wanted().await;
            if let Err(failure) = self.reload().await {
                error!(
                    errors = %failure.errors.join("; "),
                    "a transferred zone is kept on disk but not served: the reload failed"
                );
            }
        }
    }

    /// Signs the signed zones again when half their signatures' validity
    /// is gone or a key's timing changes its role (published, active,
    /// retired, deleted), by reloading: keys and zones are read again, as
    /// `steer reload` would. A failed reload keeps the served signatures,
    /// which go on aging (`steer_dnssec_signatures_expire_timestamp_seconds`
    /// says how long is left), and is tried again every minute. Runs until
    /// the server stops.
    pub async fn run_resigner(self: Arc<Self>) {
        const RECHECK: u64 = 60;
        loop {
            let due = self.table.load().resign_at();
            let now = unix_now();
            match due {
                Some(at) if at <= now => {}
                Some(at) => {
                    tokio::time::sleep(Duration::from_secs((at - now).min(RECHECK))).await;
                    continue;
                }
                None => {
                    tokio::time::sleep(Duration::from_secs(RECHECK)).await;
                    continue;
                }
            }
            info!("signing again: signatures are half way to expiry or a key's time has come");
            match self.reload().await {
                // Most signatures are new now: kept at once, so that a
                // start after a crash does not make them all again.
                Ok(_) => self.save_signatures().await,
                Err(failure) => {
                    error!(
                        errors = %failure.errors.join("; "),
                        "signing again failed; the served signatures stay until fixed"
                    );
                    tokio::time::sleep(Duration::from_secs(RECHECK)).await;
                }
            }
        }
    }

    /// Keeps the served zones' signatures in `dnssec.state_file` for the
    /// next start (after the first signing, after each signing again, at
    /// a stop), or removes the file when nothing is signed. A failure is
    /// logged: the next start then signs everything anew.
    pub async fn save_signatures(&self) {
        let _one_at_a_time = self.signatures_save_lock.lock().await;
        let Some(path) = lock(&self.status).sources.signatures_file.clone() else {
            return;
        };
        let file = path.clone();
        let signatures = Arc::clone(&lock(&self.signatures));
        let signed = self.table.load().has_signed_zones();
        let saved = tokio::task::spawn_blocking(move || {
            if signed && !signatures.is_empty() {
                signatures
                    .save(&path)
                    .map(|bytes| Some((bytes, signatures.len())))
            } else {
                // Nothing signed any more: no file to read at the next start.
                match std::fs::remove_file(&path) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                    _ => Ok(None),
                }
            }
        })
        .await;
        match saved {
            Ok(Ok(Some((bytes, count)))) => {
                info!(file = %file.display(), signatures = count, bytes, "kept the signatures for the next start");
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                warn!(file = %file.display(), "cannot keep the signatures for the next start: {error}; it signs every RRset anew");
            }
            Err(join_error) => warn!("keeping the signatures failed: {join_error}"),
        }
    }

    /// The latency engine (`POST /latency`, metrics, explain).
    pub fn latency(&self) -> &Arc<LatencyEngine> {
        &self.latency
    }

    /// The active measurements' counters ([`latency::active::run`]).
    pub fn active_latency(&self) -> &Arc<latency::active::ActiveLatency> {
        &self.active_latency
    }

    /// The peers' latency journals' feeds ([`latency::sharing::run`]).
    pub fn latency_sharing(&self) -> &Arc<latency::sharing::LatencySharing> {
        &self.latency_sharing
    }

    /// Resolves every alias target of the served table once and compiles
    /// their addresses in, before the first query is answered.
    pub async fn resolve_aliases_at_start(&self) {
        let steering = self.steering();
        let targets = steering.alias_targets();
        if targets.is_empty() {
            return;
        }
        self.aliases.track(&targets, Instant::now());
        crate::alias::resolve_all(&self.aliases, &targets, &steering.resolver).await;
        // A failure is logged and kept in /status by the job.
        let _ = self.run_job(JobKind::Aliases).await;
    }

    /// Asks each alias target again when it is due, forgets addresses
    /// older than `max_stale`, and recompiles the steering part of the
    /// table when what a compile would read changed. Runs until the server
    /// stops.
    pub async fn run_alias_resolver(self: Arc<Self>) {
        use std::sync::atomic::Ordering;
        loop {
            let resolver = self.steering().resolver.clone();
            let now = Instant::now();
            self.aliases.expire(&resolver, now);
            let due = self.aliases.due(now);
            if !due.is_empty() {
                crate::alias::resolve_all(&self.aliases, &due, &resolver).await;
            }
            let compiled = self.compiled_aliases.load(Ordering::Relaxed);
            if self.aliases.version() != compiled && lock(&self.inputs).is_some() {
                // A failure is logged and kept in /status by the job.
                let _ = self.run_job(JobKind::Aliases).await;
            }
            // Woken at least every second: a reload may add targets.
            let wait = self
                .aliases
                .next_due()
                .map_or(Duration::from_secs(1), |next| {
                    next.saturating_duration_since(Instant::now())
                });
            tokio::time::sleep(wait.clamp(Duration::from_millis(20), Duration::from_secs(1))).await;
        }
    }

    /// Every alias target's resolution, for `/status`.
    pub fn alias_status(&self) -> Vec<crate::alias::TargetStatus> {
        self.aliases.status(Instant::now())
    }

    /// Latency recompiles so far.
    pub fn latency_compiles(&self) -> LatencyCompiles {
        lock(&self.latency_compiles).clone()
    }

    /// Recompiles the served table with the latest latency data whenever
    /// the model changed, every `latency.compile_interval`; expires stale
    /// measurements on the same beat. Runs until the server stops.
    pub async fn run_latency_compiler(self: Arc<Self>) {
        let mut last_expiry = std::time::Instant::now();
        let mut last_save = std::time::Instant::now();
        loop {
            // The served configuration's settings (the defaults while no
            // steered name has a latency step).
            let settings = lock(&self.inputs)
                .as_ref()
                .map_or_else(crate::config::steering::LatencyConfig::default, |inputs| {
                    inputs.config.steering.latency.clone()
                });
            tokio::time::sleep(settings.compile_interval).await;
            // Expiring walks every tracked network (a million of them take
            // some 100 ms and flush the caches the query path uses), so it
            // runs a sixteenth of max_age apart, not every tick: a stale
            // measurement is served at most that much longer.
            if last_expiry.elapsed() >= settings.max_age / 16 {
                self.latency.expire(unix_now());
                last_expiry = std::time::Instant::now();
            }
            // So that a crash loses at most this much of the model.
            if last_save.elapsed() >= settings.save_interval {
                // A failure is logged and counted by the save itself.
                let _ = self.save_latency_state().await;
                last_save = std::time::Instant::now();
            }
            let has_inputs = lock(&self.inputs).is_some();
            let version = self.latency.version();
            if has_inputs
                && version
                    != self
                        .compiled_version
                        .load(std::sync::atomic::Ordering::Relaxed)
            {
                // A failure is logged and kept in /status by the job.
                let _ = self.run_job(JobKind::Latency).await;
            }
        }
    }

    /// Writes the latency model to `latency.state_file` if it changed since
    /// the last write (at shutdown, every `latency.save_interval`, and on
    /// `POST /latency/save`). A failure is logged, counted in `/status` and
    /// returned; the model stays in memory either way.
    pub async fn save_latency_state(&self) -> Result<LatencySave, String> {
        let _one_at_a_time = self.latency_save_lock.lock().await;
        let encoding = std::time::Instant::now();
        let Some((mark, bytes)) = self.latency.state_to_save(unix_now()) else {
            return Ok(LatencySave::Unchanged);
        };
        let path = self.active.steering.latency.state_file.clone();
        let size = bytes.len();
        let written = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || latency::state_file::write(&path, &bytes)).await
        };
        let result = match written {
            Ok(Ok(())) => {
                self.latency.mark_saved(mark);
                debug!(
                    file = %path.display(),
                    bytes = size,
                    seconds = encoding.elapsed().as_secs_f64(),
                    "saved the latency model"
                );
                Ok(LatencySave::Written(size))
            }
            Ok(Err(error)) => Err(format!("{}: {error}", path.display())),
            Err(join_error) => Err(format!("{}: {join_error}", path.display())),
        };
        let mut saves = lock(&self.latency_saves);
        match &result {
            Ok(_) => {
                saves.ok += 1;
                saves.last_at = Some(unix_now());
                saves.last_bytes = size as u64;
                saves.last_error = None;
            }
            Err(error) => {
                warn!("could not save the latency model: {error}");
                saves.failed += 1;
                saves.last_error = Some(error.clone());
            }
        }
        result
    }

    /// Reads the latency model an earlier run saved to `latency.state_file`,
    /// puts it back (stale measurements and those of sites no longer
    /// configured left out) and compiles it into the served table. A file
    /// that cannot be read is logged and skipped: the server starts with an
    /// empty model, and the file is replaced at the next save.
    pub async fn restore_latency_state(&self) {
        let path = self.active.steering.latency.state_file.clone();
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || latency::state_file::read(&path)).await
        };
        match read {
            Ok(Ok(Some(saved))) => {
                let restored = self.latency.restore(&saved, unix_now());
                info!(
                    file = %path.display(),
                    restored = restored.restored,
                    dropped = restored.dropped,
                    choices = restored.choices,
                    "restored the latency model"
                );
                // Compiled now rather than at the first tick, so that the
                // first answers already use it.
                let has_inputs = lock(&self.inputs).is_some();
                if restored.restored > 0
                    && has_inputs
                    && let Err(failure) = self.run_job(JobKind::Latency).await
                {
                    warn!("compiling the restored latency model failed: {failure}");
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                warn!(
                    "{error}; starting with an empty latency model (the file is replaced at the \
                     next save)"
                );
            }
            Err(join_error) => {
                warn!(file = %path.display(), %join_error, "could not read the latency model");
            }
        }
    }

    /// Starts with `admin` (read from the state file) in force; `built`
    /// must have been built with it.
    pub fn with_admin_state(self, admin: AdminState) -> Self {
        *lock(&self.admin) = admin;
        self
    }

    /// Starts probing the served table's targets and returns once the first
    /// round is in (bounded by the probe timeouts), with its results in the
    /// table: call it before DNS is served. Returns targets that could not
    /// be set up, one line each. Must run inside a tokio runtime.
    pub async fn start_probes(&self) -> Vec<String> {
        let table = self.table.load_full();
        let health = &self.active.steering.health;
        let monitor = self.monitor.get_or_init(|| {
            Monitor::new(
                Arc::clone(&self.table),
                health.debounce,
                &health.node,
                self.latency.journal().epoch(),
            )
        });
        monitor
            .sync(
                table.health().targets(),
                health.debounce,
                self.active.steering.peers.as_ref(),
                health.quorum,
            )
            .await
    }

    /// Saves `changed` to the state file; the caller applies it only if
    /// this succeeds, so nothing the API confirmed is lost by a restart.
    fn save_admin(&self, changed: &AdminState) -> Result<(), AdminError> {
        let path = &self.active.admin.state_file;
        state_file::save(path, changed).map_err(|error| {
            let message = format!("cannot write the state file {}: {error}", path.display());
            error!("{message}");
            AdminError::NotSaved(message)
        })
    }

    /// Drains (or undrains) a pool: its endpoints leave (or rejoin) the
    /// answers of every steered name at once, and stay so across reloads.
    pub async fn set_drained(&self, pool: &str, drained: bool) -> Result<(), AdminError> {
        let _one_writer = self.reload_lock.lock().await;
        let table = self.table.load();
        if table.health().pool_index(pool).is_none() {
            return Err(AdminError::UnknownPool(pool.to_owned()));
        }
        let mut admin = lock(&self.admin);
        let mut next = admin.clone();
        let changed = if drained {
            next.drained.insert(pool.to_owned())
        } else {
            next.drained.remove(pool)
        };
        if changed {
            next.stamps
                .insert(AdminKey::Pool(pool.to_owned()), self.stamp());
            self.save_admin(&next)?;
        }
        *admin = next;
        table.health().apply(&admin);
        if changed {
            info!(pool, drained, "pool drain state changed by the admin API");
        }
        Ok(())
    }

    /// Forces an endpoint address up or down in every pool that has it, or
    /// (with `None`) returns it to its observed state.
    pub async fn force_endpoint(
        &self,
        address: std::net::IpAddr,
        forced: Option<Forced>,
    ) -> Result<(), AdminError> {
        let _one_writer = self.reload_lock.lock().await;
        let table = self.table.load();
        if !table.health().has_address(address) {
            return Err(AdminError::UnknownEndpoint(address));
        }
        let mut admin = lock(&self.admin);
        let mut next = admin.clone();
        let previous = match forced {
            Some(forced) => next.forced.insert(address, forced),
            None => next.forced.remove(&address),
        };
        if previous != forced {
            next.stamps.insert(AdminKey::Address(address), self.stamp());
            self.save_admin(&next)?;
        }
        *admin = next;
        table.health().apply(&admin);
        if previous != forced {
            info!(%address, ?forced, "endpoint override changed by the admin API");
        }
        Ok(())
    }

    /// When and where an admin change made now was made.
    fn stamp(&self) -> Stamp {
        let at_ms = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Stamp {
            at_ms,
            node: self.active.steering.health.node.clone(),
        }
    }

    /// The admin state, for `/status`.
    pub fn admin_state(&self) -> AdminState {
        lock(&self.admin).clone()
    }

    /// The shared table the data plane reads from.
    pub fn table(&self) -> Arc<ArcSwap<RoutingTable>> {
        Arc::clone(&self.table)
    }

    /// The configuration the server was started with (listen addresses,
    /// workers and limits stay as they were until a restart).
    pub fn config(&self) -> &Config {
        &self.active
    }

    /// Which decision counter slot counts which name, pool and reason,
    /// for `/metrics`.
    pub fn decisions(&self) -> &Arc<DecisionRegistry> {
        &self.decisions
    }

    /// The configuration file reloads read.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Records where DNS is actually served, for `/status`.
    pub fn set_listeners(&self, listeners: Listeners) {
        lock(&self.status).listeners = listeners;
    }

    /// Rebuilds everything from the files and publishes the result.
    ///
    /// One reload runs at a time; a second caller waits for the first. On
    /// failure the current table stays in place and the errors are returned,
    /// logged and kept for `/status`. Dropping the returned future does not
    /// stop a reload that has started: it completes and is recorded.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadFailure> {
        self.run_job(JobKind::Reload).await
    }

    /// [`Control::reload`] to serve a batch of dynamic updates, with the
    /// zones the batch has read and checked, so that a large zone is not
    /// parsed and checked again.
    async fn reload_updated(
        &self,
        updated: crate::update::handle::ParsedFiles,
    ) -> Result<ReloadReport, ReloadFailure> {
        self.run_job_with(JobKind::Reload, Some(updated)).await
    }

    async fn run_job(&self, kind: JobKind) -> Result<ReloadReport, ReloadFailure> {
        self.run_job_with(kind, None).await
    }

    async fn run_job_with(
        &self,
        kind: JobKind,
        updated: Option<crate::update::handle::ParsedFiles>,
    ) -> Result<ReloadReport, ReloadFailure> {
        let guard = Arc::clone(&self.reload_lock).lock_owned().await;
        let cached = lock(&self.inputs).clone();
        let source = match (kind, cached) {
            (JobKind::Latency | JobKind::Aliases, Some(inputs)) => Source::Cached(inputs),
            (JobKind::Latency | JobKind::Aliases, None) => {
                // The served table lost its latency steps (or alias
                // pools) meanwhile.
                return Ok(ReloadReport {
                    generation: self.table.load().generation(),
                    zones: 0,
                    records: 0,
                    seconds: 0.0,
                    warnings: Vec::new(),
                });
            }
            (JobKind::Reload, _) => Source::Files,
        };
        let job = ReloadJob {
            secondaries: Arc::clone(&self.secondaries),
            signatures: Arc::clone(&self.signatures),
            config_path: self.config_path.clone(),
            active: Arc::clone(&self.active),
            table: Arc::clone(&self.table),
            status: Arc::clone(&self.status),
            admin: lock(&self.admin).clone(),
            monitor: self.monitor.get().cloned(),
            decisions: Arc::clone(&self.decisions),
            latency: Arc::clone(&self.latency),
            inputs: Arc::clone(&self.inputs),
            compiled_version: Arc::clone(&self.compiled_version),
            latency_compiles: Arc::clone(&self.latency_compiles),
            aliases: Arc::clone(&self.aliases),
            compiled_aliases: Arc::clone(&self.compiled_aliases),
            kind,
            source,
            updated,
        };
        // A task of its own, with the lock guard, so that a cancelled
        // caller neither stops the reload half-way nor lets a second writer
        // start while this one is still running.
        let task = tokio::spawn(async move {
            let _one_writer = guard;
            job.run().await
        });
        match task.await {
            Ok(result) => result,
            Err(join_error) => {
                let generation = self.table.load().generation();
                let message = format!("the reload task failed: {join_error}");
                error!(
                    generation,
                    "reload failed, keeping the current table: {message}"
                );
                let failure = ReloadFailure {
                    generation,
                    errors: vec![message],
                };
                let mut status = lock(&self.status);
                status.reloads.failed += 1;
                status.last_reload_error = Some(ReloadErrorStatus {
                    at: unix_seconds(SystemTime::now()),
                    errors: failure.errors.clone(),
                });
                Err(failure)
            }
        }
    }

    /// A consistent view of the table being served and of reload history.
    pub fn status(&self) -> StatusSnapshot {
        let status = lock(&self.status);
        let table = self.table.load();
        // The admin lock is held while an override is written into the
        // atomics, so reading both under it gives one consistent view.
        let monitor = self.monitor.get().map(Monitor::snapshot);
        let health = HealthStatus {
            node: self.active.steering.health.node.clone(),
            quorum: monitor.as_ref().and_then(|snapshot| {
                snapshot.quorum.map(|quorum| match quorum {
                    Quorum::Majority => "majority".to_owned(),
                    Quorum::AtLeast(count) => count.to_string(),
                })
            }),
            peers: monitor
                .as_ref()
                .map(|snapshot| snapshot.peers.clone())
                .unwrap_or_default(),
        };
        let probes = monitor
            .as_ref()
            .map(|snapshot| snapshot.targets.clone())
            .unwrap_or_default();
        let endpoints = table
            .health()
            .statuses(&lock(&self.admin))
            .into_iter()
            .map(|endpoint| {
                let target = endpoint.target.and_then(|address| {
                    probes.iter().find(|target| {
                        target.target == address && Some(&target.probe) == endpoint.probe.as_ref()
                    })
                });
                EndpointReport {
                    observed: endpoint
                        .probe
                        .as_ref()
                        .map(|_| target.map_or(Observed::Unknown, |target| target.observed)),
                    since: target.map(|target| target.since),
                    last_probe: target.and_then(|target| target.last_probe.clone()),
                    last_error: target.and_then(|target| target.last_error.clone()),
                    votes: target.and_then(|target| target.votes),
                    endpoint,
                }
            })
            .collect();
        let steered = table
            .policies()
            .iter()
            .map(|policy| SteeredStatus {
                name: policy.name().to_owned(),
                record_type: policy.type_name().to_owned(),
                pools: policy.pool_ids(),
            })
            .collect();
        StatusSnapshot {
            generation: table.generation(),
            zones: table
                .zones()
                .iter()
                .map(|zone| ZoneStatus {
                    name: zone.name.clone(),
                    serial: zone.serial,
                    records: zone.records,
                    file: zone.file.display().to_string(),
                    dnssec: zone.dnssec.as_ref().map(|signing| ZoneSigningStatus {
                        expires: signing.expires,
                        resign_at: signing.refresh_at,
                        keys: signing.keys.clone(),
                        signatures: signing.signatures,
                        reused: signing.reused,
                    }),
                })
                .collect(),
            last_compile: status.last_compile.clone(),
            last_reload_error: status.last_reload_error.clone(),
            reloads: status.reloads,
            listen: status.listeners.clone(),
            endpoints,
            failover: monitor.map_or_else(
                || Histogram::new(&crate::probe::monitor::FAILOVER_BUCKETS),
                |snapshot| snapshot.failover,
            ),
            probes,
            steered,
            latency: {
                let totals = self.latency.totals();
                LatencyStatus {
                    samples_accepted: totals.accepted,
                    samples_rejected: crate::latency::engine::REJECTION_REASONS
                        .iter()
                        .copied()
                        .zip(totals.rejected)
                        .collect(),
                    prefixes: totals.prefixes,
                    memory_bytes: totals.memory_bytes,
                    compiles: self.latency_compiles(),
                    active: self.active_latency.totals(),
                    journal: self.latency.journal().len(),
                    peers: self.latency_sharing.statuses(),
                    node: latency::active::node_rtts(&self.latency, unix_now()),
                    saves: lock(&self.latency_saves).clone(),
                }
            },
            rate_limit: table
                .rate_limit()
                .map(|limits| crate::config::RateLimitConfig {
                    table_size: self.active.rate_limit_table_size(),
                    ..limits.clone()
                }),
            query_log: self.active.query_log.as_ref().map(|log| QueryLogStatus {
                file: match &log.output {
                    crate::config::QueryLogOutput::File(path) => Some(path.display().to_string()),
                    _ => None,
                },
                socket: match &log.output {
                    crate::config::QueryLogOutput::File(_) => None,
                    socket => Some(socket.to_string()),
                },
                format: match log.format {
                    crate::config::QueryLogFormat::Json => "json",
                    crate::config::QueryLogFormat::Dnstap => "dnstap",
                },
                sample: log.sample,
            }),
            health,
            secondary: self.secondaries.status(),
            notify_out: self.secondaries.notify_out_status(),
            aliases: self.alias_status(),
            updates: self
                .update_counts()
                .into_iter()
                .map(|(zone, rcode, count)| UpdateCount {
                    zone,
                    rcode: crate::dns::rcode_text(rcode),
                    count,
                })
                .collect(),
        }
    }

    /// The steering configuration in force (its `[peers]` with it), shared
    /// rather than copied: the peers' listener reads it on every request
    /// and handshake.
    pub fn steering(&self) -> Arc<SteeringConfig> {
        Arc::clone(&lock(&self.status).sources.steering)
    }

    /// The admin API's certificate and key in force (`admin.tls_certificate`,
    /// as of the last reload), for each new TLS handshake.
    pub fn admin_tls(&self) -> Option<Arc<crate::config::tls::TlsIdentity>> {
        lock(&self.status).sources.admin_tls.clone()
    }

    /// DNS over TLS's certificate and key in force (`server.tls_certificate`,
    /// as of the last reload), for each new handshake.
    pub fn dns_tls(&self) -> Option<Arc<crate::config::tls::TlsIdentity>> {
        lock(&self.status).sources.dns_tls.clone()
    }

    /// This node's own probe results, for its peers (`GET /health/view`).
    pub fn health_view(&self) -> crate::health::peers::View {
        let mut view = match self.monitor.get() {
            Some(monitor) => monitor.view(),
            None => crate::health::peers::View {
                node: self.active.steering.health.node.clone(),
                instance: self.latency.journal().epoch().to_owned(),
                admin: Vec::new(),
                targets: Vec::new(),
            },
        };
        if self
            .steering()
            .peers
            .as_ref()
            .is_some_and(|peers| peers.share_admin)
        {
            view.admin = lock(&self.admin).shared();
        }
        view
    }

    /// With `peers.share_admin`, takes the drains and overrides the peers
    /// share every `peers.interval`; see [`Control::merge_admin`]. Runs
    /// until aborted.
    pub async fn run_admin_sharing(self: Arc<Self>) {
        loop {
            let steering = self.steering();
            let peers = steering.peers.as_ref();
            let interval = peers.map_or(Duration::from_secs(1), |peers| peers.interval);
            tokio::time::sleep(interval).await;
            if !peers.is_some_and(|peers| peers.share_admin) {
                continue;
            }
            let Some(monitor) = self.monitor.get() else {
                continue;
            };
            let shared = monitor.peer_admin();
            if !shared.is_empty()
                && let Err(error) = self.merge_admin(&shared).await
            {
                warn!("the peers' drains and overrides were not taken: {error}");
            }
        }
    }

    /// Takes every setting of `shared` that is newer than this node's for
    /// the same pool or address: saved to the state file first, then
    /// applied, like a change made here. Returns how many were taken.
    pub async fn merge_admin(&self, shared: &[SharedSetting]) -> Result<usize, AdminError> {
        let _one_writer = self.reload_lock.lock().await;
        let mut admin = lock(&self.admin);
        let mut next = admin.clone();
        let mut taken = Vec::new();
        for setting in shared {
            if let Some(key) = next.merge(setting) {
                taken.push((key, setting));
            }
        }
        if taken.is_empty() {
            return Ok(0);
        }
        self.save_admin(&next)?;
        *admin = next;
        self.table.load().health().apply(&admin);
        for (key, setting) in &taken {
            info!(
                setting = %key.to_text(), state = %setting.state, node = %setting.node,
                "took a peer's admin setting"
            );
        }
        Ok(taken.len())
    }

    /// The table being served with its GeoIP databases, steering
    /// configuration and admin state, for explain.
    pub fn serving(&self) -> Serving {
        let status = lock(&self.status);
        let table = self.table.load_full();
        let admin = lock(&self.admin).clone();
        Serving {
            table,
            geo: status.sources.geo.clone(),
            steering: Arc::clone(&status.sources.steering),
            admin,
            latency: Some(Arc::clone(&self.latency)),
            // Set with the table, under the status lock held here.
            inputs: lock(&self.inputs).clone(),
        }
    }
}

/// Everything a reload needs, owned, so that it can run to completion on a
/// blocking thread regardless of its caller.
struct ReloadJob {
    secondaries: Arc<Secondaries>,
    signatures: Arc<Mutex<Arc<SignatureCache>>>,
    config_path: PathBuf,
    active: Arc<Config>,
    table: Arc<ArcSwap<RoutingTable>>,
    status: Arc<Mutex<Status>>,
    /// A copy taken under the reload lock; it cannot change until the swap.
    admin: AdminState,
    monitor: Option<Monitor>,
    decisions: Arc<DecisionRegistry>,
    latency: Arc<LatencyEngine>,
    inputs: Arc<Mutex<Option<Arc<CompileInputs>>>>,
    compiled_version: Arc<std::sync::atomic::AtomicU64>,
    latency_compiles: Arc<Mutex<LatencyCompiles>>,
    aliases: Arc<Aliases>,
    compiled_aliases: Arc<std::sync::atomic::AtomicU64>,
    kind: JobKind,
    source: Source,
    /// Zones a batch of dynamic updates has just read and checked.
    updated: Option<crate::update::handle::ParsedFiles>,
}

/// What a job compiles from.
enum Source {
    /// The config and zone files (a reload).
    Files,
    /// The served table's parsed inputs, with new latency data or alias
    /// addresses.
    Cached(Arc<CompileInputs>),
}

/// Why a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobKind {
    Reload,
    Latency,
    /// An alias target's addresses changed.
    Aliases,
}

/// Latency recompiles since start.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyCompiles {
    /// Recompiles that published a table.
    pub count: u64,
    /// Seconds the last one took.
    pub last_seconds: f64,
    /// Latency sources whose chosen site changed at the last one.
    pub last_changed: u64,
    /// Over all recompiles.
    pub changed_total: u64,
}

impl ReloadJob {
    async fn run(mut self) -> Result<ReloadReport, ReloadFailure> {
        let current = self.table.load().generation();
        let generation = current + 1;
        let config_path = self.config_path.clone();
        let admin = self.admin.clone();
        let decisions = Arc::clone(&self.decisions);
        let latency = Arc::clone(&self.latency);
        let latency_job = matches!(self.source, Source::Cached(_));
        let cached = match &self.source {
            Source::Cached(inputs) => Some(Arc::clone(inputs)),
            Source::Files => None,
        };
        let version = self.latency.version();
        let (aliases, aliases_version) = self.aliases.snapshot();
        // The table these inputs compiled: this job holds the reload lock,
        // and the inputs and the table are replaced together.
        let served = self.table.load_full();
        let signatures = Arc::clone(&lock(&self.signatures));
        let updated = self.updated.take();
        // Zone files can be large: build on a blocking thread.
        let built = tokio::task::spawn_blocking(move || match cached {
            None => build_with_decisions(
                &config_path,
                generation,
                &admin,
                &decisions,
                Carried {
                    latency: Some(&latency),
                    signatures: Some(&signatures),
                    outbound: served.outbound().map(|outbound| &**outbound),
                    aliases: Some(&aliases),
                    updated: updated.as_ref(),
                },
            ),
            Some(inputs) => rebuild(
                &inputs,
                &served,
                generation,
                &admin,
                &decisions,
                (&latency, Some(&aliases)),
            ),
        })
        .await;
        let built = match built {
            Ok(Ok(built)) => built,
            Ok(Err(errors)) => return Err(self.fail(current, errors)),
            Err(join_error) => {
                let message = format!("the reload task failed: {join_error}");
                return Err(self.fail(current, vec![message]));
            }
        };
        let (built, aliases_version) = match self.resolve_new_aliases(built, generation).await {
            Ok((built, Some(version))) => (built, version),
            Ok((built, None)) => (built, aliases_version),
            Err(errors) => return Err(self.fail(current, errors)),
        };
        let alias_targets = built.config.steering.alias_targets();
        let mut warnings = built.warnings.clone();
        warnings.extend(restart_needed(&self.active, &built.config));
        let report = ReloadReport {
            generation,
            zones: built.zones,
            records: built.records,
            seconds: built.compile_duration.as_secs_f64(),
            warnings,
        };
        // Transfer tasks follow the config being published; the table
        // accepts NOTIFY for exactly its secondary zones. Catalog members
        // dropped first, so that a reset one starts from nothing.
        if let Some(secondary) = &built.config.secondary {
            self.secondaries.forget(&built.membership.dropped());
            apply_membership(
                secondary,
                &built.membership,
                &built.config.server.journal_directory,
            );
        }
        self.secondaries.sync(built.config.secondary.as_ref());
        let mut table = built.table;
        table.set_notify_targets(self.secondaries.targets(built.config.secondary.as_ref()));
        table.set_accepts_updates(built.config.update.is_some());
        let table = Arc::new(table);
        if let Some(monitor) = &self.monitor {
            // New targets get their first probe before they are served.
            let health = &built.config.steering.health;
            let targets = table.health().targets();
            for problem in monitor
                .sync(
                    targets,
                    health.debounce,
                    built.config.steering.peers.as_ref(),
                    health.quorum,
                )
                .await
            {
                warn!("{problem}; it is not probed");
            }
        }
        let chosen: HashMap<String, Arc<Choices>> = table
            .policies()
            .iter()
            .filter(|policy| !policy.latency_chosen.is_empty())
            .map(|policy| (policy.label.clone(), Arc::clone(&policy.latency_chosen)))
            .collect();
        let previous_serials: HashMap<String, u32> = self
            .table
            .load()
            .zones()
            .iter()
            .map(|zone| (zone.name.clone(), zone.serial))
            .collect();
        {
            let mut status = lock(&self.status);
            let store = || self.table.store(Arc::clone(&table));
            match &self.monitor {
                Some(monitor) => monitor.publish_table(&table, store),
                None => store(),
            }
            // Served now: a secondary told of a new serial finds it.
            if !latency_job {
                notify_secondaries(&built.config, &table, &previous_serials, &self.secondaries);
                if let Some(outbound) = table.outbound().cloned() {
                    let directory = built.config.server.journal_directory.clone();
                    let previous = previous_serials.clone();
                    // Off the reload: a large zone's history is megabytes.
                    tokio::task::spawn_blocking(move || {
                        outbound.save_journal(&directory, |zone, serial| {
                            previous.get(&zone.to_ascii()) != Some(&serial)
                        });
                    });
                }
            }
            drop(table);
            self.decisions.commit();
            let changed = self.latency.remember_choices(chosen);
            self.latency.reconfigure(
                &built.config.steering.latency,
                site_ids(&built.config),
                unix_now(),
            );
            self.latency
                .journal()
                .set_enabled(built.config.steering.peers.is_some());
            self.compiled_version
                .store(version, std::sync::atomic::Ordering::Relaxed);
            self.compiled_aliases
                .store(aliases_version, std::sync::atomic::Ordering::Relaxed);
            if self.kind == JobKind::Reload {
                // Served now: targets no pool names are no longer asked.
                self.aliases.retain(&alias_targets);
            }
            *lock(&self.inputs) = built.inputs.clone();
            // The old signatures go: a cache of only what is served stays
            // the size of the signed zones.
            if let Some(signatures) = &built.signatures {
                *lock(&self.signatures) = Arc::clone(signatures);
            }
            if self.kind == JobKind::Latency {
                let mut compiles = lock(&self.latency_compiles);
                compiles.count += 1;
                compiles.last_seconds = report.seconds;
                compiles.last_changed = changed;
                compiles.changed_total += changed;
            }
            status.sources = Sources {
                geo: built.geo,
                steering: Arc::new(built.config.steering),
                update: built.config.update.map(Arc::new),
                zones_dir: built.config.server.zones,
                admin_tls: built.config.admin.tls,
                dns_tls: built.config.server.tls,
                signatures_file: built.config.dnssec.map(|dnssec| dnssec.state_file),
            };
            // The parse and compile garbage (and usually the old
            // table) is free now: hand it back to the system.
            release_freed_memory();
            if !latency_job {
                status.reloads.ok += 1;
            }
            status.last_compile = CompileStatus {
                at: unix_seconds(SystemTime::now()),
                seconds: report.seconds,
            };
        }
        if latency_job {
            info!(
                generation,
                seconds = report.seconds,
                "recompiled with new latency data"
            );
            return Ok(report);
        }
        info!(
            generation,
            zones = report.zones,
            records = report.records,
            seconds = report.seconds,
            "reloaded"
        );
        for warning in &report.warnings {
            warn!("{warning}");
        }
        Ok(report)
    }

    /// Records a failed reload; the current table stays.
    /// A reload that brings alias targets never tried has them resolved
    /// before its table is served, and its steering compiled again with
    /// them, so that a new alias name does not start with SERVFAIL. Returns
    /// the build and the [`Aliases::version`] its table holds (`None`: the
    /// one it was built with).
    async fn resolve_new_aliases(
        &self,
        built: Built,
        generation: u64,
    ) -> Result<(Built, Option<u64>), Vec<String>> {
        if self.kind != JobKind::Reload {
            return Ok((built, None));
        }
        let targets = built.config.steering.alias_targets();
        self.aliases.track(&targets, Instant::now());
        let untried = self.aliases.untried(&targets);
        if untried.is_empty() {
            return Ok((built, None));
        }
        let resolver = built.config.steering.resolver.clone();
        crate::alias::resolve_all(&self.aliases, &untried, &resolver).await;
        let (addresses, version) = self.aliases.snapshot();
        let Some(inputs) = built.inputs.clone() else {
            return Ok((built, Some(version)));
        };
        let admin = self.admin.clone();
        let decisions = Arc::clone(&self.decisions);
        let latency = Arc::clone(&self.latency);
        let (mut built, rebuilt) = tokio::task::spawn_blocking(move || {
            let carried = (&*latency, Some(&addresses));
            let rebuilt = rebuild(
                &inputs,
                &built.table,
                generation,
                &admin,
                &decisions,
                carried,
            );
            (built, rebuilt)
        })
        .await
        .map_err(|join_error| vec![format!("the reload task failed: {join_error}")])?;
        built.table = rebuilt?.table;
        Ok((built, Some(version)))
    }

    fn fail(&self, current: u64, errors: Vec<String>) -> ReloadFailure {
        // No table counts into the slots this build registered.
        self.decisions.rollback();
        error!(
            generation = current,
            "reload failed, keeping the current table:\n  {}",
            errors.join("\n  ")
        );
        let mut status = lock(&self.status);
        status.reloads.failed += 1;
        status.last_reload_error = Some(ReloadErrorStatus {
            at: unix_seconds(SystemTime::now()),
            errors: errors.clone(),
        });
        ReloadFailure {
            generation: current,
            errors,
        }
    }
}

/// Settings that were applied when sockets were opened and that a reload
/// therefore cannot change, each with a sentence for the operator.
fn restart_needed(active: &Config, reloaded: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut compare = |key: &str, before: String, after: String| {
        if before != after {
            warnings.push(format!(
                "{key} changed from {before} to {after}; still using {before} until steer is \
                 restarted"
            ));
        }
    };
    compare(
        "server.listen",
        list(&active.server.listen),
        list(&reloaded.server.listen),
    );
    compare(
        "server.tls_listen",
        list(&active.server.tls_listen),
        list(&reloaded.server.tls_listen),
    );
    compare(
        "server.workers",
        active.server.workers.to_string(),
        reloaded.server.workers.to_string(),
    );
    compare(
        "server.tcp_idle_timeout",
        format!("{:?}", active.server.tcp_idle_timeout),
        format!("{:?}", reloaded.server.tcp_idle_timeout),
    );
    compare(
        "server.tcp_max_connections",
        active.server.tcp_max_connections.to_string(),
        reloaded.server.tcp_max_connections.to_string(),
    );
    compare(
        "server.tcp_max_connections_per_client",
        active.server.tcp_max_connections_per_client.to_string(),
        reloaded.server.tcp_max_connections_per_client.to_string(),
    );
    compare(
        "admin.listen",
        active.admin.listen.to_string(),
        reloaded.admin.listen.to_string(),
    );
    compare(
        "admin.allow_remote",
        active.admin.allow_remote.to_string(),
        reloaded.admin.allow_remote.to_string(),
    );
    // Whether a token is set and whether it changed, never the token: the
    // warnings go to the log and to the reload's caller.
    let described = |token: &Option<String>| token.as_ref().map_or("no token", |_| "a token");
    let (before, after) = match (&active.admin.token, &reloaded.admin.token) {
        (Some(old), Some(new)) if old != new => ("the old token", "a new token"),
        (old, new) => (described(old), described(new)),
    };
    compare("admin.token_file", before.to_owned(), after.to_owned());
    // Probes and peer fetches name the node in their User-Agent, set when
    // they start.
    compare(
        "health.node",
        active.steering.health.node.clone(),
        reloaded.steering.health.node.clone(),
    );
    let peers_listen = |config: &Config| {
        config
            .steering
            .peers
            .as_ref()
            .and_then(|peers| peers.listen)
            .map_or_else(|| "none".to_owned(), |address| address.to_string())
    };
    compare("peers.listen", peers_listen(active), peers_listen(reloaded));
    // Whether the listener speaks TLS is fixed when it opens; a new
    // certificate is used at the next handshake.
    let listener_tls = |config: &Config| {
        let tls = config
            .steering
            .peers
            .as_ref()
            .is_some_and(|peers| peers.tls.is_some());
        if tls { "TLS" } else { "no TLS" }.to_owned()
    };
    compare(
        "peers.tls_certificate",
        listener_tls(active),
        listener_tls(reloaded),
    );
    let admin_tls = |config: &Config| {
        if config.admin.tls.is_some() {
            "TLS"
        } else {
            "no TLS"
        }
        .to_owned()
    };
    compare(
        "admin.tls_certificate",
        admin_tls(active),
        admin_tls(reloaded),
    );
    compare(
        "latency.state_file",
        active.steering.latency.state_file.display().to_string(),
        reloaded.steering.latency.state_file.display().to_string(),
    );
    // The bucket table is made once, at start, whether or not limits are
    // configured; the limits themselves reload.
    // The log file is opened, and the sampling set, when the workers start.
    let query_log = |config: &Config| {
        config.query_log.as_ref().map_or_else(
            || "off".to_owned(),
            |log| format!("{} as {:?} (one in {})", log.output, log.format, log.sample),
        )
    };
    compare("query_log", query_log(active), query_log(reloaded));
    compare(
        "rate_limit.table_size",
        active.rate_limit_table_size().to_string(),
        reloaded.rate_limit_table_size().to_string(),
    );
    warnings
}

fn list(addresses: &[SocketAddr]) -> String {
    let items: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// Returns memory freed by a build to the operating system. A large zone's
/// parse and compile structures are several times the size of the table
/// they produce, and glibc would otherwise keep them in the heap.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has
    // no preconditions and is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(directory: &Path, body: &str) -> PathBuf {
        let path = directory.join("steer.toml");
        std::fs::write(&path, body).expect("write config");
        path
    }

    fn first_built(config_path: &Path) -> Built {
        let config = config::load(config_path).expect("valid config");
        Built {
            config,
            table: RoutingTable::empty(),
            geo: None,
            zones: 0,
            records: 0,
            compile_duration: Duration::from_millis(2),
            decisions: Arc::default(),
            inputs: None,
            warnings: Vec::new(),
            signatures: None,
            membership: Membership::default(),
        }
    }

    #[test]
    fn build_reports_config_errors_as_lines() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = write_config(
            directory.path(),
            "[server]\nlisten = [\"bad\"]\nworkers = 0\n",
        );
        let errors = build(&path, 1, &AdminState::default())
            .err()
            .expect("invalid config");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].ends_with("server.listen[0]: invalid socket address \"bad\": expected IP:port, e.g. \"127.0.0.1:5300\" or \"[::1]:5300\""), "{errors:?}");
        assert!(errors[1].ends_with("server.workers: must be between 1 and 256, not 0"));
    }

    #[tokio::test]
    async fn failed_reload_keeps_the_table_and_records_the_error() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = write_config(directory.path(), "[server]\nlisten = [\"127.0.0.1:0\"]\n");
        let control = Control::new(&path, first_built(&path));
        let before = control.table().load_full();

        std::fs::write(&path, "[server]\nlisten = [\"127.0.0.1:0\"]\nlistn = 1\n").expect("write");
        let failure = control.reload().await.expect_err("broken config");
        assert_eq!(failure.generation, 0);
        assert_eq!(failure.errors.len(), 1);
        assert!(
            failure.errors[0].contains("unknown key server.listn"),
            "{failure:?}"
        );

        assert!(Arc::ptr_eq(&before, &control.table().load_full()));
        let status = control.status();
        assert_eq!(status.reloads, ReloadCounts { ok: 0, failed: 1 });
        let last_error = status.last_reload_error.expect("error recorded");
        assert_eq!(last_error.errors, failure.errors);
        assert!(last_error.at > 0.0);
    }

    #[tokio::test]
    async fn a_latency_recompile_shares_the_zones_and_reads_no_file() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let zones = directory.path().join("zones");
        std::fs::create_dir(&zones).expect("zones directory");
        let zone = "$TTL 300\n@ SOA ns1 host 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.53\nstatic A 192.0.2.1\n";
        std::fs::write(zones.join("example.test.zone"), zone).expect("write zone");
        let path = write_config(
            directory.path(),
            "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\n\
             [sites.fra]\n[sites.iad]\n\
             [pools.fra]\nsite = \"fra\"\naddresses = [\"192.0.2.10\"]\n\
             [pools.iad]\nsite = \"iad\"\naddresses = [\"192.0.2.20\"]\n\
             [[steer]]\nname = \"www.example.test.\"\ntype = \"A\"\npools = [\"fra\", \"iad\"]\n\
             policy = [\"latency\", \"priority\"]\n",
        );
        let built = build(&path, 1, &AdminState::default()).expect("valid config");
        assert!(built.inputs.is_some(), "kept for latency recompiles");
        let control = Control::new(&path, built);
        let before = control.table().load_full();

        // A zone edit on disk is for the next reload, not for a recompile.
        std::fs::write(
            zones.join("example.test.zone"),
            zone.replace("192.0.2.1", "192.0.2.2"),
        )
        .expect("edit zone");
        let report = control.run_job(JobKind::Latency).await.expect("recompiled");
        let after = control.table().load_full();
        assert_eq!(report.generation, 2);
        assert_eq!(after.generation(), 2);
        assert!(after.shares_zones_with(&before));
        assert_eq!(after.policies().len(), 1);
        assert_eq!(after.zones(), before.zones());

        // A reload reads the files and compiles the zones anew.
        control.reload().await.expect("reloaded");
        let reloaded = control.table().load_full();
        assert_eq!(reloaded.generation(), 3);
        assert!(!reloaded.shares_zones_with(&after));
    }

    #[test]
    fn listen_changes_need_a_restart() {
        let base = config::parse(
            Path::new("steer.toml"),
            "[server]\nlisten = [\"127.0.0.1:53\"]\nworkers = 2\n",
        )
        .expect("valid");
        let changed = config::parse(
            Path::new("steer.toml"),
            "[server]\nlisten = [\"127.0.0.1:54\"]\nworkers = 2\nzones = \"other\"\n",
        )
        .expect("valid");
        assert_eq!(
            restart_needed(&base, &changed),
            vec![
                "server.listen changed from [127.0.0.1:53] to [127.0.0.1:54]; still using \
                 [127.0.0.1:53] until steer is restarted"
            ]
        );
        assert!(restart_needed(&base, &base).is_empty());
    }

    #[test]
    fn rate_limits_reload_but_the_table_size_needs_a_restart() {
        let parse = |text: &str| {
            config::parse(
                Path::new("steer.toml"),
                &format!("[server]\nlisten = [\"127.0.0.1:53\"]\n{text}"),
            )
            .expect("valid")
        };
        let off = parse("");
        let on = parse("[rate_limit]\nresponses_per_second = 9\n");
        let bigger = parse("[rate_limit]\nresponses_per_second = 9\ntable_size = 1000000\n");
        // Turning limits on or off, or changing them, is a reload.
        assert!(restart_needed(&off, &on).is_empty());
        assert!(restart_needed(&on, &off).is_empty());
        assert_eq!(
            restart_needed(&on, &bigger),
            vec![
                "rate_limit.table_size changed from 262144 to 1048576; still using 262144 \
                 until steer is restarted"
            ]
        );
    }

    #[test]
    fn status_shows_the_first_table() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = write_config(directory.path(), "[server]\nlisten = [\"127.0.0.1:0\"]\n");
        let control = Control::new(&path, first_built(&path));
        let listeners = Listeners {
            udp: vec!["127.0.0.1:5300".parse().expect("address")],
            tcp: vec!["127.0.0.1:5300".parse().expect("address")],
            tls: Vec::new(),
            peers: None,
        };
        control.set_listeners(listeners.clone());
        let status = control.status();
        assert_eq!(status.generation, 0);
        assert!(status.zones.is_empty());
        assert_eq!(status.last_compile.seconds, 0.002);
        assert_eq!(status.last_reload_error, None);
        assert_eq!(status.listen, listeners);
    }
}
