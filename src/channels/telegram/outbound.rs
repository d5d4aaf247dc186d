//! `channels.send` for Telegram: splitting, media, rate limiting, retries.
//!
//! Each job is one `channels.send`; long text becomes several parts sent in order. Files go
//! first, as the messages [`upload::group`] makes of them (albums of one family, the rest
//! alone), with the text as the first one's caption when it fits in 1024 UTF-16 units,
//! else as its own messages right after. At most
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
use super::upload::{self, MAX_CAPTION_UNITS, MediaSend, UPLOAD_LIMIT};
use super::worker::CallResult;
use crate::channels::actions::{self, Action, ActionJob};
use crate::channels::buttons::{self, ButtonLimits, Rows};
use crate::channels::calls::{CallId, Calls};
use crate::channels::fields::Fields;
use crate::channels::media::outgoing::check_limit;
pub use crate::channels::outbound::Done;
use crate::channels::outbound::{
    self, Part, SEND_TIMEOUT, Shape, parts_of, parts_with_buttons, sent_id, upload_timeout,
};
use crate::channels::split::utf16_units;
use crate::channels::{SendJob, TextFormat};
use crate::protocol::{ErrorBody, ErrorCode};

/// Telegram's limit on one message, in UTF-16 code units.
pub const MAX_MESSAGE_UNITS: usize = 4096;

/// Telegram's inline keyboards: 8 buttons a row and about 100 in all (Telegram documents no
/// text limit; 100 characters keeps a button on screen).
const BUTTON_LIMITS: ButtonLimits = ButtonLimits {
    platform: "Telegram",
    max_rows: 100,
    max_per_row: 8,
    max_total: 100,
    max_text: 100,
};

/// The `reply_markup` of buttons: each press comes back as a callback query carrying the
/// button's `action` as its `callback_data`.
fn inline_keyboard(rows: &Rows) -> Value {
    let rows: Vec<Vec<Value>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|b| json!({"text": b.text, "callback_data": b.action}))
                .collect()
        })
        .collect();
    json!({"inline_keyboard": rows})
}

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

/// Telegram's `parse_mode` for a format.
fn mode_of(format: TextFormat) -> Option<&'static str> {
    match format {
        TextFormat::Plain => None,
        TextFormat::Markdown => Some("MarkdownV2"),
        TextFormat::Html => Some("HTML"),
    }
}

/// Telegram's limits on a message and a caption, both in UTF-16 units.
pub(super) const SHAPE: Shape = Shape {
    text_max: MAX_MESSAGE_UNITS,
    caption_max: MAX_CAPTION_UNITS,
    units: utf16_units,
};

/// The parts of a send to Telegram; a sticker takes no caption, so the text then follows it.
fn telegram_parts(
    text: &str,
    files: Vec<crate::channels::media::outgoing::OutFile>,
    buttons: &Rows,
) -> Vec<Part> {
    let mut parts = parts_with_buttons(text, files, buttons, &SHAPE, upload::group);
    if let Some(Part::Files { files, caption }) = parts.first_mut() {
        if caption.is_some() && !upload::takes_caption(files) {
            let text = caption.take().unwrap_or_default();
            parts.extend(parts_of(&text, Vec::new(), &SHAPE, upload::group));
        }
    }
    parts
}

/// The ids of the messages a send made: one Message, or an album's array of them.
fn message_ids(answer: &Value) -> Vec<String> {
    let one = |m: &Value| sent_id("telegram", Fields::new("send answer", m), "message_id");
    match answer {
        Value::Array(messages) => messages.iter().filter_map(one).collect(),
        message => one(message).into_iter().collect(),
    }
}

impl Default for Outbound {
    fn default() -> Outbound {
        Outbound::new(RateLimiter::default())
    }
}

/// Telegram's refusal of an action in the wire vocabulary; `Ok` for an edit that changed
/// nothing ("message is not modified": the message already says it).
fn action_refusal(action: &Action, description: &str) -> Result<(), ErrorBody> {
    let id = action.message_id();
    let lower = description.to_ascii_lowercase();
    if lower.contains("message is not modified") {
        return Ok(());
    }
    if lower.contains("not found") || lower.contains("message_id_invalid") {
        return Err(actions::not_found("telegram", id, description));
    }
    if lower.contains("can't be")
        || lower.contains("not enough rights")
        || lower.contains("message_author_required")
    {
        return Err(actions::forbidden("telegram", id, description));
    }
    if let Action::React { emoji, .. } = action {
        if lower.contains("reaction") {
            return Err(actions::bad_emoji("telegram", emoji, description));
        }
    }
    Err(ErrorBody::new(
        ErrorCode::InvalidRequest,
        format!("telegram: {description}"),
    ))
}

impl Outbound {
    /// Accept an edit, delete or reaction; it waits behind the messages to that chat.
    pub fn enqueue_action(&mut self, job: ActionJob, now: Instant) -> Result<(), Done> {
        let fail = |e| (job.id, Err(e));
        let message_id = Some(job.action.message_id().to_owned());
        parse_id(&message_id, "messageId").map_err(fail)?;
        let mut parse_mode = None;
        if let Action::Edit { text, format, .. } = &job.action {
            let units: usize = text.chars().map(utf16_units).sum();
            if units > MAX_MESSAGE_UNITS {
                return Err(fail(ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "telegram: the edited text is {units} UTF-16 units; a message holds {MAX_MESSAGE_UNITS} (an edit is not split)"
                    ),
                )));
            }
            parse_mode = mode_of(*format);
        }
        let extra = Extra {
            to: job.to.clone(),
            parse_mode,
            thread_id: None,
            reply_to: None,
            plain_retry_used: false,
            migrated: false,
        };
        let key = job.to.clone();
        self.push_action(job, key, extra, now);
        Ok(())
    }

    /// Accept a job, or answer at once when its params cannot be sent to Telegram.
    pub fn enqueue(&mut self, job: SendJob, now: Instant) -> Result<(), Done> {
        let r = job.request;
        let reply_to = parse_id(&r.reply_to, "replyTo").map_err(|e| (job.id, Err(e)))?;
        let thread_id = parse_id(&r.thread_id, "threadId").map_err(|e| (job.id, Err(e)))?;
        let parse_mode = mode_of(r.format);
        check_limit(&job.files, UPLOAD_LIMIT, "Telegram").map_err(|e| (job.id, Err(e.to_body())))?;
        buttons::check(&r.buttons, &BUTTON_LIMITS).map_err(|e| (job.id, Err(e)))?;
        let parts = telegram_parts(&r.text, job.files, &r.buttons);
        let extra = Extra {
            to: r.to.clone(),
            parse_mode,
            thread_id,
            reply_to,
            plain_retry_used: false,
            migrated: false,
        };
        self.push(Job::new(job.id, r.to, parts, extra, now).with_buttons(r.buttons));
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
            let reply_to = if job.next == 0 { job.extra.reply_to } else { None };
            let api = api.clone();
            match &job.parts[job.next] {
                Part::Text(text) => {
                    let msg = SendMessage {
                        chat_id: job.key.clone(),
                        text: text.clone(),
                        parse_mode: job.extra.parse_mode,
                        message_thread_id: job.extra.thread_id,
                        reply_to_message_id: reply_to,
                        reply_markup: job.buttons_now().map(inline_keyboard),
                    };
                    calls.start(move || CallResult::Sent(api.send_message(&msg, SEND_TIMEOUT)))
                }
                Part::Action(action) => {
                    let (chat, action, mode) = (job.key.clone(), action.clone(), job.extra.parse_mode);
                    let id = action.message_id().parse().unwrap_or_default();
                    calls.start(move || CallResult::Sent(api.act(&chat, id, &action, mode, SEND_TIMEOUT)))
                }
                Part::Files { files, caption } => {
                    let send = MediaSend {
                        chat_id: &job.key,
                        files,
                        caption: caption.as_deref(),
                        parse_mode: caption.as_ref().and(job.extra.parse_mode),
                        thread_id: job.extra.thread_id,
                        reply_to,
                    };
                    let (method, form) = send.form();
                    let timeout = upload_timeout(files.iter().map(|f| f.len()).sum());
                    calls.start(move || CallResult::Sent(api.send_media(method, form, timeout)))
                }
            }
        };
        self.start_due(now, pace, start)
    }

    /// A sendMessage answered. Returns the job's result when the job is finished.
    pub fn on_result(&mut self, call: CallId, result: Result<Value, ApiError>, now: Instant) -> Option<Done> {
        let pos = self.answered(call)?;
        let job = &mut self.active[pos];
        if let Part::Action(action) = &job.parts[job.next] {
            let done = match &result {
                Ok(_) => Some(Ok(())),
                Err(ApiError::BadRequest { description })
                    if !(job.extra.parse_mode.is_some() && description.contains("can't parse entities")) =>
                {
                    Some(action_refusal(action, description))
                }
                Err(_) => None,
            };
            if let Some(done) = done {
                let result = done.map(|()| action.result("telegram", &job.extra.to));
                return Some(self.finish(pos, result));
            }
        }
        match result {
            Ok(message) => {
                if !job.part_sent(message_ids(&message)) {
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
