//! The dev proxy: where the browser connects instead of the server. It holds requests while no
//! server is ready, forwards them to the one that is, retries what never reached a server, and
//! puts the live-reload script into HTML pages. It is a subscriber to the lifecycle bus: it never
//! spawns, never signals and never decides when to restart.
//!
//! It runs on a thread and a runtime of its own, so that no request ever delays the engine's
//! events, and stops when reload does ([`Proxy`] is dropped).

mod access;
mod events;
mod forward;
pub mod inject;
pub mod page;
mod rewrite;
mod trigger;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{broadcast, watch};

use crate::config::{ProxyConfig, Readiness, Upstream, UsageError};
use crate::lifecycle::{Bus, Lifecycle, Published, ServiceName, State};
use crate::status;

/// Every body the proxy sends or forwards.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Frames for the pages' event streams that may wait for a slow page before it misses some.
const FRAMES_KEPT: usize = 64;

/// How long a browser connection may take to send a request's head, counted from when it
/// opens or its last answer ended. hyper starts this timer whenever it waits for a head, so it
/// is also the idle keep-alive timeout: a connection that sends nothing (a slow or idle client)
/// gives its descriptors back. A browser opens a new connection when it finds one closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The running proxy; dropping it stops it (open connections are closed).
pub struct Proxy {
    stop: watch::Sender<bool>,
    /// Threads that accept and serve connections, each with a runtime of its own: one per core
    /// (at most four), so that the proxy is not the narrowest part between browser and app.
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// What every request handler reads.
pub(crate) struct Shared {
    pub upstream: SocketAddr,
    /// The port the app binds itself (an app port, or the one reload chose), for the pages
    /// that say it does not; `None` when reload holds its socket.
    pub app_port: Option<u16>,
    pub hold_timeout: Duration,
    pub inject: bool,
    pub state: watch::Receiver<State>,
    /// Frames for the pages' event streams.
    pub frames: broadcast::Sender<Bytes>,
    /// What a held request waits for, in words, for the 504 past the hold timeout.
    pub waiting_for: Mutex<String>,
    /// An encoding the proxy cannot rewrite is warned about once.
    pub warned_encoding: AtomicBool,
    /// The names the proxy answers to.
    hosts: access::Hosts,
    /// Pages whose Content-Security-Policy blocks the script are warned about once per path.
    pub warned_csp: rewrite::WarnedPaths,
    /// `POST /__reload/trigger`s not yet answered with a reload.
    triggers: trigger::Triggers,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the browser should point, for the startup line: `proxy on http://127.0.0.1:8090 ->
/// app :8080`, and the `ports` servers are given through PORT in turn, when reload gives them
/// (the same one twice without overlap).
pub fn describe(config: &ProxyConfig, ports: Option<[u16; 2]>) -> String {
    let app = match (&config.upstream, ports) {
        (Upstream::Chosen, Some([first, second])) if first == second => format!(
            ":{first} (given as PORT; if the app listens on another port, the proxy follows it)"
        ),
        (Upstream::Chosen, _) => "on the port given as PORT".to_owned(),
        (Upstream::AppPort(port), _) => format!(":{port}"),
        (Upstream::Held(addr), _) => format!("{addr} (held by reload)"),
    };
    let mut line = format!("proxy on http://{} -> app {app}", config.listen);
    if let Some([first, second]) = ports.filter(|[first, second]| first != second) {
        line.push_str(&format!(
            "; with --overlap, servers take turns on :{first} and :{second}, each told its own \
             through PORT"
        ));
    }
    line
}

/// Bind the proxy's port (a port in use is a usage error: nothing has started yet) and serve
/// on a thread of its own until the returned [`Proxy`] is dropped.
///
/// It forwards to `service`: it reads that service's state, and relays that service's events
/// to the pages. `chosen`: the port reload gives the server, when it chose it (`Upstream::Chosen`): where a
/// request goes that no ready server says otherwise for. Triggers less than `quiet` apart (the
/// watch stage's quiet window) reload the pages once.
pub fn start(
    config: &ProxyConfig,
    readiness: Option<&Readiness>,
    chosen: Option<u16>,
    quiet: Duration,
    service: &ServiceName,
    bus: &mut Bus,
) -> Result<Proxy> {
    let listener = std::net::TcpListener::bind(config.listen).map_err(|err| {
        let what = if err.kind() == std::io::ErrorKind::AddrInUse {
            "the port is in use (another reload, or the app itself?): pick another with --proxy \
             PORT or [proxy] port"
                .to_owned()
        } else {
            format!("{err}: pick another address with --proxy HOST:PORT or [proxy] port")
        };
        anyhow::Error::new(UsageError(format!(
            "cannot listen on {} for the proxy: {what}",
            config.listen
        )))
    })?;
    listener
        .set_nonblocking(true)
        .context("cannot set up the proxy's socket")?;
    let upstream = match config.upstream {
        Upstream::AppPort(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Upstream::Held(addr) => loopback_of(addr),
        Upstream::Chosen => SocketAddr::from(([127, 0, 0, 1], chosen.unwrap_or_default())),
    };
    let shared = Arc::new(Shared {
        upstream,
        app_port: match config.upstream {
            Upstream::AppPort(_) | Upstream::Chosen => Some(upstream.port()),
            Upstream::Held(_) => None,
        },
        hold_timeout: config.hold_timeout,
        inject: config.inject,
        state: bus.state(service),
        frames: broadcast::channel(FRAMES_KEPT).0,
        waiting_for: Mutex::new("the first build and start".to_owned()),
        warned_encoding: AtomicBool::new(false),
        hosts: access::Hosts::new(config.allowed_hosts.clone()),
        warned_csp: rewrite::WarnedPaths::default(),
        triggers: trigger::Triggers::new(quiet),
    });
    let slots = Arc::new(access::Slots::for_limit(
        crate::process::limits::descriptor_limit(),
    ));
    let (stop, stopped) = watch::channel(false);
    let mut proxy = Proxy {
        stop,
        workers: Vec::new(),
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    for worker in 0..workers {
        let listener = listener
            .try_clone()
            .context("cannot share the proxy's socket between its threads")?;
        // The first worker also relays the lifecycle events to the pages' streams.
        // (The server's readiness check, for saying what a held request waits for.)
        let events = (worker == 0).then(|| Relayed {
            events: bus.subscribe(),
            service: service.clone(),
            readiness: readiness.cloned(),
        });
        let (shared, stopped, slots) = (shared.clone(), stopped.clone(), slots.clone());
        let thread = std::thread::Builder::new()
            .name("proxy".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        status::error(&format!("error: the proxy cannot start: {err}"));
                        return;
                    }
                };
                // Connections are tasks of this thread only (spawn_local): nothing they hold
                // needs to be Send, and the proxy never competes with the engine's thread.
                let local = tokio::task::LocalSet::new();
                runtime.block_on(local.run_until(serve(listener, shared, slots, events, stopped)));
            })
            .context("cannot start the proxy's threads")?;
        proxy.workers.push(thread);
    }
    Ok(proxy)
}

/// A held socket bound to all interfaces is reached on loopback.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// What the first worker relays to the pages' streams: the events of the service the proxy
/// forwards to (and its readiness check, for saying what a held request waits for).
struct Relayed {
    events: broadcast::Receiver<Arc<Published>>,
    service: ServiceName,
    readiness: Option<Readiness>,
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    slots: Arc<access::Slots>,
    events: Option<Relayed>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            status::error(&format!("error: the proxy cannot listen: {err}"));
            return;
        }
    };
    // The lifecycle events, relayed to the pages' streams as frames.
    let frames = shared.frames.clone();
    let relay_shared = shared.clone();
    let relay = events.map(|mut relayed| {
        tokio::spawn(async move {
            let readiness = relayed.readiness;
            loop {
                match relayed.events.recv().await {
                    Ok(published) if published.service == relayed.service => {
                        let event = &published.event;
                        if let Some(waiting) = waiting_for(event, readiness.as_ref()) {
                            *lock(&relay_shared.waiting_for) = waiting;
                        }
                        if let Some(frame) = events::of(event, relay_shared.app_port) {
                            let _ = frames.send(frame);
                        }
                    }
                    // Another service's event: the pages show the one they are served by. A
                    // lag: each stream sends a fresh hello when it lags itself.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    });
    let mut connections = Connections::default();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of descriptors, say: give the others a moment to close.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let Some(slot) = slots.take() else {
                    refuse_past_cap(&stream, &slots);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    serve_connection(stream, peer, shared).await;
                });
            }
        }
    }
    if let Some(relay) = relay {
        relay.abort();
    }
    connections.abort_all();
}

/// One browser connection, until it closes.
async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let link = std::rc::Rc::new(forward::Link::default());
    let service = hyper::service::service_fn(move |request| {
        let (shared, link) = (shared.clone(), link.clone());
        async move { Ok::<_, Infallible>(route(shared, &link, request, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// A connection past the cap gets its 503 at once and is closed: written without waiting (a
/// new socket's send buffer is empty), after reading what request already came, so that
/// closing does not reset the connection before the client reads the answer.
fn refuse_past_cap(stream: &tokio::net::TcpStream, slots: &access::Slots) {
    if slots.first_time_full() {
        status::warning(&format!(
            "proxy: {} browser connections are open, the most reload's descriptor limit allows \
             (ulimit -n) while keeping descriptors for builds and servers; new ones get 503 \
             until some close",
            slots.cap()
        ));
    }
    let mut request = [0; 4096];
    let _ = stream.try_read(&mut request);
    let _ = stream.try_write(access::full_answer(slots.cap()).as_bytes());
}

/// What a request held now would be waiting for, after `event`.
fn waiting_for(event: &Lifecycle, readiness: Option<&Readiness>) -> Option<String> {
    Some(match event {
        Lifecycle::BuildStarted { command } => format!("the build (`{command}`) is running"),
        Lifecycle::ServerStarting { pid, .. } => not_ready(*pid, readiness),
        Lifecycle::ServerExited { ended, .. } => format!(
            "the app {}; reload starts it again on the next save",
            status::ended_words(ended)
        ),
        Lifecycle::ServerFailed(failure) => status::server_failed(failure),
        Lifecycle::Stopping { pid, .. } => format!("the old app (pid {pid}) is stopping"),
        _ => return None,
    })
}

/// What a server that has started, and is not ready yet, is waited on for: its readiness
/// check, in words.
fn not_ready(pid: u32, readiness: Option<&Readiness>) -> String {
    let started = format!("the app (pid {pid}) has started");
    match readiness {
        Some(Readiness::TcpConnect(address)) => format!(
            "{started} but does not accept connections on {address}; if it listens on another \
             port, give that one to --app-port"
        ),
        Some(Readiness::Notify) => {
            format!("{started} and has not sent READY=1 yet, which `--ready notify` waits for")
        }
        Some(Readiness::Http(probe)) => format!(
            "{started} and http://{}{} does not answer yet, which `--ready http` waits for",
            probe.authority, probe.path
        ),
        Some(Readiness::GivenPort) => format!(
            "{started} and listens on no TCP port yet (it was given one as PORT; another one \
             is followed)"
        ),
        Some(Readiness::Spawned) | None => started,
    }
}

/// The connections being served, so that they end with the proxy.
#[derive(Default)]
struct Connections {
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Connections {
    fn spawn(&mut self, task: impl Future<Output = ()> + 'static) {
        self.tasks.retain(|task| !task.is_finished());
        self.tasks
            .push(tokio::task::spawn_local(task).abort_handle());
    }

    fn abort_all(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// reload's own endpoints under `/__reload/`; everything else goes to the app.
async fn route(
    shared: Arc<Shared>,
    link: &forward::Link,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let path = request.uri().path();
    if let Err(refusal) = shared.hosts.check(request.uri(), request.headers()) {
        warn_refused(&shared.hosts, &refusal);
        return access::forbidden(&refusal, path);
    }
    let Some(own) = path.strip_prefix("/__reload/") else {
        return forward::forward(&shared, link, request, peer).await;
    };
    let checked = match own {
        "trigger" => access::same_site(request.headers()),
        _ => access::same_origin(request.headers()),
    };
    if let Err(refusal) = checked {
        return access::forbidden(&refusal, path);
    }
    match (request.method(), own) {
        (&Method::GET | &Method::HEAD, "client.js") => respond(
            StatusCode::OK,
            &[
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Bytes::from_static(page::CLIENT_JS.as_bytes()),
        ),
        (&Method::GET, "events") => {
            let stream = events::Stream::new(
                shared.frames.subscribe(),
                shared.state.clone(),
                shared.app_port,
            );
            let mut response = Response::new(stream.map_err(|never| match never {}).boxed_unsync());
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-cache"),
            );
            response
        }
        (&Method::POST, "trigger") if is_loopback(peer) => {
            let user_agent = request.headers().get(header::USER_AGENT);
            if shared.triggers.ask(user_agent, std::time::Instant::now()) {
                tokio::spawn(trigger::fire_when_quiet(shared.clone()));
            }
            respond(StatusCode::NO_CONTENT, &[], Bytes::new())
        }
        (_, "trigger") if !is_loopback(peer) => text(
            StatusCode::FORBIDDEN,
            "reload: /__reload/trigger answers only connections from this machine\n",
        ),
        (_, "trigger") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "reload: POST /__reload/trigger to reload every page\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "reload: no such endpoint; reload serves /__reload/client.js, /__reload/events and \
             POST /__reload/trigger\n",
        ),
    }
}

/// One line in the terminal per refused name, so that a developer who reaches the proxy by a
/// new name learns what to allow, and a page trying names by the thousand floods nothing.
fn warn_refused(hosts: &access::Hosts, refusal: &access::Refusal) {
    let access::Refusal::ForeignHost(host) = refusal else {
        return;
    };
    match hosts.first_refusal(host) {
        access::FirstRefusal::Yes => status::warning(&format!(
            "proxy: refused a request for host `{host}` (403): only localhost, *.localhost and \
             IP addresses are answered, so that no other web page can read your app (DNS \
             rebinding); if you reach the proxy by this name, add --allow-host {} or [proxy] \
             allowed_hosts",
            access::host_name(host)
        )),
        access::FirstRefusal::TooMany => status::warning(
            "proxy: more requests for other hosts were refused; they are not listed one by one",
        ),
        access::FirstRefusal::No => {}
    }
}

fn is_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
    }
}

pub(crate) fn respond(
    status: StatusCode,
    headers: &[(header::HeaderName, &'static str)],
    body: Bytes,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name.clone(), header::HeaderValue::from_static(value));
    }
    response
}

pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    respond(
        status,
        &[(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Bytes::from(message.into()),
    )
}

pub(crate) fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
