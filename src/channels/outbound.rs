//! The send-job queue shared by the connectors' `channels.send` implementations.
//!
//! Each job is one `channels.send`, split into parts sent in order. Jobs wait in a queue and
//! are promoted to active at most one per destination (its `key`: a chat, channel or route,
//! so parts and messages to one destination stay in order) and at most [`MAX_ACTIVE`] at once.
//! An active job starts its next call when its `not_before` has passed and the platform's
//! pacing allows it. What a platform sends, how it paces and which errors it retries stay in
//! its own `outbound` module; this one keeps the bookkeeping they share.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::channels::actions::{Action, ActionJob};
use crate::channels::buttons::Rows;
use crate::channels::calls::CallId;
use crate::channels::fields::Fields;
use crate::channels::media::outgoing::OutFile;
use crate::channels::split::{Units, split_text};
use crate::protocol::{ErrorBody, ErrorCode};

/// Destinations served at once.
pub const MAX_ACTIVE: usize = 8;
/// Retries after a connect failure.
pub const CONNECT_RETRIES: u32 = 3;
/// HTTP timeout of one send call.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A finished send: the job id and the `channels.send` result.
pub type Done = (u64, Result<Value, ErrorBody>);

/// One platform message a job sends.
#[derive(Clone, Debug)]
pub enum Part {
    Text(String),
    /// Files in one message (several: an album), with the caption, if any.
    Files {
        files: Vec<OutFile>,
        caption: Option<String>,
    },
    /// An edit, delete or reaction: the whole of an action job.
    Action(Action),
}

impl Part {
    /// The text of a text part; the caption (or "") of a files part.
    pub fn text(&self) -> &str {
        match self {
            Part::Text(t) => t,
            Part::Files { caption, .. } => caption.as_deref().unwrap_or(""),
            Part::Action(_) => "",
        }
    }
}

/// The limits that shape a send into parts, the platform's.
pub struct Shape {
    /// Longest text message.
    pub text_max: usize,
    /// Longest caption of a files message.
    pub caption_max: usize,
    /// How the platform counts length.
    pub units: Units,
}

/// The parts of a `channels.send`: the text alone, split at `text_max`; or with files, the
/// files grouped into messages by `group` (platform rules: which kinds may share an album,
/// how many), the text as the caption of the first when it fits in `caption_max`, else
/// after them as text parts (so the text is never cut into a caption and a rest).
pub fn parts_of(
    text: &str,
    files: Vec<OutFile>,
    shape: &Shape,
    group: impl FnOnce(Vec<OutFile>) -> Vec<Vec<OutFile>>,
) -> Vec<Part> {
    let texts = || {
        split_text(text, shape.text_max, shape.units)
            .into_iter()
            .map(Part::Text)
    };
    if files.is_empty() {
        return texts().collect();
    }
    let length: usize = text.chars().map(shape.units).sum();
    let as_caption = !text.trim().is_empty() && length <= shape.caption_max;
    let mut parts: Vec<Part> = group(files)
        .into_iter()
        .map(|files| Part::Files { files, caption: None })
        .collect();
    if as_caption {
        if let Some(Part::Files { caption, .. }) = parts.first_mut() {
            *caption = Some(text.to_owned());
        }
    } else if !text.trim().is_empty() {
        parts.extend(texts());
    }
    parts
}

/// The parts of a send with `buttons`: as [`parts_of`], except that with buttons the text
/// never becomes a caption but goes last as its own message, the one that carries them (a
/// platform's album or file upload cannot). A send without buttons is [`parts_of`]'s.
pub fn parts_with_buttons(
    text: &str,
    files: Vec<OutFile>,
    buttons: &Rows,
    shape: &Shape,
    group: impl FnOnce(Vec<OutFile>) -> Vec<Vec<OutFile>>,
) -> Vec<Part> {
    if buttons.is_empty() || files.is_empty() {
        return parts_of(text, files, shape, group);
    }
    let mut parts = parts_of("", files, shape, group);
    parts.extend(parts_of(text, Vec::new(), shape, |f| vec![f]));
    parts
}

/// The HTTP timeout of an upload of `bytes`: the text timeout plus a second per 256 KiB
/// (a 50 MB file gets about 3.5 minutes, an uplink of 256 KB/s), at most 15 minutes.
pub fn upload_timeout(bytes: u64) -> Duration {
    let secs = SEND_TIMEOUT.as_secs() + bytes / (256 * 1024);
    Duration::from_secs(secs.min(15 * 60))
}

/// One `channels.send` in the queue: the shared progress, plus the platform's `extra`.
pub struct Job<X> {
    pub id: u64,
    /// The destination: one active job per key.
    pub key: String,
    pub parts: Vec<Part>,
    /// The part sent next.
    pub next: usize,
    pub message_ids: Vec<String>,
    pub connect_retries: u32,
    pub not_before: Instant,
    pub call: Option<CallId>,
    /// `buttons` of the send, carried by its last message.
    pub buttons: Rows,
    pub extra: X,
}

impl<X> Job<X> {
    pub fn new(id: u64, key: String, parts: Vec<Part>, extra: X, now: Instant) -> Job<X> {
        Job {
            id,
            key,
            parts,
            next: 0,
            message_ids: Vec::new(),
            connect_retries: 0,
            not_before: now,
            call: None,
            buttons: Rows::new(),
            extra,
        }
    }

    /// The job with `buttons` on its last message.
    pub fn with_buttons(mut self, buttons: Rows) -> Job<X> {
        self.buttons = buttons;
        self
    }

    /// The buttons the part sent next carries: the send's, on its last part.
    pub fn buttons_now(&self) -> Option<&Rows> {
        (!self.buttons.is_empty() && self.next + 1 == self.parts.len()).then_some(&self.buttons)
    }

    /// The part went out as the messages `message_ids` (one, or an album's). True when it
    /// was the last part. None (`Option::None`): the platform said it was sent but gave no
    /// usable id; the part counts as sent (sending it again would post it twice) and is
    /// missing from `message_ids`.
    pub fn part_sent(&mut self, message_ids: impl IntoIterator<Item = String>) -> bool {
        self.message_ids.extend(message_ids);
        self.next += 1;
        self.next >= self.parts.len()
    }

    /// Whether a connect failure may be retried.
    pub fn may_retry_connect(&self) -> bool {
        self.connect_retries < CONNECT_RETRIES
    }

    /// Count a connect retry and wait before it (2, 4, 8… s). Returns the wait.
    pub fn retry_connect(&mut self, now: Instant) -> Duration {
        self.connect_retries += 1;
        let delay = Duration::from_secs(1 << self.connect_retries.min(4));
        self.not_before = now + delay;
        delay
    }

    /// The job's error: `body`, saying what was sent already when parts went out.
    pub fn failure(&self, mut body: ErrorBody) -> ErrorBody {
        if self.next > 0 {
            body.message = format!(
                "{} (after sending {} of {} parts, message ids {})",
                body.message,
                self.next,
                self.parts.len(),
                self.message_ids.join(",")
            );
        }
        body
    }
}

/// The id of a message the platform says it sent, read at `path` of its answer (`answer`
/// names the call). An answer without it gives `None` and a warning naming the field: the
/// message went out, so the send still succeeds (failing it would invite a retry that posts
/// it twice), only without that id in `messageIds`.
pub fn sent_id(channel: &str, answer: Fields<'_>, path: &str) -> Option<String> {
    match answer.id(path) {
        Ok(id) => Some(id),
        Err(missing) => {
            log::warn!("{channel}: {missing}; the message was sent, but its id is not in messageIds");
            None
        }
    }
}

/// The queue: waiting and active jobs with platform extras `X`, and the platform's pacing `L`.
pub struct Outbound<X, L> {
    pub(crate) waiting: VecDeque<Job<X>>,
    pub(crate) active: Vec<Job<X>>,
    pub(crate) limits: L,
}

impl<X, L> Outbound<X, L> {
    pub fn new(limits: L) -> Outbound<X, L> {
        Outbound {
            waiting: VecDeque::new(),
            active: Vec::new(),
            limits,
        }
    }

    /// Queue a job.
    pub fn push(&mut self, job: Job<X>) {
        self.waiting.push_back(job);
    }

    /// Queue an edit, delete or reaction to the destination `key`: a job of one
    /// [`Part::Action`], so it waits behind the messages to that destination.
    pub fn push_action(&mut self, job: ActionJob, key: String, extra: X, now: Instant) {
        self.push(Job::new(job.id, key, vec![Part::Action(job.action)], extra, now));
    }

    /// Promote waiting jobs and start the calls that may go now. `pace` returns how long a job
    /// must still wait (and, when it returns zero, records the call as made); `start` starts
    /// the job's next call. Jobs whose call cannot start are finished with an error.
    pub fn start_due(
        &mut self,
        now: Instant,
        mut pace: impl FnMut(&mut L, &Job<X>) -> Duration,
        mut start: impl FnMut(&Job<X>) -> std::io::Result<CallId>,
    ) -> Vec<Done> {
        let mut i = 0;
        while i < self.waiting.len() && self.active.len() < MAX_ACTIVE {
            if self.active.iter().any(|j| j.key == self.waiting[i].key) {
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
            let wait = pace(&mut self.limits, job);
            if !wait.is_zero() {
                job.not_before = now + wait;
                continue;
            }
            match start(job) {
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

    /// The active job whose call this is (its call cleared: it answered), by position.
    pub fn answered(&mut self, call: CallId) -> Option<usize> {
        let pos = self.active.iter().position(|j| j.call == Some(call))?;
        self.active[pos].call = None;
        Some(pos)
    }

    /// Remove the active job at `pos` with its result.
    pub fn finish(&mut self, pos: usize, result: Result<Value, ErrorBody>) -> Done {
        (self.active.remove(pos).id, result)
    }

    /// When the next waiting call may start, if one is waiting on time.
    pub fn next_wake(&self) -> Option<Instant> {
        self.active
            .iter()
            .filter(|j| j.call.is_none())
            .map(|j| j.not_before)
            .min()
    }

    /// Fail every job (the connector cannot send: its token was refused).
    pub fn fail_all(&mut self, body: &ErrorBody) -> Vec<Done> {
        self.active
            .drain(..)
            .chain(self.waiting.drain(..))
            .map(|j| (j.id, Err(body.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A platform that says "sent" without an id: the part is not sent again, and a later
    /// failure still counts it.
    #[test]
    fn a_part_sent_without_an_id_counts_as_sent() {
        let parts = ["a", "b", "c"].map(|t| Part::Text(t.to_owned())).to_vec();
        let mut job = Job::new(1, "chat".into(), parts, (), Instant::now());
        let answer = json!({"ok": true});
        assert!(!job.part_sent(sent_id("test", Fields::new("send answer", &answer), "id")));
        let answer = json!({"id": 7});
        assert!(!job.part_sent(sent_id("test", Fields::new("send answer", &answer), "id")));
        assert_eq!(job.message_ids, ["7"]);
        let body = job.failure(ErrorBody::new(ErrorCode::Unavailable, "down"));
        assert!(
            body.message.contains("after sending 2 of 3 parts"),
            "{}",
            body.message
        );
        assert!(job.part_sent(None), "the last part");
    }
}
