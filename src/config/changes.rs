//! What differs between the configuration in force and the one read again while reload runs
//! (a file that decides it changed): what can be applied at once, and what only a restart of
//! reload can (sockets bound at start, the proxy's thread, the kind of watcher).

use std::path::PathBuf;

use super::{Config, Program, RunConfig, ServiceConfig};

/// One difference, as the status lines name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A path that is watched now and was not.
    Watched(PathBuf),
    /// A path that was watched and is not any more.
    Unwatched(PathBuf),
    /// The build command now (`None`: no build step).
    Build(Option<String>),
    /// How the server is started now, as a command line.
    Program(String),
    /// Other settings of this section differ (`[watch]`, `[run]`, `[build]`, `[output]`).
    Settings(&'static str),
    /// A setting reload cannot change while it runs, by its name.
    NeedsRestart(&'static str),
}

impl Change {
    pub fn needs_restart(&self) -> bool {
        matches!(self, Change::NeedsRestart(_))
    }
}

/// How `new` differs from `old`, in the order the user reads it: what needs a restart first.
pub fn changes(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = fixed_changes(old, new);
    let output = |config: &Config| {
        let o = config.output;
        (o.clear, o.timestamps, o.quiet)
    };
    let output_changed = output(old) != output(new);
    let (old, new) = (old.app(), new.app());
    let added = |from: &[PathBuf], to: &[PathBuf]| -> Vec<PathBuf> {
        to.iter()
            .filter(|path| !from.contains(path))
            .cloned()
            .collect()
    };
    let (old_paths, new_paths) = (&old.watch.paths, &new.watch.paths);
    out.extend(added(old_paths, new_paths).into_iter().map(Change::Watched));
    out.extend(
        added(new_paths, old_paths)
            .into_iter()
            .map(Change::Unwatched),
    );
    if old.watch.filter != new.watch.filter || old.watch.debounce != new.watch.debounce {
        out.push(Change::Settings("[watch]"));
    }
    if old.build != new.build {
        out.push(Change::Build(new.build.as_ref().map(ToString::to_string)));
    }
    if old.clean_on_exit != new.clean_on_exit {
        out.push(Change::Settings("[build]"));
    }
    if let (Some(old_run), Some(new_run)) = (&old.run, &new.run) {
        if old_run.program != new_run.program {
            out.push(Change::Program(command_line(&new_run.program)));
        }
        if !same_settings(old_run, new_run) || old.post != new.post {
            out.push(Change::Settings("[run]"));
        }
    }
    if output_changed {
        out.push(Change::Settings("[output]"));
    }
    out
}

/// What was set up once at start: the root, the proxy (its own thread and port), the held
/// sockets, whether there is a server at all, the watcher's kind and the status lines' format.
fn fixed_changes(old: &Config, new: &Config) -> Vec<Change> {
    let listeners = |config: &ServiceConfig| config.run.as_ref().map(|run| run.listeners.clone());
    let (old_app, new_app) = (old.app(), new.app());
    let server_either_way = old_app.run.is_some() == new_app.run.is_some();
    [
        (old.root != new.root, "root"),
        (old.proxy != new.proxy, "[proxy]"),
        (!server_either_way, "[run] cmd"),
        (
            server_either_way && listeners(old_app) != listeners(new_app),
            "[run] listen",
        ),
        (old_app.watch.poll != new_app.watch.poll, "[watch] poll"),
        (old.output.format != new.output.format, "[output] format"),
    ]
    .into_iter()
    .filter(|(differs, _)| *differs)
    .map(|(_, name)| Change::NeedsRestart(name))
    .collect()
}

/// Whether two run settings agree on everything but the program and the held sockets, which
/// are told apart on their own.
fn same_settings(old: &RunConfig, new: &RunConfig) -> bool {
    let mut new = new.clone();
    new.program.clone_from(&old.program);
    new.listeners.clone_from(&old.listeners);
    *old == new
}

fn command_line(program: &Program) -> String {
    match program {
        Program::Argv(argv) => argv.join(" "),
        Program::Shell(line) => line.clone(),
        Program::CargoArtifact => "the binary cargo builds".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Globs;
    use crate::config::tests::resolve_in;

    fn app(config: &mut Config) -> &mut ServiceConfig {
        &mut config.services[0]
    }

    /// A configuration with something in each section, resolved in `dir`.
    fn config(dir: &tempfile::TempDir) -> Config {
        let toml = "[watch]\next = [\"rs\"]\nignore = [\"*.tmp\"]\nignore_regex = [\"_test\"]\n\
                    [build]\ncmd = \"make\"\n[run]\ncmd = [\"./server\"]\n";
        resolve_in(dir.path(), "", Some(toml)).unwrap()
    }

    #[test]
    fn the_same_configuration_read_again_has_no_changes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(changes(&config(&dir), &config(&dir)), Vec::new());
    }

    #[test]
    fn watched_paths_added_and_dropped_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut new = config(&dir);
        app(&mut new).watch.paths = vec!["/extra".into()];
        assert_eq!(
            changes(&config(&dir), &new),
            vec![
                Change::Watched("/extra".into()),
                Change::Unwatched(new.root.clone())
            ]
        );
    }

    #[test]
    fn what_builds_and_runs_is_named_and_other_settings_by_section() {
        let dir = tempfile::tempdir().unwrap();
        let mut new = config(&dir);
        app(&mut new).build = None;
        let run = app(&mut new).run.as_mut().unwrap();
        run.program = Program::Shell("./server --port 3000".into());
        run.stop_timeout = Duration::from_secs(1);
        app(&mut new).watch.filter.ignore =
            Globs::new(vec![globset::Glob::new("*.log").unwrap()]).unwrap();
        new.output.clear = true;
        assert_eq!(
            changes(&config(&dir), &new),
            vec![
                Change::Settings("[watch]"),
                Change::Build(None),
                Change::Program("./server --port 3000".into()),
                Change::Settings("[run]"),
                Change::Settings("[output]"),
            ]
        );
        let mut regex = config(&dir);
        app(&mut regex).watch.filter.ignore_regex = vec![regex::Regex::new("_spec").unwrap()];
        assert_eq!(
            changes(&config(&dir), &regex),
            vec![Change::Settings("[watch]")]
        );
    }

    #[test]
    fn what_was_set_up_at_start_needs_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut new = config(&dir);
        new.proxy = resolve_in(dir.path(), "--proxy 8090 -- app", None)
            .unwrap()
            .proxy;
        app(&mut new).watch.poll = Some(Duration::from_secs(1));
        let found = changes(&config(&dir), &new);
        assert!(
            found.contains(&Change::NeedsRestart("[proxy]")),
            "{found:?}"
        );
        assert!(
            found.contains(&Change::NeedsRestart("[watch] poll")),
            "{found:?}"
        );
        assert!(found[0].needs_restart(), "named first: {found:?}");

        let mut build_only = config(&dir);
        app(&mut build_only).run = None;
        assert_eq!(
            changes(&config(&dir), &build_only),
            vec![Change::NeedsRestart("[run] cmd")]
        );
    }
}
