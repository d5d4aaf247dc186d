//! `buttons` on `channels.send` through the real binary on each platform's fake, which
//! checks them as the platform does (Telegram inline keyboards, Discord components, Slack
//! Block Kit) and keeps what was posted: the buttons ride on the send's last message, with
//! each `action` as the platform's callback data; bad rows are refused before anything is
//! sent, naming the row, the button and the limit.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Watchdog;
use support::fake_telegram::FakeTelegram;
use support::telegram::call;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn approve_reject() -> Value {
    json!([[{"text": "Approve", "action": "approve:42"}, {"text": "Reject", "action": "reject:42"}],
           [{"text": "Edit first", "action": "edit:42"}]])
}

fn send(ws: &mut support::Ws, params: Value) -> Value {
    call(ws, "send", "channels.send", params)
}

fn error_message(r: &Value) -> String {
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    r["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn telegram_buttons_are_an_inline_keyboard_on_the_last_message() {
    let _w = Watchdog::new("telegram buttons", SECS(60));
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = support::telegram::start(&fake);
    let mut op = gw.operator();
    let long = format!("{}\n\nApprove this post?", "draft ".repeat(800));
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": long, "buttons": approve_reject()}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(2), "{r}");
    let sent = fake.sent();
    assert!(
        sent[0].get("reply_markup").is_none(),
        "only the last part carries them"
    );
    let markup: Value = match &sent[1]["reply_markup"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(
        markup,
        json!({"inline_keyboard": [
            [{"text": "Approve", "callback_data": "approve:42"}, {"text": "Reject", "callback_data": "reject:42"}],
            [{"text": "Edit first", "callback_data": "edit:42"}]]})
    );

    // With a file, the text is not its caption but the message after it, with the buttons.
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": "Post this chart?",
               "attachments": [{"data": "iVBORw0KGgo=", "name": "chart.png"}],
               "buttons": [[{"text": "Post", "action": "post:7"}]]}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(fake.uploads().last().unwrap().caption, None);
    let last = fake.sent().last().unwrap().clone();
    assert_eq!(last["text"], "Post this chart?");
    assert!(last["reply_markup"].to_string().contains("post:7"), "{last}");

    // Refused before anything is sent.
    let before = fake.sent().len();
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": "x",
               "buttons": [[{"text": "Go", "action": "a".repeat(65)}]]}),
    );
    assert!(
        error_message(&r).contains("buttons[0][0].action is 65 bytes; it must be 1 to 64"),
        "{r}"
    );
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": "x",
               "buttons": [[{"text": " ", "action": "a"}]]}),
    );
    assert!(
        error_message(&r).contains("buttons[0][0].text must not be empty"),
        "{r}"
    );
    let nine: Vec<Value> = (0..9)
        .map(|i| json!({"text": i.to_string(), "action": i.to_string()}))
        .collect();
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": "x", "buttons": [nine]}),
    );
    assert!(
        error_message(&r).contains("Telegram takes at most 8 in a row"),
        "{r}"
    );
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": "", "buttons": approve_reject()}),
    );
    assert!(error_message(&r).contains("buttons need a text"), "{r}");
    let r = send(
        &mut op,
        json!({"channel": "telegram", "to": "100", "text": "x", "buttons": [[{"text": "Go"}]]}),
    );
    assert_eq!(
        r["error"]["code"], "INVALID_REQUEST",
        "a button without an action: {r}"
    );
    assert_eq!(fake.sent().len(), before, "nothing was sent");
}

#[test]
fn discord_buttons_are_components_and_slack_buttons_are_blocks() {
    let _w = Watchdog::new("discord slack buttons", SECS(60));
    let fake = support::fake_discord::FakeDiscord::start(support::discord::TOKEN);
    fake.add_channel("555");
    let (_home, _gw, mut agent) = support::discord::start(&fake);
    let r = send(
        &mut agent,
        json!({"channel": "discord", "to": "555", "text": "Approve?", "buttons": approve_reject()}),
    );
    assert!(r["result"]["messageIds"][0].is_string(), "{r}");
    let sent = fake.sent();
    let rows = &sent.last().unwrap()["components"];
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    assert_eq!(rows[0]["type"], 1);
    assert_eq!(
        rows[0]["components"][1],
        json!({"type": 2, "style": 1, "label": "Reject", "custom_id": "reject:42"})
    );
    let six: Vec<Value> = (0..6).map(|_| json!([{"text": "x", "action": "x"}])).collect();
    let r = send(
        &mut agent,
        json!({"channel": "discord", "to": "555", "text": "x", "buttons": six}),
    );
    assert!(
        error_message(&r).contains("6 rows; Discord takes at most 5"),
        "{r}"
    );
    let r = send(
        &mut agent,
        json!({"channel": "discord", "to": "555", "text": "x",
               "buttons": [[{"text": "y".repeat(81), "action": "a"}]]}),
    );
    assert!(error_message(&r).contains("Discord shows at most 80"), "{r}");

    let slack = support::fake_slack::FakeSlack::start();
    let (_home, gw) = support::slack::start(&slack, json!({}), &[]);
    let mut agent = support::slack::connected_agent(&gw, &slack);
    let r = send(
        &mut agent,
        json!({"channel": "slack", "to": "C1", "text": "Approve *this*?", "buttons": approve_reject()}),
    );
    assert!(r["result"]["messageIds"][0].is_string(), "{r}");
    let body = slack.sent().last().unwrap().1.clone();
    assert_eq!(body["text"], "Approve *this*?", "the fallback text stays");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["text"], "Approve *this*?");
    assert_eq!(blocks[1]["type"], "actions");
    assert_eq!(blocks[1]["elements"][0]["value"], "approve:42");
    assert_eq!(blocks[1]["elements"][0]["text"]["text"], "Approve");
    assert_eq!(blocks[2]["elements"][0]["value"], "edit:42");
    let r = send(
        &mut agent,
        json!({"channel": "slack", "to": "C1", "text": "x",
               "buttons": [[{"text": "y".repeat(76), "action": "a"}]]}),
    );
    assert!(error_message(&r).contains("Slack shows at most 75"), "{r}");
}
