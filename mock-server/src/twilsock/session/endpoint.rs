//! Where a session starts: the `GET` route that upgrades to a WebSocket, and the task that
//! joins the driver and the writer of one socket (both borrow it: see `socket`).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time;
use tracing::Instrument;

use super::super::backend::{Backend, EndReason, SessionObservation};
use super::super::outbox::Frames;
use super::super::outbox::Outbox;
use super::super::websocket;
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

/// The opening handshake (RFC 6455 §4.2): checks the request, answers `101 Switching
/// Protocols`, and serves the upgraded connection in a task of its own.
async fn upgrade<B: Backend>(State(ep): State<Endpoint<B>>, mut request: Request) -> Response {
    let accept = match accept(request.headers()) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return Refusal::NotUpgradable.into_response();
    };
    // `then` rather than an `async` block: the block would keep the endpoint's fields for the
    // session's whole life next to the session's own copies (see `serve_socket`).
    tokio::spawn(on_upgrade.then(move |upgraded| match upgraded {
        Ok(io) => Either::Left(serve_socket(TokioIo::new(io), ep.backend, ep.clock, ep.config, ep.shutdown)),
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade failed");
            Either::Right(std::future::ready(()))
        }
    }));
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Why a request cannot open a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("Connection header did not include 'upgrade'")]
    NoConnectionUpgrade,
    #[error("Upgrade header did not include 'websocket'")]
    NoUpgradeWebsocket,
    #[error("Sec-WebSocket-Version must be 13")]
    Version,
    #[error("Sec-WebSocket-Key header missing")]
    NoKey,
    #[error("this connection cannot be upgraded to a WebSocket")]
    NotUpgradable,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::Version | Refusal::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, self.to_string()).into_response();
        if self == Refusal::Version {
            // RFC 6455 §4.4: name the version this server speaks.
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

/// The `Sec-WebSocket-Accept` for a valid opening handshake.
fn accept(headers: &HeaderMap) -> Result<HeaderValue, Refusal> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(Refusal::NoConnectionUpgrade);
    }
    if !has_token(header::UPGRADE, "websocket") {
        return Err(Refusal::NoUpgradeWebsocket);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(Refusal::Version);
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(Refusal::NoKey)?;
    // Base64 only has characters a header value may hold.
    HeaderValue::try_from(websocket::accept_key(key.as_bytes())).map_err(|_| Refusal::NoKey)
}

/// Serves one upgraded connection until the session ends; calls [`Backend::session_closed`]
/// exactly once if `init` had succeeded. Never panics on anything the client sends.
///
/// `shutdown`: see [`Endpoint::new`].
///
/// Not an `async fn`: the session's parts are built here, before the future exists, so that
/// the future holds each of them once. (An `async fn` keeps its arguments for its whole life,
/// so the socket and the settings would be stored twice in every connection's task: as
/// arguments and as the session's.)
fn serve_socket<B: Backend>(
    io: TokioIo<Upgraded>,
    backend: Arc<B>,
    clock: Clock,
    config: Arc<SessionConfig>,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    // A debug span: an enabled span keeps an entry in the subscriber's registry for its whole
    // life (~200 bytes per live session at the default `info` level). The session's events at
    // `info` and above name the session themselves.
    let span = tracing::debug_span!("twilsock", session = id);
    let (outbox, frames) = Outbox::new(config.outbox_capacity, config.outbox_bytes);
    let (writer_link, writer_orders) = writer::link();
    let (commands_tx, commands_rx) = orders::queue();
    let mut parts = Parts {
        socket: Socket::new(io, config.max_message_bytes()),
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
