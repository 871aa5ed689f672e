//! The guardian: a tiny helper process (`reload __guard`) that outlives reload by a moment.
//!
//! reload tells it, over a pipe, which process groups it has started ("+PGID") and reaped
//! ("-PGID"). When the pipe closes, reload is gone, whatever killed it, and the guardian SIGKILLs
//! every group still listed, then exits. The parent-death signal alone cannot do this: it only
//! reaches the direct child, not the grandchildren a shell started in the background.
//!
//! The guardian runs in its own process group so that Ctrl-C in the terminal does not reach it,
//! and ignores SIGINT, SIGTERM and SIGHUP: it must be the last to go.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

use nix::sys::signal::{SigHandler, Signal, killpg, signal};
use nix::unistd::Pid;

use super::{Notice, report};

/// The hidden argument that turns the reload binary into the guardian.
pub const GUARD_ARG: &str = "__guard";

static PIPE: Mutex<Option<ChildStdin>> = Mutex::new(None);
static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The guardian's pid, once started.
pub(super) fn pid() -> Option<u32> {
    PID.get().copied()
}

/// Start the guardian. Failing to start it is not fatal: children still get a parent-death
/// signal, so only background grandchildren could outlive a SIGKILLed reload.
pub fn start() {
    let spawned = std::env::current_exe().and_then(|exe| {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg(GUARD_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
    });
    match spawned {
        // The pipe's write end is close-on-exec (std opens it so), so only reload holds it and
        // the guardian sees end-of-file exactly when reload is gone.
        Ok(mut child) => {
            let _ = PID.set(child.id());
            *lock() = child.stdin.take();
        }
        Err(err) => report(Notice::GuardianNotStarted(err)),
    }
}

pub(super) fn register(pgid: i32) {
    send(&format!("+{pgid}\n"));
}

pub(super) fn forget(pgid: i32) {
    send(&format!("-{pgid}\n"));
}

fn send(line: &str) {
    if let Some(pipe) = lock().as_mut()
        && let Err(err) = pipe.write_all(line.as_bytes())
    {
        report(Notice::GuardianGone(err));
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<ChildStdin>> {
    PIPE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The guardian's whole life. Returns the exit code.
pub fn main() -> u8 {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: setting a signal to SIG_IGN installs no handler code, so nothing can run
        // concurrently with the rest of this single-threaded program.
        if let Err(err) = unsafe { signal(sig, SigHandler::SigIgn) } {
            eprintln!("reload guardian: cannot ignore {sig}: {err}");
        }
    }
    let mut groups = HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (add, number) = line.split_at(1.min(line.len()));
        let Ok(pgid) = number.parse::<i32>() else {
            continue;
        };
        if add == "+" {
            groups.insert(pgid);
        } else {
            groups.remove(&pgid);
        }
    }
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    0
}
