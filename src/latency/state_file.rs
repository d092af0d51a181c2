//! The latency model on disk, so that a restart does not forget what real
//! users measured: without it, every measured network would fall back to
//! the matrix or to distance at start and change answers until new
//! samples came in. With the model goes the margin's memory: the site each
//! source chose at the last compile, per steered name. Without it the first
//! compile after a restart would pick the fastest site outright, and every
//! network whose winner was held by the margin would move at once.
//!
//! The file is written whole to a temporary name beside it and renamed over
//! it, so a crash mid-write leaves the previous file. It is binary and
//! little-endian, because a full model is ten million measurements:
//!
//! ```text
//! "STEERLAT" 2u32                            magic and format version
//! sites: u32, then per site u16 length + UTF-8 id
//! entries: u64, then per entry (26 bytes):
//!     network u64 (ClientPrefix::to_bits), site u16 (index above),
//!     rtt_ms f32, samples u32, updated u64 (Unix seconds)
//! names: u32, then per steered name u16 length + UTF-8 label
//!     (`www.example.test. A`), choices: u64, then per choice (20 bytes):
//!     kind u8, address [16] (IPv4 mapped), length u8, site u16
//!     (kind: 1 network, 2 matrix prefix, 3 matrix ASN in the address's
//!     first 4 bytes, 4 matrix country in its first 2, 5 this node)
//! checksum: u64 (FNV-1a of every byte before it)
//! ```
//!
//! Version 1 files (no names section) are still read. Sites are stored by
//! id, so a configuration that renamed, added or dropped sites between the
//! runs still gets the measurements and choices of the sites it kept.
//! Entries are stored least recently updated first, which is the order that
//! rebuilds the model's eviction order.

use std::fs;
use std::io;
use std::path::Path;

use std::net::{IpAddr, Ipv6Addr};

use super::model::{ClientPrefix, SiteLatency};
use super::snapshot::{Choices, SourceKey};

const MAGIC: &[u8; 8] = b"STEERLAT";
const VERSION: u32 = 2;
/// The version before choices were kept; still read.
const VERSION_WITHOUT_CHOICES: u32 = 1;
const ENTRY_BYTES: usize = 26;
const CHOICE_BYTES: usize = 20;

/// A model as read back from its file: checked whole, and read entry by
/// entry from the file's bytes (a full model's entries would take more
/// memory as a vector than as the file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SavedModel {
    /// Site ids, in the order the entries index them.
    pub sites: Vec<String>,
    /// The file's bytes.
    bytes: Vec<u8>,
    /// Where the entries start in `bytes`, and how many there are.
    entries_at: usize,
    count: usize,
    /// Per steered name: its label, where its choices start, how many.
    names: Vec<(String, usize, usize)>,
}

impl SavedModel {
    /// (network, site index, measurement), least recently updated first.
    pub fn entries(&self) -> impl Iterator<Item = (ClientPrefix, usize, SiteLatency)> + '_ {
        let entries = &self.bytes[self.entries_at..self.entries_at + self.count * ENTRY_BYTES];
        entries.chunks_exact(ENTRY_BYTES).filter_map(parse_entry)
    }

    /// Per steered name (`www.example.test. A`), the site each source
    /// chose: (source, site index).
    pub fn choices(
        &self,
    ) -> impl Iterator<Item = (&str, impl Iterator<Item = (SourceKey, usize)> + '_)> + '_ {
        self.names.iter().map(|(label, at, count)| {
            let bytes = &self.bytes[*at..*at + count * CHOICE_BYTES];
            (
                label.as_str(),
                bytes.chunks_exact(CHOICE_BYTES).filter_map(parse_choice),
            )
        })
    }

    /// How many entries the file holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// One entry; `None` for one that names no client network (which
/// [`decode`] has already refused, so this never happens after it).
fn parse_entry(entry: &[u8]) -> Option<(ClientPrefix, usize, SiteLatency)> {
    let mut reader = Reader {
        bytes: entry,
        at: 0,
    };
    let prefix = ClientPrefix::from_bits(reader.u64().ok()?)?;
    let site = usize::from(reader.u16().ok()?);
    let rtt_ms = f32::from_bits(reader.u32().ok()?);
    let samples = reader.u32().ok()?;
    let updated = reader.u64().ok()?;
    Some((
        prefix,
        site,
        SiteLatency {
            rtt_ms,
            samples,
            updated,
        },
    ))
}

/// One choice; `None` for a kind this version does not know (which
/// [`decode`] has already refused).
fn parse_choice(choice: &[u8]) -> Option<(SourceKey, usize)> {
    let address = Ipv6Addr::from(<[u8; 16]>::try_from(&choice[1..17]).ok()?);
    let address = match address.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(address),
    };
    let length = choice[17];
    let key = match choice[0] {
        1 => SourceKey::Network(address, length),
        2 => SourceKey::MatrixPrefix(address, length),
        3 => SourceKey::MatrixAsn(u32::from_le_bytes(choice[1..5].try_into().ok()?)),
        4 => SourceKey::MatrixCountry([choice[1], choice[2]]),
        5 => SourceKey::Node,
        _ => return None,
    };
    Some((
        key,
        usize::from(u16::from_le_bytes([choice[18], choice[19]])),
    ))
}

/// The 20 bytes of one choice.
fn choice_bytes(key: &SourceKey, site: usize) -> [u8; CHOICE_BYTES] {
    let mut bytes = [0; CHOICE_BYTES];
    let mut address = |address: &IpAddr, length: u8| {
        let mapped = match address {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => *v6,
        };
        bytes[1..17].copy_from_slice(&mapped.octets());
        bytes[17] = length;
    };
    let kind = match key {
        SourceKey::Network(network, length) => {
            address(network, *length);
            1
        }
        SourceKey::MatrixPrefix(network, length) => {
            address(network, *length);
            2
        }
        SourceKey::MatrixAsn(asn) => {
            bytes[1..5].copy_from_slice(&asn.to_le_bytes());
            3
        }
        SourceKey::MatrixCountry(code) => {
            bytes[1..3].copy_from_slice(code);
            4
        }
        SourceKey::Node => 5,
    };
    bytes[0] = kind;
    bytes[18..20].copy_from_slice(&(site as u16).to_le_bytes());
    bytes
}

/// Encodes a model: `sites`, its fresh measurements, oldest first, and
/// the choices of each steered name.
pub fn encode<'a>(
    sites: &[String],
    entries: impl Iterator<Item = (ClientPrefix, usize, SiteLatency)>,
    choices: impl Iterator<Item = (&'a str, &'a Choices)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, sites, entries);
    append_choices(&mut out, choices);
    seal(&mut out);
    out
}

/// Appends the choices section to what [`encode_into`] wrote: per steered
/// name, the site each source chose.
pub fn append_choices<'a>(
    out: &mut Vec<u8>,
    choices: impl Iterator<Item = (&'a str, &'a Choices)>,
) {
    let names_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut names = 0u32;
    for (label, chosen) in choices {
        let label = &label.as_bytes()[..label.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(label.len() as u16).to_le_bytes());
        out.extend_from_slice(label);
        out.extend_from_slice(&(chosen.len() as u64).to_le_bytes());
        out.reserve(chosen.len() * CHOICE_BYTES);
        for (key, site) in chosen {
            out.extend_from_slice(&choice_bytes(key, *site));
        }
        names += 1;
    }
    out[names_at..names_at + 4].copy_from_slice(&names.to_le_bytes());
}

/// Bytes [`append_choices`] adds for `choices` choices over all names,
/// besides the names themselves.
pub fn choices_room(choices: usize) -> usize {
    choices * CHOICE_BYTES
}

/// A buffer for [`encode_into`] with room for `entries` entries and
/// `choices` choices (and a few steered names' labels), its pages
/// already touched: filling it then costs no page faults, which matter
/// when it is filled under a lock (a full model's file is hundreds of MB).
pub fn buffer_for(entries: usize, choices: usize) -> Vec<u8> {
    let mut buffer = Vec::new();
    buffer.resize(4096 + entries * ENTRY_BYTES + choices_room(choices), 1);
    buffer.clear();
    buffer
}

/// [`encode`] into `out` (cleared first), keeping its capacity; without
/// the choices and the checksum, which [`append_choices`] and [`seal`]
/// append (so that a caller holding a lock to read the model can let go of
/// it first).
pub fn encode_into(
    out: &mut Vec<u8>,
    sites: &[String],
    entries: impl Iterator<Item = (ClientPrefix, usize, SiteLatency)>,
) {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(sites.len() as u32).to_le_bytes());
    for site in sites {
        // Site ids are short config keys; a longer one is cut, and so does
        // not match on restore, which only loses its measurements.
        let bytes = &site.as_bytes()[..site.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let count_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut count = 0u64;
    for (prefix, site, latency) in entries {
        out.extend_from_slice(&prefix.to_bits().to_le_bytes());
        out.extend_from_slice(&(site as u16).to_le_bytes());
        out.extend_from_slice(&latency.rtt_ms.to_le_bytes());
        out.extend_from_slice(&latency.samples.to_le_bytes());
        out.extend_from_slice(&latency.updated.to_le_bytes());
        count += 1;
    }
    out[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
}

/// Appends the checksum to what [`encode_into`] wrote.
pub fn seal(out: &mut Vec<u8>) {
    let checksum = fnv1a(out);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// Writes `bytes` (from [`encode`]) to `path`: to a temporary file beside
/// it, synced, then renamed over it.
///
/// # Errors
///
/// Any I/O error; the previous file is then left as it was.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::durable::replace(path, bytes)
}

/// Reads the model saved at `path`; `Ok(None)` when there is no file.
///
/// # Errors
///
/// A file that cannot be read or is not a whole model of this format, with
/// what is wrong.
pub fn read(path: &Path) -> Result<Option<SavedModel>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    decode(bytes)
        .map(Some)
        .map_err(|problem| format!("{}: {problem}", path.display()))
}

/// Decodes a model written by [`encode`].
///
/// # Errors
///
/// What is wrong with `bytes`: another format, a truncated or altered file.
pub fn decode(bytes: Vec<u8>) -> Result<SavedModel, String> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Steer latency state file".to_owned());
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 8);
    let mut reader = Reader { bytes: body, at: 0 };
    reader.take(MAGIC.len())?;
    let version = reader.u32()?;
    if version != VERSION && version != VERSION_WITHOUT_CHOICES {
        return Err(format!(
            "format version {version}; this Steer reads versions \
             {VERSION_WITHOUT_CHOICES} and {VERSION}"
        ));
    }
    if checksum.len() != 8 || fnv1a(body).to_le_bytes() != checksum {
        return Err("checksum mismatch: the file is truncated or altered".to_owned());
    }
    let site_count = reader.u32()? as usize;
    let mut sites = Vec::with_capacity(site_count.min(65_536));
    for _ in 0..site_count {
        let length = usize::from(reader.u16()?);
        let id = std::str::from_utf8(reader.take(length)?)
            .map_err(|_| "a site id is not UTF-8".to_owned())?;
        sites.push(id.to_owned());
    }
    let count = reader.u64()?;
    let left = (body.len() - reader.at) as u64;
    let entry_bytes = count.checked_mul(ENTRY_BYTES as u64).filter(|bytes| {
        if version == VERSION_WITHOUT_CHOICES {
            *bytes == left
        } else {
            *bytes <= left
        }
    });
    let Some(entry_bytes) = entry_bytes else {
        return Err(format!(
            "{count} entries announced, {left} bytes of them present"
        ));
    };
    let entries_at = reader.at;
    let entries = reader.take(entry_bytes as usize)?;
    for entry in entries.chunks_exact(ENTRY_BYTES) {
        let bits = u64::from_le_bytes(entry[..8].try_into().unwrap_or_default());
        if ClientPrefix::from_bits(bits).is_none() {
            return Err(format!("network word {bits:#x} is no client network"));
        }
        let site = usize::from(u16::from_le_bytes([entry[8], entry[9]]));
        if site >= sites.len() {
            return Err(format!("site index {site} of {} sites", sites.len()));
        }
    }
    let mut names = Vec::new();
    if version == VERSION {
        let name_count = reader.u32()?;
        for _ in 0..name_count {
            let length = usize::from(reader.u16()?);
            let label = std::str::from_utf8(reader.take(length)?)
                .map_err(|_| "a steered name is not UTF-8".to_owned())?
                .to_owned();
            let choices = reader.u64()?;
            let bytes = choices
                .checked_mul(CHOICE_BYTES as u64)
                .and_then(|bytes| usize::try_from(bytes).ok())
                .ok_or_else(|| format!("{choices} choices announced for {label}"))?;
            let at = reader.at;
            for choice in reader.take(bytes)?.chunks_exact(CHOICE_BYTES) {
                match parse_choice(choice) {
                    Some((_, site)) if site < sites.len() => {}
                    Some((_, site)) => {
                        return Err(format!(
                            "{label}: chosen site index {site} of {} sites",
                            sites.len()
                        ));
                    }
                    None => return Err(format!("{label}: unknown source kind {}", choice[0])),
                }
            }
            names.push((label, at, choices as usize));
        }
        if reader.at != body.len() {
            return Err(format!(
                "{} bytes after the last section",
                body.len() - reader.at
            ));
        }
    }
    Ok(SavedModel {
        sites,
        entries_at,
        count: count as usize,
        bytes,
        names,
    })
}

/// FNV-1a, 64 bits: enough to tell a torn or edited file, not a defence
/// against anyone who can write the file anyway.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads little-endian fields in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| "the file ends early".to_owned())?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.fixed()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn prefix(text: &str) -> ClientPrefix {
        ClientPrefix::parse(text).expect("client prefix")
    }

    fn latency(rtt_ms: f32, samples: u32, updated: u64) -> SiteLatency {
        SiteLatency {
            rtt_ms,
            samples,
            updated,
        }
    }

    fn sites() -> Vec<String> {
        vec!["fra".to_owned(), "iad".to_owned()]
    }

    fn sample_entries() -> Vec<(ClientPrefix, usize, SiteLatency)> {
        vec![
            (
                prefix("198.51.100.0/24"),
                1,
                latency(31.5, 7, 1_700_000_000),
            ),
            (
                prefix("2001:db8:1::/48"),
                0,
                latency(12.25, 1, 1_700_000_100),
            ),
        ]
    }

    fn sample_choices() -> Vec<(String, Choices)> {
        let chosen: Choices = [
            (
                SourceKey::Network("198.51.100.0".parse().expect("address"), 24),
                1,
            ),
            (
                SourceKey::Network("2001:db8:1::".parse().expect("address"), 48),
                0,
            ),
            (
                SourceKey::MatrixPrefix("10.0.0.0".parse().expect("address"), 8),
                1,
            ),
            (SourceKey::MatrixAsn(3320), 0),
            (SourceKey::MatrixCountry(*b"DE"), 0),
            (SourceKey::Node, 1),
        ]
        .into_iter()
        .collect();
        vec![
            ("www.example.test. A".to_owned(), chosen),
            ("api.example.test. AAAA".to_owned(), Choices::default()),
        ]
    }

    fn choices_of(choices: &[(String, Choices)]) -> impl Iterator<Item = (&str, &Choices)> {
        choices
            .iter()
            .map(|(label, chosen)| (label.as_str(), chosen))
    }

    fn encoded() -> Vec<u8> {
        encode(
            &sites(),
            sample_entries().into_iter(),
            choices_of(&sample_choices()),
        )
    }

    /// The same model in format version 1, as the previous release wrote it.
    fn encoded_version_1() -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, &sites(), sample_entries().into_iter());
        out[8..12].copy_from_slice(&1u32.to_le_bytes());
        seal(&mut out);
        out
    }

    fn choices_back(model: &SavedModel) -> Vec<(String, Choices)> {
        model
            .choices()
            .map(|(label, chosen)| (label.to_owned(), chosen.collect()))
            .collect()
    }

    fn read_back(model: &SavedModel) -> (Vec<String>, Vec<(ClientPrefix, usize, SiteLatency)>) {
        (model.sites.clone(), model.entries().collect())
    }

    #[test]
    fn a_model_reads_back_as_written() {
        let model = decode(encoded()).expect("decodes");
        assert_eq!(read_back(&model), (sites(), sample_entries()));
        assert_eq!(model.len(), 2);
        assert_eq!(choices_back(&model), sample_choices());
        let empty = decode(encode(&[], std::iter::empty(), std::iter::empty())).expect("decodes");
        assert!(empty.is_empty());
        assert_eq!(read_back(&empty), (Vec::new(), Vec::new()));
        assert_eq!(empty.choices().count(), 0);
    }

    #[test]
    fn a_version_1_file_reads_without_choices() {
        let model = decode(encoded_version_1()).expect("decodes");
        assert_eq!(read_back(&model), (sites(), sample_entries()));
        assert_eq!(model.choices().count(), 0);
    }

    #[test]
    fn damaged_files_are_refused_with_the_reason() {
        let bytes = encoded();
        let truncated = bytes[..bytes.len() - 30].to_vec();
        assert!(
            decode(truncated)
                .expect_err("truncated")
                .contains("checksum")
        );
        let mut altered = bytes.clone();
        altered[30] ^= 1;
        assert!(decode(altered).expect_err("altered").contains("checksum"));
        assert_eq!(
            decode(b"selector,site,rtt_ms\n".to_vec()).expect_err("another file"),
            "not a Steer latency state file"
        );
        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(decode(future).expect_err("version").contains("version 3"));
        // Consistent but wrong: a site index beyond the sites, a network
        // word no network packs to (checksums made to match).
        let bad_site = encode(
            &sites(),
            [(prefix("192.0.2.0/24"), 2, latency(1.0, 1, 1))].into_iter(),
            std::iter::empty(),
        );
        assert_eq!(
            decode(bad_site).expect_err("site"),
            "site index 2 of 2 sites"
        );
        let mut bad_network = encode_resealed(&sites(), sample_entries(), &[]);
        let entries_at = bad_network.len() - 8 - 4 - 2 * ENTRY_BYTES;
        bad_network[entries_at + 3] = 1;
        reseal(&mut bad_network);
        assert!(
            decode(bad_network)
                .expect_err("network")
                .contains("no client network")
        );
        // A choice of a site beyond the sites, of a kind not known, and
        // bytes left over after the last section.
        let far: Choices = [(SourceKey::Node, 2)].into_iter().collect();
        let bad_choice = encode_resealed(&sites(), Vec::new(), &[("n. A".to_owned(), far)]);
        assert_eq!(
            decode(bad_choice).expect_err("chosen site"),
            "n. A: chosen site index 2 of 2 sites"
        );
        let near: Choices = [(SourceKey::Node, 1)].into_iter().collect();
        let mut unknown = encode_resealed(&sites(), Vec::new(), &[("n. A".to_owned(), near)]);
        let kind_at = unknown.len() - 8 - CHOICE_BYTES;
        unknown[kind_at] = 9;
        reseal(&mut unknown);
        assert_eq!(
            decode(unknown).expect_err("kind"),
            "n. A: unknown source kind 9"
        );
        let mut trailing = encoded();
        trailing.truncate(trailing.len() - 8);
        trailing.push(0);
        seal(&mut trailing);
        assert_eq!(
            decode(trailing).expect_err("trailing"),
            "1 bytes after the last section"
        );
    }

    fn encode_resealed(
        sites: &[String],
        entries: Vec<(ClientPrefix, usize, SiteLatency)>,
        choices: &[(String, Choices)],
    ) -> Vec<u8> {
        encode(sites, entries.into_iter(), choices_of(choices))
    }

    /// Recomputes the checksum after an edit.
    fn reseal(bytes: &mut [u8]) {
        let body_end = bytes.len() - 8;
        let checksum = fnv1a(&bytes[..body_end]).to_le_bytes();
        bytes[body_end..].copy_from_slice(&checksum);
    }

    #[test]
    fn written_atomically_and_a_missing_file_is_no_model() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("steer.latency");
        assert_eq!(read(&path), Ok(None));
        write(&path, &encoded()).expect("write");
        let model = read(&path).expect("reads").expect("a model");
        assert_eq!(read_back(&model), (sites(), sample_entries()));
        assert_eq!(
            std::fs::read_dir(directory.path()).expect("list").count(),
            1
        );
        std::fs::write(&path, b"STEERLAT").expect("overwrite");
        let error = read(&path).expect_err("damaged");
        assert!(error.starts_with(&path.display().to_string()), "{error}");
    }

    proptest! {
        /// A damaged file is refused, never a panic at start: random bytes,
        /// and a valid file with bytes changed, cut or added, with the
        /// checksum made to match again (so the structural checks are the
        /// ones tested).
        #[test]
        fn any_bytes_decode_or_are_refused(
            noise in proptest::collection::vec(any::<u8>(), 0..200),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            reseal in any::<bool>(),
        ) {
            let mut random = MAGIC.to_vec();
            random.extend_from_slice(&noise);
            for bytes in [noise.clone(), random] {
                if let Ok(model) = decode(bytes) {
                    let _ = model.entries().count();
                }
            }
            let mut edited = encoded();
            let body_end = edited.len() - 8;
            edited.truncate(body_end);
            for (at, value) in edits {
                let at = at % edited.len();
                edited[at] = value;
            }
            edited.truncate(edited.len() - cut % edited.len());
            if reseal {
                let checksum = fnv1a(&edited).to_le_bytes();
                edited.extend_from_slice(&checksum);
            }
            if let Ok(model) = decode(edited) {
                // Whatever passes the checks reads back whole.
                prop_assert_eq!(model.entries().count(), model.len());
                prop_assert!(model.entries().all(|(_, site, _)| site < model.sites.len()));
                for (_, chosen) in model.choices() {
                    for (_, site) in chosen {
                        prop_assert!(site < model.sites.len());
                    }
                }
            }
        }
    }
}
