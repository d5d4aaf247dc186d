//! What the daemon does when a thread panics: log it, then abort the whole process.
//!
//! A panic is a bug. Unwinding would leave a gateway with one thread gone: a connector
//! silently down for months, or a router that no longer answers. Aborting hands the problem
//! to the service manager, which starts a whole, fresh process (the units say
//! `Restart=on-failure`, runit always restarts). An abort costs what a `kill -9` costs,
//! which the delivery design already covers: messages are in the spool or still with the
//! platform (a Telegram offset moves only after the spool's fsync), and agents resume from
//! `events.ack` as after any restart (README, "Delivery guarantees", has the per-platform
//! details).
//!
//! Release builds also compile with `panic = "abort"` (smaller and denser code); the hook
//! makes debug builds, which the tests run, behave the same.

use std::panic;
use std::process;
use std::thread;

/// Install the hook. Call once, before the daemon starts its threads.
pub fn abort_on_panic() {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        // std's report first (message, location, RUST_BACKTRACE), then one log line that
        // says what happens next.
        default_hook(info);
        let current = thread::current();
        let name = current.name().unwrap_or("unnamed");
        log::error!(
            "BUG: thread {name} panicked; aborting so that the service manager restarts emonkd (spooled messages are kept). Please report this with the lines above."
        );
        process::abort();
    }));
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// Set in the child copy of this test binary that installs the hook and panics.
    const CHILD: &str = "EMONK_TEST_CRASH_CHILD";

    #[test]
    fn a_panicking_thread_aborts_the_process_after_logging() {
        if std::env::var_os(CHILD).is_some() {
            crate::logging::init(false);
            super::abort_on_panic();
            let worker = std::thread::Builder::new()
                .name("emonk-test-worker".into())
                .spawn(|| panic!("invariant broken"))
                .unwrap();
            let _ = worker.join();
            // Reached only if the panic did not abort.
            std::process::exit(0);
        }
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "lifecycle::crash::tests::a_panicking_thread_aborts_the_process_after_logging",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "status {:?}; stderr:\n{stderr}",
            out.status
        );
        assert!(stderr.contains("invariant broken"), "{stderr}");
        assert!(
            stderr.contains("BUG: thread emonk-test-worker panicked; aborting"),
            "{stderr}"
        );
    }
}
