//! The Slack connector thread: a small state machine driven by commands from the router,
//! results of HTTP calls (each on its own short-lived thread, see [`Calls`]), frames from the
//! Socket Mode sockets it owns, and timers.
//!
//! Inbound: `auth.test` with the bot token (checks it, learns the bot's user and bot ids so
//! its own messages are skipped), then `apps.connections.open` with the app token plus the
//! WebSocket handshake (one call), then frames. Each `events_api` envelope is acked on the
//! socket it came in on as soon as it is read, before anything else happens to it; then
//! its event is deduplicated on `event_id` ([`Seen`]), normalized, filtered by `allowFrom`
//! and appended to the spool (held in memory and retried while the spool refuses a write,
//! see [`Inbox`]). When the spool is full, or the hold is, the envelope is not acked, so Slack
//! keeps it and redelivers it later.
//!
//! Socket life: `disconnect` with `refresh_requested` or `warning` marks the socket as
//! draining and opens a replacement at once; both are read until the replacement says
//! `hello`, then the old one is closed. Events that Slack sends on both are deduplicated, so
//! nothing is lost or doubled across the switch. `link_disabled` stops receiving (state
//! `disabled`) until a reload. A socket on which nothing arrives (no frame, ping or pong) for
//! two ping intervals is taken for half-open and replaced. Failures wait (backoff 1 s doubling
//! to 30 s with jitter, `Retry-After` on 429, at least [`TOO_MANY_WAIT`] after
//! `too_many_websockets`), so nothing here can spin.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{TryRecvError, select};
use serde_json::{Value, json};

use super::api::{ApiError, Identity, WebApi};
use super::normalize::{Frame, Me, Normalized, dedupe_key, normalize, parse_frame, press};
use super::outbound::{Done, Outbound};
use super::seen::Seen;
use super::socket::{Read, Socket, Ws};
use crate::backoff::Backoff;
use crate::channels::calls::{CallId, Calls};
use crate::channels::fields::Missing;
use crate::channels::inbox::{HOLD_MAX, Inbox, Seq};
use crate::channels::media::MediaError;
use crate::channels::media::cache::CachedFile;
use crate::channels::status::Refused;
use crate::channels::{ChannelStatus, ConnectorCommand, ConnectorContext};
use crate::protocol::{ErrorBody, ErrorCode};
use crate::spool::{Kind, Spool};

/// The spool source of Slack messages.
const SOURCE: &str = "slack";
/// Timeout of `auth.test` and `apps.connections.open`, and of the WebSocket setup.
const SHORT_CALL: Duration = Duration::from_secs(10);
/// While sockets are open, the thread reads them in slices of this much in total, and handles
/// commands in between.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Frames read from one socket before looking at commands again.
const FRAMES_PER_TURN: usize = 50;
/// Least wait after `too_many_websockets`: the connections are held elsewhere.
const TOO_MANY_WAIT: Duration = Duration::from_secs(30);
/// How long a stop waits for calls in flight.
const STOP_GRACE: Duration = Duration::from_millis(1000);
/// Timers never sleep longer than this (a safety net, not a poll).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The result of one call.
pub enum CallResult {
    Auth(Result<Identity, ApiError>),
    Opened(Result<Box<Ws>, OpenError>),
    Sent(Result<Value, ApiError>),
    /// A `channels.fetch` job finished.
    Fetched {
        job: u64,
        result: Result<CachedFile, MediaError>,
    },
}

/// Why a socket could not be opened.
pub enum OpenError {
    Api(ApiError),
    Socket(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Identify,
    Connect,
    /// A token was refused: nothing more is tried until a reload or restart.
    Unauthorized,
    /// Slack said `link_disabled`: Socket Mode is off for this app.
    Disabled,
}

pub struct Settings {
    pub allow_from: Vec<String>,
    /// `requireMention`: channel and group messages must mention the bot.
    pub mentions: crate::channels::mention::MentionGate,
    pub app_token: Arc<str>,
    pub bot_token: Arc<str>,
    /// A socket is pinged this often and declared dead after twice this without traffic.
    pub ping_interval: Duration,
}

pub struct Worker {
    api: Arc<WebApi>,
    settings: Settings,
    /// Read for the full-spool check that leaves envelopes unacked.
    spool: Arc<Mutex<Spool>>,
    /// The way into the spool; holds acked events while the spool refuses writes.
    inbox: Inbox,
    ctx: ConnectorContext,
    status: ChannelStatus,
    seen: Seen,
    me: Me,
    phase: Phase,
    /// The one `auth.test` or open in flight.
    in_flight: Option<CallId>,
    /// No `auth.test`/open before this.
    not_before: Instant,
    sockets: Vec<Socket>,
    next_socket_id: u64,
    backoff: Backoff,
    refused: Refused,
    calls: Calls<CallResult>,
    outbound: Outbound,
    /// Log "spool full" once per episode.
    spool_full_said: bool,
    /// `auth.test` refused the bot token: sends fail at once.
    bot_refused: bool,
}

/// What a frame means for its socket.
enum Outcome {
    Keep,
    Hello,
    Dead(String),
}

impl Worker {
    pub fn new(
        api: WebApi,
        settings: Settings,
        spool: Arc<Mutex<Spool>>,
        seen: Seen,
        ctx: ConnectorContext,
    ) -> Worker {
        Worker {
            api: Arc::new(api),
            settings,
            inbox: Inbox::new("slack", spool.clone()),
            spool,
            ctx,
            status: ChannelStatus::new("slack", "starting"),
            seen,
            me: Me::default(),
            phase: Phase::Identify,
            in_flight: None,
            not_before: Instant::now(),
            sockets: Vec::new(),
            next_socket_id: 0,
            backoff: Backoff::new(),
            refused: Refused::new("slack", module_path!()),
            calls: Calls::new("emonk-slack-http"),
            outbound: Outbound::default(),
            spool_full_said: false,
            bot_refused: false,
        }
    }

    pub fn run(mut self) {
        self.report();
        let commands = self.ctx.commands.clone();
        let results = self.calls.results().clone();
        'run: loop {
            let now = Instant::now();
            self.drive(now);
            if self.sockets.is_empty() {
                let wake = crossbeam_channel::at(self.next_wake(now));
                select! {
                    recv(commands) -> cmd => match cmd {
                        Ok(cmd) => if !self.on_command(cmd) { break 'run },
                        Err(_) => break 'run,
                    },
                    recv(results) -> r => if let Ok((id, r)) = r { self.on_result(id, r) },
                    recv(wake) -> _ => {}
                }
            } else {
                loop {
                    match commands.try_recv() {
                        Ok(cmd) => {
                            if !self.on_command(cmd) {
                                break 'run;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => break 'run,
                    }
                }
                while let Ok((id, r)) = results.try_recv() {
                    self.on_result(id, r);
                }
                self.poll_sockets();
            }
        }
        self.stop();
    }

    /// False for a stop.
    fn on_command(&mut self, cmd: ConnectorCommand) -> bool {
        match cmd {
            ConnectorCommand::Send(job) => {
                if self.bot_refused {
                    self.finish_sends(vec![(job.id, Err(bot_token_refused()))]);
                } else if let Err(done) = self.outbound.enqueue(job, Instant::now()) {
                    self.finish_sends(vec![done]);
                }
                true
            }
            ConnectorCommand::Fetch(job) => {
                let (api, token) = (self.api.clone(), self.settings.bot_token.clone());
                crate::channels::fetch::start(
                    &mut self.calls,
                    &self.ctx,
                    "slack",
                    job,
                    move |job| super::fetch::fetch(&api, &token, job),
                    |job, result| CallResult::Fetched { job, result },
                );
                true
            }
            ConnectorCommand::Act(job) => {
                if self.bot_refused {
                    self.finish_sends(vec![(job.id, Err(bot_token_refused()))]);
                } else if let Err(done) = self.outbound.enqueue_action(job, Instant::now()) {
                    self.finish_sends(vec![done]);
                }
                true
            }
            ConnectorCommand::Typing(job) => {
                // Slack has no typing indicator for bots (only the legacy RTM API had one).
                self.finish_sends(vec![(job.id, Ok(json!({"shown": false})))]);
                true
            }
            // Nothing is kept alive on Slack.
            ConnectorCommand::TypingOff { .. } => true,
            ConnectorCommand::Probe(p) => {
                p.answer();
                true
            }
            ConnectorCommand::Stop => false,
        }
    }

    fn report(&self) {
        self.ctx.report_status(&self.status);
    }

    fn set_state(&mut self, state: &str, error: Option<String>) {
        self.status.set_state(state, error);
        self.report();
    }

    fn mark_running(&mut self) {
        if self.status.state != "running" {
            self.status.last_error = None;
            self.set_state("running", None);
        }
    }

    /// A socket that is not being replaced.
    fn has_live_socket(&self) -> bool {
        self.sockets.iter().any(|s| !s.draining)
    }

    /// Start what may start now.
    fn drive(&mut self, now: Instant) {
        if self.in_flight.is_none() && now >= self.not_before {
            let api = self.api.clone();
            let started = match self.phase {
                Phase::Identify => {
                    let token = self.settings.bot_token.clone();
                    Some(
                        self.calls
                            .start(move || CallResult::Auth(api.auth_test(&token, SHORT_CALL))),
                    )
                }
                Phase::Connect if !self.has_live_socket() => {
                    let token = self.settings.app_token.clone();
                    Some(self.calls.start(move || CallResult::Opened(open(&api, &token))))
                }
                _ => None,
            };
            match started {
                Some(Ok(id)) => self.in_flight = Some(id),
                Some(Err(e)) => {
                    log::error!("slack: cannot start an HTTP call thread: {e}");
                    self.not_before = now + self.backoff.next_delay();
                }
                None => {}
            }
        }
        let token: Arc<str> = self.settings.bot_token.clone();
        let failed = self.outbound.drive(now, &mut self.calls, &self.api, &token);
        self.finish_sends(failed);
        self.inbox.retry(now).report(&mut self.status, &self.ctx, None);
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + MAX_SLEEP;
        if self.in_flight.is_none() && matches!(self.phase, Phase::Identify | Phase::Connect) {
            wake = wake.min(self.not_before);
        }
        for w in [self.outbound.next_wake(), self.inbox.retry_at()]
            .into_iter()
            .flatten()
        {
            wake = wake.min(w);
        }
        wake.max(now)
    }

    fn on_result(&mut self, id: CallId, result: CallResult) {
        let now = Instant::now();
        if let CallResult::Fetched { job, result } = result {
            return self.ctx.finish_fetch(job, result);
        }
        if let CallResult::Sent(r) = result {
            if r.is_ok() {
                self.status.outbound += 1;
                self.report();
            }
            if let Some(done) = self.outbound.on_result(id, r, now) {
                self.finish_sends(vec![done]);
            }
            return;
        }
        if self.in_flight != Some(id) {
            return; // an abandoned call answering late
        }
        self.in_flight = None;
        match result {
            CallResult::Auth(Ok(identity)) => {
                let account = identity.user.clone().or(identity.team.clone());
                log::info!(
                    "slack: authorized as {} (user {}, team {})",
                    account.as_deref().unwrap_or("?"),
                    identity.user_id,
                    identity.team.as_deref().unwrap_or("?")
                );
                self.status.account = account;
                self.me = Me {
                    user_id: identity.user_id,
                    bot_id: identity.bot_id,
                };
                self.phase = Phase::Connect;
            }
            CallResult::Auth(Err(e)) => self.fail("auth.test", "botToken", e, now),
            CallResult::Opened(Ok(ws)) => {
                let ws = *ws;
                if self.phase != Phase::Connect {
                    return; // disabled or refused meanwhile
                }
                self.next_socket_id += 1;
                log::info!(
                    "slack: socket {} connected; waiting for hello",
                    self.next_socket_id
                );
                self.sockets.push(Socket::new(self.next_socket_id, ws));
            }
            CallResult::Opened(Err(OpenError::Api(e))) => {
                self.fail("apps.connections.open", "appToken", e, now)
            }
            CallResult::Opened(Err(OpenError::Socket(e))) => {
                self.fail("Socket Mode connect", "appToken", ApiError::Network(e), now)
            }
            CallResult::Sent(_) | CallResult::Fetched { .. } => unreachable!("handled above"),
        }
    }

    /// A failed `auth.test` or open; `key` names the token it used.
    fn fail(&mut self, call: &str, key: &str, e: ApiError, now: Instant) {
        match e {
            ApiError::Unauthorized(ref why) => {
                log::error!(
                    "slack: the {key} was refused by {call} ({why}); fix channels.slack.{key} and reload (SIGHUP). Connecting stopped."
                );
                self.phase = Phase::Unauthorized;
                self.set_state(
                    "unauthorized",
                    Some(format!("{call}: {why}; fix channels.slack.{key}")),
                );
                if key == "botToken" {
                    self.bot_refused = true;
                    let failed = self.outbound.fail_all(&bot_token_refused());
                    self.finish_sends(failed);
                }
            }
            other => {
                let wait = match &other {
                    ApiError::RateLimited { retry_after } => *retry_after,
                    ApiError::TooManySockets => self.backoff.next_delay().max(TOO_MANY_WAIT),
                    _ => self.backoff.next_delay(),
                };
                log::warn!(
                    "slack: {call} failed: {other}; retrying in {:.1}s",
                    wait.as_secs_f64()
                );
                self.not_before = now + wait;
                if self.sockets.iter().any(|s| s.hello) {
                    // Still receiving on the socket being replaced.
                    self.status.last_error = Some(format!("{call}: {other}"));
                    self.report();
                } else {
                    self.set_state("backoff", Some(format!("{call}: {other}")));
                }
            }
        }
    }

    /// Read every socket for one slice, handling what arrives; drop dead sockets.
    fn poll_sockets(&mut self) {
        let sockets = std::mem::take(&mut self.sockets);
        let slice = READ_SLICE / u32::try_from(sockets.len()).unwrap_or(1).max(1);
        let idle_limit = self.settings.ping_interval * 2;
        let mut kept = Vec::new();
        let mut hello_on = None;
        for mut socket in sockets {
            let mut dead = None;
            for _ in 0..FRAMES_PER_TURN {
                match socket.read(slice) {
                    Read::Idle => break,
                    Read::Closed(why) => {
                        dead = Some(why);
                        break;
                    }
                    Read::Text(text) => match self.on_frame(&mut socket, &text) {
                        Outcome::Keep => {}
                        Outcome::Hello => hello_on = Some(socket.id),
                        Outcome::Dead(why) => {
                            dead = Some(why);
                            break;
                        }
                    },
                }
            }
            let now = Instant::now();
            if dead.is_none() && now.duration_since(socket.last_rx) >= idle_limit {
                dead = Some(format!(
                    "nothing received for {:.1}s (half-open?)",
                    now.duration_since(socket.last_rx).as_secs_f64()
                ));
            }
            if dead.is_none() && now.duration_since(socket.last_ping) >= self.settings.ping_interval {
                if let Err(e) = socket.ping() {
                    dead = Some(format!("ping failed: {e}"));
                }
            }
            match dead {
                None => kept.push(socket),
                Some(why) => {
                    self.socket_lost(&socket, &why, now);
                    socket.close();
                }
            }
        }
        if self.phase != Phase::Connect {
            // link_disabled: close everything.
            kept.drain(..).for_each(Socket::close);
        }
        if let Some(id) = hello_on {
            let (old, new): (Vec<_>, Vec<_>) = kept.into_iter().partition(|s| s.draining && s.id != id);
            for s in old {
                log::info!("slack: socket {id} is up; closing the replaced socket {}", s.id);
                s.close();
            }
            kept = new;
        }
        self.sockets = kept;
    }

    fn socket_lost(&mut self, socket: &Socket, why: &str, now: Instant) {
        if socket.draining {
            log::info!("slack: replaced socket {} ended: {why}", socket.id);
            return;
        }
        let wait = self.backoff.next_delay();
        log::warn!(
            "slack: socket {} lost: {why}; reconnecting in {:.1}s",
            socket.id,
            wait.as_secs_f64()
        );
        if self.phase == Phase::Connect && self.in_flight.is_none() {
            self.not_before = self.not_before.max(now + wait);
        }
        if self.phase == Phase::Connect {
            self.set_state("backoff", Some(format!("socket lost: {why}")));
        }
    }

    fn on_frame(&mut self, socket: &mut Socket, text: &str) -> Outcome {
        match parse_frame(text) {
            Frame::Hello => {
                log::info!("slack: socket {} says hello; receiving events", socket.id);
                socket.hello = true;
                self.backoff.reset();
                self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
                self.mark_running();
                Outcome::Hello
            }
            Frame::Disconnect(reason) => match reason.as_str() {
                "link_disabled" => {
                    log::error!(
                        "slack: Slack disabled the Socket Mode link (link_disabled); enable Socket Mode for the app and reload (SIGHUP). Receiving stopped; sends still work."
                    );
                    self.phase = Phase::Disabled;
                    self.set_state(
                        "disabled",
                        Some(
                            "link_disabled: Socket Mode was disabled for this app; enable it and reload"
                                .into(),
                        ),
                    );
                    Outcome::Keep
                }
                "too_many_websockets" => {
                    let wait = self.backoff.next_delay().max(TOO_MANY_WAIT);
                    self.not_before = Instant::now() + wait;
                    socket.draining = false;
                    Outcome::Dead(
                        "too_many_websockets: the app holds too many Socket Mode connections".into(),
                    )
                }
                _ => {
                    log::info!(
                        "slack: socket {} asks to be replaced ({reason}); opening the new one first",
                        socket.id
                    );
                    socket.draining = true;
                    if self.in_flight.is_none() {
                        self.not_before = Instant::now();
                    }
                    Outcome::Keep
                }
            },
            Frame::Envelope {
                envelope_id,
                kind,
                payload,
            } => {
                if self.spool_is_full() {
                    // Unacked, Slack keeps it and delivers it again later.
                    return Outcome::Keep;
                }
                // Ack first: Slack wants it within 3 s, whatever happens next.
                let ack = json!({"envelope_id": envelope_id}).to_string();
                let acked = socket.send_text(ack);
                socket.last_rx = Instant::now();
                self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
                match payload {
                    Some(p) if kind == "interactive" => self.on_interactive(&p),
                    Some(p) => self.on_event(&envelope_id, &p),
                    None if kind == "events_api" => {
                        self.incomplete(&Missing::new(format!("envelope {envelope_id}"), "payload"))
                    }
                    None => log::debug!("slack: ignoring a {kind} envelope"),
                }
                match acked {
                    Ok(()) => Outcome::Keep,
                    Err(e) => Outcome::Dead(format!("cannot ack: {e}")),
                }
            }
            Frame::Incomplete(missing) => {
                self.incomplete(&missing);
                Outcome::Keep
            }
            Frame::Other(kind) => {
                log::debug!("slack: ignoring a {kind:?} frame");
                Outcome::Keep
            }
        }
    }

    /// Whether to leave envelopes unacked (Slack redelivers them): the spool is at its
    /// message limit, or the inbox already holds all it may while the disk refuses writes.
    fn spool_is_full(&mut self) -> bool {
        let spool_full = {
            let spool = self.spool.lock().expect("spool lock");
            spool.len() >= spool.limits().max_entries
        };
        let full = spool_full || self.inbox.is_full();
        if full && !self.spool_full_said {
            if spool_full {
                log::warn!(
                    "slack: the spool is full; not acknowledging events (Slack redelivers them) until the agent acknowledges messages (events.ack) or spool.maxEntries is raised"
                );
                self.status.last_error = Some("spool full".into());
            } else {
                log::error!(
                    "slack: {HOLD_MAX} events are held in memory while the spool refuses writes; not acknowledging more (Slack redelivers them) until it accepts writes again"
                );
            }
            self.spool_full_said = true;
            self.report();
        }
        if !full {
            self.spool_full_said = false;
        }
        full
    }

    /// A press (`block_actions`): acked already (which is Slack's answer to the user's
    /// client), spooled as a `channel.action` unless the sender is refused, once: a
    /// redelivered envelope carries the same press key.
    fn on_interactive(&mut self, payload: &Value) {
        let Some(press) = press(payload) else {
            log::debug!("slack: ignoring an interactive payload that is not a button press");
            return;
        };
        if self.seen.contains(&press.key) {
            log::debug!(
                "slack: press {} was already delivered; skipping the redelivery",
                press.key
            );
            return;
        }
        if !self.allowed(&press.sender_id) {
            self.refuse(press.sender_id);
            return;
        }
        let source = format!("{SOURCE}/actions");
        match self
            .inbox
            .push_kind(source, Kind::Action, Seq::Next, press.params, Instant::now())
        {
            Ok(written) => {
                written.report(&mut self.status, &self.ctx, None);
                if let Err(e) = self.seen.insert(press.key) {
                    log::warn!("slack: cannot persist the delivered event ids: {e}");
                }
            }
            Err(_) => log::error!(
                "slack: a press from {} is lost: {HOLD_MAX} entries are already held while the spool refuses writes",
                press.sender_id
            ),
        }
    }

    fn on_event(&mut self, envelope_id: &str, payload: &Value) {
        let key = dedupe_key(payload, envelope_id);
        if self.seen.contains(&key) {
            log::debug!("slack: event {key} was already delivered; skipping the redelivery");
            return;
        }
        let (sender_id, params) = match normalize(payload, &key, &self.me) {
            Normalized::Skip(why) => {
                log::debug!("slack: skipping event {key}: {why}");
                return;
            }
            Normalized::Incomplete(missing) => {
                // Acked already: Slack goes on with the next one.
                self.incomplete(&missing);
                return;
            }
            Normalized::Message { sender_id, params } => (sender_id, params),
        };
        let direct = params.get("chatType").and_then(Value::as_str) == Some("im");
        if !self.settings.mentions.admit(direct, &params, &mut self.status) {
            // Acked already; remembered so a redelivery is not counted twice.
            if let Err(e) = self.seen.insert(key) {
                log::warn!("slack: cannot persist the delivered event ids: {e}");
            }
            return self.report();
        }
        if !self.allowed(&sender_id) {
            self.refuse(sender_id);
            return;
        }
        // Already acked, so Slack will not send it again: spooled or held, it is taken,
        // and a redelivery of the same event is a duplicate.
        match self
            .inbox
            .push(SOURCE.to_owned(), Seq::Next, params, Instant::now())
        {
            Ok(written) => {
                written.report(&mut self.status, &self.ctx, None);
                if let Err(e) = self.seen.insert(key) {
                    log::warn!("slack: cannot persist the delivered event ids: {e}");
                }
            }
            // Not reached while `spool_is_full` leaves events unacked when the hold is full.
            Err(_) => log::error!(
                "slack: event {key} is lost: {HOLD_MAX} messages are already held while the spool refuses writes"
            ),
        }
    }

    /// An envelope or event that lacks a needed field: skipped, said in the log and in
    /// `lastError` (the rest keeps flowing).
    fn incomplete(&mut self, missing: &Missing) {
        log::warn!("slack: skipping an event that cannot be delivered: {missing}");
        self.status.last_error = Some(format!("{missing}; skipped"));
        self.report();
    }

    fn allowed(&self, sender: &str) -> bool {
        self.settings.allow_from.iter().any(|a| a == "*" || a == sender)
    }

    /// Log a refused sender once, with the exact id to add.
    fn refuse(&mut self, id: String) {
        self.refused.refuse(&id, None);
    }

    fn finish_sends(&mut self, done: Vec<Done>) {
        self.ctx.finish_sends(done);
    }

    /// Close the sockets, abort calls in flight, report `stopped`.
    fn stop(mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        self.inbox.abandon();
        for s in self.sockets.drain(..) {
            s.close();
        }
        self.api.shutdown();
        self.status.state = "stopped".into();
        self.report();
        self.calls.finish(deadline);
    }
}

/// `apps.connections.open`, then connect to the URL it gave.
fn open(api: &WebApi, app_token: &str) -> Result<Box<Ws>, OpenError> {
    let url = api
        .connections_open(app_token, SHORT_CALL)
        .map_err(OpenError::Api)?;
    super::socket::connect(&url, SHORT_CALL)
        .map(Box::new)
        .map_err(OpenError::Socket)
}

fn bot_token_refused() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Unavailable,
        "the slack bot token was refused; fix channels.slack.botToken",
    )
}
