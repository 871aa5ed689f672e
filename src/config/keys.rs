//! Every key of reload.toml, once: its section, name, doc line, default and the flag that
//! overrides it. Three readers share this table so that they cannot disagree: the resolvers in
//! `mod.rs` take their defaults from it (through the same parser a file's value goes through),
//! `reload init` renders it as the commented reference file, and `--help` shows its defaults.
//! Adding a key is an entry here, its field in `file.rs` and its line in a resolver; the tests
//! below fail when the table and the file parser disagree about which keys exist.

use super::file::{FileConfig, OneOrMany, PollValue, PortValue, RunCmd};

/// The interval `poll = true` and a bare `--poll` stand for.
pub(crate) const POLL_INTERVAL: &str = "500ms";

/// A `[table]` of reload.toml, or the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Top,
    Watch,
    Build,
    Run,
    Output,
    Proxy,
}

impl Section {
    /// The sections that are tables, in the order of the file.
    pub(crate) const TABLES: [Section; 5] = [
        Section::Watch,
        Section::Build,
        Section::Run,
        Section::Output,
        Section::Proxy,
    ];

    /// Its `[name]`, or `None` for the top level.
    pub(crate) fn table(self) -> Option<&'static str> {
        match self {
            Section::Top => None,
            Section::Watch => Some("watch"),
            Section::Build => Some("build"),
            Section::Run => Some("run"),
            Section::Output => Some("output"),
            Section::Proxy => Some("proxy"),
        }
    }
}

/// What a key is when the file leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Default {
    /// A string, as the key's parser reads it (`5s`, `SIGTERM`); written quoted in TOML.
    Text(&'static str),
    /// Any other value, as TOML: `false`, `[]`, `["."]`.
    Toml(&'static str),
    /// No value: leaving the key out means something of its own, which the doc line says.
    Unset,
}

/// One key of reload.toml.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) section: Section,
    pub(crate) name: &'static str,
    /// One line, written by `reload init` above the key.
    pub(crate) doc: &'static str,
    pub(crate) default: Default,
    /// What `reload init` shows, commented out, where the default is empty or unset (TOML).
    pub(crate) example: Option<&'static str>,
    /// The command-line flag that overrides the key (or, for a list, adds to it).
    pub(crate) flag: Option<&'static str>,
    /// The key's value in a file as TOML, when the file sets it: what `reload init` writes.
    pub(crate) written: fn(&FileConfig) -> Option<String>,
}

impl Key {
    /// How error messages name it: `[run] stop_timeout`, or `root`.
    pub(crate) fn label(&self) -> String {
        match self.section.table() {
            Some(table) => format!("[{table}] {}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// The default's text, for `--help`'s `[default: ...]` and for a resolver's parser. `None`
    /// when the key has no default, or one that is no single value a flag could take.
    pub(crate) fn default_text(&self) -> Option<&'static str> {
        match self.default {
            Default::Text(text) => Some(text),
            Default::Toml(_) | Default::Unset => None,
        }
    }

    /// The default parsed by `parse`, the parser a value written in the file goes through.
    /// A failure is a mistake in this table (the tests parse every default), reported with the
    /// key rather than a panic.
    pub(crate) fn parsed_default<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let text = match self.default {
            Default::Text(text) | Default::Toml(text) => text,
            Default::Unset => {
                anyhow::bail!("{} has no built-in default to parse", self.label())
            }
        };
        parse(text).map_err(|err| anyhow::anyhow!("built-in default of {}: {err}", self.label()))
    }

    /// The default as TOML, as a file would write it; `None` when the key has none.
    pub(crate) fn default_toml(&self) -> Option<String> {
        match self.default {
            Default::Text(text) => Some(toml_string(text)),
            Default::Toml(toml) => Some(toml.to_owned()),
            Default::Unset => None,
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
}

/// A TOML boolean, as the file parser reads one: exactly `true` or `false`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not true or false"))
}

/// The key whose flag is `--long`, if any.
pub(crate) fn for_flag(long: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|key| key.flag.and_then(|flag| flag.strip_prefix("--")) == Some(long))
}

/// A string as a TOML value: quoted, escaped where it must be.
pub(crate) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A list of strings as a TOML array.
pub(crate) fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

fn path_list(paths: &[std::path::PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    toml_list(&shown)
}

/// A port as the file wrote it: a number bare, a string quoted.
fn port(port: &PortValue) -> String {
    match port {
        PortValue::Number(number) => number.to_string(),
        PortValue::Text(text) => toml_string(text),
    }
}

fn path(path: &std::path::Path) -> String {
    toml_string(&path.display().to_string())
}

/// Every key, in the order `reload init` writes them: the top level first, then each table.
pub(crate) static KEYS: &[Key] = &[
    ROOT,
    WATCH_PATHS,
    WATCH_EXT,
    WATCH_INCLUDE,
    WATCH_IGNORE,
    WATCH_IGNORE_REGEX,
    WATCH_GITIGNORE,
    WATCH_DEBOUNCE,
    WATCH_POLL,
    BUILD_CMD,
    BUILD_PRE,
    BUILD_CLEAN_ON_EXIT,
    RUN_CMD,
    RUN_ENV,
    RUN_ENV_FILE,
    RUN_STOP_SIGNAL,
    RUN_STOP_TIMEOUT,
    RUN_LISTEN,
    RUN_READY,
    RUN_READY_TIMEOUT,
    RUN_OVERLAP,
    RUN_STOP_ON_BUILD_ERROR,
    RUN_RESTART_ON_EXIT,
    RUN_RESTART_DELAY,
    RUN_POST,
    OUTPUT_CLEAR,
    OUTPUT_TIMESTAMPS,
    OUTPUT_QUIET,
    OUTPUT_FORMAT,
    PROXY_PORT,
    PROXY_APP_PORT,
    PROXY_HOLD_TIMEOUT,
    PROXY_INJECT,
    PROXY_ALLOWED_HOSTS,
];

pub(crate) const ROOT: Key = Key {
    section: Section::Top,
    name: "root",
    doc: "Project root; relative paths below start here.",
    default: Default::Text("."),
    example: None,
    flag: None,
    written: |file| file.root.as_ref().map(|root| path(root.get_ref())),
};

// [watch]

pub(crate) const WATCH_PATHS: Key = Key {
    section: Section::Watch,
    name: "paths",
    doc: "Directories (and files) watched, recursively.",
    default: Default::Toml(r#"["."]"#),
    example: None,
    flag: Some("--watch"),
    written: |file| file.watch.paths.as_ref().map(|p| path_list(p.get_ref())),
};

pub(crate) const WATCH_EXT: Key = Key {
    section: Section::Watch,
    name: "ext",
    doc: "Only files with these extensions count (empty: every file).",
    default: Default::Toml("[]"),
    example: None,
    flag: Some("--ext"),
    written: |file| {
        file.watch.ext.as_ref().map(|ext| match ext {
            OneOrMany::One(text) => toml_string(text),
            OneOrMany::Many(list) => toml_list(list),
        })
    },
};

pub(crate) const WATCH_INCLUDE: Key = Key {
    section: Section::Watch,
    name: "include",
    doc: "Files that count whatever their extension (globs, relative to root).",
    default: Default::Toml("[]"),
    example: None,
    flag: None,
    written: |file| file.watch.include.as_deref().map(toml_list),
};

pub(crate) const WATCH_IGNORE: Key = Key {
    section: Section::Watch,
    name: "ignore",
    doc: "Globs never watched; one without '/' matches a name at any depth, '/x' only at the root.",
    default: Default::Toml("[]"),
    example: None,
    flag: Some("--ignore"),
    written: |file| file.watch.ignore.as_deref().map(toml_list),
};

pub(crate) const WATCH_IGNORE_REGEX: Key = Key {
    section: Section::Watch,
    name: "ignore_regex",
    doc: "Regular expressions (on the path relative to root) never watched.",
    default: Default::Toml("[]"),
    example: None,
    flag: None,
    written: |file| {
        file.watch
            .ignore_regex
            .as_ref()
            .map(|r| toml_list(r.get_ref()))
    },
};

pub(crate) const WATCH_GITIGNORE: Key = Key {
    section: Section::Watch,
    name: "gitignore",
    doc: "Honour .gitignore, .ignore and .git/info/exclude.",
    default: Default::Toml("true"),
    example: None,
    flag: Some("--no-gitignore"),
    written: |file| file.watch.gitignore.map(|b| b.to_string()),
};

pub(crate) const WATCH_DEBOUNCE: Key = Key {
    section: Section::Watch,
    name: "debounce",
    doc: "Quiet window: changes closer together than this make one build.",
    default: Default::Text("50ms"),
    example: None,
    flag: Some("--debounce"),
    written: |file| {
        file.watch
            .debounce
            .as_ref()
            .map(|d| toml_string(d.get_ref()))
    },
};

pub(crate) const WATCH_POLL: Key = Key {
    section: Section::Watch,
    name: "poll",
    doc: "Poll instead of inotify (network mounts, some containers): true or an interval.",
    default: Default::Toml("false"),
    example: None,
    flag: Some("--poll"),
    written: |file| {
        file.watch.poll.as_ref().map(|poll| match poll.get_ref() {
            PollValue::Enabled(enabled) => enabled.to_string(),
            PollValue::Interval(interval) => toml_string(interval),
        })
    },
};

// [build]

pub(crate) const BUILD_CMD: Key = Key {
    section: Section::Build,
    name: "cmd",
    doc: "Build command, run with sh -c in the root (\"\" for none).",
    // Left out, the project's kind decides (or there is no build step).
    default: Default::Unset,
    example: Some(r#""""#),
    flag: Some("--build"),
    written: |file| file.build.cmd.as_deref().map(toml_string),
};

pub(crate) const BUILD_PRE: Key = Key {
    section: Section::Build,
    name: "pre",
    doc: "Shell commands run before each build.",
    default: Default::Toml("[]"),
    example: None,
    flag: Some("--pre"),
    written: |file| file.build.pre.as_deref().map(toml_list),
};

pub(crate) const BUILD_CLEAN_ON_EXIT: Key = Key {
    section: Section::Build,
    name: "clean_on_exit",
    doc: "Paths removed when reload exits.",
    default: Default::Toml("[]"),
    example: None,
    flag: None,
    written: |file| file.build.clean_on_exit.as_deref().map(path_list),
};

// [run]

pub(crate) const RUN_CMD: Key = Key {
    section: Section::Run,
    name: "cmd",
    doc: "The server: an array is executed directly, a string runs with sh -c.",
    // Left out, the project's kind decides (or nothing runs: build-only).
    default: Default::Unset,
    example: Some(r#"["./server"]"#),
    // The program after `--`, which has no flag name.
    flag: None,
    written: |file| {
        file.run.cmd.as_ref().map(|cmd| match cmd.get_ref() {
            RunCmd::Argv(argv) => toml_list(argv),
            RunCmd::Shell(line) => toml_string(line),
        })
    },
};

pub(crate) const RUN_ENV: Key = Key {
    section: Section::Run,
    name: "env",
    doc: "Extra environment for the server (it always gets RELOAD=1).",
    default: Default::Toml("{}"),
    example: Some(r#"{ PORT = "3000" }"#),
    flag: None,
    written: |file| {
        file.run.env.as_ref().map(|env| {
            if env.is_empty() {
                return "{}".to_owned();
            }
            let pairs: Vec<String> = env
                .iter()
                .map(|(name, value)| format!("{name} = {}", toml_string(value)))
                .collect();
            format!("{{ {} }}", pairs.join(", "))
        })
    },
};

pub(crate) const RUN_ENV_FILE: Key = Key {
    section: Section::Run,
    name: "env_file",
    doc: "A dotenv file read at every start; env above wins over it.",
    default: Default::Unset,
    example: Some(r#"".env""#),
    flag: Some("--env-file"),
    written: |file| file.run.env_file.as_ref().map(|p| path(p.get_ref())),
};

pub(crate) const RUN_STOP_SIGNAL: Key = Key {
    section: Section::Run,
    name: "stop_signal",
    doc: "Signal that asks the server to stop.",
    default: Default::Text("SIGTERM"),
    example: None,
    flag: Some("--stop-signal"),
    written: |file| {
        file.run
            .stop_signal
            .as_ref()
            .map(|s| toml_string(s.get_ref()))
    },
};

pub(crate) const RUN_STOP_TIMEOUT: Key = Key {
    section: Section::Run,
    name: "stop_timeout",
    doc: "How long the server may take to stop before it is killed.",
    default: Default::Text("5s"),
    example: None,
    flag: Some("--stop-timeout"),
    written: |file| {
        file.run
            .stop_timeout
            .as_ref()
            .map(|s| toml_string(s.get_ref()))
    },
};

pub(crate) const RUN_LISTEN: Key = Key {
    section: Section::Run,
    name: "listen",
    doc: "Listening sockets reload holds and hands to each server (fds 3.., LISTEN_FDS).",
    default: Default::Toml("[]"),
    example: Some(r#"["127.0.0.1:3000"]"#),
    flag: Some("--listen"),
    written: |file| file.run.listen.as_ref().map(|l| toml_list(l.get_ref())),
};

pub(crate) const RUN_READY: Key = Key {
    section: Section::Run,
    name: "ready",
    doc: "When a new server is ready: \"none\", \"notify\" (READY=1), \"tcp:PORT\" or an http:// URL.",
    default: Default::Text("none"),
    example: None,
    flag: Some("--ready"),
    written: |file| file.run.ready.as_ref().map(|s| toml_string(s.get_ref())),
};

pub(crate) const RUN_READY_TIMEOUT: Key = Key {
    section: Section::Run,
    name: "ready_timeout",
    doc: "How long a new server may take to become ready.",
    default: Default::Text("30s"),
    example: None,
    flag: Some("--ready-timeout"),
    written: |file| {
        file.run
            .ready_timeout
            .as_ref()
            .map(|s| toml_string(s.get_ref()))
    },
};

pub(crate) const RUN_OVERLAP: Key = Key {
    section: Section::Run,
    name: "overlap",
    doc: "Start the new server before stopping the old one (zero downtime with listen).",
    default: Default::Toml("false"),
    example: None,
    flag: Some("--overlap"),
    written: |file| file.run.overlap.map(|b| b.to_string()),
};

pub(crate) const RUN_STOP_ON_BUILD_ERROR: Key = Key {
    section: Section::Run,
    name: "stop_on_build_error",
    doc: "Stop the server when a build fails (by default it keeps serving).",
    default: Default::Toml("false"),
    example: None,
    flag: None,
    written: |file| file.run.stop_on_build_error.map(|b| b.to_string()),
};

pub(crate) const RUN_RESTART_ON_EXIT: Key = Key {
    section: Section::Run,
    name: "restart_on_exit",
    doc: "Start the server again when it exits by itself, after restart_delay.",
    default: Default::Toml("false"),
    example: None,
    flag: None,
    written: |file| file.run.restart_on_exit.map(|b| b.to_string()),
};

pub(crate) const RUN_RESTART_DELAY: Key = Key {
    section: Section::Run,
    name: "restart_delay",
    doc: "Delay before such a restart.",
    default: Default::Text("500ms"),
    example: None,
    flag: None,
    written: |file| {
        file.run
            .restart_delay
            .as_ref()
            .map(|s| toml_string(s.get_ref()))
    },
};

pub(crate) const RUN_POST: Key = Key {
    section: Section::Run,
    name: "post",
    doc: "Shell commands run after the server is stopped for good.",
    default: Default::Toml("[]"),
    example: None,
    flag: Some("--post"),
    written: |file| file.run.post.as_deref().map(toml_list),
};

// [output]

pub(crate) const OUTPUT_CLEAR: Key = Key {
    section: Section::Output,
    name: "clear",
    doc: "Clear the screen before each build.",
    default: Default::Toml("false"),
    example: None,
    flag: Some("--clear"),
    written: |file| file.output.clear.map(|b| b.to_string()),
};

pub(crate) const OUTPUT_TIMESTAMPS: Key = Key {
    section: Section::Output,
    name: "timestamps",
    doc: "Prefix status lines with the time.",
    default: Default::Toml("false"),
    example: None,
    flag: None,
    written: |file| file.output.timestamps.map(|b| b.to_string()),
};

pub(crate) const OUTPUT_QUIET: Key = Key {
    section: Section::Output,
    name: "quiet",
    doc: "Print errors only.",
    default: Default::Toml("false"),
    example: None,
    flag: Some("--quiet"),
    written: |file| file.output.quiet.map(|b| b.to_string()),
};

pub(crate) const OUTPUT_FORMAT: Key = Key {
    section: Section::Output,
    name: "format",
    doc: "\"human\" status lines, or \"json\" events for editors and scripts.",
    default: Default::Text("human"),
    example: None,
    flag: Some("--log-format"),
    written: |file| {
        file.output
            .format
            .as_ref()
            .map(|s| toml_string(s.get_ref()))
    },
};

// [proxy]

pub(crate) const PROXY_PORT: Key = Key {
    section: Section::Proxy,
    name: "port",
    doc: "Turns the proxy on: where the browser connects, a port (on 127.0.0.1) or \"HOST:PORT\".",
    // Left out, there is no proxy (unless --proxy asks for one).
    default: Default::Unset,
    example: Some("8090"),
    flag: Some("--proxy"),
    written: |file| file.proxy.port.as_ref().map(|p| port(p.get_ref())),
};

pub(crate) const PROXY_APP_PORT: Key = Key {
    section: Section::Proxy,
    name: "app_port",
    doc: "The port your server listens on, given to it as PORT (optional: else reload picks one).",
    default: Default::Unset,
    example: Some("8080"),
    flag: Some("--app-port"),
    written: |file| file.proxy.app_port.as_ref().map(|p| port(p.get_ref())),
};

pub(crate) const PROXY_HOLD_TIMEOUT: Key = Key {
    section: Section::Proxy,
    name: "hold_timeout",
    doc: "How long a request waits for a ready server before it gets a 504.",
    default: Default::Text("30s"),
    example: None,
    flag: None,
    written: |file| {
        file.proxy
            .hold_timeout
            .as_ref()
            .map(|s| toml_string(s.get_ref()))
    },
};

pub(crate) const PROXY_INJECT: Key = Key {
    section: Section::Proxy,
    name: "inject",
    doc: "Put the live-reload script into HTML pages.",
    default: Default::Toml("true"),
    example: None,
    flag: Some("--no-inject"),
    written: |file| file.proxy.inject.map(|b| b.to_string()),
};

pub(crate) const PROXY_ALLOWED_HOSTS: Key = Key {
    section: Section::Proxy,
    name: "allowed_hosts",
    doc: "Other names the proxy answers than localhost and IP addresses (\"*.NAME\": all under it).",
    default: Default::Toml("[]"),
    example: Some(r#"["myapp.test", "*.myapp.test"]"#),
    flag: Some("--allow-host"),
    written: |file| {
        file.proxy.allowed_hosts.as_ref().map(|names| {
            let names: Vec<&str> = names.iter().map(|name| name.get_ref().as_str()).collect();
            toml_list(&names)
        })
    },
};

#[cfg(test)]
mod tests {
    use super::super::file::Source;
    use super::super::{parse_duration, parse_format, parse_readiness, parse_signal};
    use super::*;

    /// A file that sets only `key`, to `value` (TOML), under its section.
    fn file_with(key: &Key, value: &str) -> String {
        match key.section.table() {
            Some(table) => format!("[{table}]\n{} = {value}\n", key.name),
            None => format!("{} = {value}\n", key.name),
        }
    }

    fn parse(text: &str) -> FileConfig {
        Source {
            path: "reload.toml".into(),
            text: text.to_owned(),
        }
        .parse()
        .unwrap_or_else(|err| panic!("{err}\n{text}"))
    }

    #[test]
    fn every_default_parses_with_the_parser_of_its_key() {
        let durations = [
            &WATCH_DEBOUNCE,
            &RUN_STOP_TIMEOUT,
            &RUN_READY_TIMEOUT,
            &RUN_RESTART_DELAY,
            &PROXY_HOLD_TIMEOUT,
        ];
        for key in durations {
            key.parsed_default(parse_duration).unwrap();
        }
        RUN_STOP_SIGNAL.parsed_default(parse_signal).unwrap();
        RUN_READY.parsed_default(parse_readiness).unwrap();
        OUTPUT_FORMAT.parsed_default(parse_format).unwrap();
        let switches = [
            &WATCH_GITIGNORE,
            &RUN_OVERLAP,
            &RUN_STOP_ON_BUILD_ERROR,
            &RUN_RESTART_ON_EXIT,
            &OUTPUT_CLEAR,
            &OUTPUT_TIMESTAMPS,
            &OUTPUT_QUIET,
            &PROXY_INJECT,
        ];
        for key in switches {
            key.parsed_default(parse_bool).unwrap();
        }
        parse_duration(POLL_INTERVAL).unwrap();
        assert!(
            RUN_CMD.parsed_default(|text| Ok(text.to_owned())).is_err(),
            "a key without a default has nothing to parse"
        );
    }

    #[test]
    fn every_key_without_a_default_has_an_example() {
        for key in KEYS {
            assert!(
                key.default != Default::Unset || key.example.is_some(),
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
                    .any(|earlier| earlier.section == key.section && earlier.name == key.name),
                "{} is in the table twice",
                key.label()
            );
        }
        // init writes a `[section]` header where the section changes: each exactly once.
        let mut order: Vec<Section> = KEYS.iter().map(|key| key.section).collect();
        order.dedup();
        let mut expected = vec![Section::Top];
        expected.extend(Section::TABLES);
        assert_eq!(order, expected);
    }

    #[test]
    fn flags_and_labels_are_found_as_users_write_them() {
        assert_eq!(
            for_flag("stop-timeout").map(Key::label).as_deref(),
            Some("[run] stop_timeout")
        );
        assert_eq!(for_flag("log-format").map(|key| key.name), Some("format"));
        assert!(for_flag("no-such-flag").is_none());
        assert_eq!(ROOT.label(), "root");
    }
}
