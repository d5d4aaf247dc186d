//! kill -9 in the middle of delivery and acks: after the restart every message the agent
//! had not acked comes again, with its cursor, in order; none whose ack was answered comes
//! again; nothing is lost and nothing is spooled twice. Killed at several points: early
//! (the connector still has updates to fetch), in the middle, and near the end.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, start};
use support::{Gateway, Watchdog, Ws};

const TOTAL: usize = 200;

/// What one run of the agent saw.
#[derive(Default)]
struct Run {
    /// text -> cursor, in the order received.
    got: Vec<(String, u64)>,
    /// The highest cursor whose ack was answered.
    confirmed: u64,
    /// The highest cursor an ack was sent for.
    sent: u64,
}

fn cursor(m: &Value) -> u64 {
    m["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{m}"))
}

/// Read messages, acking every fifth cursor without waiting for the answer, until `done`.
fn read_and_ack(agent: &mut Ws, run: &mut Run, done: impl Fn(&Run) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(run) {
        let v = agent
            .next(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("after {} messages: {e:?}", run.got.len()));
        if v["type"] == "event" && v["event"] == "channel.message" {
            let c = cursor(&v["params"]);
            run.got
                .push((v["params"]["text"].as_str().unwrap().to_owned(), c));
            if c.is_multiple_of(5) {
                agent.send_json(&json!({"type": "request", "requestId": format!("ack{c}"),
                    "method": "events.ack", "params": {"cursor": c.to_string()}}));
                run.sent = run.sent.max(c);
            }
        } else if v["type"] == "response" {
            let acked: u64 = v["result"]["acked"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            assert!(acked > 0, "ack failed: {v}");
            run.confirmed = run.confirmed.max(acked);
        }
    }
}

fn kill_during_delivery(kill_after: usize) {
    let fake = FakeTelegram::start(TOKEN);
    let (home, mut gw) = start(&fake);
    assert!(fake.wait_polling(1, Duration::from_secs(10)));
    let mut agent = gw.client(None, "agent", "operator");
    for i in 0..TOTAL {
        fake.push_message(100, 42, &format!("m{i:03}"));
    }
    let mut first = Run::default();
    read_and_ack(&mut agent, &mut first, |r| r.got.len() >= kill_after);
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5)).expect("killed");
    drop(agent);

    let gw2 = Gateway::start(&home);
    let mut agent = gw2.client(None, "agent", "operator");
    let mut second = Run::default();
    // Cursors are consecutive and every message is spooled once, so the last is TOTAL.
    read_and_ack(&mut agent, &mut second, |r| {
        r.got.last().is_some_and(|(_, c)| *c == TOTAL as u64)
    });
    let union: BTreeSet<&String> = first.got.iter().chain(&second.got).map(|(t, _)| t).collect();
    let what = format!("killed after {kill_after}");
    assert_eq!(union.len(), TOTAL, "{what}: lost messages");
    let cursors: Vec<u64> = second.got.iter().map(|(_, c)| *c).collect();
    let restart_from = cursors[0];
    assert!(
        restart_from > first.confirmed && restart_from <= first.sent + 1,
        "{what}: redelivery starts at {restart_from}, answered acks reached {}, sent {}",
        first.confirmed,
        first.sent
    );
    assert!(
        cursors.windows(2).all(|w| w[1] == w[0] + 1),
        "{what}: not in order: {cursors:?}"
    );
    let seen_first: BTreeMap<&String, u64> = first.got.iter().map(|(t, c)| (t, *c)).collect();
    let texts: BTreeSet<&String> = second.got.iter().map(|(t, _)| t).collect();
    assert_eq!(
        texts.len(),
        second.got.len(),
        "{what}: a duplicate in the second run"
    );
    for (text, c) in &second.got {
        if let Some(old) = seen_first.get(text) {
            assert_eq!(old, c, "{what}: {text} was spooled again under a new cursor");
        }
    }
    // Nothing more after the last.
    let until = Instant::now() + Duration::from_millis(1500);
    while let Ok(v) = agent.next(until.saturating_duration_since(Instant::now())) {
        assert_ne!(v["event"], "channel.message", "{what}: more than expected: {v}");
    }
}

#[test]
fn kill_9_during_delivery_and_acks_loses_nothing_and_redelivers_nothing_acked() {
    let _w = Watchdog::new("kill -9 mid-delivery", Duration::from_secs(150));
    for kill_after in [37, 120, 199] {
        kill_during_delivery(kill_after);
    }
}
