//! Lenient parsing of platform answers, end to end: each connector of the real binary
//! against its fake in "minimal answers" mode (fewer fields than the platform documents as
//! always present, as a third-party emulator sends) reaches `running`, delivers a message
//! and sends one; an answer without a field the connector needs gives a `lastError` naming
//! it; an update or event without one is skipped, named in the log, and the rest flows.

mod support;

use std::time::Duration;

use serde_json::json;
use support::Watchdog;
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, call, next_message, polling_agent, start, wait_state, wait_status};

const S10: Duration = Duration::from_secs(10);

#[test]
fn telegram_runs_delivers_and_sends_on_minimal_answers() {
    let _w = Watchdog::new("telegram minimal answers", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    // getMe is only {"id"}: no is_bot (the issue's emulator), no first_name, no username.
    fake.minimal_answers(true);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let s = wait_state(&mut agent, "running", S10);
    assert_eq!(s["lastError"], json!(null), "{s}");
    assert_eq!(s["account"], json!(null), "no username to show: {s}");

    let id = fake.push_message(-5, 42, "hello from an emulator");
    let m = next_message(&mut agent, S10);
    assert_eq!(m["text"], "hello from an emulator");
    assert_eq!(m["chatId"], "-5");
    assert_eq!(m["chatType"], "group", "implied by the chat id");
    assert_eq!(m["from"]["id"], "-5", "no from: the chat is the sender");
    assert!(m["ts"].as_u64().unwrap() > 1_700_000_000_000, "{m}");

    let r = call(
        &mut agent,
        "s1",
        "channels.send",
        json!({"channel": "telegram", "to": "-5", "text": "hi back"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    assert!(
        fake.wait_requests("getUpdates", 3, S10),
        "polling goes on after the message"
    );
    assert!(fake.confirmed_offset() > id, "the update was confirmed");
    let s = wait_state(&mut agent, "running", S10);
    assert_eq!(
        (s["inbound"].as_u64(), s["outbound"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
}

#[test]
fn telegram_get_me_without_id_names_the_field() {
    let _w = Watchdog::new("telegram getMe without id", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.omit_field("getMe", "id");
    let (_home, gw) = start(&fake);
    let mut agent = gw.client(None, "agent", "operator");
    let s = wait_status(&mut agent, S10, |s| s["state"] == "backoff");
    assert_eq!(s["lastError"], r#"getMe answer has no "id""#, "{s}");
    assert!(
        gw.log.wait_for(r#"getMe answer has no "id""#, S10).is_some(),
        "log:\n{}",
        gw.log.text()
    );
    assert!(fake.wait_requests("getMe", 2, S10), "retried with the backoff");
    assert_eq!(
        fake.request_count("getUpdates"),
        0,
        "no polling without the bot id"
    );
}

#[test]
fn telegram_skips_an_incomplete_update_and_delivers_the_next() {
    let _w = Watchdog::new("telegram incomplete update", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let broken = fake.push_update("message", json!({"message_id": 1, "date": 1, "text": "no chat"}));
    let good = fake.push_message(100, 42, "after it");
    let m = next_message(&mut agent, S10);
    assert_eq!(m["text"], "after it");
    let want = format!(r#"update {broken} has no "message.chat.id""#);
    let line = gw.log.wait_for(&want, S10);
    assert!(
        line.is_some_and(|l| l.contains("WARN")),
        "log:\n{}",
        gw.log.text()
    );
    assert!(fake.wait_requests("getUpdates", 3, S10));
    assert!(fake.confirmed_offset() > good, "both updates confirmed");
    let s = wait_status(&mut agent, S10, |s| s["lastError"].is_string());
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["lastError"], format!("{want}; skipped"), "{s}");
}
