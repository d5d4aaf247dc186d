//! Connection options for [`GatewayClient`](super::GatewayClient): where the gateway is,
//! who this client is, how it authenticates, and whether it follows the gateway through
//! drops and restarts.

use std::fmt;
use std::time::Duration;

/// The gateway's default listening address (`gateway.port` 18789 on loopback).
pub const DEFAULT_URL: &str = "ws://127.0.0.1:18789";

/// How long [`ClientOptions::default`] allows for TCP connect, WebSocket upgrade and hello.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::protocol::{Mode, Role};

/// Everything [`GatewayClient::connect`](super::GatewayClient::connect) needs.
///
/// Start from [`ClientOptions::new`] or [`Default`] and set the fields you care about.
#[derive(Clone)]
pub struct ClientOptions {
    /// `ws://HOST:PORT[/PATH]`. Only plain `ws://`: emonkd does not terminate TLS.
    pub url: String,
    /// Shared token (`gateway.auth.token`). Sent in preference to `password` when both
    /// are set.
    pub token: Option<String>,
    /// Password (`gateway.auth.password`).
    pub password: Option<String>,
    /// Shown in the gateway's logs and status, e.g. `"cli"`.
    pub client_name: String,
    /// The version of the program using this client.
    pub client_version: String,
    /// Operator or read-only access.
    pub mode: Mode,
    /// Operator or agent.
    pub role: Role,
    /// Bound on one connection attempt: DNS, TCP connect, WebSocket upgrade and hello.
    pub connect_timeout: Duration,
    /// Reconnect after the link drops (backoff 1 s doubling to 30 s; quickly after a
    /// gateway restart). The first connection is never retried: its failure is returned.
    pub reconnect: bool,
}

impl ClientOptions {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> ClientOptions {
        ClientOptions {
            url: url.into(),
            ..ClientOptions::default()
        }
    }
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            url: DEFAULT_URL.to_owned(),
            token: None,
            password: None,
            client_name: "emonk-client".to_owned(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            mode: Mode::Operator,
            role: Role::Operator,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect: true,
        }
    }
}

// Hand-written so that credentials never reach a log line through `{:?}`.
impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("token", &mask(&self.token))
            .field("password", &mask(&self.password))
            .field("client_name", &self.client_name)
            .field("client_version", &self.client_version)
            .field("mode", &self.mode)
            .field("role", &self.role)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}
