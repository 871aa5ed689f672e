//! The dev proxy, end to end: the real binary in front of an ordinary server (`app.py`: it binds
//! the port it is given in PORT, does not drain, and dies on SIGTERM mid-request), with real
//! sockets. What a browser would get: no failed request across restarts, the script in pages,
//! everything else byte for byte, the failed build in the page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::needs::{Tool, require};
use crate::support::{DEADLINE, Project, Session, free_port};
use crate::{BUILD, builds};

mod access;
mod app_port;
mod browser;
mod caching;
mod client;
mod gin;
mod overlap_ports;
mod overlay;
mod pages;
mod requests;

const APP: &str = include_str!("app.py");

/// The stand-in project behind a proxy: `sh build.sh` "compiles" src/version.txt, `app.py`
/// serves it (so every test that uses it needs python3).
fn proxied(version: &str) -> Project {
    require(Tool::Python3);
    Project::new()
        .file("src/version.txt", &format!("{version}\n"))
        .file("build.sh", BUILD)
        .file("app.py", APP)
        .config(
            "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
             [run]\ncmd = [\"python3\", \"app.py\"]\n",
        )
}

/// A running reload with its proxy, and the two ports.
struct Proxied<'p> {
    session: Session<'p>,
    proxy: u16,
    app: u16,
}

fn start<'p>(project: &'p Project, extra: &[&str]) -> Proxied<'p> {
    let proxy = free_port();
    let app = free_port();
    let (proxy_flag, app_flag) = (proxy.to_string(), app.to_string());
    let mut args = vec!["--proxy", &proxy_flag, "--app-port", &app_flag];
    args.extend_from_slice(extra);
    let session = project.start(&args);
    Proxied {
        session,
        proxy,
        app,
    }
}

/// One answer, its body de-chunked.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `METHOD path` on 127.0.0.1:`port` over HTTP/1.1 on a new connection (`Connection: close`),
/// with `headers` (each `Name: value`) and `body`.
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n");
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    exchange(port, &raw, false)
}

/// A new connection to 127.0.0.1:`port`, whose reads give up after [`DEADLINE`].
fn connect(port: u16) -> std::io::Result<TcpStream> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    Ok(stream)
}

/// `raw` written to 127.0.0.1:`port` as it is, then the write side shut when `shut` (a client
/// that has sent all it will), and the answer, read until the proxy closes.
fn exchange(port: u16, raw: &[u8], shut: bool) -> std::io::Result<Answer> {
    let mut stream = connect(port)?;
    stream.write_all(raw)?;
    if shut {
        stream.shutdown(std::net::Shutdown::Write)?;
    }
    let mut answer = Vec::new();
    if let Err(err) = stream.read_to_end(&mut answer) {
        // The proxy may reset the connection right after its answer: what came is the answer.
        if answer.is_empty() {
            return Err(err);
        }
    }
    parse(&answer)
}

/// [`exchange`], for a test that needs its answer: panics, showing what was sent, without one.
#[track_caller]
fn send_raw(port: u16, raw: &[u8], shut: bool) -> Answer {
    exchange(port, raw, shut).unwrap_or_else(|err| {
        panic!(
            "no answer from the proxy to {:?}: {err}",
            String::from_utf8_lossy(raw)
        )
    })
}

fn parse(raw: &[u8]) -> std::io::Result<Answer> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut answer = Answer {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(&answer.body).ok_or_else(|| bad("bad chunks"))?;
    }
    Ok(answer)
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

fn get(port: u16, path: &str) -> Answer {
    request(port, "GET", path, &["Accept: text/html"], b"")
        .unwrap_or_else(|err| panic!("GET {path} through the proxy: {err}"))
}

/// The generation in the script tag of `html`, which must be the run's `n`th: pages see
/// generations unique across runs (the run's start in milliseconds times a thousand, plus n).
#[track_caller]
fn wire(html: &str, n: u64) -> u64 {
    let at = html.find(SCRIPT).expect("a script tag") + SCRIPT.len();
    let digits: String = html[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let generation: u64 = digits.parse().expect("a generation");
    assert_eq!(generation % 1000, n, "{html}");
    assert!(
        generation > 1_000_000_000_000_000,
        "unique across runs: {generation}"
    );
    generation
}

const SCRIPT: &str = "<script src=\"/__reload/client.js\" data-generation=\"";

impl Proxied<'_> {
    /// Wait until the proxy serves `version` at /text.
    fn wait_serving(&self, version: &str) {
        let expected = format!("version {version}");
        self.session
            .wait_until(&format!("the proxy to serve {version}"), || {
                request(self.proxy, "GET", "/text", &[], b"")
                    .ok()
                    .filter(|a| a.status == 200 && a.text() == expected)
            });
    }
}

// ---------------------------------------------------------------------------------------------
// No failed request

#[test]
fn an_unmodified_server_behind_the_proxy_loses_no_request_over_ten_restarts() {
    let project = proxied("v0");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v0");
    let start = proxied.session.wait_for_start("v0");
    assert_eq!(
        start.field("port"),
        proxied.app.to_string(),
        "the app gets PORT"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, failures, answered) = (stop.clone(), failures.clone(), answered.clone());
            let port = proxied.proxy;
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match request(port, "GET", "/text", &[], b"") {
                        Ok(answer) if answer.status == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(answer) => failures.lock().unwrap().push(format!("{answer:?}")),
                        Err(err) => failures.lock().unwrap().push(err.to_string()),
                    }
                    thread::sleep(Duration::from_millis(3));
                }
            })
        })
        .collect();
    for run in 1..=10 {
        let version = format!("v{run}");
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.session.wait_for_start(&version);
        proxied.wait_serving(&version);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}{}",
        failures.len(),
        failures.len() + answered.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)],
        proxied.session.context()
    );
    assert!(answered.load(Ordering::Relaxed) > 20);
    assert_eq!(builds(&project).len(), 11);
}

#[test]
fn a_get_in_flight_when_the_server_dies_is_sent_again_and_a_large_post_gets_a_502() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    let get = thread::spawn(move || request(port, "GET", "/hang", &[], b""));
    let large = vec![b'a'; 2 * 1024 * 1024];
    let post = thread::spawn(move || request(port, "POST", "/hang", &[], &large));
    proxied.session.wait_until("both requests to reach v1", || {
        let log = project.scratch_lines("hang.log");
        (log.len() == 2).then_some(())
    });

    project.write("src/version.txt", "v2\n");
    let get = get.join().unwrap().expect("the GET gets an answer");
    assert_eq!(get.status, 200, "{get:?}{}", proxied.session.context());
    assert_eq!(
        get.text(),
        "answered by v2",
        "sent again, to the new server"
    );
    let post = post.join().unwrap().expect("the POST gets an answer");
    assert_eq!(post.status, 502, "{post:?}");
    assert!(post.text().contains("not sent again"), "{}", post.text());
    let mut reached = project.scratch_lines("hang.log");
    reached.sort();
    assert_eq!(reached, ["GET", "POST"], "nothing reached v1 twice");
}

#[test]
fn requests_during_the_first_build_wait_and_a_failed_build_shows_in_the_page() {
    let project = proxied("v1-FAIL");
    let proxied = start(&project, &[]);
    proxied.session.wait_for_stderr("build failed");

    let page = get(proxied.proxy, "/");
    assert_eq!(page.status, 503, "{page:?}");
    let html = page.text();
    assert!(html.contains("does not compile"), "{html}");
    assert!(
        html.contains(SCRIPT),
        "the page follows the next build by itself: {html}"
    );
    let plain = request(proxied.proxy, "GET", "/text", &["Accept: */*"], b"").unwrap();
    assert_eq!(plain.status, 503);
    assert!(plain.header("retry-after").is_some(), "{plain:?}");
    assert!(
        plain.text().contains("v1-FAIL does not compile"),
        "{}",
        plain.text()
    );

    // A request made now waits for the fix instead of failing.
    let port = proxied.proxy;
    let held = thread::spawn(move || {
        loop {
            let answer = request(port, "GET", "/text", &[], b"").unwrap();
            if answer.status != 503 {
                return answer;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    project.write("src/version.txt", "v2\n");
    let answer = held.join().unwrap();
    assert_eq!(
        (answer.status, answer.text()),
        (200, "version v2".to_owned())
    );
}

/// Requests through the proxy every 3 ms on two threads until the returned guard is stopped:
/// the failures, and how many were answered.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    answered: Arc<AtomicUsize>,
    slowest: Arc<Mutex<Duration>>,
    clients: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let clients = (0..2)
            .map(|_| {
                let (stop, failures, answered, slowest) = (
                    stop.clone(),
                    failures.clone(),
                    answered.clone(),
                    slowest.clone(),
                );
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        match request(port, "GET", "/text", &[], b"") {
                            Ok(answer) if answer.status == 200 => {
                                answered.fetch_add(1, Ordering::Relaxed);
                                let took = sent.elapsed();
                                let mut slowest = slowest.lock().unwrap();
                                *slowest = (*slowest).max(took);
                            }
                            Ok(answer) => failures.lock().unwrap().push(format!("{answer:?}")),
                            Err(err) => failures.lock().unwrap().push(err.to_string()),
                        }
                        thread::sleep(Duration::from_millis(3));
                    }
                })
            })
            .collect();
        Load {
            stop,
            failures,
            answered,
            slowest,
            clients,
        }
    }

    /// Stop, and insist that no request failed.
    #[track_caller]
    fn assert_none_failed(self, session: &Session) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        let failures = self.failures.lock().unwrap();
        let answered = self.answered.load(Ordering::Relaxed);
        assert!(
            failures.is_empty(),
            "{} of {} requests failed: {:?}{}",
            failures.len(),
            failures.len() + answered,
            &failures[..failures.len().min(5)],
            session.context()
        );
        assert!(answered > 20, "only {answered} requests were answered");
        *self.slowest.lock().unwrap()
    }
}

#[test]
fn with_overlap_a_server_that_reads_port_starts_beside_the_old_one_and_nothing_waits_for_it() {
    let project = proxied("v0").config(
        "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
         [run]\ncmd = [\"python3\", \"app.py\"]\nenv = { START_DELAY = \"0.3\" }\n",
    );
    let proxied = start(&project, &["--overlap"]);
    proxied.wait_serving("v0");
    let load = Load::start(proxied.proxy);
    for run in 1..=4 {
        let version = format!("v{run}");
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.session.wait_for_start(&version);
        proxied.wait_serving(&version);
    }
    load.assert_none_failed(&proxied.session);
    let starts = project.starts();
    let ports: Vec<&str> = starts.iter().map(|s| s.field("port")).collect();
    let (app, other) = (proxied.app.to_string(), ports[0].to_owned());
    assert_ne!(
        other, app,
        "the first server gets the second port: {ports:?}"
    );
    for (i, port) in ports.iter().enumerate() {
        let expected = if i % 2 == 0 { &other } else { &app };
        assert_eq!(port, expected, "servers take turns on two ports: {ports:?}");
    }
    assert!(
        !proxied.session.stderr().contains("ignores PORT"),
        "{}",
        proxied.session.context()
    );
    assert!(
        proxied.session.stderr().contains("servers take turns on"),
        "{}",
        proxied.session.context()
    );
}

#[test]
fn with_overlap_a_server_that_ignores_port_falls_back_to_stop_then_start_with_one_line() {
    require(Tool::Python3);
    let proxy = free_port();
    let app = free_port();
    let config = format!(
        "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
         [run]\ncmd = [\"python3\", \"app.py\"]\nenv = {{ IGNORE_PORT = \"{app}\" }}\n"
    );
    let project = Project::new()
        .file("src/version.txt", "v0\n")
        .file("build.sh", BUILD)
        .file("app.py", APP)
        .config(&config);
    let session = project.start(&[
        "--proxy",
        &proxy.to_string(),
        "--app-port",
        &app.to_string(),
        "--overlap",
    ]);
    let proxied = Proxied {
        session,
        proxy,
        app,
    };
    proxied.wait_serving("v0");
    proxied.session.wait_for_stderr("ignores PORT");
    let load = Load::start(proxied.proxy);
    for run in 1..=3 {
        let version = format!("v{run}");
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.session.wait_for_start(&version);
        proxied.wait_serving(&version);
    }
    load.assert_none_failed(&proxied.session);
    assert_eq!(
        proxied.session.stderr().matches("ignores PORT").count(),
        1,
        "said once{}",
        proxied.session.context()
    );
    assert!(
        project
            .starts()
            .iter()
            .all(|s| s.field("port") == app.to_string())
    );
}

// ---------------------------------------------------------------------------------------------
// The script, and everything else byte for byte

#[test]
fn pages_get_the_script_once_and_everything_else_passes_byte_for_byte() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let (proxy, app) = (proxied.proxy, proxied.app);

    let page = get(proxy, "/");
    let html = page.text();
    assert_eq!(html.matches(SCRIPT).count(), 1, "{html}");
    assert!(
        html.contains(&format!(
            "{SCRIPT}{}\" async></script></body>",
            wire(&html, 1)
        )),
        "{html}"
    );
    assert_eq!(
        page.header("content-length"),
        Some(html.len().to_string().as_str())
    );
    assert_eq!(page.header("etag"), None, "the page changed: its ETag goes");

    for (method, path, headers) in [
        ("GET", "/text", &[][..]),
        ("GET", "/json-html", &[][..]),
        ("GET", "/", &["HX-Request: true"][..]),
        ("GET", "/", &["Datastar-Request: true"][..]),
        ("HEAD", "/", &[][..]),
        ("GET", "/not-modified", &[][..]),
        ("GET", "/unknown-encoding", &[][..]),
    ] {
        let through = request(proxy, method, path, headers, b"").unwrap();
        let direct = request(app, method, path, headers, b"").unwrap();
        assert_eq!(through.status, direct.status, "{method} {path} {headers:?}");
        assert_eq!(
            through.body, direct.body,
            "{method} {path} {headers:?} byte for byte"
        );
    }
    proxied.session.wait_for_stderr("zstd");

    let csp = get(proxy, "/csp").text();
    assert!(csp.contains("nonce=\"r4nd0m\""), "{csp}");

    let gzip = request(proxy, "GET", "/gzip", &["Accept-Encoding: gzip"], b"").unwrap();
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gzip.body[..])
        .read_to_string(&mut plain)
        .expect("still gzip");
    assert_eq!(plain.matches(SCRIPT).count(), 1, "{plain}");
    let deflate = request(proxy, "GET", "/deflate", &[], b"").unwrap();
    let mut plain = String::new();
    flate2::read::ZlibDecoder::new(&deflate.body[..])
        .read_to_string(&mut plain)
        .expect("still deflate");
    assert!(plain.contains(SCRIPT), "{plain}");

    // A page that streams gets the script right after <body ...>, as it passes.
    let streamed = get(proxy, "/stream").text();
    assert!(
        streamed.contains(&format!(
            "<body class=\"app\">{SCRIPT}{}\" async></script><h1>first",
            wire(&streamed, 1)
        )),
        "{streamed}"
    );
    assert!(
        streamed.ends_with("<p>second</p></body></html>"),
        "{streamed}"
    );

    let headers = request(proxy, "GET", "/headers", &[], b"").unwrap().text();
    assert!(
        headers.contains(&format!("host: localhost:{proxy}")),
        "Host kept: {headers}"
    );
    assert!(headers.contains("x-forwarded-for: 127.0.0.1"), "{headers}");
    assert!(headers.contains("x-forwarded-proto: http"), "{headers}");
    assert!(
        headers.contains(&format!("x-forwarded-host: localhost:{proxy}")),
        "{headers}"
    );

    let client = get(proxy, "/__reload/client.js");
    assert_eq!(client.status, 200);
    assert!(
        client
            .header("content-type")
            .unwrap()
            .contains("javascript")
    );
}

#[test]
fn a_brotli_page_gets_the_script_once_and_stays_brotli() {
    // Large (about 180 KB plain, several reads compressed), so that the proxy's decoder and
    // encoder each see the page in pieces.
    let mut rows = String::new();
    for i in 0..4000 {
        let noise = i * 7919 % 10007;
        rows.push_str(&format!(
            "<li id=\"row-{i}\">row {i} of the list, {noise}</li>\n"
        ));
    }
    let original = format!(
        "<!doctype html><html><head><title>br</title></head><body><h1>br</h1><ul>\n{rows}</ul>\
         </body></html>"
    );
    let mut compressed = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut compressed, 4096, 5, 22);
        writer.write_all(original.as_bytes()).unwrap();
    }
    let project = proxied("v1");
    std::fs::write(project.path("page.br"), &compressed).expect("write page.br for the app");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");

    let direct = request(proxied.app, "GET", "/brotli", &["Accept-Encoding: br"], b"").unwrap();
    assert_eq!(direct.body, compressed, "the app serves the file as it is");
    let page = request(
        proxied.proxy,
        "GET",
        "/brotli",
        &["Accept: text/html", "Accept-Encoding: br"],
        b"",
    )
    .unwrap();
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.header("content-encoding"), Some("br"), "{}", page.head);
    assert_eq!(
        page.header("content-length"),
        Some(page.body.len().to_string().as_str()),
        "{}",
        page.head
    );
    let mut plain = String::new();
    brotli::Decompressor::new(&page.body[..], 4096)
        .read_to_string(&mut plain)
        .expect("still brotli");
    assert_eq!(plain.matches(SCRIPT).count(), 1, "the script once");
    let tag = format!("{SCRIPT}{}\" async></script>", wire(&plain, 1));
    assert_eq!(
        plain.replacen(&tag, "", 1),
        original,
        "the page is otherwise intact"
    );
    assert!(
        plain.ends_with(&format!("</ul>{tag}</body></html>")),
        "before </body>"
    );
}

#[test]
fn app_events_arrive_as_they_are_written_and_large_bodies_are_streamed_not_held() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");

    let mut stream = TcpStream::connect(("127.0.0.1", proxied.proxy)).unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut lines = BufReader::new(stream);
    let mut arrivals = Vec::new();
    let mut line = String::new();
    while arrivals.len() < 5 && lines.read_line(&mut line).unwrap() > 0 {
        if line.contains("data: ") {
            arrivals.push(Instant::now());
        }
        line.clear();
    }
    assert_eq!(arrivals.len(), 5);
    // The app writes them 200 ms apart: held back, they would arrive together at the end.
    assert!(
        arrivals[4] - arrivals[0] >= Duration::from_millis(500),
        "events arrived at once: {:?}",
        arrivals[4] - arrivals[0]
    );

    let size: usize = 100 * 1024 * 1024;
    let mut stream = TcpStream::connect(("127.0.0.1", proxied.proxy)).unwrap();
    write!(
        stream,
        "GET /big HTTP/1.1\r\nHost: localhost\r\nX-Size: {size}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut received = 0;
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        received += n;
    }
    assert!(received > size, "head and the whole body: {received}");

    // And the other way: a 100 MB upload goes to the app as it arrives.
    let mut stream = TcpStream::connect(("127.0.0.1", proxied.proxy)).unwrap();
    write!(
        stream,
        "PUT /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let block = vec![b'u'; 1 << 16];
    for _ in 0..size / block.len() {
        stream.write_all(&block).unwrap();
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let answer = parse(&raw).unwrap();
    assert_eq!(answer.text(), format!("v1 got {size} bytes"));
    let peak = crate::support::peak_rss_kib(proxied.session.pid());
    assert!(peak < 80 * 1024, "reload held a body: peak RSS {peak} KiB");
    let peak = crate::support::peak_rss_kib(proxied.session.pid());
    assert!(
        peak < 80 * 1024,
        "reload held the body: peak RSS {peak} KiB"
    );
}

#[test]
fn a_websocket_passes_through_before_and_after_a_restart() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    assert_eq!(echo(proxied.proxy, "hello"), "v1:hello");
    project.write("src/version.txt", "v2\n");
    proxied.wait_serving("v2");
    assert_eq!(echo(proxied.proxy, "again"), "v2:again");
}

/// One text message over a new WebSocket through the proxy, and the app's answer.
fn echo(port: u16, message: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | u8::try_from(message.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(message.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).unwrap();
    let mut reply = vec![0; usize::from(header[1] & 0x7f)];
    stream.read_exact(&mut reply).unwrap();
    String::from_utf8(reply).unwrap()
}

// ---------------------------------------------------------------------------------------------
// reload's own endpoints

#[test]
fn the_event_stream_says_hello_then_building_failed_and_ready_and_the_trigger_reloads() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let events = EventStream::open(proxied.proxy);
    events.wait_for(
        &proxied.session,
        "retry: 1000\n\nevent: hello\ndata: {\"build\":\"passed\",\"generation\":",
    );

    project.write("src/version.txt", "v2-FAIL\n");
    events.wait_for(&proxied.session, "event: building");
    events.wait_for(&proxied.session, "event: failed");
    events.wait_for(&proxied.session, "v2-FAIL does not compile");
    project.write("src/version.txt", "v3\n");
    // Generation 2 of this run: the run's own numbers end in its count.
    events.wait_for(&proxied.session, "002}");
    events.wait_for(&proxied.session, "event: ready\ndata: {\"generation\":");

    let triggered = request(proxied.proxy, "POST", "/__reload/trigger", &[], b"").unwrap();
    assert_eq!(triggered.status, 204);
    events.wait_for(&proxied.session, "event: reload");
}

#[test]
fn a_burst_of_triggers_is_one_reload_and_one_line_and_each_later_trigger_another() {
    let window = Duration::from_secs(1);
    let project = proxied("v1");
    let proxied = start(&project, &["--debounce", "1s"]);
    proxied.wait_serving("v1");
    let events = EventStream::open(proxied.proxy);
    events.wait_for(&proxied.session, "event: hello");
    let trigger = |user_agent: &str| {
        let agent = format!("User-Agent: {user_agent}");
        let answer = request(proxied.proxy, "POST", "/__reload/trigger", &[&agent], b"")
            .expect("the trigger answers");
        assert_eq!(answer.status, 204, "{answer:?}");
    };

    // Five triggers, each sent as soon as the one before is answered. Two of them are at
    // most the time from sending the first to the answer of the second apart.
    let (mut longest, mut sent) = (Duration::ZERO, None::<Instant>);
    for _ in 0..5 {
        let now = Instant::now();
        trigger("burst-watcher/1.0");
        if let Some(before) = sent {
            longest = longest.max(before.elapsed());
        }
        sent = Some(now);
    }
    events.wait_for(&proxied.session, "event: reload");
    if longest >= window {
        println!("note: a stall of {longest:?} could have split the burst; not judged");
        return;
    }
    proxied
        .session
        .assert_holds_for(window, "one reload for the burst", || {
            events.count("event: reload") == 1
        });
    proxied
        .session
        .wait_for_stderr("asked by burst-watcher/1.0");
    let lines = || {
        proxied
            .session
            .stderr()
            .lines()
            .filter(|line| line.starts_with("[reload] reloading the pages"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    proxied
        .session
        .assert_holds_for(window, "one line for the burst", || lines().len() == 1);
    assert_eq!(
        lines(),
        [
            "[reload] reloading the pages, asked by burst-watcher/1.0 (5 times) through \
          /__reload/trigger"
        ]
    );

    // A watcher that posts again after the window: a reload and a line each time.
    for n in 2..=3 {
        trigger("curl/8.5.0");
        events.wait_for_count(&proxied.session, "event: reload", n);
        proxied
            .session
            .wait_for_stderr_count("asked by curl/8.5.0 through /__reload/trigger", n - 1);
    }
}

#[test]
fn the_trigger_refuses_a_connection_from_another_machine() {
    let Some(own) = non_loopback_address() else {
        println!("note: this machine has no address but loopback; not judged");
        return;
    };
    let project = proxied("v1");
    let proxy = free_port();
    let app = free_port();
    let listen = format!("0.0.0.0:{proxy}");
    let session = project.start(&["--proxy", &listen, "--app-port", &app.to_string()]);
    session.wait_for_start("v1");
    let answer = session.wait_until("the proxy to answer on its own address", || {
        let mut stream = TcpStream::connect((own, proxy)).ok()?;
        stream
            .write_all(b"POST /__reload/trigger HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        parse(&raw).ok()
    });
    assert_eq!(answer.status, 403, "{answer:?}");
}

#[test]
fn ready_notify_overrides_the_proxys_tcp_readiness() {
    let config = "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
                  [run]\ncmd = [\"python3\", \"app.py\"]\n\n[proxy]\nhold_timeout = \"2s\"\n";
    // A server that listens at once but never says READY=1: with the proxy's default it would
    // be ready on its first accepted connection; with --ready notify nothing reaches it.
    let project = proxied("v1").config(config);
    let silent = start(&project, &["--ready", "notify"]);
    silent.session.wait_for_start("v1");
    silent
        .session
        .wait_until("the app to answer on its own port", || {
            request(silent.app, "GET", "/text", &[], b"")
                .ok()
                .filter(|a| a.status == 200)
        });
    let held = request(silent.proxy, "GET", "/text", &[], b"").expect("the proxy answers");
    assert_eq!(held.status, 504, "{held:?}{}", silent.session.context());
    assert!(
        held.text().contains("has not sent READY=1 yet"),
        "the 504 says what reload waits for: {}",
        held.text()
    );
    drop(silent);
    project.wait_no_processes();

    // The same server, saying READY=1: the proxy forwards to it.
    let project = proxied("v1").config(config);
    let proxy = free_port();
    let app = free_port();
    let ready = Proxied {
        session: project.start_with_env(
            &[
                "--proxy",
                &proxy.to_string(),
                "--app-port",
                &app.to_string(),
                "--ready",
                "notify",
            ],
            &[("NOTIFY_READY", "1")],
        ),
        proxy,
        app,
    };
    ready.wait_serving("v1");
}

#[test]
fn by_default_the_proxy_listens_on_loopback_only() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    // 127.0.0.1 as /proc/net/tcp writes it (little-endian hex), and the port.
    let loopback = format!("0100007F:{:04X}", proxied.proxy);
    assert_eq!(
        sockets_on(proxied.proxy, LISTEN),
        [loopback],
        "one listening socket, on loopback, none on all interfaces{}",
        proxied.session.context()
    );
}

/// `/proc/net/tcp`'s socket states.
const ESTABLISHED: &str = "01";
const LISTEN: &str = "0A";

/// The local addresses (`ADDR:PORT` in /proc/net/tcp's hex) of this machine's TCP sockets on
/// `port` in `state`, IPv4 and IPv6.
fn sockets_on(port: u16, state: &str) -> Vec<String> {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|row| {
                    let fields: Vec<&str> = row.split_whitespace().collect();
                    let address = fields.get(1)?;
                    (address.ends_with(&local) && fields.get(3) == Some(&state))
                        .then(|| (*address).to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// This machine's address on the network, when it has one (no packet is sent).
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `/__reload/events`, read on a thread into a buffer the test looks at.
struct EventStream {
    seen: Arc<Mutex<String>>,
}

impl EventStream {
    fn open(port: u16) -> EventStream {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /__reload/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let seen = Arc::new(Mutex::new(String::new()));
        let into = seen.clone();
        thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        EventStream { seen }
    }

    fn wait_for(&self, session: &Session, needle: &str) {
        self.wait_for_count(session, needle, 1);
    }

    fn wait_for_count(&self, session: &Session, needle: &str, count: usize) {
        session.wait_until(&format!("{count}x `{needle}` on the event stream"), || {
            (self.count(needle) >= count).then_some(())
        });
    }

    fn count(&self, needle: &str) -> usize {
        self.seen.lock().unwrap().matches(needle).count()
    }

    /// The data of the first `event` on the stream, once it has come whole.
    fn data_of(&self, session: &Session, event: &str) -> String {
        let head = format!("event: {event}\ndata: ");
        session.wait_until(&format!("a whole `{event}` event on the stream"), || {
            let seen = self.seen.lock().unwrap();
            let data = &seen[seen.find(&head)? + head.len()..];
            data.find('\n').map(|end| data[..end].to_owned())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input, and a server that never listens

#[test]
fn a_proxy_port_in_use_is_refused_naming_the_flag_and_nothing_starts() {
    let project = proxied("v1");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let app = free_port().to_string();
    project
        .run_to_exit(&["--proxy", &port, "--app-port", &app])
        .assert_fails_with(2, &["--proxy", &port, "in use"]);
    assert!(project.starts().is_empty());
    assert!(builds(&project).is_empty(), "nothing was built");
}

#[test]
fn a_server_that_never_listens_on_the_app_port_gets_a_504_saying_so() {
    let project = proxied("v1").config(
        "[watch]\npaths = [\"src\"]\n\n[run]\ncmd = [\"sleep\", \"1000\"]\n\n\
         [proxy]\nhold_timeout = \"1s\"\n",
    );
    let proxied = start(&project, &[]);
    // Each try is held for the hold timeout; the first may come before the app is spawned.
    let port = proxied.app.to_string();
    let answer = proxied.session.wait_until("a 504 naming the app port", || {
        request(proxied.proxy, "GET", "/", &[], b"")
            .ok()
            .filter(|answer| answer.text().contains(&port))
    });
    assert_eq!(answer.status, 504, "{answer:?}");
    assert!(
        answer.text().contains("does not accept connections"),
        "says what it waits for: {}",
        answer.text()
    );
}

#[test]
fn a_server_listening_elsewhere_is_told_where_it_listens() {
    let elsewhere = free_port();
    let project = proxied("v1").config(&format!(
        "[watch]\npaths = [\"src\"]\n\n[run]\ncmd = [\"python3\", \"-m\", \"http.server\", \
         \"--bind\", \"127.0.0.1\", \"{elsewhere}\"]\nready_timeout = \"2s\"\n"
    ));
    let proxied = start(&project, &[]);
    proxied
        .session
        .wait_for_stderr("was not ready within 2.00s");
    let expected = format!(
        "listens on :{elsewhere}, not on :{}, where reload waits for it\n  help: if \
         :{elsewhere} is its port",
        proxied.app
    );
    let stderr = proxied.session.stderr();
    assert!(
        stderr.contains(&expected),
        "{expected}{}",
        proxied.session.context()
    );
    assert_eq!(
        stderr.matches(&format!("listens on :{elsewhere}")).count(),
        1,
        "said once, at once, not again at the timeout{}",
        proxied.session.context()
    );
}

#[test]
fn with_listen_the_proxy_forwards_to_the_held_socket() {
    let project = proxied("v1");
    let proxy = free_port();
    let held = free_port();
    let session = project.start(&["--proxy", &proxy.to_string(), "--listen", &held.to_string()]);
    session.wait_for_stderr(&format!("-> app 127.0.0.1:{held} (held by reload)"));
    let proxied = Proxied {
        session,
        proxy,
        app: held,
    };
    proxied.wait_serving("v1");
    let start = proxied.session.wait_for_start("v1");
    assert_eq!(
        start.field("port"),
        held.to_string(),
        "the app serves the held socket"
    );
    let load = Load::start(proxied.proxy);
    for version in ["v2", "v3", "v4", "v5"] {
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.session.wait_for_start(version);
        proxied.wait_serving(version);
    }
    load.assert_none_failed(&proxied.session);
}
