//! Explain shows the latency data a `latency` step used: the source that
//! decided (a measured network with sample counts and ages, a matrix row
//! with its line, this node), the RTT of each pool there, and the sources
//! passed over on the way down the fallback order. `steer explain` (the
//! binary) reads the matrix only; `GET /explain` on a live server also
//! reads what was posted to `POST /latency`.
//!
//! `www.example.test A` is steered by `["latency", "priority"]` over
//! web-iad (listed first) and web-fra, with a 10% / 5 ms margin; the
//! matrix has 100.64.0.0/16 faster to fra (lines 2 and 3) and AS24940
//! faster to fra (lines 4 and 5). Clients are located with the
//! repository's sample database: 8.8.8.0/24 is US (AS15169), 46.4.0.0/16
//! DE (AS24940), 203.0.113.0/24 BR; 100.64.0.0/10 and 10.0.0.0/8 are not
//! in it.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{TestServer, http_request};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[geoip]
database = "geoip/sample-city.mmdb"

[latency]
matrix = "latency.csv"
compile_interval = "200ms"

[sites.fra]
location = [50.11, 8.68]

[sites.iad]
location = [38.94, -77.46]

[pools.web-fra]
site = "fra"
addresses = ["192.0.2.10"]

[pools.web-iad]
site = "iad"
addresses = ["198.51.100.10"]

[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{ latency = { margin_percent = 10, margin_ms = 5 } }, "priority"]
"#;

const MATRIX: &str = "selector,site,rtt_ms\n\
                      100.64.0.0/16,fra,20\n\
                      100.64.0.0/16,iad,90\n\
                      AS24940,fra,12\n\
                      AS24940,iad,85\n";

/// A directory with the config, zone, matrix and sample database.
fn prepared() -> tempfile::TempDir {
    let directory = common::example_directory(CONFIG);
    std::fs::write(directory.path().join("latency.csv"), MATRIX).expect("matrix");
    std::fs::create_dir(directory.path().join("geoip")).expect("geoip directory");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample-city.mmdb"),
        directory.path().join("geoip/sample-city.mmdb"),
    )
    .expect("copy the sample database");
    directory
}

/// Runs `steer explain --config DIRECTORY/steer.toml www.example.test A
/// --client CLIENT [EXTRA]`, bounded in time.
fn explain_cli(directory: &Path, client: &str, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steer"))
        .arg("explain")
        .arg("--config")
        .arg(directory.join("steer.toml"))
        .args(["www.example.test", "A", "--client", client])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run steer explain");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll steer explain").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("steer explain --client {client} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("steer explain output");
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn cli_text(directory: &Path, client: &str) -> String {
    String::from_utf8_lossy(&explain_cli(directory, client, &[]).stdout).into_owned()
}

fn cli_json(directory: &Path, client: &str) -> Value {
    let output = explain_cli(directory, client, &["--json"]);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn assert_contains(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// The explanation's one location step, the `latency` one.
fn latency_step(explanation: &Value) -> &Value {
    let step = &explanation["policy"]["location_steps"][0];
    assert_eq!(step["step"], "latency", "{explanation}");
    step
}

/// The explanation agrees with the table: the table compiled what the
/// location steps leave (only its first pool, for these policies whose
/// answer is their first pool), and no note says otherwise.
fn assert_matches_the_table(explanation: &Value) {
    let output = latency_step(explanation)["output"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let decision = explanation["policy"]["per_query"]["decision"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !decision.is_empty() && output.starts_with(&decision),
        "{explanation}"
    );
    assert_eq!(explanation["notes"], json!([]), "{explanation}");
}

#[test]
fn cli_shows_the_matrix_prefix_that_decided_with_its_rtts() {
    let directory = prepared();
    let explanation = cli_json(directory.path(), "100.64.7.9");
    let step = latency_step(&explanation);
    assert_eq!(step["matched"], "matrix 100.64.0.0/16 (line 2)");
    assert_eq!(step["input"], json!(["web-iad", "web-fra"]));
    assert_eq!(step["output"], json!(["web-fra", "web-iad"]));
    assert_eq!(
        step["latency"],
        json!({
            "source": {
                "kind": "matrix_prefix",
                "label": "matrix 100.64.0.0/16 (line 2)",
                "key": "matrix 100.64.0.0/16",
                "rtts": [
                    {"pool": "web-fra", "site": "fra", "rtt_ms": 20.0,
                     "samples": null, "age_seconds": null, "line": 2},
                    {"pool": "web-iad", "site": "iad", "rtt_ms": 90.0,
                     "samples": null, "age_seconds": null, "line": 3},
                ],
            },
            "skipped": [
                "no measurements: steer explain reads the matrix only (GET /explain on the \
                 server has them)"
            ],
            "without_rtt": [],
            "fallback": null,
            "margin": null,
        })
    );
    assert_matches_the_table(&explanation);
    assert_eq!(explanation["answer"]["records"][0]["data"], "192.0.2.10");

    let text = cli_text(directory.path(), "100.64.7.9");
    assert_contains(
        &text,
        &[
            "    latency   matrix 100.64.0.0/16 (line 2): web-iad, web-fra -> web-fra, web-iad\n",
            "              web-fra 20.0 ms, web-iad 90.0 ms\n",
            "              no measurements: steer explain reads the matrix only (GET /explain \
             on the server has them); so matrix 100.64.0.0/16 (line 2) decides\n",
        ],
    );
}

#[test]
fn cli_shows_the_fallback_to_distance_or_order_for_a_client_without_data() {
    let directory = prepared();
    // Located in the US with no RTT anywhere: by distance, iad first.
    let explanation = cli_json(directory.path(), "8.8.8.0/24");
    let step = latency_step(&explanation);
    assert_eq!(step["matched"], "no latency data: by distance");
    assert_eq!(step["output"], json!(["web-iad", "web-fra"]));
    let latency = &step["latency"];
    assert_eq!(latency["source"], Value::Null);
    assert_eq!(latency["fallback"], "distance");
    assert_eq!(latency["without_rtt"], json!(["web-iad", "web-fra"]));
    assert_eq!(
        latency["skipped"],
        json!([
            "no measurements: steer explain reads the matrix only (GET /explain on the \
             server has them)",
            "no matrix prefix covers 8.8.8.0",
            "no matrix row for AS15169",
            "no matrix row for country US",
            "no RTT measured from this node",
        ])
    );
    assert_matches_the_table(&explanation);

    // Not in the database: no ASN, no country, no coordinates.
    let explanation = cli_json(directory.path(), "10.1.2.3");
    let step = latency_step(&explanation);
    assert_eq!(
        step["matched"],
        "no latency data and no coordinates: order unchanged"
    );
    assert_eq!(step["output"], json!(["web-iad", "web-fra"]));
    assert_eq!(step["latency"]["fallback"], "configured_order");
    assert_eq!(
        step["latency"]["skipped"][2], "no ASN known for the client",
        "{step}"
    );
    assert_matches_the_table(&explanation);

    let text = cli_text(directory.path(), "10.1.2.3");
    assert_contains(
        &text,
        &[
            "    latency   no latency data and no coordinates: order unchanged: web-iad, \
             web-fra -> web-iad, web-fra\n",
            "no matrix prefix covers 10.1.2.3; no ASN known for the client; no country known \
             for the client; no RTT measured from this node\n",
        ],
    );
}

/// The matrix's ASN rows, and distance, need the client's location in
/// the table as well as in explain: a policy whose only location step is
/// `latency` must be compiled with the GeoIP partition.
#[test]
fn cli_asn_row_decides_in_explain_and_in_the_table() {
    let directory = prepared();
    let explanation = cli_json(directory.path(), "46.4.0.0/16");
    let step = latency_step(&explanation);
    assert_eq!(step["matched"], "matrix AS24940 (line 4)");
    assert_eq!(step["output"], json!(["web-fra", "web-iad"]));
    assert_matches_the_table(&explanation);
}

/// POSTs `body` to `/latency` and checks it was taken whole.
async fn post_latency(server: &TestServer, rows: &[(&str, &str, f64)]) {
    let samples: Vec<Value> = rows
        .iter()
        .map(|(client, site, rtt)| json!({"client": client, "site": site, "rtt_ms": rtt}))
        .collect();
    let body = json!({ "samples": samples }).to_string();
    let address = server.admin_addr();
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!(
        "POST /latency HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.contains(&format!("\"accepted\":{}", rows.len())),
        "{raw}"
    );
}

async fn live(server: &TestServer, client: &str) -> Value {
    let response = http_request(
        server.admin_addr(),
        "GET",
        &format!("/explain?name=www.example.test&type=A&client={client}"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("explain JSON")
}

/// The live explanation as `steer explain` would print it.
fn live_text(server: &TestServer, client: &str) -> String {
    steer::explain::explain(
        &server.running().control.serving(),
        "www.example.test",
        "A",
        client,
    )
    .expect("explain")
    .to_text()
}

/// Polls `/explain` until the table's decision for `client` is
/// `expected` (a recompile took the new data); panics after 5 s.
async fn wait_for_decision(server: &TestServer, client: &str, expected: Value) -> Value {
    let started = Instant::now();
    loop {
        let explanation = live(server, client).await;
        if explanation["policy"]["per_query"]["decision"] == expected {
            return explanation;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{client} still decided as {}",
            explanation["policy"]["per_query"]["decision"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[tokio::test]
async fn live_explain_shows_the_measured_network_with_samples_and_age_and_the_margin() {
    let server = TestServer::start_prepared(prepared()).await;
    // Nothing measured yet: BR is nearer iad.
    let before = live(&server, "203.0.113.0/24").await;
    assert_eq!(
        latency_step(&before)["latency"]["skipped"][0],
        "no measurement for 203.0.113.0/24"
    );
    assert_eq!(latency_step(&before)["latency"]["fallback"], "distance");

    post_latency(
        &server,
        &[
            ("203.0.113.5", "fra", 30.0),
            ("203.0.113.0/24", "fra", 32.0),
            ("203.0.113.0/24", "iad", 90.0),
        ],
    )
    .await;
    let explanation = wait_for_decision(&server, "203.0.113.0/24", json!(["web-fra"])).await;
    assert_matches_the_table(&explanation);
    let step = latency_step(&explanation);
    assert_eq!(step["matched"], "network 203.0.113.0/24 (measured)");
    let latency = &step["latency"];
    assert_eq!(latency["source"]["kind"], "measured");
    assert_eq!(latency["source"]["key"], "network 203.0.113.0/24");
    assert_eq!(latency["skipped"], json!([]));
    assert_eq!(latency["margin"], Value::Null);
    let rtts = latency["source"]["rtts"].as_array().expect("rtts");
    let summary: Vec<(&str, u64, i64)> = rtts
        .iter()
        .map(|rtt| {
            (
                rtt["pool"].as_str().unwrap_or(""),
                rtt["samples"].as_u64().unwrap_or(0),
                // Tenths of a ms: the model keeps f32.
                (rtt["rtt_ms"].as_f64().unwrap_or(0.0) * 10.0).round() as i64,
            )
        })
        .collect();
    // 30, then 32 at the default weight 0.3: 30.6.
    assert_eq!(summary, [("web-fra", 2, 306), ("web-iad", 1, 900)]);
    for rtt in rtts {
        assert!(rtt["age_seconds"].as_u64() < Some(30), "{rtt}");
        assert_eq!(rtt["line"], Value::Null);
    }
    let text = live_text(&server, "203.0.113.0/24");
    assert_contains(
        &text,
        &[
            "    latency   network 203.0.113.0/24 (measured): web-iad, web-fra -> web-fra, \
             web-iad\n",
            "              web-fra 30.6 ms (2 samples, ",
            "web-iad 90.0 ms (1 sample, ",
        ],
    );

    // iad gets a little faster than fra, not by 10% and 5 ms: fra stays.
    for _ in 0..20 {
        post_latency(&server, &[("203.0.113.0/24", "iad", 28.0)]).await;
    }
    let held = live(&server, "203.0.113.0/24").await;
    let step = latency_step(&held);
    assert_eq!(step["output"], json!(["web-fra", "web-iad"]));
    let margin = step["latency"]["margin"].as_str().unwrap_or_default();
    assert!(
        margin.starts_with("web-fra stays first: it was chosen before, and web-iad (28.")
            && margin.ends_with(" ms) is not faster by 10% and 5 ms"),
        "{held}"
    );
    assert_contains(
        &live_text(&server, "203.0.113.0/24"),
        &["              web-fra stays first: it was chosen before"],
    );

    // A neighbour in the matrix but not measured falls back to the matrix.
    let fallback = live(&server, "100.64.7.0/24").await;
    let step = latency_step(&fallback);
    assert_eq!(step["matched"], "matrix 100.64.0.0/16 (line 2)");
    assert_eq!(
        step["latency"]["skipped"],
        json!(["no measurement for 100.64.7.0/24"])
    );
    assert_matches_the_table(&fallback);
    assert_contains(
        &live_text(&server, "100.64.7.0/24"),
        &[
            "              no measurement for 100.64.7.0/24; so matrix 100.64.0.0/16 (line 2) \
           decides\n",
        ],
    );
    server.shutdown().await;
}

#[tokio::test]
async fn live_explain_shows_this_node_when_nothing_else_measures_the_client() {
    let server = TestServer::start_prepared(prepared()).await;
    // An active measurement, as the prober records it.
    server
        .running()
        .control
        .latency()
        .record_node("fra", 40.0, unix_now());
    let explanation = wait_for_decision(&server, "8.8.8.0/24", json!(["web-fra"])).await;
    assert_matches_the_table(&explanation);
    let step = latency_step(&explanation);
    assert_eq!(step["matched"], "this node");
    let latency = &step["latency"];
    assert_eq!(latency["source"]["kind"], "node");
    assert_eq!(latency["source"]["rtts"][0]["pool"], "web-fra");
    assert_eq!(latency["source"]["rtts"][0]["rtt_ms"], 40.0);
    assert_eq!(latency["source"]["rtts"][0]["samples"], Value::Null);
    assert!(latency["source"]["rtts"][0]["age_seconds"].as_u64() < Some(30));
    assert_eq!(latency["without_rtt"], json!(["web-iad"]));
    assert_eq!(latency["fallback"], "distance");
    assert_eq!(
        latency["skipped"],
        json!([
            "no measurement for 8.8.8.0/24",
            "no matrix prefix covers 8.8.8.0",
            "no matrix row for AS15169",
            "no matrix row for country US",
        ])
    );
    assert_contains(
        &live_text(&server, "8.8.8.0/24"),
        &[
            "    latency   this node: web-iad, web-fra -> web-fra, web-iad\n",
            "              web-fra 40.0 ms (",
            "              no RTT there for web-iad: after the others, by distance\n",
        ],
    );
    server.shutdown().await;
}
