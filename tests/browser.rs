//! The browser harness itself (tests/support/browser.rs), against a tiny std-only HTTP server:
//! pages load and evaluate, a page that reloads by itself is seen to, tabs do not share state
//! or events, and no chromium outlives its `Browser`.

#[path = "support/browser.rs"]
mod browser;
// The harness reads /proc through it; only two of its readers are used in this binary.
#[allow(dead_code)]
#[path = "support/procfs.rs"]
mod procfs;
// The harness requires chromium through it; the other tools are for the other tests.
#[allow(dead_code)]
#[path = "support/needs.rs"]
mod needs;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use browser::{Browser, group_members};
use serde_json::json;

/// Deadline for a page to notice a change and reload: far above the page's 50 ms polling, for a
/// loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// The page the server serves: its version, how many pages it has served, and a poll of
/// `/version` that reloads the page once the version differs from the one it was served with
/// (what the live-reload client does on a `ready` event).
const PAGE: &str = r#"<!doctype html>
<html><head><title>v{VERSION}</title></head>
<body>
<p id="version">{VERSION}</p><p id="served">{SERVED}</p>
<script>
const served = {VERSION};
setInterval(async () => {
  const now = Number(await (await fetch("/version")).text());
  if (now !== served) location.reload();
}, 50);
</script>
</body></html>
"#;

/// A server on 127.0.0.1 that answers `/` with [`PAGE`] and `/version` with the version, one
/// request per connection. Dropping it stops the accept loop.
struct Server {
    port: u16,
    version: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let port = listener
            .local_addr()
            .expect("the test server's address")
            .port();
        let server = Server {
            port,
            version: Arc::new(AtomicU64::new(1)),
            served: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (version, served, stop) = (
            Arc::clone(&server.version),
            Arc::clone(&server.served),
            Arc::clone(&server.stop),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (version, served) = (Arc::clone(&version), Arc::clone(&served));
                thread::spawn(move || answer(stream, &version, &served));
            }
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Pages served so far.
    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Change the page: the next `/version` answer differs from what open pages were served.
    fn bump(&self) -> u64 {
        self.version.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(stream: TcpStream, version: &AtomicU64, served: &AtomicU64) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the head, unread, would turn the close into a reset the browser may report
    // as a failed request.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let version = version.load(Ordering::Relaxed);
    let (status, kind, body) = match path.split('?').next() {
        Some("/") => {
            let count = served.fetch_add(1, Ordering::Relaxed) + 1;
            let page = PAGE
                .replace("{VERSION}", &version.to_string())
                .replace("{SERVED}", &count.to_string());
            ("200 OK", "text/html; charset=utf-8", page)
        }
        Some("/version") => ("200 OK", "text/plain", version.to_string()),
        _ => ("404 Not Found", "text/plain", "not here".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = (&stream).write_all(response.as_bytes());
}

#[test]
fn a_page_loads_and_evaluates() {
    let server = Server::start();
    let began = Instant::now();
    let browser = Browser::launch();
    let launched = began.elapsed();
    let tab = browser.open(&server.url("/"));
    eprintln!(
        "chromium: launched in {launched:?}, first page loaded {:?} after the launch",
        began.elapsed().saturating_sub(launched)
    );

    assert_eq!(tab.eval("document.title"), json!("v1"));
    assert_eq!(
        tab.eval("document.getElementById('version').textContent"),
        json!("1")
    );
    assert_eq!(tab.eval("1 + 2"), json!(3));
    assert_eq!(tab.eval("undefined"), json!(null));
    assert_eq!(
        tab.eval("Promise.resolve({answer: [4, 2]})"),
        json!({"answer": [4, 2]}),
        "a promise is awaited and an object comes back by value"
    );
    let thrown = tab
        .try_eval("null.field")
        .expect_err("a TypeError is an error");
    assert!(thrown.contains("TypeError"), "{thrown}");
    assert_eq!(
        tab.loads(),
        1,
        "open waits for the first load, and only one happened"
    );

    tab.eval("setTimeout(() => { window.later = 'yes'; console.log('set', 42) }, 200)");
    assert_eq!(tab.wait_for("window.later", DEADLINE), json!("yes"));
    assert!(
        tab.console().contains("console.log: set 42"),
        "{}",
        tab.console()
    );
}

#[test]
fn a_page_that_reloads_itself_is_seen_to() {
    let server = Server::start();
    let browser = Browser::launch();
    let tab = browser.open(&server.url("/"));
    let mark = tab.mark();
    // The page polls every 50 ms; a quarter of a second without a change is several polls
    // that must not have reloaded it.
    thread::sleep(Duration::from_millis(250));
    assert!(
        !tab.reloaded_since(&mark),
        "nothing changed, yet the page reloaded"
    );
    assert_eq!(tab.loads(), 1);

    let version = server.bump();
    tab.wait_reloaded(&mark, DEADLINE);
    assert_eq!(
        tab.eval("document.getElementById('version').textContent"),
        json!(version.to_string())
    );
    assert_eq!(tab.loads(), 2, "one reload, one more load event");
    assert_eq!(
        tab.events("Page.frameNavigated").len(),
        2,
        "the first page and its reload"
    );

    // A reload the test asks for is seen the same way.
    let mark = tab.mark();
    tab.command("Page.reload", json!({}));
    tab.wait_reloaded(&mark, DEADLINE);
    assert_eq!(tab.loads(), 3);
}

#[test]
fn eight_tabs_are_independent_and_all_follow_a_change() {
    let server = Server::start();
    let browser = Browser::launch();
    let tabs: Vec<_> = (0..8)
        .map(|i| browser.open(&server.url(&format!("/?tab={i}"))))
        .collect();
    for (i, tab) in tabs.iter().enumerate() {
        tab.eval(&format!("window.mine = {i}"));
    }
    for (i, tab) in tabs.iter().enumerate() {
        assert_eq!(
            tab.eval("window.mine"),
            json!(i),
            "tab {i} sees its own global"
        );
        assert_eq!(tab.eval("location.search"), json!(format!("?tab={i}")));
        assert_eq!(tab.loads(), 1, "tab {i}: no other tab's load event");
    }
    assert_eq!(server.served(), 8);

    let marks: Vec<_> = tabs.iter().map(browser::Tab::mark).collect();
    let version = server.bump();
    for (tab, mark) in tabs.iter().zip(&marks) {
        tab.wait_reloaded(mark, DEADLINE);
        assert_eq!(tab.eval("document.title"), json!(format!("v{version}")));
    }
    for (i, tab) in tabs.iter().enumerate() {
        assert_eq!(tab.loads(), 2, "tab {i}: its own reload, counted once");
    }
    assert_eq!(server.served(), 16);
}

#[test]
fn dropping_the_browser_leaves_no_chromium() {
    let server = Server::start();
    let browser = Browser::launch();
    // A page still open when the browser goes, its renderer included: forgotten, so that its
    // drop does not close it first.
    std::mem::forget(browser.open(&server.url("/")));
    let group = browser.pid();
    let profile = browser.profile().to_owned();
    let members = group_members(group);
    // The browser process, zygotes, a renderer, utilities: the check below sees real processes.
    assert!(members.len() > 2, "chromium's group: {members:?}");
    assert!(profile.is_dir());
    drop(browser);
    assert_eq!(
        group_members(group),
        Vec::<i32>::new(),
        "chromium's group outlived it"
    );
    assert!(
        !profile.exists(),
        "the profile {} is left",
        profile.display()
    );
}

#[test]
fn a_panicking_test_leaves_no_chromium() {
    // Here, not only in the thread's launch: the test would fail with a lost channel instead.
    needs::require(needs::Tool::Chromium);
    let (sender, receiver) = std::sync::mpsc::channel();
    let test = thread::spawn(move || {
        let browser = Browser::launch();
        sender
            .send((browser.pid(), browser.profile().to_owned()))
            .expect("the test waits");
        let tab = browser.open("about:blank");
        tab.wait_for("false", Duration::from_millis(100));
    });
    let (group, profile) = receiver.recv().expect("the browser started");
    let outcome = test.join();
    assert!(
        outcome.is_err(),
        "the condition never held, so the thread panicked"
    );
    assert_eq!(
        group_members(group),
        Vec::<i32>::new(),
        "chromium's group outlived the panic"
    );
    assert!(
        !profile.exists(),
        "the profile {} is left",
        profile.display()
    );
}
