//! The wire protocol: JSON text frames over WebSocket, protocol version 1.
//!
//! Inbound frames are parsed with borrowed raw JSON for `params`/`result`/`error`, so a frame
//! that is only relayed (agent forwarding) is never decoded and re-encoded. Outbound frames are
//! built as strings by the functions in [`frames`]; events are built per connection because
//! `seq` differs per connection, but the params are serialized once.

mod codes;
pub mod frames;
mod inbound;

pub use codes::{ErrorBody, ErrorCode, close};
pub use inbound::{ClientFrame, ConnectParams, Credential, FrameError, Mode, Role, parse_client_frame};

/// The protocol version this gateway speaks; `connect` must ask for exactly this.
pub const PROTOCOL_VERSION: u64 = 1;

/// Largest frame accepted before `connect` succeeded (64 KiB): an unauthenticated peer gets
/// no more buffer than that.
pub const PRE_AUTH_MAX_FRAME: usize = 64 * 1024;

/// Methods announced in `hello_ok`. `agent.*` stands for every method forwarded to the agent.
pub const METHODS: &[&str] = &[
    "gateway.ping",
    "gateway.status",
    "gateway.restart",
    "channels.status",
    "channels.send",
    "channels.fetch",
    "channels.typing",
    "channels.edit",
    "channels.delete",
    "channels.react",
    "channels.stream.open",
    "channels.stream.append",
    "channels.stream.close",
    "events.subscribe",
    "events.ack",
    "agent.*",
];

/// Events announced in `hello_ok`.
pub const EVENTS: &[&str] = &[
    "tick",
    "shutdown",
    "channel.status",
    "channel.message",
    "channel.action",
];

/// Methods a `readonly` client may call; everything else answers `FORBIDDEN`.
pub const READONLY_METHODS: &[&str] = &["gateway.ping", "gateway.status", "channels.status"];

/// Events an operator may opt into with `events.subscribe`. `tick`, `shutdown` and
/// `channel.status` go to every client anyway.
pub const SUBSCRIBABLE_EVENTS: &[&str] = &["channel.message", "channel.action", "channel.status"];
