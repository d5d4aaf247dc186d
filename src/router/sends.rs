//! `channels.send`: hand the message to its connector, answer the caller when the connector
//! reports back, and remember answers by `idempotencyKey` for ten minutes so a retried call
//! returns the first result instead of sending again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Router;
use super::methods::params;
use crate::bus::ConnId;
use crate::channels::actions::{Action, ActionJob, DeleteRequest, EditRequest, ReactRequest};
use crate::channels::media::outgoing;
use crate::channels::typing::{TypingJob, TypingRequest};
use crate::channels::{ConnectorCommand, SendJob, SendRequest};
use crate::protocol::{ErrorBody, ErrorCode, frames};
use serde_json::value::RawValue;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(600);
/// Remembered keys at most; the oldest go first beyond this.
const IDEMPOTENCY_MAX: usize = 10_000;

/// Who waits for a send: the connection and its request id.
pub(super) type SendWaiter = (ConnId, String);

/// Finished sends by key (sends in flight are in the router's [`super::flights::Flights`]).
#[derive(Default)]
pub(super) struct Idempotency {
    done: HashMap<String, (Instant, Result<Value, ErrorBody>)>,
}

impl Idempotency {
    fn prune(&mut self, now: Instant) {
        self.done
            .retain(|_, (at, _)| now.duration_since(*at) < IDEMPOTENCY_TTL);
        if self.done.len() > IDEMPOTENCY_MAX {
            let mut by_age: Vec<(Instant, String)> =
                self.done.iter().map(|(k, (at, _))| (*at, k.clone())).collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(self.done.len() - IDEMPOTENCY_MAX) {
                self.done.remove(&k);
            }
        }
    }
}

fn reply_frame(request_id: &str, result: &Result<Value, ErrorBody>) -> String {
    match result {
        Ok(v) => frames::response_ok(request_id, v),
        Err(e) => frames::response_error(request_id, e),
    }
}

/// The job of a `channels.edit`, `channels.delete` or `channels.react` call, numbered `id`.
pub(super) fn action_job(method: &str, raw: Option<&RawValue>, id: u64) -> Result<ActionJob, ErrorBody> {
    match method {
        "channels.edit" => {
            let r: EditRequest = params(method, raw)?;
            let action = Action::Edit {
                message_id: r.message_id,
                text: r.text,
                format: r.format,
            };
            ActionJob::new(id, r.channel, r.to, action)
        }
        "channels.delete" => {
            let r: DeleteRequest = params(method, raw)?;
            ActionJob::new(
                id,
                r.channel,
                r.to,
                Action::Delete {
                    message_id: r.message_id,
                },
            )
        }
        _ => {
            let r: ReactRequest = params(method, raw)?;
            let action = Action::React {
                message_id: r.message_id,
                emoji: r.emoji,
                remove: r.remove,
            };
            ActionJob::new(id, r.channel, r.to, action)
        }
    }
}

impl Router {
    /// Start a send; the answer comes later through [`Router::on_send_done`].
    pub(super) fn channels_send(&mut self, conn: ConnId, request_id: String, mut request: SendRequest) {
        let reply_now = |router: &Router, result: Result<Value, ErrorBody>| {
            router.out.send_frame(conn, reply_frame(&request_id, &result));
        };
        if !request.buttons.is_empty() && request.text.trim().is_empty() {
            return reply_now(
                self,
                Err(ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    "buttons need a text to go with (the message that carries them)",
                )),
            );
        }
        if request.text.is_empty() && request.attachments.is_empty() {
            return reply_now(
                self,
                Err(ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    "text must not be empty (it may be, as a caption, when attachments are given)",
                )),
            );
        }
        let now = Instant::now();
        self.idempotency.prune(now);
        let key = request
            .idempotency_key
            .as_ref()
            .map(|k| format!("{}\u{0}{k}", request.channel));
        if let Some(key) = &key {
            if let Some((_, result)) = self.idempotency.done.get(key) {
                return reply_now(self, result.clone());
            }
            // In flight: wait for its result rather than send again.
            if self.sends.join(key, (conn, request_id.clone())).is_ok() {
                return;
            }
        }
        if !self.connectors.contains_key(request.channel.as_str()) {
            return reply_now(self, Err(super::channel_not_enabled(&request.channel)));
        }
        // Opening files is quick (the policy opens non-blocking), and doing it here refuses a
        // bad path before the connector queues anything.
        let files = if request.attachments.is_empty() {
            Vec::new()
        } else {
            let list = std::mem::take(&mut request.attachments);
            match outgoing::prepare(list, &self.settings.send_dirs) {
                Ok(files) => files,
                Err(e) => return reply_now(self, Err(e.to_body())),
            }
        };
        let id = self.sends.next_id();
        let channel = request.channel.clone();
        let command = ConnectorCommand::Send(SendJob { id, request, files });
        self.hand_over(conn, request_id, &channel, id, key, command);
    }

    /// Hand a `channels.typing` to its connector; the answer comes back like a send's.
    pub(super) fn channels_typing(&mut self, conn: ConnId, request_id: String, request: TypingRequest) {
        let ttl = match request.ttl() {
            Ok(ttl) => ttl,
            Err(e) => {
                let body = ErrorBody::new(ErrorCode::InvalidRequest, e);
                return self.out.send_frame(conn, reply_frame(&request_id, &Err(body)));
            }
        };
        let id = self.sends.next_id();
        let channel = request.channel.clone();
        let command = ConnectorCommand::Typing(TypingJob { id, request, ttl });
        self.hand_over(conn, request_id, &channel, id, None, command);
    }

    /// Hand an edit, delete or reaction to its connector; the answer comes back like a send's.
    pub(super) fn channels_act(&mut self, conn: ConnId, request_id: String, job: ActionJob) {
        let (id, channel) = (job.id, job.channel.clone());
        self.hand_over(conn, request_id, &channel, id, None, ConnectorCommand::Act(job));
    }

    /// Give `command` (job `id`) to `channel`'s connector and wait for its `SendDone`, or
    /// answer at once when that connector is not running.
    fn hand_over(
        &mut self,
        conn: ConnId,
        request_id: String,
        channel: &str,
        id: u64,
        key: Option<String>,
        command: ConnectorCommand,
    ) {
        let refused = match self.connectors.get(channel) {
            None => Some(super::channel_not_enabled(channel)),
            Some(slot) if slot.commands.send(command).is_err() => Some(ErrorBody::retryable(
                ErrorCode::Unavailable,
                "the connector has stopped",
                None,
            )),
            Some(_) => None,
        };
        match refused {
            Some(body) => self.out.send_frame(conn, reply_frame(&request_id, &Err(body))),
            None => self.sends.begin(id, key, (conn, request_id)),
        }
    }

    /// A connector finished a send: answer every waiting caller, remember it by key.
    pub(super) fn on_send_done(&mut self, id: u64, result: Result<Value, ErrorBody>) {
        let Some((key, waiters)) = self.sends.land(id) else {
            return;
        };
        for (conn, request_id) in &waiters {
            self.out.send_frame(*conn, reply_frame(request_id, &result));
        }
        if let Some(key) = key {
            // The first result is final, errors included: after a timeout mid-request the
            // message may have gone out, and sending again could duplicate it.
            self.idempotency.done.insert(key, (Instant::now(), result));
        }
    }

    /// Fail every send still waiting (at shutdown).
    pub(super) fn fail_sends(&mut self, why: &str) {
        let body = ErrorBody::retryable(ErrorCode::Unavailable, why, None);
        for (conn, request_id) in self.sends.drain() {
            self.out
                .send_frame(conn, frames::response_error(&request_id, &body));
        }
    }
}
