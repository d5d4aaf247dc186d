//! Process figures: exec → `listening on`, SIGTERM → exit with 1,000 clients and a long poll
//! in flight, and the size of the stripped release binary.

use std::process::Command;
use std::time::{Duration, Instant};

use super::Ctx;
use super::client;
use super::daemon::{Daemon, TempDir, base_config};
use super::pool::{self, Pool};
use super::report::{Goal, Report, Unit};
use super::telegram;

pub fn startup(ctx: &Ctx, report: &mut Report) {
    // Starting is cheap: take more samples than the other figures.
    let samples = (ctx.runs * 4).max(10);
    let mut times = Vec::new();
    for _ in 0..samples {
        times.push(
            Daemon::start(&ctx.bin, &base_config()).map(|d| d.exec_to_listening.as_secs_f64() * 1000.0),
        );
    }
    report.add_median("exec → listening", &times, Unit::Millis, Some(Goal::AtMost(5.0)));
}

pub fn stop(ctx: &Ctx, report: &mut Report) {
    let mut times = Vec::new();
    for run in 0..ctx.runs {
        eprintln!("  stop run {}/{}", run + 1, ctx.runs);
        times.push(one_stop(ctx, 1_000));
    }
    report.add_median(
        "SIGTERM → exit, 1,000 clients + long poll",
        &times,
        Unit::Millis,
        Some(Goal::AtMost(100.0)),
    );
}

fn one_stop(ctx: &Ctx, n: usize) -> Result<f64, String> {
    let (fake, mut daemon) = telegram::start(ctx, |_| {})?;
    let pool = Pool::start(pool::join_many(daemon.port, n, false)?);
    client::expect_joined(daemon.port, n)?;
    if !fake.wait_polling(1, Duration::from_secs(5)) {
        return Err("no long poll in flight".into());
    }
    let t0 = Instant::now();
    daemon.sigterm();
    let status = daemon.wait().map_err(|e| e.to_string())?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        return Err(format!("emonkd exited with {status}"));
    }
    // The clients saw their close frames (or at least the end of the connection).
    let deadline = Instant::now() + Duration::from_secs(2);
    while pool.closed() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if pool.closed() < n {
        return Err(format!(
            "only {} of {n} clients saw the connection end",
            pool.closed()
        ));
    }
    Ok(ms)
}

/// Bytes of `target/release/emonkd`, stripped (strip = true in the release profile; a
/// stripped copy is measured too, in case the profile changes).
pub fn size(ctx: &Ctx, report: &mut Report) {
    let measured = (|| -> Result<f64, String> {
        let len = std::fs::metadata(&ctx.bin).map_err(|e| e.to_string())?.len();
        let dir = TempDir::new("emonk-bench-size");
        let copy = dir.path().join("emonkd");
        std::fs::copy(&ctx.bin, &copy).map_err(|e| e.to_string())?;
        let stripped = Command::new("strip")
            .arg(&copy)
            .status()
            .ok()
            .filter(|s| s.success())
            .and_then(|_| std::fs::metadata(&copy).ok())
            .map_or(len, |m| m.len());
        Ok(stripped.min(len) as f64)
    })();
    report.add(
        "stripped binary size",
        measured,
        Unit::Bytes,
        Some(Goal::AtMost(3_000_000.0)),
    );
}
