//! The tools under test: where each is found, its version, and how each is told the same job
//! (debounce, extension filter, build, server) in its own syntax.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use crate::stand_in::StartLog;
use crate::{CHILD_ARG, DEBOUNCE, EXT, HTTP_ARG};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tool {
    Reload,
    Watchexec,
    Nodemon,
}

impl Tool {
    pub(crate) const ALL: [Tool; 3] = [Tool::Reload, Tool::Watchexec, Tool::Nodemon];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Reload => "reload",
            Tool::Watchexec => "watchexec",
            Tool::Nodemon => "nodemon",
        }
    }

    /// The command that makes this tool do `job`: the same debounce, extension filter, build
    /// and server for every tool, in each tool's own syntax.
    pub(crate) fn command(self, exe: &Path, job: &Job) -> Command {
        let mut command = Command::new(exe);
        let debounce = format!("{}ms", DEBOUNCE.as_millis());
        match self {
            Tool::Reload => {
                command
                    .args(["--debounce", &debounce, "-e", EXT, "-b", &job.build])
                    .args(&job.flags)
                    .arg("--");
                if job.through_shell {
                    command.args(["sh", "-c", &job.shell_line()]);
                } else {
                    command.args(&job.program);
                }
            }
            Tool::Watchexec => {
                // `-n`: the words below are the argv, no extra shell around our `sh -c`.
                command
                    .args(["--debounce", &debounce, "--restart", "-n", "--exts", EXT])
                    .args(&job.flags);
                if job.through_shell {
                    let script = format!("{} && {}", job.build, job.shell_line());
                    command.args(["--", "sh", "-c", &script]);
                } else {
                    let script = format!("{} && exec \"$0\" \"$@\"", job.build);
                    command.args(["--", "sh", "-c", &script]).args(&job.program);
                }
            }
            Tool::Nodemon => {
                let exec = if job.through_shell { "" } else { "exec " };
                let script = format!("{} && {exec}{}", job.build, job.shell_line());
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
pub(crate) struct Job {
    /// The watched tree, and every tool's working directory.
    pub(crate) root: PathBuf,
    /// A shell line: `true` is the no-op build. Empty means no build step at all, which only
    /// reload can express (`-b ''`).
    pub(crate) build: String,
    /// The server's argv.
    pub(crate) program: Vec<OsString>,
    pub(crate) env: Vec<(String, String)>,
    /// Tool-specific flags (sockets, readiness), placed before the program.
    pub(crate) flags: Vec<String>,
    /// Every tool gets the server in a shell line (`sh -c`) without `exec`, the way a user
    /// writes one, so whatever the shell costs, every tool pays it: the like-for-like case.
    /// Otherwise reload runs the argv itself and the peers `exec` it from the shell line that
    /// runs the build.
    through_shell: bool,
}

impl Job {
    pub(crate) fn new(root: &Path, program: Vec<OsString>) -> Job {
        Job {
            root: root.to_owned(),
            build: "true".to_owned(),
            program,
            env: Vec::new(),
            flags: Vec::new(),
            through_shell: false,
        }
    }

    pub(crate) fn through_shell(mut self, through_shell: bool) -> Job {
        self.through_shell = through_shell;
        self
    }

    /// The server's argv as one shell line.
    fn shell_line(&self) -> String {
        let words: Vec<String> = self.program.iter().map(|w| shell_quote(w)).collect();
        words.join(" ")
    }

    pub(crate) fn build(mut self, line: impl Into<String>) -> Job {
        self.build = line.into();
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl ToString) -> Job {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }

    pub(crate) fn flags(mut self, flags: &[&str]) -> Job {
        self.flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self
    }
}

/// The programs the bench runs.
pub(crate) struct Bins {
    pub(crate) reload: PathBuf,
    pub(crate) hello_server: PathBuf,
    /// This binary, which doubles as the stand-in server.
    pub(crate) stand_in: PathBuf,
    pub(crate) watchexec: Option<PathBuf>,
    pub(crate) nodemon: Option<PathBuf>,
    versions: BTreeMap<Tool, String>,
}

impl Bins {
    /// Build reload and hello_server in release mode (cargo bench does not promise the binary
    /// is fresh), and look for the peers on PATH.
    pub(crate) fn prepare() -> Result<Bins> {
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

    pub(crate) fn tool(&self, tool: Tool) -> Option<&Path> {
        match tool {
            Tool::Reload => Some(&self.reload),
            Tool::Watchexec => self.watchexec.as_deref(),
            Tool::Nodemon => self.nodemon.as_deref(),
        }
    }

    pub(crate) fn version(&self, tool: Tool) -> Option<&str> {
        self.versions.get(&tool).map(String::as_str)
    }

    /// The stand-in server's argv: it logs its starts to `starts`, with the contents of
    /// `version` (what the build produced) when given.
    pub(crate) fn stand_in(&self, starts: &StartLog, version: Option<&Path>) -> Vec<OsString> {
        let mut argv = vec![
            self.stand_in.clone().into_os_string(),
            CHILD_ARG.into(),
            starts.0.clone().into_os_string(),
        ];
        argv.extend(version.map(|v| v.as_os_str().to_owned()));
        argv
    }

    /// The stand-in HTTP server's argv (see `stand_in::stand_in_http`): it leaves once `dir` is
    /// gone.
    pub(crate) fn stand_in_http(&self, dir: &Path) -> Vec<OsString> {
        vec![
            self.stand_in.clone().into_os_string(),
            HTTP_ARG.into(),
            dir.as_os_str().to_owned(),
        ]
    }
}

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
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

pub(crate) fn shell_quote(word: &OsStr) -> String {
    format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"))
}
