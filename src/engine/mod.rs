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
use crate::lifecycle::{Bus, Notice};
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

/// Run the dev loop until a shutdown. Returns the exit code to use. `read_again` resolves the
/// configuration anew, as at start, when a file that decides it changes.
pub async fn run(config: Config, read_again: impl Fn() -> Result<Config>) -> Result<Exit> {
    let mut shutdowns = listen_for_shutdown()?;
    let mut bus = Bus::new(status::subscribers());
    let mut policy = Policy::of(
        config.build.as_ref(),
        config.run.as_ref(),
        config.output.clear,
    );
    policy.ports = turns(config.proxy.as_ref(), &mut policy.order)?;
    // Bound before anything starts: a proxy port in use stops reload with nothing to clean up.
    // It serves until this function returns.
    let _proxy = config
        .proxy
        .as_ref()
        .map(|proxy| {
            let readiness = config.run.as_ref().map(|run| &run.readiness);
            let chosen = policy.ports.map(|turns| turns.ports[0]);
            crate::proxy::start(proxy, readiness, chosen, config.watch.debounce, &bus)
        })
        .transpose()?;
    let (server_events, mut from_servers) = mpsc::unbounded_channel();
    let stdin = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Stdin::Null
    } else {
        Stdin::Inherit
    };
    let supervisor = config
        .run
        .clone()
        .map(|run| Supervisor::new(run, config.root.clone(), stdin, server_events))
        .transpose()?;
    let watching = watch::start(config.watch.clone())?;
    let mut changes = watching.changes;
    announce(&config, watching.directories, supervisor.as_ref(), &policy);
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
            build_command: config.build.clone(),
            build: None,
            supervisor,
            env_file: config.run.as_ref().and_then(|run| run.env_file.clone()),
            env_overridden: BTreeSet::new(),
        },
    };
    let mut following = Following {
        config,
        read_again,
        watch: watching.control,
        retry: None,
    };
    let mut effects = unit.machine.start(Instant::now());
    loop {
        if let Some(exit) = unit.carry_out(effects, &mut bus).await {
            let config = &following.config;
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
            Some(shutdown) = shutdowns.recv() => Some(Event::Shutdown(shutdown)),
            changed = changes.recv() => match changed {
                Some(changed) => following.on_changes(changed, &mut unit).await,
                None => return Err(anyhow!("the file watcher stopped unexpectedly")),
            },
            Some(key) = keys.recv() => Some(Event::Key(key)),
            outcome = build_finished(&mut unit.stages.build) => {
                unit.stages.build = None;
                Some(Event::BuildFinished {
                    result: outcome.result,
                    elapsed: outcome.elapsed,
                    output: outcome.output,
                })
            }
            Some(event) = from_servers.recv() => Some(of_server(event)),
            () = sleep_until(deadline) => Some(Event::Tick),
        };
        effects = match event {
            Some(event) => unit.machine.handle(event, Instant::now()),
            None => Vec::new(),
        };
    }
}

/// Why a configuration read again is refused, its lines after the first indented (cargo's own
/// error runs over several), and that the last good one stays.
fn kept(why: &str) -> String {
    let mut text = String::new();
    for (n, line) in why.lines().enumerate() {
        if n > 0 {
            text.push_str(if line.starts_with(' ') { "\n" } else { "\n  " });
        }
        text.push_str(line);
    }
    text + "\n  keeping the last good configuration until this is fixed"
}

/// Whether a burst of changes is a reason to build: a configuration read again and put in
/// force is; else any change the filter counts, except the config file's own: settings, not a
/// build input (unlike Cargo.toml), it builds only when it changes what runs.
fn wants_build(paths: &[PathBuf], settings_files: &[PathBuf], followed: Option<Followed>) -> bool {
    followed == Some(Followed::Applied) || paths.iter().any(|path| !settings_files.contains(path))
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
fn announce(config: &Config, watched: usize, supervisor: Option<&Supervisor>, policy: &Policy) {
    for warning in &config.warnings {
        status::warning(warning);
    }
    status::emit(&status::Note::Watching {
        origin: &config.origin,
        directories: watched,
        listening: supervisor.and_then(Supervisor::describe_listeners),
    });
    if let Some(proxy) = &config.proxy {
        status::info(&crate::proxy::describe(
            proxy,
            policy.ports.map(|turns| turns.ports),
        ));
    }
}

/// The configuration in force, and how it follows the files that decide it.
struct Following<R> {
    /// The last good configuration: what runs now.
    config: Config,
    read_again: R,
    watch: watch::Control,
    /// The file whose change was refused as invalid, when the last reading was: every change
    /// reads the configuration again until one is good, since what fixes it (a new crate's
    /// manifest) may be in no place reload watches yet.
    retry: Option<String>,
}

/// What reading the configuration again came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Followed {
    /// It differs, and is in force now.
    Applied,
    /// It says what the one in force says.
    Unchanged,
    /// It is invalid, or changes what only a restart of reload can: the last good one stays.
    Refused,
}

impl<R: Fn() -> Result<Config>> Following<R> {
    /// A burst of changes: when a file that decides the configuration is among them, read it
    /// again first. Returns the change for the machine, if there is one to build for: any
    /// change the filter counts, except the config file itself when its new text changed
    /// nothing that runs (it is settings, not a build input, unlike Cargo.toml).
    async fn on_changes(&mut self, changed: watch::ChangeSet, unit: &mut Unit) -> Option<Event> {
        let root = self.config.root.clone();
        let file = if changed.config_files.is_empty() {
            self.retry.clone()
        } else {
            Some(watch::summary(&changed.config_files, &root))
        };
        let followed = match file.as_deref() {
            Some(file) => Some(self.reread(file, unit).await),
            None => None,
        };
        if !wants_build(&changed.paths, &self.config.settings_files, followed) {
            if followed == Some(Followed::Unchanged) && !changed.config_files.is_empty() {
                status::info(&format!(
                    "{} read again: nothing to apply",
                    file.unwrap_or_default()
                ));
            }
            return None;
        }
        Some(Event::Changed {
            summary: changed.summary(&root),
            paths: changed.all_paths(),
            first_seen: changed.first_seen,
        })
    }

    /// Resolve the configuration again, as at start, and put it in force when it is valid
    /// and running reload can apply it. `file` names what changed, for the status lines.
    async fn reread(&mut self, file: &str, unit: &mut Unit) -> Followed {
        self.retry = Some(file.to_owned());
        let new = match (self.read_again)() {
            Ok(new) => new,
            Err(err) => {
                status::error(&kept(&format!("{err:#}")));
                return Followed::Refused;
            }
        };
        // Without its manifests reload would no longer know what to follow. One that could
        // not be read at start either (`reload -- ./server` beside a broken Cargo.toml) is
        // no worse than before.
        if let Some(why) = &new.project_unreadable
            && self.config.project_unreadable.is_none()
        {
            status::error(&kept(&format!(
                "{file}: the project cannot be read:\n{why}"
            )));
            return Followed::Refused;
        }
        self.retry = None;
        let changes = crate::config::changes(&self.config, &new);
        let refused = changes.iter().any(crate::config::Change::needs_restart);
        for change in changes.iter().filter(|c| c.needs_restart() || !refused) {
            status::emit(&status::Note::Reconfigured {
                file,
                root: &self.config.root,
                change,
            });
        }
        if refused {
            return Followed::Refused;
        }
        for warning in new
            .warnings
            .iter()
            .filter(|w| !self.config.warnings.contains(w))
        {
            status::warning(warning);
        }
        // The watch set may differ without a change to name (the files that decide it): it is
        // handed over every time, and keeps the watches that stay.
        self.watch.replace(new.watch.clone()).await;
        let followed = if changes.is_empty() {
            Followed::Unchanged
        } else {
            self.apply(&new, unit);
            Followed::Applied
        };
        self.config = new;
        followed
    }

    /// Put `new` in force for what comes next: the next build, the next server, the policy.
    /// What runs now is left to the change that follows.
    fn apply(&self, new: &Config, unit: &mut Unit) {
        if new.output != self.config.output {
            status::init(new.output);
        }
        unit.stages.build_command.clone_from(&new.build);
        unit.stages.env_file = new.run.as_ref().and_then(|run| run.env_file.clone());
        if let (Some(supervisor), Some(run)) = (unit.stages.supervisor.as_mut(), &new.run) {
            supervisor.reconfigure(run.clone());
        }
        let mut policy = Policy::of(new.build.as_ref(), new.run.as_ref(), new.output.clear);
        let current = unit.machine.policy();
        policy.keys = current.keys;
        let order = |config: &Config| config.run.as_ref().map(|run| run.order);
        if order(&self.config) == order(new) {
            // As the running machine has it: the ports servers take turns on, or stop-then-
            // start after a server showed that it ignores PORT.
            policy.order = current.order;
            policy.ports = current.ports;
        } else {
            policy.ports = turns(new.proxy.as_ref(), &mut policy.order).unwrap_or_else(|err| {
                status::warning(&format!("{err:#}; keeping the ports servers have now"));
                current.ports
            });
        }
        unit.machine.set_policy(policy);
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
            Effect::Notice(notice) => status::notice(&notice),
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
                    status::notice(&Notice::ListensInstead {
                        pid,
                        ports: ports.into_iter().collect(),
                        expected,
                    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_builds_only_when_it_changes_what_runs_a_project_file_always() {
        let settings = [PathBuf::from("/p/reload.toml")];
        let toml = [PathBuf::from("/p/reload.toml")];
        let manifest = [PathBuf::from("/p/Cargo.toml")];
        for followed in [Followed::Unchanged, Followed::Refused] {
            assert!(
                !wants_build(&toml, &settings, Some(followed)),
                "{followed:?}"
            );
            assert!(
                wants_build(&manifest, &settings, Some(followed)),
                "{followed:?}"
            );
        }
        assert!(wants_build(&[], &settings, Some(Followed::Applied)));
        assert!(!wants_build(&[], &settings, None));
        assert!(wants_build(&[PathBuf::from("/p/main.rs")], &settings, None));
    }

    #[test]
    fn a_refusal_keeps_every_line_of_the_reason_under_its_first() {
        assert_eq!(
            kept("reload.toml:3:1: bad\n  help: fix it"),
            "reload.toml:3:1: bad\n  help: fix it\n  keeping the last good configuration until \
             this is fixed"
        );
        assert_eq!(
            kept("cannot read:\nerror: failed\n\nCaused by:\n  gone"),
            "cannot read:\n  error: failed\n  \n  Caused by:\n  gone\n  keeping the last good \
             configuration until this is fixed"
        );
    }
}
