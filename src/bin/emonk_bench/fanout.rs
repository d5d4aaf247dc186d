//! Fan-out: N operators subscribed to `channel.message`, K messages pushed through the fake
//! Bot API, every subscriber must receive every message. Deliveries per second from the
//! first push to the last delivery, and the gateway's CPU time (utime + stime) per delivery
//! over the same span (this includes ingesting the K messages: HTTP, spool, fsync).

use std::time::Duration;

use super::Ctx;
use super::pool::{self, Pool};
use super::report::{Goal, Report, Unit};
use super::telegram;

pub fn run(ctx: &Ctx, report: &mut Report) {
    for n in [1usize, 100, 1000] {
        // About 2,000,000 deliveries per run (20,000 in quick mode), at most 20,000
        // messages: long enough (about a second) for CPU time in clock ticks to mean something.
        let total = if ctx.quick { 20_000 } else { 2_000_000 };
        let k = (total / n).clamp(20, 20_000);
        let mut rate = Vec::new();
        let mut cpu = Vec::new();
        for run in 0..ctx.runs {
            eprintln!("  fan-out to {n}: run {}/{} ({k} messages)", run + 1, ctx.runs);
            let r = one_run(ctx, n, k);
            rate.push(r.clone().map(|r| r.0));
            cpu.push(r.map(|r| r.1));
        }
        let goal = (n == 100).then_some(Goal::AtLeast(150_000.0));
        report.add_median(format!("fan-out to {n}: deliveries/s"), &rate, Unit::PerSec, goal);
        report.add_median(
            format!("fan-out to {n}: CPU per delivery"),
            &cpu,
            Unit::Micros,
            None,
        );
    }
}

/// (deliveries/s, CPU µs per delivery)
fn one_run(ctx: &Ctx, n: usize, k: usize) -> Result<(f64, f64), String> {
    let (fake, daemon) = telegram::start(ctx, |c| {
        // Subscribers here read as fast as one bench thread can; a burst must not make the
        // gateway judge them slow consumers.
        c["gateway"]["clientBacklogBytes"] = 256u64.saturating_mul(1 << 20).into();
    })?;
    let clients = pool::join_many(daemon.port, n, true)?;
    let pool = Pool::start(clients);
    let expected = (n * k) as u64;
    pool.expect_total(expected);
    let cpu0 = daemon.cpu_seconds().ok_or("no /proc stat")?;
    let t0 = std::time::Instant::now();
    for i in 0..k {
        fake.push_message(100, 42, &format!("fan-out message {i}"));
    }
    let Some(t1) = pool.wait_total(Duration::from_secs(120)) else {
        return Err(format!("only {} of {expected} deliveries arrived", pool.total()));
    };
    let cpu1 = daemon.cpu_seconds().ok_or("no /proc stat")?;
    let counts = pool.counts();
    if let Some((i, c)) = counts.iter().enumerate().find(|(_, c)| **c != k as u64) {
        return Err(format!("subscriber {i} received {c} of {k} messages"));
    }
    if pool.closed() > 0 {
        return Err(format!("{} subscribers were disconnected", pool.closed()));
    }
    let secs = (t1 - t0).as_secs_f64();
    Ok((expected as f64 / secs, (cpu1 - cpu0) * 1e6 / expected as f64))
}
