//! The sweep: what left one of reload's process groups (`setsid`, a daemonizing server) is
//! found, attributed and killed once the group it came from has ended.
//!
//! reload is a child subreaper ([`adopt_orphans`]), so such a process is re-parented to reload
//! when its parent exits. Every process reload starts carries [`ORIGIN_VARIABLE`], inherited by
//! its descendants, and a registry of live and ended groups by tag says what each mark means.
//! Adopted processes are not tokio's: this module is the only place that reaps them, and it never
//! touches the leader of a live group. It reports what it killed as typed values
//! ([`Notice::Swept`]); the words are status's.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::{Command, Notice, Origin, guard, report};

/// Who left a process running outside its group, as a sweep reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeftBy {
    Build,
    Post(String),
    /// The app whose leader had this pid.
    App {
        pid: u32,
    },
    /// A group ended so long ago that the registry forgot it.
    Earlier,
    /// A process without the mark (its environment was replaced), when nothing of reload's runs.
    Unknown,
}

/// A process a sweep killed: its pid and command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escapee {
    pub pid: i32,
    pub name: String,
}

/// What a sweep killed, by who left it running.
pub type Swept = BTreeMap<LeftBy, Vec<Escapee>>;

/// Make reload the parent of its descendants' orphans (Linux: PR_SET_CHILD_SUBREAPER). A process
/// that leaves its server's group (setsid, a daemonizing server) is then re-parented to reload
/// instead of init when its parent exits, so [`sweep`] can still find and stop it.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        report(Notice::CannotAdopt(err));
    }
}

/// The environment variable that marks every process reload starts (and, by inheritance, its
/// descendants) with the group it was started in: `<reload's pid>.<tag>`. A process that left its
/// group keeps it, which is how an escapee is attributed to the build, post command or app it
/// came from, and why one is swept only once that group has ended.
const ORIGIN_VARIABLE: &str = "RELOAD_ORIGIN";

/// One group reload started.
struct Group {
    /// Its leader, whose pid is the group's id.
    leader: u32,
    /// Who it is, in reports of what it left behind.
    left_by: LeftBy,
}

impl Group {
    fn holds(&self, child: &ChildInfo) -> bool {
        i32::try_from(self.leader) == Ok(child.pgid)
    }
}

/// Groups alive and ended, by tag.
struct Registry {
    next_tag: u64,
    live: BTreeMap<u64, Group>,
    /// For attributing what ended groups left behind; the oldest are forgotten.
    ended: BTreeMap<u64, Group>,
}

impl Registry {
    fn end(&mut self, tag: u64) {
        if let Some(group) = self.live.remove(&tag) {
            self.ended.insert(tag, group);
            while self.ended.len() > 1024 {
                self.ended.pop_first();
            }
        }
    }

    /// Leaders of live groups are tokio's children: never reaped or swept here.
    fn is_leader(&self, pid: u32) -> bool {
        self.live.values().any(|group| group.leader == pid)
    }

    /// What a sweep of `scope` does with `child`, one of reload's adopted children.
    fn verdict(&self, child: &ChildInfo, scope: Sweep) -> Verdict {
        if child.zombie || self.live.values().any(|group| group.holds(child)) {
            return Verdict::Keep;
        }
        if self.ended.values().any(|group| group.holds(child)) {
            return Verdict::KillQuietly;
        }
        let left_by = |group: &Group| Verdict::Escaped(group.left_by.clone());
        match origin_tag(child.pid) {
            // Its group still runs (a server's helper daemon): it goes with it.
            Some(tag) if scope == Sweep::Ended && self.live.contains_key(&tag) => Verdict::Keep,
            Some(tag) => self
                .live
                .get(&tag)
                .or_else(|| self.ended.get(&tag))
                .map_or(Verdict::Escaped(LeftBy::Earlier), left_by),
            // No mark (its environment was replaced): only when nothing of ours runs can it not
            // belong to a live group.
            None if scope == Sweep::Ended && !self.live.is_empty() => Verdict::Keep,
            None => Verdict::Escaped(LeftBy::Unknown),
        }
    }
}

/// What a [`sweep`] does with one adopted process.
enum Verdict {
    /// A zombie (reaped, not counted), a member of a live group, or an escapee whose group
    /// still runs.
    Keep,
    /// Still in a group that was killed but did not die within the grace period: not an
    /// escapee, but it must go all the same.
    KillQuietly,
    /// Left a group; killed and reported as left behind by this.
    Escaped(LeftBy),
}

static REGISTRY: std::sync::Mutex<Registry> = std::sync::Mutex::new(Registry {
    next_tag: 0,
    live: BTreeMap::new(),
    ended: BTreeMap::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Mark `command` with a new tag ([`ORIGIN_VARIABLE`]) before it is spawned; the tag is then
/// [`started`] and [`ended`] with its group.
pub(super) fn mark(command: &mut Command) -> u64 {
    let tag = {
        let mut registry = registry();
        registry.next_tag += 1;
        registry.next_tag
    };
    command.env(ORIGIN_VARIABLE, format!("{}.{tag}", std::process::id()));
    tag
}

/// The group tagged `tag` runs, led by `leader`, for `origin`.
pub(super) fn started(tag: u64, leader: u32, origin: Origin) {
    let left_by = match origin {
        Origin::Build => LeftBy::Build,
        Origin::Post(command) => LeftBy::Post(command),
        Origin::App => LeftBy::App { pid: leader },
    };
    registry().live.insert(tag, Group { leader, left_by });
}

/// The group tagged `tag` has ended: what it left behind may be swept.
pub(super) fn ended(tag: u64) {
    registry().end(tag);
}

/// Which escaped processes a [`sweep`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Those whose group has ended: the build, post command or app they left is gone.
    Ended,
    /// All of them: reload is exiting.
    All,
}

/// What the kernel says of one of reload's children.
struct ChildInfo {
    pid: i32,
    zombie: bool,
    pgid: i32,
    name: String,
}

/// Every child of reload (all threads') that `wanted` accepts by pid, with its state. Linux
/// only (`/proc/self/task`); elsewhere reload adopts nothing and this finds nothing. The filter
/// comes before each child's `/proc/PID/stat` is read: a sweep runs several times per restart,
/// and the children it never touches (the guardian, the servers and builds running) are most.
fn children(wanted: impl Fn(i32) -> bool) -> Vec<ChildInfo> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter(|&pid| wanted(pid))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (name) state ppid pgrp ...`; the name may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(').map_or("", |(_, n)| n).to_owned();
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let pgid = fields.nth(1)?.parse().ok()?;
            Some(ChildInfo {
                pid,
                zombie: matches!(state, "Z" | "X"),
                pgid,
                name,
            })
        })
        .collect()
}

/// Children reload did not spawn itself (nor the guardian): adopted, since reload is a
/// subreaper (see [`adopt_orphans`]).
fn adopted() -> Vec<ChildInfo> {
    let guardian = guard::pid();
    let registry = registry();
    children(|pid| {
        let pid = u32::try_from(pid).unwrap_or_default();
        !registry.is_leader(pid) && Some(pid) != guardian
    })
}

/// Reap adopted children that have exited. They are not tokio's: nobody else will.
pub(super) fn reap_adopted_zombies() {
    let zombies: Vec<_> = adopted().into_iter().filter(|child| child.zombie).collect();
    reap_zombies(&zombies);
}

fn reap_zombies(zombies: &[ChildInfo]) {
    for child in zombies {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(child.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
}

/// The group `pid` was started in, from its [`ORIGIN_VARIABLE`]: `None` when it has none, or
/// one from another reload.
fn origin_tag(pid: i32) -> Option<u64> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{ORIGIN_VARIABLE}={}.", std::process::id());
    environ
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .and_then(|tag| std::str::from_utf8(tag).ok()?.parse().ok())
}

/// SIGKILL and reap every process that left one of reload's groups (setsid, a daemonizing
/// server) and was adopted by reload (see [`adopt_orphans`]), whose own group has ended (or
/// all of them, with [`Sweep::All`]); see [`Registry::verdict`]. Repeats until a round finds
/// nothing: killing an escapee re-parents the escapees it started in turn. Returns what was
/// killed, by who left it.
pub fn sweep(scope: Sweep) -> Swept {
    let mut killed = Swept::new();
    // A fork bomb must not keep reload here forever.
    for _ in 0..64 {
        let mut round = Vec::new();
        // One read of /proc a round: the zombies are reaped, the rest judged.
        let (zombies, live): (Vec<_>, Vec<_>) = adopted().into_iter().partition(|c| c.zombie);
        reap_zombies(&zombies);
        for child in live {
            let verdict = registry().verdict(&child, scope);
            let pid = Pid::from_raw(child.pid);
            match verdict {
                Verdict::Keep => continue,
                Verdict::KillQuietly => {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                }
                Verdict::Escaped(left_by) => {
                    // A session leader leads its own group too: take the group, then the process.
                    let _ = killpg(pid, Signal::SIGKILL);
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    let escapee = Escapee {
                        pid: child.pid,
                        name: child.name,
                    };
                    killed.entry(left_by).or_default().push(escapee);
                }
            }
            round.push(child.pid);
        }
        if round.is_empty() {
            break;
        }
        reap(&round);
    }
    killed
}

/// Wait for SIGKILLed adopted processes to exit, and reap them. SIGKILL is quick, but a process
/// stuck in the kernel (a dead NFS mount) must not hang reload: give up after 2 s.
fn reap(pids: &[i32]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for &pid in pids {
        let pid = Pid::from_raw(pid);
        while let Ok(nix::sys::wait::WaitStatus::StillAlive) =
            nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            if std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// [`sweep`], and report what was killed and where it came from ([`Notice::Swept`]).
pub fn sweep_and_report(scope: Sweep) {
    let swept = sweep(scope);
    if !swept.is_empty() {
        report(Notice::Swept(swept));
    }
}
