//! [`Spool`]: the in-memory queue of unacknowledged entries over the journal and the state
//! file. This is where the ordering of durable writes (the crash rules in the module doc)
//! is decided; the files themselves are written by `journal` and `state`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use log::{debug, info, warn};
use serde_json::{Map, Value};

use super::entry::{Entry, Kind, Stored, params_with_cursor};
use super::error::{AckError, SpoolError};
use super::journal::Journal;
use super::recover::Replay;
use super::state::{self, State, VERSION};
use super::{SpoolLimits, compaction, record};
use crate::statefs;

/// File name of the journal inside the spool directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// File name of the state file inside the spool directory.
pub const STATE_FILE: &str = "state.json";

/// The durable spool of inbound messages. One owner (the daemon's router thread); one
/// process per directory (the daemon's instance lock guarantees it).
pub struct Spool {
    state_path: PathBuf,
    limits: SpoolLimits,
    journal: Journal,
    /// Unacknowledged entries in cursor order: the only copy of message text in memory,
    /// bounded by `limits` (except after a restart with lowered limits; see [`Spool::open`]).
    queue: VecDeque<Stored>,
    /// Journal bytes of `queue`.
    bytes: u64,
    acked: u64,
    next_cursor: u64,
    high_water: BTreeMap<String, u64>,
    /// What `state.json` holds now, so an unchanged state is not rewritten.
    saved: State,
}

/// A summary only: a derived `Debug` would print every queued message's text into
/// whatever log line formats the spool.
impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("state_path", &self.state_path)
            .field("len", &self.queue.len())
            .field("bytes", &self.bytes)
            .field("acked", &self.acked)
            .field("last_cursor", &self.last_cursor())
            .field("high_water", &self.high_water)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Open (creating `dir` 0700) and recover: replay the journal, drop entries at or below
    /// the acked cursor, cut off a torn last line (a crash mid-append) with a warning, skip
    /// corrupt lines with a warning naming file and line, and rebuild the per-source
    /// high-water marks as max(state, journal). The next cursor is
    /// max(state's `nextCursor`, last journal cursor + 1, acked + 1).
    ///
    /// Everything found is kept even if it exceeds `limits` (say, they were lowered): nothing
    /// is dropped, appends just fail with `Full` until the agent catches up. Compacts at once
    /// if the journal is mostly dead. Errors: the directory or a file cannot be created or
    /// read, or `state.json` is corrupt (the message says what to do).
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        statefs::ensure_dir(dir)?;
        let state_path = dir.join(STATE_FILE);
        let journal_path = dir.join(JOURNAL_FILE);
        let saved = State::load(&state_path)?;
        state::remove_stale_temps(&state_path);

        let mut replay = Replay::new(&journal_path, &saved);
        let journal = Journal::open(&journal_path, |n, line| replay.line(n, line))?;
        let next_cursor = saved.next_cursor.max(replay.last_cursor + 1).max(saved.acked + 1);
        let mut spool = Spool {
            limits,
            journal,
            queue: replay.queue,
            bytes: replay.live_bytes,
            acked: saved.acked,
            next_cursor,
            high_water: replay.high_water,
            saved,
            state_path,
        };
        if let Some(first) = spool.queue.front() {
            info!(
                "spool: {} unacknowledged messages to deliver (cursors {}..={})",
                spool.len(),
                first.entry.cursor,
                spool.last_cursor()
            );
        }
        spool.compact_if_due();
        Ok(spool)
    }

    /// Highest source sequence number ever appended for `source` (e.g. Telegram
    /// `update_id`), surviving acks, compaction and restarts. `None` if never.
    pub fn high_water(&self, source: &str) -> Option<u64> {
        self.high_water.get(source).copied()
    }

    /// Append a batch from one source, durably, in one write and one `fdatasync`.
    ///
    /// Each item is `(source_seq, params)` with `params` the `channel.message` params
    /// without `cursor`. Sequence numbers are taken to rise within a source: an item whose
    /// number is not above the source's high-water mark (as raised by the items before it
    /// in this batch) is a duplicate, re-fetched after a crash between append and offset
    /// confirmation, and is skipped. Kept items get consecutive cursors and
    /// `"cursor":"N"` in their params.
    ///
    /// Returns the new entries (empty, with no disk write, if all were duplicates). Only
    /// after `Ok` may the caller confirm the platform offset. On `Err` nothing of the batch
    /// counts: cursors, high-water mark, length and bytes are unchanged, and a `Full` batch
    /// did not touch the disk at all.
    pub fn append(
        &mut self,
        source: &str,
        batch: Vec<(u64, Map<String, Value>)>,
    ) -> Result<Vec<Entry>, SpoolError> {
        self.append_kind(source, Kind::Message, batch)
    }

    /// [`Spool::append`] for entries of `kind` (button presses are `Kind::Action`).
    pub fn append_kind(
        &mut self,
        source: &str,
        kind: Kind,
        batch: Vec<(u64, Map<String, Value>)>,
    ) -> Result<Vec<Entry>, SpoolError> {
        let mut mark = self.high_water(source);
        let mut fresh: Vec<Stored> = Vec::new();
        let mut buf = Vec::new();
        for (seq, params) in batch {
            if mark.is_some_and(|m| seq <= m) {
                debug!("spool: {source} #{seq} is already spooled; skipping the duplicate");
                continue;
            }
            mark = Some(seq);
            let cursor = self.next_cursor + fresh.len() as u64;
            let params = params_with_cursor(params, cursor);
            let start = buf.len();
            record::encode(&mut buf, cursor, source, seq, kind, &params);
            fresh.push(Stored {
                entry: Entry {
                    cursor,
                    source: source.to_string(),
                    kind,
                    params,
                },
                seq,
                bytes: (buf.len() - start) as u64,
            });
        }
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        if !self
            .limits
            .admits(self.queue.len() + fresh.len(), self.bytes + buf.len() as u64)
        {
            return Err(SpoolError::Full {
                entries: self.queue.len(),
                bytes: self.bytes,
                limits: self.limits,
            });
        }
        self.journal.append(&buf)?;

        // Durable: only now does the batch exist, in memory as on disk.
        self.next_cursor += fresh.len() as u64;
        self.bytes += buf.len() as u64;
        if let Some(m) = mark {
            self.high_water.insert(source.to_string(), m);
        }
        let entries = fresh.iter().map(|s| s.entry.clone()).collect();
        self.queue.extend(fresh);
        Ok(entries)
    }

    /// Acknowledge `cursor` and everything before it; returns how many entries that removed.
    ///
    /// The new acked cursor is in `state.json` (atomically, durably) before this returns
    /// `Ok`, and before anything leaves memory. A cursor at or below the acked one is a
    /// no-op `Ok(0)`; one past the last assigned is [`AckError::Unknown`]. Compacts the
    /// journal when its acknowledged part has grown large; a failed compaction is only
    /// logged, since the ack itself already holds and the next ack retries it.
    pub fn ack(&mut self, cursor: u64) -> Result<usize, AckError> {
        if cursor > self.last_cursor() {
            return Err(AckError::Unknown {
                cursor,
                last: self.last_cursor(),
            });
        }
        if cursor <= self.acked {
            return Ok(0);
        }
        self.save_state(cursor)?;
        self.acked = cursor;
        let n = self.queue.partition_point(|s| s.entry.cursor <= cursor);
        for gone in self.queue.drain(..n) {
            self.bytes -= gone.bytes;
        }
        self.compact_if_due();
        Ok(n)
    }

    /// Rewrite the journal to hold only the unacknowledged entries, now.
    ///
    /// `state.json` is brought up to date first, so the high-water marks and next cursor
    /// that the dropped lines carried are never lost; then the journal is replaced
    /// atomically. A crash at any point leaves a spool that recovers to the same contents.
    /// Usually automatic (on ack and open); public for operators and tests.
    pub fn compact(&mut self) -> Result<(), SpoolError> {
        self.save_state(self.acked)?;
        let mut buf = Vec::with_capacity(self.bytes as usize);
        let mut sizes = Vec::with_capacity(self.queue.len());
        for s in &self.queue {
            let start = buf.len();
            record::encode(
                &mut buf,
                s.entry.cursor,
                &s.entry.source,
                s.seq,
                s.entry.kind,
                &s.entry.params,
            );
            sizes.push((buf.len() - start) as u64);
        }
        self.journal.replace(&buf)?;
        // Lines re-encode identically unless another writer formatted them differently;
        // recount so `bytes` stays exactly the live share of the file.
        for (s, size) in self.queue.iter_mut().zip(sizes) {
            s.bytes = size;
        }
        self.bytes = buf.len() as u64;
        Ok(())
    }

    /// Unacknowledged entries with cursor > `after`, in order, at most `limit`.
    pub fn entries_after(&self, after: u64, limit: usize) -> Vec<Entry> {
        let start = self.queue.partition_point(|s| s.entry.cursor <= after);
        self.queue
            .range(start..)
            .take(limit)
            .map(|s| s.entry.clone())
            .collect()
    }

    /// The last acknowledged cursor (0 if none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The last assigned cursor (0 if none).
    pub fn last_cursor(&self) -> u64 {
        self.next_cursor - 1
    }

    /// Unacknowledged entries.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Unacknowledged entries per channel, for `channels.status`. A source may name an
    /// account within its channel (`telegram/123`); the count is per channel.
    pub fn len_by_source(&self) -> std::collections::HashMap<&str, usize> {
        let mut counts = std::collections::HashMap::new();
        for s in &self.queue {
            let channel = s.entry.source.split('/').next().unwrap_or_default();
            *counts.entry(channel).or_insert(0) += 1;
        }
        counts
    }

    /// No unacknowledged entries.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Journal bytes of the unacknowledged entries (what counts against `max_bytes`).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The limits in force.
    pub fn limits(&self) -> SpoolLimits {
        self.limits
    }

    /// Journal fsyncs since open: one per non-empty append, plus one per compaction or
    /// torn-tail repair. For metrics, and for tests of the one-fsync-per-batch goal.
    pub fn sync_count(&self) -> u64 {
        self.journal.syncs()
    }

    /// Journal bytes that are acknowledged (or corrupt) and wait for compaction.
    fn dead_bytes(&self) -> u64 {
        self.journal.len().saturating_sub(self.bytes)
    }

    fn compact_if_due(&mut self) {
        if compaction::due(self.dead_bytes(), self.journal.len()) {
            if let Err(e) = self.compact() {
                warn!("spool: compaction failed, will retry on a later ack: {e}");
            }
        }
    }

    /// Make `state.json` say `acked` and the current next cursor and marks, unless it
    /// already does.
    fn save_state(&mut self, acked: u64) -> io::Result<()> {
        let state = State {
            version: VERSION,
            acked,
            next_cursor: self.next_cursor,
            high_water: self.high_water.clone(),
        };
        if state != self.saved {
            state.save(&self.state_path)?;
            self.saved = state;
        }
        Ok(())
    }
}
