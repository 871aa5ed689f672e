//! The results: each printed as it comes, then one table, reload's targets, the failures, and
//! target/bench/dev_loop.json.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value as Json, json};

use crate::procfs::load_average;
use crate::stats::{millis, percentile};
use crate::tools::Tool;
use crate::{Bench, DEBOUNCE};

/// Widest cell in the table; the JSON and the lines printed as results come keep full texts.
const CELL_WIDTH: usize = 48;

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width - 1).collect();
    format!("{kept}…")
}

pub(crate) fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Milliseconds, one per run: shown as median and p90.
    Samples(Vec<f64>),
    Millis(f64),
    /// Milliseconds too small for a tenth of one to show them (wrk's latencies): shown in µs.
    Micros(f64),
    Count(u64),
    Percent(f64),
    MiB(f64),
    Flag(bool),
    Text(String),
    /// The tool is not installed.
    Skipped,
    /// The measurement could not be made, and why.
    Failed(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Samples(samples) if samples.len() == 1 => write!(f, "{:.1} ms", samples[0]),
            Value::Samples(samples) => write!(
                f,
                "{:.1} ms (p90 {:.1})",
                percentile(samples, 0.5),
                percentile(samples, 0.9)
            ),
            Value::Millis(ms) => write!(f, "{ms:.1} ms"),
            Value::Micros(ms) => write!(f, "{:.0} µs", ms * 1e3),
            Value::Count(n) => write!(f, "{n}"),
            Value::Percent(p) => write!(f, "{p:.2} %"),
            Value::MiB(m) => write!(f, "{m:.1} MiB"),
            Value::Flag(flag) => f.write_str(&yes_no(*flag)),
            Value::Text(text) => f.write_str(text),
            Value::Skipped => f.write_str("skipped"),
            Value::Failed(_) => f.write_str("failed"),
        }
    }
}

impl Value {
    fn to_json(&self) -> Json {
        match self {
            Value::Samples(samples) => json!({
                "median_ms": percentile(samples, 0.5),
                "p90_ms": percentile(samples, 0.9),
                "min_ms": percentile(samples, 0.0),
                "max_ms": percentile(samples, 1.0),
                "runs": samples.len(),
                "samples_ms": samples,
            }),
            Value::Millis(ms) | Value::Micros(ms) => json!({ "ms": ms }),
            Value::Count(n) => json!({ "count": n }),
            Value::Percent(p) => json!({ "percent": p }),
            Value::MiB(m) => json!({ "mib": m }),
            Value::Flag(flag) => json!({ "yes": flag }),
            Value::Text(text) => json!({ "note": text }),
            Value::Skipped => json!({ "status": "skipped" }),
            Value::Failed(reason) => json!({ "status": "failed", "reason": reason }),
        }
    }
}

struct Record {
    pub(crate) scenario: &'static str,
    pub(crate) metric: String,
    pub(crate) tool: String,
    pub(crate) value: Value,
}

/// A target reload is held to, and how it fared.
struct Target {
    pub(crate) scenario: &'static str,
    goal: &'static str,
    pub(crate) measured: String,
    pub(crate) met: bool,
}

#[derive(Default)]
pub(crate) struct Report {
    records: Vec<Record>,
    targets: Vec<Target>,
}

impl Report {
    /// Record a result and print it.
    pub(crate) fn add(&mut self, scenario: &'static str, metric: &str, tool: &str, value: Value) {
        println!("  {tool:<10} {metric}: {value}");
        self.record(scenario, metric, tool, value);
    }

    /// Record a result without printing it.
    pub(crate) fn record(
        &mut self,
        scenario: &'static str,
        metric: &str,
        tool: &str,
        value: Value,
    ) {
        self.records.push(Record {
            scenario,
            metric: metric.to_owned(),
            tool: tool.to_owned(),
            value,
        });
    }

    pub(crate) fn target(
        &mut self,
        scenario: &'static str,
        goal: &'static str,
        measured: String,
        met: bool,
    ) {
        self.targets.push(Target {
            scenario,
            goal,
            measured,
            met,
        });
    }

    /// One row per scenario and metric, one column per tool; then reload's targets, then the
    /// reasons for any failure.
    pub(crate) fn print_table(&self) {
        let mut tools: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
        for record in &self.records {
            if !tools.contains(&record.tool.as_str()) {
                tools.push(&record.tool);
            }
        }
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        for record in &self.records {
            let label = format!("{} | {}", record.scenario, record.metric);
            let index = if let Some(index) = rows.iter().position(|(l, _)| *l == label) {
                index
            } else {
                rows.push((label, vec!["-".to_owned(); tools.len()]));
                rows.len() - 1
            };
            if let Some(column) = tools.iter().position(|t| *t == record.tool) {
                rows[index].1[column] = truncate(&record.value.to_string(), CELL_WIDTH);
            }
        }
        let first = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..tools.len())
            .map(|c| {
                rows.iter()
                    .map(|(_, cells)| cells[c].chars().count())
                    .chain([tools[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();

        println!("\nResults (latencies: median, p90 in brackets)\n");
        let mut header = format!("{:first$}", "scenario | metric");
        for (tool, width) in tools.iter().zip(&widths) {
            header.push_str(&format!("  {tool:<width$}"));
        }
        println!("{header}");
        println!("{}", "-".repeat(header.chars().count()));
        let mut scenario = "";
        for (label, cells) in &rows {
            let this = label.split(" | ").next().unwrap_or("");
            if !scenario.is_empty() && this != scenario {
                println!();
            }
            scenario = this;
            let mut line = format!("{label:first$}");
            for (cell, width) in cells.iter().zip(&widths) {
                line.push_str(&format!("  {cell:<width$}"));
            }
            println!("{}", line.trim_end());
        }

        if !self.targets.is_empty() {
            println!("\nreload's targets\n");
            for target in &self.targets {
                let verdict = if target.met { "met   " } else { "MISSED" };
                println!(
                    "  {verdict} {:<15} {:<45} {}",
                    target.scenario, target.goal, target.measured
                );
            }
        }
        let failures: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| matches!(r.value, Value::Failed(_)))
            .collect();
        if !failures.is_empty() {
            println!("\nFailures\n");
            let mut shown = HashSet::new();
            for record in failures {
                if let Value::Failed(reason) = &record.value
                    && shown.insert((record.scenario, &record.tool, reason))
                {
                    println!("  {} / {}: {reason}", record.scenario, record.tool);
                }
            }
        }
    }
}

impl Bench {
    /// Write the report as JSON to target/bench/dev_loop.json.
    pub(crate) fn write_json(&self, elapsed: Duration) -> Result<PathBuf> {
        let target = Path::new(env!("CARGO_BIN_EXE_reload"))
            .ancestors()
            .nth(2)
            .map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
                Path::to_owned,
            );
        let dir = target.join("bench");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tools: serde_json::Map<String, Json> = Tool::ALL
            .iter()
            .map(|&tool| {
                let version = self.bins.version(tool).map_or(Json::Null, |v| json!(v));
                (tool.name().to_owned(), version)
            })
            .collect();
        let results: Vec<Json> = self
            .report
            .records
            .iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario,
                    "metric": r.metric,
                    "tool": r.tool,
                    "value": r.value.to_json(),
                })
            })
            .collect();
        let targets: Vec<Json> = self
            .report
            .targets
            .iter()
            .map(|t| {
                json!({
                    "scenario": t.scenario,
                    "target": t.goal,
                    "measured": t.measured,
                    "met": t.met,
                })
            })
            .collect();
        let document = json!({
            "bench": "dev_loop",
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "quick": self.quick,
            "debounce_ms": millis(DEBOUNCE),
            "cpus": thread::available_parallelism().map_or(0, std::num::NonZero::get),
            "load_average_at_end": load_average(),
            "elapsed_s": elapsed.as_secs_f64(),
            "tools": tools,
            "results": results,
            "targets": targets,
        });
        let path = dir.join("dev_loop.json");
        fs::write(&path, serde_json::to_string_pretty(&document)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}
