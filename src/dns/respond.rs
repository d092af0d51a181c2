//! Query → response, on bytes.

use std::net::IpAddr;

use super::{Outcome, Transport};
use crate::table::RoutingTable;

/// Answers one query packet into `out` (cleared first). `source` is the
/// packet's source address (the client location when no ECS is present).
pub fn respond(
    _table: &RoutingTable,
    _packet: &[u8],
    _transport: Transport,
    _source: IpAddr,
    out: &mut Vec<u8>,
) -> Outcome {
    out.clear();
    Outcome::Drop
}
