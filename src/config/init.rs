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

use super::file::Source;
use super::flags::{Given, ProjectFlags};
use super::keys::{self, FileConfig, KEYS, OneOrMany, RunCmd, unplaced};
use super::{CONFIG_FILE, Program, air, binary_choice_refused, detect, empty_program, usage};

/// `reload init [--force] [--from-air] [PROJECT FLAGS] [-- PROGRAM]`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing reload.toml.
    #[arg(long)]
    pub force: bool,
    /// Convert .air.toml (or air.toml) instead of detecting the project (the default when one
    /// exists).
    #[arg(long = "from-air")]
    pub from_air: bool,
    #[command(flatten)]
    pub project: ProjectFlags,
}

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
    KEYS.iter().any(|key| flags.has(key)) || !flags.program.is_empty()
}

/// Write the flags down over what the file says, layered as `config::resolve` layers them over
/// a file: `-w`, `-e`, `-b` and the program replace, `-i` adds.
fn apply_flags(dir: &Path, flags: &ProjectFlags, file: &mut FileConfig) -> Result<()> {
    let paths = flags.paths(&keys::watch::paths);
    if let Some(missing) = paths.iter().find(|path| !dir.join(path).exists()) {
        return Err(usage(format!(
            "--watch `{}` does not exist (looked in {})",
            missing.display(),
            dir.display()
        )));
    }
    if !paths.is_empty() {
        file.watch.paths = Some(unplaced(paths));
    }
    let ext: Vec<String> = (flags.texts(&keys::watch::ext).iter())
        .map(|e| e.trim().trim_start_matches('.').to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if !ext.is_empty() {
        file.watch.ext = Some(unplaced(OneOrMany::Many(ext)));
    }
    let ignore = flags.texts(&keys::watch::ignore);
    if !ignore.is_empty() {
        let written = file
            .watch
            .ignore
            .get_or_insert_with(|| unplaced(Vec::new()));
        written.get_mut().extend(ignore.into_iter().map(unplaced));
    }
    if let Some(build) = flags.text(&keys::build::cmd) {
        file.build.cmd = Some(unplaced(build.trim().to_owned()));
    }
    if let Some(program) = program_flag(flags)? {
        file.run.cmd = Some(unplaced(RunCmd::Argv(program)));
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
    if flags.chooses_binary() && (flags.has(&keys::build::cmd) || program.is_some() || !cargo) {
        return Err(binary_choice_refused(
            "this is not one, or the build or the server is given explicitly",
        ));
    }
    let mut file = FileConfig::default();
    let globs = |globs: Vec<String>| {
        let globs: Vec<_> = globs.into_iter().map(unplaced).collect();
        (!globs.is_empty()).then(|| unplaced(globs))
    };
    if let Some(project) = &project {
        let defaults = project.watch_defaults();
        file.watch.ext = (!defaults.extensions.is_empty())
            .then(|| unplaced(OneOrMany::Many(defaults.extensions)));
        file.watch.include = globs(defaults.include);
        file.watch.ignore = globs(defaults.ignore);
        let paths = project.watch_paths(dir, flags.package.as_deref(), flags.bin.as_deref());
        if paths != [dir] {
            let relative = paths
                .iter()
                .map(|path| path.strip_prefix(dir).map_or(path.clone(), Path::to_owned))
                .collect();
            file.watch.paths = Some(unplaced(relative));
        }
    }
    let what = match (flags.has(&keys::build::cmd), &program, &project) {
        (true, _, _) | (false, Some(_), None) => "from the flags given".to_owned(),
        (false, Some(_), Some(project)) => {
            // As `config::resolve` does for a program given without a build.
            let build = project.build_for_program();
            file.build.cmd = build.as_ref().map(|b| unplaced(b.to_string()));
            "detected the project; the server from the flags given".to_owned()
        }
        (false, None, Some(project)) => {
            let plan = project.plan(dir, flags.bin.as_deref(), flags.package.as_deref())?;
            let build = plan
                .build_line
                .or_else(|| plan.build.as_ref().map(ToString::to_string));
            file.build.cmd = build.map(unplaced);
            let command = match (plan.program, plan.cargo_binary) {
                // reload.toml has no "the executable cargo reports": it names the binary's path.
                (Program::CargoArtifact, Some(path)) => {
                    let relative = path
                        .strip_prefix(dir)
                        .map_or(path.clone(), |p| Path::new(".").join(p));
                    RunCmd::Argv(vec![relative.display().to_string()])
                }
                (Program::CargoArtifact, None) => {
                    return Err(anyhow!("a Cargo plan without a binary"));
                }
                (Program::Argv(argv), _) => RunCmd::Argv(argv),
                (Program::Shell(line), _) => RunCmd::Shell(line),
            };
            file.run.cmd = Some(unplaced(command));
            format!("detected: {}", plan.description)
        }
        (false, None, None) => {
            return Err(usage(format!(
                "cannot tell what kind of project {} is (no Cargo.toml, go.mod, Python files, \
                 package.json or Makefile with a run target)\n  help: say what to build and \
                 run, as you would to reload: `reload init -e sh -- ./server.sh`, or `reload \
                 init --build CMD -- PROGRAM`",
                dir.display()
            )));
        }
    };
    apply_flags(dir, flags, &mut file)?;
    Ok((file, what))
}

/// The file: a header, then every key of the table, each under its `[section]`, with its doc
/// line above it; set as `file` sets it, or commented out with its default (or an example).
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
    let mut section = None;
    for key in KEYS {
        if key.table != section {
            section = key.table;
            let _ = writeln!(out, "[{}]", section.unwrap_or_default());
        }
        let _ = writeln!(out, "# {}", key.doc);
        let _ = match (key.written)(file) {
            Some(value) => writeln!(out, "{} = {value}\n", key.name),
            None => writeln!(out, "# {} = {}\n", key.name, key.shown_unset()),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::keys::Key;
    use super::*;

    fn parse(text: &str) -> FileConfig {
        Source::new("reload.toml", text)
            .parse()
            .unwrap_or_else(|err| panic!("{err}\n{text}"))
    }

    /// `reload init` run in a directory holding `files`: the file written and what it says it
    /// was made from.
    fn init(files: &[(&str, &str)], from_air: bool, project: ProjectFlags) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let init = InitArgs {
            force: false,
            from_air,
            project,
        };
        let (path, what) = write(dir.path(), &init).unwrap();
        (std::fs::read_to_string(path).unwrap(), what)
    }

    /// What `text` writes under `[section]`, to the end of the file.
    fn after<'a>(text: &'a str, section: &str) -> &'a str {
        let header = format!("\n[{section}]\n");
        let Some((_, rest)) = text.split_once(&header) else {
            panic!("no [{section}] section in\n{text}");
        };
        rest
    }

    #[test]
    fn a_rendered_file_parses_back_to_the_same_settings() {
        let source = Source::new(
            ".air.toml",
            "[build]\ncmd = \"go build -o ./tmp/main .\"\ndelay = 200\npre_cmd = [\"echo 'hi'\"]\n",
        );
        let (file, _) = air::parse(&source).unwrap();
        let text = render(&file, "test");
        let back = parse(&text);
        assert_eq!(
            back.build.cmd.unwrap().into_inner(),
            "go build -o ./tmp/main ."
        );
        assert_eq!(back.watch.debounce.unwrap().into_inner(), "200ms");
        assert_eq!(back.build.pre.unwrap().into_inner(), ["echo 'hi'"]);
        assert!(
            text.contains("# listen = "),
            "unset keys are shown commented out"
        );
    }

    #[test]
    fn init_writes_the_proxy_section_commented_out() {
        let mut project = ProjectFlags {
            program: vec!["./server".into()],
            ..ProjectFlags::default()
        };
        project.keys.set(&keys::build::cmd, &["make"]);
        let (text, _) = init(&[], false, project);
        assert_eq!(
            after(&text, "proxy"),
            "# Turns the proxy on: where the browser connects, a port (on 127.0.0.1) or \
             \"HOST:PORT\".\n# port = 8090\n\n\
             # The port your server listens on, given to it as PORT (optional: else reload \
             picks one).\n# app_port = 8080\n\n\
             # How long a request waits for a ready server before it gets a 504.\n\
             # hold_timeout = \"30s\"\n\n\
             # Put the live-reload script into HTML pages.\n# inject = true\n\n\
             # Other names the proxy answers than localhost and IP addresses (\"*.NAME\": all \
             under it).\n# allowed_hosts = [\"myapp.test\", \"*.myapp.test\"]\n\n"
        );
    }

    #[test]
    fn init_in_a_flask_project_writes_flask_run_and_the_templates_down() {
        let app = "from flask import Flask\napp = Flask(__name__)\n";
        let (text, what) = init(&[("app.py", app)], false, ProjectFlags::default());
        assert!(what.contains("Flask app (app.py)"), "{what}");
        assert!(
            after(&text, "run").contains(
                "\ncmd = \"exec python3 -m flask run --debug --no-reload --host 127.0.0.1 \
                 --port ${PORT:-5000}\"\n"
            ),
            "{text}"
        );
        assert!(text.contains("\ninclude = [\"**/templates/**\""), "{text}");
        let build = after(&text, "build");
        assert!(build.contains("\n# cmd = \"\"\n"), "no build step:\n{text}");
    }

    #[test]
    fn airs_enabled_proxy_is_written_in() {
        let air = "[proxy]\nenabled = true\nproxy_port = 8090\napp_port = 8080\n";
        let (text, what) = init(&[(".air.toml", air)], true, ProjectFlags::default());
        assert!(!what.contains("not supported"), "{what}");
        let section = after(&text, "proxy");
        for line in ["port = 8090", "app_port = 8080", "# hold_timeout = \"30s\""] {
            assert!(section.contains(&format!("\n{line}\n")), "{text}");
        }
    }

    /// `name = value` (or `# name = value`) under the key's section, right below its doc line.
    #[track_caller]
    fn assert_rendered(text: &str, key: &Key, line: &str) {
        let mut section = None;
        let mut lines = Vec::new();
        for line in text.lines() {
            match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                Some(table) => section = Some(table),
                None => lines.push((section, line)),
            }
        }
        let found = lines.windows(2).any(|pair| {
            pair[0] == (key.table, &format!("# {}", key.doc)) && pair[1] == (key.table, line)
        });
        assert!(found, "no `{line}` for {} in\n{text}", key.label());
    }

    #[test]
    fn every_key_of_the_table_is_rendered_under_its_section_and_doc_line() {
        let unset = render(&FileConfig::default(), "test");
        for key in KEYS {
            assert_rendered(
                &unset,
                key,
                &format!("# {} = {}", key.name, key.shown_unset()),
            );
        }

        // Every key set to what init shows for it (each line uncommented), rendered, and read
        // back the same.
        let written = KEYS.iter().fold(unset.clone(), |text, key| {
            let line = format!("{} = {}\n", key.name, key.shown_unset());
            text.replace(&format!("# {line}"), &line)
        });
        let set = render(&parse(&written), "test");
        for key in KEYS {
            assert_rendered(&set, key, &format!("{} = {}", key.name, key.shown_unset()));
        }
        assert_eq!(render(&parse(&set), "test"), set);
    }
}
