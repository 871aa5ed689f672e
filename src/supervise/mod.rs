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

use crate::config::{OnBuildFailure, OnExit, Program, Readiness, RestartOrder, RunConfig};
use crate::process::{self, ProcessGroup};
use crate::status;
use listen::Listener;
use ready::{NotifyDir, NotifySocket};

/// How the server ended when nobody asked it to.
#[derive(Debug)]
pub struct ChildExit {
    pub pid: u32,
    pub status: Option<ExitStatus>,
    /// How long it ran.
    pub ran: Duration,
    /// What may explain the exit, for the user (see [`Supervisor::hint`]).
    pub hint: Option<&'static str>,
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
    started: Instant,
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
    /// How it ended, if it has ended and that is known yet.
    fn status(&mut self) -> Option<ExitStatus> {
        if let ExitWatch::Running(receiver) = self
            && let Ok(status) = receiver.try_recv()
        {
            *self = ExitWatch::Ended(status);
        }
        match self {
            ExitWatch::Ended(status) => *status,
            ExitWatch::Running(_) => None,
        }
    }

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

/// A start, ready to spawn.
struct Launch {
    command: Command,
    program: PathBuf,
    /// The listening sockets, for the shim to place at 3, 4, ...
    fds: Vec<std::os::fd::RawFd>,
    notify: Option<NotifySocket>,
}

impl Launch {
    fn spawn(self) -> Result<RunningChild> {
        let Launch {
            mut command,
            program,
            fds,
            notify,
        } = self;
        let (mut child, group) = process::spawn_group(&mut command, process::Origin::App, &fds)
            .map_err(|err| {
                anyhow!(
                    "cannot start `{}`: {}",
                    program.display(),
                    process::explain_exec_error(&program, &err)
                )
            })?;
        let pid = child.id().unwrap_or_default();
        tracing::debug!(pid, program = %program.display(), "server started");
        status::emit(&status::Note::Spawned { pid });
        let (tx, receiver) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(child.wait().await.ok());
        });
        Ok(RunningChild {
            pid,
            started: Instant::now(),
            group,
            exit: ExitWatch::Running(receiver),
            notify,
        })
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
    /// Where the notify sockets are made, once the first is needed.
    notify_dir: Option<NotifyDir>,
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
            notify_dir: None,
        })
    }

    fn notify_dir(&mut self) -> Result<&NotifyDir> {
        if self.notify_dir.is_none() {
            self.notify_dir = Some(NotifyDir::create()?);
        }
        Ok(self.notify_dir.as_ref().expect("just created"))
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
        self.config.on_build_failure == OnBuildFailure::Stop
    }

    /// air's `rerun`: how long after exiting by itself the server is started again.
    pub fn restart_on_exit(&self) -> Option<Duration> {
        match self.config.on_exit {
            OnExit::Wait => None,
            OnExit::RestartAfter(delay) => Some(delay),
        }
    }

    /// Wait for the running server to exit on its own. Cancel-safe. Pending forever when no
    /// server runs, so it can sit in a `select!` unconditionally. The exited server stays until
    /// [`Supervisor::bury`] is called, which the caller must do next.
    pub async fn exited(&mut self) -> ChildExit {
        let Some(child) = self.child.as_mut() else {
            return std::future::pending().await;
        };
        let status = child.exit.ended().await;
        let ran = child.started.elapsed();
        ChildExit {
            pid: child.pid,
            status,
            ran,
            hint: self.hint(status, ran),
        }
    }

    /// After [`Supervisor::exited`]: kill what the server left in its group, then what left
    /// the group. Not part of `exited`, which must stay cancel-safe.
    pub async fn bury(&mut self) {
        if let Some(child) = self.child.take() {
            process::end_group(child.group).await;
        }
        process::sweep_and_report(process::Sweep::Ended);
    }

    /// Why a server that just failed may have failed: with `--listen`, one that binds the port
    /// itself instead of taking fd 3 dies at once with "address already in use" (and clients
    /// of the held socket wait for nobody).
    fn hint(&self, status: Option<ExitStatus>, ran: Duration) -> Option<&'static str> {
        let failed = status.is_none_or(|status| !status.success());
        (failed && !self.listeners.is_empty() && ran < EARLY_EXIT).then_some(
            "with --listen, reload holds the port and hands it to the app as fd 3 (LISTEN_FDS): \
             an app that binds the port itself fails with \"address already in use\"\n  help: \
             make the app take its socket from fd 3 (see the README's \"Zero-downtime dev \
             loop\"), or drop --listen to let it bind the port itself",
        )
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
        // Everything the new server needs is made before the old one is touched: a failure
        // here leaves the old server serving.
        let launch = self.prepare()?;
        if self.config.order == RestartOrder::Overlap && self.child.is_some() {
            let mut new = launch.spawn()?;
            if let Err(why) = self.wait_ready(&mut new).await {
                let old = self.pid().unwrap_or_default();
                return Err(self
                    .give_up(new, &why, &format!("; pid {old} keeps serving"))
                    .await);
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
        let mut new = launch.spawn()?;
        if let Err(why) = self.wait_ready(&mut new).await {
            return Err(self.give_up(new, &why, "").await);
        }
        let new_pid = new.pid;
        self.child = Some(new);
        Ok(Swap {
            old,
            new: new_pid,
            elapsed: started.elapsed(),
        })
    }

    /// Stop the server: stop signal to its group, wait until the whole group has exited (not
    /// just its leader: under `sh -c`, the shell dies at once and the real server drains after
    /// it), up to the stop timeout or a second Ctrl-C, then SIGKILL the group; reap; then kill
    /// what left the group. Returns the pid that was stopped.
    pub async fn stop(&mut self) -> Option<u32> {
        let Some(mut child) = self.child.take() else {
            // No server, but what an earlier one left behind may still run.
            process::sweep_and_report(process::Sweep::Ended);
            return None;
        };
        tracing::debug!(pid = child.pid, signal = %self.config.stop_signal, "stopping server");
        child.group.signal(self.config.stop_signal);
        let started = Instant::now();
        let drained = async {
            child.exit.ended().await;
            child.group.emptied().await;
        };
        // `None`: the group exited by itself; `Some(asked)`: it must be killed, `asked` by the
        // user.
        let kill = tokio::select! {
            drained = tokio::time::timeout(self.config.stop_timeout, drained) => {
                drained.is_err().then_some(false)
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
            let _ = tokio::time::timeout(process::KILL_GRACE, child.exit.ended()).await;
        }
        let pid = child.pid;
        process::end_group(child.group).await;
        process::sweep_and_report(process::Sweep::Ended);
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
                (Readiness::TcpConnect(authority), _) => {
                    ready::tcp(authority).await;
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

    /// A new server that failed to become ready (`why`): kill it, and say what happened and
    /// what may explain it.
    async fn give_up(&self, mut new: RunningChild, why: &str, after: &str) -> anyhow::Error {
        let new_or_only = if after.is_empty() { "app" } else { "new app" };
        let message = format!("{new_or_only} (pid {}) {why}{after}", new.pid);
        let hint = self.hint(new.exit.status(), new.started.elapsed());
        discard(new).await;
        match hint {
            Some(hint) => anyhow!("{message}: {hint}"),
            None => anyhow!("{message}"),
        }
    }

    /// Everything a start needs (the program found, the env file read, the notify socket, the
    /// command), made before the old server is touched.
    fn prepare(&mut self) -> Result<Launch> {
        let invocation = self.invocation(self.last_executable.clone().as_deref())?;
        let notify = match self.config.readiness {
            Readiness::Notify => Some(NotifySocket::create(self.notify_dir()?)?),
            _ => None,
        };
        let fds: Vec<_> = self.listeners.iter().map(Listener::raw_fd).collect();
        let mut command = if self.listeners.is_empty() {
            Command::new(&invocation.program)
        } else {
            process::shim_command(&invocation.program, &fds)
                .map_err(|err| anyhow!("cannot start `{}`: {err}", invocation.program.display()))?
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
        if let Some(socket) = &notify {
            command.env("NOTIFY_SOCKET", socket.path());
        }
        // A server in a background process group that reads the terminal would be stopped by
        // SIGTTIN; with a terminal, the keyboard belongs to reload.
        if std::io::stdin().is_terminal() {
            command.stdin(Stdio::null());
        }
        Ok(Launch {
            command,
            program: invocation.program.clone(),
            fds,
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

/// A server that fails this soon after starting may be explained by [`Supervisor::hint`].
const EARLY_EXIT: Duration = Duration::from_secs(10);

/// Kill a server that will not be used and wait until it is reaped.
async fn discard(mut child: RunningChild) {
    child.group.signal(Signal::SIGKILL);
    let _ = tokio::time::timeout(process::KILL_GRACE, child.exit.ended()).await;
    process::end_group(child.group).await;
    process::sweep_and_report(process::Sweep::Ended);
}

/// Resolve a program the way exec would ([`process::find_program`]), so that "no such file" is
/// our clear message and not a failed spawn after the old server was already stopped.
/// `env` is the server's extra environment: a PATH there (node_modules/.bin first) is searched.
fn find_program(
    program: &(impl AsRef<OsStr> + ?Sized),
    root: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<PathBuf> {
    let path = env.get("PATH").map(OsStr::new);
    process::find_program(program.as_ref(), root, path).map_err(|err| match err {
        process::ProgramNotFound::NotExecutable(program) => anyhow!(
            "the app `{}` does not exist or is not executable (in {})\n  help: check that \
                 the build writes it there, or fix the program after `--` / [run] cmd",
            program.display(),
            root.display()
        ),
        process::ProgramNotFound::NotOnPath(program) => {
            anyhow!("the app `{}` is not on PATH", Path::new(&program).display())
        }
    })
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
