//! Streamed replies (`channels.stream.open/append/close`), the part every platform shares:
//! what a stream has, which message to post or edit next, when, and what is final.
//!
//! A [`Stream`] is pure state with an injected clock; the router owns one per open stream
//! and turns each [`Op`] it asks for into an ordinary send or edit job for the connector,
//! so stream traffic is paced, retried and ordered with the connector's other sends to that
//! chat (there is no second queue). The rules, from the contract:
//!
//! - Appends only change the text; they never wait. At most one op per stream is in flight,
//!   and while the stream is open a new op starts at most once per
//!   `streamEditIntervalMs`, carrying the text as it is then: drafts in between are skipped,
//!   which is also what a 429 does (the connector holds the op for `retry_after`, and the
//!   next draft after it carries everything appended meanwhile).
//! - The messages are the text cut by [`first_cut`] (the splitter `channels.send` uses):
//!   when the text outgrows the platform's limit, the current message is finished at the cut
//!   (edited to exactly its part, with the stream's format) and frozen, and the rest grows in
//!   a new message. Read in order, the messages are the text.
//! - Closing makes the text final: the ops that make every message match it (posts, edits,
//!   deletes when a replacement text is shorter) go one after another as fast as the
//!   connector's pacing allows. An edit that fails for a retryable reason is tried again
//!   (editing twice to the same text is harmless); a post is not (it may have arrived).
//! - Drafts whose markup is not complete yet go as plain text ([`markup`]).

pub mod markup;

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::TextFormat;
use super::actions::Action;
use super::outbound::Shape;
use super::split::{Units, first_cut};
use crate::protocol::{ErrorBody, ErrorCode};

/// `channels.<name>.streamEditIntervalMs` when the config gives none.
pub const DEFAULT_EDIT_INTERVAL_MS: u64 = 1000;
/// A stream without an append for this long is closed with what it has.
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Testing aid, not a setting: `EMONK_STREAM_IDLE_MS` shortens [`IDLE_CLOSE`] so tests need
/// not wait a minute.
pub const IDLE_ENV: &str = "EMONK_STREAM_IDLE_MS";
/// The longest text one stream holds, in bytes (about 32 Telegram messages).
pub const MAX_TEXT_BYTES: usize = 128 * 1024;
/// Retries of a final edit that failed for a retryable reason.
const FINAL_EDIT_RETRIES: u32 = 3;

/// What a platform's messages allow, and how often a stream may edit there.
#[derive(Clone, Copy, Debug)]
pub struct StreamShape {
    /// Longest message, in `units`.
    pub text_max: usize,
    pub units: Units,
    /// Whether the platform renders `format` (else drafts keep it: nothing to refuse).
    pub formats: bool,
    /// `channels.<name>.streamEditIntervalMs`.
    pub edit_interval: Duration,
}

impl StreamShape {
    /// The shape of a platform whose sends are shaped by `shape`; `formats`: whether it
    /// renders `format` (Telegram's parse modes) rather than ignoring it.
    pub fn of(shape: &Shape, formats: bool, edit_interval: Duration) -> StreamShape {
        StreamShape {
            text_max: shape.text_max,
            units: shape.units,
            formats,
            edit_interval,
        }
    }
}

/// The params of `channels.stream.open`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenRequest {
    pub channel: String,
    pub to: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub format: TextFormat,
}

/// The params of `channels.stream.append`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppendRequest {
    pub stream_id: String,
    pub text: String,
}

/// The params of `channels.stream.close`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloseRequest {
    pub stream_id: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// What the stream needs done on the platform next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Post a new message (`first`: the stream's first, which carries `replyTo`).
    Post {
        text: String,
        format: TextFormat,
        first: bool,
    },
    /// An edit or delete of one of the stream's messages, as `channels.edit` and
    /// `channels.delete` make them (never a reaction).
    Act(Action),
}

/// A message of the stream as it is on the platform.
#[derive(Clone, Debug, PartialEq)]
struct Shown {
    id: String,
    text: String,
    format: TextFormat,
}

/// What one message should say: its text, format, and (for a finished message, one the text
/// continues after) the byte offset in the stream's text where the next message starts.
struct Target {
    text: String,
    format: TextFormat,
    next: Option<usize>,
}

/// The op in flight and what it changes once it succeeds.
struct InFlight {
    op: Op,
    /// The message it posts, edits or deletes (a post: `shown.len()`).
    index: usize,
    /// For an op that finishes a message: where the next one starts.
    freezes_at: Option<usize>,
}

pub struct Stream {
    shape: StreamShape,
    format: TextFormat,
    text: String,
    chars: usize,
    shown: Vec<Shown>,
    /// `shown[..frozen]` are finished; their text ends where `frozen_end` says.
    frozen: usize,
    frozen_end: usize,
    in_flight: Option<InFlight>,
    /// The next op of an open stream starts no earlier than this.
    next_op_at: Instant,
    /// Something changed since the last plan found nothing to do.
    dirty: bool,
    last_append: Instant,
    idle: Duration,
    closing: bool,
    final_retries: u32,
    retry_at: Option<Instant>,
    failed: Option<ErrorBody>,
}

impl Stream {
    /// A stream closed after `idle` without an append.
    pub fn new(shape: StreamShape, format: TextFormat, idle: Duration, now: Instant) -> Stream {
        Stream {
            shape,
            format,
            text: String::new(),
            chars: 0,
            shown: Vec::new(),
            frozen: 0,
            frozen_end: 0,
            in_flight: None,
            next_op_at: now,
            dirty: false,
            last_append: now,
            idle,
            closing: false,
            final_retries: 0,
            retry_at: None,
            failed: None,
        }
    }

    /// Add `text`; the characters so far, or why not: the stream failed on the platform
    /// (its error), or the text would pass [`MAX_TEXT_BYTES`].
    pub fn append(&mut self, text: &str, now: Instant) -> Result<usize, ErrorBody> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        if self.text.len() + text.len() > MAX_TEXT_BYTES {
            return Err(ErrorBody::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "a stream holds at most {MAX_TEXT_BYTES} bytes of text; close this one and open another for the rest"
                ),
            ));
        }
        self.text.push_str(text);
        self.chars += text.chars().count();
        self.last_append = now;
        self.dirty |= !text.is_empty();
        Ok(self.chars)
    }

    /// Make the text final: what was appended, or `replacement`.
    pub fn close(&mut self, replacement: Option<String>) {
        self.closing = true;
        self.dirty = true;
        if let Some(text) = replacement {
            // Finished messages stay when the replacement still begins with their text;
            // otherwise every message is brought in line with the new text.
            if !text.starts_with(&self.text[..self.frozen_end]) {
                self.frozen = 0;
                self.frozen_end = 0;
            }
            self.chars = text.chars().count();
            self.text = text;
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn chars(&self) -> usize {
        self.chars
    }

    /// When the stream closes for lack of appends (open streams only).
    pub fn idle_deadline(&self) -> Option<Instant> {
        (!self.closing).then_some(self.last_append + self.idle)
    }

    /// When [`Stream::next_op`] may have something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        if self.in_flight.is_some() || self.failed.is_some() || !self.dirty {
            return None;
        }
        if self.closing {
            return Some(self.retry_at.unwrap_or(self.last_append));
        }
        Some(self.next_op_at)
    }

    /// The op to start now, if one is due; it is in flight until [`Stream::on_done`].
    pub fn next_op(&mut self, now: Instant) -> Option<Op> {
        if self.in_flight.is_some() || self.failed.is_some() || !self.dirty {
            return None;
        }
        let due = if self.closing {
            self.retry_at.is_none_or(|at| at <= now)
        } else {
            self.next_op_at <= now
        };
        if !due {
            return None;
        }
        let Some(flight) = self.plan() else {
            self.dirty = false;
            return None;
        };
        let op = flight.op.clone();
        self.in_flight = Some(flight);
        self.retry_at = None;
        if !self.closing {
            self.next_op_at = now + self.shape.edit_interval;
        }
        Some(op)
    }

    /// The op in flight finished: `Ok` with the platform's answer (a post's
    /// `{"messageIds":[..]}`), or the error.
    pub fn on_done(&mut self, result: Result<Value, ErrorBody>, now: Instant) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        self.dirty = true;
        let result = match (&flight.op, result) {
            // Gone already is what a delete wants.
            (Op::Act(Action::Delete { .. }), Err(e)) if e.code == ErrorCode::NotFound => Ok(Value::Null),
            (_, result) => result,
        };
        match result {
            Ok(answer) => self.applied(flight, &answer),
            Err(e) => self.refused(&flight.op, e, now),
        }
    }

    fn applied(&mut self, flight: InFlight, answer: &Value) {
        match flight.op {
            Op::Post { text, format, .. } => {
                let id = answer["messageIds"].get(0).and_then(Value::as_str);
                let Some(id) = id else {
                    self.failed = Some(ErrorBody::new(
                        ErrorCode::Unavailable,
                        "the platform posted the stream's message without giving its id, so it cannot be edited",
                    ));
                    return;
                };
                self.shown.push(Shown {
                    id: id.to_owned(),
                    text,
                    format,
                });
            }
            Op::Act(Action::Edit { text, format, .. }) => {
                let shown = &mut self.shown[flight.index];
                shown.text = text;
                shown.format = format;
            }
            Op::Act(Action::Delete { .. }) => {
                self.shown.remove(flight.index);
            }
            Op::Act(Action::React { .. }) => {} // never planned: a stream does not react
        }
        if let Some(next) = flight.freezes_at {
            self.frozen = flight.index + 1;
            self.frozen_end = next;
        }
    }

    fn refused(&mut self, op: &Op, e: ErrorBody, now: Instant) {
        let is_edit = matches!(op, Op::Act(Action::Edit { .. }));
        if is_edit && e.retryable && !self.closing {
            // The next draft edits again with newer text.
            log::debug!("stream draft edit failed ({}); the next draft retries", e.message);
            return;
        }
        if is_edit && e.retryable && self.final_retries < FINAL_EDIT_RETRIES {
            self.final_retries += 1;
            let delay = Duration::from_secs(1 << (self.final_retries - 1));
            log::warn!(
                "a stream's final edit failed ({}); retrying in {delay:?}",
                e.message
            );
            self.retry_at = Some(now + delay);
            return;
        }
        self.failed = Some(e);
    }

    /// Closed and nothing left to do (done, or failed).
    pub fn is_finished(&self) -> bool {
        self.closing && self.in_flight.is_none() && (self.failed.is_some() || !self.dirty)
    }

    /// The ids of the stream's messages, in order.
    pub fn message_ids(&self) -> Vec<String> {
        self.shown.iter().map(|s| s.id.clone()).collect()
    }

    /// The answer to `channels.stream.close` once finished.
    pub fn result(&self, channel: &str, to: &str) -> Result<Value, ErrorBody> {
        let ids = self.message_ids();
        match &self.failed {
            None => Ok(json!({"channel": channel, "to": to, "messageIds": ids})),
            Some(e) => {
                let mut body = e.clone();
                body.message = format!(
                    "{} (the stream's messages so far: [{}])",
                    body.message,
                    ids.join(",")
                );
                Err(body)
            }
        }
    }

    /// The messages the text makes now: the frozen ones as they are, then the rest cut at
    /// the platform's limit. The last part is a draft unless the stream is closing.
    fn targets(&self) -> Vec<Target> {
        let mut targets: Vec<Target> = self.shown[..self.frozen]
            .iter()
            .map(|s| Target {
                text: s.text.clone(),
                format: s.format,
                next: None,
            })
            .collect();
        let mut start = self.frozen_end;
        loop {
            let rest = &self.text[start..];
            // A continuation starts after the whitespace the cut dropped (more of it may
            // have been appended since).
            let rest_trimmed = rest.trim_start();
            start += rest.len() - rest_trimmed.len();
            if rest_trimmed.trim_end().is_empty() {
                break;
            }
            match first_cut(rest_trimmed, self.shape.text_max, self.shape.units) {
                Some((end, next)) => {
                    targets.push(Target {
                        text: rest_trimmed[..end].to_owned(),
                        format: self.format,
                        next: Some(start + next),
                    });
                    start += next;
                }
                None => {
                    let as_is =
                        self.closing || !self.shape.formats || markup::is_complete(rest_trimmed, self.format);
                    let format = if as_is { self.format } else { TextFormat::Plain };
                    targets.push(Target {
                        text: rest_trimmed.to_owned(),
                        format,
                        next: None,
                    });
                    break;
                }
            }
        }
        targets
    }

    /// The first op that brings the platform closer to the targets. While open, only the
    /// messages up to the first unfinished one are touched, and nothing is deleted. A message
    /// that already says exactly its finished part is frozen here, without a call.
    fn plan(&mut self) -> Option<InFlight> {
        let targets = self.targets();
        for (index, target) in targets.iter().enumerate() {
            let freezes_at = target.next;
            let op = match self.shown.get(index) {
                None => Op::Post {
                    text: target.text.clone(),
                    format: target.format,
                    first: index == 0,
                },
                Some(shown) if shown.text != target.text || shown.format != target.format => {
                    Op::Act(Action::Edit {
                        message_id: shown.id.clone(),
                        text: target.text.clone(),
                        format: target.format,
                    })
                }
                Some(_) => {
                    if let (Some(next), true) = (freezes_at, index >= self.frozen) {
                        self.frozen = index + 1;
                        self.frozen_end = next;
                    }
                    continue;
                }
            };
            return Some(InFlight {
                op,
                index,
                freezes_at,
            });
        }
        let extra = self.shown.get(targets.len())?;
        self.closing.then(|| InFlight {
            op: Op::Act(Action::Delete {
                message_id: extra.id.clone(),
            }),
            index: targets.len(),
            freezes_at: None,
        })
    }
}

#[cfg(test)]
mod tests;
