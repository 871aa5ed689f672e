//! Scenario 7, build cancellation: edits during a slow build.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};

use crate::report::Value;
use crate::session::Session;
use crate::stats::millis_between;
use crate::tools::{Job, Tool, shell_quote};
use crate::wait::{wait_for, wait_quiet};
use crate::{Bench, SETTLE, STARTUP_TIMEOUT};

/// Scenario 7: Six edits 300 ms apart while a 1 s build runs: how many builds complete, and how soon the
/// last edit is served.
pub(crate) fn build_cancel(bench: &mut Bench) -> Result<()> {
    const S: &str = "7 build cancel";
    const EDITS: u32 = 6;
    const COMPLETED: &str = "builds completed";
    const SERVERS: &str = "servers started";
    const LATENCY: &str = "last edit -> newest version serving";
    println!("\n== 7. build cancellation: {EDITS} edits 300 ms apart, build = `sleep 1`");
    let area = bench.area("cancel")?;

    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[COMPLETED, SERVERS, LATENCY], tool, |bench, exe| {
            area.write("src/version.rs", "0\n")?;
            let starts = area.start_log(tool.name());
            let builds = area.scratch.join(format!("{}.builds", tool.name()));
            let artifact = area.scratch.join(format!("{}.artifact", tool.name()));
            // The build "compiles" the version into an artifact the server reads at start, and
            // notes that it completed.
            let build = format!(
                "sleep 1 && cp src/version.rs {artifact} && echo done >> {builds}",
                artifact = shell_quote(artifact.as_os_str()),
                builds = shell_quote(builds.as_os_str())
            );
            let program = bench.bins.stand_in(&starts, Some(&artifact));
            let job = Job::new(&area.project, program).build(build);
            let mut session = Session::launch(tool, exe, &job, &area, tool.name())?;
            session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
            thread::sleep(SETTLE);
            let completed_before = line_count(&builds);
            let seen = starts.count();
            let mut last_edit = SystemTime::now();
            for version in 1..=EDITS {
                if version > 1 {
                    thread::sleep(Duration::from_millis(300));
                }
                last_edit = SystemTime::now();
                area.write("src/version.rs", &format!("{version}\n"))?;
            }
            let newest = EDITS.to_string();
            let serving = wait_for(Duration::from_secs(20), || {
                starts
                    .read()
                    .into_iter()
                    .skip(seen)
                    .find(|s| s.version == newest)
            });
            let Some(serving) = serving else {
                session.check_alive()?;
                bail!(
                    "version {EDITS} never served; {} said:\n{}",
                    tool.name(),
                    session.output_tail()
                );
            };
            // A build that was not cancelled may still be running: wait until all is quiet.
            wait_quiet(Duration::from_millis(1500), Duration::from_secs(30), || {
                line_count(&builds) + starts.count()
            })?;
            session.check_alive()?;
            Ok((
                line_count(&builds) - completed_before,
                starts.count() - seen,
                millis_between(last_edit, serving.at),
            ))
        });
        if let Some((completed, servers, latency)) = measured {
            let report = &mut bench.report;
            report.add(S, COMPLETED, tool.name(), Value::Count(completed as u64));
            report.add(S, SERVERS, tool.name(), Value::Count(servers as u64));
            report.add(S, LATENCY, tool.name(), Value::Millis(latency));
            if tool == Tool::Reload {
                let measured =
                    format!("{completed} (newest served {latency:.0} ms after the last edit)");
                report.target(S, "<= 2 builds completed", measured, completed <= 2);
            }
        }
    }
    Ok(())
}

fn line_count(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |text| text.lines().count())
}
