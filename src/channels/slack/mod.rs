//! The Slack connector: Socket Mode in, Web API `chat.postMessage` out.
//!
//! - [`api`]: the blocking Web API client and its error classification.
//! - [`socket`]: one Socket Mode WebSocket (blocking tungstenite, short read slices).
//! - [`normalize`]: Socket Mode frames and message events to `channel.message` params.
//! - [`seen`]: the persisted set of delivered event ids (redelivery dedupe).
//! - [`outbound`]: `channels.send` jobs.
//! - [`worker`]: the connector thread.

pub mod api;
mod emoji;
mod fetch;
pub mod media;
pub mod normalize;
mod outbound;
mod seen;
mod socket;
mod upload;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::stream::StreamShape;
use super::{ChannelStatus, Connector, ConnectorContext};
use crate::config::SlackConfig;
use crate::spool::Spool;

/// Default ping interval of a Socket Mode socket; it is declared dead after twice this
/// without any traffic.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Testing aid, not a setting: `EMONK_SLACK_PING_MS` shortens the ping interval (and with
/// it the half-open detection) so tests need not wait 30 s.
pub const PING_ENV: &str = "EMONK_SLACK_PING_MS";

pub struct Slack {
    api_base_url: String,
    app_token: String,
    bot_token: String,
    allow_from: Vec<String>,
    ping_interval: Duration,
    stream_edit_interval: Duration,
    require_mention: bool,
    state_dir: PathBuf,
    spool: Arc<Mutex<Spool>>,
}

impl Slack {
    /// `None` when the channel is disabled. Both tokens are present whenever it is enabled
    /// (config validation guarantees it).
    pub fn from_config(config: &SlackConfig, state_dir: PathBuf, spool: Arc<Mutex<Spool>>) -> Option<Slack> {
        if !config.enabled {
            return None;
        }
        let app_token = config.app_token.as_ref()?.expose().to_owned();
        let bot_token = config.bot_token.as_ref()?.expose().to_owned();
        if config.allow_from.is_empty() {
            log::warn!(
                "slack: channels.slack.allowFrom is empty, so every sender is refused; add user ids (or \"*\")"
            );
        }
        let ping_interval = std::env::var(PING_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms >= 50)
            .map_or(PING_INTERVAL, Duration::from_millis);
        Some(Slack {
            api_base_url: config.api_base_url.clone(),
            app_token,
            bot_token,
            allow_from: config.allow_from.clone(),
            ping_interval,
            stream_edit_interval: Duration::from_millis(config.stream_edit_interval_ms),
            require_mention: config.require_mention,
            state_dir,
            spool,
        })
    }
}

impl Connector for Slack {
    fn channel(&self) -> &'static str {
        "slack"
    }

    fn initial_status(&self) -> ChannelStatus {
        ChannelStatus::new("slack", "starting")
    }

    fn stream_shape(&self) -> StreamShape {
        StreamShape::of(&outbound::SHAPE, false, self.stream_edit_interval)
    }

    fn run(self: Box<Self>, ctx: ConnectorContext) {
        let settings = worker::Settings {
            allow_from: self.allow_from,
            mentions: super::mention::MentionGate::new(self.require_mention),
            app_token: self.app_token.into(),
            bot_token: self.bot_token.into(),
            ping_interval: self.ping_interval,
        };
        let seen = seen::Seen::load(&self.state_dir);
        worker::Worker::new(
            api::WebApi::new(&self.api_base_url),
            settings,
            self.spool,
            seen,
            ctx,
        )
        .run();
    }
}
