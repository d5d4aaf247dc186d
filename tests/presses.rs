//! Presses on buttons as the durable `channel.action` event, through the real binary on the
//! fake Bot API: spooled like messages (same cursor sequence, redelivered until acked),
//! answered to Telegram by the gateway itself (`answerCallbackQuery`), refused for senders
//! outside `allowFrom`, and never delivered twice when Telegram sends a press again.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Watchdog;
use support::fake_telegram::FakeTelegram;
use support::telegram::{call, start_with};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The next `channel.action` params, skipping everything else.
fn next_action(ws: &mut support::Ws, timeout: Duration) -> Value {
    support::next_event(ws, "channel.action", timeout)
}

fn post_with_button(ws: &mut support::Ws, chat: i64) -> i64 {
    let r = call(
        ws,
        "s",
        "channels.send",
        json!({"channel": "telegram", "to": chat.to_string(), "text": "Post this?",
               "buttons": [[{"text": "Approve", "action": "approve:42"}]]}),
    );
    r["result"]["messageIds"][0].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_press_is_a_durable_channel_action_answered_to_telegram() {
    let _w = Watchdog::new("telegram press", SECS(60));
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start_with(&fake, json!({"channels": {"telegram": {"allowFrom": ["42"]}}}));
    let mut agent = support::telegram::polling_agent(&gw, &fake);
    let message = post_with_button(&mut agent, 100);
    let (_, query) = fake.push_press(100, message, 42, "approve:42");
    let press = next_action(&mut agent, SECS(10));
    assert_eq!(press["channel"], "telegram");
    assert_eq!(press["chatId"], "100");
    assert_eq!(press["messageId"], message.to_string());
    assert_eq!(press["action"], "approve:42");
    assert_eq!(press["from"]["id"], "42");
    assert!(press["ts"].as_u64().unwrap() > 1_700_000_000_000, "{press}");
    let cursor = press["cursor"].as_str().unwrap().to_owned();
    // The gateway answered the callback itself, so the user's client stopped waiting.
    let deadline = std::time::Instant::now() + SECS(5);
    while !fake.answered_callbacks().iter().any(|(q, _)| *q == query) {
        assert!(
            std::time::Instant::now() < deadline,
            "the callback was not answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Not acked: a new agent connection gets it again, with the same cursor.
    drop(agent);
    let mut agent = gw.client(None, "agent", "operator");
    let again = next_action(&mut agent, SECS(10));
    assert_eq!(again["cursor"], cursor.as_str(), "redelivered until acked");
    let r = agent.request("ack", "events.ack", json!({"cursor": cursor}));
    assert!(r["result"].is_object(), "{r}");

    // Messages and presses share one cursor sequence.
    fake.push_message(100, 42, "and a message");
    let m = support::telegram::next_message(&mut agent, SECS(10));
    assert!(m["cursor"].as_str().unwrap().parse::<u64>().unwrap() > cursor.parse::<u64>().unwrap());

    // An operator may subscribe to presses.
    let mut op = gw.operator();
    let r = op.request("sub", "events.subscribe", json!({"events": ["channel.action"]}));
    assert_eq!(r["result"]["events"], json!(["channel.action"]), "{r}");
    fake.push_press(100, message, 42, "approve:42");
    assert_eq!(next_action(&mut op, SECS(10))["action"], "approve:42");
}

#[test]
fn refused_and_stale_presses_are_answered_but_never_delivered() {
    let _w = Watchdog::new("telegram press refused", SECS(60));
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start_with(&fake, json!({"channels": {"telegram": {"allowFrom": ["42"]}}}));
    let mut agent = support::telegram::polling_agent(&gw, &fake);
    let message = post_with_button(&mut agent, 100);
    let (_, refused) = fake.push_press(100, message, 7, "approve:42");
    fake.push_press(100, message, 7, "approve:42");
    // A press on a message Telegram no longer has (an InaccessibleMessage: date 0).
    fake.push_update(
        "callback_query",
        json!({"id": "stale-1", "chat_instance": "-7", "data": "approve:1",
               "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
               "message": {"message_id": 1, "date": 0, "chat": {"id": 100, "type": "private"}}}),
    );
    fake.push_message(100, 42, "marker");
    let m = support::telegram::next_message(&mut agent, SECS(10));
    assert_eq!(m["text"], "marker", "no press came before it");
    assert!(
        gw.log
            .wait_for("add \"7\" to channels.telegram.allowFrom", SECS(2))
            .is_some(),
        "the refused sender is named with the id to add"
    );
    assert_eq!(gw.log.count("(id 7)"), 1, "logged once");
    let deadline = std::time::Instant::now() + SECS(5);
    loop {
        let answered = fake.answered_callbacks();
        let stale = answered.iter().find(|(q, _)| q == "stale-1");
        if let (true, Some((_, notice))) = (answered.iter().any(|(q, _)| *q == refused), stale) {
            assert!(notice.as_deref().unwrap_or("").contains("no longer available"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "answered: {answered:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_press_telegram_sends_again_after_a_crash_is_delivered_once() {
    let _w = Watchdog::new("telegram press redelivered", SECS(60));
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    fake.add_chat(100, "private", None);
    let home = support::Home::new(&support::telegram::config(&fake, json!({})));
    let mut gw = support::Gateway::start(&home);
    let mut agent = support::telegram::polling_agent(&gw, &fake);
    let (update, _) = fake.push_press(100, 1, 42, "approve:9");
    let press = next_action(&mut agent, SECS(10));
    assert_eq!(press["action"], "approve:9");
    // Crash before the offset is known to Telegram: it sends the same update again.
    gw.signal(libc::SIGKILL);
    gw.wait_exit(SECS(5));
    let _ = std::fs::remove_file(home.state_dir().join("telegram.offset"));
    fake.requeue(json!({"update_id": update, "callback_query": {
        "id": "again", "chat_instance": "-7", "data": "approve:9",
        "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
        "message": {"message_id": 1, "date": 1_700_000_000, "chat": {"id": 100, "type": "private"}}}}));
    let gw = support::Gateway::start(&home);
    let mut agent = support::telegram::polling_agent(&gw, &fake);
    // The unacked press is redelivered from the spool, with its cursor; the copy from
    // Telegram is a duplicate the spool skips.
    let again = next_action(&mut agent, SECS(10));
    assert_eq!(again["cursor"], press["cursor"]);
    agent.request("ack", "events.ack", json!({"cursor": again["cursor"]}));
    fake.push_message(100, 42, "marker");
    let m = support::telegram::next_message(&mut agent, SECS(10));
    assert_eq!(m["text"], "marker", "no second copy of the press");
}

#[test]
fn a_discord_press_is_answered_within_3_s_and_delivered_once() {
    let _w = Watchdog::new("discord press", SECS(60));
    let fake = support::fake_discord::FakeDiscord::start(support::discord::TOKEN);
    fake.add_channel("555");
    let (_home, _gw, mut agent) = support::discord::start_agent_with(&fake, json!({"allowFrom": ["42"]}));
    let r = call(
        &mut agent,
        "s",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "Post this?",
               "buttons": [[{"text": "Approve", "action": "approve:7"}]]}),
    );
    let message = r["result"]["messageIds"][0].as_str().unwrap().to_owned();
    let id = fake.push_press("555", Some("777"), &message, "42", "approve:7");
    let press = next_action(&mut agent, SECS(10));
    assert_eq!(press["channel"], "discord");
    assert_eq!(press["chatId"], "555");
    assert_eq!(press["messageId"], message.as_str());
    assert_eq!(press["action"], "approve:7");
    assert_eq!(press["from"]["id"], "42");
    let deadline = std::time::Instant::now() + SECS(5);
    let answered = loop {
        if let Some(c) = fake.callbacks().into_iter().find(|(i, _, _)| *i == id) {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the interaction was not answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answered.1, 6, "a deferred update: the message stays as it is");
    assert!(answered.2 < SECS(3), "answered after {:?}", answered.2);
    // A refused user's press is answered too, and never delivered.
    let refused = fake.push_press("555", Some("777"), &message, "9", "approve:7");
    fake.push_message("555", Some("777"), "42", "marker");
    let m = support::telegram::next_message(&mut agent, SECS(10));
    assert_eq!(m["text"], "marker");
    let deadline = std::time::Instant::now() + SECS(5);
    while !fake.callbacks().iter().any(|(i, _, _)| *i == refused) {
        assert!(
            std::time::Instant::now() < deadline,
            "the refused press was not answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slack_press_is_acked_and_delivered_once_even_when_slack_sends_it_again() {
    let _w = Watchdog::new("slack press", SECS(60));
    let slack = support::fake_slack::FakeSlack::start();
    let (_home, gw) = support::slack::start(
        &slack,
        json!({"channels": {"slack": {"allowFrom": ["U42"]}}}),
        &[],
    );
    let mut agent = support::slack::connected_agent(&gw, &slack);
    let r = call(
        &mut agent,
        "s",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "Post this?",
               "buttons": [[{"text": "Approve", "action": "approve:3"}]]}),
    );
    let ts = r["result"]["messageIds"][0].as_str().unwrap().to_owned();
    let envelope = slack.push_press("C1", &ts, "U42", "approve:3");
    let press = next_action(&mut agent, SECS(10));
    assert_eq!(press["channel"], "slack");
    assert_eq!(press["chatId"], "C1");
    assert_eq!(press["messageId"], ts.as_str());
    assert_eq!(press["action"], "approve:3");
    assert_eq!(press["from"]["id"], "U42");
    let id = envelope["envelope_id"].as_str().unwrap().to_owned();
    assert!(slack.acks().contains(&id), "the envelope was acked");
    // Slack sends the same envelope again (as after a lost ack): not delivered twice.
    slack.push_envelope(envelope);
    slack.push_press("C1", &ts, "U9", "approve:3"); // a refused user
    slack.push_message("C1", "U42", "marker");
    let m = support::slack::next_message(&mut agent, SECS(10));
    assert_eq!(
        m["text"], "marker",
        "no second copy and no refused press before it"
    );
    assert!(
        gw.log
            .wait_for("add \"U9\" to channels.slack.allowFrom", SECS(2))
            .is_some()
    );
}

#[test]
fn a_discord_press_replayed_on_resume_is_not_delivered_twice() {
    let _w = Watchdog::new("discord press replay", SECS(60));
    let fake = support::fake_discord::FakeDiscord::start(support::discord::TOKEN);
    fake.add_channel("555");
    let (_home, _gw, mut agent) = support::discord::start(&fake);
    fake.push_message("555", None, "42", "before");
    assert_eq!(
        support::telegram::next_message(&mut agent, SECS(10))["text"],
        "before"
    );
    fake.push_press("555", None, "1", "42", "approve:1");
    assert_eq!(next_action(&mut agent, SECS(10))["action"], "approve:1");
    // The connection dies; the Resume replays the whole session, press included.
    fake.replay_everything_on_resume();
    fake.fault(support::fake_discord::GwFault::StopAcking);
    assert!(fake.wait_resumes(1, SECS(10)), "no Resume after a missed ACK");
    fake.push_message("555", None, "42", "after");
    let deadline = std::time::Instant::now() + SECS(10);
    loop {
        let v = agent
            .next(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|e| panic!("no message after the resume: {e:?}"));
        if v["type"] != "event" {
            continue;
        }
        assert_ne!(v["event"], "channel.action", "the press came twice: {v}");
        if v["event"] == "channel.message" {
            assert_eq!(v["params"]["text"], "after", "only the new message: {v}");
            break;
        }
    }
}
