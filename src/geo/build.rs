//! `steer geoip build`: a CSV of networks and locations → a MaxMind-schema
//! mmdb.
//!
//! The CSV has a header line `network,country,continent,subdivision,
//! latitude,longitude,asn` and one network per line; any field but the
//! network may be empty. Blank lines and lines starting with `#` are
//! skipped, so the source can explain itself. Each line becomes a record in
//! MaxMind's City schema (`country.iso_code`, `continent.code`,
//! `subdivisions[0].iso_code`, `location.latitude`/`longitude`,
//! `autonomous_system_number`) holding only the fields given: an empty
//! continent stays absent rather than being derived, so that the database
//! says what the source says. Every bad line is reported, each as
//! `file:line: ...`, and nothing is written unless all lines are good.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::writer::{DatabaseWriter, Value};

/// The header line, in order.
pub const COLUMNS: [&str; 7] = [
    "network",
    "country",
    "continent",
    "subdivision",
    "latitude",
    "longitude",
    "asn",
];

/// Continent codes a `continent` column may hold.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// One line of the source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceLine {
    /// Line number (1-based), for messages.
    pub line: usize,
    /// The network address (host bits zero).
    pub address: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// Continent code, upper case.
    pub continent: Option<String>,
    /// ISO 3166-2 subdivision code without the country, upper case.
    pub subdivision: Option<String>,
    /// Latitude and longitude in degrees.
    pub coordinates: Option<(f64, f64)>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

impl SourceLine {
    /// The record in MaxMind's City schema.
    pub fn record(&self) -> Value {
        let mut pairs = Vec::new();
        if let Some(continent) = &self.continent {
            pairs.push((
                "continent",
                Value::map([("code", Value::from(continent.as_str()))]),
            ));
        }
        if let Some(country) = &self.country {
            pairs.push((
                "country",
                Value::map([("iso_code", Value::from(country.as_str()))]),
            ));
        }
        if let Some((latitude, longitude)) = self.coordinates {
            pairs.push((
                "location",
                Value::map([
                    ("latitude", Value::Double(latitude)),
                    ("longitude", Value::Double(longitude)),
                ]),
            ));
        }
        if let Some(subdivision) = &self.subdivision {
            pairs.push((
                "subdivisions",
                Value::Array(vec![Value::map([(
                    "iso_code",
                    Value::from(subdivision.as_str()),
                )])]),
            ));
        }
        if let Some(asn) = self.asn {
            pairs.push(("autonomous_system_number", Value::Uint32(asn)));
        }
        Value::map(pairs)
    }
}

/// What `steer geoip build` wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildSummary {
    /// IPv4 networks written.
    pub ipv4_networks: usize,
    /// IPv6 networks written.
    pub ipv6_networks: usize,
    /// Size of the file in bytes.
    pub bytes: usize,
}

/// Reads the CSV at `source` and writes the mmdb to `out`, of type
/// `database_type`, built at `build_epoch` (Unix seconds). Errors are whole
/// lines naming the file and line.
pub fn build(
    source: &Path,
    out: &Path,
    database_type: &str,
    build_epoch: u64,
) -> Result<BuildSummary, Vec<String>> {
    let text = std::fs::read_to_string(source)
        .map_err(|error| vec![format!("{}: {error}", source.display())])?;
    let lines = parse(&text, source)?;
    let mut writer = DatabaseWriter::new(database_type);
    writer.build_epoch(build_epoch).description(
        "en",
        &format!("Built by steer geoip build from {}", file_name(source)),
    );
    let mut summary = BuildSummary {
        ipv4_networks: 0,
        ipv6_networks: 0,
        bytes: 0,
    };
    for line in &lines {
        if line.address.is_ipv4() {
            summary.ipv4_networks += 1;
        } else {
            summary.ipv6_networks += 1;
        }
        writer
            .insert(line.address, line.prefix_len, line.record())
            .map_err(|error| vec![format!("{}:{}: {error}", source.display(), line.line)])?;
    }
    let bytes = writer
        .to_bytes()
        .map_err(|error| vec![format!("{}: {error}", out.display())])?;
    summary.bytes = bytes.len();
    writer.write_file(out).map_err(|error| vec![error])?;
    Ok(summary)
}

/// The file name alone, so the database does not record where the source
/// sat on the machine that built it.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parses the whole CSV, collecting every error (`file:line: message`).
pub fn parse(text: &str, source: &Path) -> Result<Vec<SourceLine>, Vec<String>> {
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    let mut first_line_of: HashMap<(IpAddr, u8), usize> = HashMap::new();
    let mut header_seen = false;
    // Spreadsheets save CSV with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let content = raw_line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let at = |message: String| format!("{}:{number}: {message}", source.display());
        let columns = match split(content) {
            Ok(columns) => columns,
            Err(message) => {
                errors.push(at(message));
                continue;
            }
        };
        if !header_seen {
            header_seen = true;
            let names: Vec<&str> = columns.iter().map(|name| name.trim()).collect();
            if names != COLUMNS {
                errors.push(at(format!(
                    "the first line must be the header {}, not {content}",
                    COLUMNS.join(",")
                )));
                // Without the right header the columns mean nothing.
                return Err(errors);
            }
            continue;
        }
        match parse_line(&columns, number) {
            Ok(line) => match first_line_of.get(&(line.address, line.prefix_len)) {
                Some(first) => errors.push(at(format!(
                    "{}/{} is already on line {first}",
                    line.address, line.prefix_len
                ))),
                None => {
                    first_line_of.insert((line.address, line.prefix_len), number);
                    lines.push(line);
                }
            },
            Err(messages) => errors.extend(messages.into_iter().map(at)),
        }
    }
    if !header_seen {
        errors.push(format!(
            "{}: empty; expected the header {} and one network per line",
            source.display(),
            COLUMNS.join(",")
        ));
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Splits one CSV line into fields; a field may be double-quoted (`""` is
/// a quote inside one).
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut characters = line.chars().peekable();
    let mut quoted = false;
    while let Some(character) = characters.next() {
        match (quoted, character) {
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (true, '"') if characters.peek() == Some(&'"') => {
                characters.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (_, other) => field.push(other),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

/// One data line's columns → a source line, or every problem with it.
fn parse_line(columns: &[String], line: usize) -> Result<SourceLine, Vec<String>> {
    if columns.len() != COLUMNS.len() {
        return Err(vec![format!(
            "{} fields, expected {} ({})",
            columns.len(),
            COLUMNS.len(),
            COLUMNS.join(",")
        )]);
    }
    let column = |index: usize| columns[index].trim();
    let mut errors = Vec::new();

    let network = parse_network(column(0));
    if let Err(message) = &network {
        errors.push(format!("network: {message}"));
    }

    let code = |name: &str, text: &str, valid: &dyn Fn(&str) -> bool, expected: &str| {
        if text.is_empty() {
            return Ok(None);
        }
        let upper = text.to_ascii_uppercase();
        if valid(&upper) {
            Ok(Some(upper))
        } else {
            Err(format!("{name}: {text:?} is not {expected}"))
        }
    };
    let country = code(
        "country",
        column(1),
        &|code| code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_uppercase()),
        "a two-letter ISO 3166-1 country code",
    );
    let continent = code(
        "continent",
        column(2),
        &|code| CONTINENTS.contains(&code),
        "a continent code (AF AN AS EU NA OC SA)",
    );
    let subdivision = code(
        "subdivision",
        column(3),
        &|code| {
            (1..=3).contains(&code.len()) && code.bytes().all(|byte| byte.is_ascii_alphanumeric())
        },
        "an ISO 3166-2 subdivision code without the country (CA, ENG, 75)",
    );
    let latitude = degrees("latitude", column(4), 90.0);
    let longitude = degrees("longitude", column(5), 180.0);
    let coordinates = match (latitude, longitude) {
        (Ok(Some(latitude)), Ok(Some(longitude))) => Ok(Some((latitude, longitude))),
        (Ok(None), Ok(None)) => Ok(None),
        (Ok(_), Ok(_)) => Err("latitude and longitude must be given together".to_owned()),
        (Err(message), _) | (_, Err(message)) => Err(message),
    };
    let asn = match column(6) {
        "" => Ok(None),
        text => text
            .strip_prefix("AS")
            .unwrap_or(text)
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("asn: {text:?} is not an AS number (0 to 4294967295)")),
    };

    match (network, country, continent, subdivision, coordinates, asn) {
        (
            Ok((address, prefix_len)),
            Ok(country),
            Ok(continent),
            Ok(subdivision),
            Ok(coordinates),
            Ok(asn),
        ) => Ok(SourceLine {
            line,
            address,
            prefix_len,
            country,
            continent,
            subdivision,
            coordinates,
            asn,
        }),
        (_, country, continent, subdivision, coordinates, asn) => {
            errors.extend(
                [
                    country.err(),
                    continent.err(),
                    subdivision.err(),
                    coordinates.err(),
                    asn.err(),
                ]
                .into_iter()
                .flatten(),
            );
            Err(errors)
        }
    }
}

/// `address/prefix` with no host bits set.
fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    let Some((address, prefix_len)) = text.split_once('/') else {
        return Err(format!("{text:?} is not a network (address/prefix)"));
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let width = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len: u8 = prefix_len
        .parse()
        .ok()
        .filter(|&length| u32::from(length) <= width)
        .ok_or_else(|| format!("{prefix_len:?} is not a prefix length (0 to {width})"))?;
    let bits = match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let host_bits = super::partition::host_mask(u32::from(prefix_len), width);
    if bits & host_bits != 0 {
        return Err(format!(
            "{text} has host bits set; the network is {}/{prefix_len}",
            network_address(address, bits & !host_bits)
        ));
    }
    Ok((address, prefix_len))
}

/// `bits` as an address of the same family as `like`.
fn network_address(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        // bits came from an IPv4 address, so they fit in 32.
        IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}

/// A coordinate in degrees, at most `limit` either side of zero.
fn degrees(name: &str, text: &str, limit: f64) -> Result<Option<f64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() <= limit => Ok(Some(value)),
        _ => Err(format!(
            "{name}: {text:?} is not a number of degrees from -{limit} to {limit}"
        )),
    }
}
