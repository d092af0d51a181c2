//! One health check of one target: a TCP connect, an HTTP or HTTPS
//! request whose status (and optionally body) is checked, or a DNS query
//! (see [`super::dns`]).
//!
//! A [`Checker`] is built once per probe target, when the monitor starts
//! probing it (config validation has already refused bad methods and
//! headers), and reused for every check of that target.
//! [`Checker::check`] never takes longer than the probe's timeout, connect,
//! TLS handshake, request and body read included, and never panics on what
//! a server sends: a server that misbehaves is a failed check with a short
//! reason (`detail`) for `/status` and the logs, nothing more.
//!
//! Every check opens a fresh connection (no pooling), follows no redirect
//! and ignores proxy settings from the environment: the question is whether
//! this endpoint answers, not whether some connection or proxy does.

use std::error::Error;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Response, Url, redirect};
use tokio::net::TcpStream;

use crate::config::steering::{HttpProbe, ProbeKind, ProbeTarget, humanize};

/// How much of a body is searched for `body_contains`: enough for any
/// health page, and a bound on what an endpoint can make us buffer.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The start of every HTTP probe's `User-Agent`, so that endpoint logs can
/// tell probes from users; [`user_agent`] adds the node.
pub const USER_AGENT: &str = concat!("steer-health-check/", env!("CARGO_PKG_VERSION"));

/// The `User-Agent` of the probes of node `node` (`health.node`), so that
/// an endpoint's logs also tell the vantage points apart.
pub fn user_agent(node: &str) -> String {
    format!("{USER_AGENT} (node {node})")
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The target passed.
    pub ok: bool,
    /// From the start of the check to its result (the timeout when it
    /// timed out).
    pub latency: Duration,
    /// Short human text for `/status` and the logs: `HTTP 200`,
    /// `HTTP 503 (expected 200-399)`, `timed out after 2s`,
    /// `connection refused`, `TLS: invalid peer certificate: UnknownIssuer`,
    /// `connected` (tcp).
    pub detail: String,
}

/// Checks one target; built once per (probe, target) and reused for every
/// check of that target.
#[derive(Debug)]
pub struct Checker {
    /// Where a TCP probe connects (HTTP probes carry it in their client).
    address: SocketAddr,
    /// The bound on a whole check.
    timeout: Duration,
    /// What is checked.
    kind: CheckKind,
}

/// The prepared form of a [`ProbeKind`].
#[derive(Debug)]
enum CheckKind {
    Tcp,
    // Boxed: a client and a URL are large, and most targets may be tcp.
    Http(Box<HttpCheck>),
    Dns(Box<super::dns::DnsCheck>),
}

/// Everything an HTTP check sends and expects, parsed once.
#[derive(Debug)]
struct HttpCheck {
    /// Owns the TLS settings and the host → target address override.
    client: Client,
    method: Method,
    url: Url,
    headers: HeaderMap,
    expect_status: Vec<RangeInclusive<u16>>,
    /// `expect_status` as the detail of a failed check shows it: `200-399`.
    expected_text: String,
    body_contains: Option<String>,
}

/// Makes ring the process's TLS crypto provider, unless one is installed
/// already.
///
/// reqwest is built without a provider of its own (see `Cargo.toml`) and
/// panics when a client is built before one is installed, so anything that
/// builds a `reqwest::Client` calls this first; calling it again is cheap.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: reqwest uses that one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Checker {
    /// Prepares the checks of `target`.
    ///
    /// Fails, with a sentence naming the bad part, when the probe's method,
    /// a header, the host or the path cannot be sent, or when the HTTP
    /// client cannot be built (for instance, no system CA store).
    pub fn new(target: &ProbeTarget, user_agent: &str) -> Result<Checker, String> {
        let kind = match &target.probe.kind {
            ProbeKind::Tcp => CheckKind::Tcp,
            ProbeKind::Http(http) => {
                CheckKind::Http(Box::new(HttpCheck::new(http, target, user_agent)?))
            }
            ProbeKind::Dns(dns) => {
                CheckKind::Dns(Box::new(super::dns::DnsCheck::new(dns, target.address)))
            }
        };
        Ok(Checker {
            address: target.address,
            timeout: target.probe.timeout,
            kind,
        })
    }

    /// Runs one check; it never takes longer than the probe's timeout.
    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        let outcome = match &self.kind {
            CheckKind::Tcp => tokio::time::timeout(self.timeout, self.check_tcp()).await,
            CheckKind::Http(http) => {
                tokio::time::timeout(self.timeout, http.check(self.timeout)).await
            }
            CheckKind::Dns(dns) => tokio::time::timeout(self.timeout, dns.check()).await,
        };
        let (ok, detail) = outcome.unwrap_or_else(|_| (false, timed_out(self.timeout)));
        CheckResult {
            ok,
            latency: started.elapsed(),
            detail,
        }
    }

    async fn check_tcp(&self) -> (bool, String) {
        match TcpStream::connect(self.address).await {
            // Dropping the stream closes it: being accepted is the check.
            Ok(_stream) => (true, "connected".to_owned()),
            Err(error) => (false, describe_io(&error, self.timeout)),
        }
    }
}

impl HttpCheck {
    fn new(http: &HttpProbe, target: &ProbeTarget, user_agent: &str) -> Result<HttpCheck, String> {
        install_crypto_provider();
        let method = Method::from_bytes(http.method.as_bytes())
            .map_err(|_| format!("invalid HTTP method \"{}\"", http.method))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &http.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid HTTP header name \"{name}\""))?;
            let header_value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for HTTP header \"{name}\""))?;
            // Append, not insert: a header written twice is sent twice.
            headers.append(header_name, header_value);
        }

        let mut builder = Client::builder()
            .user_agent(user_agent)
            .timeout(target.probe.timeout)
            // A fresh connection per check: a listener that stopped
            // accepting must fail the check, not hide behind an idle one.
            .pool_max_idle_per_host(0)
            .redirect(redirect::Policy::none())
            .no_proxy();
        if !http.verify_certificate {
            // Skips the name check as well: with rustls, reqwest can skip
            // the name check alone only with its own CA list.
            builder = builder.tls_danger_accept_invalid_certs(true);
        }

        let scheme = if http.tls { "https" } else { "http" };
        let port = target.address.port();
        let url_host = match &http.host {
            // The host goes in the URL, so that it is the Host header, the
            // TLS server name and the name the certificate is checked
            // against, and resolves to the target address alone.
            Some(host) if !is_ip_literal(host) => {
                builder = builder.resolve(host, target.address);
                host.clone()
            }
            Some(host) => {
                // An address in the URL is connected to as it is, bypassing
                // `resolve`: connect to the target and name the host only in
                // the Host header.
                let value = HeaderValue::from_str(&authority(host, port, http.tls))
                    .map_err(|_| format!("invalid host \"{host}\""))?;
                headers.insert(reqwest::header::HOST, value);
                ip_literal(target.address.ip())
            }
            None => ip_literal(target.address.ip()),
        };
        let text = format!("{scheme}://{url_host}:{port}{}", http.path);
        let url = Url::parse(&text).map_err(|error| format!("invalid URL {text}: {error}"))?;

        let client = builder.build().map_err(|error| {
            format!(
                "cannot build the HTTP client: {}",
                crate::error_chain(&error)
            )
        })?;
        Ok(HttpCheck {
            client,
            method,
            url,
            headers,
            expected_text: status_ranges_text(&http.expect_status),
            expect_status: http.expect_status.clone(),
            body_contains: http.body_contains.clone(),
        })
    }

    async fn check(&self, timeout: Duration) -> (bool, String) {
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return (false, describe_request_error(&error, timeout)),
        };
        let status = response.status().as_u16();
        if !self
            .expect_status
            .iter()
            .any(|range| range.contains(&status))
        {
            return (
                false,
                format!("HTTP {status} (expected {})", self.expected_text),
            );
        }
        let Some(text) = &self.body_contains else {
            return (true, format!("HTTP {status}"));
        };
        match body_contains(&mut response, text.as_bytes()).await {
            Ok(true) => (true, format!("HTTP {status}")),
            Ok(false) => (false, format!("body does not contain {text:?}")),
            Err(error) => (
                false,
                format!(
                    "HTTP {status}, reading the body: {}",
                    describe_request_error(&error, timeout)
                ),
            ),
        }
    }
}

/// Whether the first [`BODY_LIMIT`] bytes of the body contain `needle`;
/// stops reading as soon as they do.
async fn body_contains(response: &mut Response, needle: &[u8]) -> Result<bool, reqwest::Error> {
    if needle.is_empty() {
        return Ok(true);
    }
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        // Only a match that ends in the new chunk is new.
        let search_from = body.len().saturating_sub(needle.len() - 1);
        let room = BODY_LIMIT - body.len();
        body.extend_from_slice(chunk.get(..room).unwrap_or(&chunk));
        if body
            .get(search_from..)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|window| window == needle)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `200-399`, `200`, or several joined by commas.
fn status_ranges_text(ranges: &[RangeInclusive<u16>]) -> String {
    let texts: Vec<String> = ranges
        .iter()
        .map(|range| {
            if range.start() == range.end() {
                range.start().to_string()
            } else {
                format!("{}-{}", range.start(), range.end())
            }
        })
        .collect();
    texts.join(", ")
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// An address as a URL host: IPv6 in brackets.
fn ip_literal(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// A Host header value: the port only when it is not the scheme's default.
fn authority(host: &str, port: u16, tls: bool) -> String {
    let host = match host.parse::<IpAddr>() {
        Ok(address) => ip_literal(address),
        Err(_) => host.to_owned(),
    };
    let default_port = if tls { 443 } else { 80 };
    if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// `timed out after 2s`, the timeout written as in the config file.
fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", humanize(timeout))
}

/// The useful part of a request error: reqwest's own message names only
/// the URL, the cause is further down the chain.
fn describe_request_error(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return timed_out(timeout);
    }
    let mut innermost: &(dyn Error + 'static) = error;
    let mut current = error.source();
    while let Some(cause) = current {
        if let Some(tls_error) = cause.downcast_ref::<rustls::Error>() {
            return format!("TLS: {tls_error}");
        }
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            // The TLS layer's errors arrive wrapped in io::Error, sometimes
            // twice, and io::Error's `source` skips the error it wraps.
            if let Some(inner) = io_error.get_ref()
                && (inner.is::<io::Error>() || inner.is::<rustls::Error>())
            {
                current = Some(inner);
                continue;
            }
            return describe_io(io_error, timeout);
        }
        innermost = cause;
        current = cause.source();
    }
    innermost.to_string()
}

fn describe_io(error: &io::Error, timeout: Duration) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::TimedOut => timed_out(timeout),
        io::ErrorKind::UnexpectedEof => "connection closed".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::config::steering::Probe;

    /// The probe timeout of every test that does not time out on purpose.
    const TIMEOUT: Duration = Duration::from_secs(1);

    /// How long a test server waits for its one client.
    const SERVER_LIMIT: Duration = Duration::from_secs(1);

    const OK_RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nstatus OK";

    fn target(address: SocketAddr, kind: ProbeKind, timeout: Duration) -> ProbeTarget {
        ProbeTarget {
            probe: Probe {
                id: "test".to_owned(),
                kind,
                port: address.port(),
                interval: Duration::from_secs(1),
                jitter: Duration::ZERO,
                timeout,
                rise: 1,
                fall: 1,
            },
            address,
        }
    }

    /// An http probe with the config's defaults, on `/health`.
    fn http_probe() -> HttpProbe {
        HttpProbe {
            tls: false,
            method: "GET".to_owned(),
            path: "/health".to_owned(),
            host: None,
            headers: Vec::new(),
            expect_status: vec![200..=399],
            body_contains: None,
            verify_certificate: true,
        }
    }

    async fn check_http(address: SocketAddr, http: HttpProbe) -> CheckResult {
        Checker::new(
            &target(address, ProbeKind::Http(http), TIMEOUT),
            &user_agent("fra-1"),
        )
        .expect("checker")
        .check()
        .await
    }

    /// Reads a request head, answers `response` and closes; the head, or
    /// `None` when the client left first.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        response: &[u8],
    ) -> Option<String> {
        let mut head = Vec::new();
        let mut buffer = [0; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            let count = stream.read(&mut buffer).await.ok()?;
            if count == 0 {
                return None;
            }
            head.extend_from_slice(buffer.get(..count)?);
        }
        // The client may stop reading early (a long body): not an error here.
        let _ = stream.write_all(response).await;
        let _ = stream.shutdown().await;
        Some(String::from_utf8_lossy(&head).to_lowercase())
    }

    /// An HTTP server for one request; yields the request head, lower case.
    async fn serve_once(response: Vec<u8>) -> (SocketAddr, JoinHandle<Option<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let work = async {
                let (stream, _) = listener.accept().await.ok()?;
                answer(stream, &response).await
            };
            tokio::time::timeout(SERVER_LIMIT, work).await.ok()?
        });
        (address, server)
    }

    /// An HTTPS server for one request with a self-signed certificate for
    /// `probe.test`; yields the TLS server name the client sent and the
    /// request head.
    async fn serve_tls_once(
        response: &'static [u8],
    ) -> (SocketAddr, JoinHandle<Option<(Option<String>, String)>>) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["probe.test".to_owned()]).expect("certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key)
                .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let work = async {
                let (stream, _) = listener.accept().await.ok()?;
                let stream = acceptor.accept(stream).await.ok()?;
                let server_name = stream.get_ref().1.server_name().map(str::to_owned);
                Some((server_name, answer(stream, response).await?))
            };
            tokio::time::timeout(SERVER_LIMIT, work).await.ok()?
        });
        (address, server)
    }

    /// An address nothing listens on (bound, then released).
    async fn closed_address() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    }

    #[tokio::test]
    async fn expected_status_and_body_are_ok() {
        let (address, server) = serve_once(OK_RESPONSE.to_vec()).await;
        let http = HttpProbe {
            body_contains: Some("OK".to_owned()),
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert_eq!((result.ok, result.detail.as_str()), (true, "HTTP 200"));
        assert!(result.latency < TIMEOUT);
        let head = server.await.expect("server").expect("request");
        assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
        let expected = format!("user-agent: {USER_AGENT} (node fra-1)\r\n").to_lowercase();
        assert!(head.contains(&expected), "{head}");
    }

    #[tokio::test]
    async fn unexpected_status_fails_with_the_status() {
        let response = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        let (address, _server) = serve_once(response.to_vec()).await;
        let result = check_http(address, http_probe()).await;
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "HTTP 503 (expected 200-399)")
        );
    }

    #[tokio::test]
    async fn missing_body_text_fails() {
        let (address, _server) = serve_once(OK_RESPONSE.to_vec()).await;
        let http = HttpProbe {
            body_contains: Some("healthy".to_owned()),
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "body does not contain \"healthy\"")
        );
    }

    #[tokio::test]
    async fn body_text_is_searched_in_the_first_64_kib_only() {
        // The text straddles the limit: its first byte is inside, the rest
        // is not. The body is far larger than the limit and never buffered.
        let mut body = vec![b'.'; BODY_LIMIT - 1];
        body.extend_from_slice(b"needle");
        body.resize(4 * 1024 * 1024, b'.');
        let mut response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        response.extend_from_slice(&body);
        let (address, _server) = serve_once(response).await;
        let http = HttpProbe {
            body_contains: Some("needle".to_owned()),
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "body does not contain \"needle\"")
        );

        // Inside the limit, across reads: found.
        let mut body = vec![b'.'; BODY_LIMIT - 6];
        body.extend_from_slice(b"needle");
        let mut response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        response.extend_from_slice(&body);
        let (address, _server) = serve_once(response).await;
        let http = HttpProbe {
            body_contains: Some("needle".to_owned()),
            ..http_probe()
        };
        assert!(check_http(address, http).await.ok);
    }

    #[tokio::test]
    async fn silent_server_fails_within_the_timeout() {
        let timeout = Duration::from_millis(300);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        // Accepts and reads, never answers; ends when the client leaves.
        tokio::spawn(async move {
            let work = async {
                let (mut stream, _) = listener.accept().await.ok()?;
                let mut sink = Vec::new();
                stream.read_to_end(&mut sink).await.ok()
            };
            tokio::time::timeout(SERVER_LIMIT, work).await
        });
        let checker = Checker::new(
            &target(address, ProbeKind::Http(http_probe()), timeout),
            USER_AGENT,
        )
        .expect("checker");
        let started = Instant::now();
        let result = checker.check().await;
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "timed out after 300ms")
        );
        assert!(result.latency >= timeout);
    }

    #[tokio::test]
    async fn refused_connection_fails() {
        let result = check_http(closed_address().await, http_probe()).await;
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "connection refused")
        );
    }

    #[tokio::test]
    async fn redirect_is_the_result_and_is_not_followed() {
        // Following it would hit a closed listener and fail the check.
        let response = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n";
        let (address, server) = serve_once(response.to_vec()).await;
        let result = check_http(address, http_probe()).await;
        assert_eq!((result.ok, result.detail.as_str()), (true, "HTTP 302"));
        server.await.expect("server");

        let (address, _server) = serve_once(response.to_vec()).await;
        let http = HttpProbe {
            expect_status: vec![200..=200],
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "HTTP 302 (expected 200)")
        );
    }

    #[tokio::test]
    async fn host_and_headers_reach_the_server() {
        let (address, server) = serve_once(OK_RESPONSE.to_vec()).await;
        let http = HttpProbe {
            host: Some("www.example.test".to_owned()),
            headers: vec![
                ("X-Probe".to_owned(), "steer".to_owned()),
                ("Accept".to_owned(), "text/plain".to_owned()),
            ],
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert!(result.ok, "{}", result.detail);
        let head = server.await.expect("server").expect("request");
        let port = address.port();
        assert!(
            head.contains(&format!("\r\nhost: www.example.test:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains("\r\nx-probe: steer\r\n"), "{head}");
        assert!(head.contains("\r\naccept: text/plain\r\n"), "{head}");
    }

    #[tokio::test]
    async fn host_given_as_an_address_still_connects_to_the_target() {
        let (address, server) = serve_once(OK_RESPONSE.to_vec()).await;
        let http = HttpProbe {
            host: Some("192.0.2.1".to_owned()),
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert!(result.ok, "{}", result.detail);
        let head = server.await.expect("server").expect("request");
        let port = address.port();
        assert!(
            head.contains(&format!("\r\nhost: 192.0.2.1:{port}\r\n")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn head_method_is_sent() {
        // A HEAD answer announces a length but carries no body.
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        let (address, server) = serve_once(response.to_vec()).await;
        let http = HttpProbe {
            method: "HEAD".to_owned(),
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert_eq!((result.ok, result.detail.as_str()), (true, "HTTP 200"));
        let head = server.await.expect("server").expect("request");
        assert!(head.starts_with("head /health http/1.1\r\n"), "{head}");
    }

    #[tokio::test]
    async fn garbage_answer_fails() {
        let (address, _server) = serve_once(b"\x00\xffnot http at all\r\n\r\n".to_vec()).await;
        let result = check_http(address, http_probe()).await;
        assert!(!result.ok);
        assert!(!result.detail.is_empty());
    }

    #[tokio::test]
    async fn invalid_method_or_header_is_rejected() {
        let address = closed_address().await;
        let with = |http: HttpProbe| {
            Checker::new(&target(address, ProbeKind::Http(http), TIMEOUT), USER_AGENT)
        };
        let error = with(HttpProbe {
            method: "GET IT".to_owned(),
            ..http_probe()
        })
        .expect_err("method");
        assert_eq!(error, "invalid HTTP method \"GET IT\"");
        let error = with(HttpProbe {
            headers: vec![("Bad Name".to_owned(), "value".to_owned())],
            ..http_probe()
        })
        .expect_err("name");
        assert_eq!(error, "invalid HTTP header name \"Bad Name\"");
        let error = with(HttpProbe {
            headers: vec![("X-Probe".to_owned(), "line\nbreak".to_owned())],
            ..http_probe()
        })
        .expect_err("value");
        assert_eq!(error, "invalid value for HTTP header \"X-Probe\"");
    }

    #[tokio::test]
    async fn https_without_verification_accepts_a_self_signed_certificate() {
        let (address, server) = serve_tls_once(OK_RESPONSE).await;
        let http = HttpProbe {
            tls: true,
            host: Some("probe.test".to_owned()),
            verify_certificate: false,
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert_eq!((result.ok, result.detail.as_str()), (true, "HTTP 200"));
        let (server_name, head) = server.await.expect("server").expect("request");
        assert_eq!(server_name.as_deref(), Some("probe.test"));
        let port = address.port();
        assert!(
            head.contains(&format!("\r\nhost: probe.test:{port}\r\n")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn https_with_verification_rejects_a_self_signed_certificate() {
        let (address, _server) = serve_tls_once(OK_RESPONSE).await;
        let http = HttpProbe {
            tls: true,
            host: Some("probe.test".to_owned()),
            ..http_probe()
        };
        let result = check_http(address, http).await;
        assert!(!result.ok);
        assert!(
            result.detail.starts_with("TLS: ") && result.detail.contains("certificate"),
            "{}",
            result.detail
        );
    }

    #[tokio::test]
    async fn tcp_listening_port_is_ok() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let checker =
            Checker::new(&target(address, ProbeKind::Tcp, TIMEOUT), USER_AGENT).expect("checker");
        let result = checker.check().await;
        assert_eq!((result.ok, result.detail.as_str()), (true, "connected"));
    }

    #[tokio::test]
    async fn tcp_closed_port_fails() {
        let checker = Checker::new(
            &target(closed_address().await, ProbeKind::Tcp, TIMEOUT),
            USER_AGENT,
        )
        .expect("checker");
        let result = checker.check().await;
        assert_eq!(
            (result.ok, result.detail.as_str()),
            (false, "connection refused")
        );
    }
}
