//! HTTP connections: the accept loop, with the limits that keep idle or hostile peers from
//! holding the server's file descriptors, and an end that cannot be blocked by a peer.
//!
//! - **Connection cap.** At most `max_connections` accepted connections at once (WebSockets
//!   included); one more is closed at once, and the first refusal of a burst is logged.
//! - **Header-read timeout.** From the moment the server waits for a request (the connection
//!   opened, or the previous response was sent), its whole head must arrive within
//!   `header_read_timeout` (hyper's timer), so a silent peer, a slowloris head or an idle
//!   keep-alive connection is closed.
//! - **Idle timeout.** Inside a request, a body that sends nothing for `idle_timeout` fails
//!   (the handler answers its error and the connection closes), and a response that the peer
//!   does not read for `idle_timeout` (a write pending that long) closes the connection.
//!   Upgraded connections (WebSockets) keep their own liveness rules (twilsock pings).
//! - **Bounded end.** On shutdown the listener closes, open connections finish their current
//!   request, and whatever is still open after `shutdown_timeout` is dropped.
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Limits on HTTP connections (`rehearsal serve` flags of the same names).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Time for a request's head to arrive, counted from when the server starts waiting for it.
    pub header_read_timeout: Duration,
    /// Longest a request body may send nothing, or a response go unread, before the
    /// connection is closed.
    pub idle_timeout: Duration,
    /// Longest shutdown waits for open connections before dropping them.
    pub shutdown_timeout: Duration,
}

/// Far above what tests or benchmarks open (`rehearsal bench connections` opens thousands of
/// WebSockets), below the usual soft limit of file descriptors after a raise; the cap exists so
/// that a flood is refused with a log line instead of failing `accept` for everyone.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Generous for any client on loopback or CI (they send a head in microseconds), short enough
/// that idle sockets do not pile up; longer than the keep-alive idle time of common HTTP
/// clients' pools, so they rarely reuse a socket the server is closing.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than any HTTP fault delay or webhook timeout a test uses for a stall on purpose
/// (those wait in handlers, not on the socket, and are not cut by it).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A few seconds: enough for in-flight requests on loopback, short enough for a supervisor.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Accepts and serves connections until `shutdown` completes, then ends them within
/// `limits.shutdown_timeout`. `on_shutdown` runs when the shutdown starts (the server tells its
/// WebSocket sessions to close there).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce() + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut refusing = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little instead of
                        // spinning; the cap should keep this from happening.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    if !refusing {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            %peer,
                            "connection cap reached: closing new connections until one ends (--max-connections)"
                        );
                        refusing = true;
                    }
                    drop(tcp);
                    continue;
                };
                refusing = false;
                // Small frames (twilsock replies, Sync pushes) must not wait for Nagle's
                // algorithm and the peer's delayed ACK (about 40 ms each time).
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                let app = app.clone();
                let limits = limits.clone();
                let closing = closing.clone();
                tasks.spawn(async move { serve_one(tcp, permit, peer, app, &limits, closing).await });
            }
        }
    }
    drop(listener);
    on_shutdown();
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            timeout_ms = limits.shutdown_timeout.as_millis() as u64,
            "connections still open at the shutdown deadline: dropping them"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

async fn serve_one(
    tcp: TcpStream,
    permit: OwnedSemaphorePermit,
    peer: SocketAddr,
    app: Router,
    limits: &ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let upgraded = Arc::new(AtomicBool::new(false));
    let io = Watched {
        io: tcp,
        _permit: permit,
        idle: limits.idle_timeout,
        upgraded: upgraded.clone(),
        stalled: None,
    };
    let idle = limits.idle_timeout;
    let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        // The peer address lets the control plane recognise loopback callers.
        req.extensions_mut().insert(ConnectInfo(peer));
        let req = req.map(|body| Body::new(tower_http::timeout::TimeoutBody::new(idle, body)));
        let app = app.clone();
        let upgraded = upgraded.clone();
        async move {
            let res = app.oneshot(req).await;
            if let Ok(r) = &res {
                if r.status() == StatusCode::SWITCHING_PROTOCOLS {
                    upgraded.store(true, Ordering::Relaxed);
                }
            }
            res
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), hyper_util::service::TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if !asked_to_close => {
                asked_to_close = true;
                if changed.is_ok() {
                    // Finish the request in flight, then close; idle connections close now.
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A TCP stream whose writes may not stay pending longer than the idle timeout (a peer that
/// does not read its response), until the connection is upgraded. It holds the connection's
/// place under the cap for as long as the socket lives, upgraded (a WebSocket) or not.
struct Watched<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    upgraded: Arc<AtomicBool>,
    /// Running while a write is pending.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<Io> Watched<Io> {
    /// After a pending write: an error once the write has been pending for the idle timeout.
    fn pending_write<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.upgraded.load(Ordering::Relaxed) {
            self.stalled = None;
            return Poll::Pending;
        }
        let idle = self.idle;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer read nothing for the idle timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(&mut self, r: io::Result<T>) -> Poll<io::Result<T>> {
        self.stalled = None;
        Poll::Ready(r)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => this.progressed(r),
            Poll::Pending => this.pending_write(cx),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => this.progressed(r),
            Poll::Pending => this.pending_write(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    fn watched(io: DuplexStream, idle: Duration) -> (Watched<DuplexStream>, Arc<AtomicBool>) {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().expect("a permit");
        let upgraded = Arc::new(AtomicBool::new(false));
        let w = Watched {
            io,
            _permit: permit,
            idle,
            upgraded: upgraded.clone(),
            stalled: None,
        };
        (w, upgraded)
    }

    #[tokio::test]
    async fn a_response_the_peer_does_not_read_fails_after_the_idle_timeout() {
        let (near, _far) = tokio::io::duplex(64);
        let (mut w, _) = watched(near, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), w.write_all(&[0u8; 1024]))
            .await
            .expect("the write ends by itself");
        assert_eq!(r.expect_err("a stalled write fails").kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_peer_that_reads_is_never_cut_however_long_the_transfer() {
        let (near, mut far) = tokio::io::duplex(64);
        let (mut w, _) = watched(near, Duration::from_millis(100));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            far.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        w.write_all(&[1u8; 256 * 1024]).await.expect("written");
        w.shutdown().await.expect("shut down");
        drop(w);
        assert_eq!(reader.await.expect("reader").expect("read"), 256 * 1024);
    }

    #[tokio::test]
    async fn an_upgraded_connection_keeps_its_own_liveness_rules() {
        let (near, _far) = tokio::io::duplex(64);
        let (mut w, upgraded) = watched(near, Duration::from_millis(50));
        upgraded.store(true, Ordering::Relaxed);
        let r = tokio::time::timeout(Duration::from_millis(400), w.write_all(&[0u8; 1024])).await;
        assert!(r.is_err(), "the write stays pending instead of failing: {r:?}");
    }
}
