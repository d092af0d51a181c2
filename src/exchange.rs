//! DNS as a client: one query over UDP, or framed messages over TCP.
//!
//! Control plane only (health probes of DNS servers, SOA queries and zone
//! transfers from primaries, NOTIFY is sent on its own socket). Nothing
//! here bounds time: every caller wraps the exchange in its own timeout,
//! since a probe bounds a whole check and a transfer each read.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Sends `query` to `server` over UDP and returns the first datagram that
/// `is_answer` accepts; others (late answers to earlier queries, forgeries
/// with the wrong id) are skipped. A datagram longer than `max_bytes` is
/// cut there by the kernel.
pub async fn udp(
    server: SocketAddr,
    query: &[u8],
    max_bytes: usize,
    is_answer: impl Fn(&[u8]) -> bool,
) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buffer = vec![0; max_bytes];
    loop {
        let length = socket.recv(&mut buffer).await?;
        if is_answer(&buffer[..length]) {
            buffer.truncate(length);
            return Ok(buffer);
        }
    }
}

/// Connects to `server` and sends `query` length-prefixed (RFC 1035
/// §4.2.2); the stream, for the answers.
pub async fn tcp_send(server: SocketAddr, query: &[u8]) -> io::Result<TcpStream> {
    let length = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    Ok(stream)
}

/// Receives one length-prefixed message from `stream`.
pub async fn tcp_receive(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut length = [0; 2];
    stream.read_exact(&mut length).await?;
    let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

/// Asks `server` the question in `query` as a resolver does: over UDP,
/// and again over TCP when the answer is truncated (over TCP alone when
/// `tcp_only`). Only a message `is_answer` accepts is the answer: over UDP
/// others are skipped (the caller's timeout ends the wait), over TCP one
/// fails. Errors are a few words for a log or a status page.
pub async fn ask(
    server: SocketAddr,
    query: &[u8],
    tcp_only: bool,
    is_answer: impl Fn(&hickory_proto::op::Message) -> bool,
) -> Result<hickory_proto::op::Message, String> {
    use hickory_proto::op::Message;
    /// The largest UDP answer read; more is cut by the kernel and fails
    /// to parse.
    const UDP_BUFFER: usize = 4096;
    if !tcp_only {
        let accepts =
            |bytes: &[u8]| Message::from_vec(bytes).is_ok_and(|answer| is_answer(&answer));
        let bytes = udp(server, query, UDP_BUFFER, accepts)
            .await
            .map_err(io_text)?;
        let answer = Message::from_vec(&bytes)
            .map_err(|error| format!("the answer does not parse: {error}"))?;
        if !answer.metadata.truncation {
            return Ok(answer);
        }
    }
    let mut stream = tcp_send(server, query).await.map_err(io_text)?;
    let bytes = tcp_receive(&mut stream).await.map_err(io_text)?;
    let answer =
        Message::from_vec(&bytes).map_err(|error| format!("the answer does not parse: {error}"))?;
    if !is_answer(&answer) {
        return Err("the answer is for another question".to_owned());
    }
    Ok(answer)
}

/// An I/O error in a few words.
fn io_text(error: io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_owned(),
        _ => error.to_string(),
    }
}
