//! The client side of a zone transfer: ask a primary for its SOA serial,
//! and transfer the whole zone with AXFR (RFC 5936) when it is newer.
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
    let (request, request_mac) = request(id, zone, RecordType::AXFR, key);
    let mut stream = send_over_tcp(primary, &request, timeout).await?;
    let mut verifier = key.map(|key| ResponseVerifier::new(key, &request_mac));
    let mut records: Vec<Record> = Vec::new();
    let mut serial = None;
    let (mut messages, mut bytes) = (0, 0);
    loop {
        let response = receive_framed(&mut stream, timeout).await?;
        messages += 1;
        bytes += response.len() + 2;
        if bytes > MAX_TRANSFER_BYTES {
            return Err(TransferError::TooLarge("1 GiB"));
        }
        // Only the first message must repeat the question (RFC 5936 §2.2).
        let message = checked(&response, id, zone, RecordType::AXFR, verifier.as_mut())?;
        let mut answers = message.answers.into_iter();
        if serial.is_none() {
            let Some(first) = answers.next() else {
                return Err(TransferError::Malformed(
                    "the first message of the transfer has no records".to_owned(),
                ));
            };
            let RData::SOA(soa) = &first.data else {
                return Err(TransferError::Malformed(format!(
                    "the transfer starts with {} {}, not the zone's SOA",
                    first.name,
                    first.record_type()
                )));
            };
            if first.name != *zone {
                return Err(TransferError::Malformed(format!(
                    "the transfer starts with the SOA of {}, not {zone}",
                    first.name
                )));
            }
            serial = Some(soa.serial);
            records.push(first);
        }
        let mut done = false;
        for record in answers {
            if done {
                return Err(TransferError::Malformed(
                    "records follow the closing SOA".to_owned(),
                ));
            }
            if record.record_type() == RecordType::SOA && record.name == *zone {
                // The closing SOA (RFC 5936 §2.2); a primary whose zone
                // changed mid-transfer sends a different one.
                if record.data != records[0].data {
                    return Err(TransferError::Malformed(
                        "the closing SOA differs from the first: the zone changed during the transfer".to_owned(),
                    ));
                }
                done = true;
                continue;
            }
            if record.dns_class != DNSClass::IN {
                return Err(TransferError::Malformed(format!(
                    "{} {} is of class {}, not IN",
                    record.name,
                    record.record_type(),
                    record.dns_class
                )));
            }
            records.push(record);
            if records.len() > MAX_TRANSFER_RECORDS {
                return Err(TransferError::TooLarge("20,000,000 records"));
            }
        }
        if done {
            break;
        }
    }
    if let Some(verifier) = &verifier {
        verifier.finish()?;
    }
    Ok(Transferred {
        records,
        serial: serial.unwrap_or_default(),
        messages,
        bytes,
    })
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
    let mut message = Vec::with_capacity(512);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&flags.to_be_bytes());
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    message.extend_from_slice(&super::outbound::wire_name(zone));
    message.extend_from_slice(&u16::from(qtype).to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    let mac = match key {
        // A query of one name is far from every limit signing checks.
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
