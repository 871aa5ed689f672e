//! The command line as the user typed it. Nothing here is interpreted: the flags of settings
//! come from config's table of keys ([`Flags`]), and `config::resolve` turns them (together
//! with the config file) into the one `Config` the program runs on.

use clap::{Arg, Parser};

use crate::config::Flags;
use crate::config::init::InitArgs;

/// Watch the sources, rebuild on every save, and swap the running server for the new build.
#[derive(Debug, Parser)]
#[command(
    name = "reload",
    version,
    about,
    args_conflicts_with_subcommands = true,
    mut_args = quiet_is_not_verbose,
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

    /// The config file, the project and every setting's flag: what config reads.
    #[command(flatten)]
    pub flags: Flags,

    /// Print what reload is doing (RELOAD_LOG takes a full tracing filter).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `-q` (a key's flag, from config's table) and `-v` (cli's own) cannot be given together.
/// Changed in place, so that the flags keep their order in shell completions.
fn quiet_is_not_verbose(arg: Arg) -> Arg {
    if arg.get_id() == "quiet" {
        arg.conflicts_with("verbose")
    } else {
        arg
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Given;
    use crate::config::keys;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn every_flag_of_the_table_exists_and_shows_the_tables_default() {
        let command = Args::command();
        let init = command.find_subcommand("init").expect("init");
        for key in keys::KEYS {
            let Some(flag) = key.flag else { continue };
            let find = |command: &clap::Command| {
                let found = command
                    .get_arguments()
                    .find(|arg| arg.get_long() == Some(flag.long));
                found.map(|arg| arg.get_help().map(ToString::to_string).unwrap_or_default())
            };
            let help = find(&command).expect("every flag");
            assert_eq!(find(init).is_some(), flag.project, "--{}", flag.long);
            match (key.default_text(), flag.takes) {
                (_, keys::Takes::Optional(_, missing)) => assert!(
                    help.ends_with(&format!("[default when given without a value: {missing}]")),
                    "--{}: {help}",
                    flag.long
                ),
                (Some(default), keys::Takes::Value(_) | keys::Takes::OneOf(..)) => assert!(
                    help.ends_with(&format!(" [default: {default}]")),
                    "--{}: {help}",
                    flag.long
                ),
                _ => assert!(!help.contains("[default: "), "--{}: {help}", flag.long),
            }
        }
    }

    #[test]
    fn program_after_double_dash_keeps_its_own_flags() {
        let args = Args::parse_from(["reload", "-e", "rs,toml", "--", "app", "--port", "3"]);
        assert_eq!(args.flags.texts(&keys::watch::ext), ["rs", "toml"]);
        assert_eq!(args.flags.project.program, ["app", "--port", "3"]);
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
        assert_eq!(
            args.flags.text(&keys::watch::poll).as_deref(),
            Some("500ms")
        );
        assert_eq!(args.flags.project.program, ["app"]);
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
        assert_eq!(init.project.texts(&keys::watch::ext), ["py"]);
        assert_eq!(init.project.texts(&keys::watch::ignore), ["*.log"]);
        assert_eq!(
            init.project.text(&keys::build::cmd).as_deref(),
            Some("make")
        );
        assert_eq!(init.project.package.as_deref(), Some("api"));
        assert_eq!(init.project.program, ["python3", "app.py"]);
    }
}
