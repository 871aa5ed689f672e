//! Single values as users write them, parsed: durations (`50ms`, `1m30s`), signals (`TERM`,
//! `15`), listen addresses, readiness modes, log formats, dotenv files and ignore globs. Errors
//! are plain sentences; the caller says where the value came from (a flag, or a file's line).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use globset::Glob;
use nix::sys::signal::Signal;

use super::{ConfigError, HttpProbe, ListenAddress, ListenSpec, LogFormat, Readiness};

/// Read a dotenv file with `dotenvy`, which follows the common dotenv rules: `KEY=value` lines,
/// `#` comments (also after a value), an optional `export ` prefix, single quotes (literal),
/// double quotes (with backslash escapes), `${VAR}` substitution. A line it cannot read is
/// reported with the file's path and the line's number.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let cannot_read = || format!("cannot read the env file `{}`", path.display());
    let text = std::fs::read_to_string(path).with_context(cannot_read)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(line, _)) => {
                // dotenvy gives the line's text, not its number: find it in the file.
                let first = line.lines().next().unwrap_or_default().trim();
                let number = text
                    .lines()
                    .position(|l| l.trim() == first)
                    .map(|index| (index + 1, 1));
                return Err(ConfigError {
                    file: path.to_owned(),
                    position: number,
                    message: format!(
                        "`{first}` is not KEY=value (quote a value that holds spaces or quotes)"
                    ),
                    help: None,
                }
                .into());
            }
            Err(err) => return Err(anyhow::Error::new(err).context(cannot_read())),
        }
    }
    Ok(vars)
}

/// A file that must exist when reload starts (an env file): say what is wrong if it is not one.
pub(crate) fn check_exists(path: &Path) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!(
            "`{}` is a directory; name a dotenv file (KEY=value lines)",
            path.display()
        )),
        Ok(_) => Ok(path.to_owned()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("`{}` does not exist", path.display()))
        }
        Err(err) => Err(format!("cannot read `{}`: {err}", path.display())),
    }
}

pub(crate) fn parse_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not a format; use human or json")),
    }
}

/// One user glob as the patterns it stands for. A glob without `/` matches a name at any
/// depth, as in .gitignore; a leading `/` anchors it at the root; a trailing `/` is dropped.
pub(crate) fn parse_glob(glob: &str) -> Result<Vec<Glob>, String> {
    let glob = glob.trim().trim_end_matches('/');
    let anchored = glob.trim_start_matches('/');
    let patterns: Vec<String> = if glob.contains('/') {
        vec![anchored.to_owned()]
    } else {
        vec![anchored.to_owned(), format!("**/{anchored}")]
    };
    patterns
        .iter()
        .map(|pattern| {
            Glob::new(pattern).map_err(|err| format!("invalid glob `{glob}`: {}", err.kind()))
        })
        .collect()
}

/// The longest duration reload takes for any setting (timeouts, delays, debounce, poll). Longer
/// is surely a typo, and a far longer one would overflow the clock when added to it.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// `50ms`, `5s`, `1.5s`, `1m`, `2h`, `250us`. A bare number is refused: `5` could mean anything;
/// so is anything longer than [`MAX_DURATION`] (24h).
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
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        _ => Err(format!("`{text}` is too long; the longest is 24h")),
    }
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
    } else if let Ok(port) = address
        .strip_prefix("localhost:")
        .unwrap_or(address)
        .parse()
    {
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

/// A TCP port from 1 to 65535, as a flag or a file writes it. Port 0 is refused: it would be
/// "any free port", which neither the browser nor the proxy could then find.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(0) => Err(
            "port 0 means \"any free port\", which nothing could then find; name a port from 1 \
             to 65535"
                .to_owned(),
        ),
        Ok(port) => u16::try_from(port)
            .map_err(|_| format!("`{text}` is not a port: ports go from 1 to 65535")),
        Err(_) => Err(format!(
            "`{text}` is not a port; write a number from 1 to 65535"
        )),
    }
}

/// Where the proxy listens: `8090` or `:8090` (on 127.0.0.1), `HOST:PORT` with an IP address
/// or `localhost`, `[::1]:8090`. All interfaces only when written: `0.0.0.0:8090`, `[::]:8090`.
pub(crate) fn parse_proxy_address(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let text = text.trim();
    let invalid = || {
        format!(
            "`{text}` is not a port or an address; write 8090, :8090, 127.0.0.1:8090 or \
             [::1]:8090"
        )
    };
    let (host, port) = match text.rsplit_once(':') {
        // A colon inside brackets only (`[::1]`) is no port separator.
        Some((host, port)) if !port.contains(']') => (host, port),
        _ if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() => ("", text),
        _ => return Err(invalid()),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let port = parse_port(port)?;
    let ip = match host {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        bracketed if bracketed.starts_with('[') && bracketed.ends_with(']') => bracketed
            [1..bracketed.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| invalid())?,
        // `::1:8090` is ambiguous (is 8090 part of the address?): IPv6 needs its brackets.
        plain => plain.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
            if plain.contains(':') {
                format!("`{text}`: write an IPv6 address in brackets, like [::1]:{port}")
            } else {
                format!(
                    "`{text}`: `{plain}` is not an IP address; the proxy listens on an address \
                     of this machine, like 127.0.0.1:{port} (or 0.0.0.0:{port} for every \
                     interface)"
                )
            }
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A name the dev proxy answers to besides `localhost`, `*.localhost` and IP addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// This name only: lowercase, without a trailing dot.
    Name(String),
    /// Every name under this one (`*.example.test`: `a.example.test`, `a.b.example.test`), not
    /// the name itself, as the `*` says.
    Under(String),
}

impl HostPattern {
    /// Whether `host` (lowercase, no port, no trailing dot) is one this pattern allows.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            HostPattern::Name(name) => host == name,
            HostPattern::Under(parent) => host
                .strip_suffix(parent.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty()),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Name(name) => f.write_str(name),
            HostPattern::Under(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// A name for `--allow-host` or `[proxy] allowed_hosts`: `myapp.test`, or `*.myapp.test` for
/// every name under it. No port (every port of an allowed name is allowed) and no scheme. A
/// bare `*` is refused: it would let any web page read the proxy through DNS rebinding.
pub(crate) fn parse_host_pattern(text: &str) -> Result<HostPattern, String> {
    let written = text.trim();
    let lower = written.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    if lower == "*" {
        return Err(
            "`*` would let any web page read your app and its build output through DNS \
             rebinding; name the hosts you use, like myapp.test or *.myapp.test"
                .to_owned(),
        );
    }
    if let Some((scheme, _)) = lower.split_once("://") {
        return Err(format!(
            "`{written}`: write the name alone, without `{scheme}://`"
        ));
    }
    let (under, name) = match lower.strip_prefix("*.") {
        Some(parent) => (true, parent),
        None => (false, lower),
    };
    if name.contains(':') || name.contains('/') {
        return Err(format!(
            "`{written}`: write the name alone, without a port or a path: every port of an \
             allowed name is allowed"
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{written}` is not a host name; write one like myapp.test, or *.myapp.test for \
             every name under it"
        ));
    }
    Ok(if under {
        HostPattern::Under(name.to_owned())
    } else {
        HostPattern::Name(name.to_owned())
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
    if let Some(address) = text.strip_prefix("tcp:") {
        return parse_tcp_readiness(text, address);
    }
    if !text.starts_with("http://") {
        if text.starts_with("https://") {
            return Err(format!(
                "`{text}`: https is not supported for readiness; point it at a plain http:// port"
            ));
        }
        return Err(format!(
            "`{text}` is not a readiness mode; use none, notify, tcp:PORT or http://host:port/path"
        ));
    }
    // A real parse of the URL: `http://[::1` (an unclosed bracket) or a port of 99999 is a
    // mistake to report now, not a probe that can never connect.
    let invalid =
        |why: &str| format!("`{text}` is not a valid URL ({why}); write http://host:port/path");
    let uri: http::Uri = text
        .parse()
        .map_err(|err: http::uri::InvalidUri| invalid(&err.to_string()))?;
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not supported"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    // `Authority::port` gives up quietly on `:x`: read the port after the host ourselves.
    let port = match authority.as_str().get(host.len()..) {
        Some("") => 80,
        Some(after) => after
            .strip_prefix(':')
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| invalid("the port must be a number from 0 to 65535"))?,
        None => return Err(invalid("no host")),
    };
    let path = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    Ok(Readiness::Http(HttpProbe {
        authority: format!("{host}:{port}"),
        host: host.trim_matches(['[', ']']).to_owned(),
        path: if path.is_empty() { "/" } else { path }.to_owned(),
    }))
}

/// `tcp:3000` (on 127.0.0.1) or `tcp:HOST:PORT`: ready when the port accepts a connection.
fn parse_tcp_readiness(text: &str, address: &str) -> Result<Readiness, String> {
    let invalid = || format!("`{text}` is not a TCP address; write tcp:PORT or tcp:HOST:PORT");
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']), port),
        None => ("127.0.0.1", address),
    };
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || host.contains(['/', '@', ' ']) || port == 0 {
        return Err(invalid());
    }
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Readiness::TcpConnect(authority))
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
    use globset::GlobSetBuilder;

    use super::*;

    /// `parse` refuses each of `texts` with a message that contains `says`.
    #[track_caller]
    fn refused<T: std::fmt::Debug>(
        parse: impl Fn(&str) -> Result<T, String>,
        texts: &[&str],
        says: &str,
    ) {
        for text in texts {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn host_patterns_are_names_or_every_name_under_one() {
        let name = parse_host_pattern(" MyApp.Test. ").unwrap();
        assert_eq!(name, HostPattern::Name("myapp.test".into()));
        assert!(name.allows("myapp.test"));
        assert!(!name.allows("www.myapp.test"));
        let under = parse_host_pattern("*.myapp.test").unwrap();
        assert_eq!(under.to_string(), "*.myapp.test");
        assert!(under.allows("a.myapp.test") && under.allows("a.b.myapp.test"));
        // The name itself is not under itself.
        for host in ["myapp.test", "evilmyapp.test", ".myapp.test"] {
            assert!(!under.allows(host), "{host}");
        }
    }

    #[test]
    fn host_patterns_that_are_no_names_are_refused_saying_what_to_write() {
        let parse = parse_host_pattern;
        refused(parse, &["*", "*."], "DNS rebinding");
        refused(parse, &["http://myapp.test"], "without `http://`");
        refused(parse, &["myapp.test:8090"], "without a port");
        refused(parse, &["my app", "", "*..", "a..b"], "is not a host name");
    }

    #[test]
    fn durations_take_units() {
        for (text, millis) in [
            ("50ms", 50),
            ("5s", 5000),
            ("1.5s", 1500),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("500000000ns", 500),
            ("0ms", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)));
        }
        assert_eq!(parse_duration("24h"), Ok(MAX_DURATION));
        refused(parse_duration, &["5"], "no unit");
        refused(parse_duration, &["5 parsecs"], "unknown unit");
        refused(parse_duration, &["fast"], "is not a duration");
        let long = ["24h1s", "3000000000000000h", "99999999999999999999999999s"];
        refused(parse_duration, &long, "too long");
    }

    #[test]
    fn signals_by_name_short_name_or_number() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("int"), Ok(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        refused(parse_signal, &["SIGFOO"], "SIGFOO");
    }

    /// `read_env_file` on `text`, written to a file of its own.
    fn env_of(text: &str) -> Result<Vec<(String, String)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.env");
        std::fs::write(&path, text).unwrap();
        read_env_file(&path)
    }

    #[test]
    fn env_files_read_like_dotenv() {
        let text = "# comment\nPORT=3000\nexport NAME='a b'\nMSG=\"x\\ny\"\nURL=http://h # note\n";
        let vars = env_of(text).unwrap();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
        let expected = [
            ("PORT", "3000"),
            ("NAME", "a b"),
            ("MSG", "x\ny"),
            ("URL", "http://h"),
        ];
        assert_eq!(pairs, expected);
        for (line, value) in [
            // An escaped backslash stays one backslash.
            ("K=\"C:\\\\new\"\n", "C:\\new"),
            // A comment after a quoted value is not part of it.
            ("K=\"a b\" # note\n", "a b"),
            ("K='a b' # note\n", "a b"),
            // Single quotes are literal; empty values are empty.
            ("K='a\\nb $X'\n", "a\\nb $X"),
            ("K=\n", ""),
            ("K=''\n", ""),
            ("export K=\"\"\n", ""),
        ] {
            let vars = env_of(line).unwrap();
            assert_eq!(vars, [("K".to_owned(), value.to_owned())], "{line}");
        }
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number_and_the_file() {
        let err = env_of("# fine\nA=1\n\noops\n").unwrap_err();
        let err = err.downcast_ref::<ConfigError>().expect("a ConfigError");
        assert_eq!(err.position, Some((4, 1)));
        assert!(err.file.ends_with("dev.env"), "{}", err.file.display());
        assert!(err.to_string().contains("dev.env:4:1: `oops`"), "{err}");
    }

    #[test]
    fn a_directory_is_not_an_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_exists(dir.path()).unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
        let err = check_exists(&dir.path().join("nope")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn listen_addresses() {
        let root = Path::new("/project");
        for (text, name, address) in [
            ("3000", "3000", "127.0.0.1:3000"),
            ("localhost:3000", "localhost_3000", "127.0.0.1:3000"),
            ("[::1]:8080", "[__1]_8080", "[::1]:8080"),
            ("web=0.0.0.0:80", "web", "0.0.0.0:80"),
        ] {
            let spec = parse_listen(text, root).unwrap();
            assert_eq!(
                (spec.name.as_str(), spec.address.to_string()),
                (name, address.into())
            );
        }
        let spec = parse_listen("unix:run/app.sock", root).unwrap();
        assert_eq!(
            spec.address,
            ListenAddress::Unix("/project/run/app.sock".into())
        );
        let parse = |text: &str| parse_listen(text, root);
        refused(
            parse,
            &["300000", "localhost:x", "unix:"],
            "not a listen address",
        );
        refused(parse, &["=3000"], "empty name");
        refused(parse, &["a:b=3000"], "cannot contain `:`");
    }

    #[test]
    fn ports_run_from_1_to_65535() {
        assert_eq!(parse_port("8080"), Ok(8080));
        assert_eq!(parse_port(" 1 "), Ok(1));
        assert_eq!(parse_port("65535"), Ok(65535));
        refused(parse_port, &["0"], "port 0");
        refused(parse_port, &["70000"], "ports go from 1 to 65535");
        refused(
            parse_port,
            &["a", "", "-1", "80x", "8080.0"],
            "is not a port",
        );
    }

    #[test]
    fn a_proxy_address_is_a_port_on_loopback_unless_a_host_is_written() {
        for (text, address) in [
            ("8090", "127.0.0.1:8090"),
            (":8090", "127.0.0.1:8090"),
            ("localhost:8090", "127.0.0.1:8090"),
            ("192.168.1.5:80", "192.168.1.5:80"),
            ("[::1]:8090", "[::1]:8090"),
            ("0.0.0.0:8090", "0.0.0.0:8090"),
            ("[::]:8090", "[::]:8090"),
        ] {
            assert_eq!(
                parse_proxy_address(text).map(|a| a.to_string()),
                Ok(address.into())
            );
        }
        let parse = parse_proxy_address;
        let bad = [
            "80x", "", ":", "x:80", "[::1]", "[::1]:", "1.2.3:80", "8090:",
        ];
        refused(parse, &bad, "");
        refused(parse, &["70000"], "ports go from 1 to 65535");
        refused(parse, &[":0"], "port 0");
        refused(parse, &["::1:8090"], "in brackets");
        refused(parse, &["example.com:8090"], "not an IP address");
    }

    #[test]
    fn readiness_modes() {
        assert_eq!(parse_readiness("none"), Ok(Readiness::Spawned));
        assert_eq!(parse_readiness("notify"), Ok(Readiness::Notify));
        for (text, authority, host, path) in [
            (
                "http://127.0.0.1:3000/health",
                "127.0.0.1:3000",
                "127.0.0.1",
                "/health",
            ),
            ("http://[::1]:8080", "[::1]:8080", "::1", "/"),
            (
                "http://localhost/x?y=1",
                "localhost:80",
                "localhost",
                "/x?y=1",
            ),
        ] {
            let (authority, host, path) = (authority.into(), host.into(), path.into());
            let probe = HttpProbe {
                authority,
                host,
                path,
            };
            assert_eq!(parse_readiness(text), Ok(Readiness::Http(probe)));
        }
        refused(parse_readiness, &["https://x"], "https");
        let bad_urls = [
            "http://[::1",
            "http://[::1]:x/",
            "http://:3000/",
            "http://h:99999/",
            "http://h:/",
            "http://a b/",
        ];
        refused(parse_readiness, &bad_urls, "not a valid URL");
    }

    #[test]
    fn tcp_readiness_takes_a_port_or_a_host_and_port() {
        for (text, authority) in [
            ("tcp:3000", "127.0.0.1:3000"),
            ("tcp:localhost:8080", "localhost:8080"),
            ("tcp:[::1]:8080", "[::1]:8080"),
        ] {
            let expected = Readiness::TcpConnect(authority.into());
            assert_eq!(parse_readiness(text), Ok(expected));
        }
        let bad = [
            "tcp:",
            "tcp:x",
            "tcp:0",
            "tcp::80",
            "tcp://x:1",
            "tcp:70000",
        ];
        refused(parse_readiness, &bad, "is not a TCP address");
    }

    #[test]
    fn a_glob_without_slash_matches_at_any_depth() {
        let mut builder = GlobSetBuilder::new();
        for glob in ["*.log", "node_modules", "/docs/"] {
            for pattern in parse_glob(glob).unwrap() {
                builder.add(pattern);
            }
        }
        let set = builder.build().unwrap();
        for path in ["a.log", "deep/er/a.log", "web/node_modules", "docs"] {
            assert!(set.is_match(path), "{path}");
        }
        assert!(!set.is_match("src/main.rs"));
    }
}
