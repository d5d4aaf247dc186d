//! The Telegram connector: Bot API long polling in, `sendMessage` out.
//!
//! - [`api`]: the blocking Bot API client and its error classification.
//! - [`normalize`]: Telegram updates to `channel.message` params.
//! - [`media`]: a Message's attachments; the `file_id` behind an attachment id.
//! - [`fetch`]: `channels.fetch`: `getFile`, then the shared download into the media cache.
//! - [`ratelimit`]: the send limiter.
//! - [`offset`]: the persisted `getUpdates` offset.
//! - [`outbound`]: `channels.send` jobs.
//! - [`worker`]: the connector thread.

pub mod api;
mod fetch;
pub mod media;
pub mod normalize;
mod offset;
mod outbound;
pub mod ratelimit;
mod upload;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::mention::MentionGate;
use super::stream::StreamShape;
use super::{ChannelStatus, Connector, ConnectorContext};
use crate::config::TelegramConfig;
use crate::spool::Spool;

pub struct Telegram {
    api_base_url: String,
    token: String,
    poll_timeout: Duration,
    allow_from: Vec<String>,
    stream_edit_interval: Duration,
    require_mention: bool,
    state_dir: PathBuf,
    spool: Arc<Mutex<Spool>>,
}

impl Telegram {
    /// `None` when the channel is disabled. The token is present whenever it is enabled
    /// (config validation guarantees it).
    pub fn from_config(
        config: &TelegramConfig,
        state_dir: PathBuf,
        spool: Arc<Mutex<Spool>>,
    ) -> Option<Telegram> {
        if !config.enabled {
            return None;
        }
        let token = config.bot_token.as_ref()?.expose().to_owned();
        if config.allow_from.is_empty() {
            log::warn!(
                "telegram: channels.telegram.allowFrom is empty, so every sender is refused; add sender ids (or \"*\")"
            );
        }
        Some(Telegram {
            api_base_url: config.api_base_url.clone(),
            token,
            poll_timeout: Duration::from_secs(config.poll_timeout_secs),
            allow_from: config.allow_from.clone(),
            stream_edit_interval: Duration::from_millis(config.stream_edit_interval_ms),
            require_mention: config.require_mention,
            state_dir,
            spool,
        })
    }
}

impl Connector for Telegram {
    fn channel(&self) -> &'static str {
        "telegram"
    }

    fn initial_status(&self) -> ChannelStatus {
        ChannelStatus::new("telegram", "starting")
    }

    fn stream_shape(&self) -> StreamShape {
        StreamShape::of(&outbound::SHAPE, true, self.stream_edit_interval)
    }

    fn run(self: Box<Self>, ctx: ConnectorContext) {
        let api = api::BotApi::new(&self.api_base_url, &self.token);
        let settings = worker::Settings {
            poll_timeout: self.poll_timeout,
            allow_from: self.allow_from,
            mentions: MentionGate::new(self.require_mention),
        };
        let offset_file = offset::OffsetFile::new(&self.state_dir);
        worker::Worker::new(api, settings, self.spool, offset_file, ctx).run();
    }
}
