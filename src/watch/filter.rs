//! What counts as a change: one decision, used both when choosing which directories get an
//! inotify watch and when an event arrives, so the two can never disagree.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::config::FilterRules;

/// Files whose rules apply to their directory and everything below it, as git reads them.
const IGNORE_FILES: &[&str] = &[".gitignore", ".ignore"];

/// Directories never watched, wherever they are, with or without a .gitignore: a repository's
/// internals, and trees that package managers write (`pip install`, `npm install`) and that
/// no project edits by hand. Nothing below them counts either.
const NEVER_WATCHED: &[&str] = &[".git", ".venv", "venv", "__pycache__", "node_modules"];

pub(crate) struct Filter {
    rules: FilterRules,
    /// Directory -> the rules of its .gitignore/.ignore files (only directories that have some).
    ignore_files: HashMap<PathBuf, Gitignore>,
}

impl Filter {
    pub(crate) fn new(rules: FilterRules) -> Self {
        Filter {
            rules,
            ignore_files: HashMap::new(),
        }
    }

    /// Read `dir`'s ignore files. Called for every directory the walk enters, before its entries
    /// are looked at, so a directory's own rules apply to its children.
    pub(crate) fn load_ignore_files(&mut self, dir: &Path) {
        if !self.rules.gitignore {
            return;
        }
        let mut builder = GitignoreBuilder::new(dir);
        let mut any = false;
        let mut add = |path: PathBuf| {
            if path.is_file() {
                if let Some(err) = builder.add(&path) {
                    crate::status::warning(&format!(
                        "{}: {err}; that line is ignored",
                        path.display()
                    ));
                }
                any = true;
            }
        };
        for name in IGNORE_FILES {
            add(dir.join(name));
        }
        if dir == self.rules.root {
            add(dir.join(".git/info/exclude"));
        }
        if !any {
            self.ignore_files.remove(dir);
            return;
        }
        match builder.build() {
            Ok(matcher) => {
                self.ignore_files.insert(dir.to_owned(), matcher);
            }
            Err(err) => crate::status::warning(&format!(
                "cannot read the ignore files in {}: {err}",
                dir.display()
            )),
        }
    }

    /// Whether an ignore file changed, so its directory's rules must be read again.
    pub(crate) fn is_ignore_file(path: &Path) -> bool {
        path.file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|name| IGNORE_FILES.contains(&name))
    }

    /// `path` relative to the project root, as --ignore globs are written.
    pub(crate) fn relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(&self.rules.root).unwrap_or(path)
    }

    /// Whether `path` is excluded by a built-in rule, a user glob or an ignore file. Parents are
    /// not checked, except for the built-in [`NEVER_WATCHED`] names: the watch stage only ever
    /// looks inside directories that passed this test, but a removal event names the removed
    /// directory itself as if it were a file (`rm -r .venv`).
    pub(crate) fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        if self.relative(path).components().any(|part| {
            NEVER_WATCHED
                .iter()
                .any(|name| part.as_os_str() == OsStr::new(name))
        }) {
            return true;
        }
        if self
            .rules
            .ignored_dirs
            .iter()
            .any(|dir| path.starts_with(dir))
        {
            return true;
        }
        let relative = self.relative(path);
        if self.rules.ignore.is_match(relative) {
            return true;
        }
        if !self.rules.ignore_regex.is_empty() {
            let text = relative.to_string_lossy();
            if self.rules.ignore_regex.iter().any(|re| re.is_match(&text)) {
                return true;
            }
        }
        // The deepest ignore file with an opinion wins, as in git.
        for dir in path.ancestors().skip(1) {
            if let Some(matcher) = self.ignore_files.get(dir) {
                match matcher.matched(path, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            if dir == self.rules.root {
                break;
            }
        }
        false
    }

    /// Whether a change to the file at `path` should trigger a build.
    pub(crate) fn is_relevant_file(&self, path: &Path) -> bool {
        if self.is_ignored(path, false) {
            return false;
        }
        if self.rules.extensions.is_empty() && self.rules.include.is_none() {
            return true;
        }
        let by_extension = path
            .extension()
            .and_then(OsStr::to_str)
            .is_some_and(|ext| self.rules.extensions.iter().any(|e| e == ext));
        let relative = path.strip_prefix(&self.rules.root).unwrap_or(path);
        by_extension
            || self
                .rules
                .include
                .as_ref()
                .is_some_and(|set| set.is_match(relative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::Glob;

    fn rules(root: &Path, extensions: &[&str], ignore: &[&str]) -> FilterRules {
        let mut set = Vec::new();
        for glob in ignore.iter().chain(crate::config::EDITOR_TEMPORARIES) {
            set.push(Glob::new(glob).unwrap());
            set.push(Glob::new(&format!("**/{glob}")).unwrap());
        }
        FilterRules {
            root: root.to_owned(),
            extensions: extensions.iter().map(|s| (*s).to_owned()).collect(),
            include: None,
            ignore: crate::config::Globs::new(set).unwrap(),
            ignore_regex: vec![regex::Regex::new("_test\\.go$").unwrap()],
            gitignore: true,
            ignored_dirs: vec![root.join("target")],
        }
    }

    #[test]
    fn editor_temporaries_and_builtin_directories_are_ignored() {
        let root = Path::new("/p");
        let filter = Filter::new(rules(root, &[], &[]));
        for temp in [
            "src/.main.rs.swp",
            "src/4913",
            "src/main.rs~",
            "src/.#main.rs",
            "a.tmp",
        ] {
            assert!(!filter.is_relevant_file(&root.join(temp)), "{temp}");
        }
        assert!(filter.is_ignored(&root.join("target"), true));
        assert!(filter.is_ignored(&root.join("target/debug/app"), false));
        assert!(filter.is_ignored(&root.join("sub/.git"), true));
        assert!(filter.is_relevant_file(&root.join("src/main.rs")));
        for tree in [
            ".venv",
            "venv",
            "a/__pycache__",
            "web/node_modules",
            "sub/.git",
        ] {
            assert!(filter.is_ignored(&root.join(tree), true), "{tree}");
            assert!(!filter.is_relevant_file(&root.join(tree)), "{tree} removed");
            assert!(
                !filter.is_relevant_file(&root.join(tree).join("p/x.py")),
                "{tree}"
            );
        }
        assert!(
            filter.is_relevant_file(&root.join("src/venv.py")),
            "only whole names count"
        );
        assert!(
            Filter::new(rules(Path::new("/home/me/venv/p"), &[], &[]))
                .is_relevant_file(Path::new("/home/me/venv/p/src/main.rs")),
            "only names inside the project count"
        );
        assert!(!filter.is_relevant_file(&root.join("pkg/handler_test.go")));
        assert!(filter.is_relevant_file(&root.join("pkg/handler.go")));
    }

    #[test]
    fn extensions_limit_files_but_not_directories() {
        let root = Path::new("/p");
        let filter = Filter::new(rules(root, &["rs", "toml"], &["logs"]));
        assert!(filter.is_relevant_file(&root.join("src/lib.rs")));
        assert!(filter.is_relevant_file(&root.join("Cargo.toml")));
        assert!(!filter.is_relevant_file(&root.join("README.md")));
        assert!(!filter.is_ignored(&root.join("src"), true));
        assert!(filter.is_ignored(&root.join("deep/logs"), true));
    }

    #[test]
    fn nested_gitignore_rules_apply_deepest_first() {
        let dir = std::env::temp_dir().join(format!("reload-filter-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("web")).unwrap();
        std::fs::write(dir.join(".gitignore"), "*.gen\nbuild/\n").unwrap();
        std::fs::write(dir.join("web/.gitignore"), "!keep.gen\n").unwrap();
        let mut filter = Filter::new(rules(&dir, &[], &[]));
        filter.load_ignore_files(&dir);
        filter.load_ignore_files(&dir.join("web"));
        let ignored_file = filter.is_ignored(&dir.join("web/x.gen"), false);
        let kept = filter.is_ignored(&dir.join("web/keep.gen"), false);
        let build_dir = filter.is_ignored(&dir.join("web/build"), true);
        let build_file = filter.is_ignored(&dir.join("build"), false);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(ignored_file);
        assert!(!kept);
        assert!(build_dir);
        assert!(!build_file, "`build/` only matches directories");
    }
}
