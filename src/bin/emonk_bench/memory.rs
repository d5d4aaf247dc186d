//! Memory: idle RSS and threads (no channels; Telegram polling the fake), and RSS with
//! 1,000 and 10,000 idle joined clients, with the kernel's TCP buffer memory beside it.

use std::thread;
use std::time::Duration;

use super::Ctx;
use super::client;
use super::daemon::{Daemon, RssParts, base_config, kernel_tcp_bytes};
use super::pool::{self, Pool};
use super::report::{Goal, Report, Unit};
use super::telegram;

/// Let allocations from startup settle before reading RSS.
const SETTLE: Duration = Duration::from_millis(500);

type Runs = Vec<Result<f64, String>>;

pub fn idle(ctx: &Ctx, report: &mut Report) {
    let (mut rss, mut threads, mut rss_tg, mut threads_tg) =
        (Runs::new(), Runs::new(), Runs::new(), Runs::new());
    let (mut binary, mut libraries, mut private) = (Runs::new(), Runs::new(), Runs::new());
    for run in 0..ctx.runs {
        eprintln!("  idle run {}/{}", run + 1, ctx.runs);
        match Daemon::start(&ctx.bin, &base_config()) {
            Ok(d) => {
                thread::sleep(SETTLE);
                rss.push(d.rss_bytes().map(|b| b as f64).ok_or_else(|| "no VmRSS".into()));
                threads.push(d.threads().map(|t| t as f64).ok_or_else(|| "no Threads".into()));
            }
            Err(e) => rss.push(Err(e)),
        }
        match telegram::start(ctx, |_| {}) {
            Ok((_fake, d)) => {
                thread::sleep(SETTLE);
                rss_tg.push(d.rss_bytes().map(|b| b as f64).ok_or_else(|| "no VmRSS".into()));
                let parts = d.rss_parts();
                let part = |of: fn(&RssParts) -> u64| {
                    parts
                        .as_ref()
                        .map(|p| of(p) as f64)
                        .ok_or_else(|| "no /proc/PID/smaps".into())
                };
                binary.push(part(|p| p.binary));
                libraries.push(part(|p| p.libraries));
                private.push(part(|p| p.private));
                threads_tg.push(d.threads().map(|t| t as f64).ok_or_else(|| "no Threads".into()));
            }
            Err(e) => rss_tg.push(Err(e)),
        }
    }
    report.add_median("idle RSS, no channels", &rss, Unit::Bytes, None);
    report.add_median("idle threads, no channels", &threads, Unit::Count, None);
    report.add_median(
        "idle RSS, telegram polling",
        &rss_tg,
        Unit::Bytes,
        Some(Goal::AtMost(4_000_000.0)),
    );
    report.add_median(
        "  of which emonkd's code and constants",
        &binary,
        Unit::Bytes,
        None,
    );
    report.add_median(
        "  of which shared libraries (libc, ld.so)",
        &libraries,
        Unit::Bytes,
        None,
    );
    report.add_median(
        "  of which private (heap, stacks, data)",
        &private,
        Unit::Bytes,
        None,
    );
    report.add_median("idle threads, telegram polling", &threads_tg, Unit::Count, None);
}

pub fn clients(ctx: &Ctx, report: &mut Report) {
    for (n, goal) in [(1_000usize, 12_000_000.0), (10_000, 100_000_000.0)] {
        let (mut rss, mut kernel) = (Runs::new(), Runs::new());
        for run in 0..ctx.runs {
            eprintln!("  {n} idle clients: run {}/{}", run + 1, ctx.runs);
            match one_run(ctx, n) {
                Ok((r, k)) => {
                    rss.push(Ok(r));
                    kernel.push(Ok(k));
                }
                Err(e) => rss.push(Err(e)),
            }
        }
        report.add_median(
            format!("RSS, {n} idle clients"),
            &rss,
            Unit::Bytes,
            Some(Goal::AtMost(goal)),
        );
        report.add_median(
            format!("kernel TCP memory, {n} clients (sockstat, system)"),
            &kernel,
            Unit::Bytes,
            None,
        );
    }
}

fn one_run(ctx: &Ctx, n: usize) -> Result<(f64, f64), String> {
    let daemon = Daemon::start(&ctx.bin, &base_config())?;
    let pool = Pool::start(pool::join_many(daemon.port, n, false)?);
    client::expect_joined(daemon.port, n)?;
    thread::sleep(SETTLE);
    let rss = daemon.rss_bytes().ok_or("no VmRSS")? as f64;
    let kernel = kernel_tcp_bytes().ok_or("no /proc/net/sockstat")? as f64;
    if pool.closed() > 0 {
        return Err(format!("{} clients were disconnected", pool.closed()));
    }
    drop(daemon);
    Ok((rss, kernel))
}
