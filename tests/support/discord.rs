//! Helpers for `tests/discord.rs`: a gateway whose Discord connector talks to a
//! [`FakeDiscord`], and its status through the WebSocket API.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_discord::FakeDiscord;
use super::{Gateway, Home, Ws};

/// The bot token of the configs below.
pub const TOKEN: &str = "MTIzNDU2Nzg5.fake.discord-token";

/// The config: Discord enabled against `fake`, everyone allowed, `patch` merged into
/// `channels.discord`.
pub fn config(fake: &FakeDiscord, patch: Value) -> String {
    let mut discord = json!({
        "enabled": true,
        "token": TOKEN,
        "apiBaseUrl": fake.api_url(),
        "allowFrom": ["*"],
        // Most tests post into a guild without mentioning the bot; tests/mentions.rs
        // covers the default.
        "requireMention": false,
    });
    for (k, v) in patch.as_object().unwrap() {
        discord[k] = v.clone();
    }
    json!({"channels": {"discord": discord}}).to_string()
}

pub fn start_with(fake: &FakeDiscord, patch: Value) -> (Home, Gateway) {
    let home = Home::new(&config(fake, patch));
    let gw = Gateway::start(&home);
    (home, gw)
}

/// An agent of a gateway whose connector has a live session on `fake`.
pub fn start(fake: &FakeDiscord) -> (Home, Gateway, Ws) {
    start_agent_with(fake, json!({}))
}

/// Like [`start`], with `patch` merged into the config.
pub fn start_agent_with(fake: &FakeDiscord, patch: Value) -> (Home, Gateway, Ws) {
    let (home, gw) = start_with(fake, patch);
    let agent = gw.client(None, "agent", "operator");
    assert!(fake.wait_live(Duration::from_secs(10)), "no live gateway session");
    (home, gw, agent)
}

/// The discord entry of `channels.status`.
pub fn status(ws: &mut Ws) -> Value {
    let r = ws.request("st", "channels.status", json!({}));
    r["result"]["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["channel"] == "discord"))
        .cloned()
        .unwrap_or_else(|| panic!("no discord in {r}"))
}

/// Poll `channels.status` until `ok` holds for the discord entry; the entry.
pub fn wait_status(ws: &mut Ws, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = status(ws);
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "discord status never matched; last: {s}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Collect `channel.message` params for `window` (or until `max` arrived).
pub fn messages_for(ws: &mut Ws, window: Duration, max: usize) -> Vec<Value> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    while out.len() < max {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match ws.next(left) {
            Ok(v) if v["type"] == "event" && v["event"] == "channel.message" => out.push(v["params"].clone()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}
