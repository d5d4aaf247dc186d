//! A streamed reply: 2,000 appends of 5 characters over 10 s into one Telegram chat of the
//! fake Bot API, with the fake enforcing Telegram's per-chat flood control (at most 13 sends
//! and edits in any 10 s: about one a second with a short burst). Reported: the edits the
//! gateway made, the 429s it got, and the time from `close` to the final text on the fake
//! (an edit, or past Telegram's 4096-unit limit the post of the last part),
//! next to the baseline of one plain `editMessageText` round trip to the same fake in the
//! same run, and as a ratio of `streamEditIntervalMs` (1000, the default).

use std::time::{Duration, Instant};

use serde_json::json;

use super::Ctx;
use super::client;
use super::report::{Goal, Report, Unit};
use super::telegram::{BOT_TOKEN, start};

const INTERVAL_MS: f64 = 1000.0;

struct Run {
    edits: f64,
    posts: f64,
    flood_429s: f64,
    close_to_final_ms: f64,
    plain_edit_ms: f64,
}

pub fn run(ctx: &Ctx, report: &mut Report) {
    let (appends, over) = if ctx.quick {
        (200, Duration::from_secs(1))
    } else {
        (2_000, Duration::from_secs(10))
    };
    let mut runs = Vec::new();
    for run in 0..ctx.runs {
        eprintln!(
            "  stream run {}/{} ({appends} appends over {over:?})",
            run + 1,
            ctx.runs
        );
        runs.push(one_run(ctx, appends, over));
    }
    let pick = |f: fn(&Run) -> f64| -> Vec<Result<f64, String>> {
        runs.iter()
            .map(|r| r.as_ref().map(f).map_err(Clone::clone))
            .collect()
    };
    let edits_goal = over.as_secs_f64() * 1000.0 / INTERVAL_MS + 2.0;
    report.add_median(
        format!("stream: edits for {appends} appends"),
        &pick(|r| r.edits),
        Unit::Count,
        Some(Goal::AtMost(edits_goal)),
    );
    report.add_median(
        "stream: messages posted (4096 UTF-16 units each at most)",
        &pick(|r| r.posts),
        Unit::Count,
        None,
    );
    report.add_median(
        "stream: 429s under Telegram's per-chat limit",
        &pick(|r| r.flood_429s),
        Unit::Count,
        Some(Goal::AtMost(0.0)),
    );
    report.add_median(
        "plain editMessageText round trip",
        &pick(|r| r.plain_edit_ms),
        Unit::Millis,
        None,
    );
    report.add_median(
        "stream: close → final text on the fake",
        &pick(|r| r.close_to_final_ms),
        Unit::Millis,
        None,
    );
    report.add_median(
        "stream: close → final text / streamEditIntervalMs",
        &pick(|r| r.close_to_final_ms / INTERVAL_MS),
        Unit::Ratio,
        Some(Goal::AtMost(1.2)),
    );
}

fn one_run(ctx: &Ctx, appends: usize, over: Duration) -> Result<Run, String> {
    let (fake, daemon) = start(ctx, |_| {})?;
    fake.add_chat(100, "private", None);
    // The baseline goes to a chat of its own, so it does not count against the stream's.
    fake.add_chat(101, "private", None);
    fake.limit_per_chat(13, Duration::from_secs(10));
    let plain_edit_ms = plain_edit(&fake.base_url())?;
    let mut agent = client::join(daemon.port, "agent")?;
    let opened = client::call(
        &mut agent,
        "open",
        "channels.stream.open",
        json!({"channel": "telegram", "to": "100"}),
    )?;
    let id = opened["streamId"].as_str().ok_or("no streamId")?.to_owned();
    let started = Instant::now();
    let mut text = String::new();
    for i in 0..appends {
        let due = started + over.mul_f64(i as f64 / appends as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let piece = format!("{:04} ", i % 10_000);
        text.push_str(&piece);
        client::call(
            &mut agent,
            "a",
            "channels.stream.append",
            json!({"streamId": id, "text": piece}),
        )?;
    }
    let closing = Instant::now();
    client::call(
        &mut agent,
        "close",
        "channels.stream.close",
        json!({"streamId": id}),
    )?;
    let edits = fake.edits().iter().filter(|(chat, _, _)| *chat == 100).count();
    // The final text may land as an edit or, past a cut, as a new message.
    let last_change = fake.last_change(100).ok_or("the stream changed nothing")?;
    let close_to_final_ms = last_change.saturating_duration_since(closing).as_secs_f64() * 1000.0;
    let visible: Vec<String> = fake.visible(100).into_iter().map(|(_, t)| t).collect();
    if visible.join(" ").split_whitespace().ne(text.split_whitespace()) {
        return Err(format!("the chat does not read the streamed text: {visible:?}"));
    }
    Ok(Run {
        edits: edits as f64,
        posts: fake.visible(100).len() as f64,
        flood_429s: fake.flood_429s() as f64,
        close_to_final_ms,
        plain_edit_ms,
    })
}

/// One `editMessageText` straight to the fake, after a send to have something to edit: ms.
fn plain_edit(base: &str) -> Result<f64, String> {
    let call = |method: &str, body: serde_json::Value| {
        let text = ureq::post(&format!("{base}/bot{BOT_TOKEN}/{method}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("plain {method}: {e}"))?
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("plain {method}: {e}"))?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("plain {method}: {e}"))
    };
    let sent = call("sendMessage", json!({"chat_id": 101, "text": "baseline"}))?;
    let id = sent["result"]["message_id"].as_i64().ok_or("no message_id")?;
    let started = Instant::now();
    call(
        "editMessageText",
        json!({"chat_id": 101, "message_id": id, "text": "baseline edited"}),
    )?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
