//! A minimal, std-only HTTP server that cooperates with `reload`.
//!
//! Run it under reload so the port stays open across rebuilds and reload knows when the new
//! build is actually ready:
//!
//! ```text
//! reload -b 'cargo build --example hello_server' --listen 3000 --ready notify \
//!     -- ./target/debug/examples/hello_server
//! ```
//!
//! Point reload at the built binary, not at `cargo run --example hello_server`: with `cargo run`
//! the child would be cargo, so the inherited socket and `LISTEN_PID` would belong to cargo and
//! not to the server. Add `--overlap` for zero downtime: the new build starts accepting on the
//! shared socket before the old one is told to stop, and the old one finishes its requests.
//!
//! Without reload it binds its own port: `PORT` (default 3000) on 127.0.0.1, or the address given
//! as first argument (`hello_server 127.0.0.1:8080`).
//!
//! Environment: `WARMUP_MS` delays readiness to mimic a slow start; `HELLO_VERSION` (default "1")
//! shows up in the reply, so you can see which build answered.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::{env, process, thread};

/// Set by the signal handler; polled by the accept loop.
static STOP: AtomicBool = AtomicBool::new(false);
/// Connections being served right now, so shutdown can wait for them.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

// std has no signal API and this example takes no dependencies, so declare the one libc function
// needed. std already links libc (libSystem on macOS), so no extra linking is involved.
unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}
const SIGINT: i32 = 2; // Same numbers on Linux and macOS.
const SIGTERM: i32 = 15;
const SIG_ERR: usize = usize::MAX;

extern "C" fn on_term(_: i32) {
    // Only an atomic store: anything that locks or allocates is forbidden in a signal handler.
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    // Install the handlers first: a SIGTERM that arrives before this kills us with no drain.
    for sig in [SIGTERM, SIGINT] {
        // SAFETY: `on_term` has the `void (*)(int)` signature `signal` expects, and its only
        // action, an atomic store, is async-signal-safe.
        if unsafe { signal(sig, on_term as extern "C" fn(i32) as usize) } == SIG_ERR {
            fail(&format!("cannot install handler for signal {sig}"));
        }
    }

    let listener = inherited_listener().unwrap_or_else(bind_own);
    // A unix socket (or anything else) passed as fd 3 fails here rather than later in accept.
    let addr = listener.local_addr().unwrap_or_else(|e| {
        fail(&format!(
            "the listener is not a TCP socket ({e}); pass a TCP port"
        ))
    });

    let warmup = env::var("WARMUP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Connections arriving meanwhile wait in the kernel backlog; they are not refused.
    thread::sleep(Duration::from_millis(warmup));

    let pid = process::id();
    let version = env::var("HELLO_VERSION").unwrap_or_else(|_| "1".into());
    eprintln!("hello_server: pid {pid} (version {version}) listening on http://{addr}");
    notify_ready();

    // Non-blocking accept, so the loop can notice STOP: a blocking accept would simply be
    // restarted after the signal and never return.
    if let Err(e) = listener.set_nonblocking(true) {
        fail(&format!("cannot make the listener non-blocking: {e}"));
    }
    let body = format!("hello from pid {pid} (version {version})\n");
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let body = body.clone();
                ACTIVE.fetch_add(1, Ordering::SeqCst);
                let guard = ActiveGuard;
                thread::spawn(move || {
                    let _guard = guard;
                    if let Err(e) = serve(stream, &body) {
                        eprintln!("hello_server: connection error: {e}");
                    }
                });
            }
            Err(e) => {
                let kind = e.kind();
                // Not a listening socket (e.g. a UDP or unlistened fd 3): retrying cannot help.
                if matches!(
                    kind,
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) {
                    fail(&format!("accept failed: {e}"));
                }
                // WouldBlock just means no client yet; others (EMFILE...) are transient.
                if kind != io::ErrorKind::WouldBlock {
                    eprintln!("hello_server: accept failed: {e}");
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    // Close our end first. When the socket came from reload, reload still holds it, so new
    // connections queue up for the next server instead of being refused.
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ACTIVE.load(Ordering::SeqCst) > 0 {
        if Instant::now() >= deadline {
            let left = ACTIVE.load(Ordering::SeqCst);
            eprintln!("hello_server: {left} connection(s) still open after 10s, exiting anyway");
            process::exit(1);
        }
        thread::sleep(Duration::from_millis(10));
    }
    eprintln!("hello_server: drained, exiting");
}

/// The listening socket passed by the systemd socket-activation protocol, if any.
fn inherited_listener() -> Option<TcpListener> {
    let fds: u32 = env::var("LISTEN_FDS").ok()?.parse().ok()?;
    let pid: u32 = env::var("LISTEN_PID").ok()?.parse().ok()?;
    // The variables may have leaked from a parent that was itself socket-activated; like
    // libsystemd, only trust them when they name this very process.
    if fds == 0 || pid != process::id() {
        return None;
    }
    // SAFETY: the protocol says passed fds start at 3 and LISTEN_PID names the process they were
    // handed to; we checked it is us, so fd 3 is an open listening socket that nothing else in
    // this process owns. Only the first fd is used; whether it is TCP the caller checks.
    Some(unsafe { TcpListener::from_raw_fd(3) })
}

fn bind_own() -> TcpListener {
    let addr = env::args().nth(1).unwrap_or_else(|| {
        let port = env::var("PORT").unwrap_or_else(|_| "3000".into());
        format!("127.0.0.1:{port}")
    });
    TcpListener::bind(&addr).unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")))
}

fn fail(msg: &str) -> ! {
    eprintln!("hello_server: {msg}");
    process::exit(1);
}

/// Tell the supervisor (reload, systemd) we are ready, by the sd_notify protocol.
fn notify_ready() {
    let Some(path) = env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|sock| {
        // A leading '@' names a Linux abstract socket, which has no file system path.
        #[cfg(target_os = "linux")]
        if let Some(name) = path.as_encoded_bytes().strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            return sock.send_to_addr(b"READY=1", &addr);
        }
        sock.send_to(b"READY=1", &path)
    });
    // Not fatal: the server works, the supervisor just will not hear it is ready.
    if let Err(e) = result {
        eprintln!("hello_server: cannot notify {}: {e}", path.display());
    }
}

/// Uncounts a connection when its thread ends, even by a panic, so the drain cannot hang on it.
struct ActiveGuard;

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(mut stream: TcpStream, body: &str) -> io::Result<()> {
    // On macOS accepted sockets inherit O_NONBLOCK from the listener; we want plain blocking I/O,
    // bounded by a timeout so an idle client cannot hold up the drain forever.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;

    // Read the request head; the body, if any, is ignored since the reply is always the same.
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(()); // Client gave up, or this is not HTTP: nothing sensible to answer.
        }
        head.extend_from_slice(&buf[..n]);
    }

    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}
