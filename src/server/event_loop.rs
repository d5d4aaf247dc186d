//! The event loop: accept, read, dispatch, flush, timers, shutdown. One thread, never blocks.
//!
//! mio is edge-triggered, so every read is drained to `WouldBlock`, except that one
//! connection gets at most [`READS_PER_PASS`] messages per pass: the rest is read on the
//! next pass (with a zero poll timeout), so one busy client cannot starve the others. Writes
//! are queued during a pass and flushed once at its end, so a burst costs one `write()` per
//! connection. Tokens are counter-assigned and never reused, so a stale event for a closed
//! connection finds nothing and is ignored.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use tungstenite::handshake::server::ServerHandshake;
use tungstenite::protocol::WebSocketConfig;

use super::ServerSettings;
use super::auth::Authenticator;
use super::conn::{Conn, FlushStep, HandshakeStep, QueueStep, ReadStep};
use super::handshake::{OriginCheck, refuse_full};
use super::waker::LoopWaker;
use crate::bus::{Audience, ConnId, LoopHandle, ToLoop, ToRouter};
use crate::protocol::{ErrorBody, ErrorCode, PRE_AUTH_MAX_FRAME, close, frames};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN_ID: ConnId = 2;
/// Messages read from one connection per pass before the loop moves on to the others.
const READS_PER_PASS: usize = 64;
/// How long a close handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// tungstenite's read buffer per connection. Its default (128 KiB, allocated eagerly)
/// would cost 135 MB for 1,000 idle clients; 4 KiB serves every small frame in one read.
const READ_BUFFER: usize = 4 * 1024;
/// Frames up to this size wait in tungstenite's buffer until the end-of-pass flush.
const WRITE_BUFFER: usize = 16 * 1024;
/// Requests waiting for the router beyond which new ones get a retryable `UNAVAILABLE`.
pub(super) const ROUTER_QUEUE_LIMIT: usize = 16 * 1024;

pub struct EventLoop {
    pub(super) poll: Poll,
    listener: Option<TcpListener>,
    pub(super) settings: ServerSettings,
    pub(super) conns: HashMap<ConnId, Conn>,
    next_id: ConnId,
    commands: Receiver<ToLoop>,
    wake_pending: Arc<AtomicBool>,
    waker: Arc<LoopWaker>,
    pub(super) router: Sender<ToRouter>,
    pub(super) auth: Authenticator,
    pub(super) joined_config: WebSocketConfig,
    pre_auth_config: WebSocketConfig,
    next_tick: Instant,
    /// The earliest connect or close deadline, if any connection has one.
    pub(super) next_deadline: Option<Instant>,
    more_to_read: Vec<ConnId>,
    pub(super) dirty: Vec<ConnId>,
    /// Set by `Shutdown`: the loop ends when every client is gone or at this instant.
    pub(super) draining: Option<Instant>,
}

fn ws_config(max_frame: usize, settings: &ServerSettings) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Our own backlog check closes a slow consumer first; this is the hard stop with
        // room for one more frame and the close frame.
        .max_write_buffer_size(settings.backlog_limit + settings.max_payload + 64 * 1024)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

impl EventLoop {
    /// Build the loop around an already bound listener. The returned handle feeds it.
    pub fn new(
        listener: std::net::TcpListener,
        settings: ServerSettings,
        router: Sender<ToRouter>,
    ) -> io::Result<(EventLoop, LoopHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(LoopWaker::new(poll.registry(), WAKER)?);
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (tx, commands) = crossbeam_channel::unbounded();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let handle = LoopHandle::new(tx, waker.clone(), wake_pending.clone());
        let auth = Authenticator::new(
            settings.token.clone(),
            settings.password.clone(),
            settings.agent_token.clone(),
        );
        let event_loop = EventLoop {
            poll,
            listener: Some(listener),
            joined_config: ws_config(settings.max_payload, &settings),
            pre_auth_config: ws_config(PRE_AUTH_MAX_FRAME, &settings),
            next_tick: Instant::now() + settings.tick_interval,
            settings,
            conns: HashMap::new(),
            next_id: FIRST_CONN_ID,
            commands,
            wake_pending,
            waker,
            router,
            auth,
            next_deadline: None,
            more_to_read: Vec::new(),
            dirty: Vec::new(),
            draining: None,
        };
        Ok((event_loop, handle))
    }

    /// Run until shut down. Consumes the loop; every socket is closed when it returns.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                log::error!("event loop poll failed: {e}; stopping the loop");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.waker.reset(),
                    Token(t) => self.on_ready(t as ConnId, event),
                }
            }
            self.drain_commands();
            self.read_leftovers();
            self.flush_dirty();
            let now = Instant::now();
            self.on_timers(now);
            if let Some(until) = self.draining {
                if self.conns.is_empty() || now >= until {
                    break;
                }
            }
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.drop_conn(id);
        }
        log::debug!("event loop stopped");
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        if !self.more_to_read.is_empty() {
            return Duration::ZERO;
        }
        let mut wake_at = self.next_tick;
        if let Some(d) = self.next_deadline {
            wake_at = wake_at.min(d);
        }
        if let Some(d) = self.draining {
            wake_at = wake_at.min(d);
        }
        wake_at.saturating_duration_since(now)
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.conns.len() >= self.settings.max_clients {
                        log::warn!(
                            "refused connection from {addr}: {} clients connected (gateway.maxClients)",
                            self.conns.len()
                        );
                        refuse_full(&mut stream, self.settings.max_clients);
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    // Latency matters more than packet count for small request/response frames.
                    let _ = stream.set_nodelay(true);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self
                        .poll
                        .registry()
                        .register(&mut stream, Token(id as usize), interest)
                    {
                        log::error!("could not register connection from {addr}: {e}");
                        continue;
                    }
                    let check = OriginCheck {
                        allowed: self.settings.allowed_origins.clone(),
                    };
                    let mid = ServerHandshake::start(stream, check, Some(self.pre_auth_config));
                    let now = Instant::now();
                    self.conns.insert(id, Conn::new(id, addr, mid, now));
                    self.set_deadline(now + self.settings.connect_timeout);
                    log::debug!("accepted connection {id} from {addr}");
                    self.advance_handshake(id);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the connection stays queued and is retried on the
                    // next listener event, so there is no busy loop here.
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_ready(&mut self, id: ConnId, event: &Event) {
        let Some(conn) = self.conns.get(&id) else { return };
        if !conn.is_open() {
            self.advance_handshake(id);
            return;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read_some(id);
        }
        if event.is_writable() {
            self.dirty.push(id);
            if let Some(c) = self.conns.get_mut(&id) {
                c.dirty = true;
            }
        }
    }

    fn advance_handshake(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match conn.drive_handshake() {
            HandshakeStep::Pending => {}
            HandshakeStep::Done => {
                log::debug!("connection {id}: WebSocket open");
                // The connect frame may already be waiting; edge-triggered readiness would
                // not report it again.
                self.read_some(id);
            }
            HandshakeStep::Failed(why) => {
                log::debug!("connection {id}: handshake failed: {why}");
                self.drop_conn(id);
            }
        }
    }

    fn read_some(&mut self, id: ConnId) {
        for _ in 0..READS_PER_PASS {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            match conn.read() {
                ReadStep::Text(text) => self.on_text(id, &text),
                ReadStep::Binary => self.on_binary(id),
                ReadStep::Control => {}
                ReadStep::WouldBlock => {
                    self.dirty.push(id);
                    return;
                }
                ReadStep::PeerClosed => {
                    log::debug!("connection {id}: closed by the client");
                    self.begin_close(id, None);
                    self.dirty.push(id);
                    return;
                }
                ReadStep::TooBig(why) => {
                    self.on_too_big(id, &why);
                    return;
                }
                ReadStep::Protocol(why) => {
                    log::debug!("connection {id}: protocol error: {why}");
                    self.close(id, close::PROTOCOL, "protocol error");
                    return;
                }
                ReadStep::BadUtf8(why) => {
                    log::debug!("connection {id}: {why}");
                    self.close(id, close::INVALID_DATA, "invalid UTF-8");
                    return;
                }
                ReadStep::Gone(why) => {
                    log::debug!("connection {id}: {why}");
                    self.drop_conn(id);
                    return;
                }
            }
        }
        self.more_to_read.push(id);
        self.dirty.push(id);
    }

    fn read_leftovers(&mut self) {
        let ids = std::mem::take(&mut self.more_to_read);
        for id in ids {
            self.read_some(id);
        }
    }

    fn flush_dirty(&mut self) {
        let ids = std::mem::take(&mut self.dirty);
        let mut lingering = Vec::new();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if !conn.dirty {
                continue;
            }
            match conn.flush() {
                FlushStep::Finished => self.drop_conn(id),
                FlushStep::Flushed => {
                    if let Some(until) = conn.start_linger(Instant::now()) {
                        lingering.push((id, until));
                    }
                }
                FlushStep::Pending => {}
            }
        }
        // Readiness is edge-triggered: what the peer sent before the half-close is read now.
        for (id, until) in lingering {
            self.set_deadline(until);
            self.read_some(id);
        }
    }

    fn drain_commands(&mut self) {
        self.wake_pending.store(false, Ordering::SeqCst);
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.on_command(cmd),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn on_command(&mut self, cmd: ToLoop) {
        match cmd {
            ToLoop::Send { conn, frame } => self.send(conn, frame),
            ToLoop::Probe(p) => p.answer(),
            ToLoop::Event { to, name, params } => match to {
                Audience::All => {
                    let ids: Vec<ConnId> = self.conns.keys().copied().collect();
                    for id in ids {
                        self.send_event(id, name, &params);
                    }
                }
                Audience::Some(ids) => {
                    for id in ids {
                        self.send_event(id, name, &params);
                    }
                }
            },
            ToLoop::Close { conn, code, reason } => self.close(conn, code, reason),
            ToLoop::Shutdown {
                restart_expected_ms,
                drain_until,
            } => self.shutdown(restart_expected_ms, drain_until),
        }
    }

    /// Queue a frame for a connection; a client over its backlog bound is closed.
    pub(super) fn send(&mut self, id: ConnId, frame: String) {
        let limit = self.settings.backlog_limit;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match conn.queue(frame, limit) {
            QueueStep::Queued => self.dirty.push(id),
            QueueStep::NotOpen => {}
            QueueStep::SlowConsumer => {
                log::warn!(
                    "closing client {id} ({}): slow consumer, more than {limit} bytes unsent (gateway.clientBacklogBytes)",
                    conn.addr
                );
                self.close(id, close::POLICY, "slow consumer");
            }
            QueueStep::Broken(why) => {
                log::debug!("connection {id}: write failed: {why}");
                self.drop_conn(id);
            }
        }
    }

    /// Send an event numbered with this connection's next `seq`, if it has joined.
    fn send_event(&mut self, id: ConnId, name: &str, params: &str) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.is_closing() {
            return;
        }
        let Some(seq) = conn.next_seq() else { return };
        self.send(id, frames::event(name, seq, params));
    }

    /// Start a close with a code; the router forgets the client now.
    pub(super) fn close(&mut self, id: ConnId, code: u16, reason: &str) {
        let Some(conn) = self.conns.get(&id) else { return };
        if !conn.is_open() {
            self.drop_conn(id);
            return;
        }
        self.begin_close(id, Some((code, reason)));
    }

    /// Mark a connection as closing (sending our close frame when `code` is given; the peer's
    /// close is answered by tungstenite itself) and tell the router it left.
    fn begin_close(&mut self, id: ConnId, code: Option<(u16, &str)>) {
        let deadline = self.draining.unwrap_or_else(|| Instant::now() + CLOSE_GRACE);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.is_closing() {
            return;
        }
        let joined = conn.session.is_some();
        match code {
            Some((code, reason)) => conn.start_close(code, reason, deadline),
            None => conn.close_deadline = Some(deadline),
        }
        self.dirty.push(id);
        self.set_deadline(deadline);
        if joined {
            let _ = self.router.send(ToRouter::Left(id));
        }
    }

    /// Drop a connection at once (deregistering before the socket closes).
    pub(super) fn drop_conn(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if let Some(stream) = conn.stream_mut() {
            let _ = self.poll.registry().deregister(stream);
        }
        if conn.session.is_some() && !conn.is_closing() {
            let _ = self.router.send(ToRouter::Left(id));
        }
        log::debug!("connection {id} ({}) dropped", conn.addr);
    }

    pub(super) fn set_deadline(&mut self, at: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(at, |d| d.min(at)));
    }

    fn on_timers(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.next_tick = (self.next_tick + self.settings.tick_interval).max(now);
            if self.draining.is_none() {
                let params: Arc<str> = format!("{{\"ts\":{}}}", crate::procinfo::unix_ms()).into();
                self.on_command(ToLoop::Event {
                    to: Audience::All,
                    name: "tick",
                    params,
                });
                self.flush_dirty();
            }
        }
        if self.next_deadline.is_some_and(|d| now >= d) {
            self.sweep(now);
            self.flush_dirty();
        }
    }

    /// Close connections past their connect deadline, drop those past their close deadline,
    /// and work out the next deadline.
    fn sweep(&mut self, now: Instant) {
        self.next_deadline = None;
        self.auth.prune(now);
        let mut expired_connect = Vec::new();
        let mut expired_close = Vec::new();
        for (&id, conn) in &self.conns {
            if let Some(d) = conn.close_deadline {
                if now >= d {
                    expired_close.push(id);
                } else {
                    self.next_deadline = Some(self.next_deadline.map_or(d, |n| n.min(d)));
                }
            } else if conn.session.is_none() {
                let d = conn.accepted_at + self.settings.connect_timeout;
                if now >= d {
                    expired_connect.push(id);
                } else {
                    self.next_deadline = Some(self.next_deadline.map_or(d, |n| n.min(d)));
                }
            }
        }
        for id in expired_close {
            self.drop_conn(id);
        }
        let secs = self.settings.connect_timeout.as_secs_f64();
        for id in expired_connect {
            log::debug!("connection {id}: no connect within {secs}s");
            let body = ErrorBody::new(ErrorCode::Timeout, format!("no connect frame within {secs}s"));
            self.refuse(id, &body, close::POLICY, "connect timeout");
        }
    }

    /// Stop accepting, tell every client why, and close them.
    fn shutdown(&mut self, restart_expected_ms: Option<u64>, drain_until: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.draining = Some(drain_until);
        let (reason, code) = match restart_expected_ms {
            Some(_) => ("gateway restarting", close::RESTARTING),
            None => ("gateway stopping", close::STOPPING),
        };
        let params: Arc<str> =
            serde_json::json!({"reason": reason, "restartExpectedMs": restart_expected_ms})
                .to_string()
                .into();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.send_event(id, "shutdown", &params);
            self.close(id, code, reason);
        }
        self.flush_dirty();
    }
}
