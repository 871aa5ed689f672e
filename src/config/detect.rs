//! Zero-config: what a project directory says about how to build and run it, when no config
//! file does. Checked in this order: a Cargo package or workspace, `go.mod`, a Python web app
//! (Django, Flask, FastAPI: see `python.rs`), `package.json`, a Makefile with a `run` target,
//! any other Python project. A web framework goes before `package.json` because Django and
//! Flask projects often carry one for their frontend's tooling; a plain script goes after the
//! Makefile, which says more about how the project wants to be run.

mod python;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process;

use anyhow::Result;
use serde::Deserialize;

use super::{BuildCommand, Program, usage};
pub(crate) use python::PythonProject;

/// A project kind reload knows how to build and run.
#[derive(Debug)]
pub(crate) enum Project {
    Cargo(CargoProject),
    Go,
    Python(PythonProject),
    Node { program: Program },
    Make,
}

/// What a detected project needs watched and ignored.
#[derive(Debug, Default)]
pub(crate) struct WatchDefaults {
    pub(crate) extensions: Vec<String>,
    pub(crate) include: Vec<String>,
    pub(crate) ignore: Vec<String>,
}

/// The complete zero-config plan for a project.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) build: Option<BuildCommand>,
    pub(crate) program: Program,
    pub(crate) env: BTreeMap<String, String>,
    /// One line for the user, e.g. "Go module: go build -o ./tmp/main ., run ./tmp/main".
    pub(crate) description: String,
    /// For `reload init`, which can only write a command line and a path: a Cargo build as a
    /// user would type it (other builds are command lines already), and where it puts the
    /// binary that `CargoArtifact` runs.
    pub(crate) build_line: Option<String>,
    pub(crate) cargo_binary: Option<PathBuf>,
}

/// Where Go builds go, as air does it.
pub(crate) const GO_BINARY: &str = "./tmp/main";

/// The files at a project's root that [`detect`] reads to tell its kind and plan: a change to
/// one (or one appearing) can change what zero-config decides. A new project kind adds the
/// files it reads here, so that reload follows them while it runs.
pub(crate) const MARKERS: &[&str] = &[
    "Cargo.toml",
    "go.mod",
    "package.json",
    "Makefile",
    "makefile",
    "GNUmakefile",
];

/// The names make looks for, in its order.
const MAKEFILES: [&str; 3] = ["GNUmakefile", "makefile", "Makefile"];

/// Every file that detection read (or looked for) in `root`: the [`MARKERS`] (Python's too), and in a Cargo
/// project the manifest of every member and path dependency, which decide what is watched.
pub(crate) fn files_read(root: &Path, project: Option<&Project>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = MARKERS
        .iter()
        .chain(&python::MARKERS)
        .map(|name| root.join(name))
        .collect();
    if let Some(Project::Cargo(cargo)) = project {
        for manifest in cargo.manifests() {
            if !files.contains(&manifest) {
                files.push(manifest);
            }
        }
    }
    files
}

pub(crate) fn detect(root: &Path) -> Option<Project> {
    if root.join("Cargo.toml").is_file() {
        return Some(Project::Cargo(CargoProject::read(root)));
    }
    if root.join("go.mod").is_file() {
        return Some(Project::Go);
    }
    let python = PythonProject::detect(root).map(|python| python.ask_flask(root));
    if let Some(python) = python.as_ref().filter(|python| python.has_framework()) {
        return Some(Project::Python(python.clone()));
    }
    if let Some(program) = node_program(root) {
        return Some(Project::Node { program });
    }
    let has_run_target = MAKEFILES.iter().any(|name| {
        std::fs::read_to_string(root.join(name))
            .is_ok_and(|text| text.lines().any(|line| line.starts_with("run:")))
    });
    if has_run_target {
        return Some(Project::Make);
    }
    python.map(Project::Python)
}

impl Project {
    /// What the project was recognised by, for the start line.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Project::Cargo(_) => "Cargo project",
            Project::Go => "Go module",
            Project::Node { .. } => "package.json",
            Project::Make => "Makefile",
            Project::Python(_) => "Python project",
        }
    }

    /// Build and run the project with nothing else to go on.
    pub(crate) fn plan(
        &self,
        root: &Path,
        bin: Option<&str>,
        package: Option<&str>,
    ) -> Result<Plan> {
        let (program, description) = match self {
            Project::Cargo(cargo) => return cargo.plan(package, bin),
            Project::Go => (
                Program::Argv(vec![GO_BINARY.to_owned()]),
                format!("Go module: go build -o {GO_BINARY} ., run {GO_BINARY}"),
            ),
            Project::Node { program } => {
                let description = format!("package.json: no build, run {}", words(program));
                (program.clone(), description)
            }
            Project::Python(python) => {
                let (program, what) = python
                    .command()
                    .ok_or_else(|| usage(python.nothing_to_serve()))?;
                // The `exec` is there so that the stop signal reaches the server, not the
                // shell; the user reads the server's command.
                let shown = words(&program);
                let shown = shown.strip_prefix("exec ").unwrap_or(&shown);
                (program, format!("{what}: no build, run {shown}"))
            }
            Project::Make => (
                Program::Argv(vec!["make".to_owned(), "run".to_owned()]),
                "Makefile: run `make run`".to_owned(),
            ),
        };
        Ok(Plan {
            build: self.build_for_program(),
            program,
            env: self.run_env(root),
            description,
            build_line: None,
            cargo_binary: None,
        })
    }

    /// Environment the server needs whatever the config says: for Node, the package's own
    /// tools come first on PATH, as `npm run` does; for Python, the virtualenv's, as its
    /// `activate` does (so `-- python app.py` and the server's own subprocesses use it), and
    /// unbuffered output, so a `print` shows when it runs rather than when a buffer fills.
    pub(crate) fn run_env(&self, root: &Path) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let first_on_path = |dir: PathBuf| {
            let mut path = dir.into_os_string();
            if let Some(old) = std::env::var_os("PATH") {
                path.push(":");
                path.push(old);
            }
            path.to_string_lossy().into_owned()
        };
        match self {
            Project::Node { .. } => {
                env.insert(
                    "PATH".to_owned(),
                    first_on_path(root.join("node_modules/.bin")),
                );
            }
            Project::Python(python) => {
                env.insert("PYTHONUNBUFFERED".to_owned(), "1".to_owned());
                if let Some(venv) = python.venv() {
                    env.insert("PATH".to_owned(), first_on_path(venv.join("bin")));
                    env.insert(
                        "VIRTUAL_ENV".to_owned(),
                        venv.to_string_lossy().into_owned(),
                    );
                }
            }
            Project::Cargo(_) | Project::Go | Project::Make => {}
        }
        env
    }

    /// The build step when the user named the program but not the build.
    pub(crate) fn build_for_program(&self) -> Option<BuildCommand> {
        match self {
            Project::Cargo(_) => Some(BuildCommand::Shell("cargo build".to_owned())),
            Project::Go => Some(BuildCommand::Shell(format!("go build -o {GO_BINARY} ."))),
            Project::Python(_) | Project::Node { .. } | Project::Make => None,
        }
    }

    /// Paths never watched, whatever the config says: what builds write. Cargo.lock is among
    /// them because the first build of a fresh project writes it, which would cancel that very
    /// build; after `cargo update`, the next save (or the `r` key) picks the new lock file up.
    pub(crate) fn build_outputs(&self, root: &Path) -> Vec<PathBuf> {
        match self {
            Project::Cargo(cargo) => vec![cargo.target_directory.clone(), root.join("Cargo.lock")],
            Project::Go => vec![root.join("tmp")],
            // Already never entered when named `.venv` or `venv`; others by their pyvenv.cfg.
            Project::Python(python) => python.venvs().to_vec(),
            Project::Node { .. } | Project::Make => vec![],
        }
    }

    /// What to watch when neither a flag nor a config file says: the root, except in a Cargo
    /// workspace where `-p` or `--bin` chose a package: then that package, its path
    /// dependencies and the workspace's Cargo.toml, so an edit in another member builds nothing.
    pub(crate) fn watch_paths(
        &self,
        root: &Path,
        package: Option<&str>,
        bin: Option<&str>,
    ) -> Vec<PathBuf> {
        match self {
            Project::Cargo(cargo) => cargo
                .sources(root, package, bin)
                .or_else(|| Some(cargo.with_outside_dependencies(root))),
            Project::Go | Project::Python(_) | Project::Node { .. } | Project::Make => None,
        }
        .unwrap_or_else(|| vec![root.to_owned()])
    }

    /// Why the project's own files could not be read (cargo's message), if they could not.
    pub(crate) fn unreadable(&self) -> Option<&str> {
        match self {
            Project::Cargo(CargoProject {
                packages: Err(err), ..
            }) => Some(err),
            _ => None,
        }
    }

    /// Watch settings used when no config file exists.
    pub(crate) fn watch_defaults(&self) -> WatchDefaults {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        match self {
            Project::Cargo(_) | Project::Make => WatchDefaults::default(),
            // air's defaults.
            Project::Go => WatchDefaults {
                extensions: strings(&["go", "tpl", "tmpl", "html"]),
                include: strings(&["go.mod", "go.sum"]),
                ignore: strings(&["/assets", "/tmp", "/vendor", "/testdata"]),
            },
            Project::Node { .. } => WatchDefaults {
                extensions: strings(&[
                    "js", "mjs", "cjs", "ts", "mts", "cts", "jsx", "tsx", "json",
                ]),
                include: Vec::new(),
                ignore: strings(&["node_modules"]),
            },
            // Templates are read once by Django and by Flask outside debug mode, so an edit
            // to one is a restart, whatever its extension; static files too, so the dev
            // proxy reloads the page. The tools' caches and reports hold Python and HTML that
            // no server reads.
            Project::Python(_) => WatchDefaults {
                extensions: strings(&["py", "html", "htm", "jinja", "jinja2", "j2"]),
                include: strings(&["**/templates/**", "**/static/**", ".env", ".flaskenv"]),
                ignore: strings(&[
                    ".tox",
                    ".nox",
                    ".mypy_cache",
                    ".pytest_cache",
                    ".ruff_cache",
                    "htmlcov",
                    "*.egg-info",
                ]),
            },
        }
    }
}

#[derive(Deserialize)]
struct PackageJson {
    main: Option<String>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
}

/// The `start` script's command, else `node <main>`, else `node index.js` when it exists.
/// A start script that is a plain command line runs directly, without `sh -c`: dash does not
/// exec a script's last command, so the server would be `sh` with node as its child, and the
/// stop signal would reach the shell rather than the server.
fn node_program(root: &Path) -> Option<Program> {
    let text = std::fs::read_to_string(root.join("package.json")).ok()?;
    let package: PackageJson = serde_json::from_str(&text).ok()?;
    if let Some(start) = package.scripts.get("start") {
        return Some(match crate::shell::plain_words(start) {
            Some(words) => Program::Argv(words.into_iter().map(str::to_owned).collect()),
            None => Program::Shell(start.clone()),
        });
    }
    let main = package
        .main
        .or_else(|| root.join("index.js").is_file().then(|| "index.js".into()))?;
    Some(Program::Argv(vec!["node".to_owned(), main]))
}

#[derive(Debug)]
pub(crate) struct CargoProject {
    /// Never watched: builds write here.
    pub(crate) target_directory: PathBuf,
    /// The workspace's packages, or why cargo could not list them.
    packages: Result<Vec<Package>, String>,
}

/// A package of the workspace, as far as choosing and watching it goes.
#[derive(Debug)]
struct Package {
    name: String,
    bins: Vec<String>,
    /// The directory of its Cargo.toml.
    dir: PathBuf,
    /// Directories of the path dependencies a build of it compiles (not dev-dependencies).
    path_dependencies: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct Metadata {
    target_directory: PathBuf,
    packages: Vec<MetadataPackage>,
}

#[derive(Deserialize)]
struct MetadataPackage {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// Even with `--no-deps`, cargo lists each member's dependencies, with `path` for path ones.
#[derive(Deserialize)]
struct Dependency {
    path: Option<PathBuf>,
    /// `null` (normal), `"build"` or `"dev"`.
    kind: Option<String>,
}

impl CargoProject {
    /// Ask cargo (offline, no dependency resolution) so that a custom `target-dir` and every
    /// binary of a workspace are known.
    fn read(root: &Path) -> Self {
        let output = process::output(
            Command::new("cargo")
                .args([
                    "metadata",
                    "--no-deps",
                    "--format-version",
                    "1",
                    "--offline",
                ])
                .arg("--manifest-path")
                .arg(root.join("Cargo.toml"))
                .stdin(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let metadata = match output {
            Ok(out) if out.status.success() => serde_json::from_slice::<Metadata>(&out.stdout)
                .map_err(|err| format!("cannot read `cargo metadata` output: {err}")),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(err) => Err(format!("cannot run cargo: {err}")),
        };
        match metadata {
            Ok(metadata) => CargoProject {
                target_directory: metadata.target_directory,
                packages: Ok(metadata.packages.into_iter().map(Package::from).collect()),
            },
            Err(err) => CargoProject {
                target_directory: root.join("target"),
                packages: Err(err),
            },
        }
    }

    /// Build the chosen binary with cargo's JSON diagnostics and run what it built.
    fn plan(&self, package: Option<&str>, bin: Option<&str>) -> Result<Plan> {
        let (package, bin) = self.select(package, bin)?;
        let mut line = vec!["cargo", "build"];
        if let Some(package) = &package {
            line.extend(["-p", package]);
        }
        line.extend(["--bin", &bin]);
        let mut args: Vec<String> = line.iter().map(|s| (*s).to_owned()).collect();
        args.insert(2, "--message-format=json-render-diagnostics".to_owned());
        let line = line.join(" ");
        Ok(Plan {
            build: Some(BuildCommand::Cargo { args }),
            program: Program::CargoArtifact,
            env: BTreeMap::new(),
            description: format!("Cargo project: {line}, run it"),
            build_line: Some(line),
            cargo_binary: Some(self.target_directory.join("debug").join(&bin)),
        })
    }

    /// The binary to build and run (and its package when one was asked for): `--bin NAME` when
    /// given and it exists, else the only one.
    fn select(&self, package: Option<&str>, bin: Option<&str>) -> Result<(Option<String>, String)> {
        let packages = self.packages.as_ref().map_err(|err| {
            usage(format!(
                "this Cargo project cannot be read, so reload cannot pick a binary:\n{err}"
            ))
        })?;
        let chosen: Vec<&Package> = match package {
            Some(name) => {
                let found: Vec<_> = packages.iter().filter(|p| p.name == name).collect();
                if found.is_empty() {
                    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
                    return Err(usage(format!(
                        "-p {name}: no such package in this workspace; it has: {}",
                        names.join(", ")
                    )));
                }
                found
            }
            None => packages.iter().collect(),
        };
        let bins: Vec<&str> = chosen
            .iter()
            .flat_map(|p| &p.bins)
            .map(String::as_str)
            .collect();
        let package = package.map(str::to_owned);
        match (bin, bins.as_slice()) {
            (Some(name), _) if bins.contains(&name) => Ok((package, name.to_owned())),
            (Some(name), []) => Err(usage(format!(
                "--bin {name}: this Cargo project has no binary"
            ))),
            (Some(name), _) => Err(usage(format!(
                "--bin {name}: no such binary; this Cargo project has: {}",
                bins.join(", ")
            ))),
            (None, [only]) => Ok((package, (*only).to_owned())),
            (None, []) => Err(usage(
                "this Cargo project has no binary to run (no src/main.rs or [[bin]])\n  \
                 help: pass the server to run after `--`, or add a binary target",
            )),
            (None, several) => Err(usage(format!(
                "this Cargo project has several binaries: {}\n  help: choose one with --bin NAME",
                several.join(", ")
            ))),
        }
    }

    /// What a build of the package chosen with `-p` (or the one holding `--bin`) reads: its
    /// directory, those of its path dependencies (transitively), and the workspace's Cargo.toml.
    /// `None` when nothing narrower than the whole root can be said.
    fn sources(
        &self,
        root: &Path,
        package: Option<&str>,
        bin: Option<&str>,
    ) -> Option<Vec<PathBuf>> {
        let packages = self.packages.as_ref().ok()?;
        let mut holding = packages.iter().filter(|p| match (package, bin) {
            (Some(name), _) => p.name == name,
            (None, Some(bin)) => p.bins.iter().any(|b| b == bin),
            (None, None) => false,
        });
        let chosen = holding.next()?;
        if holding.next().is_some() {
            return None;
        }
        let mut dirs: Vec<PathBuf> = vec![chosen.dir.clone()];
        let mut next = 0;
        while let Some(dir) = dirs.get(next).cloned() {
            next += 1;
            let deps = packages
                .iter()
                .find(|p| p.dir == dir)
                .map(|p| p.path_dependencies.clone())
                .unwrap_or_default();
            for dep in deps {
                if !dirs.contains(&dep) {
                    dirs.push(dep);
                }
            }
        }
        let dirs: Vec<PathBuf> = dirs
            .into_iter()
            .filter_map(|dir| dir.canonicalize().ok())
            .collect();
        let root = root.canonicalize().ok()?;
        // The root package of a workspace holds every member: nothing to narrow.
        if dirs.iter().any(|dir| root.starts_with(dir)) {
            return None;
        }
        let mut dirs = outermost(dirs);
        let manifest = root.join("Cargo.toml");
        if manifest.is_file() {
            dirs.push(manifest);
        }
        Some(dirs)
    }
}

impl CargoProject {
    /// The manifests of every member and of every path dependency: adding a path dependency
    /// to one changes what a build reads.
    fn manifests(&self) -> Vec<PathBuf> {
        let Ok(packages) = &self.packages else {
            return Vec::new();
        };
        let mut manifests: Vec<PathBuf> = packages
            .iter()
            .flat_map(|p| std::iter::once(&p.dir).chain(&p.path_dependencies))
            .map(|dir| canonical(dir).join("Cargo.toml"))
            .collect();
        manifests.sort();
        manifests.dedup();
        manifests
    }

    /// The root, and the path dependencies outside it: a crate at `../shared` is part of every
    /// build, and nothing under the root would see its edits.
    fn with_outside_dependencies(&self, root: &Path) -> Vec<PathBuf> {
        let root = canonical(root);
        let dirs: Vec<PathBuf> = self
            .packages
            .iter()
            .flatten()
            .flat_map(|p| &p.path_dependencies)
            .map(|dir| canonical(dir))
            .filter(|dir| !dir.starts_with(&root) && dir.is_dir())
            .collect();
        let mut dirs = outermost(dirs);
        dirs.insert(0, root);
        dirs
    }
}

/// A detected program as the user would type it.
fn words(program: &Program) -> String {
    match program {
        Program::Shell(line) => line.clone(),
        Program::Argv(argv) => argv.join(" "),
        Program::CargoArtifact => String::new(),
    }
}

/// `dirs` sorted, each once, without those inside another one (watched with it).
fn outermost(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    dirs.sort();
    dirs.dedup();
    let all = dirs.clone();
    dirs.retain(|dir| !all.iter().any(|o| o != dir && dir.starts_with(o)));
    dirs
}

/// `path` without symlinks or `..`, as watched paths and events name it; as it is when that
/// cannot be said (it does not exist).
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

impl From<MetadataPackage> for Package {
    fn from(package: MetadataPackage) -> Self {
        Package {
            name: package.name,
            bins: package
                .targets
                .into_iter()
                .filter(|t| t.kind.iter().any(|k| k == "bin"))
                .map(|t| t.name)
                .collect(),
            dir: package
                .manifest_path
                .parent()
                .map(Path::to_owned)
                .unwrap_or_default(),
            path_dependencies: package
                .dependencies
                .into_iter()
                .filter(|d| d.kind.as_deref() != Some("dev"))
                .filter_map(|d| d.path)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package `name` in `root/name`, its path dependencies being `root/dep` for each dep.
    fn package(root: &Path, name: &str, bins: &[&str], deps: &[&str]) -> Package {
        Package {
            name: name.to_owned(),
            bins: bins.iter().map(|b| (*b).to_owned()).collect(),
            dir: root.join(name),
            path_dependencies: deps.iter().map(|d| root.join(d)).collect(),
        }
    }

    fn cargo(root: &Path, packages: Vec<Package>) -> CargoProject {
        CargoProject {
            target_directory: root.join("target"),
            packages: Ok(packages),
        }
    }

    #[test]
    fn the_only_binary_is_chosen() {
        let cargo = cargo(
            Path::new("/p"),
            vec![package(Path::new("/p"), "app", &["app"], &[])],
        );
        assert_eq!(cargo.select(None, None).unwrap(), (None, "app".to_owned()));
    }

    #[test]
    fn several_binaries_ask_for_bin_and_list_them() {
        let root = Path::new("/p");
        let cargo = cargo(
            root,
            vec![
                package(root, "a", &["api", "worker"], &[]),
                package(root, "b", &[], &[]),
            ],
        );
        assert_eq!(cargo.select(None, Some("worker")).unwrap().1, "worker");
        for (package, bin, says) in [
            (None, None, "api, worker"),
            (None, None, "--bin"),
            (None, Some("nope"), "no such binary"),
            (Some("b"), None, "no binary"),
            (Some("zzz"), None, "no such package"),
        ] {
            let err = cargo.select(package, bin).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn node_projects_run_their_start_script_or_main() {
        let dir = tempfile::tempdir().unwrap();
        let node = |json: &str| {
            std::fs::write(dir.path().join("package.json"), json).unwrap();
            node_program(dir.path())
        };
        let argv =
            |words: &[&str]| Some(Program::Argv(words.iter().map(|w| (*w).into()).collect()));
        let start = r#"{"scripts":{"start":"node server.js"}}"#;
        assert_eq!(node(start), argv(&["node", "server.js"]));
        assert_eq!(node(r#"{"main":"app.js"}"#), argv(&["node", "app.js"]));
    }

    #[test]
    fn a_python_framework_goes_before_package_json_and_a_plain_script_after_the_makefile() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("package.json", r#"{"main":"index.js"}"#);
        write("Makefile", "run:\n\t./server\n");
        write("requirements.txt", "requests\n");
        write("main.py", "print('hi')\n");
        assert!(matches!(detect(dir.path()), Some(Project::Node { .. })));
        std::fs::remove_file(dir.path().join("package.json")).unwrap();
        assert!(matches!(detect(dir.path()), Some(Project::Make)));
        std::fs::remove_file(dir.path().join("Makefile")).unwrap();
        assert!(matches!(detect(dir.path()), Some(Project::Python(_))));
        write("package.json", r#"{"main":"index.js"}"#);
        write("manage.py", "");
        let Some(Project::Python(python)) = detect(dir.path()) else {
            panic!("Django beside a package.json is served by Django");
        };
        assert!(python.has_framework());
    }

    #[test]
    fn the_files_read_are_the_markers_and_every_manifest_and_outside_crates_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        for crate_dir in ["ws/app", "ws/inner", "outside"] {
            std::fs::create_dir_all(dir.path().join(crate_dir)).unwrap();
        }
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("ws");
        // As cargo writes them: absolute, not always canonical.
        let app = package(&root, "app", &["app"], &["app/../inner", "../outside"]);
        let project = Project::Cargo(cargo(&root, vec![app]));
        let read = files_read(&root, Some(&project));
        for marker in MARKERS {
            assert!(read.contains(&root.join(marker)), "{marker}: {read:?}");
        }
        for makefile in MAKEFILES {
            assert!(
                MARKERS.contains(&makefile),
                "{makefile} is read, so it decides"
            );
        }
        for manifest in ["ws/app", "ws/inner", "outside"] {
            let manifest = base.join(manifest).join("Cargo.toml");
            assert!(read.contains(&manifest), "{}: {read:?}", manifest.display());
        }
        let watched = project.watch_paths(&root, None, None);
        assert_eq!(watched, vec![root.clone(), base.join("outside")]);
        let markers = MARKERS.iter().chain(&python::MARKERS);
        let markers: Vec<PathBuf> = markers.map(|m| root.join(m)).collect();
        assert_eq!(files_read(&root, Some(&Project::Go)), markers);
    }

    #[test]
    fn a_chosen_workspace_package_is_watched_with_its_path_dependencies_only() {
        let dir = tempfile::tempdir().unwrap();
        for member in ["api", "worker", "shared", "common"] {
            std::fs::create_dir_all(dir.path().join(member)).unwrap();
        }
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        let root = dir.path().canonicalize().unwrap();
        let project = Project::Cargo(cargo(
            &root,
            vec![
                package(&root, "api", &["api"], &["shared"]),
                package(&root, "worker", &["worker"], &["common"]),
                package(&root, "shared", &[], &["common"]),
                package(&root, "common", &[], &[]),
            ],
        ));
        let expected: Vec<PathBuf> = ["api", "common", "shared", "Cargo.toml"]
            .iter()
            .map(|name| root.join(name))
            .collect();
        assert_eq!(project.watch_paths(&root, Some("api"), None), expected);
        assert_eq!(project.watch_paths(&root, None, Some("api")), expected);
        assert_eq!(project.watch_paths(&root, None, None), vec![root.clone()]);
    }
}
