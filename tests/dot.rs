//! DNS over TLS (RFC 7858; `server.tls_listen`), over real sockets: the
//! server runs in-process on loopback, and is asked by Debian's `dig` and
//! `kdig` and by a Rust client on tokio-rustls, each trusting one CA.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{QueryOptions, TestServer};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(tls_listen: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\nworkers = 1\n\
         tls_listen = [\"{tls_listen}\"]\ntls_certificate = \"dot.pem\"\ntls_key = \"dot.key\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n"
    )
}

/// Starts a server whose DNS over TLS serves the certificate of CA
/// `first`; `second` is ready for a renewal.
async fn start() -> TestServer {
    let directory = common::example_directory(&config("127.0.0.1:0"));
    let path = directory.path();
    common::write_certificate(path, "first");
    common::write_certificate(path, "second");
    install(path, "first");
    TestServer::start_prepared(directory).await
}

/// Makes `PREFIX.pem` and `PREFIX.key` the files the config names.
fn install(directory: &std::path::Path, prefix: &str) {
    for extension in ["pem", "key"] {
        std::fs::copy(
            directory.join(format!("{prefix}.{extension}")),
            directory.join(format!("dot.{extension}")),
        )
        .expect("certificate file");
    }
}

fn dot_address(server: &TestServer) -> SocketAddr {
    server.running().dns_tls[0]
}

/// `dig` (or `kdig` with `+padding`) over TLS from `directory`, to
/// `port`, trusting `ca` (a file there) alone: its output. Blocking.
fn dig(directory: &std::path::Path, port: u16, ca: &str, kdig: bool) -> String {
    let port = port.to_string();
    let tls_ca = format!("+tls-ca={ca}");
    let mut arguments = vec!["@127.0.0.1", "-p", &port, &tls_ca, "+norec"];
    arguments.extend(if kdig {
        ["+padding", "+tls"]
    } else {
        ["+time=3", "+tls"]
    });
    arguments.extend(["ns1.example.test", "A"]);
    let program = if kdig { "kdig" } else { "dig" };
    let output = Command::new(program)
        .current_dir(directory)
        .args(&arguments)
        .output()
        .unwrap_or_else(|error| panic!("{program} (Debian's package) runs: {error}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A TLS connection to the server's DNS over TLS port, trusting `ca` and
/// offering the `dot` ALPN.
async fn connect(
    server: &TestServer,
    ca: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let pem = std::fs::read(server.directory.path().join(ca)).expect("CA file");
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        roots.add(certificate.expect("CA PEM")).expect("CA");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"dot".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(dot_address(server)).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    connector.connect(name, stream).await
}

/// A query for `name` A with EDNS, padded with `padding` bytes (RFC 7830)
/// when `Some`.
fn query(name: &str, padding: Option<usize>) -> Vec<u8> {
    let options = QueryOptions {
        edns: true,
        ..QueryOptions::default()
    };
    let mut packet = common::build_query(name, RecordType::A, &options)
        .to_vec()
        .expect("query");
    if let Some(length) = padding {
        // The OPT record is last and has no options: its RDLENGTH is the
        // last two bytes.
        let rdlength = packet.len() - 2;
        packet[rdlength..]
            .copy_from_slice(&u16::try_from(4 + length).expect("short").to_be_bytes());
        packet.extend_from_slice(&12u16.to_be_bytes());
        packet.extend_from_slice(&u16::try_from(length).expect("short").to_be_bytes());
        packet.resize(packet.len() + length, 0);
    }
    packet
}

async fn exchange<S>(stream: &mut S, packets: &[Vec<u8>]) -> Vec<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut bytes = Vec::new();
    for packet in packets {
        bytes.extend_from_slice(&u16::try_from(packet.len()).expect("short").to_be_bytes());
        bytes.extend_from_slice(packet);
    }
    stream.write_all(&bytes).await.expect("send");
    let mut responses = Vec::new();
    for _ in packets {
        let read = async {
            let mut length = [0; 2];
            stream.read_exact(&mut length).await?;
            let mut response = vec![0; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("an answer within 5 s")
            .expect("an answer");
        responses.push(response);
    }
    responses
}

/// The response's padding option length, if it has one.
fn padding_of(response: &Message) -> Option<usize> {
    let edns = response.edns.as_ref().expect("OPT in the response");
    edns.options().as_ref().iter().find_map(|(code, option)| {
        (u16::from(*code) == 12).then(|| match option {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data) => data.len(),
            other => panic!("padding read as {other:?}"),
        })
    })
}

async fn metrics(server: &TestServer) -> String {
    common::http_request(server.admin_addr(), "GET", "/metrics")
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_and_kdig_are_answered_over_tls() {
    let server = start().await;
    let directory = server.directory.path().to_path_buf();
    let port = dot_address(&server).port();
    let (answer, wrong, padded) = tokio::task::spawn_blocking({
        let directory = directory.clone();
        move || {
            (
                dig(&directory, port, "first-ca.pem", false),
                dig(&directory, port, "second-ca.pem", false),
                dig(&directory, port, "first-ca.pem", true),
            )
        }
    })
    .await
    .expect("clients");
    assert!(answer.contains("status: NOERROR"), "{answer}");
    assert!(answer.contains(" aa"), "authoritative: {answer}");
    assert!(answer.contains("192.0.2.1"), "{answer}");
    assert!(answer.contains("(TLS)"), "dig says it used TLS: {answer}");
    assert!(
        !wrong.contains("192.0.2.1"),
        "a CA that never issued the certificate: {wrong}"
    );
    // kdig pads its query and reports the padded reply's size.
    assert!(padded.contains("192.0.2.1"), "{padded}");
    assert!(padded.contains("PADDING:"), "{padded}");
    assert!(
        padded.contains("Received 468 B"),
        "one padding block: {padded}"
    );

    // A renewed certificate is served from the next reload on.
    install(&directory, "second");
    let response = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let renewed =
        tokio::task::spawn_blocking(move || dig(&directory, port, "second-ca.pem", false))
            .await
            .expect("dig");
    assert!(renewed.contains("192.0.2.1"), "{renewed}");
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_queries_are_answered_and_padded_queries_get_padded_answers() {
    let server = start().await;
    let mut stream = connect(&server, "first-ca.pem")
        .await
        .expect("TLS handshake");
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"dot"[..]),
        "RFC 7858's ALPN"
    );
    let responses = exchange(
        &mut stream,
        &[
            query("ns1.example.test.", None),
            query("ns1.example.test.", Some(17)),
            query("nowhere.example.test.", Some(0)),
        ],
    )
    .await;
    let messages: Vec<Message> = responses
        .iter()
        .map(|response| Message::from_vec(response).expect("the response parses"))
        .collect();
    let addresses: Vec<String> = messages[0]
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(address) => Some(address.0.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(addresses, ["192.0.2.1"]);
    assert!(messages[0].metadata.authoritative);
    // Not padded unless asked; padded to whole blocks when asked, NXDOMAIN
    // included.
    assert_eq!(padding_of(&messages[0]), None);
    assert!(padding_of(&messages[1]).is_some());
    assert_eq!(responses[1].len() % 468, 0, "{} bytes", responses[1].len());
    assert_eq!(
        messages[2].metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
    assert_eq!(responses[2].len() % 468, 0, "{} bytes", responses[2].len());

    // Plain TCP to the TLS port gets no DNS answer and fails a handshake.
    let mut plain = TcpStream::connect(dot_address(&server))
        .await
        .expect("connect");
    let mut framed = vec![0u8, 0];
    let packet = query("ns1.example.test.", None);
    framed[..2].copy_from_slice(&u16::try_from(packet.len()).expect("short").to_be_bytes());
    framed.extend_from_slice(&packet);
    plain.write_all(&framed).await.expect("send");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut raw)).await;
    assert!(
        Message::from_vec(raw.get(2..).unwrap_or_default()).is_err(),
        "{raw:02x?}"
    );
    // A client that does not trust the certificate gets nothing.
    assert!(connect(&server, "second-ca.pem").await.is_err());

    let text = metrics(&server).await;
    for expected in [
        "steer_queries_total{transport=\"tls\",rcode=\"NOERROR\"} 2",
        "steer_queries_total{transport=\"tls\",rcode=\"NXDOMAIN\"} 1",
        "steer_tls_handshakes_total{result=\"completed\"} 1",
        "steer_tls_handshakes_total{result=\"failed\"} 2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let status = common::http_request(server.admin_addr(), "GET", "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("status JSON");
    assert_eq!(
        status["listen"]["tls"][0],
        dot_address(&server).to_string(),
        "{status}"
    );
    server.shutdown().await;
}

#[test]
fn tls_listen_needs_its_certificate_and_its_own_port() {
    let run = |server_lines: &str| {
        let directory = common::example_directory(&format!(
            "[server]\nlisten = [\"127.0.0.1:5399\"]\nzones = \"zones\"\n{server_lines}"
        ));
        common::write_certificate(directory.path(), "first");
        common::check_errors(directory.path())
    };
    let alone = run("tls_listen = [\"127.0.0.1:8853\"]\n");
    assert!(
        alone.contains("server.tls_listen: needs server.tls_certificate and server.tls_key"),
        "{alone}"
    );
    let unused = run("tls_certificate = \"first.pem\"\ntls_key = \"first.key\"\n");
    assert!(
        unused.contains("server.tls_certificate: is for server.tls_listen, which is not set"),
        "{unused}"
    );
    let shared = run(
        "tls_listen = [\"127.0.0.1:5399\"]\ntls_certificate = \"first.pem\"\ntls_key = \"first.key\"\n",
    );
    assert!(
        shared.contains("server.tls_listen[0]: 127.0.0.1:5399 is also in server.listen"),
        "{shared}"
    );
}
