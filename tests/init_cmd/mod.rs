//! `reload init` as the hardening issue found it: it takes the same project flags as `reload`
//! and writes them down, converts an `.air.toml` next to it instead of shadowing it, never
//! writes through a symlinked `reload.toml`; and what detection decides for a Node start script
//! and a Cargo workspace package, with or without init.
//!
//! The Cargo tests build a real three-member workspace (`api` uses the path dependency
//! `shared`; `worker` is independent). Each binary logs `start pid=.. version=..` to
//! `../scratch/app.log`, as the stand-in app of tests.rs does, and then sleeps.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::needs::{Tool, require};
use crate::support::{CARGO_DEADLINE, Project, Session};

/// A path inside the project root (the root is the scratch directory's sibling).
fn in_project(project: &Project, path: &str) -> PathBuf {
    project.scratch("../project").join(path)
}

/// Run `reload ARGS` to its end and insist that it succeeds; return its stderr.
#[track_caller]
fn run_ok(project: &Project, args: &[&str]) -> String {
    let finished = project.run_to_exit(args);
    assert_eq!(
        finished.status.code(),
        Some(0),
        "reload {args:?} failed:\n{}",
        finished.stderr
    );
    finished.stderr
}

#[track_caller]
fn written(project: &Project) -> String {
    fs::read_to_string(in_project(project, "reload.toml")).expect("reload init wrote reload.toml")
}

/// The pid in reload's last `started (pid N)` or `restarted (pid M -> N)` line.
fn reported_server_pid(session: &Session) -> Option<i32> {
    let stderr = session.stderr();
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.contains("started (pid "))?;
    let after = &line[line.find("(pid ")? + 5..];
    let after = after.rsplit("-> ").next()?;
    after.split(')').next()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// 1. init takes the project flags

const PYTHON_APP: &str = r#"import os, time
VERSION = "v1"
with open("../scratch/app.log", "a") as log:
    log.write(f"start pid={os.getpid()} version={VERSION}\n")
while True:
    time.sleep(1000)
"#;

#[test]
fn init_with_ext_and_a_program_in_a_python_project_writes_them_and_a_bare_reload_runs_them() {
    require(Tool::Python3);
    let project = Project::new().file("app.py", PYTHON_APP);
    let said = run_ok(&project, &["init", "-e", "py", "--", "python3", "app.py"]);
    assert!(said.contains("wrote"), "{said}");
    let toml = written(&project);
    assert!(toml.contains(r#"ext = ["py"]"#), "{toml}");
    assert!(toml.contains(r#"cmd = ["python3", "app.py"]"#), "{toml}");

    let session = project.start(&[]);
    let first = session.wait_for_start("v1");
    project.write("notes.txt", "not python\n");
    project.write("app.py", &PYTHON_APP.replace("\"v1\"", "\"v2\""));
    let second = session.wait_for_start("v2");
    assert_ne!(first.pid, second.pid, "{}", session.context());
    assert!(
        !session.stderr().contains("notes.txt"),
        "only .py files count{}",
        session.context()
    );
}

/// A workspace: `api` (binary, uses `shared`), `worker` (binary), `shared` (library).
fn workspace() -> Project {
    let package = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{deps}"
        )
    };
    let main = |name: &str, body: &str| {
        format!(
            "use std::io::Write;\nfn main() {{\n    let version = {body};\n    \
             let mut log = std::fs::OpenOptions::new().create(true).append(true)\n        \
             .open(\"../scratch/app.log\").unwrap();\n    \
             writeln!(log, \"start pid={{}} version={{}}\", std::process::id(), version).unwrap();\n    \
             drop(log);\n    \
             std::thread::sleep(std::time::Duration::from_secs(1000));\n    \
             let _ = \"{name}\";\n}}\n"
        )
    };
    Project::new()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"api\", \"worker\", \"shared\"]\nresolver = \"2\"\n",
        )
        .file(
            "api/Cargo.toml",
            &package("api", "shared = { path = \"../shared\" }\n"),
        )
        .file("api/src/main.rs", &main("api", "shared::VERSION"))
        .file("worker/Cargo.toml", &package("worker", ""))
        .file("worker/src/main.rs", &main("worker", "\"worker\""))
        .file("shared/Cargo.toml", &package("shared", ""))
        .file("shared/src/lib.rs", "pub const VERSION: &str = \"api1\";\n")
}

#[test]
fn init_with_bin_in_a_cargo_workspace_writes_it_and_a_bare_reload_runs_that_binary() {
    let project = workspace();
    let refused = project.run_to_exit(&[]);
    refused.assert_fails_with(2, &["--bin"]);

    let said = run_ok(&project, &["init", "--bin", "api"]);
    assert!(said.contains("wrote"), "{said}");
    let toml = written(&project);
    assert!(toml.contains(r#"cmd = "cargo build --bin api""#), "{toml}");
    assert!(toml.contains(r#"cmd = ["./target/debug/api"]"#), "{toml}");
    assert!(
        toml.contains(r#"paths = ["api", "shared", "Cargo.toml"]"#),
        "the package and its path dependency are watched:\n{toml}"
    );

    let session = project.start(&[]);
    session.wait_until_within(CARGO_DEADLINE, "the api binary to start", || {
        project.starts().into_iter().find(|s| s.version == "api1")
    });
}

// ---------------------------------------------------------------------------------------------
// 2. init next to an .air.toml

#[test]
fn init_next_to_an_air_toml_converts_it_and_says_so() {
    let project = Project::new()
        .file(
            ".air.toml",
            "[build]\ncmd = \"sh build.sh\"\nbin = \"./app.sh\"\ninclude_ext = [\"txt\"]\n",
        )
        .file("go.mod", "module example.com/x\n");
    let said = run_ok(&project, &["init"]);
    assert!(
        said.contains("converted from")
            && said.contains(".air.toml")
            && said.contains("--from-air"),
        "init says it converted the .air.toml:\n{said}"
    );
    let toml = written(&project);
    assert!(toml.contains(r#"cmd = "sh build.sh""#), "{toml}");
    assert!(!toml.contains("go build"), "not Go's zero-config:\n{toml}");
}

// ---------------------------------------------------------------------------------------------
// 3. never through a symlink

#[test]
fn init_refuses_a_symlinked_reload_toml_even_with_force() {
    let project = Project::new().file("Makefile", "run:\n\t./app.sh\n");
    let outside = project.scratch("../outside.toml");
    std::os::unix::fs::symlink("../outside.toml", in_project(&project, "reload.toml"))
        .expect("symlink reload.toml");
    for args in [&["init"][..], &["init", "--force"]] {
        project
            .run_to_exit(args)
            .assert_fails_with(2, &["reload.toml", "symbolic link", "../outside.toml"]);
        assert!(
            !outside.exists(),
            "reload {args:?} wrote through the link to {}",
            outside.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Node: the start script run directly

const PACKAGE_JSON: &str =
    r#"{"name":"hello","private":true,"scripts":{"start":"node server.js"}}"#;

/// Writes its own pid, then stays up.
const NODE_SERVER: &str = "require('fs').writeFileSync('../scratch/node.pid', process.pid + '\\n');\n\
                           setInterval(() => {}, 1000);\n";

#[test]
fn init_for_a_node_project_writes_a_plain_start_script_as_an_argv() {
    let project = Project::new()
        .file("package.json", PACKAGE_JSON)
        .file("server.js", NODE_SERVER);
    run_ok(&project, &["init"]);
    let toml = written(&project);
    assert!(toml.contains(r#"cmd = ["node", "server.js"]"#), "{toml}");
}

#[test]
fn a_bare_reload_runs_a_plain_node_start_script_as_node_itself() {
    require(Tool::Node);
    let project = Project::new()
        .file("package.json", PACKAGE_JSON)
        .file("server.js", NODE_SERVER);
    let session = project.start(&[]);
    let node = session.wait_until("node to write its pid", || {
        project.scratch_pids("node.pid").first().copied()
    });
    let reported = session.wait_until("reload to report the server's pid", || {
        reported_server_pid(&session)
    });
    let comm = fs::read_to_string(format!("/proc/{reported}/comm")).unwrap_or_default();
    assert_eq!(
        (reported, comm.trim()),
        (node, "node"),
        "the server reload runs is node itself, not a shell around it{}",
        session.context()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. a workspace package: only what it builds from is watched

#[test]
fn with_p_in_a_workspace_only_the_package_and_its_path_dependencies_are_watched() {
    let project = workspace();
    let session = project.start(&["-p", "api"]);
    session.wait_until_within(CARGO_DEADLINE, "the api binary to start", || {
        project.starts().into_iter().find(|s| s.version == "api1")
    });
    session.wait_for_stderr("started (pid");

    project.write("worker/src/main.rs", "fn main() { /* edited */ }\n");
    session.assert_holds_for(
        Duration::from_secs(2),
        "no change and no build for an edit in worker/",
        || {
            session.stderr().matches("building").count() == 1
                && !session.stderr().contains("changed:")
        },
    );

    project.write("shared/src/lib.rs", "pub const VERSION: &str = \"api2\";\n");
    session.wait_until_within(CARGO_DEADLINE, "api to restart with shared's edit", || {
        project.starts().into_iter().find(|s| s.version == "api2")
    });
    assert!(
        !session.stderr().contains("worker"),
        "worker/ is not watched{}",
        session.context()
    );
}

#[test]
fn init_with_bin_or_p_where_zero_config_does_not_build_cargo_is_refused() {
    let project = Project::new().file("go.mod", "module example.com/x\n");
    project
        .run_to_exit(&["init", "-p", "api"])
        .assert_fails_with(2, &["--bin and -p"]);
    let project = workspace();
    project
        .run_to_exit(&["init", "--bin", "api", "--", "./server"])
        .assert_fails_with(2, &["--bin and -p"]);
    assert!(!in_project(&project, "reload.toml").exists());
}

// ---------------------------------------------------------------------------------------------
// 5. cargo metadata is started like every other process reload starts

/// Stands in for cargo: writes its pid and process group, then never answers.
const HANGING_CARGO: &str = "#!/bin/sh\n\
    echo \"$$ $(cut -d' ' -f5 /proc/$$/stat)\" > ../scratch/cargo.pid\n\
    exec sleep 1000\n";

#[test]
fn cargo_metadata_runs_in_its_own_process_group_and_dies_with_reload() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new()
        .file(
            "Cargo.toml",
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
        )
        .file("src/main.rs", "fn main() {}\n");
    let bin = project.scratch("bin");
    fs::create_dir(&bin).expect("create scratch/bin");
    fs::write(bin.join("cargo"), HANGING_CARGO).expect("write the fake cargo");
    fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let session = project.start_with_env(&[], &[("PATH", &path)]);
    let (cargo, group) = session.wait_until("the fake cargo to start", || {
        let line = project.scratch_lines("cargo.pid").into_iter().next()?;
        let (pid, group) = line.split_once(' ')?;
        Some((pid.parse::<i32>().ok()?, group.trim().parse::<i32>().ok()?))
    });
    session.track(cargo);
    assert_eq!(
        group,
        cargo,
        "cargo metadata leads its own process group, not reload's ({}){}",
        session.pid(),
        session.context()
    );
    session.signal(nix::sys::signal::Signal::SIGKILL);
    session.wait_dead("cargo metadata, once reload is killed", cargo);
}
