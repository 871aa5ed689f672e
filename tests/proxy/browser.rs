//! The proxy with a real browser (headless chromium, tests/support/browser.rs): a page follows a
//! save by itself, a badge shows while a build runs, a failed build shows over the page and goes
//! away with the fix, every tab follows, and a page that reconnects reloads only when another
//! server answers.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use serde_json::json;

use super::{ESTABLISHED, Proxied, proxied, sockets_on, start};
use crate::support::browser::{BROWSER_DEADLINE, Browser, Tab};
use crate::support::needs::{Tool, require};

/// Far above what a save takes to reach the page, for a loaded 2-core machine.
const FOLLOW: Duration = Duration::from_secs(60);

fn heading(tab: &Tab<'_>) -> String {
    tab.eval("document.querySelector('h1')?.textContent ?? ''")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The text of reload's elements in the page (the build-failure overlay, the building badge),
/// "" when none shows.
const OVERLAY: &str = "[...document.querySelectorAll('reload-ui')]\
    .map((ui) => (ui.shadowRoot ? ui.shadowRoot.textContent : '')).join('')";

#[test]
fn a_page_follows_a_save_without_the_test_reloading_it() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    assert_eq!(heading(&tab), "v1");
    // The client is connected once it has heard the state.
    tab.wait_for(
        "document.querySelector('script[data-generation]') !== null",
        BROWSER_DEADLINE,
    );
    let mark = tab.mark();
    project.write("src/version.txt", "v2\n");
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
    assert_eq!(heading(&tab), "v2");
}

#[test]
fn the_overlay_shows_a_compile_error_and_goes_away_after_the_fix() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    let mark = tab.mark();
    project.write("src/version.txt", "v2-FAIL\n");
    tab.wait_for(
        &format!("{OVERLAY}.includes('v2-FAIL does not compile')"),
        FOLLOW,
    );
    assert!(
        !tab.reloaded_since(&mark),
        "a failed build does not reload the page"
    );
    assert_eq!(heading(&tab), "v1", "the old server keeps serving the page");
    // A page loaded during the failure shows it too.
    let late = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    late.wait_for(
        &format!("{OVERLAY}.includes('v2-FAIL does not compile')"),
        FOLLOW,
    );
    let late_mark = late.mark();

    project.write("src/version.txt", "v3\n");
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v3'", FOLLOW);
    tab.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
    late.wait_reloaded(&late_mark, FOLLOW);
    late.wait_for("document.querySelector('h1')?.textContent === 'v3'", FOLLOW);
    // Nothing of reload's shows once the fix is served: no overlay, and no badge left over from
    // the build (a page that connects after the ready hears the build passed).
    late.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
    assert_eq!(late.eval(OVERLAY), "");
    assert_eq!(tab.eval(OVERLAY), "");
}

#[test]
fn the_page_of_an_app_that_exited_before_it_listened_becomes_the_app_after_the_fix() {
    use super::app_port::{EXITS_WHEN_BROKEN, PATIENT, PATIENT_READY, project};
    let project = project("v1-BROKEN", EXITS_WHEN_BROKEN, PATIENT_READY, PATIENT);
    let proxied = start(&project, &[]);
    proxied
        .session
        .wait_for_stderr("exited with 3 before it was ready");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    // Answered at once (the hold timeout is ten minutes), with what happened.
    tab.wait_for(
        "document.querySelector('h1')?.textContent === 'Your app exited'",
        FOLLOW,
    );
    let said = format!(
        "Your app exited with status 3 before it listened on :{}",
        proxied.app
    );
    let text = tab.eval("document.body.textContent");
    assert!(
        text.as_str().is_some_and(|text| text.contains(&said)),
        "{text}"
    );
    let mark = tab.mark();
    project.write("src/version.txt", "v2\n");
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
    assert_eq!(heading(&tab), "v2");
}

#[test]
fn an_open_page_says_at_once_that_the_new_app_exited_and_follows_the_fix() {
    use super::app_port::{EXITS_WHEN_BROKEN, PATIENT, PATIENT_READY, project};
    let project = project("v1", EXITS_WHEN_BROKEN, PATIENT_READY, PATIENT);
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    tab.wait_for("document.querySelector('h1')?.textContent === 'v1'", FOLLOW);
    let mark = tab.mark();
    // The new server exits before it listens; nothing restarts it until a change, and the ready
    // timeout is ten minutes: the page is told now, over what it shows, without a reload.
    project.write("src/version.txt", "v2-BROKEN\n");
    let said = format!(
        "Your app exited with status 3 before it listened on :{}",
        proxied.app
    );
    tab.wait_for(&format!("{OVERLAY}.includes({})", json!(said)), FOLLOW);
    assert!(!tab.reloaded_since(&mark), "the page stays as it was");
    // A tab opened now gets the trouble page, and a page told in its hello shows the same.
    let late = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    late.wait_for(
        "document.querySelector('h1')?.textContent === 'Your app exited'",
        FOLLOW,
    );
    project.write("src/version.txt", "v3\n");
    for tab in [&tab, &late] {
        tab.wait_for("document.querySelector('h1')?.textContent === 'v3'", FOLLOW);
        tab.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
    }
}

#[test]
fn a_badge_shows_while_a_build_runs_and_goes_when_the_page_follows() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    let mark = tab.mark();
    // A build that runs until the next save cancels it. A page whose stream connects after it
    // began hears it in the hello, so the badge shows either way.
    project.write("src/version.txt", "v2-HANG\n");
    tab.wait_for(&format!("{OVERLAY}.includes('building')"), FOLLOW);
    assert!(
        !tab.reloaded_since(&mark),
        "a build that runs does not reload the page"
    );
    assert_eq!(heading(&tab), "v1");
    project.write("src/version.txt", "v3\n");
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v3'", FOLLOW);
    tab.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
}

#[test]
fn eight_tabs_all_follow_a_save() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let url = format!("http://127.0.0.1:{}/", proxied.proxy);
    let tabs: Vec<_> = (0..8).map(|_| browser.open(&url)).collect();
    let marks: Vec<_> = tabs.iter().map(Tab::mark).collect();
    // One event stream for all tabs (a SharedWorker): eight of their own, with HTTP/1.1's six
    // connections per host, would leave none for the pages.
    let connections = sockets_on(proxied.proxy, ESTABLISHED).len();
    assert!(
        connections <= 7,
        "{connections} connections to the proxy for eight tabs"
    );
    project.write("src/version.txt", "v2\n");
    for (tab, mark) in tabs.iter().zip(&marks) {
        tab.wait_reloaded(mark, FOLLOW);
        tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
    }
}

#[test]
fn after_a_reconnect_a_page_reloads_only_when_the_generation_changed() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let mut first = start(&project, &[]);
    first.wait_serving("v1");
    let (proxy, app) = (first.proxy, first.app);
    let relay = Relay::start(proxy);
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", relay.port));
    // Connected: a failed build reaches the page through the worker's stream. It fails, so the
    // same server keeps serving, and the failure gives the page something to show again when
    // a hello tells it the state after the reconnect.
    project.write("src/version.txt", "v1-FAIL\n");
    tab.wait_for(
        &format!("{OVERLAY}.includes('v1-FAIL does not compile')"),
        FOLLOW,
    );
    let mark = tab.mark();
    tab.eval("window.__kept = 1; document.querySelector('reload-ui').__before = 1");
    // The worker's network, to see its stream come back. Enabled only now: a hello seen from
    // here on is a new stream's.
    let worker = browser.shared_worker("/__reload/client.js", BROWSER_DEADLINE);
    worker.command("Network.enable", json!({}));

    // (a) The network goes away and comes back; reload and its server stay as they were.
    let cut = relay.cut();
    assert!(cut >= 1, "the event stream went through the relay");
    first
        .session
        .wait_until("the worker's event stream to come back", || {
            worker
                .events("Network.eventSourceMessageReceived")
                .into_iter()
                .find(|message| message["eventName"] == "hello")
        });
    // The page has handled that hello once the overlay is shown afresh (a hello with a failed
    // build shows it again; nothing else happened that would), or else it has reloaded on it
    // and lost the marker.
    tab.wait_for(
        "!window.__kept || [...document.querySelectorAll('reload-ui')].some((ui) => !ui.__before)",
        FOLLOW,
    );
    assert_eq!(
        tab.eval("window.__kept"),
        json!(1),
        "the same generation after a reconnect: no reload"
    );
    assert!(!tab.reloaded_since(&mark), "no reload: {}", tab.console());
    assert_eq!(
        project.starts().len(),
        1,
        "one server throughout{}",
        first.session.context()
    );

    // (b) reload is restarted: stopped, and a new one started at once on the same ports, with
    // the app serving other content. Its servers count from 1 again, maybe within the second
    // the first run started in: the page must still see another generation.
    first.session.terminate();
    first.session.wait_no_processes();
    assert!(
        TcpStream::connect(("127.0.0.1", app)).is_err(),
        "the first run's server is gone"
    );
    drop(first);
    project.write("src/version.txt", "v2\n");
    let second = Proxied {
        session: project.start(&[
            "--proxy",
            &proxy.to_string(),
            "--app-port",
            &app.to_string(),
        ]),
        proxy,
        app,
    };
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
    assert_eq!(tab.eval("window.__kept ?? null"), json!(null), "a new page");
    tab.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
    assert_eq!(project.starts().len(), 2, "{}", second.session.context());
}

/// A TCP relay in front of the proxy for the browser to go through: [`Relay::cut`] ends every
/// connection it carries at once, as a network that goes away does (Wi-Fi that drops, a laptop
/// that sleeps), while reload and its server keep running; new connections pass again at once.
/// chromium has nothing of the kind: its offline emulation (`Network.emulateNetworkConditions`,
/// tried on the shared worker's target) fails new requests only and leaves an open event
/// stream connected.
struct Relay {
    port: u16,
    /// Both ends of every connection carried so far.
    carried: Arc<Mutex<Vec<TcpStream>>>,
    stopped: Arc<AtomicBool>,
}

impl Relay {
    fn start(to: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the relay's port");
        let port = listener.local_addr().expect("the relay's address").port();
        let carried = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (into, stop) = (Arc::clone(&carried), Arc::clone(&stopped));
        thread::spawn(move || {
            for browser in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // While reload restarts, nothing listens on the proxy's port: the browser's
                // connection ends unanswered, and the browser tries again later.
                let Ok(browser) = browser else { continue };
                let Ok(proxy) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                if let Err(err) = carry(browser, proxy, &into) {
                    eprintln!("the relay could not carry a connection: {err}");
                }
            }
        });
        Relay {
            port,
            carried,
            stopped,
        }
    }

    /// End every connection carried so far, both ways; how many there were.
    fn cut(&self) -> usize {
        let mut carried = self.carried.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in carried.iter() {
            // A connection that has ended by itself is already shut down.
            let _ = stream.shutdown(Shutdown::Both);
        }
        let cut = carried.len() / 2;
        carried.clear();
        cut
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accepting thread, which then sees it is stopped.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.cut();
    }
}

/// Copy bytes between `browser` and `proxy` both ways on two threads, each passing an end of
/// stream on as it comes; keep both ends in `carried` for [`Relay::cut`].
fn carry(browser: TcpStream, proxy: TcpStream, carried: &Mutex<Vec<TcpStream>>) -> io::Result<()> {
    let (browser_out, proxy_out) = (browser.try_clone()?, proxy.try_clone()?);
    carried
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend([browser.try_clone()?, proxy.try_clone()?]);
    for (mut from, mut to) in [(browser, proxy_out), (proxy, browser_out)] {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    Ok(())
}
