//! The admin API's steering levers against real DNS answers: drain and
//! undrain pools, force endpoints down, up and back to automatic, over a
//! server started in-process on loopback with a temporary config that
//! steers by the repository's sample GeoIP database.
//!
//! Clients are given as EDNS Client Subnet networks the sample database
//! places (`geoip/sample-city.csv`): 81.2.69.0/24 is GB (Europe).

mod common;

use std::net::IpAddr;
use std::path::Path;

use common::{QueryOptions, TestServer, http_request};
use hickory_proto::op::ResponseCode;
use serde_json::{Value, json};

/// A client network in Europe, per the sample database.
const EUROPE: &str = "81.2.69.0";

/// Europe goes to web-fra, failing over to web-iad; web-fra has two
/// addresses so that one can be forced down on its own.
const CONFIG: &str = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"

[geoip]
database = "geoip/sample-city.mmdb"

[sites.fra]
location = [50.11, 8.68]

[sites.iad]
location = [38.94, -77.46]

[pools.web-fra]
site = "fra"
addresses = ["192.0.2.10", "192.0.2.11"]

[pools.web-iad]
site = "iad"
addresses = ["198.51.100.10"]

[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = ["healthy", { geo = { EU = ["web-fra", "web-iad"], default = ["web-iad"] } }, "priority"]
"#;

/// Starts the server on a temporary copy of `CONFIG`, the zone and the
/// sample database.
async fn start() -> TestServer {
    let directory = common::example_directory(CONFIG);
    std::fs::create_dir(directory.path().join("geoip")).expect("geoip directory");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample-city.mmdb"),
        directory.path().join("geoip/sample-city.mmdb"),
    )
    .expect("copy the sample database");
    TestServer::start_prepared(directory).await
}

/// The A records `www.example.test` gets for a client in `network`/24, sorted.
async fn answer(server: &TestServer, network: &str) -> Vec<String> {
    let address: IpAddr = network.parse().expect("client network");
    let options = QueryOptions {
        edns: true,
        client_subnet: Some((address, 24)),
        ..QueryOptions::default()
    };
    let (response, addresses) = common::ask_a(server, "www.example.test.", &options).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    addresses
}

/// Sends `method path` to the admin API and returns the status and the JSON body.
async fn admin(server: &TestServer, method: &str, path: &str) -> (u16, Value) {
    let response = http_request(server.admin_addr(), method, path).await;
    let body = if response.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&response.body).unwrap_or_else(|error| {
            panic!("{method} {path}: not JSON ({error}): {}", response.body)
        })
    };
    (response.status, body)
}

#[tokio::test]
async fn draining_a_pool_fails_over_at_once_and_undraining_restores_it() {
    let server = start().await;
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);

    let (code, body) = admin(&server, "POST", "/pools/web-fra/drain").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["drained"], true);
    assert_eq!(
        body["endpoints"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    assert!(
        body["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|endpoint| endpoint["drained"] == true && endpoint["up"] == false),
        "{body}"
    );
    // The priority chain falls over to the next pool on the next query.
    assert_eq!(answer(&server, EUROPE).await, ["198.51.100.10"]);

    let (code, body) = admin(&server, "POST", "/pools/web-fra/undrain").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["drained"], false);
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_drain_survives_a_reload() {
    let server = start().await;
    let (code, _) = admin(&server, "POST", "/pools/web-fra/drain").await;
    assert_eq!(code, 200);
    let (code, body) = admin(&server, "POST", "/reload").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["generation"], 2);
    assert_eq!(answer(&server, EUROPE).await, ["198.51.100.10"]);

    let (_, status) = admin(&server, "GET", "/status").await;
    assert_eq!(status["generation"], 2);
    let fra: Vec<&Value> = status["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|endpoint| endpoint["pool"] == "web-fra")
        .collect();
    assert_eq!(fra.len(), 2, "{status}");
    assert!(fra.iter().all(|endpoint| endpoint["drained"] == true));

    let (code, _) = admin(&server, "POST", "/pools/web-fra/undrain").await;
    assert_eq!(code, 200);
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);
    server.shutdown().await;
}

#[tokio::test]
async fn forcing_an_endpoint_down_removes_only_that_address_until_auto() {
    let server = start().await;
    let (code, body) = admin(&server, "POST", "/endpoints/192.0.2.11/down").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["forced"], "down");
    assert_eq!(
        body["endpoints"],
        json!([{"pool": "web-fra", "address": "192.0.2.11", "up": false, "drained": false, "forced": "down", "admin": "forced_down", "probe": null, "target": null, "observed": null, "since": null, "last_probe": null, "last_error": null}])
    );
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10"]);

    // Forced up is an override too, and answers like the observed state.
    let (code, body) = admin(&server, "POST", "/endpoints/192.0.2.11/up").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["forced"], "up");
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);

    let (code, _) = admin(&server, "POST", "/endpoints/192.0.2.11/down").await;
    assert_eq!(code, 200);
    let (code, body) = admin(&server, "POST", "/endpoints/192.0.2.11/auto").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["forced"], Value::Null);
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);
    server.shutdown().await;
}

#[tokio::test]
async fn forcing_every_address_of_a_pool_down_fails_over() {
    let server = start().await;
    for address in ["192.0.2.10", "192.0.2.11"] {
        let (code, _) = admin(&server, "POST", &format!("/endpoints/{address}/down")).await;
        assert_eq!(code, 200);
    }
    assert_eq!(answer(&server, EUROPE).await, ["198.51.100.10"]);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_pools_and_addresses_are_404_with_a_json_error() {
    let server = start().await;
    let (code, body) = admin(&server, "POST", "/pools/web-nowhere/drain").await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error": "no pool named \"web-nowhere\""})
    );
    let (code, body) = admin(&server, "POST", "/pools/web-nowhere/undrain").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = admin(&server, "POST", "/endpoints/192.0.2.99/down").await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error": "no pool has the address 192.0.2.99"})
    );
    let (code, body) = admin(&server, "POST", "/endpoints/not-an-address/up").await;
    assert_eq!(code, 404);
    assert_eq!(body["ok"], false);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("not-an-address")),
        "{body}"
    );
    // Nothing changed.
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);
    server.shutdown().await;
}

#[tokio::test]
async fn mutating_routes_refuse_get() {
    let server = start().await;
    for path in [
        "/pools/web-fra/drain",
        "/pools/web-fra/undrain",
        "/endpoints/192.0.2.10/down",
        "/endpoints/192.0.2.10/up",
        "/endpoints/192.0.2.10/auto",
        "/reload",
    ] {
        let response = http_request(server.admin_addr(), "GET", path).await;
        assert_eq!(response.status, 405, "GET {path}: {}", response.body);
    }
    // And a GET changed nothing.
    assert_eq!(answer(&server, EUROPE).await, ["192.0.2.10", "192.0.2.11"]);
    server.shutdown().await;
}

#[tokio::test]
async fn status_and_metrics_show_endpoints_and_steered_names() {
    let server = start().await;
    let (code, _) = admin(&server, "POST", "/endpoints/198.51.100.10/down").await;
    assert_eq!(code, 200);
    let (code, status) = admin(&server, "GET", "/status").await;
    assert_eq!(code, 200);
    assert_eq!(
        status["steered"],
        json!([{"name": "www.example.test.", "type": "A", "pools": ["web-fra", "web-iad"]}])
    );
    assert_eq!(
        status["endpoints"],
        json!([
            {"pool": "web-fra", "address": "192.0.2.10", "up": true, "drained": false, "forced": null, "admin": "auto", "probe": null, "target": null, "observed": null, "since": null, "last_probe": null, "last_error": null},
            {"pool": "web-fra", "address": "192.0.2.11", "up": true, "drained": false, "forced": null, "admin": "auto", "probe": null, "target": null, "observed": null, "since": null, "last_probe": null, "last_error": null},
            {"pool": "web-iad", "address": "198.51.100.10", "up": false, "drained": false, "forced": "down", "admin": "forced_down", "probe": null, "target": null, "observed": null, "since": null, "last_probe": null, "last_error": null},
        ])
    );
    // The existing keys are still there.
    assert_eq!(status["generation"], 1);
    assert_eq!(status["zones"][0]["name"], "example.test.");

    let metrics = http_request(server.admin_addr(), "GET", "/metrics").await;
    assert_eq!(metrics.status, 200);
    for expected in [
        "steer_endpoint_up{pool=\"web-fra\",address=\"192.0.2.10\"} 1\n",
        "steer_endpoint_up{pool=\"web-iad\",address=\"198.51.100.10\"} 0\n",
        "steer_steered_names 1\n",
        "steer_table_generation 1\n",
    ] {
        assert!(
            metrics.body.contains(expected),
            "missing {expected:?} in\n{}",
            metrics.body
        );
    }
    server.shutdown().await;
}
