//! The Slack connector end to end: the real binary against the fake Slack (Web API and
//! Socket Mode), with an agent on the WebSocket API.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_slack::{FakeSlack, Fault};
use support::slack::{connected_agent, next_message, no_message_for, slack_status, start, wait_state};
use support::{Gateway, Watchdog};

const S10: Duration = Duration::from_secs(10);

#[test]
fn a_message_reaches_the_agent_once_and_the_reply_goes_to_its_thread() {
    let _w = Watchdog::new("slack round trip", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let (envelope, _) = fake.push_event(
        json!({"type": "message", "channel": "C1", "channel_type": "channel",
        "user": "U42", "text": "hello emonk", "ts": "1700000001.000200", "thread_ts": "1700000000.000100"}),
    );
    let m = next_message(&mut agent, S10);
    assert_eq!(m["channel"], "slack");
    assert_eq!(m["chatId"], "C1");
    assert_eq!(m["chatType"], "channel");
    assert_eq!(m["messageId"], "1700000001.000200");
    assert_eq!(m["threadId"], "1700000000.000100");
    assert_eq!(m["from"]["id"], "U42");
    assert_eq!(m["text"], "hello emonk");
    assert_eq!(m["ts"], 1_700_000_001_000u64);
    assert_eq!(m["edited"], false);
    assert!(
        fake.wait(S10, |v| v.acks.contains(&envelope)),
        "the envelope is acked"
    );

    // The bot's own messages and unhandled subtypes are acked but not delivered.
    let (own, _) = fake.push_message("C1", support::fake_slack::BOT_USER, "my own echo");
    let (join, _) = fake.push_event(
        json!({"type": "message", "subtype": "channel_join", "channel": "C1",
        "user": "U7", "text": "joined"}),
    );
    assert!(fake.wait(S10, |v| v.acks.contains(&own) && v.acks.contains(&join)));
    no_message_for(&mut agent, Duration::from_millis(300));

    let r = agent.request(
        "s1",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "hi back", "threadId": m["messageId"]}),
    );
    assert_eq!(r["result"]["channel"], "slack", "{r}");
    assert_eq!(r["result"]["to"], "C1");
    let sent = fake.sent();
    let (_, last) = sent.last().unwrap();
    assert_eq!(last["channel"], "C1");
    assert_eq!(last["text"], "hi back");
    assert_eq!(last["thread_ts"], "1700000001.000200");
    assert_eq!(r["result"]["messageIds"], json!([last["ts"]]));

    let s = slack_status(&mut agent);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["account"], "emonk");
    assert_eq!(s["inbound"], 1);
    assert_eq!(s["outbound"], 1);
}

#[test]
fn a_redelivered_event_reaches_the_agent_once_across_sockets_and_restarts() {
    let _w = Watchdog::new("slack redelivery", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (home, mut gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let first = fake.wait_sockets(1, S10);
    let envelope = fake.envelope(json!({"type": "message", "channel": "D1", "user": "U1", "text": "once"}));
    fake.send_on(first, envelope.clone());
    let m = next_message(&mut agent, S10);
    assert_eq!(m["text"], "once");
    assert_eq!(m["chatType"], "im");
    // Slack redelivers it on the same socket (an ack it did not see) ...
    let mut again = envelope.clone();
    again["retry_attempt"] = json!(1);
    fake.send_on(first, again.clone());
    let eid = envelope["envelope_id"].as_str().unwrap().to_owned();
    assert!(fake.wait(S10, |v| v.acks.iter().filter(|a| **a == eid).count() >= 2));
    // ... and, after the socket drops, on the new one.
    fake.drop_socket(first);
    let second = fake.wait_sockets(2, S10);
    fake.send_on(second, again.clone());
    // Unacked envelopes are redelivered by the fake itself too (acks ignored for one).
    fake.set_ignore_acks(true);
    let (_, _) = fake.push_message("D1", "U1", "next");
    assert_eq!(next_message(&mut agent, S10)["text"], "next");
    no_message_for(&mut agent, Duration::from_millis(2600));
    fake.set_ignore_acks(false);
    assert!(
        fake.acks().iter().filter(|a| **a == eid).count() >= 3,
        "every delivery is acked: {:?}",
        fake.acks()
    );

    // After a restart the delivered ids are still known.
    drop(agent);
    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    gw.wait_exit(Duration::from_secs(6)).expect("stops");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a stop with a socket open takes {:?}",
        t0.elapsed()
    );
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let third = fake.wait_sockets(3, S10);
    // The two messages are unacked by the agent: the spool gives them again, once each.
    assert_eq!(next_message(&mut agent, S10)["text"], "once");
    assert_eq!(next_message(&mut agent, S10)["text"], "next");
    fake.send_on(third, again);
    no_message_for(&mut agent, Duration::from_millis(500));
}

#[test]
fn refresh_opens_the_new_socket_before_closing_the_old_without_loss_or_duplicates() {
    let _w = Watchdog::new("slack refresh", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let old = fake.wait_sockets(1, S10);
    fake.disconnect(old, "refresh_requested");
    // A message Slack sends on the old socket during the switch, and again on the new one.
    let across = fake.envelope(json!({"type": "message", "channel": "C1", "user": "U1", "text": "across"}));
    fake.send_on(old, across.clone());
    let new = fake.wait_sockets(2, S10);
    fake.send_on(new, across);
    assert!(
        fake.wait(S10, |v| v.sockets[0].closed.is_some()),
        "the old socket is closed"
    );
    let sockets = fake.sockets();
    let (closed_at, by_client) = sockets[0].closed.unwrap();
    assert!(by_client, "the client closed the old socket");
    assert!(
        closed_at > sockets[1].opened,
        "the new socket was open before the old closed"
    );
    assert!(sockets[1].closed.is_none(), "the new socket stays");
    assert_eq!(next_message(&mut agent, S10)["text"], "across");
    fake.push_message("C1", "U1", "after");
    assert_eq!(next_message(&mut agent, S10)["text"], "after");
    no_message_for(&mut agent, Duration::from_millis(300));
    assert_eq!(slack_status(&mut agent)["state"], "running");
    // A warning is handled the same way.
    fake.disconnect(new, "warning");
    fake.wait_sockets(3, S10);
    fake.push_message("C1", "U1", "after warning");
    assert_eq!(next_message(&mut agent, S10)["text"], "after warning");
}

#[test]
fn link_disabled_stops_receiving_and_says_why() {
    let _w = Watchdog::new("slack link_disabled", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let id = fake.wait_sockets(1, S10);
    wait_state(&mut agent, "running", S10);
    fake.disconnect(id, "link_disabled");
    let s = wait_state(&mut agent, "disabled", S10);
    assert!(s["lastError"].as_str().unwrap().contains("link_disabled"), "{s}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fake.request_count("apps.connections.open"), 1, "no reconnect");
    assert!(fake.sockets()[0].closed.is_some());
    // Sends still work: they use the Web API, not the socket.
    let r = agent.request(
        "s",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "still here"}),
    );
    assert_eq!(r["result"]["channel"], "slack", "{r}");
}

#[test]
fn a_half_open_socket_is_detected_and_replaced() {
    let _w = Watchdog::new("slack half-open", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[("EMONK_SLACK_PING_MS", "300")]);
    let mut agent = connected_agent(&gw, &fake);
    let first = fake.wait_sockets(1, S10);
    wait_state(&mut agent, "running", S10);
    // Healthy: pings are answered, the socket stays.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(fake.sockets().len(), 1, "a healthy socket is kept");
    fake.go_silent(first);
    fake.wait_sockets(2, S10);
    assert!(
        gw.log.wait_for("half-open", S10).is_some(),
        "log:\n{}",
        gw.log.text()
    );
    fake.push_message("C1", "U1", "after half-open");
    assert_eq!(next_message(&mut agent, S10)["text"], "after half-open");
    wait_state(&mut agent, "running", S10);
}

#[test]
fn invalid_auth_is_unauthorized_without_a_loop_and_the_api_is_unaffected() {
    let _w = Watchdog::new("slack invalid_auth", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(
        &fake,
        json!({"channels": {"slack": {"botToken": "xoxb-wrong"}}}),
        &[],
    );
    let mut op = gw.operator();
    let s = wait_state(&mut op, "unauthorized", S10);
    assert!(s["lastError"].as_str().unwrap().contains("invalid_auth"), "{s}");
    assert!(s["lastError"].as_str().unwrap().contains("botToken"), "{s}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fake.request_count("auth.test"), 1, "no retry loop");
    assert_eq!(fake.request_count("apps.connections.open"), 0);
    let r = op.request(
        "s",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "x"}),
    );
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    let ping = op.request("p", "gateway.ping", json!({}));
    assert!(ping["result"]["ts"].is_u64(), "{ping}");
}

#[test]
fn an_invalid_app_token_is_unauthorized_too() {
    let _w = Watchdog::new("slack app token", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(
        &fake,
        json!({"channels": {"slack": {"appToken": "xapp-wrong"}}}),
        &[],
    );
    let mut op = gw.operator();
    let s = wait_state(&mut op, "unauthorized", S10);
    assert!(s["lastError"].as_str().unwrap().contains("appToken"), "{s}");
    assert_eq!(fake.request_count("apps.connections.open"), 1);
}

#[test]
fn sends_wait_out_429_pace_per_channel_split_and_map_errors() {
    let _w = Watchdog::new("slack sends", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[]);
    let mut op = gw.operator();
    fake.wait_sockets(1, S10);

    fake.fail_next("chat.postMessage", Fault::RateLimited(1));
    let t0 = Instant::now();
    let r = op.request(
        "s1",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "after a 429"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().unwrap().len(), 1, "{r}");
    assert!(t0.elapsed() >= Duration::from_millis(950), "waited Retry-After");
    assert_eq!(fake.request_count("chat.postMessage"), 2);

    // 9000 characters: three parts, paced about 1 s apart in one channel.
    let long = "word ".repeat(1800);
    let r = op.request(
        "s2",
        "channels.send",
        json!({"channel": "slack", "to": "C2", "text": long}),
    );
    let ids = r["result"]["messageIds"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 3, "{r}");
    let c2: Vec<_> = fake
        .sent()
        .into_iter()
        .filter(|(_, b)| b["channel"] == "C2")
        .collect();
    assert!(
        c2.iter()
            .all(|(_, b)| b["text"].as_str().unwrap().chars().count() <= 4000)
    );
    assert!(
        c2[2].0.duration_since(c2[0].0) >= Duration::from_millis(1900),
        "paced"
    );

    let code = |op: &mut support::Ws, to: &str| {
        op.request(
            "e",
            "channels.send",
            json!({"channel": "slack", "to": to, "text": "x"}),
        )["error"]["code"]
            .clone()
    };
    assert_eq!(code(&mut op, "CMISSING"), "NOT_FOUND");
    assert_eq!(code(&mut op, "COUT"), "FORBIDDEN");
    fake.fail_next("chat.postMessage", Fault::Error("msg_too_long"));
    assert_eq!(code(&mut op, "C3"), "INVALID_REQUEST");
    fake.fail_next("chat.postMessage", Fault::Status(503));
    let r = op.request(
        "e",
        "channels.send",
        json!({"channel": "slack", "to": "C4", "text": "x"}),
    );
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    assert_eq!(r["error"]["retryable"], true, "{r}");
}

#[test]
fn a_dead_slack_leaves_the_gateway_working_and_the_connector_recovers() {
    let _w = Watchdog::new("slack dead", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let first = fake.wait_sockets(1, S10);
    wait_state(&mut agent, "running", S10);
    // The socket drops and the next open fails: backoff, with the gateway unaffected.
    fake.fail_next("apps.connections.open", Fault::Status(503));
    fake.drop_socket(first);
    let s = wait_state(&mut agent, "backoff", S10);
    assert!(s["lastError"].is_string(), "{s}");
    let ping = agent.request("p", "gateway.ping", json!({}));
    assert!(ping["result"]["ts"].is_u64(), "{ping}");
    let status = agent.request("g", "gateway.status", json!({}));
    assert!(status["result"]["pid"].is_u64(), "{status}");
    // Then it comes back and messages flow again.
    fake.wait_sockets(2, S10);
    wait_state(&mut agent, "running", S10);
    fake.push_message("C1", "U1", "back");
    assert_eq!(next_message(&mut agent, S10)["text"], "back");
}

#[test]
fn telegram_and_slack_run_at_once_and_killing_slack_leaves_telegram_and_the_api_working() {
    let _w = Watchdog::new("slack + telegram", Duration::from_secs(40));
    let slack = FakeSlack::start();
    let telegram = support::fake_telegram::FakeTelegram::start(support::telegram::TOKEN);
    let tg_config: serde_json::Value =
        serde_json::from_str(&support::telegram::config(&telegram, json!({}))).unwrap();
    let (_home, mut gw) = start(&slack, tg_config, &[]);
    let mut agent = connected_agent(&gw, &slack);
    assert!(telegram.wait_polling(1, S10));
    slack.push_message("C1", "U1", "from slack");
    telegram.push_message(100, 42, "from telegram");
    let mut texts = vec![
        next_message(&mut agent, S10)["text"].as_str().unwrap().to_owned(),
        next_message(&mut agent, S10)["text"].as_str().unwrap().to_owned(),
    ];
    texts.sort();
    assert_eq!(texts, ["from slack", "from telegram"]);

    drop(slack);
    wait_state(&mut agent, "backoff", S10);
    telegram.push_message(100, 42, "still here");
    assert_eq!(next_message(&mut agent, S10)["text"], "still here");
    let ping = agent.request("p", "gateway.ping", json!({}));
    assert!(ping["result"]["ts"].is_u64(), "{ping}");

    // The stop stays well inside its budget with the Slack connector backing off.
    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(6)).is_some_and(|s| s.success()));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        t0.elapsed()
    );
}

#[test]
fn files_go_as_one_upload_shared_with_the_text_as_comment() {
    let _w = Watchdog::new("slack files", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (home, gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let outbox = home.state_dir().join("outbox");
    let doc: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(outbox.join("report.pdf"), &doc).unwrap();
    let r = support::telegram::call(
        &mut agent,
        "up",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "the report", "threadId": "1700000000.000100",
               "attachments": [{"path": outbox.join("report.pdf")}, {"data": "aGVsbG8=", "name": "hi.txt"}]}),
    );
    let ids = r["result"]["messageIds"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{r}"));
    let up = &fake.uploads()[0];
    assert_eq!(ids, [json!(up.ts)], "the share's ts");
    assert_eq!(up.channel, "C1");
    assert_eq!(up.thread_ts.as_deref(), Some("1700000000.000100"));
    assert_eq!(up.initial_comment.as_deref(), Some("the report"));
    assert_eq!(
        up.files[0],
        (
            "report.pdf".to_owned(),
            doc.len(),
            support::multipart::sha256_hex(&doc)
        )
    );
    assert_eq!(up.files[1].2, support::multipart::sha256_hex(b"hello"));
    assert!(fake.sent().is_empty(), "no separate chat.postMessage");

    // A failure before the share is retried (nothing was visible yet), once.
    fake.fail_next("files.getUploadURLExternal", Fault::Status(503));
    let r = support::telegram::call(
        &mut agent,
        "up2",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "", "attachments": [{"data": "aGk=", "name": "a.txt"}]}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(fake.uploads().len(), 2);
    assert_eq!(fake.uploads()[1].initial_comment, None);

    // Over Slack's 1 GB: refused before anything is asked of Slack (a sparse file).
    let big = outbox.join("huge.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1024 * 1024 * 1024 + 1)
        .unwrap();
    let before = fake.request_count("files.getUploadURLExternal");
    let r = support::telegram::call(
        &mut agent,
        "up3",
        "channels.send",
        json!({"channel": "slack", "to": "C1", "text": "x", "attachments": [{"path": big}]}),
    );
    assert_eq!(r["error"]["code"], "PAYLOAD_TOO_LARGE", "{r}");
    assert_eq!(fake.request_count("files.getUploadURLExternal"), before);
}

#[test]
fn shared_files_reach_the_agent_and_are_fetched_with_the_bot_token() {
    let _w = Watchdog::new("slack fetch", Duration::from_secs(40));
    let fake = FakeSlack::start();
    let (_home, gw) = start(&fake, json!({}), &[]);
    let mut agent = connected_agent(&gw, &fake);
    let audio: Vec<u8> = (0..90_000u32).map(|i| (i * 5 % 239) as u8).collect();
    fake.push_files("C1", "U42", "", &[("memo.m4a", "audio/mp4", &audio)]);
    let m = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(m["text"], "", "{m}");
    let att = m["attachments"][0].clone();
    assert_eq!(
        (att["kind"].as_str(), att["name"].as_str()),
        (Some("audio"), Some("memo.m4a")),
        "{m}"
    );
    assert_eq!(att["size"], audio.len());
    let r = support::telegram::call(
        &mut agent,
        "f",
        "channels.fetch",
        json!({"channel": "slack", "attachment": att["id"]}),
    );
    assert_eq!(
        r["result"]["sha256"],
        support::multipart::sha256_hex(&audio),
        "{r}"
    );
    assert_eq!(fake.file_downloads(), 1);
}
