//! Self-test of the fake Telegram Bot API (driven with plain ureq, so a bug in the fake cannot
//! hide behind the same bug in our client), then the real `BotApi` against the fake: the happy
//! path and every error class.

mod support;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use emonk::channels::telegram::api::{ApiError, BotApi, SendMessage};
use emonk::channels::telegram::normalize::{Normalized, normalize};
use emonk::protocol::ErrorCode;
use serde_json::{Value, json};
use support::Watchdog;
use support::fake_telegram::{CONFLICT_POLLER, CONFLICT_WEBHOOK, FakeTelegram, Fault, MIGRATED};

const TOKEN: &str = "123456:TEST-token_abc";
const LIMIT: Duration = Duration::from_secs(30);
const T: Duration = Duration::from_secs(10);

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build();
    ureq::Agent::new_with_config(config)
}

/// POST a JSON body to `method`; (status, parsed body).
fn call(agent: &ureq::Agent, fake: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/bot{}/{method}", fake.base_url(), fake.token());
    let mut response = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("request");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut response = agent.get(url).call().expect("request");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn updates(fake: &FakeTelegram, agent: &ureq::Agent, params: Value) -> Vec<Value> {
    let (status, body) = call(agent, fake, "getUpdates", params);
    assert_eq!(status, 200, "{body}");
    body["result"].as_array().expect("result array").clone()
}

#[test]
fn paths_tokens_and_method_names() {
    let _w = Watchdog::new("paths_tokens_and_method_names", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    let base = fake.base_url();

    let (status, body) = get(&agent, &format!("{base}/bot{TOKEN}/getMe"));
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["result"]["id"], 123456);
    assert_eq!(body["result"]["is_bot"], true);
    // Method names are case-insensitive.
    let (status, _) = get(&agent, &format!("{base}/bot{TOKEN}/GETME"));
    assert_eq!(status, 200);
    assert_eq!(fake.request_count("getMe"), 2);

    let (status, body) = get(&agent, &format!("{base}/bot123456:WRONG/getMe"));
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    for path in [
        "/",
        "/getMe",
        "/botnotatoken/getMe",
        &format!("/bot{TOKEN}"),
        &format!("/bot{TOKEN}/"),
    ] {
        let (status, body) = get(&agent, &format!("{base}{path}"));
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error_code"], 404);
    }
    let (status, _) = get(&agent, &format!("{base}/bot{TOKEN}/noSuchMethod"));
    assert_eq!(status, 404);

    fake.revoke_token();
    let (status, body) = get(&agent, &format!("{base}/bot{TOKEN}/getMe"));
    assert_eq!(
        (status, body["description"].as_str()),
        (401, Some("Unauthorized"))
    );
}

#[test]
fn query_and_form_params() {
    let _w = Watchdog::new("query_and_form_params", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    fake.push_message(42, 42, "hi");
    let url = format!(
        "{}/bot{TOKEN}/sendMessage?chat_id=42&text=hello+there%21",
        fake.base_url()
    );
    let (status, body) = get(&agent, &url);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["text"], "hello there!");

    let url = format!("{}/bot{TOKEN}/sendMessage", fake.base_url());
    let mut response = agent
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .send("chat_id=42&text=caf%C3%A9&reply_parameters=%7B%22message_id%22%3A1%7D".as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["result"]["text"], "café");
    assert_eq!(body["result"]["reply_to_message"]["message_id"], 1);
    assert_eq!(fake.sent().len(), 2);
    // allowed_updates as a JSON-serialized query value.
    let url = format!(
        "{}/bot{TOKEN}/getUpdates?allowed_updates=%5B%22message%22%5D",
        fake.base_url()
    );
    let (status, body) = get(&agent, &url);
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["message"]["text"], "hi");
}

#[test]
fn keep_alive_reuses_one_connection() {
    let _w = Watchdog::new("keep_alive_reuses_one_connection", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    for _ in 0..5 {
        assert_eq!(call(&agent, &fake, "getMe", json!({})).0, 200);
    }
    assert_eq!(fake.connections(), 1);
}

#[test]
fn long_poll_answers_as_soon_as_a_message_is_pushed() {
    let _w = Watchdog::new("long_poll_answers_as_soon_as_a_message_is_pushed", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let started = Instant::now();
    let result = thread::scope(|s| {
        let poll = s.spawn(|| updates(&fake, &agent(), json!({"timeout": 20})));
        assert!(fake.wait_polling(1, T), "the poll never started waiting");
        let id = fake.push_message(7, 7, "wake up");
        (id, poll.join().unwrap())
    });
    let (id, got) = result;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["update_id"], id);
    assert_eq!(got[0]["message"]["text"], "wake up");
    assert_eq!(got[0]["message"]["chat"]["type"], "private");
}

#[test]
fn long_poll_times_out_with_an_empty_result() {
    let _w = Watchdog::new("long_poll_times_out_with_an_empty_result", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let started = Instant::now();
    let got = updates(&fake, &agent(), json!({"timeout": 1}));
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    // IgnoreTimeout answers at once.
    fake.fail_next("getupdates", Fault::IgnoreTimeout);
    let started = Instant::now();
    assert!(updates(&fake, &agent(), json!({"timeout": 20})).is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn offset_confirms_and_forgets() {
    let _w = Watchdog::new("offset_confirms_and_forgets", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    let ids: Vec<i64> = (0..3)
        .map(|i| fake.push_message(-5, 9, &format!("m{i}")))
        .collect();
    assert_eq!(updates(&fake, &agent, json!({})).len(), 3);
    assert_eq!(updates(&fake, &agent, json!({"limit": 2})).len(), 2);
    // Confirming the first leaves two; unconfirmed updates are sent again.
    let got = updates(&fake, &agent, json!({"offset": ids[0] + 1}));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["update_id"], ids[1]);
    assert_eq!(got[0]["message"]["chat"]["type"], "group");
    assert_eq!(fake.pending_updates().len(), 2);
    let got = updates(
        &fake,
        &agent,
        json!({"offset": ids[2] + 1, "limit": 1, "timeout": 0}),
    );
    assert!(got.is_empty());
    assert_eq!(fake.confirmed_offset(), ids[2] + 1);
    assert!(fake.pending_updates().is_empty());
    // A lower offset later does not bring anything back.
    assert!(updates(&fake, &agent, json!({"offset": ids[0]})).is_empty());
}

#[test]
fn allowed_updates_filters_kinds() {
    let _w = Watchdog::new("allowed_updates_filters_kinds", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    fake.push_update("callback_query", json!({"id": "cb1"}));
    fake.push_update("message_reaction", json!({}));
    let msg = fake.push_message_as(-1001, "channel", 0, "post", false);
    // The default leaves out the opt-in kinds (reactions) but keeps the rest.
    assert_eq!(fake.pending_updates().len(), 2);
    let got = updates(
        &fake,
        &agent,
        json!({"allowed_updates": ["message", "channel_post"]}),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["update_id"], msg);
    assert_eq!(got[0]["channel_post"]["sender_chat"]["id"], -1001);
    // The setting sticks until changed; later updates of other kinds are not kept.
    fake.push_update("callback_query", json!({"id": "cb2"}));
    assert_eq!(fake.pending_updates().len(), 1);
}

#[test]
fn second_poller_makes_the_older_one_answer_409() {
    let _w = Watchdog::new("second_poller_makes_the_older_one_answer_409", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    thread::scope(|s| {
        let older = s.spawn(|| call(&agent(), &fake, "getUpdates", json!({"timeout": 20})));
        assert!(fake.wait_polling(1, T));
        let newer = s.spawn(|| call(&agent(), &fake, "getUpdates", json!({"timeout": 1})));
        let (status, body) = older.join().unwrap();
        assert_eq!(status, 409);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 409, "description": CONFLICT_POLLER})
        );
        let (status, body) = newer.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["result"], json!([]));
    });
}

#[test]
fn webhook_conflicts_until_deleted() {
    let _w = Watchdog::new("webhook_conflicts_until_deleted", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    fake.set_webhook(true);
    let (status, body) = call(&agent, &fake, "getUpdates", json!({}));
    assert_eq!(
        (status, body["description"].as_str()),
        (409, Some(CONFLICT_WEBHOOK))
    );
    assert_eq!(
        call(&agent, &fake, "deleteWebhook", json!({})),
        (200, json!({"ok": true, "result": true}))
    );
    assert_eq!(call(&agent, &fake, "getUpdates", json!({})).0, 200);
    // setWebhook through the API, and a pending poll is told too.
    thread::scope(|s| {
        let poll = s.spawn(|| call(&agent, &fake, "getUpdates", json!({"timeout": 20})));
        assert!(fake.wait_polling(1, T));
        let other = self::agent();
        let (status, _) = call(
            &other,
            &fake,
            "setWebhook",
            json!({"url": "https://example.com/h"}),
        );
        assert_eq!(status, 200);
        assert_eq!(poll.join().unwrap().0, 409);
    });
    fake.push_message(1, 1, "x");
    call(
        &agent,
        &fake,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    );
    assert!(fake.pending_updates().is_empty());
}

#[test]
fn send_message_validation() {
    let _w = Watchdog::new("send_message_validation", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    let send = |body: Value| call(&agent, &fake, "sendMessage", body);
    let description = |(_, body): (u16, Value)| body["description"].as_str().unwrap_or("").to_owned();

    assert_eq!(
        description(send(json!({"chat_id": 5, "text": "x"}))),
        "Bad Request: chat not found"
    );
    fake.push_message(5, 5, "first");
    assert_eq!(
        description(send(json!({"chat_id": 5, "text": " \n"}))),
        "Bad Request: message text is empty"
    );
    assert_eq!(
        description(send(json!({"chat_id": 5}))),
        "Bad Request: message text is empty"
    );
    // 2049 emoji = 4098 UTF-16 units: too long although only 2049 chars.
    let (status, body) = send(json!({"chat_id": 5, "text": "😀".repeat(2049)}));
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: message is too long"))
    );
    let (status, body) = send(json!({"chat_id": "5", "text": "😀".repeat(2048)}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["message_id"], 2);
    assert_eq!(
        description(send(json!({"chat_id": 5, "text": "x", "parse_mode": "BBCode"}))),
        "Bad Request: unsupported parse_mode"
    );
    assert_eq!(
        description(send(
            json!({"chat_id": 5, "text": "x", "reply_parameters": {"message_id": 99}})
        )),
        "Bad Request: message to be replied not found"
    );
    let (status, body) = send(json!({"chat_id": 5, "text": "r", "parse_mode": "HTML",
                                     "reply_parameters": {"message_id": 99, "allow_sending_without_reply": true}}));
    assert_eq!(status, 200);
    assert_eq!(body["result"]["message_id"], 3);
    assert!(body["result"].get("reply_to_message").is_none());
    let (_, body) = send(json!({"chat_id": 5, "text": "old form", "reply_to_message_id": 1}));
    assert_eq!(body["result"]["reply_to_message"]["message_id"], 1);
    // Channels by @username.
    fake.add_chat(-1002, "channel", Some("news"));
    let (status, body) = send(json!({"chat_id": "@news", "text": "hi"}));
    assert_eq!(status, 200);
    assert_eq!(body["result"]["chat"]["id"], -1002);
    assert_eq!(fake.sent().len(), 4);
    assert_eq!(fake.request_count("sendMessage"), 10);
}

#[test]
fn scripted_faults() {
    let _w = Watchdog::new("scripted_faults", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let agent = agent();
    fake.push_message(-77, 1, "in group");

    fake.fail_next("sendMessage", Fault::RetryAfter(3));
    let (status, body) = call(&agent, &fake, "sendMessage", json!({"chat_id": -77, "text": "x"}));
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
               "parameters": {"retry_after": 3}})
    );

    fake.fail_next("sendmessage", Fault::Migrate(-1000000000077));
    let (status, body) = call(&agent, &fake, "sendMessage", json!({"chat_id": -77, "text": "x"}));
    assert_eq!((status, body["description"].as_str()), (400, Some(MIGRATED)));
    assert_eq!(body["parameters"]["migrate_to_chat_id"], -1000000000077i64);
    // The old chat stays migrated; the new one exists.
    let (status, _) = call(&agent, &fake, "sendMessage", json!({"chat_id": -77, "text": "x"}));
    assert_eq!(status, 400);
    let (status, body) = call(
        &agent,
        &fake,
        "sendMessage",
        json!({"chat_id": -1000000000077i64, "text": "x"}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["result"]["chat"]["type"], "supergroup");

    fake.fail_next("getMe", Fault::Status(500, "Internal Server Error".into()));
    assert_eq!(call(&agent, &fake, "getMe", json!({})).0, 500);
    assert_eq!(
        call(&agent, &fake, "getMe", json!({})).0,
        200,
        "a fault applies once"
    );

    fake.fail_next("getMe", Fault::Malformed);
    let (status, body) = call(&agent, &fake, "getMe", json!({}));
    assert_eq!(status, 200);
    assert!(body.as_str().is_some_and(|s| s.starts_with("<html>")));

    fake.fail_next("getMe", Fault::Drop);
    let url = format!("{}/bot{TOKEN}/getMe", fake.base_url());
    assert!(agent.get(&url).call().is_err());

    fake.fail_next("getMe", Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(call(&agent, &fake, "getMe", json!({})).0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

// ---- BotApi against the fake ----

fn api(fake: &FakeTelegram) -> BotApi {
    BotApi::new(&fake.base_url(), fake.token())
}

fn text_to(chat: i64, text: &str) -> SendMessage {
    SendMessage {
        chat_id: chat.to_string(),
        text: text.into(),
        parse_mode: None,
        message_thread_id: None,
        reply_to_message_id: None,
        reply_markup: None,
    }
}

fn assert_no_token(e: &ApiError) {
    let shown = format!("{e} {e:?} {}", e.to_error_body().message);
    assert!(
        !shown.contains(TOKEN) && !shown.contains("TEST-token"),
        "token leaked: {shown}"
    );
}

#[test]
fn bot_api_happy_path() {
    let _w = Watchdog::new("bot_api_happy_path", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let api = api(&fake);
    let me = api.get_me(T).unwrap();
    assert_eq!((me.id, me.username.as_deref()), (123456, Some("fake_bot")));
    api.delete_webhook(false, T).unwrap();

    let id = fake.push_message(-1001234567890, 77, "hello bot");
    let got = api
        .get_updates(None, 100, 5, &["message", "edited_message"], T)
        .unwrap();
    assert_eq!(got.len(), 1);
    let Normalized::Message {
        update_id,
        sender_id,
        params,
    } = normalize(&got[0])
    else {
        panic!("not a message: {:?}", got[0]);
    };
    assert_eq!((update_id, sender_id.as_str()), (id, "77"));
    assert_eq!(params["chatId"], "-1001234567890");
    assert_eq!(params["chatType"], "supergroup");
    assert_eq!(params["text"], "hello bot");

    let mut reply = text_to(-1001234567890, "hi <b>you</b>");
    reply.parse_mode = Some("HTML");
    reply.reply_to_message_id = params["messageId"].as_str().and_then(|s| s.parse().ok());
    let message = api.send_message(&reply, T).unwrap();
    assert_eq!(message["reply_to_message"]["message_id"], 1);
    assert_eq!(
        fake.sent()[0],
        json!({"chat_id": -1001234567890i64, "text": "hi <b>you</b>", "parse_mode": "HTML",
               "reply_parameters": {"message_id": 1, "allow_sending_without_reply": true}})
    );

    // Confirm on stop: offset, limit 1, timeout 0.
    assert!(api.get_updates(Some(id + 1), 1, 0, &[], T).unwrap().is_empty());
    assert_eq!(fake.confirmed_offset(), id + 1);
    // Too short an HTTP timeout is raised above the poll.
    let started = Instant::now();
    assert!(
        api.get_updates(None, 100, 1, &[], Duration::from_millis(100))
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn bot_api_classifies_telegram_errors() {
    let _w = Watchdog::new("bot_api_classifies_telegram_errors", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let api = api(&fake);
    fake.push_message(-50, 1, "x");
    let send = |text: &str| api.send_message(&text_to(-50, text), T).unwrap_err();

    fake.fail_next("sendMessage", Fault::RetryAfter(4));
    let e = send("a");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
    assert!(e.is_retryable_send());
    assert_eq!(e.to_error_body().retry_after_ms, Some(4000));

    fake.fail_next("sendMessage", Fault::Migrate(-1000000000050));
    assert!(matches!(
        send("b"),
        ApiError::Migrated {
            to_chat_id: -1000000000050,
            ..
        }
    ));
    api.send_message(&text_to(-1000000000050, "moved"), T).unwrap();

    let e = api.send_message(&text_to(999, "nobody"), T).unwrap_err();
    assert!(
        matches!(e, ApiError::BadRequest { ref description } if description == "Bad Request: chat not found")
    );
    assert_eq!(e.to_error_body().code, ErrorCode::NotFound);
    let e = api
        .send_message(&text_to(-1000000000050, &"x".repeat(4097)), T)
        .unwrap_err();
    assert_eq!(e.to_error_body().code, ErrorCode::InvalidRequest);

    fake.fail_next(
        "sendMessage",
        Fault::Status(403, "Forbidden: bot was blocked by the user".into()),
    );
    assert_eq!(send("c").to_error_body().code, ErrorCode::Forbidden);
    fake.fail_next("sendMessage", Fault::Status(502, "Bad Gateway".into()));
    let e = send("d");
    assert!(matches!(e, ApiError::Server { status: 502, .. }));
    assert!(!e.is_retryable_send());
    fake.fail_next("sendMessage", Fault::Malformed);
    assert!(matches!(send("e"), ApiError::Malformed(_)));
    fake.fail_next("sendMessage", Fault::Drop);
    let e = send("f");
    assert!(matches!(e, ApiError::Network(_)), "{e:?}");
    assert!(!e.is_retryable_send());

    fake.set_webhook(true);
    let e = api.get_updates(None, 100, 0, &[], T).unwrap_err();
    assert!(matches!(e, ApiError::Conflict { webhook: true, .. }));
    api.delete_webhook(false, T).unwrap();

    fake.revoke_token();
    let e = api.get_me(T).unwrap_err();
    assert!(matches!(e, ApiError::Unauthorized { status: 401, .. }));
    assert_eq!(e.to_error_body().code, ErrorCode::Unavailable);
    assert_no_token(&e);
    // Nothing was delivered by any failed send.
    assert_eq!(fake.sent().len(), 1);
}

#[test]
fn bot_api_poll_conflict_between_two_pollers() {
    let _w = Watchdog::new("bot_api_poll_conflict_between_two_pollers", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let api = api(&fake);
    thread::scope(|s| {
        let older = s.spawn(|| api.get_updates(None, 100, 20, &[], Duration::from_secs(25)));
        assert!(fake.wait_polling(1, T));
        let newer = api.get_updates(None, 100, 1, &[], T).unwrap();
        assert!(newer.is_empty());
        let e = older.join().unwrap().unwrap_err();
        assert!(
            matches!(e, ApiError::Conflict { webhook: false, ref description } if description == CONFLICT_POLLER)
        );
    });
}

#[test]
fn bot_api_timeout_mid_request_is_network_and_may_have_delivered() {
    let _w = Watchdog::new(
        "bot_api_timeout_mid_request_is_network_and_may_have_delivered",
        LIMIT,
    );
    let fake = FakeTelegram::start(TOKEN);
    let api = api(&fake);
    fake.push_message(3, 3, "x");
    fake.fail_next("sendMessage", Fault::Delay(Duration::from_millis(1500)));
    let started = Instant::now();
    let e = api
        .send_message(&text_to(3, "slow"), Duration::from_millis(500))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert!(matches!(e, ApiError::Network(_)), "{e:?}");
    assert!(!e.is_retryable_send());
    assert!(e.to_error_body().retryable);
    assert_no_token(&e);
    // Telegram went on and delivered it: exactly why Network must not be retried.
    assert!(fake.wait_requests("sendMessage", 1, T));
    let deadline = Instant::now() + T;
    while fake.sent().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.sent().len(), 1);
}

#[test]
fn bot_api_connection_refused_is_connect() {
    let _w = Watchdog::new("bot_api_connection_refused_is_connect", LIMIT);
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = BotApi::new(&format!("http://127.0.0.1:{port}"), TOKEN);
    let e = api.send_message(&text_to(1, "x"), T).unwrap_err();
    assert!(matches!(e, ApiError::Connect(_)), "{e:?}");
    assert!(e.is_retryable_send());
    assert_no_token(&e);
    let body = e.to_error_body();
    assert_eq!(body.code, ErrorCode::Unavailable);
    assert!(body.retryable);
    // A URL ureq cannot use never leaves the process either, and the token stays hidden.
    let api = BotApi::new("http://bad host", TOKEN);
    let e = api.get_me(T).unwrap_err();
    assert!(matches!(e, ApiError::Connect(_)), "{e:?}");
    assert_no_token(&e);
}

#[test]
fn bot_api_shutdown_aborts_a_long_poll() {
    let _w = Watchdog::new("bot_api_shutdown_aborts_a_long_poll", LIMIT);
    let fake = FakeTelegram::start(TOKEN);
    let api = api(&fake);
    let started = Instant::now();
    thread::scope(|s| {
        let poll = s.spawn(|| api.get_updates(None, 100, 20, &[], Duration::from_secs(25)));
        assert!(fake.wait_polling(1, T));
        api.shutdown();
        let e = poll.join().unwrap().unwrap_err();
        assert!(matches!(e, ApiError::Network(_)), "{e:?}");
    });
    assert!(started.elapsed() < Duration::from_secs(5));
}
