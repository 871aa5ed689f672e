//! The shape ARCHITECTURE.md promises, held by a test: no module imports one that imports it
//! back, at any depth (`cli` and `config`, or `config::file` and `config::keys`). A module and
//! its own submodules are one thing here: a parent naming its child, and a child its parent's
//! items through `super::`, is how a module is built, not a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The module a file is: `src/config/mod.rs` is `config`, `src/config/file.rs` `config::file`;
/// `lib.rs` and `main.rs` are the crate itself, the empty path.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The paths a text names after `crate::`, groups expanded: `crate::{a::{B, c}, d}` names
/// `a::B`, `a::c` and `d`.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        expand(&text[at + "crate::".len()..], &[], &mut paths);
    }
    paths
}

/// Read one path (or `{...}` group of paths) from the start of `text`, each after `prefix`,
/// into `out`. Returns how much of `text` it read.
fn expand(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut rest = text;
    let mut path = prefix.to_vec();
    loop {
        rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            rest = group;
            loop {
                rest = rest.trim_start();
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let used = expand(rest, &path, out);
                rest = rest[used..].trim_start();
                match rest.strip_prefix(',') {
                    Some(after) => rest = after,
                    // Not a path (`as NAME`, the end of the text): step over one character.
                    None if used == 0 => match rest.chars().next() {
                        Some(c) => rest = &rest[c.len_utf8()..],
                        None => break,
                    },
                    None => {}
                }
            }
            return text.len() - rest.len();
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(after) => rest = after,
            None => break,
        }
    }
    if path.len() > prefix.len() {
        out.push(path);
    }
    text.len() - rest.len()
}

/// Each module's imports of other modules, by the longest known module a path starts with.
fn imports(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files = sources(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        if module.last().is_some_and(|name| name == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        // A module's unit tests may reach anywhere; they are not its shape.
        let text = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default();
        let mut named = crate_paths(text);
        for (at, _) in text.match_indices("super::") {
            let mut found = Vec::new();
            expand(&text[at + "super::".len()..], &[], &mut found);
            let parent = &module[..module.len().saturating_sub(1)];
            named.extend(found.into_iter().map(|path| [parent, &path[..]].concat()));
        }
        for path in named {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|prefix| modules.contains(prefix));
            let Some(target) = target else { continue };
            let related = target.starts_with(&module) || module.starts_with(&target);
            if !related {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(
        graph
            .values()
            .flatten()
            .any(|m| m == &["config".to_owned()]),
        "the import graph was not read: {graph:?}"
    );
    let depth = graph.keys().map(Vec::len).max().unwrap_or(0);
    // Seen from each depth: `config` as a whole against `status`, then `config::file` against
    // `config::keys`, and so on.
    for level in 1..=depth {
        let name = |module: &Vec<String>| module[..module.len().min(level)].join("::");
        let mut collapsed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, targets) in &graph {
            for to in targets {
                let (from, to) = (name(from), name(to));
                let related = from.starts_with(&format!("{to}::"))
                    || to.starts_with(&format!("{from}::"))
                    || from == to;
                if !related && !from.is_empty() && !to.is_empty() {
                    collapsed.entry(from).or_default().insert(to);
                }
            }
        }
        if let Some(found) = cycle(&collapsed) {
            panic!(
                "modules import each other (seen {level} deep): {}",
                found.join(" -> ")
            );
        }
    }
}

#[test]
fn groups_of_imports_are_read_as_paths() {
    let paths = crate_paths("use crate::{a::{B, c}, d};\nuse crate::e::F;");
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(shown, ["a::B", "a::c", "d", "e::F"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}
