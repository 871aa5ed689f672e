//! One request's way to the app, when it goes wrong: an app that takes a request and closes the
//! connection without answering, a server stopped with a request in it, a malformed body, a
//! server that listens nowhere. Each gets an answer that says what happened, and nothing is
//! sent to the app twice unless a newer server takes it.

use std::thread;

use super::{Answer, proxied, request, send_raw, start};

#[track_caller]
fn assert_malformed(answer: &Answer, why: &str) {
    let text = answer.text();
    assert_eq!(answer.status, 400, "{why}: {text}");
    assert!(
        text.contains("request's body is malformed") && !text.contains("the app"),
        "{why}: the text says the body is at fault, not the app: {text}"
    );
}

#[test]
fn a_get_the_app_drops_reaches_it_once_and_gets_a_502_saying_so() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let answer = request(proxied.proxy, "GET", "/drop", &[], b"").expect("an answer");
    let text = answer.text();
    assert_eq!(answer.status, 502, "{text}");
    assert!(
        text.contains("closed the connection without answering") && text.contains("not sent"),
        "says what the app did and that it was not sent again: {text}"
    );
    assert_eq!(
        project.scratch_lines("drop.log"),
        ["GET v1"],
        "the request reached the app once"
    );
}

#[test]
fn a_get_dropped_by_a_server_being_stopped_is_sent_once_more_to_the_next_one() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let port = proxied.proxy;
    let get = thread::spawn(move || request(port, "GET", "/hang", &[], b""));
    proxied.session.wait_until("the GET to reach v1", || {
        (project.scratch_lines("hang.log").len() == 1).then_some(())
    });
    project.write("src/version.txt", "v2\n");
    let get = get.join().unwrap().expect("the GET gets an answer");
    assert_eq!(get.status, 200, "{get:?}{}", proxied.session.context());
    assert_eq!(
        get.text(),
        "answered by v2",
        "sent again, to the new server"
    );
    assert_eq!(
        project.scratch_lines("hang.log"),
        ["GET"],
        "it reached v1 once"
    );
}

#[test]
fn a_chunked_post_with_an_invalid_chunk_size_gets_a_400_naming_the_body() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let answer = send_raw(
        proxied.proxy,
        b"POST /body HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
        false,
    );
    assert_malformed(&answer, "an invalid chunk size");
    // The proxy is none the worse for it.
    let answer = request(proxied.proxy, "POST", "/body", &[], b"hello").unwrap();
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "v1 got 5 bytes")
    );
}

#[test]
fn a_chunked_put_with_a_bad_chunk_gets_a_400_not_too_large() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let answer = send_raw(
        proxied.proxy,
        b"PUT /body HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
          Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n-1\r\n\r\n",
        false,
    );
    assert_malformed(&answer, "a bad chunk");
    assert!(!answer.text().contains("too large"), "{}", answer.text());
}

#[test]
fn a_body_shorter_than_its_content_length_gets_a_400() {
    let project = proxied("v1");
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    // A POST's body streams to the app; a PUT's small body is read whole first.
    for method in ["POST", "PUT"] {
        let raw = format!(
            "{method} /body HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: 100\r\n\r\n0123456789"
        );
        let answer = send_raw(proxied.proxy, raw.as_bytes(), true);
        assert_malformed(&answer, &format!("a {method} body cut short"));
        assert!(
            answer.text().contains("Content-Length"),
            "{method}: says the body is shorter than its Content-Length: {}",
            answer.text()
        );
    }
}

#[test]
fn a_request_the_app_never_sees_gets_a_504_saying_what_happened() {
    // A server said to be ready when spawned that never listens: every connection is refused.
    let silent = proxied("v1").config(
        "[watch]\npaths = [\"src\"]\n\n[run]\ncmd = [\"sleep\", \"1000\"]\nready = \"none\"\n\n\
         [proxy]\nhold_timeout = \"1s\"\n",
    );
    let running = start(&silent, &[]);
    // A request held before the server is spawned waits for it instead; the next one is not.
    let expected = format!("refused connections on 127.0.0.1:{}", running.app);
    let answer = running
        .session
        .wait_until("a 504 naming the refused port", || {
            request(running.proxy, "GET", "/", &[], b"")
                .ok()
                .filter(|answer| answer.text().contains(&expected))
        });
    assert_eq!(answer.status, 504, "{answer:?}");
    assert!(
        answer.text().contains("the app (generation 1, pid "),
        "names the server: {}",
        answer.text()
    );
    drop(running);

    // An app that exits at once: nothing serves, and the answer says why, without waiting
    // for the hold timeout (tests/proxy/app_port.rs shows it comes at once).
    let exits = proxied("v1").config(
        "[watch]\npaths = [\"src\"]\n\n[run]\ncmd = [\"sh\", \"-c\", \"exit 3\"]\n\n\
         [proxy]\nhold_timeout = \"1s\"\n",
    );
    let running = start(&exits, &[]);
    let said = format!(
        "Your app exited with status 3 before it listened on :{}",
        running.app
    );
    let answer = running
        .session
        .wait_until("a 503 saying the app exited", || {
            request(running.proxy, "GET", "/", &[], b"")
                .ok()
                .filter(|answer| answer.text().contains(&said))
        });
    assert_eq!(answer.status, 503, "{answer:?}");
}
