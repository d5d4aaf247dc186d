//! `channels.send` for Slack: splitting, files, pacing, retries.
//!
//! Files go as one external upload shared in the channel (see [`super::upload`]), the text
//! as its comment when it fits in 4000 characters, else as messages after it.
//! Each job is one `channels.send`; long text becomes several `chat.postMessage` calls in
//! order ([`MAX_MESSAGE_CHARS`] each: Slack recommends at most 4000 characters per message
//! and truncates far longer ones). At most one job per channel is active, so parts and
//! messages to one channel stay in order, and at most [`MAX_ACTIVE`](crate::channels::outbound::MAX_ACTIVE) channels are served at
//! once. Pacing is Slack's "about 1 message per second per channel" (the shared limiter with
//! no burst): a call that waits for it just takes longer. Retries: after a 429 (wait
//! `Retry-After`), and after a connect failure (the request surely never reached Slack; up to
//! [`CONNECT_RETRIES`](crate::channels::outbound::CONNECT_RETRIES) times). Never after a timeout or a 5xx: the message may exist.
//!
//! `threadId` (else `replyTo`: in Slack, answering a message means answering in its thread)
//! becomes `thread_ts`. `format` is not translated: Slack renders its own mrkdwn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::{ApiError, WebApi};
use super::emoji::slack_name;
use super::upload::{UPLOAD_LIMIT, Upload, share_ts};
use super::worker::CallResult;
use crate::channels::SendJob;
use crate::channels::actions::{self, Action, ActionJob};
use crate::channels::buttons::{self, ButtonLimits, Rows};
use crate::channels::calls::{CallId, Calls};
use crate::channels::fields::Fields;
use crate::channels::media::outgoing::check_limit;
pub use crate::channels::outbound::Done;
use crate::channels::outbound::{
    self, Part, SEND_TIMEOUT, Shape, parts_with_buttons, sent_id, upload_timeout,
};
use crate::channels::split::code_points;
use crate::channels::split::split_text;
use crate::channels::telegram::ratelimit::{Limits, RateLimiter};
use crate::protocol::{ErrorBody, ErrorCode};

/// Longest part sent, in characters (Unicode code points).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// A text and a file upload's comment have the same limit.
pub(super) const SHAPE: Shape = Shape {
    text_max: MAX_MESSAGE_CHARS,
    caption_max: MAX_MESSAGE_CHARS,
    units: code_points,
};

/// A job's Slack side; its key is the channel posted to.
pub struct Extra {
    thread_ts: Option<String>,
}

type Job = outbound::Job<Extra>;

pub type Outbound = outbound::Outbound<Extra, RateLimiter>;

impl Default for Outbound {
    fn default() -> Outbound {
        // 1/s per channel, no burst; Slack publishes no overall limit for posting.
        Outbound::new(RateLimiter::new(Limits {
            chat_interval: Duration::from_secs(1),
            chat_burst: 1,
            global_max: 100,
            global_window: Duration::from_secs(1),
            ..Limits::default()
        }))
    }
}

/// Slack's Block Kit: an `actions` block holds 25 elements, a message 50 blocks, a button
/// 75 characters of text.
const BUTTON_LIMITS: ButtonLimits = ButtonLimits {
    platform: "Slack",
    max_rows: 25,
    max_per_row: 25,
    max_total: 100,
    max_text: 75,
};

/// A section block's text holds 3000 characters.
const SECTION_MAX: usize = 3000;

/// The message as blocks: its text in section blocks, then one `actions` block per row.
/// A press reports the button's `value` (the `action`); `action_id`s only need to be
/// unique within the message.
fn blocks(text: &str, rows: &Rows) -> Value {
    let mut blocks: Vec<Value> = split_text(text, SECTION_MAX, code_points)
        .into_iter()
        .map(|t| json!({"type": "section", "text": {"type": "mrkdwn", "text": t}}))
        .collect();
    for (r, row) in rows.iter().enumerate() {
        let elements: Vec<Value> = row
            .iter()
            .enumerate()
            .map(|(b, button)| {
                json!({"type": "button", "action_id": format!("emonk-{r}-{b}"), "value": button.action,
                       "text": {"type": "plain_text", "text": button.text}})
            })
            .collect();
        blocks.push(json!({"type": "actions", "elements": elements}));
    }
    Value::Array(blocks)
}

impl Outbound {
    /// Accept a job, or answer at once when it cannot be sent.
    pub fn enqueue(&mut self, job: SendJob, now: Instant) -> Result<(), Done> {
        check_limit(&job.files, UPLOAD_LIMIT, "Slack").map_err(|e| (job.id, Err(e.to_body())))?;
        let r = job.request;
        // All files go as one upload, the text as its comment when it fits.
        buttons::check(&r.buttons, &BUTTON_LIMITS).map_err(|e| (job.id, Err(e)))?;
        let parts = parts_with_buttons(&r.text, job.files, &r.buttons, &SHAPE, |files| vec![files]);
        if parts.is_empty() || r.to.is_empty() {
            return Err((
                job.id,
                Err(ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    "slack: to and text must not be empty",
                )),
            ));
        }
        let extra = Extra {
            thread_ts: r.thread_id.or(r.reply_to),
        };
        self.push(Job::new(job.id, r.to, parts, extra, now).with_buttons(r.buttons));
        Ok(())
    }

    /// Accept an edit, delete or reaction; it waits behind the messages to that channel.
    pub fn enqueue_action(&mut self, job: ActionJob, now: Instant) -> Result<(), Done> {
        let fail = |e| (job.id, Err(e));
        match &job.action {
            Action::Edit { text, .. } if text.chars().count() > MAX_MESSAGE_CHARS => {
                return Err(fail(ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "slack: the edited text is over {MAX_MESSAGE_CHARS} characters (an edit is not split)"
                    ),
                )));
            }
            Action::React { emoji, .. } if slack_name(emoji).is_none() => {
                return Err(fail(actions::bad_emoji(
                    "slack",
                    emoji,
                    "give a Slack name such as thumbsup, or a common Unicode emoji",
                )));
            }
            _ => {}
        }
        let extra = Extra { thread_ts: None };
        let key = job.to.clone();
        self.push_action(job, key, extra, now);
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
        let pace = |limiter: &mut RateLimiter, job: &Job| {
            let wait = limiter.delay_for(&job.key, false, now);
            if wait.is_zero() {
                limiter.record(&job.key, false, now);
            }
            wait
        };
        let start = |job: &Job| {
            let (api, token) = (api.clone(), token.clone());
            let (channel, text, thread) = (
                job.key.clone(),
                job.parts[job.next].text().to_owned(),
                job.extra.thread_ts.clone(),
            );
            let blocks = job.buttons_now().map(|rows| blocks(&text, rows));
            match &job.parts[job.next] {
                Part::Action(action) => {
                    let action = action.clone();
                    let name = match &action {
                        Action::React { emoji, .. } => slack_name(emoji),
                        _ => None,
                    };
                    calls.start(move || {
                        CallResult::Sent(api.act(&token, &channel, &action, name.as_deref(), SEND_TIMEOUT))
                    })
                }
                Part::Text(_) => calls.start(move || {
                    CallResult::Sent(api.post_message(
                        &token,
                        &channel,
                        &text,
                        thread.as_deref(),
                        blocks.as_ref(),
                        SEND_TIMEOUT,
                    ))
                }),
                Part::Files { files, caption } => {
                    let (files, comment) = (files.clone(), caption.clone());
                    let timeout = upload_timeout(files.iter().map(|f| f.len()).sum());
                    calls.start(move || {
                        let up = Upload {
                            channel: &channel,
                            files: &files,
                            comment: comment.as_deref(),
                            thread_ts: thread.as_deref(),
                        };
                        CallResult::Sent(api.upload_files(&token, &up, timeout))
                    })
                }
            }
        };
        self.start_due(now, pace, start)
    }

    /// A chat.postMessage answered. Returns the job's result when the job is finished.
    pub fn on_result(&mut self, call: CallId, result: Result<Value, ApiError>, now: Instant) -> Option<Done> {
        let pos = self.answered(call)?;
        let job = &mut self.active[pos];
        if let Part::Action(action) = &job.parts[job.next] {
            let id = action.message_id();
            let done = match &result {
                Ok(_) => Some(Ok(())),
                // Asked for what is already so: done.
                Err(ApiError::Other(e)) if e == "already_reacted" || e == "no_reaction" => Some(Ok(())),
                Err(ApiError::NotFound(e)) => Some(Err(actions::not_found("slack", id, e))),
                Err(ApiError::Forbidden(e)) => Some(Err(actions::forbidden("slack", id, e))),
                Err(ApiError::Other(e))
                    if matches!(
                        e.as_str(),
                        "cant_update_message" | "cant_delete_message" | "edit_window_closed"
                    ) =>
                {
                    Some(Err(actions::forbidden("slack", id, e)))
                }
                Err(ApiError::Other(e)) if e == "invalid_name" => match action {
                    Action::React { emoji, .. } => Some(Err(actions::bad_emoji("slack", emoji, e))),
                    _ => None,
                },
                Err(_) => None,
            };
            if let Some(done) = done {
                let result = done.map(|()| action.result("slack", &job.key));
                return Some(self.finish(pos, result));
            }
        }
        match result {
            Ok(answer) => {
                let ts = match &job.parts[job.next] {
                    Part::Text(_) | Part::Action(_) => {
                        sent_id("slack", Fields::new("chat.postMessage answer", &answer), "ts")
                    }
                    Part::Files { .. } => {
                        let ts = share_ts(&answer, &job.key);
                        if ts.is_none() {
                            log::info!(
                                "slack: the files were shared in {}, but Slack did not report the message ts yet; it is not in messageIds",
                                job.key
                            );
                        }
                        ts
                    }
                };
                if !job.part_sent(ts) {
                    return None;
                }
                let result = json!({"channel": "slack", "to": job.key, "messageIds": job.message_ids});
                Some(self.finish(pos, Ok(result)))
            }
            Err(ApiError::RateLimited { retry_after }) => {
                log::warn!(
                    "slack: rate limited sending to {}; retrying in {retry_after:?}",
                    job.key
                );
                job.not_before = now + retry_after;
                None
            }
            Err(ApiError::Connect(e)) if job.may_retry_connect() => {
                let delay = job.retry_connect(now);
                log::warn!(
                    "slack: could not reach the Web API to send to {} ({e}); retrying in {delay:?}",
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
