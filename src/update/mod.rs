//! RFC 2136 dynamic updates: clients with a TSIG key that `[update]` grants
//! add and remove records of the zones Steer serves from its zones
//! directory (ACME DNS-01 challenges, DHCP-registered hosts).
//!
//! The query path does not apply updates: it hands an UPDATE message to the
//! control plane ([`UpdateRequest`]) and answers nothing itself. There,
//! one update at a time is checked (the TSIG, the zone, the grant, the
//! prerequisites), applied to the zone as served, kept on disk
//! ([`overlay`]) and served by a reload; only then is it acknowledged, so
//! a client that reads back after NOERROR finds its records. An update
//! that cannot be served (a reload that fails for any reason) is taken back
//! and answered SERVFAIL.

pub mod apply;
pub mod handle;
pub mod overlay;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::table::RoutingTable;

/// The UPDATE opcode (RFC 2136 §1.3), in the header's flags word.
pub const OPCODE_UPDATE: u16 = 5 << 11;

/// Updates waiting for the control plane; more are dropped unanswered, as
/// a busy server's datagrams are, and the client sends again.
const QUEUE: usize = 64;

/// Whether `message` is an UPDATE request: a look at its header alone, so
/// that every other query pays one comparison.
#[inline]
pub fn is_update(message: &[u8]) -> bool {
    // QR clear and opcode 5.
    message.len() >= 12 && u16::from_be_bytes([message[2], message[3]]) & 0xF800 == OPCODE_UPDATE
}

/// An UPDATE message handed from a transport to the control plane.
pub struct UpdateRequest {
    /// The message as received (PROXY header removed).
    pub message: Vec<u8>,
    /// The client, whose address a grant's `allow` is checked against.
    pub client: IpAddr,
    /// Where the response goes.
    pub reply: Reply,
}

/// Where an update's response goes.
pub enum Reply {
    /// Over UDP, from the socket the update came in on.
    Datagram {
        /// That socket.
        socket: Arc<std::net::UdpSocket>,
        /// The client's address and port.
        to: SocketAddr,
        /// The local address to answer from (wildcard sockets).
        from: crate::dns::udp::ReplySource,
    },
    /// Over TCP or TLS: the connection writes it.
    Stream(oneshot::Sender<Vec<u8>>),
}

impl Reply {
    /// Sends `response`; a client gone by now is not an error.
    pub fn send(self, response: Vec<u8>) {
        match self {
            Reply::Datagram { socket, to, from } => {
                if let Err(error) = crate::dns::udp::send_reply(&socket, &response, to, from) {
                    tracing::debug!(%to, %error, "cannot send an update's response");
                }
            }
            Reply::Stream(sender) => {
                let _ = sender.send(response);
            }
        }
    }
}

/// Where transports hand UPDATE messages: the control plane's queue, used
/// only while the table in force takes updates (`[update]` is set).
#[derive(Clone)]
pub struct UpdateQueue {
    sender: mpsc::Sender<UpdateRequest>,
    table: Arc<ArcSwap<RoutingTable>>,
}

impl UpdateQueue {
    /// A queue and the receiving end the control plane reads.
    pub fn new(table: Arc<ArcSwap<RoutingTable>>) -> (Self, mpsc::Receiver<UpdateRequest>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (Self { sender, table }, receiver)
    }

    /// Takes `message` when it is an update and updates are accepted (the
    /// caller answers everything else as before: NOTIMP for an UPDATE
    /// without `[update]`). Returns whether it was taken; a full queue
    /// drops it.
    pub fn offer(&self, message: &[u8], client: IpAddr, reply: impl FnOnce() -> Reply) -> bool {
        if !is_update(message) || !self.table.load().accepts_updates() {
            return false;
        }
        let request = UpdateRequest {
            message: message.to_vec(),
            client,
            reply: reply(),
        };
        if self.sender.try_send(request).is_err() {
            tracing::warn!(%client, "dynamic update dropped: too many waiting");
        }
        true
    }

    /// As [`UpdateQueue::offer`] for a stream transport: the receiver of
    /// the response, when the message was taken.
    pub fn offer_stream(
        &self,
        message: &[u8],
        client: IpAddr,
    ) -> Option<oneshot::Receiver<Vec<u8>>> {
        // Every other query leaves here, before anything is allocated.
        if !is_update(message) {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        self.offer(message, client, || Reply::Stream(sender))
            .then_some(receiver)
    }
}

/// The answers to recent signed updates, by a digest of the request's
/// bytes, for the TSIG time window (RFC 8945's fudge, 300 s, on either
/// side): a retransmitted update gets its first answer, and a captured one
/// replayed inside the window changes nothing. Bounded; the oldest go
/// first.
#[derive(Debug, Default)]
pub struct Replies {
    entries: std::collections::VecDeque<([u8; 32], u64, Vec<u8>)>,
}

impl Replies {
    /// How long an answer is kept: a request is accepted up to the fudge
    /// after its time signed, which may itself be the fudge ahead.
    const KEEP_SECONDS: u64 = 600;
    /// Most answers kept.
    const MOST: usize = 1024;

    fn digest(request: &[u8]) -> [u8; 32] {
        crate::transfer::journal::digest(request)
    }

    /// The answer given to these exact bytes within the window, if any.
    pub fn get(&mut self, request: &[u8], now: u64) -> Option<Vec<u8>> {
        while self
            .entries
            .front()
            .is_some_and(|(_, at, _)| at.saturating_add(Self::KEEP_SECONDS) < now)
        {
            self.entries.pop_front();
        }
        let digest = Self::digest(request);
        self.entries
            .iter()
            .find(|(seen, _, _)| *seen == digest)
            .map(|(_, _, response)| response.clone())
    }

    /// Keeps `response` as the answer to `request`.
    pub fn insert(&mut self, request: &[u8], response: &[u8], now: u64) {
        if self.entries.len() == Self::MOST {
            self.entries.pop_front();
        }
        self.entries
            .push_back((Self::digest(request), now, response.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_kept_for_the_window_and_bounded() {
        let mut replies = Replies::default();
        replies.insert(b"update one", b"answer one", 1_000);
        assert_eq!(
            replies.get(b"update one", 1_300),
            Some(b"answer one".to_vec())
        );
        assert_eq!(replies.get(b"update two", 1_300), None);
        assert_eq!(replies.get(b"update one", 1_601), None, "past the window");
        for index in 0..=Replies::MOST {
            replies.insert(format!("update {index}").as_bytes(), b"answer", 2_000);
        }
        assert_eq!(
            replies.get(b"update 0", 2_000),
            None,
            "the oldest went first"
        );
        assert!(replies.get(b"update 1", 2_000).is_some());
    }
}
