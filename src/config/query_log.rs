//! `[query_log]`: a sampled log of queries and their answers, validated.
//!
//! Route 53 and NS1 log queries for their customers; an operator of a
//! steering service needs the same to see who got which answer. The log
//! is a file of JSON lines, or dnstap (the format every authoritative
//! server and collector reads) in a file or sent to a collector's socket,
//! written off the query path; the section is off unless present.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ConfigError;

/// Largest `sample`: one query in a million.
pub const MAX_SAMPLE: u64 = 1_000_000;

/// `[query_log]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogSpec {
    /// The log file, relative to the config file.
    #[serde(default)]
    pub file: Option<String>,
    /// A dnstap collector: `unix:PATH` (relative to the config file) or
    /// `tcp:ADDRESS:PORT`.
    #[serde(default)]
    pub socket: Option<String>,
    /// Log one query in this many (1: every query).
    #[serde(default)]
    pub sample: Option<i64>,
    /// `"json"` (the default for a file) or `"dnstap"` (the default, and
    /// the only format, for a socket).
    #[serde(default)]
    pub format: Option<String>,
}

/// How the log is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueryLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// dnstap messages in a Frame Streams file or stream.
    Dnstap,
}

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryLogOutput {
    /// A file, resolved against the config file's directory.
    File(PathBuf),
    /// A dnstap collector listening on a Unix socket, resolved against
    /// the config file's directory.
    Unix(PathBuf),
    /// A dnstap collector listening on TCP.
    Tcp(SocketAddr),
}

impl fmt::Display for QueryLogOutput {
    /// As `/status` and the restart warnings show it.
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryLogOutput::File(path) => write!(out, "{}", path.display()),
            QueryLogOutput::Unix(path) => write!(out, "unix:{}", path.display()),
            QueryLogOutput::Tcp(address) => write!(out, "tcp:{address}"),
        }
    }
}

/// `[query_log]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLogConfig {
    /// The file or the collector.
    pub output: QueryLogOutput,
    /// One query in `sample` is logged, on each worker.
    pub sample: u64,
    /// JSON lines or dnstap.
    pub format: QueryLogFormat,
}

/// Checks `[query_log]`, pushing one error per bad key.
pub(super) fn validate(
    file: &Path,
    base: &Path,
    spec: QueryLogSpec,
    errors: &mut Vec<ConfigError>,
) -> QueryLogConfig {
    let format = match spec.format.as_deref() {
        None if spec.socket.is_some() => QueryLogFormat::Dnstap,
        None | Some("json") => QueryLogFormat::Json,
        Some("dnstap") => QueryLogFormat::Dnstap,
        Some(other) => {
            errors.push(ConfigError::at(
                file,
                "query_log.format",
                format!("\"{other}\" is not a format; use \"json\" or \"dnstap\""),
            ));
            QueryLogFormat::Json
        }
    };
    let output = match (spec.file, spec.socket) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::at(
                file,
                "query_log.socket",
                "the log goes to a file or to a socket, not both; remove file or socket",
            ));
            None
        }
        (None, None) => {
            errors.push(ConfigError::at(
                file,
                "query_log",
                "needs file (a log file) or socket (a dnstap collector)",
            ));
            None
        }
        (Some(name), None) => {
            if name.trim().is_empty() {
                errors.push(ConfigError::at(file, "query_log.file", "must name a file"));
            }
            Some(QueryLogOutput::File(base.join(name)))
        }
        (None, Some(socket)) => {
            if format == QueryLogFormat::Json {
                errors.push(ConfigError::at(
                    file,
                    "query_log.format",
                    "a socket carries dnstap only; use format = \"dnstap\" or a file",
                ));
            }
            socket_output(&socket, base)
                .map_err(|message| {
                    errors.push(ConfigError::at(file, "query_log.socket", message));
                })
                .ok()
        }
    };
    let sample = super::in_range(
        file,
        "query_log.sample",
        spec.sample,
        1..=MAX_SAMPLE as i64,
        " (one query in N)",
        errors,
    )
    .unwrap_or(1) as u64;
    QueryLogConfig {
        output: output.unwrap_or_else(|| QueryLogOutput::File(PathBuf::new())),
        sample,
        format,
    }
}

/// `unix:PATH` or `tcp:ADDRESS:PORT`, as the operator wrote it.
fn socket_output(socket: &str, base: &Path) -> Result<QueryLogOutput, String> {
    if let Some(path) = socket.strip_prefix("unix:") {
        if path.trim().is_empty() {
            return Err("unix: must be followed by the socket's path".to_owned());
        }
        Ok(QueryLogOutput::Unix(base.join(path)))
    } else if let Some(address) = socket.strip_prefix("tcp:") {
        address.parse().map(QueryLogOutput::Tcp).map_err(|_| {
            format!(
                "\"{address}\" is not an address and port (for example tcp:127.0.0.1:6000 \
                 or tcp:[::1]:6000)"
            )
        })
    } else {
        Err(format!(
            "\"{socket}\" names no kind of socket; use unix:PATH or tcp:ADDRESS:PORT"
        ))
    }
}
