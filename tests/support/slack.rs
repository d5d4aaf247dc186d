//! Helpers for the Slack tests (`tests/slack.rs`): a gateway whose connector talks to a
//! [`FakeSlack`], and reading its messages and status through the WebSocket API.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_slack::{APP_TOKEN, BOT_TOKEN, FakeSlack};
use super::{Gateway, Home, Ws};

/// The config of a gateway whose Slack connector talks to `fake`, taking messages from
/// everyone, with `patch` merged in (objects key by key).
pub fn config(fake: &FakeSlack, patch: Value) -> String {
    let mut config = json!({
        "channels": {"slack": {
            "enabled": true,
            "appToken": APP_TOKEN,
            "botToken": BOT_TOKEN,
            "apiBaseUrl": fake.base_url(),
            "allowFrom": ["*"],
            // Most tests post into channels without mentioning the bot; tests/mentions.rs
            // covers the default.
            "requireMention": false,
        }}
    });
    super::merge_json(&mut config, patch);
    config.to_string()
}

/// A gateway talking to `fake`, with `patch` and extra environment (e.g. the ping testing
/// aid `EMONK_SLACK_PING_MS`).
pub fn start(fake: &FakeSlack, patch: Value, env: &[(&str, &str)]) -> (Home, Gateway) {
    let home = Home::new(&config(fake, patch));
    let gw = Gateway::start_with(&home, &["run", "--port", "0"], env);
    (home, gw)
}

/// An agent client of `gw`, returned once the connector's first socket is open.
pub fn connected_agent(gw: &Gateway, fake: &FakeSlack) -> Ws {
    let agent = gw.client(None, "agent", "operator");
    fake.wait_sockets(1, Duration::from_secs(10));
    agent
}

/// The next `channel.message` params, skipping everything else.
pub fn next_message(ws: &mut Ws, timeout: Duration) -> Value {
    super::telegram::next_message(ws, timeout)
}

/// Fail if a `channel.message` arrives within `d`.
pub fn no_message_for(ws: &mut Ws, d: Duration) {
    let deadline = Instant::now() + d;
    while let Ok(v) = ws.next(deadline.saturating_duration_since(Instant::now())) {
        assert_ne!(v["event"], "channel.message", "unexpected message: {v}");
    }
}

/// The slack entry of `channels.status`.
pub fn slack_status(ws: &mut Ws) -> Value {
    let r = ws.request("st", "channels.status", json!({}));
    r["result"]["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["channel"] == "slack"))
        .cloned()
        .unwrap_or_else(|| panic!("no slack in {r}"))
}

/// Poll `channels.status` until the slack state is `state`; the entry.
pub fn wait_state(ws: &mut Ws, state: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = slack_status(ws);
        if s["state"] == state {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "slack never reached {state:?}; last: {s}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
