//! Who the proxy answers, checked before anything else happens to a request.
//!
//! The proxy runs all day on the developer's machine while the same browser visits the whole
//! web, and every page in that browser is "loopback" to it. So:
//! - **Host.** A page on `evil.example`, its name re-pointed at 127.0.0.1 (DNS rebinding), is
//!   same-origin with the proxy as far as the browser knows, and could read the app and the
//!   build output. Only requests for this machine's own names are answered: `localhost`,
//!   `*.localhost`, IP literals, and what the user allows (`--allow-host`). Vite
//!   (`server.allowedHosts`) and webpack-dev-server (`allowedHosts`) do the same.
//! - **Origin.** reload's own endpoints answer only their own pages: a foreign `Origin` never
//!   gets the event stream or the client, and never triggers a reload (CSRF). Requests
//!   without an `Origin` (curl, a watcher's script, `<script src>`) are not refused. No
//!   `Access-Control-Allow-Origin` is ever sent, so no other origin can read an answer.
//! - **Connections.** Each browser connection costs up to two descriptors; past
//!   [`Slots`]' cap a new one gets a 503 at once, so that builds and servers always have the
//!   descriptors they need.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::{HeaderMap, StatusCode, Uri, header};

use crate::config::HostPattern;

/// The most refused names warned about one by one; a page trying names by the thousand gets
/// one more line saying so, not a flooded terminal or a growing set.
const WARNED_HOSTS: usize = 32;

/// A request reload will not answer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// For a name the proxy does not answer to (as written, port and all).
    ForeignHost(String),
    /// To reload's own endpoint from a page of another origin.
    ForeignOrigin { origin: String, own: String },
    /// A trigger that the browser says comes from another site.
    CrossSite,
}

impl Refusal {
    /// The 403's text: what was refused, and how to allow it when that is the user's intent.
    pub(crate) fn text(&self, path: &str) -> String {
        match self {
            Refusal::ForeignHost(host) => format!(
                "reload: the dev proxy does not answer requests for `{host}`: it answers \
                 localhost, *.localhost and IP addresses only, so that no other web page can \
                 read your app or its build output (DNS rebinding).\nIf you reach the proxy by \
                 this name, allow it: --allow-host {name}, or allowed_hosts = [\"{name}\"] under \
                 [proxy] in reload.toml.\n",
                name = host_name(host)
            ),
            Refusal::ForeignOrigin { origin, own } => {
                format!("reload: {path} answers only pages of this proxy ({own}), not {origin}\n")
            }
            Refusal::CrossSite => format!(
                "reload: {path} does not answer requests that another site's page sends \
                 (Sec-Fetch-Site: cross-site)\n"
            ),
        }
    }
}

/// The names the proxy answers to, and those it has warned about.
pub(crate) struct Hosts {
    allowed: Vec<HostPattern>,
    warned: Mutex<HashSet<String>>,
}

impl Hosts {
    pub(crate) fn new(allowed: Vec<HostPattern>) -> Self {
        Self {
            allowed,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Refuses a request for a name the proxy does not answer to. Both places a request names
    /// its host are checked: the Host header and an absolute-form target
    /// (`GET http://name/ HTTP/1.1`). A request that names none (HTTP/1.0) is answered.
    pub(crate) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let from_target = uri
            .authority()
            .map(|authority| authority.as_str().to_owned());
        let from_header = headers
            .get_all(header::HOST)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        for host in from_target.into_iter().chain(from_header) {
            if !self.allows(&host) {
                return Err(Refusal::ForeignHost(host));
            }
        }
        Ok(())
    }

    fn allows(&self, authority: &str) -> bool {
        let name = host_name(authority);
        if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if name.parse::<Ipv4Addr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|inner| inner.strip_suffix(']'))
                .is_some_and(|inner| inner.parse::<Ipv6Addr>().is_ok())
        {
            return true;
        }
        self.allowed.iter().any(|pattern| pattern.allows(&name))
    }

    /// Whether `host` is refused for the first time (and so is worth a line in the terminal).
    pub(crate) fn first_refusal(&self, host: &str) -> FirstRefusal {
        let mut warned = super::lock(&self.warned);
        let name = host_name(host);
        if warned.contains(&name) {
            return FirstRefusal::No;
        }
        match warned.len() {
            n if n < WARNED_HOSTS => {
                warned.insert(name);
                FirstRefusal::Yes
            }
            WARNED_HOSTS => {
                // One entry past the cap stands for "said that there are more".
                warned.insert(String::new());
                FirstRefusal::TooMany
            }
            _ => FirstRefusal::No,
        }
    }
}

/// Whether a refused host is worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstRefusal {
    Yes,
    /// The first refusal past the names warned about one by one.
    TooMany,
    No,
}

/// The name in an authority (`Name:8090`, `[::1]:8090`, `name.`), lowercase, without its
/// port or a trailing dot; an IPv6 literal keeps its brackets.
pub(crate) fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let name = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority, |end| &authority[..=end])
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(name, _port)| name)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

/// Refuses a request to one of reload's own endpoints from a page of another origin: its
/// `Origin` must be the proxy's own (`http://` and the Host the request was sent to), or
/// absent. `Origin: null` (a sandboxed frame, a file) is foreign.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes()).trim().to_owned();
    let own = headers.get(header::HOST).map_or_else(String::new, |host| {
        format!("http://{}", String::from_utf8_lossy(host.as_bytes()).trim())
    });
    if !own.is_empty() && origin.eq_ignore_ascii_case(&own) {
        return Ok(());
    }
    Err(Refusal::ForeignOrigin { origin, own })
}

/// Refuses a trigger from another site's page: a foreign `Origin`, or what the browser itself
/// says (`Sec-Fetch-Site: cross-site`, sent even where `Origin` is not).
pub(crate) fn same_site(headers: &HeaderMap) -> Result<(), Refusal> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(Refusal::CrossSite);
    }
    same_origin(headers)
}

/// The 403 a refused request gets.
pub(crate) fn forbidden(refusal: &Refusal, path: &str) -> http::Response<super::Body> {
    super::text(StatusCode::FORBIDDEN, refusal.text(path))
}

/// Open browser connections, capped so that they can never take the descriptors that builds
/// and servers need.
pub(crate) struct Slots {
    open: AtomicUsize,
    cap: usize,
    /// Reaching the cap is said once per run.
    warned: AtomicBool,
}

/// Descriptors kept for everything but browser connections: reload's own (runtimes, the
/// watcher, held sockets, the guardian's pipe), builds' and servers' pipes, probes.
const RESERVED: u64 = 128;

/// The fewest and the most connections allowed, whatever the limit says.
const CAP: (usize, usize) = (16, 4096);

impl Slots {
    /// Slots for a process whose soft descriptor limit is `limit`: each connection may hold
    /// two (the browser's and the app's).
    pub(crate) fn for_limit(limit: u64) -> Self {
        let cap = usize::try_from(limit.saturating_sub(RESERVED) / 2).unwrap_or(usize::MAX);
        Self {
            open: AtomicUsize::new(0),
            cap: cap.clamp(CAP.0, CAP.1),
            warned: AtomicBool::new(false),
        }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for one more connection, held until it closes; `None` at the cap.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.cap).then_some(open + 1)
            })
            .ok()?;
        Some(Slot(self.clone()))
    }

    /// Whether reaching the cap is news (the first time this run).
    pub(crate) fn first_time_full(&self) -> bool {
        !self.warned.swap(true, Ordering::Relaxed)
    }
}

/// One open connection's slot, given back when it drops.
pub(crate) struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection past the cap gets, written straight to the socket: no task, no buffer,
/// nothing held once it is sent.
pub(crate) fn full_answer(cap: usize) -> String {
    let body = format!(
        "reload: the dev proxy has {cap} connections open, the most its descriptor limit \
         allows (ulimit -n) while keeping some for builds and servers; try again when some \
         have closed, or raise the limit\n"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn hosts(allowed: &[&str]) -> Hosts {
        Hosts::new(
            allowed
                .iter()
                .map(|name| match name.strip_prefix("*.") {
                    Some(parent) => HostPattern::Under(parent.to_owned()),
                    None => HostPattern::Name((*name).to_owned()),
                })
                .collect(),
        )
    }

    fn checked(hosts: &Hosts, target: &str, host: Option<&str>) -> Result<(), Refusal> {
        let uri: Uri = target.parse().unwrap();
        let headers = host.map_or_else(HeaderMap::new, |host| headers(&[("host", host)]));
        hosts.check(&uri, &headers)
    }

    #[test]
    fn this_machines_names_and_ip_literals_are_answered() {
        let hosts = hosts(&[]);
        for host in [
            "localhost",
            "localhost:8090",
            "LOCALHOST.:8090",
            "app.localhost:8090",
            "a.b.localhost",
            "127.0.0.1:8090",
            "192.168.1.20:8090",
            "[::1]:8090",
            "[fe80::1]",
        ] {
            assert_eq!(checked(&hosts, "/", Some(host)), Ok(()), "{host}");
        }
        assert_eq!(checked(&hosts, "/", None), Ok(()), "HTTP/1.0 names no host");
    }

    #[test]
    fn other_names_are_refused_unless_allowed() {
        let plain = hosts(&[]);
        for host in [
            "evil.example:8090",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "evillocalhost",
            "[::1",
        ] {
            assert_eq!(
                checked(&plain, "/", Some(host)),
                Err(Refusal::ForeignHost(host.to_owned()))
            );
        }
        let allowed = hosts(&["myapp.test", "*.tunnel.example"]);
        assert_eq!(checked(&allowed, "/", Some("MyApp.test:8090")), Ok(()));
        assert_eq!(checked(&allowed, "/", Some("abc.tunnel.example")), Ok(()));
        assert!(checked(&allowed, "/", Some("tunnel.example")).is_err());
        assert!(checked(&allowed, "/", Some("www.myapp.test")).is_err());
    }

    #[test]
    fn an_absolute_target_is_checked_as_well_as_the_host_header() {
        let hosts = hosts(&[]);
        assert_eq!(
            checked(&hosts, "http://evil.example/", Some("localhost:8090")),
            Err(Refusal::ForeignHost("evil.example".to_owned()))
        );
        assert!(checked(&hosts, "http://localhost:8090/", Some("evil.example")).is_err());
    }

    #[test]
    fn the_refusal_names_the_host_and_both_ways_to_allow_it() {
        let text = Refusal::ForeignHost("Evil.Example:8090".into()).text("/");
        assert!(text.contains("`Evil.Example:8090`"), "{text}");
        assert!(text.contains("--allow-host evil.example"), "{text}");
        assert!(
            text.contains("allowed_hosts = [\"evil.example\"]"),
            "{text}"
        );
    }

    #[test]
    fn refused_hosts_are_warned_about_once_each_and_then_no_more() {
        let hosts = hosts(&[]);
        assert_eq!(hosts.first_refusal("a.example:1"), FirstRefusal::Yes);
        assert_eq!(hosts.first_refusal("A.example:2"), FirstRefusal::No);
        for n in 1..WARNED_HOSTS {
            assert_eq!(
                hosts.first_refusal(&format!("{n}.example")),
                FirstRefusal::Yes
            );
        }
        assert_eq!(hosts.first_refusal("x.example"), FirstRefusal::TooMany);
        assert_eq!(hosts.first_refusal("y.example"), FirstRefusal::No);
        assert_eq!(super::super::lock(&hosts.warned).len(), WARNED_HOSTS + 1);
    }

    #[test]
    fn own_endpoints_answer_no_origin_or_the_proxys_own() {
        assert_eq!(same_origin(&headers(&[("host", "localhost:8090")])), Ok(()));
        assert_eq!(
            same_origin(&headers(&[
                ("host", "localhost:8090"),
                ("origin", "http://LOCALHOST:8090")
            ])),
            Ok(())
        );
        for origin in ["http://evil.example:8090", "null", "http://localhost:3000"] {
            assert_eq!(
                same_origin(&headers(&[("host", "localhost:8090"), ("origin", origin)])),
                Err(Refusal::ForeignOrigin {
                    origin: origin.to_owned(),
                    own: "http://localhost:8090".to_owned()
                })
            );
        }
        assert!(
            same_origin(&headers(&[("origin", "http://localhost:8090")])).is_err(),
            "no Host, no own origin to match"
        );
    }

    #[test]
    fn the_trigger_refuses_what_the_browser_says_is_cross_site() {
        let cross = headers(&[("host", "localhost:8090"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(same_site(&cross), Err(Refusal::CrossSite));
        let own = headers(&[
            ("host", "localhost:8090"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(same_site(&own), Ok(()));
        assert_eq!(same_site(&headers(&[])), Ok(()), "curl");
    }

    #[test]
    fn slots_stop_at_the_cap_and_come_back_when_connections_close() {
        let slots = Arc::new(Slots::for_limit(256));
        assert_eq!(slots.cap(), 64);
        let taken: Vec<Slot> = (0..64).map(|_| slots.take().unwrap()).collect();
        assert!(slots.take().is_none());
        drop(taken);
        assert!(slots.take().is_some());
        assert_eq!(Slots::for_limit(100).cap(), CAP.0);
        assert_eq!(Slots::for_limit(1 << 20).cap(), CAP.1);
        assert!(slots.first_time_full());
        assert!(!slots.first_time_full());
    }

    #[test]
    fn the_full_answer_is_one_complete_http_response() {
        let answer = full_answer(64);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains("64 connections"));
    }
}
