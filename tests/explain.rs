//! `steer explain` (the binary, on the bundled `steer.toml`) and
//! `GET /explain` (a server started in-process on loopback with
//! `tests/fixtures/explain/steer.toml`), including the check that the
//! explained per-query steps pick exactly the records the data plane sends.
//!
//! Clients come from the repository's sample database
//! (`geoip/sample-city.csv`): 81.2.69.0/24 is GB in Europe, 8.8.8.0/24 US in
//! North America, 1.1.1.0/24 AU in Oceania, 46.4.0.0/16 DE in Europe.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{TestServer, http_request};
use serde_json::{Value, json};

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Runs `steer explain --config steer.toml ARGS...`, bounded in time.
fn explain_cli(arguments: &[&str]) -> Output {
    let config = manifest_path("steer.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_steer"))
        .arg("explain")
        .arg("--config")
        .arg(&config)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run steer explain");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll steer explain").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("steer explain {arguments:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("steer explain output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", text(&output.stdout)))
}

#[test]
fn cli_explains_a_european_client_of_the_bundled_config() {
    let explanation = json_of(&explain_cli(&[
        "www.example.test",
        "A",
        "--client",
        "81.2.69.0/24",
        "--json",
    ]));
    assert_eq!(explanation["name"], "www.example.test.");
    assert_eq!(explanation["type"], "A");
    assert_eq!(explanation["served"], "steered");
    assert_eq!(explanation["client"]["network"], "81.2.69.0/24");
    assert_eq!(explanation["client"]["ecs"], true);

    let location = &explanation["location"];
    assert_eq!(location["country"], "GB");
    assert_eq!(location["continent"], "EU");
    assert_eq!(location["subdivision"], "ENG");
    assert_eq!(location["asn"], 20712);
    assert_eq!(location["coordinates"], json!([51.5142, -0.0931]));
    assert_eq!(location["prefix_len"], 24);
    assert_eq!(location["database_network"], "81.2.69.0/24");
    let fields = location["fields"].as_array().expect("fields");
    assert!(
        fields.contains(&json!({"path": "country.iso_code", "value": "GB"})),
        "{fields:?}"
    );

    let policy = &explanation["policy"];
    assert_eq!(policy["pools"], json!(["web-fra", "web-iad", "web-sin"]));
    assert_eq!(policy["when_all_down"], "fail_open");
    assert_eq!(
        policy["location_steps"],
        json!([{
            "step": "geo",
            "matched": "continent EU",
            "input": ["web-fra", "web-iad", "web-sin"],
            "output": ["web-fra"],
        }])
    );
    let per_query = &policy["per_query"];
    assert_eq!(per_query["decision"], json!(["web-fra"]));
    let steps: Vec<&str> = per_query["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|step| step["step"].as_str())
        .collect();
    assert_eq!(steps, ["healthy", "priority"]);
    assert_eq!(per_query["outcome"], "records");

    let answer = &explanation["answer"];
    assert_eq!(answer["rcode"], "NOERROR");
    assert_eq!(answer["authoritative"], true);
    assert_eq!(
        answer["records"],
        json!([{"name": "www.example.test.", "type": "A", "ttl": 60, "data": "192.0.2.10"}])
    );
    assert_eq!(answer["ttl"], 60);
    // The sample has Europe at 81.2.0.0/16 and nothing in Europe around
    // it, so the choice holds for the whole /16.
    assert_eq!(answer["scope"], 16);
    assert_eq!(answer["random"], false);
}

#[test]
fn cli_prints_text_by_default() {
    let output = explain_cli(&["www.example.test", "A", "--client", "81.2.69.0/24"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    for expected in [
        "www.example.test. A (generation 1)\n",
        "client    81.2.69.0/24\n",
        "location  country GB, continent EU, subdivision ENG",
        "database network 81.2.69.0/24",
        "country.iso_code = GB\n",
        "geo       continent EU: web-fra, web-iad, web-sin -> web-fra\n",
        "healthy   web-fra -> web-fra\n",
        "answer    NOERROR, aa, ECS scope /16 (the choice holds for 81.2.0.0/16), TTL 60\n",
        "  www.example.test. 60 IN A 192.0.2.10\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
}

#[test]
fn cli_truncates_a_client_network_like_a_resolver_and_uses_a_bare_address_whole() {
    let truncated = json_of(&explain_cli(&[
        "www.example.test",
        "A",
        "--client",
        "81.2.69.77/32",
        "--json",
    ]));
    assert_eq!(truncated["client"]["network"], "81.2.69.0/24");
    assert_eq!(truncated["client"]["prefix_len"], 24);
    assert_eq!(truncated["answer"]["records"][0]["data"], "192.0.2.10");

    let bare = json_of(&explain_cli(&[
        "www.example.test",
        "AAAA",
        "--client",
        "8.8.8.8",
        "--json",
    ]));
    assert_eq!(bare["client"]["network"], "8.8.8.8/32");
    assert_eq!(bare["client"]["ecs"], false);
    assert_eq!(bare["location"]["country"], "US");
    assert_eq!(bare["location"]["database_network"], "8.8.8.0/24");
    assert_eq!(bare["answer"]["records"][0]["data"], "2001:db8:1::10");
}

#[test]
fn cli_explains_static_and_unknown_names() {
    let static_name = json_of(&explain_cli(&[
        "mail.example.test",
        "A",
        "--client",
        "81.2.69.0/24",
        "--json",
    ]));
    assert_eq!(static_name["served"], "static");
    assert_eq!(static_name["policy"], Value::Null);
    assert_eq!(static_name["answer"]["rcode"], "NOERROR");
    assert_eq!(static_name["answer"]["records"][0]["data"], "192.0.2.25");
    assert_eq!(static_name["answer"]["scope"], 0);

    // Steered for A and AAAA only: MX comes from the zone (NODATA).
    let other_type = json_of(&explain_cli(&[
        "www.example.test",
        "MX",
        "--client",
        "81.2.69.0/24",
        "--json",
    ]));
    assert_eq!(other_type["served"], "static");
    assert_eq!(other_type["answer"]["records"], json!([]));
    assert_eq!(other_type["answer"]["authority"][0]["type"], "SOA");
    assert_eq!(
        other_type["notes"],
        json!(["www.example.test. is steered for A, AAAA only"])
    );

    let missing = json_of(&explain_cli(&[
        "nope.example.test",
        "A",
        "--client",
        "81.2.69.0/24",
        "--json",
    ]));
    assert_eq!(missing["served"], "static");
    assert_eq!(missing["answer"]["rcode"], "NXDOMAIN");

    let output = explain_cli(&["www.example.org", "A", "--client", "81.2.69.0/24"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("www.example.org. is not served"),
        "{stdout}"
    );
    assert!(stdout.contains("answer    REFUSED\n"), "{stdout}");
}

#[test]
fn cli_rejects_bad_input_with_exit_1() {
    for (arguments, expected) in [
        (
            ["www.example.test", "BOGUS", "--client", "81.2.69.0/24"],
            "unknown record type \"BOGUS\"",
        ),
        (
            ["www.example.test", "A", "--client", "81.2.69.300"],
            "invalid client \"81.2.69.300\": \"81.2.69.300\" is not an IP address",
        ),
        (
            ["www.example.test", "A", "--client", "81.2.69.0/33"],
            "invalid client \"81.2.69.0/33\": prefix length \"33\" is not a number from 0 to 32",
        ),
        (
            ["www..example.test", "A", "--client", "81.2.69.0/24"],
            "invalid name \"www..example.test\": a label is empty",
        ),
    ] {
        let output = explain_cli(&arguments);
        assert_eq!(output.status.code(), Some(1), "{arguments:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.starts_with(expected), "{arguments:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{arguments:?}");
    }
}

/// The explain fixture served live.
async fn start_fixture() -> TestServer {
    let source = manifest_path("tests/fixtures/explain");
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(directory.path().join("zones")).expect("zones directory");
    std::fs::copy(
        source.join("zones/example.test.zone"),
        directory.path().join("zones/example.test.zone"),
    )
    .expect("copy zone");
    // The fixture names the database relative to its own directory.
    let config = std::fs::read_to_string(source.join("steer.toml"))
        .expect("fixture config")
        .replace("../../../geoip/", "geoip/");
    std::fs::create_dir(directory.path().join("geoip")).expect("geoip directory");
    std::fs::copy(
        manifest_path("geoip/sample-city.mmdb"),
        directory.path().join("geoip/sample-city.mmdb"),
    )
    .expect("copy the sample database");
    std::fs::write(directory.path().join("steer.toml"), config).expect("config");
    TestServer::start_prepared(directory).await
}

async fn live(server: &TestServer, query: &str) -> (u16, Value) {
    let response = http_request(server.admin_addr(), "GET", &format!("/explain?{query}")).await;
    let body = serde_json::from_str(&response.body)
        .unwrap_or_else(|error| panic!("/explain?{query}: not JSON ({error}): {}", response.body));
    (response.status, body)
}

async fn post(server: &TestServer, path: &str) {
    let response = http_request(server.admin_addr(), "POST", path).await;
    assert_eq!(response.status, 200, "POST {path}: {}", response.body);
}

#[tokio::test]
async fn live_explain_shows_a_drained_pool_skipped_by_healthy() {
    let server = start_fixture().await;
    let question = "name=www.example.test&type=A&client=81.2.69.0/24";
    let (code, before) = live(&server, question).await;
    assert_eq!(code, 200, "{before}");
    assert_eq!(
        before["policy"]["per_query"]["steps"][0],
        json!({
            "step": "healthy",
            "input": ["web-fra", "web-iad"],
            "output": ["web-fra", "web-iad"],
            "detail": "every pool is healthy; down endpoints are left out",
            "random": false,
        })
    );
    assert_eq!(before["answer"]["records"][0]["data"], "192.0.2.10");

    post(&server, "/pools/web-fra/drain").await;
    let (code, after) = live(&server, question).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["admin"]["drained"], json!(["web-fra"]));
    let healthy = &after["policy"]["per_query"]["steps"][0];
    assert_eq!(healthy["step"], "healthy");
    assert_eq!(healthy["input"], json!(["web-fra", "web-iad"]));
    assert_eq!(healthy["output"], json!(["web-iad"]));
    assert_eq!(healthy["detail"], "dropped web-fra (drained)");
    let data: Vec<&Value> = after["answer"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| &record["data"])
        .collect();
    assert_eq!(data, [&json!("198.51.100.10"), &json!("198.51.100.11")]);

    // With nothing healthy the AAAA name answers NODATA, as configured.
    let (code, nodata) = live(
        &server,
        "name=www.example.test&type=AAAA&client=81.2.69.0/24",
    )
    .await;
    assert_eq!(code, 200, "{nodata}");
    assert_eq!(nodata["policy"]["when_all_down"], "nodata");
    assert_eq!(nodata["policy"]["per_query"]["outcome"], "nodata");
    assert_eq!(nodata["answer"]["rcode"], "NOERROR");
    assert_eq!(nodata["answer"]["records"], json!([]));
    assert_eq!(nodata["answer"]["authority"][0]["type"], "SOA");
    server.shutdown().await;
}

#[tokio::test]
async fn live_explain_shows_a_forced_down_endpoint_left_out() {
    let server = start_fixture().await;
    post(&server, "/endpoints/192.0.2.10/down").await;
    let (code, explanation) =
        live(&server, "name=www.example.test&type=A&client=46.4.0.0/16").await;
    assert_eq!(code, 200, "{explanation}");
    assert_eq!(explanation["location"]["country"], "DE");
    assert_eq!(
        explanation["admin"]["forced"],
        json!([{"address": "192.0.2.10", "forced": "down"}])
    );
    let pool = &explanation["policy"]["per_query"]["answer_pools"][0];
    assert_eq!(pool["pool"], "web-fra");
    assert_eq!(pool["endpoints"][0]["up"], false);
    assert_eq!(pool["endpoints"][0]["answered"], false);
    assert_eq!(pool["endpoints"][1]["answered"], true);
    assert_eq!(
        explanation["answer"]["records"],
        json!([{"name": "www.example.test.", "type": "A", "ttl": 60, "data": "192.0.2.11"}])
    );
    server.shutdown().await;
}

/// The addresses the explained per-query steps say are answered, in order.
fn explained_addresses(explanation: &Value) -> Vec<String> {
    explanation["policy"]["per_query"]["answer_pools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|pool| pool["endpoints"].as_array().into_iter().flatten())
        .filter(|endpoint| endpoint["answered"] == true)
        .filter_map(|endpoint| endpoint["value"].as_str().map(str::to_owned))
        .collect()
}

fn answered_addresses(explanation: &Value) -> Vec<String> {
    explanation["answer"]["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|record| record["data"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn explained_steps_pick_exactly_what_the_data_plane_answers() {
    let server = start_fixture().await;
    let clients = [
        "81.2.69.0/24",
        "8.8.8.0/24",
        "1.1.1.0/24",
        "46.4.0.0/16",
        "203.0.113.5",
        "2a00:23c0::/48",
    ];
    // Healthy, then with one address down and one pool drained.
    for round in 0..2 {
        if round == 1 {
            post(&server, "/endpoints/198.51.100.10/down").await;
            post(&server, "/pools/web-sin/drain").await;
        }
        for name in [
            "www.example.test",
            "spread.example.test",
            "sticky.example.test",
        ] {
            for client in clients {
                let (code, explanation) =
                    live(&server, &format!("name={name}&type=A&client={client}")).await;
                assert_eq!(code, 200, "{explanation}");
                let answered = answered_addresses(&explanation);
                assert!(!answered.is_empty(), "{name} {client}: {explanation}");
                assert_eq!(
                    explained_addresses(&explanation),
                    answered,
                    "{name} for {client} (round {round}): {explanation}"
                );
                assert_eq!(explanation["answer"]["random"], false);
            }
        }
    }
    // Round 1's overrides show in what was answered.
    let (_, spread) = live(&server, "name=spread.example.test&type=A&client=1.1.1.0/24").await;
    let answered = answered_addresses(&spread);
    assert!(!answered.contains(&"198.51.100.10".to_owned()), "{spread}");
    assert!(!answered.contains(&"203.0.113.10".to_owned()), "{spread}");
    assert_eq!(answered.len(), 3, "first = 3: {spread}");
    server.shutdown().await;
}

#[tokio::test]
async fn live_explain_says_a_weighted_answer_is_random() {
    let server = start_fixture().await;
    let (code, explanation) = live(
        &server,
        "name=lottery.example.test&type=A&client=81.2.69.0/24",
    )
    .await;
    assert_eq!(code, 200, "{explanation}");
    assert_eq!(explanation["answer"]["random"], true);
    let weighted = &explanation["policy"]["per_query"]["steps"][1];
    assert_eq!(weighted["step"], "weighted");
    assert_eq!(weighted["random"], true);
    assert_eq!(weighted["output"].as_array().map(Vec::len), Some(1));
    assert!(
        explanation["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|note| note.as_str().is_some_and(|note| note.contains("at random"))),
        "{explanation}"
    );
    // Whatever was drawn, it is one pool's addresses.
    let answered = answered_addresses(&explanation);
    let pools = [
        vec!["192.0.2.10", "192.0.2.11"],
        vec!["198.51.100.10", "198.51.100.11"],
        vec!["203.0.113.10"],
    ];
    let mut sorted = answered.clone();
    sorted.sort();
    assert!(
        pools.iter().any(|pool| *pool == sorted),
        "{answered:?} is not one pool"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn live_explain_of_static_and_unknown_names() {
    let server = start_fixture().await;
    let (code, static_name) =
        live(&server, "name=static.example.test&type=TXT&client=8.8.8.8").await;
    assert_eq!(code, 200);
    assert_eq!(static_name["served"], "static");
    assert_eq!(static_name["answer"]["records"][0]["type"], "TXT");
    let (code, unknown) = live(&server, "name=www.example.org&type=A&client=8.8.8.8").await;
    assert_eq!(code, 200);
    assert_eq!(unknown["served"], "not_served");
    assert_eq!(unknown["answer"]["rcode"], "REFUSED");
    server.shutdown().await;
}

#[tokio::test]
async fn live_explain_rejects_bad_input_with_400() {
    let server = start_fixture().await;
    for (query, expected) in [
        (
            "name=www.example.test&type=BOGUS&client=8.8.8.8",
            "unknown record type \"BOGUS\"",
        ),
        (
            "name=www.example.test&type=A&client=nowhere",
            "invalid client \"nowhere\"",
        ),
        (
            "name=www.example.test&type=A&client=8.8.8.0/40",
            "invalid client \"8.8.8.0/40\": prefix length \"40\" is not a number from 0 to 32",
        ),
        (
            "name=www.example.test&type=A",
            "missing query parameter(s) client",
        ),
        ("", "missing query parameter(s) name, type, client"),
    ] {
        let (code, body) = live(&server, query).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert_eq!(body["ok"], false);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.starts_with(expected)),
            "{query}: {body}"
        );
    }
    let response = http_request(server.admin_addr(), "POST", "/explain").await;
    assert_eq!(response.status, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn live_explain_follows_a_reload_with_its_database() {
    let server = start_fixture().await;
    let question = "name=www.example.test&type=A&client=8.8.8.0/24";
    let (_, before) = live(&server, question).await;
    assert_eq!(before["generation"], 1);
    post(&server, "/reload").await;
    let (code, after) = live(&server, question).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["generation"], 2);
    // The new generation's database is kept with its table.
    assert_eq!(after["location"]["country"], "US");
    assert_eq!(after["location"]["continent"], "NA");
    assert_eq!(
        after["policy"]["location_steps"][0]["output"],
        json!(["web-iad", "web-fra"])
    );
    assert_eq!(after["answer"]["records"][0]["data"], "198.51.100.10");
    server.shutdown().await;
}
