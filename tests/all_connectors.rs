//! Telegram, Discord and Slack at once, each against its fake: a message from each reaches
//! the agent, a reply reaches each platform, and killing one fake leaves the other two and
//! the WebSocket API working.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_discord::FakeDiscord;
use support::fake_slack::FakeSlack;
use support::fake_telegram::FakeTelegram;
use support::{Gateway, Home, Watchdog, Ws};

const S10: Duration = Duration::from_secs(10);

fn config(telegram: &FakeTelegram, discord: &FakeDiscord, slack: &FakeSlack) -> String {
    support::all_connectors_config(telegram, discord, slack, json!({}))
}

/// The texts of the next `n` messages, sorted (the platforms race each other).
fn texts(agent: &mut Ws, n: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..n)
        .map(|_| {
            support::telegram::next_message(agent, S10)["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

fn state_of(agent: &mut Ws, channel: &str) -> String {
    let r = agent.request("st", "channels.status", json!({}));
    let all = r["result"]["channels"].as_array().cloned().unwrap_or_default();
    let entry = all
        .iter()
        .find(|c| c["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} in {r}"));
    entry["state"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn three_connectors_run_at_once_and_one_failing_leaves_the_others_working() {
    let _w = Watchdog::new("all connectors", Duration::from_secs(60));
    let telegram = FakeTelegram::start(support::telegram::TOKEN);
    let discord = FakeDiscord::start(support::discord::TOKEN);
    let slack = FakeSlack::start();
    let home = Home::new(&config(&telegram, &discord, &slack));
    let mut gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    assert!(telegram.wait_polling(1, S10), "telegram polls");
    assert!(discord.wait_live(S10), "discord session is live");
    slack.wait_sockets(1, S10);

    telegram.push_message(100, 42, "from telegram");
    discord.push_message("555", Some("777"), "4242", "from discord");
    slack.push_message("C1", "U1", "from slack");
    assert_eq!(
        texts(&mut agent, 3),
        ["from discord", "from slack", "from telegram"]
    );

    support::send_on_all_three(&mut agent, "reply");
    assert_eq!(telegram.sent().len(), 1);
    assert!(discord.wait_sent(1, S10));
    assert_eq!(slack.sent().len(), 1);

    // Discord goes away: Telegram and Slack keep delivering, the API keeps answering.
    discord.shutdown();
    support::eventually(S10, || {
        (state_of(&mut agent, "discord") == "backoff").then_some(())
    })
    .expect("discord reports backoff");
    telegram.push_message(100, 42, "telegram still here");
    slack.push_message("C1", "U1", "slack still here");
    assert_eq!(texts(&mut agent, 2), ["slack still here", "telegram still here"]);
    let ping = agent.request("p", "gateway.ping", json!({}));
    assert!(ping["result"]["ts"].is_u64(), "{ping}");
    assert_eq!(state_of(&mut agent, "telegram"), "running");
    assert_eq!(state_of(&mut agent, "slack"), "running");

    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(6))
        .expect("stops within the bound");
    assert!(status.success(), "{status:?}");
}
