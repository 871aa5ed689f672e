//! Every process reload starts goes through here, and so does every signal it sends. This is the
//! one place with `pre_exec`, process groups and parent-death signals, and, but for the wall
//! clock's `localtime_r`, with `unsafe`.
//!
//! Invariants:
//! - each build and each server runs in its own new process group, so one `killpg` reaches the
//!   grandchildren a shell started in the background;
//! - a [`ProcessGroup`] kills its group when dropped, so no code path can forget one;
//! - every group is known to the guardian process ([`guard`]), which kills it if reload itself
//!   dies without cleaning up (SIGKILL, OOM killer, a panic that aborts);
//! - children are spawned from the main thread only: the parent-death signal fires when the
//!   *thread* that forked exits, and the main thread lives as long as reload does;
//! - this module speaks to no one: what the user should hear (a group it could not signal, the
//!   guardian gone, what a [`sweep`] killed) is a typed [`Notice`] for whoever [`report_to`]
//!   names, so that process imports none of the modules that word things.

mod command;
pub mod free_ports;
pub mod guard;
pub mod limits;
mod path;
pub mod ports;
mod shim;
#[cfg(target_os = "linux")]
mod spawn_linux;
#[cfg(not(target_os = "linux"))]
mod spawn_portable;
mod sweep;

pub use command::{Command, Stdio};
pub use path::{ProgramNotFound, find_program};
pub use shim::{EXEC_ARG, LISTEN_FDS_START, clear_protocol_env, exec_shim, shim_command};
#[cfg(target_os = "linux")]
use spawn_linux::spawn;
#[cfg(target_os = "linux")]
pub use spawn_linux::{Child, ChildStderr, ChildStdin, ChildStdout};
#[cfg(not(target_os = "linux"))]
use spawn_portable::spawn;
#[cfg(not(target_os = "linux"))]
pub use spawn_portable::{Child, ChildStderr, ChildStdin, ChildStdout};
pub use sweep::{Escapee, LeftBy, Sweep, Swept, adopt_orphans, sweep, sweep_and_report};

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What this module has to tell the user, as typed values; the words are the listener's.
#[derive(Debug)]
pub enum Notice {
    /// Signalling a group failed for another reason than its being empty.
    CannotSignal { pgid: i32, error: Errno },
    /// reload could not become a subreaper: a server that daemonizes may outlive it.
    CannotAdopt(Errno),
    /// The guardian could not be started.
    GuardianNotStarted(io::Error),
    /// The guardian's pipe broke: the guardian is gone.
    GuardianGone(io::Error),
    /// What a sweep killed, by who left it running; never empty.
    Swept(Swept),
}

static LISTENER: OnceLock<fn(Notice)> = OnceLock::new();

/// Send every [`Notice`] to `listener` from now on; the first call wins. reload's `run` names
/// status's before anything starts. A callback rather than a return value, since some notices
/// come from where nothing can be returned (a [`ProcessGroup`] dropped, the guardian's pipe).
pub fn report_to(listener: fn(Notice)) {
    let _ = LISTENER.set(listener);
}

/// Tell the listener; with none (unit tests), the developer log.
fn report(notice: Notice) {
    if let Some(listener) = LISTENER.get() {
        listener(notice);
    } else {
        tracing::warn!(?notice, "a process notice with no listener");
    }
}

/// What a process group was started for. A process that leaves the group is reported as left
/// behind by it, and is only swept once the group itself has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Build,
    Post(String),
    App,
}

/// A process group reload started. Dropping it SIGKILLs whatever is left in it.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Pid,
    tag: u64,
}

impl ProcessGroup {
    pub fn id(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Send `signal` to every process in the group. `false` when the group is already empty.
    pub fn signal(&self, signal: Signal) -> bool {
        match killpg(self.pgid, signal) {
            Ok(()) => true,
            Err(Errno::ESRCH) => false,
            Err(error) => {
                report(Notice::CannotSignal {
                    pgid: self.pgid.as_raw(),
                    error,
                });
                false
            }
        }
    }

    /// Whether no live process is left in the group. Members that were adopted by reload (their
    /// parent in the group died first, as `sh` does on SIGTERM) are reaped here, since nobody
    /// else will: a zombie still counts as a member for the kernel.
    pub fn is_empty(&self) -> bool {
        let gone = || matches!(killpg(self.pgid, None), Err(Errno::ESRCH));
        // Reading /proc for zombies to reap only when the group still seems to hold someone:
        // most groups end with their leader, already reaped.
        gone() || {
            sweep::reap_adopted_zombies();
            gone()
        }
    }

    /// Wait until the group is empty. A group has no handle to wait on, but its last member
    /// is nearly always reload's child by then: a member whose parent in the group died first
    /// (the server under a `sh -c` that died of the same stop signal) is re-parented to reload,
    /// the subreaper, whose SIGCHLD then says it died. So each SIGCHLD wakes the check at once,
    /// and a poll (1 ms at first, then up to every 10 ms) covers a member whose parent is
    /// elsewhere. Cancel-safe.
    pub async fn emptied(&self) {
        // Listening before the first check: a SIGCHLD between the check and the wait still
        // wakes it.
        let mut exits = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        let mut pause = Duration::from_millis(1);
        while !self.is_empty() {
            match exits.as_mut() {
                Some(exits) => {
                    tokio::select! {
                        _ = exits.recv() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                None => tokio::time::sleep(pause).await,
            }
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        guard::forget(self.pgid.as_raw());
        sweep::ended(self.tag);
    }
}

/// How long a SIGKILLed process may take to die before reload stops waiting for it (one stuck
/// in the kernel, on a dead network mount, may never die).
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// End `group` for good: SIGKILL whatever is still in it, wait (at most [`KILL_GRACE`]) until
/// it is empty, so that nothing of it is mistaken for an escapee by the [`sweep`] that follows,
/// then drop it.
pub async fn end_group(group: ProcessGroup) {
    if group.signal(Signal::SIGKILL) {
        let _ = tokio::time::timeout(KILL_GRACE, group.emptied()).await;
    }
}

/// Spawn `command` as the leader of a new process group that dies with reload, marked with its
/// `origin`. `inherit` are descriptors the child keeps open (close-on-exec cleared in the child
/// only) at their own numbers: the `__exec` shim ([`shim_command`]) then places them at 3, 4,
/// .... On Linux the child is started the way posix_spawn starts one (a vfork-style clone, see
/// `spawn_linux`), with `PR_SET_PDEATHSIG(SIGKILL)`; the returned [`Child`] is SIGKILLed when
/// dropped before it exits. Call it from the main thread, within the runtime.
pub fn spawn_group(
    command: &mut Command,
    origin: Origin,
    inherit: &[RawFd],
) -> io::Result<(Child, ProcessGroup)> {
    let tag = sweep::mark(command);
    let child = spawn(command, inherit)?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before it was seen"))?;
    let pgid = i32::try_from(pid).map_err(io::Error::other)?;
    guard::register(pgid);
    sweep::started(tag, pid, origin);
    Ok((
        child,
        ProcessGroup {
            pgid: Pid::from_raw(pgid),
            tag,
        },
    ))
}

/// Give a std child `PR_SET_PDEATHSIG(SIGKILL)` through `pre_exec` (which makes std fork): for
/// [`output`], which runs once at start; [`spawn_group`] sets it without a fork.
#[cfg(target_os = "linux")]
fn set_parent_death_signal(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed. It makes two raw syscalls (prctl, getppid) and builds an io::Error from
    // an errno, which does not allocate.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // reload may have died between fork and prctl: then nobody would ever signal us.
            if nix::unistd::getppid() != parent {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// macOS has no parent-death signal; the guardian alone covers reload's sudden death there.
#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_command: &mut std::process::Command) {}

/// A close-on-exec duplicate of `fd` numbered at least `floor`.
pub fn duplicate_above(fd: &impl AsFd, floor: RawFd) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(floor))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Why `program` could not be executed, as users need to read it: a script whose `#!`
/// interpreter is missing fails with ENOENT, like a missing program, but the fix is elsewhere.
pub fn explain_exec_error(program: &std::path::Path, err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::NotFound
        && program.is_file()
        && let Some(interpreter) = shebang_interpreter(program)
        && !interpreter.exists()
    {
        return format!(
            "its first line (#!) names the interpreter `{}`, which does not exist\n  help: install \
             it, or fix the #! line of `{}`",
            interpreter.display(),
            program.display()
        );
    }
    err.to_string()
}

/// The interpreter a script's `#!` line names.
fn shebang_interpreter(script: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split_whitespace().next().map(std::path::PathBuf::from)
}

/// Describe how a process ended, as users read it: "exit 101", "SIGKILL".
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => Signal::try_from(signal)
            .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned()),
        (None, None) => "unknown status".to_owned(),
    }
}

/// Run a short-lived helper (`cargo metadata`) to completion and collect its output, as
/// `std::process::Command::output` does, but the way every process reload starts is run: in a
/// new process group, so a Ctrl-C in the terminal reaches reload alone, and on Linux with
/// `PR_SET_PDEATHSIG(SIGKILL)`, so it cannot outlive reload. It is not registered with the
/// guardian: it runs before the guardian starts, and it has no background children to leave.
/// Call it from the main thread only (the parent-death signal is tied to the forking thread).
pub fn output(command: &mut std::process::Command) -> io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    set_parent_death_signal(command);
    command.output()
}
