//! The Discord Gateway v10 client: one thread (`emonk-discord-gw`) that owns the WebSocket.
//!
//! Design: a blocking tungstenite client whose socket has a short read timeout
//! ([`READ_TICK`]), so one loop reads frames, sends heartbeats on time and notices a stop
//! without any other thread. The connector thread never touches the socket: it gets
//! [`GwEvent`]s over a channel and stays free for sends and commands. A stop drops the stop
//! channel and shuts the socket down, which also cuts short a connect or TLS handshake; the
//! connector waits a bounded time for this thread and abandons it after that (its own
//! timeouts end it).
//!
//! Protocol (wire-contracts §2): Hello → first heartbeat after `interval × random(0..1)`, then
//! every interval → Identify (or Resume) → READY (session id, resume URL, `s`) → dispatches.
//! No ACK between two heartbeats is a zombie: close with 4000 (never 1000/1001, which would
//! end the session) and Resume at `resume_gateway_url`. Op 1 heartbeats at once; op 7 and
//! op 9 `true` resume; op 9 `false` waits 1-5 s and identifies on a new connection. Close
//! codes: see [`close_action`]. A Resume that does not come back as RESUMED three times in a
//! row drops the session (a stale session or URL must not loop forever).
//!
//! Identify budget (1000 per day, exceeding it resets the token): [`IdentifyLimiter`] keeps
//! Identifies at least [`IDENTIFY_MIN_GAP`] apart and at most [`IDENTIFY_DAILY_CAP`] in any
//! 24 h, and `session_start_limit.remaining == 0` from `GET /gateway/bot` waits for its reset.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use serde_json::{Value, json};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{HandshakeError, Message, WebSocket};

use super::api::{RestApi, RestError};
use crate::backoff::Backoff;
use crate::channels::fields::{Fields, Missing};

/// GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);
/// How long one socket read may block: the loop's tick for heartbeats and stop checks.
const READ_TICK: Duration = Duration::from_millis(100);
/// Bound of TCP connect, the TLS + WebSocket handshake, and a blocked write, each.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Hello must arrive within this after the handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of `GET /gateway/bot`.
const REST_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two Identifies.
pub const IDENTIFY_MIN_GAP: Duration = Duration::from_secs(5);
/// Most Identifies in any 24 h: far below Discord's 1000, so no loop can reach it.
pub const IDENTIFY_DAILY_CAP: usize = 100;
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Resumes that may fail in a row before the session is dropped.
const MAX_FAILED_RESUMES: u32 = 3;
/// Largest gateway message accepted (READY of a bot in many guilds is large).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Bound of unsent data (we only send small frames).
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// What the gateway thread tells the connector.
#[derive(Debug)]
pub enum GwEvent {
    /// READY: a new session. `warning`: what the READY lacked that the session can do
    /// without (its `session_id`: it cannot be resumed), for `lastError`.
    Ready {
        user_id: String,
        username: Option<String>,
        warning: Option<String>,
    },
    /// RESUMED: the session goes on; missed events were replayed before this.
    Resumed,
    /// A MESSAGE_CREATE `d`.
    Message(Value),
    /// A MESSAGE_UPDATE `d`.
    Edited(Value),
    /// An INTERACTION_CREATE `d` (a press on a button, among others).
    Interaction(Value),
    /// Disconnected; reconnecting (state `backoff`).
    Trouble(String),
    /// Given up for good: the connector's new state and why. The thread has ended.
    Fatal { state: &'static str, error: String },
}

/// What to do after a connection ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Resume,
    Identify,
    Fatal { state: &'static str, error: String },
    Stop,
}

/// The action for a close code from Discord (`None`: the connection dropped without one).
pub fn close_action(code: Option<u16>) -> Next {
    let fatal = |state, error: &str| Next::Fatal {
        state,
        error: error.to_owned(),
    };
    match code {
        Some(4004) => fatal(
            "unauthorized",
            "gateway close 4004 (authentication failed): the bot token is wrong or was reset; fix channels.discord.token and reload",
        ),
        Some(4010) => fatal("fatal", "gateway close 4010 (invalid shard)"),
        Some(4011) => fatal(
            "fatal",
            "gateway close 4011 (sharding required): the bot is in too many guilds for one connection",
        ),
        Some(4012) => fatal("fatal", "gateway close 4012 (invalid API version)"),
        Some(4013) => fatal("fatal", "gateway close 4013 (invalid intents)"),
        Some(4014) => fatal(
            "fatal",
            "gateway close 4014 (disallowed intents): enable the Message Content intent (MESSAGE_CONTENT) for this bot in the Discord Developer Portal (Bot > Privileged Gateway Intents), then reload",
        ),
        Some(4003 | 4007 | 4009) => Next::Identify,
        _ => Next::Resume,
    }
}

/// Keeps Identifies apart and under a daily cap. Deterministic: every call takes `now`.
#[derive(Debug)]
pub struct IdentifyLimiter {
    min_gap: Duration,
    cap: usize,
    window: Duration,
    log: VecDeque<Instant>,
}

impl Default for IdentifyLimiter {
    fn default() -> IdentifyLimiter {
        IdentifyLimiter::new(IDENTIFY_MIN_GAP, IDENTIFY_DAILY_CAP, DAY)
    }
}

impl IdentifyLimiter {
    pub fn new(min_gap: Duration, cap: usize, window: Duration) -> IdentifyLimiter {
        IdentifyLimiter {
            min_gap,
            cap: cap.max(1),
            window,
            log: VecDeque::new(),
        }
    }

    /// How long to wait before the next Identify (zero: now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        while self.log.front().is_some_and(|&t| t + self.window <= now) {
            self.log.pop_front();
        }
        let mut wait = Duration::ZERO;
        if let Some(&last) = self.log.back() {
            wait = (last + self.min_gap).saturating_duration_since(now);
        }
        if self.log.len() >= self.cap {
            let oldest = self.log[self.log.len() - self.cap];
            wait = wait.max((oldest + self.window).saturating_duration_since(now));
        }
        wait
    }

    pub fn record(&mut self, now: Instant) {
        self.log.push_back(now);
        while self.log.len() > self.cap {
            self.log.pop_front();
        }
    }
}

/// The connector's handle on the gateway thread.
pub struct GatewayHandle {
    stop: Option<Sender<()>>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    thread: JoinHandle<()>,
}

impl GatewayHandle {
    /// Start the thread. Events arrive on `events`.
    pub fn spawn(api: Arc<RestApi>, token: String, events: Sender<GwEvent>) -> io::Result<GatewayHandle> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let socket = Arc::new(Mutex::new(None));
        let client = Client {
            api,
            token,
            events,
            stop: stop_rx,
            socket: socket.clone(),
            session: None,
            seq: None,
            identifies: IdentifyLimiter::default(),
            backoff: Backoff::new(),
            failed_resumes: 0,
        };
        let thread = thread::Builder::new()
            .name("emonk-discord-gw".into())
            .spawn(move || client.run())?;
        Ok(GatewayHandle {
            stop: Some(stop_tx),
            socket,
            thread,
        })
    }

    /// Stop the thread: wait for it until `deadline`, then abandon it (it ends by its own
    /// timeouts). True when it was joined.
    pub fn stop(mut self, deadline: Instant) -> bool {
        drop(self.stop.take());
        if let Some(s) = self.socket.lock().expect("socket lock").as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
        while !self.thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
            true
        } else {
            log::info!("discord: the gateway thread is still connecting at stop; abandoned");
            false
        }
    }
}

struct Session {
    id: String,
    resume_url: String,
}

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
struct Ended {
    next: Next,
    /// READY or RESUMED was reached.
    established: bool,
}

struct Client {
    api: Arc<RestApi>,
    token: String,
    events: Sender<GwEvent>,
    stop: Receiver<()>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    session: Option<Session>,
    seq: Option<u64>,
    identifies: IdentifyLimiter,
    backoff: Backoff,
    failed_resumes: u32,
}

impl Client {
    fn stopped(&self) -> bool {
        !matches!(self.stop.try_recv(), Err(TryRecvError::Empty))
    }

    /// Sleep `d`, cut short by a stop; false when stopped.
    fn pause(&self, d: Duration) -> bool {
        matches!(
            self.stop.recv_timeout(d),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        )
    }

    fn emit(&self, event: GwEvent) {
        let _ = self.events.send(event);
    }

    fn trouble(&mut self, why: String) {
        self.emit(GwEvent::Trouble(why));
    }

    fn run(mut self) {
        loop {
            if self.stopped() {
                return;
            }
            let resuming = self.session.is_some();
            let ended = if let Some(session) = &self.session {
                let url = session.resume_url.clone();
                self.connection(&url, true)
            } else {
                match self.prepare_identify() {
                    Ok(Some(url)) => self.connection(&url, false),
                    Ok(None) => continue,
                    Err(next) => Ended {
                        next,
                        established: false,
                    },
                }
            };
            match ended.next {
                Next::Stop => return,
                Next::Fatal { state, error } => {
                    log::error!("discord: {error}; the gateway connection stays down");
                    self.emit(GwEvent::Fatal { state, error });
                    return;
                }
                Next::Identify => {
                    self.session = None;
                    self.seq = None;
                }
                Next::Resume => {}
            }
            if resuming && !ended.established && self.session.is_some() {
                self.failed_resumes += 1;
                if self.failed_resumes >= MAX_FAILED_RESUMES {
                    log::warn!(
                        "discord: {MAX_FAILED_RESUMES} resumes failed in a row; starting a new session"
                    );
                    self.session = None;
                    self.seq = None;
                    self.failed_resumes = 0;
                }
            }
            if ended.established {
                self.backoff.reset();
            } else {
                let wait = self.backoff.next_delay();
                log::debug!("discord: reconnecting in {wait:?}");
                if !self.pause(wait) {
                    return;
                }
            }
        }
    }

    /// Before an Identify: honour the limiter and fetch the gateway URL. `Ok(None)`: waited
    /// or failed transiently, go round again.
    fn prepare_identify(&mut self) -> Result<Option<String>, Next> {
        let wait = self.identifies.wait(Instant::now());
        if !wait.is_zero() {
            log::info!(
                "discord: next Identify in {:.1}s (Identify rate bound)",
                wait.as_secs_f64()
            );
            if wait > Duration::from_secs(60) {
                self.trouble(format!(
                    "Identify budget used up ({IDENTIFY_DAILY_CAP} in 24 h); next attempt in {} s",
                    wait.as_secs()
                ));
            }
            return if self.pause(wait) {
                Ok(None)
            } else {
                Err(Next::Stop)
            };
        }
        match self.api.gateway_bot(REST_TIMEOUT) {
            Ok(g) => {
                if g.remaining == Some(0) {
                    let wait = g
                        .reset_after
                        .unwrap_or(Duration::from_secs(60))
                        .max(Duration::from_secs(5));
                    let why = format!(
                        "Discord's session start limit is used up; next Identify in {} s",
                        wait.as_secs()
                    );
                    log::warn!("discord: {why}");
                    self.trouble(why);
                    return if self.pause(wait) {
                        Ok(None)
                    } else {
                        Err(Next::Stop)
                    };
                }
                Ok(Some(g.url))
            }
            Err(RestError::Unauthorized { message }) => Err(Next::Fatal {
                state: "unauthorized",
                error: format!(
                    "GET /gateway/bot: 401 {message}: the bot token was refused; fix channels.discord.token and reload"
                ),
            }),
            Err(e) => {
                let wait = match &e {
                    RestError::RateLimited { retry_after, .. } => *retry_after,
                    _ => self.backoff.next_delay(),
                };
                log::warn!(
                    "discord: GET /gateway/bot failed: {e}; retrying in {:.1}s",
                    wait.as_secs_f64()
                );
                self.trouble(match e {
                    // Its text names the call already.
                    RestError::Incomplete(_) => e.to_string(),
                    _ => format!("GET /gateway/bot: {e}"),
                });
                if self.pause(wait) {
                    Ok(None)
                } else {
                    Err(Next::Stop)
                }
            }
        }
    }

    /// Connect to `url`, then Resume or Identify, and run until the connection ends.
    fn connection(&mut self, url: &str, resume: bool) -> Ended {
        let mut ws = match self.connect(url) {
            Ok(ws) => ws,
            Err(e) => {
                if self.stopped() {
                    return ended(Next::Stop, false);
                }
                log::warn!("discord: cannot connect to the gateway: {e}");
                self.trouble(format!("gateway connect: {e}"));
                return ended(Next::Resume, false);
            }
        };
        let ended = self.session_loop(&mut ws, url, resume);
        // Best effort: the peer may be gone already.
        let _ = ws.flush();
        if let Some(s) = self.socket.lock().expect("socket lock").take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        ended
    }

    fn connect(&mut self, url: &str) -> Result<Ws, String> {
        let full = if url.contains('?') {
            format!("{url}&v=10&encoding=json")
        } else {
            format!("{}/?v=10&encoding=json", url.trim_end_matches('/'))
        };
        let request = tungstenite::client::IntoClientRequest::into_client_request(full.as_str())
            .map_err(|e| format!("bad gateway URL {url:?}: {e}"))?;
        let uri = request.uri();
        let host = uri.host().ok_or("gateway URL without a host")?.to_owned();
        let tls = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect();
        let mut last = format!("no address for {host}");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let stream = stream.ok_or(last)?;
        let io = |e: io::Error| e.to_string();
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        let control = stream.try_clone().map_err(io)?;
        *self.socket.lock().expect("socket lock") = Some(control.try_clone().map_err(io)?);
        if self.stopped() {
            return Err("stopping".into());
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE))
            .max_write_buffer_size(MAX_WRITE_BUFFER);
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut attempt = tungstenite::client_tls_with_config(request, stream, Some(config), None);
        let ws = loop {
            match attempt {
                Ok((ws, _)) => break ws,
                Err(HandshakeError::Interrupted(mid)) if Instant::now() < deadline => {
                    attempt = mid.handshake()
                }
                Err(HandshakeError::Interrupted(_)) => return Err("handshake timed out".into()),
                Err(HandshakeError::Failure(e)) => return Err(format!("handshake: {e}")),
            }
        };
        control.set_read_timeout(Some(READ_TICK)).map_err(io)?;
        Ok(ws)
    }

    fn send(&self, ws: &mut Ws, frame: &Value) -> Result<(), String> {
        ws.send(Message::text(frame.to_string()))
            .map_err(|e| e.to_string())
    }

    fn close(&self, ws: &mut Ws, code: u16, reason: &str) {
        let _ = ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        }));
        let _ = ws.flush();
    }

    /// Hello, Identify or Resume, then events, on the connection to `url`.
    fn session_loop(&mut self, ws: &mut Ws, url: &str, resume: bool) -> Ended {
        // Hello.
        let hello_deadline = Instant::now() + HELLO_TIMEOUT;
        let interval = loop {
            if self.stopped() {
                return ended(Next::Stop, false);
            }
            if Instant::now() >= hello_deadline {
                self.trouble("no Hello from the gateway".into());
                self.close(ws, 4000, "no hello");
                return ended(Next::Resume, false);
            }
            match read(ws) {
                Read::Frame(v) if v["op"] == 10 => {
                    // Without an interval, Discord's usual one: a Hello that lacks it still
                    // starts the session.
                    let ms = v["d"]["heartbeat_interval"].as_u64().unwrap_or(41_250).max(100);
                    break Duration::from_millis(ms);
                }
                Read::Frame(_) | Read::Nothing => {}
                Read::Closed(code) => return self.closed(code, false),
            }
        };
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        let mut next_beat = Instant::now() + interval * jitter / 1000;
        let mut acked = true;
        let opening = if resume {
            let id = self.session.as_ref().map(|s| s.id.clone()).unwrap_or_default();
            json!({"op": 6, "d": {"token": self.token, "session_id": id, "seq": self.seq}})
        } else {
            self.identifies.record(Instant::now());
            self.seq = None;
            json!({"op": 2, "d": {"token": self.token, "intents": INTENTS,
                   "properties": {"os": std::env::consts::OS, "browser": "emonkd", "device": "emonkd"}}})
        };
        if let Err(e) = self.send(ws, &opening) {
            self.trouble(format!("gateway write: {e}"));
            return ended(Next::Resume, false);
        }
        let mut established = false;
        loop {
            if self.stopped() {
                // 1000 ends the session: at a stop nothing will resume it.
                self.close(ws, 1000, "stopping");
                return ended(Next::Stop, established);
            }
            let now = Instant::now();
            if now >= next_beat {
                if !acked {
                    log::warn!(
                        "discord: no heartbeat ACK since the last heartbeat (zombie connection); reconnecting to resume"
                    );
                    self.trouble("zombie connection (no heartbeat ACK); resuming".into());
                    self.close(ws, 4000, "zombie");
                    return ended(Next::Resume, established);
                }
                if let Err(e) = self.send(ws, &json!({"op": 1, "d": self.seq})) {
                    self.trouble(format!("gateway write: {e}"));
                    return ended(Next::Resume, established);
                }
                acked = false;
                next_beat = now + interval;
            }
            let frame = match read(ws) {
                Read::Nothing => continue,
                Read::Closed(code) => return self.closed(code, established),
                Read::Frame(v) => v,
            };
            match frame["op"].as_u64() {
                Some(0) => {
                    if let Some(s) = frame["s"].as_u64() {
                        self.seq = Some(s);
                    }
                    match frame["t"].as_str() {
                        Some("READY") => match self.ready(&frame["d"], url) {
                            Ok(event) => {
                                self.failed_resumes = 0;
                                established = true;
                                self.emit(event);
                            }
                            Err(missing) => {
                                log::warn!(
                                    "discord: {missing}, so the bot's own messages cannot be told apart; starting a new session"
                                );
                                self.trouble(format!("{missing}; starting a new session"));
                                // 1000: this session is of no use, nothing should resume it.
                                self.close(ws, 1000, "incomplete READY");
                                return ended(Next::Identify, false);
                            }
                        },
                        Some("RESUMED") => {
                            log::info!("discord: session resumed");
                            self.failed_resumes = 0;
                            established = true;
                            self.emit(GwEvent::Resumed);
                        }
                        Some("MESSAGE_CREATE") => {
                            let mut frame = frame;
                            self.emit(GwEvent::Message(frame["d"].take()));
                        }
                        Some("MESSAGE_UPDATE") => {
                            let mut frame = frame;
                            self.emit(GwEvent::Edited(frame["d"].take()));
                        }
                        Some("INTERACTION_CREATE") => {
                            let mut frame = frame;
                            self.emit(GwEvent::Interaction(frame["d"].take()));
                        }
                        _ => {}
                    }
                }
                Some(1) => {
                    if let Err(e) = self.send(ws, &json!({"op": 1, "d": self.seq})) {
                        self.trouble(format!("gateway write: {e}"));
                        return ended(Next::Resume, established);
                    }
                }
                Some(11) => acked = true,
                Some(7) => {
                    log::info!("discord: the gateway asked to reconnect (op 7); resuming");
                    self.close(ws, 4000, "reconnect");
                    return ended(Next::Resume, established);
                }
                Some(9) => {
                    self.close(ws, 4000, "invalid session");
                    if frame["d"] == true {
                        log::info!("discord: invalid session (resumable); resuming");
                        return ended(Next::Resume, established);
                    }
                    log::warn!("discord: invalid session (not resumable); identifying on a new connection");
                    self.session = None;
                    let wait = Duration::from_millis(1000 + (uuid::Uuid::new_v4().as_u128() % 4000) as u64);
                    if !self.pause(wait) {
                        return ended(Next::Stop, established);
                    }
                    return ended(Next::Identify, established);
                }
                _ => {}
            }
        }
    }

    /// Take in a READY `d` received on the connection to `url`. The bot's `user.id` is
    /// needed (its own messages arrive too and must be skipped); without a `session_id` the
    /// session works but cannot be resumed, so a disconnect identifies anew; without a
    /// `resume_gateway_url` (older gateways) it resumes at `url`.
    fn ready(&mut self, d: &Value, url: &str) -> Result<GwEvent, Missing> {
        let d = Fields::new("READY", d);
        let user_id = d.id("user.id")?;
        let warning = match d.str("session_id") {
            Ok(id) => {
                self.session = Some(Session {
                    id: id.to_owned(),
                    resume_url: d.opt_str("resume_gateway_url").unwrap_or(url).to_owned(),
                });
                None
            }
            Err(missing) => {
                log::warn!(
                    "discord: {missing}; the session cannot be resumed, a new one is started after a disconnect"
                );
                self.session = None;
                Some(format!("{missing}; the session cannot be resumed"))
            }
        };
        Ok(GwEvent::Ready {
            user_id,
            username: d.opt_str("user.username").map(str::to_owned),
            warning,
        })
    }

    fn closed(&mut self, code: Option<u16>, established: bool) -> Ended {
        if self.stopped() {
            return ended(Next::Stop, established);
        }
        let next = close_action(code);
        let what = code.map_or_else(|| "dropped".to_owned(), |c| format!("closed with {c}"));
        match &next {
            Next::Resume => {
                log::info!("discord: gateway connection {what}; resuming");
                self.trouble(format!("gateway connection {what}; resuming"));
            }
            Next::Identify => {
                log::warn!("discord: gateway connection {what}; starting a new session");
                self.trouble(format!("gateway connection {what}; new session"));
            }
            _ => {}
        }
        ended(next, established)
    }
}

fn ended(next: Next, established: bool) -> Ended {
    Ended { next, established }
}

enum Read {
    Frame(Value),
    Nothing,
    /// The connection ended: with a close code, or `None` for a drop.
    Closed(Option<u16>),
}

/// One read with the socket's short timeout.
fn read(ws: &mut Ws) -> Read {
    match ws.read() {
        Ok(Message::Text(t)) => match serde_json::from_str::<Value>(&t) {
            Ok(v) => Read::Frame(v),
            Err(_) => {
                log::debug!("discord: ignoring a gateway frame that is not JSON");
                Read::Nothing
            }
        },
        Ok(Message::Close(frame)) => {
            let _ = ws.flush();
            Read::Closed(frame.map(|f| u16::from(f.code)))
        }
        Ok(_) => Read::Nothing,
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
        {
            Read::Nothing
        }
        Err(e) => {
            log::debug!("discord: gateway read: {e}");
            Read::Closed(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_map_to_actions() {
        for code in [4000, 4001, 4002, 4005, 4008, 1006, 1000] {
            assert_eq!(close_action(Some(code)), Next::Resume, "{code}");
        }
        assert_eq!(close_action(None), Next::Resume);
        for code in [4003, 4007, 4009] {
            assert_eq!(close_action(Some(code)), Next::Identify, "{code}");
        }
        assert!(matches!(
            close_action(Some(4004)),
            Next::Fatal {
                state: "unauthorized",
                ..
            }
        ));
        for code in 4010..=4014 {
            assert!(matches!(
                close_action(Some(code)),
                Next::Fatal { state: "fatal", .. }
            ));
        }
        let Next::Fatal { error, .. } = close_action(Some(4014)) else {
            panic!()
        };
        assert!(error.contains("MESSAGE_CONTENT"));
    }

    #[test]
    fn identify_limiter_spaces_and_caps() {
        let t0 = Instant::now();
        let mut l = IdentifyLimiter::new(Duration::from_secs(5), 3, Duration::from_secs(100));
        assert_eq!(l.wait(t0), Duration::ZERO);
        l.record(t0);
        assert_eq!(l.wait(t0 + Duration::from_secs(2)), Duration::from_secs(3));
        l.record(t0 + Duration::from_secs(5));
        l.record(t0 + Duration::from_secs(10));
        // Cap of 3 per 100 s: the next waits for the first to leave the window.
        assert_eq!(l.wait(t0 + Duration::from_secs(20)), Duration::from_secs(80));
        assert_eq!(l.wait(t0 + Duration::from_secs(100)), Duration::ZERO);
        // A loop that identified as fast as allowed for a day stays under the cap.
        let mut l = IdentifyLimiter::default();
        let mut now = t0;
        let mut count = 0;
        while now < t0 + DAY {
            now += l.wait(now);
            if now >= t0 + DAY {
                break;
            }
            l.record(now);
            count += 1;
        }
        assert_eq!(count, IDENTIFY_DAILY_CAP);
        const { assert!(INTENTS == 37376) };
    }
}
