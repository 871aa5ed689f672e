//! Scenario 1, restart overhead: one save, how long until the new server runs beyond the
//! debounce window, and where that time goes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::report::Value;
use crate::session::{Area, Session};
use crate::stats::{millis, millis_between, percentile};
use crate::tools::{Bins, Job, Tool};
use crate::wait::wait_for;
use crate::{Bench, DEBOUNCE, RESTART_TIMEOUT, SETTLE, STARTUP_TIMEOUT};

/// Scenario 1: Save one file; how long until the new server runs, beyond the debounce window.
pub(crate) fn restart_overhead(bench: &mut Bench) -> Result<()> {
    const S: &str = "1 restart";
    const LATENCY: &str = "save -> new server";
    const OVERHEAD: &str = "overhead: median - 50 ms debounce";
    const BASELINE: &str = "baseline: spawn -> stand-in logs its start";
    const NO_BUILD: &str = "reload without a build step (-b ''): overhead";
    const SHELL_LATENCY: &str = "like for like, server under sh -c: save -> new server";
    const SHELL_OVERHEAD: &str = "like for like, server under sh -c: overhead";
    let runs = bench.runs(20, 5);
    println!("\n== 1. restart overhead: save one file, {runs} runs, no-op build");
    let area = bench.area("restart")?;
    area.write("src/main.rs", "// v0\n")?;

    let mut overheads = BTreeMap::new();
    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[LATENCY, OVERHEAD], tool, |bench, exe| {
            measure_restarts(bench, tool, exe, &area, "true", false, runs)
        });
        if let Some(latencies) = measured {
            let overhead = percentile(&latencies, 0.5) - millis(DEBOUNCE);
            overheads.insert(tool, overhead);
            let report = &mut bench.report;
            report.add(S, LATENCY, tool.name(), Value::Samples(latencies));
            report.add(S, OVERHEAD, tool.name(), Value::Millis(overhead));
        }
    }

    // Above, reload runs the server itself while the peers run it from the shell line of the
    // build. Like for like, every tool's server is under `sh -c`: reload `-b true -- sh -c
    // SERVER`, watchexec `sh -c 'true && SERVER'`, nodemon `--exec 'true && SERVER'`.
    let mut shell_overheads = BTreeMap::new();
    for tool in Tool::ALL {
        let metrics = [SHELL_LATENCY, SHELL_OVERHEAD];
        let measured = bench.attempt(S, &metrics, tool, |bench, exe| {
            measure_restarts(bench, tool, exe, &area, "true", true, runs)
        });
        if let Some(latencies) = measured {
            let overhead = percentile(&latencies, 0.5) - millis(DEBOUNCE);
            shell_overheads.insert(tool, overhead);
            let report = &mut bench.report;
            report.add(S, SHELL_LATENCY, tool.name(), Value::Samples(latencies));
            report.add(S, SHELL_OVERHEAD, tool.name(), Value::Millis(overhead));
        }
    }

    // Where the overhead goes: the stand-in's own exec (every tool pays it), and reload's no-op
    // build step (`sh -c true`, run and reaped before the server is touched).
    let baseline = spawn_baseline(&bench.bins, &area, runs)?;
    let baseline_median = percentile(&baseline, 0.5);
    bench
        .report
        .add(S, BASELINE, "bench", Value::Samples(baseline));
    let no_build = bench.attempt(S, &[NO_BUILD], Tool::Reload, |bench, exe| {
        measure_restarts(bench, Tool::Reload, exe, &area, "", false, runs)
    });
    let no_build = no_build.map(|latencies| percentile(&latencies, 0.5) - millis(DEBOUNCE));
    if let Some(overhead) = no_build {
        let report = &mut bench.report;
        report.add(S, NO_BUILD, Tool::Reload.name(), Value::Millis(overhead));
    }

    if let Some(&reload) = overheads.get(&Tool::Reload) {
        let watchexec = overheads.get(&Tool::Watchexec).copied();
        let mut measured = match watchexec {
            Some(w) => format!("{reload:.1} ms (watchexec {w:.1} ms)"),
            None => format!("{reload:.1} ms (watchexec not measured)"),
        };
        measured.push_str(&format!("; stand-in exec {baseline_median:.1} ms"));
        if let Some(no_build) = no_build {
            measured.push_str(&format!(", without build step {no_build:.1} ms"));
        }
        let met = reload <= 3.0 && watchexec.is_none_or(|w| reload <= w);
        bench
            .report
            .target(S, "overhead <= 3 ms and not above watchexec", measured, met);
    }
    if let Some(&reload) = shell_overheads.get(&Tool::Reload) {
        let watchexec = shell_overheads.get(&Tool::Watchexec).copied();
        let measured = match watchexec {
            Some(w) => format!("{reload:.1} ms (watchexec {w:.1} ms)"),
            None => format!("{reload:.1} ms (watchexec not measured)"),
        };
        let met = watchexec.is_none_or(|w| reload <= w);
        let goal = "under sh -c: overhead not above watchexec";
        bench.report.target(S, goal, measured, met);
    }
    Ok(())
}

/// Launch `tool` with `build` and the stand-in (under `sh -c` with `through_shell`, see
/// [`Job`]), then save one file `runs` times: the latencies from each save to the new server's
/// start, in ms.
fn measure_restarts(
    bench: &Bench,
    tool: Tool,
    exe: &Path,
    area: &Area,
    build: &str,
    through_shell: bool,
    runs: usize,
) -> Result<Vec<f64>> {
    let name = format!(
        "{}-build-{}{}",
        tool.name(),
        if build.is_empty() { "none" } else { "noop" },
        if through_shell { "-sh" } else { "" }
    );
    let starts = area.start_log(&name);
    let job = Job::new(&area.project, bench.bins.stand_in(&starts, None))
        .build(build)
        .through_shell(through_shell);
    let mut session = Session::launch(tool, exe, &job, area, &name)?;
    session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
    let mut latencies = Vec::new();
    for run in 0..runs {
        thread::sleep(SETTLE);
        let seen = starts.count();
        let saved = SystemTime::now();
        area.write("src/main.rs", &format!("// edit {run}\n"))?;
        let start = session
            .wait_start(&starts, seen, RESTART_TIMEOUT)
            .with_context(|| format!("after edit {run}"))?;
        latencies.push(millis_between(saved, start.at));
    }
    Ok(latencies)
}

/// The stand-in's own start, with no tool in between: from the bench's spawn to its logged start.
fn spawn_baseline(bins: &Bins, area: &Area, runs: usize) -> Result<Vec<f64>> {
    let starts = area.start_log("baseline");
    let argv = bins.stand_in(&starts, None);
    let mut samples = Vec::new();
    for run in 0..runs {
        let spawned = SystemTime::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&area.project)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot spawn the stand-in")?;
        let start = wait_for(RESTART_TIMEOUT, || starts.read().into_iter().nth(run));
        let _ = child.kill();
        let _ = child.wait();
        let start = start.context("the stand-in never logged its start")?;
        samples.push(millis_between(spawned, start.at));
    }
    Ok(samples)
}
