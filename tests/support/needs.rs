//! What a test needs beyond Rust and a Unix: programs on PATH (go, node, chromium, ...),
//! Debian's Gin, Python modules. A test that needs one calls [`require`] (or
//! [`require_python`]) first: on a machine without it the test fails at once with one line
//! naming what is missing and the command that installs it, not minutes later with a timeout
//! waiting for a server that could never start, its cause buried in reload's stderr.
//!
//! Each lookup is made once per test binary. Shared as `support::needs`, or included through
//! `#[path]` beside browser.rs (tests/browser.rs, the dev-loop bench), whose `Browser::launch`
//! requires chromium through `super::needs`. Only std here.

use std::collections::BTreeMap;
use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

/// What `.ci/run` installs; every miss points there too.
const EVERYTHING: &str = "or run .ci/run, which installs everything the tests need";

/// Something a test needs that Rust does not bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Go,
    Node,
    Chromium,
    /// `vim`, or Debian's vim-tiny (`vim.tiny`), which has the same save.
    Vim,
    Make,
    Python3,
    /// Debian's Gin sources, for a Gin app built in GOPATH mode without a network.
    Gin,
}

/// Where Debian's golang-github-gin-gonic-gin-dev puts Gin: the GOPATH a Gin test builds with.
pub(crate) const GOPATH: &str = "/usr/share/gocode";

const TOOLS: usize = 7;

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Go => "go",
            Tool::Node => "node",
            Tool::Chromium => "chromium",
            Tool::Vim => "vim",
            Tool::Make => "make",
            Tool::Python3 => "python3",
            Tool::Gin => "Debian's Gin",
        }
    }

    /// The Debian/Ubuntu package that provides it.
    fn package(self) -> &'static str {
        match self {
            Tool::Go => "golang-go",
            Tool::Node => "nodejs",
            Tool::Chromium => "chromium",
            Tool::Vim => "vim-tiny",
            Tool::Make => "make",
            Tool::Python3 => "python3",
            Tool::Gin => "golang-github-gin-gonic-gin-dev",
        }
    }

    /// Programs that provide it, the first one found wins.
    fn programs(self) -> &'static [&'static str] {
        match self {
            Tool::Go => &["go"],
            Tool::Node => &["node"],
            Tool::Chromium => &["chromium"],
            Tool::Vim => &["vim", "vim.tiny"],
            Tool::Make => &["make"],
            Tool::Python3 => &["python3"],
            Tool::Gin => &[],
        }
    }

    /// Where it is on this machine, or what a miss says is not there.
    fn find(self) -> Result<PathBuf, String> {
        if self == Tool::Gin {
            let dir = Path::new(GOPATH).join("src/github.com/gin-gonic/gin");
            return if dir.is_dir() {
                Ok(dir)
            } else {
                Err(format!("which is not in {}", dir.display()))
            };
        }
        let programs = self.programs();
        programs
            .iter()
            .find_map(|program| on_path(program))
            .ok_or_else(|| match programs {
                [one] if *one == self.name() => "which is not on PATH".to_owned(),
                _ => format!("which is not on PATH (as {})", programs.join(" or ")),
            })
    }
}

/// Fail the calling test at once, in one line, unless `tool` is here; where it is (the program
/// found on PATH, Gin's directory).
#[track_caller]
pub(crate) fn require(tool: Tool) -> &'static Path {
    static FOUND: [OnceLock<Result<PathBuf, String>>; TOOLS] = [const { OnceLock::new() }; TOOLS];
    match FOUND[tool as usize].get_or_init(|| tool.find()) {
        Ok(path) => path,
        Err(missing) => panic!(
            "this test needs {}, {missing}: install it with `sudo apt-get install {}` ({EVERYTHING})",
            tool.name(),
            tool.package()
        ),
    }
}

/// Fail the calling test at once, in one line, unless python3 can `import module`.
#[track_caller]
pub(crate) fn require_python(module: &str) {
    static IMPORTS: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());
    require(Tool::Python3);
    let imports = *IMPORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(module.to_owned())
        .or_insert_with(|| {
            Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        });
    assert!(
        imports,
        "this test needs the Python module {module}, which python3 cannot import: install it \
         with `{}` ({EVERYTHING})",
        python_install(module)
    );
}

/// How to install `module` for the python3 on PATH: Debian's own python3 (prefix /usr) refuses
/// `pip install` into it (PEP 668) and has the module as a package; any other (pyenv, a venv)
/// takes pip.
fn python_install(module: &str) -> String {
    let prefix = Command::new("python3")
        .args(["-c", "import sys; print(sys.prefix)"])
        .stderr(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    if prefix == "/usr" {
        format!("sudo apt-get install python3-{module}")
    } else {
        format!("python3 -m pip install {module}")
    }
}

/// The executable `program` in the first PATH directory that has one, as a shell finds it.
fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| {
            path.metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}
