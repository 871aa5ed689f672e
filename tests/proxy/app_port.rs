//! Where the proxy finds the app: with `--proxy` alone, reload chooses the port it gives the
//! server as PORT and follows a server that listens elsewhere; with `--app-port`, a server that
//! listens elsewhere, or exits before it listens, is said at once, in the terminal and in the
//! page a held request gets. The hold and ready timeouts are set to ten minutes in those tests:
//! an answer within the test's deadline proves that nothing waited for them.

use super::{APP, Proxied, get, proxied, request, start};
use crate::BUILD;
use crate::support::{Project, free_port};

/// Far beyond any test's deadline: a request answered proves it did not wait for these.
pub(super) const PATIENT: &str = "[proxy]\nhold_timeout = \"10m\"\n";
pub(super) const PATIENT_READY: &str = "ready_timeout = \"10m\"\n";

/// The proxy tests' project at `version`, its `[run]` given `run` (TOML lines) after the
/// command, and `more` after it.
pub(super) fn project(version: &str, cmd: &str, run: &str, more: &str) -> Project {
    Project::new()
        .file("src/version.txt", &format!("{version}\n"))
        .file("build.sh", BUILD)
        .file("app.py", APP)
        .config(&format!(
            "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
             [run]\ncmd = {cmd}\n{run}\n{more}"
        ))
}

/// reload with `--proxy` alone, and the port it chose, from its startup line.
fn start_alone(project: &Project) -> (Proxied<'_>, u16) {
    let proxy = free_port();
    let session = project.start(&["--proxy", &proxy.to_string()]);
    session.wait_for_stderr("(given as PORT");
    let stderr = session.stderr();
    let needle = format!("proxy on http://127.0.0.1:{proxy} -> app :");
    let chosen: u16 = stderr
        .find(&needle)
        .map(|at| {
            stderr[at + needle.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no {needle:?} in\n{stderr}"));
    let proxied = Proxied {
        session,
        proxy,
        app: chosen,
    };
    (proxied, chosen)
}

#[test]
fn with_the_proxy_alone_a_server_that_reads_port_gets_a_chosen_one_and_a_save_swaps_it() {
    let project = proxied("v0");
    let (proxied, chosen) = start_alone(&project);
    let ephemeral = super::overlap_ports::ephemeral_start();
    assert!(
        (1024..ephemeral).contains(&chosen),
        ":{chosen} is below the ephemeral range{}",
        proxied.session.context()
    );
    proxied.wait_serving("v0");
    for version in ["v1", "v2"] {
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.wait_serving(version);
    }
    let ports: Vec<String> = project
        .starts()
        .iter()
        .map(|start| start.field("port").to_owned())
        .collect();
    assert_eq!(ports, vec![chosen.to_string(); 3], "each got PORT={chosen}");
    let stderr = proxied.session.stderr();
    assert!(
        !stderr.contains("not on PORT"),
        "a server that reads PORT is not news{}",
        proxied.session.context()
    );
}

#[test]
fn with_the_proxy_alone_a_server_that_ignores_port_is_followed_with_one_line() {
    let own = free_port();
    let project = project(
        "v0",
        "[\"python3\", \"app.py\"]",
        &format!("env = {{ IGNORE_PORT = \"{own}\" }}"),
        "",
    );
    let (proxied, chosen) = start_alone(&project);
    proxied.wait_serving("v0");
    let line = format!("app listens on :{own}, not on PORT={chosen}: forwarding there");
    proxied.session.wait_for_stderr(&line);
    for version in ["v1", "v2"] {
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.wait_serving(version);
    }
    let stderr = proxied.session.stderr();
    assert_eq!(
        stderr.matches("not on PORT=").count(),
        1,
        "said once, not at each restart{}",
        proxied.session.context()
    );
    assert!(
        project
            .starts()
            .iter()
            .all(|start| start.field("port") == own.to_string()),
        "{:?}",
        project.starts()
    );
}

#[test]
fn with_an_app_port_a_server_listening_elsewhere_is_said_at_once_in_the_page_and_terminal() {
    let own = free_port();
    let project = project(
        "v1",
        "[\"python3\", \"app.py\"]",
        &format!("env = {{ IGNORE_PORT = \"{own}\" }}\n{PATIENT_READY}"),
        PATIENT,
    );
    let proxied = start(&project, &[]);
    proxied.session.wait_for_stderr("proxy on http");
    let app = proxied.app;
    // Held while the build runs and the app starts, then answered with what is wrong.
    let answer = get(proxied.proxy, "/");
    assert_eq!(
        answer.status,
        503,
        "{answer:?}{}",
        proxied.session.context()
    );
    let page = answer.text();
    assert!(
        page.contains(&format!("Your app listens on :{own}, not on :{app}"))
            && page.contains(&format!("--app-port {own}")),
        "{page}"
    );
    assert!(
        page.contains("data-generation=\"0\""),
        "the page becomes the app once one is ready: {page}"
    );
    proxied.session.wait_for_stderr(&format!(
        "listens on :{own}, not on :{app}, where reload waits"
    ));
    assert!(
        !proxied.session.stderr().contains("was not ready within"),
        "it was said before any timeout{}",
        proxied.session.context()
    );
    // A request for text gets the same, as text.
    let answer = request(proxied.proxy, "GET", "/text", &[], b"").unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        answer
            .text()
            .contains(&format!("listens on :{own}, not on :{app}")),
        "{}",
        answer.text()
    );
}

/// A server that exits with status 3 while its version says BROKEN, and serves otherwise.
pub(super) const EXITS_WHEN_BROKEN: &str = "[\"sh\", \"-c\", \"if grep -q BROKEN build/version.txt; then \
                                  exit 3; fi; exec python3 app.py\"]";

#[test]
fn a_server_that_exits_before_it_listens_answers_held_requests_at_once_until_the_fix() {
    let project = project("v1-BROKEN", EXITS_WHEN_BROKEN, PATIENT_READY, PATIENT);
    let proxied = start(&project, &[]);
    proxied.session.wait_for_stderr("proxy on http");
    let app = proxied.app;
    let answer = get(proxied.proxy, "/");
    assert_eq!(
        answer.status,
        503,
        "{answer:?}{}",
        proxied.session.context()
    );
    let page = answer.text();
    assert!(
        page.contains(&format!(
            "Your app exited with status 3 before it listened on :{app}"
        )),
        "{page}"
    );
    assert!(page.contains("data-generation=\"0\""), "{page}");
    proxied
        .session
        .wait_for_stderr("exited with 3 before it was ready");

    project.write("src/version.txt", "v2\n");
    proxied.wait_serving("v2");
    let answer = get(proxied.proxy, "/");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.text().contains("<h1>v2</h1>"), "{}", answer.text());
}

#[test]
fn a_serving_app_killed_by_a_signal_is_said_in_words_at_once() {
    let project = project("v1", "[\"python3\", \"app.py\"]", PATIENT_READY, PATIENT);
    let proxied = start(&project, &[]);
    proxied.wait_serving("v1");
    let start = proxied.session.wait_for_start("v1");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(start.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    proxied.session.wait_for_stderr("killed by SIGKILL");
    let answer = get(proxied.proxy, "/");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        answer
            .text()
            .contains("Your app was killed by SIGKILL while it was serving"),
        "{}",
        answer.text()
    );
}

#[test]
fn with_the_proxy_alone_and_overlap_servers_take_turns_on_two_chosen_ports() {
    let project = proxied("v0");
    let proxy = free_port();
    let session = project.start(&["--proxy", &proxy.to_string(), "--overlap"]);
    session.wait_for_stderr("servers take turns on :");
    let proxied = Proxied {
        session,
        proxy,
        app: 0,
    };
    proxied.wait_serving("v0");
    for version in ["v1", "v2", "v3"] {
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.wait_serving(version);
    }
    let ports: Vec<String> = project
        .starts()
        .iter()
        .map(|start| start.field("port").to_owned())
        .collect();
    assert_eq!(ports.len(), 4, "{ports:?}");
    assert_ne!(ports[0], ports[1], "two ports: {ports:?}");
    assert_eq!((&ports[0], &ports[1]), (&ports[2], &ports[3]), "{ports:?}");
    let stderr = proxied.session.stderr();
    assert!(
        stderr.contains(&format!(
            "servers take turns on :{} and :{}",
            ports[1], ports[0]
        )),
        "{}",
        proxied.session.context()
    );
    assert!(
        !stderr.contains("not on PORT"),
        "{}",
        proxied.session.context()
    );
}

#[test]
fn a_config_with_a_proxy_port_and_no_app_port_serves_the_app() {
    let proxy = free_port();
    let project = project(
        "v0",
        "[\"python3\", \"app.py\"]",
        "",
        &format!("[proxy]\nport = {proxy}\n"),
    );
    let session = project.start(&[]);
    session.wait_for_stderr("(given as PORT");
    let proxied = Proxied {
        session,
        proxy,
        app: 0,
    };
    proxied.wait_serving("v0");
    project.write("src/version.txt", "v1\n");
    proxied.wait_serving("v1");
}
