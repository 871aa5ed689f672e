//! reload: watch the sources, rebuild on every save, swap the running server for the new build.
//!
//! The pipeline, one module per stage: [`config`] (what to do) -> [`watch`] (when) -> [`build`]
//! -> [`supervise`] (the running server), tied together by [`engine`]. See ARCHITECTURE.md.

// Every unsafe block is in `process` (fork, pre_exec, fds) or `clock` (localtime_r), where each
// one says why it is sound.
#![deny(unsafe_code)]

pub mod build;
pub mod cli;
#[allow(unsafe_code)]
pub mod clock;
pub mod config;
pub mod engine;
pub mod lifecycle;
#[allow(unsafe_code)]
pub mod process;
pub mod proxy;
pub mod shell;
pub mod status;
pub mod supervise;
pub mod terminal;
pub mod watch;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// How reload ends, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Something went wrong at run time.
    Failure,
    /// Bad command line or config: nothing was started.
    Usage,
    /// Stopped by this signal: exit code 128 + signal, as shells report it (130 for Ctrl-C).
    Signal(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Signal(signal) => u8::try_from(128 + signal).unwrap_or(1),
        }
    }

    fn of_error(err: &anyhow::Error) -> Exit {
        let usage = err
            .chain()
            .any(|cause| cause.is::<config::ConfigError>() || cause.is::<config::UsageError>());
        if usage { Exit::Usage } else { Exit::Failure }
    }
}

/// Parse the command line, resolve the configuration, and run the dev loop.
pub fn run() -> Exit {
    let args = cli::Args::parse();
    init_logging(args.verbose);
    status::init(args.flags.early_output());
    let result = match &args.command {
        Some(cli::Command::Completions { shell }) => {
            let mut command = <cli::Args as clap::CommandFactory>::command();
            // Into a buffer first: `reload completions bash | head` must not panic on EPIPE.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "reload", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Ok(Exit::Success)
        }
        Some(cli::Command::Init(init)) => std::env::current_dir()
            .map_err(anyhow::Error::from)
            .and_then(|dir| config::init::write(&dir, init))
            .map(|(path, what)| {
                status::info(&format!("wrote {} ({what})", path.display()));
                Exit::Success
            }),
        None => config::resolve(&args.flags).and_then(|config| {
            status::init(config.output);
            // Before anything opens a descriptor that counts: the proxy's connections, builds,
            // servers. Children get the limit reload was given back.
            process::limits::raise_descriptor_limit();
            process::report_to(status::processes::report);
            process::guard::start();
            process::adopt_orphans();
            // One thread: children are spawned from it, and their parent-death signal is tied
            // to it.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(engine::run(config, || config::resolve(&args.flags)))
        }),
    };
    match result {
        Ok(exit) => exit,
        Err(err) => {
            status::error(&format!("error: {err:#}"));
            Exit::of_error(&err)
        }
    }
}

/// Developer logs (not status lines): `-v` for debug, `-vv` for trace, RELOAD_LOG for a filter.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "reload=warn",
        1 => "reload=debug",
        _ => "reload=trace",
    };
    let filter = EnvFilter::try_from_env("RELOAD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(status::colored())
        .without_time()
        .try_init();
}
