//! Active latency measurements end to end: a real server measuring its TCP
//! connect time to loopback listeners standing in for sites, the `latency`
//! step answering from those RTTs, and `/metrics` and `/status` showing
//! them.
//!
//! Sites ams and fra have listeners as their `latency_target`; iad points
//! at a closed port. `www.example.test A` is steered by `["latency",
//! "priority"]` over web-iad (listed first) and web-fra, with no matrix
//! and no posted samples: only this node's own measurements can put fra
//! first. Which of two loopback listeners connects faster is noise, so no
//! test compares ams and fra.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{QueryOptions, TestServer, http_request};
use hickory_proto::op::ResponseCode;
use serde_json::Value;
use tokio::net::TcpListener;

use common::{FRA, IAD};

/// How long a test waits for a measurement to show.
const WAIT: Duration = Duration::from_secs(10);

/// A loopback listener that accepts and drops connections, counting them.
struct Site {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn listening_site() -> Site {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });
    Site { address, accepted }
}

/// A loopback port nothing listens on: bound, then closed.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address")
}

fn config(ams: SocketAddr, fra: SocketAddr, iad: SocketAddr) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[latency]
compile_interval = "100ms"
active_interval = "100ms"

[sites.ams]
latency_target = "{ams}"

[sites.fra]
latency_target = "{fra}"

[sites.iad]
latency_target = "{iad}"

[pools.web-fra]
site = "fra"
addresses = ["{FRA}"]

[pools.web-iad]
site = "iad"
addresses = ["{IAD}"]

[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = ["latency", "priority"]
"#
    )
}

/// The one address answered for `www.example.test A`.
async fn answer(server: &TestServer) -> String {
    let (response, addresses) =
        common::ask_a(server, "www.example.test.", &QueryOptions::default()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    addresses[0].clone()
}

async fn metrics(server: &TestServer) -> String {
    let response = http_request(server.admin_addr(), "GET", "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

/// The value of `series` (name and labels, exactly) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|number| number.parse().ok())
    })
}

fn active(site: &str, result: &str) -> String {
    format!("steer_latency_active_total{{site=\"{site}\",result=\"{result}\"}}")
}

fn node_rtt(site: &str) -> String {
    format!("steer_latency_node_rtt_ms{{site=\"{site}\"}}")
}

/// Polls `/metrics` until `ready` holds; panics after [`WAIT`].
async fn wait_for_metrics(server: &TestServer, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let text = metrics(server).await;
        if ready(&text) {
            return text;
        }
        assert!(started.elapsed() < WAIT, "{what} not in /metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn node_measurements_steer_answers_and_show_in_metrics_and_status() {
    let (ams, fra) = (listening_site().await, listening_site().await);
    let iad = closed_port().await;
    let directory = common::example_directory(&config(ams.address, fra.address, iad));
    let server = TestServer::start_prepared(directory).await;

    // Without latency data the order stays as configured and priority
    // answers web-iad; only a measured RTT to fra (and none to iad, whose
    // connects are refused) puts web-fra first.
    let started = Instant::now();
    while answer(&server).await != FRA {
        assert!(
            started.elapsed() < WAIT,
            "still answering web-iad: no node RTT compiled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let text = wait_for_metrics(&server, "two rounds", |text| {
        value(text, &active("fra", "ok")).is_some_and(|count| count >= 2.0)
            && value(text, &active("iad", "failed")).is_some_and(|count| count >= 2.0)
    })
    .await;
    assert!(text.contains("# TYPE steer_latency_active_total counter\n"));
    assert!(text.contains("# TYPE steer_latency_node_rtt_ms gauge\n"));
    for site in ["ams", "fra"] {
        assert_eq!(value(&text, &active(site, "failed")), Some(0.0), "{site}");
        let rtt = value(&text, &node_rtt(site)).unwrap_or_else(|| panic!("no RTT for {site}"));
        // Loopback: well under the timeout, whatever the machine's load.
        assert!(rtt > 0.0 && rtt < 100.0, "{site}: {rtt} ms");
    }
    assert_eq!(value(&text, &active("iad", "ok")), Some(0.0));
    assert_eq!(
        value(&text, &node_rtt("iad")),
        None,
        "a refused connect has no RTT"
    );
    assert!(ams.accepted.load(Ordering::Relaxed) >= 1);

    let response = http_request(server.admin_addr(), "GET", "/status").await;
    let status: Value = serde_json::from_str(&response.body).expect("JSON");
    let latency = &status["latency"];
    let node_sites: Vec<&str> = latency["node"]
        .as_array()
        .expect("latency.node")
        .iter()
        .map(|node| node["site"].as_str().expect("site"))
        .collect();
    assert_eq!(node_sites, ["ams", "fra"], "{latency}");
    let active_sites: Vec<&str> = latency["active"]
        .as_array()
        .expect("latency.active")
        .iter()
        .map(|measured| measured["site"].as_str().expect("site"))
        .collect();
    assert_eq!(active_sites, ["ams", "fra", "iad"], "{latency}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_reload_changes_what_is_measured() {
    let (ams, fra, iad) = (
        listening_site().await,
        listening_site().await,
        listening_site().await,
    );
    let closed = closed_port().await;
    let directory = common::example_directory(&config(ams.address, fra.address, closed));
    let server = TestServer::start_prepared(directory).await;
    wait_for_metrics(&server, "iad failing", |text| {
        value(text, &active("iad", "failed")).is_some_and(|count| count >= 1.0)
    })
    .await;

    // iad's target now listens; ams has none any more.
    let moved = config(ams.address, fra.address, iad.address).replace(
        &format!("[sites.ams]\nlatency_target = \"{}\"\n", ams.address),
        "[sites.ams]\n",
    );
    std::fs::write(server.directory.path().join("steer.toml"), moved).expect("config");
    server
        .running()
        .control
        .reload()
        .await
        .expect("the reload succeeds");
    let text = wait_for_metrics(&server, "iad measured", |text| {
        value(text, &active("iad", "ok")).is_some_and(|count| count >= 1.0)
    })
    .await;
    assert!(iad.accepted.load(Ordering::Relaxed) >= 1);
    assert_eq!(
        value(&text, &active("ams", "ok")),
        None,
        "a site without a target has no counters"
    );
    assert!(value(&text, &node_rtt("iad")).is_some());
    assert_eq!(
        value(&text, &node_rtt("ams")),
        None,
        "a site without a target no longer has this node's RTT"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn measurements_stop_at_shutdown() {
    let (ams, fra) = (listening_site().await, listening_site().await);
    let iad = closed_port().await;
    let directory = common::example_directory(&config(ams.address, fra.address, iad));
    let server = TestServer::start_prepared(directory).await;
    let started = Instant::now();
    while fra.accepted.load(Ordering::Relaxed) < 2 {
        assert!(started.elapsed() < WAIT, "fra not measured twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
    // A connect already on its way when the task was stopped may still
    // arrive; after that, nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_shutdown = fra.accepted.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fra.accepted.load(Ordering::Relaxed), after_shutdown);
}

/// The control for the first test: with no target answering, nothing is
/// measured and the configured order stands, so web-fra there was the
/// measurements' doing.
#[tokio::test]
async fn without_a_reachable_target_the_configured_order_stands() {
    let (ams, fra, iad) = (
        closed_port().await,
        closed_port().await,
        closed_port().await,
    );
    let directory = common::example_directory(&config(ams, fra, iad));
    let server = TestServer::start_prepared(directory).await;
    let text = wait_for_metrics(&server, "two failed rounds", |text| {
        ["ams", "fra", "iad"]
            .iter()
            .all(|site| value(text, &active(site, "failed")).is_some_and(|count| count >= 2.0))
    })
    .await;
    assert!(!text.contains("steer_latency_node_rtt_ms{"), "{text}");
    assert_eq!(answer(&server).await, IAD);
    server.shutdown().await;
}
