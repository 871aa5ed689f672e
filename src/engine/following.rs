//! The configuration in force, and how it follows the files that decide it: a burst of
//! changes that touches one of them reads the configuration again, and what is valid and can
//! change while reload runs is put in force for every service's next build and start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Config, ServiceConfig};
use crate::lifecycle::ServiceName;
use crate::status;
use crate::watch;

use super::machine::Policy;
use super::orchestrator::Orchestrator;
use super::turns;
use super::unit::Unit;

/// A burst of changes worth building for, before it is routed to the services.
pub(super) struct Changed {
    pub paths: Vec<PathBuf>,
    /// "src/main.rs and 2 more", relative to the project.
    pub summary: String,
    /// The first event of the burst.
    pub first_seen: std::time::Instant,
}

/// Whether a burst of changes is a reason to build: a configuration read again and put in
/// force is; else any change the filter counts, except the config file's own: settings, not a
/// build input (unlike Cargo.toml), it builds only when it changes what runs.
fn wants_build(paths: &[PathBuf], settings_files: &[PathBuf], followed: Option<Followed>) -> bool {
    followed == Some(Followed::Applied) || paths.iter().any(|path| !settings_files.contains(path))
}

/// The configuration in force, and how it follows the files that decide it.
pub(super) struct Following<R> {
    /// The last good configuration: what runs now.
    pub config: Config,
    pub read_again: R,
    pub watch: watch::Control,
    /// The file whose change was refused as invalid, when the last reading was: every change
    /// reads the configuration again until one is good, since what fixes it (a new crate's
    /// manifest) may be in no place reload watches yet.
    pub retry: Option<String>,
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
    pub(super) async fn on_changes(
        &mut self,
        changed: watch::ChangeSet,
        services: &mut Services<'_>,
    ) -> Option<Changed> {
        let root = self.config.root.clone();
        let file = if changed.config_files.is_empty() {
            self.retry.clone()
        } else {
            Some(watch::summary(&changed.config_files, &root))
        };
        let followed = match file.as_deref() {
            Some(file) => Some(self.reread(file, services).await),
            None => None,
        };
        if !wants_build(&changed.paths, &self.config.settings_files, followed) {
            if followed == Some(Followed::Unchanged) && !changed.config_files.is_empty() {
                status::nothing_to_apply(&file.unwrap_or_default());
            }
            return None;
        }
        Some(Changed {
            summary: changed.summary(&root),
            paths: changed.all_paths(),
            first_seen: changed.first_seen,
        })
    }

    /// Resolve the configuration again, as at start, and put it in force when it is valid
    /// and running reload can apply it. `file` names what changed, for the status lines.
    async fn reread(&mut self, file: &str, services: &mut Services<'_>) -> Followed {
        self.retry = Some(file.to_owned());
        let new = match (self.read_again)() {
            Ok(new) => new,
            Err(err) => {
                status::config_refused(&format!("{err:#}"));
                return Followed::Refused;
            }
        };
        // Without its manifests reload would no longer know what to follow. One that could
        // not be read at start either (`reload -- ./server` beside a broken Cargo.toml) is
        // no worse than before.
        if let Some(why) = &new.project_unreadable
            && self.config.project_unreadable.is_none()
        {
            status::project_unreadable(file, why);
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
        self.watch.replace(new.app().watch.clone()).await;
        let followed = if changes.is_empty() {
            Followed::Unchanged
        } else {
            self.apply(&new, services);
            Followed::Applied
        };
        self.config = new;
        followed
    }

    /// Put `new` in force for what comes next: the next build, the next server, the policy.
    /// What runs now is left to the change that follows.
    fn apply(&self, new: &Config, services: &mut Services<'_>) {
        if new.output != self.config.output {
            status::init(new.output);
        }
        for (name, unit) in services.units.iter_mut() {
            let Some(service) = new.services.get(name.as_str()) else {
                continue;
            };
            unit.reconfigure(service);
            if let Some(machine) = services.orchestrator.service_mut(name) {
                let policy = self.policy(new, name, machine.policy());
                machine.set_policy(policy);
            }
        }
    }

    /// The policy `new` says, with what the running machine learnt (`current`) kept where the
    /// restart order did not change.
    fn policy(&self, new: &Config, name: &ServiceName, current: &Policy) -> Policy {
        fn service<'c>(config: &'c Config, name: &ServiceName) -> Option<&'c ServiceConfig> {
            config.services.get(name.as_str())
        }
        let build = service(new, name).and_then(|s| s.build.as_ref());
        let run = service(new, name).and_then(|s| s.run.as_ref());
        let mut policy = Policy::of(build, run, new.output.clear);
        policy.keys = current.keys;
        let order = |config: &Config| {
            service(config, name)
                .and_then(|s| s.run.as_ref())
                .map(|r| r.order)
        };
        if order(&self.config) == order(new) {
            // As the running machine has it: the ports servers take turns on, or stop-then-
            // start after a server showed that it ignores PORT.
            policy.order = current.order;
            policy.ports = current.ports;
        } else {
            let proxy = new.proxy.as_ref().filter(|p| p.service == name.as_str());
            policy.ports = turns(proxy, &mut policy.order).unwrap_or_else(|err| {
                status::ports_kept(&err);
                current.ports
            });
        }
        policy
    }
}

/// What a configuration read again is put in force in: every service's machine and stages.
pub(super) struct Services<'a> {
    pub orchestrator: &'a mut Orchestrator,
    pub units: &'a mut BTreeMap<ServiceName, Unit>,
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
}
