//! The single-instance gateway lock, and how CLI commands find the running gateway.
//!
//! # The file
//! `<state>/locks/gateway.<hash>.lock`, where `<hash>` is the FNV-1a 32-bit hash
//! (offset basis `0x811c9dc5`, prime `0x01000193`) of the bytes of the normalized
//! absolute config path (see [`config_identity`]), printed as 8 lowercase hex digits.
//! FNV-1a is fixed by its definition, unlike `std`'s `DefaultHasher`, whose output may
//! change between Rust releases and would make an upgraded CLI look for the wrong file.
//! One lock per config file means two gateways with different configs can run side by
//! side, and every command given the same `--config` finds the same gateway.
//!
//! # Holding it
//! The daemon holds an exclusive `flock(2)` (via fs2) for its whole life. flock locks
//! belong to the open file description and the kernel drops them when the process dies,
//! so `kill -9` frees the lock at once with no cleanup needed. While held, the file
//! carries a JSON [`LockPayload`] (pid, start time, bound port, ...) that the CLI reads.
//!
//! The file is never deleted, not even on a clean exit: a waiter may already have it
//! open, and if it were unlinked the waiter would lock an orphaned inode while a third
//! process created and locked a fresh file — two gateways. Instead the payload is
//! truncated on release, and whether a gateway runs is decided only by the lock, never by
//! the payload, so a stale payload (after `kill -9`, or with a recycled pid) is harmless.
//!
//! # Restart authorization
//! `SIGUSR1` restarts only when `<lock>.restart` exists (see [`authorize_restart`]): a
//! one-shot file the daemon consumes, so a stray signal cannot restart the gateway.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt as _, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::procinfo;
use crate::statefs;

/// How often [`GatewayLock::acquire`] retries a contended lock.
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Payloads are a few hundred bytes; a larger file is not ours and is not read whole.
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// Environment variable that disables the single-instance lock (tests, experiments).
pub const MULTI_GATEWAY_ENV: &str = "EMONK_ALLOW_MULTI_GATEWAY";

/// FNV-1a, 32 bits. Public so the hash can be checked against other implementations.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The path whose bytes name the lock: `config_path` made absolute, with its *parent
/// directory* canonicalized when that directory exists.
///
/// Canonicalizing the directory resolves `..`, `.` and symlinked directories, so
/// `--config ./emonk.json` and `--config /home/a/.config/emonk/../emonk/emonk.json`
/// name the same lock. The file itself is deliberately not resolved: the default config
/// may not exist yet, and the lock must not move when it is created or re-pointed.
pub fn config_identity(config_path: &Path) -> PathBuf {
    let absolute = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => match fs::canonicalize(dir) {
            Ok(dir) => dir.join(name),
            Err(_) => absolute,
        },
        _ => absolute,
    }
}

/// `<state_dir>/locks/gateway.<8 lowercase hex>.lock` for this config (see module docs).
pub fn lock_path(state_dir: &Path, config_path: &Path) -> PathBuf {
    let identity = config_identity(config_path);
    let hash = fnv1a32(identity.as_os_str().as_encoded_bytes());
    state_dir.join("locks").join(format!("gateway.{hash:08x}.lock"))
}

/// What a running gateway writes into its lock file for the CLI to read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LockPayload {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`; with `pid` it identifies the process across pid
    /// reuse. 0 if `/proc` was unreadable.
    pub start_time: u64,
    /// RFC 3339 UTC, when the payload was written.
    pub created_at: String,
    /// The normalized path the lock name was hashed from ([`config_identity`]).
    pub config_path: String,
    pub host: String,
    /// The port actually bound (never 0, even when `--port 0` was asked for).
    pub port: u16,
    /// Set when this instance came from an authorized restart that could not use the new
    /// config (invalid, or its address could not be bound) and kept the running one: the
    /// reason, for `emonkd restart` to report. An extension of the contract's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_error: Option<String>,
}

impl LockPayload {
    /// A payload describing the calling process, now.
    pub fn for_this_process(config_path: &Path, host: &str, port: u16) -> LockPayload {
        let pid = std::process::id();
        LockPayload {
            pid,
            start_time: procinfo::start_time(pid).unwrap_or(0),
            created_at: procinfo::now_rfc3339(),
            config_path: config_identity(config_path).to_string_lossy().into_owned(),
            host: host.to_owned(),
            port,
            restart_error: None,
        }
    }

    /// True if the process this payload names still exists (and is the same process).
    ///
    /// Used only to decide whether to *mention* a pid in a message. When `/proc` hides
    /// the process (`hidepid`), `kill(pid, 0)` answering "exists" or "not permitted" is
    /// taken as alive, since the start time cannot be compared.
    pub fn plausibly_alive(&self) -> bool {
        match procinfo::start_time(self.pid) {
            Some(_) => procinfo::is_same_process(self.pid, self.start_time),
            None => match procinfo::send_signal(self.pid, 0) {
                Ok(()) => true,
                Err(e) => e.raw_os_error() == Some(libc::EPERM),
            },
        }
    }
}

/// Why the gateway lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another live gateway holds the lock for this config. The caller should exit and
    /// tell the user to stop it (`emonkd stop --config ...`) or use another config.
    /// `waited` is the wait that was asked for.
    AlreadyRunning { pid: Option<u32>, waited: Duration },
    /// The lock file or its directory could not be created, opened or locked. The
    /// caller should exit; the user should check the state directory's ownership and
    /// permissions.
    Io { path: PathBuf, source: io::Error },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::AlreadyRunning { pid, waited } => {
                write!(f, "gateway already running (")?;
                match pid {
                    Some(pid) => write!(f, "pid {pid}")?,
                    None => write!(f, "pid unknown")?,
                }
                write!(f, "); lock timeout after {}ms; {WHAT_TO_DO}", waited.as_millis())
            }
            LockError::Io { path, source } => write!(
                f,
                "cannot use gateway lock file {}: {source}; check that the state directory \
                 exists, is owned by this user and is writable (mode 0700)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::AlreadyRunning { .. } => None,
            LockError::Io { source, .. } => Some(source),
        }
    }
}

/// What a user can do when another gateway holds the lock for the same config.
const WHAT_TO_DO: &str = "stop that gateway with `emonkd stop` (same --config), give this one \
     another --config, or set EMONK_ALLOW_MULTI_GATEWAY=1 to run without the single-instance lock";

/// Said once, as soon as the lock turns out to be held: the wait is not silent.
fn log_contended(file: &File, path: &Path, wait: Duration) {
    let owner = match read_payload(file).filter(LockPayload::plausibly_alive) {
        Some(p) => format!(
            "another gateway (pid {}) holds the lock for config {}",
            p.pid, p.config_path
        ),
        None => format!(
            "another gateway (pid unknown, perhaps still starting) holds the lock {}",
            path.display()
        ),
    };
    log::warn!(
        "{owner}; waiting up to {} s for it to exit. To run this one instead, {WHAT_TO_DO}",
        wait.as_secs_f32()
    );
}

/// The held gateway lock. Dropping it empties the payload and releases the lock.
#[derive(Debug)]
pub struct GatewayLock {
    file: File,
    path: PathBuf,
}

impl GatewayLock {
    /// Creates `<state>/locks` (0700) and the lock file (0600) if needed, then tries an
    /// exclusive lock every 100 ms for up to `wait` (`Duration::ZERO` tries once).
    ///
    /// On success any stale payload is cleared at once, so until [`publish`] the CLI
    /// sees a running gateway with an unknown payload rather than a dead one's details.
    ///
    /// [`publish`]: GatewayLock::publish
    pub fn acquire(path: &Path, wait: Duration) -> Result<GatewayLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            statefs::ensure_dir(dir).map_err(io_err)?;
        }
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            // A fresh open on every attempt: if the file was replaced since the last
            // one, the old descriptor would lock an inode nobody else sees.
            let file = open_lock_file(path, true).map_err(io_err)?;
            match try_lock(&file, Mode::Exclusive) {
                // Someone may have unlinked and recreated the file between our open
                // and our lock; a lock on the old inode would exclude no one, so that
                // case is retried like contention (and stays bounded by `wait`).
                Ok(true) if same_inode(&file, path).map_err(io_err)? => {
                    file.set_len(0).map_err(io_err)?;
                    return Ok(GatewayLock {
                        file,
                        path: path.to_owned(),
                    });
                }
                Ok(true) => {}
                Ok(false) if !told && !wait.is_zero() => {
                    told = true;
                    log_contended(&file, path, wait);
                }
                Ok(false) => {}
                Err(e) => return Err(io_err(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                let pid = read_payload(&file)
                    .filter(LockPayload::plausibly_alive)
                    .map(|p| p.pid);
                return Err(LockError::AlreadyRunning { pid, waited: wait });
            }
            thread::sleep(RETRY_INTERVAL.min(deadline - now));
        }
    }

    /// Replaces the file's contents with `payload` as JSON (truncate, write).
    ///
    /// Not fsynced: the payload describes this running process and is read through the page
    /// cache; after a crash or power loss it names a process that no longer exists (and is
    /// recognised as stale by pid + start time), so flushing it to disk would only add a
    /// disk flush to every start.
    ///
    /// Call after binding, and again after an in-process restart that changed the port.
    /// A reader racing this write may see an empty or partial file; [`probe_owner`]
    /// reports that as [`Owner::RunningUnknownPayload`], never as "not running".
    pub fn publish(&mut self, payload: &LockPayload) -> io::Result<()> {
        let mut json = serde_json::to_vec(payload).map_err(io::Error::other)?;
        json.push(b'\n');
        self.file.set_len(0)?;
        // Positional write: the fd's offset is irrelevant and never needs seeking.
        self.file.write_all_at(&json, 0)
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for GatewayLock {
    fn drop(&mut self) {
        // Empty first, then unlock: once unlocked, a new gateway may write its own
        // payload, which truncating afterwards would destroy. The file stays (see
        // module docs); closing the fd would release the lock anyway, the explicit
        // unlock only makes the order obvious.
        if let Err(e) = self.file.set_len(0) {
            log::warn!("could not clear lock payload {}: {e}", self.path.display());
        }
        if let Err(e) = FileExt::unlock(&self.file) {
            log::warn!("could not unlock {}: {e}", self.path.display());
        }
    }
}

/// Who, if anyone, holds a gateway lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    /// Nobody holds the lock (or the lock file does not exist).
    NotRunning,
    /// A gateway holds the lock and published this payload.
    Running(LockPayload),
    /// A gateway holds the lock but its payload is empty or unreadable: it is starting
    /// up (not yet bound) or is mid-publish. Callers may retry shortly.
    RunningUnknownPayload,
}

/// For CLI commands (`status`, `stop`, `restart`, `call`): is the lock held by a live
/// gateway, and what does its payload say?
///
/// Held-ness is decided only by the advisory lock, never by the payload's pid: a
/// non-blocking *shared* lock is tried on a fresh descriptor and released at once.
/// Shared, so that two CLI commands probing together do not see each other as a
/// gateway. A missing lock file or locks directory means [`Owner::NotRunning`].
pub fn probe_owner(lock_path: &Path) -> io::Result<Owner> {
    let file = match open_lock_file(lock_path, false) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Owner::NotRunning),
        Err(e) => return Err(e),
    };
    if try_lock(&file, Mode::Shared)? {
        // Released at once so a starting gateway is not kept waiting; closing the fd
        // would release it too, hence an unlock error changes nothing.
        let _ = FileExt::unlock(&file);
        return Ok(Owner::NotRunning);
    }
    Ok(match read_payload(&file) {
        Some(payload) => Owner::Running(payload),
        None => Owner::RunningUnknownPayload,
    })
}

/// The restart authorization file for a lock: the lock path with `.lock` replaced by
/// `.restart`.
pub fn restart_authorization_path(lock_path: &Path) -> PathBuf {
    lock_path.with_extension("restart")
}

/// Creates (or refreshes) the one-shot restart authorization next to the lock: mode
/// 0600, content the creation time in Unix milliseconds.
///
/// Written to a temporary name and renamed into place ([`statefs::write_atomic`]), so the
/// daemon never reads a half-written timestamp. The locks directory must already exist (a
/// gateway ran).
pub fn authorize_restart(lock_path: &Path) -> io::Result<PathBuf> {
    let path = restart_authorization_path(lock_path);
    let text = procinfo::unix_ms().to_string();
    statefs::write_atomic(&path, text.as_bytes(), statefs::FILE_MODE)?;
    Ok(path)
}

/// Consumes the restart authorization: true only if it existed and is younger than
/// `max_age`. It is removed either way, so a stale one cannot authorize a later signal.
///
/// The file is first renamed to a name private to this process, which makes the take
/// atomic: of two concurrent takers exactly one can see it.
pub fn take_restart_authorization(lock_path: &Path, max_age: Duration) -> bool {
    let path = restart_authorization_path(lock_path);
    let taken = sibling(&path, &format!("taken.{}", std::process::id()));
    if fs::rename(&path, &taken).is_err() {
        return false;
    }
    // Read without following a link: a planted one is refused like a malformed file.
    let content = statefs::read(&taken);
    if let Err(e) = fs::remove_file(&taken) {
        log::warn!("could not remove {}: {e}", taken.display());
    }
    let text = content
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let Some(created) = text.and_then(|s| s.trim().parse::<u64>().ok()) else {
        log::warn!("ignoring malformed restart authorization {}", path.display());
        return false;
    };
    let now = procinfo::unix_ms();
    // Allow a little clock skew forward; anything from the future beyond that is
    // not a file `authorize_restart` wrote moments ago.
    let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    created <= now.saturating_add(1000) && now.saturating_sub(created) <= max_age_ms
}

/// True if `EMONK_ALLOW_MULTI_GATEWAY=1`: the daemon then skips the lock entirely.
/// Only the exact value `1` counts, so `=0` or an empty value keep the lock.
pub fn multi_gateway_allowed(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env(MULTI_GATEWAY_ENV).as_deref() == Some("1")
}

#[derive(Clone, Copy)]
enum Mode {
    Shared,
    Exclusive,
}

/// Non-blocking flock: `Ok(true)` locked, `Ok(false)` held by someone else.
fn try_lock(file: &File, mode: Mode) -> io::Result<bool> {
    loop {
        // Fully qualified: std's File now has inherent lock methods of the same names.
        let result = match mode {
            Mode::Shared => FileExt::try_lock_shared(file),
            Mode::Exclusive => FileExt::try_lock_exclusive(file),
        };
        match result {
            Ok(()) => return Ok(true),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens the lock file without truncating (truncating before the lock is ours would
/// wipe a running gateway's payload), never through a link ([`statefs`]); `create` makes it
/// 0600 with `O_EXCL` when missing.
fn open_lock_file(path: &Path, create: bool) -> io::Result<File> {
    if create {
        return statefs::open_or_create(path);
    }
    statefs::open_read(path)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

fn same_inode(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(held.dev() == now.dev() && held.ino() == now.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The payload in the lock file, if it parses. Callers pass a descriptor they opened
/// moments ago and have not read from, so its offset is 0.
fn read_payload(file: &File) -> Option<LockPayload> {
    let mut buf = Vec::new();
    file.take(MAX_PAYLOAD_BYTES).read_to_end(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

/// `dir/name.suffix` next to `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests;
