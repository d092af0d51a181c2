//! The data plane: bytes in, bytes out.
//!
//! [`respond`] turns one query packet into one response packet using the
//! current [`RoutingTable`]. The transports ([`udp`], [`tcp`]) call it with a
//! reused output buffer. It never locks, never allocates once the buffer has
//! grown to its working size, never logs per query and never panics on
//! network input: malformed queries get FORMERR, and packets without a
//! readable header (or that are responses) are dropped.

pub mod cookie;
pub mod ecs;
pub mod respond;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use respond::respond;

use crate::metrics::DecisionSlot;

/// How the query arrived; it decides the size limit and ANY handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: 512 bytes without EDNS, else the requester's payload size.
    Udp,
    /// TCP: up to 65535 bytes, never truncated.
    Tcp,
}

/// What [`respond`] did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response was written to the output buffer; `rcode` is the full
    /// (extended) response code, e.g. 16 for BADVERS.
    Reply {
        /// Full response code including the EDNS extended bits.
        rcode: u16,
        /// For a steered name, the counter of what its policy decided
        /// (pool and reason); `None` for everything else. The worker that
        /// sends the reply adds one to it.
        decision: Option<DecisionSlot>,
    },
    /// Nothing to send (no readable header, or the packet was a response).
    Drop,
}
