//! Rebuilding the in-memory spool from `state.json` and the journal's lines at open.
//!
//! The rules (why they are safe is in the module doc):
//! - a line that does not decode, or whose cursor is not above the previous line's, is
//!   skipped with a warning naming the file and line: recovery never stops on one bad
//!   record, and the queue stays in cursor order;
//! - every good line raises its source's high-water mark and the last cursor seen, acked or
//!   not, so high-water = max(state, journal);
//! - lines at or below the acked cursor are dropped, the rest are queued.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use log::warn;

use super::entry::{Entry, Stored};
use super::record;
use super::state::State;

/// The spool's contents as replay finds them.
#[derive(Debug)]
pub(crate) struct Replay<'a> {
    path: &'a Path,
    acked: u64,
    /// Unacknowledged entries, in cursor order.
    pub queue: VecDeque<Stored>,
    /// Per source, the highest sequence number in the state or any good line.
    pub high_water: BTreeMap<String, u64>,
    /// The highest cursor on any good line (0 if none).
    pub last_cursor: u64,
    /// Journal bytes of the queued entries.
    pub live_bytes: u64,
}

impl<'a> Replay<'a> {
    /// Start from the persisted state; `path` is the journal, for warnings.
    pub(crate) fn new(path: &'a Path, state: &State) -> Replay<'a> {
        Replay {
            path,
            acked: state.acked,
            queue: VecDeque::new(),
            high_water: state.high_water.clone(),
            last_cursor: 0,
            live_bytes: 0,
        }
    }

    /// Take one journal line (without its newline).
    pub(crate) fn line(&mut self, number: usize, line: &[u8]) {
        let rec = match record::decode(line) {
            Ok(r) => r,
            Err(why) => {
                warn!(
                    "{}: line {number}: skipping a corrupt record ({why}); its message is lost",
                    self.path.display()
                );
                return;
            }
        };
        if rec.cursor <= self.last_cursor {
            warn!(
                "{}: line {number}: skipping a record with cursor {} after cursor {} (out of order)",
                self.path.display(),
                rec.cursor,
                self.last_cursor
            );
            return;
        }
        self.last_cursor = rec.cursor;
        let mark = self.high_water.entry(rec.source.clone()).or_insert(rec.seq);
        *mark = (*mark).max(rec.seq);
        if rec.cursor <= self.acked {
            return;
        }
        // The newline counts: `bytes` is the line's share of the file.
        let bytes = line.len() as u64 + 1;
        self.live_bytes += bytes;
        self.queue.push_back(Stored {
            entry: Entry {
                cursor: rec.cursor,
                source: rec.source,
                kind: rec.kind,
                params: rec.params,
            },
            seq: rec.seq,
            bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cursor: u64, source: &str, seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        record::encode(
            &mut out,
            cursor,
            source,
            seq,
            super::super::entry::Kind::Message,
            &format!("{{\"cursor\":\"{cursor}\"}}"),
        );
        out.pop();
        out
    }

    #[test]
    fn drops_acked_skips_bad_and_keeps_marks() {
        let state = State {
            acked: 2,
            high_water: [("telegram".to_string(), 5), ("old".to_string(), 9)].into(),
            ..State::default()
        };
        let path = Path::new("/s/journal.jsonl");
        let mut r = Replay::new(path, &state);
        r.line(1, &line(1, "telegram", 10));
        r.line(2, &line(2, "discord", 3));
        r.line(3, b"{garbage");
        r.line(4, &line(3, "telegram", 11));
        r.line(5, &line(3, "telegram", 99)); // out of order: skipped, mark untouched
        r.line(6, &line(4, "discord", 4));
        let cursors: Vec<u64> = r.queue.iter().map(|s| s.entry.cursor).collect();
        assert_eq!(cursors, vec![3, 4]);
        assert_eq!(r.last_cursor, 4);
        assert_eq!(r.high_water["telegram"], 11);
        assert_eq!(r.high_water["discord"], 4);
        assert_eq!(r.high_water["old"], 9);
        assert_eq!(
            r.live_bytes,
            (line(3, "telegram", 11).len() + line(4, "discord", 4).len() + 2) as u64
        );
    }
}
