//! The dev loop: one closed [`Event`] enum, one `select!` loop, one [`Phase`]. What happens on a
//! save is the `Event::Changed` arm of [`Engine::handle`]; every side effect is a call into the
//! stage that owns it (watch, build, supervise) or into `status` to tell the user.
//!
//! Invariants:
//! - at most one build runs; a change cancels it (its process group is killed and reaped) and
//!   starts a new one, so the server that ends up running is always built from the latest sources;
//! - the running server is only touched after a build succeeded and its program was found
//!   (unless the user asked for air's `stop_on_error`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::Exit;
use crate::build::{self, BuildOutcome, BuildResult, RunningBuild};
use crate::config::{BuildCommand, CleanPath, Config, Output};
use crate::process;
use crate::status::{self, Note};
use crate::supervise::{ChildExit, Interrupts, Supervisor};
use crate::terminal::{self, Key};
use crate::watch::{self, ChangeSet};

/// Everything the loop reacts to.
#[derive(Debug)]
pub enum Event {
    Changed(ChangeSet),
    BuildFinished(BuildOutcome),
    ChildExited(ChildExit),
    /// The restart delay after the server exited by itself has passed (air's `rerun`).
    RestartDue,
    Key(Key),
    Shutdown(Shutdown),
}

/// A request from the outside to stop: Ctrl-C, SIGTERM or SIGHUP to reload, or the `q` key.
#[derive(Debug, Clone, Copy)]
pub enum Shutdown {
    Interrupt,
    Terminate,
    Hangup,
    Quit,
}

impl Shutdown {
    fn exit(self) -> Exit {
        match self {
            Shutdown::Interrupt => Exit::Signal(nix::libc::SIGINT),
            Shutdown::Terminate => Exit::Signal(nix::libc::SIGTERM),
            Shutdown::Hangup => Exit::Signal(nix::libc::SIGHUP),
            Shutdown::Quit => Exit::Success,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Idle,
    Building { build: RunningBuild, since: Instant },
}

/// How long a post command may run while reload waits to exit.
const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// A server that exits sooner than this after starting "dies fast": restarting it again and
/// again at once would only spin, so the restart delay grows while it keeps doing so.
const FAST_EXIT: Duration = Duration::from_secs(1);
/// The first longer delay, doubled at each fast exit after it, up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Engine {
    root: PathBuf,
    build: Option<BuildCommand>,
    supervisor: Option<Supervisor>,
    phase: Phase,
    output: Output,
    /// When the change that the current build or restart answers was seen.
    changed_at: Option<Instant>,
    restart_at: Option<tokio::time::Instant>,
    post: Vec<String>,
    clean_on_exit: Vec<CleanPath>,
    /// The last build failed: its output is still on screen.
    failed_output_shown: bool,
    /// How many times in a row the server died fast (see [`FAST_EXIT`]); reset by a change.
    fast_exits: u32,
    /// Keys are read from the terminal (`r` rebuilds).
    keys: bool,
}

/// Run the dev loop until a shutdown. Returns the exit code to use.
pub async fn run(config: Config) -> Result<Exit> {
    let interrupts = Arc::new(Interrupts::default());
    let mut shutdowns = listen_for_shutdown(interrupts.clone())?;
    let newer_change = interrupts.newer_change.clone();
    let supervisor = config
        .run
        .map(|run| Supervisor::new(run, config.root.clone(), interrupts))
        .transpose()?;
    let (mut changes, watched) = watch::start(config.watch, newer_change)?;
    for warning in &config.warnings {
        status::warning(warning);
    }
    status::emit(&Note::Watching {
        origin: &config.origin,
        directories: watched,
        listening: supervisor.as_ref().and_then(Supervisor::describe_listeners),
    });
    let keyboard = terminal::start();
    let (restore_terminal, mut keys) = match keyboard {
        Some((guard, keys)) => {
            status::info(terminal::HELP);
            (Some(guard), keys)
        }
        None => (None, mpsc::unbounded_channel().1),
    };

    let mut engine = Engine {
        supervisor,
        root: config.root,
        build: config.build,
        phase: Phase::Idle,
        output: config.output,
        changed_at: None,
        restart_at: None,
        post: config.post,
        clean_on_exit: config.clean_on_exit,
        failed_output_shown: false,
        fast_exits: 0,
        keys: restore_terminal.is_some(),
    };
    engine.start_build().await;
    loop {
        let restart_at = engine.restart_at;
        let event = tokio::select! {
            Some(shutdown) = shutdowns.recv() => Event::Shutdown(shutdown),
            changed = changes.recv() => match changed {
                Some(changed) => Event::Changed(changed),
                None => return Err(anyhow!("the file watcher stopped unexpectedly")),
            },
            Some(key) = keys.recv() => Event::Key(key),
            outcome = build_finished(&mut engine.phase) => Event::BuildFinished(outcome),
            exit = child_exited(engine.supervisor.as_mut()) => Event::ChildExited(exit),
            () = sleep_until(restart_at) => Event::RestartDue,
        };
        if let Some(exit) = engine.handle(event).await {
            engine.finish(&mut shutdowns).await;
            return Ok(exit);
        }
    }
}

impl Engine {
    /// The whole dev loop's behaviour. Returns an exit code when it is time to stop.
    async fn handle(&mut self, event: Event) -> Option<Exit> {
        match event {
            Event::Changed(changes) => {
                status::emit(&Note::Changed {
                    paths: &changes.paths,
                    summary: changes.summary(&self.root),
                });
                // From the first change of the burst: the quiet window is part of the wait.
                self.rebuild(changes.first_seen).await;
            }
            Event::Key(Key::Rebuild) => {
                status::info("rebuilding (r)");
                self.rebuild(Instant::now()).await;
            }
            Event::Key(Key::Clear) => status::clear_screen(),
            Event::Key(Key::Help) => status::info(terminal::HELP),
            Event::Key(Key::Quit) => return self.handle_shutdown(Shutdown::Quit).await,
            Event::BuildFinished(outcome) => {
                self.phase = Phase::Idle;
                match outcome.result {
                    BuildResult::Succeeded { executable } => {
                        // The errors on screen are fixed now: a success clears them away.
                        if std::mem::take(&mut self.failed_output_shown) {
                            status::clear_screen();
                        }
                        status::emit(&Note::BuildSucceeded {
                            elapsed: outcome.elapsed,
                        });
                        self.swap(executable).await;
                    }
                    BuildResult::Failed { how, errors } => {
                        self.failed_output_shown = true;
                        let stop = self
                            .supervisor
                            .as_ref()
                            .is_some_and(Supervisor::stops_on_build_error);
                        if stop && let Some(supervisor) = self.supervisor.as_mut() {
                            supervisor.stop().await;
                        }
                        status::emit(&Note::BuildFailed {
                            how: &how,
                            errors,
                            elapsed: outcome.elapsed,
                            serving: self.supervisor.as_ref().and_then(Supervisor::pid),
                        });
                    }
                }
            }
            Event::ChildExited(exit) => {
                if let Some(supervisor) = self.supervisor.as_mut() {
                    supervisor.bury().await;
                }
                let signal = exit.signal_name();
                let restarts_in = self
                    .supervisor
                    .as_ref()
                    .and_then(Supervisor::restart_on_exit)
                    .map(|delay| self.restart_delay(delay, exit.ran));
                status::emit(&Note::Exited {
                    pid: exit.pid,
                    description: &exit.describe(),
                    code: exit.code(),
                    signal: signal.as_deref(),
                    restarts_in,
                });
                if let Some(hint) = exit.hint {
                    status::error(hint);
                }
                self.restart_at = restarts_in.map(|delay| tokio::time::Instant::now() + delay);
            }
            Event::RestartDue => {
                self.restart_at = None;
                self.swap(None).await;
            }
            Event::Shutdown(shutdown) => return self.handle_shutdown(shutdown).await,
        }
        None
    }

    async fn handle_shutdown(&mut self, shutdown: Shutdown) -> Option<Exit> {
        self.cancel_build("reload is stopping").await;
        if let Some(supervisor) = self.supervisor.as_mut()
            && let Some(pid) = supervisor.stop().await
        {
            status::emit(&Note::Stopped { pid });
        }
        Some(shutdown.exit())
    }

    /// How long to wait before restarting a server that exited by itself after running for
    /// `ran`: the configured delay, unless it keeps dying fast; then a delay that doubles, up to
    /// [`BACKOFF_MAX`], so that a server that cannot start does not spin reload.
    fn restart_delay(&mut self, configured: Duration, ran: Duration) -> Duration {
        if ran >= FAST_EXIT {
            self.fast_exits = 0;
            return configured;
        }
        self.fast_exits += 1;
        if self.fast_exits < 2 {
            return configured;
        }
        if self.fast_exits == 2 {
            status::info(&format!(
                "the app keeps exiting within {} of starting: waiting longer between restarts, \
                 up to {} (a change restarts it at once)",
                status::duration(FAST_EXIT),
                status::duration(BACKOFF_MAX)
            ));
        }
        let doublings = (self.fast_exits - 2).min(16);
        configured.max((BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_MAX))
    }

    /// A change first seen at `since` (or the `r` key): whatever is building is stale; build
    /// again.
    async fn rebuild(&mut self, since: Instant) {
        self.fast_exits = 0;
        self.changed_at = Some(since);
        self.restart_at = None;
        self.cancel_build("the sources changed").await;
        self.start_build().await;
    }

    async fn start_build(&mut self) {
        let Some(command) = &self.build else {
            self.swap(None).await;
            return;
        };
        if self.output.clear {
            status::clear_screen();
        }
        status::emit(&Note::BuildStarted {
            command: &build::describe(command),
        });
        match RunningBuild::start(command, &self.root, process::Origin::Build) {
            Ok(build) => {
                self.phase = Phase::Building {
                    build,
                    since: Instant::now(),
                }
            }
            Err(err) => status::error(&format!("{err:#}")),
        }
    }

    async fn cancel_build(&mut self, reason: &str) {
        if let Phase::Building { build, since } = std::mem::replace(&mut self.phase, Phase::Idle) {
            build.cancel().await;
            status::emit(&Note::BuildCancelled {
                after: since.elapsed(),
                reason,
            });
        }
    }

    /// Put a fresh server in place of the running one.
    async fn swap(&mut self, executable: Option<PathBuf>) {
        let Some(supervisor) = self.supervisor.as_mut() else {
            return;
        };
        match supervisor.restart(executable.as_deref()).await {
            Ok(swap) => status::emit(&Note::Ready {
                pid: swap.new,
                old: swap.old,
                swap: swap.elapsed,
                since_change: self.changed_at.take().map(|at| at.elapsed()),
            }),
            Err(err) => status::error(&format!(
                "{err:#}\n  reload is waiting for changes: fix it and save{} to try again",
                if self.keys { " (or press r)" } else { "" }
            )),
        }
    }

    /// After the server is stopped for good: the user's post commands, then clean-up. Another
    /// Ctrl-C (or SIGTERM) meanwhile kills the post command that runs and skips the rest.
    async fn finish(&mut self, shutdowns: &mut mpsc::UnboundedReceiver<Shutdown>) {
        // A post command runs like a build: its own group, no sockets, output passed through.
        for command in &self.post {
            let step = BuildCommand::Shell(command.clone());
            let origin = process::Origin::Post(command.clone());
            let mut run = match RunningBuild::start(&step, &self.root, origin) {
                Ok(run) => run,
                Err(err) => {
                    status::error(&format!("cannot run post command `{command}`: {err:#}"));
                    continue;
                }
            };
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(POST_TIMEOUT, run.finished()) => outcome.ok(),
                Some(_) = shutdowns.recv() => {
                    status::error(&format!("post command `{command}` interrupted; killed it"));
                    run.cancel().await;
                    break;
                }
            };
            match outcome {
                Some(BuildOutcome {
                    result: BuildResult::Succeeded { .. },
                    ..
                }) => {}
                Some(BuildOutcome {
                    result: BuildResult::Failed { how, .. },
                    ..
                }) => {
                    status::error(&format!("post command `{command}` failed ({how})"));
                }
                None => {
                    status::error(&format!(
                        "post command `{command}` still ran after {}; killed it",
                        status::duration(POST_TIMEOUT)
                    ));
                    run.cancel().await;
                }
            }
        }
        // Whatever is left anywhere (a build's or a post command's daemon) goes now.
        process::sweep_and_report(process::Sweep::All);
        for path in &self.clean_on_exit {
            if let Err(err) = path.remove() {
                status::error(&format!("{err:#}"));
            }
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

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
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
