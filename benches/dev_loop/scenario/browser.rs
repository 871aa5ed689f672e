//! Scenario 9, a save as the developer sees it: from the write to the new page shown in a real
//! browser (headless chromium) through reload's proxy, with the live-reload script doing the
//! reload. The build is `true` and the server the stand-in HTTP server, so what is measured is
//! the debounce window plus reload's and the page's own work.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};

use super::proxy::two_ports;
use crate::browser::Browser;
use crate::report::Value;
use crate::session::Session;
use crate::stats::{millis, percentile};
use crate::tools::{Job, Tool, find_on_path};
use crate::wait::wait_for;
use crate::{Bench, DEBOUNCE, SETTLE, STARTUP_TIMEOUT};

const S: &str = "9 browser";
const LATENCY: &str = "save -> new page shown in the browser";
const OVERHEAD: &str = "save -> page, beyond the 50 ms window and the build";

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
    let measured = bench.attempt(S, &[LATENCY, OVERHEAD], Tool::Reload, |_, exe| {
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
        let mut latencies = Vec::new();
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
            // When the new page was in: its navigation's DOMContentLoaded, on the wall clock.
            let shown = tab
                .eval(
                    "performance.timeOrigin + \
                     performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd",
                )
                .as_f64()
                .ok_or_else(|| anyhow!("the page has no navigation timing"))?;
            let saved_ms = millis(saved.duration_since(UNIX_EPOCH)?);
            latencies.push(shown - saved_ms);
        }
        drop(session);
        Ok(latencies)
    });
    if let Some(latencies) = measured {
        let median = percentile(&latencies, 0.5);
        // The build is `true`, about a millisecond: the window is the rest of what reload waits.
        let beyond = median - millis(DEBOUNCE);
        let report = &mut bench.report;
        let tool = Tool::Reload.name();
        report.add(S, LATENCY, tool, Value::Samples(latencies));
        report.add(S, OVERHEAD, tool, Value::Millis(beyond));
        report.target(
            S,
            "save -> page <= build + 150 ms",
            format!("{median:.1} ms median (no-op build; 50 ms window included)"),
            median <= 150.0,
        );
    }
    Ok(())
}
