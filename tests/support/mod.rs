//! The harness every integration test goes through: a throw-away [`Project`] on disk and a
//! [`Session`] that runs the real `reload` binary in it.
//!
//! Layout of a project's temporary directory:
//!
//! ```text
//! <tmp>/project/   the project root: reload's working directory, watched
//! <tmp>/scratch/   outside the root, never watched: where test scripts leave their traces
//!                  (`../scratch/app.log`, `../scratch/builds.log`, pid files)
//! ```
//!
//! Keeping the traces outside the root means no test depends on reload's ignore rules except the
//! ones that test them.
//!
//! Every wait polls with a generous deadline and, on failure, panics with what reload printed, so
//! a red test says why. Nothing here sleeps and then asserts: a negative check
//! ([`Session::assert_holds_for`]) can only pass wrongly on a slow machine, never fail wrongly.
//! Dropping a `Session` stops reload and SIGKILLs anything still running in the project.
//!
//! The /proc readers and the HTTP client are in `procfs.rs` and `http.rs`, plain files the
//! dev-loop benchmark includes too. A test that needs a tool (go, node, chromium, python3...)
//! says so first with [`needs::require`], which fails it at once, in one line, where the tool
//! is missing.

// The browser harness; only the proxy's browser tests use it, and not all of it.
#[allow(dead_code)]
pub(crate) mod browser;
mod http;
pub(crate) mod needs;
mod procfs;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// How long any single wait may take before the test fails. Generous: tests share a loaded
/// 2-core machine, and a passing test never waits this long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Deadline for waits that include a real `cargo build`.
pub(crate) const CARGO_DEADLINE: Duration = Duration::from_secs(120);

const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Project

/// A temporary project directory, built up like a sentence:
/// `Project::new().file("src/v.txt", "v1").config(TOML).executable("app.sh", APP)`.
pub(crate) struct Project {
    // `Drop for Project` runs before the fields are dropped, so every process left in the
    // project is killed before its directory is removed.
    temp: TempDir,
    root: PathBuf,
    scratch: PathBuf,
}

impl Project {
    #[track_caller]
    pub(crate) fn new() -> Self {
        let temp = tempfile::Builder::new()
            .prefix("reload-test-")
            .tempdir()
            .expect("create a temporary directory");
        // Canonical, so that it compares equal to what /proc/PID/cwd says.
        let base = temp
            .path()
            .canonicalize()
            .expect("canonicalize the temporary directory");
        let root = base.join("project");
        let scratch = base.join("scratch");
        fs::create_dir(&root).expect("create the project root");
        fs::create_dir(&scratch).expect("create the scratch directory");
        Project {
            temp,
            root,
            scratch,
        }
    }

    /// Add a file (parent directories are created).
    #[track_caller]
    pub(crate) fn file(self, path: &str, contents: &str) -> Self {
        self.write(path, contents);
        self
    }

    /// Add an empty directory.
    #[track_caller]
    pub(crate) fn dir(self, path: &str) -> Self {
        fs::create_dir_all(self.root.join(path)).expect("create a directory");
        self
    }

    /// Write `reload.toml`.
    #[track_caller]
    pub(crate) fn config(self, toml: &str) -> Self {
        self.file("reload.toml", toml)
    }

    /// Add a file with mode 755.
    #[track_caller]
    pub(crate) fn executable(self, path: &str, script: &str) -> Self {
        self.write_executable(path, script);
        self
    }

    /// A path in the scratch directory (outside the watched root).
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// Remove a file from the project now.
    #[track_caller]
    pub(crate) fn remove(&self, path: &str) {
        let path = self.root.join(path);
        fs::remove_file(&path).unwrap_or_else(|err| panic!("remove {}: {err}", path.display()));
    }

    /// Write a file in the project now: while reload runs, this is a real change.
    #[track_caller]
    pub(crate) fn write(&self, path: &str, contents: &str) {
        let path = self.root.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directories");
        }
        fs::write(&path, contents).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    }

    #[track_caller]
    pub(crate) fn write_executable(&self, path: &str, script: &str) {
        self.write(path, script);
        let path = self.root.join(path);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|err| panic!("chmod {}: {err}", path.display()));
    }

    /// Save the way many editors do: write a temporary file, then rename it over the original.
    #[track_caller]
    pub(crate) fn save_atomically(&self, path: &str, contents: &str) {
        let temporary = format!("{path}.tmp");
        self.write(&temporary, contents);
        fs::rename(self.root.join(&temporary), self.root.join(path))
            .unwrap_or_else(|err| panic!("rename {temporary} over {path}: {err}"));
    }

    /// Run a command (e.g. `sed -i`) in the project root and insist that it succeeds.
    #[track_caller]
    pub(crate) fn run_tool(&self, program: &str, args: &[&str]) {
        let status = Command::new(program)
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|err| panic!("run {program}: {err}"));
        assert!(status.success(), "{program} {args:?} failed: {status}");
    }

    /// The complete lines of a scratch file (a line still being written is left out); empty when
    /// the file does not exist yet.
    pub(crate) fn scratch_lines(&self, name: &str) -> Vec<String> {
        let text = fs::read_to_string(self.scratch(name)).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        complete.lines().map(str::to_owned).collect()
    }

    /// Pids listed one per line in a scratch file.
    pub(crate) fn scratch_pids(&self, name: &str) -> Vec<i32> {
        self.scratch_lines(name)
            .iter()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// Every start the stand-in app logged to `../scratch/app.log` (see `APP` in tests.rs).
    pub(crate) fn starts(&self) -> Vec<AppStart> {
        self.scratch_lines("app.log")
            .iter()
            .filter_map(|line| AppStart::parse(line))
            .collect()
    }

    /// Live processes whose working directory is inside this project's temporary directory:
    /// everything reload, its builds, its servers and their background children started.
    pub(crate) fn processes(&self) -> Vec<(i32, String)> {
        processes_under(self.temp.path())
    }

    /// Wait until nothing is left running in the project (see [`Project::processes`]).
    #[track_caller]
    pub(crate) fn wait_no_processes(&self) {
        let started = Instant::now();
        loop {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "processes were left behind: {left:?}"
            );
            thread::sleep(POLL);
        }
    }

    /// Start `reload ARGS` in the project root.
    #[track_caller]
    pub(crate) fn start(&self, args: &[&str]) -> Session<'_> {
        self.start_with_env(args, &[])
    }

    /// Start `reload ARGS` with extra environment variables (inherited by builds and servers).
    #[track_caller]
    pub(crate) fn start_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Session<'_> {
        Session::start(self, args, env, Stdio::null())
    }

    /// Start a copy of reload (`binary`, e.g. one the test will remove) with `ARGS`.
    #[track_caller]
    pub(crate) fn start_copy(&self, binary: &Path, args: &[&str]) -> Session<'_> {
        Session::start_binary(self, binary, args, &[], Stdio::null())
    }

    /// Run `reload ARGS` and wait for it to exit by itself (for bad input).
    #[track_caller]
    pub(crate) fn run_to_exit(&self, args: &[&str]) -> Finished {
        let mut session = self.start(args);
        let status = session.wait_exit();
        Finished {
            status,
            stderr: session.stderr(),
        }
    }
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        kill_all(&processes_under(self.temp.path()));
    }
}

/// One line of `app.log`: `start pid=123 version=v1 RELOAD=1 GREETING=hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppStart {
    pub pid: i32,
    pub version: String,
    pub fields: HashMap<String, String>,
}

impl AppStart {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("start ")?;
        let fields: HashMap<String, String> = rest
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        Some(AppStart {
            pid: fields.get("pid")?.parse().ok()?,
            version: fields.get("version")?.clone(),
            fields,
        })
    }

    /// A field the app logged, `"unset"` when the app printed it as such.
    pub(crate) fn field(&self, key: &str) -> &str {
        self.fields.get(key).map_or("<missing>", String::as_str)
    }
}

/// How a `reload` run that was expected to stop by itself ended.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
}

impl Finished {
    /// Insist on exit code `code` and a stderr containing every one of `needles`.
    #[track_caller]
    pub(crate) fn assert_fails_with(&self, code: i32, needles: &[&str]) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}, got {}\n--- reload stderr ---\n{}",
            self.status,
            self.stderr
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "expected stderr to mention {needle:?}\n--- reload stderr ---\n{}",
                self.stderr
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Session

/// What a reader thread collected from one pipe, and whether the pipe has closed (every
/// process holding its write end is gone).
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    closed: bool,
}

type Buffer = Arc<Mutex<Captured>>;

/// The real `reload` binary running in a project. Dropping it stops reload (SIGTERM, then
/// SIGKILL) and SIGKILLs every process left in the project and every pid the test tracked.
pub(crate) struct Session<'p> {
    project: &'p Project,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
    stdout: Buffer,
    stderr: Buffer,
    tracked: Mutex<Vec<i32>>,
}

impl<'p> Session<'p> {
    #[track_caller]
    fn start(project: &'p Project, args: &[&str], env: &[(&str, &str)], stdin: Stdio) -> Self {
        Self::start_binary(
            project,
            Path::new(env!("CARGO_BIN_EXE_reload")),
            args,
            env,
            stdin,
        )
    }

    #[track_caller]
    fn start_binary(
        project: &'p Project,
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(&project.root)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: signals the test sends go to reload alone, as from `kill`.
            .process_group(0);
        // Hermetic: no setting from the developer's shell (or from a reload running the tests).
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("RELOAD")
                || key == "CARGO_TARGET_DIR"
                || key == "CARGO_BUILD_TARGET_DIR"
            {
                command.env_remove(&*key);
            }
        }
        command.env("NO_COLOR", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let stdout = capture(child.stdout.take().expect("piped stdout"));
        let stderr = capture(child.stderr.take().expect("piped stderr"));
        Session {
            project,
            child: Mutex::new(child),
            status: Mutex::new(None),
            stdout,
            stderr,
            tracked: Mutex::new(Vec::new()),
        }
    }

    /// reload's own pid.
    pub(crate) fn pid(&self) -> i32 {
        let id = lock(&self.child).id();
        i32::try_from(id).expect("pid fits in i32")
    }

    /// Everything reload (and the builds and servers, which share its terminal) wrote to stderr.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr).bytes).into_owned()
    }

    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stdout).bytes).into_owned()
    }

    /// Send `signal` to reload alone.
    #[track_caller]
    pub(crate) fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap_or_else(|err| {
            panic!("cannot send {signal} to reload: {err}{}", self.context())
        });
    }

    /// SIGKILL `pid` (if still alive) when the session ends, whatever happens to the test.
    pub(crate) fn track(&self, pid: i32) {
        lock(&self.tracked).push(pid);
    }

    /// `None` while reload runs.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        let mut status = lock(&self.status);
        if status.is_none() {
            *status = lock(&self.child).try_wait().expect("try_wait on reload");
        }
        *status
    }

    /// Wait for reload to exit by itself, and for its output to be complete: until every
    /// process that shares reload's stdout and stderr (builds, servers, their children, the
    /// guardian) is gone too.
    /// SIGTERM to reload, which must stop everything and exit with 143 (128 + SIGTERM).
    #[track_caller]
    pub(crate) fn terminate(&mut self) {
        self.signal(Signal::SIGTERM);
        let code = self.wait_exit().code();
        assert_eq!(code, Some(143), "{}", self.context());
    }

    #[track_caller]
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let status = self.wait_until("reload to exit", || self.exit_status());
        self.wait_for(
            "reload's output pipes to close (no process may outlive reload)",
            || lock(&self.stdout).closed && lock(&self.stderr).closed,
        );
        status
    }

    /// Wait until `condition` gives `Some`, and return it.
    #[track_caller]
    pub(crate) fn wait_until<T>(&self, what: &str, condition: impl FnMut() -> Option<T>) -> T {
        self.wait_until_within(DEADLINE, what, condition)
    }

    #[track_caller]
    pub(crate) fn wait_until_within<T>(
        &self,
        deadline: Duration,
        what: &str,
        mut condition: impl FnMut() -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = condition() {
                return value;
            }
            assert!(
                started.elapsed() <= deadline,
                "timed out after {}s waiting for {what}{}",
                deadline.as_secs(),
                self.context()
            );
            thread::sleep(POLL);
        }
    }

    /// Wait until `condition` holds.
    #[track_caller]
    pub(crate) fn wait_for(&self, what: &str, mut condition: impl FnMut() -> bool) {
        self.wait_until(what, || condition().then_some(()));
    }

    /// Wait until reload's stderr contains `needle`.
    #[track_caller]
    pub(crate) fn wait_for_stderr(&self, needle: &str) {
        self.wait_for_stderr_count(needle, 1);
    }

    /// Wait until reload's stderr contains `needle` at least `count` times.
    #[track_caller]
    pub(crate) fn wait_for_stderr_count(&self, needle: &str, count: usize) {
        self.wait_for(&format!("{count}x {needle:?} on reload's stderr"), || {
            self.stderr().matches(needle).count() >= count
        });
    }

    /// Check that `condition` keeps holding for `period`: that nothing more happens. A slow
    /// machine can only make this pass wrongly (the event comes later), never fail wrongly.
    #[track_caller]
    pub(crate) fn assert_holds_for(
        &self,
        period: Duration,
        what: &str,
        mut condition: impl FnMut() -> bool,
    ) {
        let started = Instant::now();
        while started.elapsed() < period {
            assert!(
                condition(),
                "expected {what}, but it stopped holding{}",
                self.context()
            );
            thread::sleep(POLL);
        }
        assert!(
            condition(),
            "expected {what}, but it stopped holding{}",
            self.context()
        );
    }

    /// Wait until `pid` is gone (a zombie counts as gone).
    #[track_caller]
    pub(crate) fn wait_dead(&self, what: &str, pid: i32) {
        self.wait_for(&format!("{what} (pid {pid}) to be gone"), || !alive(pid));
    }

    /// Wait until the stand-in app logs a start with `version`, and return that start.
    #[track_caller]
    pub(crate) fn wait_for_start(&self, version: &str) -> AppStart {
        self.wait_until(&format!("the app to start with version {version}"), || {
            self.project
                .starts()
                .into_iter()
                .find(|start| start.version == version)
        })
    }

    /// Wait until nothing is left running in the project: no server, no background
    /// grandchild, no build, no guardian.
    #[track_caller]
    pub(crate) fn wait_no_processes(&self) {
        let mut left;
        let started = Instant::now();
        loop {
            left = self.project.processes();
            if left.is_empty() {
                return;
            }
            if started.elapsed() > DEADLINE {
                break;
            }
            thread::sleep(POLL);
        }
        panic!("processes were left behind: {left:?}{}", self.context());
    }

    /// The guardian (`reload __guard`) this reload started.
    #[track_caller]
    pub(crate) fn guardian(&self) -> i32 {
        let reload = self.pid();
        self.wait_until("the `reload __guard` process", || {
            procfs::children_of(reload).into_iter().find(|&pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"__guard"))
            })
        })
    }

    /// What reload printed and what the test scripts logged, for failure messages.
    pub(crate) fn context(&self) -> String {
        let mut text = format!(
            "\n--- reload stderr ---\n{}\n--- reload stdout ---\n{}",
            self.stderr(),
            self.stdout()
        );
        if let Ok(entries) = fs::read_dir(&self.project.scratch) {
            let mut names: Vec<_> = entries
                .filter_map(std::result::Result::ok)
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for name in names {
                let name = name.to_string_lossy();
                let contents = fs::read_to_string(self.project.scratch(&name)).unwrap_or_default();
                text.push_str(&format!("\n--- ../scratch/{name} ---\n{contents}"));
            }
        }
        text.push_str(&format!(
            "\n--- processes running in the project ---\n{:?}\n---------------------",
            self.project.processes()
        ));
        text
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let still_running = match lock(&self.child).try_wait() {
            Ok(status) => status.is_none(),
            Err(_) => false,
        };
        if still_running {
            let pid = Pid::from_raw(i32::try_from(lock(&self.child).id()).unwrap_or(0));
            let _ = kill(pid, Signal::SIGTERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if !matches!(lock(&self.child).try_wait(), Ok(None)) {
                    break;
                }
                thread::sleep(POLL);
            }
            let mut child = lock(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        let tracked: Vec<(i32, String)> = lock(&self.tracked)
            .iter()
            .map(|&pid| (pid, String::new()))
            .collect();
        kill_all(&tracked);
        kill_all(&self.project.processes());
    }
}

fn capture(mut pipe: impl Read + Send + 'static) -> Buffer {
    let buffer = Buffer::default();
    let sink = Arc::clone(&buffer);
    // Detached: a leaked grandchild may hold the pipe open forever, and that must not hang
    // the test; the test's own checks report the leak.
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => lock(&sink).bytes.extend_from_slice(&chunk[..n]),
            }
        }
        lock(&sink).closed = true;
    });
    buffer
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Whether `pid` is a running process. A zombie (state Z or X) has finished: it counts as dead.
pub(crate) fn alive(pid: i32) -> bool {
    procfs::stat_fields(pid)
        .is_some_and(|fields| !matches!(fields.first().map(String::as_str), Some("Z" | "X") | None))
}

/// Live processes (other than this test) whose working directory is under `dir`.
fn processes_under(dir: &Path) -> Vec<(i32, String)> {
    let me = std::process::id();
    procfs::pids_under(dir)
        .into_iter()
        .filter(|&pid| u32::try_from(pid).is_ok_and(|pid| pid != me))
        .filter(|&pid| alive(pid))
        .map(|pid| (pid, procfs::command_line(pid)))
        .collect()
}

fn kill_all(processes: &[(i32, String)]) {
    for &(pid, _) in processes {
        if alive(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// `GET /` on 127.0.0.1:`port`; the body, or `None` while nothing answers properly.
pub(crate) fn http_get(port: u16) -> Option<String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // HTTP/1.0: no server may answer with a chunked body, so the body is the bytes as sent.
    let response = http::exchange(
        address,
        "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_owned())
}

// ---------------------------------------------------------------------------------------------
// A terminal on stdin

impl Project {
    /// Start `reload ARGS` with `stdin` as its standard input (e.g. the slave side of a
    /// pseudo-terminal, to press keys), stdout and stderr captured as in [`Project::start`].
    #[track_caller]
    pub(crate) fn start_with_stdin(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Session<'_> {
        Session::start(self, args, env, stdin)
    }
}

/// The most memory `pid` has held at once (VmHWM), in KiB; 0 when it cannot be read.
pub(crate) fn peak_rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")?
                    .trim()
                    .trim_end_matches(" kB")
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// A TCP port for a test's server, below the ephemeral range (32768 and up on Linux): a port
/// taken from that range can be grabbed meanwhile as the local port of any outgoing connection,
/// a concurrent test's client included. Ports are handed out once per test binary run, and
/// only after checking nothing listens there.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Different test binaries (and runs) start at different places in 20000..32000.
    let base = 20_000 + u16::try_from(std::process::id() % 600).expect("fits") * 20;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (base - 20_000 + offset) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and inotify watches

impl Project {
    /// The absolute path of `path` in the project.
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// Rename `from` to `to` in the project now (one `rename(2)`, as `mv` within a file system).
    #[track_caller]
    pub(crate) fn rename(&self, from: &str, to: &str) {
        fs::rename(self.root.join(from), self.root.join(to))
            .unwrap_or_else(|err| panic!("rename {from} to {to}: {err}"));
    }
}

/// How many inotify watches `pid` holds, over all its inotify instances (see
/// [`procfs::inotify_watches`]). 0 for a process that uses no inotify at all, or is gone.
pub(crate) fn inotify_watches(pid: i32) -> usize {
    procfs::inotify_watches(pid).unwrap_or(0)
}
