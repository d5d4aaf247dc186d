//! The Telegram path: updates/s from the fake Bot API through the durable spool (one fsync
//! per getUpdates batch) to an agent that acknowledges every 100 messages, and the latency
//! from the fake writing an update into a getUpdates response to the agent receiving it,
//! which leaves the long-poll wait out by construction.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Ctx;
use super::client::{self, Ws};
use super::daemon::{Daemon, base_config};
use super::fake_telegram::FakeTelegram;
use super::report::{Goal, Report, Unit};

pub const BOT_TOKEN: &str = "123456:BENCH-token";
const ACK_EVERY: usize = 100;

/// The bench config with the Telegram connector polling `fake` (25 s long polls).
pub fn config(fake: &FakeTelegram) -> Value {
    let mut c = base_config();
    c["channels"] = json!({"telegram": {
        "enabled": true, "botToken": BOT_TOKEN, "apiBaseUrl": fake.base_url(),
        "pollTimeoutSecs": 25, "allowFrom": ["*"],
    }});
    c
}

/// Start the fake and a gateway polling it; returns once a long poll is waiting.
pub fn start(ctx: &Ctx, extra: impl FnOnce(&mut Value)) -> Result<(FakeTelegram, Daemon), String> {
    let fake = FakeTelegram::start(BOT_TOKEN);
    let mut cfg = config(&fake);
    extra(&mut cfg);
    let daemon = Daemon::start(&ctx.bin, &cfg)?;
    if !fake.wait_polling(1, Duration::from_secs(10)) {
        return Err("the connector did not start a long poll".into());
    }
    Ok((fake, daemon))
}

struct PathRun {
    updates_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub fn run(ctx: &Ctx, report: &mut Report) {
    let k = if ctx.quick { 1_000 } else { 10_000 };
    let mut rate = Vec::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for run in 0..ctx.runs {
        eprintln!("  telegram run {}/{} ({k} updates)", run + 1, ctx.runs);
        let r = one_run(ctx, k);
        rate.push(r.as_ref().map(|r| r.updates_per_sec).map_err(Clone::clone));
        p50.push(r.as_ref().map(|r| r.p50_ms).map_err(Clone::clone));
        p99.push(r.as_ref().map(|r| r.p99_ms).map_err(Clone::clone));
    }
    report.add_median(
        "telegram → spool → agent updates/s",
        &rate,
        Unit::PerSec,
        Some(Goal::AtLeast(5_000.0)),
    );
    report.add_median("telegram handover → agent p50", &p50, Unit::Millis, None);
    report.add_median("telegram handover → agent p99", &p99, Unit::Millis, None);
}

fn one_run(ctx: &Ctx, k: usize) -> Result<PathRun, String> {
    let (fake, daemon) = start(ctx, |_| {})?;
    fake.record_handovers();
    let agent = client::join(daemon.port, "agent")?;
    let reader = thread::Builder::new()
        .name("bench-agent".into())
        .spawn(move || agent_loop(agent, k))
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(k);
    for i in 0..k {
        ids.push(fake.push_message(100, 42, &i.to_string()));
    }
    let received = reader.join().map_err(|_| "agent thread panicked")??;
    let handovers = fake.handovers();
    let mut lat = Vec::with_capacity(k);
    let mut first_handover: Option<Instant> = None;
    let mut last_receive: Option<Instant> = None;
    for (i, at) in received.iter().enumerate() {
        let at = at.ok_or_else(|| format!("message {i} never reached the agent"))?;
        let handed = *handovers
            .get(&ids[i])
            .ok_or_else(|| format!("update {} was never handed over", ids[i]))?;
        lat.push(at.saturating_duration_since(handed).as_secs_f64() * 1000.0);
        first_handover = Some(first_handover.map_or(handed, |f| f.min(handed)));
        last_receive = Some(last_receive.map_or(at, |l| l.max(at)));
    }
    drop(daemon);
    let (Some(first), Some(last)) = (first_handover, last_receive) else {
        return Err("nothing measured".into());
    };
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Ok(PathRun {
        updates_per_sec: k as f64 / (last - first).as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

/// Receive `k` messages (texts "0".."k-1"), acking every [`ACK_EVERY`]; the receive instant
/// of each. Fails on a duplicate, a gap after the deadline, or a refused ack.
fn agent_loop(mut ws: Ws, k: usize) -> Result<Vec<Option<Instant>>, String> {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut received: Vec<Option<Instant>> = vec![None; k];
    let mut count = 0;
    let mut acks = 0u64;
    while count < k {
        let v = client::next_json(&mut ws).map_err(|e| format!("agent after {count}/{k}: {e}"))?;
        let now = Instant::now();
        match v["type"].as_str() {
            Some("event") if v["event"] == "channel.message" => {
                let p = &v["params"];
                let i: usize = p["text"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .filter(|i| *i < k)
                    .ok_or_else(|| format!("unexpected message {p}"))?;
                if received[i].replace(now).is_some() {
                    return Err(format!("message {i} delivered twice"));
                }
                count += 1;
                if count % ACK_EVERY == 0 || count == k {
                    acks += 1;
                    let frame = json!({"type": "request", "requestId": format!("ack{acks}"),
                                       "method": "events.ack", "params": {"cursor": p["cursor"]}});
                    client::send(&mut ws, frame.to_string())?;
                }
            }
            Some("response") if v.get("error").is_some() => return Err(format!("ack refused: {v}")),
            _ => {}
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    Ok(received)
}
