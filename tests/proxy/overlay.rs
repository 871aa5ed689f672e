//! The overlay in a real browser (headless chromium) says what the 503 page says: the same
//! headline, the same text with the same control characters gone, and a line far wider than
//! the window wraps instead of scrolling sideways.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Proxied, proxied, start};
use crate::support::Project;
use crate::support::browser::{BROWSER_DEADLINE, Browser, Tab};
use crate::support::needs::{Tool, require};

/// Far above what a build and a page load take, for a loaded 2-core machine.
const FOLLOW: Duration = Duration::from_secs(60);

/// The length of the line without a space that the failing build prints.
const LONG: usize = 30_000;

/// `sh build.sh`: a version with LONG in it fails with one error, a 30,000-character line,
/// and control characters a terminal would act on: C1 (NEL, CSI, DCS as UTF-8), C0 (BEL,
/// backspace), DEL, an OSC title and an erase-line sequence; any other version builds.
const BUILD: &str = r#"v=$(cat src/version.txt)
case "$v" in
*LONG*)
    printf '\033[1m\033[31merror\033[0m: one line too long to read, then control characters\n' >&2
    head -c 30000 /dev/zero | tr '\0' x >&2; echo >&2
    printf 'C1 \302\205\302\23331m and \302\220 DCS; C0 \007\010 and DEL \177;\033]0;title\007\033[2K end\n' >&2
    exit 1 ;;
esac
mkdir -p build
echo "$v" > build/version.txt
"#;

/// What of the build's output must not reach a page: C1, C0 but newline, DEL, ESC.
const DROPPED: &[char] = &[
    '\u{85}', '\u{9b}', '\u{90}', '\u{7}', '\u{8}', '\u{7f}', '\u{1b}',
];

/// The proxy tests' project, built by this file's BUILD.
fn project(version: &str) -> Project {
    proxied(version).file("build.sh", BUILD)
}

/// The headline and the output's text as a page shows them, and whether the box holding the
/// output scrolls sideways.
#[derive(Debug)]
struct Shown {
    headline: String,
    text: String,
    /// The box's scrollWidth and clientWidth.
    widths: (u64, u64),
}

impl Shown {
    fn read(value: &Value) -> Shown {
        let field = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        Shown {
            headline: field("headline"),
            text: field("text"),
            widths: (
                value["scroll"].as_u64().unwrap_or_default(),
                value["client"].as_u64().unwrap_or_default(),
            ),
        }
    }
}

/// The 503 page: its heading and its `<pre>`.
const PAGE: &str = "(() => { const pre = document.querySelector('pre'); \
    return document.title === 'Build failed' && pre && { \
    headline: document.querySelector('h1').textContent, text: pre.textContent, \
    scroll: pre.scrollWidth, client: pre.clientWidth }; })()";

/// The overlay, in its shadow root: the headline, the `<pre>`, and the box around them.
const OVERLAY: &str = "(() => { const root = [...document.querySelectorAll('reload-ui')] \
    .map((ui) => ui.shadowRoot).find((root) => root && root.querySelector('pre')); \
    if (!root) return null; const box = root.firstElementChild; \
    return { headline: root.querySelector('b').textContent, \
    text: root.querySelector('pre').textContent, \
    scroll: box.scrollWidth, client: box.clientWidth }; })()";

/// The first event of a new `/__reload/events` stream, the hello, up to its blank line.
fn hello(port: u16) -> String {
    let Ok(mut stream) = super::connect(port) else {
        return String::new();
    };
    if stream
        .write_all(b"GET /__reload/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return String::new();
    }
    let (mut seen, mut buffer) = (Vec::new(), [0; 16 * 1024]);
    let began = Instant::now();
    while began.elapsed() < BROWSER_DEADLINE {
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find("event: hello\n")
            && text[at..].contains("\n\n")
        {
            return text[at..].to_owned();
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    String::new()
}

fn wait_shown(tab: &Tab<'_>, what: &str) -> Shown {
    Shown::read(&tab.wait_for(what, FOLLOW))
}

#[test]
fn the_overlay_of_a_page_loaded_after_a_failure_says_what_the_503_page_says() {
    require(Tool::Chromium);
    let project = project("v1-LONG");
    let proxied: Proxied<'_> = start(&project, &[]);
    proxied.session.wait_for_stderr("build failed");
    let url = format!("http://127.0.0.1:{}/", proxied.proxy);

    // No server yet: the page is reload's 503.
    let page = {
        let browser = Browser::launch();
        let tab = browser.open(&url);
        wait_shown(&tab, PAGE)
    };
    assert_eq!(
        page.headline, "Build failed: 1 error (exit status 1)",
        "{page:?}"
    );
    assert!(
        page.text.contains(&"x".repeat(LONG)),
        "the long line is kept"
    );
    assert!(
        page.text.contains("31m and  DCS; C0  and DEL ; end"),
        "{:?}",
        page.text.lines().last()
    );
    assert!(!page.text.contains(DROPPED), "{page:?}");

    // A server, then the same failure: it keeps serving, and a page loaded now (in a browser
    // of its own, so that its state comes from the proxy's hello and not from another tab's
    // worker) shows the failure over the app.
    project.write("src/version.txt", "v2\n");
    proxied.wait_serving("v2");
    project.write("src/version.txt", "v3-LONG\n");
    proxied
        .session
        .wait_until("a hello that says the build failed", || {
            hello(proxied.proxy)
                .contains("\"build\":\"failed\"")
                .then_some(())
        });
    let browser = Browser::launch();
    let tab = browser.open(&url);
    let overlay = wait_shown(&tab, OVERLAY);
    assert_eq!(
        tab.eval("document.querySelector('h1')?.textContent"),
        "v2",
        "the old server serves the page"
    );

    // Every difference at once, so that one run shows all that is wrong.
    let mut wrong = Vec::new();
    if overlay.headline != page.headline {
        wrong.push(format!(
            "the overlay says {:?}, the 503 page {:?}",
            overlay.headline, page.headline
        ));
    }
    let (scroll, client) = overlay.widths;
    if scroll > client {
        wrong.push(format!(
            "the overlay scrolls sideways: scrollWidth {scroll} > clientWidth {client}"
        ));
    }
    let kept: Vec<char> = DROPPED
        .iter()
        .copied()
        .filter(|&c| overlay.text.contains(c))
        .collect();
    if !kept.is_empty() {
        wrong.push(format!("the overlay keeps {kept:?}"));
    }
    if overlay.text != page.text {
        let last = |text: &str| text.lines().last().unwrap_or_default().to_owned();
        wrong.push(format!(
            "the overlay's text ({} characters, last line {:?}) is not the 503 page's ({}, {:?})",
            overlay.text.chars().count(),
            last(&overlay.text),
            page.text.chars().count(),
            last(&page.text)
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
