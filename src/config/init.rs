//! `reload init`: write a commented reload.toml for the project in the current directory, from
//! what detection finds or from its .air.toml (with `--from-air`, or whenever there is one: a
//! reload.toml would otherwise shadow it), with the project flags given to init written over it,
//! so that a bare `reload` then does what `reload FLAGS` did. Every key reload knows appears,
//! set where the project needs it and commented out with its default otherwise, so the file
//! doubles as the reference.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use super::detect;
use super::file::{FileConfig, OneOrMany, PollValue, RunCmd, Source};
use super::{CONFIG_FILE, air, binary_choice_refused, empty_program, usage};
use crate::cli::{InitArgs, ProjectFlags};

/// The config files of air that `reload` reads, in the order it looks for them.
const AIR_FILES: [&str; 2] = [".air.toml", "air.toml"];

/// What to do about a reload.toml that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    Refuse,
    Overwrite,
}

/// Write `reload.toml` in `dir`. Returns its path and a description of what it was made from.
pub fn write(dir: &Path, init: &InitArgs) -> Result<(PathBuf, String)> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot open `{}`", dir.display()))?;
    let target = dir.join(CONFIG_FILE);
    let existing = if init.force {
        Existing::Overwrite
    } else {
        Existing::Refuse
    };
    check_target(&target, existing)?;
    let air_file = AIR_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file());
    let (file, what) = match air_file {
        // Written next to it, reload.toml would silently take precedence over the .air.toml:
        // so convert it, as --from-air does, and say so.
        Some(path) => from_air(&dir, &path, init)?,
        None if init.from_air => {
            return Err(usage(format!(
                "--from-air: no .air.toml or air.toml in {}",
                dir.display()
            )));
        }
        None => from_project(&dir, &init.project)?,
    };
    let text = render(&file, &what);
    write_file(&target, &text, existing)?;
    Ok((target, what))
}

/// The .air.toml at `path` as a reload.toml, with the flags written over it.
fn from_air(dir: &Path, path: &Path, init: &InitArgs) -> Result<(FileConfig, String)> {
    if init.project.chooses_binary() {
        return Err(binary_choice_refused(&format!(
            "{} says what to build",
            path.display()
        )));
    }
    let source = Source::read(path)?;
    let (mut file, warnings) = air::parse(&source)?;
    apply_flags(dir, &init.project, &mut file)?;
    let mut what = format!("converted from {}", path.display());
    if !init.from_air {
        what.push_str(" as --from-air does, since it is there");
    }
    if has_flags(&init.project) {
        what.push_str(", with the flags given");
    }
    for warning in warnings {
        what.push_str(&format!("\n  {warning}"));
    }
    Ok((file, what))
}

/// Refuse a symbolic link whatever `existing` says: writing through it would put the file
/// wherever it points, outside the project as like as not.
fn check_target(target: &Path, existing: Existing) -> Result<()> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let points_to = std::fs::read_link(target).map_or_else(
                |_| "somewhere unreadable".to_owned(),
                |p| p.display().to_string(),
            );
            Err(usage(format!(
                "{} is a symbolic link (to {points_to}): reload init does not write through \
                 links, even with --force\n  help: remove the link and run reload init again, \
                 or edit the file it points to yourself",
                target.display()
            )))
        }
        Ok(_) if existing == Existing::Refuse => Err(already_exists(target)),
        _ => Ok(()),
    }
}

/// Write `text` to `target` without ever following a symbolic link there, even one created
/// since [`check_target`] looked: a new file is created exclusively (`O_EXCL` does not follow
/// links), and an overwrite goes to a temporary file in the same directory renamed over the
/// target (`rename` replaces a link itself, not what it points to).
fn write_file(target: &Path, text: &str, existing: Existing) -> Result<()> {
    let create = |path: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
    };
    match existing {
        Existing::Refuse => create(target).map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => already_exists(target),
            _ => anyhow!(err).context(format!("cannot write {}", target.display())),
        }),
        Existing::Overwrite => {
            let temporary =
                target.with_file_name(format!(".{CONFIG_FILE}.{}.tmp", std::process::id()));
            let written = create(&temporary).and_then(|()| std::fs::rename(&temporary, target));
            if written.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            written.with_context(|| format!("cannot write {}", target.display()))
        }
    }
}

fn already_exists(target: &Path) -> anyhow::Error {
    usage(format!(
        "{} already exists; pass --force to overwrite it",
        target.display()
    ))
}

fn has_flags(flags: &ProjectFlags) -> bool {
    !(flags.watch.is_empty()
        && flags.ext.is_empty()
        && flags.ignore.is_empty()
        && flags.build.is_none()
        && flags.program.is_empty())
}

/// Write the flags down over what the file says, layered as `config::resolve` layers them over
/// a file: `-w`, `-e`, `-b` and the program replace, `-i` adds.
fn apply_flags(dir: &Path, flags: &ProjectFlags, file: &mut FileConfig) -> Result<()> {
    if !flags.watch.is_empty() {
        for path in &flags.watch {
            if !dir.join(path).exists() {
                return Err(usage(format!(
                    "--watch `{}` does not exist (looked in {})",
                    path.display(),
                    dir.display()
                )));
            }
        }
        file.watch.paths = Some(toml::Spanned::new(0..0, flags.watch.clone()));
    }
    let ext: Vec<String> = flags
        .ext
        .iter()
        .map(|e| e.trim().trim_start_matches('.').to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if !ext.is_empty() {
        file.watch.ext = Some(OneOrMany::Many(ext));
    }
    if !flags.ignore.is_empty() {
        file.watch
            .ignore
            .get_or_insert_with(Vec::new)
            .extend(flags.ignore.iter().cloned());
    }
    if let Some(build) = &flags.build {
        file.build.cmd = Some(build.trim().to_owned());
    }
    if let Some(program) = program_flag(flags)? {
        file.run.cmd = Some(toml::Spanned::new(0..0, RunCmd::Argv(program)));
    }
    Ok(())
}

fn program_flag(flags: &ProjectFlags) -> Result<Option<Vec<String>>> {
    match flags.program.first() {
        None => Ok(None),
        Some(first) if first.trim().is_empty() => Err(empty_program()),
        Some(_) => Ok(Some(flags.program.clone())),
    }
}

/// A reload.toml equivalent to what `reload FLAGS` would do in `dir` with no config file:
/// zero-config detection where the flags leave something open, the flags where they say it.
fn from_project(dir: &Path, flags: &ProjectFlags) -> Result<(FileConfig, String)> {
    let project = detect::detect(dir);
    let program = program_flag(flags)?;
    let cargo = matches!(project, Some(detect::Project::Cargo(_)));
    if flags.chooses_binary() && (flags.build.is_some() || program.is_some() || !cargo) {
        return Err(binary_choice_refused(
            "this is not one, or the build or the server is given explicitly",
        ));
    }
    let mut file = FileConfig::default();
    if let Some(project) = &project {
        let defaults = project.watch_defaults();
        file.watch.ext =
            (!defaults.extensions.is_empty()).then_some(OneOrMany::Many(defaults.extensions));
        file.watch.include = (!defaults.include.is_empty()).then_some(defaults.include);
        file.watch.ignore = (!defaults.ignore.is_empty()).then_some(defaults.ignore);
        let paths = project.watch_paths(dir, flags.package.as_deref(), flags.bin.as_deref());
        if paths != [dir] {
            let relative = paths
                .iter()
                .map(|path| path.strip_prefix(dir).map_or(path.clone(), Path::to_owned))
                .collect();
            file.watch.paths = Some(toml::Spanned::new(0..0, relative));
        }
    }
    let what = match (&flags.build, &program, &project) {
        (Some(_), _, _) | (None, Some(_), None) => "from the flags given".to_owned(),
        (None, Some(_), Some(project)) => {
            // As `config::resolve` does for a program given without a build.
            file.build.cmd = project
                .build_for_program()
                .as_ref()
                .map(crate::build::describe);
            "detected the project; the server from the flags given".to_owned()
        }
        (None, None, Some(project)) => {
            let plan = project.plan(dir, flags.bin.as_deref(), flags.package.as_deref())?;
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
            format!("detected: {}", plan.description)
        }
        (None, None, None) => {
            return Err(usage(format!(
                "cannot tell what kind of project {} is (no Cargo.toml, go.mod, package.json or \
                 Makefile with a run target)\n  help: say what to build and run, as you would \
                 to reload: `reload init -e py -- python3 app.py`, or `reload init --build CMD \
                 -- PROGRAM`",
                dir.display()
            )));
        }
    };
    apply_flags(dir, flags, &mut file)?;
    Ok((file, what))
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
        "Directories (and files) watched, recursively.",
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
        "When a new server is ready: \"none\", \"notify\" (READY=1), \"tcp:PORT\" or an http:// URL.",
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
