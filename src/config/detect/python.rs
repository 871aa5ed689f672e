//! Zero config for a Python project: which server runs it and through which interpreter.
//!
//! A directory is a Python project when it has `pyproject.toml`, `requirements.txt`,
//! `manage.py`, `setup.py`, `setup.cfg` or `Pipfile`, or a `.py` file at its root. The server,
//! in this order: Django (`manage.py`), an ASGI app assigned at the top level of a likely module
//! (`app = FastAPI(`, also Starlette) under uvicorn, Flask (its app found as `flask run` finds
//! it), else `main.py` or `app.py` as a script. Every framework runs with its own reloader off
//! (reload is the reloader), bound to 127.0.0.1 on `PORT` when it is set (the dev proxy sets
//! it, a new port for each server with `--overlap`) and on the framework's usual port
//! otherwise; none of them reads `PORT` by itself, so the command is a shell line that expands
//! it when the server starts. The interpreter is the project's virtualenv when it has one, so
//! that its packages are the ones imported; the virtualenv is never watched.
//!
//! What serves the project is found by reading files, never by running Python: detection must
//! work, and say what it found, on a machine where the project's interpreter is broken. Only
//! for a Flask app is the interpreter asked one thing, the installed Flask's version (where
//! `--debug` goes differs); when it cannot say, the current form is used.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Program;

/// Files that make a directory a Python project even without a `.py` file at its root, and
/// which decide its server (so a change to one re-reads the configuration).
pub(crate) const MARKERS: [&str; 6] = [
    "pyproject.toml",
    "requirements.txt",
    "manage.py",
    "setup.py",
    "setup.cfg",
    "Pipfile",
];

/// Where an ASGI app is looked for, in order, as the module uvicorn imports.
const ASGI_MODULES: [(&str, &str); 7] = [
    ("main.py", "main"),
    ("app.py", "app"),
    ("api.py", "api"),
    ("server.py", "server"),
    ("asgi.py", "asgi"),
    ("app/main.py", "app.main"),
    ("src/main.py", "src.main"),
];

/// The modules `flask run` imports by itself when FLASK_APP is not set, in its order.
const FLASK_DEFAULT_MODULES: [&str; 2] = ["wsgi.py", "app.py"];

/// Other modules that may hold a Flask app, named to `flask --app` when one does.
const FLASK_OTHER_MODULES: [(&str, &str); 3] = [
    ("main.py", "main"),
    ("server.py", "server"),
    ("application.py", "application"),
];

/// A Python project: its virtualenv, if any, and the server found in it, if any.
#[derive(Debug, Clone)]
pub(crate) struct PythonProject {
    /// The virtualenvs at the project's root (each directory holding a `pyvenv.cfg`), the one
    /// used first: never watched.
    venvs: Vec<PathBuf>,
    /// The first virtualenv with a `bin/python`, and that interpreter as a command line
    /// names it, relative to the root.
    used: Option<(PathBuf, String)>,
    pub(crate) server: Option<Server>,
    /// The `.py` files at the root, sorted: what an error suggests running when no server is
    /// found.
    scripts: Vec<String>,
    /// The installed Flask is older than 2.3, whose `flask run` has no `--debug` of its own:
    /// debug mode is asked for before `run` (`flask --debug run`) instead. Found by
    /// [`PythonProject::ask_flask`].
    old_flask: bool,
}

/// What serves a Python project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Server {
    /// `manage.py runserver`.
    Django,
    /// `flask run`; `app` is what `--app` names, `None` when Flask finds the app by itself
    /// (FLASK_APP, `wsgi.py`, `app.py`); `found` says where it is, for the user.
    Flask { app: Option<String>, found: String },
    /// `uvicorn MODULE:NAME`, with the file the app was found in.
    Asgi {
        target: String,
        file: String,
        framework: &'static str,
    },
    /// `python main.py`.
    Script(String),
}

impl PythonProject {
    /// `None` when `root` does not look like a Python project at all.
    pub(crate) fn detect(root: &Path) -> Option<Self> {
        let scripts = root_scripts(root);
        if scripts.is_empty() && !MARKERS.iter().any(|name| root.join(name).is_file()) {
            return None;
        }
        let venvs = virtualenvs(root);
        let flask_app_env = std::env::var("FLASK_APP")
            .ok()
            .filter(|app| !app.trim().is_empty());
        let used = venvs.iter().find_map(|venv| {
            let name = venv.file_name()?.to_str()?;
            let python = format!("{name}/bin/python");
            root.join(&python).exists().then(|| (venv.clone(), python))
        });
        Some(PythonProject {
            venvs,
            used,
            server: find_server(root, flask_app_env.as_deref()),
            scripts,
            old_flask: false,
        })
    }

    /// For a Flask app, ask the interpreter which Flask it has: `run --debug` is Flask 2.3's
    /// and later's (and the only form that turns debug on with click 8.2 and later, seen
    /// with Flask 3.1), `--debug run` Flask 2.2's (Debian 12's). The version is read from the
    /// package's metadata, without importing Flask; an interpreter that cannot say (no
    /// Flask, no Python) leaves the current form, and the server's start says what is wrong.
    pub(crate) fn ask_flask(mut self, root: &Path) -> Self {
        if !matches!(self.server, Some(Server::Flask { .. })) {
            return self;
        }
        let mut ask = std::process::Command::new(self.python());
        ask.args([
            "-c",
            "import importlib.metadata as m; print(m.version('flask'))",
        ])
        .current_dir(root)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Ok(output) = crate::process::output(&mut ask)
            && output.status.success()
        {
            self.old_flask = flask_before_2_3(&String::from_utf8_lossy(&output.stdout));
        }
        self
    }

    /// Whether a web framework was found: such a project is served by it even when a
    /// `package.json` (a frontend's tooling) sits beside it.
    pub(crate) fn has_framework(&self) -> bool {
        matches!(
            self.server,
            Some(Server::Django | Server::Flask { .. } | Server::Asgi { .. })
        )
    }

    /// The interpreter as a command line names it: the virtualenv's, else `python3`.
    pub(crate) fn python(&self) -> &str {
        self.used
            .as_ref()
            .map_or("python3", |(_, python)| python.as_str())
    }

    /// The virtualenv the server runs in, if any.
    pub(crate) fn venv(&self) -> Option<&Path> {
        self.used.as_ref().map(|(venv, _)| venv.as_path())
    }

    /// The virtualenvs, never watched: a `pip install` writes thousands of `.py` files there.
    pub(crate) fn venvs(&self) -> &[PathBuf] {
        &self.venvs
    }

    /// The server's command: a shell line for a framework (it expands `PORT` when the server
    /// starts), an argv for a script. With what was detected, in words. `None` without a
    /// server.
    pub(crate) fn command(&self) -> Option<(Program, String)> {
        let python = self.python();
        let (command, what) = match self.server.as_ref()? {
            Server::Django => (
                Program::Shell(format!(
                    "exec {python} manage.py runserver --noreload 127.0.0.1:${{PORT:-8000}}"
                )),
                "Django project (manage.py)".to_owned(),
            ),
            Server::Flask { app, found } => {
                let app = app
                    .as_ref()
                    .map_or_else(String::new, |app| format!(" --app {app}"));
                (
                    Program::Shell(format!(
                        "exec {python} -m flask{app} {run} --no-reload --host 127.0.0.1 \
                         --port ${{PORT:-5000}}",
                        run = if self.old_flask {
                            "--debug run"
                        } else {
                            "run --debug"
                        }
                    )),
                    format!("Flask app ({found})"),
                )
            }
            Server::Asgi {
                target,
                file,
                framework,
            } => (
                Program::Shell(format!(
                    "exec {python} -m uvicorn {target} --host 127.0.0.1 --port ${{PORT:-8000}}"
                )),
                format!("{framework} app ({file})"),
            ),
            Server::Script(file) => (
                Program::Argv(vec![python.to_owned(), file.clone()]),
                format!("Python script ({file})"),
            ),
        };
        Some((command, what))
    }

    /// Why nothing runs, and the Python lines that would: for the error of a bare `reload`.
    pub(crate) fn nothing_to_serve(&self) -> String {
        let python = self.python();
        let script = self.scripts.first().map_or("server.py", String::as_str);
        format!(
            "this Python project has no server reload can find: no manage.py (Django), no \
             Flask app (FLASK_APP, wsgi.py or app.py), no `app = FastAPI(...)` in main.py or \
             app.py, and no main.py or app.py to run\n  help: name the server after `--`, \
             like `reload -- {python} {script}` or `reload -- {python} -m uvicorn \
             mymodule:app`; `reload init -- {python} {script}` writes it down"
        )
    }
}

fn find_server(root: &Path, flask_app_env: Option<&str>) -> Option<Server> {
    if root.join("manage.py").is_file() {
        return Some(Server::Django);
    }
    if let Some(asgi) = asgi_app(root) {
        return Some(asgi);
    }
    if let Some(flask) = flask_app(root, flask_app_env) {
        return Some(flask);
    }
    ["main.py", "app.py"]
        .iter()
        .find(|name| root.join(name).is_file())
        .map(|name| Server::Script((*name).to_owned()))
}

/// The first likely module that assigns a FastAPI or Starlette app at its top level.
fn asgi_app(root: &Path) -> Option<Server> {
    ASGI_MODULES.iter().find_map(|(file, module)| {
        let text = std::fs::read_to_string(root.join(file)).ok()?;
        let (name, framework) = text.lines().find_map(asgi_assignment)?;
        Some(Server::Asgi {
            target: format!("{module}:{name}"),
            file: (*file).to_owned(),
            framework,
        })
    })
}

/// `app = FastAPI(` or `app: FastAPI = FastAPI(...)` at the start of a line: the name
/// assigned and the framework. Indented lines are not at the module's top level, where
/// uvicorn looks.
fn asgi_assignment(line: &str) -> Option<(&str, &'static str)> {
    let (target, value) = line.split_once('=')?;
    let name = target.split(':').next()?.trim_end();
    if name.is_empty() || name.starts_with(char::is_whitespace) || !is_identifier(name) {
        return None;
    }
    let value = value.trim_start();
    ["FastAPI(", "fastapi.FastAPI(", "Starlette("]
        .iter()
        .find(|call| value.starts_with(*call))
        .map(|call| {
            let framework = if call.contains("FastAPI") {
                "FastAPI"
            } else {
                "Starlette"
            };
            (name, framework)
        })
}

/// A Flask app where `flask run` finds it (FLASK_APP, else `wsgi.py` or `app.py`), or in
/// another module or a package at the root that creates one (then named with `--app`). A
/// default module counts when it imports Flask or the project depends on Flask (a `wsgi.py`
/// often only imports the app from the package). `flask_app_env` is FLASK_APP, which Flask
/// reads itself: with it, `--app` is never given.
fn flask_app(root: &Path, flask_app_env: Option<&str>) -> Option<Server> {
    let depends = dependencies(root).contains("flask");
    let found = FLASK_DEFAULT_MODULES
        .iter()
        .find(|file| root.join(file).is_file())
        .filter(|file| depends || imports_flask(&root.join(file)))
        .map(|file| ((*file).to_owned(), None))
        .or_else(|| other_flask_module(root))
        .or_else(|| (depends && flask_app_env.is_some()).then(|| (String::new(), None)));
    let (file, app) = found?;
    Some(match flask_app_env {
        Some(env) => Server::Flask {
            app: None,
            found: format!("FLASK_APP={env}"),
        },
        None => Server::Flask { app, found: file },
    })
}

/// A module other than Flask's defaults, or a package at the root, that creates a Flask app:
/// its file, and its name for `--app`.
fn other_flask_module(root: &Path) -> Option<(String, Option<String>)> {
    let creates_app = |path: &Path| {
        imports_flask(path)
            && std::fs::read_to_string(path).is_ok_and(|text| text.contains("Flask(__name__"))
    };
    FLASK_OTHER_MODULES
        .iter()
        .find(|(file, _)| creates_app(&root.join(file)))
        .map(|(file, module)| ((*file).to_owned(), Some((*module).to_owned())))
        .or_else(|| {
            packages(root)
                .into_iter()
                .find(|package| creates_app(&root.join(package).join("__init__.py")))
                .map(|package| (format!("{package}/__init__.py"), Some(package)))
        })
}

/// Whether the module at `path` imports Flask at the start of a line.
fn imports_flask(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines().any(|line| {
            let line = line.trim_start();
            line.starts_with("from flask import") || line.starts_with("import flask")
        })
    })
}

/// The packages at the root (directories with an `__init__.py` and a name Python imports),
/// sorted.
fn packages(root: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("__init__.py").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_identifier(name))
        .collect();
    found.sort();
    found
}

/// The `.py` files at the root, sorted, `main.py` and `app.py` first.
fn root_scripts(root: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        // Python imports `.py` only, in that case.
        .filter(|name| Path::new(name).extension().is_some_and(|ext| ext == "py"))
        .collect();
    found.sort_by_key(|name| {
        (
            !["main.py", "app.py"].contains(&name.as_str()),
            name.clone(),
        )
    });
    found
}

/// The virtualenvs at the root: `.venv`, then `venv`, then any other directory holding a
/// `pyvenv.cfg` whose name a shell line can hold unquoted.
fn virtualenvs(root: &Path) -> Vec<PathBuf> {
    let mut others: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("pyvenv.cfg").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .collect();
    others.sort_by_key(|name| (name != ".venv", name != "venv", name.clone()));
    others.into_iter().map(|name| root.join(name)).collect()
}

/// The names of the project's dependencies (lowercase, `_` as `-`), from requirements.txt
/// and pyproject.toml (`[project] dependencies` and Poetry's table). Unreadable files count
/// as none: detection falls back on the modules' imports.
fn dependencies(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Ok(text) = std::fs::read_to_string(root.join("requirements.txt")) {
        names.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with('-') && !line.starts_with('#'))
                .filter_map(requirement_name),
        );
    }
    let pyproject = std::fs::read_to_string(root.join("pyproject.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok());
    if let Some(pyproject) = pyproject {
        let listed = pyproject
            .get("project")
            .and_then(|project| project.get("dependencies"))
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            .filter_map(requirement_name);
        names.extend(listed);
        let poetry = pyproject
            .get("tool")
            .and_then(|tool| tool.get("poetry"))
            .and_then(|poetry| poetry.get("dependencies"))
            .and_then(toml::Value::as_table)
            .into_iter()
            .flat_map(|table| table.keys())
            .filter_map(|name| requirement_name(name));
        names.extend(poetry);
    }
    names
}

/// The distribution's name at the start of a PEP 508 requirement (`Flask[async]>=3`),
/// normalised; `None` when the line starts with something else (a URL, an option).
fn requirement_name(requirement: &str) -> Option<String> {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(requirement.len());
    let name = &requirement[..end];
    (!name.is_empty()).then(|| name.to_ascii_lowercase().replace('_', "-"))
}

/// A Python identifier as far as module and variable names at a project's root go (ASCII).
fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a version as `importlib.metadata` prints it (`2.2.2`, `3.1.3`) is before 2.3.
fn flask_before_2_3(version: &str) -> bool {
    let mut parts = version
        .trim()
        .split('.')
        .map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (2, 3),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project with `files` (path, contents) in a temporary directory.
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        dir
    }

    fn server(files: &[(&str, &str)]) -> Option<Server> {
        PythonProject::detect(project(files).path())
            .expect("a Python project")
            .server
    }

    fn asgi(target: &str, file: &str) -> Server {
        let (target, file) = (target.to_owned(), file.to_owned());
        let framework = "FastAPI";
        Server::Asgi {
            target,
            file,
            framework,
        }
    }

    fn flask(app: Option<&str>, found: &str) -> Server {
        let (app, found) = (app.map(str::to_owned), found.to_owned());
        Server::Flask { app, found }
    }

    const FLASK_APP: &str = "from flask import Flask\n\napp = Flask(__name__)\n";

    #[test]
    fn flask_before_2_3_asks_for_debug_before_run() {
        for old in ["2.2.2\n", "1.1.4"] {
            assert!(flask_before_2_3(old), "{old:?}");
        }
        for current in ["2.3.0", "3.1.3\n", "10.0", "", "garbage"] {
            assert!(!flask_before_2_3(current), "{current:?}");
        }
        let dir = project(&[("app.py", FLASK_APP)]);
        let mut python = PythonProject::detect(dir.path()).unwrap();
        python.old_flask = true;
        let (Program::Shell(line), _) = python.command().unwrap() else {
            panic!("a Flask app runs through a shell line");
        };
        assert!(line.contains("-m flask --debug run --no-reload"), "{line}");
    }

    #[test]
    fn manage_py_is_django() {
        let files = [
            ("manage.py", "import django\n"),
            ("requirements.txt", "Django\n"),
        ];
        assert_eq!(server(&files), Some(Server::Django));
    }

    #[test]
    fn a_fastapi_app_assigned_at_the_top_level_runs_under_uvicorn() {
        let main = "from fastapi import FastAPI\n\napi: FastAPI = FastAPI(title=\"x\")\n";
        assert_eq!(
            server(&[("main.py", main)]),
            Some(asgi("main:api", "main.py"))
        );
        let nested = "import fastapi\napp = fastapi.FastAPI()\n";
        let files = [("requirements.txt", "fastapi\n"), ("app/main.py", nested)];
        assert_eq!(server(&files), Some(asgi("app.main:app", "app/main.py")));
        // Inside a function it is not where uvicorn looks: a plain script then.
        let factory = "from fastapi import FastAPI\ndef make():\n    app = FastAPI()\n";
        let script = Some(Server::Script("main.py".into()));
        assert_eq!(server(&[("main.py", factory)]), script);
    }

    #[test]
    fn flask_is_found_where_flask_run_finds_it() {
        assert_eq!(
            server(&[("app.py", FLASK_APP)]),
            Some(flask(None, "app.py"))
        );
        // wsgi.py first, as Flask looks; a dependency on Flask is enough when it only
        // imports the app.
        let depends = "[project]\ndependencies = [\"Flask[async]>=3\"]\n";
        let files = [
            ("wsgi.py", "from site_app import app\n"),
            ("pyproject.toml", depends),
        ];
        assert_eq!(server(&files), Some(flask(None, "wsgi.py")));
        // A package (Flask's tutorial layout) is named with --app.
        let factory = "from flask import Flask\ndef create_app():\n    return Flask(__name__)\n";
        let files = [
            ("flaskr/__init__.py", factory),
            ("requirements.txt", "flask==3.1\n"),
        ];
        assert_eq!(
            server(&files),
            Some(flask(Some("flaskr"), "flaskr/__init__.py"))
        );
    }

    #[test]
    fn flask_app_in_the_environment_is_left_to_flask() {
        let dir = project(&[
            (
                "flaskr/__init__.py",
                "from flask import Flask\napp = Flask(__name__)\n",
            ),
            ("requirements.txt", "flask\n"),
        ]);
        let found = flask_app(dir.path(), Some("flaskr:create_app()"));
        assert_eq!(found, Some(flask(None, "FLASK_APP=flaskr:create_app()")));
        let only_env = project(&[("requirements.txt", "flask\n")]);
        assert!(flask_app(only_env.path(), Some("site_app")).is_some());
        assert!(flask_app(only_env.path(), None).is_none());
    }

    #[test]
    fn without_a_framework_main_py_or_app_py_runs_as_a_script() {
        let files = [
            ("app.py", "print('hi')\n"),
            ("requirements.txt", "requests\n"),
        ];
        assert_eq!(server(&files), Some(Server::Script("app.py".into())));
        let pyproject = "[project]\nname = \"x\"\n";
        assert_eq!(server(&[("pyproject.toml", pyproject)]), None);
    }

    #[test]
    fn a_directory_without_python_is_no_python_project() {
        assert!(PythonProject::detect(project(&[("README.md", "hi\n")]).path()).is_none());
    }

    #[test]
    fn the_virtualenv_in_the_project_runs_the_server_and_is_never_watched() {
        let dir = project(&[
            ("manage.py", ""),
            ("env/pyvenv.cfg", "home = /usr/bin\n"),
            ("env/bin/python", ""),
            (".venv/pyvenv.cfg", "home = /usr/bin\n"),
            (".venv/bin/python", ""),
        ]);
        let python = PythonProject::detect(dir.path()).unwrap();
        assert_eq!(python.python(), ".venv/bin/python");
        let venvs = [dir.path().join(".venv"), dir.path().join("env")];
        assert_eq!(python.venvs(), venvs);
        let line = "exec .venv/bin/python manage.py runserver --noreload 127.0.0.1:${PORT:-8000}";
        let what = "Django project (manage.py)".to_owned();
        assert_eq!(python.command(), Some((Program::Shell(line.into()), what)));
    }

    #[test]
    fn without_a_virtualenv_python3_runs_it() {
        let dir = project(&[("app.py", FLASK_APP)]);
        let (command, _) = PythonProject::detect(dir.path())
            .unwrap()
            .command()
            .unwrap();
        let line = "exec python3 -m flask run --debug --no-reload --host 127.0.0.1 \
                    --port ${PORT:-5000}";
        assert_eq!(command, Program::Shell(line.into()));
    }

    #[test]
    fn a_project_with_nothing_to_serve_is_told_python_lines_never_make() {
        let dir = project(&[("requirements.txt", "requests\n"), ("worker.py", "")]);
        let python = PythonProject::detect(dir.path()).unwrap();
        assert!(python.command().is_none());
        let said = python.nothing_to_serve();
        assert!(said.contains("reload -- python3 worker.py"), "{said}");
        assert!(!said.contains("make"), "{said}");
    }

    #[test]
    fn requirement_names_are_read_as_pip_reads_them() {
        assert_eq!(requirement_name("Flask>=3.0"), Some("flask".into()));
        assert_eq!(requirement_name("flask_cors[x]"), Some("flask-cors".into()));
        assert_eq!(requirement_name(">=1"), None);
    }
}
