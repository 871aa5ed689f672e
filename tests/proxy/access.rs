//! Who the proxy answers, through the real binary: a request for a name other than this
//! machine's gets 403 (DNS rebinding), reload's own endpoints answer only their own pages
//! (Origin, CSRF), and descriptors stay bounded: a connection that sends no request is closed,
//! past a cap new ones get a 503 at once, and builds never run out of descriptors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use super::{Answer, EventStream, Proxied, proxied, send_raw, start};
use crate::support::browser::Browser;
use crate::support::needs::{Tool, require};
use crate::support::{DEADLINE, free_port};

/// `head` (request line and headers, without the blank line) sent to the proxy with
/// `Connection: close`, and the whole answer.
#[track_caller]
fn raw(port: u16, head: &str) -> Answer {
    send_raw(
        port,
        format!("{head}\r\nConnection: close\r\n\r\n").as_bytes(),
        false,
    )
}

/// The status and head of an answer whose body does not end (the event stream).
fn head_only(port: u16, head: &str) -> (u16, String) {
    let mut stream = connect(port);
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .expect("send the request");
    let mut seen = Vec::new();
    let mut byte = [0; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            other => panic!(
                "the head ended early ({other:?}): {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

fn connect(port: u16) -> TcpStream {
    super::connect(port).expect("connect to the proxy")
}

#[track_caller]
fn assert_no_cors(answer_head: &str) {
    assert!(
        !answer_head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "reload never lets another origin read an answer: {answer_head}"
    );
}

// ---------------------------------------------------------------------------------------------
// Host

#[test]
fn a_request_for_a_foreign_host_gets_403_naming_it_and_one_warning_line() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    let host = format!("evil.example:{port}");
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/text"),
        ("GET", "/__reload/events"),
        ("GET", "/__reload/client.js"),
        ("POST", "/__reload/trigger"),
    ] {
        let answer = raw(
            port,
            &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0"),
        );
        assert_eq!(answer.status, 403, "{method} {path}: {answer:?}");
        let text = answer.text();
        assert!(text.contains(&format!("`{host}`")), "{text}");
        assert!(text.contains("--allow-host evil.example"), "{text}");
        assert!(text.contains("allowed_hosts"), "{text}");
        assert!(!text.contains("v1"), "nothing of the app: {text}");
        assert_no_cors(&answer.head);
    }
    // A WebSocket upgrade, and an absolute-form target naming a foreign host behind a good Host.
    let upgrade = raw(
        port,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
        ),
    );
    assert_eq!(upgrade.status, 403, "{upgrade:?}");
    let absolute = raw(
        port,
        &format!("GET http://evil.example/text HTTP/1.1\r\nHost: localhost:{port}"),
    );
    assert_eq!(absolute.status, 403, "{absolute:?}");

    proxied
        .session
        .wait_for_stderr("refused a request for host `evil.example");
    let stderr = proxied.session.stderr();
    assert!(
        stderr.contains("add --allow-host evil.example or"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("refused a request for host `evil.example")
            .count(),
        1,
        "one line per new host, however many requests: {stderr}"
    );
    // This machine's own names are answered.
    for host in [
        format!("localhost:{port}"),
        format!("app.localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = raw(port, &format!("GET /text HTTP/1.1\r\nHost: {host}"));
        assert_eq!(
            (answer.status, answer.text()),
            (200, "version v1".to_owned()),
            "{host}"
        );
    }
}

#[test]
fn an_allowed_host_and_the_names_under_an_allowed_pattern_are_answered() {
    let project = proxied("v1");
    let proxied = start(
        &project,
        &[
            "--allow-host",
            "myapp.test",
            "--allow-host",
            "*.tunnel.test",
        ],
    );
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    for host in ["MyApp.test", "abc.tunnel.test"] {
        let answer = raw(port, &format!("GET /text HTTP/1.1\r\nHost: {host}:{port}"));
        assert_eq!(
            (answer.status, answer.text()),
            (200, "version v1".to_owned()),
            "{host}"
        );
    }
    let answer = raw(
        port,
        &format!("GET /text HTTP/1.1\r\nHost: tunnel.test:{port}"),
    );
    assert_eq!(answer.status, 403, "the pattern is for names under it");
}

// ---------------------------------------------------------------------------------------------
// Origin

#[test]
fn reloads_own_endpoints_answer_only_their_own_pages() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    let host = format!("Host: localhost:{port}");
    let own = format!("Origin: http://localhost:{port}");
    let foreign = "Origin: http://evil.example";

    for path in ["/__reload/events", "/__reload/client.js"] {
        for origin in [foreign, "Origin: null", "Origin: http://localhost:3000"] {
            let answer = raw(port, &format!("GET {path} HTTP/1.1\r\n{host}\r\n{origin}"));
            assert_eq!(answer.status, 403, "{path} {origin}: {answer:?}");
            assert!(answer.text().contains("answers only pages of this proxy"));
            assert_no_cors(&answer.head);
        }
        for headers in [host.clone(), format!("{host}\r\n{own}")] {
            let (status, head) = head_only(port, &format!("GET {path} HTTP/1.1\r\n{headers}"));
            assert_eq!(status, 200, "{path} {headers}: {head}");
            assert_no_cors(&head);
        }
    }

    let trigger = |headers: &str| {
        raw(
            port,
            &format!("POST /__reload/trigger HTTP/1.1\r\n{host}\r\nContent-Length: 0{headers}"),
        )
    };
    for refused in [
        format!("\r\n{foreign}"),
        "\r\nSec-Fetch-Site: cross-site".to_owned(),
        format!("\r\n{foreign}\r\nSec-Fetch-Site: same-site"),
    ] {
        let answer = trigger(&refused);
        assert_eq!(answer.status, 403, "{refused}: {answer:?}");
        assert_no_cors(&answer.head);
    }
    // curl, a watcher's script, or the page itself.
    for allowed in [
        String::new(),
        format!("\r\n{own}\r\nSec-Fetch-Site: same-origin"),
    ] {
        let answer = trigger(&allowed);
        assert_eq!(answer.status, 204, "{allowed}: {answer:?}");
    }
}

#[test]
fn in_a_browser_a_page_on_a_foreign_name_can_read_neither_the_app_nor_the_event_stream() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    // The attacker's name resolves to this machine, as after a DNS rebinding.
    let browser = Browser::launch_with(&["--host-resolver-rules=MAP evil.example 127.0.0.1"]);
    let tab = browser.open(&format!("http://evil.example:{port}/"));
    let shown = tab.eval("document.body.innerText");
    assert!(
        shown
            .as_str()
            .is_some_and(|text| text.contains("does not answer requests for")),
        "{shown}"
    );
    let reads = [
        "fetch('/text').then((r) => r.status + ' ' + r.statusText)",
        "fetch('/__reload/events').then((r) => String(r.status))",
    ];
    for read in reads {
        let status = tab.eval(read);
        assert!(
            status.as_str().is_some_and(|s| s.starts_with("403")),
            "{read}: {status}"
        );
    }
    // Nor through this machine's own name: no CORS header, and the Origin is refused.
    for url in ["/text", "/__reload/events"] {
        let js =
            format!("fetch('http://127.0.0.1:{port}{url}').then((r) => r.text(), () => 'blocked')");
        assert_eq!(tab.eval(&js), "blocked", "{url}");
    }
    let stream = format!(
        "new Promise((done) => {{ const s = new EventSource('http://127.0.0.1:{port}/__reload/events'); \
         s.addEventListener('hello', () => done('read')); s.onerror = () => {{ s.close(); done('blocked'); }}; }})"
    );
    assert_eq!(tab.eval(&stream), "blocked");
}

// ---------------------------------------------------------------------------------------------
// Descriptors

/// Reads until the proxy closes the connection; what came, or why the read failed.
fn until_closed(mut stream: TcpStream) -> std::io::Result<Vec<u8>> {
    let mut seen = Vec::new();
    match stream.read_to_end(&mut seen) {
        Ok(_) => Ok(seen),
        // A close with unread data resets; what came before is what counts.
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Ok(seen),
        Err(err) => Err(err),
    }
}

#[test]
fn a_connection_that_sends_no_whole_request_is_closed_and_so_is_an_idle_one() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;

    let mut slow = connect(port);
    slow.write_all(format!("GET /text HTTP/1.1\r\nHost: localhost:{port}\r\n").as_bytes())
        .unwrap();
    let silent = connect(port);
    let mut idle = connect(port);
    idle.write_all(format!("GET /text HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes())
        .unwrap();

    for (what, stream) in [("half a head", slow), ("nothing", silent)] {
        let seen = until_closed(stream).unwrap_or_else(|err| {
            panic!("a connection that sent {what} was still open after {DEADLINE:?}: {err}")
        });
        assert!(
            !String::from_utf8_lossy(&seen).contains("version v1"),
            "{what}"
        );
    }
    // Kept alive after its answer, then closed when it sends nothing more.
    let seen = until_closed(idle).expect("an idle keep-alive connection is closed");
    assert!(
        String::from_utf8_lossy(&seen).ends_with("version v1"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

/// reload under `prlimit --nofile=SOFT:HARD`, with the proxy.
fn start_limited<'p>(project: &'p crate::support::Project, nofile: &str) -> Proxied<'p> {
    let (proxy, app) = (free_port(), free_port());
    let (proxy_flag, app_flag) = (proxy.to_string(), app.to_string());
    let limit = format!("--nofile={nofile}");
    let prlimit = Path::new("/usr/bin/prlimit");
    assert!(
        prlimit.exists(),
        "this test needs prlimit (Debian's util-linux)"
    );
    let session = project.start_copy(
        prlimit,
        &[
            &limit,
            env!("CARGO_BIN_EXE_reload"),
            "--proxy",
            &proxy_flag,
            "--app-port",
            &app_flag,
        ],
    );
    Proxied {
        session,
        proxy,
        app,
    }
}

/// The soft and hard "Max open files" of a process.
fn open_files_limit(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[test]
fn reload_raises_its_own_descriptor_limit_and_the_app_gets_the_one_reload_was_given() {
    let project = proxied("v1");
    let proxied = start_limited(&project, "1024:4096");
    proxied.wait_serving("v1");
    assert_eq!(
        open_files_limit(proxied.session.pid()),
        ("4096".to_owned(), "4096".to_owned())
    );
    let app = proxied.session.wait_for_start("v1");
    assert_eq!(
        open_files_limit(app.pid),
        ("1024".to_owned(), "4096".to_owned()),
        "programs that still use select(2) need the soft limit they were given"
    );
}

#[test]
fn past_the_connection_cap_new_connections_get_503_and_builds_still_run() {
    let project = proxied("v1");
    let proxied = start_limited(&project, "256:256");
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    // Each holds a descriptor of reload's until the head timeout closes it.
    let connections: Vec<TcpStream> = (0..300).map(|_| connect(port)).collect();
    proxied
        .session
        .wait_for_stderr("browser connections are open, the most");

    // A save while the proxy is full builds and starts the new version.
    project.write("src/version.txt", "v2\n");
    proxied.session.wait_for_start("v2");

    let readers: Vec<_> = connections
        .into_iter()
        .map(|stream| thread::spawn(move || until_closed(stream)))
        .collect();
    let (mut refused, mut closed) = (0, 0);
    for reader in readers {
        let seen = reader.join().unwrap().expect("every connection is closed");
        let seen = String::from_utf8_lossy(&seen).into_owned();
        if seen.starts_with("HTTP/1.1 503 ") {
            assert!(seen.contains("connections open"), "{seen}");
            refused += 1;
        } else {
            assert_eq!(seen, "", "a held connection that sent nothing gets nothing");
            closed += 1;
        }
    }
    assert!(refused >= 200, "{refused} refused, {closed} held");
    assert!(closed <= 64, "{refused} refused, {closed} held");
    proxied.wait_serving("v2");
    let stderr = proxied.session.stderr();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    assert_eq!(
        stderr.matches("browser connections are open").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn an_event_stream_outlives_the_head_timeout() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    let stream = EventStream::open(port);
    stream.wait_for(&proxied.session, "event: hello");
    // Longer than the 10 s a connection may take to send a request's head: the stream has had
    // its head, and a page keeps it open all day.
    thread::sleep(Duration::from_secs(12));
    let trigger = raw(
        port,
        &format!("POST /__reload/trigger HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 0"),
    );
    assert_eq!(trigger.status, 204);
    stream.wait_for(&proxied.session, "event: reload");
}
