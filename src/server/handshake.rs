//! The HTTP side of a new connection: the resumable WebSocket handshake with its Origin check,
//! and the refusal sent when the gateway is full.
//!
//! The handshake runs on the loop thread without blocking: tungstenite hands back a
//! `MidHandshake` whenever the socket would block, and the loop resumes it on the next
//! readiness event. tungstenite caps the request at 64 KiB and refuses trickled packets, and
//! the loop's connect deadline drops a peer that never finishes, so no client can hold the
//! loop or a slot for long.

use std::io::Write;
use std::sync::Arc;

use mio::net::TcpStream;
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::http::StatusCode;

/// A handshake in progress.
pub type PendingHandshake = tungstenite::handshake::MidHandshake<ServerHandshake<TcpStream, OriginCheck>>;

/// Refuses browsers from origins not in `gateway.allowedOrigins` (HTTP 403). Clients that
/// send no `Origin` (CLI tools, agents) are let through: only browsers send one, and a page
/// from an arbitrary site must not be able to drive a local gateway.
#[derive(Clone)]
pub struct OriginCheck {
    pub allowed: Arc<[String]>,
}

impl Callback for OriginCheck {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let Some(origin) = request.headers().get("origin") else {
            return Ok(response);
        };
        let origin = origin.to_str().unwrap_or("");
        if self.allowed.iter().any(|a| a == origin) {
            return Ok(response);
        }
        log::warn!(
            "refused WebSocket handshake from Origin {origin:?}: add it to gateway.allowedOrigins to allow it"
        );
        let mut refusal = ErrorResponse::new(Some(format!(
            "origin {origin:?} is not allowed; add it to gateway.allowedOrigins\n"
        )));
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        Err(refusal)
    }
}

/// Best-effort HTTP 503 for a connection the gateway has no room for. The socket is new, so
/// its send buffer is empty and this small write cannot block in practice; if it does, the
/// peer just sees the connection closed.
pub fn refuse_full(stream: &mut TcpStream, max_clients: usize) {
    let body = format!("gateway is full ({max_clients} clients, gateway.maxClients); retry later\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
