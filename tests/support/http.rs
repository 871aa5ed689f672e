//! A bare HTTP/1 client: one request on a new connection, the answer read until the server
//! closes it. Enough for the tests' servers and `examples/hello_server`, which all answer
//! `Connection: close` requests and then close.
//!
//! Shared by the integration tests (as `support::http`) and the dev-loop benchmark (included
//! through `#[path]`). Only std here. Each caller writes its own request (the HTTP version
//! decides how a server frames its body) and reads what it needs out of the answer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Send `request` (a whole request, head and empty line) to `address` and return the answer,
/// head and body, once the server closes the connection. `connect` bounds the connection,
/// `io` each read and write. An answer that is not UTF-8 is an `InvalidData` error.
pub(crate) fn exchange(
    address: SocketAddr,
    request: &str,
    connect: Duration,
    io: Duration,
) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, connect)?;
    stream.set_read_timeout(Some(io))?;
    stream.set_write_timeout(Some(io))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
