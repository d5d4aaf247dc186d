//! The router thread: every decision that needs state across connections.
//!
//! It knows who is connected (and which one is the agent), forwards `agent.*` requests and
//! relays the agent's streamed answers, answers the gateway and channel methods, keeps
//! operators' event subscriptions, and talks to the connectors. It never touches a socket:
//! it sends prepared frames to the event loop through a [`LoopHandle`], and never blocks
//! except waiting for its next message or the next forwarding deadline.

mod delivery;
mod fetches;
mod flights;
mod forwarding;
mod methods;
mod sends;
mod streams;

pub use methods::RESTART_EXPECTED_MS;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::value::RawValue;

use crate::bus::{Audience, ConnId, LoopHandle, Peer, Probe, ToLoop, ToRouter};
use crate::channels::media::cache::MediaCache;
use crate::channels::stream::StreamShape;
use crate::channels::{ChannelStatus, ConnectorCommand, ConnectorEvent};
use crate::protocol::{ErrorBody, ErrorCode, Role, close, frames};
use crate::spool::Spool;
use fetches::FetchWaiter;
use flights::Flights;
use forwarding::Forwarding;
use sends::{Idempotency, SendWaiter};

/// What `gateway.restart` does after answering: write the one-shot authorization and signal
/// the process, so every restart takes the same path as `emonkd restart`.
pub type RestartHook = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// Facts about this gateway, for `gateway.status`.
#[derive(Clone)]
pub struct RouterSettings {
    pub agent_timeout: Duration,
    pub bind_host: String,
    pub bind_mode: &'static str,
    pub port: u16,
    /// When the process started (uptime survives in-process restarts).
    pub process_started: Instant,
    pub restart: RestartHook,
    /// `<state>/media/`, shared with the connectors' download threads.
    pub media: Arc<MediaCache>,
    /// `media.maxBytes`.
    pub media_max_bytes: u64,
    /// `media.sendDirs` in force: the folders `channels.send` may read `path` files from.
    pub send_dirs: Vec<std::path::PathBuf>,
    /// `gateway.maxPayloadBytes`: an inline fetch answer must fit in one frame.
    pub max_payload: usize,
}

/// A connector as the router sees it: where to send commands, and its last status.
pub struct ConnectorSlot {
    pub commands: Sender<ConnectorCommand>,
    pub status: ChannelStatus,
    /// What a streamed reply may be on this platform.
    pub stream: StreamShape,
}

pub struct Router {
    rx: Receiver<ToRouter>,
    out: LoopHandle,
    settings: RouterSettings,
    peers: HashMap<ConnId, Peer>,
    agent: Option<ConnId>,
    subscriptions: HashMap<ConnId, HashSet<&'static str>>,
    forwarding: Forwarding,
    connectors: BTreeMap<&'static str, ConnectorSlot>,
    spool: Arc<Mutex<Spool>>,
    /// The highest cursor sent to the current agent connection.
    delivered: u64,
    /// `channels.send` calls waiting for their connector, by job id, joinable by
    /// idempotency key.
    sends: Flights<String, SendWaiter>,
    idempotency: Idempotency,
    /// `channels.fetch` downloads in progress, by job id, joinable by attachment id.
    fetches: Flights<String, FetchWaiter>,
    /// Open `channels.stream.*` replies.
    streams: streams::Streams,
}

impl Router {
    pub fn new(
        rx: Receiver<ToRouter>,
        out: LoopHandle,
        settings: RouterSettings,
        connectors: BTreeMap<&'static str, ConnectorSlot>,
        spool: Arc<Mutex<Spool>>,
    ) -> Router {
        Router {
            rx,
            out,
            settings,
            peers: HashMap::new(),
            agent: None,
            subscriptions: HashMap::new(),
            forwarding: Forwarding::default(),
            connectors,
            spool,
            delivered: 0,
            sends: Flights::default(),
            idempotency: Idempotency::default(),
            fetches: Flights::default(),
            streams: streams::Streams::default(),
        }
    }

    /// Run until `Shutdown` (or until every sender is gone).
    pub fn run(mut self) {
        loop {
            let deadline = [self.forwarding.next_deadline(), self.streams.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            let msg = match deadline {
                Some(deadline) => match self.rx.recv_deadline(deadline) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                },
            };
            if let Some(msg) = msg {
                if let ToRouter::Shutdown {
                    restart_expected_ms,
                    drain_until,
                } = msg
                {
                    self.shutdown(restart_expected_ms, drain_until);
                    break;
                }
                self.handle(msg);
            }
            let now = Instant::now();
            self.expire_forwards(now);
            self.tick_streams(now);
        }
        log::debug!("router stopped");
    }

    fn handle(&mut self, msg: ToRouter) {
        match msg {
            ToRouter::Joined(peer) => self.on_joined(peer),
            ToRouter::Left(conn) => self.on_left(conn),
            ToRouter::Request {
                conn,
                request_id,
                method,
                params,
            } => self.on_request(conn, request_id, method, params),
            ToRouter::AgentResponse {
                conn,
                request_id,
                is_final,
                result,
                error,
            } => self.on_agent_response(conn, &request_id, is_final, result, error),
            ToRouter::Connector(ConnectorEvent::Status(status)) => self.on_channel_status(status),
            ToRouter::Connector(ConnectorEvent::Inbound(entries)) => self.on_inbound(entries),
            ToRouter::Connector(ConnectorEvent::SendDone { id, result }) => {
                if let Some(result) = self.on_stream_op_done(id, result) {
                    self.on_send_done(id, result);
                }
            }
            ToRouter::Connector(ConnectorEvent::FetchDone { id, result }) => self.on_fetch_done(id, result),
            ToRouter::Probe {
                router,
                event_loop,
                connectors,
            } => self.on_probe(router, event_loop, connectors),
            ToRouter::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    /// Answer our part of a liveness probe and pass the rest on. A connector that is gone
    /// never answers, which is the point: the supervisor then withholds `WATCHDOG=1`.
    fn on_probe(&mut self, router: Probe, event_loop: Probe, connectors: Vec<(&'static str, Probe)>) {
        router.answer();
        self.out.send(ToLoop::Probe(event_loop));
        for (channel, probe) in connectors {
            if let Some(slot) = self.connectors.get(channel) {
                let _ = slot.commands.send(ConnectorCommand::Probe(probe));
            }
        }
    }

    fn reply(&self, conn: ConnId, request_id: &str, result: Result<serde_json::Value, ErrorBody>) {
        let frame = match result {
            Ok(v) => frames::response_ok(request_id, &v),
            Err(e) => frames::response_error(request_id, &e),
        };
        self.out.send_frame(conn, frame);
    }

    fn on_joined(&mut self, peer: Peer) {
        if peer.role == Role::Agent {
            if let Some(old) = self.agent.replace(peer.conn) {
                log::info!("agent connection {} superseded by {}", old, peer.conn);
                self.fail_forwards_of_agent(old, "the agent was superseded by a newer agent connection");
                self.out.send(ToLoop::Close {
                    conn: old,
                    code: close::POLICY,
                    reason: "superseded",
                });
                self.peers.remove(&old);
                self.subscriptions.remove(&old);
            }
        }
        let is_agent = peer.role == Role::Agent;
        self.peers.insert(peer.conn, peer);
        if is_agent {
            self.restart_delivery();
        }
    }

    fn on_left(&mut self, conn: ConnId) {
        let Some(peer) = self.peers.remove(&conn) else {
            return;
        };
        self.subscriptions.remove(&conn);
        if self.agent == Some(conn) {
            self.agent = None;
            log::info!("agent disconnected (connection {conn})");
            self.fail_forwards_of_agent(conn, "the agent disconnected before answering");
        }
        // Answers for a caller that left have nowhere to go.
        self.forwarding.remove_where(|f| f.caller == conn);
        self.close_streams_of(conn);
        log::debug!("client {conn} ({:?}) left", peer.client_name);
    }

    fn fail_forwards_of_agent(&mut self, agent: ConnId, why: &str) {
        for f in self.forwarding.remove_where(|f| f.agent == agent) {
            let body = ErrorBody::retryable(ErrorCode::Unavailable, why, None);
            self.out
                .send_frame(f.caller, frames::response_error(&f.caller_request_id, &body));
        }
    }

    fn on_request(
        &mut self,
        conn: ConnId,
        request_id: String,
        method: String,
        params: Option<Box<RawValue>>,
    ) {
        let Some(peer) = self.peers.get(&conn) else {
            return; // raced with its own disconnect
        };
        if peer.mode == crate::protocol::Mode::Readonly
            && !crate::protocol::READONLY_METHODS.contains(&method.as_str())
        {
            let body = ErrorBody::new(
                ErrorCode::Forbidden,
                format!("{method} is not allowed for readonly clients"),
            );
            self.reply(conn, &request_id, Err(body));
            return;
        }
        if method.starts_with("agent.") {
            self.forward_to_agent(conn, request_id, method, params);
            return;
        }
        if method == "channels.send" {
            match methods::params(&method, params.as_deref()) {
                Ok(request) => self.channels_send(conn, request_id, request),
                Err(e) => self.reply(conn, &request_id, Err(e)),
            }
            return;
        }
        if matches!(
            method.as_str(),
            "channels.edit" | "channels.delete" | "channels.react"
        ) {
            match sends::action_job(&method, params.as_deref(), self.sends.next_id()) {
                Ok(job) => self.channels_act(conn, request_id, job),
                Err(e) => self.reply(conn, &request_id, Err(e)),
            }
            return;
        }
        if method.starts_with("channels.stream.") && crate::protocol::METHODS.contains(&method.as_str()) {
            self.on_stream_request(conn, request_id, &method, params.as_deref());
            return;
        }
        if method == "channels.typing" {
            match methods::params(&method, params.as_deref()) {
                Ok(request) => self.channels_typing(conn, request_id, request),
                Err(e) => self.reply(conn, &request_id, Err(e)),
            }
            return;
        }
        if method == "channels.fetch" {
            match methods::params(&method, params.as_deref()) {
                Ok(p) => self.channels_fetch(conn, request_id, p),
                Err(e) => self.reply(conn, &request_id, Err(e)),
            }
            return;
        }
        let result = self.call_method(conn, &method, params.as_deref());
        self.reply(conn, &request_id, result);
    }

    fn forward_to_agent(
        &mut self,
        conn: ConnId,
        request_id: String,
        method: String,
        params: Option<Box<RawValue>>,
    ) {
        if self.agent == Some(conn) {
            let body = ErrorBody::new(
                ErrorCode::InvalidRequest,
                "the agent cannot call agent.* methods on itself",
            );
            self.reply(conn, &request_id, Err(body));
            return;
        }
        let Some(agent) = self.agent else {
            let body = ErrorBody::retryable(ErrorCode::Unavailable, "no agent is connected", None);
            self.reply(conn, &request_id, Err(body));
            return;
        };
        let deadline = Instant::now() + self.settings.agent_timeout;
        let id = self
            .forwarding
            .insert(conn, request_id, agent, method.clone(), deadline);
        self.out
            .send_frame(agent, frames::forwarded_request(&id, &method, params.as_deref()));
    }

    fn on_agent_response(
        &mut self,
        conn: ConnId,
        request_id: &str,
        is_final: bool,
        result: Option<Box<RawValue>>,
        error: Option<Box<RawValue>>,
    ) {
        let now = Instant::now();
        let Some(f) =
            self.forwarding
                .on_response(request_id, conn, is_final, now, self.settings.agent_timeout)
        else {
            log::debug!("dropping agent response for unknown or finished request {request_id:?}");
            return;
        };
        let frame = match (result, error) {
            (Some(r), _) => frames::response_raw(&f.caller_request_id, is_final, r.get()),
            (None, Some(e)) => frames::response_error_raw(&f.caller_request_id, is_final, e.get()),
            (None, None) => return,
        };
        self.out.send_frame(f.caller, frame);
    }

    fn expire_forwards(&mut self, now: Instant) {
        for f in self.forwarding.expire(now) {
            let ms = self.settings.agent_timeout.as_millis();
            log::warn!(
                "agent did not answer {} within {ms} ms (gateway.agentTimeoutMs)",
                f.method
            );
            let body = ErrorBody::retryable(
                ErrorCode::Timeout,
                format!("the agent did not answer {} within {ms} ms", f.method),
                None,
            );
            self.out
                .send_frame(f.caller, frames::response_error(&f.caller_request_id, &body));
        }
    }

    fn on_channel_status(&mut self, status: ChannelStatus) {
        let Some(slot) = self.connectors.get_mut(status.channel) else {
            return;
        };
        let changed = slot.status.state != status.state || slot.status.last_error != status.last_error;
        slot.status = status;
        if changed {
            let s = &slot.status;
            let params = serde_json::json!({"channel": s.channel, "state": s.state, "error": s.last_error});
            self.out.send(ToLoop::Event {
                to: Audience::All,
                name: "channel.status",
                params: params.to_string().into(),
            });
        }
    }

    fn shutdown(&mut self, restart_expected_ms: Option<u64>, drain_until: Instant) {
        let why = if restart_expected_ms.is_some() {
            "gateway restarting"
        } else {
            "gateway stopping"
        };
        for f in self.forwarding.remove_where(|_| true) {
            let body = ErrorBody::retryable(ErrorCode::Unavailable, why, restart_expected_ms);
            self.out
                .send_frame(f.caller, frames::response_error(&f.caller_request_id, &body));
        }
        self.finish_streams(why);
        self.fail_sends(why);
        self.fail_fetches(why);
        for slot in self.connectors.values() {
            let _ = slot.commands.send(ConnectorCommand::Stop);
        }
        self.out.send(ToLoop::Shutdown {
            restart_expected_ms,
            drain_until,
        });
    }
}

/// The answer to a `channels.send` or `channels.fetch` naming a channel that is not running.
fn channel_not_enabled(channel: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        format!("channel {channel:?} is not enabled; set channels.{channel}.enabled in the config"),
    )
}
