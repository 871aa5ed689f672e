//! reload's behaviour, pinned end to end: each test runs the real binary on a throw-away project
//! and watches what a user would see: which version of the app is running, which processes
//! exist, what the server answers, how reload exits.
//!
//! Most tests use one stand-in project (see [`served`]): `build.sh` "compiles" src/version.txt
//! into build/version.txt, and `app.sh` is the server. Both leave traces in `../scratch/`,
//! outside the watched tree.

mod architecture;
mod config_errors;
mod follow;
mod init_cmd;
mod lifecycle;
mod needs;
mod proxy;
mod python;
mod sockets;
mod support;
mod ux;
mod watching;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::needs::{Tool, require};
use support::{AppStart, CARGO_DEADLINE, Project, Session, alive, http_get};

/// The stand-in compiler. A version containing FAIL does not compile; one containing HANG
/// never finishes (it waits on a background sleep, which only killing its group ends).
const BUILD: &str = r#"v=$(cat src/version.txt)
echo "begin $v" >> ../scratch/builds.log
case "$v" in
*FAIL*)
    echo "error: $v does not compile" >&2
    exit 1 ;;
*HANG*)
    sleep 1000 &
    echo $! >> ../scratch/build-sleeps
    wait ;;
esac
mkdir -p build
echo "$v" > build/version.txt
echo "end $v" >> ../scratch/builds.log
"#;

/// The stand-in server: starts a background grandchild, logs its start, and waits. On SIGTERM
/// or SIGINT it logs which signal stopped it and exits 0.
const APP: &str = r#"#!/bin/sh
trap 'echo "stop pid=$$ signal=TERM" >> ../scratch/app.log; exit 0' TERM
trap 'echo "stop pid=$$ signal=INT" >> ../scratch/app.log; exit 0' INT
sleep 1000 &
echo $! >> ../scratch/grandchildren
echo "start pid=$$ version=$(cat build/version.txt) RELOAD=${RELOAD-unset} GREETING=${GREETING-unset}" >> ../scratch/app.log
wait
"#;

/// [`APP`], slow to stop: it logs its stop 300 ms after SIGTERM, just before it exits. Were a
/// new server started before the old one is gone, its start would be logged first.
const APP_SLOW_TO_STOP: &str = r#"#!/bin/sh
trap 'sleep 0.3; echo "stop pid=$$ signal=TERM" >> ../scratch/app.log; exit 0' TERM
sleep 1000 &
echo $! >> ../scratch/grandchildren
echo "start pid=$$ version=$(cat build/version.txt) RELOAD=${RELOAD-unset} GREETING=${GREETING-unset}" >> ../scratch/app.log
wait
"#;

/// A server that ignores SIGTERM (and so does its background grandchild). Killed, it cannot
/// log its own end, so each start logs which earlier starts are still alive (`older_alive`).
const APP_IGNORING_TERM: &str = r#"#!/bin/sh
trap '' TERM
sleep 1000 &
echo $! >> ../scratch/grandchildren
older=none
for pid in $(sed -n 's/^start pid=\([0-9]*\) .*/\1/p' ../scratch/app.log 2>/dev/null); do
    if kill -0 "$pid" 2>/dev/null; then older="$pid"; fi
done
echo "start pid=$$ version=$(cat build/version.txt) older_alive=$older" >> ../scratch/app.log
wait
"#;

/// A server that gives up right after starting.
const APP_EXITING_3: &str = r#"#!/bin/sh
echo "start pid=$$ version=$(cat build/version.txt)" >> ../scratch/app.log
exit 3
"#;

const CONFIG: &str = r#"
[watch]
paths = ["src"]

[build]
cmd = "sh build.sh"

[run]
cmd = ["./app.sh"]
env = { GREETING = "hello" }
"#;

/// The stand-in project at version v1, with `app` as its server.
fn served(app: &str) -> Project {
    Project::new()
        .file("src/version.txt", "v1\n")
        .file("build.sh", BUILD)
        .executable("app.sh", app)
        .config(CONFIG)
}

/// The version of every build that began, in order.
fn builds(project: &Project) -> Vec<String> {
    project
        .scratch_lines("builds.log")
        .iter()
        .filter_map(|line| line.strip_prefix("begin ").map(str::to_owned))
        .collect()
}

fn versions(starts: &[AppStart]) -> Vec<&str> {
    starts.iter().map(|start| start.version.as_str()).collect()
}

fn stopped_by(project: &Project, pid: i32) -> Option<String> {
    let prefix = format!("stop pid={pid} signal=");
    project
        .scratch_lines("app.log")
        .iter()
        .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
}

/// The app that started as `old` logged its stop before the one that started as `new` logged
/// its start: the old server was stopped before the new one started, not merely by the time
/// the test looked.
#[track_caller]
fn assert_stopped_before_started(session: &Session, project: &Project, old: i32, new: i32) {
    let log = project.scratch_lines("app.log");
    let line = |prefix: String| log.iter().position(|line| line.starts_with(&prefix));
    let stopped = line(format!("stop pid={old} "));
    let started = line(format!("start pid={new} "));
    assert!(
        matches!((stopped, started), (Some(stop), Some(start)) if stop < start),
        "the old app (pid {old}) logs its stop before the new one (pid {new}) starts{}",
        session.context()
    );
}

#[track_caller]
fn only_grandchild(session: &Session, project: &Project) -> i32 {
    let pids = project.scratch_pids("grandchildren");
    assert_eq!(
        pids.len(),
        1,
        "expected one background grandchild{}",
        session.context()
    );
    session.track(pids[0]);
    pids[0]
}

// ---------------------------------------------------------------------------------------------
// The dev loop

#[test]
fn a_change_rebuilds_and_restarts_the_app_with_reload_and_run_env() {
    let project = served(APP_SLOW_TO_STOP);
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    assert_eq!(first.field("RELOAD"), "1", "the app sees RELOAD=1");
    assert_eq!(first.field("GREETING"), "hello", "the app sees [run] env");

    project.write("src/version.txt", "v2\n");
    let second = session.wait_for_start("v2");

    assert_ne!(second.pid, first.pid);
    assert_stopped_before_started(&session, &project, first.pid, second.pid);
    assert_eq!(
        stopped_by(&project, first.pid).as_deref(),
        Some("TERM"),
        "the old app is asked to stop with SIGTERM{}",
        session.context()
    );
    assert_eq!(second.field("RELOAD"), "1");
    assert_eq!(second.field("GREETING"), "hello");
    assert_eq!(builds(&project), ["v1", "v2"]);
    session.wait_for_stderr("restarted");
}

#[test]
fn a_failing_build_keeps_the_old_app_running_until_a_fix() {
    let project = served(APP);
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");

    project.write("src/version.txt", "v2-FAIL\n");
    session.wait_for_stderr("build failed");
    assert!(
        session.stderr().contains("error: v2-FAIL does not compile"),
        "the build's own output is shown{}",
        session.context()
    );
    assert!(
        alive(first.pid),
        "the old app keeps serving{}",
        session.context()
    );
    assert_eq!(versions(&project.starts()), ["v1"]);

    project.write("src/version.txt", "v3\n");
    let fixed = session.wait_for_start("v3");
    assert_ne!(fixed.pid, first.pid);
    assert!(!alive(first.pid));
    assert_eq!(versions(&project.starts()), ["v1", "v3"]);
}

#[test]
fn a_failing_first_build_starts_nothing_and_waits_for_a_fix() {
    let project = served(APP).file("src/version.txt", "v1-FAIL\n");
    let session = project.start(&[]);
    session.wait_for_stderr("build failed");
    assert!(
        session.stderr().contains("error: v1-FAIL does not compile"),
        "{}",
        session.context()
    );
    assert!(
        session.exit_status().is_none(),
        "reload keeps watching{}",
        session.context()
    );
    assert!(project.starts().is_empty());

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(versions(&project.starts()), ["v2"]);
}

#[test]
fn edits_during_a_build_cancel_it_and_only_the_newest_version_runs() {
    let project = served(APP);
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");

    // A build that would never finish on its own...
    project.write("src/version.txt", "v2-HANG\n");
    let hung = session.wait_until("the v2 build to hang", || {
        project.scratch_pids("build-sleeps").first().copied()
    });
    session.track(hung);
    assert!(
        alive(first.pid),
        "the old app keeps serving during a build{}",
        session.context()
    );

    // ...is cancelled, process group and all, by the next edit; and so is the next one.
    project.write("src/version.txt", "v3-HANG\n");
    let hung_again = session.wait_until("the v3 build to hang", || {
        project.scratch_pids("build-sleeps").get(1).copied()
    });
    session.track(hung_again);
    session.wait_dead("the cancelled v2 build's background sleep", hung);
    assert!(
        alive(first.pid),
        "the old app keeps serving during a build{}",
        session.context()
    );

    project.write("src/version.txt", "v4\n");
    session.wait_for_start("v4");
    session.wait_dead("the cancelled v3 build's background sleep", hung_again);

    assert_eq!(
        versions(&project.starts()),
        ["v1", "v4"],
        "no cancelled build ever ran"
    );
    let log = project.scratch_lines("builds.log");
    assert!(
        !log.iter()
            .any(|line| line.starts_with("end ") && line.contains("HANG")),
        "a cancelled build never finished{}",
        session.context()
    );
}

#[test]
fn an_app_ignoring_sigterm_is_killed_after_the_stop_timeout_and_replaced() {
    let project = served(APP_IGNORING_TERM);
    let mut session = project.start(&["--stop-timeout", "1s"]);
    let first = session.wait_for_start("v1");
    let grandchild = only_grandchild(&session, &project);

    let saved = Instant::now();
    project.write("src/version.txt", "v2\n");
    let second = session.wait_for_start("v2");
    // A lower bound only: load can make it longer, never shorter.
    assert!(
        saved.elapsed() >= Duration::from_secs(1),
        "reload waited the stop timeout before killing{}",
        session.context()
    );
    assert_ne!(second.pid, first.pid);
    assert_eq!(
        second.field("older_alive"),
        "none",
        "the old app is gone before the new one starts{}",
        session.context()
    );
    session.wait_dead(
        "the old app's background grandchild (which ignores SIGTERM too)",
        grandchild,
    );

    session.terminate();
    session.wait_no_processes();
}

#[test]
fn the_stop_signal_is_configurable() {
    let project = served(APP);
    let session = project.start(&["--stop-signal", "INT"]);
    let first = session.wait_for_start("v1");
    // Background jobs of a non-interactive shell ignore SIGINT: only the final SIGKILL to the
    // group can end this one.
    let grandchild = only_grandchild(&session, &project);

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(
        stopped_by(&project, first.pid).as_deref(),
        Some("INT"),
        "{}",
        session.context()
    );
    session.wait_dead("the old app's background grandchild", grandchild);
}

#[test]
fn a_burst_of_a_thousand_writes_gives_exactly_one_build() {
    let project = served(APP);
    let debounce = Duration::from_secs(1);
    let session = project.start(&["--debounce", "1s"]);
    session.wait_for_start("v1");
    assert_eq!(builds(&project), ["v1"]);

    // A thousand writes to one file, spread evenly over three quiet windows (3 ms apart): a
    // window that every change extends ends only after the burst, while one that runs from the
    // first change (or from the first change to each path) fires in the middle of it.
    let burst = 3 * debounce;
    let started = Instant::now();
    let mut last_write = started;
    let mut longest_gap = Duration::ZERO;
    for i in 0..1000u32 {
        if let Some(early) = (burst * i / 1000).checked_sub(started.elapsed()) {
            std::thread::sleep(early);
        }
        project.write("src/version.txt", &format!("burst{i}\n"));
        longest_gap = longest_gap.max(last_write.elapsed());
        last_write = Instant::now();
    }

    session.wait_for_start("burst999");
    // A stall that held this test (or reload's threads) for a whole window would split the
    // burst, rightly. The gaps between writes are measured; half a window is left for reload's
    // side, and only a burst with no longer gap is judged.
    if longest_gap >= debounce / 2 {
        println!(
            "note: a stall of {longest_gap:?} between two writes could have split the burst; \
             not judged"
        );
        return;
    }
    session.assert_holds_for(
        Duration::from_secs(1),
        "no further build or restart",
        || builds(&project).len() == 2 && project.starts().len() == 2,
    );
    assert_eq!(
        builds(&project),
        ["v1", "burst999"],
        "{}",
        session.context()
    );
    assert_eq!(versions(&project.starts()), ["v1", "burst999"]);
}

#[test]
fn ignored_paths_and_editor_temporaries_do_not_trigger_a_build() {
    let project = Project::new()
        // A Cargo-looking root, so that target/ is ignored.
        .file(
            "Cargo.toml",
            "[package]\nname = \"looks-like-cargo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file("src/main.rs", "fn main() {}\n")
        .file(".git/HEAD", "ref: refs/heads/main\n")
        .file(".gitignore", "/build/\ngenerated/\n*.log\n")
        .file(".ignore", "notes.txt\n")
        .dir("sub")
        .file("src/version.txt", "v1\n")
        .file("build.sh", BUILD)
        .file("app.sh", APP)
        .config("[build]\ncmd = \"sh build.sh\"\n\n[run]\ncmd = [\"sh\", \"app.sh\"]\n");
    let session = project.start(&["-i", "logs"]);
    session.wait_for_start("v1");

    for path in [
        "generated/out.txt", // a .gitignore'd directory
        "server.log",        // a .gitignore glob
        "src/trace.log",     // ... at any depth
        "notes.txt",         // .ignore
        "logs/today.txt",    // --ignore logs
        "sub/logs/old.txt",  // ... at any depth
        "target/debug/app",  // the Cargo target directory
        ".git/index",        // git's own files
        ".git/objects/ab/cdef",
        "src/main.rs.swp", // editor temporaries
        "src/.main.rs.swx",
        "src/4913",
        "src/main.rs~",
        "src/.#main.rs",
        "src/main.rs___jb_tmp___",
        "src/scratch.tmp",
    ] {
        project.write(path, "ignored\n");
    }
    session.assert_holds_for(Duration::from_secs(1), "no build for ignored paths", || {
        builds(&project).len() == 1 && project.starts().len() == 1
    });

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(builds(&project), ["v1", "v2"]);
}

#[test]
fn atomic_rename_saves_and_sed_in_place_edits_rebuild_and_stay_watched() {
    let project = served(APP);
    let session = project.start(&[]);
    session.wait_for_start("v1");

    project.save_atomically("src/version.txt", "v2\n");
    session.wait_for_start("v2");

    project.run_tool("sed", &["-i", "s/v2/v3/", "src/version.txt"]);
    session.wait_for_start("v3");

    // The replaced file is still watched, by either kind of save, and by a plain write.
    project.save_atomically("src/version.txt", "v4\n");
    session.wait_for_start("v4");
    project.write("src/version.txt", "v5\n");
    session.wait_for_start("v5");

    assert_eq!(versions(&project.starts()), ["v1", "v2", "v3", "v4", "v5"]);
}

#[test]
fn an_app_exiting_by_itself_is_reported_and_started_again_on_the_next_change() {
    let project = served(APP_EXITING_3);
    let session = project.start(&[]);
    session.wait_for_start("v1");
    session.wait_for_stderr("exited with 3");
    session.assert_holds_for(
        Duration::from_secs(1),
        "no restart without a change",
        || project.starts().len() == 1,
    );
    assert!(
        session.exit_status().is_none(),
        "reload keeps watching{}",
        session.context()
    );

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    session.wait_for_stderr_count("exited with 3", 2);
}

#[test]
fn an_app_killed_by_a_signal_is_reported_and_started_again_on_the_next_change() {
    let project = served(APP);
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    only_grandchild(&session, &project);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.pid), Signal::SIGKILL)
        .expect("kill the app");
    session.wait_for_stderr("killed by SIGKILL");

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
}

#[test]
fn a_string_run_cmd_goes_through_the_shell() {
    let project = served(APP_SLOW_TO_STOP).config(
        "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
         [run]\ncmd = \"GREETING=from-the-shell exec ./app.sh\"\n",
    );
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    assert_eq!(first.field("GREETING"), "from-the-shell");
    assert_eq!(first.field("RELOAD"), "1");

    project.write("src/version.txt", "v2\n");
    let second = session.wait_for_start("v2");
    assert_stopped_before_started(&session, &project, first.pid, second.pid);
}

#[test]
fn with_no_build_step_a_change_restarts_the_program_given_after_double_dash() {
    let project = Project::new()
        .file("src/version.txt", "v1\n")
        .file("build/version.txt", "prebuilt1\n")
        .executable("app.sh", APP);
    let session = project.start(&["--build", "", "-w", "src", "--", "./app.sh"]);
    let first = session.wait_for_start("prebuilt1");
    assert_eq!(first.field("RELOAD"), "1");

    project.write("build/version.txt", "prebuilt2\n"); // not watched
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("prebuilt2");
    assert!(!alive(first.pid));
    assert!(builds(&project).is_empty(), "nothing was built");
}

#[test]
fn a_config_file_named_with_dash_c_is_used_instead_of_reload_toml() {
    let project = served(APP)
        .file("dev.toml", CONFIG)
        .config("this is not toml\n");
    let session = project.start(&["-c", "dev.toml"]);
    session.wait_for_start("v1");
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
}

#[test]
fn only_files_with_the_listed_extensions_trigger_a_build() {
    let project = served(APP).file("src/notes.md", "notes\n");
    let session = project.start(&["-e", "txt"]);
    session.wait_for_start("v1");

    project.write("src/notes.md", "more notes\n");
    project.write("src/extensionless", "x\n");
    session.assert_holds_for(
        Duration::from_secs(1),
        "no build for other extensions",
        || builds(&project).len() == 1,
    );

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(builds(&project), ["v1", "v2"]);
}

#[test]
fn with_no_gitignore_a_gitignored_file_triggers_a_build() {
    let project = served(APP)
        .file(".git/HEAD", "ref: refs/heads/main\n")
        .file(".gitignore", "*.log\n")
        .file("src/.gitignore", "*.log\n");
    let session = project.start(&["--no-gitignore"]);
    session.wait_for_start("v1");

    project.write("src/debug.log", "now it counts\n");
    session.wait_for("a build for the gitignored file", || {
        builds(&project).len() == 2
    });
    session.wait_for("the app to restart", || project.starts().len() == 2);
}

// ---------------------------------------------------------------------------------------------
// No orphans

#[test]
fn background_grandchildren_are_gone_after_a_restart() {
    let project = served(APP);
    let session = project.start(&[]);
    session.wait_for_start("v1");
    let old_grandchild = only_grandchild(&session, &project);

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    session.wait_dead("the old app's background grandchild", old_grandchild);
    let grandchildren = project.scratch_pids("grandchildren");
    assert_eq!(grandchildren.len(), 2);
    session.track(grandchildren[1]);
    assert!(alive(grandchildren[1]), "the new app's grandchild runs");
}

#[track_caller]
fn assert_signal_stops_everything(signal: Signal, exit_code: i32) {
    let project = served(APP);
    let mut session = project.start(&[]);
    let app = session.wait_for_start("v1");
    let grandchild = only_grandchild(&session, &project);
    let guardian = session.guardian();
    session.track(guardian);

    session.signal(signal);
    let status = session.wait_exit();

    assert_eq!(
        status.code(),
        Some(exit_code),
        "{signal} gives exit code {exit_code}{}",
        session.context()
    );
    assert_eq!(
        stopped_by(&project, app.pid).as_deref(),
        Some("TERM"),
        "the app was stopped gracefully{}",
        session.context()
    );
    session.wait_dead("the app", app.pid);
    session.wait_dead("the app's background grandchild", grandchild);
    session.wait_dead("the guardian", guardian);
    session.wait_no_processes();
}

#[test]
fn sigterm_stops_the_app_and_its_grandchildren_and_exits_143() {
    assert_signal_stops_everything(Signal::SIGTERM, 143);
}

#[test]
fn sigint_stops_the_app_and_its_grandchildren_and_exits_130() {
    assert_signal_stops_everything(Signal::SIGINT, 130);
}

#[test]
fn sighup_stops_the_app_and_its_grandchildren_and_exits_129() {
    assert_signal_stops_everything(Signal::SIGHUP, 129);
}

#[test]
fn sigterm_during_a_build_kills_the_build_too() {
    let project = served(APP);
    let mut session = project.start(&[]);
    let app = session.wait_for_start("v1");
    project.write("src/version.txt", "v2-HANG\n");
    let hung = session.wait_until("the v2 build to hang", || {
        project.scratch_pids("build-sleeps").first().copied()
    });
    session.track(hung);

    session.terminate();
    session.wait_dead("the build's background sleep", hung);
    session.wait_dead("the app", app.pid);
    session.wait_no_processes();
}

#[test]
fn sigkill_to_reload_leaves_no_process_behind() {
    let project = served(APP);
    let mut session = project.start(&[]);
    let app = session.wait_for_start("v1");
    session.track(app.pid);
    let grandchild = only_grandchild(&session, &project);
    let guardian = session.guardian();
    session.track(guardian);

    session.signal(Signal::SIGKILL);
    session.wait_exit();

    session.wait_dead("the app", app.pid);
    session.wait_dead("the app's background grandchild", grandchild);
    session.wait_dead("the guardian, once its work is done", guardian);
    session.wait_no_processes();
}

// ---------------------------------------------------------------------------------------------
// Bad input: a clear message, exit code 2, nothing started

#[track_caller]
fn assert_nothing_started(project: &Project) {
    assert!(builds(project).is_empty(), "no build ran");
    assert!(project.starts().is_empty(), "no app started");
    project.wait_no_processes();
}

#[test]
fn a_toml_syntax_error_names_the_file_line_and_column() {
    let project = served(APP).config("[watch]\npaths = [\"src\"]\ndebounce = 50ms\n");
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["reload.toml:3:"]);
    assert_nothing_started(&project);
}

#[test]
fn an_unknown_key_is_named_with_a_suggestion() {
    let project = served(APP).config("[watch]\npaths = [\"src\"]\ndebounse = \"50ms\"\n");
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["debounse", "did you mean `debounce`"]);
    assert_nothing_started(&project);
}

#[test]
fn a_watch_path_that_does_not_exist_is_named() {
    let project = served(APP);
    project
        .run_to_exit(&["-w", "no-such-dir"])
        .assert_fails_with(2, &["no-such-dir"]);
    assert_nothing_started(&project);
}

#[test]
fn an_unknown_stop_signal_is_named() {
    let project = served(APP);
    project
        .run_to_exit(&["--stop-signal", "SIGFOO"])
        .assert_fails_with(2, &["SIGFOO"]);
    assert_nothing_started(&project);
}

#[test]
fn a_duration_without_a_unit_is_refused() {
    let project = served(APP);
    project
        .run_to_exit(&["--debounce", "50"])
        .assert_fails_with(2, &["50", "unit"]);
    assert_nothing_started(&project);

    let project = served(APP).config(&format!("{CONFIG}stop_timeout = \"5\"\n"));
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["reload.toml:", "unit"]);
    assert_nothing_started(&project);
}

#[test]
fn nothing_to_run_and_no_config_points_to_reload_init() {
    let project = Project::new().file("README", "not a project\n");
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["reload init"]);
    project.wait_no_processes();
}

#[test]
fn a_missing_run_binary_is_reported_and_reload_keeps_watching() {
    let project = served(APP).config(
        "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n[run]\ncmd = [\"./bin/server\"]\n",
    );
    let session = project.start(&[]);
    // Not just "bin/server": the start line names the program too, before any build.
    session.wait_for_stderr("bin/server` does not exist or is not executable");
    assert_eq!(builds(&project), ["v1"], "the build ran");
    assert!(
        session.exit_status().is_none(),
        "reload keeps watching{}",
        session.context()
    );

    project.write_executable("bin/server", APP);
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
}

// ---------------------------------------------------------------------------------------------
// A real Cargo project, no configuration at all

const SERVER: &str = r#"use std::io::{Read, Write};
use std::net::TcpListener;

const BODY: &str = "hello v1";

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local address").port();
    // Tell the test where we listen, atomically.
    let port_file = std::env::var("PORT_FILE").expect("PORT_FILE");
    let temporary = format!("{port_file}.new");
    std::fs::write(&temporary, format!("{port}\n")).expect("write port");
    std::fs::rename(&temporary, &port_file).expect("publish port");
    let reload = std::env::var("RELOAD").unwrap_or_default();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let body = format!("{BODY} RELOAD={reload}");
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
"#;

#[test]
fn a_plain_cargo_server_is_built_served_and_reloaded_with_no_configuration() {
    let project = Project::new()
        .file(
            "Cargo.toml",
            "[package]\nname = \"hello-server\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
        )
        .file("src/main.rs", SERVER);
    let port_file = project.scratch("port");
    let session = project.start_with_env(
        &[],
        &[("PORT_FILE", port_file.to_str().expect("utf-8 path"))],
    );
    let body = || {
        let port = std::fs::read_to_string(&port_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        http_get(port)
    };

    session.wait_until_within(CARGO_DEADLINE, "the server to answer `hello v1`", || {
        body().filter(|b| b == "hello v1 RELOAD=1")
    });

    project.write("src/main.rs", &SERVER.replace("hello v1", "hello v2"));
    session.wait_until_within(
        CARGO_DEADLINE,
        "the edited server to answer `hello v2`",
        || body().filter(|b| b == "hello v2 RELOAD=1"),
    );

    // Two compile errors: the summary counts them, and v2 keeps serving.
    let broken = SERVER.replace(
        "fn main() {",
        "fn main() {\n    let _ = (undefined_one, undefined_two);",
    );
    project.write("src/main.rs", &broken);
    session.wait_until_within(CARGO_DEADLINE, "the failed build's summary", || {
        session
            .stderr()
            .contains("build failed (exit 101): 2 errors; still serving pid")
            .then_some(())
    });
    assert_eq!(
        body().as_deref(),
        Some("hello v2 RELOAD=1"),
        "{}",
        session.context()
    );
}

#[test]
fn a_vim_save_with_backup_and_writebackup_rebuilds_once_and_stays_watched() {
    let vim = require(Tool::Vim).to_str().expect("a UTF-8 path");
    let project = served(APP);
    let session = project.start(&[]);
    session.wait_for_start("v1");

    // vim's most intricate save: a `4913` probe file, the original renamed to a `~` backup, a
    // new file written in its place, the backup deleted. One save, one build.
    for (previous, next) in [("v1", "v2"), ("v2", "v3")] {
        project.run_tool(
            vim,
            &[
                "-Es",
                "-u",
                "NONE",
                "-c",
                "set backup writebackup backupcopy=no",
                "-c",
                &format!("%s/{previous}/{next}/"),
                "-c",
                "wq",
                "src/version.txt",
            ],
        );
        session.wait_for_start(next);
    }
    session.assert_holds_for(
        Duration::from_secs(1),
        "no extra build after the saves",
        || builds(&project).len() == 3,
    );
    assert_eq!(versions(&project.starts()), ["v1", "v2", "v3"]);
}

#[test]
fn with_poll_a_change_is_seen_without_inotify_events() {
    let project = served(APP);
    let session = project.start(&["--poll", "100ms"]);
    session.wait_for_start("v1");
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(versions(&project.starts()), ["v1", "v2"]);
    // Without --poll reload holds a watch per directory (tests/watching counts them); seeing the
    // change proves nothing unless none is held here.
    assert_eq!(
        support::inotify_watches(session.pid()),
        0,
        "with --poll reload holds no inotify watch{}",
        session.context()
    );
}

#[test]
fn an_env_file_is_read_again_at_every_start() {
    let project = served(APP)
        .file("dev.env", "# the greeting\nGREETING=from-file\n")
        .config(&CONFIG.replace("env = { GREETING = \"hello\" }", "env_file = \"dev.env\""));
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    assert_eq!(first.fields["GREETING"], "from-file");

    project.write("dev.env", "GREETING=edited\n");
    project.write("src/version.txt", "v2\n");
    let second = session.wait_for_start("v2");
    assert_eq!(second.fields["GREETING"], "edited");
}

#[test]
fn an_env_file_value_that_run_env_overrides_is_warned_about_once() {
    let project = served(APP)
        .file("dev.env", "GREETING=from-file\n")
        .config(&CONFIG.replace(
            "env = { GREETING = \"hello\" }",
            "env = { GREETING = \"hello\" }\nenv_file = \"dev.env\"",
        ));
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    assert_eq!(first.fields["GREETING"], "hello", "[run] env wins");
    session.wait_for_stderr("dev.env: the server gets GREETING=hello, not GREETING=from-file");
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(
        session.stderr().matches("not GREETING=from-file").count(),
        1,
        "said once, not at every start{}",
        session.context()
    );
}

#[test]
fn a_missing_env_file_is_a_config_error_naming_it() {
    let project = served(APP)
        .config(&CONFIG.replace("env = { GREETING = \"hello\" }", "env_file = \"nope.env\""));
    let mut session = project.start(&[]);
    let status = session.wait_exit();
    assert_eq!(status.code(), Some(2), "{}", session.context());
    session.wait_for_stderr("nope.env");
    assert!(project.starts().is_empty());
}

#[test]
fn with_restart_on_exit_an_app_that_exits_is_started_again_without_a_change() {
    let project = served(APP_EXITING_3).config(&format!(
        "{CONFIG}restart_on_exit = true\nrestart_delay = \"100ms\"\n"
    ));
    let session = project.start(&[]);
    session.wait_for_stderr("restarting it in 100ms");
    session.wait_until("a third start of the same build", || {
        (project.starts().len() >= 3).then_some(())
    });
    assert!(versions(&project.starts()).iter().all(|v| *v == "v1"));
    assert_eq!(builds(&project), ["v1"], "no rebuild, only restarts");
}

#[test]
fn with_stop_on_build_error_a_failed_build_stops_the_app() {
    let project = served(APP).config(&format!("{CONFIG}stop_on_build_error = true\n"));
    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    project.write("src/version.txt", "v2-FAIL\n");
    session.wait_for_stderr("build failed");
    session.wait_dead("the app", first.pid);
    assert!(
        session.stderr().contains("waiting for changes"),
        "{}",
        session.context()
    );
    project.write("src/version.txt", "v3\n");
    session.wait_for_start("v3");
}

#[test]
fn pre_commands_run_before_each_build_and_post_commands_after_the_app_stops() {
    let project = served(APP);
    let mut session = project.start(&[
        "--pre",
        "echo pre >> ../scratch/hooks.log",
        "--post",
        "echo post >> ../scratch/hooks.log",
    ]);
    session.wait_for_start("v1");
    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(project.scratch_lines("hooks.log"), ["pre", "pre"]);
    session.signal(Signal::SIGTERM);
    assert_eq!(session.wait_exit().code(), Some(143));
    assert_eq!(project.scratch_lines("hooks.log"), ["pre", "pre", "post"]);
}

#[test]
fn a_file_created_and_removed_within_one_burst_is_no_change() {
    let project = served(APP);
    let session = project.start(&[]);
    session.wait_for_start("v1");

    // A tool's temporary file, gone before the quiet window ends.
    project.write("src/draft.txt", "draft");
    project.remove("src/draft.txt");
    session.assert_holds_for(
        Duration::from_secs(1),
        "no build for a file that came and went",
        || builds(&project).len() == 1,
    );

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    assert_eq!(builds(&project), ["v1", "v2"]);
}

/// A server that leaves a process outside its own process group (`setsid`), as daemonizing
/// servers do: killing the group cannot reach it.
const APP_ESCAPING: &str = r#"#!/bin/sh
trap 'exit 0' TERM
setsid sleep 1000 &
echo $! >> ../scratch/escaped
echo "start pid=$$ version=$(cat build/version.txt)" >> ../scratch/app.log
wait
"#;

#[test]
fn a_process_that_left_the_apps_group_is_killed_with_the_app() {
    let project = served(APP_ESCAPING);
    let mut session = project.start(&[]);
    session.wait_for_start("v1");
    let first = session.wait_until("the first escaped process", || {
        project.scratch_pids("escaped").first().copied()
    });
    session.track(first);

    project.write("src/version.txt", "v2\n");
    session.wait_for_start("v2");
    session.wait_dead("the process that left the first app's group", first);
    let second = session.wait_until("the second escaped process", || {
        project.scratch_pids("escaped").get(1).copied()
    });
    session.track(second);

    session.terminate();
    session.wait_dead("the process that left the second app's group", second);
}

#[test]
fn a_process_left_outside_the_group_by_an_app_that_exited_is_killed_too() {
    let project = served(
        "#!/bin/sh\nsetsid sleep 1000 &\necho $! >> ../scratch/escaped\n\
         echo \"start pid=$$ version=$(cat build/version.txt)\" >> ../scratch/app.log\nexit 3\n",
    );
    let session = project.start(&[]);
    session.wait_for_start("v1");
    let escaped = session.wait_until("the escaped process", || {
        project.scratch_pids("escaped").first().copied()
    });
    session.track(escaped);
    session.wait_for_stderr("exited with 3");
    session.wait_dead("the process the exited app left outside its group", escaped);
}
