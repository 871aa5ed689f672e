//! Single values as users write them, parsed: durations (`50ms`, `1m30s`), signals (`TERM`,
//! `15`), listen addresses, readiness modes, log formats, dotenv files and ignore globs. Errors
//! are plain sentences; the caller says where the value came from (a flag, or a file's line).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use nix::sys::signal::Signal;

use super::{ConfigError, HttpProbe, ListenAddress, ListenSpec, LogFormat, Readiness, usage};

/// Read a dotenv file: `KEY=value` lines, `#` comments, an optional `export ` prefix, and values
/// in single quotes (literal) or double quotes (with \\n, \\" and \\\\ escapes).
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file `{}`", path.display()))?;
    let mut vars = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, raw) = line.split_once('=').ok_or_else(|| {
            anyhow::Error::from(ConfigError {
                file: path.to_owned(),
                position: Some((number + 1, 1)),
                message: format!("`{line}` is not KEY=value"),
                help: None,
            })
        })?;
        let raw = raw.trim();
        let value = if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_owned()
        } else if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            inner
                .replace("\\n", "\n")
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        } else {
            // An unquoted value ends at a comment.
            raw.split(" #").next().unwrap_or_default().trim().to_owned()
        };
        vars.push((key.trim().to_owned(), value));
    }
    Ok(vars)
}

pub(crate) fn check_exists(path: &Path) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        Err(format!("`{}` does not exist", path.display()))
    }
}

pub(crate) fn parse_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not a format; use human or json")),
    }
}

/// Compile globs once. A glob without `/` matches a name at any depth, as in .gitignore.
pub(crate) fn compile_globs(globs: &[String], setting: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let glob = glob.trim().trim_end_matches('/');
        let anchored = glob.trim_start_matches('/');
        let patterns: Vec<String> = if glob.contains('/') {
            vec![anchored.to_owned()]
        } else {
            vec![anchored.to_owned(), format!("**/{anchored}")]
        };
        for pattern in patterns {
            builder.add(
                Glob::new(&pattern)
                    .map_err(|err| usage(format!("{setting}: invalid glob `{glob}`: {err}")))?,
            );
        }
    }
    builder
        .build()
        .map_err(|err| usage(format!("{setting}: {err}")))
}

/// `50ms`, `5s`, `1.5s`, `1m`, `2h`, `250us`. A bare number is refused: `5` could mean anything.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration =
        || format!("`{text}` is not a duration; write a number and a unit, like 50ms, 5s or 1m");
    if text.is_empty() {
        return Err(not_a_duration());
    }
    // One or more number-unit pairs, as Go writes them too: `1m30s`, `1.5s`, `250ms`.
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let value: f64 = number.parse().map_err(|_| not_a_duration())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        seconds += value
            * match unit.trim() {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "" => return Err(format!("`{text}` has no unit; write {text}ms or {text}s")),
                other => {
                    return Err(format!(
                        "unknown unit `{other}` in `{text}`; use ms, s, m or h"
                    ));
                }
            };
        rest = after;
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// `3000`, `127.0.0.1:3000`, `[::1]:3000`, `localhost:3000`, `unix:/path.sock`, each optionally
/// named: `web=3000`. A relative unix path is taken from the project root.
pub fn parse_listen(text: &str, root: &Path) -> Result<ListenSpec, String> {
    let text = text.trim();
    let (name, address) = match text.split_once('=') {
        Some((name, address)) => (Some(name.trim()), address.trim()),
        None => (None, text),
    };
    let invalid = || {
        format!(
            "`{address}` is not a listen address; use 3000, 127.0.0.1:3000, [::1]:3000 or \
             unix:/path/to.sock"
        )
    };
    let parsed = if let Some(path) = address.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(invalid());
        }
        ListenAddress::Unix(root.join(path))
    } else if let Ok(port) = address.parse::<u16>() {
        ListenAddress::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    } else if let Some(port) = address.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        ListenAddress::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    } else {
        ListenAddress::Tcp(address.parse().map_err(|_| invalid())?)
    };
    // LISTEN_FDNAMES is colon-separated, so a name cannot hold one.
    let name = match name {
        Some("") => return Err(format!("`{text}` has an empty name before `=`")),
        Some(name) if name.contains(':') => {
            return Err(format!("the socket name `{name}` cannot contain `:`"));
        }
        Some(name) => name.to_owned(),
        None => address.replace(':', "_"),
    };
    Ok(ListenSpec {
        name,
        address: parsed,
    })
}

/// `none`, `notify` or `http://host:port/path`.
pub fn parse_readiness(text: &str) -> Result<Readiness, String> {
    let text = text.trim();
    match text {
        "none" | "" => return Ok(Readiness::Spawned),
        "notify" => return Ok(Readiness::Notify),
        _ => {}
    }
    let Some(rest) = text.strip_prefix("http://") else {
        if text.starts_with("https://") {
            return Err(format!(
                "`{text}`: https is not supported for readiness; point it at a plain http:// port"
            ));
        }
        return Err(format!(
            "`{text}` is not a readiness mode; use none, notify or http://host:port/path"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("`{text}` has an invalid port"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(Readiness::Http(HttpProbe {
        authority: format!("{host}:{port}"),
        host: host.trim_matches(['[', ']']).to_owned(),
        path: path.to_owned(),
    }))
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("{number} is not a signal number"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| {
        format!("unknown signal `{text}`; use a name like SIGTERM, SIGINT, SIGQUIT or SIGHUP")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("500000000ns"),
            Ok(Duration::from_millis(500))
        );
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn signals_by_name_short_name_or_number() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("int"), Ok(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("SIGFOO").unwrap_err().contains("SIGFOO"));
    }

    #[test]
    fn env_files_read_like_dotenv() {
        let path = std::env::temp_dir().join(format!("reload-env-{}", std::process::id()));
        std::fs::write(
            &path,
            "# comment\nPORT=3000\nexport NAME='a b'\nMSG=\"x\\ny\"\nURL=http://h # note\n",
        )
        .unwrap();
        let vars = read_env_file(&path).unwrap();
        std::fs::write(&path, "oops\n").unwrap();
        let err = read_env_file(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        let get = |k: &str| {
            vars.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PORT"), Some("3000"));
        assert_eq!(get("NAME"), Some("a b"));
        assert_eq!(get("MSG"), Some("x\ny"));
        assert_eq!(get("URL"), Some("http://h"));
        assert!(err.contains(":1:"), "{err}");
    }

    #[test]
    fn listen_addresses() {
        let root = Path::new("/project");
        let spec = parse_listen("3000", root).unwrap();
        assert_eq!(spec.address.to_string(), "127.0.0.1:3000");
        assert_eq!(spec.name, "3000");
        let spec = parse_listen("[::1]:8080", root).unwrap();
        assert_eq!(spec.address.to_string(), "[::1]:8080");
        let spec = parse_listen("web=0.0.0.0:80", root).unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.address.to_string()),
            ("web", "0.0.0.0:80".into())
        );
        let spec = parse_listen("unix:run/app.sock", root).unwrap();
        assert_eq!(
            spec.address,
            ListenAddress::Unix("/project/run/app.sock".into())
        );
        assert!(
            parse_listen("300000", root)
                .unwrap_err()
                .contains("not a listen address")
        );
        assert!(parse_listen("a:b=3000", root).is_err());
    }

    #[test]
    fn readiness_modes() {
        assert_eq!(parse_readiness("none"), Ok(Readiness::Spawned));
        assert_eq!(parse_readiness("notify"), Ok(Readiness::Notify));
        let Ok(Readiness::Http(probe)) = parse_readiness("http://127.0.0.1:3000/health") else {
            panic!("an http probe")
        };
        assert_eq!(
            (probe.authority.as_str(), probe.path.as_str()),
            ("127.0.0.1:3000", "/health")
        );
        let Ok(Readiness::Http(probe)) = parse_readiness("http://[::1]:8080") else {
            panic!()
        };
        assert_eq!((probe.host.as_str(), probe.path.as_str()), ("::1", "/"));
        assert!(parse_readiness("https://x").unwrap_err().contains("https"));
        assert!(parse_readiness("tcp://x:1").is_err());
    }

    #[test]
    fn a_glob_without_slash_matches_at_any_depth() {
        let set = compile_globs(
            &["*.log".into(), "node_modules".into(), "/docs/".into()],
            "t",
        )
        .unwrap();
        assert!(set.is_match("a.log"));
        assert!(set.is_match("deep/er/a.log"));
        assert!(set.is_match("web/node_modules"));
        assert!(set.is_match("docs"));
        assert!(!set.is_match("src/main.rs"));
    }
}
