//! Download to file: stream a body into a directory through a temp file, hashing as it goes,
//! and `rename` it into place only when it is complete and verified.
//!
//! Memory is constant (one 64 KiB buffer) whatever the size. The size limit is enforced while
//! streaming, so a platform that sends more than it announced (or announces nothing) cannot
//! fill the disk. Every failure (read error, short body, too large, disk full) removes the
//! temp file: a reader of the directory only ever sees whole, verified files.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::MAX_BYTES_KEY;
use super::error::MediaError;
use super::hash::HashingReader;

/// The copy buffer: large enough that syscalls do not dominate, small enough to not matter.
pub const BUFFER: usize = 64 * 1024;

/// A file stored by [`download_to`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex sha256 of the bytes written.
    pub sha256: String,
}

/// Stream `body` into `dir/name` (file mode 0600). At most `max_bytes` are accepted
/// (`PAYLOAD_TOO_LARGE` naming `media.maxBytes` beyond); when the platform announced a size
/// (`expected`), exactly that many bytes must arrive, else the download counts as broken off
/// (`UNAVAILABLE`, retryable). An existing `dir/name` is replaced atomically.
pub fn download_to(
    dir: &Path,
    name: &str,
    body: &mut dyn Read,
    max_bytes: u64,
    expected: Option<u64>,
) -> Result<Stored, MediaError> {
    if let Some(n) = expected.filter(|&n| n > max_bytes) {
        return Err(too_large(n, max_bytes));
    }
    // create_temp opens with O_CREAT | O_EXCL (a fresh inode: an existing name or a symlink
    // planted there is an error, never followed) and mode 0600.
    let (tmp, mut file) = crate::statefs::create_temp(dir, name).map_err(|e| write_error(dir, &e))?;
    let result = (|| {
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(|e| write_error(dir, &e))?;
        let (sha256, size) = copy_limited(body, &mut file, max_bytes, dir)?;
        if let Some(want) = expected.filter(|&want| want != size) {
            return Err(MediaError::Unavailable(format!(
                "the download broke off: {size} of {want} bytes arrived; try again"
            )));
        }
        // Durable before it becomes visible: a crash must not leave a named, torn file that
        // a later fetch would serve as complete.
        file.sync_all().map_err(|e| write_error(dir, &e))?;
        let path = dir.join(name);
        fs::rename(&tmp, &path).map_err(|e| write_error(dir, &e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| write_error(dir, &e))?;
        Ok(Stored { path, size, sha256 })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copy `body` to `out` through one [`BUFFER`], hashing, stopping with `PAYLOAD_TOO_LARGE`
/// as soon as more than `max_bytes` arrived. `(sha256, bytes)`.
fn copy_limited(
    body: &mut dyn Read,
    out: &mut dyn Write,
    max_bytes: u64,
    dir: &Path,
) -> Result<(String, u64), MediaError> {
    let mut reader = HashingReader::new(body);
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(MediaError::Unavailable(format!(
                    "the download broke off after {} bytes ({e}); try again",
                    reader.count()
                )));
            }
        };
        if reader.count() > max_bytes {
            return Err(too_large(reader.count(), max_bytes));
        }
        out.write_all(&buf[..n]).map_err(|e| write_error(dir, &e))?;
    }
    Ok(reader.finish())
}

/// The error for a file of `size` bytes over `media.maxBytes` (`max_bytes`).
pub fn too_large(size: u64, max_bytes: u64) -> MediaError {
    MediaError::TooLarge(format!(
        "the file is larger than {MAX_BYTES_KEY} ({size} > {max_bytes} bytes); raise {MAX_BYTES_KEY} to fetch it"
    ))
}

/// A local write failure; a full disk (or quota) says so and where.
fn write_error(dir: &Path, e: &io::Error) -> MediaError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => MediaError::DiskFull(format!(
            "disk full under {}; free space there or lower media.cacheMaxBytes, then try again",
            dir.display()
        )),
        _ => MediaError::Io(format!("cannot write under {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::media::hash::sha256_hex;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 256) as u8).collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A body that fails after `ok` bytes, like a connection reset mid-body.
    struct Breaks {
        inner: io::Cursor<Vec<u8>>,
        ok: u64,
    }

    impl Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.inner.position() >= self.ok {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"));
            }
            let room = (self.ok - self.inner.position()) as usize;
            let n = buf.len().min(room);
            self.inner.read(&mut buf[..n])
        }
    }

    #[test]
    fn stores_hashes_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(3 * BUFFER + 17);
        let stored = download_to(
            dir.path(),
            "f1",
            &mut &bytes[..],
            1 << 20,
            Some(bytes.len() as u64),
        )
        .unwrap();
        assert_eq!(stored.path, dir.path().join("f1"));
        assert_eq!(
            (stored.size, stored.sha256.clone()),
            (bytes.len() as u64, sha256_hex(&bytes))
        );
        assert_eq!(fs::read(&stored.path).unwrap(), bytes);
        assert_eq!(
            fs::metadata(&stored.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(names(dir.path()), ["f1"]);
        // Unknown size is fine, and a second download replaces the first.
        let stored = download_to(dir.path(), "f1", &mut &b"new"[..], 10, None).unwrap();
        assert_eq!(fs::read(&stored.path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["f1"]);
    }

    #[test]
    fn over_the_limit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(1000);
        // Announced too large: refused before reading.
        let e = download_to(dir.path(), "f", &mut &bytes[..], 999, Some(1000)).unwrap_err();
        assert!(
            matches!(&e, MediaError::TooLarge(m) if m.contains(MAX_BYTES_KEY)),
            "{e:?}"
        );
        // Not announced (or announced wrongly): stopped while streaming.
        let e = download_to(dir.path(), "f", &mut &bytes[..], 999, None).unwrap_err();
        assert!(
            matches!(&e, MediaError::TooLarge(m) if m.contains("1000 > 999")),
            "{e:?}"
        );
        let e = download_to(dir.path(), "f", &mut &bytes[..], 999, Some(10)).unwrap_err();
        assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
        // Exactly at the limit passes.
        download_to(dir.path(), "f", &mut &bytes[..], 1000, Some(1000)).unwrap();
    }

    #[test]
    fn a_reset_or_short_body_is_retryable_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = Breaks {
            inner: io::Cursor::new(data(200_000)),
            ok: 100_000,
        };
        let e = download_to(dir.path(), "f", &mut body, 1 << 20, Some(200_000)).unwrap_err();
        assert!(
            matches!(&e, MediaError::Unavailable(m) if m.contains("broke off")),
            "{e:?}"
        );
        assert!(e.to_body().retryable);
        let short = data(10);
        let e = download_to(dir.path(), "f", &mut &short[..], 1 << 20, Some(11)).unwrap_err();
        assert!(
            matches!(&e, MediaError::Unavailable(m) if m.contains("10 of 11")),
            "{e:?}"
        );
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn disk_full_is_named_with_the_dir() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = Path::new("/state/media");
        let e = copy_limited(&mut &b"abc"[..], &mut Full, 10, dir).unwrap_err();
        assert!(
            matches!(&e, MediaError::DiskFull(m) if m.contains("disk full under /state/media")),
            "{e:?}"
        );
    }

    /// The real device: `/dev/full` answers every write with ENOSPC.
    #[test]
    fn dev_full_reports_disk_full() {
        let mut full = File::options().write(true).open("/dev/full").unwrap();
        let e = copy_limited(&mut &b"abc"[..], &mut full, 10, Path::new("/d")).unwrap_err();
        assert!(matches!(e, MediaError::DiskFull(_)), "{e:?}");
    }

    #[test]
    fn a_missing_dir_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let e = download_to(&gone, "f", &mut &b"x"[..], 10, None).unwrap_err();
        assert!(matches!(&e, MediaError::Io(m) if m.contains("gone")), "{e:?}");
    }
}
