//! Named threads that report when they finish, so the supervisor can wait for all of them
//! against one deadline (std has no `join` with a timeout) and still notice a thread that
//! died unexpectedly.

use std::io;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, select};

use super::Control;

/// Sends the thread's name when dropped: on return and on panic alike.
struct DoneGuard {
    name: String,
    tx: Sender<String>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(std::mem::take(&mut self.name));
    }
}

/// A set of named threads started together and stopped together.
pub struct ThreadGroup {
    handles: Vec<(String, JoinHandle<()>)>,
    done_tx: Sender<String>,
    done_rx: Receiver<String>,
    finished: Vec<String>,
}

impl ThreadGroup {
    pub fn new() -> ThreadGroup {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        ThreadGroup {
            handles: Vec::new(),
            done_tx,
            done_rx,
            finished: Vec::new(),
        }
    }

    /// Start a named thread.
    pub fn spawn(&mut self, name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let guard = DoneGuard {
            name: name.to_owned(),
            tx: self.done_tx.clone(),
        };
        let handle = thread::Builder::new().name(name.to_owned()).spawn(move || {
            let _guard = guard;
            body();
        })?;
        self.handles.push((name.to_owned(), handle));
        Ok(())
    }

    /// Receives the name of each thread as it finishes.
    pub fn finished(&self) -> &Receiver<String> {
        &self.done_rx
    }

    /// Note a finish already taken from [`ThreadGroup::finished`].
    pub fn mark_finished(&mut self, name: String) {
        self.finished.push(name);
    }

    fn still_running(&self) -> Vec<String> {
        self.handles
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !self.finished.contains(n))
            .collect()
    }

    /// Wait until every thread finished or `deadline` passed, passing any control message
    /// that arrives meanwhile to `on_control`. Joins the finished threads. On timeout returns
    /// the names still running (they are left detached: the process is about to exit).
    pub fn wait_until(
        mut self,
        deadline: Instant,
        control: &Receiver<Control>,
        on_control: &mut dyn FnMut(Control),
    ) -> Result<(), Vec<String>> {
        let timeout = crossbeam_channel::at(deadline);
        let never = crossbeam_channel::never();
        let mut control = control;
        while !self.still_running().is_empty() {
            select! {
                recv(self.done_rx) -> name => {
                    if let Ok(name) = name { self.finished.push(name) }
                }
                recv(control) -> msg => match msg {
                    Ok(msg) => on_control(msg),
                    // A disconnected receiver is always ready: stop selecting on it.
                    Err(_) => control = &never,
                },
                recv(timeout) -> _ => return Err(self.still_running()),
            }
        }
        for (name, handle) in self.handles {
            if handle.join().is_err() {
                log::error!("thread {name} panicked");
            }
        }
        Ok(())
    }
}
