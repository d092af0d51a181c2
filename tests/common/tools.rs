//! Running the external tools the tests use (dnssec-keygen,
//! dnssec-signzone, delv, dig) bounded in time, so that a tool that hangs
//! fails its test instead of stopping the run.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one tool may run before the test gives up on it.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished tool printed.
pub struct Output {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Whether it exited with status 0.
    pub success: bool,
}

/// Runs `program` with `arguments` in `directory` (`None`: the test's),
/// killing it after [`TOOL_TIMEOUT`] (the test then fails). Blocking: call
/// it off the async threads while a server runs in-process.
pub fn run_bounded(program: &str, arguments: &[&str], directory: Option<&Path>) -> Output {
    let mut command = Command::new(program);
    command
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(directory) = directory {
        command.current_dir(directory);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("{program} (Debian's package) runs: {error}"));
    // Both pipes are drained while the child runs, so a long output never
    // blocks it.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    // Killed and reaped if the wait below panics.
    let mut child = super::Process(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waiting for a tool") {
            break status;
        }
        assert!(
            started.elapsed() < TOOL_TIMEOUT,
            "{program} {arguments:?}: still running after {TOOL_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        success: status.success(),
    }
}

/// The DNSKEY of a `.key` file dnssec-keygen wrote: its flags, algorithm
/// and public key (base64, without the spaces the file may have).
pub fn dnskey_of(key_file: &Path) -> (u16, u8, String) {
    let text = std::fs::read_to_string(key_file)
        .unwrap_or_else(|error| panic!("reading {}: {error}", key_file.display()));
    let fields: Vec<&str> = text
        .lines()
        .find(|line| !line.starts_with(';') && line.contains("DNSKEY"))
        .unwrap_or_else(|| panic!("no DNSKEY in {}: {text}", key_file.display()))
        .split_whitespace()
        .skip_while(|field| *field != "DNSKEY")
        .skip(1)
        .collect();
    assert!(
        fields.len() >= 4,
        "short DNSKEY in {}: {text}",
        key_file.display()
    );
    (
        fields[0].parse().expect("DNSKEY flags"),
        fields[2].parse().expect("DNSKEY algorithm"),
        fields[3..].concat(),
    )
}

/// Debian's `dig` against `server` (`@IP -p PORT`, one try of 2 s) with
/// `arguments`: its standard output. Runs off the async threads.
pub async fn dig_text(server: std::net::SocketAddr, arguments: Vec<String>) -> String {
    dig_output(server, arguments, 2).await.stdout
}

/// Debian's `dig` against `server` with `arguments`, one try of
/// `seconds`: what it printed and whether it succeeded. Runs off the
/// async threads.
pub async fn dig_output(
    server: std::net::SocketAddr,
    arguments: Vec<String>,
    seconds: u32,
) -> Output {
    let mut all = vec![
        format!("@{}", server.ip()),
        "-p".to_owned(),
        server.port().to_string(),
        format!("+time={seconds}"),
        "+tries=1".to_owned(),
    ];
    all.extend(arguments);
    tokio::task::spawn_blocking(move || {
        let borrowed: Vec<&str> = all.iter().map(String::as_str).collect();
        run_bounded("dig", &borrowed, None)
    })
    .await
    .expect("dig thread")
}

/// BIND's `nsupdate` (Debian's dnsutils) sending `commands` for `zone` to
/// `server`, signed with `key` (`name:secret`, hmac-sha256) when given,
/// over TCP when `tcp`: whether it succeeded, and what it printed.
pub async fn nsupdate(
    server: std::net::SocketAddr,
    zone: &str,
    key: Option<&str>,
    tcp: bool,
    commands: &str,
) -> (bool, String) {
    let script = tempfile::NamedTempFile::new().expect("script");
    // check-names off: `_acme-challenge` owners are what ACME updates.
    std::fs::write(
        script.path(),
        format!(
            "server {} {}\ncheck-names no\nzone {zone}\n{commands}\nsend\n",
            server.ip(),
            server.port()
        ),
    )
    .expect("script written");
    let mut arguments: Vec<String> = vec!["-t".to_owned(), "5".to_owned()];
    if tcp {
        arguments.push("-v".to_owned());
    }
    if let Some(key) = key {
        arguments.push("-y".to_owned());
        arguments.push(format!("hmac-sha256:{key}"));
    }
    arguments.push(script.path().display().to_string());
    let output = tokio::task::spawn_blocking(move || {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        run_bounded("nsupdate", &arguments, None)
    })
    .await
    .expect("nsupdate ran");
    drop(script);
    (
        output.success,
        format!("{}{}", output.stdout, output.stderr),
    )
}

/// The status and the answer lines of `dig` output, each line's fields
/// joined by one space.
pub fn status_and_answers(output: &str) -> (String, Vec<String>) {
    let status = output
        .lines()
        .find_map(|line| line.split("status: ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no status in\n{output}"))
        .to_owned();
    let answers = output
        .split(";; ANSWER SECTION:\n")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .take_while(|line| !line.is_empty())
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    (status, answers)
}
