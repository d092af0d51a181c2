//! The client side of a zone transfer: ask a primary for its SOA serial,
//! and when it is newer, the changes since ours with IXFR (RFC 1995) or
//! the whole zone with AXFR (RFC 5936).
//!
//! Requests are written as bytes and responses read with hickory-proto's
//! message parser (control plane only). With a TSIG key every request is
//! signed and every response must verify: the first and last message of a
//! transfer signed, at most 99 unsigned ones between (RFC 8945 §5.3.1).
//! Everything a primary sends is checked before it is believed: the
//! message id, the question, the response code, that the transfer starts
//! and ends with the zone's SOA, and limits on time and size, so a broken
//! or hostile primary costs a failed transfer, never a broken zone.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::net::TcpStream;

use super::tsig::{self, ResponseVerifier, TsigKey};
use crate::exchange;

/// A transfer larger than this is abandoned: it is four times a zone of
/// a million records, and it bounds what a hostile primary can make a
/// node hold in memory.
pub const MAX_TRANSFER_BYTES: usize = 1 << 30;

/// Most records in one transfer, for the same reason.
pub const MAX_TRANSFER_RECORDS: usize = 20_000_000;

/// The DNS class IN.
const CLASS_IN: u16 = 1;

/// A zone as a primary sent it.
#[derive(Debug)]
pub struct Transferred {
    /// Every record, the SOA first; the closing copy of the SOA is dropped.
    pub records: Vec<Record>,
    /// The SOA serial.
    pub serial: u32,
    /// How many messages the transfer took.
    pub messages: usize,
    /// Bytes received.
    pub bytes: usize,
}

/// Why a primary could not be asked or its answer was not believed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The primary did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The primary answered with an error code.
    #[error("the primary answered {0}")]
    Rcode(String),
    /// The answer was not a well-formed answer to our question.
    #[error("{0}")]
    Malformed(String),
    /// A signature did not verify, or was missing.
    #[error("TSIG: {0}")]
    Tsig(#[from] tsig::TsigError),
    /// Past [`MAX_TRANSFER_BYTES`] or [`MAX_TRANSFER_RECORDS`].
    #[error("the transfer is larger than {0}; abandoned")]
    TooLarge(&'static str),
}

/// The primary's SOA serial for `zone`, asked over UDP (and over TCP when
/// the answer is truncated), each attempt within `timeout`.
pub async fn query_serial(
    primary: SocketAddr,
    zone: &Name,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<u32, TransferError> {
    let id = crate::random_query_id();
    let (request, request_mac) = request(id, zone, RecordType::SOA, key);
    // Stray datagrams (late answers to an earlier query) are skipped.
    let is_answer = |response: &[u8]| response.get(..2) == Some(&id.to_be_bytes()[..]);
    let response = within(timeout, exchange::udp(primary, &request, 65_535, is_answer)).await??;
    let truncated = response.len() > 2 && response[2] & 0x02 != 0;
    if truncated {
        return query_serial_tcp(primary, zone, key, timeout).await;
    }
    serial_of(&response, (id, &request_mac), zone, key)
}

/// [`query_serial`] over TCP.
async fn query_serial_tcp(
    primary: SocketAddr,
    zone: &Name,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<u32, TransferError> {
    let id = crate::random_query_id();
    let (request, request_mac) = request(id, zone, RecordType::SOA, key);
    let mut stream = send_over_tcp(primary, &request, timeout).await?;
    let response = receive_framed(&mut stream, timeout).await?;
    serial_of(&response, (id, &request_mac), zone, key)
}

/// The serial in the answer to the SOA query `id` (signed with `key`,
/// MAC `request_mac`), once its signature and question are checked.
fn serial_of(
    response: &[u8],
    (id, request_mac): (u16, &[u8]),
    zone: &Name,
    key: Option<&TsigKey>,
) -> Result<u32, TransferError> {
    let mut verifier = key.map(|key| ResponseVerifier::new(key, request_mac));
    let message = checked(response, id, zone, RecordType::SOA, verifier.as_mut())?;
    if let Some(verifier) = &verifier {
        verifier.finish()?;
    }
    soa_serial(&message, zone)
}

/// Transfers `zone` from `primary` with AXFR over TCP; `timeout` bounds
/// connecting and every read.
pub async fn axfr(
    primary: SocketAddr,
    zone: &Name,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<Transferred, TransferError> {
    let id = crate::random_query_id();
    let request = request(id, zone, RecordType::AXFR, key);
    let mut first: Option<Record> = None;
    let (mut records, messages, bytes) = receive_transfer(
        primary,
        request,
        (id, zone, RecordType::AXFR),
        (key, timeout),
        |record, _, _| {
            let is_soa = record.record_type() == RecordType::SOA && record.name == *zone;
            let Some(first) = &first else {
                if !is_soa {
                    return Err(TransferError::Malformed(format!(
                        "the transfer starts with {} {}, not the zone's SOA",
                        record.name,
                        record.record_type()
                    )));
                }
                first = Some(record.clone());
                return Ok(false);
            };
            if !is_soa {
                return Ok(false);
            }
            // The closing SOA (RFC 5936 §2.2); a primary whose zone
            // changed mid-transfer sends a different one.
            if record.data != first.data {
                return Err(TransferError::Malformed(
                    "the closing SOA differs from the first: the zone changed during the \
                     transfer"
                        .to_owned(),
                ));
            }
            Ok(true)
        },
    )
    .await?;
    records.pop();
    let serial = match first.map(|first| first.data) {
        Some(RData::SOA(soa)) => soa.serial,
        _ => 0,
    };
    Ok(Transferred {
        records,
        serial,
        messages,
        bytes,
    })
}

/// Sends `request` (and its MAC) to `primary` over TCP and reads the
/// transfer that answers it: every message checked (id, question,
/// response code, signature with a key) within `timeout` a read, every
/// record of class IN, within [`MAX_TRANSFER_BYTES`] and
/// [`MAX_TRANSFER_RECORDS`]. `follow` sees each record with the number of
/// its message (1 for the first) and how many records that message
/// holds, and says when the transfer is complete. The records (the last
/// one's included), messages and bytes.
async fn receive_transfer(
    primary: SocketAddr,
    (request, request_mac): (Vec<u8>, Vec<u8>),
    (id, zone, qtype): (u16, &Name, RecordType),
    (key, timeout): (Option<&TsigKey>, Duration),
    mut follow: impl FnMut(&Record, usize, usize) -> Result<bool, TransferError>,
) -> Result<(Vec<Record>, usize, usize), TransferError> {
    let mut stream = send_over_tcp(primary, &request, timeout).await?;
    let mut verifier = key.map(|key| ResponseVerifier::new(key, &request_mac));
    let mut records: Vec<Record> = Vec::new();
    let (mut messages, mut bytes, mut done) = (0, 0, false);
    while !done {
        let response = receive_framed(&mut stream, timeout).await?;
        messages += 1;
        bytes += response.len() + 2;
        if bytes > MAX_TRANSFER_BYTES {
            return Err(TransferError::TooLarge("1 GiB"));
        }
        // Only the first message must repeat the question (RFC 5936 §2.2).
        let message = checked(&response, id, zone, qtype, verifier.as_mut())?;
        let count = message.answers.len();
        if messages == 1 && count == 0 {
            return Err(TransferError::Malformed(
                "the first message of the transfer has no records".to_owned(),
            ));
        }
        for record in message.answers {
            if done {
                return Err(TransferError::Malformed(
                    "records follow the closing SOA".to_owned(),
                ));
            }
            if record.dns_class != DNSClass::IN {
                return Err(TransferError::Malformed(format!(
                    "{} {} is of class {}, not IN",
                    record.name,
                    record.record_type(),
                    record.dns_class
                )));
            }
            done = follow(&record, messages, count)?;
            records.push(record);
            if records.len() > MAX_TRANSFER_RECORDS {
                return Err(TransferError::TooLarge("20,000,000 records"));
            }
        }
    }
    if let Some(verifier) = &verifier {
        verifier.finish()?;
    }
    Ok((records, messages, bytes))
}

/// What a primary answered to an IXFR (RFC 1995).
#[derive(Debug)]
pub enum Incremental {
    /// The copy at the serial asked from is current: the SOA alone.
    Current,
    /// The whole zone, as for AXFR (a primary without the changes).
    Whole(Transferred),
    /// The changes since the serial asked from, oldest first.
    Changes {
        /// The changes, each from the version the last one made.
        changes: Vec<Change>,
        /// How many messages the answer took.
        messages: usize,
        /// Bytes received.
        bytes: usize,
    },
}

/// One step of an incremental transfer: from the SOA `from` to `to`.
#[derive(Debug)]
pub struct Change {
    /// The SOA of the version it starts from.
    pub from: Record,
    /// Records the version loses.
    pub removed: Vec<Record>,
    /// The SOA of the version it makes.
    pub to: Record,
    /// Records it gains.
    pub added: Vec<Record>,
}

/// Asks `primary` for the changes to `zone` since `serial` with IXFR over
/// TCP (RFC 1995); `timeout` bounds connecting and every read. The
/// primary may answer with the changes, with the whole zone, or with its
/// SOA alone when the copy is current.
pub async fn ixfr(
    primary: SocketAddr,
    zone: &Name,
    serial: u32,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<Incremental, TransferError> {
    let id = crate::random_query_id();
    let request = ixfr_request(id, zone, serial, key);
    let mut reader = IxfrReader::default();
    let (mut records, messages, bytes) = receive_transfer(
        primary,
        request,
        (id, zone, RecordType::IXFR),
        (key, timeout),
        |record, message, count| {
            reader.take(record, zone, serial)?;
            // RFC 1995 §4: the SOA alone, in one message, says "current".
            Ok(reader.done || (message == 1 && count == 1 && !reader.newer))
        },
    )
    .await?;
    if records.len() == 1 {
        return Ok(Incremental::Current);
    }
    if !reader.incremental {
        records.pop();
        let serial = reader.serial;
        return Ok(Incremental::Whole(Transferred {
            records,
            serial,
            messages,
            bytes,
        }));
    }
    Ok(Incremental::Changes {
        changes: split_changes(records, zone)?,
        messages,
        bytes,
    })
}

/// Follows an IXFR answer record by record, to know when it ends and
/// which form it has.
#[derive(Default)]
struct IxfrReader {
    /// Records seen.
    seen: usize,
    /// The primary's serial (the first SOA's).
    serial: u32,
    /// Whether it is newer than the one asked from.
    newer: bool,
    /// Whether the answer lists changes (its second record is an SOA).
    incremental: bool,
    /// In an incremental answer: SOAs of the zone seen after the first.
    soas: usize,
    done: bool,
}

impl IxfrReader {
    fn take(&mut self, record: &Record, zone: &Name, asked: u32) -> Result<(), TransferError> {
        self.seen += 1;
        let soa_serial = match &record.data {
            RData::SOA(soa) if record.name == *zone => Some(soa.serial),
            _ => None,
        };
        if self.seen == 1 {
            let Some(serial) = soa_serial else {
                return Err(TransferError::Malformed(format!(
                    "the transfer starts with {} {}, not the zone's SOA",
                    record.name,
                    record.record_type()
                )));
            };
            self.serial = serial;
            self.newer = newer(serial, asked);
            return Ok(());
        }
        if self.seen == 2 {
            self.incremental = soa_serial.is_some();
            if self.incremental && soa_serial != Some(asked) {
                return Err(TransferError::Malformed(format!(
                    "the changes start from serial {}, not {asked}",
                    soa_serial.unwrap_or_default()
                )));
            }
        }
        match soa_serial {
            // AXFR form: the closing SOA.
            Some(serial) if !self.incremental => self.done = serial == self.serial,
            Some(serial) => {
                self.soas += 1;
                // SOAs alternate: from (odd), to (even). The answer ends
                // with the primary's SOA where a change's `from` would be.
                self.done = self.soas % 2 == 1 && self.soas > 1 && serial == self.serial;
            }
            None => {}
        }
        Ok(())
    }
}

/// An incremental answer's records (the first SOA, then from-SOA,
/// removals, to-SOA, additions, ..., the closing SOA) as its changes, each
/// checked to start where the last ended.
fn split_changes(records: Vec<Record>, zone: &Name) -> Result<Vec<Change>, TransferError> {
    let is_soa = |record: &Record| record.record_type() == RecordType::SOA && record.name == *zone;
    let serial_of = |record: &Record| match &record.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    };
    let mut changes: Vec<Change> = Vec::new();
    // The first record is the primary's SOA, the last its closing copy.
    let last = records.len() - 1;
    let mut records = records.into_iter().take(last).skip(1).peekable();
    while let Some(from) = records.next() {
        let mut removed = Vec::new();
        while let Some(record) = records.next_if(|record| !is_soa(record)) {
            removed.push(record);
        }
        let Some(to) = records.next() else {
            return Err(TransferError::Malformed(
                "a change has no SOA for the version it makes".to_owned(),
            ));
        };
        let mut added = Vec::new();
        while let Some(record) = records.next_if(|record| !is_soa(record)) {
            added.push(record);
        }
        if let Some(previous) = changes.last()
            && serial_of(&previous.to) != serial_of(&from)
        {
            return Err(TransferError::Malformed(format!(
                "a change starts from serial {} after one that made {}",
                serial_of(&from),
                serial_of(&previous.to)
            )));
        }
        changes.push(Change {
            from,
            removed,
            to,
            added,
        });
    }
    Ok(changes)
}

/// An IXFR request for `zone` from `serial`: the question, and our SOA
/// in the authority section (only its serial matters to a primary),
/// signed when there is a key; and its MAC.
fn ixfr_request(id: u16, zone: &Name, serial: u32, key: Option<&TsigKey>) -> (Vec<u8>, Vec<u8>) {
    let mut message = question(id, 0, zone, RecordType::IXFR);
    // NSCOUNT: one record.
    message[9] = 1;
    // Owner: a pointer to the question's name; type SOA, class IN, TTL 0.
    message.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0]);
    // MNAME and RNAME the root, the serial, four zero timers.
    message.extend_from_slice(&22u16.to_be_bytes());
    message.extend_from_slice(&[0, 0]);
    message.extend_from_slice(&serial.to_be_bytes());
    message.extend_from_slice(&[0; 16]);
    signed(message, key)
}

/// Whether serial `a` is newer than `b` in RFC 1982 arithmetic: serials
/// wrap around, and a primary that counts past 2³² is still ahead.
pub fn newer(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

/// A query for `zone`/`qtype`, signed when there is a key; the request
/// MAC comes back for verifying the response.
fn request(id: u16, zone: &Name, qtype: RecordType, key: Option<&TsigKey>) -> (Vec<u8>, Vec<u8>) {
    // Flags: a standard query, no recursion wanted.
    request_with_flags(id, 0, zone, qtype, key)
}

/// A request with header `flags` (a NOTIFY's opcode, say) for
/// `zone`/`qtype`, signed when there is a key; and its MAC.
pub(super) fn request_with_flags(
    id: u16,
    flags: u16,
    zone: &Name,
    qtype: RecordType,
    key: Option<&TsigKey>,
) -> (Vec<u8>, Vec<u8>) {
    signed(question(id, flags, zone, qtype), key)
}

/// A message with header `flags` and one question, `zone`/`qtype`.
fn question(id: u16, flags: u16, zone: &Name, qtype: RecordType) -> Vec<u8> {
    let mut message = Vec::with_capacity(512);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&flags.to_be_bytes());
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    message.extend_from_slice(&super::outbound::wire_name(zone));
    message.extend_from_slice(&u16::from(qtype).to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    message
}

/// `message`, signed when there is a key; and its MAC (empty without).
fn signed(mut message: Vec<u8>, key: Option<&TsigKey>) -> (Vec<u8>, Vec<u8>) {
    let mac = match key {
        // A request of one name and one SOA is far from every limit
        // signing checks.
        Some(key) => tsig::sign_request(key, &mut message, crate::unix_now())
            .map(|mac| mac.as_bytes().to_vec())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    (message, mac)
}

/// Parses one response, after checking its signature, and that it answers
/// our question without an error.
fn checked(
    response: &[u8],
    id: u16,
    zone: &Name,
    qtype: RecordType,
    verifier: Option<&mut ResponseVerifier>,
) -> Result<Message, TransferError> {
    let unsigned = match verifier {
        Some(verifier) => {
            verifier.verify(response, crate::unix_now())?;
            tsig::without_tsig(response)
        }
        None => std::borrow::Cow::Borrowed(response),
    };
    let message = Message::from_vec(&unsigned)
        .map_err(|error| TransferError::Malformed(format!("unreadable answer: {error}")))?;
    if message.metadata.id != id || message.metadata.message_type != MessageType::Response {
        return Err(TransferError::Malformed(
            "the answer's id does not match the query".to_owned(),
        ));
    }
    if message.metadata.op_code != OpCode::Query {
        return Err(TransferError::Malformed(
            "the answer is not to a standard query".to_owned(),
        ));
    }
    if let Some(query) = message.queries.first()
        && (query.name != *zone || query.query_type != qtype)
    {
        return Err(TransferError::Malformed(format!(
            "the answer is for {} {}, not {zone} {qtype}",
            query.name, query.query_type
        )));
    }
    let code = message.metadata.response_code;
    if code != ResponseCode::NoError {
        return Err(TransferError::Rcode(crate::dns::rcode_text(u16::from(
            code,
        ))));
    }
    Ok(message)
}

/// The serial of the SOA answer for `zone`.
fn soa_serial(message: &Message, zone: &Name) -> Result<u32, TransferError> {
    if !message.metadata.authoritative {
        return Err(TransferError::Malformed(format!(
            "the primary is not authoritative for {zone}"
        )));
    }
    message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) if record.name == *zone => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| TransferError::Malformed(format!("no SOA of {zone} in the answer")))
}

/// `future`, or [`TransferError::Timeout`] after `timeout`.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T, TransferError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| TransferError::Timeout(timeout))
}

/// Connects to `primary` and sends `request` (length-prefixed); the
/// stream, for the answers.
async fn send_over_tcp(
    primary: SocketAddr,
    message: &[u8],
    timeout: Duration,
) -> Result<TcpStream, TransferError> {
    Ok(within(timeout, exchange::tcp_send(primary, message)).await??)
}

/// Receives one length-prefixed message.
async fn receive_framed(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Vec<u8>, TransferError> {
    Ok(within(timeout, exchange::tcp_receive(stream)).await??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(newer(2, 1));
        assert!(!newer(1, 2));
        assert!(!newer(7, 7));
        assert!(newer(0, u32::MAX));
        assert!(newer(5, u32::MAX - 5));
        assert!(!newer(u32::MAX, 0));
    }

    #[test]
    fn requests_are_plain_queries() {
        let zone = Name::from_ascii("example.org.").expect("name");
        let (request, mac) = request(0x1234, &zone, RecordType::AXFR, None);
        assert!(mac.is_empty());
        let message = Message::from_vec(&request).expect("parses");
        assert_eq!(message.metadata.id, 0x1234);
        assert_eq!(message.queries.len(), 1);
        assert_eq!(message.queries[0].name(), &zone);
        assert_eq!(message.queries[0].query_type(), RecordType::AXFR);
        assert!(!message.metadata.recursion_desired);
    }
}
