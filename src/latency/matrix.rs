//! The latency matrix file: measured round-trip times from groups of
//! clients to sites, named in `steer.toml` and read again on every reload.
//!
//! It sits on the control plane, beside the config: a reload reads it with
//! [`load`], and the compiler turns it into decisions with the lookups of
//! [`LatencyMatrix`]. Nothing here runs per query; the data plane only sees
//! what was compiled from it.
//!
//! ```text
//! # comments and blank lines are ignored; an optional header line first
//! selector,site,rtt_ms
//! 198.51.100.0/24,fra,23.5
//! 2001:db8::/32,iad,80
//! AS3320,fra,12          # an AS number: AS3320 or as3320
//! DE,fra,15              # an ISO 3166-1 alpha-2 country code, upper case
//! ```
//!
//! Each row has three comma-separated fields (spaces around them are
//! trimmed, and there is no quoting because no field needs it): the client
//! selector, the site id and the round-trip time in milliseconds. `#`
//! starts a comment anywhere on a line.
//!
//! - The selector is a prefix of any length (`/0` to `/32` or `/128`; an
//!   address alone is a single host), an AS number (`AS3320`, any case) or
//!   a two-letter country code in upper case (`DE`). A prefix with bits set
//!   beyond its length is refused, as in the CIDR map files: `10.1.2.3/8`
//!   usually means the length is wrong. A prefix inside the IPv4-mapped
//!   range (`::ffff:0:0/96` and longer) is read as the IPv4 prefix it maps,
//!   because that is how IPv4 clients of a dual-stack socket are located.
//! - The site is one of the site ids of the config.
//! - The RTT is a finite number of milliseconds, more than 0 and at most the
//!   maximum the caller sets: a larger one is a unit mistake (seconds or
//!   microseconds) more often than a real measurement.
//!
//! A selector and site pair may appear once. Matrices are usually generated,
//! so every bad line is reported with its `file:line`, not just the first
//! (up to [`MAX_ERRORS`], then a count of the rest).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::config::steering::{IpNet, parse_asn};

/// Errors reported in full for one file; past this, only how many more.
/// A generator bug can make every line wrong, and ten thousand copies of
/// the same message hide the first, which is the one to read.
pub const MAX_ERRORS: usize = 100;

/// The header a matrix file may start with, compared without case.
const HEADER: [&str; 3] = ["selector", "site", "rtt_ms"];

/// The clients a row measures.
///
/// Ordered prefixes first (IPv4 before IPv6, then by network address, then
/// by length, so a prefix comes just before the longer prefixes inside it),
/// then AS numbers, then country codes: the order of
/// [`LatencyMatrix::rows`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// Clients inside a prefix. The address has no bits set beyond
    /// `prefix_len`, and an IPv4-mapped prefix is stored as IPv4.
    Prefix {
        /// The network address.
        address: IpAddr,
        /// Prefix length in bits: at most 32 for IPv4, 128 for IPv6.
        prefix_len: u8,
    },
    /// Clients in an autonomous system, as the ASN database locates them.
    Asn(u32),
    /// Clients in a country, as the GeoIP database locates them: two
    /// upper-case letters (ISO 3166-1 alpha-2).
    Country(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix {
                address,
                prefix_len,
            } => write!(formatter, "{address}/{prefix_len}"),
            Self::Asn(asn) => write!(formatter, "AS{asn}"),
            Self::Country(code) => formatter.write_str(code),
        }
    }
}

/// One measurement: the RTT from the clients of `selector` to one site.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixRow {
    /// The clients measured.
    pub selector: Selector,
    /// Index of the site in the `sites` slice given to [`parse`] or
    /// [`load`].
    pub site: usize,
    /// Round-trip time in milliseconds: finite, above 0, at most the
    /// maximum given to [`parse`].
    pub rtt_ms: f64,
    /// 1-based line of the file, for `steer explain` and messages.
    pub line: usize,
}

/// Address family, to enumerate the prefixes of one family at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4, including IPv4-mapped IPv6 prefixes.
    V4,
    /// IPv6, without the IPv4-mapped range.
    V6,
}

/// A parsed latency matrix.
///
/// The rows are kept sorted by selector (see [`Selector`]), then by site,
/// so the rows of one selector are adjacent and every lookup is a binary
/// search returning a slice of them. That is all the indexing there is:
/// matrices have thousands of rows, and the compiler asks each question
/// once per reload, not per query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyMatrix {
    /// Private so that the sort order the lookups depend on always holds;
    /// [`LatencyMatrix::from_rows`] builds one from any rows.
    rows: Vec<MatrixRow>,
}

impl LatencyMatrix {
    /// A matrix of `rows`, in any order (they are sorted here). The rows are
    /// not checked: [`parse`] is the way to read untrusted input, and this
    /// is for building matrices in code and tests.
    pub fn from_rows(mut rows: Vec<MatrixRow>) -> Self {
        rows.sort_by(|left, right| {
            left.selector
                .cmp(&right.selector)
                .then(left.site.cmp(&right.site))
        });
        Self { rows }
    }

    /// Every row, sorted by selector then site (`line` gives file order).
    pub fn rows(&self) -> &[MatrixRow] {
        &self.rows
    }

    /// Whether the matrix has no row at all.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows of AS number `asn`, one per site measured, by site.
    pub fn by_asn(&self, asn: u32) -> &[MatrixRow] {
        self.rows_where(|selector| match selector {
            Selector::Prefix { .. } => Ordering::Less,
            Selector::Asn(other) => other.cmp(&asn),
            Selector::Country(_) => Ordering::Greater,
        })
    }

    /// The rows of country `code` (upper case, as the GeoIP database
    /// writes it), one per site measured, by site.
    pub fn by_country(&self, code: &str) -> &[MatrixRow] {
        self.rows_where(|selector| match selector {
            Selector::Prefix { .. } | Selector::Asn(_) => Ordering::Less,
            Selector::Country(other) => other.as_str().cmp(code),
        })
    }

    /// The rows of exactly this prefix (no longer or shorter one), by site.
    /// An IPv4-mapped prefix is looked up as the IPv4 prefix it maps.
    pub fn by_prefix(&self, prefix: IpNet) -> &[MatrixRow] {
        let (address, prefix_len) = unmap(prefix.address, prefix.prefix_len);
        self.rows_where(|selector| match selector {
            Selector::Prefix {
                address: other_address,
                prefix_len: other_len,
            } => (other_address, other_len).cmp(&(&address, &prefix_len)),
            Selector::Asn(_) | Selector::Country(_) => Ordering::Greater,
        })
    }

    /// The longest prefix of the matrix that holds `address`, with its
    /// rows (one per site, by site); `None` when no prefix holds it. An
    /// IPv4-mapped address is looked up as its IPv4 address, so the prefix
    /// returned is then IPv4.
    pub fn longest_match(&self, address: IpAddr) -> Option<(IpNet, &[MatrixRow])> {
        let (address, _) = unmap(address, 128);
        let width = if address.is_ipv4() { 32 } else { 128 };
        // One binary search per length: at most 129 for IPv6, cheap next to
        // building a trie for a file of a few thousand rows.
        (0..=width).rev().find_map(|prefix_len| {
            let prefix = IpNet {
                address: network(address, prefix_len),
                prefix_len,
            };
            let rows = self.by_prefix(prefix);
            (!rows.is_empty()).then_some((prefix, rows))
        })
    }

    /// Every prefix of `family` with its rows (one per site, by site), by
    /// network address then length: a prefix comes before the prefixes
    /// nested in it, which is the order a tree is built in.
    pub fn prefixes(&self, family: Family) -> impl Iterator<Item = (IpNet, &[MatrixRow])> {
        let in_family = |row: &MatrixRow| match row.selector {
            Selector::Prefix { address, .. } => match family {
                Family::V4 => address.is_ipv4(),
                Family::V6 => address.is_ipv6(),
            },
            Selector::Asn(_) | Selector::Country(_) => false,
        };
        // The family's rows are one run: IPv4 prefixes sort before IPv6
        // ones, and every prefix before every ASN and country.
        let start = self.rows.iter().position(in_family).unwrap_or(0);
        let length = self.rows[start..]
            .iter()
            .take_while(|row| in_family(row))
            .count();
        self.rows[start..start + length]
            .chunk_by(|left, right| left.selector == right.selector)
            .filter_map(|rows| match &rows.first()?.selector {
                Selector::Prefix {
                    address,
                    prefix_len,
                } => Some((
                    IpNet {
                        address: *address,
                        prefix_len: *prefix_len,
                    },
                    rows,
                )),
                Selector::Asn(_) | Selector::Country(_) => None,
            })
    }

    /// Every AS number with its rows (one per site, by site), by number.
    pub fn asns(&self) -> impl Iterator<Item = (u32, &[MatrixRow])> {
        self.groups()
            .filter_map(|rows| match &rows.first()?.selector {
                Selector::Asn(asn) => Some((*asn, rows)),
                Selector::Prefix { .. } | Selector::Country(_) => None,
            })
    }

    /// Every country code with its rows (one per site, by site), by code.
    pub fn countries(&self) -> impl Iterator<Item = (&str, &[MatrixRow])> {
        self.groups()
            .filter_map(|rows| match &rows.first()?.selector {
                Selector::Country(code) => Some((code.as_str(), rows)),
                Selector::Prefix { .. } | Selector::Asn(_) => None,
            })
    }

    /// The rows of each selector, in order.
    fn groups(&self) -> impl Iterator<Item = &[MatrixRow]> {
        self.rows
            .chunk_by(|left, right| left.selector == right.selector)
    }

    /// The run of rows whose selector `compare` finds equal; `compare`
    /// orders a selector against the one looked for, as `Ord` does.
    fn rows_where(&self, compare: impl Fn(&Selector) -> Ordering) -> &[MatrixRow] {
        let start = self
            .rows
            .partition_point(|row| compare(&row.selector) == Ordering::Less);
        let end = self
            .rows
            .partition_point(|row| compare(&row.selector) != Ordering::Greater);
        &self.rows[start..end.max(start)]
    }
}

/// Reads the matrix file `file` and parses it (see [`parse`]). A file that
/// cannot be read is one error naming it.
pub fn load(file: &Path, sites: &[String], max_rtt_ms: f64) -> Result<LatencyMatrix, Vec<String>> {
    match std::fs::read_to_string(file) {
        Ok(text) => parse(file, &text, sites, max_rtt_ms),
        Err(error) => Err(vec![format!(
            "{}: cannot read the latency matrix: {error}",
            file.display()
        )]),
    }
}

/// Parses the text of matrix file `file` (named in messages only). `sites`
/// are the site ids of the config; a row's [`MatrixRow::site`] indexes it.
/// `max_rtt_ms` is the largest RTT accepted.
///
/// Returns every error, as `file:line: message`, in line order (at most
/// [`MAX_ERRORS`], then one line saying how many more), or the matrix when
/// there is none. An empty file is an empty matrix.
pub fn parse(
    file: &Path,
    text: &str,
    sites: &[String],
    max_rtt_ms: f64,
) -> Result<LatencyMatrix, Vec<String>> {
    let mut errors = Errors {
        file,
        shown: Vec::new(),
        hidden: 0,
    };
    let mut rows = Vec::new();
    let mut first_line: HashMap<(Selector, usize), usize> = HashMap::new();
    let mut before_rows = true;
    // Files saved by some Windows tools start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        let is_header = fields.len() == HEADER.len()
            && fields
                .iter()
                .zip(HEADER)
                .all(|(field, name)| field.eq_ignore_ascii_case(name));
        let first_content = std::mem::replace(&mut before_rows, false);
        if is_header {
            if !first_content {
                errors.push(
                    line,
                    "the header selector,site,rtt_ms must be the first line".to_string(),
                );
            }
            continue;
        }
        let [selector_text, site_text, rtt_text] = fields[..] else {
            errors.push(
                line,
                format!(
                    "expected 3 fields, selector,site,rtt_ms; found {}",
                    fields.len()
                ),
            );
            continue;
        };
        let selector = parse_selector(selector_text);
        let site = parse_site(site_text, sites);
        let rtt_ms = parse_rtt(rtt_text, max_rtt_ms);
        let (selector, site, rtt_ms) = match (selector, site, rtt_ms) {
            (Ok(selector), Ok(site), Ok(rtt_ms)) => (selector, site, rtt_ms),
            (selector, site, rtt_ms) => {
                // Every bad field of the line at once: a generator bug
                // often breaks more than one column.
                for message in [selector.err(), site.err(), rtt_ms.err()]
                    .into_iter()
                    .flatten()
                {
                    errors.push(line, message);
                }
                continue;
            }
        };
        if let Some(first) = first_line.get(&(selector.clone(), site)) {
            errors.push(
                line,
                format!("duplicate row {selector},{site_text}: first given on line {first}"),
            );
            continue;
        }
        first_line.insert((selector.clone(), site), line);
        rows.push(MatrixRow {
            selector,
            site,
            rtt_ms,
            line,
        });
    }
    if errors.shown.is_empty() {
        Ok(LatencyMatrix::from_rows(rows))
    } else {
        Err(errors.finish())
    }
}

/// Errors of one file, the first [`MAX_ERRORS`] of them formatted.
struct Errors<'file> {
    file: &'file Path,
    shown: Vec<String>,
    hidden: usize,
}

impl Errors<'_> {
    fn push(&mut self, line: usize, message: String) {
        if self.shown.len() < MAX_ERRORS {
            self.shown
                .push(format!("{}:{line}: {message}", self.file.display()));
        } else {
            self.hidden += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.hidden > 0 {
            let plural = if self.hidden == 1 { "" } else { "s" };
            self.shown.push(format!(
                "{}: {} more error{plural} not shown",
                self.file.display(),
                self.hidden
            ));
        }
        self.shown
    }
}

/// Reads a selector; which kind it is follows from its characters, since
/// prefixes have `.` or `:`, countries only letters and ASNs start with AS.
fn parse_selector(text: &str) -> Result<Selector, String> {
    if text.is_empty() {
        return Err(
            "missing selector: expected a prefix (198.51.100.0/24), an AS number \
                    (AS3320) or a country code (DE)"
                .to_string(),
        );
    }
    if text.contains(['.', ':', '/']) {
        let prefix = IpNet::parse(text)?;
        let (address, prefix_len) = unmap(prefix.address, prefix.prefix_len);
        return Ok(Selector::Prefix {
            address,
            prefix_len,
        });
    }
    // Letters only is a country, before the AS check: AS alone is American
    // Samoa.
    if text.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return parse_country(text);
    }
    if text
        .get(..2)
        .is_some_and(|start| start.eq_ignore_ascii_case("AS"))
    {
        return parse_asn(text).map(Selector::Asn);
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        // A bare number could be a mistyped anything; the AS makes the
        // generator's intent visible in the file.
        return Err(format!(
            "invalid selector \"{text}\": write an AS number as AS{text}"
        ));
    }
    Err(format!(
        "invalid selector \"{text}\": expected a prefix (198.51.100.0/24), an AS number \
         (AS3320) or a country code (DE)"
    ))
}

/// Reads a country code: two ASCII letters, upper case as GeoIP databases
/// write them.
fn parse_country(text: &str) -> Result<Selector, String> {
    if text.len() != 2 {
        return Err(format!(
            "invalid country code \"{text}\": expected two letters (ISO 3166-1 alpha-2), \
             e.g. DE"
        ));
    }
    if !text.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(format!(
            "invalid country code \"{text}\": country codes are upper case, \"{}\"",
            text.to_ascii_uppercase()
        ));
    }
    Ok(Selector::Country(text.to_string()))
}

/// Index of site id `text` in `sites`.
fn parse_site(text: &str, sites: &[String]) -> Result<usize, String> {
    if text.is_empty() {
        return Err("missing site".to_string());
    }
    // A linear search does not depend on the caller sorting `sites`, and
    // a config has tens of sites at most.
    sites
        .iter()
        .position(|site| site == text)
        .ok_or_else(|| format!("unknown site \"{text}\""))
}

/// Reads an RTT in milliseconds: finite, above 0, at most `max_rtt_ms`.
fn parse_rtt(text: &str, max_rtt_ms: f64) -> Result<f64, String> {
    if text.is_empty() {
        return Err("missing RTT: expected milliseconds, e.g. 23.5".to_string());
    }
    let rtt_ms: f64 = text
        .parse()
        .map_err(|_| format!("invalid RTT \"{text}\": expected milliseconds, e.g. 23.5"))?;
    if !rtt_ms.is_finite() {
        return Err(format!(
            "invalid RTT \"{text}\": expected a finite number of milliseconds"
        ));
    }
    if rtt_ms <= 0.0 {
        return Err(format!("invalid RTT \"{text}\": must be more than 0 ms"));
    }
    if rtt_ms > max_rtt_ms {
        return Err(format!(
            "invalid RTT \"{text}\": must be at most {max_rtt_ms} ms"
        ));
    }
    Ok(rtt_ms)
}

/// An IPv4-mapped prefix (`::ffff:0:0/96` and longer) as the IPv4 prefix it
/// maps; anything else unchanged. Works for addresses too, with length 128.
fn unmap(address: IpAddr, prefix_len: u8) -> (IpAddr, u8) {
    match address {
        IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), prefix_len - 96),
            None => (address, prefix_len),
        },
        _ => (address, prefix_len),
    }
}

/// `address` with every bit beyond `prefix_len` cleared.
fn network(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let kept = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & kept))
        }
        IpAddr::V6(v6) => {
            let kept = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & kept))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_RTT_MS: f64 = 10_000.0;

    fn sites() -> Vec<String> {
        ["fra", "iad", "sin"].map(String::from).to_vec()
    }

    fn parse_text(text: &str) -> Result<LatencyMatrix, Vec<String>> {
        parse(Path::new("latency/matrix.csv"), text, &sites(), MAX_RTT_MS)
    }

    fn matrix(text: &str) -> LatencyMatrix {
        match parse_text(text) {
            Ok(matrix) => matrix,
            Err(errors) => panic!("unexpected errors: {errors:#?}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match parse_text(text) {
            Ok(matrix) => panic!("expected errors, parsed {matrix:#?}"),
            Err(errors) => errors,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn net(text: &str) -> IpNet {
        IpNet::parse(text).expect("test prefix")
    }

    fn prefix(text: &str) -> Selector {
        let net = net(text);
        Selector::Prefix {
            address: net.address,
            prefix_len: net.prefix_len,
        }
    }

    /// (site, rtt) pairs of some rows, the shape the compiler reads.
    fn pairs(rows: &[MatrixRow]) -> Vec<(usize, f64)> {
        rows.iter().map(|row| (row.site, row.rtt_ms)).collect()
    }

    #[test]
    fn reads_every_selector_kind_with_header_comments_and_spaces() {
        let matrix = matrix(
            "\u{feff}# generated by the measurement pipeline\n\
             \n\
             Selector , Site , RTT_ms\n\
             198.51.100.0/24,fra,23.5\n\
             \x20 2001:db8::/32 , iad , 80   # transatlantic\n\
             AS3320,fra,12\n\
             as3320,iad,95.25\n\
             DE,fra,15\r\n\
             0.0.0.0/0,sin,300\n\
             192.0.2.1,sin,1e2\n\
             \t# indented comment\n",
        );
        let expected = vec![
            MatrixRow {
                selector: prefix("0.0.0.0/0"),
                site: 2,
                rtt_ms: 300.0,
                line: 9,
            },
            MatrixRow {
                selector: prefix("192.0.2.1/32"),
                site: 2,
                rtt_ms: 100.0,
                line: 10,
            },
            MatrixRow {
                selector: prefix("198.51.100.0/24"),
                site: 0,
                rtt_ms: 23.5,
                line: 4,
            },
            MatrixRow {
                selector: prefix("2001:db8::/32"),
                site: 1,
                rtt_ms: 80.0,
                line: 5,
            },
            MatrixRow {
                selector: Selector::Asn(3320),
                site: 0,
                rtt_ms: 12.0,
                line: 6,
            },
            MatrixRow {
                selector: Selector::Asn(3320),
                site: 1,
                rtt_ms: 95.25,
                line: 7,
            },
            MatrixRow {
                selector: Selector::Country("DE".to_string()),
                site: 0,
                rtt_ms: 15.0,
                line: 8,
            },
        ];
        assert_eq!(matrix.rows(), expected.as_slice());
        assert_eq!(pairs(matrix.by_asn(3320)), vec![(0, 12.0), (1, 95.25)]);
        assert!(matrix.by_asn(3321).is_empty());
        assert_eq!(pairs(matrix.by_country("DE")), vec![(0, 15.0)]);
        assert!(matrix.by_country("AT").is_empty());
        assert_eq!(
            matrix.asns().map(|(asn, _)| asn).collect::<Vec<_>>(),
            [3320]
        );
        assert_eq!(
            matrix.countries().map(|(code, _)| code).collect::<Vec<_>>(),
            ["DE"]
        );
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_matrices() {
        assert!(matrix("").is_empty());
        assert!(matrix("# nothing measured yet\n\nselector,site,rtt_ms\n").is_empty());
        assert_eq!(LatencyMatrix::default(), matrix(""));
    }

    #[test]
    fn every_error_has_its_file_and_line() {
        let text = "\
            selector,site,rtt_ms\n\
            198.51.100.0/33,fra,1\n\
            198.51.100.7/24,fra,1\n\
            2001:db8::1/32,fra,1\n\
            not-an-address/8,fra,1\n\
            AS12x,fra,1\n\
            AS4294967296,fra,1\n\
            3320,fra,1\n\
            de,fra,1\n\
            DEU,fra,1\n\
            D-E,fra,1\n\
            DE,frx,1\n\
            DE,fra,0\n\
            DE,fra,-3\n\
            DE,fra,NaN\n\
            DE,fra,inf\n\
            DE,fra,10000.5\n\
            DE,fra,fast\n\
            DE,fra\n\
            DE,fra,1,2\n\
            DE\n\
            ,,\n\
            selector,site,rtt_ms\n\
            de,frx,0\n";
        assert_eq!(
            errors(text),
            [
                "latency/matrix.csv:2: invalid prefix \"198.51.100.0/33\": the length must be 0 \
                 to 32",
                "latency/matrix.csv:3: prefix \"198.51.100.7/24\" has bits set beyond its \
                 length; did you mean 198.51.100.0/24?",
                "latency/matrix.csv:4: prefix \"2001:db8::1/32\" has bits set beyond its \
                 length; did you mean 2001:db8::/32?",
                "latency/matrix.csv:5: invalid prefix \"not-an-address/8\": expected an \
                 address and a length, e.g. 192.0.2.0/24 or 2001:db8::/32",
                "latency/matrix.csv:6: invalid ASN \"AS12x\": expected a number such as 3320 \
                 or AS3320",
                "latency/matrix.csv:7: invalid ASN \"AS4294967296\": AS numbers are at most \
                 4294967295",
                "latency/matrix.csv:8: invalid selector \"3320\": write an AS number as AS3320",
                "latency/matrix.csv:9: invalid country code \"de\": country codes are upper \
                 case, \"DE\"",
                "latency/matrix.csv:10: invalid country code \"DEU\": expected two letters \
                 (ISO 3166-1 alpha-2), e.g. DE",
                "latency/matrix.csv:11: invalid selector \"D-E\": expected a prefix \
                 (198.51.100.0/24), an AS number (AS3320) or a country code (DE)",
                "latency/matrix.csv:12: unknown site \"frx\"",
                "latency/matrix.csv:13: invalid RTT \"0\": must be more than 0 ms",
                "latency/matrix.csv:14: invalid RTT \"-3\": must be more than 0 ms",
                "latency/matrix.csv:15: invalid RTT \"NaN\": expected a finite number of \
                 milliseconds",
                "latency/matrix.csv:16: invalid RTT \"inf\": expected a finite number of \
                 milliseconds",
                "latency/matrix.csv:17: invalid RTT \"10000.5\": must be at most 10000 ms",
                "latency/matrix.csv:18: invalid RTT \"fast\": expected milliseconds, e.g. 23.5",
                "latency/matrix.csv:19: expected 3 fields, selector,site,rtt_ms; found 2",
                "latency/matrix.csv:20: expected 3 fields, selector,site,rtt_ms; found 4",
                "latency/matrix.csv:21: expected 3 fields, selector,site,rtt_ms; found 1",
                "latency/matrix.csv:22: missing selector: expected a prefix (198.51.100.0/24), \
                 an AS number (AS3320) or a country code (DE)",
                "latency/matrix.csv:22: missing site",
                "latency/matrix.csv:22: missing RTT: expected milliseconds, e.g. 23.5",
                "latency/matrix.csv:23: the header selector,site,rtt_ms must be the first line",
                "latency/matrix.csv:24: invalid country code \"de\": country codes are upper \
                 case, \"DE\"",
                "latency/matrix.csv:24: unknown site \"frx\"",
                "latency/matrix.csv:24: invalid RTT \"0\": must be more than 0 ms",
            ]
        );
    }

    #[test]
    fn the_maximum_rtt_itself_is_accepted() {
        let matrix = matrix("DE,fra,10000\n");
        assert_eq!(pairs(matrix.by_country("DE")), vec![(0, 10_000.0)]);
    }

    #[test]
    fn duplicate_rows_name_the_first_line() {
        let text = "\
            AS3320,fra,12\n\
            DE,fra,15\n\
            as3320,fra,13\n\
            DE,iad,90\n\
            DE,fra,16\n\
            198.51.100.0/24,fra,20\n\
            ::ffff:198.51.100.0/120,fra,21\n\
            198.51.100.0/24,iad,80\n";
        assert_eq!(
            errors(text),
            [
                "latency/matrix.csv:3: duplicate row AS3320,fra: first given on line 1",
                "latency/matrix.csv:5: duplicate row DE,fra: first given on line 2",
                "latency/matrix.csv:7: duplicate row 198.51.100.0/24,fra: first given on line 6",
            ]
        );
    }

    #[test]
    fn errors_past_the_cap_are_counted() {
        let text = "DE,frx,1\n".repeat(MAX_ERRORS + 3);
        let errors = errors(&text);
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert_eq!(
            errors[MAX_ERRORS - 1],
            format!("latency/matrix.csv:{MAX_ERRORS}: unknown site \"frx\"")
        );
        assert_eq!(
            errors[MAX_ERRORS],
            "latency/matrix.csv: 3 more errors not shown"
        );
        let one_more = "DE,frx,1\n".repeat(MAX_ERRORS + 1);
        assert_eq!(
            parse_text(&one_more)
                .err()
                .and_then(|errors| errors.last().cloned()),
            Some("latency/matrix.csv: 1 more error not shown".to_string())
        );
    }

    #[test]
    fn ipv4_mapped_prefixes_become_ipv4() {
        let matrix = matrix(
            "::ffff:198.51.100.0/120,fra,20\n\
             ::ffff:0:0/96,iad,90\n\
             ::/0,sin,200\n\
             ::fffe:0:0/95,sin,210\n",
        );
        assert_eq!(
            matrix.prefixes(Family::V4).collect::<Vec<_>>(),
            [
                (net("0.0.0.0/0"), &matrix.rows()[0..1]),
                (net("198.51.100.0/24"), &matrix.rows()[1..2]),
            ]
        );
        assert_eq!(matrix.rows()[0].line, 2);
        assert_eq!(matrix.rows()[1].line, 1);
        // Shorter than /96, a prefix also holds IPv6 addresses: it stays IPv6.
        assert_eq!(
            matrix
                .prefixes(Family::V6)
                .map(|(prefix, _)| prefix)
                .collect::<Vec<_>>(),
            [net("::/0"), net("::fffe:0:0/95")]
        );
        // A mapped client address finds the IPv4 prefix.
        assert_eq!(
            matrix.longest_match(ip("::ffff:198.51.100.9")),
            Some((net("198.51.100.0/24"), &matrix.rows()[1..2]))
        );
        assert_eq!(
            pairs(matrix.by_prefix(net("::ffff:198.51.100.0/120"))),
            vec![(0, 20.0)]
        );
    }

    #[test]
    fn longest_prefix_match_returns_every_site_of_the_longest_prefix() {
        let matrix = matrix(
            "10.0.0.0/8,fra,30\n\
             10.0.0.0/8,iad,90\n\
             10.1.0.0/16,iad,70\n\
             10.1.0.0/16,fra,25\n\
             10.1.2.0/24,sin,150\n\
             2001:db8::/32,iad,80\n\
             2001:db8:1::/48,fra,20\n\
             ::/0,sin,250\n\
             AS3320,fra,12\n",
        );
        let longest = |text: &str| {
            matrix
                .longest_match(ip(text))
                .map(|(prefix, rows)| (prefix.to_string(), pairs(rows)))
        };
        assert_eq!(
            longest("10.1.2.3"),
            Some(("10.1.2.0/24".to_string(), vec![(2, 150.0)]))
        );
        assert_eq!(
            longest("10.1.3.3"),
            Some(("10.1.0.0/16".to_string(), vec![(0, 25.0), (1, 70.0)]))
        );
        assert_eq!(
            longest("10.2.0.1"),
            Some(("10.0.0.0/8".to_string(), vec![(0, 30.0), (1, 90.0)]))
        );
        assert_eq!(longest("11.0.0.1"), None);
        assert_eq!(
            longest("2001:db8:1::5"),
            Some(("2001:db8:1::/48".to_string(), vec![(0, 20.0)]))
        );
        assert_eq!(
            longest("2001:db8:2::5"),
            Some(("2001:db8::/32".to_string(), vec![(1, 80.0)]))
        );
        assert_eq!(
            longest("2001:db9::1"),
            Some(("::/0".to_string(), vec![(2, 250.0)]))
        );
        // Every address of a prefix finds it, the first and the last.
        assert_eq!(
            longest("10.1.2.255").map(|(prefix, _)| prefix).as_deref(),
            Some("10.1.2.0/24")
        );
        assert_eq!(
            longest("10.255.255.255")
                .map(|(prefix, _)| prefix)
                .as_deref(),
            Some("10.0.0.0/8")
        );
    }

    #[test]
    fn prefixes_are_enumerated_by_family_in_tree_order() {
        let matrix = matrix(
            "DE,fra,15\n\
             2001:db8:1::/48,fra,20\n\
             10.1.0.0/16,iad,70\n\
             AS3320,fra,12\n\
             10.0.0.0/8,iad,90\n\
             10.0.0.0/8,fra,30\n\
             2001:db8::/32,iad,80\n\
             9.0.0.0/8,sin,100\n",
        );
        let listed = |family| {
            matrix
                .prefixes(family)
                .map(|(prefix, rows)| (prefix.to_string(), pairs(rows)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            listed(Family::V4),
            [
                ("9.0.0.0/8".to_string(), vec![(2, 100.0)]),
                ("10.0.0.0/8".to_string(), vec![(0, 30.0), (1, 90.0)]),
                ("10.1.0.0/16".to_string(), vec![(1, 70.0)]),
            ]
        );
        assert_eq!(
            listed(Family::V6),
            [
                ("2001:db8::/32".to_string(), vec![(1, 80.0)]),
                ("2001:db8:1::/48".to_string(), vec![(0, 20.0)]),
            ]
        );
        let only_asn = LatencyMatrix::from_rows(vec![MatrixRow {
            selector: Selector::Asn(3320),
            site: 0,
            rtt_ms: 12.0,
            line: 1,
        }]);
        assert_eq!(only_asn.prefixes(Family::V4).count(), 0);
        assert_eq!(only_asn.prefixes(Family::V6).count(), 0);
        assert_eq!(LatencyMatrix::default().prefixes(Family::V4).count(), 0);
    }

    #[test]
    fn from_rows_sorts_so_lookups_work() {
        let row = |selector: Selector, site, line| MatrixRow {
            selector,
            site,
            rtt_ms: 10.0,
            line,
        };
        let matrix = LatencyMatrix::from_rows(vec![
            row(Selector::Country("DE".to_string()), 1, 1),
            row(Selector::Asn(3320), 1, 2),
            row(prefix("10.0.0.0/8"), 0, 3),
            row(Selector::Country("DE".to_string()), 0, 4),
            row(Selector::Asn(3320), 0, 5),
        ]);
        let lines = |rows: &[MatrixRow]| rows.iter().map(|row| row.line).collect::<Vec<_>>();
        assert_eq!(lines(matrix.rows()), [3, 5, 2, 4, 1]);
        assert_eq!(lines(matrix.by_country("DE")), [4, 1]);
        assert_eq!(lines(matrix.by_asn(3320)), [5, 2]);
        assert_eq!(lines(matrix.by_prefix(net("10.0.0.0/8"))), [3]);
    }

    #[test]
    fn load_reads_the_file_or_names_it() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let file = directory.path().join("matrix.csv");
        std::fs::write(&file, "DE,fra,15\nDE,frx,1\n").expect("write matrix");
        assert_eq!(
            load(&file, &sites(), MAX_RTT_MS),
            Err(vec![format!("{}:2: unknown site \"frx\"", file.display())])
        );
        std::fs::write(&file, "DE,fra,15\n").expect("write matrix");
        let loaded = load(&file, &sites(), MAX_RTT_MS).expect("good matrix");
        assert_eq!(pairs(loaded.by_country("DE")), vec![(0, 15.0)]);

        let missing = directory.path().join("missing.csv");
        let errors = load(&missing, &sites(), MAX_RTT_MS).expect_err("missing file");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(&format!(
                "{}: cannot read the latency matrix: ",
                missing.display()
            )),
            "{errors:?}"
        );
    }
}
