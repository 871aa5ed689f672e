//! Socket activation: the `__exec` shim that hands a server the `--listen` sockets, and the
//! protocol's environment variables, which no stale value may reach a child through.
//!
//! With `--listen`, a server is started as `reload __exec FDS PROGRAM ARGS...`. The protocol
//! wants `LISTEN_PID` to be the server's own pid (go-systemd, libsystemd and listenfd ignore the
//! sockets otherwise): the parent cannot know that pid before the spawn, and between fork and
//! exec only async-signal-safe calls are allowed, so the shim sets it after an exec, as ordinary
//! code, and execs the program, which keeps the pid.

use std::io;
use std::os::fd::RawFd;

use super::{Command, explain_exec_error};

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

/// `reload __exec FDS PROGRAM ARGS...`: the command that starts `program` with the descriptors
/// `inherit` (pass the same to [`super::spawn_group`]) placed at 3, 4, ... and LISTEN_PID set to its
/// own pid. See [`exec_shim`].
pub fn shim_command(program: &std::path::Path, inherit: &[RawFd]) -> io::Result<Command> {
    let exe = std::env::current_exe()?;
    if !exe.exists() {
        return Err(io::Error::other(format!(
            "reload's own binary `{}` was removed or replaced while reload ran (reinstalled?); \
             restart reload",
            exe.display()
        )));
    }
    let fds: Vec<String> = inherit.iter().map(ToString::to_string).collect();
    let mut command = Command::new(exe);
    command.arg(EXEC_ARG).arg(fds.join(",")).arg(program);
    Ok(command)
}

/// The hidden argument that makes the reload binary a one-step shim for socket activation.
pub const EXEC_ARG: &str = "__exec";

/// `reload __exec FDS PROGRAM ARGS...`: place the descriptors FDS (comma-separated, inherited
/// from reload) at 3, 4, ..., set `LISTEN_PID` to our own pid, then exec PROGRAM, which keeps
/// the pid. The socket-activation protocol requires LISTEN_PID to be the server's pid
/// (go-systemd and libsystemd ignore the sockets otherwise), and no parent can know a child's
/// pid before it exists, nor set an environment variable between fork and exec safely. Placing
/// the descriptors here, after an exec, is ordinary code rather than work between fork and exec.
pub fn exec_shim(mut args: impl Iterator<Item = std::ffi::OsString>) -> u8 {
    use std::os::unix::process::CommandExt;
    let (Some(fds), Some(program)) = (args.next(), args.next()) else {
        eprintln!("reload {EXEC_ARG}: usage: reload {EXEC_ARG} FDS PROGRAM [ARGS...]");
        return 2;
    };
    let sources: Option<Vec<RawFd>> = fds
        .to_string_lossy()
        .split(',')
        .filter(|fd| !fd.is_empty())
        .map(|fd| fd.parse().ok())
        .collect();
    let Some(sources) = sources else {
        eprintln!("reload {EXEC_ARG}: bad descriptor list `{}`", fds.display());
        return 2;
    };
    let top = LISTEN_FDS_START + RawFd::try_from(sources.len()).unwrap_or(RawFd::MAX);
    if sources.iter().any(|fd| *fd < top) {
        eprintln!("reload {EXEC_ARG}: inherited descriptors overlap their targets");
        return 2;
    }
    for (target, source) in (LISTEN_FDS_START..).zip(&sources) {
        // SAFETY: plain syscalls on descriptors this process inherited for exactly this
        // purpose; nothing else in the shim uses them. dup2 leaves the target without
        // FD_CLOEXEC, which is what the server must inherit; the sources are closed after, so
        // each socket arrives exactly once.
        let placed = unsafe { nix::libc::dup2(*source, target) };
        if placed < 0 {
            eprintln!(
                "reload {EXEC_ARG}: cannot place descriptor {source} at {target}: {}",
                io::Error::last_os_error()
            );
            return 127;
        }
    }
    for source in &sources {
        // SAFETY: see above; the source was duplicated, and nothing holds it as an OwnedFd.
        unsafe { nix::libc::close(*source) };
    }
    let err = std::process::Command::new(&program)
        .args(args)
        .env("LISTEN_PID", std::process::id().to_string())
        .exec();
    eprintln!(
        "reload: cannot run `{}`: {}",
        std::path::Path::new(&program).display(),
        explain_exec_error(std::path::Path::new(&program), &err)
    );
    127
}
