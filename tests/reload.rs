//! Reload under load: clients query the real server continuously (UDP over
//! IPv4 and IPv6, and TCP) while the zone file is rewritten and reloaded 50
//! times, through `Control::reload` and `POST /reload`, with a broken
//! version every fifth round.
//!
//! Every zone version writes its number into several independent places
//! that one response carries together: the CNAME target (`check` →
//! `v<N>`), the addresses (`10.<N>.0.1`, `10.<N>.0.2`), a TXT string
//! (`version=<N>`) and the SOA serial (`1000 + N`, in the authority section
//! of a NODATA at the end of the chain). So a response mixing two tables
//! would name two versions. The test asserts that
//!
//! - every response names exactly one version, and a version that was
//!   published (never a broken one);
//! - each client sees versions only move forward;
//! - no query goes unanswered (after retries);
//! - a broken version is refused (the reload returns an error, `POST
//!   /reload` answers 422) and the previous version keeps being served;
//! - right after a successful reload the new version is served, and the
//!   generation (from the reload and from `GET /status`) only increases.
//!
//! SIGHUP is covered by the CLI tests.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Family, QueryOptions, TestServer, Transport};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const ZONE_FILE: &str = "reload.test.zone";
const QUERY_NAME: &str = "check.reload.test.";
const SERIAL_BASE: u32 = 1000;
const ROUNDS: u32 = 50;
/// Every this many rounds the new zone file is broken.
const BROKEN_EVERY: u32 = 5;
/// Every this many rounds the reload goes through `POST /reload`.
const HTTP_EVERY: u32 = 3;
/// Pause between rounds, so that every version is served for a while.
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// Per-client bounds: the load stops by itself whatever happens.
const MAX_QUERIES_PER_CLIENT: usize = 6000;
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);
const QUERY_PAUSE: Duration = Duration::from_millis(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
const ATTEMPTS: usize = 5;
/// Names that only make the zone (and its compile) less trivial.
const FILLER_HOSTS: u32 = 300;

/// The zone file of `version`: the version is encoded in every record a
/// query for `check.reload.test.` can return.
fn zone_text(version: u32) -> String {
    let mut text = format!(
        "$ORIGIN reload.test.\n\
         $TTL 60\n\
         @ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.53\n\
         check IN CNAME v{version}\n\
         v{version} IN A 10.{version}.0.1\n\
         v{version} IN A 10.{version}.0.2\n\
         v{version} IN TXT \"version={version}\"\n",
        serial = SERIAL_BASE + version,
    );
    for host in 0..FILLER_HOSTS {
        text.push_str(&format!("host{host} IN A 192.0.2.{}\n", host % 250 + 1));
    }
    text
}

/// A zone file for `version` that must be rejected, in one of several ways.
fn broken_zone_text(version: u32) -> String {
    let good = zone_text(version);
    match version / BROKEN_EVERY % 4 {
        // CNAME beside other data at the same name.
        0 => format!("{good}check IN A 192.0.2.1\n"),
        // An address that does not parse.
        1 => format!("{good}bad IN A 10.{version}.0.300\n"),
        // No SOA.
        2 => good
            .lines()
            .filter(|line| !line.contains(" SOA "))
            .map(|line| format!("{line}\n"))
            .collect(),
        // Cut off inside a quoted string.
        _ => format!("{good}v{version} IN TXT \"unterminated\n"),
    }
}

/// Writes the zone file so that a reader never sees half of it.
fn write_zone(zones_dir: &std::path::Path, text: &str) {
    let temporary = zones_dir.join("reload.test.zone.partial");
    std::fs::write(&temporary, text).expect("writing zone file");
    std::fs::rename(&temporary, zones_dir.join(ZONE_FILE)).expect("replacing zone file");
}

/// The version named by every part of a response, or why it is not one.
fn version_of(response: &Message, record_type: RecordType) -> Result<u32, String> {
    if response.metadata.response_code != ResponseCode::NoError {
        return Err(format!("rcode {}", response.metadata.response_code));
    }
    let mut versions = BTreeSet::new();
    let mut note = |version: Option<u32>, what: String| -> Result<(), String> {
        let version = version.ok_or_else(|| format!("unexpected {what}"))?;
        versions.insert(version);
        Ok(())
    };
    let from_label = |name: &hickory_proto::rr::Name| -> Option<u32> {
        let ascii = name.to_ascii().to_ascii_lowercase();
        ascii
            .strip_suffix(".reload.test.")?
            .strip_prefix('v')?
            .parse()
            .ok()
    };
    for record in &response.answers {
        match &record.data {
            RData::CNAME(target) => note(from_label(&target.0), format!("CNAME {record}"))?,
            RData::A(address) => {
                note(from_label(&record.name), format!("owner {record}"))?;
                let octets = address.0.octets();
                let version = (octets[0] == 10).then_some(u32::from(octets[1]));
                note(version, format!("address {record}"))?;
            }
            RData::TXT(txt) => {
                note(from_label(&record.name), format!("owner {record}"))?;
                let text: Vec<u8> = txt.txt_data.concat();
                let version = String::from_utf8_lossy(&text)
                    .strip_prefix("version=")
                    .and_then(|number| number.parse().ok());
                note(version, format!("TXT {record}"))?;
            }
            _ => return Err(format!("unexpected answer {record}")),
        }
    }
    for record in &response.authorities {
        match &record.data {
            RData::SOA(soa) => note(soa.serial.checked_sub(SERIAL_BASE), format!("SOA {record}"))?,
            _ => return Err(format!("unexpected authority {record}")),
        }
    }
    // The shape of the answer: the CNAME and the data for the type, or
    // the CNAME and the SOA for a type the target lacks.
    let expected_shape = match record_type {
        RecordType::A => (3, 0),
        RecordType::TXT => (2, 0),
        _ => (1, 1),
    };
    let shape = (response.answers.len(), response.authorities.len());
    if shape != expected_shape {
        return Err(format!(
            "{shape:?} answer/authority records, expected {expected_shape:?}"
        ));
    }
    match versions.len() {
        1 => Ok(*versions.first().expect("one version")),
        _ => Err(format!("records of several versions {versions:?}")),
    }
}

/// Asks for `check.reload.test.` and returns the raw response, retrying.
async fn ask_with_retries(
    transport: Transport,
    server: SocketAddr,
    record_type: RecordType,
) -> Option<Message> {
    let query = common::build_query(QUERY_NAME, record_type, &QueryOptions::default());
    let packet = query.to_vec().expect("query encodes");
    for _ in 0..ATTEMPTS {
        let Some(reply) = common::exchange(transport, server, &packet, ATTEMPT_TIMEOUT).await
        else {
            continue;
        };
        let Ok(response) = Message::from_vec(&reply) else {
            continue;
        };
        if response.metadata.id == query.metadata.id {
            return Some(response);
        }
    }
    None
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientReport {
    label: String,
    answered: usize,
    unanswered: usize,
    /// Versions in the order first seen.
    versions: Vec<u32>,
    problems: Vec<String>,
}

async fn client(transport: Transport, server: SocketAddr, stop: Arc<AtomicBool>) -> ClientReport {
    let mut report = ClientReport {
        label: format!("{transport} {server}"),
        ..ClientReport::default()
    };
    let started = Instant::now();
    let types = [RecordType::A, RecordType::TXT, RecordType::MX];
    let mut latest = 0u32;
    for index in 0..MAX_QUERIES_PER_CLIENT {
        if stop.load(Ordering::Relaxed) || started.elapsed() > CLIENT_DEADLINE {
            break;
        }
        let record_type = types[index % types.len()];
        match ask_with_retries(transport, server, record_type).await {
            None => report.unanswered += 1,
            Some(response) => {
                report.answered += 1;
                match version_of(&response, record_type) {
                    Ok(version) => {
                        if version < latest {
                            report.problems.push(format!(
                                "query {index} ({record_type}): version {version} after {latest}"
                            ));
                        }
                        if version > latest || report.versions.is_empty() {
                            report.versions.push(version);
                        }
                        latest = latest.max(version);
                    }
                    Err(problem) => report.problems.push(format!(
                        "query {index} ({record_type}): {problem}: {response}"
                    )),
                }
            }
        }
        tokio::time::sleep(QUERY_PAUSE).await;
    }
    report
}

/// The version the server answers right now (over TCP, so no datagram is
/// lost on the way).
async fn served_version(server: &TestServer) -> u32 {
    let address = server.dns_addr(Transport::Tcp, Family::V4);
    let response = ask_with_retries(Transport::Tcp, address, RecordType::TXT)
        .await
        .expect("the server answers over TCP");
    version_of(&response, RecordType::TXT).unwrap_or_else(|problem| panic!("{problem}: {response}"))
}

/// Reloads through the API or `Control`, returning the new generation or
/// the errors.
async fn reload(server: &TestServer, round: u32) -> Result<u64, String> {
    if round.is_multiple_of(HTTP_EVERY) {
        let response = common::http_request(server.admin_addr(), "POST", "/reload").await;
        let body: serde_json::Value =
            serde_json::from_str(&response.body).unwrap_or_else(|error| {
                panic!("POST /reload is not JSON ({error}): {}", response.body)
            });
        let ok = body.get("ok").and_then(serde_json::Value::as_bool);
        match (response.status, ok) {
            (200, Some(true)) => Ok(body
                .get("generation")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("POST /reload without generation: {body}"))),
            (422, Some(false)) => Err(body.to_string()),
            (status, _) => panic!("POST /reload answered {status}: {}", response.body),
        }
    } else {
        match server.running().control.reload().await {
            Ok(report) => Ok(report.generation),
            Err(failure) => Err(failure.errors.join("; ")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_consistent_while_reloading_fifty_times() {
    let server = TestServer::start(&[(ZONE_FILE, &zone_text(0))]).await;
    let zones_dir = server.zones_dir();
    assert_eq!(
        served_version(&server).await,
        0,
        "the first table serves version 0"
    );
    let mut generation = common::status_generation(server.admin_addr()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients = [
        (Transport::Udp, Family::V4),
        (Transport::Udp, Family::V6),
        (Transport::Tcp, Family::V4),
    ]
    .map(|(transport, family)| {
        tokio::spawn(client(
            transport,
            server.dns_addr(transport, family),
            Arc::clone(&stop),
        ))
    });

    let mut published = BTreeSet::from([0u32]);
    let mut current = 0u32;
    let mut round_problems = Vec::new();
    for round in 1..=ROUNDS {
        tokio::time::sleep(ROUND_PAUSE).await;
        let broken = round.is_multiple_of(BROKEN_EVERY);
        let text = if broken {
            broken_zone_text(round)
        } else {
            zone_text(round)
        };
        write_zone(&zones_dir, &text);
        let outcome = reload(&server, round).await;
        match (broken, outcome) {
            (false, Ok(new_generation)) => {
                if new_generation <= generation {
                    round_problems.push(format!(
                        "round {round}: generation {new_generation} after {generation}"
                    ));
                }
                generation = new_generation;
                published.insert(round);
                current = round;
            }
            (false, Err(errors)) => {
                round_problems.push(format!("round {round}: good zone refused: {errors}"))
            }
            (true, Ok(new_generation)) => round_problems.push(format!(
                "round {round}: broken zone accepted as generation {new_generation}"
            )),
            (true, Err(errors)) => {
                assert!(!errors.is_empty(), "round {round}: a refusal must say why");
            }
        }
        // Whatever happened, the last good version is what is served now,
        // and /status reports the generation the last good reload made.
        let served = served_version(&server).await;
        if served != current {
            round_problems.push(format!(
                "round {round}: serving version {served}, expected {current}"
            ));
        }
        let status_generation = common::status_generation(server.admin_addr()).await;
        if status_generation != generation {
            round_problems.push(format!(
                "round {round}: /status generation {status_generation}, expected {generation}"
            ));
        }
    }
    stop.store(true, Ordering::Relaxed);

    let mut reports = Vec::new();
    for handle in clients {
        reports.push(handle.await.expect("client task"));
    }
    server.shutdown().await;

    assert!(
        round_problems.is_empty(),
        "reload rounds:\n{}",
        round_problems.join("\n")
    );
    let mut seen = BTreeSet::new();
    for report in &reports {
        // Shown with --nocapture: how much load the reloads ran under.
        eprintln!(
            "{}: {} answered, {} versions seen",
            report.label,
            report.answered,
            report.versions.len()
        );
        assert_eq!(
            report.unanswered, 0,
            "{}: queries unanswered after {ATTEMPTS} attempts: {report:?}",
            report.label
        );
        assert!(
            report.problems.is_empty(),
            "{}: {} bad responses, first ones:\n{}",
            report.label,
            report.problems.len(),
            report
                .problems
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        // The load must really overlap the reloads for the test to mean anything.
        assert!(
            report.answered >= 100,
            "{}: only {} answers",
            report.label,
            report.answered
        );
        for version in &report.versions {
            assert!(
                published.contains(version),
                "{}: saw version {version}, which was never published (published: {published:?})",
                report.label
            );
        }
        seen.extend(report.versions.iter().copied());
    }
    assert!(
        seen.len() >= 10,
        "the clients saw only versions {seen:?}: the load did not overlap the reloads"
    );
}

/// The version encoding the main test relies on: a response naming two
/// versions, or a broken version, must be caught.
#[test]
fn version_check_rejects_mixed_responses() {
    let zones = [steer::zone::parse_zone(
        &zone_text(7),
        std::path::Path::new(ZONE_FILE),
        &hickory_proto::rr::Name::from_ascii("reload.test.").expect("name"),
    )
    .expect("version 7 parses")];
    let table = steer::table::RoutingTable::compile_zones(&zones, 1).expect("compiles");
    for record_type in [RecordType::A, RecordType::TXT, RecordType::MX] {
        let query = common::build_query(QUERY_NAME, record_type, &QueryOptions::default());
        let mut out = Vec::new();
        steer::dns::respond(
            &table,
            &query.to_vec().expect("encodes"),
            steer::dns::Transport::Udp,
            std::net::IpAddr::from([127, 0, 0, 1]),
            &mut out,
        );
        let response = Message::from_vec(&out).expect("response parses");
        assert_eq!(
            version_of(&response, record_type),
            Ok(7),
            "{record_type}: {response}"
        );
        // Tamper with one part: the check must notice.
        let mut mixed = response.clone();
        if let Some(soa) = mixed.authorities.first_mut()
            && let RData::SOA(data) = &mut soa.data
        {
            data.serial = SERIAL_BASE + 8;
        } else if let Some(last) = mixed.answers.last_mut() {
            last.name = hickory_proto::rr::Name::from_ascii("v8.reload.test.").expect("name");
        }
        assert!(
            version_of(&mixed, record_type).is_err(),
            "{record_type}: mixed response accepted"
        );
    }
    for round in (BROKEN_EVERY..=ROUNDS).step_by(BROKEN_EVERY as usize) {
        assert!(
            steer::zone::parse_zone(
                &broken_zone_text(round),
                std::path::Path::new(ZONE_FILE),
                &hickory_proto::rr::Name::from_ascii("reload.test.").expect("name"),
            )
            .is_err(),
            "round {round}: the broken zone parses"
        );
    }
}
