//! The loop's wake-up: an eventfd that other threads write to and the loop drains.
//!
//! mio's own `Waker` never reads its eventfd and relies on every write producing a fresh
//! edge. On the kernels this daemon was tested on, a write to an eventfd whose counter is
//! already non-zero produced no new edge-triggered event, so a second wake-up was lost and
//! the loop slept until its next timer. Draining the counter on every wake-up makes the next
//! write a 0 -> 1 transition, which every kernel reports.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

pub struct LoopWaker {
    fd: OwnedFd,
}

impl LoopWaker {
    /// Create the eventfd and register it with the loop's poll under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<LoopWaker> {
        // SAFETY: eventfd returns a new descriptor or -1; ownership passes to OwnedFd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(LoopWaker { fd })
    }

    /// Wake the loop. A full counter (never in practice) already means a wake-up is pending.
    pub fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own descriptor.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reset the counter; called by the loop when the wake-up event arrives.
    pub fn reset(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64 from our own descriptor. An empty
        // counter gives EAGAIN, which is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
    }
}
