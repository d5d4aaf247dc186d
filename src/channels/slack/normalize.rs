//! Socket Mode frames and Slack `message` events to the contract's `channel.message` params.
//!
//! Choices the contract leaves open, and why:
//! - `chatType` is Slack's `channel_type` as is: `channel`, `group` (private channel), `im`
//!   (direct message), `mpim` (group DM).
//! - `messageId` is the message's `ts`: it is Slack's message id, and what `channels.send`
//!   takes as `threadId` (Slack's `thread_ts`) to answer in the message's thread.
//! - `threadId` is `thread_ts` for a reply inside a thread (it differs from `ts`); a thread's
//!   parent message has no `threadId`.
//! - `from.name` is the user id: looking names up (`users.info`) would need another scope
//!   and a call per sender, for no gain to an agent that keys on ids.
//! - `ts` is the event time in unix ms (`ts` "1700000000.123456" gives 1700000000123).
//! - Handled subtypes: none (a plain message), `thread_broadcast`, `file_share` and
//!   `me_message` (all carry a user and text), and `message_changed` (an edit, `edited:true`
//!   with the new text). Every other subtype (joins, topic changes, bot messages, deletions)
//!   is skipped, as are the bot's own messages (its user id or bot id).

use serde_json::{Map, Value, json};

/// One Socket Mode frame from Slack, as far as the connector cares.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Hello,
    /// `disconnect` with its `reason` (`refresh_requested`, `warning`, `link_disabled`, ...).
    Disconnect(String),
    /// An envelope to acknowledge. `payload` is set for `events_api`.
    Envelope {
        envelope_id: String,
        kind: String,
        payload: Option<Value>,
    },
    /// Anything else (logged at debug level and ignored).
    Other(String),
}

pub fn parse_frame(text: &str) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Frame::Other("not JSON".into());
    };
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(id) = v.get("envelope_id").and_then(Value::as_str) {
        return Frame::Envelope {
            envelope_id: id.to_owned(),
            payload: (kind == "events_api")
                .then(|| v.get("payload").cloned())
                .flatten(),
            kind,
        };
    }
    match kind.as_str() {
        "hello" => Frame::Hello,
        "disconnect" => Frame::Disconnect(
            v.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
        ),
        _ => Frame::Other(kind),
    }
}

/// Who the bot is, to skip its own messages.
#[derive(Clone, Debug, Default)]
pub struct Me {
    pub user_id: String,
    pub bot_id: Option<String>,
}

/// The outcome for one `events_api` payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    /// `params` is the `channel.message` payload without `cursor`; `sender_id` is
    /// `params.from.id`, for the `allowFrom` check.
    Message {
        sender_id: String,
        params: Map<String, Value>,
    },
    Skip(&'static str),
}

/// The key that identifies a delivery across redeliveries: `event_id`, else the envelope id.
pub fn dedupe_key(payload: &Value, envelope_id: &str) -> String {
    payload
        .get("event_id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("envelope:{envelope_id}"), str::to_owned)
}

/// Map one `events_api` payload.
pub fn normalize(payload: &Value, me: &Me) -> Normalized {
    let Some(event) = payload.get("event") else {
        return Normalized::Skip("payload without event");
    };
    if event.get("type").and_then(Value::as_str) != Some("message") {
        return Normalized::Skip("not a message event");
    }
    let subtype = event.get("subtype").and_then(Value::as_str);
    let (message, edited) = match subtype {
        None | Some("thread_broadcast" | "file_share" | "me_message") => (event, false),
        Some("message_changed") => match event.get("message") {
            Some(m) => (m, true),
            None => return Normalized::Skip("message_changed without message"),
        },
        Some(_) => return Normalized::Skip("unhandled subtype"),
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(user) = s(message, "user") else {
        return Normalized::Skip("message without user");
    };
    if user == me.user_id || (me.bot_id.is_some() && s(message, "bot_id") == me.bot_id) {
        return Normalized::Skip("the bot's own message");
    }
    let Some(channel) = s(event, "channel") else {
        return Normalized::Skip("message without channel");
    };
    let Some(ts) = s(message, "ts") else {
        return Normalized::Skip("message without ts");
    };
    let text = match s(message, "text") {
        Some(t) if !t.is_empty() => t,
        _ => return Normalized::Skip("no text"),
    };
    let chat_type = s(event, "channel_type").unwrap_or_else(|| guess_channel_type(&channel).to_owned());
    let thread_id = s(message, "thread_ts").filter(|t| *t != ts);
    // An edit happens when the event does, not when the message was first posted.
    let at = if edited {
        s(event, "event_ts")
            .or_else(|| s(event, "ts"))
            .unwrap_or_else(|| ts.clone())
    } else {
        ts.clone()
    };

    let mut params = Map::new();
    params.insert("channel".into(), json!("slack"));
    params.insert("chatId".into(), json!(channel));
    params.insert("chatType".into(), json!(chat_type));
    params.insert("messageId".into(), json!(ts));
    params.insert("threadId".into(), json!(thread_id));
    params.insert("from".into(), json!({"id": user, "username": null, "name": user}));
    params.insert("text".into(), json!(text));
    params.insert("ts".into(), json!(ts_to_ms(&at)));
    params.insert("replyTo".into(), Value::Null);
    params.insert("edited".into(), json!(edited));
    // The contract's fields are always present; this platform's files are not mapped yet
    // (Telegram's are: src/channels/telegram/media.rs).
    params.insert("attachments".into(), json!([]));
    params.insert("mediaGroupId".into(), Value::Null);
    Normalized::Message {
        sender_id: user,
        params,
    }
}

/// Slack's `ts` ("1700000000.123456", seconds and microseconds) in unix ms; 0 if malformed.
pub fn ts_to_ms(ts: &str) -> u64 {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let Ok(secs) = secs.parse::<u64>() else { return 0 };
    let ms: String = frac.chars().chain("000".chars()).take(3).collect();
    secs.saturating_mul(1000) + ms.parse::<u64>().unwrap_or(0)
}

/// Without `channel_type`, Slack's id prefixes: `D` direct message, `G` private or group DM,
/// `C` public channel.
fn guess_channel_type(channel: &str) -> &'static str {
    match channel.chars().next() {
        Some('D') => "im",
        Some('G') => "group",
        _ => "channel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me {
            user_id: "UBOT".into(),
            bot_id: Some("BBOT".into()),
        }
    }

    fn payload(event: Value) -> Value {
        json!({"type": "event_callback", "event_id": "Ev1", "event": event})
    }

    #[test]
    fn frames() {
        assert_eq!(
            parse_frame(r#"{"type":"hello","num_connections":1}"#),
            Frame::Hello
        );
        assert_eq!(
            parse_frame(r#"{"type":"disconnect","reason":"refresh_requested"}"#),
            Frame::Disconnect("refresh_requested".into())
        );
        let Frame::Envelope {
            envelope_id,
            kind,
            payload,
        } = parse_frame(r#"{"type":"events_api","envelope_id":"e1","payload":{"event_id":"Ev9"}}"#)
        else {
            panic!()
        };
        assert_eq!((envelope_id.as_str(), kind.as_str()), ("e1", "events_api"));
        assert_eq!(dedupe_key(&payload.unwrap(), "e1"), "Ev9");
        assert_eq!(dedupe_key(&json!({}), "e1"), "envelope:e1");
    }

    #[test]
    fn a_thread_reply_in_a_channel() {
        let n = normalize(
            &payload(
                json!({"type": "message", "channel": "C1", "channel_type": "channel",
                "user": "U1", "text": "hi", "ts": "1700000000.123456", "thread_ts": "1699999999.000100"}),
            ),
            &me(),
        );
        let Normalized::Message { sender_id, params } = n else {
            panic!("{n:?}")
        };
        assert_eq!(sender_id, "U1");
        assert_eq!(
            Value::Object(params),
            json!({"channel": "slack", "chatId": "C1", "chatType": "channel",
                "messageId": "1700000000.123456", "threadId": "1699999999.000100",
                "from": {"id": "U1", "username": null, "name": "U1"}, "text": "hi",
                "ts": 1_700_000_000_123u64, "replyTo": null, "edited": false,
                   "attachments": [], "mediaGroupId": null})
        );
    }

    #[test]
    fn skips_own_messages_subtypes_and_empty_text() {
        let skip = |e: Value| matches!(normalize(&payload(e), &me()), Normalized::Skip(_));
        assert!(skip(
            json!({"type": "message", "channel": "C1", "user": "UBOT", "text": "x", "ts": "1.1"})
        ));
        assert!(skip(
            json!({"type": "message", "channel": "C1", "user": "U2", "bot_id": "BBOT", "text": "x", "ts": "1.1"})
        ));
        assert!(skip(
            json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U2", "text": "x", "ts": "1.1"})
        ));
        assert!(skip(
            json!({"type": "message", "channel": "C1", "user": "U2", "text": "", "ts": "1.1"})
        ));
        assert!(skip(
            json!({"type": "app_mention", "channel": "C1", "user": "U2", "text": "x", "ts": "1.1"})
        ));
    }

    #[test]
    fn an_edit_and_a_thread_parent() {
        let n = normalize(
            &payload(
                json!({"type": "message", "subtype": "message_changed", "channel": "D1",
                "event_ts": "1700000050.000000",
                "message": {"user": "U1", "text": "new", "ts": "1700000000.000001", "thread_ts": "1700000000.000001"}}),
            ),
            &me(),
        );
        let Normalized::Message { params, .. } = n else {
            panic!("{n:?}")
        };
        assert_eq!(params["edited"], true);
        assert_eq!(params["text"], "new");
        assert_eq!(params["chatType"], "im");
        assert_eq!(params["threadId"], Value::Null);
        assert_eq!(params["ts"], 1_700_000_050_000u64);
    }

    #[test]
    fn ts_parsing() {
        assert_eq!(ts_to_ms("1700000000.123456"), 1_700_000_000_123);
        assert_eq!(ts_to_ms("1700000000.1"), 1_700_000_000_100);
        assert_eq!(ts_to_ms("1700000000"), 1_700_000_000_000);
        assert_eq!(ts_to_ms("x"), 0);
    }
}
