//! Scenario 8, part 2: what the proxy costs a server under wrk, against the same server reached
//! directly, alternately, with one reload running both. Two servers:
//! - the stand-in, which does nothing but answer: the worst case for a proxy, since nearly all
//!   the work per request is then the proxy's;
//! - a Gin app (the framework most of this tool's Go users run), when Go and Debian's Gin are
//!   installed, built here in GOPATH mode.
//!
//! A plain byte relay (socat, when installed) between the same two sockets gives the floor that
//! any proxy pays: a second loopback hop costs the kernel about as much as the first, so for a
//! server that does nothing, no relay keeps half the direct throughput on two shared cores.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;

use anyhow::{Context, Result, anyhow, ensure};

use super::proxy::{Route, S, address, job, two_ports};
use super::restart_gap::{free_port, http_get};
use crate::report::Value;
use crate::session::{Area, Session};
use crate::stats::percentile;
use crate::tools::{Job, Tool, find_on_path};
use crate::wait::wait_for;
use crate::{Bench, STARTUP_TIMEOUT};

/// Where Debian's golang-github-gin-gonic-gin-dev puts Gin, for GOPATH mode.
const GOPATH: &str = "/usr/share/gocode";

/// A Gin app as its users write one, minus the per-request log line (reload would relay it to
/// the terminal, which is not what is measured): it binds `PORT` and answers `/` as the
/// stand-in does, with its pid.
const GIN_APP: &str = r#"package main

import (
	"os"

	"github.com/gin-gonic/gin"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	pid := os.Getpid()
	r.GET("/", func(c *gin.Context) { c.String(200, "hello from pid %d\n", pid) })
	r.Run("127.0.0.1:" + os.Getenv("PORT"))
}
"#;

/// The server wrk measures.
enum Server {
    StandIn,
    Gin(PathBuf),
}

impl Server {
    fn name(&self) -> &'static str {
        match self {
            Server::StandIn => "stand-in",
            Server::Gin(_) => "Gin",
        }
    }
}

/// What one server's runs gave: medians, direct / through the proxy / through the relay.
struct Overhead {
    latency_ms: [f64; 3],
    requests_per_second: [f64; 3],
}

/// Part 2. Rows are skipped, with a note, when wrk is missing.
pub(super) fn overhead(bench: &mut Bench, area: &Area) -> Result<()> {
    let cpus = thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let Some(wrk) = find_on_path("wrk") else {
        println!("  wrk is not installed (apt-get install -y wrk): overhead rows skipped");
        let note = Value::Text("skipped: wrk is not installed".to_owned());
        bench.report.add(S, "overhead", Tool::Reload.name(), note);
        return Ok(());
    };
    let relay = find_on_path("socat");
    let mut servers = vec![Server::StandIn];
    match gin_app(area) {
        Ok(Some(gin)) => servers.push(Server::Gin(gin)),
        Ok(None) => println!(
            "  Go or Debian's Gin is not installed (apt-get install -y golang \
             golang-github-gin-gonic-gin-dev): the Gin rows are skipped"
        ),
        Err(err) => println!("  the Gin app could not be built, its rows are skipped: {err:#}"),
    }
    let (seconds, runs) = (bench.runs(5, 2), bench.runs(3, 1));
    println!(
        "  -- overhead: wrk {seconds} s per run, {runs} run(s) each way, alternating direct, \
         proxy{}; wrk, the proxy and the app share the {cpus} CPUs",
        if relay.is_some() { ", socat" } else { "" }
    );
    let mut measured = Vec::new();
    for server in servers {
        if let Some(overhead) =
            measure(bench, area, &wrk, &server, relay.as_deref(), seconds, runs)?
        {
            measured.push((server, overhead));
        }
    }
    let Some((_, stand_in)) = measured.iter().find(|(s, _)| matches!(s, Server::StandIn)) else {
        return Ok(());
    };
    let [direct_ms, proxy_ms, _] = stand_in.latency_ms;
    let added = proxy_ms - direct_ms;
    bench.report.target(
        S,
        "proxy adds <= 0.1 ms median latency (1 conn)",
        format!("{added:+.3} ms ({proxy_ms:.3} vs {direct_ms:.3} direct, stand-in)"),
        added <= 0.1,
    );
    // Judged on the framework when it was measured: what users' servers keep. The stand-in's
    // figure and the byte relay's floor are given beside it.
    let kept = |o: &Overhead, i: usize| o.requests_per_second[i] / o.requests_per_second[0];
    let context = |o: &Overhead| {
        let relay = if relay.is_some() {
            format!("; socat, a plain byte relay: {:.0} %", kept(o, 2) * 100.0)
        } else {
            String::new()
        };
        format!("do-nothing stand-in {:.0} %{relay}", kept(o, 1) * 100.0)
    };
    let (judged, text) = match measured.iter().find(|(s, _)| matches!(s, Server::Gin(_))) {
        Some((_, gin)) => (
            kept(gin, 1),
            format!(
                "{:.0} % with a Gin app ({:.0} vs {:.0} req/s); {}; {cpus} CPUs shared",
                kept(gin, 1) * 100.0,
                gin.requests_per_second[1],
                gin.requests_per_second[0],
                context(stand_in)
            ),
        ),
        None => (
            kept(stand_in, 1),
            format!("{} (no Gin here); {cpus} CPUs shared", context(stand_in)),
        ),
    };
    bench.report.target(
        S,
        "proxy keeps >= 1/2 the req/s (32 conns)",
        text,
        judged >= 0.5,
    );
    Ok(())
}

fn measure(
    bench: &mut Bench,
    area: &Area,
    wrk: &Path,
    server: &Server,
    relay: Option<&Path>,
    seconds: usize,
    runs: usize,
) -> Result<Option<Overhead>> {
    // The stand-in keeps the rows' first names; the others are named after the server.
    let suffix = match server {
        Server::StandIn => String::new(),
        gin @ Server::Gin(_) => format!(" ({})", gin.name()),
    };
    let names = [
        format!("overhead: direct median latency at 1 connection{suffix}"),
        format!("overhead: median latency at 1 connection{suffix}"),
        format!("overhead: direct req/s at 32 connections{suffix}"),
        format!("overhead: req/s at 32 connections{suffix}"),
        format!("overhead: req/s at 32 connections through socat{suffix}"),
    ];
    let metrics: Vec<&str> = names.iter().map(String::as_str).collect();
    let (app, proxy) = two_ports()?;
    let job = match server {
        Server::StandIn => job(bench, area, Route::Proxy, app, proxy, 0),
        Server::Gin(binary) => Job::new(&area.project, vec![binary.clone().into_os_string()])
            .flags(&[
                "--proxy",
                &proxy.to_string(),
                "--app-port",
                &app.to_string(),
            ]),
    };
    let name = format!("reload-wrk-{}", server.name());
    let measured = bench.attempt(S, &metrics, Tool::Reload, |_, exe| {
        let mut session = Session::launch(Tool::Reload, exe, &job, area, &name)?;
        wait_for(STARTUP_TIMEOUT, || http_get(address(proxy)).ok()).ok_or_else(|| {
            anyhow!(
                "the proxy never answered; reload said:\n{}",
                session.output_tail()
            )
        })?;
        let relay = relay.map(|socat| Relay::start(socat, app)).transpose()?;
        let mut ports = vec![app, proxy];
        ports.extend(relay.as_ref().map(|relay| relay.port));
        let mut latency: [Vec<f64>; 3] = Default::default();
        let mut throughput: [Vec<f64>; 3] = Default::default();
        for _ in 0..runs {
            for (i, &port) in ports.iter().enumerate() {
                latency[i].push(run_wrk(wrk, port, 1, 1, seconds)?.median_ms);
                throughput[i].push(run_wrk(wrk, port, 2, 32, seconds)?.requests_per_second);
            }
        }
        session.check_alive()?;
        Ok((latency, throughput))
    });
    let Some((latency, throughput)) = measured else {
        return Ok(None);
    };
    let tool = Tool::Reload.name();
    println!(
        "  {tool:<10} {} (each run, direct / proxy / socat: median latency {:?} / {:?} / {:?} \
         ms, {:?} / {:?} / {:?} req/s)",
        server.name(),
        latency[0],
        latency[1],
        latency[2],
        throughput[0],
        throughput[1],
        throughput[2]
    );
    let median = |samples: &[f64]| {
        if samples.is_empty() {
            f64::NAN
        } else {
            percentile(samples, 0.5)
        }
    };
    let overhead = Overhead {
        latency_ms: [
            median(&latency[0]),
            median(&latency[1]),
            median(&latency[2]),
        ],
        requests_per_second: [
            median(&throughput[0]),
            median(&throughput[1]),
            median(&throughput[2]),
        ],
    };
    let report = &mut bench.report;
    report.add(S, &names[0], tool, Value::Micros(overhead.latency_ms[0]));
    report.add(S, &names[1], tool, Value::Micros(overhead.latency_ms[1]));
    let [direct, proxied, relayed] = overhead.requests_per_second;
    report.add(S, &names[2], tool, Value::Count(direct as u64));
    report.add(S, &names[3], tool, Value::Count(proxied as u64));
    if relayed.is_finite() {
        report.add(S, &names[4], tool, Value::Count(relayed as u64));
    }
    Ok(Some(overhead))
}

/// Build the Gin app; `None` when Go or Debian's Gin is not installed.
fn gin_app(area: &Area) -> Result<Option<PathBuf>> {
    let Some(go) = find_on_path("go") else {
        return Ok(None);
    };
    if !Path::new(GOPATH)
        .join("src/github.com/gin-gonic/gin")
        .is_dir()
    {
        return Ok(None);
    }
    let dir = area.scratch.join("gin-app");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(dir.join("main.go"), GIN_APP).context("cannot write the Gin app")?;
    let binary = dir.join("app");
    let output = Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&dir)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .stdin(Stdio::null())
        .output()
        .context("cannot run go build")?;
    ensure!(
        output.status.success(),
        "go build failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Some(binary))
}

/// socat relaying a port of its own to the app, one process per connection: bytes only, no
/// HTTP. Stopped when dropped.
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    fn start(socat: &Path, app: u16) -> Result<Relay> {
        let port = free_port()?;
        let child = Command::new(socat)
            .arg(format!(
                "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,nodelay"
            ))
            .arg(format!("TCP:127.0.0.1:{app},nodelay"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", socat.display()))?;
        let relay = Relay { child, port };
        wait_for(STARTUP_TIMEOUT, || TcpStream::connect(address(port)).ok())
            .context("socat never listened")?;
        Ok(relay)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one wrk run reports.
struct WrkRun {
    median_ms: f64,
    requests_per_second: f64,
}

fn run_wrk(
    wrk: &Path,
    port: u16,
    threads: u32,
    connections: u32,
    seconds: usize,
) -> Result<WrkRun> {
    let url = format!("http://127.0.0.1:{port}/");
    let output = Command::new(wrk)
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency", &url])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", wrk.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk on {url} failed ({}): {text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // Any refused, reset or non-2xx request would make the figures meaningless.
    ensure!(
        !text.contains("Socket errors") && !text.contains("Non-2xx"),
        "wrk on {url} saw errors:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
            .with_context(|| format!("no `{prefix}` in wrk's output:\n{text}"))
    };
    let median = field("50%")?;
    let requests_per_second = field("Requests/sec:")?
        .parse()
        .with_context(|| format!("wrk's Requests/sec is not a number:\n{text}"))?;
    Ok(WrkRun {
        median_ms: wrk_duration_ms(median)
            .with_context(|| format!("wrk's median latency `{median}` does not parse"))?,
        requests_per_second,
    })
}

/// A wrk duration (`45.00us`, `1.20ms`, `2.00s`, `1.00m`) in milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(number * scale)
}
