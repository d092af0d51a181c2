//! Latency data frozen for one compile: what the `latency` step reads.
//!
//! The compiler needs every source of RTTs in a form it can split the
//! address space by, so the model's measured networks and the matrix's
//! prefixes become one list of prefix sources (ordered so that inserting
//! them in order lets the most specific win), and the matrix's ASN and
//! country rows and this node's own measurements are looked up per client
//! location. The order of sources for one client is the fallback
//! order: its own measured network, then the longest covering matrix
//! prefix, then its ASN, then its country, then this node's RTT to each
//! site, then distance (in [`crate::policy`]).
//!
//! Labels double as the keys of the margin's memory: the site a source
//! chose at the previous compile is looked up by label, so labels name the
//! source (`network 198.51.100.0/24`) and never carry changing numbers.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::geo::Location;

use super::matrix::{Family, LatencyMatrix};

/// RTTs of one source: (site index, milliseconds).
pub type SiteRtts = Vec<(usize, f64)>;

/// One prefix with RTT data.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefixSource {
    /// Network address (bits beyond the length are zero).
    pub address: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `network 198.51.100.0/24` (measured) or `matrix 10.0.0.0/8`.
    pub label: String,
    /// The RTTs.
    pub rtts: SiteRtts,
}

/// Everything the `latency` step can know, as of one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Prefix sources, shortest prefix first and, at equal length, matrix
    /// rows before measurements, so that inserting them in order leaves the
    /// most specific (and, for a client's own network, the measured) one.
    pub prefixes: Vec<PrefixSource>,
    /// Matrix rows by ASN.
    pub asn: HashMap<u32, SiteRtts>,
    /// Matrix rows by country code.
    pub country: HashMap<String, SiteRtts>,
    /// This node's own RTT to each site (active measurements).
    pub node: SiteRtts,
    /// Per policy label: the site each source chose at the previous compile.
    pub previous: HashMap<String, HashMap<String, usize>>,
}

impl LatencySnapshot {
    /// The matrix's rows as sources; measured networks are added with
    /// [`LatencySnapshot::add_measured`], then [`LatencySnapshot::finish`].
    pub fn from_matrix(matrix: &LatencyMatrix) -> Self {
        let mut snapshot = Self::default();
        for family in [Family::V4, Family::V6] {
            for (network, rows) in matrix.prefixes(family) {
                snapshot.prefixes.push(PrefixSource {
                    address: network.address,
                    prefix_len: network.prefix_len,
                    label: format!("matrix {}/{}", network.address, network.prefix_len),
                    rtts: rows.iter().map(|row| (row.site, row.rtt_ms)).collect(),
                });
            }
        }
        for (asn, rows) in matrix.asns() {
            snapshot
                .asn
                .insert(asn, rows.iter().map(|row| (row.site, row.rtt_ms)).collect());
        }
        for (country, rows) in matrix.countries() {
            snapshot.country.insert(
                country.to_owned(),
                rows.iter().map(|row| (row.site, row.rtt_ms)).collect(),
            );
        }
        snapshot
    }

    /// Adds a client network measured by real users or probes.
    pub fn add_measured(&mut self, address: IpAddr, prefix_len: u8, rtts: SiteRtts) {
        self.prefixes.push(PrefixSource {
            address,
            prefix_len,
            label: format!("network {address}/{prefix_len}"),
            rtts,
        });
    }

    /// Orders the prefix sources shortest first, then by address (so that a
    /// million inserts into the prefix trie walk it in order instead of
    /// missing the cache at every level); the sort is stable, so for the
    /// same network the matrix's row (added first) comes before the
    /// measurement, which is inserted last and wins.
    pub fn finish(&mut self) {
        self.prefixes
            .sort_by_key(|source| (source.prefix_len, source.address));
    }

    /// The sources for a client whose most specific prefix source is
    /// `prefix` (an index into `prefixes`) and whose location is
    /// `location`, most specific first.
    pub fn sources<'a>(
        &'a self,
        prefix: Option<usize>,
        location: &Location,
    ) -> Vec<(String, &'a [(usize, f64)])> {
        let mut sources = Vec::new();
        if let Some(source) = prefix.and_then(|index| self.prefixes.get(index)) {
            sources.push((source.label.clone(), source.rtts.as_slice()));
        }
        if let Some((asn, rtts)) = location
            .asn
            .and_then(|asn| self.asn.get(&asn).map(|rtts| (asn, rtts)))
        {
            sources.push((format!("matrix AS{asn}"), rtts.as_slice()));
        }
        if let Some((country, rtts)) = location
            .country
            .as_ref()
            .and_then(|country| self.country.get(country).map(|rtts| (country, rtts)))
        {
            sources.push((format!("matrix country {country}"), rtts.as_slice()));
        }
        if !self.node.is_empty() {
            sources.push(("this node".to_owned(), self.node.as_slice()));
        }
        sources
    }

    /// Whether there is no data at all (the step falls back to distance).
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
            && self.asn.is_empty()
            && self.country.is_empty()
            && self.node.is_empty()
    }
}
