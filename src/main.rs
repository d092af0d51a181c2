//! The `steer` command: `serve`, `check`, `explain`, `reload` (an admin API
//! client) and `geoip build`.
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
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

use steer::control::{self, Control};
use steer::server;

/// How long `steer reload` waits for the server; a reload of large zones
/// takes a while, and the server finishes it even if we give up.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);

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
        /// Find the admin API from this configuration's `[admin] listen`.
        #[arg(long, value_name = "FILE", conflicts_with = "admin")]
        config: Option<PathBuf>,
        /// The admin API address, e.g. `127.0.0.1:8053`.
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
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
        Command::Serve { config } => with_runtime(serve(config)),
        Command::Reload { config, admin } => with_runtime(reload(config, admin)),
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
        Err(errors) => {
            for line in errors {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
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
            println!(
                "ok: {}, {}, compiled in {:.1} ms",
                count(built.zones as u64, "zone"),
                count(built.records as u64, "record"),
                built.compile_duration.as_secs_f64() * 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for line in errors {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn explain(
    config_path: &Path,
    name: &str,
    record_type: &str,
    client: &str,
    json: bool,
) -> ExitCode {
    let built = match control::build(config_path, 1, &steer::health::AdminState::default()) {
        Ok(built) => built,
        Err(errors) => {
            for line in errors {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let serving = control::Serving {
        table: Arc::new(built.table),
        geo: built.geo,
        steering: Arc::new(built.config.steering),
        admin: steer::health::AdminState::default(),
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

async fn serve(config_path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

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
        Err(start_error) => {
            // Printed rather than logged: one line per error, like `check`.
            for line in start_error.lines() {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };

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

async fn reload(config_path: Option<PathBuf>, admin: Option<String>) -> ExitCode {
    let base = match admin {
        Some(address) if address.contains("://") => address.trim_end_matches('/').to_string(),
        Some(address) => format!("http://{address}"),
        None => {
            let config_path = config_path.unwrap_or_else(|| PathBuf::from("steer.toml"));
            match admin_address_from_config(&config_path) {
                Ok(address) => format!("http://{address}"),
                Err(lines) => {
                    for line in lines {
                        eprintln!("{line}");
                    }
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let url = format!("{base}/reload");
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(RELOAD_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(client_error) => {
            eprintln!(
                "cannot create an HTTP client: {}",
                error_chain(&client_error)
            );
            return ExitCode::FAILURE;
        }
    };
    let response = match client.post(&url).send().await {
        Ok(response) => response,
        Err(request_error) => {
            eprintln!(
                "cannot reach the admin API at {url}: {}",
                error_chain(&request_error)
            );
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let body = match response.text().await {
        Ok(body) => body,
        Err(body_error) => {
            eprintln!(
                "{url}: cannot read the response: {}",
                error_chain(&body_error)
            );
            return ExitCode::FAILURE;
        }
    };
    let Ok(reply) = serde_json::from_str::<serde_json::Value>(&body) else {
        eprintln!("{url}: unexpected response {status}: {}", body.trim());
        return ExitCode::FAILURE;
    };
    let generation = reply["generation"].as_u64().unwrap_or_default();
    if status.is_success() && reply["ok"] == true {
        println!(
            "ok: generation {generation}, {}, {}, compiled in {:.1} ms",
            count(reply["zones"].as_u64().unwrap_or_default(), "zone"),
            count(reply["records"].as_u64().unwrap_or_default(), "record"),
            reply["seconds"].as_f64().unwrap_or_default() * 1000.0
        );
        for warning in reply["warnings"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", warning.as_str().unwrap_or_default());
        }
        return ExitCode::SUCCESS;
    }
    match reply["errors"].as_array() {
        Some(errors) => {
            eprintln!("reload failed; still serving generation {generation}:");
            for line in errors {
                eprintln!("{}", line.as_str().unwrap_or_default());
            }
        }
        None => eprintln!("{url}: unexpected response {status}: {}", body.trim()),
    }
    ExitCode::FAILURE
}

/// The admin address a client on this host should connect to.
fn admin_address_from_config(config_path: &Path) -> Result<String, Vec<String>> {
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
    Ok(address.to_string())
}

/// `1 zone`, `2 zones`.
fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// An error and its causes: reqwest's own message alone says little.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
