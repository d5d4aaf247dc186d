//! `channels.typing` through the real binary: Telegram's indicator is repeated every 4 s
//! (it lapses after about 5) until its ttl or a message to that chat, Discord's every 8 s
//! (it lapses after about 10), Slack answers `shown:false` (bots have no indicator there);
//! bad params are refused with what to fix.

mod support;

use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_discord::FakeDiscord;
use support::fake_slack::FakeSlack;
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, call, start};
use support::{Watchdog, Ws};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn typing(ws: &mut Ws, id: &str, params: Value) -> Value {
    call(ws, id, "channels.typing", params)
}

fn actions_in(fake: &FakeTelegram, chat: i64) -> Vec<String> {
    fake.chat_actions()
        .into_iter()
        .filter(|(c, _, _)| *c == chat)
        .map(|(_, a, _)| a)
        .collect()
}

#[test]
fn telegram_keeps_the_indicator_up_until_its_ttl_or_a_message() {
    let _w = Watchdog::new("telegram typing", SECS(40));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    fake.add_chat(200, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    let r = typing(
        &mut op,
        "t1",
        json!({"channel": "telegram", "to": "100", "ttlMs": 60000}),
    );
    assert_eq!(r["result"], json!({"shown": true}), "{r}");
    let r = typing(
        &mut op,
        "t2",
        json!({"channel": "telegram", "to": "200", "ttlMs": 1000, "action": "record_voice"}),
    );
    assert_eq!(r["result"]["shown"], true, "{r}");
    assert_eq!(actions_in(&fake, 100), ["typing"]);
    assert_eq!(actions_in(&fake, 200), ["record_voice"]);

    thread::sleep(Duration::from_millis(4500));
    assert_eq!(actions_in(&fake, 100).len(), 2, "renewed before it lapsed");
    assert_eq!(actions_in(&fake, 200).len(), 1, "its 1 s ttl ended");

    // A message to the chat ends it.
    let r = call(
        &mut op,
        "s",
        "channels.send",
        json!({"channel": "telegram", "to": "100", "text": "done"}),
    );
    assert!(r["result"]["messageIds"].is_array(), "{r}");
    thread::sleep(Duration::from_millis(4500));
    assert_eq!(actions_in(&fake, 100).len(), 2, "no renewal after the message");
}

#[test]
fn bad_typing_requests_say_what_to_fix() {
    let _w = Watchdog::new("typing errors", SECS(30));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(100, "private", None);
    let (_home, gw) = start(&fake);
    let mut op = gw.operator();
    let code = |r: &Value| {
        r["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned()
    };
    for ttl in [0, 120_001] {
        let r = typing(
            &mut op,
            "ttl",
            json!({"channel": "telegram", "to": "100", "ttlMs": ttl}),
        );
        assert_eq!(code(&r), "INVALID_REQUEST");
        assert!(r["error"]["message"].as_str().unwrap().contains("ttlMs"), "{r}");
    }
    let r = typing(
        &mut op,
        "act",
        json!({"channel": "telegram", "to": "100", "action": "dance"}),
    );
    assert_eq!(code(&r), "INVALID_REQUEST");
    let r = typing(
        &mut op,
        "thr",
        json!({"channel": "telegram", "to": "100", "threadId": "x"}),
    );
    assert_eq!(code(&r), "INVALID_REQUEST");
    let r = typing(&mut op, "nochat", json!({"channel": "telegram", "to": "999"}));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("chat not found"),
        "{r}"
    );
    let r = typing(&mut op, "off", json!({"channel": "discord", "to": "1"}));
    assert!(r["error"].is_object(), "a channel that is not enabled: {r}");
    let mut ro = gw.client(None, "operator", "readonly");
    let r = typing(&mut ro, "ro", json!({"channel": "telegram", "to": "100"}));
    assert_eq!(code(&r), "FORBIDDEN");
    assert_eq!(
        fake.chat_actions().len(),
        0,
        "nothing was shown for a refused request"
    );
}

#[test]
fn discord_renews_every_8_s_and_slack_has_no_indicator() {
    let _w = Watchdog::new("discord and slack typing", SECS(40));
    let discord = FakeDiscord::start(support::discord::TOKEN);
    discord.add_channel("555");
    let (_dhome, _dgw, mut d) = support::discord::start(&discord);
    let r = typing(
        &mut d,
        "d1",
        json!({"channel": "discord", "to": "555", "ttlMs": 20000}),
    );
    assert_eq!(r["result"], json!({"shown": true}), "{r}");
    assert_eq!(discord.typing().len(), 1);
    let r = typing(
        &mut d,
        "d2",
        json!({"channel": "discord", "to": "not-a-snowflake"}),
    );
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    let r = typing(&mut d, "d3", json!({"channel": "discord", "to": "666"}));
    assert_eq!(r["error"]["code"], "NOT_FOUND", "an unknown channel: {r}");

    let slack = FakeSlack::start();
    let (_shome, sgw) = support::slack::start(&slack, json!({}), &[]);
    let mut s = support::slack::connected_agent(&sgw, &slack);
    let r = typing(&mut s, "s1", json!({"channel": "slack", "to": "C1"}));
    assert_eq!(r["result"], json!({"shown": false}), "{r}");

    thread::sleep(Duration::from_millis(8600));
    let triggers = discord.typing();
    assert_eq!(triggers.len(), 2, "renewed once in 8.6 s: {triggers:?}");
    assert!(triggers.iter().all(|(c, _)| c == "555"));
}
