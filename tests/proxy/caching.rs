//! No stale page: an answer that says nothing of its freshness reaches the browser with
//! `Cache-Control: no-cache`, so that a reload asks again for every stylesheet and gets a 304
//! when nothing changed; an app's own caching is left as it is.

use std::time::{Duration, Instant, SystemTime};

use super::{Proxied, proxied, request, start};
use crate::support::Project;
use crate::support::browser::{BROWSER_DEADLINE, Browser};

/// Far above what a reload takes to reach the page, for a loaded 2-core machine.
const FOLLOW: Duration = Duration::from_secs(60);

/// The proxy tests' project with a stylesheet that `app.py` serves from `static/` as Gin's
/// `r.Static` does: Last-Modified, no Cache-Control. It was last changed a day ago, so that a
/// browser would take it as fresh for a tenth of that (RFC 9111 4.2.2) were it not told
/// otherwise.
fn styled(color: &str) -> Project {
    let project = proxied("v1").file("static/style.css", &style(color));
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(project.path("static/style.css"))
        .and_then(|file| file.set_modified(day_ago))
        .expect("date the stylesheet a day back");
    project
}

/// The stylesheet, the same size for every colour `rgb(N, N, N)` of one digit each.
fn style(color: &str) -> String {
    format!("h1 {{ color: {color}; }}\n")
}

#[test]
fn an_answer_without_cache_control_gets_no_cache_and_an_apps_own_is_kept() {
    let project = styled("rgb(1, 2, 3)");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let (proxy, app) = (proxied.proxy, proxied.app);
    let cache_control = |port: u16, path: &str, headers: &[&str]| {
        let answer = request(port, "GET", path, headers, b"")
            .unwrap_or_else(|err| panic!("GET {path} on :{port}: {err}"));
        let values: Vec<String> = answer
            .head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("cache-control"))
            .map(|(_, value)| value.trim().to_owned())
            .collect();
        (answer.status, values.join(" | "))
    };
    let since = "If-Modified-Since: Sun, 06 Nov 2094 08:49:37 GMT";
    for (path, headers, status, own, through) in [
        ("/", &[][..], 200, "", "no-cache"),
        ("/static/style.css", &[][..], 200, "", "no-cache"),
        ("/static/style.css", &[since][..], 304, "", "no-cache"),
        ("/not-modified", &[][..], 304, "", "no-cache"),
        ("/no-such-page", &[][..], 404, "", "no-cache"),
        (
            "/cached",
            &[][..],
            200,
            "max-age=3600, immutable",
            "max-age=3600, immutable",
        ),
        ("/no-store", &[][..], 200, "no-store", "no-store"),
    ] {
        assert_eq!(
            cache_control(app, path, headers),
            (status, own.to_owned()),
            "the app itself, GET {path} {headers:?}"
        );
        assert_eq!(
            cache_control(proxy, path, headers),
            (status, through.to_owned()),
            "through the proxy, GET {path} {headers:?}{}",
            proxied.session.context()
        );
    }
}

/// The colour the page's `<h1>` is drawn in.
const COLOR: &str = "getComputedStyle(document.querySelector('h1')).color";

#[test]
fn a_stylesheet_changed_on_disk_shows_after_the_next_live_reload() {
    let project = styled("rgb(1, 2, 3)");
    let proxied: Proxied<'_> = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/styled", proxied.proxy));
    tab.wait_for(&format!("{COLOR} === 'rgb(1, 2, 3)'"), BROWSER_DEADLINE);
    // A trigger reloads the pages whose stream is connected: one sent before the page's shared
    // worker has connected (slow under load) reaches no page, so it is sent again until the
    // page reloads. Either way the page reloads through the trigger, never by itself.
    let trigger = |mark: &_| {
        let deadline = Instant::now() + FOLLOW;
        while !tab.reloaded_since(mark) {
            assert!(Instant::now() < deadline, "no reload within {FOLLOW:?}");
            let answer = request(proxied.proxy, "POST", "/__reload/trigger", &[], b"")
                .expect("the trigger answers");
            assert_eq!(answer.status, 204, "{answer:?}");
            let sent = Instant::now();
            while !tab.reloaded_since(mark) && sent.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };

    // A reload with nothing changed asks again, and the app says 304.
    let mark = tab.mark();
    trigger(&mark);
    tab.wait_reloaded(&mark, FOLLOW);
    proxied
        .session
        .wait_for("the reloaded page to revalidate its stylesheet", || {
            project
                .scratch_lines("static.log")
                .contains(&"style.css 304".to_owned())
        });
    assert_eq!(tab.eval(COLOR), "rgb(1, 2, 3)");

    // The stylesheet changes (same size), the page reloads: it is drawn in the new colour.
    project.write("static/style.css", &style("rgb(4, 5, 6)"));
    let mark = tab.mark();
    trigger(&mark);
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for(&format!("{COLOR} === 'rgb(4, 5, 6)'"), FOLLOW);
}
