//! What the loop does with each frame a client sends: `connect` and auth are answered here,
//! and so is `gateway.ping` (the cheapest round trip must not pay a thread hop); every other
//! request goes to the router.

use std::time::Instant;

use super::EventLoop;
use super::conn::Session;
use crate::bus::{ConnId, Peer, ToRouter};
use crate::protocol::{
    ClientFrame, ConnectParams, ErrorBody, ErrorCode, Mode, PROTOCOL_VERSION, Role, close, frames,
    parse_client_frame,
};

impl EventLoop {
    pub(super) fn on_text(&mut self, id: ConnId, text: &str) {
        let Some(conn) = self.conns.get(&id) else { return };
        if conn.is_closing() {
            return;
        }
        let session = conn.session.as_ref().map(|s| s.role);
        let parsed = parse_client_frame(text);
        let Some(role) = session else {
            match parsed {
                Ok(ClientFrame::Connect(params)) => self.on_connect(id, params),
                Ok(_) => {
                    let body = ErrorBody::new(ErrorCode::InvalidRequest, "the first frame must be connect");
                    self.refuse(id, &body, close::PROTOCOL, "connect expected");
                }
                Err(e) => self.refuse(id, &e.body, close::PROTOCOL, "invalid connect"),
            }
            return;
        };
        match parsed {
            Ok(ClientFrame::Connect(_)) => {
                let body = ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    "already connected: connect is only valid as the first frame",
                );
                self.send(id, frames::error(&body));
            }
            Ok(ClientFrame::Request {
                request_id,
                method,
                params,
            }) => self.on_request(id, request_id, method, params),
            Ok(ClientFrame::Response {
                request_id,
                is_final,
                result,
                error,
            }) => {
                if role == Role::Agent {
                    let msg = ToRouter::AgentResponse {
                        conn: id,
                        request_id,
                        is_final,
                        result,
                        error,
                    };
                    let _ = self.router.send(msg);
                } else {
                    let body = ErrorBody::new(
                        ErrorCode::InvalidRequest,
                        "only the agent sends response frames (connect with role \"agent\")",
                    );
                    self.send(id, frames::error(&body));
                }
            }
            Err(e) => {
                let frame = match &e.request_id {
                    Some(rid) => frames::response_error(rid, &e.body),
                    None => frames::error(&e.body),
                };
                self.send(id, frame);
            }
        }
    }

    pub(super) fn on_binary(&mut self, id: ConnId) {
        let body = ErrorBody::new(
            ErrorCode::InvalidRequest,
            "binary frames are not supported: send JSON text frames",
        );
        match self.conns.get(&id) {
            Some(conn) if conn.session.is_some() => self.send(id, frames::error(&body)),
            Some(_) => self.refuse(id, &body, close::PROTOCOL, "connect expected"),
            None => {}
        }
    }

    pub(super) fn on_too_big(&mut self, id: ConnId, why: &str) {
        let Some(conn) = self.conns.get(&id) else { return };
        let joined = conn.session.is_some();
        let limit = if joined {
            self.settings.max_payload
        } else {
            crate::protocol::PRE_AUTH_MAX_FRAME
        };
        log::debug!("connection {id}: frame too large ({why}); limit {limit} bytes");
        let body = ErrorBody::new(
            ErrorCode::PayloadTooLarge,
            format!("frame larger than {limit} bytes (gateway.maxPayloadBytes; 64 KiB before connect)"),
        );
        if joined {
            self.send(id, frames::error(&body));
            self.close(id, close::TOO_BIG, "frame too large");
        } else {
            self.refuse(id, &body, close::TOO_BIG, "frame too large");
        }
    }

    /// Answer `hello_error` and close.
    pub(super) fn refuse(&mut self, id: ConnId, body: &ErrorBody, code: u16, reason: &str) {
        self.send(id, frames::hello_error(body));
        self.close(id, code, reason);
    }

    fn on_connect(&mut self, id: ConnId, params: ConnectParams) {
        let Some(conn) = self.conns.get(&id) else { return };
        let addr = conn.addr;
        if params.protocol_version != PROTOCOL_VERSION {
            let body = ErrorBody::new(
                ErrorCode::ProtocolMismatch,
                format!(
                    "this gateway speaks protocol version {PROTOCOL_VERSION}, the client asked for {}",
                    params.protocol_version
                ),
            );
            self.refuse(id, &body, close::PROTOCOL, "protocol mismatch");
            return;
        }
        if params.role == Role::Agent && params.mode == Mode::Readonly {
            let body = ErrorBody::new(
                ErrorCode::InvalidRequest,
                "an agent must connect with mode \"operator\"",
            );
            self.refuse(id, &body, close::POLICY, "readonly agent");
            return;
        }
        if let Err(body) = self
            .auth
            .check(addr.ip(), params.role, params.auth.as_ref(), Instant::now())
        {
            log::warn!(
                "refused connect from {addr} ({:?}): {}",
                params.client_name,
                body.message
            );
            self.refuse(id, &body, close::POLICY, "unauthorized");
            return;
        }
        let session_id = uuid::Uuid::new_v4().to_string();
        let joined_config = self.joined_config;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.session = Some(Session {
            role: params.role,
            mode: params.mode,
            seq: 0,
        });
        conn.set_limits(&joined_config);
        let hello = frames::hello_ok(
            &session_id,
            self.settings.tick_interval.as_millis() as u64,
            self.settings.max_payload,
        );
        self.send(id, hello);
        let client_name: String = params.client_name.chars().take(128).collect();
        let level = if params.role == Role::Agent {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "client {id} {client_name:?} connected from {addr} as {:?}/{:?}",
            params.role,
            params.mode
        );
        let peer = Peer {
            conn: id,
            role: params.role,
            mode: params.mode,
            session_id,
            client_name,
            addr,
        };
        let _ = self.router.send(ToRouter::Joined(peer));
    }

    fn on_request(
        &mut self,
        id: ConnId,
        request_id: String,
        method: String,
        params: Option<Box<serde_json::value::RawValue>>,
    ) {
        if method == "gateway.ping" {
            let frame = frames::response_ok(
                &request_id,
                &serde_json::json!({"ts": crate::procinfo::unix_ms()}),
            );
            self.send(id, frame);
            return;
        }
        if self.draining.is_some() {
            let body = ErrorBody::retryable(ErrorCode::Unavailable, "gateway is stopping", None);
            self.send(id, frames::response_error(&request_id, &body));
            return;
        }
        if self.router.len() >= super::event_loop::ROUTER_QUEUE_LIMIT {
            let body = ErrorBody::retryable(
                ErrorCode::Unavailable,
                "gateway is busy; retry shortly",
                Some(100),
            );
            self.send(id, frames::response_error(&request_id, &body));
            return;
        }
        let _ = self.router.send(ToRouter::Request {
            conn: id,
            request_id,
            method,
            params,
        });
    }
}
