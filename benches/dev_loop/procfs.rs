//! What the bench reads from /proc: CPU time, memory, inotify watches, processes by parent and
//! by working directory, the load average. The readers the integration tests use too are in
//! tests/support/procfs.rs, included here; this module adds the bench's error context and its
//! own readers.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[path = "../../tests/support/procfs.rs"]
mod shared;

use shared::pids_under;
pub(crate) use shared::{all_pids, children_of, command_line, stat_fields};

/// The unit of utime/stime in /proc/PID/stat (USER_HZ: 100 on every Linux ABI in use).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system) of `pids` together, in clock ticks.
pub(crate) fn cpu_ticks(pids: &[i32]) -> Result<u64> {
    let mut total = 0;
    for &pid in pids {
        let fields = stat_fields(pid).with_context(|| format!("pid {pid} is gone"))?;
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        total += field(11).context("no utime")? + field(12).context("no stime")?;
    }
    Ok(total)
}

/// VmRSS of `pid`, in MiB.
pub(crate) fn rss_mib(pid: i32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("pid {pid} is gone"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

/// Inotify watches held by `pid`. Unlike the tests, which count a process without fdinfo as
/// holding none, the bench fails the measurement: a tool that vanished has no count.
pub(crate) fn inotify_watches(pid: i32) -> Result<usize> {
    shared::inotify_watches(pid).with_context(|| format!("cannot read the fdinfo of pid {pid}"))
}

/// SIGKILL, by pid, every live process whose working directory is inside `dir`: whatever a
/// tool started there and left behind.
pub(crate) fn kill_processes_under(dir: &Path) {
    for _ in 0..20 {
        let left: Vec<i32> = pids_under(dir)
            .into_iter()
            .filter(|&pid| stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z")))
            .collect();
        if left.is_empty() {
            return;
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// One thread's context switches, from /proc/PID/task/TID/status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Switches {
    pub(crate) thread: String,
    pub(crate) voluntary: u64,
    pub(crate) involuntary: u64,
}

/// The context switches of every thread of `pid`, by thread id. /proc/PID/status counts the
/// main thread alone, and a timer may live on any thread (the dev proxy has one of its own).
pub(crate) fn context_switches(pid: i32) -> Result<BTreeMap<i32, Switches>> {
    let tasks = format!("/proc/{pid}/task");
    let mut threads = BTreeMap::new();
    for entry in fs::read_dir(&tasks).with_context(|| format!("cannot list {tasks}"))? {
        let Some(tid) = entry?.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread that ended since the listing is simply not counted.
        let Ok(status) = fs::read_to_string(format!("{tasks}/{tid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        let count = |name: &str| -> Result<u64> {
            field(name)
                .and_then(|value| value.parse().ok())
                .with_context(|| format!("no {name} in {tasks}/{tid}/status"))
        };
        let switches = Switches {
            thread: field("Name:").unwrap_or("?").to_owned(),
            voluntary: count("voluntary_ctxt_switches:")?,
            involuntary: count("nonvoluntary_ctxt_switches:")?,
        };
        threads.insert(tid, switches);
    }
    Ok(threads)
}
