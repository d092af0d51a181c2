//! `[query_log]`: a sampled log of queries and their answers, validated.
//!
//! Route 53 and NS1 log queries for their customers; an operator of a
//! steering service needs the same to see who got which answer. The log
//! is a file of JSON lines, or of dnstap (the format every authoritative
//! server and collector reads), written off the query path; the section
//! is off unless present.

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
    pub file: String,
    /// Log one query in this many (1: every query).
    #[serde(default)]
    pub sample: Option<i64>,
    /// `"json"` (the default) or `"dnstap"`.
    #[serde(default)]
    pub format: Option<String>,
}

/// How the log is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueryLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// dnstap messages in a Frame Streams file.
    Dnstap,
}

/// `[query_log]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLogConfig {
    /// The log file, resolved against the config file's directory.
    pub file: PathBuf,
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
    if spec.file.trim().is_empty() {
        errors.push(ConfigError::at(file, "query_log.file", "must name a file"));
    }
    let sample = super::in_range(
        file,
        "query_log.sample",
        spec.sample,
        1..=MAX_SAMPLE as i64,
        " (one query in N)",
        errors,
    )
    .unwrap_or(1) as u64;
    let format = match spec.format.as_deref() {
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
    QueryLogConfig {
        file: base.join(&spec.file),
        sample,
        format,
    }
}
