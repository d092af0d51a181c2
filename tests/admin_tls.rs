//! The admin API over HTTPS (`admin.tls_certificate`, `admin.tls_key`),
//! over real sockets: the server runs in-process on loopback ports, the
//! clients are reqwest (trusting one CA at a time) and the built `steer`
//! binary, which pins the configured certificate or trusts `--ca-file`.
//!
//! Each certificate is issued for 127.0.0.1 by a CA of its own, so which
//! CA a client must trust tells which certificate the server presents.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::TestServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "tls-admin-token-0123456789abcdef";

/// An HTTPS admin API with a token; `listen` is rewritten with the bound
/// port once the server runs.
fn config(listen: &str, tls: bool) -> String {
    let tls = if tls {
        "tls_certificate = \"admin.pem\"\ntls_key = \"admin.key\"\n"
    } else {
        ""
    };
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\nworkers = 1\n\n\
         [admin]\nlisten = \"{listen}\"\ntoken_file = \"admin.token\"\n{tls}"
    )
}

/// Makes `PREFIX.pem` and `PREFIX.key` the files the config names.
fn install(directory: &Path, prefix: &str) {
    std::fs::copy(
        directory.join(format!("{prefix}.pem")),
        directory.join("admin.pem"),
    )
    .expect("certificate");
    std::fs::copy(
        directory.join(format!("{prefix}.key")),
        directory.join("admin.key"),
    )
    .expect("key");
}

/// Starts a server whose admin API serves the certificate of CA `first`,
/// with the config then pointing at the bound port.
async fn start() -> TestServer {
    let directory = common::example_directory(&config("127.0.0.1:0", true));
    let path = directory.path();
    std::fs::write(path.join("admin.token"), format!("{TOKEN}\n")).expect("token");
    common::write_certificate(path, "first");
    common::write_certificate(path, "second");
    install(path, "first");
    let server = TestServer::start_prepared(directory).await;
    write_config(&server, true);
    server
}

fn write_config(server: &TestServer, tls: bool) {
    let text = config(&server.admin_addr().to_string(), tls);
    std::fs::write(server.directory.path().join("steer.toml"), text).expect("config");
}

/// `GET` or `POST` `path` over HTTPS, trusting `ca` (a file in the
/// server's directory) alone: the status and JSON body, or the error.
async fn https(
    server: &TestServer,
    ca: &str,
    method: reqwest::Method,
    path: &str,
) -> Result<(u16, Value), String> {
    steer::probe::check::install_crypto_provider();
    let pem = std::fs::read(server.directory.path().join(ca)).expect("CA file");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("CA"))
        .build()
        .expect("client");
    let url = format!("https://{}{path}", server.admin_addr());
    let response = client
        .request(method, &url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|error| error.to_string())?;
    let body = serde_json::from_str(&body).map_err(|error| format!("{error}: {body}"))?;
    Ok((status, body))
}

async fn reload(server: &TestServer, ca: &str) -> (u16, Value) {
    https(server, ca, reqwest::Method::POST, "/reload")
        .await
        .expect("the reload is answered")
}

/// Runs the `steer` binary in the server's directory.
async fn steer(server: &TestServer, arguments: &[&str]) -> Output {
    common::run_steer(arguments, server.directory.path()).await
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_speaks_https_only_and_the_clients_verify_it() {
    let server = start().await;
    let admin = server.admin_addr();

    // Plain HTTP gets no answer.
    let mut stream = TcpStream::connect(admin).await.expect("connect");
    let plain = format!(
        "GET /status HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(plain.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    assert!(
        !String::from_utf8_lossy(&raw).contains("HTTP/1.1 200"),
        "the admin API answered in clear"
    );

    // A client trusting the issuing CA is answered; one trusting another
    // CA refuses the certificate.
    let (code, status) = https(&server, "first-ca.pem", reqwest::Method::GET, "/status")
        .await
        .expect("HTTPS with the right CA");
    assert_eq!((code, &status["generation"]), (200, &Value::from(1)));
    let refused = https(&server, "second-ca.pem", reqwest::Method::GET, "/status")
        .await
        .expect_err("another CA");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // `steer status --config` finds https and the certificate from the
    // configuration, with no CA to give.
    let output = steer(&server, &["status", "--config", "steer.toml", "--json"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    assert_eq!(json["generation"], 1);

    // `--admin https://…` checks the certificate against `--ca-file`, or
    // the system's CAs, which never issued it.
    let url = format!("https://{admin}");
    let with_ca = [
        "reload",
        "--admin",
        &url,
        "--token-file",
        "admin.token",
        "--ca-file",
        "first-ca.pem",
    ];
    let output = steer(&server, &with_ca).await;
    assert!(output.status.success(), "{}", text(&output));
    let (_, status) = https(&server, "first-ca.pem", reqwest::Method::GET, "/status")
        .await
        .expect("status");
    assert_eq!(status["generation"], 2, "the reload went through");
    let output = steer(
        &server,
        &["reload", "--admin", &url, "--token-file", "admin.token"],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).to_lowercase().contains("certificate"),
        "{}",
        text(&output)
    );
    let output = steer(
        &server,
        &[
            "reload",
            "--admin",
            &url,
            "--token-file",
            "admin.token",
            "--ca-file",
            "second-ca.pem",
        ],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_from_the_next_reload_on() {
    let server = start().await;
    let directory = server.directory.path().to_path_buf();

    // Renewed on disk, not yet reloaded: the server still presents the
    // first certificate, and the client, pinning the file, says why it
    // refuses.
    install(&directory, "second");
    let output = steer(&server, &["status", "--config", "steer.toml"]).await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("not the one in admin.tls_certificate"),
        "{}",
        text(&output)
    );

    // A reload (here over the old certificate) makes new handshakes use
    // the new one, without a restart.
    let (code, body) = reload(&server, "first-ca.pem").await;
    assert_eq!(code, 200, "{body}");
    // (The only warning is the port the config now names.)
    assert!(!body["warnings"].to_string().contains("tls"), "{body}");
    let (code, _) = https(&server, "second-ca.pem", reqwest::Method::GET, "/status")
        .await
        .expect("the renewed certificate");
    assert_eq!(code, 200);
    assert!(
        https(&server, "first-ca.pem", reqwest::Method::GET, "/status")
            .await
            .is_err(),
        "the old certificate is gone"
    );
    let output = steer(&server, &["status", "--config", "steer.toml"]).await;
    assert!(output.status.success(), "{}", text(&output));

    // A key that does not fit is refused by the reload, naming the key
    // path, and the certificate in force goes on.
    std::fs::copy(directory.join("first.key"), directory.join("admin.key")).expect("key");
    let (code, body) = reload(&server, "second-ca.pem").await;
    assert_eq!(code, 422, "{body}");
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("admin.tls_certificate") && errors.contains("does not fit"),
        "{errors}"
    );
    assert!(!errors.contains("PRIVATE KEY"), "the key never shows");
    let (code, _) = https(&server, "second-ca.pem", reqwest::Method::GET, "/status")
        .await
        .expect("the certificate in force");
    assert_eq!(code, 200);

    // Turning TLS off needs a restart: the reload says so, and the API
    // keeps its last certificate rather than going silent or clear.
    install(&directory, "second");
    write_config(&server, false);
    let (code, body) = reload(&server, "second-ca.pem").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["warnings"].to_string().contains(
            "admin.tls_certificate changed from TLS to no TLS; still using TLS until steer is \
             restarted"
        ),
        "{body}"
    );
    let (code, status) = https(&server, "second-ca.pem", reqwest::Method::GET, "/status")
        .await
        .expect("still HTTPS");
    assert_eq!((code, &status["generation"]), (200, &Value::from(3)));
    server.shutdown().await;
}

#[test]
fn tls_files_that_are_missing_or_alone_are_refused_naming_the_key() {
    let run = |admin: &str| {
        let directory = common::example_directory(&format!(
            "[server]\nlisten = [\"127.0.0.1:5399\"]\nzones = \"zones\"\n\n[admin]\n{admin}"
        ));
        common::write_certificate(directory.path(), "first");
        common::check_errors(directory.path())
    };
    let alone = run("tls_certificate = \"first.pem\"\n");
    assert!(
        alone.contains("admin.tls_certificate: needs admin.tls_key beside it"),
        "{alone}"
    );
    let missing = run("tls_certificate = \"first.pem\"\ntls_key = \"nowhere.key\"\n");
    assert!(
        missing.contains("admin.tls_key: cannot read") && missing.contains("nowhere.key"),
        "{missing}"
    );
    let swapped = run("tls_certificate = \"first.key\"\ntls_key = \"first.pem\"\n");
    assert!(swapped.contains("admin.tls_certificate:"), "{swapped}");
    assert!(!swapped.contains("PRIVATE KEY-----\n"), "{swapped}");
}
