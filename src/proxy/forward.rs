//! Forwarding one request: wait for a ready server, send it there, and hand the answer back.
//!
//! What never reached a server (refused, or a kept connection closed before it was written) is
//! sent again for as long as the hold timeout allows: that is how no request fails across a
//! restart. What a server took and closed without answering is sent again at most once, and
//! only to a newer server when the one it reached is stopping or gone (the engine publishes
//! `Stopping` before it signals, so the state already says so when the drop comes); a server
//! that serves on gets no second copy, and the browser a 502 that says what it did. A body that
//! streamed to the app is never sent twice. A request whose own body is broken (a bad chunk, a
//! body shorter than its Content-Length) gets a 400 and is never blamed on the app.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{Body, BoxError, Shared, lock, rewrite, text};
use crate::lifecycle::{BuildState, Generation, Serving};
use crate::status;

/// The largest request body kept so that the request can be sent again to the next server.
pub(crate) const KEPT_BODY: usize = 1024 * 1024;

/// The longest pause between two tries of a server that refused the request.
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// The connection to the app that one browser connection uses, tagged with the server
/// generation it reaches (a connection to a server that is gone is never reused). HTTP/1.1
/// sends one request at a time on a connection, so one upstream connection per browser
/// connection is all the reuse there is to have, with no lock and no search.
#[derive(Default)]
pub(crate) struct Link {
    app: RefCell<Option<(Generation, SendRequest<Body>)>>,
}

impl Link {
    /// The connection to `generation`, once its last answer is done; `None` when there is none
    /// or the app closed it.
    async fn take(&self, generation: Generation) -> Option<SendRequest<Body>> {
        let (reaches, mut sender) = self.app.borrow_mut().take()?;
        if reaches != generation {
            return None;
        }
        sender.ready().await.ok()?;
        Some(sender)
    }

    fn keep(&self, generation: Generation, sender: SendRequest<Body>) {
        *self.app.borrow_mut() = Some((generation, sender));
    }
}

/// The request's body, kept when it can be sent twice.
enum Outgoing {
    Kept(Bytes),
    /// Sent as it arrives; back in `body` only when hyper hands it back unsent.
    Streamed {
        body: Option<Body>,
        why: NotKept,
    },
}

/// Why a request's body streams to the app instead of being kept for a second try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotKept {
    /// Sending it twice could do it twice (POST, PATCH).
    NotIdempotent,
    /// Its size was not known in advance (chunked).
    SizeUnknown,
    /// Over [`KEPT_BODY`].
    Large,
    /// A protocol switch (WebSocket): the connection becomes the app's.
    Upgrade,
}

impl NotKept {
    fn describe(self, method: &Method) -> String {
        match self {
            NotKept::NotIdempotent => {
                format!("a {method} is not idempotent, so sending it again could do it twice")
            }
            NotKept::SizeUnknown => "its body streamed to the app as it arrived (its size was \
                                     not known in advance), so it was not kept for a second try"
                .to_owned(),
            NotKept::Large => format!(
                "its body streamed to the app as it arrived (over {} MiB), so it was not kept \
                 for a second try",
                KEPT_BODY / (1024 * 1024)
            ),
            NotKept::Upgrade => "a protocol upgrade is never sent twice".to_owned(),
        }
    }
}

impl Outgoing {
    /// Keep the body when the request may be sent twice, else stream it, noting in `fault` an
    /// error reading it from the browser. A kept body that cannot be read is the 400 to give.
    async fn of(
        method: &Method,
        body: Incoming,
        upgrade: bool,
        fault: &Fault,
    ) -> Result<Outgoing, Response<Body>> {
        let idempotent = matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        let declared = body.size_hint().exact();
        let size = if body.is_end_stream() {
            Some(0)
        } else {
            body.size_hint().upper()
        };
        let why = if upgrade {
            NotKept::Upgrade
        } else if !idempotent {
            NotKept::NotIdempotent
        } else {
            match size {
                None => NotKept::SizeUnknown,
                Some(n) if n > KEPT_BODY as u64 => NotKept::Large,
                Some(_) => {
                    return match Limited::new(body, KEPT_BODY).collect().await {
                        Ok(collected) => Ok(Outgoing::Kept(collected.to_bytes())),
                        Err(err) => Err(text(StatusCode::BAD_REQUEST, malformed(&*err, declared))),
                    };
                }
            }
        };
        let noted = fault.clone();
        let body = body
            .map_err(move |err| {
                noted.note(malformed(&err, declared));
                BoxError::from(err)
            })
            .boxed_unsync();
        Ok(Outgoing::Streamed {
            body: Some(body),
            why,
        })
    }

    /// The body for one attempt; `None` when a streamed body is already spent.
    fn attempt(&mut self) -> Option<Body> {
        match self {
            Outgoing::Kept(bytes) => Some(super::full(bytes.clone())),
            Outgoing::Streamed { body, .. } => body.take(),
        }
    }

    /// A streamed body hyper handed back unsent, for the next attempt.
    fn put_back(&mut self, unsent: Body) {
        if let Outgoing::Streamed { body, .. } = self {
            *body = Some(unsent);
        }
    }
}

/// The 400 text for a request body that could not be read from the browser, set by the
/// streamed body when it fails (the send to the app then fails too, and this says why). The
/// body is `Send` (hyper's client connection task may run it), hence the `Arc`.
#[derive(Clone, Default)]
struct Fault(Arc<OnceLock<String>>);

impl Fault {
    fn note(&self, text: String) {
        let _ = self.0.set(text);
    }

    fn get(&self) -> Option<&String> {
        self.0.get()
    }
}

/// What is wrong with a request body that failed to read (`declared`: its Content-Length),
/// as the 400's text: the body's fault in words, then the error and its causes.
fn malformed(err: &(dyn std::error::Error + 'static), declared: Option<u64>) -> String {
    let mut chain = err.to_string();
    let mut kind = err
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind);
    let mut source = err.source();
    while let Some(cause) = source {
        kind = kind.or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
        });
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    let fault = match (kind, declared) {
        (Some(std::io::ErrorKind::UnexpectedEof), Some(length)) => {
            format!("shorter than its Content-Length of {length} bytes")
        }
        (Some(std::io::ErrorKind::UnexpectedEof), None) => "cut short in a chunk".to_owned(),
        (Some(std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData), _) => {
            "a bad chunk".to_owned()
        }
        _ => "it could not be read".to_owned(),
    };
    format!("reload: the request's body is malformed ({fault}): {chain}\n")
}

/// How one attempt ended.
enum Attempt {
    Answered(Response<Incoming>),
    /// The request never reached a server (refused, or a pooled connection closed before it
    /// was written): always safe to send again, with its body handed back.
    NotSent(Body),
    /// The server took the request and gave no response. `reused`: on a connection kept from
    /// an earlier request, which the server may have closed (idle) as the request went out.
    Dropped {
        error: hyper::Error,
        reused: bool,
    },
}

/// How an attempt that reached a server came to nothing.
enum Unanswered {
    /// The server closed the connection without a response.
    Closed { error: hyper::Error, reused: bool },
    /// It closed it in the middle of a response that was being read whole.
    CutOff(hyper::Error),
}

impl Unanswered {
    fn describe(&self, method: &Method) -> String {
        match self {
            Unanswered::Closed { error, .. } => format!(
                "accepted the {method} request and closed the connection without answering \
                 ({error})"
            ),
            Unanswered::CutOff(error) => format!(
                "closed the connection in the middle of its answer to the {method} request \
                 ({error})"
            ),
        }
    }
}

/// What to do with a request a server took and gave no answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterDrop {
    /// The server is stopping or gone: a newer one gets the request.
    Newer,
    /// The server serves on, and the connection was one kept from an earlier request, which
    /// it may have closed for being idle as the request went out: a new connection gets it.
    Fresh,
    /// The answer is a 502: the server serves on and took it, or it was sent again already.
    Answer,
}

/// The rule for a request `server` took and gave no answer to, `serving` being who serves
/// now: sent again at most once, and to the same server only on a new connection after a
/// kept one failed.
fn after_drop(
    server: Generation,
    serving: Option<Serving>,
    reused: bool,
    resent: bool,
) -> AfterDrop {
    if resent {
        AfterDrop::Answer
    } else if serving.is_none_or(|now| now.generation != server) {
        AfterDrop::Newer
    } else if reused {
        AfterDrop::Fresh
    } else {
        AfterDrop::Answer
    }
}

/// What the request met on its way so far: where it may go next, and what its answer says
/// when it goes nowhere.
struct Trail {
    /// The server that refused the last try, where, and since when: another server takes the
    /// request at once, this one again after `pause`.
    refused: Option<Refusal>,
    /// The server that took the request and closed without answering as it stopped: only a
    /// newer one takes it.
    dropped: Option<Serving>,
    /// It was sent again once after a drop, and never is a second time.
    resent: bool,
    pause: Duration,
}

#[derive(Clone, Copy)]
struct Refusal {
    server: Serving,
    at: SocketAddr,
    since: Instant,
}

impl Default for Trail {
    fn default() -> Trail {
        Trail {
            refused: None,
            dropped: None,
            resent: false,
            pause: Duration::from_millis(10),
        }
    }
}

impl Trail {
    fn refused_by(&mut self, server: Serving, at: SocketAddr) {
        let since = match self.refused {
            Some(earlier) if earlier.server.generation == server.generation => earlier.since,
            _ => Instant::now(),
        };
        self.refused = Some(Refusal { server, at, since });
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }

    /// Who may take the request of those `serving`.
    fn allows(&self, serving: Option<Serving>) -> Option<Serving> {
        serving.filter(|now| {
            self.dropped
                .is_none_or(|dropped| now.generation > dropped.generation)
        })
    }

    /// What the request met, for the 504 past the hold timeout (`waiting_for`: what a held
    /// request waits for, from the lifecycle events), `serving` being who serves now.
    fn held_for(&self, waiting_for: String, serving: Option<Serving>) -> String {
        if let Some(refusal) = self.refused
            && serving.is_some_and(|now| now.generation == refusal.server.generation)
        {
            // A port reload gave the server is the right one; else it may listen elsewhere.
            let hint = if refusal.server.port.is_none() {
                "; if it listens on another port, give that one to --app-port"
            } else {
                ""
            };
            return format!(
                "the app (generation {}, pid {}) refused connections on {} for {}{hint}",
                refusal.server.generation.0,
                refusal.server.pid,
                refusal.at,
                status::duration(refusal.since.elapsed()),
            );
        }
        match self.dropped {
            Some(dropped) => format!(
                "the app (generation {}, pid {}) closed the connection without answering as it \
                 stopped, and no newer one was ready: {waiting_for}",
                dropped.generation.0, dropped.pid
            ),
            None => waiting_for,
        }
    }
}

pub(crate) async fn forward(
    shared: &Shared,
    link: &Link,
    mut request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let deadline = Instant::now() + shared.hold_timeout;
    let upgrade = wants_upgrade(request.headers());
    let browser_side = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let html = accepts_html(&parts.headers);
    let original = rewrite::Asked {
        method: parts.method.clone(),
        markers: markers(&parts.headers),
        path: parts.uri.path().to_owned(),
    };
    let fault = Fault::default();
    let mut outgoing = match Outgoing::of(&parts.method, body, upgrade, &fault).await {
        Ok(outgoing) => outgoing,
        Err(response) => return response,
    };
    to_the_app(&mut parts, shared, peer, upgrade);

    let mut trail = Trail::default();
    loop {
        let (server, target) = match ready(shared, deadline, &trail, html).await {
            Ok(ready) => ready,
            Err(response) => return response,
        };
        let Some(body) = outgoing.attempt() else {
            return text(
                StatusCode::BAD_GATEWAY,
                "reload: the request's body was already sent to the app, so it was not sent \
                 again\n",
            );
        };
        let attempt = Request::from_parts(parts.clone(), body);
        let unanswered = match send(link, server.generation, target, attempt, upgrade).await {
            Attempt::Answered(response) => {
                // A kept request's answer is read whole when small, so that a server that dies
                // mid-answer (a non-draining server stopped mid-write) can be asked again.
                let response = if matches!(outgoing, Outgoing::Kept(_)) {
                    whole(response).await
                } else {
                    Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
                };
                match response {
                    Ok(response) => {
                        let generation = server.generation;
                        return answer(shared, &original, response, generation, browser_side).await;
                    }
                    Err(error) => Unanswered::CutOff(error),
                }
            }
            Attempt::NotSent(body) => {
                outgoing.put_back(body);
                trail.refused_by(server, target);
                continue;
            }
            Attempt::Dropped { error, reused } => Unanswered::Closed { error, reused },
        };
        if let Some(malformed) = fault.get() {
            return text(StatusCode::BAD_REQUEST, malformed.clone());
        }
        if let Some(response) = after_unanswered(
            shared,
            &mut trail,
            &outgoing,
            server,
            &unanswered,
            &original.method,
        ) {
            return response;
        }
    }
}

/// After `server` took the request and gave no answer: the 502 to give, or `None` when the
/// request is to be sent again (`trail` then says where).
fn after_unanswered(
    shared: &Shared,
    trail: &mut Trail,
    outgoing: &Outgoing,
    server: Serving,
    unanswered: &Unanswered,
    method: &Method,
) -> Option<Response<Body>> {
    let reused = matches!(unanswered, Unanswered::Closed { reused: true, .. });
    let serving = shared.state.borrow().serving;
    let why = match outgoing {
        Outgoing::Streamed { why, .. } => why.describe(method),
        Outgoing::Kept(_) => match after_drop(server.generation, serving, reused, trail.resent) {
            AfterDrop::Newer => {
                trail.dropped = Some(server);
                trail.resent = true;
                return None;
            }
            AfterDrop::Fresh => {
                trail.resent = true;
                return None;
            }
            AfterDrop::Answer if trail.resent => {
                "it had been sent again once already, and never is a second time".to_owned()
            }
            AfterDrop::Answer => {
                "that app serves on and is not stopping, so the request would only reach it \
                 again"
                    .to_owned()
            }
        },
    };
    Some(text(
        StatusCode::BAD_GATEWAY,
        format!(
            "reload: the app (generation {}, pid {}) {}; the request was not sent again: {why}\n",
            server.generation.0,
            server.pid,
            unanswered.describe(method),
        ),
    ))
}

/// What the page rewrite needs of the request besides its method: whether it asked for a
/// partial (htmx, Datastar); not a copy of every header.
fn markers(headers: &HeaderMap) -> HeaderMap {
    let mut markers = HeaderMap::new();
    for name in ["hx-request", "datastar-request"] {
        if let Some(value) = headers.get(name) {
            markers.insert(name, value.clone());
        }
    }
    markers
}

/// The request's head as the app gets it: hop-by-hop headers off, `X-Forwarded-*` on, a Host
/// when it had none, and the origin form a browser sends to a server.
fn to_the_app(parts: &mut Parts, shared: &Shared, peer: SocketAddr, upgrade: bool) {
    let host = parts.headers.get(header::HOST).cloned();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    add_forwarded(&mut parts.headers, peer, host);
    if !parts.headers.contains_key(header::HOST) {
        // HTTP/1.0 has no Host; the app gets one all the same.
        if let Ok(host) = HeaderValue::from_str(&shared.upstream.to_string()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |path| Uri::from(path.clone()));
}

/// Wait until a server the `trail` allows is ready; the one that refused the last try only
/// after a pause without a change (then it is tried again). The answer to give instead when
/// none will be: the failed build's page, or a 504 past the deadline.
async fn ready(
    shared: &Shared,
    deadline: Instant,
    trail: &Trail,
    html: bool,
) -> Result<(Serving, SocketAddr), Response<Body>> {
    let mut state = shared.state.clone();
    // A server given a port of its own (overlap behind the proxy) is reached there.
    let target = |serving: Serving| {
        let port = serving.port.unwrap_or(shared.upstream.port());
        (serving, SocketAddr::new(shared.upstream.ip(), port))
    };
    let refused = trail.refused.map(|refusal| refusal.server.generation);
    loop {
        let now = state.borrow_and_update().clone();
        let wait = match trail.allows(now.serving) {
            Some(serving) if Some(serving.generation) != refused => return Ok(target(serving)),
            Some(serving) => {
                // The same server refused: most often it is being replaced and the change is
                // on its way; if not, it is tried again after the pause.
                let retry = Instant::now() + trail.pause;
                if retry >= deadline {
                    return Err(timeout(shared, trail, now.serving, html));
                }
                match tokio::time::timeout_at(retry, state.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Err(exiting()),
                    Err(_) => return Ok(target(serving)),
                }
            }
            None => {
                if let BuildState::Failed {
                    how,
                    errors,
                    output,
                } = &now.build
                {
                    return Err(rewrite::failed_build(html, how, *errors, output));
                }
                // Something waiting will not mend (the app exited, or listens elsewhere): said
                // now, in a page that becomes the app once one is ready. Not while a build runs:
                // that is what the request waits for.
                if let (Some(trouble), BuildState::Passed) = (&now.trouble, &now.build) {
                    return Err(rewrite::trouble(html, trouble, shared.app_port));
                }
                tokio::time::timeout_at(deadline, state.changed()).await
            }
        };
        match wait {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(exiting()),
            Err(_) => {
                let serving = state.borrow().serving;
                return Err(timeout(shared, trail, serving, html));
            }
        }
    }
}

fn exiting() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "reload is exiting: no app to forward to\n",
    )
}

/// The 504 past `hold_timeout`, saying what the request met and what reload was waiting for.
fn timeout(shared: &Shared, trail: &Trail, serving: Option<Serving>, html: bool) -> Response<Body> {
    let waiting = trail.held_for(lock(&shared.waiting_for).clone(), serving);
    let message = format!(
        "reload held this request for {} ([proxy] hold_timeout) and no app was ready to take \
         it: {waiting}\n",
        status::duration(shared.hold_timeout)
    );
    let mut response = text(StatusCode::GATEWAY_TIMEOUT, message.clone());
    if html {
        response = rewrite::message_page(
            StatusCode::GATEWAY_TIMEOUT,
            "The app did not answer in time",
            &message,
        );
    }
    response
}

/// One attempt on the link's connection to `generation`, or a new one.
async fn send(
    link: &Link,
    generation: Generation,
    target: SocketAddr,
    request: Request<Body>,
    upgrade: bool,
) -> Attempt {
    let mut request = request;
    // The kept connection may have been closed by the app in the meantime: hyper hands the
    // request back when nothing of it was written, and a new connection is tried.
    if !upgrade && let Some(mut sender) = link.take(generation).await {
        match sender.try_send_request(request).await {
            Ok(response) => {
                link.keep(generation, sender);
                return Attempt::Answered(response);
            }
            Err(mut err) => match err.take_message() {
                Some(unsent) => request = unsent,
                None => {
                    return Attempt::Dropped {
                        error: err.into_error(),
                        reused: true,
                    };
                }
            },
        }
    }
    let Ok(stream) = tokio::net::TcpStream::connect(target).await else {
        return Attempt::NotSent(request.into_body());
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) = hyper::client::conn::http1::handshake(TokioIo::new(
        super::upstream::AppStream::new(stream),
    ))
    .await
    else {
        return Attempt::NotSent(request.into_body());
    };
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    match sender.try_send_request(request).await {
        Ok(response) => {
            if !upgrade {
                link.keep(generation, sender);
            }
            Attempt::Answered(response)
        }
        Err(mut err) => match err.take_message() {
            Some(unsent) => Attempt::NotSent(unsent.into_body()),
            None => Attempt::Dropped {
                error: err.into_error(),
                reused: false,
            },
        },
    }
}

/// A small answer (at most [`KEPT_BODY`], its length known) read whole before any of it goes to
/// the browser, so that an answer cut off by the server's death can still be asked again; a
/// larger or open-ended one streams as it comes.
async fn whole(response: Response<Incoming>) -> Result<Response<Body>, hyper::Error> {
    let small = response.status() != StatusCode::SWITCHING_PROTOCOLS
        && response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= KEPT_BODY as u64);
    if !small {
        return Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()));
    }
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, super::full(bytes)))
}

/// The app's response, on its way to the browser: hop-by-hop headers off, an upgrade spliced,
/// an HTML page given the live-reload script.
async fn answer(
    shared: &Shared,
    original: &rewrite::Asked,
    mut response: Response<Body>,
    generation: Generation,
    browser_side: Option<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(browser_side) = browser_side {
            let app_side = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(browser), Ok(app)) = tokio::join!(browser_side, app_side) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(browser),
                        &mut TokioIo::new(app),
                    )
                    .await;
                }
            });
        }
        return response;
    }
    strip_hop_by_hop(response.headers_mut(), false);
    revalidate_by_default(response.headers_mut());
    rewrite::response(shared, original, response, generation).await
}

/// `Cache-Control: no-cache` on an answer that says nothing of its freshness (no
/// Cache-Control, no Expires), so that the browser asks again every time and gets a 304 when
/// nothing changed. Such an answer is otherwise fresh for a tenth of its Last-Modified age
/// (RFC 9111 4.2.2), and `location.reload()` revalidates only the page itself: a stylesheet
/// that Gin's `r.Static` served would stay the old one after the reload. An app that chose
/// (`max-age`, `no-store`, `immutable`, an Expires) is left alone.
///
/// A 304 gets it too: the browser replaces the stored answer's headers with the 304's
/// (RFC 9111 4.3.4), so a copy stored before this proxy stood in front (fresh by the same
/// heuristic) becomes one that is asked again. An app that sends a Cache-Control with its 200
/// sends it with its 304 as well (RFC 9110 15.4.5), so its choice stays.
fn revalidate_by_default(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) && !headers.contains_key(header::EXPIRES) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
}

/// Whether the browser would rather have a page than text (a navigation, not a fetch).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), and those the
/// Connection header names. An upgrade keeps `Upgrade` and `Connection: upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// `X-Forwarded-For` (appended to), `-Proto` and `-Host` (kept when already set).
fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, host: Option<HeaderValue>) {
    let name = HeaderName::from_static("x-forwarded-for");
    let chain = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(name, value);
    }
    headers
        .entry(HeaderName::from_static("x-forwarded-proto"))
        .or_insert(HeaderValue::from_static("http"));
    if let Some(host) = host {
        headers
            .entry(HeaderName::from_static("x-forwarded-host"))
            .or_insert(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(generation: u32) -> Serving {
        Serving {
            pid: 100 + generation,
            generation: Generation(generation.into()),
            port: None,
        }
    }

    #[test]
    fn a_dropped_request_goes_once_and_only_to_a_newer_server() {
        let g = Generation(2);
        // The server is stopping (nothing serves) or gone (a newer one serves).
        assert_eq!(after_drop(g, None, false, false), AfterDrop::Newer);
        assert_eq!(
            after_drop(g, Some(server(3)), false, false),
            AfterDrop::Newer
        );
        assert_eq!(
            after_drop(g, Some(server(3)), true, false),
            AfterDrop::Newer
        );
        // It serves on and took the request on a new connection: the browser is told.
        assert_eq!(
            after_drop(g, Some(server(2)), false, false),
            AfterDrop::Answer
        );
        // A kept connection may have been closed for being idle as the request went out.
        assert_eq!(
            after_drop(g, Some(server(2)), true, false),
            AfterDrop::Fresh
        );
        // Never a third time.
        for serving in [None, Some(server(2)), Some(server(3))] {
            assert_eq!(after_drop(g, serving, true, true), AfterDrop::Answer);
        }
    }

    #[test]
    fn after_a_drop_only_a_newer_server_is_allowed() {
        let mut trail = Trail::default();
        assert_eq!(trail.allows(Some(server(1))), Some(server(1)));
        trail.dropped = Some(server(1));
        assert_eq!(trail.allows(Some(server(1))), None);
        assert_eq!(trail.allows(None), None);
        assert_eq!(trail.allows(Some(server(2))), Some(server(2)));
    }

    #[test]
    fn the_504_says_what_the_request_met() {
        let at: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let waiting = || "the build (`make`) is running".to_owned();
        let mut trail = Trail::default();
        assert_eq!(trail.held_for(waiting(), None), waiting());
        trail.refused_by(server(1), at);
        let refused = trail.held_for(waiting(), Some(server(1)));
        assert!(
            refused.starts_with(
                "the app (generation 1, pid 101) refused connections on 127.0.0.1:8080 for "
            ) && refused.ends_with("give that one to --app-port"),
            "{refused}"
        );
        // The server that refused is gone: what reload waits for now is what counts.
        assert_eq!(trail.held_for(waiting(), None), waiting());
        trail.dropped = Some(server(1));
        assert_eq!(
            trail.held_for(waiting(), None),
            "the app (generation 1, pid 101) closed the connection without answering as it \
             stopped, and no newer one was ready: the build (`make`) is running"
        );
    }

    #[test]
    fn a_refusal_counts_from_the_first_try_of_the_same_server_and_backs_off() {
        let at: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut trail = Trail::default();
        trail.refused_by(server(1), at);
        let first = trail.refused.unwrap().since;
        for _ in 0..10 {
            trail.refused_by(server(1), at);
        }
        assert_eq!(trail.refused.unwrap().since, first);
        assert_eq!(trail.pause, LONGEST_PAUSE);
        trail.refused_by(server(2), at);
        assert_eq!(trail.refused.unwrap().server, server(2));
    }

    #[test]
    fn a_malformed_body_is_named_for_what_is_wrong_with_it() {
        #[derive(Debug)]
        struct Reading(std::io::Error);
        impl std::fmt::Display for Reading {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error reading a body from connection")
            }
        }
        impl std::error::Error for Reading {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = |kind, text: &str| Reading(std::io::Error::new(kind, text.to_owned()));
        let short = io(std::io::ErrorKind::UnexpectedEof, "end of file");
        assert_eq!(
            malformed(&short, Some(100)),
            "reload: the request's body is malformed (shorter than its Content-Length of 100 \
             bytes): error reading a body from connection: end of file\n"
        );
        assert!(malformed(&short, None).contains("(cut short in a chunk)"));
        let chunk = io(std::io::ErrorKind::InvalidInput, "Invalid chunk size line");
        assert!(
            malformed(&chunk, None).contains(
                "(a bad chunk): error reading a body from connection: Invalid chunk size line"
            ),
            "{}",
            malformed(&chunk, None)
        );
        let reset = io(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(malformed(&reset, None).contains("(it could not be read)"));
    }

    #[test]
    fn a_body_not_kept_says_why_truthfully() {
        let put = NotKept::SizeUnknown.describe(&Method::PUT);
        assert!(
            put.contains("size was not known") && !put.contains("too large"),
            "{put}"
        );
        assert!(NotKept::Large.describe(&Method::PUT).contains("over 1 MiB"));
        assert!(
            NotKept::NotIdempotent
                .describe(&Method::POST)
                .contains("a POST is not idempotent")
        );
    }

    #[test]
    fn only_an_answer_silent_on_its_freshness_gets_no_cache() {
        let with = |name: HeaderName, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            headers.insert(header::LAST_MODIFIED, HeaderValue::from_static("x"));
            revalidate_by_default(&mut headers);
            headers
        };
        let silent = with(header::ETAG, "\"v\"");
        assert_eq!(silent[header::CACHE_CONTROL], "no-cache");
        for own in ["max-age=3600, immutable", "no-store", "private"] {
            let headers = with(header::CACHE_CONTROL, own);
            assert_eq!(headers[header::CACHE_CONTROL], own);
            assert_eq!(headers.get_all(header::CACHE_CONTROL).iter().count(), 1);
        }
        let expires = with(header::EXPIRES, "Thu, 01 Jan 2099 00:00:00 GMT");
        assert!(!expires.contains_key(header::CACHE_CONTROL));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers, false);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
        let mut plain = HeaderMap::new();
        plain.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(
            !wants_upgrade(&plain),
            "Upgrade without Connection: upgrade is no upgrade"
        );
    }

    #[test]
    fn forwarded_headers_append_to_a_chain_and_keep_what_is_set() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        add_forwarded(
            &mut headers,
            peer,
            Some(HeaderValue::from_static("localhost:8090")),
        );
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "localhost:8090");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        add_forwarded(&mut headers, peer, Some(HeaderValue::from_static("other")));
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "localhost:8090");
    }
}
