//! The Telegram connector thread: a small state machine driven by commands from the router,
//! results of HTTP calls (each on its own short-lived thread, see [`Calls`]), and timers.
//!
//! Inbound: `getMe` (checks the token, learns the username), then `deleteWebhook`, then
//! `getUpdates` long polls. Each batch is normalized, filtered by `allowFrom`, appended to the
//! spool with one fsync, and only then is the offset advanced and persisted; the next poll
//! carries the offset, which is what confirms the batch to Telegram. At a stop, a batch not
//! yet confirmed is confirmed with a short `getUpdates(offset, limit=1, timeout=0)`.
//!
//! Nothing here can spin: every failure waits (backoff 1 s doubling to 30 s with jitter,
//! `retry_after` on 429, a pause after an empty poll that returned early), and a poll that
//! outlives its deadline is abandoned and replaced (the stall watchdog), so the connector can
//! never silently stop receiving.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::select;
use serde_json::{Map, Value};

use super::api::{ApiError, BotApi, User};
use super::normalize::{Bot, Normalized, normalize_for};
use super::offset::{OffsetFile, spool_source, starting_offset};
use super::outbound::{Done, Outbound};
use crate::backoff::Backoff;
use crate::channels::calls::{CallId, Calls};
use crate::channels::fetch::FetchJob;
use crate::channels::fields::Missing;
use crate::channels::media::MediaError;
use crate::channels::media::cache::CachedFile;
use crate::channels::mention::MentionGate;
use crate::channels::spool_trouble::SpoolTrouble;
use crate::channels::status::Refused;
use crate::channels::typing::{self, Keepalive, TypingJob};
use crate::channels::{ChannelStatus, ConnectorCommand, ConnectorContext, ConnectorEvent};
use crate::protocol::{ErrorBody, ErrorCode};
use crate::spool::Kind;
use crate::spool::{Entry, Spool, SpoolError};

/// The updates the connector asks for.
const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
];
/// What a press on a button of a message Telegram no longer has shows the user.
const STALE_PRESS: &str = "This button is no longer available.";
/// Updates per poll.
const POLL_LIMIT: u32 = 100;
/// The HTTP timeout of a poll exceeds the long-poll timeout by this much.
const POLL_HTTP_MARGIN: Duration = Duration::from_secs(10);
/// A poll with no answer this long after its HTTP timeout is declared stalled.
const STALL_MARGIN: Duration = Duration::from_secs(5);
/// Timeout of `getMe` and `deleteWebhook`.
const SHORT_CALL: Duration = Duration::from_secs(10);
/// Least time between two polls when the server answers empty polls early (a server that
/// ignores `timeout` must not make us poll in a hot loop).
const EARLY_EMPTY_PAUSE: Duration = Duration::from_millis(500);
/// Another process polls the same token: wait at least this long between attempts.
const CONFLICT_MIN_WAIT: Duration = Duration::from_secs(5);
/// A `sendChatAction` lasts about 5 s: it is repeated a little before.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// How long a stop waits for the final offset confirmation and calls in flight.
const STOP_GRACE: Duration = Duration::from_millis(1500);
/// Timers never sleep longer than this (a safety net, not a poll).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Where a batch was cut when only a prefix fitted: the update_id of the last one taken,
/// and why the rest did not fit.
type Cut = (i64, SpoolError);

/// The result of one HTTP call.
pub enum CallResult {
    Me(Result<User, ApiError>),
    Webhook(Result<(), ApiError>),
    Updates {
        started: Instant,
        result: Result<Vec<Value>, ApiError>,
    },
    Sent(Result<Value, ApiError>),
    /// A `channels.fetch` job finished.
    Fetched {
        job: u64,
        result: Result<CachedFile, MediaError>,
    },
    /// An `answerCallbackQuery` answered (nothing waits for it).
    Answered(Result<(), ApiError>),
    /// A `sendChatAction` answered: a `channels.typing` job's first (`job`), or a renewal.
    Typing {
        job: Option<u64>,
        key: String,
        result: Result<(), ApiError>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Identify,
    DeleteWebhook,
    Poll,
    /// The token was refused: nothing more is tried until a reload or restart.
    Unauthorized,
}

pub struct Settings {
    pub poll_timeout: Duration,
    pub allow_from: Vec<String>,
    /// `requireMention`: group, supergroup and channel messages must mention the bot.
    pub mentions: MentionGate,
}

pub struct Worker {
    api: Arc<BotApi>,
    settings: Settings,
    spool: Arc<Mutex<Spool>>,
    ctx: ConnectorContext,
    status: ChannelStatus,
    offset_file: OffsetFile,
    offset: Option<i64>,
    /// The bot's id and its spool source, known once `getMe` answered.
    bot: Option<(i64, String)>,
    /// The bot as `getMe` described it, for mentions.
    me: Option<Bot>,
    /// Spooled updates whose offset no successful poll has carried yet (a poll that failed
    /// may never have reached Telegram, so only an answer counts as confirmation).
    unconfirmed: bool,
    phase: Phase,
    /// The one inbound call in flight (getMe, deleteWebhook or getUpdates).
    in_flight: Option<(CallId, Instant)>,
    /// No inbound call before this.
    not_before: Instant,
    backoff: Backoff,
    last_error_was_webhook: bool,
    refused: Refused,
    spool_trouble: SpoolTrouble,
    calls: Calls<CallResult>,
    outbound: Outbound,
    /// Chats whose typing indicator is kept up.
    typing: Keepalive,
}

impl Worker {
    pub fn new(
        api: BotApi,
        settings: Settings,
        spool: Arc<Mutex<Spool>>,
        offset_file: OffsetFile,
        ctx: ConnectorContext,
    ) -> Worker {
        Worker {
            api: Arc::new(api),
            settings,
            spool,
            ctx,
            status: ChannelStatus::new("telegram", "starting"),
            offset_file,
            offset: None,
            bot: None,
            me: None,
            unconfirmed: false,
            phase: Phase::Identify,
            in_flight: None,
            not_before: Instant::now(),
            backoff: Backoff::new(),
            last_error_was_webhook: false,
            refused: Refused::new("telegram", module_path!()),
            spool_trouble: SpoolTrouble::new("telegram"),
            calls: Calls::new("emonk-telegram-http"),
            outbound: Outbound::default(),
            typing: Keepalive::new(TYPING_EVERY),
        }
    }

    pub fn run(mut self) {
        self.report();
        let commands = self.ctx.commands.clone();
        let results = self.calls.results().clone();
        loop {
            let now = Instant::now();
            self.drive(now);
            let wake = crossbeam_channel::at(self.next_wake(now));
            select! {
                recv(commands) -> cmd => match cmd {
                    Ok(ConnectorCommand::Send(job)) => {
                        // A message ends the indicator on Telegram's side too.
                        self.typing.stop(&job.request.to);
                        if let Err(done) = self.outbound.enqueue(job, Instant::now()) {
                            self.finish_sends(vec![done]);
                        }
                    }
                    Ok(ConnectorCommand::Fetch(job)) => self.start_fetch(job),
                    Ok(ConnectorCommand::Typing(job)) => self.start_typing(job),
                    Ok(ConnectorCommand::TypingOff { to, .. }) => self.typing.stop(&to),
                    Ok(ConnectorCommand::Act(job)) => {
                        if let Err(done) = self.outbound.enqueue_action(job, Instant::now()) {
                            self.finish_sends(vec![done]);
                        }
                    }
                    Ok(ConnectorCommand::Probe(p)) => p.answer(),
                    Ok(ConnectorCommand::Stop) | Err(_) => break,
                },
                recv(results) -> r => if let Ok((id, r)) = r { self.on_result(id, r) },
                recv(wake) -> _ => {}
            }
        }
        self.stop();
    }

    fn report(&self) {
        self.ctx.report_status(&self.status);
    }

    fn set_state(&mut self, state: &str, error: Option<String>) {
        self.status.set_state(state, error);
        self.report();
    }

    fn poll_http_timeout(&self) -> Duration {
        self.settings.poll_timeout + POLL_HTTP_MARGIN
    }

    /// Start whatever may start now; abandon a stalled poll.
    fn drive(&mut self, now: Instant) {
        if let Some((_, started)) = self.in_flight {
            if self.phase == Phase::Poll && now >= started + self.poll_http_timeout() + STALL_MARGIN {
                log::warn!(
                    "telegram: getUpdates has not answered for {}s; abandoning it and polling again",
                    now.duration_since(started).as_secs()
                );
                self.set_state("backoff", Some("getUpdates stalled; restarted".into()));
                self.in_flight = None;
            }
        }
        if self.in_flight.is_none() && now >= self.not_before {
            self.start_inbound_call(now);
        }
        let failed = self.outbound.drive(now, &mut self.calls, &self.api);
        self.finish_sends(failed);
        for renewal in self.typing.due(now) {
            let thread = renewal.thread.as_deref().and_then(|t| t.parse().ok());
            self.chat_action(None, renewal.key, renewal.action.as_str(), thread);
        }
    }

    /// `channels.typing`: show the indicator now and keep it up (see `channels::typing`).
    fn start_typing(&mut self, job: TypingJob) {
        if self.phase == Phase::Unauthorized {
            let body = ErrorBody::new(
                ErrorCode::Unavailable,
                "telegram: the bot token was refused; fix channels.telegram.botToken",
            );
            return self.finish_sends(vec![(job.id, Err(body))]);
        }
        let r = job.request;
        let thread = match r.thread_id.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                let body = ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "threadId {:?} is not a Telegram id (an integer)",
                        r.thread_id.unwrap_or_default()
                    ),
                );
                return self.finish_sends(vec![(job.id, Err(body))]);
            }
        };
        self.typing.start(
            r.to.clone(),
            r.action,
            r.thread_id.clone(),
            job.ttl,
            Instant::now(),
        );
        self.chat_action(Some(job.id), r.to, r.action.as_str(), thread);
    }

    fn chat_action(&mut self, job: Option<u64>, key: String, action: &'static str, thread: Option<i64>) {
        let api = self.api.clone();
        let chat = key.clone();
        let started = self.calls.start(move || CallResult::Typing {
            job,
            result: api.send_chat_action(&chat, action, thread, SHORT_CALL),
            key: chat,
        });
        if let Err(e) = started {
            let body = ErrorBody::retryable(
                ErrorCode::Unavailable,
                format!("cannot start the call: {e}"),
                None,
            );
            typing::on_result(&mut self.typing, &self.ctx, "telegram", job, &key, Err(body));
        }
    }

    fn start_inbound_call(&mut self, now: Instant) {
        let api = self.api.clone();
        let started = match self.phase {
            Phase::Unauthorized => return,
            Phase::Identify => self.calls.start(move || CallResult::Me(api.get_me(SHORT_CALL))),
            Phase::DeleteWebhook => self
                .calls
                .start(move || CallResult::Webhook(api.delete_webhook(false, SHORT_CALL))),
            Phase::Poll => {
                let offset = self.offset;
                let poll_secs = self.settings.poll_timeout.as_secs();
                let http = self.poll_http_timeout();
                // The request carries the offset: Telegram forgets earlier updates on receipt.
                // `unconfirmed` is cleared only when it answers (see `on_result`).
                self.calls.start(move || {
                    let result = api.get_updates(offset, POLL_LIMIT, poll_secs, ALLOWED_UPDATES, http);
                    CallResult::Updates { started: now, result }
                })
            }
        };
        match started {
            Ok(id) => self.in_flight = Some((id, now)),
            Err(e) => {
                log::error!("telegram: cannot start an HTTP call thread: {e}");
                self.not_before = now + self.backoff.next_delay();
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + MAX_SLEEP;
        match self.in_flight {
            Some((_, started)) if self.phase == Phase::Poll => {
                wake = wake.min(started + self.poll_http_timeout() + STALL_MARGIN);
            }
            None if self.phase != Phase::Unauthorized => wake = wake.min(self.not_before),
            _ => {}
        }
        for w in [self.outbound.next_wake(), self.typing.next_wake()]
            .into_iter()
            .flatten()
        {
            wake = wake.min(w);
        }
        wake.max(now)
    }

    /// Run a fetch on its own call thread (Telegram's flood limits are about messages).
    fn start_fetch(&mut self, job: FetchJob) {
        if self.phase == Phase::Unauthorized {
            let e = MediaError::Unavailable(
                "telegram: the bot token was refused; fix channels.telegram.botToken".into(),
            );
            return self.ctx.finish_fetch(job.id, Err(e));
        }
        let api = self.api.clone();
        crate::channels::fetch::start(
            &mut self.calls,
            &self.ctx,
            "telegram",
            job,
            move |job| super::fetch::fetch(&api, job),
            |job, result| CallResult::Fetched { job, result },
        );
    }

    fn on_result(&mut self, id: CallId, result: CallResult) {
        let now = Instant::now();
        if let CallResult::Fetched { job, result } = result {
            return self.ctx.finish_fetch(job, result);
        }
        if let CallResult::Answered(result) = result {
            if let Err(e) = result {
                log::debug!("telegram: answerCallbackQuery failed: {e}");
            }
            return;
        }
        if let CallResult::Typing { job, key, result } = result {
            let result = result.map_err(|e| e.to_error_body());
            return typing::on_result(&mut self.typing, &self.ctx, "telegram", job, &key, result);
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
        if self.in_flight.map(|(i, _)| i) != Some(id) {
            return; // an abandoned call answering late
        }
        self.in_flight = None;
        match result {
            CallResult::Me(Ok(user)) => {
                let account = user.username.as_ref().map(|u| format!("@{u}"));
                log::info!(
                    "telegram: authorized as {}",
                    account.as_deref().unwrap_or("(no username)")
                );
                self.status.account = account;
                self.me = Some(Bot {
                    id: user.id,
                    username: user.username.clone(),
                });
                self.start_from(user.id);
                self.phase = Phase::DeleteWebhook;
            }
            CallResult::Webhook(Ok(())) => {
                self.phase = Phase::Poll;
                self.backoff.reset();
                self.mark_running();
            }
            CallResult::Updates {
                started,
                result: Ok(updates),
            } => {
                self.backoff.reset();
                self.last_error_was_webhook = false;
                // Telegram answered a poll carrying the current offset: it is confirmed.
                self.unconfirmed = false;
                self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
                let early = now.duration_since(started) < self.settings.poll_timeout / 2;
                if updates.is_empty() && early {
                    self.not_before = now + EARLY_EMPTY_PAUSE;
                }
                // A full spool keeps the state at `backoff` (set once, not every retry).
                if self.ingest(updates, now) {
                    self.mark_running();
                }
            }
            CallResult::Me(Err(e)) => self.fail("getMe", e, now),
            CallResult::Webhook(Err(e)) => self.fail("deleteWebhook", e, now),
            CallResult::Updates { result: Err(e), .. } => self.fail("getUpdates", e, now),
            CallResult::Sent(_)
            | CallResult::Fetched { .. }
            | CallResult::Typing { .. }
            | CallResult::Answered(_) => {
                unreachable!("handled above")
            }
        }
    }

    /// Pick the offset for this bot: its stored offset and its own high-water mark. A
    /// stored offset of another bot (the token was changed) is not used.
    fn start_from(&mut self, bot: i64) {
        let source = spool_source(bot);
        let stored = match self.offset_file.load() {
            Some((b, offset)) if b == bot => Some(offset),
            Some((b, _)) => {
                log::info!(
                    "telegram: the token now belongs to bot {bot} (was {b}); starting from its own updates"
                );
                None
            }
            None => None,
        };
        let high_water = self.spool.lock().expect("spool lock").high_water(&source);
        if self.bot.as_ref().is_none_or(|(b, _)| *b != bot) {
            self.offset = starting_offset(stored, high_water);
        }
        self.bot = Some((bot, source));
    }

    fn fail(&mut self, call: &str, e: ApiError, now: Instant) {
        let webhook_conflict = matches!(e, ApiError::Conflict { webhook: true, .. });
        match &e {
            ApiError::Unauthorized { status, description } => {
                log::error!(
                    "telegram: the bot token was refused ({status} {description}); fix channels.telegram.botToken and reload (SIGHUP). Polling stopped."
                );
                self.phase = Phase::Unauthorized;
                self.set_state("unauthorized", Some(format!("{status} {description}")));
                let body = ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the telegram bot token was refused; fix channels.telegram.botToken",
                );
                let failed = self.outbound.fail_all(&body);
                self.finish_sends(failed);
            }
            ApiError::Conflict {
                webhook: true,
                description,
            } => {
                log::warn!("telegram: {description}; deleting the webhook");
                // A webhook that keeps coming back must not make us loop.
                let wait = if self.last_error_was_webhook {
                    self.backoff.next_delay()
                } else {
                    Duration::ZERO
                };
                self.phase = Phase::DeleteWebhook;
                self.not_before = now + wait;
                self.set_state("backoff", Some(description.clone()));
            }
            ApiError::Conflict {
                webhook: false,
                description,
            } => {
                let wait = self.backoff.next_delay().max(CONFLICT_MIN_WAIT);
                log::warn!(
                    "telegram: another process is polling this bot token ({description}); stop the other bot instance. Retrying in {}s",
                    wait.as_secs()
                );
                self.not_before = now + wait;
                self.set_state("conflict", Some(description.clone()));
            }
            ApiError::RateLimited {
                retry_after,
                description,
            } => {
                log::warn!(
                    "telegram: {call} rate limited ({description}); waiting {}s",
                    retry_after.as_secs()
                );
                self.not_before = now + *retry_after;
                self.set_state("backoff", Some(description.clone()));
            }
            other => {
                let wait = self.backoff.next_delay();
                log::warn!(
                    "telegram: {call} failed: {other}; retrying in {:.1}s",
                    wait.as_secs_f64()
                );
                self.not_before = now + wait;
                self.set_state("backoff", Some(other.to_string()));
            }
        }
        self.last_error_was_webhook = webhook_conflict;
    }

    fn allowed(&self, sender: &str) -> bool {
        self.settings.allow_from.iter().any(|a| a == "*" || a == sender)
    }

    /// Spool a batch, then advance and persist the offset. False when the spool did not take
    /// all of it (full, or an I/O error): the rest stays with Telegram.
    fn ingest(&mut self, updates: Vec<Value>, now: Instant) -> bool {
        let mut batch = Vec::new();
        // Presses to spool (update_id, params, callback id), and callbacks answered anyway.
        let mut presses: Vec<(u64, Map<String, Value>, String)> = Vec::new();
        let mut answers: Vec<(String, Option<&'static str>)> = Vec::new();
        let mut max_id: Option<i64> = None;
        let mut invalid = 0;
        for update in &updates {
            match normalize_for(update, self.me.as_ref()) {
                Normalized::Message {
                    update_id,
                    sender_id,
                    params,
                } => {
                    max_id = Some(max_id.map_or(update_id, |m| m.max(update_id)));
                    let direct = params.get("chatType").and_then(Value::as_str) == Some("private");
                    if !self.settings.mentions.admit(direct, &params, &mut self.status) {
                        continue; // confirmed with the batch, never spooled
                    }
                    if self.allowed(&sender_id) {
                        if let Ok(seq) = u64::try_from(update_id) {
                            batch.push((seq, params));
                        }
                    } else {
                        self.refuse(sender_id, &params);
                    }
                }
                Normalized::Action {
                    update_id,
                    sender_id,
                    callback_id,
                    params,
                } => {
                    max_id = Some(max_id.map_or(update_id, |m| m.max(update_id)));
                    if !self.allowed(&sender_id) {
                        // Answered all the same: the refused user's client stops waiting.
                        self.refuse(sender_id, &params);
                        answers.push((callback_id, None));
                    } else if let Ok(seq) = u64::try_from(update_id) {
                        presses.push((seq, params, callback_id));
                    }
                }
                Normalized::StalePress {
                    update_id,
                    callback_id,
                } => {
                    max_id = Some(max_id.map_or(update_id, |m| m.max(update_id)));
                    log::debug!("telegram: a press on a message the bot no longer has (update {update_id})");
                    answers.push((callback_id, Some(STALE_PRESS)));
                }
                Normalized::Skip { update_id, why } => {
                    max_id = Some(max_id.map_or(update_id, |m| m.max(update_id)));
                    log::debug!("telegram: skipping update {update_id}: {why}");
                }
                Normalized::Incomplete { update_id, missing } => {
                    // Confirmed with the rest: it would only come back the same.
                    max_id = Some(max_id.map_or(update_id, |m| m.max(update_id)));
                    log::warn!("telegram: skipping an update that cannot be delivered: {missing}");
                    self.status.last_error = Some(format!("{missing}; skipped"));
                    self.report();
                }
                Normalized::Invalid => {
                    invalid += 1;
                    log::warn!("telegram: ignoring an update without \"update_id\" (it cannot be confirmed)");
                }
            }
        }
        let Some(max_id) = max_id else {
            if invalid == 0 {
                return true;
            }
            // Nothing in the batch can be confirmed, so the next poll would get it again at
            // once: wait like after any failure instead of polling in a hot loop.
            let missing = Missing::new("every update of the getUpdates answer", "update_id");
            self.fail("getUpdates", ApiError::Incomplete(missing), now);
            return false;
        };
        let mut next = max_id + 1;
        let mut whole = true;
        if !batch.is_empty() {
            match self.append_what_fits(batch) {
                Ok((entries, cut)) => {
                    self.status.inbound += entries.len() as u64;
                    if !entries.is_empty() {
                        self.ctx.report(ConnectorEvent::Inbound(entries));
                    }
                    self.report();
                    match cut {
                        Some((last_taken, full)) => {
                            // Only a prefix fitted: confirm up to it; Telegram keeps the rest.
                            next = last_taken + 1;
                            self.spool_refused(&full, now);
                            whole = false;
                        }
                        None => {
                            self.spool_trouble.recovered(now);
                        }
                    }
                }
                Err(e) => {
                    self.spool_refused(&e, now);
                    return false;
                }
            }
        }
        if !presses.is_empty() {
            match self.spool_presses(&mut presses) {
                Ok(()) => answers.extend(presses.into_iter().map(|(_, _, id)| (id, None))),
                Err(e) => {
                    // Telegram keeps them (and what follows) until the spool takes them;
                    // they are answered then.
                    let first = i64::try_from(presses[0].0).unwrap_or(i64::MAX);
                    next = next.min(first);
                    whole = false;
                    self.spool_refused(&e, now);
                }
            }
        }
        for (id, text) in answers {
            self.answer_callback(id, text);
        }
        self.offset = Some(next);
        self.unconfirmed = true;
        let bot = self.bot.as_ref().map_or(0, |(b, _)| *b);
        if let Err(e) = self.offset_file.store(bot, next) {
            // The spool's high-water mark still prevents duplicates after a restart.
            log::warn!("telegram: cannot persist the update offset: {e}");
        }
        whole
    }

    /// Spool presses as `channel.action` entries, under the bot's source with `/actions`
    /// (numbered by update_id, so a press Telegram sends again after a crash is a duplicate
    /// the spool skips), and report them for delivery.
    fn spool_presses(&mut self, presses: &mut [(u64, Map<String, Value>, String)]) -> Result<(), SpoolError> {
        let source = match &self.bot {
            Some((_, s)) => format!("{s}/actions"),
            None => "telegram/actions".to_owned(),
        };
        let batch = presses
            .iter_mut()
            .map(|(seq, p, _)| (*seq, std::mem::take(p)))
            .collect();
        let entries = self
            .spool
            .lock()
            .expect("spool lock")
            .append_kind(&source, Kind::Action, batch)?;
        self.status.inbound += entries.len() as u64;
        if !entries.is_empty() {
            self.ctx.report(ConnectorEvent::Inbound(entries));
        }
        self.report();
        Ok(())
    }

    /// Answer a callback query so the user's client stops waiting (Telegram shows a
    /// spinner until then); a failure only costs the user that spinner.
    fn answer_callback(&mut self, id: String, text: Option<&'static str>) {
        let api = self.api.clone();
        let started = self
            .calls
            .start(move || CallResult::Answered(api.answer_callback(&id, text, SHORT_CALL)));
        if let Err(e) = started {
            log::debug!("telegram: cannot answer a callback query: {e}");
        }
    }

    /// Append the longest prefix of a non-empty `batch` that the spool admits: a batch larger
    /// than the room left would otherwise never fit, not even into an empty spool, and the
    /// connector would stop receiving for good. `Ok` carries the new entries and, when only a
    /// prefix was taken, the update_id of its last item with the reason; `Full` means not
    /// even one fits.
    fn append_what_fits(
        &mut self,
        batch: Vec<(u64, Map<String, Value>)>,
    ) -> Result<(Vec<Entry>, Option<Cut>), SpoolError> {
        let source = self
            .bot
            .as_ref()
            .map_or_else(|| "telegram".to_owned(), |(_, s)| s.clone());
        let mut spool = self.spool.lock().expect("spool lock");
        let room = spool.limits().max_entries.saturating_sub(spool.len());
        let mut take = batch.len().min(room.max(1));
        loop {
            match spool.append(&source, batch[..take].to_vec()) {
                // The byte limit binds: try a shorter prefix.
                Err(SpoolError::Full { .. }) if take > 1 => take /= 2,
                Err(e) => return Err(e),
                Ok(entries) => {
                    let cut = (take < batch.len()).then(|| {
                        let last = i64::try_from(batch[take - 1].0).unwrap_or(i64::MAX);
                        let full = SpoolError::Full {
                            entries: spool.len(),
                            bytes: spool.bytes(),
                            limits: spool.limits(),
                        };
                        (last, full)
                    });
                    return Ok((entries, cut));
                }
            }
        }
    }

    /// The spool refused (part of) a batch: Telegram keeps what was not confirmed, and the
    /// next poll waits as the shared [`SpoolTrouble`] paces it.
    fn spool_refused(&mut self, e: &SpoolError, now: Instant) {
        let keeping = "not confirming updates to Telegram (it keeps them)";
        if let Some(text) = self.spool_trouble.failed(e, keeping, now) {
            self.set_state("backoff", Some(text));
        }
        self.not_before = self.spool_trouble.retry_at().unwrap_or(now);
    }

    /// Report `running` (clearing the last error) unless already running.
    fn mark_running(&mut self) {
        if self.status.state != "running" {
            self.status.last_error = None;
            self.set_state("running", None);
        }
    }

    /// Log a refused sender once, with the exact id to add.
    fn refuse(&mut self, id: String, params: &serde_json::Map<String, Value>) {
        let name = params
            .get("from")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        self.refused.refuse(&id, Some(name));
    }

    fn finish_sends(&mut self, done: Vec<Done>) {
        self.ctx.finish_sends(done);
    }

    /// Confirm what was spooled, give calls in flight a short grace, report `stopped`.
    fn stop(mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        if self.unconfirmed && self.phase == Phase::Poll {
            let api = self.api.clone();
            let offset = self.offset;
            let confirm = self.calls.start(move || {
                let result = api.get_updates(offset, 1, 0, ALLOWED_UPDATES, STOP_GRACE);
                CallResult::Updates {
                    started: Instant::now(),
                    result,
                }
            });
            if let Ok(confirm) = confirm {
                let results = self.calls.results().clone();
                while let Ok((id, _)) = results.recv_deadline(deadline) {
                    if id == confirm {
                        log::debug!("telegram: confirmed offset {offset:?} at stop");
                        break;
                    }
                }
            }
        }
        // Abort the long poll and any send still in flight, so their threads end now and can
        // be joined; nothing they would have returned is needed any more.
        self.api.shutdown();
        self.status.state = "stopped".into();
        self.report();
        self.calls.finish(deadline);
    }
}
