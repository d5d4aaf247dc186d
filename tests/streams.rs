//! `channels.stream.open/append/close` through the real binary against each platform's
//! fake. The fakes keep what a person in the chat reads, so every test checks the end state
//! a user sees: the messages, in order, are exactly the final text (nothing cut off, nothing
//! posted twice), edits stay within the pace and the platform's limits, and a stream ends
//! with its final text however it ends (close, the client leaving, the gateway stopping).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_telegram::{FakeTelegram, Fault};
use support::telegram::{call, start_with};
use support::{Watchdog, Ws, error_code};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

fn open(ws: &mut Ws, params: Value) -> String {
    let r = call(ws, "open", "channels.stream.open", params);
    r["result"]["streamId"]
        .as_str()
        .unwrap_or_else(|| panic!("a streamId in {r}"))
        .to_owned()
}

fn append(ws: &mut Ws, id: &str, text: &str) -> Value {
    ws.request(
        "append",
        "channels.stream.append",
        json!({"streamId": id, "text": text}),
    )
}

fn close(ws: &mut Ws, id: &str, text: Option<&str>) -> Value {
    let mut params = json!({"streamId": id});
    if let Some(text) = text {
        params["text"] = json!(text);
    }
    call(ws, "close", "channels.stream.close", params)
}

/// Non-whitespace content, whitespace runs made one space: what the messages read as
/// (platforms trim each message, and a cut drops the whitespace it falls in).
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn telegram(patch: Value) -> (FakeTelegram, support::Home, support::Gateway) {
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    fake.add_chat(100, "private", None);
    let (home, gw) = start_with(&fake, patch);
    (fake, home, gw)
}

fn interval(ms: u64) -> Value {
    json!({"channels": {"telegram": {"streamEditIntervalMs": ms}}})
}

fn texts(fake: &FakeTelegram) -> Vec<String> {
    fake.visible(100).into_iter().map(|(_, t)| t).collect()
}

/// Wait until the chat reads `want` (squeezed), or fail showing what it reads.
fn wait_visible(fake: &FakeTelegram, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while squeeze(&texts(fake).join(" ")) != squeeze(want) {
        assert!(
            Instant::now() < deadline,
            "the chat reads {:?}, not {want:?}",
            texts(fake)
        );
        std::thread::sleep(MS(20));
    }
}

#[test]
fn a_stream_grows_in_place_paced_and_ends_with_exactly_the_final_text() {
    let _w = Watchdog::new("stream grows", SECS(60));
    let (fake, _home, gw) = telegram(interval(300));
    // Telegram's flood control as documented (about one a second, short bursts): at most
    // 13 sends and edits into one chat in any 10 s.
    fake.limit_per_chat(13, SECS(10));
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    let started = Instant::now();
    let mut text = String::new();
    // 600 appends of 5 characters over about 3 s; each answers at once with the length.
    for i in 0..600 {
        let piece = format!("w{:03} ", i % 1000);
        text.push_str(&piece);
        let t = Instant::now();
        let r = append(&mut op, &id, &piece);
        assert_eq!(r["result"]["length"], text.chars().count(), "{r}");
        assert!(t.elapsed() < SECS(1), "an append waited for the platform");
        std::thread::sleep(MS(5));
    }
    let drafting = started.elapsed();
    let drafts = fake.edits().len();
    let r = close(&mut op, &id, None);
    let ids: Vec<String> =
        serde_json::from_value(r["result"]["messageIds"].clone()).unwrap_or_else(|_| panic!("{r}"));
    assert_eq!(r["result"]["channel"], "telegram");
    assert_eq!(r["result"]["to"], "100");
    wait_visible(&fake, &text, SECS(1));
    let visible = fake.visible(100);
    assert_eq!(
        ids,
        visible.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
        "messageIds are the chat's messages"
    );
    // One op per 300 ms at most (plus the first post and the final edit).
    let bound = (drafting.as_millis() / 300) as usize + 2;
    assert!(drafts <= bound, "{drafts} draft edits in {drafting:?}");
    assert!(drafts >= 2, "the message grew in place: {drafts} edits");
    assert_eq!(fake.flood_429s(), 0, "paced within Telegram's per-chat limit");
    assert_eq!(fake.sent().len(), 1, "one message: everything else was edits");
    // Typing was shown from the open, before the first draft.
    let typing = fake.chat_actions();
    assert!(!typing.is_empty(), "typing shown at open");
}

#[test]
fn past_telegrams_limit_the_stream_continues_in_a_new_message_without_repeating() {
    let _w = Watchdog::new("stream rollover", SECS(60));
    let (fake, _home, gw) = telegram(interval(200));
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    let mut text = String::new();
    // About 10,000 characters, some of them outside the BMP (2 UTF-16 units each).
    for i in 0..1000 {
        let piece = if i % 50 == 49 {
            format!("para {i} 🎉\n\n")
        } else {
            format!("word{i:04} ")
        };
        text.push_str(&piece);
        append(&mut op, &id, &piece);
        if i % 100 == 0 {
            std::thread::sleep(MS(250));
        }
    }
    let r = close(&mut op, &id, None);
    let ids = r["result"]["messageIds"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .len();
    let visible = texts(&fake);
    assert_eq!(ids, visible.len(), "{r}");
    assert!(visible.len() >= 3, "{} messages", visible.len());
    for m in &visible {
        assert!(m.encode_utf16().count() <= 4096, "a message over the limit");
    }
    assert_eq!(
        squeeze(&visible.join(" ")),
        squeeze(&text),
        "exactly the text, in order"
    );
}

#[test]
fn a_429_delays_drafts_but_the_final_text_arrives() {
    let _w = Watchdog::new("stream 429", SECS(60));
    let (fake, _home, gw) = telegram(interval(200));
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    append(&mut op, &id, "first ");
    assert!(fake.wait_requests("sendMessage", 1, SECS(5)));
    fake.fail_next("editMessageText", Fault::RetryAfter(1));
    fake.fail_next("editMessageText", Fault::RetryAfter(1));
    for i in 0..50 {
        append(&mut op, &id, &format!("more{i} "));
        std::thread::sleep(MS(20));
    }
    let r = close(&mut op, &id, None);
    assert!(r["result"].is_object(), "{r}");
    let want: String = std::iter::once("first ".to_owned())
        .chain((0..50).map(|i| format!("more{i} ")))
        .collect();
    wait_visible(&fake, &want, SECS(1));
}

#[test]
fn markup_drafts_go_plain_and_the_final_text_has_its_format() {
    let _w = Watchdog::new("stream html", SECS(60));
    let (fake, _home, gw) = telegram(interval(200));
    let mut op = gw.operator();
    let id = open(
        &mut op,
        json!({"channel": "telegram", "to": "100", "format": "html"}),
    );
    append(&mut op, &id, "<b>half");
    wait_visible(&fake, "<b>half", SECS(5));
    let (msg, _) = fake.visible(100)[0].clone();
    assert_eq!(
        fake.parse_mode(100, msg),
        "",
        "an unclosed tag goes as plain text"
    );
    append(&mut op, &id, " done</b> and <i>more");
    let r = close(&mut op, &id, Some("<b>half done</b> and <i>more</i>"));
    assert!(r["result"].is_object(), "{r}");
    assert_eq!(texts(&fake), ["<b>half done</b> and <i>more</i>"]);
    assert_eq!(fake.parse_mode(100, msg), "HTML", "the final text is formatted");
    let refused = fake
        .requests()
        .iter()
        .filter(|(m, p)| m == "editMessageText" && p["parse_mode"] == "HTML")
        .count();
    assert!(refused <= 1, "no draft was refused for its markup");
}

#[test]
fn a_replacement_text_on_close_is_what_the_chat_reads() {
    let _w = Watchdog::new("stream replace", SECS(60));
    let (fake, _home, gw) = telegram(interval(100));
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    let long = "draft ".repeat(1500); // 9,000 characters: three messages
    append(&mut op, &id, &long);
    let deadline = Instant::now() + SECS(10);
    while fake.visible(100).len() < 3 {
        assert!(Instant::now() < deadline, "the drafts posted {:?}", texts(&fake));
        std::thread::sleep(MS(20));
    }
    let r = close(&mut op, &id, Some("Actually, the short answer."));
    assert_eq!(r["result"]["messageIds"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(texts(&fake), ["Actually, the short answer."]);
}

#[test]
fn a_client_that_leaves_or_a_gateway_that_stops_leaves_the_final_text() {
    let _w = Watchdog::new("stream finalize", SECS(60));
    // A long interval: the last draft lags far behind the text.
    let (fake, _home, mut gw) = telegram(interval(20_000));
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    append(&mut op, &id, "the client ");
    assert!(fake.wait_requests("sendMessage", 1, SECS(5)));
    append(&mut op, &id, "left here.");
    drop(op);
    wait_visible(&fake, "the client left here.", SECS(5));

    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    append(&mut op, &id, "stopping ");
    assert!(fake.wait_requests("sendMessage", 2, SECS(5)));
    append(&mut op, &id, "now.");
    let t = Instant::now();
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(SECS(6)).is_some(), "the stop is bounded");
    assert!(t.elapsed() < SECS(5), "stopped in {:?}", t.elapsed());
    let visible = texts(&fake);
    assert_eq!(visible, ["the client left here.", "stopping now."]);
}

#[test]
fn stream_calls_with_bad_input_get_clear_errors() {
    let _w = Watchdog::new("stream errors", SECS(60));
    let (fake, _home, gw) = telegram(interval(100));
    let mut op = gw.operator();
    let r = append(&mut op, "nope", "x");
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown streamId"),
        "{r}"
    );
    let r = call(
        &mut op,
        "o",
        "channels.stream.open",
        json!({"channel": "discord", "to": "1"}),
    );
    assert_eq!(error_code(&r), "NOT_FOUND", "a channel that is not enabled: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("channels.discord.enabled")
    );
    let r = call(
        &mut op,
        "o",
        "channels.stream.open",
        json!({"channel": "telegram", "to": ""}),
    );
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    let r = call(
        &mut op,
        "o",
        "channels.stream.open",
        json!({"channel": "telegram", "to": "1", "colour": "red"}),
    );
    assert_eq!(error_code(&r), "INVALID_REQUEST", "an unknown param: {r}");

    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    let r = append(&mut op, &id, "");
    assert_eq!(r["result"]["length"], 0, "an empty append is a no-op: {r}");
    let r = close(&mut op, &id, Some(" "));
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    let r = close(&mut op, &id, None);
    assert_eq!(
        r["result"]["messageIds"],
        json!([]),
        "nothing appended, nothing posted: {r}"
    );
    let r = append(&mut op, &id, "late");
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("is closed"),
        "{r}"
    );
    let r = close(&mut op, &id, None);
    assert_eq!(error_code(&r), "INVALID_REQUEST", "closing twice: {r}");

    // Another connection cannot write into this one's stream.
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    let mut other = gw.operator();
    let r = append(&mut other, &id, "intrusion");
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");

    // A chat the platform refuses: the stream fails, and appends and close say so.
    let bad = open(&mut op, json!({"channel": "telegram", "to": "999"}));
    append(&mut op, &bad, "into the void");
    let deadline = Instant::now() + SECS(10);
    let r = loop {
        let r = append(&mut op, &bad, ".");
        if r["error"].is_object() || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(MS(50));
    };
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("chat not found"),
        "{r}"
    );
    let r = close(&mut op, &bad, None);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("chat not found"),
        "{r}"
    );

    // A readonly client may not stream.
    let mut ro = gw.client(None, "operator", "readonly");
    let r = call(
        &mut ro,
        "o",
        "channels.stream.open",
        json!({"channel": "telegram", "to": "100"}),
    );
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    assert!(fake.sent().len() <= 1);
}

#[test]
fn a_client_opening_a_thousand_streams_is_bounded() {
    let _w = Watchdog::new("stream bound", SECS(90));
    let (_fake, _home, gw) = telegram(interval(100));
    let mut op = gw.operator();
    let mut opened = Vec::new();
    let mut refused = 0;
    for i in 0..1000 {
        let r = op.request(
            &format!("o{i}"),
            "channels.stream.open",
            json!({"channel": "telegram", "to": "100"}),
        );
        match r["result"]["streamId"].as_str() {
            Some(id) => opened.push(id.to_owned()),
            None => {
                assert_eq!(error_code(&r), "RATE_LIMITED", "{r}");
                assert!(
                    r["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("channels.stream.close"),
                    "{r}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(opened.len(), 64, "the per-client limit");
    assert_eq!(refused, 936);
    // Closing one makes room again.
    let r = close(&mut op, &opened[0], None);
    assert!(r["result"].is_object(), "{r}");
    let r = op.request(
        "again",
        "channels.stream.open",
        json!({"channel": "telegram", "to": "100"}),
    );
    assert!(r["result"]["streamId"].is_string(), "{r}");
    // The limit is per client: another connection may still stream.
    let mut other = gw.operator();
    let r = other.request(
        "x",
        "channels.stream.open",
        json!({"channel": "telegram", "to": "100"}),
    );
    assert!(r["result"]["streamId"].is_string(), "{r}");
}

#[test]
fn discord_and_slack_streams_end_with_the_final_text() {
    let _w = Watchdog::new("stream discord slack", SECS(90));
    let fake = support::fake_discord::FakeDiscord::start(support::discord::TOKEN);
    fake.add_channel("555");
    let (_home, _gw, mut agent) =
        support::discord::start_agent_with(&fake, json!({"streamEditIntervalMs": 200}));
    let id = open(&mut agent, json!({"channel": "discord", "to": "555"}));
    let mut text = String::new();
    for i in 0..700 {
        let piece = format!("word{i:03} ");
        text.push_str(&piece);
        append(&mut agent, &id, &piece);
    }
    let r = close(&mut agent, &id, None);
    let visible: Vec<String> = fake.visible("555").into_iter().map(|(_, m)| m.content).collect();
    assert_eq!(
        r["result"]["messageIds"].as_array().map(Vec::len),
        Some(visible.len()),
        "{r}"
    );
    assert!(visible.len() >= 3 && visible.iter().all(|m| m.chars().count() <= 2000));
    assert_eq!(squeeze(&visible.join(" ")), squeeze(&text));
    assert!(!fake.typing().is_empty(), "typing shown at open");

    let slack = support::fake_slack::FakeSlack::start();
    let (_home, gw) = support::slack::start(
        &slack,
        json!({"channels": {"slack": {"streamEditIntervalMs": 200}}}),
        &[],
    );
    let mut agent = support::slack::connected_agent(&gw, &slack);
    let id = open(&mut agent, json!({"channel": "slack", "to": "C1"}));
    append(&mut agent, &id, "thinking");
    std::thread::sleep(MS(300));
    append(&mut agent, &id, " harder");
    let r = close(&mut agent, &id, Some("The answer is 42."));
    assert!(r["result"].is_object(), "{r}");
    let visible: Vec<String> = slack.visible("C1").into_iter().map(|(_, t, _, _)| t).collect();
    assert_eq!(visible, ["The answer is 42."]);
}

#[test]
fn a_stream_without_appends_is_finished_with_what_it_has() {
    let _w = Watchdog::new("stream idle", SECS(60));
    let fake = FakeTelegram::start(support::telegram::TOKEN);
    fake.add_chat(100, "private", None);
    let home = support::Home::new(&support::telegram::config(&fake, interval(20_000)));
    // The testing aid shortens the 60 s idle close.
    let gw = support::Gateway::start_with(
        &home,
        &["run", "--port", "0"],
        &[("EMONK_STREAM_IDLE_MS", "1500")],
    );
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    append(&mut op, &id, "the agent ");
    assert!(fake.wait_requests("sendMessage", 1, SECS(5)));
    append(&mut op, &id, "went quiet.");
    wait_visible(&fake, "the agent went quiet.", SECS(6));
    let r = append(&mut op, &id, " too late");
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    assert!(
        gw.log.wait_for("got no append", SECS(2)).is_some(),
        "the idle close is logged"
    );
}

#[test]
fn typing_shows_from_open_and_ends_with_a_stream_closed_empty() {
    let _w = Watchdog::new("stream typing", SECS(60));
    let (fake, _home, gw) = telegram(interval(100));
    let mut op = gw.operator();
    let id = open(&mut op, json!({"channel": "telegram", "to": "100"}));
    assert!(fake.wait_requests("sendChatAction", 1, SECS(5)), "typing at open");
    let r = close(&mut op, &id, None);
    assert_eq!(r["result"]["messageIds"], json!([]), "{r}");
    // Telegram's indicator is renewed every 4 s while kept alive; it is not any more.
    std::thread::sleep(MS(4_500));
    assert_eq!(
        fake.request_count("sendChatAction"),
        1,
        "typing stopped at the close"
    );
    assert!(fake.sent().is_empty());
}
