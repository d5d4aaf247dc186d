//! `channels.typing`, the part every connector shares: the request, and the keepalive that
//! repeats an indicator before the platform lets it lapse (Telegram's after about 5 s,
//! Discord's after about 10 s) until a message goes to that chat or the `ttlMs` ends.
//!
//! Many chats at once cost one entry each in [`Keepalive`] and a timer in the connector's
//! loop, not a thread: each renewal is one short HTTP call like any other. The platform's own
//! call (and whether it has an indicator at all: Slack's bots have none) stays in the
//! connector.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::ConnectorContext;
use crate::protocol::ErrorBody;

/// `ttlMs` when the request gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The longest `ttlMs`.
pub const MAX_TTL_MS: u64 = 120_000;
/// Chats kept alive at once per connector; the one ending soonest makes room.
const MAX_CHATS: usize = 1000;

/// What the indicator says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypingAction {
    #[default]
    Typing,
    UploadPhoto,
    UploadDocument,
    RecordVoice,
}

impl TypingAction {
    /// The name on the wire (Telegram's `sendChatAction` takes the same names).
    pub fn as_str(self) -> &'static str {
        match self {
            TypingAction::Typing => "typing",
            TypingAction::UploadPhoto => "upload_photo",
            TypingAction::UploadDocument => "upload_document",
            TypingAction::RecordVoice => "record_voice",
        }
    }
}

/// The params of `channels.typing`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TypingRequest {
    pub channel: String,
    pub to: String,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub action: TypingAction,
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

impl TypingRequest {
    /// How long to keep the indicator up; `Err` with the message for a bad `ttlMs`.
    pub fn ttl(&self) -> Result<Duration, String> {
        match self.ttl_ms {
            None => Ok(DEFAULT_TTL),
            Some(ms @ 1..=MAX_TTL_MS) => Ok(Duration::from_millis(ms)),
            Some(ms) => Err(format!(
                "ttlMs {ms} is out of range; give 1 to {MAX_TTL_MS} (milliseconds)"
            )),
        }
    }
}

/// One `channels.typing` handed to a connector; answered with
/// [`super::ConnectorEvent::SendDone`] carrying `{"shown":bool}`.
#[derive(Clone, Debug)]
pub struct TypingJob {
    pub id: u64,
    pub request: TypingRequest,
    pub ttl: Duration,
}

/// An indicator to show again now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The chat (the connector's send key: a chat id, or a thread's channel).
    pub key: String,
    pub action: TypingAction,
    pub thread: Option<String>,
}

struct Entry {
    action: TypingAction,
    thread: Option<String>,
    until: Instant,
    next: Instant,
}

/// The chats whose indicator is kept alive, and when each is shown next.
pub struct Keepalive {
    /// How often the platform needs the indicator repeated.
    every: Duration,
    chats: HashMap<String, Entry>,
}

impl Keepalive {
    pub fn new(every: Duration) -> Keepalive {
        Keepalive {
            every,
            chats: HashMap::new(),
        }
    }

    /// The indicator was just shown in `key`: repeat it until `now + ttl`. A new request for
    /// the same chat replaces the old one.
    pub fn start(
        &mut self,
        key: String,
        action: TypingAction,
        thread: Option<String>,
        ttl: Duration,
        now: Instant,
    ) {
        if self.chats.len() >= MAX_CHATS && !self.chats.contains_key(&key) {
            if let Some(soonest) = self
                .chats
                .iter()
                .min_by_key(|(_, e)| e.until)
                .map(|(k, _)| k.clone())
            {
                self.chats.remove(&soonest);
            }
        }
        let entry = Entry {
            action,
            thread,
            until: now + ttl,
            next: now + self.every,
        };
        self.chats.insert(key, entry);
    }

    /// A message went to `key` (which ends the platform's indicator) or showing it failed.
    pub fn stop(&mut self, key: &str) {
        self.chats.remove(key);
    }

    /// The indicators to show again now; chats past their ttl are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Renewal> {
        self.chats.retain(|_, e| e.until > now);
        let every = self.every;
        self.chats
            .iter_mut()
            .filter(|(_, e)| e.next <= now)
            .map(|(key, e)| {
                e.next = now + every;
                Renewal {
                    key: key.clone(),
                    action: e.action,
                    thread: e.thread.clone(),
                }
            })
            .collect()
    }

    /// When the loop must look again.
    pub fn next_wake(&self) -> Option<Instant> {
        self.chats.values().map(|e| e.next.min(e.until)).min()
    }

    pub fn len(&self) -> usize {
        self.chats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chats.is_empty()
    }
}

/// The answer to one indicator call: for the request's first (`job` is its id) the
/// `channels.typing` answer, `{"shown":true}` or the platform's refusal; for a renewal only
/// a debug line when it failed. A failure ends the keepalive for that chat.
pub fn on_result(
    keepalive: &mut Keepalive,
    ctx: &ConnectorContext,
    channel: &str,
    job: Option<u64>,
    key: &str,
    result: Result<(), ErrorBody>,
) {
    if result.is_err() {
        keepalive.stop(key);
    }
    match (job, result) {
        (Some(id), Ok(())) => ctx.finish_sends(vec![(id, Ok(json!({"shown": true})))]),
        (Some(id), Err(e)) => ctx.finish_sends(vec![(id, Err(e))]),
        (None, Ok(())) => {}
        (None, Err(e)) => log::debug!(
            "{channel}: renewing the typing indicator in {key} failed: {}",
            e.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn an_indicator_is_repeated_until_its_ttl() {
        let mut k = Keepalive::new(S(4));
        let t0 = Instant::now();
        k.start("42".into(), TypingAction::Typing, None, S(10), t0);
        assert!(k.due(t0 + S(3)).is_empty());
        assert_eq!(k.next_wake(), Some(t0 + S(4)));
        assert_eq!(k.due(t0 + S(4)).len(), 1);
        assert!(k.due(t0 + S(5)).is_empty(), "not again before the next interval");
        assert_eq!(k.due(t0 + S(8))[0].key, "42");
        assert!(k.due(t0 + S(10)).is_empty(), "the ttl is over");
        assert!(k.is_empty());
    }

    #[test]
    fn a_message_ends_it_and_a_new_request_replaces_it() {
        let mut k = Keepalive::new(S(4));
        let t0 = Instant::now();
        k.start("a".into(), TypingAction::Typing, None, S(60), t0);
        k.start("b".into(), TypingAction::RecordVoice, Some("7".into()), S(60), t0);
        k.stop("a");
        let due = k.due(t0 + S(4));
        assert_eq!(
            due,
            [Renewal {
                key: "b".into(),
                action: TypingAction::RecordVoice,
                thread: Some("7".into())
            }]
        );
        k.start("b".into(), TypingAction::UploadPhoto, None, S(1), t0 + S(4));
        assert!(k.due(t0 + S(6)).is_empty());
        assert!(k.is_empty());
    }

    #[test]
    fn the_number_of_chats_is_bounded() {
        let mut k = Keepalive::new(S(4));
        let t0 = Instant::now();
        for i in 0..=MAX_CHATS {
            k.start(
                i.to_string(),
                TypingAction::Typing,
                None,
                S(60) + Duration::from_millis(i as u64),
                t0,
            );
        }
        assert_eq!(k.len(), MAX_CHATS);
        assert!(!k.chats.contains_key("0"), "the one ending soonest made room");
    }

    #[test]
    fn ttl_and_action_are_checked() {
        let req = |v: serde_json::Value| serde_json::from_value::<TypingRequest>(v);
        let ok = req(serde_json::json!({"channel": "telegram", "to": "1"})).unwrap();
        assert_eq!(
            (ok.ttl().unwrap(), ok.action),
            (DEFAULT_TTL, TypingAction::Typing)
        );
        let zero = req(serde_json::json!({"channel": "t", "to": "1", "ttlMs": 0})).unwrap();
        assert!(zero.ttl().unwrap_err().contains("1 to 120000"));
        let big = req(serde_json::json!({"channel": "t", "to": "1", "ttlMs": 120_001})).unwrap();
        assert!(big.ttl().is_err());
        assert!(req(serde_json::json!({"channel": "t", "to": "1", "action": "dance"})).is_err());
        let voice = req(serde_json::json!({"channel": "t", "to": "1", "action": "record_voice"})).unwrap();
        assert_eq!(voice.action.as_str(), "record_voice");
    }
}
