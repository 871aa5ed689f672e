//! The watch stage: turns file-system events into [`ChangeSet`]s, one per burst of changes.
//!
//! Every directory that is not ignored gets its own non-recursive inotify watch, placed by our
//! own walk (notify's recursive mode would also watch `target/` and `node_modules/`). New
//! directories are walked and watched as they appear. Events pass through the [`Filter`] and
//! collect until no relevant event has arrived for the debounce window: one trailing quiet window
//! over all paths, however long the burst lasts. When nothing happens, nothing runs: notify's
//! thread sleeps in `poll`, and this stage's own thread sleeps in `recv` with no timer.
//!
//! An inotify watch follows an inode, not a path. So when a watched directory is renamed,
//! removed or replaced, the watches of it and of everything below it are forgotten and the tree
//! is walked again as it is now: a tree moved away and back, or a new directory swapped in under
//! an old name, is watched as fully as before, and the move counts as a change.
//!
//! The files that decide the configuration (`WatchConfig::config_files`) are watched whatever
//! the filter says, and reported apart in the change set. The engine can hand the stage a new
//! configuration ([`Control::replace`]): the watches that stay are kept, new ones placed, the
//! rest removed.
//!
//! This stage never spawns a process and never decides what a change means.

mod filter;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{EventKind, RecursiveMode};

use tokio::sync::mpsc;

use crate::config::WatchConfig;
pub(crate) use filter::Filter;

/// The files that changed in one burst, sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// The changes the filter counts: each is a reason to build.
    pub paths: Vec<PathBuf>,
    /// The files that decide the configuration among the changes (created, written or
    /// removed), whether the filter counts them or not.
    pub config_files: Vec<PathBuf>,
    /// When the first relevant event of this burst arrived: the quiet window and the build
    /// both come after it, so "how long since the change" counts from here.
    pub first_seen: Instant,
}

impl ChangeSet {
    /// Every path of the burst, counted or deciding, sorted and without duplicates.
    pub fn all_paths(&self) -> Vec<PathBuf> {
        let all: BTreeSet<&PathBuf> = self.paths.iter().chain(&self.config_files).collect();
        all.into_iter().cloned().collect()
    }

    /// "src/main.rs" or "src/main.rs and 41 more", relative to `root`.
    pub fn summary(&self, root: &Path) -> String {
        summary(&self.all_paths(), root)
    }
}

/// "src/main.rs" or "src/main.rs and 41 more", relative to `root`.
pub fn summary(paths: &[PathBuf], root: &Path) -> String {
    let first = paths.first().map_or_else(String::new, |p| {
        p.strip_prefix(root).unwrap_or(p).display().to_string()
    });
    match paths.len() {
        0 | 1 => first,
        n => format!("{first} and {} more", n - 1),
    }
}

/// What the stage's thread hears: the file system, or the engine.
enum Input {
    Event(notify::Result<notify::Event>),
    /// A new configuration, and who to tell once its watches are in place.
    Replace(Box<WatchConfig>, tokio::sync::oneshot::Sender<()>),
}

/// The longest [`Control::replace`] waits for the watches to be placed.
const REPLACE_WAIT: Duration = Duration::from_secs(5);

/// The engine's handle on the running stage.
pub struct Control {
    input: std::sync::mpsc::Sender<Input>,
}

impl Control {
    /// Watch what `config` says from now on: the watches that stay are kept, the others
    /// removed, new directories walked. Returns once they are in place, so that no change
    /// made after is missed; or after [`REPLACE_WAIT`], since the stage's thread may be
    /// blocked handing over change sets to the very caller that waits. Changes already pending
    /// stay pending. Errors are the stage's to report, as for a directory that appears.
    pub async fn replace(&self, config: WatchConfig) {
        let (placed, done) = tokio::sync::oneshot::channel();
        if self
            .input
            .send(Input::Replace(Box::new(config), placed))
            .is_ok()
        {
            let _ = tokio::time::timeout(REPLACE_WAIT, done).await;
        }
    }
}

/// The running stage: its change sets, how many directories it watched at start, and the
/// handle to give it a new configuration.
pub struct Watching {
    pub changes: mpsc::Receiver<ChangeSet>,
    pub directories: usize,
    pub control: Control,
}

/// Start watching. Watches are in place when this returns, so no change made after it is
/// missed. Fails when a watch cannot be placed at all (e.g. the inotify limit).
pub fn start(config: WatchConfig) -> Result<Watching> {
    let (raw_tx, raw_rx) = std::sync::mpsc::channel();
    let control = Control {
        input: raw_tx.clone(),
    };
    let handler = move |event| {
        let _ = raw_tx.send(Input::Event(event));
    };
    let watcher: Box<dyn notify::Watcher + Send> = match config.poll {
        // Polling is for file systems that send no events (network mounts, some containers);
        // it costs a scan per interval, so it is never the default. notify's poller keeps
        // mtimes in whole seconds, so two saves within a second would look alike: it compares
        // contents too.
        Some(interval) => Box::new(
            notify::PollWatcher::new(
                handler,
                notify::Config::default()
                    .with_poll_interval(interval)
                    .with_compare_contents(true),
            )
            .map_err(|err| explain(err, None))?,
        ),
        None => Box::new(
            notify::recommended_watcher(handler)
                .map_err(|err| explain(err, None))
                .context("cannot start watching files")?,
        ),
    };

    let mut stage = WatchStage::new(watcher, config);
    stage.place()?;
    tracing::debug!(directories = stage.watched.len(), "watches placed");
    let directories = stage.watched.len();
    let (tx, changes) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || stage.run(raw_rx, &tx))
        .context("cannot start the watch thread")?;
    Ok(Watching {
        changes,
        directories,
        control,
    })
}

struct WatchStage {
    watcher: Box<dyn notify::Watcher + Send>,
    filter: Filter,
    /// Watched trees.
    roots: Vec<PathBuf>,
    /// Single files given with --watch; their parent directory is watched for them alone.
    files: HashSet<PathBuf>,
    /// The files that decide the configuration; their parent directory is watched for them
    /// too, which may not exist yet.
    config_files: HashSet<PathBuf>,
    watched: HashSet<PathBuf>,
    /// While a new configuration is placed: the watches of the old one, taken over instead of
    /// placed again when still wanted, removed when not.
    kept: HashSet<PathBuf>,
    /// Parents of watched trees that are gone (renamed away, removed), watched only to see
    /// them come back; not in `watched`, which holds what is watched for changes.
    lookouts: HashSet<PathBuf>,
    /// Directories that could not be watched or read: warned about once, then skipped.
    unreadable: HashSet<PathBuf>,
    /// Changed paths, each with whether this burst created it (see `take_changes`).
    pending: BTreeMap<PathBuf, bool>,
    /// Files that decide the configuration and changed in the pending burst.
    pending_config: BTreeSet<PathBuf>,
    /// When the first relevant event of the pending burst arrived.
    first_seen: Option<Instant>,
    /// When the event being handled arrived.
    event_arrived: Instant,
    /// Whether the event being handled creates its paths.
    event_creates: bool,
    /// Whether the event being handled held a relevant change.
    seen_change: bool,
    debounce: Duration,
}

impl WatchStage {
    /// A stage with nothing watched yet.
    fn new(watcher: Box<dyn notify::Watcher + Send>, config: WatchConfig) -> Self {
        let mut stage = WatchStage {
            watcher,
            // Replaced by `take`, as everything else `config` says.
            filter: Filter::new(config.filter.clone()),
            roots: Vec::new(),
            files: HashSet::new(),
            config_files: HashSet::new(),
            watched: HashSet::new(),
            kept: HashSet::new(),
            lookouts: HashSet::new(),
            unreadable: HashSet::new(),
            pending: BTreeMap::new(),
            pending_config: BTreeSet::new(),
            first_seen: None,
            event_arrived: Instant::now(),
            event_creates: false,
            seen_change: false,
            debounce: config.debounce,
        };
        stage.take(config);
        stage
    }

    /// Take `config`'s paths and rules, placing no watch yet.
    fn take(&mut self, config: WatchConfig) {
        let (roots, files): (Vec<_>, Vec<_>) = config.paths.into_iter().partition(|p| p.is_dir());
        self.filter = Filter::new(config.filter);
        self.roots = roots;
        self.files = files.into_iter().collect();
        self.config_files = config.config_files.into_iter().collect();
        self.debounce = config.debounce;
    }

    /// Watch every tree, and the directory of every single file. Fails when a watch cannot be
    /// placed at all (the inotify limit, a root or a --watch file that cannot be watched); a
    /// config file's directory that cannot be watched is only a warning.
    fn place(&mut self) -> Result<()> {
        for root in self.roots.clone() {
            self.watch_tree(&root, false)?;
        }
        for parent in self.parents_of_files(Path::new("/")) {
            if self.watched.contains(&parent) {
                continue;
            }
            match self.add_watch(&parent) {
                Ok(()) => {}
                Err(err)
                    if is_limit(&err) || self.files.iter().any(|f| f.parent() == Some(&parent)) =>
                {
                    return Err(explain(err, Some(&parent)));
                }
                Err(err) => crate::status::warning(&format!(
                    "cannot watch {} for changes to the configuration: {}; edits there apply \
                     when reload starts again",
                    parent.display(),
                    reason(&err)
                )),
            }
        }
        Ok(())
    }

    /// The existing directories at or below `under` that hold a single file to watch: one
    /// given with --watch, or one that decides the configuration.
    fn parents_of_files(&self, under: &Path) -> Vec<PathBuf> {
        let parents: BTreeSet<PathBuf> = self
            .files
            .iter()
            .chain(&self.config_files)
            .filter_map(|file| file.parent())
            .filter(|parent| parent.starts_with(under) && parent.is_dir())
            .map(Path::to_owned)
            .collect();
        parents.into_iter().collect()
    }

    /// Watch what `config` says from now on, keeping the watches that stay.
    fn replace(&mut self, config: WatchConfig) {
        self.take(config);
        self.kept = std::mem::take(&mut self.watched);
        let placed = self.place();
        for dir in std::mem::take(&mut self.kept) {
            // Gone already, or dropped by notify with its directory: nothing to undo.
            let _ = self.watcher.unwatch(&dir);
        }
        tracing::debug!(directories = self.watched.len(), "watches placed again");
        if let Err(err) = placed {
            crate::status::error(&format!("{err:#}"));
        }
    }

    /// The stage's thread. It blocks in `recv` while nothing happens (no timer, no wake-up) and
    /// in `recv_timeout` while a burst is pending: a futex wait, precise to tens of
    /// microseconds, where tokio's timer wheel would round the quiet window up to its next
    /// millisecond tick.
    fn run(mut self, raw: std::sync::mpsc::Receiver<Input>, changes: &mpsc::Sender<ChangeSet>) {
        use std::sync::mpsc::RecvTimeoutError;
        let mut deadline: Option<Instant> = None;
        loop {
            let event = match deadline {
                None => raw.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => raw.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match event {
                Ok(Input::Replace(config, placed)) => {
                    self.replace(*config);
                    let _ = placed.send(());
                }
                Ok(Input::Event(event)) => {
                    self.seen_change = false;
                    self.event_arrived = Instant::now();
                    match event {
                        Ok(event) => self.on_event(event),
                        Err(err) => crate::status::error(&format!("{:#}", explain(err, None))),
                    }
                    // Every relevant event restarts the quiet window, even for a path already
                    // pending: a file saved over and over is one burst, not a build per window.
                    if self.seen_change {
                        deadline = Some(Instant::now() + self.debounce);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    deadline = None;
                    let Some(changed) = self.take_changes() else {
                        continue;
                    };
                    if changes.blocking_send(changed).is_err() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn record(&mut self, path: PathBuf) {
        self.seen_change = true;
        self.first_seen.get_or_insert(self.event_arrived);
        self.pending.entry(path).or_insert(self.event_creates);
    }

    /// A file that decides the configuration changed: even its removal counts.
    fn record_config(&mut self, path: PathBuf) {
        self.seen_change = true;
        self.first_seen.get_or_insert(self.event_arrived);
        self.pending_config.insert(path);
    }

    /// The burst's changes, without the files it both created and removed: a tool's temporary
    /// file (`sed -i`'s, an editor's) is not a change, and a burst of only those is no change.
    fn take_changes(&mut self) -> Option<ChangeSet> {
        let first_seen = self.first_seen.take()?;
        let paths: Vec<PathBuf> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|(path, created)| !created || std::fs::symlink_metadata(path).is_ok())
            .map(|(path, _)| path)
            .collect();
        let config_files: Vec<PathBuf> = std::mem::take(&mut self.pending_config)
            .into_iter()
            .collect();
        if paths.is_empty() && config_files.is_empty() {
            tracing::debug!("only short-lived files came and went");
            return None;
        }
        Some(ChangeSet {
            paths,
            config_files,
            first_seen,
        })
    }

    fn on_event(&mut self, event: notify::Event) {
        self.event_creates = matches!(event.kind, EventKind::Create(_));
        if event.need_rescan() {
            // The kernel dropped events (queue overflow): something changed, we cannot say what,
            // and directories created meanwhile may have no watch yet: walk again for those.
            tracing::debug!("event queue overflowed; treating it as a change");
            for root in self.roots.clone() {
                if let Err(err) = self.watch_tree(&root, false) {
                    crate::status::error(&format!("{err:#}"));
                }
            }
            if let Some(root) = self.roots.first() {
                self.record(root.clone());
            }
            // One of them may have changed too.
            for file in self.config_files.clone() {
                self.record_config(file);
            }
            return;
        }
        let known_file = matches!(
            event.kind,
            EventKind::Create(CreateKind::File)
                | EventKind::Modify(ModifyKind::Data(_))
                | EventKind::Remove(RemoveKind::File)
        );
        // What can move, remove or replace a directory. notify reports IN_MOVE_SELF as a
        // rename `From` and IN_DELETE_SELF as a removal, both under the path it last knew;
        // IN_IGNORED it drops. A pair's `Both` repeats its `From` and `To`, handled already.
        let reshapes = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(
                    RenameMode::From | RenameMode::To | RenameMode::Any | RenameMode::Other
                ))
        );
        match event.kind {
            // Opening or reading a file is not a change (notify asks inotify for IN_OPEN too).
            EventKind::Access(_) => return,
            EventKind::Any | EventKind::Other if event.paths.is_empty() => return,
            _ => {}
        }
        for path in event.paths {
            if known_file {
                self.on_file(path);
            } else if reshapes && (is_directory(&path) || self.holds_watches(&path)) {
                self.rewatch(&path);
            } else if path.is_dir() {
                self.on_directory(&path);
            } else {
                self.on_file(path);
            }
        }
    }

    fn on_file(&mut self, path: PathBuf) {
        if self.config_files.contains(&path) {
            self.record_config(path.clone());
        }
        if self.files.contains(&path) {
            self.record(path);
            return;
        }
        if !self.roots.iter().any(|root| path.starts_with(root)) {
            return;
        }
        if Filter::is_ignore_file(&path)
            && let Some(dir) = path.parent()
        {
            self.filter.load_ignore_files(dir);
        }
        if self.filter.is_relevant_file(&path) {
            tracing::trace!(path = %path.display(), "change");
            self.record(path);
        }
    }

    /// A directory appeared (created, or moved in): watch it, and count the files it already
    /// holds, which were written before our watch existed (`git checkout`, `mv dir here`).
    fn on_directory(&mut self, path: &Path) {
        if self.watched.contains(path)
            || !self.roots.iter().any(|root| path.starts_with(root))
            || self.filter.is_ignored(path, true)
        {
            return;
        }
        if let Err(err) = self.watch_tree(path, true) {
            crate::status::error(&format!("{err:#}"));
        }
    }

    /// Whether `path` or anything below it holds a watch.
    fn holds_watches(&self, path: &Path) -> bool {
        self.watched.iter().any(|dir| dir.starts_with(path))
    }

    /// A directory at `path` was renamed (either way), removed, replaced or created. The
    /// watches at and below `path` may now be on inodes elsewhere, or on none, and notify
    /// drops some of them by itself: forget them all, and watch what is there now, counting
    /// the files found as changes (they are new to this path).
    fn rewatch(&mut self, path: &Path) {
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|dir| dir.starts_with(path))
            .cloned()
            .collect();
        for dir in &stale {
            // notify may have dropped it already (IN_MOVED_FROM, IN_DELETE): nothing to undo.
            let _ = self.watcher.unwatch(dir);
            self.watched.remove(dir);
        }
        let is_dir = is_directory(path);
        let is_root = self.roots.iter().any(|root| root == path);
        let in_tree = self.roots.iter().any(|root| path.starts_with(root));
        if is_dir
            && (is_root || (in_tree && !self.filter.is_ignored(path, true)))
            && let Err(err) = self.watch_tree(path, true)
        {
            crate::status::error(&format!("{err:#}"));
        }
        // Single files whose directory this was.
        for parent in self.parents_of_files(path) {
            if !self.watched.contains(&parent)
                && let Err(err) = self.add_watch(&parent)
            {
                crate::status::error(&format!("{:#}", explain(err, Some(&parent))));
            }
        }
        if !stale.is_empty() {
            self.record(path.to_owned());
        }
        if is_root {
            self.look_out_for(path, is_dir);
        }
    }

    /// A watched tree that is gone can come back (`mv src src.bak; mv src.bak src`), but with
    /// no watch left in it nothing would say so: watch its parent until it does.
    fn look_out_for(&mut self, root: &Path, present: bool) {
        let Some(parent) = root.parent() else {
            return;
        };
        if self.watched.contains(parent) {
            return;
        }
        let watching = self.lookouts.contains(parent);
        if present && watching {
            let still_needed = self
                .roots
                .iter()
                .any(|other| other.parent() == Some(parent) && !other.is_dir());
            if !still_needed {
                let _ = self.watcher.unwatch(parent);
                self.lookouts.remove(parent);
            }
        } else if !present && !watching {
            match self.watcher.watch(parent, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.lookouts.insert(parent.to_owned());
                }
                Err(err) => crate::status::warning(&format!(
                    "{} is gone, and its return cannot be watched for: {}\n  help: restart \
                     reload once it is back",
                    root.display(),
                    reason(&err)
                )),
            }
        }
    }

    /// Warn, once per directory, that `dir` is skipped, and how to say that is intended.
    fn skip_unreadable(&mut self, dir: &Path, why: &str) {
        if !self.unreadable.insert(dir.to_owned()) {
            return;
        }
        let relative = self.filter.relative(dir).display().to_string();
        crate::status::warning(&format!(
            "cannot watch {}: {why}; skipping it and everything in it\n  help: if that \
             is intended, silence this warning with `-i {relative}` (--ignore)",
            dir.display()
        ));
    }

    /// Walk `top`, placing a watch on every directory that is not ignored. With `collect`, the
    /// relevant files found are recorded as changes. A directory that cannot be watched or
    /// read is skipped with a warning; only running out of watches (or `top` being a watched
    /// root that cannot be watched) is an error.
    fn watch_tree(&mut self, top: &Path, collect: bool) -> Result<()> {
        let mut stack = vec![top.to_owned()];
        while let Some(dir) = stack.pop() {
            self.filter.load_ignore_files(&dir);
            let watch = if self.watched.contains(&dir) {
                Ok(())
            } else {
                self.add_watch(&dir)
            };
            if let Err(err) = watch {
                match std::fs::symlink_metadata(&dir) {
                    // Gone already (a short-lived temp dir): nothing to watch.
                    Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => {
                        tracing::debug!(dir = %dir.display(), %err, "directory vanished");
                        continue;
                    }
                    // Out of watches: every later directory would fail the same way.
                    _ if is_limit(&err) => return Err(explain(err, Some(&dir))),
                    _ if self.roots.contains(&dir) => {
                        return Err(anyhow!(
                            "cannot watch {}: {}\n  help: make it readable, or watch another \
                             directory with -w",
                            dir.display(),
                            reason(&err)
                        ));
                    }
                    _ => {
                        self.skip_unreadable(&dir, &reason(&err));
                        continue;
                    }
                }
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    self.skip_unreadable(&dir, &io_reason(&err));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                // Symlinked directories are not followed: they can loop, or leave the tree.
                if file_type.is_dir() {
                    if !self.filter.is_ignored(&path, true) {
                        stack.push(path);
                    }
                } else if collect && self.filter.is_relevant_file(&path) {
                    self.record(path);
                }
            }
        }
        Ok(())
    }

    fn add_watch(&mut self, dir: &Path) -> notify::Result<()> {
        // A watch the configuration before this one placed is there already.
        if !self.kept.remove(dir) {
            self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        // A lookout on this directory now watches for changes too.
        self.lookouts.remove(dir);
        self.watched.insert(dir.to_owned());
        Ok(())
    }
}

/// Whether `path` is a directory itself, not a symlink to one.
fn is_directory(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Whether placing a watch failed because a per-user inotify limit is reached.
fn is_limit(err: &notify::Error) -> bool {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => io.raw_os_error() == Some(nix::libc::EMFILE),
        _ => false,
    }
}

/// Why a watch could not be placed, without the path notify appends (the caller names it).
fn reason(err: &notify::Error) -> String {
    match &err.kind {
        notify::ErrorKind::Io(io) => io_reason(io),
        notify::ErrorKind::PathNotFound => "it does not exist".to_owned(),
        notify::ErrorKind::Generic(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// "permission denied" rather than "Permission denied (os error 13)", to follow a colon.
fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    text.split(" (os error")
        .next()
        .unwrap_or(&text)
        .to_lowercase()
}

/// Turn notify's errors into what the user must do about them.
fn explain(err: notify::Error, dir: Option<&Path>) -> anyhow::Error {
    let place = dir.map_or_else(String::new, |d| format!(" on {}", d.display()));
    let limit = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .map_or_else(|_| "?".to_owned(), |v| v.trim().to_owned())
    };
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => anyhow!(
            "cannot place an inotify watch{place}: the limit fs.inotify.max_user_watches ({}) is \
             reached\n  help: raise it with `sudo sysctl fs.inotify.max_user_watches=524288` \
             (persist it in /etc/sysctl.d/), or ignore large directories with --ignore",
            limit("max_user_watches")
        ),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(nix::libc::EMFILE) => anyhow!(
            "cannot create an inotify instance: the limit fs.inotify.max_user_instances ({}) is \
             reached\n  help: raise it with `sudo sysctl fs.inotify.max_user_instances=512`, or \
             stop other watchers",
            limit("max_user_instances")
        ),
        // notify's own text names the path too: name it once.
        _ => match dir {
            Some(dir) => anyhow!("cannot watch {}: {}", dir.display(), reason(&err)),
            None => anyhow!("{err}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inotify_limit_names_the_setting_and_how_to_raise_it() {
        let err = explain(
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
            Some(Path::new("/p/src")),
        );
        let message = err.to_string();
        assert!(message.contains("fs.inotify.max_user_watches"), "{message}");
        assert!(message.contains("sysctl"), "{message}");
        assert!(message.contains("/p/src"), "{message}");
    }

    #[test]
    fn a_change_set_summary_is_relative_and_counts_the_rest() {
        let changes = ChangeSet {
            paths: vec!["/p/src/a.rs".into(), "/p/src/b.rs".into()],
            config_files: Vec::new(),
            first_seen: Instant::now(),
        };
        assert_eq!(changes.summary(Path::new("/p")), "src/a.rs and 1 more");
    }

    fn rules(root: &Path) -> crate::config::FilterRules {
        crate::config::FilterRules {
            root: root.to_owned(),
            extensions: Vec::new(),
            include: None,
            ignore: crate::config::Globs::empty(),
            ignore_regex: Vec::new(),
            gitignore: false,
            ignored_dirs: Vec::new(),
        }
    }

    /// A stage watching nothing yet, for feeding it events by hand.
    fn stage(root: &Path) -> WatchStage {
        let mut stage = WatchStage::new(
            Box::new(notify::recommended_watcher(|_| {}).unwrap()),
            WatchConfig {
                paths: Vec::new(),
                config_files: vec![root.join("reload.toml")],
                filter: rules(root),
                debounce: Duration::from_millis(100),
                poll: None,
            },
        );
        // Not on disk: `take` would file it among single files.
        stage.roots = vec![root.to_owned()];
        stage
    }

    fn arrives(stage: &mut WatchStage, at: Instant, kind: EventKind, path: &str) {
        stage.event_arrived = at;
        stage.on_event(notify::Event::new(kind).add_path(path.into()));
    }

    #[test]
    fn a_change_set_starts_at_the_first_relevant_event_of_its_burst() {
        let mut stage = stage(Path::new("/p"));
        let saved = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);

        arrives(
            &mut stage,
            t0,
            EventKind::Access(notify::event::AccessKind::Any),
            "/p/a",
        );
        arrives(&mut stage, later(10), saved, "/p/node_modules/x.js");
        arrives(&mut stage, later(20), saved, "/p/a.rs");
        arrives(&mut stage, later(900), saved, "/p/b.rs");
        let burst = stage.take_changes().expect("a change set");
        assert_eq!(
            burst.first_seen,
            later(20),
            "reads and ignored files do not count"
        );
        assert_eq!(burst.paths.len(), 2);

        // A burst of only a file created and removed again is none, and leaves no start time
        // behind for the next one.
        let created = EventKind::Create(CreateKind::File);
        arrives(&mut stage, later(1000), created, "/p/gone.tmp.1");
        assert!(stage.take_changes().is_none());
        arrives(&mut stage, later(2000), saved, "/p/c.rs");
        assert_eq!(stage.take_changes().unwrap().first_seen, later(2000));
    }

    #[test]
    fn a_file_that_decides_the_configuration_is_reported_apart_whatever_the_filter_says() {
        let mut stage = stage(Path::new("/p"));
        stage.filter = Filter::new(crate::config::FilterRules {
            extensions: vec!["rs".into()],
            ..rules(Path::new("/p"))
        });
        let t0 = Instant::now();
        let saved = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        arrives(&mut stage, t0, saved, "/p/reload.toml");
        arrives(&mut stage, t0, saved, "/p/notes.toml");
        let burst = stage
            .take_changes()
            .expect("a change set for reload.toml alone");
        assert_eq!(
            burst.paths,
            Vec::<PathBuf>::new(),
            "the filter counts no .toml"
        );
        assert_eq!(burst.config_files, vec![PathBuf::from("/p/reload.toml")]);
        assert_eq!(burst.summary(Path::new("/p")), "reload.toml");

        // Removed (or renamed away) counts too: the configuration is then another one.
        let removed = EventKind::Remove(RemoveKind::File);
        arrives(&mut stage, t0, removed, "/p/reload.toml");
        arrives(&mut stage, t0, saved, "/p/main.rs");
        let burst = stage.take_changes().expect("a change set");
        assert_eq!(burst.config_files, vec![PathBuf::from("/p/reload.toml")]);
        assert_eq!(
            burst.all_paths(),
            vec![PathBuf::from("/p/main.rs"), PathBuf::from("/p/reload.toml")]
        );
    }
}
