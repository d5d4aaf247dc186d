//! The Telegram connector end to end: the real binary against the fake Bot API, with an
//! agent on the WebSocket API.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, config, next_message, polling_agent, start, start_with};
use support::{Gateway, Watchdog};

#[test]
fn a_message_reaches_the_agent_and_the_reply_reaches_the_chat() {
    let _w = Watchdog::new("telegram round trip", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    fake.push_message(100, 42, "hello emonk");
    let m = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(m["channel"], "telegram");
    assert_eq!(m["chatId"], "100");
    assert_eq!(m["from"]["id"], "42");
    assert_eq!(m["text"], "hello emonk");
    assert_eq!(m["cursor"], "1");
    let ack = agent.request("a1", "events.ack", json!({"cursor": m["cursor"]}));
    assert_eq!(ack["result"]["acked"], "1", "{ack}");

    let r = agent.request(
        "s1",
        "channels.send",
        json!({"channel": "telegram", "to": "100", "text": "hi back"}),
    );
    assert_eq!(r["result"]["channel"], "telegram", "{r}");
    assert_eq!(r["result"]["messageIds"].as_array().unwrap().len(), 1);
    let sent = fake.sent();
    assert_eq!(sent.last().unwrap()["text"], "hi back");

    let status = agent.request("st", "channels.status", json!({}));
    let tg = &status["result"]["channels"][0];
    assert_eq!(tg["channel"], "telegram");
    assert_eq!(tg["state"], "running", "{status}");
    assert_eq!(tg["inbound"], 1);
    assert_eq!(tg["outbound"], 1);
    assert_eq!(tg["spooled"], 0);
}

#[test]
fn unacked_messages_survive_kill_9_exactly_once_in_order() {
    let _w = Watchdog::new("telegram kill -9", Duration::from_secs(60));
    let fake = FakeTelegram::start(TOKEN);
    let (home, mut gw) = start(&fake);
    assert!(fake.wait_polling(1, Duration::from_secs(10)));
    for i in 0..100 {
        fake.push_message(100, 42, &format!("m{i}"));
    }
    // Wait until the connector has taken all of them (the fake forgets confirmed updates).
    let mut agent = gw.client(None, "agent", "operator");
    let mut seen = Vec::new();
    while seen.len() < 100 {
        seen.push(
            next_message(&mut agent, Duration::from_secs(10))["text"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    drop(agent);
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5)).expect("killed");

    let gw2 = Gateway::start(&home);
    let mut agent = gw2.client(None, "agent", "operator");
    let mut again = Vec::new();
    for _ in 0..100 {
        again.push(
            next_message(&mut agent, Duration::from_secs(10))["text"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(again, expected, "all 100 again, in order");
    // Nothing more: no duplicate from Telegram re-sending unconfirmed updates.
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(v) = agent.next(deadline.saturating_duration_since(std::time::Instant::now())) {
        assert_ne!(v["event"], "channel.message", "duplicate after redelivery: {v}");
    }
}

#[test]
fn allow_from_refuses_and_logs_the_id_to_add() {
    let _w = Watchdog::new("telegram allowFrom", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start_with(&fake, json!({"channels": {"telegram": {"allowFrom": ["7"]}}}));
    let mut agent = gw.client(None, "agent", "operator");
    assert!(fake.wait_polling(1, Duration::from_secs(10)));
    fake.push_message(100, 42, "from a stranger");
    fake.push_message(100, 42, "again");
    fake.push_message(200, 7, "from a friend");
    let m = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(m["text"], "from a friend");
    let line = gw.log.wait_for(
        "add \"42\" to channels.telegram.allowFrom",
        Duration::from_secs(5),
    );
    assert!(line.is_some(), "log:\n{}", gw.log.text());
    assert_eq!(
        gw.log.count("add \"42\""),
        1,
        "each refused sender is logged once"
    );
}

#[test]
fn switching_to_another_bot_does_not_skip_its_messages() {
    let _w = Watchdog::new("telegram bot switch", Duration::from_secs(60));
    let first = FakeTelegram::start(TOKEN);
    let (home, mut gw) = start(&first);
    let mut agent = gw.client(None, "agent", "operator");
    assert!(first.wait_polling(1, Duration::from_secs(10)));
    for i in 0..3 {
        first.push_message(100, 42, &format!("old {i}"));
    }
    let mut last = Value::Null;
    for _ in 0..3 {
        last = next_message(&mut agent, Duration::from_secs(10));
    }
    let ack = agent.request("ack", "events.ack", json!({"cursor": last["cursor"]}));
    assert_eq!(ack["result"]["acked"], "3", "{ack}");
    drop(agent);
    gw.signal(libc::SIGTERM);
    gw.wait_exit(Duration::from_secs(6)).expect("stops");

    // Another bot: its update ids start low again, below the first bot's.
    let second = FakeTelegram::start("654321:OTHER-token");
    home.write_config(&config(
        &second,
        json!({"channels": {"telegram": {"botToken": "654321:OTHER-token"}}}),
    ));
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    assert!(second.wait_polling(1, Duration::from_secs(10)));
    second.push_message(100, 42, "new bot");
    let m = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(m["text"], "new bot");
}
