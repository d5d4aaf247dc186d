//! The install record: what `service install` created, so `service uninstall` removes
//! exactly that and nothing the user changed or made.
//!
//! It lists every file install created (not one that was already there) with the FNV-1a
//! 64-bit hash of the content it wrote, the runit link it made, and the directories it had
//! to create. Only hashes are stored, so the record never holds a secret (the gateway
//! token). Paths are the logical ones (without `$EMONK_SERVICE_ROOT`). The record itself
//! lives in emonk's own directory for the kind of service ([`path`]); it is not in
//! `contrib/`, which holds only the files a packager ships.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Kind;
use super::error::ServiceError;
use super::fsops::Root;
use super::{runit, systemd, units};
use crate::paths::Env;

/// The record's file name.
pub const FILE_NAME: &str = ".emonkd-service.json";

/// Where the record of `kind` lives: `/etc/emonk/` for `--system`, the directory of the
/// default user config (`$XDG_CONFIG_HOME/emonk/`, default `~/.config/emonk/`) for a user
/// unit, and inside the service directory for runit.
pub fn path(kind: &Kind, env: Env, euid: u32) -> Result<PathBuf, ServiceError> {
    let dir = match kind {
        Kind::System => PathBuf::from(units::SYSTEM_CONFIG)
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default(),
        Kind::User => {
            // .../systemd/user/emonkd.service -> ... (the XDG config base)
            let unit = systemd::user_unit_path(env)?;
            let base = unit.ancestors().nth(3).map(Path::to_owned).unwrap_or_default();
            base.join("emonk")
        }
        Kind::Runit(_) => runit::service_dir(env, euid == 0)?,
    };
    Ok(dir.join(FILE_NAME))
}

/// FNV-1a, 64 bits: fixed by its definition, so a record stays valid across builds.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// For a human who finds the file.
    #[serde(default)]
    pub about: String,
    /// What was installed, as `service install` named it.
    #[serde(default)]
    pub service: String,
    /// Files install created, by path, with the hash of what it wrote.
    #[serde(default)]
    pub files: BTreeMap<PathBuf, FileEntry>,
    /// Symlinks install created, by path, with their target.
    #[serde(default)]
    pub links: BTreeMap<PathBuf, PathBuf>,
    /// Directories install created (removed again only when empty).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// FNV-1a 64 of the content, 16 lowercase hex digits.
    pub fnv1a64: String,
}

impl FileEntry {
    pub fn of(content: &[u8]) -> FileEntry {
        FileEntry {
            fnv1a64: hex(fnv1a64(content)),
        }
    }

    pub fn matches(&self, content: &[u8]) -> bool {
        self.fnv1a64 == hex(fnv1a64(content))
    }
}

impl Manifest {
    pub fn new(service: &str) -> Manifest {
        Manifest {
            about: "written by `emonkd service install`: the files, link and directories it created; `emonkd service uninstall` removes each file whose content still has this hash, and each directory that is then empty".into(),
            service: service.to_owned(),
            ..Manifest::default()
        }
    }

    /// The record at `real` (a path under the root), or `None` if there is none.
    pub fn load(real: &Path) -> Result<Option<Manifest>, String> {
        let bytes = match fs::read(real) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(format!(
                    "cannot read the install record {}: {e}; run the command as the user (or root) that installed the service",
                    real.display()
                ));
            }
            Err(e) => return Err(format!("cannot read the install record {}: {e}", real.display())),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "the install record {} is not valid ({e}); fix it, or move it away to have uninstall leave every file alone",
                real.display()
            )
        })
    }

    pub fn to_json(&self) -> io::Result<String> {
        let mut s = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        s.push('\n');
        Ok(s)
    }

    /// Drop what no longer exists (the user removed it since), so a later install only
    /// carries over what is still there.
    pub fn retain_existing(&mut self, root: &Root) {
        self.files.retain(|p, _| root.at(p).symlink_metadata().is_ok());
        self.links.retain(|p, _| root.at(p).symlink_metadata().is_ok());
        self.dirs.retain(|d| root.at(d).is_dir());
    }

    pub fn add_dirs(&mut self, dirs: impl IntoIterator<Item = PathBuf>) {
        self.dirs.extend(dirs);
        self.dirs.sort();
        self.dirs.dedup();
    }
}

/// The directories that writing `paths` (logical) would create: every ancestor that does
/// not exist yet under `root`.
pub fn missing_dirs<'a>(root: &Root, paths: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        let mut d = p.parent();
        while let Some(dir) = d.filter(|d| !d.as_os_str().is_empty() && !root.at(d).exists()) {
            out.push(dir.to_owned());
            d = dir.parent();
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_vectors() {
        // Reference values from the FNV specification.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn round_trips_and_holds_only_hashes() {
        let mut m = Manifest::new("x");
        m.files.insert(
            PathBuf::from("/etc/emonk/gateway.token"),
            FileEntry::of(b"secret\n"),
        );
        m.links.insert(
            PathBuf::from("/var/service/emonkd"),
            PathBuf::from("/etc/sv/emonkd"),
        );
        m.add_dirs([PathBuf::from("/etc/emonk")]);
        let text = m.to_json().unwrap();
        assert!(!text.contains("secret"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(FILE_NAME);
        fs::write(&f, &text).unwrap();
        assert_eq!(Manifest::load(&f).unwrap(), Some(m));
        assert_eq!(Manifest::load(&dir.path().join("none")).unwrap(), None);
        fs::write(&f, "{").unwrap();
        assert!(Manifest::load(&f).unwrap_err().contains("not valid"));
    }

    #[test]
    fn missing_dirs_stops_at_the_first_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        let root = Root::new(Some(dir.path().to_owned()));
        let got = missing_dirs(
            &root,
            [
                Path::new("/etc/emonk/a"),
                Path::new("/etc/emonk/b"),
                Path::new("/etc/x"),
            ],
        );
        assert_eq!(got, [PathBuf::from("/etc/emonk")]);
    }
}
