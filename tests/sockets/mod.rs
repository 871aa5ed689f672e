//! Zero-downtime restarts, pinned end to end: reload holds the listening sockets (`--listen`) for
//! its whole life and hands them to every server by the systemd socket-activation protocol, waits
//! for the new server to be ready (`--ready`), and with `--overlap` lets the old server answer
//! until the new one is ready.
//!
//! The server is the real `examples/hello_server` (it answers `hello from pid N (version V)`), or
//! a python3 script where a test needs to look at exactly what a server inherits. A [`Client`]
//! thread requests continuously while the test restarts the server by saving `trigger.txt`: every
//! connect and every response must succeed. Latencies are measured and printed (run with
//! `--nocapture` to see them), never asserted: a loaded machine may make anything slow, but it
//! must never make a request fail.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::needs::{Tool, require};
use crate::support::{Project, Session, alive, free_port};

/// How long a single request may take before it counts as failed: far beyond any restart.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A pause between the client's requests, so that it samples every moment of a restart without
/// monopolising a core of a shared machine.
const CLIENT_PAUSE: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// The servers

/// `examples/hello_server`. A plain `cargo test` builds it along with the tests; a run limited to
/// this test binary (`cargo test --test tests`) neither builds nor rebuilds it.
#[track_caller]
fn hello_server() -> String {
    let path = Path::new(env!("CARGO_BIN_EXE_reload"))
        .parent()
        .expect("the reload binary has a directory")
        .join("examples/hello_server");
    assert!(
        path.is_file(),
        "{} does not exist: the socket tests run the example server. Build it with \
         `cargo build --example hello_server` (plain `cargo test` builds it too; \
         `cargo test --test tests` alone does not)",
        path.display()
    );
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// The real python3 interpreter. `python3` on PATH may be a version manager's shim (pyenv's is a
/// bash script); going through it would be slow and would put more programs between reload's
/// exec and the server.
#[track_caller]
fn python() -> String {
    static PYTHON: OnceLock<String> = OnceLock::new();
    require(Tool::Python3);
    PYTHON
        .get_or_init(|| {
            let output = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .unwrap_or_else(|err| panic!("cannot run python3: {err}"));
            assert!(output.status.success(), "python3 failed: {output:?}");
            String::from_utf8(output.stdout)
                .expect("a UTF-8 path")
                .trim()
                .to_owned()
        })
        .clone()
}

/// A project whose only content is the file the tests save to restart the server.
fn triggered_project() -> Project {
    Project::new().file("trigger.txt", "0\n")
}

/// Restart the server: save `trigger.txt` the way editors do, as one rename (see `-e txt`).
fn trigger(project: &Project, n: usize) {
    project.save_atomically("trigger.txt", &format!("{n}\n"));
}

/// Wait until something answers on `port`, and return the pid that did.
#[track_caller]
fn wait_for_answer(session: &Session, port: u16) -> u32 {
    session.wait_until(&format!("the server to answer on port {port}"), || {
        get(port).ok().map(|answer| answer.pid)
    })
}

/// The notify sockets reload holds now.
fn notify_sockets(reload: i32) -> Vec<PathBuf> {
    // The sockets reload holds (`socket:[INODE]` links in /proc/PID/fd), by the path each is
    // bound to (/proc/net/unix): reload makes them in a private directory of its own.
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{reload}/fd"))
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter_map(|entry| fs::read_link(entry.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut found: Vec<PathBuf> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (inode, path) = (fields.get(6)?, fields.get(7)?);
            (inodes.iter().any(|held| held == inode) && path.ends_with(".notify"))
                .then(|| PathBuf::from(path))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// What hello_server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    pid: u32,
    version: String,
}

/// One `GET /` on 127.0.0.1:`port`. Every step must succeed: a refused or reset connection, a
/// timeout or anything but hello_server's 200 is a failure, described.
fn get(port: u16) -> Result<Answer, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, REQUEST_TIMEOUT)
        .map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|err| format!("set timeouts: {err}"))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|err| format!("send: {err}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|err| format!("receive: {err} (after {} bytes)", response.len()))?;
    let response = String::from_utf8_lossy(&response);
    let parsed = response.split_once("\r\n\r\n").and_then(|(head, body)| {
        if !head.starts_with("HTTP/1.1 200 ") {
            return None;
        }
        let rest = body.trim_end().strip_prefix("hello from pid ")?;
        let (pid, version) = rest.split_once(" (version ")?;
        Some(Answer {
            pid: pid.parse().ok()?,
            version: version.strip_suffix(')')?.to_owned(),
        })
    });
    parsed.ok_or_else(|| format!("unexpected response {response:?}"))
}

/// One request the client made.
#[derive(Debug)]
struct Request {
    /// When it began, from the client's start.
    at: Duration,
    latency: Duration,
    outcome: Result<Answer, String>,
}

/// A thread that requests `GET /` back to back until stopped, and records every outcome.
struct Client {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let at = started.elapsed();
                    let outcome = get(port);
                    let latency = started.elapsed().checked_sub(at).unwrap();
                    lock(&log).push(Request {
                        at,
                        latency,
                        outcome,
                    });
                    thread::sleep(CLIENT_PAUSE);
                }
            })
        };
        Client {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The pid of the latest successful answer.
    fn latest_pid(&self) -> Option<u32> {
        lock(&self.log)
            .iter()
            .rev()
            .find_map(|request| request.outcome.as_ref().ok().map(|answer| answer.pid))
    }

    /// Stop after the request in flight, and hand over everything recorded.
    fn finish(mut self) -> Traffic {
        self.halt();
        Traffic {
            requests: std::mem::take(&mut *lock(&self.log)),
        }
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the client thread does not panic");
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the client saw.
struct Traffic {
    requests: Vec<Request>,
}

impl Traffic {
    fn failures(&self) -> Vec<&Request> {
        self.requests
            .iter()
            .filter(|request| request.outcome.is_err())
            .collect()
    }

    fn answers(&self) -> impl Iterator<Item = &Answer> {
        self.requests
            .iter()
            .filter_map(|request| request.outcome.as_ref().ok())
    }

    /// The answering pid of every successful request, consecutive repeats collapsed.
    fn pid_runs(&self) -> Vec<u32> {
        let mut runs: Vec<u32> = Vec::new();
        for answer in self.answers() {
            if runs.last() != Some(&answer.pid) {
                runs.push(answer.pid);
            }
        }
        runs
    }

    /// The pids that answered, in the order they first answered.
    fn generations(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = Vec::new();
        for answer in self.answers() {
            if !pids.contains(&answer.pid) {
                pids.push(answer.pid);
            }
        }
        pids
    }

    fn worst_latency(&self) -> Duration {
        self.requests
            .iter()
            .map(|request| request.latency)
            .max()
            .unwrap_or_default()
    }

    /// Failures first (at most 20), for assertion messages.
    fn describe(&self) -> String {
        let failures = self.failures();
        let mut text = format!(
            "\n--- client: {} requests, {} failed, worst latency {:?}, pids {:?} ---",
            self.requests.len(),
            failures.len(),
            self.worst_latency(),
            self.pid_runs()
        );
        for failure in failures.iter().take(20) {
            text.push_str(&format!(
                "\nat {:?} after {:?}: {}",
                failure.at,
                failure.latency,
                failure.outcome.as_ref().err().map_or("", String::as_str)
            ));
        }
        text
    }

    /// The measured figures, printed for the record (`cargo test -- --nocapture`).
    fn report(&self, mode: &str) {
        let mut latencies: Vec<Duration> = self.requests.iter().map(|r| r.latency).collect();
        latencies.sort();
        let percentile = |p: usize| {
            latencies
                .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        eprintln!(
            "[figures] {mode}: {} requests, {} failed, latency p50 {:?}, p99 {:?}, worst {:?}",
            self.requests.len(),
            self.failures().len(),
            percentile(50),
            percentile(99),
            self.worst_latency()
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[track_caller]
fn assert_no_failed_request(session: &Session, traffic: &Traffic) {
    assert!(
        !traffic.requests.is_empty() && traffic.failures().is_empty(),
        "every request must succeed{}{}",
        traffic.describe(),
        session.context()
    );
}

// ---------------------------------------------------------------------------------------------
// Restarts under traffic

#[test]
fn stop_then_start_restarts_lose_no_request() {
    let project = triggered_project();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = hello_server();
    let session = project.start(&[
        "--build", "", "-e", "txt", "--listen", &listen, "--", &server,
    ]);
    let mut current = wait_for_answer(&session, port);
    session.wait_for_stderr(&format!("listening on {listen}"));

    let client = Client::start(port);
    for restart in 1..=20 {
        trigger(&project, restart);
        current = session.wait_until(&format!("restart {restart}: a new pid to answer"), || {
            client.latest_pid().filter(|&pid| pid != current)
        });
        session.wait_for_stderr_count("restarted (pid ", restart);
    }
    let traffic = client.finish();
    traffic.report("stop-then-start, 20 restarts");

    assert_no_failed_request(&session, &traffic);
    let runs = traffic.pid_runs();
    assert_eq!(
        runs.len(),
        21,
        "the answering pid changed 20 times{}{}",
        traffic.describe(),
        session.context()
    );
    assert_eq!(
        traffic.generations(),
        runs,
        "no server answered again once its successor had{}",
        traffic.describe()
    );
}

#[test]
fn overlapping_restarts_keep_the_old_server_answering_until_the_new_one_is_ready() {
    let project = triggered_project();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = hello_server();
    let session = project.start_with_env(
        &[
            "--build",
            "",
            "-e",
            "txt",
            "--listen",
            &listen,
            "--overlap",
            "--ready",
            "notify",
            "--",
            &server,
        ],
        &[("WARMUP_MS", "300")],
    );
    let mut current = wait_for_answer(&session, port);

    let client = Client::start(port);
    for restart in 1..=5 {
        trigger(&project, restart);
        current = session.wait_until(&format!("restart {restart}: a new pid to answer"), || {
            client.latest_pid().filter(|&pid| pid != current)
        });
        // The old server is stopped (and reaped) before reload reports the restart.
        session.wait_for_stderr_count("restarted (pid ", restart);
    }
    let traffic = client.finish();
    traffic.report("--overlap --ready notify, WARMUP_MS=300, 5 restarts");

    assert_no_failed_request(&session, &traffic);
    let generations = traffic.generations();
    assert_eq!(
        generations.len(),
        6,
        "six servers answered in turn{}{}",
        traffic.describe(),
        session.context()
    );
    // Only the old and the new server ever answer: never one two generations back.
    let mut newest = 0;
    for answer in traffic.answers() {
        let generation = generations
            .iter()
            .position(|&pid| pid == answer.pid)
            .expect("a pid that answered");
        assert!(
            generation + 1 >= newest,
            "pid {} answered after pid {} had{}",
            answer.pid,
            generations[newest],
            traffic.describe()
        );
        newest = newest.max(generation);
    }
    // The last server replaced drains while the client stops: wait for its word (stopped, it
    // drains with no deadline but reload's stop timeout) before counting.
    session.wait_for_stderr_count("hello_server: drained", 5);
    // Each replacement was announced by reload as old -> new, in the order the client saw.
    let stderr = session.stderr();
    for pair in generations.windows(2) {
        let line = format!("restarted (pid {} -> {})", pair[0], pair[1]);
        assert!(
            stderr.contains(&line),
            "expected {line:?}{}",
            session.context()
        );
    }
    // Overlap: each new server said it was listening (just before READY=1) while the old one
    // still ran; the old one only drained after that. Without --overlap every "drained" would
    // come before the next "listening".
    let mut listening = 0;
    let mut drained = 0;
    for line in stderr.lines() {
        if line.starts_with("hello_server: pid ") && line.contains(" listening on ") {
            listening += 1;
        } else if line.starts_with("hello_server: drained") {
            drained += 1;
            assert!(
                listening > drained,
                "server {drained} drained before its successor was listening{}",
                session.context()
            );
        }
    }
    assert_eq!(
        drained,
        5,
        "every replaced server drained{}",
        session.context()
    );
}

/// A server script: the nth start (counted in `starts`) runs hello_server, unless `[ n HANG ]`
/// holds (e.g. `-ge 2`), when it never becomes ready (it just sleeps).
fn app_hanging_when(project: &Project, server: &str, hang: &str) -> String {
    let starts = project.scratch("starts");
    let script = project.scratch("app.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo $$ >> '{starts}'\n\
             if [ \"$(wc -l < '{starts}')\" {hang} ]; then exec sleep 1000; fi\n\
             exec '{server}'\n",
            starts = starts.display(),
        ),
    )
    .expect("write app.sh");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod app.sh");
    script.to_str().expect("a UTF-8 path").to_owned()
}

#[test]
fn a_new_server_that_never_becomes_ready_never_replaces_the_old_one() {
    let project = triggered_project();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let app = app_hanging_when(&project, &hello_server(), "-ge 2");
    let session = project.start(&[
        "--build",
        "",
        "-e",
        "txt",
        "--listen",
        &listen,
        "--overlap",
        "--ready",
        "notify",
        "--ready-timeout",
        "2s",
        "--",
        &app,
    ]);
    let old = wait_for_answer(&session, port);
    session.wait_for_stderr(&format!("started (pid {old})"));

    let client = Client::start(port);
    trigger(&project, 1);
    let never_ready = session.wait_until("the second start", || {
        project.scratch_pids("starts").get(1).copied()
    });
    session.track(never_ready);
    session.wait_for_stderr("keeps serving");
    // A few more answers after the new server was given up on.
    let seen = lock(&client.log).len();
    session.wait_for("more requests after the failed restart", || {
        lock(&client.log).len() >= seen + 20
    });
    let traffic = client.finish();
    traffic.report("--overlap, a new server never ready (--ready-timeout 2s)");

    assert_no_failed_request(&session, &traffic);
    assert_eq!(
        traffic.pid_runs(),
        [old],
        "only the old server answered{}{}",
        traffic.describe(),
        session.context()
    );
    let stderr = session.stderr();
    for expected in [
        format!("new app (pid {never_ready}) was not ready within 2"),
        format!("pid {old} keeps serving"),
    ] {
        assert!(
            stderr.contains(&expected),
            "expected {expected:?}{}",
            session.context()
        );
    }
    session.wait_dead("the server that never became ready", never_ready);
    assert!(
        alive(i32::try_from(old).expect("pid fits in i32")),
        "the old server still runs{}",
        session.context()
    );
    assert_eq!(get(port).map(|answer| answer.pid), Ok(old));
    assert_eq!(
        notify_sockets(session.pid()).len(),
        1,
        "the given-up server's notify socket is removed, the old one's is kept{}",
        session.context()
    );
}

// ---------------------------------------------------------------------------------------------
// What a server and a build inherit

/// A server that reports what it inherited, as `key=value` lines in `../scratch/server-<pid>`,
/// then waits. It checks LISTEN_PID against its own pid like go-systemd and libsystemd do.
const INSPECT_SERVER: &str = r#"
import fcntl, os, socket, stat, sys, time

def describe(fd):
    try:
        st = os.fstat(fd)
    except OSError:
        return "closed"
    if not stat.S_ISSOCK(st.st_mode):
        return "not a socket"
    cloexec = "yes" if fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC else "no"
    s = socket.socket(fileno=os.dup(fd))
    try:
        listening = "listening" if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) else "not-listening"
        address = s.getsockname()
        if isinstance(address, tuple):
            address = "%s:%d" % address[:2]
        return "%s %s %s cloexec=%s address=%s inode=%d" % (
            s.family.name, s.type.name, listening, cloexec, address, st.st_ino)
    finally:
        s.close()

def socket_fds():
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + name).startswith("socket:"):
                found.append(int(name))
        except OSError:
            pass
    return ",".join(str(fd) for fd in sorted(found))

env = lambda key: os.environ.get(key, "<unset>")
lines = [
    "pid_matches=%s" % ("yes" if env("LISTEN_PID") == str(os.getpid()) else "no: LISTEN_PID=%s, pid %d" % (env("LISTEN_PID"), os.getpid())),
    "LISTEN_FDS=" + env("LISTEN_FDS"),
    "LISTEN_FDNAMES=" + env("LISTEN_FDNAMES"),
    "NOTIFY_SOCKET=" + env("NOTIFY_SOCKET"),
    "RELOAD=" + env("RELOAD"),
    "fd3=" + describe(3),
    "fd4=" + describe(4),
    "socket_fds=" + socket_fds(),
]
scratch = sys.argv[1]
path = os.path.join(scratch, "server-%d" % os.getpid())
with open(path + ".new", "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(path + ".new", path)
time.sleep(1000)
"#;

/// A build that reports its open descriptors and protocol variables in
/// `../scratch/build-<pid>`.
const INSPECT_BUILD: &str = r#"
import os, sys
lines = []
for name in sorted(os.listdir("/proc/self/fd"), key=int):
    try:
        lines.append("fd%s=%s" % (name, os.readlink("/proc/self/fd/" + name)))
    except OSError:
        pass
for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"):
    lines.append("%s=%s" % (key, os.environ.get(key, "<unset>")))
path = os.path.join(sys.argv[1], "build-%d" % os.getpid())
with open(path + ".new", "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(path + ".new", path)
"#;

/// Stale protocol variables in reload's own environment, as if reload itself had been started
/// by a socket-activating supervisor. None of them may reach a server.
const STALE: &[(&str, &str)] = &[
    ("LISTEN_FDS", "7"),
    ("LISTEN_PID", "1"),
    ("LISTEN_FDNAMES", "stale"),
    ("NOTIFY_SOCKET", "/nonexistent/stale.notify"),
];

/// The `key=value` reports (`server-<pid>` or `build-<pid>`) in the scratch directory, oldest
/// pid first is not guaranteed: sorted by modification time.
fn reports(project: &Project, kind: &str) -> Vec<(String, Vec<String>)> {
    let scratch = project.scratch("");
    let prefix = format!("{kind}-");
    let mut found: Vec<(std::time::SystemTime, String, Vec<String>)> = fs::read_dir(&scratch)
        .expect("read the scratch directory")
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            if !name.starts_with(&prefix)
                || std::path::Path::new(&name)
                    .extension()
                    .is_some_and(|ext| ext == "new")
            {
                return None;
            }
            let modified = entry.metadata().ok()?.modified().ok()?;
            let text = fs::read_to_string(entry.path()).ok()?;
            Some((modified, name, text.lines().map(str::to_owned).collect()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(_, name, lines)| (name, lines))
        .collect()
}

/// The value of `key` in a report.
fn field<'r>(report: &'r [String], key: &str) -> &'r str {
    let prefix = format!("{key}=");
    report
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or("<missing>")
}

/// Start reload with the inspecting build and server on a TCP and a named unix socket, with
/// stale protocol variables in its environment.
fn start_inspected<'p>(project: &'p Project, port: u16, unix: &Path) -> Session<'p> {
    let scratch = project.scratch("");
    let scratch = scratch.to_str().expect("a UTF-8 path");
    // In the root rather than the scratch directory, out of failure messages (which show the
    // scratch files); `-e txt` keeps them from counting as changes.
    project.write("inspect_server.py", INSPECT_SERVER);
    project.write("inspect_build.py", INSPECT_BUILD);
    let python = python();
    let build = format!("'{python}' inspect_build.py '{scratch}'");
    project.start_with_env(
        &[
            "--build",
            &build,
            "-e",
            "txt",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--listen",
            &format!("api=unix:{}", unix.display()),
            "--",
            &python,
            "inspect_server.py",
            scratch,
        ],
        STALE,
    )
}

#[test]
fn a_server_checking_listen_pid_gets_each_socket_once_at_fds_3_and_4_without_cloexec() {
    let project = triggered_project();
    let port = free_port();
    let unix = project.scratch("api.sock");
    let session = start_inspected(&project, port, &unix);
    let first = session.wait_until("the server's report", || {
        reports(&project, "server").into_iter().next()
    });
    let (name, report) = &first;
    let context = || {
        format!(
            "\n--- {name} ---\n{}{}",
            report.join("\n"),
            session.context()
        )
    };

    assert_eq!(
        field(report, "pid_matches"),
        "yes",
        "LISTEN_PID is the server's own pid{}",
        context()
    );
    assert_eq!(field(report, "LISTEN_FDS"), "2", "{}", context());
    assert_eq!(
        field(report, "LISTEN_FDNAMES"),
        format!("127.0.0.1_{port}:api"),
        "an unnamed socket is named after its address, ':' replaced by '_'{}",
        context()
    );
    assert_eq!(
        field(report, "NOTIFY_SOCKET"),
        "<unset>",
        "no stale NOTIFY_SOCKET without --ready notify{}",
        context()
    );
    assert_eq!(field(report, "RELOAD"), "1", "{}", context());
    let fd3 = field(report, "fd3");
    assert!(
        fd3.starts_with(&format!(
            "AF_INET SOCK_STREAM listening cloexec=no address=127.0.0.1:{port} "
        )),
        "fd 3 is the TCP listener, inheritable{}",
        context()
    );
    let fd4 = field(report, "fd4");
    assert!(
        fd4.starts_with(&format!(
            "AF_UNIX SOCK_STREAM listening cloexec=no address={} ",
            unix.display()
        )),
        "fd 4 is the unix listener, inheritable{}",
        context()
    );
    assert_eq!(
        field(report, "socket_fds"),
        "3,4",
        "each socket arrives exactly once, no other socket leaks to the server{}",
        context()
    );

    // The sockets are reload's, bound before any server accepts: connections queue.
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the TCP listener");
    UnixStream::connect(&unix).expect("connect to the unix listener");

    // The next server gets the very same sockets (the same inodes): held, not bound again.
    trigger(&project, 1);
    let second = session.wait_until("the second server's report", || {
        reports(&project, "server")
            .into_iter()
            .find(|(other, _)| other != name)
    });
    let (_, again) = &second;
    assert_eq!(field(again, "pid_matches"), "yes", "{}", context());
    assert_eq!(field(again, "fd3"), fd3, "the same TCP socket{}", context());
    assert_eq!(
        field(again, "fd4"),
        fd4,
        "the same unix socket{}",
        context()
    );
    assert_eq!(field(again, "socket_fds"), "3,4", "{}", context());
}

#[test]
fn the_build_never_receives_the_listening_sockets() {
    let project = triggered_project();
    let port = free_port();
    let unix = project.scratch("api.sock");
    let session = start_inspected(&project, port, &unix);
    session.wait_until("the first server's report", || {
        reports(&project, "server").into_iter().next()
    });
    // A second build, after a server has run with the sockets.
    trigger(&project, 1);
    session.wait_until("the second server's report", || {
        reports(&project, "server").get(1).cloned()
    });

    let builds = reports(&project, "build");
    assert_eq!(builds.len(), 2, "two builds ran{}", session.context());
    for (name, report) in &builds {
        let sockets: Vec<&String> = report
            .iter()
            .filter(|line| line.starts_with("fd") && line.contains("=socket:"))
            .collect();
        assert!(
            sockets.is_empty(),
            "the build has no socket open, got {sockets:?}\n--- {name} ---\n{}{}",
            report.join("\n"),
            session.context()
        );
    }
}

#[test]
fn stale_listen_variables_in_reloads_environment_do_not_reach_the_build() {
    let project = triggered_project();
    let port = free_port();
    let unix = project.scratch("api.sock");
    let session = start_inspected(&project, port, &unix);
    let (name, report) = session.wait_until("the build's report", || {
        reports(&project, "build").into_iter().next()
    });
    for key in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        assert_eq!(
            field(&report, key),
            "<unset>",
            "reload's stale {key} must not reach the build\n--- {name} ---\n{}{}",
            report.join("\n"),
            session.context()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input, and what is left after reload exits

#[test]
fn a_port_in_use_is_a_startup_error_naming_the_address() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = holder.local_addr().expect("local address").to_string();
    let project = triggered_project();
    let finished = project.run_to_exit(&[
        "--build",
        "",
        "-e",
        "txt",
        "--listen",
        &address,
        "--",
        &hello_server(),
    ]);
    assert!(
        finished.status.code().is_some_and(|code| code != 0),
        "reload exits with an error code, got {}\n--- reload stderr ---\n{}",
        finished.status,
        finished.stderr
    );
    assert!(
        finished.stderr.contains(&address),
        "the message names {address}\n--- reload stderr ---\n{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("hello_server:"),
        "no server started\n--- reload stderr ---\n{}",
        finished.stderr
    );
    project.wait_no_processes();
}

#[test]
fn a_malformed_listen_address_is_a_usage_error() {
    let project = triggered_project();
    project
        .run_to_exit(&["--build", "", "--listen", "nonsense", "--", &hello_server()])
        .assert_fails_with(2, &["nonsense", "--listen"]);
    project.wait_no_processes();
}

#[test]
fn a_readiness_url_that_is_not_http_is_a_usage_error() {
    let project = triggered_project();
    project
        .run_to_exit(&[
            "--build",
            "",
            "--listen",
            "0",
            "--ready",
            "ftp://x",
            "--",
            &hello_server(),
        ])
        .assert_fails_with(2, &["ftp://x", "--ready"]);
    project.wait_no_processes();
}

#[test]
fn the_port_socket_file_and_notify_sockets_are_released_when_reload_exits() {
    let project = triggered_project();
    let port = free_port();
    let unix = project.scratch("app.sock");
    let mut session = project.start(&[
        "--build",
        "",
        "-e",
        "txt",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--listen",
        &format!("unix:{}", unix.display()),
        "--ready",
        "notify",
        "--",
        &hello_server(),
    ]);
    let first = wait_for_answer(&session, port);
    trigger(&project, 1);
    session.wait_for_stderr(&format!("restarted (pid {first} -> "));
    wait_for_answer(&session, port);
    let reload = session.pid();
    let notify = notify_sockets(reload);
    assert_eq!(
        notify.len(),
        1,
        "one notify socket, the running server's; the replaced one's is gone{}",
        session.context()
    );
    assert!(
        unix.exists(),
        "the unix socket file exists while reload runs"
    );

    session.terminate();

    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|err| panic!("port {port} is free again: {err}{}", session.context()));
    assert!(
        !unix.exists(),
        "the unix socket file {} is removed{}",
        unix.display(),
        session.context()
    );
    for socket in &notify {
        let dir = socket.parent().expect("a socket in a directory");
        assert!(
            !socket.exists() && !dir.exists(),
            "the notify socket {} and its private directory are removed{}",
            socket.display(),
            session.context()
        );
    }
    session.wait_no_processes();
}

#[test]
fn a_server_still_warming_up_gives_way_to_a_newer_change() {
    let project = triggered_project();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let app = app_hanging_when(&project, &hello_server(), "-eq 2");
    // A ready timeout far beyond the harness's deadline: only giving way can end the wait.
    let session = project.start(&[
        "--build",
        "",
        "-e",
        "txt",
        "--listen",
        &listen,
        "--overlap",
        "--ready",
        "notify",
        "--ready-timeout",
        "10m",
        "--",
        &app,
    ]);
    let old = wait_for_answer(&session, port);

    trigger(&project, 1);
    let warming = session.wait_until("the second start", || {
        project.scratch_pids("starts").get(1).copied()
    });
    session.track(warming);
    trigger(&project, 2);
    let newest = session.wait_until("the third start to answer", || {
        get(port)
            .ok()
            .map(|answer| answer.pid)
            .filter(|pid| *pid != old)
    });

    session.wait_for_stderr(&format!(
        "new app (pid {warming}) gave way to a newer change"
    ));
    session.wait_dead("the server that was still warming up", warming);
    assert_eq!(
        project.scratch_pids("starts").get(2).copied(),
        i32::try_from(newest).ok(),
        "the third start answers{}",
        session.context()
    );
}

#[test]
fn garbage_on_the_notify_socket_is_reported_and_a_later_ready_still_counts() {
    let project = triggered_project();
    let script = project.scratch("notify.py");
    fs::write(
        &script,
        "import os, socket, time\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(b'\\xff\\xfe not a message', os.environ['NOTIFY_SOCKET'])\n\
         s.sendto(b'hello there', os.environ['NOTIFY_SOCKET'])\n\
         s.sendto(b'STATUS=warming up\\nREADY=1', os.environ['NOTIFY_SOCKET'])\n\
         time.sleep(1000)\n",
    )
    .expect("write notify.py");
    let python = python();
    let script = script.to_str().expect("a UTF-8 path");
    let session = project.start(&[
        "--build",
        "",
        "-e",
        "txt",
        "--ready",
        "notify",
        "--ready-timeout",
        "10m",
        "--",
        &python,
        script,
    ]);
    session.wait_for_stderr("started (pid");
    let stderr = session.stderr();
    assert!(
        stderr.contains("malformed notify message (not UTF-8)")
            && stderr.contains("malformed notify message (`hello there`)"),
        "each bad message is named{}",
        session.context()
    );
}

/// A server that only binds its port after warming up for 300 ms: until then, connections are
/// refused, so an answer proves it is up.
const SLOW_BINDING_SERVER: &str = r"import http.server, os, time
time.sleep(0.3)
class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        body = ('hello from pid %d (version 1)' % os.getpid()).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), Hello).serve_forever()
";

#[test]
fn with_ready_http_a_server_counts_as_started_only_once_it_answers() {
    let port = free_port();
    let project = triggered_project();
    let script = project.scratch("slow.py");
    fs::write(&script, SLOW_BINDING_SERVER).expect("write slow.py");
    let project = project.config(&format!(
        "[build]\ncmd = \"\"\n[watch]\next = [\"txt\"]\n[run]\ncmd = [{python:?}, {script:?}]\n\
         env = {{ PORT = \"{port}\" }}\nready = \"http://127.0.0.1:{port}/\"\n",
        python = python(),
    ));
    let session = project.start(&[]);
    session.wait_for_stderr("started (pid");
    // Readiness was proven by an HTTP answer: the port is bound now, warm-up or not.
    let first = get(port).unwrap_or_else(|err| panic!("{err}{}", session.context()));

    trigger(&project, 1);
    session.wait_for_stderr("restarted (pid");
    let second = get(port).unwrap_or_else(|err| panic!("{err}{}", session.context()));
    assert_ne!(first.pid, second.pid, "{}", session.context());
}

#[test]
fn a_new_server_that_exits_before_it_is_ready_is_reported_and_reload_carries_on() {
    let project = triggered_project();
    let session = project.start(&[
        "--build", "", "-e", "txt", "--ready", "notify", "--", "sh", "-c", "exit 4",
    ]);
    session.wait_for_stderr("exited with 4 before it was ready");
    trigger(&project, 1);
    session.wait_for_stderr_count("exited with 4 before it was ready", 2);
    assert!(
        session.exit_status().is_none(),
        "reload keeps watching{}",
        session.context()
    );
}

#[test]
fn a_name_taken_in_the_shared_runtime_directory_cannot_break_a_restart() {
    // Another user of a shared directory (here XDG_RUNTIME_DIR; /tmp without it) creates the
    // names a notify socket could get, before reload needs them. Sockets in a private
    // directory of reload's own leave nobody a name to take.
    let project = triggered_project();
    let runtime = project.scratch("runtime");
    fs::create_dir(&runtime).expect("create the runtime directory");
    let port = free_port();
    let session = project.start_with_env(
        &[
            "--build",
            "",
            "-e",
            "txt",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ready",
            "notify",
            "--",
            &hello_server(),
        ],
        &[("XDG_RUNTIME_DIR", runtime.to_str().expect("utf-8 path"))],
    );
    let first = wait_for_answer(&session, port);
    for n in 0..20 {
        let squatted = runtime.join(format!("reload-{}-{n}.notify", session.pid()));
        let _ = fs::create_dir(squatted);
    }
    trigger(&project, 1);
    session.wait_for_stderr(&format!("restarted (pid {first} -> "));
    assert!(
        notify_sockets(session.pid())
            .iter()
            .all(|socket| socket.starts_with(&runtime) && socket.parent() != Some(&runtime)),
        "the notify sockets are in a directory of their own{}",
        session.context()
    );
}
