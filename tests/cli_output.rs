//! What a subcommand does when its stdout cannot be written, through the real binary: a
//! reader that has gone away (`emonkd status | true`, EPIPE) is a normal end with the usual
//! exit code and no panic; a full disk (`> /dev/full`, ENOSPC) is reported and exits 1.

mod support;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Output, Stdio};
use std::time::Duration;

use support::{Gateway, Home, Watchdog, code_of, stderr_of};

const WD: Duration = Duration::from_secs(60);
const LIMIT: Duration = Duration::from_secs(20);

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE,
/// deterministically (no race with a reader that closes "soon").
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// Run `emonkd ARGS` with `stdout` as its standard output.
fn run_with_stdout(home: &Home, args: &[&str], stdout: Stdio) -> Output {
    let mut cmd = home.command(args);
    cmd.stdout(stdout).stderr(Stdio::piped());
    run_as_set_up(cmd)
}

/// Like `support::run_to_end`, which pipes stdout and stderr itself, but with the
/// descriptors the caller chose.
fn run_as_set_up(mut cmd: std::process::Command) -> Output {
    let child = cmd.spawn().expect("spawn emonkd");
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = std::time::Instant::now() + LIMIT;
    while !waiter.is_finished() {
        if std::time::Instant::now() >= deadline {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(id as i32, libc::SIGKILL) };
            panic!("emonkd did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter.join().unwrap().expect("wait for emonkd")
}

/// Each command with its normal exit code when stdout works.
fn commands() -> Vec<(Vec<&'static str>, i32)> {
    vec![
        (vec!["help"], 0),
        (vec!["--help"], 0),
        (vec!["run", "--help"], 0),
        (vec!["--version"], 0),
        (vec!["check-config"], 0),
        (vec!["status"], 0),
        (vec!["status", "--json"], 0),
        (vec!["call", "gateway.status"], 0),
        (vec!["service", "status", "--dry-run"], 0),
    ]
}

fn assert_no_panic(args: &[&str], out: &Output) {
    let err = stderr_of(out);
    assert!(
        !err.contains("panicked") && out.status.code().is_some(),
        "emonkd {args:?} crashed ({:?}): {err}",
        out.status
    );
}

#[test]
fn a_closed_stdout_is_a_normal_end() {
    let _w = Watchdog::new("closed stdout", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    for (args, code) in commands() {
        let out = run_with_stdout(&home, &args, closed_pipe());
        assert_no_panic(&args, &out);
        assert_eq!(code_of(&out), code, "emonkd {args:?}: {}", stderr_of(&out));
        assert!(
            !stderr_of(&out).contains("could not write"),
            "EPIPE is not an error: {}",
            stderr_of(&out)
        );
    }
    // A command that finds no gateway keeps its own exit code (3) too.
    gw.stop_ok();
    let out = run_with_stdout(&home, &["status"], closed_pipe());
    assert_no_panic(&["status"], &out);
    assert_eq!(code_of(&out), 3, "{}", stderr_of(&out));
}

#[test]
fn a_full_stdout_is_reported_and_exits_1() {
    let _w = Watchdog::new("full stdout", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    for (args, _) in commands() {
        let out = run_with_stdout(&home, &args, dev_full());
        assert_no_panic(&args, &out);
        let err = stderr_of(&out);
        assert_eq!(code_of(&out), 1, "emonkd {args:?}: {err}");
        assert!(
            err.contains("could not write output") && err.contains("No space left on device"),
            "emonkd {args:?}: {err}"
        );
    }
    gw.stop_ok();
}

/// Stderr that cannot be written does not crash a command either.
#[test]
fn a_full_stderr_does_not_crash() {
    let _w = Watchdog::new("full stderr", WD);
    let home = Home::new("{}");
    for (args, code) in [(&["bogus"][..], 2), (&["check-config"][..], 0)] {
        let mut cmd = home.command(args);
        cmd.stdout(Stdio::piped()).stderr(dev_full());
        let out = run_as_set_up(cmd);
        assert!(out.status.code().is_some(), "emonkd {args:?}: {:?}", out.status);
        assert_eq!(code_of(&out), code, "emonkd {args:?}");
    }
}
