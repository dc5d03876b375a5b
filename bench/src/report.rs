//! The results: one [`Outcome`] per measured phase, written as JSON and printed as a
//! table, with the machine they were measured on.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::rig::PhaseResult;
use crate::server::StoreKind;
use crate::stats::Histogram;

/// One measured phase of one scenario on one store.
pub struct Outcome {
    /// `fanout`, `idle`, `ingest` or `rest`.
    pub scenario: &'static str,
    /// The store the server ran on.
    pub store: StoreKind,
    /// Which phase (`1×200, flat out`, `GET /chats`, …).
    pub phase: String,
    /// What the printed table shows.
    pub cells: Cells,
    /// Every figure, for the JSON report.
    pub figures: Value,
    /// Correctness failures (lost or duplicated messages, errors, failed
    /// connections); timings are never a problem.
    pub problems: Vec<String>,
}

/// The printed table's columns of one outcome.
#[derive(Default)]
pub struct Cells {
    /// The headline rate (`312,000 deliveries/s`, …).
    pub throughput: String,
    /// Median latency.
    pub p50: String,
    /// 99th percentile.
    pub p99: String,
    /// 99.9th percentile.
    pub p999: String,
    /// `lost/duplicated`, or another correctness count.
    pub loss: String,
    /// Server CPU during the phase.
    pub cpu: String,
    /// Server memory.
    pub rss: String,
}

impl Cells {
    /// The latency columns of a histogram.
    pub fn with_latency(mut self, histogram: &Histogram) -> Self {
        self.p50 = ms(histogram.quantile_ms(0.5));
        self.p99 = ms(histogram.quantile_ms(0.99));
        self.p999 = ms(histogram.quantile_ms(0.999));
        self
    }
}

/// An outcome of a rig phase: deliveries when the members joined, acks otherwise.
pub fn phase_outcome(
    scenario: &'static str,
    store: StoreKind,
    phase: String,
    result: &PhaseResult,
    setup: Value,
    deliveries: bool,
) -> Outcome {
    let cells = Cells {
        throughput: if deliveries {
            format!(
                "{} deliveries/s ({} msg/s)",
                thousands(result.deliveries_per_s()),
                thousands(result.messages_per_s())
            )
        } else {
            format!("{} msg/s acked", thousands(result.messages_per_s()))
        },
        loss: format!("{}/{}", result.lost, result.duplicates),
        cpu: match result.redis_cpu_s {
            // A cluster: its servers together, then what Redis spent relaying.
            Some(redis) => format!(
                "{} over {} nodes + redis {redis:.1} s",
                cpu(result.server_cpu_s, result.span_s),
                result.nodes
            ),
            None => cpu(result.server_cpu_s, result.span_s),
        },
        rss: if result.nodes > 1 {
            format!("{} peak (sum)", mib(result.server_after.peak_rss_kib))
        } else {
            format!("{} peak", mib(result.server_after.peak_rss_kib))
        },
        ..Cells::default()
    }
    .with_latency(if deliveries {
        &result.latency
    } else {
        &result.ack_latency
    });
    let mut figures = result.to_json();
    if let (Some(figures), Value::Object(setup)) = (figures.as_object_mut(), setup) {
        figures.extend(setup);
    }
    Outcome {
        scenario,
        store,
        phase,
        cells,
        figures,
        problems: result.problems(deliveries),
    }
}

/// `12,345` for 12345.4.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    if !rounded.is_finite() || rounded < 0.0 {
        return format!("{value:.0}");
    }
    let digits = format!("{rounded:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.23 ms`, or `-` without a value.
pub fn ms(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 10.0 => format!("{v:.2} ms"),
        Some(v) => format!("{v:.1} ms"),
        None => "-".to_owned(),
    }
}

/// `12.3 s (154 %)`: CPU seconds and their share of one core over `wall` seconds.
pub fn cpu(seconds: f64, wall: f64) -> String {
    if wall > 0.0 {
        format!("{seconds:.1} s ({:.0} %)", seconds / wall * 100.0)
    } else {
        format!("{seconds:.1} s")
    }
}

/// `45.2 MiB` for a KiB count.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The machine the benchmark ran on, from `/proc`.
pub fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu_model = fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
        info.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
    });
    let memory_kib = fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        info.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_owned());
    json!({
        "cpus": cpus,
        "cpu_model": cpu_model,
        "memory_mib": memory_kib.map(|k| k / 1024),
        "kernel": kernel,
    })
}

/// Writes the JSON report to `path` (making its folder).
pub fn write_json(path: &Path, header: Value, outcomes: &[Outcome]) -> Result<()> {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            json!({
                "scenario": o.scenario,
                "store": o.store.to_string(),
                "phase": o.phase,
                "figures": o.figures,
                "problems": o.problems,
            })
        })
        .collect();
    let mut report = header;
    if let Some(object) = report.as_object_mut() {
        object.insert("results".to_owned(), Value::Array(results));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&report)?;
    fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// The outcomes as an aligned text table, problems listed under it.
pub fn table(outcomes: &[Outcome]) -> String {
    let header = [
        "scenario",
        "store",
        "phase",
        "throughput",
        "p50",
        "p99",
        "p99.9",
        "lost/dup",
        "server CPU",
        "server RSS",
    ];
    let rows: Vec<[String; 10]> = outcomes
        .iter()
        .map(|o| {
            [
                o.scenario.to_owned(),
                o.store.to_string(),
                o.phase.clone(),
                o.cells.throughput.clone(),
                o.cells.p50.clone(),
                o.cells.p99.clone(),
                o.cells.p999.clone(),
                o.cells.loss.clone(),
                o.cells.cpu.clone(),
                o.cells.rss.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &header.map(str::to_owned));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(&mut out, row);
    }
    for o in outcomes {
        for problem in &o.problems {
            let _ = writeln!(
                out,
                "PROBLEM: {} / {} / {}: {problem}",
                o.scenario, o.store, o.phase
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_for_people() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(ms(Some(1.234)), "1.23 ms");
        assert_eq!(ms(Some(12.34)), "12.3 ms");
        assert_eq!(ms(None), "-");
        assert_eq!(mib(2048), "2.0 MiB");
    }
}
