//! What the proxy changes in an answer: the live-reload script in an HTML page (whole, or as
//! it streams; decoded and encoded again when compressed), and the pages it makes itself.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, header};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, Limited};

use super::inject::{self, Decision, Encoding};
use super::{Body, BoxError, Shared, lock, page, respond, text};
use crate::lifecycle::{Generation, Trouble};
use crate::status;

/// A page up to this size with a known length is rewritten whole (the script before its
/// `</body>`); a larger one, or one that streams, gets it right after `<body>` as it passes.
const WHOLE: u64 = 16 * 1024 * 1024;

/// How many page paths a blocking Content-Security-Policy is warned about.
const WARNED_PATHS: usize = 256;

/// What the page rewrite needs of the request: not a copy of every header.
pub(crate) struct Asked {
    pub method: Method,
    /// The headers that mark a partial (htmx, Datastar).
    pub markers: HeaderMap,
    /// The path, without the query, for the terminal.
    pub path: String,
}

/// Page paths already named in a warning, so that each is named once. Bounded, so that a
/// crawler cannot grow it without end: past `WARNED_PATHS` paths, no more are named.
#[derive(Default)]
pub(crate) struct WarnedPaths(Mutex<HashSet<String>>);

impl WarnedPaths {
    /// Whether `path` is to be named now: it was not yet, and there is room to remember it.
    fn first(&self, path: &str) -> bool {
        let mut paths = lock(&self.0);
        paths.len() < WARNED_PATHS && paths.insert(path.to_owned())
    }
}

/// The app's response with the script put in, when it is a page that takes one.
pub(crate) async fn response(
    shared: &Shared,
    asked: &Asked,
    response: Response<Body>,
    generation: Generation,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if !shared.inject {
        return Response::from_parts(parts, body);
    }
    let (encoding, nonce) =
        match inject::decide(&asked.method, &asked.markers, parts.status, &parts.headers) {
            Decision::Pass => return Response::from_parts(parts, body),
            Decision::Blocked(blocked) => {
                if shared.warned_csp.first(&asked.path) {
                    status::warning(&format!(
                        "proxy: {} has a Content-Security-Policy ({}) that blocks reload's \
                         script, so this page gets no live reload: {}",
                        asked.path,
                        blocked.directive,
                        blocked.fix()
                    ));
                }
                return Response::from_parts(parts, body);
            }
            Decision::Unsupported(why) => {
                if !shared.warned_encoding.swap(true, Ordering::Relaxed) {
                    status::warning(&format!(
                        "proxy: {why}; such pages pass through as they are, without live reload"
                    ));
                }
                return Response::from_parts(parts, body);
            }
            Decision::Inject { encoding, nonce } => (encoding, nonce),
        };
    let tag = inject::script_tag(super::events::wire(generation), nonce.as_deref());
    if body.size_hint().exact().is_some_and(|n| n <= WHOLE) {
        let bytes = match Limited::new(body, usize::try_from(WHOLE).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return super::text(
                    StatusCode::BAD_GATEWAY,
                    format!("reload: the app's page could not be read: {err}\n"),
                );
            }
        };
        let rewritten = whole(encoding, &bytes, &tag);
        let bytes = rewritten.map_or(bytes, Bytes::from);
        inject::fix_headers(&mut parts.headers, Some(bytes.len()));
        return Response::from_parts(parts, super::full(bytes));
    }
    inject::fix_headers(&mut parts.headers, None);
    let streamed = Streamed {
        inner: body,
        codec: (encoding != Encoding::Identity).then(|| inject::StreamCodec::new(encoding)),
        injector: Some(inject::Streaming::new(tag)),
    };
    Response::from_parts(parts, streamed.boxed_unsync())
}

/// A whole page with the script in it; `None` when it has no place for one (or cannot be
/// decoded): it then goes to the browser as it came.
fn whole(encoding: Encoding, body: &[u8], tag: &str) -> Option<Vec<u8>> {
    if encoding == Encoding::Identity {
        return inject::insert_complete(body, tag);
    }
    let plain = inject::decode(encoding, body).ok()?;
    let with_script = inject::insert_complete(&plain, tag)?;
    inject::encode(encoding, &with_script).ok()
}

/// A page that streams, rewritten chunk by chunk: each chunk reaches the browser as soon as it
/// arrives, so a streamed page still streams.
struct Streamed {
    inner: Body,
    codec: Option<inject::StreamCodec>,
    /// Taken at the end.
    injector: Option<inject::Streaming>,
}

impl Streamed {
    fn pass(&mut self, chunk: &[u8]) -> std::io::Result<Vec<u8>> {
        let plain = match &mut self.codec {
            Some(codec) => codec.decode(chunk)?,
            None => chunk.to_vec(),
        };
        let out = match &mut self.injector {
            Some(injector) => injector.push(plain),
            None => plain,
        };
        match &mut self.codec {
            Some(codec) => codec.encode(&out),
            None => Ok(out),
        }
    }

    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        self.injector = None;
        self.codec
            .take()
            .map_or(Ok(Vec::new()), inject::StreamCodec::finish)
    }
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.injector.is_none() && self.codec.is_none() {
                // Finished, or passing through after the end.
                return Pin::new(&mut self.inner).poll_frame(cx);
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = self.pass(&data)?;
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    let rest = self.finish()?;
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
            }
        }
    }
}

/// What a request gets when no server runs because the build failed: a page with the output
/// (which turns into the app by itself once a build succeeds), or the text, with Retry-After.
pub(crate) fn failed_build(
    html: bool,
    how: &str,
    errors: Option<usize>,
    output: &str,
) -> Response<Body> {
    let response = if html {
        let script = inject::script_tag(0, None);
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &[(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            Bytes::from(page::failed_build_page(how, errors, output, &script)),
        )
    } else {
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &[(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Bytes::from(page::failed_build_text(how, errors, output)),
        )
    };
    not_yet(response)
}

/// A 503 of reload's own: to be asked again in a second, never to be stored (the app
/// answers the next time).
fn not_yet(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// What a request for the app gets when something is wrong that waiting will not mend
/// (`port`: where the app was to listen, when it binds a port itself): a 503 that says what,
/// as a page that turns into the app once a server is ready, or as text.
pub(crate) fn trouble(html: bool, trouble: &Trouble, port: Option<u16>) -> Response<Body> {
    let (title, message) = page::trouble(trouble, port);
    let response = if html {
        message_page(StatusCode::SERVICE_UNAVAILABLE, &title, &message)
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reload: {message}\n"),
        )
    };
    not_yet(response)
}

/// A page of reload's own with a message (a request held past the hold timeout), which
/// reloads by itself once a server is ready.
pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response<Body> {
    let script = inject::script_tag(0, None);
    respond(
        status,
        &[(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Bytes::from(page::message_page(title, message, &script)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_is_warned_about_once_and_the_set_is_bounded() {
        let warned = WarnedPaths::default();
        assert!(warned.first("/admin"));
        assert!(!warned.first("/admin"), "once per path");
        for n in 1..WARNED_PATHS {
            assert!(warned.first(&format!("/page/{n}")), "{n}");
        }
        assert!(
            !warned.first("/one-too-many"),
            "past the cap, no more lines"
        );
        assert_eq!(lock(&warned.0).len(), WARNED_PATHS);
    }
}
