//! `channels.send` for Telegram: splitting, rate limiting, retries.
//!
//! Each job is one `channels.send`; long text becomes several parts sent in order. At most
//! one job per chat is active (so parts and messages to one chat stay in order) and at most
//! [`MAX_ACTIVE`](crate::channels::outbound::MAX_ACTIVE) chats are served at once. The limiter spaces sends (about 1/s per chat with a
//! small burst, 30/s overall, 20/min per group): a call that waits for it just takes longer.
//! Retries: after a 429 (wait `retry_after`), after a connect failure (the request surely
//! never reached Telegram; up to [`CONNECT_RETRIES`](crate::channels::outbound::CONNECT_RETRIES) times), once as plain text when Telegram
//! rejects the formatting, and once to the new chat id after a supergroup migration. Never
//! after a timeout or reset mid-request: the message may have been delivered.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::api::{ApiError, BotApi, SendMessage};
use super::ratelimit::RateLimiter;
use super::worker::CallResult;
use crate::channels::calls::{CallId, Calls};
use crate::channels::fields::Fields;
pub use crate::channels::outbound::Done;
use crate::channels::outbound::{self, SEND_TIMEOUT, sent_id};
use crate::channels::split::{split_text, utf16_units};
use crate::channels::{SendJob, TextFormat};
use crate::protocol::{ErrorBody, ErrorCode};

/// Telegram's limit on one message, in UTF-16 code units.
pub const MAX_MESSAGE_UNITS: usize = 4096;

/// A job's Telegram side; its key is the chat sent to (the new id after a migration).
pub struct Extra {
    to: String,
    parse_mode: Option<&'static str>,
    thread_id: Option<i64>,
    reply_to: Option<i64>,
    plain_retry_used: bool,
    migrated: bool,
}

type Job = outbound::Job<Extra>;

fn is_group(job: &Job) -> bool {
    super::ratelimit::is_group_chat(&job.key)
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

pub type Outbound = outbound::Outbound<Extra, RateLimiter>;

impl Default for Outbound {
    fn default() -> Outbound {
        Outbound::new(RateLimiter::default())
    }
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
        let parts = split_text(&r.text, MAX_MESSAGE_UNITS, utf16_units);
        let extra = Extra {
            to: r.to.clone(),
            parse_mode,
            thread_id,
            reply_to,
            plain_retry_used: false,
            migrated: false,
        };
        self.push(Job::new(job.id, r.to, parts, extra, now));
        Ok(())
    }

    /// Promote waiting jobs and start the calls that may go now.
    pub fn drive(&mut self, now: Instant, calls: &mut Calls<CallResult>, api: &Arc<BotApi>) -> Vec<Done> {
        let pace = |limiter: &mut RateLimiter, job: &Job| {
            let wait = limiter.delay_for(&job.key, is_group(job), now);
            if wait.is_zero() {
                limiter.record(&job.key, is_group(job), now);
            }
            wait
        };
        let start = |job: &Job| {
            let msg = SendMessage {
                chat_id: job.key.clone(),
                text: job.parts[job.next].clone(),
                parse_mode: job.extra.parse_mode,
                message_thread_id: job.extra.thread_id,
                reply_to_message_id: if job.next == 0 { job.extra.reply_to } else { None },
            };
            let api = api.clone();
            calls.start(move || CallResult::Sent(api.send_message(&msg, SEND_TIMEOUT)))
        };
        self.start_due(now, pace, start)
    }

    /// A sendMessage answered. Returns the job's result when the job is finished.
    pub fn on_result(&mut self, call: CallId, result: Result<Value, ApiError>, now: Instant) -> Option<Done> {
        let pos = self.answered(call)?;
        let job = &mut self.active[pos];
        match result {
            Ok(message) => {
                let id = sent_id(
                    "telegram",
                    Fields::new("sendMessage answer", &message),
                    "message_id",
                );
                if !job.part_sent(id) {
                    return None;
                }
                let result =
                    json!({"channel": "telegram", "to": job.extra.to, "messageIds": job.message_ids});
                Some(self.finish(pos, Ok(result)))
            }
            Err(ApiError::RateLimited { retry_after, .. }) => {
                log::warn!(
                    "telegram: rate limited sending to {}; retrying in {retry_after:?}",
                    job.key
                );
                job.not_before = now + retry_after;
                None
            }
            Err(ApiError::BadRequest { ref description })
                if job.extra.parse_mode.is_some()
                    && !job.extra.plain_retry_used
                    && description.contains("can't parse entities") =>
            {
                log::info!("telegram rejected the formatting ({description}); sending as plain text");
                job.extra.parse_mode = None;
                job.extra.plain_retry_used = true;
                None
            }
            Err(ApiError::Migrated { to_chat_id, .. }) if !job.extra.migrated => {
                log::info!(
                    "telegram: chat {} migrated to {to_chat_id}; sending there",
                    job.key
                );
                job.key = to_chat_id.to_string();
                job.extra.migrated = true;
                None
            }
            Err(e) if e.is_retryable_send() && job.may_retry_connect() => {
                let delay = job.retry_connect(now);
                log::warn!(
                    "telegram: could not reach the API to send to {} ({e}); retrying in {delay:?}",
                    job.key
                );
                None
            }
            Err(e) => {
                let body = job.failure(e.to_error_body());
                Some(self.finish(pos, Err(body)))
            }
        }
    }
}
