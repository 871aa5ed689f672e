//! The dev loop: one input, one `select!`. Every stage reports on the one input ([`Report`]),
//! tagged with the service it belongs to (a build's end, a server ready, exiting or stopped),
//! beside what is reload's own (the watcher's changes, keys, signals); the loop turns each into
//! [`Input`]s for the [`Orchestrator`], which hands them to the services' machines, and carries
//! out the [`Action`]s it returns through the stages that own them. What to do lives in
//! `orchestrator` (what is global) and `machine` (each service's policy); this file only does
//! it.
//!
//! Services live in maps by [`ServiceName`]: each one's machine in the orchestrator, its
//! stages in a [`Unit`] here. Today the configuration describes one service, named `app`.

mod following;
pub mod machine;
pub mod orchestrator;
mod unit;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::Exit;
use crate::build::{BuildOutcome, BuildResult, RunningBuild};
use crate::config::{BuildCommand, CleanPath, Config};
use crate::lifecycle::{Bus, Notice, ServiceName};
use crate::process;
use crate::status::{self, PostCommand};
use crate::supervise::{ServerEvent, Supervisor};
use crate::terminal::{self, Key};
use crate::watch;
use following::{Changed, Following, Services};
use machine::{Effect, Event, Policy, Service};
pub use orchestrator::Shutdown;
use orchestrator::{Action, Input, Orchestrator};
use unit::Unit;

/// How long a post command may run while reload waits to exit.
const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the loop hears, on its one input.
#[derive(Debug)]
enum Report {
    /// A burst of changes from the watch stage: the configuration is read again first when it
    /// touches a file that decides it, then it is routed to the services that watch it.
    Changes(watch::ChangeSet),
    WatcherStopped,
    Key(Key),
    Shutdown(Shutdown),
    /// Build number `build` of `service` ended.
    Built {
        service: ServiceName,
        build: u64,
        outcome: BuildOutcome,
    },
    /// One of `service`'s servers reported.
    Server(ServiceName, ServerEvent),
}

type Reports = mpsc::UnboundedSender<Report>;

/// The loop's state: every service's machine (in the orchestrator) and stages, the bus, and the
/// configuration in force.
struct Engine<R> {
    orchestrator: Orchestrator,
    units: BTreeMap<ServiceName, Unit>,
    bus: Bus,
    following: Following<R>,
}

/// Run the dev loop until a shutdown. Returns the exit code to use. `read_again` resolves the
/// configuration anew, as at start, when a file that decides it changes.
pub async fn run(config: Config, read_again: impl Fn() -> Result<Config>) -> Result<Exit> {
    let (reports, mut input) = mpsc::unbounded_channel();
    listen_for_shutdown(&reports)?;
    let mut bus = Bus::new(status::subscribers());
    let mut policies = policies(&config)?;
    // Bound before anything starts: a proxy port in use stops reload with nothing to clean up.
    // It serves until this function returns.
    let _proxy = config
        .proxy
        .as_ref()
        .map(|proxy| {
            let name = ServiceName::new(&proxy.service);
            let service = &config.services[proxy.service.as_str()];
            let readiness = service.run.as_ref().map(|run| &run.readiness);
            let chosen = policies[&name].ports.map(|turns| turns.ports[0]);
            let quiet = service.watch.debounce;
            crate::proxy::start(proxy, readiness, chosen, quiet, &name, &mut bus)
        })
        .transpose()?;
    let mut units = BTreeMap::new();
    for (name, service) in &config.services {
        let name = ServiceName::new(name);
        let unit = Unit::new(name.clone(), service, &config.root, &reports)?;
        units.insert(name, unit);
    }
    // One watcher for the project; today's one service's watch set is the project's.
    let watching = watch::start(config.app().watch.clone())?;
    forward_changes(watching.changes, reports.clone());
    announce(&config, watching.directories, &units, &policies);
    // Restores the terminal's settings when this function returns.
    let keyboard = read_keys(&reports);
    for policy in policies.values_mut() {
        policy.keys = keyboard.is_some();
    }
    let machines = policies
        .into_iter()
        .map(|(name, policy)| (name, Service::new(policy)))
        .collect();
    let mut engine = Engine {
        orchestrator: Orchestrator::new(machines),
        units,
        bus,
        following: Following {
            config,
            read_again,
            watch: watching.control,
            retry: None,
        },
    };
    let exit = engine.run(&mut input).await?;
    let config = &engine.following.config;
    for service in config.services.values() {
        finish(
            &config.root,
            &service.post,
            &service.clean_on_exit,
            &mut input,
        )
        .await;
    }
    Ok(exit)
}

/// Each service's policy, as its configuration says; the service behind the proxy also takes
/// its turns on the ports the proxy forwards to.
fn policies(config: &Config) -> Result<BTreeMap<ServiceName, Policy>> {
    let mut policies = BTreeMap::new();
    for (name, service) in &config.services {
        let mut policy = Policy::of(
            service.build.as_ref(),
            service.run.as_ref(),
            config.output.clear,
        );
        if let Some(proxy) = config.proxy.as_ref().filter(|p| p.service == *name) {
            policy.ports = turns(Some(proxy), &mut policy.order)?;
        }
        policies.insert(ServiceName::new(name), policy);
    }
    Ok(policies)
}

impl<R: Fn() -> Result<Config>> Engine<R> {
    /// Until every service has stopped: the exit code.
    async fn run(&mut self, input: &mut mpsc::UnboundedReceiver<Report>) -> Result<Exit> {
        let mut actions = self.orchestrator.start(Instant::now());
        loop {
            if let Some(exit) = self.carry_out(actions).await {
                return Ok(exit);
            }
            let deadline = self.orchestrator.next_deadline();
            let inputs = tokio::select! {
                report = input.recv() => match report {
                    Some(report) => self.take(report).await?,
                    // The units hold senders as long as the loop runs.
                    None => return Err(anyhow!("internal: the loop's input closed")),
                },
                () = sleep_until(deadline) => vec![Input::Tick],
            };
            actions = Vec::new();
            for input in inputs {
                actions.extend(self.orchestrator.handle(input, Instant::now()));
            }
        }
    }

    /// What a report means for the orchestrator.
    async fn take(&mut self, report: Report) -> Result<Vec<Input>> {
        Ok(match report {
            Report::Changes(changed) => {
                let mut services = Services {
                    orchestrator: &mut self.orchestrator,
                    units: &mut self.units,
                };
                match self.following.on_changes(changed, &mut services).await {
                    Some(changed) => self.route(&changed),
                    None => Vec::new(),
                }
            }
            Report::WatcherStopped => return Err(anyhow!("the file watcher stopped unexpectedly")),
            Report::Key(key) => vec![Input::Key(key)],
            Report::Shutdown(shutdown) => vec![Input::Shutdown(shutdown)],
            Report::Built {
                service,
                build,
                outcome,
            } => (self.units.get_mut(&service))
                .and_then(|unit| unit.built(build, outcome))
                .map(|event| Input::Service(service, event))
                .into_iter()
                .collect(),
            Report::Server(service, event) => vec![Input::Service(service, of_server(event))],
        })
    }

    /// A burst of changes for each service that watches it. Today every service shares the
    /// one watch set, so each hears every burst.
    fn route(&self, changed: &Changed) -> Vec<Input> {
        self.units
            .keys()
            .map(|service| {
                let event = Event::Changed {
                    paths: changed.paths.clone(),
                    summary: changed.summary.clone(),
                    first_seen: changed.first_seen,
                };
                Input::Service(service.clone(), event)
            })
            .collect()
    }

    /// Carry out `actions` in order. What a stage answers at once becomes the next input for
    /// the orchestrator, whose actions follow. Returns the exit code once it says exit.
    async fn carry_out(&mut self, actions: Vec<Action>) -> Option<Exit> {
        let mut pending = VecDeque::from(actions);
        while let Some(action) = pending.pop_front() {
            match action {
                Action::Exit(exit) => return Some(exit),
                Action::ClearScreen => status::clear_screen(),
                Action::Help => status::notice(&Notice::Help),
                Action::StoppingNow => status::notice(&Notice::StoppingNow),
                Action::Service(service, Effect::Publish(event)) => {
                    self.bus.publish(&service, event);
                }
                Action::Service(service, effect) => {
                    let Some(unit) = self.units.get_mut(&service) else {
                        continue;
                    };
                    if let Some(event) = unit.perform(effect).await {
                        let input = Input::Service(service, event);
                        pending.extend(self.orchestrator.handle(input, Instant::now()));
                    }
                }
            }
        }
        None
    }
}

/// The watch stage's change sets, onto the loop's input.
fn forward_changes(mut changes: tokio::sync::mpsc::Receiver<watch::ChangeSet>, reports: Reports) {
    tokio::spawn(async move {
        while let Some(changed) = changes.recv().await {
            if reports.send(Report::Changes(changed)).is_err() {
                return;
            }
        }
        let _ = reports.send(Report::WatcherStopped);
    });
}

/// On a terminal, its keys onto the loop's input; the returned guard restores the terminal's
/// settings when dropped.
fn read_keys(reports: &Reports) -> Option<terminal::Keyboard> {
    let (keyboard, mut keys) = terminal::start()?;
    status::info(terminal::HELP);
    let reports = reports.clone();
    tokio::spawn(async move {
        while let Some(key) = keys.recv().await {
            if reports.send(Report::Key(key)).is_err() {
                return;
            }
        }
    });
    Some(keyboard)
}

/// What a server's task reported, as the machine's event.
fn of_server(event: ServerEvent) -> Event {
    match event {
        ServerEvent::Ready(generation) => Event::Ready(generation),
        ServerEvent::IgnoresPort(generation, listens) => Event::IgnoresPort {
            generation,
            listens,
        },
        ServerEvent::ListensElsewhere(generation, ports, expected) => Event::ListensElsewhere {
            generation,
            ports,
            expected,
        },
        ServerEvent::NotReady(generation, why) => Event::NotReady { generation, why },
        ServerEvent::Exited(generation, exit) => Event::Exited { generation, exit },
        ServerEvent::Stopped(generation) => Event::Stopped(generation),
    }
}

/// The startup lines: the config's warnings, where it came from and what is watched, the proxy.
fn announce(
    config: &Config,
    watched: usize,
    units: &BTreeMap<ServiceName, Unit>,
    policies: &BTreeMap<ServiceName, Policy>,
) {
    for warning in &config.warnings {
        status::warning(warning);
    }
    status::emit(&status::Note::Watching {
        origin: &config.origin,
        directories: watched,
        listening: units
            .values()
            .find_map(|unit| unit.supervisor().and_then(Supervisor::describe_listeners)),
    });
    if let Some(proxy) = &config.proxy {
        let ports = policies
            .get(&ServiceName::new(&proxy.service))
            .and_then(|policy| policy.ports);
        status::info(&crate::proxy::describe(
            proxy,
            ports.map(|turns| turns.ports),
        ));
    }
}

/// After the server is stopped for good: the user's post commands, then clean-up. Another
/// Ctrl-C (or SIGTERM) meanwhile kills the post command that runs and skips the rest.
async fn finish(
    root: &Path,
    post: &[String],
    clean_on_exit: &[CleanPath],
    input: &mut mpsc::UnboundedReceiver<Report>,
) {
    // A post command runs like a build: its own group, no sockets, output passed through.
    for command in post {
        let step = BuildCommand::Shell(command.clone());
        let origin = process::Origin::Post(command.clone());
        let mut run = match RunningBuild::start(&step, root, origin) {
            Ok(run) => run,
            Err(err) => {
                status::post_command(command, &PostCommand::NotStarted(&err));
                continue;
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(POST_TIMEOUT, run.finished()) => outcome.ok(),
            () = next_shutdown(input) => {
                status::post_command(command, &PostCommand::Interrupted);
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
                status::post_command(command, &PostCommand::Failed(&how));
            }
            None => {
                status::post_command(command, &PostCommand::TimedOut(POST_TIMEOUT));
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

/// The next request to stop on the loop's input (what else comes is of no use any more).
async fn next_shutdown(input: &mut mpsc::UnboundedReceiver<Report>) {
    while let Some(report) = input.recv().await {
        if let Report::Shutdown(_) = report {
            return;
        }
    }
    std::future::pending::<()>().await;
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
                status::no_second_port();
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
            let no_port = || anyhow!(status::NO_PORT_FOR_THE_APP);
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// SIGINT, SIGTERM and SIGHUP become [`Shutdown`]s on the loop's input; what a second one
/// means is the orchestrator's business.
fn listen_for_shutdown(reports: &Reports) -> Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let reports = reports.clone();
    tokio::spawn(async move {
        loop {
            let shutdown = tokio::select! {
                _ = interrupt.recv() => Shutdown::Interrupt,
                _ = terminate.recv() => Shutdown::Terminate,
                _ = hangup.recv() => Shutdown::Hangup,
            };
            if reports.send(Report::Shutdown(shutdown)).is_err() {
                return;
            }
        }
    });
    Ok(())
}
