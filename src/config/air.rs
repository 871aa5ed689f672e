//! `.air.toml`, read as air reads it, so that a Go project moves over unchanged. Every key is
//! mapped onto reload's own [`FileConfig`]; a key reload cannot honour becomes a one-line
//! warning naming it, never a silent drop. Where the file is silent, air's defaults apply.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::file::{FileConfig, OneOrMany, PollValue, PortValue, RunCmd, Source};
use super::{ConfigError, GO_BINARY_DIR};

/// `.air.toml`, `air.toml`, or anything ending in `.air.toml`.
pub(crate) fn is_air_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|name| name == "air.toml" || name.ends_with(".air.toml"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AirFile {
    root: Option<Spanned<String>>,
    tmp_dir: Option<String>,
    testdata_dir: Option<String>,
    build: AirBuild,
    log: AirLog,
    misc: AirMisc,
    screen: AirScreen,
    proxy: AirProxy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AirBuild {
    cmd: Option<String>,
    bin: Option<String>,
    full_bin: Option<String>,
    args_bin: Option<Vec<String>>,
    include_ext: Option<Vec<String>>,
    exclude_dir: Option<Vec<String>>,
    include_dir: Option<Spanned<Vec<PathBuf>>>,
    include_file: Option<Vec<String>>,
    exclude_file: Option<Vec<String>>,
    exclude_regex: Option<Spanned<Vec<String>>>,
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

/// Go's time.Duration in TOML: a string like "500ms", or an integer of nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Text(String),
    Nanoseconds(u64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AirLog {
    time: Option<bool>,
    silent: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AirMisc {
    clean_on_exit: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AirScreen {
    clear_on_rebuild: Option<bool>,
}

/// air's proxy: on only with `enabled = true` (air's default is off), ports as integers,
/// `app_start_timeout` in milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AirProxy {
    enabled: Option<Spanned<bool>>,
    proxy_port: Option<Spanned<i64>>,
    app_port: Option<Spanned<i64>>,
    app_start_timeout: Option<Spanned<u64>>,
}

/// Keys reload honours, by table ("" is the top level).
const SUPPORTED: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "root",
            "tmp_dir",
            "testdata_dir",
            "build",
            "log",
            "misc",
            "screen",
            "proxy",
        ],
    ),
    (
        "build",
        &[
            "cmd",
            "bin",
            "full_bin",
            "args_bin",
            "include_ext",
            "exclude_dir",
            "include_dir",
            "include_file",
            "exclude_file",
            "exclude_regex",
            "delay",
            "stop_on_error",
            "send_interrupt",
            "kill_delay",
            "pre_cmd",
            "post_cmd",
            "rerun",
            "rerun_delay",
            "poll",
            "poll_interval",
        ],
    ),
    ("log", &["time", "silent"]),
    ("misc", &["clean_on_exit"]),
    ("screen", &["clear_on_rebuild"]),
    (
        "proxy",
        &["enabled", "proxy_port", "app_port", "app_start_timeout"],
    ),
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
    let supported = |section: &str, key: &str| {
        SUPPORTED
            .iter()
            .any(|(s, keys)| *s == section && keys.contains(&key))
    };
    let harmless = |path: &str, value: &toml::Value| {
        HARMLESS_DEFAULTS
            .iter()
            .any(|(p, default)| *p == path && (*default == "*" || value.to_string() == *default))
    };
    let mut unsupported = Vec::new();
    for (key, value) in table {
        match value {
            // Colours are cosmetic: reload has its own, so one line covers the whole table.
            toml::Value::Table(_) if key == "color" => unsupported.push("[color]".to_owned()),
            toml::Value::Table(inner) if SUPPORTED.iter().any(|(s, _)| s == key) => {
                for (inner_key, inner_value) in inner {
                    let path = format!("{key}.{inner_key}");
                    if !supported(key, inner_key) && !harmless(&path, inner_value) {
                        unsupported.push(path);
                    }
                }
            }
            _ if supported("", key) => {}
            _ => unsupported.push(key.clone()),
        }
    }
    unsupported
}

fn to_reload(air: AirFile) -> FileConfig {
    let tmp_dir = air.tmp_dir.unwrap_or_else(|| GO_BINARY_DIR.to_owned());
    let testdata_dir = air.testdata_dir.unwrap_or_else(|| "testdata".to_owned());
    let build = air.build;
    let mut config = FileConfig {
        root: air.root.map(|root| {
            let span = root.span();
            Spanned::new(span, PathBuf::from(root.into_inner()))
        }),
        ..FileConfig::default()
    };

    // What to watch.
    config.watch.paths = build.include_dir.filter(|dirs| !dirs.get_ref().is_empty());
    let extensions = build
        .include_ext
        .unwrap_or_else(|| strings(&["go", "tpl", "tmpl", "html"]));
    config.watch.ext = Some(OneOrMany::Many(extensions));
    config.watch.include = build
        .include_file
        .map(|files| files.iter().map(|f| anchored(f)).collect());
    let mut ignore: Vec<String> = build
        .exclude_dir
        .unwrap_or_else(|| strings(&["assets", "tmp", "vendor", "testdata"]))
        .iter()
        .chain([&tmp_dir, &testdata_dir])
        .map(|dir| anchored(dir))
        .collect();
    ignore.extend(
        build
            .exclude_file
            .unwrap_or_default()
            .iter()
            .map(|f| anchored(f)),
    );
    let mut seen = std::collections::HashSet::new();
    ignore.retain(|glob| seen.insert(glob.clone()));
    config.watch.ignore = Some(ignore);
    config.watch.ignore_regex = Some(
        build
            .exclude_regex
            .unwrap_or_else(|| Spanned::new(0..0, strings(&["_test.go"]))),
    );
    config.watch.debounce = build.delay.map(|ms| milliseconds(&ms));
    config.watch.poll = match (build.poll, build.poll_interval) {
        (Some(poll), interval) if *poll.get_ref() => Some(Spanned::new(
            poll.span(),
            PollValue::Interval(match interval.filter(|i| *i.get_ref() > 0) {
                Some(interval) => format!("{}ms", interval.get_ref()),
                None => "500ms".to_owned(),
            }),
        )),
        _ => None,
    };

    // How to build.
    config.build.cmd = Some(
        build
            .cmd
            .unwrap_or_else(|| format!("go build -o ./{GO_BINARY_DIR}/main .")),
    );
    config.build.pre = build.pre_cmd.filter(|cmds| !cmds.is_empty());
    if air.misc.clean_on_exit == Some(true) {
        config.build.clean_on_exit = Some(vec![PathBuf::from(&tmp_dir)]);
    }

    // How to run: air runs `bin args_bin...` (or full_bin) through the shell.
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
    config.run.cmd = Some(Spanned::new(0..0, command));
    if build.send_interrupt == Some(true) {
        config.run.stop_signal = Some(Spanned::new(0..0, "SIGINT".to_owned()));
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
    config.run.post = build.post_cmd.filter(|cmds| !cmds.is_empty());
    config.run.stop_on_build_error = build.stop_on_error;
    config.run.restart_on_exit = build.rerun;
    config.run.restart_delay = build.rerun_delay.map(|ms| milliseconds(&ms));

    // The proxy only when enabled: air writes its ports into every generated file, off.
    let port = |port: Spanned<i64>| {
        let span = port.span();
        Spanned::new(span, PortValue::Number(port.into_inner()))
    };
    if air.proxy.enabled.is_some_and(Spanned::into_inner) {
        config.proxy.port = air.proxy.proxy_port.map(port);
        config.proxy.app_port = air.proxy.app_port.map(port);
    }
    // How long air waits for the app behind its proxy: reload's ready timeout.
    config.run.ready_timeout = air
        .proxy
        .app_start_timeout
        .filter(|ms| *ms.get_ref() > 0)
        .map(|ms| milliseconds(&ms));

    config.output.clear = air.screen.clear_on_rebuild;
    config.output.timestamps = air.log.time;
    config.output.quiet = air.log.silent;
    config
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// air's paths are relative to the root, not names at any depth.
fn anchored(path: &str) -> String {
    format!("/{}", path.trim_start_matches("./").trim_start_matches('/'))
}

fn milliseconds(ms: &Spanned<u64>) -> Spanned<String> {
    Spanned::new(ms.span(), format!("{}ms", ms.get_ref()))
}

fn join_command(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (FileConfig, Vec<String>) {
        parse(&Source {
            path: ".air.toml".into(),
            text: text.to_owned(),
        })
        .unwrap()
    }

    #[test]
    fn an_empty_air_file_means_airs_defaults() {
        let (config, warnings) = read("");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.build.cmd.as_deref(),
            Some("go build -o ./tmp/main .")
        );
        assert!(matches!(
            config.run.cmd.unwrap().into_inner(),
            RunCmd::Argv(argv) if argv == ["./tmp/main"]
        ));
        let Some(OneOrMany::Many(ext)) = config.watch.ext else {
            panic!("extensions")
        };
        assert_eq!(ext, ["go", "tpl", "tmpl", "html"]);
        let ignore = config.watch.ignore.unwrap();
        for dir in ["/assets", "/tmp", "/vendor", "/testdata"] {
            assert!(ignore.contains(&dir.to_owned()), "{dir} in {ignore:?}");
        }
        assert_eq!(
            config.watch.ignore_regex.unwrap().into_inner(),
            ["_test.go"]
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
        assert_eq!(config.root.unwrap().into_inner(), PathBuf::from("app"));
        assert!(matches!(
            config.run.cmd.unwrap().into_inner(),
            RunCmd::Argv(argv) if argv == ["build/srv", "-port", "3000"]
        ));
        assert_eq!(config.watch.debounce.unwrap().into_inner(), "200ms");
        assert_eq!(config.run.stop_signal.unwrap().into_inner(), "SIGINT");
        assert_eq!(config.run.stop_timeout.unwrap().into_inner(), "2s");
        assert_eq!(config.build.pre.unwrap(), ["echo pre"]);
        assert_eq!(config.run.post.unwrap(), ["echo post"]);
        assert_eq!(config.run.restart_on_exit, Some(true));
        assert_eq!(config.run.restart_delay.unwrap().into_inner(), "100ms");
        assert!(
            matches!(config.watch.poll.unwrap().into_inner(), PollValue::Interval(i) if i == "250ms")
        );
        assert_eq!(config.run.stop_on_build_error, Some(true));
        assert_eq!(
            config.build.clean_on_exit.unwrap(),
            [PathBuf::from("build")]
        );
        assert!(config.watch.ignore.unwrap().contains(&"/build".to_owned()));
        assert_eq!(
            (
                config.output.clear,
                config.output.timestamps,
                config.output.quiet
            ),
            (Some(true), Some(true), Some(true))
        );
    }

    #[test]
    fn a_full_bin_runs_through_the_shell() {
        let (config, _) = read("[build]\nfull_bin = \"APP_ENV=dev ./tmp/main\"\n");
        assert!(matches!(
            config.run.cmd.unwrap().into_inner(),
            RunCmd::Shell(line) if line == "APP_ENV=dev ./tmp/main"
        ));
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
        let port = config.proxy.port.expect("proxy_port becomes [proxy] port");
        assert_eq!(port.get_ref(), &PortValue::Number(8090));
        // Its span is the value's in the .air.toml, so an error there points at its line.
        let at = text.find("8090").unwrap();
        assert_eq!(port.span(), at..at + 4);
        assert_eq!(
            config.proxy.app_port.map(Spanned::into_inner),
            Some(PortValue::Number(8080))
        );
        assert_eq!(config.run.ready_timeout.unwrap().into_inner(), "2500ms");
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
    fn airs_proxy_enabled_without_a_proxy_port_is_refused_at_its_line() {
        let err = parse(&Source {
            path: ".air.toml".into(),
            text: "[build]\ncmd = \"true\"\n[proxy]\nenabled = true\napp_port = 8080\n".into(),
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(".air.toml:4:11: [proxy] enabled = true, but no proxy_port"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_names_the_file_and_line() {
        let err = parse(&Source {
            path: ".air.toml".into(),
            text: "[build]\ndelay = \"soon\"\n".into(),
        })
        .unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(2));
        assert!(err.to_string().starts_with(".air.toml:2:"), "{err}");
    }
}
