//! The watch stage end to end: directories moved, replaced, unreadable or written by package
//! managers, and what reload watches and builds after each.
//!
//! The project here is plain: a few files under `src/`, a build that only logs a line to
//! `../scratch/builds.log` (outside the watched root), and a server that sleeps. The whole
//! project root is watched, as with no configuration at all.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Project, Session, inotify_watches};

/// Long enough for a stray second build to show up, on a loaded machine too.
const SETTLE: Duration = Duration::from_millis(1500);

fn project() -> Project {
    Project::new()
        .file("src/a.txt", "a1\n")
        .file("src/sub/b.txt", "b1\n")
}

fn start<'p>(project: &'p Project, extra: &[&str]) -> Session<'p> {
    let mut args = vec![
        "--debounce",
        "300ms",
        "--build",
        "echo build >> ../scratch/builds.log",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sleep", "1000"]);
    let session = project.start(&args);
    session.wait_for("the first build", || builds(project) == 1);
    session
}

fn builds(project: &Project) -> usize {
    project.scratch_lines("builds.log").len()
}

/// Wait for the `n`th build, and check that no other follows: one change, one build.
#[track_caller]
fn expect_build(session: &Session, project: &Project, n: usize, after: &str) {
    session.wait_for(&format!("build {n}, after {after}"), || {
        builds(project) >= n
    });
    session.assert_holds_for(SETTLE, &format!("exactly one build after {after}"), || {
        builds(project) == n
    });
}

/// As many inotify watches as when reload started: none lost, none left on a stale inode.
#[track_caller]
fn expect_watches(session: &Session, count: usize) {
    session.wait_for(&format!("reload to hold {count} inotify watches"), || {
        inotify_watches(session.pid()) == count
    });
}

#[track_caller]
fn moved_away_and_back(watch: &[&str], watches: usize) {
    let project = project();
    let session = start(&project, watch);
    expect_watches(&session, watches);

    project.rename("src", "src.bak");
    expect_build(&session, &project, 2, "moving src away");
    project.rename("src.bak", "src");
    expect_build(&session, &project, 3, "moving src back");
    expect_watches(&session, watches);

    project.write("src/sub/b.txt", "b2\n");
    expect_build(&session, &project, 4, "an edit to src/sub/b.txt");
    project.write("src/a.txt", "a2\n");
    expect_build(&session, &project, 5, "an edit to src/a.txt");
}

#[test]
fn a_directory_moved_away_and_back_is_watched_all_the_way_down_again() {
    moved_away_and_back(&[], 3);
}

#[test]
fn a_watched_root_moved_away_and_back_is_watched_all_the_way_down_again() {
    // src, src/sub, and the project root alone, for the config files reload would follow.
    moved_away_and_back(&["-w", "src"], 3);
}

#[test]
fn an_instant_rename_pair_is_one_build_and_loses_no_later_edit() {
    let project = project();
    let session = start(&project, &[]);
    expect_watches(&session, 3);

    project.rename("src", "src.bak");
    project.rename("src.bak", "src");
    expect_build(&session, &project, 2, "moving src away and straight back");
    expect_watches(&session, 3);

    project.write("src/a.txt", "a2\n");
    expect_build(&session, &project, 3, "an edit to src/a.txt");
    project.write("src/sub/b.txt", "b2\n");
    expect_build(&session, &project, 4, "an edit to src/sub/b.txt");
}

#[track_caller]
fn swapped_in(watch: &[&str]) {
    let project = project()
        .file("src.new/a.txt", "new a1\n")
        .file("src.new/sub/b.txt", "new b1\n");
    let session = start(&project, watch);

    project.rename("src", "src.old");
    project.rename("src.new", "src");
    expect_build(&session, &project, 2, "swapping a new src in");

    project.write("src/a.txt", "new a2\n");
    expect_build(&session, &project, 3, "an edit to the new src/a.txt");
    project.write("src/sub/b.txt", "new b2\n");
    expect_build(&session, &project, 4, "an edit to the new src/sub/b.txt");
}

#[test]
fn a_new_directory_swapped_in_under_a_watched_name_is_watched() {
    swapped_in(&[]);
}

#[test]
fn a_new_directory_swapped_in_for_a_watched_root_is_watched() {
    swapped_in(&["-w", "src"]);
}

#[test]
fn python_and_node_trees_are_never_watched_even_without_a_gitignore() {
    let project = project()
        .file(".venv/lib/x.py", "x = 1\n")
        .file("venv/lib/y.py", "y = 1\n")
        .file("a/__pycache__/m.pyc", "pyc\n")
        .file("web/node_modules/p/index.js", "// p\n")
        .file("web/index.js", "// web\n");
    let session = start(&project, &[]);
    // The root, src, src/sub, a and web.
    session.wait_for_stderr("watching 5 directories");
    expect_watches(&session, 5);

    project.write(".venv/lib/x.py", "x = 2\n");
    project.write(".venv/lib/new/z.py", "z = 1\n");
    project.write("venv/lib/y.py", "y = 2\n");
    project.write("a/__pycache__/m.pyc", "pyc 2\n");
    project.write("a/__pycache__/n.pyc", "pyc\n");
    project.write("web/node_modules/p/index.js", "// p 2\n");
    project.write("node_modules/q/index.js", "// a fresh npm install\n");
    fs::remove_dir_all(project.path("venv")).expect("remove venv");
    session.assert_holds_for(
        SETTLE,
        "no build for writes under .venv, venv, __pycache__ or node_modules",
        || builds(&project) == 1,
    );
    expect_watches(&session, 5);

    project.write("web/index.js", "// web 2\n");
    expect_build(&session, &project, 2, "an edit to web/index.js");
}

/// Restores a directory's mode when the test ends, so that the temporary project can be
/// removed whatever happens.
struct Locked(PathBuf);

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
    }
}

/// A chain of directories under `top` whose deepest path is longer than PATH_MAX (4096
/// bytes): no one, root included, can place an inotify watch on it or list it by its path.
/// Made with `mkdirat`/`openat`, one level at a time, since no path can name it.
fn too_deep(top: &Path) -> PathBuf {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let name = "d".repeat(250);
    fs::create_dir_all(top).expect("create the top of the deep tree");
    let mut dir = open(top, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty())
        .expect("open the top of the deep tree");
    let mut path = top.to_owned();
    while path.as_os_str().len() <= 4096 {
        mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = openat(
            &dir,
            name.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .expect("openat");
        path.push(&name);
    }
    path
}

#[test]
fn an_unreadable_directory_is_skipped_with_one_warning_naming_it() {
    let project = project().dir("locked");
    let locked = project.path("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod 000");
    let _restore = Locked(locked.clone());
    // Root (or CAP_DAC_OVERRIDE) reads a chmod 000 directory anyway. A path longer than
    // PATH_MAX stops everyone, so the test means something when run as root too.
    let privileged = fs::read_dir(&locked).is_ok();
    too_deep(&project.path("deep"));

    let session = start(&project, &[]);
    let expected = if privileged { 1 } else { 2 };
    session.wait_for_stderr_count("cannot watch", expected);
    let stderr = session.stderr();
    assert!(
        stderr.contains("file name too long") && stderr.contains("-i deep/"),
        "the deep directory is named with its reason and how to silence it{}",
        session.context()
    );
    if privileged {
        println!("note: running privileged, so chmod 000 on locked/ changes nothing");
    } else {
        assert!(
            stderr.contains(&format!(
                "cannot watch {}: permission denied",
                locked.display()
            )) && stderr.contains("-i locked` (--ignore)"),
            "the locked directory is named once, with how to silence it{}",
            session.context()
        );
    }

    project.write("src/sub/b.txt", "b2\n");
    expect_build(&session, &project, 2, "an edit to src/sub/b.txt");
    assert_eq!(
        session.stderr().matches("cannot watch").count(),
        expected,
        "each directory is warned about once{}",
        session.context()
    );
}
