//! A real headless browser for the tests: Debian's `chromium`, driven over the Chrome DevTools
//! Protocol (CDP) by a small synchronous client.
//!
//! One [`Browser`] is one chromium process (with its zygotes, renderers and utilities, all in
//! its own process group) and one websocket to it. Each [`Tab`] is a page target attached with
//! a flat session, so every tab's commands and events travel on that one websocket, tagged with
//! the tab's session id.
//!
//! Nothing runs in the background: a command is sent, then messages are read until its answer
//! arrives, and every event read on the way is filed under the session it belongs to. Events
//! for a tab nobody is asking about wait in the socket, then in that tab's log, so none is lost
//! or credited to another tab. Reading the events of a tab first takes whatever has already
//! arrived, without waiting.
//!
//! Dropping a `Browser` SIGKILLs chromium's whole process group, waits until no process of the
//! group is left, and removes the profile: no stray chromium after a test, even one that
//! panicked.
//!
//! Shared as `support::browser`, or included through `#[path]` by a test file that also
//! includes `procfs.rs` and `needs.rs` beside it: this module reads /proc through
//! `super::procfs`, and requires chromium through `super::needs`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;
use tungstenite::{Message, WebSocket};

use super::needs::{Tool, require};
use super::procfs;

/// How long chromium may take to start listening, and any one CDP command to be answered.
/// Generous: a passing test never waits this long, and the tests share a loaded 2-core machine.
pub(crate) const BROWSER_DEADLINE: Duration = Duration::from_secs(30);

/// How often [`Tab::wait_for`] evaluates its condition again.
const POLL: Duration = Duration::from_millis(25);

/// The flags chromium runs with: headless, as root in a container (no sandbox, no GPU), and
/// quiet (no first-run UI, no update, sync or other background traffic that could reach the
/// network or disturb a measurement).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// What chromium prints on stderr once its DevTools endpoint is up.
const LISTENING: &str = "DevTools listening on ";

/// How many of chromium's last stderr lines a failure shows.
const STDERR_KEPT: usize = 40;

// ---------------------------------------------------------------------------------------------
// Browser

/// A headless chromium and the websocket that drives it. See the module documentation.
pub(crate) struct Browser {
    // Drop kills the group before the fields go, so the profile is removed only once nothing
    // writes to it any more.
    child: Child,
    profile: TempDir,
    connection: Mutex<Connection>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    /// Start chromium with a fresh profile and connect to it. Panics, naming chromium and
    /// showing what it printed, when it cannot be started or does not listen within
    /// [`BROWSER_DEADLINE`].
    #[track_caller]
    pub(crate) fn launch() -> Browser {
        Browser::launch_with(&[])
    }

    /// [`Browser::launch`] with more flags, such as `--host-resolver-rules=MAP evil.example
    /// 127.0.0.1` to give a page a foreign name that resolves to this machine.
    #[track_caller]
    pub(crate) fn launch_with(extra: &[&str]) -> Browser {
        let chromium = require(Tool::Chromium);
        let profile = tempfile::Builder::new()
            .prefix("reload-test-chromium-")
            .tempdir()
            .expect("create a temporary profile directory for chromium");
        let mut child = Command::new(chromium)
            .args(FLAGS)
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that Drop reaches every process chromium starts.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", chromium.display()));
        let (stderr, endpoint) = watch_stderr(&mut child);
        // From here on a panic drops `browser`, which kills chromium and removes the profile.
        let mut browser = Browser {
            child,
            profile,
            connection: Mutex::new(Connection::default()),
            stderr,
        };
        let url = match endpoint.recv_timeout(BROWSER_DEADLINE) {
            Ok(url) => url,
            Err(err) => panic!(
                "chromium did not say `{LISTENING}ws://...` within {BROWSER_DEADLINE:?} \
                 ({err}); {}",
                browser.stderr_tail()
            ),
        };
        let socket = connect(&url).unwrap_or_else(|err| {
            panic!(
                "cannot open chromium's DevTools websocket {url}: {err}; {}",
                browser.stderr_tail()
            )
        });
        browser
            .connection
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .socket = Some(socket);
        browser
    }

    /// chromium's pid, which is also its process group's id.
    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in i32")
    }

    /// The profile directory (`--user-data-dir`), removed on drop.
    pub(crate) fn profile(&self) -> &std::path::Path {
        self.profile.path()
    }

    /// Open a new tab on `url` and wait until its load event. Panics when the page cannot be
    /// loaded (with chromium's reason, e.g. `net::ERR_CONNECTION_REFUSED`).
    #[track_caller]
    pub(crate) fn open(&self, url: &str) -> Tab<'_> {
        // A blank target first, attached and listening, then the navigation: the tab's first
        // load event cannot be missed.
        let created = self.command(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = text_field(&created, "targetId").to_owned();
        let attached = self.command(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        let session = text_field(&attached, "sessionId").to_owned();
        let tab = Tab {
            browser: self,
            session,
            target,
        };
        tab.command("Page.enable", json!({}));
        tab.command("Runtime.enable", json!({}));
        let loaded = tab.loads();
        let navigated = tab.command("Page.navigate", json!({"url": url}));
        if let Some(reason) = navigated.get("errorText").and_then(Value::as_str) {
            panic!("chromium cannot load {url}: {reason}");
        }
        tab.wait_until(
            &format!("the first load of {url}"),
            BROWSER_DEADLINE,
            || tab.loads() > loaded,
        );
        tab
    }

    /// Send `method` to the browser (`session` None) or to a tab's session, and return its
    /// result. Panics with the protocol's error, or when no answer comes in time.
    #[track_caller]
    fn command(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let outcome = self.lock().command(session, method, params);
        outcome.unwrap_or_else(|err| panic!("{err}; {}", self.stderr_tail()))
    }

    /// The parameters of every event `method` that `session` (a tab's or a worker's) has had
    /// so far.
    #[track_caller]
    fn events(&self, session: &str, method: &str) -> Vec<Value> {
        let mut connection = self.lock();
        if let Err(err) = connection.drain() {
            drop(connection);
            panic!("{err}; {}", self.stderr_tail());
        }
        connection
            .events
            .get(session)
            .into_iter()
            .flatten()
            .filter(|event| event.method == method)
            .map(|event| event.params.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// chromium's last lines on stderr, for a failure message.
    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.is_empty() {
            "chromium printed nothing on stderr".to_owned()
        } else {
            format!("chromium's stderr ended with:\n{}", lines.join("\n"))
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SIGKILL, not a polite close: nothing of the profile is worth keeping, and a browser
        // that hangs must not hang the test too.
        let group = Pid::from_raw(self.pid());
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        // The group's other processes were children of chromium; once it is gone they are
        // reparented, and die a moment later. Wait for that, so a test that checks /proc right
        // after the drop sees none of them.
        let deadline = Instant::now() + BROWSER_DEADLINE;
        while !group_members(self.pid()).is_empty() && Instant::now() < deadline {
            let _ = killpg(group, Signal::SIGKILL);
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The live processes (zombies excluded) of process group `group`.
pub(crate) fn group_members(group: i32) -> Vec<i32> {
    let group = group.to_string();
    procfs::all_pids()
        .into_iter()
        .filter(|&pid| {
            procfs::stat_fields(pid).is_some_and(|fields| {
                // Fields after the name: 0 state, 1 parent, 2 process group.
                !matches!(fields.first().map(String::as_str), Some("Z" | "X") | None)
                    && fields.get(2) == Some(&group)
            })
        })
        .collect()
}

/// Read chromium's stderr on a thread for as long as chromium runs (a full pipe would block
/// it): the last lines are kept for failure messages, and the DevTools websocket address is
/// sent on the returned channel once it appears.
fn watch_stderr(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, mpsc::Receiver<String>) {
    let stderr = child.stderr.take().expect("chromium's stderr is piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&lines);
    let (endpoint, found) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix(LISTENING) {
                let _ = endpoint.send(url.trim().to_owned());
            }
            let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.len() == STDERR_KEPT {
                kept.remove(0);
            }
            kept.push(line);
        }
    });
    (lines, found)
}

/// Open the websocket at `url` (`ws://127.0.0.1:PORT/devtools/browser/ID`).
fn connect(url: &str) -> Result<WebSocket<TcpStream>, String> {
    let address = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("not a ws:// address: {url}"))?;
    let stream =
        TcpStream::connect(address).map_err(|err| format!("connect to {address}: {err}"))?;
    stream
        .set_nodelay(true)
        .map_err(|err| format!("set TCP_NODELAY: {err}"))?;
    let (socket, _) =
        tungstenite::client(url, stream).map_err(|err| format!("websocket handshake: {err}"))?;
    Ok(socket)
}

#[track_caller]
fn text_field<'v>(value: &'v Value, key: &str) -> &'v str {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("chromium's answer has no `{key}`: {value}"))
}

// ---------------------------------------------------------------------------------------------
// The connection

/// The websocket and what has been read from it: events filed by session, answers by id.
#[derive(Default)]
struct Connection {
    /// None only while [`Browser::launch`] waits for chromium to listen.
    socket: Option<WebSocket<TcpStream>>,
    next_id: u64,
    /// Every event read so far, by session id ("" for the browser's own).
    events: HashMap<String, Vec<Event>>,
}

/// One CDP event: its method (`Page.loadEventFired`) and its parameters.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) method: String,
    pub(crate) params: Value,
}

impl Connection {
    /// Send a command and read until its answer; the events read meanwhile are filed.
    fn command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let socket = self.socket.as_mut().expect("connected");
        // A drain leaves the stream non-blocking; a send must not stop half-way.
        socket
            .get_mut()
            .set_nonblocking(false)
            .map_err(|err| format!("make chromium's socket blocking: {err}"))?;
        socket
            .send(Message::text(message.to_string()))
            .map_err(|err| format!("send {method} to chromium: {err}"))?;
        let deadline = Instant::now() + BROWSER_DEADLINE;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(format!(
                    "chromium did not answer {method} within {BROWSER_DEADLINE:?}"
                ));
            }
            let Some(message) = self
                .read(Some(remaining))
                .map_err(|err| format!("read chromium's answer to {method}: {err}"))?
            else {
                continue;
            };
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                // An answer to a command nobody waits for any more (a tab closed on drop).
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(format!("chromium refused {method}: {error}"));
            }
            return Ok(message.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// File every event that has already arrived, without waiting for more.
    fn drain(&mut self) -> Result<(), String> {
        while self
            .read(None)
            .map_err(|err| format!("read chromium's events: {err}"))?
            .is_some()
        {}
        Ok(())
    }

    /// Read one message: wait up to `wait`, or not at all when None. An event is filed and
    /// returned; `Ok(None)` when nothing (complete) came in time.
    fn read(&mut self, wait: Option<Duration>) -> io::Result<Option<Value>> {
        let socket = self.socket.as_mut().expect("connected");
        let stream = socket.get_mut();
        match wait {
            Some(wait) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
            }
            None => stream.set_nonblocking(true)?,
        }
        // tungstenite keeps a partly read frame across a WouldBlock, so a timeout mid-frame
        // loses nothing: the next read goes on where this one stopped.
        let message = match socket.read() {
            Ok(Message::Text(text)) => text,
            Ok(_) => return Ok(None),
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(io::Error::other(err)),
        };
        let message: Value = serde_json::from_str(message.as_str())
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            let session = message
                .get("sessionId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.events
                .entry(session.to_owned())
                .or_default()
                .push(Event {
                    method: method.to_owned(),
                    params: message.get("params").cloned().unwrap_or(Value::Null),
                });
        }
        Ok(Some(message))
    }
}

// ---------------------------------------------------------------------------------------------
// Tabs

/// One page of the browser, with its own CDP session. Dropping it closes the page.
pub(crate) struct Tab<'b> {
    browser: &'b Browser,
    session: String,
    target: String,
}

/// A point in a tab's life, from [`Tab::mark`]: the page then, to tell later whether it has
/// been replaced by a reload since.
pub(crate) struct Mark {
    global: String,
    loads: usize,
}

impl Tab<'_> {
    /// Evaluate `js` in the page (awaiting a promise) and return its value as JSON (`null` for
    /// undefined). Panics when it throws, or when the page is between two documents.
    #[track_caller]
    pub(crate) fn eval(&self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|err| panic!("{err}\n{}", self.context()))
    }

    /// [`Tab::eval`], with what went wrong as an error instead of a panic.
    pub(crate) fn try_eval(&self, js: &str) -> Result<Value, String> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let result =
            self.browser
                .lock()
                .command(Some(&self.session), "Runtime.evaluate", params)?;
        if let Some(exception) = result.get("exceptionDetails") {
            let text = exception
                .pointer("/exception/description")
                .or_else(|| exception.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("an exception");
            return Err(format!("`{js}` threw: {text}"));
        }
        Ok(result
            .pointer("/result/value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Evaluate `condition` until it is truthy and return that value; panics after `deadline`
    /// with the condition and its last value (or error). An evaluation that fails because the
    /// page is reloading counts as not yet true.
    #[track_caller]
    pub(crate) fn wait_for(&self, condition: &str, deadline: Duration) -> Value {
        let began = Instant::now();
        loop {
            let last = self.try_eval(condition);
            if let Ok(value) = &last
                && truthy(value)
            {
                return value.clone();
            }
            if began.elapsed() > deadline {
                let last = match last {
                    Ok(value) => format!("its last value was {value}"),
                    Err(err) => format!("its last evaluation failed: {err}"),
                };
                panic!(
                    "`{condition}` was not true within {deadline:?}: {last}\n{}",
                    self.context()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// How many times the page has fired its load event: 1 once [`Browser::open`] returns,
    /// one more for every reload or navigation since.
    pub(crate) fn loads(&self) -> usize {
        self.events("Page.loadEventFired").len()
    }

    /// The parameters of every event `method` this tab has had so far (it enables the Page and
    /// Runtime domains: e.g. `Runtime.consoleAPICalled`, `Page.frameNavigated`).
    #[track_caller]
    pub(crate) fn events(&self, method: &str) -> Vec<Value> {
        self.browser.events(&self.session, method)
    }

    /// Mark the page as it is now: a global only this document has, and its load count. The
    /// page has reloaded by itself once [`Tab::reloaded_since`] says so.
    #[track_caller]
    pub(crate) fn mark(&self) -> Mark {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let global = format!("__reloadTestMark{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.eval(&format!("window.{global} = true"));
        Mark {
            global,
            loads: self.loads(),
        }
    }

    /// Whether the marked document has been replaced by a new one that has finished loading:
    /// a load event since the mark, and a document without the mark's global.
    pub(crate) fn reloaded_since(&self, mark: &Mark) -> bool {
        self.loads() > mark.loads
            && self
                .try_eval(&format!(
                    "document.readyState === 'complete' && !('{}' in window)",
                    mark.global
                ))
                .is_ok_and(|value| truthy(&value))
    }

    /// Wait until [`Tab::reloaded_since`] `mark`; panics after `deadline`.
    #[track_caller]
    pub(crate) fn wait_reloaded(&self, mark: &Mark, deadline: Duration) {
        self.wait_until("the page to reload", deadline, || self.reloaded_since(mark));
    }

    /// The console messages and uncaught exceptions of the page so far, one per line.
    pub(crate) fn console(&self) -> String {
        let mut lines = String::new();
        for call in self.events("Runtime.consoleAPICalled") {
            let kind = call.get("type").and_then(Value::as_str).unwrap_or("log");
            let words: Vec<String> = call
                .get("args")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|arg| match arg.get("value") {
                    Some(Value::String(text)) => text.clone(),
                    Some(value) => value.to_string(),
                    None => arg
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned(),
                })
                .collect();
            let _ = writeln!(lines, "console.{kind}: {}", words.join(" "));
        }
        for thrown in self.events("Runtime.exceptionThrown") {
            let details = &thrown["exceptionDetails"];
            let text = details
                .pointer("/exception/description")
                .or_else(|| details.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let _ = writeln!(lines, "uncaught: {text}");
        }
        lines
    }

    /// Send a CDP command to this tab's session and return its result (for what the helpers
    /// here do not cover, e.g. `Page.reload`).
    #[track_caller]
    pub(crate) fn command(&self, method: &str, params: Value) -> Value {
        self.browser.command(Some(&self.session), method, params)
    }

    #[track_caller]
    fn wait_until(&self, what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
        let began = Instant::now();
        while !condition() {
            assert!(
                began.elapsed() <= deadline,
                "no {what} within {deadline:?}\n{}",
                self.context()
            );
            thread::sleep(POLL);
        }
    }

    /// What a failure shows about the tab: its address, loads, console, and whether it crashed.
    fn context(&self) -> String {
        let mut context = format!("tab {}: {} load(s)", self.target, self.loads());
        if !self.events("Inspector.targetCrashed").is_empty() {
            context.push_str(", and its renderer CRASHED");
        }
        if let Ok(Value::String(url)) = self.try_eval("location.href") {
            let _ = write!(context, ", now at {url}");
        }
        let console = self.console();
        if console.is_empty() {
            context.push_str("; nothing on its console");
        } else {
            let _ = write!(context, "; its console:\n{console}");
        }
        context
    }
}

impl Drop for Tab<'_> {
    fn drop(&mut self) {
        // Closing the page ends its connections (a live-reload stream, for one), as closing a
        // real tab does. Best effort: a failure here must not turn into a panic while
        // unwinding; the browser's drop ends everything anyway.
        let _ = self.browser.lock().command(
            None,
            "Target.closeTarget",
            json!({"targetId": self.target}),
        );
    }
}

/// JavaScript's truthiness, for a value that came back as JSON.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared workers

/// A shared worker of the browser (a page's `new SharedWorker(...)`), attached with a flat
/// session of its own as a tab is: commands sent through it run in the worker (its Network
/// domain, for one), and its events are filed under its session. Dropping it detaches and
/// leaves the worker running.
// The proxy's browser tests use it; the harness's own test binary and the benchmark include
// this file too and do not.
#[allow(dead_code)]
pub(crate) struct Worker<'b> {
    browser: &'b Browser,
    session: String,
}

#[allow(dead_code)]
impl Browser {
    /// Attach to the shared worker whose script address contains `url`, waiting up to
    /// `deadline` for a page to start it. Panics when none appears.
    #[track_caller]
    pub(crate) fn shared_worker(&self, url: &str, deadline: Duration) -> Worker<'_> {
        let began = Instant::now();
        let target = loop {
            let targets = self.command(None, "Target.getTargets", json!({}));
            let found = targets
                .get("targetInfos")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|info| {
                    info.get("type").and_then(Value::as_str) == Some("shared_worker")
                        && info
                            .get("url")
                            .and_then(Value::as_str)
                            .is_some_and(|address| address.contains(url))
                })
                .map(|info| text_field(info, "targetId").to_owned());
            if let Some(target) = found {
                break target;
            }
            assert!(
                began.elapsed() <= deadline,
                "no shared worker at {url} within {deadline:?}: chromium lists {targets}"
            );
            thread::sleep(POLL);
        };
        let attached = self.command(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        Worker {
            browser: self,
            session: text_field(&attached, "sessionId").to_owned(),
        }
    }
}

#[allow(dead_code)]
impl Worker<'_> {
    /// Send a CDP command to the worker's session and return its result.
    #[track_caller]
    pub(crate) fn command(&self, method: &str, params: Value) -> Value {
        self.browser.command(Some(&self.session), method, params)
    }

    /// The parameters of every event `method` the worker's session has had so far.
    #[track_caller]
    pub(crate) fn events(&self, method: &str) -> Vec<Value> {
        self.browser.events(&self.session, method)
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        // Detach only: the worker holds the pages' event stream and must outlive the session.
        let _ = self.browser.lock().command(
            None,
            "Target.detachFromTarget",
            json!({"sessionId": self.session}),
        );
    }
}
