//! dnstap (dnstap.info): the query log as protobuf messages in a Frame
//! Streams file, the format Knot, BIND, NSD, PowerDNS and Unbound write and
//! that collectors and `dnstap-read` read.
//!
//! Each logged query becomes two `Dnstap` messages: `AUTH_QUERY`, with the
//! query's bytes, and `AUTH_RESPONSE`, with the response's (left out when
//! the log kept only part of it, a TCP response over 1232 bytes, or when
//! nothing was sent). A file is one stream: a START control frame naming
//! the content type, the messages as data frames, and a STOP control frame
//! when the file is closed (at a stop, or when it was rotated away). To a
//! collector's socket the stream is bidirectional (fstrm's handshake):
//! READY naming the content type, the collector's ACCEPT naming it too,
//! then START, the messages and STOP, answered by FINISH. The
//! protobuf is written by hand: two flat messages of a few fields, where a
//! code generator would add a build step for nothing.

use std::io::{self, Read, Write};
use std::net::IpAddr;

/// The Frame Streams content type of dnstap.
const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Frame Streams control frame types (fstrm `control.h`).
const CONTROL_ACCEPT: u32 = 1;
const CONTROL_START: u32 = 2;
const CONTROL_STOP: u32 = 3;
const CONTROL_READY: u32 = 4;
const CONTROL_FINISH: u32 = 5;
/// The longest control frame read from a collector (fstrm's own limit is
/// 512 bytes).
const MAX_CONTROL: usize = 512;
/// The control field that carries the content type.
const FIELD_CONTENT_TYPE: u32 = 1;

/// `Message.Type` of dnstap.proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A query an authoritative server received.
    AuthQuery = 1,
    /// The response it sent.
    AuthResponse = 2,
}

/// `SocketProtocol` of dnstap.proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Over UDP.
    Udp = 1,
    /// Over TCP.
    Tcp = 2,
    /// DNS over TLS.
    Dot = 3,
}

/// What one dnstap message says.
pub struct Message<'a> {
    /// Query or response.
    pub kind: Kind,
    /// The transport it came over.
    pub protocol: Protocol,
    /// The client.
    pub client: IpAddr,
    /// When the query came (AUTH_QUERY) or the response went (AUTH_RESPONSE).
    pub unix_micros: u64,
    /// The query or the response, as sent on the wire.
    pub bytes: Option<&'a [u8]>,
}

/// Writes the START control frame that opens a stream.
pub fn start(out: &mut impl Write) -> io::Result<()> {
    typed_control_frame(out, CONTROL_START)
}

/// Writes the READY control frame that opens a collector's handshake.
pub fn ready(out: &mut impl Write) -> io::Result<()> {
    typed_control_frame(out, CONTROL_READY)
}

/// A control frame of `kind` naming dnstap's content type.
fn typed_control_frame(out: &mut impl Write, kind: u32) -> io::Result<()> {
    let mut control = Vec::with_capacity(12 + CONTENT_TYPE.len());
    control.extend_from_slice(&kind.to_be_bytes());
    control.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
    control.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
    control.extend_from_slice(CONTENT_TYPE);
    control_frame(out, &control)
}

/// Reads the collector's answer to READY: an ACCEPT that names dnstap.
///
/// # Errors
///
/// The read fails, or the frame is anything else (the error says what).
pub fn read_accept(input: &mut impl Read) -> io::Result<()> {
    let (kind, content_types) = read_control(input)?;
    if kind != CONTROL_ACCEPT {
        return Err(refused(format!(
            "the collector answered READY with control frame type {kind}, not ACCEPT"
        )));
    }
    if !content_types.iter().any(|offered| offered == CONTENT_TYPE) {
        return Err(refused(
            "the collector does not accept protobuf:dnstap.Dnstap".to_owned(),
        ));
    }
    Ok(())
}

/// Reads the collector's answer to STOP, FINISH.
///
/// # Errors
///
/// The read fails, or the frame is not FINISH.
pub fn read_finish(input: &mut impl Read) -> io::Result<()> {
    match read_control(input)? {
        (CONTROL_FINISH, _) => Ok(()),
        (kind, _) => Err(refused(format!(
            "the collector answered STOP with control frame type {kind}, not FINISH"
        ))),
    }
}

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One control frame: its type and the content types it names.
fn read_control(input: &mut impl Read) -> io::Result<(u32, Vec<Vec<u8>>)> {
    let mut word = [0; 4];
    input.read_exact(&mut word)?;
    if word != [0; 4] {
        return Err(refused(
            "the collector sent a data frame where a control frame belongs".to_owned(),
        ));
    }
    input.read_exact(&mut word)?;
    let length = u32::from_be_bytes(word) as usize;
    if !(4..=MAX_CONTROL).contains(&length) {
        return Err(refused(format!(
            "the collector sent a control frame of {length} bytes"
        )));
    }
    let mut control = vec![0; length];
    input.read_exact(&mut control)?;
    let kind = u32::from_be_bytes([control[0], control[1], control[2], control[3]]);
    let mut content_types = Vec::new();
    let mut rest = &control[4..];
    while let [f0, f1, f2, f3, l0, l1, l2, l3, tail @ ..] = rest {
        let field = u32::from_be_bytes([*f0, *f1, *f2, *f3]);
        let field_length = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
        let Some((value, after)) = tail.split_at_checked(field_length) else {
            return Err(refused(
                "the collector sent a malformed control frame".to_owned(),
            ));
        };
        if field == FIELD_CONTENT_TYPE {
            content_types.push(value.to_vec());
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err(refused(
            "the collector sent a malformed control frame".to_owned(),
        ));
    }
    Ok((kind, content_types))
}

/// Writes the STOP control frame that closes a stream.
pub fn stop(out: &mut impl Write) -> io::Result<()> {
    control_frame(out, &CONTROL_STOP.to_be_bytes())
}

/// A control frame: an escape (a zero length), its length, its bytes.
fn control_frame(out: &mut impl Write, control: &[u8]) -> io::Result<()> {
    out.write_all(&0u32.to_be_bytes())?;
    out.write_all(&(control.len() as u32).to_be_bytes())?;
    out.write_all(control)
}

/// Appends one data frame holding `message` as a `Dnstap` protobuf, built
/// in `buffer` (cleared first, reused from one message to the next).
pub fn write(
    out: &mut impl Write,
    message: &Message<'_>,
    identity: &[u8],
    buffer: &mut Vec<u8>,
) -> io::Result<()> {
    buffer.clear();
    encode(message, identity, buffer);
    out.write_all(&(buffer.len() as u32).to_be_bytes())?;
    out.write_all(buffer)
}

/// `message` as a `Dnstap` protobuf (dnstap.proto): identity (1), version
/// (2), message (14), type MESSAGE (15).
fn encode(message: &Message<'_>, identity: &[u8], out: &mut Vec<u8>) {
    let mut inner = Vec::with_capacity(64 + message.bytes.map_or(0, <[u8]>::len));
    varint_field(&mut inner, 1, message.kind as u64);
    let (family, address): (u64, Vec<u8>) = match message.client {
        IpAddr::V4(address) => (1, address.octets().to_vec()),
        IpAddr::V6(address) => (2, address.octets().to_vec()),
    };
    varint_field(&mut inner, 2, family);
    varint_field(&mut inner, 3, message.protocol as u64);
    bytes_field(&mut inner, 4, &address);
    let seconds = message.unix_micros / 1_000_000;
    let nanoseconds = (message.unix_micros % 1_000_000) as u32 * 1_000;
    let (time_field, nanos_field, bytes_field_number) = match message.kind {
        Kind::AuthQuery => (8, 9, 10),
        Kind::AuthResponse => (12, 13, 14),
    };
    varint_field(&mut inner, time_field, seconds);
    fixed32_field(&mut inner, nanos_field, nanoseconds);
    if let Some(bytes) = message.bytes {
        bytes_field(&mut inner, bytes_field_number, bytes);
    }
    bytes_field(out, 1, identity);
    bytes_field(
        out,
        2,
        concat!("steer ", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    bytes_field(out, 14, &inner);
    varint_field(out, 15, 1);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    varint(out, u64::from(field) << 3);
    varint(out, value);
}

fn fixed32_field(out: &mut Vec<u8>, field: u32, value: u32) {
    varint(out, (u64::from(field) << 3) | 5);
    out.extend_from_slice(&value.to_le_bytes());
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_base_128_little_end_first() {
        let encoded = |value: u64| {
            let mut out = Vec::new();
            varint(&mut out, value);
            out
        };
        assert_eq!(encoded(0), [0]);
        assert_eq!(encoded(127), [127]);
        assert_eq!(encoded(150), [0x96, 0x01]);
        assert_eq!(encoded(300), [0xAC, 0x02]);
        assert_eq!(encoded(u64::MAX).len(), 10);
    }

    /// A control frame of `kind` with these content type fields, as a
    /// collector sends it.
    fn control(kind: u32, content_types: &[&[u8]]) -> Vec<u8> {
        let mut body = kind.to_be_bytes().to_vec();
        for content_type in content_types {
            body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
            body.extend_from_slice(&(content_type.len() as u32).to_be_bytes());
            body.extend_from_slice(content_type);
        }
        let mut frame = vec![0; 4];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn the_handshake_takes_an_accept_naming_dnstap_and_nothing_else() {
        let accept = |frame: Vec<u8>| read_accept(&mut frame.as_slice());
        assert!(accept(control(CONTROL_ACCEPT, &[CONTENT_TYPE])).is_ok());
        // Among others, or alone: a collector may offer several.
        assert!(accept(control(CONTROL_ACCEPT, &[b"protobuf:other", CONTENT_TYPE])).is_ok());
        let error = |frame: Vec<u8>| accept(frame).expect_err("refused").to_string();
        assert_eq!(
            error(control(CONTROL_ACCEPT, &[b"protobuf:other"])),
            "the collector does not accept protobuf:dnstap.Dnstap"
        );
        assert_eq!(
            error(control(CONTROL_FINISH, &[])),
            "the collector answered READY with control frame type 5, not ACCEPT"
        );
        let mut data = control(CONTROL_ACCEPT, &[CONTENT_TYPE]);
        data[3] = 1;
        assert_eq!(
            error(data),
            "the collector sent a data frame where a control frame belongs"
        );
        let mut cut = control(CONTROL_ACCEPT, &[CONTENT_TYPE]);
        // The field says one byte more than the frame holds.
        cut[19] += 1;
        assert_eq!(error(cut), "the collector sent a malformed control frame");
        let mut huge = control(CONTROL_ACCEPT, &[]);
        huge[4..8].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(
            error(huge),
            "the collector sent a control frame of 100000 bytes"
        );
        // A collector that hangs up mid-frame.
        let whole = control(CONTROL_ACCEPT, &[CONTENT_TYPE]);
        assert!(accept(whole[..10].to_vec()).is_err());
        assert!(read_finish(&mut control(CONTROL_FINISH, &[]).as_slice()).is_ok());
        assert!(read_finish(&mut control(CONTROL_ACCEPT, &[]).as_slice()).is_err());
    }

    #[test]
    fn ready_names_the_content_type() {
        let mut out = Vec::new();
        ready(&mut out).expect("ready");
        assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 34]);
        assert_eq!(&out[8..12], &CONTROL_READY.to_be_bytes());
        assert_eq!(&out[20..], CONTENT_TYPE);
    }

    #[test]
    fn a_stream_is_framed_as_fstrm_writes_it() {
        let mut out = Vec::new();
        start(&mut out).expect("start");
        let query = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        let message = Message {
            kind: Kind::AuthQuery,
            protocol: Protocol::Udp,
            client: "192.0.2.1".parse().expect("address"),
            unix_micros: 1_700_000_000_123_456,
            bytes: Some(&query),
        };
        let mut buffer = Vec::new();
        write(&mut out, &message, b"node-1", &mut buffer).expect("write");
        stop(&mut out).expect("stop");
        // START: escape, length 34, type 2, content type field.
        assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 34]);
        assert_eq!(&out[8..12], &CONTROL_START.to_be_bytes());
        assert_eq!(&out[20..42], CONTENT_TYPE);
        // The data frame: its length, then identity (field 1) first.
        let length = u32::from_be_bytes([out[42], out[43], out[44], out[45]]) as usize;
        let frame = &out[46..46 + length];
        assert_eq!(&frame[..8], &[0x0A, 6, b'n', b'o', b'd', b'e', b'-', b'1']);
        // The query bytes are in it, and it ends with type MESSAGE.
        assert!(frame.windows(query.len()).any(|window| window == query));
        assert_eq!(&frame[frame.len() - 2..], &[15 << 3, 1]);
        // STOP.
        assert_eq!(&out[46 + length..], &[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]);
    }
}
