//! `channels.send` for Slack: splitting, pacing, retries.
//!
//! Each job is one `channels.send`; long text becomes several `chat.postMessage` calls in
//! order ([`MAX_MESSAGE_CHARS`] each: Slack recommends at most 4000 characters per message
//! and truncates far longer ones). At most one job per channel is active, so parts and
//! messages to one channel stay in order, and at most [`MAX_ACTIVE`] channels are served at
//! once. Pacing is Slack's "about 1 message per second per channel" (the shared limiter with
//! no burst): a call that waits for it just takes longer. Retries: after a 429 (wait
//! `Retry-After`), and after a connect failure (the request surely never reached Slack; up to
//! [`CONNECT_RETRIES`] times). Never after a timeout or a 5xx: the message may exist.
//!
//! `threadId` (else `replyTo`: in Slack, answering a message means answering in its thread)
//! becomes `thread_ts`. `format` is not translated: Slack renders its own mrkdwn.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::{ApiError, WebApi};
use super::worker::CallResult;
use crate::channels::SendJob;
use crate::channels::calls::{CallId, Calls};
use crate::channels::split::{code_points, split_text};
use crate::channels::telegram::ratelimit::{Limits, RateLimiter};
use crate::protocol::{ErrorBody, ErrorCode};

/// Channels served at once.
const MAX_ACTIVE: usize = 8;
/// Retries after a connect failure.
const CONNECT_RETRIES: u32 = 3;
/// Longest part sent, in characters (Unicode code points).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// HTTP timeout of one chat.postMessage.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A finished send: the job id and the `channels.send` result.
pub type Done = (u64, Result<Value, ErrorBody>);

struct Job {
    id: u64,
    channel: String,
    parts: Vec<String>,
    next: usize,
    message_ids: Vec<String>,
    thread_ts: Option<String>,
    connect_retries: u32,
    not_before: Instant,
    call: Option<CallId>,
}

pub struct Outbound {
    waiting: VecDeque<Job>,
    active: Vec<Job>,
    limiter: RateLimiter,
}

impl Default for Outbound {
    fn default() -> Outbound {
        Outbound {
            waiting: VecDeque::new(),
            active: Vec::new(),
            // 1/s per channel, no burst; Slack publishes no overall limit for posting.
            limiter: RateLimiter::new(Limits {
                chat_interval: Duration::from_secs(1),
                chat_burst: 1,
                global_max: 100,
                global_window: Duration::from_secs(1),
                ..Limits::default()
            }),
        }
    }
}

impl Outbound {
    /// Accept a job, or answer at once when it cannot be sent.
    pub fn enqueue(&mut self, job: SendJob, now: Instant) -> Result<(), Done> {
        let r = job.request;
        let parts = split_text(&r.text, MAX_MESSAGE_CHARS, code_points);
        if parts.is_empty() || r.to.is_empty() {
            return Err((
                job.id,
                Err(ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    "slack: to and text must not be empty",
                )),
            ));
        }
        self.waiting.push_back(Job {
            id: job.id,
            channel: r.to,
            parts,
            next: 0,
            message_ids: Vec::new(),
            thread_ts: r.thread_id.or(r.reply_to),
            connect_retries: 0,
            not_before: now,
            call: None,
        });
        Ok(())
    }

    /// Promote waiting jobs and start the calls that may go now.
    pub fn drive(
        &mut self,
        now: Instant,
        calls: &mut Calls<CallResult>,
        api: &Arc<WebApi>,
        token: &Arc<str>,
    ) -> Vec<Done> {
        let mut i = 0;
        while i < self.waiting.len() && self.active.len() < MAX_ACTIVE {
            if self.active.iter().any(|j| j.channel == self.waiting[i].channel) {
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
            let wait = self.limiter.delay_for(&job.channel, false, now);
            if !wait.is_zero() {
                job.not_before = now + wait;
                continue;
            }
            self.limiter.record(&job.channel, false, now);
            let (api, token) = (api.clone(), token.clone());
            let (channel, text, thread) = (
                job.channel.clone(),
                job.parts[job.next].clone(),
                job.thread_ts.clone(),
            );
            let started = calls.start(move || {
                CallResult::Sent(api.post_message(&token, &channel, &text, thread.as_deref(), SEND_TIMEOUT))
            });
            match started {
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
        self.active.retain(|j| !failed.iter().any(|(id, _)| *id == j.id));
        failed
    }

    /// A chat.postMessage answered. Returns the job's result when the job is finished.
    pub fn on_result(
        &mut self,
        call: CallId,
        result: Result<String, ApiError>,
        now: Instant,
    ) -> Option<Done> {
        let pos = self.active.iter().position(|j| j.call == Some(call))?;
        let job = &mut self.active[pos];
        job.call = None;
        match result {
            Ok(ts) => {
                job.message_ids.push(ts);
                job.next += 1;
                if job.next < job.parts.len() {
                    return None;
                }
                let done = (
                    job.id,
                    Ok(json!({"channel": "slack", "to": job.channel, "messageIds": job.message_ids})),
                );
                self.active.remove(pos);
                Some(done)
            }
            Err(ApiError::RateLimited { retry_after }) => {
                log::warn!(
                    "slack: rate limited sending to {}; retrying in {retry_after:?}",
                    job.channel
                );
                job.not_before = now + retry_after;
                None
            }
            Err(ApiError::Connect(e)) if job.connect_retries < CONNECT_RETRIES => {
                job.connect_retries += 1;
                let delay = Duration::from_secs(1 << job.connect_retries.min(4));
                log::warn!(
                    "slack: could not reach the Web API to send to {} ({e}); retrying in {delay:?}",
                    job.channel
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

    /// Fail every job (the bot token was refused).
    pub fn fail_all(&mut self, body: &ErrorBody) -> Vec<Done> {
        self.active
            .drain(..)
            .chain(self.waiting.drain(..))
            .map(|j| (j.id, Err(body.clone())))
            .collect()
    }
}
