//! The proxy with a real browser (headless chromium, tests/support/browser.rs): a page follows a
//! save by itself, a failed build shows over the page and goes away with the fix, and every tab
//! follows.

use std::time::Duration;

use super::{proxied, start};
use crate::support::browser::{BROWSER_DEADLINE, Browser, Tab};

/// Far above what a save takes to reach the page, for a loaded 2-core machine.
const FOLLOW: Duration = Duration::from_secs(60);

fn heading(tab: &Tab<'_>) -> String {
    tab.eval("document.querySelector('h1')?.textContent ?? ''")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The text of reload's elements in the page (the build-failure overlay, the building badge),
/// "" when none shows.
const OVERLAY: &str = "[...document.querySelectorAll('reload-ui')]\
    .map((ui) => (ui.shadowRoot ? ui.shadowRoot.textContent : '')).join('')";

#[test]
fn a_page_follows_a_save_without_the_test_reloading_it() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    assert_eq!(heading(&tab), "v1");
    // The client is connected once it has heard the state.
    tab.wait_for(
        "document.querySelector('script[data-generation]') !== null",
        BROWSER_DEADLINE,
    );
    let mark = tab.mark();
    project.write("src/version.txt", "v2\n");
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
    assert_eq!(heading(&tab), "v2");
}

#[test]
fn the_overlay_shows_a_compile_error_and_goes_away_after_the_fix() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tab = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    let mark = tab.mark();
    project.write("src/version.txt", "v2-FAIL\n");
    tab.wait_for(
        &format!("{OVERLAY}.includes('v2-FAIL does not compile')"),
        FOLLOW,
    );
    assert!(
        !tab.reloaded_since(&mark),
        "a failed build does not reload the page"
    );
    assert_eq!(heading(&tab), "v1", "the old server keeps serving the page");
    // A page loaded during the failure shows it too.
    let late = browser.open(&format!("http://127.0.0.1:{}/", proxied.proxy));
    late.wait_for(
        &format!("{OVERLAY}.includes('v2-FAIL does not compile')"),
        FOLLOW,
    );
    let late_mark = late.mark();

    project.write("src/version.txt", "v3\n");
    tab.wait_reloaded(&mark, FOLLOW);
    tab.wait_for("document.querySelector('h1')?.textContent === 'v3'", FOLLOW);
    tab.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
    late.wait_reloaded(&late_mark, FOLLOW);
    late.wait_for("document.querySelector('h1')?.textContent === 'v3'", FOLLOW);
    // Nothing of reload's shows once the fix is served: no overlay, and no badge left over from
    // the build (a page that connects after the ready hears the build passed).
    late.wait_for(&format!("{OVERLAY} === ''"), FOLLOW);
    assert_eq!(late.eval(OVERLAY), "");
    assert_eq!(tab.eval(OVERLAY), "");
}

#[test]
fn eight_tabs_all_follow_a_save() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let url = format!("http://127.0.0.1:{}/", proxied.proxy);
    let tabs: Vec<_> = (0..8).map(|_| browser.open(&url)).collect();
    let marks: Vec<_> = tabs.iter().map(Tab::mark).collect();
    // One event stream for all tabs (a SharedWorker): eight of their own, with HTTP/1.1's six
    // connections per host, would leave none for the pages.
    let connections = established_to(proxied.proxy);
    assert!(
        connections <= 7,
        "{connections} connections to the proxy for eight tabs"
    );
    project.write("src/version.txt", "v2\n");
    for (tab, mark) in tabs.iter().zip(&marks) {
        tab.wait_reloaded(mark, FOLLOW);
        tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
    }
}

/// Connections to `port` on this machine now, seen from the server's side (/proc/net/tcp).
fn established_to(port: u16) -> usize {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|row| {
                    let fields: Vec<&str> = row.split_whitespace().collect();
                    fields.get(1).is_some_and(|a| a.ends_with(&local))
                        && fields.get(3) == Some(&"01")
                })
                .count()
        })
        .sum()
}
