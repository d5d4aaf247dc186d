//! The durable spool: inbound chat messages, kept until the agent acknowledges them.
//!
//! A connector appends a platform batch *before* confirming the platform's offset; the
//! router delivers entries to the agent as `channel.message` in cursor order; the agent's
//! `events.ack {cursor}` removes that entry and everything before it. Unacknowledged
//! entries are delivered again after a reconnect, a restart or a `kill -9`. Nothing the
//! platform was told to forget is lost, and nothing is spooled twice.
//!
//! # Files (in the spool directory, 0700; files 0600)
//!
//! - `journal.jsonl`: append-only, one record per line (format and rationale in `record.rs`):
//!   `{"cursor":N,"source":"telegram","seq":S,"params":{...,"cursor":"N",...}}\n`.
//!   `params` is stored exactly as delivered. A record exists only once its newline is on
//!   disk.
//! - `state.json`: `{"version":1,"acked":A,"nextCursor":C,"highWater":{"telegram":S}}`,
//!   only ever replaced atomically (temp file, fsync, rename, dir fsync). Absent until the
//!   first ack (see `state.rs`).
//! - `.journal.jsonl.compact`, `.state.json.tmp.*`: temp files of an interrupted rewrite;
//!   removed at open.
//!
//! # Crash rules
//!
//! Each durable step is a single atomic or idempotent action, and recovery derives the
//! same spool from any prefix of the steps:
//!
//! 1. **Append** = one `pwrite` of all lines + one `fdatasync`, then (only after `Ok`) the
//!    caller confirms the platform offset. A crash before the fsync completes can leave
//!    some whole lines and a torn last line: open truncates the torn line (it was never
//!    returned, so its cursor was never delivered and may be reused); the whole lines are
//!    recovered, and their sequence numbers enter the high-water marks, so when the
//!    platform hands the unconfirmed batch back the recovered ones are skipped as
//!    duplicates and only the rest get new cursors. A failed append is cut back to the
//!    previous end of file, so no debris precedes the next record.
//! 2. **Ack** = write `state.json` with the new `acked` (and the current `nextCursor` and
//!    marks), then forget the entries in memory. A crash before the rename keeps the old
//!    ack: the agent, which got no answer, sees those messages again (at-least-once for
//!    an unanswered ack, never loss).
//! 3. **Compaction** = write `state.json` first, then atomically replace the journal with
//!    the unacked tail. The state already carries every dropped line's contribution to
//!    the high-water marks and the next cursor, so whichever journal a crash leaves, open
//!    computes the same spool: lines at or below `acked` are dropped either way.
//! 4. **Open** = high-water = max(state, journal lines); next cursor = max(`nextCursor`,
//!    last journal cursor + 1, `acked` + 1). So cursors are never reused and marks never go
//!    back, even when compaction removed every line.
//!
//! A corrupt line in the middle (bit rot, manual edits) is skipped with a warning naming
//! the file and line, as is a line whose cursor is not above the previous one; recovery
//! never panics and never stops on one bad record. A corrupt `state.json` is an error
//! instead: guessing could take duplicates from the platform.
//!
//! Only unacknowledged entries are in memory, as one `VecDeque`, bounded by
//! [`SpoolLimits`]. The spool assumes a single owner: one thread (`&mut self`) and one
//! process per directory, which the daemon's instance lock provides.

mod compaction;
mod entry;
mod error;
mod journal;
mod limits;
mod record;
mod recover;
mod state;
mod store;

#[cfg(test)]
mod tests;

pub use entry::{Entry, Kind};
pub use error::{AckError, SpoolError};
pub use limits::SpoolLimits;
pub use store::{JOURNAL_FILE, STATE_FILE, Spool};
