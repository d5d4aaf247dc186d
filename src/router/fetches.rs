//! `channels.fetch` (contract, "Media in"): hits are answered from the media cache here;
//! a miss goes to the attachment's connector as one [`FetchJob`], and every client asking
//! for the same attachment meanwhile waits for that one download.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::Router;
use crate::bus::ConnId;
use crate::channels::ConnectorCommand;
use crate::channels::fetch::FetchJob;
use crate::channels::media::cache::CachedFile;
use crate::channels::media::{MediaError, id};
use crate::protocol::{ErrorBody, ErrorCode, frames};

/// Room for the rest of a response frame around the base64 `data` of an inline fetch.
const FRAME_OVERHEAD: u64 = 4096;

/// The params of `channels.fetch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchParams {
    channel: String,
    attachment: String,
    #[serde(default)]
    inline: bool,
}

/// Who waits for a fetch, and whether they want the bytes inline.
pub(super) struct FetchWaiter {
    conn: ConnId,
    request_id: String,
    inline: bool,
}

impl Router {
    /// Answer from the cache, or start (or join) the one download of this attachment.
    pub(super) fn channels_fetch(&mut self, conn: ConnId, request_id: String, p: FetchParams) {
        let waiter = FetchWaiter {
            conn,
            request_id,
            inline: p.inline,
        };
        let Some(slot) = self.connectors.get(p.channel.as_str()) else {
            return self.answer_fetch(&waiter, Err(super::channel_not_enabled(&p.channel)));
        };
        // An id of another channel (or none at all) is unknown here, even when it is cached.
        if let Err(e) = id::decode(&p.channel, &p.attachment) {
            return self.answer_fetch(&waiter, Err(e.to_body()));
        }
        if let Some(file) = self.settings.media.get(&p.attachment) {
            return self.answer_fetch(&waiter, Ok(file));
        }
        let key = p.attachment.clone();
        let Err(waiter) = self.fetches.join(&key, waiter) else {
            return;
        };
        let id = self.fetches.next_id();
        let job = FetchJob {
            id,
            attachment: p.attachment,
            cache: self.settings.media.clone(),
            max_bytes: self.settings.media_max_bytes,
        };
        if slot.commands.send(ConnectorCommand::Fetch(job)).is_err() {
            let body = ErrorBody::retryable(ErrorCode::Unavailable, "the connector has stopped", None);
            return self.answer_fetch(&waiter, Err(body));
        }
        self.fetches.begin(id, Some(key), waiter);
    }

    /// A connector finished a download: answer everyone waiting for it.
    pub(super) fn on_fetch_done(&mut self, id: u64, result: Result<CachedFile, MediaError>) {
        let Some((_, waiters)) = self.fetches.land(id) else {
            return;
        };
        let result = result.map_err(|e| e.to_body());
        for waiter in &waiters {
            self.answer_fetch(waiter, result.clone());
        }
    }

    /// Fail every fetch still waiting (at shutdown).
    pub(super) fn fail_fetches(&mut self, why: &str) {
        let body = ErrorBody::retryable(ErrorCode::Unavailable, why, None);
        for waiter in self.fetches.drain() {
            self.answer_fetch(&waiter, Err(body.clone()));
        }
    }

    fn answer_fetch(&self, waiter: &FetchWaiter, result: Result<CachedFile, ErrorBody>) {
        let result = result.and_then(|file| self.fetch_result(&file, waiter.inline));
        let frame = match &result {
            Ok(v) => frames::response_ok(&waiter.request_id, v),
            Err(e) => frames::response_error(&waiter.request_id, e),
        };
        self.out.send_frame(waiter.conn, frame);
    }

    /// `{"path","name","mime","size","sha256"}`, plus `data` (base64) when asked for and the
    /// encoded file fits in a frame of `maxPayload`; a larger file is answered without it
    /// (the client reads `path`).
    fn fetch_result(&self, file: &CachedFile, inline: bool) -> Result<Value, ErrorBody> {
        let mut v = serde_json::to_value(file).expect("a cached file serializes");
        let encoded = file.size.div_ceil(3) * 4;
        if inline && encoded + FRAME_OVERHEAD <= self.settings.max_payload as u64 {
            // Bounded by maxPayload, read in one go: a local read of at most that much.
            let bytes = std::fs::read(&file.path)
                .ok()
                .filter(|b| b.len() as u64 == file.size)
                .ok_or_else(|| {
                    ErrorBody::retryable(
                        ErrorCode::Unavailable,
                        "the cached file was removed while it was being read; fetch it again",
                        None,
                    )
                })?;
            let data = base64::engine::general_purpose::STANDARD.encode(bytes);
            v["data"] = Value::from(data);
        }
        Ok(v)
    }
}
