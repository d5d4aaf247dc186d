//! The Discord connector end to end: the real binary against the fake Discord (REST and
//! Gateway v10 WebSocket), with an agent on the WebSocket API.

mod support;

use std::thread;
use std::time::Duration;

use serde_json::json;
use support::discord::{TOKEN, messages_for, start, start_with, status, wait_status};
use support::fake_discord::{BOT_NAME, FakeDiscord, GwFault, SendFault};
use support::telegram::{call, next_message};
use support::{Watchdog, eventually};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn a_message_reaches_the_agent_once_and_the_reply_reaches_the_channel() {
    let _w = Watchdog::new("discord round trip", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, gw, mut agent) = start(&fake);
    let id = fake.push_message("555", Some("77"), "42", "hello emonk");
    let m = next_message(&mut agent, SECS(10));
    assert_eq!(m["channel"], "discord");
    assert_eq!(m["chatId"], "555");
    assert_eq!(m["chatType"], "guild");
    assert_eq!(m["messageId"], id.as_str());
    assert_eq!(
        m["from"],
        json!({"id": "42", "username": "user42", "name": "User 42"})
    );
    assert_eq!(m["text"], "hello emonk");
    assert_eq!(m["ts"], 1_714_566_896_789u64);
    assert_eq!(m["threadId"], json!(null));
    assert_eq!(m["edited"], false);
    let ack = agent.request("a1", "events.ack", json!({"cursor": m["cursor"]}));
    assert!(ack["result"].is_object(), "{ack}");

    let r = call(
        &mut agent,
        "s1",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "hi back", "replyTo": id}),
    );
    assert_eq!(r["result"]["channel"], "discord", "{r}");
    assert_eq!(r["result"]["to"], "555");
    assert_eq!(r["result"]["messageIds"].as_array().unwrap().len(), 1);
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["channel_id"], "555");
    assert_eq!(sent[0]["content"], "hi back");
    assert_eq!(
        sent[0]["message_reference"],
        json!({"message_id": id, "fail_if_not_exists": false})
    );
    assert_eq!(sent[0]["allowed_mentions"], json!({"parse": []}));

    // A DM; and the bot's own message (echoed by the gateway) is not delivered.
    fake.push_message("600", None, "43", "a dm");
    let m = next_message(&mut agent, SECS(10));
    assert_eq!(
        (m["chatType"].as_str(), m["text"].as_str()),
        (Some("dm"), Some("a dm"))
    );
    assert!(messages_for(&mut agent, Duration::from_millis(500), 1).is_empty());

    let ident = &fake.identifies()[0].d;
    assert_eq!(ident["token"], TOKEN, "Identify carries the bare token");
    assert_eq!(ident["intents"], (1 << 9) | (1 << 12) | (1 << 15));
    let s = status(&mut agent);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["account"], BOT_NAME);
    assert_eq!(s["inbound"], 2);
    assert_eq!(s["outbound"], 1);
    drop(gw);
}

#[test]
fn a_zombie_connection_resumes_without_loss_or_duplicates() {
    let _w = Watchdog::new("discord zombie", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, _gw, mut agent) = start(&fake);
    fake.push_message("555", None, "42", "before");
    assert_eq!(next_message(&mut agent, SECS(10))["text"], "before");
    fake.fault(GwFault::StopAcking);
    // Sent while the connection is dead: replayed on resume.
    thread::sleep(Duration::from_millis(200));
    fake.push_message("555", None, "42", "during");
    assert!(fake.wait_resumes(1, SECS(10)), "no Resume after a missed ACK");
    let got = messages_for(&mut agent, SECS(4), 3);
    let texts: Vec<_> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["during"], "delivered once, nothing else");
    let closes = fake.client_closes();
    assert!(
        closes.iter().any(|&c| c != 1000 && c != 1001),
        "zombie closed with a resumable code: {closes:?}"
    );
    let resume = &fake.resumes()[0].d;
    assert_eq!(resume["token"], TOKEN, "Resume without the Bot prefix");
    assert_eq!(resume["session_id"], "session-1");
    assert_eq!(fake.identifies().len(), 1);
    fake.push_message("555", None, "42", "after");
    assert_eq!(next_message(&mut agent, SECS(10))["text"], "after");
}

#[test]
fn op7_close_4000_and_a_drop_resume_the_session() {
    let _w = Watchdog::new("discord resume", SECS(40));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, _gw, mut agent) = start(&fake);
    fake.fault(GwFault::HeartbeatRequest);
    for (n, fault) in [GwFault::Reconnect, GwFault::Close(4000), GwFault::Drop]
        .into_iter()
        .enumerate()
    {
        fake.fault(fault.clone());
        assert!(fake.wait_resumes(n + 1, SECS(10)), "no Resume after {fault:?}");
        let text = format!("after {fault:?}");
        fake.push_message("555", None, "42", &text);
        assert_eq!(next_message(&mut agent, SECS(10))["text"], text.as_str());
    }
    assert_eq!(fake.identifies().len(), 1, "resumed, never re-identified");
}

#[test]
fn invalid_session_not_resumable_identifies_again() {
    let _w = Watchdog::new("discord op 9", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, _gw, mut agent) = start(&fake);
    fake.fault(GwFault::InvalidSession(false));
    assert!(fake.wait_identifies(2, SECS(15)), "no second Identify");
    let ids = fake.identifies();
    assert!(
        ids[1].at - ids[0].at >= Duration::from_millis(4900),
        "Identifies 5 s apart"
    );
    assert!(fake.wait_live(SECS(10)));
    fake.push_message("555", None, "42", "new session");
    assert_eq!(next_message(&mut agent, SECS(10))["text"], "new session");
    // op 9 true resumes.
    fake.fault(GwFault::InvalidSession(true));
    assert!(fake.wait_resumes(1, SECS(10)));
}

#[test]
fn identifies_stay_rate_bounded_when_every_session_is_invalidated() {
    let _w = Watchdog::new("discord identify bound", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    fake.invalidate_identifies(true);
    let (_home, mut gw) = start_with(&fake, json!({}));
    assert!(fake.wait_identifies(1, SECS(10)));
    thread::sleep(SECS(11));
    let ids = fake.identifies();
    assert!(
        (2..=3).contains(&ids.len()),
        "{} Identifies in 11 s (want at most one per 5 s)",
        ids.len()
    );
    for pair in ids.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(4900));
    }
    assert!(gw.alive());
}

#[test]
fn close_4004_stops_as_unauthorized_without_a_reconnect_loop() {
    let _w = Watchdog::new("discord 4004", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    fake.close_identifies_with(Some(4004));
    let (_home, gw) = start_with(&fake, json!({}));
    let mut op = gw.operator();
    let s = wait_status(&mut op, SECS(10), |s| s["state"] == "unauthorized");
    assert!(s["lastError"].as_str().unwrap().contains("4004"), "{s}");
    thread::sleep(SECS(2));
    assert_eq!(fake.identifies().len(), 1);
    assert_eq!(fake.connections(), 1);
    let r = call(
        &mut op,
        "s",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "x"}),
    );
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    assert!(gw.log.text().contains("fix channels.discord.token"));
}

#[test]
fn close_4014_stops_and_names_the_message_content_intent() {
    let _w = Watchdog::new("discord 4014", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    fake.close_identifies_with(Some(4014));
    let (_home, gw) = start_with(&fake, json!({}));
    let mut op = gw.operator();
    let s = wait_status(&mut op, SECS(10), |s| s["state"] == "fatal");
    assert!(
        s["lastError"].as_str().unwrap().contains("MESSAGE_CONTENT"),
        "{s}"
    );
    thread::sleep(SECS(2));
    assert_eq!(fake.identifies().len(), 1, "no reconnect after a fatal close");
    assert!(gw.log.text().contains("Message Content intent"));
}

#[test]
fn sends_wait_out_429s_and_split_long_text() {
    let _w = Watchdog::new("discord 429", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, _gw, mut agent) = start(&fake);
    fake.add_channel("555");
    fake.fail_next_send(SendFault::RateLimited(1.2, false));
    let r = call(
        &mut agent,
        "s1",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "rate me"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().unwrap().len(), 1, "{r}");
    let times = fake.send_times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(1150),
        "waited retry_after"
    );

    fake.fail_next_send(SendFault::RateLimited(0.5, true));
    let long = format!("{} {}", "é".repeat(1999), "ü".repeat(1500));
    let r = call(
        &mut agent,
        "s2",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": long}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().unwrap().len(), 2, "{r}");
    let sent = fake.sent();
    assert_eq!(sent[1]["content"].as_str().unwrap().chars().count(), 1999);
    assert_eq!(sent[2]["content"].as_str().unwrap().chars().count(), 1500);

    fake.fail_next_send(SendFault::Status(403, 50013, "Missing Permissions".into()));
    let r = call(
        &mut agent,
        "s3",
        "channels.send",
        json!({"channel": "discord", "to": "555", "text": "x"}),
    );
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
    let r = call(
        &mut agent,
        "s4",
        "channels.send",
        json!({"channel": "discord", "to": "999", "text": "x"}),
    );
    assert_eq!(r["error"]["code"], "NOT_FOUND", "{r}");
    let r = call(
        &mut agent,
        "s5",
        "channels.send",
        json!({"channel": "discord", "to": "not-an-id", "text": "x"}),
    );
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
}

#[test]
fn empty_content_is_reported_and_refused_senders_are_logged_once() {
    let _w = Watchdog::new("discord content intent", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, gw) = start_with(&fake, json!({"allowFrom": ["42"]}));
    let mut agent = gw.client(None, "agent", "operator");
    assert!(fake.wait_live(SECS(10)));
    fake.push_message("555", Some("1"), "42", "");
    fake.push_message("555", Some("1"), "43", "not allowed");
    fake.push_message("555", Some("1"), "43", "still not");
    fake.push_message("555", Some("1"), "42", "allowed");
    assert_eq!(next_message(&mut agent, SECS(10))["text"], "allowed");
    let s = wait_status(&mut agent, SECS(5), |s| s["lastError"].is_string());
    assert!(
        s["lastError"].as_str().unwrap().contains("MESSAGE_CONTENT"),
        "{s}"
    );
    assert_eq!(s["state"], "running");
    assert!(gw.log.wait_for("empty content", SECS(2)).is_some());
    assert_eq!(gw.log.count("add \"43\" to channels.discord.allowFrom"), 1);
}

#[test]
fn a_discord_outage_leaves_the_websocket_api_alone_and_stop_is_prompt() {
    let _w = Watchdog::new("discord outage", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, mut gw, mut agent) = start(&fake);
    fake.shutdown();
    let s = wait_status(&mut agent, SECS(10), |s| s["state"] == "backoff");
    assert!(s["lastError"].is_string(), "{s}");
    let r = agent.request("p", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    drop(agent);
    gw.signal(libc::SIGTERM);
    let started = std::time::Instant::now();
    let exit = eventually(SECS(5), || gw.wait_exit(Duration::from_millis(50))).expect("exits");
    assert!(exit.success(), "{exit:?}; log:\n{}", gw.log.text());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "stop took {:?}",
        started.elapsed()
    );
}

#[test]
fn messages_the_full_spool_refuses_are_held_and_delivered_after_the_ack() {
    let _w = Watchdog::new("discord full spool", SECS(40));
    let fake = FakeDiscord::start(TOKEN);
    let mut config: serde_json::Value =
        serde_json::from_str(&support::discord::config(&fake, json!({}))).unwrap();
    support::merge_json(&mut config, json!({"spool": {"maxEntries": 10}}));
    let home = support::Home::new(&config.to_string());
    let gw = support::Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    assert!(fake.wait_live(SECS(10)));
    for i in 0..12 {
        fake.push_message("555", Some("77"), "42", &format!("m{i}"));
    }
    let first: Vec<_> = (0..10).map(|_| next_message(&mut agent, SECS(10))).collect();
    assert!(
        gw.log.wait_for("discord: spool full:", SECS(5)).is_some(),
        "{}",
        gw.log.text()
    );
    let mut op = gw.operator();
    let s = status(&mut op);
    assert!(
        s["lastError"].as_str().unwrap_or("").contains("spool full"),
        "{s}"
    );
    let last = first.last().unwrap()["cursor"].clone();
    let ack = agent.request("ack", "events.ack", json!({"cursor": last}));
    assert!(ack["result"].is_object(), "{ack}");
    // The held two follow within the 5 s retry, in order, once each.
    let rest: Vec<_> = (0..2)
        .map(|_| next_message(&mut agent, SECS(10))["text"].clone())
        .collect();
    assert_eq!(rest, ["m10", "m11"]);
    let texts: Vec<_> = first
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    wait_status(&mut op, SECS(5), |s| s["lastError"].is_null());
}

#[test]
fn files_go_in_one_message_with_the_text_as_content() {
    let _w = Watchdog::new("discord files", SECS(40));
    let fake = FakeDiscord::start(TOKEN);
    fake.add_channel("555");
    let (home, _gw, mut agent) = start(&fake);
    let outbox = home.state_dir().join("outbox");
    let photo: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(outbox.join("cat.png"), &photo).unwrap();
    let send = |agent: &mut support::Ws, id: &str, params: serde_json::Value| {
        call(agent, id, "channels.send", params)
    };
    let r = send(
        &mut agent,
        "f1",
        json!({"channel": "discord", "to": "555", "text": "two files",
               "attachments": [{"path": outbox.join("cat.png")}, {"data": "aGVsbG8=", "name": "hi.txt"}]}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    let sent = &fake.sent()[0];
    assert_eq!(sent["content"], "two files");
    let files = sent["files"].as_array().unwrap();
    assert_eq!(files[0]["filename"], "cat.png");
    assert_eq!(files[0]["sha256"], support::multipart::sha256_hex(&photo));
    assert_eq!(files[0]["content_type"], "image/png");
    assert_eq!(files[1]["sha256"], support::multipart::sha256_hex(b"hello"));

    // Text over 2000 code points: the file alone, then the text in two messages; a 429 on
    // the upload first, after which the same bytes go again.
    fake.fail_next_send(SendFault::RateLimited(0.2, false));
    let long = "x".repeat(2500);
    let r = send(
        &mut agent,
        "f2",
        json!({"channel": "discord", "to": "555", "text": long, "attachments": [{"path": outbox.join("cat.png")}]}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(3), "{r}");
    let sent = fake.sent();
    assert_eq!(
        sent[1]["content"],
        serde_json::Value::Null,
        "no content beside the file"
    );
    assert_eq!(
        sent[1]["files"][0]["sha256"],
        support::multipart::sha256_hex(&photo)
    );
    let rest: String = sent[2..].iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(rest, long);

    // Over 10 MiB: refused before anything is sent.
    let big = outbox.join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(11 * 1024 * 1024)
        .unwrap();
    let r = send(
        &mut agent,
        "f3",
        json!({"channel": "discord", "to": "555", "text": "big", "attachments": [{"path": big}]}),
    );
    assert_eq!(r["error"]["code"], "PAYLOAD_TOO_LARGE", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("Discord"), "{r}");
    assert_eq!(fake.sent().len(), 4);
}

#[test]
fn files_in_a_message_reach_the_agent_and_fetch_refreshes_an_expired_url() {
    let _w = Watchdog::new("discord fetch", SECS(40));
    let fake = FakeDiscord::start(TOKEN);
    let (home, _gw, mut agent) = start(&fake);
    let photo: Vec<u8> = (0..150_000u32).map(|i| (i * 3 % 241) as u8).collect();
    let doc = b"%PDF-1.4 tiny".to_vec();
    let id = fake.push_message_with_files(
        "555",
        "42",
        "",
        &[
            ("cat.png", "image/png", &photo),
            ("notes.pdf", "application/pdf", &doc),
        ],
    );
    let m = next_message(&mut agent, SECS(10));
    assert_eq!(
        (m["messageId"].as_str(), m["text"].as_str()),
        (Some(id.as_str()), Some(""))
    );
    let atts = m["attachments"].as_array().unwrap().clone();
    assert_eq!(atts.len(), 2, "{m}");
    assert_eq!(atts[0]["kind"], "photo");
    assert_eq!(atts[0]["name"], "cat.png");
    assert_eq!(atts[0]["size"], photo.len());
    assert_eq!(atts[1]["kind"], "document");

    let fetch = |agent: &mut support::Ws, rid: &str, att: &serde_json::Value| {
        call(
            agent,
            rid,
            "channels.fetch",
            json!({"channel": "discord", "attachment": att["id"]}),
        )
    };
    let r = fetch(&mut agent, "f1", &atts[0]);
    assert_eq!(
        r["result"]["sha256"],
        support::multipart::sha256_hex(&photo),
        "{r}"
    );
    let path = std::path::Path::new(r["result"]["path"].as_str().unwrap());
    assert!(path.starts_with(home.state_dir().join("media")));
    assert_eq!(std::fs::read(path).unwrap(), photo);
    assert_eq!(fake.cdn_counts(), (1, 0));

    // A day later the signed URLs have expired: the fetch asks for a fresh one.
    fake.expire_cdn_urls();
    let r = fetch(&mut agent, "f2", &atts[1]);
    assert_eq!(r["result"]["sha256"], support::multipart::sha256_hex(&doc), "{r}");
    assert_eq!(r["result"]["mime"], "application/pdf");
    assert_eq!(
        fake.cdn_counts(),
        (3, 1),
        "the expired try, the refresh, the fresh try"
    );
    // Cached: no CDN request at all.
    let r = fetch(&mut agent, "f3", &atts[0]);
    assert!(r["result"]["path"].is_string(), "{r}");
    assert_eq!(fake.cdn_counts().0, 3);

    // An expired URL that cannot be refreshed: retryable, and says why.
    let id = fake.push_message_with_files("555", "42", "", &[("late.txt", "text/plain", b"late")]);
    let m = next_message(&mut agent, SECS(10));
    assert_eq!(m["messageId"], id.as_str());
    fake.expire_cdn_urls();
    fake.break_refresh(true);
    let r = fetch(&mut agent, "f5", &m["attachments"][0]);
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    assert_eq!(r["error"]["retryable"], true, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refreshing it failed"),
        "{r}"
    );

    // A Telegram id is not Discord's.
    let r = call(
        &mut agent,
        "f4",
        "channels.fetch",
        json!({"channel": "discord", "attachment": "WyJ0ZWxlZ3JhbSIsIngiXQ"}),
    );
    assert_eq!(r["error"]["code"], "NOT_FOUND", "{r}");
}

#[test]
fn an_edit_arrives_as_an_edited_message_once() {
    let _w = Watchdog::new("discord edits", SECS(30));
    let fake = FakeDiscord::start(TOKEN);
    let (_home, _gw, mut agent) = start(&fake);
    let id = fake.push_message("555", Some("777"), "42", "frist");
    let m = next_message(&mut agent, SECS(10));
    assert_eq!(
        (m["text"].as_str(), m["edited"].as_bool()),
        (Some("frist"), Some(false))
    );
    fake.push_embed_update("555", &id);
    fake.push_edit("555", &id, "42", "first");
    let e = next_message(&mut agent, SECS(10));
    assert_eq!(e["messageId"], id.as_str(), "{e}");
    assert_eq!(
        (e["text"].as_str(), e["edited"].as_bool()),
        (Some("first"), Some(true)),
        "{e}"
    );
    assert_eq!(e["ts"], 1_714_567_200_000u64, "the edit's time");
    assert_ne!(e["cursor"], m["cursor"], "its own cursor");
    // The embed update before it was not an edit; nothing else comes.
    assert!(messages_for(&mut agent, Duration::from_millis(800), 1).is_empty());
}
