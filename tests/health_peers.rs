//! Health views shared between nodes, end to end: several real Steer
//! servers in this process, each with its admin API on a loopback port,
//! probing one real HTTP backend that fails only for the nodes the test
//! names (it reads the node from the probe's `User-Agent`), and fetching
//! each other's `GET /health/view` as `[peers]` says. Real DNS
//! queries then show what each node answers.
//!
//! The point of peers is that one node whose path to an endpoint breaks no
//! longer takes that endpoint out of its answers on its own, while a
//! failure most vantage points see takes it out everywhere, even on a node
//! whose own probe still passes. So the tests make the backend fail for
//! chosen nodes and check the votes in `/status`, the answers of every
//! node, that a peer that stops answering stops voting after
//! `stale_after` (and not before), that an integer quorum counts down votes
//! instead of comparing them, that the view is guarded by the admin token,
//! and that bad peer settings are refused naming their key, by
//! `steer check` and by a reload that leaves the running peers alone.
//!
//! Probes run every 200 ms with `rise = fall = 1`, peers are fetched every
//! 200 ms and go stale after 600 ms, and the debounce is 50 ms, so every
//! change reaches every node's answers within about a second; waits poll
//! with a deadline several times that, for a loaded 2-core CI machine.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{QueryOptions, TestServer, http_request};
use hickory_proto::op::ResponseCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The endpoint whose backend fails for chosen nodes.
const PROBED: &str = "192.0.2.1";
/// The endpoint whose backend never fails: always in the answers, so an
/// answer without [`PROBED`] is a health decision, not an empty pool.
const SPARE: &str = "192.0.2.2";
/// `peers.stale_after` in every `[peers]` section.
const STALE_AFTER: Duration = Duration::from_millis(600);
/// How long a change may take to show: a probe (200 ms), a peer fetch
/// (200 ms), the debounce (50 ms), and a lot of room for a loaded machine.
const SETTLE: Duration = Duration::from_secs(6);
/// How long "nothing changes" is watched: six probe and fetch intervals,
/// long after any vote could have tipped.
const HOLD: Duration = Duration::from_millis(1_200);
/// Time between two looks while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The token of a node's admin API (16+ visible characters, as asked).
const TOKEN: &str = "peer-view-token-0123456789";

/// An HTTP health endpoint on loopback that answers 503 to the probes of
/// the nodes in `failing` and 200 "status: OK" to everyone else, so one
/// backend looks down from some vantage points and up from others.
struct Backend {
    address: SocketAddr,
    /// Node names (from `User-Agent: ... (node NAME)`) that get a 503.
    failing: Arc<Mutex<HashSet<String>>>,
    /// Requests seen, by `User-Agent`.
    agents: Arc<Mutex<HashMap<String, usize>>>,
    accept: JoinHandle<()>,
}

impl Backend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let failing = Arc::new(Mutex::new(HashSet::new()));
        let agents = Arc::new(Mutex::new(HashMap::new()));
        let accept = tokio::spawn(serve(listener, Arc::clone(&failing), Arc::clone(&agents)));
        Backend {
            address,
            failing,
            agents,
            accept,
        }
    }

    /// From now on the probes of exactly `nodes` fail.
    fn fail_for(&self, nodes: &[&str]) {
        *self.failing.lock().expect("failing") =
            nodes.iter().map(|&node| node.to_owned()).collect();
    }

    /// Every `User-Agent` seen so far.
    fn agents(&self) -> HashSet<String> {
        self.agents
            .lock()
            .expect("agents")
            .keys()
            .cloned()
            .collect()
    }

    /// Requests seen from `agent`.
    fn requests_from(&self, agent: &str) -> usize {
        self.agents
            .lock()
            .expect("agents")
            .get(agent)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    listener: TcpListener,
    failing: Arc<Mutex<HashSet<String>>>,
    agents: Arc<Mutex<HashMap<String, usize>>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let failing = Arc::clone(&failing);
        let agents = Arc::clone(&agents);
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer));
                match read.await {
                    Ok(Ok(0) | Err(_)) | Err(_) => return,
                    Ok(Ok(read)) => head.extend_from_slice(&buffer[..read]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let agent = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("user-agent")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            let node = agent
                .rsplit_once("(node ")
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .unwrap_or_default()
                .to_owned();
            *agents.lock().expect("agents").entry(agent).or_default() += 1;
            let fails = failing.lock().expect("failing").contains(&node);
            let response: &[u8] = if fails {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nstatus: OK\n"
            };
            let _ = stream.write_all(response).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// The `User-Agent` the probes of `node` must send.
fn agent_of(node: &str) -> String {
    format!(
        "steer-health-check/{} (node {node})",
        env!("CARGO_PKG_VERSION")
    )
}

/// One Steer node: its name (`health.node`) and the running server.
struct Node {
    name: &'static str,
    server: TestServer,
}

impl Node {
    /// Its admin API, as peers list it.
    fn url(&self) -> String {
        format!("http://{}", self.server.admin_addr())
    }
}

/// A node's config: `admin` lines go into `[admin]`, `peering` (made by
/// [`fleet`]) follows `[health]`'s own lines, or is empty for no peers.
/// The pool holds [`PROBED`], probed at `backend`, and [`SPARE`], probed
/// at `spare`; `healthy` drops whichever the verdict says is down.
fn node_config(
    name: &str,
    backend: &Backend,
    spare: &Backend,
    admin: &str,
    peering: &str,
) -> String {
    let probed_port = backend.address.port();
    let spare_port = spare.address.port();
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"
{admin}

[health]
debounce = "50ms"
node = "{name}"
{peering}

[probes.web]
type = "http"
path = "/health"
body_contains = "OK"
interval = "200ms"
jitter = "0ms"
timeout = "150ms"
rise = 1
fall = 1

[sites.fra]

[pools.fra]
site = "fra"
probe = "web"
addresses = [
  {{ address = "{PROBED}", probe_target = "127.0.0.1:{probed_port}" }},
  {{ address = "{SPARE}", probe_target = "127.0.0.1:{spare_port}" }},
]

[[steer]]
name = "www.example.test."
type = "A"
ttl = 30
pools = ["fra"]
policy = ["healthy"]
"#
    )
}

/// What makes a node part of a fleet, to follow `[health]`'s own lines:
/// `health.quorum` when given, then a `[peers]` section listing `urls`
/// with the short intervals of these tests and `extra` lines (a token
/// file).
fn fleet(urls: &[String], quorum: Option<u32>, extra: &str) -> String {
    let quorum = quorum.map_or(String::new(), |count| format!("quorum = {count}\n"));
    let listed: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
    format!(
        "{quorum}\n[peers]\nurls = [{}]\ninterval = \"200ms\"\nstale_after = \"{}ms\"\n{extra}\n",
        listed.join(", "),
        STALE_AFTER.as_millis()
    )
}

/// Starts a node on `config` in a fresh directory (with `admin.token`
/// holding [`TOKEN`], for the configs that name it).
async fn start_node(name: &'static str, config: &str) -> Node {
    let directory = tempfile::tempdir().expect("temporary directory");
    common::write_example(directory.path(), config);
    std::fs::write(directory.path().join("admin.token"), format!("{TOKEN}\n")).expect("token");
    Node {
        name,
        server: TestServer::start_prepared(directory).await,
    }
}

/// Writes `config` over the node's `steer.toml` and asks for a reload;
/// returns the status and the JSON body.
async fn reload(node: &Node, config: &str) -> (u16, Value) {
    std::fs::write(node.server.directory.path().join("steer.toml"), config).expect("config");
    let response = http_request(node.server.admin_addr(), "POST", "/reload").await;
    let body = serde_json::from_str(&response.body)
        .unwrap_or_else(|error| panic!("POST /reload is not JSON ({error}): {}", response.body));
    (response.status, body)
}

/// Starts one node per name without peers, then reloads each with all
/// the others as peers (their admin ports are known only once they run):
/// a mesh as operators would run it, under the default majority.
async fn start_mesh(names: &[&'static str], backend: &Backend, spare: &Backend) -> Vec<Node> {
    let mut nodes = Vec::new();
    for &name in names {
        nodes.push(start_node(name, &node_config(name, backend, spare, "", "")).await);
    }
    // Without peers a node is on its own, as before peers existed.
    let alone = status(&nodes[0]).await;
    assert_eq!(alone["health"]["node"], names[0], "{alone}");
    assert_eq!(alone["health"]["quorum"], Value::Null, "{alone}");
    assert_eq!(alone["health"]["peers"], json!([]), "{alone}");
    let entry = probe_entry(&nodes[0], backend).await;
    assert_eq!(entry.get("votes"), None, "no votes without peers: {entry}");
    assert_eq!(entry["verdict"], entry["observed"], "{entry}");

    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    for (index, node) in nodes.iter().enumerate() {
        let others: Vec<String> = urls
            .iter()
            .enumerate()
            .filter(|&(other, _)| other != index)
            .map(|(_, url)| url.clone())
            .collect();
        let config = node_config(node.name, backend, spare, "", &fleet(&others, None, ""));
        let (code, body) = reload(node, &config).await;
        assert_eq!(code, 200, "{}: {body}", node.name);
        let status = status(node).await;
        assert_eq!(status["health"]["quorum"], "majority", "{status}");
        let peers: Vec<&Value> = status["health"]["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let listed: Vec<&str> = peers
            .iter()
            .filter_map(|peer| peer["url"].as_str())
            .collect();
        assert_eq!(listed, others, "{}: {status}", node.name);
    }
    nodes
}

async fn status(node: &Node) -> Value {
    let response = http_request(node.server.admin_addr(), "GET", "/status").await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("status JSON")
}

/// The `/status` probe entry of `backend`'s target on `node`.
async fn probe_entry(node: &Node, backend: &Backend) -> Value {
    let status = status(node).await;
    let target = backend.address.to_string();
    status["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|probe| probe["target"] == target.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{}: no probe of {target} in {status}", node.name))
}

/// The `/status` endpoint entry of `address` on `node`.
async fn endpoint_entry(node: &Node, address: &str) -> Value {
    let status = status(node).await;
    common::endpoint_in(&status, address)
        .unwrap_or_else(|| panic!("{}: no endpoint {address} in {status}", node.name))
}

/// The `health.peers` entry of `url` in a `/status` body.
fn peer_entry(status: &Value, url: &str) -> Value {
    status["health"]["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|peer| peer["url"] == url)
        .cloned()
        .unwrap_or_else(|| panic!("no peer {url} in {status}"))
}

async fn metrics(node: &Node) -> String {
    let response = http_request(node.server.admin_addr(), "GET", "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

/// The value of the series `series` (name and labels as rendered).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Whether `node` answers [`PROBED`]; [`SPARE`] must be in every answer.
async fn serves_probed(node: &Node) -> bool {
    let (response, addresses) =
        common::ask_a(&node.server, "www.example.test.", &QueryOptions::default()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(
        addresses.iter().any(|address| address == SPARE),
        "{}: {addresses:?} lacks the spare",
        node.name
    );
    addresses.iter().any(|address| address == PROBED)
}

/// Polls `check` until it passes; panics with its last complaint after
/// [`SETTLE`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(complaint) if started.elapsed() > SETTLE => {
                panic!("{what}: still not after {SETTLE:?}: {complaint}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Waits until every node of `nodes` answers [`PROBED`] (or leaves it out).
async fn wait_serving(nodes: &[&Node], expected: bool) {
    for node in nodes {
        eventually(
            &format!("{} serving {PROBED}: {expected}", node.name),
            async || match serves_probed(node).await {
                serving if serving == expected => Ok(()),
                serving => Err(format!("serving {serving}")),
            },
        )
        .await;
    }
}

/// Asserts that every node of `nodes` keeps answering [`PROBED`] (or
/// keeps leaving it out) for [`HOLD`].
async fn hold_serving(nodes: &[&Node], expected: bool) {
    let started = Instant::now();
    while started.elapsed() < HOLD {
        for node in nodes {
            assert_eq!(
                serves_probed(node).await,
                expected,
                "{} changed its answers {:?} into the hold",
                node.name,
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node`'s probe entry of `backend` shows `observed`,
/// `verdict` and, when given, `votes` (`[up, down]`).
async fn wait_probe(
    node: &Node,
    backend: &Backend,
    observed: &str,
    verdict: &str,
    votes: Option<[u32; 2]>,
) {
    let expected_votes = votes.map(|[up, down]| json!({"up": up, "down": down}));
    eventually(
        &format!(
            "{}: observed {observed}, verdict {verdict}, votes {votes:?}",
            node.name
        ),
        async || {
            let entry = probe_entry(node, backend).await;
            let matches = entry["observed"] == observed
                && entry["verdict"] == verdict
                && entry.get("votes") == expected_votes.as_ref();
            if matches {
                Ok(())
            } else {
                Err(entry.to_string())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_of_three_nodes_decides_and_one_dissenter_changes_nothing() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    let nodes = start_mesh(&["a", "b", "c"], &backend, &spare).await;
    let [a, b, c] = [&nodes[0], &nodes[1], &nodes[2]];
    let all = [a, b, c];
    wait_serving(&all, true).await;

    // Only a's path fails: a sees it, is outvoted, and nobody drops it.
    backend.fail_for(&["a"]);
    wait_probe(a, &backend, "down", "up", Some([2, 1])).await;
    for node in [b, c] {
        // Their own probes pass; a's down vote has reached them.
        wait_probe(node, &backend, "up", "up", Some([2, 1])).await;
    }
    let entry = probe_entry(a, &backend).await;
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("503"),
        "a's own probe failed on the 503: {entry}"
    );
    // `/status` endpoints: `observed` is a's own probe, `up` what answers do.
    let endpoint = endpoint_entry(a, PROBED).await;
    assert_eq!(
        (&endpoint["observed"], &endpoint["up"]),
        (&json!("down"), &json!(true)),
        "{endpoint}"
    );
    hold_serving(&all, true).await;

    // Two of three see it down: all drop it, c too although its probe passes.
    backend.fail_for(&["a", "b"]);
    wait_serving(&all, false).await;
    wait_probe(c, &backend, "up", "down", Some([1, 2])).await;
    let endpoint = endpoint_entry(c, PROBED).await;
    assert_eq!(
        (&endpoint["observed"], &endpoint["up"]),
        (&json!("up"), &json!(false)),
        "{endpoint}"
    );
    let target = backend.address;
    let text = metrics(c).await;
    assert_eq!(
        metric(
            &text,
            &format!("steer_health_verdict_up{{probe=\"web\",target=\"{target}\"}}")
        ),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("steer_probe_up{{probe=\"web\",target=\"{target}\"}}")
        ),
        1.0,
        "c's own probe still passes"
    );
    for peer in [a, b] {
        let series = format!("steer_health_peer_fresh{{peer=\"{}\"}}", peer.url());
        assert_eq!(metric(&text, &series), 1.0, "{series}");
        let series = format!(
            "steer_health_peer_fetches_total{{peer=\"{}\",result=\"ok\"}}",
            peer.url()
        );
        assert!(metric(&text, &series) >= 1.0, "{series}");
    }
    let report = status(c).await;
    assert_eq!(report["health"]["node"], "c", "{report}");
    for peer in [a, b] {
        let entry = peer_entry(&report, &peer.url());
        assert_eq!(entry["node"], peer.name, "{entry}");
        assert_eq!(entry["fresh"], true, "{entry}");
        assert_eq!(entry["last_error"], Value::Null, "{entry}");
        assert_eq!(entry["targets"], 2, "both targets are in its view: {entry}");
        assert!(entry["last_fetch"].as_f64().is_some(), "{entry}");
    }
    hold_serving(&all, false).await;

    // Back for everyone: all serve it again.
    backend.fail_for(&[]);
    wait_serving(&all, true).await;
    for node in all {
        wait_probe(node, &backend, "up", "up", Some([3, 0])).await;
    }

    // Each node's probes named it, and nothing else probed the backends.
    let expected: HashSet<String> = ["a", "b", "c"].map(agent_of).into();
    for server in [&backend, &spare] {
        assert_eq!(server.agents(), expected);
    }
    for node in all {
        assert!(backend.requests_from(&agent_of(node.name)) >= 3);
    }
    for node in nodes {
        node.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_stops_voting_after_stale_after() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    let mut nodes = start_mesh(&["a", "b", "c"], &backend, &spare).await;
    backend.fail_for(&["a", "b"]);
    let all: Vec<&Node> = nodes.iter().collect();
    wait_serving(&all, false).await;
    wait_probe(&nodes[0], &backend, "down", "down", Some([1, 2])).await;

    let b = nodes.remove(1);
    let b_url = b.url();
    // Stopped in the background, so that a is watched from the moment b's
    // admin API closes: the window in which b fails but still votes is
    // only stale_after minus one interval long.
    let stopping = tokio::spawn(b.server.shutdown());
    let [a, c] = [&nodes[0], &nodes[1]];

    // Until stale_after has passed since b's last good fetch it still
    // votes (a failed fetch alone does not silence it); after that it
    // does not. Wall clock against `last_fetch`, with 50 ms for the
    // difference between the wall and the monotonic clock.
    let tolerance = Duration::from_millis(50);
    let mut failed_but_fresh = false;
    eventually("b's view goes stale at a", async || {
        let asked = SystemTime::now();
        let report = status(a).await;
        let answered = SystemTime::now();
        let entry = peer_entry(&report, &b_url);
        let fresh = entry["fresh"].as_bool().expect("fresh is a boolean");
        let last_fetch = entry["last_fetch"]
            .as_f64()
            .unwrap_or_else(|| panic!("b was fetched before it stopped: {entry}"));
        let age = |at: SystemTime| {
            at.duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs_f64()
                - last_fetch
        };
        if fresh {
            assert!(
                age(asked) <= (STALE_AFTER + tolerance).as_secs_f64(),
                "still fresh {} s after its last fetch: {entry}",
                age(asked)
            );
            failed_but_fresh |= entry["last_error"].is_string();
            Err(entry.to_string())
        } else {
            assert!(
                age(answered) >= (STALE_AFTER - tolerance).as_secs_f64(),
                "stale {} s after its last fetch, before stale_after: {entry}",
                age(answered)
            );
            Ok(())
        }
    })
    .await;
    stopping.await.expect("b stopped");
    // One failed fetch must not silence a peer: some look saw b's fetch
    // failing while its last view still voted.
    assert!(
        failed_but_fresh,
        "b stopped voting as soon as a fetch failed, not after stale_after"
    );

    // a (down) against c (up) is a tie, and a tie serves.
    wait_serving(&[a, c], true).await;
    wait_probe(a, &backend, "down", "up", Some([1, 1])).await;
    wait_probe(c, &backend, "up", "up", Some([1, 1])).await;
    let report = status(a).await;
    let entry = peer_entry(&report, &b_url);
    assert_eq!(entry["fresh"], false, "{entry}");
    assert_eq!(entry["node"], "b", "the last name it gave is kept: {entry}");
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{entry}");
    assert!(entry["failures"].as_u64() >= Some(1), "{entry}");
    assert_eq!(peer_entry(&report, &c.url())["fresh"], true, "{report}");

    let text = metrics(a).await;
    assert_eq!(
        metric(
            &text,
            &format!("steer_health_peer_fresh{{peer=\"{b_url}\"}}")
        ),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("steer_health_peer_fresh{{peer=\"{}\"}}", c.url())
        ),
        1.0
    );
    let failed = format!("steer_health_peer_fetches_total{{peer=\"{b_url}\",result=\"failed\"}}");
    assert!(metric(&text, &failed) >= 1.0, "{failed}");
    hold_serving(&[a, c], true).await;
    for node in nodes {
        node.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integer_quorum_counts_down_votes_whatever_the_up_votes() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    // a and b only probe and publish their views; c and d count them.
    let a = start_node("a", &node_config("a", &backend, &spare, "", "")).await;
    let b = start_node("b", &node_config("b", &backend, &spare, "", "")).await;
    let one = fleet(&[a.url()], Some(1), "");
    let c = start_node("c", &node_config("c", &backend, &spare, "", &one)).await;
    let two = fleet(&[a.url(), b.url(), c.url()], Some(2), "");
    let d = start_node("d", &node_config("d", &backend, &spare, "", &two)).await;
    assert_eq!(status(&c).await["health"]["quorum"], "1");
    assert_eq!(status(&d).await["health"]["quorum"], "2");
    let all = [&a, &b, &c, &d];
    wait_serving(&all, true).await;

    // One down vote is enough for c (a majority would call 1 to 1 a tie),
    // not for d.
    backend.fail_for(&["a"]);
    wait_serving(&[&c], false).await;
    wait_probe(&c, &backend, "up", "down", Some([1, 1])).await;
    // c's view carries its own probe (up), not its verdict: d counts it up.
    wait_probe(&d, &backend, "up", "up", Some([3, 1])).await;
    // a has no peers and follows its own probe, as before peers existed.
    wait_probe(&a, &backend, "down", "down", None).await;
    let view = http_request(c.server.admin_addr(), "GET", "/health/view").await;
    assert_eq!(view.status, 200, "{}", view.body);
    let view: Value = serde_json::from_str(&view.body).expect("view JSON");
    assert_eq!(view["node"], "c", "{view}");
    assert!(
        view["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|target| target["target"] == backend.address.to_string()
                && target["probe"] == "web"
                && target["observed"] == "up"),
        "{view}"
    );
    wait_serving(&[&a], false).await;
    hold_serving(&[&b, &d], true).await;
    hold_serving(&[&c], false).await;

    // Two down votes against two up votes: down for a quorum of 2, where a
    // majority would serve.
    backend.fail_for(&["a", "b"]);
    wait_serving(&[&d], false).await;
    wait_probe(&d, &backend, "up", "down", Some([2, 2])).await;

    backend.fail_for(&[]);
    wait_serving(&all, true).await;
    for node in [a, b, c, d] {
        node.server.shutdown().await;
    }
}

/// `GET path` with `authorization` as the header (none when `None`):
/// status and body. The shared helper sends no `Authorization`.
async fn get_with(node: &Node, path: &str, authorization: Option<&str>) -> (u16, String) {
    // reqwest panics on building a client before a TLS provider is installed.
    steer::probe::check::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut request = client.get(format!("{}{path}", node.url()));
    if let Some(authorization) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, authorization);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_needs_the_admin_token_and_peers_without_it_do_not_vote() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    let guarded = "token_file = \"admin.token\"";
    let a = start_node("a", &node_config("a", &backend, &spare, guarded, "")).await;

    for authorization in [None, Some("Bearer peer-view-token-012345678X".to_owned())] {
        let (code, body) = get_with(&a, "/health/view", authorization.as_deref()).await;
        assert_eq!(code, 401, "{authorization:?}: {body}");
        assert!(!body.contains(TOKEN), "{body}");
    }
    let (code, body) = get_with(&a, "/health/view", Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(code, 200, "{body}");
    let view: Value = serde_json::from_str(&body).expect("view JSON");
    assert_eq!(view["node"], "a", "{view}");
    let targets = view["targets"].as_array().cloned().unwrap_or_default();
    assert_eq!(targets.len(), 2, "{view}");
    assert!(
        targets.contains(&json!({
            "probe": "web",
            "target": backend.address.to_string(),
            "observed": "up",
        })),
        "{view}"
    );

    // b sends a's admin token (the same file name holds it in b's
    // directory); c sends none. Both would drop the endpoint on a single
    // down vote.
    let with_token = fleet(&[a.url()], Some(1), "token_file = \"admin.token\"");
    let b = start_node("b", &node_config("b", &backend, &spare, "", &with_token)).await;
    let without = fleet(&[a.url()], Some(1), "");
    let c = start_node("c", &node_config("c", &backend, &spare, "", &without)).await;
    let a_url = a.url();
    eventually("b fetches a's view", async || {
        let entry = peer_entry(&status(&b).await, &a_url);
        let good = entry["fresh"] == true
            && entry["node"] == "a"
            && entry["last_error"].is_null()
            && entry["fetches"].as_u64() >= Some(2)
            && entry["failures"] == 0;
        if good { Ok(()) } else { Err(entry.to_string()) }
    })
    .await;
    eventually("c is refused a's view", async || {
        let entry = peer_entry(&status(&c).await, &a_url);
        let error = entry["last_error"].as_str().unwrap_or_default();
        let refused = entry["fresh"] == false
            && error.contains("401")
            && entry["fetches"] == 0
            && entry["failures"].as_u64() >= Some(2)
            && entry["node"].is_null();
        if refused {
            Ok(())
        } else {
            Err(entry.to_string())
        }
    })
    .await;
    let text = metrics(&c).await;
    assert_eq!(
        metric(
            &text,
            &format!("steer_health_peer_fresh{{peer=\"{a_url}\"}}")
        ),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("steer_health_peer_fetches_total{{peer=\"{a_url}\",result=\"ok\"}}")
        ),
        0.0
    );

    // a's down vote reaches b, which drops the endpoint; c never hears it.
    backend.fail_for(&["a"]);
    wait_serving(&[&b], false).await;
    wait_probe(&b, &backend, "up", "down", Some([1, 1])).await;
    wait_probe(&c, &backend, "up", "up", Some([1, 0])).await;
    hold_serving(&[&c], true).await;
    for node in [a, b, c] {
        node.server.shutdown().await;
    }
}

/// Runs `steer check --config FILE`.
fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(["check", "--config", &config.display().to_string()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run steer")
}

#[test]
fn bad_peer_settings_are_refused_naming_their_key() {
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::write(directory.path().join("peer.token"), format!("{TOKEN}\n")).expect("token");
    std::fs::write(directory.path().join("short.token"), "short\n").expect("token");
    let config = |health: &str| {
        format!(
            r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"

[health]
{health}

[probes.web]
type = "http"

[sites.fra]

[pools.fra]
site = "fra"
probe = "web"
addresses = [{{ address = "{PROBED}", probe_target = "127.0.0.1:9" }}]

[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra"]
policy = ["healthy"]
"#
        )
    };
    let path = directory.path().join("steer.toml");
    // `[health]` lines come first, then the `[peers]` section.
    let peers = "\n[peers]\nurls = [\"http://127.0.0.1:9\", \"http://127.0.0.1:10/\"]";

    // The same config with good peer settings passes, so each failure
    // below is the setting it changes.
    let good = format!(
        "node = \"fra-1\"\nquorum = 3\n{peers}\ntoken_file = \"peer.token\"\n\
         interval = \"200ms\"\nstale_after = \"1s\""
    );
    common::write_example(directory.path(), &config(&good));
    let output = check(&path);
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let only = |urls: &str| format!("\n[peers]\nurls = [{urls}]");
    let cases = [
        (only("\"127.0.0.1:8053\""), "peers.urls[0]"),
        (
            only("\"http://127.0.0.1:8053\", \"http://127.0.0.1:8053/\""),
            "peers.urls[1]",
        ),
        (only("\"ftp://127.0.0.1:8053\""), "peers.urls[0]"),
        (
            only("\"http://admin:secret@127.0.0.1:8053\""),
            "peers.urls[0]",
        ),
        (only(""), "peers.urls"),
        // Two peers: three vantage points at most.
        (format!("quorum = 4\n{peers}"), "health.quorum"),
        (format!("quorum = 0\n{peers}"), "health.quorum"),
        (format!("quorum = \"most\"\n{peers}"), "health.quorum"),
        // Nobody to vote with.
        ("quorum = 1".to_owned(), "health.quorum"),
        (
            format!("{peers}\ninterval = \"500ms\"\nstale_after = \"200ms\""),
            "peers.stale_after",
        ),
        (format!("{peers}\ninterval = \"50ms\""), "peers.interval"),
        (
            format!("{peers}\ntoken_file = \"short.token\""),
            "peers.token_file",
        ),
        (
            format!("{peers}\ntoken_file = \"absent.token\""),
            "peers.token_file",
        ),
        ("node = \"fra 1\"".to_owned(), "health.node"),
        ("node = \"\"".to_owned(), "health.node"),
    ];
    for (health, key) in cases {
        common::write_example(directory.path(), &config(&health));
        let output = check(&path);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{health}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(
            stderr.contains(&format!(": {key}: ")),
            "{health}: the error names {key}: {stderr}"
        );
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains("secret"),
                "a password is never echoed: {text}"
            );
            assert!(!text.contains(TOKEN), "a token is never echoed: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_keeps_the_peers_and_a_good_one_changes_them() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    let a = start_node("a", &node_config("a", &backend, &spare, "", "")).await;
    let a_url = a.url();
    let majority = fleet(std::slice::from_ref(&a_url), None, "");
    let b = start_node("b", &node_config("b", &backend, &spare, "", &majority)).await;

    // Fetches that succeeded so far, once a's view is fresh at b.
    let fetches = async || {
        let report = status(&b).await;
        let entry = peer_entry(&report, &a_url);
        assert_eq!(entry["fresh"], true, "{entry}");
        entry["fetches"].as_u64().expect("fetches")
    };
    let rising = async |from: u64| {
        eventually("b keeps fetching a's view", async || {
            let now = fetches().await;
            if now >= from + 3 {
                Ok(())
            } else {
                Err(format!("{now} fetches, from {from}"))
            }
        })
        .await;
    };

    // Two bad peer settings: refused, both named, nothing changes.
    let bad = fleet(std::slice::from_ref(&a_url), Some(5), "").replace(
        &format!("stale_after = \"{}ms\"", STALE_AFTER.as_millis()),
        "stale_after = \"100ms\"",
    );
    assert!(bad.contains("\"100ms\""), "{bad}");
    let (code, body) = reload(&b, &node_config("b", &backend, &spare, "", &bad)).await;
    assert_eq!(code, 422, "{body}");
    let errors = body["errors"].to_string();
    for key in ["health.quorum", "peers.stale_after"] {
        assert!(errors.contains(key), "{key} is named: {body}");
    }
    rising(fetches().await).await;
    let report = status(&b).await;
    assert_eq!(report["health"]["quorum"], "majority", "{report}");
    // Under the old majority one down vote of two is a tie, which serves.
    backend.fail_for(&["a"]);
    wait_probe(&b, &backend, "up", "up", Some([1, 1])).await;
    hold_serving(&[&b], true).await;

    // A good reload applies at once, and the fetches go on.
    let one = fleet(std::slice::from_ref(&a_url), Some(1), "");
    let (code, body) = reload(&b, &node_config("b", &backend, &spare, "", &one)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&b).await["health"]["quorum"], "1");
    wait_serving(&[&b], false).await;
    wait_probe(&b, &backend, "up", "down", Some([1, 1])).await;
    rising(fetches().await).await;

    // The node's name is set at start: a reload warns and keeps it.
    let renamed = node_config("renamed", &backend, &spare, "", &one);
    let (code, body) = reload(&b, &renamed).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["warnings"].to_string().contains("health.node"),
        "{body}"
    );
    let report = status(&b).await;
    assert_eq!(report["health"]["node"], "b", "{report}");
    let (code, body) = get_with(&b, "/health/view", None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"node\":\"b\""), "{body}");
    rising(fetches().await).await;
    assert_eq!(backend.requests_from(&agent_of("renamed")), 0);

    // Without [peers] the node is on its own again: its probe says up.
    let (code, body) = reload(&b, &node_config("b", &backend, &spare, "", "")).await;
    assert_eq!(code, 200, "{body}");
    let report = status(&b).await;
    assert_eq!(report["health"]["quorum"], Value::Null, "{report}");
    assert_eq!(report["health"]["peers"], json!([]), "{report}");
    wait_serving(&[&b], true).await;
    wait_probe(&b, &backend, "up", "up", None).await;
    for node in [a, b] {
        node.server.shutdown().await;
    }
}

/// A config shared by the whole fleet lists every node, this one
/// included, and an operator may list one node under two names. Each node
/// must still vote once: a node that counted itself twice would take an
/// endpoint out of its answers on its own probe alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_listed_as_its_own_peer_or_twice_votes_once() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    let b = start_node("b", &node_config("b", &backend, &spare, "", "")).await;
    let a = start_node("a", &node_config("a", &backend, &spare, "", "")).await;
    // b again, by name: the same node behind another URL.
    let b_by_name = format!("http://localhost:{}", b.server.admin_addr().port());
    let urls = [a.url(), b.url(), b_by_name.clone()];
    let config = node_config("a", &backend, &spare, "", &fleet(&urls, None, ""));
    let (code, body) = reload(&a, &config).await;
    assert_eq!(code, 200, "{body}");
    eventually("a recognizes itself and b's second URL", async || {
        let status = status(&a).await;
        let itself = peer_entry(&status, &a.url());
        let again = peer_entry(&status, &b_by_name);
        if itself["ignored"] == "this node itself"
            && again["ignored"] == format!("the same node as {}", b.url()).as_str()
            && peer_entry(&status, &b.url())["ignored"] == Value::Null
        {
            Ok(())
        } else {
            Err(status["health"].to_string())
        }
    })
    .await;

    // a alone sees it down: one vote each way, a tie, so it keeps serving.
    backend.fail_for(&["a"]);
    wait_probe(&a, &backend, "down", "up", Some([1, 1])).await;
    // The endpoint's own entry carries the votes too.
    let endpoint = endpoint_entry(&a, PROBED).await;
    assert_eq!(endpoint["votes"], json!({"up": 1, "down": 1}), "{endpoint}");
    assert_eq!(endpoint["up"], true, "{endpoint}");
    hold_serving(&[&a], true).await;
    // Both see it down: two real votes, and it goes.
    backend.fail_for(&["a", "b"]);
    wait_probe(&a, &backend, "down", "down", Some([0, 2])).await;
    wait_serving(&[&a], false).await;
    for node in [a, b] {
        node.server.shutdown().await;
    }
}

/// With `share_admin`, a drain or an override made on any node applies on
/// every node that shares, the latest setting of each pool or address
/// winning; a node that does not share keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_and_overrides_made_on_one_node_apply_on_every_node_that_shares() {
    let backend = Backend::start().await;
    let spare = Backend::start().await;
    let a = start_node("a", &node_config("a", &backend, &spare, "", "")).await;
    let b = start_node("b", &node_config("b", &backend, &spare, "", "")).await;
    let c = start_node("c", &node_config("c", &backend, &spare, "", "")).await;
    let shares = "share_admin = true\n";
    for (node, others, extra) in [
        (&a, [b.url(), c.url()], shares),
        (&b, [a.url(), c.url()], shares),
        (&c, [a.url(), b.url()], ""),
    ] {
        let config = node_config(
            node.name,
            &backend,
            &spare,
            "",
            &fleet(&others, None, extra),
        );
        let (code, body) = reload(node, &config).await;
        assert_eq!(code, 200, "{}: {body}", node.name);
    }
    wait_serving(&[&a, &b, &c], true).await;

    // Forced down on a: b follows, c (not sharing) does not.
    let forced = http_request(
        a.server.admin_addr(),
        "POST",
        &format!("/endpoints/{PROBED}/down"),
    )
    .await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    wait_serving(&[&a, &b], false).await;
    let endpoint = endpoint_entry(&b, PROBED).await;
    assert_eq!(endpoint["forced"], "down", "{endpoint}");
    hold_serving(&[&c], true).await;

    // Set back to auto on b, the later setting: a follows.
    let auto = http_request(
        b.server.admin_addr(),
        "POST",
        &format!("/endpoints/{PROBED}/auto"),
    )
    .await;
    assert_eq!(auto.status, 200, "{}", auto.body);
    wait_serving(&[&a, &b], true).await;
    assert_eq!(endpoint_entry(&a, PROBED).await["forced"], Value::Null);

    // A drain on b reaches a, and is written to a's state file.
    let drained = http_request(b.server.admin_addr(), "POST", "/pools/fra/drain").await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    eventually("a takes b's drain", async || {
        let endpoint = endpoint_entry(&a, SPARE).await;
        if endpoint["drained"] == true {
            Ok(())
        } else {
            Err(endpoint.to_string())
        }
    })
    .await;
    let saved = std::fs::read_to_string(a.server.directory.path().join("steer.state.json"))
        .expect("a's state file");
    assert!(
        saved.contains("\"pool:fra\"") && saved.contains("\"node\": \"b\""),
        "{saved}"
    );
    assert_eq!(endpoint_entry(&c, SPARE).await["drained"], false);
    for node in [a, b, c] {
        node.server.shutdown().await;
    }
}
