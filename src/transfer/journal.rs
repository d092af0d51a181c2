//! The IXFR history of each zone, kept on disk so that a restart does not
//! make every secondary transfer whole zones again.
//!
//! After a reload that moves a zone's serial, the zone's changes (what an
//! IXFR sends) are written to `journal/<zone>.ixfr` next to the config
//! file, with the serial they lead to and a SHA-256 of the zone's records
//! as encoded for transfers. At start, a zone takes its history back only
//! when both match the zone just loaded: a file edited while Steer was
//! down, or a journal from another version, is ignored and the secondaries
//! get the zone whole, as before. The file is an optimization, never a
//! source of data: it is written without fsync, and a damaged one is
//! ignored with a warning.

use std::io;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

/// Where journals are kept, relative to the config file's directory.
pub const DIRECTORY: &str = "journal";

const MAGIC: &[u8; 12] = b"STEER-IXFR1\n";

/// A zone's changes, oldest first: each the serial it starts from, its
/// records back to back and where each ends.
pub(super) type Changes = Vec<(u32, Vec<u8>, Vec<u32>)>;

/// A history as read back.
pub(super) struct Saved {
    /// The serial the history leads to.
    pub serial: u32,
    /// The SHA-256 of the zone's transfer records at that serial.
    pub digest: [u8; 32],
    /// The changes.
    pub changes: Changes,
}

/// The SHA-256 of `wire`.
pub(crate) fn digest(wire: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, wire).as_ref());
    out
}

/// The journal of `zone` under `directory`.
pub(super) fn path_of(directory: &Path, zone: &Name) -> PathBuf {
    crate::config::zone_file(directory, zone, "ixfr")
}

/// Writes `changes` leading to `serial` (records digest `digest`) to `path`,
/// replacing it whole.
pub(super) fn write(
    path: &Path,
    serial: u32,
    digest: &[u8; 32],
    changes: &[(u32, &[u8], &[u32])],
) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(
        64 + changes
            .iter()
            .map(|(_, wire, ends)| 12 + wire.len() + 4 * ends.len())
            .sum::<usize>(),
    );
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&serial.to_be_bytes());
    bytes.extend_from_slice(digest);
    bytes.extend_from_slice(&(changes.len() as u32).to_be_bytes());
    for (from, wire, ends) in changes {
        bytes.extend_from_slice(&from.to_be_bytes());
        bytes.extend_from_slice(&(wire.len() as u32).to_be_bytes());
        bytes.extend_from_slice(wire);
        bytes.extend_from_slice(&(ends.len() as u32).to_be_bytes());
        for end in *ends {
            bytes.extend_from_slice(&end.to_be_bytes());
        }
    }
    // Two reloads in a row save from two threads: one at a time, so that
    // the later history is the one left.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    crate::durable::replace(path, &bytes)
}

/// Reads the journal at `path`: `None` when there is none, or when it is
/// damaged (said in the log).
pub(super) fn read(path: &Path) -> Option<Saved> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(file = %path.display(), "cannot read an IXFR journal: {error}");
            return None;
        }
    };
    let saved = parse(&bytes);
    if saved.is_none() {
        tracing::warn!(file = %path.display(), "an IXFR journal is damaged; ignored");
    }
    saved
}

fn parse(bytes: &[u8]) -> Option<Saved> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let serial = reader.u32()?;
    let digest: [u8; 32] = reader.take(32)?.try_into().ok()?;
    let count = reader.u32()?;
    let mut changes = Vec::new();
    for _ in 0..count {
        let from = reader.u32()?;
        let length = reader.u32()? as usize;
        let wire = reader.take(length)?.to_vec();
        let ends_count = reader.u32()? as usize;
        let mut ends = Vec::with_capacity(ends_count.min(bytes.len() / 4));
        for _ in 0..ends_count {
            ends.push(reader.u32()?);
        }
        // Every record ends inside the change, in order.
        let ordered = ends.windows(2).all(|pair| pair[0] < pair[1]);
        if !ordered || ends.last().is_some_and(|&end| end as usize != wire.len()) {
            return None;
        }
        changes.push((from, wire, ends));
    }
    (reader.at == bytes.len()).then_some(Saved {
        serial,
        digest,
        changes,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(length)?)?;
        self.at += length;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reads_back_and_a_damaged_one_is_ignored() {
        let directory = tempfile::tempdir().expect("directory");
        let path = path_of(
            directory.path(),
            &Name::from_ascii("Example.Test.").expect("name"),
        );
        assert!(path.ends_with("example.test.ixfr"));
        let digest = super::digest(b"records");
        write(
            &path,
            9,
            &digest,
            &[(7, b"abcd", &[1, 4]), (8, b"xy", &[2])],
        )
        .expect("written");
        let saved = read(&path).expect("read back");
        assert_eq!(saved.serial, 9);
        assert_eq!(saved.digest, digest);
        assert_eq!(
            saved.changes,
            vec![
                (7, b"abcd".to_vec(), vec![1, 4]),
                (8, b"xy".to_vec(), vec![2])
            ]
        );
        // Cut short, or with ends past the records: ignored.
        let bytes = std::fs::read(&path).expect("bytes");
        for cut in [bytes.len() - 1, 20, 5] {
            std::fs::write(&path, &bytes[..cut]).expect("written");
            assert!(read(&path).is_none(), "cut at {cut}");
        }
        write(&path, 9, &digest, &[(7, b"abcd", &[5])]).expect("written");
        assert!(read(&path).is_none());
        assert!(read(&directory.path().join("none.ixfr")).is_none());
    }
}
