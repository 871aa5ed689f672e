//! The watch stage: turns file-system events into [`ChangeSet`]s, one per burst of changes.
//!
//! Every directory that is not ignored gets its own non-recursive inotify watch, placed by our
//! own walk (notify's recursive mode would also watch `target/` and `node_modules/`). New
//! directories are walked and watched as they appear. Events pass through the [`Filter`] and
//! collect until no relevant event has arrived for the debounce window: one trailing quiet window
//! over all paths, however long the burst lasts. When nothing happens, nothing runs: notify's
//! thread sleeps in `poll`, and this stage's own thread sleeps in `recv` with no timer.
//!
//! This stage never spawns a process and never decides what a change means.

mod filter;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use notify::event::{CreateKind, ModifyKind, RemoveKind};
use notify::{EventKind, RecursiveMode};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use crate::config::WatchConfig;
pub(crate) use filter::Filter;

/// The files that changed in one burst, sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    pub paths: Vec<PathBuf>,
}

impl ChangeSet {
    /// "src/main.rs" or "src/main.rs and 41 more", relative to `root`.
    pub fn summary(&self, root: &Path) -> String {
        let first = self.paths.first().map_or_else(String::new, |p| {
            p.strip_prefix(root).unwrap_or(p).display().to_string()
        });
        match self.paths.len() {
            0 | 1 => first,
            n => format!("{first} and {} more", n - 1),
        }
    }
}

/// Start watching. Watches are in place when this returns, so no change made after it is
/// missed. Fails when a watch cannot be placed at all (e.g. the inotify limit).
/// `newer_change` is woken (`notify_waiters`) with every change set handed over, for whoever
/// waits on something the change makes stale.
pub fn start(
    config: WatchConfig,
    newer_change: Arc<Notify>,
) -> Result<(mpsc::Receiver<ChangeSet>, usize)> {
    let (raw_tx, raw_rx) = std::sync::mpsc::channel();
    let handler = move |event| {
        let _ = raw_tx.send(event);
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

    let (roots, files): (Vec<_>, Vec<_>) = config.paths.iter().cloned().partition(|p| p.is_dir());
    let mut stage = WatchStage {
        watcher,
        filter: Filter::new(config.filter),
        roots,
        files: files.into_iter().collect(),
        watched: HashSet::new(),
        pending: BTreeMap::new(),
        event_creates: false,
        seen_change: false,
        debounce: config.debounce,
    };
    for root in stage.roots.clone() {
        stage.watch_tree(&root, false)?;
    }
    for file in stage.files.clone() {
        let parent = file.parent().unwrap_or(Path::new("/")).to_owned();
        if !stage.watched.contains(&parent) {
            stage.add_watch(&parent)?;
        }
    }
    tracing::debug!(directories = stage.watched.len(), "watches placed");
    let count = stage.watched.len();
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || stage.run(raw_rx, &tx, &newer_change))
        .context("cannot start the watch thread")?;
    Ok((rx, count))
}

struct WatchStage {
    watcher: Box<dyn notify::Watcher + Send>,
    filter: Filter,
    /// Watched trees.
    roots: Vec<PathBuf>,
    /// Single files given with --watch; their parent directory is watched for them alone.
    files: HashSet<PathBuf>,
    watched: HashSet<PathBuf>,
    /// Changed paths, each with whether this burst created it (see `take_changes`).
    pending: BTreeMap<PathBuf, bool>,
    /// Whether the event being handled creates its paths.
    event_creates: bool,
    /// Whether the event being handled held a relevant change.
    seen_change: bool,
    debounce: Duration,
}

impl WatchStage {
    /// The stage's thread. It blocks in `recv` while nothing happens (no timer, no wake-up) and
    /// in `recv_timeout` while a burst is pending: a futex wait, precise to tens of
    /// microseconds, where tokio's timer wheel would round the quiet window up to its next
    /// millisecond tick.
    fn run(
        mut self,
        raw: std::sync::mpsc::Receiver<notify::Result<notify::Event>>,
        changes: &mpsc::Sender<ChangeSet>,
        newer_change: &Notify,
    ) {
        use std::sync::mpsc::RecvTimeoutError;
        let mut deadline: Option<Instant> = None;
        loop {
            let event = match deadline {
                None => raw.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => raw.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match event {
                Ok(event) => {
                    self.seen_change = false;
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
                    // Before the hand-over: whoever waits now (a server warming up) waits for
                    // something older than this change. Woken after it, a wait begun for this
                    // very change would give way to itself.
                    newer_change.notify_waiters();
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
        self.pending.entry(path).or_insert(self.event_creates);
    }

    /// The burst's changes, without the files it both created and removed: a tool's temporary
    /// file (`sed -i`'s, an editor's) is not a change, and a burst of only those is no change.
    fn take_changes(&mut self) -> Option<ChangeSet> {
        let paths: Vec<PathBuf> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|(path, created)| !created || std::fs::symlink_metadata(path).is_ok())
            .map(|(path, _)| path)
            .collect();
        if paths.is_empty() {
            tracing::debug!("only short-lived files came and went");
            return None;
        }
        Some(ChangeSet { paths })
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
            return;
        }
        let known_file = matches!(
            event.kind,
            EventKind::Create(CreateKind::File)
                | EventKind::Modify(ModifyKind::Data(_))
                | EventKind::Remove(RemoveKind::File)
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
            } else if path.is_dir() {
                self.on_directory(&path);
            } else if self.watched.remove(&path) {
                // A watched directory was removed or renamed away: its files are gone.
                let _ = self.watcher.unwatch(&path);
                self.record(path);
            } else {
                self.on_file(path);
            }
        }
    }

    fn on_file(&mut self, path: PathBuf) {
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

    /// Walk `top`, placing a watch on every directory that is not ignored. With `collect`, the
    /// relevant files found are recorded as changes.
    fn watch_tree(&mut self, top: &Path, collect: bool) -> Result<()> {
        let mut stack = vec![top.to_owned()];
        while let Some(dir) = stack.pop() {
            self.filter.load_ignore_files(&dir);
            let watch = if self.watched.contains(&dir) {
                Ok(())
            } else {
                self.add_watch(&dir)
            };
            match watch {
                Ok(()) => {}
                // Gone already (a short-lived temp dir): nothing to watch.
                Err(err) if !dir.exists() => {
                    tracing::debug!(dir = %dir.display(), %err, "directory vanished");
                    continue;
                }
                Err(err) => return Err(err),
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
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

    fn add_watch(&mut self, dir: &Path) -> Result<()> {
        self.watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|err| explain(err, Some(dir)))?;
        self.watched.insert(dir.to_owned());
        Ok(())
    }
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
        _ => anyhow!("{err}{place}"),
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
        };
        assert_eq!(changes.summary(Path::new("/p")), "src/a.rs and 1 more");
    }
}
