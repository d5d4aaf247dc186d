//! Lenient parsing of platform answers, end to end: each connector of the real binary
//! against its fake in "minimal answers" mode (fewer fields than the platform documents as
//! always present, as a third-party emulator sends) reaches `running`, delivers a message
//! and sends one; an answer without a field the connector needs gives a `lastError` naming
//! it; an update or event without one is skipped, named in the log, and the rest flows.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_discord::{FakeDiscord, GwFault};
use support::fake_slack::FakeSlack;
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, call, next_message, polling_agent, start, wait_state, wait_status};
use support::{Watchdog, discord, slack};

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

#[test]
fn discord_runs_delivers_sends_and_resumes_on_minimal_answers() {
    let _w = Watchdog::new("discord minimal answers", Duration::from_secs(40));
    let fake = FakeDiscord::start(discord::TOKEN);
    // READY without username or resume_gateway_url, messages without type or timestamp.
    fake.minimal_answers(true);
    let (_home, _gw, mut agent) = discord::start(&fake);
    let s = discord::wait_status(&mut agent, S10, |s| s["state"] == "running");
    assert_eq!(s["lastError"], json!(null), "{s}");
    let id = fake.push_message("555", Some("77"), "42", "hello from an emulator");
    let m = next_message(&mut agent, S10);
    assert_eq!(m["text"], "hello from an emulator");
    assert_eq!(m["messageId"], id.as_str());
    assert_eq!(m["chatType"], "guild");
    assert_eq!(m["from"], json!({"id": "42", "username": null, "name": "42"}));
    let r = call(
        &mut agent,
        "s1",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "hi back"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    // No resume_gateway_url: the session resumes where it was opened.
    fake.fault(GwFault::Drop);
    assert!(fake.wait_resumes(1, S10), "no Resume after a drop");
    fake.push_message("555", None, "42", "after the resume");
    assert_eq!(next_message(&mut agent, S10)["text"], "after the resume");
    assert_eq!(fake.identifies().len(), 1);
}

#[test]
fn discord_ready_without_user_id_names_the_field() {
    let _w = Watchdog::new("discord READY without user.id", Duration::from_secs(30));
    let fake = FakeDiscord::start(discord::TOKEN);
    fake.omit_field("READY", "user.id");
    let (_home, gw) = discord::start_with(&fake, json!({}));
    let mut agent = gw.client(None, "agent", "operator");
    let s = discord::wait_status(&mut agent, S10, |s| s["lastError"].is_string());
    assert_eq!(s["state"], "backoff", "{s}");
    assert_eq!(
        s["lastError"], r#"READY has no "user.id"; starting a new session"#,
        "{s}"
    );
}

#[test]
fn discord_ready_without_session_id_runs_and_identifies_after_a_drop() {
    let _w = Watchdog::new("discord READY without session_id", Duration::from_secs(40));
    let fake = FakeDiscord::start(discord::TOKEN);
    fake.omit_field("READY", "session_id");
    let (_home, _gw, mut agent) = discord::start(&fake);
    let s = discord::wait_status(&mut agent, S10, |s| s["state"] == "running");
    assert_eq!(
        s["lastError"], r#"READY has no "session_id"; the session cannot be resumed"#,
        "{s}"
    );
    fake.push_message("555", None, "42", "still delivered");
    assert_eq!(next_message(&mut agent, S10)["text"], "still delivered");
    fake.fault(GwFault::Drop);
    assert!(fake.wait_identifies(2, Duration::from_secs(20)), "a new session");
    assert!(fake.resumes().is_empty(), "nothing to resume with");
}

#[test]
fn discord_skips_an_incomplete_message_and_delivers_the_next() {
    let _w = Watchdog::new("discord incomplete message", Duration::from_secs(30));
    let fake = FakeDiscord::start(discord::TOKEN);
    let (_home, gw, mut agent) = discord::start(&fake);
    let broken = fake.push_message_with("555", None, "42", "lost", json!({"channel_id": null}));
    fake.push_message("555", None, "42", "after it");
    assert_eq!(next_message(&mut agent, S10)["text"], "after it");
    let want = format!(r#"MESSAGE_CREATE {broken} has no "channel_id""#);
    let line = gw.log.wait_for(&want, S10);
    assert!(
        line.is_some_and(|l| l.contains("WARN")),
        "log:\n{}",
        gw.log.text()
    );
    let s = discord::status(&mut agent);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["lastError"], format!("{want}; skipped"), "{s}");
}

#[test]
fn slack_runs_delivers_and_sends_on_minimal_answers() {
    let _w = Watchdog::new("slack minimal answers", Duration::from_secs(40));
    let fake = FakeSlack::start();
    fake.minimal_answers(true);
    let (_home, gw) = slack::start(&fake, json!({}), &[]);
    let mut agent = slack::connected_agent(&gw, &fake);
    let s = slack::wait_state(&mut agent, "running", S10);
    assert_eq!(s["lastError"], json!(null), "{s}");
    fake.push_message("D1", "U42", "hello from an emulator");
    let m = next_message(&mut agent, S10);
    assert_eq!(m["text"], "hello from an emulator");
    assert_eq!(m["chatType"], "im");
    let r = call(
        &mut agent,
        "s1",
        "channels.send",
        json!({"channel": "slack", "to": "D1", "text": "hi back"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
}

#[test]
fn slack_auth_test_without_user_id_names_the_field() {
    let _w = Watchdog::new("slack auth.test without user_id", Duration::from_secs(30));
    let fake = FakeSlack::start();
    fake.omit_field("auth.test", "user_id");
    let (_home, gw) = slack::start(&fake, json!({}), &[]);
    let mut agent = gw.client(None, "agent", "operator");
    let s = slack::wait_state(&mut agent, "backoff", S10);
    assert_eq!(
        s["lastError"], r#"auth.test: auth.test answer has no "user_id""#,
        "{s}"
    );
}
