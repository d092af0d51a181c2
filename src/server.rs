//! Wiring: first table, then DNS listeners, then the admin API.
//!
//! [`start`] refuses to serve anything until the first build succeeds: a
//! server that starts with a broken configuration would answer REFUSED for
//! every zone. The saved drains and overrides are read before that build,
//! and the first probe round runs after it and before any socket opens. UDP binds first (its sockets come from the worker threads),
//! then TCP binds the same addresses with the ports UDP resolved, so that
//! every DNS address is one port for both transports even when the
//! configuration says port 0. The returned [`RunningServer`] owns every
//! handle; [`RunningServer::shutdown`] stops them in reverse order.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::admin::{AdminServer, AdminState};
use crate::config::Config;
use crate::control::{self, Control, Listeners};
use crate::dns::rate_limit::Buckets;
use crate::dns::tcp::{TcpLimits, TcpService};
use crate::dns::udp::UdpService;
use crate::health::state_file;
use crate::metrics::Metrics;
use crate::query_log::{QueryLog, QueryLogWriter};

/// Attempts at binding UDP and TCP to one shared port when that port is
/// chosen by the kernel: UDP's free port may be taken for TCP, the more
/// likely the more addresses there are and the more connections the host
/// makes (thousands a second in the differential tests); each attempt
/// costs a bind.
const PAIR_BIND_ATTEMPTS: usize = 20;

/// Why the server did not start. Nothing is being served when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a zone is invalid; one line per error.
    #[error("the configuration is invalid ({} error(s))", .0.len())]
    Invalid(Vec<String>),
    /// A listener could not be opened.
    #[error("cannot listen for {what} on {addresses}: {source}")]
    Listen {
        /// `DNS over UDP`, `DNS over TCP` or `the admin API`.
        what: &'static str,
        /// The addresses that were being bound.
        addresses: String,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl StartError {
    /// Every error as a line to print.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid(errors) => errors.clone(),
            Self::Listen { .. } => vec![self.to_string()],
        }
    }
}

/// A serving Steer: DNS over UDP and TCP, and the admin API.
pub struct RunningServer {
    /// DNS over UDP, one per configured address, ports resolved.
    pub dns_udp: Vec<SocketAddr>,
    /// DNS over TCP, same addresses and ports as `dns_udp`.
    pub dns_tcp: Vec<SocketAddr>,
    /// DNS over TLS (`server.tls_listen`), ports resolved.
    pub dns_tls: Vec<SocketAddr>,
    /// The admin API.
    pub admin: SocketAddr,
    /// The peers' read-only listener, when `peers.listen` is set.
    pub peers: Option<SocketAddr>,
    /// The table owner; call [`Control::reload`] to reload.
    pub control: Arc<Control>,
    udp: UdpService,
    tcp: TcpService,
    tls: Option<TcpService>,
    admin_server: AdminServer,
    peers_server: Option<AdminServer>,
    database_watch: tokio::task::JoinHandle<()>,
    latency_compiler: tokio::task::JoinHandle<()>,
    /// Signs signed zones again before their signatures age.
    resigner: tokio::task::JoinHandle<()>,
    /// Resolves alias pools' targets again as their TTLs run out.
    alias_resolver: tokio::task::JoinHandle<()>,
    /// Applies dynamic updates.
    updates: tokio::task::JoinHandle<()>,
    /// Keeps secondary zones current (transfers, NOTIFY, expiry).
    secondaries: tokio::task::JoinHandle<()>,
    active_latency: tokio::task::JoinHandle<()>,
    latency_sharing: tokio::task::JoinHandle<()>,
    admin_sharing: tokio::task::JoinHandle<()>,
    rate_limit_log: tokio::task::JoinHandle<()>,
    query_log_writer: Option<QueryLogWriter>,
}

/// How often the GeoIP database files are looked at for replacement.
pub const DATABASE_POLL: Duration = Duration::from_secs(5);

/// How often what the rate limiter did is logged (when it did anything):
/// soon enough to see a flood start, seldom enough that a flood cannot
/// fill the log.
pub const RATE_LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Logs, every `interval` in which UDP responses went over the rate limit,
/// how many were dropped and sent truncated (or would have been, in a dry
/// run) and one client network among them. Never per query: a flood is
/// one line per interval.
async fn log_rate_limiting(control: Arc<Control>, metrics: Arc<Metrics>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before = metrics.totals().over_limit;
    loop {
        ticker.tick().await;
        let now = metrics.totals().over_limit;
        let table = control.table().load_full();
        let report =
            RateLimitReport::between(before, now, metrics.take_last_limited(), table.rate_limit());
        before = now;
        let seconds = interval.as_secs();
        if report.dropped + report.truncated > 0 {
            warn!(
                dropped = report.dropped,
                truncated = report.truncated,
                seconds,
                example = %report.example,
                "UDP responses over the rate limit"
            );
        }
        if report.dry_run > 0 {
            info!(
                over_limit = report.dry_run,
                seconds,
                example = %report.example,
                "UDP responses over the rate limit, sent anyway (rate_limit.dry_run)"
            );
        }
    }
}

/// What the rate limiter did between two readings of its counters.
#[derive(Debug, PartialEq, Eq)]
struct RateLimitReport {
    dropped: u64,
    truncated: u64,
    dry_run: u64,
    /// A client network held to the limit lately, as charged.
    example: String,
}

impl RateLimitReport {
    fn between(
        before: [u64; 4],
        now: [u64; 4],
        last: Option<std::net::IpAddr>,
        limits: Option<&crate::config::RateLimitConfig>,
    ) -> RateLimitReport {
        use crate::dns::OverLimit;
        let change =
            |action: OverLimit| now[action as usize].saturating_sub(before[action as usize]);
        RateLimitReport {
            dropped: change(OverLimit::Dropped),
            truncated: change(OverLimit::Slipped),
            dry_run: change(OverLimit::DryRun),
            example: match (last, limits) {
                (Some(client), Some(limits)) => crate::dns::rate_limit::network_of(client, limits),
                (Some(client), None) => client.to_string(),
                (None, _) => "unknown".to_owned(),
            },
        }
    }
}

/// What identifies one version of a file: replacing it (a rename over it,
/// or a rewrite) changes at least one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    length: u64,
    inode: u64,
}

/// The GeoIP files the config on disk names, with their stamps. None when
/// the config cannot be read (a reload would say why; the watcher waits).
fn database_stamps(config_path: &Path) -> Option<Vec<(PathBuf, Option<FileStamp>)>> {
    use std::os::unix::fs::MetadataExt;
    let config = crate::config::load(config_path).ok()?;
    let geoip = config.steering.geoip?;
    let paths = geoip.databases.iter().chain(geoip.asn_database.iter());
    Some(
        paths
            .map(|path| {
                let stamp = std::fs::metadata(path).ok().map(|metadata| FileStamp {
                    modified: metadata.modified().ok(),
                    length: metadata.len(),
                    inode: metadata.ino(),
                });
                (path.clone(), stamp)
            })
            .collect(),
    )
}

/// Reloads when a GeoIP database file is replaced, so that a cron job that
/// drops in this week's database needs no SIGHUP. A change is acted on
/// once it has held for one more poll, so a file still being copied is not
/// read half-written.
async fn watch_databases(control: Arc<Control>, config_path: PathBuf, poll: Duration) {
    let stamps = |path: PathBuf| async move {
        tokio::task::spawn_blocking(move || database_stamps(&path))
            .await
            .ok()
            .flatten()
    };
    let mut settled = stamps(config_path.clone()).await;
    let mut changed: Option<Vec<(PathBuf, Option<FileStamp>)>> = None;
    loop {
        tokio::time::sleep(poll).await;
        let Some(current) = stamps(config_path.clone()).await else {
            continue;
        };
        if settled.as_ref() == Some(&current) {
            changed = None;
            continue;
        }
        if changed.as_ref() != Some(&current) {
            // First sight of this version: give a copy in progress one poll.
            changed = Some(current);
            continue;
        }
        info!("a GeoIP database file was replaced: reloading");
        // The reload logs and counts its own outcome; a failure keeps the
        // old table, and the next replacement is tried again.
        let _ = control.reload().await;
        settled = Some(current);
        changed = None;
    }
}

/// Warns when `what` serves plain HTTP beyond loopback: its bearer token
/// and everything it answers cross the network in clear.
fn warn_if_clear(what: &str, address: SocketAddr, tls: bool, section: &str) {
    if !tls && !address.ip().to_canonical().is_loopback() {
        warn!(
            %address,
            "{what} serves plain HTTP beyond loopback: its token and answers cross the network \
             in clear; set {section}.tls_certificate and {section}.tls_key"
        );
    }
}

/// Builds the first table from `config_path` and starts every listener.
///
/// Must run inside a tokio runtime (TCP and the admin API run on it).
pub async fn start(config_path: &Path) -> Result<RunningServer, StartError> {
    let path = config_path.to_path_buf();
    let built = tokio::task::spawn_blocking(move || {
        // Drains and overrides from before a restart are in force from the
        // first answer on; the state file sits where the config says.
        let config = crate::config::load(&path)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        // Made here, not by `steer check`, which changes nothing.
        if let Some(directory) = &config.server.state_directory {
            std::fs::create_dir_all(directory).map_err(|error| {
                vec![format!(
                    "{}: server.state_directory: cannot create {}: {error}",
                    path.display(),
                    directory.display()
                )]
            })?;
        }
        let admin = state_file::load(&config.admin.state_file).map_err(|error| vec![error])?;
        // With the signatures kept at the last stop: only what changed is
        // signed.
        control::build(&path, 1, &admin).map(|built| (built, admin))
    })
    .await
    .map_err(|join_error| {
        StartError::Invalid(vec![format!(
            "building the first table failed: {join_error}"
        )])
    })?
    .map_err(StartError::Invalid)?;
    let (built, admin) = built;
    control::release_freed_memory();
    info!(
        generation = built.table.generation(),
        zones = built.zones,
        records = built.records,
        seconds = built.compile_duration.as_secs_f64(),
        "compiled the first table"
    );
    for warning in &built.warnings {
        warn!("{warning}");
    }
    let config = built.config.clone();
    if !admin.drained.is_empty() || !admin.forced.is_empty() {
        info!(
            drained = ?admin.drained,
            forced = ?admin.forced,
            file = %config.admin.state_file.display(),
            "restored drains and overrides"
        );
    }
    let signed = built.table.has_signed_zones();
    let control = Arc::new(Control::new(config_path, built).with_admin_state(admin));
    if signed {
        // Kept now, not only at a stop: a start after a crash then reuses
        // them too.
        let control = Arc::clone(&control);
        tokio::spawn(async move { control.save_signatures().await });
    }
    // Measurements from before a restart steer from the first answer on.
    control.restore_latency_state().await;
    // Cold start: the first probe round is in the table before the first
    // query is answered, so a target dead at start is never served.
    for problem in control.start_probes().await {
        warn!("{problem}; it is not probed");
    }
    // Likewise alias pools answer with their targets' addresses from the
    // first query on.
    control.resolve_aliases_at_start().await;
    let metrics = Arc::new(Metrics::default());
    let (query_log, query_log_writer) = match &config.query_log {
        None => (None, None),
        Some(settings) => {
            match QueryLog::start(
                settings,
                &config.steering.health.node,
                Arc::clone(control.decisions()),
                Arc::clone(&metrics),
            ) {
                Ok((log, writer)) => (Some(log), Some(writer)),
                Err(error) => {
                    return Err(StartError::Invalid(vec![format!(
                        "{}: query_log.file: cannot open {}: {error}",
                        config_path.display(),
                        settings.output
                    )]));
                }
            }
        }
    };

    // The workers hold the query log's only senders from here on: when
    // they stop, the writer drains what is left and ends.
    let (udp, tcp, tls) = start_dns(&config, &control, query_log, &metrics).await?;
    let dns_udp = udp.local_addrs().to_vec();
    let dns_tcp = tcp.local_addrs().to_vec();
    let dns_tls = tls
        .as_ref()
        .map_or_else(Vec::new, |tls| tls.local_addrs().to_vec());
    let state = AdminState {
        control: Arc::clone(&control),
        metrics: Arc::clone(&metrics),
    };
    let peers_listen = config
        .steering
        .peers
        .as_ref()
        .and_then(|peers| peers.listen);
    let peers_tls = config
        .steering
        .peers
        .as_ref()
        .is_some_and(|peers| peers.tls.is_some());
    let peers_server = match peers_listen {
        None => None,
        Some(address) => {
            match AdminServer::start_for_peers(address, state.clone(), peers_tls).await {
                Ok(server) => Some(server),
                Err(source) => {
                    stop_dns(udp, tcp, tls).await;
                    return Err(StartError::Listen {
                        what: "the peers' listener",
                        addresses: address.to_string(),
                        source,
                    });
                }
            }
        }
    };
    let peers = peers_server.as_ref().map(AdminServer::local_addr);
    // Before the admin API answers: /status must show where DNS is served.
    control.set_listeners(Listeners {
        udp: dns_udp.clone(),
        tcp: dns_tcp.clone(),
        tls: dns_tls.clone(),
        peers,
    });
    let admin_tls = config.admin.tls.is_some();
    let admin_server = match AdminServer::start(config.admin.listen, state, admin_tls).await {
        Ok(admin_server) => admin_server,
        Err(source) => {
            if let Some(server) = peers_server {
                server.stop().await;
            }
            stop_dns(udp, tcp, tls).await;
            return Err(StartError::Listen {
                what: "the admin API",
                addresses: config.admin.listen.to_string(),
                source,
            });
        }
    };

    let admin = admin_server.local_addr();
    for address in &dns_udp {
        info!(transport = %"udp", address = %address, "listening");
    }
    for address in &dns_tcp {
        info!(transport = %"tcp", address = %address, "listening");
    }
    for address in &dns_tls {
        info!(transport = %"tls", address = %address, "listening");
    }
    info!(address = %admin, tls = admin_tls, "admin API listening");
    warn_if_clear("the admin API", admin, admin_tls, "admin");
    if let Some(address) = peers {
        info!(%address, tls = peers_tls, "peers' listener (health view, latency journal) listening");
        warn_if_clear("the peers' listener", address, peers_tls, "peers");
    }
    let database_watch = tokio::spawn(watch_databases(
        Arc::clone(&control),
        config_path.to_path_buf(),
        DATABASE_POLL,
    ));
    let latency_compiler = tokio::spawn(Arc::clone(&control).run_latency_compiler());
    let resigner = tokio::spawn(Arc::clone(&control).run_resigner());
    let alias_resolver = tokio::spawn(Arc::clone(&control).run_alias_resolver());
    let updates = tokio::spawn(Arc::clone(&control).run_updates());
    let secondaries = tokio::spawn(Arc::clone(&control).run_secondaries());
    let active_latency = tokio::spawn(crate::latency::active::run(Arc::clone(&control)));
    let latency_sharing = tokio::spawn(crate::latency::sharing::run(Arc::clone(&control)));
    let admin_sharing = tokio::spawn(Arc::clone(&control).run_admin_sharing());
    let rate_limit_log = tokio::spawn(log_rate_limiting(
        Arc::clone(&control),
        Arc::clone(&metrics),
        RATE_LIMIT_LOG_INTERVAL,
    ));
    Ok(RunningServer {
        dns_udp,
        dns_tcp,
        dns_tls,
        admin,
        control,
        udp,
        tcp,
        tls,
        admin_server,
        peers_server,
        peers,
        database_watch,
        latency_compiler,
        resigner,
        alias_resolver,
        updates,
        secondaries,
        active_latency,
        latency_sharing,
        admin_sharing,
        rate_limit_log,
        query_log_writer,
    })
}

impl RunningServer {
    /// Stops the admin API, writes the latency model to its state file,
    /// then stops TCP, then UDP, and waits for each.
    pub async fn shutdown(self) {
        self.database_watch.abort();
        self.latency_compiler.abort();
        self.resigner.abort();
        self.alias_resolver.abort();
        self.updates.abort();
        self.secondaries.abort();
        self.control.stop_secondaries();
        self.active_latency.abort();
        self.latency_sharing.abort();
        self.admin_sharing.abort();
        self.rate_limit_log.abort();
        self.admin_server.stop().await;
        if let Some(server) = self.peers_server {
            server.stop().await;
        }
        // After the admin API: no sample arrives once the model is written.
        // A failure is logged by the save itself; stopping goes on.
        let _ = self.control.save_latency_state().await;
        self.control.save_signatures().await;
        stop_dns(self.udp, self.tcp, self.tls).await;
        if let Some(writer) = self.query_log_writer {
            // The workers are gone, so are the log's senders: it ends once
            // what they logged last is written.
            let _ = tokio::task::spawn_blocking(move || writer.finish()).await;
        }
        info!("stopped");
    }
}

/// Opens UDP, then TCP on the ports UDP got.
async fn start_dns(
    config: &Config,
    control: &Arc<Control>,
    query_log: Option<QueryLog>,
    metrics: &Metrics,
) -> Result<(UdpService, TcpService, Option<TcpService>), StartError> {
    let listen = &config.server.listen;
    let limits = TcpLimits {
        max_connections: config.server.tcp_max_connections,
        max_connections_per_client: config.server.tcp_max_connections_per_client,
        idle_timeout: config.server.tcp_idle_timeout,
        ..TcpLimits::default()
    };
    let any_port_chosen_by_kernel = listen.iter().any(|address| address.port() == 0);
    // Made once, for the life of the process: reloads change the limits,
    // not the buckets (so a flood gets no fresh allowance from a reload).
    let buckets = Arc::new(Buckets::new(config.rate_limit_table_size()));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpService::start(
            listen,
            config.server.workers,
            control.table(),
            Arc::clone(&buckets),
            query_log.clone(),
            metrics,
            Some(control.update_queue()),
        )
        .map_err(|source| StartError::Listen {
            what: "DNS over UDP",
            addresses: join(listen),
            source,
        })?;
        let tcp_addresses = udp.local_addrs().to_vec();
        let started = TcpService::start(
            &tcp_addresses,
            None,
            limits.clone(),
            control.table(),
            query_log.clone(),
            metrics,
            Some(control.update_queue()),
        )
        .await;
        match started {
            Ok(tcp) => {
                let tls =
                    match start_tls(config, control, &limits, query_log.clone(), metrics).await {
                        Ok(tls) => tls,
                        Err(error) => {
                            stop_dns(udp, tcp, None).await;
                            return Err(error);
                        }
                    };
                return Ok((udp, tcp, tls));
            }
            Err(source) => {
                stop_udp(udp).await;
                let retry = source.kind() == io::ErrorKind::AddrInUse
                    && any_port_chosen_by_kernel
                    && attempt < PAIR_BIND_ATTEMPTS;
                if !retry {
                    return Err(StartError::Listen {
                        what: "DNS over TCP",
                        addresses: join(&tcp_addresses),
                        source,
                    });
                }
                warn!(
                    addresses = %join(&tcp_addresses),
                    attempt,
                    "the port UDP was given is taken for TCP; binding both again"
                );
            }
        }
    }
}

/// Opens the DNS over TLS listeners, when `server.tls_listen` has any.
async fn start_tls(
    config: &Config,
    control: &Arc<Control>,
    limits: &TcpLimits,
    query_log: Option<QueryLog>,
    metrics: &Metrics,
) -> Result<Option<TcpService>, StartError> {
    let addresses = &config.server.tls_listen;
    if addresses.is_empty() {
        return Ok(None);
    }
    let failed = |source| StartError::Listen {
        what: "DNS over TLS",
        addresses: join(addresses),
        source,
    };
    // RFC 7858 §3.2's ALPN identifier; a client that sends none is served.
    let acceptor = crate::admin::tls::acceptor(
        crate::admin::tls::Listener::Dns,
        Arc::clone(control),
        &[b"dot"],
    )
    .map_err(failed)?;
    TcpService::start(
        addresses,
        Some(acceptor),
        limits.clone(),
        control.table(),
        query_log,
        metrics,
        Some(control.update_queue()),
    )
    .await
    .map(Some)
    .map_err(failed)
}

async fn stop_dns(udp: UdpService, tcp: TcpService, tls: Option<TcpService>) {
    if let Some(tls) = tls {
        tls.stop().await;
    }
    tcp.stop().await;
    stop_udp(udp).await;
}

/// Joining worker threads blocks; keep it off the async threads.
async fn stop_udp(udp: UdpService) {
    if let Err(join_error) = tokio::task::spawn_blocking(move || udp.stop()).await {
        warn!(error = %join_error, "stopping the UDP workers failed");
    }
}

fn join(addresses: &[SocketAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_report_counts_the_interval_and_names_a_network() {
        let limits = crate::config::parse(
            Path::new("steer.toml"),
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[rate_limit]\nresponses_per_second = 5\n\
             ipv4_prefix = 16\n",
        )
        .expect("valid")
        .rate_limit
        .expect("configured");
        let client = "198.51.100.77".parse().ok();
        let report = RateLimitReport::between([10, 4, 1, 0], [25, 9, 3, 2], client, Some(&limits));
        assert_eq!(
            report,
            RateLimitReport {
                dropped: 15,
                truncated: 5,
                dry_run: 2,
                example: "198.51.0.0/16".to_owned(),
            }
        );
        // Limits reloaded away since: the address as it was.
        let report = RateLimitReport::between([0; 4], [0; 4], client, None);
        assert_eq!(
            (report.dropped, report.example.as_str()),
            (0, "198.51.100.77")
        );
    }
}
