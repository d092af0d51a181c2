//! The `dns` and `dns-tcp` health checks: one query to the target, whose
//! answer must have the expected response code and, when configured, hold
//! the expected record.
//!
//! For pools of DNS servers (resolvers Steer hands out, or the
//! authoritative servers of a delegated zone) a TCP connect says little: a
//! server can accept and answer SERVFAIL to everything. This asks a real
//! question. `dns` asks over UDP from a fresh socket connected to the
//! target (so only the target's datagrams are read), with a random ID
//! from the system's secure random source, and asks again over TCP when
//! the answer is truncated, as a resolver would; `dns-tcp` asks over TCP
//! only. A reply must echo the ID and the question, or it is not the
//! answer (a stray or forged datagram is skipped, a wrong one on TCP
//! fails the check).

use std::net::SocketAddr;

use hickory_proto::op::{Message, Query};

use crate::config::steering::DnsProbe;
use crate::exchange;

/// One target's DNS check.
#[derive(Debug)]
pub(super) struct DnsCheck {
    probe: DnsProbe,
    address: SocketAddr,
}

impl DnsCheck {
    pub(super) fn new(probe: &DnsProbe, address: SocketAddr) -> DnsCheck {
        DnsCheck {
            probe: probe.clone(),
            address,
        }
    }

    /// Asks once (the caller bounds the time): whether the answer passed,
    /// and why in a few words.
    pub(super) async fn check(&self) -> (bool, String) {
        let id = crate::random_query_id();
        let query = match self.query(id) {
            Ok(query) => query,
            Err(error) => return (false, error),
        };
        let is_answer = |answer: &Message| self.is_answer_to(answer, id);
        let answer = exchange::ask(self.address, &query, self.probe.tcp, is_answer).await;
        match answer {
            Ok(answer) => self.judge(&answer),
            Err(error) => (false, error),
        }
    }

    fn query(&self, id: u16) -> Result<Vec<u8>, String> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = self.probe.recursion_desired;
        message.add_query(Query::query(
            self.probe.query.clone(),
            self.probe.query_type,
        ));
        message
            .to_vec()
            .map_err(|error| format!("cannot encode the query: {error}"))
    }

    fn is_answer_to(&self, answer: &Message, id: u16) -> bool {
        answer.metadata.id == id
            && answer.metadata.message_type == hickory_proto::op::MessageType::Response
            && answer.queries.len() == 1
            && answer.queries[0].query_type() == self.probe.query_type
            && answer.queries[0].name().to_lowercase() == self.probe.query.to_lowercase()
    }

    /// The verdict on an answer to this query.
    fn judge(&self, answer: &Message) -> (bool, String) {
        let rcode = u16::from(answer.metadata.response_code);
        let rcode_name = crate::dns::rcode_text(rcode);
        if rcode != self.probe.expect_rcode {
            let expected = crate::dns::rcode_text(self.probe.expect_rcode);
            return (false, format!("{rcode_name} (expected {expected})"));
        }
        let records: Vec<String> = answer
            .answers
            .iter()
            .filter(|record| record.record_type() == self.probe.query_type)
            .map(|record| DnsProbe::normalize(&record.data.to_string()))
            .collect();
        let Some(expected) = &self.probe.expect_answer else {
            return (true, format!("{rcode_name}, {} answers", records.len()));
        };
        if records.iter().any(|record| record == expected) {
            (true, format!("{rcode_name}, {expected}"))
        } else if records.is_empty() {
            (
                false,
                format!("{rcode_name} without a {} record", self.probe.query_type),
            )
        } else {
            (
                false,
                format!("{rcode_name}: {} (expected {expected})", records.join(", ")),
            )
        }
    }
}
