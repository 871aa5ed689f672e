//! What a shell would make of a command line, without running one: whether `sh -c LINE` would
//! run exactly the line's words. A build line or a Node `start` script that passes runs as an
//! argv, one process fewer, and what reload stops is then the program itself.

/// Words a shell runs as a builtin or reads as syntax: as a first word they need the shell.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "break", "case", "cd", "command", "continue", "eval", "exec", "exit",
    "export", "for", "if", "local", "readonly", "return", "set", "shift", "source", "time",
    "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// `line` split into words when `sh -c` would run it as exactly those words, so that it can be
/// executed without a shell (a build line, a Node start script): only plain
/// characters (no quotes, escapes, variables, globs, redirections, operators or comments), no
/// `NAME=value` prefix, and a first word that is a program rather than a shell builtin.
pub fn plain_words(line: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    let first = words.first()?;
    let all_plain = words.iter().all(|word| word.chars().all(plain));
    (all_plain && !first.contains('=') && !SHELL_WORDS.contains(first)).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_a_shell_would_run_as_they_are_are_plain_words() {
        let argv = |words: &[&'static str]| Some(words.to_vec());
        assert_eq!(plain_words("node server.js"), argv(&["node", "server.js"]));
        assert_eq!(
            plain_words("  node --watch=false\tsrc/index.js "),
            argv(&["node", "--watch=false", "src/index.js"])
        );
        assert_eq!(
            plain_words("ts-node -r tsconfig-paths/register src/main.ts"),
            argv(&["ts-node", "-r", "tsconfig-paths/register", "src/main.ts"])
        );
        for shell in [
            "",
            "   ",
            "node a.js && node b.js",
            "node a.js; echo done",
            "node a.js | tee log",
            "node a.js > log",
            "node a.js &",
            "NODE_ENV=production node server.js",
            "node $ENTRY",
            "node \"my server.js\"",
            "node 'server.js'",
            "node server\\ x.js",
            "node src/*.js",
            "node server.js # comment",
            "node ~/server.js",
            "node `which x`",
            "(node server.js)",
            "exec node server.js",
            "cd src",
            "node server.js\nnode other.js",
            "node {a,b}.js",
        ] {
            assert_eq!(plain_words(shell), None, "{shell:?} needs the shell");
        }
    }
}
