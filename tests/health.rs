//! Health probes end to end: real HTTP and TCP backends on loopback that
//! the test makes fail in every way a backend fails (wrong status, missing
//! body text, hanging past the timeout, connection refused), a real Steer
//! probing them, and real DNS queries watching the answers change.
//!
//! Probes run every 200 ms with `fall = 2`, `rise = 2` and a 50 ms
//! debounce, so a failing endpoint must leave the answers within
//! interval × fall + debounce of its first failed probe (Steer reports that
//! time) and within one more interval plus the timeout of the moment the
//! backend broke (the first failing probe can be up to an interval away).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{QueryOptions, TestServer, http_request};
use hickory_proto::op::ResponseCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(150);
const FALL: u32 = 2;
const RISE: u32 = 2;
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Scheduling on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(400);

/// How a backend answers its health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 200 with "OK" in the body.
    Healthy,
    /// 503.
    WrongStatus,
    /// 200 without "OK".
    MissingBody,
    /// Accepts, reads the request, never answers.
    Hang,
    /// Nothing listens: connection refused.
    Refused,
}

/// An HTTP (or bare TCP) backend on a fixed loopback port.
struct Backend {
    address: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Requests seen, to check that each target is probed once.
    requests: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut backend = Backend {
            address,
            mode: Arc::new(Mutex::new(Mode::Healthy)),
            requests: Arc::new(AtomicUsize::new(0)),
            accept: None,
        };
        backend.serve(listener);
        backend
    }

    fn serve(&mut self, listener: TcpListener) {
        let mode = Arc::clone(&self.mode);
        let requests = Arc::clone(&self.requests);
        self.accept = Some(tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mode = *mode.lock().expect("mode");
                let requests = Arc::clone(&requests);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let response: &[u8] = match mode {
                        Mode::Healthy => {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nstatus: OK\n"
                        }
                        Mode::WrongStatus => {
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        }
                        Mode::MissingBody => {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nstarting\n"
                        }
                        Mode::Hang | Mode::Refused => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    };
                    let _ = stream.write_all(response).await;
                    let _ = stream.shutdown().await;
                });
            }
        }));
    }

    /// Switches the mode; `Refused` closes the listener and leaving it
    /// listens on the same port again.
    async fn set(&mut self, mode: Mode) {
        let previous = std::mem::replace(&mut *self.mode.lock().expect("mode"), mode);
        if mode == Mode::Refused && previous != Mode::Refused {
            if let Some(accept) = self.accept.take() {
                accept.abort();
                let _ = accept.await;
            }
        } else if previous == Mode::Refused && mode != Mode::Refused {
            let listener = TcpListener::bind(self.address).await.expect("bind again");
            self.serve(listener);
        }
    }
}

/// Writes the config, zone and state for `config` (with `{P0}`, `{P1}`,
/// ... replaced by the backends' ports) into a fresh directory and starts
/// Steer on it.
async fn start(config: &str, backends: &[&Backend]) -> TestServer {
    let directory = tempfile::tempdir().expect("temporary directory");
    write_files(directory.path(), config, backends);
    TestServer::start_prepared(directory).await
}

fn write_files(directory: &std::path::Path, config: &str, backends: &[&Backend]) {
    let mut text = config.to_owned();
    for (index, backend) in backends.iter().enumerate() {
        text = text.replace(
            &format!("{{P{index}}}"),
            &backend.address.port().to_string(),
        );
    }
    common::write_example(directory, &text);
}

const PROBE: &str = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[health]
debounce = "50ms"

[probes.web]
type = "http"
path = "/health"
body_contains = "OK"
interval = "200ms"
jitter = "0ms"
timeout = "150ms"
rise = 2
fall = 2

[sites.fra]
[sites.iad]
"#;

/// Pool fra (two endpoints) fails over to iad (one endpoint).
fn failover_config() -> String {
    format!(
        r#"{PROBE}
[pools.fra]
site = "fra"
probe = "web"
addresses = [
  {{ address = "192.0.2.10", probe_target = "127.0.0.1:{{P0}}" }},
  {{ address = "192.0.2.11", probe_target = "127.0.0.1:{{P1}}" }},
]

[pools.iad]
site = "iad"
probe = "web"
addresses = [{{ address = "198.51.100.10", probe_target = "127.0.0.1:{{P2}}" }}]

[[steer]]
name = "www.example.test."
type = "A"
ttl = 30
pools = ["fra", "iad"]
policy = ["healthy", "priority"]
"#
    )
}

/// The rcode and sorted A records of `name`.
async fn answer(server: &TestServer, name: &str) -> (ResponseCode, Vec<String>) {
    let (response, addresses) = common::ask_a(server, name, &QueryOptions::default()).await;
    (response.metadata.response_code, addresses)
}

async fn addresses(server: &TestServer) -> Vec<String> {
    let (code, addresses) = answer(server, "www.example.test.").await;
    assert_eq!(code, ResponseCode::NoError);
    addresses
}

/// Polls the answers every 10 ms until they equal `expected`; returns how
/// long that took, or panics after `limit`.
async fn wait_for(server: &TestServer, expected: &[&str], limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = addresses(server).await;
        if now == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "answers are {now:?}, not {expected:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status(server: &TestServer) -> Value {
    let response = http_request(server.admin_addr(), "GET", "/status").await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("status JSON")
}

/// The `/status` entry of the endpoint answering `address`.
async fn endpoint(server: &TestServer, address: &str) -> Value {
    let status = status(server).await;
    common::endpoint_in(&status, address)
        .unwrap_or_else(|| panic!("no endpoint {address} in {status}"))
}

/// The bound from the moment a backend breaks: the first failing probe is
/// at most an interval away, then `fall - 1` more intervals, a timeout
/// (for a probe that hangs) and the debounce.
fn detection_bound() -> Duration {
    INTERVAL * FALL + TIMEOUT + DEBOUNCE + SLACK
}

#[tokio::test]
async fn each_kind_of_http_failure_takes_the_endpoint_out_and_rise_good_probes_bring_it_back() {
    let mut first = Backend::start().await;
    let second = Backend::start().await;
    let third = Backend::start().await;
    let server = start(&failover_config(), &[&first, &second, &third]).await;
    assert_eq!(addresses(&server).await, ["192.0.2.10", "192.0.2.11"]);

    for mode in [
        Mode::WrongStatus,
        Mode::MissingBody,
        Mode::Hang,
        Mode::Refused,
    ] {
        first.set(mode).await;
        let out = wait_for(&server, &["192.0.2.11"], detection_bound()).await;
        let report = endpoint(&server, "192.0.2.10").await;
        assert_eq!(report["observed"], "down", "{mode:?}: {report}");
        assert_eq!(report["up"], false);
        assert_eq!(report["probe"], "web");
        assert_eq!(report["target"], first.address.to_string());
        assert_eq!(report["last_probe"]["ok"], false, "{report}");
        let failover = report_failover(&server, &first).await;
        assert!(
            failover <= (INTERVAL * FALL + DEBOUNCE + SLACK).as_secs_f64(),
            "{mode:?}: failover reported as {failover} s"
        );
        let error = report["last_error"].as_str().unwrap_or_default().to_owned();
        let expected = match mode {
            Mode::WrongStatus => "503",
            Mode::MissingBody => "OK",
            Mode::Hang => "timed out",
            Mode::Refused => "refused",
            Mode::Healthy => unreachable!(),
        };
        assert!(
            error.to_lowercase().contains(&expected.to_lowercase()),
            "{mode:?}: last error {error:?} should mention {expected:?}"
        );
        eprintln!("{mode:?}: out of the answers {out:?} after the backend broke");

        // Back after `rise` good probes: not after one, within rise + 1.
        first.set(Mode::Healthy).await;
        let back = wait_for(
            &server,
            &["192.0.2.10", "192.0.2.11"],
            INTERVAL * (RISE + 1) + TIMEOUT + DEBOUNCE + SLACK,
        )
        .await;
        assert!(
            back >= INTERVAL * (RISE - 1),
            "{mode:?}: back after {back:?}, before {RISE} good probes could have run"
        );
        assert_eq!(endpoint(&server, "192.0.2.10").await["observed"], "up");
    }

    // Both fra endpoints down: priority falls over to iad.
    first.set(Mode::WrongStatus).await;
    let mut second = second;
    second.set(Mode::Refused).await;
    wait_for(&server, &["198.51.100.10"], detection_bound()).await;

    let metrics = http_request(server.admin_addr(), "GET", "/metrics")
        .await
        .body;
    for expected in [
        format!(
            "steer_probe_up{{probe=\"web\",target=\"{}\"}} 0",
            first.address
        ),
        format!(
            "steer_probe_up{{probe=\"web\",target=\"{}\"}} 1",
            third.address
        ),
        "steer_endpoint_up{pool=\"fra\",address=\"192.0.2.10\"} 0".to_owned(),
        "steer_probe_duration_seconds_count{probe=\"web\"".to_owned(),
        "steer_failover_seconds_count ".to_owned(),
    ] {
        assert!(metrics.contains(&expected), "no {expected:?} in\n{metrics}");
    }
    server.shutdown().await;
}

/// `last_failover_seconds` of `backend`'s target in `/status`.
async fn report_failover(server: &TestServer, backend: &Backend) -> f64 {
    let status = status(server).await;
    let target = status["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|probe| probe["target"] == backend.address.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no probe target {} in {status}", backend.address));
    target["last_failover_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no failover time in {target}"))
}

#[tokio::test]
async fn when_all_down_behaves_as_configured() {
    let mut first = Backend::start().await;
    let mut second = Backend::start().await;
    let config = format!(
        r#"{PROBE}
[pools.fra]
site = "fra"
probe = "web"
addresses = [
  {{ address = "192.0.2.10", probe_target = "127.0.0.1:{{P0}}" }},
  {{ address = "192.0.2.11", probe_target = "127.0.0.1:{{P1}}" }},
]
[pools.backup]
site = "iad"
addresses = ["203.0.113.10"]

[[steer]]
name = "open.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
when_all_down = "fail_open"
[[steer]]
name = "nodata.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
when_all_down = "nodata"
[[steer]]
name = "servfail.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
when_all_down = "servfail"
[[steer]]
name = "fallback.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
when_all_down = {{ pool = "backup" }}
"#
    );
    let server = start(&config, &[&first, &second]).await;
    let both = vec!["192.0.2.10".to_owned(), "192.0.2.11".to_owned()];
    for name in ["open", "nodata", "servfail", "fallback"] {
        let (code, addresses) = answer(&server, &format!("{name}.example.test.")).await;
        assert_eq!((code, &addresses), (ResponseCode::NoError, &both), "{name}");
    }
    first.set(Mode::WrongStatus).await;
    second.set(Mode::Hang).await;
    let started = Instant::now();
    loop {
        let (code, _) = answer(&server, "servfail.example.test.").await;
        if code == ResponseCode::ServFail {
            break;
        }
        assert!(started.elapsed() < detection_bound(), "still {code:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        answer(&server, "open.example.test.").await,
        (ResponseCode::NoError, both.clone()),
        "fail_open answers as if everything were up"
    );
    assert_eq!(
        answer(&server, "nodata.example.test.").await,
        (ResponseCode::NoError, Vec::new())
    );
    assert_eq!(
        answer(&server, "fallback.example.test.").await,
        (ResponseCode::NoError, vec!["203.0.113.10".to_owned()])
    );
    // One endpoint back is enough for every name.
    first.set(Mode::Healthy).await;
    let started = Instant::now();
    while answer(&server, "nodata.example.test.").await.1 != ["192.0.2.10"] {
        assert!(started.elapsed() < INTERVAL * (RISE + 1) + TIMEOUT + DEBOUNCE + SLACK);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for name in ["open", "servfail", "fallback"] {
        assert_eq!(
            answer(&server, &format!("{name}.example.test.")).await,
            (ResponseCode::NoError, vec!["192.0.2.10".to_owned()]),
            "{name}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_probes_follow_the_listener_and_a_shared_target_is_probed_once() {
    let mut backend = Backend::start().await;
    let config = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1
[admin]
listen = "127.0.0.1:0"
[health]
debounce = "50ms"
[probes.port]
type = "tcp"
port = {P0}
interval = "200ms"
jitter = "0ms"
timeout = "150ms"
rise = 2
fall = 2
[probes.web]
type = "http"
port = {P0}
path = "/"
interval = "1s"
timeout = "150ms"
[sites.fra]
[sites.iad]
[pools.fra]
site = "fra"
probe = "port"
addresses = [{ address = "192.0.2.10", probe_target = "127.0.0.1" }]
[pools.iad]
site = "iad"
addresses = ["198.51.100.10"]
[pools.same]
site = "fra"
probe = "web"
addresses = [{ address = "192.0.2.20", probe_target = "127.0.0.1" }]
[pools.again]
site = "iad"
probe = "web"
addresses = [{ address = "192.0.2.21", probe_target = "127.0.0.1" }]
[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra", "iad"]
policy = ["healthy", "priority"]
[[steer]]
name = "shared.example.test."
type = "A"
pools = ["same", "again"]
policy = ["healthy", { first = 2 }]
"#;
    let server = start(config, &[&backend]).await;
    assert_eq!(addresses(&server).await, ["192.0.2.10"]);
    backend.set(Mode::Refused).await;
    wait_for(&server, &["198.51.100.10"], detection_bound()).await;
    let report = endpoint(&server, "192.0.2.10").await;
    assert_eq!(report["observed"], "down", "{report}");
    backend.set(Mode::Healthy).await;
    wait_for(
        &server,
        &["192.0.2.10"],
        INTERVAL * (RISE + 1) + TIMEOUT + DEBOUNCE + SLACK,
    )
    .await;

    // `web` checks 127.0.0.1:{P0} for two pools: one target, probed once
    // per second, not twice.
    let status = status(&server).await;
    let shared: Vec<&Value> = status["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|probe| probe["probe"] == "web")
        .collect();
    assert_eq!(shared.len(), 1, "{status}");
    let before = backend.requests.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let requests = backend.requests.load(Ordering::SeqCst) - before;
    // The tcp probe connects without a request; `web` sends one a second.
    assert!((1..=3).contains(&requests), "{requests} requests in 2.1 s");
    server.shutdown().await;
}

#[tokio::test]
async fn a_target_dead_at_start_is_never_served_and_drains_survive_a_restart() {
    drains_survive_a_restart(None).await;
}

#[tokio::test]
async fn drains_survive_a_restart_in_a_state_directory_steer_makes() {
    drains_survive_a_restart(Some("var/lib/steer")).await;
}

/// With the admin state file beside the config, or by default in
/// `state_directory` (which does not exist before the start).
async fn drains_survive_a_restart(state_directory: Option<&str>) {
    let mut first = Backend::start().await;
    let second = Backend::start().await;
    let third = Backend::start().await;
    first.set(Mode::Refused).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = match state_directory {
        Some(state) => failover_config().replacen(
            "[server]\n",
            &format!("[server]\nstate_directory = \"{state}\"\n"),
            1,
        ),
        None => failover_config(),
    };
    assert_eq!(
        config.contains("state_directory"),
        state_directory.is_some()
    );
    write_files(directory.path(), &config, &[&first, &second, &third]);
    let server = TestServer::start_prepared(directory).await;
    // The first probe round ran before the first answer.
    assert_eq!(addresses(&server).await, ["192.0.2.11"]);

    let response = http_request(server.admin_addr(), "POST", "/pools/fra/drain").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(addresses(&server).await, ["198.51.100.10"]);
    let state_file = server
        .directory
        .path()
        .join(state_directory.unwrap_or(""))
        .join("steer.state.json");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state file"))
            .expect("state JSON");
    assert_eq!(saved["drained"], serde_json::json!(["fra"]));

    // Restart on the same directory: still drained from the first answer on.
    let TestServer {
        directory,
        mut running,
    } = server;
    if let Some(running) = running.take() {
        running.shutdown().await;
    }
    let server = TestServer::start_prepared(directory).await;
    assert_eq!(addresses(&server).await, ["198.51.100.10"]);
    assert_eq!(endpoint(&server, "192.0.2.11").await["admin"], "drained");
    let response = http_request(server.admin_addr(), "POST", "/pools/fra/undrain").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(addresses(&server).await, ["192.0.2.11"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_pool_below_its_min_healthy_counts_as_down() {
    let mut first = Backend::start().await;
    let second = Backend::start().await;
    let third = Backend::start().await;
    // fra needs both of its endpoints; iad takes over when one is down.
    let config = failover_config().replace(
        "[pools.fra]\nsite = \"fra\"\n",
        "[pools.fra]\nsite = \"fra\"\nmin_healthy = 1.0\n",
    );
    assert!(config.contains("min_healthy = 1.0"));
    let server = start(&config, &[&first, &second, &third]).await;
    assert_eq!(addresses(&server).await, ["192.0.2.10", "192.0.2.11"]);
    first.set(Mode::WrongStatus).await;
    wait_for(&server, &["198.51.100.10"], detection_bound()).await;
    first.set(Mode::Healthy).await;
    wait_for(
        &server,
        &["192.0.2.10", "192.0.2.11"],
        INTERVAL * (RISE + 1) + TIMEOUT + DEBOUNCE + SLACK,
    )
    .await;
    server.shutdown().await;
}
