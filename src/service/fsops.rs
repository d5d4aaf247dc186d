//! File operations of `service install` and `uninstall`: a root prefix for tests, and a
//! transaction that can undo everything it did, so a failed install leaves no partial files.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::statefs;

/// `$EMONK_SERVICE_ROOT`: a directory prefixed to every absolute path the service commands
/// touch (never to the paths written inside the files). A testing aid, like `DESTDIR`.
pub const ROOT_ENV: &str = "EMONK_SERVICE_ROOT";

#[derive(Clone, Debug, Default)]
pub struct Root(Option<PathBuf>);

impl Root {
    pub fn new(prefix: Option<PathBuf>) -> Root {
        Root(prefix)
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Where `path` (absolute) really is.
    pub fn at(&self, path: &Path) -> PathBuf {
        match &self.0 {
            None => path.to_owned(),
            Some(root) => {
                let rel: PathBuf = path
                    .components()
                    .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
                    .collect();
                root.join(rel)
            }
        }
    }
}

/// What a transaction did, newest last, so it can be undone in reverse.
enum Done {
    CreatedDir(PathBuf),
    Wrote {
        path: PathBuf,
        previous: Option<(Vec<u8>, u32)>,
    },
    Linked(PathBuf),
}

/// The mode of each folder a transaction creates: `default`, or the mode listed for that
/// (real) path.
#[derive(Clone, Debug)]
pub struct DirModes {
    default: u32,
    special: Vec<(PathBuf, u32)>,
}

impl DirModes {
    pub fn new(default: u32) -> DirModes {
        DirModes {
            default,
            special: Vec::new(),
        }
    }

    pub fn with(mut self, dir: PathBuf, mode: u32) -> DirModes {
        self.special.push((dir, mode));
        self
    }

    fn of(&self, dir: &Path) -> u32 {
        self.special
            .iter()
            .find(|(p, _)| p == dir)
            .map_or(self.default, |(_, m)| *m)
    }
}

/// File changes that are undone on drop unless committed.
pub struct Transaction {
    done: Vec<Done>,
    committed: bool,
    modes: DirModes,
}

impl Transaction {
    pub fn new(modes: DirModes) -> Transaction {
        Transaction {
            done: Vec::new(),
            committed: false,
            modes,
        }
    }

    /// Create `dir` and its missing parents, remembering which were created. Each gets its
    /// mode from [`DirModes`], set again after the mkdir because the umask filters it.
    pub fn create_dirs(&mut self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut d = Some(dir);
        while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_err()) {
            missing.push(p.to_owned());
            d = p.parent();
        }
        for p in missing.into_iter().rev() {
            let mode = self.modes.of(&p);
            DirBuilder::new().mode(mode).create(&p)?;
            self.done.push(Done::CreatedDir(p.clone()));
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// Write `path` with `mode`, keeping what was there for a rollback.
    pub fn write(&mut self, path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            self.create_dirs(parent)?;
        }
        let previous = match fs::read(path) {
            Ok(bytes) => Some((bytes, fs::metadata(path)?.permissions().mode())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.done.push(Done::Wrote {
            path: path.to_owned(),
            previous,
        });
        // A temp file created 0600 with O_EXCL (so a token is never readable by others, even
        // for a moment under umask 000), then given `mode` and renamed over the target.
        statefs::write_atomic(path, content, mode)
    }

    /// A symlink `link` -> `target` (an existing identical link is left alone).
    pub fn link(&mut self, link: &Path, target: &Path) -> io::Result<()> {
        if fs::read_link(link).is_ok_and(|t| t == target) {
            return Ok(());
        }
        symlink(target, link)?;
        self.done.push(Done::Linked(link.to_owned()));
        Ok(())
    }

    /// Keep the changes.
    pub fn commit(mut self) {
        self.committed = true;
    }

    /// Undo everything, newest first. Best effort: report what could not be undone.
    pub fn rollback(mut self) -> Vec<String> {
        self.undo()
    }

    fn undo(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        while let Some(step) = self.done.pop() {
            let (path, r) = match step {
                Done::CreatedDir(p) => {
                    let r = fs::remove_dir(&p);
                    (p, r)
                }
                Done::Linked(p) => {
                    let r = fs::remove_file(&p);
                    (p, r)
                }
                Done::Wrote { path, previous: None } => {
                    let r = fs::remove_file(&path);
                    (path, r)
                }
                Done::Wrote {
                    path,
                    previous: Some((bytes, mode)),
                } => {
                    let r = statefs::write_atomic(&path, &bytes, mode & 0o7777);
                    (path, r)
                }
            };
            if let Err(e) = r {
                if e.kind() != io::ErrorKind::NotFound {
                    failed.push(format!("{}: {e}", path.display()));
                }
            }
        }
        failed
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            self.undo();
        }
    }
}

/// Remove a file or symlink; a missing one is fine. Returns whether something was removed.
pub fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefixes_absolute_paths() {
        let r = Root::new(Some(PathBuf::from("/tmp/x")));
        assert_eq!(
            r.at(Path::new("/etc/systemd/system/a")),
            PathBuf::from("/tmp/x/etc/systemd/system/a")
        );
        assert_eq!(Root::default().at(Path::new("/etc/a")), PathBuf::from("/etc/a"));
    }

    #[test]
    fn rollback_restores_everything() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        fs::write(&old, "before").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o640)).unwrap();
        let mut tx = Transaction::new(DirModes::new(0o755));
        tx.write(&dir.path().join("a/b/new"), b"x", 0o644).unwrap();
        tx.write(&old, b"after", 0o600).unwrap();
        tx.link(&dir.path().join("link"), Path::new("/nowhere")).unwrap();
        assert_eq!(fs::read_to_string(&old).unwrap(), "after");
        assert!(tx.rollback().is_empty());
        assert_eq!(fs::read_to_string(&old).unwrap(), "before");
        assert_eq!(fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o640);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("old")]);
    }

    #[test]
    fn dropped_uncommitted_rolls_back_and_commit_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        {
            let mut tx = Transaction::new(DirModes::new(0o755));
            tx.write(&f, b"x", 0o644).unwrap();
        }
        assert!(!f.exists());
        let mut tx = Transaction::new(DirModes::new(0o755));
        tx.write(&f, b"x", 0o644).unwrap();
        tx.commit();
        assert!(f.exists());
    }
}
