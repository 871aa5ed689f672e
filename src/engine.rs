//! The dev loop: one closed [`Event`] enum, one `select!` loop, one [`Phase`]. What happens on a
//! save is the `Event::Changed` arm of [`Engine::handle`]; every side effect is a call into the
//! stage that owns it (watch, build, supervise).
//!
//! Invariants:
//! - at most one build runs; a change cancels it (its process group is killed and reaped) and
//!   starts a new one, so the server that ends up running is always built from the latest sources;
//! - the running server is only touched after a build succeeded and its program was found.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::Exit;
use crate::build::{BuildOutcome, BuildResult, RunningBuild};
use crate::config::{BuildCommand, Config};
use crate::status;
use crate::supervise::{ChildExit, Interrupts, Supervisor};
use crate::watch::{self, ChangeSet};

/// Everything the loop reacts to.
#[derive(Debug)]
pub enum Event {
    Changed(ChangeSet),
    BuildFinished(BuildOutcome),
    ChildExited(ChildExit),
    Shutdown(Shutdown),
}

/// A request from the outside to stop: Ctrl-C, SIGTERM or SIGHUP to reload.
#[derive(Debug, Clone, Copy)]
pub enum Shutdown {
    Interrupt,
    Terminate,
    Hangup,
}

impl Shutdown {
    fn exit(self) -> Exit {
        Exit::Signal(match self {
            Shutdown::Interrupt => nix::libc::SIGINT,
            Shutdown::Terminate => nix::libc::SIGTERM,
            Shutdown::Hangup => nix::libc::SIGHUP,
        })
    }
}

#[derive(Debug)]
enum Phase {
    Idle,
    Building { build: RunningBuild, since: Instant },
}

struct Engine {
    root: PathBuf,
    build: Option<BuildCommand>,
    supervisor: Option<Supervisor>,
    phase: Phase,
}

/// Run the dev loop until a shutdown signal. Returns the exit code to use.
pub async fn run(config: Config) -> Result<Exit> {
    let interrupts = Arc::new(Interrupts::default());
    let mut shutdowns = listen_for_shutdown(interrupts.clone())?;
    let supervisor = config
        .run
        .map(|run| Supervisor::new(run, config.root.clone(), interrupts))
        .transpose()?;
    let (mut changes, watched) = watch::start(config.watch)?;
    let mut summary = format!("{}; watching {watched} directories", config.origin);
    if let Some(listening) = supervisor.as_ref().and_then(Supervisor::describe_listeners) {
        summary = format!("{summary}; {listening}");
    }
    status::info(&summary);

    let mut engine = Engine {
        supervisor,
        root: config.root,
        build: config.build,
        phase: Phase::Idle,
    };
    engine.start_build().await;
    loop {
        let event = tokio::select! {
            Some(shutdown) = shutdowns.recv() => Event::Shutdown(shutdown),
            changed = changes.recv() => match changed {
                Some(changed) => Event::Changed(changed),
                None => return Err(anyhow!("the file watcher stopped unexpectedly")),
            },
            outcome = build_finished(&mut engine.phase) => Event::BuildFinished(outcome),
            exit = child_exited(engine.supervisor.as_mut()) => Event::ChildExited(exit),
        };
        if let Some(exit) = engine.handle(event).await {
            return Ok(exit);
        }
    }
}

impl Engine {
    /// The whole dev loop's behaviour. Returns an exit code when it is time to stop.
    async fn handle(&mut self, event: Event) -> Option<Exit> {
        match event {
            Event::Changed(changes) => {
                status::info(&format!("changed: {}", changes.summary(&self.root)));
                self.cancel_build().await;
                self.start_build().await;
            }
            Event::BuildFinished(outcome) => {
                self.phase = Phase::Idle;
                match outcome.result {
                    BuildResult::Succeeded { executable } => {
                        status::success(&format!("built in {}", status::duration(outcome.elapsed)));
                        self.swap(executable).await;
                    }
                    BuildResult::Failed(how) => {
                        let serving = match self.supervisor.as_ref().and_then(Supervisor::pid) {
                            Some(pid) => format!("still serving pid {pid}"),
                            None => "waiting for changes".to_owned(),
                        };
                        status::error(&format!("build failed ({how}); {serving}"));
                    }
                }
            }
            Event::ChildExited(exit) => {
                let message = format!(
                    "app (pid {}) {}; it restarts on the next change",
                    exit.pid,
                    exit.describe()
                );
                if exit.status.is_some_and(|s| s.success()) {
                    status::info(&message);
                } else {
                    status::error(&message);
                }
            }
            Event::Shutdown(shutdown) => {
                self.cancel_build().await;
                if let Some(supervisor) = self.supervisor.as_mut()
                    && let Some(pid) = supervisor.stop().await
                {
                    status::info(&format!("stopped app (pid {pid})"));
                }
                return Some(shutdown.exit());
            }
        }
        None
    }

    async fn start_build(&mut self) {
        let Some(command) = &self.build else {
            self.swap(None).await;
            return;
        };
        status::info("building");
        match RunningBuild::start(command, &self.root) {
            Ok(build) => {
                self.phase = Phase::Building {
                    build,
                    since: Instant::now(),
                }
            }
            Err(err) => status::error(&format!("{err:#}")),
        }
    }

    async fn cancel_build(&mut self) {
        if let Phase::Building { build, since } = std::mem::replace(&mut self.phase, Phase::Idle) {
            build.cancel().await;
            status::info(&format!(
                "cancelled the build after {}: the sources changed",
                status::duration(since.elapsed())
            ));
        }
    }

    /// Put a fresh server in place of the running one.
    async fn swap(&mut self, executable: Option<PathBuf>) {
        let Some(supervisor) = self.supervisor.as_mut() else {
            return;
        };
        match supervisor.restart(executable.as_deref()).await {
            Ok(swap) => match swap.old {
                Some(old) => status::success(&format!(
                    "restarted (pid {old} -> {}) in {}",
                    swap.new,
                    status::duration(swap.elapsed)
                )),
                None => status::success(&format!("started (pid {})", swap.new)),
            },
            Err(err) => status::error(&format!("{err:#}; waiting for changes")),
        }
    }
}

async fn build_finished(phase: &mut Phase) -> BuildOutcome {
    match phase {
        Phase::Building { build, .. } => build.finished().await,
        Phase::Idle => std::future::pending().await,
    }
}

async fn child_exited(supervisor: Option<&mut Supervisor>) -> ChildExit {
    match supervisor {
        Some(supervisor) => supervisor.exited().await,
        None => std::future::pending().await,
    }
}

/// SIGINT, SIGTERM and SIGHUP become [`Shutdown`] events. The first also stops any wait for a
/// new server's readiness; a second one means "now": it cuts the graceful stop short.
fn listen_for_shutdown(interrupts: Arc<Interrupts>) -> Result<mpsc::UnboundedReceiver<Shutdown>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut received = 0;
        loop {
            let shutdown = tokio::select! {
                _ = interrupt.recv() => Shutdown::Interrupt,
                _ = terminate.recv() => Shutdown::Terminate,
                _ = hangup.recv() => Shutdown::Hangup,
            };
            received += 1;
            if received == 1 {
                interrupts.stop_waiting.notify_one();
            } else {
                status::info("stopping now");
                interrupts.kill_now.notify_one();
            }
            if tx.send(shutdown).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
