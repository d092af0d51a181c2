//! The admin state on disk, so that a drain survives a restart.
//!
//! An operator who drained a site for maintenance must not get traffic
//! sent there because the server restarted, so every admin change is
//! written to a small JSON file next to the config before the API answers,
//! and the file is read before the first table is built. It is written to
//! a temporary file in the same directory and renamed over the old one, so
//! a crash leaves either the old or the new state, never half of one. A
//! state file that exists but cannot be read stops the server from
//! starting, with the reason: serving as if nothing were drained could send
//! users to a site that is down for maintenance. Entries for pools or
//! addresses the config no longer has are kept, so that editing the config
//! back and forth loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AdminKey, AdminState, Forced, Stamp};

/// The file's format version: 2 adds when and where each setting was made
/// (for `peers.share_admin`); version 1 files are read as they are.
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    #[serde(default)]
    drained: BTreeSet<String>,
    #[serde(default)]
    forced: BTreeMap<IpAddr, ForcedText>,
    /// `pool:ID` or `address:IP` → when and where it was last set.
    #[serde(default)]
    stamps: BTreeMap<String, StampText>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StampText {
    at_ms: u64,
    node: String,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ForcedText {
    Up,
    Down,
}

/// Reads the admin state from `path`; no file means no drains and no
/// overrides. The error names the file and says what to do.
pub fn load(path: &Path) -> Result<AdminState, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AdminState::default());
        }
        Err(error) => {
            return Err(format!(
                "{}: cannot read the state file: {error}",
                path.display()
            ));
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|error| {
        format!(
            "{}: the state file (drains and overrides) is not valid: {error}; fix it, or \
             remove it to start with no drains and no overrides",
            path.display()
        )
    })?;
    if !(1..=VERSION).contains(&file.version) {
        return Err(format!(
            "{}: state file version {} is not known (this steer writes version {VERSION})",
            path.display(),
            file.version
        ));
    }
    let mut stamps = BTreeMap::new();
    for (key, stamp) in file.stamps {
        let Some(key) = AdminKey::parse(&key) else {
            return Err(format!(
                "{}: the state file names \"{key}\", which is neither pool:ID nor address:IP; \
                 fix it, or remove it to start with no drains and no overrides",
                path.display()
            ));
        };
        stamps.insert(
            key,
            Stamp {
                at_ms: stamp.at_ms,
                node: stamp.node,
            },
        );
    }
    Ok(AdminState {
        stamps,
        drained: file.drained,
        forced: file
            .forced
            .into_iter()
            .map(|(address, forced)| {
                let forced = match forced {
                    ForcedText::Up => Forced::Up,
                    ForcedText::Down => Forced::Down,
                };
                (address, forced)
            })
            .collect(),
    })
}

/// Writes `state` to `path` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, state: &AdminState) -> std::io::Result<()> {
    let file = StateFile {
        version: VERSION,
        drained: state.drained.clone(),
        forced: state
            .forced
            .iter()
            .map(|(address, forced)| {
                let forced = match forced {
                    Forced::Up => ForcedText::Up,
                    Forced::Down => ForcedText::Down,
                };
                (*address, forced)
            })
            .collect(),
        stamps: state
            .stamps
            .iter()
            .map(|(key, stamp)| {
                let stamp = StampText {
                    at_ms: stamp.at_ms,
                    node: stamp.node.clone(),
                };
                (key.to_text(), stamp)
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    text.push('\n');
    crate::durable::replace(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_is_empty() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("steer.state.json");
        assert_eq!(load(&path), Ok(AdminState::default()));
        let mut state = AdminState::default();
        state.drained.insert("fra".to_owned());
        state
            .forced
            .insert("2001:db8::1".parse().expect("ip"), Forced::Down);
        state
            .forced
            .insert("192.0.2.1".parse().expect("ip"), Forced::Up);
        state.stamps.insert(
            AdminKey::Pool("fra".to_owned()),
            Stamp {
                at_ms: 1_765_000_000_123,
                node: "fra-1".to_owned(),
            },
        );
        save(&path, &state).expect("save");
        assert_eq!(load(&path), Ok(state.clone()));
        // Saving again replaces the file, and leaves no temporary behind.
        state.drained.clear();
        save(&path, &state).expect("save");
        assert_eq!(load(&path), Ok(state));
        let names: Vec<_> = std::fs::read_dir(directory.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("steer.state.json")]);
    }

    #[test]
    fn a_broken_file_is_an_error_that_names_it() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("steer.state.json");
        std::fs::write(&path, "{\"version\": 1, \"drained\": [\"fra\"").expect("write");
        let error = load(&path).expect_err("broken");
        assert!(error.contains("steer.state.json"), "{error}");
        assert!(error.contains("remove it"), "{error}");
        // A version 1 file (no stamps) is read as it is.
        std::fs::write(&path, "{\"version\": 1, \"drained\": [\"fra\"]}").expect("write");
        let old = load(&path).expect("version 1");
        assert!(old.drained.contains("fra") && old.stamps.is_empty());
        std::fs::write(
            &path,
            "{\"version\": 2, \"stamps\": {\"site:fra\": {\"at_ms\": 1, \"node\": \"a\"}}}",
        )
        .expect("write");
        assert!(load(&path).expect_err("bad key").contains("site:fra"));
        std::fs::write(&path, "{\"version\": 7}").expect("write");
        assert!(load(&path).expect_err("version").contains("version 7"));
        std::fs::write(
            &path,
            "{\"version\": 1, \"forced\": {\"192.0.2.1\": \"sideways\"}}",
        )
        .expect("write");
        assert!(load(&path).is_err());
    }
}
