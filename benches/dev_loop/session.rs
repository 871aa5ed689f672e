//! A running tool ([`Session`]) and the directories a scenario works in: the bench's own
//! temporary directory, one [`Area`] per scenario, and trees on [`Loan`] from the stock.
//! Whatever is dropped kills what was started in it first.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::POLL;
use crate::procfs::{children_of, command_line, cpu_ticks, inotify_watches, kill_processes_under};
use crate::stand_in::{Start, StartLog};
use crate::stats::{millis_between, unix_nanos};
use crate::tools::{Job, Tool};
use crate::wait::wait_for;

/// Protocol variables from the bench's own environment must not reach any tool.
const STRAY_VARIABLES: &[&str] = &[
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "RELOAD_LOG",
];

/// A running tool. Dropping it stops the tool (SIGTERM, which each of them passes on to its
/// server), kills its process group if it lingers, then kills anything left in the scenario's
/// directory.
pub(crate) struct Session {
    pub(crate) tool: Tool,
    pub(crate) process: Child,
    /// Just before the spawn.
    pub(crate) launched: SystemTime,
    pub(crate) log: PathBuf,
    pub(crate) area: PathBuf,
}

impl Session {
    pub(crate) fn launch(
        tool: Tool,
        exe: &Path,
        job: &Job,
        area: &Area,
        name: &str,
    ) -> Result<Session> {
        let log = area.scratch.join(format!("{name}.out"));
        let output = fs::File::create(&log).context("cannot create the tool's log")?;
        let mut command = tool.command(exe, job);
        command
            .current_dir(&job.root)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0);
        for variable in STRAY_VARIABLES {
            command.env_remove(variable);
        }
        let launched = SystemTime::now();
        let process = command
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        Ok(Session {
            tool,
            process,
            launched,
            log,
            area: area.dir.clone(),
        })
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.process.id()).unwrap_or(i32::MAX)
    }

    /// reload's guardian process (`reload __guard`), measured beside reload itself.
    pub(crate) fn guardian(&self) -> Option<i32> {
        if self.tool != Tool::Reload {
            return None;
        }
        children_of(self.pid())
            .into_iter()
            .find(|&pid| command_line(pid).contains("__guard"))
    }

    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.process.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited ({status}); its output ends with:\n{}",
                self.tool.name(),
                self.output_tail()
            ),
            Err(err) => bail!("cannot check on {}: {err}", self.tool.name()),
        }
    }

    /// Wait for the start after the first `seen` ones in `starts`.
    pub(crate) fn wait_start(
        &mut self,
        starts: &StartLog,
        seen: usize,
        timeout: Duration,
    ) -> Result<Start> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(start) = starts.read().into_iter().nth(seen) {
                return Ok(start);
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "no server start within {:.0} s; {} said:\n{}",
                    timeout.as_secs_f64(),
                    self.tool.name(),
                    self.output_tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Whether a server starts (after the first `seen`) within `window`.
    pub(crate) fn restarts_within(
        &mut self,
        starts: &StartLog,
        seen: usize,
        window: Duration,
    ) -> Result<bool> {
        let restarted = wait_for(window, || (starts.count() > seen).then_some(()));
        self.check_alive()?;
        Ok(restarted.is_some())
    }

    /// Wait until the tool's initial scan is over: its inotify watch count has not changed and
    /// it has used (almost) no CPU for a second. The count alone is not enough: nodemon pauses
    /// for seconds at the directories while it stats every file, then watches each file. (reload
    /// places every watch before its first start; a tool that starts the server while still
    /// scanning misses changes meanwhile.) Returns the count and when it was first reached, in ms
    /// from launch, to within one poll.
    pub(crate) fn settle_watches(&mut self, timeout: Duration) -> Result<(usize, f64)> {
        let began = Instant::now();
        let pid = self.pid();
        let mut count = inotify_watches(pid)?;
        let mut reached = SystemTime::now();
        let mut steady = (Instant::now(), cpu_ticks(&[pid])?);
        loop {
            // Reading 100k watches from fdinfo is not free: poll less often on large trees.
            thread::sleep(Duration::from_millis(50 + count as u64 / 1000));
            self.check_alive()?;
            let now = inotify_watches(pid)?;
            if now != count {
                (count, reached) = (now, SystemTime::now());
                steady = (Instant::now(), cpu_ticks(&[pid])?);
            } else if steady.0.elapsed() >= Duration::from_secs(1) {
                let ticks = cpu_ticks(&[pid])?;
                if ticks - steady.1 <= 2 {
                    return Ok((count, millis_between(self.launched, reached)));
                }
                steady = (Instant::now(), ticks);
            }
            ensure!(
                began.elapsed() < timeout,
                "its inotify watches were still changing after {:.0} s ({count} so far)",
                timeout.as_secs_f64()
            );
        }
    }

    pub(crate) fn output_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        tail.iter().fold(String::new(), |mut out, line| {
            out.push_str("    | ");
            out.push_str(line);
            out.push('\n');
            out
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.pid());
        if matches!(self.process.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            let exited = wait_for(Duration::from_secs(5), || {
                self.process.try_wait().ok().flatten()
            });
            if exited.is_none() {
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = self.process.wait();
            }
        }
        kill_processes_under(&self.area);
    }
}

/// The bench's own temporary directory, removed at the end.
pub(crate) struct TempBase(pub(crate) PathBuf);

impl TempBase {
    pub(crate) fn create() -> Result<TempBase> {
        let name = format!(
            "reload-bench-{}-{}",
            std::process::id(),
            unix_nanos(SystemTime::now())
        );
        let dir = std::env::temp_dir().join(name);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Canonical, to compare with what /proc/PID/cwd says.
        Ok(TempBase(dir.canonicalize()?))
    }
}

impl Drop for TempBase {
    fn drop(&mut self) {
        kill_processes_under(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One scenario's directory: `project/` (watched) and `scratch/` (its traces, never watched).
pub(crate) struct Area {
    pub(crate) dir: PathBuf,
    pub(crate) project: PathBuf,
    pub(crate) scratch: PathBuf,
}

impl Area {
    pub(crate) fn write(&self, path: &str, contents: &str) -> Result<()> {
        let path = self.project.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    }

    pub(crate) fn start_log(&self, name: &str) -> StartLog {
        StartLog(self.scratch.join(format!("{name}.starts")))
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        kill_processes_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Trees borrowed from the stock; dropping the loan puts them back.
pub(crate) struct Loan {
    /// (where the tree lives in the stock, where it is now)
    pub(crate) moves: Vec<(PathBuf, PathBuf)>,
}

impl Loan {
    /// The leaf directories (10 files each), in the order the stock created them.
    pub(crate) fn leaves(&self) -> Vec<PathBuf> {
        let mut leaves = Vec::new();
        for (_, top) in &self.moves {
            for a in 0..10 {
                for b in 0..10 {
                    for c in 0..10 {
                        leaves.push(top.join(format!("d{a:02}/d{b:02}/d{c:02}")));
                    }
                }
            }
        }
        leaves
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        for (home, away) in &self.moves {
            if let Err(err) = fs::rename(away, home) {
                eprintln!("dev_loop: cannot put {} back: {err}", away.display());
            }
        }
    }
}
