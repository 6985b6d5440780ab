//! Accepting connections so that no client, however hostile, can take what the run needs.
//!
//! `axum::serve` accepts every connection and keeps it as long as the client likes: a client
//! that opens thousands of idle sockets, sends its headers one byte a minute, or never reads
//! an event stream would hold a file descriptor each, and the run's file descriptors are the
//! ones its Parquet sink needs for its next part. So the server accepts here instead:
//!
//! - at most [`MAX_CONNECTIONS`] connections are open at once; one more is closed as soon as
//!   it is accepted (the client sees the connection reset, nothing else changes);
//! - a client has [`HEADER_TIMEOUT`] to send a request's headers, first request or next on a
//!   kept-alive connection (hyper's `header_read_timeout`), or the connection is closed;
//! - a connection whose writes make no progress for [`WRITE_STALL_TIMEOUT`] (a client that
//!   stopped reading, so that the socket buffers are full) is closed ([`StallGuard`]).
//!
//! A browser reading its event stream never comes near these limits, and if it is cut anyway
//! its `EventSource` reconnects by itself.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Sleep;

/// Most connections open at once; far below any file-descriptor limit the run lives under.
pub const MAX_CONNECTIONS: usize = 128;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection's writes may make no progress before it is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits one server applies (the constants above, shorter in unit tests).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time allowed for a request's headers.
    pub header_timeout: Duration,
    /// Time a write may wait for the client to read.
    pub write_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves; then asks every
/// open connection to finish its current response and returns (the caller drops the runtime
/// after a grace period, which cuts what is still open).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (socket, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait, then go on.
                    tracing::warn!("The web view could not accept a connection: {e}.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(socket); // Over the limit: closed at once.
            continue;
        };
        let _ = socket.set_nodelay(true);
        let io = TokioIo::new(StallGuard::new(socket, limits.write_stall_timeout));
        let service = TowerToHyperService::new(router.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = closing.wait_for(|closing| *closing) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    let _ = closing_tx.send(true);
}

/// A socket whose writes fail with [`io::ErrorKind::TimedOut`] once they have waited longer
/// than the timeout for the peer to read; reads pass through untouched.
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Set while a write waits: when it fires, the write fails.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled_since: None,
        }
    }

    /// `Pending` while a write may still wait; the error once it has waited too long.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let sleep = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Wraps a write's outcome: progress clears the stall clock, waiting runs it.
    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => match self.check_stall(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server with small limits on a free port, and what stops it.
    async fn start(
        limits: Limits,
        body_bytes: usize,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = "x".repeat(body_bytes);
        let router = Router::new().route("/", get(move || async move { body }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    async fn get_status(addr: std::net::SocketAddr) -> io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = vec![0u8; 12];
        s.read_exact(&mut head).await?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed_and_the_limit_frees_when_they_go() {
        let limits = Limits {
            max_connections: 4,
            ..Limits::default()
        };
        let (addr, _stop) = start(limits, 10).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(
                tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("connects"),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let over = get_status(addr).await;
        assert!(over.is_err(), "the fifth connection is closed: {over:?}");
        drop(idle);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get_status(addr).await.expect("answered"), "HTTP/1.1 200");
    }

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_cut_after_the_header_timeout() {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _stop) = start(limits, 10).await;
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        s.write_all(b"GET / HT").await.expect("part of a request");
        let started = Instant::now();
        // hyper may answer 408 first; either way the connection then ends.
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the connection is closed within 5 s");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "not before the timeout: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_after_the_write_stall_timeout() {
        let limits = Limits {
            write_stall_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        // Far more than the socket buffers hold, so the server's writes must wait.
        let (addr, _stop) = start(limits, 64 << 20).await;
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Drain what the buffers held: the stream must end well short of the whole body.
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got += n,
                Err(_) => panic!("the connection was not closed"),
            }
        }
        assert!(got < 64 << 20, "cut short: {got} bytes of {}", 64 << 20);
    }

    #[tokio::test]
    async fn a_reading_client_gets_a_large_answer_whole() {
        let limits = Limits {
            write_stall_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _stop) = start(limits, 8 << 20).await;
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.expect("read");
        assert!(
            all.len() > 8 << 20,
            "headers and the whole body: {}",
            all.len()
        );
    }
}
