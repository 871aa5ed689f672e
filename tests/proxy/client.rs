//! client.js, the live-reload script, run by node against fakes of what it touches in a
//! browser (EventSource, SharedWorker, the DOM, location): which events reload a page, the
//! badge, the overlay (text only, never HTML), the worker that lets tabs share one stream.
//! The events and the 503 page the overlay is compared with come from a real reload. The same
//! script in a real browser is tests/proxy/browser.rs; these reach the cases a browser makes
//! hard to set up, in a fraction of the time.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::{EventStream, get, proxied, start};
use crate::support::Project;
use crate::support::needs::{Tool, require};

/// Fakes for what client.js touches in a browser (EventSource, SharedWorker, the DOM,
/// location); then the scenario, asserting with node's `assert`. Elements throw on
/// innerHTML and friends, so the client can only have used textContent.
const HARNESS: &str = r##"
"use strict";
const vm = require("vm"), assert = require("assert");
const CLIENT = require("fs").readFileSync(0, "utf8");
const banned = (name) => () => { throw new Error(name + " used"); };
function element(tag) {
  const e = {
    tag, children: [], parent: null, style: "", textContent: "", shadowRoot: null,
    append(...nodes) { for (const n of nodes) { n.parent = this; this.children.push(n); } },
    remove() { const s = this.parent.children; s.splice(s.indexOf(this), 1); this.parent = null; },
    attachShadow(options) {
      assert.equal(options.mode, "open");
      this.shadowRoot = element("#shadow-root");
      this.shadowRoot.parent = this;
      return this.shadowRoot;
    },
    get firstChild() { return this.children[0]; },
    insertAdjacentHTML: banned("insertAdjacentHTML"),
  };
  for (const name of ["innerHTML", "outerHTML"])
    Object.defineProperty(e, name, { get: banned(name), set: banned(name) });
  return e;
}
const text = (e) => e.textContent + (e.shadowRoot ? text(e.shadowRoot) : "") + e.children.map(text).join("");
const all = (e) => [e, ...(e.shadowRoot ? all(e.shadowRoot) : []), ...e.children.flatMap(all)];

// A page served by `generation`; with `shared`, SharedWorker exists.
function page(generation, shared) {
  const p = { reloads: 0, sources: [], workers: [], listeners: {} };
  class EventSource {
    constructor(url) { assert.equal(url, "/__reload/events"); this.on = {}; p.sources.push(this); }
    addEventListener(type, f) { this.on[type] = f; }
  }
  class SharedWorker {
    constructor(url, options) {
      this.url = url; this.options = options; this.port = { sent: [], postMessage(m) { this.sent.push(m); } };
      p.workers.push(this);
    }
  }
  p.html = element("html");
  const document = {
    currentScript: { dataset: { generation }, src: "http://127.0.0.1:8090/__reload/client.js" },
    createElement: element, documentElement: p.html, write: banned("document.write"),
  };
  const context = { document, EventSource, location: { reload() { p.reloads++; } },
    addEventListener(type, f) { p.listeners[type] = f; } };
  if (shared) context.SharedWorker = SharedWorker;
  vm.runInNewContext(CLIENT, context);
  // Deliver an event the way the page gets it: from its own stream, or from the worker.
  p.emit = (type, data) => {
    if (p.sources.length) p.sources[0].on[type]({ data: JSON.stringify(data) });
    else p.workers[0].port.onmessage({ data: { type, data } });
  };
  p.hosts = () => p.html.children.filter((e) => e.tag == "reload-ui");
  p.overlay = () => p.hosts().find((h) => text(h).startsWith("close"));
  p.badge = () => p.hosts().find((h) => text(h) == "building\u2026");
  return p;
}
"##;

/// Run `scenario` after the harness under node, with `client` as client.js; it must get to its
/// end.
#[track_caller]
fn run_client(client: &str, scenario: &str) {
    let node = require(Tool::Node);
    let script = format!("{HARNESS}\n{scenario}\nconsole.log('scenario done');\n");
    let mut node = Command::new(node)
        .arg("-e")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start node: {err}"));
    node.stdin
        .take()
        .expect("node's stdin is piped")
        .write_all(client.as_bytes())
        .expect("client.js goes to node's stdin");
    let output = node.wait_with_output().expect("node finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("scenario done"),
        "node: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The client.js reload serves: the scenarios that need no server's events use it as built.
const CLIENT_JS: &str = reload::proxy::page::CLIENT_JS;

#[test]
fn the_page_reloads_for_a_new_generation_only() {
    require(Tool::Node);
    run_client(
        CLIENT_JS,
        r#"
const p = page("5", false);
assert.equal(p.sources.length, 1, "no SharedWorker: a stream of its own");
p.emit("hello", { generation: 5, build: "passed", output: null, how: null });
p.emit("ready", { generation: 5 });
p.emit("hello", { generation: null, build: "running", output: null, how: null });
assert.equal(p.reloads, 0, "its own generation, or none ready: no reload");
p.emit("ready", { generation: 6 });
assert.equal(p.reloads, 1, "a new server is ready");

const reconnected = page("5", false);
reconnected.emit("hello", { generation: 7, build: "passed", output: null, how: null });
assert.equal(reconnected.reloads, 1, "a hello after a reconnect with another generation");

const triggered = page("5", false);
triggered.emit("reload", {});
assert.equal(triggered.reloads, 1, "reload always reloads");

const failedPage = page("0", false);
failedPage.emit("hello", { generation: null, build: "failed", output: "\u001b[31merror\u001b[0m", how: "exit 1" });
failedPage.emit("failed", { how: "exit 1", errors: 1, output: "error" });
assert.equal(failedPage.reloads, 0);
assert.equal(failedPage.hosts().length, 0, "the failed-build page shows no overlay");
failedPage.emit("ready", { generation: 1 });
assert.equal(failedPage.reloads, 1, "the failed-build page becomes the app");
"#,
    );
}

#[test]
fn a_badge_shows_while_a_build_runs() {
    require(Tool::Node);
    run_client(
        CLIENT_JS,
        r#"
const p = page("2", false);
p.emit("building", {});
p.emit("building", {});
assert.equal(p.hosts().length, 1);
assert.ok(p.badge() && p.badge().shadowRoot, "one badge, in a shadow root");
p.emit("failed", { how: "exit 1", errors: 1, output: "e" });
assert.ok(!p.badge(), "a failure ends the build");
assert.ok(p.overlay());
p.emit("building", {});
assert.ok(p.badge() && p.overlay(), "the overlay stays while the fix builds");
p.emit("hello", { generation: 2, build: "running", output: null, how: null });
assert.ok(p.badge(), "still running after a reconnect");
p.emit("hello", { generation: 2, build: "passed", output: null, how: null });
assert.equal(p.hosts().length, 0, "a hello with nothing running or failed clears both");
p.emit("building", {});
p.emit("ready", { generation: 2 });
assert.ok(!p.badge(), "ready removes it");
"#,
    );
}

#[test]
fn tabs_share_one_stream_through_the_worker() {
    require(Tool::Node);
    run_client(
        CLIENT_JS,
        r#"
// The page: a SharedWorker of the script's own URL, named reload, and no stream of its own.
const p = page("4", true);
assert.equal(p.sources.length, 0);
assert.equal(p.workers.length, 1);
assert.equal(p.workers[0].url, "http://127.0.0.1:8090/__reload/client.js");
assert.equal(p.workers[0].options.name, "reload");
p.emit("ready", { generation: 5 });
assert.equal(p.reloads, 1, "events through the worker's port");
p.listeners.pagehide();
assert.deepEqual(p.workers[0].port.sent, ["bye"]);
p.workers[0].onerror();
assert.equal(p.sources.length, 1, "a worker that cannot load: a stream of its own");

// The worker: the same file without a document.
const sources = [];
class EventSource { constructor() { this.on = {}; sources.push(this); } addEventListener(t, f) { this.on[t] = f; } }
const self = {};
vm.runInNewContext(CLIENT, { self, EventSource });
assert.equal(sources.length, 1);
const send = (type, data) => sources[0].on[type]({ data: JSON.stringify(data) });
const port = () => ({ got: [], postMessage(m) { this.got.push(m); } });
const first = port();
self.onconnect({ ports: [first] });
assert.deepEqual(first.got, [], "nothing to replay before the first hello");
send("hello", { generation: 1, build: "passed", output: null, how: null });
send("building", {});
send("failed", { how: "exit 1", errors: 2, output: "boom" });
assert.deepEqual(first.got.map((m) => m.type), ["hello", "building", "failed"]);
assert.deepEqual(first.got[2].data, { how: "exit 1", errors: 2, output: "boom" });

const second = port();
self.onconnect({ ports: [second] });
assert.deepEqual(second.got, [{ type: "hello",
  data: { how: "exit 1", errors: 2, output: "boom", generation: 1, build: "failed" } }],
  "a late tab gets the failure it missed");
send("building", {});
send("ready", { generation: 2 });
const third = port();
self.onconnect({ ports: [third] });
// A ready ends the build that made it: a tab that joins after it shows no badge.
assert.deepEqual(third.got[0].data, { generation: 2, build: "passed" });
first.onmessage({ data: "bye" });
send("reload", {});
assert.equal(first.got.length, 5, "a tab that went hears no more");
assert.deepEqual(second.got.at(-1), { type: "reload", data: {} });
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// The overlay, from a real reload's events

/// `sh build.sh`: a version with FAIL in it fails printing ../scratch/build-output as it is;
/// any other version builds.
const BUILD: &str = r#"v=$(cat src/version.txt)
case "$v" in
*FAIL*)
    cat ../scratch/build-output >&2
    exit 1 ;;
esac
mkdir -p build
echo "$v" > build/version.txt
"#;

/// The proxy tests' project at `version`, its failing build printing `output`.
fn failing_with(version: &str, output: &str) -> Project {
    let project = proxied(version).file("build.sh", BUILD);
    std::fs::write(project.scratch("build-output"), output).expect("write the build's output");
    project
}

/// `html` (a page's markup, spans and entities only) as the text a browser shows of it.
fn html_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        text.push_str(&rest[..at]);
        let end = rest[at..].find('>').expect("tags are closed") + at;
        let tag = &rest[at..=end];
        assert!(
            tag.starts_with("<span style=\"") || tag == "</span>",
            "{tag}"
        );
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every control character, C0, DEL and C1, between letters; escapes of every kind.
fn full_of_controls() -> String {
    let mut text: String = ('\0'..='\u{a0}').flat_map(|c| [c, 'x']).collect();
    text.push_str(
        "\u{85}\u{9b}31m\u{90}\x1b[1;31merror\x1b[0m: <b>&\x1b]8;;https://x\x1b\\link\x1b]8;;\x07\
         \x1b[2K\x1b7\x1bP1$q\x1b\\\r\nend\x1b[3",
    );
    text
}

#[test]
fn a_failed_build_shows_an_overlay_made_of_text() {
    require(Tool::Node);
    let output = "\x1b[0m\x1b[1m\x1b[38;5;9merror[E0425]\x1b[0m: <img src=x onerror=alert(1)>\r\n\
                  \x20 \x1b[1m\x1b[94m-->\x1b[0m src/main.rs:12:5\n\
                  \x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\ \x1b[2K./main.go:7:2: \
                  undefined\x1b[3";
    let project = failing_with("v1", output);
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let events = EventStream::open(proxied.proxy);
    events.wait_for(&proxied.session, "event: hello");
    project.write("src/version.txt", "v2-FAIL\n");
    let failed = events.data_of(&proxied.session, "failed");
    let client = get(proxied.proxy, "/__reload/client.js").text();
    run_client(
        &client,
        &r#"
const p = page("3", false);
p.emit("failed", FAILED_DATA);
assert.equal(p.hosts().length, 1);
const overlay = p.overlay();
assert.ok(overlay && overlay.shadowRoot, "the overlay lives in a shadow root");
const panel = overlay.shadowRoot.firstChild;
assert.match(panel.style, /position:fixed/);
assert.match(panel.style, /overflow:auto/);
assert.equal(text(panel.children[1]), "Build failed: 1 error (exit status 1)");
const pre = panel.children.find((e) => e.tag == "pre");
assert.match(pre.style, /white-space:pre-wrap;overflow-wrap:anywhere/, "long lines wrap");
assert.equal(text(pre), "error[E0425]: <img src=x onerror=alert(1)>\n  --> src/main.rs:12:5\nlink ./main.go:7:2: undefined");
assert.ok(all(pre).every((e) => ["pre", "span"].includes(e.tag)), "only spans, text in textContent");
const span = (t) => pre.children.find((e) => e.textContent == t);
assert.match(span("error[E0425]").style, /font-weight:bold/);
assert.match(span("error[E0425]").style, /color:#f77/);
assert.match(span("-->").style, /color:#7cf/);
for (const location of ["src/main.rs:12:5", "./main.go:7:2"])
  assert.match(span(location).style, /background/, location + " is highlighted");
assert.doesNotMatch(span(": undefined").style, /background/);

p.emit("failed", { how: "exit 2", errors: null, headline: "Build failed (exit status 2)", output: "again" });
assert.equal(p.hosts().length, 1, "one overlay at a time");
assert.equal(text(p.overlay().shadowRoot.firstChild.children[1]), "Build failed (exit status 2)");

const close = p.overlay().shadowRoot.firstChild.children[0];
assert.equal(close.tag, "button");
close.onclick();
assert.equal(p.hosts().length, 0, "dismissed");
p.emit("hello", { generation: 3, build: "failed", output: "again", how: "exit 2", headline: "Build failed (exit status 2)" });
assert.equal(p.hosts().length, 0, "dismissed until the next failure");
p.emit("failed", { how: "exit 1", errors: 1, headline: "Build failed: 1 error (exit status 1)", output: "once more" });
assert.equal(text(p.overlay().shadowRoot.firstChild.children[1]), "Build failed: 1 error (exit status 1)");
p.emit("ready", { generation: 3 });
assert.equal(p.hosts().length, 0, "a success clears it");
assert.equal(p.reloads, 0);
p.emit("failed", { how: "exit 1", errors: 1, output: "x" });
p.emit("ready", { generation: 4 });
assert.equal(p.reloads, 1, "and the next server's readiness reloads the page");

const late = page("3", false);
late.emit("hello", { generation: 3, build: "failed", output: "late", how: "exit 1", headline: "Build failed (exit status 1)" });
assert.ok(late.overlay(), "a page loaded during the failure shows it too");
"#
        .replace("FAILED_DATA", &failed),
    );
}

#[test]
fn the_overlay_after_a_hello_shows_what_the_503_page_shows() {
    require(Tool::Node);
    let project = failing_with("v1-FAIL", &full_of_controls());
    let proxied = start(&project, &[]);
    proxied.session.wait_for_stderr("build failed");
    let page = get(proxied.proxy, "/");
    assert_eq!(page.status, 503, "{page:?}");
    let page = page.text();
    let h1 = &page[page.find("<h1>").unwrap() + 4..page.find("</h1>").unwrap()];
    let pre = &page[page.find("<pre>").unwrap() + 5..page.find("</pre>").unwrap()];
    let expected = serde_json::json!({ "headline": html_text(h1), "text": html_text(pre) });
    let events = EventStream::open(proxied.proxy);
    let hello = events.data_of(&proxied.session, "hello");
    let client = get(proxied.proxy, "/__reload/client.js").text();
    run_client(
        &client,
        &r#"
const p = page("3", false);
p.emit("hello", { ...HELLO, generation: null });
const panel = p.overlay().shadowRoot.firstChild;
const page503 = EXPECTED;
assert.equal(text(panel.children[1]), page503.headline);
assert.equal(page503.headline, "Build failed (exit status 1)");
assert.equal(text(panel.children.find((e) => e.tag == "pre")), page503.text);
"#
        .replace("HELLO", &hello)
        .replace("EXPECTED", &expected.to_string()),
    );
}
