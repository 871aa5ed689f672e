//! Ports a server can bind now, for `--overlap` behind the proxy, where servers take turns on
//! two ports. They are chosen below the kernel's ephemeral range: a port inside it is also the
//! local port of outgoing connections, and one of those waiting in TIME_WAIT makes a server's
//! `bind` fail with "address already in use" for a minute.
//!
//! "Free" is tested the way many servers bind: without `SO_REUSEADDR`, which a connection in
//! TIME_WAIT on the port is enough to refuse (Rust's `TcpListener::bind` sets it, so it would
//! not see the problem), on the IPv4 and the IPv6 wildcard, which conflict with any address.

use std::hash::{BuildHasher, RandomState};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, socket};

/// Where the kernel's ephemeral range starts when it cannot be read (IANA's dynamic ports,
/// also macOS's default).
const IANA_DYNAMIC: u16 = 49152;
/// How many candidates are tried before giving up: enough that a few busy ports do not
/// matter, bounded so that a machine with every port taken costs milliseconds, not a loop.
const TRIES: u64 = 64;
/// The lowest port that is not privileged.
const UNPRIVILEGED: u16 = 1024;

#[cfg(any(target_os = "linux", target_os = "android"))]
const CLOEXEC: SockFlag = SockFlag::SOCK_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CLOEXEC: SockFlag = SockFlag::empty();

/// A port that is free now (as [`is_free`] says), not one of `avoid`, below the ephemeral
/// range and in its upper half, away from the well-known and the usual dev ports (3000,
/// 5432, 8080, ...). Spread at random, so that two reloads on one machine do not pick the
/// same one. `None` when the range leaves no room or no candidate was free.
pub fn choose(avoid: &[u16]) -> Option<u16> {
    let (low, high) = candidates(ephemeral_start());
    let span = u64::from(high.checked_sub(low).filter(|span| *span > 0)?);
    let random = RandomState::new();
    (0..TRIES)
        .map(|attempt| low + u16::try_from(random.hash_one(attempt) % span).unwrap_or(0))
        .find(|port| !avoid.contains(port) && is_free(*port))
}

/// Whether a server binding `port` without `SO_REUSEADDR`, on any address, succeeds now.
pub fn is_free(port: u16) -> bool {
    let v4 = SockaddrIn::new(0, 0, 0, 0, port);
    let v6 = SockaddrIn6::from(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        port,
        0,
        0,
    ));
    let bindable = |family, address: &dyn nix::sys::socket::SockaddrLike| {
        let Ok(fd) = socket(family, SockType::Stream, CLOEXEC, None) else {
            // No socket at all (no IPv6 on this machine): no server binds there either.
            return true;
        };
        // Only "in use" counts: an IPv6 wildcard on a machine without IPv6 addresses fails
        // otherwise, and no server binds there either.
        bind(fd.as_raw_fd(), address) != Err(Errno::EADDRINUSE)
    };
    bindable(AddressFamily::Inet, &v4) && bindable(AddressFamily::Inet6, &v6)
}

/// The ports [`choose`] picks from, `low..high`: the upper half of what lies below the
/// ephemeral range's start, and never a privileged port.
fn candidates(ephemeral_start: u16) -> (u16, u16) {
    (UNPRIVILEGED.max(ephemeral_start / 2), ephemeral_start)
}

/// The first port of the kernel's ephemeral range (Linux); [`IANA_DYNAMIC`] elsewhere.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range(&text))
        .map_or(IANA_DYNAMIC, |(start, _)| start)
}

/// `ip_local_port_range` as the kernel writes it: two numbers, separated by white space.
fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let (start, end) = (numbers.next()?.ok()?, numbers.next()?.ok()?);
    (numbers.next().is_none() && start <= end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_read_as_the_kernel_writes_it() {
        assert_eq!(parse_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_range("1024 65535"), Some((1024, 65535)));
        for bad in ["", "32768", "60999 32768", "a b", "1 2 3", "70000 80000"] {
            assert_eq!(parse_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn candidates_stay_below_the_range_and_above_the_privileged_ports() {
        assert_eq!(candidates(32768), (16384, 32768));
        assert_eq!(candidates(49152), (24576, 49152));
        assert_eq!(candidates(1500), (1024, 1500));
        let (low, high) = candidates(1024);
        assert!(low >= high, "no room below a range that starts at 1024");
    }

    #[test]
    fn a_chosen_port_is_below_the_ephemeral_range_and_bindable_without_reuse() {
        let start = ephemeral_start();
        let chosen: Vec<u16> = (0..8).filter_map(|_| choose(&[])).collect();
        assert!(!chosen.is_empty(), "some port below {start} is free");
        for port in &chosen {
            assert!((UNPRIVILEGED..start).contains(port), "{port} below {start}");
            // Bound without SO_REUSEADDR, as the servers that fail on TIME_WAIT bind.
            let fd = ipv4_socket();
            bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, *port))
                .unwrap_or_else(|errno| panic!("bind :{port}: {errno}"));
        }
        let distinct: std::collections::BTreeSet<_> = chosen.iter().collect();
        assert!(distinct.len() > 1, "spread, not one port: {chosen:?}");
    }

    #[test]
    fn a_port_held_in_time_wait_is_not_free() {
        let Some(port) = choose(&[]) else {
            panic!("no free port below the ephemeral range");
        };
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // The client binds `port` with SO_REUSEADDR (std sets it) and closes first: the
        // TIME_WAIT is on its side, on `port`.
        let client = time_wait_client(port, server.local_addr().unwrap());
        let (accepted, _) = server.accept().unwrap();
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(accepted);
        assert!(!is_free(port), ":{port} is in TIME_WAIT");
        assert!(
            choose(&[]).is_some_and(|other| other != port),
            "another one is chosen"
        );
    }

    #[test]
    fn a_listened_port_and_an_avoided_one_are_not_chosen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!is_free(listener.local_addr().unwrap().port()));
        let Some(port) = choose(&[]) else {
            panic!("no free port");
        };
        assert!(is_free(port));
        for _ in 0..32 {
            assert_ne!(choose(&[port]), Some(port));
        }
    }

    /// A TCP socket, IPv4, with no option set (no SO_REUSEADDR).
    fn ipv4_socket() -> std::os::fd::OwnedFd {
        socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap()
    }

    /// A connected client socket bound to 127.0.0.1:`port` with `SO_REUSEADDR`.
    fn time_wait_client(port: u16, to: std::net::SocketAddr) -> std::net::TcpStream {
        use nix::sys::socket::{connect, setsockopt, sockopt};
        let fd = ipv4_socket();
        setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
        let std::net::SocketAddr::V4(to) = to else {
            panic!("IPv4")
        };
        connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
        std::net::TcpStream::from(fd)
    }
}
