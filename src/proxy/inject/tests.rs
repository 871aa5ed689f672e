use std::io::Write;

use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_REPORT_ONLY,
    CONTENT_TYPE, ETAG, HeaderName, HeaderValue,
};
use http::{HeaderMap, Method, StatusCode};

use super::*;

const TAG: &str = r#"<script src="/__reload/client.js" data-generation="7" async></script>"#;

#[track_caller]
fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The decision for a GET with no special request headers and a 200.
fn decide_response(response: &[(&str, &str)]) -> Decision {
    decide(
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::OK,
        &headers(response),
    )
}

fn html_identity() -> Decision {
    Decision::Inject {
        encoding: Encoding::Identity,
        nonce: None,
    }
}

fn nonce_of(response: &[(&str, &str)]) -> Option<String> {
    let mut pairs = vec![("content-type", "text/html")];
    pairs.extend_from_slice(response);
    match decide_response(&pairs) {
        Decision::Inject { nonce, .. } => nonce,
        other => panic!("an HTML page was not injected: {other:?}"),
    }
}

// ---- decide ----

#[test]
fn an_html_page_is_injected() {
    assert_eq!(
        decide_response(&[("content-type", "text/html")]),
        html_identity()
    );
}

#[test]
fn content_type_parameters_case_and_leading_space_are_allowed() {
    for content_type in [
        "text/html; charset=utf-8",
        "text/html;charset=UTF-8",
        "TEXT/HTML",
        "Text/Html; charset=utf-8",
        " text/html",
    ] {
        assert_eq!(
            decide_response(&[("content-type", content_type)]),
            html_identity(),
            "{content_type}"
        );
    }
}

#[test]
fn other_content_types_pass() {
    for content_type in [
        "application/json",
        "text/plain",
        "text/event-stream",
        "application/xhtml+xml",
        "text/htmlx",
        "text/html-fragment",
        "",
    ] {
        assert_eq!(
            decide_response(&[("content-type", content_type)]),
            Decision::Pass,
            "{content_type:?}"
        );
    }
    assert_eq!(decide_response(&[]), Decision::Pass, "no Content-Type");
}

#[test]
fn head_passes() {
    let response = headers(&[("content-type", "text/html")]);
    assert_eq!(
        decide(&Method::HEAD, &HeaderMap::new(), StatusCode::OK, &response),
        Decision::Pass
    );
    for method in [Method::POST, Method::PUT, Method::OPTIONS] {
        assert_eq!(
            decide(&method, &HeaderMap::new(), StatusCode::OK, &response),
            html_identity(),
            "{method}"
        );
    }
}

#[test]
fn bodiless_and_partial_statuses_pass() {
    let response = headers(&[("content-type", "text/html")]);
    for status in [100, 101, 103, 204, 206, 304] {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(
            decide(&Method::GET, &HeaderMap::new(), status, &response),
            Decision::Pass,
            "{status}"
        );
    }
    // Error pages are pages too: the browser must follow the next save from them.
    for status in [200, 201, 404, 500, 503] {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(
            decide(&Method::GET, &HeaderMap::new(), status, &response),
            html_identity(),
            "{status}"
        );
    }
}

#[test]
fn htmx_and_datastar_partials_pass() {
    let response = headers(&[("content-type", "text/html")]);
    for request in [
        headers(&[("HX-Request", "true")]),
        headers(&[("hx-request", "true"), ("hx-target", "main")]),
        headers(&[("Datastar-Request", "true")]),
    ] {
        assert_eq!(
            decide(&Method::GET, &request, StatusCode::OK, &response),
            Decision::Pass,
            "{request:?}"
        );
    }
    let unrelated = headers(&[("hx-boosted-not", "true"), ("accept", "text/html")]);
    assert_eq!(
        decide(&Method::GET, &unrelated, StatusCode::OK, &response),
        html_identity()
    );
}

#[test]
fn known_encodings_are_injected_in_the_same_encoding() {
    for (coding, encoding) in [
        ("identity", Encoding::Identity),
        ("gzip", Encoding::Gzip),
        ("x-gzip", Encoding::Gzip),
        ("GZIP", Encoding::Gzip),
        ("deflate", Encoding::Deflate),
        ("br", Encoding::Brotli),
        (" br ", Encoding::Brotli),
        ("identity, gzip", Encoding::Gzip),
    ] {
        assert_eq!(
            decide_response(&[("content-type", "text/html"), ("content-encoding", coding)]),
            Decision::Inject {
                encoding,
                nonce: None
            },
            "{coding}"
        );
    }
}

#[track_caller]
fn assert_unsupported(response: &[(&str, &str)], mentions: &str) {
    match decide_response(response) {
        Decision::Unsupported(why) => assert!(why.contains(mentions), "{why}"),
        other => panic!("{response:?} gave {other:?}"),
    }
}

#[test]
fn an_unknown_encoding_is_unsupported() {
    assert_unsupported(
        &[("content-type", "text/html"), ("content-encoding", "zstd")],
        "`zstd`",
    );
    assert_unsupported(
        &[
            ("content-type", "text/html"),
            ("content-encoding", "compress"),
        ],
        "`compress`",
    );
}

#[test]
fn stacked_encodings_are_unsupported() {
    assert_unsupported(
        &[
            ("content-type", "text/html"),
            ("content-encoding", "gzip, br"),
        ],
        "gzip, br",
    );
    // The same stack, written as two header lines.
    assert_unsupported(
        &[
            ("content-type", "text/html"),
            ("content-encoding", "gzip"),
            ("content-encoding", "gzip"),
        ],
        "stacked",
    );
}

#[test]
fn a_non_html_body_in_an_unknown_encoding_passes() {
    assert_eq!(
        decide_response(&[
            ("content-type", "application/json"),
            ("content-encoding", "zstd")
        ]),
        Decision::Pass
    );
}

// ---- the CSP nonce ----

#[test]
fn the_nonce_comes_from_script_src() {
    let csp = "default-src 'self'; script-src 'self' 'nonce-abc123+/=' https://cdn.example";
    assert_eq!(
        nonce_of(&[("content-security-policy", csp)]).as_deref(),
        Some("abc123+/=")
    );
}

#[test]
fn the_nonce_comes_from_script_src_elem() {
    let csp = "script-src-elem 'nonce-elem'";
    assert_eq!(
        nonce_of(&[("content-security-policy", csp)]).as_deref(),
        Some("elem")
    );
}

#[test]
fn the_nonce_comes_from_default_src() {
    let csp = "img-src *; default-src 'nonce-dflt' 'self'";
    assert_eq!(
        nonce_of(&[("content-security-policy", csp)]).as_deref(),
        Some("dflt")
    );
}

#[test]
fn script_src_elem_wins_over_script_src_which_wins_over_default_src() {
    let all = "default-src 'nonce-d'; script-src 'nonce-s'; script-src-elem 'nonce-e'";
    assert_eq!(
        nonce_of(&[("content-security-policy", all)]).as_deref(),
        Some("e")
    );
    let two = "default-src 'nonce-d'; script-src 'nonce-s'";
    assert_eq!(
        nonce_of(&[("content-security-policy", two)]).as_deref(),
        Some("s")
    );
}

#[test]
fn the_governing_directive_decides_even_without_a_nonce() {
    // The browser checks `<script src>` against script-src-elem alone when it is there.
    let csp = "script-src 'nonce-s'; script-src-elem 'self'";
    assert_eq!(nonce_of(&[("content-security-policy", csp)]), None);
}

#[test]
fn directive_names_and_the_nonce_keyword_are_case_insensitive() {
    let csp = "Script-Src 'NONCE-Mixed'";
    assert_eq!(
        nonce_of(&[("content-security-policy", csp)]).as_deref(),
        Some("Mixed")
    );
}

#[test]
fn the_first_csp_header_with_a_nonce_gives_it() {
    let response = [
        ("content-security-policy", "img-src 'self'"),
        ("content-security-policy", "script-src 'nonce-second'"),
        ("content-security-policy", "script-src 'nonce-third'"),
    ];
    assert_eq!(nonce_of(&response).as_deref(), Some("second"));
    // Two policies in one header, separated by a comma.
    let csp = "img-src 'self', script-src 'nonce-joined'";
    assert_eq!(
        nonce_of(&[("content-security-policy", csp)]).as_deref(),
        Some("joined")
    );
}

#[test]
fn report_only_policies_give_no_nonce() {
    let response = [(
        "content-security-policy-report-only",
        "script-src 'nonce-report'",
    )];
    assert_eq!(nonce_of(&response), None);
    let response = [
        (
            "content-security-policy-report-only",
            "script-src 'nonce-report'",
        ),
        ("content-security-policy", "script-src 'nonce-enforced'"),
    ];
    assert_eq!(nonce_of(&response).as_deref(), Some("enforced"));
}

#[test]
fn no_nonce_without_one() {
    assert_eq!(nonce_of(&[]), None);
    for csp in [
        "script-src 'self'",
        "script-src nonce-unquoted",
        "style-src 'nonce-style'",
        "",
    ] {
        assert_eq!(nonce_of(&[("content-security-policy", csp)]), None, "{csp}");
    }
}

// ---- a CSP that blocks the script ----

fn blocked_by(response: &[(&str, &str)]) -> Option<Blocked> {
    let mut pairs = vec![("content-type", "text/html")];
    pairs.extend_from_slice(response);
    match decide_response(&pairs) {
        Decision::Blocked(blocked) => Some(blocked),
        Decision::Inject { .. } => None,
        other => panic!("an HTML page was passed: {other:?}"),
    }
}

#[test]
fn a_csp_that_allows_no_script_of_the_page_blocks_it() {
    for (csp, directive, name) in [
        ("script-src 'none'", "script-src 'none'", "script-src"),
        ("default-src 'none'", "default-src 'none'", "default-src"),
        (
            "default-src 'self'; script-src 'unsafe-inline' 'sha256-abc=' 'report-sample'",
            "script-src 'unsafe-inline' 'sha256-abc=' 'report-sample'",
            "script-src",
        ),
        (
            "script-src 'self'; script-src-elem 'none'",
            "script-src-elem 'none'",
            "script-src-elem",
        ),
        ("Script-Src", "Script-Src", "script-src"),
        (
            "script-src data: blob: 'nonce-'",
            "script-src data: blob: 'nonce-'",
            "script-src",
        ),
        (
            "img-src *, script-src 'none'",
            "script-src 'none'",
            "script-src",
        ),
    ] {
        let blocked = blocked_by(&[("content-security-policy", csp)])
            .unwrap_or_else(|| panic!("{csp} does not block"));
        assert_eq!(
            blocked,
            Blocked {
                directive: directive.to_owned(),
                name,
                nonce_only: false
            },
            "{csp}"
        );
    }
    // A second header blocks as much as the first.
    let blocked = blocked_by(&[
        ("content-security-policy", "script-src 'self'"),
        ("content-security-policy", "default-src 'none'"),
    ]);
    assert_eq!(blocked.unwrap().name, "default-src");
}

#[test]
fn under_strict_dynamic_only_a_nonce_lets_the_script_in() {
    let blocked = blocked_by(&[(
        "content-security-policy",
        "script-src 'strict-dynamic' 'self' https: 'sha256-x='",
    )])
    .unwrap();
    assert!(blocked.nonce_only);
    assert!(
        blocked.fix().starts_with("add a nonce to script-src"),
        "{}",
        blocked.fix()
    );
    assert_eq!(
        blocked_by(&[(
            "content-security-policy",
            "script-src 'strict-dynamic' 'nonce-n'"
        )]),
        None
    );
}

#[test]
fn what_may_let_the_script_in_is_no_block() {
    for csp in [
        "script-src 'self'",
        "script-src 'SELF' 'unsafe-inline'",
        "script-src *",
        "script-src http:",
        "script-src https:",
        "script-src localhost:8090",
        "script-src https://cdn.example",
        "script-src 'nonce-abc'",
        "default-src 'none'; script-src 'self'",
        "script-src-elem 'self'; script-src 'none'",
        "style-src 'none'; img-src 'none'",
        "",
    ] {
        assert_eq!(
            blocked_by(&[("content-security-policy", csp)]),
            None,
            "{csp}"
        );
    }
}

#[test]
fn report_only_policies_block_nothing() {
    let response = [("content-security-policy-report-only", "script-src 'none'")];
    assert_eq!(blocked_by(&response), None);
}

#[test]
fn a_blocked_page_in_an_unknown_encoding_is_unsupported() {
    assert_unsupported(
        &[
            ("content-type", "text/html"),
            ("content-encoding", "zstd"),
            ("content-security-policy", "script-src 'none'"),
        ],
        "`zstd`",
    );
}

#[test]
fn the_fix_names_the_governing_directive() {
    let blocked = blocked_by(&[("content-security-policy", "default-src 'none'")]).unwrap();
    assert_eq!(
        blocked.fix(),
        "add 'self' or a nonce to default-src (reload puts the nonce on its script)"
    );
}

#[test]
fn a_long_directive_is_shortened() {
    let csp = format!("script-src {}", "'sha256-é=' ".repeat(50));
    let blocked = blocked_by(&[("content-security-policy", &csp)]).unwrap();
    assert_eq!(
        blocked.directive.chars().count(),
        123,
        "{}",
        blocked.directive
    );
    assert!(blocked.directive.ends_with("..."));
}

// ---- the tag ----

#[test]
fn the_script_tag_is_exact() {
    assert_eq!(script_tag(7, None), TAG);
    assert_eq!(
        script_tag(0, Some("r4nd0m+/=")),
        r#"<script src="/__reload/client.js" nonce="r4nd0m+/=" data-generation="0" async></script>"#
    );
    assert_eq!(
        script_tag(u64::MAX, None),
        r#"<script src="/__reload/client.js" data-generation="18446744073709551615" async></script>"#
    );
}

#[test]
fn the_nonce_is_attribute_escaped() {
    assert_eq!(
        script_tag(1, Some(r#"a"b<c>&d'e"#)),
        r#"<script src="/__reload/client.js" nonce="a&quot;b&lt;c&gt;&amp;d&#39;e" data-generation="1" async></script>"#
    );
    // From the header through decide to the tag: a quote cannot close the attribute.
    let nonce = nonce_of(&[(
        "content-security-policy",
        r#"script-src 'nonce-x"onload="alert(1)'"#,
    )])
    .unwrap();
    let tag = script_tag(1, Some(&nonce));
    assert_eq!(tag.matches('"').count(), 6, "{tag}");
}

// ---- complete bodies ----

#[track_caller]
fn assert_inserted(body: &[u8], expected: &[u8]) {
    let inserted = insert_complete(body, TAG).expect("the tag was not inserted");
    assert_eq!(
        String::from_utf8_lossy(&inserted),
        String::from_utf8_lossy(expected)
    );
}

fn with_tag(before: &str, after: &str) -> String {
    format!("{before}{TAG}{after}")
}

#[test]
fn the_tag_goes_before_the_body_end_tag() {
    assert_inserted(
        b"<!doctype html><html><body><p>hi</p></body></html>\n",
        with_tag("<!doctype html><html><body><p>hi</p>", "</body></html>\n").as_bytes(),
    );
}

#[test]
fn a_body_end_tag_in_a_script_string_does_not_count() {
    // The page omits its own `</body>`, which HTML allows: the tag goes at the end, not into
    // the string (where it would end the script early and break it).
    let body = r#"<!doctype html><html><body><script>window.ok = true; var s = "</body>";</script><p>x</p>"#;
    assert_inserted(body.as_bytes(), with_tag(body, "").as_bytes());
    let with_end = format!("{body}</body></html>");
    assert_inserted(
        with_end.as_bytes(),
        with_tag(body, "</body></html>").as_bytes(),
    );
}

#[test]
fn a_body_end_tag_in_a_trailing_comment_does_not_count() {
    let body = "<html><body><p>x</p></body></html>\n<!-- old layout: </body></html> -->\n";
    assert_inserted(
        body.as_bytes(),
        with_tag("<html><body><p>x</p>", &body[20..]).as_bytes(),
    );
    // Without a real `</body>`, the tag goes after the comment, not into it.
    let body = "<html><body><p>x</p>\n<!-- </body> -->\n";
    assert_inserted(body.as_bytes(), with_tag(body, "").as_bytes());
}

#[test]
fn tags_in_raw_text_and_attribute_values_do_not_count() {
    for inside in [
        "<style>p::after { content: '</body>' }</style>",
        "<textarea></body></textarea>",
        "<title></body></title>",
        r#"<div title="</body>"></div>"#,
        "<script>document.write('<body>')</script>",
    ] {
        let body = format!("<html><body>{inside}<p>x</p>");
        assert_inserted(body.as_bytes(), with_tag(&body, "").as_bytes());
    }
    // A `<body` start tag in a comment is none either: the real one takes the tag.
    assert_inserted(
        b"<html><!-- <body> --><body>a<script>x = 1",
        with_tag("<html><!-- <body> --><body>", "a<script>x = 1").as_bytes(),
    );
}

#[test]
fn uppercase_tags_are_tags() {
    assert_inserted(
        b"<HTML><BODY>hi</BODY></HTML>",
        with_tag("<HTML><BODY>hi", "</BODY></HTML>").as_bytes(),
    );
    assert_inserted(
        b"<body>hi</Body >",
        with_tag("<body>hi", "</Body >").as_bytes(),
    );
    assert_inserted(
        b"<Body Class=x><SCRIPT>'</BODY>'</SCRIPT>",
        with_tag("<Body Class=x><SCRIPT>'</BODY>'</SCRIPT>", "").as_bytes(),
    );
}

#[test]
fn an_omitted_body_end_tag_puts_the_tag_at_the_end() {
    assert_inserted(
        b"<!doctype html><body>content",
        with_tag("<!doctype html><body>content", "").as_bytes(),
    );
    assert_inserted(
        b"<!DOCTYPE html><HTML><head><title>t</title></head>",
        with_tag("<!DOCTYPE html><HTML><head><title>t</title></head>", "").as_bytes(),
    );
}

#[test]
fn a_page_that_ends_inside_a_script_or_comment_gets_the_tag_after_the_body_start_tag() {
    for rest in [
        "<script>var unfinished = '",
        "<!-- never closed",
        "<textarea>never closed",
        r#"<div class="never closed"#,
    ] {
        let body = format!("<html><body class=\"a>b\">{rest}");
        assert_inserted(
            body.as_bytes(),
            with_tag("<html><body class=\"a>b\">", rest).as_bytes(),
        );
    }
    // With no `<body>` tag, there is no place at all.
    assert_eq!(insert_complete(b"<html><script>var s = '", TAG), None);
}

#[test]
fn a_quoted_gt_does_not_end_the_body_start_tag() {
    for start in [
        r#"<body class="a>b">"#,
        "<body data-x='1>2' id=main>",
        r#"<BODY onload = "go('>')">"#,
        r#"<body data-x=a"b>"#,
        "<body\n>",
        "<body/>",
    ] {
        let body = format!("{start}x<script>'");
        assert_inserted(body.as_bytes(), with_tag(start, "x<script>'").as_bytes());
    }
}

#[test]
fn bodyx_is_not_a_body_tag() {
    assert_inserted(
        b"<html><bodyx>a</bodyx><body>b<script>",
        with_tag("<html><bodyx>a</bodyx><body>", "b<script>").as_bytes(),
    );
    assert_eq!(insert_complete(b"<bodyx>a</bodyx>", TAG), None);
    assert_eq!(insert_complete(b"<htmlx>a", TAG), None);
}

#[test]
fn a_body_with_neither_html_nor_body_passes() {
    for body in [
        &b""[..],
        b"<div>a fragment</div>",
        b"<p>fragment</p>",
        b"<p>a <b>bold</b> claim</p>",
        b"<!-- <html><body> -->",
        b"<script>'<html><body></body>'</script>",
    ] {
        assert_eq!(
            insert_complete(body, TAG),
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_body_that_does_not_begin_like_html_passes() {
    for body in [
        &br#"{"html": "<html><body></body></html>"}"#[..],
        br#"["</body>"]"#,
        b"plain text <html><body>",
        b"   \n\t",
        b"\xEF\xBB",
        b"\xEF\xBB<html><body>",
        b"\xEF\xBB\xBF\xEF\xBB\xBF<html><body>",
        b"\x00<html><body>",
        b"\xff\xfe<\x00h\x00t\x00m\x00l\x00>\x00",
    ] {
        assert_eq!(
            insert_complete(body, TAG),
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_bom_and_whitespace_before_the_page_are_allowed() {
    for start in ["\u{feff}", "\u{feff} \r\n\t\x0c", "\n\n  ", ""] {
        let body = format!("{start}<!doctype html><html><body>x</body></html>");
        assert_inserted(
            body.as_bytes(),
            with_tag(
                &format!("{start}<!doctype html><html><body>x"),
                "</body></html>",
            )
            .as_bytes(),
        );
    }
}

#[test]
fn a_page_the_tokenizer_gives_up_on_passes_byte_for_byte() {
    // A `<body>` start tag cut off by the end of the input is what lol_html buffers whole.
    let mut body = b"<html><head></head><body data-x=\"".to_vec();
    body.resize(body.len() + TOKENIZER_MEMORY * 2, b'y');
    let mut tokenizer = Tokenizer::new(TOKENIZER_MEMORY);
    assert!(!tokenizer.write(&body), "lol_html did not give up");
    assert_eq!(insert_complete(&body, TAG), None);
    // What it found before it gave up is still a place.
    let mut body = b"<html><body>x</body><body data-x=\"".to_vec();
    body.resize(body.len() + TOKENIZER_MEMORY * 2, b'y');
    assert_eq!(insert_complete(&body, TAG), Some(spliced(&body, 13, TAG)));
}

#[test]
fn a_large_page_gets_the_tag_once() {
    let mut body = b"<html><body>".to_vec();
    for line in 0..200_000 {
        body.extend_from_slice(format!("<p class=line>line {line}</p>\n").as_bytes());
    }
    let end = body.len();
    body.extend_from_slice(b"</body></html>");
    assert_eq!(insert_complete(&body, TAG), Some(spliced(&body, end, TAG)));
}

#[test]
fn non_utf8_bytes_are_kept() {
    let mut body = b"<html><body>\xff\xfe caf\xe9 ".to_vec();
    body.extend_from_slice(b"\x80</body>\xc3(</html>");
    let mut expected = b"<html><body>\xff\xfe caf\xe9 \x80".to_vec();
    expected.extend_from_slice(TAG.as_bytes());
    expected.extend_from_slice(b"</body>\xc3(</html>");
    assert_eq!(insert_complete(&body, TAG), Some(expected));

    let latin1 = b"<body title=\"\xe9>\xe8\">\xff<!--";
    let mut expected = b"<body title=\"\xe9>\xe8\">".to_vec();
    expected.extend_from_slice(TAG.as_bytes());
    expected.extend_from_slice(b"\xff<!--");
    assert_eq!(insert_complete(latin1, TAG), Some(expected));
}

// ---- streaming bodies ----

/// Pushes `chunks` through a `Streaming`: the whole output.
fn stream(chunks: &[&[u8]]) -> Vec<u8> {
    let mut streaming = Streaming::new(TAG.to_owned());
    chunks
        .iter()
        .flat_map(|chunk| streaming.push(chunk.to_vec()))
        .collect()
}

const PAGE: &str = r#"<!doctype html><html><head><title>a > b <body></title><script>"<body>"</script></head><!-- <body> --><BODY class="a>b" id=x>hello</body></html>"#;

fn page_injected() -> Vec<u8> {
    let at = PAGE.find("id=x>").unwrap() + "id=x>".len();
    with_tag(&PAGE[..at], &PAGE[at..]).into_bytes()
}

#[test]
fn streaming_places_the_tag_after_the_body_start_tag() {
    assert_eq!(stream(&[PAGE.as_bytes()]), page_injected());
}

#[test]
fn streaming_passes_each_chunk_at_once() {
    let mut streaming = Streaming::new(TAG.to_owned());
    assert_eq!(
        streaming.push(b"<html><head></head><bo".to_vec()),
        b"<html><head></head><bo"
    );
    assert_eq!(
        streaming.push(b"dy>text".to_vec()),
        with_tag("dy>", "text").as_bytes()
    );
    assert!(!streaming.searching());
    assert_eq!(
        streaming.push(b"<body>".to_vec()),
        b"<body>",
        "then it passes through"
    );
}

#[test]
fn streaming_places_the_tag_wherever_the_chunks_are_cut() {
    let page = PAGE.as_bytes();
    for cut in 0..=page.len() {
        assert_eq!(
            stream(&[&page[..cut], &page[cut..]]),
            page_injected(),
            "cut at {cut}"
        );
    }
    for first in 0..page.len() {
        for second in first..page.len() {
            assert_eq!(
                stream(&[&page[..first], &page[first..second], &page[second..]]),
                page_injected(),
                "cut at {first} and {second}"
            );
        }
    }
    let bytes: Vec<&[u8]> = page.chunks(1).collect();
    assert_eq!(stream(&bytes), page_injected(), "one byte at a time");
}

#[test]
fn streaming_a_page_that_does_not_begin_like_html_passes_unchanged() {
    for body in [
        &br#"{"a": "<html><body>"}"#[..],
        b"a < b <body>c",
        b"\xEF\xBB<body>",
    ] {
        for cut in 0..=body.len() {
            assert_eq!(stream(&[&body[..cut], &body[cut..]]), body, "cut at {cut}");
        }
    }
    // A BOM and whitespace, cut anywhere, are allowed.
    let body = b"\xEF\xBB\xBF \n<body>x";
    let expected = [&body[..11], TAG.as_bytes(), b"x"].concat();
    for cut in 0..=body.len() {
        assert_eq!(
            stream(&[&body[..cut], &body[cut..]]),
            expected,
            "cut at {cut}"
        );
    }
}

#[test]
fn streaming_places_the_tag_once() {
    assert_eq!(
        stream(&[b"<body>a", b"<body>b"]),
        with_tag("<body>", "a<body>b").as_bytes()
    );
}

#[test]
fn streaming_without_a_body_within_64_kib_passes_unchanged() {
    let filler = vec![b'x'; 1024];
    let mut streaming = Streaming::new(TAG.to_owned());
    let mut input = b"<html>".to_vec();
    let mut output = streaming.push(input.clone());
    for _ in 0..64 {
        input.extend_from_slice(&filler);
        output.extend(streaming.push(filler.clone()));
    }
    assert_eq!(output, input, "nothing held back");
    assert!(!streaming.searching());
    // Once the limit went by, a `<body>` is just bytes.
    assert_eq!(streaming.push(b"<body>".to_vec()), b"<body>");

    // The whole start tag must be within the limit.
    let mut late = b"<html>".to_vec();
    late.resize(STREAM_SEARCH_LIMIT - 5, b'x');
    late.extend_from_slice(b"<body>late");
    assert_eq!(stream(&[&late]), late, "in one chunk as in many");
    let mut early = b"<html>".to_vec();
    early.resize(STREAM_SEARCH_LIMIT - 6, b'x');
    early.extend_from_slice(b"<body>in time");
    assert_eq!(
        stream(&[&early]),
        [&early[..early.len() - 7], TAG.as_bytes(), b"in time"].concat()
    );
}

#[test]
fn streaming_passes_byte_for_byte_when_there_is_no_place() {
    let body = b"<!doctype html><html><head><script>'<body>'</script></head><!-- <body> -->";
    for cut in 0..=body.len() {
        assert_eq!(stream(&[&body[..cut], &body[cut..]]), body, "cut at {cut}");
    }
}

#[test]
fn streaming_passes_byte_for_byte_when_the_tokenizer_gives_up() {
    // A start tag cut between chunks is what lol_html buffers: past its memory limit it gives
    // up, and every byte still goes out as it came, in order.
    let mut streaming = Streaming::with_memory(TAG.to_owned(), 4096);
    let mut input = b"<html><body data-x=\"".to_vec();
    let mut output = streaming.push(input.clone());
    let chunk = vec![b'y'; 1000];
    for _ in 0..16 {
        input.extend_from_slice(&chunk);
        output.extend(streaming.push(chunk.clone()));
    }
    assert!(!streaming.searching(), "lol_html did not give up");
    input.extend_from_slice(b"\">text</body></html>");
    output.extend(streaming.push(b"\">text</body></html>".to_vec()));
    assert_eq!(output, input);
}

// ---- codecs ----

const ENCODINGS: [Encoding; 4] = [
    Encoding::Identity,
    Encoding::Gzip,
    Encoding::Deflate,
    Encoding::Brotli,
];

fn sample_page() -> Vec<u8> {
    let mut page = b"<html><body>\xff\x00 non-UTF-8 and NUL ".to_vec();
    for line in 0..2000 {
        page.extend_from_slice(format!("<p>line {line}</p>\n").as_bytes());
    }
    page.extend_from_slice(b"</body></html>");
    page
}

#[test]
fn whole_bodies_round_trip() {
    let page = sample_page();
    for encoding in ENCODINGS {
        let encoded = encode(encoding, &page).unwrap();
        if encoding != Encoding::Identity {
            assert!(
                encoded.len() < page.len() / 4,
                "{encoding} did not compress"
            );
        }
        assert_eq!(decode(encoding, &encoded).unwrap(), page, "{encoding}");
        assert_eq!(
            decode(encoding, &encode(encoding, b"").unwrap()).unwrap(),
            b"",
            "{encoding} of nothing"
        );
    }
}

#[test]
fn deflate_is_written_zlib_wrapped() {
    let encoded = encode(Encoding::Deflate, b"<html>").unwrap();
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(&encoded[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, b"<html>");
}

#[test]
fn a_gzip_stream_from_flate2_is_decoded() {
    let page = sample_page();
    let mut writer = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    writer.write_all(&page).unwrap();
    let gzip = writer.finish().unwrap();
    assert_eq!(&gzip[..2], b"\x1f\x8b");
    assert_eq!(decode(Encoding::Gzip, &gzip).unwrap(), page);

    // Two members back to back are one gzip body (RFC 1952), as a server that gzips per
    // write may send.
    let second = {
        let mut writer = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        writer.write_all(b"<!-- more -->").unwrap();
        writer.finish().unwrap()
    };
    let joined = [gzip, second].concat();
    assert_eq!(
        decode(Encoding::Gzip, &joined).unwrap(),
        [&page[..], b"<!-- more -->"].concat()
    );
}

#[test]
fn raw_deflate_is_accepted_on_decode() {
    let page = sample_page();
    let mut writer = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    writer.write_all(&page).unwrap();
    let raw = writer.finish().unwrap();
    assert_eq!(decode(Encoding::Deflate, &raw).unwrap(), page);

    let mut codec = StreamCodec::new(Encoding::Deflate);
    let mut plain = Vec::new();
    for chunk in raw.chunks(1) {
        plain.extend(codec.decode(chunk).unwrap());
    }
    assert_eq!(plain, page, "raw deflate streamed one byte at a time");
}

#[test]
fn corrupt_bodies_are_errors_that_name_the_encoding() {
    for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Brotli] {
        let error = decode(encoding, b"\x1f\x8b\x08 this is not compressed").unwrap_err();
        assert!(
            error.to_string().contains(&format!("{encoding} body")),
            "{error}"
        );
    }
}

#[test]
fn decoding_refuses_past_64_mib() {
    // 65 gzip members of 1 MiB of zeros each: about 65 KiB that decodes to 65 MiB.
    let member = encode(Encoding::Gzip, &vec![0; 1 << 20]).unwrap();
    let bomb = member.repeat(65);
    assert!(bomb.len() < 100 << 10);
    let error = decode(Encoding::Gzip, &bomb).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::FileTooLarge, "{error}");
    // Exactly the limit is still a page.
    let at_limit = member.repeat(64);
    assert_eq!(
        decode(Encoding::Gzip, &at_limit).unwrap().len(),
        MAX_DECODED
    );
}

#[test]
fn every_codec_is_bounded() {
    let plain = vec![b'a'; 10_000];
    for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Brotli] {
        let encoded = encode(encoding, &plain).unwrap();
        assert_eq!(
            decode_bounded(encoding, &encoded, plain.len())
                .unwrap()
                .len(),
            plain.len()
        );
        let error = decode_bounded(encoding, &encoded, plain.len() - 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge, "{encoding}");

        let mut codec = StreamCodec::with_limit(encoding, plain.len() - 1);
        let error = codec.decode(&encoded).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge, "{encoding}");
    }
}

// ---- streaming codecs ----

fn page_chunks() -> Vec<Vec<u8>> {
    let page = sample_page();
    page.chunks(777).map(<[u8]>::to_vec).collect()
}

#[test]
fn each_encoded_chunk_decodes_as_soon_as_it_is_emitted() {
    for encoding in ENCODINGS {
        let mut encoder = StreamCodec::new(encoding);
        let mut decoder = StreamCodec::new(encoding);
        for (index, chunk) in page_chunks().iter().enumerate() {
            let encoded = encoder.encode(chunk).unwrap();
            assert_eq!(
                &decoder.decode(&encoded).unwrap(),
                chunk,
                "{encoding} chunk {index}"
            );
        }
        assert!(
            encoder.encode(b"").unwrap().is_empty(),
            "{encoding}: an empty chunk adds nothing"
        );
        let end = encoder.finish().unwrap();
        assert!(decoder.decode(&end).unwrap().is_empty(), "{encoding}");
        // The app's stream ended properly: finishing the decoding side is no error.
        decoder.finish().unwrap();
    }
}

#[test]
fn a_stream_decoded_chunk_by_chunk_is_the_whole_body() {
    let page = sample_page();
    for encoding in ENCODINGS {
        let encoded = encode(encoding, &page).unwrap();
        for size in [1, 7, 4096] {
            let mut codec = StreamCodec::new(encoding);
            let mut plain = Vec::new();
            for chunk in encoded.chunks(size) {
                plain.extend(codec.decode(chunk).unwrap());
            }
            assert_eq!(plain, page, "{encoding} in chunks of {size}");
            assert!(codec.finish().is_ok(), "{encoding}");
        }
    }
}

#[test]
fn a_compressed_streamed_page_gets_the_tag() {
    let page = PAGE.as_bytes();
    for encoding in ENCODINGS {
        let compressed = encode(encoding, page).unwrap();
        let mut codec = StreamCodec::new(encoding);
        let mut streaming = Streaming::new(TAG.to_owned());
        let mut out = Vec::new();
        for chunk in compressed.chunks(5) {
            let plain = codec.decode(chunk).unwrap();
            out.extend(codec.encode(&streaming.push(plain)).unwrap());
        }
        out.extend(codec.finish().unwrap());
        assert_eq!(
            decode(encoding, &out).unwrap(),
            page_injected(),
            "{encoding}"
        );
    }
}

#[test]
fn a_truncated_stream_is_an_error_at_the_end() {
    let page = sample_page();
    for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Brotli] {
        let encoded = encode(encoding, &page).unwrap();
        let mut codec = StreamCodec::new(encoding);
        codec.decode(&encoded[..encoded.len() / 2]).unwrap();
        let error = codec.finish().unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("streamed {encoding} body")),
            "{error}"
        );
    }
}

#[test]
fn an_empty_stream_finishes_as_a_valid_empty_body() {
    for encoding in ENCODINGS {
        let end = StreamCodec::new(encoding).finish().unwrap();
        assert_eq!(decode(encoding, &end).unwrap(), b"", "{encoding}");
    }
}

// ---- headers ----

#[test]
fn fix_headers_drops_validators_and_digests_and_sets_the_length() {
    let mut map = headers(&[
        ("content-type", "text/html"),
        ("content-encoding", "gzip"),
        ("content-length", "100"),
        ("etag", "\"abc\""),
        ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
        ("digest", "sha-256=abc"),
        ("repr-digest", "sha-256=:abc=:"),
        ("content-digest", "sha-256=:abc=:"),
        ("cache-control", "no-store"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("content-security-policy", "script-src 'nonce-n'"),
    ]);
    fix_headers(&mut map, Some(164));
    assert_eq!(map[CONTENT_LENGTH], "164");
    for gone in [
        ETAG.as_str(),
        "content-md5",
        "digest",
        "repr-digest",
        "content-digest",
    ] {
        assert!(!map.contains_key(gone), "{gone}");
    }
    assert_eq!(map[CONTENT_ENCODING], "gzip");
    assert_eq!(map[CONTENT_TYPE], "text/html");
    assert_eq!(map["cache-control"], "no-store");
    assert_eq!(map.get_all("set-cookie").iter().count(), 2);
    assert_eq!(map[CONTENT_SECURITY_POLICY], "script-src 'nonce-n'");

    fix_headers(&mut map, None);
    assert!(
        !map.contains_key(CONTENT_LENGTH),
        "a streamed body has none"
    );
    assert_eq!(map.len(), 6);
}

#[test]
fn fix_headers_adds_a_length_that_was_missing() {
    let mut map = headers(&[(CONTENT_SECURITY_POLICY_REPORT_ONLY.as_str(), "x")]);
    fix_headers(&mut map, Some(0));
    assert_eq!(map[CONTENT_LENGTH], "0");
    assert_eq!(map.len(), 2);
}
