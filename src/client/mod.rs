//! A synchronous client for the emonkd gateway, used by the `emonkd call`, `status` and
//! `restart` commands, by integration tests, and by agent programs.
//!
//! [`GatewayClient::connect`] opens and greets the first link in the calling thread, so
//! its failure is returned as is. After that one named thread, `emonk-client`, owns the
//! socket: calls hand it frames over a bounded channel and wait on their own reply
//! channel with a deadline; events, forwarded requests and link changes arrive through
//! [`GatewayClient::next_incoming`]. Every wait in here is bounded, and closing finishes
//! within about a second even if the gateway has gone silent.
//!
//! ```no_run
//! use std::time::Duration;
//! use emonk::client::{ClientOptions, GatewayClient};
//!
//! let client = GatewayClient::connect(ClientOptions::new("ws://127.0.0.1:18789"))?;
//! let pong = client.call("gateway.ping", serde_json::json!({}), Duration::from_secs(5))?;
//! println!("{pong}");
//! client.close();
//! # Ok::<(), emonk::client::ClientError>(())
//! ```

mod error;
mod io;
mod link;
mod options;
mod waker;
mod wire;

#[cfg(test)]
mod fake_gateway;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded, unbounded};
use log::warn;
use serde_json::Value;

pub use error::{ClientError, RemoteError};
pub use options::{ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_URL, Mode, Role};
pub use wire::{Hello, PROTOCOL_VERSION};

use io::{Command, IoThread, Reply, Shared, lock};
use waker::Waker;

/// Frames that may wait for the I/O thread; callers beyond this block until their own
/// deadline rather than growing memory.
const COMMAND_QUEUE: usize = 1024;
/// Items that may wait for `next_incoming`; beyond this new ones are dropped (and logged).
pub const INCOMING_QUEUE: usize = 4096;
/// How long `respond` waits for the I/O thread to accept an answer.
const RESPOND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `close` and `drop` wait for the I/O thread before leaving it behind.
const CLOSE_BUDGET: Duration = Duration::from_secs(1);

/// Something the gateway sent that is not an answer to one of our calls, or a change of
/// the link.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incoming {
    /// An event: `tick`, `shutdown`, `channel.message`, `channel.status`, …
    Event {
        /// The event name.
        name: String,
        /// 1, 2, 3, … per connection; restarts after a reconnect.
        seq: u64,
        /// The event's payload.
        params: Value,
    },
    /// A request forwarded to this agent. Answer it with [`GatewayClient::respond`]
    /// (chunks with `final_ = false`, then one `final_ = true`).
    Request {
        /// The gateway's id for it; valid only on the link it arrived on.
        request_id: String,
        /// The `agent.*` method the operator called.
        method: String,
        /// The operator's params.
        params: Value,
    },
    /// The client connected again after a drop: a new session (agents re-announce here).
    Reconnected(Hello),
    /// The link dropped. Calls in flight failed with [`ClientError::Disconnected`]; the
    /// client reconnects unless the drop was final (see [`GatewayClient::stop_reason`]).
    Disconnected {
        /// The WebSocket close code, if the gateway sent one (1001 stopping, 1012
        /// restarting, 1008 policy, …).
        code: Option<u16>,
        /// What happened, for logs.
        reason: String,
    },
    /// The gateway could not parse a frame this client sent (an `error` frame).
    GatewayError(RemoteError),
}

/// A connection to the gateway that survives drops and restarts. `Send + Sync`: share it
/// by reference (or `Arc`) between threads, for example one answering forwarded requests
/// while another makes calls.
#[derive(Debug)]
pub struct GatewayClient {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    incoming: Receiver<Incoming>,
    waker: Waker,
    /// Never receives a value; it disconnects when the I/O thread ends, even by panic,
    /// which is what lets `close` wait for the thread with a deadline.
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl GatewayClient {
    /// Connects and greets the gateway, then starts the I/O thread.
    ///
    /// A failure here is returned, never retried: the caller decides whether to try again.
    /// `Rejected` with `UNAUTHORIZED` or `PROTOCOL_MISMATCH` will not go away by retrying.
    pub fn connect(opts: ClientOptions) -> Result<GatewayClient, ClientError> {
        // Nobody can ask this first attempt to stop: the caller is the one waiting on it.
        let first = link::open(&opts, &AtomicBool::new(false))?;
        let shared = Arc::new(Shared::new(first.hello.clone()));
        let (waker, wake_rx) = waker::pair()
            .map_err(|e| ClientError::Connect(format!("cannot create the wake-up pipe: {e}")))?;
        let (commands, commands_rx) = bounded(COMMAND_QUEUE);
        let (incoming_tx, incoming) = bounded(INCOMING_QUEUE);
        let (exited_tx, exited) = bounded::<()>(0);
        let io = IoThread::new(opts, shared.clone(), commands_rx, incoming_tx, wake_rx);
        let thread = thread::Builder::new()
            .name("emonk-client".to_owned())
            .spawn(move || {
                let _exited = exited_tx;
                io.run(first);
            })
            .map_err(|e| ClientError::Connect(format!("cannot start the I/O thread: {e}")))?;
        Ok(GatewayClient {
            shared,
            commands,
            incoming,
            waker,
            exited,
            thread: Some(thread),
        })
    }

    /// The hello of the current (or last) link.
    pub fn hello(&self) -> Hello {
        lock(&self.shared.hello).clone()
    }

    /// True while a link is up. A snapshot: the link may drop right after.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Why the client stopped for good (rejected, superseded, reconnect off, closed), or
    /// `None` while it is connected or reconnecting. Once this is `Some`, every call
    /// returns this error and `next_incoming` returns `None` at once.
    pub fn stop_reason(&self) -> Option<ClientError> {
        lock(&self.shared.terminal).clone()
    }

    /// Calls `method` and waits up to `timeout` for its final result. Streamed chunks,
    /// if any, are discarded; use [`call_streaming`](Self::call_streaming) to see them.
    pub fn call(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, ClientError> {
        self.call_streaming(method, params, timeout, &mut |_| {})
    }

    /// Calls `method`, hands each `final: false` chunk's result to `on_chunk` (in this
    /// thread), and returns the final result. `timeout` bounds the whole call, chunks
    /// included. On timeout the request is abandoned: it may still run at the gateway,
    /// and its late answer is dropped. A request is never resent after a reconnect.
    pub fn call_streaming(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        on_chunk: &mut dyn FnMut(&Value),
    ) -> Result<Value, ClientError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || ClientError::Timeout {
            method: method.to_owned(),
            after: timeout,
        };
        if let Some(err) = self.stop_reason() {
            return Err(err);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let frame = wire::request_frame(&id, method, params);
        self.check_size(frame.len())?;
        let (reply_tx, reply) = unbounded();
        let cmd = Command::Request {
            id: id.clone(),
            method: method.to_owned(),
            frame,
            reply: reply_tx,
        };
        self.submit(cmd, deadline, timed_out)?;
        loop {
            match reply.recv_deadline(deadline) {
                Ok(Reply::Chunk(chunk)) => on_chunk(&chunk),
                Ok(Reply::Final(result)) => return result.map_err(ClientError::Remote),
                Ok(Reply::Failed(err)) => return Err(err),
                Err(RecvTimeoutError::Timeout) => {
                    // Best effort: if the queue is full, the late answer finds our
                    // receiver gone and is dropped then.
                    if self.commands.try_send(Command::Cancel { id }).is_ok() {
                        self.waker.wake();
                    }
                    return Err(timed_out());
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.gone()),
            }
        }
    }

    /// Waits up to `timeout` for the next event, forwarded request or link change.
    /// `None` on timeout, and at once after the client stopped for good.
    pub fn next_incoming(&self, timeout: Duration) -> Option<Incoming> {
        self.incoming.recv_timeout(timeout).ok()
    }

    /// Answers a forwarded request (agents). Send chunks with `final_ = false`, then one
    /// answer with `final_ = true`; an `Err` always ends the request. Returns once the
    /// I/O thread has queued the frame; fails with `UnknownRequest` if the request is not
    /// open on the current link (answered already, or the link it came on dropped).
    pub fn respond(
        &self,
        request_id: &str,
        result: Result<Value, RemoteError>,
        final_: bool,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + RESPOND_TIMEOUT;
        let timed_out = || ClientError::Timeout {
            method: "respond".to_owned(),
            after: RESPOND_TIMEOUT,
        };
        if let Some(err) = self.stop_reason() {
            return Err(err);
        }
        let final_ = final_ || result.is_err();
        let frame = wire::response_frame(request_id, &result, final_);
        self.check_size(frame.len())?;
        let (ack_tx, ack) = bounded(1);
        let cmd = Command::Respond {
            id: request_id.to_owned(),
            frame,
            final_,
            ack: ack_tx,
        };
        self.submit(cmd, deadline, timed_out)?;
        match ack.recv_deadline(deadline) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(timed_out()),
            Err(RecvTimeoutError::Disconnected) => Err(self.gone()),
        }
    }

    /// Sends close 1000, waits briefly for the gateway's reply and joins the I/O thread;
    /// takes at most about a second. Calls still waiting fail with `Closed`.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.request_stop();
        match self.exited.recv_timeout(CLOSE_BUDGET) {
            Err(RecvTimeoutError::Timeout) => {
                // Only a TCP connect to an unresponsive address outlasts the budget; the
                // thread ends by itself within `connect_timeout`.
                warn!(
                    "the emonk-client thread did not stop within {} ms; leaving it to finish",
                    CLOSE_BUDGET.as_millis()
                );
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if thread.join().is_err() {
                    warn!("the emonk-client thread panicked");
                }
            }
        }
        lock(&self.shared.terminal).get_or_insert(ClientError::Closed);
    }

    /// Tells the I/O thread to close the link and end; does not wait.
    fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn check_size(&self, size: usize) -> Result<(), ClientError> {
        let max = lock(&self.shared.hello).max_payload;
        if size as u64 > max {
            return Err(ClientError::TooLarge { size, max });
        }
        Ok(())
    }

    fn submit(
        &self,
        cmd: Command,
        deadline: Instant,
        timed_out: impl FnOnce() -> ClientError,
    ) -> Result<(), ClientError> {
        match self.commands.send_deadline(cmd, deadline) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            Err(SendTimeoutError::Timeout(_)) => Err(timed_out()),
            Err(SendTimeoutError::Disconnected(_)) => Err(self.gone()),
        }
    }

    /// The error for "the I/O thread is no longer there to answer".
    fn gone(&self) -> ClientError {
        self.stop_reason().unwrap_or(ClientError::Closed)
    }
}

impl Drop for GatewayClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}
