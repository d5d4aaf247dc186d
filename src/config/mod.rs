//! The configuration: its types and defaults, and the entry points to get one.
//!
//! Parsing text ([`Config::parse`]) is kept apart from everything that touches the outside
//! world ([`load()`]: the file, the environment, CLI flags, secret files) so the rules of the
//! file format are unit-testable from plain strings.
//!
//! Files in this module, one concern each:
//! - `secret.rs`: [`Secret`], a string that never prints.
//! - `json.rs`: strict JSON reading (duplicate keys are an error).
//! - `parse.rs`: the walk from JSON to [`Config`], with key paths in every error.
//! - `load.rs`: file + env + CLI overrides + secret files + final checks.
//! - `bind.rs`: which IP address to bind, including the tailnet interface lookup.
//! - `mask.rs`: the effective config as JSON with secrets masked, for `check-config`
//!   (derived: every field of the types below is a key of the output).

mod base_url;
mod bind;
mod json;
mod load;
mod mask;
mod parse;
mod secret;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

pub use bind::tailnet_ipv4;
pub use load::{SecretFileError, load, read_secret_file, shared_mode, warnings};
pub use mask::masked_json;
pub use secret::Secret;

/// Default `gateway.port`.
pub const DEFAULT_PORT: u16 = 18789;
/// Default `gateway.maxPayloadBytes` (25 MiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 26_214_400;
/// Allowed `gateway.maxPayloadBytes`: at least the 64 KiB pre-connect frame limit (a
/// smaller value would make the post-connect limit tighter than the pre-connect one), at
/// most 1 GiB so a single frame cannot ask for unbounded memory.
pub const MAX_PAYLOAD_RANGE: (u64, u64) = (65_536, 1_073_741_824);
/// Default `gateway.maxClients`.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Allowed `gateway.maxClients`. The upper bound is far beyond any fd limit, and only
/// there to reject typos that would otherwise size tables absurdly.
pub const MAX_CLIENTS_RANGE: (u64, u64) = (1, 1_000_000);
/// Default `gateway.tickIntervalMs`.
pub const DEFAULT_TICK_INTERVAL_MS: u64 = 30_000;
/// Allowed `gateway.tickIntervalMs`. Capped at a day so `Instant + interval` can never
/// overflow and a typo cannot silently disable liveness detection.
pub const TICK_INTERVAL_RANGE: (u64, u64) = (100, 86_400_000);
/// Default `gateway.agentTimeoutMs`.
pub const DEFAULT_AGENT_TIMEOUT_MS: u64 = 120_000;
/// Allowed `gateway.agentTimeoutMs`; capped at a day for the same reason as the tick.
pub const AGENT_TIMEOUT_RANGE: (u64, u64) = (1, 86_400_000);
/// Default `gateway.clientBacklogBytes` (4 MiB).
pub const DEFAULT_CLIENT_BACKLOG_BYTES: usize = 4_194_304;
/// Allowed `gateway.clientBacklogBytes`.
pub const CLIENT_BACKLOG_RANGE: (u64, u64) = (65_536, 1_073_741_824);
pub use crate::channels::stream::DEFAULT_EDIT_INTERVAL_MS;
/// Default `channels.telegram.pollTimeoutSecs`.
pub const DEFAULT_POLL_TIMEOUT_SECS: u64 = 25;
/// Allowed `channels.telegram.pollTimeoutSecs`: Telegram caps long polls at 50 s.
pub const POLL_TIMEOUT_RANGE: (u64, u64) = (1, 50);
/// Allowed `channels.<name>.streamEditIntervalMs`: faster than 10 edits a second is a flood on
/// every platform; slower than a minute is no longer a live reply.
pub const STREAM_EDIT_INTERVAL_RANGE: (u64, u64) = (100, 60_000);
/// Default `channels.telegram.apiBaseUrl`.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";
/// Default `channels.discord.apiBaseUrl`.
pub const DEFAULT_DISCORD_API: &str = "https://discord.com/api/v10";
/// Default `channels.slack.apiBaseUrl`.
pub const DEFAULT_SLACK_API: &str = "https://slack.com/api";

/// Default `spool.maxEntries`.
pub const DEFAULT_SPOOL_MAX_ENTRIES: usize = 10_000;
/// Allowed `spool.maxEntries`.
pub const SPOOL_MAX_ENTRIES_RANGE: (u64, u64) = (10, 10_000_000);
/// Default `spool.maxBytes` (64 MiB).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 67_108_864;
/// Allowed `spool.maxBytes`.
pub const SPOOL_MAX_BYTES_RANGE: (u64, u64) = (65_536, 68_719_476_736);

/// Default `media.maxBytes` (20 MiB): the largest file `channels.fetch` downloads.
pub const DEFAULT_MEDIA_MAX_BYTES: u64 = 20_971_520;
/// Allowed `media.maxBytes`: 1 KiB to 2 GiB (Telegram's own upload ceiling for local Bot API
/// servers; nothing a chat platform serves is larger).
pub const MEDIA_MAX_BYTES_RANGE: (u64, u64) = (1_024, 2_147_483_648);
/// Default `media.cacheMaxBytes` (256 MiB): the byte budget of `<state>/media/`.
pub const DEFAULT_MEDIA_CACHE_MAX_BYTES: u64 = 268_435_456;
/// Allowed `media.cacheMaxBytes`: 1 MiB to 1 TiB, and at least `media.maxBytes` (a budget
/// below one file would evict every file as soon as the next arrives).
pub const MEDIA_CACHE_MAX_BYTES_RANGE: (u64, u64) = (1_048_576, 1_099_511_627_776);
/// The default `media.sendDirs` entry, under the state dir.
pub const DEFAULT_OUTBOX: &str = "outbox";

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub gateway: GatewayConfig,
    pub channels: ChannelsConfig,
    pub spool: SpoolConfig,
    pub media: MediaConfig,
}

/// `media.*` (contract, "Media in" and "Media out").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaConfig {
    /// Largest file `channels.fetch` downloads (`PAYLOAD_TOO_LARGE` beyond).
    pub max_bytes: u64,
    /// Byte budget of the media cache; least recently fetched files are evicted beyond it.
    pub cache_max_bytes: u64,
    /// Folders `channels.send` may read `path` attachments from; `None` means the default,
    /// `<state>/outbox` (see [`MediaConfig::send_dirs`]). An empty list allows no path at all.
    #[serde(serialize_with = "mask::lossy_paths")]
    pub send_dirs: Option<Vec<PathBuf>>,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            max_bytes: DEFAULT_MEDIA_MAX_BYTES,
            cache_max_bytes: DEFAULT_MEDIA_CACHE_MAX_BYTES,
            send_dirs: None,
        }
    }
}

impl MediaConfig {
    /// The effective `media.sendDirs` for the state dir `state`.
    pub fn send_dirs(&self, state: &Path) -> Vec<PathBuf> {
        match &self.send_dirs {
            Some(dirs) => dirs.clone(),
            None => vec![state.join(DEFAULT_OUTBOX)],
        }
    }
}

/// Bounds of the durable inbound spool (an extension of the contract's keys). When the spool
/// is full, connectors stop confirming platform offsets, so the platform keeps the messages
/// until the agent acknowledges; this is logged, never silent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoolConfig {
    /// Unacknowledged messages at most.
    pub max_entries: usize,
    /// Unacknowledged bytes at most.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> SpoolConfig {
        SpoolConfig {
            max_entries: DEFAULT_SPOOL_MAX_ENTRIES,
            max_bytes: DEFAULT_SPOOL_MAX_BYTES,
        }
    }
}

/// Which address the gateway listens on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// 127.0.0.1.
    #[default]
    Loopback,
    /// 0.0.0.0: every IPv4 interface.
    Lan,
    /// The Tailscale interface address (100.64.0.0/10).
    Tailnet,
    /// `gateway.customBindHost`.
    Custom,
}

impl BindMode {
    /// Every mode, in the order help texts list them.
    pub const ALL: [BindMode; 4] = [
        BindMode::Loopback,
        BindMode::Lan,
        BindMode::Tailnet,
        BindMode::Custom,
    ];
    /// The list of valid spellings, for error messages.
    pub const VALID: &'static str = "loopback, lan, tailnet, custom";

    /// The spelling used in the config file, the env and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BindMode::Loopback => "loopback",
            BindMode::Lan => "lan",
            BindMode::Tailnet => "tailnet",
            BindMode::Custom => "custom",
        }
    }
}

impl FromStr for BindMode {
    /// A plain message, so the CLI parser (argh takes any `FromStr` whose error is
    /// `Display`) can show it as-is after the flag name.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        BindMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got {}",
                    BindMode::VALID,
                    serde_json::Value::from(s)
                )
            })
    }
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `gateway.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfig {
    pub port: u16,
    pub bind: BindMode,
    /// An IP literal; only used with `bind: custom`, validated whenever set.
    pub custom_bind_host: Option<String>,
    pub auth: AuthConfig,
    /// Largest frame accepted after `connect`.
    pub max_payload_bytes: usize,
    pub max_clients: usize,
    pub tick_interval_ms: u64,
    /// Exact `Origin` header values allowed to open a WebSocket.
    pub allowed_origins: Vec<String>,
    pub agent_timeout_ms: u64,
    /// Extension key `gateway.clientBacklogBytes`: unsent bytes per client before it is
    /// closed as a slow consumer (1008).
    pub client_backlog_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            port: DEFAULT_PORT,
            bind: BindMode::Loopback,
            custom_bind_host: None,
            auth: AuthConfig::default(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_clients: DEFAULT_MAX_CLIENTS,
            tick_interval_ms: DEFAULT_TICK_INTERVAL_MS,
            allowed_origins: Vec::new(),
            agent_timeout_ms: DEFAULT_AGENT_TIMEOUT_MS,
            client_backlog_bytes: DEFAULT_CLIENT_BACKLOG_BYTES,
        }
    }
}

/// `gateway.auth.*`.
///
/// After [`load()`], `token` holds the effective token, whether it was written inline, read
/// from `token_file`, or taken from `EMONK_GATEWAY_TOKEN`. `token_file` stays set (as an
/// absolute path) only when the token really came from that file, so displays of the
/// config name the true source. The same holds for `agent_token` and `agent_token_file`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    pub token: Option<Secret>,
    #[serde(serialize_with = "mask::lossy_path")]
    pub token_file: Option<PathBuf>,
    pub password: Option<Secret>,
    /// `gateway.auth.agentToken`: when set, the only credential accepted for
    /// `role:"agent"`, and not accepted for any other role (least privilege: the agent
    /// program cannot act as an operator, and an operator credential cannot take the agent
    /// role, read the spool and post as the bot).
    pub agent_token: Option<Secret>,
    #[serde(serialize_with = "mask::lossy_path")]
    pub agent_token_file: Option<PathBuf>,
}

/// `channels.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelsConfig {
    pub telegram: TelegramConfig,
    pub discord: DiscordConfig,
    pub slack: SlackConfig,
}

/// `channels.telegram.*`. Token fields follow the same rule as [`AuthConfig`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TelegramConfig {
    pub enabled: bool,
    pub bot_token: Option<Secret>,
    #[serde(serialize_with = "mask::lossy_path")]
    pub bot_token_file: Option<PathBuf>,
    /// No trailing `/`.
    pub api_base_url: String,
    pub poll_timeout_secs: u64,
    /// Sender ids as strings; `"*"` admits everyone, empty admits no one.
    pub allow_from: Vec<String>,
    /// The least time between two edits of a streamed reply.
    pub stream_edit_interval_ms: u64,
    /// Group messages reach the agent only when they mention the bot.
    pub require_mention: bool,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            enabled: false,
            bot_token: None,
            bot_token_file: None,
            api_base_url: DEFAULT_TELEGRAM_API.to_string(),
            poll_timeout_secs: DEFAULT_POLL_TIMEOUT_SECS,
            allow_from: Vec::new(),
            stream_edit_interval_ms: DEFAULT_EDIT_INTERVAL_MS,
            require_mention: true,
        }
    }
}

/// `channels.discord.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscordConfig {
    pub enabled: bool,
    pub token: Option<Secret>,
    #[serde(serialize_with = "mask::lossy_path")]
    pub token_file: Option<PathBuf>,
    pub api_base_url: String,
    pub allow_from: Vec<String>,
    pub stream_edit_interval_ms: u64,
    pub require_mention: bool,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            enabled: false,
            token: None,
            token_file: None,
            api_base_url: DEFAULT_DISCORD_API.to_string(),
            allow_from: Vec::new(),
            stream_edit_interval_ms: DEFAULT_EDIT_INTERVAL_MS,
            require_mention: true,
        }
    }
}

/// `channels.slack.*`: Socket Mode needs both an app-level token and a bot token.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackConfig {
    pub enabled: bool,
    pub app_token: Option<Secret>,
    #[serde(serialize_with = "mask::lossy_path")]
    pub app_token_file: Option<PathBuf>,
    pub bot_token: Option<Secret>,
    #[serde(serialize_with = "mask::lossy_path")]
    pub bot_token_file: Option<PathBuf>,
    pub api_base_url: String,
    pub allow_from: Vec<String>,
    pub stream_edit_interval_ms: u64,
    pub require_mention: bool,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            enabled: false,
            app_token: None,
            app_token_file: None,
            bot_token: None,
            bot_token_file: None,
            api_base_url: DEFAULT_SLACK_API.to_string(),
            allow_from: Vec::new(),
            stream_edit_interval_ms: DEFAULT_EDIT_INTERVAL_MS,
            require_mention: true,
        }
    }
}

/// Values from CLI flags; they beat the environment and the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub port: Option<u16>,
    pub bind: Option<BindMode>,
}

/// A configuration problem. The message names the file and/or the key path (or env var)
/// and says how to fix it; it never contains a secret. The caller exits with
/// [`crate::exit::CONFIG`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix with the file the problem is in, so users with several configs (one per
    /// gateway) know which one to edit.
    pub(crate) fn in_file(self, path: &Path) -> Self {
        ConfigError::new(format!("config {}: {}", path.display(), self.message))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parse JSON text: no env, no secret files. Unknown keys, wrong types, out-of-range
    /// values and contradictions inside the file are errors naming the full key path.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        parse::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_defaults_match_the_contract() {
        let m = Config::default().media;
        assert_eq!((m.max_bytes, m.cache_max_bytes), (20_971_520, 268_435_456));
        assert_eq!(m.send_dirs(Path::new("/s")), [PathBuf::from("/s/outbox")]);
        let none = MediaConfig {
            send_dirs: Some(Vec::new()),
            ..MediaConfig::default()
        };
        assert!(none.send_dirs(Path::new("/s")).is_empty());
        assert!(MEDIA_MAX_BYTES_RANGE.0 <= m.max_bytes && m.max_bytes <= MEDIA_MAX_BYTES_RANGE.1);
        assert!(m.cache_max_bytes >= m.max_bytes);
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::default();
        let g = &c.gateway;
        assert_eq!(g.port, 18789);
        assert_eq!(g.bind, BindMode::Loopback);
        assert_eq!(g.custom_bind_host, None);
        assert_eq!(g.auth, AuthConfig::default());
        assert_eq!(g.max_payload_bytes, 26_214_400);
        assert_eq!(g.max_clients, 1024);
        assert_eq!(g.tick_interval_ms, 30_000);
        assert!(g.allowed_origins.is_empty());
        assert_eq!(g.agent_timeout_ms, 120_000);
        assert_eq!(g.client_backlog_bytes, 4_194_304);
        let t = &c.channels.telegram;
        assert!(!t.enabled);
        assert_eq!(t.api_base_url, "https://api.telegram.org");
        assert_eq!(t.poll_timeout_secs, 25);
        assert!(t.allow_from.is_empty());
        assert_eq!(c.channels.discord.api_base_url, "https://discord.com/api/v10");
        assert_eq!(c.channels.slack.api_base_url, "https://slack.com/api");
        assert!(!c.channels.discord.enabled && !c.channels.slack.enabled);
    }

    #[test]
    fn bind_mode_round_trips() {
        for m in BindMode::ALL {
            assert_eq!(m.as_str().parse::<BindMode>(), Ok(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        let err = "LAN".parse::<BindMode>().unwrap_err();
        assert_eq!(err, "expected one of loopback, lan, tailnet, custom, got \"LAN\"");
    }

    #[test]
    fn config_error_display_and_prefix() {
        let e = ConfigError::new("gateway.port: bad").in_file(Path::new("/etc/emonk.json"));
        assert_eq!(e.to_string(), "config /etc/emonk.json: gateway.port: bad");
        assert_eq!(e.message(), e.to_string());
    }
}
