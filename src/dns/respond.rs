//! Query → response, on bytes.
//!
//! The response is the header, the client's question bytes as sent (letter
//! case preserved), a pre-encoded section from the table and, when the
//! query had EDNS, an OPT record. The only checks made here are the ones a
//! table cannot answer: opcode, class, EDNS version, transfer types, and
//! whether the answer fits the transport's size limit (RFC 1035 §4.2.1,
//! RFC 6891 §7); when it does not, the response is truncated to the
//! question (TC set) so the client retries over TCP.

use std::net::IpAddr;

use super::cookie::{self, MalformedCookie, RESPONSE_COOKIE_LEN};
use super::ecs::{ClientSubnet, MalformedSubnet};
use super::notify;
use super::rate_limit::{self, Buckets, Class, Kind, Verdict};
use super::wire::{
    self, Edns, HEADER_LEN, ParseError, Query, TYPE_AXFR, TYPE_IXFR, TYPE_MAILA, TYPE_MAILB,
    TYPE_OPT, flags,
};
use super::{Outcome, OverLimit, Transport};
use crate::table::{DnameLookup, Lookup, RoutingTable, Selected, SteeredLookup};

/// Response codes written by the data plane.
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error.
    pub const FORMERR: u16 = 1;
    /// Server failure (a steered name whose policy says so when all is down).
    pub const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub const NOTIMP: u16 = 4;
    /// Refused.
    pub const REFUSED: u16 = 5;
    /// A name that should not exist does: a DNAME substitution would
    /// make a name longer than 255 bytes (RFC 6672 §2.2).
    pub const YXDOMAIN: u16 = 6;
    /// Bad EDNS version (extended: needs OPT).
    pub const BADVERS: u16 = 16;
}

/// UDP payload size Steer advertises and uses as its own ceiling: large
/// enough for ordinary answers, small enough to avoid IP fragmentation
/// (the DNS Flag Day 2020 value).
pub const UDP_PAYLOAD_SIZE: u16 = 1232;
/// Size of an OPT record without options.
const OPT_LEN: usize = 11;
/// EDNS option code of Extended DNS Errors (RFC 8914).
const OPTION_EXTENDED_ERROR: u16 = 15;
/// Bytes of an edns-tcp-keepalive option with its timeout.
const KEEPALIVE_OPTION_LEN: usize = 6;
/// Padded responses are a multiple of this many bytes: RFC 8467 §4.1's
/// recommended block length for responses.
pub const PADDING_BLOCK: usize = 468;

const CLASS_IN: u16 = 1;
/// The CHAOS class, where servers answer questions about themselves.
const CLASS_CH: u16 = 3;
const TYPE_TXT: u16 = 16;
/// Rate-limit identity of CHAOS answers: one bucket for all of them.
const CHAOS_IDENTITY: u32 = u32::MAX;
const TYPE_CNAME: u16 = 5;
const TYPE_DNAME: u16 = 39;
/// Rate-limit identities of DNAME substitutions, above every section
/// offset: all the names below one DNAME share its bucket.
const DNAME_IDENTITY: u32 = 0x8000_0000;

/// Marks a steered name's rate-limit identity (its policy's number).
const STEERED_IDENTITY: u32 = 1 << 31;

/// Answers one query packet into `out` (cleared first). `source` is the
/// packet's source address (the client location when no ECS is present).
/// Nothing is rate limited here: TCP needs no limit, and UDP goes through
/// [`respond_udp`].
pub fn respond(
    table: &RoutingTable,
    packet: &[u8],
    transport: Transport,
    source: IpAddr,
    out: &mut Vec<u8>,
) -> Outcome {
    answer(
        table,
        packet,
        transport,
        source,
        out,
        &mut Charge::default(),
    )
}

/// Answers one query that came over TCP on a connection the server keeps
/// open for `idle_timeout` without a query: a query with the
/// edns-tcp-keepalive option is told so (RFC 7828).
pub fn respond_tcp(
    table: &RoutingTable,
    packet: &[u8],
    source: IpAddr,
    idle_timeout: std::time::Duration,
    out: &mut Vec<u8>,
) -> Outcome {
    respond_stream(table, packet, Transport::Tcp, source, idle_timeout, out)
}

/// A query over a connection, TCP or TLS, kept open for `idle_timeout`.
fn respond_stream(
    table: &RoutingTable,
    packet: &[u8],
    transport: Transport,
    source: IpAddr,
    idle_timeout: std::time::Duration,
    out: &mut Vec<u8>,
) -> Outcome {
    // The option counts in units of 100 ms.
    let units = u16::try_from(idle_timeout.as_millis() / 100).unwrap_or(u16::MAX);
    let mut charge = Charge {
        keepalive: Some(units),
        padding: transport == Transport::Tls,
        ..Charge::default()
    };
    answer(table, packet, transport, source, out, &mut charge)
}

/// Answers one query that came over DNS over TLS (RFC 7858): as over TCP,
/// and a padded query gets a padded response (RFC 7830, RFC 8467), so
/// that its size says little about what was asked.
pub fn respond_tls(
    table: &RoutingTable,
    packet: &[u8],
    source: IpAddr,
    idle_timeout: std::time::Duration,
    out: &mut Vec<u8>,
) -> Outcome {
    respond_stream(table, packet, Transport::Tls, source, idle_timeout, out)
}

/// Answers one query that came over UDP, under `[rate_limit]` when the
/// table has one: the response is charged to its bucket in `buckets`, and
/// over the limit it is dropped or sent truncated (see
/// [`super::rate_limit`]), unless the client is exempt or showed a valid
/// server cookie (RFC 7873: its address is not forged).
pub fn respond_udp(
    table: &RoutingTable,
    buckets: &Buckets,
    packet: &[u8],
    source: IpAddr,
    out: &mut Vec<u8>,
) -> Outcome {
    let Some(limits) = table.rate_limit() else {
        return respond(table, packet, Transport::Udp, source, out);
    };
    let mut charge = Charge::default();
    let outcome = answer(table, packet, Transport::Udp, source, out, &mut charge);
    let Outcome::Reply {
        rcode,
        decision,
        zone,
    } = outcome
    else {
        return outcome;
    };
    let action = match buckets.charge(limits, source, charge.class, buckets.now()) {
        Verdict::Send => return outcome,
        _ if rate_limit::is_exempt(limits, source)
            || charge
                .cookie
                .is_some_and(|(start, end)| has_our_cookie(table, &packet[start..end], source)) =>
        {
            OverLimit::Exempt
        }
        _ if limits.dry_run => OverLimit::DryRun,
        Verdict::Drop => OverLimit::Dropped,
        Verdict::Slip => {
            strip_records(out);
            OverLimit::Slipped
        }
    };
    // Only a whole answer counts as the policy's decision and for its zone.
    let whole = matches!(action, OverLimit::Exempt | OverLimit::DryRun);
    Outcome::OverLimit {
        rcode,
        decision: decision.filter(|_| whole),
        zone: zone.filter(|_| whole),
        action,
    }
}

/// Whether `option` (COOKIE option data) holds a server cookie this node,
/// with its current or previous secret, issued to `source` (RFC 9018).
fn has_our_cookie(table: &RoutingTable, option: &[u8], source: IpAddr) -> bool {
    let (now, address) = (crate::unix_now(), source.to_canonical());
    let secrets = table.cookie_secrets();
    cookie::is_valid_server_cookie(&secrets.current, option, address, now)
        || secrets
            .previous
            .is_some_and(|previous| cookie::is_valid_server_cookie(&previous, option, address, now))
}

/// What [`answer`] tells the rate limiter about the response it wrote.
#[derive(Clone, Copy, Debug)]
struct Charge {
    /// The bucket the response is charged to (errors unless a path says
    /// otherwise).
    class: Class,
    /// Where the query's well-formed COOKIE option is, for the rate
    /// limiter to check its server cookie when it matters.
    cookie: Option<(usize, usize)>,
    /// Over TCP: the idle timeout to tell a client that asks, in units of
    /// 100 ms.
    keepalive: Option<u16>,
    /// Over TLS: pad the response when the query was padded.
    padding: bool,
}

impl Default for Charge {
    fn default() -> Self {
        Charge {
            class: Class::ERROR,
            cookie: None,
            keepalive: None,
            padding: false,
        }
    }
}

/// Answers one query into `out`, noting in `charge` what the response is.
fn answer(
    table: &RoutingTable,
    packet: &[u8],
    transport: Transport,
    source: IpAddr,
    out: &mut Vec<u8>,
    charge: &mut Charge,
) -> Outcome {
    out.clear();
    let query = match wire::parse_query(packet) {
        Ok(query) => query,
        Err(ParseError::Drop) => return Outcome::Drop,
        Err(ParseError::NotImplemented {
            id,
            flags: query_flags,
            question_end: Some(question_end),
            ..
        }) if query_flags & flags::OPCODE_MASK == notify::OPCODE_NOTIFY
            && !table.notify_targets().is_empty() =>
        {
            return notify::answer(table, packet, (id, query_flags), question_end, source, out);
        }
        Err(ParseError::NotImplemented {
            id,
            flags,
            question_end,
            edns,
        }) => {
            return header_only(
                packet,
                (id, flags),
                question_end,
                edns,
                (rcode::NOTIMP, Extras::nsid_only(table)),
                out,
            );
        }
        Err(ParseError::Malformed {
            id,
            flags,
            question_end,
        }) => {
            // The OPT record may be what is malformed: answer without one.
            return header_only(
                packet,
                (id, flags),
                question_end,
                None,
                (rcode::FORMERR, Extras::NONE),
                out,
            );
        }
    };
    // Answers made before the query's cookie is read carry none.
    let early = |rcode: u16, out: &mut Vec<u8>| {
        simple(packet, &query, rcode, Extras::nsid_only(table), out)
    };
    if let Some(edns) = query.edns
        && edns.version > 0
    {
        return early(rcode::BADVERS, out);
    }
    let subnet = match query.edns.and_then(|edns| edns.client_subnet) {
        None => None,
        Some((start, end)) => {
            let (max_v4, max_v6) = table.ecs_limits();
            match ClientSubnet::parse(&packet[start..end], max_v4, max_v6) {
                Ok(subnet) => Some(subnet),
                // RFC 7871 §6: a malformed option is answered with FORMERR.
                Err(MalformedSubnet) => return early(rcode::FORMERR, out),
            }
        }
    };
    let cookie = match query.edns.and_then(|edns| edns.cookie) {
        None => None,
        Some((start, end)) => match cookie::client_cookie(&packet[start..end]) {
            Ok(client) => {
                let now = crate::unix_now();
                let address = source.to_canonical();
                // Checked only if the rate limits would hold the response.
                charge.cookie = Some((start, end));
                Some(cookie::response_cookie(
                    &table.cookie_secrets().current,
                    &client,
                    address,
                    now,
                ))
            }
            // RFC 7873 §5.2.2.
            Err(MalformedCookie) => return early(rcode::FORMERR, out),
        },
    };
    let extras = Extras {
        nsid: table.nsid(),
        cookie: cookie.as_ref(),
        error: None,
        // RFC 7828 §3.3.2: only over TCP, only to a client that asked.
        keepalive: charge
            .keepalive
            .filter(|_| query.edns.is_some_and(|edns| edns.tcp_keepalive)),
        // RFC 7830 §4: only to a padded query, only over an encrypted
        // transport.
        padding: charge.padding && query.edns.is_some_and(|edns| edns.padding),
    };
    let refused = |error: ExtendedError, out: &mut Vec<u8>| {
        simple(
            packet,
            &query,
            rcode::REFUSED,
            extras.with_error(error),
            out,
        )
    };
    if query.qclass != CLASS_IN {
        if query.qclass == CLASS_CH
            && let Some(text) = table.chaos_text(query.name.as_bytes())
        {
            let ecs = subnet.as_ref().map(|subnet| (subnet, 0u8));
            return respond_chaos(
                packet,
                &query,
                (transport, extras, ecs),
                text,
                (out, charge),
            );
        }
        return refused(ExtendedError::NOT_SUPPORTED, out);
    }
    match query.qtype {
        TYPE_OPT => return simple(packet, &query, rcode::FORMERR, extras, out),
        TYPE_AXFR | TYPE_IXFR => return refused(ExtendedError::PROHIBITED, out),
        TYPE_MAILA | TYPE_MAILB => return simple(packet, &query, rcode::NOTIMP, extras, out),
        _ => {}
    }
    let dnssec_ok = query.edns.is_some_and(|edns| edns.dnssec_ok);
    let answer = match table.lookup(query.name.as_bytes(), query.qtype, transport, dnssec_ok) {
        Lookup::Refused => return refused(ExtendedError::NOT_AUTHORITATIVE, out),
        Lookup::Answer(answer) => answer,
        Lookup::Dname(dname) => {
            return respond_dname(
                packet,
                &query,
                (transport, extras),
                subnet.as_ref(),
                dname,
                (out, charge),
            );
        }
        Lookup::Steered(steered) => {
            let (address, _) = client_network(subnet.as_ref(), source);
            let (max_v4, max_v6) = table.ecs_limits();
            let client = Client {
                address,
                // Steer never looks past the configured maximum source
                // prefix, so an answer holds for at least that prefix.
                scope_cap: if address.is_ipv4() { max_v4 } else { max_v6 },
            };
            return respond_steered(
                packet,
                &query,
                (transport, extras),
                subnet.as_ref(),
                client,
                steered,
                (out, charge),
            );
        }
    };
    charge.class = Class {
        kind: if answer.rcode == rcode::NXDOMAIN as u8 {
            Kind::NxDomain
        } else if !answer.authoritative {
            Kind::Referral
        } else if answer.counts[0] == 0 {
            Kind::NoData
        } else {
            Kind::Answer
        },
        identity: answer.key(),
    };
    // Static data is the same for every client: scope 0 (RFC 7871 §7.2.1).
    let ecs = subnet.as_ref().map(|subnet| (subnet, 0u8));
    let limit = size_limit(&query, transport);
    let opt_len = opt_len(&query, ecs, extras);
    let question = &packet[HEADER_LEN..query.question_end];
    let fits = HEADER_LEN + question.len() + answer.len() + opt_len <= limit;
    let mut response_flags = flags::QR | (query.flags & (flags::RD | flags::CD));
    if answer.authoritative {
        response_flags |= flags::AA;
    }
    let rcode = u16::from(answer.rcode);
    response_flags |= rcode;
    let counts = if fits {
        answer.counts
    } else {
        response_flags |= flags::TC;
        [0; 3]
    };
    write_start(out, &query, response_flags, counts, question);
    if fits {
        answer.write(out, query.name.as_bytes().len());
    }
    write_opt(out, query.edns, rcode, ecs, extras);
    Outcome::Reply {
        rcode,
        decision: None,
        zone: answer.zone,
    }
}

/// What Steer adds to a response's OPT besides Client Subnet.
#[derive(Clone, Copy)]
struct Extras<'a> {
    /// `server.nsid`, sent when the query asks for it.
    nsid: &'a [u8],
    /// The COOKIE option to answer with, when the query sent one.
    cookie: Option<&'a [u8; RESPONSE_COOKIE_LEN]>,
    /// An Extended DNS Error (RFC 8914) saying why an answer is an error.
    error: Option<ExtendedError>,
    /// The TCP idle timeout to tell the client (RFC 7828), in 100 ms units.
    keepalive: Option<u16>,
    /// Pad the response to a multiple of [`PADDING_BLOCK`] bytes.
    padding: bool,
}

/// An Extended DNS Error: its INFO-CODE and EXTRA-TEXT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExtendedError {
    code: u16,
    text: &'static str,
}

impl ExtendedError {
    /// REFUSED for a name in none of our zones: RFC 8914's 20.
    const NOT_AUTHORITATIVE: ExtendedError = ExtendedError { code: 20, text: "" };
    /// REFUSED for a class other than IN: 21.
    const NOT_SUPPORTED: ExtendedError = ExtendedError { code: 21, text: "" };
    /// REFUSED for a zone transfer: 18.
    const PROHIBITED: ExtendedError = ExtendedError { code: 18, text: "" };
    /// SERVFAIL because a steered name's pools are all down and its
    /// policy says so: 0, Other, with the reason, since no code fits.
    const ALL_POOLS_DOWN: ExtendedError = ExtendedError {
        code: 0,
        text: "every pool is down (when_all_down = servfail)",
    };

    /// Bytes of the option, its header included.
    fn len(self) -> usize {
        4 + 2 + self.text.len()
    }
}

impl<'a> Extras<'a> {
    /// Nothing: for a query whose OPT could not be read.
    const NONE: Extras<'static> = Extras {
        nsid: &[],
        cookie: None,
        error: None,
        keepalive: None,
        padding: false,
    };

    /// For answers made before the query's cookie was read.
    fn nsid_only(table: &'a RoutingTable) -> Self {
        Extras {
            nsid: table.nsid(),
            cookie: None,
            error: None,
            keepalive: None,
            padding: false,
        }
    }

    /// These extras with an Extended DNS Error.
    fn with_error(self, error: ExtendedError) -> Self {
        Extras {
            error: Some(error),
            ..self
        }
    }
}

/// The client a steered answer is chosen for.
#[derive(Clone, Copy, Debug)]
struct Client {
    /// The ECS network address (truncated), or the packet's source.
    address: IpAddr,
    /// The longest scope worth returning: the configured maximum source
    /// prefix for the family.
    scope_cap: u8,
}

/// Answers a steered name: the policy picks records for `client` and says
/// how wide an ECS scope the choice holds for.
/// A name below a DNAME (RFC 6672 §2.2): the DNAME, and a CNAME from the
/// question to the name with the DNAME's target substituted for its
/// owner; YXDOMAIN, with the DNAME alone, when that name would be longer
/// than 255 bytes. The CNAME is made here, on the question's bytes and
/// without allocating: its kept labels are copied from the question, in
/// the client's letter case, and its end points at the DNAME's target.
/// Static data: ECS scope 0. The resolver asks for the new name itself.
fn respond_dname(
    packet: &[u8],
    query: &Query,
    (transport, extras): (Transport, Extras<'_>),
    subnet: Option<&ClientSubnet>,
    dname: DnameLookup<'_>,
    (out, charge): (&mut Vec<u8>, &mut Charge),
) -> Outcome {
    let question = &packet[HEADER_LEN..query.question_end];
    let kept = &question[..dname.owner_at];
    let target = &dname.dname.target[..];
    let too_long = kept.len() + target.len() > wire::MAX_NAME_LEN;
    let rcode = if too_long {
        rcode::YXDOMAIN
    } else {
        rcode::NOERROR
    };
    // With DO in a signed zone, the DNAME's signatures follow it.
    let signatures = &dname.dname.signatures[..];
    let signature_count = dname.dname.signature_count;
    // Owner pointer, type, class, TTL, RDLENGTH: 12 bytes before the data.
    let records = 12
        + target.len()
        + if too_long { 0 } else { 12 + kept.len() + 2 }
        + 2 * usize::from(signature_count)
        + signatures.len();
    let ecs = subnet.map(|subnet| (subnet, 0u8));
    let fits = HEADER_LEN + question.len() + records + opt_len(query, ecs, extras)
        <= size_limit(query, transport);
    let mut response_flags =
        flags::QR | flags::AA | (query.flags & (flags::RD | flags::CD)) | rcode;
    let answers = match (fits, too_long) {
        (false, _) => {
            response_flags |= flags::TC;
            0
        }
        (true, true) => 1 + signature_count,
        (true, false) => 2 + signature_count,
    };
    write_start(out, query, response_flags, [answers, 0, 0], question);
    if answers > 0 {
        // The owner is the end of the question's name: a pointer to it.
        let owner = 0xC000 | (HEADER_LEN + dname.owner_at) as u16;
        out.extend_from_slice(&owner.to_be_bytes());
        out.extend_from_slice(&TYPE_DNAME.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&dname.dname.ttl.to_be_bytes());
        out.extend_from_slice(&(target.len() as u16).to_be_bytes());
        // RFC 6672 §2.5: the target is never compressed.
        let target_at = out.len();
        out.extend_from_slice(target);
        let mut rest = signatures;
        while rest.len() >= 10 {
            let length = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
            let Some(signature) = rest.get(..length) else {
                break;
            };
            out.extend_from_slice(&owner.to_be_bytes());
            out.extend_from_slice(signature);
            rest = &rest[length..];
        }
        if !too_long {
            out.extend_from_slice(&0xC00Cu16.to_be_bytes());
            out.extend_from_slice(&TYPE_CNAME.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&dname.dname.ttl.to_be_bytes());
            out.extend_from_slice(&((kept.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(kept);
            out.extend_from_slice(&(0xC000 | target_at as u16).to_be_bytes());
        }
    }
    write_opt(out, query.edns, rcode, ecs, extras);
    charge.class = Class {
        kind: if too_long { Kind::Error } else { Kind::Answer },
        identity: DNAME_IDENTITY | dname.key,
    };
    Outcome::Reply {
        rcode,
        decision: None,
        zone: dname.zone,
    }
}

fn respond_steered(
    packet: &[u8],
    query: &Query,
    (transport, mut extras): (Transport, Extras<'_>),
    subnet: Option<&ClientSubnet>,
    client: Client,
    steered: SteeredLookup<'_>,
    (out, charge): (&mut Vec<u8>, &mut Charge),
) -> Outcome {
    let question = &packet[HEADER_LEN..query.question_end];
    // The header is written last, once the counts are known.
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(question);
    let records_start = out.len();
    let (selected, scope) = steered.policy.select(steered.health, client.address, out);
    let mut response_flags = flags::QR | (query.flags & (flags::RD | flags::CD)) | flags::AA;
    let (rcode, mut counts) = match selected {
        Selected::Records { count, .. } => {
            charge.class = Class {
                kind: Kind::Answer,
                // Apart from static sections' offsets, which are far below.
                identity: STEERED_IDENTITY | steered.key,
            };
            // A signed zone, a query with DO: the RRSIGs over what was
            // chosen (made once per RRset, then cached).
            let signatures = steered.signer.map_or(0, |signer| {
                signer.sign_answer(query.name.as_bytes(), out, records_start, count)
            });
            (rcode::NOERROR, [count + signatures, 0, 0])
        }
        Selected::NoData { .. } => {
            out.truncate(records_start);
            steered.nodata.write(out, query.name.as_bytes().len());
            charge.class = Class {
                kind: Kind::NoData,
                identity: steered.nodata.key(),
            };
            (rcode::NOERROR, steered.nodata.counts)
        }
        Selected::ServFail { .. } => {
            out.truncate(records_start);
            response_flags &= !flags::AA;
            extras = extras.with_error(ExtendedError::ALL_POOLS_DOWN);
            (rcode::SERVFAIL, [0; 3])
        }
    };
    response_flags |= rcode;
    // A scope longer than the bits Steer looks at would split resolver
    // caches for nothing. With no usable subnet (source prefix 0) the answer
    // did not depend on the option at all: scope 0.
    let scope = match subnet {
        Some(subnet) if subnet.used_prefix() == 0 => 0,
        _ => scope.min(client.scope_cap),
    };
    let ecs = subnet.map(|subnet| (subnet, scope));
    if out.len() + opt_len(query, ecs, extras) > size_limit(query, transport) {
        out.truncate(records_start);
        response_flags |= flags::TC;
        counts = [0; 3];
    }
    let with_opt = query.edns.is_some();
    out[0..2].copy_from_slice(&query.id.to_be_bytes());
    out[2..4].copy_from_slice(&response_flags.to_be_bytes());
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..8].copy_from_slice(&counts[0].to_be_bytes());
    out[8..10].copy_from_slice(&counts[1].to_be_bytes());
    out[10..12].copy_from_slice(&(counts[2] + u16::from(with_opt)).to_be_bytes());
    write_opt(out, query.edns, rcode, ecs, extras);
    // Counted even when truncated: like `steer_queries_total` this counts
    // responses sent, and a client that retries over TCP is counted again.
    Outcome::Reply {
        rcode,
        decision: Some(selected.decision()),
        zone: steered.zone,
    }
}

/// A CHAOS-class question about this server (RFC 4892): its TXT is
/// `text`, with TTL 0 so that no resolver keeps one node's name for
/// another's answers; other types get NODATA. From no zone.
fn respond_chaos(
    packet: &[u8],
    query: &Query,
    (transport, extras, ecs): (Transport, Extras<'_>, Option<(&ClientSubnet, u8)>),
    text: &[u8],
    (out, charge): (&mut Vec<u8>, &mut Charge),
) -> Outcome {
    let question = &packet[HEADER_LEN..query.question_end];
    let answers = u16::from(matches!(query.qtype, TYPE_TXT | wire::TYPE_ANY));
    // Owner pointer, type, class, TTL, RDLENGTH, then one string.
    let record_len = 12 + 1 + text.len();
    let fits = HEADER_LEN
        + question.len()
        + usize::from(answers) * record_len
        + opt_len(query, ecs, extras)
        <= size_limit(query, transport);
    let mut response_flags = flags::QR | flags::AA | (query.flags & (flags::RD | flags::CD));
    if !fits {
        response_flags |= flags::TC;
    }
    let answers = if fits { answers } else { 0 };
    write_start(out, query, response_flags, [answers, 0, 0], question);
    if answers > 0 {
        out.extend_from_slice(&0xC00Cu16.to_be_bytes());
        out.extend_from_slice(&TYPE_TXT.to_be_bytes());
        out.extend_from_slice(&CLASS_CH.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        // At most 255 bytes (`server.version`), so both lengths fit.
        out.extend_from_slice(&((1 + text.len()) as u16).to_be_bytes());
        out.push(text.len() as u8);
        out.extend_from_slice(text);
    }
    write_opt(out, query.edns, rcode::NOERROR, ecs, extras);
    charge.class = Class {
        kind: if answers > 0 {
            Kind::Answer
        } else {
            Kind::NoData
        },
        identity: CHAOS_IDENTITY,
    };
    Outcome::Reply {
        rcode: rcode::NOERROR,
        decision: None,
        zone: None,
    }
}

/// Where the client is: the Client Subnet network when the resolver sent
/// one, else the packet's source address with all its bits.
fn client_network(subnet: Option<&ClientSubnet>, source: IpAddr) -> (IpAddr, u8) {
    match subnet {
        // Source prefix 0: the resolver gives no client information, so
        // the resolver itself is the best guess (RFC 7871 §7.1.2).
        Some(subnet) if subnet.used_prefix() > 0 => subnet.network(),
        _ => match source {
            IpAddr::V4(_) => (source, 32),
            IpAddr::V6(address) => match address.to_ipv4_mapped() {
                // A v4 client on a dual-stack socket.
                Some(v4) => (IpAddr::V4(v4), 32),
                None => (source, 128),
            },
        },
    }
}

/// Bytes the OPT record adds (0 without EDNS).
fn opt_len(query: &Query, ecs: Option<(&ClientSubnet, u8)>, extras: Extras<'_>) -> usize {
    match query.edns {
        None => 0,
        Some(edns) => {
            OPT_LEN
                + ecs.map_or(0, |(subnet, _)| subnet.option_len())
                + nsid_option(edns, extras.nsid).map_or(0, |nsid| 4 + nsid.len())
                + extras.cookie.map_or(0, |cookie| 4 + cookie.len())
                + extras.error.map_or(0, ExtendedError::len)
                + extras.keepalive.map_or(0, |_| KEEPALIVE_OPTION_LEN)
        }
    }
}

/// The identifier to answer with: only when asked for and configured.
fn nsid_option(edns: Edns, nsid: &[u8]) -> Option<&[u8]> {
    (edns.nsid && !nsid.is_empty()).then_some(nsid)
}

/// The largest response the client accepts on this transport.
fn size_limit(query: &Query, transport: Transport) -> usize {
    match (transport, query.edns) {
        (Transport::Tcp | Transport::Tls, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => 512,
        (Transport::Udp, Some(edns)) => {
            // RFC 6891 §6.2.5: values below 512 are treated as 512.
            usize::from(edns.payload_size.clamp(512, UDP_PAYLOAD_SIZE))
        }
    }
}

/// The header (one question; the OPT counted when the query had EDNS)
/// and the question as the client sent it.
fn write_start(
    out: &mut Vec<u8>,
    query: &Query,
    response_flags: u16,
    counts: [u16; 3],
    question: &[u8],
) {
    write_header(
        out,
        query.id,
        response_flags,
        1,
        counts,
        query.edns.is_some(),
    );
    out.extend_from_slice(question);
}

fn write_header(
    out: &mut Vec<u8>,
    id: u16,
    response_flags: u16,
    question_count: u16,
    counts: [u16; 3],
    with_opt: bool,
) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&response_flags.to_be_bytes());
    out.extend_from_slice(&question_count.to_be_bytes());
    out.extend_from_slice(&counts[0].to_be_bytes());
    out.extend_from_slice(&counts[1].to_be_bytes());
    out.extend_from_slice(&(counts[2] + u16::from(with_opt)).to_be_bytes());
}

fn write_opt(
    out: &mut Vec<u8>,
    edns: Option<Edns>,
    rcode: u16,
    ecs: Option<(&ClientSubnet, u8)>,
    extras: Extras<'_>,
) {
    let Some(edns) = edns else { return };
    let nsid = nsid_option(edns, extras.nsid);
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&UDP_PAYLOAD_SIZE.to_be_bytes());
    // Extended rcode (upper 8 bits of 12), version 0.
    out.push((rcode >> 4) as u8);
    out.push(0);
    // RFC 3225 §3: the DO bit is copied into the response.
    let dnssec_ok: u16 = if edns.dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&dnssec_ok.to_be_bytes());
    let options_len = ecs.map_or(0, |(subnet, _)| subnet.option_len())
        + nsid.map_or(0, |nsid| 4 + nsid.len())
        + extras.cookie.map_or(0, |cookie| 4 + cookie.len())
        + extras.error.map_or(0, ExtendedError::len)
        + extras.keepalive.map_or(0, |_| KEEPALIVE_OPTION_LEN);
    // The padding option comes last, sized so that the whole response is
    // a multiple of the block (RFC 8467 §4.1), unless that would not fit
    // in a TCP frame.
    let padding = extras.padding.then(|| {
        let unpadded = out.len() + 2 + options_len + 4;
        (PADDING_BLOCK - unpadded % PADDING_BLOCK) % PADDING_BLOCK
    });
    let padding =
        padding.filter(|length| out.len() + 2 + options_len + 4 + length <= usize::from(u16::MAX));
    let options_len = options_len + padding.map_or(0, |length| 4 + length);
    out.extend_from_slice(&(options_len as u16).to_be_bytes());
    if let Some((subnet, scope)) = ecs {
        subnet.write_option(out, scope);
    }
    if let Some(nsid) = nsid {
        // At most 64 bytes (`server.nsid`), so the length fits.
        out.extend_from_slice(&wire::OPTION_NSID.to_be_bytes());
        out.extend_from_slice(&(nsid.len() as u16).to_be_bytes());
        out.extend_from_slice(nsid);
    }
    if let Some(cookie) = extras.cookie {
        out.extend_from_slice(&cookie::OPTION_COOKIE.to_be_bytes());
        out.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
        out.extend_from_slice(cookie);
    }
    if let Some(units) = extras.keepalive {
        out.extend_from_slice(&wire::OPTION_TCP_KEEPALIVE.to_be_bytes());
        out.extend_from_slice(&2u16.to_be_bytes());
        out.extend_from_slice(&units.to_be_bytes());
    }
    if let Some(error) = extras.error {
        out.extend_from_slice(&OPTION_EXTENDED_ERROR.to_be_bytes());
        out.extend_from_slice(&((2 + error.text.len()) as u16).to_be_bytes());
        out.extend_from_slice(&error.code.to_be_bytes());
        out.extend_from_slice(error.text.as_bytes());
    }
    if let Some(length) = padding {
        out.extend_from_slice(&wire::OPTION_PADDING.to_be_bytes());
        out.extend_from_slice(&(length as u16).to_be_bytes());
        out.resize(out.len() + length, 0);
    }
}

/// A response with the question (and OPT) but no records.
fn simple(
    packet: &[u8],
    query: &Query,
    rcode: u16,
    extras: Extras<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    let response_flags = flags::QR | (query.flags & (flags::RD | flags::CD)) | (rcode & 0xF);
    write_header(
        out,
        query.id,
        response_flags,
        1,
        [0; 3],
        query.edns.is_some(),
    );
    out.extend_from_slice(&packet[HEADER_LEN..query.question_end]);
    write_opt(out, query.edns, rcode, None, extras);
    Outcome::Reply {
        rcode,
        decision: None,
        zone: None,
    }
}

/// FORMERR and NOTIMP: the header, and the question when it was readable.
fn header_only(
    packet: &[u8],
    (id, query_flags): (u16, u16),
    question_end: Option<usize>,
    edns: Option<Edns>,
    (rcode, extras): (u16, Extras<'_>),
    out: &mut Vec<u8>,
) -> Outcome {
    let response_flags =
        flags::QR | (query_flags & (flags::OPCODE_MASK | flags::RD | flags::CD)) | rcode;
    let question = question_end.map_or(&[][..], |end| &packet[HEADER_LEN..end]);
    let question_count = u16::from(!question.is_empty());
    write_header(
        out,
        id,
        response_flags,
        question_count,
        [0; 3],
        edns.is_some(),
    );
    out.extend_from_slice(question);
    write_opt(out, edns, rcode, None, extras);
    Outcome::Reply {
        rcode,
        decision: None,
        zone: None,
    }
}

/// Turns the response in `out` into its truncated form for a slip: TC set,
/// every record but the OPT removed (so the client keeps its cookie and
/// learns our payload size). The response is one Steer wrote, but it is
/// read defensively: anything unexpected leaves the question alone.
fn strip_records(out: &mut Vec<u8>) {
    let count = |out: &[u8], at: usize| usize::from(u16::from_be_bytes([out[at], out[at + 1]]));
    if out.len() < HEADER_LEN {
        return;
    }
    let records = count(out, 6) + count(out, 8) + count(out, 10);
    let mut at = HEADER_LEN;
    if count(out, 4) > 0 {
        match skip_name(out, at) {
            Some(end) => at = end + 4,
            None => return,
        }
    }
    let question_end = at.min(out.len());
    let mut opt = None;
    for _ in 0..records {
        let start = at;
        let Some(end) = skip_name(out, at) else { break };
        let Some(fixed) = out.get(end..end + 10) else {
            break;
        };
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let data_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at = end + 10 + data_len;
        if at > out.len() {
            break;
        }
        if record_type == TYPE_OPT {
            opt = Some(start..at);
        }
    }
    let kept = match opt {
        Some(range) => {
            let length = range.len();
            out.copy_within(range, question_end);
            length
        }
        None => 0,
    };
    out.truncate(question_end + kept);
    let flags = u16::from_be_bytes([out[2], out[3]]) | flags::TC;
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    out[6..10].fill(0);
    out[10..12].copy_from_slice(&u16::from(kept > 0).to_be_bytes());
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *bytes.get(at)?;
        match length {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(length),
            // A compression pointer ends the name.
            0xC0..=0xFF => return Some(at + 2),
            _ => return None,
        }
    }
}
