//! `--overlap` behind the proxy with servers that cannot bind a taken port: the second port is
//! chosen below the kernel's ephemeral range, so no outgoing connection takes it, and a port
//! found taken anyway (a connection in TIME_WAIT on it, or another program listening there)
//! is replaced by a free one, once per start, so every save still swaps.

use std::net::TcpListener;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, setsockopt, socket, sockopt,
};

use super::{Proxied, proxied, sockets_on, start};
use crate::support::{AppStart, Project};

/// `/proc/net/tcp`'s TIME_WAIT state.
const TIME_WAIT: &str = "06";

/// The proxy tests' project at v0, its server binding without SO_REUSEADDR (as many small
/// servers do, and so failing on a port in TIME_WAIT), with `more` app.py settings (TOML).
fn binding_without_reuse(more: &str) -> Project {
    proxied("v0").config(&format!(
        "[watch]\npaths = [\"src\"]\n\n[build]\ncmd = \"sh build.sh\"\n\n\
         [run]\ncmd = [\"python3\", \"app.py\"]\nenv = {{ NO_REUSE_ADDRESS = \"1\"{more} }}\n"
    ))
}

#[test]
fn with_overlap_every_save_swaps_while_the_second_port_is_held_in_time_wait() {
    let project = binding_without_reuse("");
    let proxied = start(&project, &["--overlap"]);
    proxied.wait_serving("v0");
    let second = second_port(&proxied);
    let ephemeral = ephemeral_start();
    assert!(
        (1024..ephemeral).contains(&second),
        ":{second} is below the ephemeral range, which starts at {ephemeral}{}",
        proxied.session.context()
    );
    assert_eq!(
        start_of(&project, "v0").field("port"),
        second.to_string(),
        "the first server takes the second port"
    );

    // v1 takes the app port; once v0 is gone, a client connection that closes first leaves
    // the second port in TIME_WAIT, as a busy machine's outgoing connections do.
    project.write("src/version.txt", "v1\n");
    proxied.wait_serving("v1");
    // A server that binds without SO_REUSEADDR and is killed with connections open may have
    // left one there already; else the test makes one.
    proxied
        .session
        .wait_until(&format!("a connection in TIME_WAIT on :{second}"), || {
            (!sockets_on(second, TIME_WAIT).is_empty() || time_wait_on(second).is_ok())
                .then_some(())
        });
    assert!(
        !sockets_on(second, TIME_WAIT).is_empty(),
        ":{second} is in TIME_WAIT"
    );

    for run in 2..=5 {
        let version = format!("v{run}");
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.wait_serving(&version);
    }
    let stderr = proxied.session.stderr();
    assert!(
        stderr.contains(&format!("the new app's port :{second} is in use"))
            && stderr.contains("TIME_WAIT"),
        "the move is said{}",
        proxied.session.context()
    );
    assert!(
        !stderr.contains("before it was ready"),
        "no server failed{}",
        proxied.session.context()
    );
    let ports: Vec<String> = (2..=5)
        .map(|run| {
            start_of(&project, &format!("v{run}"))
                .field("port")
                .to_owned()
        })
        .collect();
    assert!(
        !ports.contains(&second.to_string()),
        "no server after it was taken started on :{second}: {ports:?}"
    );
}

#[test]
fn with_overlap_a_server_whose_port_is_taken_as_it_starts_is_started_again_on_another() {
    let project = binding_without_reuse(", GATED_VERSION = \"v1\"");
    let proxied = start(&project, &["--overlap"]);
    proxied.wait_serving("v0");
    let second = second_port(&proxied);
    let app = proxied.app;

    // v1 is given the app port and waits before binding it; the port goes into TIME_WAIT
    // meanwhile, after reload's check before the spawn, so v1 fails on its bind.
    project.write("src/version.txt", "v1\n");
    proxied.session.wait_until("v1 to wait at its gate", || {
        project
            .scratch_lines("gate.log")
            .iter()
            .any(|line| line.contains(&format!("version=v1 port={app}")))
            .then_some(())
    });
    time_wait_on(app).unwrap_or_else(|err| {
        panic!(
            "a connection in TIME_WAIT on :{app}: {err}{}",
            proxied.session.context()
        )
    });
    std::fs::write(project.scratch("gate"), "").expect("open the gate");

    proxied.wait_serving("v1");
    let stderr = proxied.session.stderr();
    assert!(
        stderr.contains(&format!(
            "exited before it was ready, and its port :{app} is in use"
        )) && stderr.contains("starting it again on :"),
        "{}",
        proxied.session.context()
    );
    let moved = start_of(&project, "v1").field("port").to_owned();
    assert!(
        moved != app.to_string() && moved != second.to_string(),
        "v1 runs on a third port: :{moved}"
    );
    // The new port takes the app port's place in the turns.
    for run in 2..=3 {
        let version = format!("v{run}");
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.wait_serving(&version);
    }
    assert!(
        !proxied.session.stderr().contains("keeps serving"),
        "every save swapped{}",
        proxied.session.context()
    );
}

/// The second port, from the startup line "servers take turns on :APP and :SECOND".
#[track_caller]
fn second_port(proxied: &Proxied<'_>) -> u16 {
    let needle = format!("servers take turns on :{} and :", proxied.app);
    let stderr = proxied.session.stderr();
    let at = stderr.find(&needle).map(|at| at + needle.len());
    let digits: String = at
        .map(|at| {
            stderr[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect()
        })
        .unwrap_or_default();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no {needle:?}{}", proxied.session.context()))
}

/// Where the kernel's ephemeral ports start (IANA's 49152 where it does not say).
pub(super) fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(49152)
}

/// The (last) logged start of `version`.
#[track_caller]
fn start_of(project: &Project, version: &str) -> AppStart {
    project
        .starts()
        .into_iter()
        .rev()
        .find(|start| start.version == version)
        .unwrap_or_else(|| panic!("no start of {version}: {:?}", project.starts()))
}

/// Leave a connection in TIME_WAIT on 127.0.0.1:`port`: a client socket bound there (with
/// SO_REUSEADDR, which a TIME_WAIT of its own kind allows) connects to a listener of the
/// test's and closes first. Fails while anything else holds the port.
fn time_wait_on(port: u16) -> nix::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|_| nix::errno::Errno::EIO)?;
    let Ok(std::net::SocketAddr::V4(to)) = listener.local_addr() else {
        return Err(nix::errno::Errno::EAFNOSUPPORT);
    };
    let client = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&client, sockopt::ReuseAddr, &true)?;
    bind(client.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port))?;
    connect(client.as_raw_fd(), &SockaddrIn::from(to))?;
    let (accepted, _) = listener.accept().map_err(|_| nix::errno::Errno::EIO)?;
    drop(client);
    // Close the accepted side only once the client's FIN arrived: the client closed first,
    // so the TIME_WAIT is on its side, on `port`.
    let mut accepted = accepted;
    let _ = accepted.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = std::io::Read::read(&mut accepted, &mut [0u8; 1]);
    Ok(())
}

#[test]
fn with_overlap_a_browsers_kept_alive_connections_leave_no_server_port_in_time_wait() {
    let project = binding_without_reuse("");
    let proxied = start(&project, &["--overlap"]);
    proxied.wait_serving("v0");
    // As a browser does: one connection kept open, a request on it now and then, so the proxy
    // keeps its own connection to the server that answered.
    let mut browser = std::net::TcpStream::connect(("127.0.0.1", proxied.proxy)).unwrap();
    browser
        .set_read_timeout(Some(crate::support::DEADLINE))
        .unwrap();
    for run in 1..=4 {
        assert_eq!(
            kept_alive_get(&mut browser, proxied.proxy),
            format!("version v{}", run - 1)
        );
        let version = format!("v{run}");
        project.write("src/version.txt", &format!("{version}\n"));
        proxied.wait_serving(&version);
    }
    let stderr = proxied.session.stderr();
    assert!(
        !stderr.contains("is in use"),
        "the proxy closed its idle connections to the old server before it stopped, so no \
         server's port was left in TIME_WAIT{}",
        proxied.session.context()
    );
}

/// GET /text on a kept-alive connection: the body.
fn kept_alive_get(stream: &mut std::net::TcpStream, port: u16) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    stream
        .write_all(format!("GET /text HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}
