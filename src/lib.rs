//! emonk: a small, fast gateway daemon between chat platforms and a local AI agent.
//!
//! The shape of the program, by module:
//! - [`config`], [`paths`]: the JSON config and where files live.
//! - [`lock`], [`procinfo`]: the single-instance lock and `/proc` helpers.
//! - [`protocol`]: the wire protocol's frames, error codes and close codes.
//! - [`server`]: the mio event loop that owns every client socket.
//! - [`router`]: the thread that routes requests, agent forwarding and events.
//! - [`spool`]: the durable journal of inbound messages until the agent acknowledges them.
//! - [`backoff`]: retry delays shared by the client and the connectors.
//! - [`bus`]: the messages between the loop, the router and the connectors.
//! - [`channels`]: the connector interface (one thread per chat platform).
//! - [`lifecycle`]: signals, graceful bounded stop, in-process restart.
//! - [`service`]: `emonkd service install|uninstall|status` for systemd and runit.
//! - [`client`]: a synchronous client for the gateway, used by the CLI and by agents.
//! - [`cli`]: the `emonkd` command line; [`error`], [`exit`]: errors and exit codes.
//! - `json_type`: the JSON type of a value for error messages (config and Bot API answers).

pub mod backoff;
pub mod bus;
pub mod channels;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod exit;
mod json_type;
pub mod lifecycle;
pub mod lock;
pub mod logging;
pub mod paths;
pub mod procinfo;
pub mod protocol;
pub mod router;
pub mod server;
pub mod service;
pub mod spool;
pub mod statefs;

/// This gateway's version, reported in `hello_ok`, `gateway.status` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
