//! Readiness: when a freshly started server can take over. `notify` gives each server its own
//! NOTIFY_SOCKET (the sd_notify protocol) and waits for `READY=1` from that server; `http` waits
//! for any HTTP response from a URL; `tcp` for a port that accepts a connection.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::socket::{MsgFlags, recvmsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::HttpProbe;
use crate::status;

/// A unix datagram socket one server reports its state to. The file is removed on drop.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    path: PathBuf,
    socket: tokio::net::UnixDatagram,
}

/// A directory only reload's user can enter (mkdtemp makes it 0700), for the notify sockets. In
/// a shared directory such as /tmp, a predictable socket name could be taken first by another
/// user, who would then receive (or block) the server's messages; a fresh private directory
/// leaves nobody else a name to take. Removed, with what is left in it, when dropped.
#[derive(Debug)]
pub(crate) struct NotifyDir {
    path: PathBuf,
}

impl NotifyDir {
    pub(crate) fn create() -> Result<Self> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let template = base.join("reload-notify-XXXXXX");
        let path = nix::unistd::mkdtemp(&template).with_context(|| {
            format!(
                "cannot create a private directory for notify sockets in `{}`",
                base.display()
            )
        })?;
        Ok(NotifyDir { path })
    }
}

impl Drop for NotifyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl NotifySocket {
    pub(crate) fn create(dir: &NotifyDir) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.path.join(format!("{n}.notify"));
        let socket = std::os::unix::net::UnixDatagram::bind(&path)
            .with_context(|| format!("cannot create the notify socket `{}`", path.display()))?;
        // From here on the file is ours to remove, whatever fails next.
        let cleanup = RemoveOnDrop(path);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::PassCred, &true)
            .context("cannot ask for sender credentials on the notify socket")?;
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UnixDatagram::from_std(socket)?;
        Ok(NotifySocket {
            path: cleanup.disarm(),
            socket,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for `READY=1` from a process of the server's group (`pgid`). Messages from other
    /// processes and malformed ones are reported and skipped.
    pub(crate) async fn ready(&self, pgid: i32) -> Result<()> {
        let mut buffer = vec![0u8; 4096];
        loop {
            self.socket.readable().await?;
            let received = self.socket.try_io(tokio::io::Interest::READABLE, || {
                receive(self.socket.as_raw_fd(), &mut buffer)
            });
            let (length, sender) = match received {
                Ok(received) => received,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err.into()),
            };
            if let Some(sender) = sender
                && sender != pgid
                && nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(sender)))
                    .map_or(true, |group| group.as_raw() != pgid)
            {
                status::error(&format!(
                    "ignored a notify message from pid {sender}, which is not the new app"
                ));
                continue;
            }
            match parse(&buffer[..length]) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(bad) => status::error(&format!(
                    "the app sent a malformed notify message ({bad}); expected lines like READY=1"
                )),
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct RemoveOnDrop(PathBuf);

impl RemoveOnDrop {
    fn disarm(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One datagram: its length and, where the OS tells, the sender's pid.
fn receive(fd: RawFd, buffer: &mut [u8]) -> std::io::Result<(usize, Option<i32>)> {
    let mut iov = [IoSliceMut::new(buffer)];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let message = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::empty())?;
        let sender = message.cmsgs()?.find_map(|cmsg| match cmsg {
            nix::sys::socket::ControlMessageOwned::ScmCredentials(credentials) => {
                Some(credentials.pid())
            }
            _ => None,
        });
        Ok((message.bytes, sender))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let message = recvmsg::<()>(fd, &mut iov, None, MsgFlags::empty())?;
        Ok((message.bytes, None))
    }
}

/// sd_notify messages are newline-separated `KEY=VALUE` lines. `Ok(true)` when one is READY=1.
fn parse(message: &[u8]) -> Result<bool, String> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_owned())?;
    let mut ready = false;
    for line in text.lines().filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some(("READY", "1")) => ready = true,
            Some((key, _))
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => {}
            _ => return Err(format!("`{}`", line.chars().take(60).collect::<String>())),
        }
    }
    Ok(ready)
}

/// Poll `probe` until it answers with any HTTP response. A bare TCP connect proves nothing: with
/// an inherited socket the kernel accepts connections before the server does.
pub(crate) async fn http(probe: &HttpProbe) {
    let mut pauses = Pauses::new();
    loop {
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(2), answers(probe)).await {
            return;
        }
        tokio::time::sleep(pauses.next()).await;
    }
}

/// The pauses between two attempts of a probe: [`Pauses::FIRST`] during the first
/// [`Pauses::EAGER`] of the wait, then doubling up to [`Pauses::LONGEST`]. A server a dev loop
/// restarts mostly listens within a few tens of milliseconds, and every pause it listens in
/// comes on top of the save -> page time (half a pause on average); an attempt on a loopback
/// port nobody listens on yet is a refused connect, a few microseconds of work. A server slow
/// to start is tried at most every 10 ms from then on, as before.
struct Pauses {
    began: Instant,
    pause: Duration,
}

impl Pauses {
    const FIRST: Duration = Duration::from_millis(1);
    const EAGER: Duration = Duration::from_millis(50);
    const LONGEST: Duration = Duration::from_millis(10);

    fn new() -> Pauses {
        Pauses {
            began: Instant::now(),
            pause: Self::FIRST,
        }
    }

    fn next(&mut self) -> Duration {
        let pause = self.pause;
        if self.began.elapsed() >= Self::EAGER {
            self.pause = (self.pause * 2).min(Self::LONGEST);
        }
        pause
    }
}

/// Where a server given its own port turned out to listen.
pub(crate) enum Listens {
    /// On the port it was given: it reads PORT.
    Given,
    /// On these ports (in order), not on the one it was given.
    Elsewhere(Vec<u16>),
}

/// How long the ports a group listens on may keep changing before they count as where it
/// listens: servers that bind several ports (an app and its debugger or live-reload socket)
/// mostly bind them together, and a short wait keeps one seen first from being taken for all.
const SETTLE: Duration = Duration::from_millis(250);

/// Wait until a server given `turn.given` through PORT accepts there, or its process group
/// listens elsewhere: on the app's usual port (it ignores PORT: nothing else of its own may
/// hold that port, so /proc says so before a connection to it could mislead), or, once what
/// it listens on settled, on any other.
pub(crate) async fn own_port(turn: crate::supervise::PortTurn, pgid: i32) -> Listens {
    let given = format!("127.0.0.1:{}", turn.given);
    let usual = turn.app.filter(|app| *app != turn.given);
    // The usual port, or where the last server was followed to: no need to settle.
    let listens = elsewhere(turn.given, pgid, usual.or(turn.followed));
    // Where the last server was followed to is probed as eagerly as the given port (a
    // restart should not wait for the next read of /proc), and taken once /proc says the port
    // is this group's, not another program's.
    let followed = async {
        let Some(port) = turn.followed else {
            return std::future::pending().await;
        };
        let mut pauses = ProcPauses::default();
        loop {
            tcp(&format!("127.0.0.1:{port}")).await;
            let ports = crate::process::ports::listening_ports(pgid);
            if ports.contains(&port) {
                return ports.into_iter().collect();
            }
            // Another program's: looked at less and less often.
            tokio::time::sleep(pauses.next()).await;
        }
    };
    tokio::select! {
        () = tcp(&given) => Listens::Given,
        ports = listens => Listens::Elsewhere(ports),
        ports = followed => Listens::Elsewhere(ports),
    }
}

/// Wait until the process group `pgid` listens on TCP ports, none of them `expected`, and
/// they settled, or at once when one of them is `known`: those ports. Never returns while it
/// listens on `expected` or nowhere.
pub(crate) async fn elsewhere(expected: u16, pgid: i32, known: Option<u16>) -> Vec<u16> {
    let mut settled = Settled::default();
    let mut pauses = ProcPauses::default();
    loop {
        let ports = crate::process::ports::listening_ports(pgid);
        if known.is_some_and(|known| ports.contains(&known)) {
            return ports.into_iter().collect();
        }
        if let Some(ports) = settled.see(expected, ports, Instant::now()) {
            return ports;
        }
        tokio::time::sleep(pauses.next()).await;
    }
}

/// The ports a group was seen listening on, until they count as settled: the same, none of
/// them the expected one, for [`SETTLE`].
#[derive(Default)]
struct Settled {
    seen: Option<(std::collections::BTreeSet<u16>, Instant)>,
}

impl Settled {
    /// What /proc says now (`ports`, at `now`): the ports once settled, none of them `expected`.
    fn see(
        &mut self,
        expected: u16,
        ports: std::collections::BTreeSet<u16>,
        now: Instant,
    ) -> Option<Vec<u16>> {
        if ports.is_empty() || ports.contains(&expected) {
            self.seen = None;
            return None;
        }
        match &self.seen {
            Some((seen, since)) if *seen == ports => {
                (now.duration_since(*since) >= SETTLE).then(|| ports.into_iter().collect())
            }
            _ => {
                self.seen = Some((ports, now));
                None
            }
        }
    }
}

/// The pauses between two reads of /proc: each reads every process's stat, so a server slow
/// to start is looked at less often (10 ms doubling to 100 ms).
struct ProcPauses(Duration);

impl Default for ProcPauses {
    fn default() -> Self {
        ProcPauses(Duration::from_millis(10))
    }
}

impl ProcPauses {
    fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(Duration::from_millis(100));
        pause
    }
}

/// The port of a `host:port` on this machine (a name that is loopback, or an address that is
/// loopback or unspecified): where a group of its own could listen instead.
pub(crate) fn local_port(authority: &str) -> Option<u16> {
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    local.then(|| port.parse().ok()).flatten()
}

/// Poll `authority` until it accepts a TCP connection: for a server that binds its own port
/// (with `--listen` the held socket accepts before the server does, so this proves nothing
/// there). The connection is closed at once.
pub(crate) async fn tcp(authority: &str) {
    let mut pauses = Pauses::new();
    loop {
        let connect = tokio::net::TcpStream::connect(authority);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            return;
        }
        tokio::time::sleep(pauses.next()).await;
    }
}

async fn answers(probe: &HttpProbe) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(&probe.authority).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: reload\r\nConnection: close\r\n\r\n",
        probe.path, probe.authority
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await?;
    if &head != b"HTTP/" {
        return Ok(false);
    }
    // Read the rest before hanging up: a server still writing its answer to a closed socket
    // would log a broken pipe for every probe.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read_to_end(&mut rest)).await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_try_every_millisecond_at_first_then_back_off_to_ten() {
        let mut pauses = Pauses::new();
        assert_eq!(pauses.next(), Duration::from_millis(1));
        assert_eq!(
            pauses.next(),
            Duration::from_millis(1),
            "still within the eager part"
        );
        pauses.began -= Pauses::EAGER;
        let later: Vec<u64> = (0..6)
            .map(|_| u64::try_from(pauses.next().as_millis()).unwrap())
            .collect();
        assert_eq!(later, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn ports_count_once_they_stay_the_same_for_the_settle_time() {
        let start = Instant::now();
        let set = |ports: &[u16]| ports.iter().copied().collect();
        let mut settled = Settled::default();
        assert_eq!(settled.see(8080, set(&[]), start), None, "nowhere yet");
        assert_eq!(settled.see(8080, set(&[9229]), start), None, "just seen");
        let later = start + SETTLE / 2;
        assert_eq!(
            settled.see(8080, set(&[5000, 9229]), later),
            None,
            "changed"
        );
        assert_eq!(
            settled.see(8080, set(&[5000, 9229]), later + SETTLE / 2),
            None,
            "not settled since the change"
        );
        assert_eq!(
            settled.see(8080, set(&[5000, 9229]), later + SETTLE),
            Some(vec![5000, 9229])
        );
        let mut settled = Settled::default();
        assert_eq!(settled.see(8080, set(&[8080, 9229]), start), None);
        assert_eq!(
            settled.see(8080, set(&[8080, 9229]), start + SETTLE * 4),
            None,
            "it listens where expected"
        );
    }

    #[test]
    fn only_a_local_authority_has_a_port_of_the_group() {
        assert_eq!(local_port("127.0.0.1:8080"), Some(8080));
        assert_eq!(local_port("localhost:3000"), Some(3000));
        assert_eq!(local_port("[::1]:3000"), Some(3000));
        assert_eq!(local_port("0.0.0.0:3000"), Some(3000));
        assert_eq!(local_port("db.internal:5432"), None);
        assert_eq!(local_port("10.0.0.2:5432"), None);
        assert_eq!(local_port("nonsense"), None);
    }

    #[test]
    fn notify_messages() {
        assert_eq!(parse(b"READY=1"), Ok(true));
        assert_eq!(parse(b"STATUS=warming up\nREADY=1\n"), Ok(true));
        assert_eq!(parse(b"STATUS=warming up"), Ok(false));
        assert!(parse(b"hello there").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ready_comes_from_a_datagram() {
        let dir = NotifyDir::create().unwrap();
        let socket = NotifySocket::create(&dir).unwrap();
        let path = socket.path().to_owned();
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sender.send_to(b"garbage", &path).unwrap();
        sender.send_to(b"READY=1", &path).unwrap();
        let own_group = nix::unistd::getpgrp().as_raw();
        tokio::time::timeout(Duration::from_secs(30), socket.ready(own_group))
            .await
            .expect("READY=1 seen")
            .unwrap();
        drop(socket);
        assert!(!path.exists(), "the socket file is removed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn notify_sockets_live_in_a_directory_only_their_user_can_enter() {
        use std::os::unix::fs::PermissionsExt;
        let dir = NotifyDir::create().unwrap();
        let path = dir.path.clone();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", path.display());
        let socket = NotifySocket::create(&dir).unwrap();
        assert!(socket.path().starts_with(&path));
        drop(socket);
        drop(dir);
        assert!(!path.exists(), "the directory is removed");
    }
}
