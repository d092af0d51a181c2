//! The admin routes over a real loopback socket.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::control::{Built, Listeners};
use crate::table::RoutingTable;

const GOOD_ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@    IN SOA ns1 hostmaster 2024010101 3600 600 86400 300
@    IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   192.0.2.10
";

const CONFIG: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\n";

struct Fixture {
    // Kept alive for the files' sake.
    _directory: tempfile::TempDir,
    config_path: PathBuf,
    server: AdminServer,
    client: reqwest::Client,
}

impl Fixture {
    /// An admin API over a control whose first table is empty (generation 0),
    /// so that these tests do not depend on the zone loader until they reload.
    async fn start() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let config_path = directory.path().join("steer.toml");
        std::fs::write(&config_path, CONFIG).expect("write config");
        std::fs::create_dir(directory.path().join("zones")).expect("zones directory");
        let built = Built {
            config: crate::config::load(&config_path).expect("valid config"),
            table: RoutingTable::empty(),
            geo: None,
            zones: 0,
            records: 0,
            compile_duration: Duration::from_millis(1),
            decisions: Arc::default(),
            inputs: None,
            warnings: Vec::new(),
            signatures: None,
            membership: Default::default(),
        };
        let control = Arc::new(Control::new(&config_path, built));
        control.set_listeners(Listeners {
            udp: vec!["127.0.0.1:5300".parse().expect("address")],
            tcp: vec!["127.0.0.1:5300".parse().expect("address")],
            tls: Vec::new(),
            peers: None,
        });
        let state = AdminState {
            control,
            metrics: Arc::new(Metrics::default()),
        };
        let server = AdminServer::start("127.0.0.1:0".parse().expect("address"), state, false)
            .await
            .expect("bind admin");
        // reqwest is built with rustls but no default crypto provider.
        crate::probe::check::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Self {
            _directory: directory,
            config_path,
            server,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        (status, serde_json::from_str(&body).expect("JSON body"))
    }

    async fn status(&self) -> Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200);
        serde_json::from_str(&body).expect("JSON status")
    }

    fn zones_directory(&self) -> PathBuf {
        self.config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("zones")
    }
}

#[tokio::test]
async fn status_describes_the_served_table() {
    let fixture = Fixture::start().await;
    let status = fixture.status().await;
    assert_eq!(status["generation"], 0);
    assert_eq!(status["zones"], json!([]));
    assert_eq!(status["last_compile"]["seconds"], 0.001);
    assert!(status["last_compile"]["at"].as_f64().expect("number") > 1.0e9);
    assert_eq!(status["last_reload_error"], Value::Null);
    assert_eq!(status["reloads"], json!({"ok": 0, "failed": 0}));
    assert_eq!(
        status["listen"],
        json!({"udp": ["127.0.0.1:5300"], "tcp": ["127.0.0.1:5300"], "tls": [], "peers": null})
    );
    fixture.server.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let fixture = Fixture::start().await;
    let response = fixture
        .client
        .get(fixture.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    assert_eq!(content_type.as_deref(), Some(prometheus::CONTENT_TYPE));
    let body = response.text().await.expect("body");
    assert!(
        body.contains("# TYPE steer_queries_total counter\n"),
        "{body}"
    );
    assert!(body.contains("steer_queries_total{transport=\"udp\",rcode=\"NOERROR\"} 0\n"));
    assert!(body.contains("steer_table_generation 0\n"));
    assert!(body.contains("steer_reloads_total{result=\"failed\"} 0\n"));
    fixture.server.stop().await;
}

#[tokio::test]
async fn wrong_method_and_unknown_path() {
    let fixture = Fixture::start().await;
    assert_eq!(fixture.get("/reload").await.0, 405);
    assert_eq!(fixture.get("/nope").await.0, 404);
    let post_status = fixture
        .client
        .post(fixture.url("/status"))
        .send()
        .await
        .expect("request");
    assert_eq!(post_status.status().as_u16(), 405);
    fixture.server.stop().await;
}

#[tokio::test]
async fn failed_reload_is_422_and_keeps_the_table() {
    let fixture = Fixture::start().await;
    std::fs::write(
        &fixture.config_path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 0\n",
    )
    .expect("write config");
    let (code, body) = fixture.post("/reload").await;
    assert_eq!(code, 422);
    assert_eq!(body["ok"], false);
    assert_eq!(body["generation"], 0);
    let expected = format!(
        "{}: server.workers: must be between 1 and 256, not 0",
        fixture.config_path.display()
    );
    assert_eq!(body["errors"], json!([expected]));

    let status = fixture.status().await;
    assert_eq!(status["generation"], 0);
    assert_eq!(status["reloads"], json!({"ok": 0, "failed": 1}));
    assert_eq!(status["last_reload_error"]["errors"], json!([expected]));
    let (_, metrics) = fixture.get("/metrics").await;
    assert!(
        metrics.contains("steer_reloads_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );
    fixture.server.stop().await;
}

/// Needs the zone loader (`zone::load_dir`) to accept a plain zone file.
#[tokio::test]
async fn successful_reload_bumps_the_generation() {
    let fixture = Fixture::start().await;
    let zone_file = fixture.zones_directory().join("example.test.zone");
    std::fs::write(&zone_file, GOOD_ZONE).expect("write zone");
    let (code, body) = fixture.post("/reload").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["generation"], 1);
    assert_eq!(body["zones"], 1);
    assert_eq!(body["warnings"], json!([]));

    let status = fixture.status().await;
    assert_eq!(status["generation"], 1);
    assert_eq!(status["reloads"], json!({"ok": 1, "failed": 0}));
    assert_eq!(status["zones"][0]["name"], "example.test.");
    assert_eq!(status["zones"][0]["file"], zone_file.display().to_string());
    let (_, metrics) = fixture.get("/metrics").await;
    assert!(metrics.contains("steer_table_generation 1\n"), "{metrics}");
    assert!(metrics.contains("steer_zones 1\n"), "{metrics}");
    fixture.server.stop().await;
}

/// Needs the zone loader, like the test above.
#[tokio::test]
async fn reload_reports_settings_that_need_a_restart() {
    let fixture = Fixture::start().await;
    std::fs::write(
        fixture.zones_directory().join("example.test.zone"),
        GOOD_ZONE,
    )
    .expect("write zone");
    std::fs::write(
        &fixture.config_path,
        format!("{CONFIG}[admin]\nlisten = \"127.0.0.1:9\"\n"),
    )
    .expect("write config");
    let (code, body) = fixture.post("/reload").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["warnings"],
        json!([
            "admin.listen changed from 127.0.0.1:8053 to 127.0.0.1:9; still using \
             127.0.0.1:8053 until steer is restarted"
        ])
    );
    fixture.server.stop().await;
}
