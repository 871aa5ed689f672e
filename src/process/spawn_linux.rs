//! Linux: start a process the way glibc's `posix_spawn` does, plus what `posix_spawn` cannot
//! do (the parent-death signal).
//!
//! A `fork` copies reload's page tables, and std falls back to it as soon as a `pre_exec` hook
//! is set, which `PR_SET_PDEATHSIG` needs. Here the child is a `clone(CLONE_VM | CLONE_VFORK)`
//! on a small stack of its own: it shares reload's memory, the calling thread waits until it
//! has exec'd or exited, and it only makes raw system calls (`sigaction`, `sigprocmask`,
//! `setpgid`, `prctl`, `getppid`, `dup2`, `fcntl`, `chdir`, `execve`, `_exit`) over data the
//! parent prepared: the resolved program, argv and envp as C strings, the descriptors to place.
//! A failure's step and errno are written to the shared [`Plan`], which the parent reads once
//! the clone returns.
//!
//! The parent waits for the child through a pidfd registered with tokio, then `waitpid`s that
//! pid only: tokio reaps its own children by pid and the sweep (see `super::sweep`) has rules of
//! its own, so nothing here may ever `waitpid(-1)`.

use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::libc;
use tokio::io::unix::AsyncFd;

use super::command::{Command, Stdio};

/// The write end of a child's stdin pipe.
pub type ChildStdin = tokio::net::unix::pipe::Sender;
/// The read end of a child's stdout pipe.
pub type ChildStdout = tokio::net::unix::pipe::Receiver;
/// The read end of a child's stderr pipe.
pub type ChildStderr = tokio::net::unix::pipe::Receiver;

/// The child's stack. It only runs [`child_main`]: a few frames of syscall wrappers. glibc sizes
/// posix_spawn's at 32 KiB plus the argument vector; this one is twice that, over a guard page.
const STACK_SIZE: usize = 64 * 1024;

/// Where a script without a `#!` line is run, as execvp (std's fork path) does on ENOEXEC.
const SHELL: &std::ffi::CStr = c"/bin/sh";

/// The step of the child's setup that failed, as reported through [`Plan::step`].
const STEP_EXEC: i32 = 1;
const STEP_SIGNALS: i32 = 2;
const STEP_GROUP: i32 = 3;
const STEP_DEATH_SIGNAL: i32 = 4;
const STEP_PARENT_GONE: i32 = 5;
const STEP_STDIO: i32 = 6;
const STEP_INHERIT: i32 = 7;
const STEP_DIRECTORY: i32 = 8;

/// Everything the child needs, prepared by the parent; the child only reads it, except for the
/// two atomics through which it reports a failure. Every pointer points into buffers the parent
/// keeps alive until the clone has returned.
struct Plan {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    /// `/bin/sh PROGRAM ARGS...`, for a program the kernel does not recognise (ENOEXEC).
    shell_argv: *const *const c_char,
    /// The directory to enter, or null.
    directory: *const c_char,
    /// What to place at 0, 1 and 2 (all at 3 or above, so placing one never overwrites
    /// another), or -1 to leave reload's own stream.
    stdio: [RawFd; 3],
    /// Descriptors whose close-on-exec flag is cleared.
    inherit: *const RawFd,
    inherit_len: usize,
    /// reload's pid: the child checks that its parent is still this process after setting the
    /// parent-death signal, which would never fire if reload had died just before.
    parent: libc::pid_t,
    /// The highest signal number, for resetting every handler.
    last_signal: c_int,
    /// `SIG_DFL` with an empty mask and no flags.
    default_action: libc::sigaction,
    empty_mask: libc::sigset_t,
    /// The descriptor limit reload was started with, when it raised its own (see `limits`).
    nofile: Option<libc::rlimit>,
    /// The failed step (`STEP_*`), 0 when none.
    step: AtomicI32,
    errno: AtomicI32,
}

/// A process started by [`spawn`]. Dropping it before it has been reaped SIGKILLs it (as tokio's
/// `kill_on_drop` does) and reaps it in the background.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    /// Readable once the process has exited; `None` on kernels before 5.3, where `wait` polls.
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// The pid, until the process has been reaped (as tokio's `Child::id`).
    pub fn id(&self) -> Option<u32> {
        if self.status.is_some() {
            return None;
        }
        u32::try_from(self.pid).ok()
    }

    /// Wait until the process exits, and reap it. Cancel-safe; after it has returned it returns
    /// the same status again.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if let Some(pidfd) = &self.pidfd {
                // Readiness is cleared before the next try_wait: an exit after that check
                // makes the pidfd readable again.
                pidfd.readable().await?.clear_ready();
            } else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(10));
            }
        }
    }

    /// The exit status if the process has exited (and reap it), without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = reap(self.pid)?;
        }
        Ok(self.status)
    }

    /// SIGKILL the process, through the pidfd when there is one, which cannot reach another
    /// process that reused the pid.
    fn kill(&self) {
        match &self.pidfd {
            // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo.
            Some(pidfd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.get_ref().as_raw_fd(),
                    libc::SIGKILL,
                    ptr::null::<libc::siginfo_t>(),
                    0,
                );
            },
            // SAFETY: kill on our own child, not yet reaped by us (try_wait found it running),
            // so its pid cannot have been reused.
            None => unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            },
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !matches!(self.try_wait(), Ok(None)) {
            return;
        }
        self.kill();
        if !matches!(self.try_wait(), Ok(None)) {
            return;
        }
        // It takes a moment to die. Reap it from the runtime, so that no zombie is left; without
        // a runtime, the sweep reaps it once its group has ended (it is no leader of a live one).
        if let (Some(pidfd), Ok(runtime)) =
            (self.pidfd.take(), tokio::runtime::Handle::try_current())
        {
            let pid = self.pid;
            // Only reaps, and holds no Child: a runtime shutting down that drops this task
            // unrun cannot make it kill or spawn again.
            runtime.spawn(async move {
                while let Ok(None) = reap(pid) {
                    match pidfd.readable().await {
                        Ok(mut ready) => ready.clear_ready(),
                        Err(_) => return,
                    }
                }
            });
        }
    }
}

/// Reap `pid`, one of our own children, if it has exited.
fn reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut raw = 0;
    loop {
        // SAFETY: waitpid on our own child's pid, writing only into `raw`.
        let reaped = unsafe { libc::waitpid(pid, &raw mut raw, libc::WNOHANG) };
        if reaped == 0 {
            return Ok(None);
        }
        if reaped == pid {
            return Ok(Some(ExitStatus::from_raw(raw)));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::new(
                err.kind(),
                format!("cannot wait for process {pid}: {err}"),
            ));
        }
    }
}

/// Start `command` as the leader of a new process group with `PR_SET_PDEATHSIG(SIGKILL)`, the
/// descriptors `inherit` kept open across the exec. Call it from the main thread only (the
/// parent-death signal is tied to the thread that clones) and within the tokio runtime (the
/// pidfd and the pipes are registered with it).
pub(super) fn spawn(command: &Command, inherit: &[RawFd]) -> io::Result<Child> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "a process can only be started from within reload's runtime",
        ));
    }
    let strings = ExecStrings::of(command)?;
    let arrays = strings.arrays();
    let streams = Streams::open(command)?;
    let stack = Stack::new()?;
    let plan = Plan::new(&strings, &arrays, &streams, inherit);
    let pid = clone_child(&plan, &stack)?;
    // The child has exec'd or exited: its ends of the pipes and its stack are no longer used.
    drop(stack);
    let Streams {
        child: child_ends,
        stdin,
        stdout,
        stderr,
    } = streams;
    drop(child_ends);

    let step = plan.step.load(Ordering::Acquire);
    if step != 0 {
        reap_failed(pid);
        return Err(step_error(
            step,
            plan.errno.load(Ordering::Acquire),
            command.as_std().get_current_dir(),
        ));
    }
    let mut child = Child {
        pid,
        pidfd: None,
        status: None,
        stdin: None,
        stdout: None,
        stderr: None,
    };
    // From here on, dropping `child` on an error kills and reaps the process.
    child.pidfd = match pidfd_open(pid) {
        // SAFETY: an OwnedFd stays open, and is the same descriptor, until the AsyncFd drops it.
        Ok(pidfd) => Some(
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
                .map_err(|err| err.into_parts().1)?,
        ),
        // Kernels before 5.3: `wait` polls instead.
        Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => None,
        Err(err) => return Err(io::Error::new(err.kind(), format!("pidfd_open: {err}"))),
    };
    child.stdin = stdin.map(ChildStdin::from_owned_fd).transpose()?;
    child.stdout = stdout.map(ChildStdout::from_owned_fd).transpose()?;
    child.stderr = stderr.map(ChildStderr::from_owned_fd).transpose()?;
    Ok(child)
}

/// What exec takes, as C strings made in the parent: the resolved program, argv, envp and the
/// directory to enter.
struct ExecStrings {
    program: CString,
    args: Vec<CString>,
    environment: Vec<CString>,
    directory: Option<CString>,
}

/// The null-terminated pointer arrays exec takes, pointing into an [`ExecStrings`], which must
/// outlive them.
struct ExecArrays {
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    /// `/bin/sh PROGRAM ARGS...`, for a program the kernel does not recognise (ENOEXEC).
    shell_argv: Vec<*const c_char>,
}

impl ExecStrings {
    fn of(command: &Command) -> io::Result<ExecStrings> {
        let environment = command.environment();
        let program = resolve(command, &environment)?;
        let program = c_string(program.as_os_str())?;
        let std = command.as_std();
        let args = std::iter::once(std.get_program())
            .chain(std.get_args())
            .map(c_string)
            .collect::<io::Result<Vec<_>>>()?;
        let environment = environment
            .into_iter()
            .map(|(key, value)| {
                let mut entry = key;
                entry.push("=");
                entry.push(value);
                c_string(&entry)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let directory = std.get_current_dir().map(|dir| c_string(dir.as_os_str()));
        Ok(ExecStrings {
            program,
            args,
            environment,
            directory: directory.transpose()?,
        })
    }

    fn arrays(&self) -> ExecArrays {
        ExecArrays {
            argv: pointers(self.args.iter().map(|arg| arg.as_ptr())),
            envp: pointers(self.environment.iter().map(|entry| entry.as_ptr())),
            shell_argv: pointers(
                [SHELL.as_ptr(), self.program.as_ptr()]
                    .into_iter()
                    .chain(self.args.iter().skip(1).map(|arg| arg.as_ptr())),
            ),
        }
    }
}

impl Plan {
    /// The plan over buffers the caller keeps alive until the clone has returned.
    fn new(
        strings: &ExecStrings,
        arrays: &ExecArrays,
        streams: &Streams,
        inherit: &[RawFd],
    ) -> Plan {
        let (default_action, empty_mask) = default_signal_state();
        Plan {
            program: strings.program.as_ptr(),
            argv: arrays.argv.as_ptr(),
            envp: arrays.envp.as_ptr(),
            shell_argv: arrays.shell_argv.as_ptr(),
            directory: strings
                .directory
                .as_ref()
                .map_or(ptr::null(), |dir| dir.as_ptr()),
            stdio: streams.child_fds(),
            inherit: inherit.as_ptr(),
            inherit_len: inherit.len(),
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
            last_signal: libc::SIGRTMAX(),
            nofile: super::limits::given().map(|(soft, hard)| libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            }),
            default_action,
            empty_mask,
            step: AtomicI32::new(0),
            errno: AtomicI32::new(0),
        }
    }
}

/// `SIG_DFL` with an empty mask and no flags, and the empty mask: what the child resets its
/// signals to, prepared in the parent like everything else the child uses.
fn default_signal_state() -> (libc::sigaction, libc::sigset_t) {
    // SAFETY: sigset_t and sigaction are plain C data; sigemptyset initialises the set fully,
    // and an all-zero sigaction is SIG_DFL (0) with no flags.
    unsafe {
        let mut mask = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(mask.as_mut_ptr());
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        action.sa_mask = mask.assume_init();
        (action, mask.assume_init())
    }
}

/// The program's path as exec will take it: as given when it holds a `/` (exec resolves it
/// after the child's chdir), else found on the child's PATH (or the default `/bin:/usr/bin`) by
/// [`super::find_program`], the one lookup build and supervise use too. Nothing found is
/// ENOENT, as from execvp.
fn resolve(command: &Command, environment: &[(OsString, OsString)]) -> io::Result<PathBuf> {
    let program = command.as_std().get_program();
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let search = environment
        .iter()
        .find(|(key, _)| key == "PATH")
        .map_or_else(|| OsString::from("/bin:/usr/bin"), |(_, path)| path.clone());
    // Relative PATH entries are the child's: relative to the directory it runs in.
    let root = command.as_std().get_current_dir().unwrap_or(Path::new("."));
    super::find_program(program, root, Some(&search))
        .map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))
}

fn c_string(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte", text.display()),
        )
    })
}

/// `strings` as the null-terminated array exec takes; the strings must outlive it.
fn pointers(strings: impl Iterator<Item = *const c_char>) -> Vec<*const c_char> {
    strings.chain(std::iter::once(ptr::null())).collect()
}

/// The child's standard streams, opened in the parent.
struct Streams {
    /// What the child places at 0, 1, 2; closed in reload once the child has exec'd.
    child: [Option<OwnedFd>; 3],
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

impl Streams {
    fn open(command: &Command) -> io::Result<Streams> {
        let mut streams = Streams {
            child: [None, None, None],
            stdin: None,
            stdout: None,
            stderr: None,
        };
        for (target, choice) in [command.stdin, command.stdout, command.stderr]
            .into_iter()
            .enumerate()
        {
            let child_end = match choice {
                Stdio::Inherit => continue,
                Stdio::Null => std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map(OwnedFd::from)
                    .map_err(|err| io::Error::new(err.kind(), format!("/dev/null: {err}")))?,
                Stdio::Piped => {
                    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                        .map_err(|err| io::Error::other(format!("cannot create a pipe: {err}")))?;
                    let (child_end, ours) = if target == 0 {
                        (read, write)
                    } else {
                        (write, read)
                    };
                    let slot = match target {
                        0 => &mut streams.stdin,
                        1 => &mut streams.stdout,
                        _ => &mut streams.stderr,
                    };
                    *slot = Some(ours);
                    child_end
                }
            };
            // Placed at 0, 1 and 2 in turn: a source below 3 could be overwritten by an
            // earlier placement (reload started with a standard stream closed).
            let child_end = if child_end.as_raw_fd() < 3 {
                super::duplicate_above(&child_end, 3)?
            } else {
                child_end
            };
            streams.child[target] = Some(child_end);
        }
        Ok(streams)
    }

    fn child_fds(&self) -> [RawFd; 3] {
        self.child
            .each_ref()
            .map(|fd| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd))
    }
}

/// The child's stack: private anonymous memory with a guard page below it, so that an overflow
/// faults instead of writing into reload's memory.
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = STACK_SIZE + page;
        // SAFETY: a new private anonymous mapping, which aliases nothing.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(
                err.kind(),
                format!("cannot map a stack: {err}"),
            ));
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping just made, which nothing uses yet.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(
                err.kind(),
                format!("cannot protect the stack's guard page: {err}"),
            ));
        }
        Ok(stack)
    }

    /// The stack grows down, on every architecture Linux and libc's clone support here.
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping, which is page-aligned (so 16-byte aligned).
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used: the child has exec'd or exited.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Clone the child with all signals blocked in the calling thread, as glibc and musl do: the
/// child inherits the mask, so no handler of reload's can run in it, on reload's memory, before
/// it has reset them to SIG_DFL. Returns once the child has exec'd or exited.
fn clone_child(plan: &Plan, stack: &Stack) -> io::Result<libc::pid_t> {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask changes only this thread's mask and
    // writes the previous one into `previous`, which it fully initialises on success.
    let blocked = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), previous.as_mut_ptr())
    };
    if blocked != 0 {
        let err = io::Error::from_raw_os_error(blocked);
        return Err(io::Error::new(
            err.kind(),
            format!("cannot block signals: {err}"),
        ));
    }
    // SAFETY: CLONE_VM | CLONE_VFORK is posix_spawn's own way of starting a process; what makes
    // it sound here:
    // - the child runs on its own mapped stack (`stack`, alive until after this call returns),
    //   never on this thread's: the parent's frames are not touched;
    // - this thread is suspended until the child has exec'd or exited, so `plan` and every
    //   buffer it points into stay alive and unchanged; the child writes only its own stack
    //   and the two atomics of `plan`;
    // - other threads of reload keep running on the shared memory, but the child takes no lock
    //   and allocates nothing (see `child_main`), so it cannot see or leave a half-held one;
    // - without CLONE_SIGHAND the child has its own copy of the dispositions, so the SIG_DFL it
    //   sets does not reach reload; without CLONE_FILES its own descriptor table, so its dup2s
    //   do not either;
    // - SIGCHLD makes it an ordinary child, reaped by pid.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            ptr::from_ref(plan).cast_mut().cast(),
        )
    };
    let cloned = if pid < 0 {
        let err = io::Error::last_os_error();
        Err(io::Error::new(err.kind(), format!("clone: {err}")))
    } else {
        Ok(pid)
    };
    // SAFETY: restores this thread's mask as it was; `previous` was initialised above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous.as_ptr(), ptr::null_mut()) };
    cloned
}

/// The child: reset signals, join a new group, set the parent-death signal, place the
/// descriptors, enter the directory, exec. Any failure is reported through the plan, then
/// `_exit(127)`.
extern "C" fn child_main(plan: *mut c_void) -> c_int {
    // SAFETY: `plan` is the `Plan` clone_child passed, alive for as long as this runs (the
    // parent is suspended), and only read here except through its atomics.
    let plan = unsafe { &*plan.cast_const().cast::<Plan>() };
    // SAFETY: see `prepare_and_exec`.
    unsafe { prepare_and_exec(plan) }
}

/// # Safety
/// Runs in the vfork-style child only. Everything here is async-signal-safe: raw syscall
/// wrappers of libc, reads of `plan`, stores to its atomics; no allocation, no lock, no std
/// call, nothing that can panic (no indexing, no arithmetic that can overflow). The wrappers
/// set errno in the TLS slot of the suspended parent thread (the child shares its memory and
/// thread pointer): harmless, the parent does not read errno after a successful clone, and it
/// is how the child reads each failure's errno. The binary is linked with full RELRO (rustc's
/// default on Linux), so no lazy symbol binding runs in the child either.
unsafe fn prepare_and_exec(plan: &Plan) -> c_int {
    // SAFETY: see the function's comment; every pointer comes from the plan.
    unsafe {
        // Handlers installed by reload (tokio's for SIGINT, SIGTERM, SIGHUP, SIGCHLD) must not
        // run in the child on reload's memory, and a program should start with default
        // dispositions. Ignored signals stay ignored (exec keeps them, as std does), except
        // SIGPIPE, which Rust's runtime ignores and std resets for its children.
        let mut signal = 1;
        while signal <= plan.last_signal {
            let mut current = MaybeUninit::<libc::sigaction>::uninit();
            if signal != libc::SIGKILL
                && signal != libc::SIGSTOP
                // glibc refuses its internal signals (EINVAL): nothing of reload's handles them.
                && libc::sigaction(signal, ptr::null(), current.as_mut_ptr()) == 0
            {
                let handler = current.assume_init_ref().sa_sigaction;
                if handler != libc::SIG_DFL && (handler != libc::SIG_IGN || signal == libc::SIGPIPE)
                {
                    libc::sigaction(signal, &raw const plan.default_action, ptr::null_mut());
                }
            }
            signal += 1;
        }
        // The parent blocked every signal for the clone; the program starts with none blocked,
        // as std's children do.
        if libc::sigprocmask(
            libc::SIG_SETMASK,
            &raw const plan.empty_mask,
            ptr::null_mut(),
        ) != 0
        {
            return fail(plan, STEP_SIGNALS);
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(plan, STEP_GROUP);
        }
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::c_ulong::try_from(libc::SIGKILL).unwrap_or(9),
            0,
            0,
            0,
        ) != 0
        {
            return fail(plan, STEP_DEATH_SIGNAL);
        }
        // reload may have died between the clone and prctl: then nobody would ever signal us.
        if libc::getppid() != plan.parent {
            *libc::__errno_location() = libc::ESRCH;
            return fail(plan, STEP_PARENT_GONE);
        }
        for (target, source) in (0..).zip(plan.stdio) {
            if source >= 0 && libc::dup2(source, target) < 0 {
                return fail(plan, STEP_STDIO);
            }
        }
        let mut next = plan.inherit;
        let end = plan.inherit.wrapping_add(plan.inherit_len);
        while next != end {
            if libc::fcntl(*next, libc::F_SETFD, 0) < 0 {
                return fail(plan, STEP_INHERIT);
            }
            next = next.wrapping_add(1);
        }
        // Lowering a soft limit cannot fail; if it did, the program would only get more.
        if let Some(nofile) = &plan.nofile {
            libc::setrlimit(libc::RLIMIT_NOFILE, nofile);
        }
        if !plan.directory.is_null() && libc::chdir(plan.directory) != 0 {
            return fail(plan, STEP_DIRECTORY);
        }
        libc::execve(plan.program, plan.argv, plan.envp);
        if *libc::__errno_location() == libc::ENOEXEC {
            libc::execve(SHELL.as_ptr(), plan.shell_argv, plan.envp);
            // The program's own error is the one to report, not the shell's.
            *libc::__errno_location() = libc::ENOEXEC;
        }
        fail(plan, STEP_EXEC)
    }
}

/// Report the failed `step` with the current errno and end the child.
///
/// # Safety
/// In the child only (see `prepare_and_exec`).
unsafe fn fail(plan: &Plan, step: i32) -> c_int {
    // SAFETY: errno is the calling thread's (shared with the suspended parent thread); _exit
    // ends the child without running anything of reload's (no atexit handlers, no flushing).
    unsafe {
        plan.errno
            .store(*libc::__errno_location(), Ordering::Release);
        plan.step.store(step, Ordering::Release);
        libc::_exit(127)
    }
}

/// What a failed step means, as the caller's message continues ("cannot start `x`: ...").
/// A failed exec is the plain OS error, as std reports one, so that callers can explain it
/// (`super::explain_exec_error`).
fn step_error(step: i32, errno: i32, directory: Option<&Path>) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    let doing = match step {
        STEP_EXEC => return os,
        STEP_SIGNALS => "cannot reset the signal mask".to_owned(),
        STEP_GROUP => "cannot start a new process group".to_owned(),
        STEP_DEATH_SIGNAL => "cannot set the parent-death signal".to_owned(),
        STEP_PARENT_GONE => "reload ended while the process was starting".to_owned(),
        STEP_STDIO => "cannot connect the standard streams".to_owned(),
        STEP_INHERIT => "cannot pass on the listening sockets".to_owned(),
        STEP_DIRECTORY => format!(
            "cannot enter the directory `{}`",
            directory.map_or_else(String::new, |dir| dir.display().to_string())
        ),
        _ => "the process failed to start".to_owned(),
    };
    io::Error::new(os.kind(), format!("{doing}: {os}"))
}

/// Reap a child that reported a failure; it has exited, or is about to.
fn reap_failed(pid: libc::pid_t) {
    let mut raw = 0;
    // SAFETY: waitpid on our own child's pid, writing only into `raw`.
    while unsafe { libc::waitpid(pid, &raw mut raw, 0) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open on our own unreaped child (its pid cannot have been reused); the
    // kernel opens the descriptor close-on-exec.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn command(program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.args(args);
        command
    }

    /// Everything `sh -c script` writes to stdout, and how it ended.
    async fn stdout_of(mut command: Command, inherit: &[RawFd]) -> (String, ExitStatus) {
        command.stdout(Stdio::piped());
        let mut child = spawn(&command, inherit).expect("spawn");
        let mut out = String::new();
        let mut stdout = child.stdout.take().expect("a stdout pipe");
        stdout.read_to_string(&mut out).await.expect("read stdout");
        (out, child.wait().await.expect("wait"))
    }

    #[tokio::test]
    async fn a_missing_program_is_enoent_from_exec_or_from_the_path_search() {
        let err = spawn(&command("/nonexistent/program", &[]), &[]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        let err = spawn(&command("reload-no-such-program", &[]), &[]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    }

    #[tokio::test]
    async fn a_file_without_execute_permission_is_eacces_from_exec() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = spawn(&command(script.to_str().unwrap(), &[]), &[]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    }

    #[tokio::test]
    async fn a_script_without_a_shebang_runs_through_sh_as_execvp_runs_it() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "echo \"from sh: $1\"\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (out, status) = stdout_of(command(script.to_str().unwrap(), &["arg"]), &[]).await;
        assert_eq!(out, "from sh: arg\n");
        assert!(status.success());
    }

    #[tokio::test]
    async fn the_child_leads_a_new_process_group() {
        let mut child = spawn(&command("sleep", &["30"]), &[]).unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
        assert_eq!(nix::unistd::getpgid(Some(pid)).unwrap(), pid);
        assert_ne!(nix::unistd::getpgrp(), pid);
        child.kill();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn the_child_is_killed_when_the_thread_that_spawned_it_ends() {
        // PR_SET_PDEATHSIG fires when the spawning *thread* exits: a short-lived thread stands
        // in for a dying reload. The Child is handed out so that its Drop does not kill it.
        let mut child = std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _entered = runtime.enter();
            spawn(&command("sleep", &["30"]), &[]).unwrap()
        })
        .join()
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still alive after its parent thread ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn stdio_pipes_carry_input_and_output_both_ways() {
        let mut cat = command("cat", &[]);
        cat.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = spawn(&cat, &[]).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through cat\n").await.unwrap();
        drop(stdin);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "through cat\n");
        assert!(child.wait().await.unwrap().success());

        let mut both = command("sh", &["-c", "echo out; echo err >&2; exit 3"]);
        both.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawn(&both, &[]).unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
    }

    #[tokio::test]
    async fn null_stdin_reads_end_of_file() {
        let mut cat = command("cat", &[]);
        cat.stdin(Stdio::null());
        let (out, status) = stdout_of(cat, &[]).await;
        assert_eq!(out, "");
        assert!(status.success());
    }

    #[tokio::test]
    async fn inherited_descriptors_arrive_and_others_stay_closed() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (_read_other, write_other) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        // dash reads `>&N` for one digit only; /dev/fd/N works for any open descriptor.
        let script = format!("echo passed > /dev/fd/{}", write.as_raw_fd());
        let (_, status) = stdout_of(command("sh", &["-c", &script]), &[write.as_raw_fd()]).await;
        assert!(status.success());
        drop(write);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut got).unwrap();
        assert_eq!(got, "passed\n");

        let script = format!(
            "echo leaked 2>/dev/null > /dev/fd/{}",
            write_other.as_raw_fd()
        );
        let (_, status) = stdout_of(command("sh", &["-c", &script]), &[]).await;
        assert!(
            !status.success(),
            "a close-on-exec descriptor reached the child"
        );
    }

    #[tokio::test]
    async fn the_child_starts_with_no_signal_blocked_and_sigpipe_at_its_default() {
        // Rust's runtime ignores SIGPIPE in this process, and the spawn blocks every signal in
        // the parent for the clone: neither may reach the program.
        let (status, _) = stdout_of(command("cat", &["/proc/self/status"]), &[]).await;
        let field = |name: &str| {
            let line = status.lines().find(|line| line.starts_with(name)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0);
        let sigpipe = 1 << (libc::SIGPIPE - 1);
        assert_eq!(field("SigIgn:") & sigpipe, 0);
    }

    #[tokio::test]
    async fn directory_and_environment_are_the_commands() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let mut sh = command("sh", &["-c", "pwd; echo \"$ADDED ${REMOVED-unset}\""]);
        sh.current_dir(&dir)
            .env("ADDED", "yes")
            .env("REMOVED", "no")
            .env_remove("REMOVED");
        let (out, _) = stdout_of(sh, &[]).await;
        assert_eq!(out, format!("{}\nyes unset\n", dir.display()));

        let mut cleared = command("/bin/sh", &["-c", "echo \"${HOME-no home}\""]);
        cleared.env_clear();
        assert_eq!(stdout_of(cleared, &[]).await.0, "no home\n");

        let mut nowhere = command("true", &[]);
        nowhere.current_dir(dir.join("missing"));
        let err = spawn(&nowhere, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[tokio::test]
    async fn a_child_dropped_while_running_is_killed_and_reaped() {
        let child = spawn(&command("sleep", &["30"]), &[]).unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
        drop(child);
        // Reaped by the task Drop leaves on the runtime: then the pid is gone altogether.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while nix::sys::signal::kill(pid, None).is_ok() {
            assert!(std::time::Instant::now() < deadline, "{pid} still exists");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
