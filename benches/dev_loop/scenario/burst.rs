//! Scenario 2, burst: 3000 files rewritten at once must give one restart.

use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::report::Value;
use crate::session::Session;
use crate::stats::millis;
use crate::tools::{Job, Tool};
use crate::trees::populate;
use crate::wait::wait_quiet;
use crate::{Bench, SETTLE, STARTUP_TIMEOUT};

/// Scenario 2: Rewrite 3000 files as fast as possible; count the restarts that follow.
pub(crate) fn burst(bench: &mut Bench) -> Result<()> {
    const S: &str = "2 burst";
    const RESTARTS: &str = "restarts after 3000 writes";
    println!("\n== 2. burst: rewrite 3000 watched files at once, count restarts (2 s of quiet)");
    let area = bench.area("burst")?;
    let leaves = populate(&area.project.join("src"), &[30], 100)?;
    let files: Vec<PathBuf> = leaves
        .iter()
        .flat_map(|leaf| (0..100).map(move |i| leaf.join(format!("f{i:03}.rs"))))
        .collect();

    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[RESTARTS], tool, |bench, exe| {
            let starts = area.start_log(tool.name());
            let job = Job::new(&area.project, bench.bins.stand_in(&starts, None));
            let mut session = Session::launch(tool, exe, &job, &area, tool.name())?;
            session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
            thread::sleep(SETTLE * 2);
            let seen = starts.count();
            let writing = Instant::now();
            for (i, file) in files.iter().enumerate() {
                fs::write(file, format!("// burst {i}\n"))?;
            }
            let took = writing.elapsed();
            wait_quiet(Duration::from_secs(2), Duration::from_secs(60), || {
                starts.count()
            })?;
            session.check_alive()?;
            Ok((starts.count() - seen, took))
        });
        if let Some((restarts, took)) = measured {
            println!(
                "  {:<10} (the 3000 writes took {:.0} ms)",
                tool.name(),
                millis(took)
            );
            let value = Value::Count(restarts as u64);
            bench.report.add(S, RESTARTS, tool.name(), value);
            if tool == Tool::Reload {
                bench
                    .report
                    .target(S, "exactly 1 restart", restarts.to_string(), restarts == 1);
            }
        }
    }
    Ok(())
}
