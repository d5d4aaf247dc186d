//! `channels.send` for Telegram: splitting, rate limiting, retries.
//!
//! Each job is one `channels.send`; long text becomes several parts sent in order. At most
//! one job per chat is active (so parts and messages to one chat stay in order) and at most
//! [`MAX_ACTIVE`] chats are served at once. The limiter spaces sends (about 1/s per chat with a
//! small burst, 30/s overall, 20/min per group): a call that waits for it just takes longer.
//! Retries: after a 429 (wait `retry_after`), after a connect failure (the request surely
//! never reached Telegram; up to [`CONNECT_RETRIES`] times), once as plain text when Telegram
//! rejects the formatting, and once to the new chat id after a supergroup migration. Never
//! after a timeout or reset mid-request: the message may have been delivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::{ApiError, BotApi, SendMessage};
use super::ratelimit::RateLimiter;
use super::worker::CallResult;
use crate::channels::calls::{CallId, Calls};
use crate::channels::split::{split_text, utf16_units};
use crate::channels::{SendJob, TextFormat};
use crate::protocol::{ErrorBody, ErrorCode};

/// Chats served at once.
const MAX_ACTIVE: usize = 8;
/// Retries after a connect failure.
const CONNECT_RETRIES: u32 = 3;
/// Telegram's limit on one message, in UTF-16 code units.
pub const MAX_MESSAGE_UNITS: usize = 4096;
/// HTTP timeout of one sendMessage.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A finished send: the job id and the `channels.send` result.
pub type Done = (u64, Result<Value, ErrorBody>);

struct Job {
    id: u64,
    to: String,
    chat: String,
    parts: Vec<String>,
    next: usize,
    message_ids: Vec<String>,
    parse_mode: Option<&'static str>,
    thread_id: Option<i64>,
    reply_to: Option<i64>,
    plain_retry_used: bool,
    migrated: bool,
    connect_retries: u32,
    not_before: Instant,
    call: Option<CallId>,
}

impl Job {
    fn is_group(&self) -> bool {
        super::ratelimit::is_group_chat(&self.chat)
    }

    fn result(&self) -> Value {
        json!({"channel": "telegram", "to": self.to, "messageIds": self.message_ids})
    }
}

fn parse_id(value: &Option<String>, what: &str) -> Result<Option<i64>, ErrorBody> {
    match value {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!("{what} {v:?} is not a Telegram id (an integer)"),
            )
        }),
    }
}

#[derive(Default)]
pub struct Outbound {
    waiting: VecDeque<Job>,
    active: Vec<Job>,
    limiter: RateLimiter,
}

impl Outbound {
    /// Accept a job, or answer at once when its params cannot be sent to Telegram.
    pub fn enqueue(&mut self, job: SendJob, now: Instant) -> Result<(), Done> {
        let r = job.request;
        let reply_to = parse_id(&r.reply_to, "replyTo").map_err(|e| (job.id, Err(e)))?;
        let thread_id = parse_id(&r.thread_id, "threadId").map_err(|e| (job.id, Err(e)))?;
        let parse_mode = match r.format {
            TextFormat::Plain => None,
            TextFormat::Markdown => Some("MarkdownV2"),
            TextFormat::Html => Some("HTML"),
        };
        self.waiting.push_back(Job {
            id: job.id,
            chat: r.to.clone(),
            to: r.to,
            parts: split_text(&r.text, MAX_MESSAGE_UNITS, utf16_units),
            next: 0,
            message_ids: Vec::new(),
            parse_mode,
            thread_id,
            reply_to,
            plain_retry_used: false,
            migrated: false,
            connect_retries: 0,
            not_before: now,
            call: None,
        });
        Ok(())
    }

    /// Promote waiting jobs and start the calls that may go now.
    pub fn drive(&mut self, now: Instant, calls: &mut Calls<CallResult>, api: &Arc<BotApi>) -> Vec<Done> {
        let mut i = 0;
        while i < self.waiting.len() && self.active.len() < MAX_ACTIVE {
            if self.active.iter().any(|j| j.chat == self.waiting[i].chat) {
                i += 1;
                continue;
            }
            let job = self.waiting.remove(i).expect("index in range");
            self.active.push(job);
        }
        let mut failed = Vec::new();
        for job in &mut self.active {
            if job.call.is_some() || now < job.not_before {
                continue;
            }
            let wait = self.limiter.delay_for(&job.chat, job.is_group(), now);
            if !wait.is_zero() {
                job.not_before = now + wait;
                continue;
            }
            self.limiter.record(&job.chat, job.is_group(), now);
            let msg = SendMessage {
                chat_id: job.chat.clone(),
                text: job.parts[job.next].clone(),
                parse_mode: job.parse_mode,
                message_thread_id: job.thread_id,
                reply_to_message_id: if job.next == 0 { job.reply_to } else { None },
            };
            let api = api.clone();
            match calls.start(move || CallResult::Sent(api.send_message(&msg, SEND_TIMEOUT))) {
                Ok(id) => job.call = Some(id),
                Err(e) => failed.push((
                    job.id,
                    Err(ErrorBody::retryable(
                        ErrorCode::Unavailable,
                        format!("cannot start the send: {e}"),
                        None,
                    )),
                )),
            }
        }
        let failed_ids: Vec<u64> = failed.iter().map(|(id, _)| *id).collect();
        self.active.retain(|j| !failed_ids.contains(&j.id));
        failed
    }

    /// A sendMessage answered. Returns the job's result when the job is finished.
    pub fn on_result(&mut self, call: CallId, result: Result<Value, ApiError>, now: Instant) -> Option<Done> {
        let pos = self.active.iter().position(|j| j.call == Some(call))?;
        let job = &mut self.active[pos];
        job.call = None;
        match result {
            Ok(message) => {
                let id = message
                    .get("message_id")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                job.message_ids.push(id);
                job.next += 1;
                if job.next < job.parts.len() {
                    return None;
                }
                let done = (job.id, Ok(job.result()));
                self.active.remove(pos);
                Some(done)
            }
            Err(ApiError::RateLimited { retry_after, .. }) => {
                log::warn!(
                    "telegram: rate limited sending to {}; retrying in {retry_after:?}",
                    job.chat
                );
                job.not_before = now + retry_after;
                None
            }
            Err(ApiError::BadRequest { ref description })
                if job.parse_mode.is_some()
                    && !job.plain_retry_used
                    && description.contains("can't parse entities") =>
            {
                log::info!("telegram rejected the formatting ({description}); sending as plain text");
                job.parse_mode = None;
                job.plain_retry_used = true;
                None
            }
            Err(ApiError::Migrated { to_chat_id, .. }) if !job.migrated => {
                log::info!(
                    "telegram: chat {} migrated to {to_chat_id}; sending there",
                    job.chat
                );
                job.chat = to_chat_id.to_string();
                job.migrated = true;
                None
            }
            Err(e) if e.is_retryable_send() && job.connect_retries < CONNECT_RETRIES => {
                job.connect_retries += 1;
                let delay = Duration::from_secs(1 << job.connect_retries.min(4));
                log::warn!(
                    "telegram: could not reach the API to send to {} ({e}); retrying in {delay:?}",
                    job.chat
                );
                job.not_before = now + delay;
                None
            }
            Err(e) => {
                let mut body = e.to_error_body();
                if !job.message_ids.is_empty() {
                    body.message = format!(
                        "{} (after sending {} of {} parts, message ids {})",
                        body.message,
                        job.message_ids.len(),
                        job.parts.len(),
                        job.message_ids.join(",")
                    );
                }
                let done = (job.id, Err(body));
                self.active.remove(pos);
                Some(done)
            }
        }
    }

    /// When the next waiting call may start, if one is waiting on time.
    pub fn next_wake(&self) -> Option<Instant> {
        self.active
            .iter()
            .filter(|j| j.call.is_none())
            .map(|j| j.not_before)
            .min()
    }

    /// Fail every job (the connector cannot send: unauthorized).
    pub fn fail_all(&mut self, body: &ErrorBody) -> Vec<Done> {
        self.active
            .drain(..)
            .chain(self.waiting.drain(..))
            .map(|j| (j.id, Err(body.clone())))
            .collect()
    }
}
