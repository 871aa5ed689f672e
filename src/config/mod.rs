//! Configuration: the command line, reload.toml and what the project looks like, resolved once
//! into a [`Config`]. Defaults < file < command line. No other module sees clap, toml, or an
//! `Option` that means "use the default"; every duration is a `Duration`, every glob compiled.
//! One resolver per section of reload.toml (`resolve_watch`, `resolve_build`, `resolve_run`,
//! `resolve_output`, `resolve_proxy`); each takes its defaults from the table in `keys.rs`.
//! `resolve_proxy` runs after `resolve_run`: an app port gives the server `PORT` and, when no
//! readiness check was asked for, a tcp one on that port; without one, reload chooses the port
//! at start (`Upstream::Chosen`) and follows the server to where it listens.

mod air;
mod changes;
mod clean;
mod detect;
mod file;
pub mod init;
pub(crate) mod keys;
mod values;

pub use values::{
    HostPattern, MAX_DURATION, parse_duration, parse_listen, parse_readiness, parse_signal,
    read_env_file,
};
use values::{
    check_exists, parse_format, parse_glob, parse_host_pattern, parse_port, parse_proxy_address,
};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use globset::{GlobSet, GlobSetBuilder};
use nix::sys::signal::Signal;
use toml::Spanned;

use crate::cli::Args;
pub use changes::{Change, changes};
pub use clean::CleanPath;
pub use file::ConfigError;
use file::{FileConfig, PortValue, RunCmd, Source};
use keys::Key;

/// Where Go builds go when air's or reload's zero-config decides (air's `tmp_dir`).
const GO_BINARY_DIR: &str = "tmp";

/// Name of the config file looked for in the current directory.
pub const CONFIG_FILE: &str = "reload.toml";

/// The config files looked for in the current directory without `-c`, the first found wins.
const CONFIG_FILES: [&str; 3] = [CONFIG_FILE, ".air.toml", "air.toml"];

/// Everything the dev loop needs, resolved and checked.
#[derive(Debug, Clone)]
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
    /// Why a project file could not be read (cargo's own words, with the file and line), when
    /// detection could not read one: read again while reload runs, such a configuration is
    /// refused and the last good one stays, since it would no longer know the project's files.
    pub project_unreadable: Option<String>,
    /// The config files among `watch.config_files` (the one in use, or the names looked for):
    /// settings, not build inputs, unlike a project file such as Cargo.toml.
    pub settings_files: Vec<PathBuf>,
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
    /// Names the proxy answers besides localhost, `*.localhost` and IP addresses.
    pub allowed_hosts: Vec<HostPattern>,
}

/// Where the proxy finds the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The server binds this port on loopback itself (`--app-port`, also given to it as `PORT`).
    AppPort(u16),
    /// The first socket reload holds for it (`--listen`).
    Held(std::net::SocketAddr),
    /// No port was named (`--proxy` alone): the engine chooses a free one at start and gives
    /// it as `PORT`, and the proxy forwards to the port the server's group listens on, that
    /// one or another.
    Chosen,
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

#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Absolute directories (or files) to watch recursively.
    pub paths: Vec<PathBuf>,
    /// The files that decide this configuration: the config file (or the names one is looked
    /// for under) and the project files detection reads. A change to one is reported apart in
    /// the change set, whatever the filter says, so that the configuration is read again.
    pub config_files: Vec<PathBuf>,
    pub filter: FilterRules,
    /// Trailing quiet window: a build starts once no change has arrived for this long.
    pub debounce: Duration,
    /// Poll at this interval instead of using inotify/FSEvents.
    pub poll: Option<Duration>,
}

/// What counts as a change. Applied by the watch stage to every directory it would watch and
/// every event path it receives.
#[derive(Debug, Clone)]
pub struct FilterRules {
    pub root: PathBuf,
    /// File extensions without the dot; empty means any.
    pub extensions: Vec<String>,
    /// Files must match one of these (or an extension) when any is given; matched relative to root.
    pub include: Option<Globs>,
    /// User globs, matched against the path relative to root.
    pub ignore: Globs,
    /// Regular expressions, matched against the path relative to root.
    pub ignore_regex: Vec<regex::Regex>,
    /// Read .gitignore, .ignore and .git/info/exclude.
    pub gitignore: bool,
    /// Absolute paths never watched, with everything below them: build outputs such as a Cargo
    /// target directory.
    pub ignored_dirs: Vec<PathBuf>,
}

/// Rules read again compare equal when they were written the same way.
impl PartialEq for FilterRules {
    fn eq(&self, other: &Self) -> bool {
        let patterns = |rules: &FilterRules| -> Vec<String> {
            rules
                .ignore_regex
                .iter()
                .map(|re| re.as_str().to_owned())
                .collect()
        };
        self.root == other.root
            && self.extensions == other.extensions
            && self.include == other.include
            && self.ignore == other.ignore
            && patterns(self) == patterns(other)
            && self.gitignore == other.gitignore
            && self.ignored_dirs == other.ignored_dirs
    }
}

/// A compiled set of globs that remembers how they were written, so that two sets read from
/// the same text compare equal (a `GlobSet` cannot be compared).
#[derive(Debug, Clone)]
pub struct Globs {
    set: GlobSet,
    written: Vec<String>,
}

impl Globs {
    pub fn new(globs: Vec<globset::Glob>) -> Result<Globs, globset::Error> {
        let written = globs.iter().map(|glob| glob.glob().to_owned()).collect();
        let mut builder = GlobSetBuilder::new();
        for glob in globs {
            builder.add(glob);
        }
        Ok(Globs {
            set: builder.build()?,
            written,
        })
    }

    pub fn empty() -> Globs {
        Globs {
            set: GlobSet::empty(),
            written: Vec::new(),
        }
    }

    pub fn is_match(&self, path: impl AsRef<Path>) -> bool {
        self.set.is_match(path)
    }
}

impl PartialEq for Globs {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
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

#[derive(Debug, Clone, PartialEq)]
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
    /// When the port reload chose and gave it as `PORT` accepts a connection, or its process
    /// group listens on another TCP port, which is then followed (`--proxy` with no app port).
    GivenPort,
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

/// The program as a user would type it, for the start line: `./server --port 3000`, a word
/// with a space or a quote in single quotes.
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Program::Argv(argv) => {
                let words: Vec<String> = argv.iter().map(|word| shell_word(word)).collect();
                f.write_str(&words.join(" "))
            }
            Program::Shell(line) => f.write_str(line),
            Program::CargoArtifact => f.write_str("the built binary"),
        }
    }
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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
        None => CONFIG_FILES
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
    // The files looked for count as well as the one found: a reload.toml written while
    // zero-config runs takes over, as it would at the next start.
    let looked_for = match &args.config {
        Some(path) => vec![in_canonical_directory(&cwd.join(path))],
        None => CONFIG_FILES
            .iter()
            .map(|name| in_canonical_directory(&cwd.join(name)))
            .collect(),
    };
    let files = &mut config.watch.config_files;
    for file in looked_for.iter().rev() {
        if !files.contains(file) {
            files.insert(0, file.clone());
        }
    }
    config.settings_files = looked_for;
    Ok(config)
}

/// `path` with its directory canonical, as the watch stage names the files in it; the file
/// itself may not exist.
fn in_canonical_directory(path: &Path) -> PathBuf {
    match (path.parent().map(Path::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => path.to_owned(),
    }
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
    fn globs(&self, keys: &[&str], from_file: &[String], flag: (&str, &[String])) -> Result<Globs> {
        // air's paths reach here anchored (`tmp` as `/tmp`): compare them as written.
        let bare = |glob: &str| {
            glob.trim()
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned()
        };
        let mut patterns = Vec::new();
        for glob in from_file {
            patterns.extend(parse_glob(glob).map_err(|err| {
                self.value(keys, |written| bare(written) == bare(glob), &err, None)
            })?);
        }
        for glob in flag.1 {
            patterns.extend(parse_glob(glob).map_err(|err| usage(format!("{}: {err}", flag.0)))?);
        }
        Globs::new(patterns).map_err(|err| usage(format!("{}: {err}", key_name(keys[0]))))
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
    // Whether the user chose a readiness check: the proxy only supplies one where none was.
    let readiness_asked = args.ready.is_some() || file.run.ready.is_some();
    let (mut run, post) = resolve_run(
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
    let proxy = resolve_proxy(args, &place, file.proxy, run.as_mut(), readiness_asked)?;
    watch.config_files = detect::files_read(&root, project.as_ref());
    Ok(Config {
        project_unreadable: project
            .as_ref()
            .and_then(detect::Project::unreadable)
            .map(str::to_owned),
        settings_files: Vec::new(),
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
        proxy,
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

/// What builds and what runs, in words: "build with `make`, run `./server`". `detected`
/// names the project kind the build was taken from, when it was.
fn plan_in_words(
    build: Option<&BuildCommand>,
    detected: Option<&str>,
    program: Option<&Program>,
) -> String {
    let build = match (build, detected) {
        (Some(build), Some(kind)) => format!("build with `{build}` ({kind})"),
        (Some(build), None) => format!("build with `{build}`"),
        (None, _) => "no build step".to_owned(),
    };
    match (program, build.as_str()) {
        (Some(Program::CargoArtifact), _) => format!("{build}, run the binary it builds"),
        (Some(program), _) => format!("{build}, run `{program}`"),
        (None, "no build step") => {
            "no build step and no program: changes are only reported".to_owned()
        }
        (None, _) => format!("{build}, nothing to run (no program given: build only)"),
    }
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
            let what = plan_in_words(build.as_ref(), None, program.as_ref());
            (build, program, what)
        }
        (None, Some(program), Some(project)) => {
            let build = project.build_for_program();
            let what = plan_in_words(build.as_ref(), Some(project.kind()), Some(&program));
            (build, Some(program), what)
        }
        (None, Some(program), None) => {
            let what = plan_in_words(None, None, Some(&program));
            (None, Some(program), what)
        }
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
                 Go, Python, Node or Makefile project\n  help: run `reload init` to write a \
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

/// A setting that a later check may find contradicting another: its value, how to name it in
/// that message, and its place in the file when the file gave it.
struct Named<T> {
    value: T,
    /// `--app-port 8080` or `[proxy] app_port = 8080`.
    name: String,
    span: Option<std::ops::Range<usize>>,
}

impl Place<'_> {
    /// A port setting: the flag's text when given, else the file's value (a number or a
    /// string), parsed by `parse`. Errors name the flag, or `label` at the file's line.
    fn port_setting<T>(
        &self,
        flag: (&str, Option<&String>),
        label: &str,
        file: Option<&Spanned<PortValue>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Named<T>>> {
        match (flag.1, file) {
            (Some(text), _) => match parse(text) {
                Ok(value) => Ok(Some(Named {
                    value,
                    name: format!("{} {}", flag.0, text.trim()),
                    span: None,
                })),
                Err(err) => Err(usage(format!("{}: {err}", flag.0))),
            },
            (None, Some(written)) => {
                let text = written.get_ref().to_string();
                match parse(&text) {
                    Ok(value) => Ok(Some(Named {
                        value,
                        name: format!("{label} = {text}"),
                        span: Some(written.span()),
                    })),
                    Err(err) => Err(self.file(written.span(), format!("{label}: {err}"))),
                }
            }
            (None, None) => Ok(None),
        }
    }

    /// An error about settings that contradict each other: at the line of the first of them
    /// the file gave, or a usage error when they are all flags.
    fn among<'s>(
        &self,
        spans: impl IntoIterator<Item = Option<&'s std::ops::Range<usize>>>,
        message: String,
    ) -> anyhow::Error {
        match spans.into_iter().flatten().next() {
            Some(span) => self.file(span.clone(), message),
            None => usage(message),
        }
    }
}

/// The dev proxy: on when `--proxy` is given or the file sets `[proxy] port` (air's
/// `enabled = true` arrives as that). It forwards to the first `--listen` socket when reload
/// holds one, else to the app port, which the server then gets as `PORT` and, unless another
/// check was asked for, is ready when that port accepts a connection.
fn resolve_proxy(
    args: &Args,
    place: &Place<'_>,
    section: file::ProxySection,
    run: Option<&mut RunConfig>,
    readiness_asked: bool,
) -> Result<Option<ProxyConfig>> {
    let air = place.source.is_some_and(|s| air::is_air_file(&s.path));
    let (port_label, app_port_label) = if air {
        (
            "[proxy] proxy_port".to_owned(),
            "[proxy] app_port".to_owned(),
        )
    } else {
        (keys::PROXY_PORT.label(), keys::PROXY_APP_PORT.label())
    };
    // Every setting is checked, the proxy on or not, as [run] is in build-only mode.
    let listen = place.port_setting(
        ("--proxy", args.proxy.as_ref()),
        &port_label,
        section.port.as_ref(),
        parse_proxy_address,
    )?;
    let app_port = place.port_setting(
        ("--app-port", args.app_port.as_ref()),
        &app_port_label,
        section.app_port.as_ref(),
        parse_port,
    )?;
    let hold_timeout = place.setting(
        &keys::PROXY_HOLD_TIMEOUT,
        None,
        section.hold_timeout.as_ref(),
        parse_duration,
    )?;
    let inject = !args.no_inject && switch(&keys::PROXY_INJECT, false, section.inject)?;
    let allowed_hosts = allowed_hosts(place, &args.allow_host, section.allowed_hosts.as_deref())?;

    let Some(listen) = listen else {
        // A flag that would silently do nothing: the user expects a proxy (or PORT) and gets
        // neither.
        for (given, flag) in [
            (args.app_port.is_some(), "--app-port"),
            (args.no_inject, "--no-inject"),
            (!args.allow_host.is_empty(), "--allow-host"),
        ] {
            if given {
                return Err(usage(format!(
                    "{flag} is a setting of the dev proxy, and no proxy is asked for\n  help: \
                     add --proxy PORT (or [proxy] port in {CONFIG_FILE}) for the port the \
                     browser connects to"
                )));
            }
        }
        return Ok(None);
    };
    let Some(run) = run else {
        return Err(place.among(
            [listen.span.as_ref()],
            format!(
                "{} needs a server to forward to, and this configuration only builds (no \
                 [run] cmd and no program after `--`)\n  help: name the server, like `reload \
                 --proxy {} --app-port 8080 -- ./server`",
                flag_or_label(&listen, "--proxy", &port_label),
                listen.value.port()
            ),
        ));
    };

    let proxy_name = flag_or_label(&listen, "--proxy", &port_label);
    let upstream = choose_upstream(place, run, app_port.as_ref(), &proxy_name)?;
    refuse_same_port(place, &listen, &upstream, app_port.as_ref())?;
    match upstream {
        Upstream::AppPort(port) => {
            give_port(place, run, port, app_port.as_ref())?;
            if !readiness_asked {
                // The server binds the port itself: it is ready once the port accepts.
                run.readiness = Readiness::TcpConnect(format!("127.0.0.1:{port}"));
            }
        }
        Upstream::Chosen if !readiness_asked => run.readiness = Readiness::GivenPort,
        Upstream::Chosen | Upstream::Held(_) => {}
    }
    Ok(Some(ProxyConfig {
        listen: listen.value,
        upstream,
        hold_timeout,
        inject,
        allowed_hosts,
    }))
}

/// Where the proxy forwards: the first `--listen` socket, the app port, a PORT written in
/// `[run] env` (the port the user chose), or, with none of them, a port the engine chooses.
fn choose_upstream(
    place: &Place<'_>,
    run: &RunConfig,
    app_port: Option<&Named<u16>>,
    proxy_name: &str,
) -> Result<Upstream> {
    Ok(match (run.listeners.first(), app_port) {
        (Some(held), Some(app_port)) => {
            return Err(place.among(
                [app_port.span.as_ref()],
                format!(
                    "{} and --listen {} contradict each other: with --listen the proxy \
                     forwards to the socket reload holds for the server, so there is no app \
                     port\n  help: drop one of them",
                    app_port.name, held.address
                ),
            ));
        }
        (Some(held), None) => Upstream::Held(held_upstream(&held.address)?),
        (None, Some(app_port)) => Upstream::AppPort(app_port.value),
        (None, None) => match run.env.get("PORT") {
            // PORT written in [run] env is the port the user chose: the proxy forwards there.
            Some(written) => Upstream::AppPort(parse_port(written).map_err(|err| {
                place.value(
                    &["run.env.PORT"],
                    |value| value == written.as_str(),
                    &format!(
                        "with {proxy_name} and no app port, the proxy forwards to this PORT, and \
                         {err}"
                    ),
                    Some("drop PORT from [run] env to let reload choose a port"),
                )
            })?),
            None => Upstream::Chosen,
        },
    })
}

/// Refuse an app or held port that is the proxy's own.
fn refuse_same_port(
    place: &Place<'_>,
    listen: &Named<std::net::SocketAddr>,
    upstream: &Upstream,
    app_port: Option<&Named<u16>>,
) -> Result<()> {
    let upstream_addr = match upstream {
        Upstream::AppPort(port) => Some((
            std::net::SocketAddr::from(([127, 0, 0, 1], *port)),
            app_port.map_or_else(
                || format!("PORT = \"{port}\" in [run] env"),
                |p| p.name.clone(),
            ),
        )),
        Upstream::Held(addr) => Some((*addr, format!("--listen {addr}"))),
        // Chosen at start among the ports free then, which the proxy's is not.
        Upstream::Chosen => None,
    };
    if let Some((upstream_addr, upstream_name)) = upstream_addr
        && same_socket(listen.value, upstream_addr)
    {
        return Err(place.among(
            [listen.span.as_ref(), app_port.and_then(|p| p.span.as_ref())],
            format!(
                "{} and {upstream_name} are the same port: the browser connects to the proxy \
                 and the proxy to your server, so they need two ports\n  help: give the proxy \
                 another port, like {}",
                listen.name,
                listen.value.port().checked_add(10).unwrap_or(8090)
            ),
        ));
    }
    Ok(())
}

/// `[proxy] allowed_hosts` and every `--allow-host`, each refused at its line or flag.
fn allowed_hosts(
    place: &Place<'_>,
    flags: &[String],
    file: Option<&[Spanned<String>]>,
) -> Result<Vec<HostPattern>> {
    let label = keys::PROXY_ALLOWED_HOSTS.label();
    let from_file = file.unwrap_or_default().iter().map(|name| {
        parse_host_pattern(name.get_ref())
            .map_err(|err| place.file(name.span(), format!("{label}: {err}")))
    });
    let from_flags = flags
        .iter()
        .map(|name| parse_host_pattern(name).map_err(|err| usage(format!("--allow-host: {err}"))));
    from_file.chain(from_flags).collect()
}

/// `--proxy` when the flag gave the setting, else its label in the file.
fn flag_or_label<T>(setting: &Named<T>, flag: &str, label: &str) -> String {
    match setting.span {
        Some(_) => label.to_owned(),
        None => flag.to_owned(),
    }
}

/// Where the proxy connects to a socket reload holds: the address it is bound to, loopback
/// for one bound to every interface (connecting to 0.0.0.0 is not portable).
fn held_upstream(address: &ListenAddress) -> Result<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match address {
        ListenAddress::Tcp(addr) if addr.port() == 0 => Err(usage(format!(
            "--proxy forwards to the first --listen socket, and {addr} asks for any free port, \
             which the proxy could not find\n  help: --listen on a port of its own, like 3000"
        ))),
        ListenAddress::Tcp(addr) => Ok(match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
            }
            _ => *addr,
        }),
        ListenAddress::Unix(_) => Err(usage(format!(
            "--proxy forwards to the first --listen socket over TCP, and that one is {address}\n  \
             help: put a TCP --listen first, like --listen 3000"
        ))),
    }
}

/// Whether binding `proxy` would take `server`'s port: the same port on the same address,
/// or on every interface of either side.
fn same_socket(proxy: std::net::SocketAddr, server: std::net::SocketAddr) -> bool {
    proxy.port() == server.port()
        && (proxy.ip() == server.ip()
            || proxy.ip().is_unspecified()
            || server.ip().is_unspecified())
}

/// The server's `PORT`: the app port, which most frameworks read. A `PORT` in `[run] env`
/// that says the same is fine; one that says otherwise contradicts the proxy.
fn give_port(
    place: &Place<'_>,
    run: &mut RunConfig,
    port: u16,
    app_port: Option<&Named<u16>>,
) -> Result<()> {
    let port_text = port.to_string();
    match run.env.get("PORT") {
        Some(written) if written.trim() == port_text => Ok(()),
        Some(written) => {
            let written = written.clone();
            let app_port = app_port.map_or_else(|| port_text.clone(), |p| p.name.clone());
            Err(place.value(
                &["run.env.PORT"],
                |value| value == written,
                &format!(
                    "`{written}` contradicts {app_port}: the proxy forwards to port {port} and \
                     gives the server PORT={port}"
                ),
                Some("make them the same, or drop PORT from [run] env"),
            ))
        }
        None => {
            run.env.insert("PORT".to_owned(), port_text);
            Ok(())
        }
    }
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
        config_files: Vec::new(),
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
    fn the_plan_in_words_says_what_builds_and_what_runs() {
        let make = BuildCommand::Shell("make".to_owned());
        let server = Program::Argv(vec!["./server".into(), "--name".into(), "it's".into()]);
        assert_eq!(
            plan_in_words(Some(&make), None, Some(&server)),
            r"build with `make`, run `./server --name 'it'\''s'`"
        );
        assert_eq!(
            plan_in_words(
                Some(&make),
                Some("Go module"),
                Some(&Program::CargoArtifact)
            ),
            "build with `make` (Go module), run the binary it builds"
        );
        assert_eq!(
            plan_in_words(None, None, Some(&Program::Shell("npm start".into()))),
            "no build step, run `npm start`"
        );
        assert_eq!(
            plan_in_words(Some(&make), None, None),
            "build with `make`, nothing to run (no program given: build only)"
        );
        assert_eq!(
            plan_in_words(None, None, None),
            "no build step and no program: changes are only reported"
        );
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

    /// `resolve_in` for a mistake: the message, after checking it is one that exits 2 (a
    /// `UsageError` or a `ConfigError`, as `Exit::of_error` looks for).
    #[track_caller]
    fn refused(dir: &Path, argv: &[&str], toml: Option<&str>) -> String {
        let err = resolve_in(dir, argv, toml).expect_err("a refusal");
        assert!(
            err.chain()
                .any(|cause| cause.is::<UsageError>() || cause.is::<ConfigError>()),
            "not a usage error, so not exit 2: {err:#}"
        );
        err.to_string()
    }

    /// An .air.toml resolved as `resolve` resolves one.
    fn resolve_air(dir: &Path, argv: &[&str], text: &str) -> Result<Config> {
        let args = Args::parse_from(std::iter::once("reload").chain(argv.iter().copied()));
        let source = Source {
            path: dir.join(".air.toml"),
            text: text.into(),
        };
        let (file, _) = air::parse(&source)?;
        resolve_with(&args, dir, Some(&source), file)
    }

    fn proxy_of(config: &Config) -> &ProxyConfig {
        config.proxy.as_ref().expect("the proxy is on")
    }

    fn addr(text: &str) -> std::net::SocketAddr {
        text.parse().unwrap()
    }

    /// The proxy on 127.0.0.1:8090 with its defaults, in front of an app on 8080 that gets
    /// PORT=8080 and is ready when that port accepts; the server's settings, for more checks.
    #[track_caller]
    fn assert_proxies_8090_to_8080(config: Config) -> RunConfig {
        assert_eq!(
            proxy_of(&config),
            &ProxyConfig {
                listen: addr("127.0.0.1:8090"),
                upstream: Upstream::AppPort(8080),
                hold_timeout: Duration::from_secs(30),
                inject: true,
                allowed_hosts: Vec::new(),
            }
        );
        let run = config.run.unwrap();
        assert_eq!(run.env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(
            run.readiness,
            Readiness::TcpConnect("127.0.0.1:8080".to_owned())
        );
        run
    }

    #[test]
    fn proxy_flags_turn_it_on_in_front_of_the_app_port() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve_in(
            dir.path(),
            &["--proxy", "8090", "--app-port", "8080", "--", "app"],
            None,
        )
        .unwrap();
        assert_proxies_8090_to_8080(config);
    }

    #[test]
    fn allowed_hosts_add_up_from_the_file_and_the_flags_and_bad_ones_are_placed() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\napp_port = 8080\n\
                    allowed_hosts = [\"a.test\"]\n";
        let config = resolve_in(dir.path(), &["--allow-host", "*.b.test"], Some(toml)).unwrap();
        assert_eq!(
            proxy_of(&config).allowed_hosts,
            [
                HostPattern::Name("a.test".into()),
                HostPattern::Under("b.test".into())
            ]
        );

        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\napp_port = 8080\n\
                    allowed_hosts = [\"a.test\",\n  \"*\"]\n";
        let err = resolve_in(dir.path(), &[], Some(toml)).unwrap_err();
        let shown = format!("{err:#}");
        assert!(shown.contains("reload.toml:7"), "{shown}");
        assert!(
            shown.contains("[proxy] allowed_hosts: `*` would let"),
            "{shown}"
        );

        let err = resolve_in(
            dir.path(),
            &[
                "--proxy",
                "8090",
                "--app-port",
                "8080",
                "--allow-host",
                "a.test:80",
                "--",
                "app",
            ],
            None,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").starts_with("--allow-host: `a.test:80`"),
            "{err:#}"
        );

        let err =
            resolve_in(dir.path(), &["--allow-host", "a.test", "--", "app"], None).unwrap_err();
        assert!(
            format!("{err:#}").contains("--allow-host is a setting of the dev proxy"),
            "{err:#}"
        );
    }

    #[test]
    fn the_proxy_listens_where_written_and_on_loopback_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        for (written, listen) in [
            (":8090", "127.0.0.1:8090"),
            ("[::1]:8090", "[::1]:8090"),
            ("0.0.0.0:8090", "0.0.0.0:8090"),
            ("[::]:8090", "[::]:8090"),
            ("192.168.1.5:8080", "192.168.1.5:8080"),
        ] {
            let config = resolve_in(
                dir.path(),
                &["--proxy", written, "--app-port", "8080", "--", "app"],
                None,
            )
            .unwrap();
            assert_eq!(proxy_of(&config).listen, addr(listen), "{written}");
        }
    }

    #[test]
    fn without_the_proxy_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        // `[proxy]` settings without a port wait for --proxy: they turn nothing on.
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\napp_port = 8080\nhold_timeout = \"5s\"\n";
        let config = resolve_in(dir.path(), &[], Some(toml)).unwrap();
        assert_eq!(config.proxy, None);
        let run = config.run.unwrap();
        assert!(!run.env.contains_key("PORT"), "{:?}", run.env);
        assert_eq!(run.readiness, Readiness::Spawned);
    }

    #[test]
    fn the_files_proxy_section_and_the_flags_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = \"127.0.0.1:9000\"\napp_port = 3000\n\
                    hold_timeout = \"5s\"\ninject = false\nallowed_hosts = [\"MyApp.test\", \
                    \"*.tunnel.example\"]\n";
        let config = resolve_in(dir.path(), &[], Some(toml)).unwrap();
        assert_eq!(
            proxy_of(&config),
            &ProxyConfig {
                listen: addr("127.0.0.1:9000"),
                upstream: Upstream::AppPort(3000),
                hold_timeout: Duration::from_secs(5),
                inject: false,
                allowed_hosts: vec![
                    HostPattern::Name("myapp.test".into()),
                    HostPattern::Under("tunnel.example".into()),
                ],
            }
        );
        let config = resolve_in(
            dir.path(),
            &["--proxy", "9001", "--app-port", "3001"],
            Some(toml),
        )
        .unwrap();
        let proxy = proxy_of(&config);
        assert_eq!(
            (proxy.listen, &proxy.upstream),
            (addr("127.0.0.1:9001"), &Upstream::AppPort(3001))
        );
        assert_eq!(
            config.run.unwrap().env.get("PORT").map(String::as_str),
            Some("3001")
        );

        // A number and the string of one are the same port; --no-inject wins over the file.
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 9000\napp_port = \"3000\"\n\
                    inject = true\n";
        let config = resolve_in(dir.path(), &["--no-inject"], Some(toml)).unwrap();
        let proxy = proxy_of(&config);
        assert_eq!(proxy.listen, addr("127.0.0.1:9000"));
        assert_eq!(proxy.upstream, Upstream::AppPort(3000));
        assert!(!proxy.inject);

        // --proxy turns on the proxy the file describes without a port of its own.
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\napp_port = 3000\n";
        let config = resolve_in(dir.path(), &["--proxy", "9000"], Some(toml)).unwrap();
        assert_eq!(proxy_of(&config).upstream, Upstream::AppPort(3000));
    }

    #[test]
    fn with_listen_the_proxy_forwards_to_the_held_socket() {
        let dir = tempfile::tempdir().unwrap();
        for (listen, held) in [
            ("3000", "127.0.0.1:3000"),
            ("web=[::1]:3000", "[::1]:3000"),
            // Bound on every interface; reached on loopback.
            ("0.0.0.0:3000", "127.0.0.1:3000"),
        ] {
            let config = resolve_in(
                dir.path(),
                &[
                    "--proxy", "8090", "--listen", listen, "--listen", "4000", "--", "app",
                ],
                None,
            )
            .unwrap();
            assert_eq!(
                proxy_of(&config).upstream,
                Upstream::Held(addr(held)),
                "{listen}"
            );
            let run = config.run.unwrap();
            // The kernel accepts on a held socket before any server does: no tcp probe, no
            // PORT (the server takes fd 3).
            assert_eq!(run.readiness, Readiness::Spawned);
            assert!(!run.env.contains_key("PORT"));
        }
        let toml = "[run]\ncmd = [\"app\"]\nlisten = [\"3000\"]\n[proxy]\nport = 8090\n";
        let config = resolve_in(dir.path(), &[], Some(toml)).unwrap();
        assert_eq!(
            proxy_of(&config).upstream,
            Upstream::Held(addr("127.0.0.1:3000"))
        );
    }

    #[test]
    fn an_explicit_readiness_check_stays() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve_in(
            dir.path(),
            &[
                "--proxy",
                "8090",
                "--app-port",
                "8080",
                "--ready",
                "notify",
                "--",
                "app",
            ],
            None,
        )
        .unwrap();
        assert_eq!(config.run.unwrap().readiness, Readiness::Notify);
        // `none`, written, is asked for too: the server is ready when spawned.
        let toml =
            "[run]\ncmd = [\"app\"]\nready = \"none\"\n[proxy]\nport = 8090\napp_port = 8080\n";
        let config = resolve_in(dir.path(), &[], Some(toml)).unwrap();
        assert_eq!(config.run.unwrap().readiness, Readiness::Spawned);
    }

    #[test]
    fn a_port_in_run_env_must_be_the_app_port() {
        let dir = tempfile::tempdir().unwrap();
        let toml = |port: &str| {
            format!("[run]\ncmd = [\"app\"]\nenv = {{ PORT = \"{port}\", A = \"1\" }}\n")
        };
        let config = resolve_in(
            dir.path(),
            &["--proxy", "8090", "--app-port", "8080"],
            Some(&toml("8080")),
        )
        .unwrap();
        let env = config.run.unwrap().env;
        assert_eq!(env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(env.get("A").map(String::as_str), Some("1"));

        let err = refused(
            dir.path(),
            &["--proxy", "8090", "--app-port", "8080"],
            Some(&toml("3000")),
        );
        assert!(err.contains("reload.toml:3:"), "{err}");
        assert!(err.contains("`3000` contradicts --app-port 8080"), "{err}");
        assert!(err.contains("drop PORT from [run] env"), "{err}");
    }

    #[test]
    fn the_proxy_alone_lets_reload_choose_the_port_and_follow_the_app() {
        let dir = tempfile::tempdir().unwrap();
        for (argv, toml) in [
            (&["--proxy", "8090", "--", "app"][..], None),
            (
                &[][..],
                Some("[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\n"),
            ),
        ] {
            let config = resolve_in(dir.path(), argv, toml).unwrap();
            assert_eq!(
                proxy_of(&config).upstream,
                Upstream::Chosen,
                "{argv:?} {toml:?}"
            );
            let run = config.run.unwrap();
            assert_eq!(run.readiness, Readiness::GivenPort);
            assert_eq!(run.env.get("PORT"), None, "given at each start, not here");
        }
        // A readiness check the user asked for stays.
        let config = resolve_in(
            dir.path(),
            &["--proxy", "8090", "--ready", "notify", "--", "app"],
            None,
        );
        assert_eq!(config.unwrap().run.unwrap().readiness, Readiness::Notify);
    }

    #[test]
    fn a_port_written_in_run_env_is_the_app_port_of_a_proxy_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\nenv = { PORT = \"8080\" }\n";
        let config = resolve_in(dir.path(), &["--proxy", "8090"], Some(toml)).unwrap();
        assert_proxies_8090_to_8080(config);
        let toml = "[run]\ncmd = [\"app\"]\nenv = { PORT = \"web\" }\n";
        let err = refused(dir.path(), &["--proxy", "8090"], Some(toml));
        assert!(
            err.contains(
                "reload.toml:3:16: [run] env.PORT: with --proxy and no app port, the proxy \
                 forwards to this PORT, and `web` is not a port; write a number from 1 to 65535"
            ),
            "{err}"
        );
        let toml = "[run]\ncmd = [\"app\"]\nenv = { PORT = \"8090\" }\n";
        let err = refused(dir.path(), &["--proxy", "8090"], Some(toml));
        assert!(
            err.starts_with("--proxy 8090 and PORT = \"8090\" in [run] env are the same port"),
            "{err}"
        );
    }

    #[test]
    fn the_upstream_must_be_known_and_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let err = refused(
            dir.path(),
            &[
                "--proxy",
                "8090",
                "--app-port",
                "8080",
                "--listen",
                "3000",
                "--",
                "app",
            ],
            None,
        );
        assert!(
            err.starts_with("--app-port 8080 and --listen 127.0.0.1:3000 contradict each other"),
            "{err}"
        );
        let err = refused(
            dir.path(),
            &["--proxy", "8090", "--listen", "unix:app.sock", "--", "app"],
            None,
        );
        assert!(err.contains("over TCP"), "{err}");
        let err = refused(
            dir.path(),
            &["--proxy", "8090", "--listen", "0", "--", "app"],
            None,
        );
        assert!(err.contains("any free port"), "{err}");
    }

    #[test]
    fn ports_that_do_not_parse_are_refused_naming_the_flag_or_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let flags = |proxy: &'static str, app: &'static str| {
            vec!["--proxy", proxy, "--app-port", app, "--", "app"]
        };
        for (argv, expected) in [
            (
                flags("80x", "8080"),
                "--proxy: `80x` is not a port or an address",
            ),
            (
                flags("70000", "8080"),
                "--proxy: `70000` is not a port: ports go from 1 to 65535",
            ),
            (
                flags("0", "8080"),
                "--proxy: port 0 means \"any free port\"",
            ),
            (flags("8090", "a"), "--app-port: `a` is not a port"),
            (flags("8090", "0"), "--app-port: port 0"),
            (flags("8090", "65536"), "--app-port: `65536` is not a port"),
        ] {
            let err = refused(dir.path(), &argv, None);
            assert!(err.starts_with(expected), "{argv:?}: {err}");
        }
        for (proxy, expected) in [
            (
                "app_port = \"a\"",
                "reload.toml:4:12: [proxy] app_port: `a` is not a port",
            ),
            ("app_port = 0", "reload.toml:4:12: [proxy] app_port: port 0"),
            (
                "app_port = -1",
                "reload.toml:4:12: [proxy] app_port: `-1` is not a port",
            ),
            (
                "port = 70000",
                "reload.toml:4:8: [proxy] port: `70000` is not a port",
            ),
            (
                "port = \"x:1\"",
                "reload.toml:4:8: [proxy] port: `x:1`: `x` is not an IP address",
            ),
            (
                "port = true",
                "reload.toml:4:8: `proxy.port`: invalid type: boolean `true`, expected a port number",
            ),
        ] {
            let toml = format!("[run]\ncmd = [\"app\"]\n[proxy]\n{proxy}\n");
            let err = refused(dir.path(), &[], Some(&toml));
            assert!(err.contains(expected), "{proxy}: {err}");
        }
        let err = refused(
            dir.path(),
            &[],
            Some("[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\nhold_timout = \"1s\"\n"),
        );
        assert!(
            err.contains("reload.toml:5:1: unknown key `hold_timout` in [proxy]"),
            "{err}"
        );
        assert!(err.contains("did you mean `hold_timeout`?"), "{err}");
    }

    #[test]
    fn the_proxy_and_the_server_need_two_ports() {
        let dir = tempfile::tempdir().unwrap();
        for proxy in ["8080", "0.0.0.0:8080", "[::]:8080"] {
            let err = refused(
                dir.path(),
                &["--proxy", proxy, "--app-port", "8080", "--", "app"],
                None,
            );
            assert!(
                err.starts_with(&format!(
                    "--proxy {proxy} and --app-port 8080 are the same port"
                )),
                "{err}"
            );
        }
        // Another address of this machine is another socket.
        let config = resolve_in(
            dir.path(),
            &[
                "--proxy",
                "192.168.1.5:8080",
                "--app-port",
                "8080",
                "--",
                "app",
            ],
            None,
        )
        .unwrap();
        assert_eq!(proxy_of(&config).upstream, Upstream::AppPort(8080));
        let err = refused(
            dir.path(),
            &[],
            Some("[run]\ncmd = [\"app\"]\n[proxy]\nport = 8080\napp_port = 8080\n"),
        );
        assert!(
            err.contains(
                "reload.toml:4:8: [proxy] port = 8080 and [proxy] app_port = 8080 are the same port"
            ),
            "{err}"
        );
        let err = refused(
            dir.path(),
            &["--proxy", "3000", "--listen", "3000", "--", "app"],
            None,
        );
        assert!(
            err.starts_with("--proxy 3000 and --listen 127.0.0.1:3000 are the same port"),
            "{err}"
        );
    }

    #[test]
    fn a_proxy_needs_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let err = refused(
            dir.path(),
            &["--build", "make", "--proxy", "8090", "--app-port", "8080"],
            None,
        );
        assert!(
            err.starts_with("--proxy needs a server to forward to"),
            "{err}"
        );
        let err = refused(
            dir.path(),
            &[],
            Some("[build]\ncmd = \"make\"\n[proxy]\nport = 8090\napp_port = 8080\n"),
        );
        assert!(
            err.contains("reload.toml:4:8: [proxy] port needs a server to forward to"),
            "{err}"
        );
    }

    #[test]
    fn proxy_flags_without_a_proxy_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for flag in [&["--app-port", "8080"][..], &["--no-inject"]] {
            let mut argv = flag.to_vec();
            argv.extend(["--", "app"]);
            let err = refused(dir.path(), &argv, None);
            assert!(
                err.starts_with(&format!(
                    "{} is a setting of the dev proxy, and no proxy is asked for",
                    flag[0]
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn airs_proxy_becomes_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[build]\ncmd = \"true\"\nbin = \"app\"\n[proxy]\nenabled = true\n\
                    proxy_port = 8090\napp_port = 8080\napp_start_timeout = 2500\n";
        let config = resolve_air(dir.path(), &[], text).unwrap();
        let run = assert_proxies_8090_to_8080(config);
        assert_eq!(run.ready_timeout, Duration::from_millis(2500));

        let off = text.replace("enabled = true", "enabled = false");
        let config = resolve_air(dir.path(), &[], &off).unwrap();
        assert_eq!(config.proxy, None);
        assert!(!config.run.unwrap().env.contains_key("PORT"));

        // Errors in air's keys name them, at their line in the .air.toml.
        let err = resolve_air(dir.path(), &[], &text.replace("8090", "70000"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".air.toml:6:14: [proxy] proxy_port: `70000` is not a port"),
            "{err}"
        );
        let err = resolve_air(dir.path(), &[], &text.replace("8090", "8080"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".air.toml:6:14: [proxy] proxy_port = 8080 and [proxy] app_port = 8080"),
            "{err}"
        );
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
