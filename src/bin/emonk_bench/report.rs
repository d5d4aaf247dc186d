//! The one table: figure, value (the median of the runs), goal, PASS/MISS.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Micros,
    Millis,
    PerSec,
    Bytes,
    Count,
    Ratio,
    /// Megabytes (10^6 bytes) per second.
    MegabytesPerSec,
}

#[derive(Clone, Copy, Debug)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

pub struct Row {
    pub figure: String,
    pub value: Result<f64, String>,
    pub unit: Unit,
    pub goal: Option<Goal>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(
        &mut self,
        figure: impl Into<String>,
        value: Result<f64, String>,
        unit: Unit,
        goal: Option<Goal>,
    ) {
        let row = Row {
            figure: figure.into(),
            value,
            unit,
            goal,
        };
        eprintln!("  {} = {}", row.figure, cell(&row));
        self.rows.push(row);
    }

    /// Median of `values`, or the error if no run succeeded.
    pub fn add_median(
        &mut self,
        figure: impl Into<String>,
        values: &[Result<f64, String>],
        unit: Unit,
        goal: Option<Goal>,
    ) {
        self.add(figure, median_of(values), unit, goal);
    }

    pub fn render(&self) -> String {
        let header = ["figure", "value (median)", "goal", ""];
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|r| {
                let verdict = match (&r.value, r.goal) {
                    (_, None) => String::new(),
                    (Ok(v), Some(g)) if met(*v, g) => "PASS".into(),
                    _ => "MISS".into(),
                };
                let goal = r.goal.map(|g| goal_text(g, r.unit)).unwrap_or_default();
                [r.figure.clone(), cell(r), goal, verdict]
            })
            .collect();
        let mut width = header.map(str::len);
        for c in &cells {
            for (w, s) in width.iter_mut().zip(c) {
                *w = (*w).max(s.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, c: [&str; 4]| {
            let _ = writeln!(
                out,
                "| {:<w0$} | {:>w1$} | {:<w2$} | {:<w3$} |",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3]
            );
        };
        line(&mut out, header);
        let _ = writeln!(
            out,
            "|-{}-|-{}:|-{}-|-{}-|",
            "-".repeat(width[0]),
            "-".repeat(width[1]),
            "-".repeat(width[2]),
            "-".repeat(width[3])
        );
        for c in &cells {
            line(&mut out, [&c[0], &c[1], &c[2], &c[3]]);
        }
        out
    }
}

fn met(v: f64, g: Goal) -> bool {
    match g {
        Goal::AtMost(limit) => v <= limit,
        Goal::AtLeast(limit) => v >= limit,
    }
}

fn cell(r: &Row) -> String {
    match &r.value {
        Ok(v) => fmt(*v, r.unit),
        Err(e) => format!("error: {e}"),
    }
}

pub fn fmt(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Micros => format!("{v:.1} µs"),
        Unit::Millis => format!("{v:.2} ms"),
        Unit::PerSec if v >= 10_000.0 => format!("{:.0} /s", v),
        Unit::PerSec => format!("{v:.1} /s"),
        Unit::Bytes if v >= 1_000_000.0 => format!("{:.2} MB", v / 1e6),
        Unit::Bytes => format!("{:.0} kB", v / 1e3),
        Unit::Count => format!("{v:.0}"),
        Unit::Ratio => format!("{v:.2}×"),
        Unit::MegabytesPerSec => format!("{v:.0} MB/s"),
    }
}

fn goal_text(g: Goal, unit: Unit) -> String {
    match g {
        Goal::AtMost(v) => format!("≤ {}", fmt(v, unit)),
        Goal::AtLeast(v) => format!("≥ {}", fmt(v, unit)),
    }
}

/// The median of the successful values; the first error if none succeeded.
pub fn median_of(values: &[Result<f64, String>]) -> Result<f64, String> {
    let mut ok: Vec<f64> = values.iter().filter_map(|v| v.as_ref().ok().copied()).collect();
    if ok.is_empty() {
        return Err(values
            .iter()
            .find_map(|v| v.as_ref().err().cloned())
            .unwrap_or_else(|| "not measured".into()));
    }
    if let Some(e) = values.iter().find_map(|v| v.as_ref().err()) {
        eprintln!("  (a run failed: {e})");
    }
    ok.sort_by(f64::total_cmp);
    let n = ok.len();
    Ok(if n % 2 == 1 {
        ok[n / 2]
    } else {
        (ok[n / 2 - 1] + ok[n / 2]) / 2.0
    })
}
