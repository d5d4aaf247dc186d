//! Where emonkd keeps its files, and how it writes private ones.
//!
//! Lookups take the environment as an injected [`Env`] closure instead of reading the
//! process environment, so tests can exercise every precedence rule without mutating
//! global state (which is racy under the parallel test runner and `unsafe` in Rust 2024).

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment lookup, injected so tests don't touch the process env.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The real process environment. Unset, empty and non-UTF-8 values all read as `None`:
/// an empty `EMONK_CONFIG=` is far more often a shell slip than a deliberate setting.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the config file is, and whether the user named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigLocation {
    /// Absolute path. The file need not exist.
    pub path: PathBuf,
    /// `true` when it came from `--config` or `$EMONK_CONFIG`: then a missing file is an
    /// error rather than "all defaults", because the user clearly meant a specific file.
    pub explicit: bool,
}

/// `--config P` > `$EMONK_CONFIG` > `$XDG_CONFIG_HOME/emonk/emonk.json` >
/// `~/.config/emonk/emonk.json` ($HOME).
///
/// `explicit` is set for `--config` and `$EMONK_CONFIG`. Relative paths are made absolute
/// against the cwd without touching the filesystem: the absolute path names the lock file,
/// so it must not change depending on whether the file exists yet.
pub fn config_location(cli: Option<&Path>, env: Env) -> Result<ConfigLocation, String> {
    if let Some(p) = cli {
        if p.as_os_str().is_empty() {
            return Err("--config: the path is empty; pass a file name".to_string());
        }
        return Ok(ConfigLocation {
            path: absolute(p, "--config")?,
            explicit: true,
        });
    }
    if let Some(p) = lookup(env, "EMONK_CONFIG") {
        return Ok(ConfigLocation {
            path: absolute(Path::new(&p), "EMONK_CONFIG")?,
            explicit: true,
        });
    }
    let base = match xdg_base(env, "XDG_CONFIG_HOME") {
        Some(xdg) => xdg,
        None => home(env, "the config file", "pass --config PATH or set EMONK_CONFIG")?.join(".config"),
    };
    Ok(ConfigLocation {
        path: base.join("emonk").join("emonk.json"),
        explicit: false,
    })
}

/// `$EMONK_STATE_DIR` > `$STATE_DIRECTORY` (systemd; may be a colon-separated list: the
/// first entry is ours) > `$XDG_STATE_HOME/emonk` > `~/.local/state/emonk`. Absolute.
pub fn state_dir(env: Env) -> Result<PathBuf, String> {
    if let Some(p) = lookup(env, "EMONK_STATE_DIR") {
        return absolute(Path::new(&p), "EMONK_STATE_DIR");
    }
    if let Some(list) = lookup(env, "STATE_DIRECTORY") {
        // systemd joins several StateDirectory= entries with ':'; the first is the one
        // the unit file lists first, which is where our state belongs.
        if let Some(first) = list.split(':').find(|s| !s.is_empty()) {
            return absolute(Path::new(first), "STATE_DIRECTORY");
        }
    }
    if let Some(xdg) = xdg_base(env, "XDG_STATE_HOME") {
        return Ok(xdg.join("emonk"));
    }
    Ok(home(env, "the state directory", "set EMONK_STATE_DIR")?
        .join(".local")
        .join("state")
        .join("emonk"))
}

/// Create `path` (and missing parents), then make the leaf mode 0700.
///
/// The leaf is created with mode 0700 from the start so there is no window in which it is
/// readable by others; the chmod afterwards tightens a directory that already existed.
/// Parents keep their usual permissions: they may be shared directories we do not own.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(e),
    }
    fs::set_permissions(path, Permissions::from_mode(0o700))
}

/// Atomic private write: temp file in the same dir (0600), write, fsync, rename over the
/// target, fsync the dir.
///
/// Readers (and a crash) see either the old content or the new, never a torn file; the
/// directory fsync makes the rename itself durable.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy())?;
    let result = (|| {
        // The create mode is filtered by the umask; set it explicitly so the file is
        // exactly 0600 whatever umask the daemon was started with.
        file.set_permissions(Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy. After a successful
        // rename this fails with NotFound, which is fine to ignore.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create a fresh temp file next to the target. The pid and a counter make names unique
/// between processes and threads; `create_new` makes a stale leftover (say, after pid
/// reuse) a retry instead of a silent overwrite of someone else's file.
pub(crate) fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last_err = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not create a temp file")))
}

/// Injected lookups may hand back `Some("")`; treat it like unset, as [`process_env`] does.
fn lookup(env: Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// The XDG base directory spec says relative values are invalid and must be ignored.
fn xdg_base(env: Env, name: &str) -> Option<PathBuf> {
    lookup(env, name).map(PathBuf::from).filter(|p| p.is_absolute())
}

fn home(env: Env, what: &str, fix: &str) -> Result<PathBuf, String> {
    match lookup(env, "HOME") {
        Some(h) => absolute(Path::new(&h), "HOME"),
        None => Err(format!("cannot locate {what}: $HOME is not set; {fix}")),
    }
}

/// Absolute without resolving symlinks or requiring existence (unlike `canonicalize`).
fn absolute(p: &Path, source: &str) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{source}: cannot make {} absolute: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fake(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn config_location_precedence() {
        let all = fake(&[
            ("EMONK_CONFIG", "/env/emonk.json"),
            ("XDG_CONFIG_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        let loc = config_location(Some(Path::new("/cli/c.json")), &all).unwrap();
        assert_eq!(loc.path, Path::new("/cli/c.json"));
        assert!(loc.explicit);

        let loc = config_location(None, &all).unwrap();
        assert_eq!(loc.path, Path::new("/env/emonk.json"));
        assert!(loc.explicit);

        let xdg = fake(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/u")]);
        let loc = config_location(None, &xdg).unwrap();
        assert_eq!(loc.path, Path::new("/xdg/emonk/emonk.json"));
        assert!(!loc.explicit);

        let home = fake(&[("HOME", "/home/u")]);
        let loc = config_location(None, &home).unwrap();
        assert_eq!(loc.path, Path::new("/home/u/.config/emonk/emonk.json"));
        assert!(!loc.explicit);
    }

    #[test]
    fn config_location_edge_cases() {
        // Empty and relative XDG values are ignored, per the XDG spec.
        let env = fake(&[("EMONK_CONFIG", ""), ("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]);
        let loc = config_location(None, &env).unwrap();
        assert_eq!(loc.path, Path::new("/h/.config/emonk/emonk.json"));

        let err = config_location(None, &fake(&[])).unwrap_err();
        assert!(err.contains("$HOME is not set"), "{err}");
        assert!(err.contains("--config"), "{err}");

        let err = config_location(Some(Path::new("")), &fake(&[])).unwrap_err();
        assert!(err.contains("--config"), "{err}");
    }

    #[test]
    fn relative_config_is_made_absolute_against_cwd() {
        let cwd = std::env::current_dir().unwrap();
        let loc = config_location(Some(Path::new("sub/missing.json")), &fake(&[])).unwrap();
        assert_eq!(loc.path, cwd.join("sub/missing.json"));
        let env = fake(&[("EMONK_CONFIG", "x.json")]);
        assert_eq!(config_location(None, &env).unwrap().path, cwd.join("x.json"));
    }

    #[test]
    fn state_dir_precedence() {
        let all = fake(&[
            ("EMONK_STATE_DIR", "/s/emonk"),
            ("STATE_DIRECTORY", "/var/lib/emonk:/var/lib/other"),
            ("XDG_STATE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(state_dir(&all).unwrap(), Path::new("/s/emonk"));

        let systemd = fake(&[
            ("STATE_DIRECTORY", "/var/lib/emonk:/var/lib/other"),
            ("XDG_STATE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(state_dir(&systemd).unwrap(), Path::new("/var/lib/emonk"));

        let xdg = fake(&[("XDG_STATE_HOME", "/xdg"), ("HOME", "/home/u")]);
        assert_eq!(state_dir(&xdg).unwrap(), Path::new("/xdg/emonk"));

        let home = fake(&[("HOME", "/home/u")]);
        assert_eq!(state_dir(&home).unwrap(), Path::new("/home/u/.local/state/emonk"));

        let err = state_dir(&fake(&[])).unwrap_err();
        assert!(err.contains("EMONK_STATE_DIR"), "{err}");
    }

    #[test]
    fn state_dir_relative_env_is_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let env = fake(&[("EMONK_STATE_DIR", "st")]);
        assert_eq!(state_dir(&env).unwrap(), cwd.join("st"));
    }

    #[test]
    fn ensure_private_dir_is_0700_and_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/state");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        // An existing, too-open directory is tightened.
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        // A file in the way is an error, not silently accepted.
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(ensure_private_dir(&file).is_err());
    }

    #[test]
    fn write_private_file_is_0600_and_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data.json");
        write_private_file(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o600);

        // Replacing a file that was world-readable leaves a private one.
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_private_file(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);

        // No temp files are left behind.
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("data.json")]);
    }

    #[test]
    fn write_private_file_into_missing_dir_fails_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nope/data.json");
        assert!(write_private_file(&path, b"x").is_err());
    }
}
