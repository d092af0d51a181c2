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
//! A [`SourceKey`] names each source (`network 198.51.100.0/24` as text)
//! and keys the margin's memory: the site a source chose at the previous
//! compile is looked up by it. It is a small value, not text: a compile
//! of a million networks looks up and records a million of them.
//!
//! The prefix sources' RTTs live in one array, each source holding its
//! range: a snapshot of a million networks is then two allocations, not a
//! million, and a third of the memory (a compile makes one every interval).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::geo::Location;

use super::matrix::{Family, LatencyMatrix};

/// RTTs of one source: (site index, milliseconds).
pub type SiteRtts = Vec<(usize, f64)>;

/// The site each source chose at one compile, by source. Fx: a compile of
/// a million networks writes a million keys and reads a million more.
pub type Choices = FxHashMap<SourceKey, usize>;

/// Names a source of RTTs; shown as text (`network 198.51.100.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// A client network measured by real users or probes.
    Network(IpAddr, u8),
    /// A prefix row of the matrix.
    MatrixPrefix(IpAddr, u8),
    /// An ASN row of the matrix.
    MatrixAsn(u32),
    /// A country row of the matrix (two upper-case letters).
    MatrixCountry([u8; 2]),
    /// This node's own RTT to each site.
    Node,
}

impl SourceKey {
    /// The key of country `code`'s matrix rows; `None` for a code the
    /// matrix cannot hold (it takes two letters only).
    pub fn country(code: &str) -> Option<SourceKey> {
        code.as_bytes()
            .try_into()
            .ok()
            .map(SourceKey::MatrixCountry)
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::Network(address, length) => write!(formatter, "network {address}/{length}"),
            SourceKey::MatrixPrefix(address, length) => {
                write!(formatter, "matrix {address}/{length}")
            }
            SourceKey::MatrixAsn(asn) => write!(formatter, "matrix AS{asn}"),
            SourceKey::MatrixCountry(code) => write!(
                formatter,
                "matrix country {}{}",
                char::from(code[0]),
                char::from(code[1])
            ),
            SourceKey::Node => formatter.write_str("this node"),
        }
    }
}

/// One prefix with RTT data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrefixSource {
    /// [`SourceKey::Network`] (measured) or [`SourceKey::MatrixPrefix`].
    pub key: SourceKey,
    /// Where its RTTs start in [`LatencySnapshot::rtts`], and how many.
    rtts: (u32, u32),
}

impl PrefixSource {
    /// The network: address (bits beyond the length are zero) and length.
    pub fn network(&self) -> (IpAddr, u8) {
        match self.key {
            SourceKey::Network(address, length) | SourceKey::MatrixPrefix(address, length) => {
                (address, length)
            }
            // Only prefix keys are made into prefix sources.
            _ => (IpAddr::from([0u8; 4]), 0),
        }
    }
}

/// Everything the `latency` step can know, as of one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Prefix sources, shortest prefix first and, at equal length, matrix
    /// rows before measurements, so that inserting them in order leaves the
    /// most specific (and, for a client's own network, the measured) one.
    pub prefixes: Vec<PrefixSource>,
    /// The prefix sources' RTTs, each source's in one run.
    rtts: Vec<(usize, f64)>,
    /// Matrix rows by ASN.
    pub asn: HashMap<u32, SiteRtts>,
    /// Matrix rows by country code.
    pub country: HashMap<String, SiteRtts>,
    /// This node's own RTT to each site (active measurements).
    pub node: SiteRtts,
    /// Per policy label: the site each source chose at the previous
    /// compile (shared with the served table, not copied).
    pub previous: HashMap<String, Arc<Choices>>,
}

impl LatencySnapshot {
    /// The matrix's rows as sources; measured networks are added with
    /// [`LatencySnapshot::add_measured`], then [`LatencySnapshot::finish`].
    pub fn from_matrix(matrix: &LatencyMatrix) -> Self {
        let mut snapshot = Self::default();
        for family in [Family::V4, Family::V6] {
            for (network, rows) in matrix.prefixes(family) {
                snapshot.push_prefix(
                    SourceKey::MatrixPrefix(network.address, network.prefix_len),
                    rows.iter().map(|row| (row.site, row.rtt_ms)),
                );
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

    /// Adds a client network measured by real users or probes, unless
    /// `rtts` is empty.
    pub fn add_measured(
        &mut self,
        address: IpAddr,
        prefix_len: u8,
        rtts: impl IntoIterator<Item = (usize, f64)>,
    ) {
        self.push_prefix(SourceKey::Network(address, prefix_len), rtts);
    }

    /// Appends a prefix source and its RTTs, unless there are none.
    fn push_prefix(&mut self, key: SourceKey, rtts: impl IntoIterator<Item = (usize, f64)>) {
        let start = self.rtts.len();
        self.rtts.extend(rtts);
        let count = self.rtts.len() - start;
        if count > 0 {
            // The model is capped far below 2^32 networks x sites.
            let range = (
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(count).unwrap_or(u32::MAX),
            );
            self.prefixes.push(PrefixSource { key, rtts: range });
        }
    }

    /// The RTTs of `source`, one of this snapshot's prefix sources.
    pub fn rtts(&self, source: &PrefixSource) -> &[(usize, f64)] {
        let (start, count) = (source.rtts.0 as usize, source.rtts.1 as usize);
        self.rtts.get(start..start + count).unwrap_or(&[])
    }

    /// Orders the prefix sources shortest first, then by address (so that a
    /// million inserts into the prefix trie walk it in order instead of
    /// missing the cache at every level); for the same network the
    /// matrix's row comes before the measurement, which is inserted last
    /// and wins.
    pub fn finish(&mut self) {
        // Unstable but with the tie broken by kind (matrix first), which is
        // all the stability this order needs; a million sources sort in a
        // fraction of the stable sort's time.
        self.prefixes.sort_unstable_by_key(|source| {
            let (address, length) = source.network();
            let (family, bits) = match address {
                IpAddr::V4(address) => (4u8, u128::from(address.to_bits())),
                IpAddr::V6(address) => (6u8, address.to_bits()),
            };
            let measured = matches!(source.key, SourceKey::Network(..));
            (length, family, bits, measured)
        });
    }

    /// The sources for a client whose most specific prefix source is
    /// `prefix` (an index into `prefixes`) and whose location is
    /// `location`, most specific first.
    pub fn sources<'a>(
        &'a self,
        prefix: Option<usize>,
        location: &Location,
    ) -> Vec<(SourceKey, &'a [(usize, f64)])> {
        let mut sources = Vec::new();
        if let Some(source) = prefix.and_then(|index| self.prefixes.get(index)) {
            sources.push((source.key, self.rtts(source)));
        }
        if let Some((asn, rtts)) = location
            .asn
            .and_then(|asn| self.asn.get(&asn).map(|rtts| (asn, rtts)))
        {
            sources.push((SourceKey::MatrixAsn(asn), rtts.as_slice()));
        }
        if let Some((key, rtts)) = location
            .country
            .as_ref()
            .and_then(|country| Some((SourceKey::country(country)?, self.country.get(country)?)))
        {
            sources.push((key, rtts.as_slice()));
        }
        if !self.node.is_empty() {
            sources.push((SourceKey::Node, self.node.as_slice()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_the_labels_explain_shows() {
        let address = |text: &str| text.parse::<IpAddr>().expect("address");
        let shown = [
            SourceKey::Network(address("198.51.100.0"), 24),
            SourceKey::MatrixPrefix(address("2001:db8::"), 32),
            SourceKey::MatrixAsn(3320),
            SourceKey::country("DE").expect("two letters"),
            SourceKey::Node,
        ]
        .map(|key| key.to_string());
        assert_eq!(
            shown,
            [
                "network 198.51.100.0/24",
                "matrix 2001:db8::/32",
                "matrix AS3320",
                "matrix country DE",
                "this node",
            ]
        );
        assert_eq!(SourceKey::country("DEU"), None);
        assert_eq!(SourceKey::country(""), None);
    }

    #[test]
    fn sources_come_most_specific_first_with_their_keys() {
        let mut snapshot = LatencySnapshot::default();
        snapshot.add_measured("198.51.100.0".parse().expect("address"), 24, [(0, 5.0)]);
        snapshot.asn.insert(3320, vec![(1, 20.0)]);
        snapshot.country.insert("DE".to_owned(), vec![(1, 30.0)]);
        snapshot.node = vec![(0, 40.0)];
        snapshot.finish();
        let location = Location {
            asn: Some(3320),
            country: Some("DE".to_owned()),
            ..Location::default()
        };
        let keys: Vec<SourceKey> = snapshot
            .sources(Some(0), &location)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            keys,
            [
                SourceKey::Network("198.51.100.0".parse().expect("address"), 24),
                SourceKey::MatrixAsn(3320),
                SourceKey::MatrixCountry(*b"DE"),
                SourceKey::Node,
            ]
        );
    }
}
