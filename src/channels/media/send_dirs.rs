//! The `media.sendDirs` policy: the one function that decides which file a client may make
//! the gateway read and upload ([`open_for_send`]). Every outbound `path` goes through it.
//!
//! The rules, in order:
//! 1. The path must be absolute (the gateway's working directory means nothing to a client).
//! 2. It is canonicalized (symlinks and `..` resolved) and must then lie inside one of the
//!    canonicalized dirs, compared by path components: `/outbox-evil/x` is not inside
//!    `/outbox`. Outside every dir (a symlink in the outbox pointing elsewhere included) is
//!    `FORBIDDEN` naming `media.sendDirs`. A missing file is `INVALID_REQUEST` naming it.
//! 3. The canonical path is opened with `O_NOFOLLOW` (its last component may not have turned
//!    into a symlink since) and `O_NONBLOCK` (opening a FIFO must never wait for a writer:
//!    the caller is the router or a connector).
//! 4. The opened fd is `fstat`ed: only a regular file passes; a directory, FIFO, socket or
//!    device is `INVALID_REQUEST` naming the path.
//! 5. The time-of-check/time-of-use gap: between step 2 and step 3 a directory on the path
//!    could be swapped for a symlink to elsewhere, and `O_NOFOLLOW` guards only the last
//!    component. So after opening, the kernel is asked where the fd actually is
//!    (`/proc/self/fd/N`, which names the opened file itself, atomically) and that must be the
//!    canonical path that was checked. This was chosen over opening relative to a dir fd
//!    component by component (`openat` with `O_NOFOLLOW` each step, or `openat2`'s
//!    `RESOLVE_BENEATH`): those refuse every symlink inside the outbox, even one pointing to
//!    another allowed dir, or need Linux 5.6 and a syscall seccomp filters often block. The
//!    daemon already relies on `/proc` (`src/procinfo.rs`); without it the check fails
//!    closed (`FORBIDDEN`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::MediaError;

/// The config key the policy enforces, as errors name it.
pub const KEY: &str = "media.sendDirs";

/// A file that passed the policy: open, regular, and its length at open time.
#[derive(Debug)]
pub struct SendFile {
    pub file: File,
    pub len: u64,
    /// Where it is, symlinks resolved.
    pub path: PathBuf,
}

/// Open `path` for upload if it lies inside one of `dirs` (see the module doc).
pub fn open_for_send(path: &str, dirs: &[PathBuf]) -> Result<SendFile, MediaError> {
    let given = Path::new(path);
    if !given.is_absolute() {
        return Err(MediaError::Invalid(format!(
            "{path}: not an absolute path; give the full path of a file in {KEY}"
        )));
    }
    let canonical = fs::canonicalize(given).map_err(|e| cannot_open(path, &e))?;
    let allowed: Vec<PathBuf> = dirs.iter().filter_map(|d| fs::canonicalize(d).ok()).collect();
    if !allowed.iter().any(|d| canonical.starts_with(d)) {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let via = if canonical != given {
            format!(" (it resolves to {})", canonical.display())
        } else {
            String::new()
        };
        return Err(MediaError::Forbidden(format!(
            "{path}{via} is outside {KEY} [{}]; put the file in one of those folders",
            list.join(", ")
        )));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&canonical)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => changed(path),
            _ => cannot_open(path, &e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| MediaError::Invalid(format!("{path}: cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(MediaError::Invalid(format!(
            "{path} is {}, not a regular file; only regular files can be sent",
            describe(meta.file_type())
        )));
    }
    check_identity(&file, &canonical, path)?;
    Ok(SendFile {
        file,
        len: meta.len(),
        path: canonical,
    })
}

/// The opened `file` must be the one at `canonical` (step 5 of the module doc).
fn check_identity(file: &File, canonical: &Path, path: &str) -> Result<(), MediaError> {
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    match fs::read_link(&proc_path) {
        Ok(actual) if actual == canonical => Ok(()),
        Ok(_) => Err(changed(path)),
        Err(e) => Err(MediaError::Forbidden(format!(
            "{path}: cannot verify which file was opened ({proc_path}: {e}); mount /proc to send files from {KEY}"
        ))),
    }
}

fn changed(path: &str) -> MediaError {
    MediaError::Forbidden(format!(
        "{path} changed while being opened (a symlink appeared on its way); not sent, as it may lead outside {KEY}"
    ))
}

fn cannot_open(path: &str, e: &io::Error) -> MediaError {
    match e.kind() {
        io::ErrorKind::NotFound => MediaError::Invalid(format!("{path}: no such file")),
        // open(2) on a Unix socket.
        _ if e.raw_os_error() == Some(libc::ENXIO) => MediaError::Invalid(format!(
            "{path} is a socket, not a regular file; only regular files can be sent"
        )),
        _ => MediaError::Invalid(format!("{path}: cannot open: {e}")),
    }
}

fn describe(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;
    use std::time::Duration;

    /// `<tmp>/outbox` (the allowed dir) with `a.txt`, `sub/b.txt`, and `<tmp>/secret.txt`,
    /// `<tmp>/outbox-evil/x.txt` outside it.
    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outbox: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let outbox = root.join("outbox");
        fs::create_dir_all(outbox.join("sub")).unwrap();
        fs::create_dir_all(root.join("outbox-evil")).unwrap();
        fs::write(outbox.join("a.txt"), b"hello").unwrap();
        fs::write(outbox.join("sub/b.txt"), b"bee").unwrap();
        fs::write(root.join("secret.txt"), b"secret").unwrap();
        fs::write(root.join("outbox-evil/x.txt"), b"evil").unwrap();
        Tree {
            _tmp: tmp,
            root,
            outbox,
        }
    }

    fn s(p: &Path) -> String {
        p.to_str().unwrap().to_owned()
    }

    fn read(mut f: SendFile) -> Vec<u8> {
        let mut out = Vec::new();
        f.file.read_to_end(&mut out).unwrap();
        out
    }

    fn forbidden(r: Result<SendFile, MediaError>) -> String {
        match r {
            Err(MediaError::Forbidden(t)) => {
                assert!(t.contains(KEY), "{t}");
                t
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    fn invalid(r: Result<SendFile, MediaError>, path: &str) -> String {
        match r {
            Err(MediaError::Invalid(t)) => {
                assert!(t.contains(path), "{t} should name {path}");
                t
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn files_inside_open_with_their_length() {
        let t = tree();
        let dirs = [t.outbox.clone()];
        let f = open_for_send(&s(&t.outbox.join("a.txt")), &dirs).unwrap();
        assert_eq!((f.len, f.path.clone()), (5, t.outbox.join("a.txt")));
        assert_eq!(read(f), b"hello");
        let f = open_for_send(&s(&t.outbox.join("sub/b.txt")), &dirs).unwrap();
        assert_eq!(read(f), b"bee");
        // `..` that stays inside is fine.
        let f = open_for_send(&s(&t.outbox.join("sub/../a.txt")), &dirs).unwrap();
        assert_eq!(f.path, t.outbox.join("a.txt"));
    }

    #[test]
    fn any_of_several_dirs() {
        let t = tree();
        let dirs = [
            t.root.join("missing"),
            t.root.join("outbox-evil"),
            t.outbox.clone(),
        ];
        assert_eq!(
            read(open_for_send(&s(&t.outbox.join("a.txt")), &dirs).unwrap()),
            b"hello"
        );
        assert_eq!(
            read(open_for_send(&s(&t.root.join("outbox-evil/x.txt")), &dirs).unwrap()),
            b"evil"
        );
    }

    #[test]
    fn outside_is_forbidden() {
        let t = tree();
        let dirs = [t.outbox.clone()];
        forbidden(open_for_send(&s(&t.root.join("secret.txt")), &dirs));
        forbidden(open_for_send("/etc/passwd", &dirs));
        // A string prefix is not containment.
        forbidden(open_for_send(&s(&t.root.join("outbox-evil/x.txt")), &dirs));
        // `..` out of the outbox.
        let e = forbidden(open_for_send(&s(&t.outbox.join("../secret.txt")), &dirs));
        assert!(e.contains("resolves to"), "{e}");
        forbidden(open_for_send(&s(&t.outbox.join("sub/../../secret.txt")), &dirs));
        // No dir configured, or only missing ones: nothing may be read.
        forbidden(open_for_send(&s(&t.outbox.join("a.txt")), &[]));
        forbidden(open_for_send(&s(&t.outbox.join("a.txt")), &[t.root.join("nope")]));
    }

    #[test]
    fn symlinks_are_judged_by_their_target() {
        let t = tree();
        let dirs = [t.outbox.clone()];
        symlink(t.root.join("secret.txt"), t.outbox.join("leak.txt")).unwrap();
        let e = forbidden(open_for_send(&s(&t.outbox.join("leak.txt")), &dirs));
        assert!(e.contains("secret.txt"), "{e}");
        symlink(&t.root, t.outbox.join("up")).unwrap();
        forbidden(open_for_send(&s(&t.outbox.join("up/secret.txt")), &dirs));
        // A symlink to a file inside stays allowed, and a sendDir reached through a symlink
        // is compared by its real location.
        symlink(t.outbox.join("a.txt"), t.outbox.join("alias.txt")).unwrap();
        assert_eq!(
            read(open_for_send(&s(&t.outbox.join("alias.txt")), &dirs).unwrap()),
            b"hello"
        );
        symlink(&t.outbox, t.root.join("box-link")).unwrap();
        let via_link = [t.root.join("box-link")];
        assert_eq!(
            read(open_for_send(&s(&t.outbox.join("a.txt")), &via_link).unwrap()),
            b"hello"
        );
        assert_eq!(
            read(open_for_send(&s(&t.root.join("box-link/a.txt")), &via_link).unwrap()),
            b"hello"
        );
    }

    #[test]
    fn missing_and_dangling_are_invalid_naming_the_path() {
        let t = tree();
        let dirs = [t.outbox.clone()];
        let missing = s(&t.outbox.join("nope.png"));
        let e = invalid(open_for_send(&missing, &dirs), &missing);
        assert!(e.contains("no such file"), "{e}");
        symlink(t.outbox.join("gone"), t.outbox.join("dangling")).unwrap();
        let dangling = s(&t.outbox.join("dangling"));
        invalid(open_for_send(&dangling, &dirs), &dangling);
    }

    #[test]
    fn relative_paths_are_invalid() {
        let t = tree();
        let e = invalid(
            open_for_send("outbox/a.txt", std::slice::from_ref(&t.outbox)),
            "outbox/a.txt",
        );
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn non_regular_files_are_invalid_naming_the_path() {
        let t = tree();
        let dirs = [t.outbox.clone()];
        let sub = s(&t.outbox.join("sub"));
        assert!(invalid(open_for_send(&sub, &dirs), &sub).contains("a directory"));
        let outbox = s(&t.outbox);
        assert!(invalid(open_for_send(&outbox, &dirs), &outbox).contains("a directory"));
        // A device inside an allowed dir (no mknod needed: allow /dev itself).
        let e = invalid(open_for_send("/dev/null", &[PathBuf::from("/dev")]), "/dev/null");
        assert!(e.contains("character device"), "{e}");
        let sock_path = t.outbox.join("sock");
        let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
        let sock = s(&sock_path);
        assert!(invalid(open_for_send(&sock, &dirs), &sock).contains("socket"));
    }

    /// A FIFO with no writer: a plain open(2) would block forever. The policy must answer at
    /// once; the call runs on a helper thread so a regression fails instead of hanging.
    #[test]
    fn a_fifo_is_invalid_and_never_blocks() {
        let t = tree();
        let fifo = t.outbox.join("pipe");
        let c = std::ffi::CString::new(s(&fifo)).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = mpsc::channel();
        let (path, dirs) = (s(&fifo), vec![t.outbox.clone()]);
        std::thread::spawn(move || {
            let _ = tx.send(open_for_send(&path, &dirs).map(|f| f.len));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("opening a FIFO blocked");
        match got {
            Err(MediaError::Invalid(t)) => assert!(t.contains("a FIFO") && t.contains("pipe"), "{t}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_files_are_invalid() {
        if unsafe { libc::geteuid() } == 0 {
            return; // root reads anything; the case cannot arise
        }
        use std::os::unix::fs::PermissionsExt;
        let t = tree();
        let p = t.outbox.join("locked");
        fs::write(&p, b"x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        let path = s(&p);
        let e = invalid(open_for_send(&path, std::slice::from_ref(&t.outbox)), &path);
        assert!(e.contains("cannot open"), "{e}");
    }

    /// The identity check refuses an fd that is not the file that was checked (what a
    /// directory swapped for a symlink between check and open would produce).
    #[test]
    fn identity_check_refuses_a_different_file() {
        let t = tree();
        let f = File::open(t.root.join("secret.txt")).unwrap();
        let e = check_identity(&f, &t.outbox.join("a.txt"), "/x/a.txt").unwrap_err();
        assert!(
            matches!(&e, MediaError::Forbidden(m) if m.contains("changed while being opened")),
            "{e:?}"
        );
        let f = File::open(t.outbox.join("a.txt")).unwrap();
        check_identity(&f, &t.outbox.join("a.txt"), "/x/a.txt").unwrap();
    }
}
