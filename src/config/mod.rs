//! Configuration: the command line, reload.toml and what the project looks like, resolved once
//! into a [`Config`]. Defaults < file < command line. No other module sees clap, toml, or an
//! `Option` that means "use the default"; every duration is a `Duration`, every glob compiled.

mod detect;
mod file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use nix::sys::signal::Signal;

use crate::cli::Args;
pub use file::ConfigError;
use file::{FileConfig, RunCmd, Source};

/// Name of the config file looked for in the current directory.
pub const CONFIG_FILE: &str = "reload.toml";

/// Everything the dev loop needs, resolved and checked.
#[derive(Debug)]
pub struct Config {
    /// Absolute project root: builds and the server run here, relative paths start here.
    pub root: PathBuf,
    pub watch: WatchConfig,
    /// `None`: no build step, a change restarts the server directly.
    pub build: Option<BuildCommand>,
    /// `None`: build-only mode, nothing is kept running.
    pub run: Option<RunConfig>,
    /// One line for the user: where this configuration came from.
    pub origin: String,
}

#[derive(Debug)]
pub struct WatchConfig {
    /// Absolute directories (or files) to watch recursively.
    pub paths: Vec<PathBuf>,
    pub filter: FilterRules,
    /// Trailing quiet window: a build starts once no change has arrived for this long.
    pub debounce: Duration,
}

/// What counts as a change. Applied by the watch stage to every directory it would watch and
/// every event path it receives.
#[derive(Debug)]
pub struct FilterRules {
    pub root: PathBuf,
    /// File extensions without the dot; empty means any.
    pub extensions: Vec<String>,
    /// Files must match one of these (or an extension) when any is given; matched relative to root.
    pub include: Option<GlobSet>,
    /// User globs, matched against the path relative to root.
    pub ignore: GlobSet,
    /// Read .gitignore, .ignore and .git/info/exclude.
    pub gitignore: bool,
    /// Absolute directories never watched, e.g. a Cargo target directory.
    pub ignored_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildCommand {
    /// A user's command line, run with `sh -c`.
    Shell(String),
    /// `cargo build` with JSON messages on stdout, from which the built executable is taken.
    Cargo { args: Vec<String> },
}

#[derive(Debug)]
pub struct RunConfig {
    pub program: Program,
    /// Added to the server's environment (after `RELOAD=1`).
    pub env: BTreeMap<String, String>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Sockets reload binds once and hands to every server, in this order (fd 3, 4, ...).
    pub listeners: Vec<ListenSpec>,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
    /// Start the new server before stopping the old one.
    pub overlap: bool,
}

/// One `--listen` socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// Its entry in LISTEN_FDNAMES.
    pub name: String,
    pub address: ListenAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(addr) => write!(f, "{addr}"),
            ListenAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// When a freshly started server counts as ready to take over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// As soon as it is spawned.
    Spawned,
    /// When it sends `READY=1` to the `NOTIFY_SOCKET` reload gives it (sd_notify).
    Notify,
    /// When this URL answers with any HTTP response.
    Http(HttpProbe),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// `host:port`, as given (a name is resolved at each attempt).
    pub authority: String,
    pub host: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Executed directly.
    Argv(Vec<String>),
    /// Run with `sh -c`.
    Shell(String),
    /// The executable `cargo build` reported (only with [`BuildCommand::Cargo`]).
    CargoArtifact,
}

/// A command-line mistake (as opposed to one in a file): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Built-in ignores by file name: editor swap, backup and temporary files.
pub const EDITOR_TEMPORARIES: &[&str] = &[
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    "4913",
    ".#*",
    "#*#",
    "*___jb_tmp___",
    "*___jb_old___",
    "*.tmp",
    ".DS_Store",
];

/// Resolve the command line, the config file and project detection into one `Config`.
pub fn resolve(args: &Args) -> Result<Config> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let config_path = match &args.config {
        Some(path) => Some(cwd.join(path)),
        None => Some(cwd.join(CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let source = config_path.as_deref().map(Source::read).transpose()?;
    let file = match &source {
        Some(source) => source.parse()?,
        None => FileConfig::default(),
    };
    resolve_with(args, &cwd, source.as_ref(), file)
}

fn resolve_with(
    args: &Args,
    cwd: &Path,
    source: Option<&Source>,
    file: FileConfig,
) -> Result<Config> {
    let base = source
        .and_then(|s| s.path.parent())
        .unwrap_or(cwd)
        .to_owned();
    let file_error = |span: std::ops::Range<usize>, message: String| -> anyhow::Error {
        match source {
            Some(s) => s.error_at(span, message).into(),
            None => usage(message),
        }
    };

    let root = match &file.root {
        Some(root) => {
            let path = base.join(root.get_ref());
            path.canonicalize().map_err(|err| {
                file_error(
                    root.span(),
                    format!("root `{}` cannot be used: {err}", path.display()),
                )
            })?
        }
        None => base
            .canonicalize()
            .with_context(|| format!("cannot open `{}`", base.display()))?,
    };

    let cargo = detect::cargo_project(&root);

    let watch_paths = if args.watch.is_empty() {
        match &file.watch.paths {
            Some(paths) => {
                let mut resolved = Vec::new();
                for path in paths.get_ref() {
                    let full = root.join(path);
                    resolved.push(full.canonicalize().map_err(|_| {
                        file_error(
                            paths.span(),
                            format!("watch path `{}` does not exist", path.display()),
                        )
                    })?);
                }
                resolved
            }
            None => vec![root.clone()],
        }
    } else {
        let mut resolved = Vec::new();
        for path in &args.watch {
            resolved.push(cwd.join(path).canonicalize().map_err(|_| {
                usage(format!(
                    "--watch `{}` does not exist (looked in {})",
                    path.display(),
                    cwd.display()
                ))
            })?);
        }
        resolved
    };

    let extensions: Vec<String> = if args.ext.is_empty() {
        file.watch
            .ext
            .map(file::OneOrMany::into_list)
            .unwrap_or_default()
    } else {
        args.ext.clone()
    }
    .into_iter()
    .map(|e| e.trim().trim_start_matches('.').to_owned())
    .filter(|e| !e.is_empty())
    .collect();

    let include = match file.watch.include.as_deref() {
        Some(globs) if !globs.is_empty() => Some(compile_globs(globs, "[watch] include")?),
        _ => None,
    };
    let mut ignore_globs = file.watch.ignore.clone().unwrap_or_default();
    ignore_globs.extend(args.ignore.iter().cloned());
    ignore_globs.extend(EDITOR_TEMPORARIES.iter().map(|s| (*s).to_owned()));
    let ignore = compile_globs(&ignore_globs, "--ignore / [watch] ignore")?;

    let mut ignored_dirs = vec![root.join(".git")];
    if let Some(cargo) = &cargo {
        ignored_dirs.push(cargo.target_directory.clone());
    }

    let debounce = match (&args.debounce, &file.watch.debounce) {
        (Some(text), _) => parse_duration(text).map_err(|e| usage(format!("--debounce: {e}")))?,
        (None, Some(text)) => parse_duration(text.get_ref())
            .map_err(|e| file_error(text.span(), format!("[watch] debounce: {e}")))?,
        (None, None) => Duration::from_millis(50),
    };

    let stop_signal = match (&args.stop_signal, &file.run.stop_signal) {
        (Some(text), _) => parse_signal(text).map_err(|e| usage(format!("--stop-signal: {e}")))?,
        (None, Some(text)) => parse_signal(text.get_ref())
            .map_err(|e| file_error(text.span(), format!("[run] stop_signal: {e}")))?,
        (None, None) => Signal::SIGTERM,
    };
    let stop_timeout = match (&args.stop_timeout, &file.run.stop_timeout) {
        (Some(text), _) => {
            parse_duration(text).map_err(|e| usage(format!("--stop-timeout: {e}")))?
        }
        (None, Some(text)) => parse_duration(text.get_ref())
            .map_err(|e| file_error(text.span(), format!("[run] stop_timeout: {e}")))?,
        (None, None) => Duration::from_secs(5),
    };

    let listeners = match (&args.listen, &file.run.listen) {
        (cli, _) if !cli.is_empty() => cli
            .iter()
            .map(|text| parse_listen(text, &root).map_err(|e| usage(format!("--listen: {e}"))))
            .collect::<Result<Vec<_>>>()?,
        (_, Some(list)) => list
            .get_ref()
            .iter()
            .map(|text| {
                parse_listen(text, &root)
                    .map_err(|e| file_error(list.span(), format!("[run] listen: {e}")))
            })
            .collect::<Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    let readiness = match (&args.ready, &file.run.ready) {
        (Some(text), _) => parse_readiness(text).map_err(|e| usage(format!("--ready: {e}")))?,
        (None, Some(text)) => parse_readiness(text.get_ref())
            .map_err(|e| file_error(text.span(), format!("[run] ready: {e}")))?,
        (None, None) => Readiness::Spawned,
    };
    let ready_timeout = match (&args.ready_timeout, &file.run.ready_timeout) {
        (Some(text), _) => {
            parse_duration(text).map_err(|e| usage(format!("--ready-timeout: {e}")))?
        }
        (None, Some(text)) => parse_duration(text.get_ref())
            .map_err(|e| file_error(text.span(), format!("[run] ready_timeout: {e}")))?,
        (None, None) => Duration::from_secs(30),
    };
    let overlap = args.overlap || file.run.overlap.unwrap_or(false);

    let explicit_program = if args.program.is_empty() {
        file.run.cmd.map(|cmd| match cmd.into_inner() {
            RunCmd::Argv(argv) => Program::Argv(argv),
            RunCmd::Shell(line) => Program::Shell(line),
        })
    } else {
        Some(Program::Argv(args.program.clone()))
    };
    if let Some(Program::Argv(argv)) = &explicit_program
        && argv.first().is_none_or(String::is_empty)
    {
        return Err(usage("[run] cmd is an empty list: name the program to run"));
    }
    let explicit_build = match &args.build {
        Some(cmd) => Some(cmd.trim().to_owned()),
        None => file.build.cmd.map(|cmd| cmd.trim().to_owned()),
    };

    let cargo_build = |cargo: &detect::CargoProject| -> Result<(BuildCommand, String)> {
        let bin = cargo.select_bin(args.bin.as_deref())?;
        let what = origin(source, &format!("Cargo binary `{bin}`"));
        Ok((
            BuildCommand::Cargo {
                args: detect::cargo_build_args(&bin),
            },
            what,
        ))
    };
    let (build, program, origin) = match (explicit_build, explicit_program, &cargo) {
        (Some(build), program, _) => {
            let build = (!build.is_empty()).then_some(BuildCommand::Shell(build));
            (
                build,
                program,
                origin(source, "build and run as configured"),
            )
        }
        (None, Some(program), Some(_)) => {
            let build = BuildCommand::Shell("cargo build".to_owned());
            (
                Some(build),
                Some(program),
                origin(source, "Cargo project, `cargo build`"),
            )
        }
        (None, Some(program), None) => (None, Some(program), origin(source, "no build step")),
        (None, None, Some(cargo)) => {
            let (build, what) = cargo_build(cargo)?;
            (Some(build), Some(Program::CargoArtifact), what)
        }
        (None, None, None) => {
            return Err(usage(format!(
                "nothing to build or run in {}: no {CONFIG_FILE} and no project detected\n  \
                 help: run `reload init` to write a {CONFIG_FILE}, or say what to do: \
                 `reload --build 'make' -- ./server`",
                root.display()
            )));
        }
    };

    let run = program.map(|program| RunConfig {
        program,
        env: file.run.env.unwrap_or_default(),
        stop_signal,
        stop_timeout,
        listeners,
        readiness,
        ready_timeout,
        overlap,
    });

    Ok(Config {
        watch: WatchConfig {
            paths: watch_paths,
            filter: FilterRules {
                root: root.clone(),
                extensions,
                include,
                ignore,
                gitignore: !args.no_gitignore && file.watch.gitignore.unwrap_or(true),
                ignored_dirs,
            },
            debounce,
        },
        root,
        build,
        run,
        origin,
    })
}

fn origin(source: Option<&Source>, what: &str) -> String {
    match source {
        Some(source) => format!("{} ({what})", source.path.display()),
        None => what.to_owned(),
    }
}

/// Compile globs once. A glob without `/` matches a name at any depth, as in .gitignore.
fn compile_globs(globs: &[String], setting: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let glob = glob.trim().trim_end_matches('/');
        let anchored = glob.trim_start_matches('/');
        let patterns: Vec<String> = if glob.contains('/') {
            vec![anchored.to_owned()]
        } else {
            vec![anchored.to_owned(), format!("**/{anchored}")]
        };
        for pattern in patterns {
            builder.add(
                Glob::new(&pattern)
                    .map_err(|err| usage(format!("{setting}: invalid glob `{glob}`: {err}")))?,
            );
        }
    }
    builder
        .build()
        .map_err(|err| usage(format!("{setting}: {err}")))
}

/// `50ms`, `5s`, `1.5s`, `1m`, `2h`, `250us`. A bare number is refused: `5` could mean anything.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration; write a number and a unit, like 50ms, 5s or 1m")
    })?;
    let seconds = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" | "sec" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "" => return Err(format!("`{text}` has no unit; write {text}ms or {text}s")),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// `3000`, `127.0.0.1:3000`, `[::1]:3000`, `localhost:3000`, `unix:/path.sock`, each optionally
/// named: `web=3000`. A relative unix path is taken from the project root.
pub fn parse_listen(text: &str, root: &Path) -> Result<ListenSpec, String> {
    let text = text.trim();
    let (name, address) = match text.split_once('=') {
        Some((name, address)) => (Some(name.trim()), address.trim()),
        None => (None, text),
    };
    let invalid = || {
        format!(
            "`{address}` is not a listen address; use 3000, 127.0.0.1:3000, [::1]:3000 or \
             unix:/path/to.sock"
        )
    };
    let parsed = if let Some(path) = address.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(invalid());
        }
        ListenAddress::Unix(root.join(path))
    } else if let Ok(port) = address.parse::<u16>() {
        ListenAddress::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    } else if let Some(port) = address.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        ListenAddress::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    } else {
        ListenAddress::Tcp(address.parse().map_err(|_| invalid())?)
    };
    // LISTEN_FDNAMES is colon-separated, so a name cannot hold one.
    let name = match name {
        Some("") => return Err(format!("`{text}` has an empty name before `=`")),
        Some(name) if name.contains(':') => {
            return Err(format!("the socket name `{name}` cannot contain `:`"));
        }
        Some(name) => name.to_owned(),
        None => address.replace(':', "_"),
    };
    Ok(ListenSpec {
        name,
        address: parsed,
    })
}

/// `none`, `notify` or `http://host:port/path`.
pub fn parse_readiness(text: &str) -> Result<Readiness, String> {
    let text = text.trim();
    match text {
        "none" | "" => return Ok(Readiness::Spawned),
        "notify" => return Ok(Readiness::Notify),
        _ => {}
    }
    let Some(rest) = text.strip_prefix("http://") else {
        if text.starts_with("https://") {
            return Err(format!(
                "`{text}`: https is not supported for readiness; point it at a plain http:// port"
            ));
        }
        return Err(format!(
            "`{text}` is not a readiness mode; use none, notify or http://host:port/path"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("`{text}` has an invalid port"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(Readiness::Http(HttpProbe {
        authority: format!("{host}:{port}"),
        host: host.trim_matches(['[', ']']).to_owned(),
        path: path.to_owned(),
    }))
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("{number} is not a signal number"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| {
        format!("unknown signal `{text}`; use a name like SIGTERM, SIGINT, SIGQUIT or SIGHUP")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn signals_by_name_short_name_or_number() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("int"), Ok(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("SIGFOO").unwrap_err().contains("SIGFOO"));
    }

    #[test]
    fn listen_addresses() {
        let root = Path::new("/project");
        let spec = parse_listen("3000", root).unwrap();
        assert_eq!(spec.address.to_string(), "127.0.0.1:3000");
        assert_eq!(spec.name, "3000");
        let spec = parse_listen("[::1]:8080", root).unwrap();
        assert_eq!(spec.address.to_string(), "[::1]:8080");
        let spec = parse_listen("web=0.0.0.0:80", root).unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.address.to_string()),
            ("web", "0.0.0.0:80".into())
        );
        let spec = parse_listen("unix:run/app.sock", root).unwrap();
        assert_eq!(
            spec.address,
            ListenAddress::Unix("/project/run/app.sock".into())
        );
        assert!(
            parse_listen("300000", root)
                .unwrap_err()
                .contains("not a listen address")
        );
        assert!(parse_listen("a:b=3000", root).is_err());
    }

    #[test]
    fn readiness_modes() {
        assert_eq!(parse_readiness("none"), Ok(Readiness::Spawned));
        assert_eq!(parse_readiness("notify"), Ok(Readiness::Notify));
        let Ok(Readiness::Http(probe)) = parse_readiness("http://127.0.0.1:3000/health") else {
            panic!("an http probe")
        };
        assert_eq!(
            (probe.authority.as_str(), probe.path.as_str()),
            ("127.0.0.1:3000", "/health")
        );
        let Ok(Readiness::Http(probe)) = parse_readiness("http://[::1]:8080") else {
            panic!()
        };
        assert_eq!((probe.host.as_str(), probe.path.as_str()), ("::1", "/"));
        assert!(parse_readiness("https://x").unwrap_err().contains("https"));
        assert!(parse_readiness("tcp://x:1").is_err());
    }

    #[test]
    fn a_glob_without_slash_matches_at_any_depth() {
        let set = compile_globs(
            &["*.log".into(), "node_modules".into(), "/docs/".into()],
            "t",
        )
        .unwrap();
        assert!(set.is_match("a.log"));
        assert!(set.is_match("deep/er/a.log"));
        assert!(set.is_match("web/node_modules"));
        assert!(set.is_match("docs"));
        assert!(!set.is_match("src/main.rs"));
    }

    fn resolve_in(dir: &Path, argv: &[&str], toml: Option<&str>) -> Result<Config> {
        let args = Args::parse_from(std::iter::once("reload").chain(argv.iter().copied()));
        let source = toml.map(|text| Source {
            path: dir.join(CONFIG_FILE),
            text: text.into(),
        });
        let file = source
            .as_ref()
            .map(Source::parse)
            .transpose()?
            .unwrap_or_default();
        resolve_with(&args, dir, source.as_ref(), file)
    }

    #[test]
    fn command_line_overrides_the_file() {
        let dir = std::env::temp_dir();
        let toml = "[watch]\ndebounce = \"1s\"\next = [\"py\"]\n[run]\ncmd = \"python3 app.py\"\n\
                    stop_timeout = \"2s\"\n";
        let config = resolve_in(&dir, &["--debounce", "10ms", "-e", "rs"], Some(toml)).unwrap();
        assert_eq!(config.watch.debounce, Duration::from_millis(10));
        assert_eq!(config.watch.filter.extensions, ["rs"]);
        let run = config.run.unwrap();
        assert_eq!(run.program, Program::Shell("python3 app.py".into()));
        assert_eq!(run.stop_timeout, Duration::from_secs(2));
        assert!(config.build.is_none());
    }

    #[test]
    fn empty_build_means_no_build_step() {
        let dir = std::env::temp_dir();
        let config = resolve_in(&dir, &["--build", "", "--", "app"], None).unwrap();
        assert!(config.build.is_none());
        assert_eq!(
            config.run.unwrap().program,
            Program::Argv(vec!["app".into()])
        );
    }

    #[test]
    fn bad_values_in_the_file_point_at_their_line() {
        let dir = std::env::temp_dir();
        let err = resolve_in(
            &dir,
            &[],
            Some("[run]\ncmd = \"x\"\nstop_signal = \"SIGFOO\"\n"),
        )
        .unwrap_err();
        let err = err.downcast_ref::<ConfigError>().expect("a ConfigError");
        assert_eq!(err.position, Some((3, 15)));
        assert!(err.message.contains("SIGFOO"));
    }

    #[test]
    fn nothing_to_do_says_how_to_start() {
        let dir = std::env::temp_dir().join(format!("reload-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = resolve_in(&dir, &[], None).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("reload init"), "{err}");
    }
}
