//! The supervise stage: owns the running server. Starts it in its own process group, stops it
//! gracefully (stop signal to the group, the stop timeout, then SIGKILL to the group), and reports
//! when it exits on its own. Only this module and `build` (for its own builds) send signals.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::sync::{Notify, oneshot};

use crate::config::{Program, RunConfig};
use crate::process::{self, ProcessGroup};
use crate::status;

/// How the server ended when nobody asked it to.
#[derive(Debug)]
pub struct ChildExit {
    pub pid: u32,
    pub status: Option<ExitStatus>,
}

impl ChildExit {
    /// "exited with 3", "killed by SIGSEGV".
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited with {code}"),
                (None, Some(_)) => format!("killed by {}", process::describe_exit(status)),
                (None, None) => "ended".to_owned(),
            },
            None => "was lost track of".to_owned(),
        }
    }
}

/// The result of a restart: which pid was replaced by which, and how long the swap took.
#[derive(Debug)]
pub struct Swap {
    pub old: Option<u32>,
    pub new: u32,
    pub elapsed: Duration,
}

#[derive(Debug)]
struct RunningChild {
    pid: u32,
    group: ProcessGroup,
    exit: oneshot::Receiver<Option<ExitStatus>>,
}

pub struct Supervisor {
    config: RunConfig,
    root: PathBuf,
    child: Option<RunningChild>,
    /// Notified on a second Ctrl-C: stop waiting for a graceful exit.
    hurry: Arc<Notify>,
}

impl Supervisor {
    pub fn new(config: RunConfig, root: PathBuf, hurry: Arc<Notify>) -> Self {
        Supervisor {
            config,
            root,
            child: None,
            hurry,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// Wait for the running server to exit on its own. Cancel-safe. Pending forever when no
    /// server runs, so it can sit in a `select!` unconditionally.
    pub async fn exited(&mut self) -> ChildExit {
        let Some(child) = self.child.as_mut() else {
            return std::future::pending().await;
        };
        let status = (&mut child.exit).await.ok().flatten();
        let pid = child.pid;
        // Dropping the group kills anything the server left behind in it.
        self.child = None;
        ChildExit { pid, status }
    }

    /// Replace the running server (if any) with a fresh one. `executable` is what the build
    /// produced, for `Program::CargoArtifact`. The new program is checked before the old server
    /// is touched: a missing binary leaves the old one serving.
    pub async fn restart(&mut self, executable: Option<&Path>) -> Result<Swap> {
        let started = Instant::now();
        let mut command = self.command(executable)?;
        let old = self.stop().await;
        let new = self.spawn(&mut command)?;
        Ok(Swap {
            old,
            new,
            elapsed: started.elapsed(),
        })
    }

    /// Stop the server: stop signal to its group, wait up to the stop timeout (or a second
    /// Ctrl-C), SIGKILL the group, reap. Returns the pid that was stopped.
    pub async fn stop(&mut self) -> Option<u32> {
        let mut child = self.child.take()?;
        child.group.signal(self.config.stop_signal);
        let graceful = tokio::select! {
            exited = tokio::time::timeout(self.config.stop_timeout, &mut child.exit) => exited.is_ok(),
            () = self.hurry.notified() => false,
        };
        if !graceful {
            status::info(&format!(
                "app (pid {}) did not stop within {} of {}; killing it",
                child.pid,
                status::duration(self.config.stop_timeout),
                self.config.stop_signal
            ));
            child.group.signal(Signal::SIGKILL);
            let _ = (&mut child.exit).await;
        }
        Some(child.pid)
        // `child.group` drops here: SIGKILL to whatever is still in the group.
    }

    fn spawn(&mut self, command: &mut Command) -> Result<u32> {
        let (mut child, group) =
            process::spawn_group(command).map_err(|err| anyhow!("cannot start the app: {err}"))?;
        let pid = child.id().unwrap_or_default();
        let (tx, exit) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(child.wait().await.ok());
        });
        self.child = Some(RunningChild { pid, group, exit });
        Ok(pid)
    }

    fn command(&self, executable: Option<&Path>) -> Result<Command> {
        let mut command = match &self.config.program {
            Program::Argv(argv) => {
                let program = find_program(&argv[0], &self.root)?;
                let mut command = Command::new(program);
                command.args(&argv[1..]);
                command
            }
            Program::Shell(line) => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(line);
                command
            }
            Program::CargoArtifact => {
                let path = executable.ok_or_else(|| {
                    anyhow!(
                        "cargo reported no executable for this build; pass the server after `--`"
                    )
                })?;
                Command::new(find_program(path.as_os_str(), &self.root)?)
            }
        };
        command
            .current_dir(&self.root)
            .env("RELOAD", "1")
            .envs(&self.config.env);
        // A server in a background process group that reads the terminal would be stopped by
        // SIGTTIN; with a terminal, the keyboard belongs to reload.
        if std::io::stdin().is_terminal() {
            command.stdin(Stdio::null());
        }
        Ok(command)
    }
}

/// Resolve a program the way exec would, so that "no such file" is our clear message and not a
/// failed spawn after the old server was already stopped.
fn find_program(program: &(impl AsRef<OsStr> + ?Sized), root: &Path) -> Result<PathBuf> {
    let program = Path::new(program.as_ref());
    let candidates: Vec<PathBuf> = if program.components().count() > 1 {
        vec![root.join(program)]
    } else {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(program))
                    .collect()
            })
            .unwrap_or_default()
    };
    candidates
        .into_iter()
        .find(|path| is_executable(path))
        .ok_or_else(|| {
            if program.components().count() > 1 {
                anyhow!(
                    "the app `{}` does not exist or is not executable (in {})\n  help: check that \
                 the build writes it there, or fix the program after `--` / [run] cmd",
                    program.display(),
                    root.display()
                )
            } else {
                anyhow!("the app `{}` is not on PATH", program.display())
            }
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_relative_to_the_root() {
        assert!(find_program("sh", Path::new("/")).is_ok());
        assert!(find_program("bin/sh", Path::new("/")).is_ok());
        let err = find_program("./tmp/main", Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("./tmp/main") && err.contains("does not exist"),
            "{err}"
        );
        assert!(find_program("no-such-program-here", Path::new("/")).is_err());
    }
}
