//! `emonk-bench`: starts the real `emonkd` release binary and measures what the README's
//! Performance section reports, printing one table (figure, median of the runs, goal,
//! PASS/MISS).
//!
//! ```text
//! cargo run --release --bin emonk-bench -- all [--runs N] [--quick]
//! cargo run --release --bin emonk-bench -- rtt|fanout|idle|clients|startup|stop|telegram|media|stream|size
//! ```
//!
//! Goals are checked here, never by timed tests in CI. Each figure lives in its own module
//! under `src/bin/emonk_bench/`; the fake Telegram Bot API is the integration tests' own.

#[allow(dead_code)] // the fake Telegram shapes its answers with a part of it
#[path = "../../tests/support/answers.rs"]
mod answers;
#[path = "emonk_bench/baseline.rs"]
mod baseline;
#[path = "emonk_bench/client.rs"]
mod client;
#[path = "emonk_bench/daemon.rs"]
mod daemon;
#[allow(dead_code)] // the fake Telegram uses a part of the shared plumbing
#[path = "../../tests/support/fake_server.rs"]
mod fake_server;
#[allow(dead_code)] // the bench uses a small part of the fake
#[path = "../../tests/support/fake_telegram.rs"]
mod fake_telegram;
#[path = "emonk_bench/fanout.rs"]
mod fanout;
#[path = "emonk_bench/latency.rs"]
mod latency;
#[path = "emonk_bench/lifecycle.rs"]
mod lifecycle;
#[path = "emonk_bench/media.rs"]
mod media;
#[path = "emonk_bench/memory.rs"]
mod memory;
#[path = "../../tests/support/multipart.rs"]
mod multipart;
#[path = "emonk_bench/node.rs"]
mod node;
#[path = "emonk_bench/pool.rs"]
mod pool;
#[path = "emonk_bench/report.rs"]
mod report;
#[path = "emonk_bench/rtt.rs"]
mod rtt;
#[path = "emonk_bench/stream.rs"]
mod stream;
#[path = "emonk_bench/telegram.rs"]
mod telegram;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use report::Report;

const FIGURES: &[&str] = &[
    "rtt", "fanout", "idle", "clients", "startup", "stop", "telegram", "media", "stream", "size",
];

const USAGE: &str =
    "usage: emonk-bench all|rtt|fanout|idle|clients|startup|stop|telegram|media|stream|size... [--runs N] [--quick]
  Starts target/release/emonkd (built first if needed) and prints one table of figures.
  --runs N   runs per figure, the median is reported (default 5)
  --quick    short windows and small workloads: a smoke test of the harness
emonk-bench load PORT METHOD CLIENTS SECONDS
  Round trips against a gateway started by hand (token bench-token), for profiling.";

/// What every figure needs.
pub struct Ctx {
    pub bin: PathBuf,
    pub runs: usize,
    pub quick: bool,
}

impl Ctx {
    pub fn warmup(&self) -> Duration {
        Duration::from_millis(if self.quick { 100 } else { 300 })
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(if self.quick { 300 } else { 1_000 })
    }
}

fn main() -> ExitCode {
    let mut figures = Vec::new();
    let mut runs = 5;
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => match args.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0) {
                Some(n) => runs = n,
                None => return usage("--runs needs a positive number"),
            },
            "--quick" => quick = true,
            // A load generator for profiling a gateway started by hand (perf, strace):
            // `load PORT METHOD CLIENTS SECONDS`.
            "load" => return load(args.collect()),
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "all" => figures.extend(FIGURES.iter().map(|f| (*f).to_owned())),
            f if FIGURES.contains(&f) => figures.push(f.to_owned()),
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    if figures.is_empty() {
        return usage("name the figures to measure, or `all`");
    }
    if quick && runs == 5 {
        runs = 1;
    }
    let bin = match emonkd_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("emonk-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    daemon::raise_nofile();
    let ctx = Ctx { bin, runs, quick };
    let mut report = Report::default();
    for figure in &figures {
        eprintln!("measuring {figure} ({runs} runs)");
        match figure.as_str() {
            "rtt" => latency::run(&ctx, &mut report),
            "fanout" => fanout::run(&ctx, &mut report),
            "idle" => memory::idle(&ctx, &mut report),
            "clients" => memory::clients(&ctx, &mut report),
            "startup" => lifecycle::startup(&ctx, &mut report),
            "stop" => lifecycle::stop(&ctx, &mut report),
            "telegram" => telegram::run(&ctx, &mut report),
            "media" => media::run(&ctx, &mut report),
            "stream" => stream::run(&ctx, &mut report),
            "size" => lifecycle::size(&ctx, &mut report),
            _ => unreachable!("checked above"),
        }
    }
    println!("{}", machine());
    print!("{}", report.render());
    ExitCode::SUCCESS
}

fn load(args: Vec<String>) -> ExitCode {
    let [port, method, clients, secs] = args.as_slice() else {
        return usage("load PORT METHOD CLIENTS SECONDS");
    };
    let (Ok(port), Ok(clients), Ok(secs)) = (port.parse(), clients.parse(), secs.parse::<f64>()) else {
        return usage("load PORT METHOD CLIENTS SECONDS");
    };
    match rtt::measure(
        port,
        method,
        clients,
        Duration::ZERO,
        Duration::from_secs_f64(secs),
    ) {
        Ok(r) => {
            println!(
                "p50 {:.1} µs, p99 {:.1} µs, {:.0} req/s",
                r.p50_us, r.p99_us, r.rps
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("emonk-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("emonk-bench: {why}\n{USAGE}");
    ExitCode::from(2)
}

/// `emonkd` next to this binary. `cargo run --bin emonk-bench` builds only the bench, so
/// the daemon is (re)built here through cargo when this binary was started by cargo; a
/// stale daemon would measure old code.
fn emonkd_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let bin = exe.with_file_name("emonkd");
    let release = exe.parent().is_some_and(|d| d.ends_with("release"));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bin", "emonkd", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("building emonkd failed".into());
        }
    }
    if !bin.exists() {
        return Err(format!(
            "{} not found; build it with `cargo build --release --bin emonkd`",
            bin.display()
        ));
    }
    if !release {
        eprintln!("emonk-bench: warning: measuring a debug build; use --release");
    }
    Ok(bin)
}

/// One line naming the machine the figures come from.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_kib = daemon::meminfo_total_kib().unwrap_or(0);
    // fsync figures mean little on tmpfs, where the state dirs would then live.
    let tmp = std::env::temp_dir();
    let fs = daemon::filesystem_type(&tmp).unwrap_or_else(|| "unknown".into());
    format!(
        "machine: {cpus} vCPU {cpu}, {:.1} GiB RAM, Linux {}; state dirs in {} ({fs})",
        mem_kib as f64 / (1024.0 * 1024.0),
        kernel.trim(),
        tmp.display()
    )
}
