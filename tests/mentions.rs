//! `requireMention` (on by default) through the real binary on each platform's fake, which
//! produces the platform's own mention signals (Telegram entities, Discord `mentions` and
//! `referenced_message`, Slack `<@U…>` and `parent_user_id`): in a group only messages that
//! mention the bot, reply to it or (Telegram) start with a `/command` for it reach the agent,
//! marked `mentioned`; the rest are confirmed and counted as `ignored`; direct messages
//! always pass.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Watchdog;
use support::fake_telegram::FakeTelegram;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The config patch that puts the default back (the test helpers switch it off).
fn required(channel: &str) -> Value {
    json!({"channels": {channel: {"requireMention": true}}})
}

fn status_of(ws: &mut support::Ws, channel: &str) -> Value {
    let r = ws.request("st", "channels.status", json!({}));
    r["result"]["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["channel"] == channel))
        .cloned()
        .unwrap_or_else(|| panic!("no {channel} in {r}"))
}

#[test]
fn telegram_groups_deliver_only_what_mentions_the_bot() {
    let _w = Watchdog::new("telegram mentions", SECS(60));
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    let (_home, gw) = support::telegram::start_with(&fake, required("telegram"));
    let mut agent = support::telegram::polling_agent(&gw, &fake);
    let group = -1001;
    fake.push_message(group, 42, "chatter nobody asked the bot about");
    fake.push_message(group, 42, "hey @other_bot, not you");
    fake.push_message(group, 42, "/start@other_bot");
    let named = fake.push_message(group, 42, "@fake_bot what is the weather?");
    let command = fake.push_message(group, 42, "/help@fake_bot");
    let bare = fake.push_message(group, 42, "/status");
    let dm = fake.push_message(42, 42, "a direct message, no mention needed");
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(support::telegram::next_message(&mut agent, SECS(10)));
    }
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "@fake_bot what is the weather?",
            "/help@fake_bot",
            "/status",
            "a direct message, no mention needed"
        ]
    );
    assert_eq!(
        got.iter().map(|m| m["mentioned"].clone()).collect::<Vec<_>>(),
        [json!(true), json!(true), json!(true), json!(false)]
    );
    // A reply to one of the bot's messages counts as a mention.
    let r = support::telegram::call(
        &mut agent,
        "s",
        "channels.send",
        json!({"channel": "telegram", "to": group.to_string(), "text": "I am here"}),
    );
    let bots = r["result"]["messageIds"][0]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    fake.push_update(
        "message",
        json!({"message_id": 900, "date": 1_700_000_000, "chat": {"id": group, "type": "supergroup"},
               "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "text": "thanks!",
               "reply_to_message": {"message_id": bots, "date": 1_700_000_000, "chat": {"id": group, "type": "supergroup"},
                                    "from": {"id": 123456, "is_bot": true, "first_name": "Fake Bot", "username": "fake_bot"},
                                    "text": "I am here"}}),
    );
    let reply = support::telegram::next_message(&mut agent, SECS(10));
    assert_eq!(
        (reply["text"].as_str(), reply["mentioned"].as_bool()),
        (Some("thanks!"), Some(true))
    );
    // The ignored ones were confirmed to Telegram all the same, and counted.
    let status = support::telegram::wait_status(&mut agent, SECS(5), |s| s["ignored"] == 3);
    assert_eq!(status["ignored"], 3, "{status}");
    assert!(fake.confirmed_offset() > dm, "every update confirmed");
    let _ = (named, command, bare);
    let spooled = gw.operator().request("g", "gateway.status", json!({}));
    assert_eq!(
        spooled["result"]["spool"]["pending"], 5,
        "only the delivered ones were spooled: {spooled}"
    );
}

#[test]
fn discord_guild_messages_need_the_bot_mentioned_or_replied_to() {
    let _w = Watchdog::new("discord mentions", SECS(60));
    let fake = support::fake_discord::FakeDiscord::start(support::discord::TOKEN);
    fake.add_channel("555");
    let (_home, _gw, mut agent) = support::discord::start_agent_with(&fake, json!({"requireMention": true}));
    let bot = support::fake_discord::BOT_ID;
    fake.push_message("555", Some("777"), "42", "guild chatter");
    fake.push_message(
        "555",
        Some("777"),
        "42",
        "hey <@900000000000000002>, the other bot",
    );
    fake.push_message("555", Some("777"), "42", &format!("<@{bot}> summarize this"));
    fake.push_message("556", None, "42", "a DM");
    let got = support::discord::messages_for(&mut agent, SECS(3), 10);
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, [format!("<@{bot}> summarize this").as_str(), "a DM"]);
    assert_eq!(got[0]["mentioned"], true);
    assert_eq!(got[1]["mentioned"], false);
    // A reply to the bot's own message is a mention without the <@id>.
    let r = support::telegram::call(
        &mut agent,
        "s",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "posted by the bot"}),
    );
    let bots = r["result"]["messageIds"][0].as_str().unwrap().to_owned();
    fake.push_message_with(
        "555",
        Some("777"),
        "42",
        "a reply",
        json!({"type": 19, "message_reference": {"message_id": bots, "channel_id": "555"}}),
    );
    let got = support::discord::messages_for(&mut agent, SECS(3), 10);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0]["text"].as_str(), got[0]["mentioned"].as_bool()),
        (Some("a reply"), Some(true))
    );
    let status = status_of(&mut agent, "discord");
    assert_eq!(status["ignored"], 2, "{status}");
}

#[test]
fn slack_channel_messages_need_the_bot_mentioned() {
    let _w = Watchdog::new("slack mentions", SECS(60));
    let fake = support::fake_slack::FakeSlack::start();
    let (_home, gw) = support::slack::start(&fake, required("slack"), &[]);
    let mut agent = support::slack::connected_agent(&gw, &fake);
    fake.push_message("C1", "U42", "channel chatter");
    fake.push_message("C1", "U42", "hey <@UOTHER>");
    fake.push_message("C1", "U42", "<@UBOT> draft a post");
    fake.push_message("D1", "U42", "a DM");
    fake.push_event(
        json!({"type": "message", "channel": "C1", "channel_type": "channel", "user": "U42",
                           "text": "in the bot's thread", "thread_ts": "1.000", "parent_user_id": "UBOT"}),
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(support::slack::next_message(&mut agent, SECS(10)));
    }
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["<@UBOT> draft a post", "a DM", "in the bot's thread"]);
    assert_eq!(
        got.iter().map(|m| m["mentioned"].clone()).collect::<Vec<_>>(),
        [json!(true), json!(false), json!(true)]
    );
    support::slack::no_message_for(&mut agent, Duration::from_millis(500));
    let status = status_of(&mut agent, "slack");
    assert_eq!(status["ignored"], 2, "{status}");
}
