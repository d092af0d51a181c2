//! PROXY protocol version 2 (HAProxy's "PROXY protocol", §2.2): the
//! header a load balancer or DNS proxy (dnsdist, HAProxy, an NLB) puts in
//! front of each UDP query and at the start of each TCP connection to say
//! which client it forwards.
//!
//! Behind a proxy every query comes from the proxy's address, so steering
//! by resolver address, rate limits, cookies and the query log would all
//! see one client. For the sources in `server.proxy_protocol_from` the
//! header's source address is the client instead. The header is required
//! from those sources and never accepted from others: a listed proxy that
//! sent a bare query is misconfigured, and anyone else could name any
//! client they like.
//!
//! Only the binary version 2 is read (version 1 is text, meant for HTTP).
//! A `LOCAL` command (the proxy's own health checks) and the `UNSPEC` and
//! `UNIX` families keep the real source, as §2.2 says a receiver may;
//! TLVs are skipped. Parsing is on bytes, with no allocation: it runs on
//! the query path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Transport;
use crate::metrics::ProxyCounters;
use crate::table::RoutingTable;

/// The 12 bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part: signature, version and command, family and protocol,
/// and the length of the rest.
pub const FIXED_LENGTH: usize = 16;

/// What a well-formed header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The client it forwards, or `None` to keep the real source (a
    /// `LOCAL` command, or a family without IP addresses).
    pub client: Option<IpAddr>,
    /// Bytes of header before the DNS message (or TCP stream) starts.
    pub length: usize,
}

/// Why a packet or connection from a listed proxy was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It does not start with a version 2 signature.
    Missing,
    /// It does, but the rest is not a header this reads.
    Malformed,
}

impl Refusal {
    /// Every reason, in the order metrics count them.
    pub const ALL: [Refusal; 2] = [Refusal::Missing, Refusal::Malformed];

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
        }
    }
}

/// The whole header's length, once its fixed part is in `bytes`; a TCP
/// reader uses it to know how much more to wait for.
pub fn total_length(bytes: &[u8]) -> Result<Option<usize>, Refusal> {
    // A prefix that differs from the signature is refused at once, so that
    // a client without a header does not wait out the idle timeout.
    let compared = bytes.len().min(SIGNATURE.len());
    if bytes[..compared] != SIGNATURE[..compared] {
        return Err(Refusal::Missing);
    }
    let Some(fixed) = bytes.get(..FIXED_LENGTH) else {
        return Ok(None);
    };
    Ok(Some(
        FIXED_LENGTH + usize::from(u16::from_be_bytes([fixed[14], fixed[15]])),
    ))
}

/// Reads the header at the start of `bytes`, which must hold all of it.
pub fn parse(bytes: &[u8]) -> Result<Header, Refusal> {
    let length = total_length(bytes)?.ok_or(if bytes.len() < SIGNATURE.len() {
        Refusal::Missing
    } else {
        Refusal::Malformed
    })?;
    let block = bytes.get(FIXED_LENGTH..length).ok_or(Refusal::Malformed)?;
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0F);
    let (family, protocol) = (bytes[13] >> 4, bytes[13] & 0x0F);
    if version != 2 || command > 1 || family > 3 || protocol > 2 {
        return Err(Refusal::Malformed);
    }
    // LOCAL: the proxy speaks for itself; the block is skipped unread.
    if command == 0 {
        return Ok(Header {
            client: None,
            length,
        });
    }
    let client = match family {
        1 => {
            // Source, destination and the two ports must all be there.
            if block.len() < 12 {
                return Err(Refusal::Malformed);
            }
            Some(IpAddr::V4(Ipv4Addr::new(
                block[0], block[1], block[2], block[3],
            )))
        }
        2 => {
            if block.len() < 36 {
                return Err(Refusal::Malformed);
            }
            let mut octets = [0; 16];
            octets.copy_from_slice(&block[..16]);
            Some(IpAddr::V6(Ipv6Addr::from(octets)).to_canonical())
        }
        // UNSPEC and UNIX carry no client address to steer by.
        _ => None,
    };
    Ok(Header { client, length })
}

/// The DNS message of a UDP datagram from `source`, and the client it is
/// for: past its PROXY header, naming the client, when `source` is one of
/// the table's proxies. `None` (counted in `refused`) when a proxy's
/// datagram has no header it can read: it is dropped.
#[inline]
pub fn unwrap_datagram<'packet>(
    table: &RoutingTable,
    packet: &'packet [u8],
    source: IpAddr,
    refused: &ProxyCounters,
) -> Option<(&'packet [u8], IpAddr)> {
    if !table.is_proxy(source) {
        return Some((packet, source));
    }
    match parse(packet) {
        Ok(header) => Some((&packet[header.length..], header.client.unwrap_or(source))),
        Err(refusal) => {
            refused.refuse(Transport::Udp, refusal);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 header: `command` (0 LOCAL, 1 PROXY), `family_protocol`,
    /// then `block` (addresses, ports, TLVs).
    fn header(command: u8, family_protocol: u8, block: &[u8]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family_protocol);
        bytes.extend_from_slice(&u16::try_from(block.len()).expect("short").to_be_bytes());
        bytes.extend_from_slice(block);
        bytes
    }

    fn inet(source: [u8; 4]) -> Vec<u8> {
        let mut block = source.to_vec();
        block.extend_from_slice(&[192, 0, 2, 53, 0xC3, 0x50, 0, 53]);
        block
    }

    #[test]
    fn an_ipv4_header_names_the_client_and_its_length() {
        let mut bytes = header(1, 0x12, &inet([203, 0, 113, 7]));
        bytes.extend_from_slice(b"query");
        assert_eq!(
            parse(&bytes),
            Ok(Header {
                client: Some("203.0.113.7".parse().expect("address")),
                length: 28,
            })
        );
        assert_eq!(&bytes[28..], b"query");
    }

    #[test]
    fn an_ipv6_header_names_the_client_and_mapped_addresses_are_ipv4() {
        let mut block = "2001:db8::7"
            .parse::<Ipv6Addr>()
            .expect("address")
            .octets()
            .to_vec();
        block.extend_from_slice(&[0; 20]);
        let parsed = parse(&header(1, 0x21, &block)).expect("header");
        assert_eq!(parsed.client, Some("2001:db8::7".parse().expect("address")));
        assert_eq!(parsed.length, 52);
        let mut mapped = "::ffff:198.51.100.1"
            .parse::<Ipv6Addr>()
            .expect("address")
            .octets()
            .to_vec();
        mapped.extend_from_slice(&[0; 20]);
        let parsed = parse(&header(1, 0x22, &mapped)).expect("header");
        assert_eq!(
            parsed.client,
            Some("198.51.100.1".parse().expect("address"))
        );
    }

    #[test]
    fn tlvs_are_skipped() {
        let mut block = inet([198, 51, 100, 9]);
        // PP2_TYPE_AUTHORITY "ns1", then a NOOP.
        block.extend_from_slice(&[0x02, 0, 3, b'n', b's', b'1', 0x04, 0, 0]);
        let parsed = parse(&header(1, 0x12, &block)).expect("header");
        assert_eq!(
            parsed.client,
            Some("198.51.100.9".parse().expect("address"))
        );
        assert_eq!(parsed.length, FIXED_LENGTH + block.len());
    }

    #[test]
    fn local_and_unspec_keep_the_real_source() {
        assert_eq!(
            parse(&header(0, 0x00, &[])),
            Ok(Header {
                client: None,
                length: 16
            })
        );
        // LOCAL ignores whatever block it has.
        assert_eq!(
            parse(&header(0, 0x12, &inet([1, 2, 3, 4]))).map(|header| header.client),
            Ok(None)
        );
        assert_eq!(
            parse(&header(1, 0x00, &[])).map(|header| header.client),
            Ok(None)
        );
        assert_eq!(
            parse(&header(1, 0x31, &[0; 216])).map(|header| header.client),
            Ok(None)
        );
    }

    #[test]
    fn a_bare_query_or_version_one_is_missing_the_header() {
        assert_eq!(parse(b"\x12\x34\x01\x00\x00\x01"), Err(Refusal::Missing));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(Refusal::Missing)
        );
        assert_eq!(parse(&[]), Err(Refusal::Missing));
        assert_eq!(total_length(b"\x12\x34"), Err(Refusal::Missing));
        // A true prefix of the signature waits for more.
        assert_eq!(total_length(&SIGNATURE[..5]), Ok(None));
        assert_eq!(
            total_length(&header(1, 0x12, &inet([1, 2, 3, 4]))),
            Ok(Some(28))
        );
    }

    #[test]
    fn broken_headers_are_malformed() {
        let good = header(1, 0x12, &inet([203, 0, 113, 7]));
        // Cut short: the length says more than there is.
        assert_eq!(parse(&good[..20]), Err(Refusal::Malformed));
        // The signature and nothing after it.
        assert_eq!(parse(&good[..12]), Err(Refusal::Malformed));
        // An address block too short for its family.
        assert_eq!(
            parse(&header(1, 0x11, &[203, 0, 113, 7])),
            Err(Refusal::Malformed)
        );
        assert_eq!(parse(&header(1, 0x21, &[0; 20])), Err(Refusal::Malformed));
        // Version 1 in binary, an unknown command, family or protocol.
        let mut version = good.clone();
        version[12] = 0x11;
        assert_eq!(parse(&version), Err(Refusal::Malformed));
        let mut command = good.clone();
        command[12] = 0x22;
        assert_eq!(parse(&command), Err(Refusal::Malformed));
        let mut family = good.clone();
        family[13] = 0x41;
        assert_eq!(parse(&family), Err(Refusal::Malformed));
        let mut protocol = good;
        protocol[13] = 0x13;
        assert_eq!(parse(&protocol), Err(Refusal::Malformed));
    }
}
