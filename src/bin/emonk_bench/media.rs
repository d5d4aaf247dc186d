//! Media through the gateway: `channels.fetch` of a 20 MiB file from the fake Bot API into
//! the media cache, and `channels.send` of a 20 MiB document to it, each as MB/s next to
//! plain HTTP transfers of the same bytes with the same fake in the same run, and the
//! gateway's RSS growth while it moves the bytes (sampled every 2 ms): both directions
//! stream, so it stays flat.
//!
//! Baselines: a plain download into memory (what the loopback and the fake can do at all);
//! a plain download into a file on the same disk, fsynced (what keeping the file costs: the
//! gateway makes a fetched file durable before it answers, so that is the fetch's
//! yardstick); and a plain upload of the same form from memory (what the fake's parser
//! takes in, the upload's yardstick).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Ctx;
use super::client::{self, Ws};
use super::daemon::{Daemon, status_field};
use super::report::{Goal, Report, Unit};
use super::telegram::{BOT_TOKEN, start};

const MIB: usize = 1024 * 1024;

struct Run {
    baseline: f64,
    to_file: f64,
    plain_upload: f64,
    fetch: f64,
    fetch_rss: f64,
    upload: f64,
    upload_rss: f64,
}

pub fn run(ctx: &Ctx, report: &mut Report) {
    let size = if ctx.quick { 4 * MIB } else { 20 * MIB };
    let mut runs = Vec::new();
    for run in 0..ctx.runs {
        eprintln!("  media run {}/{} ({} MiB)", run + 1, ctx.runs, size / MIB);
        runs.push(one_run(ctx, size, run));
    }
    let pick = |f: fn(&Run) -> f64| -> Vec<Result<f64, String>> {
        runs.iter()
            .map(|r| r.as_ref().map(f).map_err(Clone::clone))
            .collect()
    };
    let speed = Unit::MegabytesPerSec;
    let flat = Some(Goal::AtMost(1_048_576.0));
    report.add_median(
        "plain HTTP download into memory",
        &pick(|r| r.baseline),
        speed,
        None,
    );
    report.add_median(
        "plain HTTP download into a file, fsynced",
        &pick(|r| r.to_file),
        speed,
        None,
    );
    report.add_median("channels.fetch 20 MiB", &pick(|r| r.fetch), speed, None);
    let ratio = pick(|r| r.fetch / r.to_file);
    report.add_median(
        "channels.fetch / plain download to a file",
        &ratio,
        Unit::Ratio,
        Some(Goal::AtLeast(0.8)),
    );
    report.add_median(
        "RSS growth during the fetch",
        &pick(|r| r.fetch_rss),
        Unit::Bytes,
        flat,
    );
    report.add_median(
        "plain HTTP upload of the same form",
        &pick(|r| r.plain_upload),
        speed,
        None,
    );
    report.add_median(
        "channels.send of a 20 MiB document",
        &pick(|r| r.upload),
        speed,
        None,
    );
    let ratio = pick(|r| r.upload / r.plain_upload);
    report.add_median(
        "channels.send / plain upload",
        &ratio,
        Unit::Ratio,
        Some(Goal::AtLeast(0.8)),
    );
    report.add_median(
        "RSS growth during the upload",
        &pick(|r| r.upload_rss),
        Unit::Bytes,
        flat,
    );
}

fn one_run(ctx: &Ctx, size: usize, run: usize) -> Result<Run, String> {
    let (fake, daemon) = start(ctx, |_| {})?;
    fake.add_chat(100, "private", None);
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file_id = format!("bench-{run}");
    fake.add_file(&file_id, "bench.bin", bytes.clone());
    let mut agent = client::join(daemon.port, "agent")?;

    let baseline = plain_download(&fake.base_url(), size, None)?;
    let to_file = plain_download(
        &fake.base_url(),
        size,
        Some(&daemon.state_dir().join("plain.bin")),
    )?;
    let plain_upload = plain_upload(&fake.base_url(), &bytes)?;
    fake.push_update(
        "message",
        json!({"message_id": 1, "date": 1_700_000_000, "chat": {"id": 100, "type": "private"},
               "from": {"id": 42, "is_bot": false, "first_name": "B"},
               "document": {"file_id": file_id, "file_unique_id": file_id, "file_name": "bench.bin",
                            "file_size": size}}),
    );
    let attachment = next_attachment(&mut agent)?;
    let params = json!({"channel": "telegram", "attachment": attachment});
    let (fetch_secs, fetch_rss) = measured(&daemon, || call(&mut agent, "fetch", "channels.fetch", &params))?;

    let outbox = daemon.state_dir().join("outbox");
    let path = outbox.join(format!("bench-{run}.bin"));
    std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let params = json!({"channel": "telegram", "to": "100", "text": "bench",
                        "attachments": [{"path": path, "kind": "document"}]});
    let (upload_secs, upload_rss) = measured(&daemon, || call(&mut agent, "send", "channels.send", &params))?;
    let uploaded = fake.uploads();
    let sent = uploaded.last().ok_or("the fake got no upload")?;
    if sent.files[0].size != size {
        return Err(format!("the fake got {} bytes of {size}", sent.files[0].size));
    }
    let mb = size as f64 / 1e6;
    Ok(Run {
        baseline,
        to_file,
        plain_upload,
        fetch: mb / fetch_secs,
        fetch_rss,
        upload: mb / upload_secs,
        upload_rss,
    })
}

/// MB/s of a GET of the same file straight from the fake, into nothing or into `file`
/// (fsynced).
fn plain_download(base: &str, size: usize, file: Option<&std::path::Path>) -> Result<f64, String> {
    let url = format!("{base}/file/bot{BOT_TOKEN}/documents/bench.bin");
    let started = Instant::now();
    let response = ureq::get(&url)
        .call()
        .map_err(|e| format!("plain download: {e}"))?;
    let mut body = response.into_body().into_reader();
    let n = match file {
        None => io::copy(&mut body, &mut io::sink()),
        Some(path) => std::fs::File::create(path).and_then(|mut f| {
            let n = io::copy(&mut body, &mut f)?;
            f.sync_all()?;
            Ok(n)
        }),
    }
    .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(path) = file {
        let _ = std::fs::remove_file(path);
    }
    if n as usize != size {
        return Err(format!("plain download got {n} of {size} bytes"));
    }
    Ok(size as f64 / 1e6 / secs)
}

/// MB/s of a sendDocument of the same bytes from memory, as one multipart POST.
fn plain_upload(base: &str, bytes: &[u8]) -> Result<f64, String> {
    let mut form = emonk::channels::media::multipart::Multipart::new();
    form.text("chat_id", "100").bytes(
        "document",
        "plain.bin",
        "application/octet-stream",
        bytes.to_vec(),
    );
    let content_type = form.content_type();
    let mut body = Vec::with_capacity(bytes.len() + 1024);
    io::copy(&mut form.into_reader(), &mut body).map_err(|e| e.to_string())?;
    let url = format!("{base}/bot{BOT_TOKEN}/sendDocument");
    let started = Instant::now();
    ureq::post(&url)
        .header("Content-Type", content_type)
        .send(&body[..])
        .map_err(|e| format!("plain upload: {e}"))?;
    Ok(bytes.len() as f64 / 1e6 / started.elapsed().as_secs_f64())
}

/// Run `f`, timing it and sampling the daemon's RSS meanwhile: (seconds, peak growth).
fn measured(daemon: &Daemon, f: impl FnOnce() -> Result<(), String>) -> Result<(f64, f64), String> {
    let before = daemon.rss_bytes().ok_or("no VmRSS")?;
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let pid = daemon.pid;
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_field(pid, "VmRSS:").map(|kib| kib * 1024) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(2));
                }
            })
            .map_err(|e| e.to_string())?
    };
    let started = Instant::now();
    let result = f();
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    result?;
    Ok((secs, peak.load(Ordering::Relaxed).saturating_sub(before) as f64))
}

fn next_attachment(ws: &mut Ws) -> Result<String, String> {
    loop {
        let v = client::next_json(ws)?;
        if v["event"] == "channel.message" {
            return v["params"]["attachments"][0]["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no attachment in {v}"));
        }
    }
}

/// A request answered with a result (events in between are skipped).
fn call(ws: &mut Ws, id: &str, method: &str, params: &serde_json::Value) -> Result<(), String> {
    let frame = json!({"type": "request", "requestId": id, "method": method, "params": params});
    client::send(ws, frame.to_string())?;
    loop {
        let v = client::next_json(ws)?;
        if v["type"] == "response" && v["requestId"] == id {
            return match v.get("error") {
                Some(e) if !e.is_null() => Err(format!("{method}: {e}")),
                _ => Ok(()),
            };
        }
    }
}
