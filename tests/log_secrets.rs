//! Secrets never reach the log, at any level: the gateway runs with `RUST_LOG=trace` and all
//! three connectors against their fakes (plus a gateway token its clients send), and stderr
//! must contain none of the tokens, while emonk's own trace lines are there.
//!
//! The HTTP client, the TLS library and the WebSocket library log request lines, headers and
//! frames at debug and trace; `src/logging.rs` caps them at info whatever `RUST_LOG` says.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_discord::FakeDiscord;
use support::fake_slack::{self, FakeSlack};
use support::fake_telegram::FakeTelegram;
use support::{Gateway, Home, Watchdog};

const S10: Duration = Duration::from_secs(10);
const GATEWAY_TOKEN: &str = "gw-trace-secret-0123456789";

/// The crates whose own debug and trace records must never show, however `RUST_LOG` asks.
const CAPPED: &[&str] = &["ureq", "ureq_proto", "rustls", "tungstenite"];

fn assert_no_secrets(rust_log: &str) {
    let telegram = FakeTelegram::start(support::telegram::TOKEN);
    let discord = FakeDiscord::start(support::discord::TOKEN);
    let slack = FakeSlack::start();
    let patch = json!({"gateway": {"auth": {"token": GATEWAY_TOKEN}}});
    let home = Home::new(&support::all_connectors_config(
        &telegram, &discord, &slack, patch,
    ));
    let mut gw = Gateway::start_with(&home, &["run", "--port", "0"], &[("RUST_LOG", rust_log)]);
    let mut agent = gw.client(Some(GATEWAY_TOKEN), "agent", "operator");
    assert!(telegram.wait_polling(1, S10), "telegram polls");
    assert!(discord.wait_live(S10), "discord session is live");
    slack.wait_sockets(1, S10);
    // Traffic both ways on every platform: inbound messages, then a send on each.
    telegram.push_message(100, 42, "in telegram");
    discord.push_message("555", Some("777"), "4242", "in discord");
    slack.push_message("C1", "U1", "in slack");
    for _ in 0..3 {
        support::telegram::next_message(&mut agent, S10);
    }
    support::send_on_all_three(&mut agent, "out");
    gw.stop_ok();

    let log = gw.log.text();
    for secret in [
        support::telegram::TOKEN,
        support::discord::TOKEN,
        fake_slack::APP_TOKEN,
        fake_slack::BOT_TOKEN,
        GATEWAY_TOKEN,
    ] {
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "RUST_LOG={rust_log}: {secret} in the log:\n{}",
            leaks.join("\n")
        );
    }
    for line in log.lines() {
        for level in ["DEBUG", "TRACE"] {
            for krate in CAPPED {
                let tag = format!("{level} {krate}");
                assert!(
                    !line.contains(&format!("{tag}]")) && !line.contains(&format!("{tag}::")),
                    "RUST_LOG={rust_log}: a {level} record of {krate} got through: {line}"
                );
            }
        }
    }
    // emonk's own trace lines are not capped.
    assert!(
        log.contains("TRACE emonk::channels::telegram") && log.contains("TRACE emonk::channels::slack"),
        "RUST_LOG={rust_log}: emonk's own trace lines are missing:\n{log}"
    );
}

#[test]
fn rust_log_trace_never_logs_a_token() {
    let _w = Watchdog::new("trace secrets", Duration::from_secs(60));
    assert_no_secrets("trace");
}

/// Naming a capped crate, or one of its modules, does not lift the cap either.
#[test]
fn naming_the_http_crates_does_not_lift_the_cap() {
    let _w = Watchdog::new("trace secrets by module", Duration::from_secs(60));
    assert_no_secrets(
        "trace,ureq=trace,ureq::run=trace,ureq_proto=trace,rustls=trace,tungstenite=trace,tungstenite::protocol=trace",
    );
}
