//! The routing table: every zone compiled into pre-encoded answers.
//!
//! Built on the control plane by [`RoutingTable::compile`], published with
//! `arc-swap`, read by the data plane. Immutable once built.

use std::path::PathBuf;

use crate::zone::Zone;

/// One zone as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSummary {
    /// Apex, absolute, e.g. `example.test.`.
    pub name: String,
    /// SOA serial.
    pub serial: u32,
    /// Number of records loaded from the file.
    pub records: usize,
    /// The zone file.
    pub file: PathBuf,
}

/// The compiled, immutable answer table. See the module docs.
pub struct RoutingTable {
    generation: u64,
    zones: Vec<ZoneSummary>,
}

impl RoutingTable {
    /// A table with no zones: every query is REFUSED. Published before the
    /// first compile succeeds only in tests; `serve` refuses to start without
    /// a good first table.
    pub fn empty() -> Self {
        Self { generation: 0, zones: Vec::new() }
    }

    /// Compiles validated zones into a table stamped with `generation`.
    pub fn compile(zones: &[Zone], generation: u64) -> Result<Self, Vec<String>> {
        let summaries = zones
            .iter()
            .map(|zone| ZoneSummary {
                name: zone.origin.to_ascii(),
                serial: zone.serial,
                records: zone.records.len(),
                file: zone.file.clone(),
            })
            .collect();
        Ok(Self { generation, zones: summaries })
    }

    /// The generation this table was compiled as (1 for the first load).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The zones in this table, sorted by name.
    pub fn zones(&self) -> &[ZoneSummary] {
        &self.zones
    }
}
