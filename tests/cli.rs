//! The `steer` binary end to end: `check`, `serve`, `reload`, signals.
//!
//! Every test runs the built binary, binds only port 0 on loopback, and
//! bounds every wait, so tests can run in parallel and never hang. Tests
//! that load zones need the zone loader; fixtures live in
//! `tests/fixtures/cli/`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Upper bound on any single wait (startup, reload, shutdown).
const WAIT: Duration = Duration::from_secs(20);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli")
}

fn steer(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(arguments)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run steer")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(config: &Path) -> Output {
    steer(&["check", "--config", &config.display().to_string()])
}

#[test]
fn check_accepts_a_good_configuration() {
    let output = check(&fixtures().join("good/steer.toml"));
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&output.stderr)
    );
    assert!(stdout.starts_with("ok: 1 zone, "), "{stdout}");
    assert!(stdout.contains(" records, compiled in ") && stdout.trim_end().ends_with(" ms"));
}

#[test]
fn check_warns_about_dangling_targets_and_still_passes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(directory.path().join("zones")).expect("zones");
    std::fs::write(
        directory.path().join("zones/example.test.zone"),
        "$TTL 300\n@ SOA ns1 hostmaster 1 2h 1h 2w 5m\n@ NS ns1\nns1 A 192.0.2.1\n\
         old CNAME renamed\n",
    )
    .expect("zone");
    let config = directory.path().join("steer.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:5399\"]\nzones = \"zones\"\n",
    )
    .expect("config");
    let output = check(&config);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("ok: 1 zone, "));
    let zone_file = directory.path().join("zones/example.test.zone");
    assert_eq!(
        text(&output.stderr),
        format!(
            "warning: {}:5: CNAME target renamed.example.test. is in our zones but has no \
             records (queries for it get NXDOMAIN)\n",
            zone_file.display()
        )
    );
}

#[test]
fn check_names_the_key_of_an_invalid_address() {
    let config = fixtures().join("bad-listen.toml");
    let output = check(&config);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "{}: server.listen[1]: invalid socket address \"1.2.3.4\": expected IP:port, e.g. \
             \"127.0.0.1:5300\" or \"[::1]:5300\"\n",
            config.display()
        )
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn check_names_an_unknown_key_and_its_line() {
    let config = fixtures().join("unknown-key.toml");
    let output = check(&config);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:4: unknown key server.listn, expected one of ",
            config.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_refuses_a_public_admin_address() {
    let output = check(&fixtures().join("remote-admin.toml"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(": admin.listen: 0.0.0.0:8053 is not a loopback address"),
        "{stderr}"
    );
    assert!(stderr.contains("admin.allow_remote = true"), "{stderr}");
}

#[test]
fn check_reports_a_missing_file() {
    let output = check(&fixtures().join("absent.toml"));
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("absent.toml: cannot read the file: "));
}

/// Needs the zone loader to reject the broken record with its line.
#[test]
fn check_names_the_zone_file_and_line() {
    let output = check(&fixtures().join("broken-zone/steer.toml"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("example.test.zone:7: "), "{stderr}");
}

#[test]
fn serve_refuses_to_start_with_an_invalid_configuration() {
    let stderr = serve_fails(&fixtures().join("bad-listen.toml"));
    assert!(
        stderr.contains("server.listen[1]: invalid socket address \"1.2.3.4\""),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_to_start_without_its_state_directory() {
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        directory.path().join("var"),
        "a file where a directory belongs",
    )
    .expect("write");
    std::fs::create_dir(directory.path().join("zones")).expect("zones");
    let config = directory.path().join("steer.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_directory = \"var/steer\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write");
    let stderr = serve_fails(&config);
    assert!(
        stderr.contains("steer.toml: server.state_directory: cannot create ")
            && stderr.contains("var/steer: "),
        "{stderr}"
    );
}

/// The standard error of `steer serve --config CONFIG`, which must exit 1.
fn serve_fails(config: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(["serve", "--config", &config.display().to_string()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn steer");
    let status = wait_for_exit(&mut child).expect("steer exits on a bad configuration");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    stderr
}

#[test]
fn reload_reports_an_unreachable_server() {
    // Port 1 on loopback: nothing listens there in a test environment.
    let output = steer(&["reload", "--admin", "127.0.0.1:1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("cannot reach the admin API at http://127.0.0.1:1/reload"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn reload_from_a_config_with_port_zero_asks_for_the_address() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = directory.path().join("steer.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write config");
    let output = steer(&["reload", "--config", &config.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("pass --admin ADDR"),
        "{}",
        text(&output.stderr)
    );
}

/// The whole life of a server: start on port 0, reload through the admin
/// API and through SIGHUP, survive a broken zone, stop on SIGTERM.
/// Needs the zone loader and the UDP and TCP services.
#[test]
fn serve_reloads_and_keeps_the_last_good_table() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let zones = directory.path().join("zones");
    std::fs::create_dir(&zones).expect("zones directory");
    let zone_file = zones.join("example.test.zone");
    std::fs::copy(fixtures().join("good/zones/example.test.zone"), &zone_file).expect("copy zone");
    let ipv6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let listen = if ipv6 {
        r#"["127.0.0.1:0", "[::1]:0"]"#
    } else {
        r#"["127.0.0.1:0"]"#
    };
    let config = directory.path().join("steer.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = {listen}\nzones = \"zones\"\nworkers = 1\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .expect("write config");

    let mut server = Server::start(&config);
    let expected_dns = if ipv6 { 2 } else { 1 };
    assert_eq!(server.udp.len(), expected_dns);
    assert_eq!(server.tcp.len(), expected_dns);
    for (udp, tcp) in server.udp.iter().zip(&server.tcp) {
        assert_ne!(udp.port(), 0);
        assert_eq!(udp, tcp, "UDP and TCP share each address and port");
    }
    let admin = server.admin.to_string();
    for address in &server.udp {
        assert_answers(*address);
    }

    let status = http_json("GET", &format!("http://{admin}/status"));
    assert_eq!(status["generation"], 1);
    assert_eq!(status["zones"][0]["name"], "example.test.");
    assert_eq!(status["zones"][0]["serial"], 2024010101u32);
    assert_eq!(status["listen"]["udp"][0], server.udp[0].to_string());
    assert_eq!(status["listen"]["tcp"][0], server.tcp[0].to_string());

    // Through the admin API, with the command-line client.
    let output = steer(&["reload", "--admin", &admin]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("ok: generation 2, 1 zone, "),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(
        http_json("GET", &format!("http://{admin}/status"))["generation"],
        2
    );

    // Through SIGHUP.
    server.signal(libc::SIGHUP);
    let status = wait_for(|| {
        let status = http_json("GET", &format!("http://{admin}/status"));
        (status["generation"] == 3).then_some(status)
    })
    .expect("SIGHUP reloads");
    assert_eq!(status["reloads"]["ok"], 2);

    // A broken zone: the reload fails and generation 3 keeps being served.
    std::fs::copy(
        fixtures().join("broken-zone/zones/example.test.zone"),
        &zone_file,
    )
    .expect("break the zone");
    let output = steer(&["reload", "--admin", &admin]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("reload failed; still serving generation 3:\n"),
        "{stderr}"
    );
    assert!(stderr.contains("example.test.zone:7: "), "{stderr}");

    let status = http_json("GET", &format!("http://{admin}/status"));
    assert_eq!(status["generation"], 3);
    assert_eq!(status["reloads"], serde_json::json!({"ok": 2, "failed": 1}));
    let errors = status["last_reload_error"]["errors"]
        .as_array()
        .expect("errors listed");
    assert!(
        errors.iter().any(|line| line
            .as_str()
            .is_some_and(|line| line.contains("example.test.zone:7: "))),
        "{errors:?}"
    );
    let metrics = http_text("GET", &format!("http://{admin}/metrics"));
    assert!(
        metrics.contains("steer_reloads_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("steer_reloads_total{result=\"ok\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("steer_table_generation 3\n"), "{metrics}");
    // The last good table still answers.
    assert_answers(server.udp[0]);

    // The broken zone also fails through SIGHUP, and is counted.
    server.signal(libc::SIGHUP);
    wait_for(|| {
        let metrics = http_text("GET", &format!("http://{admin}/metrics"));
        metrics
            .contains("steer_reloads_total{result=\"failed\"} 2\n")
            .then_some(())
    })
    .expect("failed SIGHUP reload is counted");

    server.signal(libc::SIGTERM);
    let status = wait_for_exit(&mut server.child).expect("steer stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.drain_log());
}

/// `www.example.test. A`, ID 0x5354, no flags.
const QUERY: &[u8] = b"\x53\x54\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\
    \x03www\x07example\x04test\x00\x00\x01\x00\x01";

/// Asks `www.example.test. A` over UDP and TCP at `address` and checks for
/// an authoritative NOERROR answer: the table reached the data plane.
fn assert_answers(address: SocketAddr) {
    use std::io::{Read, Write};

    let bind: SocketAddr = if address.is_ipv4() {
        "127.0.0.1:0".parse().expect("address")
    } else {
        "[::1]:0".parse().expect("address")
    };
    let socket = std::net::UdpSocket::bind(bind).expect("client socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    socket.send_to(QUERY, address).expect("send");
    let mut buffer = [0u8; 1500];
    let (length, _) = socket.recv_from(&mut buffer).expect("UDP answer");
    check_response(&buffer[..length], "UDP");

    let mut stream =
        std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut framed = u16::try_from(QUERY.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(QUERY);
    stream.write_all(&framed).expect("send");
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).expect("TCP length");
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut response).expect("TCP answer");
    check_response(&response, "TCP");
}

fn check_response(response: &[u8], transport: &str) {
    assert!(
        response.len() > 12,
        "{transport}: short response {response:?}"
    );
    assert_eq!(&response[..2], &QUERY[..2], "{transport}: ID");
    assert_eq!(response[2] & 0x84, 0x84, "{transport}: QR and AA set");
    assert_eq!(response[3] & 0x0f, 0, "{transport}: NOERROR");
    assert_eq!(
        u16::from_be_bytes([response[6], response[7]]),
        1,
        "{transport}: one answer"
    );
}

#[test]
fn serve_tells_systemd_when_it_is_ready_and_logs_json_on_request() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let zones = directory.path().join("zones");
    std::fs::create_dir(&zones).expect("zones directory");
    std::fs::copy(
        fixtures().join("good/zones/example.test.zone"),
        zones.join("example.test.zone"),
    )
    .expect("copy zone");
    let config = directory.path().join("steer.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\nworkers = 1\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write config");
    // What systemd does for Type=notify: a datagram socket in NOTIFY_SOCKET.
    let notify_path = directory.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind");
    notify.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut child = spawn_serve(
        &[
            "--log-format",
            "json",
            "--config",
            &config.display().to_string(),
        ],
        &[("NOTIFY_SOCKET", notify_path.as_os_str())],
    );
    let stderr = child.stderr.take().expect("piped stderr");
    let lines = thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let mut message = [0u8; 64];
    let length = notify.recv(&mut message).expect("READY=1 within the wait");
    assert_eq!(&message[..length], b"READY=1");
    // Stopping: systemd is told before the shutdown begins.
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let length = notify.recv(&mut message).expect("STOPPING=1");
    assert_eq!(&message[..length], b"STOPPING=1");
    assert!(wait_for_exit(&mut child).is_some_and(|status| status.success()));
    let lines = lines.join().expect("stderr reader");
    assert!(!lines.is_empty());
    let mut listening = 0;
    for line in &lines {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line}"));
        assert!(
            event["timestamp"].is_string() && event["level"].is_string(),
            "{line}"
        );
        if event["fields"]["message"] == "listening" {
            assert!(event["fields"]["address"].is_string(), "{line}");
            listening += 1;
        }
    }
    assert_eq!(listening, 2, "UDP and TCP announced: {lines:#?}");
}

/// `steer serve ARGUMENTS` with `environment`, logging at info level to
/// a piped stderr.
fn spawn_serve(arguments: &[&str], environment: &[(&str, &std::ffi::OsStr)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_steer"))
        .arg("serve")
        .args(arguments)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(environment.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn steer serve")
}

/// A `steer serve` child, killed if a test fails before stopping it.
struct Server {
    child: Child,
    log: Receiver<String>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    admin: SocketAddr,
}

impl Server {
    /// Starts `steer serve` and reads its log until the admin API listens.
    fn start(config: &Path) -> Self {
        let mut child = spawn_serve(&["--config", &config.display().to_string()], &[]);
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            log,
            udp: Vec::new(),
            tcp: Vec::new(),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = server.log.recv_timeout(remaining) else {
                panic!(
                    "steer serve did not announce its listeners; log:\n{}",
                    seen.join("\n")
                );
            };
            if let Some(address) = field_after(&line, "listening transport=udp address=") {
                server.udp.push(address);
            } else if let Some(address) = field_after(&line, "listening transport=tcp address=") {
                server.tcp.push(address);
            } else if let Some(address) = field_after(&line, "admin API listening address=") {
                server.admin = address;
                return server;
            }
            seen.push(line);
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: plain kill(2) on our own child, which has not been reaped
        // (the Child is still owned here), so the pid cannot be reused.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    /// Whatever the server logged since startup, for failure messages.
    fn drain_log(&self) -> String {
        self.log.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The socket address that follows `marker` on a log line.
fn field_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let start = line.find(marker)? + marker.len();
    line[start..].split_whitespace().next()?.parse().ok()
}

fn wait_for_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Polls `probe` until it returns something, for at most [`WAIT`].
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(found) = probe() {
            return Some(found);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

fn http_text(method: &str, url: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // reqwest is built with rustls but no default crypto provider.
        steer::probe::check::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client.request(method, url).send().await.expect("request");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.text().await.expect("body")
    })
}

fn http_json(method: &str, url: &str) -> Value {
    serde_json::from_str(&http_text(method, url)).expect("JSON")
}
