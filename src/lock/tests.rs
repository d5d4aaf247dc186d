//! Tests for the gateway lock, including one against a real second process that is
//! killed with SIGKILL, because "the kernel frees the lock when the holder dies" is the
//! property the whole design rests on.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

fn payload(port: u16) -> LockPayload {
    LockPayload::for_this_process(Path::new("/tmp/emonk-test/emonk.json"), "127.0.0.1", port)
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

#[test]
fn fnv1a32_known_vectors() {
    // Reference values from the FNV specification.
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
}

#[test]
fn lock_path_is_stable() {
    // Expected hex computed independently in Python:
    //   h = 0x811c9dc5; for c in b"/nonexistent-emonk-test/emonk.json":
    //       h = ((h ^ c) * 0x01000193) & 0xffffffff
    // The parent directory does not exist, so the path is hashed as given.
    let got = lock_path(
        Path::new("/state"),
        Path::new("/nonexistent-emonk-test/emonk.json"),
    );
    assert_eq!(got, Path::new("/state/locks/gateway.f4f06448.lock"));
}

#[test]
fn config_identity_normalizes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let real = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir(real.join("sub")).unwrap();
    let roundabout = real.join("sub").join("..").join("emonk.json");
    assert_eq!(config_identity(&roundabout), real.join("emonk.json"));
    assert_eq!(
        lock_path(Path::new("/s"), &roundabout),
        lock_path(Path::new("/s"), &real.join("emonk.json"))
    );
    // Relative paths become absolute.
    assert!(config_identity(Path::new("emonk.json")).is_absolute());
}

#[test]
fn acquire_creates_private_dir_and_file() {
    let state = tempfile::tempdir().unwrap();
    let path = lock_path(state.path(), Path::new("/nonexistent-emonk-test/a.json"));
    let lock = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    assert_eq!(lock.path(), path);
    assert_eq!(mode_of(path.parent().unwrap()), 0o700);
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn second_acquire_times_out_with_owner_pid() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.00000001.lock");
    let mut first = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    first.publish(&payload(4242)).unwrap();

    let started = Instant::now();
    let err = GatewayLock::acquire(&path, Duration::from_millis(300)).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    match &err {
        LockError::AlreadyRunning { pid, waited } => {
            assert_eq!(*pid, Some(std::process::id()));
            assert_eq!(*waited, Duration::from_millis(300));
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    let expected = format!(
        "gateway already running (pid {}); lock timeout after 300ms; ",
        std::process::id()
    );
    assert!(text.starts_with(&expected), "{text}");
    assert!(
        text.contains("emonkd stop") && text.contains(MULTI_GATEWAY_ENV),
        "says what to do: {text}"
    );

    drop(first);
    let again = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    // The file was kept, not deleted, and its payload emptied.
    assert_eq!(fs::read(again.path()).unwrap(), b"");
}

#[test]
fn already_running_without_payload_says_pid_unknown() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.00000002.lock");
    let _held = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    let err = GatewayLock::acquire(&path, Duration::ZERO).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("gateway already running (pid unknown); lock timeout after 0ms; "),
        "{err}"
    );
}

#[test]
fn already_running_hides_dead_pid() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.00000003.lock");
    let mut held = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    let mut stale = payload(1);
    stale.start_time += 1; // our pid, but not "us": a recycled pid
    held.publish(&stale).unwrap();
    match GatewayLock::acquire(&path, Duration::ZERO) {
        Err(LockError::AlreadyRunning { pid: None, .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn io_error_names_path_and_advice() {
    let state = tempfile::tempdir().unwrap();
    // `locks` is a regular file, so the directory cannot be created.
    fs::write(state.path().join("locks"), b"").unwrap();
    let path = state.path().join("locks/gateway.00000004.lock");
    let err = GatewayLock::acquire(&path, Duration::ZERO).unwrap_err();
    assert!(matches!(err, LockError::Io { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("state directory"), "{msg}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn publish_replaces_payload() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.00000005.lock");
    let mut lock = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    let long = LockPayload {
        host: "a-rather-long-host-name.example".into(),
        ..payload(18789)
    };
    lock.publish(&long).unwrap();
    let short = payload(1);
    lock.publish(&short).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let parsed: LockPayload = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, short);
    // Contract key names.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in ["pid", "startTime", "createdAt", "configPath", "host", "port"] {
        assert!(v.get(key).is_some(), "missing {key} in {text}");
    }
}

#[test]
fn probe_owner_follows_the_lock_not_the_payload() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.00000006.lock");
    assert_eq!(probe_owner(&path).unwrap(), Owner::NotRunning);

    let mut lock = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    assert_eq!(probe_owner(&path).unwrap(), Owner::RunningUnknownPayload);
    let p = payload(18789);
    lock.publish(&p).unwrap();
    assert_eq!(probe_owner(&path).unwrap(), Owner::Running(p.clone()));
    // Probing must not disturb the holder.
    assert_eq!(probe_owner(&path).unwrap(), Owner::Running(p.clone()));
    drop(lock);
    assert_eq!(probe_owner(&path).unwrap(), Owner::NotRunning);

    // A stale payload naming a live process (us) still reads as not running.
    fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
    assert_eq!(probe_owner(&path).unwrap(), Owner::NotRunning);
}

#[test]
fn concurrent_probes_do_not_see_each_other() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.00000007.lock");
    drop(GatewayLock::acquire(&path, Duration::ZERO).unwrap());
    // Simulate a probe that is mid-flight: a shared lock held on another descriptor.
    let other = File::open(&path).unwrap();
    FileExt::try_lock_shared(&other).unwrap();
    assert_eq!(probe_owner(&path).unwrap(), Owner::NotRunning);
}

#[test]
fn restart_authorization_is_one_shot() {
    let state = tempfile::tempdir().unwrap();
    let lock =
        GatewayLock::acquire(&state.path().join("locks/gateway.00000008.lock"), Duration::ZERO).unwrap();
    let auth = authorize_restart(lock.path()).unwrap();
    assert_eq!(auth, state.path().join("locks/gateway.00000008.restart"));
    assert_eq!(mode_of(&auth), 0o600);
    let created: u64 = fs::read_to_string(&auth).unwrap().parse().unwrap();
    assert!(created.abs_diff(procinfo::unix_ms()) < 60_000);

    assert!(take_restart_authorization(lock.path(), Duration::from_secs(60)));
    assert!(!auth.exists());
    assert!(!take_restart_authorization(lock.path(), Duration::from_secs(60)));
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(auth.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("gateway.00000008.lock")]);
}

#[test]
fn stale_or_malformed_restart_authorization_is_refused_and_removed() {
    let state = tempfile::tempdir().unwrap();
    let lock_file = state.path().join("gateway.00000009.lock");
    let auth = restart_authorization_path(&lock_file);

    let old = procinfo::unix_ms() - 120_000;
    fs::write(&auth, old.to_string()).unwrap();
    assert!(!take_restart_authorization(&lock_file, Duration::from_secs(60)));
    assert!(!auth.exists());

    fs::write(&auth, "not a number").unwrap();
    assert!(!take_restart_authorization(&lock_file, Duration::from_secs(60)));
    assert!(!auth.exists());

    let future = procinfo::unix_ms() + 3_600_000;
    fs::write(&auth, future.to_string()).unwrap();
    assert!(!take_restart_authorization(&lock_file, Duration::from_secs(60)));

    // max_age is honoured: a 2 s old authorization is fine for 60 s, not for 1 s.
    let two_secs_ago = procinfo::unix_ms() - 2_000;
    fs::write(&auth, two_secs_ago.to_string()).unwrap();
    assert!(!take_restart_authorization(&lock_file, Duration::from_secs(1)));
    fs::write(&auth, two_secs_ago.to_string()).unwrap();
    assert!(take_restart_authorization(&lock_file, Duration::from_secs(60)));
}

#[test]
fn multi_gateway_env() {
    let with = |v: Option<&'static str>| {
        move |k: &str| {
            assert_eq!(k, MULTI_GATEWAY_ENV);
            v.map(String::from)
        }
    };
    assert!(multi_gateway_allowed(&with(Some("1"))));
    assert!(!multi_gateway_allowed(&with(Some("0"))));
    assert!(!multi_gateway_allowed(&with(Some(""))));
    assert!(!multi_gateway_allowed(&with(None)));
}

/// Env var that turns [`lock_holder_child`] from a no-op into the lock-holding child.
const CHILD_ENV: &str = "EMONK_TEST_LOCK_HOLDER";

/// Not a test on its own: when [`kill_9_frees_the_lock`] re-runs this test binary with
/// `CHILD_ENV` set, this acquires the lock, announces it, and sleeps until killed.
#[test]
fn lock_holder_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut lock = GatewayLock::acquire(Path::new(&path), Duration::ZERO).unwrap();
    lock.publish(&payload(18789)).unwrap();
    println!("EMONK-LOCKED");
    // Bounded, so an orphaned child cannot linger forever if the parent test dies.
    thread::sleep(Duration::from_secs(30));
}

#[test]
fn kill_9_frees_the_lock() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("locks/gateway.0000000a.lock");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "lock::tests::lock_holder_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Watchdog: wait for the child's line on a thread so a stuck child fails the test.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let locked = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("EMONK-LOCKED"));
        let _ = tx.send(locked);
    });
    let locked = rx.recv_timeout(Duration::from_secs(20)).unwrap_or(false);
    if !locked {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child never reported holding the lock");
    }

    let child_pid = child.id();
    match probe_owner(&path).unwrap() {
        Owner::Running(p) => assert_eq!(p.pid, child_pid),
        other => panic!("unexpected {other:?}"),
    }
    match GatewayLock::acquire(&path, Duration::ZERO) {
        Err(LockError::AlreadyRunning { pid, .. }) => assert_eq!(pid, Some(child_pid)),
        other => panic!("unexpected {other:?}"),
    }

    child.kill().unwrap(); // SIGKILL: no destructor runs, the payload stays behind
    child.wait().unwrap();
    assert!(!fs::read(&path).unwrap().is_empty(), "stale payload expected");
    assert_eq!(probe_owner(&path).unwrap(), Owner::NotRunning);
    let lock = GatewayLock::acquire(&path, Duration::ZERO).unwrap();
    assert_eq!(probe_owner(lock.path()).unwrap(), Owner::RunningUnknownPayload);
}
