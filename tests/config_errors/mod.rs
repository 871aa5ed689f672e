//! Bad configuration, pinned end to end: what a new user gets wrong and what an attacker could
//! put in a config file or a file name. Each mistake is refused at start with exit code 2 and a
//! message naming the file and line (or the flag) and what to write instead; nothing runs, and
//! nothing outside the project is ever removed. File names reach the terminal escaped.

use std::fs;
use std::path::PathBuf;

use crate::support::{Finished, Project};

/// A server that needs no build: everything here is about the configuration.
const SLEEPER: &str = "[run]\ncmd = [\"sleep\", \"1000\"]\n";

/// Run `reload ARGS` in `project`, insist it exits 2 naming every one of `needles`, and that
/// nothing was left running.
#[track_caller]
fn refused(project: &Project, args: &[&str], needles: &[&str]) -> Finished {
    let finished = project.run_to_exit(args);
    finished.assert_fails_with(2, needles);
    project.wait_no_processes();
    finished
}

#[track_caller]
fn assert_lacks(finished: &Finished, needle: &str) {
    assert!(
        !finished.stderr.contains(needle),
        "expected stderr not to mention {needle:?}\n--- reload stderr ---\n{}",
        finished.stderr
    );
}

/// `<tmp>/victim/precious`, next to the project root: what a bad clean_on_exit would delete.
fn victim(project: &Project) -> PathBuf {
    let victim = project.scratch("../victim");
    fs::create_dir_all(&victim).expect("create the victim directory");
    fs::write(victim.join("precious"), "keep me\n").expect("write the victim's file");
    victim
}

#[track_caller]
fn assert_survives(victim: &std::path::Path) {
    assert_eq!(
        fs::read_to_string(victim.join("precious")).ok().as_deref(),
        Some("keep me\n"),
        "{} must survive",
        victim.display()
    );
}

// ---------------------------------------------------------------------------------------------
// clean_on_exit never reaches outside the project

#[test]
fn clean_on_exit_with_dot_dot_is_refused_at_start_naming_the_key_and_line() {
    let project = Project::new().config(&format!(
        "{SLEEPER}\n[build]\nclean_on_exit = [\"tmp\", \"../victim\"]\n"
    ));
    let victim = victim(&project);
    refused(
        &project,
        &[],
        &[
            "reload.toml:5:",
            "[build] clean_on_exit",
            "`../victim`",
            "outside the project root",
        ],
    );
    assert_survives(&victim);
}

#[test]
fn air_tmp_dir_outside_the_project_with_clean_on_exit_is_refused_at_start() {
    let project = Project::new().file(
        ".air.toml",
        "tmp_dir = \"../victim\"\n\n[build]\ncmd = \"true\"\nbin = \"sleep\"\n\
         args_bin = [\"1000\"]\n\n[misc]\nclean_on_exit = true\n",
    );
    let victim = victim(&project);
    refused(
        &project,
        &[],
        &[
            ".air.toml:1:",
            "tmp_dir",
            "`../victim`",
            "outside the project root",
        ],
    );
    assert_survives(&victim);
}

#[test]
fn clean_on_exit_under_a_symlink_leading_outside_is_refused_at_start() {
    let project = Project::new().config(&format!(
        "{SLEEPER}\n[build]\nclean_on_exit = [\"out/precious\"]\n"
    ));
    let victim = victim(&project);
    std::os::unix::fs::symlink(&victim, project.scratch("../project/out")).expect("symlink");
    refused(
        &project,
        &[],
        &[
            "reload.toml:5:",
            "`out/precious`",
            "outside the project root",
        ],
    );
    assert_survives(&victim);
}

#[test]
fn clean_on_exit_removes_inside_paths_but_not_through_a_symlink_made_while_running() {
    let project = Project::new().config(&format!(
        "{SLEEPER}\n[build]\nclean_on_exit = [\"tmp/precious\", \"cache\"]\n"
    ));
    let victim = victim(&project);
    let mut session = project.start(&[]);
    session.wait_for_stderr("started (pid");
    // Neither existed at start. Now `cache` is a real directory, and `tmp` a link outside.
    project.write("cache/build.o", "object\n");
    std::os::unix::fs::symlink(&victim, project.scratch("../project/tmp")).expect("symlink");

    session.terminate();
    assert_survives(&victim);
    assert!(
        !project.scratch("../project/cache").exists(),
        "cache/ is removed{}",
        session.context()
    );
    assert!(
        session.stderr().contains("has become a symlink"),
        "the refusal is reported{}",
        session.context()
    );
}

// ---------------------------------------------------------------------------------------------
// Clear errors

#[test]
fn an_empty_reload_toml_says_it_is_empty_and_what_to_add() {
    for text in ["", "# nothing here yet\n\n"] {
        let project = Project::new().config(text);
        let finished = refused(
            &project,
            &[],
            &["reload.toml", "is empty", "[run]", "cmd = "],
        );
        assert_lacks(&finished, "no reload.toml");
    }
}

#[test]
fn an_env_file_that_is_a_directory_is_named_as_a_directory() {
    let project = Project::new();
    let finished = refused(
        &project,
        &["--env-file", ".", "--", "sleep", "1000"],
        &["--env-file", "is a directory"],
    );
    assert_lacks(&finished, "does not exist");
}

#[test]
fn an_empty_program_after_double_dash_blames_the_double_dash() {
    let project = Project::new();
    let finished = refused(&project, &["--", ""], &["after `--`", "is empty"]);
    assert_lacks(&finished, "[run] cmd");
}

#[test]
fn a_run_cmd_or_poll_of_the_wrong_type_says_what_to_write() {
    let project = Project::new().config("[run]\ncmd = 5\n");
    let finished = refused(
        &project,
        &[],
        &["reload.toml:2:", "run.cmd", "a string", "a list of strings"],
    );
    assert_lacks(&finished, "untagged");
    assert_lacks(&finished, "RunCmd");

    let project = Project::new().config(&format!("[watch]\npoll = 5\n{SLEEPER}"));
    let finished = refused(
        &project,
        &[],
        &[
            "reload.toml:2:",
            "watch.poll",
            "true, false or an interval like \"500ms\"",
        ],
    );
    assert_lacks(&finished, "untagged");
}

#[test]
fn an_unknown_section_lists_the_sections_and_suggests_nothing_far() {
    let project = Project::new().config(&format!("[foo]\nx = 1\n{SLEEPER}"));
    let finished = refused(
        &project,
        &[],
        &[
            "reload.toml:1:",
            "unknown section `[foo]`",
            "[watch], [build], [run], [output]",
        ],
    );
    assert_lacks(&finished, "did you mean");

    let project = Project::new().config("[rn]\ncmd = [\"sleep\", \"1000\"]\n");
    refused(&project, &[], &["did you mean `[run]`?"]);
}

#[test]
fn a_root_naming_a_file_is_refused_at_start_at_its_line() {
    let project = Project::new()
        .file("main.go", "package main\n")
        .config(&format!("root = \"main.go\"\n{SLEEPER}"));
    refused(
        &project,
        &[],
        &["reload.toml:1:", "root", "main.go", "is a file"],
    );
}

#[test]
fn a_malformed_readiness_url_is_refused() {
    let project = Project::new();
    refused(
        &project,
        &["--ready", "http://[::1", "--", "sleep", "1000"],
        &["--ready", "http://[::1", "not a valid URL"],
    );
    let project = Project::new().config(&format!("{SLEEPER}ready = \"http://h:99999/\"\n"));
    refused(
        &project,
        &[],
        &["reload.toml:3:", "[run] ready", "not a valid URL"],
    );
}

#[test]
fn a_bad_glob_names_its_key_and_line_or_its_flag() {
    let project = Project::new().config(&format!(
        "[watch]\nignore = [\"*.log\",\n  \"src/[oops\"]\n{SLEEPER}"
    ));
    refused(
        &project,
        &[],
        &[
            "reload.toml:3:",
            "[watch] ignore",
            "invalid glob `src/[oops`",
        ],
    );

    let project = Project::new();
    refused(
        &project,
        &["--ignore", "a[", "--", "sleep", "1000"],
        &["--ignore", "invalid glob `a[`"],
    );
}

// ---------------------------------------------------------------------------------------------
// Values that must not crash reload or make it spin

#[test]
fn a_debounce_too_long_for_the_clock_is_refused_not_a_panic() {
    let project = Project::new();
    refused(
        &project,
        &["--debounce", "3000000000000000h", "--", "sleep", "1000"],
        &["--debounce", "`3000000000000000h` is too long", "24h"],
    );
}

#[test]
fn a_restart_delay_too_long_for_the_clock_is_refused_at_its_line() {
    let project = Project::new().config(&format!(
        "{SLEEPER}restart_on_exit = true\nrestart_delay = \"3000000000000000h\"\n"
    ));
    refused(
        &project,
        &[],
        &["reload.toml:4:", "[run] restart_delay", "too long", "24h"],
    );
}

#[test]
fn a_poll_interval_under_10ms_is_refused() {
    let project = Project::new();
    refused(
        &project,
        &["--poll", "0ms", "--", "sleep", "1000"],
        &["--poll", "`0ms` is too short", "10ms"],
    );
    let project = Project::new().config(&format!("[watch]\npoll = \"1ms\"\n{SLEEPER}"));
    refused(
        &project,
        &[],
        &["reload.toml:2:", "[watch] poll", "too short"],
    );
}

#[test]
fn a_zero_debounce_is_fine() {
    let project = Project::new();
    let session = project.start(&["--debounce", "0ms", "-e", "txt", "--", "sleep", "1000"]);
    session.wait_for_stderr("started (pid");
    project.write("a.txt", "change\n");
    session.wait_for_stderr("changed: a.txt");
}

// ---------------------------------------------------------------------------------------------
// Names reach the terminal escaped

#[test]
fn a_file_name_with_a_newline_and_escapes_cannot_forge_a_status_line() {
    let project = Project::new();
    let session = project.start(&["-e", "txt", "--", "sleep", "1000"]);
    session.wait_for_stderr("started (pid");
    project.write("a\n[reload] started (pid 1)\x1b]0;owned\x07.txt", "x\n");
    session.wait_for_stderr("changed: ");

    let stderr = session.stderr();
    let changed: Vec<&str> = stderr.lines().filter(|l| l.contains("changed:")).collect();
    assert_eq!(
        changed,
        ["[reload] changed: a\\n[reload] started (pid 1)\\x1b]0;owned\\x07.txt"],
        "one line, the name escaped{}",
        session.context()
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("[reload] started (pid 1)")),
        "no forged line{}",
        session.context()
    );
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\x07'),
        "no raw escape reaches the terminal{}",
        session.context()
    );
}

// ---------------------------------------------------------------------------------------------
// The dev proxy's settings: refused at start, before anything is built or bound

#[test]
fn a_proxy_port_that_does_not_parse_names_the_flag_or_the_line() {
    let project = Project::new();
    for (proxy, app_port, needles) in [
        (
            "80x",
            "8080",
            &["--proxy: `80x` is not a port or an address"][..],
        ),
        (
            "70000",
            "8080",
            &["--proxy: `70000`", "ports go from 1 to 65535"],
        ),
        ("8090", "0", &["--app-port: port 0"]),
    ] {
        refused(
            &project,
            &[
                "--proxy",
                proxy,
                "--app-port",
                app_port,
                "--",
                "sleep",
                "1000",
            ],
            needles,
        );
    }
    let project = Project::new().config(&format!(
        "{SLEEPER}[proxy]\nport = 8090\napp_port = \"a\"\n"
    ));
    refused(
        &project,
        &[],
        &["reload.toml:5:12: [proxy] app_port: `a` is not a port"],
    );
}

#[test]
fn an_allowed_host_that_is_no_name_is_refused_naming_the_flag_or_the_line() {
    let project = Project::new();
    for (name, says) in [
        ("*", "`*` would let any web page read your app"),
        ("myapp.test:8090", "without a port"),
        ("http://myapp.test", "without `http://`"),
    ] {
        refused(
            &project,
            &[
                "--proxy",
                "8090",
                "--app-port",
                "8080",
                "--allow-host",
                name,
                "--",
                "sleep",
                "1000",
            ],
            &["--allow-host: ", says],
        );
    }
    // Without a proxy the flag would do nothing: said, not ignored.
    refused(
        &project,
        &["--allow-host", "myapp.test", "--", "sleep", "1000"],
        &["--allow-host is a setting of the dev proxy"],
    );
    let project = Project::new().config(&format!(
        "{SLEEPER}[proxy]\nport = 8090\napp_port = 8080\nallowed_hosts = [\"a.test\", \"my app\"]\n"
    ));
    refused(
        &project,
        &[],
        &[
            "reload.toml:6:",
            "[proxy] allowed_hosts: `my app` is not a host name",
        ],
    );
}

#[test]
fn a_proxy_without_a_server_or_with_a_bad_port_says_what_is_wrong() {
    let project = Project::new();
    refused(
        &project,
        &["--build", "true", "--proxy", "8090", "--app-port", "8080"],
        &["--proxy needs a server to forward to"],
    );
    let written =
        Project::new().config("[run]\ncmd = [\"sleep\", \"1000\"]\nenv = { PORT = \"web\" }\n");
    refused(
        &written,
        &["--proxy", "8090"],
        &[
            "reload.toml:3:",
            "[run] env.PORT: with --proxy and no app port, the proxy forwards to this PORT, and \
             `web` is not a port",
            "drop PORT from [run] env",
        ],
    );
    refused(
        &project,
        &[
            "--proxy",
            "8080",
            "--app-port",
            "8080",
            "--",
            "sleep",
            "1000",
        ],
        &["--proxy 8080 and --app-port 8080 are the same port"],
    );
}

#[test]
fn airs_proxy_section_is_read_not_warned_about() {
    // air's own proxy keys, with one port for both: refused at air's key and line, which shows
    // they were read, and nothing calls them unsupported.
    let project = Project::new().file(
        ".air.toml",
        "[build]\ncmd = \"true\"\nbin = \"sleep\"\nargs_bin = [\"1000\"]\n\n[proxy]\n\
         enabled = true\nproxy_port = 8080\napp_port = 8080\napp_start_timeout = 5000\n",
    );
    let finished = refused(
        &project,
        &[],
        &[
            ".air.toml:8:14: [proxy] proxy_port = 8080 and [proxy] app_port = 8080 are the same port",
        ],
    );
    assert_lacks(&finished, "not supported");
}
