//! `[probes.ID]`, `[health]` and `[latency]` as read → [`Probe`],
//! [`HealthConfig`] and [`LatencyConfig`]: the settings of the control
//! plane's background work.
//!
//! `[peers]` are fetched every 2 s by default and stop voting after three
//! missed fetches; `health.quorum` defaults to a majority of the vantage
//! points that vote, so a node cut off from its peers falls back to its own
//! probes instead of freezing its last answers (with a count as the
//! quorum, such a node cannot reach it and keeps every endpoint up).
//!
//! The defaults follow what operators of load balancers expect: a probe
//! every 10 s with a 2 s timeout, down after 3 failures in a row, up after
//! 2 successes, and any 2xx or 3xx status as up (Route 53's rule). A
//! timeout must leave room inside the interval, so probes of one target
//! never overlap; the jitter is at most half the interval, so a target is
//! never probed twice in a row without a pause.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{
    DnsProbe, HealthConfig, HttpProbe, LatencyConfig, Peers, Probe, ProbeKind, Quorum,
    ResolverConfig,
};
use crate::config::parse_duration;
use crate::config::spec::steering::{
    HealthSpec, LatencySpec, PeersSpec, ProbeSpec, QuorumSpec, ResolverSpec, StatusSpec,
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
/// Shortest interval: faster probing would load the endpoints more than it
/// shortens failover, which the TTL dominates anyway.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval and timeout.
const MAX_INTERVAL: Duration = Duration::from_secs(3_600);
/// Largest rise and fall.
const MAX_THRESHOLD: i64 = 100;
/// Longest debounce: beyond it, failover waits on bookkeeping.
const MAX_DEBOUNCE: Duration = Duration::from_secs(60);

/// Receives `(key path, message)` for every error found.
pub(super) type Report<'a> = &'a mut dyn FnMut(String, String);

/// Checks `[probes.ID]`; `path` is `probes.ID`.
pub(super) fn probe(id: String, path: &str, mut spec: ProbeSpec, report: Report<'_>) -> Probe {
    let (tls, http) = match spec.kind.as_str() {
        "http" => (false, true),
        "https" => (true, true),
        "tcp" | "dns" | "dns-tcp" => (false, false),
        other => {
            report(
                format!("{path}.type"),
                format!(
                    "unknown probe type \"{other}\", expected http, https, tcp, dns or dns-tcp"
                ),
            );
            (false, false)
        }
    };
    let dns = spec.kind.starts_with("dns");
    let port = match spec.port {
        Some(port) => match u16::try_from(port) {
            Ok(port) if port > 0 => port,
            _ => {
                report(
                    format!("{path}.port"),
                    format!("must be between 1 and 65535, not {port}"),
                );
                1
            }
        },
        None if http => {
            if tls {
                443
            } else {
                80
            }
        }
        None if dns => 53,
        None => {
            if spec.kind == "tcp" {
                report(
                    format!("{path}.port"),
                    "a tcp probe needs a port".to_owned(),
                );
            }
            0
        }
    };
    let interval = duration(
        &format!("{path}.interval"),
        spec.interval.take(),
        DEFAULT_INTERVAL,
        MIN_INTERVAL..=MAX_INTERVAL,
        report,
    );
    let timeout = duration(
        &format!("{path}.timeout"),
        spec.timeout.take(),
        DEFAULT_TIMEOUT.min(interval),
        Duration::from_millis(1)..=MAX_INTERVAL,
        report,
    );
    if timeout > interval {
        report(
            format!("{path}.timeout"),
            format!(
                "{} is longer than the interval ({}); probes of one target would overlap",
                humanize(timeout),
                humanize(interval)
            ),
        );
    }
    let jitter = duration(
        &format!("{path}.jitter"),
        spec.jitter.take(),
        interval / 10,
        Duration::ZERO..=MAX_INTERVAL,
        report,
    );
    if jitter > interval / 2 {
        report(
            format!("{path}.jitter"),
            format!(
                "{} is more than half the interval ({})",
                humanize(jitter),
                humanize(interval)
            ),
        );
    }
    let rise = threshold(&format!("{path}.rise"), spec.rise, DEFAULT_RISE, report);
    let fall = threshold(&format!("{path}.fall"), spec.fall, DEFAULT_FALL, report);

    let http_keys = [
        ("method", spec.method.is_some()),
        ("path", spec.path.is_some()),
        ("host", spec.host.is_some()),
        ("headers", spec.headers.is_some()),
        ("expect_status", spec.expect_status.is_some()),
        ("body_contains", spec.body_contains.is_some()),
    ];
    let dns_keys = [
        ("query", spec.query.is_some()),
        ("query_type", spec.query_type.is_some()),
        ("expect_rcode", spec.expect_rcode.is_some()),
        ("expect_answer", spec.expect_answer.is_some()),
        ("recursion_desired", spec.recursion_desired.is_some()),
    ];
    if !dns {
        for (key, set) in dns_keys {
            if set {
                report(
                    format!("{path}.{key}"),
                    "only dns and dns-tcp probes have this setting".to_owned(),
                );
            }
        }
    }
    let kind = if http {
        ProbeKind::Http(http_probe(path, tls, spec, report))
    } else {
        for (key, set) in http_keys {
            if set {
                report(
                    format!("{path}.{key}"),
                    "only http and https probes have this setting".to_owned(),
                );
            }
        }
        if spec.verify_certificate.is_some() {
            report(
                format!("{path}.verify_certificate"),
                "only https probes have this setting".to_owned(),
            );
        }
        if dns {
            ProbeKind::Dns(dns_probe(path, spec, report))
        } else {
            ProbeKind::Tcp
        }
    };
    Probe {
        id,
        kind,
        port,
        interval,
        jitter,
        timeout,
        rise,
        fall,
    }
}

/// Checks a `dns` or `dns-tcp` probe's own settings.
fn dns_probe(path: &str, spec: ProbeSpec, report: Report<'_>) -> DnsProbe {
    let query = match spec.query.as_deref() {
        None => {
            report(
                format!("{path}.query"),
                "a dns probe needs query, the name to ask for".to_owned(),
            );
            hickory_proto::rr::Name::root()
        }
        Some(text) => hickory_proto::rr::Name::from_ascii(text)
            .ok()
            .filter(|_| !text.is_empty())
            .map(|mut name| {
                name.set_fqdn(true);
                name
            })
            .unwrap_or_else(|| {
                report(
                    format!("{path}.query"),
                    format!("\"{text}\" is not a domain name"),
                );
                hickory_proto::rr::Name::root()
            }),
    };
    let query_type = match spec.query_type.as_deref() {
        None => hickory_proto::rr::RecordType::A,
        Some(text) => text
            .to_ascii_uppercase()
            .parse::<hickory_proto::rr::RecordType>()
            .unwrap_or_else(|_| {
                report(
                    format!("{path}.query_type"),
                    format!("\"{text}\" is not a record type"),
                );
                hickory_proto::rr::RecordType::A
            }),
    };
    let expect_rcode = match spec.expect_rcode.as_deref() {
        None => 0,
        Some(text) => crate::metrics::COUNTED_RCODES
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(text))
            .map(|(code, _)| *code)
            .unwrap_or_else(|| {
                let names: Vec<&str> = crate::metrics::COUNTED_RCODES
                    .iter()
                    .map(|(_, name)| *name)
                    .collect();
                report(
                    format!("{path}.expect_rcode"),
                    format!("\"{text}\" is not one of {}", names.join(", ")),
                );
                0
            }),
    };
    let expect_answer = spec.expect_answer.map(|text| {
        if text.trim().is_empty() {
            report(
                format!("{path}.expect_answer"),
                "must not be empty".to_owned(),
            );
        }
        DnsProbe::normalize(&text)
    });
    DnsProbe {
        tcp: spec.kind == "dns-tcp",
        query,
        query_type,
        expect_rcode,
        expect_answer,
        recursion_desired: spec.recursion_desired.unwrap_or(false),
    }
}

fn http_probe(path: &str, tls: bool, spec: ProbeSpec, report: Report<'_>) -> HttpProbe {
    let method = spec.method.unwrap_or_else(|| "GET".to_owned());
    // RFC 9110 method names are tokens; upper case is the convention
    // every server understands.
    if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
        report(
            format!("{path}.method"),
            format!("invalid method \"{method}\": expected upper-case letters, e.g. GET or HEAD"),
        );
    }
    let request_path = spec.path.unwrap_or_else(|| "/".to_owned());
    if !request_path.starts_with('/')
        || request_path
            .bytes()
            .any(|byte| byte.is_ascii_control() || byte == b' ' || byte == b'#')
    {
        report(
            format!("{path}.path"),
            format!(
                "invalid path \"{request_path}\": it starts with \"/\" and has no spaces, \
                 control characters or \"#\""
            ),
        );
    }
    if let Some(host) = &spec.host
        && (host.is_empty()
            || !host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._".contains(&byte)))
    {
        report(
            format!("{path}.host"),
            format!("invalid host \"{host}\": expected a host name such as www.example.com"),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in spec.headers.map(|entries| entries.0).unwrap_or_default() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
        if !token {
            report(
                format!("{path}.headers.{name}"),
                "invalid header name".to_owned(),
            );
        } else if name.eq_ignore_ascii_case("host") {
            report(
                format!("{path}.headers.{name}"),
                format!("set the Host header with {path}.host"),
            );
        } else if value
            .bytes()
            .any(|byte| byte.is_ascii_control() && byte != b'\t')
        {
            report(
                format!("{path}.headers.{name}"),
                "the value has control characters".to_owned(),
            );
        } else {
            headers.push((name, value));
        }
    }
    let expect_status = match spec.expect_status {
        None => vec![200..=399],
        Some(list) if list.is_empty() => {
            report(
                format!("{path}.expect_status"),
                "must list at least one status code".to_owned(),
            );
            vec![200..=399]
        }
        Some(list) => list
            .into_iter()
            .enumerate()
            .filter_map(|(index, status)| {
                status_range(&status)
                    .map_err(|message| {
                        report(format!("{path}.expect_status[{index}]"), message);
                    })
                    .ok()
            })
            .collect(),
    };
    if spec.body_contains.as_deref() == Some("") {
        report(
            format!("{path}.body_contains"),
            "must not be empty (leave it out to accept any body)".to_owned(),
        );
    }
    if !tls && spec.verify_certificate.is_some() {
        report(
            format!("{path}.verify_certificate"),
            "only https probes have this setting".to_owned(),
        );
    }
    HttpProbe {
        tls,
        method,
        path: request_path,
        host: spec.host,
        headers,
        expect_status,
        body_contains: spec.body_contains,
        verify_certificate: spec.verify_certificate.unwrap_or(true),
    }
}

/// `200` or `"200-299"`, each code 100..=599.
fn status_range(status: &StatusSpec) -> Result<RangeInclusive<u16>, String> {
    let code = |number: i64| {
        u16::try_from(number)
            .ok()
            .filter(|code| (100..=599).contains(code))
            .ok_or_else(|| format!("{number} is not an HTTP status code (100-599)"))
    };
    match status {
        StatusSpec::Code(number) => code(*number).map(|code| code..=code),
        StatusSpec::Range(text) => {
            let parsed = text.split_once('-').and_then(|(from, to)| {
                Some((
                    from.trim().parse::<i64>().ok()?,
                    to.trim().parse::<i64>().ok()?,
                ))
            });
            let Some((from, to)) = parsed else {
                return Err(format!(
                    "invalid status range \"{text}\": expected e.g. 200 or \"200-299\""
                ));
            };
            let (from, to) = (code(from)?, code(to)?);
            if from > to {
                return Err(format!(
                    "invalid status range \"{text}\": {from} is above {to}"
                ));
            }
            Ok(from..=to)
        }
    }
}

fn duration(
    path: &str,
    text: Option<String>,
    default: Duration,
    range: RangeInclusive<Duration>,
    report: Report<'_>,
) -> Duration {
    let Some(text) = text else {
        return default;
    };
    match parse_duration(&text) {
        Ok(value) if range.contains(&value) => value,
        Ok(_) => {
            report(
                path.to_owned(),
                format!(
                    "must be between {} and {}, not \"{text}\"",
                    humanize(*range.start()),
                    humanize(*range.end())
                ),
            );
            default
        }
        Err(message) => {
            report(path.to_owned(), message);
            default
        }
    }
}

fn threshold(path: &str, value: Option<i64>, default: u32, report: Report<'_>) -> u32 {
    match value {
        None => default,
        Some(value) if (1..=MAX_THRESHOLD).contains(&value) => value as u32,
        Some(value) => {
            report(
                path.to_owned(),
                format!("must be between 1 and {MAX_THRESHOLD}, not {value}"),
            );
            default
        }
    }
}

/// Checks `[resolver]`.
pub(super) fn resolver(spec: ResolverSpec, report: Report<'_>) -> ResolverConfig {
    let defaults = ResolverConfig::default();
    let mut servers = Vec::new();
    for (index, text) in spec.servers.iter().enumerate() {
        match crate::config::secondary::parse_primary(text) {
            Ok(address) if servers.contains(&address) => report(
                format!("resolver.servers[{index}]"),
                format!("{address} is listed twice"),
            ),
            Ok(address) => servers.push(address),
            Err(message) => report(format!("resolver.servers[{index}]"), message),
        }
    }
    let timeout = duration(
        "resolver.timeout",
        spec.timeout,
        defaults.timeout,
        Duration::from_millis(100)..=Duration::from_secs(30),
        report,
    );
    let min_refresh = duration(
        "resolver.min_refresh",
        spec.min_refresh,
        defaults.min_refresh,
        Duration::from_secs(1)..=Duration::from_secs(86_400),
        report,
    );
    let max_refresh = duration(
        "resolver.max_refresh",
        spec.max_refresh,
        defaults.max_refresh.max(min_refresh),
        Duration::from_secs(1)..=Duration::from_secs(7 * 86_400),
        report,
    );
    if max_refresh < min_refresh {
        report(
            "resolver.max_refresh".to_owned(),
            format!(
                "must not be shorter than min_refresh ({})",
                humanize(min_refresh)
            ),
        );
    }
    let max_stale = duration(
        "resolver.max_stale",
        spec.max_stale,
        defaults.max_stale,
        Duration::ZERO..=Duration::from_secs(30 * 86_400),
        report,
    );
    ResolverConfig {
        servers,
        timeout,
        min_refresh,
        max_refresh,
        max_stale,
    }
}

/// Checks `[health]`; `peer_count` is the number of `[peers]`, if any.
pub(super) fn health(
    spec: HealthSpec,
    peer_count: Option<usize>,
    report: Report<'_>,
) -> HealthConfig {
    let defaults = HealthConfig::default();
    let node = match spec.node {
        None => defaults.node,
        Some(node) if (1..=MAX_NODE_NAME).contains(&node.len()) && is_visible(&node) => node,
        Some(node) => {
            report(
                "health.node".to_owned(),
                format!(
                    "must be 1 to {MAX_NODE_NAME} visible ASCII characters without spaces, not \"{}\"",
                    node.escape_default()
                ),
            );
            defaults.node
        }
    };
    let quorum = match (spec.quorum, peer_count) {
        (None, _) => Quorum::Majority,
        (Some(_), None) => {
            report(
                "health.quorum".to_owned(),
                "counts the votes of [peers]; there are none".to_owned(),
            );
            Quorum::Majority
        }
        (Some(QuorumSpec::Word(word)), _) if word == "majority" => Quorum::Majority,
        (Some(QuorumSpec::Word(word)), _) => {
            report(
                "health.quorum".to_owned(),
                format!("must be \"majority\" or a number of vantage points, not \"{word}\""),
            );
            Quorum::Majority
        }
        (Some(QuorumSpec::Count(count)), Some(peers))
            if count >= 1 && count as usize <= peers + 1 =>
        {
            Quorum::AtLeast(count as u32)
        }
        (Some(QuorumSpec::Count(count)), Some(peers)) => {
            report(
                "health.quorum".to_owned(),
                format!(
                    "must be between 1 and {} (this node and {peers} peer{}), not {count}",
                    peers + 1,
                    if peers == 1 { "" } else { "s" }
                ),
            );
            Quorum::Majority
        }
    };
    HealthConfig {
        debounce: duration(
            "health.debounce",
            spec.debounce,
            defaults.debounce,
            Duration::ZERO..=MAX_DEBOUNCE,
            report,
        ),
        node,
        quorum,
    }
}

/// Longest `health.node`.
const MAX_NODE_NAME: usize = 64;
/// Default time between two fetches of a peer's view.
const DEFAULT_PEER_INTERVAL: Duration = Duration::from_secs(2);
/// Most peers: beyond a few dozen vantage points, more add load, not
/// certainty.
const MAX_PEERS: usize = 32;

fn is_visible(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Checks `[peers]`; `base` resolves `peers.token_file`.
pub(super) fn peers(spec: PeersSpec, base: &std::path::Path, report: Report<'_>) -> Peers {
    let mut urls: Vec<String> = Vec::new();
    if spec.urls.is_empty() {
        report(
            "peers.urls".to_owned(),
            "must list at least one peer (or leave [peers] out)".to_owned(),
        );
    }
    if spec.urls.len() > MAX_PEERS {
        report(
            "peers.urls".to_owned(),
            format!("lists {} peers; at most {MAX_PEERS}", spec.urls.len()),
        );
    }
    for (index, url) in spec.urls.iter().enumerate() {
        let path = format!("peers.urls[{index}]");
        match crate::peers::base_url(url) {
            Ok(url) if urls.contains(&url) => {
                report(path, format!("{url} is listed twice"));
            }
            Ok(url) => urls.push(url),
            Err(message) => report(path, message),
        }
    }
    let listen = spec.listen.as_deref().and_then(|text| {
        text.trim()
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                report(
                    "peers.listen".to_owned(),
                    format!(
                        "invalid socket address \"{text}\": expected IP:port, e.g. \"10.0.0.1:8054\""
                    ),
                );
            })
            .ok()
    });
    if let Some(address) = listen
        && !address.ip().to_canonical().is_loopback()
        && spec.token_file.is_none()
    {
        // The journal holds client networks and their RTTs.
        report(
            "peers.listen".to_owned(),
            format!(
                "{address} is not a loopback address; what it serves (endpoint health, client \
                 networks and their RTTs) needs peers.token_file there"
            ),
        );
    }
    let token = spec.token_file.and_then(|name| {
        crate::config::read_token_file(&base.join(name))
            .map_err(|message| report("peers.token_file".to_owned(), message))
            .ok()
            .map(|token| crate::admin::auth::BearerToken::new(&token))
    });
    let interval = duration(
        "peers.interval",
        spec.interval,
        DEFAULT_PEER_INTERVAL,
        MIN_INTERVAL..=Duration::from_secs(60),
        report,
    );
    // Three missed fetches in a row: one lost response does not silence a
    // peer, and a dead one stops voting within seconds.
    let stale_after = duration(
        "peers.stale_after",
        spec.stale_after,
        interval * 3,
        interval..=MAX_INTERVAL,
        report,
    );
    if spec.tls_certificate.is_some() && listen.is_none() {
        report(
            "peers.tls_certificate".to_owned(),
            "is for peers.listen, which is not set".to_owned(),
        );
    }
    let tls = crate::config::tls::read_identity(
        "peers",
        spec.tls_certificate.as_deref(),
        spec.tls_key.as_deref(),
        base,
        report,
    )
    .map(std::sync::Arc::new);
    let ca = spec.ca_file.and_then(|name| {
        let path = base.join(name);
        let pem = std::fs::read(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))
            .and_then(|pem| {
                crate::admin::tls::ca_certificates(&pem)
                    .map(|_| pem)
                    .map_err(|message| format!("{}: {message}", path.display()))
            });
        pem.map_err(|message| report("peers.ca_file".to_owned(), message))
            .ok()
    });
    Peers {
        listen,
        tls,
        ca,
        share_admin: spec.share_admin,
        urls,
        token,
        interval,
        stale_after,
    }
}

/// Checks `[latency]`; `base` resolves the matrix and state file paths,
/// and the state file defaults to `file`'s name with `.latency` beside it.
pub(super) fn latency(
    spec: LatencySpec,
    file: &std::path::Path,
    (base, state): (&std::path::Path, &std::path::Path),
    report: Report<'_>,
) -> LatencyConfig {
    let defaults = LatencyConfig::default();
    let matrix = spec.matrix.map(|name| {
        if name.trim().is_empty() {
            report("latency.matrix".to_owned(), "must name a file".to_owned());
        }
        base.join(name)
    });
    // `steer.toml` → `steer.latency`, as the admin state file is named.
    let default_state_file = || crate::config::state_file_named(file, state, "latency");
    let state_file = match spec.state_file {
        Some(name) if name.trim().is_empty() => {
            report(
                "latency.state_file".to_owned(),
                "must name a file".to_owned(),
            );
            default_state_file()
        }
        Some(name) => base.join(name),
        None => default_state_file(),
    };
    let weight = match spec.weight {
        None => defaults.weight,
        Some(weight) if weight > 0.0 && weight <= 1.0 => weight,
        Some(weight) => {
            report(
                "latency.weight".to_owned(),
                format!("must be above 0 and at most 1, not {weight}"),
            );
            defaults.weight
        }
    };
    let max_prefixes = match spec.max_prefixes {
        None => defaults.max_prefixes,
        Some(count) if (1..=100_000_000).contains(&count) => count as usize,
        Some(count) => {
            report(
                "latency.max_prefixes".to_owned(),
                format!("must be between 1 and 100000000, not {count}"),
            );
            defaults.max_prefixes
        }
    };
    let max_rtt_ms = match spec.max_rtt_ms {
        None => defaults.max_rtt_ms,
        Some(rtt) if (1.0..=600_000.0).contains(&rtt) => rtt,
        Some(rtt) => {
            report(
                "latency.max_rtt_ms".to_owned(),
                format!("must be between 1 and 600000, not {rtt}"),
            );
            defaults.max_rtt_ms
        }
    };
    LatencyConfig {
        matrix,
        weight,
        max_age: duration(
            "latency.max_age",
            spec.max_age,
            defaults.max_age,
            Duration::from_secs(1)..=Duration::from_secs(30 * 86_400),
            report,
        ),
        max_prefixes,
        max_rtt_ms,
        compile_interval: duration(
            "latency.compile_interval",
            spec.compile_interval,
            defaults.compile_interval,
            Duration::from_millis(100)..=MAX_INTERVAL,
            report,
        ),
        active_interval: duration(
            "latency.active_interval",
            spec.active_interval,
            defaults.active_interval,
            MIN_INTERVAL..=MAX_INTERVAL,
            report,
        ),
        state_file,
        save_interval: duration(
            "latency.save_interval",
            spec.save_interval,
            defaults.save_interval,
            Duration::from_secs(10)..=Duration::from_secs(86_400),
            report,
        ),
    }
}

/// `2s`, `500ms`: how durations are written in the file.
pub(crate) fn humanize(duration: Duration) -> String {
    let milliseconds = duration.as_millis();
    if milliseconds.is_multiple_of(1_000) {
        format!("{}s", milliseconds / 1_000)
    } else {
        format!("{milliseconds}ms")
    }
}
