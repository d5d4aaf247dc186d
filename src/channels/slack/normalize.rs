//! Socket Mode frames and Slack `message` events to the contract's `channel.message` params.
//!
//! Required are only the fields needed: an envelope's `envelope_id` (to acknowledge it), and
//! of a message its `channel`, `user` and `ts` and a non-empty `text` or `files`. Everything else is
//! optional (`event_id` for deduplication falls back to the envelope id, `channel_type` is
//! read from the channel id), so a Socket Mode emulator that sends less than Slack documents
//! still works. What lacks a needed field is [`Frame::Incomplete`] or
//! [`Normalized::Incomplete`], naming it.
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

use crate::channels::fields::{Fields, Missing};

/// One Socket Mode frame from Slack, as far as the connector cares.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Hello,
    /// `disconnect` with its `reason` (`refresh_requested`, `warning`, `link_disabled`, ...).
    Disconnect(String),
    /// An envelope to acknowledge. `payload` is set for `events_api` and `interactive`.
    Envelope {
        envelope_id: String,
        kind: String,
        payload: Option<Value>,
    },
    /// An envelope that cannot be acknowledged (no `envelope_id`), so it is not handled.
    Incomplete(Missing),
    /// Anything else (logged at debug level and ignored).
    Other(String),
}

/// Envelope types: what carries an `envelope_id` to acknowledge.
const ENVELOPE_KINDS: [&str; 3] = ["events_api", "slash_commands", "interactive"];

pub fn parse_frame(text: &str) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Frame::Other("not JSON".into());
    };
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
    let envelope_id = Fields::new("", &v).opt_id("envelope_id");
    if envelope_id.is_none() && ENVELOPE_KINDS.contains(&kind.as_str()) {
        return Frame::Incomplete(Missing::new(format!("an envelope of type {kind}"), "envelope_id"));
    }
    if let Some(id) = envelope_id {
        return Frame::Envelope {
            envelope_id: id,
            payload: (kind == "events_api" || kind == "interactive")
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

/// A press on one of the bot's buttons, from an `interactive` envelope's `block_actions`.
#[derive(Clone, Debug, PartialEq)]
pub struct Press {
    /// Stable across Slack's redeliveries of the envelope: the channel, message and the
    /// action's own `action_ts`.
    pub key: String,
    pub sender_id: String,
    /// The `channel.action` params without `cursor`.
    pub params: Map<String, Value>,
}

/// The press in a `block_actions` payload: its first action that is a button (its `value`
/// is the `action` given to `channels.send`). Anything else (view submissions, shortcuts,
/// select menus, a press without its message) is `None`.
pub fn press(payload: &Value) -> Option<Press> {
    let p = Fields::new("block_actions", payload);
    if p.opt_str("type") != Some("block_actions") {
        return None;
    }
    let action = payload
        .get("actions")?
        .as_array()?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("button"))?;
    let value = action.get("value").and_then(Value::as_str)?;
    let user = p.opt_str("user.id")?.to_owned();
    let channel = p
        .opt_str("channel.id")
        .or_else(|| p.opt_str("container.channel_id"))?
        .to_owned();
    let message = p
        .opt_str("container.message_ts")
        .or_else(|| p.opt_str("message.ts"))?
        .to_owned();
    let at = action.get("action_ts").and_then(Value::as_str).unwrap_or("");
    let name = p
        .opt_str("user.name")
        .or_else(|| p.opt_str("user.username"))
        .unwrap_or(&user)
        .to_owned();
    let mut params = Map::new();
    params.insert("channel".into(), json!("slack"));
    params.insert("chatId".into(), json!(channel));
    params.insert("messageId".into(), json!(message));
    params.insert(
        "from".into(),
        json!({"id": user, "username": p.opt_str("user.username"), "name": name}),
    );
    params.insert("action".into(), json!(value));
    let ts = match ts_to_ms(at) {
        0 => crate::procinfo::unix_ms(),
        ms => ms,
    };
    params.insert("ts".into(), json!(ts));
    Some(Press {
        key: format!("action:{channel}:{message}:{at}:{user}"),
        sender_id: user,
        params,
    })
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
    /// A message that lacks a field needed to deliver it (`Missing` names the field and the
    /// event).
    Incomplete(Missing),
}

/// The key that identifies a delivery across redeliveries: `event_id`, else the envelope id.
pub fn dedupe_key(payload: &Value, envelope_id: &str) -> String {
    payload
        .get("event_id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("envelope:{envelope_id}"), str::to_owned)
}

/// Map one `events_api` payload; `key` (its [`dedupe_key`]) names it in errors.
pub fn normalize(payload: &Value, key: &str, me: &Me) -> Normalized {
    let what = format!("event {key}");
    message(Fields::new(&what, payload), me).unwrap_or_else(Normalized::Incomplete)
}

fn message(payload: Fields<'_>, me: &Me) -> Result<Normalized, Missing> {
    if payload.get("event").is_none() {
        return Err(payload.missing("event"));
    }
    if payload.opt_str("event.type") != Some("message") {
        return Ok(Normalized::Skip("not a message event"));
    }
    // The message itself: the event, or for an edit the new version inside it.
    let (m, edited) = match payload.opt_str("event.subtype") {
        None | Some("thread_broadcast" | "file_share" | "me_message") => ("event", false),
        Some("message_changed") => ("event.message", true),
        Some(_) => return Ok(Normalized::Skip("unhandled subtype")),
    };
    let at = |key: &str| format!("{m}.{key}");
    // Checked first: a message the agent would not get anyway is no reason to complain.
    let attachments = payload.get(m).map(super::media::attachments).unwrap_or_default();
    let text = payload.opt_str(&at("text")).unwrap_or("");
    if text.is_empty() && attachments.is_empty() {
        return Ok(Normalized::Skip("no text"));
    }
    let bot_id = payload.opt_str(&at("bot_id"));
    let user = match payload.str(&at("user")) {
        Ok(user) => user.to_owned(),
        // An app's message without a user: not a person writing.
        Err(_) if bot_id.is_some() => return Ok(Normalized::Skip("a bot's message")),
        Err(missing) => return Err(missing),
    };
    if user == me.user_id || (me.bot_id.is_some() && bot_id == me.bot_id.as_deref()) {
        return Ok(Normalized::Skip("the bot's own message"));
    }
    let channel = payload.str("event.channel")?.to_owned();
    let ts = payload.str(&at("ts"))?.to_owned();
    let chat_type = payload
        .opt_str("event.channel_type")
        .unwrap_or_else(|| guess_channel_type(&channel));
    let thread_id = payload.opt_str(&at("thread_ts")).filter(|t| *t != ts);
    // An edit happens when the event does, not when the message was first posted.
    let at_ts = if edited {
        payload
            .opt_str("event.event_ts")
            .or_else(|| payload.opt_str("event.ts"))
            .unwrap_or(&ts)
    } else {
        &ts
    };

    let mut params = Map::new();
    params.insert("channel".into(), json!("slack"));
    params.insert("chatId".into(), json!(channel));
    params.insert("chatType".into(), json!(chat_type));
    params.insert("messageId".into(), json!(ts));
    params.insert("threadId".into(), json!(thread_id));
    params.insert("from".into(), json!({"id": user, "username": null, "name": user}));
    params.insert("text".into(), json!(text));
    params.insert("ts".into(), json!(ts_to_ms(at_ts)));
    params.insert("replyTo".into(), Value::Null);
    params.insert("edited".into(), json!(edited));
    // A mention is `<@BOT_USER_ID>` in the text, or a reply in a thread the bot started.
    let replies_to_bot = payload.opt_str(&at("parent_user_id")) == Some(me.user_id.as_str());
    let mentioned = replies_to_bot || crate::channels::mention::has_user_mention(text, &me.user_id);
    params.insert("mentioned".into(), json!(mentioned));
    // The files of one message are its attachments; Slack has no albums beyond that.
    params.insert("attachments".into(), json!(attachments));
    params.insert("mediaGroupId".into(), Value::Null);
    Ok(Normalized::Message {
        sender_id: user,
        params,
    })
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
    fn mentions_of_the_bot_user_or_a_reply_in_its_thread() {
        let mentioned = |event: Value| match normalize(&payload(event), "Ev", &me()) {
            Normalized::Message { params, .. } => params["mentioned"] == json!(true),
            other => panic!("{other:?}"),
        };
        let base = |text: &str| json!({"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1", "text": text, "ts": "1.1"});
        assert!(!mentioned(base("hi all")));
        assert!(mentioned(base("hi <@UBOT>")));
        assert!(mentioned(base("hi <@UBOT|emonk>")));
        assert!(!mentioned(base("hi <@UOTHER>")), "another bot");
        let mut reply = base("agreed");
        reply["thread_ts"] = json!("1.0");
        reply["parent_user_id"] = json!("UBOT");
        assert!(mentioned(reply));
    }

    #[test]
    fn a_thread_reply_in_a_channel() {
        let n = normalize(
            &payload(
                json!({"type": "message", "channel": "C1", "channel_type": "channel",
                "user": "U1", "text": "hi", "ts": "1700000000.123456", "thread_ts": "1699999999.000100"}),
            ),
            "Ev1",
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
                   "mentioned": false, "attachments": [], "mediaGroupId": null})
        );
    }

    #[test]
    fn skips_own_messages_subtypes_and_empty_text() {
        let skip = |e: Value| matches!(normalize(&payload(e), "Ev1", &me()), Normalized::Skip(_));
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
            "Ev1",
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

    /// Only `type`, `channel`, `user`, `text`, `ts`: no `event_id`, `channel_type`,
    /// `event_ts`, team or app ids.
    #[test]
    fn a_minimal_envelope_and_message_are_delivered() {
        let Frame::Envelope {
            envelope_id,
            payload: Some(payload),
            ..
        } = parse_frame(
            r#"{"envelope_id":"e1","type":"events_api","payload":{"event":{"type":"message","channel":"G1","user":"U1","text":"hi","ts":"1.5"}}}"#,
        )
        else {
            panic!()
        };
        let key = dedupe_key(&payload, &envelope_id);
        assert_eq!(key, "envelope:e1");
        let Normalized::Message { sender_id, params } = normalize(&payload, &key, &me()) else {
            panic!()
        };
        assert_eq!(sender_id, "U1");
        assert_eq!(params["chatType"], "group");
        assert_eq!(params["ts"], 1_500u64);
        assert_eq!(parse_frame(r#"{"type":"hello"}"#), Frame::Hello);
        assert_eq!(
            parse_frame(r#"{"type":"disconnect"}"#),
            Frame::Disconnect("unknown".into())
        );
    }

    #[test]
    fn a_needed_field_missing_is_named_with_the_event() {
        let text = |event: Value| match normalize(&payload(event), "Ev1", &me()) {
            Normalized::Incomplete(missing) => missing.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(json!({"type": "message", "channel": "C1", "text": "x", "ts": "1.1"})),
            r#"event Ev1 has no "event.user""#
        );
        assert_eq!(
            text(json!({"type": "message", "user": "U2", "text": "x", "ts": "1.1"})),
            r#"event Ev1 has no "event.channel""#
        );
        assert_eq!(
            text(
                json!({"type": "message", "subtype": "message_changed", "channel": "C1",
                "message": {"user": "U2", "text": "x"}})
            ),
            r#"event Ev1 has no "event.message.ts""#
        );
        assert_eq!(
            normalize(&json!({"event_id": "Ev1"}), "Ev1", &me()),
            Normalized::Incomplete(Missing::new("event Ev1", "event"))
        );
        // An app's message without a user is not a person writing: skipped quietly.
        assert!(matches!(
            normalize(
                &payload(
                    json!({"type": "message", "channel": "C1", "bot_id": "B9", "text": "x", "ts": "1.1"})
                ),
                "Ev1",
                &me()
            ),
            Normalized::Skip(_)
        ));
        let Frame::Incomplete(missing) = parse_frame(r#"{"type":"events_api","payload":{}}"#) else {
            panic!("an envelope that cannot be acked")
        };
        assert_eq!(
            missing.to_string(),
            r#"an envelope of type events_api has no "envelope_id""#
        );
    }

    #[test]
    fn ts_parsing() {
        assert_eq!(ts_to_ms("1700000000.123456"), 1_700_000_000_123);
        assert_eq!(ts_to_ms("1700000000.1"), 1_700_000_000_100);
        assert_eq!(ts_to_ms("1700000000"), 1_700_000_000_000);
        assert_eq!(ts_to_ms("x"), 0);
    }
}
