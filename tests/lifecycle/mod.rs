//! The life of every process reload starts: a stop drains the whole group, a build is over when
//! its process exits, nothing a build, post command or app leaves behind outlives its stage, and
//! what reload says about it is true.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::needs::{Tool, require};
use crate::support::{Project, Session, alive, free_port};
use crate::{APP, builds, served};

/// A server run under `sh` (a string `[run] cmd` whose shell cannot exec its last command,
/// because something follows it) that takes half a second to shut down on SIGTERM and logs
/// `done` when it has: what an Express or Flask app with a shutdown handler does.
const DRAINING_SERVER: &str = r#"import os, signal, sys, time
def stop(signum, frame):
    time.sleep(0.5)
    with open("../scratch/server.log", "a") as log:
        log.write(f"done pid={os.getpid()}\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open("../scratch/server.log", "a") as log:
    version = open("src/version.txt").read().strip()
    log.write(f"start pid={os.getpid()} version={version}\n")
while True:
    time.sleep(1)
"#;

fn draining_project() -> Project {
    Project::new()
        .file("src/version.txt", "v1\n")
        .file("server.py", DRAINING_SERVER)
        .config(
            "[watch]\npaths = [\"src\"]\n[build]\ncmd = \"\"\n\
             [run]\ncmd = \"python3 server.py; echo the server exited\"\nstop_timeout = \"30s\"\n",
        )
}

/// reload watching `src/`, with `build` as the build command and a server that sleeps.
fn start_with_build<'p>(project: &'p Project, build: &str) -> Session<'p> {
    project.start(&["-w", "src", "-b", build, "--", "sleep", "2000"])
}

#[test]
fn a_restart_and_an_exit_wait_for_a_server_under_sh_to_finish_its_shutdown() {
    require(Tool::Python3);
    let project = draining_project();
    let mut session = project.start(&[]);
    session.wait_for("the v1 server to start", || {
        project
            .scratch_lines("server.log")
            .iter()
            .any(|l| l.contains("version=v1"))
    });

    // One write can reach reload as two changes (the truncation and the data, when the
    // writer is descheduled in between for longer than the quiet window), so v2 may be
    // restarted once more: the checks hold for every restart, however many there are.
    project.write("src/version.txt", "v2\n");
    session.wait_for("the v2 server to start", || {
        project
            .scratch_lines("server.log")
            .iter()
            .any(|l| l.contains("version=v2"))
    });
    session.terminate();
    let log = project.scratch_lines("server.log");
    assert!(
        log.first().is_some_and(|l| l.contains("version=v1")),
        "the v1 server started first: {log:?}{}",
        session.context()
    );
    for (previous, next) in log.iter().zip(log.iter().skip(1)) {
        assert!(
            !next.starts_with("start") || previous.starts_with("done"),
            "each server finished its shutdown before the next one started: {log:?}{}",
            session.context()
        );
    }
    // A server stopped before Python set up its handler logs neither line; every one that
    // logged its start finished its shutdown, the last one before reload exited.
    let pids = |prefix: &str| -> Vec<String> {
        log.iter()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("pid=")))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        pids("start"),
        pids("done"),
        "every server that started finished its shutdown, in order, before reload exited: \
         {log:?}{}",
        session.context()
    );
    let stderr = session.stderr();
    assert!(
        !stderr.contains("outside its process group") && !stderr.contains("killing"),
        "a member of the server's group is neither an escapee nor killed{}",
        session.context()
    );
    session.wait_no_processes();
}

#[test]
fn a_group_member_that_ignores_the_stop_signal_is_killed_after_the_stop_timeout() {
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .file(
            "stubborn.sh",
            "trap '' TERM\necho $$ > ../scratch/stubborn\nwhile :; do sleep 1; done\n",
        )
        .config(
            "[watch]\npaths = [\"src\"]\n[build]\ncmd = \"\"\n\
             [run]\ncmd = \"sh stubborn.sh; true\"\nstop_timeout = \"1s\"\n",
        );
    let mut session = project.start(&[]);
    let stubborn = session.wait_until("the stubborn server", || {
        project.scratch_pids("stubborn").first().copied()
    });
    session.track(stubborn);
    session.terminate();
    session.wait_dead("the member that ignored SIGTERM", stubborn);
    assert!(
        session.stderr().contains("did not stop within"),
        "the kill is reported{}",
        session.context()
    );
    session.wait_no_processes();
}

/// Starts a daemon that leaves the caller's process group (setsid) and holds its output open,
/// and returns only once it has left: killed before that, it would be a member of the group.
const DAEMON: &str = r#"marker=../scratch/daemon.$$
setsid sh -c "echo \$\$ > $marker; exec sleep 1000" &
until [ -s $marker ]; do sleep 0.01; done
cat $marker >> ../scratch/daemons
"#;

fn project_with_a_daemon() -> Project {
    Project::new()
        .file("src/a.txt", "1\n")
        .file("daemon.sh", DAEMON)
}

#[test]
fn a_build_that_leaves_a_daemon_holding_its_output_is_over_when_its_process_exits() {
    let project = project_with_a_daemon();
    let mut session = start_with_build(&project, "sh daemon.sh; echo built");
    session.wait_for_stderr("built in");
    session.wait_for_stderr("left running outside its process group by the build");
    let first = project.scratch_pids("daemons")[0];
    session.track(first);
    session.wait_dead("the first build's daemon", first);

    project.write("src/a.txt", "2\n");
    session.wait_for_stderr_count("built in", 2);
    session.wait_for_stderr_count("restarted (pid", 1);
    let second = project.scratch_pids("daemons")[1];
    session.track(second);

    session.signal(Signal::SIGINT);
    let status = session.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", session.context());
    session.wait_dead("the second build's daemon", second);
    session.wait_no_processes();
}

#[test]
fn ctrl_c_ends_reload_after_a_build_left_a_daemon_on_its_output() {
    // The issue's own command line: the daemon may be killed with the build's group (before its
    // setsid) or swept after it; either way, reload exits and nothing is left.
    let project = Project::new().file("src/a.txt", "1\n");
    let mut session = start_with_build(&project, "setsid sleep 1000 & echo built");
    session.wait_for_stderr("started (pid");
    project.write("src/a.txt", "2\n");
    session.wait_for_stderr("restarted (pid");
    session.signal(Signal::SIGINT);
    assert_eq!(
        session.wait_exit().code(),
        Some(130),
        "{}",
        session.context()
    );
    session.wait_no_processes();
}

#[test]
fn a_build_whose_background_job_outlives_it_is_reported_at_once() {
    // `sleep 1000 &` stays in the build's group and holds its output: the build is still over
    // when the shell exits, and the sleep goes with the group.
    let project = Project::new().file("src/a.txt", "1\n");
    let mut session = start_with_build(
        &project,
        "sleep 1000 & echo $! >> ../scratch/jobs; echo built",
    );
    session.wait_for_stderr("started (pid");
    let job = project.scratch_pids("jobs")[0];
    session.track(job);
    session.wait_dead("the build's background job", job);
    assert!(
        !session.stderr().contains("outside its process group"),
        "a member of the build's group is not an escapee{}",
        session.context()
    );
    session.terminate();
    session.wait_no_processes();
}

#[test]
fn in_build_only_mode_a_builds_daemon_does_not_survive() {
    let project = project_with_a_daemon();
    let mut session = project.start(&["-w", "src", "-b", "sh daemon.sh; echo built"]);
    session.wait_for_stderr("built in");
    let daemon = session.wait_until("the daemon's pid", || {
        project.scratch_pids("daemons").first().copied()
    });
    session.track(daemon);
    session.signal(Signal::SIGINT);
    assert_eq!(
        session.wait_exit().code(),
        Some(130),
        "{}",
        session.context()
    );
    session.wait_dead("the build's daemon", daemon);
    session.wait_no_processes();
}

#[test]
fn a_post_commands_daemon_is_killed_and_reload_exits_at_once() {
    let project = project_with_a_daemon();
    let mut session = project.start(&[
        "-w",
        "src",
        "-b",
        "",
        "--post",
        "sh daemon.sh; echo post-started",
        "--",
        "sleep",
        "2000",
    ]);
    session.wait_for_stderr("started (pid");
    session.signal(Signal::SIGINT);
    // Within the harness's deadline, far less than the post command timeout of 60 s.
    let status = session.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", session.context());
    let daemon = project.scratch_pids("daemons")[0];
    session.track(daemon);
    assert!(
        !alive(daemon),
        "the post command's daemon is gone{}",
        session.context()
    );
    assert!(
        session
            .stderr()
            .contains("left running outside its process group by post command `sh daemon.sh"),
        "the daemon is attributed to the post command{}",
        session.context()
    );
    assert!(
        !session.stderr().contains("still ran after"),
        "{}",
        session.context()
    );
    session.wait_no_processes();
}

/// A server whose helper leaves its group (setsid) and stays, and starts a second helper that
/// leaves the helper's group in turn.
const APP_WITH_A_CHAIN_OF_DAEMONS: &str = r#"#!/bin/sh
trap 'exit 0' TERM
setsid sh -c 'setsid sleep 1000 & echo $! >> ../scratch/daemons; wait' &
echo $! >> ../scratch/daemons
echo "start pid=$$ version=$(cat build/version.txt)" >> ../scratch/app.log
wait
"#;

fn assert_a_chain_of_daemons_is_gone_after(signal: Signal, code: i32) {
    let project = served(APP_WITH_A_CHAIN_OF_DAEMONS);
    let mut session = project.start(&[]);
    session.wait_for_start("v1");
    let daemons = session.wait_until("both daemons", || {
        let pids = project.scratch_pids("daemons");
        (pids.len() == 2).then_some(pids)
    });
    for &pid in &daemons {
        session.track(pid);
    }
    session.signal(signal);
    assert_eq!(
        session.wait_exit().code(),
        Some(code),
        "{}",
        session.context()
    );
    for &pid in &daemons {
        assert!(!alive(pid), "daemon {pid} is gone{}", session.context());
    }
    session.wait_no_processes();
}

#[test]
fn a_daemon_of_a_daemon_is_gone_after_ctrl_c() {
    assert_a_chain_of_daemons_is_gone_after(Signal::SIGINT, 130);
}

#[test]
fn a_daemon_of_a_daemon_is_gone_after_sigterm() {
    assert_a_chain_of_daemons_is_gone_after(Signal::SIGTERM, 143);
}

#[test]
fn a_cancelled_build_is_not_reported_as_leaving_processes_behind() {
    let project = served(APP);
    let session = project.start(&[]);
    session.wait_for_start("v1");
    // The stand-in build hangs on a background sleep: the change after it cancels the build,
    // and killing its group leaves exited processes for reload to reap.
    project.write("src/version.txt", "v2-HANG\n");
    session.wait_until("the v2 build to hang", || {
        project.scratch_pids("build-sleeps").first().copied()
    });
    project.write("src/version.txt", "v3\n");
    session.wait_for_start("v3");
    session.wait_for_stderr("cancelled the build");
    assert_eq!(builds(&project), ["v1", "v2-HANG", "v3"]);
    assert!(
        !session.stderr().contains("outside its process group"),
        "nothing escaped: the cancelled build's processes were in its group{}",
        session.context()
    );
}

#[test]
fn a_server_that_keeps_dying_at_once_is_restarted_with_a_growing_delay() {
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .executable(
            "app.sh",
            "#!/bin/sh\necho start >> ../scratch/starts\nexit 1\n",
        )
        .config(
            "[watch]\npaths = [\"src\"]\n[build]\ncmd = \"\"\n[run]\ncmd = [\"./app.sh\"]\n\
             restart_on_exit = true\nrestart_delay = \"0s\"\n",
        );
    let session = project.start(&[]);
    session.wait_for_stderr("keeps exiting");
    // Without a back-off, `0s` restarts it hundreds of times a second. With one, the delays
    // add up to 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s: about seven starts in four seconds. A slow
    // machine can only make fewer.
    let before = project.scratch_lines("starts").len();
    session.assert_holds_for(Duration::from_secs(4), "at most a few restarts", || {
        project.scratch_lines("starts").len() <= before + 10
    });
    assert_eq!(
        session.stderr().matches("keeps exiting").count(),
        1,
        "the back-off is announced once{}",
        session.context()
    );
    // A change restarts it at once, whatever the back-off had reached.
    let count = project.scratch_lines("starts").len();
    project.write("src/version.txt", "v2\n");
    session.wait_for("a start after the change", || {
        project.scratch_lines("starts").len() > count
    });
}

#[test]
fn a_build_that_prints_without_newlines_does_not_grow_reload() {
    let project = Project::new().file("src/a.txt", "1\n");
    // 100 MB on one line (on stdout: the harness polls stderr, which stays small).
    let session = project.start(&[
        "-w",
        "src",
        "-b",
        "head -c 100000000 /dev/zero | tr '\\0' x; echo",
    ]);
    session.wait_for_stderr("built in");
    let status = std::fs::read_to_string(format!("/proc/{}/status", session.pid()))
        .expect("reload's /proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    assert!(
        peak_kib < 64 * 1024,
        "reload's peak memory stays small: {peak_kib} KiB"
    );
}

#[test]
fn a_script_whose_interpreter_is_missing_is_reported_as_such() {
    let project = Project::new()
        .file("src/a.txt", "1\n")
        .executable("app.sh", "#!/no/such/interpreter\necho hi\n");
    let session = project.start(&["-w", "src", "-b", "", "--", "./app.sh"]);
    session.wait_for_stderr("/no/such/interpreter");
    assert!(
        session.stderr().contains("names the interpreter"),
        "{}",
        session.context()
    );
}

#[test]
fn with_listen_a_server_that_binds_the_port_itself_is_told_to_take_fd_3() {
    require(Tool::Python3);
    let port = free_port();
    let project = Project::new().file("src/a.txt", "1\n").file(
        "server.py",
        &format!("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\n"),
    );
    let session = project.start(&[
        "-w",
        "src",
        "-b",
        "",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--",
        "python3",
        "server.py",
    ]);
    session.wait_for_stderr("fd 3");
    let stderr = session.stderr();
    assert!(
        stderr.contains("Address already in use") && stderr.contains("address already in use"),
        "the server's own error and reload's explanation{}",
        session.context()
    );
}

/// Nothing could be started: the last line reload prints says what to do, and stays last.
#[track_caller]
fn assert_what_to_do_is_the_last_line(session: &Session) {
    session.wait_for_stderr("fix it and save");
    let last_line = || {
        session
            .stderr()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    session.assert_holds_for(
        Duration::from_millis(500),
        "what to do stays the last line",
        || last_line().contains("fix it and save"),
    );
}

#[test]
fn a_missing_program_at_the_first_start_says_what_to_fix_last_and_a_fix_starts_it() {
    let project = Project::new().file("src/a.txt", "1\n");
    let session = project.start(&["-w", "src", "-b", "", "--", "./bin/server"]);
    assert_what_to_do_is_the_last_line(&session);
    assert!(
        session.stderr().contains("./bin/server"),
        "the program is named{}",
        session.context()
    );
    project.write_executable(
        "bin/server",
        "#!/bin/sh\necho started >> ../scratch/starts\nexec sleep 1000\n",
    );
    project.write("src/a.txt", "2\n");
    session.wait_for("the server to start once it exists", || {
        !project.scratch_lines("starts").is_empty()
    });
}

#[test]
fn ctrl_c_during_a_build_whose_daemon_holds_its_output_ends_reload() {
    // The build hangs, and a daemon that left its group holds its output open: cancelling it
    // must not wait for that output to end.
    let project = project_with_a_daemon();
    let mut session = start_with_build(&project, "sh daemon.sh; sleep 1000");
    let daemon = session.wait_until("the daemon's pid", || {
        project.scratch_pids("daemons").first().copied()
    });
    session.track(daemon);
    session.signal(Signal::SIGINT);
    assert_eq!(
        session.wait_exit().code(),
        Some(130),
        "{}",
        session.context()
    );
    session.wait_dead("the build's daemon", daemon);
    session.wait_no_processes();
}

#[test]
fn a_bad_env_file_at_the_first_start_says_what_to_fix_last_and_a_fix_starts_the_app() {
    let project = Project::new()
        .file("src/a.txt", "1\n")
        .file(".env", "NOT A PAIR\n")
        .executable(
            "app.sh",
            "#!/bin/sh\necho \"start GREETING=$GREETING\" >> ../scratch/starts\nexec sleep 1000\n",
        )
        // Only .txt files count as changes: the env file counts all the same.
        .config(
            "[watch]\next = [\"txt\"]\n[build]\ncmd = \"\"\n\
             [run]\ncmd = [\"./app.sh\"]\nenv_file = \".env\"\n",
        );
    let session = project.start(&[]);
    assert_what_to_do_is_the_last_line(&session);
    project.write(".env", "GREETING=hello\n");
    session.wait_for("the app to start with the fixed env file", || {
        project
            .scratch_lines("starts")
            .iter()
            .any(|l| l == "start GREETING=hello")
    });
}

#[test]
fn with_three_listeners_a_start_that_cannot_exec_is_a_clear_failure_and_the_old_server_serves() {
    // A copy of reload that the test removes while it runs, as `cargo install` replaces the
    // binary under a running reload: the socket-activation shim (reload itself) can no longer
    // be executed. With three sockets to place at fds 3, 4 and 5, placing them before exec
    // could land on std's exec-error pipe and make the failed exec look like a start.
    let project = Project::new().file("src/a.txt", "1\n");
    let copy = project.scratch("reload-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_reload"), &copy).expect("copy reload");
    let ports = [free_port(), free_port(), free_port()];
    let listen: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let session = project.start_copy(
        &copy,
        &[
            "-w", "src", "-b", "", "--listen", &listen[0], "--listen", &listen[1], "--listen",
            &listen[2], "--", "sleep", "1000",
        ],
    );
    session.wait_for_stderr("started (pid");
    let old = session.wait_until("the first server's pid", || {
        let stderr = session.stderr();
        let rest = stderr.split("started (pid ").nth(1)?;
        rest.split(')').next()?.parse::<i32>().ok()
    });
    std::fs::remove_file(&copy).expect("remove the copy");

    project.write("src/a.txt", "2\n");
    session.wait_for_stderr("was removed or replaced while reload ran");
    assert!(alive(old), "the old server still runs{}", session.context());
    assert!(
        !session.stderr().contains("restarted (pid"),
        "no start is reported{}",
        session.context()
    );
}

#[test]
fn ready_after_the_change_counts_from_the_first_change_of_the_burst() {
    let project = Project::new().file("src/a.txt", "1\n");
    let session = project.start(&[
        "-w",
        "src",
        "-b",
        "",
        "--debounce",
        "1500ms",
        "--log-format",
        "json",
        "--",
        "sleep",
        "1000",
    ]);
    session.wait_for_stderr("\"event\":\"ready\"");
    project.write("src/a.txt", "2\n");
    let since_change = session.wait_until("a ready event after the change", || {
        session
            .stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["event"] == "ready")
            .find_map(|event| event["since_change_ms"].as_u64())
    });
    // The quiet window alone is 1.5 s; a slow machine can only add to it.
    assert!(
        since_change >= 1500,
        "since_change_ms {since_change} includes the quiet window{}",
        session.context()
    );
}

#[test]
fn an_env_file_is_read_by_the_common_dotenv_rules() {
    let project = Project::new()
        .file("src/a.txt", "1\n")
        .file(
            ".env",
            "WINDOWS=\"C:\\\\new\"\nNOTED=\"a b\" # a note\nexport PLAIN=yes\nLITERAL='$HOME \\n'\n",
        )
        .executable(
            "app.sh",
            "#!/bin/sh\nprintf '%s|%s|%s|%s\\n' \"$WINDOWS\" \"$NOTED\" \"$PLAIN\" \"$LITERAL\" \
             > ../scratch/env\nexec sleep 1000\n",
        );
    let session = project.start(&[
        "-w",
        "src",
        "-b",
        "",
        "--env-file",
        ".env",
        "--",
        "./app.sh",
    ]);
    let line = session.wait_until("the app's environment", || {
        project.scratch_lines("env").first().cloned()
    });
    assert_eq!(line, r"C:\new|a b|yes|$HOME \n", "{}", session.context());
}

/// A server that, asked to stop, logs it and then finishes its shutdown only once the test
/// creates `../scratch/release`: the test decides how long a stop lasts, not a sleep.
const SERVER_HELD_IN_ITS_STOP: &str = r#"import os, signal, sys, time
def log(line):
    with open("../scratch/server.log", "a") as f:
        f.write(line + "\n")
def stop(signum, frame):
    log(f"stopping pid={os.getpid()}")
    deadline = time.time() + 120
    while not os.path.exists("../scratch/release") and time.time() < deadline:
        time.sleep(0.01)
    log(f"done pid={os.getpid()}")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
log(f"start pid={os.getpid()} version={open('src/version.txt').read().strip()}")
while True:
    time.sleep(1)
"#;

#[test]
fn a_change_while_the_old_server_stops_starts_only_the_newest_version() {
    require(Tool::Python3);
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .file("server.py", SERVER_HELD_IN_ITS_STOP)
        .config(
            "[watch]\npaths = [\"src\"]\n[build]\ncmd = \"\"\n\
             [run]\ncmd = [\"python3\", \"server.py\"]\nstop_timeout = \"10m\"\n",
        );
    let mut session = project.start(&[]);
    let starts = || -> Vec<String> {
        project
            .scratch_lines("server.log")
            .into_iter()
            .filter(|line| line.starts_with("start"))
            .collect()
    };
    session.wait_for("the v1 server to start", || starts().len() == 1);
    project.write("src/version.txt", "v2\n");
    session.wait_for("the v1 server to be asked to stop", || {
        project
            .scratch_lines("server.log")
            .iter()
            .any(|line| line.starts_with("stopping"))
    });
    // The loop takes events while the old server drains: this change makes v2 stale.
    project.write("src/version.txt", "v3\n");
    session.wait_for_stderr_count("changed:", 2);
    std::fs::write(project.scratch("release"), "").expect("release the stop");
    session.wait_for("the v3 server to start", || {
        starts()
            .last()
            .is_some_and(|line| line.ends_with("version=v3"))
    });
    let versions: Vec<String> = starts()
        .iter()
        .map(|line| line.rsplit('=').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        versions,
        ["v1", "v3"],
        "no server is started from the sources of v2{}",
        session.context()
    );
    session.terminate();
    session.wait_no_processes();
}

#[test]
fn with_ready_tcp_a_new_server_counts_as_started_once_its_port_accepts() {
    require(Tool::Python3);
    let port = free_port();
    // It binds its port only after 300 ms: ready must wait for that, not for the spawn.
    let project = Project::new().file("src/version.txt", "v1\n").file(
        "server.py",
        "import socket, time\ntime.sleep(0.3)\ns = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', int(__import__('os').environ['PORT'])))\ns.listen()\n\
         open('../scratch/bound', 'w').close()\nwhile True:\n    s.accept()[0].close()\n",
    );
    let port_env = format!("PORT={port}");
    let ready = format!("tcp:{port}");
    let session = project.start_with_env(
        &[
            "-w",
            "src",
            "-b",
            "",
            "--ready",
            &ready,
            "--",
            "python3",
            "server.py",
        ],
        &[("PORT", &port.to_string())],
    );
    session.wait_for_stderr("started (pid");
    assert!(
        project.scratch("bound").exists(),
        "reported started only once the port was bound ({port_env}){}",
        session.context()
    );
    std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|err| panic!("the port accepts: {err}{}", session.context()));
}

#[test]
fn a_build_tool_without_its_execute_bit_earlier_on_path_is_skipped_for_the_one_after_it() {
    // The lookup is the one supervise uses: only an executable file counts, as for execvp.
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .file(
            "shadow/tool",
            "#!/bin/sh\necho wrong tool > ../scratch/ran\n",
        )
        .executable(
            "tools/tool",
            "#!/bin/sh\necho right tool > ../scratch/ran\n",
        );
    let path = format!(
        "{}:{}:{}",
        project.path("shadow").display(),
        project.path("tools").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let session = project.start_with_env(
        &["-w", "src", "-b", "tool", "--", "sleep", "2000"],
        &[("PATH", &path)],
    );
    session.wait_for_stderr("started (pid");
    assert_eq!(
        project.scratch_lines("ran"),
        ["right tool"],
        "the executable tool ran{}",
        session.context()
    );
}

#[test]
fn a_server_that_exits_during_a_build_that_fails_runs_again_only_after_the_failure() {
    // With restart_on_exit, a server that dies during a build comes back: from the last good
    // build once this one has failed, never in the middle of it.
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .executable(
            "app.sh",
            "#!/bin/sh\necho $$ > ../scratch/app.pid\necho start >> ../scratch/starts\n\
             exec sleep 1000\n",
        )
        .file(
            "build.sh",
            "case \"$(cat src/version.txt)\" in *FAIL*)\n\
             kill \"$(cat ../scratch/app.pid)\"; sleep 1; exit 1 ;;\nesac\n",
        )
        .config(
            "[watch]\npaths = [\"src\"]\n[build]\ncmd = \"sh build.sh\"\n\
             [run]\ncmd = [\"./app.sh\"]\nrestart_on_exit = true\nrestart_delay = \"0s\"\n",
        );
    let session = project.start(&[]);
    // reload says "started" once the server is spawned, which can be before the app has run a
    // line: the build kills the pid the app wrote, so it must be there before the change.
    session.wait_for("the app to write its pid", || {
        project.scratch_lines("starts").len() == 1 && !project.scratch_pids("app.pid").is_empty()
    });
    project.write("src/version.txt", "v2 FAIL\n");
    session.wait_for("the app to start again", || {
        project.scratch_lines("starts").len() == 2
    });
    // The app can log its second start before reload prints that start: wait for the line
    // itself, not for the first start's line, which is already there.
    session.wait_for_stderr_count("started (pid", 2);
    let stderr = session.stderr();
    let failed = stderr.find("build failed").unwrap_or(usize::MAX);
    let restarted = stderr.rfind("started (pid").unwrap_or_default();
    assert!(
        failed < restarted,
        "the server starts again after the build failed, not during it{}",
        session.context()
    );
}

#[test]
fn a_second_ctrl_c_while_a_server_ignores_the_first_kills_it_at_once() {
    // The stop timeout is ten minutes: only the second Ctrl-C, an event like any other while
    // the stop lasts, can end this within the harness's deadline.
    let project = Project::new().file("src/a.txt", "1\n").executable(
        "app.sh",
        "#!/bin/sh\ntrap 'echo term >> ../scratch/app.log' TERM INT\n\
         echo start >> ../scratch/app.log\nwhile :; do sleep 0.05; done\n",
    );
    let mut session = project.start(&[
        "-w",
        "src",
        "-b",
        "",
        "--stop-timeout",
        "10m",
        "--",
        "./app.sh",
    ]);
    session.wait_for("the app to start", || {
        project
            .scratch_lines("app.log")
            .contains(&"start".to_owned())
    });
    session.signal(Signal::SIGINT);
    session.wait_for("the app to be asked to stop", || {
        project
            .scratch_lines("app.log")
            .contains(&"term".to_owned())
    });
    session.signal(Signal::SIGINT);
    let status = session.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", session.context());
    session.wait_for_stderr("stopping now");
    assert!(
        session.stderr().contains("killing app (pid"),
        "says it kills the app{}",
        session.context()
    );
    session.wait_no_processes();
}
