//! PROXY protocol version 2 (`server.proxy_protocol_from`), over real
//! sockets: the server runs in-process on loopback, and queries come from
//! loopback addresses of their own, either with headers built here or
//! through a real dnsdist (Debian's package) configured with
//! `useProxyProtocol`, which must be installed.
//!
//! `www.example.test A` is steered by the client's address alone (no ECS):
//! 127.0.0.2 and 81.2.69.0/24 get web-fra (192.0.2.10), everyone else
//! web-iad (198.51.100.10). The proxies are 127.0.0.0/29, so 127.0.0.2 is
//! both a proxy and, for the proxy's own queries (LOCAL), a client.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Family, QueryOptions, TestServer, Transport};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use common::{FRA, IAD};

fn config(proxies: &str) -> String {
    let pools = common::WEB_POOLS;
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1
{proxies}

[admin]
listen = "127.0.0.1:0"
{pools}
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{{ cidr = {{ "81.2.69.0/24" = ["web-fra"], "127.0.0.2/32" = ["web-fra"] }} }}, "priority"]
"#
    )
}

const PROXIES: &str = r#"proxy_protocol_from = ["127.0.0.0/29", "::1"]"#;

async fn start() -> TestServer {
    TestServer::start_prepared(common::example_directory(&config(PROXIES))).await
}

/// A PROXY v2 header: PROXY for `client` (to 192.0.2.53:53, over
/// `protocol`: 1 stream, 2 datagram), or LOCAL for `None`.
fn header(client: Option<IpAddr>, protocol: u8) -> Vec<u8> {
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let block = match client {
        None => {
            bytes.extend_from_slice(&[0x20, 0x00]);
            Vec::new()
        }
        Some(IpAddr::V4(address)) => {
            bytes.extend_from_slice(&[0x21, 0x10 | protocol]);
            let mut block = address.octets().to_vec();
            block.extend_from_slice(&[192, 0, 2, 53, 0xD4, 0x31, 0, 53]);
            block
        }
        Some(IpAddr::V6(address)) => {
            bytes.extend_from_slice(&[0x21, 0x20 | protocol]);
            let mut block = address.octets().to_vec();
            block.extend_from_slice(&[0; 16]);
            block.extend_from_slice(&[0xD4, 0x31, 0, 53]);
            block
        }
    };
    bytes.extend_from_slice(&u16::try_from(block.len()).expect("short").to_be_bytes());
    bytes.extend_from_slice(&block);
    bytes
}

fn query() -> Vec<u8> {
    common::build_query("www.example.test.", RecordType::A, &QueryOptions::default())
        .to_vec()
        .expect("query")
}

/// The A records of a response.
fn addresses(response: &[u8]) -> Vec<String> {
    let message = Message::from_vec(response).expect("the response parses");
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(address) => Some(address.0.to_string()),
            _ => None,
        })
        .collect()
}

/// Sends `packet` from `from` (a loopback address) and returns the reply,
/// or `None` when nothing came back within the silence timeout.
async fn udp_from(from: &str, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(format!("{from}:0")).await.expect("bind");
    socket.send_to(packet, server).await.expect("send");
    let mut buffer = vec![0; 4096];
    let wait = tokio::time::timeout(common::SILENCE_TIMEOUT * 2, socket.recv(&mut buffer));
    let length = wait.await.ok()?.expect("receive");
    buffer.truncate(length);
    Some(buffer)
}

/// The steered answer to `packet` sent from `from`; panics on silence.
async fn steered_udp(from: &str, server: SocketAddr, packet: &[u8]) -> Vec<String> {
    let reply = udp_from(from, server, packet)
        .await
        .unwrap_or_else(|| panic!("no answer from {from}"));
    addresses(&reply)
}

fn with_header(client: Option<IpAddr>, protocol: u8) -> Vec<u8> {
    let mut packet = header(client, protocol);
    packet.extend_from_slice(&query());
    packet
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect("address"))
}

/// Connects to `server` from `from`.
async fn tcp_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(server).await.expect("connect")
}

fn frame(packet: &[u8]) -> Vec<u8> {
    let mut framed = u16::try_from(packet.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(packet);
    framed
}

/// Reads one framed response, or `None` when the server closed first.
async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(5), common::read_frame(stream))
        .await
        .expect("the server answers or closes within 5 s")
        .ok()
}

async fn metric(server: &TestServer, series: &str) -> u64 {
    let response = common::http_request(server.admin_addr(), "GET", "/metrics").await;
    response
        .body
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics"))
}

#[tokio::test]
async fn udp_queries_from_a_proxy_are_answered_for_the_client_its_header_names() {
    let server = start().await;
    let dns = server.dns_addr(Transport::Udp, Family::V4);

    // The header decides, not the proxy's own address (127.0.0.2 → fra).
    assert_eq!(
        steered_udp("127.0.0.2", dns, &with_header(ip("81.2.69.7"), 2)).await,
        [FRA]
    );
    assert_eq!(
        steered_udp("127.0.0.2", dns, &with_header(ip("203.0.113.9"), 2)).await,
        [IAD]
    );
    assert_eq!(
        steered_udp("127.0.0.2", dns, &with_header(ip("2001:db8::1"), 2)).await,
        [IAD]
    );
    // A header sent for a TCP client, and one with TLVs, are read as well.
    assert_eq!(
        steered_udp("127.0.0.3", dns, &with_header(ip("81.2.69.8"), 1)).await,
        [FRA]
    );
    let mut tlvs = header(ip("81.2.69.9"), 2);
    let length = u16::from_be_bytes([tlvs[14], tlvs[15]]) + 6;
    tlvs[14..16].copy_from_slice(&length.to_be_bytes());
    tlvs.extend_from_slice(&[0x02, 0, 3, b'n', b's', b'1']);
    tlvs.extend_from_slice(&query());
    assert_eq!(steered_udp("127.0.0.3", dns, &tlvs).await, [FRA]);
    // LOCAL: the proxy asks for itself.
    assert_eq!(
        steered_udp("127.0.0.2", dns, &with_header(None, 2)).await,
        [FRA]
    );
    assert_eq!(
        steered_udp("127.0.0.3", dns, &with_header(None, 2)).await,
        [IAD]
    );

    // From a proxy, a bare query and a broken header are dropped, and
    // counted by reason.
    assert_eq!(udp_from("127.0.0.2", dns, &query()).await, None);
    let mut broken = with_header(ip("81.2.69.7"), 2);
    broken[12] = 0x11;
    assert_eq!(udp_from("127.0.0.2", dns, &broken).await, None);
    assert_eq!(
        udp_from("127.0.0.2", dns, &header(ip("81.2.69.7"), 2)[..20]).await,
        None
    );
    let refused = "steer_proxy_refused_total{transport=\"udp\",reason=";
    assert_eq!(metric(&server, &format!("{refused}\"missing\"}}")).await, 1);
    assert_eq!(
        metric(&server, &format!("{refused}\"malformed\"}}")).await,
        2
    );

    // Anyone else is answered for their own address, and cannot claim
    // another: their header is no DNS message.
    assert_eq!(steered_udp("127.0.0.9", dns, &query()).await, [IAD]);
    let forged = udp_from("127.0.0.9", dns, &with_header(ip("81.2.69.7"), 2)).await;
    assert!(
        forged
            .as_deref()
            .is_none_or(|reply| !addresses(reply).contains(&FRA.to_owned())),
        "a header from a source not listed was believed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_connections_from_a_proxy_start_with_the_header() {
    let server = start().await;
    let dns = server.dns_addr(Transport::Tcp, Family::V4);

    // Header and first query in one write, then a pipelined second one.
    let mut stream = tcp_from("127.0.0.2", dns).await;
    let mut bytes = header(ip("81.2.69.7"), 1);
    bytes.extend_from_slice(&frame(&query()));
    bytes.extend_from_slice(&frame(&query()));
    stream.write_all(&bytes).await.expect("send");
    for _ in 0..2 {
        let reply = read_frame(&mut stream).await.expect("an answer");
        assert_eq!(addresses(&reply), [FRA]);
    }

    // The header in pieces, the query after it.
    let mut stream = tcp_from("127.0.0.2", dns).await;
    let bytes = header(ip("203.0.113.9"), 1);
    for piece in bytes.chunks(5) {
        stream.write_all(piece).await.expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream.write_all(&frame(&query())).await.expect("send");
    let reply = read_frame(&mut stream).await.expect("an answer");
    assert_eq!(addresses(&reply), [IAD]);

    // Without a header the proxy's connection is closed unanswered.
    let mut stream = tcp_from("127.0.0.2", dns).await;
    stream.write_all(&frame(&query())).await.expect("send");
    assert_eq!(read_frame(&mut stream).await, None);
    assert_eq!(
        metric(
            &server,
            "steer_proxy_refused_total{transport=\"tcp\",reason=\"missing\"}"
        )
        .await,
        1
    );

    // Another source's connection needs none.
    let mut stream = tcp_from("127.0.0.9", dns).await;
    stream.write_all(&frame(&query())).await.expect("send");
    let reply = read_frame(&mut stream).await.expect("an answer");
    assert_eq!(addresses(&reply), [IAD]);
    server.shutdown().await;
}

#[tokio::test]
async fn the_proxy_list_changes_on_reload() {
    let server = start().await;
    let dns = server.dns_addr(Transport::Udp, Family::V4);
    assert_eq!(udp_from("127.0.0.2", dns, &query()).await, None);
    std::fs::write(server.directory.path().join("steer.toml"), config("")).expect("config");
    let response = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(steered_udp("127.0.0.2", dns, &query()).await, [FRA]);
    server.shutdown().await;
}

#[test]
fn a_bad_proxy_prefix_is_refused_naming_its_key() {
    let directory = common::example_directory(&config(
        r#"proxy_protocol_from = ["10.0.0.0/8", "10.1.2.3/16", "proxy.example"]"#,
    ));
    let errors = common::check_errors(directory.path());
    assert!(
        errors.contains("server.proxy_protocol_from[1]: ") && errors.contains("10.1.0.0/16"),
        "{errors}"
    );
    assert!(
        errors.contains("server.proxy_protocol_from[2]: "),
        "{errors}"
    );
    assert!(!errors.contains("proxy_protocol_from[0]"), "{errors}");
}

/// Starts dnsdist in front of `steer` with `useProxyProtocol` and waits
/// for its first answer to a query from 127.0.0.2: the running dnsdist,
/// its address and that answer. A dnsdist that exits (its port was taken
/// meanwhile) is started again on another.
async fn start_dnsdist(
    directory: &Path,
    steer: SocketAddr,
) -> (common::Process, SocketAddr, Vec<u8>) {
    let config = directory.join("dnsdist.conf");
    let log_path = directory.join("dnsdist.log");
    for _ in 0..5 {
        let port = common::free_port();
        // No security poll: there is no way out of this machine.
        std::fs::write(
            &config,
            format!(
                "setLocal(\"127.0.0.1:{port}\")\n\
                 setACL({{\"127.0.0.0/8\"}})\n\
                 setSecurityPollSuffix(\"\")\n\
                 newServer({{address=\"{steer}\", useProxyProtocol=true, \
                 checkName=\"example.test.\", checkInterval=1}})\n"
            ),
        )
        .expect("dnsdist config");
        let log = std::fs::File::create(&log_path).expect("dnsdist log");
        let mut dnsdist = common::Process(
            Command::new("dnsdist")
                .args(["--supervised", "--disable-syslog", "-C"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("dnsdist (Debian's package) starts"),
        );
        let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Some(reply) = udp_from("127.0.0.2", proxy, &query()).await {
                return (dnsdist, proxy, reply);
            }
            if dnsdist.0.try_wait().expect("dnsdist status").is_some() {
                break;
            }
        }
    }
    panic!(
        "dnsdist did not answer: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// The answer to a query over TCP from `from`, on a fresh connection.
async fn tcp_query_from(from: &str, server: SocketAddr) -> Vec<String> {
    let mut stream = tcp_from(from, server).await;
    stream.write_all(&frame(&query())).await.expect("send");
    let reply = read_frame(&mut stream).await.expect("an answer over TCP");
    addresses(&reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsdist_with_use_proxy_protocol_passes_its_clients_through() {
    let server = start().await;
    let steer = server.dns_addr(Transport::Udp, Family::V4);
    let (_dnsdist, proxy, first) = start_dnsdist(server.directory.path(), steer).await;
    // dnsdist itself queries from 127.0.0.1, which is steered to iad: fra
    // for 127.0.0.2 can only come from the header.
    assert_eq!(addresses(&first), [FRA], "UDP from 127.0.0.2");
    assert_eq!(
        steered_udp("127.0.0.3", proxy, &query()).await,
        [IAD],
        "UDP from 127.0.0.3"
    );
    assert_eq!(
        tcp_query_from("127.0.0.2", proxy).await,
        [FRA],
        "TCP from 127.0.0.2"
    );
    assert_eq!(
        tcp_query_from("127.0.0.3", proxy).await,
        [IAD],
        "TCP from 127.0.0.3"
    );
    server.shutdown().await;
}
