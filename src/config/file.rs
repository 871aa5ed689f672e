//! A config file's text ([`Source`]), parsed into the keys of `keys.rs`, and its errors: a
//! [`ConfigError`] names the file, line and column, and the key as that file names it (air's
//! own keys in an .air.toml). Positions come from serde's spans; the text is parsed once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::keys::{Key, TABLES};

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
    pub(crate) fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: path.to_owned(),
            position: None,
            message: format!("cannot read the config file: {err}"),
            help: (err.kind() == std::io::ErrorKind::NotFound)
                .then(|| "check the path given to -c/--config".to_owned()),
        })?;
        Ok(Source::new(path, text))
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

    /// Whether this is air's file (`.air.toml`, `air.toml`, or any `*.air.toml`), read into
    /// reload's keys: its messages name air's keys.
    pub(crate) fn is_air(&self) -> bool {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| name == "air.toml" || name.ends_with(".air.toml"))
    }

    /// How messages name `key`, whose value is at `span`: reload's name in a reload.toml; in
    /// air's file, the key air writes there (a value air's defaults gave has no place).
    pub(crate) fn label(&self, key: &Key, span: &Range<usize>) -> String {
        let written = (self.is_air() && span.end > 0)
            .then(|| key_written_at(&self.text, span.start))
            .flatten();
        written.unwrap_or_else(|| key.label())
    }

    /// An error about the value at `span`.
    pub(crate) fn error_at(&self, span: Range<usize>, message: String) -> ConfigError {
        let position = Some(line_column(&self.text, span.start));
        self.error(position, message, None)
    }

    fn error(
        &self,
        position: Option<(usize, usize)>,
        message: String,
        help: Option<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            position,
            message,
            help,
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
                let message = format!("unknown section `[{unknown}]`");
                return self.error(position, message, Some(section_help(&unknown, expected)));
            }
            let section = position
                .and_then(|(line, _)| section_of_line(&self.text, line))
                .map_or_else(String::new, |s| format!(" in [{s}]"));
            let help = closest(&unknown, &expected)
                .map(|best| format!("did you mean `{best}`?"))
                .or_else(|| Some(format!("known keys here: {}", expected.join(", "))));
            return self.error(position, format!("unknown key `{unknown}`{section}"), help);
        }
        // serde names the type, not the key: "invalid type: string \"soon\", expected u64".
        let key = position.and_then(|(line, _)| key_of_line(&self.text, line));
        let message = match key {
            Some(key) => format!("`{key}`: {message}"),
            None => message,
        };
        self.error(position, message, None)
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

/// The key whose value holds the byte `offset`: the last `key =` at or above its line, within
/// its `[table]`, as `[table] key`.
fn key_written_at(text: &str, offset: usize) -> Option<String> {
    let (line, _) = line_column(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let (number, key) = (1..=line.min(lines.len()))
        .rev()
        .take_while(|number| !lines[number - 1].trim_start().starts_with('['))
        .find_map(|number| {
            let (key, _) = lines[number - 1].split_once('=')?;
            let key = key.trim();
            let bare =
                !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || "_-".contains(c));
            bare.then(|| (number, key.to_owned()))
        })?;
    Some(match section_of_line(text, number) {
        Some(section) => format!("[{section}] {key}"),
        None => key,
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
    let header = text
        .lines()
        .take(line)
        .map(str::trim)
        .filter(|l| l.starts_with('[') && l.ends_with(']'))
        .last()?;
    Some(header.trim_matches(['[', ']']).trim().to_owned())
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
        .filter(|name| TABLES.contains(&name.as_str()))
        .cloned()
        .collect();
    let sections = if tables.is_empty() { expected } else { tables };
    if let Some(best) = closest(unknown, &sections) {
        return format!("did you mean `[{best}]`?");
    }
    let listed: Vec<String> = sections.iter().map(|s| format!("[{s}]")).collect();
    format!("known sections: {}", listed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::keys::{FileConfig, KEYS, RunCmd};
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        Source::new("reload.toml", text).parse()
    }

    #[test]
    fn an_error_names_its_line_column_key_and_what_to_write() {
        // Each file, and the start of what the error says about it.
        for (text, shown) in [
            (
                "[watch]\ndebounce = \"50ms\"\next = [\"rs\"\n",
                "reload.toml:3:",
            ),
            (
                "[watch]\nignore = []\ndebounse = \"1s\"\n",
                "reload.toml:3:1: unknown key `debounse` in [watch]\n  \
                 help: did you mean `debounce`?",
            ),
            (
                "zzzzzz = 1\n",
                "reload.toml:1:1: unknown key `zzzzzz`\n  help: known keys here: root, watch",
            ),
            (
                "[watch]\ngitignore = \"yes\"\n",
                "reload.toml:2:13: `watch.gitignore`: ",
            ),
            (
                "[foo]\nx = 1\n",
                "reload.toml:1:2: unknown section `[foo]`\n  \
                 help: known sections: [watch], [build], [run], [output], [proxy]",
            ),
            (
                "[wacth]\n",
                "reload.toml:1:2: unknown section `[wacth]`\n  help: did you mean `[watch]`?",
            ),
            ("[watch.foo]\nx = 1\n", "reload.toml:1:8: unknown key `foo`"),
            (
                "[run]\ncmd = 5\n",
                "reload.toml:2:7: `run.cmd`: invalid type: integer `5`, expected a string (a shell \
                 command line) or a list of strings",
            ),
            (
                "[watch]\npoll = 5\n",
                "reload.toml:2:8: `watch.poll`: invalid type: integer `5`, expected true, false or \
                 an interval",
            ),
            (
                "[run]\ncmd = [\"app\", 5]\n",
                "reload.toml:2:7: `run.cmd`: expected a string (a shell command line) or a list of \
                 strings (a program and its arguments), but the list holds integer `5`",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(shown), "{text}:\n{err}");
            assert!(!err.contains("untagged"), "{err}");
        }
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
        let run = known(&["stop_signal", "stop_timeout"]);
        for (name, known, closest_one) in [
            ("foo", &top, None),
            ("rn", &top, Some("run")),
            ("wacth", &top, Some("watch")),
            ("stop_sginal", &run, Some("stop_signal")),
            ("zzzzzz", &run, None),
        ] {
            assert_eq!(closest(name, known), closest_one, "{name}");
        }
    }

    #[test]
    fn airs_keys_are_named_where_air_writes_them() {
        let source = Source::new(
            ".air.toml",
            "tmp_dir = \"t\"\n[build]\nexclude_dir = [\n  \"a\",\n  \"b[\",\n]\n",
        );
        let at = |text: &str| {
            let start = source.text.find(text).unwrap();
            start..start + text.len()
        };
        let key = &super::super::keys::watch::ignore;
        assert_eq!(source.label(key, &at("\"b[\"")), "[build] exclude_dir");
        assert_eq!(source.label(key, &at("\"t\"")), "tmp_dir");
        assert_eq!(source.label(key, &(0..0)), "[watch] ignore");
    }

    /// The keys serde knows in `section`, from its "unknown field" message (the only place it
    /// lists a struct's fields).
    fn parser_keys(section: Option<&str>) -> Vec<String> {
        let text = match section {
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
        for section in std::iter::once(None).chain(TABLES.iter().copied().map(Some)) {
            let mut table: Vec<String> = KEYS
                .iter()
                .filter(|key| key.table == section)
                .map(|key| key.name.to_owned())
                .collect();
            if section.is_none() {
                table.extend(TABLES.iter().map(|table| (*table).to_owned()));
            }
            table.sort();
            assert_eq!(parser_keys(section), table, "in {section:?}");
        }
    }

    #[test]
    fn a_comment_only_file_is_blank() {
        let source = |text: &str| Source::new("reload.toml", text);
        assert!(source("").is_blank());
        assert!(source("# nothing\n\n  # here\n").is_blank());
        assert!(!source("[run]\ncmd = \"x\"\n").is_blank());
    }
}
