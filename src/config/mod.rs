//! `steer.toml` → validated [`Config`] (control plane).
//!
//! Two steps, spec then config: serde reads the file into the types of
//! [`spec`], which mirror the file and reject unknown keys; then this module
//! checks every value and builds a [`Config`] whose fields are typed and
//! valid. Syntax errors and the first structural error (unknown key, missing
//! key, wrong type) come with their line; value errors are all collected and
//! each names its key path (`server.listen[1]`), so one `steer check` shows
//! everything to fix. Relative paths are resolved against the directory of
//! the config file, never the working directory, so the server behaves the
//! same wherever it is started from. Never used on the query path.
//!
//! The steering sections (`[geoip]`, `[ecs]`, `[sites]`, `[pools]`,
//! `[[steer]]`) are validated by [`steering`] into
//! [`steering::SteeringConfig`]; a file without them has an empty one.

pub mod dnssec;
mod duration;
mod error;
pub mod query_log;
pub mod rate_limit;
pub mod secondary;
pub mod spec;
pub mod steering;
pub mod tls;
pub mod update;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use dnssec::DnssecConfig;
pub use duration::parse_duration;
pub use error::ConfigError;
pub use query_log::{QueryLogConfig, QueryLogFormat, QueryLogOutput};
pub use rate_limit::RateLimitConfig;
pub use secondary::SecondaryConfig;
use spec::{AdminSpec, ServerSpec, Spec};
use steering::SteeringConfig;

/// Zones directory when `server.zones` is not set (relative to the config file).
pub const DEFAULT_ZONES: &str = "zones";
/// Idle TCP connections are closed after this long (RFC 7766 suggests seconds).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on open TCP connections.
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;
/// Default cap on open TCP connections from one client: far above what a
/// resolver opens, far below the total.
pub const DEFAULT_TCP_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// Default admin API address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8053);
/// Most UDP workers per address; more threads than this only add contention.
pub const MAX_WORKERS: usize = 256;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this was loaded from, as the operator named it.
    pub file: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[geoip]`, `[ecs]`, `[sites]`, `[pools]` and `[[steer]]`; empty when
    /// the file has none of them.
    pub steering: SteeringConfig,
    /// `[rate_limit]`; `None`: responses are never rate limited.
    pub rate_limit: Option<RateLimitConfig>,
    /// `[query_log]`; `None`: no query is logged.
    pub query_log: Option<QueryLogConfig>,
    /// `[dnssec]`; `None`: every zone is served unsigned.
    pub dnssec: Option<DnssecConfig>,
    /// `[secondary]`; `None`: every zone comes from the zones directory.
    pub secondary: Option<SecondaryConfig>,
    /// `[transfer]`; `None`: zone transfers are refused.
    pub transfer: Option<secondary::TransferConfig>,
    /// `[update]`; `None`: dynamic updates are answered NOTIMP.
    pub update: Option<update::UpdateConfig>,
}

/// `[server]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// DNS addresses; each is served over UDP and TCP. Port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// The zones directory, already resolved against the config file's directory.
    pub zones: PathBuf,
    /// UDP worker threads per listen address (1..=256; default: number of cores).
    pub workers: usize,
    /// Idle TCP connections are closed after this long.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections open at once.
    pub tcp_max_connections: usize,
    /// Most TCP connections open at once from one client (an IPv4
    /// address, an IPv6 /64).
    pub tcp_max_connections_per_client: usize,
    /// The name server identifier answered to queries with an NSID option
    /// (RFC 5001); empty: none is sent.
    pub nsid: Vec<u8>,
    /// `server.version`: the text answered to CHAOS TXT `version.bind` and
    /// `version.server`; empty: those are REFUSED.
    pub version: Vec<u8>,
    /// The DNS Cookie secrets from `server.cookie_secret_file`; `None`:
    /// each process draws its own.
    pub cookie_secrets: Option<CookieSecrets>,
    /// `server.proxy_protocol_from`: the proxies whose every UDP query and
    /// TCP connection starts with a PROXY v2 header naming the client.
    pub proxy_protocol_from: Vec<steering::IpNet>,
    /// Addresses that serve DNS over TLS; fixed at start.
    pub tls_listen: Vec<SocketAddr>,
    /// The certificate DNS over TLS serves, read again at each reload.
    pub tls: Option<std::sync::Arc<tls::TlsIdentity>>,
    /// `server.state_directory`, resolved: where state files and
    /// directories go unless named one by one; `None`: beside the config.
    pub state_directory: Option<PathBuf>,
    /// Where zones' IXFR histories are kept (with `[transfer]`), resolved
    /// against the config file's directory.
    pub journal_directory: PathBuf,
}

/// Server cookie secrets shared by a fleet (RFC 9018 §4.4): cookies are
/// made with `current` and accepted with either, so that a new secret can
/// be rolled out node by node. Its `Debug` hides them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CookieSecrets {
    /// Signs new server cookies, and checks them.
    pub current: [u8; 16],
    /// Still checks cookies made before a rotation.
    pub previous: Option<[u8; 16]>,
}

impl std::fmt::Debug for CookieSecrets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CookieSecrets")
            .field("current", &"<hidden>")
            .field("previous", &self.previous.map(|_| "<hidden>"))
            .finish()
    }
}

/// `[admin]`, validated. Its `Debug` hides the token, so that a logged
/// config never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// The admin API address; loopback unless `allow_remote` is set.
    pub listen: SocketAddr,
    /// The operator explicitly allowed a non-loopback `listen`.
    pub allow_remote: bool,
    /// The bearer token admin requests must carry (read from
    /// `admin.token_file`), if one is configured.
    pub token: Option<String>,
    /// The certificate and key the API serves HTTPS with, when configured.
    /// Read again at each reload (a renewed certificate is used at once);
    /// whether the API speaks TLS at all is fixed at start.
    pub tls: Option<std::sync::Arc<tls::TlsIdentity>>,
    /// Where drains and overrides are kept across restarts.
    pub state_file: PathBuf,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("allow_remote", &self.allow_remote)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("state_file", &self.state_file)
            .finish()
    }
}

impl Config {
    /// Buckets the rate limiter's table is made with: the configured
    /// `rate_limit.table_size`, or the default when limits are off (the
    /// table exists anyway, so a reload can turn them on).
    pub fn rate_limit_table_size(&self) -> usize {
        self.rate_limit
            .as_ref()
            .map_or(rate_limit::DEFAULT_TABLE_SIZE, |limits| limits.table_size)
    }
}

/// Reads and validates the configuration file at `path`.
///
/// Returns every error found; each displays as `file[:line]: [path: ]message`.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        vec![ConfigError::file(
            path,
            format!("cannot read the file: {error}"),
        )]
    })?;
    parse(path, &text)
}

/// Validates configuration `text` as if it had been read from `path` (which
/// names the file in errors and anchors relative paths).
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    let document = error::parse_document(path, text)?;
    let spec = toml::from_str::<Spec>(text)
        .map_err(|serde_error| vec![error::from_serde(path, text, &document, &serde_error)])?;
    validate(path, spec)
}

/// Spec → Config, collecting every error.
fn validate(path: &Path, mut spec: Spec) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let base = path.parent().unwrap_or_else(|| Path::new(""));
    let steering_spec = spec.take_steering();
    let server = validate_server(path, base, spec.server, &mut errors);
    // Where state files and directories go unless named one by one.
    let state = server.state_directory.as_deref().unwrap_or(base);
    let admin = validate_admin(path, (base, state), spec.admin, &server.listen, &mut errors);
    let steering = steering::validate(path, (base, state), steering_spec, &mut errors);
    if let Some(listen) = steering.peers.as_ref().and_then(|peers| peers.listen)
        && listen.port() != 0
    {
        let taken = if listen == admin.listen {
            Some("admin.listen".to_owned())
        } else {
            server
                .listen
                .iter()
                .position(|address| *address == listen)
                .map(|index| format!("server.listen[{index}]"))
        };
        if let Some(taken) = taken {
            errors.push(ConfigError::at(
                path,
                "peers.listen",
                format!("{listen} is also {taken}; TCP cannot share it"),
            ));
        }
    }
    let rate_limit = spec
        .rate_limit
        .map(|rate_limit| rate_limit::validate(path, rate_limit, &mut errors));
    let query_log = spec
        .query_log
        .map(|query_log| query_log::validate(path, base, query_log, &mut errors));
    let dnssec = spec
        .dnssec
        .map(|dnssec| dnssec::validate(path, (base, state), dnssec, &mut errors));
    let keys = secondary::validate_keys(path, base, spec.tsig, &mut errors);
    let (secondary, transfer) = secondary::validate(
        path,
        (base, state),
        (spec.secondary, spec.transfer),
        &keys,
        &mut errors,
    );
    let update = spec
        .update
        .map(|update| update::validate(path, (base, state), update, &keys, &mut errors));
    if errors.is_empty() {
        Ok(Config {
            file: path.to_path_buf(),
            server,
            admin,
            steering,
            rate_limit,
            query_log,
            dnssec,
            secondary,
            transfer,
            update,
        })
    } else {
        Err(errors)
    }
}

fn validate_server(
    file: &Path,
    base: &Path,
    spec: ServerSpec,
    errors: &mut Vec<ConfigError>,
) -> ServerConfig {
    let mut listen = Vec::new();
    if spec.listen.is_empty() {
        errors.push(ConfigError::at(
            file,
            "server.listen",
            "must list at least one address",
        ));
    }
    // Where each fixed address was first listed, to name both in the error.
    let mut first_seen: HashMap<SocketAddr, usize> = HashMap::new();
    for (index, text) in spec.listen.iter().enumerate() {
        let key = format!("server.listen[{index}]");
        match parse_socket_address(text) {
            Ok(address) => {
                // Several port-0 entries are distinct sockets; fixed ports clash.
                if address.port() != 0 {
                    if let Some(first) = first_seen.get(&address) {
                        errors.push(ConfigError::at(
                            file,
                            key,
                            format!("{address} is already listed as server.listen[{first}]"),
                        ));
                        continue;
                    }
                    first_seen.insert(address, index);
                }
                listen.push(address);
            }
            Err(message) => errors.push(ConfigError::at(file, key, message)),
        }
    }

    let zones_text = spec.zones.unwrap_or_else(|| DEFAULT_ZONES.to_string());
    if zones_text.trim().is_empty() {
        errors.push(ConfigError::at(
            file,
            "server.zones",
            "must name a directory",
        ));
    }
    // `join` keeps an absolute path as it is.
    let zones = base.join(&zones_text);

    let workers = match spec.workers {
        None => default_workers(),
        Some(count) => match usize::try_from(count) {
            Ok(count) if (1..=MAX_WORKERS).contains(&count) => count,
            _ => {
                errors.push(ConfigError::at(
                    file,
                    "server.workers",
                    format!("must be between 1 and {MAX_WORKERS}, not {count}"),
                ));
                1
            }
        },
    };

    let tcp_idle_timeout = match spec.tcp_idle_timeout {
        None => DEFAULT_TCP_IDLE_TIMEOUT,
        Some(text) => match parse_duration(&text) {
            Ok(duration) if duration.is_zero() => {
                errors.push(ConfigError::at(
                    file,
                    "server.tcp_idle_timeout",
                    "must be longer than zero",
                ));
                DEFAULT_TCP_IDLE_TIMEOUT
            }
            Ok(duration) => duration,
            Err(message) => {
                errors.push(ConfigError::at(file, "server.tcp_idle_timeout", message));
                DEFAULT_TCP_IDLE_TIMEOUT
            }
        },
    };

    let tcp_max_connections = at_least_one(
        file,
        "server.tcp_max_connections",
        spec.tcp_max_connections,
        DEFAULT_TCP_MAX_CONNECTIONS,
        errors,
    );
    let tcp_max_connections_per_client = at_least_one(
        file,
        "server.tcp_max_connections_per_client",
        spec.tcp_max_connections_per_client,
        DEFAULT_TCP_MAX_CONNECTIONS_PER_CLIENT.min(tcp_max_connections),
        errors,
    );

    let nsid = printable_text(
        file,
        "server.nsid",
        spec.nsid,
        (MAX_NSID_LEN, "a name operators recognise, like \"fra-1\""),
        errors,
    );
    let version = printable_text(
        file,
        "server.version",
        spec.version,
        (MAX_VERSION_LEN, "like \"steer 1.4\""),
        errors,
    );

    let cookie_secrets = spec
        .cookie_secret_file
        .as_deref()
        .and_then(|name| read_cookie_secrets(file, &base.join(name), errors));

    let mut proxy_protocol_from = Vec::new();
    for (index, text) in spec.proxy_protocol_from.iter().enumerate() {
        match steering::IpNet::parse(text) {
            Ok(network) => proxy_protocol_from.push(network),
            Err(message) => errors.push(ConfigError::at(
                file,
                format!("server.proxy_protocol_from[{index}]"),
                message,
            )),
        }
    }

    let mut tls_listen = Vec::new();
    for (index, text) in spec.tls_listen.iter().enumerate() {
        let key = format!("server.tls_listen[{index}]");
        match parse_socket_address(text) {
            Ok(address) if address.port() != 0 && listen.contains(&address) => {
                errors.push(ConfigError::at(
                    file,
                    key,
                    format!("{address} is also in server.listen, whose TCP has it"),
                ));
            }
            Ok(address) => tls_listen.push(address),
            Err(message) => errors.push(ConfigError::at(file, key, message)),
        }
    }
    let tls = tls::read_identity(
        "server",
        spec.tls_certificate.as_deref(),
        spec.tls_key.as_deref(),
        base,
        &mut |key, message| errors.push(ConfigError::at(file, key, message)),
    )
    .map(std::sync::Arc::new);
    if tls.is_none() && !tls_listen.is_empty() && spec.tls_certificate.is_none() {
        errors.push(ConfigError::at(
            file,
            "server.tls_listen",
            "needs server.tls_certificate and server.tls_key: the certificate it serves",
        ));
    }
    if spec.tls_certificate.is_some() && spec.tls_listen.is_empty() {
        errors.push(ConfigError::at(
            file,
            "server.tls_certificate",
            "is for server.tls_listen, which is not set",
        ));
    }

    let state_directory = spec.state_directory.as_deref().map(|name| {
        path_or_default(
            (file, base),
            ("server.state_directory", "directory"),
            Some(name),
            base.to_path_buf(),
            errors,
        )
    });
    let journal_directory = path_or_default(
        (file, base),
        ("server.journal_directory", "directory"),
        spec.journal_directory.as_deref(),
        state_directory
            .as_deref()
            .unwrap_or(base)
            .join(crate::transfer::journal::DIRECTORY),
        errors,
    );
    ServerConfig {
        listen,
        zones,
        workers,
        tcp_idle_timeout,
        tcp_max_connections,
        tcp_max_connections_per_client,
        nsid,
        version,
        cookie_secrets,
        proxy_protocol_from,
        tls_listen,
        tls,
        journal_directory,
        state_directory,
    }
}

/// Reads `server.cookie_secret_file`: the current secret on its first
/// line and optionally the previous one on the next, 32 hexadecimal digits
/// each (16 bytes, RFC 9018's SipHash key); blank lines and `#` comments
/// are skipped. Errors name the file and line, never a secret.
fn read_cookie_secrets(
    file: &Path,
    path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<CookieSecrets> {
    let key = "server.cookie_secret_file";
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            errors.push(ConfigError::at(
                file,
                key,
                format!("cannot read {}: {error}", path.display()),
            ));
            return None;
        }
    };
    let mut secrets = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = (line.len() == 32)
            .then(|| {
                let mut secret = [0u8; 16];
                for (byte, pair) in secret.iter_mut().zip(line.as_bytes().chunks(2)) {
                    *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
                }
                Some(secret)
            })
            .flatten();
        match parsed {
            Some(secret) => secrets.push(secret),
            None => {
                errors.push(ConfigError::at(
                    file,
                    key,
                    format!(
                        "{}:{}: a secret is 32 hexadecimal digits (16 bytes), e.g. from \
                         `head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'`",
                        path.display(),
                        index + 1
                    ),
                ));
                return None;
            }
        }
    }
    match secrets[..] {
        [current] => Some(CookieSecrets {
            current,
            previous: None,
        }),
        [current, previous] => Some(CookieSecrets {
            current,
            previous: Some(previous),
        }),
        _ => {
            errors.push(ConfigError::at(
                file,
                key,
                format!(
                    "{} must hold the current secret and at most the previous one, \
                     one per line; it has {}",
                    path.display(),
                    secrets.len()
                ),
            ));
            None
        }
    }
}

/// The integer at `key` when set and within `range`; `None` when not set,
/// and after an error that says the range (and `hint`, when the range
/// alone does not say what the ends mean).
fn in_range(
    file: &Path,
    key: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    hint: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<i64> {
    let value = value?;
    if range.contains(&value) {
        return Some(value);
    }
    errors.push(ConfigError::at(
        file,
        key,
        format!(
            "must be between {} and {}{hint}, not {value}",
            range.start(),
            range.end()
        ),
    ));
    None
}

/// A count of at least one at `key`, or `default` when not set (and after
/// an error).
fn at_least_one(
    file: &Path,
    key: &str,
    value: Option<i64>,
    default: usize,
    errors: &mut Vec<ConfigError>,
) -> usize {
    match value.map(|count| (count, usize::try_from(count))) {
        None => default,
        Some((_, Ok(count))) if count >= 1 => count,
        Some((count, _)) => {
            errors.push(ConfigError::at(
                file,
                key,
                format!("must be at least 1, not {count}"),
            ));
            default
        }
    }
}

/// Longest `server.nsid`: ample for a node name, and small beside the
/// answers it rides on.
const MAX_NSID_LEN: usize = 64;
/// Longest `server.version`: what one TXT string holds.
const MAX_VERSION_LEN: usize = 255;

/// An optional text key shown to clients (`server.nsid`,
/// `server.version`): 1 to `max` printable ASCII characters, spaces
/// allowed; its bytes, or empty when not set (or wrong, with the error
/// pushed).
fn printable_text(
    file: &Path,
    key: &str,
    text: Option<String>,
    (max, example): (usize, &str),
    errors: &mut Vec<ConfigError>,
) -> Vec<u8> {
    let Some(text) = text else {
        return Vec::new();
    };
    let printable = text
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ');
    if text.is_empty() || text.len() > max || !printable {
        errors.push(ConfigError::at(
            file,
            key,
            format!("must be 1 to {max} printable ASCII characters ({example}), not {text:?}"),
        ));
        return Vec::new();
    }
    text.into_bytes()
}

fn validate_admin(
    file: &Path,
    (base, state): (&Path, &Path),
    spec: Option<AdminSpec>,
    dns_listen: &[SocketAddr],
    errors: &mut Vec<ConfigError>,
) -> AdminConfig {
    let spec = spec.unwrap_or(AdminSpec {
        listen: None,
        allow_remote: false,
        token_file: None,
        tls_certificate: None,
        tls_key: None,
        state_file: None,
    });
    let token = spec
        .token_file
        .as_deref()
        .and_then(|name| read_token(file, &base.join(name), errors));
    let tls = tls::read_identity(
        "admin",
        spec.tls_certificate.as_deref(),
        spec.tls_key.as_deref(),
        base,
        &mut |key, message| errors.push(ConfigError::at(file, key, message)),
    )
    .map(std::sync::Arc::new);
    let state_file = path_or_default(
        (file, base),
        ("admin.state_file", "file"),
        spec.state_file.as_deref(),
        state_file_named(file, state, "state.json"),
        errors,
    );
    let listen = match spec.listen.as_deref().map(parse_socket_address) {
        None => DEFAULT_ADMIN_LISTEN,
        Some(Ok(address)) => address,
        Some(Err(message)) => {
            errors.push(ConfigError::at(file, "admin.listen", message));
            return AdminConfig {
                listen: DEFAULT_ADMIN_LISTEN,
                allow_remote: spec.allow_remote,
                token,
                tls,
                state_file,
            };
        }
    };
    if !listen.ip().to_canonical().is_loopback() && !spec.allow_remote {
        // The admin API can reload the server; exposing it must be a decision.
        errors.push(ConfigError::at(
            file,
            "admin.listen",
            format!(
                "{listen} is not a loopback address; the admin API can reload the server, \
                 so serving it beyond this host needs admin.allow_remote = true"
            ),
        ));
    }
    if listen.port() != 0
        && let Some(index) = dns_listen.iter().position(|address| *address == listen)
    {
        errors.push(ConfigError::at(
            file,
            "admin.listen",
            format!("{listen} is also a DNS address (server.listen[{index}]); TCP cannot share it"),
        ));
    }
    AdminConfig {
        listen,
        allow_remote: spec.allow_remote,
        token,
        tls,
        state_file,
    }
}

/// The admin token from `path`: its first line, without surrounding blanks.
fn read_token(file: &Path, path: &Path, errors: &mut Vec<ConfigError>) -> Option<String> {
    read_token_file(path)
        .map_err(|message| errors.push(ConfigError::at(file, "admin.token_file", message)))
        .ok()
}

/// A bearer token file's first line, without surrounding blanks; the error
/// names the file and never shows its content.
pub(crate) fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    // A header value carries visible ASCII only; a short token is guessable.
    if token.len() < 16 || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(format!(
            "{} must hold a token of at least 16 visible ASCII characters on its first line",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

/// A path the config may set at `key` (a `what`: file or directory),
/// resolved against the config file's directory `base`; `default` when
/// it is not set, and when it is set empty (an error).
pub(crate) fn path_or_default(
    (file, base): (&Path, &Path),
    (key, what): (&str, &str),
    written: Option<&str>,
    default: PathBuf,
    errors: &mut Vec<ConfigError>,
) -> PathBuf {
    match written {
        Some(name) if name.trim().is_empty() => {
            errors.push(ConfigError::at(file, key, format!("must name a {what}")));
            default
        }
        Some(name) => base.join(name),
        None => default,
    }
}

/// A state file named after the config file (`steer.toml` →
/// `steer.EXTENSION`) in `state`: `server.state_directory`, or the config
/// file's directory.
pub(crate) fn state_file_named(config_file: &Path, state: &Path, extension: &str) -> PathBuf {
    state.join(
        beside_config(config_file, extension)
            .file_name()
            .unwrap_or_default(),
    )
}

/// A file of Steer's own state named after the config file, in its
/// directory: `steer.toml` → `steer.EXTENSION`, so that two servers with
/// two configs in one directory keep apart.
pub fn beside_config(config_file: &Path, extension: &str) -> PathBuf {
    let stem = config_file.file_stem().map_or_else(
        || "steer".into(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    config_file.with_file_name(format!("{stem}.{extension}"))
}

/// The file for `zone` in `directory`, named as the zones directory names
/// them: `example.org.` → `example.org.EXTENSION`, lower case.
pub(crate) fn zone_file(
    directory: &Path,
    zone: &hickory_proto::rr::Name,
    extension: &str,
) -> PathBuf {
    let mut file_name = zone.to_ascii().to_ascii_lowercase();
    if file_name.ends_with('.') {
        file_name.pop();
    }
    directory.join(format!("{file_name}.{extension}"))
}

/// One socket address as written in the file.
fn parse_socket_address(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        format!(
            "invalid socket address \"{text}\": expected IP:port, \
             e.g. \"127.0.0.1:5300\" or \"[::1]:5300\""
        )
    })
}

/// One UDP worker per core, bounded like an explicit setting.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, MAX_WORKERS)
}

#[cfg(test)]
mod tests;
