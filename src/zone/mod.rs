//! Zone files → validated zones (control plane).
//!
//! Every `*.zone` file in the zones directory is one zone; its apex is the
//! file name without `.zone` (`example.test.zone` → `example.test.`). Files
//! are RFC 1035 master format (`$ORIGIN`, `$TTL`, `$INCLUDE`, relative names,
//! parentheses across lines, comments, quoted strings), BIND's
//! `$GENERATE`, and RFC 3597's `TYPEnnn`, `CLASS1` and generic data
//! (`\# length hex`). Record data is parsed
//! by hickory-proto; this module tracks file and line so that every error an
//! operator sees names `file:line`. Validation rejects a zone as a whole: a
//! broken zone is never half-served.
//!
//! Never used on the query path.
//!
//! Submodules: `lexer` (text → entries with line numbers), `parser`
//! (directives, owners, TTLs, includes), `generate` (`$GENERATE` ranges and
//! substitutions), `rdata` (record data, names, TTL units, escapes) and
//! `validate` (whole-zone rules), `lint` (warnings about data that
//! loads but dangles) and `write` (records back to a zone file that loads
//! to the same records, for transferred zones).

mod generate;
mod lexer;
mod lint;

pub use lint::lint;
mod parser;
mod rdata;
mod validate;
mod write;

pub use write::write_zone;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{Name, Record};
use rustc_hash::FxHashMap;

/// Where a record (or an error) comes from: file and 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file the record was read from (an `$INCLUDE`d file names itself).
    pub file: Arc<Path>,
    /// 1-based line where the record starts.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.file.display(), self.line)
    }
}

/// One record of a zone and where it was written.
#[derive(Clone, Debug)]
pub struct ZoneRecord {
    /// The record: owner is absolute, class IN.
    pub record: Record,
    /// File and line of the record.
    pub location: Location,
}

/// A parsed and validated zone.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The zone apex (absolute, lower case as written in the file name).
    pub origin: Name,
    /// The zone file.
    pub file: PathBuf,
    /// SOA serial, for `/status`.
    pub serial: u32,
    /// All records, in file order. Exactly one SOA, at the apex.
    pub records: Vec<ZoneRecord>,
    /// Set when the zone was signed ([`crate::dnssec::sign_zone`]): its
    /// records then include DNSKEY, NSEC and RRSIG.
    pub signing: Option<crate::dnssec::Signing>,
    /// What signs the zone's steered answers, when it is signed.
    pub signer: Option<std::sync::Arc<crate::dnssec::OnlineSigner>>,
}

/// The zone of `zones` that answers for `name`: the one with the deepest
/// apex at or above it (a child zone's names are the child's).
pub fn holding_zone(zones: &[Zone], name: &Name) -> Option<usize> {
    zones
        .iter()
        .enumerate()
        .filter(|(_, zone)| zone.origin.zone_of(name))
        .max_by_key(|(_, zone)| zone.origin.num_labels())
        .map(|(index, _)| index)
}

/// An error in a zone file, with its location when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line, when the error belongs to a line.
    pub line: Option<u32>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                formatter,
                "{}:{}: {}",
                self.file.display(),
                line,
                self.message
            ),
            None => write!(formatter, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ZoneError {}

/// Loads every `*.zone` file in `dir` (sorted by file name). The apex of each
/// zone is the file name without `.zone`, lower-cased (`example.test.zone` →
/// `example.test.`). Returns all zones, or every error of every file (never a
/// partial set).
pub fn load_dir(dir: &Path) -> Result<Vec<Zone>, Vec<ZoneError>> {
    load_dir_allowing_empty(dir, false)
}

/// [`load_dir`], where a directory without zone files is no error when
/// `allow_empty` (a node that serves secondary zones only).
pub fn load_dir_allowing_empty(dir: &Path, allow_empty: bool) -> Result<Vec<Zone>, Vec<ZoneError>> {
    load_dir_reusing(dir, allow_empty, &|_| None)
}

/// [`load_dir_allowing_empty`], taking the zone of a file from `parsed`
/// when it has it (a zone an update batch has just parsed) instead of
/// parsing the file again.
pub fn load_dir_reusing(
    dir: &Path,
    allow_empty: bool,
    parsed: &dyn Fn(&Path) -> Option<Zone>,
) -> Result<Vec<Zone>, Vec<ZoneError>> {
    let directory_error = |message: String| ZoneError {
        file: dir.to_path_buf(),
        line: None,
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|error| {
        vec![directory_error(format!(
            "cannot read the zones directory: {error}"
        ))]
    })?;
    let mut errors = Vec::new();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                errors.push(directory_error(format!(
                    "cannot read the zones directory: {error}"
                )));
                continue;
            }
        };
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            if entry.file_name().to_string_lossy().ends_with(".zone") {
                errors.push(ZoneError {
                    file: path,
                    line: None,
                    message: "file name is not UTF-8".to_owned(),
                });
            }
            continue;
        };
        // Directories and other non-files named `*.zone` are not zones; the
        // metadata call follows symlinks so linked zone files still load.
        if file_name.ends_with(".zone")
            && std::fs::metadata(&path).is_ok_and(|metadata| metadata.is_file())
        {
            files.push((file_name, path));
        }
    }
    if files.is_empty() && errors.is_empty() && !allow_empty {
        errors.push(directory_error(
            "no .zone files in the zones directory".to_owned(),
        ));
    }
    files.sort();

    let mut zones = Vec::with_capacity(files.len());
    let mut apexes: FxHashMap<Name, PathBuf> = FxHashMap::default();
    for (file_name, path) in files {
        let stem = file_name.strip_suffix(".zone").unwrap_or(&file_name);
        let apex = match zone_name(stem) {
            Ok(apex) => apex,
            Err(reason) => {
                let message = format!("file name does not name a zone: {reason}");
                errors.push(ZoneError {
                    file: path,
                    line: None,
                    message,
                });
                continue;
            }
        };
        if let Some(first) = apexes.get(&apex) {
            let message = format!("zone {apex} is already loaded from {}", first.display());
            errors.push(ZoneError {
                file: path,
                line: None,
                message,
            });
            continue;
        }
        apexes.insert(apex.clone(), path.clone());
        if let Some(zone) = parsed(&path).filter(|zone| zone.origin == apex) {
            zones.push(zone);
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    errors.push(ZoneError {
                        file: path,
                        line: None,
                        message: "zone file is not UTF-8 text".to_owned(),
                    });
                    continue;
                }
            },
            Err(error) => {
                errors.push(ZoneError {
                    file: path,
                    line: None,
                    message: format!("cannot read the zone file: {error}"),
                });
                continue;
            }
        };
        match parse_zone(&text, &path, &apex) {
            Ok(zone) => zones.push(zone),
            Err(zone_errors) => errors.extend(zone_errors),
        }
    }
    if errors.is_empty() {
        Ok(zones)
    } else {
        Err(errors)
    }
}

/// The apex a zone file name stands for: lower case, absolute.
fn zone_name(stem: &str) -> Result<Name, String> {
    if stem.is_empty() {
        return Err("the name before .zone is empty".to_owned());
    }
    rdata::parse_name(&stem.to_ascii_lowercase(), &Name::root())
}

/// Records in zone file syntax (as [`write_zone`] writes them), not checked
/// as a zone: the dynamic updates kept over a zone file.
pub fn parse_records(
    text: &str,
    file: &Path,
    origin: &Name,
) -> Result<Vec<ZoneRecord>, Vec<ZoneError>> {
    let parsed = parser::parse(text, file, origin);
    if parsed.errors.is_empty() {
        Ok(parsed.records)
    } else {
        Err(parsed.errors)
    }
}

/// The zone `origin` made of `records`, checked as a zone file is (`file`
/// names it in messages).
pub fn zone_of_records(
    origin: &Name,
    file: &Path,
    mut records: Vec<ZoneRecord>,
) -> Result<Zone, Vec<ZoneError>> {
    let serial = validate::validate(origin, file, &mut records, true)?;
    Ok(Zone {
        origin: origin.clone(),
        file: file.to_path_buf(),
        serial,
        records,
        signing: None,
        signer: None,
    })
}

/// Parses and validates one zone from text (used by [`load_dir`], tests and
/// a fuzz target). `file` is only used for locations and messages and for
/// resolving relative `$INCLUDE` paths; `origin` is the apex (made absolute
/// if it is not).
pub fn parse_zone(text: &str, file: &Path, origin: &Name) -> Result<Zone, Vec<ZoneError>> {
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let parsed = parser::parse(text, file, &origin);
    let complete = parsed.errors.is_empty();
    let mut errors = parsed.errors;
    let mut records = parsed.records;
    match validate::validate(&origin, file, &mut records, complete) {
        Ok(serial) if complete => {
            // The parser reserved a record per line; give back what comments
            // and blank lines did not use, since zones live until the next reload.
            if records.capacity() - records.len() > records.len() / 8 {
                records.shrink_to_fit();
            }
            Ok(Zone {
                origin,
                file: file.to_path_buf(),
                serial,
                records,
                signing: None,
                signer: None,
            })
        }
        Ok(_) => Err(errors),
        Err(validation_errors) => {
            errors.extend(validation_errors);
            Err(errors)
        }
    }
}
