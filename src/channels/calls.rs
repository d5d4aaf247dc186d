//! Blocking HTTP calls that a connector can walk away from.
//!
//! ureq has no way to cancel a request in flight, and a Telegram long poll blocks for up to
//! 50 s. So a connector never makes a blocking call on its own thread: each call runs on a
//! short-lived named thread and its result comes back over a channel, tagged with an id. The
//! connector thread stays free to handle `Stop` and sends, to notice a stalled call, and to
//! ignore a result it no longer wants. At a stop the connector aborts its HTTP agent (ureq's
//! `Agent::shutdown`), so the call threads end at once and are joined; one that somehow does
//! not is left to end by its own HTTP timeout after a short grace (its result is discarded:
//! nothing is confirmed to the platform by a call whose answer was never read).

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// Identifies one call.
pub type CallId = u64;

/// Spawns calls and collects their results.
pub struct Calls<R> {
    name: String,
    next: CallId,
    tx: Sender<(CallId, R)>,
    rx: Receiver<(CallId, R)>,
    running: Vec<JoinHandle<()>>,
}

impl<R: Send + 'static> Calls<R> {
    /// `name` names the call threads (e.g. `emonk-telegram-http`).
    pub fn new(name: &str) -> Calls<R> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Calls {
            name: name.to_owned(),
            next: 0,
            tx,
            rx,
            running: Vec::new(),
        }
    }

    /// Results, to select on.
    pub fn results(&self) -> &Receiver<(CallId, R)> {
        &self.rx
    }

    /// Run `call` on its own thread. Fails only when no thread can be started (resource
    /// exhaustion); the caller treats that like a network error and retries later.
    pub fn start(&mut self, call: impl FnOnce() -> R + Send + 'static) -> std::io::Result<CallId> {
        self.reap();
        self.next += 1;
        let id = self.next;
        let tx = self.tx.clone();
        let body = move || {
            let _ = tx.send((id, call()));
        };
        let handle = thread::Builder::new().name(self.name.clone()).spawn(body)?;
        self.running.push(handle);
        Ok(id)
    }

    /// Join threads that have finished.
    fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) = self.running.drain(..).partition(|h| h.is_finished());
        self.running = running;
        for h in done {
            let _ = h.join();
        }
    }

    /// At a stop: wait until `deadline` for running calls, join those that finished, and
    /// report how many were left running.
    pub fn finish(mut self, deadline: Instant) -> usize {
        while !self.running.is_empty() && Instant::now() < deadline {
            self.reap();
            thread::sleep(Duration::from_millis(10));
        }
        self.reap();
        let left = self.running.len();
        if left > 0 {
            log::info!(
                "{left} {} call(s) still in flight at stop; abandoned (they end by their own timeout)",
                self.name
            );
        }
        left
    }
}
