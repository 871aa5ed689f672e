//! The dev loop: one `select!` that turns whatever happens (a change, a key, a signal, a build
//! ending, a server ready, exiting or stopped, a deadline) into an [`Event`] for the
//! [`machine`], and carries out the [`Effect`]s it returns through the stages that own them.
//! What to do lives in `machine`; this file only does it.
//!
//! A service is one [`Unit`]: its machine (phase and policy) and its stages (the build and the
//! supervisor), together. Several services will be a map of units by name, sharing the one
//! loop and the one [`Bus`], with each event from a stage tagged with the unit it came from.

pub mod machine;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::Exit;
use crate::build::{BuildOutcome, BuildResult, RunningBuild};
use crate::config::{BuildCommand, CleanPath, Config};
use crate::lifecycle::Bus;
use crate::process;
use crate::status;
use crate::supervise::{ServerEvent, Stdin, Supervisor};
use crate::terminal;
use crate::watch;
pub use machine::Shutdown;
use machine::{Effect, Event, Policy, Service};

/// How long a post command may run while reload waits to exit.
const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// One service: what it decides and what carries that out.
struct Unit {
    machine: Service,
    stages: Stages,
}

/// What carries the machine's effects out for one service.
struct Stages {
    root: PathBuf,
    build_command: Option<BuildCommand>,
    build: Option<RunningBuild>,
    supervisor: Option<Supervisor>,
    /// Read again at every start.
    env_file: Option<PathBuf>,
    /// The env file's `NAME=value`s already warned about because reload sets NAME otherwise:
    /// said once, not at every start.
    env_overridden: BTreeSet<String>,
}

/// Run the dev loop until a shutdown. Returns the exit code to use.
pub async fn run(config: Config) -> Result<Exit> {
    let mut shutdowns = listen_for_shutdown()?;
    let mut bus = Bus::new(status::subscribers());
    let run = config.run;
    let mut policy = Policy::of(config.build.as_ref(), run.as_ref(), config.output.clear);
    policy.ports = turns(config.proxy.as_ref(), &mut policy.order)?;
    // Bound before anything starts: a proxy port in use stops reload with nothing to clean up.
    // It serves until this function returns.
    let _proxy = config
        .proxy
        .as_ref()
        .map(|proxy| {
            let readiness = run.as_ref().map(|run| &run.readiness);
            let chosen = policy.ports.map(|turns| turns.ports[0]);
            crate::proxy::start(proxy, readiness, chosen, &bus)
        })
        .transpose()?;
    let (server_events, mut from_servers) = mpsc::unbounded_channel();
    let stdin = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Stdin::Null
    } else {
        Stdin::Inherit
    };
    let env_file = run.as_ref().and_then(|run| run.env_file.clone());
    let supervisor = run
        .map(|run| Supervisor::new(run, config.root.clone(), stdin, server_events))
        .transpose()?;
    let (mut changes, watched) = watch::start(config.watch)?;
    for warning in &config.warnings {
        status::warning(warning);
    }
    status::emit(&status::Note::Watching {
        origin: &config.origin,
        directories: watched,
        listening: supervisor.as_ref().and_then(Supervisor::describe_listeners),
    });
    if let Some(proxy) = &config.proxy {
        status::info(&crate::proxy::describe(proxy, policy.ports));
    }
    let keyboard = terminal::start();
    let (restore_terminal, mut keys) = match keyboard {
        Some((guard, keys)) => {
            status::info(terminal::HELP);
            (Some(guard), keys)
        }
        None => (None, mpsc::unbounded_channel().1),
    };
    policy.keys = restore_terminal.is_some();
    let mut unit = Unit {
        machine: Service::new(policy),
        stages: Stages {
            root: config.root.clone(),
            build_command: config.build,
            build: None,
            supervisor,
            env_file,
            env_overridden: BTreeSet::new(),
        },
    };
    let mut effects = unit.machine.start(Instant::now());
    loop {
        if let Some(exit) = unit.carry_out(effects, &mut bus).await {
            finish(
                &config.root,
                &config.post,
                &config.clean_on_exit,
                &mut shutdowns,
            )
            .await;
            return Ok(exit);
        }
        let deadline = unit.machine.next_deadline();
        let event = tokio::select! {
            Some(shutdown) = shutdowns.recv() => Event::Shutdown(shutdown),
            changed = changes.recv() => match changed {
                Some(changed) => Event::Changed {
                    summary: changed.summary(&config.root),
                    paths: changed.paths,
                    first_seen: changed.first_seen,
                },
                None => return Err(anyhow!("the file watcher stopped unexpectedly")),
            },
            Some(key) = keys.recv() => Event::Key(key),
            outcome = build_finished(&mut unit.stages.build) => {
                unit.stages.build = None;
                Event::BuildFinished {
                    result: outcome.result,
                    elapsed: outcome.elapsed,
                    output: outcome.output,
                }
            }
            Some(event) = from_servers.recv() => match event {
                ServerEvent::Ready(generation) => Event::Ready(generation),
                ServerEvent::IgnoresPort(generation, listens) => {
                    Event::IgnoresPort { generation, listens }
                }
                ServerEvent::ListensElsewhere(generation, ports, expected) => {
                    Event::ListensElsewhere { generation, ports, expected }
                }
                ServerEvent::NotReady(generation, why) => Event::NotReady { generation, why },
                ServerEvent::Exited(generation, exit) => Event::Exited { generation, exit },
                ServerEvent::Stopped(generation) => Event::Stopped(generation),
            },
            () = sleep_until(deadline) => Event::Tick,
        };
        effects = unit.machine.handle(event, Instant::now());
    }
}

impl Unit {
    /// Carry out `effects` in order. What a stage answers at once becomes the next event for
    /// the machine, whose effects follow. Returns the exit code once the machine says exit.
    async fn carry_out(&mut self, effects: Vec<Effect>, bus: &mut Bus) -> Option<Exit> {
        let mut pending = VecDeque::from(effects);
        while let Some(effect) = pending.pop_front() {
            match effect {
                Effect::Exit(exit) => return Some(exit),
                Effect::Publish(event) => bus.publish(event),
                effect => {
                    if let Some(event) = self.stages.perform(effect).await {
                        pending.extend(self.machine.handle(event, Instant::now()));
                    }
                }
            }
        }
        None
    }
}

impl Stages {
    /// Carry out one effect. Waits only for what is bounded (a SIGKILL and its reaping); every
    /// longer wait is the machine's phase, ended by an event. Returns what the stage answered
    /// at once, if anything.
    async fn perform(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Info(text) => status::info(&text),
            Effect::Error(text) => status::error(&text),
            Effect::ClearScreen => status::clear_screen(),
            Effect::StartBuild => {
                let command = self.build_command.as_ref()?;
                match RunningBuild::start(command, &self.root, process::Origin::Build) {
                    Ok(build) => self.build = Some(build),
                    Err(err) => return Some(Event::BuildNotStarted(format!("{err:#}"))),
                }
            }
            Effect::CancelBuild => {
                if let Some(build) = self.build.take() {
                    build.cancel().await;
                }
            }
            Effect::Prepare {
                generation,
                executable,
                port,
            } => {
                let result = self.prepare(generation, executable.as_deref(), port);
                return Some(Event::Prepared {
                    generation,
                    result: result.map_err(|err| format!("{err:#}")),
                });
            }
            Effect::Spawn(generation) => {
                let supervisor = self.supervisor.as_mut()?;
                if let Some(port) = supervisor.prepared_port_taken(generation) {
                    return Some(Event::PortTaken { generation, port });
                }
                let result = supervisor.start(generation);
                return Some(Event::Spawned {
                    generation,
                    result: result.map_err(|err| format!("{err:#}")),
                });
            }
            Effect::ChoosePort { generation, avoid } => {
                return Some(Event::PortChosen {
                    generation,
                    port: process::free_ports::choose(&avoid),
                });
            }
            Effect::AwaitReady(generation) => {
                if self.supervisor.as_mut()?.await_ready(generation) {
                    return Some(Event::Ready(generation));
                }
            }
            Effect::Stop(generation) => self.supervisor.as_mut()?.stop(generation),
            Effect::Kill(generation) => self.supervisor.as_mut()?.kill(generation),
            Effect::Discard(generation) => self.supervisor.as_mut()?.discard(generation).await,
            Effect::ExplainPorts {
                generation,
                expected,
            } => {
                if let Some((pid, ports)) = self.supervisor.as_ref()?.listening_ports(generation) {
                    status::info(&explain_ports(pid, &ports, &expected));
                }
            }
            Effect::Bury(generation) => self.supervisor.as_mut()?.bury(generation).await,
            Effect::Exit(_) | Effect::Publish(_) => unreachable!("carried out by Unit::carry_out"),
        }
        None
    }

    /// The env file is read at each start, so an edit to it takes effect at the next one.
    fn prepare(
        &mut self,
        generation: crate::lifecycle::Generation,
        executable: Option<&Path>,
        port: Option<crate::supervise::PortTurn>,
    ) -> Result<()> {
        let env = match &self.env_file {
            Some(path) => crate::config::read_env_file(path)?,
            None => Vec::new(),
        };
        let supervisor = self
            .supervisor
            .as_mut()
            .ok_or_else(|| anyhow!("internal: no server to prepare"))?;
        if let Some(path) = &self.env_file {
            // A PORT=3000 in .env beside --app-port 8080 would otherwise vanish silently.
            for (name, written, given) in supervisor.overridden(&env, port) {
                if self.env_overridden.insert(format!("{name}={written}")) {
                    status::warning(&format!(
                        "{}: the server gets {name}={given}, not {name}={written} as written \
                         there: reload's own setting ([run] env, or the port the proxy gives \
                         the app as PORT) wins over the env file",
                        path.display()
                    ));
                }
            }
        }
        supervisor.prepare(generation, executable, &env, port)
    }
}

/// After the server is stopped for good: the user's post commands, then clean-up. Another
/// Ctrl-C (or SIGTERM) meanwhile kills the post command that runs and skips the rest.
async fn finish(
    root: &Path,
    post: &[String],
    clean_on_exit: &[CleanPath],
    shutdowns: &mut mpsc::UnboundedReceiver<Shutdown>,
) {
    // A post command runs like a build: its own group, no sockets, output passed through.
    for command in post {
        let step = BuildCommand::Shell(command.clone());
        let origin = process::Origin::Post(command.clone());
        let mut run = match RunningBuild::start(&step, root, origin) {
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
    for path in clean_on_exit {
        if let Err(err) = path.remove() {
            status::error(&format!("{err:#}"));
        }
    }
}

async fn build_finished(build: &mut Option<RunningBuild>) -> BuildOutcome {
    match build {
        Some(build) => build.finished().await,
        None => std::future::pending().await,
    }
}

/// The ports servers are given through PORT behind the proxy, chosen free now and below the
/// kernel's ephemeral range, where no outgoing connection can leave them in TIME_WAIT. With
/// overlap and an app port, the app port and a second one to take turns on (without a second,
/// `order` falls back to stop-then-start, with a warning). With no app port named, one for
/// the server to take (twice), or two to take turns on with overlap; none free is an error,
/// since the server would have no port to be found on.
fn turns(
    proxy: Option<&crate::config::ProxyConfig>,
    order: &mut crate::config::RestartOrder,
) -> Result<Option<machine::Turns>> {
    use crate::config::{RestartOrder, Upstream};
    let Some(proxy) = proxy else {
        return Ok(None);
    };
    let overlap = *order == RestartOrder::Overlap;
    match proxy.upstream {
        Upstream::AppPort(app) if overlap => {
            let Some(second) = process::free_ports::choose(&[app, proxy.listen.port()]) else {
                *order = RestartOrder::StopThenStart;
                status::warning(
                    "--overlap behind the proxy needs a second port for the new server, and \
                     none is free below the kernel's ephemeral range \
                     (/proc/sys/net/ipv4/ip_local_port_range): restarts stop the old server \
                     before starting the new one",
                );
                return Ok(None);
            };
            Ok(Some(machine::Turns {
                app: Some(app),
                ports: [app, second],
            }))
        }
        Upstream::AppPort(_) | Upstream::Held(_) => Ok(None),
        Upstream::Chosen => {
            let proxy_port = proxy.listen.port();
            let no_port = || {
                anyhow!(
                    "no port is free below the kernel's ephemeral range \
                     (/proc/sys/net/ipv4/ip_local_port_range) to give the app as PORT\n  help: \
                     name the app's port with --app-port PORT (or [proxy] app_port)"
                )
            };
            let first = process::free_ports::choose(&[proxy_port]).ok_or_else(no_port)?;
            let second = if overlap {
                process::free_ports::choose(&[proxy_port, first]).ok_or_else(no_port)?
            } else {
                first
            };
            Ok(Some(machine::Turns {
                app: None,
                ports: [first, second],
            }))
        }
    }
}

/// What a server that never accepted on `expected` listens on instead, and what to do.
fn explain_ports(pid: u32, ports: &std::collections::BTreeSet<u16>, expected: &str) -> String {
    if ports.is_empty() {
        return format!(
            "app (pid {pid}) listens on no TCP port at all, not on {expected}: does it start a \
             server, and does it read PORT?"
        );
    }
    let list: Vec<String> = ports.iter().map(|p| format!(":{p}")).collect();
    format!(
        "app (pid {pid}) listens on {}, not on {expected}: if that is its port, point reload \
         at it (--app-port, or --ready tcp:PORT), or make the app listen on PORT",
        list.join(", ")
    )
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// SIGINT, SIGTERM and SIGHUP become [`Shutdown`] events; what a second one means is the
/// machine's business.
fn listen_for_shutdown() -> Result<mpsc::UnboundedReceiver<Shutdown>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let shutdown = tokio::select! {
                _ = interrupt.recv() => Shutdown::Interrupt,
                _ = terminate.recv() => Shutdown::Terminate,
                _ = hangup.recv() => Shutdown::Hangup,
            };
            if tx.send(shutdown).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
