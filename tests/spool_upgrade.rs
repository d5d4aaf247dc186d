//! A spool written by the previous release (before `channel.action` gave the journal a
//! second kind of entry) opens in this one and delivers what it holds, in order, with its
//! cursors; new entries continue the sequence.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Gateway, Home, Watchdog};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/spool-0.1.0/journal.jsonl"
);

#[test]
fn a_spool_of_the_previous_release_opens_and_delivers() {
    let _w = Watchdog::new("spool upgrade", SECS(60));
    let home = Home::new("{}");
    let spool = home.state_dir().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::copy(FIXTURE, spool.join("journal.jsonl")).unwrap();
    let mut gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let first = support::telegram::next_message(&mut agent, SECS(10));
    let second = support::telegram::next_message(&mut agent, SECS(10));
    assert_eq!(
        (first["cursor"].as_str(), first["text"].as_str()),
        (Some("1"), Some("hello from 0.1"))
    );
    assert_eq!(
        (second["cursor"].as_str(), second["text"].as_str()),
        (Some("2"), Some("second message"))
    );
    assert_eq!(first["chatId"], "42");
    let r = agent.request("ack", "events.ack", json!({"cursor": "1"}));
    assert!(r["result"].is_object(), "{r}");
    drop(agent);
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(SECS(6)).is_some());

    // After the ack (state.json now written by this release) the rest is still there.
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let again = support::telegram::next_message(&mut agent, SECS(10));
    assert_eq!(again["cursor"], "2", "{again}");
    let status = gw.operator().request("g", "gateway.status", json!({}));
    assert_eq!(status["result"]["spool"]["last"], "2", "{status}");
}
