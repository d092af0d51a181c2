//! Shared by the end-to-end tests: the real server started in-process on
//! ephemeral loopback ports, a small DNS client over UDP and TCP (queries
//! built and responses parsed with hickory-proto), raw packet exchange for
//! malformed input, and a minimal HTTP client for the admin API.
//!
//! Every network wait is bounded by a timeout, and every address is
//! loopback (127.0.0.1 or ::1).

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use steer::server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
pub mod differential;
pub mod tools;

/// A minimal `example.test` zone (SOA, NS and its glue) for tests whose
/// names are all steered.
pub const EXAMPLE_ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@    IN SOA ns1 hostmaster 2024060101 7200 900 1209600 120
@    IN NS  ns1
ns1  IN A   192.0.2.1
";

/// Writes `zones/ORIGIN.zone` into `directory`: a zone like
/// [`EXAMPLE_ZONE`] (SOA, NS, `ns1` at 192.0.2.53) with `records` (zone
/// file lines, relative names) added.
pub fn write_zone(directory: &Path, origin: &str, records: &str) {
    let text = format!(
        "$ORIGIN {origin}.\n$TTL 300\n\
         @    IN SOA ns1 hostmaster 2024060101 7200 900 1209600 120\n\
         @    IN NS  ns1\n\
         ns1  IN A   192.0.2.53\n{records}"
    );
    std::fs::write(directory.join(format!("zones/{origin}.zone")), text).expect("zone");
}

/// A fresh directory holding `zones/example.test.zone` ([`EXAMPLE_ZONE`])
/// and `steer.toml` with `config`, ready for [`TestServer::start_prepared`].
pub fn example_directory(config: &str) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temporary directory");
    write_example(directory.path(), config);
    directory
}

/// Writes `zones/example.test.zone` and `steer.toml` (with `config`) into
/// `directory`.
pub fn write_example(directory: &Path, config: &str) {
    std::fs::create_dir_all(directory.join("zones")).expect("zones directory");
    std::fs::write(directory.join("zones/example.test.zone"), EXAMPLE_ZONE).expect("zone");
    std::fs::write(directory.join("steer.toml"), config).expect("config");
}

/// How long a test waits for an answer it expects (per attempt).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a test waits before concluding that a packet was dropped.
pub const SILENCE_TIMEOUT: Duration = Duration::from_millis(400);

/// The transport a query is sent over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One datagram each way.
    Udp,
    /// RFC 7766 framing: a two-byte length before each message.
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// The address family a query is sent over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// 127.0.0.1.
    V4,
    /// ::1.
    V6,
}

impl std::fmt::Display for Family {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        })
    }
}

/// The server under test, its temporary directory and how to reach it.
pub struct TestServer {
    /// Holds the config and the zones; removed when the server is dropped.
    pub directory: tempfile::TempDir,
    /// The running server (taken by [`TestServer::shutdown`]).
    pub running: Option<RunningServer>,
}

impl TestServer {
    /// Starts the server with the `*.zone` files of `fixture` (a directory
    /// relative to the crate root, e.g. `tests/fixtures/golden/zones`).
    pub async fn start_with_fixture(fixture: &str) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture);
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&source)
            .unwrap_or_else(|error| panic!("reading {}: {error}", source.display()));
        for entry in entries {
            let path = entry.expect("fixture directory entry").path();
            if path
                .extension()
                .is_some_and(|extension| extension == "zone")
            {
                let name = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .expect("fixture file name is UTF-8")
                    .to_owned();
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
                files.push((name, text));
            }
        }
        assert!(!files.is_empty(), "no zone files in {}", source.display());
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        Self::start(&borrowed).await
    }

    /// Starts the server with the given zone files (file name, contents):
    /// both loopback families, one UDP worker, admin API on loopback.
    pub async fn start(zone_files: &[(&str, &str)]) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let zones = directory.path().join("zones");
        std::fs::create_dir(&zones).expect("zones directory");
        for (name, text) in zone_files {
            std::fs::write(zones.join(name), text).expect("writing zone file");
        }
        let config = directory.path().join("steer.toml");
        std::fs::write(
            &config,
            "[server]\n\
             listen = [\"127.0.0.1:0\", \"[::1]:0\"]\n\
             zones = \"zones\"\n\
             workers = 1\n\
             \n\
             [admin]\n\
             listen = \"127.0.0.1:0\"\n",
        )
        .expect("writing config");
        let running = timeout(Duration::from_secs(20), steer::server::start(&config))
            .await
            .expect("server started within 20 s")
            .unwrap_or_else(|error| panic!("server failed to start: {error}"));
        Self {
            directory,
            running: Some(running),
        }
    }

    /// Starts the server with `directory/steer.toml`, which the caller has
    /// written together with everything it names (zones, databases).
    pub async fn start_prepared(directory: tempfile::TempDir) -> Self {
        let config = directory.path().join("steer.toml");
        let running = timeout(Duration::from_secs(20), steer::server::start(&config))
            .await
            .expect("server started within 20 s")
            .unwrap_or_else(|error| panic!("server failed to start: {error}"));
        Self {
            directory,
            running: Some(running),
        }
    }

    /// The running server.
    pub fn running(&self) -> &RunningServer {
        self.running.as_ref().expect("server is running")
    }

    /// The zones directory the server reads on reload.
    pub fn zones_dir(&self) -> PathBuf {
        self.directory.path().join("zones")
    }

    /// The DNS address of `family` on `transport`.
    pub fn dns_addr(&self, transport: Transport, family: Family) -> SocketAddr {
        let running = self.running();
        let addresses = match transport {
            Transport::Udp => &running.dns_udp,
            Transport::Tcp => &running.dns_tcp,
        };
        addresses
            .iter()
            .copied()
            .find(|address| match family {
                Family::V4 => address.is_ipv4(),
                Family::V6 => address.is_ipv6(),
            })
            .unwrap_or_else(|| panic!("no {transport}/{family} listener in {addresses:?}"))
    }

    /// The admin API address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.running().admin
    }

    /// Stops the server (bounded) and hands back its directory, with
    /// what the stop wrote, for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(running) = self.running.take() {
            timeout(Duration::from_secs(10), running.shutdown())
                .await
                .expect("server shut down within 10 s");
        }
        std::mem::replace(
            &mut self.directory,
            tempfile::tempdir().expect("temporary directory"),
        )
    }

    /// Stops the server and waits for it to finish (bounded).
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            timeout(Duration::from_secs(10), running.shutdown())
                .await
                .expect("server shut down within 10 s");
        }
    }
}

/// Options of a query, in the spirit of dig's `+` options.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Recursion desired (set by default, as dig does).
    pub recursion_desired: bool,
    /// Checking disabled.
    pub checking_disabled: bool,
    /// Send an OPT record.
    pub edns: bool,
    /// Requester's UDP payload size in the OPT record.
    pub payload_size: u16,
    /// EDNS version in the OPT record.
    pub edns_version: u8,
    /// The DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// Question class.
    pub class: DNSClass,
    /// Opcode.
    pub op_code: OpCode,
    /// EDNS Client Subnet: address and source prefix length (implies EDNS).
    pub client_subnet: Option<(std::net::IpAddr, u8)>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            recursion_desired: true,
            checking_disabled: false,
            edns: false,
            payload_size: 1232,
            edns_version: 0,
            dnssec_ok: false,
            class: DNSClass::IN,
            op_code: OpCode::Query,
            client_subnet: None,
        }
    }
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0x1000);

/// A fresh message id, different for consecutive queries of a test run.
pub fn next_id() -> u16 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Builds a query for `name` (letter case kept) and `record_type`.
pub fn build_query(name: &str, record_type: RecordType, options: &QueryOptions) -> Message {
    let name = Name::from_ascii(name).unwrap_or_else(|error| panic!("bad name {name:?}: {error}"));
    let mut message = Message::query();
    message.metadata.id = next_id();
    message.metadata.op_code = options.op_code;
    message.metadata.recursion_desired = options.recursion_desired;
    message.metadata.checking_disabled = options.checking_disabled;
    let mut query = Query::query(name, record_type);
    query.set_query_class(options.class);
    message.add_query(query);
    if options.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(options.payload_size);
        edns.set_version(options.edns_version);
        edns.set_dnssec_ok(options.dnssec_ok);
        if let Some((address, source_prefix)) = options.client_subnet {
            edns.options_mut()
                .insert(hickory_proto::rr::rdata::opt::EdnsOption::Subnet(
                    hickory_proto::rr::rdata::opt::ClientSubnet::new(address, source_prefix, 0),
                ));
        }
        message.edns = Some(edns);
    }
    message
}

/// Sends `packet` in one datagram and returns the first datagram that comes
/// back within `wait`, or None.
pub async fn exchange_udp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().expect("v4 address")
    } else {
        "[::1]:0".parse().expect("v6 address")
    };
    let socket = UdpSocket::bind(local).await.expect("binding UDP client");
    socket.connect(server).await.expect("connecting UDP client");
    socket.send(packet).await.expect("sending datagram");
    let mut buffer = vec![0u8; 65535];
    match timeout(wait, socket.recv(&mut buffer)).await {
        Ok(Ok(length)) => {
            buffer.truncate(length);
            Some(buffer)
        }
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Sends `packet` with a length prefix on a new TCP connection and returns
/// the first framed message that comes back within `wait`, or None (no
/// reply, or the server closed the connection).
pub async fn exchange_tcp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut stream = timeout(wait, TcpStream::connect(server)).await.ok()?.ok()?;
    write_frame(&mut stream, packet).await.ok()?;
    timeout(wait, read_frame(&mut stream)).await.ok()?.ok()
}

/// Writes one length-prefixed message.
pub async fn write_frame(stream: &mut TcpStream, packet: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(packet.len()).expect("message fits a TCP frame");
    let mut framed = Vec::with_capacity(packet.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(packet);
    stream.write_all(&framed).await
}

/// Reads one length-prefixed message.
pub async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

/// Sends raw bytes over `transport` and returns the raw reply, if any.
pub async fn exchange(
    transport: Transport,
    server: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    match transport {
        Transport::Udp => exchange_udp(server, packet, wait).await,
        Transport::Tcp => exchange_tcp(server, packet, wait).await,
    }
}

/// Sends `query` and returns the parsed response; panics when no response
/// with the query's id arrives (UDP is tried three times) or it does not
/// parse.
pub async fn ask(transport: Transport, server: SocketAddr, query: &Message) -> Message {
    match try_ask(transport, server, query, 3).await {
        Ok(response) => response,
        Err(error) => panic!(
            "{transport} {server}: query {:?}: {error}",
            query.queries.first().map(|question| question.to_string())
        ),
    }
}

/// Like [`ask`] but returns why it failed instead of panicking.
pub async fn try_ask(
    transport: Transport,
    server: SocketAddr,
    query: &Message,
    attempts: usize,
) -> Result<Message, String> {
    let packet = query
        .to_vec()
        .map_err(|error| format!("encoding: {error}"))?;
    for _ in 0..attempts.max(1) {
        let Some(reply) = exchange(transport, server, &packet, REPLY_TIMEOUT).await else {
            continue;
        };
        let response = Message::from_vec(&reply)
            .map_err(|error| format!("response does not parse: {error}: {reply:02x?}"))?;
        if response.metadata.id != query.metadata.id {
            return Err(format!(
                "response id {} for query id {}",
                response.metadata.id, query.metadata.id
            ));
        }
        return Ok(response);
    }
    Err(format!("no response after {attempts} attempt(s)"))
}

/// The wire bytes of a query packet built by hand, for malformed input:
/// header fields and the sections as raw bytes.
pub fn raw_query(id: u16, flags: u16, counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + body.len());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet.extend_from_slice(body);
    packet
}

/// A name in wire format (no compression), e.g. `www.example.test.`.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|label| !label.is_empty())
    {
        wire.push(u8::try_from(label.len()).expect("label fits"));
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// A complete, well-formed question section body: name, type, class IN.
pub fn question_bytes(name: &str, record_type: u16) -> Vec<u8> {
    let mut body = wire_name(name);
    body.extend_from_slice(&record_type.to_be_bytes());
    body.extend_from_slice(&1u16.to_be_bytes());
    body
}

/// The response code of a raw response, extended bits from the OPT record
/// included, as hickory-proto reads it (rcode 16 is compared as a number:
/// hickory names it BADSIG, its TSIG meaning).
pub fn rcode_of(response: &Message) -> u16 {
    u16::from(response.metadata.response_code)
}

/// Asks `name A` over UDP on the server's IPv4 address with `options`;
/// returns the response and its answer records' data, sorted.
pub async fn ask_a(
    server: &TestServer,
    name: &str,
    options: &QueryOptions,
) -> (Message, Vec<String>) {
    let query = build_query(name, RecordType::A, options);
    let response = ask(
        Transport::Udp,
        server.dns_addr(Transport::Udp, Family::V4),
        &query,
    )
    .await;
    let mut data: Vec<String> = response
        .answers
        .iter()
        .map(|record| record.data.to_string())
        .collect();
    data.sort();
    (response, data)
}

/// The scope prefix of the response's EDNS Client Subnet option, if any.
pub fn ecs_scope(response: &Message) -> Option<u8> {
    response.edns.as_ref().and_then(|edns| {
        edns.options()
            .options
            .iter()
            .find_map(|(_, option)| match option {
                hickory_proto::rr::rdata::opt::EdnsOption::Subnet(subnet) => {
                    Some(subnet.scope_prefix())
                }
                _ => None,
            })
    })
}

/// What a steered response said: the addresses answered and the ECS scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SteeredAnswer {
    /// The addresses answered.
    pub addresses: Vec<IpAddr>,
    /// The ECS scope prefix.
    pub scope: u8,
}

pub fn read_steered(response: &[u8]) -> SteeredAnswer {
    let message = Message::from_vec(response).expect("the response parses");
    let addresses = message
        .answers
        .iter()
        .map(|record| match &record.data {
            hickory_proto::rr::RData::A(address) => IpAddr::V4(address.0),
            hickory_proto::rr::RData::AAAA(address) => IpAddr::V6(address.0),
            other => panic!("unexpected answer {other:?}"),
        })
        .collect();
    let scope = ecs_scope(&message).expect("the ECS option is echoed");
    SteeredAnswer { addresses, scope }
}

/// A query for `name` with an ECS option carrying all of `address`.
pub fn ecs_query(name: &str, address: IpAddr, qtype: RecordType) -> Vec<u8> {
    let (family, source, octets): (u16, u8, Vec<u8>) = match address {
        IpAddr::V4(v4) => (1, 32, v4.octets().to_vec()),
        IpAddr::V6(v6) => (2, 128, v6.octets().to_vec()),
    };
    let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&u16::from(qtype).to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    // OPT: root owner, type 41, payload 1232, no extended flags.
    packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    let option_length = 4 + octets.len() as u16;
    packet.extend_from_slice(&(4 + option_length).to_be_bytes());
    packet.extend_from_slice(&8u16.to_be_bytes());
    packet.extend_from_slice(&option_length.to_be_bytes());
    packet.extend_from_slice(&family.to_be_bytes());
    packet.extend_from_slice(&[source, 0]);
    packet.extend_from_slice(&octets);
    packet
}

/// A response from the admin API.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Body, decoded from chunked transfer encoding when needed.
    pub body: String,
}

/// One HTTP/1.1 request to the admin API on a fresh connection, bounded by
/// a timeout. Enough for `GET /status` and `POST /reload`.
pub async fn http_request(address: SocketAddr, method: &str, path: &str) -> HttpResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"))
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: malformed HTTP response {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {head:?}"));
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        decode_chunked(body)
    } else {
        body.to_owned()
    };
    HttpResponse { status, body }
}

fn decode_chunked(mut body: &str) -> String {
    let mut decoded = String::new();
    while let Some((size_line, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        decoded.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    decoded
}

/// The table generation the admin API reports at `GET /status`.
pub async fn status_generation(address: SocketAddr) -> u64 {
    let response = http_request(address, "GET", "/status").await;
    assert_eq!(response.status, 200, "GET /status: {}", response.body);
    let status: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|error| panic!("GET /status is not JSON ({error}): {}", response.body));
    find_generation(&status)
        .unwrap_or_else(|| panic!("GET /status has no \"generation\": {}", response.body))
}

/// Finds a `"generation"` number at the top level or one object down (the
/// status layout may group it, e.g. under `"table"`).
fn find_generation(value: &serde_json::Value) -> Option<u64> {
    let object = value.as_object()?;
    if let Some(generation) = object.get("generation").and_then(serde_json::Value::as_u64) {
        return Some(generation);
    }
    object
        .values()
        .filter_map(serde_json::Value::as_object)
        .find_map(|inner| inner.get("generation").and_then(serde_json::Value::as_u64))
}

/// Copies the files and directories under `from` into `to` (fixture trees
/// into a test's temporary directory).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let entries = std::fs::read_dir(from)
        .unwrap_or_else(|error| panic!("reading {}: {error}", from.display()));
    for entry in entries {
        let entry = entry.expect("fixture directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("creating a directory");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|error| panic!("copying {}: {error}", entry.path().display()));
        }
    }
}

/// Copies the steering fixture `fixture` (a directory relative to the
/// crate root holding a config, zones, maps and `geo.csv`) into
/// `directory`, and builds its `geo.mmdb` there from `geo.csv`.
pub fn copy_steering_fixture(fixture: &str, directory: &std::path::Path) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture);
    copy_tree(&source, directory);
    steer::geo::build::build(
        &source.join("geo.csv"),
        &directory.join("geo.mmdb"),
        "Steer-Test-City",
        0,
    )
    .unwrap_or_else(|errors| panic!("building geo.mmdb: {}", errors.join("\n")));
}

/// web-fra's address in [`WEB_POOLS`].
pub const FRA: &str = "192.0.2.10";
/// web-iad's address in [`WEB_POOLS`].
pub const IAD: &str = "198.51.100.10";

/// Two sites without coordinates and a pool at each: web-fra answers
/// 192.0.2.10, web-iad 198.51.100.10. For configs whose steered names only
/// need two pools to choose between.
pub const WEB_POOLS: &str = r#"
[sites.fra]
[sites.iad]

[pools.web-fra]
site = "fra"
addresses = ["192.0.2.10"]

[pools.web-iad]
site = "iad"
addresses = ["198.51.100.10"]
"#;

/// Both loopback families, [`WEB_POOLS`], and `www.example.test A` steered
/// to web-fra for 81.2.69.0/24 (else web-iad): an answer whose ECS scope
/// is 24. `server_lines` are added to `[server]`.
pub fn cidr_steered_config(server_lines: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0", "[::1]:0"]
zones = "zones"
workers = 1
{server_lines}
[admin]
listen = "127.0.0.1:0"
{WEB_POOLS}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{{ cidr = {{ "81.2.69.0/24" = ["web-fra"] }} }}, "priority"]
"#
    )
}

/// The one A record (and the ECS scope) that a client in `network`/24 is
/// answered for the steered `www.example.test`.
pub async fn steered_answer(server: &TestServer, network: &str) -> (String, u8) {
    let address: std::net::IpAddr = network.parse().expect("client network");
    let options = QueryOptions {
        edns: true,
        client_subnet: Some((address, 24)),
        ..QueryOptions::default()
    };
    let (response, addresses) = ask_a(server, "www.example.test.", &options).await;
    assert_eq!(
        response.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    let scope = ecs_scope(&response).expect("ECS in the answer");
    (addresses[0].clone(), scope)
}

/// Polls until a client in `network` is answered `expected` for the
/// steered `www.example.test`; panics after 10 s.
pub async fn wait_for_steered(server: &TestServer, network: &str, expected: &str) {
    let started = std::time::Instant::now();
    loop {
        let (now, _) = steered_answer(server, network).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{network} still answered {now}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a CA (`PREFIX-ca.pem`) and a certificate it issued for
/// 127.0.0.1 (`PREFIX.pem`, its key `PREFIX.key`) into `directory`: each
/// call makes a CA of its own, so which CA a client must trust tells which
/// certificate a server presents.
pub fn write_certificate(directory: &Path, prefix: &str) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (dig) takes a certificate whose issuer is
    // its own subject for a self-signed one.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("Steer test CA {prefix}"));
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let certificate = params.signed_by(&key, &issuer).expect("certificate");
    std::fs::write(directory.join(format!("{prefix}-ca.pem")), ca.pem()).expect("CA file");
    std::fs::write(directory.join(format!("{prefix}.pem")), certificate.pem()).expect("cert");
    std::fs::write(directory.join(format!("{prefix}.key")), key.serialize_pem()).expect("key");
}

/// Runs `steer check` on `directory/steer.toml`, which must fail (exit 1):
/// what it printed on stderr, the errors.
pub fn check_errors(directory: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(["check", "--config"])
        .arg(directory.join("steer.toml"))
        .output()
        .expect("steer check");
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{errors}");
    errors
}

/// Runs the `steer` binary with `arguments` in `directory`, off the async
/// threads so that an in-process server keeps answering it; at most 60 s.
pub async fn run_steer(arguments: &[&str], directory: &Path) -> std::process::Output {
    let arguments: Vec<String> = arguments.iter().map(ToString::to_string).collect();
    let directory = directory.to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_steer"))
            .args(&arguments)
            .current_dir(directory)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run steer")
    });
    timeout(Duration::from_secs(60), run)
        .await
        .expect("steer finished within 60 s")
        .expect("steer thread")
}

/// A loopback port free for both UDP and TCP, for a peer server under
/// test (dnsdist, NSD), found by binding both. Another test may take it
/// before that server binds it: callers start it again on another.
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("address").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A server process under test (dnsdist, NSD), killed and reaped when
/// dropped, so that a failing test leaves nothing running.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The entry of the endpoint answering `address` in a `/status` body.
pub fn endpoint_in(status: &serde_json::Value, address: &str) -> Option<serde_json::Value> {
    status["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|endpoint| endpoint["address"] == address)
        .cloned()
}
