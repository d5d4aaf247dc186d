//! `channels.stream.open/append/close`: the router's side of streamed replies.
//!
//! The router keeps every open stream (its owner, destination and [`Stream`] state) because
//! a stream outlives no connection but must survive the connector's pace: appends answer at
//! once from here, and each op the stream asks for becomes an ordinary `Send` or `Act` job
//! for the connector, numbered like sends and answered by the same `SendDone`. So stream
//! traffic shares the connector's one queue, its pacing and its retries with everything
//! else sent to that chat.
//!
//! Bounds: [`MAX_PER_CLIENT`] open streams per connection, [`stream::MAX_TEXT_BYTES`] of text
//! each, and a stream without an append for [`stream::IDLE_CLOSE`] is closed with what it
//! has, as is every stream of a connection that goes away. A gateway stop finalizes the open
//! streams for at most [`STOP_BUDGET`] before the connectors are told to stop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::json;
use serde_json::value::RawValue;

use super::Router;
use super::methods::params;
use super::sends::SendWaiter;
use crate::bus::{ConnId, ToRouter};
use crate::channels::actions::ActionJob;
use crate::channels::stream::{self, AppendRequest, CloseRequest, Op, OpenRequest, Stream};
use crate::channels::typing::{TypingAction, TypingJob, TypingRequest};
use crate::channels::{ConnectorCommand, SendJob, SendRequest};
use crate::protocol::{ErrorBody, ErrorCode, frames};

/// Open streams one connection may have.
pub const MAX_PER_CLIENT: usize = 64;
/// How long a stop waits for open streams' final text.
pub const STOP_BUDGET: Duration = Duration::from_secs(3);
/// Closed stream ids remembered, so a late append says "closed" rather than "unknown".
const CLOSED_REMEMBERED: usize = 4096;

/// How long a stream may go without an append: [`stream::IDLE_CLOSE`], or the testing aid
/// [`stream::IDLE_ENV`] (at least 100 ms), read once.
fn idle_close() -> Duration {
    static IDLE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *IDLE.get_or_init(|| {
        std::env::var(stream::IDLE_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms >= 100)
            .map_or(stream::IDLE_CLOSE, Duration::from_millis)
    })
}

/// One open stream.
struct Open {
    owner: ConnId,
    channel: &'static str,
    to: String,
    reply_to: Option<String>,
    thread_id: Option<String>,
    stream: Stream,
    /// The `channels.stream.close` call waiting for the final text.
    closer: Option<SendWaiter>,
}

#[derive(Default)]
pub(super) struct Streams {
    open: HashMap<String, Open>,
    /// Connector jobs started for streams: job id → stream id (`None`: an open's typing
    /// indicator, whose answer nobody waits for).
    ops: HashMap<u64, Option<String>>,
    closed: VecDeque<String>,
    closed_set: HashSet<String>,
}

impl Streams {
    fn remember_closed(&mut self, id: String) {
        if self.closed.len() >= CLOSED_REMEMBERED {
            if let Some(old) = self.closed.pop_front() {
                self.closed_set.remove(&old);
            }
        }
        self.closed_set.insert(id.clone());
        self.closed.push_back(id);
    }

    /// The stream `id` of `conn`, or the error for an unknown or finished one.
    fn of(&mut self, conn: ConnId, id: &str) -> Result<&mut Open, ErrorBody> {
        let closed = || {
            ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!("stream {id:?} is closed; open a new one with channels.stream.open"),
            )
        };
        match self.open.get_mut(id) {
            Some(open) if open.owner == conn && open.stream.is_closing() => Err(closed()),
            Some(open) if open.owner == conn => Ok(open),
            _ if self.closed_set.contains(id) => Err(closed()),
            _ => Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!(
                    "unknown streamId {id:?} (a stream belongs to the connection that opened it with channels.stream.open)"
                ),
            )),
        }
    }

    /// The earliest instant a stream needs the router: an op due, or an idle close.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .flat_map(|o| [o.stream.next_wake(), o.stream.idle_deadline()])
            .flatten()
            .min()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// The connector job for `op` of stream `open`, numbered `id`.
fn command(id: u64, open: &Open, op: Op) -> Result<ConnectorCommand, ErrorBody> {
    let (channel, to) = (open.channel.to_owned(), open.to.clone());
    match op {
        Op::Post { text, format, first } => {
            let request = SendRequest {
                channel,
                to,
                text,
                attachments: Vec::new(),
                reply_to: if first { open.reply_to.clone() } else { None },
                thread_id: open.thread_id.clone(),
                format,
                idempotency_key: None,
                buttons: Vec::new(),
            };
            Ok(ConnectorCommand::Send(SendJob {
                id,
                request,
                files: Vec::new(),
            }))
        }
        Op::Act(action) => ActionJob::new(id, channel, to, action).map(ConnectorCommand::Act),
    }
}

impl Router {
    /// Dispatch a `channels.stream.*` call.
    pub(super) fn on_stream_request(
        &mut self,
        conn: ConnId,
        request_id: String,
        method: &str,
        raw: Option<&RawValue>,
    ) {
        let now = Instant::now();
        let result = match method {
            "channels.stream.open" => params(method, raw).and_then(|r| self.stream_open(conn, r, now)),
            "channels.stream.append" => params(method, raw).and_then(|r| self.stream_append(conn, r, now)),
            _ => match params::<CloseRequest>(method, raw) {
                Ok(r) => match self.stream_close(conn, &request_id, r, now) {
                    Ok(()) => return,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        self.reply(conn, &request_id, result);
    }

    fn stream_open(
        &mut self,
        conn: ConnId,
        r: OpenRequest,
        now: Instant,
    ) -> Result<serde_json::Value, ErrorBody> {
        let Some((&channel, slot)) = self.connectors.get_key_value(r.channel.as_str()) else {
            return Err(super::channel_not_enabled(&r.channel));
        };
        if r.to.is_empty() {
            return Err(ErrorBody::new(ErrorCode::InvalidRequest, "to must not be empty"));
        }
        let owned = self.streams.open.values().filter(|o| o.owner == conn).count();
        if owned >= MAX_PER_CLIENT {
            return Err(ErrorBody::new(
                ErrorCode::RateLimited,
                format!(
                    "this connection has {owned} streams open, the most one client may; close some with channels.stream.close (a stream with no append for {} s closes by itself)",
                    idle_close().as_secs()
                ),
            ));
        }
        let shape = slot.stream;
        // Typing until the first draft: the connector ends it when that message goes out.
        let typing_id = self.sends.next_id();
        let typing = TypingJob {
            id: typing_id,
            request: TypingRequest {
                channel: r.channel.clone(),
                to: r.to.clone(),
                thread_id: r.thread_id.clone(),
                action: TypingAction::Typing,
                ttl_ms: None,
            },
            ttl: idle_close(),
        };
        if slot.commands.send(ConnectorCommand::Typing(typing)).is_ok() {
            self.streams.ops.insert(typing_id, None);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.streams.open.insert(
            id.clone(),
            Open {
                owner: conn,
                channel,
                to: r.to,
                reply_to: r.reply_to,
                thread_id: r.thread_id,
                stream: Stream::new(shape, r.format, idle_close(), now),
                closer: None,
            },
        );
        Ok(json!({"streamId": id}))
    }

    fn stream_append(
        &mut self,
        conn: ConnId,
        r: AppendRequest,
        now: Instant,
    ) -> Result<serde_json::Value, ErrorBody> {
        let open = self.streams.of(conn, &r.stream_id)?;
        let length = open.stream.append(&r.text, now)?;
        self.drive_stream(&r.stream_id, now);
        Ok(json!({"length": length}))
    }

    fn stream_close(
        &mut self,
        conn: ConnId,
        request_id: &str,
        r: CloseRequest,
        now: Instant,
    ) -> Result<(), ErrorBody> {
        if r.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ErrorBody::new(
                ErrorCode::InvalidRequest,
                "text, when given, must not be empty (leave it out to keep what was appended)",
            ));
        }
        if r.text.as_ref().is_some_and(|t| t.len() > stream::MAX_TEXT_BYTES) {
            return Err(ErrorBody::new(
                ErrorCode::PayloadTooLarge,
                format!("a stream holds at most {} bytes of text", stream::MAX_TEXT_BYTES),
            ));
        }
        let open = self.streams.of(conn, &r.stream_id)?;
        open.stream.close(r.text);
        open.closer = Some((conn, request_id.to_owned()));
        self.drive_stream(&r.stream_id, now);
        Ok(())
    }

    /// Start the stream's next op if one is due; answer and forget a finished stream.
    fn drive_stream(&mut self, id: &str, now: Instant) {
        let Some(open) = self.streams.open.get_mut(id) else {
            return;
        };
        while let Some(op) = open.stream.next_op(now) {
            let job = self.sends.next_id();
            let sent = command(job, open, op).and_then(|command| {
                let slot = self.connectors.get(open.channel);
                match slot.map(|s| s.commands.send(command).is_ok()) {
                    Some(true) => Ok(()),
                    _ => Err(ErrorBody::retryable(
                        ErrorCode::Unavailable,
                        "the connector has stopped",
                        None,
                    )),
                }
            });
            match sent {
                Ok(()) => {
                    self.streams.ops.insert(job, Some(id.to_owned()));
                    break;
                }
                Err(e) => open.stream.on_done(Err(e), now),
            }
        }
        if !open.stream.is_finished() {
            return;
        }
        let open = self.streams.open.remove(id).expect("present");
        let result = open.stream.result(open.channel, &open.to);
        if open.stream.message_ids().is_empty() {
            // Nothing was posted, so nothing ended the typing shown since the open.
            if let Some(slot) = self.connectors.get(open.channel) {
                let off = ConnectorCommand::TypingOff {
                    to: open.to.clone(),
                    thread_id: open.thread_id.clone(),
                };
                let _ = slot.commands.send(off);
            }
        }
        match (&open.closer, &result) {
            (Some((conn, request_id)), _) => self.reply(*conn, request_id, result),
            (None, Ok(_)) => log::debug!("{}: stream {id} finished", open.channel),
            (None, Err(e)) => log::warn!(
                "{}: stream {id} could not be finished: {}",
                open.channel,
                e.message
            ),
        }
        self.streams.remember_closed(id.to_owned());
    }

    /// A connector answered job `id`: handled when it was a stream's, else the result back.
    pub(super) fn on_stream_op_done(
        &mut self,
        id: u64,
        result: Result<serde_json::Value, ErrorBody>,
    ) -> Option<Result<serde_json::Value, ErrorBody>> {
        let Some(stream_id) = self.streams.ops.remove(&id) else {
            return Some(result);
        };
        let Some(stream_id) = stream_id else {
            return None; // the typing indicator of an open
        };
        let now = Instant::now();
        if let Some(open) = self.streams.open.get_mut(&stream_id) {
            open.stream.on_done(result, now);
        }
        self.drive_stream(&stream_id, now);
        None
    }

    /// Close idle streams and start the ops that became due.
    pub(super) fn tick_streams(&mut self, now: Instant) {
        let due: Vec<String> = self
            .streams
            .open
            .iter_mut()
            .filter_map(|(id, open)| {
                if open.stream.idle_deadline().is_some_and(|at| at <= now) {
                    log::info!(
                        "{}: stream {id} got no append for {} ms; finishing it with what it has",
                        open.channel,
                        idle_close().as_millis()
                    );
                    open.stream.close(None);
                }
                open.stream
                    .next_wake()
                    .is_some_and(|at| at <= now)
                    .then(|| id.clone())
            })
            .collect();
        for id in due {
            self.drive_stream(&id, now);
        }
    }

    /// `conn` left: its streams are finished with what they have, and nobody waits for them.
    pub(super) fn close_streams_of(&mut self, conn: ConnId) {
        let now = Instant::now();
        let mine: Vec<String> = self
            .streams
            .open
            .iter_mut()
            .filter(|(_, o)| o.owner == conn)
            .map(|(id, open)| {
                if !open.stream.is_closing() {
                    log::info!(
                        "{}: stream {id}'s client left; finishing it with what it has",
                        open.channel
                    );
                    open.stream.close(None);
                }
                open.closer = None;
                id.clone()
            })
            .collect();
        for id in mine {
            self.drive_stream(&id, now);
        }
    }

    /// At a stop: finish every open stream, waiting for the connectors' answers until the
    /// streams are done or [`STOP_BUDGET`] is over. Calls arriving meanwhile are refused.
    pub(super) fn finish_streams(&mut self, why: &str) {
        if self.streams.is_empty() {
            return;
        }
        let now = Instant::now();
        let deadline = now + STOP_BUDGET;
        let ids: Vec<String> = self.streams.open.keys().cloned().collect();
        for id in &ids {
            if let Some(open) = self.streams.open.get_mut(id) {
                open.stream.close(None);
            }
            self.drive_stream(id, now);
        }
        while !self.streams.is_empty() {
            let wake = self.streams.next_deadline().unwrap_or(deadline).min(deadline);
            match self.rx.recv_deadline(wake) {
                Ok(ToRouter::Request { conn, request_id, .. }) => {
                    let body = ErrorBody::retryable(ErrorCode::Unavailable, why, None);
                    self.out
                        .send_frame(conn, frames::response_error(&request_id, &body));
                }
                Ok(ToRouter::Shutdown { .. }) => {}
                Ok(msg) => self.handle(msg),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.tick_streams(now);
        }
        for (id, open) in self.streams.open.drain() {
            log::warn!(
                "{}: stream {id} was not finished within the stop's {} s; its last draft stays as it is",
                open.channel,
                STOP_BUDGET.as_secs()
            );
            if let Some((conn, request_id)) = open.closer {
                let body = ErrorBody::retryable(ErrorCode::Unavailable, why, None);
                self.out
                    .send_frame(conn, frames::response_error(&request_id, &body));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_ids_are_remembered_up_to_a_bound() {
        let mut s = Streams::default();
        for i in 0..CLOSED_REMEMBERED + 10 {
            s.remember_closed(i.to_string());
        }
        assert_eq!(s.closed.len(), CLOSED_REMEMBERED);
        assert!(!s.closed_set.contains("0"));
        assert!(s.closed_set.contains(&(CLOSED_REMEMBERED + 9).to_string()));
        let e = s.of(1, "5").err().expect("an error");
        assert_eq!(e.code, ErrorCode::NotFound, "forgotten: unknown");
        let e = s.of(1, "20").err().expect("an error");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("is closed"));
    }
}
