//! `channels.edit`, `channels.delete` and `channels.react` through the real binary against
//! each platform's fake, which keeps what a person in the chat would read: edits replace
//! the text, deletes remove the message, and the platforms' refusals arrive as wire codes
//! (message not found → NOT_FOUND, not the bot's → FORBIDDEN, an emoji the platform does
//! not take → INVALID_REQUEST naming it; an edit that changes nothing is a success).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, call, start};
use support::{Watchdog, Ws, error_code};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn send(ws: &mut Ws, channel: &str, to: &str, text: &str) -> String {
    let r = call(
        ws,
        "send",
        "channels.send",
        json!({"channel": channel, "to": to, "text": text}),
    );
    r["result"]["messageIds"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

fn act(ws: &mut Ws, method: &str, params: Value) -> Value {
    call(ws, method, method, params)
}

#[test]
fn telegram_edit_delete_react() {
    let _w = Watchdog::new("telegram actions", SECS(40));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    let id = send(&mut op, "telegram", "100", "first draft");
    let other = send(&mut op, "telegram", "100", "another");
    let t = |m: &str| json!({"channel": "telegram", "to": "100", "messageId": m});
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };

    let r = act(
        &mut op,
        "channels.edit",
        with(t(&id), "text", json!("final <b>text</b>")),
    );
    assert_eq!(
        r["result"],
        json!({"channel": "telegram", "to": "100", "messageId": id}),
        "{r}"
    );
    // The same text again: Telegram says "not modified", which is what was asked.
    let r = act(
        &mut op,
        "channels.edit",
        with(t(&id), "text", json!("final <b>text</b>")),
    );
    assert!(r["result"].is_object(), "{r}");
    let r = act(&mut op, "channels.react", with(t(&id), "emoji", json!("👍")));
    assert_eq!(r["result"], json!({}), "{r}");
    let n: i64 = id.parse().unwrap();
    assert_eq!(fake.reactions(100, n), ["👍"]);
    let r = act(
        &mut op,
        "channels.react",
        with(with(t(&id), "emoji", json!("👍")), "remove", json!(true)),
    );
    assert!(r["result"].is_object(), "{r}");
    assert!(fake.reactions(100, n).is_empty());
    let r = act(&mut op, "channels.react", with(t(&id), "emoji", json!("🦀")));
    assert_eq!(error_code(&r), "INVALID_REQUEST");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("🦀"),
        "names the emoji: {r}"
    );

    let r = act(&mut op, "channels.delete", t(&other));
    assert_eq!(r["result"], json!({"deleted": true}), "{r}");
    let r = act(&mut op, "channels.delete", t(&other));
    assert_eq!(error_code(&r), "NOT_FOUND", "deleting twice: {r}");
    let visible: Vec<String> = fake.visible(100).into_iter().map(|(_, t)| t).collect();
    assert_eq!(visible, ["final <b>text</b>"], "what the chat shows now");

    // A user's message is not the bot's to edit or delete.
    fake.push_message(100, 42, "from a user");
    assert!(fake.wait_requests("getUpdates", 3, SECS(10)));
    let mut agent = gw.client(None, "agent", "operator");
    let m = support::telegram::next_message(&mut agent, SECS(10));
    let users = m["messageId"].as_str().unwrap().to_owned();
    let r = act(&mut op, "channels.edit", with(t(&users), "text", json!("hijack")));
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    let r = act(&mut op, "channels.delete", t(&users));
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    let r = act(&mut op, "channels.edit", with(t("9999"), "text", json!("x")));
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");

    // Bad params, refused before Telegram hears of them.
    let r = act(
        &mut op,
        "channels.edit",
        with(t(&id), "text", json!("x".repeat(4097))),
    );
    assert_eq!(error_code(&r), "PAYLOAD_TOO_LARGE", "an edit is not split: {r}");
    let r = act(&mut op, "channels.edit", with(t(&id), "text", json!("  ")));
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    let r = act(&mut op, "channels.delete", t("abc"));
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    let r = act(
        &mut op,
        "channels.react",
        json!({"channel": "telegram", "to": "100", "messageId": id}),
    );
    assert_eq!(error_code(&r), "INVALID_REQUEST", "no emoji: {r}");
    let r = act(
        &mut op,
        "channels.edit",
        json!({"channel": "discord", "to": "1", "messageId": "2", "text": "x"}),
    );
    assert!(r["error"].is_object(), "a channel that is not enabled: {r}");
    let mut ro = gw.client(None, "operator", "readonly");
    let r = act(&mut ro, "channels.delete", t(&id));
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
}

#[test]
fn discord_edit_delete_react() {
    let _w = Watchdog::new("discord actions", SECS(40));
    let fake = support::fake_discord::FakeDiscord::start(support::discord::TOKEN);
    fake.add_channel("555");
    let (_home, _gw, mut agent) = support::discord::start(&fake);
    let id = send(&mut agent, "discord", "555", "draft");
    let gone = send(&mut agent, "discord", "555", "to delete");
    let d = |m: &str| json!({"channel": "discord", "to": "555", "messageId": m});
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let r = act(&mut agent, "channels.edit", with(d(&id), "text", json!("final")));
    assert_eq!(r["result"]["messageId"], id.as_str(), "{r}");
    let r = act(&mut agent, "channels.react", with(d(&id), "emoji", json!("🎉")));
    assert_eq!(r["result"], json!({}), "{r}");
    let r = act(
        &mut agent,
        "channels.react",
        with(d(&id), "emoji", json!("party")),
    );
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("party"), "{r}");
    let r = act(&mut agent, "channels.delete", d(&gone));
    assert_eq!(r["result"], json!({"deleted": true}), "{r}");
    let r = act(&mut agent, "channels.delete", d(&gone));
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");
    let visible = fake.visible("555");
    assert_eq!(visible.len(), 1, "{visible:?}");
    assert_eq!((visible[0].1.content.as_str(), visible[0].1.edits), ("final", 1));
    assert_eq!(visible[0].1.reactions, ["🎉"]);

    let users = fake.push_message("555", Some("777"), "42", "a user's words");
    support::telegram::next_message(&mut agent, SECS(10));
    let r = act(
        &mut agent,
        "channels.edit",
        with(d(&users), "text", json!("hijack")),
    );
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    let r = act(
        &mut agent,
        "channels.edit",
        with(d(&id), "text", json!("y".repeat(2001))),
    );
    assert_eq!(error_code(&r), "PAYLOAD_TOO_LARGE", "{r}");
    let r = act(&mut agent, "channels.delete", d("nope"));
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
}

#[test]
fn slack_edit_delete_react() {
    let _w = Watchdog::new("slack actions", SECS(40));
    let fake = support::fake_slack::FakeSlack::start();
    let (_home, gw) = support::slack::start(&fake, json!({}), &[]);
    let mut agent = support::slack::connected_agent(&gw, &fake);
    let ts = send(&mut agent, "slack", "C1", "draft");
    let gone = send(&mut agent, "slack", "C1", "to delete");
    let s = |m: &str| json!({"channel": "slack", "to": "C1", "messageId": m});
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let r = act(&mut agent, "channels.edit", with(s(&ts), "text", json!("final")));
    assert_eq!(r["result"]["messageId"], ts.as_str(), "{r}");
    // A Unicode emoji through the table, a Slack name as is; twice is still a success.
    for emoji in ["👍", "tada", ":tada:"] {
        let r = act(&mut agent, "channels.react", with(s(&ts), "emoji", json!(emoji)));
        assert_eq!(r["result"], json!({}), "{emoji}: {r}");
    }
    let r = act(&mut agent, "channels.react", with(s(&ts), "emoji", json!("🦀")));
    assert_eq!(
        error_code(&r),
        "INVALID_REQUEST",
        "not in the table, not a name: {r}"
    );
    let r = act(
        &mut agent,
        "channels.react",
        with(s(&ts), "emoji", json!("not_a_slack_emoji")),
    );
    assert_eq!(error_code(&r), "INVALID_REQUEST", "Slack's invalid_name: {r}");
    let r = act(
        &mut agent,
        "channels.react",
        with(with(s(&ts), "emoji", json!("tada")), "remove", json!(true)),
    );
    assert!(r["result"].is_object(), "{r}");
    let r = act(&mut agent, "channels.delete", s(&gone));
    assert_eq!(r["result"], json!({"deleted": true}), "{r}");
    let r = act(&mut agent, "channels.delete", s(&gone));
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");
    let visible = fake.visible("C1");
    assert_eq!(visible.len(), 1, "{visible:?}");
    assert_eq!(
        (visible[0].1.as_str(), visible[0].3.clone()),
        ("final", vec!["thumbsup".to_owned()])
    );

    let (_, _) = fake.push_message("C1", "U42", "a user's words");
    let m = support::slack::next_message(&mut agent, SECS(10));
    let users = m["messageId"].as_str().unwrap().to_owned();
    let r = act(
        &mut agent,
        "channels.edit",
        with(s(&users), "text", json!("hijack")),
    );
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    let r = act(&mut agent, "channels.delete", s(&users));
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
}
