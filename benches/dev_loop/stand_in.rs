//! The stand-in servers (this very binary): `__bench_child`, which only logs its start (one
//! line per server start, stamped by the server's own clock) and idles, and `__bench_http`, an
//! ordinary HTTP server that binds `PORT` itself; and the start log the first one writes.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::stats::unix_nanos;
use crate::{CHILD_ARG, HTTP_ARG};

/// `__bench_child START_LOG [VERSION_FILE]`: append `pid unix-nanos version` to START_LOG as the
/// very first thing, then idle until killed. It also leaves by itself once the log's directory
/// is gone, so a stray one cannot outlive the bench.
pub(crate) fn stand_in_server(args: &[OsString]) -> ExitCode {
    let at = unix_nanos(SystemTime::now());
    let Some(log) = args.first().map(Path::new) else {
        eprintln!("{CHILD_ARG}: no start log given");
        return ExitCode::from(2);
    };
    let version = args
        .get(1)
        .and_then(|path| fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && !text.contains(char::is_whitespace))
        .unwrap_or_else(|| "-".to_owned());
    let line = format!("{} {at} {version}\n", std::process::id());
    // One write to an O_APPEND file: lines of successive servers never interleave.
    let written = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!("{CHILD_ARG}: cannot log to {}: {err}", log.display());
        return ExitCode::FAILURE;
    }
    let scratch = log.parent().unwrap_or(Path::new("/")).to_owned();
    let born = Instant::now();
    while scratch.exists() && born.elapsed() < Duration::from_secs(30 * 60) {
        thread::sleep(Duration::from_millis(200));
    }
    ExitCode::SUCCESS
}

/// One line of a start log: a server that started.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) at: SystemTime,
    pub(crate) version: String,
}

/// The log the stand-in servers of one tool run append to.
pub(crate) struct StartLog(pub(crate) PathBuf);

impl StartLog {
    pub(crate) fn read(&self) -> Vec<Start> {
        let text = fs::read_to_string(&self.0).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let _pid: u32 = fields.next()?.parse().ok()?;
                let nanos: u64 = fields.next()?.parse().ok()?;
                Some(Start {
                    at: UNIX_EPOCH + Duration::from_nanos(nanos),
                    version: fields.next()?.to_owned(),
                })
            })
            .collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.read().len()
    }
}

/// `__bench_http DIR`: the server most users run, with nothing done for a dev loop. It binds
/// 127.0.0.1:`PORT` itself (after `BIND_DELAY_MS`, default 0, to mimic a slow start), answers
/// every request `hello from pid PID` with keep-alive (wrk measures requests, not connects), and
/// keeps the default SIGTERM action: it dies at once, dropping whatever it was serving, the way a
/// server that does not drain does. It leaves by itself once DIR is gone, so a stray one cannot
/// outlive the bench.
pub(crate) fn stand_in_http(args: &[OsString]) -> ExitCode {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("{HTTP_ARG}: no directory given");
        return ExitCode::from(2);
    };
    let number = |name: &str| -> Result<u64, String> {
        match std::env::var(name) {
            Err(_) => Ok(0),
            Ok(text) => text
                .parse()
                .map_err(|_| format!("{name}={text} is not a number")),
        }
    };
    let port = match (number("PORT"), number("BIND_DELAY_MS")) {
        (Ok(port), Ok(delay)) if port > 0 => {
            thread::sleep(Duration::from_millis(delay));
            port
        }
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("{HTTP_ARG}: {err}");
            return ExitCode::from(2);
        }
        _ => {
            eprintln!("{HTTP_ARG}: PORT is not set");
            return ExitCode::from(2);
        }
    };
    let listener = match u16::try_from(port)
        .map_err(|_| io::Error::other("out of range"))
        .and_then(|port| TcpListener::bind(("127.0.0.1", port)))
    {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{HTTP_ARG}: cannot bind 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    thread::spawn(move || {
        let born = Instant::now();
        while dir.exists() && born.elapsed() < Duration::from_secs(30 * 60) {
            thread::sleep(Duration::from_millis(200));
        }
        std::process::exit(0);
    });
    // HTML=1: a page (the browser scenario), which the proxy gives its script.
    let html = std::env::var_os("HTML").is_some();
    let pid = std::process::id();
    let (body, content_type) = if html {
        let page = format!("<!doctype html><html><body><h1>pid {pid}</h1></body></html>\n");
        (page, "text/html")
    } else {
        (format!("hello from pid {pid}\n"), "text/plain")
    };
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let body = body.clone();
        // A thread per connection: 32 at most in the bench, and no dependency.
        thread::spawn(move || serve(stream, &body, content_type));
    }
    ExitCode::SUCCESS
}

/// Answer the requests of one connection until the client closes it or asks to. Request bodies
/// are not read: the bench sends none.
fn serve(mut stream: TcpStream, body: &str, content_type: &str) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut pending: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0_u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let close = head.contains("\r\nconnection: close");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "Connection: close\r\n" } else { "" }
            );
            stream.write_all(answer.as_bytes())?;
            if close {
                return Ok(());
            }
            pending.drain(..end + 4);
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..read]);
    }
}
