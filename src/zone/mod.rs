//! Zone files → validated zones (control plane).
//!
//! Every `*.zone` file in the zones directory is one zone; its apex is the
//! file name without `.zone` (`example.test.zone` → `example.test.`). Files
//! are RFC 1035 master format (`$ORIGIN`, `$TTL`, `$INCLUDE`, relative names,
//! parentheses across lines, comments, quoted strings). Record data is parsed
//! by hickory-proto; this module tracks file and line so that every error an
//! operator sees names `file:line`. Validation rejects a zone as a whole: a
//! broken zone is never half-served.
//!
//! Never used on the query path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{Name, Record};

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
            Some(line) => write!(formatter, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(formatter, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ZoneError {}
