//! Scenario 8, the dev proxy: requests through restarts of an unmodified server (it binds `PORT`
//! itself and dies on SIGTERM without draining), what the proxy adds to a fast server under wrk,
//! and what it costs while idle with ten pages' event streams open. reload only: watchexec and
//! nodemon have no proxy, and air, which has one, is not installed here.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use super::restart_gap::{Client, Probe, free_port, http_get, restart_once};
use crate::procfs::{Switches, context_switches, cpu_ticks, rss_mib};
use crate::report::Value;
use crate::session::{Area, Session};
use crate::stats::{millis, percentile};
use crate::tools::{Job, Tool};
use crate::wait::wait_for;
use crate::{Bench, SETTLE, STARTUP_TIMEOUT};

pub(super) const S: &str = "8 proxy";
/// Spacing between the client's requests, as in the measurement of failed requests.
const PAUSE: Duration = Duration::from_millis(3);
/// How long reload is watched while idle.
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// The event streams open while idle: ten tabs that did not share one.
const STREAMS: usize = 10;

/// Scenario 8: reload's dev proxy.
pub(crate) fn proxy(bench: &mut Bench) -> Result<()> {
    println!(
        "\n== 8. proxy: a server that binds PORT itself and does not drain, through reload's \
         proxy and directly"
    );
    let area = bench.area("proxy")?;
    area.write("src/main.rs", "// v0\n")?;
    bench.report.add(
        S,
        "air's proxy",
        "air",
        Value::Text("not installed here (no network beyond package registries)".to_owned()),
    );
    restarts(bench, &area)?;
    super::proxy_overhead::overhead(bench, &area)?;
    idle(bench, &area)?;
    Ok(())
}

/// Where the client and wrk send their requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Proxy,
    /// Through the proxy with `--overlap`: each server told its own port through PORT.
    ProxyOverlap,
    /// To the app port, reload without a proxy: what users have without it.
    Direct,
}

/// Two free ports, distinct: the app's and the proxy's.
pub(super) fn two_ports() -> Result<(u16, u16)> {
    let app = free_port()?;
    let proxy = (0..10)
        .map(|_| free_port())
        .find(|port| port.as_ref().map_or(true, |&port| port != app))
        .context("no second free port")??;
    Ok((app, proxy))
}

/// The job: the stand-in HTTP server, which binds `PORT` after `bind_delay_ms`, behind the
/// proxy or not. reload logs JSON events, for the swap times.
pub(super) fn job(
    bench: &Bench,
    area: &Area,
    route: Route,
    app: u16,
    proxy: u16,
    delay_ms: u64,
) -> Job {
    let job = Job::new(&area.project, bench.bins.stand_in_http(&area.scratch))
        .env("BIND_DELAY_MS", delay_ms);
    match route {
        Route::Proxy | Route::ProxyOverlap => {
            let mut flags = vec![
                "--log-format".to_owned(),
                "json".to_owned(),
                "--proxy".to_owned(),
                proxy.to_string(),
                "--app-port".to_owned(),
                app.to_string(),
            ];
            if route == Route::ProxyOverlap {
                flags.push("--overlap".to_owned());
            }
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            job.flags(&flags)
        }
        Route::Direct => job.env("PORT", app).flags(&["--log-format", "json"]),
    }
}

pub(super) fn address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What the client saw over the restarts.
struct Through {
    requests: usize,
    failed: usize,
    errors: BTreeMap<String, usize>,
    median_ms: f64,
    p99_ms: f64,
    /// Over the restarts, the most a restart's slowest request took beyond its swap.
    excess_ms: f64,
    /// That restart's slowest request and swap.
    excess_at: (f64, f64),
    /// The slowest answered request of all.
    max_ms: f64,
}

/// Part 1: a client every 3 ms through 10 restarts, through the proxy (a server that binds at
/// once, and one that takes 300 ms), and directly.
fn restarts(bench: &mut Bench, area: &Area) -> Result<()> {
    let restarts = 10;
    println!(
        "  -- {restarts} restarts, sequential GETs {} ms apart",
        PAUSE.as_millis()
    );
    let variants = [
        ("through the proxy", Route::Proxy, 0),
        (
            "through the proxy, server binds after 300 ms",
            Route::Proxy,
            300,
        ),
        (
            "through the proxy with --overlap, server binds after 300 ms",
            Route::ProxyOverlap,
            300,
        ),
        ("direct, no proxy", Route::Direct, 0),
    ];
    for (label, route, delay_ms) in variants {
        let failed = format!("{label}: failed requests");
        let excess = format!("{label}: slowest request minus its swap");
        let median = format!("{label}: median latency");
        let p99 = format!("{label}: p99 latency");
        let metrics = [
            failed.as_str(),
            excess.as_str(),
            median.as_str(),
            p99.as_str(),
        ];
        let (app, proxy) = two_ports()?;
        let job = job(bench, area, route, app, proxy, delay_ms);
        let target = address(if route == Route::Direct { app } else { proxy });
        let name = format!("reload-{route:?}-{delay_ms}");
        let measured = bench.attempt(S, &metrics, Tool::Reload, |_, exe| {
            let session = Session::launch(Tool::Reload, exe, &job, area, &name)?;
            measure_through(session, area, target, restarts)
        });
        let Some(through) = measured else { continue };
        let report = &mut bench.report;
        let tool = Tool::Reload.name();
        report.add(S, &failed, tool, Value::Count(through.failed as u64));
        report.add(S, &excess, tool, Value::Millis(through.excess_ms));
        report.add(S, &median, tool, Value::Millis(through.median_ms));
        report.add(S, &p99, tool, Value::Millis(through.p99_ms));
        let (slowest, swap) = through.excess_at;
        println!(
            "  {tool:<10} ({} requests; errors: {:?}; the worst restart: slowest {slowest:.1} ms, \
             swap {swap:.1} ms)",
            through.requests, through.errors
        );
        if route == Route::ProxyOverlap {
            let slowest = format!("{label}: slowest request");
            report.add(S, &slowest, tool, Value::Millis(through.max_ms));
            report.target(
                S,
                "--overlap, 300 ms start: slowest request < 20 ms",
                format!(
                    "{:.1} ms; {} of {} failed",
                    through.max_ms, through.failed, through.requests
                ),
                through.max_ms < 20.0 && through.failed == 0,
            );
        }
        if route == Route::Proxy {
            let goal = if delay_ms == 0 {
                "0 failed requests through restarts"
            } else {
                "0 failed, server binding after 300 ms"
            };
            report.target(
                S,
                goal,
                format!("{} of {}", through.failed, through.requests),
                through.failed == 0,
            );
            let goal = if delay_ms == 0 {
                "slowest request <= swap + 20 ms"
            } else {
                "slowest <= swap + 20 ms, binding after 300 ms"
            };
            report.target(
                S,
                goal,
                format!("{:+.1} ms ({slowest:.1} - {swap:.1})", through.excess_ms),
                through.excess_ms <= 20.0,
            );
        }
    }
    Ok(())
}

fn measure_through(
    mut session: Session,
    area: &Area,
    target: SocketAddr,
    restarts: usize,
) -> Result<Through> {
    let first = wait_for(STARTUP_TIMEOUT, || http_get(target).ok()).ok_or_else(|| {
        anyhow!(
            "the server never answered on {target}; reload said:\n{}",
            session.output_tail()
        )
    })?;
    let mut servers = HashSet::from([first]);
    let client = Client::start_every(target, PAUSE);
    thread::sleep(SETTLE);
    // When each restart's edit was made, and the server that answered after it.
    let mut edits: Vec<(Instant, u32)> = Vec::new();
    for restart in 0..restarts {
        let edited = Instant::now();
        let new = restart_once(&mut session, area, &client, &mut servers, restart)?;
        edits.push((edited, new));
        thread::sleep(SETTLE);
    }
    let probes = client.finish();
    session.check_alive()?;
    let swaps = swaps_by_pid(&session.log)?;
    through(&probes, &edits, &swaps)
}

/// The figures from the probes: each restart's window runs from its edit to the next edit.
fn through(
    probes: &[Probe],
    edits: &[(Instant, u32)],
    swaps: &BTreeMap<u32, f64>,
) -> Result<Through> {
    let mut errors = BTreeMap::new();
    let mut answered = Vec::new();
    for probe in probes {
        match &probe.outcome {
            Ok(_) => answered.push(millis(probe.took)),
            Err(kind) => *errors.entry(kind.clone()).or_default() += 1,
        }
    }
    ensure!(!answered.is_empty(), "no request was answered");
    let mut excess_ms = f64::NEG_INFINITY;
    let mut excess_at = (0.0, 0.0);
    for (i, &(edited, pid)) in edits.iter().enumerate() {
        let next = edits.get(i + 1).map(|&(at, _)| at);
        let slowest = probes
            .iter()
            .filter(|probe| {
                probe
                    .done
                    .checked_sub(probe.took)
                    .is_some_and(|began| began >= edited && next.is_none_or(|next| began < next))
            })
            .map(|probe| millis(probe.took))
            .fold(0.0, f64::max);
        let swap = *swaps
            .get(&pid)
            .with_context(|| format!("reload logged no ready event for pid {pid}"))?;
        if slowest - swap > excess_ms {
            excess_ms = slowest - swap;
            excess_at = (slowest, swap);
        }
    }
    Ok(Through {
        requests: probes.len(),
        failed: probes.len() - answered.len(),
        errors,
        median_ms: percentile(&answered, 0.5),
        p99_ms: percentile(&answered, 0.99),
        excess_ms,
        excess_at,
        max_ms: answered.iter().copied().fold(0.0, f64::max),
    })
}

/// The swap of each server that became ready, by pid, from reload's JSON events
/// (`{"event": "ready", "pid": ..., "swap_ms": ...}`).
fn swaps_by_pid(log: &Path) -> Result<BTreeMap<u32, f64>> {
    let text = fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let mut swaps = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with('{')) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["event"] != "ready" {
            continue;
        }
        let pid = event["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok());
        let swap = event["swap_ms"].as_f64();
        if let (Some(pid), Some(swap)) = (pid, swap) {
            swaps.insert(pid, swap);
        }
    }
    Ok(swaps)
}

/// reload's cost over the idle window.
struct Idle {
    ticks: u64,
    rss_mib: f64,
    switches: u64,
    /// The threads that switched, with how often.
    by_thread: String,
    /// Bytes the event streams received during the window.
    stream_bytes: usize,
}

/// Part 3: reload idle for 5 s with the proxy and ten event streams open, and without a proxy.
fn idle(bench: &mut Bench, area: &Area) -> Result<()> {
    const TICKS: &str = "CPU ticks in 5 s idle";
    const RSS: &str = "RSS idle";
    const SWITCHES: &str = "context switches in 5 s idle (all threads)";
    println!(
        "  -- idle: {} s, with the proxy and {STREAMS} open /__reload/events streams, and \
         without the proxy",
        IDLE_WINDOW.as_secs()
    );
    let mut results = Vec::new();
    for route in [Route::Proxy, Route::Direct] {
        let label = match route {
            Route::Proxy | Route::ProxyOverlap => format!("with proxy, {STREAMS} streams"),
            Route::Direct => "without proxy".to_owned(),
        };
        let metrics = [
            format!("{label}: {TICKS}"),
            format!("{label}: {RSS}"),
            format!("{label}: {SWITCHES}"),
        ];
        let metric_names: Vec<&str> = metrics.iter().map(String::as_str).collect();
        let (app, proxy) = two_ports()?;
        let job = job(bench, area, route, app, proxy, 0);
        let name = format!("reload-idle-{route:?}");
        let measured = bench.attempt(S, &metric_names, Tool::Reload, |_, exe| {
            let session = Session::launch(Tool::Reload, exe, &job, area, &name)?;
            measure_idle(session, route, app, proxy)
        });
        let Some(idle) = measured else { continue };
        let tool = Tool::Reload.name();
        let report = &mut bench.report;
        report.add(S, &metrics[0], tool, Value::Count(idle.ticks));
        report.add(S, &metrics[1], tool, Value::MiB(idle.rss_mib));
        report.add(S, &metrics[2], tool, Value::Count(idle.switches));
        println!(
            "  {tool:<10} (threads that switched: {}; the streams received {} bytes meanwhile)",
            if idle.by_thread.is_empty() {
                "none"
            } else {
                &idle.by_thread
            },
            idle.stream_bytes
        );
        results.push((route, idle));
    }
    let with = results.iter().find(|(route, _)| *route == Route::Proxy);
    let without = results.iter().find(|(route, _)| *route == Route::Direct);
    if let Some((_, with)) = with {
        bench.report.target(
            S,
            "idle, 10 streams: 0 CPU ticks (<= 1: noise)",
            format!(
                "{} ticks in {} s, {} context switches",
                with.ticks,
                IDLE_WINDOW.as_secs(),
                with.switches
            ),
            with.ticks <= 1,
        );
    }
    if let (Some((_, with)), Some((_, without))) = (with, without) {
        let more = with.rss_mib - without.rss_mib;
        bench.report.target(
            S,
            "idle RSS with the proxy <= 5 MiB more",
            format!(
                "{more:+.1} MiB ({:.1} vs {:.1})",
                with.rss_mib, without.rss_mib
            ),
            more <= 5.0,
        );
    }
    Ok(())
}

fn measure_idle(mut session: Session, route: Route, app: u16, proxy: u16) -> Result<Idle> {
    let target = address(if route == Route::Proxy { proxy } else { app });
    wait_for(STARTUP_TIMEOUT, || http_get(target).ok()).ok_or_else(|| {
        anyhow!(
            "the server never answered on {target}; reload said:\n{}",
            session.output_tail()
        )
    })?;
    let mut streams = Vec::new();
    if route == Route::Proxy {
        for _ in 0..STREAMS {
            streams.push(open_events(address(proxy))?);
        }
    }
    // Let the start and the streams' first frames pass.
    thread::sleep(Duration::from_millis(500));
    for stream in &mut streams {
        drain(stream)?;
    }
    let pid = session.pid();
    let (ticks_before, switches_before) = (cpu_ticks(&[pid])?, context_switches(pid)?);
    thread::sleep(IDLE_WINDOW);
    let (ticks_after, switches_after) = (cpu_ticks(&[pid])?, context_switches(pid)?);
    session.check_alive()?;
    let mut stream_bytes = 0;
    for stream in &mut streams {
        stream_bytes += drain(stream)?;
    }
    let (switches, by_thread) = switched(&switches_before, &switches_after);
    Ok(Idle {
        ticks: ticks_after - ticks_before,
        rss_mib: rss_mib(pid)?,
        switches,
        by_thread,
        stream_bytes,
    })
}

/// The context switches between two readings, in all and by thread (`name:count`). A thread
/// that started meanwhile counts from zero.
fn switched(before: &BTreeMap<i32, Switches>, after: &BTreeMap<i32, Switches>) -> (u64, String) {
    let mut total = 0;
    let mut by_thread = Vec::new();
    for (tid, now) in after {
        let (voluntary, involuntary) = before
            .get(tid)
            .map_or((0, 0), |then| (then.voluntary, then.involuntary));
        let count = (now.voluntary - voluntary) + (now.involuntary - involuntary);
        if count > 0 {
            by_thread.push(format!("{}:{count}", now.thread));
        }
        total += count;
    }
    (total, by_thread.join(", "))
}

/// A page's event stream, as a plain TCP client: the request sent and the answer's head read.
fn open_events(proxy: SocketAddr) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&proxy, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to the proxy on {proxy}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request =
        "GET /__reload/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream
            .read(&mut byte)
            .context("the event stream's head did not come")?;
        ensure!(read > 0, "the proxy closed the event stream at once");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    ensure!(
        head.starts_with("http/1.1 200") && head.contains("text/event-stream"),
        "/__reload/events answered:\n{head}"
    );
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Read what has arrived on a non-blocking stream; fail if the proxy closed it.
fn drain(stream: &mut TcpStream) -> Result<usize> {
    let mut total = 0;
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => bail!("the proxy closed an event stream"),
            Ok(read) => total += read,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(total),
            Err(err) => return Err(err).context("cannot read an event stream"),
        }
    }
}
