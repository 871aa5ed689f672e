//! Every process reload starts goes through here, and so does every signal it sends. This is the
//! one place with `unsafe`, `pre_exec`, process groups and parent-death signals.
//!
//! Invariants:
//! - each build and each server runs in its own new process group, so one `killpg` reaches the
//!   grandchildren a shell started in the background;
//! - a [`ProcessGroup`] kills its group when dropped, so no code path can forget one;
//! - every group is known to the guardian process ([`guard`]), which kills it if reload itself
//!   dies without cleaning up (SIGKILL, OOM killer, a panic that aborts);
//! - children are spawned from the main thread only: the parent-death signal fires when the
//!   *thread* that forked exits, and the main thread lives as long as reload does.

pub mod guard;

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A process group reload started. Dropping it SIGKILLs whatever is left in it.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Pid,
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
            Err(err) => {
                crate::status::warning(&format!(
                    "cannot signal process group {}: {err}",
                    self.pgid
                ));
                false
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        guard::forget(self.pgid.as_raw());
        let leader = u32::try_from(self.pgid.as_raw()).unwrap_or_default();
        spawned().retain(|pid| *pid != leader);
    }
}

/// Environment variables of the socket-activation and notify protocols. Stale values in reload's
/// own environment must never reach a server or a build.
const PROTOCOL_VARIABLES: &[&str] = &[
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// Remove [`PROTOCOL_VARIABLES`] from what `command` inherits; a server then gets fresh ones.
pub fn clear_protocol_env(command: &mut Command) {
    for variable in PROTOCOL_VARIABLES {
        command.env_remove(variable);
    }
}

/// The first file descriptor of the socket-activation protocol (after stdin, stdout, stderr).
pub const LISTEN_FDS_START: RawFd = 3;

/// Make reload the parent of its descendants' orphans (Linux: PR_SET_CHILD_SUBREAPER). A process
/// that leaves its server's group (setsid, a daemonizing server) is then re-parented to reload
/// instead of init when its parent exits, so [`kill_adopted`] can still find and stop it.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        crate::status::warning(&format!(
            "cannot adopt orphaned processes ({err}): a server that daemonizes may outlive reload"
        ));
    }
}

/// Children reload spawned itself (leaders of live [`ProcessGroup`]s): never "adopted".
static SPAWNED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn spawned() -> std::sync::MutexGuard<'static, Vec<u32>> {
    SPAWNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SIGKILL and reap every child of reload that it did not spawn itself (nor the guardian):
/// those were adopted (see [`adopt_orphans`]). Returns how many there were. Linux only:
/// elsewhere adoption does not exist and this finds nothing.
pub fn kill_adopted() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut adopted: Vec<i32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|pid| !spawned().contains(pid) && Some(*pid) != guard::pid())
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect();
    adopted.sort_unstable();
    adopted.dedup();
    for &pid in &adopted {
        let pid = Pid::from_raw(pid);
        // A session leader leads its own group too: take the group, then the process.
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    // Adopted processes are not tokio's: nobody else will reap them. SIGKILL is quick, but a
    // process stuck in the kernel (a dead NFS mount) must not hang reload: give up after 2 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for &pid in &adopted {
        let pid = Pid::from_raw(pid);
        while let Ok(nix::sys::wait::WaitStatus::StillAlive) =
            nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            if std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    adopted.len()
}

/// Spawn `command` as the leader of a new process group that dies with reload. `inherit` are
/// placed at fds 3, 4, ... in the child, without close-on-exec; they must all be numbered above
/// `3 + inherit.len()` so that placing one never overwrites another (see `supervise::listen`).
pub fn spawn_group(command: &mut Command, inherit: &[RawFd]) -> io::Result<(Child, ProcessGroup)> {
    command.process_group(0).kill_on_drop(true);
    set_parent_death_signal(command);
    if !inherit.is_empty() {
        let top = LISTEN_FDS_START + RawFd::try_from(inherit.len()).map_err(io::Error::other)?;
        if inherit.iter().any(|fd| *fd < top) {
            return Err(io::Error::other(
                "inherited descriptors overlap their targets",
            ));
        }
        let inherit = inherit.to_vec();
        // SAFETY: runs in the forked child before exec: only dup2, an async-signal-safe syscall,
        // over a Vec allocated before the fork and only read here. dup2 leaves the new
        // descriptor without FD_CLOEXEC, which is exactly what the server must inherit; the
        // sources stay close-on-exec, so each socket arrives exactly once.
        unsafe {
            command.pre_exec(move || {
                for (target, source) in (LISTEN_FDS_START..).zip(&inherit) {
                    if nix::libc::dup2(*source, target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before it was seen"))?;
    let pid = i32::try_from(pid).map_err(io::Error::other)?;
    guard::register(pid);
    spawned().push(u32::try_from(pid).unwrap_or_default());
    Ok((
        child,
        ProcessGroup {
            pgid: Pid::from_raw(pid),
        },
    ))
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(command: &mut Command) {
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
fn set_parent_death_signal(_command: &mut Command) {}

/// A close-on-exec duplicate of `fd` numbered at least `floor`.
pub fn duplicate_above(fd: &impl AsFd, floor: RawFd) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(floor))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The local time of day (hours, minutes, seconds), for status-line timestamps.
pub fn local_time_of_day() -> (u32, u32, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let now = nix::libc::time_t::try_from(now).unwrap_or_default();
    // SAFETY: localtime_r is the thread-safe variant: it writes only into the `tm` we own, which
    // is plain data for which all-zero bytes are a valid value.
    let tm = unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        nix::libc::localtime_r(&raw const now, &raw mut tm);
        tm
    };
    let part = |v: i32| u32::try_from(v).unwrap_or_default();
    (part(tm.tm_hour), part(tm.tm_min), part(tm.tm_sec))
}

/// The hidden argument that makes the reload binary a one-step shim for socket activation.
pub const EXEC_ARG: &str = "__exec";

/// `reload __exec PROGRAM ARGS...`: set `LISTEN_PID` to our own pid, then exec PROGRAM, which
/// keeps the pid. The socket-activation protocol requires LISTEN_PID to be the server's pid
/// (go-systemd and libsystemd ignore the sockets otherwise), and no parent can know a child's
/// pid before it exists, nor set an environment variable between fork and exec safely.
pub fn exec_shim(mut args: impl Iterator<Item = std::ffi::OsString>) -> u8 {
    use std::os::unix::process::CommandExt;
    let Some(program) = args.next() else {
        eprintln!("reload {EXEC_ARG}: no program given");
        return 2;
    };
    let err = std::process::Command::new(&program)
        .args(args)
        .env("LISTEN_PID", std::process::id().to_string())
        .exec();
    eprintln!(
        "reload: cannot run `{}`: {err}",
        std::path::Path::new(&program).display()
    );
    127
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
    #[cfg(target_os = "linux")]
    {
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // calls are allowed. It makes two raw syscalls (prctl, getppid) and builds an io::Error
        // from an errno, which does not allocate. Same reasoning as `set_parent_death_signal`,
        // which does this for tokio's Command.
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
    command.output()
}
