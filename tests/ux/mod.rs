//! What a user meets first, pinned end to end: a Go project moving over from air with its
//! `.air.toml` unchanged, zero-config Go and Node projects, `reload init`, the keys on a
//! terminal, `--log-format json` for editors and scripts, the messages for bad input, and the
//! small subcommands.
//!
//! The Go and Node projects are real: `go build` compiles a std-only HTTP server, `node` runs a
//! plain `http` server, and the test asks them over HTTP what they serve. Each server listens on
//! a port the test picked and wrote into its source, since air's config has no environment table.
//! Go gets its build cache inside the test's temporary directory (outside the watched root) and
//! no network, so these tests neither depend on `$HOME` nor touch the developer's cache.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use nix::pty::openpty;
use nix::sys::termios::{LocalFlags, tcgetattr};
use serde_json::Value;

use crate::support::needs::{Tool, require};
use crate::support::{Project, Session, alive, free_port, http_get};

/// Deadline for waits that include a real `go build` on a loaded machine.
const GO_DEADLINE: Duration = Duration::from_secs(120);

/// Wait until `GET /` on `port` answers exactly `body`.
#[track_caller]
fn wait_for_body(session: &Session, port: u16, body: &str) {
    session.wait_until_within(
        GO_DEADLINE,
        &format!("the server on port {port} to answer {body:?}"),
        || http_get(port).filter(|answer| answer == body),
    );
}

/// A path inside the project root (the root is the scratch directory's sibling).
fn in_project(project: &Project, path: &str) -> std::path::PathBuf {
    project.scratch("../project").join(path)
}

/// reload's own status lines (`[reload] ...`), in order.
fn status_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("[reload]"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Go: coming from air, and with no configuration at all

const GO_MOD: &str = "module example.com/hello\n\ngo 1.19\n";

/// A std-only Go HTTP server answering `body` on 127.0.0.1:`port`.
fn go_server(port: u16, body: &str) -> String {
    format!(
        r#"package main

import (
	"fmt"
	"log"
	"net/http"
)

func main() {{
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {{
		fmt.Fprint(w, "{body}")
	}})
	log.Fatal(http.ListenAndServe("127.0.0.1:{port}", nil))
}}
"#
    )
}

/// A realistic `.air.toml`: what `air init` writes, trimmed, with one key reload does not act on.
const AIR_TOML: &str = r#"root = "."
tmp_dir = "tmp"

[build]
cmd = "go build -o ./tmp/main ."
bin = "./tmp/main"
delay = 100
exclude_dir = ["assets", "tmp", "vendor"]
include_ext = ["go", "tpl", "tmpl", "html"]
exclude_unchanged = true
kill_delay = "0s"

[log]
time = false

[misc]
clean_on_exit = false
"#;

/// A Go module serving `hello v1` on `port`.
fn go_project(port: u16) -> Project {
    Project::new()
        .file("go.mod", GO_MOD)
        .file("main.go", &go_server(port, "hello v1"))
}

/// Go's caches inside the test's temporary directory, and no network: std-only builds need none.
fn go_env(project: &Project) -> Vec<(&'static str, String)> {
    let path = |name: &str| {
        project
            .scratch(name)
            .to_str()
            .expect("a UTF-8 temporary path")
            .to_owned()
    };
    vec![
        ("GOCACHE", path("gocache")),
        ("GOPATH", path("gopath")),
        ("GOPROXY", "off".to_owned()),
        ("GOFLAGS", String::new()),
        ("GOTOOLCHAIN", "local".to_owned()),
    ]
}

#[track_caller]
fn start_go<'p>(project: &'p Project, args: &[&str]) -> Session<'p> {
    let env = go_env(project);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    project.start_with_env(args, &env)
}

#[test]
fn an_air_project_is_built_served_and_reloaded_by_a_bare_reload() {
    require(Tool::Go);
    let port = free_port();
    let project = go_project(port).file(".air.toml", AIR_TOML);
    let session = start_go(&project, &[]);

    wait_for_body(&session, port, "hello v1");
    let stderr = session.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("warning"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "exactly one warning, for the one unsupported key{}",
        session.context()
    );
    assert!(
        warnings[0].starts_with("[reload] warning:")
            && warnings[0].contains("`build.exclude_unchanged`"),
        "the warning is one status line naming the key{}",
        session.context()
    );
    assert!(
        status_lines(&stderr)
            .iter()
            .any(|line| line.contains(".air.toml")),
        "the status line says the settings come from .air.toml{}",
        session.context()
    );

    project.write("main.go", &go_server(port, "hello v2"));
    wait_for_body(&session, port, "hello v2");
}

#[test]
fn an_air_file_named_with_dash_c_wins_over_reload_toml() {
    require(Tool::Go);
    let port = free_port();
    // Without -c, this reload.toml would be read first, and it does not even parse.
    let project = go_project(port)
        .file(".air.toml", AIR_TOML)
        .config("this is not TOML\n");
    let session = start_go(&project, &["-c", ".air.toml"]);

    wait_for_body(&session, port, "hello v1");
    session.wait_for_stderr("`build.exclude_unchanged`");
    assert!(
        !session.stderr().contains("reload.toml"),
        "reload.toml is not read{}",
        session.context()
    );

    project.write("main.go", &go_server(port, "hello v2"));
    wait_for_body(&session, port, "hello v2");
}

#[test]
fn a_go_module_with_no_configuration_is_built_into_tmp_main_and_served() {
    require(Tool::Go);
    let port = free_port();
    let project = go_project(port);
    let session = start_go(&project, &[]);

    wait_for_body(&session, port, "hello v1");
    let stderr = session.stderr();
    let first = status_lines(&stderr).first().copied().unwrap_or_default();
    assert!(
        first.contains("Go module") && first.contains("go build -o ./tmp/main ."),
        "the first status line says what was detected and how it builds: {first:?}{}",
        session.context()
    );
    assert!(
        in_project(&project, "tmp/main").is_file(),
        "the server was built into ./tmp/main{}",
        session.context()
    );

    project.write("main.go", &go_server(port, "hello v2"));
    wait_for_body(&session, port, "hello v2");
}

#[test]
fn reload_init_writes_reload_toml_once_and_a_bare_reload_then_uses_it() {
    require(Tool::Go);
    let port = free_port();
    let project = go_project(port);
    let reload_toml = in_project(&project, "reload.toml");

    let init = project.run_to_exit(&["init"]);
    assert_eq!(init.status.code(), Some(0), "{}", init.stderr);
    assert!(
        init.stderr.contains("wrote") && init.stderr.contains("reload.toml"),
        "init says what it wrote:\n{}",
        init.stderr
    );
    let written = std::fs::read_to_string(&reload_toml).expect("reload init wrote reload.toml");
    assert!(
        written.contains(r#"cmd = "go build -o ./tmp/main .""#),
        "the Go build is written out:\n{written}"
    );

    project
        .run_to_exit(&["init"])
        .assert_fails_with(2, &["already exists", "--force"]);
    assert_eq!(
        std::fs::read_to_string(&reload_toml).expect("reload.toml"),
        written,
        "a refused init leaves the file alone"
    );
    std::fs::write(&reload_toml, "# edited by hand\n").expect("edit reload.toml");
    let forced = project.run_to_exit(&["init", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", forced.stderr);
    assert_eq!(
        std::fs::read_to_string(&reload_toml).expect("reload.toml"),
        written,
        "--force writes the file again"
    );

    let session = start_go(&project, &[]);
    wait_for_body(&session, port, "hello v1");
    let stderr = session.stderr();
    assert!(
        status_lines(&stderr)
            .first()
            .is_some_and(|line| line.contains("reload.toml")),
        "the settings come from reload.toml{}",
        session.context()
    );
}

#[test]
fn reload_init_from_air_writes_a_reload_toml_that_builds_and_serves() {
    require(Tool::Go);
    let port = free_port();
    let project = go_project(port).file(".air.toml", AIR_TOML);

    let init = project.run_to_exit(&["init", "--from-air"]);
    assert_eq!(init.status.code(), Some(0), "{}", init.stderr);
    assert!(
        init.stderr.contains("converted from") && init.stderr.contains(".air.toml"),
        "init says what it converted:\n{}",
        init.stderr
    );
    assert!(
        init.stderr.contains("`build.exclude_unchanged`"),
        "init names the key it could not convert:\n{}",
        init.stderr
    );
    let written = std::fs::read_to_string(in_project(&project, "reload.toml"))
        .expect("reload init --from-air wrote reload.toml");
    assert!(
        written.contains(r#"debounce = "100ms""#),
        "air's delay becomes the debounce:\n{written}"
    );

    let session = start_go(&project, &[]);
    wait_for_body(&session, port, "hello v1");
    let stderr = session.stderr();
    let first = status_lines(&stderr).first().copied().unwrap_or_default();
    assert!(
        first.contains("reload.toml") && !first.contains(".air.toml"),
        "reload.toml now wins over .air.toml: {first:?}{}",
        session.context()
    );
    assert!(
        !stderr.contains("warning"),
        "reload.toml is read, so no air warning{}",
        session.context()
    );

    project.write("main.go", &go_server(port, "hello v2"));
    wait_for_body(&session, port, "hello v2");
}

// ---------------------------------------------------------------------------------------------
// Node: package.json's start script

const PACKAGE_JSON: &str =
    r#"{"name":"hello","private":true,"scripts":{"start":"node server.js"}}"#;

fn node_server(port: u16, body: &str) -> String {
    format!(
        "const http = require('http');\n\
         http.createServer((req, res) => res.end('{body}')).listen({port}, '127.0.0.1');\n"
    )
}

#[test]
fn a_package_json_start_script_is_served_and_restarted_on_an_edit() {
    require(Tool::Node);
    let port = free_port();
    let project = Project::new()
        .file("package.json", PACKAGE_JSON)
        .file("server.js", &node_server(port, "hello v1"));
    let session = project.start(&[]);

    wait_for_body(&session, port, "hello v1");
    let stderr = session.stderr();
    assert!(
        status_lines(&stderr)
            .first()
            .is_some_and(|line| line.contains("package.json") && line.contains("node server.js")),
        "the first status line says what was detected{}",
        session.context()
    );

    project.write("server.js", &node_server(port, "hello v2"));
    wait_for_body(&session, port, "hello v2");
}

#[test]
fn a_makefile_with_a_run_target_is_run_with_make_run_and_restarted_on_an_edit() {
    require(Tool::Make);
    let project = quiet_project().file("Makefile", "run:\n\t./app.sh\n");
    let session = project.start(&[]);
    session.wait_for_start("v1");
    let stderr = session.stderr();
    assert!(
        status_lines(&stderr)
            .first()
            .is_some_and(|line| line.contains("make run")),
        "the first status line says what was detected{}",
        session.context()
    );
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(project.starts().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The start line

/// reload's first status line in `project` with `args` (what it builds and runs, and from
/// where), up to `; watching`.
fn start_line(project: &Project, args: &[&str]) -> String {
    let session = project.start(args);
    session.wait_for_stderr("; watching");
    let stderr = session.stderr();
    let line = status_lines(&stderr)
        .into_iter()
        .find_map(|line| line.split_once("; watching"))
        .map(|(plan, _)| plan.to_owned());
    line.unwrap_or_else(|| panic!("no start line{}", session.context()))
}

#[test]
fn the_start_line_names_a_config_file_only_when_one_was_read_and_says_what_runs() {
    let bare = Project::new();
    let go = Project::new().file("go.mod", GO_MOD);
    let make = Project::new().file("Makefile", "run:\n\tsleep 1000\n");
    let file =
        Project::new().config("[build]\ncmd = \"true\"\n\n[run]\ncmd = [\"sleep\", \"1000\"]\n");
    let config = file.path("reload.toml");
    let cases: [(&Project, &[&str], String); 8] = [
        (
            &bare,
            &["--build", "true", "--", "sleep", "1000"],
            "build with `true`, run `sleep 1000`".into(),
        ),
        (
            &bare,
            &["--", "sleep", "1 000"],
            "no build step, run `sleep '1 000'`".into(),
        ),
        (
            &bare,
            &["--build", "true"],
            "build with `true`, nothing to run (no program given: build only)".into(),
        ),
        (
            &bare,
            &["--build", "", "--", "sleep", "1000"],
            "no build step, run `sleep 1000`".into(),
        ),
        (
            &go,
            &["--", "sleep", "1000"],
            "build with `go build -o ./tmp/main .` (Go module), run `sleep 1000`".into(),
        ),
        (&make, &[], "Makefile: run `make run`".into()),
        (
            &file,
            &[],
            format!("{}: build with `true`, run `sleep 1000`", config.display()),
        ),
        (
            &file,
            &["--build", "echo hi", "--", "sleep", "999"],
            format!(
                "{}: build with `echo hi`, run `sleep 999`",
                config.display()
            ),
        ),
    ];
    let mut wrong = Vec::new();
    for (project, args, expected) in cases {
        let line = start_line(project, args);
        if line != format!("[reload] {expected}") {
            wrong.push(format!("reload {args:?}: {line:?}, not {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Keys on a terminal

/// Logs each start to `../scratch/app.log` in the harness's format, then waits quietly.
const QUIET_APP: &str = r#"#!/bin/sh
echo "start pid=$$ version=$(cat src/version.txt)" >> ../scratch/app.log
exec sleep 1000
"#;

const COUNTING_BUILD: &str = "echo build >> ../scratch/builds.log";

fn quiet_project() -> Project {
    Project::new()
        .file("src/version.txt", "v1\n")
        .executable("app.sh", QUIET_APP)
}

fn terminal_flags(slave: &OwnedFd) -> LocalFlags {
    tcgetattr(slave.as_fd())
        .expect("tcgetattr on the terminal")
        .local_flags
}

#[test]
fn keys_on_a_terminal_rebuild_show_help_and_quit_restoring_the_terminal() {
    let project = quiet_project();
    let pty = openpty(None, None).expect("open a pseudo-terminal");
    let before = terminal_flags(&pty.slave);
    assert!(before.contains(LocalFlags::ICANON | LocalFlags::ECHO));
    let stdin = pty.slave.try_clone().expect("duplicate the terminal");
    let mut keyboard = File::from(pty.master);
    let press = |keyboard: &mut File, key: &[u8]| {
        keyboard.write_all(key).expect("type on the terminal");
    };

    let mut session = project.start_with_stdin(
        &["-b", COUNTING_BUILD, "--", "./app.sh"],
        &[],
        Stdio::from(stdin),
    );
    let first = session.wait_for_start("v1");
    session.wait_for_stderr("keys:");
    session.wait_for(
        "reload to turn off line editing and echo on the terminal",
        || !terminal_flags(&pty.slave).intersects(LocalFlags::ICANON | LocalFlags::ECHO),
    );
    assert_eq!(project.scratch_lines("builds.log").len(), 1);

    press(&mut keyboard, b"r");
    let second = session.wait_until("`r` to restart the app", || {
        project.starts().get(1).cloned()
    });
    assert_ne!(second.pid, first.pid);
    assert_eq!(
        project.scratch_lines("builds.log").len(),
        2,
        "`r` rebuilt before restarting{}",
        session.context()
    );
    assert!(!alive(first.pid), "the old app was stopped");

    press(&mut keyboard, b"h");
    session.wait_for_stderr_count("keys:", 2);

    press(&mut keyboard, b"q");
    let status = session.wait_exit();
    assert_eq!(status.code(), Some(0), "`q` exits 0{}", session.context());
    assert!(
        session
            .stderr()
            .contains(&format!("stopped app (pid {})", second.pid)),
        "{}",
        session.context()
    );
    session.wait_dead("the app", second.pid);
    session.wait_no_processes();
    assert_eq!(project.starts().len(), 2, "nothing started after `q`");

    let after = terminal_flags(&pty.slave);
    assert!(
        after.contains(LocalFlags::ICANON | LocalFlags::ECHO),
        "the terminal's line editing and echo are restored: {after:?}{}",
        session.context()
    );
}

// ---------------------------------------------------------------------------------------------
// --log-format json

/// Every complete stderr line as JSON; panics on a line that is not a JSON object with an
/// `event`.
#[track_caller]
fn json_events(session: &Session) -> Vec<Value> {
    let stderr = session.stderr();
    let complete = match stderr.rfind('\n') {
        Some(end) => &stderr[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|err| {
                panic!(
                    "stderr line {line:?} is not JSON ({err}){}",
                    session.context()
                )
            });
            assert!(
                value["event"].is_string() && value["time_ms"].is_u64(),
                "stderr line {line:?} is not an event{}",
                session.context()
            );
            value
        })
        .collect()
}

fn named<'v>(events: &'v [Value], name: &str) -> Vec<&'v Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[test]
fn json_log_format_reports_every_step_as_one_object_per_line() {
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .executable("app.sh", QUIET_APP);
    let mut session = project.start(&[
        "--log-format",
        "json",
        "-b",
        "! grep -q FAIL src/version.txt",
        "--",
        "./app.sh",
    ]);
    session.wait_until("the first `ready` event", || {
        (!named(&json_events(&session), "ready").is_empty()).then_some(())
    });

    project.save_atomically("src/version.txt", "v2\n");
    session.wait_until("the second `ready` event", || {
        (named(&json_events(&session), "ready").len() >= 2).then_some(())
    });

    project.save_atomically("src/version.txt", "v3 FAIL\n");
    session.wait_until("a failed `build_finish` event", || {
        named(&json_events(&session), "build_finish")
            .iter()
            .any(|e| e["success"] == false)
            .then_some(())
    });

    session.terminate();
    session.wait_no_processes();

    let events = json_events(&session);
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|name| *name != "info")
        .collect();
    assert_eq!(
        names,
        [
            "watching",
            "build_start",
            "build_finish",
            "spawn",
            "ready",
            "change",
            "build_start",
            "build_finish",
            "spawn",
            "ready",
            "change",
            "build_start",
            "build_finish",
            "stop",
        ],
        "{}",
        session.context()
    );

    let pids: Vec<u64> = project
        .starts()
        .iter()
        .map(|start| u64::try_from(start.pid).expect("a positive pid"))
        .collect();
    assert_eq!(pids.len(), 2, "{}", session.context());
    let spawns = named(&events, "spawn");
    let readies = named(&events, "ready");
    let finishes = named(&events, "build_finish");
    let changes = named(&events, "change");
    assert_eq!(spawns[0]["pid"], pids[0]);
    assert_eq!(spawns[1]["pid"], pids[1]);
    assert_eq!(readies[0]["pid"], pids[0]);
    assert!(readies[0]["replaced_pid"].is_null());
    assert_eq!(readies[1]["pid"], pids[1]);
    assert_eq!(readies[1]["replaced_pid"], pids[0]);
    assert_eq!(finishes[0]["success"], true);
    assert_eq!(finishes[1]["success"], true);
    assert_eq!(finishes[2]["success"], false);
    assert_eq!(
        finishes[2]["serving_pid"], pids[1],
        "a failed build says what still serves"
    );
    assert!(
        changes.iter().all(|change| {
            change["paths"].as_array().is_some_and(|paths| {
                paths
                    .iter()
                    .any(|p| p.as_str().is_some_and(|p| p.ends_with("src/version.txt")))
            })
        }),
        "each change names the file{}",
        session.context()
    );
    assert_eq!(named(&events, "stop")[0]["pid"], pids[1]);
    assert_eq!(
        named(&events, "build_start")[0]["command"],
        "! grep -q FAIL src/version.txt"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, a message that says where, nothing started

#[test]
fn a_malformed_air_toml_names_the_file_and_line() {
    let project = go_project(free_port()).file(
        ".air.toml",
        "[build]\ncmd = \"go build -o ./tmp/main .\"\ndelay = 100ms\n",
    );
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &[".air.toml:3:"]);
    project.wait_no_processes();
    assert!(!in_project(&project, "tmp").exists(), "nothing was built");
}

#[test]
fn an_air_key_of_the_wrong_type_names_the_file_and_line() {
    let project = go_project(free_port()).file(
        ".air.toml",
        "root = \".\"\n\n[build]\ncmd = \"go build -o ./tmp/main .\"\ndelay = \"soon\"\n",
    );
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &[".air.toml:5:", "soon"]);
    project.wait_no_processes();
}

fn cargo_package(extra: &str) -> String {
    format!("[package]\nname = \"multi\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}")
}

#[test]
fn a_cargo_project_with_two_binaries_asks_for_bin() {
    let project = Project::new()
        .file(
            "Cargo.toml",
            &cargo_package(
                "\n[[bin]]\nname = \"api\"\npath = \"src/bin/api.rs\"\n\n\
                 [[bin]]\nname = \"worker\"\npath = \"src/bin/worker.rs\"\n",
            ),
        )
        .file("src/bin/api.rs", "fn main() {}\n")
        .file("src/bin/worker.rs", "fn main() {}\n");

    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["api", "worker", "--bin"]);
    project
        .run_to_exit(&["--bin", "nope"])
        .assert_fails_with(2, &["nope", "api", "worker"]);
    project.wait_no_processes();
    assert!(
        !in_project(&project, "target").exists(),
        "nothing was built"
    );
}

#[test]
fn a_cargo_workspace_with_only_a_library_says_there_is_no_binary() {
    let project = Project::new()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"shapes\"]\nresolver = \"2\"\n",
        )
        .file(
            "shapes/Cargo.toml",
            "[package]\nname = \"shapes\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file("shapes/src/lib.rs", "pub fn area() -> u32 { 1 }\n");

    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["no binary"]);
    project.wait_no_processes();
    assert!(
        !in_project(&project, "target").exists(),
        "nothing was built"
    );
}

// ---------------------------------------------------------------------------------------------
// Small subcommands

#[test]
fn completions_and_version_print_and_exit_zero() {
    let project = Project::new();

    let mut session = project.start(&["completions", "bash"]);
    assert_eq!(session.wait_exit().code(), Some(0), "{}", session.context());
    let script = session.stdout();
    assert!(
        script.contains("reload") && script.contains("complete"),
        "a bash completion script for reload:\n{script}"
    );
    drop(session);

    let mut session = project.start(&["--version"]);
    assert_eq!(session.wait_exit().code(), Some(0), "{}", session.context());
    assert_eq!(
        session.stdout().trim(),
        format!("reload {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn reload_init_in_a_cargo_project_names_the_build_and_the_binary_and_a_bare_reload_runs_it() {
    let project = quiet_project()
        .file(
            "Cargo.toml",
            &cargo_package("[[bin]]\nname = \"api\"\npath = \"src/main.rs\"\n"),
        )
        .file(
            "src/main.rs",
            "fn main() {\n    std::process::Command::new(\"./app.sh\").status().unwrap();\n}\n",
        );
    let init = project.run_to_exit(&["init"]);
    assert_eq!(init.status.code(), Some(0), "{}", init.stderr);
    let written =
        std::fs::read_to_string(in_project(&project, "reload.toml")).expect("reload.toml");
    assert!(
        written.contains(r#"cmd = "cargo build --bin api""#),
        "{written}"
    );
    assert!(
        written.contains(r#"cmd = ["./target/debug/api"]"#),
        "{written}"
    );

    let session = project.start(&[]);
    session.wait_until_within(
        Duration::from_secs(120),
        "the binary to start the app",
        || project.starts().first().map(|start| start.version.clone()),
    );
}

#[test]
fn clicolor_force_colours_the_status_lines_even_through_a_pipe() {
    // The colour choice is anstream's: NO_COLOR, CLICOLOR and CLICOLOR_FORCE as everyone reads
    // them. The harness sets NO_COLOR=1; an empty NO_COLOR is unset for the convention.
    let project = Project::new().file("src/a.txt", "1\n");
    let session = project.start_with_env(
        &["-w", "src", "-b", "", "--", "sleep", "2000"],
        &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")],
    );
    session.wait_for_stderr("started (pid");
    assert!(
        session.stderr().contains("\x1b[32m[reload]"),
        "a green [reload] prefix{}",
        session.context()
    );
}

#[test]
fn an_error_wrapped_in_a_terminal_hyperlink_is_still_counted() {
    // Compilers wrap paths in OSC 8 links (`\e]8;;URL\e\\text\e]8;;\e\\`); the whole escape
    // must go before the line is read as an error.
    let project = Project::new().file("src/a.txt", "1\n").file(
        "build.sh",
        "printf '\\033]8;;file:///p/main.rs\\033\\\\error[E0425]: cannot find value\\033]8;;\\033\\\\\\n' >&2\n\
         exit 1\n",
    );
    let session = project.start(&["-w", "src", "-b", "sh build.sh", "--", "sleep", "2000"]);
    session.wait_for_stderr("build failed (exit 1)");
    assert!(
        session.stderr().contains("build failed (exit 1): 1 error;"),
        "the linked error is counted{}",
        session.context()
    );
}

/// `cargo install reload-dev` builds what the package holds, which Cargo.toml's `include`
/// chooses: every file the sources pull in with `include_str!`/`include_bytes!` (client.js)
/// must be in it, or the published crate does not compile.
#[test]
fn the_package_holds_every_file_the_sources_include() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo package --list");
    assert!(output.status.success(), "cargo package --list: {output:?}");
    let listed = String::from_utf8_lossy(&output.stdout);
    let listed: Vec<&str> = listed.lines().collect();
    let mut included = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (at, _) in text
                .match_indices("include_str!(\"")
                .chain(text.match_indices("include_bytes!(\""))
            {
                let rest = &text[at..];
                let start = rest.find('"').expect("a quote") + 1;
                let name = rest[start..].split('"').next().expect("a closing quote");
                let file = path.parent().expect("a directory").join(name);
                let relative = file.strip_prefix(root).expect("inside the crate");
                included.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    assert!(
        included.iter().any(|file| file.ends_with("client.js")),
        "found {included:?}"
    );
    for file in &included {
        assert!(
            listed.contains(&file.as_str()),
            "{file} is included by the sources but not packaged: add it to `include` in \
             Cargo.toml"
        );
    }
}

/// The README's install line builds what the tests ran with: `--locked` refuses to resolve
/// the dependencies again, and the lock file satisfies the manifest as it is, so the line
/// neither fails nor installs other versions.
#[test]
fn the_readmes_install_line_builds_the_tested_lock_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let install = readme
        .split("## Install and run")
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.lines().next())
        .expect("README.md has an Install and run section with a sh block");
    assert_eq!(install, "cargo install --locked --path .");
    // `cargo tree` resolves for this machine only, so it needs nothing it has not downloaded.
    let output = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--depth", "0"])
        .current_dir(root)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "Cargo.lock does not satisfy Cargo.toml, so `{install}` would fail: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
