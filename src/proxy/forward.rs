//! Forwarding one request: wait for a ready server, send it there, retry what never reached
//! it (and what it dropped unanswered, when that is safe), and hand the answer back.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{Body, BoxError, Shared, lock, rewrite, text};
use crate::lifecycle::{BuildState, Generation};

/// The largest request body kept so that the request can be sent again to the next server.
pub(crate) const KEPT_BODY: usize = 1024 * 1024;

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
    /// Sent as it arrives; back in the slot only when hyper hands it back unsent.
    Streamed(Option<Body>),
}

impl Outgoing {
    /// The body for one attempt; `None` when a streamed body is already spent.
    fn attempt(&mut self) -> Option<Body> {
        match self {
            Outgoing::Kept(bytes) => Some(super::full(bytes.clone())),
            Outgoing::Streamed(body) => body.take(),
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Answered(Response<Incoming>),
    /// The request never reached a server (refused, or a pooled connection closed before it
    /// was written): always safe to send again, with its body handed back.
    NotSent(Body),
    /// The server took the request and gave no response.
    Dropped(hyper::Error),
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
    // What the page rewrite needs of the request: its method, its path (for a warning), and
    // whether it asked for a partial (htmx, Datastar); not a copy of every header.
    let mut markers = HeaderMap::new();
    for name in ["hx-request", "datastar-request"] {
        if let Some(value) = parts.headers.get(name) {
            markers.insert(name, value.clone());
        }
    }
    let original = rewrite::Asked {
        method: parts.method.clone(),
        markers,
        path: parts.uri.path().to_owned(),
    };
    let host = parts.headers.get(header::HOST).cloned();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    add_forwarded(&mut parts.headers, peer, host);
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let small = body.is_end_stream()
        || body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= KEPT_BODY as u64);
    let mut outgoing = if idempotent && small && !upgrade {
        match Limited::new(body, KEPT_BODY).collect().await {
            Ok(collected) => Outgoing::Kept(collected.to_bytes()),
            Err(err) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("reload: the request's body could not be read: {err}\n"),
                );
            }
        }
    } else {
        Outgoing::Streamed(Some(body.map_err(BoxError::from).boxed_unsync()))
    };
    if !parts.headers.contains_key(header::HOST) {
        // HTTP/1.0 has no Host; the app gets one all the same.
        if let Ok(host) = HeaderValue::from_str(&shared.upstream.to_string()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    // Origin form on the wire, as a browser sends it to a server.
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |path| Uri::from(path.clone()));

    let mut refused: Option<Generation> = None;
    let mut pause = Duration::from_millis(10);
    loop {
        let (generation, target) = match ready(shared, deadline, refused, pause, html).await {
            Ok(ready) => ready,
            Err(response) => return response,
        };
        let Some(body) = outgoing.attempt() else {
            return text(
                StatusCode::BAD_GATEWAY,
                "reload: the app closed the connection before answering, and the request's \
                 body was already sent, so it was not sent again\n",
            );
        };
        let attempt = Request::from_parts(parts.clone(), body);
        match send(link, generation, target, attempt, upgrade).await {
            Attempt::Answered(response) => {
                let response = if matches!(outgoing, Outgoing::Kept(_)) {
                    // The server died while it answered (a non-draining server stopped
                    // mid-write): nothing reached the browser yet, so it is sent again.
                    let Ok(response) = whole(response).await else {
                        refused = Some(generation);
                        pause = (pause * 2).min(Duration::from_millis(200));
                        continue;
                    };
                    response
                } else {
                    response.map(|body| body.map_err(BoxError::from).boxed_unsync())
                };
                return answer(shared, &original, response, generation, browser_side).await;
            }
            Attempt::NotSent(body) => {
                if let Outgoing::Streamed(slot) = &mut outgoing {
                    // Handed back unsent: put it back for the next attempt.
                    *slot = Some(body);
                }
                refused = Some(generation);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Attempt::Dropped(err) => {
                if !matches!(outgoing, Outgoing::Kept(_)) {
                    let why = if idempotent {
                        "its body was too large to keep for a second try"
                    } else {
                        "it is not idempotent, so sending it again could do it twice"
                    };
                    return text(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "reload: the app (generation {}) closed the connection before \
                             answering ({err}); the {} request was not sent again: {why}\n",
                            generation.0, original.method
                        ),
                    );
                }
                refused = Some(generation);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// Wait until a server is ready, other than `refused` (which refused or dropped the last
/// attempt) unless `pause` goes by without a change (then try it again). The answer to give
/// instead when none will be: the failed build's page, or a 504 past the deadline.
async fn ready(
    shared: &Shared,
    deadline: Instant,
    refused: Option<Generation>,
    pause: Duration,
    html: bool,
) -> Result<(Generation, SocketAddr), Response<Body>> {
    let mut state = shared.state.clone();
    // A server given a port of its own (overlap behind the proxy) is reached there.
    let target = |serving: crate::lifecycle::Serving| {
        let port = serving.port.unwrap_or(shared.upstream.port());
        (
            serving.generation,
            SocketAddr::new(shared.upstream.ip(), port),
        )
    };
    loop {
        let now = state.borrow_and_update().clone();
        let wait = match now.serving {
            Some(serving) if Some(serving.generation) != refused => return Ok(target(serving)),
            Some(serving) => {
                // The same server refused: most often it is being replaced and the change is
                // on its way; if not, it is tried again after `pause`.
                let retry = Instant::now() + pause;
                if retry >= deadline {
                    return Err(timeout(shared, html));
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
                tokio::time::timeout_at(deadline, state.changed()).await
            }
        };
        match wait {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(exiting()),
            Err(_) => return Err(timeout(shared, html)),
        }
    }
}

fn exiting() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "reload is exiting: no app to forward to\n",
    )
}

/// The 504 past `hold_timeout`, saying what reload was waiting for.
fn timeout(shared: &Shared, html: bool) -> Response<Body> {
    let waiting = lock(&shared.waiting_for).clone();
    let message = format!(
        "reload held this request for {:?} (hold_timeout) and no app was ready to take it: \
         {waiting}\n",
        shared.hold_timeout
    );
    let mut response = text(StatusCode::GATEWAY_TIMEOUT, message.clone());
    if html {
        response =
            rewrite::message_page(StatusCode::GATEWAY_TIMEOUT, "Waiting for the app", &message);
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
                None => return Attempt::Dropped(err.into_error()),
            },
        }
    }
    let Ok(stream) = tokio::net::TcpStream::connect(target).await else {
        return Attempt::NotSent(request.into_body());
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
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
            None => Attempt::Dropped(err.into_error()),
        },
    }
}

/// The app's response, on its way to the browser: hop-by-hop headers off, an upgrade spliced,
/// an HTML page given the live-reload script.
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
    rewrite::response(shared, original, response, generation).await
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
