//! Other Unixes (macOS): tokio's Command, which forks when a `pre_exec` hook is set. There is no
//! parent-death signal here (the guardian alone covers reload's sudden death), so the hook is
//! only needed, and the fork only paid, when descriptors are inherited.

use std::io;
use std::os::fd::RawFd;
use std::process::ExitStatus;

use super::command::{Command, Stdio};

/// The write end of a child's stdin pipe.
pub type ChildStdin = tokio::net::unix::pipe::Sender;
/// The read end of a child's stdout pipe.
pub type ChildStdout = tokio::net::unix::pipe::Receiver;
/// The read end of a child's stderr pipe.
pub type ChildStderr = tokio::net::unix::pipe::Receiver;

/// A process started by [`spawn`]; SIGKILLed when dropped before it has exited.
#[derive(Debug)]
pub struct Child {
    inner: tokio::process::Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

impl Child {
    pub fn id(&self) -> Option<u32> {
        self.inner.id()
    }

    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.inner.wait().await
    }

    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }
}

fn std_stdio(stdio: Stdio) -> std::process::Stdio {
    match stdio {
        Stdio::Inherit => std::process::Stdio::inherit(),
        Stdio::Null => std::process::Stdio::null(),
        Stdio::Piped => std::process::Stdio::piped(),
    }
}

/// Start `command` as the leader of a new process group, the descriptors `inherit` kept open
/// across the exec.
pub(super) fn spawn(command: &Command, inherit: &[RawFd]) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // `Command` keeps its std command for its getters; a copy is what gets spawned.
    let source = command.as_std();
    let mut spawned = std::process::Command::new(source.get_program());
    spawned.args(source.get_args());
    if command.env_cleared {
        spawned.env_clear();
    }
    for (key, value) in source.get_envs() {
        match value {
            Some(value) => spawned.env(key, value),
            None => spawned.env_remove(key),
        };
    }
    if let Some(dir) = source.get_current_dir() {
        spawned.current_dir(dir);
    }
    spawned
        .stdin(std_stdio(command.stdin))
        .stdout(std_stdio(command.stdout))
        .stderr(std_stdio(command.stderr))
        .process_group(0);
    if !inherit.is_empty() {
        let inherit = inherit.to_vec();
        // SAFETY: runs in the forked child before exec: only fcntl(F_SETFD), an
        // async-signal-safe syscall, over a Vec allocated before the fork and only read here.
        // It touches no descriptor but the ones given.
        unsafe {
            spawned.pre_exec(move || {
                for fd in &inherit {
                    if nix::libc::fcntl(*fd, nix::libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    if let Some((soft, hard)) = super::limits::given() {
        // SAFETY: runs in the forked child before exec: only setrlimit, an async-signal-safe
        // syscall, on values copied before the fork. Lowering a soft limit cannot fail; if it
        // did, the program would only get more descriptors.
        unsafe {
            spawned.pre_exec(move || {
                let _ = nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    soft,
                    hard,
                );
                Ok(())
            });
        }
    }
    let mut inner = tokio::process::Command::from(spawned)
        .kill_on_drop(true)
        .spawn()?;
    let stdin = inner
        .stdin
        .take()
        .map(tokio::process::ChildStdin::into_owned_fd);
    let stdout = inner
        .stdout
        .take()
        .map(tokio::process::ChildStdout::into_owned_fd);
    let stderr = inner
        .stderr
        .take()
        .map(tokio::process::ChildStderr::into_owned_fd);
    Ok(Child {
        stdin: stdin
            .transpose()?
            .map(ChildStdin::from_owned_fd)
            .transpose()?,
        stdout: stdout
            .transpose()?
            .map(ChildStdout::from_owned_fd)
            .transpose()?,
        stderr: stderr
            .transpose()?
            .map(ChildStderr::from_owned_fd)
            .transpose()?,
        inner,
    })
}
