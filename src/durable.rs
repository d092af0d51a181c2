//! Files Steer keeps for itself (state files, IXFR journals, transferred
//! zones, update overlays, signatures), replaced whole and durably.
//!
//! Every such file is written the same way, so that a crash or a full
//! disk at any moment leaves either the old file or the new one, never a
//! mix: the parent directory is made if missing (a fresh
//! `server.state_directory`), the bytes go to a temporary file beside the
//! target, named uniquely so that two writers never share one, are synced,
//! and the temporary file is renamed over the target; the directory is
//! synced so that the rename itself survives a power loss. On any error
//! the temporary file is removed and the old file is left as it was.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes`.
///
/// # Errors
///
/// Any I/O error; the previous file is then left as it was.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, |out| out.write_all(bytes))
}

/// Replaces `path` with what `write` writes (buffered: a large file is
/// streamed, not built in memory first).
///
/// # Errors
///
/// Any I/O error, `write`'s included; the previous file is then left as
/// it was.
pub fn replace_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    if let Some(directory) = directory {
        fs::create_dir_all(directory)?;
    }
    let temporary = temporary_beside(path);
    let written = (|| {
        let mut out = BufWriter::new(File::create(&temporary)?);
        write(&mut out)?;
        out.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
        return written;
    }
    // The rename is durable once the directory is synced; the file is
    // already in place, so a failure here is not worth failing the write.
    let _ = File::open(directory.unwrap_or_else(|| Path::new("."))).and_then(|dir| dir.sync_all());
    Ok(())
}

/// `.NAME.PID.N.tmp` beside `path`: hidden, never matching a `*.zone` or
/// other name Steer reads, and unique to this write.
fn temporary_beside(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy());
    path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_in_a_directory_made_for_it() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("state/nested/steer.state.json");
        replace(&path, b"first").expect("written");
        replace(&path, b"second").expect("written again");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        // Nothing else is left beside it.
        let names: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["steer.state.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("journal.ixfr");
        replace(&path, b"old").expect("written");
        let failed = replace_with(&path, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("the disk is full"))
        });
        assert_eq!(failed.expect_err("failed").to_string(), "the disk is full");
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert_eq!(fs::read_dir(directory.path()).expect("list").count(), 1);
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_an_error() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let blocker = directory.path().join("state");
        fs::write(&blocker, b"a file where the directory belongs").expect("written");
        assert!(replace(&blocker.join("steer.latency"), b"model").is_err());
    }
}
