//! The watch set follows the project: a change to a file that decides what is watched or how it
//! builds (reload.toml, .air.toml, a Cargo manifest) is read again while reload runs. A valid
//! one is put in force (watches placed and dropped, the new build and server), an invalid one
//! is named with its line and the last good one stays.
//!
//! The reload.toml projects build with a line that logs to `../scratch/builds.log` and run
//! `app.sh NAME`, which logs `start pid=.. version=NAME` to `../scratch/app.log` and sleeps.

use std::time::Duration;

use crate::support::{CARGO_DEADLINE, Project, alive, free_port};

/// Long enough for a stray build or start to show up, on a loaded machine too.
const SETTLE: Duration = Duration::from_millis(1500);

const APP: &str =
    "#!/bin/sh\necho \"start pid=$$ version=$1\" >> ../scratch/app.log\nexec sleep 1000\n";

/// A reload.toml that watches `paths` for .txt files only (never itself) and runs `app.sh
/// version`.
fn config(paths: &str, version: &str) -> String {
    format!(
        "[watch]\npaths = [{paths}]\next = [\"txt\"]\ndebounce = \"100ms\"\n\n\
         [build]\ncmd = \"echo build >> ../scratch/builds.log\"\n\n\
         [run]\ncmd = [\"./app.sh\", \"{version}\"]\n"
    )
}

fn project(toml: &str) -> Project {
    Project::new()
        .file("src/a.txt", "a1\n")
        .file("other/b.txt", "b1\n")
        .executable("app.sh", APP)
        .config(toml)
}

fn builds(project: &Project) -> usize {
    project.scratch_lines("builds.log").len()
}

#[test]
fn a_watch_path_added_to_reload_toml_is_watched_and_a_new_run_command_runs() {
    let project = project(&config("\"src\"", "one"));
    let session = project.start(&[]);
    let first = session.wait_for_start("one");

    project.write("other/b.txt", "b2\n");
    session.assert_holds_for(SETTLE, "no build for other/, not watched yet", || {
        builds(&project) == 1
    });

    project.write("reload.toml", &config("\"src\", \"other\"", "one"));
    session.wait_for_stderr("now watching other (added by reload.toml)");
    session.wait_for("a build for the new configuration", || {
        builds(&project) == 2
    });
    project.write("other/b.txt", "b3\n");
    session.wait_for("a build for an edit in other/", || builds(&project) == 3);

    let serving = session.wait_until("the server restarted for the edit in other/", || {
        project.starts().get(2).map(|start| start.pid)
    });
    project.write("reload.toml", &config("\"src\", \"other\"", "two"));
    session.wait_for_stderr("reload.toml: now running `./app.sh two`");
    let second = session.wait_for_start("two");
    session.wait_dead("the server of the old configuration", serving);
    assert!(alive(second.pid), "{}", session.context());
    assert!(!alive(first.pid), "{}", session.context());
}

#[test]
fn an_invalid_reload_toml_is_named_at_its_line_and_the_last_good_one_stays() {
    let project = project(&config("\"src\"", "one"));
    let session = project.start(&[]);
    let first = session.wait_for_start("one");

    // A timeout without a unit, in [run].
    let broken = config("\"src\"", "two") + "stop_timeout = \"5\"\n";
    let line = broken.lines().count();
    project.write("reload.toml", &broken);
    session.wait_for_stderr(&format!("reload.toml:{line}:"));
    session.wait_for_stderr("keeping the last good configuration");
    session.assert_holds_for(SETTLE, "the old server serving on, nothing built", || {
        alive(first.pid) && project.starts().len() == 1 && builds(&project) == 1
    });

    // The old configuration is in force: its watches and its server.
    project.write("src/a.txt", "a2\n");
    session.wait_for("a build for src/a.txt", || builds(&project) == 2);
    session.wait_until("the old server restarted", || {
        project.starts().get(1).map(|start| start.version.clone())
    });
    assert_eq!(project.starts()[1].version, "one", "{}", session.context());

    project.write("reload.toml", &config("\"src\"", "three"));
    session.wait_for_start("three");
}

#[test]
fn a_proxy_added_to_reload_toml_asks_for_a_restart_and_changes_nothing() {
    let project = project(&config("\"src\"", "one"));
    let session = project.start(&[]);
    let first = session.wait_for_start("one");

    let (port, app_port) = (free_port(), free_port());
    let with_proxy =
        config("\"src\"", "two") + &format!("\n[proxy]\nport = {port}\napp_port = {app_port}\n");
    project.write("reload.toml", &with_proxy);
    session.wait_for_stderr("reload.toml: [proxy] changed");
    session.wait_for_stderr("restart reload to apply it; keeping the running configuration");
    session.assert_holds_for(SETTLE, "the old server serving on, nothing built", || {
        alive(first.pid) && project.starts().len() == 1 && builds(&project) == 1
    });
    assert!(
        !session.stderr().contains("now running"),
        "nothing of it applied{}",
        session.context()
    );
}

#[test]
fn an_air_toml_edit_is_read_again_though_its_include_ext_has_no_toml() {
    let air = |version: &str| {
        format!(
            "[build]\ncmd = \"echo build >> ../scratch/builds.log\"\n\
             full_bin = \"./app.sh {version}\"\ninclude_ext = [\"txt\"]\ndelay = 100\n"
        )
    };
    let project = Project::new()
        .file("src/a.txt", "a1\n")
        .executable("app.sh", APP)
        .file(".air.toml", &air("one"));
    let session = project.start(&[]);
    session.wait_for_start("one");

    project.write(".air.toml", &air("two"));
    session.wait_for_stderr(".air.toml: now running `./app.sh two`");
    session.wait_for_start("two");
}

#[test]
fn zero_config_follows_package_json_and_a_reload_toml_written_meanwhile_takes_over() {
    let package = |version: &str| format!(r#"{{"scripts": {{"start": "./app.sh {version}"}}}}"#);
    let project = Project::new()
        .executable("app.sh", APP)
        .file("package.json", &package("one"));
    let session = project.start(&[]);
    let first = session.wait_for_start("one");

    project.write("package.json", &package("two"));
    session.wait_for_stderr("package.json: now running `./app.sh two`");
    session.wait_for_start("two");
    session.wait_dead("the server of the old start script", first.pid);

    project.write("reload.toml", &config("\".\"", "three"));
    session.wait_for_stderr("reload.toml: now running `./app.sh three`");
    session.wait_for_start("three");
}

/// A workspace whose `app` logs `start pid=.. version=..` to `../scratch/app.log` and sleeps.
const APP_MAIN: &str = "use std::io::Write;\nfn main() {\n    let mut log = \
    std::fs::OpenOptions::new().create(true).append(true)\n        \
    .open(\"../scratch/app.log\").unwrap();\n    \
    writeln!(log, \"start pid={} version={}\", std::process::id(), VERSION).unwrap();\n    \
    drop(log);\n    std::thread::sleep(std::time::Duration::from_secs(1000));\n}\n";

fn manifest(name: &str, dependencies: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n{dependencies}"
    )
}

#[test]
fn a_path_crate_added_to_a_workspace_package_is_watched_from_then_on() {
    let project = Project::new()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"app\"]\nresolver = \"2\"\n",
        )
        .file("app/Cargo.toml", &manifest("app", ""))
        .file(
            "app/src/main.rs",
            &format!("const VERSION: &str = \"app1\";\n{APP_MAIN}"),
        );
    // -p narrows the watch set to the package and its path dependencies.
    let session = project.start(&["-p", "app"]);
    session.wait_until_within(CARGO_DEADLINE, "app to start", || {
        project.starts().into_iter().find(|s| s.version == "app1")
    });

    // The dependency first: cargo cannot read the workspace until the crate exists.
    project.write(
        "app/Cargo.toml",
        &manifest("app", "extra = { path = \"../extra\" }\n"),
    );
    session.wait_for_stderr("keeping the last good configuration");
    // Then the crate, in a directory reload does not watch yet, and the code that uses it.
    project.write("extra/Cargo.toml", &manifest("extra", ""));
    project.write(
        "extra/src/lib.rs",
        "pub const VERSION: &str = \"extra1\";\n",
    );
    project.write(
        "app/src/main.rs",
        &format!("use extra::VERSION;\n{APP_MAIN}"),
    );
    session.wait_for_stderr("now watching extra (added by app/Cargo.toml)");
    session.wait_until_within(CARGO_DEADLINE, "app to start with extra", || {
        project.starts().into_iter().find(|s| s.version == "extra1")
    });

    project.write(
        "extra/src/lib.rs",
        "pub const VERSION: &str = \"extra2\";\n",
    );
    session.wait_until_within(CARGO_DEADLINE, "app to restart with extra's edit", || {
        project.starts().into_iter().find(|s| s.version == "extra2")
    });
}
