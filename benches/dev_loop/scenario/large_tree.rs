//! Scenario 4, large tree: 100k files in 10k directories.

use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::Bench;
use crate::report::{Value, yes_no};
use crate::stats::percentile;
use crate::tools::Tool;
use crate::trees::tree_runs;

/// Scenario 4: 100k files in 10k directories: startup time, memory, and a change at the bottom.
pub(crate) fn large_tree(bench: &mut Bench) -> Result<()> {
    const S: &str = "4 large tree";
    const STARTUP: &str = "launch -> first server";
    const SETTLED: &str = "launch -> watches settled";
    const WATCHES: &str = "inotify watches";
    const RSS: &str = "RSS (watches settled)";
    const GUARD_RSS: &str = "RSS of `reload __guard`";
    const DEEP: &str = "change in deepest dir seen";
    let runs = bench.runs(3, 1);
    println!("\n== 4. large tree: 100k files in 10k directories, {runs} launches per tool");
    let area = bench.area("large")?;
    let trees = bench.borrow_trees(10, &area.project)?;
    let leaves = trees.leaves();
    let deepest = leaves.last().context("no leaves")?.join("f009.rs");

    for tool in Tool::ALL {
        let metrics = [STARTUP, SETTLED, WATCHES, RSS, DEEP];
        let measured = bench.attempt(S, &metrics, tool, |bench, exe| {
            tree_runs(bench, tool, exe, &area, runs, |session, starts| {
                let seen = starts.count();
                fs::write(&deepest, "// deep\n")?;
                session.restarts_within(starts, seen, Duration::from_secs(5))
            })
        });
        let Some((tree, seen)) = measured else {
            continue;
        };
        let median = percentile(&tree.startups, 0.5);
        let report = &mut bench.report;
        report.add(S, STARTUP, tool.name(), Value::Samples(tree.startups));
        report.add(S, SETTLED, tool.name(), Value::Millis(tree.settled));
        report.add(S, WATCHES, tool.name(), Value::Count(tree.watches as u64));
        report.add(S, RSS, tool.name(), Value::MiB(tree.rss));
        if let Some(guardian) = tree.guardian_rss {
            report.add(S, GUARD_RSS, tool.name(), Value::MiB(guardian));
        }
        report.add(S, DEEP, tool.name(), Value::Flag(seen));
        if tool == Tool::Reload {
            let startup = format!("{median:.0} ms (median)");
            report.target(S, "first start <= 1.0 s", startup, median <= 1000.0);
            let rss = tree.rss;
            report.target(S, "RSS <= 30 MB", format!("{rss:.1} MiB"), rss <= 30.0);
            report.target(S, "deepest change seen", yes_no(seen), seen);
        }
    }
    Ok(())
}
