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
                tracing::warn!(pgid = self.pgid.as_raw(), %err, "cannot signal process group");
                false
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        guard::forget(self.pgid.as_raw());
    }
}

/// Spawn `command` as the leader of a new process group that dies with reload.
pub fn spawn_group(command: &mut Command) -> io::Result<(Child, ProcessGroup)> {
    command.process_group(0).kill_on_drop(true);
    set_parent_death_signal(command);
    let child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before it was seen"))?;
    let pid = i32::try_from(pid).map_err(io::Error::other)?;
    guard::register(pid);
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
