//! The WebSocket server: one mio event loop thread that owns the listener and every client
//! socket, and never blocks.
//!
//! - [`handshake`]: the resumable HTTP upgrade and the Origin check.
//! - [`conn`]: one connection's state and its non-blocking reads and writes.
//! - [`auth`]: credential checks and the failed-login limit.
//! - [`event_loop`]: the loop: accept, read, dispatch, flush, timers, shutdown.
//! - [`frames_in`]: what the loop does with each frame a client sends.
//! - [`waker`]: how other threads wake the loop.

pub mod auth;
pub mod conn;
mod event_loop;
mod frames_in;
pub mod handshake;
pub mod waker;

use std::sync::Arc;
use std::time::Duration;

pub use event_loop::EventLoop;

/// How long a client has from accept to a successful `connect` (handshake included).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the loop needs to know from the config.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Largest frame after `connect` (`gateway.maxPayloadBytes`).
    pub max_payload: usize,
    /// Most simultaneous connections, handshaking ones included (`gateway.maxClients`).
    pub max_clients: usize,
    /// Interval of `tick` events (`gateway.tickIntervalMs`).
    pub tick_interval: Duration,
    /// Browser origins allowed to connect (`gateway.allowedOrigins`).
    pub allowed_origins: Arc<[String]>,
    /// Unsent bytes per client before it is closed as a slow consumer
    /// (`gateway.clientBacklogBytes`).
    pub backlog_limit: usize,
    /// Accepted token, if any.
    pub token: Option<String>,
    /// Accepted password, if any.
    pub password: Option<String>,
    /// The only credential for `role:"agent"`, if set (`gateway.auth.agentToken`).
    pub agent_token: Option<String>,
    /// Deadline for `connect` after accept.
    pub connect_timeout: Duration,
}
