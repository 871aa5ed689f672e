//! A test that needs a tool the machine lacks fails at once, in one line naming the tool and
//! how to install it (tests/support/needs.rs), not after minutes of waiting for a server that
//! could never start. Checked by running this very test binary again with go and chromium
//! hidden from its PATH.

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::needs::{Tool, require, require_python};

/// The tests that need go (Debian's Gin is found only after go), each named as libtest does.
const NEED_GO: &[&str] = &[
    "ux::an_air_project_is_built_served_and_reloaded_by_a_bare_reload",
    "ux::an_air_file_named_with_dash_c_wins_over_reload_toml",
    "ux::a_go_module_with_no_configuration_is_built_into_tmp_main_and_served",
    "ux::reload_init_writes_reload_toml_once_and_a_bare_reload_then_uses_it",
    "ux::reload_init_from_air_writes_a_reload_toml_that_builds_and_serves",
    "proxy::gin::a_gin_project_with_airs_proxy_section_works_unchanged_under_a_bare_reload",
];

/// The tests that drive chromium.
const NEED_CHROMIUM: &[&str] = &[
    "proxy::browser::a_page_follows_a_save_without_the_test_reloading_it",
    "proxy::browser::the_overlay_shows_a_compile_error_and_goes_away_after_the_fix",
    "proxy::browser::a_badge_shows_while_a_build_runs_and_goes_when_the_page_follows",
    "proxy::browser::eight_tabs_all_follow_a_save",
    "proxy::browser::after_a_reconnect_a_page_reloads_only_when_the_generation_changed",
    "proxy::overlay::the_overlay_of_a_page_loaded_after_a_failure_says_what_the_503_page_says",
    "proxy::access::in_a_browser_a_page_on_a_foreign_name_can_read_neither_the_app_nor_the_event_stream",
    "proxy::pages::pages_with_body_tags_in_scripts_and_comments_follow_a_save_and_keep_working",
];

/// A directory of links to every program on PATH but `hidden`: PATH as it is, less those.
fn path_without(dir: &Path, hidden: &[&str]) -> String {
    let mut linked = BTreeSet::new();
    for entry in env::split_paths(&env::var_os("PATH").unwrap_or_default()) {
        let Ok(programs) = fs::read_dir(&entry) else {
            continue;
        };
        for program in programs.filter_map(Result::ok) {
            let name = program.file_name();
            let shown = name.to_string_lossy();
            // The first of a name on PATH is the one a shell runs; later ones stay shadowed.
            if hidden.contains(&&*shown) || !linked.insert(name.clone()) {
                continue;
            }
            symlink(program.path(), dir.join(&name))
                .unwrap_or_else(|err| panic!("link {}: {err}", program.path().display()));
        }
    }
    dir.to_str().expect("a UTF-8 temporary path").to_owned()
}

/// What libtest printed for the failed test `name`: its section under `failures:`.
fn failure_of<'o>(output: &'o str, name: &str) -> &'o str {
    let head = format!("---- {name} stdout ----\n");
    let Some(at) = output.find(&head) else {
        panic!("no failure printed for {name}:\n{output}");
    };
    let rest = &output[at + head.len()..];
    let end = ["\n---- ", "\nfailures:\n"]
        .iter()
        .filter_map(|next| rest.find(next))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn without_go_and_chromium_their_tests_fail_at_once_naming_the_missing_tool() {
    let bin = tempfile::Builder::new()
        .prefix("reload-test-path-")
        .tempdir()
        .expect("create a temporary directory");
    let path = path_without(bin.path(), &["go", "chromium"]);
    let output = Command::new(env::current_exe().expect("this test binary"))
        .args(NEED_GO.iter().chain(NEED_CHROMIUM))
        .args(["--exact", "--test-threads", "4"])
        .env("PATH", &path)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run this test binary again");
    let output = String::from_utf8_lossy(&output.stdout).into_owned();
    let expected = [
        (
            NEED_GO,
            "this test needs go, which is not on PATH: install it with `sudo apt-get install golang-go` (or run .ci/run, which installs everything the tests need)",
        ),
        (
            NEED_CHROMIUM,
            "this test needs chromium, which is not on PATH: install it with `sudo apt-get install chromium` (or run .ci/run, which installs everything the tests need)",
        ),
    ];
    for (tests, line) in expected {
        for name in tests {
            assert!(
                output.contains(&format!("test {name} ... FAILED")),
                "{name} did not fail:\n{output}"
            );
            let failure = failure_of(&output, name);
            let said: Vec<&str> = failure
                .lines()
                .filter(|l| !l.starts_with("thread '") && !l.starts_with("note: "))
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert_eq!(said, [line], "what {name} said:\n{failure}");
        }
    }
    let count = NEED_GO.len() + NEED_CHROMIUM.len();
    assert!(
        output.contains(&format!("test result: FAILED. 0 passed; {count} failed")),
        "{output}"
    );
}

#[test]
fn a_missing_python_module_fails_the_test_in_one_line_naming_it() {
    require(Tool::Python3);
    let module = "reload_tests_no_such_module";
    let panic = std::panic::catch_unwind(|| require_python(module)).expect_err("no such module");
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(
        message.starts_with(&format!(
            "this test needs the Python module {module}, which python3 cannot import: install it \
             with `"
        )) && message.ends_with("` (or run .ci/run, which installs everything the tests need)")
            && !message.contains('\n'),
        "{message}"
    );
    // Found modules are found: `json` comes with every python3.
    require_python("json");
}
