//! One resolution of an alias target: its A and AAAA records, asked of the
//! configured recursive resolvers in order until one answers.
//!
//! Each question goes over UDP from a fresh socket connected to the server,
//! with a random ID and the recursion-desired bit, and again over TCP when
//! the answer is truncated. An answer counts when it echoes the ID and the
//! question and its rcode is NOERROR or NXDOMAIN: NXDOMAIN and NODATA are
//! answers (the target has no such address), while SERVFAIL, REFUSED, a
//! timeout or garbage send the question to the next server. Both families
//! must come from one server, so that a resolution never mixes two views.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::config::steering::ResolverConfig;
use crate::exchange;

/// The EDNS payload size offered (RFC 9715's advice against fragments).
const PAYLOAD: u16 = 1232;
/// Most CNAMEs followed from the target before the chain is refused.
const MAX_CHAIN: usize = 16;

/// The target's addresses as one server gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// IPv4 addresses, sorted, each once.
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 addresses, sorted, each once.
    pub v6: Vec<Ipv6Addr>,
    /// The smallest TTL of the records used (the negative TTL when a
    /// family has none), which is when the answer may change.
    pub ttl: u32,
    /// The server that answered.
    pub server: SocketAddr,
}

/// Resolves `target` through `config.servers`: the first server that
/// answers both questions gives the answer; otherwise each server's
/// failure, in order.
pub async fn resolve(target: &Name, config: &ResolverConfig) -> Result<Answer, String> {
    let mut failures = Vec::new();
    for &server in &config.servers {
        let v4 = ask(server, target, RecordType::A, config.timeout);
        let v6 = ask(server, target, RecordType::AAAA, config.timeout);
        match tokio::join!(v4, v6) {
            (Ok(v4), Ok(v6)) => {
                let mut answer = Answer {
                    v4: Vec::new(),
                    v6: Vec::new(),
                    ttl: v4.ttl.min(v6.ttl),
                    server,
                };
                for address in v4.addresses.into_iter().chain(v6.addresses) {
                    match address {
                        IpAddr::V4(address) => answer.v4.push(address),
                        IpAddr::V6(address) => answer.v6.push(address),
                    }
                }
                answer.v4.sort_unstable();
                answer.v4.dedup();
                answer.v6.sort_unstable();
                answer.v6.dedup();
                return Ok(answer);
            }
            (Err(error), _) | (_, Err(error)) => failures.push(format!("{server}: {error}")),
        }
    }
    if failures.is_empty() {
        return Err("no resolver is configured".to_owned());
    }
    Err(failures.join("; "))
}

/// The addresses of one type and their TTL.
struct Family {
    addresses: Vec<IpAddr>,
    ttl: u32,
}

async fn ask(
    server: SocketAddr,
    target: &Name,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Family, String> {
    let id = crate::random_query_id();
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(target.clone(), record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(PAYLOAD);
    message.set_edns(edns);
    let query = message
        .to_vec()
        .map_err(|error| format!("cannot encode the query: {error}"))?;
    let is_answer = |answer: &Message| is_answer_to(answer, id, target, record_type);
    let exchange = exchange::ask(server, &query, false, is_answer);
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer to {record_type} within {timeout:?}"))??;
    family(&answer, target, record_type)
}

fn is_answer_to(answer: &Message, id: u16, target: &Name, record_type: RecordType) -> bool {
    answer.metadata.id == id
        && answer.metadata.message_type == MessageType::Response
        && answer.queries.len() == 1
        && answer.queries[0].query_type() == record_type
        && answer.queries[0].name().to_lowercase() == target.to_lowercase()
}

/// The addresses an answer gives `target`, following its CNAME chain
/// within the answer section.
fn family(answer: &Message, target: &Name, record_type: RecordType) -> Result<Family, String> {
    let rcode = answer.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return Err(format!("{record_type}: {rcode}"));
    }
    let mut owner = target.to_lowercase();
    let mut ttl = u32::MAX;
    for _ in 0..=MAX_CHAIN {
        let next = answer.answers.iter().find_map(|record| match &record.data {
            RData::CNAME(cname) if record.name.to_lowercase() == owner => {
                Some((cname.0.to_lowercase(), record.ttl))
            }
            _ => None,
        });
        match next {
            Some((next, record_ttl)) => {
                ttl = ttl.min(record_ttl);
                owner = next;
            }
            None => {
                let mut addresses = Vec::new();
                for record in &answer.answers {
                    if record.name.to_lowercase() != owner {
                        continue;
                    }
                    let address = match (&record.data, record_type) {
                        (RData::A(address), RecordType::A) => IpAddr::V4(address.0),
                        (RData::AAAA(address), RecordType::AAAA) => IpAddr::V6(address.0),
                        _ => continue,
                    };
                    ttl = ttl.min(record.ttl);
                    addresses.push(address);
                }
                if addresses.is_empty() {
                    // RFC 2308: a negative answer lasts the SOA's TTL or
                    // minimum, whichever is less.
                    ttl = ttl.min(negative_ttl(answer).unwrap_or(0));
                }
                return Ok(Family { addresses, ttl });
            }
        }
    }
    Err(format!(
        "{record_type}: a CNAME chain longer than {MAX_CHAIN}"
    ))
}

fn negative_ttl(answer: &Message) -> Option<u32> {
    answer
        .authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).expect("name")
    }

    fn answer_with(records: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut message = Message::query();
        message.metadata.message_type = MessageType::Response;
        message.answers = records;
        message.authorities = authorities;
        message
    }

    #[test]
    fn follows_the_cname_chain_and_takes_the_smallest_ttl() {
        let answer = answer_with(
            vec![
                Record::from_rdata(
                    name("Apex.Example.NET."),
                    300,
                    RData::CNAME(CNAME(name("lb.example.net."))),
                ),
                Record::from_rdata(name("lb.example.net."), 60, RData::A(A::new(192, 0, 2, 1))),
                Record::from_rdata(name("lb.example.net."), 120, RData::A(A::new(192, 0, 2, 2))),
                // Not on the chain: ignored.
                Record::from_rdata(
                    name("other.example.net."),
                    5,
                    RData::A(A::new(198, 51, 100, 1)),
                ),
            ],
            Vec::new(),
        );
        let family = family(&answer, &name("apex.example.net."), RecordType::A).expect("answer");
        assert_eq!(
            family.addresses,
            vec![IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2])]
        );
        assert_eq!(family.ttl, 60);
    }

    #[test]
    fn no_address_is_an_answer_lasting_the_negative_ttl() {
        let soa = SOA::new(
            name("ns.example.net."),
            name("admin.example.net."),
            1,
            3600,
            600,
            86400,
            90,
        );
        let answer = answer_with(
            Vec::new(),
            vec![Record::from_rdata(
                name("example.net."),
                300,
                RData::SOA(soa),
            )],
        );
        let family = family(&answer, &name("lb.example.net."), RecordType::AAAA).expect("answer");
        assert!(family.addresses.is_empty());
        assert_eq!(family.ttl, 90);
    }

    #[test]
    fn servfail_and_cname_loops_are_failures() {
        let mut answer = answer_with(Vec::new(), Vec::new());
        answer.metadata.response_code = ResponseCode::ServFail;
        let error = family(&answer, &name("lb.example.net."), RecordType::A)
            .err()
            .expect("failure");
        assert_eq!(error, "A: Server Failure");
        let looped = answer_with(
            vec![
                Record::from_rdata(
                    name("a.example.net."),
                    60,
                    RData::CNAME(CNAME(name("b.example.net."))),
                ),
                Record::from_rdata(
                    name("b.example.net."),
                    60,
                    RData::CNAME(CNAME(name("a.example.net."))),
                ),
            ],
            Vec::new(),
        );
        let error = family(&looped, &name("a.example.net."), RecordType::A)
            .err()
            .expect("failure");
        assert!(error.contains("CNAME chain"), "{error}");
        let wrong_type = answer_with(
            vec![Record::from_rdata(
                name("lb.example.net."),
                60,
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            )],
            Vec::new(),
        );
        let family = family(&wrong_type, &name("lb.example.net."), RecordType::A).expect("answer");
        assert!(family.addresses.is_empty(), "an AAAA is not an A");
    }
}
