//! The supervise stage: the verbs of running servers, each known by its generation. Prepares a
//! start before anything is touched (the program found, the notify socket made), starts it in
//! its own process group with the held listening sockets, checks its readiness, stops it (the
//! stop signal to the group, then waits until the whole group is gone, or kills it when told),
//! and reports from each server's own tasks, as [`ServerEvent`]s tagged with the service it
//! runs ([`ServerEvents`]), when it is ready, exits or is stopped. It decides nothing: when to stop, when to kill, what a failed build or an exit
//! means is the engine's policy. Only this module and `build` (for its own builds) send
//! signals.

mod listen;
mod ready;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use nix::sys::signal::Signal;
use tokio::sync::{oneshot, watch};

use crate::config::{Program, Readiness, RunConfig};
use crate::lifecycle::{Ended, Generation, Hint, ServiceName};
use crate::process::{self, Command, ProcessGroup, Stdio};
use listen::Listener;
use ready::{NotifyDir, NotifySocket};

/// How the server ended when nobody asked it to.
#[derive(Debug)]
pub struct ChildExit {
    pub pid: u32,
    pub status: Option<ExitStatus>,
    /// How long it ran.
    pub ran: Duration,
    /// What may explain the exit (see [`hint`]).
    pub hint: Option<Hint>,
    /// It failed, and the port it was given through PORT cannot be bound now: most likely
    /// what it failed on.
    pub port_taken: Option<u16>,
}

impl ChildExit {
    /// How it ended, as a value the status lines and the proxy's pages word.
    pub fn ended(&self) -> Ended {
        let Some(status) = self.status else {
            return Ended::Lost;
        };
        match (status.code(), status.signal()) {
            (Some(code), _) => Ended::Code(code),
            (None, Some(signal)) => Ended::Signal(
                Signal::try_from(signal)
                    .map_or_else(|_| signal.to_string(), |s| s.as_str().to_owned()),
            ),
            (None, None) => Ended::Unknown,
        }
    }
}

/// What a server did, reported from its own tasks to the engine's loop.
#[derive(Debug)]
pub enum ServerEvent {
    Ready(Generation),
    /// Given its own port through PORT, it listens on the app's usual one instead.
    IgnoresPort(Generation, u16),
    /// Its process group listens on these TCP ports (in order), none of them the one its
    /// readiness check waits on (the third). With a port reload chose ([`PortTurn::app`]
    /// `None`) a [`ServerEvent::Ready`] follows: it listens, there.
    ListensElsewhere(Generation, Vec<u16>, u16),
    NotReady(Generation, String),
    /// It exited while nobody was stopping it.
    Exited(Generation, ChildExit),
    /// A stop is over: the whole group is gone.
    Stopped(Generation),
}

/// Where a supervisor's servers report: each [`ServerEvent`] goes out with the name of the
/// service they run, to wherever the engine listens (its one input), so that supervise knows
/// nothing of the engine.
#[derive(Clone)]
pub struct ServerEvents {
    service: ServiceName,
    send: Arc<dyn Fn(ServiceName, ServerEvent) + Send + Sync>,
}

impl ServerEvents {
    pub fn new(
        service: ServiceName,
        send: impl Fn(ServiceName, ServerEvent) + Send + Sync + 'static,
    ) -> ServerEvents {
        ServerEvents {
            service,
            send: Arc::new(send),
        }
    }

    fn send(&self, event: ServerEvent) {
        (self.send)(self.service.clone(), event);
    }
}

/// The port a new server is given through PORT, and the app's usual one: a server that binds
/// the usual port anyway ignores PORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortTurn {
    pub given: u16,
    /// `None`: no app port was named, reload chose `given`, and a server that listens on
    /// another port is followed there.
    pub app: Option<u16>,
    /// Where the last server that listened elsewhere was followed to: a server seen listening
    /// there is taken at once, without waiting for its ports to settle.
    pub followed: Option<u16>,
}

/// Whether the server may read reload's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    Inherit,
    /// A server in a background process group that reads the terminal would be stopped by
    /// SIGTTIN: with a terminal, the keyboard belongs to reload.
    Null,
}

#[derive(Debug)]
struct RunningChild {
    pid: u32,
    group: ProcessGroup,
    exit: watch::Receiver<Reaped>,
    /// Lives as long as the server, so it can report again after a reload of its own.
    notify: Option<Arc<NotifySocket>>,
    /// The readiness check, while it runs.
    probe: Option<tokio::task::JoinHandle<()>>,
    /// Told when the server is being stopped, so its exit is not reported as its own.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The port it was given through PORT, with the app's usual one.
    port: Option<PortTurn>,
}

/// What a server's reaper task knows.
#[derive(Debug, Clone, Copy)]
enum Reaped {
    NotYet,
    /// `None`: how it ended could not be told.
    Ended(Option<ExitStatus>),
}

impl RunningChild {
    /// Wait until the server is reaped; how it ended. Cancel-safe.
    async fn ended(exit: &mut watch::Receiver<Reaped>) -> Option<ExitStatus> {
        match exit.wait_for(|r| matches!(r, Reaped::Ended(_))).await {
            Ok(reaped) => match *reaped {
                Reaped::Ended(status) => status,
                Reaped::NotYet => None,
            },
            // The reaper is gone without an answer: nothing more can be known.
            Err(_) => None,
        }
    }
}

/// A start, ready to spawn.
struct Launch {
    command: Command,
    program: PathBuf,
    /// The listening sockets, for the shim to place at 3, 4, ...
    fds: Vec<std::os::fd::RawFd>,
    notify: Option<NotifySocket>,
    port: Option<PortTurn>,
}

/// A program resolved to a path, checked before any server is touched.
struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
}

/// The verbs of running a server: prepare, start, check readiness, stop, kill, reap. Which to
/// use when is the engine's business; servers are known by their [`Generation`].
pub struct Supervisor {
    config: RunConfig,
    root: PathBuf,
    stdin: Stdin,
    listeners: Vec<Listener>,
    children: BTreeMap<Generation, RunningChild>,
    prepared: Option<(Generation, Launch)>,
    /// The servers being stopped: a send kills one now.
    stopping: BTreeMap<Generation, oneshot::Sender<()>>,
    events: ServerEvents,
    /// What the last successful build produced (for `Program::CargoArtifact`).
    last_executable: Option<PathBuf>,
    /// Where the notify sockets are made, once the first is needed.
    notify_dir: Option<NotifyDir>,
}

impl Supervisor {
    /// Binds the listening sockets now: a port in use is a startup error. What the servers do
    /// is sent on `events`.
    pub fn new(
        config: RunConfig,
        root: PathBuf,
        stdin: Stdin,
        events: ServerEvents,
    ) -> Result<Self> {
        let listeners = listen::bind_all(&config.listeners)?;
        Ok(Supervisor {
            config,
            root,
            stdin,
            listeners,
            children: BTreeMap::new(),
            prepared: None,
            stopping: BTreeMap::new(),
            events,
            last_executable: None,
            notify_dir: None,
        })
    }

    /// Start the next servers as `config` says (the configuration was read again). The held
    /// sockets stay those bound at start: they cannot change while servers use them.
    pub fn reconfigure(&mut self, config: RunConfig) {
        self.config = config;
    }

    fn notify_dir(&mut self) -> Result<&NotifyDir> {
        if self.notify_dir.is_none() {
            self.notify_dir = Some(NotifyDir::create()?);
        }
        Ok(self.notify_dir.as_ref().expect("just created"))
    }

    /// "listening on 127.0.0.1:3000, unix:/run/app.sock", or nothing without sockets.
    pub fn describe_listeners(&self) -> Option<String> {
        (!self.listeners.is_empty()).then(|| {
            let addresses: Vec<String> = self
                .listeners
                .iter()
                .map(|l| l.spec.address.to_string())
                .collect();
            format!("listening on {}", addresses.join(", "))
        })
    }

    pub fn is_listening(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// The env file's variables the server does not get as written, because reload sets them
    /// itself: `(name, the file's value, the value given)`. `[run] env` (where the proxy puts
    /// its app port as PORT) and a port turn of `--overlap` behind the proxy win over the file.
    pub fn overridden<'a>(
        &self,
        file: &'a [(String, String)],
        port: Option<PortTurn>,
    ) -> Vec<(&'a str, &'a str, String)> {
        file.iter()
            .filter_map(|(name, written)| {
                let given = match (name.as_str(), port) {
                    ("PORT", Some(turn)) => turn.given.to_string(),
                    _ => self.config.env.get(name)?.clone(),
                };
                (given != *written).then_some((name.as_str(), written.as_str(), given))
            })
            .collect()
    }

    /// Make everything generation `generation` needs to start (the program found, the notify
    /// socket, the command), before the serving server is touched. `executable` is what the
    /// build produced, for `Program::CargoArtifact` (a restart without a build runs the last
    /// one's); `env` is the env file, read by the caller at this start.
    pub fn prepare(
        &mut self,
        generation: Generation,
        executable: Option<&Path>,
        env: &[(String, String)],
        port: Option<PortTurn>,
    ) -> Result<()> {
        if let Some(executable) = executable {
            self.last_executable = Some(executable.to_owned());
        }
        let invocation = self.invocation(self.last_executable.clone().as_deref())?;
        let notify = match self.config.readiness {
            Readiness::Notify => Some(NotifySocket::create(self.notify_dir()?)?),
            _ => None,
        };
        let fds: Vec<_> = self.listeners.iter().map(Listener::raw_fd).collect();
        let mut command = if self.listeners.is_empty() {
            Command::new(&invocation.program)
        } else {
            process::shim_command(&invocation.program, &fds)
                .map_err(|err| anyhow!("cannot start `{}`: {err}", invocation.program.display()))?
        };
        command.args(&invocation.args).current_dir(&self.root);
        process::clear_protocol_env(&mut command);
        command
            .env("RELOAD", "1")
            .envs(env.iter().cloned())
            .envs(&self.config.env);
        if let Some(turn) = port {
            command.env("PORT", turn.given.to_string());
        }
        if !self.listeners.is_empty() {
            let names: Vec<&str> = self
                .listeners
                .iter()
                .map(|l| l.spec.name.as_str())
                .collect();
            command.env("LISTEN_FDS", self.listeners.len().to_string());
            command.env("LISTEN_FDNAMES", names.join(":"));
        }
        if let Some(socket) = &notify {
            command.env("NOTIFY_SOCKET", socket.path());
        }
        if self.stdin == Stdin::Null {
            command.stdin(Stdio::null());
        }
        let launch = Launch {
            command,
            program: invocation.program,
            fds,
            notify,
            port,
        };
        self.prepared = Some((generation, launch));
        Ok(())
    }

    /// The port the prepared `generation` is to be given through PORT, if it cannot be bound
    /// now: it would fail to start on it.
    pub fn prepared_port_taken(&self, generation: Generation) -> Option<u16> {
        let (prepared, launch) = self.prepared.as_ref()?;
        let given = launch.port?.given;
        (*prepared == generation && !process::free_ports::is_free(given)).then_some(given)
    }

    /// Start the prepared generation in its own process group. Returns its pid.
    pub fn start(&mut self, generation: Generation) -> Result<u32> {
        let Some((prepared, launch)) = self.prepared.take() else {
            return Err(anyhow!("internal: nothing was prepared to start"));
        };
        if prepared != generation {
            return Err(anyhow!(
                "internal: generation {} was prepared, not {}",
                prepared.0,
                generation.0
            ));
        }
        let Launch {
            mut command,
            program,
            fds,
            notify,
            port,
        } = launch;
        let (mut child, group) = process::spawn_group(&mut command, process::Origin::App, &fds)
            .map_err(|err| {
                anyhow!(
                    "cannot start `{}`: {}",
                    program.display(),
                    process::explain_exec_error(&program, &err)
                )
            })?;
        let pid = child.id().unwrap_or_default();
        tracing::debug!(pid, program = %program.display(), "server started");
        let started = Instant::now();
        let (tx, exit) = watch::channel(Reaped::NotYet);
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let events = self.events.clone();
        let listening = self.is_listening();
        let stopped = stopping.clone();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            tx.send_replace(Reaped::Ended(status));
            if !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let ran = started.elapsed();
                let failed = status.is_none_or(|status| !status.success());
                let exit = ChildExit {
                    pid,
                    status,
                    ran,
                    hint: hint(status, ran, listening),
                    port_taken: port
                        .map(|turn| turn.given)
                        .filter(|given| failed && !process::free_ports::is_free(*given)),
                };
                events.send(ServerEvent::Exited(generation, exit));
            }
        });
        self.children.insert(
            generation,
            RunningChild {
                pid,
                group,
                exit,
                notify: notify.map(Arc::new),
                probe: None,
                stopping,
                port,
            },
        );
        Ok(pid)
    }

    /// Check whether `generation` is ready, as the readiness mode says. `true`: it is ready
    /// now (readiness "when spawned"); otherwise a [`ServerEvent::Ready`] or `NotReady` follows.
    pub fn await_ready(&mut self, generation: Generation) -> bool {
        let Some(child) = self.children.get_mut(&generation) else {
            return false;
        };
        let readiness = self.config.readiness.clone();
        if readiness == Readiness::Spawned {
            return true;
        }
        let pgid = child.group.id();
        let notify = child.notify.clone();
        let port = child.port;
        let events = self.events.clone();
        child.probe = Some(tokio::spawn(async move {
            let ready = match (&readiness, notify) {
                (Readiness::Spawned, _) => Ok(()),
                (Readiness::Notify, Some(socket)) => {
                    socket.ready(pgid).await.map_err(|e| e.to_string())
                }
                (Readiness::Notify, None) => Err("has no notify socket".to_owned()),
                (Readiness::Http(probe), _) => {
                    ready::http(probe).await;
                    Ok(())
                }
                (Readiness::TcpConnect(_) | Readiness::GivenPort, _) if port.is_some() => {
                    let turn = port.unwrap_or(PortTurn {
                        given: 0,
                        app: None,
                        followed: None,
                    });
                    own_port(generation, turn, pgid, &events).await;
                    Ok(())
                }
                (Readiness::TcpConnect(authority), _) => {
                    let expected = ready::local_port(authority);
                    let report = async {
                        if let Some(expected) = expected {
                            let ports = ready::elsewhere(expected, pgid, None).await;
                            events.send(ServerEvent::ListensElsewhere(generation, ports, expected));
                        }
                        std::future::pending::<()>().await;
                    };
                    tokio::select! {
                        () = ready::tcp(authority) => {}
                        () = report => {}
                    }
                    Ok(())
                }
                (Readiness::GivenPort, _) => Err("was given no port".to_owned()),
            };
            events.send(match ready {
                Ok(()) => ServerEvent::Ready(generation),
                Err(why) => ServerEvent::NotReady(generation, why),
            });
        }));
        false
    }

    /// Stop `generation`: the stop signal to its group, then wait (in a task of its own) until
    /// the whole group has exited (not just its leader: under `sh -c`, the shell dies at once
    /// and the real server drains after it), or until [`Supervisor::kill`]; reap; kill what left
    /// the group; then [`ServerEvent::Stopped`].
    pub fn stop(&mut self, generation: Generation) {
        let Some(mut child) = self.children.remove(&generation) else {
            return;
        };
        if let Some(probe) = child.probe.take() {
            probe.abort();
        }
        child
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(pid = child.pid, signal = %self.config.stop_signal, "stopping server");
        child.group.signal(self.config.stop_signal);
        let (kill, killed) = oneshot::channel::<()>();
        self.stopping.insert(generation, kill);
        let events = self.events.clone();
        tokio::spawn(async move {
            let drained = async {
                RunningChild::ended(&mut child.exit).await;
                child.group.emptied().await;
            };
            tokio::select! {
                () = drained => {}
                Ok(()) = killed => {
                    child.group.signal(Signal::SIGKILL);
                    let _ = tokio::time::timeout(
                        process::KILL_GRACE,
                        RunningChild::ended(&mut child.exit),
                    )
                    .await;
                }
            }
            process::end_group(child.group).await;
            process::sweep_and_report(process::Sweep::Ended);
            events.send(ServerEvent::Stopped(generation));
        });
    }

    /// The pid of `generation` and the TCP ports its process group listens on (from /proc).
    pub fn listening_ports(
        &self,
        generation: Generation,
    ) -> Option<(u32, std::collections::BTreeSet<u16>)> {
        let child = self.children.get(&generation)?;
        Some((child.pid, process::ports::listening_ports(child.group.id())))
    }

    /// SIGKILL a server being stopped, now.
    pub fn kill(&mut self, generation: Generation) {
        if let Some(kill) = self.stopping.remove(&generation) {
            let _ = kill.send(());
        }
    }

    /// Kill a server that will not be used and wait until it is reaped.
    pub async fn discard(&mut self, generation: Generation) {
        let Some(mut child) = self.children.remove(&generation) else {
            return;
        };
        child
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(probe) = child.probe.take() {
            probe.abort();
        }
        child.group.signal(Signal::SIGKILL);
        let _ =
            tokio::time::timeout(process::KILL_GRACE, RunningChild::ended(&mut child.exit)).await;
        process::end_group(child.group).await;
        process::sweep_and_report(process::Sweep::Ended);
    }

    /// After a server exited by itself: kill what it left in its group, then what left the
    /// group.
    pub async fn bury(&mut self, generation: Generation) {
        if let Some(child) = self.children.remove(&generation) {
            process::end_group(child.group).await;
        }
        process::sweep_and_report(process::Sweep::Ended);
    }

    fn invocation(&self, executable: Option<&Path>) -> Result<Invocation> {
        let search = |program: &OsStr| find_program(program, &self.root, &self.config.env);
        let (program, args) = match &self.config.program {
            Program::Argv(argv) => (
                search(argv[0].as_ref())?,
                argv[1..].iter().map(OsString::from).collect(),
            ),
            Program::Shell(line) => (search("sh".as_ref())?, vec!["-c".into(), line.into()]),
            Program::CargoArtifact => {
                let path = executable.ok_or_else(|| {
                    anyhow!(
                        "cargo reported no executable for this build; pass the server after `--`"
                    )
                })?;
                (search(path.as_os_str())?, Vec::new())
            }
        };
        Ok(Invocation { program, args })
    }
}

/// Readiness for a server given its own port through PORT: it accepts there, or its group
/// listens elsewhere. On the app's usual port, it ignores PORT ([`ServerEvent::IgnoresPort`],
/// and it is ready). On another: with no usual port (reload chose the port) it is followed
/// there, and ready; with one, the user is told at once and the wait goes on.
async fn own_port(generation: Generation, turn: PortTurn, pgid: i32, events: &ServerEvents) {
    let ports = match ready::own_port(turn, pgid).await {
        ready::Listens::Elsewhere(ports) if !ports.contains(&turn.given) => ports,
        // Where it was told, whatever else it listens on.
        ready::Listens::Given | ready::Listens::Elsewhere(_) => return,
    };
    match turn.app {
        Some(app) if ports.contains(&app) => {
            events.send(ServerEvent::IgnoresPort(generation, app));
        }
        Some(_) => {
            events.send(ServerEvent::ListensElsewhere(generation, ports, turn.given));
            ready::tcp(&format!("127.0.0.1:{}", turn.given)).await;
        }
        None => {
            events.send(ServerEvent::ListensElsewhere(generation, ports, turn.given));
        }
    }
}

/// Why a server that just failed may have failed: with `--listen`, one that binds the port
/// itself instead of taking fd 3 dies at once with "address already in use" (and clients of the
/// held socket wait for nobody). `status`: how it ended, `None` if it has not (yet). The words
/// are the status lines'.
pub fn hint(status: Option<ExitStatus>, ran: Duration, listening: bool) -> Option<Hint> {
    let failed = status.is_none_or(|status| !status.success());
    (failed && listening && ran < EARLY_EXIT).then_some(Hint::BindsHeldPort)
}

/// A server that fails this soon after starting may be explained by [`hint`].
const EARLY_EXIT: Duration = Duration::from_secs(10);

/// Resolve a program the way exec would ([`process::find_program`]), so that "no such file" is
/// our clear message and not a failed spawn after the old server was already stopped.
/// `env` is the server's extra environment: a PATH there (node_modules/.bin first) is searched.
fn find_program(
    program: &(impl AsRef<OsStr> + ?Sized),
    root: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<PathBuf> {
    let path = env.get("PATH").map(OsStr::new);
    process::find_program(program.as_ref(), root, path).map_err(|err| match err {
        process::ProgramNotFound::NotExecutable(program) => anyhow!(
            "the app `{}` does not exist or is not executable (in {})\n  help: check that \
                 the build writes it there, or fix the program after `--` / [run] cmd",
            program.display(),
            root.display()
        ),
        process::ProgramNotFound::NotOnPath(program) => {
            anyhow!("the app `{}` is not on PATH", Path::new(&program).display())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_relative_to_the_root() {
        let env = std::collections::BTreeMap::new();
        assert!(find_program("sh", Path::new("/"), &env).is_ok());
        assert!(find_program("bin/sh", Path::new("/"), &env).is_ok());
        let err = find_program("./tmp/main", Path::new("/nonexistent"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("./tmp/main") && err.contains("does not exist"),
            "{err}"
        );
        assert!(find_program("no-such-program-here", Path::new("/"), &env).is_err());
    }
}
