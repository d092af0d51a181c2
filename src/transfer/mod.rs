//! Zone transfers in: Steer as a secondary of an operator's primary server.
//!
//! Control plane only. A secondary zone's data comes from its primaries by
//! AXFR (RFC 5936) over TCP, optionally authenticated with TSIG (RFC 8945).

pub mod tsig;
