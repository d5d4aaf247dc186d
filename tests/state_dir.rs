//! `emonkd run` refuses a state dir it cannot trust, through the real binary: one owned by
//! another user, a folder in it owned by another user, one writable by its group, and a
//! symlink planted where a state file should be (the file it points to stays untouched).
//! Each is exit 78 with a message naming the path. A fresh dir under `umask 000` and a
//! healthy dir as the previous release left it still start.
//!
//! The ownership cases chown to uid 65534 (`nobody`) and need root, as CI runs; otherwise
//! they print why they are skipped.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::{Gateway, Home, Watchdog, code_of, listening_port, stderr_of, with_umask};

const LIMIT: Duration = Duration::from_secs(30);
const NOBODY: u32 = 65534;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

/// The state dir and its folders as a release leaves them: 0700.
fn private_dirs(home: &Home) -> PathBuf {
    let state = home.state_dir();
    for d in [state.clone(), state.join("spool"), state.join("locks")] {
        fs::create_dir_all(&d).unwrap();
        chmod(&d, 0o700);
    }
    state
}

/// True (after saying why) when the test cannot chown.
fn skip_unless_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root to chown a folder to uid {NOBODY} (CI runs as root)");
    true
}

/// `emonkd run` exits 78 at once, naming `path` and saying `why`, without listening.
fn assert_refused(home: &Home, path: &Path, why: &str) -> String {
    // Well under the watchdog: a gateway that starts instead fails here, with its log.
    let out = home.run_cli(&["run", "--port", "0"], Duration::from_secs(10));
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 78, "{err}");
    assert!(
        err.contains(&path.display().to_string()),
        "must name {}: {err}",
        path.display()
    );
    assert!(err.contains(why), "must say {why:?}: {err}");
    assert!(!err.contains("listening on"), "{err}");
    err
}

#[test]
fn state_dir_owned_by_another_user_is_refused() {
    if skip_unless_root("state_dir_owned_by_another_user_is_refused") {
        return;
    }
    let _w = Watchdog::new("state dir owner", LIMIT);
    let home = Home::new("{}");
    let state = private_dirs(&home);
    chown(&state, Some(NOBODY), None).unwrap();
    let err = assert_refused(&home, &state, "owned by uid 65534, not by this user (uid 0)");
    assert!(err.contains(&format!("chown -R 0 {}", state.display())), "{err}");
    assert_eq!(fs::metadata(&state).unwrap().uid(), NOBODY, "nothing was changed");
}

#[test]
fn spool_folder_owned_by_another_user_is_refused() {
    if skip_unless_root("spool_folder_owned_by_another_user_is_refused") {
        return;
    }
    let _w = Watchdog::new("spool owner", LIMIT);
    let home = Home::new("{}");
    let state = private_dirs(&home);
    chown(state.join("spool"), Some(NOBODY), None).unwrap();
    assert_refused(&home, &state.join("spool"), "is owned by uid 65534");
    assert!(
        !state.join("spool/journal.jsonl").exists(),
        "nothing was created in it"
    );
}

#[test]
fn group_writable_state_dir_is_refused_and_left_alone() {
    let _w = Watchdog::new("group writable", LIMIT);
    let home = Home::new("{}");
    let state = private_dirs(&home);
    chmod(&state, 0o770);
    assert_refused(&home, &state, "is writable by its group (mode 0770)");
    assert_eq!(mode(&state), 0o770, "refused, not chmodded");
}

/// A link planted at `rel` (inside the state dir) to a file outside it is refused, and
/// that file keeps its content and mode.
fn planted_link_is_refused(rel: &str) {
    let home = Home::new("{}");
    let state = private_dirs(&home);
    let victim = home.path().join("victim");
    fs::write(&victim, b"precious\n").unwrap();
    chmod(&victim, 0o644);
    let link = state.join(rel);
    symlink(&victim, &link).unwrap();
    assert_refused(&home, &link, "is a symbolic link");
    assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    assert_eq!(mode(&victim), 0o644);
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn link_at_the_journal_is_refused() {
    let _w = Watchdog::new("journal link", LIMIT);
    planted_link_is_refused("spool/journal.jsonl");
}

#[test]
fn link_at_the_spool_state_is_refused() {
    let _w = Watchdog::new("state link", LIMIT);
    planted_link_is_refused("spool/state.json");
}

#[test]
fn link_at_the_telegram_offset_is_refused() {
    let _w = Watchdog::new("offset link", LIMIT);
    planted_link_is_refused("telegram.offset");
}

#[test]
fn link_at_the_lock_file_is_refused() {
    let _w = Watchdog::new("lock link", LIMIT);
    let home = Home::new("{}");
    let lock = emonk::lock::lock_path(&home.state_dir(), &home.config_path());
    let rel = lock
        .strip_prefix(home.state_dir())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    planted_link_is_refused(&rel);
}

#[test]
fn fresh_state_dir_under_umask_000_is_private() {
    let _w = Watchdog::new("umask 000", LIMIT);
    let home = Home::new("{}");
    let mut cmd = home.command(&["run", "--port", "0"]);
    with_umask(&mut cmd, 0);
    let mut gw = Gateway::spawn_cmd(cmd);
    gw.port = listening_port(&gw.log, 0).unwrap_or_else(|| panic!("no listen: {}", gw.log.text()));
    let state = home.state_dir();
    let lock = emonk::lock::lock_path(&state, &home.config_path());
    for dir in [state.clone(), state.join("spool"), state.join("locks")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [state.join("spool/journal.jsonl"), lock] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(0), "{}", gw.log.text());
}

#[test]
fn healthy_state_dir_of_the_previous_release_still_opens() {
    let _w = Watchdog::new("previous release", LIMIT);
    let home = Home::new("{}");
    let state = private_dirs(&home);
    let params = r#"{"channel":"telegram","chatId":"1","cursor":"1","text":"kept"}"#;
    let files = [
        (
            "spool/journal.jsonl",
            format!("{{\"cursor\":1,\"source\":\"telegram/7\",\"seq\":5,\"params\":{params}}}\n"),
        ),
        (
            "spool/state.json",
            r#"{"version":1,"acked":0,"nextCursor":2,"highWater":{"telegram/7":5}}"#.to_owned() + "\n",
        ),
        ("telegram.offset", "{\"bot\":7,\"offset\":6}\n".to_owned()),
        ("slack.seen", "[\"Ev1\"]".to_owned()),
    ];
    for (rel, text) in &files {
        fs::write(state.join(rel), text).unwrap();
        chmod(&state.join(rel), 0o600);
    }
    let lock = emonk::lock::lock_path(&state, &home.config_path());
    fs::write(&lock, b"{\"pid\":1}").unwrap();
    chmod(&lock, 0o600);

    let mut gw = Gateway::start(&home);
    let mut op = gw.operator();
    let status = op.request("1", "gateway.status", json!({}));
    assert_eq!(status["result"]["spool"]["pending"], 1, "{status}");
    assert_eq!(status["result"]["spool"]["last"], "1", "{status}");
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(exit.code(), Some(0), "{}", gw.log.text());
    for (rel, _) in &files {
        assert_eq!(mode(&state.join(rel)), 0o600, "{rel}");
    }
}
