//! What a `latency` step read for one client, for `steer explain` and
//! `GET /explain` (control plane; nothing here is on the query path).
//!
//! A compile freezes every latency source at once
//! ([`super::snapshot::LatencySnapshot`], O(model size)) because it splits
//! the whole address space by them. Explain asks about one client, so
//! [`client_sources`] looks its sources up directly: the model's entry for
//! its network, the matrix's longest covering prefix, the matrix rows of
//! its ASN and country, and this node's own RTTs. It keeps the compiler's
//! rules and labels (the most specific prefix source only, a measured
//! network winning a tie with a matrix prefix, the fallback order of
//! [`super::snapshot`]), so that running the policy's steps on them gives
//! the decision the table holds, margin included. It also keeps what a
//! compile has no use for and an operator asks about: the sample count and
//! age of each measurement, the matrix line of each row, and why each
//! source above the one that decided was passed over.
//!
//! It must never diverge from the compiler's choice of sources: a change
//! to [`super::snapshot::LatencySnapshot::sources`] or to how the compile
//! matches prefix sources belongs here too.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::engine::LatencyEngine;
use super::matrix::{LatencyMatrix, MatrixRow};
use super::model::ClientPrefix;
use super::snapshot::{Choices, SiteRtts, SourceKey};
use crate::geo::Location;

/// Where a source's RTTs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Real-user measurements of the client's own network (`POST /latency`).
    Measured,
    /// A prefix row of the matrix file covering the client.
    MatrixPrefix,
    /// The matrix rows of the client's autonomous system.
    MatrixAsn,
    /// The matrix rows of the client's country.
    MatrixCountry,
    /// This node's own RTT to each site (active measurements).
    Node,
}

/// One site's RTT at one source, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteReading {
    /// Index of the site in the configuration's sites.
    pub site: usize,
    /// Round-trip time in milliseconds, exactly as the compile reads it.
    pub rtt_ms: f64,
    /// Samples in the moving average (measured networks only).
    pub samples: Option<u32>,
    /// Seconds since the newest sample (measured networks and this node).
    pub age_seconds: Option<u64>,
    /// Line of the matrix file (matrix rows only).
    pub line: Option<usize>,
}

/// One source of RTTs for the client.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSource {
    /// Where the RTTs come from.
    pub kind: SourceKind,
    /// The compiler's name of the source (`matrix 100.64.0.0/16` as
    /// text), which also keys the margin's memory of the site this source
    /// chose before.
    pub key: SourceKey,
    /// As explain shows it: the key, plus `(measured)` or the matrix line.
    pub label: String,
    /// (site, RTT) pairs, as the `latency` step reads them.
    pub rtts: SiteRtts,
    /// The same RTTs with samples, age and line.
    pub readings: Vec<SiteReading>,
}

/// One level of the fallback order: a source, or why there is none.
#[derive(Clone, Debug, PartialEq)]
enum Level {
    Source(ClientSource),
    /// Nothing here for the client, or a source the compiler does not read
    /// for it; the text says which.
    Passed(String),
}

/// A client's latency sources, most specific first, with why the missing
/// ones are missing. Built by [`client_sources`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClientLatency {
    levels: Vec<Level>,
    /// The configuration's site ids, by index.
    sites: Vec<String>,
}

/// A candidate pool as [`ClientLatency::trace_step`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Pool id.
    pub pool: &'a str,
    /// Index of its site in the configuration's sites.
    pub site: usize,
}

/// How candidates without an RTT at the deciding source are ordered
/// (after those with one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// By distance from the client's coordinates to their sites.
    Distance,
    /// As configured: the client's coordinates are unknown.
    ConfiguredOrder,
}

/// What one `latency` step read for the client; part of `/explain`'s JSON
/// (`policy.location_steps[].latency`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyTrace {
    /// The source whose RTTs ordered the candidates: the first, most
    /// specific first, with an RTT for any of them; `None` when none had.
    pub source: Option<SourceTrace>,
    /// Why each source before it did not decide, in fallback order (`no
    /// measurement for 100.64.7.0/24`); with no deciding source, every one.
    pub skipped: Vec<String>,
    /// Candidate pools with no RTT at the deciding source (every candidate
    /// when none decided), in the order the step left them.
    pub without_rtt: Vec<String>,
    /// How those were ordered; `None` when every candidate had an RTT.
    pub fallback: Option<Fallback>,
    /// What the margin did, when it mattered: a previous winner kept first
    /// though not the fastest, or replaced by a faster site.
    pub margin: Option<String>,
}

/// The source that decided a `latency` step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceTrace {
    /// Where its RTTs come from.
    pub kind: SourceKind,
    /// `network 198.51.100.0/24 (measured)`, `matrix 100.64.0.0/16 (line
    /// 3)`, `matrix AS3320 (line 7)`, `matrix country DE (line 9)`, `this
    /// node`.
    pub label: String,
    /// The label the margin remembers its choice under.
    pub key: String,
    /// The RTT of each candidate that has one here, in the step's order.
    pub rtts: Vec<CandidateRtt>,
}

/// One candidate's RTT at the deciding source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CandidateRtt {
    /// Pool id.
    pub pool: String,
    /// Its site.
    pub site: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// Samples in the moving average (measured networks only).
    pub samples: Option<u32>,
    /// Seconds since the newest sample (measured networks and this node).
    pub age_seconds: Option<u64>,
    /// Line of the matrix file (matrix rows only).
    pub line: Option<usize>,
}

/// The latency sources of the client at `address`, located at `location`,
/// as a compile at `now` would give them: `engine` is the live model
/// (`None` for `steer explain`, which has no measurements, only the
/// matrix), `sites` the configuration's site ids in order.
pub fn client_sources(
    matrix: &LatencyMatrix,
    engine: Option<&LatencyEngine>,
    sites: &[String],
    address: IpAddr,
    location: &Location,
    now: u64,
) -> ClientLatency {
    let site_index = |id: &str| sites.iter().position(|known| known == id);
    let mut levels = Vec::new();

    // The prefix level: the compile keeps only the most specific prefix
    // source covering the address, and a measured network wins a tie.
    let (network_address, network_len) = ClientPrefix::of(address).network();
    let measured: Vec<SiteReading> = engine
        .map(|engine| engine.describe(address, now))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(site, rtt_ms, samples, age)| {
            // Measurements of a site the configuration no longer has are
            // left out of the compile too.
            Some(SiteReading {
                site: site_index(&site)?,
                rtt_ms,
                samples: Some(samples),
                age_seconds: Some(age),
                line: None,
            })
        })
        .collect();
    let measured = (!measured.is_empty()).then(|| {
        let key = SourceKey::Network(network_address, network_len);
        source(
            SourceKind::Measured,
            format!("{key} (measured)"),
            key,
            measured,
        )
    });
    let covering = matrix.longest_match(address).map(|(network, rows)| {
        let key = SourceKey::MatrixPrefix(network.address, network.prefix_len);
        let label = with_line(&key.to_string(), rows);
        (
            network.prefix_len,
            source(SourceKind::MatrixPrefix, label, key, readings(rows)),
        )
    });
    match (measured, covering) {
        (Some(measured), Some((matrix_len, covering))) if matrix_len > network_len => {
            let passed = format!(
                "{} is not read: {} is more specific",
                measured.label, covering.label
            );
            levels.push(Level::Source(covering));
            levels.push(Level::Passed(passed));
        }
        (Some(measured), covering) => {
            let passed = covering.map(|(_, covering)| {
                format!(
                    "{} is not read: the measured network is more specific",
                    covering.label
                )
            });
            levels.push(Level::Source(measured));
            levels.extend(passed.map(Level::Passed));
        }
        (None, covering) => {
            levels.push(Level::Passed(match engine {
                Some(_) => format!("no measurement for {network_address}/{network_len}"),
                None => "no measurements: steer explain reads the matrix only (GET /explain \
                         on the server has them)"
                    .to_owned(),
            }));
            levels.push(match covering {
                Some((_, covering)) => Level::Source(covering),
                None => Level::Passed(format!("no matrix prefix covers {address}")),
            });
        }
    }

    levels.push(match location.asn {
        None => Level::Passed("no ASN known for the client".to_owned()),
        Some(asn) => match matrix.by_asn(asn) {
            [] => Level::Passed(format!("no matrix row for AS{asn}")),
            rows => {
                let key = SourceKey::MatrixAsn(asn);
                Level::Source(source(
                    SourceKind::MatrixAsn,
                    with_line(&key.to_string(), rows),
                    key,
                    readings(rows),
                ))
            }
        },
    });
    levels.push(match &location.country {
        None => Level::Passed("no country known for the client".to_owned()),
        Some(country) => match (matrix.by_country(country), SourceKey::country(country)) {
            ([], _) | (_, None) => Level::Passed(format!("no matrix row for country {country}")),
            (rows, Some(key)) => Level::Source(source(
                SourceKind::MatrixCountry,
                with_line(&key.to_string(), rows),
                key,
                readings(rows),
            )),
        },
    });

    let mut node: Vec<SiteReading> = engine
        .map(|engine| engine.node_latencies(now))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(site, rtt_ms, age)| {
            Some(SiteReading {
                site: site_index(&site)?,
                rtt_ms,
                samples: None,
                age_seconds: Some(age),
                line: None,
            })
        })
        .collect();
    node.sort_by_key(|reading| reading.site);
    levels.push(if node.is_empty() {
        Level::Passed("no RTT measured from this node".to_owned())
    } else {
        let key = SourceKey::Node;
        Level::Source(source(SourceKind::Node, key.to_string(), key, node))
    });

    ClientLatency {
        levels,
        sites: sites.to_vec(),
    }
}

fn source(
    kind: SourceKind,
    label: String,
    key: SourceKey,
    readings: Vec<SiteReading>,
) -> ClientSource {
    ClientSource {
        kind,
        key,
        label,
        rtts: readings
            .iter()
            .map(|reading| (reading.site, reading.rtt_ms))
            .collect(),
        readings,
    }
}

fn readings(rows: &[MatrixRow]) -> Vec<SiteReading> {
    rows.iter()
        .map(|row| SiteReading {
            site: row.site,
            rtt_ms: row.rtt_ms,
            samples: None,
            age_seconds: None,
            line: Some(row.line),
        })
        .collect()
}

/// `matrix 100.64.0.0/16 (line 3)`: the first line of the selector's rows,
/// where an operator finds them (each site's own line is in the JSON).
fn with_line(key: &str, rows: &[MatrixRow]) -> String {
    match rows.iter().map(|row| row.line).min() {
        Some(line) => format!("{key} (line {line})"),
        None => key.to_owned(),
    }
}

impl ClientLatency {
    /// The sources as [`crate::policy::LatencyInput::sources`] takes them.
    pub fn input(&self) -> Vec<(SourceKey, &[(usize, f64)])> {
        self.sources()
            .map(|source| (source.key, source.rtts.as_slice()))
            .collect()
    }

    /// The sources, most specific first.
    pub fn sources(&self) -> impl Iterator<Item = &ClientSource> {
        self.levels.iter().filter_map(|level| match level {
            Level::Source(source) => Some(source),
            Level::Passed(_) => None,
        })
    }

    /// What a `latency` step over `candidates` (its input) read, given
    /// the order it left them in (`output`, pool ids), the site each source
    /// chose before (`previous`, by key), its margins (percent, ms) and
    /// whether the client's coordinates are known. Uses the rule of
    /// [`crate::policy::LatencyInput`]: the first source with an RTT for
    /// any candidate decides.
    pub fn trace_step(
        &self,
        candidates: &[Candidate<'_>],
        output: &[String],
        previous: &Choices,
        (margin_percent, margin_ms): (f64, f64),
        located: bool,
    ) -> LatencyTrace {
        let in_output_order: Vec<Candidate<'_>> = output
            .iter()
            .filter_map(|pool| candidates.iter().find(|candidate| candidate.pool == pool))
            .copied()
            .collect();
        let reading_of = |source: &'_ ClientSource, site: usize| {
            source
                .readings
                .iter()
                .find(|reading| reading.site == site)
                .cloned()
        };
        let mut skipped = Vec::new();
        let mut decided = None;
        for level in &self.levels {
            match level {
                Level::Passed(why) => skipped.push(why.clone()),
                Level::Source(source) => {
                    if candidates
                        .iter()
                        .any(|candidate| reading_of(source, candidate.site).is_some())
                    {
                        decided = Some(source);
                        break;
                    }
                    let pools: Vec<&str> =
                        candidates.iter().map(|candidate| candidate.pool).collect();
                    skipped.push(format!(
                        "{}: no RTT for {}",
                        source.label,
                        if pools.is_empty() {
                            "any pool (none is left)".to_owned()
                        } else {
                            pools.join(", ")
                        }
                    ));
                }
            }
        }
        let mut rtts = Vec::new();
        let mut without_rtt = Vec::new();
        for candidate in &in_output_order {
            match decided.and_then(|source| reading_of(source, candidate.site)) {
                Some(reading) => rtts.push(CandidateRtt {
                    pool: candidate.pool.to_owned(),
                    site: self.sites.get(candidate.site).cloned().unwrap_or_default(),
                    rtt_ms: reading.rtt_ms,
                    samples: reading.samples,
                    age_seconds: reading.age_seconds,
                    line: reading.line,
                }),
                None => without_rtt.push(candidate.pool.to_owned()),
            }
        }
        let margin = decided.and_then(|source| {
            margin_effect(
                &rtts,
                previous.get(&source.key).copied(),
                &in_output_order,
                (margin_percent, margin_ms),
            )
        });
        let fallback = (!without_rtt.is_empty()).then_some(if located {
            Fallback::Distance
        } else {
            Fallback::ConfiguredOrder
        });
        LatencyTrace {
            source: decided.map(|source| SourceTrace {
                kind: source.kind,
                label: source.label.clone(),
                key: source.key.to_string(),
                rtts,
            }),
            skipped,
            without_rtt,
            fallback,
            margin,
        }
    }
}

/// What the margin did with `rtts` (in the step's order, the winner
/// first) when `previous` was the site chosen before. Sites, not pools,
/// are compared: the margin remembers sites, and pools may share one.
fn margin_effect(
    rtts: &[CandidateRtt],
    previous: Option<usize>,
    candidates: &[Candidate<'_>],
    (margin_percent, margin_ms): (f64, f64),
) -> Option<String> {
    let previous = previous?;
    let site_of = |rtt: &CandidateRtt| {
        candidates
            .iter()
            .find(|candidate| candidate.pool == rtt.pool)
            .map(|candidate| candidate.site)
    };
    let winner = rtts.first()?;
    let fastest = rtts
        .iter()
        .min_by(|left, right| left.rtt_ms.total_cmp(&right.rtt_ms))?;
    if site_of(winner) == Some(previous) {
        (fastest.rtt_ms < winner.rtt_ms).then(|| {
            format!(
                "{} stays first: it was chosen before, and {} ({:.1} ms) is not faster by \
                 {margin_percent}% and {margin_ms} ms",
                winner.pool, fastest.pool, fastest.rtt_ms
            )
        })
    } else {
        let held = rtts.iter().find(|rtt| site_of(rtt) == Some(previous))?;
        Some(format!(
            "{} replaces {} ({:.1} ms), chosen before: faster by at least {margin_percent}% \
             and {margin_ms} ms",
            winner.pool, held.pool, held.rtt_ms
        ))
    }
}

impl LatencyTrace {
    /// The lines explain prints under the step: RTTs, the margin, the
    /// fallback for pools without an RTT, and the sources passed over.
    pub fn text_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(source) = &self.source {
            let rtts: Vec<String> = source
                .rtts
                .iter()
                .map(|rtt| {
                    let mut text = format!("{} {:.1} ms", rtt.pool, rtt.rtt_ms);
                    match (rtt.samples, rtt.age_seconds) {
                        (Some(samples), Some(age)) => {
                            let _ = write!(
                                text,
                                " ({samples} sample{}, {age} s old)",
                                if samples == 1 { "" } else { "s" }
                            );
                        }
                        (None, Some(age)) => {
                            let _ = write!(text, " ({age} s old)");
                        }
                        _ => {}
                    }
                    text
                })
                .collect();
            lines.push(rtts.join(", "));
        }
        if let Some(margin) = &self.margin {
            lines.push(margin.clone());
        }
        // Without a deciding source the step's own text says how the
        // order was kept; with one, say what happened to the rest.
        if let (Some(fallback), Some(_)) = (self.fallback, &self.source) {
            let how = match fallback {
                Fallback::Distance => "by distance",
                Fallback::ConfiguredOrder => "in configured order (no coordinates)",
            };
            lines.push(format!(
                "no RTT there for {}: after the others, {how}",
                self.without_rtt.join(", ")
            ));
        }
        if !self.skipped.is_empty() {
            let mut text = self.skipped.join("; ");
            if let Some(source) = &self.source {
                let _ = write!(text, "; so {} decides", source.label);
            }
            lines.push(text);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::steering::LatencyConfig;
    use crate::latency::engine::{PostedBatch, PostedSample};
    use crate::latency::matrix::Selector;

    const NOW: u64 = 1_700_000_000;

    fn sites() -> Vec<String> {
        vec!["fra".to_owned(), "iad".to_owned(), "sin".to_owned()]
    }

    fn prefix_row(
        address: &str,
        prefix_len: u8,
        site: usize,
        rtt_ms: f64,
        line: usize,
    ) -> MatrixRow {
        MatrixRow {
            selector: Selector::Prefix {
                address: address.parse().expect("address"),
                prefix_len,
            },
            site,
            rtt_ms,
            line,
        }
    }

    fn engine_with(samples: &[(&str, &str, f64)]) -> LatencyEngine {
        let engine = LatencyEngine::new(&LatencyConfig::default(), sites());
        let batch = PostedBatch {
            samples: samples
                .iter()
                .map(|(client, site, rtt_ms)| PostedSample {
                    client: (*client).to_owned(),
                    site: (*site).to_owned(),
                    rtt_ms: *rtt_ms,
                    timestamp: Some(NOW - 5),
                })
                .collect(),
        };
        let report = engine.ingest(&batch, NOW);
        assert_eq!(report.accepted, samples.len(), "{report:?}");
        engine
    }

    const FRA: Candidate<'static> = Candidate {
        pool: "web-fra",
        site: 0,
    };
    const IAD: Candidate<'static> = Candidate {
        pool: "web-iad",
        site: 1,
    };

    fn output(pools: &[&str]) -> Vec<String> {
        pools.iter().map(|pool| (*pool).to_owned()).collect()
    }

    #[test]
    fn a_measured_network_shadows_the_covering_matrix_prefix_and_carries_samples_and_age() {
        let matrix = LatencyMatrix::from_rows(vec![
            prefix_row("100.64.0.0", 16, 0, 20.0, 2),
            prefix_row("100.64.0.0", 16, 1, 90.0, 3),
        ]);
        let engine = engine_with(&[("100.64.7.0/24", "iad", 10.0), ("100.64.7.9", "iad", 10.0)]);
        let client = "100.64.7.9".parse().expect("client");
        let latency = client_sources(
            &matrix,
            Some(&engine),
            &sites(),
            client,
            &Location::default(),
            NOW,
        );
        // The compile reads only the most specific prefix source.
        let keys: Vec<String> = latency
            .input()
            .into_iter()
            .map(|(key, _)| key.to_string())
            .collect();
        assert_eq!(keys, ["network 100.64.7.0/24"]);
        let trace = latency.trace_step(
            &[IAD, FRA],
            &output(&["web-iad", "web-fra"]),
            &Choices::default(),
            (10.0, 5.0),
            false,
        );
        let source = trace.source.expect("a source decided");
        assert_eq!(source.label, "network 100.64.7.0/24 (measured)");
        assert_eq!(
            source.rtts,
            [CandidateRtt {
                pool: "web-iad".to_owned(),
                site: "iad".to_owned(),
                rtt_ms: 10.0,
                samples: Some(2),
                age_seconds: Some(5),
                line: None,
            }]
        );
        assert_eq!(trace.without_rtt, ["web-fra"]);
        assert_eq!(trace.fallback, Some(Fallback::ConfiguredOrder));
        assert!(trace.skipped.is_empty(), "{:?}", trace.skipped);

        // A candidate set the measurement says nothing about falls past
        // it, and past the matrix prefix it shadows, to this node.
        engine.record_node("sin", 150.0, NOW);
        let latency = client_sources(
            &matrix,
            Some(&engine),
            &sites(),
            client,
            &Location::default(),
            NOW,
        );
        let trace = latency.trace_step(
            &[FRA],
            &output(&["web-fra"]),
            &Choices::default(),
            (10.0, 5.0),
            false,
        );
        assert_eq!(trace.source, None);
        assert_eq!(
            trace.skipped,
            [
                "network 100.64.7.0/24 (measured): no RTT for web-fra",
                "matrix 100.64.0.0/16 (line 2) is not read: the measured network is more specific",
                "no ASN known for the client",
                "no country known for the client",
                "this node: no RTT for web-fra",
            ]
        );
    }

    #[test]
    fn a_longer_matrix_prefix_shadows_the_measured_network() {
        let matrix = LatencyMatrix::from_rows(vec![prefix_row("100.64.7.0", 28, 0, 20.0, 7)]);
        let engine = engine_with(&[("100.64.7.0/24", "iad", 10.0)]);
        let latency = client_sources(
            &matrix,
            Some(&engine),
            &sites(),
            "100.64.7.9".parse().expect("client"),
            &Location::default(),
            NOW,
        );
        let keys: Vec<String> = latency
            .input()
            .into_iter()
            .map(|(key, _)| key.to_string())
            .collect();
        assert_eq!(keys, ["matrix 100.64.7.0/28"]);
        let trace = latency.trace_step(
            &[IAD],
            &output(&["web-iad"]),
            &Choices::default(),
            (10.0, 5.0),
            false,
        );
        assert_eq!(
            trace.skipped[..2],
            [
                "matrix 100.64.7.0/28 (line 7): no RTT for web-iad",
                "network 100.64.7.0/24 (measured) is not read: matrix 100.64.7.0/28 (line 7) is \
                 more specific",
            ]
        );
    }

    #[test]
    fn the_margin_says_whether_the_previous_winner_held_or_was_replaced() {
        let matrix = LatencyMatrix::from_rows(vec![
            prefix_row("10.0.0.0", 8, 0, 30.0, 2),
            prefix_row("10.0.0.0", 8, 1, 28.0, 3),
        ]);
        let latency = client_sources(
            &matrix,
            None,
            &sites(),
            "10.1.2.3".parse().expect("client"),
            &Location::default(),
            NOW,
        );
        let previous_fra = Choices::from_iter([(
            SourceKey::MatrixPrefix("10.0.0.0".parse().expect("address"), 8),
            0,
        )]);
        let held = latency.trace_step(
            &[IAD, FRA],
            &output(&["web-fra", "web-iad"]),
            &previous_fra,
            (10.0, 5.0),
            false,
        );
        assert_eq!(
            held.margin.as_deref(),
            Some(
                "web-fra stays first: it was chosen before, and web-iad (28.0 ms) is not faster \
                 by 10% and 5 ms"
            )
        );
        let replaced = latency.trace_step(
            &[IAD, FRA],
            &output(&["web-iad", "web-fra"]),
            &previous_fra,
            (1.0, 1.0),
            false,
        );
        assert_eq!(
            replaced.margin.as_deref(),
            Some(
                "web-iad replaces web-fra (30.0 ms), chosen before: faster by at least 1% and 1 ms"
            )
        );
        let unchanged = latency.trace_step(
            &[IAD, FRA],
            &output(&["web-iad", "web-fra"]),
            &Choices::from_iter([(
                SourceKey::MatrixPrefix("10.0.0.0".parse().expect("address"), 8),
                1,
            )]),
            (10.0, 5.0),
            false,
        );
        assert_eq!(unchanged.margin, None);
    }
}
