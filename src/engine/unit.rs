//! One service's stages: what carries its machine's effects out (its build, its supervisor, the
//! env file read at each start). What a stage reports later (a build's end, a server ready,
//! exiting or stopped) goes to the loop's one input, tagged with the service's name; what it
//! answers at once is returned as the machine's next event.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use tokio::sync::oneshot;

use crate::build::{BuildOutcome, RunningBuild};
use crate::config::{BuildCommand, ServiceConfig};
use crate::lifecycle::{Generation, Notice, ServiceName};
use crate::process;
use crate::status;
use crate::supervise::{PortTurn, ServerEvents, Stdin, Supervisor};

use super::machine::{Effect, Event};
use super::{Report, Reports};

/// What carries the machine's effects out for one service.
pub(super) struct Unit {
    name: ServiceName,
    root: PathBuf,
    build_command: Option<BuildCommand>,
    build: Option<Build>,
    /// Builds started so far: the number of the last one.
    builds: u64,
    supervisor: Option<Supervisor>,
    /// Read again at every start.
    env_file: Option<PathBuf>,
    /// The env file's `NAME=value`s already warned about because reload sets NAME otherwise:
    /// said once, not at every start.
    env_overridden: BTreeSet<String>,
    reports: Reports,
}

/// A build whose outcome a task of its own reports on the loop's input, numbered so that the
/// outcome of a build cancelled meanwhile (already on its way) is not taken for the next one's.
struct Build {
    id: u64,
    /// Sent (or dropped, with the unit) to kill the build.
    cancel: oneshot::Sender<()>,
    /// Ends (its sender dropped) once the task is done with the build.
    over: oneshot::Receiver<()>,
}

impl Build {
    /// Kill the build and wait until it is reaped: bounded by a SIGKILL, as
    /// [`RunningBuild::cancel`] is.
    async fn cancel(self) {
        let _ = self.cancel.send(());
        let _ = self.over.await;
    }
}

impl Unit {
    /// The service `name` as `config` describes it. Binds the listening sockets now: a port in
    /// use is a startup error.
    pub(super) fn new(
        name: ServiceName,
        config: &ServiceConfig,
        root: &Path,
        reports: &Reports,
    ) -> Result<Unit> {
        // A child must not read the keys meant for reload.
        let stdin = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            Stdin::Null
        } else {
            Stdin::Inherit
        };
        let to_loop = reports.clone();
        let events = ServerEvents::new(name.clone(), move |service, event| {
            let _ = to_loop.send(Report::Server(service, event));
        });
        let supervisor = config
            .run
            .clone()
            .map(|run| Supervisor::new(run, root.to_owned(), stdin, events))
            .transpose()?;
        Ok(Unit {
            name,
            root: root.to_owned(),
            build_command: config.build.clone(),
            build: None,
            builds: 0,
            supervisor,
            env_file: config.run.as_ref().and_then(|run| run.env_file.clone()),
            env_overridden: BTreeSet::new(),
            reports: reports.clone(),
        })
    }

    pub(super) fn supervisor(&self) -> Option<&Supervisor> {
        self.supervisor.as_ref()
    }

    /// Take `new` for what comes next: the next build, the next server. What runs now is left
    /// to the change that follows.
    pub(super) fn reconfigure(&mut self, new: &ServiceConfig) {
        self.build_command.clone_from(&new.build);
        self.env_file = new.run.as_ref().and_then(|run| run.env_file.clone());
        if let (Some(supervisor), Some(run)) = (self.supervisor.as_mut(), &new.run) {
            supervisor.reconfigure(run.clone());
        }
    }

    /// Build `id` ended: the machine's event, unless it is not the build running now (it was
    /// cancelled after it ended, before its outcome was taken).
    pub(super) fn built(&mut self, id: u64, outcome: BuildOutcome) -> Option<Event> {
        if self.build.as_ref().is_none_or(|build| build.id != id) {
            return None;
        }
        self.build = None;
        Some(Event::BuildFinished {
            result: outcome.result,
            elapsed: outcome.elapsed,
            output: outcome.output,
        })
    }

    /// Carry out one effect. Waits only for what is bounded (a SIGKILL and its reaping); every
    /// longer wait is the machine's phase, ended by an event. Returns what the stage answered
    /// at once, if anything.
    pub(super) async fn perform(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Notice(notice) => status::notice(&notice),
            Effect::ClearScreen => status::clear_screen(),
            Effect::StartBuild => {
                let command = self.build_command.as_ref()?;
                match RunningBuild::start(command, &self.root, process::Origin::Build) {
                    Ok(build) => self.build = Some(self.report_when_built(build)),
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
            Effect::Publish(_) => unreachable!("published by the engine, on its bus"),
        }
        None
    }

    /// Hand `build` to a task that reports its end on the loop's input, or kills it when asked
    /// (or when the unit is dropped).
    fn report_when_built(&mut self, mut build: RunningBuild) -> Build {
        self.builds += 1;
        let id = self.builds;
        let (cancel, cancelled) = oneshot::channel::<()>();
        let (over_tx, over) = oneshot::channel::<()>();
        let (reports, service) = (self.reports.clone(), self.name.clone());
        tokio::spawn(async move {
            tokio::select! {
                outcome = build.finished() => {
                    let _ = reports.send(Report::Built { service, build: id, outcome });
                }
                _ = cancelled => build.cancel().await,
            }
            drop(over_tx);
        });
        Build { id, cancel, over }
    }

    /// The env file is read at each start, so an edit to it takes effect at the next one.
    fn prepare(
        &mut self,
        generation: Generation,
        executable: Option<&Path>,
        port: Option<PortTurn>,
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
                    status::env_file_overridden(path, name, &given, written);
                }
            }
        }
        supervisor.prepare(generation, executable, &env, port)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::build::BuildResult;

    fn outcome() -> BuildOutcome {
        BuildOutcome {
            result: BuildResult::Succeeded { executable: None },
            elapsed: Duration::from_millis(5),
            output: Arc::from(""),
        }
    }

    /// A unit whose build number `id` runs (as far as it knows).
    fn building(id: u64) -> Unit {
        let (cancel, _) = oneshot::channel();
        let (_, over) = oneshot::channel();
        Unit {
            name: ServiceName::new("app"),
            root: PathBuf::from("/p"),
            build_command: None,
            build: Some(Build { id, cancel, over }),
            builds: id,
            supervisor: None,
            env_file: None,
            env_overridden: BTreeSet::new(),
            reports: mpsc::unbounded_channel().0,
        }
    }

    #[test]
    fn the_outcome_of_a_build_cancelled_after_it_ended_is_not_taken_for_the_next_ones() {
        let mut unit = building(2);
        assert!(unit.built(1, outcome()).is_none());
        assert!(unit.build.is_some(), "build 2 still runs");
        assert!(matches!(
            unit.built(2, outcome()),
            Some(Event::BuildFinished { .. })
        ));
        assert!(unit.build.is_none());
        assert!(unit.built(2, outcome()).is_none(), "taken once");
    }
}
