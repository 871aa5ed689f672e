//! What happens to a service, as owned values anyone can subscribe to: a change seen, a build
//! started, succeeded or failed (with its output), a server starting, ready, exiting, being
//! stopped. The engine is the only publisher; [`Bus::publish`] takes the [`ServiceName`] of the
//! service it happened to with each event (the events themselves never name one) and hands both
//! to
//!
//! - the local subscribers, synchronously and in order: reload's own status lines (human or
//!   JSON, see `status`). They must be in order with the children's output on the same
//!   terminal, and all written before reload exits, so they are not left to a task;
//! - a broadcast channel ([`Bus::subscribe`]) for subscribers that live elsewhere (the dev
//!   proxy), as [`Published`]: a subscriber that falls behind misses events (it learns so from
//!   the channel) but never slows the engine;
//! - the [`State`] of that service, which a subscriber that joins late reads first
//!   ([`Bus::state`], by the service's name): who serves, whether a build runs, the last
//!   failure's output.
//!
//! Events carry facts, never sentences: why a server failed is a [`Failure`], what may explain
//! it a [`Hint`], how a process ended an [`Ended`]. Each subscriber words them its own way
//! (`status` for the terminal and JSON, the proxy for its pages).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

/// The name a service is known by: what each stage's report, each lifecycle event and each
/// service's [`State`] is tagged with. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(Arc<str>);

impl ServiceName {
    pub fn new(name: &str) -> ServiceName {
        ServiceName(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Servers are numbered from 1 in the order they are started; a restart is a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

impl Generation {
    #[must_use]
    pub fn next(self) -> Generation {
        Generation(self.0 + 1)
    }
}

/// How much of a failed build's output is kept for subscribers (a page that shows it).
pub const OUTPUT_KEPT: usize = 64 * 1024;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    Changed {
        paths: Vec<PathBuf>,
        /// "src/main.rs and 2 more", relative to the project.
        summary: String,
    },
    /// The `r` key asked for a rebuild.
    RebuildAsked,
    BuildStarted {
        command: String,
    },
    BuildCancelled {
        after: Duration,
        reason: CancelReason,
    },
    BuildSucceeded {
        elapsed: Duration,
    },
    BuildFailed {
        /// "exit 101", "SIGSEGV".
        how: String,
        errors: Option<usize>,
        elapsed: Duration,
        /// What follows: the old server serves on, the last good build starts again, or
        /// nothing runs until a change.
        then: AfterFailure,
        /// The last [`OUTPUT_KEPT`] bytes of the build's output, ANSI colours included.
        output: Arc<str>,
    },
    /// A server process was spawned; it is not ready yet.
    ServerStarting {
        pid: u32,
        generation: Generation,
    },
    /// A server passed its readiness check (never sent at spawn, unless readiness is "when
    /// spawned") and now takes the traffic, in place of `old` if there was one.
    ServerReady {
        pid: u32,
        generation: Generation,
        old: Option<u32>,
        /// From the start of the swap to readiness.
        swap: Duration,
        /// From the change that caused it (its first event) to readiness.
        since_change: Option<Duration>,
        /// The TCP port it listens on, when reload gave it one through PORT.
        port: Option<u16>,
    },
    /// A new server's port (`--overlap` behind the proxy) was taken by someone else: found
    /// before its start, or after it exited before it was ready (`pid`). It starts (again) on
    /// `instead`, which takes the taken one's place from now on.
    PortTaken {
        generation: Generation,
        pid: Option<u32>,
        port: u16,
        instead: u16,
    },
    /// A new server will not take over: it could not be started, exited, was not ready in
    /// time, or gave way (`why`); what follows is `serving` and `then`.
    ServerFailed(ServerFailure),
    /// A new server's process group listens on TCP `ports`, none of them `expected` (the port
    /// it was given through PORT, or the one its readiness check waits on). `followed`: the
    /// one the proxy forwards to instead (no app port was named); `None`: reload keeps waiting
    /// on `expected`, and the user should know at once. `overlap_off`: it ignores PORT, so two
    /// versions cannot run side by side and restarts stop the old server first from now on.
    ListensElsewhere {
        pid: u32,
        generation: Generation,
        ports: Vec<u16>,
        expected: u16,
        followed: Option<u16>,
        overlap_off: bool,
    },
    /// The serving server ended by itself.
    ServerExited {
        pid: u32,
        generation: Generation,
        ended: Ended,
        /// When it is started again by itself; else on the next change.
        restarts_in: Option<Duration>,
        /// What may explain the exit.
        hint: Option<Hint>,
        /// The port it was given through PORT, or followed to.
        port: Option<u16>,
    },
    /// The server was sent its stop signal.
    Stopping {
        pid: u32,
        generation: Generation,
    },
    /// It did not stop in time, or the user asked (a second Ctrl-C): it is being killed.
    Killing {
        pid: u32,
        generation: Generation,
        after: Duration,
        signal: &'static str,
        asked: bool,
    },
    /// A stopped server and its whole group are gone. `shutdown`: reload is exiting.
    Stopped {
        pid: u32,
        generation: Generation,
        shutdown: bool,
    },
}

/// A new server that will not take over ([`Lifecycle::ServerFailed`]): which, why, what may
/// explain it, what serves on and what follows.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFailure {
    /// `None`: it was not started.
    pub pid: Option<u32>,
    pub generation: Generation,
    pub why: Failure,
    /// What may explain the failure.
    pub hint: Option<Hint>,
    /// The server that keeps serving, if one does.
    pub serving: Option<u32>,
    pub then: Afterwards,
    /// The port it was given through PORT, or followed to.
    pub port: Option<u16>,
}

/// What a late subscriber needs to know of one service before its next event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The server taking the traffic.
    pub serving: Option<Serving>,
    pub build: BuildState,
    /// What went wrong with the app since the last build or start, which nothing will mend by
    /// itself: a request held for an app is answered with it at once.
    pub trouble: Option<Trouble>,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it: its name ("SIGKILL"), or its number when it has none.
    Signal(String),
    /// It was reaped, but its status says neither.
    Unknown,
    /// Waiting for it failed: how it ended could not be learnt.
    Lost,
}

impl Ended {
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        match self {
            Ended::Code(code) => Some(*code),
            _ => None,
        }
    }

    #[must_use]
    pub fn signal(&self) -> Option<&str> {
        match self {
            Ended::Signal(signal) => Some(signal),
            _ => None,
        }
    }
}

/// Why a new server will not take over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It could not be started at all (a missing program, say): the error, as the OS or the
    /// stage that found it tells it.
    Unstartable(String),
    /// It was not started: the port it was to be given is taken by someone else.
    PortInUse(u16),
    /// It was not started: its port is taken, and no other one was free.
    NoFreePort(u16),
    /// It exited before it was ready; `port_in_use`: the port it was given cannot be bound
    /// now, most likely what it failed on.
    Exited {
        ended: Ended,
        port_in_use: Option<u16>,
    },
    /// Its readiness check did not pass within this timeout.
    NotReadyWithin(Duration),
    /// Its readiness check itself failed (a broken notify socket): the check's error.
    CheckFailed(String),
    /// A newer change came before it was ready.
    GaveWay,
    /// reload began to stop before it was ready.
    Interrupted,
}

/// What may explain a server's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// With `--listen`, it failed soon after its start: an app that binds the held port itself
    /// instead of taking fd 3 fails with "address already in use".
    BindsHeldPort,
}

/// What follows a new server that will not take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Afterwards {
    /// Nothing until the next change (or, when keys are read, `r`).
    WaitForChanges { key: bool },
    /// Already under way (a newer change is built, reload is stopping).
    Decided,
}

/// Why a build was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The sources changed (or `r` asked for a rebuild) while it ran.
    Changed,
    /// reload is stopping.
    Stopping,
}

/// Something the engine tells the user that is no lifecycle event: no page cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The keys reload reads (the `h` key).
    Help,
    /// A second request to stop: the servers being stopped are killed now.
    StoppingNow,
    /// The build command could not be started: the error, as the OS tells it.
    BuildNotStarted(String),
    /// A new server given `given` through PORT listens on the app's usual port, `listens`:
    /// servers cannot run side by side, and restarts stop the old one first from now on.
    IgnoresPort { given: Option<u16>, listens: u16 },
    /// The server keeps exiting within `within` of its start: the restart delay grows, up to
    /// `up_to`.
    KeepsExitingFast { within: Duration, up_to: Duration },
    /// A new server never accepted on `expected` (the `host:port` its readiness check waits
    /// on); its group listens on `ports` (in order, maybe none).
    ListensInstead {
        pid: u32,
        ports: Vec<u16>,
        expected: String,
    },
}

/// Something wrong with the app that waiting will not mend: the proxy answers held requests
/// with it at once, in a page that turns into the app once a server is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The app exited: before it was ready (`serving` false), or while it served and nothing
    /// starts it again until a change. `port`: the one it was given, when reload gave one.
    Exited {
        pid: u32,
        ended: Ended,
        serving: bool,
        port: Option<u16>,
    },
    /// The new app listens on `ports`, and not on `expected`, where reload waits for it.
    ListensElsewhere {
        pid: u32,
        ports: Vec<u16>,
        expected: u16,
    },
}

/// What follows a failed build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// The server that was serving keeps serving.
    Serving(u32),
    /// The server had exited by itself and, with `restart_on_exit`, the last good build starts
    /// again after this delay, as it would have without the build.
    RestartIn(Duration),
    /// Nothing runs until the next change (or `r`).
    WaitForChanges,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    pub pid: u32,
    pub generation: Generation,
    /// Where it listens, when reload gave it a port of its own (the proxy forwards there).
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum BuildState {
    /// No build since the last success (or none configured).
    #[default]
    Passed,
    Running,
    /// The last build failed, this way, with this output; a change or `r` builds again.
    Failed {
        /// "exit 1", as in [`Lifecycle::BuildFailed`].
        how: String,
        errors: Option<usize>,
        output: Arc<str>,
    },
}

impl State {
    fn apply(&mut self, event: &Lifecycle) {
        self.note_trouble(event);
        match event {
            Lifecycle::BuildStarted { .. } => self.build = BuildState::Running,
            Lifecycle::BuildSucceeded { .. } | Lifecycle::BuildCancelled { .. } => {
                self.build = BuildState::Passed;
            }
            Lifecycle::BuildFailed {
                how,
                errors,
                output,
                ..
            } => {
                self.build = BuildState::Failed {
                    how: how.clone(),
                    errors: *errors,
                    output: output.clone(),
                };
            }
            Lifecycle::ServerReady {
                pid,
                generation,
                port,
                ..
            } => {
                self.serving = Some(Serving {
                    pid: *pid,
                    generation: *generation,
                    port: *port,
                });
            }
            Lifecycle::ServerExited { generation, .. }
            | Lifecycle::Stopping { generation, .. }
            | Lifecycle::Stopped { generation, .. }
                if self.serving.is_some_and(|s| s.generation == *generation) =>
            {
                self.serving = None;
            }
            _ => {}
        }
    }

    /// A build or a start is a new attempt: what went wrong before is no longer the answer.
    fn note_trouble(&mut self, event: &Lifecycle) {
        match event {
            Lifecycle::BuildStarted { .. }
            | Lifecycle::ServerStarting { .. }
            | Lifecycle::ServerReady { .. } => self.trouble = None,
            _ => {
                if let Some(trouble) = Trouble::of(event) {
                    self.trouble = Some(trouble);
                }
            }
        }
    }
}

impl Trouble {
    /// The trouble `event` tells of, if it tells of one.
    pub fn of(event: &Lifecycle) -> Option<Trouble> {
        Some(match event {
            Lifecycle::ServerFailed(ServerFailure {
                pid: Some(pid),
                why: Failure::Exited { ended, .. },
                port,
                ..
            }) => Trouble::Exited {
                pid: *pid,
                ended: ended.clone(),
                serving: false,
                port: *port,
            },
            Lifecycle::ListensElsewhere {
                pid,
                ports,
                expected,
                followed: None,
                ..
            } => Trouble::ListensElsewhere {
                pid: *pid,
                ports: ports.clone(),
                expected: *expected,
            },
            Lifecycle::ServerExited {
                pid,
                ended,
                restarts_in: None,
                port,
                ..
            } => Trouble::Exited {
                pid: *pid,
                ended: ended.clone(),
                serving: true,
                port: *port,
            },
            _ => return None,
        })
    }
}

/// Hears every event, with the service it happened to, in order, before [`Bus::publish`]
/// returns.
pub trait Subscriber {
    fn on(&mut self, service: &ServiceName, event: &Lifecycle);
}

/// One event as remote subscribers receive it: with the service it happened to.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub service: ServiceName,
    pub event: Lifecycle,
}

/// Where the engine publishes; see the module documentation.
pub struct Bus {
    local: Vec<Box<dyn Subscriber>>,
    remote: broadcast::Sender<Arc<Published>>,
    /// Each service's state, made when it is first published to or asked for.
    states: BTreeMap<ServiceName, watch::Sender<State>>,
}

/// Events a slow remote subscriber may fall behind by before it misses some.
const BACKLOG: usize = 256;

impl Bus {
    pub fn new(local: Vec<Box<dyn Subscriber>>) -> Bus {
        Bus {
            local,
            remote: broadcast::channel(BACKLOG).0,
            states: BTreeMap::new(),
        }
    }

    /// `event` happened to `service`.
    pub fn publish(&mut self, service: &ServiceName, event: Lifecycle) {
        for subscriber in &mut self.local {
            subscriber.on(service, &event);
        }
        self.sender(service)
            .send_modify(|state| state.apply(&event));
        // No remote subscriber is not an error: most runs have none.
        let _ = self.remote.send(Arc::new(Published {
            service: service.clone(),
            event,
        }));
    }

    /// Every event from now on, of every service.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.remote.subscribe()
    }

    /// The current state of `service`, and every change of it.
    pub fn state(&mut self, service: &ServiceName) -> watch::Receiver<State> {
        self.sender(service).subscribe()
    }

    fn sender(&mut self, service: &ServiceName) -> &watch::Sender<State> {
        self.states
            .entry(service.clone())
            .or_insert_with(|| watch::channel(State::default()).0)
    }
}

/// The last `limit` bytes written to it, cut at a character boundary when read.
#[derive(Debug, Default)]
pub struct Tail {
    bytes: std::collections::VecDeque<u8>,
}

impl Tail {
    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(OUTPUT_KEPT)..];
        let overflow = (self.bytes.len() + data.len()).saturating_sub(OUTPUT_KEPT);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    /// The kept text; a character cut in two by the limit is dropped, invalid UTF-8 replaced.
    pub fn text(&self) -> Arc<str> {
        let (front, back) = self.bytes.as_slices();
        let mut bytes = Vec::with_capacity(self.bytes.len());
        bytes.extend_from_slice(front);
        bytes.extend_from_slice(back);
        // Skip continuation bytes at the start: the rest of a character cut by the limit.
        let start = bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xc0) == 0x80)
            .count();
        String::from_utf8_lossy(&bytes[start..]).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> ServiceName {
        ServiceName::new("app")
    }

    /// Publishing as the one service most tests need.
    trait PublishApp {
        fn publish_app(&mut self, event: Lifecycle);
    }

    impl PublishApp for Bus {
        fn publish_app(&mut self, event: Lifecycle) {
            self.publish(&app(), event);
        }
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_and_whole_characters() {
        let mut tail = Tail::default();
        tail.push(b"first line\n");
        assert_eq!(&*tail.text(), "first line\n");
        let long = "é".repeat(OUTPUT_KEPT); // two bytes each: twice the limit
        tail.push(long.as_bytes());
        tail.push(b"\x1b[31merror\x1b[0m\n");
        let text = tail.text();
        assert!(text.len() <= OUTPUT_KEPT, "{}", text.len());
        assert!(text.ends_with("\x1b[31merror\x1b[0m\n"));
        assert!(text.starts_with('é'), "a cut character is dropped");
        assert!(!text.contains("first line"));
    }

    #[test]
    fn a_late_subscriber_reads_who_serves_and_the_last_failure() {
        let mut bus = Bus::new(Vec::new());
        let state = bus.state(&app());
        bus.publish_app(Lifecycle::ServerReady {
            pid: 7,
            generation: Generation(1),
            old: None,
            swap: Duration::ZERO,
            since_change: None,
            port: None,
        });
        bus.publish_app(Lifecycle::BuildFailed {
            how: "exit 1".into(),
            errors: Some(1),
            elapsed: Duration::ZERO,
            then: AfterFailure::Serving(7),
            output: "boom".into(),
        });
        let now = state.borrow().clone();
        assert_eq!(
            now.serving,
            Some(Serving {
                pid: 7,
                generation: Generation(1),
                port: None,
            })
        );
        assert_eq!(
            now.build,
            BuildState::Failed {
                how: "exit 1".into(),
                errors: Some(1),
                output: "boom".into()
            }
        );
        bus.publish_app(Lifecycle::Stopping {
            pid: 7,
            generation: Generation(1),
        });
        assert_eq!(bus.state(&app()).borrow().serving, None);
    }

    #[test]
    fn trouble_lasts_until_the_next_build_or_start() {
        let mut bus = Bus::new(Vec::new());
        let state = bus.state(&app());
        bus.publish_app(Lifecycle::ServerStarting {
            pid: 7,
            generation: Generation(1),
        });
        bus.publish_app(Lifecycle::ListensElsewhere {
            pid: 7,
            generation: Generation(1),
            ports: vec![5000],
            expected: 8080,
            followed: None,
            overlap_off: false,
        });
        assert_eq!(
            state.borrow().trouble,
            Some(Trouble::ListensElsewhere {
                pid: 7,
                ports: vec![5000],
                expected: 8080,
            })
        );
        bus.publish_app(Lifecycle::ServerFailed(ServerFailure {
            pid: Some(7),
            generation: Generation(1),
            why: Failure::NotReadyWithin(Duration::from_secs(30)),
            hint: None,
            serving: None,
            then: Afterwards::WaitForChanges { key: false },
            port: None,
        }));
        assert!(
            matches!(
                state.borrow().trouble,
                Some(Trouble::ListensElsewhere { .. })
            ),
            "a timeout keeps saying where it listened"
        );
        bus.publish_app(Lifecycle::BuildStarted {
            command: "make".into(),
        });
        assert_eq!(state.borrow().trouble, None, "a build is a new attempt");
        bus.publish_app(Lifecycle::ServerStarting {
            pid: 8,
            generation: Generation(2),
        });
        bus.publish_app(Lifecycle::ServerFailed(ServerFailure {
            pid: Some(8),
            generation: Generation(2),
            why: Failure::Exited {
                ended: Ended::Code(3),
                port_in_use: None,
            },
            hint: None,
            serving: None,
            then: Afterwards::WaitForChanges { key: false },
            port: Some(4123),
        }));
        assert_eq!(
            state.borrow().trouble,
            Some(Trouble::Exited {
                pid: 8,
                ended: Ended::Code(3),
                serving: false,
                port: Some(4123),
            })
        );
        bus.publish_app(Lifecycle::ServerStarting {
            pid: 9,
            generation: Generation(3),
        });
        assert_eq!(state.borrow().trouble, None, "a start is a new attempt");
        bus.publish_app(Lifecycle::ServerReady {
            pid: 9,
            generation: Generation(3),
            old: None,
            swap: Duration::ZERO,
            since_change: None,
            port: Some(4123),
        });
        let exited = |restarts_in| Lifecycle::ServerExited {
            pid: 9,
            generation: Generation(3),
            ended: Ended::Signal("SIGKILL".into()),
            restarts_in,
            hint: None,
            port: Some(4123),
        };
        bus.publish_app(exited(Some(Duration::from_secs(1))));
        assert_eq!(state.borrow().trouble, None, "it restarts by itself");
        bus.publish_app(exited(None));
        assert_eq!(
            state.borrow().trouble,
            Some(Trouble::Exited {
                pid: 9,
                ended: Ended::Signal("SIGKILL".into()),
                serving: true,
                port: Some(4123),
            })
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_service_has_its_own_state_and_events_say_whose_they_are() {
        let (api, worker) = (ServiceName::new("api"), ServiceName::new("worker"));
        let mut bus = Bus::new(Vec::new());
        let mut events = bus.subscribe();
        let worker_state = bus.state(&worker);
        bus.publish(
            &api,
            Lifecycle::BuildStarted {
                command: "make".into(),
            },
        );
        assert_eq!(bus.state(&api).borrow().build, BuildState::Running);
        assert_eq!(worker_state.borrow().build, BuildState::Passed);
        let published = events.recv().await.unwrap();
        assert_eq!(published.service, api);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn remote_subscribers_hear_every_event_in_order() {
        let mut bus = Bus::new(Vec::new());
        let mut events = bus.subscribe();
        bus.publish_app(Lifecycle::BuildStarted {
            command: "make".into(),
        });
        bus.publish_app(Lifecycle::BuildSucceeded {
            elapsed: Duration::from_millis(5),
        });
        assert!(matches!(
            &events.recv().await.unwrap().event,
            Lifecycle::BuildStarted { .. }
        ));
        assert!(matches!(
            &events.recv().await.unwrap().event,
            Lifecycle::BuildSucceeded { .. }
        ));
    }
}
