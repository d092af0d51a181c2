//! NOTIFY (RFC 1996): a primary telling Steer that a secondary zone changed.
//!
//! A NOTIFY is accepted only for a configured secondary zone, only from one
//! of that zone's primaries, and, when the zone has a TSIG key, only signed
//! with it (RFC 8945); anything else is REFUSED (NOTAUTH for a bad
//! signature), so a stranger cannot make Steer poll a primary. An accepted
//! NOTIFY fires the zone's [`crate::transfer::Trigger`] and is acknowledged
//! at once; the serial check and the transfer happen on the control plane.
//!
//! A server with no secondary zone answers NOTIFY with NOTIMP, as any
//! opcode it does not serve.
//!
//! On the query path, but rare: the address check and the zone lookup
//! neither lock nor allocate, so a flood of NOTIFY from strangers costs no
//! more than other refused queries; only a primary's signed NOTIFY is
//! verified, which allocates a little.

use std::net::IpAddr;

use super::Outcome;
use super::wire::{HEADER_LEN, flags};
use crate::table::RoutingTable;
use crate::transfer::{NotifyTarget, tsig};

/// The NOTIFY opcode (RFC 1996 §3.1), in the header's flags word.
pub const OPCODE_NOTIFY: u16 = 4 << 11;

/// Response codes a NOTIFY is answered with.
const NOERROR: u16 = 0;
const FORMERR: u16 = 1;
const REFUSED: u16 = 5;

/// SOA, the type a NOTIFY's question names (RFC 1996 §3.7).
const TYPE_SOA: u16 = 6;

/// Answers the NOTIFY in `packet` (opcode already checked) from `source`;
/// `question_end` is where its one question ends.
pub fn answer(
    table: &RoutingTable,
    packet: &[u8],
    (id, query_flags): (u16, u16),
    question_end: usize,
    source: IpAddr,
    out: &mut Vec<u8>,
) -> Outcome {
    let question = &packet[HEADER_LEN..question_end];
    let qtype = u16::from_be_bytes([packet[question_end - 4], packet[question_end - 3]]);
    let rcode = if qtype != TYPE_SOA {
        FORMERR
    } else {
        match target_of(table, question, source) {
            None => REFUSED,
            Some(target) => match &target.key {
                None => {
                    target.trigger.fire();
                    NOERROR
                }
                Some(key) => {
                    return signed(target, key, packet, (id, query_flags), question, out);
                }
            },
        }
    };
    write(out, id, query_flags, question, rcode);
    Outcome::Reply {
        rcode,
        decision: None,
        zone: None,
    }
}

/// A NOTIFY for a zone with a key: accepted only with a valid signature,
/// and acknowledged signed (RFC 8945 §5.3).
fn signed(
    target: &NotifyTarget,
    key: &tsig::TsigKey,
    packet: &[u8],
    (id, query_flags): (u16, u16),
    question: &[u8],
    out: &mut Vec<u8>,
) -> Outcome {
    let now = crate::unix_now();
    let rcode = match tsig::verify_request(std::slice::from_ref(key), packet, now) {
        Ok(tsig::RequestCheck::Verified { request_mac, .. }) => {
            target.trigger.fire();
            write(out, id, query_flags, question, NOERROR);
            // Signing fails only past 65,535 bytes or ARCOUNT's limit,
            // which an acknowledgement of one question never reaches.
            let _ = tsig::sign_response(key, request_mac.as_bytes(), out, now);
            NOERROR
        }
        Ok(tsig::RequestCheck::NotSigned) => {
            write(out, id, query_flags, question, REFUSED);
            REFUSED
        }
        Err(rejection) => {
            let rcode = u16::from(rejection.rcode());
            write(out, id, query_flags, question, rcode);
            let _ = rejection.append_tsig(out, now);
            rcode
        }
    };
    Outcome::Reply {
        rcode,
        decision: None,
        zone: None,
    }
}

/// The secondary zone the question names, when `source` is one of its
/// primaries.
fn target_of<'t>(
    table: &'t RoutingTable,
    question: &[u8],
    source: IpAddr,
) -> Option<&'t NotifyTarget> {
    let targets = table.notify_targets();
    if targets.is_empty() {
        return None;
    }
    let name = &question[..question.len() - 4];
    let source = source.to_canonical();
    targets
        .iter()
        .find(|target| target.zone_wire.eq_ignore_ascii_case(name))
        .filter(|target| {
            target
                .primaries
                .iter()
                .any(|primary| primary.to_canonical() == source)
        })
}

/// The response: the query's header and question, QR set, and AA on an
/// acknowledgement (RFC 1996 §4.7), never on a refusal.
fn write(out: &mut Vec<u8>, id: u16, query_flags: u16, question: &[u8], rcode: u16) {
    out.clear();
    let authoritative = if rcode == NOERROR { flags::AA } else { 0 };
    let response_flags = flags::QR | authoritative | (query_flags & flags::OPCODE_MASK) | rcode;
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&response_flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(question);
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::dns::Transport;
    use crate::transfer::Secondaries;

    const PRIMARY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53));

    /// A table whose secondary zones are `open.test` (no key) and
    /// `keyed.test` (a key), both from [`PRIMARY`]; and the secondaries.
    fn table() -> (RoutingTable, Arc<Secondaries>) {
        let config = crate::config::parse(
            Path::new("steer.toml"),
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\
             [tsig.k]\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0\"\n\
             [secondary]\n\
             [[secondary.zone]]\nname = \"open.test\"\nprimaries = [\"192.0.2.53\"]\n\
             [[secondary.zone]]\nname = \"keyed.test\"\nprimaries = [\"192.0.2.53\"]\ntsig_key = \"k\"\n",
        )
        .expect("config");
        let secondaries = Arc::new(Secondaries::default());
        let mut table = RoutingTable::empty();
        table.set_notify_targets(secondaries.targets(config.secondary.as_ref()));
        (table, secondaries)
    }

    fn notify(zone: &[u8], qtype: u16) -> Vec<u8> {
        let mut packet = vec![0x12, 0x34, 0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(zone);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        packet
    }

    fn rcode(out: &[u8]) -> u8 {
        out[3] & 0x0f
    }

    #[test]
    fn a_primary_notify_is_acknowledged_and_fires_the_trigger() {
        let (table, secondaries) = table();
        let mut out = Vec::new();
        let packet = notify(b"\x04OPEN\x04test\x00", 6);
        crate::dns::respond(&table, &packet, Transport::Udp, PRIMARY, &mut out);
        assert_eq!(rcode(&out), 0);
        assert_eq!(out[2], 0x80 | 0x20 | 0x04, "QR, opcode NOTIFY, AA");
        assert_eq!(&out[12..], &packet[12..], "the question, as asked");
        let status = secondaries.status();
        let open = status.iter().find(|zone| zone.zone == "open.test.");
        assert_eq!(open.map(|zone| zone.notifies), Some(1));

        let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 54));
        crate::dns::respond(&table, &packet, Transport::Udp, stranger, &mut out);
        assert_eq!(rcode(&out), REFUSED as u8);
        assert_eq!(out[2] & 0x04, 0, "no AA on a refusal");
        // A keyed zone wants a signature.
        let keyed = notify(b"\x05keyed\x04test\x00", 6);
        crate::dns::respond(&table, &keyed, Transport::Udp, PRIMARY, &mut out);
        assert_eq!(rcode(&out), REFUSED as u8);
        let status = secondaries.status();
        let keyed = status.iter().find(|zone| zone.zone == "keyed.test.");
        assert_eq!(keyed.map(|zone| zone.notifies), Some(0));
    }

    proptest! {
        /// Whatever follows a NOTIFY header, from a primary or not, the
        /// answer is written without a panic, and only for a well-formed
        /// question.
        #[test]
        fn any_notify_is_answered_without_panic(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            counts in any::<[u8; 8]>(),
            from_primary in any::<bool>(),
        ) {
            let (table, _) = table();
            let mut packet = vec![0x12, 0x34, 0x20, 0];
            packet.extend_from_slice(&counts);
            packet.extend_from_slice(&body);
            let source = if from_primary { PRIMARY } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
            let mut out = Vec::new();
            crate::dns::respond(&table, &packet, Transport::Udp, source, &mut out);
            crate::dns::respond(&table, &packet, Transport::Tcp, source, &mut out);
        }
    }
}
