//! `reload init`: write a commented reload.toml for the project in the current directory, from
//! what detection finds or (`--from-air`) from its .air.toml. Every key reload knows appears,
//! set where the project needs it and commented out with its default otherwise, so the file
//! doubles as the reference.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use super::detect;
use super::file::{FileConfig, OneOrMany, PollValue, RunCmd, Source};
use super::{CONFIG_FILE, air, usage};

/// Write `reload.toml` in `dir`. Returns its path and a description of what it was made from.
pub fn write(dir: &Path, force: bool, from_air: bool) -> Result<(PathBuf, String)> {
    let target = dir.join(CONFIG_FILE);
    if target.exists() && !force {
        return Err(usage(format!(
            "{} already exists; pass --force to overwrite it",
            target.display()
        )));
    }
    let (file, what) = if from_air {
        let path = [".air.toml", "air.toml"]
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| usage(format!("no .air.toml or air.toml in {}", dir.display())))?;
        let source = Source::read(&path)?;
        let (file, warnings) = air::parse(&source)?;
        let mut what = format!("converted from {}", path.display());
        for warning in warnings {
            what.push_str(&format!("\n  {warning}"));
        }
        (file, what)
    } else {
        from_project(dir)?
    };
    let text = render(&file, &what);
    std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
    Ok((target, what))
}

/// A reload.toml equivalent to what zero-config would do in `dir`.
fn from_project(dir: &Path) -> Result<(FileConfig, String)> {
    let project = detect::detect(dir).ok_or_else(|| {
        usage(format!(
            "cannot tell what kind of project {} is (no Cargo.toml, go.mod, package.json or \
             Makefile with a run target)\n  help: copy reload.toml.example from reload's \
             repository, or run `reload --build CMD -- PROGRAM`",
            dir.display()
        ))
    })?;
    let plan = project.plan(dir, None, None)?;
    let defaults = project.watch_defaults();
    let mut file = FileConfig::default();
    file.watch.ext =
        (!defaults.extensions.is_empty()).then_some(OneOrMany::Many(defaults.extensions));
    file.watch.include = (!defaults.include.is_empty()).then_some(defaults.include);
    file.watch.ignore = (!defaults.ignore.is_empty()).then_some(defaults.ignore);
    file.build.cmd = plan
        .build_line
        .or_else(|| plan.build.as_ref().map(crate::build::describe));
    let command = match (plan.program, plan.cargo_binary) {
        // reload.toml has no "the executable cargo reports": it names the binary's path.
        (super::Program::CargoArtifact, Some(path)) => {
            let relative = path
                .strip_prefix(dir)
                .map_or(path.clone(), |p| Path::new(".").join(p));
            RunCmd::Argv(vec![relative.display().to_string()])
        }
        (super::Program::CargoArtifact, None) => {
            return Err(anyhow!("a Cargo plan without a binary"));
        }
        (super::Program::Argv(argv), _) => RunCmd::Argv(argv),
        (super::Program::Shell(line), _) => RunCmd::Shell(line),
    };
    file.run.cmd = Some(toml::Spanned::new(0..0, command));
    Ok((file, format!("detected: {}", plan.description)))
}

fn value(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| value(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// One key: set when the project needs it, else commented out with its default.
fn key(out: &mut String, doc: &str, name: &str, set: Option<String>, default: &str) {
    let _ = writeln!(out, "# {doc}");
    let _ = match set {
        Some(v) => writeln!(out, "{name} = {v}\n"),
        None => writeln!(out, "# {name} = {default}\n"),
    };
}

fn render(file: &FileConfig, what: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# reload.toml, written by `reload init` ({}).",
        what.lines().next().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "# Command-line flags override these settings. Durations take units: 50ms, 5s, 1m.\n"
    );
    let path = |p: &Path| value(&p.display().to_string());
    key(
        &mut out,
        "Project root; relative paths below start here.",
        "root",
        file.root.as_ref().map(|r| path(r.get_ref())),
        "\".\"",
    );

    out.push_str("[watch]\n");
    let paths = file.watch.paths.as_ref().map(|p| {
        list(
            &p.get_ref()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        )
    });
    key(
        &mut out,
        "Directories watched recursively.",
        "paths",
        paths,
        "[\".\"]",
    );
    let ext = file.watch.ext.as_ref().map(|e| match e {
        OneOrMany::One(s) => value(s),
        OneOrMany::Many(v) => list(v),
    });
    key(
        &mut out,
        "Only files with these extensions count (empty: every file).",
        "ext",
        ext,
        "[]",
    );
    key(
        &mut out,
        "Files that count whatever their extension (globs, relative to root).",
        "include",
        file.watch.include.as_deref().map(list),
        "[]",
    );
    key(
        &mut out,
        "Globs never watched; one without '/' matches a name at any depth, '/x' only at the root.",
        "ignore",
        file.watch.ignore.as_deref().map(list),
        "[]",
    );
    key(
        &mut out,
        "Regular expressions (on the path relative to root) never watched.",
        "ignore_regex",
        file.watch.ignore_regex.as_ref().map(|r| list(r.get_ref())),
        "[]",
    );
    key(
        &mut out,
        "Honour .gitignore, .ignore and .git/info/exclude.",
        "gitignore",
        file.watch.gitignore.map(|b| b.to_string()),
        "true",
    );
    key(
        &mut out,
        "Quiet window: changes closer together than this make one build.",
        "debounce",
        file.watch.debounce.as_ref().map(|d| value(d.get_ref())),
        "\"50ms\"",
    );
    let poll = file.watch.poll.as_ref().map(|p| match p.get_ref() {
        PollValue::Enabled(b) => b.to_string(),
        PollValue::Interval(i) => value(i),
    });
    key(
        &mut out,
        "Poll instead of inotify (network mounts, some containers): true or an interval.",
        "poll",
        poll,
        "false",
    );

    out.push_str("[build]\n");
    key(
        &mut out,
        "Build command, run with sh -c in the root (\"\" for none).",
        "cmd",
        file.build.cmd.as_deref().map(value),
        "\"\"",
    );
    key(
        &mut out,
        "Shell commands run before each build.",
        "pre",
        file.build.pre.as_deref().map(list),
        "[]",
    );
    let clean = file.build.clean_on_exit.as_ref().map(|c| {
        list(
            &c.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        )
    });
    key(
        &mut out,
        "Paths removed when reload exits.",
        "clean_on_exit",
        clean,
        "[]",
    );

    out.push_str("[run]\n");
    let cmd = file.run.cmd.as_ref().map(|c| match c.get_ref() {
        RunCmd::Argv(argv) => list(argv),
        RunCmd::Shell(line) => value(line),
    });
    key(
        &mut out,
        "The server: an array is executed directly, a string runs with sh -c.",
        "cmd",
        cmd,
        "[\"./server\"]",
    );
    let env = file.run.env.as_ref().map(|env| {
        let pairs: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k} = {}", value(v)))
            .collect();
        format!("{{ {} }}", pairs.join(", "))
    });
    key(
        &mut out,
        "Extra environment for the server (it always gets RELOAD=1).",
        "env",
        env,
        "{ PORT = \"3000\" }",
    );
    key(
        &mut out,
        "A dotenv file read at every start; env above wins over it.",
        "env_file",
        file.run.env_file.as_ref().map(|p| path(p.get_ref())),
        "\".env\"",
    );
    key(
        &mut out,
        "Signal that asks the server to stop.",
        "stop_signal",
        file.run.stop_signal.as_ref().map(|s| value(s.get_ref())),
        "\"SIGTERM\"",
    );
    key(
        &mut out,
        "How long the server may take to stop before it is killed.",
        "stop_timeout",
        file.run.stop_timeout.as_ref().map(|s| value(s.get_ref())),
        "\"5s\"",
    );
    key(
        &mut out,
        "Listening sockets reload holds and hands to each server (fds 3.., LISTEN_FDS).",
        "listen",
        file.run.listen.as_ref().map(|l| list(l.get_ref())),
        "[\"127.0.0.1:3000\"]",
    );
    key(
        &mut out,
        "When a new server is ready: \"none\", \"notify\" (READY=1) or an http:// URL.",
        "ready",
        file.run.ready.as_ref().map(|s| value(s.get_ref())),
        "\"none\"",
    );
    key(
        &mut out,
        "How long a new server may take to become ready.",
        "ready_timeout",
        file.run.ready_timeout.as_ref().map(|s| value(s.get_ref())),
        "\"30s\"",
    );
    key(
        &mut out,
        "Start the new server before stopping the old one (zero downtime with listen).",
        "overlap",
        file.run.overlap.map(|b| b.to_string()),
        "false",
    );
    key(
        &mut out,
        "Stop the server when a build fails (by default it keeps serving).",
        "stop_on_build_error",
        file.run.stop_on_build_error.map(|b| b.to_string()),
        "false",
    );
    key(
        &mut out,
        "Start the server again when it exits by itself, after restart_delay.",
        "restart_on_exit",
        file.run.restart_on_exit.map(|b| b.to_string()),
        "false",
    );
    key(
        &mut out,
        "Delay before such a restart.",
        "restart_delay",
        file.run.restart_delay.as_ref().map(|s| value(s.get_ref())),
        "\"500ms\"",
    );
    key(
        &mut out,
        "Shell commands run after the server is stopped for good.",
        "post",
        file.run.post.as_deref().map(list),
        "[]",
    );

    out.push_str("[output]\n");
    key(
        &mut out,
        "Clear the screen before each build.",
        "clear",
        file.output.clear.map(|b| b.to_string()),
        "false",
    );
    key(
        &mut out,
        "Prefix status lines with the time.",
        "timestamps",
        file.output.timestamps.map(|b| b.to_string()),
        "false",
    );
    key(
        &mut out,
        "Print errors only.",
        "quiet",
        file.output.quiet.map(|b| b.to_string()),
        "false",
    );
    key(
        &mut out,
        "\"human\" status lines, or \"json\" events for editors and scripts.",
        "format",
        file.output.format.as_ref().map(|s| value(s.get_ref())),
        "\"human\"",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_file_parses_back_to_the_same_settings() {
        let source = Source {
            path: ".air.toml".into(),
            text: "[build]\ncmd = \"go build -o ./tmp/main .\"\ndelay = 200\npre_cmd = [\"echo 'hi'\"]\n".into(),
        };
        let (file, _) = air::parse(&source).unwrap();
        let text = render(&file, "test");
        let back: FileConfig = Source {
            path: "reload.toml".into(),
            text: text.clone(),
        }
        .parse()
        .unwrap_or_else(|err| panic!("{err}\n{text}"));
        assert_eq!(back.build.cmd.as_deref(), Some("go build -o ./tmp/main ."));
        assert_eq!(back.watch.debounce.unwrap().into_inner(), "200ms");
        assert_eq!(back.build.pre.unwrap(), ["echo 'hi'"]);
        assert!(
            text.contains("# listen = "),
            "unset keys are shown commented out"
        );
    }
}
