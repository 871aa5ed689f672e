//! Configuration: the command line, reload.toml and what the project looks like, resolved once
//! into a [`Config`]. Defaults < file < command line. No other module sees clap, toml, or an
//! `Option` that means "use the default"; every duration is a `Duration`, every glob compiled.
//! One resolver per section of reload.toml (`resolve_watch`, `resolve_build`, `resolve_run`,
//! `resolve_output`); each takes its defaults from the table in `keys.rs`.

mod air;
mod clean;
mod detect;
mod file;
pub mod init;
pub(crate) mod keys;
mod values;

pub use values::{
    MAX_DURATION, parse_duration, parse_listen, parse_readiness, parse_signal, read_env_file,
};
use values::{check_exists, parse_format, parse_glob};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use globset::{GlobSet, GlobSetBuilder};
use nix::sys::signal::Signal;
use toml::Spanned;

use crate::cli::Args;
pub use clean::CleanPath;
pub use file::ConfigError;
use file::{FileConfig, RunCmd, Source};
use keys::Key;

/// Where Go builds go when air's or reload's zero-config decides (air's `tmp_dir`).
const GO_BINARY_DIR: &str = "tmp";

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
    /// Shell commands run after the server is stopped for good.
    pub post: Vec<String>,
    /// Paths removed when reload exits (air's clean_on_exit), all inside the root.
    pub clean_on_exit: Vec<CleanPath>,
    pub output: Output,
    /// One line for the user: where this configuration came from.
    pub origin: String,
    /// Things the user should know but that do not stop reload (e.g. unsupported air keys).
    pub warnings: Vec<String>,
    /// The dev proxy in front of the server (`--proxy`, `[proxy]`), when asked for.
    pub proxy: Option<ProxyConfig>,
}

/// The dev proxy: where the browser connects and where it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Where the browser connects (loopback unless the user named another host).
    pub listen: std::net::SocketAddr,
    /// Where the server listens.
    pub upstream: Upstream,
    /// How long a request waits for a ready server before it gets a 504.
    pub hold_timeout: Duration,
    /// Whether HTML pages get the live-reload script.
    pub inject: bool,
}

/// Where the proxy finds the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The server binds this port on loopback itself (`--app-port`, also given to it as `PORT`).
    AppPort(u16),
    /// The first socket reload holds for it (`--listen`).
    Held(std::net::SocketAddr),
}

/// How reload speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// Clear the screen before each build.
    pub clear: bool,
    /// Prefix status lines with the time of day.
    pub timestamps: bool,
    /// Errors only.
    pub quiet: bool,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Short status lines.
    Human,
    /// One JSON object per event, for editors and scripts.
    Json,
}

#[derive(Debug)]
pub struct WatchConfig {
    /// Absolute directories (or files) to watch recursively.
    pub paths: Vec<PathBuf>,
    pub filter: FilterRules,
    /// Trailing quiet window: a build starts once no change has arrived for this long.
    pub debounce: Duration,
    /// Poll at this interval instead of using inotify/FSEvents.
    pub poll: Option<Duration>,
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
    /// Regular expressions, matched against the path relative to root.
    pub ignore_regex: Vec<regex::Regex>,
    /// Read .gitignore, .ignore and .git/info/exclude.
    pub gitignore: bool,
    /// Absolute paths never watched, with everything below them: build outputs such as a Cargo
    /// target directory.
    pub ignored_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildCommand {
    /// A user's command line, run with `sh -c`.
    Shell(String),
    /// `cargo build` with JSON messages on stdout, from which the built executable is taken.
    Cargo { args: Vec<String> },
}

/// The command line, as status lines and `reload init` show it.
impl fmt::Display for BuildCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildCommand::Shell(line) => f.write_str(line),
            BuildCommand::Cargo { args } => f.write_str(&args.join(" ")),
        }
    }
}

#[derive(Debug)]
pub struct RunConfig {
    pub program: Program,
    /// Added to the server's environment (after `RELOAD=1` and the env file).
    pub env: BTreeMap<String, String>,
    /// A dotenv file read again at every start.
    pub env_file: Option<PathBuf>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Sockets reload binds once and hands to every server, in this order (fd 3, 4, ...).
    pub listeners: Vec<ListenSpec>,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
    pub order: RestartOrder,
    pub on_build_failure: OnBuildFailure,
    pub on_exit: OnExit,
}

/// In which order a restart replaces the running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartOrder {
    /// Stop the old server, then start the new one.
    StopThenStart,
    /// Start the new server beside the old one and stop the old one once the new one is ready
    /// (`--overlap`).
    Overlap,
}

/// What a failed build does to the running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBuildFailure {
    /// The last good server keeps serving.
    KeepServing,
    /// It is stopped (air's `stop_on_error`).
    Stop,
}

/// What happens when the server exits by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Nothing until the next change.
    Wait,
    /// Start it again after this delay (air's `rerun` and `rerun_delay`).
    RestartAfter(Duration),
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
    /// When this `host:port` accepts a TCP connection.
    TcpConnect(String),
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

/// The shortest `--poll` interval: each poll walks the whole tree, so less is a busy loop.
const MIN_POLL: Duration = Duration::from_millis(10);

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
        None => [CONFIG_FILE, ".air.toml", "air.toml"]
            .iter()
            .map(|name| cwd.join(name))
            .find(|path| path.is_file()),
    };
    let source = config_path.as_deref().map(Source::read).transpose()?;
    let (file, warnings) = match &source {
        Some(source) if air::is_air_file(&source.path) => air::parse(source)?,
        Some(source) => (source.parse()?, Vec::new()),
        None => (FileConfig::default(), Vec::new()),
    };
    let mut config = resolve_with(args, &cwd, source.as_ref(), file)?;
    config.warnings = warnings;
    Ok(config)
}

/// Turns "`5` has no unit" into an error that points at the flag or at the file's line.
struct Place<'a> {
    source: Option<&'a Source>,
}

impl Place<'_> {
    fn file(&self, span: std::ops::Range<usize>, message: String) -> anyhow::Error {
        match self.source {
            Some(source) => source.error_at(span, message).into(),
            None => usage(message),
        }
    }

    /// An error about a string the file writes under one of `keys` (dotted, like
    /// `watch.ignore`) and that `matches`, placed at its line when it can be found there.
    /// `message` follows the key's name: `[watch] ignore: invalid glob ...`.
    fn value(
        &self,
        keys: &[&str],
        matches: impl Fn(&str) -> bool,
        message: &str,
        help: Option<&str>,
    ) -> anyhow::Error {
        let Some(source) = self.source else {
            return usage(format!("{}: {message}", key_name(keys[0])));
        };
        let (key, position) = match file::locate_value(&source.text, keys, matches) {
            Some((key, span)) => (key, source.error_at(span, String::new()).position),
            None => (keys[0].to_owned(), None),
        };
        ConfigError {
            file: source.path.clone(),
            position,
            message: format!("{}: {message}", key_name(&key)),
            help: help.map(str::to_owned),
        }
        .into()
    }

    /// Compile the globs a file gives (placed at their line, found under `keys`) and those
    /// given with `flag` into one set.
    fn globs(
        &self,
        keys: &[&str],
        from_file: &[String],
        flag: (&str, &[String]),
    ) -> Result<GlobSet> {
        // air's paths reach here anchored (`tmp` as `/tmp`): compare them as written.
        let bare = |glob: &str| {
            glob.trim()
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned()
        };
        let mut builder = GlobSetBuilder::new();
        for glob in from_file {
            let patterns = parse_glob(glob).map_err(|err| {
                self.value(keys, |written| bare(written) == bare(glob), &err, None)
            })?;
            for pattern in patterns {
                builder.add(pattern);
            }
        }
        for glob in flag.1 {
            for pattern in parse_glob(glob).map_err(|err| usage(format!("{}: {err}", flag.0)))? {
                builder.add(pattern);
            }
        }
        builder
            .build()
            .map_err(|err| usage(format!("{}: {err}", key_name(keys[0]))))
    }

    /// The command-line value if given, else the file's, parsed by `parse`; `None` when
    /// neither says. Errors name the flag or the key as the table does.
    fn layered<T>(
        &self,
        key: &Key,
        flag: Option<&String>,
        file: Option<&Spanned<String>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>> {
        match (flag, file) {
            (Some(text), _) => parse(text)
                .map(Some)
                .map_err(|e| usage(format!("{}: {e}", key.flag.unwrap_or(key.name)))),
            (None, Some(text)) => parse(text.get_ref())
                .map(Some)
                .map_err(|e| self.file(text.span(), format!("{}: {e}", key.label()))),
            (None, None) => Ok(None),
        }
    }

    /// As [`Place::layered`], with the key's default (through the same `parse`) when neither
    /// the command line nor the file says.
    fn setting<T>(
        &self,
        key: &Key,
        flag: Option<&String>,
        file: Option<&Spanned<String>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T> {
        match self.layered(key, flag, file, &parse)? {
            Some(value) => Ok(value),
            None => key.parsed_default(parse),
        }
    }
}

/// A switch: on when its flag is given, else what the file says, else the key's default.
fn switch(key: &Key, flag: bool, file: Option<bool>) -> Result<bool> {
    match (flag, file) {
        (true, _) => Ok(true),
        (false, Some(value)) => Ok(value),
        (false, None) => key.parsed_default(keys::parse_bool),
    }
}

/// Each section resolved on its own, in the order its errors are reported.
fn resolve_with(
    args: &Args,
    cwd: &Path,
    source: Option<&Source>,
    mut file: FileConfig,
) -> Result<Config> {
    let place = Place { source };
    let root = resolve_root(cwd, &place, file.root.as_ref())?;
    let project = detect::detect(&root);
    let mut watch = resolve_watch(args, cwd, &place, &root, project.as_ref(), file.watch)?;
    let commands = choose_commands(
        args,
        &place,
        &root,
        project.as_ref(),
        file.build.cmd.as_deref(),
        file.run.cmd.take(),
    )?;
    let (run, post) = resolve_run(
        args,
        cwd,
        &place,
        &root,
        commands.program,
        commands.env,
        file.run,
    )?;
    if let Some(env_file) = run.as_ref().and_then(|run| run.env_file.as_ref()) {
        watch_env_file(&mut watch, env_file);
    }
    let (build, clean_on_exit) = resolve_build(args, &place, &root, commands.build, file.build)?;
    let output = resolve_output(args, &place, file.output)?;
    // A `[proxy]` section adds its resolver here and its field to `Config`.
    Ok(Config {
        watch,
        origin: match source {
            Some(source) => format!("{}: {}", source.path.display(), commands.what),
            None => commands.what,
        },
        root,
        build,
        run,
        post,
        clean_on_exit,
        output,
        warnings: Vec::new(),
        proxy: None,
    })
}

/// The project's root: the file's `root`, relative to the file, or the file's directory (the
/// current one without a file).
fn resolve_root(cwd: &Path, place: &Place<'_>, root: Option<&Spanned<PathBuf>>) -> Result<PathBuf> {
    let base = place
        .source
        .and_then(|s| s.path.parent())
        .unwrap_or(cwd)
        .to_owned();
    let Some(root) = root else {
        return base
            .canonicalize()
            .with_context(|| format!("cannot open `{}`", base.display()));
    };
    let path = base.join(root.get_ref());
    let canonical = path.canonicalize().map_err(|err| {
        place.file(
            root.span(),
            format!("root `{}` cannot be used: {err}", path.display()),
        )
    })?;
    if !canonical.is_dir() {
        return Err(place.file(
            root.span(),
            format!(
                "root `{}` is a file; the root must be the project's directory",
                path.display()
            ),
        ));
    }
    Ok(canonical)
}

/// What builds and what runs, before `[build]` and `[run]` add their settings: as the flags and
/// the file say, the rest from the project's kind.
struct Commands {
    build: Option<BuildCommand>,
    program: Option<Program>,
    /// The server's environment from the project's kind (before the env file and `[run] env`).
    env: BTreeMap<String, String>,
    /// Where the commands came from, for [`Config::origin`].
    what: String,
}

/// Flags over the file, both over zero-config detection: the build command and the program.
fn choose_commands(
    args: &Args,
    place: &Place<'_>,
    root: &Path,
    project: Option<&detect::Project>,
    build_cmd: Option<&str>,
    run_cmd: Option<Spanned<RunCmd>>,
) -> Result<Commands> {
    let cmd_span = run_cmd.as_ref().map(Spanned::span);
    let explicit_program = if args.project.program.is_empty() {
        run_cmd.map(|cmd| match cmd.into_inner() {
            RunCmd::Argv(argv) => Program::Argv(argv),
            RunCmd::Shell(line) => Program::Shell(line),
        })
    } else {
        Some(Program::Argv(args.project.program.clone()))
    };
    let empty = match &explicit_program {
        Some(Program::Argv(argv)) => argv.first().is_none_or(|program| program.trim().is_empty()),
        Some(Program::Shell(line)) => line.trim().is_empty(),
        Some(Program::CargoArtifact) | None => false,
    };
    if empty {
        return Err(match cmd_span {
            _ if !args.project.program.is_empty() => empty_program(),
            Some(span) => place.file(
                span,
                "[run] cmd is empty: name the program to run, like cmd = [\"./server\"] or \
                 cmd = \"./server --port 3000\""
                    .to_owned(),
            ),
            None => usage("[run] cmd is empty: name the program to run"),
        });
    }
    let explicit_build = args
        .project
        .build
        .as_deref()
        .or(build_cmd)
        .map(|cmd| cmd.trim().to_owned());

    let mut env = project.map(|p| p.run_env(root)).unwrap_or_default();
    let (build, program, what) = match (explicit_build, explicit_program, project) {
        (Some(build), program, _) => {
            let build = (!build.is_empty()).then_some(BuildCommand::Shell(build));
            (build, program, "build and run as configured".to_owned())
        }
        (None, Some(program), Some(project)) => {
            let build = project.build_for_program();
            let what = match &build {
                Some(build) => format!("build with `{build}`"),
                None => "no build step".to_owned(),
            };
            (build, Some(program), what)
        }
        (None, Some(program), None) => (None, Some(program), "no build step".to_owned()),
        (None, None, Some(project)) => {
            // Run by another reload (RELOAD=1) in a project whose zero-config would start this
            // very program again: reload's own checkout would nest copies without end.
            if std::env::var_os("RELOAD").is_some_and(|v| v == "1") {
                return Err(usage(
                    "this reload was started by another reload (RELOAD=1) and has no config: \
                     zero-config here would start it again, and again\n  help: give the inner \
                     reload a reload.toml or -c FILE, or pass its server after `--`",
                ));
            }
            let plan = project.plan(
                root,
                args.project.bin.as_deref(),
                args.project.package.as_deref(),
            )?;
            env = plan.env;
            (plan.build, Some(plan.program), plan.description)
        }
        (None, None, None) => {
            if let Some(source) = place.source {
                return Err(nothing_in_the_file(source));
            }
            return Err(usage(format!(
                "nothing to build or run in {}: no {CONFIG_FILE}, no .air.toml, and no Cargo, \
                 Go, Node or Makefile project\n  help: run `reload init` to write a \
                 {CONFIG_FILE}, or say what to do: `reload --build 'make' -- ./server`",
                root.display()
            )));
        }
    };
    if args.project.chooses_binary() && !matches!(build, Some(BuildCommand::Cargo { .. })) {
        return Err(binary_choice_refused(
            "here the build or the server is given explicitly",
        ));
    }
    Ok(Commands {
        build,
        program,
        env,
        what,
    })
}

/// The server and how it is stopped, started and awaited; `None` in build-only mode (every
/// setting is still checked). Also `[run] post`, which runs after the server's last stop.
fn resolve_run(
    args: &Args,
    cwd: &Path,
    place: &Place<'_>,
    root: &Path,
    program: Option<Program>,
    mut env: BTreeMap<String, String>,
    run: file::RunSection,
) -> Result<(Option<RunConfig>, Vec<String>)> {
    let stop_signal = place.setting(
        &keys::RUN_STOP_SIGNAL,
        args.stop_signal.as_ref(),
        run.stop_signal.as_ref(),
        parse_signal,
    )?;
    let stop_timeout = place.setting(
        &keys::RUN_STOP_TIMEOUT,
        args.stop_timeout.as_ref(),
        run.stop_timeout.as_ref(),
        parse_duration,
    )?;
    let readiness = place.setting(
        &keys::RUN_READY,
        args.ready.as_ref(),
        run.ready.as_ref(),
        parse_readiness,
    )?;
    let ready_timeout = place.setting(
        &keys::RUN_READY_TIMEOUT,
        args.ready_timeout.as_ref(),
        run.ready_timeout.as_ref(),
        parse_duration,
    )?;
    let restart_delay = place.setting(
        &keys::RUN_RESTART_DELAY,
        None,
        run.restart_delay.as_ref(),
        parse_duration,
    )?;

    let listeners = if args.listen.is_empty() {
        match &run.listen {
            Some(list) => list
                .get_ref()
                .iter()
                .map(|text| {
                    parse_listen(text, root)
                        .map_err(|e| place.file(list.span(), format!("[run] listen: {e}")))
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        }
    } else {
        args.listen
            .iter()
            .map(|text| parse_listen(text, root).map_err(|e| usage(format!("--listen: {e}"))))
            .collect::<Result<Vec<_>>>()?
    };

    let env_file = match (&args.env_file, &run.env_file) {
        (Some(path), _) => {
            Some(check_exists(&cwd.join(path)).map_err(|e| usage(format!("--env-file: {e}")))?)
        }
        (None, Some(path)) => Some(
            check_exists(&root.join(path.get_ref()))
                .map_err(|e| place.file(path.span(), format!("[run] env_file: {e}")))?,
        ),
        (None, None) => None,
    };
    env.extend(run.env.unwrap_or_default());

    let order = if switch(&keys::RUN_OVERLAP, args.overlap, run.overlap)? {
        RestartOrder::Overlap
    } else {
        RestartOrder::StopThenStart
    };
    let on_build_failure = if switch(
        &keys::RUN_STOP_ON_BUILD_ERROR,
        false,
        run.stop_on_build_error,
    )? {
        OnBuildFailure::Stop
    } else {
        OnBuildFailure::KeepServing
    };
    let on_exit = if switch(&keys::RUN_RESTART_ON_EXIT, false, run.restart_on_exit)? {
        OnExit::RestartAfter(restart_delay)
    } else {
        OnExit::Wait
    };

    let mut post = run.post.unwrap_or_default();
    post.extend(args.post.iter().cloned());
    let run = program.map(|program| RunConfig {
        program,
        env,
        env_file,
        stop_signal,
        stop_timeout,
        listeners,
        readiness,
        ready_timeout,
        order,
        on_build_failure,
        on_exit,
    });
    Ok((run, post))
}

/// The env file is read at every start, so an edit to it is a change, whatever the extensions
/// or ignores say: a bad one at the first start is fixed by saving it.
fn watch_env_file(watch: &mut WatchConfig, env_file: &Path) {
    let env_file = env_file
        .canonicalize()
        .unwrap_or_else(|_| env_file.to_owned());
    if !watch.paths.contains(&env_file) {
        watch.paths.push(env_file);
    }
}

/// The build command with `[build] pre` (and `--pre`) run before it, and the paths removed at
/// exit.
fn resolve_build(
    args: &Args,
    place: &Place<'_>,
    root: &Path,
    build: Option<BuildCommand>,
    section: file::BuildSection,
) -> Result<(Option<BuildCommand>, Vec<CleanPath>)> {
    let mut pre = section.pre.unwrap_or_default();
    pre.extend(args.pre.iter().cloned());
    let build = with_pre_commands(&pre, build);

    // Never anything outside the project, whatever a config file says: refused at start.
    let clean_keys: &[&str] = match place.source {
        Some(source) if air::is_air_file(&source.path) => &["tmp_dir"],
        _ => &["build.clean_on_exit"],
    };
    let clean_on_exit = section
        .clean_on_exit
        .unwrap_or_default()
        .iter()
        .map(|written| {
            CleanPath::resolve(root, written).map_err(|why| {
                place.value(
                    clean_keys,
                    |s| Path::new(s) == written,
                    &why,
                    Some("reload removes only paths inside the project, never the root itself"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((build, clean_on_exit))
}

/// How reload speaks: flags over the file over the defaults.
fn resolve_output(args: &Args, place: &Place<'_>, output: file::OutputSection) -> Result<Output> {
    Ok(Output {
        clear: switch(&keys::OUTPUT_CLEAR, args.clear, output.clear)?,
        timestamps: switch(&keys::OUTPUT_TIMESTAMPS, false, output.timestamps)?,
        quiet: switch(&keys::OUTPUT_QUIET, args.quiet, output.quiet)?,
        format: place.setting(
            &keys::OUTPUT_FORMAT,
            args.log_format.as_ref(),
            output.format.as_ref(),
            parse_format,
        )?,
    })
}

/// What to watch and what counts as a change: flags over the file, the file over the project
/// kind's defaults, plus the built-in ignores.
fn resolve_watch(
    args: &Args,
    cwd: &Path,
    place: &Place<'_>,
    root: &Path,
    project: Option<&detect::Project>,
    watch: file::WatchSection,
) -> Result<WatchConfig> {
    // A config file says what to watch; without one, the project kind's defaults apply.
    let defaults = match (project, place.source) {
        (Some(project), None) => project.watch_defaults(),
        _ => detect::WatchDefaults::default(),
    };

    let watch_paths = if args.project.watch.is_empty() {
        match &watch.paths {
            Some(paths) => paths
                .get_ref()
                .iter()
                .map(|path| {
                    root.join(path).canonicalize().map_err(|_| {
                        place.file(
                            paths.span(),
                            format!("watch path `{}` does not exist", path.display()),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            // Without a config file, a workspace package chosen with -p/--bin narrows it.
            None => match (project, place.source) {
                (Some(project), None) => project.watch_paths(
                    root,
                    args.project.package.as_deref(),
                    args.project.bin.as_deref(),
                ),
                _ => vec![root.to_owned()],
            },
        }
    } else {
        args.project
            .watch
            .iter()
            .map(|path| {
                cwd.join(path).canonicalize().map_err(|_| {
                    usage(format!(
                        "--watch `{}` does not exist (looked in {})",
                        path.display(),
                        cwd.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?
    };

    let extensions: Vec<String> = if !args.project.ext.is_empty() {
        args.project.ext.clone()
    } else if let Some(ext) = watch.ext {
        ext.into_list()
    } else {
        defaults.extensions
    }
    .into_iter()
    .map(|e| e.trim().trim_start_matches('.').to_owned())
    .filter(|e| !e.is_empty())
    .collect();

    let include_globs = watch.include.unwrap_or(defaults.include);
    let include = (!include_globs.is_empty())
        .then(|| {
            place.globs(
                &["watch.include", "build.include_file"],
                &include_globs,
                ("", &[]),
            )
        })
        .transpose()?;
    let ignore_globs = watch.ignore.unwrap_or(defaults.ignore);
    let mut flag_globs = args.project.ignore.clone();
    flag_globs.extend(EDITOR_TEMPORARIES.iter().map(|s| (*s).to_owned()));
    let ignore = place.globs(
        &[
            "watch.ignore",
            "build.exclude_dir",
            "build.exclude_file",
            "tmp_dir",
            "testdata_dir",
        ],
        &ignore_globs,
        ("--ignore", &flag_globs),
    )?;
    let mut ignore_regex = match &watch.ignore_regex {
        Some(list) => list
            .get_ref()
            .iter()
            .map(|pattern| {
                regex::Regex::new(pattern).map_err(|err| {
                    place.file(
                        list.span(),
                        format!("invalid regular expression `{pattern}`: {err}"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };

    let mut ignored_dirs = vec![root.join(".git")];
    if let Some(project) = project {
        ignored_dirs.extend(project.build_outputs(root));
    }
    // `reload > log 2>&1` inside the project: every status line would be a change, forever.
    ignored_dirs.extend(own_output_files());
    // Cargo creates its target directory as a temporary sibling (`targetXk3P9q`) and renames
    // it: on a fresh project that would cancel the very first build.
    if let Some(detect::Project::Cargo(cargo)) = project
        && let Ok(relative) = cargo.target_directory.strip_prefix(root)
    {
        let pattern = format!(
            "^{}[A-Za-z0-9]{{6}}(/|$)",
            regex::escape(&relative.to_string_lossy())
        );
        ignore_regex.extend(regex::Regex::new(&pattern));
    }

    let debounce = place.setting(
        &keys::WATCH_DEBOUNCE,
        args.debounce.as_ref(),
        watch.debounce.as_ref(),
        parse_duration,
    )?;
    let poll_text = watch.poll.as_ref().and_then(|poll| match poll.get_ref() {
        file::PollValue::Enabled(true) => {
            Some(Spanned::new(poll.span(), keys::POLL_INTERVAL.to_owned()))
        }
        file::PollValue::Enabled(false) => None,
        file::PollValue::Interval(text) => Some(Spanned::new(poll.span(), text.clone())),
    });
    // The default, `false`, is no interval: `None`.
    let poll = place.layered(
        &keys::WATCH_POLL,
        args.poll.as_ref(),
        poll_text.as_ref(),
        |text| match parse_duration(text)? {
            interval if interval < MIN_POLL => Err(format!(
                "`{text}` is too short a poll interval: each poll walks the whole tree; use \
                 10ms or more ({} when given without a value)",
                keys::POLL_INTERVAL
            )),
            interval => Ok(interval),
        },
    )?;

    let gitignore = !args.no_gitignore && switch(&keys::WATCH_GITIGNORE, false, watch.gitignore)?;

    Ok(WatchConfig {
        paths: watch_paths,
        filter: FilterRules {
            root: root.to_owned(),
            extensions,
            include,
            ignore,
            ignore_regex,
            gitignore,
            ignored_dirs,
        },
        debounce,
        poll,
    })
}

/// `--bin`/`-p` where zero-config does not build a Cargo project; `why` says what decides
/// instead.
fn binary_choice_refused(why: &str) -> anyhow::Error {
    usage(format!(
        "--bin and -p choose what zero-config builds in a Cargo project, but {why}\n  help: \
         drop --bin/-p, or put them in your build command"
    ))
}

/// `-- ''`: the program after `--` is empty.
fn empty_program() -> anyhow::Error {
    usage(
        "the program after `--` is empty\n  help: name the server to run, like \
         `reload -- ./server --port 3000`",
    )
}

/// `watch.ignore` as the user reads it: `[watch] ignore`; a top-level key as itself.
fn key_name(dotted: &str) -> String {
    match dotted.split_once('.') {
        Some((table, key)) => format!("[{table}] {key}"),
        None => dotted.to_owned(),
    }
}

/// A reload.toml that says neither what to build nor what to run, in a directory zero-config
/// knows nothing about.
fn nothing_in_the_file(source: &Source) -> anyhow::Error {
    let what = if source.is_blank() {
        "is empty (nothing but comments and blank lines)"
    } else {
        "sets neither [build] cmd nor [run] cmd"
    };
    ConfigError {
        file: source.path.clone(),
        position: None,
        message: format!("{what}, so reload has nothing to build or run"),
        help: Some(
            "say what to run, and what builds it if anything:\n\n    [build]\n    cmd = \"make\"\n\n    \
             [run]\n    cmd = [\"./server\"]\n\n  or run `reload init --force` to write a commented \
             reload.toml"
                .to_owned(),
        ),
    }
    .into()
}

/// Run `pre` commands before the build, in the build's own shell, so that cancelling the build
/// cancels them too.
fn with_pre_commands(pre: &[String], build: Option<BuildCommand>) -> Option<BuildCommand> {
    if pre.is_empty() {
        return build;
    }
    let pre = pre.join(" && ");
    Some(match build {
        None => BuildCommand::Shell(pre),
        Some(BuildCommand::Shell(line)) => BuildCommand::Shell(format!("{pre} && {line}")),
        // `exec "$@"` runs cargo with its arguments untouched by the shell.
        Some(BuildCommand::Cargo { args }) => {
            let mut with_shell = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("{pre} && exec \"$@\""),
                "sh".to_owned(),
            ];
            with_shell.extend(args);
            BuildCommand::Cargo { args: with_shell }
        }
    })
}

/// Regular files that reload's stdout and stderr are redirected to (Linux: /proc/self/fd).
fn own_output_files() -> Vec<PathBuf> {
    ["/proc/self/fd/1", "/proc/self/fd/2"]
        .iter()
        .filter_map(|fd| std::fs::read_link(fd).ok())
        .filter(|path| path.is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
    fn a_file_with_every_default_written_out_resolves_as_one_that_leaves_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let run = "[run]\ncmd = [\"app\"]\n";
        let mut spelled_out = String::new();
        for section in std::iter::once(keys::Section::Top).chain(keys::Section::TABLES) {
            if let Some(table) = section.table() {
                spelled_out.push_str(&format!("[{table}]\n"));
            }
            if section == keys::Section::Run {
                spelled_out.push_str("cmd = [\"app\"]\n");
            }
            for key in keys::KEYS.iter().filter(|key| key.section == section) {
                if let Some(default) = key.default_toml() {
                    spelled_out.push_str(&format!("{} = {default}\n", key.name));
                }
            }
        }
        let resolved = |toml: &str| {
            let config = resolve_in(dir.path(), &[], Some(toml))
                .unwrap_or_else(|err| panic!("{err:#}\n{toml}"));
            format!("{config:#?}")
        };
        assert_eq!(resolved(&spelled_out), resolved(run), "{spelled_out}");
    }

    #[test]
    fn each_default_reaches_the_setting_it_belongs_to() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve_in(dir.path(), &[], Some("[run]\ncmd = [\"app\"]\n")).unwrap();
        assert_eq!(config.watch.debounce, Duration::from_millis(50));
        assert_eq!(config.watch.poll, None);
        assert!(config.watch.filter.gitignore);
        let run = config.run.unwrap();
        assert_eq!(run.stop_signal, Signal::SIGTERM);
        assert_eq!(run.stop_timeout, Duration::from_secs(5));
        assert_eq!(run.readiness, Readiness::Spawned);
        assert_eq!(run.ready_timeout, Duration::from_secs(30));
        assert_eq!(run.order, RestartOrder::StopThenStart);
        assert_eq!(run.on_build_failure, OnBuildFailure::KeepServing);
        assert_eq!(run.on_exit, OnExit::Wait);
        assert_eq!(config.output.format, LogFormat::Human);
        let restarting = resolve_in(
            dir.path(),
            &[],
            Some("[run]\ncmd = [\"app\"]\nrestart_on_exit = true\n"),
        )
        .unwrap();
        assert_eq!(
            restarting.run.unwrap().on_exit,
            OnExit::RestartAfter(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_build_command_shows_as_its_command_line() {
        assert_eq!(
            BuildCommand::Shell("make -j4".into()).to_string(),
            "make -j4"
        );
        let cargo = BuildCommand::Cargo {
            args: vec!["cargo".into(), "build".into(), "--bin".into(), "api".into()],
        };
        assert_eq!(cargo.to_string(), "cargo build --bin api");
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
