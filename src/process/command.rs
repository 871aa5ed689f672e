//! [`Command`]: what to start, written down by the stages, started only by [`super::spawn_group`].
//!
//! It mirrors the part of `tokio::process::Command` the stages use, with one difference that is
//! the reason it exists: its standard streams are plain values ([`Stdio`]) that the spawner can
//! read back. std's `Stdio` is opaque, and on Linux the spawner prepares every descriptor itself
//! before a `vfork`-style clone (see `spawn_linux`).

use std::ffi::OsStr;
use std::path::Path;

/// What a child's standard stream is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// reload's own stream, as std and tokio default to for `spawn`.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe, whose other end the [`super::Child`] holds.
    Piped,
}

impl Stdio {
    pub fn inherit() -> Self {
        Stdio::Inherit
    }

    pub fn null() -> Self {
        Stdio::Null
    }

    pub fn piped() -> Self {
        Stdio::Piped
    }
}

/// A process to start: program, arguments, environment changes, directory and streams.
#[derive(Debug)]
pub struct Command {
    /// Holds the program, arguments, environment changes and directory (and their getters); it
    /// is never spawned itself.
    inner: std::process::Command,
    pub(super) stdin: Stdio,
    pub(super) stdout: Stdio,
    pub(super) stderr: Stdio,
    /// `env_clear` was called: the child starts from an empty environment, not reload's. std
    /// has no getter for it.
    pub(super) env_cleared: bool,
}

impl Command {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            inner: std::process::Command::new(program),
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            env_cleared: false,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.inner.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.inner.env(key, value);
        self
    }

    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.inner.env_remove(key);
        self
    }

    pub fn env_clear(&mut self) -> &mut Self {
        self.inner.env_clear();
        self.env_cleared = true;
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.inner.current_dir(dir);
        self
    }

    pub fn stdin(&mut self, stdio: Stdio) -> &mut Self {
        self.stdin = stdio;
        self
    }

    pub fn stdout(&mut self, stdio: Stdio) -> &mut Self {
        self.stdout = stdio;
        self
    }

    pub fn stderr(&mut self, stdio: Stdio) -> &mut Self {
        self.stderr = stdio;
        self
    }

    /// The program, arguments, environment changes and directory, through std's getters
    /// (`get_program`, `get_args`, `get_envs`, `get_current_dir`).
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The environment the child starts with: reload's own (unless cleared) with this
    /// command's changes applied, in a stable order. The Linux spawner builds envp from it;
    /// elsewhere std does the same.
    #[cfg(target_os = "linux")]
    pub(super) fn environment(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        let mut vars: std::collections::BTreeMap<_, _> = if self.env_cleared {
            std::collections::BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in self.inner.get_envs() {
            match value {
                Some(value) => vars.insert(key.to_owned(), value.to_owned()),
                None => vars.remove(key),
            };
        }
        vars.into_iter().collect()
    }
}
