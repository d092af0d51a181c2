//! Steering end to end, where a golden scenario cannot say it: answers that
//! must stay the same across many clients (`sticky`), drains that must
//! survive a reload, and `steer check` on broken steering configurations.
//!
//! Servers run the fixture in `tests/fixtures/steering/` (the one the
//! golden scenarios in `tests/golden_steering/` use), copied to a temporary
//! directory with its `geo.csv` built into `geo.mmdb`, on loopback ports
//! picked by the system. Every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Family, QueryOptions, TestServer, Transport};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use steer::control::AdminError;

const FIXTURE: &str = "tests/fixtures/steering";

/// Lets the sticky tests send full addresses: with the default limits an
/// IPv4 subnet is cut to its /24 before Steer sees it, and every address of
/// a /24 would trivially get the same answer.
const FULL_ECS: &str = "\n[ecs]\nmax_source_v4 = 32\nmax_source_v6 = 128\n";

/// Copies the fixture (zones, maps, config) to `directory`, appends
/// `extra_config` to its steer.toml and builds geo.mmdb from geo.csv.
fn prepare(directory: &Path, extra_config: &str) -> PathBuf {
    common::copy_steering_fixture(FIXTURE, directory);
    let config = directory.join("steer.toml");
    let mut text = std::fs::read_to_string(&config).expect("reading steer.toml");
    text.push_str(extra_config);
    std::fs::write(&config, text).expect("writing steer.toml");
    config
}

/// The fixture server, with `extra_config` appended to its steer.toml.
async fn start(extra_config: &str) -> TestServer {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = prepare(directory.path(), extra_config);
    let running = tokio::time::timeout(Duration::from_secs(20), steer::server::start(&config))
        .await
        .expect("server started within 20 s")
        .unwrap_or_else(|error| panic!("server failed to start: {error}"));
    TestServer {
        directory,
        running: Some(running),
    }
}

/// What came back for one query: the answer's addresses in order, their
/// TTLs, and the ECS scope (None when the response had no ECS option).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Steered {
    addresses: Vec<IpAddr>,
    ttls: Vec<u32>,
    scope: Option<u8>,
}

fn steered_answer(response: &Message) -> Steered {
    let addresses = response
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(address) => IpAddr::V4(address.0),
            RData::AAAA(address) => IpAddr::V6(address.0),
            other => panic!("expected an address, got {other:?}"),
        })
        .collect();
    let ttls = response.answers.iter().map(|record| record.ttl).collect();
    let scope = common::ecs_scope(response);
    Steered {
        addresses,
        ttls,
        scope,
    }
}

/// Asks `name` for `record_type` with an ECS option of `subnet`/`length`.
async fn ask_with_subnet(
    server: &TestServer,
    transport: Transport,
    name: &str,
    record_type: RecordType,
    subnet: &str,
    length: u8,
) -> Steered {
    let options = QueryOptions {
        edns: true,
        client_subnet: Some((subnet.parse().expect("subnet address"), length)),
        ..QueryOptions::default()
    };
    let query = common::build_query(name, record_type, &options);
    let response = common::ask(transport, server.dns_addr(transport, Family::V4), &query).await;
    assert_eq!(
        u16::from(response.metadata.response_code),
        0,
        "{name} {record_type} for {subnet}/{length}: {response:?}"
    );
    steered_answer(&response)
}

/// Asks `name` A without ECS, from 127.0.0.1.
async fn ask_plain(server: &TestServer, name: &str) -> Steered {
    let query = common::build_query(name, RecordType::A, &QueryOptions::default());
    let response = common::ask(
        Transport::Udp,
        server.dns_addr(Transport::Udp, Family::V4),
        &query,
    )
    .await;
    steered_answer(&response)
}

const BLUE: &str = "203.0.113.1";
const GREEN: &str = "203.0.113.2";
const SPARE: &str = "203.0.113.9";

fn address(text: &str) -> IpAddr {
    text.parse().expect("address")
}

/// How many /24s the sticky tests spread over: enough that a pool missing
/// from the assignment is not luck (for two even pools, 1 in 2^47).
const NETWORKS: u8 = 48;

/// The sticky answer of each test /24 (100.64.N.0/24), asked with the
/// address 100.64.N.77/32.
async fn sticky_assignment(server: &TestServer) -> BTreeMap<u8, Steered> {
    let mut assignment = BTreeMap::new();
    for network in 0..NETWORKS {
        let answer = ask_with_subnet(
            server,
            Transport::Udp,
            "sticky.steer.test.",
            RecordType::A,
            &format!("100.64.{network}.77"),
            32,
        )
        .await;
        assignment.insert(network, answer);
    }
    assignment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_answers_every_address_of_a_24_alike_with_scope_24() {
    let server = start(FULL_ECS).await;
    let assignment = sticky_assignment(&server).await;
    for (&network, first) in &assignment {
        assert_eq!(first.addresses.len(), 1, "one pool, one address: {first:?}");
        assert_eq!(first.ttls, [30], "the configured TTL");
        // Nothing but the /24 decides, so the answer holds for the /24.
        assert_eq!(first.scope, Some(24), "100.64.{network}.77/32: {first:?}");
        for (host, transport) in [
            (0u8, Transport::Udp),
            (1, Transport::Tcp),
            (77, Transport::Tcp),
            (200, Transport::Udp),
            (255, Transport::Udp),
        ] {
            let again = ask_with_subnet(
                &server,
                transport,
                "sticky.steer.test.",
                RecordType::A,
                &format!("100.64.{network}.{host}"),
                32,
            )
            .await;
            assert_eq!(
                &again, first,
                "100.64.{network}.{host}/32 over {transport} differs from 100.64.{network}.77"
            );
        }
    }
    let pools: BTreeSet<IpAddr> = assignment
        .values()
        .flat_map(|answer| answer.addresses.clone())
        .collect();
    assert!(
        pools.contains(&address(BLUE)) && pools.contains(&address(GREEN)),
        "{NETWORKS} networks should spread over blue and green, got {pools:?}"
    );
    server.shutdown().await;
}

/// A weight-0 pool is for "only when nothing else is left"
/// (`steer::config::steering::Pool::weight`), for sticky as for weighted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_never_answers_a_weight_zero_pool_while_others_are_up() {
    let server = start(FULL_ECS).await;
    let assignment = sticky_assignment(&server).await;
    let on_spare: Vec<String> = assignment
        .iter()
        .filter(|(_, answer)| answer.addresses.contains(&address(SPARE)))
        .map(|(network, _)| format!("100.64.{network}.0/24"))
        .collect();
    assert!(
        on_spare.is_empty(),
        "sticky.steer.test. A answered the weight-0 pool spare ({SPARE}) to {} of {NETWORKS} \
         networks while blue and green were up: {on_spare:?}",
        on_spare.len()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_answers_the_weight_zero_pool_when_nothing_else_is_left() {
    let server = start(FULL_ECS).await;
    let control = &server.running().control;
    control.set_drained("blue", true).await.expect("drain blue");
    control
        .set_drained("green", true)
        .await
        .expect("drain green");
    for network in [0u8, 17, 200] {
        let answer = ask_with_subnet(
            &server,
            Transport::Udp,
            "sticky.steer.test.",
            RecordType::A,
            &format!("100.64.{network}.1"),
            32,
        )
        .await;
        assert_eq!(answer.addresses, [address(SPARE)], "100.64.{network}.1");
        assert_eq!(answer.scope, Some(24));
    }
    server.shutdown().await;
}

/// Rendezvous hashing: draining a pool moves its clients and no others,
/// and undraining it brings every client back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_moves_only_the_clients_of_a_drained_pool() {
    let server = start(FULL_ECS).await;
    let before = sticky_assignment(&server).await;
    let control = &server.running().control;
    control.set_drained("blue", true).await.expect("drain blue");
    let drained = sticky_assignment(&server).await;
    for (network, answer) in &before {
        let now = &drained[network];
        if answer.addresses == [address(BLUE)] {
            // The weight-0 spare is not a candidate while green is up.
            assert_eq!(
                now.addresses,
                [address(GREEN)],
                "100.64.{network}.0/24 was on the drained blue"
            );
        } else {
            assert_eq!(
                now, answer,
                "100.64.{network}.0/24 moved although its pool is up"
            );
        }
    }
    assert!(
        before
            .values()
            .any(|answer| answer.addresses == [address(BLUE)]),
        "no network was on blue, so the drain showed nothing: {before:?}"
    );
    control
        .set_drained("blue", false)
        .await
        .expect("undrain blue");
    assert_eq!(sticky_assignment(&server).await, before);
    server.shutdown().await;
}

/// Rewrites the pools of sticky.steer.test. A in the running server's
/// steer.toml (and appends `extra_config`), then reloads.
async fn reload_sticky_pools(server: &TestServer, pools: &str, extra_config: &str) {
    let config = server.directory.path().join("steer.toml");
    let text = std::fs::read_to_string(&config).expect("reading steer.toml");
    let written = "name = \"sticky.steer.test.\"\ntype = \"A\"\nttl = 30\n\
                   pools = [\"blue\", \"green\", \"spare\"]\n";
    assert_eq!(
        text.matches(written).count(),
        1,
        "the fixture's sticky A entry"
    );
    let rewritten = written.replace("[\"blue\", \"green\", \"spare\"]", pools);
    std::fs::write(
        &config,
        format!("{}{extra_config}", text.replace(written, &rewritten)),
    )
    .expect("writing steer.toml");
    tokio::time::timeout(Duration::from_secs(20), server.running().control.reload())
        .await
        .expect("reload within 20 s")
        .expect("the rewritten config reloads");
}

/// A consistent hash is of the pools themselves: listing the same pools in
/// another order moves no client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_keeps_every_client_when_the_pools_are_reordered() {
    let server = start(FULL_ECS).await;
    let before = sticky_assignment(&server).await;
    reload_sticky_pools(&server, "[\"green\", \"spare\", \"blue\"]", "").await;
    let after = sticky_assignment(&server).await;
    let moved: Vec<String> = before
        .iter()
        .filter(|(network, answer)| after[*network] != **answer)
        .map(|(network, answer)| {
            format!(
                "100.64.{network}.0/24: {:?} -> {:?}",
                answer.addresses, after[network].addresses
            )
        })
        .collect();
    assert!(
        moved.is_empty(),
        "reordering sticky.steer.test.'s pools moved {} of {NETWORKS} networks: {moved:?}",
        moved.len()
    );
    server.shutdown().await;
}

/// Adding a pool moves clients only to the new pool (rendezvous hashing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_moves_clients_only_to_an_added_pool() {
    let server = start(FULL_ECS).await;
    let before = sticky_assignment(&server).await;
    reload_sticky_pools(
        &server,
        "[\"teal\", \"blue\", \"green\", \"spare\"]",
        "\n[pools.teal]\nsite = \"iad\"\naddresses = [\"203.0.113.3\"]\n",
    )
    .await;
    let after = sticky_assignment(&server).await;
    let teal = address("203.0.113.3");
    let moved_elsewhere: Vec<String> = before
        .iter()
        .filter(|(network, answer)| {
            let now = &after[*network].addresses;
            now != &answer.addresses && now != &[teal]
        })
        .map(|(network, answer)| {
            format!(
                "100.64.{network}.0/24: {:?} -> {:?}",
                answer.addresses, after[network].addresses
            )
        })
        .collect();
    assert!(
        moved_elsewhere.is_empty(),
        "adding pool teal moved {} of {NETWORKS} networks between the old pools: \
         {moved_elsewhere:?}",
        moved_elsewhere.len()
    );
    assert!(
        after.values().any(|answer| answer.addresses == [teal]),
        "no network went to the added pool"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_ipv6_answers_every_address_of_a_48_alike_with_scope_48() {
    let server = start(FULL_ECS).await;
    let mut pools = BTreeSet::new();
    for network in 0..24u16 {
        let base = format!("2600:0:{network:x}");
        let first = ask_with_subnet(
            &server,
            Transport::Udp,
            "sticky.steer.test.",
            RecordType::AAAA,
            &format!("{base}::"),
            48,
        )
        .await;
        assert_eq!(first.addresses.len(), 1, "{base}::/48: {first:?}");
        assert_eq!(first.scope, Some(48), "{base}::/48: {first:?}");
        for (subnet, length) in [
            (format!("{base}:ff00::"), 56),
            (format!("{base}:1234::"), 64),
            (format!("{base}:ffff:ffff:ffff:ffff:ffff"), 128),
        ] {
            let again = ask_with_subnet(
                &server,
                Transport::Tcp,
                "sticky.steer.test.",
                RecordType::AAAA,
                &subnet,
                length,
            )
            .await;
            assert_eq!(again, first, "{subnet}/{length} differs from {base}::/48");
        }
        pools.extend(first.addresses);
    }
    assert!(
        pools.len() > 1,
        "24 networks all went to one pool: {pools:?}"
    );
    server.shutdown().await;
}

/// With the default limits the /24 (and /56) is all Steer looks at; the
/// scope of a sticky answer is never below the hashed /24 or /48, even for
/// a shorter source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_scope_is_the_hashed_prefix_with_the_default_limits() {
    let server = start("").await;
    for (subnet, length, scope) in [
        ("100.64.9.77", 32, 24),
        ("100.64.9.0", 24, 24),
        ("100.64.0.0", 16, 24),
    ] {
        let answer = ask_with_subnet(
            &server,
            Transport::Udp,
            "sticky.steer.test.",
            RecordType::A,
            subnet,
            length,
        )
        .await;
        assert_eq!(answer.scope, Some(scope), "{subnet}/{length}: {answer:?}");
    }
    for (subnet, length) in [("2600:0:9::1", 128), ("2600::", 32)] {
        let answer = ask_with_subnet(
            &server,
            Transport::Udp,
            "sticky.steer.test.",
            RecordType::AAAA,
            subnet,
            length,
        )
        .await;
        assert_eq!(answer.scope, Some(48), "{subnet}/{length}: {answer:?}");
    }
    server.shutdown().await;
}

/// An operator's drain is kept in the control task and written into every
/// new table, so a reload does not undo it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_survives_a_reload() {
    let server = start("").await;
    let control = &server.running().control;
    let primary = [address("198.51.100.11"), address("198.51.100.12")];
    let secondary = [address("198.51.100.21")];
    assert_eq!(
        ask_plain(&server, "failover.steer.test.").await.addresses,
        primary
    );
    control.set_drained("web-lon", true).await.expect("drain");
    assert_eq!(
        ask_plain(&server, "failover.steer.test.").await.addresses,
        secondary
    );
    let report = tokio::time::timeout(Duration::from_secs(20), control.reload())
        .await
        .expect("reload within 20 s")
        .expect("reload succeeds");
    assert_eq!(report.generation, 2);
    assert_eq!(
        ask_plain(&server, "failover.steer.test.").await.addresses,
        secondary,
        "the drain was lost by the reload"
    );
    control
        .set_drained("web-lon", false)
        .await
        .expect("undrain");
    assert_eq!(
        ask_plain(&server, "failover.steer.test.").await.addresses,
        primary
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_name_only_known_pools_and_addresses() {
    let server = start("").await;
    let control = &server.running().control;
    assert_eq!(
        control.set_drained("web-nope", true).await,
        Err(AdminError::UnknownPool("web-nope".to_owned()))
    );
    assert_eq!(
        control
            .force_endpoint(address("192.0.2.200"), Some(steer::health::Forced::Down))
            .await,
        Err(AdminError::UnknownEndpoint(address("192.0.2.200")))
    );
    // Nothing changed: the first pool still answers.
    assert_eq!(
        ask_plain(&server, "failover.steer.test.").await.addresses,
        [address("198.51.100.11"), address("198.51.100.12")]
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// `steer check` on broken steering configurations.

/// A small valid config over the fixture's zone and database; each bad
/// config below is this plus one mistake, so it has exactly one error.
const BASE_CONFIG: &str = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"

[geoip]
database = "geo.mmdb"

[sites.lon]
location = [51.5072, -0.1276]

[sites.fra]
location = [50.1109, 8.6821]

[pools.web-lon]
site = "lon"
addresses = ["198.51.100.11"]

[pools.web-fra]
site = "fra"
addresses = ["198.51.100.21"]

[[steer]]
name = "geo.steer.test."
type = "A"
pools = ["web-lon", "web-fra"]
policy = [{ geo = { EU = ["web-fra"] } }, "priority"]
"#;

/// What `steer check` printed and how it exited.
struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    config: PathBuf,
    zone: PathBuf,
}

/// Runs `steer check` on BASE_CONFIG + `mistake` beside the fixture's zones
/// and database.
fn check(mistake: &str) -> Checked {
    let directory = tempfile::tempdir().expect("temporary directory");
    prepare(directory.path(), "");
    let config = directory.path().join("steer.toml");
    std::fs::write(&config, format!("{BASE_CONFIG}{mistake}")).expect("writing steer.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(["check", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("running steer check");
    Checked {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        zone: directory.path().join("zones/steer.test.zone"),
        config,
    }
}

/// Asserts exit 1, nothing on stdout and exactly `line` on stderr.
fn assert_refused(checked: &Checked, line: &str) {
    assert_eq!(
        (
            checked.code,
            checked.stderr.as_str(),
            checked.stdout.as_str()
        ),
        (Some(1), format!("{line}\n").as_str(), ""),
        "steer check: exit status, stderr, stdout"
    );
}

#[test]
fn check_accepts_the_base_config() {
    let checked = check("");
    assert_eq!(checked.code, Some(0), "stderr: {}", checked.stderr);
    assert!(checked.stderr.is_empty(), "{}", checked.stderr);
    assert!(
        checked.stdout.starts_with("ok: 1 zone, "),
        "{}",
        checked.stdout
    );
}

#[test]
fn check_names_an_unknown_pool() {
    let checked = check(
        r#"
[[steer]]
name = "bad.steer.test."
type = "A"
pools = ["web-lon", "web-nope"]
"#,
    );
    assert_refused(
        &checked,
        &format!(
            "{}: steer[1].pools[1]: unknown pool \"web-nope\"",
            checked.config.display()
        ),
    );
}

#[test]
fn check_names_a_site_without_coordinates_used_by_nearest() {
    let checked = check(
        r#"
[sites.nowhere]
country = "GB"

[pools.web-nowhere]
site = "nowhere"
addresses = ["198.51.100.99"]

[[steer]]
name = "near.steer.test."
type = "A"
pools = ["web-lon", "web-nowhere"]
policy = ["nearest", "priority"]
"#,
    );
    assert_refused(
        &checked,
        &format!(
            "{}: steer[1].policy[0]: nearest needs coordinates for site \"nowhere\" \
             (pools.web-nowhere.site)",
            checked.config.display()
        ),
    );
}

#[test]
fn check_names_a_pool_with_no_addresses() {
    let checked = check("\n[pools.empty]\nsite = \"lon\"\naddresses = []\n");
    assert_refused(
        &checked,
        &format!(
            "{}: pools.empty.addresses: must list at least one address",
            checked.config.display()
        ),
    );
    let checked = check("\n[pools.empty]\nsite = \"lon\"\n");
    assert_refused(
        &checked,
        &format!(
            "{}: pools.empty: needs addresses, a cname or an alias",
            checked.config.display()
        ),
    );
}

/// Names compare without regard to case, as in DNS.
#[test]
fn check_names_a_name_steered_twice() {
    let checked = check(
        r#"
[[steer]]
name = "GEO.steer.test."
type = "a"
pools = ["web-lon"]
"#,
    );
    assert_refused(
        &checked,
        &format!(
            "{}: steer[1]: GEO.steer.test. A is already steered by steer[0]",
            checked.config.display()
        ),
    );
}

#[test]
fn check_names_a_name_both_static_and_steered() {
    let checked = check(
        r#"
[[steer]]
name = "static.steer.test."
type = "A"
pools = ["web-lon"]
"#,
    );
    let zone = checked.zone.display().to_string();
    assert_refused(
        &checked,
        &format!(
            "{}: steer[1]: static.steer.test. A is steered, but {zone} has A data there \
             ({zone}:9); a name cannot be both static and steered for the same type, and a \
             CNAME stands alone",
            checked.config.display()
        ),
    );
}

#[test]
fn check_names_a_steered_name_outside_every_zone() {
    let checked = check(
        r#"
[[steer]]
name = "www.example.org."
type = "A"
pools = ["web-lon"]
"#,
    );
    assert_refused(
        &checked,
        &format!(
            "{}: steer[1]: www.example.org. is not inside any loaded zone",
            checked.config.display()
        ),
    );
}

/// A location step after a selection step is a mistake in the file, found
/// without zones or database: it is reported like every other policy
/// error, `FILE: steer[i].policy[j]: ...` (see the nearest case above).
#[test]
fn check_names_a_location_step_after_priority() {
    let checked = check(
        r#"
[[steer]]
name = "late.steer.test."
type = "A"
pools = ["web-lon", "web-fra"]
policy = ["priority", { geo = { EU = ["web-fra"] } }]
"#,
    );
    assert_refused(
        &checked,
        &format!(
            "{}: steer[1].policy[1]: geo cannot follow priority: location steps choose among \
             pools, so they must come before any step that keeps only some of them",
            checked.config.display()
        ),
    );
}
