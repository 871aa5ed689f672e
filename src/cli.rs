//! The command line as the user typed it. Nothing here is interpreted: `config::resolve` turns
//! these raw values (together with the config file) into the one `Config` the program runs on.

use std::path::PathBuf;

use clap::{Arg, Parser};

use crate::config::keys;

/// Watch the sources, rebuild on every save, and swap the running server for the new build.
#[derive(Debug, Parser)]
#[command(
    name = "reload",
    version,
    about,
    args_conflicts_with_subcommands = true,
    mut_args = show_defaults,
    after_help = "Examples:\n  \
        reload                  # reload.toml, .air.toml, or a Cargo, Go, Python, Node or Make \
        project\n  \
        reload -b 'go build -o tmp/app .' -- ./tmp/app\n  \
        reload -e py -- python3 server.py       # no build step, restart on .py changes\n  \
        reload --stop-timeout 10s -c dev.toml\n  \
        reload --listen 3000 --ready notify --overlap -- ./target/debug/server\n  \
        reload --proxy 8090 -- node server.js   # the browser on :8090 follows every save\n  \
        reload init --from-air                  # .air.toml -> a commented reload.toml\n\n\
        Keys, when stdin is a terminal: r rebuild and restart, c clear, q quit, h help."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Config file to read instead of ./reload.toml.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What the project is: watched paths, extensions, the build, the binary, the server.
    #[command(flatten)]
    pub project: ProjectFlags,

    /// Do not read .gitignore and .ignore files.
    #[arg(long = "no-gitignore")]
    pub no_gitignore: bool,

    /// Quiet window: changes closer together than this make one rebuild.
    #[arg(long = "debounce", value_name = "DUR")]
    pub debounce: Option<String>,

    /// Shell command to run before each build (repeatable; air's pre_cmd).
    #[arg(long = "pre", value_name = "CMD")]
    pub pre: Vec<String>,

    /// Shell command to run after the server is stopped for good (repeatable; air's post_cmd).
    #[arg(long = "post", value_name = "CMD")]
    pub post: Vec<String>,

    /// Dotenv file whose variables the server gets (read again at every start).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// Poll the file system every DUR (at least 10ms) instead of using inotify (network mounts,
    /// some containers).
    #[arg(
        long = "poll",
        value_name = "DUR",
        num_args = 0..=1,
        default_missing_value = keys::POLL_INTERVAL
    )]
    pub poll: Option<String>,

    /// Clear the screen before each build.
    #[arg(long = "clear")]
    pub clear: bool,

    /// How reload reports: `human` status lines, or `json` events (one object per line).
    #[arg(long = "log-format", value_name = "FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,

    /// Signal that asks the server to stop.
    #[arg(long = "stop-signal", value_name = "SIG")]
    pub stop_signal: Option<String>,

    /// How long the server may take to stop before it is killed.
    #[arg(long = "stop-timeout", value_name = "DUR")]
    pub stop_timeout: Option<String>,

    /// Hold a listening socket and hand it to every server (systemd socket activation: fds 3,
    /// 4, ... with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES). ADDR: `3000`, `127.0.0.1:3000`,
    /// `[::1]:3000`, `unix:/path.sock`, optionally named: `web=3000`. Repeatable.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<String>,

    /// When a new server counts as ready: `none` (when spawned), `notify` (it sends READY=1 to
    /// $NOTIFY_SOCKET), `tcp:PORT` (the port accepts a connection), or an
    /// `http://host:port/path` that answers.
    #[arg(long = "ready", value_name = "MODE")]
    pub ready: Option<String>,

    /// How long a new server may take to become ready.
    #[arg(long = "ready-timeout", value_name = "DUR")]
    pub ready_timeout: Option<String>,

    /// Start the new server while the old one still serves; stop the old one once the new one is
    /// ready (zero downtime with --listen).
    #[arg(long = "overlap")]
    pub overlap: bool,

    /// Put a dev proxy in front of the server, where the browser connects: it holds requests
    /// while the server restarts and reloads the page after each build. ADDR: `8090`, `:8090`
    /// (both on 127.0.0.1), `HOST:PORT`, `[::1]:8090`; all interfaces only as `0.0.0.0:PORT`.
    #[arg(long = "proxy", value_name = "ADDR")]
    pub proxy: Option<String>,

    /// The port the server listens on, where --proxy forwards; the server gets it as $PORT.
    /// Optional: without it, reload gives the server a free port as $PORT and forwards to
    /// wherever it listens. Not with --listen: the proxy forwards to the socket reload holds.
    #[arg(long = "app-port", value_name = "PORT")]
    pub app_port: Option<String>,

    /// With --proxy, also answer requests for NAME (the proxy answers localhost, *.localhost
    /// and IP addresses only, so that no other web page can read it): a LAN name, a tunnel's
    /// name, or *.NAME for every name under it. Repeatable.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,

    /// With --proxy, leave pages alone: no live-reload script.
    #[arg(long = "no-inject")]
    pub no_inject: bool,

    /// Only print errors.
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print what reload is doing (RELOAD_LOG takes a full tracing filter).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Append to a flag's help what it is when not given: the default of the reload.toml key it
/// overrides, from the one table that also gives the resolver and `reload init` theirs (the
/// value itself is applied by config, below the file, never here). `--poll` is off by default;
/// its note says what a bare `--poll` stands for.
fn show_defaults(arg: Arg) -> Arg {
    let note = if arg.get_id() == "poll" {
        format!(
            "[default when given without a value: {}]",
            keys::POLL_INTERVAL
        )
    } else {
        let default = arg
            .get_long()
            .and_then(keys::for_flag)
            .and_then(keys::Key::default_text)
            .filter(|_| arg.get_action().takes_values());
        match default {
            Some(default) => format!("[default: {default}]"),
            None => return arg,
        }
    };
    let help = match arg.get_help() {
        Some(help) => format!("{help} {note}"),
        None => note,
    };
    arg.help(help)
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a commented reload.toml for the project in the current directory: what a bare
    /// `reload` would do there, with the project flags given here written in.
    Init(InitArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `reload init [--force] [--from-air] [PROJECT FLAGS] [-- PROGRAM]`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing reload.toml.
    #[arg(long)]
    pub force: bool,
    /// Convert .air.toml (or air.toml) instead of detecting the project (the default when one
    /// exists).
    #[arg(long = "from-air")]
    pub from_air: bool,
    #[command(flatten)]
    pub project: ProjectFlags,
}

/// The flags that say what the project is: `reload` acts on them, `init` writes them down.
/// One definition, flattened into both.
#[derive(Debug, Default, clap::Args)]
pub struct ProjectFlags {
    /// Path to watch, recursively (repeatable; default: the project root).
    #[arg(short = 'w', long = "watch", value_name = "PATH")]
    pub watch: Vec<PathBuf>,

    /// Only changes to files with these extensions count (comma list: rs,toml).
    #[arg(short = 'e', long = "ext", value_name = "EXTS", value_delimiter = ',')]
    pub ext: Vec<String>,

    /// Ignore paths matching this glob (repeatable); a glob without `/` matches a name at any depth.
    #[arg(short = 'i', long = "ignore", value_name = "GLOB")]
    pub ignore: Vec<String>,

    /// Build command, run with `sh -c` in the project root; '' means no build step.
    #[arg(short = 'b', long = "build", value_name = "CMD")]
    pub build: Option<String>,

    /// In a Cargo project with several binaries, the one to build and run.
    #[arg(long = "bin", value_name = "NAME")]
    pub bin: Option<String>,

    /// In a Cargo workspace, the package whose binary to build and run.
    #[arg(short = 'p', long = "package", value_name = "NAME")]
    pub package: Option<String>,

    /// The server to run, executed directly (no shell), e.g. `-- ./target/debug/app --port 3000`.
    #[arg(last = true, value_name = "PROGRAM")]
    pub program: Vec<String>,
}

impl ProjectFlags {
    /// `--bin` or `-p`: which binary of a Cargo project zero-config builds and runs.
    pub fn chooses_binary(&self) -> bool {
        self.bin.is_some() || self.package.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn every_flag_of_the_table_exists_and_shows_the_tables_default() {
        let command = Args::command();
        for key in keys::KEYS {
            let Some(flag) = key.flag else { continue };
            let long = flag.strip_prefix("--").expect("a long flag");
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(long))
                .unwrap_or_else(|| panic!("{} names {flag}, which reload lacks", key.label()));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            if let Some(default) = key.default_text() {
                assert!(
                    help.ends_with(&format!(" [default: {default}]")),
                    "{flag}: {help}"
                );
            } else {
                assert!(!help.contains("[default: "), "{flag}: {help}");
            }
        }
        let poll = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some("poll"))
            .and_then(Arg::get_help)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            poll.ends_with(&format!(
                "[default when given without a value: {}]",
                keys::POLL_INTERVAL
            )),
            "{poll}"
        );
    }

    #[test]
    fn program_after_double_dash_keeps_its_own_flags() {
        let args = Args::parse_from(["reload", "-e", "rs,toml", "--", "app", "--port", "3"]);
        assert_eq!(args.project.ext, ["rs", "toml"]);
        assert_eq!(args.project.program, ["app", "--port", "3"]);
    }

    #[test]
    fn subcommands_and_a_bare_poll() {
        let args = Args::parse_from(["reload", "init", "--from-air"]);
        assert!(matches!(
            args.command,
            Some(Command::Init(InitArgs {
                from_air: true,
                force: false,
                ..
            }))
        ));
        let args = Args::parse_from(["reload", "--poll", "--", "app"]);
        assert_eq!(args.poll.as_deref(), Some("500ms"));
        assert_eq!(args.project.program, ["app"]);
    }

    #[test]
    fn init_takes_the_project_flags_of_reload() {
        let args = Args::parse_from([
            "reload", "init", "-e", "py", "-p", "api", "--bin", "x", "-b", "make", "-w", "src",
            "-i", "*.log", "--", "python3", "app.py",
        ]);
        let Some(Command::Init(init)) = args.command else {
            panic!("not init: {args:?}");
        };
        assert_eq!(init.project.ext, ["py"]);
        assert_eq!(init.project.package.as_deref(), Some("api"));
        assert_eq!(init.project.program, ["python3", "app.py"]);
    }
}
