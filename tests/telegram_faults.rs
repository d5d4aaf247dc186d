//! The Telegram connector under Bot API faults, through the real binary against the fake Bot
//! API: refused tokens, conflicts, server errors, dead or misbehaving servers, stalled polls,
//! send errors and retries, and stopping mid-poll. Every failure must be visible (state, log,
//! `channel.status`), must never become a hot loop, and must never touch the WebSocket API.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_telegram::{FakeTelegram, Fault};
use support::telegram::{TOKEN, call, config_at, next_message, polling_agent, start, start_with, wait_state};
use support::{Gateway, Home, Watchdog, Ws};

/// The `limit` of the gateway's own long polls (the stop confirmation uses 1, and the rival
/// poller in the conflict test uses another value), to count only the gateway's polls.
const GATEWAY_POLL_LIMIT: i64 = 100;

/// A gateway polling `fake` with a 25 s long poll.
fn start_long_polling(fake: &FakeTelegram) -> (Home, Gateway) {
    start_with(fake, json!({"channels": {"telegram": {"pollTimeoutSecs": 25}}}))
}

/// The next `channel.status` event whose state is `state`, skipping everything else.
fn next_status_event(ws: &mut Ws, state: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = ws
            .next(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("no channel.status {state:?} within {timeout:?}: {e:?}"));
        if v["type"] == "event" && v["event"] == "channel.status" && v["params"]["state"] == state {
            return v["params"].clone();
        }
    }
}

/// `gateway.ping` answers without waiting on the faulty Telegram (whose calls take seconds
/// to time out; 2 s leaves room for a loaded CI machine).
fn assert_ping(ws: &mut Ws) {
    let t = Instant::now();
    let r = ws.request("p", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "ping took {:?}",
        t.elapsed()
    );
}

/// How many long polls the gateway sent (its stop confirmation and rival pollers excluded).
fn gateway_polls(fake: &FakeTelegram) -> usize {
    fake.requests()
        .iter()
        .filter(|(m, p)| m == "getUpdates" && p["limit"].as_i64() == Some(GATEWAY_POLL_LIMIT))
        .count()
}

/// Requests of `method` that arrive during `window`.
fn requests_during(fake: &FakeTelegram, method: &str, window: Duration) -> usize {
    let before = fake.request_count(method);
    thread::sleep(window);
    fake.request_count(method) - before
}

/// A `channels.send` to the fake; the response frame and how long it took.
fn send(ws: &mut Ws, id: &str, params: Value) -> (Value, Duration) {
    let t = Instant::now();
    let r = call(ws, id, "channels.send", params);
    (r, t.elapsed())
}

// ---- The token is refused ----

fn refused_token(fault: Option<Fault>, status: &str) {
    let fake = FakeTelegram::start(TOKEN);
    // The first getMe fails softly (backoff 1 s) so a client is connected in time to hear the
    // state change of the second one, which the token refusal answers. A revoked token
    // answers 401 from the moment it is revoked (after the client connected), so there two
    // soft failures keep the connector from reaching the polls first on a slow machine.
    let soft = Fault::Status(500, "Internal Server Error".into());
    fake.fail_next("getMe", soft.clone());
    match &fault {
        Some(fault) => fake.fail_next("getMe", fault.clone()),
        None => fake.fail_next("getMe", soft),
    }
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    if fault.is_none() {
        fake.revoke_token();
    }
    let event = next_status_event(&mut op, "unauthorized", Duration::from_secs(10));
    assert_eq!(event["channel"], "telegram");
    assert!(event["error"].as_str().unwrap_or("").contains(status), "{event}");
    let s = wait_state(&mut op, "unauthorized", Duration::from_secs(5));
    assert!(
        s["lastError"].as_str().unwrap_or("").contains(status),
        "lastError names the status: {s}"
    );
    assert!(
        gw.log
            .wait_for("the bot token was refused", Duration::from_secs(5))
            .is_some(),
        "log:\n{}",
        gw.log.text()
    );
    // Nothing more is tried: no poll ever, and no request at all for 2 s.
    let before = fake.requests().len();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(fake.request_count("getUpdates"), 0, "{:?}", fake.requests());
    assert_eq!(fake.requests().len(), before, "{:?}", fake.requests());
    // Only the soft failures came before the refusal.
    assert!(fake.request_count("getMe") <= 3, "{:?}", fake.requests());
    // The WebSocket API does not care.
    assert_ping(&mut op);
    let r = op.request("s", "gateway.status", json!({}));
    assert!(r["result"]["pid"].is_u64(), "{r}");
}

#[test]
fn getme_401_stops_the_connector_and_says_so() {
    let _w = Watchdog::new("getMe 401", Duration::from_secs(30));
    refused_token(None, "401");
}

#[test]
fn getme_404_stops_the_connector_and_says_so() {
    let _w = Watchdog::new("getMe 404", Duration::from_secs(30));
    refused_token(Some(Fault::Status(404, "Not Found".into())), "404");
}

// ---- Conflicts ----

#[test]
fn a_webhook_set_meanwhile_is_deleted_and_polling_resumes() {
    let _w = Watchdog::new("webhook 409", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    assert_eq!(fake.request_count("deleteWebhook"), 1, "deleteWebhook at startup");
    fake.set_webhook(true);
    assert!(
        fake.wait_requests("deleteWebhook", 2, Duration::from_secs(5)),
        "the connector deletes the webhook; requests: {:?}",
        fake.requests()
    );
    assert!(
        gw.log
            .wait_for("deleting the webhook", Duration::from_secs(5))
            .is_some(),
        "log:\n{}",
        gw.log.text()
    );
    assert!(fake.wait_polling(1, Duration::from_secs(5)), "polling resumes");
    fake.push_message(100, 42, "after the webhook");
    let m = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(m["text"], "after the webhook");
    wait_state(&mut agent, "running", Duration::from_secs(5));
}

#[test]
fn another_poller_is_reported_and_not_fought_in_a_loop() {
    let _w = Watchdog::new("poller 409", Duration::from_secs(40));
    let fake = Arc::new(FakeTelegram::start(TOKEN));
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);

    // A second bot instance with the same token: it long-polls again as soon as it is answered
    // (or terminated), so whenever the gateway polls, one of the two gets the 409.
    let stop = Arc::new(AtomicBool::new(false));
    let rival = {
        let (fake, stop) = (fake.clone(), stop.clone());
        thread::spawn(move || {
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build(),
            );
            let url = format!("{}/bot{}/getUpdates", fake.base_url(), fake.token());
            let mut polls = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = agent
                    .post(&url)
                    .header("content-type", "application/json")
                    .send(json!({"limit": 5, "timeout": 1}).to_string().as_bytes());
                assert!(r.is_ok(), "rival poll: {r:?}");
                polls += 1;
                assert!(polls < 1000, "the rival polls in a hot loop");
            }
        })
    };
    let line = gw.log.wait_for(
        "another process is polling this bot token",
        Duration::from_secs(10),
    );
    assert!(line.is_some(), "log:\n{}", gw.log.text());
    wait_state(&mut agent, "conflict", Duration::from_secs(5));
    let before = gateway_polls(&fake);
    thread::sleep(Duration::from_secs(3));
    let during = gateway_polls(&fake) - before;
    assert!(during <= 2, "{during} gateway polls in 3 s while in conflict");
    assert_ping(&mut agent);

    // The other instance goes away: the gateway takes over again on its own.
    stop.store(true, Ordering::SeqCst);
    rival.join().expect("rival poller");
    assert!(
        fake.wait_polling(1, Duration::from_secs(12)),
        "the gateway polls again"
    );
    fake.push_message(100, 42, "after the conflict");
    let m = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(m["text"], "after the conflict");
}

// ---- Server errors, garbage, dropped connections ----

#[test]
fn failed_polls_back_off_then_recover() {
    let _w = Watchdog::new("transient poll failures", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let faults = [
        (Fault::Status(500, "Internal Server Error".into()), "HTTP 500"),
        (Fault::Malformed, "malformed response"),
        (Fault::Drop, "getUpdates failed"),
    ];
    for (round, (fault, log_says)) in faults.into_iter().enumerate() {
        let n = fake.request_count("getUpdates");
        fake.fail_next("getUpdates", fault.clone());
        // The next poll (after the pending one runs out) gets the fault.
        assert!(fake.wait_requests("getUpdates", n + 1, Duration::from_secs(5)));
        let failed_at = Instant::now();
        let text = format!("after {fault:?}");
        fake.push_message(100, 42, &text);
        let m = next_message(&mut agent, Duration::from_secs(10));
        assert_eq!(m["text"], text.as_str());
        assert!(
            failed_at.elapsed() >= Duration::from_millis(800),
            "{fault:?}: a failed poll is retried only after a backoff"
        );
        assert!(
            gw.log
                .wait_for_nth("telegram: getUpdates failed", round, Duration::from_secs(1))
                .is_some_and(|l| l.contains(log_says) && l.contains("retrying in")),
            "{fault:?}: log:\n{}",
            gw.log.text()
        );
    }
    wait_state(&mut agent, "running", Duration::from_secs(5));
}

/// With every poll failing with `fault`, polls slow down (1 s, 2 s, 4 s, ...).
fn persistent_poll_failure(fault: Fault) {
    let fake = FakeTelegram::start(TOKEN);
    fake.fail_always("getUpdates", fault.clone());
    let (_home, gw) = start(&fake);
    assert!(fake.wait_requests("getUpdates", 1, Duration::from_secs(10)));
    let started = Instant::now();
    let mut op = gw.operator();
    let s = wait_state(&mut op, "backoff", Duration::from_secs(5));
    assert!(s["lastError"].is_string(), "{s}");
    thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    let polls = fake.request_count("getUpdates");
    assert!(
        polls <= 4,
        "{fault:?}: {polls} polls in 4 s of failures: {:?}",
        fake.requests()
    );
    assert_ping(&mut op);
}

#[test]
fn persistent_5xx_does_not_hot_loop() {
    let _w = Watchdog::new("persistent 500", Duration::from_secs(30));
    persistent_poll_failure(Fault::Status(502, "Bad Gateway".into()));
}

#[test]
fn persistent_malformed_answers_do_not_hot_loop() {
    let _w = Watchdog::new("persistent malformed", Duration::from_secs(30));
    persistent_poll_failure(Fault::Malformed);
}

#[test]
fn persistent_dropped_connections_do_not_hot_loop() {
    let _w = Watchdog::new("persistent drop", Duration::from_secs(30));
    persistent_poll_failure(Fault::Drop);
}

#[test]
fn connection_refused_backs_off_and_the_api_keeps_working() {
    let _w = Watchdog::new("connection refused", Duration::from_secs(30));
    // A port that was just free: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let home = Home::new(&config_at(&format!("http://127.0.0.1:{port}"), json!({})));
    let gw = Gateway::start(&home);
    let mut op = gw.operator();
    let s = wait_state(&mut op, "backoff", Duration::from_secs(5));
    assert!(
        s["lastError"].as_str().unwrap_or("").contains("cannot connect"),
        "{s}"
    );
    let first = gw
        .log
        .wait_for("telegram: getMe failed: cannot connect", Duration::from_secs(5));
    assert!(first.is_some(), "log:\n{}", gw.log.text());
    let started = Instant::now();
    for _ in 0..20 {
        assert_ping(&mut op);
    }
    thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    let attempts = gw.log.count("telegram: getMe failed");
    assert!(
        attempts <= 4,
        "{attempts} connection attempts in ~4 s:\n{}",
        gw.log.text()
    );
}

#[test]
fn a_server_ignoring_the_poll_timeout_is_not_polled_in_a_hot_loop() {
    let _w = Watchdog::new("ignore timeout", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.fail_always("getUpdates", Fault::IgnoreTimeout);
    let (_home, gw) = start(&fake);
    let mut agent = gw.client(None, "agent", "operator");
    assert!(fake.wait_requests("getUpdates", 1, Duration::from_secs(10)));
    let polls = requests_during(&fake, "getUpdates", Duration::from_secs(3));
    assert!(polls <= 9, "{polls} polls in 3 s from a server answering at once");
    // Still receiving.
    fake.push_message(100, 42, "quick");
    assert_eq!(next_message(&mut agent, Duration::from_secs(5))["text"], "quick");
}

#[test]
fn a_stalled_poll_is_given_up_and_polling_goes_on() {
    let _w = Watchdog::new("stalled poll", Duration::from_secs(40));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let n = fake.request_count("getUpdates");
    // The server takes the next poll and never answers it (in time).
    fake.fail_next("getUpdates", Fault::Delay(Duration::from_secs(120)));
    assert!(fake.wait_requests("getUpdates", n + 1, Duration::from_secs(5)));
    let stalled_at = Instant::now();
    fake.push_message(100, 42, "after the stall");
    // pollTimeoutSecs 1: the HTTP timeout (1 + 10 s) ends it, then a new poll takes the message.
    let m = next_message(&mut agent, Duration::from_secs(20));
    assert_eq!(m["text"], "after the stall");
    let waited = stalled_at.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "the message came through the stalled poll after {waited:?}?"
    );
    assert!(
        gw.log.text().contains("getUpdates failed") || gw.log.text().contains("abandoning it"),
        "the stall is logged:\n{}",
        gw.log.text()
    );
}

// ---- channels.send errors and retries ----

#[test]
fn send_rate_limited_waits_retry_after_and_sends_once() {
    let _w = Watchdog::new("send 429", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    fake.fail_next("sendMessage", Fault::RetryAfter(1));
    let (r, took) = send(
        &mut op,
        "s",
        json!({"channel": "telegram", "to": "100", "text": "patience"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    assert!(took >= Duration::from_secs(1), "retried after {took:?}");
    assert_eq!(fake.request_count("sendMessage"), 2);
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["text"], "patience");
    assert!(
        gw.log.text().contains("rate limited sending to 100"),
        "log:\n{}",
        gw.log.text()
    );
}

#[test]
fn rejected_formatting_is_sent_again_as_plain_text() {
    let _w = Watchdog::new("send markdown rejected", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    fake.fail_next(
        "sendMessage",
        Fault::Status(
            400,
            "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0"
                .into(),
        ),
    );
    let (r, _) = send(
        &mut op,
        "s",
        json!({"channel": "telegram", "to": "100", "text": "*bold", "format": "markdown"}),
    );
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    let tries: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|(m, _)| m == "sendMessage")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[0]["parse_mode"], "MarkdownV2");
    assert!(tries[1].get("parse_mode").is_none(), "{tries:?}");
    assert_eq!(tries[1]["text"], "*bold");
    assert_eq!(fake.sent().len(), 1);
}

#[test]
fn a_send_to_a_migrated_group_lands_in_the_supergroup() {
    let _w = Watchdog::new("send migrate", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(-4001, "group", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    fake.fail_next("sendMessage", Fault::Migrate(-100999));
    let (r, _) = send(
        &mut op,
        "s",
        json!({"channel": "telegram", "to": "-4001", "text": "moved?"}),
    );
    assert_eq!(r["result"]["channel"], "telegram", "{r}");
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["chat_id"], -100999);
    assert_eq!(sent[0]["text"], "moved?");
}

#[test]
fn send_errors_map_to_not_found_and_invalid_request() {
    let _w = Watchdog::new("send 400s", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();

    // The fake does not know chat 555.
    let (r, _) = send(
        &mut op,
        "a",
        json!({"channel": "telegram", "to": "555", "text": "anyone?"}),
    );
    assert_eq!(r["error"]["code"], "NOT_FOUND", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("chat not found"),
        "Telegram's description is kept: {r}"
    );

    fake.fail_next(
        "sendMessage",
        Fault::Status(400, "Bad Request: message is too long".into()),
    );
    let (r, _) = send(
        &mut op,
        "b",
        json!({"channel": "telegram", "to": "100", "text": "short enough"}),
    );
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("message is too long"),
        "{r}"
    );
    assert_eq!(r["error"]["retryable"], false, "{r}");
    assert!(fake.sent().is_empty());
}

// ---- Stopping ----

#[test]
fn sigterm_during_a_long_poll_exits_promptly() {
    let _w = Watchdog::new("sigterm mid-poll", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, mut gw) = start_long_polling(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let update_id = fake.push_message(100, 42, "just before the stop");
    assert_eq!(
        next_message(&mut agent, Duration::from_secs(10))["text"],
        "just before the stop"
    );
    // The next 25 s poll is open (it carries the new offset).
    assert!(fake.wait_requests("getUpdates", 2, Duration::from_secs(5)));
    assert!(fake.wait_polling(1, Duration::from_secs(5)));
    let t = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no exit within 5 s; log:\n{}", gw.log.text()));
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", gw.log.text());
    assert!(
        took < Duration::from_millis(2500),
        "stop took {took:?}; log:\n{}",
        gw.log.text()
    );
    assert!(fake.confirmed_offset() > update_id);
    assert!(fake.pending_updates().is_empty());
}

#[test]
fn sigterm_confirms_a_spooled_batch_whose_confirmation_failed() {
    let _w = Watchdog::new("sigterm confirms", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, mut gw) = start_long_polling(&fake);
    let mut agent = polling_agent(&gw, &fake);
    // The poll that would carry the new offset fails before Telegram reads the offset.
    let n = fake.request_count("getUpdates");
    fake.fail_next("getUpdates", Fault::Status(502, "Bad Gateway".into()));
    let update_id = fake.push_message(100, 42, "spooled, not confirmed");
    assert_eq!(
        next_message(&mut agent, Duration::from_secs(10))["text"],
        "spooled, not confirmed"
    );
    assert!(fake.wait_requests("getUpdates", n + 1, Duration::from_secs(5)));
    assert!(
        fake.confirmed_offset() <= update_id,
        "not confirmed yet: {}",
        fake.confirmed_offset()
    );
    // Stop during the backoff after the failed poll.
    let t = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(Duration::from_secs(5)).expect("exit");
    assert_eq!(status.code(), Some(0), "log:\n{}", gw.log.text());
    assert!(t.elapsed() < Duration::from_millis(2500), "{:?}", t.elapsed());
    assert!(
        fake.confirmed_offset() > update_id,
        "the stop confirmed update {update_id} (confirmed offset {}); requests: {:?}",
        fake.confirmed_offset(),
        fake.requests()
    );
    assert!(fake.pending_updates().is_empty());
}
