// Statistics over durations and counts: the casts between integers and floats are the point.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

//! The dev-loop benchmark: `reload` against its peers, watchexec and nodemon, in the seven
//! situations a dev loop lives in. `cargo bench --bench dev_loop` runs it all; `BENCH_QUICK=1`
//! cuts repetitions for a smoke run, and words after `--` pick scenarios by name
//! (`cargo bench --bench dev_loop -- burst idle`).
//!
//! Every tool gets the same job: watch a project for `.rs` changes with a 50 ms debounce, run a
//! build (a shell line; `true` when the scenario has none), then restart the server. reload runs
//! the build with `-b` and the server directly; watchexec (`-r -n`) and nodemon (`--exec`, which
//! it runs with `sh -c`) run `sh -c '<build> && exec <server>'`, so their server keeps the pid the
//! shell had. nodemon is given `--signal SIGTERM` (its default is SIGUSR2) so that every server
//! is stopped the same way.
//!
//! The server is mostly a stand-in: this very binary, called with `__bench_child`, appends
//! `pid start-time version` to a start log as its first act and then idles. Latencies end at the
//! server's own clock reading, so how often the bench polls adds nothing to them. The
//! restart-gap scenario runs `examples/hello_server` instead and measures from the outside, with
//! an HTTP client.
//!
//! Trees live under `$TMPDIR/reload-bench-<pid>-<nanos>/<scenario>/`: `project/` is the watched
//! root and every tool's working directory; `scratch/` beside it (never watched) holds start
//! logs, build logs and each tool's output. Each scenario's directory is removed when it ends,
//! after any process still running in it (by its working directory) is SIGKILLed by pid. The
//! big trees are one stock of 100k files, made once and lent to scenarios by renaming (see
//! `Bench::borrow_trees`): making files is the slowest part of the bench on a busy disk.
//!
//! Results are printed as they come, then as one table, and written to
//! `target/bench/dev_loop.json`. A peer that is not installed is reported as skipped.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value as Json, json};

/// The quiet window every tool is given.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Only changes to files with this extension count, for every tool (nodemon needs a list).
const EXT: &str = "rs";
/// The argument that turns this binary into the stand-in server.
const CHILD_ARG: &str = "__bench_child";
/// How often waits look again.
const POLL: Duration = Duration::from_millis(5);
/// Pause between measured edits, so that one restart is over before the next edit.
const SETTLE: Duration = Duration::from_millis(250);
/// How long a tool may take to start its first server on a small tree.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// ... and on the 100k-file tree, where a slow peer is reported as failed rather than waited on.
const LARGE_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a tool's initial scan may take before it counts as failed.
const SCAN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one edit may take to restart the server.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// The unit of utime/stime in /proc/PID/stat (USER_HZ: 100 on every Linux ABI in use).
const TICKS_PER_SECOND: f64 = 100.0;
/// Protocol variables from the bench's own environment must not reach any tool.
const STRAY_VARIABLES: &[&str] = &[
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "RELOAD_LOG",
];

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|arg| arg == CHILD_ARG) {
        return stand_in_server(&args[1..]);
    }
    // `cargo bench` passes `--bench`; plain words pick scenarios.
    let filters: Vec<String> = args
        .iter()
        .filter_map(|arg| arg.to_str())
        .filter(|arg| !arg.starts_with('-'))
        .map(str::to_owned)
        .collect();
    match run(&filters) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dev_loop: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

type Scenario = fn(&mut Bench) -> Result<()>;

fn run(filters: &[String]) -> Result<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let bins = Bins::prepare()?;
    let base = TempBase::create()?;
    let mut bench = Bench {
        quick,
        bins,
        base,
        report: Report::default(),
        stock_made: false,
    };
    println!(
        "dev_loop{}: debounce {} ms, {} CPUs, load average {}",
        if quick { " (BENCH_QUICK)" } else { "" },
        DEBOUNCE.as_millis(),
        thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_average()
    );
    for tool in Tool::ALL {
        let version = bench.bins.version(tool).unwrap_or("not installed: skipped");
        println!("  {:<10} {version}", tool.name());
    }

    let scenarios: [(&str, Scenario); 7] = [
        ("restart", restart_overhead),
        ("burst", burst),
        ("idle", idle),
        ("large-tree", large_tree),
        ("ignored-bulk", ignored_bulk),
        ("restart-gap", restart_gap),
        ("build-cancel", build_cancel),
    ];
    let began = Instant::now();
    for (name, scenario) in scenarios {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        if let Err(err) = scenario(&mut bench) {
            println!("  scenario {name} could not run: {err:#}");
            bench
                .report
                .record(name, "scenario", "all", Value::Failed(format!("{err:#}")));
        }
        println!("  ({:.1} s)", started.elapsed().as_secs_f64());
    }

    bench.report.print_table();
    let path = bench.write_json(began.elapsed())?;
    println!(
        "\nload average now {}; results written to {}",
        load_average(),
        path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The stand-in server

/// `__bench_child START_LOG [VERSION_FILE]`: append `pid unix-nanos version` to START_LOG as the
/// very first thing, then idle until killed. It also leaves by itself once the log's directory
/// is gone, so a stray one cannot outlive the bench.
fn stand_in_server(args: &[OsString]) -> ExitCode {
    let at = unix_nanos(SystemTime::now());
    let Some(log) = args.first().map(Path::new) else {
        eprintln!("{CHILD_ARG}: no start log given");
        return ExitCode::from(2);
    };
    let version = args
        .get(1)
        .and_then(|path| fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && !text.contains(char::is_whitespace))
        .unwrap_or_else(|| "-".to_owned());
    let line = format!("{} {at} {version}\n", std::process::id());
    // One write to an O_APPEND file: lines of successive servers never interleave.
    let written = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!("{CHILD_ARG}: cannot log to {}: {err}", log.display());
        return ExitCode::FAILURE;
    }
    let scratch = log.parent().unwrap_or(Path::new("/")).to_owned();
    let born = Instant::now();
    while scratch.exists() && born.elapsed() < Duration::from_secs(30 * 60) {
        thread::sleep(Duration::from_millis(200));
    }
    ExitCode::SUCCESS
}

/// One line of a start log: a server that started.
#[derive(Debug, Clone)]
struct Start {
    at: SystemTime,
    version: String,
}

/// The log the stand-in servers of one tool run append to.
struct StartLog(PathBuf);

impl StartLog {
    fn read(&self) -> Vec<Start> {
        let text = fs::read_to_string(&self.0).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let _pid: u32 = fields.next()?.parse().ok()?;
                let nanos: u64 = fields.next()?.parse().ok()?;
                Some(Start {
                    at: UNIX_EPOCH + Duration::from_nanos(nanos),
                    version: fields.next()?.to_owned(),
                })
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.read().len()
    }
}

// ---------------------------------------------------------------------------------------------
// Tools

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Reload,
    Watchexec,
    Nodemon,
}

impl Tool {
    const ALL: [Tool; 3] = [Tool::Reload, Tool::Watchexec, Tool::Nodemon];

    fn name(self) -> &'static str {
        match self {
            Tool::Reload => "reload",
            Tool::Watchexec => "watchexec",
            Tool::Nodemon => "nodemon",
        }
    }

    /// The command that makes this tool do `job`: the same debounce, extension filter, build
    /// and server for every tool, in each tool's own syntax.
    fn command(self, exe: &Path, job: &Job) -> Command {
        let mut command = Command::new(exe);
        let debounce = format!("{}ms", DEBOUNCE.as_millis());
        match self {
            Tool::Reload => {
                command
                    .args(["--debounce", &debounce, "-e", EXT, "-b", &job.build])
                    .args(&job.flags)
                    .arg("--")
                    .args(&job.program);
            }
            Tool::Watchexec => {
                // `-n`: the words below are the argv, no extra shell around our `sh -c`.
                let script = format!("{} && exec \"$0\" \"$@\"", job.build);
                command
                    .args(["--debounce", &debounce, "--restart", "-n", "--exts", EXT])
                    .args(&job.flags)
                    .args(["--", "sh", "-c", &script])
                    .args(&job.program);
            }
            Tool::Nodemon => {
                let program: Vec<String> = job.program.iter().map(|w| shell_quote(w)).collect();
                let script = format!("{} && exec {}", job.build, program.join(" "));
                let delay = format!("{}", DEBOUNCE.as_secs_f64());
                command
                    .args(["--delay", &delay, "--ext", EXT, "--signal", "SIGTERM"])
                    .args(["--no-update-notifier", "--no-colors"])
                    .args(&job.flags)
                    .args(["--exec", &script]);
            }
        }
        command
    }
}

/// What a scenario asks a tool to do.
struct Job {
    /// The watched tree, and every tool's working directory.
    root: PathBuf,
    /// A shell line: `true` is the no-op build. Empty means no build step at all, which only
    /// reload can express (`-b ''`).
    build: String,
    /// The server's argv.
    program: Vec<OsString>,
    env: Vec<(String, String)>,
    /// Tool-specific flags (sockets, readiness), placed before the program.
    flags: Vec<String>,
}

impl Job {
    fn new(root: &Path, program: Vec<OsString>) -> Job {
        Job {
            root: root.to_owned(),
            build: "true".to_owned(),
            program,
            env: Vec::new(),
            flags: Vec::new(),
        }
    }

    fn build(mut self, line: impl Into<String>) -> Job {
        self.build = line.into();
        self
    }

    fn env(mut self, key: &str, value: impl ToString) -> Job {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }

    fn flags(mut self, flags: &[&str]) -> Job {
        self.flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self
    }
}

/// The programs the bench runs.
struct Bins {
    reload: PathBuf,
    hello_server: PathBuf,
    /// This binary, which doubles as the stand-in server.
    stand_in: PathBuf,
    watchexec: Option<PathBuf>,
    nodemon: Option<PathBuf>,
    versions: BTreeMap<Tool, String>,
}

impl Bins {
    /// Build reload and hello_server in release mode (cargo bench does not promise the binary
    /// is fresh), and look for the peers on PATH.
    fn prepare() -> Result<Bins> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        println!("building reload and examples/hello_server (release)");
        let status = Command::new(&cargo)
            .args(["build", "--release", "--bin", "reload"])
            .args(["--example", "hello_server"])
            .current_dir(manifest)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
        ensure!(status.success(), "cargo build --release failed: {status}");
        let reload = PathBuf::from(env!("CARGO_BIN_EXE_reload"));
        let hello_server = reload
            .parent()
            .context("the reload binary has no directory")?
            .join("examples/hello_server");
        ensure!(
            hello_server.is_file(),
            "{} is missing",
            hello_server.display()
        );
        let stand_in = std::env::current_exe().context("cannot find the bench's own binary")?;

        let mut bins = Bins {
            reload,
            hello_server,
            stand_in,
            watchexec: find_on_path("watchexec"),
            nodemon: find_on_path("nodemon"),
            versions: BTreeMap::new(),
        };
        for tool in Tool::ALL {
            let Some(exe) = bins.tool(tool).map(Path::to_owned) else {
                continue;
            };
            match (version_of(&exe), tool) {
                (Some(version), _) => {
                    bins.versions.insert(tool, version);
                }
                (None, Tool::Reload) => bail!("{} --version fails", exe.display()),
                // A peer that is installed but does not run is as good as missing.
                (None, Tool::Watchexec) => bins.watchexec = None,
                (None, Tool::Nodemon) => bins.nodemon = None,
            }
        }
        Ok(bins)
    }

    fn tool(&self, tool: Tool) -> Option<&Path> {
        match tool {
            Tool::Reload => Some(&self.reload),
            Tool::Watchexec => self.watchexec.as_deref(),
            Tool::Nodemon => self.nodemon.as_deref(),
        }
    }

    fn version(&self, tool: Tool) -> Option<&str> {
        self.versions.get(&tool).map(String::as_str)
    }

    /// The stand-in server's argv: it logs its starts to `starts`, with the contents of
    /// `version` (what the build produced) when given.
    fn stand_in(&self, starts: &StartLog, version: Option<&Path>) -> Vec<OsString> {
        let mut argv = vec![
            self.stand_in.clone().into_os_string(),
            CHILD_ARG.into(),
            starts.0.clone().into_os_string(),
        ];
        argv.extend(version.map(|v| v.as_os_str().to_owned()));
        argv
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn version_of(exe: &Path) -> Option<String> {
    let output = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next()?.trim().to_owned();
    (output.status.success() && !first.is_empty()).then_some(first)
}

/// A running tool. Dropping it stops the tool (SIGTERM, which each of them passes on to its
/// server), kills its process group if it lingers, then kills anything left in the scenario's
/// directory.
struct Session {
    tool: Tool,
    process: Child,
    /// Just before the spawn.
    launched: SystemTime,
    log: PathBuf,
    area: PathBuf,
}

impl Session {
    fn launch(tool: Tool, exe: &Path, job: &Job, area: &Area, name: &str) -> Result<Session> {
        let log = area.scratch.join(format!("{name}.out"));
        let output = fs::File::create(&log).context("cannot create the tool's log")?;
        let mut command = tool.command(exe, job);
        command
            .current_dir(&job.root)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0);
        for variable in STRAY_VARIABLES {
            command.env_remove(variable);
        }
        let launched = SystemTime::now();
        let process = command
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        Ok(Session {
            tool,
            process,
            launched,
            log,
            area: area.dir.clone(),
        })
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.process.id()).unwrap_or(i32::MAX)
    }

    /// reload's guardian process (`reload __guard`), measured beside reload itself.
    fn guardian(&self) -> Option<i32> {
        if self.tool != Tool::Reload {
            return None;
        }
        children_of(self.pid())
            .into_iter()
            .find(|&pid| command_line(pid).contains("__guard"))
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.process.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited ({status}); its output ends with:\n{}",
                self.tool.name(),
                self.output_tail()
            ),
            Err(err) => bail!("cannot check on {}: {err}", self.tool.name()),
        }
    }

    /// Wait for the start after the first `seen` ones in `starts`.
    fn wait_start(&mut self, starts: &StartLog, seen: usize, timeout: Duration) -> Result<Start> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(start) = starts.read().into_iter().nth(seen) {
                return Ok(start);
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "no server start within {:.0} s; {} said:\n{}",
                    timeout.as_secs_f64(),
                    self.tool.name(),
                    self.output_tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Whether a server starts (after the first `seen`) within `window`.
    fn restarts_within(
        &mut self,
        starts: &StartLog,
        seen: usize,
        window: Duration,
    ) -> Result<bool> {
        let restarted = wait_for(window, || (starts.count() > seen).then_some(()));
        self.check_alive()?;
        Ok(restarted.is_some())
    }

    /// Wait until the tool's initial scan is over: its inotify watch count has not changed and
    /// it has used (almost) no CPU for a second. The count alone is not enough: nodemon pauses
    /// for seconds at the directories while it stats every file, then watches each file. (reload
    /// places every watch before its first start; a tool that starts the server while still
    /// scanning misses changes meanwhile.) Returns the count and when it was first reached, in ms
    /// from launch, to within one poll.
    fn settle_watches(&mut self, timeout: Duration) -> Result<(usize, f64)> {
        let began = Instant::now();
        let pid = self.pid();
        let mut count = inotify_watches(pid)?;
        let mut reached = SystemTime::now();
        let mut steady = (Instant::now(), cpu_ticks(&[pid])?);
        loop {
            // Reading 100k watches from fdinfo is not free: poll less often on large trees.
            thread::sleep(Duration::from_millis(50 + count as u64 / 1000));
            self.check_alive()?;
            let now = inotify_watches(pid)?;
            if now != count {
                (count, reached) = (now, SystemTime::now());
                steady = (Instant::now(), cpu_ticks(&[pid])?);
            } else if steady.0.elapsed() >= Duration::from_secs(1) {
                let ticks = cpu_ticks(&[pid])?;
                if ticks - steady.1 <= 2 {
                    return Ok((count, millis_between(self.launched, reached)));
                }
                steady = (Instant::now(), ticks);
            }
            ensure!(
                began.elapsed() < timeout,
                "its inotify watches were still changing after {:.0} s ({count} so far)",
                timeout.as_secs_f64()
            );
        }
    }

    fn output_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        tail.iter().fold(String::new(), |mut out, line| {
            out.push_str("    | ");
            out.push_str(line);
            out.push('\n');
            out
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.pid());
        if matches!(self.process.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            let exited = wait_for(Duration::from_secs(5), || {
                self.process.try_wait().ok().flatten()
            });
            if exited.is_none() {
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = self.process.wait();
            }
        }
        kill_processes_under(&self.area);
    }
}

// ---------------------------------------------------------------------------------------------
// Where the trees live

/// The bench's own temporary directory, removed at the end.
struct TempBase(PathBuf);

impl TempBase {
    fn create() -> Result<TempBase> {
        let name = format!(
            "reload-bench-{}-{}",
            std::process::id(),
            unix_nanos(SystemTime::now())
        );
        let dir = std::env::temp_dir().join(name);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Canonical, to compare with what /proc/PID/cwd says.
        Ok(TempBase(dir.canonicalize()?))
    }
}

impl Drop for TempBase {
    fn drop(&mut self) {
        kill_processes_under(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One scenario's directory: `project/` (watched) and `scratch/` (its traces, never watched).
struct Area {
    dir: PathBuf,
    project: PathBuf,
    scratch: PathBuf,
}

impl Area {
    fn write(&self, path: &str, contents: &str) -> Result<()> {
        let path = self.project.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    }

    fn start_log(&self, name: &str) -> StartLog {
        StartLog(self.scratch.join(format!("{name}.starts")))
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        kill_processes_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Trees borrowed from the stock; dropping the loan puts them back.
struct Loan {
    /// (where the tree lives in the stock, where it is now)
    moves: Vec<(PathBuf, PathBuf)>,
}

impl Loan {
    /// The leaf directories (10 files each), in the order the stock created them.
    fn leaves(&self) -> Vec<PathBuf> {
        let mut leaves = Vec::new();
        for (_, top) in &self.moves {
            for a in 0..10 {
                for b in 0..10 {
                    for c in 0..10 {
                        leaves.push(top.join(format!("d{a:02}/d{b:02}/d{c:02}")));
                    }
                }
            }
        }
        leaves
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        for (home, away) in &self.moves {
            if let Err(err) = fs::rename(away, home) {
                eprintln!("dev_loop: cannot put {} back: {err}", away.display());
            }
        }
    }
}

/// Fill `dir` with a tree `fanout.len()` levels deep (`d00`, `d01`, ... at each level) whose
/// leaf directories hold `files` files `f000.rs`, `f001.rs`, ... Returns the leaves in order.
/// The top-level directories are shared out over one thread per CPU: creating 100k files is
/// the slowest part of the bench.
fn populate(dir: &Path, fanout: &[usize], files: usize) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let Some((&width, deeper)) = fanout.split_first() else {
        return populate_serially(dir, fanout, files);
    };
    let threads = thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let tops: Vec<PathBuf> = (0..width).map(|i| dir.join(format!("d{i:02}"))).collect();
    let chunks: Vec<&[PathBuf]> = tops.chunks(width.div_ceil(threads).max(1)).collect();
    let results: Vec<Result<Vec<PathBuf>>> = thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || -> Result<Vec<PathBuf>> {
                    let mut leaves = Vec::new();
                    for top in *chunk {
                        leaves.extend(populate_serially(top, deeper, files)?);
                    }
                    Ok(leaves)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| bail!("a tree writer panicked"))
            })
            .collect()
    });
    let mut leaves = Vec::new();
    for result in results {
        leaves.extend(result?);
    }
    Ok(leaves)
}

fn populate_serially(dir: &Path, fanout: &[usize], files: usize) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let Some((&width, deeper)) = fanout.split_first() else {
        for i in 0..files {
            fs::write(dir.join(format!("f{i:03}.rs")), "// v0\n")?;
        }
        return Ok(vec![dir.to_owned()]);
    };
    let mut leaves = Vec::new();
    for i in 0..width {
        leaves.extend(populate_serially(
            &dir.join(format!("d{i:02}")),
            deeper,
            files,
        )?);
    }
    Ok(leaves)
}

// ---------------------------------------------------------------------------------------------
// The bench and its scenarios

struct Bench {
    quick: bool,
    bins: Bins,
    base: TempBase,
    report: Report,
    /// Whether the stock tree (see [`Bench::borrow_trees`]) exists yet.
    stock_made: bool,
}

impl Bench {
    fn area(&self, name: &str) -> Result<Area> {
        let dir = self.base.0.join(name);
        let area = Area {
            project: dir.join("project"),
            scratch: dir.join("scratch"),
            dir,
        };
        fs::create_dir_all(&area.project)?;
        fs::create_dir_all(&area.scratch)?;
        Ok(area)
    }

    /// Move `count` of the stock's 10k-file trees into `dest`, as `d00`, `d01`, ...; they go
    /// back when the returned [`Loan`] is dropped. The stock (ten trees of 10 x 10 x 10
    /// directories holding 10 files each: 10k files in 1111 directories per tree) is made on
    /// first use. Creating files is by far the slowest part of the bench (0.1 to 0.9 ms each on
    /// this machine's ext4, depending on load) while a rename is instant, so the 20k, 50k and
    /// 100k-file trees of the idle, ignored-bulk and large-tree scenarios are the same files.
    fn borrow_trees(&mut self, count: usize, dest: &Path) -> Result<Loan> {
        const TREES: usize = 10;
        ensure!(count <= TREES, "the stock holds only {TREES} trees");
        let stock = self.base.0.join("stock");
        if !self.stock_made {
            let creating = Instant::now();
            populate(&stock, &[TREES, 10, 10, 10], 10)?;
            self.stock_made = true;
            println!(
                "  (created the stock of {}k files in {:.1} s)",
                TREES * 10,
                creating.elapsed().as_secs_f64()
            );
        }
        fs::create_dir_all(dest)?;
        let mut loan = Loan { moves: Vec::new() };
        for i in 0..count {
            let (home, away) = (
                stock.join(format!("d{i:02}")),
                dest.join(format!("d{i:02}")),
            );
            fs::rename(&home, &away)
                .with_context(|| format!("cannot move {} to {}", home.display(), away.display()))?;
            loan.moves.push((home, away));
        }
        Ok(loan)
    }

    /// Run `measure` with `tool`'s executable. A tool that is not installed is recorded as
    /// skipped, a measurement that fails as failed (with why), under each of `metrics`.
    fn attempt<T>(
        &mut self,
        scenario: &'static str,
        metrics: &[&str],
        tool: Tool,
        measure: impl FnOnce(&Bench, &Path) -> Result<T>,
    ) -> Option<T> {
        let Some(exe) = self.bins.tool(tool).map(Path::to_owned) else {
            println!("  {:<10} skipped (not installed)", tool.name());
            for metric in metrics {
                self.report
                    .record(scenario, metric, tool.name(), Value::Skipped);
            }
            return None;
        };
        match measure(self, &exe) {
            Ok(value) => Some(value),
            Err(err) => {
                let reason = format!("{err:#}");
                println!("  {:<10} failed: {reason}", tool.name());
                for metric in metrics {
                    let value = Value::Failed(reason.clone());
                    self.report.record(scenario, metric, tool.name(), value);
                }
                None
            }
        }
    }

    fn runs(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

/// Scenario 1: Save one file; how long until the new server runs, beyond the debounce window.
fn restart_overhead(bench: &mut Bench) -> Result<()> {
    const S: &str = "1 restart";
    const LATENCY: &str = "save -> new server";
    const OVERHEAD: &str = "overhead: median - 50 ms debounce";
    const BASELINE: &str = "baseline: spawn -> stand-in logs its start";
    const NO_BUILD: &str = "reload without a build step (-b ''): overhead";
    let runs = bench.runs(20, 5);
    println!("\n== 1. restart overhead: save one file, {runs} runs, no-op build");
    let area = bench.area("restart")?;
    area.write("src/main.rs", "// v0\n")?;

    let mut overheads = BTreeMap::new();
    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[LATENCY, OVERHEAD], tool, |bench, exe| {
            measure_restarts(bench, tool, exe, &area, "true", runs)
        });
        if let Some(latencies) = measured {
            let overhead = percentile(&latencies, 0.5) - millis(DEBOUNCE);
            overheads.insert(tool, overhead);
            let report = &mut bench.report;
            report.add(S, LATENCY, tool.name(), Value::Samples(latencies));
            report.add(S, OVERHEAD, tool.name(), Value::Millis(overhead));
        }
    }

    // Where the overhead goes: the stand-in's own exec (every tool pays it), and reload's no-op
    // build step (`sh -c true`, run and reaped before the server is touched).
    let baseline = spawn_baseline(&bench.bins, &area, runs)?;
    let baseline_median = percentile(&baseline, 0.5);
    bench
        .report
        .add(S, BASELINE, "bench", Value::Samples(baseline));
    let no_build = bench.attempt(S, &[NO_BUILD], Tool::Reload, |bench, exe| {
        measure_restarts(bench, Tool::Reload, exe, &area, "", runs)
    });
    let no_build = no_build.map(|latencies| percentile(&latencies, 0.5) - millis(DEBOUNCE));
    if let Some(overhead) = no_build {
        let report = &mut bench.report;
        report.add(S, NO_BUILD, Tool::Reload.name(), Value::Millis(overhead));
    }

    if let Some(&reload) = overheads.get(&Tool::Reload) {
        let watchexec = overheads.get(&Tool::Watchexec).copied();
        let mut measured = match watchexec {
            Some(w) => format!("{reload:.1} ms (watchexec {w:.1} ms)"),
            None => format!("{reload:.1} ms (watchexec not measured)"),
        };
        measured.push_str(&format!("; stand-in exec {baseline_median:.1} ms"));
        if let Some(no_build) = no_build {
            measured.push_str(&format!(", without build step {no_build:.1} ms"));
        }
        let met = reload <= 3.0 && watchexec.is_none_or(|w| reload <= w);
        bench
            .report
            .target(S, "overhead <= 3 ms and not above watchexec", measured, met);
    }
    Ok(())
}

/// Launch `tool` with `build` and the stand-in, then save one file `runs` times: the latencies
/// from each save to the new server's start, in ms.
fn measure_restarts(
    bench: &Bench,
    tool: Tool,
    exe: &Path,
    area: &Area,
    build: &str,
    runs: usize,
) -> Result<Vec<f64>> {
    let name = format!(
        "{}-build-{}",
        tool.name(),
        if build.is_empty() { "none" } else { "noop" }
    );
    let starts = area.start_log(&name);
    let job = Job::new(&area.project, bench.bins.stand_in(&starts, None)).build(build);
    let mut session = Session::launch(tool, exe, &job, area, &name)?;
    session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
    let mut latencies = Vec::new();
    for run in 0..runs {
        thread::sleep(SETTLE);
        let seen = starts.count();
        let saved = SystemTime::now();
        area.write("src/main.rs", &format!("// edit {run}\n"))?;
        let start = session
            .wait_start(&starts, seen, RESTART_TIMEOUT)
            .with_context(|| format!("after edit {run}"))?;
        latencies.push(millis_between(saved, start.at));
    }
    Ok(latencies)
}

/// The stand-in's own start, with no tool in between: from the bench's spawn to its logged start.
fn spawn_baseline(bins: &Bins, area: &Area, runs: usize) -> Result<Vec<f64>> {
    let starts = area.start_log("baseline");
    let argv = bins.stand_in(&starts, None);
    let mut samples = Vec::new();
    for run in 0..runs {
        let spawned = SystemTime::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&area.project)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot spawn the stand-in")?;
        let start = wait_for(RESTART_TIMEOUT, || starts.read().into_iter().nth(run));
        let _ = child.kill();
        let _ = child.wait();
        let start = start.context("the stand-in never logged its start")?;
        samples.push(millis_between(spawned, start.at));
    }
    Ok(samples)
}

/// Scenario 2: Rewrite 3000 files as fast as possible; count the restarts that follow.
fn burst(bench: &mut Bench) -> Result<()> {
    const S: &str = "2 burst";
    const RESTARTS: &str = "restarts after 3000 writes";
    println!("\n== 2. burst: rewrite 3000 watched files at once, count restarts (2 s of quiet)");
    let area = bench.area("burst")?;
    let leaves = populate(&area.project.join("src"), &[30], 100)?;
    let files: Vec<PathBuf> = leaves
        .iter()
        .flat_map(|leaf| (0..100).map(move |i| leaf.join(format!("f{i:03}.rs"))))
        .collect();

    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[RESTARTS], tool, |bench, exe| {
            let starts = area.start_log(tool.name());
            let job = Job::new(&area.project, bench.bins.stand_in(&starts, None));
            let mut session = Session::launch(tool, exe, &job, &area, tool.name())?;
            session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
            thread::sleep(SETTLE * 2);
            let seen = starts.count();
            let writing = Instant::now();
            for (i, file) in files.iter().enumerate() {
                fs::write(file, format!("// burst {i}\n"))?;
            }
            let took = writing.elapsed();
            wait_quiet(Duration::from_secs(2), Duration::from_secs(60), || {
                starts.count()
            })?;
            session.check_alive()?;
            Ok((starts.count() - seen, took))
        });
        if let Some((restarts, took)) = measured {
            println!(
                "  {:<10} (the 3000 writes took {:.0} ms)",
                tool.name(),
                millis(took)
            );
            let value = Value::Count(restarts as u64);
            bench.report.add(S, RESTARTS, tool.name(), value);
            if tool == Tool::Reload {
                bench
                    .report
                    .target(S, "exactly 1 restart", restarts.to_string(), restarts == 1);
            }
        }
    }
    Ok(())
}

/// Scenario 3: A 20k-file tree and nothing happening: CPU and memory.
fn idle(bench: &mut Bench) -> Result<()> {
    const S: &str = "3 idle";
    const CPU: &str = "CPU while idle";
    const RSS: &str = "RSS";
    const GUARD_RSS: &str = "RSS of `reload __guard`";
    let window = Duration::from_secs(if bench.quick { 2 } else { 10 });
    println!(
        "\n== 3. idle: 20k-file tree, {} s idle once the tool's watches settled",
        window.as_secs()
    );
    let area = bench.area("idle")?;
    // Dropped before `area`: the trees go back to the stock before the area is removed.
    let _trees = bench.borrow_trees(2, &area.project.join("src"))?;

    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[CPU, RSS], tool, |bench, exe| {
            let starts = area.start_log(tool.name());
            let job = Job::new(&area.project, bench.bins.stand_in(&starts, None));
            let mut session = Session::launch(tool, exe, &job, &area, tool.name())?;
            session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
            // Idle means after the initial scan, however long that takes.
            let (_, settled) = session.settle_watches(SCAN_TIMEOUT)?;
            println!(
                "  {:<10} (watches settled {settled:.0} ms after launch)",
                tool.name()
            );
            thread::sleep(Duration::from_millis(500));
            let mut pids = vec![session.pid()];
            pids.extend(session.guardian());
            let before = cpu_ticks(&pids)?;
            let clock = Instant::now();
            thread::sleep(window);
            let ticks = cpu_ticks(&pids)? - before;
            let seconds = clock.elapsed().as_secs_f64();
            session.check_alive()?;
            let cpu = ticks as f64 / TICKS_PER_SECOND / seconds * 100.0;
            let guardian = session.guardian().map(rss_mib).transpose()?;
            Ok((cpu, rss_mib(session.pid())?, guardian))
        });
        if let Some((cpu, rss, guardian)) = measured {
            bench.report.add(S, CPU, tool.name(), Value::Percent(cpu));
            bench.report.add(S, RSS, tool.name(), Value::MiB(rss));
            if let Some(guardian) = guardian {
                bench
                    .report
                    .add(S, GUARD_RSS, tool.name(), Value::MiB(guardian));
            }
            if tool == Tool::Reload {
                let guard = guardian.map_or_else(String::new, |g| format!(" + guardian {g:.1}"));
                bench
                    .report
                    .target(S, "0.0 % CPU", format!("{cpu:.2} %"), cpu == 0.0);
                bench.report.target(
                    S,
                    "RSS <= 10 MB",
                    format!("{rss:.1} MiB{guard}"),
                    rss <= 10.0,
                );
            }
        }
    }
    Ok(())
}

/// What a tool did on a big tree: measured over several launches, the last one probed further.
struct TreeRuns {
    /// Launch -> first server, per launch (ms).
    startups: Vec<f64>,
    /// Launch -> inotify watch count settled (last launch, ms).
    settled: f64,
    watches: usize,
    rss: f64,
    guardian_rss: Option<f64>,
}

/// Launch `tool` on `area` `runs` times; on the last launch wait for its watches to settle and
/// take its memory, then hand the session to `probe` for the scenario's own checks.
fn tree_runs<T>(
    bench: &Bench,
    tool: Tool,
    exe: &Path,
    area: &Area,
    runs: usize,
    probe: impl FnOnce(&mut Session, &StartLog) -> Result<T>,
) -> Result<(TreeRuns, T)> {
    let mut startups = Vec::new();
    for run in 0..runs {
        let name = format!("{}-{run}", tool.name());
        let starts = area.start_log(&name);
        let job = Job::new(&area.project, bench.bins.stand_in(&starts, None));
        let mut session = Session::launch(tool, exe, &job, area, &name)?;
        let start = session.wait_start(&starts, 0, LARGE_STARTUP_TIMEOUT)?;
        startups.push(millis_between(session.launched, start.at));
        if run + 1 < runs {
            continue;
        }
        let (watches, settled) = session.settle_watches(SCAN_TIMEOUT)?;
        thread::sleep(Duration::from_millis(500));
        let rss = rss_mib(session.pid())?;
        let guardian_rss = session.guardian().map(rss_mib).transpose()?;
        let probed = probe(&mut session, &starts)?;
        let runs = TreeRuns {
            startups,
            settled,
            watches,
            rss,
            guardian_rss,
        };
        return Ok((runs, probed));
    }
    bail!("no launch")
}

/// Scenario 4: 100k files in 10k directories: startup time, memory, and a change at the bottom.
fn large_tree(bench: &mut Bench) -> Result<()> {
    const S: &str = "4 large tree";
    const STARTUP: &str = "launch -> first server";
    const SETTLED: &str = "launch -> watches settled";
    const WATCHES: &str = "inotify watches";
    const RSS: &str = "RSS (watches settled)";
    const GUARD_RSS: &str = "RSS of `reload __guard`";
    const DEEP: &str = "change in deepest dir seen";
    let runs = bench.runs(3, 1);
    println!("\n== 4. large tree: 100k files in 10k directories, {runs} launches per tool");
    let area = bench.area("large")?;
    let trees = bench.borrow_trees(10, &area.project)?;
    let leaves = trees.leaves();
    let deepest = leaves.last().context("no leaves")?.join("f009.rs");

    for tool in Tool::ALL {
        let metrics = [STARTUP, SETTLED, WATCHES, RSS, DEEP];
        let measured = bench.attempt(S, &metrics, tool, |bench, exe| {
            tree_runs(bench, tool, exe, &area, runs, |session, starts| {
                let seen = starts.count();
                fs::write(&deepest, "// deep\n")?;
                session.restarts_within(starts, seen, Duration::from_secs(5))
            })
        });
        let Some((tree, seen)) = measured else {
            continue;
        };
        let median = percentile(&tree.startups, 0.5);
        let report = &mut bench.report;
        report.add(S, STARTUP, tool.name(), Value::Samples(tree.startups));
        report.add(S, SETTLED, tool.name(), Value::Millis(tree.settled));
        report.add(S, WATCHES, tool.name(), Value::Count(tree.watches as u64));
        report.add(S, RSS, tool.name(), Value::MiB(tree.rss));
        if let Some(guardian) = tree.guardian_rss {
            report.add(S, GUARD_RSS, tool.name(), Value::MiB(guardian));
        }
        report.add(S, DEEP, tool.name(), Value::Flag(seen));
        if tool == Tool::Reload {
            let startup = format!("{median:.0} ms (median)");
            report.target(S, "first start <= 1.0 s", startup, median <= 1000.0);
            let rss = tree.rss;
            report.target(S, "RSS <= 30 MB", format!("{rss:.1} MiB"), rss <= 30.0);
            report.target(S, "deepest change seen", yes_no(seen), seen);
        }
    }
    Ok(())
}

/// Scenario 5: A git project whose 50k-file target/ is in .gitignore: watches, startup, and a
/// change under target/ that must not restart anything.
fn ignored_bulk(bench: &mut Bench) -> Result<()> {
    const S: &str = "5 ignored bulk";
    const WATCHES: &str = "inotify watches (settled)";
    const STARTUP: &str = "launch -> first server";
    const SETTLED: &str = "launch -> watches settled";
    const IGNORED: &str = "change in target/ restarts";
    const SOURCE: &str = "change in src/ restarts (control)";
    let runs = bench.runs(3, 1);
    println!(
        "\n== 5. ignored bulk: git project, 200 sources, 50k files in target/ (.gitignore), \
         {runs} launches per tool"
    );
    let area = bench.area("ignored")?;
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&area.project)
        .status()
        .context("cannot run git")?;
    ensure!(git.success(), "git init failed: {git}");
    area.write(".gitignore", "target/\n")?;
    populate(&area.project.join("src"), &[10], 20)?;
    let trees = bench.borrow_trees(5, &area.project.join("target/debug/deps"))?;
    let ignored_file = trees.leaves()[0].join("f000.rs");

    for tool in Tool::ALL {
        let metrics = [WATCHES, STARTUP, SETTLED, IGNORED, SOURCE];
        let measured = bench.attempt(S, &metrics, tool, |bench, exe| {
            tree_runs(bench, tool, exe, &area, runs, |session, starts| {
                let seen = starts.count();
                fs::write(&ignored_file, "// ignored\n")?;
                let ignored = session.restarts_within(starts, seen, Duration::from_secs(1))?;
                // The control: a source change does restart, so "no" above means ignored.
                let seen = starts.count();
                area.write("src/d00/f000.rs", "// edit\n")?;
                let source = session.restarts_within(starts, seen, RESTART_TIMEOUT)?;
                Ok((ignored, source))
            })
        });
        let Some((tree, (ignored, source))) = measured else {
            continue;
        };
        let median = percentile(&tree.startups, 0.5);
        let watches = tree.watches;
        let report = &mut bench.report;
        report.add(S, WATCHES, tool.name(), Value::Count(watches as u64));
        report.add(S, STARTUP, tool.name(), Value::Samples(tree.startups));
        report.add(S, SETTLED, tool.name(), Value::Millis(tree.settled));
        report.add(S, IGNORED, tool.name(), Value::Flag(ignored));
        report.add(S, SOURCE, tool.name(), Value::Flag(source));
        if tool == Tool::Reload {
            let startup = format!("{median:.0} ms (median)");
            report.target(S, "first start <= 0.1 s", startup, median <= 100.0);
            let verdict = format!("{} ({watches} watches)", yes_no(ignored));
            report.target(S, "target/ change restarts nothing", verdict, !ignored);
        }
    }
    Ok(())
}

/// How the port survives a restart in the restart-gap scenario.
#[derive(Debug, Clone, Copy)]
enum Handoff {
    /// Each server binds the port itself.
    Rebind,
    /// The tool holds the listening socket and passes it on (socket activation).
    HeldSocket,
    /// Held socket, and the new server starts before the old one stops (reload only).
    Overlap,
}

impl Handoff {
    fn label(self) -> &'static str {
        match self {
            Handoff::Rebind => "no socket",
            Handoff::HeldSocket => "held socket",
            Handoff::Overlap => "held socket, overlap + notify",
        }
    }
}

/// What the HTTP client saw during the restarts.
#[derive(Debug)]
struct Gap {
    requests: usize,
    failed: usize,
    worst_ms: f64,
    /// The longest time between two answered requests.
    longest_gap_ms: f64,
    errors: BTreeMap<String, usize>,
}

/// Scenario 6: An HTTP client hammering hello_server (300 ms warm-up) through 10 restarts.
fn restart_gap(bench: &mut Bench) -> Result<()> {
    const S: &str = "6 restart gap";
    let restarts = bench.runs(10, 3);
    println!(
        "\n== 6. restart gap: sequential GETs (5 ms apart) on hello_server (WARMUP_MS=300) \
         through {restarts} restarts"
    );
    let area = bench.area("gap")?;
    area.write("src/main.rs", "// v0\n")?;

    for handoff in [Handoff::Rebind, Handoff::HeldSocket, Handoff::Overlap] {
        let failed = format!("{}: failed requests", handoff.label());
        let worst = format!("{}: worst latency", handoff.label());
        let longest = format!("{}: longest gap between answers", handoff.label());
        for tool in Tool::ALL {
            let port = free_port()?;
            let Some(job) = gap_job(&bench.bins, tool, handoff, &area, port) else {
                continue;
            };
            let metrics = [failed.as_str(), worst.as_str(), longest.as_str()];
            let name = format!("{}-{handoff:?}", tool.name());
            let measured = bench.attempt(S, &metrics, tool, |_, exe| {
                let session = Session::launch(tool, exe, &job, &area, &name)?;
                measure_gap(session, &area, port, restarts)
            });
            if let Some(gap) = measured {
                let report = &mut bench.report;
                report.add(S, &failed, tool.name(), Value::Count(gap.failed as u64));
                report.add(S, &worst, tool.name(), Value::Millis(gap.worst_ms));
                report.add(S, &longest, tool.name(), Value::Millis(gap.longest_gap_ms));
                println!(
                    "  {:<10} ({} requests; errors: {:?})",
                    tool.name(),
                    gap.requests,
                    gap.errors
                );
            }
        }
    }
    if bench.bins.watchexec.is_some() {
        watchexec_socket_without_shim(bench, &area)?;
    }
    Ok(())
}

/// The job for `tool` in the restart-gap scenario; `None` when the tool cannot hand off that way.
fn gap_job(bins: &Bins, tool: Tool, handoff: Handoff, area: &Area, port: u16) -> Option<Job> {
    let address = format!("127.0.0.1:{port}");
    let job = Job::new(&area.project, vec![bins.hello_server.clone().into()])
        .env("PORT", port)
        .env("WARMUP_MS", 300);
    match (tool, handoff) {
        (_, Handoff::Rebind) => Some(job),
        (Tool::Reload, Handoff::HeldSocket) => Some(job.flags(&["--listen", &address])),
        (Tool::Reload, Handoff::Overlap) => {
            Some(job.flags(&["--listen", &address, "--overlap", "--ready", "notify"]))
        }
        // watchexec 2.8 passes the socket at fd 9 (announced in LISTEN_FDS_FIRST_FD, systemfd's
        // extension) and sets no LISTEN_PID, while the protocol hello_server follows, like
        // libsystemd's, wants fd 3 and LISTEN_PID = its pid. The shell in front of the server
        // makes up for both (`exec` keeps the shell's pid). See `watchexec_socket_without_shim`.
        (Tool::Watchexec, Handoff::HeldSocket) => Some(
            job.flags(&["--socket", &address])
                .build("export LISTEN_PID=$$ && eval \"exec 3<&${LISTEN_FDS_FIRST_FD:-3}\""),
        ),
        _ => None,
    }
}

fn measure_gap(mut session: Session, area: &Area, port: u16, restarts: usize) -> Result<Gap> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let first = wait_for(STARTUP_TIMEOUT, || http_get(address).ok()).ok_or_else(|| {
        anyhow!(
            "the server never answered on {address}; {} said:\n{}",
            session.tool.name(),
            session.output_tail()
        )
    })?;
    let mut servers = HashSet::from([first]);
    let client = Client::start(address);
    thread::sleep(SETTLE);
    for restart in 0..restarts {
        area.write("src/main.rs", &format!("// restart {restart}\n"))?;
        // A pid not seen before answered: the new server serves. (With overlap the old one may
        // still answer a few requests meanwhile, so "different from the last" is not enough.)
        let new = wait_for(RESTART_TIMEOUT, || {
            let pid = client.last_pid();
            (pid != 0 && !servers.contains(&pid)).then_some(pid)
        });
        let Some(new) = new else {
            session.check_alive()?;
            bail!("no new server answered within 10 s after restart {restart}");
        };
        servers.insert(new);
        thread::sleep(SETTLE);
    }
    let probes = client.finish();
    session.check_alive()?;

    let mut gap = Gap {
        requests: probes.len(),
        failed: 0,
        worst_ms: 0.0,
        longest_gap_ms: 0.0,
        errors: BTreeMap::new(),
    };
    let mut last_answer: Option<Instant> = None;
    for probe in &probes {
        gap.worst_ms = gap.worst_ms.max(millis(probe.took));
        match &probe.outcome {
            Ok(_) => {
                if let Some(last) = last_answer {
                    gap.longest_gap_ms = gap.longest_gap_ms.max(millis(probe.done - last));
                }
                last_answer = Some(probe.done);
            }
            Err(kind) => {
                gap.failed += 1;
                *gap.errors.entry(kind.clone()).or_default() += 1;
            }
        }
    }
    Ok(gap)
}

/// watchexec's `--socket` as a user gets it: what reaches the server, and whether it serves.
fn watchexec_socket_without_shim(bench: &mut Bench, area: &Area) -> Result<()> {
    const S: &str = "6 restart gap";
    const METRIC: &str = "held socket without a LISTEN_PID shim";
    let Some(exe) = bench.bins.watchexec.clone() else {
        return Ok(());
    };
    let port = free_port()?;
    let environment = area.scratch.join("watchexec-socket.env");
    let record = format!(
        "echo \"LISTEN_FDS=${{LISTEN_FDS-unset}} LISTEN_FDS_FIRST_FD=${{LISTEN_FDS_FIRST_FD-unset}} \
         LISTEN_PID=${{LISTEN_PID-unset}} in pid $$\" > {}",
        shell_quote(environment.as_os_str())
    );
    let address = format!("127.0.0.1:{port}");
    let job = gap_job(&bench.bins, Tool::Watchexec, Handoff::Rebind, area, port)
        .context("no job")?
        .flags(&["--socket", &address])
        .build(record);
    let session = Session::launch(Tool::Watchexec, &exe, &job, area, "watchexec-raw-socket")?;
    // Ask the server's own output first: a GET on a socket nobody accepts on would just hang.
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let answered = wait_for(Duration::from_secs(5), || {
        let said = session.output_tail();
        if said.contains("hello_server: cannot") {
            Some(false)
        } else if said.contains("listening on") {
            Some(http_get(address).is_ok())
        } else {
            None
        }
    })
    .unwrap_or(false);
    let seen = fs::read_to_string(&environment).unwrap_or_default();
    let server_said = session
        .output_tail()
        .lines()
        .map(|l| l.trim_start_matches("    | ").to_owned())
        .filter(|l| l.starts_with("hello_server"))
        .collect::<Vec<_>>()
        .join("; ");
    drop(session);
    let note = if answered {
        format!("served ({})", seen.trim())
    } else {
        format!(
            "never served: the server got {}; {server_said}",
            seen.trim()
        )
    };
    bench
        .report
        .add(S, METRIC, Tool::Watchexec.name(), Value::Text(note));
    Ok(())
}

/// One request of the hammering client.
struct Probe {
    /// When it ended.
    done: Instant,
    took: Duration,
    /// The answering server's pid, or what went wrong.
    outcome: Result<u32, String>,
}

/// A thread doing sequential GETs until told to stop.
struct Client {
    stop: Arc<AtomicBool>,
    last_pid: Arc<AtomicU32>,
    thread: Option<JoinHandle<Vec<Probe>>>,
}

impl Client {
    /// Spacing between requests: dense enough to see any gap, sparse enough that the closed
    /// connections' TIME_WAIT entries (60 s) never exhaust the 28k local ports.
    const PAUSE: Duration = Duration::from_millis(5);

    fn start(address: SocketAddr) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let last_pid = Arc::new(AtomicU32::new(0));
        let thread = {
            let (stop, last_pid) = (stop.clone(), last_pid.clone());
            thread::spawn(move || {
                let mut probes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let began = Instant::now();
                    let outcome = http_get(address);
                    if let Ok(pid) = outcome {
                        last_pid.store(pid, Ordering::SeqCst);
                    }
                    probes.push(Probe {
                        done: Instant::now(),
                        took: began.elapsed(),
                        outcome,
                    });
                    thread::sleep(Self::PAUSE);
                }
                probes
            })
        };
        Client {
            stop,
            last_pid,
            thread: Some(thread),
        }
    }

    fn last_pid(&self) -> u32 {
        self.last_pid.load(Ordering::SeqCst)
    }

    fn finish(mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `GET /` from hello_server: the pid in its answer, or the kind of failure.
fn http_get(address: SocketAddr) -> Result<u32, String> {
    let timeout = Duration::from_secs(5);
    let describe = |err: std::io::Error| format!("{:?}", err.kind());
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(describe)?;
    stream.set_read_timeout(Some(timeout)).map_err(describe)?;
    stream.set_write_timeout(Some(timeout)).map_err(describe)?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .map_err(describe)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(describe)?;
    reply
        .split("hello from pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| "bad reply".to_owned())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Scenario 7: Six edits 300 ms apart while a 1 s build runs: how many builds complete, and how soon the
/// last edit is served.
fn build_cancel(bench: &mut Bench) -> Result<()> {
    const S: &str = "7 build cancel";
    const EDITS: u32 = 6;
    const COMPLETED: &str = "builds completed";
    const SERVERS: &str = "servers started";
    const LATENCY: &str = "last edit -> newest version serving";
    println!("\n== 7. build cancellation: {EDITS} edits 300 ms apart, build = `sleep 1`");
    let area = bench.area("cancel")?;

    for tool in Tool::ALL {
        let measured = bench.attempt(S, &[COMPLETED, SERVERS, LATENCY], tool, |bench, exe| {
            area.write("src/version.rs", "0\n")?;
            let starts = area.start_log(tool.name());
            let builds = area.scratch.join(format!("{}.builds", tool.name()));
            let artifact = area.scratch.join(format!("{}.artifact", tool.name()));
            // The build "compiles" the version into an artifact the server reads at start, and
            // notes that it completed.
            let build = format!(
                "sleep 1 && cp src/version.rs {artifact} && echo done >> {builds}",
                artifact = shell_quote(artifact.as_os_str()),
                builds = shell_quote(builds.as_os_str())
            );
            let program = bench.bins.stand_in(&starts, Some(&artifact));
            let job = Job::new(&area.project, program).build(build);
            let mut session = Session::launch(tool, exe, &job, &area, tool.name())?;
            session.wait_start(&starts, 0, STARTUP_TIMEOUT)?;
            thread::sleep(SETTLE);
            let completed_before = line_count(&builds);
            let seen = starts.count();
            let mut last_edit = SystemTime::now();
            for version in 1..=EDITS {
                if version > 1 {
                    thread::sleep(Duration::from_millis(300));
                }
                last_edit = SystemTime::now();
                area.write("src/version.rs", &format!("{version}\n"))?;
            }
            let newest = EDITS.to_string();
            let serving = wait_for(Duration::from_secs(20), || {
                starts
                    .read()
                    .into_iter()
                    .skip(seen)
                    .find(|s| s.version == newest)
            });
            let Some(serving) = serving else {
                session.check_alive()?;
                bail!(
                    "version {EDITS} never served; {} said:\n{}",
                    tool.name(),
                    session.output_tail()
                );
            };
            // A build that was not cancelled may still be running: wait until all is quiet.
            wait_quiet(Duration::from_millis(1500), Duration::from_secs(30), || {
                line_count(&builds) + starts.count()
            })?;
            session.check_alive()?;
            Ok((
                line_count(&builds) - completed_before,
                starts.count() - seen,
                millis_between(last_edit, serving.at),
            ))
        });
        if let Some((completed, servers, latency)) = measured {
            let report = &mut bench.report;
            report.add(S, COMPLETED, tool.name(), Value::Count(completed as u64));
            report.add(S, SERVERS, tool.name(), Value::Count(servers as u64));
            report.add(S, LATENCY, tool.name(), Value::Millis(latency));
            if tool == Tool::Reload {
                let measured =
                    format!("{completed} (newest served {latency:.0} ms after the last edit)");
                report.target(S, "<= 2 builds completed", measured, completed <= 2);
            }
        }
    }
    Ok(())
}

fn line_count(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Poll `probe` until it yields a value or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Wait until `state` has not changed for `quiet`; fail if it still changes after `timeout`.
fn wait_quiet<T: PartialEq>(
    quiet: Duration,
    timeout: Duration,
    mut state: impl FnMut() -> T,
) -> Result<()> {
    let began = Instant::now();
    let mut last = state();
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        ensure!(
            began.elapsed() < timeout,
            "still changing after {:.0} s",
            timeout.as_secs_f64()
        );
        thread::sleep(POLL * 4);
        let now = state();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc readers

/// The fields of /proc/PID/stat after the command name (which may hold spaces): index 0 is
/// the state, 1 the parent pid, 11 utime, 12 stime.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time (user + system) of `pids` together, in clock ticks.
fn cpu_ticks(pids: &[i32]) -> Result<u64> {
    let mut total = 0;
    for &pid in pids {
        let fields = stat_fields(pid).with_context(|| format!("pid {pid} is gone"))?;
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        total += field(11).context("no utime")? + field(12).context("no stime")?;
    }
    Ok(total)
}

/// VmRSS of `pid`, in MiB.
fn rss_mib(pid: i32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("pid {pid} is gone"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

/// Inotify watches held by `pid`: the `inotify wd:` lines of its fdinfo files.
fn inotify_watches(pid: i32) -> Result<usize> {
    let entries = fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .with_context(|| format!("cannot read the fdinfo of pid {pid}"))?;
    Ok(entries
        .flatten()
        .filter_map(|entry| fs::read_to_string(entry.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|line| line.starts_with("inotify wd:"))
                .count()
        })
        .sum())
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn children_of(parent: i32) -> Vec<i32> {
    let parent = parent.to_string();
    all_pids()
        .into_iter()
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f.get(1) == Some(&parent)))
        .collect()
}

fn command_line(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// SIGKILL, by pid, every live process whose working directory is inside `dir`: whatever a
/// tool started there and left behind.
fn kill_processes_under(dir: &Path) {
    for _ in 0..20 {
        let left: Vec<i32> = all_pids()
            .into_iter()
            .filter(|&pid| {
                fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
            })
            .filter(|&pid| stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z")))
            .collect();
        if left.is_empty() {
            return;
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Numbers

fn unix_nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `to - from` in milliseconds, negative if `to` came first.
fn millis_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(after) => millis(after),
        Err(before) => -millis(before.duration()),
    }
}

/// The `p` quantile (0..=1) of `samples`, interpolating between neighbours.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

fn shell_quote(word: &OsStr) -> String {
    format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"))
}

/// Widest cell in the table; the JSON and the lines printed as results come keep full texts.
const CELL_WIDTH: usize = 48;

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width - 1).collect();
    format!("{kept}…")
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug, Clone)]
enum Value {
    /// Milliseconds, one per run: shown as median and p90.
    Samples(Vec<f64>),
    Millis(f64),
    Count(u64),
    Percent(f64),
    MiB(f64),
    Flag(bool),
    Text(String),
    /// The tool is not installed.
    Skipped,
    /// The measurement could not be made, and why.
    Failed(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Samples(samples) if samples.len() == 1 => write!(f, "{:.1} ms", samples[0]),
            Value::Samples(samples) => write!(
                f,
                "{:.1} ms (p90 {:.1})",
                percentile(samples, 0.5),
                percentile(samples, 0.9)
            ),
            Value::Millis(ms) => write!(f, "{ms:.1} ms"),
            Value::Count(n) => write!(f, "{n}"),
            Value::Percent(p) => write!(f, "{p:.2} %"),
            Value::MiB(m) => write!(f, "{m:.1} MiB"),
            Value::Flag(flag) => f.write_str(&yes_no(*flag)),
            Value::Text(text) => f.write_str(text),
            Value::Skipped => f.write_str("skipped"),
            Value::Failed(_) => f.write_str("failed"),
        }
    }
}

impl Value {
    fn to_json(&self) -> Json {
        match self {
            Value::Samples(samples) => json!({
                "median_ms": percentile(samples, 0.5),
                "p90_ms": percentile(samples, 0.9),
                "min_ms": percentile(samples, 0.0),
                "max_ms": percentile(samples, 1.0),
                "runs": samples.len(),
                "samples_ms": samples,
            }),
            Value::Millis(ms) => json!({ "ms": ms }),
            Value::Count(n) => json!({ "count": n }),
            Value::Percent(p) => json!({ "percent": p }),
            Value::MiB(m) => json!({ "mib": m }),
            Value::Flag(flag) => json!({ "yes": flag }),
            Value::Text(text) => json!({ "note": text }),
            Value::Skipped => json!({ "status": "skipped" }),
            Value::Failed(reason) => json!({ "status": "failed", "reason": reason }),
        }
    }
}

struct Record {
    scenario: &'static str,
    metric: String,
    tool: String,
    value: Value,
}

/// A target reload is held to, and how it fared.
struct Target {
    scenario: &'static str,
    goal: &'static str,
    measured: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    records: Vec<Record>,
    targets: Vec<Target>,
}

impl Report {
    /// Record a result and print it.
    fn add(&mut self, scenario: &'static str, metric: &str, tool: &str, value: Value) {
        println!("  {tool:<10} {metric}: {value}");
        self.record(scenario, metric, tool, value);
    }

    /// Record a result without printing it.
    fn record(&mut self, scenario: &'static str, metric: &str, tool: &str, value: Value) {
        self.records.push(Record {
            scenario,
            metric: metric.to_owned(),
            tool: tool.to_owned(),
            value,
        });
    }

    fn target(&mut self, scenario: &'static str, goal: &'static str, measured: String, met: bool) {
        self.targets.push(Target {
            scenario,
            goal,
            measured,
            met,
        });
    }

    /// One row per scenario and metric, one column per tool; then reload's targets, then the
    /// reasons for any failure.
    fn print_table(&self) {
        let mut tools: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
        for record in &self.records {
            if !tools.contains(&record.tool.as_str()) {
                tools.push(&record.tool);
            }
        }
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        for record in &self.records {
            let label = format!("{} | {}", record.scenario, record.metric);
            let index = if let Some(index) = rows.iter().position(|(l, _)| *l == label) {
                index
            } else {
                rows.push((label, vec!["-".to_owned(); tools.len()]));
                rows.len() - 1
            };
            if let Some(column) = tools.iter().position(|t| *t == record.tool) {
                rows[index].1[column] = truncate(&record.value.to_string(), CELL_WIDTH);
            }
        }
        let first = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..tools.len())
            .map(|c| {
                rows.iter()
                    .map(|(_, cells)| cells[c].chars().count())
                    .chain([tools[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();

        println!("\nResults (latencies: median, p90 in brackets)\n");
        let mut header = format!("{:first$}", "scenario | metric");
        for (tool, width) in tools.iter().zip(&widths) {
            header.push_str(&format!("  {tool:<width$}"));
        }
        println!("{header}");
        println!("{}", "-".repeat(header.chars().count()));
        let mut scenario = "";
        for (label, cells) in &rows {
            let this = label.split(" | ").next().unwrap_or("");
            if !scenario.is_empty() && this != scenario {
                println!();
            }
            scenario = this;
            let mut line = format!("{label:first$}");
            for (cell, width) in cells.iter().zip(&widths) {
                line.push_str(&format!("  {cell:<width$}"));
            }
            println!("{}", line.trim_end());
        }

        if !self.targets.is_empty() {
            println!("\nreload's targets\n");
            for target in &self.targets {
                let verdict = if target.met { "met   " } else { "MISSED" };
                println!(
                    "  {verdict} {:<15} {:<45} {}",
                    target.scenario, target.goal, target.measured
                );
            }
        }
        let failures: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| matches!(r.value, Value::Failed(_)))
            .collect();
        if !failures.is_empty() {
            println!("\nFailures\n");
            let mut shown = HashSet::new();
            for record in failures {
                if let Value::Failed(reason) = &record.value
                    && shown.insert((record.scenario, &record.tool, reason))
                {
                    println!("  {} / {}: {reason}", record.scenario, record.tool);
                }
            }
        }
    }
}

impl Bench {
    /// Write the report as JSON to target/bench/dev_loop.json.
    fn write_json(&self, elapsed: Duration) -> Result<PathBuf> {
        let target = Path::new(env!("CARGO_BIN_EXE_reload"))
            .ancestors()
            .nth(2)
            .map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
                Path::to_owned,
            );
        let dir = target.join("bench");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tools: serde_json::Map<String, Json> = Tool::ALL
            .iter()
            .map(|&tool| {
                let version = self.bins.version(tool).map_or(Json::Null, |v| json!(v));
                (tool.name().to_owned(), version)
            })
            .collect();
        let results: Vec<Json> = self
            .report
            .records
            .iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario,
                    "metric": r.metric,
                    "tool": r.tool,
                    "value": r.value.to_json(),
                })
            })
            .collect();
        let targets: Vec<Json> = self
            .report
            .targets
            .iter()
            .map(|t| {
                json!({
                    "scenario": t.scenario,
                    "target": t.goal,
                    "measured": t.measured,
                    "met": t.met,
                })
            })
            .collect();
        let document = json!({
            "bench": "dev_loop",
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "quick": self.quick,
            "debounce_ms": millis(DEBOUNCE),
            "cpus": thread::available_parallelism().map_or(0, std::num::NonZero::get),
            "load_average_at_end": load_average(),
            "elapsed_s": elapsed.as_secs_f64(),
            "tools": tools,
            "results": results,
            "targets": targets,
        });
        let path = dir.join("dev_loop.json");
        fs::write(&path, serde_json::to_string_pretty(&document)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}
