//! `state.json`: what the journal alone cannot tell after compaction.
//!
//! ```json
//! {"version":1,"acked":41,"nextCursor":57,"highWater":{"telegram":812345}}
//! ```
//!
//! - `acked`: the last acknowledged cursor; everything up to it is gone for good.
//! - `nextCursor`: the next cursor to assign. Compaction may remove every line, and cursors
//!   must never be reused, so the journal cannot be the only record of it.
//! - `highWater`: per source, the highest sequence number ever appended. Compaction removes
//!   acked lines, but a platform may still hand those messages back (a crash between the
//!   append and confirming the offset), so the mark must outlive them.
//!
//! Written only through [`statefs::write_atomic`] (temp file, fsync, rename, dir fsync): a
//! crash leaves the old state or the new, never a torn one. Unknown fields are ignored so a
//! newer emonkd that adds one can still be rolled back; a newer `version` is refused rather
//! than misread.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::statefs;

/// The only format this build writes and understands.
pub(crate) const VERSION: u32 = 1;

/// The contents of `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct State {
    pub version: u32,
    pub acked: u64,
    pub next_cursor: u64,
    /// A `BTreeMap` so the file is written in a stable order (diffable, testable).
    pub high_water: BTreeMap<String, u64>,
}

impl State {
    /// A spool that never acked anything.
    pub(crate) fn fresh() -> State {
        State {
            version: VERSION,
            ..State::default()
        }
    }

    /// Read `path`. A missing file is a fresh spool (nothing was ever acked). A corrupt one
    /// is an error: guessing would either redeliver everything or, worse, forget high-water
    /// marks and take duplicates from the platform, so the operator decides.
    pub(crate) fn load(path: &Path) -> io::Result<State> {
        let Some(text) = statefs::read(path)? else {
            return Ok(State::fresh());
        };
        let state: State = serde_json::from_slice(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: corrupt spool state ({e}); move it aside to start over \
                     (unacknowledged messages are then delivered again)",
                    path.display()
                ),
            )
        })?;
        if state.version > VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: spool state version {} is newer than this emonkd understands ({VERSION}); \
                     run the newer emonkd",
                    path.display(),
                    state.version
                ),
            ));
        }
        // Normalized so the in-memory copy compares equal to what `save` would write.
        Ok(State {
            version: VERSION,
            ..state
        })
    }

    /// Replace `path` atomically and durably with this state.
    pub(crate) fn save(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_vec(&State {
            version: VERSION,
            ..self.clone()
        })
        .map_err(io::Error::other)?;
        text.push(b'\n');
        statefs::write_atomic(path, &text, statefs::FILE_MODE)
    }
}

/// Remove temp files that [`statefs::write_atomic`] left when the process died between creating
/// and renaming one (`.state.json.tmp.PID.N`). Best effort: they hold nothing the real file
/// needs, so failing to remove one is only worth a debug line.
pub(crate) fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                log::debug!(
                    "{}: could not remove a stale temp file: {e}",
                    entry.path().display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(State::load(&path).unwrap(), State::fresh());
        let s = State {
            version: VERSION,
            acked: 4,
            next_cursor: 9,
            high_water: [("telegram".to_string(), 77)].into(),
        };
        s.save(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"version\":1,\"acked\":4,\"nextCursor\":9,\"highWater\":{\"telegram\":77}}\n"
        );
        assert_eq!(State::load(&path).unwrap(), s);

        let stale = dir.path().join(".state.json.tmp.123.0");
        std::fs::write(&stale, b"{").unwrap();
        remove_stale_temps(&path);
        assert!(!stale.exists() && path.exists());
    }

    #[test]
    fn corrupt_or_newer_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"acked\":").unwrap();
        let e = State::load(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("state.json") && e.to_string().contains("move it aside"));
        std::fs::write(&path, b"{\"version\":2}").unwrap();
        assert!(State::load(&path).unwrap_err().to_string().contains("newer"));
        // Unknown fields are tolerated.
        std::fs::write(&path, b"{\"version\":1,\"acked\":3,\"extra\":true}").unwrap();
        assert_eq!(State::load(&path).unwrap().acked, 3);
    }
}
