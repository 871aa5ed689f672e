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

mod command;
pub mod free_ports;
pub mod guard;
pub mod limits;
mod path;
pub mod ports;
#[cfg(target_os = "linux")]
mod spawn_linux;
#[cfg(not(target_os = "linux"))]
mod spawn_portable;

pub use command::{Command, Stdio};
pub use path::{ProgramNotFound, find_program};
#[cfg(target_os = "linux")]
use spawn_linux::spawn;
#[cfg(target_os = "linux")]
pub use spawn_linux::{Child, ChildStderr, ChildStdin, ChildStdout};
#[cfg(not(target_os = "linux"))]
use spawn_portable::spawn;
#[cfg(not(target_os = "linux"))]
pub use spawn_portable::{Child, ChildStderr, ChildStdin, ChildStdout};

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

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
            Err(err) => {
                crate::status::warning(&format!(
                    "cannot signal process group {}: {err}",
                    self.pgid
                ));
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
            reap_adopted_zombies();
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
        registry().end(self.tag);
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
/// instead of init when its parent exits, so [`sweep`] can still find and stop it.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        crate::status::warning(&format!(
            "cannot adopt orphaned processes ({err}): a server that daemonizes may outlive reload"
        ));
    }
}

/// The environment variable that marks every process reload starts (and, by inheritance, its
/// descendants) with the group it was started in: `<reload's pid>.<tag>`. A process that left its
/// group keeps it, which is how an escapee is attributed to the build, post command or app it
/// came from, and why one is swept only once that group has ended.
const ORIGIN_VARIABLE: &str = "RELOAD_ORIGIN";

/// One group reload started.
struct Group {
    /// Its leader, whose pid is the group's id.
    leader: u32,
    /// Who it is, for messages: "the build", "app (pid 123)", "post command `x`".
    who: String,
}

impl Group {
    fn holds(&self, child: &ChildInfo) -> bool {
        i32::try_from(self.leader) == Ok(child.pgid)
    }
}

/// Groups alive and ended, by tag.
struct Registry {
    next_tag: u64,
    live: BTreeMap<u64, Group>,
    /// For attributing what ended groups left behind; the oldest are forgotten.
    ended: BTreeMap<u64, Group>,
}

impl Registry {
    fn end(&mut self, tag: u64) {
        if let Some(group) = self.live.remove(&tag) {
            self.ended.insert(tag, group);
            while self.ended.len() > 1024 {
                self.ended.pop_first();
            }
        }
    }

    /// Leaders of live groups are tokio's children: never reaped or swept here.
    fn is_leader(&self, pid: u32) -> bool {
        self.live.values().any(|group| group.leader == pid)
    }

    /// What a sweep of `scope` does with `child`, one of reload's adopted children.
    fn verdict(&self, child: &ChildInfo, scope: Sweep) -> Verdict {
        if child.zombie || self.live.values().any(|group| group.holds(child)) {
            return Verdict::Keep;
        }
        if self.ended.values().any(|group| group.holds(child)) {
            return Verdict::KillQuietly;
        }
        let who = |group: &Group| Verdict::Escaped(group.who.clone());
        match origin_tag(child.pid) {
            // Its group still runs (a server's helper daemon): it goes with it.
            Some(tag) if scope == Sweep::Ended && self.live.contains_key(&tag) => Verdict::Keep,
            Some(tag) => self
                .live
                .get(&tag)
                .or_else(|| self.ended.get(&tag))
                .map_or_else(|| Verdict::Escaped("an earlier process".to_owned()), who),
            // No mark (its environment was replaced): only when nothing of ours runs can it not
            // belong to a live group.
            None if scope == Sweep::Ended && !self.live.is_empty() => Verdict::Keep,
            None => Verdict::Escaped("an unknown process".to_owned()),
        }
    }
}

/// What a [`sweep`] does with one adopted process.
enum Verdict {
    /// A zombie (reaped, not counted), a member of a live group, or an escapee whose group
    /// still runs.
    Keep,
    /// Still in a group that was killed but did not die within the grace period: not an
    /// escapee, but it must go all the same.
    KillQuietly,
    /// Left a group; killed and reported as left behind by `who`.
    Escaped(String),
}

static REGISTRY: std::sync::Mutex<Registry> = std::sync::Mutex::new(Registry {
    next_tag: 0,
    live: BTreeMap::new(),
    ended: BTreeMap::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which escaped processes a [`sweep`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Those whose group has ended: the build, post command or app they left is gone.
    Ended,
    /// All of them: reload is exiting.
    All,
}

/// What the kernel says of one of reload's children.
struct ChildInfo {
    pid: i32,
    zombie: bool,
    pgid: i32,
    name: String,
}

/// Every child of reload (all threads') that `wanted` accepts by pid, with its state. Linux
/// only (`/proc/self/task`); elsewhere reload adopts nothing and this finds nothing. The filter
/// comes before each child's `/proc/PID/stat` is read: a sweep runs several times per restart,
/// and the children it never touches (the guardian, the servers and builds running) are most.
fn children(wanted: impl Fn(i32) -> bool) -> Vec<ChildInfo> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter(|&pid| wanted(pid))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (name) state ppid pgrp ...`; the name may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(').map_or("", |(_, n)| n).to_owned();
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let pgid = fields.nth(1)?.parse().ok()?;
            Some(ChildInfo {
                pid,
                zombie: matches!(state, "Z" | "X"),
                pgid,
                name,
            })
        })
        .collect()
}

/// Children reload did not spawn itself (nor the guardian): adopted, since reload is a
/// subreaper (see [`adopt_orphans`]).
fn adopted() -> Vec<ChildInfo> {
    let guardian = guard::pid();
    let registry = registry();
    children(|pid| {
        let pid = u32::try_from(pid).unwrap_or_default();
        !registry.is_leader(pid) && Some(pid) != guardian
    })
}

/// Reap adopted children that have exited. They are not tokio's: nobody else will.
fn reap_adopted_zombies() {
    let zombies: Vec<_> = adopted().into_iter().filter(|child| child.zombie).collect();
    reap_zombies(&zombies);
}

fn reap_zombies(zombies: &[ChildInfo]) {
    for child in zombies {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(child.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
}

/// The group `pid` was started in, from its [`ORIGIN_VARIABLE`]: `None` when it has none, or
/// one from another reload.
fn origin_tag(pid: i32) -> Option<u64> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{ORIGIN_VARIABLE}={}.", std::process::id());
    environ
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .and_then(|tag| std::str::from_utf8(tag).ok()?.parse().ok())
}

/// SIGKILL and reap every process that left one of reload's groups (setsid, a daemonizing
/// server) and was adopted by reload (see [`adopt_orphans`]), whose own group has ended (or
/// all of them, with [`Sweep::All`]); see [`Registry::verdict`]. Repeats until a round finds
/// nothing: killing an escapee re-parents the escapees it started in turn. Returns what was
/// killed (pid and command name), by who left it.
fn sweep(scope: Sweep) -> BTreeMap<String, Vec<(i32, String)>> {
    let mut killed: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    // A fork bomb must not keep reload here forever.
    for _ in 0..64 {
        let mut round = Vec::new();
        // One read of /proc a round: the zombies are reaped, the rest judged.
        let (zombies, live): (Vec<_>, Vec<_>) = adopted().into_iter().partition(|c| c.zombie);
        reap_zombies(&zombies);
        for child in live {
            let verdict = registry().verdict(&child, scope);
            let pid = Pid::from_raw(child.pid);
            match verdict {
                Verdict::Keep => continue,
                Verdict::KillQuietly => {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                }
                Verdict::Escaped(who) => {
                    // A session leader leads its own group too: take the group, then the process.
                    let _ = killpg(pid, Signal::SIGKILL);
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    killed.entry(who).or_default().push((child.pid, child.name));
                }
            }
            round.push(child.pid);
        }
        if round.is_empty() {
            break;
        }
        reap(&round);
    }
    killed
}

/// Wait for SIGKILLed adopted processes to exit, and reap them. SIGKILL is quick, but a process
/// stuck in the kernel (a dead NFS mount) must not hang reload: give up after 2 s.
fn reap(pids: &[i32]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for &pid in pids {
        let pid = Pid::from_raw(pid);
        while let Ok(nix::sys::wait::WaitStatus::StillAlive) =
            nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            if std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// [`sweep`], and tell the user what was killed and where it came from.
pub fn sweep_and_report(scope: Sweep) {
    for (who, processes) in sweep(scope) {
        let count = processes.len();
        let list: Vec<String> = processes
            .iter()
            .map(|(pid, name)| format!("{pid} {name}"))
            .collect();
        crate::status::info(&format!(
            "killed {count} process{} left running outside its process group by {who}: {}",
            if count == 1 { "" } else { "es" },
            list.join(", ")
        ));
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
    let tag = {
        let mut registry = registry();
        registry.next_tag += 1;
        registry.next_tag
    };
    command.env(ORIGIN_VARIABLE, format!("{}.{tag}", std::process::id()));
    let child = spawn(command, inherit)?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before it was seen"))?;
    let pgid = i32::try_from(pid).map_err(io::Error::other)?;
    guard::register(pgid);
    let who = match origin {
        Origin::Build => "the build".to_owned(),
        Origin::Post(command) => format!("post command `{command}`"),
        Origin::App => format!("app (pid {pid})"),
    };
    registry().live.insert(tag, Group { leader: pid, who });
    Ok((
        child,
        ProcessGroup {
            pgid: Pid::from_raw(pgid),
            tag,
        },
    ))
}

/// `reload __exec FDS PROGRAM ARGS...`: the command that starts `program` with the descriptors
/// `inherit` (pass the same to [`spawn_group`]) placed at 3, 4, ... and LISTEN_PID set to its
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
