//! The flags config reads, as the user typed them: `-c`, the project flags (which `reload init`
//! takes too) and the flag of every key in `keys.rs`, kept raw until [`super::resolve`] layers
//! them over the file. `cli.rs` flattens [`Flags`] into the command line; config never sees it.

use std::ffi::OsString;
use std::path::PathBuf;

use super::keys::{Key, KeyFlags, Takes};
use super::{LogFormat, Output};

/// What `reload` (without a subcommand) is told about the project and its settings.
#[derive(Debug, clap::Args)]
pub struct Flags {
    /// Config file to read instead of ./reload.toml.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What the project is: watched paths, extensions, the build, the binary, the server.
    #[command(flatten)]
    pub project: ProjectFlags,

    /// The flags of the other keys: how to run, stop, wait, speak and proxy.
    #[command(flatten)]
    pub settings: KeyFlags<false>,
}

/// The flags that say what the project is: `reload` acts on them, `init` writes them down.
/// One definition, flattened into both.
#[derive(Debug, Default, clap::Args)]
pub struct ProjectFlags {
    /// `-w`, `-e`, `-i`, `-b`: the project keys' flags.
    #[command(flatten)]
    pub keys: KeyFlags<true>,

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

/// The value of a key's flag, read the way its key needs it.
pub(crate) trait Given {
    /// The values given to the flag of `key`, `None` when it was not given.
    fn given(&self, key: &Key) -> Option<&[OsString]>;

    /// Whether the flag was given.
    fn has(&self, key: &Key) -> bool {
        self.given(key).is_some()
    }

    /// The last value given (clap refuses a second one where one is taken).
    fn text(&self, key: &Key) -> Option<String> {
        let last = self.given(key)?.last()?;
        Some(last.to_string_lossy().into_owned())
    }

    /// Every value given, in order.
    fn texts(&self, key: &Key) -> Vec<String> {
        let values = self.given(key).unwrap_or_default().iter();
        values.map(|v| v.to_string_lossy().into_owned()).collect()
    }

    fn paths(&self, key: &Key) -> Vec<PathBuf> {
        let values = self.given(key).unwrap_or_default().iter();
        values.map(PathBuf::from).collect()
    }

    /// A switch given: the setting as its flag turns it (`--overlap` on, `--no-inject` off).
    fn switch(&self, key: &Key) -> Option<bool> {
        let flag = key.flag?;
        self.has(key).then_some(flag.takes != Takes::Off)
    }
}

impl Given for ProjectFlags {
    fn given(&self, key: &Key) -> Option<&[OsString]> {
        self.keys.get(key)
    }
}

impl Given for Flags {
    fn given(&self, key: &Key) -> Option<&[OsString]> {
        self.project
            .keys
            .get(key)
            .or_else(|| self.settings.get(key))
    }
}

impl Flags {
    /// How to speak before the configuration is resolved (and where it cannot be): as the
    /// flags say, the file aside.
    pub fn early_output(&self) -> Output {
        use super::keys::output;
        Output {
            clear: false,
            timestamps: false,
            quiet: self.has(&output::quiet),
            format: match self.text(&output::format).as_deref() {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Human,
            },
        }
    }
}

/// How messages name a key's flag: `--stop-timeout`.
pub(crate) fn flag_name(key: &Key) -> String {
    match key.flag {
        Some(flag) => format!("--{}", flag.long),
        None => key.name.to_owned(),
    }
}
