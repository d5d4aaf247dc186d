//! `journal.jsonl`: the append-only file of records, and the only code that writes it.
//!
//! Three operations, each with one durability point:
//! - [`Journal::open`] (through `statefs`: never a link, created 0600 with `O_EXCL`)
//!   replays complete lines and cuts off a torn last line (an append the
//!   process or machine died in; it was never confirmed, see the module doc).
//! - [`Journal::append`] puts a whole batch down with one positioned write and one
//!   `fdatasync`: the fsync is the expensive part, so it is paid per platform batch, not
//!   per message.
//! - [`Journal::replace`] swaps in a compacted file atomically (temp file, fsync, rename,
//!   dir fsync).
//!
//! Writes go to an explicit offset (`pwrite`) at the end of the last complete line rather
//! than through `O_APPEND`, so the debris of a failed append can never end up in front of
//! the next record; it is overwritten or truncated instead.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use log::warn;

use super::error::at;
use crate::statefs;

/// The open journal.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// End of the last complete line: where the next append goes. Anything past it is
    /// debris from a failed append.
    len: u64,
    /// A failed append may have left bytes past `len` that its rollback could not remove;
    /// truncate before the next write so replay never sees them.
    dirty: bool,
    /// Journal fsyncs so far, for tests and metrics (the one-fsync-per-batch goal).
    syncs: u64,
    /// Whether the directory entry has been fsynced since open (see [`Journal::open`]).
    dir_synced: bool,
}

impl Journal {
    /// Open or create `path` (0600), feed every complete line to `visit` as
    /// `(line_number, line_without_newline)`, and truncate a torn last line away.
    ///
    /// The parent directory must exist. It is fsynced before the first append, so a newly
    /// created journal's name is as durable as the appends into it; not at open, where it
    /// would cost every start a disk flush (several ms) for a file that may stay empty, and
    /// an empty journal lost in a crash loses nothing.
    pub(crate) fn open(path: &Path, mut visit: impl FnMut(usize, &[u8])) -> io::Result<Journal> {
        // A compaction that died before its rename leaves its temp file; it holds nothing
        // the journal does not (the state was written first), so it just goes.
        match fs::remove_file(temp_path(path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&temp_path(path), e)),
            _ => {}
        }
        let file = statefs::open_or_create(path)?;
        let mut syncs = 0;
        let mut reader = BufReader::with_capacity(64 * 1024, &file);
        let mut line = Vec::new();
        let mut len = 0u64;
        let mut number = 0usize;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| at(path, e))?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                warn!(
                    "{}: line {}: torn last line ({n} bytes without a newline) from an interrupted \
                     append; truncating it away (it was never confirmed to the platform)",
                    path.display(),
                    number + 1
                );
                file.set_len(len).map_err(|e| at(path, e))?;
                file.sync_data().map_err(|e| at(path, e))?;
                syncs += 1;
                break;
            }
            number += 1;
            visit(number, &line[..n - 1]);
            len += n as u64;
        }
        drop(reader);
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            len,
            dirty: false,
            syncs,
            dir_synced: false,
        })
    }

    /// Bytes of complete lines in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Journal fsyncs issued since open (replay repairs, appends, compactions).
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Write `buf` (whole lines) after the last complete line, then `fdatasync`.
    ///
    /// On error the batch does not count: the file is cut back to where it was so a later
    /// append or a replay never sees part of it. Should that cut fail too, the next append
    /// retries it first.
    pub(crate) fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if !self.dir_synced {
            sync_dir(&self.path)?;
            self.dir_synced = true;
        }
        if self.dirty {
            self.file.set_len(self.len).map_err(|e| at(&self.path, e))?;
            self.dirty = false;
        }
        let written = self.file.write_all_at(buf, self.len);
        let result = written.and_then(|()| {
            self.syncs += 1;
            // fdatasync also flushes the size change: it is needed to read the data back.
            self.file.sync_data()
        });
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.dirty = self.file.set_len(self.len).is_err();
                Err(at(&self.path, e))
            }
        }
    }

    /// Atomically replace the whole journal with `contents` (whole lines).
    ///
    /// The new file is written under a temp name, fsynced, and renamed over the journal. The
    /// handle written through is the one kept, so after the rename appends can only go to
    /// the new file, never to the unlinked old one. On `Err` nothing changed: the old
    /// journal stays in use as it was.
    pub(crate) fn replace(&mut self, contents: &[u8]) -> io::Result<()> {
        let tmp = temp_path(&self.path);
        // A leftover of a replace that failed and could not clean up (the open removes
        // one too); removing a link there removes the link, not its target.
        let _ = fs::remove_file(&tmp);
        let file = statefs::create_new(&tmp, statefs::FILE_MODE)?;
        let written = file.write_all_at(contents, 0).and_then(|()| file.sync_all());
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &self.path)) {
            let _ = fs::remove_file(&tmp);
            return Err(at(&self.path, e));
        }
        self.file = file;
        self.len = contents.len() as u64;
        self.dirty = false;
        self.syncs += 1;
        // Only the rename's durability is left. Failing it is not an error: the journal in
        // use is already right, and a crash would bring back the old file, whose extra
        // lines are all acked (the state was saved first) and dropped by replay. Reporting
        // it as a failure would also leave the caller unsure which file is in use.
        if let Err(e) = sync_dir(&self.path) {
            warn!(
                "{}: compacted, but could not make the rename durable: {e}",
                self.path.display()
            );
        }
        Ok(())
    }
}

/// The compaction temp file, next to the journal so the rename stays within one filesystem.
/// A fixed name is enough: one process owns the state dir (the daemon's instance lock).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".compact");
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    statefs::sync_dir(statefs::parent_of(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> (Journal, Vec<(usize, String)>) {
        let mut seen = Vec::new();
        let j = Journal::open(path, |n, l| {
            seen.push((n, String::from_utf8_lossy(l).into_owned()))
        })
        .unwrap();
        (j, seen)
    }

    #[test]
    fn append_replay_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (mut j, seen) = lines(&path);
        assert!(seen.is_empty());
        j.append(b"a\nb\n").unwrap();
        assert_eq!((j.len(), j.syncs()), (4, 1));
        drop(j);

        // A crash mid-append: a partial line with no newline.
        let mut raw = fs::read(&path).unwrap();
        raw.extend_from_slice(b"par");
        fs::write(&path, &raw).unwrap();
        let (mut j, seen) = lines(&path);
        assert_eq!(seen, vec![(1, "a".to_string()), (2, "b".to_string())]);
        assert_eq!(fs::read(&path).unwrap(), b"a\nb\n");
        j.append(b"c\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"a\nb\nc\n");
    }

    #[test]
    fn replace_swaps_the_file_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (mut j, _) = lines(&path);
        j.append(b"old1\nold2\n").unwrap();
        j.replace(b"old2\n").unwrap();
        j.append(b"new\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old2\nnew\n");
        assert_eq!(j.len(), 9);
        assert!(!temp_path(&path).exists());

        // A stale temp file from a compaction that died is removed on open.
        fs::write(temp_path(&path), b"junk").unwrap();
        let (_, seen) = lines(&path);
        assert_eq!(seen.len(), 2);
        assert!(!temp_path(&path).exists());
    }
}
