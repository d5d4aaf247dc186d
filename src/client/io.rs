//! The I/O thread: the only owner of the WebSocket.
//!
//! Callers hand it [`Command`]s over a bounded channel and wake it through the
//! [`Waker`](super::waker::Waker); it writes their frames, routes responses back over each
//! request's own reply channel, queues events and forwarded requests for
//! `next_incoming`, watches for a dead link, and reconnects with backoff. Keeping every
//! socket operation on one thread means no locks around the socket and one place that
//! decides what a dropped link means for the requests in flight.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use log::{debug, info, warn};
use serde_json::Value;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use super::Incoming;
use super::error::{ClientError, RemoteError};
use super::link::{self, Link, Ws, would_block};
use super::options::{ClientOptions, Role};
use super::waker::{self, WakeReceiver};
use super::wire::{self, Hello, ServerFrame};
use crate::backoff::Backoff;

/// Streamed chunks one call may have queued before the caller is declared too slow.
pub(crate) const REPLY_BACKLOG: usize = 1024;
/// Forwarded requests an agent may hold open at once; more are refused with
/// `RATE_LIMITED` so the set cannot grow without bound if the agent never answers.
pub(crate) const MAX_FORWARDED: usize = 4096;
/// Frames read, or commands taken, per loop pass, so neither direction starves the other.
const MAX_PER_PASS: usize = 64;
/// Longest `poll` sleep; the loop re-checks its deadlines at least this often.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Granularity of the wait between reconnect attempts (stop flag checks).
const RECONNECT_SLICE: Duration = Duration::from_millis(100);
/// How long a graceful close waits for the gateway's close reply.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// What callers ask the I/O thread to do.
pub(crate) enum Command {
    Request {
        id: String,
        method: String,
        frame: String,
        reply: Sender<Reply>,
    },
    /// The caller gave up (timeout): forget the request so a late answer is dropped.
    Cancel { id: String },
    /// An agent's answer to a forwarded request.
    Respond {
        id: String,
        frame: String,
        final_: bool,
        ack: Sender<Result<(), ClientError>>,
    },
}

/// What a caller waiting on a request receives.
pub(crate) enum Reply {
    Chunk(Value),
    Final(Result<Value, RemoteError>),
    Failed(ClientError),
}

/// State both the handle and the I/O thread see.
#[derive(Debug)]
pub(crate) struct Shared {
    pub hello: Mutex<Hello>,
    /// Set once the thread has given up for good; every later call returns it.
    pub terminal: Mutex<Option<ClientError>>,
    pub connected: AtomicBool,
    pub stop: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes is plain values replaced whole; a panic elsewhere
    // cannot leave them half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(hello: Hello) -> Shared {
        Shared {
            hello: Mutex::new(hello),
            terminal: Mutex::new(None),
            connected: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// How a link ended.
enum LinkEnd {
    /// `close()` or drop of the handle.
    Stopped,
    Lost {
        code: Option<u16>,
        reason: String,
    },
}

pub(crate) struct IoThread {
    opts: ClientOptions,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    incoming: Sender<Incoming>,
    wake: WakeReceiver,
    /// Requests in flight on the current link: id → (method, reply channel).
    pending: HashMap<String, (String, Sender<Reply>)>,
    /// Forwarded requests received on the current link and not yet answered finally.
    forwarded: HashSet<String>,
    /// `restartExpectedMs` from the last `shutdown` event on this link.
    restart_hint: Option<Duration>,
    /// Incoming items dropped because the application did not read them.
    dropped: u64,
}

impl IoThread {
    pub(crate) fn new(
        opts: ClientOptions,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        incoming: Sender<Incoming>,
        wake: WakeReceiver,
    ) -> IoThread {
        IoThread {
            opts,
            shared,
            commands,
            incoming,
            wake,
            pending: HashMap::new(),
            forwarded: HashSet::new(),
            restart_hint: None,
            dropped: 0,
        }
    }

    /// Serves `first`, then every reconnected link, until stopped or given up.
    pub(crate) fn run(mut self, first: Link) {
        let mut backoff = Backoff::new();
        let mut link = first;
        loop {
            let tick = Duration::from_millis(link.hello.tick_interval_ms);
            let end = self.serve(link.ws, tick);
            self.shared.connected.store(false, Ordering::SeqCst);
            self.forwarded.clear();
            let (code, reason) = match end {
                LinkEnd::Stopped => return self.finish(ClientError::Closed),
                LinkEnd::Lost { code, reason } => (code, reason),
            };
            info!("link to {} lost: {reason}", self.opts.url);
            self.fail_pending(|| ClientError::Disconnected(reason.clone()));
            self.deliver(
                Incoming::Disconnected {
                    code,
                    reason: reason.clone(),
                },
                false,
            );

            if code == Some(1008) && reason.to_ascii_lowercase().contains("superseded") {
                return self.finish(ClientError::Disconnected(format!(
                    "{reason}: another agent connection took over, so this one does not \
                     reconnect"
                )));
            }
            if !self.opts.reconnect {
                return self.finish(ClientError::Disconnected(reason));
            }
            let restart_hint = self.restart_hint.take();
            let mut delay = if code == Some(1012) || restart_hint.is_some() {
                backoff.after_restart(restart_hint)
            } else {
                backoff.next_delay()
            };
            link = loop {
                info!("reconnecting to {} in {} ms", self.opts.url, delay.as_millis());
                if !self.wait_offline(delay, &reason) {
                    return self.finish(ClientError::Closed);
                }
                match link::open(&self.opts, &self.shared.stop) {
                    Ok(link) => break link,
                    Err(ClientError::Closed) => return self.finish(ClientError::Closed),
                    Err(err @ ClientError::Rejected { .. }) if err.is_final() => {
                        warn!("giving up on {}: {err}", self.opts.url);
                        return self.finish(err);
                    }
                    Err(err) => {
                        info!("reconnect failed: {err}");
                        delay = backoff.next_delay();
                    }
                }
            };
            backoff.reset();
            info!(
                "reconnected to {} (session {})",
                self.opts.url, link.hello.session_id
            );
            // Hello and the connected flag first: an agent re-announcing itself on
            // `Reconnected` must find the new link ready.
            *lock(&self.shared.hello) = link.hello.clone();
            self.shared.connected.store(true, Ordering::SeqCst);
            self.deliver(Incoming::Reconnected(link.hello.clone()), false);
        }
    }

    /// Records why the thread stops; queued commands then fail with this error when the
    /// command channel's receiver is dropped along with `self`.
    fn finish(&mut self, err: ClientError) {
        self.shared.connected.store(false, Ordering::SeqCst);
        self.fail_pending(|| err.clone());
        lock(&self.shared.terminal).get_or_insert(err);
    }

    fn fail_pending(&mut self, err: impl Fn() -> ClientError) {
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Reply::Failed(err()));
        }
    }

    /// Queues an item for `next_incoming`. The queue is bounded: when the application
    /// does not keep up, new items are dropped and counted rather than growing memory.
    fn deliver(&mut self, item: Incoming, quiet: bool) -> bool {
        match self.incoming.try_send(item) {
            Ok(()) => {
                if self.dropped > 0 {
                    warn!("incoming queue drained after {} items were dropped", self.dropped);
                    self.dropped = 0;
                }
                true
            }
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 && !quiet {
                    warn!(
                        "incoming queue full (the application is not calling next_incoming); \
                         dropping events and notices until it drains"
                    );
                }
                self.dropped += 1;
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Sleeps `delay` between reconnect attempts, failing commands meanwhile (a request
    /// queued for "later" could run long after its caller stopped caring). False if the
    /// client is being closed.
    fn wait_offline(&mut self, delay: Duration, reason: &str) -> bool {
        let until = Instant::now() + delay;
        loop {
            if self.shared.stopping() {
                return false;
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return true;
            };
            match self.commands.recv_timeout(left.min(RECONNECT_SLICE)) {
                Ok(cmd) => refuse(cmd, reason),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Runs one link until it ends.
    fn serve(&mut self, mut ws: Ws, tick: Duration) -> LinkEnd {
        use std::os::fd::AsRawFd;
        let fd = ws.get_ref().as_raw_fd();
        // The contract: a client that hears nothing for two tick intervals treats the
        // link as dead. A zero interval means the gateway sends no ticks.
        let dead_after = (!tick.is_zero()).then(|| tick * 2);
        let mut last_rx = Instant::now();
        let mut want_write = false;
        let mut close: Option<(u16, String)> = None;
        let lost = |close: &Option<(u16, String)>, fallback: String| match close {
            Some((code, reason)) => LinkEnd::Lost {
                code: Some(*code),
                reason: if reason.is_empty() {
                    format!("gateway closed the connection (code {code})")
                } else {
                    format!("gateway closed the connection (code {code}: {reason})")
                },
            },
            None => LinkEnd::Lost {
                code: None,
                reason: fallback,
            },
        };

        loop {
            // Read first: the hello exchange may have left whole frames in tungstenite's
            // buffer, which `poll` on the socket cannot see.
            let mut more = false;
            for n in 0..=MAX_PER_PASS {
                if n == MAX_PER_PASS {
                    more = true;
                    break;
                }
                match ws.read() {
                    Ok(msg) => {
                        last_rx = Instant::now();
                        match msg {
                            Message::Text(text) => self.on_text(&mut ws, &text, &mut want_write),
                            Message::Close(frame) => {
                                close = Some(frame.map_or((1005, String::new()), |f| {
                                    (u16::from(f.code), f.reason.to_string())
                                }));
                            }
                            _ => {}
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                        return lost(&close, "gateway closed the connection".to_owned());
                    }
                    Err(e) => return lost(&close, format!("connection error: {e}")),
                }
                if close.is_some() {
                    break;
                }
            }
            if close.is_some() {
                // Tungstenite queued our close reply; one flush is a courtesy, and the
                // socket is dropped either way.
                let _ = ws.flush();
                return lost(&close, String::new());
            }
            if self.shared.stopping() {
                return self.close_gracefully(ws, fd);
            }

            if want_write {
                match ws.flush() {
                    Ok(()) => want_write = false,
                    Err(e) if would_block(&e) => {}
                    Err(e) => return lost(&close, format!("connection error while sending: {e}")),
                }
            }
            // New frames only while nothing is stuck in the write buffer: the bounded
            // command channel then pushes back on callers instead of memory growing.
            if !want_write {
                for n in 0..=MAX_PER_PASS {
                    if n == MAX_PER_PASS {
                        more = true;
                        break;
                    }
                    match self.commands.try_recv() {
                        Ok(cmd) => {
                            if let Err(e) = self.on_command(&mut ws, cmd, &mut want_write) {
                                return lost(&close, format!("connection error while sending: {e}"));
                            }
                            if want_write {
                                break;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        // The handle is gone without closing; treat it as a close.
                        Err(TryRecvError::Disconnected) => return self.close_gracefully(ws, fd),
                    }
                }
            }

            let mut sleep = MAX_IDLE;
            if let Some(limit) = dead_after {
                let silent = last_rx.elapsed();
                if silent >= limit {
                    return LinkEnd::Lost {
                        code: None,
                        reason: format!(
                            "nothing received from the gateway for {} ms (two tick intervals); \
                             the link is presumed dead",
                            silent.as_millis()
                        ),
                    };
                }
                sleep = sleep.min(limit - silent);
            }
            if more {
                sleep = Duration::ZERO;
            }
            if let Err(e) = waker::wait(fd, want_write, self.wake.fd(), sleep) {
                return lost(&close, format!("poll failed: {e}"));
            }
            self.wake.drain();
        }
    }

    /// Sends close 1000 and waits briefly for the gateway's reply, so the gateway logs a
    /// clean close rather than a reset; bounded by [`CLOSE_GRACE`] if it stays silent.
    fn close_gracefully(&mut self, mut ws: Ws, fd: i32) -> LinkEnd {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "client closing".into(),
        };
        let _ = ws.close(Some(frame));
        let until = Instant::now() + CLOSE_GRACE;
        loop {
            let flushed = match ws.flush() {
                Ok(()) => true,
                Err(e) if would_block(&e) => false,
                Err(_) => break,
            };
            // Frames still arriving are discarded; the deadline holds even if they never
            // stop.
            let idle = match ws.read() {
                Ok(_) => false,
                Err(e) if would_block(&e) => true,
                Err(_) => break,
            };
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            if idle {
                self.wake.drain();
                if waker::wait(fd, !flushed, self.wake.fd(), left).is_err() {
                    break;
                }
            }
        }
        LinkEnd::Stopped
    }

    fn on_command(
        &mut self,
        ws: &mut Ws,
        cmd: Command,
        want_write: &mut bool,
    ) -> Result<(), tungstenite::Error> {
        let frame = match cmd {
            Command::Request {
                id,
                method,
                frame,
                reply,
            } => {
                self.pending.insert(id, (method, reply));
                frame
            }
            Command::Cancel { id } => {
                if self.pending.remove(&id).is_some() {
                    debug!("request {id} abandoned by its caller; a late answer will be dropped");
                }
                return Ok(());
            }
            Command::Respond {
                id,
                frame,
                final_,
                ack,
            } => {
                if !self.forwarded.contains(&id) {
                    let _ = ack.send(Err(ClientError::UnknownRequest(id)));
                    return Ok(());
                }
                if final_ {
                    self.forwarded.remove(&id);
                }
                // Queued for sending is all the ack promises: delivery cannot be confirmed.
                let _ = ack.send(Ok(()));
                frame
            }
        };
        send(ws, frame, want_write)
    }

    fn on_text(&mut self, ws: &mut Ws, text: &str, want_write: &mut bool) {
        let frame = match wire::parse(text) {
            Ok(frame) => frame,
            Err(e) => {
                // One bad frame is the gateway's bug, not a reason to drop the link.
                warn!("ignoring an unreadable frame from the gateway: {e}");
                return;
            }
        };
        match frame {
            ServerFrame::Response(r) => self.on_response(r),
            ServerFrame::Event(e) => {
                if e.event == "shutdown" {
                    self.restart_hint = e
                        .params
                        .get("restartExpectedMs")
                        .and_then(Value::as_u64)
                        .map(Duration::from_millis);
                }
                let quiet = e.event == "tick";
                self.deliver(
                    Incoming::Event {
                        name: e.event,
                        seq: e.seq,
                        params: e.params,
                    },
                    quiet,
                );
            }
            ServerFrame::Request(r) => {
                if self.opts.role != Role::Agent {
                    debug!("request frame {} sent to a non-agent connection", r.request_id);
                }
                let refusal = if self.forwarded.len() >= MAX_FORWARDED {
                    Some("the agent holds too many unanswered requests")
                } else if !self.forwarded.insert(r.request_id.clone()) {
                    // The agent already has this one; a second copy would get two answers.
                    warn!("ignoring a repeated forwarded request {}", r.request_id);
                    None
                } else if !self.deliver(
                    Incoming::Request {
                        request_id: r.request_id.clone(),
                        method: r.method,
                        params: r.params,
                    },
                    false,
                ) {
                    self.forwarded.remove(&r.request_id);
                    Some("the agent is not keeping up with incoming requests")
                } else {
                    None
                };
                if let Some(why) = refusal {
                    // Answer for the agent so the caller gets a prompt, retryable error
                    // instead of waiting for the gateway's agent timeout.
                    let err = RemoteError::retryable("RATE_LIMITED", why, Some(1000));
                    let frame = wire::response_frame(&r.request_id, &Err(err), true);
                    if let Err(e) = send(ws, frame, want_write) {
                        debug!("could not refuse request {}: {e}", r.request_id);
                    }
                }
            }
            ServerFrame::Error { error } => {
                let error = RemoteError::from(error);
                warn!("the gateway could not process a frame this client sent: {error}");
                self.deliver(Incoming::GatewayError(error), false);
            }
            ServerFrame::HelloOk(_) | ServerFrame::HelloError { .. } => {
                warn!("ignoring a hello frame after the handshake");
            }
            ServerFrame::Unknown => debug!("ignoring a frame of unknown type"),
        }
    }

    fn on_response(&mut self, r: wire::ResponseFrame) {
        let Some((method, reply)) = self.pending.get(&r.request_id) else {
            debug!(
                "dropping a response for unknown or abandoned request {}",
                r.request_id
            );
            return;
        };
        let message = match (r.error, r.is_final) {
            // An error ends the call even on a frame marked non-final.
            (Some(err), _) => Reply::Final(Err(err.into())),
            (None, true) => Reply::Final(Ok(r.result.unwrap_or(Value::Null))),
            (None, false) => Reply::Chunk(r.result.unwrap_or(Value::Null)),
        };
        let done = !matches!(message, Reply::Chunk(_));
        let keep = if !done && reply.len() >= REPLY_BACKLOG {
            let _ = reply.send(Reply::Failed(ClientError::Overrun {
                method: method.clone(),
                limit: REPLY_BACKLOG,
            }));
            false
        } else {
            // A send error means the caller already gave up (timed out).
            reply.send(message).is_ok() && !done
        };
        if !keep {
            self.pending.remove(&r.request_id);
        }
    }
}

/// Writes one text frame. A full socket is not an error: tungstenite keeps the frame and
/// `want_write` makes the loop finish it when `poll` says the socket is writable.
fn send(ws: &mut Ws, frame: String, want_write: &mut bool) -> Result<(), tungstenite::Error> {
    match ws.send(Message::text(frame)) {
        Ok(()) => Ok(()),
        Err(e) if would_block(&e) => {
            *want_write = true;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn refuse(cmd: Command, reason: &str) {
    let err = || ClientError::Disconnected(format!("not connected to the gateway ({reason}); reconnecting"));
    match cmd {
        Command::Request { reply, .. } => {
            let _ = reply.send(Reply::Failed(err()));
        }
        Command::Respond { ack, .. } => {
            let _ = ack.send(Err(err()));
        }
        Command::Cancel { .. } => {}
    }
}
