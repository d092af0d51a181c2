//! Health probes: checking endpoints over the network, on the control plane.
//!
//! [`check`] runs one check of one target (a TCP connect, or an HTTP or
//! HTTPS request) and says whether it passed, how long it took and why.
//! Nothing here touches the data plane: results become endpoint state only
//! through the control task, so a slow or hostile endpoint can delay a
//! probe, never a query.

pub mod check;
mod dns;
pub mod monitor;
