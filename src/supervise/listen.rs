//! Listening sockets that reload holds for its whole life and hands to every server, so the
//! port never closes across restarts: while no server accepts, the kernel queues connections in
//! the backlog, and clients see a delay, never a refusal.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr, bind, listen,
    setsockopt, socket, sockopt,
};

use crate::config::{ListenAddress, ListenSpec};
use crate::process;

/// Room for a deep queue of connections while no server is accepting (during a restart).
const BACKLOG: i32 = 1024;

/// Close-on-exec from the start where the platform allows it; elsewhere (macOS) the descriptor
/// becomes close-on-exec when it is moved up (`duplicate_above`), before any child is spawned.
#[cfg(any(target_os = "linux", target_os = "android"))]
const CLOEXEC: SockFlag = SockFlag::SOCK_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CLOEXEC: SockFlag = SockFlag::empty();

/// Listener descriptors are moved at least this high, so that placing them at 3, 4, ... in a
/// child never overwrites one not yet placed.
const FD_FLOOR: RawFd = 64;

#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) spec: ListenSpec,
    fd: OwnedFd,
    /// A unix socket file this listener created, removed when it is dropped.
    socket_file: Option<PathBuf>,
}

impl Listener {
    pub(crate) fn bind(spec: &ListenSpec, count: usize) -> Result<Self> {
        let (fd, socket_file) = match &spec.address {
            ListenAddress::Tcp(addr) => {
                let family = if addr.is_ipv4() {
                    AddressFamily::Inet
                } else {
                    AddressFamily::Inet6
                };
                let fd = socket(family, SockType::Stream, CLOEXEC, None)
                    .context("cannot create a socket")?;
                // Rebinding right after a previous reload exits must not wait for TIME_WAIT.
                // No SO_REUSEPORT: a second process must not be able to share the port.
                setsockopt(&fd, sockopt::ReuseAddr, &true)?;
                bind(fd.as_raw_fd(), &SockaddrStorage::from(*addr))
                    .map_err(|errno| bind_error(&spec.address, errno))?;
                (fd, None)
            }
            ListenAddress::Unix(path) => {
                remove_stale_socket(path)?;
                let fd = socket(AddressFamily::Unix, SockType::Stream, CLOEXEC, None)
                    .context("cannot create a socket")?;
                let addr = UnixAddr::new(path)
                    .map_err(|_| anyhow!("unix socket path `{}` is too long", path.display()))?;
                bind(fd.as_raw_fd(), &addr).map_err(|errno| bind_error(&spec.address, errno))?;
                (fd, Some(path.clone()))
            }
        };
        listen(&fd, Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN))
            .map_err(|errno| bind_error(&spec.address, errno))?;
        let floor = FD_FLOOR.max(3 + RawFd::try_from(count).unwrap_or(RawFd::MAX - 4) + 1);
        let fd =
            process::duplicate_above(&fd, floor).context("cannot move the socket descriptor")?;
        Ok(Listener {
            spec: spec.clone(),
            fd,
            socket_file,
        })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Bind every listener, in order. The first failure is the error; sockets bound so far close.
pub(crate) fn bind_all(specs: &[ListenSpec]) -> Result<Vec<Listener>> {
    specs
        .iter()
        .map(|spec| Listener::bind(spec, specs.len()))
        .collect()
}

fn bind_error(address: &ListenAddress, errno: Errno) -> anyhow::Error {
    let help = match (errno, address) {
        (Errno::EADDRINUSE, ListenAddress::Tcp(addr)) => format!(
            "\n  help: another process holds it (`ss -ltnp 'sport = :{}'` shows which); stop it \
             or choose another --listen address",
            addr.port()
        ),
        (Errno::EACCES, _) => {
            "\n  help: ports below 1024 need privileges; use a higher port".into()
        }
        (Errno::EADDRNOTAVAIL, _) => "\n  help: that address is not on this machine".into(),
        _ => String::new(),
    };
    anyhow!("cannot listen on {address}: {}{help}", errno.desc())
}

/// A socket file left by a process that is gone can be replaced; one that answers cannot.
fn remove_stale_socket(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(anyhow!(
            "cannot listen on unix:{}: a file that is not a socket is in the way",
            path.display()
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(anyhow!(
            "cannot listen on unix:{}: another process is listening on it",
            path.display()
        ));
    }
    std::fs::remove_file(path).with_context(|| format!("cannot remove `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ListenSpec {
        crate::config::parse_listen(text, std::path::Path::new("/")).unwrap()
    }

    #[test]
    fn a_port_in_use_names_the_address() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let err = Listener::bind(&spec(&port.to_string()), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("in use"), "{err}");
    }

    #[test]
    fn listeners_sit_above_the_descriptors_they_will_be_placed_at() {
        let listener = Listener::bind(&spec("127.0.0.1:0"), 2).unwrap();
        assert!(listener.raw_fd() >= FD_FLOOR);
    }

    #[test]
    fn a_unix_socket_file_is_removed_when_dropped() {
        let path = std::env::temp_dir().join(format!("reload-listen-{}.sock", std::process::id()));
        let listener = Listener::bind(&spec(&format!("unix:{}", path.display())), 1).unwrap();
        assert!(path.exists());
        drop(listener);
        assert!(!path.exists());
    }
}
