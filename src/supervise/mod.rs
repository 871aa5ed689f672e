//! The supervise stage: owns the running server. Starts it in its own process group with the
//! held listening sockets and a readiness check, stops it gracefully (stop signal to the group,
//! the stop timeout, then SIGKILL to the group), and reports when it exits on its own.
//!
//! A restart is stop-then-start, or with `overlap` start-then-stop: the new server starts beside
//! the old one (both on the same inherited sockets) and the old one is only stopped once the new
//! one is ready. A new server that exits or misses the ready timeout never replaces the old one.
//! Only this module and `build` (for its own builds) send signals.

mod listen;
mod ready;

use std::ffi::{OsStr, OsString};
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

use crate::config::{Program, Readiness, RunConfig};
use crate::process::{self, ProcessGroup};
use crate::status;
use listen::Listener;
use ready::NotifySocket;

/// How the server ended when nobody asked it to.
#[derive(Debug)]
pub struct ChildExit {
    pub pid: u32,
    pub status: Option<ExitStatus>,
}

impl ChildExit {
    /// "exited with 3", "killed by SIGSEGV".
    pub fn describe(&self) -> String {
        describe_status(self.status)
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    pub fn signal_name(&self) -> Option<String> {
        let signal = self.status?.signal()?;
        Some(
            Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.as_str().to_owned()),
        )
    }
}

fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with {code}"),
            (None, Some(_)) => format!("killed by {}", process::describe_exit(status)),
            (None, None) => "ended".to_owned(),
        },
        None => "was lost track of".to_owned(),
    }
}

/// The result of a restart: which pid was replaced by which, and when the new one was ready.
#[derive(Debug)]
pub struct Swap {
    pub old: Option<u32>,
    pub new: u32,
    /// From the call to `restart` to the new server's readiness.
    pub elapsed: Duration,
}

/// Signals from the user that cut waits short: the first Ctrl-C stops waiting for a new server
/// to become ready; the second stops waiting for an old one to exit gracefully.
#[derive(Debug, Default)]
pub struct Interrupts {
    pub stop_waiting: Notify,
    pub kill_now: Notify,
    /// Woken (`notify_waiters`) by the watch stage whenever it hands over a change: a server
    /// still warming up is built from sources that are already stale, so it gives way.
    pub newer_change: Arc<Notify>,
}

#[derive(Debug)]
struct RunningChild {
    pid: u32,
    group: ProcessGroup,
    exit: ExitWatch,
    /// Lives as long as the server, so it can report again after a reload of its own.
    notify: Option<NotifySocket>,
}

/// How a server ended, as its reaper task reports it (once: a oneshot answers only once, and
/// several waits may ask, so the answer is kept).
#[derive(Debug)]
enum ExitWatch {
    Running(oneshot::Receiver<Option<ExitStatus>>),
    /// `None`: the reaper could not tell how.
    Ended(Option<ExitStatus>),
}

impl ExitWatch {
    /// Wait until the process has exited and been reaped. Cancel-safe, and may be called again
    /// after it has returned.
    async fn ended(&mut self) -> Option<ExitStatus> {
        match self {
            ExitWatch::Ended(status) => *status,
            ExitWatch::Running(receiver) => {
                let status = receiver.await.ok().flatten();
                *self = ExitWatch::Ended(status);
                status
            }
        }
    }
}

/// A program resolved to a path, checked before any server is touched.
struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
    /// From the env file, read at this start.
    env: Vec<(String, String)>,
}

pub struct Supervisor {
    config: RunConfig,
    root: PathBuf,
    listeners: Vec<Listener>,
    child: Option<RunningChild>,
    interrupts: Arc<Interrupts>,
    /// What the last successful build produced (for `Program::CargoArtifact`).
    last_executable: Option<PathBuf>,
}

impl Supervisor {
    /// Binds the listening sockets now: a port in use is a startup error.
    pub fn new(config: RunConfig, root: PathBuf, interrupts: Arc<Interrupts>) -> Result<Self> {
        let listeners = listen::bind_all(&config.listeners)?;
        Ok(Supervisor {
            config,
            root,
            listeners,
            child: None,
            interrupts,
            last_executable: None,
        })
    }

    /// "listening on 127.0.0.1:3000, unix:/run/app.sock", or nothing without sockets.
    pub fn describe_listeners(&self) -> Option<String> {
        (!self.listeners.is_empty()).then(|| {
            let addresses: Vec<String> = self
                .listeners
                .iter()
                .map(|l| l.spec.address.to_string())
                .collect();
            format!("listening on {}", addresses.join(", "))
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// air's `stop_on_error`: a failed build stops the server instead of leaving it serving.
    pub fn stops_on_build_error(&self) -> bool {
        self.config.stop_on_build_error
    }

    /// air's `rerun`: how long after exiting by itself the server is started again.
    pub fn restart_on_exit(&self) -> Option<Duration> {
        self.config.restart_on_exit
    }

    /// Wait for the running server to exit on its own. Cancel-safe. Pending forever when no
    /// server runs, so it can sit in a `select!` unconditionally.
    pub async fn exited(&mut self) -> ChildExit {
        let Some(child) = self.child.as_mut() else {
            return std::future::pending().await;
        };
        let status = child.exit.ended().await;
        let pid = child.pid;
        // Dropping the group kills anything the server left behind in it.
        self.child = None;
        sweep_adopted(Some(pid));
        ChildExit { pid, status }
    }

    /// Replace the running server (if any) with a fresh one. `executable` is what the build
    /// produced, for `Program::CargoArtifact`. The new program is checked before the old server
    /// is touched: a missing binary leaves the old one serving.
    pub async fn restart(&mut self, executable: Option<&Path>) -> Result<Swap> {
        let started = Instant::now();
        // A restart without a build (air's rerun after an exit) runs the last build's program.
        if let Some(executable) = executable {
            self.last_executable = Some(executable.to_owned());
        }
        let executable = executable.or(self.last_executable.as_deref());
        let invocation = self.invocation(executable)?;
        if self.config.overlap && self.child.is_some() {
            let mut new = self.spawn(&invocation)?;
            if let Err(why) = self.wait_ready(&mut new).await {
                let old = self.pid().unwrap_or_default();
                let pid = new.pid;
                discard(new).await;
                return Err(anyhow!(
                    "new app (pid {pid}) {why}; pid {old} keeps serving"
                ));
            }
            let old = self.stop().await;
            let new_pid = new.pid;
            self.child = Some(new);
            return Ok(Swap {
                old,
                new: new_pid,
                elapsed: started.elapsed(),
            });
        }
        let old = self.stop().await;
        let mut new = self.spawn(&invocation)?;
        if let Err(why) = self.wait_ready(&mut new).await {
            let pid = new.pid;
            discard(new).await;
            return Err(anyhow!("app (pid {pid}) {why}"));
        }
        let new_pid = new.pid;
        self.child = Some(new);
        Ok(Swap {
            old,
            new: new_pid,
            elapsed: started.elapsed(),
        })
    }

    /// Stop the server: stop signal to its group, wait up to the stop timeout (or a second
    /// Ctrl-C), SIGKILL the group, reap, then kill what escaped the group. Returns the pid that
    /// was stopped.
    pub async fn stop(&mut self) -> Option<u32> {
        let Some(mut child) = self.child.take() else {
            // No server, but what an earlier one left behind may still run.
            sweep_adopted(None);
            return None;
        };
        tracing::debug!(pid = child.pid, signal = %self.config.stop_signal, "stopping server");
        child.group.signal(self.config.stop_signal);
        let started = Instant::now();
        // `None`: it exited by itself; `Some(asked)`: it must be killed, `asked` by the user.
        let kill = tokio::select! {
            exited = tokio::time::timeout(self.config.stop_timeout, child.exit.ended()) => {
                exited.is_err().then_some(false)
            }
            () = self.interrupts.kill_now.notified() => Some(true),
        };
        if let Some(asked) = kill {
            status::emit(&status::Note::Killing {
                pid: child.pid,
                after: started.elapsed(),
                signal: self.config.stop_signal.as_str(),
                asked,
            });
            child.group.signal(Signal::SIGKILL);
            child.exit.ended().await;
        }
        let pid = child.pid;
        // Dropping the group SIGKILLs whatever is still in it.
        drop(child);
        sweep_adopted(Some(pid));
        Some(pid)
    }

    /// Wait until `child` is ready, it exits, the ready timeout passes, or the user interrupts.
    async fn wait_ready(&self, child: &mut RunningChild) -> Result<(), String> {
        let pgid = child.group.id();
        let probe = async {
            match (&self.config.readiness, &child.notify) {
                (Readiness::Spawned, _) => Ok(()),
                (Readiness::Notify, Some(socket)) => {
                    socket.ready(pgid).await.map_err(|e| e.to_string())
                }
                (Readiness::Notify, None) => Err("has no notify socket".to_owned()),
                (Readiness::Http(probe), _) => {
                    ready::http(probe).await;
                    Ok(())
                }
            }
        };
        let timeout = self.config.ready_timeout;
        tokio::select! {
            ready = probe => ready,
            status = child.exit.ended() => Err(format!("{} before it was ready", describe_status(status))),
            () = tokio::time::sleep(timeout) => Err(format!("was not ready within {}", status::duration(timeout))),
            () = self.interrupts.stop_waiting.notified() => Err("was interrupted before it was ready".to_owned()),
            () = self.interrupts.newer_change.notified() => Err("gave way to a newer change before it was ready".to_owned()),
        }
    }

    fn spawn(&self, invocation: &Invocation) -> Result<RunningChild> {
        let mut command = if self.listeners.is_empty() {
            Command::new(&invocation.program)
        } else {
            let mut shim = Command::new(std::env::current_exe()?);
            shim.arg(process::EXEC_ARG).arg(&invocation.program);
            shim
        };
        command.args(&invocation.args).current_dir(&self.root);
        process::clear_protocol_env(&mut command);
        command
            .env("RELOAD", "1")
            .envs(invocation.env.iter().cloned())
            .envs(&self.config.env);
        if !self.listeners.is_empty() {
            let names: Vec<&str> = self
                .listeners
                .iter()
                .map(|l| l.spec.name.as_str())
                .collect();
            command.env("LISTEN_FDS", self.listeners.len().to_string());
            command.env("LISTEN_FDNAMES", names.join(":"));
        }
        let notify = match self.config.readiness {
            Readiness::Notify => Some(NotifySocket::create()?),
            _ => None,
        };
        if let Some(socket) = &notify {
            command.env("NOTIFY_SOCKET", socket.path());
        }
        // A server in a background process group that reads the terminal would be stopped by
        // SIGTTIN; with a terminal, the keyboard belongs to reload.
        if std::io::stdin().is_terminal() {
            command.stdin(Stdio::null());
        }
        let fds: Vec<_> = self.listeners.iter().map(Listener::raw_fd).collect();
        let (mut child, group) = process::spawn_group(&mut command, &fds)
            .map_err(|err| anyhow!("cannot start `{}`: {err}", invocation.program.display()))?;
        let pid = child.id().unwrap_or_default();
        tracing::debug!(pid, program = %invocation.program.display(), "server started");
        status::emit(&status::Note::Spawned { pid });
        let (tx, receiver) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(child.wait().await.ok());
        });
        Ok(RunningChild {
            pid,
            group,
            exit: ExitWatch::Running(receiver),
            notify,
        })
    }

    fn invocation(&self, executable: Option<&Path>) -> Result<Invocation> {
        let env = match &self.config.env_file {
            Some(path) => crate::config::read_env_file(path)?,
            None => Vec::new(),
        };
        let search = |program: &OsStr| find_program(program, &self.root, &self.config.env);
        let (program, args) = match &self.config.program {
            Program::Argv(argv) => (
                search(argv[0].as_ref())?,
                argv[1..].iter().map(OsString::from).collect(),
            ),
            Program::Shell(line) => (search("sh".as_ref())?, vec!["-c".into(), line.into()]),
            Program::CargoArtifact => {
                let path = executable.ok_or_else(|| {
                    anyhow!(
                        "cargo reported no executable for this build; pass the server after `--`"
                    )
                })?;
                (search(path.as_os_str())?, Vec::new())
            }
        };
        Ok(Invocation { program, args, env })
    }
}

/// A process that left a server's group (setsid, a daemonizing server) was adopted by reload
/// when its parent died: once that server is gone, it is ours to stop too.
fn sweep_adopted(server: Option<u32>) {
    let escaped = process::kill_adopted();
    if escaped > 0 {
        let whose = server.map_or_else(String::new, |pid| format!(" by app (pid {pid})"));
        status::info(&format!(
            "killed {escaped} process{} left running outside its process group{whose}",
            if escaped == 1 { "" } else { "es" }
        ));
    }
}

/// Kill a server that will not be used and wait until it is reaped.
async fn discard(mut child: RunningChild) {
    child.group.signal(Signal::SIGKILL);
    child.exit.ended().await;
}

/// Resolve a program the way exec would, so that "no such file" is our clear message and not a
/// failed spawn after the old server was already stopped.
/// `env` is the server's extra environment: a PATH there (node_modules/.bin first) is searched.
fn find_program(
    program: &(impl AsRef<OsStr> + ?Sized),
    root: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<PathBuf> {
    let program = Path::new(program.as_ref());
    let candidates: Vec<PathBuf> = if program.components().count() > 1 {
        vec![root.join(program)]
    } else {
        env.get("PATH")
            .map(OsString::from)
            .or_else(|| std::env::var_os("PATH"))
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| root.join(dir).join(program))
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
        let env = std::collections::BTreeMap::new();
        assert!(find_program("sh", Path::new("/"), &env).is_ok());
        assert!(find_program("bin/sh", Path::new("/"), &env).is_ok());
        let err = find_program("./tmp/main", Path::new("/nonexistent"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("./tmp/main") && err.contains("does not exist"),
            "{err}"
        );
        assert!(find_program("no-such-program-here", Path::new("/"), &env).is_err());
    }
}
