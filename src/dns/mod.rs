//! The data plane: bytes in, bytes out.
//!
//! [`respond`] turns one query packet into one response packet using the
//! current [`RoutingTable`]. The transports ([`udp`], [`tcp`]) call it with a
//! reused output buffer; UDP goes through [`respond_udp`], which holds
//! responses to the table's rate limits ([`rate_limit`]). It never locks, never allocates once the buffer has
//! grown to its working size, never logs per query and never panics on
//! network input: malformed queries get FORMERR, and packets without a
//! readable header (or that are responses) are dropped.

pub mod cookie;
pub mod ecs;
pub mod notify;
pub mod proxy;
pub mod rate_limit;
pub mod respond;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use respond::{respond, respond_tcp, respond_tls, respond_udp};

use crate::metrics::{DecisionSlot, ZoneSlot};

/// A response code as dig and the RFCs write it (`REFUSED`), or `RCODEn`
/// for one without a name here.
pub fn rcode_text(rcode: u16) -> String {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    match rcode {
        16 => "BADVERS".to_owned(),
        _ => NAMES
            .get(usize::from(rcode))
            .map_or_else(|| format!("RCODE{rcode}"), |name| (*name).to_owned()),
    }
}

/// How the query arrived; it decides the size limit and ANY handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: 512 bytes without EDNS, else the requester's payload size.
    Udp,
    /// TCP: up to 65535 bytes, never truncated.
    Tcp,
    /// DNS over TLS (RFC 7858): TCP's rules, and responses padded when the
    /// query asks (RFC 7830, RFC 8467).
    Tls,
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
        /// The counter of the zone the answer came from; `None` when it
        /// came from no zone of ours (REFUSED, malformed queries).
        zone: Option<ZoneSlot>,
    },
    /// A response over its rate limit (UDP only): sent truncated, sent
    /// whole because the client is exempt, or sent whole in a dry run, or
    /// not sent at all.
    OverLimit {
        /// The response code of the response it would have been.
        rcode: u16,
        /// As for [`Outcome::Reply`]; `None` when no answer was sent.
        decision: Option<DecisionSlot>,
        /// As for [`Outcome::Reply`]; `None` when no answer was sent.
        zone: Option<ZoneSlot>,
        /// What became of it.
        action: OverLimit,
    },
    /// Nothing to send (no readable header, or the packet was a response).
    Drop,
}

impl Outcome {
    /// The zone counter the response counts under, if any.
    pub fn zone(self) -> Option<ZoneSlot> {
        match self {
            Outcome::Reply { zone, .. } | Outcome::OverLimit { zone, .. } => zone,
            Outcome::Drop => None,
        }
    }

    /// Whether a response is in the output buffer to be sent.
    #[inline]
    pub fn is_sent(self) -> bool {
        match self {
            Outcome::Reply { .. } => true,
            Outcome::OverLimit { action, .. } => action != OverLimit::Dropped,
            Outcome::Drop => false,
        }
    }
}

/// What became of a response over its rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// Not sent.
    Dropped,
    /// Sent truncated (TC, no records), so a real client retries over TCP.
    Slipped,
    /// Sent whole: the client is in `rate_limit.exempt` or showed a valid
    /// server cookie.
    Exempt,
    /// Sent whole: `rate_limit.dry_run`.
    DryRun,
}

impl OverLimit {
    /// Every action, in the order metrics list them.
    pub const ALL: [OverLimit; 4] = [
        OverLimit::Dropped,
        OverLimit::Slipped,
        OverLimit::Exempt,
        OverLimit::DryRun,
    ];

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            OverLimit::Dropped => "dropped",
            OverLimit::Slipped => "slipped",
            OverLimit::Exempt => "exempt",
            OverLimit::DryRun => "dry_run",
        }
    }
}
