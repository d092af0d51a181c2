//! A small MaxMind DB (`.mmdb`) writer: networks and their records in, a
//! file any MaxMind DB reader opens out.
//!
//! It exists so that Steer can ship a sample database built from a readable
//! CSV (`steer geoip build`) and so that tests can make exactly the database
//! they need instead of depending on a downloaded one. It follows the MaxMind
//! DB format 2.0: a binary search tree over the address bits (IPv6, with the
//! IPv4 space at `::/96`, or IPv4 only), a 16-byte zero separator, the data
//! section, then the metadata after the `\xAB\xCD\xEFMaxMind.com` marker.
//!
//! Choices, all within the format:
//!
//! - A more specific network wins over a covering one whatever the order of
//!   insertion (networks are inserted shortest prefix first, so a /24 splits
//!   the /16 around it); the same network inserted twice keeps the last
//!   record.
//! - Networks are never merged, so a reader reports exactly the prefix
//!   lengths that were inserted (or longer ones, where a more specific
//!   network splits a covering one).
//! - Identical records are stored once and shared by every network that has
//!   them, as MaxMind's writer does; a reader can cache by data offset.
//! - In an IPv6 database `::ffff:0:0/96` (IPv4-mapped) and `2002::/16`
//!   (6to4) point at the IPv4 subtree by default, as MaxMind's writer does,
//!   so a mapped or 6to4 address finds its IPv4 record. These aliases take
//!   precedence over anything inserted inside those two networks.
//! - The record size is the smallest of 24, 28 and 32 bits that holds the
//!   largest pointer, unless one is asked for.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;

/// The 14 bytes that start the metadata section.
pub const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// Zero bytes between the search tree and the data section.
const SEPARATOR_LEN: usize = 16;

/// Largest size a control byte can express: 65,821 + 2^24 − 1.
const MAX_SIZE: usize = 65_821 + (1 << 24) - 1;

/// One value of the data section.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A UTF-8 string (type 2).
    String(String),
    /// An IEEE 754 double (type 3).
    Double(f64),
    /// Raw bytes (type 4).
    Bytes(Vec<u8>),
    /// Type 5.
    Uint16(u16),
    /// Type 6.
    Uint32(u32),
    /// A map with string keys, written in the given order (type 7).
    Map(Vec<(String, Value)>),
    /// Type 8.
    Int32(i32),
    /// Type 9.
    Uint64(u64),
    /// An array (type 11).
    Array(Vec<Value>),
    /// Type 14.
    Boolean(bool),
    /// An IEEE 754 single-precision float (type 15).
    Float(f32),
}

impl Value {
    /// A map from `(key, value)` pairs, in order.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect(),
        )
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::String(text)
    }
}

impl From<f64> for Value {
    fn from(number: f64) -> Value {
        Value::Double(number)
    }
}

impl From<u32> for Value {
    fn from(number: u32) -> Value {
        Value::Uint32(number)
    }
}

/// Which addresses the database holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4 only (`ip_version` 4): a 32-level tree.
    V4,
    /// IPv6, with IPv4 at `::/96` (`ip_version` 6): a 128-level tree.
    V6,
}

/// Bits per search-tree record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordSize {
    /// 24 bits: up to 16,777,216 nodes plus data.
    Bits24,
    /// 28 bits.
    Bits28,
    /// 32 bits.
    Bits32,
}

impl RecordSize {
    fn bits(self) -> u32 {
        match self {
            RecordSize::Bits24 => 24,
            RecordSize::Bits28 => 28,
            RecordSize::Bits32 => 32,
        }
    }
}

/// Why a database cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    /// The prefix is longer than the address.
    #[error("{address}/{prefix_len}: prefix length is longer than the address")]
    PrefixTooLong {
        /// The network address.
        address: IpAddr,
        /// The prefix length given.
        prefix_len: u8,
    },
    /// Bits beyond the prefix are set (`10.0.0.1/24`).
    #[error("{address}/{prefix_len}: host bits are set beyond the prefix")]
    HostBits {
        /// The network address.
        address: IpAddr,
        /// The prefix length given.
        prefix_len: u8,
    },
    /// An IPv6 network for an IPv4-only database.
    #[error("{address}/{prefix_len}: an IPv6 network cannot go in an IPv4-only database")]
    Ipv6InIpv4Database {
        /// The network address.
        address: IpAddr,
        /// The prefix length given.
        prefix_len: u8,
    },
    /// A string, byte string, map or array too long for the format.
    #[error("a value of {0} bytes or entries is too large for the MaxMind DB format")]
    ValueTooLarge(usize),
    /// The tree and data section do not fit in the chosen record size.
    #[error(
        "the database needs pointers of {needed} bits, more than the {bits}-bit records asked for"
    )]
    TooLarge {
        /// Bits the largest pointer needs.
        needed: u32,
        /// The record size asked for.
        bits: u32,
    },
}

/// One side of a search-tree node, while the tree is being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    /// No data for this network.
    Empty,
    /// Another node (index into the arena).
    Node(usize),
    /// A record (index into the distinct records).
    Data(usize),
    /// The IPv4 subtree, whatever it turns out to be.
    Ipv4Alias,
}

/// Builds a MaxMind DB in memory.
#[derive(Clone, Debug)]
pub struct DatabaseWriter {
    database_type: String,
    descriptions: Vec<(String, String)>,
    languages: Vec<String>,
    build_epoch: u64,
    ip_version: IpVersion,
    record_size: Option<RecordSize>,
    alias_ipv4: bool,
    /// `(network bits, prefix length, record)` in tree form: IPv4 networks
    /// of an IPv6 database are already at `::/96`.
    networks: Vec<(u128, u8, Value)>,
}

impl DatabaseWriter {
    /// An empty IPv6 database of type `database_type` (`"GeoLite2-City"`),
    /// built now.
    pub fn new(database_type: impl Into<String>) -> DatabaseWriter {
        let build_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        DatabaseWriter {
            database_type: database_type.into(),
            descriptions: Vec::new(),
            languages: Vec::new(),
            build_epoch,
            ip_version: IpVersion::V6,
            record_size: None,
            alias_ipv4: true,
            networks: Vec::new(),
        }
    }

    /// Adds a description in `language` (`"en"`).
    pub fn description(&mut self, language: &str, text: &str) -> &mut DatabaseWriter {
        self.descriptions
            .push((language.to_owned(), text.to_owned()));
        self
    }

    /// Sets the locales the records' names are in (metadata `languages`).
    pub fn languages(&mut self, languages: &[&str]) -> &mut DatabaseWriter {
        self.languages = languages
            .iter()
            .map(|language| (*language).to_owned())
            .collect();
        self
    }

    /// Sets the build time in Unix seconds (default: now).
    pub fn build_epoch(&mut self, epoch: u64) -> &mut DatabaseWriter {
        self.build_epoch = epoch;
        self
    }

    /// Makes an IPv4-only or an IPv6 database (default IPv6). Set it before
    /// inserting: networks already inserted keep their IPv6 form.
    pub fn ip_version(&mut self, version: IpVersion) -> &mut DatabaseWriter {
        self.ip_version = version;
        self
    }

    /// Forces a record size instead of the smallest that fits.
    pub fn record_size(&mut self, size: RecordSize) -> &mut DatabaseWriter {
        self.record_size = Some(size);
        self
    }

    /// Whether `::ffff:0:0/96` and `2002::/16` point at the IPv4 subtree
    /// (default true; IPv6 databases only).
    pub fn alias_ipv4(&mut self, alias: bool) -> &mut DatabaseWriter {
        self.alias_ipv4 = alias;
        self
    }

    /// Adds a network and its record. IPv4 networks go to `::/96` in an IPv6
    /// database.
    pub fn insert(
        &mut self,
        address: IpAddr,
        prefix_len: u8,
        record: Value,
    ) -> Result<(), WriteError> {
        let (bits, width) = match (address, self.ip_version) {
            (IpAddr::V4(v4), IpVersion::V4) => (u128::from(u32::from(v4)), 32),
            (IpAddr::V4(v4), IpVersion::V6) => (u128::from(u32::from(v4)), 32),
            (IpAddr::V6(v6), IpVersion::V6) => (u128::from(v6), 128),
            (IpAddr::V6(_), IpVersion::V4) => {
                return Err(WriteError::Ipv6InIpv4Database {
                    address,
                    prefix_len,
                });
            }
        };
        if u32::from(prefix_len) > width {
            return Err(WriteError::PrefixTooLong {
                address,
                prefix_len,
            });
        }
        if bits & host_mask(u32::from(prefix_len), width) != 0 {
            return Err(WriteError::HostBits {
                address,
                prefix_len,
            });
        }
        // In an IPv6 tree an IPv4 network is 96 bits deeper.
        let tree_prefix = match (address, self.ip_version) {
            (IpAddr::V4(_), IpVersion::V6) => prefix_len + 96,
            _ => prefix_len,
        };
        self.networks.push((bits, tree_prefix, record));
        Ok(())
    }

    /// The finished database.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        let width = match self.ip_version {
            IpVersion::V4 => 32,
            IpVersion::V6 => 128,
        };

        // Distinct records, each encoded once.
        let mut data = Vec::new();
        let mut record_offsets: Vec<usize> = Vec::new();
        let mut offset_of_encoding: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut leaves = Vec::with_capacity(self.networks.len());
        for (_, _, record) in &self.networks {
            let mut encoded = Vec::new();
            encode(record, &mut encoded)?;
            let next_index = record_offsets.len();
            let index = *offset_of_encoding
                .entry(encoded)
                .or_insert_with_key(|encoded| {
                    record_offsets.push(data.len());
                    data.extend_from_slice(encoded);
                    next_index
                });
            leaves.push(index);
        }

        let mut tree = Tree::new();
        // Shortest prefixes first so that more specific networks split the
        // ones around them; the sort is stable, so a repeated network keeps
        // its last record.
        let mut order: Vec<usize> = (0..self.networks.len()).collect();
        order.sort_by_key(|&index| self.networks[index].1);
        for index in order {
            let (bits, prefix_len, _) = &self.networks[index];
            tree.insert(
                *bits,
                u32::from(*prefix_len),
                width,
                Child::Data(leaves[index]),
            );
        }
        if self.ip_version == IpVersion::V6 && self.alias_ipv4 {
            tree.insert(0xffff_u128 << 32, 96, width, Child::Ipv4Alias);
            tree.insert(0x2002_u128 << 112, 16, width, Child::Ipv4Alias);
        }

        let numbered = tree.number();
        let node_count = numbered.len();
        let largest_pointer = node_count + SEPARATOR_LEN + data.len();
        let needed = usize::BITS - largest_pointer.leading_zeros();
        let record_size = match self.record_size {
            Some(size) if needed > size.bits() => {
                return Err(WriteError::TooLarge {
                    needed,
                    bits: size.bits(),
                });
            }
            Some(size) => size,
            None if needed <= 24 => RecordSize::Bits24,
            None if needed <= 28 => RecordSize::Bits28,
            None if needed <= 32 => RecordSize::Bits32,
            None => return Err(WriteError::TooLarge { needed, bits: 32 }),
        };

        // Where the IPv4 subtree starts: follow 96 zero bits from the root.
        let ipv4_root = match self.ip_version {
            IpVersion::V6 => tree.child_at(0, 96, width),
            IpVersion::V4 => Child::Node(0),
        };
        let position: HashMap<usize, usize> = numbered
            .iter()
            .enumerate()
            .map(|(number, &node)| (node, number))
            .collect();
        let record_value = |child: Child| -> u32 {
            let resolved = if child == Child::Ipv4Alias {
                ipv4_root
            } else {
                child
            };
            let value = match resolved {
                Child::Empty | Child::Ipv4Alias => node_count,
                Child::Node(node) => position[&node],
                Child::Data(index) => node_count + SEPARATOR_LEN + record_offsets[index],
            };
            // Checked above: every value fits the record size, hence u32.
            u32::try_from(value).unwrap_or(u32::MAX)
        };

        let mut out = Vec::new();
        for &node in &numbered {
            let [left, right] = tree.nodes[node];
            write_node(
                &mut out,
                record_size,
                record_value(left),
                record_value(right),
            );
        }
        out.extend_from_slice(&[0; SEPARATOR_LEN]);
        out.extend_from_slice(&data);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = Value::map([
            ("binary_format_major_version", Value::Uint16(2)),
            ("binary_format_minor_version", Value::Uint16(0)),
            ("build_epoch", Value::Uint64(self.build_epoch)),
            ("database_type", Value::String(self.database_type.clone())),
            (
                "description",
                Value::map(
                    self.descriptions
                        .iter()
                        .map(|(language, text)| (language.clone(), Value::String(text.clone()))),
                ),
            ),
            (
                "ip_version",
                Value::Uint16(match self.ip_version {
                    IpVersion::V4 => 4,
                    IpVersion::V6 => 6,
                }),
            ),
            (
                "languages",
                Value::Array(self.languages.iter().cloned().map(Value::String).collect()),
            ),
            (
                "node_count",
                Value::Uint32(u32::try_from(node_count).unwrap_or(u32::MAX)),
            ),
            (
                "record_size",
                Value::Uint16(match record_size {
                    RecordSize::Bits24 => 24,
                    RecordSize::Bits28 => 28,
                    RecordSize::Bits32 => 32,
                }),
            ),
        ]);
        encode(&metadata, &mut out)?;
        Ok(out)
    }

    /// Writes the database to `path` through a temporary file renamed into
    /// place, so that a server that has the old file memory-mapped keeps
    /// reading the old bytes instead of crashing on a file changing under it.
    pub fn write_file(&self, path: &Path) -> Result<(), String> {
        let bytes = self
            .to_bytes()
            .map_err(|error| format!("{}: {error}", path.display()))?;
        crate::durable::replace(path, &bytes)
            .map_err(|error| format!("{}: {error}", path.display()))
    }
}

/// The bits of an address below a prefix of `prefix_len` in a `width`-bit
/// address space.
fn host_mask(prefix_len: u32, width: u32) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1_u128 << width) - 1
    };
    if prefix_len >= width {
        0
    } else {
        all >> prefix_len
    }
}

/// The search tree under construction: an arena of nodes, the root first.
struct Tree {
    nodes: Vec<[Child; 2]>,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            nodes: vec![[Child::Empty, Child::Empty]],
        }
    }

    /// Sets the network `bits/prefix_len` to `leaf`, replacing whatever was
    /// below it and splitting a leaf above it.
    fn insert(&mut self, bits: u128, prefix_len: u32, width: u32, leaf: Child) {
        // The root is always a node: a /0 sets both halves.
        if prefix_len == 0 {
            self.nodes[0] = [leaf, leaf];
            return;
        }
        let mut node = 0;
        for depth in 0..prefix_len - 1 {
            let side = bit_at(bits, depth, width);
            node = match self.nodes[node][side] {
                Child::Node(next) => next,
                covering => {
                    // A leaf above the new network: both halves keep it,
                    // and the walk goes on inside the half that holds the
                    // network.
                    self.nodes.push([covering, covering]);
                    let next = self.nodes.len() - 1;
                    self.nodes[node][side] = Child::Node(next);
                    next
                }
            };
        }
        self.nodes[node][bit_at(bits, prefix_len - 1, width)] = leaf;
    }

    /// What the tree holds at `bits/depth`, following nodes from the root.
    fn child_at(&self, bits: u128, depth: u32, width: u32) -> Child {
        let mut node = 0;
        for level in 0..depth {
            match self.nodes[node][bit_at(bits, level, width)] {
                Child::Node(next) => node = next,
                leaf => return leaf,
            }
        }
        Child::Node(node)
    }

    /// Nodes reachable from the root in breadth-first order, the root first:
    /// the order is the node numbering of the file. Nodes cut off by a later
    /// insert are left out.
    fn number(&self) -> Vec<usize> {
        let mut order = Vec::new();
        let mut seen = vec![false; self.nodes.len()];
        let mut queue = VecDeque::from([0]);
        seen[0] = true;
        while let Some(node) = queue.pop_front() {
            order.push(node);
            for child in self.nodes[node] {
                if let Child::Node(next) = child
                    && !seen[next]
                {
                    seen[next] = true;
                    queue.push_back(next);
                }
            }
        }
        order
    }
}

/// Bit `depth` (0 = most significant) of a `width`-bit address, as a child
/// index.
fn bit_at(bits: u128, depth: u32, width: u32) -> usize {
    usize::from((bits >> (width - 1 - depth)) & 1 == 1)
}

/// Appends one node: two records of `size` bits, big-endian; with 28-bit
/// records the middle byte holds the high nibbles of both.
fn write_node(out: &mut Vec<u8>, size: RecordSize, left: u32, right: u32) {
    match size {
        RecordSize::Bits24 => {
            out.extend_from_slice(&left.to_be_bytes()[1..]);
            out.extend_from_slice(&right.to_be_bytes()[1..]);
        }
        RecordSize::Bits28 => {
            out.extend_from_slice(&left.to_be_bytes()[1..]);
            let high_nibbles = (((left >> 24) & 0x0f) << 4) | ((right >> 24) & 0x0f);
            out.push(u8::try_from(high_nibbles).unwrap_or(0));
            out.extend_from_slice(&right.to_be_bytes()[1..]);
        }
        RecordSize::Bits32 => {
            out.extend_from_slice(&left.to_be_bytes());
            out.extend_from_slice(&right.to_be_bytes());
        }
    }
}

/// Appends the control byte(s) of a value of `type_number` and `size`.
fn control(out: &mut Vec<u8>, type_number: u8, size: usize) -> Result<(), WriteError> {
    let (size_field, extra): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, Vec::new()),
        29..285 => (29, vec![(size - 29) as u8]),
        285..65_821 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        65_821..=MAX_SIZE => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
        _ => return Err(WriteError::ValueTooLarge(size)),
    };
    if type_number <= 7 {
        out.push((type_number << 5) | size_field);
    } else {
        // Extended types: type bits 0, then the type minus 7 in the next byte.
        out.push(size_field);
        out.push(type_number - 7);
    }
    out.extend_from_slice(&extra);
    Ok(())
}

/// Big-endian bytes without leading zeros (zero has none).
fn minimal_be(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[first..]
}

/// Appends the encoding of `value`.
fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), WriteError> {
    match value {
        Value::String(text) => {
            control(out, 2, text.len())?;
            out.extend_from_slice(text.as_bytes());
        }
        Value::Double(number) => {
            control(out, 3, 8)?;
            out.extend_from_slice(&number.to_be_bytes());
        }
        Value::Bytes(bytes) => {
            control(out, 4, bytes.len())?;
            out.extend_from_slice(bytes);
        }
        Value::Uint16(number) => {
            let bytes = number.to_be_bytes();
            let bytes = minimal_be(&bytes);
            control(out, 5, bytes.len())?;
            out.extend_from_slice(bytes);
        }
        Value::Uint32(number) => {
            let bytes = number.to_be_bytes();
            let bytes = minimal_be(&bytes);
            control(out, 6, bytes.len())?;
            out.extend_from_slice(bytes);
        }
        Value::Map(pairs) => {
            control(out, 7, pairs.len())?;
            for (key, item) in pairs {
                control(out, 2, key.len())?;
                out.extend_from_slice(key.as_bytes());
                encode(item, out)?;
            }
        }
        Value::Int32(number) => {
            // Readers zero-extend short int32 values, so a negative one
            // needs all four bytes.
            let bytes = number.to_be_bytes();
            let bytes = if *number < 0 {
                &bytes[..]
            } else {
                minimal_be(&bytes)
            };
            control(out, 8, bytes.len())?;
            out.extend_from_slice(bytes);
        }
        Value::Uint64(number) => {
            let bytes = number.to_be_bytes();
            let bytes = minimal_be(&bytes);
            control(out, 9, bytes.len())?;
            out.extend_from_slice(bytes);
        }
        Value::Array(items) => {
            control(out, 11, items.len())?;
            for item in items {
                encode(item, out)?;
            }
        }
        Value::Boolean(flag) => control(out, 14, usize::from(*flag))?,
        Value::Float(number) => {
            control(out, 15, 4)?;
            out.extend_from_slice(&number.to_be_bytes());
        }
    }
    Ok(())
}
