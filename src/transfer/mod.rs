//! Zone transfers, in and out.
//!
//! In ([`secondaries`], [`client`]): Steer as a secondary of an operator's
//! primary. A secondary zone's data comes from its primaries by AXFR (RFC
//! 5936) over TCP, optionally authenticated with TSIG (RFC 8945); the zone
//! is kept as a zone file in the secondary directory, so a node restarts
//! and serves without asking anyone, and every transferred zone is
//! compiled into the routing table like a zone from `zones/`.
//!
//! Out ([`outbound`]): Steer as the primary of other servers, answering
//! their AXFR from bytes encoded at compile time and sending them NOTIFY.
//!
//! Control plane, but for two rare requests on the data plane: a NOTIFY
//! fires a trigger, and an AXFR over TCP streams prepared bytes.

pub mod catalog;
pub mod client;
pub mod journal;
pub mod outbound;
pub mod secondaries;
pub mod tsig;

pub use secondaries::{
    NotifyOutStatus, NotifyTarget, NotifyTargets, Secondaries, SecondaryStatus, Trigger, load_kept,
};
