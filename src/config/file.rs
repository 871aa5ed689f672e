//! reload.toml as written: every field optional, spans kept where a later check may need to point
//! at the line. Parsing errors become a [`ConfigError`] that names the file, line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::keys::Section;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) root: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub(crate) watch: WatchSection,
    #[serde(default)]
    pub(crate) build: BuildSection,
    #[serde(default)]
    pub(crate) run: RunSection,
    #[serde(default)]
    pub(crate) output: OutputSection,
    #[serde(default)]
    pub(crate) proxy: ProxySection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatchSection {
    pub(crate) paths: Option<Spanned<Vec<PathBuf>>>,
    pub(crate) ext: Option<OneOrMany>,
    pub(crate) include: Option<Vec<String>>,
    pub(crate) ignore: Option<Vec<String>>,
    pub(crate) gitignore: Option<bool>,
    pub(crate) debounce: Option<Spanned<String>>,
    /// Regular expressions matched against the path relative to the root.
    pub(crate) ignore_regex: Option<Spanned<Vec<String>>>,
    /// `true` (every [`super::keys::POLL_INTERVAL`]) or an interval like "1s": poll instead of inotify.
    pub(crate) poll: Option<Spanned<PollValue>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuildSection {
    pub(crate) cmd: Option<String>,
    /// Shell commands run, in order, before each build.
    pub(crate) pre: Option<Vec<String>>,
    /// Paths (relative to the root) removed when reload exits.
    pub(crate) clean_on_exit: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunSection {
    pub(crate) cmd: Option<Spanned<RunCmd>>,
    pub(crate) env: Option<BTreeMap<String, String>>,
    pub(crate) stop_signal: Option<Spanned<String>>,
    pub(crate) stop_timeout: Option<Spanned<String>>,
    pub(crate) listen: Option<Spanned<Vec<String>>>,
    pub(crate) ready: Option<Spanned<String>>,
    pub(crate) ready_timeout: Option<Spanned<String>>,
    pub(crate) overlap: Option<bool>,
    /// Shell commands run, in order, after the server is stopped for good.
    pub(crate) post: Option<Vec<String>>,
    /// Stop the running server when a build fails (air's stop_on_error).
    pub(crate) stop_on_build_error: Option<bool>,
    /// Start the server again when it exits by itself.
    pub(crate) restart_on_exit: Option<bool>,
    pub(crate) restart_delay: Option<Spanned<String>>,
    /// A dotenv file read at every start of the server; [run] env wins over it.
    pub(crate) env_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputSection {
    /// Clear the screen before each build.
    pub(crate) clear: Option<bool>,
    /// Prefix status lines with the time.
    pub(crate) timestamps: Option<bool>,
    /// Only errors.
    pub(crate) quiet: Option<bool>,
    /// "human" or "json".
    pub(crate) format: Option<Spanned<String>>,
}

/// `[proxy]`: the dev proxy. Setting `port` turns it on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySection {
    /// Where the browser connects: `8090` or `"HOST:PORT"`.
    pub(crate) port: Option<Spanned<PortValue>>,
    /// Where the server listens (and the `PORT` it is given).
    pub(crate) app_port: Option<Spanned<PortValue>>,
    pub(crate) hold_timeout: Option<Spanned<String>>,
    /// Put the live-reload script into HTML pages.
    pub(crate) inject: Option<bool>,
    /// Names the proxy answers to besides localhost and IP addresses.
    pub(crate) allowed_hosts: Option<Vec<Spanned<String>>>,
}

/// A port as written: `8090`, or a string (`"8090"`, `"127.0.0.1:8090"`). Kept as written so
/// that a value out of range or a typo is reported by the resolver, in words, at its line,
/// rather than as serde's "expected u16".
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug)]
pub(crate) enum PollValue {
    Enabled(bool),
    Interval(String),
}

/// `[run] cmd`: an array is an argv, a string is a shell command line.
#[derive(Debug)]
pub(crate) enum RunCmd {
    Shell(String),
    Argv(Vec<String>),
}

/// `ext = "rs,toml"` or `ext = ["rs", "toml"]`.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
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

impl OneOrMany {
    pub(crate) fn into_list(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A problem in a config file, placed at a line and column so the user can go straight there.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub position: Option<(usize, usize)>,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The text of a config file, kept so that errors found after parsing can still point at a line.
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

impl Source {
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Source {
                path: path.to_owned(),
                text,
            }),
            Err(err) => Err(ConfigError {
                file: path.to_owned(),
                position: None,
                message: format!("cannot read the config file: {err}"),
                help: (err.kind() == std::io::ErrorKind::NotFound)
                    .then(|| "check the path given to -c/--config".to_owned()),
            }),
        }
    }

    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|err| self.toml_error(&err))
    }

    /// Whether the file sets nothing at all: empty, or only comments and blank lines.
    pub(crate) fn is_blank(&self) -> bool {
        self.text
            .parse::<toml::Table>()
            .is_ok_and(|table| table.is_empty())
    }

    /// An error about the value at `span`.
    pub(crate) fn error_at(&self, span: Range<usize>, message: String) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            position: Some(line_column(&self.text, span.start)),
            message,
            help: None,
        }
    }

    fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let position = err.span().map(|span| line_column(&self.text, span.start));
        let message = err.message().trim().to_owned();
        if let Some((unknown, expected)) = parse_unknown_field(&message) {
            let line = position.and_then(|(line, _)| self.text.lines().nth(line - 1));
            // `[foo]` is a table the top level does not know: say "section", list the sections.
            let header = |l: &str| l.trim().trim_matches(['[', ']']).trim() == unknown;
            if line.is_some_and(|l| l.trim_start().starts_with('[') && header(l)) {
                return ConfigError {
                    file: self.path.clone(),
                    position,
                    message: format!("unknown section `[{unknown}]`"),
                    help: Some(section_help(&unknown, expected)),
                };
            }
            let section = position
                .and_then(|(line, _)| section_of_line(&self.text, line))
                .map_or_else(String::new, |s| format!(" in [{s}]"));
            let help = closest(&unknown, &expected)
                .map(|best| format!("did you mean `{best}`?"))
                .or_else(|| Some(format!("known keys here: {}", expected.join(", "))));
            return ConfigError {
                file: self.path.clone(),
                position,
                message: format!("unknown key `{unknown}`{section}"),
                help,
            };
        }
        // serde names the type, not the key: "invalid type: string \"soon\", expected u64".
        let key = position.and_then(|(line, _)| key_of_line(&self.text, line));
        let message = match key {
            Some(key) => format!("`{key}`: {message}"),
            None => message,
        };
        ConfigError {
            file: self.path.clone(),
            position,
            message,
            help: None,
        }
    }
}

/// The key assigned on a line (`delay = "soon"` -> `delay`, prefixed by its [table]).
fn key_of_line(text: &str, line: usize) -> Option<String> {
    let (key, _) = text.lines().nth(line.checked_sub(1)?)?.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    Some(match section_of_line(text, line) {
        Some(section) => format!("{section}.{key}"),
        None => key.to_owned(),
    })
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The `[table]` header above a line, for messages like "unknown key `x` in [watch]".
fn section_of_line(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']'))
                .then(|| l.trim_matches(['[', ']']).trim().to_owned())
        })
}

/// serde's message reads "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field ")?;
    let mut quoted = rest.split('`').skip(1).step_by(2).map(str::to_owned);
    let unknown = quoted.next()?;
    Some((unknown, quoted.collect()))
}

/// The known name nearest to `name`, if it is close enough to be a typo: at most one edit
/// (a transposition counts as one) per three characters, and at least one. `debounse` finds
/// `debounce` and `rn` finds `run`; `foo` finds nothing, not `root`.
pub(crate) fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.chars().count().max(c.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// For an unknown `[unknown]` header: the section it was probably meant to be, or the list of
/// known ones. `expected` are the top-level keys; only the tables among them are sections.
fn section_help(unknown: &str, expected: Vec<String>) -> String {
    let tables: Vec<String> = expected
        .iter()
        .filter(|name| {
            Section::TABLES
                .iter()
                .any(|table| table.table() == Some(name.as_str()))
        })
        .cloned()
        .collect();
    let sections = if tables.is_empty() { expected } else { tables };
    if let Some(best) = closest(unknown, &sections) {
        return format!("did you mean `[{best}]`?");
    }
    let listed: Vec<String> = sections.iter().map(|s| format!("[{s}]")).collect();
    format!("known sections: {}", listed.join(", "))
}

/// Where, under one of `keys` (dotted paths like `watch.ignore`), the file writes a string that
/// `matches`: as the key's value, or as one string of its list. Returns the key and the
/// string's span. For values checked after parsing whose type keeps no span (one glob of a
/// list).
pub(crate) fn locate_value(
    text: &str,
    keys: &[&str],
    matches: impl Fn(&str) -> bool,
) -> Option<(String, Range<usize>)> {
    use toml::de::{DeTable, DeValue};
    let document = DeTable::parse(text).ok()?;
    for key in keys {
        let mut table = document.get_ref();
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let Some(value) = table.get(part) else { break };
            let last = parts.peek().is_none();
            match value.get_ref() {
                DeValue::Table(inner) if !last => table = inner,
                DeValue::String(s) if last && matches(s) => {
                    return Some(((*key).to_owned(), value.span()));
                }
                DeValue::Array(items) if last => {
                    let found = items
                        .iter()
                        .find(|item| matches!(item.get_ref(), DeValue::String(s) if matches(s)));
                    if let Some(item) = found {
                        return Some(((*key).to_owned(), item.span()));
                    }
                }
                _ => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::keys::KEYS;
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        Source {
            path: "reload.toml".into(),
            text: text.to_owned(),
        }
        .parse()
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = parse("[watch]\ndebounce = \"50ms\"\next = [\"rs\"\n").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("reload.toml:"), "{shown}");
        assert!(err.position.is_some_and(|(line, _)| line >= 3), "{shown}");
    }

    #[test]
    fn unknown_key_is_named_with_its_section_and_a_suggestion() {
        let err = parse("[watch]\nignore = []\ndebounse = \"1s\"\n").unwrap_err();
        assert_eq!(err.position, Some((3, 1)));
        assert_eq!(err.message, "unknown key `debounse` in [watch]");
        assert_eq!(err.help.as_deref(), Some("did you mean `debounce`?"));
    }

    #[test]
    fn unknown_top_level_key_without_close_match_lists_the_keys() {
        let err = parse("zzzzzz = 1\n").unwrap_err();
        assert_eq!(err.message, "unknown key `zzzzzz`");
        assert!(err.help.unwrap().contains("watch"));
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = parse("[watch]\ngitignore = \"yes\"\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(2));
        assert!(
            err.message.starts_with("`watch.gitignore`: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn run_cmd_is_argv_or_shell() {
        let argv = parse("[run]\ncmd = [\"app\", \"-p\"]\n").unwrap();
        assert!(
            matches!(argv.run.cmd.unwrap().into_inner(), RunCmd::Argv(v) if v == ["app", "-p"])
        );
        let shell = parse("[run]\ncmd = \"app | tee log\"\n").unwrap();
        assert!(matches!(
            shell.run.cmd.unwrap().into_inner(),
            RunCmd::Shell(_)
        ));
    }

    #[test]
    fn only_close_names_are_suggested() {
        let known = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let top = known(&["root", "watch", "build", "run", "output"]);
        assert_eq!(closest("foo", &top), None);
        assert_eq!(closest("rn", &top), Some("run"));
        assert_eq!(closest("wacth", &top), Some("watch"));
        let run = known(&["stop_signal", "stop_timeout"]);
        assert_eq!(closest("stop_sginal", &run), Some("stop_signal"));
        assert_eq!(closest("zzzzzz", &run), None);
    }

    #[test]
    fn an_unknown_section_lists_the_sections() {
        let err = parse("[foo]\nx = 1\n").unwrap_err();
        assert_eq!(err.message, "unknown section `[foo]`");
        assert_eq!(
            err.help.as_deref(),
            Some("known sections: [watch], [build], [run], [output], [proxy]")
        );
        let err = parse("[wacth]\n").unwrap_err();
        assert_eq!(err.help.as_deref(), Some("did you mean `[watch]`?"));
        let err = parse("[watch.foo]\nx = 1\n").unwrap_err();
        assert!(
            err.message.starts_with("unknown key `foo`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_wrong_type_says_what_to_write() {
        let err = parse("[run]\ncmd = 5\n").unwrap_err();
        assert!(!err.message.contains("untagged"), "{}", err.message);
        assert!(err.message.contains("a list of strings"), "{}", err.message);
        let err = parse("[watch]\npoll = 5\n").unwrap_err();
        assert!(
            err.message.contains("true, false or an interval"),
            "{}",
            err.message
        );
        let err = parse("[run]\ncmd = [\"app\", 5]\n").unwrap_err();
        assert!(err.message.contains("integer `5`"), "{}", err.message);
    }

    #[test]
    fn a_value_is_located_in_a_list_under_its_key() {
        let text = "[watch]\nignore = [\"a\", \"b[\"]\n[build]\nclean_on_exit = [\"b[\"]\n";
        let (key, span) = locate_value(text, &["watch.ignore"], |s| s == "b[").unwrap();
        assert_eq!(key, "watch.ignore");
        assert_eq!(line_column(text, span.start), (2, 16));
        assert!(locate_value(text, &["watch.include"], |s| s == "b[").is_none());
    }

    /// The keys serde knows in `section`, from its "unknown field" message (the only place it
    /// lists a struct's fields).
    fn parser_keys(section: Section) -> Vec<String> {
        let text = match section.table() {
            Some(table) => format!("[{table}]\nno_such_key = 1\n"),
            None => "no_such_key = 1\n".to_owned(),
        };
        let err = toml::from_str::<FileConfig>(&text).expect_err("an unknown key");
        let (unknown, mut known) = parse_unknown_field(err.message().trim())
            .unwrap_or_else(|| panic!("not an unknown-field error: {err}"));
        assert_eq!(unknown, "no_such_key");
        known.sort();
        known
    }

    #[test]
    fn the_parser_and_the_table_know_the_same_keys() {
        for section in std::iter::once(Section::Top).chain(Section::TABLES) {
            let mut table: Vec<String> = KEYS
                .iter()
                .filter(|key| key.section == section)
                .map(|key| key.name.to_owned())
                .collect();
            if section == Section::Top {
                table.extend(
                    Section::TABLES
                        .iter()
                        .filter_map(|s| s.table())
                        .map(str::to_owned),
                );
            }
            table.sort();
            assert_eq!(parser_keys(section), table, "in {section:?}");
        }
    }

    #[test]
    fn a_comment_only_file_is_blank() {
        let source = |text: &str| Source {
            path: "reload.toml".into(),
            text: text.into(),
        };
        assert!(source("").is_blank());
        assert!(source("# nothing\n\n  # here\n").is_blank());
        assert!(!source("[run]\ncmd = \"x\"\n").is_blank());
    }
}
