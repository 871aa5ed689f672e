//! Scenario 5, ignored bulk: a git project with a 50k-file target/ in .gitignore.

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::report::{Value, yes_no};
use crate::stats::percentile;
use crate::tools::Tool;
use crate::trees::{populate, tree_runs};
use crate::{Bench, RESTART_TIMEOUT};

/// Scenario 5: A git project whose 50k-file target/ is in .gitignore: watches, startup, and a
/// change under target/ that must not restart anything.
pub(crate) fn ignored_bulk(bench: &mut Bench) -> Result<()> {
    const S: &str = "5 ignored bulk";
    const WATCHES: &str = "inotify watches (settled)";
    const STARTUP: &str = "launch -> first server";
    const SETTLED: &str = "launch -> watches settled";
    const IGNORED: &str = "change in target/ restarts";
    const SOURCE: &str = "change in src/ restarts (control)";
    let runs = bench.runs(3, 1);
    println!(
        "\n== 5. ignored bulk: git project, 200 sources, 50k files in target/ (.gitignore), \
         {runs} launches per tool"
    );
    let area = bench.area("ignored")?;
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&area.project)
        .status()
        .context("cannot run git")?;
    ensure!(git.success(), "git init failed: {git}");
    area.write(".gitignore", "target/\n")?;
    populate(&area.project.join("src"), &[10], 20)?;
    let trees = bench.borrow_trees(5, &area.project.join("target/debug/deps"))?;
    let ignored_file = trees.leaves()[0].join("f000.rs");

    for tool in Tool::ALL {
        let metrics = [WATCHES, STARTUP, SETTLED, IGNORED, SOURCE];
        let measured = bench.attempt(S, &metrics, tool, |bench, exe| {
            tree_runs(bench, tool, exe, &area, runs, |session, starts| {
                let seen = starts.count();
                fs::write(&ignored_file, "// ignored\n")?;
                let ignored = session.restarts_within(starts, seen, Duration::from_secs(1))?;
                // The control: a source change does restart, so "no" above means ignored.
                let seen = starts.count();
                area.write("src/d00/f000.rs", "// edit\n")?;
                let source = session.restarts_within(starts, seen, RESTART_TIMEOUT)?;
                Ok((ignored, source))
            })
        });
        let Some((tree, (ignored, source))) = measured else {
            continue;
        };
        let median = percentile(&tree.startups, 0.5);
        let watches = tree.watches;
        let report = &mut bench.report;
        report.add(S, WATCHES, tool.name(), Value::Count(watches as u64));
        report.add(S, STARTUP, tool.name(), Value::Samples(tree.startups));
        report.add(S, SETTLED, tool.name(), Value::Millis(tree.settled));
        report.add(S, IGNORED, tool.name(), Value::Flag(ignored));
        report.add(S, SOURCE, tool.name(), Value::Flag(source));
        if tool == Tool::Reload {
            let startup = format!("{median:.0} ms (median)");
            report.target(S, "first start <= 0.1 s", startup, median <= 100.0);
            let verdict = format!("{} ({watches} watches)", yes_no(ignored));
            report.target(S, "target/ change restarts nothing", verdict, !ignored);
        }
    }
    Ok(())
}
