//! The check `emonkd run` makes of its state dir before it uses anything in it.
//!
//! What is checked, and why this far:
//! - **The state dir and everything in it** (every folder and file, walked once at start):
//!   no symbolic links, only plain files and folders, all owned by this user, none
//!   writable by group or others. Anything else is refused, naming the path and the fix:
//!   another user could have planted a link that redirects a write, or a file emonkd would
//!   trust. Folders that are only *readable* by others are ours, and are tightened to 0700
//!   (what older releases did too); files keep their mode until emonkd opens them, which
//!   makes them 0600. A `lost+found` folder directly in it (the state dir is a mount point)
//!   is the file system's own and is skipped.
//! - **The folders above it**, both on the path as given and on the resolved one: each
//!   must be owned by root or this user, and may be writable by others only with the
//!   sticky bit (`/tmp`). Otherwise their owner, or anyone, could rename the state dir
//!   away and put another in its place after the check. Group-writable folders above are
//!   accepted: shared-group layouts (Debian's `root:staff` `/var/local`, a Kubernetes
//!   `fsGroup` volume) are common and their group is trusted by the administrator who
//!   made it so.
//!
//! Links on the path to the state dir are followed once, here (the operator chose that
//! path), and the daemon then uses the resolved path, so they are never looked at again.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{ensure_dir, euid, tighten_dir, unsafe_entry};

/// Why the state dir cannot be used.
#[derive(Debug)]
pub enum StateDirError {
    /// Its ownership, its mode, or a link or a strange file in it. The operator has to fix
    /// it (the message says how); restarting changes nothing, so this is exit 78.
    Unsafe(String),
    /// It could not be created or read (exit 1).
    Io(String),
}

impl std::fmt::Display for StateDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateDirError::Unsafe(m) => write!(f, "refusing to use the state dir: {m}"),
            StateDirError::Io(m) => f.write_str(m),
        }
    }
}

/// Create the state dir if missing (0700), then check it as the module doc says. Returns
/// the resolved path, which the daemon uses from then on.
pub fn prepare_state_dir(given: &Path) -> Result<PathBuf, StateDirError> {
    let io = |e: io::Error| {
        StateDirError::Io(format!(
            "cannot create or read the state dir {}: {e}; set EMONK_STATE_DIR to a directory \
             this user can write",
            given.display()
        ))
    };
    if let Err(e) = fs::symlink_metadata(given) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(io(e));
        }
        ensure_dir(given).map_err(io)?;
    }
    let resolved = fs::canonicalize(given).map_err(io)?;
    for dir in given.ancestors().skip(1).chain(resolved.ancestors().skip(1)) {
        let meta = fs::metadata(dir).map_err(io)?;
        if let Some(reason) = unsafe_ancestor(dir, &meta) {
            return Err(StateDirError::Unsafe(reason));
        }
    }
    audit_tree(&resolved).map_err(|e| match e {
        Walk::Unsafe(m) => StateDirError::Unsafe(m),
        Walk::Io(e) => io(e),
    })?;
    Ok(resolved)
}

enum Walk {
    Unsafe(String),
    Io(io::Error),
}

/// Walk every folder under `root` (which is resolved, so not a link), checking each entry.
fn audit_tree(root: &Path) -> Result<(), Walk> {
    let meta = fs::symlink_metadata(root).map_err(Walk::Io)?;
    if let Some(reason) = unsafe_entry(root, &meta) {
        return Err(Walk::Unsafe(reason));
    }
    if !meta.is_dir() {
        return Err(Walk::Unsafe(format!(
            "{} is not a folder; set EMONK_STATE_DIR to a folder",
            root.display()
        )));
    }
    tighten_dir(root, &meta).map_err(Walk::Io)?;
    let mut folders = vec![root.to_owned()];
    while let Some(dir) = folders.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Walk::Io(super::at(&dir, e)))?;
        for entry in entries {
            let entry = entry.map_err(|e| Walk::Io(super::at(&dir, e)))?;
            let path = entry.path();
            if dir == root && entry.file_name() == "lost+found" {
                continue;
            }
            // DirEntry::metadata does not follow links (lstat semantics).
            let meta = entry.metadata().map_err(|e| Walk::Io(super::at(&path, e)))?;
            if let Some(reason) = unsafe_entry(&path, &meta) {
                return Err(Walk::Unsafe(reason));
            }
            if meta.is_dir() {
                tighten_dir(&path, &meta).map_err(Walk::Io)?;
                folders.push(path);
            }
        }
    }
    Ok(())
}

/// Why a folder above the state dir lets someone else replace the state dir, if it does.
fn unsafe_ancestor(dir: &Path, meta: &fs::Metadata) -> Option<String> {
    let me = euid();
    let d = dir.display();
    if meta.uid() != 0 && meta.uid() != me {
        return Some(format!(
            "{d}, a folder above the state dir, is owned by uid {owner} (neither root nor this \
             user, uid {me}), who could replace the state dir; choose an EMONK_STATE_DIR whose \
             parent folders belong to root or to uid {me}",
            owner = meta.uid()
        ));
    }
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return Some(format!(
            "{d}, a folder above the state dir, is writable by everyone without the sticky \
             bit, so anyone could replace the state dir; fix with `chmod o-w {d}` (or \
             `chmod +t {d}`) or choose another EMONK_STATE_DIR"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refusal(p: &Path) -> String {
        match prepare_state_dir(p) {
            Err(StateDirError::Unsafe(m)) => m,
            other => panic!("expected a refusal for {}, got {other:?}", p.display()),
        }
    }

    #[test]
    fn fresh_dir_is_created_private_and_resolved() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        symlink(&real, &link).unwrap();
        // A link on the path (here: the state dir itself) is the operator's choice: it is
        // resolved once.
        let got = prepare_state_dir(&link.join("a/state")).unwrap();
        assert_eq!(got, fs::canonicalize(&real).unwrap().join("a/state"));
        assert_eq!(fs::metadata(&got).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn readable_folders_are_tightened_and_writable_ones_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        fs::create_dir_all(state.join("spool")).unwrap();
        chmod(&state, 0o755);
        chmod(&state.join("spool"), 0o750);
        prepare_state_dir(&state).unwrap();
        assert_eq!(fs::metadata(&state).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(fs::metadata(state.join("spool")).unwrap().mode() & 0o7777, 0o700);

        chmod(&state.join("spool"), 0o770);
        let m = refusal(&state);
        assert!(
            m.contains("spool") && m.contains("its group") && m.contains("chmod -R go-w"),
            "{m}"
        );
        chmod(&state.join("spool"), 0o700);
        fs::write(state.join("spool/journal.jsonl"), b"").unwrap();
        chmod(&state.join("spool/journal.jsonl"), 0o602);
        let m = refusal(&state);
        assert!(m.contains("journal.jsonl") && m.contains("by others"), "{m}");
    }

    #[test]
    fn links_and_odd_files_in_it_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        fs::create_dir_all(state.join("spool")).unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        symlink(&victim, state.join("spool/journal.jsonl")).unwrap();
        let m = refusal(&state);
        assert!(
            m.contains("spool/journal.jsonl is a symbolic link") && m.contains("rm "),
            "{m}"
        );
        fs::remove_file(state.join("spool/journal.jsonl")).unwrap();

        let fifo = std::ffi::CString::new(
            state
                .join("telegram.offset")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let m = refusal(&state);
        assert!(
            m.contains("telegram.offset is neither a plain file nor a folder"),
            "{m}"
        );
    }

    #[test]
    fn world_writable_parent_needs_the_sticky_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o777);
        let m = refusal(&shared.join("state"));
        assert!(m.contains("above the state dir") && m.contains("sticky"), "{m}");
        chmod(&shared, 0o1777);
        prepare_state_dir(&shared.join("state")).unwrap();
        // Group-writable folders above are accepted (see the module doc).
        chmod(&shared, 0o775);
        prepare_state_dir(&shared.join("state")).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_an_io_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            prepare_state_dir(&file.join("state")),
            Err(StateDirError::Io(_))
        ));
        assert!(matches!(prepare_state_dir(&file), Err(StateDirError::Unsafe(_))));
    }
}
