//! The Discord connector thread (`emonk-discord`): gateway events in, sends out.
//!
//! It owns no socket. The gateway thread ([`GatewayHandle`]) reports READY, RESUMED, each
//! MESSAGE_CREATE and its troubles over a channel; sends run as HTTP calls on short threads
//! ([`Calls`]), like Telegram's. So this loop is always free for `Stop`, probes and sends.
//!
//! Inbound: a MESSAGE_CREATE not written by the bot itself is normalized, checked against
//! `allowFrom`, and appended to the spool before the router hears of it. The spool source is
//! `discord/<bot id>/<channel id>` with the message id (a snowflake) as sequence number:
//! snowflakes rise within one channel, but two channels' messages can arrive in either order,
//! and a per-bot mark would then skip the later-arriving older one as a "duplicate".
//! Discord has no offset to confirm: a message the gateway delivered is ours to keep. While
//! the spool refuses it (full, or a failing disk) it is held in memory and retried, in
//! order ([`Inbox`]); only past the hold's bound, or at a stop, is a message lost, and that
//! is logged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use serde_json::Value;

use super::api::{RateInfo, RestApi, RestError};
use super::gateway::{GatewayHandle, GwEvent};
use super::normalize::{Normalized, Press, normalize, normalize_edit, press};
use super::outbound::{Done, Outbound, snowflake};
use crate::channels::calls::Calls;
use crate::channels::inbox::{HOLD_MAX, Inbox, Seq, Written};
use crate::channels::media::MediaError;
use crate::channels::media::cache::CachedFile;
use crate::channels::mention::MentionGate;
use crate::channels::status::Refused;
use crate::channels::typing::{self, Keepalive, TypingJob};
use crate::channels::{ChannelStatus, ConnectorCommand, ConnectorContext};
use crate::protocol::{ErrorBody, ErrorCode};
use crate::spool::{Kind, Spool};

/// `lastError` once messages arrive without content.
pub const CONTENT_HINT: &str = "messages arrive with empty content: enable the Message Content intent (MESSAGE_CONTENT) for this bot in the Discord Developer Portal (Bot > Privileged Gateway Intents)";
/// How long a stop waits for the gateway thread and calls in flight.
const STOP_GRACE: Duration = Duration::from_millis(1200);
/// Discord's typing lasts about 10 s: it is triggered again a little before.
const TYPING_EVERY: Duration = Duration::from_secs(8);
/// Timeout of a typing trigger.
const TYPING_CALL: Duration = Duration::from_secs(10);
/// Timers never sleep longer than this.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Timeout of an interaction callback: Discord wants the answer within 3 s of the press.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(2500);

/// The result of one HTTP call.
pub enum CallResult {
    Sent {
        result: Result<Value, RestError>,
        rate: RateInfo,
    },
    /// A `channels.fetch` job finished.
    Fetched {
        job: u64,
        result: Result<CachedFile, MediaError>,
    },
    /// A typing trigger answered: a `channels.typing` job's first (`job`), or a renewal.
    Typing {
        job: Option<u64>,
        key: String,
        result: Result<(), RestError>,
    },
    /// An interaction callback answered (nothing waits for it).
    Answered(Result<Value, RestError>),
}

pub struct Worker {
    api: Arc<RestApi>,
    token: String,
    allow_from: Vec<String>,
    /// `requireMention`: guild messages must mention the bot.
    mentions: MentionGate,
    /// The way into the spool; holds messages while the spool refuses writes.
    inbox: Inbox,
    ctx: ConnectorContext,
    status: ChannelStatus,
    bot_id: Option<String>,
    unauthorized: bool,
    content_warned: bool,
    refused: Refused,
    calls: Calls<CallResult>,
    outbound: Outbound,
    /// Channels whose typing indicator is kept up.
    typing: Keepalive,
    /// Kept so the event channel never disconnects (a disconnected receiver would make the
    /// select below spin after the gateway thread ended).
    gw_tx: Sender<GwEvent>,
    gw_rx: Receiver<GwEvent>,
}

impl Worker {
    pub fn new(
        api: RestApi,
        token: String,
        allow_from: Vec<String>,
        mentions: MentionGate,
        spool: Arc<Mutex<Spool>>,
        ctx: ConnectorContext,
    ) -> Worker {
        let (gw_tx, gw_rx) = crossbeam_channel::unbounded();
        Worker {
            api: Arc::new(api),
            token,
            allow_from,
            mentions,
            inbox: Inbox::new("discord", spool),
            ctx,
            status: ChannelStatus::new("discord", "starting"),
            bot_id: None,
            unauthorized: false,
            content_warned: false,
            refused: Refused::new("discord", module_path!()),
            calls: Calls::new("emonk-discord-http"),
            outbound: Outbound::default(),
            typing: Keepalive::new(TYPING_EVERY),
            gw_tx,
            gw_rx,
        }
    }

    pub fn run(mut self) {
        self.report();
        let gateway = match GatewayHandle::spawn(self.api.clone(), self.token.clone(), self.gw_tx.clone()) {
            Ok(g) => Some(g),
            Err(e) => {
                log::error!("discord: cannot start the gateway thread: {e}");
                self.set_state("fatal", Some(format!("cannot start the gateway thread: {e}")));
                None
            }
        };
        let commands = self.ctx.commands.clone();
        let results = self.calls.results().clone();
        let events = self.gw_rx.clone();
        loop {
            let now = Instant::now();
            let failed = self.outbound.drive(now, &mut self.calls, &self.api);
            self.finish_sends(failed);
            let held = self.inbox.retry(now);
            self.written(held);
            for renewal in self.typing.due(now) {
                self.trigger_typing(None, renewal.key);
            }
            let wake = [
                self.outbound.next_wake(),
                self.inbox.retry_at(),
                self.typing.next_wake(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + MAX_SLEEP)
            .max(now);
            select! {
                recv(commands) -> cmd => match cmd {
                    Ok(ConnectorCommand::Typing(job)) => self.start_typing(job),
                    Ok(ConnectorCommand::TypingOff { to, thread_id }) => {
                        self.typing.stop(thread_id.as_ref().unwrap_or(&to));
                    }
                    Ok(ConnectorCommand::Act(job)) => {
                        if self.unauthorized {
                            self.finish_sends(vec![(job.id, Err(unauthorized_body()))]);
                        } else if let Err(done) = self.outbound.enqueue_action(job, Instant::now()) {
                            self.finish_sends(vec![done]);
                        }
                    }
                    Ok(ConnectorCommand::Send(job)) => {
                        // A message ends the indicator on Discord's side too.
                        self.typing.stop(job.request.thread_id.as_ref().unwrap_or(&job.request.to));
                        if self.unauthorized {
                            self.finish_sends(vec![(job.id, Err(unauthorized_body()))]);
                        } else if let Err(done) = self.outbound.enqueue(job, Instant::now()) {
                            self.finish_sends(vec![done]);
                        }
                    }
                    Ok(ConnectorCommand::Fetch(job)) => {
                        let api = self.api.clone();
                        crate::channels::fetch::start(
                            &mut self.calls,
                            &self.ctx,
                            "discord",
                            job,
                            move |job| super::fetch::fetch(&api, job),
                            |job, result| CallResult::Fetched { job, result },
                        );
                    }
                    Ok(ConnectorCommand::Probe(p)) => p.answer(),
                    Ok(ConnectorCommand::Stop) | Err(_) => break,
                },
                recv(events) -> e => if let Ok(e) = e { self.on_gateway(e) },
                recv(results) -> r => match r {
                    Ok((id, CallResult::Sent { result, rate })) => {
                        if result.is_ok() {
                            self.status.outbound += 1;
                            self.report();
                        }
                        if let Some(done) = self.outbound.on_result(id, result, &rate, Instant::now()) {
                            self.finish_sends(vec![done]);
                        }
                    }
                    Ok((_, CallResult::Fetched { job, result })) => self.ctx.finish_fetch(job, result),
                    Ok((_, CallResult::Typing { job, key, result })) => {
                        let result = result.map_err(|e| e.to_error_body());
                        typing::on_result(&mut self.typing, &self.ctx, "discord", job, &key, result);
                    }
                    Ok((_, CallResult::Answered(result))) => {
                        if let Err(e) = result {
                            log::warn!("discord: answering a button press failed: {e}");
                        }
                    }
                    Err(_) => {}
                },
                recv(crossbeam_channel::at(wake)) -> _ => {}
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        self.api.shutdown();
        if let Some(g) = gateway {
            g.stop(deadline);
        }
        self.inbox.abandon();
        self.status.state = "stopped".into();
        self.report();
        self.calls.finish(deadline);
    }

    fn report(&self) {
        self.ctx.report_status(&self.status);
    }

    fn set_state(&mut self, state: &str, error: Option<String>) {
        self.status.set_state(state, error);
        self.report();
    }

    /// `running`, with the last error cleared (but the content hint kept: it stays true).
    fn mark_running(&mut self) {
        self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
        self.status.last_error = self.content_warned.then(|| CONTENT_HINT.to_owned());
        self.set_state("running", None);
    }

    fn on_gateway(&mut self, event: GwEvent) {
        match event {
            GwEvent::Ready {
                user_id,
                username,
                warning,
            } => {
                log::info!(
                    "discord: connected as {} (id {user_id})",
                    username.as_deref().unwrap_or("(no username)")
                );
                self.status.account = username;
                self.bot_id = Some(user_id);
                self.mark_running();
                if let Some(warning) = warning {
                    self.status.last_error = Some(warning);
                    self.report();
                }
            }
            GwEvent::Resumed => self.mark_running(),
            GwEvent::Message(d) => {
                self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
                self.on_message(normalize(&d, self.bot_id.as_deref()), false);
            }
            GwEvent::Edited(d) => {
                self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
                self.on_message(normalize_edit(&d, self.bot_id.as_deref()), true);
            }
            GwEvent::Interaction(d) => {
                self.status.last_poll_ms = Some(crate::procinfo::unix_ms());
                if let Some(press) = press(&d) {
                    self.on_press(press);
                }
            }
            GwEvent::Trouble(why) => self.set_state("backoff", Some(why)),
            GwEvent::Fatal { state, error } => {
                if state == "unauthorized" {
                    self.unauthorized = true;
                    let failed = self.outbound.fail_all(&unauthorized_body());
                    self.finish_sends(failed);
                }
                self.set_state(state, Some(error));
            }
        }
    }

    /// A press: answered first (Discord wants it within 3 s, and the user's client waits
    /// for it whatever becomes of the press), then spooled as a `channel.action` unless the
    /// sender is refused. Its own source per channel, numbered by the interaction id, so a
    /// replay after Resume is a duplicate the spool skips.
    fn on_press(&mut self, press: Press) {
        let api = self.api.clone();
        let (id, token) = (press.id_text.clone(), press.token.clone());
        let started = self
            .calls
            .start(move || CallResult::Answered(api.answer_interaction(&id, &token, ANSWER_TIMEOUT).0));
        if let Err(e) = started {
            log::warn!("discord: cannot answer a button press: {e}");
        }
        if !self.allow_from.iter().any(|a| a == "*" || *a == press.sender_id) {
            let name = press.params["from"]["name"].as_str().unwrap_or("");
            self.refused.refuse(&press.sender_id, Some(name));
            return;
        }
        let chat = press.params["chatId"].as_str().unwrap_or_default().to_owned();
        let bot = self.bot_id.as_deref().unwrap_or("0");
        let source = format!("discord/{bot}/{chat}/actions");
        match self.inbox.push_kind(
            source,
            Kind::Action,
            Seq::Given(press.id),
            press.params,
            Instant::now(),
        ) {
            Ok(written) => self.written(written),
            Err(_) => log::error!(
                "discord: a press in channel {chat} from {} is lost: {HOLD_MAX} entries are already held while the spool refuses writes",
                press.sender_id
            ),
        }
    }

    /// A normalized MESSAGE_CREATE, or an edit of one (`edited`).
    fn on_message(&mut self, normalized: Normalized, edited: bool) {
        let (id, sender_id, params) = match normalized {
            Normalized::Message {
                id,
                sender_id,
                params,
            } => (id, sender_id, params),
            Normalized::Own => return,
            Normalized::Skip(why) => {
                log::debug!("discord: skipping a message: {why}");
                return;
            }
            Normalized::Incomplete(missing) => {
                // Discord does not redeliver: this one is lost, the rest keeps flowing.
                log::warn!("discord: skipping a message that cannot be delivered: {missing}");
                self.status.last_error = Some(format!("{missing}; skipped"));
                self.report();
                return;
            }
            Normalized::NoContent { sender_id } => {
                if !self.content_warned {
                    self.content_warned = true;
                    log::warn!(
                        "discord: a message from {sender_id} arrived with empty content; {CONTENT_HINT}"
                    );
                    self.status.last_error = Some(CONTENT_HINT.to_owned());
                    self.report();
                }
                return;
            }
        };
        let direct = params.get("chatType").and_then(Value::as_str) == Some("dm");
        if !self.mentions.admit(direct, &params, &mut self.status) {
            return self.report();
        }
        if !self.allow_from.iter().any(|a| a == "*" || *a == sender_id) {
            let name = params["from"]["name"].as_str().unwrap_or("");
            self.refused.refuse(&sender_id, Some(name));
            return;
        }
        let chat = params["chatId"].as_str().unwrap_or_default().to_owned();
        let bot = self.bot_id.as_deref().unwrap_or("0");
        // An edit keeps its message's id, which the spool has seen: edits are their own
        // source, numbered by the edit's time (and the id's low digits, for two edits in one
        // millisecond), so each is delivered once and a replay after Resume is not.
        let (source, seq) = if edited {
            let ms = params["ts"].as_u64().unwrap_or(0);
            (
                format!("discord/{bot}/{chat}/edits"),
                ms.saturating_mul(1000) + id % 1000,
            )
        } else {
            (format!("discord/{bot}/{chat}"), id)
        };
        match self.inbox.push(source, Seq::Given(seq), params, Instant::now()) {
            Ok(written) => self.written(written),
            Err(_) => {
                log::error!(
                    "discord: message {id} in channel {chat} from {sender_id} is lost: {HOLD_MAX} messages are already held while the spool refuses writes (Discord does not redeliver)"
                );
            }
        }
    }

    /// Report what the inbox spooled, and its trouble or recovery.
    fn written(&mut self, written: Written) {
        let calm = self.content_warned.then(|| CONTENT_HINT.to_owned());
        written.report(&mut self.status, &self.ctx, calm);
    }

    /// `channels.typing`: show the indicator in the channel (or the thread, which is a
    /// channel) now and keep it up (see `channels::typing`).
    fn start_typing(&mut self, job: TypingJob) {
        if self.unauthorized {
            return self.finish_sends(vec![(job.id, Err(unauthorized_body()))]);
        }
        let r = &job.request;
        let route = r.thread_id.as_deref().unwrap_or(&r.to);
        let what = if r.thread_id.is_some() { "threadId" } else { "to" };
        let route = match snowflake(route, what) {
            Ok(route) => route,
            Err(e) => return self.finish_sends(vec![(job.id, Err(e))]),
        };
        self.typing
            .start(route.clone(), r.action, None, job.ttl, Instant::now());
        self.trigger_typing(Some(job.id), route);
    }

    fn trigger_typing(&mut self, job: Option<u64>, route: String) {
        let api = self.api.clone();
        let key = route.clone();
        let started = self.calls.start(move || CallResult::Typing {
            job,
            result: api.trigger_typing(&route, TYPING_CALL),
            key: route,
        });
        if let Err(e) = started {
            let body = ErrorBody::retryable(
                ErrorCode::Unavailable,
                format!("cannot start the call: {e}"),
                None,
            );
            typing::on_result(&mut self.typing, &self.ctx, "discord", job, &key, Err(body));
        }
    }

    fn finish_sends(&mut self, done: Vec<Done>) {
        self.ctx.finish_sends(done);
    }
}

fn unauthorized_body() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Unavailable,
        "the discord bot token was refused; fix channels.discord.token",
    )
}
