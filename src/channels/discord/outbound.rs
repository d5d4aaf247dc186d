//! `channels.send` for Discord: splitting at 2000 code points, files, rate-limit buckets,
//! retries. Files go as one message (multipart `payload_json` + `files[i]`, streamed), the
//! text as its content when it fits in 2000 code points, else as messages after it.
//!
//! Shaped like the Telegram sender: one job per `channels.send`, at most one active job per
//! channel (parts stay in order), at most [`MAX_ACTIVE`](crate::channels::outbound::MAX_ACTIVE) channels at once, each HTTP call on
//! its own short thread. Waits, before Discord has to say 429: the bucket of the route
//! (`X-RateLimit-Remaining` 0 → wait `Reset-After`), the global 50 requests/s, and after a
//! global 429 every route. Retries: after a 429 (wait `retry_after`, float seconds; at most
//! [`MAX_RATE_RETRIES`] times) and after a connect failure (up to [`CONNECT_RETRIES`](crate::channels::outbound::CONNECT_RETRIES) times).
//! Never after a timeout or a 5xx: the message may have been posted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::{MAX_RETRY_AFTER, RateInfo, RestApi, RestError};
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
use crate::protocol::{ErrorBody, ErrorCode};

/// Retries after 429s, per part.
const MAX_RATE_RETRIES: u32 = 5;
/// Discord's limit on one message, in code points.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Discord's upload limit per file for a bot outside boosted servers: 10 MiB. A server that
/// allows less answers 413, which is `PAYLOAD_TOO_LARGE` too.
pub const UPLOAD_LIMIT: u64 = 10 * 1024 * 1024;
/// Text and caption (a message's content) have the same limit.
pub(super) const SHAPE: Shape = Shape {
    text_max: MAX_MESSAGE_CHARS,
    caption_max: MAX_MESSAGE_CHARS,
    units: code_points,
};
/// Global limit: requests per second per bot.
const GLOBAL_PER_SECOND: usize = 50;
/// Forget bucket state past this many routes (only expired entries go).
const MAX_TRACKED: usize = 1024;

/// A job's Discord side. Its key is the route: the channel posted into, `threadId` when given
/// (a thread is a channel), else `to`.
pub struct Extra {
    to: String,
    reply_to: Option<String>,
    rate_retries: u32,
}

type Job = outbound::Job<Extra>;

impl Job {
    /// The create-message body of the next part; a files part lists its files in
    /// `attachments` (the multipart form carries them as `files[i]`).
    fn body(&self) -> Value {
        let part = &self.parts[self.next];
        let mut body = json!({"allowed_mentions": {"parse": []}});
        if !part.text().is_empty() {
            body["content"] = json!(part.text());
        }
        if let Part::Files { files, .. } = part {
            let listed: Vec<Value> = files
                .iter()
                .enumerate()
                .map(|(i, f)| json!({"id": i, "filename": f.name}))
                .collect();
            body["attachments"] = Value::Array(listed);
        }
        if let Some(rows) = self.buttons_now() {
            body["components"] = components(rows);
        }
        if self.next == 0 {
            if let Some(id) = &self.extra.reply_to {
                // A reply to a message deleted meanwhile still delivers the answer.
                body["message_reference"] = json!({"message_id": id, "fail_if_not_exists": false});
            }
        }
        body
    }
}

/// Discord's message components: 5 action rows of 5 buttons, labels of 80 characters.
const BUTTON_LIMITS: ButtonLimits = ButtonLimits {
    platform: "Discord",
    max_rows: 5,
    max_per_row: 5,
    max_total: 25,
    max_text: 80,
};

/// Buttons as action rows (type 1) of primary buttons (type 2, style 1) whose `custom_id`
/// is the `action` a press reports.
fn components(rows: &Rows) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let buttons: Vec<Value> = row
                .iter()
                .map(|b| json!({"type": 2, "style": 1, "label": b.text, "custom_id": b.action}))
                .collect();
            json!({"type": 1, "components": buttons})
        })
        .collect();
    Value::Array(rows)
}

pub(super) fn snowflake(value: &str, what: &str) -> Result<String, ErrorBody> {
    if !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("{what} {value:?} is not a Discord id (a snowflake of digits)"),
        ))
    }
}

/// Rate-limit state learned from the headers, and the global limits.
#[derive(Default)]
pub struct Buckets {
    route_bucket: HashMap<String, String>,
    /// Per bucket (or route, before its bucket is known): exhausted until this instant.
    exhausted_until: HashMap<String, Instant>,
    global_until: Option<Instant>,
    recent: VecDeque<Instant>,
}

impl Buckets {
    fn key<'a>(&'a self, route: &'a str) -> &'a str {
        self.route_bucket.get(route).map_or(route, String::as_str)
    }

    /// How long a request on `route` must wait at `now`.
    pub fn delay(&mut self, route: &str, now: Instant) -> Duration {
        while self
            .recent
            .front()
            .is_some_and(|&t| t + Duration::from_secs(1) <= now)
        {
            self.recent.pop_front();
        }
        let mut wait = Duration::ZERO;
        if self.recent.len() >= GLOBAL_PER_SECOND {
            wait = (self.recent[0] + Duration::from_secs(1)).saturating_duration_since(now);
        }
        if let Some(g) = self.global_until {
            wait = wait.max(g.saturating_duration_since(now));
        }
        if let Some(&until) = self.exhausted_until.get(self.key(route)) {
            wait = wait.max(until.saturating_duration_since(now));
        }
        wait
    }

    /// A request on `route` starts at `now`.
    pub fn record(&mut self, now: Instant) {
        self.recent.push_back(now);
        while self.recent.len() > GLOBAL_PER_SECOND {
            self.recent.pop_front();
        }
    }

    /// Learn from an answer's headers.
    pub fn update(&mut self, route: &str, rate: &RateInfo, now: Instant) {
        if let Some(bucket) = &rate.bucket {
            self.route_bucket.insert(route.to_owned(), bucket.clone());
        }
        let key = self.key(route).to_owned();
        match (rate.remaining, rate.reset_after) {
            (Some(0), Some(after)) => {
                self.exhausted_until.insert(key, now + after);
            }
            (Some(_), _) => {
                self.exhausted_until.remove(&key);
            }
            _ => {}
        }
        if self.exhausted_until.len() > MAX_TRACKED {
            self.exhausted_until.retain(|_, until| *until > now);
        }
        if self.route_bucket.len() > MAX_TRACKED {
            self.route_bucket.clear();
        }
    }

    /// A 429: the route's bucket (or every route, when global) waits `after`.
    pub fn limited(&mut self, route: &str, global: bool, after: Duration, now: Instant) {
        if global {
            self.global_until = Some(now + after);
        } else {
            let key = self.key(route).to_owned();
            self.exhausted_until.insert(key, now + after);
        }
    }
}

pub type Outbound = outbound::Outbound<Extra, Buckets>;

impl Default for Outbound {
    fn default() -> Outbound {
        Outbound::new(Buckets::default())
    }
}

impl Outbound {
    /// Accept a job, or answer at once when its params cannot be sent to Discord.
    pub fn enqueue(&mut self, job: SendJob, now: Instant) -> Result<(), Done> {
        let r = job.request;
        let fail = |e| (job.id, Err(e));
        check_limit(&job.files, UPLOAD_LIMIT, "Discord").map_err(|e| fail(e.to_body()))?;
        let to = snowflake(&r.to, "to").map_err(fail)?;
        let route = match &r.thread_id {
            Some(t) => snowflake(t, "threadId").map_err(fail)?,
            None => to.clone(),
        };
        let reply_to = r
            .reply_to
            .as_deref()
            .map(|id| snowflake(id, "replyTo"))
            .transpose()
            .map_err(fail)?;
        // One message carries up to 10 files (what `channels.send` allows), the text as its
        // content when it fits.
        buttons::check(&r.buttons, &BUTTON_LIMITS).map_err(fail)?;
        let parts = parts_with_buttons(&r.text, job.files, &r.buttons, &SHAPE, |files| vec![files]);
        if parts
            .iter()
            .all(|p| matches!(p, Part::Text(t) if t.trim().is_empty()))
        {
            return Err(fail(ErrorBody::new(
                ErrorCode::InvalidRequest,
                "text is empty; Discord does not send empty messages",
            )));
        }
        let extra = Extra {
            to,
            reply_to,
            rate_retries: 0,
        };
        self.push(Job::new(job.id, route, parts, extra, now).with_buttons(r.buttons));
        Ok(())
    }

    /// Accept an edit, delete or reaction; it waits behind the messages to that channel.
    pub fn enqueue_action(&mut self, job: ActionJob, now: Instant) -> Result<(), Done> {
        let fail = |e| (job.id, Err(e));
        let route = snowflake(&job.to, "to").map_err(fail)?;
        snowflake(job.action.message_id(), "messageId").map_err(fail)?;
        if let Action::Edit { text, .. } = &job.action {
            let chars = text.chars().count();
            if chars > MAX_MESSAGE_CHARS {
                return Err(fail(ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "discord: the edited text is {chars} code points; a message holds {MAX_MESSAGE_CHARS} (an edit is not split)"
                    ),
                )));
            }
        }
        let extra = Extra {
            to: job.to.clone(),
            reply_to: None,
            rate_retries: 0,
        };
        self.push_action(job, route, extra, now);
        Ok(())
    }

    /// Promote waiting jobs and start the calls that may go now.
    pub fn drive(&mut self, now: Instant, calls: &mut Calls<CallResult>, api: &Arc<RestApi>) -> Vec<Done> {
        let pace = |buckets: &mut Buckets, job: &Job| {
            let wait = buckets.delay(&job.key, now);
            if wait.is_zero() {
                buckets.record(now);
            }
            wait
        };
        let start = |job: &Job| {
            let api = api.clone();
            let (route, body) = (job.key.clone(), job.body());
            match &job.parts[job.next] {
                Part::Action(action) => {
                    let action = action.clone();
                    calls.start(move || {
                        let (result, rate) = api.act(&route, &action, SEND_TIMEOUT);
                        CallResult::Sent { result, rate }
                    })
                }
                Part::Text(_) => calls.start(move || {
                    let (result, rate) = api.create_message(&route, &body, SEND_TIMEOUT);
                    CallResult::Sent { result, rate }
                }),
                Part::Files { files, .. } => {
                    let files = files.clone();
                    let timeout = upload_timeout(files.iter().map(|f| f.len()).sum());
                    calls.start(move || {
                        let (result, rate) = api.create_message_with_files(&route, &body, &files, timeout);
                        CallResult::Sent { result, rate }
                    })
                }
            }
        };
        self.start_due(now, pace, start)
    }

    /// A create-message call answered. Returns the job's result when the job is finished.
    pub fn on_result(
        &mut self,
        call: CallId,
        result: Result<Value, RestError>,
        rate: &RateInfo,
        now: Instant,
    ) -> Option<Done> {
        let pos = self.answered(call)?;
        let job = &mut self.active[pos];
        self.limits.update(&job.key, rate, now);
        if let Part::Action(action) = &job.parts[job.next] {
            let id = action.message_id();
            let done = match &result {
                Ok(_) => Some(Ok(action.result("discord", &job.extra.to))),
                Err(RestError::NotFound { message, .. }) => {
                    Some(Err(actions::not_found("discord", id, message)))
                }
                Err(RestError::Forbidden { message, .. }) => {
                    Some(Err(actions::forbidden("discord", id, message)))
                }
                // 50005: "Cannot edit a message authored by another user".
                Err(RestError::Invalid { code: 50005, message }) => {
                    Some(Err(actions::forbidden("discord", id, message)))
                }
                Err(RestError::Invalid { code: 10014, message }) => match action {
                    Action::React { emoji, .. } => Some(Err(actions::bad_emoji("discord", emoji, message))),
                    _ => None,
                },
                Err(_) => None,
            };
            if let Some(done) = done {
                return Some(self.finish(pos, done));
            }
        }
        let result = match result {
            Ok(message) => {
                let id = sent_id("discord", Fields::new("create message answer", &message), "id");
                if !job.part_sent(id) {
                    return None;
                }
                Ok(json!({"channel": "discord", "to": job.extra.to, "messageIds": job.message_ids}))
            }
            Err(RestError::RateLimited {
                retry_after, global, ..
            }) if job.extra.rate_retries < MAX_RATE_RETRIES && retry_after <= MAX_RETRY_AFTER => {
                job.extra.rate_retries += 1;
                log::warn!(
                    "discord: {}rate limited sending to {}; retrying in {:.3}s",
                    if global { "globally " } else { "" },
                    job.key,
                    retry_after.as_secs_f64()
                );
                self.limits.limited(&job.key, global, retry_after, now);
                job.not_before = now + retry_after;
                return None;
            }
            Err(e @ RestError::Connect(_)) if job.may_retry_connect() => {
                let delay = job.retry_connect(now);
                log::warn!(
                    "discord: could not reach the API to send to {} ({e}); retrying in {delay:?}",
                    job.key
                );
                return None;
            }
            Err(e) => Err(job.failure(e.to_error_body())),
        };
        Some(self.finish(pos, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{SendRequest, TextFormat};

    fn job(id: u64, to: &str, text: &str, reply_to: Option<&str>) -> SendJob {
        SendJob {
            id,
            request: SendRequest {
                channel: "discord".into(),
                to: to.into(),
                text: text.into(),
                reply_to: reply_to.map(str::to_owned),
                thread_id: None,
                format: TextFormat::Plain,
                idempotency_key: None,
                buttons: Vec::new(),
                attachments: Vec::new(),
            },
            files: Vec::new(),
        }
    }

    #[test]
    fn bad_ids_and_empty_text_are_refused_at_once() {
        let now = Instant::now();
        let mut o = Outbound::default();
        let (_, r) = o.enqueue(job(1, "../gateway", "x", None), now).unwrap_err();
        assert_eq!(r.unwrap_err().code, ErrorCode::InvalidRequest);
        let (_, r) = o.enqueue(job(2, "1", "x", Some("abc")), now).unwrap_err();
        assert_eq!(r.unwrap_err().code, ErrorCode::InvalidRequest);
        let (_, r) = o.enqueue(job(3, "1", "  ", None), now).unwrap_err();
        assert_eq!(r.unwrap_err().code, ErrorCode::InvalidRequest);
        assert!(o.enqueue(job(4, "1", "hi", Some("5")), now).is_ok());
        let j = &o.waiting[0];
        assert_eq!(
            j.body(),
            json!({"content": "hi", "allowed_mentions": {"parse": []},
                   "message_reference": {"message_id": "5", "fail_if_not_exists": false}})
        );
    }

    #[test]
    fn buckets_wait_for_reset_and_global() {
        let t0 = Instant::now();
        let mut b = Buckets::default();
        assert_eq!(b.delay("1", t0), Duration::ZERO);
        let info = RateInfo {
            bucket: Some("abc".into()),
            remaining: Some(0),
            reset_after: Some(Duration::from_millis(800)),
        };
        b.update("1", &info, t0);
        assert_eq!(b.delay("1", t0), Duration::from_millis(800));
        assert_eq!(b.delay("2", t0), Duration::ZERO);
        // Another route in the same bucket shares the wait once known.
        b.update(
            "2",
            &RateInfo {
                remaining: None,
                ..info.clone()
            },
            t0,
        );
        assert_eq!(b.delay("2", t0), Duration::from_millis(800));
        b.limited("3", true, Duration::from_secs(2), t0);
        assert_eq!(b.delay("9", t0), Duration::from_secs(2));
        let t1 = t0 + Duration::from_secs(3);
        for _ in 0..GLOBAL_PER_SECOND {
            assert_eq!(b.delay("9", t1), Duration::ZERO);
            b.record(t1);
        }
        assert_eq!(b.delay("9", t1), Duration::from_secs(1));
    }
}
