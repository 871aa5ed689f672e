//! The live-reload stream, `/__reload/events`: the lifecycle events a page cares about, as
//! server-sent events. Each connection starts with a `hello` (the state now, so that a page
//! that connects late or reconnects knows where things stand), then gets one event per change.
//! Nothing but lifecycle events and build output ever goes out on it. A failure goes out the
//! same in a hello and in a `failed` event: its headline in the page's words
//! ([`page::headline`]) and its output as [`page::clean`] leaves it, so the overlay shows what
//! the 503 page shows.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::page;
use crate::lifecycle::{BuildState, Generation, Lifecycle, State, Trouble};

/// A generation as pages see it: unique across runs of reload, so that a page served by an
/// earlier run (reload was restarted while the tab stayed open) reloads when it reconnects,
/// even though this run counts its servers from 1 again. See [`wire_at`].
pub(crate) fn wire(generation: Generation) -> u64 {
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|since| u64::try_from(since.as_millis()).ok())
            .unwrap_or(0)
    });
    wire_at(*run, generation)
}

/// The generation on the wire of a run that started `run` milliseconds after the epoch: the
/// milliseconds times a thousand, plus the generation. Milliseconds, not seconds: a developer
/// stops reload and starts it again within a second, and two runs that started in the same
/// second would give the same numbers, so a tab left open across the restart would not
/// reload although its server is new.
///
/// Strictly increasing across successive runs, not only unique: a run's `n`th server took a
/// build and a restart each, more than a millisecond, so `n` is below the milliseconds that
/// run has lasted, and its last number (`start * 1000 + n`) is below the next run's first
/// (`next_start * 1000 + 1`, with `next_start > start + n / 1000`). Exact in a JavaScript
/// number (below 2^53) while the milliseconds are below 2^53 / 1000, about 9.007e12: into
/// the year 2255 (2255 starts at 8.994e12, 2256 at 9.025e12).
fn wire_at(run: u64, generation: Generation) -> u64 {
    run * 1000 + generation.0
}
/// One failed build, as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub how: String,
    pub errors: Option<usize>,
    pub output: Arc<str>,
}

/// What the proxy knows beyond [`State`]: how the last failure ended.
pub(crate) fn failure(state: &State) -> Option<Failure> {
    match &state.build {
        BuildState::Failed {
            how,
            errors,
            output,
        } => Some(Failure {
            how: how.clone(),
            errors: *errors,
            output: output.clone(),
        }),
        BuildState::Passed | BuildState::Running => None,
    }
}

/// The first frame of every stream: the state now. `app_port`: where the app was to listen,
/// for the words of a trouble.
pub(crate) fn hello(state: &State, app_port: Option<u16>) -> Bytes {
    let build = match state.build {
        BuildState::Passed => "passed",
        BuildState::Running => "running",
        BuildState::Failed { .. } => "failed",
    };
    let mut data = json!({
        "generation": state.serving.map(|s| wire(s.generation)),
        "build": build,
    });
    if let (Some(failure), Value::Object(fields)) = (failure(state), &mut data) {
        fields.extend(failed(&failure.how, failure.errors, &failure.output));
    }
    // As the proxy answers a held request: a trouble counts only when no build runs or failed.
    if let (Some(trouble), BuildState::Passed, Value::Object(fields)) =
        (&state.trouble, &state.build, &mut data)
    {
        fields.insert("trouble".into(), troubled(trouble, app_port).into());
    }
    frame("hello", &data)
}

/// What a page is told of a failure, in a hello or a `failed` event alike.
fn failed(how: &str, errors: Option<usize>, output: &str) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("how".into(), how.into());
    fields.insert("errors".into(), errors.into());
    fields.insert("headline".into(), page::headline(how, errors).into());
    fields.insert("output".into(), page::clean(output).into());
    fields
}

/// What a page is told of a trouble, in a hello or a `trouble` event alike: the words of the
/// 503 page the proxy answers with, as an overlay shows a failed build's (`headline`,
/// `output`).
fn troubled(trouble: &Trouble, app_port: Option<u16>) -> serde_json::Map<String, Value> {
    let (headline, text) = page::trouble(trouble, app_port);
    let mut fields = serde_json::Map::new();
    fields.insert("headline".into(), headline.into());
    fields.insert("output".into(), text.into());
    fields
}

/// The frame a page gets for `event`, if it cares. `app_port` as for [`hello`].
pub(crate) fn of(event: &Lifecycle, app_port: Option<u16>) -> Option<Bytes> {
    if let Some(trouble) = Trouble::of(event) {
        return Some(frame("trouble", &troubled(&trouble, app_port).into()));
    }
    Some(match event {
        Lifecycle::BuildStarted { .. } => frame("building", &json!({})),
        Lifecycle::BuildFailed {
            how,
            errors,
            output,
            ..
        } => frame("failed", &failed(how, *errors, output).into()),
        Lifecycle::ServerReady { generation, .. } => {
            frame("ready", &json!({ "generation": wire(*generation) }))
        }
        _ => return None,
    })
}

/// Asked for by another tool (`POST /__reload/trigger`): every page reloads.
pub(crate) fn reload() -> Bytes {
    frame("reload", &json!({}))
}

fn frame(name: &str, data: &Value) -> Bytes {
    // serde_json never writes a raw newline inside a value, so the data is one line.
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// What a stream starts with, before its hello: the browser's reconnect delay, 1 s instead of
/// chromium's 3 s, so that a tab is back (and reloads, if another server answers) about a
/// second after reload itself is restarted. A block with no data dispatches no event.
const RECONNECT: &str = "retry: 1000\n\n";

/// The body of one `/__reload/events` response: the hello, then every frame sent on the hub.
/// A page that fell behind (a sleeping laptop) gets a fresh hello instead of what it missed.
pub(crate) struct Stream {
    first: Option<Bytes>,
    app_port: Option<u16>,
    state: tokio::sync::watch::Receiver<State>,
    /// The next receive: a broadcast receiver has no poll method, so it lives in a future that
    /// hands it back with what it received.
    next: Pin<Box<dyn Future<Output = Received> + Send>>,
}

type Received = (Result<Bytes, RecvError>, broadcast::Receiver<Bytes>);

fn receive(
    mut frames: broadcast::Receiver<Bytes>,
) -> Pin<Box<dyn Future<Output = Received> + Send>> {
    Box::pin(async move {
        let received = frames.recv().await;
        (received, frames)
    })
}

impl Stream {
    pub(crate) fn new(
        frames: broadcast::Receiver<Bytes>,
        state: tokio::sync::watch::Receiver<State>,
        app_port: Option<u16>,
    ) -> Stream {
        let mut first = RECONNECT.as_bytes().to_vec();
        first.extend_from_slice(&hello(&state.borrow(), app_port));
        Stream {
            first: Some(Bytes::from(first)),
            app_port,
            state,
            next: receive(frames),
        }
    }
}

impl Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let (received, frames) = std::task::ready!(self.next.as_mut().poll(cx));
        self.next = receive(frames);
        Poll::Ready(match received {
            Ok(frame) => Some(Ok(Frame::data(frame))),
            Err(RecvError::Lagged(_)) => {
                Some(Ok(Frame::data(hello(&self.state.borrow(), self.app_port))))
            }
            // The proxy is shutting down: the stream ends and the page reconnects later.
            Err(RecvError::Closed) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Serving;
    use std::time::Duration;

    fn data(frame: &Bytes) -> serde_json::Value {
        let text = std::str::from_utf8(frame).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_hello_says_who_serves_and_how_the_last_build_ended() {
        let state = State {
            serving: Some(Serving {
                pid: 9,
                generation: Generation(4),
                port: None,
            }),
            build: BuildState::Failed {
                how: "exit 1".into(),
                errors: Some(2),
                output: "\x1b[31merror\x1b[0m: <b>\n".into(),
            },
            trouble: None,
        };
        let hello = hello(&state, None);
        assert!(hello.starts_with(b"event: hello\ndata: {"));
        assert!(hello.ends_with(b"\n\n"));
        let value = data(&hello);
        assert_eq!(value["generation"], wire(Generation(4)));
        assert_eq!(value["build"], "failed");
        assert_eq!(value["how"], "exit 1");
        assert_eq!(
            value["errors"], 2,
            "a page loaded after the failure counts its errors"
        );
        assert_eq!(value["headline"], "Build failed: 2 errors (exit status 1)");
        assert_eq!(value["output"], "\x1b[31merror\x1b[0m: <b>\n");
        let idle = super::hello(&State::default(), None);
        assert_eq!(data(&idle)["generation"], serde_json::Value::Null);
        assert_eq!(data(&idle)["build"], "passed");
    }

    #[test]
    fn a_trouble_reads_the_same_in_a_hello_and_in_its_event_and_a_build_hides_it() {
        let exited = Lifecycle::ServerFailed(crate::lifecycle::ServerFailure {
            pid: Some(7),
            generation: Generation(2),
            why: crate::lifecycle::Failure::Exited {
                ended: crate::lifecycle::Ended::Code(3),
                port_in_use: None,
            },
            hint: None,
            serving: None,
            then: crate::lifecycle::Afterwards::WaitForChanges { key: false },
            port: None,
        });
        let event = data(&of(&exited, Some(8080)).unwrap());
        let mut state = State {
            trouble: Trouble::of(&exited),
            ..State::default()
        };
        let hello = data(&hello(&state, Some(8080)));
        assert_eq!(hello["trouble"], event);
        assert_eq!(
            event["output"].as_str().map(|text| text.lines().next()),
            Some(Some(
                "Your app exited with status 3 before it listened on :8080."
            ))
        );
        state.build = BuildState::Running;
        assert_eq!(
            data(&super::hello(&state, Some(8080)))["trouble"],
            serde_json::Value::Null,
            "a build under way is what a page waits for"
        );
    }

    #[test]
    fn a_failure_reads_the_same_in_a_hello_and_in_a_failed_event() {
        // Every control character, C0, DEL and C1, and escapes of each kind.
        let mut output: String = ('\0'..='\u{a0}').collect();
        output.push_str("\x1b[1;31merror\x1b[0m\x1b]8;;https://x\x1b\\link\x1b]8;;\x07\x1b[2K\r\n");
        for errors in [None, Some(1), Some(3)] {
            let hello = hello(
                &State {
                    serving: None,
                    build: BuildState::Failed {
                        how: "exit 1".into(),
                        errors,
                        output: output.as_str().into(),
                    },
                    trouble: None,
                },
                None,
            );
            let failed = of(
                &Lifecycle::BuildFailed {
                    how: "exit 1".into(),
                    errors,
                    elapsed: Duration::ZERO,
                    then: crate::lifecycle::AfterFailure::WaitForChanges,
                    output: output.as_str().into(),
                },
                None,
            )
            .unwrap();
            let (hello, failed) = (data(&hello), data(&failed));
            for key in ["how", "errors", "headline", "output"] {
                assert_eq!(hello[key], failed[key], "{key} with {errors:?} errors");
            }
            assert_eq!(failed["errors"], serde_json::json!(errors));
            assert_eq!(failed["headline"], page::headline("exit 1", errors));
            assert_eq!(
                failed["output"],
                page::clean(&output),
                "cleaned by the page's rule"
            );
        }
    }

    #[test]
    fn generations_on_the_wire_are_this_runs_own_and_keep_their_order() {
        let (one, two) = (wire(Generation(1)), wire(Generation(2)));
        assert_eq!(two, one + 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let run = u128::from(one / 1000);
        assert!(
            run <= now && run + 60_000 > now,
            "a run's numbers start at its start in milliseconds ({run}), now {now}"
        );
        assert_eq!(one % 1000, 1);
    }

    #[test]
    fn runs_a_millisecond_apart_get_numbers_of_their_own_in_order() {
        // The same second, a millisecond apart: a quick restart of reload.
        let first = 1_796_138_180_000;
        let next = first + 1;
        assert_ne!(
            wire_at(first, Generation(1)),
            wire_at(next, Generation(1)),
            "a tab of the first run reloads when the next one serves"
        );
        assert!(wire_at(first, Generation(1)) < wire_at(next, Generation(1)));
        // A run that made n servers lasted more than n milliseconds: its last number is
        // below the first of a run started after it.
        for (n, lasted) in [(1, 2), (999, 1000), (5_000, 5_001), (1_000_000, 1_000_001)] {
            assert!(
                wire_at(first, Generation(n)) < wire_at(first + lasted, Generation(1)),
                "{n} servers in {lasted} ms"
            );
        }
    }

    #[test]
    fn generations_on_the_wire_stay_exact_in_a_javascript_number_into_2255() {
        const EXACT: u64 = 1 << 53;
        // The first millisecond of 2255 and of 2256, UTC.
        let (y2255, y2256) = (8_993_721_600_000, 9_025_257_600_000);
        let generous = Generation(1_000_000);
        assert!(wire_at(y2255, generous) < EXACT);
        assert!(wire_at(y2256, Generation(1)) > EXACT, "the bound is tight");
        // f64, as a JavaScript number holds it, gives back the same integer.
        let late = wire_at(y2255, generous);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let round_trip = late as f64 as u64;
        assert_eq!(round_trip, late);
    }

    #[test]
    fn only_what_a_page_acts_on_becomes_a_frame() {
        let ready = of(
            &Lifecycle::ServerReady {
                pid: 1,
                generation: Generation(2),
                old: None,
                swap: Duration::ZERO,
                since_change: None,
                port: None,
            },
            None,
        )
        .unwrap();
        assert!(ready.starts_with(b"event: ready\n"));
        assert_eq!(data(&ready)["generation"], wire(Generation(2)));
        let failed = of(
            &Lifecycle::BuildFailed {
                how: "exit 2".into(),
                errors: None,
                elapsed: Duration::ZERO,
                then: crate::lifecycle::AfterFailure::WaitForChanges,
                output: "line one\nline two".into(),
            },
            None,
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&failed).unwrap().matches('\n').count(),
            3,
            "one event line, one data line, one blank line: {failed:?}"
        );
        assert_eq!(data(&failed)["output"], "line one\nline two");
        assert!(
            of(
                &Lifecycle::ServerStarting {
                    pid: 1,
                    generation: Generation(2)
                },
                None
            )
            .is_none(),
            "a page never hears of a spawn: it reloads on ready only"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stream_starts_with_hello_and_replaces_what_it_missed_with_a_new_one() {
        use http_body_util::BodyExt;
        let (hub, frames) = broadcast::channel(2);
        let (_state_tx, state) = tokio::sync::watch::channel(State::default());
        let mut stream = Stream::new(frames, state, None);
        let first = stream.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(
            first.starts_with(b"retry: 1000\n\nevent: hello"),
            "the reconnect delay, then the hello: {first:?}"
        );
        hub.send(reload()).unwrap();
        let next = stream.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(next.starts_with(b"event: reload"));
        for _ in 0..5 {
            hub.send(reload()).unwrap();
        }
        let lagged = stream.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(lagged.starts_with(b"event: hello"), "{lagged:?}");
        drop(hub);
        let mut rest = 0;
        while let Some(frame) = stream.frame().await {
            frame.unwrap();
            rest += 1;
        }
        assert!(rest <= 2, "the stream ends once the hub is gone");
    }
}
