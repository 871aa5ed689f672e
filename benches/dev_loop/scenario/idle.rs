//! Scenario 3, idle: CPU and memory on a 20k-file tree where nothing happens.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::procfs::{TICKS_PER_SECOND, cpu_ticks, rss_mib};
use crate::report::Value;
use crate::session::Session;
use crate::tools::{Job, Tool};
use crate::{Bench, SCAN_TIMEOUT, STARTUP_TIMEOUT};

/// Scenario 3: A 20k-file tree and nothing happening: CPU and memory.
pub(crate) fn idle(bench: &mut Bench) -> Result<()> {
    const S: &str = "3 idle";
    const CPU: &str = "CPU while idle";
    const RSS: &str = "RSS";
    const GUARD_RSS: &str = "RSS of `reload __guard`";
    let window = Duration::from_secs(if bench.quick { 2 } else { 10 });
    println!(
        "\n== 3. idle: 20k-file tree, {} s idle once the tool's watches settled",
        window.as_secs()
    );
    let area = bench.area("idle")?;
    // Dropped before `area`: the trees go back to the stock before the area is removed.
    let _trees = bench.borrow_trees(2, &area.project.join("src"))?;

    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[CPU, RSS], tool, |bench, exe| {
            let starts = area.start_log(tool.name());
            let job = Job::new(&area.project, bench.bins.stand_in(&starts, None));
            let mut session = Session::launch(tool, exe, &job, &area, tool.name())?;
            session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
            // Idle means after the initial scan, however long that takes.
            let (_, settled) = session.settle_watches(SCAN_TIMEOUT)?;
            println!(
                "  {:<10} (watches settled {settled:.0} ms after launch)",
                tool.name()
            );
            thread::sleep(Duration::from_millis(500));
            let mut pids = vec![session.pid()];
            pids.extend(session.guardian());
            let before = cpu_ticks(&pids)?;
            let clock = Instant::now();
            thread::sleep(window);
            let ticks = cpu_ticks(&pids)? - before;
            let seconds = clock.elapsed().as_secs_f64();
            session.check_alive()?;
            let cpu = ticks as f64 / TICKS_PER_SECOND / seconds * 100.0;
            let guardian = session.guardian().map(rss_mib).transpose()?;
            Ok((cpu, rss_mib(session.pid())?, guardian))
        });
        if let Some((cpu, rss, guardian)) = measured {
            bench.report.add(S, CPU, tool.name(), Value::Percent(cpu));
            bench.report.add(S, RSS, tool.name(), Value::MiB(rss));
            if let Some(guardian) = guardian {
                bench
                    .report
                    .add(S, GUARD_RSS, tool.name(), Value::MiB(guardian));
            }
            if tool == Tool::Reload {
                let guard = guardian.map_or_else(String::new, |g| format!(" + guardian {g:.1}"));
                bench
                    .report
                    .target(S, "0.0 % CPU", format!("{cpu:.2} %"), cpu == 0.0);
                bench.report.target(
                    S,
                    "RSS <= 10 MB",
                    format!("{rss:.1} MiB{guard}"),
                    rss <= 10.0,
                );
            }
        }
    }
    Ok(())
}
