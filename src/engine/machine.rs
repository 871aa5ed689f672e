//! The dev loop's decisions, and nothing else: a [`Service`] in a [`Phase`] takes an [`Event`]
//! and the time, and returns the [`Effect`]s to carry out, in order. It starts no process,
//! reads no clock and awaits nothing, so every transition is unit tested below; `engine::run`
//! carries the effects out and turns what the stages report into events.
//!
//! Invariants:
//! - at most one build runs; a change cancels it and starts a new one, so the server that ends
//!   up serving is always built from the latest sources;
//! - the serving server is only touched once a build succeeded and the new program was found
//!   (unless the policy is [`OnBuildFailure::Stop`]);
//! - "server ready" is published only once its readiness check passed, never at spawn;
//! - a new server that does not become ready never replaces the serving one;
//! - every wait (a build, a readiness check, a stop, a restart delay) is a phase or a deadline,
//!   so events keep being taken while it lasts.
//!
//! It writes no words: what it publishes and asks to tell carries typed reasons (a
//! [`Failure`], a [`Hint`], a [`Notice`], what follows as [`Afterwards`]), which `status` puts
//! into the words users read and the proxy into its pages. Texts from elsewhere (why the OS
//! could not start a program) pass through as data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::build::BuildResult;
use crate::config::{BuildCommand, OnBuildFailure, OnExit, Readiness, RestartOrder, RunConfig};
use crate::lifecycle::{
    AfterFailure, Afterwards, CancelReason, Failure, Generation, Hint, Lifecycle, Notice,
    ServerFailure,
};
use crate::supervise::ChildExit;
use crate::supervise::PortTurn;

/// Everything the loop reacts to.
#[derive(Debug)]
pub enum Event {
    Changed {
        paths: Vec<PathBuf>,
        /// "src/main.rs and 2 more", relative to the project.
        summary: String,
        /// The first event of the burst.
        first_seen: Instant,
    },
    /// Build again as if the sources changed (the `r` key, which reaches every service).
    Rebuild,
    /// Stop for good: end what runs and stop the server gracefully.
    Shutdown,
    /// While a shutdown lasts: kill what is still being stopped (a second Ctrl-C).
    StopNow,
    BuildFinished {
        result: BuildResult,
        elapsed: Duration,
        output: std::sync::Arc<str>,
    },
    /// The build command could not be started at all.
    BuildNotStarted(String),
    /// [`Effect::Prepare`] is done: the program was found and everything for its start made,
    /// or why not.
    Prepared {
        generation: Generation,
        result: Result<(), String>,
    },
    /// [`Effect::Spawn`] is done: the pid, or why it could not start.
    Spawned {
        generation: Generation,
        result: Result<u32, String>,
    },
    Ready(Generation),
    /// The port the prepared server was to be given is taken (found before its spawn).
    PortTaken {
        generation: Generation,
        port: u16,
    },
    /// [`Effect::ChoosePort`] is done: a port free now, or none was found.
    PortChosen {
        generation: Generation,
        port: Option<u16>,
    },
    /// A new server given its own port through PORT listens on the app's usual port instead.
    IgnoresPort {
        generation: Generation,
        listens: u16,
    },
    /// A new server's group listens on `ports`, none of them `expected`.
    ListensElsewhere {
        generation: Generation,
        ports: Vec<u16>,
        expected: u16,
    },
    /// The readiness check itself failed (a broken notify socket).
    NotReady {
        generation: Generation,
        why: String,
    },
    /// A server that was not being stopped exited.
    Exited {
        generation: Generation,
        exit: ChildExit,
    },
    /// A stop is over: the server's whole group is gone.
    Stopped(Generation),
    /// A deadline from [`Service::next_deadline`] has passed.
    Tick,
}

/// What the engine asks of the stages and of the user's terminal.
#[derive(Debug, PartialEq)]
pub enum Effect {
    Publish(Lifecycle),
    /// Tell the user something that is no lifecycle event.
    Notice(Notice),
    ClearScreen,
    StartBuild,
    /// Kill the running build and wait until it is reaped (bounded by a SIGKILL).
    CancelBuild,
    /// Find the program and make what its start needs; answered by [`Event::Prepared`].
    Prepare {
        generation: Generation,
        executable: Option<PathBuf>,
        /// Its turn on the two ports servers alternate on (`--overlap` behind the proxy).
        port: Option<PortTurn>,
    },
    /// Start the prepared server; answered by [`Event::Spawned`], or by [`Event::PortTaken`]
    /// when the port it is to be given is taken.
    Spawn(Generation),
    /// Find a port free now that is none of `avoid`; answered by [`Event::PortChosen`].
    ChoosePort {
        generation: Generation,
        avoid: Vec<u16>,
    },
    /// Check its readiness; answered by [`Event::Ready`] or [`Event::NotReady`].
    AwaitReady(Generation),
    /// Send the stop signal; answered by [`Event::Stopped`] once its group is gone.
    Stop(Generation),
    /// SIGKILL a server being stopped.
    Kill(Generation),
    /// Kill a new server that will not be used, and reap it.
    Discard(Generation),
    /// Reap what a server that exited left behind.
    Bury(Generation),
    /// Say which ports a server that never accepted on `expected` listens on instead.
    ExplainPorts {
        generation: Generation,
        expected: String,
    },
}

/// How this service behaves: the config's policy, as the machine needs it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The build command as shown to the user; `None`: no build step.
    pub build: Option<String>,
    /// There is a server to run (not build-only).
    pub server: bool,
    pub order: RestartOrder,
    pub on_build_failure: OnBuildFailure,
    pub on_exit: OnExit,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub stop_signal: &'static str,
    /// Clear the screen before each build.
    pub clear: bool,
    /// reload holds listening sockets for the server (`--listen`): explains some failures.
    pub listening: bool,
    /// Keys are read from the terminal (`r` rebuilds).
    pub keys: bool,
    /// The `host:port` a new server is ready once it accepts on (`--ready tcp:`, the proxy).
    pub probed: Option<String>,
    /// With overlap behind the proxy: the ports servers take turns on (each told its own
    /// through PORT), so a new one starts while the old one serves. `None` without, or once a
    /// server showed that it ignores PORT.
    pub ports: Option<Turns>,
}

/// The ports servers are given through PORT behind the proxy: with `--overlap`, two they take
/// turns on; with a port reload chose (no app port named), that one (twice, or two with
/// `--overlap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turns {
    /// The app's usual port (`--app-port`): a server that listens there ignores PORT. `None`:
    /// reload chose the ports, and a server that listens on another one is followed there.
    pub app: Option<u16>,
    /// The two ports given in turn: the app port and a second one, until one of them is found
    /// taken by someone else and replaced by a free one.
    pub ports: [u16; 2],
}

impl Policy {
    pub fn of(build: Option<&BuildCommand>, run: Option<&RunConfig>, clear: bool) -> Policy {
        Policy {
            build: build.map(ToString::to_string),
            server: run.is_some(),
            order: run.map_or(RestartOrder::StopThenStart, |r| r.order),
            on_build_failure: run.map_or(OnBuildFailure::KeepServing, |r| r.on_build_failure),
            on_exit: run.map_or(OnExit::Wait, |r| r.on_exit),
            ready_timeout: run.map_or(Duration::ZERO, |r| r.ready_timeout),
            stop_timeout: run.map_or(Duration::ZERO, |r| r.stop_timeout),
            stop_signal: run.map_or("SIGTERM", |r| r.stop_signal.as_str()),
            clear,
            listening: run.is_some_and(|r| !r.listeners.is_empty()),
            keys: false,
            ports: None,
            probed: run.and_then(|r| match &r.readiness {
                Readiness::TcpConnect(authority) => Some(authority.clone()),
                _ => None,
            }),
        }
    }
}

/// A server that was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Server {
    generation: Generation,
    pid: u32,
    started: Instant,
    /// Its own port, when it was given one.
    port: Option<u16>,
}

/// A server that was sent its stop signal and whose group is not gone yet.
#[derive(Debug)]
struct Stopping {
    server: Server,
    since: Instant,
    /// When it is killed if still there; `None` once it was.
    kill_at: Option<Instant>,
}

#[derive(Debug, PartialEq)]
enum Phase {
    /// Nothing to wait for but a change.
    Idle,
    Building {
        since: Instant,
        changed_at: Option<Instant>,
        /// The server exited by itself during the build and is due to start again then, if
        /// the build does not bring a new one.
        restart_at: Option<Instant>,
    },
    Swapping(Swap),
    /// The server exited by itself and is started again at `at`.
    RestartDue {
        at: Instant,
    },
    /// Reload is exiting once the servers being stopped are gone.
    /// Stopped for good once the servers being stopped are gone ([`Service::stopped`]).
    ShuttingDown,
}

/// A new server on its way in.
#[derive(Debug, PartialEq)]
struct Swap {
    generation: Generation,
    /// When the change it answers was first seen.
    changed_at: Option<Instant>,
    started: Instant,
    /// The server it replaces, when one served as it began.
    replaces: Option<u32>,
    /// The port it was given, or the one it listens on instead.
    port: Option<u16>,
    /// A port it was given was found taken: it was moved to another once, and is not again.
    moved: bool,
    /// Where it listens instead was said already: the timeout need not explain it again.
    told_ports: bool,
    step: Step,
}

#[derive(Debug, PartialEq)]
enum Step {
    Preparing,
    /// Its port was taken (`port`; `pid`: the server that exited for it, if it was started):
    /// a free one is being chosen to start it again on.
    ChoosingPort {
        port: u16,
        pid: Option<u32>,
    },
    /// Stop-then-start: the old server is being stopped.
    AwaitingStop,
    Spawning,
    AwaitingReady {
        pid: u32,
        spawned: Instant,
        deadline: Instant,
    },
}

/// A server that exits sooner than this after starting "dies fast": restarting it again and
/// again at once would only spin, so the restart delay grows while it keeps doing so.
const FAST_EXIT: Duration = Duration::from_secs(1);
/// The first longer delay, doubled at each fast exit after it, up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One service: its policy, its phase, the server that serves and those being stopped.
#[derive(Debug)]
pub struct Service {
    policy: Policy,
    phase: Phase,
    serving: Option<Server>,
    stopping: Vec<Stopping>,
    last_generation: Generation,
    /// The last build failed and its output is still on screen.
    failed_output_shown: bool,
    /// How many times in a row the server died fast (see [`FAST_EXIT`]); reset by a change.
    fast_exits: u32,
    /// The port the last server that ignored the one reload chose was followed to: a server
    /// that listens there again is not news.
    followed: Option<u16>,
}

impl Service {
    pub fn new(policy: Policy) -> Service {
        Service {
            policy,
            phase: Phase::Idle,
            serving: None,
            stopping: Vec::new(),
            last_generation: Generation(0),
            failed_output_shown: false,
            fast_exits: 0,
            followed: None,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Behave as `policy` says from the next event on (the configuration was read again). The
    /// phase and the servers stay as they are: the change that follows decides what happens
    /// to them.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The first build (or, without one, the first start).
    pub fn start(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.build_or_swap(now, None, &mut effects);
        effects
    }

    /// When [`Event::Tick`] is due next, if anything waits for a time.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::RestartDue { at } => Some(*at),
            Phase::Swapping(Swap {
                step: Step::AwaitingReady { deadline, .. },
                ..
            }) => Some(*deadline),
            _ => None,
        };
        let kills = self.stopping.iter().filter_map(|s| s.kill_at);
        phase.into_iter().chain(kills).min()
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let out = &mut effects;
        match event {
            Event::Changed {
                paths,
                summary,
                first_seen,
            } => {
                if !self.shutting_down() {
                    out.push(Effect::Publish(Lifecycle::Changed { paths, summary }));
                    // From the first change of the burst: the quiet window is part of the wait.
                    self.rebuild(now, first_seen, out);
                }
            }
            Event::Rebuild => {
                if !self.shutting_down() {
                    out.push(Effect::Publish(Lifecycle::RebuildAsked));
                    self.rebuild(now, now, out);
                }
            }
            Event::Shutdown => self.shut_down(now, out),
            Event::StopNow => {
                if self.shutting_down() {
                    self.kill_stopping(|_| true, true, now, out);
                }
            }
            Event::BuildFinished {
                result,
                elapsed,
                output,
            } => self.build_finished(result, elapsed, output, now, out),
            Event::BuildNotStarted(error) => {
                if matches!(self.phase, Phase::Building { .. }) {
                    self.phase = Phase::Idle;
                }
                out.push(Effect::Notice(Notice::BuildNotStarted(error)));
            }
            Event::Prepared { generation, result } => self.prepared(generation, result, now, out),
            Event::Spawned { generation, result } => self.spawned(generation, result, now, out),
            Event::PortTaken { generation, port } => {
                if matches!(&self.phase, Phase::Swapping(swap)
                    if swap.generation == generation && swap.step == Step::Spawning)
                {
                    self.port_taken(port, None, out);
                }
            }
            Event::PortChosen { generation, port } => self.port_chosen(generation, port, out),
            Event::IgnoresPort {
                generation,
                listens,
            } => self.ignores_port(generation, listens, out),
            Event::ListensElsewhere {
                generation,
                ports,
                expected,
            } => self.listens_elsewhere(generation, ports, expected, out),
            Event::Ready(generation) => self.ready(generation, now, out),
            Event::NotReady { generation, why } => {
                if self.awaiting_ready(generation) {
                    let then = self.wait_for_changes();
                    self.give_up(Failure::CheckFailed(why), None, then, now, out);
                }
            }
            Event::Exited { generation, exit } => self.exited(generation, exit, now, out),
            Event::Stopped(generation) => self.server_stopped(generation, out),
            Event::Tick => self.tick(now, out),
        }
        effects
    }

    /// The build ended: start the new server, or say it failed and what follows.
    fn build_finished(
        &mut self,
        result: BuildResult,
        elapsed: Duration,
        output: std::sync::Arc<str>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Phase::Building {
            changed_at,
            restart_at,
            ..
        } = self.phase
        else {
            return;
        };
        self.phase = Phase::Idle;
        let (how, errors) = match result {
            BuildResult::Succeeded { executable } => {
                // The errors on screen are fixed now: a success clears them away.
                if std::mem::take(&mut self.failed_output_shown) {
                    out.push(Effect::ClearScreen);
                }
                out.push(Effect::Publish(Lifecycle::BuildSucceeded { elapsed }));
                self.swap(now, executable, changed_at, out);
                return;
            }
            BuildResult::Failed { how, errors } => (how, errors),
        };
        self.failed_output_shown = true;
        if self.policy.on_build_failure == OnBuildFailure::Stop {
            self.stop_serving(now, out);
        }
        // The last good build runs again, as it would have without this build.
        let restart =
            restart_at.filter(|_| self.policy.on_build_failure == OnBuildFailure::KeepServing);
        let then = match (self.serving, restart) {
            (Some(serving), _) => AfterFailure::Serving(serving.pid),
            (None, Some(at)) => AfterFailure::RestartIn(at.saturating_duration_since(now)),
            (None, None) => AfterFailure::WaitForChanges,
        };
        out.push(Effect::Publish(Lifecycle::BuildFailed {
            how,
            errors,
            elapsed,
            then,
            output,
        }));
        if let Some(at) = restart {
            self.phase = Phase::RestartDue { at };
        }
    }

    /// The new server is prepared: stop the old one first (stop-then-start), or spawn now.
    fn prepared(
        &mut self,
        generation: Generation,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if !matches!(&self.phase, Phase::Swapping(swap)
            if swap.generation == generation && swap.step == Step::Preparing)
        {
            return;
        }
        if let Err(error) = result {
            self.not_started(Failure::Unstartable(error), out);
            return;
        }
        let replaces = self.serving.map(|s| s.pid);
        let overlap = self.policy.order == RestartOrder::Overlap;
        if !overlap {
            self.stop_serving(now, out);
        }
        let Phase::Swapping(swap) = &mut self.phase else {
            unreachable!("checked above; stopping the old server keeps the swap")
        };
        swap.replaces = replaces;
        if !overlap && !self.stopping.is_empty() {
            swap.step = Step::AwaitingStop;
        } else {
            swap.step = Step::Spawning;
            out.push(Effect::Spawn(generation));
        }
    }

    /// The new server was spawned: wait for its readiness.
    fn spawned(
        &mut self,
        generation: Generation,
        result: Result<u32, String>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Phase::Swapping(swap) = &mut self.phase else {
            return;
        };
        if swap.generation != generation || swap.step != Step::Spawning {
            return;
        }
        match result {
            Ok(pid) => {
                swap.step = Step::AwaitingReady {
                    pid,
                    spawned: now,
                    deadline: now + self.policy.ready_timeout,
                };
                out.push(Effect::Publish(Lifecycle::ServerStarting {
                    pid,
                    generation,
                }));
                out.push(Effect::AwaitReady(generation));
            }
            Err(error) => self.not_started(Failure::Unstartable(error), out),
        }
    }

    /// Given its own port through PORT, the new server listens on the app's usual one: servers
    /// cannot run side by side, so restarts stop the old one first from now on.
    fn ignores_port(&mut self, generation: Generation, listens: u16, out: &mut Vec<Effect>) {
        let Phase::Swapping(swap) = &mut self.phase else {
            return;
        };
        if swap.generation != generation {
            return;
        }
        let given = swap.port;
        swap.port = Some(listens);
        self.policy.ports = None;
        self.policy.order = RestartOrder::StopThenStart;
        out.push(Effect::Notice(Notice::IgnoresPort { given, listens }));
    }

    /// The new server is ready: it takes the traffic, and the old one stops.
    fn ready(&mut self, generation: Generation, now: Instant, out: &mut Vec<Effect>) {
        let Phase::Swapping(Swap {
            generation: new,
            step: Step::AwaitingReady { pid, spawned, .. },
            changed_at,
            started,
            replaces,
            port,
            ..
        }) = self.phase
        else {
            return;
        };
        if new != generation {
            return;
        }
        self.phase = Phase::Idle;
        out.push(Effect::Publish(Lifecycle::ServerReady {
            pid,
            generation,
            old: replaces,
            swap: now.saturating_duration_since(started),
            since_change: changed_at.map(|at| now.saturating_duration_since(at)),
            port,
        }));
        // Overlap: the old server stops only now that the new one takes the traffic.
        self.stop_serving(now, out);
        self.serving = Some(Server {
            generation,
            pid,
            started: spawned,
            port,
        });
    }

    /// A stopped server's group is gone: once none is left, spawn the new server that waited
    /// for it, or exit.
    fn server_stopped(&mut self, generation: Generation, out: &mut Vec<Effect>) {
        let Some(index) = self
            .stopping
            .iter()
            .position(|s| s.server.generation == generation)
        else {
            return;
        };
        let stopped = self.stopping.remove(index);
        out.push(Effect::Publish(Lifecycle::Stopped {
            pid: stopped.server.pid,
            generation,
            shutdown: self.shutting_down(),
        }));
        if !self.stopping.is_empty() {
            return;
        }
        if let Phase::Swapping(swap) = &mut self.phase
            && swap.step == Step::AwaitingStop
        {
            swap.step = Step::Spawning;
            out.push(Effect::Spawn(swap.generation));
        }
    }

    fn shutting_down(&self) -> bool {
        matches!(self.phase, Phase::ShuttingDown)
    }

    /// Shut down, and nothing of it is left running: the service is done for good.
    pub fn stopped(&self) -> bool {
        self.shutting_down() && self.stopping.is_empty()
    }

    fn awaiting_ready(&self, generation: Generation) -> bool {
        matches!(&self.phase, Phase::Swapping(swap)
            if swap.generation == generation && matches!(swap.step, Step::AwaitingReady { .. }))
    }

    /// A change first seen at `since` (or the `r` key): whatever is building or starting is
    /// stale; build again.
    fn rebuild(&mut self, now: Instant, since: Instant, out: &mut Vec<Effect>) {
        self.fast_exits = 0;
        self.leave_phase(CancelReason::Changed, Failure::GaveWay, now, out);
        self.build_or_swap(now, Some(since), out);
    }

    /// End what the current phase waits for: cancel a build (`cancelled`: why), discard a new
    /// server not ready yet (`gave_way`: what happened to it), forget a pending restart.
    fn leave_phase(
        &mut self,
        cancelled: CancelReason,
        gave_way: Failure,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        match &self.phase {
            Phase::Building { since, .. } => {
                out.push(Effect::CancelBuild);
                out.push(Effect::Publish(Lifecycle::BuildCancelled {
                    after: now.saturating_duration_since(*since),
                    reason: cancelled,
                }));
            }
            Phase::Swapping(Swap {
                step: Step::AwaitingReady { .. },
                ..
            }) => self.give_up(gave_way, None, Afterwards::Decided, now, out),
            Phase::ShuttingDown => return,
            // Nothing was started yet: it just does not happen.
            Phase::Swapping(_) | Phase::RestartDue { .. } | Phase::Idle => {}
        }
        self.phase = Phase::Idle;
    }

    fn build_or_swap(&mut self, now: Instant, changed_at: Option<Instant>, out: &mut Vec<Effect>) {
        let Some(command) = &self.policy.build else {
            self.swap(now, None, changed_at, out);
            return;
        };
        if self.policy.clear {
            out.push(Effect::ClearScreen);
        }
        out.push(Effect::Publish(Lifecycle::BuildStarted {
            command: command.clone(),
        }));
        self.phase = Phase::Building {
            since: now,
            changed_at,
            restart_at: None,
        };
        out.push(Effect::StartBuild);
    }

    /// Put a fresh server in place of the serving one, starting by preparing it.
    fn swap(
        &mut self,
        now: Instant,
        executable: Option<PathBuf>,
        changed_at: Option<Instant>,
        out: &mut Vec<Effect>,
    ) {
        if !self.policy.server {
            return;
        }
        self.last_generation = self.last_generation.next();
        let generation = self.last_generation;
        let port = self.next_port();
        self.phase = Phase::Swapping(Swap {
            generation,
            changed_at,
            started: now,
            replaces: None,
            port: port.map(|turn| turn.given),
            moved: false,
            told_ports: false,
            step: Step::Preparing,
        });
        out.push(Effect::Prepare {
            generation,
            executable,
            port,
        });
    }

    /// The port the next server takes its turn on: the one the serving server does not hold
    /// (the second one first, so the very first server already shows whether it reads PORT).
    fn next_port(&self) -> Option<PortTurn> {
        let Turns {
            app,
            ports: [first, second],
        } = self.policy.ports?;
        let taken = |port: u16| {
            self.serving.is_some_and(|s| s.port == Some(port))
                || self.stopping.iter().any(|s| s.server.port == Some(port))
        };
        let given = if taken(second) && self.serving.is_none_or(|s| s.port != Some(first)) {
            first
        } else {
            second
        };
        Some(PortTurn {
            given,
            app,
            followed: self.followed,
        })
    }

    /// The new server's group listens on `ports`, not on `expected`. With a port reload chose,
    /// it is followed to the lowest of them (a server's own port is mostly below its
    /// debugger's and the like), said once for as long as it stays there; since it ignores
    /// PORT, two cannot run side by side, and overlap gives way to stop-then-start. With an
    /// app port named, the wait goes on, and the user is told now rather than at the timeout.
    fn listens_elsewhere(
        &mut self,
        generation: Generation,
        ports: Vec<u16>,
        expected: u16,
        out: &mut Vec<Effect>,
    ) {
        let Phase::Swapping(Swap {
            generation: new,
            step: Step::AwaitingReady { pid, .. },
            port,
            told_ports,
            ..
        }) = &mut self.phase
        else {
            return;
        };
        let (Some(lowest), true) = (ports.first().copied(), *new == generation) else {
            return;
        };
        let pid = *pid;
        *told_ports = true;
        let follows = self.policy.ports.is_some_and(|turns| turns.app.is_none());
        if !follows {
            out.push(Effect::Publish(Lifecycle::ListensElsewhere {
                pid,
                generation,
                ports,
                expected,
                followed: None,
                overlap_off: false,
            }));
            return;
        }
        *port = Some(lowest);
        let overlap_off = self.policy.order == RestartOrder::Overlap;
        self.policy.order = RestartOrder::StopThenStart;
        if overlap_off || self.followed != Some(lowest) {
            self.followed = Some(lowest);
            out.push(Effect::Publish(Lifecycle::ListensElsewhere {
                pid,
                generation,
                ports,
                expected,
                followed: Some(lowest),
                overlap_off,
            }));
        }
    }

    /// Whether the new server may be moved to another port: it has its turn on one, and was
    /// not moved before (a second taken port is a failure, not a loop).
    fn may_move_port(&self) -> bool {
        self.policy.ports.is_some() && matches!(&self.phase, Phase::Swapping(swap) if !swap.moved)
    }

    /// The new server's port is taken by someone else: found before its spawn (`pid` `None`),
    /// or after it exited before it was ready (`pid`: that server, already reaped). The first
    /// time, it starts again, as a new generation, on a port chosen free; the next, it will
    /// not take over.
    fn port_taken(&mut self, port: u16, pid: Option<u32>, out: &mut Vec<Effect>) {
        if !self.may_move_port() {
            self.not_started(Failure::PortInUse(port), out);
            return;
        }
        let Phase::Swapping(swap) = &mut self.phase else {
            return;
        };
        // A new generation: nothing the first start's tasks still report can be taken for it.
        self.last_generation = self.last_generation.next();
        swap.generation = self.last_generation;
        swap.moved = true;
        swap.step = Step::ChoosingPort { port, pid };
        let avoid = self
            .policy
            .ports
            .map(|turns| turns.app.into_iter().chain(turns.ports).collect())
            .unwrap_or_default();
        out.push(Effect::ChoosePort {
            generation: swap.generation,
            avoid,
        });
    }

    /// A port to start the new server on instead of its taken one: it takes that one's place
    /// in the turns from now on.
    fn port_chosen(&mut self, generation: Generation, chosen: Option<u16>, out: &mut Vec<Effect>) {
        let Phase::Swapping(swap) = &mut self.phase else {
            return;
        };
        let Step::ChoosingPort { port, pid } = swap.step else {
            return;
        };
        if swap.generation != generation {
            return;
        }
        let (Some(instead), Some(turns)) = (chosen, self.policy.ports.as_mut()) else {
            self.not_started(Failure::NoFreePort(port), out);
            return;
        };
        for slot in &mut turns.ports {
            if *slot == port {
                *slot = instead;
            }
        }
        swap.port = Some(instead);
        swap.step = Step::Preparing;
        out.push(Effect::Publish(Lifecycle::PortTaken {
            generation,
            pid,
            port,
            instead,
        }));
        out.push(Effect::Prepare {
            generation,
            executable: None,
            port: Some(PortTurn {
                given: instead,
                app: turns.app,
                followed: self.followed,
            }),
        });
    }

    /// The new server, not running, will not take over: say why.
    fn not_started(&mut self, why: Failure, out: &mut Vec<Effect>) {
        let Phase::Swapping(swap) = &self.phase else {
            return;
        };
        out.push(Effect::Publish(Lifecycle::ServerFailed(ServerFailure {
            pid: None,
            generation: swap.generation,
            why,
            hint: None,
            serving: self.serving.map(|s| s.pid),
            then: self.wait_for_changes(),
            port: swap.port,
        })));
        self.phase = Phase::Idle;
    }

    /// Send the serving server its stop signal; it counts as stopping until [`Event::Stopped`].
    fn stop_serving(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let Some(server) = self.serving.take() else {
            return;
        };
        out.push(Effect::Publish(Lifecycle::Stopping {
            pid: server.pid,
            generation: server.generation,
        }));
        out.push(Effect::Stop(server.generation));
        self.stopping.push(Stopping {
            server,
            since: now,
            kill_at: Some(now + self.policy.stop_timeout),
        });
    }

    /// The new server (awaiting readiness) will not take over: discard it and say why, what
    /// may explain it (`hint`, else whether `--listen` may, from how long it ran), and what
    /// comes next.
    fn give_up(
        &mut self,
        why: Failure,
        hint: Option<Hint>,
        then: Afterwards,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Phase::Swapping(Swap {
            generation,
            step: Step::AwaitingReady { pid, spawned, .. },
            port,
            ..
        }) = self.phase
        else {
            return;
        };
        let hint = hint.or_else(|| {
            crate::supervise::hint(
                None,
                now.saturating_duration_since(spawned),
                self.policy.listening,
            )
        });
        out.push(Effect::Discard(generation));
        out.push(Effect::Publish(Lifecycle::ServerFailed(ServerFailure {
            pid: Some(pid),
            generation,
            why,
            hint,
            serving: self.serving.map(|s| s.pid),
            then,
            port,
        })));
        self.phase = Phase::Idle;
    }

    /// Nothing happens until the next change (or `r`, when keys are read).
    fn wait_for_changes(&self) -> Afterwards {
        Afterwards::WaitForChanges {
            key: self.policy.keys,
        }
    }

    fn exited(
        &mut self,
        generation: Generation,
        exit: ChildExit,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if self.awaiting_ready(generation) {
            if let (Some(port), true) = (exit.port_taken, self.may_move_port()) {
                // Dead already: the discard only reaps what it left.
                out.push(Effect::Discard(generation));
                self.port_taken(port, Some(exit.pid), out);
                return;
            }
            let why = Failure::Exited {
                ended: exit.ended(),
                port_in_use: exit.port_taken,
            };
            // The new server is dead already: give_up's discard only reaps what is left.
            let then = self.wait_for_changes();
            self.give_up(why, exit.hint, then, now, out);
            return;
        }
        let Some(server) = self.serving.filter(|s| s.generation == generation) else {
            return;
        };
        self.serving = None;
        out.push(Effect::Bury(generation));
        let restarts_in = match self.policy.on_exit {
            OnExit::RestartAfter(delay) => Some(self.restart_delay(delay, exit.ran, out)),
            OnExit::Wait => None,
        };
        out.push(Effect::Publish(Lifecycle::ServerExited {
            pid: server.pid,
            generation,
            ended: exit.ended(),
            restarts_in,
            hint: exit.hint,
            port: server.port,
        }));
        // A swap under way brings the next server anyway; a build will, if it succeeds.
        match (restarts_in, &mut self.phase) {
            (Some(delay), Phase::Idle) => self.phase = Phase::RestartDue { at: now + delay },
            (Some(delay), Phase::Building { restart_at, .. }) => *restart_at = Some(now + delay),
            _ => {}
        }
    }

    /// How long to wait before restarting a server that exited by itself after running for
    /// `ran`: the configured delay, unless it keeps dying fast; then a delay that doubles, up to
    /// [`BACKOFF_MAX`], so that a server that cannot start does not spin reload.
    fn restart_delay(
        &mut self,
        configured: Duration,
        ran: Duration,
        out: &mut Vec<Effect>,
    ) -> Duration {
        if ran >= FAST_EXIT {
            self.fast_exits = 0;
            return configured;
        }
        self.fast_exits += 1;
        if self.fast_exits < 2 {
            return configured;
        }
        if self.fast_exits == 2 {
            out.push(Effect::Notice(Notice::KeepsExitingFast {
                within: FAST_EXIT,
                up_to: BACKOFF_MAX,
            }));
        }
        let doublings = (self.fast_exits - 2).min(16);
        configured.max((BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_MAX))
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Effect>) {
        self.kill_stopping(|kill_at| kill_at <= now, false, now, out);
        match self.phase {
            Phase::RestartDue { at } if at <= now => {
                self.phase = Phase::Idle;
                self.swap(now, None, None, out);
            }
            Phase::Swapping(Swap {
                step: Step::AwaitingReady { deadline, .. },
                ..
            }) if deadline <= now => {
                let why = Failure::NotReadyWithin(self.policy.ready_timeout);
                if let (Phase::Swapping(swap), Some(expected)) = (&self.phase, &self.policy.probed)
                    && !swap.told_ports
                {
                    out.push(Effect::ExplainPorts {
                        generation: swap.generation,
                        expected: expected.clone(),
                    });
                }
                let then = self.wait_for_changes();
                self.give_up(why, None, then, now, out);
            }
            _ => {}
        }
    }

    /// Kill each server being stopped whose kill time `due` says has come (`asked`: the user
    /// asked for it); one already killed is not killed again.
    fn kill_stopping(
        &mut self,
        due: impl Fn(Instant) -> bool,
        asked: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        for stopping in &mut self.stopping {
            if stopping.kill_at.is_some_and(&due) {
                stopping.kill_at = None;
                out.push(Effect::Publish(Lifecycle::Killing {
                    pid: stopping.server.pid,
                    generation: stopping.server.generation,
                    after: now.saturating_duration_since(stopping.since),
                    signal: self.policy.stop_signal,
                    asked,
                }));
                out.push(Effect::Kill(stopping.server.generation));
            }
        }
    }

    /// End whatever runs and stop the server gracefully, once: [`Event::StopNow`] is what
    /// hurries a stop that lasts.
    fn shut_down(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.shutting_down() {
            return;
        }
        self.leave_phase(CancelReason::Stopping, Failure::Interrupted, now, out);
        self.stop_serving(now, out);
        self.phase = Phase::ShuttingDown;
    }
}

#[cfg(test)]
mod tests;
