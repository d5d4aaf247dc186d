//! Telegram Update objects to the contract's `channel.message` params.
//!
//! Only the four message-carrying update kinds become messages: `message`, `edited_message`,
//! `channel_post`, `edited_channel_post`. Everything else, and messages with neither text,
//! caption nor media (joins, pins...), is skipped, but still carries its `update_id` so that
//! the connector can confirm it and never see it again. Media become `attachments`
//! (`super::media`); a media-only message has `text: ""`.
//!
//! What is needed to deliver a message, and nothing more, is required: `update_id` (to
//! confirm it), the chat's `id`, the `message_id`, and a `text` or `caption`. Everything else
//! is optional, so a Bot API emulator that leaves out documented fields still works. An
//! update that lacks a needed field is [`Normalized::Incomplete`], naming the field; it is
//! confirmed like a skipped one, so it cannot stall the stream.
//!
//! Choices the contract leaves open, and why:
//! - All ids are strings made from i64 (chat ids exceed 32 bits, e.g. `-1001234567890`).
//! - `threadId` is set only for forum-topic messages (`is_topic_message`). Ordinary
//!   supergroups also put a `message_thread_id` on replies, but that is a reply chain, which
//!   `replyTo` already says, not a place to post into.
//! - In a forum topic Telegram makes every message a "reply" to the topic's creation message;
//!   that implicit reply is not reported as `replyTo`.
//! - `ts` is the time of the event in unix ms: `edit_date` for edits (when present), else
//!   `date`, else (an answer without `date`) the time it was received.
//! - `chatType` is the chat's `type`; without one it follows from the update kind and the
//!   chat id: a channel post is `channel`, a positive id `private`, `-100…` `supergroup`,
//!   another negative id `group`.
//! - The sender is `sender_chat` when present (anonymous group admins, channel posts, linked
//!   channel forwards: there `from` is a placeholder user such as GroupAnonymousBot, which
//!   must not pass an `allowFrom` check meant for someone else); else `from`; else the chat
//!   itself (a channel post without `sender_chat`). So every message has a sender id.
//! - `mentioned` (for `requireMention`): a `mention` entity naming the bot's @username, a
//!   `text_mention` of the bot's user, a `bot_command` at the start that is `/cmd` or
//!   `/cmd@thisbot` (not `/cmd@otherbot`), or a reply to one of the bot's messages. Case
//!   does not matter in usernames, as on Telegram. Before `getMe` answered (no bot known)
//!   nothing is a mention.

use serde_json::{Map, Value, json};

use crate::channels::fields::{Fields, Missing};

/// The outcome for one Update.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    /// A text message. `params` is the `channel.message` payload without `cursor`;
    /// `sender_id` is `params.from.id`, for the `allowFrom` check.
    Message {
        update_id: i64,
        sender_id: String,
        params: Map<String, Value>,
    },
    /// A press on one of the bot's buttons: `params` is the `channel.action` payload
    /// without `cursor`; `callback_id` is what `answerCallbackQuery` takes.
    Action {
        update_id: i64,
        sender_id: String,
        callback_id: String,
        params: Map<String, Value>,
    },
    /// A press the agent cannot act on (its message is gone or was never the bot's in a
    /// chat: an inline-mode message); answered with a notice, not delivered.
    StalePress { update_id: i64, callback_id: String },
    /// Nothing for the agent, but the update must still be confirmed.
    Skip { update_id: i64, why: &'static str },
    /// A message that lacks a field needed to deliver it (`missing` names it). Confirmed
    /// like a skipped update, but worth a warning: the server is not the Bot API we know.
    Incomplete { update_id: i64, missing: Missing },
    /// Not an Update at all (no integer `update_id`): nothing to confirm.
    Invalid,
}

/// Update kinds that carry a message, with whether they are edits.
const MESSAGE_KINDS: [(&str, bool); 4] = [
    ("message", false),
    ("edited_message", true),
    ("channel_post", false),
    ("edited_channel_post", true),
];

/// The bot, as `getMe` describes it: what a mention of it looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bot {
    pub id: i64,
    pub username: Option<String>,
}

/// Map one raw Update, not knowing the bot (nothing is a mention).
pub fn normalize(update: &Value) -> Normalized {
    normalize_for(update, None)
}

/// Map one raw Update received by `bot`.
pub fn normalize_for(update: &Value, bot: Option<&Bot>) -> Normalized {
    let Some(update_id) = update.get("update_id").and_then(Value::as_i64) else {
        return Normalized::Invalid;
    };
    if let Some(query) = update.get("callback_query").filter(|q| q.is_object()) {
        return press(update_id, query);
    }
    let Some((kind, edited)) = MESSAGE_KINDS
        .iter()
        .find(|(kind, _)| update.get(*kind).is_some_and(|m| !m.is_null()))
        .copied()
    else {
        return Normalized::Skip {
            update_id,
            why: "not a message update",
        };
    };
    let what = format!("update {update_id}");
    match message_params(Fields::new(&what, update), kind, edited, bot) {
        Ok(Some((sender_id, params))) => Normalized::Message {
            update_id,
            sender_id,
            params,
        },
        Ok(None) => Normalized::Skip {
            update_id,
            why: "no text",
        },
        Err(missing) => Normalized::Incomplete { update_id, missing },
    }
}

/// A `callback_query`: the `channel.action` of a press on an inline keyboard button. A
/// query without its `message` (an inline-mode message), without `data` (a game button),
/// or whose message Telegram no longer has (an `InaccessibleMessage`, `date` 0) is stale.
fn press(update_id: i64, query: &Value) -> Normalized {
    let q = Fields::new("callback_query", query);
    let Some(callback_id) = q.opt_str("id").map(str::to_owned) else {
        return Normalized::Skip {
            update_id,
            why: "a callback query without an id",
        };
    };
    let chat = q.opt_i64("message.chat.id");
    let message = q.opt_i64("message.message_id");
    let data = q.opt_str("data");
    let gone = q.opt_i64("message.date") == Some(0);
    let (Some(chat), Some(message), Some(data), false) = (chat, message, data, gone) else {
        return Normalized::StalePress {
            update_id,
            callback_id,
        };
    };
    let Some((user, id)) = query.get("from").and_then(|u| int(u, "id").map(|id| (u, id))) else {
        return Normalized::Skip {
            update_id,
            why: "a callback query without a sender",
        };
    };
    let name = join_name(user).unwrap_or_else(|| fallback_name(user, id));
    let mut params = Map::new();
    params.insert("channel".into(), json!("telegram"));
    params.insert("chatId".into(), json!(chat.to_string()));
    params.insert("messageId".into(), json!(message.to_string()));
    params.insert("from".into(), from_object(id, user, name));
    params.insert("action".into(), json!(data));
    // A query carries no time of its own: the press is when it arrived.
    params.insert("ts".into(), json!(crate::procinfo::unix_ms()));
    Normalized::Action {
        update_id,
        sender_id: id.to_string(),
        callback_id,
        params,
    }
}

/// A message's sender id and `channel.message` params.
type SenderAndParams = (String, Map<String, Value>);

/// The params of the Message at `kind` in the update, `None` when it has neither text nor media
/// (joins, pins...), or the needed field it lacks.
fn message_params(
    update: Fields<'_>,
    kind: &str,
    edited: bool,
    bot: Option<&Bot>,
) -> Result<Option<SenderAndParams>, Missing> {
    let at = |path: &str| format!("{kind}.{path}");
    let message = update.get(kind).unwrap_or(&Value::Null);
    let text = ["text", "caption"]
        .iter()
        .find_map(|key| update.opt_str(&at(key)))
        .unwrap_or("");
    // A message with only media is delivered with its caption or "" (contract, "Media in").
    // Checked first: a message the agent would not get anyway is no reason to complain.
    let attachments = super::media::attachments(message);
    if text.is_empty() && attachments.is_empty() {
        return Ok(None);
    }
    let chat_id = update.i64(&at("chat.id"))?;
    let message_id = update.i64(&at("message_id"))?;
    let chat_type = match update.opt_str(&at("chat.type")) {
        Some(t) => t,
        None => implied_chat_type(kind, chat_id),
    };
    let date = update
        .opt_i64(&at("date"))
        .unwrap_or_else(|| i64::try_from(crate::procinfo::unix_ms() / 1000).unwrap_or(0));
    let ts_secs = if edited {
        update.opt_i64(&at("edit_date")).unwrap_or(date)
    } else {
        date
    };
    let topic = update.get(&at("is_topic_message")).and_then(Value::as_bool) == Some(true);
    let thread_id = update.opt_i64(&at("message_thread_id")).filter(|_| topic);
    let reply_to = update
        .opt_i64(&at("reply_to_message.message_id"))
        // The implicit "reply" to the topic's creation message carries the thread's id.
        .filter(|&id| !(topic && Some(id) == thread_id));
    let chat = update.get(&at("chat")).unwrap_or(&Value::Null);
    let (sender_id, from) = sender(message, chat, chat_id);

    let mut params = Map::new();
    params.insert("channel".into(), json!("telegram"));
    params.insert("chatId".into(), json!(chat_id.to_string()));
    params.insert("chatType".into(), json!(chat_type));
    params.insert("messageId".into(), json!(message_id.to_string()));
    params.insert("threadId".into(), json!(thread_id.map(|id| id.to_string())));
    params.insert("from".into(), from);
    params.insert("text".into(), json!(text));
    params.insert("ts".into(), json!(ts_secs.saturating_mul(1000)));
    params.insert("replyTo".into(), json!(reply_to.map(|id| id.to_string())));
    params.insert("edited".into(), json!(edited));
    let mentioned = bot.is_some_and(|bot| mentions(message, text, bot));
    params.insert("mentioned".into(), json!(mentioned));
    params.insert("attachments".into(), json!(attachments));
    let media_group = message.get("media_group_id").and_then(Value::as_str);
    params.insert("mediaGroupId".into(), json!(media_group));
    Ok(Some((sender_id, params)))
}

/// Whether the message mentions `bot` (see the module doc). `text` is the text or caption
/// the entities' UTF-16 offsets count in.
fn mentions(message: &Value, text: &str, bot: &Bot) -> bool {
    let from_id = |m: &Value| m.get("from").and_then(|f| f.get("id")).and_then(Value::as_i64);
    if message
        .get("reply_to_message")
        .is_some_and(|r| from_id(r) == Some(bot.id))
    {
        return true;
    }
    let Some(entities) = ["entities", "caption_entities"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_array))
    else {
        return false;
    };
    let units: Vec<u16> = text.encode_utf16().collect();
    let is_bot_name = |name: &str| {
        bot.username
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(name))
    };
    entities.iter().any(|e| {
        let int = |k: &str| e.get(k).and_then(Value::as_u64).map(|n| n as usize);
        let (Some(offset), Some(length)) = (int("offset"), int("length")) else {
            return false;
        };
        let Some(piece) = units.get(offset..offset.saturating_add(length)) else {
            return false;
        };
        let piece = String::from_utf16_lossy(piece);
        match e.get("type").and_then(Value::as_str) {
            Some("mention") => piece.strip_prefix('@').is_some_and(is_bot_name),
            Some("text_mention") => {
                e.get("user").and_then(|u| u.get("id")).and_then(Value::as_i64) == Some(bot.id)
            }
            Some("bot_command") if offset == 0 => match piece.split_once('@') {
                None => true,
                Some((_, to)) => is_bot_name(to),
            },
            _ => false,
        }
    })
}

/// The chat type of a chat whose `type` is missing (see the module doc).
fn implied_chat_type(kind: &str, chat_id: i64) -> &'static str {
    if kind.ends_with("channel_post") {
        "channel"
    } else if chat_id > 0 {
        "private"
    } else if chat_id <= -1_000_000_000_000 {
        "supergroup"
    } else {
        "group"
    }
}

/// The sender's id and the `from` object: `sender_chat`, else the user, else the chat.
fn sender(message: &Value, chat: &Value, chat_id: i64) -> (String, Value) {
    let with_id = |key| {
        message
            .get(key)
            .and_then(|who| int(who, "id").map(|id| (who, id)))
    };
    if let (None, Some((user, id))) = (with_id("sender_chat"), with_id("from")) {
        let name = join_name(user).unwrap_or_else(|| fallback_name(user, id));
        return (id.to_string(), from_object(id, user, name));
    }
    let (who, id) = with_id("sender_chat").unwrap_or((chat, chat_id));
    let name = who
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| join_name(who))
        .unwrap_or_else(|| fallback_name(who, id));
    (id.to_string(), from_object(id, who, name))
}

fn from_object(id: i64, who: &Value, name: String) -> Value {
    json!({
        "id": id.to_string(),
        "username": who.get("username").and_then(Value::as_str),
        "name": name,
    })
}

/// "first last" (either part may be missing), or None when both are.
fn join_name(who: &Value) -> Option<String> {
    let part = |key| who.get(key).and_then(Value::as_str).unwrap_or("").trim();
    let name = format!("{} {}", part("first_name"), part("last_name"))
        .trim()
        .to_owned();
    (!name.is_empty()).then_some(name)
}

/// A name for a sender that has none: the username, else the id.
fn fallback_name(who: &Value, id: i64) -> String {
    who.get("username")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| id.to_string())
}

fn int(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(update: Value) -> (i64, String, Value) {
        match normalize(&update) {
            Normalized::Message {
                update_id,
                sender_id,
                params,
            } => (update_id, sender_id, Value::Object(params)),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn private_text_message() {
        let (update_id, sender, params) = message(json!({
            "update_id": 10,
            "message": {
                "message_id": 5, "date": 1700000000, "text": "hello",
                "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"},
                "chat": {"id": 42, "type": "private", "first_name": "Ada"}
            }
        }));
        assert_eq!(update_id, 10);
        assert_eq!(sender, "42");
        assert_eq!(
            params,
            json!({"channel": "telegram", "chatId": "42", "chatType": "private", "messageId": "5",
                   "threadId": null, "from": {"id": "42", "username": "ada", "name": "Ada Lovelace"},
                   "text": "hello", "ts": 1700000000000i64, "replyTo": null, "edited": false,
                   "mentioned": false, "attachments": [], "mediaGroupId": null})
        );
    }

    /// Whether a group message mentions the bot @emonk_bot (id 777).
    fn mentioned(message: Value) -> bool {
        let bot = Bot {
            id: 777,
            username: Some("emonk_bot".into()),
        };
        let mut m = json!({"message_id": 5, "date": 1, "chat": {"id": -100, "type": "group"},
                           "from": {"id": 42, "first_name": "Ada"}});
        for (k, v) in message.as_object().unwrap() {
            m[k] = v.clone();
        }
        match normalize_for(&json!({"update_id": 1, "message": m}), Some(&bot)) {
            Normalized::Message { params, .. } => params["mentioned"] == json!(true),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mentions_of_the_bot_by_name_entity_command_or_reply() {
        let mention = |text: &str, offset: usize, length: usize, kind: &str| json!({"text": text, "entities": [{"type": kind, "offset": offset, "length": length}]});
        assert!(mentioned(mention("hi @emonk_bot", 3, 10, "mention")));
        assert!(
            mentioned(mention("hi @Emonk_Bot", 3, 10, "mention")),
            "usernames ignore case"
        );
        assert!(!mentioned(mention("hi @other_bot", 3, 10, "mention")));
        // Offsets count UTF-16 units: an emoji before the mention counts two.
        assert!(mentioned(mention("🎉 @emonk_bot", 3, 10, "mention")));
        assert!(mentioned(json!({"text": "Emonk, look", "entities": [
            {"type": "text_mention", "offset": 0, "length": 5, "user": {"id": 777}}]})));
        assert!(mentioned(mention("/start", 0, 6, "bot_command")));
        assert!(mentioned(mention("/start@emonk_bot now", 0, 16, "bot_command")));
        assert!(!mentioned(mention("/start@other_bot", 0, 16, "bot_command")));
        assert!(
            !mentioned(mention("see /start", 4, 6, "bot_command")),
            "not at the start"
        );
        assert!(mentioned(
            json!({"text": "yes", "reply_to_message": {"message_id": 4, "from": {"id": 777}}})
        ));
        assert!(!mentioned(
            json!({"text": "yes", "reply_to_message": {"message_id": 4, "from": {"id": 9}}})
        ));
        assert!(!mentioned(json!({"text": "plain @emonk_bot without entities"})));
        assert!(mentioned(
            json!({"caption": "@emonk_bot", "photo": [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}],
            "caption_entities": [{"type": "mention", "offset": 0, "length": 10}]})
        ));
    }

    #[test]
    fn supergroup_ids_beyond_32_bits_and_reply() {
        let (_, _, params) = message(json!({
            "update_id": 11,
            "message": {
                "message_id": 3000000000i64, "date": 1, "text": "re",
                "from": {"id": 7000000000i64, "is_bot": false, "first_name": "Bob"},
                "chat": {"id": -1001234567890i64, "type": "supergroup", "title": "G"},
                "message_thread_id": 99,
                "reply_to_message": {"message_id": 99, "date": 0, "chat": {"id": -1001234567890i64, "type": "supergroup"}}
            }
        }));
        assert_eq!(params["chatId"], "-1001234567890");
        assert_eq!(params["messageId"], "3000000000");
        assert_eq!(
            params["from"],
            json!({"id": "7000000000", "username": null, "name": "Bob"})
        );
        // Not a forum topic: the thread id of a reply chain is not a place to post into.
        assert_eq!(params["threadId"], Value::Null);
        assert_eq!(params["replyTo"], "99");
    }

    #[test]
    fn forum_topic_implicit_reply_is_dropped() {
        let base = |reply_id: i64| {
            json!({"update_id": 1, "message": {
                "message_id": 50, "date": 1, "text": "in topic", "message_thread_id": 40,
                "is_topic_message": true,
                "from": {"id": 1, "is_bot": false, "first_name": "A"},
                "chat": {"id": -1009, "type": "supergroup", "is_forum": true},
                "reply_to_message": {"message_id": reply_id, "date": 0, "chat": {"id": -1009, "type": "supergroup"}}
            }})
        };
        let (_, _, params) = message(base(40));
        assert_eq!(params["threadId"], "40");
        assert_eq!(params["replyTo"], Value::Null);
        let (_, _, params) = message(base(45));
        assert_eq!(params["replyTo"], "45");
    }

    #[test]
    fn edited_message_uses_edit_date() {
        let (_, _, params) = message(json!({"update_id": 2, "edited_message": {
            "message_id": 5, "date": 100, "edit_date": 160, "text": "fixed",
            "from": {"id": 1, "is_bot": false, "first_name": "A"},
            "chat": {"id": -5, "type": "group", "title": "g"}}}));
        assert_eq!(params["edited"], true);
        assert_eq!(params["ts"], 160000);
        assert_eq!(params["chatType"], "group");
    }

    #[test]
    fn channel_posts_use_sender_chat_or_chat() {
        let (_, sender, params) = message(json!({"update_id": 3, "channel_post": {
            "message_id": 1, "date": 1, "text": "news",
            "sender_chat": {"id": -1002, "type": "channel", "title": "News", "username": "newsch"},
            "chat": {"id": -1002, "type": "channel", "title": "News", "username": "newsch"}}}));
        assert_eq!(sender, "-1002");
        assert_eq!(
            params["from"],
            json!({"id": "-1002", "username": "newsch", "name": "News"})
        );
        assert_eq!(params["edited"], false);
        let (_, sender, params) = message(json!({"update_id": 4, "edited_channel_post": {
            "message_id": 1, "date": 1, "text": "news2",
            "chat": {"id": -1003, "type": "channel", "title": "Old"}}}));
        assert_eq!(sender, "-1003");
        assert_eq!(params["from"]["name"], "Old");
        assert_eq!(params["edited"], true);
    }

    #[test]
    fn anonymous_admin_is_the_group_not_the_placeholder_user() {
        let (_, sender, params) = message(json!({"update_id": 3, "message": {
            "message_id": 1, "date": 1, "text": "as admin",
            "from": {"id": 1087968824, "is_bot": true, "first_name": "Group", "username": "GroupAnonymousBot"},
            "sender_chat": {"id": -1005, "type": "supergroup", "title": "Team"},
            "chat": {"id": -1005, "type": "supergroup", "title": "Team"}}}));
        assert_eq!(sender, "-1005");
        assert_eq!(
            params["from"],
            json!({"id": "-1005", "username": null, "name": "Team"})
        );
    }

    #[test]
    fn caption_is_text_and_textless_is_skipped() {
        let (_, _, params) = message(json!({"update_id": 5, "message": {
            "message_id": 1, "date": 1, "caption": "a photo", "photo": [],
            "from": {"id": 1, "is_bot": false, "first_name": "A"},
            "chat": {"id": 1, "type": "private"}}}));
        assert_eq!(params["text"], "a photo");
        let skipped = normalize(&json!({"update_id": 6, "message": {
            "message_id": 1, "date": 1, "sticker": {},
            "from": {"id": 1, "is_bot": false, "first_name": "A"},
            "chat": {"id": 1, "type": "private"}}}));
        assert_eq!(
            skipped,
            Normalized::Skip {
                update_id: 6,
                why: "no text"
            }
        );
    }

    #[test]
    fn media_only_messages_are_delivered_with_empty_text() {
        let (_, _, params) = message(json!({"update_id": 5, "message": {
            "message_id": 1, "date": 1, "media_group_id": "13579",
            "photo": [{"file_id": "p1", "width": 10, "height": 10}],
            "from": {"id": 1, "is_bot": false, "first_name": "A"},
            "chat": {"id": 1, "type": "private"}}}));
        assert_eq!(params["text"], "");
        assert_eq!(params["mediaGroupId"], "13579");
        let a = &params["attachments"];
        assert_eq!(a.as_array().unwrap().len(), 1, "{a}");
        assert_eq!(a[0]["kind"], "photo");
        assert_eq!(a[0]["durationMs"], Value::Null);
        let id = a[0]["id"].as_str().unwrap();
        assert_eq!(super::super::media::file_id(id).unwrap(), "p1");
        let (_, _, params) = message(json!({"update_id": 6, "message": {
            "message_id": 2, "date": 1, "caption": "listen", "voice": {"file_id": "v", "duration": 2},
            "from": {"id": 1, "is_bot": false, "first_name": "A"},
            "chat": {"id": 1, "type": "private"}}}));
        assert_eq!(params["text"], "listen");
        assert_eq!(params["attachments"][0]["kind"], "voice");
        assert_eq!(params["mediaGroupId"], Value::Null);
    }

    #[test]
    fn presses_are_actions_and_presses_without_their_message_are_stale() {
        let query = |extra: Value| {
            let mut q = json!({"id": "q1", "from": {"id": 42, "first_name": "Ada"}, "data": "approve:1",
                               "message": {"message_id": 5, "date": 1, "chat": {"id": 100, "type": "private"}}});
            for (k, v) in extra.as_object().unwrap() {
                q[k] = v.clone();
            }
            normalize(&json!({"update_id": 9, "callback_query": q}))
        };
        let Normalized::Action {
            sender_id,
            callback_id,
            params,
            ..
        } = query(json!({}))
        else {
            panic!("a press")
        };
        assert_eq!((sender_id.as_str(), callback_id.as_str()), ("42", "q1"));
        assert_eq!(params["action"], "approve:1");
        assert_eq!(params["messageId"], "5");
        assert_eq!(params["chatId"], "100");
        let stale = |extra| matches!(query(extra), Normalized::StalePress { update_id: 9, .. });
        assert!(
            stale(json!({"message": null, "inline_message_id": "x"})),
            "an inline-mode message"
        );
        assert!(
            stale(json!({"message": {"message_id": 5, "date": 0, "chat": {"id": 100}}})),
            "inaccessible"
        );
        assert!(
            stale(json!({"data": null, "game_short_name": "g"})),
            "a game button"
        );
    }

    #[test]
    fn other_updates_and_garbage() {
        assert_eq!(
            normalize(&json!({"update_id": 7, "my_chat_member": {"chat": {"id": 1}}})),
            Normalized::Skip {
                update_id: 7,
                why: "not a message update"
            }
        );
        let Normalized::Incomplete { update_id, missing } =
            normalize(&json!({"update_id": 8, "message": {"text": "no chat"}}))
        else {
            panic!("a message without a chat cannot be delivered")
        };
        assert_eq!(update_id, 8);
        assert_eq!(missing.to_string(), r#"update 8 has no "message.chat.id""#);
        assert_eq!(normalize(&json!({"message": {}})), Normalized::Invalid);
        assert_eq!(normalize(&json!({"update_id": "9"})), Normalized::Invalid);
        assert_eq!(normalize(&json!([1])), Normalized::Invalid);
    }

    /// Only what is needed: no `date`, no chat `type`, no `from`, no `is_bot`.
    #[test]
    fn a_minimal_update_is_delivered_with_defaults() {
        let before = crate::procinfo::unix_ms() / 1000 * 1000;
        let (update_id, sender, params) = message(json!({"update_id": 1,
            "message": {"message_id": 2, "text": "hi", "chat": {"id": 42}}}));
        assert_eq!((update_id, sender.as_str()), (1, "42"));
        assert_eq!(params["chatType"], "private");
        assert_eq!(
            params["from"],
            json!({"id": "42", "username": null, "name": "42"})
        );
        let ts = params["ts"].as_u64().unwrap();
        assert!(
            ts >= before && ts <= crate::procinfo::unix_ms(),
            "{ts}: the receipt time"
        );
        for (chat_id, kind, want) in [
            (-5, "message", "group"),
            (-1001234567890i64, "message", "supergroup"),
            (-1001234567890, "channel_post", "channel"),
        ] {
            let (_, _, params) = message(json!({"update_id": 1,
                kind: {"message_id": 2, "date": 1, "text": "x", "chat": {"id": chat_id}}}));
            assert_eq!(params["chatType"], want, "{chat_id} {kind}");
        }
        // A `from` without is_bot or first_name is still the sender.
        let (_, sender, params) = message(json!({"update_id": 1, "message": {"message_id": 2,
            "date": 1, "text": "x", "chat": {"id": -5}, "from": {"id": 7}}}));
        assert_eq!(sender, "7");
        assert_eq!(params["from"]["name"], "7");
    }

    #[test]
    fn a_needed_field_missing_or_mistyped_is_named_with_the_update() {
        let incomplete = |message: Value| match normalize(&json!({"update_id": 9, "edited_message": message}))
        {
            Normalized::Incomplete {
                update_id: 9,
                missing,
            } => missing.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            incomplete(json!({"text": "x", "chat": {"id": 1}})),
            r#"update 9 has no "edited_message.message_id""#
        );
        assert_eq!(
            incomplete(json!({"message_id": 1, "text": "x", "chat": {"id": "1"}})),
            r#"update 9 has "edited_message.chat.id" as a string, not an integer"#
        );
        // Without text there is nothing to deliver: a plain skip, no complaint.
        assert_eq!(
            normalize(&json!({"update_id": 9, "message": {"sticker": {}}})),
            Normalized::Skip {
                update_id: 9,
                why: "no text"
            }
        );
    }

    #[test]
    fn sender_without_names_falls_back_to_username_then_id() {
        let (_, _, params) = message(json!({"update_id": 1, "message": {
            "message_id": 1, "date": 1, "text": "x",
            "from": {"id": 9, "is_bot": false, "first_name": "", "username": "nn"},
            "chat": {"id": 9, "type": "private"}}}));
        assert_eq!(params["from"]["name"], "nn");
        let (_, _, params) = message(json!({"update_id": 1, "message": {
            "message_id": 1, "date": 1, "text": "x",
            "from": {"id": 9, "is_bot": false, "first_name": " "},
            "chat": {"id": 9, "type": "private"}}}));
        assert_eq!(params["from"]["name"], "9");
    }
}
