//! Where a session starts: the `GET` route that upgrades to a WebSocket, and the task that
//! joins the driver and the writer of one socket (both borrow it: see `socket`).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use tokio::sync::watch;
use tokio::time;
use tracing::Instrument;

use super::super::backend::{Backend, EndReason, SessionObservation};
use super::super::outbox::Frames;
use super::super::outbox::Outbox;
use super::orders::{self, Orders};
use super::socket::Socket;
use super::upstream::Upstream;
use super::writer::{self, WriterOrders, write_loop};
use super::{End, Session, SessionConfig, TokenTimers};
use crate::clock::Clock;

/// Source of session ids: unique per process, also across several servers in one test binary.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Everything a new socket needs; cheap to clone. Mount it with [`route`].
pub struct Endpoint<B> {
    backend: Arc<B>,
    clock: Clock,
    config: Arc<SessionConfig>,
    shutdown: watch::Receiver<bool>,
}

impl<B> Clone for Endpoint<B> {
    fn clone(&self) -> Self {
        Endpoint {
            backend: self.backend.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<B: Backend> Endpoint<B> {
    /// `shutdown`: every session closes its socket (WebSocket close 1001) once the value is
    /// `true` **or the sender is dropped**, so keep the sender alive for as long as the server
    /// runs.
    pub fn new(backend: Arc<B>, clock: Clock, config: SessionConfig, shutdown: watch::Receiver<bool>) -> Endpoint<B> {
        Endpoint {
            backend,
            clock,
            config: Arc::new(config),
            shutdown,
        }
    }
}

/// The `GET` handler for [`PATH`], to mount on any router:
/// `.route(twilsock::session::PATH, twilsock::session::route(endpoint))`.
///
/// Any `Origin` is accepted (browsers on any dev-server port must be able to connect), no
/// sub-protocol is negotiated, and WebSocket messages are limited to
/// [`SessionConfig::max_message_bytes`].
pub fn route<B: Backend, S>(endpoint: Endpoint<B>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(upgrade::<B>).with_state(endpoint)
}

/// The socket read chunk (see `upgrade`).
const READ_BUFFER_BYTES: usize = 1024;

async fn upgrade<B: Backend>(State(ep): State<Endpoint<B>>, ws: WebSocketUpgrade) -> Response {
    let max = ep.config.max_message_bytes();
    // tungstenite zero-fills its read buffer (128 KiB by default) before every read: with an
    // ack per delivered frame that memset was a quarter of the server's CPU under fan-out, and
    // the buffer most of an idle connection's memory. Frames are small (the SDK's ack is about
    // 150 bytes; 1 KiB instead of 4 KiB saved 2 KB per connection in `bench connections`, and
    // the memset per read that finds nothing); larger ones still arrive, read in more chunks.
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve_socket(socket, ep.backend, ep.clock, (*ep.config).clone(), ep.shutdown))
}

/// Serves one upgraded socket until the session ends; calls [`Backend::session_closed`] exactly
/// once if `init` had succeeded. Never panics on anything the client sends.
///
/// `shutdown`: see [`Endpoint::new`].
///
/// Not an `async fn`: the session's parts are built here, before the future exists, so that
/// the future holds each of them once. (An `async fn` keeps its arguments for its whole life,
/// so the socket and the settings would be stored twice in every connection's task: as
/// arguments and as the session's.)
pub fn serve_socket<B: Backend>(
    socket: WebSocket,
    backend: Arc<B>,
    clock: Clock,
    config: SessionConfig,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("twilsock", session = id);
    let (outbox, frames) = Outbox::new(config.outbox_capacity, config.outbox_bytes);
    let (writer_link, writer_orders) = writer::link();
    let (commands_tx, commands_rx) = orders::queue();
    let mut parts = Parts {
        socket: Socket::new(socket),
        session: Session {
            id,
            backend,
            clock,
            config,
            outbox,
            writer: writer_link,
            latency: Duration::ZERO,
            commands: commands_tx,
            established: None,
            timers: TokenTimers::default(),
            upstream: Upstream::default(),
            ended: false,
            acks: 0,
        },
        commands: commands_rx,
        shutdown,
    };
    async move { run_session(&mut parts, frames, writer_orders).await }.instrument(span)
}

/// What one session's task owns (see [`serve_socket`]).
struct Parts<B: Backend> {
    socket: Socket,
    session: Session<B>,
    commands: Orders,
    shutdown: watch::Receiver<bool>,
}

/// `frames` and `writer_orders` go to the writer (a few words each: stored twice, they cost
/// nothing worth avoiding).
async fn run_session<B: Backend>(parts: &mut Parts<B>, frames: Frames, writer_orders: WriterOrders) {
    tracing::debug!("socket connected");
    let session = &mut parts.session;
    let grace = session.config.close_grace;
    session.observe(SessionObservation::Accepted);

    let mut stream = parts.socket.reader();
    let writer = write_loop(parts.socket.writer(), frames, writer_orders, crate::frame_tap::Tap(session.id));
    tokio::pin!(writer);
    let end = tokio::select! {
        res = &mut writer => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "socket write failed");
            }
            End::Abrupt
        }
        end = session.run(&mut stream, &parts.commands, &mut parts.shutdown) => end,
    };
    // Commands still queued will never be applied: dropping them tells their waiters so now.
    parts.commands.close();
    // Only when the writer ended first (the driver reports its own reasons).
    session.finish(EndReason::ConnectionLost);
    if end == End::Graceful {
        match time::timeout(grace, &mut writer).await {
            Err(_) => tracing::debug!("close frame not written in time"),
            Ok(Err(e)) => tracing::debug!(error = %e, "socket write failed while closing"),
            Ok(Ok(())) => {}
        }
    }
    tracing::debug!(?end, "socket done");
}
