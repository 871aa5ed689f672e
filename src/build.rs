//! The build stage: runs the build command in its own process group, reports how it ended, and
//! can be cancelled (the whole group is killed) when newer changes make it stale.
//!
//! The build's stdout and stderr go straight to the terminal. For a Cargo build, stdout carries
//! cargo's JSON messages instead (diagnostics are still rendered on stderr); they are read here
//! for the path of the executable that was built.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use nix::sys::signal::Signal;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::BuildCommand;
use crate::lifecycle::Tail;
use crate::process::{self, Command, Stdio};
use crate::shell;

#[derive(Debug)]
pub struct BuildOutcome {
    pub result: BuildResult,
    pub elapsed: Duration,
    /// The end of what the build printed (both streams, colours kept), for a page that shows
    /// why it failed.
    pub output: Arc<str>,
}

#[derive(Debug)]
pub enum BuildResult {
    /// For a Cargo build, the executable cargo reported.
    Succeeded { executable: Option<PathBuf> },
    /// How the build process ended ("exit 101", "SIGSEGV"), and how many compiler errors its
    /// output showed, when it was cargo's or go's.
    Failed { how: String, errors: Option<usize> },
}

/// A build in progress. Dropping it kills it.
#[derive(Debug)]
pub struct RunningBuild {
    /// Sent (or dropped) to kill the build; its monitor task owns the process group.
    cancel: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<BuildOutcome>,
}

/// How long the build's output may still be read once its process group is gone. Only a
/// process that left the group and could not be killed holds the pipes longer; the build must
/// not wait for it.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// The most of one output line kept for counting errors (the output itself always passes
/// through whole): an error line is recognised by its first few characters.
const LINE_KEPT: usize = 4096;

/// The longest line of cargo's JSON messages that is parsed; a longer one (a build script
/// printing without newlines) is passed through unparsed.
const MESSAGE_KEPT: usize = 16 * 1024 * 1024;

impl RunningBuild {
    /// Spawn `command` in `root`. Fails only when the process cannot be started at all.
    /// `origin` says what it is for (the build, or a post command) in reports of processes it
    /// leaves behind.
    pub fn start(command: &BuildCommand, root: &Path, origin: process::Origin) -> Result<Self> {
        let started = Instant::now();
        let (mut cmd, cargo) = build_process(command, root);
        let (mut child, group) = process::spawn_group(&mut cmd, origin, &[]).map_err(|err| {
            let program = Path::new(cmd.as_std().get_program());
            anyhow!(
                "cannot start the build command `{command}`: {}",
                process::explain_exec_error(program, &err)
            )
        })?;
        tracing::debug!(pgid = group.id(), command = %command, "build started");
        let output = OutputReaders::start(&mut child, cargo);
        let (tx, done) = oneshot::channel();
        let (cancel, cancelled) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = exit_or_cancel(&mut child, &group, cancelled).await;
            // What the build left running in its group dies with it; what left the group is
            // swept once the group is gone.
            process::end_group(group).await;
            process::sweep_and_report(process::Sweep::Ended);
            let _ = tx.send(output.outcome(status, started).await);
        });
        Ok(RunningBuild {
            cancel: Some(cancel),
            done,
        })
    }

    /// Wait for the build to end. Cancel-safe: a `select!` may drop this future and call again.
    pub async fn finished(&mut self) -> BuildOutcome {
        (&mut self.done).await.unwrap_or(BuildOutcome {
            result: BuildResult::Failed {
                how: "the build's monitor stopped".to_owned(),
                errors: None,
            },
            elapsed: Duration::ZERO,
            output: Arc::from(""),
        })
    }

    /// Kill the build's whole process group and wait until the build process is reaped, so the
    /// next build never races this one for cargo's lock or its output files. Bounded: it never
    /// waits for the build's output, nor for longer than a SIGKILL takes.
    pub async fn cancel(mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
        let _ = (&mut self.done).await;
    }
}

/// A command line that means the same with or without `sh -c` ([`shell::plain_words`]),
/// whose first word names an executable file ([`process::find_program`], relative to `root`,
/// where the build runs). When it names none, the line goes to `sh -c` after all, so that the
/// shell's own message says what is wrong ("not found", "Permission denied").
fn plain_command<'a>(line: &'a str, root: &Path) -> Option<(PathBuf, Vec<&'a str>)> {
    let mut words = shell::plain_words(line)?.into_iter();
    let program = words.next()?;
    let path = process::find_program(program.as_ref(), root, None).ok()?;
    Some((path, words.collect()))
}

/// The process a build command starts, and whether it is cargo's (its JSON messages then come
/// on stdout): the line's program itself when the line holds nothing a shell would interpret,
/// else `sh -c LINE`.
fn build_process(command: &BuildCommand, root: &Path) -> (Command, bool) {
    let (mut cmd, cargo) = match command {
        // No shell to start when the line holds nothing a shell would interpret.
        BuildCommand::Shell(line) => {
            let cmd = if let Some((program, args)) = plain_command(line, root) {
                let mut cmd = Command::new(program);
                cmd.args(args);
                cmd
            } else {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(line);
                cmd
            };
            (cmd, false)
        }
        BuildCommand::Cargo { args } => {
            let mut cmd = Command::new(&args[0]);
            cmd.args(&args[1..]).stdout(Stdio::piped());
            (cmd, true)
        }
    };
    cmd.current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // The build must never think it was socket-activated (see supervise).
    process::clear_protocol_env(&mut cmd);
    if !cargo {
        cmd.stdout(Stdio::piped());
    }
    // The output is read through a pipe (to count errors), where cargo would not colour it:
    // ask for colour exactly when reload's own stderr gets it (status::colored).
    if crate::status::colored() && std::env::var_os("CARGO_TERM_COLOR").is_none() {
        cmd.env("CARGO_TERM_COLOR", "always");
    }
    (cmd, cargo)
}

/// How the build process ended. The build is finished when its process exits, not when its
/// output ends: a background process may hold the pipes open for as long as it runs. Asked to
/// cancel (or the [`RunningBuild`] dropped), its group is SIGKILLed first.
async fn exit_or_cancel(
    child: &mut process::Child,
    group: &process::ProcessGroup,
    cancelled: oneshot::Receiver<()>,
) -> std::io::Result<std::process::ExitStatus> {
    tokio::select! {
        status = child.wait() => status,
        _ = cancelled => {
            group.signal(Signal::SIGKILL);
            match tokio::time::timeout(process::KILL_GRACE, child.wait()).await {
                Ok(status) => status,
                Err(_) => Err(std::io::Error::other("it did not die of SIGKILL")),
            }
        }
    }
}

/// The tasks that pass the build's output through, and what they gather on the way.
struct OutputReaders {
    stderr: JoinHandle<()>,
    stdout: JoinHandle<()>,
    /// Compiler errors counted in the output.
    errors: Arc<AtomicUsize>,
    /// For a Cargo build, the executable cargo reported.
    executable: Arc<Mutex<Option<PathBuf>>>,
    tail: Arc<Mutex<Tail>>,
}

impl OutputReaders {
    /// Read `child`'s stderr and stdout; a Cargo build's stdout as cargo's JSON messages.
    fn start(child: &mut process::Child, cargo: bool) -> OutputReaders {
        let errors = Arc::new(AtomicUsize::new(0));
        let executable = Arc::new(Mutex::new(None));
        let tail = Arc::new(Mutex::new(Tail::default()));
        let stderr = tokio::spawn(pass_through(
            child.stderr.take(),
            Sink::Stderr,
            errors.clone(),
            tail.clone(),
        ));
        let stdout = match child.stdout.take() {
            Some(stdout) if cargo => tokio::spawn(read_cargo_messages(
                stdout,
                tokio::io::stdout(),
                executable.clone(),
                tail.clone(),
            )),
            stdout => tokio::spawn(pass_through(
                stdout,
                Sink::Stdout,
                errors.clone(),
                tail.clone(),
            )),
        };
        OutputReaders {
            stderr,
            stdout,
            errors,
            executable,
            tail,
        }
    }

    /// The build's outcome once its group is gone: the output gets [`OUTPUT_GRACE`] to end,
    /// then what it showed goes with how the process ended (`status`).
    async fn outcome(
        self,
        status: std::io::Result<std::process::ExitStatus>,
        started: Instant,
    ) -> BuildOutcome {
        let OutputReaders {
            stderr,
            stdout,
            errors,
            executable,
            tail,
        } = self;
        let _ = tokio::time::timeout(OUTPUT_GRACE, async {
            let _ = stderr.await;
            let _ = stdout.await;
        })
        .await;
        let errors = errors.load(Ordering::Relaxed);
        let executable = lock(&executable).take();
        let result = match status {
            Ok(status) if status.success() => BuildResult::Succeeded { executable },
            Ok(status) => BuildResult::Failed {
                how: process::describe_exit(status),
                errors: (errors > 0).then_some(errors),
            },
            Err(err) => BuildResult::Failed {
                how: format!("lost track of the build: {err}"),
                errors: None,
            },
        };
        let output = lock(&tail).text();
        BuildOutcome {
            result,
            elapsed: started.elapsed(),
            output,
        }
    }
}

#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

/// Copy the build's output to ours as it comes (chunks, not lines: progress bars redraw with
/// `\r`), and count the compiler errors in it into `errors`. Only the first [`LINE_KEPT`] bytes
/// of a line are kept: a build that prints a gigabyte without a newline must not make reload
/// hold it.
async fn pass_through(
    source: Option<impl AsyncRead + Unpin>,
    sink: Sink,
    errors: Arc<AtomicUsize>,
    tail: Arc<Mutex<Tail>>,
) {
    let Some(mut source) = source else { return };
    let mut buffer = vec![0u8; 16 * 1024];
    let mut line = Vec::new();
    let count = |line: &[u8]| {
        if is_error_line(&String::from_utf8_lossy(line)) {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    while let Ok(n) = source.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let chunk = &buffer[..n];
        lock(&tail).push(chunk);
        let _ = match sink {
            Sink::Stdout => std::io::stdout().lock().write_all(chunk),
            Sink::Stderr => std::io::stderr().lock().write_all(chunk),
        };
        for piece in chunk.split_inclusive(|&byte| byte == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = LINE_KEPT.saturating_sub(line.len());
            line.extend_from_slice(&text[..text.len().min(room)]);
            if ends {
                count(&line);
                line.clear();
            }
        }
    }
    count(&line);
}

/// A compiler error as cargo/rustc (`error[E0425]: ...`, `error: ...`) or go
/// (`./main.go:5:2: undefined: x`) print it. Summary lines that repeat a count are not errors.
fn is_error_line(line: &str) -> bool {
    // Colours, cursor movements and OSC 8 hyperlinks (`rustc -Z terminal-urls` links error
    // codes to their docs) all go: the parser knows every escape sequence, not only CSI.
    let line = anstream::adapter::strip_str(line).to_string();
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("error") {
        let summary = rest.starts_with(": could not compile") || rest.starts_with(": aborting");
        return (rest.starts_with(':') || rest.starts_with('[')) && !summary;
    }
    // go: path.go:LINE:COL: message (or path.go:LINE: message)
    let Some((path, rest)) = line.split_once(".go:") else {
        return false;
    };
    let location: Vec<&str> = rest.splitn(3, ':').collect();
    !path.is_empty()
        && !path.contains(' ')
        && location.len() >= 2
        && location[0].chars().all(|c| c.is_ascii_digit())
        && !location[0].is_empty()
}

#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<CargoTarget>,
}

#[derive(Deserialize)]
struct CargoTarget {
    kind: Vec<String>,
}

/// Read cargo's JSON messages to the end; keep the last binary executable it reported in
/// `executable`. Lines that are not cargo's (a build script printing to stdout) are passed
/// through, and so is a line too long to be one of cargo's messages, unparsed.
async fn read_cargo_messages(
    stdout: impl AsyncRead + Unpin,
    mut passthrough: impl AsyncWrite + Unpin,
    executable: Arc<Mutex<Option<PathBuf>>>,
    tail: Arc<Mutex<Tail>>,
) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    // Inside a line longer than any message of cargo's: passed through as it comes.
    let mut overlong = false;
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MESSAGE_KEPT as u64);
        let n = match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let complete = line.ends_with(b"\n");
        if overlong || (!complete && n == MESSAGE_KEPT) {
            lock(&tail).push(&line);
            let _ = passthrough.write_all(&line).await;
            overlong = !complete;
            continue;
        }
        if let Ok(message) = serde_json::from_slice::<CargoMessage>(&line) {
            if let Some(found) = artifact_executable(message) {
                *executable
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found);
            }
        } else {
            lock(&tail).push(&line);
            let _ = passthrough.write_all(&line).await;
            if !complete {
                let _ = passthrough.write_all(b"\n").await;
            }
        }
    }
}

/// A lock whose holder cannot have left the data half-written (every holder only appends).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn artifact_executable(message: CargoMessage) -> Option<PathBuf> {
    let is_bin = message
        .target
        .is_some_and(|t| t.kind.iter().any(|k| k == "bin"));
    (message.reason == "compiler-artifact" && is_bin)
        .then_some(message.executable)
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_comes_from_a_bin_artifact_only() {
        let bin = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"app"},"executable":"/p/target/debug/app"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"dep"},"executable":null}"#;
        let done = r#"{"reason":"build-finished","success":true}"#;
        let parse = |s| artifact_executable(serde_json::from_str(s).unwrap());
        assert_eq!(parse(bin), Some(PathBuf::from("/p/target/debug/app")));
        assert_eq!(parse(lib), None);
        assert_eq!(parse(done), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_line_too_long_for_cargo_is_passed_over_and_the_executable_still_found() {
        let bin = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"app"},"executable":"/p/app"}"#;
        let mut stdout = vec![b'x'; MESSAGE_KEPT + MESSAGE_KEPT / 2];
        stdout.push(b'\n');
        stdout.extend_from_slice(bin.as_bytes());
        stdout.push(b'\n');
        let executable = Arc::new(Mutex::new(None));
        read_cargo_messages(
            &stdout[..],
            tokio::io::sink(),
            executable.clone(),
            Arc::default(),
        )
        .await;
        assert_eq!(
            executable.lock().unwrap().take(),
            Some(PathBuf::from("/p/app"))
        );
    }

    #[test]
    fn only_lines_a_shell_would_not_change_skip_the_shell() {
        // Programs every Unix has: a unit test needs nothing but Rust.
        let root = Path::new("/");
        let (program, args) = plain_command("true", root).expect("`true` is on PATH");
        assert!(program.ends_with("true") && args.is_empty());
        let line = "cp -p ./tmp/main ./tmp/main.old";
        let (program, args) = plain_command(line, root).expect("`cp` is on PATH");
        assert!(program.ends_with("cp"), "{}", program.display());
        assert_eq!(args, ["-p", "./tmp/main", "./tmp/main.old"]);
        for shell in [
            "make && ./deploy",
            "echo $HOME",
            "cd web",
            "FOO=1 make",
            "cp 'a b' c",
            "ls *.rs",
            "no-such-program-anywhere --flag",
        ] {
            assert!(plain_command(shell, root).is_none(), "{shell}");
        }
    }

    #[test]
    fn a_program_that_is_not_executable_is_left_to_the_shell() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        for (name, mode) in [("build.sh", 0o755), ("notes.txt", 0o644)] {
            let path = root.path().join(name);
            std::fs::write(&path, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        std::fs::create_dir(root.path().join("tools")).expect("mkdir");
        let (program, args) = plain_command("./build.sh --release", root.path()).expect("plain");
        assert_eq!(program, root.path().join("./build.sh"));
        assert_eq!(args, ["--release"]);
        // `sh -c` then says "Permission denied" or "not found" in its own words.
        for line in ["./notes.txt", "./tools", "./missing.sh"] {
            assert!(plain_command(line, root.path()).is_none(), "{line}");
        }
    }

    #[test]
    fn escape_sequences_are_stripped_whole_before_errors_are_counted() {
        // A progress line erased (cursor up, erase line), then rustc's bold red error code
        // linked to its documentation.
        let line = "\x1b[1A\x1b[2K\x1b[1m\x1b[38;5;9m\x1b]8;;https://doc.rust-lang.org/error_codes/\
                    E0425.html\x1b\\error[E0425]\x1b]8;;\x1b\\\x1b[0m: cannot find value `x`";
        assert!(is_error_line(line), "{line:?}");
    }

    #[test]
    fn compiler_errors_are_counted_and_summaries_are_not() {
        for error in [
            "error[E0425]: cannot find value `x` in this scope",
            "\x1b[0m\x1b[1m\x1b[38;5;9merror[E0308]\x1b[0m: mismatched types",
            "error: expected one of `;` or `}`",
            "./main.go:5:2: undefined: x",
            "pkg/handler.go:12: syntax error",
        ] {
            assert!(is_error_line(error), "{error}");
        }
        for other in [
            "error: could not compile `app` (bin \"app\") due to 2 previous errors",
            "error: aborting due to 2 previous errors",
            "warning: unused variable",
            "# example.com/app",
            "   Compiling app v0.1.0",
        ] {
            assert!(!is_error_line(other), "{other}");
        }
    }
}
