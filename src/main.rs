//! The `steer` command: `serve`, `check`, `explain`, the admin API clients
//! (`reload`, `status`, `drain`, `undrain`) and `geoip build`.
//!
//! Wiring only: every decision lives in the library. `check`, `explain` and
//! `serve` run the same [`steer::control::build`], so a file that passes
//! `check` is one that `serve` and a reload accept, and `explain` describes
//! the table `serve` would answer from. Exit status is 0 on success and 1 on any
//! failure, with every error printed one per line on stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use reqwest::Method;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

use steer::control::{self, Control};
use steer::server;

/// How long the admin client commands wait for the server: a reload of
/// large zones takes a while (the server finishes it even if we give up),
/// and a drain waits for a reload in progress.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(
    name = "steer",
    version,
    about = "Authoritative DNS server with traffic steering"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS and the admin API in the foreground. SIGHUP reloads;
    /// SIGTERM or SIGINT stops.
    Serve {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = "steer.toml")]
        config: PathBuf,
        /// How log lines are written to stderr: `text` for people, `json`
        /// (one object per line) for log collectors.
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        log_format: LogFormat,
    },
    /// Load, validate and compile the configuration and zones without
    /// serving; prints every error.
    Check {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = "steer.toml")]
        config: PathBuf,
    },
    /// Explain how a name and type are answered for a client: its network,
    /// location, each policy step and the answer. Builds the table like
    /// `check`; serves nothing. `GET /explain` on the admin API does the
    /// same with the live health and drains.
    Explain {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = "steer.toml")]
        config: PathBuf,
        /// The name, e.g. `www.example.test` (absolute either way).
        #[arg(value_name = "NAME")]
        name: String,
        /// The record type, e.g. `A`, `AAAA`, `MX`, `TYPE65`.
        #[arg(value_name = "TYPE")]
        record_type: String,
        /// The client: `ADDR/LEN` as an EDNS Client Subnet (truncated to the
        /// `[ecs]` maximum), or a bare `ADDR` as a query's source address.
        #[arg(long, value_name = "ADDR[/LEN]")]
        client: String,
        /// Print JSON (the same as `GET /explain`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running server to reload, through its admin API.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a running server's table, zones and endpoints (`GET /status`).
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the admin API's JSON as it came instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Take a pool out of every steered answer at once, through the admin
    /// API; it stays out across reloads until `undrain`.
    Drain {
        /// The pool id, as in `[pools.ID]`.
        #[arg(value_name = "POOL")]
        pool: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Put a drained pool back into the answers, through the admin API.
    Undrain {
        /// The pool id, as in `[pools.ID]`.
        #[arg(value_name = "POOL")]
        pool: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Check a secondary zone's serial at its primaries now and transfer
    /// it when newer, through the admin API (what a NOTIFY does).
    Refresh {
        /// The zone, e.g. `example.org`.
        #[arg(value_name = "ZONE")]
        zone: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
}

/// How a client command finds the admin API and its token.
#[derive(clap::Args)]
struct AdminArgs {
    /// Find the admin API from this configuration: the address from
    /// `[admin] listen`, the token from `[admin] token_file` [default:
    /// steer.toml].
    #[arg(long, value_name = "FILE", conflicts_with = "admin")]
    config: Option<PathBuf>,
    /// The admin API address, e.g. `127.0.0.1:8053`, or its URL,
    /// `https://admin.example.net:8053` for one that serves TLS, instead of
    /// a configuration.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Trust only the CA certificates in this PEM file for an `https`
    /// admin API (default: the system's, or with a configuration whose
    /// `[admin]` has `tls_certificate`, that very certificate).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Read the bearer token from the first line of this file instead of
    /// the configuration's `[admin] token_file`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum GeoipCommand {
    /// Build a MaxMind DB (.mmdb) in MaxMind's City schema from a CSV of
    /// `network,country,continent,subdivision,latitude,longitude,asn`.
    /// The build time is now, or `SOURCE_DATE_EPOCH` when set.
    Build {
        /// The CSV, with that header line.
        #[arg(long, value_name = "FILE.csv")]
        source: PathBuf,
        /// The database to write (replaced atomically).
        #[arg(long, value_name = "FILE.mmdb")]
        out: PathBuf,
        /// The metadata `database_type`.
        #[arg(long, value_name = "NAME", default_value = "Steer-City")]
        database_type: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Explain {
            config,
            name,
            record_type,
            client,
            json,
        } => explain(&config, &name, &record_type, &client, json),
        Command::Serve { config, log_format } => with_runtime(serve(config, log_format)),
        Command::Reload { admin } => with_runtime(reload(admin)),
        Command::Status { admin, json } => with_runtime(status(admin, json)),
        Command::Drain { pool, admin } => with_runtime(set_drained(admin, pool, true)),
        Command::Undrain { pool, admin } => with_runtime(set_drained(admin, pool, false)),
        Command::Refresh { zone, admin } => with_runtime(refresh(admin, zone)),
        Command::Geoip {
            command:
                GeoipCommand::Build {
                    source,
                    out,
                    database_type,
                },
        } => geoip_build(&source, &out, &database_type),
    }
}

fn geoip_build(source: &Path, out: &Path, database_type: &str) -> ExitCode {
    // SOURCE_DATE_EPOCH (reproducible-builds.org) makes the file a function
    // of the CSV alone.
    let build_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => match text.trim().parse() {
            Ok(epoch) => epoch,
            Err(_) => {
                eprintln!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
    };
    match steer::geo::build::build(source, out, database_type, build_epoch) {
        Ok(summary) => {
            println!(
                "ok: {}: {} IPv4 and {} IPv6 networks, {} bytes",
                out.display(),
                summary.ipv4_networks,
                summary.ipv6_networks,
                summary.bytes
            );
            ExitCode::SUCCESS
        }
        Err(errors) => fail(&errors),
    }
}

/// Runs `task` on a small multi-thread runtime: TCP and the admin API are
/// light, and UDP has its own threads.
fn with_runtime(task: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(task),
        Err(runtime_error) => {
            eprintln!("cannot start the async runtime: {runtime_error}");
            ExitCode::FAILURE
        }
    }
}

fn check(config_path: &Path) -> ExitCode {
    match control::build(config_path, 1, &steer::health::AdminState::default()) {
        Ok(built) => {
            // Warnings go to stderr, like errors; the exit code stays 0.
            for warning in &built.warnings {
                eprintln!("warning: {warning}");
            }
            let signed = built
                .table
                .zones()
                .iter()
                .filter(|zone| zone.dnssec.is_some())
                .count();
            let zones = match signed {
                0 => count(built.zones as u64, "zone"),
                _ => format!("{} ({signed} signed)", count(built.zones as u64, "zone")),
            };
            println!(
                "ok: {zones}, {}, compiled in {:.1} ms",
                count(built.records as u64, "record"),
                built.compile_duration.as_secs_f64() * 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(errors) => fail(&errors),
    }
}

fn explain(
    config_path: &Path,
    name: &str,
    record_type: &str,
    client: &str,
    json: bool,
) -> ExitCode {
    let mut built = match control::build(config_path, 1, &steer::health::AdminState::default()) {
        Ok(built) => built,
        Err(errors) => return fail(&errors),
    };
    // Alias pools answer what their targets resolve to now, as a server
    // would after its first resolution.
    let targets = built.config.steering.alias_targets();
    if !targets.is_empty() {
        let aliases = steer::alias::Aliases::default();
        aliases.track(&targets, std::time::Instant::now());
        let resolver = built.config.steering.resolver.clone();
        let resolved = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|runtime| {
                runtime.block_on(steer::alias::resolve_all(&aliases, &targets, &resolver));
            });
        if let Err(error) = resolved {
            eprintln!("cannot resolve alias targets: {error}");
        }
        for target in aliases.status(std::time::Instant::now()) {
            if let Some(error) = target.last_error {
                eprintln!(
                    "alias target {} is not resolved; its pool is empty: {error}",
                    target.target
                );
            }
        }
        match control::with_alias_addresses(&built, &aliases.snapshot().0) {
            Some(Ok(table)) => built.table = table,
            Some(Err(errors)) => return fail(&errors),
            None => {}
        }
    }
    let serving = control::Serving {
        table: Arc::new(built.table),
        geo: built.geo,
        steering: Arc::new(built.config.steering),
        admin: steer::health::AdminState::default(),
        // No server, so no measurements: the matrix alone.
        latency: None,
        inputs: built.inputs,
    };
    let explanation = match steer::explain::explain(&serving, name, record_type, client) {
        Ok(explanation) => explanation,
        Err(explain_error) => {
            eprintln!("{explain_error}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&explanation) {
            Ok(text) => println!("{text}"),
            Err(json_error) => {
                eprintln!("cannot write the explanation as JSON: {json_error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", explanation.to_text());
    }
    ExitCode::SUCCESS
}

/// `serve --log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target` and the
    /// event's `fields` (its `message` among them).
    Json,
}

async fn serve(config_path: PathBuf, log_format: LogFormat) -> ExitCode {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }

    // Handlers go in before anything listens: a SIGHUP that arrives as soon
    // as the listeners are announced must reload, not kill the process.
    let signals = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    let (mut hangup, mut terminate, mut interrupt) = match signals {
        (Ok(hangup), Ok(terminate), Ok(interrupt)) => (hangup, terminate, interrupt),
        (Err(signal_error), _, _) | (_, Err(signal_error), _) | (_, _, Err(signal_error)) => {
            eprintln!("cannot install signal handlers: {signal_error}");
            return ExitCode::FAILURE;
        }
    };

    let running = match server::start(&config_path).await {
        Ok(running) => running,
        // Printed rather than logged: one line per error, like `check`.
        Err(start_error) => return fail(&start_error.lines()),
    };
    // Under systemd (Type=notify) the unit is up once DNS is answered.
    steer::systemd::notify("READY=1");

    loop {
        tokio::select! {
            _ = hangup.recv() => {
                info!("SIGHUP: reloading");
                spawn_reload(&running.control);
            }
            _ = terminate.recv() => {
                info!("SIGTERM: shutting down");
                break;
            }
            _ = interrupt.recv() => {
                info!("SIGINT: shutting down");
                break;
            }
        }
    }
    steer::systemd::notify("STOPPING=1");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Reloads in the background so that signals keep being handled; the
/// outcome is logged by [`Control::reload`].
fn spawn_reload(control: &Arc<Control>) {
    let control = Arc::clone(control);
    tokio::spawn(async move {
        let _ = control.reload().await;
    });
}

async fn reload(arguments: AdminArgs) -> ExitCode {
    let reply = match AdminClient::request(arguments, Method::POST, "/reload").await {
        Ok(reply) => reply,
        Err(lines) => return fail(&lines),
    };
    let generation = reply.json["generation"].as_u64().unwrap_or_default();
    if reply.succeeded() {
        println!(
            "ok: generation {generation}, {}, {}, compiled in {:.1} ms",
            count(reply.json["zones"].as_u64().unwrap_or_default(), "zone"),
            count(reply.json["records"].as_u64().unwrap_or_default(), "record"),
            reply.json["seconds"].as_f64().unwrap_or_default() * 1000.0
        );
        for warning in reply.json["warnings"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", warning.as_str().unwrap_or_default());
        }
        return ExitCode::SUCCESS;
    }
    match reply.json["errors"].as_array() {
        Some(errors) => {
            eprintln!("reload failed; still serving generation {generation}:");
            for line in errors {
                eprintln!("{}", line.as_str().unwrap_or_default());
            }
        }
        None => eprintln!("{}", reply.failure()),
    }
    ExitCode::FAILURE
}

async fn status(arguments: AdminArgs, json: bool) -> ExitCode {
    let reply = match AdminClient::request(arguments, Method::GET, "/status").await {
        Ok(reply) => reply,
        Err(lines) => return fail(&lines),
    };
    if !reply.status.is_success() {
        return fail(&[reply.failure()]);
    }
    if json {
        println!("{}", reply.body.trim_end());
    } else {
        print!(
            "{}",
            status_text(
                &reply.json,
                steer::unix_seconds(std::time::SystemTime::now())
            )
        );
    }
    ExitCode::SUCCESS
}

async fn set_drained(arguments: AdminArgs, pool: String, drained: bool) -> ExitCode {
    let action = if drained { "drain" } else { "undrain" };
    // A pool id is a path segment: escape what would change the path.
    let path = format!("/pools/{}/{action}", percent_encode(&pool));
    post(arguments, &path, &format!("{action}ed {pool}")).await
}

async fn refresh(arguments: AdminArgs, zone: String) -> ExitCode {
    let path = format!("/secondary/{}/refresh", percent_encode(&zone));
    let done = format!("refreshing {zone}: its primaries are asked now (see steer status)");
    post(arguments, &path, &done).await
}

/// POSTs to `path` of the admin API; says `done` when it succeeded.
async fn post(arguments: AdminArgs, path: &str, done: &str) -> ExitCode {
    let reply = match AdminClient::request(arguments, Method::POST, path).await {
        Ok(reply) => reply,
        Err(lines) => return fail(&lines),
    };
    if !reply.succeeded() {
        return fail(&[reply.failure()]);
    }
    println!("{done}");
    ExitCode::SUCCESS
}

/// Prints every line on stderr; the exit status of a failed command.
fn fail(lines: &[impl std::fmt::Display]) -> ExitCode {
    for line in lines {
        eprintln!("{line}");
    }
    ExitCode::FAILURE
}

/// A running server's admin API, as the client commands reach it.
struct AdminClient {
    /// `http://ADDR`, without a trailing slash.
    base: String,
    /// The bearer token to send, when one is configured.
    token: Option<ClientToken>,
    http: reqwest::Client,
}

/// A bearer token and where it was read, so that a refusal can say which
/// file to look at.
struct ClientToken {
    secret: String,
    /// `old.token`, or `the [admin] token_file of steer.toml`.
    source: String,
}

/// One answer of the admin API; every route answers JSON.
struct AdminReply {
    /// What was asked, for messages.
    url: String,
    status: reqwest::StatusCode,
    /// The body as it came, for `status --json`.
    body: String,
    json: serde_json::Value,
}

impl AdminReply {
    /// 2xx with `"ok": true`, or with no `ok` at all (`/status`).
    fn succeeded(&self) -> bool {
        self.status.is_success() && self.json["ok"] != false
    }

    /// The API's own `error` message, or the whole answer when it has none.
    fn failure(&self) -> String {
        match self.json["error"].as_str() {
            Some(error) => error.to_owned(),
            None => format!(
                "{}: unexpected response {}: {}",
                self.url,
                self.status,
                self.body.trim()
            ),
        }
    }
}

impl AdminClient {
    /// Finds the API and its token from `arguments` and sends one request.
    /// Everything that is not an answer from the routes (a bad
    /// configuration, an unreachable server, a refused token, a body that
    /// is not JSON) comes back as the lines to print.
    async fn request(
        arguments: AdminArgs,
        method: Method,
        path: &str,
    ) -> Result<AdminReply, Vec<String>> {
        let client = Self::new(arguments)?;
        client.send(method, path).await.map_err(|line| vec![line])
    }

    fn new(arguments: AdminArgs) -> Result<Self, Vec<String>> {
        let AdminArgs {
            config,
            admin,
            ca_file,
            token_file,
        } = arguments;
        let (base, config_token, pinned) = match admin {
            Some(address) if address.contains("://") => {
                (address.trim_end_matches('/').to_string(), None, None)
            }
            Some(address) => (format!("http://{address}"), None, None),
            None => {
                let config_path = config.unwrap_or_else(|| PathBuf::from("steer.toml"));
                let found = admin_from_config(&config_path)?;
                let token = found.token.map(|secret| ClientToken {
                    secret,
                    source: format!("the [admin] token_file of {}", config_path.display()),
                });
                let scheme = if found.certificate.is_some() {
                    "https"
                } else {
                    "http"
                };
                (
                    format!("{scheme}://{}", found.address),
                    token,
                    found.certificate,
                )
            }
        };
        let token = match token_file {
            Some(path) => Some(ClientToken {
                secret: read_token_file(&path).map_err(|line| vec![line])?,
                source: path.display().to_string(),
            }),
            None => config_token,
        };
        // reqwest refuses to build a client, even for plain HTTP, until a
        // TLS provider is installed.
        steer::probe::check::install_crypto_provider();
        let mut builder = reqwest::Client::builder().no_proxy().timeout(ADMIN_TIMEOUT);
        if let Some(path) = ca_file {
            let certificates = std::fs::read(&path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))
                .and_then(|pem| {
                    steer::admin::tls::ca_certificates(&pem)
                        .map_err(|message| format!("{}: {message}", path.display()))
                })
                .map_err(|line| vec![line])?;
            builder = builder.tls_certs_only(certificates);
        } else if let Some((path, chain)) = pinned {
            let tls = steer::admin::tls::pinned_client(&chain)
                .map_err(|message| vec![format!("{}: {message}", path.display())])?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let http = builder.build().map_err(|client_error| {
            vec![format!(
                "cannot create an HTTP client: {}",
                steer::error_chain(&client_error)
            )]
        })?;
        Ok(Self { base, token, http })
    }

    async fn send(&self, method: Method, path: &str) -> Result<AdminReply, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(&token.secret);
        }
        let response = request.send().await.map_err(|request_error| {
            format!(
                "cannot reach the admin API at {url}: {}",
                steer::error_chain(&request_error)
            )
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|body_error| {
            format!(
                "{url}: cannot read the response: {}",
                steer::error_chain(&body_error)
            )
        })?;
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Err(format!(
                "{url}: unexpected response {status}: {}",
                body.trim()
            ));
        };
        let reply = AdminReply {
            url,
            status,
            body,
            json,
        };
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The API's message for a missing token speaks to curl users;
            // here the flags are the way to send one.
            return Err(match &self.token {
                Some(token) => format!(
                    "the admin API needs a token: {}; the token sent came from {}",
                    reply.failure(),
                    token.source
                ),
                None => "the admin API needs a token: none was sent; pass --token-file FILE, \
                         or --config FILE with the server's [admin] token_file"
                    .to_owned(),
            });
        }
        Ok(reply)
    }
}

/// The first line of `path`, as `[admin] token_file` is read; only checked
/// for what an HTTP header can carry, the server judges the rest.
fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|read_error| {
        format!(
            "cannot read the token file {}: {read_error}",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(format!(
            "{}: the first line must be the admin token, in visible ASCII characters",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

/// `%`-escapes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Where a client on this host finds the admin API, as its configuration
/// says.
struct FoundAdmin {
    /// The address to connect to.
    address: String,
    /// `[admin] token_file`'s token.
    token: Option<String>,
    /// `[admin] tls_certificate`'s file and PEM chain, when the API serves
    /// TLS.
    certificate: Option<(PathBuf, Vec<u8>)>,
}

/// The admin address a client on this host should connect to, the token
/// and the certificate the configuration gives.
fn admin_from_config(config_path: &Path) -> Result<FoundAdmin, Vec<String>> {
    let config = steer::config::load(config_path)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let mut address = config.admin.listen;
    if address.port() == 0 {
        return Err(vec![format!(
            "{}: admin.listen has port 0, so the running server's port is unknown; pass --admin ADDR",
            config_path.display()
        )]);
    }
    // A server listening on every address is reachable on loopback.
    if address.ip().is_unspecified() {
        let loopback = match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        address.set_ip(loopback);
    }
    Ok(FoundAdmin {
        address: address.to_string(),
        token: config.admin.token,
        certificate: config
            .admin
            .tls
            .map(|tls| (tls.certificate.clone(), tls.chain.clone())),
    })
}

/// `GET /status` as text for an operator; `now` (Unix seconds) turns the
/// timestamps into ages. Keys the server does not send are left out, so
/// the client works with servers older or newer than itself.
/// `listening on udp A, B; tcp A, B; tls C; peers D` from `/status`'s
/// `listen`, naming only what is open; `None` when nothing is.
fn listening(listen: &serde_json::Value) -> Option<String> {
    let mut parts = Vec::new();
    for transport in ["udp", "tcp", "tls"] {
        let addresses: Vec<&str> = listen[transport]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        if !addresses.is_empty() {
            parts.push(format!("{transport} {}", addresses.join(", ")));
        }
    }
    if let Some(peers) = listen["peers"].as_str() {
        parts.push(format!("peers {peers}"));
    }
    (!parts.is_empty()).then(|| format!("listening on {}", parts.join("; ")))
}

fn status_text(status: &serde_json::Value, now: f64) -> String {
    use std::fmt::Write;

    let mut text = String::new();
    let compile = &status["last_compile"];
    let _ = write!(
        text,
        "generation {}, compiled",
        status["generation"].as_u64().unwrap_or_default()
    );
    if let Some(at) = compile["at"].as_f64() {
        let _ = write!(text, " {} ago", age(now - at));
    }
    let _ = write!(
        text,
        " in {:.1} ms",
        compile["seconds"].as_f64().unwrap_or_default() * 1000.0
    );
    if let (Some(ok), Some(failed)) = (
        status["reloads"]["ok"].as_u64(),
        status["reloads"]["failed"].as_u64(),
    ) {
        let _ = write!(text, "; reloads: {ok} ok, {failed} failed");
    }
    text.push('\n');
    if let Some(listeners) = listening(&status["listen"]) {
        let _ = writeln!(text, "{listeners}");
    }

    let failure = &status["last_reload_error"];
    if let Some(at) = failure["at"].as_f64() {
        // The failure is kept after a later success; say which came last.
        let since_then = if compile["at"].as_f64().is_some_and(|compiled| compiled > at) {
            ", before this table"
        } else {
            "; still serving the table above"
        };
        let _ = writeln!(
            text,
            "last reload failed {} ago{since_then}:",
            age(now - at)
        );
        for line in failure["errors"].as_array().into_iter().flatten() {
            let _ = writeln!(text, "  {}", line.as_str().unwrap_or_default());
        }
    }

    let zones = status["zones"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let _ = writeln!(text, "{}", count(zones.len() as u64, "zone"));
    let rows: Vec<[String; 2]> = zones
        .iter()
        .map(|zone| {
            let mut details = format!(
                "serial {}, {}",
                zone["serial"].as_u64().unwrap_or_default(),
                count(zone["records"].as_u64().unwrap_or_default(), "record")
            );
            let dnssec = &zone["dnssec"];
            if let Some(expires) = dnssec["expires"].as_f64() {
                let _ = write!(
                    details,
                    "; signed: {}",
                    count(
                        dnssec["signatures"].as_u64().unwrap_or_default(),
                        "signature"
                    )
                );
                if let Some(reused) = dnssec["reused"].as_u64().filter(|reused| *reused > 0) {
                    let _ = write!(details, " ({reused} kept by the last reload)");
                }
                let _ = write!(details, ", expiring in {}", age(expires - now));
            }
            [
                zone["name"].as_str().unwrap_or_default().to_owned(),
                details,
            ]
        })
        .collect();
    write_rows(&mut text, &rows);
    secondary_text(&mut text, status, now);
    notify_out_text(&mut text, status, now);
    alias_text(&mut text, status, now);
    update_text(&mut text, status);

    let endpoints = status["endpoints"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let _ = writeln!(text, "{}", count(endpoints.len() as u64, "endpoint"));
    let rows: Vec<[String; 4]> = endpoints
        .iter()
        .map(|endpoint| {
            [
                endpoint["pool"].as_str().unwrap_or_default().to_owned(),
                endpoint["address"].as_str().unwrap_or_default().to_owned(),
                if endpoint["up"] == true { "up" } else { "down" }.to_owned(),
                endpoint_details(endpoint, now),
            ]
        })
        .collect();
    write_rows(&mut text, &rows);

    let limits = &status["rate_limit"];
    if limits.is_object() {
        let number = |key: &str| limits[key].as_u64().unwrap_or_default();
        let _ = write!(
            text,
            "UDP rate limits: {}/s answers, {}/s errors per /{} and /{}, slip {}, window {}s",
            number("responses_per_second"),
            number("errors_per_second"),
            number("ipv4_prefix"),
            number("ipv6_prefix"),
            number("slip"),
            number("window_seconds"),
        );
        let exempt = limits["exempt"].as_array().map_or(0, Vec::len);
        if exempt > 0 {
            let _ = write!(text, ", {} exempt", count(exempt as u64, "network"));
        }
        if limits["dry_run"] == true {
            text.push_str(" (dry run: counted, not enforced)");
        }
        text.push('\n');
    }
    let log = &status["query_log"];
    if let (Some(file), Some(sample)) = (log["file"].as_str(), log["sample"].as_u64()) {
        let _ = writeln!(text, "query log: {file}, one query in {sample}");
    }
    peers_text(&mut text, status, now);
    text
}

/// The `[peers]` lines of [`status_text`]: each peer, whether its
/// view votes, and why not, and how many latency samples were read from it.
fn peers_text(text: &mut String, status: &serde_json::Value, now: f64) {
    use std::fmt::Write;

    let health = &status["health"];
    let feeds = status["latency"]["peers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let peers = health["peers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if peers.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "health shared with {} (quorum {}), this node {}",
        count(peers.len() as u64, "peer"),
        health["quorum"].as_str().unwrap_or("?"),
        health["node"].as_str().unwrap_or("?"),
    );
    let rows: Vec<[String; 3]> = peers
        .iter()
        .map(|peer| {
            let fetched = peer["last_fetch"]
                .as_f64()
                .map(|at| format!("fetched {} ago", age(now - at)));
            let mut state = match (peer["fresh"] == true, peer["last_error"].as_str()) {
                _ if peer["ignored"].is_string() => {
                    format!("ignored: {}", peer["ignored"].as_str().unwrap_or_default())
                }
                (true, _) => format!("votes, {}", fetched.unwrap_or_default()),
                (false, Some(error)) => format!("stale: {error}"),
                (false, None) => {
                    fetched.map_or_else(|| "stale".to_owned(), |at| format!("stale, {at}"))
                }
            };
            let feed = feeds.iter().find(|feed| feed["url"] == peer["url"]);
            if let Some(read) = feed.and_then(|feed| feed["accepted"].as_u64())
                && peer["ignored"].is_null()
            {
                let missed = feed.and_then(|feed| feed["missed"].as_u64()).unwrap_or(0);
                let _ = write!(state, "; {read} latency samples read");
                if missed > 0 {
                    let _ = write!(state, ", {missed} missed");
                }
            }
            [
                peer["url"].as_str().unwrap_or_default().to_owned(),
                peer["node"].as_str().unwrap_or("?").to_owned(),
                state,
            ]
        })
        .collect();
    write_rows(text, &rows);
}

/// Why an endpoint is up or down, from whichever keys the server sends:
/// `drained`, `forced`, and the health keys `observed`, `admin`, `since`,
/// `probe`, `target`, `last_probe` and `last_error`.
fn endpoint_details(endpoint: &serde_json::Value, now: f64) -> String {
    let mut details = Vec::new();
    if endpoint["drained"] == true {
        details.push("drained".to_owned());
    }
    if let Some(forced) = endpoint["forced"].as_str() {
        details.push(format!("forced {forced}"));
    }
    // `admin` repeats `drained` and `forced` in one word; show it only when
    // they did not already say it.
    if let Some(admin) = endpoint["admin"].as_str()
        && admin != "auto"
        && details.is_empty()
    {
        details.push(format!("admin {}", admin.replace('_', " ")));
    }
    let observed = endpoint["observed"].as_str();
    let since = endpoint["since"].as_f64().map(|since| age(now - since));
    match (observed, since) {
        (Some(observed), Some(since)) => details.push(format!("observed {observed} for {since}")),
        (Some(observed), None) => details.push(format!("observed {observed}")),
        (None, Some(since)) => details.push(format!("changed {since} ago")),
        (None, None) => {}
    }
    // With peers, answers follow the vote, which may overrule this node.
    if let (Some(down), Some(up)) = (
        endpoint["votes"]["down"].as_u64(),
        endpoint["votes"]["up"].as_u64(),
    ) {
        details.push(format!(
            "{down} of {} vantage points see it down",
            down + up
        ));
    }
    match (endpoint["probe"].as_str(), endpoint["target"].as_str()) {
        (Some(probe), Some(target)) => details.push(format!("probe {probe} to {target}")),
        (Some(probe), None) => details.push(format!("probe {probe}")),
        (None, Some(target)) => details.push(format!("probe target {target}")),
        (None, None) => {}
    }
    let last = &endpoint["last_probe"];
    // A failed last probe already shows its reason; after a recovery the
    // reason of the earlier failure is still worth a look.
    if last["ok"] != false
        && let Some(error) = endpoint["last_error"]
            .as_str()
            .filter(|error| !error.is_empty())
    {
        details.push(format!("earlier failure: {error}"));
    }
    if last.is_object() {
        let mut line = if last["ok"] == true {
            "last probe ok".to_owned()
        } else {
            "last probe failed".to_owned()
        };
        if let Some(latency) = last["latency_ms"].as_f64() {
            line.push_str(&format!(" in {latency:.1} ms"));
        }
        if let Some(at) = last["at"].as_f64() {
            line.push_str(&format!(" {} ago", age(now - at)));
        }
        if let Some(detail) = last["detail"].as_str().filter(|detail| !detail.is_empty()) {
            line.push_str(&format!(" ({detail})"));
        }
        details.push(line);
    }
    details.join(", ")
}

/// Indented rows with every column but the last padded to its widest cell.
fn write_rows<const COLUMNS: usize>(text: &mut String, rows: &[[String; COLUMNS]]) {
    let mut widths = [0; COLUMNS];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from(" ");
        for (column, cell) in row.iter().enumerate() {
            line.push(' ');
            if column + 1 == COLUMNS {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$} ", width = widths[column]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
}

/// `45s`, `3m 12s`, `2h 5m`, `4d 1h`: how long ago, to the precision an
/// operator reads. A clock behind the server's reads as `0s`.
/// The secondary zones of `/status`, when there are any: state, serial,
/// last check and the last error.
fn secondary_text(text: &mut String, status: &serde_json::Value, now: f64) {
    use std::fmt::Write;
    let zones = status["secondary"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if zones.is_empty() {
        return;
    }
    let _ = writeln!(text, "{}", count(zones.len() as u64, "secondary zone"));
    let rows: Vec<[String; 3]> = zones
        .iter()
        .map(|zone| {
            let mut details = match zone["serial"].as_u64() {
                Some(serial) => format!("serial {serial}"),
                None => "no copy".to_owned(),
            };
            if let Some(checked) = zone["last_check"].as_f64() {
                let _ = write!(details, ", checked {} ago", age(now - checked));
            }
            if let (Some(at), Some(kind)) = (
                zone["last_transfer"].as_f64(),
                zone["last_transfer_type"].as_str(),
            ) {
                let _ = write!(details, ", transferred by {kind} {} ago", age(now - at));
            }
            if let Some(error) = zone["last_error"].as_str() {
                let _ = write!(details, "; {error}");
            }
            [
                zone["zone"].as_str().unwrap_or_default().to_owned(),
                zone["state"].as_str().unwrap_or_default().to_owned(),
                details,
            ]
        })
        .collect();
    write_rows(text, &rows);
}

/// Dynamic updates answered since start, when there were any: per zone,
/// how many of each response code.
fn update_text(text: &mut String, status: &serde_json::Value) {
    use std::fmt::Write;
    let counts = status["updates"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if counts.is_empty() {
        return;
    }
    let _ = writeln!(text, "dynamic updates since start");
    let mut zones: Vec<(String, Vec<String>)> = Vec::new();
    for count in counts {
        let zone = match count["zone"].as_str() {
            Some("") | None => "(not served here)".to_owned(),
            Some(zone) => zone.to_owned(),
        };
        let entry = format!(
            "{} {}",
            count["count"].as_u64().unwrap_or(0),
            count["rcode"].as_str().unwrap_or_default()
        );
        match zones.iter_mut().find(|(known, _)| *known == zone) {
            Some((_, entries)) => entries.push(entry),
            None => zones.push((zone, vec![entry])),
        }
    }
    let rows: Vec<[String; 2]> = zones
        .into_iter()
        .map(|(zone, entries)| [zone, entries.join(", ")])
        .collect();
    write_rows(text, &rows);
}

/// Alias pools' targets, when there are any: what each resolved to, when,
/// and what fails.
fn alias_text(text: &mut String, status: &serde_json::Value, now: f64) {
    use std::fmt::Write;
    let targets = status["aliases"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if targets.is_empty() {
        return;
    }
    let _ = writeln!(text, "{}", count(targets.len() as u64, "alias target"));
    let rows: Vec<[String; 2]> = targets
        .iter()
        .map(|target| {
            let addresses: Vec<&str> = target["addresses"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect();
            let mut details = if target["resolved"] == true {
                addresses.join(" ")
            } else {
                "no addresses known".to_owned()
            };
            if addresses.is_empty() && target["resolved"] == true {
                details = "no addresses (the target has none)".to_owned();
            }
            if let Some(at) = target["answered_at"].as_f64() {
                let _ = write!(details, "; answered {} ago", age(now - at));
            }
            if let Some(error) = target["last_error"].as_str() {
                let failures = target["failures"].as_u64().unwrap_or(0);
                let since = if target["answered_at"].is_f64() {
                    " since"
                } else {
                    ""
                };
                let _ = write!(details, "; {}{since}: {error}", count(failures, "failure"));
            }
            [
                target["target"].as_str().unwrap_or_default().to_owned(),
                details,
            ]
        })
        .collect();
    write_rows(text, &rows);
}

/// The NOTIFY this node sent its secondaries, when it sent any.
fn notify_out_text(text: &mut String, status: &serde_json::Value, now: f64) {
    use std::fmt::Write;
    let sent = status["notify_out"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if sent.is_empty() {
        return;
    }
    let _ = writeln!(text, "NOTIFY sent to secondaries");
    let rows: Vec<[String; 4]> = sent
        .iter()
        .map(|entry| {
            let mut outcome = if entry["acknowledged"] == true {
                "acknowledged".to_owned()
            } else {
                format!(
                    "not acknowledged: {}",
                    entry["error"].as_str().unwrap_or_default()
                )
            };
            if let Some(at) = entry["at"].as_f64() {
                let _ = write!(outcome, " {} ago", age(now - at));
            }
            [
                entry["zone"].as_str().unwrap_or_default().to_owned(),
                entry["secondary"].as_str().unwrap_or_default().to_owned(),
                format!("serial {}", entry["serial"].as_u64().unwrap_or_default()),
                outcome,
            ]
        })
        .collect();
    write_rows(text, &rows);
}

fn age(seconds: f64) -> String {
    let seconds = seconds.max(0.0) as u64;
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if days > 0 {
        format!("{days}d {}h", hours % 24)
    } else if hours > 0 {
        format!("{hours}h {}m", minutes % 60)
    } else if minutes > 0 {
        format!("{minutes}m {}s", seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// `1 zone`, `2 zones`.
fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Unix time the examples are read at.
    const NOW: f64 = 1_720_000_000.0;

    #[test]
    fn status_text_shows_the_rate_limits_in_force() {
        let mut status = json!({
            "generation": 1,
            "zones": [],
            "last_compile": {"at": NOW, "seconds": 0.001},
            "endpoints": [],
            "rate_limit": {
                "responses_per_second": 20, "errors_per_second": 5, "slip": 2,
                "window_seconds": 15, "ipv4_prefix": 24, "ipv6_prefix": 56,
                "exempt": ["192.0.2.0/24"], "table_size": 262144, "dry_run": true,
            },
        });
        let text = status_text(&status, NOW);
        assert!(
            text.ends_with(
                "UDP rate limits: 20/s answers, 5/s errors per /24 and /56, slip 2, window 15s, \
                 1 network exempt (dry run: counted, not enforced)\n"
            ),
            "{text}"
        );
        status["rate_limit"] = serde_json::Value::Null;
        assert!(!status_text(&status, NOW).contains("rate limits"));
        status["query_log"] = json!({"file": "/var/log/steer/queries.log", "sample": 100});
        assert!(
            status_text(&status, NOW)
                .ends_with("query log: /var/log/steer/queries.log, one query in 100\n")
        );
    }

    #[test]
    fn status_text_shows_each_health_peer_and_why_it_does_not_vote() {
        let mut status = json!({
            "generation": 1,
            "zones": [],
            "last_compile": {"at": NOW, "seconds": 0.001},
            "endpoints": [],
            "health": {"node": "fra-1", "quorum": null, "peers": []},
        });
        assert!(!status_text(&status, NOW).contains("health shared"));
        status["health"] = json!({
            "node": "fra-1",
            "quorum": "majority",
            "peers": [
                {"url": "http://10.0.0.2:8053", "node": "iad-1", "fresh": true,
                 "last_fetch": NOW - 1.0, "last_error": null, "ignored": null},
                {"url": "http://10.0.0.3:8053", "node": null, "fresh": false,
                 "last_fetch": null, "last_error": "HTTP 401", "ignored": null},
                {"url": "http://10.0.0.1:8053", "node": "fra-1", "fresh": true,
                 "last_fetch": NOW, "last_error": null, "ignored": "this node itself"},
            ],
        });
        status["latency"] = json!({"peers": [
            {"url": "http://10.0.0.2:8053", "accepted": 1200, "missed": 3},
        ]});
        let text = status_text(&status, NOW);
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        assert_eq!(
            tail[3],
            "health shared with 3 peers (quorum majority), this node fra-1"
        );
        assert!(
            tail[2].contains("http://10.0.0.2:8053")
                && tail[2].contains("iad-1")
                && tail[2].ends_with("votes, fetched 1s ago; 1200 latency samples read, 3 missed"),
            "{text}"
        );
        assert!(
            tail[1].contains("http://10.0.0.3:8053") && tail[1].ends_with("stale: HTTP 401"),
            "{text}"
        );
        assert!(tail[0].ends_with("ignored: this node itself"), "{text}");
    }

    #[test]
    fn status_text_says_where_it_listens() {
        let status = json!({
            "generation": 1,
            "zones": [],
            "last_compile": {"at": NOW, "seconds": 0.001},
            "endpoints": [],
            "listen": {
                "udp": ["127.0.0.1:5300", "[::1]:5300"],
                "tcp": ["127.0.0.1:5300", "[::1]:5300"],
                "tls": [],
                "peers": "10.0.0.1:8054",
            },
        });
        let text = status_text(&status, NOW);
        assert_eq!(
            text.lines().nth(1),
            Some(
                "listening on udp 127.0.0.1:5300, [::1]:5300; tcp 127.0.0.1:5300, [::1]:5300; \
                 peers 10.0.0.1:8054"
            ),
            "{text}"
        );
    }

    #[test]
    fn status_text_summarizes_the_table_zones_and_endpoints() {
        let status = json!({
            "generation": 3,
            "zones": [
                {"name": "example.test.", "serial": 2024010101u32, "records": 12, "file": "zones/example.test.zone"},
                {"name": "a.test.", "serial": 7, "records": 1, "file": "zones/a.test.zone",
                 "dnssec": {"expires": NOW + 1_209_600.0, "resign_at": NOW + 604_800.0, "keys": [],
                            "signatures": 10, "reused": 9}},
            ],
            "last_compile": {"at": NOW - 125.0, "seconds": 0.0014},
            "last_reload_error": {"at": NOW - 65.0, "errors": ["zones/example.test.zone:7: bad"]},
            "reloads": {"ok": 2, "failed": 1},
            "endpoints": [
                {"pool": "web-fra", "address": "192.0.2.10", "up": true, "drained": false, "forced": null},
                {"pool": "web-fra", "address": "2001:db8::10", "up": false, "drained": true, "forced": null},
                {"pool": "web-iad", "address": "198.51.100.10", "up": false, "drained": false, "forced": "down"},
            ],
            "notify_out": [
                {"zone": "example.test.", "secondary": "192.0.2.8:53", "serial": 2024010101u32,
                 "at": NOW - 3.0, "acknowledged": true, "error": null},
                {"zone": "example.test.", "secondary": "192.0.2.9:53", "serial": 2024010101u32,
                 "at": NOW - 3.0, "acknowledged": false, "error": "no answer"},
            ],
            "secondary": [
                {"zone": "b.test.", "state": "current", "serial": 9, "last_check": NOW - 4.0, "last_error": null,
                 "last_transfer": NOW - 64.0, "last_transfer_type": "IXFR"},
                {"zone": "c.test.", "state": "waiting", "serial": null, "last_check": NOW - 2.0,
                 "last_error": "192.0.2.53:53: SOA query: no answer within 15s"},
            ],
            "updates": [
                {"zone": "example.test.", "rcode": "NOERROR", "count": 4},
                {"zone": "example.test.", "rcode": "REFUSED", "count": 1},
                {"zone": "", "rcode": "NOTAUTH", "count": 2},
            ],
            "aliases": [
                {"target": "lb.example.net.", "addresses": ["192.0.2.80", "2001:db8::80"],
                 "resolved": true, "answered_at": NOW - 20.0, "failures": 2,
                 "last_error": "127.0.0.53:53: A: Server Failure"},
                {"target": "new.example.net.", "addresses": [], "resolved": false,
                 "answered_at": null, "failures": 1, "last_error": "127.0.0.53:53: no answer to A within 2s"},
            ],
        });
        assert_eq!(
            status_text(&status, NOW),
            "generation 3, compiled 2m 5s ago in 1.4 ms; reloads: 2 ok, 1 failed\n\
             last reload failed 1m 5s ago; still serving the table above:\n  \
               zones/example.test.zone:7: bad\n\
             2 zones\n  \
               example.test.  serial 2024010101, 12 records\n  \
               a.test.        serial 7, 1 record; signed: 10 signatures (9 kept by the last \
             reload), expiring in 14d 0h\n\
             2 secondary zones\n  \
               b.test.  current  serial 9, checked 4s ago, transferred by IXFR 1m 4s ago\n  \
               c.test.  waiting  no copy, checked 2s ago; 192.0.2.53:53: SOA query: no answer within 15s\n\
             NOTIFY sent to secondaries\n  \
               example.test.  192.0.2.8:53  serial 2024010101  acknowledged 3s ago\n  \
               example.test.  192.0.2.9:53  serial 2024010101  not acknowledged: no answer 3s ago\n\
             2 alias targets\n  \
               lb.example.net.   192.0.2.80 2001:db8::80; answered 20s ago; 2 failures since: 127.0.0.53:53: A: Server Failure\n  \
               new.example.net.  no addresses known; 1 failure: 127.0.0.53:53: no answer to A within 2s\n\
             dynamic updates since start\n  \
               example.test.      4 NOERROR, 1 REFUSED\n  \
               (not served here)  2 NOTAUTH\n\
             3 endpoints\n  \
               web-fra  192.0.2.10     up\n  \
               web-fra  2001:db8::10   down  drained\n  \
               web-iad  198.51.100.10  down  forced down\n"
        );
    }

    #[test]
    fn status_text_shows_health_keys_when_the_server_sends_them() {
        let status = json!({
            "generation": 1,
            "zones": [],
            "last_compile": {"at": NOW - 10.0, "seconds": 0.002},
            "last_reload_error": null,
            "endpoints": [
                {"pool": "web-fra", "address": "192.0.2.10", "up": true, "drained": false,
                 "forced": null, "observed": "up", "admin": "auto", "since": NOW - 3700.0,
                 "probe": "https", "target": "192.0.2.10:443",
                 "last_probe": {"ok": true, "latency_ms": 12.34, "detail": "HTTP 200", "at": NOW - 2.0},
                 "last_error": "HTTP 503"},
                {"pool": "web-iad", "address": "198.51.100.10", "up": false, "drained": false,
                 "forced": null, "observed": "down", "admin": "auto", "since": NOW - 90_000.0,
                 "probe": "tcp", "target": null,
                 "last_probe": {"ok": false, "latency_ms": null, "detail": "connection refused", "at": NOW},
                 "last_error": "connection refused"},
                {"pool": "web-sin", "address": "203.0.113.10", "up": true, "drained": false,
                 "forced": null, "observed": "unknown", "admin": "forced_up", "since": null,
                 "probe": null, "target": null, "last_probe": null},
                {"pool": "web-ams", "address": "192.0.2.20", "up": false, "drained": false,
                 "forced": null, "observed": "up", "admin": "auto", "since": null,
                 "votes": {"up": 1, "down": 2},
                 "probe": "https", "target": "192.0.2.20:443", "last_probe": null},
            ],
        });
        let text = status_text(&status, NOW);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "generation 1, compiled 10s ago in 2.0 ms",
                "0 zones",
                "4 endpoints",
                "  web-fra  192.0.2.10     up    observed up for 1h 1m, probe https to \
                 192.0.2.10:443, earlier failure: HTTP 503, last probe ok in 12.3 ms 2s ago \
                 (HTTP 200)",
                "  web-iad  198.51.100.10  down  observed down for 1d 1h, probe tcp, last probe \
                 failed 0s ago (connection refused)",
                "  web-sin  203.0.113.10   up    admin forced up, observed unknown",
                "  web-ams  192.0.2.20     down  observed up, 2 of 3 vantage points see it down, \
                 probe https to 192.0.2.20:443",
            ]
        );
    }

    #[test]
    fn an_older_reload_failure_is_placed_before_the_table() {
        let status = json!({
            "generation": 4,
            "last_compile": {"at": NOW - 5.0, "seconds": 0.001},
            "last_reload_error": {"at": NOW - 50.0, "errors": []},
        });
        assert!(
            status_text(&status, NOW)
                .contains("\nlast reload failed 50s ago, before this table:\n"),
        );
    }

    #[test]
    fn pool_ids_stay_one_path_segment() {
        assert_eq!(percent_encode("web-fra_2.x~"), "web-fra_2.x~");
        assert_eq!(percent_encode("a/b c%"), "a%2Fb%20c%25");
    }
}
