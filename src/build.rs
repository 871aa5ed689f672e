//! The build stage: runs the build command in its own process group, reports how it ended, and
//! can be cancelled (the whole group is killed) when newer changes make it stale.
//!
//! The build's stdout and stderr go straight to the terminal. For a Cargo build, stdout carries
//! cargo's JSON messages instead (diagnostics are still rendered on stderr); they are read here
//! for the path of the executable that was built.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::config::BuildCommand;
use crate::process::{self, ProcessGroup};

#[derive(Debug)]
pub struct BuildOutcome {
    pub result: BuildResult,
    pub elapsed: Duration,
}

#[derive(Debug)]
pub enum BuildResult {
    /// For a Cargo build, the executable cargo reported.
    Succeeded { executable: Option<PathBuf> },
    /// How the build process ended: "exit 101", "SIGSEGV".
    Failed(String),
}

/// A build in progress. Dropping it kills it.
#[derive(Debug)]
pub struct RunningBuild {
    group: ProcessGroup,
    done: oneshot::Receiver<BuildOutcome>,
}

impl RunningBuild {
    /// Spawn `command` in `root`. Fails only when the process cannot be started at all.
    pub fn start(command: &BuildCommand, root: &Path) -> Result<Self> {
        let started = Instant::now();
        let (mut cmd, cargo) = match command {
            BuildCommand::Shell(line) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(line);
                (cmd, false)
            }
            BuildCommand::Cargo { args } => {
                let mut cmd = Command::new(&args[0]);
                cmd.args(&args[1..]).stdout(Stdio::piped());
                (cmd, true)
            }
        };
        cmd.current_dir(root).stdin(Stdio::null());
        let (mut child, group) = process::spawn_group(&mut cmd, &[])
            .with_context(|| format!("cannot start the build command `{}`", describe(command)))?;
        let stdout = child.stdout.take();
        let (tx, done) = oneshot::channel();
        tokio::spawn(async move {
            let executable = match stdout {
                Some(stdout) if cargo => read_cargo_messages(stdout).await,
                _ => None,
            };
            let result = match child.wait().await {
                Ok(status) if status.success() => BuildResult::Succeeded { executable },
                Ok(status) => BuildResult::Failed(process::describe_exit(status)),
                Err(err) => BuildResult::Failed(format!("lost track of the build: {err}")),
            };
            let _ = tx.send(BuildOutcome {
                result,
                elapsed: started.elapsed(),
            });
        });
        Ok(RunningBuild { group, done })
    }

    /// Wait for the build to end. Cancel-safe: a `select!` may drop this future and call again.
    pub async fn finished(&mut self) -> BuildOutcome {
        (&mut self.done).await.unwrap_or(BuildOutcome {
            result: BuildResult::Failed("the build's monitor stopped".to_owned()),
            elapsed: Duration::ZERO,
        })
    }

    /// Kill the build's whole process group and wait until the build process is reaped, so the
    /// next build never races this one for cargo's lock or its output files.
    pub async fn cancel(mut self) {
        self.group.signal(Signal::SIGKILL);
        let _ = (&mut self.done).await;
    }
}

pub fn describe(command: &BuildCommand) -> String {
    match command {
        BuildCommand::Shell(line) => line.clone(),
        BuildCommand::Cargo { args } => args.join(" "),
    }
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

/// Read cargo's JSON messages to the end; return the last binary executable it reported. Lines
/// that are not cargo's (a build script printing to stdout) are passed through.
async fn read_cargo_messages(stdout: tokio::process::ChildStdout) -> Option<PathBuf> {
    let mut lines = BufReader::new(stdout).lines();
    let mut executable = None;
    let mut passthrough = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<CargoMessage>(&line) {
            Ok(message) => {
                if let Some(found) = artifact_executable(message) {
                    executable = Some(found);
                }
            }
            Err(_) => {
                let _ = passthrough.write_all(format!("{line}\n").as_bytes()).await;
            }
        }
    }
    executable
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
}
