//! Every setting, declared once: its reload.toml key (section, name, type, read with its span),
//! the doc line `reload init` writes above it, its default, the example init shows where the
//! default is empty, and the command-line flag that overrides it (long, short, value name, help,
//! the `[default: ...]` `--help` shows). From that one table come the file's structs
//! ([`FileConfig`]), the clap arguments ([`KeyFlags`]), `reload init`'s reference file and the
//! defaults the resolvers in `mod.rs` fall back to (parsed as a file's value would be). Adding a
//! setting is one row here and one line in the resolver of its section, which names the key as
//! `keys::run::stop_timeout`. This module reads no other part of config.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The interval `poll = true` and a bare `--poll` stand for.
pub(crate) const POLL_INTERVAL: &str = "500ms";

/// What a key is when the file leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// A string, as the key's parser reads it (`5s`, `SIGTERM`); written quoted in TOML.
    Text(&'static str),
    /// Any other value, as TOML: `false`, `[]`, `["."]`.
    Toml(&'static str),
    /// No value: leaving the key out means something of its own, which the doc line says.
    Unset,
}
use Fallback::{Text, Toml, Unset};

/// What a flag takes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// Nothing: given, the setting is on (`--overlap`).
    On,
    /// Nothing: given, the setting is off (`--no-inject`).
    Off,
    /// One value, named so in `--help`.
    Value(&'static str),
    /// One path.
    Path(&'static str),
    /// A value, repeatable; the values add to the file's list.
    Each(&'static str),
    /// A path, repeatable; the paths replace the file's.
    EachPath(&'static str),
    /// A comma-separated list, repeatable.
    Commas(&'static str),
    /// One of these words.
    OneOf(&'static str, &'static [&'static str]),
    /// A value that may be left out, standing then for the second string (`--poll`).
    Optional(&'static str, &'static str),
}

/// The command-line flag of a key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    pub(crate) long: &'static str,
    pub(crate) short: Option<char>,
    pub(crate) takes: Takes,
    /// `--help`'s line (clap's style: no final period).
    pub(crate) help: &'static str,
    /// A project flag, which `reload init` takes as well as `reload`.
    pub(crate) project: bool,
    /// Its place in `--help` among the flags of its group.
    pub(crate) shown_at: u8,
}

/// A flag of a run (not of init): `--LONG`, shown `shown_at`-th in `--help`. `Some`, as a
/// row's `flag` is.
#[allow(clippy::unnecessary_wraps)]
const fn flag(long: &'static str, takes: Takes, shown_at: u8, help: &'static str) -> Option<Flag> {
    Some(Flag {
        long,
        short: None,
        takes,
        help,
        project: false,
        shown_at,
    })
}

/// A project flag, which `reload init` writes down: `-SHORT`/`--LONG`, in table order.
#[allow(clippy::unnecessary_wraps)]
const fn project_flag(
    long: &'static str,
    short: char,
    takes: Takes,
    help: &'static str,
) -> Option<Flag> {
    Some(Flag {
        long,
        short: Some(short),
        takes,
        help,
        project: true,
        shown_at: 0,
    })
}

/// One key of reload.toml.
#[derive(Debug)]
pub(crate) struct Key {
    /// Its `[table]`, or `None` at the top level.
    pub(crate) table: Option<&'static str>,
    pub(crate) name: &'static str,
    /// One line, written by `reload init` above the key.
    pub(crate) doc: &'static str,
    pub(crate) default: Fallback,
    /// What `reload init` shows, commented out, where the default is empty or unset (TOML).
    pub(crate) example: Option<&'static str>,
    /// The command-line flag that overrides the key (or, for a list, adds to it).
    pub(crate) flag: Option<Flag>,
    /// The key's value in a file as TOML, when the file sets it: what `reload init` writes.
    pub(crate) written: fn(&FileConfig) -> Option<String>,
}

impl Key {
    /// The fields a row leaves out.
    const NONE: Key = Key {
        table: None,
        name: "",
        doc: "",
        default: Unset,
        example: None,
        flag: None,
        written: |_| None,
    };

    /// How error messages name it: `[run] stop_timeout`, or `root`.
    pub(crate) fn label(&self) -> String {
        match self.table {
            Some(table) => format!("[{table}] {}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// The default's text, for `--help`'s `[default: ...]`. `None` when the key has no
    /// default, or one that is no single value a flag could take.
    pub(crate) fn default_text(&self) -> Option<&'static str> {
        match self.default {
            Text(text) => Some(text),
            Toml(_) | Unset => None,
        }
    }

    /// The default parsed by `parse`, the parser a value written in the file goes through.
    /// A failure is a mistake in this table (the tests parse every default), reported with the
    /// key rather than a panic.
    pub(crate) fn parsed_default<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let (Text(text) | Toml(text)) = self.default else {
            anyhow::bail!("{} has no built-in default to parse", self.label())
        };
        parse(text).map_err(|err| anyhow::anyhow!("built-in default of {}: {err}", self.label()))
    }

    /// The default as TOML, as a file would write it; `None` when the key has none.
    pub(crate) fn default_toml(&self) -> Option<String> {
        match self.default {
            Text(text) => Some(to_toml(text)),
            Toml(toml) => Some(toml.to_owned()),
            Unset => None,
        }
    }

    /// What `reload init` writes, commented out, when the file leaves the key out: the example
    /// if there is one, else the default (every key has one or the other; a test checks).
    pub(crate) fn shown_unset(&self) -> String {
        match self.example {
            Some(example) => example.to_owned(),
            None => self.default_toml().unwrap_or_default(),
        }
    }

    /// Its flag as clap's argument, with the default noted in the help.
    fn arg(&self, flag: &Flag) -> Arg {
        let note = match flag.takes {
            Takes::Value(_) | Takes::OneOf(..) => self
                .default_text()
                .map(|default| format!("[default: {default}]")),
            Takes::Optional(_, missing) => {
                Some(format!("[default when given without a value: {missing}]"))
            }
            _ => None,
        };
        let help = match note {
            Some(note) => format!("{} {note}", flag.help),
            None => flag.help.to_owned(),
        };
        let arg = Arg::new(flag.long)
            .long(flag.long)
            .short(flag.short)
            .help(help);
        let paths = clap::value_parser!(PathBuf);
        match flag.takes {
            Takes::On | Takes::Off => arg.action(ArgAction::SetTrue),
            Takes::Value(name) => arg.value_name(name),
            Takes::Path(name) => arg.value_name(name).value_parser(paths),
            Takes::Each(name) => arg.value_name(name).action(ArgAction::Append),
            Takes::EachPath(name) => arg
                .value_name(name)
                .action(ArgAction::Append)
                .value_parser(paths),
            Takes::Commas(name) => arg
                .value_name(name)
                .action(ArgAction::Append)
                .value_delimiter(','),
            Takes::OneOf(name, words) => arg.value_name(name).value_parser(words.to_vec()),
            Takes::Optional(name, missing) => arg
                .value_name(name)
                .num_args(0..=1)
                .default_missing_value(missing),
        }
    }
}

/// A TOML boolean, as the file parser reads one: exactly `true` or `false`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not true or false"))
}

/// A value that has no place in a file: given by a flag, a default or detection.
pub(crate) fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// A value as `reload init` writes it: TOML, as serde makes it.
pub(crate) fn to_toml<T: Serialize + ?Sized>(value: &T) -> String {
    toml::Value::try_from(value).map_or_else(|err| format!("\"{err}\""), |v| v.to_string())
}

/// Declares the keys: for each, `name: Type { fields of Key }`. Makes the file's structs (every
/// field optional and spanned), a `Key` const per key (`keys::root`, `keys::run::cmd`) and
/// [`KEYS`], in the order of the declaration, which is the order of `reload init`'s file.
macro_rules! keys {
    (
        $( $top:ident : $top_ty:ty { $($top_field:ident : $top_value:expr),* $(,)? } )*
        $( [$table:ident] $Section:ident {
            $( $name:ident : $ty:ty { $($field:ident : $value:expr),* $(,)? } )*
        } )*
    ) => {
        /// reload.toml as written: every field optional, each with its span for messages.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct FileConfig {
            $( pub(crate) $top: Option<Spanned<$top_ty>>, )*
            $( #[serde(default)] pub(crate) $table: $Section, )*
        }
        $(
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub(crate) struct $Section { $( pub(crate) $name: Option<Spanned<$ty>>, )* }
        )*
        $(
            #[allow(non_upper_case_globals, clippy::needless_update)]
            pub(crate) const $top: Key = Key {
                name: stringify!($top),
                written: |file| file.$top.as_ref().map(to_toml),
                $($top_field: $top_value,)*
                ..Key::NONE
            };
        )*
        $(
            #[allow(non_upper_case_globals, clippy::needless_update)]
            pub(crate) mod $table {
                use super::*;
                $(
                    pub(crate) const $name: Key = Key {
                        table: Some(stringify!($table)),
                        name: stringify!($name),
                        written: |file| file.$table.$name.as_ref().map(to_toml),
                        $($field: $value,)*
                        ..Key::NONE
                    };
                )*
            }
        )*
        /// The tables of reload.toml, in the order of the file.
        pub(crate) const TABLES: &[&str] = &[$(stringify!($table)),*];
        /// Every key, in the order `reload init` writes them: the top level, then each table.
        pub(crate) static KEYS: &[Key] = &[$($top,)* $($($table::$name,)*)*];
    };
}

keys! {
    root: PathBuf { doc: "Project root; relative paths below start here.", default: Text(".") }

    [watch] WatchSection {
        paths: Vec<PathBuf> {
            doc: "Directories (and files) watched, recursively.",
            default: Toml(r#"["."]"#),
            flag: project_flag("watch", 'w', Takes::EachPath("PATH"),
                "Path to watch, recursively (repeatable; default: the project root)"),
        }
        ext: OneOrMany {
            doc: "Only files with these extensions count (empty: every file).",
            default: Toml("[]"),
            flag: project_flag("ext", 'e', Takes::Commas("EXTS"),
                "Only changes to files with these extensions count (comma list: rs,toml)"),
        }
        include: Vec<Spanned<String>> {
            doc: "Files that count whatever their extension (globs, relative to root).",
            default: Toml("[]"),
        }
        ignore: Vec<Spanned<String>> {
            doc: "Globs never watched; one without '/' matches a name at any depth, '/x' only at the root.",
            default: Toml("[]"),
            flag: project_flag("ignore", 'i', Takes::Each("GLOB"),
                "Ignore paths matching this glob (repeatable); a glob without `/` matches a name at any depth"),
        }
        ignore_regex: Vec<Spanned<String>> {
            doc: "Regular expressions (on the path relative to root) never watched.",
            default: Toml("[]"),
        }
        gitignore: bool {
            doc: "Honour .gitignore, .ignore and .git/info/exclude.",
            default: Toml("true"),
            flag: flag("no-gitignore", Takes::Off, 1, "Do not read .gitignore and .ignore files"),
        }
        debounce: String {
            doc: "Quiet window: changes closer together than this make one build.",
            default: Text("50ms"),
            flag: flag("debounce", Takes::Value("DUR"), 2,
                "Quiet window: changes closer together than this make one rebuild"),
        }
        poll: PollValue {
            doc: "Poll instead of inotify (network mounts, some containers): true or an interval.",
            default: Toml("false"),
            flag: flag("poll", Takes::Optional("DUR", POLL_INTERVAL), 6,
                "Poll the file system every DUR (at least 10ms) instead of using inotify (network \
                 mounts, some containers)"),
        }
    }

    [build] BuildSection {
        // Left out, the project's kind decides (or there is no build step).
        cmd: String {
            doc: "Build command, run with sh -c in the root (\"\" for none).",
            example: Some(r#""""#),
            flag: project_flag("build", 'b', Takes::Value("CMD"),
                "Build command, run with `sh -c` in the project root; '' means no build step"),
        }
        pre: Vec<String> {
            doc: "Shell commands run before each build.",
            default: Toml("[]"),
            flag: flag("pre", Takes::Each("CMD"), 3,
                "Shell command to run before each build (repeatable; air's pre_cmd)"),
        }
        clean_on_exit: Vec<Spanned<PathBuf>> {
            doc: "Paths removed when reload exits.",
            default: Toml("[]"),
        }
    }

    [run] RunSection {
        // Left out, the project's kind decides (or nothing runs). Its flag is the program
        // after `--`, which has no name.
        cmd: RunCmd {
            doc: "The server: an array is executed directly, a string runs with sh -c.",
            example: Some(r#"["./server"]"#),
        }
        env: BTreeMap<String, Spanned<String>> {
            doc: "Extra environment for the server (it always gets RELOAD=1).",
            default: Toml("{}"),
            example: Some(r#"{ PORT = "3000" }"#),
        }
        env_file: PathBuf {
            doc: "A dotenv file read at every start; env above wins over it.",
            example: Some(r#"".env""#),
            flag: flag("env-file", Takes::Path("FILE"), 5,
                "Dotenv file whose variables the server gets (read again at every start)"),
        }
        stop_signal: String {
            doc: "Signal that asks the server to stop.",
            default: Text("SIGTERM"),
            flag: flag("stop-signal", Takes::Value("SIG"), 9, "Signal that asks the server to stop"),
        }
        stop_timeout: String {
            doc: "How long the server may take to stop before it is killed.",
            default: Text("5s"),
            flag: flag("stop-timeout", Takes::Value("DUR"), 10,
                "How long the server may take to stop before it is killed"),
        }
        listen: Vec<Spanned<String>> {
            doc: "Listening sockets reload holds and hands to each server (fds 3.., LISTEN_FDS).",
            default: Toml("[]"),
            example: Some(r#"["127.0.0.1:3000"]"#),
            flag: flag("listen", Takes::Each("ADDR"), 11,
                "Hold a listening socket and hand it to every server (systemd socket activation: \
                 fds 3, 4, ... with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES). ADDR: `3000`, \
                 `127.0.0.1:3000`, `[::1]:3000`, `unix:/path.sock`, optionally named: \
                 `web=3000`. Repeatable"),
        }
        ready: String {
            doc: "When a new server is ready: \"none\", \"notify\" (READY=1), \"tcp:PORT\" or an http:// URL.",
            default: Text("none"),
            flag: flag("ready", Takes::Value("MODE"), 12,
                "When a new server counts as ready: `none` (when spawned), `notify` (it sends \
                 READY=1 to $NOTIFY_SOCKET), `tcp:PORT` (the port accepts a connection), or an \
                 `http://host:port/path` that answers"),
        }
        ready_timeout: String {
            doc: "How long a new server may take to become ready.",
            default: Text("30s"),
            flag: flag("ready-timeout", Takes::Value("DUR"), 13,
                "How long a new server may take to become ready"),
        }
        overlap: bool {
            doc: "Start the new server before stopping the old one (zero downtime with listen).",
            default: Toml("false"),
            flag: flag("overlap", Takes::On, 14,
                "Start the new server while the old one still serves; stop the old one once the \
                 new one is ready (zero downtime with --listen)"),
        }
        stop_on_build_error: bool {
            doc: "Stop the server when a build fails (by default it keeps serving).",
            default: Toml("false"),
        }
        restart_on_exit: bool {
            doc: "Start the server again when it exits by itself, after restart_delay.",
            default: Toml("false"),
        }
        restart_delay: String { doc: "Delay before such a restart.", default: Text("500ms") }
        post: Vec<String> {
            doc: "Shell commands run after the server is stopped for good.",
            default: Toml("[]"),
            flag: flag("post", Takes::Each("CMD"), 4,
                "Shell command to run after the server is stopped for good (repeatable; air's \
                 post_cmd)"),
        }
    }

    [output] OutputSection {
        clear: bool {
            doc: "Clear the screen before each build.",
            default: Toml("false"),
            flag: flag("clear", Takes::On, 7, "Clear the screen before each build"),
        }
        timestamps: bool { doc: "Prefix status lines with the time.", default: Toml("false") }
        quiet: bool {
            doc: "Print errors only.",
            default: Toml("false"),
            flag: Some(Flag {
                long: "quiet",
                short: Some('q'),
                takes: Takes::On,
                help: "Only print errors",
                project: false,
                shown_at: 19,
            }),
        }
        format: String {
            doc: "\"human\" status lines, or \"json\" events for editors and scripts.",
            default: Text("human"),
            flag: flag("log-format", Takes::OneOf("FORMAT", &["human", "json"]), 8,
                "How reload reports: `human` status lines, or `json` events (one object per line)"),
        }
    }

    [proxy] ProxySection {
        // Left out, there is no proxy (unless --proxy asks for one).
        port: PortValue {
            doc: "Turns the proxy on: where the browser connects, a port (on 127.0.0.1) or \"HOST:PORT\".",
            example: Some("8090"),
            flag: flag("proxy", Takes::Value("ADDR"), 15,
                "Put a dev proxy in front of the server, where the browser connects: it holds \
                 requests while the server restarts and reloads the page after each build. ADDR: \
                 `8090`, `:8090` (both on 127.0.0.1), `HOST:PORT`, `[::1]:8090`; all interfaces \
                 only as `0.0.0.0:PORT`"),
        }
        app_port: PortValue {
            doc: "The port your server listens on, given to it as PORT (optional: else reload picks one).",
            example: Some("8080"),
            flag: flag("app-port", Takes::Value("PORT"), 16,
                "The port the server listens on, where --proxy forwards; the server gets it as \
                 $PORT. Optional: without it, reload gives the server a free port as $PORT and \
                 forwards to wherever it listens. Not with --listen: the proxy forwards to the \
                 socket reload holds"),
        }
        hold_timeout: String {
            doc: "How long a request waits for a ready server before it gets a 504.",
            default: Text("30s"),
        }
        inject: bool {
            doc: "Put the live-reload script into HTML pages.",
            default: Toml("true"),
            flag: flag("no-inject", Takes::Off, 18,
                "With --proxy, leave pages alone: no live-reload script"),
        }
        allowed_hosts: Vec<Spanned<String>> {
            doc: "Other names the proxy answers than localhost and IP addresses (\"*.NAME\": all under it).",
            default: Toml("[]"),
            example: Some(r#"["myapp.test", "*.myapp.test"]"#),
            flag: flag("allow-host", Takes::Each("NAME"), 17,
                "With --proxy, also answer requests for NAME (the proxy answers localhost, \
                 *.localhost and IP addresses only, so that no other web page can read it): a \
                 LAN name, a tunnel's name, or *.NAME for every name under it. Repeatable"),
        }
    }
}

/// The flags of `KEYS`, as clap arguments: the project flags (`PROJECT`, which `reload init`
/// takes too) or the others. Values are kept as given, by key; the resolvers read them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyFlags<const PROJECT: bool> {
    /// The values of each flag given, by its long name (none for a switch).
    given: BTreeMap<&'static str, Vec<OsString>>,
}

impl<const PROJECT: bool> KeyFlags<PROJECT> {
    /// The keys with a flag of this group, in the order `--help` shows them.
    fn keys() -> Vec<(&'static Key, Flag)> {
        let mut keys: Vec<_> = KEYS
            .iter()
            .filter_map(|key| Some((key, key.flag.filter(|flag| flag.project == PROJECT)?)))
            .collect();
        keys.sort_by_key(|(_, flag)| flag.shown_at);
        keys
    }

    /// The values given to the flag of `key`: `None` when it was not given.
    pub(crate) fn get(&self, key: &Key) -> Option<&[OsString]> {
        self.given.get(key.flag?.long).map(Vec::as_slice)
    }

    /// Records `values` as given to the flag of `key` (for `reload init`'s tests).
    #[cfg(test)]
    pub(crate) fn set(&mut self, key: &Key, values: &[&str]) {
        let long = key.flag.expect("a key with a flag").long;
        self.given
            .insert(long, values.iter().map(OsString::from).collect());
    }
}

impl<const PROJECT: bool> clap::FromArgMatches for KeyFlags<PROJECT> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for (_, flag) in Self::keys() {
            let given = match flag.takes {
                Takes::On | Takes::Off => matches.get_flag(flag.long).then(Vec::new),
                _ => matches
                    .get_raw(flag.long)
                    .map(|values| values.map(ToOwned::to_owned).collect()),
            };
            if let Some(values) = given {
                self.given.insert(flag.long, values);
            }
        }
        Ok(())
    }
}

impl<const PROJECT: bool> clap::Args for KeyFlags<PROJECT> {
    fn augment_args(command: clap::Command) -> clap::Command {
        command.args(Self::keys().iter().map(|(key, flag)| key.arg(flag)))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// A port as written: `8090`, or a string (`"8090"`, `"127.0.0.1:8090"`). Kept as written so
/// that a value out of range or a typo is reported by the resolver, in words, at its line,
/// rather than as serde's "expected u16".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum PortValue {
    Number(i64),
    Text(String),
}

impl fmt::Display for PortValue {
    /// As the user wrote it, without TOML's quotes: for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortValue::Number(number) => write!(f, "{number}"),
            PortValue::Text(text) => f.write_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number like 8090 or a string like \"127.0.0.1:8090\"")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<PortValue, E> {
                Ok(PortValue::Number(value))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<PortValue, E> {
                // Beyond i64 is no port either: keep it out of range rather than wrap it.
                Ok(PortValue::Number(i64::try_from(value).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<PortValue, E> {
                Ok(PortValue::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `poll = true` or `poll = "1s"`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum PollValue {
    Enabled(bool),
    Interval(String),
}

impl<'de> Deserialize<'de> for PollValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PollValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or an interval like \"500ms\"")
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<PollValue, E> {
                Ok(PollValue::Enabled(value))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<PollValue, E> {
                Ok(PollValue::Interval(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[run] cmd`: an array is an argv, a string is a shell command line.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum RunCmd {
    Shell(String),
    Argv(Vec<String>),
}

/// `ext = "rs,toml"` or `ext = ["rs", "toml"]`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_list(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

// Written by hand rather than `#[serde(untagged)]`: serde's untagged error is "data did not
// match any variant of untagged enum RunCmd", which names our type instead of what to write.
impl<'de> Deserialize<'de> for RunCmd {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringOrList {
            expected: "a string (a shell command line) or a list of strings (a program and its \
                       arguments)",
            one: RunCmd::Shell,
            many: RunCmd::Argv,
        })
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringOrList {
            expected: "a string like \"rs,toml\" or a list of strings like [\"rs\", \"toml\"]",
            one: OneOrMany::One,
            many: OneOrMany::Many,
        })
    }
}

/// A string or a list of strings, each made into `T` its own way.
struct StringOrList<T> {
    expected: &'static str,
    one: fn(String) -> T,
    many: fn(Vec<String>) -> T,
}

impl<'de, T> serde::de::Visitor<'de> for StringOrList<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        Ok((self.one)(value.to_owned()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<toml::Value>()? {
            match item {
                toml::Value::String(text) => items.push(text),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "expected {}, but the list holds {} `{other}`",
                        self.expected,
                        other.type_str()
                    )));
                }
            }
        }
        Ok((self.many)(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that sets only `key`, to `value` (TOML), under its section.
    fn file_with(key: &Key, value: &str) -> String {
        match key.table {
            Some(table) => format!("[{table}]\n{} = {value}\n", key.name),
            None => format!("{} = {value}\n", key.name),
        }
    }

    fn parse(text: &str) -> FileConfig {
        toml::from_str(text).unwrap_or_else(|err| panic!("{err}\n{text}"))
    }

    #[test]
    fn every_default_parses_with_the_parser_of_its_key() {
        use super::super::{parse_duration, parse_format, parse_readiness, parse_signal};
        let durations = [
            &watch::debounce,
            &run::stop_timeout,
            &run::ready_timeout,
            &run::restart_delay,
            &proxy::hold_timeout,
        ];
        for key in durations {
            key.parsed_default(parse_duration).unwrap();
        }
        run::stop_signal.parsed_default(parse_signal).unwrap();
        run::ready.parsed_default(parse_readiness).unwrap();
        output::format.parsed_default(parse_format).unwrap();
        let switches = [
            &watch::gitignore,
            &run::overlap,
            &run::stop_on_build_error,
            &run::restart_on_exit,
            &output::clear,
            &output::timestamps,
            &output::quiet,
            &proxy::inject,
        ];
        for key in switches {
            key.parsed_default(parse_bool).unwrap();
        }
        parse_duration(POLL_INTERVAL).unwrap();
        assert!(
            run::cmd.parsed_default(|text| Ok(text.to_owned())).is_err(),
            "a key without a default has nothing to parse"
        );
    }

    #[test]
    fn every_key_without_a_default_has_an_example() {
        for key in KEYS {
            assert!(
                key.default != Unset || key.example.is_some(),
                "{} shows nothing in reload init",
                key.label()
            );
        }
    }

    #[test]
    fn each_key_written_alone_is_read_back_by_its_own_accessor_and_no_other() {
        for key in KEYS {
            for value in [key.default_toml(), key.example.map(str::to_owned)]
                .into_iter()
                .flatten()
            {
                let file = parse(&file_with(key, &value));
                assert_eq!(
                    (key.written)(&file).as_deref(),
                    Some(value.as_str()),
                    "{} = {value} is read back differently",
                    key.label()
                );
                for other in KEYS.iter().filter(|other| !std::ptr::eq(*other, key)) {
                    assert_eq!(
                        (other.written)(&file),
                        None,
                        "{} = {value} is also read as {}",
                        key.label(),
                        other.label()
                    );
                }
            }
        }
    }

    #[test]
    fn a_key_is_named_once_and_grouped_under_its_section() {
        for (index, key) in KEYS.iter().enumerate() {
            assert!(
                !KEYS[..index]
                    .iter()
                    .any(|earlier| earlier.table == key.table && earlier.name == key.name),
                "{} is in the table twice",
                key.label()
            );
        }
        // init writes a `[section]` header where the section changes: each exactly once.
        let mut order: Vec<Option<&str>> = KEYS.iter().map(|key| key.table).collect();
        order.dedup();
        let mut expected = vec![None];
        expected.extend(TABLES.iter().copied().map(Some));
        assert_eq!(order, expected);
    }

    #[test]
    fn flags_are_named_once_and_shown_in_their_own_places() {
        let flags: Vec<Flag> = KEYS.iter().filter_map(|key| key.flag).collect();
        for (index, flag) in flags.iter().enumerate() {
            let earlier = &flags[..index];
            assert!(
                !earlier.iter().any(|f| f.long == flag.long),
                "--{}",
                flag.long
            );
            assert!(
                flag.project
                    || !earlier
                        .iter()
                        .any(|f| !f.project && f.shown_at == flag.shown_at),
                "--{} shares its place in --help",
                flag.long
            );
        }
        assert_eq!(run::stop_timeout.label(), "[run] stop_timeout");
        assert_eq!(root.label(), "root");
    }
}
