//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Rendered on demand from the summed worker counters and a status snapshot
//! ([`render`]), then the steered answers by decision with their labels
//! from the decision registry ([`render_decisions`]); scraping never
//! touches the data plane beyond relaxed atomic loads.

use std::fmt::Write;

use crate::control::StatusSnapshot;
use crate::health::observed::Observed;
use crate::metrics::{
    DecisionKey, DecisionSlot, DecisionTotals, QueryTotals, ZoneSlot, ZoneTotals,
};
use crate::probe::monitor::{FAILOVER_BUCKETS, Histogram, LATENCY_BUCKETS, TargetStatus};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric, with `# HELP` and `# TYPE` lines.
pub fn render(totals: &QueryTotals, status: &StatusSnapshot) -> String {
    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        "steer_queries_total",
        "counter",
        "DNS responses sent, by transport and response code.",
    );
    for (transport_index, transport) in QueryTotals::TRANSPORT_NAMES.iter().enumerate() {
        for (slot, count) in totals.answered[transport_index].iter().enumerate() {
            let rcode = QueryTotals::rcode_name(slot);
            line(
                &mut out,
                &format!("steer_queries_total{{transport=\"{transport}\",rcode=\"{rcode}\"}}"),
                *count,
            );
        }
    }
    header(
        &mut out,
        "steer_dropped_total",
        "counter",
        "Packets dropped without a response (no readable header, a response, or over the rate limit).",
    );
    for (transport_index, transport) in QueryTotals::TRANSPORT_NAMES.iter().enumerate() {
        line(
            &mut out,
            &format!("steer_dropped_total{{transport=\"{transport}\"}}"),
            totals.dropped[transport_index],
        );
    }
    header(
        &mut out,
        "steer_query_log_total",
        "counter",
        "Query log entries written, and dropped (the writer was behind or the file could not be written).",
    );
    for (result, count) in ["written", "dropped"].iter().zip(totals.query_log) {
        line(
            &mut out,
            &format!("steer_query_log_total{{result=\"{result}\"}}"),
            count,
        );
    }
    if let Some(connected) = totals.query_log_connected {
        header(
            &mut out,
            "steer_query_log_connected",
            "gauge",
            "1 while the dnstap collector (query_log.socket) is connected, 0 while it is not.",
        );
        line(&mut out, "steer_query_log_connected", u64::from(connected));
    }
    header(
        &mut out,
        "steer_transfers_out_total",
        "counter",
        "Zone transfers (AXFR, IXFR) asked of this node, by zone (\"\" for a zone not served), what was sent (zone, changes, current or none) and response code.",
    );
    for (zone, sent, rcode, count) in &totals.transfers_out {
        line(
            &mut out,
            &format!(
                "steer_transfers_out_total{{zone=\"{}\",sent=\"{sent}\",rcode=\"{}\"}}",
                label_value(zone),
                crate::dns::rcode_text(*rcode)
            ),
            *count,
        );
    }
    header(
        &mut out,
        "steer_tcp_refused_total",
        "counter",
        "TCP connections closed as soon as accepted: limit (server.tcp_max_connections open) or per_client_limit (server.tcp_max_connections_per_client open from that client).",
    );
    for (reason, count) in crate::metrics::TcpRefusal::ALL
        .iter()
        .zip(totals.tcp_refused)
    {
        line(
            &mut out,
            &format!("steer_tcp_refused_total{{reason=\"{}\"}}", reason.name()),
            count,
        );
    }
    header(
        &mut out,
        "steer_tls_handshakes_total",
        "counter",
        "DNS over TLS handshakes: completed, or failed (a bad handshake, or none within server.tcp_idle_timeout).",
    );
    for (result, count) in ["completed", "failed"].iter().zip(totals.tls_handshakes) {
        line(
            &mut out,
            &format!("steer_tls_handshakes_total{{result=\"{result}\"}}"),
            count,
        );
    }
    header(
        &mut out,
        "steer_proxy_refused_total",
        "counter",
        "UDP queries dropped and TCP connections closed from a server.proxy_protocol_from source, for a PROXY v2 header that was missing or malformed.",
    );
    for (transport, reasons) in QueryTotals::TRANSPORT_NAMES
        .iter()
        .zip(totals.proxy_refused)
    {
        for (reason, count) in crate::dns::proxy::Refusal::ALL.iter().zip(reasons) {
            line(
                &mut out,
                &format!(
                    "steer_proxy_refused_total{{transport=\"{transport}\",reason=\"{}\"}}",
                    reason.name()
                ),
                count,
            );
        }
    }
    header(
        &mut out,
        "steer_rate_limited_total",
        "counter",
        "UDP responses over [rate_limit], by what became of them: dropped, slipped (sent truncated), exempt or dry_run (sent whole).",
    );
    for (action, count) in crate::dns::OverLimit::ALL.iter().zip(totals.over_limit) {
        line(
            &mut out,
            &format!("steer_rate_limited_total{{action=\"{}\"}}", action.name()),
            count,
        );
    }
    header(
        &mut out,
        "steer_reloads_total",
        "counter",
        "Reloads since start; a failed reload keeps the previous table.",
    );
    line(
        &mut out,
        "steer_reloads_total{result=\"ok\"}",
        status.reloads.ok,
    );
    line(
        &mut out,
        "steer_reloads_total{result=\"failed\"}",
        status.reloads.failed,
    );
    header(
        &mut out,
        "steer_table_generation",
        "gauge",
        "Generation of the routing table being served.",
    );
    line(&mut out, "steer_table_generation", status.generation);
    header(
        &mut out,
        "steer_compile_seconds",
        "gauge",
        "Time the last successful build took (config, zones and compile).",
    );
    line(
        &mut out,
        "steer_compile_seconds",
        status.last_compile.seconds,
    );
    header(&mut out, "steer_zones", "gauge", "Zones being served.");
    line(&mut out, "steer_zones", status.zones.len());
    header(
        &mut out,
        "steer_zone_records",
        "gauge",
        "Records over all zones being served.",
    );
    line(
        &mut out,
        "steer_zone_records",
        status.zones.iter().map(|zone| zone.records).sum::<usize>(),
    );
    header(
        &mut out,
        "steer_dnssec_signatures_expire_timestamp_seconds",
        "gauge",
        "When the signatures a signed zone serves expire (Unix time); alert well before.",
    );
    for zone in &status.zones {
        if let Some(signing) = &zone.dnssec {
            line(
                &mut out,
                &format!(
                    "steer_dnssec_signatures_expire_timestamp_seconds{{zone=\"{}\"}}",
                    zone.name
                ),
                signing.expires,
            );
        }
    }
    secondaries(&mut out, status);
    aliases(&mut out, status);
    if !status.updates.is_empty() {
        header(
            &mut out,
            "steer_updates_total",
            "counter",
            "Dynamic updates (RFC 2136) answered since start, by zone and response code.",
        );
        for update in &status.updates {
            line(
                &mut out,
                &format!(
                    "steer_updates_total{{zone=\"{}\",rcode=\"{}\"}}",
                    update.zone, update.rcode
                ),
                update.count,
            );
        }
    }
    header(
        &mut out,
        "steer_endpoint_up",
        "gauge",
        "1 when answers may use the endpoint now; 0 when it is down, forced down or its pool is drained.",
    );
    for report in &status.endpoints {
        let endpoint = &report.endpoint;
        line(
            &mut out,
            &format!(
                "steer_endpoint_up{{pool=\"{}\",address=\"{}\"}}",
                label_value(&endpoint.pool),
                endpoint.address
            ),
            u8::from(endpoint.up),
        );
    }
    probes(&mut out, status);
    latency(&mut out, status);
    active_latency(&mut out, status);
    header(
        &mut out,
        "steer_steered_names",
        "gauge",
        "Steered names and types being served.",
    );
    line(&mut out, "steer_steered_names", status.steered.len());
    out
}

/// Appends the steered answers by decision: one series per registered key
/// (labels from the registry, `series`), its count from `totals`, and the
/// answers of keys beyond the counters' capacity.
pub fn render_decisions(
    out: &mut String,
    series: &[(DecisionKey, DecisionSlot)],
    totals: &DecisionTotals,
) {
    header(
        out,
        "steer_steered_answers_total",
        "counter",
        "Answers to steered names by what the policy decided: the pool answered from (the \
         first of several) and why (policy, fail_open, fallback), or an empty pool with \
         nodata or servfail.",
    );
    for (key, slot) in series {
        line(
            out,
            &format!(
                "steer_steered_answers_total{{name=\"{}\",type=\"{}\",pool=\"{}\",reason=\"{}\"}}",
                label_value(&key.name),
                label_value(&key.record_type),
                label_value(&key.pool),
                key.reason.label()
            ),
            totals.count(*slot),
        );
    }
    header(
        out,
        "steer_steered_answers_overflow_total",
        "counter",
        "Steered answers not in steer_steered_answers_total because every decision counter \
         was taken.",
    );
    line(out, "steer_steered_answers_overflow_total", totals.overflow);
}

/// Responses per zone, from the registry's zones and the summed counters.
pub fn render_zones(out: &mut String, zones: &[(String, ZoneSlot)], totals: &ZoneTotals) {
    header(
        out,
        "steer_zone_responses_total",
        "counter",
        "Responses from each zone (steered names included), by response code: NOERROR, \
         NXDOMAIN or other. Zones a reload removed keep their last count.",
    );
    for (zone, slot) in zones {
        for (index, count) in totals.count(*slot).iter().enumerate() {
            line(
                out,
                &format!(
                    "steer_zone_responses_total{{zone=\"{}\",rcode=\"{}\"}}",
                    label_value(zone),
                    ZoneTotals::rcode_name(index)
                ),
                *count,
            );
        }
    }
    header(
        out,
        "steer_zone_responses_overflow_total",
        "counter",
        "Responses not in steer_zone_responses_total because every zone counter was taken.",
    );
    line(
        out,
        "steer_zone_responses_overflow_total",
        totals.overflow.iter().sum::<u64>(),
    );
}

/// The secondary zones: serial kept, expiry, transfers and NOTIFY; and
/// the NOTIFY sent to this node's own secondaries.
fn secondaries(out: &mut String, status: &StatusSnapshot) {
    if !status.notify_out.is_empty() {
        header(
            out,
            "steer_notify_out_total",
            "counter",
            "NOTIFY sent to a secondary ([transfer] notify) since start, by result (acknowledged or failed after three tries).",
        );
        for sent in &status.notify_out {
            for (result, count) in [
                ("acknowledged", sent.acknowledged_total),
                ("failed", sent.failed_total),
            ] {
                line(
                    out,
                    &format!(
                        "steer_notify_out_total{{zone=\"{}\",secondary=\"{}\",result=\"{result}\"}}",
                        sent.zone, sent.secondary
                    ),
                    count,
                );
            }
        }
    }
    if status.secondary.is_empty() {
        return;
    }
    header(
        out,
        "steer_secondary_serial",
        "gauge",
        "SOA serial of the copy of a secondary zone kept and served.",
    );
    for zone in &status.secondary {
        if let Some(serial) = zone.serial {
            line(
                out,
                &format!("steer_secondary_serial{{zone=\"{}\"}}", zone.zone),
                serial,
            );
        }
    }
    header(
        out,
        "steer_secondary_expire_timestamp_seconds",
        "gauge",
        "When the copy of a secondary zone stops being served unless a primary confirms it (Unix time); alert well before.",
    );
    for zone in &status.secondary {
        if let Some(expires) = zone.expires_at {
            line(
                out,
                &format!(
                    "steer_secondary_expire_timestamp_seconds{{zone=\"{}\"}}",
                    zone.zone
                ),
                expires,
            );
        }
    }
    header(
        out,
        "steer_secondary_transfers_total",
        "counter",
        "Zone transfers since start, by result (failed: no primary could be asked or transferred from).",
    );
    for zone in &status.secondary {
        for (result, count) in [("ok", zone.transfers), ("failed", zone.transfer_failures)] {
            line(
                out,
                &format!(
                    "steer_secondary_transfers_total{{zone=\"{}\",result=\"{result}\"}}",
                    zone.zone
                ),
                count,
            );
        }
    }
    header(
        out,
        "steer_secondary_notifies_total",
        "counter",
        "NOTIFY messages accepted from a zone's primaries since start.",
    );
    for zone in &status.secondary {
        line(
            out,
            &format!("steer_secondary_notifies_total{{zone=\"{}\"}}", zone.zone),
            zone.notifies,
        );
    }
}

/// Alias pools' targets: whether addresses are known, and resolutions.
fn aliases(out: &mut String, status: &StatusSnapshot) {
    if status.aliases.is_empty() {
        return;
    }
    header(
        out,
        "steer_alias_resolved",
        "gauge",
        "1 while an alias pool's target has addresses answered within resolver.max_stale; 0 leaves its pool empty.",
    );
    for target in &status.aliases {
        line(
            out,
            &format!("steer_alias_resolved{{target=\"{}\"}}", target.target),
            u64::from(target.resolved),
        );
    }
    header(
        out,
        "steer_alias_resolutions_total",
        "counter",
        "Resolutions of an alias pool's target since start, by result (failed: no resolver answered).",
    );
    for target in &status.aliases {
        for (result, count) in [
            ("answered", target.answers_total),
            ("failed", target.failures_total),
        ] {
            line(
                out,
                &format!(
                    "steer_alias_resolutions_total{{target=\"{}\",result=\"{result}\"}}",
                    target.target
                ),
                count,
            );
        }
    }
}

/// Per probe target: state, latency, changes and failover times.
fn probes(out: &mut String, status: &StatusSnapshot) {
    let labels = |target: &TargetStatus| {
        format!(
            "probe=\"{}\",target=\"{}\"",
            label_value(&target.probe),
            target.target
        )
    };
    header(
        out,
        "steer_probe_up",
        "gauge",
        "1 when the target's probe says up (or has no result yet), 0 when down.",
    );
    for target in &status.probes {
        let up = u8::from(target.observed != Observed::Down);
        line(out, &format!("steer_probe_up{{{}}}", labels(target)), up);
    }
    header(
        out,
        "steer_probe_duration_seconds",
        "histogram",
        "Time each probe took, failed ones included.",
    );
    for target in &status.probes {
        histogram(
            out,
            "steer_probe_duration_seconds",
            &labels(target),
            &LATENCY_BUCKETS,
            &target.latency,
        );
    }
    header(
        out,
        "steer_probe_state_changes_total",
        "counter",
        "Observed state changes of the target since it was added.",
    );
    for target in &status.probes {
        line(
            out,
            &format!("steer_probe_state_changes_total{{{}}}", labels(target)),
            target.changes,
        );
    }
    header(
        out,
        "steer_probe_last_failover_seconds",
        "gauge",
        "For the target's last change: time from the first probe that disagreed to the answers changing.",
    );
    for target in &status.probes {
        if let Some(seconds) = target.last_failover_seconds {
            line(
                out,
                &format!("steer_probe_last_failover_seconds{{{}}}", labels(target)),
                seconds,
            );
        }
    }
    header(
        out,
        "steer_health_verdict_up",
        "gauge",
        "1 when answers may use the target: its probes, or with [peers] the vote of this \
         node and its peers, say up (or have no result yet); 0 when down.",
    );
    for target in &status.probes {
        let up = u8::from(target.verdict != Observed::Down);
        line(
            out,
            &format!("steer_health_verdict_up{{{}}}", labels(target)),
            up,
        );
    }
    peers(out, status);
    header(
        out,
        "steer_failover_seconds",
        "histogram",
        "Time from an endpoint's first failed probe to the answers leaving it out.",
    );
    histogram(
        out,
        "steer_failover_seconds",
        "",
        &FAILOVER_BUCKETS,
        &status.failover,
    );
}

/// The peers of `[peers]`: whether each votes, and its fetches.
fn peers(out: &mut String, status: &StatusSnapshot) {
    let peers = &status.health.peers;
    if peers.is_empty() {
        return;
    }
    header(
        out,
        "steer_health_peer_fresh",
        "gauge",
        "1 when the peer's health view is recent enough to vote, 0 when it is stale.",
    );
    for peer in peers {
        let fresh = u8::from(peer.fresh);
        let name = format!(
            "steer_health_peer_fresh{{peer=\"{}\"}}",
            label_value(&peer.url)
        );
        line(out, &name, fresh);
    }
    header(
        out,
        "steer_health_peer_fetches_total",
        "counter",
        "Fetches of the peer's health view, by result.",
    );
    peer_results(
        out,
        "steer_health_peer_fetches_total",
        peers.iter().map(|peer| {
            (
                peer.url.as_str(),
                [("ok", peer.fetches), ("failed", peer.failures)],
            )
        }),
    );
}

/// One line per peer and result of counter `name`: `name{peer="URL",result="R"} N`.
fn peer_results<'a, const RESULTS: usize>(
    out: &mut String,
    name: &str,
    rows: impl Iterator<Item = (&'a str, [(&'static str, u64); RESULTS])>,
) {
    for (url, counts) in rows {
        for (result, count) in counts {
            let series = format!(
                "{name}{{peer=\"{}\",result=\"{result}\"}}",
                label_value(url)
            );
            line(out, &series, count);
        }
    }
}

/// The latency model: samples, size, recompiles.
fn latency(out: &mut String, status: &StatusSnapshot) {
    let latency = &status.latency;
    header(
        out,
        "steer_latency_samples_total",
        "counter",
        "Latency samples posted, by result (accepted, or the reason they were rejected).",
    );
    line(
        out,
        "steer_latency_samples_total{result=\"accepted\"}",
        latency.samples_accepted,
    );
    for (reason, count) in &latency.samples_rejected {
        line(
            out,
            &format!("steer_latency_samples_total{{result=\"{reason}\"}}"),
            count,
        );
    }
    header(
        out,
        "steer_latency_prefixes",
        "gauge",
        "Client networks (/24, /48) the latency model tracks.",
    );
    line(out, "steer_latency_prefixes", latency.prefixes);
    header(
        out,
        "steer_latency_model_bytes",
        "gauge",
        "Estimated memory of the latency model.",
    );
    line(out, "steer_latency_model_bytes", latency.memory_bytes);
    header(
        out,
        "steer_latency_compiles_total",
        "counter",
        "Recompiles of the table with new latency data.",
    );
    line(out, "steer_latency_compiles_total", latency.compiles.count);
    header(
        out,
        "steer_latency_compile_seconds",
        "gauge",
        "Time the last latency recompile took.",
    );
    line(
        out,
        "steer_latency_compile_seconds",
        latency.compiles.last_seconds,
    );
    header(
        out,
        "steer_latency_changed_choices_total",
        "counter",
        "Latency sources (client networks, matrix rows) whose chosen site changed at a recompile.",
    );
    line(
        out,
        "steer_latency_changed_choices_total",
        latency.compiles.changed_total,
    );
    header(
        out,
        "steer_latency_saves_total",
        "counter",
        "Writes of the latency model to its state file, by result.",
    );
    line(
        out,
        "steer_latency_saves_total{result=\"ok\"}",
        latency.saves.ok,
    );
    line(
        out,
        "steer_latency_saves_total{result=\"failed\"}",
        latency.saves.failed,
    );
}

/// This node's own measurements: connects per site and result, and the RTT
/// they give.
fn active_latency(out: &mut String, status: &StatusSnapshot) {
    let latency = &status.latency;
    header(
        out,
        "steer_latency_active_total",
        "counter",
        "TCP connects from this node to a site's latency_target, by result (failed: refused or \
         timed out).",
    );
    for measured in &latency.active {
        let site = label_value(&measured.site);
        line(
            out,
            &format!("steer_latency_active_total{{site=\"{site}\",result=\"ok\"}}"),
            measured.ok,
        );
        line(
            out,
            &format!("steer_latency_active_total{{site=\"{site}\",result=\"failed\"}}"),
            measured.failed,
        );
    }
    header(
        out,
        "steer_latency_node_rtt_ms",
        "gauge",
        "This node's RTT to the site (moving average of connect times), while fresh.",
    );
    for node in &latency.node {
        line(
            out,
            &format!(
                "steer_latency_node_rtt_ms{{site=\"{}\"}}",
                label_value(&node.site)
            ),
            node.rtt_ms,
        );
    }
    header(
        out,
        "steer_latency_journal_samples",
        "gauge",
        "Samples posted here that the journal holds for the peers (only with [peers]).",
    );
    line(out, "steer_latency_journal_samples", latency.journal);
    if latency.peers.is_empty() {
        return;
    }
    header(
        out,
        "steer_latency_peer_samples_total",
        "counter",
        "Samples read from the peer's latency journal, by result (missed: gone from its journal \
         before this node asked).",
    );
    peer_results(
        out,
        "steer_latency_peer_samples_total",
        latency.peers.iter().map(|peer| {
            let counts = [
                ("accepted", peer.accepted),
                ("rejected", peer.rejected),
                ("missed", peer.missed),
            ];
            (peer.url.as_str(), counts)
        }),
    );
    header(
        out,
        "steer_latency_peer_fetches_total",
        "counter",
        "Fetches of the peer's latency journal, by result.",
    );
    peer_results(
        out,
        "steer_latency_peer_fetches_total",
        latency.peers.iter().map(|peer| {
            (
                peer.url.as_str(),
                [("ok", peer.fetches), ("failed", peer.failures)],
            )
        }),
    );
}

/// The `_bucket`, `_sum` and `_count` lines of one histogram series.
fn histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], values: &Histogram) {
    let separator = if labels.is_empty() { "" } else { "," };
    for (bound, count) in bounds.iter().zip(&values.buckets) {
        line(
            out,
            &format!("{name}_bucket{{{labels}{separator}le=\"{bound}\"}}"),
            count,
        );
    }
    line(
        out,
        &format!("{name}_bucket{{{labels}{separator}le=\"+Inf\"}}"),
        values.count,
    );
    let braces = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("{{{text}}}")
        }
    };
    line(out, &format!("{name}_sum{}", braces(labels)), values.sum);
    line(
        out,
        &format!("{name}_count{}", braces(labels)),
        values.count,
    );
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn label_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn line(out: &mut String, series: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{series} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::EndpointReport;
    use crate::control::{CompileStatus, Listeners, ReloadCounts, SteeredStatus, ZoneStatus};
    use crate::health::{EndpointStatus, Forced};

    #[test]
    fn renders_every_series() {
        let mut totals = QueryTotals::default();
        totals.answered[0][0] = 7;
        totals.answered[1][3] = 2;
        totals.answered[0][7] = 1;
        totals.dropped[1] = 4;
        totals.over_limit = [5, 6, 0, 1];
        totals.tcp_refused = [0, 3];
        totals.query_log = [9, 1];
        totals.query_log_connected = Some(true);
        let status = StatusSnapshot {
            generation: 3,
            zones: vec![
                ZoneStatus {
                    name: "a.test.".into(),
                    serial: 1,
                    records: 5,
                    file: "zones/a.test.zone".into(),
                    dnssec: Some(crate::control::ZoneSigningStatus {
                        expires: 1_800_000_000,
                        resign_at: 1_799_000_000,
                        keys: Vec::new(),
                        signatures: 10,
                        reused: 0,
                    }),
                },
                ZoneStatus {
                    name: "b.test.".into(),
                    serial: 2,
                    records: 6,
                    file: "zones/b.test.zone".into(),
                    dnssec: None,
                },
            ],
            last_compile: CompileStatus {
                at: 1.0,
                seconds: 0.25,
            },
            last_reload_error: None,
            reloads: ReloadCounts { ok: 2, failed: 1 },
            listen: Listeners::default(),
            endpoints: [
                EndpointStatus {
                    pool: "web-fra".into(),
                    address: "192.0.2.10".parse().expect("address"),
                    up: true,
                    drained: false,
                    forced: None,
                    admin: "auto",
                    probe: None,
                    target: None,
                    observed_down: false,
                },
                EndpointStatus {
                    pool: "web-\"iad\"".into(),
                    address: "2001:db8::10".parse().expect("address"),
                    up: false,
                    drained: false,
                    forced: Some(Forced::Down),
                    admin: "forced_down",
                    probe: None,
                    target: None,
                    observed_down: false,
                },
            ]
            .into_iter()
            .map(|endpoint| EndpointReport {
                endpoint,
                observed: None,
                since: None,
                last_probe: None,
                last_error: None,
                votes: None,
            })
            .collect(),
            probes: vec![TargetStatus {
                probe: "web".into(),
                kind: "http",
                target: "192.0.2.10:80".parse().expect("address"),
                observed: Observed::Down,
                since: 1.0,
                last_probe: None,
                last_error: Some("HTTP 503".into()),
                changes: 2,
                last_failover_seconds: Some(3.25),
                verdict: Observed::Up,
                votes: None,
                latency: Histogram {
                    buckets: vec![0, 1, 2, 2, 2, 2, 2, 2, 2, 2],
                    count: 2,
                    sum: 0.0035,
                },
            }],
            failover: Histogram {
                buckets: vec![0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
                count: 1,
                sum: 3.25,
            },
            latency: crate::control::LatencyStatus {
                samples_accepted: 12,
                samples_rejected: [("bad_rtt", 2)].into_iter().collect(),
                prefixes: 3,
                memory_bytes: 4096,
                compiles: crate::control::LatencyCompiles {
                    count: 4,
                    last_seconds: 0.5,
                    last_changed: 1,
                    changed_total: 6,
                },
                active: vec![
                    crate::latency::active::SiteMeasurements {
                        site: "fra".into(),
                        ok: 9,
                        failed: 0,
                    },
                    crate::latency::active::SiteMeasurements {
                        site: "iad".into(),
                        ok: 2,
                        failed: 5,
                    },
                ],
                node: vec![crate::latency::active::NodeRtt {
                    site: "fra".into(),
                    rtt_ms: 1.5,
                    age_seconds: 3,
                }],
                saves: crate::control::LatencySaves {
                    ok: 5,
                    failed: 1,
                    ..crate::control::LatencySaves::default()
                },
                journal: 42,
                peers: vec![crate::latency::sharing::FeedStatus {
                    url: "http://10.0.0.2:8053".into(),
                    accepted: 30,
                    rejected: 2,
                    missed: 1,
                    fetches: 7,
                    failures: 3,
                    last_fetch: Some(1.0),
                    last_error: None,
                    ignored: None,
                }],
            },
            steered: vec![SteeredStatus {
                name: "www.example.test.".into(),
                record_type: "A".into(),
                pools: vec!["web-fra".into()],
            }],
            rate_limit: None,
            query_log: None,
            health: crate::control::HealthStatus {
                node: "fra-1".into(),
                quorum: Some("majority".into()),
                peers: vec![crate::probe::monitor::PeerStatus {
                    url: "http://10.0.0.2:8053".into(),
                    node: Some("iad-1".into()),
                    fresh: true,
                    ignored: None,
                    last_fetch: Some(1.0),
                    last_error: None,
                    targets: 1,
                    fetches: 8,
                    failures: 1,
                }],
            },
            secondary: vec![crate::transfer::SecondaryStatus {
                zone: "b.test.".into(),
                state: "current",
                serial: Some(42),
                expires_at: Some(1_800_000_000),
                transfers: 3,
                transfer_failures: 1,
                notifies: 5,
                ..crate::transfer::SecondaryStatus::default()
            }],
            notify_out: vec![crate::transfer::NotifyOutStatus {
                zone: "a.test.".into(),
                secondary: "192.0.2.8:53".into(),
                serial: 7,
                at: 1,
                acknowledged: false,
                error: Some("no answer".into()),
                acknowledged_total: 2,
                failed_total: 1,
            }],
            aliases: vec![crate::alias::TargetStatus {
                target: "lb.example.net.".into(),
                addresses: vec!["192.0.2.80".into()],
                resolved: true,
                answered_at: Some(1.0),
                ttl: 60,
                server: Some("127.0.0.53:53".into()),
                next_in_seconds: 30,
                failures: 0,
                last_error: None,
                answers_total: 4,
                failures_total: 2,
            }],
            updates: vec![crate::control::UpdateCount {
                zone: "a.test.".into(),
                rcode: "REFUSED".into(),
                count: 3,
            }],
        };
        let text = render(&totals, &status);
        for expected in [
            "# HELP steer_queries_total ",
            "# TYPE steer_queries_total counter\n",
            "steer_queries_total{transport=\"udp\",rcode=\"NOERROR\"} 7\n",
            "steer_queries_total{transport=\"tcp\",rcode=\"NXDOMAIN\"} 2\n",
            "steer_queries_total{transport=\"udp\",rcode=\"other\"} 1\n",
            "steer_queries_total{transport=\"tcp\",rcode=\"BADVERS\"} 0\n",
            "steer_dropped_total{transport=\"udp\"} 0\n",
            "steer_dropped_total{transport=\"tcp\"} 4\n",
            "steer_query_log_total{result=\"written\"} 9\n",
            "steer_query_log_total{result=\"dropped\"} 1\n",
            "# TYPE steer_query_log_connected gauge\nsteer_query_log_connected 1\n",
            "steer_tcp_refused_total{reason=\"limit\"} 0\n",
            "steer_tcp_refused_total{reason=\"per_client_limit\"} 3\n",
            "# TYPE steer_rate_limited_total counter\n",
            "steer_rate_limited_total{action=\"dropped\"} 5\n",
            "steer_rate_limited_total{action=\"slipped\"} 6\n",
            "steer_rate_limited_total{action=\"exempt\"} 0\n",
            "steer_rate_limited_total{action=\"dry_run\"} 1\n",
            "steer_reloads_total{result=\"ok\"} 2\n",
            "steer_reloads_total{result=\"failed\"} 1\n",
            "# TYPE steer_table_generation gauge\n",
            "steer_table_generation 3\n",
            "steer_compile_seconds 0.25\n",
            "steer_zones 2\n",
            "steer_zone_records 11\n",
            "steer_secondary_serial{zone=\"b.test.\"} 42\n",
            "steer_secondary_expire_timestamp_seconds{zone=\"b.test.\"} 1800000000\n",
            "steer_secondary_transfers_total{zone=\"b.test.\",result=\"ok\"} 3\n",
            "steer_secondary_transfers_total{zone=\"b.test.\",result=\"failed\"} 1\n",
            "# TYPE steer_secondary_notifies_total counter\n",
            "steer_secondary_notifies_total{zone=\"b.test.\"} 5\n",
            "steer_updates_total{zone=\"a.test.\",rcode=\"REFUSED\"} 3\n",
            "# TYPE steer_alias_resolved gauge\n",
            "steer_alias_resolved{target=\"lb.example.net.\"} 1\n",
            "steer_alias_resolutions_total{target=\"lb.example.net.\",result=\"answered\"} 4\n",
            "steer_alias_resolutions_total{target=\"lb.example.net.\",result=\"failed\"} 2\n",
            "steer_notify_out_total{zone=\"a.test.\",secondary=\"192.0.2.8:53\",result=\"acknowledged\"} 2\n",
            "steer_notify_out_total{zone=\"a.test.\",secondary=\"192.0.2.8:53\",result=\"failed\"} 1\n",
            "# TYPE steer_endpoint_up gauge\n",
            "steer_endpoint_up{pool=\"web-fra\",address=\"192.0.2.10\"} 1\n",
            "steer_endpoint_up{pool=\"web-\\\"iad\\\"\",address=\"2001:db8::10\"} 0\n",
            "steer_probe_up{probe=\"web\",target=\"192.0.2.10:80\"} 0\n",
            "# TYPE steer_probe_duration_seconds histogram\n",
            "steer_probe_duration_seconds_bucket{probe=\"web\",target=\"192.0.2.10:80\",le=\"0.002\"} 1\n",
            "steer_probe_duration_seconds_bucket{probe=\"web\",target=\"192.0.2.10:80\",le=\"+Inf\"} 2\n",
            "steer_probe_duration_seconds_count{probe=\"web\",target=\"192.0.2.10:80\"} 2\n",
            "steer_probe_state_changes_total{probe=\"web\",target=\"192.0.2.10:80\"} 2\n",
            "steer_probe_last_failover_seconds{probe=\"web\",target=\"192.0.2.10:80\"} 3.25\n",
            // Down here, up by the vote of the peers.
            "steer_health_verdict_up{probe=\"web\",target=\"192.0.2.10:80\"} 1\n",
            "steer_health_peer_fresh{peer=\"http://10.0.0.2:8053\"} 1\n",
            "steer_health_peer_fetches_total{peer=\"http://10.0.0.2:8053\",result=\"ok\"} 8\n",
            "steer_health_peer_fetches_total{peer=\"http://10.0.0.2:8053\",result=\"failed\"} 1\n",
            "steer_failover_seconds_bucket{le=\"5\"} 1\n",
            "steer_failover_seconds_sum 3.25\n",
            "steer_failover_seconds_count 1\n",
            "steer_latency_samples_total{result=\"accepted\"} 12\n",
            "steer_latency_samples_total{result=\"bad_rtt\"} 2\n",
            "steer_latency_prefixes 3\n",
            "steer_latency_compiles_total 4\n",
            "steer_latency_changed_choices_total 6\n",
            "# TYPE steer_latency_saves_total counter\n",
            "steer_latency_saves_total{result=\"ok\"} 5\n",
            "steer_latency_saves_total{result=\"failed\"} 1\n",
            "# TYPE steer_latency_active_total counter\n",
            "steer_latency_active_total{site=\"fra\",result=\"ok\"} 9\n",
            "steer_latency_active_total{site=\"fra\",result=\"failed\"} 0\n",
            "steer_latency_active_total{site=\"iad\",result=\"ok\"} 2\n",
            "steer_latency_active_total{site=\"iad\",result=\"failed\"} 5\n",
            "# TYPE steer_latency_node_rtt_ms gauge\n",
            "steer_latency_node_rtt_ms{site=\"fra\"} 1.5\n",
            "steer_latency_journal_samples 42\n",
            "steer_latency_peer_samples_total{peer=\"http://10.0.0.2:8053\",result=\"accepted\"} 30\n",
            "steer_latency_peer_samples_total{peer=\"http://10.0.0.2:8053\",result=\"missed\"} 1\n",
            "steer_latency_peer_fetches_total{peer=\"http://10.0.0.2:8053\",result=\"failed\"} 3\n",
            "# TYPE steer_steered_names gauge\n",
            "steer_steered_names 1\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // 3 transports × 8 rcode slots.
        assert_eq!(
            text.lines()
                .filter(|line| line.starts_with("steer_queries_total{"))
                .count(),
            24
        );
        // A PROXY header comes over UDP and TCP only.
        assert_eq!(
            text.lines()
                .filter(|line| line.starts_with("steer_proxy_refused_total{"))
                .count(),
            4
        );
    }

    #[test]
    fn renders_decisions_with_registry_labels_and_summed_counts() {
        use crate::dns::{Outcome, Transport};
        use crate::metrics::{DecisionRegistry, Metrics, OVERFLOW_SLOT, Reason};

        let registry = DecisionRegistry::default();
        let key = |pool: &str, reason| DecisionKey {
            name: "www.example.test.".into(),
            record_type: "A".into(),
            pool: pool.into(),
            reason,
        };
        let fra = registry.slot(key("fra", Reason::Policy));
        // Registered but never answered: exported as 0.
        registry.slot(key("", Reason::NoData));
        let quoted = registry.slot(key("web-\"iad\"", Reason::Fallback));
        registry.commit();
        let metrics = Metrics::default();
        let workers = [metrics.register_worker(), metrics.register_worker()];
        for (worker, slot) in workers
            .iter()
            .cycle()
            .zip([fra, fra, fra, quoted, OVERFLOW_SLOT])
        {
            let outcome = Outcome::Reply {
                rcode: 0,
                decision: Some(slot),
                zone: None,
            };
            worker.record(Transport::Udp, outcome);
        }
        let series = registry.series();
        let mut text = String::new();
        render_decisions(&mut text, &series, &metrics.decision_totals(series.len()));
        assert_eq!(
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .collect::<Vec<_>>(),
            [
                "steer_steered_answers_total{name=\"www.example.test.\",type=\"A\",pool=\"fra\",reason=\"policy\"} 3",
                "steer_steered_answers_total{name=\"www.example.test.\",type=\"A\",pool=\"\",reason=\"nodata\"} 0",
                "steer_steered_answers_total{name=\"www.example.test.\",type=\"A\",pool=\"web-\\\"iad\\\"\",reason=\"fallback\"} 1",
                "steer_steered_answers_overflow_total 1",
            ]
        );
        assert!(text.contains("# TYPE steer_steered_answers_total counter\n"));
        assert!(text.contains("# TYPE steer_steered_answers_overflow_total counter\n"));
    }
}
