//! Delivery through the Telegram connector, end to end with the real binary and the fake Bot
//! API: outbound splitting and idempotency; inbound durability (crash between spool append and
//! offset write), backlog while no agent is connected, the ack window, `events.ack` errors,
//! operator copies, message shapes, a full spool, and a failing Telegram next to the API.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_telegram::{FakeTelegram, Fault};
use support::telegram::{TOKEN, call, next_message, start, start_with, telegram_status, wait_status};
use support::{Gateway, Watchdog, Ws};

fn agent(gw: &Gateway) -> Ws {
    gw.client(None, "agent", "operator")
}

/// Assert that no `channel.message` arrives for `quiet`.
fn assert_no_message(ws: &mut Ws, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    while let Ok(v) = ws.next(deadline.saturating_duration_since(Instant::now())) {
        assert_ne!(v["event"], "channel.message", "unexpected message: {v}");
    }
}

/// Send `events.ack {cursor}` and read until its response came and `want` messages arrived
/// (the messages an ack releases may come before its response).
fn ack_and_collect(ws: &mut Ws, cursor: &str, want: usize) -> (Value, Vec<Value>) {
    let id = format!("ack-{cursor}");
    ws.send_json(
        &json!({"type": "request", "requestId": id, "method": "events.ack",
                         "params": {"cursor": cursor}}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut response, mut messages) = (None, Vec::new());
    while response.is_none() || messages.len() < want {
        let v = ws
            .next(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| {
                panic!(
                    "after ack {cursor}: {} of {want} messages, response {response:?}: {e:?}",
                    messages.len()
                )
            });
        if v["type"] == "response" && v["requestId"] == id.as_str() {
            response = Some(v);
        } else if v["type"] == "event" && v["event"] == "channel.message" {
            messages.push(v["params"].clone());
        }
    }
    (response.unwrap_or_default(), messages)
}

fn cursor_of(m: &Value) -> u64 {
    m["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{m}"))
}

// ---- Outbound ----

#[test]
fn long_text_is_split_into_parts_that_add_up_to_it() {
    let _w = Watchdog::new("long text split", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    // 20 paragraphs of ~480 chars: ~10,000 chars in all.
    let paragraphs: Vec<String> = (0..20)
        .map(|i| {
            let mut p = format!("Paragraph {i:02}.");
            while p.len() < 480 {
                p.push_str(" lorem ipsum dolor sit amet");
            }
            p
        })
        .collect();
    let text = paragraphs.join("\n\n");
    assert!((9_800..=10_200).contains(&text.len()), "{}", text.len());

    let r = call(
        &mut op,
        "s",
        "channels.send",
        json!({"channel": "telegram", "to": "100", "text": text}),
    );
    let ids = r["result"]["messageIds"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(ids.len(), 3, "{r}");
    let unique: HashSet<String> = ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect();
    assert_eq!(unique.len(), 3, "distinct ids: {r}");
    let sent: Vec<String> = fake
        .sent()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 3);
    for part in &sent {
        assert!(part.encode_utf16().count() <= 4096, "{} units", part.len());
        assert!(!part.starts_with(char::is_whitespace) && !part.ends_with(char::is_whitespace));
    }
    // The parts end at paragraph breaks, whose "\n\n" is dropped.
    assert_eq!(sent.join("\n\n"), text);
}

#[test]
fn an_idempotency_key_sends_once_and_answers_the_same() {
    let _w = Watchdog::new("idempotency", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    let mut agent = agent(&gw);
    let params = json!({"channel": "telegram", "to": "100", "text": "once", "idempotencyKey": "k1"});
    let first = call(&mut op, "a", "channels.send", params.clone());
    assert!(first["result"]["messageIds"].is_array(), "{first}");
    // The same key again, from another client: the first result, nothing sent.
    let second = call(&mut agent, "b", "channels.send", params);
    assert_eq!(second["result"], first["result"]);
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.request_count("sendMessage"), 1);
    // Another key sends again.
    let third = call(
        &mut op,
        "c",
        "channels.send",
        json!({"channel": "telegram", "to": "100", "text": "once", "idempotencyKey": "k2"}),
    );
    assert!(third["result"]["messageIds"].is_array(), "{third}");
    assert_ne!(third["result"]["messageIds"], first["result"]["messageIds"]);
    assert_eq!(fake.sent().len(), 2);
}

/// A duplicate that arrives while the first send is still in flight waits for that send's
/// result instead of sending again (the router's single-flight table).
#[test]
fn an_idempotency_key_in_flight_is_joined_not_sent_again() {
    let _w = Watchdog::new("idempotency-in-flight", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    let mut agent = agent(&gw);
    fake.fail_next("sendMessage", Fault::Delay(Duration::from_millis(1500)));
    let params = json!({"channel": "telegram", "to": "100", "text": "once", "idempotencyKey": "slow"});
    op.send_json(&json!({"type": "request", "requestId": "a", "method": "channels.send", "params": params}));
    assert!(fake.wait_requests("sendMessage", 1, Duration::from_secs(10)));
    // The first send is now held by the fake; the duplicate joins it.
    agent.send_json(
        &json!({"type": "request", "requestId": "b", "method": "channels.send", "params": params}),
    );
    let first = op.response("a", Duration::from_secs(10));
    let second = agent.response("b", Duration::from_secs(10));
    assert!(first["result"]["messageIds"].is_array(), "{first}");
    assert_eq!(second["result"], first["result"]);
    assert_eq!(fake.request_count("sendMessage"), 1);
    assert_eq!(fake.sent().len(), 1);
}

// ---- Inbound durability ----

#[test]
fn a_crash_between_spool_append_and_offset_write_delivers_once() {
    let _w = Watchdog::new("crash before offset write", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    // Five messages waiting before the gateway starts: the first poll takes them in one batch
    // (its Delay of zero only holds the place), and the poll after it, which carries the new
    // offset, hangs before the server reads the offset.
    for i in 0..5 {
        fake.push_message(100, 42, &format!("m{i}"));
    }
    fake.fail_next("getUpdates", Fault::Delay(Duration::ZERO));
    fake.fail_next("getUpdates", Fault::Delay(Duration::from_secs(120)));
    let (home, mut gw) = start(&fake);
    let mut a = agent(&gw);
    let first: Vec<Value> = (0..5)
        .map(|_| next_message(&mut a, Duration::from_secs(10)))
        .collect();
    assert_eq!(
        first.iter().map(cursor_of).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(fake.wait_requests("getUpdates", 2, Duration::from_secs(5)));
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5)).expect("killed");
    // Telegram still holds them, and the offset write "never happened".
    assert_eq!(fake.pending_updates().len(), 5, "not confirmed to the fake");
    let offset = home.state_dir().join("telegram.offset");
    assert!(offset.exists(), "the offset was persisted");
    std::fs::remove_file(&offset).unwrap();

    let gw2 = Gateway::start(&home);
    let mut a = agent(&gw2);
    let again: Vec<Value> = (0..5)
        .map(|_| next_message(&mut a, Duration::from_secs(10)))
        .collect();
    assert_eq!(
        again
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["m0", "m1", "m2", "m3", "m4"]
    );
    assert_eq!(
        again.iter().map(cursor_of).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "the same cursors: redelivered, not spooled again"
    );
    // The restarted connector confirms past them instead of spooling them twice.
    assert!(
        support::eventually(Duration::from_secs(5), || fake
            .pending_updates()
            .is_empty()
            .then_some(()))
        .is_some(),
        "still pending: {:?}",
        fake.pending_updates()
    );
    assert_no_message(&mut a, Duration::from_millis(1500));
    let ack = a.request("ack", "events.ack", json!({"cursor": "5"}));
    assert_eq!(ack["result"]["acked"], "5", "{ack}");
    let s = telegram_status(&mut a);
    assert_eq!(s["inbound"], 0, "nothing new was spooled after the restart: {s}");
}

#[test]
fn a_thousand_messages_wait_for_the_agent_and_arrive_in_order_once() {
    let _w = Watchdog::new("1000 without agent", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    assert!(fake.wait_polling(1, Duration::from_secs(10)));
    for i in 0..1000 {
        fake.push_message(100, 42, &format!("n{i}"));
    }
    wait_status(&mut op, Duration::from_secs(20), |s| s["inbound"] == 1000);

    let mut a = agent(&gw);
    for i in 0..1000u64 {
        let m = next_message(&mut a, Duration::from_secs(10));
        assert_eq!(cursor_of(&m), i + 1);
        assert_eq!(m["text"], format!("n{i}"));
        if (i + 1) % 100 == 0 {
            let id = format!("ack{i}");
            a.send_json(
                &json!({"type": "request", "requestId": id, "method": "events.ack",
                                "params": {"cursor": (i + 1).to_string()}}),
            );
        }
    }
    // Every ack was accepted, and nothing comes twice.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut acks = 0;
    while let Ok(v) = a.next(deadline.saturating_duration_since(Instant::now())) {
        assert_ne!(v["event"], "channel.message", "duplicate: {v}");
        if v["type"] == "response" {
            assert!(v["result"]["acked"].is_string(), "{v}");
            acks += 1;
        }
    }
    assert_eq!(acks, 10);
    let r = op.request("gs", "gateway.status", json!({}));
    assert_eq!(r["result"]["spool"]["pending"], 0, "{r}");
    assert_eq!(r["result"]["spool"]["acked"], "1000", "{r}");
}

#[test]
fn an_agent_that_never_acks_gets_a_window_of_1000() {
    let _w = Watchdog::new("ack window", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    for i in 0..1200 {
        fake.push_message(100, 42, &format!("w{i}"));
    }
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    wait_status(&mut op, Duration::from_secs(20), |s| s["inbound"] == 1200);

    let mut a = agent(&gw);
    for i in 0..1000u64 {
        assert_eq!(cursor_of(&next_message(&mut a, Duration::from_secs(10))), i + 1);
    }
    assert_no_message(&mut a, Duration::from_millis(1000));
    let (ack, rest) = ack_and_collect(&mut a, "1000", 200);
    assert_eq!(ack["result"]["acked"], "1000", "{ack}");
    for (i, m) in (1000..1200u64).zip(&rest) {
        assert_eq!(cursor_of(m), i + 1);
        assert_eq!(m["text"], format!("w{i}"));
    }
    assert_no_message(&mut a, Duration::from_millis(500));
}

#[test]
fn events_ack_errors() {
    let _w = Watchdog::new("events.ack errors", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    let mut a = agent(&gw);
    assert!(fake.wait_polling(1, Duration::from_secs(10)));
    fake.push_message(100, 42, "one");
    assert_eq!(cursor_of(&next_message(&mut a, Duration::from_secs(10))), 1);

    let r = op.request("o", "events.ack", json!({"cursor": "1"}));
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
    let r = a.request("x", "events.ack", json!({"cursor": "abc"}));
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    let r = a.request("y", "events.ack", json!({"cursor": "2"}));
    assert_eq!(r["error"]["code"], "NOT_FOUND", "{r}");
    assert!(r["error"]["message"].as_str().unwrap_or("").contains('1'), "{r}");
    // None of that acknowledged anything: a new agent gets the message again.
    drop(a);
    let mut a = agent(&gw);
    let m = next_message(&mut a, Duration::from_secs(10));
    assert_eq!(cursor_of(&m), 1);
    assert_eq!(m["text"], "one");
    let r = a.request("z", "events.ack", json!({"cursor": "1"}));
    assert_eq!(r["result"]["acked"], "1", "{r}");
}

#[test]
fn subscribed_operators_get_copies_and_the_agent_still_gets_everything() {
    let _w = Watchdog::new("operator copies", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut watcher = gw.operator();
    let r = watcher.request("sub", "events.subscribe", json!({"events": ["channel.message"]}));
    assert!(r["result"]["events"].is_array(), "{r}");
    let mut bystander = gw.operator();
    assert!(fake.wait_polling(1, Duration::from_secs(10)));

    // No agent yet: the watcher sees the message at once; it stays spooled for the agent.
    fake.push_message(100, 42, "first");
    let copy = next_message(&mut watcher, Duration::from_secs(10));
    assert_eq!(copy["text"], "first");
    assert_eq!(copy["cursor"], "1");
    let mut a = agent(&gw);
    let m = next_message(&mut a, Duration::from_secs(10));
    assert_eq!(m, copy, "the agent gets the same message");

    fake.push_message(100, 42, "second");
    let m = next_message(&mut a, Duration::from_secs(10));
    let copy = next_message(&mut watcher, Duration::from_secs(10));
    assert_eq!(m["text"], "second");
    assert_eq!(copy, m);
    let ack = a.request("ack", "events.ack", json!({"cursor": "2"}));
    assert_eq!(ack["result"]["acked"], "2", "{ack}");

    // Copies are not durable: a new subscription gets no replay; and nobody else got any.
    drop(watcher);
    let mut watcher = gw.operator();
    watcher.request("sub", "events.subscribe", json!({"events": ["channel.message"]}));
    assert_no_message(&mut watcher, Duration::from_millis(700));
    assert_no_message(&mut bystander, Duration::from_millis(100));
}

#[test]
fn edits_groups_and_replies_have_their_shape() {
    let _w = Watchdog::new("message shapes", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut a = agent(&gw);
    assert!(fake.wait_polling(1, Duration::from_secs(10)));

    fake.push_message(100, 42, "v1");
    let m = next_message(&mut a, Duration::from_secs(10));
    assert_eq!(m["edited"], false);
    assert_eq!(m["chatType"], "private");
    assert_eq!(m["replyTo"], Value::Null);
    let original = m["messageId"].clone();

    fake.push_message_as(100, "private", 42, "v2", true);
    let m = next_message(&mut a, Duration::from_secs(10));
    assert_eq!(m["edited"], true, "{m}");
    assert_eq!(m["text"], "v2");
    assert_eq!(m["messageId"], original, "an edit names the edited message: {m}");

    fake.push_message(-4001, 42, "in a group");
    let m = next_message(&mut a, Duration::from_secs(10));
    assert_eq!(m["chatType"], "group", "{m}");
    assert_eq!(m["chatId"], "-4001", "{m}");
    assert_eq!(m["from"]["id"], "42", "{m}");

    let now: i64 = 1_700_000_000;
    let chat = json!({"id": 100, "type": "private", "first_name": "User100"});
    fake.push_update(
        "message",
        json!({"message_id": 77, "date": now, "chat": chat, "text": "a reply",
               "from": {"id": 42, "is_bot": false, "first_name": "User42"},
               "reply_to_message": {"message_id": 1, "date": now, "chat": chat, "text": "v1"}}),
    );
    let m = next_message(&mut a, Duration::from_secs(10));
    assert_eq!(m["text"], "a reply");
    assert_eq!(m["replyTo"], "1", "{m}");
    assert_eq!(m["messageId"], "77");
    assert_eq!(m["ts"], now * 1000);
}

// ---- Limits and failures ----

#[test]
fn a_full_spool_leaves_the_rest_with_telegram_until_acked() {
    let _w = Watchdog::new("spool full", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    // Waiting before the start, so the first poll brings all 15 in one batch.
    for i in 0..15 {
        fake.push_message(100, 42, &format!("f{i}"));
    }
    let (_home, gw) = start_with(&fake, json!({"spool": {"maxEntries": 10}}));
    let mut op = gw.operator();
    let s = wait_status(&mut op, Duration::from_secs(10), |s| s["inbound"] == 10);
    assert!(
        gw.log.wait_for("spool full:", Duration::from_secs(5)).is_some(),
        "log:\n{}",
        gw.log.text()
    );
    let s = if s["state"] == "backoff" {
        s
    } else {
        wait_status(&mut op, Duration::from_secs(5), |s| s["state"] == "backoff")
    };
    assert!(
        s["lastError"].as_str().unwrap_or("").contains("spool full"),
        "{s}"
    );
    // Nothing was confirmed beyond what fitted: Telegram still holds all 15.
    assert_eq!(fake.pending_updates().len(), 15);

    let mut a = agent(&gw);
    for i in 0..10u64 {
        assert_eq!(cursor_of(&next_message(&mut a, Duration::from_secs(10))), i + 1);
    }
    let (ack, rest) = ack_and_collect(&mut a, "10", 5);
    assert_eq!(ack["result"]["acked"], "10", "{ack}");
    for (i, m) in (10..15u64).zip(&rest) {
        assert_eq!(cursor_of(m), i + 1);
        assert_eq!(m["text"], format!("f{i}"));
    }
    // The poll after the full one confirmed exactly the 10 that fitted.
    let offsets: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|(m, _)| m == "getUpdates")
        .map(|(_, p)| p["offset"].clone())
        .collect();
    assert_eq!(offsets[..2], [Value::Null, json!(1010)], "{offsets:?}");
    wait_status(&mut op, Duration::from_secs(5), |s| s["state"] == "running");
}

#[test]
fn a_failing_telegram_never_slows_the_api() {
    let _w = Watchdog::new("failing telegram, fast API", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.fail_always("getUpdates", Fault::Status(500, "Internal Server Error".into()));
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    assert!(fake.wait_requests("getUpdates", 1, Duration::from_secs(10)));
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let t = Instant::now();
        let r = op.request(&format!("p{i}"), "gateway.ping", json!({}));
        assert!(r["result"]["ts"].is_u64(), "{r}");
        slowest = slowest.max(t.elapsed());
    }
    // A loop waiting on Telegram would take seconds (HTTP timeouts); 2 s leaves room for a
    // loaded CI machine. Speed itself is measured by emonk-bench.
    assert!(slowest < Duration::from_secs(2), "slowest ping {slowest:?}");
    assert!(fake.request_count("getUpdates") >= 1);
    assert_eq!(telegram_status(&mut op)["state"], "backoff");
}
