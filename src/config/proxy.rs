//! `[proxy]` and its flags: where the browser connects and where the proxy forwards. The proxy
//! is on when `--proxy` is given or the file sets `[proxy] port` (air's `enabled = true` arrives
//! as that). Where it forwards is decided by [`link_to_service`], the one step that touches the
//! service behind it: the first `--listen` socket reload holds, else the app port, which the
//! server then gets as `PORT` and, unless another check was asked for, is ready when that port
//! accepts a connection; with neither, reload chooses the port at start and follows the server.

use std::net::SocketAddr;
use std::ops::Range;

use anyhow::Result;
use toml::Spanned;

use super::flags::{Given, flag_name};
use super::keys::{self, Key, PortValue, ProxySection};
use super::{
    CONFIG_FILE, HostPattern, ListenAddress, Place, ProxyConfig, Readiness, RunConfig, Upstream,
    parse_duration, parse_host_pattern, parse_port, parse_proxy_address, usage,
};

/// A setting that a later check may find contradicting another: its value, how to name it in
/// that message, and its place in the file when the file gave it.
struct Named<T> {
    value: T,
    /// `--app-port 8080` or `[proxy] app_port = 8080`.
    name: String,
    /// `--proxy`, or `[proxy] port` as the file names it.
    label: String,
    span: Option<Range<usize>>,
}

impl Place<'_> {
    /// A port setting: the flag's text when given, else the file's value (a number or a
    /// string), parsed by `parse`.
    fn port<T>(
        &self,
        key: &Key,
        file: Option<&Spanned<PortValue>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Named<T>>> {
        let (text, label, span) = match (self.flags.text(key), file) {
            (Some(text), _) => (text.trim().to_owned(), flag_name(key), None),
            (None, Some(written)) => {
                let span = written.span();
                let label = self.label(key, &span);
                (written.get_ref().to_string(), label, Some(span))
            }
            (None, None) => return Ok(None),
        };
        let value = parse(&text).map_err(|err| match &span {
            Some(span) => self.at(key, span, &err),
            None => Place::flag(key, &err),
        })?;
        let name = match span {
            Some(_) => format!("{label} = {text}"),
            None => format!("{label} {text}"),
        };
        Ok(Some(Named {
            value,
            name,
            label,
            span,
        }))
    }

    /// An error about settings that contradict each other: at the line of the first of them
    /// the file gave, or a usage error when they are all flags.
    fn among<'s>(
        &self,
        spans: impl IntoIterator<Item = Option<&'s Range<usize>>>,
        message: String,
    ) -> anyhow::Error {
        match spans.into_iter().flatten().next() {
            Some(span) => self.file(span.clone(), message),
            None => usage(message),
        }
    }
}

/// The proxy the flags and `[proxy]` ask for, before it is linked to a service: `None` when
/// none is. Every setting is checked, the proxy on or not, as `[run]` is in build-only mode.
pub(super) fn resolve(place: &Place<'_>, section: ProxySection) -> Result<Option<Asked>> {
    use keys::proxy as key;
    let listen = place.port(&key::port, section.port.as_ref(), parse_proxy_address)?;
    let app_port = place.port(&key::app_port, section.app_port.as_ref(), parse_port)?;
    let hold_timeout = place.setting(
        &key::hold_timeout,
        section.hold_timeout.as_ref(),
        parse_duration,
    )?;
    let inject = place.switch(&key::inject, section.inject.as_ref())?;
    let written_hosts = section.allowed_hosts.map(Spanned::into_inner);
    let allowed_hosts: Vec<HostPattern> = place.list(
        &key::allowed_hosts,
        &written_hosts.unwrap_or_default(),
        parse_host_pattern,
    )?;
    let Some(listen) = listen else {
        refuse_flags_without_proxy(place)?;
        return Ok(None);
    };
    Ok(Some(Asked {
        listen,
        app_port,
        hold_timeout,
        inject,
        allowed_hosts,
    }))
}

/// The proxy as asked for: its settings, the ports as the user named them.
pub(super) struct Asked {
    listen: Named<SocketAddr>,
    app_port: Option<Named<u16>>,
    hold_timeout: std::time::Duration,
    inject: bool,
    allowed_hosts: Vec<HostPattern>,
}

/// A proxy flag without a proxy would silently do nothing: the user expects a proxy (or PORT)
/// and gets neither.
fn refuse_flags_without_proxy(place: &Place<'_>) -> Result<()> {
    use keys::proxy as key;
    for key in [&key::app_port, &key::inject, &key::allowed_hosts] {
        if place.flags.has(key) {
            return Err(usage(format!(
                "{} is a setting of the dev proxy, and no proxy is asked for\n  help: add \
                 --proxy PORT (or [proxy] port in {CONFIG_FILE}) for the port the browser \
                 connects to",
                flag_name(key)
            )));
        }
    }
    Ok(())
}

/// What the proxy's link needs to know of the service it forwards to, beyond its settings.
pub(super) struct Written {
    /// Whether the user chose a readiness check: the proxy only supplies one where none was.
    pub(super) readiness_asked: bool,
    /// Where the file writes `PORT` in `[run] env`, if it does.
    pub(super) port_at: Option<Range<usize>>,
}

/// Link the proxy to the service `name` it forwards to: choose the upstream, and give the
/// service the app port as `PORT` and, unless it asked for another, a readiness check on that
/// port (or on the one reload chooses at start).
pub(super) fn link_to_service(
    place: &Place<'_>,
    asked: Asked,
    name: &str,
    run: Option<&mut RunConfig>,
    written: &Written,
) -> Result<ProxyConfig> {
    let listen = &asked.listen;
    let Some(run) = run else {
        return Err(place.among(
            [listen.span.as_ref()],
            format!(
                "{} needs a server to forward to, and this configuration only builds (no \
                 [run] cmd and no program after `--`)\n  help: name the server, like `reload \
                 --proxy {} --app-port 8080 -- ./server`",
                listen.label,
                listen.value.port()
            ),
        ));
    };
    let app_port = asked.app_port.as_ref();
    let upstream = choose_upstream(place, run, app_port, &listen.label, written)?;
    refuse_same_port(place, listen, &upstream, app_port)?;
    match upstream {
        Upstream::AppPort(port) => {
            give_port(place, run, port, app_port, written)?;
            if !written.readiness_asked {
                // The server binds the port itself: it is ready once the port accepts.
                run.readiness = Readiness::TcpConnect(format!("127.0.0.1:{port}"));
            }
        }
        Upstream::Chosen if !written.readiness_asked => run.readiness = Readiness::GivenPort,
        Upstream::Chosen | Upstream::Held(_) => {}
    }
    Ok(ProxyConfig {
        listen: asked.listen.value,
        service: name.to_owned(),
        upstream,
        hold_timeout: asked.hold_timeout,
        inject: asked.inject,
        allowed_hosts: asked.allowed_hosts,
    })
}

/// An error about the `PORT` of `[run] env`, at its line when the file writes it.
fn port_error(place: &Place<'_>, written: &Written, message: String, help: &str) -> anyhow::Error {
    let message = format!("[run] env.PORT: {message}");
    super::with_help(place.among([written.port_at.as_ref()], message), help)
}

/// Where the proxy forwards: the first `--listen` socket, the app port, a PORT written in
/// `[run] env` (the port the user chose), or, with none of them, a port the engine chooses.
fn choose_upstream(
    place: &Place<'_>,
    run: &RunConfig,
    app_port: Option<&Named<u16>>,
    proxy_name: &str,
    written: &Written,
) -> Result<Upstream> {
    Ok(match (run.listeners.first(), app_port) {
        (Some(held), Some(app_port)) => {
            return Err(place.among(
                [app_port.span.as_ref()],
                format!(
                    "{} and --listen {} contradict each other: with --listen the proxy \
                     forwards to the socket reload holds for the server, so there is no app \
                     port\n  help: drop one of them",
                    app_port.name, held.address
                ),
            ));
        }
        (Some(held), None) => Upstream::Held(held_upstream(&held.address)?),
        (None, Some(app_port)) => Upstream::AppPort(app_port.value),
        // PORT written in [run] env is the port the user chose: the proxy forwards there.
        (None, None) => match run.env.get("PORT") {
            Some(port) => Upstream::AppPort(parse_port(port).map_err(|err| {
                let message = format!(
                    "with {proxy_name} and no app port, the proxy forwards to this PORT, and {err}"
                );
                let help = "drop PORT from [run] env to let reload choose a port";
                port_error(place, written, message, help)
            })?),
            None => Upstream::Chosen,
        },
    })
}

/// Refuse an app or held port that is the proxy's own.
fn refuse_same_port(
    place: &Place<'_>,
    listen: &Named<SocketAddr>,
    upstream: &Upstream,
    app_port: Option<&Named<u16>>,
) -> Result<()> {
    let upstream_addr = match upstream {
        Upstream::AppPort(port) => Some((
            SocketAddr::from(([127, 0, 0, 1], *port)),
            app_port.map_or_else(
                || format!("PORT = \"{port}\" in [run] env"),
                |p| p.name.clone(),
            ),
        )),
        Upstream::Held(addr) => Some((*addr, format!("--listen {addr}"))),
        // Chosen at start among the ports free then, which the proxy's is not.
        Upstream::Chosen => None,
    };
    if let Some((upstream_addr, upstream_name)) = upstream_addr
        && same_socket(listen.value, upstream_addr)
    {
        return Err(place.among(
            [listen.span.as_ref(), app_port.and_then(|p| p.span.as_ref())],
            format!(
                "{} and {upstream_name} are the same port: the browser connects to the proxy \
                 and the proxy to your server, so they need two ports\n  help: give the proxy \
                 another port, like {}",
                listen.name,
                listen.value.port().checked_add(10).unwrap_or(8090)
            ),
        ));
    }
    Ok(())
}

/// Where the proxy connects to a socket reload holds: the address it is bound to, loopback
/// for one bound to every interface (connecting to 0.0.0.0 is not portable).
fn held_upstream(address: &ListenAddress) -> Result<SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match address {
        ListenAddress::Tcp(addr) if addr.port() == 0 => Err(usage(format!(
            "--proxy forwards to the first --listen socket, and {addr} asks for any free port, \
             which the proxy could not find\n  help: --listen on a port of its own, like 3000"
        ))),
        ListenAddress::Tcp(addr) => Ok(match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
            }
            _ => *addr,
        }),
        ListenAddress::Unix(_) => Err(usage(format!(
            "--proxy forwards to the first --listen socket over TCP, and that one is {address}\n  \
             help: put a TCP --listen first, like --listen 3000"
        ))),
    }
}

/// Whether binding `proxy` would take `server`'s port: the same port on the same address,
/// or on every interface of either side.
fn same_socket(proxy: SocketAddr, server: SocketAddr) -> bool {
    proxy.port() == server.port()
        && (proxy.ip() == server.ip()
            || proxy.ip().is_unspecified()
            || server.ip().is_unspecified())
}

/// The server's `PORT`: the app port, which most frameworks read. A `PORT` in `[run] env`
/// that says the same is fine; one that says otherwise contradicts the proxy.
fn give_port(
    place: &Place<'_>,
    run: &mut RunConfig,
    port: u16,
    app_port: Option<&Named<u16>>,
    written: &Written,
) -> Result<()> {
    let port_text = port.to_string();
    match run.env.get("PORT") {
        Some(given) if given.trim() == port_text => Ok(()),
        Some(given) => {
            let app_port = app_port.map_or_else(|| port_text.clone(), |p| p.name.clone());
            let message = format!(
                "`{given}` contradicts {app_port}: the proxy forwards to port {port} and \
                 gives the server PORT={port}"
            );
            let help = "make them the same, or drop PORT from [run] env";
            Err(port_error(place, written, message, help))
        }
        None => {
            run.env.insert("PORT".to_owned(), port_text);
            Ok(())
        }
    }
}
