//! The signal thread: turns SIGTERM, SIGINT, SIGHUP and SIGUSR1 into [`Control`] messages.
//!
//! Handlers are registered before any other thread starts, so a signal can never land on a
//! thread with the default disposition. The thread only forwards; the supervisor decides.

use std::io;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Sender, TrySendError};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::{Handle, Signals};

use super::Control;

pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

/// A signal's name, for log lines.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}

impl SignalThread {
    pub fn start(tx: Sender<Control>) -> io::Result<SignalThread> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])?;
        let handle = signals.handle();
        let thread = thread::Builder::new()
            .name("emonk-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    match tx.try_send(Control::Signal(sig)) {
                        Ok(()) => {}
                        // A burst of signals beyond the queue changes nothing: the supervisor
                        // already has the same request queued.
                        Err(TrySendError::Full(_)) => {
                            log::warn!("{} dropped: too many signals queued", name(sig))
                        }
                        Err(TrySendError::Disconnected(_)) => break,
                    }
                }
            })?;
        Ok(SignalThread { handle, thread })
    }

    /// Stop listening and join the thread.
    pub fn stop(self) {
        self.handle.close();
        if self.thread.join().is_err() {
            log::error!("signal thread panicked");
        }
    }
}
