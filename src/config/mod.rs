//! Configuration: the command line, reload.toml (or air's file) and what the project looks like,
//! resolved once into a [`Config`]. Defaults < file < command line. No other module sees clap,
//! toml, or an `Option` that means "use the default"; every duration is a `Duration`, every glob
//! compiled. Each key is declared once, in `keys.rs`, which gives its flag, its field in the
//! file, its default and its line in `reload init`. One resolver per section (`resolve_watch`,
//! `resolve_build`, `resolve_run`, `resolve_output`, `proxy::resolve`) reads the layers through
//! `Place`. The resolved configuration is a map of services (today one, [`APP`]) and what is
//! global; the proxy is then linked to the service it forwards to (`proxy::link_to_service`,
//! whose module says what the link gives the server).

mod air;
mod changes;
mod clean;
mod detect;
mod file;
mod flags;
pub mod init;
pub(crate) mod keys;
mod proxy;
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
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use globset::{GlobSet, GlobSetBuilder};
use indexmap::IndexMap;
use nix::sys::signal::Signal;
use toml::Spanned;

pub use changes::{Change, changes};
pub use clean::CleanPath;
pub use file::ConfigError;
use file::Source;
pub(crate) use flags::Given;
use flags::flag_name;
pub use flags::{Flags, ProjectFlags};
pub use keys::KeyFlags;
use keys::{FileConfig, Key, PollValue, RunCmd};

/// Where Go builds go when air's or reload's zero-config decides (air's `tmp_dir`).
const GO_BINARY_DIR: &str = "tmp";

/// Name of the config file looked for in the current directory.
pub const CONFIG_FILE: &str = "reload.toml";

/// The config files looked for in the current directory without `-c`, the first found wins.
const CONFIG_FILES: [&str; 3] = [CONFIG_FILE, ".air.toml", "air.toml"];

/// The name of the one service a configuration has today (reload.toml's `[watch]`, `[build]`
/// and `[run]`, or what zero-config detects).
pub const APP: &str = "app";

/// Everything the dev loop needs, resolved and checked: the services, and what is global.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute project root: builds and the server run here, relative paths start here.
    pub root: PathBuf,
    /// Each service by name, in the order they are declared; today one, [`APP`].
    pub services: IndexMap<String, ServiceConfig>,
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

impl Config {
    /// The service of a configuration that has one, as every configuration has today.
    pub fn app(&self) -> &ServiceConfig {
        &self.services[0]
    }
}

/// One service: what it watches, how it builds, what it runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub watch: WatchConfig,
    /// `None`: no build step, a change restarts the server directly.
    pub build: Option<BuildCommand>,
    /// `None`: build-only mode, nothing is kept running.
    pub run: Option<RunConfig>,
    /// Shell commands run after the server is stopped for good.
    pub post: Vec<String>,
    /// Paths removed when reload exits (air's clean_on_exit), all inside the root.
    pub clean_on_exit: Vec<CleanPath>,
}

/// The dev proxy: where the browser connects and where it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Where the browser connects (loopback unless the user named another host).
    pub listen: std::net::SocketAddr,
    /// The service it forwards to, by name.
    pub service: String,
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
pub fn resolve(flags: &Flags) -> Result<Config> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let looked_for: Vec<PathBuf> = match &flags.config {
        Some(path) => vec![cwd.join(path)],
        None => CONFIG_FILES.iter().map(|name| cwd.join(name)).collect(),
    };
    let config_path = match &flags.config {
        Some(_) => looked_for.first(),
        None => looked_for.iter().find(|path| path.is_file()),
    };
    let source = config_path.map(|path| Source::read(path)).transpose()?;
    let (file, warnings) = match &source {
        Some(source) if source.is_air() => air::parse(source)?,
        Some(source) => (source.parse()?, Vec::new()),
        None => (FileConfig::default(), Vec::new()),
    };
    let mut config = resolve_with(flags, &cwd, source.as_ref(), file)?;
    config.warnings = warnings;
    // The files looked for count as well as the one found: a reload.toml written while
    // zero-config runs takes over, as it would at the next start.
    let looked_for: Vec<PathBuf> = looked_for
        .iter()
        .map(|path| in_canonical_directory(path))
        .collect();
    for service in config.services.values_mut() {
        let files = &mut service.watch.config_files;
        for file in looked_for.iter().rev() {
            if !files.contains(file) {
                files.insert(0, file.clone());
            }
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

/// The layers a setting is read from, top down: the flags, the file (whose source places an
/// error at its line), the key's default. Errors name the flag, or the key as the file does.
struct Place<'a> {
    flags: &'a Flags,
    source: Option<&'a Source>,
}

impl Place<'_> {
    /// An error at `span` in the file (a usage error without one).
    fn file(&self, span: Range<usize>, message: String) -> anyhow::Error {
        match self.source {
            Some(source) => source.error_at(span, message).into(),
            None => usage(message),
        }
    }

    /// `key` as the file names it at `span`: `[run] listen`, or air's name in an .air.toml.
    fn label(&self, key: &Key, span: &Range<usize>) -> String {
        self.source
            .map_or_else(|| key.label(), |source| source.label(key, span))
    }

    /// An error about the value of `key` the file writes at `span`: `[run] listen: ...`.
    fn at(&self, key: &Key, span: &Range<usize>, message: &str) -> anyhow::Error {
        self.file(
            span.clone(),
            format!("{}: {message}", self.label(key, span)),
        )
    }

    /// An error about the flag of `key`: `--listen: ...`.
    fn flag(key: &Key, message: &str) -> anyhow::Error {
        usage(format!("{}: {message}", flag_name(key)))
    }

    /// The flag's value if given, else the file's, parsed by `parse`; `None` when neither
    /// says.
    fn layered<T>(
        &self,
        key: &Key,
        file: Option<&Spanned<String>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>> {
        match (self.flags.text(key), file) {
            (Some(text), _) => parse(&text).map(Some).map_err(|e| Place::flag(key, &e)),
            (None, Some(text)) => parse(text.get_ref())
                .map(Some)
                .map_err(|e| self.at(key, &text.span(), &e)),
            (None, None) => Ok(None),
        }
    }

    /// As [`Place::layered`], with the key's default (through the same `parse`) when neither
    /// the command line nor the file says.
    fn setting<T>(
        &self,
        key: &Key,
        file: Option<&Spanned<String>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T> {
        match self.layered(key, file, &parse)? {
            Some(value) => Ok(value),
            None => key.parsed_default(parse),
        }
    }

    /// A switch: as its flag turns it when given, else what the file says, else the default.
    fn switch(&self, key: &Key, file: Option<&Spanned<bool>>) -> Result<bool> {
        match (self.flags.switch(key), file) {
            (Some(value), _) => Ok(value),
            (None, Some(value)) => Ok(*value.get_ref()),
            (None, None) => key.parsed_default(keys::parse_bool),
        }
    }

    /// The file's list of `key`, each value parsed where it is written, then the flag's values
    /// (which add to it).
    fn list<T>(
        &self,
        key: &Key,
        file: &[Spanned<String>],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>> {
        let from_file = file
            .iter()
            .map(|written| parse(written.get_ref()).map_err(|e| self.at(key, &written.span(), &e)));
        let flags = self.flags.texts(key);
        let from_flags = flags
            .iter()
            .map(|text| parse(text).map_err(|e| Place::flag(key, &e)));
        from_file.chain(from_flags).collect()
    }

    /// The globs of `key` (the file's, the flag's and `built_in`) compiled into one set.
    fn globs(&self, key: &Key, file: &[Spanned<String>], built_in: &[&str]) -> Result<Globs> {
        let mut patterns: Vec<globset::Glob> = self.list(key, file, parse_glob)?.concat();
        for glob in built_in {
            patterns.extend(parse_glob(glob).map_err(usage)?);
        }
        Globs::new(patterns).map_err(|err| usage(format!("{}: {err}", key.label())))
    }
}

/// Each section resolved on its own, in the order its errors are reported.
fn resolve_with(
    flags: &Flags,
    cwd: &Path,
    source: Option<&Source>,
    mut file: FileConfig,
) -> Result<Config> {
    let place = Place { flags, source };
    let root = resolve_root(cwd, &place, file.root.as_ref())?;
    let project = detect::detect(&root);
    let mut watch = resolve_watch(&place, cwd, &root, project.as_ref(), file.watch)?;
    let commands = choose_commands(
        &place,
        &root,
        project.as_ref(),
        file.build.cmd.as_ref().map(Spanned::get_ref),
        file.run.cmd.take(),
    )?;
    let written = proxy::Written {
        readiness_asked: flags.has(&keys::run::ready) || file.run.ready.is_some(),
        port_at: (file.run.env.as_ref())
            .and_then(|env| env.get_ref().get("PORT"))
            .map(Spanned::span),
    };
    let (mut run, post) =
        resolve_run(&place, cwd, &root, commands.program, commands.env, file.run)?;
    if let Some(env_file) = run.as_ref().and_then(|run| run.env_file.as_ref()) {
        watch_env_file(&mut watch, env_file);
    }
    let (build, clean_on_exit) = resolve_build(&place, &root, commands.build, file.build)?;
    let output = resolve_output(&place, file.output)?;
    let proxy = proxy::resolve(&place, file.proxy)?;
    let proxy = proxy
        .map(|asked| proxy::link_to_service(&place, asked, APP, run.as_mut(), &written))
        .transpose()?;
    watch.config_files = detect::files_read(&root, project.as_ref());
    let app = ServiceConfig {
        watch,
        build,
        run,
        post,
        clean_on_exit,
    };
    Ok(Config {
        project_unreadable: project
            .as_ref()
            .and_then(detect::Project::unreadable)
            .map(str::to_owned),
        settings_files: Vec::new(),
        origin: match source {
            Some(source) => format!("{}: {}", source.path.display(), commands.what),
            None => commands.what,
        },
        root,
        services: IndexMap::from([(APP.to_owned(), app)]),
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

/// The program the flags or the file name, refused when it is empty.
fn explicit_program(
    place: &Place<'_>,
    run_cmd: Option<Spanned<RunCmd>>,
) -> Result<Option<Program>> {
    let from_flags = &place.flags.project.program;
    if !from_flags.is_empty() {
        if from_flags[0].trim().is_empty() {
            return Err(empty_program());
        }
        return Ok(Some(Program::Argv(from_flags.clone())));
    }
    let Some(cmd) = run_cmd else { return Ok(None) };
    let span = cmd.span();
    let (empty, program) = match cmd.into_inner() {
        RunCmd::Argv(argv) => (
            argv.first().is_none_or(|program| program.trim().is_empty()),
            Program::Argv(argv),
        ),
        RunCmd::Shell(line) => (line.trim().is_empty(), Program::Shell(line)),
    };
    if empty {
        return Err(place.file(
            span,
            "[run] cmd is empty: name the program to run, like cmd = [\"./server\"] or \
             cmd = \"./server --port 3000\""
                .to_owned(),
        ));
    }
    Ok(Some(program))
}

/// Flags over the file, both over zero-config detection: the build command and the program.
fn choose_commands(
    place: &Place<'_>,
    root: &Path,
    project: Option<&detect::Project>,
    build_cmd: Option<&String>,
    run_cmd: Option<Spanned<RunCmd>>,
) -> Result<Commands> {
    let flags = &place.flags.project;
    let explicit_program = explicit_program(place, run_cmd)?;
    let explicit_build = flags
        .text(&keys::build::cmd)
        .or_else(|| build_cmd.cloned())
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
            let plan = project.plan(root, flags.bin.as_deref(), flags.package.as_deref())?;
            env = plan.env;
            (plan.build, Some(plan.program), plan.description)
        }
        (None, None, None) => return Err(nothing_to_do(place.source, root)),
    };
    if flags.chooses_binary() && !matches!(build, Some(BuildCommand::Cargo { .. })) {
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

/// Neither the flags, nor the file, nor the project say what to build or run.
fn nothing_to_do(source: Option<&Source>, root: &Path) -> anyhow::Error {
    let Some(source) = source else {
        return usage(format!(
            "nothing to build or run in {}: no {CONFIG_FILE}, no .air.toml, and no Cargo, Go, \
             Python, Node or Makefile project\n  help: run `reload init` to write a {CONFIG_FILE}, \
             or say what to do: `reload --build 'make' -- ./server`",
            root.display()
        ));
    };
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

/// The server and how it is stopped, started and awaited; `None` in build-only mode (every
/// setting is still checked). Also `[run] post`, which runs after the server's last stop.
fn resolve_run(
    place: &Place<'_>,
    cwd: &Path,
    root: &Path,
    program: Option<Program>,
    mut env: BTreeMap<String, String>,
    run: keys::RunSection,
) -> Result<(Option<RunConfig>, Vec<String>)> {
    use keys::run as key;
    let duration = |key, file| place.setting(key, file, parse_duration);
    let stop_signal = place.setting(&key::stop_signal, run.stop_signal.as_ref(), parse_signal)?;
    let stop_timeout = duration(&key::stop_timeout, run.stop_timeout.as_ref())?;
    let readiness = place.setting(&key::ready, run.ready.as_ref(), parse_readiness)?;
    let ready_timeout = duration(&key::ready_timeout, run.ready_timeout.as_ref())?;
    let restart_delay = duration(&key::restart_delay, run.restart_delay.as_ref())?;
    // The flag's sockets replace the file's.
    let listen = match run.listen {
        Some(_) if place.flags.has(&key::listen) => Vec::new(),
        Some(listen) => listen.into_inner(),
        None => Vec::new(),
    };
    let listeners = place.list(&key::listen, &listen, |text| parse_listen(text, root))?;
    let env_file = match (place.flags.paths(&key::env_file).pop(), &run.env_file) {
        (Some(path), _) => {
            Some(check_exists(&cwd.join(path)).map_err(|e| Place::flag(&key::env_file, &e))?)
        }
        (None, Some(path)) => Some(
            check_exists(&root.join(path.get_ref()))
                .map_err(|e| place.at(&key::env_file, &path.span(), &e))?,
        ),
        (None, None) => None,
    };
    let written_env = run.env.map(Spanned::into_inner).unwrap_or_default();
    env.extend(written_env.into_iter().map(|(k, v)| (k, v.into_inner())));
    let order = if place.switch(&key::overlap, run.overlap.as_ref())? {
        RestartOrder::Overlap
    } else {
        RestartOrder::StopThenStart
    };
    let stop_on_build_error = run.stop_on_build_error.as_ref();
    let on_build_failure = if place.switch(&key::stop_on_build_error, stop_on_build_error)? {
        OnBuildFailure::Stop
    } else {
        OnBuildFailure::KeepServing
    };
    let on_exit = if place.switch(&key::restart_on_exit, run.restart_on_exit.as_ref())? {
        OnExit::RestartAfter(restart_delay)
    } else {
        OnExit::Wait
    };
    let mut post = run.post.map(Spanned::into_inner).unwrap_or_default();
    post.extend(place.flags.texts(&key::post));
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
    place: &Place<'_>,
    root: &Path,
    build: Option<BuildCommand>,
    section: keys::BuildSection,
) -> Result<(Option<BuildCommand>, Vec<CleanPath>)> {
    let mut pre = section.pre.map(Spanned::into_inner).unwrap_or_default();
    pre.extend(place.flags.texts(&keys::build::pre));
    let build = with_pre_commands(&pre, build);
    // Never anything outside the project, whatever a config file says: refused at start.
    let written = section.clean_on_exit.map(Spanned::into_inner);
    let clean_on_exit = written
        .unwrap_or_default()
        .iter()
        .map(|path| {
            CleanPath::resolve(root, path.get_ref()).map_err(|why| {
                let err = place.at(&keys::build::clean_on_exit, &path.span(), &why);
                with_help(
                    err,
                    "reload removes only paths inside the project, never the root itself",
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((build, clean_on_exit))
}

/// How reload speaks: flags over the file over the defaults.
fn resolve_output(place: &Place<'_>, output: keys::OutputSection) -> Result<Output> {
    use keys::output as key;
    Ok(Output {
        clear: place.switch(&key::clear, output.clear.as_ref())?,
        timestamps: place.switch(&key::timestamps, output.timestamps.as_ref())?,
        quiet: place.switch(&key::quiet, output.quiet.as_ref())?,
        format: place.setting(&key::format, output.format.as_ref(), parse_format)?,
    })
}

/// The paths to watch: the flag's (from the current directory), the file's (from the root),
/// or the project's, narrowed to the package chosen with -p/--bin.
fn watch_paths(
    place: &Place<'_>,
    cwd: &Path,
    root: &Path,
    project: Option<&detect::Project>,
    written: Option<Spanned<Vec<PathBuf>>>,
) -> Result<Vec<PathBuf>> {
    let flags = place.flags.paths(&keys::watch::paths);
    if !flags.is_empty() {
        return flags
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
            .collect();
    }
    let Some(paths) = written else {
        return Ok(match (project, place.source) {
            (Some(project), None) => project.watch_paths(
                root,
                place.flags.project.package.as_deref(),
                place.flags.project.bin.as_deref(),
            ),
            _ => vec![root.to_owned()],
        });
    };
    let span = paths.span();
    paths
        .into_inner()
        .iter()
        .map(|path| {
            root.join(path).canonicalize().map_err(|_| {
                let message = format!("watch path `{}` does not exist", path.display());
                place.file(span.clone(), message)
            })
        })
        .collect()
}

/// What to watch and what counts as a change: flags over the file, the file over the project
/// kind's defaults, plus the built-in ignores.
fn resolve_watch(
    place: &Place<'_>,
    cwd: &Path,
    root: &Path,
    project: Option<&detect::Project>,
    watch: keys::WatchSection,
) -> Result<WatchConfig> {
    use keys::watch as key;
    // A config file says what to watch; without one, the project kind's defaults apply.
    let defaults = match (project, place.source) {
        (Some(project), None) => project.watch_defaults(),
        _ => detect::WatchDefaults::default(),
    };
    let paths = watch_paths(place, cwd, root, project, watch.paths)?;
    let flags = place.flags.texts(&key::ext);
    let extensions: Vec<String> = match watch.ext.map(Spanned::into_inner) {
        _ if !flags.is_empty() => flags,
        Some(ext) => ext.into_list(),
        None => defaults.extensions,
    }
    .into_iter()
    .map(|e| e.trim().trim_start_matches('.').to_owned())
    .filter(|e| !e.is_empty())
    .collect();
    let unplaced = |globs: Vec<String>| -> Vec<Spanned<String>> {
        globs.into_iter().map(|g| Spanned::new(0..0, g)).collect()
    };
    let include = watch
        .include
        .map_or_else(|| unplaced(defaults.include), Spanned::into_inner);
    let include = (!include.is_empty())
        .then(|| place.globs(&key::include, &include, &[]))
        .transpose()?;
    let ignore = watch
        .ignore
        .map_or_else(|| unplaced(defaults.ignore), Spanned::into_inner);
    let ignore = place.globs(&key::ignore, &ignore, EDITOR_TEMPORARIES)?;
    let regexes = watch
        .ignore_regex
        .map(Spanned::into_inner)
        .unwrap_or_default();
    let mut ignore_regex = regexes
        .iter()
        .map(|pattern| {
            regex::Regex::new(pattern.get_ref()).map_err(|err| {
                let message = format!("invalid regular expression `{}`: {err}", pattern.get_ref());
                place.file(pattern.span(), message)
            })
        })
        .collect::<Result<Vec<_>>>()?;
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
    Ok(WatchConfig {
        paths,
        config_files: Vec::new(),
        filter: FilterRules {
            root: root.to_owned(),
            extensions,
            include,
            ignore,
            ignore_regex,
            gitignore: place.switch(&key::gitignore, watch.gitignore.as_ref())?,
            ignored_dirs,
        },
        debounce: place.setting(&key::debounce, watch.debounce.as_ref(), parse_duration)?,
        poll: resolve_poll(place, watch.poll)?,
    })
}

/// `--poll [DUR]` or `poll = true | "DUR"`: the interval, `None` (the default, `false`) for
/// inotify.
fn resolve_poll(
    place: &Place<'_>,
    written: Option<Spanned<PollValue>>,
) -> Result<Option<Duration>> {
    let written = written.and_then(|poll| {
        let span = poll.span();
        match poll.into_inner() {
            PollValue::Enabled(true) => Some(Spanned::new(span, keys::POLL_INTERVAL.to_owned())),
            PollValue::Enabled(false) => None,
            PollValue::Interval(text) => Some(Spanned::new(span, text)),
        }
    });
    place.layered(
        &keys::watch::poll,
        written.as_ref(),
        |text| match parse_duration(text)? {
            interval if interval < MIN_POLL => Err(format!(
                "`{text}` is too short a poll interval: each poll walks the whole tree; use \
                 10ms or more ({} when given without a value)",
                keys::POLL_INTERVAL
            )),
            interval => Ok(interval),
        },
    )
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

/// `err` with `help` below it, when it is about a config file.
fn with_help(mut err: anyhow::Error, help: &str) -> anyhow::Error {
    if let Some(config) = err.downcast_mut::<ConfigError>() {
        config.help = Some(help.to_owned());
    }
    err
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

    fn flags(words: &[&str]) -> Flags {
        let argv = std::iter::once("reload").chain(words.iter().copied());
        crate::cli::Args::parse_from(argv).flags
    }

    /// `argv`, split at spaces, resolved in `dir` with `toml` as its reload.toml.
    pub(super) fn resolve_in(dir: &Path, argv: &str, toml: Option<&str>) -> Result<Config> {
        resolve_words(dir, &argv.split_whitespace().collect::<Vec<_>>(), toml)
    }

    /// [`resolve_in`] for a command line whose words are not split at spaces (an empty one).
    fn resolve_words(dir: &Path, words: &[&str], toml: Option<&str>) -> Result<Config> {
        let source = toml.map(|text| Source {
            path: dir.join(CONFIG_FILE),
            text: text.into(),
        });
        let file = source.as_ref().map(Source::parse).transpose()?;
        resolve_with(
            &flags(words),
            dir,
            source.as_ref(),
            file.unwrap_or_default(),
        )
    }

    /// An .air.toml resolved as `resolve` resolves one.
    fn resolve_air(dir: &Path, text: &str) -> Result<Config> {
        let source = Source {
            path: dir.join(".air.toml"),
            text: text.into(),
        };
        let (file, _) = air::parse(&source)?;
        resolve_with(&flags(&[]), dir, Some(&source), file)
    }

    /// `resolve_in` for a mistake: the message, with `dir` dropped from the file's path, after
    /// checking it is one that exits 2 (a `UsageError` or a `ConfigError`, as `Exit::of_error`
    /// looks for).
    #[track_caller]
    fn refused(dir: &Path, argv: &str, toml: Option<&str>) -> String {
        let err = resolve_in(dir, argv, toml).expect_err("a refusal");
        assert!(
            err.chain()
                .any(|cause| cause.is::<UsageError>() || cause.is::<ConfigError>()),
            "not a usage error, so not exit 2: {err:#}"
        );
        err.to_string().replace(&format!("{}/", dir.display()), "")
    }

    fn run_of(config: &Config) -> &RunConfig {
        config.app().run.as_ref().expect("a server")
    }

    fn proxy_of(config: &Config) -> &ProxyConfig {
        config.proxy.as_ref().expect("the proxy is on")
    }

    fn addr(text: &str) -> std::net::SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_plan_in_words_says_what_builds_and_what_runs() {
        let make = BuildCommand::Shell("make".to_owned());
        let server = Program::Argv(vec!["./server".into(), "--name".into(), "it's".into()]);
        assert_eq!(
            plan_in_words(Some(&make), None, Some(&server)),
            r"build with `make`, run `./server --name 'it'\''s'`"
        );
        let artifact = Some(&Program::CargoArtifact);
        assert_eq!(
            plan_in_words(Some(&make), Some("Go module"), artifact),
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
        let config = resolve_in(&dir, "--debounce 10ms -e rs", Some(toml)).unwrap();
        assert_eq!(config.app().watch.debounce, Duration::from_millis(10));
        assert_eq!(config.app().watch.filter.extensions, ["rs"]);
        let run = run_of(&config);
        assert_eq!(run.program, Program::Shell("python3 app.py".into()));
        assert_eq!(run.stop_timeout, Duration::from_secs(2));
        assert!(config.app().build.is_none());
    }

    #[test]
    fn empty_build_means_no_build_step() {
        let dir = std::env::temp_dir();
        let config = resolve_words(&dir, &["--build", "", "--", "app"], None).unwrap();
        assert!(config.app().build.is_none());
        assert_eq!(run_of(&config).program, Program::Argv(vec!["app".into()]));
    }

    #[test]
    fn bad_values_in_the_file_point_at_their_line() {
        let dir = std::env::temp_dir();
        let toml = "[run]\ncmd = \"x\"\nstop_signal = \"SIGFOO\"\n";
        let err = resolve_in(&dir, "", Some(toml)).unwrap_err();
        let err = err.downcast_ref::<ConfigError>().expect("a ConfigError");
        assert_eq!(err.position, Some((3, 15)));
        assert!(err.message.contains("SIGFOO"));
    }

    #[test]
    fn a_file_with_every_default_written_out_resolves_as_one_that_leaves_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let run = "[run]\ncmd = [\"app\"]\n";
        let mut spelled_out = String::new();
        for section in std::iter::once(None).chain(keys::TABLES.iter().copied().map(Some)) {
            if let Some(table) = section {
                spelled_out.push_str(&format!("[{table}]\n"));
            }
            if section == Some("run") {
                spelled_out.push_str("cmd = [\"app\"]\n");
            }
            for key in keys::KEYS.iter().filter(|key| key.table == section) {
                if let Some(default) = key.default_toml() {
                    spelled_out.push_str(&format!("{} = {default}\n", key.name));
                }
            }
        }
        let resolved = |toml: &str| {
            let config = resolve_in(dir.path(), "", Some(toml))
                .unwrap_or_else(|err| panic!("{err:#}\n{toml}"));
            format!("{config:#?}")
        };
        assert_eq!(resolved(&spelled_out), resolved(run), "{spelled_out}");
    }

    #[test]
    fn each_default_reaches_the_setting_it_belongs_to() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve_in(dir.path(), "", Some("[run]\ncmd = [\"app\"]\n")).unwrap();
        assert_eq!(config.app().watch.debounce, Duration::from_millis(50));
        assert_eq!(config.app().watch.poll, None);
        assert!(config.app().watch.filter.gitignore);
        let run = run_of(&config);
        assert_eq!(run.stop_signal, Signal::SIGTERM);
        assert_eq!(run.stop_timeout, Duration::from_secs(5));
        assert_eq!(run.readiness, Readiness::Spawned);
        assert_eq!(run.ready_timeout, Duration::from_secs(30));
        assert_eq!(run.order, RestartOrder::StopThenStart);
        assert_eq!(run.on_build_failure, OnBuildFailure::KeepServing);
        assert_eq!(run.on_exit, OnExit::Wait);
        assert_eq!(config.output.format, LogFormat::Human);
        let toml = "[run]\ncmd = [\"app\"]\nrestart_on_exit = true\n";
        let restarting = resolve_in(dir.path(), "", Some(toml)).unwrap();
        assert_eq!(
            run_of(&restarting).on_exit,
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

    /// The proxy on 127.0.0.1:8090 with its defaults, in front of an app on 8080 that gets
    /// PORT=8080 and is ready when that port accepts; the server's settings, for more checks.
    #[track_caller]
    fn assert_proxies_8090_to_8080(config: Config) -> RunConfig {
        assert_eq!(
            proxy_of(&config),
            &ProxyConfig {
                service: APP.into(),
                listen: addr("127.0.0.1:8090"),
                upstream: Upstream::AppPort(8080),
                hold_timeout: Duration::from_secs(30),
                inject: true,
                allowed_hosts: Vec::new(),
            }
        );
        let run = run_of(&config);
        assert_eq!(run.env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(
            run.readiness,
            Readiness::TcpConnect("127.0.0.1:8080".to_owned())
        );
        run.clone()
    }

    #[test]
    fn proxy_flags_turn_it_on_in_front_of_the_app_port() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve_in(dir.path(), "--proxy 8090 --app-port 8080 -- app", None).unwrap();
        assert_proxies_8090_to_8080(config);
    }

    #[test]
    fn allowed_hosts_add_up_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\napp_port = 8080\n\
                    allowed_hosts = [\"a.test\"]\n";
        let config = resolve_in(dir.path(), "--allow-host *.b.test", Some(toml)).unwrap();
        assert_eq!(
            proxy_of(&config).allowed_hosts,
            [
                HostPattern::Name("a.test".into()),
                HostPattern::Under("b.test".into())
            ]
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
            // Another address of this machine is another socket than the app's.
            ("192.168.1.5:8080", "192.168.1.5:8080"),
        ] {
            let argv = format!("--proxy {written} --app-port 8080 -- app");
            let config = resolve_in(dir.path(), &argv, None).unwrap();
            assert_eq!(proxy_of(&config).listen, addr(listen), "{written}");
            assert_eq!(proxy_of(&config).upstream, Upstream::AppPort(8080));
        }
    }

    #[test]
    fn without_the_proxy_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        // `[proxy]` settings without a port wait for --proxy: they turn nothing on.
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\napp_port = 8080\nhold_timeout = \"5s\"\n";
        let config = resolve_in(dir.path(), "", Some(toml)).unwrap();
        assert_eq!(config.proxy, None);
        let run = run_of(&config);
        assert!(!run.env.contains_key("PORT"), "{:?}", run.env);
        assert_eq!(run.readiness, Readiness::Spawned);
    }

    #[test]
    fn the_files_proxy_section_and_the_flags_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = \"127.0.0.1:9000\"\napp_port = 3000\n\
                    hold_timeout = \"5s\"\ninject = false\nallowed_hosts = [\"MyApp.test\", \
                    \"*.tunnel.example\"]\n";
        let config = resolve_in(dir.path(), "", Some(toml)).unwrap();
        assert_eq!(
            proxy_of(&config),
            &ProxyConfig {
                service: APP.into(),
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
        let config = resolve_in(dir.path(), "--proxy 9001 --app-port 3001", Some(toml)).unwrap();
        let proxy = proxy_of(&config);
        assert_eq!(
            (proxy.listen, &proxy.upstream),
            (addr("127.0.0.1:9001"), &Upstream::AppPort(3001))
        );
        assert_eq!(
            run_of(&config).env.get("PORT").map(String::as_str),
            Some("3001")
        );

        // A number and the string of one are the same port; --no-inject wins over the file.
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 9000\napp_port = \"3000\"\n\
                    inject = true\n";
        let config = resolve_in(dir.path(), "--no-inject", Some(toml)).unwrap();
        let proxy = proxy_of(&config);
        assert_eq!(proxy.listen, addr("127.0.0.1:9000"));
        assert_eq!(proxy.upstream, Upstream::AppPort(3000));
        assert!(!proxy.inject);

        // --proxy turns on the proxy the file describes without a port of its own.
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\napp_port = 3000\n";
        let config = resolve_in(dir.path(), "--proxy 9000", Some(toml)).unwrap();
        assert_eq!(proxy_of(&config).upstream, Upstream::AppPort(3000));
    }

    #[test]
    fn with_listen_the_proxy_forwards_to_the_held_socket() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\nlisten = [\"3000\"]\n[proxy]\nport = 8090\n";
        let flags = |listen: &str| format!("--proxy 8090 --listen {listen} --listen 4000 -- app");
        for (argv, toml, held) in [
            (flags("3000"), None, "127.0.0.1:3000"),
            (flags("web=[::1]:3000"), None, "[::1]:3000"),
            // Bound on every interface; reached on loopback.
            (flags("0.0.0.0:3000"), None, "127.0.0.1:3000"),
            (String::new(), Some(toml), "127.0.0.1:3000"),
        ] {
            let config = resolve_in(dir.path(), &argv, toml).unwrap();
            assert_eq!(proxy_of(&config).upstream, Upstream::Held(addr(held)));
            let run = run_of(&config);
            // The kernel accepts on a held socket before any server does: no tcp probe, no
            // PORT (the server takes fd 3).
            assert_eq!(run.readiness, Readiness::Spawned, "{argv}");
            assert!(!run.env.contains_key("PORT"));
        }
    }

    #[test]
    fn an_explicit_readiness_check_stays() {
        let dir = tempfile::tempdir().unwrap();
        for argv in [
            "--proxy 8090 --app-port 8080 --ready notify -- app",
            "--proxy 8090 --ready notify -- app",
        ] {
            let config = resolve_in(dir.path(), argv, None).unwrap();
            assert_eq!(run_of(&config).readiness, Readiness::Notify, "{argv}");
        }
        // `none`, written, is asked for too: the server is ready when spawned.
        let toml =
            "[run]\ncmd = [\"app\"]\nready = \"none\"\n[proxy]\nport = 8090\napp_port = 8080\n";
        let config = resolve_in(dir.path(), "", Some(toml)).unwrap();
        assert_eq!(run_of(&config).readiness, Readiness::Spawned);
    }

    #[test]
    fn a_port_in_run_env_that_is_the_app_port_stays() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\nenv = { PORT = \"8080\", A = \"1\" }\n";
        let argv = "--proxy 8090 --app-port 8080";
        let config = resolve_in(dir.path(), argv, Some(toml)).unwrap();
        let env = &run_of(&config).env;
        assert_eq!(env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
    }

    #[test]
    fn the_proxy_alone_lets_reload_choose_the_port_and_follow_the_app() {
        let dir = tempfile::tempdir().unwrap();
        for (argv, toml) in [
            ("--proxy 8090 -- app", None),
            ("", Some("[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\n")),
        ] {
            let config = resolve_in(dir.path(), argv, toml).unwrap();
            assert_eq!(proxy_of(&config).upstream, Upstream::Chosen, "{argv}");
            let run = run_of(&config);
            assert_eq!(run.readiness, Readiness::GivenPort);
            assert_eq!(run.env.get("PORT"), None, "given at each start, not here");
        }
    }

    #[test]
    fn a_port_written_in_run_env_is_the_app_port_of_a_proxy_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[run]\ncmd = [\"app\"]\nenv = { PORT = \"8080\" }\n";
        let config = resolve_in(dir.path(), "--proxy 8090", Some(toml)).unwrap();
        assert_proxies_8090_to_8080(config);
    }

    /// Each mistake (a command line and a reload.toml) is refused with a message that starts
    /// as given: with the flag, or with the file, the line and the key.
    #[track_caller]
    fn assert_refusals(cases: &[(&str, Option<&str>, &str)]) {
        let dir = tempfile::tempdir().unwrap();
        for (argv, toml, expected) in cases {
            let err = refused(dir.path(), argv, *toml);
            assert!(err.starts_with(expected), "{argv} {toml:?}: {err}");
        }
    }

    #[test]
    fn mistakes_about_where_the_proxy_forwards_are_refused() {
        let env_port = |port: &str| {
            format!("[run]\ncmd = [\"app\"]\nenv = {{ PORT = \"{port}\", A = \"1\" }}\n")
        };
        let hosts = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\napp_port = 8080\n\
                     allowed_hosts = [\"a.test\",\n  \"*\"]\n";
        let env_3000 = env_port("3000");
        assert_refusals(&[
            (
                "",
                Some(hosts),
                "reload.toml:7:3: [proxy] allowed_hosts: `*` would let",
            ),
            (
                "--proxy 8090 --app-port 8080 --allow-host a.test:80 -- app",
                None,
                "--allow-host: `a.test:80`",
            ),
            // A PORT in [run] env must be the app port.
            (
                "--proxy 8090 --app-port 8080",
                Some(&env_3000),
                "reload.toml:3:16: [run] env.PORT: `3000` contradicts --app-port 8080: the \
                 proxy forwards to port 8080 and gives the server PORT=8080\n  help: make them \
                 the same, or drop PORT from [run] env",
            ),
            (
                "--proxy 8090",
                Some("[run]\ncmd = [\"app\"]\nenv = { PORT = \"web\" }\n"),
                "reload.toml:3:16: [run] env.PORT: with --proxy and no app port, the proxy \
                 forwards to this PORT, and `web` is not a port; write a number from 1 to 65535",
            ),
            (
                "--proxy 8090",
                Some("[run]\ncmd = [\"app\"]\nenv = { PORT = \"8090\" }\n"),
                "--proxy 8090 and PORT = \"8090\" in [run] env are the same port",
            ),
            // The upstream must be known and said once.
            (
                "--proxy 8090 --app-port 8080 --listen 3000 -- app",
                None,
                "--app-port 8080 and --listen 127.0.0.1:3000 contradict each other",
            ),
            (
                "--proxy 8090 --listen unix:app.sock -- app",
                None,
                "--proxy forwards to the first --listen socket over TCP",
            ),
            (
                "--proxy 8090 --listen 0 -- app",
                None,
                "--proxy forwards to the first --listen socket, and 127.0.0.1:0 asks for any \
                 free port",
            ),
        ]);
    }

    #[test]
    fn a_proxy_without_a_server_or_its_own_port_is_refused() {
        assert_refusals(&[
            // The proxy and the server need two ports.
            (
                "--proxy 8080 --app-port 8080 -- app",
                None,
                "--proxy 8080 and --app-port 8080 are the same port",
            ),
            (
                "--proxy 0.0.0.0:8080 --app-port 8080 -- app",
                None,
                "--proxy 0.0.0.0:8080 and --app-port 8080 are the same port",
            ),
            (
                "--proxy [::]:8080 --app-port 8080 -- app",
                None,
                "--proxy [::]:8080 and --app-port 8080 are the same port",
            ),
            (
                "",
                Some("[run]\ncmd = [\"app\"]\n[proxy]\nport = 8080\napp_port = 8080\n"),
                "reload.toml:4:8: [proxy] port = 8080 and [proxy] app_port = 8080 are the same \
                 port",
            ),
            (
                "--proxy 3000 --listen 3000 -- app",
                None,
                "--proxy 3000 and --listen 127.0.0.1:3000 are the same port",
            ),
            // A proxy needs a server.
            (
                "--build make --proxy 8090 --app-port 8080",
                None,
                "--proxy needs a server to forward to",
            ),
            (
                "",
                Some("[build]\ncmd = \"make\"\n[proxy]\nport = 8090\napp_port = 8080\n"),
                "reload.toml:4:8: [proxy] port needs a server to forward to",
            ),
            // Its flags without a proxy.
            (
                "--app-port 8080 -- app",
                None,
                "--app-port is a setting of the dev proxy, and no proxy is asked for",
            ),
            (
                "--no-inject -- app",
                None,
                "--no-inject is a setting of the dev proxy, and no proxy is asked for",
            ),
            (
                "--allow-host a.test -- app",
                None,
                "--allow-host is a setting of the dev proxy, and no proxy is asked for",
            ),
        ]);
    }

    #[test]
    fn ports_that_do_not_parse_are_refused_naming_the_flag_or_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (proxy, app, expected) in [
            ("80x", "8080", "--proxy: `80x` is not a port or an address"),
            (
                "70000",
                "8080",
                "--proxy: `70000` is not a port: ports go from 1 to 65535",
            ),
            ("0", "8080", "--proxy: port 0 means \"any free port\""),
            ("8090", "a", "--app-port: `a` is not a port"),
            ("8090", "0", "--app-port: port 0"),
            ("8090", "65536", "--app-port: `65536` is not a port"),
        ] {
            let argv = format!("--proxy {proxy} --app-port {app} -- app");
            let err = refused(dir.path(), &argv, None);
            assert!(err.starts_with(expected), "{argv}: {err}");
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
            (
                "port = 8090\nhold_timout = \"1s\"",
                "reload.toml:5:1: unknown key `hold_timout` in [proxy]",
            ),
        ] {
            let toml = format!("[run]\ncmd = [\"app\"]\n[proxy]\n{proxy}\n");
            let err = refused(dir.path(), "", Some(&toml));
            assert!(err.starts_with(expected), "{proxy}: {err}");
        }
        let toml = "[run]\ncmd = [\"app\"]\n[proxy]\nport = 8090\nhold_timout = \"1s\"\n";
        let err = refused(dir.path(), "", Some(toml));
        assert!(err.contains("did you mean `hold_timeout`?"), "{err}");
    }

    #[test]
    fn airs_proxy_becomes_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[build]\ncmd = \"true\"\nbin = \"app\"\n[proxy]\nenabled = true\n\
                    proxy_port = 8090\napp_port = 8080\napp_start_timeout = 2500\n";
        let run = assert_proxies_8090_to_8080(resolve_air(dir.path(), text).unwrap());
        assert_eq!(run.ready_timeout, Duration::from_millis(2500));

        let off = text.replace("enabled = true", "enabled = false");
        let config = resolve_air(dir.path(), &off).unwrap();
        assert_eq!(config.proxy, None);
        assert!(!run_of(&config).env.contains_key("PORT"));

        // Errors in air's keys name them, at their line in the .air.toml.
        for (port, expected) in [
            (
                "70000",
                ".air.toml:6:14: [proxy] proxy_port: `70000` is not a port",
            ),
            (
                "8080",
                ".air.toml:6:14: [proxy] proxy_port = 8080 and [proxy] app_port = 8080",
            ),
        ] {
            let err = resolve_air(dir.path(), &text.replace("8090", port)).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn nothing_to_do_says_how_to_start() {
        let dir = std::env::temp_dir().join(format!("reload-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = resolve_in(&dir, "", None).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("reload init"), "{err}");
    }
}
