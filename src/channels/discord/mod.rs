//! The Discord connector: Gateway v10 over a WebSocket in, REST `POST /channels/{id}/messages`
//! out.
//!
//! - [`api`]: the blocking REST client and its error classification.
//! - [`gateway`]: the gateway thread (heartbeats, Identify/Resume, close codes).
//! - [`normalize`]: MESSAGE_CREATE to `channel.message` params.
//! - [`outbound`]: `channels.send` jobs, rate-limit buckets.
//! - [`worker`]: the connector thread.

pub mod api;
mod fetch;
pub mod gateway;
pub mod media;
pub mod normalize;
mod outbound;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::stream::StreamShape;
use super::{ChannelStatus, Connector, ConnectorContext};
use crate::config::DiscordConfig;
use crate::spool::Spool;

pub struct Discord {
    api_base_url: String,
    token: String,
    allow_from: Vec<String>,
    stream_edit_interval: Duration,
    require_mention: bool,
    spool: Arc<Mutex<Spool>>,
}

impl Discord {
    /// `None` when the channel is disabled. The token is present whenever it is enabled
    /// (config validation guarantees it). A `Bot ` prefix pasted into the token is dropped:
    /// REST adds it, and the gateway wants the bare token.
    pub fn from_config(config: &DiscordConfig, spool: Arc<Mutex<Spool>>) -> Option<Discord> {
        if !config.enabled {
            return None;
        }
        let token = config.token.as_ref()?.expose().trim();
        let token = token.strip_prefix("Bot ").unwrap_or(token).trim().to_owned();
        if config.allow_from.is_empty() {
            log::warn!(
                "discord: channels.discord.allowFrom is empty, so every sender is refused; add user ids (or \"*\")"
            );
        }
        Some(Discord {
            api_base_url: config.api_base_url.clone(),
            token,
            allow_from: config.allow_from.clone(),
            stream_edit_interval: Duration::from_millis(config.stream_edit_interval_ms),
            require_mention: config.require_mention,
            spool,
        })
    }
}

impl Connector for Discord {
    fn channel(&self) -> &'static str {
        "discord"
    }

    fn initial_status(&self) -> ChannelStatus {
        ChannelStatus::new("discord", "starting")
    }

    fn stream_shape(&self) -> StreamShape {
        StreamShape::of(&outbound::SHAPE, false, self.stream_edit_interval)
    }

    fn run(self: Box<Self>, ctx: ConnectorContext) {
        let api = api::RestApi::new(&self.api_base_url, &self.token);
        let mentions = super::mention::MentionGate::new(self.require_mention);
        worker::Worker::new(api, self.token, self.allow_from, mentions, self.spool, ctx).run();
    }
}
