//! Waking the I/O thread out of `poll(2)`.
//!
//! The I/O thread sleeps in `poll` on the gateway socket and on one end of a Unix socket
//! pair; callers write a byte to the other end after queueing a frame, so a request goes
//! out at once instead of after the next read timeout. Both ends are non-blocking: a full
//! pipe already means "wake up", so a failed write is harmless.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The callers' end. `&UnixStream` implements `Write`, so this is shareable across threads.
#[derive(Debug)]
pub(crate) struct Waker(UnixStream);

/// The I/O thread's end.
#[derive(Debug)]
pub(crate) struct WakeReceiver(UnixStream);

pub(crate) fn pair() -> io::Result<(Waker, WakeReceiver)> {
    let (tx, rx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((Waker(tx), WakeReceiver(rx)))
}

impl Waker {
    pub(crate) fn wake(&self) {
        // WouldBlock means unread wake-ups are pending, which is all we want.
        let _ = (&self.0).write(&[1]);
    }
}

impl WakeReceiver {
    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Drains pending wake-ups so the next `poll` sleeps again. Bounded: the pipe buffer is
    /// finite and nothing refills it faster than we read it for long.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 256];
        for _ in 0..64 {
            match (&self.0).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                _ => break,
            }
        }
    }
}

/// Sleeps until `socket` is readable (or writable, with `want_write`), `wake` is readable,
/// or `timeout` passes. Which one fired does not matter: the caller then tries every
/// non-blocking operation, which is what decides.
pub(crate) fn wait(socket: RawFd, want_write: bool, wake: RawFd, timeout: Duration) -> io::Result<()> {
    let mut events = libc::POLLIN;
    if want_write {
        events |= libc::POLLOUT;
    }
    let mut fds = [
        libc::pollfd {
            fd: socket,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: wake,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Round up so a sub-millisecond remainder does not turn into a busy loop.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a live, correctly sized array of `pollfd` for the whole call, and
    // poll(2) writes only the `revents` fields inside it.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn wake_interrupts_wait_and_drain_rearms_it() {
        let (waker, rx) = pair().unwrap();
        let (idle, _peer) = UnixStream::pair().unwrap();
        waker.wake();
        let start = Instant::now();
        wait(idle.as_raw_fd(), false, rx.fd(), Duration::from_secs(5)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        rx.drain();
        let start = Instant::now();
        wait(idle.as_raw_fd(), false, rx.fd(), Duration::from_millis(50)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(40));
    }
}
