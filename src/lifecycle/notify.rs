//! sd_notify(3) without libsystemd: one Unix datagram per state change to `$NOTIFY_SOCKET`.
//!
//! The protocol is newline-separated `KEY=VALUE` text sent to a datagram socket whose address
//! systemd puts in `$NOTIFY_SOCKET`: a path, or `@name` for a Linux abstract socket. Linking
//! libsystemd for that would cost a C dependency for twenty lines, so it is done by hand.
//!
//! What emonkd sends and when (see `emonkd(8)`):
//! - `READY=1`, `MAINPID`, `STATUS=listening on ws://…` once the lock is held, the socket
//!   listens and the instance threads run; again after every reload or restart.
//! - `RELOADING=1` with `MONOTONIC_USEC` (as `Type=notify-reload` requires) on SIGHUP and on
//!   an authorized restart, before the running instance is stopped.
//! - `STOPPING=1` when a stop begins.
//! - `WATCHDOG=1` every half of `$WATCHDOG_USEC`, only while the liveness probe says the
//!   loop, the router and every connector answer (see `liveness.rs`).
//!
//! Sending never fails the daemon: a broken socket is logged once and otherwise ignored.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::paths::Env;

/// The notification socket, if systemd (or a test) gave us one.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    warned: AtomicBool,
}

/// Parse `$NOTIFY_SOCKET`: an absolute path, or `@name` for an abstract socket.
pub fn parse_address(value: &str) -> io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name.as_bytes());
    }
    if value.starts_with('/') {
        return SocketAddr::from_pathname(value);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "expected an absolute path or @abstract-name",
    ))
}

impl Notifier {
    /// A notifier that sends nothing (no `$NOTIFY_SOCKET`).
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            warned: AtomicBool::new(false),
        }
    }

    /// From `$NOTIFY_SOCKET`. A malformed value is logged and notification is off: the
    /// daemon still runs, and the supervisor's start timeout reports the problem.
    pub fn from_env(env: Env) -> Notifier {
        let Some(value) = env("NOTIFY_SOCKET") else {
            return Notifier::disabled();
        };
        let target = parse_address(&value).and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match target {
            Ok(target) => {
                log::debug!("sd_notify: notifying {value}");
                Notifier {
                    target: Some(target),
                    warned: AtomicBool::new(false),
                }
            }
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={value:?} is unusable ({e}); not notifying the supervisor");
                Notifier::disabled()
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1` with our pid and a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS={}",
            std::process::id(),
            one_line(status)
        ));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, which `Type=notify-reload` requires.
    pub fn reloading(&self, status: &str) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}",
            monotonic_usec(),
            one_line(status)
        ));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                log::warn!("sd_notify: cannot send to NOTIFY_SOCKET: {e}; further failures are not logged");
            }
        }
    }
}

/// `STATUS=` ends at a newline; keep a status to one line.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// CLOCK_MONOTONIC in microseconds: the clock systemd compares `MONOTONIC_USEC` against.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if it is set, valid and meant
/// for us (`$WATCHDOG_PID` absent or equal to our pid).
pub fn watchdog_interval(env: Env) -> Option<Duration> {
    let usec: u64 = env("WATCHDOG_USEC")?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = env("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn addresses() {
        assert!(
            parse_address("/run/systemd/notify")
                .unwrap()
                .as_pathname()
                .is_some()
        );
        let abs = parse_address("@emonk-test").unwrap();
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(abs.as_abstract_name(), Some(&b"emonk-test"[..]));
        assert!(parse_address("relative/path").is_err());
    }

    #[test]
    fn watchdog_interval_is_half_and_checks_the_pid() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "30000000")])),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", &me)])),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")])),
            None
        );
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "0")])), None);
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "x")])), None);
        assert_eq!(watchdog_interval(&env(&[])), None);
    }

    #[test]
    fn sends_datagrams_to_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", path.to_str().unwrap())]));
        assert!(n.enabled());
        n.ready("listening on ws://127.0.0.1:1");
        let mut buf = [0u8; 512];
        let len = rx.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(msg.starts_with("READY=1\nMAINPID="), "{msg}");
        assert!(msg.ends_with("STATUS=listening on ws://127.0.0.1:1"), "{msg}");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("emonk-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))]));
        n.reloading("reloading");
        let len = rx.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        let usec: u64 = msg
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(msg.starts_with("RELOADING=1\n"), "{msg}");
        assert!(usec > 0 && usec <= monotonic_usec());
    }

    #[test]
    fn no_socket_sends_nothing_and_a_bad_one_is_not_fatal() {
        assert!(!Notifier::from_env(&env(&[])).enabled());
        assert!(!Notifier::from_env(&env(&[("NOTIFY_SOCKET", "nope")])).enabled());
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", "/nonexistent/emonk/notify")]));
        n.watchdog();
        n.watchdog();
    }
}
