//! Pages whose markup a byte search reads wrong, through the real binary and in chromium: the
//! script goes where an HTML tokenizer says (never into a script's string or a comment), once;
//! what is not HTML passes byte for byte; a page whose CSP blocks the script is named once.

use super::{SCRIPT, get, proxied, request, start, wire};
use crate::support::browser::{BROWSER_DEADLINE, Browser};
use crate::support::needs::{Tool, require};

/// Far above what a save takes to reach the page, for a loaded 2-core machine.
const FOLLOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The pages of app.py with `</body>` or `<body>` where a byte search finds it: in a script's
/// string with the page's own `</body>` omitted, in a comment after the page, and in a script
/// in the head of a page that streams.
const PAGES: [&str; 3] = ["/script-body", "/trailing-comment", "/stream-script"];

#[test]
fn the_script_goes_where_a_tokenizer_puts_it_and_json_as_html_passes_byte_for_byte() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let proxy = proxied.proxy;

    let html = get(proxy, "/script-body").text();
    assert_eq!(html.matches(SCRIPT).count(), 1, "{html}");
    let tag = format!("{SCRIPT}{}\" async></script>", wire(&html, 1));
    assert!(
        html.contains(r#"<script>var end = "</body>"; window.ok = true;</script>"#),
        "the page's script is as it was: {html}"
    );
    assert!(
        html.ends_with(&format!("<p>after</p>\n{tag}")),
        "the page omits </body>: the tag goes at its end: {html}"
    );

    let html = get(proxy, "/trailing-comment").text();
    assert_eq!(html.matches(SCRIPT).count(), 1, "{html}");
    assert!(
        html.ends_with(&format!(
            "<script>window.ok = true;</script>{tag}</body></html>\n\
             <!-- the old layout ended here: </body></html> -->\n"
        )),
        "before the real </body>, not in the comment: {html}"
    );

    let html = get(proxy, "/stream-script").text();
    assert_eq!(html.matches(SCRIPT).count(), 1, "{html}");
    assert!(
        html.contains(r#"<script>var start = "<body>"; window.ok = true;</script>"#),
        "the head's script is as it was: {html}"
    );
    assert!(
        html.contains(&format!("</head><body>{tag}<h1>v1</h1>")),
        "right after the real <body>, cut between chunks: {html}"
    );

    let through = request(proxy, "GET", "/json-as-html", &["Accept: text/html"], b"").unwrap();
    let direct = request(proxied.app, "GET", "/json-as-html", &[], b"").unwrap();
    assert_eq!(through.status, 200, "{through:?}");
    assert_eq!(
        through.body, direct.body,
        "JSON served as text/html, byte for byte"
    );
    assert_eq!(
        through.header("content-length"),
        Some(direct.body.len().to_string().as_str())
    );
}

#[test]
fn a_page_whose_csp_blocks_the_script_is_named_once_with_what_to_change() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let proxy = proxied.proxy;
    let direct = request(proxied.app, "GET", "/csp-none", &[], b"").unwrap();
    for path in ["/csp-none", "/csp-none", "/csp-none?again=1", "/csp-none"] {
        let page = get(proxy, path);
        assert_eq!(page.status, 200, "{page:?}");
        assert_eq!(
            page.text(),
            direct.text(),
            "{path}: the script would be blocked, so the page passes as it is"
        );
    }
    let line = "proxy: /csp-none has a Content-Security-Policy (script-src 'none') that blocks \
                reload's script, so this page gets no live reload: add 'self' or a nonce to \
                script-src";
    proxied.session.wait_for_stderr(line);
    // Another path is named too; by then every line for the first path has been written.
    get(proxy, "/csp-none/other");
    proxied
        .session
        .wait_for_stderr("proxy: /csp-none/other has a Content-Security-Policy");
    let stderr = proxied.session.stderr();
    assert_eq!(
        stderr.matches("proxy: /csp-none has").count(),
        1,
        "once per path{}",
        proxied.session.context()
    );
}

#[test]
fn pages_with_body_tags_in_scripts_and_comments_follow_a_save_and_keep_working() {
    require(Tool::Chromium);
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let browser = Browser::launch();
    let tabs: Vec<_> = PAGES
        .iter()
        .map(|path| browser.open(&format!("http://127.0.0.1:{}{path}", proxied.proxy)))
        .collect();
    let working =
        "window.ok === true && document.querySelector('script[data-generation]') !== null";
    for (tab, path) in tabs.iter().zip(PAGES) {
        tab.wait_for(working, BROWSER_DEADLINE);
        assert!(
            !tab.console().contains("SyntaxError"),
            "{path}: {}",
            tab.console()
        );
    }
    let marks: Vec<_> = tabs.iter().map(|tab| tab.mark()).collect();
    project.write("src/version.txt", "v2\n");
    for ((tab, mark), path) in tabs.iter().zip(&marks).zip(PAGES) {
        tab.wait_reloaded(mark, FOLLOW);
        tab.wait_for("document.querySelector('h1')?.textContent === 'v2'", FOLLOW);
        tab.wait_for(working, BROWSER_DEADLINE);
        assert!(
            !tab.console().contains("SyntaxError"),
            "{path}: {}",
            tab.console()
        );
    }
}
