//! The primitives never follow a link, create only with `O_EXCL`, and leave exact modes.

use super::*;
use std::os::unix::fs::symlink;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A file outside the state dir that a planted link points at: must stay as it is.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    fs::write(&v, b"precious").unwrap();
    fs::set_permissions(&v, Permissions::from_mode(0o644)).unwrap();
    v
}

fn assert_untouched(v: &Path) {
    assert_eq!(fs::read(v).unwrap(), b"precious");
    assert_eq!(mode(v), 0o644);
}

#[test]
fn ensure_dir_is_0700_idempotent_and_refuses_what_it_cannot_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/state");
    ensure_dir(&dir).unwrap();
    assert_eq!((mode(&dir), mode(&tmp.path().join("a"))), (0o700, 0o700));

    // Readable by others: ours, tightened.
    fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    ensure_dir(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);

    // Writable by others: refused, not "fixed".
    fs::set_permissions(&dir, Permissions::from_mode(0o757)).unwrap();
    let e = ensure_dir(&dir).unwrap_err().to_string();
    assert!(
        e.contains(&dir.display().to_string()) && e.contains("writable by others"),
        "{e}"
    );
    assert_eq!(mode(&dir), 0o757);

    // A file or a link in the way is an error naming the path.
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(
        ensure_dir(&file)
            .unwrap_err()
            .to_string()
            .contains("is not a folder")
    );
    let link = tmp.path().join("link");
    symlink(tmp.path().join("a"), &link).unwrap();
    let e = ensure_dir(&link).unwrap_err().to_string();
    assert!(e.contains("link is a symbolic link"), "{e}");
}

#[test]
fn opens_refuse_a_link_and_leave_its_target_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let v = victim(tmp.path());
    let link = tmp.path().join("journal.jsonl");
    symlink(&v, &link).unwrap();

    for e in [
        open_read(&link).unwrap_err(),
        open_or_create(&link).unwrap_err(),
        create_new(&link, FILE_MODE).unwrap_err(),
    ] {
        assert!(e.to_string().contains(&link.display().to_string()), "{e}");
    }
    let e = open_or_create(&link).unwrap_err().to_string();
    assert!(e.contains("is a symbolic link") && e.contains("rm "), "{e}");
    // A dangling link is refused too, not created through.
    let dangling = tmp.path().join("state.json");
    symlink(tmp.path().join("nowhere"), &dangling).unwrap();
    assert!(open_or_create(&dangling).is_err());
    assert!(!tmp.path().join("nowhere").exists());
    assert_untouched(&v);

    // An atomic write replaces the link itself, never its target.
    write_atomic(&link, b"new", FILE_MODE).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(fs::read(&link).unwrap(), b"new");
    assert_untouched(&v);
}

#[test]
fn open_or_create_makes_a_private_file_and_keeps_content() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gateway.lock");
    let mut f = open_or_create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    f.write_all(b"payload").unwrap();
    drop(f);
    fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
    let _again = open_or_create(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"payload", "never truncated");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(read(&path).unwrap().unwrap(), b"payload");
    assert_eq!(read(&tmp.path().join("missing")).unwrap(), None);
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("telegram.offset");
    let c = std::ffi::CString::new(path.clone().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = read(&path).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(open_or_create(&path).is_err());
}

#[test]
fn write_atomic_sets_the_mode_and_leaves_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.json");
    write_atomic(&path, b"one", FILE_MODE).unwrap();
    assert_eq!((fs::read(&path).unwrap(), mode(&path)), (b"one".to_vec(), 0o600));
    fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
    write_atomic(&path, b"two", 0o644).unwrap();
    assert_eq!((fs::read(&path).unwrap(), mode(&path)), (b"two".to_vec(), 0o644));
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("data.json")]);

    let missing = tmp.path().join("nope/data.json");
    let e = write_atomic(&missing, b"x", FILE_MODE).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}
