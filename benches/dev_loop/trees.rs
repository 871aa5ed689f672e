//! Big trees: making them (fast, over one thread per CPU) and launching a tool on one.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::procfs::rss_mib;
use crate::session::{Area, Session};
use crate::stand_in::StartLog;
use crate::stats::millis_between;
use crate::tools::{Job, Tool};
use crate::{Bench, LARGE_STARTUP_TIMEOUT, SCAN_TIMEOUT};

/// Fill `dir` with a tree `fanout.len()` levels deep (`d00`, `d01`, ... at each level) whose
/// leaf directories hold `files` files `f000.rs`, `f001.rs`, ... Returns the leaves in order.
/// The top-level directories are shared out over one thread per CPU: creating 100k files is
/// the slowest part of the bench.
pub(crate) fn populate(dir: &Path, fanout: &[usize], files: usize) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let Some((&width, deeper)) = fanout.split_first() else {
        return populate_serially(dir, fanout, files);
    };
    let threads = thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let tops: Vec<PathBuf> = (0..width).map(|i| dir.join(format!("d{i:02}"))).collect();
    let chunks: Vec<&[PathBuf]> = tops.chunks(width.div_ceil(threads).max(1)).collect();
    let results: Vec<Result<Vec<PathBuf>>> = thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || -> Result<Vec<PathBuf>> {
                    let mut leaves = Vec::new();
                    for top in *chunk {
                        leaves.extend(populate_serially(top, deeper, files)?);
                    }
                    Ok(leaves)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| bail!("a tree writer panicked"))
            })
            .collect()
    });
    let mut leaves = Vec::new();
    for result in results {
        leaves.extend(result?);
    }
    Ok(leaves)
}

fn populate_serially(dir: &Path, fanout: &[usize], files: usize) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let Some((&width, deeper)) = fanout.split_first() else {
        for i in 0..files {
            fs::write(dir.join(format!("f{i:03}.rs")), "// v0\n")?;
        }
        return Ok(vec![dir.to_owned()]);
    };
    let mut leaves = Vec::new();
    for i in 0..width {
        leaves.extend(populate_serially(
            &dir.join(format!("d{i:02}")),
            deeper,
            files,
        )?);
    }
    Ok(leaves)
}

/// What a tool did on a big tree: measured over several launches, the last one probed further.
pub(crate) struct TreeRuns {
    /// Launch -> first server, per launch (ms).
    pub(crate) startups: Vec<f64>,
    /// Launch -> inotify watch count settled (last launch, ms).
    pub(crate) settled: f64,
    pub(crate) watches: usize,
    pub(crate) rss: f64,
    pub(crate) guardian_rss: Option<f64>,
}

/// Launch `tool` on `area` `runs` times; on the last launch wait for its watches to settle and
/// take its memory, then hand the session to `probe` for the scenario's own checks.
pub(crate) fn tree_runs<T>(
    bench: &Bench,
    tool: Tool,
    exe: &Path,
    area: &Area,
    runs: usize,
    probe: impl FnOnce(&mut Session, &StartLog) -> Result<T>,
) -> Result<(TreeRuns, T)> {
    let mut startups = Vec::new();
    for run in 0..runs {
        let name = format!("{}-{run}", tool.name());
        let starts = area.start_log(&name);
        let job = Job::new(&area.project, bench.bins.stand_in(&starts, None));
        let mut session = Session::launch(tool, exe, &job, area, &name)?;
        let start = session.wait_start(&starts, 0, LARGE_STARTUP_TIMEOUT)?;
        startups.push(millis_between(session.launched, start.at));
        if run + 1 < runs {
            continue;
        }
        let (watches, settled) = session.settle_watches(SCAN_TIMEOUT)?;
        thread::sleep(Duration::from_millis(500));
        let rss = rss_mib(session.pid())?;
        let guardian_rss = session.guardian().map(rss_mib).transpose()?;
        let probed = probe(&mut session, &starts)?;
        let runs = TreeRuns {
            startups,
            settled,
            watches,
            rss,
            guardian_rss,
        };
        return Ok((runs, probed));
    }
    bail!("no launch")
}
