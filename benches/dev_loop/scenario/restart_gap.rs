//! Scenario 6, restart gap: an HTTP client on hello_server through restarts, with and
//! without a held socket.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::http;
use crate::report::Value;
use crate::session::{Area, Session};
use crate::stats::millis;
use crate::tools::{Bins, Job, Tool, shell_quote};
use crate::wait::wait_for;
use crate::{Bench, RESTART_TIMEOUT, SETTLE, STARTUP_TIMEOUT};

/// How the port survives a restart in the restart-gap scenario.
#[derive(Debug, Clone, Copy)]
enum Handoff {
    /// Each server binds the port itself.
    Rebind,
    /// The tool holds the listening socket and passes it on (socket activation).
    HeldSocket,
    /// Held socket, and the new server starts before the old one stops (reload only).
    Overlap,
}

impl Handoff {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Handoff::Rebind => "no socket",
            Handoff::HeldSocket => "held socket",
            Handoff::Overlap => "held socket, overlap + notify",
        }
    }
}

/// What the HTTP client saw during the restarts.
#[derive(Debug)]
struct Gap {
    requests: usize,
    pub(crate) failed: usize,
    worst_ms: f64,
    /// The longest time between two answered requests.
    longest_gap_ms: f64,
    errors: BTreeMap<String, usize>,
}

/// Scenario 6: An HTTP client hammering hello_server (300 ms warm-up) through 10 restarts.
pub(crate) fn restart_gap(bench: &mut Bench) -> Result<()> {
    const S: &str = "6 restart gap";
    let restarts = bench.runs(10, 3);
    println!(
        "\n== 6. restart gap: sequential GETs (5 ms apart) on hello_server (WARMUP_MS=300) \
         through {restarts} restarts"
    );
    let area = bench.area("gap")?;
    area.write("src/main.rs", "// v0\n")?;

    for handoff in [Handoff::Rebind, Handoff::HeldSocket, Handoff::Overlap] {
        let failed = format!("{}: failed requests", handoff.label());
        let worst = format!("{}: worst latency", handoff.label());
        let longest = format!("{}: longest gap between answers", handoff.label());
        for tool in Tool::ALL {
            let port = free_port()?;
            let Some(job) = gap_job(&bench.bins, tool, handoff, &area, port) else {
                continue;
            };
            let metrics = [failed.as_str(), worst.as_str(), longest.as_str()];
            let name = format!("{}-{handoff:?}", tool.name());
            let measured = bench.attempt(S, &metrics, tool, |_, exe| {
                let session = Session::launch(tool, exe, &job, &area, &name)?;
                measure_gap(session, &area, port, restarts)
            });
            if let Some(gap) = measured {
                let report = &mut bench.report;
                report.add(S, &failed, tool.name(), Value::Count(gap.failed as u64));
                report.add(S, &worst, tool.name(), Value::Millis(gap.worst_ms));
                report.add(S, &longest, tool.name(), Value::Millis(gap.longest_gap_ms));
                println!(
                    "  {:<10} ({} requests; errors: {:?})",
                    tool.name(),
                    gap.requests,
                    gap.errors
                );
            }
        }
    }
    if bench.bins.watchexec.is_some() {
        watchexec_socket_without_shim(bench, &area)?;
    }
    Ok(())
}

/// The job for `tool` in the restart-gap scenario; `None` when the tool cannot hand off that way.
fn gap_job(bins: &Bins, tool: Tool, handoff: Handoff, area: &Area, port: u16) -> Option<Job> {
    let address = format!("127.0.0.1:{port}");
    let job = Job::new(&area.project, vec![bins.hello_server.clone().into()])
        .env("PORT", port)
        .env("WARMUP_MS", 300);
    match (tool, handoff) {
        (_, Handoff::Rebind) => Some(job),
        (Tool::Reload, Handoff::HeldSocket) => Some(job.flags(&["--listen", &address])),
        (Tool::Reload, Handoff::Overlap) => {
            Some(job.flags(&["--listen", &address, "--overlap", "--ready", "notify"]))
        }
        // watchexec 2.8 passes the socket at fd 9 (announced in LISTEN_FDS_FIRST_FD, systemfd's
        // extension) and sets no LISTEN_PID, while the protocol hello_server follows, like
        // libsystemd's, wants fd 3 and LISTEN_PID = its pid. The shell in front of the server
        // makes up for both (`exec` keeps the shell's pid). See `watchexec_socket_without_shim`.
        (Tool::Watchexec, Handoff::HeldSocket) => Some(
            job.flags(&["--socket", &address])
                .build("export LISTEN_PID=$$ && eval \"exec 3<&${LISTEN_FDS_FIRST_FD:-3}\""),
        ),
        _ => None,
    }
}

fn measure_gap(mut session: Session, area: &Area, port: u16, restarts: usize) -> Result<Gap> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let first = wait_for(STARTUP_TIMEOUT, || http_get(address).ok()).ok_or_else(|| {
        anyhow!(
            "the server never answered on {address}; {} said:\n{}",
            session.tool.name(),
            session.output_tail()
        )
    })?;
    let mut servers = HashSet::from([first]);
    let client = Client::start(address);
    thread::sleep(SETTLE);
    for restart in 0..restarts {
        restart_once(&mut session, area, &client, &mut servers, restart)?;
        thread::sleep(SETTLE);
    }
    let probes = client.finish();
    session.check_alive()?;

    let mut gap = Gap {
        requests: probes.len(),
        failed: 0,
        worst_ms: 0.0,
        longest_gap_ms: 0.0,
        errors: BTreeMap::new(),
    };
    let mut last_answer: Option<Instant> = None;
    for probe in &probes {
        gap.worst_ms = gap.worst_ms.max(millis(probe.took));
        match &probe.outcome {
            Ok(_) => {
                if let Some(last) = last_answer {
                    gap.longest_gap_ms = gap.longest_gap_ms.max(millis(probe.done - last));
                }
                last_answer = Some(probe.done);
            }
            Err(kind) => {
                gap.failed += 1;
                *gap.errors.entry(kind.clone()).or_default() += 1;
            }
        }
    }
    Ok(gap)
}

/// watchexec's `--socket` as a user gets it: what reaches the server, and whether it serves.
fn watchexec_socket_without_shim(bench: &mut Bench, area: &Area) -> Result<()> {
    const S: &str = "6 restart gap";
    const METRIC: &str = "held socket without a LISTEN_PID shim";
    let Some(exe) = bench.bins.watchexec.clone() else {
        return Ok(());
    };
    let port = free_port()?;
    let environment = area.scratch.join("watchexec-socket.env");
    let record = format!(
        "echo \"LISTEN_FDS=${{LISTEN_FDS-unset}} LISTEN_FDS_FIRST_FD=${{LISTEN_FDS_FIRST_FD-unset}} \
         LISTEN_PID=${{LISTEN_PID-unset}} in pid $$\" > {}",
        shell_quote(environment.as_os_str())
    );
    let address = format!("127.0.0.1:{port}");
    let job = gap_job(&bench.bins, Tool::Watchexec, Handoff::Rebind, area, port)
        .context("no job")?
        .flags(&["--socket", &address])
        .build(record);
    let session = Session::launch(Tool::Watchexec, &exe, &job, area, "watchexec-raw-socket")?;
    // Ask the server's own output first: a GET on a socket nobody accepts on would just hang.
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let answered = wait_for(Duration::from_secs(5), || {
        let said = session.output_tail();
        if said.contains("hello_server: cannot") {
            Some(false)
        } else if said.contains("listening on") {
            Some(http_get(address).is_ok())
        } else {
            None
        }
    })
    .unwrap_or(false);
    let seen = fs::read_to_string(&environment).unwrap_or_default();
    let server_said = session
        .output_tail()
        .lines()
        .map(|l| l.trim_start_matches("    | ").to_owned())
        .filter(|l| l.starts_with("hello_server"))
        .collect::<Vec<_>>()
        .join("; ");
    drop(session);
    let note = if answered {
        format!("served ({})", seen.trim())
    } else {
        format!(
            "never served: the server got {}; {server_said}",
            seen.trim()
        )
    };
    bench
        .report
        .add(S, METRIC, Tool::Watchexec.name(), Value::Text(note));
    Ok(())
}

/// One request of the hammering client.
pub(crate) struct Probe {
    /// When it ended.
    pub(crate) done: Instant,
    pub(crate) took: Duration,
    /// The answering server's pid, or what went wrong.
    pub(crate) outcome: Result<u32, String>,
}

/// A thread doing sequential GETs until told to stop.
pub(crate) struct Client {
    stop: Arc<AtomicBool>,
    last_pid: Arc<AtomicU32>,
    pub(crate) thread: Option<JoinHandle<Vec<Probe>>>,
}

impl Client {
    /// Spacing between requests: dense enough to see any gap, sparse enough that the closed
    /// connections' TIME_WAIT entries (60 s) never exhaust the 28k local ports.
    const PAUSE: Duration = Duration::from_millis(5);

    pub(crate) fn start(address: SocketAddr) -> Client {
        Client::start_every(address, Self::PAUSE)
    }

    /// Like [`Client::start`], with `pause` between a request's end and the next one.
    pub(crate) fn start_every(address: SocketAddr, pause: Duration) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let last_pid = Arc::new(AtomicU32::new(0));
        let thread = {
            let (stop, last_pid) = (stop.clone(), last_pid.clone());
            thread::spawn(move || {
                let mut probes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let began = Instant::now();
                    let outcome = http_get(address);
                    if let Ok(pid) = outcome {
                        last_pid.store(pid, Ordering::SeqCst);
                    }
                    probes.push(Probe {
                        done: Instant::now(),
                        took: began.elapsed(),
                        outcome,
                    });
                    thread::sleep(pause);
                }
                probes
            })
        };
        Client {
            stop,
            last_pid,
            thread: Some(thread),
        }
    }

    pub(crate) fn last_pid(&self) -> u32 {
        self.last_pid.load(Ordering::SeqCst)
    }

    pub(crate) fn finish(mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Edit the project once and wait until a server not seen before answers `client`: the new
/// server serves. (With overlap the old one may still answer a few requests meanwhile, so
/// "different from the last" is not enough.) Its pid, now among `servers`.
pub(crate) fn restart_once(
    session: &mut Session,
    area: &Area,
    client: &Client,
    servers: &mut HashSet<u32>,
    restart: usize,
) -> Result<u32> {
    area.write("src/main.rs", &format!("// restart {restart}\n"))?;
    let new = wait_for(RESTART_TIMEOUT, || {
        let pid = client.last_pid();
        (pid != 0 && !servers.contains(&pid)).then_some(pid)
    });
    let Some(new) = new else {
        session.check_alive()?;
        bail!("no new server answered within 10 s after restart {restart}");
    };
    servers.insert(new);
    Ok(new)
}

/// `GET /` from hello_server: the pid in its answer, or the kind of failure.
pub(crate) fn http_get(address: SocketAddr) -> Result<u32, String> {
    let timeout = Duration::from_secs(5);
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let reply = http::exchange(address, request, timeout, timeout)
        .map_err(|err| format!("{:?}", err.kind()))?;
    reply
        .split("hello from pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| "bad reply".to_owned())
}

pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
