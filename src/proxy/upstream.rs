//! The proxy's side of a connection to the app.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection to the app that answers the app's close with a reset.
///
/// The side of a TCP connection that closes first keeps it in TIME_WAIT for a minute. When the
/// app closes first (it is stopped with connections open, or it ends a connection after an
/// answer), that is on the app's own port, and a server that binds without SO_REUSEADDR
/// (Python's `socketserver` by default, many small servers) cannot take that port again until
/// it passes: with `--overlap` the next server on that port would fail to start. A reset in
/// answer to the app's FIN ends the app's half at once. The app has closed its socket already
/// and sees nothing; everything it sent was read before its FIN.
pub(crate) struct AppStream {
    inner: TcpStream,
    reset_armed: bool,
}

impl AppStream {
    pub(crate) fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            reset_armed: false,
        }
    }
}

impl AsyncRead for AppStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let end_of_stream = matches!(polled, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0;
        if end_of_stream && !this.reset_armed {
            // SO_LINGER 0: the close that follows sends a reset instead of a FIN.
            this.reset_armed = this.inner.set_zero_linger().is_ok();
        }
        polled
    }
}

impl AsyncWrite for AppStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset_armed {
            // hyper shuts its side down before it lets go of a closed connection: a FIN now
            // would complete the app's close and leave it in TIME_WAIT after all.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn when_the_app_closes_first_its_port_is_left_without_a_time_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connecting = TcpStream::connect(("127.0.0.1", port));
        let (connected, accepted) = tokio::join!(connecting, listener.accept());
        let mut proxy_side = AppStream::new(connected.unwrap());
        let (app_side, _) = accepted.unwrap();
        drop(listener);
        // The app closes first, as a server that is stopped does.
        drop(app_side);
        let mut rest = Vec::new();
        proxy_side.read_to_end(&mut rest).await.unwrap();
        // As hyper lets go of a connection the app closed: its side shut down, then dropped.
        proxy_side.shutdown().await.unwrap();
        drop(proxy_side);
        // A FIN in answer would leave the app's side in TIME_WAIT on `port`, which a server
        // binding without SO_REUSEADDR cannot take.
        for _ in 0..500 {
            if crate::process::free_ports::is_free(port) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(":{port} is still taken after the app closed first");
    }
}
