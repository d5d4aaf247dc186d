//! Helpers for the Telegram tests (`tests/telegram*.rs`, `tests/sd_notify.rs`): a gateway
//! whose connector polls a [`FakeTelegram`], and reading its messages and status through the
//! WebSocket API.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_telegram::FakeTelegram;
use super::{Gateway, Home, Ws};

/// The bot token of the configs below; start the fake with it.
pub const TOKEN: &str = "123456:TEST-token";

/// The config of a gateway whose Telegram connector polls `fake` with 1 s long polls and
/// takes messages from everyone, with `patch` merged in (see [`config_at`]).
pub fn config(fake: &FakeTelegram, patch: Value) -> String {
    config_at(&fake.base_url(), patch)
}

/// Like [`config`], for a Bot API at `api_base_url`. `patch` is merged in: objects key by
/// key, anything else replaces what is there, so `json!({})` changes nothing and
/// `json!({"channels": {"telegram": {"pollTimeoutSecs": 25}}})` changes one setting.
pub fn config_at(api_base_url: &str, patch: Value) -> String {
    let mut config = json!({
        "channels": {"telegram": {
            "enabled": true,
            "botToken": TOKEN,
            "apiBaseUrl": api_base_url,
            "pollTimeoutSecs": 1,
            "allowFrom": ["*"],
            // Most tests post into groups without mentioning the bot; tests/mentions.rs
            // covers the default.
            "requireMention": false,
        }}
    });
    super::merge_json(&mut config, patch);
    config.to_string()
}

/// A gateway polling `fake` with the [`config`] as it is.
pub fn start(fake: &FakeTelegram) -> (Home, Gateway) {
    start_with(fake, json!({}))
}

/// A gateway polling `fake` with the [`config`] and `patch`.
pub fn start_with(fake: &FakeTelegram, patch: Value) -> (Home, Gateway) {
    let home = Home::new(&config(fake, patch));
    let gw = Gateway::start(&home);
    (home, gw)
}

/// An agent client of `gw`, returned once the connector is polling `fake`.
pub fn polling_agent(gw: &Gateway, fake: &FakeTelegram) -> Ws {
    let agent = gw.client(None, "agent", "operator");
    assert!(
        fake.wait_polling(1, Duration::from_secs(10)),
        "the connector polls"
    );
    agent
}

/// The next `channel.message` params, skipping everything else.
pub fn next_message(ws: &mut Ws, timeout: Duration) -> Value {
    super::next_event(ws, "channel.message", timeout)
}

/// A request that may take a while (sends wait for the rate limiter).
pub fn call(ws: &mut Ws, id: &str, method: &str, params: Value) -> Value {
    ws.send_json(&json!({"type": "request", "requestId": id, "method": method, "params": params}));
    ws.response(id, Duration::from_secs(20))
}

/// The telegram entry of `channels.status`.
pub fn telegram_status(ws: &mut Ws) -> Value {
    let r = ws.request("st", "channels.status", json!({}));
    r["result"]["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["channel"] == "telegram"))
        .cloned()
        .unwrap_or_else(|| panic!("no telegram in {r}"))
}

/// Poll `channels.status` until `ok` holds for the telegram entry; the entry.
pub fn wait_status(ws: &mut Ws, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    poll_status(ws, timeout, ok, || "condition never held".to_owned())
}

/// Poll `channels.status` until the telegram state is `state`; the entry.
pub fn wait_state(ws: &mut Ws, state: &str, timeout: Duration) -> Value {
    poll_status(
        ws,
        timeout,
        |s| s["state"] == state,
        || format!("telegram never reached state {state:?}"),
    )
}

fn poll_status(
    ws: &mut Ws,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
    never: impl Fn() -> String,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = telegram_status(ws);
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{}; last: {s}", never());
        thread::sleep(Duration::from_millis(50));
    }
}
