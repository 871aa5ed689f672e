// Statistics over durations and counts: the casts between integers and floats are the point.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

//! The dev-loop benchmark: `reload` against its peers, watchexec and nodemon, in the seven
//! situations a dev loop lives in, and reload's dev proxy on its own (scenario 8). `cargo bench --bench dev_loop` runs it all; `BENCH_QUICK=1`
//! cuts repetitions for a smoke run, and words after `--` pick scenarios by name
//! (`cargo bench --bench dev_loop -- burst idle`).
//!
//! Every tool gets the same job: watch a project for `.rs` changes with a 50 ms debounce, run a
//! build (a shell line; `true` when the scenario has none), then restart the server. reload runs
//! the build with `-b` and the server directly; watchexec (`-r -n`) and nodemon (`--exec`, which
//! it runs with `sh -c`) run `sh -c '<build> && exec <server>'`, so their server keeps the pid the
//! shell had. nodemon is given `--signal SIGTERM` (its default is SIGUSR2) so that every server
//! is stopped the same way. The restart scenario also measures the like-for-like case, where
//! every tool's server runs under `sh -c` (reload `-b true -- sh -c SERVER`).
//!
//! The server is mostly a stand-in: this very binary, called with `__bench_child`, appends
//! `pid start-time version` to a start log as its first act and then idles. Latencies end at the
//! server's own clock reading, so how often the bench polls adds nothing to them. The
//! restart-gap scenario runs `examples/hello_server` instead and measures from the outside, with
//! an HTTP client; the proxy scenario runs `__bench_http`, a plain HTTP server that binds `PORT`
//! itself and dies on SIGTERM, the way an unmodified server does.
//!
//! Trees live under `$TMPDIR/reload-bench-<pid>-<nanos>/<scenario>/`: `project/` is the watched
//! root and every tool's working directory; `scratch/` beside it (never watched) holds start
//! logs, build logs and each tool's output. Each scenario's directory is removed when it ends,
//! after any process still running in it (by its working directory) is SIGKILLed by pid. The
//! big trees are one stock of 100k files, made once and lent to scenarios by renaming (see
//! `Bench::borrow_trees`): making files is the slowest part of the bench on a busy disk.
//!
//! Results are printed as they come, then as one table, and written to
//! `target/bench/dev_loop.json`. A peer that is not installed is reported as skipped.
//!
//! The modules: `tools` (the peers, how each is told the job), `session` (a running tool, the
//! directories a scenario works in), `stand_in` (the stand-in server and its start log),
//! `trees` (big trees and launches on them), `scenario` (one file each), `procfs`, `http`,
//! `wait`, `stats` and `report`. The /proc readers and the HTTP client are shared with the
//! integration tests: they live in tests/support/ and are included here by path.

mod procfs;
// The tests' headless-browser harness, for the browser scenario; not all of it is used here.
#[allow(dead_code)]
#[path = "../../tests/support/browser.rs"]
mod browser;
// Required by the browser harness (which the browser scenario only launches once it has found
// chromium); the other tools are the tests'.
#[allow(dead_code)]
#[path = "../../tests/support/needs.rs"]
mod needs;
mod report;
mod scenario;
mod session;
mod stand_in;
mod stats;
mod tools;
mod trees;
mod wait;

#[path = "../../tests/support/http.rs"]
mod http;

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::procfs::load_average;
use crate::report::{Report, Value};
use crate::session::{Area, Loan, TempBase};
use crate::stand_in::{stand_in_http, stand_in_server};
use crate::tools::{Bins, Tool};
use crate::trees::populate;

/// The quiet window every tool is given.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(50);
/// Only changes to files with this extension count, for every tool (nodemon needs a list).
pub(crate) const EXT: &str = "rs";
/// The argument that turns this binary into the stand-in server.
pub(crate) const CHILD_ARG: &str = "__bench_child";
/// The argument that turns this binary into the stand-in HTTP server.
pub(crate) const HTTP_ARG: &str = "__bench_http";
/// How often waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(5);
/// Pause between measured edits, so that one restart is over before the next edit.
pub(crate) const SETTLE: Duration = Duration::from_millis(250);
/// How long a tool may take to start its first server on a small tree.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// ... and on the 100k-file tree, where a slow peer is reported as failed rather than waited on.
pub(crate) const LARGE_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a tool's initial scan may take before it counts as failed.
pub(crate) const SCAN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one edit may take to restart the server.
pub(crate) const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|arg| arg == CHILD_ARG) {
        return stand_in_server(&args[1..]);
    }
    if args.first().is_some_and(|arg| arg == HTTP_ARG) {
        return stand_in_http(&args[1..]);
    }
    // `cargo bench` passes `--bench`; plain words pick scenarios.
    let filters: Vec<String> = args
        .iter()
        .filter_map(|arg| arg.to_str())
        .filter(|arg| !arg.starts_with('-'))
        .map(str::to_owned)
        .collect();
    match run(&filters) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dev_loop: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

type Scenario = fn(&mut Bench) -> Result<()>;

fn run(filters: &[String]) -> Result<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let bins = Bins::prepare()?;
    let base = TempBase::create()?;
    let mut bench = Bench {
        quick,
        bins,
        base,
        report: Report::default(),
        stock_made: false,
    };
    println!(
        "dev_loop{}: debounce {} ms, {} CPUs, load average {}",
        if quick { " (BENCH_QUICK)" } else { "" },
        DEBOUNCE.as_millis(),
        thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_average()
    );
    for tool in Tool::ALL {
        let version = bench.bins.version(tool).unwrap_or("not installed: skipped");
        println!("  {:<10} {version}", tool.name());
    }

    let scenarios: [(&str, Scenario); 9] = [
        ("restart", scenario::restart_overhead),
        ("burst", scenario::burst),
        ("idle", scenario::idle),
        ("large-tree", scenario::large_tree),
        ("ignored-bulk", scenario::ignored_bulk),
        ("restart-gap", scenario::restart_gap),
        ("build-cancel", scenario::build_cancel),
        ("browser", scenario::browser),
        ("proxy", scenario::proxy),
    ];
    let began = Instant::now();
    for (name, scenario) in scenarios {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        if let Err(err) = scenario(&mut bench) {
            println!("  scenario {name} could not run: {err:#}");
            bench
                .report
                .record(name, "scenario", "all", Value::Failed(format!("{err:#}")));
        }
        println!("  ({:.1} s)", started.elapsed().as_secs_f64());
    }

    bench.report.print_table();
    let path = bench.write_json(began.elapsed())?;
    println!(
        "\nload average now {}; results written to {}",
        load_average(),
        path.display()
    );
    Ok(())
}

/// What every scenario works with: the programs, the bench's temporary directory, the report.
pub(crate) struct Bench {
    pub(crate) quick: bool,
    pub(crate) bins: Bins,
    base: TempBase,
    pub(crate) report: Report,
    /// Whether the stock tree (see [`Bench::borrow_trees`]) exists yet.
    stock_made: bool,
}

impl Bench {
    pub(crate) fn area(&self, name: &str) -> Result<Area> {
        let dir = self.base.0.join(name);
        let area = Area {
            project: dir.join("project"),
            scratch: dir.join("scratch"),
            dir,
        };
        fs::create_dir_all(&area.project)?;
        fs::create_dir_all(&area.scratch)?;
        Ok(area)
    }

    /// Move `count` of the stock's 10k-file trees into `dest`, as `d00`, `d01`, ...; they go
    /// back when the returned [`Loan`] is dropped. The stock (ten trees of 10 x 10 x 10
    /// directories holding 10 files each: 10k files in 1111 directories per tree) is made on
    /// first use. Creating files is by far the slowest part of the bench (0.1 to 0.9 ms each on
    /// this machine's ext4, depending on load) while a rename is instant, so the 20k, 50k and
    /// 100k-file trees of the idle, ignored-bulk and large-tree scenarios are the same files.
    pub(crate) fn borrow_trees(&mut self, count: usize, dest: &Path) -> Result<Loan> {
        const TREES: usize = 10;
        ensure!(count <= TREES, "the stock holds only {TREES} trees");
        let stock = self.base.0.join("stock");
        if !self.stock_made {
            let creating = Instant::now();
            populate(&stock, &[TREES, 10, 10, 10], 10)?;
            self.stock_made = true;
            println!(
                "  (created the stock of {}k files in {:.1} s)",
                TREES * 10,
                creating.elapsed().as_secs_f64()
            );
        }
        fs::create_dir_all(dest)?;
        let mut loan = Loan { moves: Vec::new() };
        for i in 0..count {
            let (home, away) = (
                stock.join(format!("d{i:02}")),
                dest.join(format!("d{i:02}")),
            );
            fs::rename(&home, &away)
                .with_context(|| format!("cannot move {} to {}", home.display(), away.display()))?;
            loan.moves.push((home, away));
        }
        Ok(loan)
    }

    /// Run `measure` with `tool`'s executable. A tool that is not installed is recorded as
    /// skipped, a measurement that fails as failed (with why), under each of `metrics`.
    pub(crate) fn attempt<T>(
        &mut self,
        scenario: &'static str,
        metrics: &[&str],
        tool: Tool,
        measure: impl FnOnce(&Bench, &Path) -> Result<T>,
    ) -> Option<T> {
        let Some(exe) = self.bins.tool(tool).map(Path::to_owned) else {
            println!("  {:<10} skipped (not installed)", tool.name());
            for metric in metrics {
                self.report
                    .record(scenario, metric, tool.name(), Value::Skipped);
            }
            return None;
        };
        match measure(self, &exe) {
            Ok(value) => Some(value),
            Err(err) => {
                let reason = format!("{err:#}");
                println!("  {:<10} failed: {reason}", tool.name());
                for metric in metrics {
                    let value = Value::Failed(reason.clone());
                    self.report.record(scenario, metric, tool.name(), value);
                }
                None
            }
        }
    }

    pub(crate) fn runs(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}
