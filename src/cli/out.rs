//! Every byte a subcommand prints goes through here, so that a closed or full stdout is
//! handled once for all of them.
//!
//! `println!` panics when the write fails, which turned `emonkd status | head -0` into a
//! crash (exit 101, or 134 with `panic = "abort"`). Here a reader that went away (EPIPE)
//! is a normal end: the rest of the output is dropped and the command finishes with the
//! exit code it would have had, like `yes | head -1`. Any other write error (`> /dev/full`
//! gives ENOSPC) is reported as "could not write output: ..." and exits 1. Stderr is
//! best effort: when it cannot be written there is nowhere left to say so.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// Set once stdout's reader has gone away; later output is dropped without trying.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Stdout with this module's policy, as a `Write` for code that takes one (`service`):
/// EPIPE reads as success, every write is flushed at once (a line printed before a
/// long wait, as `stop` does, must be visible during the wait).
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        match out.write_all(buf).and_then(|()| out.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error a failed write of a command's output becomes (exit 1).
pub fn write_error(e: &io::Error) -> Error {
    Error::failure(format!("could not write output: {e}"))
}

/// Print `text` on stdout as is.
pub fn print(text: &str) -> Result<(), Error> {
    Stdout.write_all(text.as_bytes()).map_err(|e| write_error(&e))
}

/// Print `text` and a newline on stdout.
pub fn line(text: impl std::fmt::Display) -> Result<(), Error> {
    print(&format!("{text}\n"))
}

/// Print on stderr, ignoring failure (see the module docs).
pub fn eprint(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// `outln!("fmt", args..)`: [`line`] with `format!` arguments; returns its `Result`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
