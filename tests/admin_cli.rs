//! The admin API's bearer token and the `steer status`, `drain`, `undrain`
//! and `reload` clients, over real sockets: the server runs in-process on
//! loopback ports with a temporary config, and the clients are the built
//! binary, finding the API and the token from that config or from flags.
//!
//! The steered name fails over from `web-fra` to `web-iad` by priority, so
//! a drain shows in the very next DNS answer.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{QueryOptions, TestServer, http_request};
use hickory_proto::op::ResponseCode;
use serde_json::Value;

/// The token in `admin.token` (at least 16 characters, as the config asks).
const TOKEN: &str = "s3cret-admin-token-0123456789";

/// As long as [`TOKEN`] and differing only in its last byte: refused even
/// though a byte-by-byte comparison would get furthest with it.
const NEAR_TOKEN: &str = "s3cret-admin-token-012345678X";

/// The admin line is rewritten with the bound port once the server runs,
/// so that the clients can find the API from this file.
const ADMIN_LISTEN: &str = "listen = \"127.0.0.1:0\"\ntoken_file";

/// A token-protected admin API and one steered name over two pools.
fn config() -> String {
    let pools = common::WEB_POOLS;
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"
{pools}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-fra", "web-iad"]
policy = ["healthy", "priority"]
"#
    )
}

/// Starts a server whose admin API needs [`TOKEN`], then points the
/// config's `admin.listen` at the port it got.
async fn start_with_token() -> TestServer {
    let original = config();
    let directory = common::example_directory(&original);
    std::fs::write(directory.path().join("admin.token"), format!("{TOKEN}\n")).expect("token");
    let server = TestServer::start_prepared(directory).await;
    let with_port = original.replace(
        ADMIN_LISTEN,
        &format!("listen = \"{}\"\ntoken_file", server.admin_addr()),
    );
    assert_ne!(
        with_port, original,
        "the admin listen line is in the config"
    );
    std::fs::write(config_path(&server), with_port).expect("config with the admin port");
    server
}

fn config_path(server: &TestServer) -> String {
    server
        .directory
        .path()
        .join("steer.toml")
        .display()
        .to_string()
}

/// Writes `token` to a file of its own in the server's directory.
fn token_file(server: &TestServer, name: &str, token: &str) -> String {
    let path = server.directory.path().join(name);
    std::fs::write(&path, format!("{token}\n")).expect("token file");
    path.display().to_string()
}

/// Runs the `steer` binary (see [`common::run_steer`]).
async fn steer(arguments: &[&str]) -> Output {
    common::run_steer(arguments, Path::new(".")).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Asserts exit 1 with nothing on stdout and returns stderr.
fn failed(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    assert_eq!(stdout(output), "");
    stderr(output)
}

/// The A records `www.example.test` gets, sorted.
async fn answer(server: &TestServer) -> Vec<String> {
    let (response, records) =
        common::ask_a(server, "www.example.test.", &QueryOptions::default()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    records
}

/// A request with an `Authorization` header (the common helper sends none):
/// status, `WWW-Authenticate`, body.
async fn authorized(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    authorization: &str,
) -> (u16, Option<String>, String) {
    // reqwest panics on building a client before a TLS provider is installed.
    steer::probe::check::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let response = client
        .request(method, format!("http://{}{path}", server.admin_addr()))
        .header(reqwest::header::AUTHORIZATION, authorization)
        .send()
        .await
        .expect("request");
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    (status, challenge, response.text().await.expect("body"))
}

/// A 401 as the API sends it: the challenge and a JSON error that does
/// not give the token away.
fn assert_refused((status, challenge, body): &(u16, Option<String>, String)) {
    assert_eq!(*status, 401, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert!(!body.contains(TOKEN), "{body}");
    let error: Value = serde_json::from_str(body).expect("JSON error");
    assert_eq!(error["ok"], false, "{body}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|message| message.contains("bearer token")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_guards_every_route() {
    let server = start_with_token().await;
    let bearer = format!("Bearer {TOKEN}");
    let near = format!("Bearer {NEAR_TOKEN}");
    let longer = format!("Bearer {TOKEN}0");
    let basic = format!("Basic {TOKEN}");

    // No header at all, with the shared helper.
    for (method, path) in [
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("POST", "/reload"),
        ("POST", "/pools/web-fra/drain"),
        ("GET", "/no-such-route"),
    ] {
        let response = http_request(server.admin_addr(), method, path).await;
        assert_eq!(response.status, 401, "{method} {path}: {}", response.body);
        assert!(!response.body.contains(TOKEN), "{}", response.body);
    }
    for wrong in [&near, &longer, &basic, &"Bearer".to_owned()] {
        assert_refused(&authorized(&server, reqwest::Method::GET, "/status", wrong).await);
        assert_refused(&authorized(&server, reqwest::Method::GET, "/metrics", wrong).await);
        assert_refused(
            &authorized(
                &server,
                reqwest::Method::POST,
                "/pools/web-fra/drain",
                wrong,
            )
            .await,
        );
    }
    // Nothing refused had an effect.
    assert_eq!(answer(&server).await, ["192.0.2.10"]);

    let (status, _, body) = authorized(&server, reqwest::Method::GET, "/status", &bearer).await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).expect("JSON status");
    assert_eq!(json["generation"], 1);
    let (status, _, body) = authorized(&server, reqwest::Method::POST, "/reload", &bearer).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"generation\":2"), "{body}");
    let (status, _, body) = authorized(&server, reqwest::Method::GET, "/metrics", &bearer).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("steer_table_generation 2\n"), "{body}");
    // Past the token, routing answers as before.
    let (status, challenge, _) =
        authorized(&server, reqwest::Method::GET, "/no-such-route", &bearer).await;
    assert_eq!((status, challenge), (404, None));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_use_the_token_from_the_config() {
    let server = start_with_token().await;
    let config = config_path(&server);

    let text = succeeded(&steer(&["status", "--config", &config]).await);
    assert!(text.starts_with("generation 1, compiled "), "{text}");
    assert!(
        text.contains("\n1 zone\n  example.test.  serial 2024060101, "),
        "{text}"
    );
    assert!(text.contains("\n2 endpoints\n"), "{text}");
    let fra_line = |text: &str| {
        text.lines()
            .find(|line| line.contains("web-fra") && line.contains("192.0.2.10"))
            .unwrap_or_else(|| panic!("no web-fra line in\n{text}"))
            .to_owned()
    };
    assert!(fra_line(&text).contains(" up"), "{text}");
    assert_eq!(answer(&server).await, ["192.0.2.10"]);

    let drained = succeeded(&steer(&["drain", "web-fra", "--config", &config]).await);
    assert_eq!(drained, "drained web-fra\n");
    // The priority chain falls over to the next pool on the next query.
    assert_eq!(answer(&server).await, ["198.51.100.10"]);
    let text = succeeded(&steer(&["status", "--config", &config]).await);
    let line = fra_line(&text);
    assert!(
        line.contains(" down ") && line.contains("drained"),
        "{text}"
    );

    let undrained = succeeded(&steer(&["undrain", "web-fra", "--config", &config]).await);
    assert_eq!(undrained, "undrained web-fra\n");
    assert_eq!(answer(&server).await, ["192.0.2.10"]);

    let reloaded = succeeded(&steer(&["reload", "--config", &config]).await);
    assert!(
        reloaded.starts_with("ok: generation 2, 1 zone, "),
        "{reloaded}"
    );

    let json = succeeded(&steer(&["status", "--json", "--config", &config]).await);
    let status: Value = serde_json::from_str(&json).expect("status --json is JSON");
    assert_eq!(status["generation"], 2);
    assert_eq!(status["reloads"]["ok"], 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_without_the_right_token_fail_clearly() {
    let server = start_with_token().await;
    let admin = server.admin_addr().to_string();
    let near = token_file(&server, "near.token", NEAR_TOKEN);
    let commands: [&[&str]; 4] = [
        &["status"],
        &["drain", "web-fra"],
        &["undrain", "web-fra"],
        &["reload"],
    ];
    for command in commands {
        let without = [command, &["--admin", &admin]].concat();
        let message = failed(&steer(&without).await);
        assert_eq!(
            message,
            "the admin API needs a token: none was sent; pass --token-file FILE, or --config \
             FILE with the server's [admin] token_file\n",
            "{without:?}"
        );

        let wrong = [command, &["--admin", &admin, "--token-file", &near]].concat();
        let message = failed(&steer(&wrong).await);
        assert_eq!(
            message,
            format!(
                "the admin API needs a token: the bearer token is not the one in \
                 admin.token_file; the token sent came from {near}\n"
            ),
            "{wrong:?}"
        );
        assert!(
            !message.contains(TOKEN) && !message.contains(NEAR_TOKEN),
            "{message}"
        );
    }
    // The refused drains changed nothing; the right token file works.
    assert_eq!(answer(&server).await, ["192.0.2.10"]);
    let right = token_file(&server, "right.token", TOKEN);
    let text = succeeded(&steer(&["status", "--admin", &admin, "--token-file", &right]).await);
    assert!(text.starts_with("generation 1, "), "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_drain_of_an_unknown_pool_prints_the_api_error() {
    let server = start_with_token().await;
    let config = config_path(&server);
    for action in ["drain", "undrain"] {
        let message = failed(&steer(&[action, "web-nowhere", "--config", &config]).await);
        assert_eq!(message, "no pool named \"web-nowhere\"\n");
    }
    // A pool id that is not one path segment reaches the API as one.
    let message = failed(&steer(&["drain", "web/fra", "--config", &config]).await);
    assert_eq!(message, "no pool named \"web/fra\"\n");
    assert_eq!(answer(&server).await, ["192.0.2.10"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_report_an_unreachable_server() {
    // Port 1 on loopback: nothing listens there in a test environment.
    for (command, path) in [
        (&["status"][..], "/status"),
        (&["drain", "web-fra"][..], "/pools/web-fra/drain"),
        (&["undrain", "web-fra"][..], "/pools/web-fra/undrain"),
    ] {
        let arguments = [command, &["--admin", "127.0.0.1:1"]].concat();
        let message = failed(&steer(&arguments).await);
        assert!(
            message.starts_with(&format!(
                "cannot reach the admin API at http://127.0.0.1:1{path}: "
            )),
            "{message}"
        );
    }
}

/// The listener keeps the token it started with; a reload says a restart
/// is needed, without printing either token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_file_needs_a_restart() {
    const NEW_TOKEN: &str = "rotated-admin-token-abcdefghij";
    let server = start_with_token().await;
    let admin = server.admin_addr().to_string();
    let old = token_file(&server, "old.token", TOKEN);
    token_file(&server, "admin.token", NEW_TOKEN);

    let output = steer(&["reload", "--admin", &admin, "--token-file", &old]).await;
    succeeded(&output);
    let warnings = stderr(&output);
    assert!(
        warnings.contains(
            "warning: admin.token_file changed from the old token to a new token; still using \
             the old token until steer is restarted\n"
        ),
        "{warnings}"
    );
    assert!(
        !warnings.contains(TOKEN) && !warnings.contains(NEW_TOKEN),
        "{warnings}"
    );

    // The config now gives the new token, which the server does not take yet.
    let config = config_path(&server);
    let message = failed(&steer(&["status", "--config", &config]).await);
    assert_eq!(
        message,
        format!(
            "the admin API needs a token: the bearer token is not the one in admin.token_file; \
             the token sent came from the [admin] token_file of {config}\n"
        )
    );

    let (status, _, _) = authorized(
        &server,
        reqwest::Method::GET,
        "/status",
        &format!("Bearer {TOKEN}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_refused(
        &authorized(
            &server,
            reqwest::Method::GET,
            "/status",
            &format!("Bearer {NEW_TOKEN}"),
        )
        .await,
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_api_and_the_clients_need_none() {
    let server = TestServer::start(&[("example.test.zone", common::EXAMPLE_ZONE)]).await;
    let admin = server.admin_addr().to_string();
    let response = http_request(server.admin_addr(), "GET", "/status").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let text = succeeded(&steer(&["status", "--admin", &admin]).await);
    assert!(text.contains("\n0 endpoints\n"), "{text}");
    server.shutdown().await;
}

#[test]
fn check_names_admin_token_file_when_it_is_missing_or_short() {
    let directory = common::example_directory(&config());
    let config = directory.path().join("steer.toml");
    let check = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_steer"))
            .args(["check", "--config", &config.display().to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run steer check")
    };

    // No admin.token in the directory yet.
    let output = check(&config);
    let message = failed(&output);
    assert!(
        message.contains(": admin.token_file: cannot read "),
        "{message}"
    );

    std::fs::write(directory.path().join("admin.token"), "too-short\n").expect("token");
    let message = failed(&check(&config));
    assert!(
        message.contains(": admin.token_file: ") && message.contains("at least 16"),
        "{message}"
    );
    assert!(!message.contains("too-short"), "{message}");

    std::fs::write(directory.path().join("admin.token"), format!("{TOKEN}\n")).expect("token");
    succeeded(&check(&config));
}
