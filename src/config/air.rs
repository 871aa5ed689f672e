//! `.air.toml`, read as air reads it, so that a Go project moves over unchanged: one more source
//! of reload's own [`FileConfig`], each value keeping its span in the .air.toml, so that a
//! message about it names air's key at air's line (`Source::label`). A key reload cannot honour
//! becomes a one-line warning naming it, never a silent drop. Where the file is silent, air's
//! defaults apply.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::file::Source;
use super::keys::{FileConfig, OneOrMany, PollValue, PortValue, RunCmd, unplaced};
use super::{ConfigError, GO_BINARY_DIR};

/// Declares air's tables, each a struct of the keys reload reads (air's own defaults fill in
/// what the file leaves out) and [`KEYS`](AirFile::KEYS), their names, by which a key
/// outside them is found and warned about.
macro_rules! air_tables {
    ($( $(#[$doc:meta])* $Table:ident { $($key:ident: $ty:ty,)* } )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        struct $Table { $($key: $ty,)* }

        impl $Table {
            const KEYS: &[&str] = &[$(stringify!($key)),*];
        }
    )*};
}

air_tables! {
    AirFile {
        root: Option<Spanned<String>>,
        tmp_dir: Option<Spanned<String>>,
        testdata_dir: Option<Spanned<String>>,
        build: AirBuild,
        log: AirLog,
        misc: AirMisc,
        screen: AirScreen,
        proxy: AirProxy,
    }
    AirBuild {
        cmd: Option<String>,
        bin: Option<String>,
        full_bin: Option<String>,
        args_bin: Option<Vec<String>>,
        include_ext: Option<Vec<String>>,
        exclude_dir: Option<Vec<Spanned<String>>>,
        include_dir: Option<Spanned<Vec<PathBuf>>>,
        include_file: Option<Vec<Spanned<String>>>,
        exclude_file: Option<Vec<Spanned<String>>>,
        exclude_regex: Option<Vec<Spanned<String>>>,
        // Read only so that a value of the wrong type is refused as air refuses it; set to
        // anything but their harmless defaults, they are warned about.
        exclude_unchanged: Option<bool>,
        follow_symlink: Option<bool>,
        delay: Option<Spanned<u64>>,
        stop_on_error: Option<bool>,
        send_interrupt: Option<bool>,
        kill_delay: Option<Spanned<GoDuration>>,
        pre_cmd: Option<Vec<String>>,
        post_cmd: Option<Vec<String>>,
        rerun: Option<bool>,
        rerun_delay: Option<Spanned<u64>>,
        poll: Option<Spanned<bool>>,
        poll_interval: Option<Spanned<u64>>,
    }
    AirLog {
        time: Option<bool>,
        silent: Option<bool>,
    }
    AirMisc {
        clean_on_exit: Option<bool>,
    }
    AirScreen {
        clear_on_rebuild: Option<bool>,
    }
    /// air's proxy: on only with `enabled = true` (air's default is off), ports as integers,
    /// `app_start_timeout` in milliseconds.
    AirProxy {
        enabled: Option<Spanned<bool>>,
        proxy_port: Option<Spanned<i64>>,
        app_port: Option<Spanned<i64>>,
        app_start_timeout: Option<Spanned<u64>>,
    }
}

/// Go's time.Duration in TOML: a string like "500ms", or an integer of nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Text(String),
    Nanoseconds(u64),
}

/// The keys reload reads, by table ("" is the top level).
const TABLES: [(&str, &[&str]); 6] = [
    ("", AirFile::KEYS),
    ("build", AirBuild::KEYS),
    ("log", AirLog::KEYS),
    ("misc", AirMisc::KEYS),
    ("screen", AirScreen::KEYS),
    ("proxy", AirProxy::KEYS),
];

/// air keys reload does not act on, and the value at which ignoring them changes nothing.
const HARMLESS_DEFAULTS: &[(&str, &str)] = &[
    ("build.exclude_unchanged", "false"),
    ("build.follow_symlink", "false"),
    ("build.log", "*"),
    ("log.main_only", "false"),
    ("screen.keep_scroll", "true"),
];

/// Read an air config into reload's terms. Returns the config and one warning per key that
/// reload does not act on.
pub(crate) fn parse(source: &Source) -> Result<(FileConfig, Vec<String>), ConfigError> {
    let air: AirFile = source.parse()?;
    if let Some(enabled) = &air.proxy.enabled
        && *enabled.get_ref()
        && air.proxy.proxy_port.is_none()
    {
        let mut err = source.error_at(
            enabled.span(),
            "[proxy] enabled = true, but no proxy_port says where the browser connects".to_owned(),
        );
        err.help = Some("add proxy_port = 8090 (and app_port, where your server listens)".into());
        return Err(err);
    }
    let table: toml::Table = source.parse()?;
    let warnings = unsupported_keys(&table)
        .into_iter()
        .map(|key| {
            format!(
                "{}: `{key}` is not supported by reload and is ignored",
                source.path.display()
            )
        })
        .collect();
    Ok((to_reload(air), warnings))
}

fn unsupported_keys(table: &toml::Table) -> Vec<String> {
    let read = |section: &str, key: &str| {
        TABLES
            .iter()
            .any(|(s, keys)| *s == section && keys.contains(&key))
    };
    let mut unsupported = Vec::new();
    for (key, value) in table {
        match value {
            // Colours are cosmetic: reload has its own, so one line covers the whole table.
            toml::Value::Table(_) if key == "color" => unsupported.push("[color]".to_owned()),
            toml::Value::Table(inner) if TABLES.iter().any(|(s, _)| s == key) => {
                for (inner_key, inner_value) in inner {
                    let path = format!("{key}.{inner_key}");
                    let warned = match HARMLESS_DEFAULTS.iter().find(|(p, _)| *p == path) {
                        Some((_, default)) => {
                            *default != "*" && inner_value.to_string() != *default
                        }
                        None => !read(key, inner_key),
                    };
                    if warned {
                        unsupported.push(path);
                    }
                }
            }
            _ if read("", key) => {}
            _ => unsupported.push(key.clone()),
        }
    }
    unsupported
}

/// A value made from one the file writes, at its place.
fn placed<T, U>(written: Spanned<T>, make: impl FnOnce(T) -> U) -> Spanned<U> {
    let span = written.span();
    Spanned::new(span, make(written.into_inner()))
}

fn to_reload(mut air: AirFile) -> FileConfig {
    let tmp_dir = air
        .tmp_dir
        .take()
        .unwrap_or_else(|| unplaced(GO_BINARY_DIR.to_owned()));
    let mut config = FileConfig {
        root: air.root.take().map(|root| placed(root, PathBuf::from)),
        ..FileConfig::default()
    };
    if air.misc.clean_on_exit == Some(true) {
        let path = placed(tmp_dir.clone(), PathBuf::from);
        config.build.clean_on_exit = Some(unplaced(vec![path]));
    }
    watch(&mut air, tmp_dir, &mut config);
    build_and_run(air.build, &mut config);
    // The proxy only when enabled: air writes its ports into every generated file, off.
    let port = |port: Spanned<i64>| placed(port, PortValue::Number);
    if air.proxy.enabled.is_some_and(Spanned::into_inner) {
        config.proxy.port = air.proxy.proxy_port.map(port);
        config.proxy.app_port = air.proxy.app_port.map(port);
    }
    // How long air waits for the app behind its proxy: reload's ready timeout.
    let start_timeout = air.proxy.app_start_timeout;
    config.run.ready_timeout = start_timeout
        .filter(|ms| *ms.get_ref() > 0)
        .map(milliseconds);
    config.output.clear = air.screen.clear_on_rebuild.map(unplaced);
    config.output.timestamps = air.log.time.map(unplaced);
    config.output.quiet = air.log.silent.map(unplaced);
    config
}

/// What to watch: air's directories, extensions and exclusions, anchored at the root.
fn watch(air: &mut AirFile, tmp_dir: Spanned<String>, config: &mut FileConfig) {
    let build = &mut air.build;
    let testdata_dir = air
        .testdata_dir
        .take()
        .unwrap_or_else(|| unplaced("testdata".to_owned()));
    let anchor = |globs: Vec<Spanned<String>>| -> Vec<Spanned<String>> {
        globs
            .into_iter()
            .map(|glob| placed(glob, |g| anchored(&g)))
            .collect()
    };
    config.watch.paths = build
        .include_dir
        .take()
        .filter(|dirs| !dirs.get_ref().is_empty());
    let extensions = build.include_ext.take();
    let extensions = extensions.unwrap_or_else(|| strings(&["go", "tpl", "tmpl", "html"]));
    config.watch.ext = Some(unplaced(OneOrMany::Many(extensions)));
    config.watch.include = build
        .include_file
        .take()
        .map(|files| unplaced(anchor(files)));
    let default_dirs = || strings(&["assets", "tmp", "vendor", "testdata"]);
    let mut ignore = build
        .exclude_dir
        .take()
        .unwrap_or_else(|| default_dirs().into_iter().map(unplaced).collect());
    ignore.extend([tmp_dir, testdata_dir]);
    ignore.extend(build.exclude_file.take().unwrap_or_default());
    let mut ignore = anchor(ignore);
    let mut seen = std::collections::HashSet::new();
    ignore.retain(|glob| seen.insert(glob.get_ref().clone()));
    config.watch.ignore = Some(unplaced(ignore));
    let regexes = build.exclude_regex.take();
    let regexes = regexes.unwrap_or_else(|| vec![unplaced("_test.go".to_owned())]);
    config.watch.ignore_regex = Some(unplaced(regexes));
    config.watch.debounce = build.delay.take().map(milliseconds);
    config.watch.poll = match (build.poll.take(), build.poll_interval.take()) {
        (Some(poll), interval) if *poll.get_ref() => Some(placed(poll, |_| {
            PollValue::Interval(match interval.filter(|i| *i.get_ref() > 0) {
                Some(interval) => format!("{}ms", interval.get_ref()),
                None => "500ms".to_owned(),
            })
        })),
        _ => None,
    };
}

/// How to build, run and stop: air runs `bin args_bin...` (or `full_bin`) through the shell.
fn build_and_run(build: AirBuild, config: &mut FileConfig) {
    let cmd = build
        .cmd
        .unwrap_or_else(|| format!("go build -o ./{GO_BINARY_DIR}/main ."));
    config.build.cmd = Some(unplaced(cmd));
    config.build.pre = build.pre_cmd.filter(|cmds| !cmds.is_empty()).map(unplaced);
    let args = build.args_bin.unwrap_or_default();
    let command = if let Some(full) = build.full_bin.filter(|full| !full.trim().is_empty()) {
        RunCmd::Shell(join_command(&full, &args))
    } else {
        let bin = build
            .bin
            .unwrap_or_else(|| format!("./{GO_BINARY_DIR}/main"));
        if bin.contains(|c: char| c.is_whitespace() || "$&|;<>()`'\"*?".contains(c)) {
            RunCmd::Shell(join_command(&bin, &args))
        } else {
            RunCmd::Argv(std::iter::once(bin).chain(args).collect())
        }
    };
    config.run.cmd = Some(unplaced(command));
    if build.send_interrupt == Some(true) {
        config.run.stop_signal = Some(unplaced("SIGINT".to_owned()));
    }
    config.run.stop_timeout = build.kill_delay.and_then(|delay| {
        let span = delay.span();
        match delay.into_inner() {
            GoDuration::Text(text) if !matches!(text.trim(), "0" | "0s" | "") => {
                Some(Spanned::new(span, text))
            }
            GoDuration::Nanoseconds(ns) if ns > 0 => {
                Some(Spanned::new(span, format!("{}ms", ns.div_ceil(1_000_000))))
            }
            _ => None,
        }
    });
    config.run.post = build.post_cmd.filter(|cmds| !cmds.is_empty()).map(unplaced);
    config.run.stop_on_build_error = build.stop_on_error.map(unplaced);
    config.run.restart_on_exit = build.rerun.map(unplaced);
    config.run.restart_delay = build.rerun_delay.map(milliseconds);
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// air's paths are relative to the root, not names at any depth.
fn anchored(path: &str) -> String {
    format!("/{}", path.trim_start_matches("./").trim_start_matches('/'))
}

fn milliseconds(ms: Spanned<u64>) -> Spanned<String> {
    placed(ms, |ms| format!("{ms}ms"))
}

fn join_command(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::keys::{self, Key};
    use super::*;

    fn read(text: &str) -> (FileConfig, Vec<String>) {
        parse(&Source::new(".air.toml", text)).unwrap()
    }

    fn refused(text: &str) -> String {
        parse(&Source::new(".air.toml", text))
            .unwrap_err()
            .to_string()
    }

    /// The value `config` gives `key`, as reload.toml would write it.
    fn written(config: &FileConfig, key: &Key) -> String {
        (key.written)(config).unwrap_or_else(|| format!("{} unset", key.label()))
    }

    #[test]
    fn an_empty_air_file_means_airs_defaults() {
        let (config, warnings) = read("");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            written(&config, &keys::build::cmd),
            r#""go build -o ./tmp/main .""#
        );
        assert_eq!(written(&config, &keys::run::cmd), r#"["./tmp/main"]"#);
        assert_eq!(
            written(&config, &keys::watch::ext),
            r#"["go", "tpl", "tmpl", "html"]"#
        );
        let ignore = written(&config, &keys::watch::ignore);
        for dir in ["/assets", "/tmp", "/vendor", "/testdata"] {
            assert!(ignore.contains(&format!("\"{dir}\"")), "{dir} in {ignore}");
        }
        assert_eq!(
            written(&config, &keys::watch::ignore_regex),
            r#"["_test.go"]"#
        );
    }

    #[test]
    fn air_keys_map_to_reload_settings() {
        let (config, warnings) = read(
            "root = \"app\"\ntmp_dir = \"build\"\n[build]\ncmd = \"make\"\nbin = \"build/srv\"\n\
             args_bin = [\"-port\", \"3000\"]\ndelay = 200\nsend_interrupt = true\n\
             kill_delay = \"2s\"\npre_cmd = [\"echo pre\"]\npost_cmd = [\"echo post\"]\n\
             rerun = true\nrerun_delay = 100\npoll = true\npoll_interval = 250\n\
             stop_on_error = true\n[misc]\nclean_on_exit = true\n[screen]\n\
             clear_on_rebuild = true\n[log]\ntime = true\nsilent = true\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        for (key, value) in [
            (&keys::root, r#""app""#),
            (&keys::run::cmd, r#"["build/srv", "-port", "3000"]"#),
            (&keys::watch::debounce, r#""200ms""#),
            (&keys::run::stop_signal, r#""SIGINT""#),
            (&keys::run::stop_timeout, r#""2s""#),
            (&keys::build::pre, r#"["echo pre"]"#),
            (&keys::run::post, r#"["echo post"]"#),
            (&keys::run::restart_on_exit, "true"),
            (&keys::run::restart_delay, r#""100ms""#),
            (&keys::watch::poll, r#""250ms""#),
            (&keys::run::stop_on_build_error, "true"),
            (&keys::build::clean_on_exit, r#"["build"]"#),
            (&keys::output::clear, "true"),
            (&keys::output::timestamps, "true"),
            (&keys::output::quiet, "true"),
        ] {
            assert_eq!(written(&config, key), value, "{}", key.label());
        }
        assert!(written(&config, &keys::watch::ignore).contains(r#""/build""#));
    }

    #[test]
    fn a_full_bin_runs_through_the_shell() {
        let (config, _) = read("[build]\nfull_bin = \"APP_ENV=dev ./tmp/main\"\n");
        assert_eq!(
            written(&config, &keys::run::cmd),
            r#""APP_ENV=dev ./tmp/main""#
        );
    }

    #[test]
    fn unsupported_keys_are_named_and_harmless_defaults_are_not() {
        // [proxy] was warned about until reload had a proxy: its four keys are honoured now,
        // and only a key air's proxy does not have is still named.
        let (_, warnings) = read(
            "[build]\nexclude_unchanged = true\nfollow_symlink = false\n[color]\nmain = \"x\"\n\
             [proxy]\nenabled = true\nproxy_port = 8090\napp_port = 8080\n\
             app_start_timeout = 5000\nno_such = 1\n[log]\nmain_only = false\n",
        );
        let joined = warnings.join("\n");
        assert!(joined.contains("`build.exclude_unchanged`"), "{joined}");
        assert!(joined.contains("`[color]`"), "{joined}");
        assert!(joined.contains("`proxy.no_such`"), "{joined}");
        assert!(!joined.contains("follow_symlink"), "{joined}");
        assert!(!joined.contains("main_only"), "{joined}");
        assert_eq!(warnings.len(), 3, "{joined}");
    }

    #[test]
    fn airs_proxy_when_enabled_is_reloads_proxy() {
        let text = "[proxy]\nenabled = true\nproxy_port = 8090\napp_port = 8080\n\
                    app_start_timeout = 2500\n";
        let (config, warnings) = read(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        let port = config
            .proxy
            .port
            .as_ref()
            .expect("proxy_port becomes [proxy] port");
        assert_eq!(port.get_ref(), &PortValue::Number(8090));
        // Its span is the value's in the .air.toml, so an error there points at its line.
        let at = text.find("8090").unwrap();
        assert_eq!(port.span(), at..at + 4);
        assert_eq!(
            config.proxy.app_port.as_ref().map(Spanned::get_ref),
            Some(&PortValue::Number(8080))
        );
        assert_eq!(written(&config, &keys::run::ready_timeout), r#""2500ms""#);
    }

    #[test]
    fn airs_proxy_off_is_no_proxy_and_no_warning() {
        for text in [
            "[proxy]\nenabled = false\nproxy_port = 8090\napp_port = 8080\n",
            "[proxy]\nproxy_port = 8090\napp_port = 8080\n",
            "[proxy]\nenabled = false\nproxy_port = 0\napp_port = 0\n",
        ] {
            let (config, warnings) = read(text);
            assert!(warnings.is_empty(), "{text}: {warnings:?}");
            assert!(config.proxy.port.is_none(), "{text}");
            assert!(config.proxy.app_port.is_none(), "{text}");
            assert!(config.run.ready_timeout.is_none(), "{text}");
        }
    }

    #[test]
    fn a_mistake_is_refused_at_its_line() {
        for (text, shown) in [
            (
                "[build]\ncmd = \"true\"\n[proxy]\nenabled = true\napp_port = 8080\n",
                ".air.toml:4:11: [proxy] enabled = true, but no proxy_port",
            ),
            ("[build]\ndelay = \"soon\"\n", ".air.toml:2:"),
        ] {
            let err = refused(text);
            assert!(err.starts_with(shown), "{err}");
        }
    }
}
