//! Wire-format query parsing on the hot path.
//!
//! [`parse_query`] reads a query packet without allocating: the header, the
//! single question (name lower-cased into a stack buffer for lookups, the raw
//! bytes kept so the response echoes the client's letter case), and the
//! additional section's OPT record with its options. Answer and authority
//! records, which a query should not carry, are skipped but must be
//! well-formed. Every bound is checked; the parser never panics and never
//! follows a compression pointer (a question name cannot legitimately use one).

/// Size of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// Largest name in wire format (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;

/// Record type of the EDNS OPT pseudo-record.
pub const TYPE_OPT: u16 = 41;
/// Incremental zone transfer (not offered).
pub const TYPE_IXFR: u16 = 251;
/// Full zone transfer (not offered).
pub const TYPE_AXFR: u16 = 252;
/// Obsolete mailbox query types (RFC 1035 §3.2.3): not implemented.
pub const TYPE_MAILB: u16 = 253;
/// See [`TYPE_MAILB`].
pub const TYPE_MAILA: u16 = 254;
/// ANY (RFC 8482).
pub const TYPE_ANY: u16 = 255;
/// EDNS option code of Client Subnet (RFC 7871).
pub const OPTION_CLIENT_SUBNET: u16 = 8;
/// EDNS option code of the name server identifier (RFC 5001).
pub const OPTION_NSID: u16 = 3;
/// EDNS option code of edns-tcp-keepalive (RFC 7828).
pub const OPTION_TCP_KEEPALIVE: u16 = 11;
/// EDNS option code of Padding (RFC 7830).
pub const OPTION_PADDING: u16 = 12;

/// Header flag bits (second 16-bit word of the header).
pub mod flags {
    /// This is a response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired (copied from the query).
    pub const RD: u16 = 0x0100;
    /// Recursion available (never set by Steer).
    pub const RA: u16 = 0x0080;
    /// Checking disabled (copied from the query).
    pub const CD: u16 = 0x0010;
    /// Opcode mask (bits 11..14).
    pub const OPCODE_MASK: u16 = 0x7800;
}

/// The EDNS(0) information of a query (RFC 6891).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requester's UDP payload size, as sent (callers clamp it to at least 512).
    pub payload_size: u16,
    /// EDNS version; Steer speaks version 0 only.
    pub version: u8,
    /// The DNSSEC OK bit, echoed in the response (RFC 3225).
    pub dnssec_ok: bool,
    /// Byte range of the Client Subnet option's data within the packet, if sent.
    pub client_subnet: Option<(usize, usize)>,
    /// Whether the query asked for the name server identifier (an NSID
    /// option, whose data a query leaves empty: RFC 5001 §2.1).
    pub nsid: bool,
    /// Byte range of the COOKIE option's data within the packet, if sent.
    pub cookie: Option<(usize, usize)>,
    /// Whether the query carried an edns-tcp-keepalive option (RFC 7828):
    /// over TCP, the answer then says how long an idle connection is kept.
    pub tcp_keepalive: bool,
    /// Whether the query was padded (RFC 7830): over an encrypted
    /// transport the answer is then padded too.
    pub padding: bool,
}

/// A parsed query. Borrowed data point into the packet.
#[derive(Clone, Debug)]
pub struct Query {
    /// Message id.
    pub id: u16,
    /// The raw flags word.
    pub flags: u16,
    /// End of the question section (offset of the first byte after QCLASS).
    pub question_end: usize,
    /// Question name in wire format, lower-cased, including the root label.
    pub name: NameBuf,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// EDNS, when the query had an OPT record.
    pub edns: Option<Edns>,
}

/// A lower-cased wire-format name held on the stack.
#[derive(Clone)]
pub struct NameBuf {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
}

impl NameBuf {
    /// The empty buffer (not a valid name until filled).
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_NAME_LEN],
            len: 0,
        }
    }

    /// The name's wire bytes, root label included.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}",
            crate::table::display_wire_name(self.as_bytes())
        )
    }
}

/// Why a packet could not be answered normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No header could be read, or the packet is a response: send nothing.
    Drop,
    /// The header is readable but the opcode is not QUERY: answer NOTIMP.
    /// `question_end` is set when the question could be parsed too.
    NotImplemented {
        /// Message id.
        id: u16,
        /// Raw flags word.
        flags: u16,
        /// End of a well-formed single question, if there was one.
        question_end: Option<usize>,
        /// The query's EDNS, when the rest of the packet was well-formed,
        /// so the response can carry OPT (RFC 6891 §6.1.1).
        edns: Option<Edns>,
    },
    /// The header is readable but the rest is malformed: answer FORMERR.
    /// `question_end` is set when the question itself was well-formed.
    Malformed {
        /// Message id.
        id: u16,
        /// Raw flags word.
        flags: u16,
        /// End of a well-formed single question, if there was one.
        question_end: Option<usize>,
    },
}

#[inline]
fn read_u16(packet: &[u8], at: usize) -> Option<u16> {
    let bytes = packet.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Reads a question name (no compression allowed) starting at `at`,
/// lower-casing it into `name`. Returns the offset after the name.
fn read_question_name(packet: &[u8], mut at: usize, name: &mut NameBuf) -> Option<usize> {
    let mut written = 0usize;
    loop {
        let length = usize::from(*packet.get(at)?);
        if length & 0xC0 != 0 {
            // A pointer (or an obsolete extended label type) in the question.
            return None;
        }
        if written + 1 + length > MAX_NAME_LEN {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + length)?;
        name.bytes[written] = length as u8;
        for (slot, byte) in name.bytes[written + 1..written + 1 + length]
            .iter_mut()
            .zip(label)
        {
            *slot = byte.to_ascii_lowercase();
        }
        written += 1 + length;
        at += 1 + length;
        if length == 0 {
            name.len = written as u8;
            return Some(at);
        }
    }
}

/// Skips a possibly compressed name. Pointers are not followed: skipping
/// needs only their two bytes, which also rules out pointer loops.
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let length = usize::from(*packet.get(at)?);
        match length & 0xC0 {
            0x00 => {
                total += 1 + length;
                if total > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + length;
                if length == 0 {
                    return Some(at);
                }
                if at > packet.len() {
                    return None;
                }
            }
            0xC0 => {
                let pointer = read_u16(packet, at)? & 0x3FFF;
                // A pointer must point backwards (RFC 1035 §4.1.4 "prior occurrence").
                if usize::from(pointer) >= at {
                    return None;
                }
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}

/// Parses the OPT record's fixed part and options. `at` is after the owner.
fn read_opt(packet: &[u8], at: usize) -> Option<(Edns, usize)> {
    let payload_size = read_u16(packet, at + 2)?;
    let ttl_high = read_u16(packet, at + 4)?;
    let ttl_low = read_u16(packet, at + 6)?;
    let rdata_len = usize::from(read_u16(packet, at + 8)?);
    let rdata_start = at + 10;
    let rdata_end = rdata_start + rdata_len;
    if rdata_end > packet.len() {
        return None;
    }
    let mut client_subnet = None;
    let mut nsid = false;
    let mut cookie = None;
    let mut tcp_keepalive = false;
    let mut padding = false;
    let mut option_at = rdata_start;
    while option_at < rdata_end {
        let code = read_u16(packet, option_at)?;
        let length = usize::from(read_u16(packet, option_at + 2)?);
        let data_start = option_at + 4;
        let data_end = data_start + length;
        if data_end > rdata_end {
            return None;
        }
        if code == OPTION_CLIENT_SUBNET {
            if client_subnet.is_some() {
                // RFC 7871 §7.1.2 allows one ECS option per query.
                return None;
            }
            client_subnet = Some((data_start, data_end));
        } else if code == OPTION_NSID {
            nsid = true;
        } else if code == super::cookie::OPTION_COOKIE {
            if cookie.is_some() {
                // RFC 7873 §5.2.2: more than one COOKIE option is FORMERR.
                return None;
            }
            cookie = Some((data_start, data_end));
        } else if code == OPTION_TCP_KEEPALIVE {
            tcp_keepalive = true;
        } else if code == OPTION_PADDING {
            padding = true;
        }
        option_at = data_end;
    }
    let edns = Edns {
        payload_size,
        version: (ttl_high & 0xFF) as u8,
        dnssec_ok: ttl_low & 0x8000 != 0,
        client_subnet,
        nsid,
        cookie,
        tcp_keepalive,
        padding,
    };
    Some((edns, rdata_end))
}

/// Parses a query packet. See the module docs for what is checked.
pub fn parse_query(packet: &[u8]) -> Result<Query, ParseError> {
    let (Some(id), Some(flags)) = (read_u16(packet, 0), read_u16(packet, 2)) else {
        return Err(ParseError::Drop);
    };
    if packet.len() < HEADER_LEN || flags & flags::QR != 0 {
        return Err(ParseError::Drop);
    }
    let count = |index: usize| read_u16(packet, 4 + 2 * index).unwrap_or(0);
    let (question_count, answer_count, authority_count, additional_count) =
        (count(0), count(1), count(2), count(3));

    let mut name = NameBuf::new();
    let question = if question_count == 1 {
        read_question_name(packet, HEADER_LEN, &mut name).and_then(|after_name| {
            let qtype = read_u16(packet, after_name)?;
            let qclass = read_u16(packet, after_name + 2)?;
            Some((qtype, qclass, after_name + 4))
        })
    } else {
        None
    };
    let not_implemented = flags & flags::OPCODE_MASK != 0;
    let Some((qtype, qclass, question_end)) = question else {
        return Err(if not_implemented {
            ParseError::NotImplemented {
                id,
                flags,
                question_end: None,
                edns: None,
            }
        } else {
            ParseError::Malformed {
                id,
                flags,
                question_end: None,
            }
        });
    };
    let sections = read_sections(
        packet,
        question_end,
        u32::from(answer_count) + u32::from(authority_count),
        additional_count,
    );
    if not_implemented {
        // The opcode decides first: an unknown opcode's sections may mean
        // something else, so their shape does not make the query FORMERR.
        let edns = sections.ok().flatten();
        let question_end = Some(question_end);
        return Err(ParseError::NotImplemented {
            id,
            flags,
            question_end,
            edns,
        });
    }
    let Ok(edns) = sections else {
        let question_end = Some(question_end);
        return Err(ParseError::Malformed {
            id,
            flags,
            question_end,
        });
    };
    Ok(Query {
        id,
        flags,
        question_end,
        name,
        qtype,
        qclass,
        edns,
    })
}

/// Marks a malformed section; the caller knows the header it belongs to.
#[derive(Clone, Copy, Debug)]
struct MalformedSection;

/// Skips the answer and authority records (`skipped_count` of them) and
/// reads the additional section, returning the OPT record's content.
fn read_sections(
    packet: &[u8],
    question_end: usize,
    skipped_count: u32,
    additional_count: u16,
) -> Result<Option<Edns>, MalformedSection> {
    let malformed = MalformedSection;
    let mut at = question_end;
    for _ in 0..skipped_count {
        at = skip_name(packet, at).ok_or(malformed)?;
        let rdata_len = usize::from(read_u16(packet, at + 8).ok_or(malformed)?);
        at += 10 + rdata_len;
        if at > packet.len() {
            return Err(malformed);
        }
    }
    let mut edns = None;
    for _ in 0..additional_count {
        let owner_at = at;
        at = skip_name(packet, at).ok_or(malformed)?;
        let record_type = read_u16(packet, at).ok_or(malformed)?;
        if record_type == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root.
            if edns.is_some() || at != owner_at + 1 || packet[owner_at] != 0 {
                return Err(malformed);
            }
            let (parsed, end) = read_opt(packet, at).ok_or(malformed)?;
            edns = Some(parsed);
            at = end;
        } else {
            let rdata_len = usize::from(read_u16(packet, at + 8).ok_or(malformed)?);
            at += 10 + rdata_len;
            if at > packet.len() {
                return Err(malformed);
            }
        }
    }
    Ok(edns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(name);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        packet
    }

    fn with_opt(mut packet: Vec<u8>, version: u8, options: &[u8]) -> Vec<u8> {
        packet[11] += 1;
        packet.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, version, 0x80, 0]);
        packet.extend_from_slice(&(options.len() as u16).to_be_bytes());
        packet.extend_from_slice(options);
        packet
    }

    #[test]
    fn parses_question_and_lowercases_name() {
        let packet = query(b"\x03WwW\x07Example\x04test\x00", 1);
        let parsed = parse_query(&packet).expect("valid query");
        assert_eq!(parsed.id, 0x1234);
        assert_eq!(parsed.qtype, 1);
        assert_eq!(parsed.qclass, 1);
        assert_eq!(parsed.name.as_bytes(), b"\x03www\x07example\x04test\x00");
        assert_eq!(parsed.question_end, packet.len());
        assert!(parsed.edns.is_none());
    }

    #[test]
    fn parses_opt_with_client_subnet() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69];
        let packet = with_opt(query(b"\x01a\x00", 1), 0, &ecs);
        let parsed = parse_query(&packet).expect("valid query");
        let edns = parsed.edns.expect("edns");
        assert_eq!(edns.payload_size, 1232);
        assert_eq!(edns.version, 0);
        assert!(edns.dnssec_ok);
        let (start, end) = edns.client_subnet.expect("ecs");
        assert_eq!(&packet[start..end], &[0, 1, 24, 0, 81, 2, 69]);
    }

    #[test]
    fn drops_short_packets_and_responses() {
        assert_eq!(
            parse_query(&[0; 11]).expect_err("too short"),
            ParseError::Drop
        );
        let mut packet = query(b"\x00", 1);
        packet[2] |= 0x80;
        assert_eq!(
            parse_query(&packet).expect_err("a response"),
            ParseError::Drop
        );
    }

    #[test]
    fn rejects_malformed_questions() {
        // Pointer in the question.
        let packet = query(b"\xC0\x0C", 1);
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::Malformed {
                question_end: None,
                ..
            })
        ));
        // Label too long.
        let mut name = vec![64u8];
        name.extend_from_slice(&[b'a'; 64]);
        name.push(0);
        assert!(matches!(
            parse_query(&query(&name, 1)),
            Err(ParseError::Malformed { .. })
        ));
        // Name over 255 bytes.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(60);
            long.extend_from_slice(&[b'a'; 60]);
        }
        long.push(0);
        assert!(matches!(
            parse_query(&query(&long, 1)),
            Err(ParseError::Malformed { .. })
        ));
        // Truncated before QCLASS.
        let mut packet = query(b"\x01a\x00", 1);
        packet.truncate(packet.len() - 1);
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::Malformed { .. })
        ));
        // Two questions.
        let mut packet = query(b"\x01a\x00", 1);
        packet[5] = 2;
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::Malformed { .. })
        ));
    }

    #[test]
    fn rejects_counts_that_lie_and_bad_opt() {
        let mut packet = query(b"\x01a\x00", 1);
        packet[11] = 3;
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::Malformed {
                question_end: Some(_),
                ..
            })
        ));
        let packet = with_opt(with_opt(query(b"\x01a\x00", 1), 0, &[]), 0, &[]);
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::Malformed { .. })
        ));
        // Option longer than the OPT rdata.
        let packet = with_opt(query(b"\x01a\x00", 1), 0, &[0, 10, 0, 8, 1, 2]);
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::Malformed { .. })
        ));
    }

    #[test]
    fn other_opcodes_are_not_implemented() {
        let mut packet = query(b"\x01a\x00", 6);
        packet[2] = 0x28; // opcode 5 (UPDATE)
        assert!(matches!(
            parse_query(&packet),
            Err(ParseError::NotImplemented {
                question_end: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn skip_name_refuses_forward_pointers() {
        assert_eq!(skip_name(&[0xC0, 0x05, 0, 0, 0, 0], 0), None);
        assert_eq!(skip_name(&[0, 0xC0, 0x00], 1), Some(3));
    }
}
