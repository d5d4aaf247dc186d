//! The one place that opens, creates and replaces files in the state dir, and makes its
//! folders. Every state file (the spool's journal and state, the lock and the restart
//! authorization, Telegram's offset, Slack's seen ids) goes through these primitives, and so
//! must any new one (the media issue's `<state>/media/` and `<state>/outbox/`: make the
//! folder with [`ensure_dir`], write files with [`write_atomic`] or [`create_new`] plus a
//! rename, read them with [`read`]). `service install` writes its files with
//! [`write_atomic`] too, for the `O_EXCL` temp file that no umask can open up.
//!
//! The rules, so that a link or a file planted in the state dir is never followed:
//! - every open uses `O_NOFOLLOW` (a symlink at the final component fails with `ELOOP`,
//!   reported as "is a symbolic link" naming the path) and `O_NONBLOCK` (a planted FIFO
//!   cannot hang the open), then checks that it got a regular file;
//! - a file that is new is created with `O_CREAT|O_EXCL` (which never follows a link
//!   either) and mode 0600, set again with `fchmod` so the umask does not matter;
//! - atomic replacement writes a temp file created that way in the same folder, fsyncs it,
//!   renames it over the target (a rename replaces a link, never its target) and fsyncs the
//!   folder;
//! - folders are made 0700 explicitly and an existing one must be a real folder (not a
//!   link), owned by this user and not writable by group or others ([`ensure_dir`]).
//!
//! `O_NOFOLLOW` guards only the last component; the folders above are made safe once at
//! start by [`audit::prepare_state_dir`]: then nobody but this user (and root) can change
//! anything in the state dir, so the paths used afterwards keep naming what was checked.
//!
//! Errors name the path (`/x/spool/journal.jsonl: ...`); callers add no prefix of their own.

pub mod audit;

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every file in the state dir.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every folder in the state dir.
pub const DIR_MODE: u32 = 0o700;

/// The effective uid: who must own the state dir and everything in it.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Prefix an I/O error with the file it concerns: `io::Error` carries no path, and an
/// operator reading "permission denied" needs to know which file to fix. A symlink refused
/// by `O_NOFOLLOW` (`ELOOP`) is said as such, with what to do.
pub fn at(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return symlink_refused(path);
    }
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The error for a symlink where a state file or folder should be.
pub(crate) fn symlink_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{p} is a symbolic link; emonkd never follows links in its state dir (one there \
             was planted or made by hand); remove it (`rm {p}`) or choose another EMONK_STATE_DIR",
            p = path.display()
        ),
    )
}

/// Make `path` a private folder: create it (and missing parents) with mode 0700, or check
/// an existing one with [`check_dir`]. Parents are created 0700 too (the XDG base
/// directory rule), never loosened when they exist.
pub fn ensure_dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if fs::symlink_metadata(parent).is_err() {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)
                .map_err(|e| at(parent, e))?;
        }
    }
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(at(path, e)),
    }
    check_dir(path)
}

/// An existing state folder must be a folder (not a link to one), owned by this user and
/// not writable by group or others; anything else is refused with the fix. One that is
/// merely readable by others is tightened to 0700: it is ours, and what it exposes
/// (message texts) is nobody else's business.
pub fn check_dir(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| at(path, e))?;
    if let Some(reason) = unsafe_entry(path, &meta) {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, reason));
    }
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a folder; move it away so emonkd can create its state folder there",
                path.display()
            ),
        ));
    }
    tighten_dir(path, &meta)
}

/// Make a checked state folder exactly 0700 (dropping read bits for group and others).
pub(crate) fn tighten_dir(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if meta.mode() & 0o7777 != DIR_MODE {
        fs::set_permissions(path, Permissions::from_mode(DIR_MODE)).map_err(|e| at(path, e))?;
    }
    Ok(())
}

/// Why an entry of the state dir (a folder or a file, as `lstat` saw it) cannot be
/// trusted, if it cannot: a link, something that is neither a plain file nor a folder, an
/// owner other than this user, or write access for group or others. The reason names the
/// path and the fix.
pub(crate) fn unsafe_entry(path: &Path, meta: &fs::Metadata) -> Option<String> {
    let p = path.display();
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Some(symlink_refused(path).to_string());
    }
    let what = if kind.is_dir() {
        "folder"
    } else if kind.is_file() {
        "file"
    } else {
        return Some(format!(
            "{p} is neither a plain file nor a folder; emonkd keeps only those in its state \
             dir; move it away"
        ));
    };
    let me = euid();
    if meta.uid() != me {
        return Some(format!(
            "state {what} {p} is owned by uid {owner}, not by this user (uid {me}), so another \
             user could change what emonkd reads; fix with `chown -R {me} {p}` or choose \
             another EMONK_STATE_DIR",
            owner = meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "state {what} {p} is writable by {who} (mode {mode:04o}), so another user could \
             plant files in it; fix with `chmod -R go-w {p}` after checking its contents, or \
             choose another EMONK_STATE_DIR",
            who = if meta.mode() & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            mode = meta.mode() & 0o7777
        ));
    }
    None
}

/// Open an existing state file to read, never following a link. `Ok(None)` if it does not
/// exist.
pub fn open_read(path: &Path) -> io::Result<Option<File>> {
    match options().read(true).open(path) {
        Ok(file) => regular(path, file).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path, e)),
    }
}

/// The whole content of a state file; `Ok(None)` if it does not exist.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let Some(mut file) = open_read(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| at(path, e))?;
    Ok(Some(bytes))
}

/// Open a state file read-write, creating it (0600, `O_EXCL`) when missing. Never
/// truncates (the lock must not wipe a running gateway's payload) and leaves it 0600.
pub fn open_or_create(path: &Path) -> io::Result<File> {
    // Open first, create only on ENOENT: a create that finds the file (another process won
    // the race) just opens again, and an existing file is never replaced.
    for _ in 0..8 {
        match options().read(true).write(true).open(path) {
            Ok(file) => {
                let file = regular(path, file)?;
                file.set_permissions(Permissions::from_mode(FILE_MODE))
                    .map_err(|e| at(path, e))?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(path, e)),
        }
        match create_new(path, FILE_MODE) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other,
        }
    }
    Err(at(
        path,
        io::Error::other("it keeps appearing and disappearing; is another program using it?"),
    ))
}

/// Create a new file with `O_CREAT|O_EXCL|O_NOFOLLOW`, read-write, with exactly `mode`
/// (set again after the create, because the umask filters the create mode).
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let file = options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| at(path, e))?;
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| at(path, e))?;
    Ok(file)
}

/// Create a fresh temp file (0600) next to the target name `name` in `dir`:
/// `.NAME.tmp.PID.N`. The pid and a counter make names unique between processes and
/// threads; `O_EXCL` makes a stale leftover (say, after pid reuse) a retry instead of an
/// overwrite, and a planted link a refusal.
pub fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last_err = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
        match create_new(&tmp, FILE_MODE) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not create a temp file")))
}

/// Atomic write with `mode` (0600 for state files): temp file in the same folder
/// ([`create_temp`]), write, fsync, rename over the target, fsync the folder.
///
/// Readers (and a crash) see either the old content or the new, never a torn file; the
/// folder fsync makes the rename itself durable. A link at the target is replaced by the
/// file, never followed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_of(path);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy())?;
    let result = (|| {
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })()
    .map_err(|e| at(path, e))
    .and_then(|()| sync_dir(dir));
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy. After a successful
        // rename this fails with NotFound, which is fine to ignore.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsync a folder, so that a create or rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_DIRECTORY)
        .open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| at(dir, e))
}

/// The folder a state file lives in (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `O_NOFOLLOW` for links, `O_NONBLOCK` so that opening a planted FIFO returns at once
/// (it is then refused as not a regular file); on a regular file it changes nothing.
fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    o
}

fn regular(path: &Path, file: File) -> io::Result<File> {
    let meta = file.metadata().map_err(|e| at(path, e))?;
    if meta.is_file() {
        return Ok(file);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is not a regular file; emonkd keeps only plain files there; move it away",
            path.display()
        ),
    ))
}

#[cfg(test)]
mod tests;
