//! The round-trip figures: emonkd against the in-process baseline (and Node.js `ws` when
//! available), interleaved workload by workload so drift on a shared machine hits all peers
//! alike. The ratio is the median of the per-run ratios of paired measurements.

use super::Ctx;
use super::baseline;
use super::daemon::{Daemon, base_config};
use super::node::NodePeer;
use super::report::{Goal, Report, Unit};
use super::rtt::{self, Rtt};

const WORKLOADS: [(&str, usize); 4] = [
    ("gateway.ping", 1),
    ("gateway.status", 1),
    ("gateway.ping", 64),
    ("gateway.status", 64),
];

type Runs = Vec<Result<Rtt, String>>;

pub fn run(ctx: &Ctx, report: &mut Report) {
    let base_port = baseline::start();
    let node = match NodePeer::start() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("  node peer skipped: {e}");
            None
        }
    };
    if node.is_none() {
        eprintln!("  node peer: not available, skipped");
    }
    let mut emonk: Vec<Runs> = vec![Vec::new(); WORKLOADS.len()];
    let mut base: Vec<Runs> = vec![Vec::new(); WORKLOADS.len()];
    let mut nodes: Vec<Runs> = vec![Vec::new(); WORKLOADS.len()];
    for run in 0..ctx.runs {
        eprintln!("  rtt run {}/{}", run + 1, ctx.runs);
        let daemon = match Daemon::start(&ctx.bin, &base_config()) {
            Ok(d) => d,
            Err(e) => {
                for w in &mut emonk {
                    w.push(Err(e.clone()));
                }
                continue;
            }
        };
        for (i, (method, clients)) in WORKLOADS.iter().enumerate() {
            let m = |port| rtt::measure(port, method, *clients, ctx.warmup(), ctx.window());
            // Alternate who goes first, so neither peer always gets the warmer machine.
            if run % 2 == 0 {
                emonk[i].push(m(daemon.port));
                base[i].push(m(base_port));
            } else {
                base[i].push(m(base_port));
                emonk[i].push(m(daemon.port));
            }
            if let Some(n) = &node {
                nodes[i].push(m(n.port));
            }
        }
    }
    for (i, (method, clients)) in WORKLOADS.iter().enumerate() {
        let tag = format!("{method} ×{clients}");
        let goal = if *method == "gateway.ping" { 1.3 } else { 2.0 };
        add_rtt(report, &format!("emonkd {tag}"), &emonk[i]);
        add_rtt(report, &format!("baseline {tag}"), &base[i]);
        let ratios: Vec<Result<f64, String>> = emonk[i]
            .iter()
            .zip(&base[i])
            .map(|(e, b)| match (e, b) {
                (Ok(e), Ok(b)) => Ok(e.p50_us / b.p50_us),
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            })
            .collect();
        report.add_median(
            format!("{tag} p50 emonkd/baseline"),
            &ratios,
            Unit::Ratio,
            Some(Goal::AtMost(goal)),
        );
        if node.is_some() {
            add_rtt(report, &format!("node ws {tag}"), &nodes[i]);
        }
    }
    if let Some(n) = &node {
        let rss = n.idle_rss_bytes().ok_or_else(|| "no VmRSS".to_owned());
        report.add("node ws idle RSS", rss.map(|b| b as f64), Unit::Bytes, None);
    }
}

fn add_rtt(report: &mut Report, who: &str, runs: &Runs) {
    let pick = |f: fn(&Rtt) -> f64| -> Vec<Result<f64, String>> {
        runs.iter()
            .map(|r| r.as_ref().map(f).map_err(Clone::clone))
            .collect()
    };
    report.add_median(format!("{who} p50"), &pick(|r| r.p50_us), Unit::Micros, None);
    report.add_median(format!("{who} p99"), &pick(|r| r.p99_us), Unit::Micros, None);
    report.add_median(format!("{who} req/s"), &pick(|r| r.rps), Unit::PerSec, None);
}
