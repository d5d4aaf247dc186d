//! Discord MESSAGE_CREATE payloads to the contract's `channel.message` params.
//!
//! Required are only the fields needed to deliver a message: `id` (the spool sequence and
//! `messageId`), `channel_id` and `author.id`. Everything else is optional (`type` counts as
//! 0, a missing `timestamp` is read from the snowflake, `content` as empty), so a gateway
//! emulator that sends less than Discord documents still works. An event that lacks a needed
//! field is [`Normalized::Incomplete`], naming it.
//!
//! Choices the contract leaves open, and why:
//! - `chatId` is the `channel_id`, which is what `channels.send` takes as `to`. For a message
//!   in a thread it is the thread's channel id, so a reply lands in the thread.
//! - `chatType` is `"dm"` when the event has no `guild_id` (a direct message or a group DM),
//!   else `"guild"`.
//! - `threadId` is null: the event does not say whether its channel is a thread, and the
//!   thread already is the chat.
//! - `from.name` is the display name (`global_name`), else the username, else the id.
//! - `replyTo` is `message_reference.message_id` of a reply (a reference of type 0 or
//!   without a type; forwards, type 1, are not replies).
//! - Only user-written messages (type 0 DEFAULT and 19 REPLY) are considered; joins, pins,
//!   boosts and the like are skipped.
//! - `mentioned` (for `requireMention`): the bot is in `mentions` or written `<@BOT_ID>` in
//!   the text, or the message replies to one of the bot's (`referenced_message.author`).
//!   Role mentions and `@everyone` do not count.
//! - `ts` is the `timestamp` in unix ms; for an edit (MESSAGE_UPDATE, `edited: true`) the
//!   `edited_timestamp`.

use serde_json::{Map, Value, json};

use crate::channels::fields::{Fields, Missing};

/// The outcome for one MESSAGE_CREATE.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    /// A message for the agent: its id as a number (the spool sequence), the author id (for
    /// allowFrom) and the params without `cursor`.
    Message {
        id: u64,
        sender_id: String,
        params: Map<String, Value>,
    },
    /// Written by the bot itself.
    Own,
    /// Not for the agent.
    Skip(&'static str),
    /// A user's message whose `content` is empty although nothing else (attachment, embed,
    /// sticker, poll) carries it: what Discord sends when the bot lacks the privileged
    /// MESSAGE_CONTENT intent.
    NoContent { sender_id: String },
    /// An event that lacks a field needed to deliver it (`Missing` names the field and the
    /// message id, when there is one).
    Incomplete(Missing),
}

/// Map one MESSAGE_CREATE `d` for the bot `bot_id`.
pub fn normalize(d: &Value, bot_id: Option<&str>) -> Normalized {
    let what = match Fields::new("", d).opt_id("id") {
        Some(id) => format!("MESSAGE_CREATE {id}"),
        None => "a MESSAGE_CREATE".to_owned(),
    };
    message(Fields::new(&what, d), bot_id).unwrap_or_else(Normalized::Incomplete)
}

/// Map one MESSAGE_UPDATE `d`: an edit of a message's text arrives as `channel.message` with
/// `edited: true` and the new text, `ts` the edit's time. Updates that carry no `content`
/// or no `author` are Discord filling in embeds or flags, not an edit: skipped.
pub fn normalize_edit(d: &Value, bot_id: Option<&str>) -> Normalized {
    if d.get("content").is_none() || d.get("author").is_none() {
        return Normalized::Skip("an update without new text");
    }
    match normalize(d, bot_id) {
        Normalized::Message {
            id,
            sender_id,
            mut params,
        } => {
            params.insert("edited".into(), json!(true));
            let at = Fields::new("", d)
                .opt_str("edited_timestamp")
                .and_then(rfc3339_ms);
            if let Some(ms) = at {
                params.insert("ts".into(), json!(ms));
            }
            Normalized::Message {
                id,
                sender_id,
                params,
            }
        }
        other => other,
    }
}

fn message(d: Fields<'_>, bot_id: Option<&str>) -> Result<Normalized, Missing> {
    let id_text = d.id("id")?;
    let id = d.parse("id", "a snowflake", |_| id_text.parse::<u64>().ok())?;
    let sender_id = d.id("author.id")?;
    if bot_id == Some(sender_id.as_str()) {
        return Ok(Normalized::Own);
    }
    let kind = d.get("type").and_then(Value::as_u64).unwrap_or(0);
    if kind != 0 && kind != 19 {
        return Ok(Normalized::Skip("not a user message"));
    }
    let channel_id = d.id("channel_id")?;
    let text = d.opt_str("content").unwrap_or_default().to_owned();
    let attachments = super::media::attachments(d.value(), &channel_id, &id_text);
    if text.is_empty() && attachments.is_empty() {
        let non_empty = |key: &str| match d.get(key) {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
            None => false,
        };
        let carried = [
            "attachments",
            "embeds",
            "sticker_items",
            "stickers",
            "components",
            "poll",
        ]
        .iter()
        .any(|k| non_empty(k));
        let bot_author = d.get("author.bot").and_then(Value::as_bool) == Some(true);
        if carried || bot_author {
            return Ok(Normalized::Skip("no text"));
        }
        return Ok(Normalized::NoContent { sender_id });
    }
    let username = d.opt_str("author.username").map(str::to_owned);
    let name = d
        .opt_str("author.global_name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| username.clone())
        .unwrap_or_else(|| sender_id.clone());
    let reply_to = d
        .get("message_reference")
        .filter(|r| r.get("type").and_then(Value::as_u64).unwrap_or(0) == 0)
        .and_then(|_| d.opt_id("message_reference.message_id"));
    let ts = d
        .opt_str("timestamp")
        .and_then(rfc3339_ms)
        .unwrap_or_else(|| snowflake_ms(id));
    let chat_type = if d.get("guild_id").is_some() {
        "guild"
    } else {
        "dm"
    };

    let mut params = Map::new();
    params.insert("channel".into(), json!("discord"));
    params.insert("chatId".into(), json!(channel_id));
    params.insert("chatType".into(), json!(chat_type));
    params.insert("messageId".into(), json!(id_text));
    params.insert("threadId".into(), Value::Null);
    params.insert(
        "from".into(),
        json!({"id": sender_id, "username": username, "name": name}),
    );
    params.insert("text".into(), json!(text));
    params.insert("ts".into(), json!(ts));
    params.insert("replyTo".into(), json!(reply_to));
    params.insert("edited".into(), json!(false));
    let mentioned = bot_id.is_some_and(|bot| mentions(d.value(), &text, bot));
    params.insert("mentioned".into(), json!(mentioned));
    // Discord has no albums: the files of one message are its attachments.
    params.insert("attachments".into(), json!(attachments));
    params.insert("mediaGroupId".into(), Value::Null);
    Ok(Normalized::Message {
        id,
        sender_id,
        params,
    })
}

/// A press on one of the bot's buttons, from an INTERACTION_CREATE.
#[derive(Clone, Debug, PartialEq)]
pub struct Press {
    /// The interaction id (a snowflake: the spool sequence) and token, to answer it.
    pub id: u64,
    pub id_text: String,
    pub token: String,
    pub sender_id: String,
    /// The `channel.action` params without `cursor`.
    pub params: Map<String, Value>,
}

/// The press in an INTERACTION_CREATE `d`: a message component (type 3) that is a button
/// (component type 2). Anything else (slash commands, select menus) is `None`. The user is
/// `member.user` in a guild, `user` in a DM.
pub fn press(d: &Value) -> Option<Press> {
    let f = Fields::new("INTERACTION_CREATE", d);
    if d.get("type").and_then(Value::as_u64) != Some(3) {
        return None;
    }
    if d.pointer("/data/component_type").and_then(Value::as_u64) != Some(2) {
        return None;
    }
    let id_text = f.opt_id("id")?;
    let id = id_text.parse().ok()?;
    let token = f.opt_str("token")?.to_owned();
    let channel = f.opt_id("channel_id")?;
    let message = f.opt_id("message.id")?;
    let action = f.opt_str("data.custom_id")?.to_owned();
    let user = d.pointer("/member/user").or_else(|| d.get("user"))?;
    let sender_id = user.get("id").and_then(Value::as_str)?.to_owned();
    let username = user.get("username").and_then(Value::as_str);
    let name = user
        .get("global_name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or(username)
        .unwrap_or(&sender_id)
        .to_owned();
    let mut params = Map::new();
    params.insert("channel".into(), json!("discord"));
    params.insert("chatId".into(), json!(channel));
    params.insert("messageId".into(), json!(message));
    params.insert(
        "from".into(),
        json!({"id": sender_id, "username": username, "name": name}),
    );
    params.insert("action".into(), json!(action));
    params.insert("ts".into(), json!(snowflake_ms(id)));
    Some(Press {
        id,
        id_text,
        token,
        sender_id,
        params,
    })
}

/// Whether the message mentions the bot `bot` or replies to one of its messages.
fn mentions(d: &Value, text: &str, bot: &str) -> bool {
    let id_is_bot = |user: &Value| user.get("id").and_then(Value::as_str) == Some(bot);
    let listed = d
        .get("mentions")
        .and_then(Value::as_array)
        .is_some_and(|users| users.iter().any(id_is_bot));
    let replied = d
        .get("referenced_message")
        .and_then(|m| m.get("author"))
        .is_some_and(id_is_bot);
    listed || replied || crate::channels::mention::has_user_mention(text, bot)
}

/// Discord's epoch (2015-01-01T00:00:00Z) in unix ms; a snowflake's top 42 bits are ms since it.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The creation time of a snowflake, in unix ms (the fallback when `timestamp` is missing).
pub fn snowflake_ms(id: u64) -> u64 {
    (id >> 22) + DISCORD_EPOCH_MS
}

/// An RFC 3339 timestamp (`2024-05-01T12:34:56.789000+00:00`, `...Z`, any fraction length,
/// any offset) in unix ms; `None` when it is not one. Leap seconds (`:60`) count as `:59`.
pub fn rfc3339_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?.min(59));
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(extra: Value) -> Value {
        let mut m = json!({
            "id": "1234567890123456789", "channel_id": "555", "type": 0,
            "author": {"id": "42", "username": "ada", "global_name": "Ada Lovelace"},
            "content": "hello", "timestamp": "2024-05-01T12:34:56.789000+00:00",
            "attachments": [], "embeds": [], "mentions": []
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    #[test]
    fn mentions_of_the_bot_by_id_or_reply() {
        let mentioned = |extra: Value| match normalize(&message(extra), Some("9")) {
            Normalized::Message { params, .. } => params["mentioned"] == json!(true),
            other => panic!("{other:?}"),
        };
        assert!(!mentioned(json!({"guild_id": "7"})));
        assert!(mentioned(
            json!({"guild_id": "7", "mentions": [{"id": "9", "username": "emonk"}]})
        ));
        assert!(mentioned(json!({"guild_id": "7", "content": "hey <@9>"})));
        assert!(
            !mentioned(json!({"guild_id": "7", "content": "hey <@99>", "mentions": [{"id": "99"}]})),
            "another bot"
        );
        assert!(!mentioned(json!({"guild_id": "7", "content": "<@&9> role"})));
        assert!(mentioned(json!({"guild_id": "7", "type": 19,
            "message_reference": {"message_id": "111"},
            "referenced_message": {"id": "111", "author": {"id": "9"}}})));
    }

    #[test]
    fn dm_and_guild_messages() {
        let Normalized::Message {
            id,
            sender_id,
            params,
        } = normalize(&message(json!({})), Some("9"))
        else {
            panic!()
        };
        assert_eq!(id, 1234567890123456789);
        assert_eq!(sender_id, "42");
        assert_eq!(
            Value::Object(params),
            json!({"channel": "discord", "chatId": "555", "chatType": "dm",
                   "messageId": "1234567890123456789", "threadId": null,
                   "from": {"id": "42", "username": "ada", "name": "Ada Lovelace"},
                   "text": "hello", "ts": 1_714_566_896_789u64, "replyTo": null, "edited": false,
                   "mentioned": false, "attachments": [], "mediaGroupId": null})
        );
        let m = message(json!({"guild_id": "7", "type": 19,
            "message_reference": {"message_id": "111", "channel_id": "555"},
            "author": {"id": "42", "username": "ada", "global_name": null}}));
        let Normalized::Message { params, .. } = normalize(&m, Some("9")) else {
            panic!()
        };
        assert_eq!(params["chatType"], "guild");
        assert_eq!(params["replyTo"], "111");
        assert_eq!(params["from"]["name"], "ada");
    }

    #[test]
    fn own_system_and_empty_messages() {
        let own = message(json!({"author": {"id": "9", "username": "me", "bot": true}}));
        assert_eq!(normalize(&own, Some("9")), Normalized::Own);
        assert!(matches!(
            normalize(&message(json!({"type": 7})), Some("9")),
            Normalized::Skip(_)
        ));
        let photo = message(json!({"content": "", "attachments": [{"id": "1"}]}));
        assert!(matches!(normalize(&photo, Some("9")), Normalized::Skip(_)));
        let empty = message(json!({"content": ""}));
        assert_eq!(
            normalize(&empty, Some("9")),
            Normalized::NoContent {
                sender_id: "42".into()
            }
        );
        let forward = message(json!({"message_reference": {"type": 1, "message_id": "5"}}));
        let Normalized::Message { params, .. } = normalize(&forward, None) else {
            panic!()
        };
        assert_eq!(params["replyTo"], Value::Null);
    }

    /// Only `id`, `channel_id`, `author.id` and `content`: no type, timestamp, names, lists.
    #[test]
    fn a_minimal_message_is_delivered() {
        let d = json!({"id": "1234567890123456789", "channel_id": "555",
                       "author": {"id": "42"}, "content": "hi"});
        let Normalized::Message { id, params, .. } = normalize(&d, Some("9")) else {
            panic!()
        };
        assert_eq!(id, 1234567890123456789);
        assert_eq!(
            params["from"],
            json!({"id": "42", "username": null, "name": "42"})
        );
        assert_eq!(params["ts"], snowflake_ms(id));
        assert_eq!(params["chatType"], "dm");
        // Numeric ids, as an emulator may write them, are ids too.
        let d = json!({"id": 77, "channel_id": 555, "author": {"id": 42}, "content": "hi"});
        let Normalized::Message { id, params, .. } = normalize(&d, None) else {
            panic!()
        };
        assert_eq!((id, params["chatId"].as_str()), (77, Some("555")));
    }

    #[test]
    fn a_needed_field_missing_is_named_with_the_message_id() {
        let text = |d: Value| match normalize(&d, Some("9")) {
            Normalized::Incomplete(missing) => missing.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(json!({"id": "5", "author": {"id": "42"}, "content": "hi"})),
            r#"MESSAGE_CREATE 5 has no "channel_id""#
        );
        assert_eq!(
            text(json!({"id": "5", "channel_id": "1", "author": {"username": "x"}, "content": "hi"})),
            r#"MESSAGE_CREATE 5 has no "author.id""#
        );
        assert_eq!(
            text(json!({"channel_id": "1", "author": {"id": "42"}, "content": "hi"})),
            r#"a MESSAGE_CREATE has no "id""#
        );
        assert_eq!(
            text(json!({"id": "x1", "channel_id": "1", "author": {"id": "42"}, "content": "hi"})),
            r#"MESSAGE_CREATE x1 has "id" as a string, not a snowflake"#
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ms("2024-05-01T12:34:56.789000+00:00"),
            Some(1_714_566_896_789)
        );
        assert_eq!(rfc3339_ms("2024-05-01T14:34:56.7+02:00"), Some(1_714_566_896_700));
        assert_eq!(rfc3339_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(rfc3339_ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(rfc3339_ms("2024-05-01 12:34:56Z"), Some(1_714_566_896_000));
        assert_eq!(rfc3339_ms("2024-05-01T12:34:56"), None);
        assert_eq!(rfc3339_ms("2024-05-01T12:34:56.Z"), None);
        assert_eq!(rfc3339_ms("garbage"), None);
        assert_eq!(rfc3339_ms("2024-05-01T12:34:56+0000"), None);
        // The snowflake of the docs' example: 2016-04-30 11:18:25.796 UTC.
        assert_eq!(snowflake_ms(175928847299117063), 1_462_015_105_796);
    }
}
