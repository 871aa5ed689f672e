//! Scenario 9, a save as the developer sees it: from the write to the new page shown in a real
//! browser (headless chromium) through reload's proxy, with the live-reload script doing the
//! reload. The build is `true` and the server the stand-in HTTP server, so what is measured is
//! the debounce window plus reload's and the page's own work. The save's steps come from the new
//! page's Navigation Timing, and the same page reloaded straight from the app shows how much of
//! the rest is chromium's own navigation on this machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};

use super::proxy::two_ports;
use crate::browser::{Browser, Tab};
use crate::report::Value;
use crate::session::Session;
use crate::stats::{millis, percentile};
use crate::tools::{Job, Tool, find_on_path};
use crate::wait::wait_for;
use crate::{Area, Bench, DEBOUNCE, SETTLE, STARTUP_TIMEOUT};

const S: &str = "9 browser";
const LATENCY: &str = "save -> new page shown in the browser";
const OVERHEAD: &str = "save -> page, beyond the 50 ms window and the build";
/// Where the time goes, from the new page's Navigation Timing: its time origin is when the old
/// page called `location.reload()`, so reload's own part (window, build, restart, readiness,
/// the `ready` frame) and the client's reaction end there; the rest is the navigation.
const TO_NAVIGATION: &str = "save -> location.reload() (navigation start)";
const TO_REQUEST: &str = "navigation start -> request sent to the proxy";
const TO_RESPONSE: &str = "request -> first byte of the answer";
const TO_SHOWN: &str = "first byte -> DOMContentLoaded";
const PLAIN_RELOAD: &str = "chromium alone: reload of the app's page, no proxy (start -> DCL)";

/// Scenario 9: save, and wait for the page to show the new server's answer by itself.
pub(crate) fn browser(bench: &mut Bench) -> Result<()> {
    let runs = bench.runs(20, 5);
    println!("\n== 9. browser: save -> the page follows by itself, {runs} runs");
    if find_on_path("chromium").is_none() {
        let note = "chromium is not installed (apt-get install chromium)".to_owned();
        bench
            .report
            .add(S, LATENCY, Tool::Reload.name(), Value::Text(note));
        return Ok(());
    }
    let area = bench.area("browser")?;
    area.write("src/main.rs", "// v0\n")?;
    let (app, proxy) = two_ports()?;
    let job = Job::new(&area.project, bench.bins.stand_in_http(&area.scratch))
        .env("HTML", 1)
        .flags(&[
            "--proxy",
            &proxy.to_string(),
            "--app-port",
            &app.to_string(),
        ]);
    let metrics = [
        LATENCY,
        OVERHEAD,
        TO_NAVIGATION,
        TO_REQUEST,
        TO_RESPONSE,
        TO_SHOWN,
        PLAIN_RELOAD,
    ];
    let measured = bench.attempt(S, &metrics, Tool::Reload, |_, exe| {
        let session = Session::launch(Tool::Reload, exe, &job, &area, "reload-browser")?;
        let url = format!("http://127.0.0.1:{proxy}/");
        wait_for(STARTUP_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", app))
                .ok()
                .map(|_| ())
        })
        .ok_or_else(|| {
            anyhow!(
                "the app never listened; reload said:\n{}",
                session.output_tail()
            )
        })?;
        let browser = Browser::launch();
        let tab = browser.open(&url);
        let (latencies, mut steps) = save_and_follow(&tab, &area, runs)?;
        steps.plain_reload = plain_reloads(&browser, app, runs)?;
        drop(session);
        Ok((latencies, steps))
    });
    if let Some((latencies, steps)) = measured {
        record(bench, latencies, steps);
    }
    Ok(())
}

/// The save's steps, one sample per run each (see [`TO_NAVIGATION`]).
#[derive(Default)]
struct Steps {
    to_navigation: Vec<f64>,
    to_request: Vec<f64>,
    to_response: Vec<f64>,
    to_shown: Vec<f64>,
    plain_reload: Vec<f64>,
}

/// Save `runs` times, each time waiting for the open page to show the new server's answer by
/// itself; the latency of each and its steps (see [`TO_NAVIGATION`]).
fn save_and_follow(tab: &Tab, area: &Area, runs: usize) -> Result<(Vec<f64>, Steps)> {
    let mut latencies = Vec::new();
    let mut steps = Steps::default();
    for run in 0..runs {
        std::thread::sleep(SETTLE);
        let before = tab.eval("document.querySelector('h1')?.textContent ?? ''");
        let mark = tab.mark();
        let saved = SystemTime::now();
        area.write("src/main.rs", &format!("// edit {run}\n"))?;
        tab.wait_reloaded(&mark, Duration::from_secs(30));
        tab.wait_for(
            &format!(
                "(document.querySelector('h1')?.textContent ?? '') !== {before} && \
                 document.readyState === 'complete'"
            ),
            Duration::from_secs(30),
        );
        // The new page's navigation, on the wall clock: `timing` gives its milestones
        // relative to its time origin.
        let timing = tab.eval(
            "(() => { const n = performance.getEntriesByType('navigation')[0]; \
             return n && [performance.timeOrigin, n.requestStart, n.responseStart, \
             n.domContentLoadedEventEnd]; })()",
        );
        let Some([origin, request, response, shown]) = timing.as_array().and_then(|t| {
            let t: Option<Vec<f64>> = t.iter().map(serde_json::Value::as_f64).collect();
            <[f64; 4]>::try_from(t?).ok()
        }) else {
            return Err(anyhow!("the page has no navigation timing: {timing}"));
        };
        let saved_ms = millis(saved.duration_since(UNIX_EPOCH)?);
        latencies.push(origin + shown - saved_ms);
        steps.to_navigation.push(origin - saved_ms);
        steps.to_request.push(request);
        steps.to_response.push(response - request);
        steps.to_shown.push(shown - response);
    }
    Ok((latencies, steps))
}

/// chromium's own part, for comparison: the same page reloaded straight from the app, without
/// the proxy, the script or a restart, from location.reload() to its DOMContentLoaded.
fn plain_reloads(browser: &Browser, app: u16, runs: usize) -> Result<Vec<f64>> {
    let mut shown_after = Vec::new();
    let direct = browser.open(&format!("http://127.0.0.1:{app}/"));
    for _ in 0..runs {
        std::thread::sleep(SETTLE);
        let mark = direct.mark();
        direct.eval("setTimeout(() => location.reload(), 0)");
        direct.wait_reloaded(&mark, Duration::from_secs(30));
        let shown = direct
            .eval("performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd")
            .as_f64()
            .ok_or_else(|| anyhow!("the app's page has no navigation timing"))?;
        shown_after.push(shown);
    }
    Ok(shown_after)
}

/// The samples and the target, in the report.
fn record(bench: &mut Bench, latencies: Vec<f64>, steps: Steps) {
    let (median, p90) = (percentile(&latencies, 0.5), percentile(&latencies, 0.9));
    // The build is `true`, about a millisecond: the window is the rest of what reload waits.
    let beyond = median - millis(DEBOUNCE);
    let report = &mut bench.report;
    let tool = Tool::Reload.name();
    report.add(S, LATENCY, tool, Value::Samples(latencies));
    report.add(S, OVERHEAD, tool, Value::Millis(beyond));
    for (metric, samples) in [
        (TO_NAVIGATION, steps.to_navigation),
        (TO_REQUEST, steps.to_request),
        (TO_RESPONSE, steps.to_response),
        (TO_SHOWN, steps.to_shown),
        (PLAIN_RELOAD, steps.plain_reload),
    ] {
        report.add(S, metric, tool, Value::Samples(samples));
    }
    report.target(
        S,
        "save -> page <= build + 150 ms",
        format!("{median:.1} ms median, p90 {p90:.1} (no-op build; 50 ms window included)"),
        median <= 150.0,
    );
}
