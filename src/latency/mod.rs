//! Latency measurements and the model latency steering reads: round-trip
//! times from a matrix file, from real-user measurements posted to the admin
//! API and from active probes are folded into one bounded in-memory
//! [`model::LatencyModel`], keyed by client network and site, which the control
//! plane compiles into the routing table on a timer, and which is saved to a
//! state file so that a restart keeps it. Nothing here runs on the data
//! plane: a query never reads the model, only what was compiled from it.

pub mod active;
pub mod engine;
pub mod explain;
pub mod journal;
pub mod matrix;
pub mod model;
pub mod sharing;
pub mod snapshot;
pub mod state_file;
