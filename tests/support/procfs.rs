//! Reading processes from /proc (Linux): their list, state, parent, command line, working
//! directory and inotify watches.
//!
//! Shared by the integration tests (as `support::procfs`) and the dev-loop benchmark (included
//! through `#[path]`), so the two cannot drift apart in how they see a process. Only std here:
//! each includer adds the error context and the policy (what counts as alive, what to kill).

use std::fs;
use std::io;
use std::path::Path;

/// The fields of /proc/PID/stat after the command name, which may itself contain spaces or
/// parentheses (hence the last `)`): index 0 is the state, 1 the parent pid, 11 utime, 12 stime.
pub(crate) fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// Every pid in /proc right now.
pub(crate) fn all_pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The processes whose parent is `parent`.
pub(crate) fn children_of(parent: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            stat_fields(pid)
                .and_then(|fields| fields.get(1)?.parse().ok())
                .is_some_and(|ppid: i32| ppid == parent)
        })
        .collect()
}

/// The arguments of `pid` joined by spaces (empty when it is gone or a kernel thread).
pub(crate) fn command_line(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .split('\0')
                .filter(|arg| !arg.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The processes whose working directory is `dir` or inside it, zombies included: how the
/// tests and the bench find whatever they started in a temporary tree, however it was started.
/// `dir` must be canonical, as /proc/PID/cwd is.
pub(crate) fn pids_under(dir: &Path) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// How many inotify watches `pid` holds over all its inotify instances: the `inotify wd:`
/// lines of /proc/PID/fdinfo/*. An error only when the fdinfo directory cannot be read (the
/// process is gone, or not ours).
pub(crate) fn inotify_watches(pid: i32) -> io::Result<usize> {
    let entries = fs::read_dir(format!("/proc/{pid}/fdinfo"))?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|entry| fs::read_to_string(entry.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|line| line.starts_with("inotify wd:"))
                .count()
        })
        .sum())
}
