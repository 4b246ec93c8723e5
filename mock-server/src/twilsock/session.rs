//! One twilsock connection, from WebSocket upgrade to the last frame.
//!
//! A session is two halves joined by `select!` in one task: the **driver** reads and answers
//! packets, runs the token timers and the liveness check, and obeys [`SessionCommand`]s; the
//! **writer** is the only code that writes to the socket. Whichever half ends first ends the
//! session.
//!
//! **Ordering.** Every twilsock frame the server sends — replies, `client_update`, backend
//! pushes (Sync notifications) — goes through the session's one bounded [`Outbox`] and is written
//! in the order it was queued. The backend queues what an upstream request causes *while* it
//! handles the request, and the session queues the reply after the handler returns, so a client
//! always sees the notifications a request caused before its reply. Upstream replies are sent in
//! order of completion, not of arrival. A final `close` packet is written after everything
//! already queued, and nothing is written after it. Exceptions, on the control plane's orders
//! only: while notifications are held, replies overtake the held pushes (which keep their own
//! order), and a latency delays upstream replies (which keep their completion order).
//!
//! **Conditions** ([`SessionCommand`]s a test puts a session into):
//! - *Latency* (`SetLatency`): the reply to an upstream `message` is queued once the latency in
//!   force has passed since its handler completed. Only upstream replies: the answers to `init`,
//!   `update` and the other packets come from the twilsock edge, not from a backend, and stay
//!   immediate (a slow or refused connect is `refuse_connections` / init denials; a silent
//!   network is a stall). Changing the latency applies to replies still waiting, so
//!   `Duration::ZERO` releases them at once. A waiting reply counts as in flight
//!   (`SessionConfig::max_inflight_upstream`).
//! - *Held notifications* (`HoldNotifications` / `ReleaseNotifications`): backend pushes are
//!   kept back in order and written on release; the session's own frames (replies,
//!   `client_update`, `SendRaw` frames) keep flowing.
//! - *Stall* (`Stall` / `Unstall`): the session neither reads nor writes, without closing the
//!   socket: inbound frames wait in the kernel buffers, outbound ones are kept back in order,
//!   no ping is sent, and the liveness check is off (the silence is on purpose; it restarts
//!   with a full ping interval on `Unstall`). Timers, commands and upstream completions still
//!   run. A close of any kind (`Close`, token expiry, shutdown) ends the stall, so that the
//!   close packet and everything queued before it are written; `Drop` drops the socket as it
//!   is.
//!
//! Frames kept back by a hold or a stall count against `SessionConfig::outbox_capacity` and
//! `SessionConfig::outbox_bytes`: more than that ends the session as a slow consumer.
//!
//! **Observation.** The session reports what it does to [`Backend::observe`] — socket accepted,
//! `init`/`update` outcomes, each packet in, each upstream reply, close packets, commands
//! applied, and why it ended — but never backend pushes.
//!
//! **Bounds.** The outbox, in frames (`SessionConfig::outbox_capacity`) and in bytes not yet
//! written (`SessionConfig::outbox_bytes`; an upstream reply counts from the moment its handler's
//! task has encoded it, so replies waiting for the driver or out a latency count too); past
//! either the session ends as a slow consumer: logged at `warn` with the bound, what waits in
//! the outbox is dropped, and the client gets a twilsock `close` 308 (the SDK reconnects and
//! resynchronises) and a WebSocket close 1008 — never a silent drop of one frame. Upstream
//! requests in flight: `SessionConfig::max_inflight_upstream`, and in bytes: while the bytes not
//! yet written fill `outbox_bytes`, the driver reads no new request until the writer has
//! handed enough to the socket. Inbound messages: [`SessionConfig::max_message_bytes`];
//! a larger one closes the socket with 1009 ("message too big"). Control channels (writer
//! commands, [`SessionCommand`]s) are small and bounded.
//!
//! A reply gate ([`ReplyGate`]) releases itself when dropped, so an upstream handler that panics
//! or is aborted with a gate open never keeps the session's later pushes behind it.
//!
//! **Time.** Token timers run on the server [`Clock`], so freezing and advancing it fires them;
//! liveness pings and the init and close timeouts run on real (tokio) time, because they are
//! about the network. Due token timers are handled before any inbound packet, so a packet sent
//! after the clock was advanced always sees the timer's effect first.
//!
//! **Boundary:** the session knows twilsock and nothing of Conversations or Sync; see
//! [`Backend`].
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::{self, JoinError, JoinSet};
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::Instrument;

use super::backend::{
    Backend, EndReason, InitRejection, Outbox, OverflowCause, Principal as _, ReplyGate, RequestLine, SessionInfo, SessionObservation,
    UpstreamRequest, UpstreamResponse,
};
use super::codec::{self, DecodeError, Limits, Packet};
use crate::auth::TokenError;
use crate::clock::{Clock, Millis};

mod orders;
mod packets;
pub(crate) mod request;
mod writer;

use orders::Order;
pub use orders::{Ack, CommandSender};
pub use packets::{
    CloseCode, TOKEN_EXPIRED_DESCRIPTION, TOKEN_EXPIRED_ERROR_CODE, close_frame, reason_phrase, storage_id, token_about_to_expire,
    token_expired_close,
};
pub use request::RequestError;
use writer::{Mode, WriterCommand, write_loop};

/// The path the SDK connects to (`twilsock.uri` = `ws://HOST:PORT/v3/wsconnect`).
pub const PATH: &str = "/v3/wsconnect";

/// Room for the framing around header and payload (`TWILSOCK V3.0 <20 digits>\r\n…\r\n`).
const FRAME_OVERHEAD: usize = 64;

/// Pending writer commands (ping, finish, close): a handful at most at any time.
const WRITER_COMMANDS: usize = 8;

/// Pending [`SessionCommand`]s per session.
const SESSION_COMMANDS: usize = 16;

/// Source of session ids: unique per process, also across several servers in one test binary.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Frames a session's outbox holds (queued or kept back) before the session is closed as a slow
/// consumer: far more than a healthy client ever has queued, few enough to bound the bookkeeping
/// per socket. Memory is bounded by [`DEFAULT_OUTBOX_BYTES`].
pub const DEFAULT_OUTBOX_CAPACITY: usize = 1024;

/// Bytes a session's outbox holds (queued or kept back, not yet written) before the session is
/// closed as a slow consumer: 8 MiB. A healthy client never comes near it — the largest burst it
/// causes is a subscription replay of a 100-item page of maximal messages (about 4 MiB), and a
/// single frame over the budget (a maximal page read, up to ~21 MiB of escaped JSON) still goes
/// through when nothing else waits — while a client that pipelines page reads without reading
/// the answers, or a subscriber that stops reading, is cut off after a few MiB instead of the
/// hundreds of MiB that 1,024 large frames took.
pub const DEFAULT_OUTBOX_BYTES: usize = 8 * 1024 * 1024;

/// Upstream requests a session has in flight (handled concurrently, or answered and waiting out
/// a latency) before it stops reading the socket until one completes. The SDK's own bursts (a
/// subscription batch, a page read per conversation at start) stay far below. In bytes the
/// replies are bounded by the outbox budget: each is reserved there as soon as it is built, and
/// no new request is read while the budget is full.
pub const DEFAULT_MAX_INFLIGHT_UPSTREAM: usize = 64;

/// Longest latency a session accepts (`SessionCommand::SetLatency`): one day, the control
/// plane's bound on every duration. Longer ones are refused, so that no deadline arithmetic can
/// overflow an `Instant`.
pub const MAX_LATENCY: Duration = Duration::from_secs(24 * 3600);

/// What the session sends a client whose outbound queue overflowed (status and WebSocket close
/// code): the twilsock `close` 308 makes the SDK reconnect (and resynchronise), as for any
/// server-initiated close that is not terminal; the WebSocket close 1008 (policy violation)
/// names the reason to anything watching the socket.
const OVERFLOW_CLOSE_DESCRIPTION: &str = "Outbound queue overflow: the client did not read its messages in time (slow consumer); reconnect";
const OVERFLOW_WS_CLOSE: u16 = 1008;

/// Per-session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Frames the outbox holds before the session is closed as a slow consumer. Default
    /// [`DEFAULT_OUTBOX_CAPACITY`].
    pub outbox_capacity: usize,
    /// Bytes the outbox holds (queued or kept back, including replies waiting out a latency)
    /// before the session is closed as a slow consumer. Default [`DEFAULT_OUTBOX_BYTES`].
    pub outbox_bytes: usize,
    /// How long before the token's `exp` the session sends `client_update` /
    /// `token_about_to_expire` (the SDK's `tokenAboutToExpire`). Default 3 minutes, the lead time
    /// Twilio documents for that event. A token that already expires within the lead gets the
    /// warning right after `init`/`update`.
    pub token_warning_lead: Duration,
    /// Interval of WebSocket-level pings (the SDK has no heartbeat of its own; its WebSocket
    /// answers pings automatically). Default 30 s. Zero disables pings.
    pub ping_interval: Duration,
    /// How long after a ping the peer may stay silent (no pong, no frame at all) before the
    /// socket is dropped. Default 15 s.
    pub pong_timeout: Duration,
    /// A socket without a successful `init` this long after connecting is closed (WebSocket close
    /// 1008). Default 30 s, the SDK's own reply timeout.
    pub init_timeout: Duration,
    /// After a server `close` packet, how long the session waits for the client to close the
    /// socket before closing it itself. Default 3 s, the SDK's own disconnect timer.
    pub close_grace: Duration,
    /// Upstream requests handled concurrently; at the limit the session stops reading until one
    /// completes. Default [`DEFAULT_MAX_INFLIGHT_UPSTREAM`].
    pub max_inflight_upstream: usize,
    /// Frame size limits; the WebSocket message limit is derived from them.
    pub limits: Limits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            outbox_capacity: DEFAULT_OUTBOX_CAPACITY,
            outbox_bytes: DEFAULT_OUTBOX_BYTES,
            token_warning_lead: Duration::from_secs(180),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(15),
            init_timeout: Duration::from_secs(30),
            close_grace: Duration::from_secs(3),
            max_inflight_upstream: DEFAULT_MAX_INFLIGHT_UPSTREAM,
            limits: Limits::default(),
        }
    }
}

impl SessionConfig {
    /// The largest WebSocket message (and frame) accepted: the codec limits plus framing.
    pub fn max_message_bytes(&self) -> usize {
        self.limits
            .max_header_bytes
            .saturating_add(self.limits.max_payload_bytes)
            .saturating_add(FRAME_OVERHEAD)
    }
}

/// An order to one live session, from the control plane (the sender is
/// [`SessionInfo::commands`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// Send a twilsock `close` packet, then end the session (the socket is closed once the client
    /// has closed it, or after `SessionConfig::close_grace`). See [`close_frame`] for what the SDK
    /// does with each code; [`SessionCommand::close`] fills in the standard texts.
    Close {
        code: u16,
        status: String,
        description: String,
        error_code: Option<u32>,
        /// Sent as `{"backoff_policy":{"reconnect_min_ms":N}}`: the SDK waits at least this long
        /// before reconnecting (308 and other non-terminal codes).
        backoff_min_ms: Option<u64>,
    },
    /// Drop the socket without a close handshake, like a network failure: the SDK reconnects.
    Drop,
    /// Send `client_update` / `token_about_to_expire` now (the scheduled one still fires).
    WarnTokenExpiry,
    /// Act as if the token expired now: `close` 410 (error 20104), then end the session.
    ExpireTokenNow,
    /// Queue an already-encoded frame, in order with everything else. It is the session's own
    /// frame: written even while notifications are held.
    SendRaw(Bytes),
    /// Queue the reply to every upstream `message` only once this long has passed since its
    /// handler completed (a slow backend); `Duration::ZERO` removes the latency and releases the
    /// replies waiting for it. Replies keep their completion order. Other replies (`init`,
    /// `update`, notification contexts, errors the session answers itself) are not delayed.
    SetLatency(Duration),
    /// Keep backend pushes (Sync notifications, typing) back, in order, while replies and the
    /// session's own frames keep flowing. More than `SessionConfig::outbox_capacity` kept back
    /// ends the session as a slow consumer; a graceful close writes them before its close.
    HoldNotifications,
    /// Write the held pushes, in order, and stop holding.
    ReleaseNotifications,
    /// Stop reading and writing without closing the socket: the client sees a silent
    /// connection. Outbound frames are kept back (bounded as above), inbound ones wait in the
    /// kernel, no pings are sent and the liveness check is off (however long the stall, the
    /// silence is ours, not a dead peer's). `Close`, token expiry and shutdown end the stall to
    /// write their close; `Drop` works as always.
    Stall,
    /// Resume reading and writing; frames kept back are written first, in order.
    Unstall,
}

impl SessionCommand {
    /// A short `snake_case` name, as journaled; the same as the action of the control plane's HTTP
    /// API.
    pub fn name(&self) -> &'static str {
        match self {
            SessionCommand::Close { .. } => "close",
            SessionCommand::Drop => "drop",
            SessionCommand::WarnTokenExpiry => "warn_token_expiry",
            SessionCommand::ExpireTokenNow => "expire_token",
            SessionCommand::SendRaw(_) => "inject_frame",
            SessionCommand::SetLatency(_) => "latency",
            SessionCommand::HoldNotifications => "hold_notifications",
            SessionCommand::ReleaseNotifications => "release_notifications",
            SessionCommand::Stall => "stall",
            SessionCommand::Unstall => "unstall",
        }
    }

    /// A `Close` with the standard status and description for `code`.
    pub fn close(code: CloseCode, backoff_min_ms: Option<u64>) -> SessionCommand {
        let (status, description, error_code) = code.status();
        SessionCommand::Close {
            code: code.code(),
            status: status.to_owned(),
            description: description.to_owned(),
            error_code,
            backoff_min_ms,
        }
    }
}

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
const READ_BUFFER_BYTES: usize = 4 * 1024;

async fn upgrade<B: Backend>(State(ep): State<Endpoint<B>>, ws: WebSocketUpgrade) -> Response {
    let max = ep.config.max_message_bytes();
    // tungstenite zero-fills its read buffer (128 KiB by default) before every read: with an
    // ack per delivered frame that memset was a quarter of the server's CPU under fan-out, and
    // the buffer most of an idle connection's memory. Frames are small; larger ones still
    // arrive, read in more chunks.
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve_socket(socket, ep.backend, ep.clock, (*ep.config).clone(), ep.shutdown))
}

/// Serves one upgraded socket until the session ends; calls [`Backend::session_closed`] exactly
/// once if `init` had succeeded. Never panics on anything the client sends.
///
/// `shutdown`: see [`Endpoint::new`].
pub async fn serve_socket<B: Backend>(
    socket: WebSocket,
    backend: Arc<B>,
    clock: Clock,
    config: SessionConfig,
    shutdown: watch::Receiver<bool>,
) {
    let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("twilsock", session = id);
    run_session(id, socket, backend, clock, config, shutdown).instrument(span).await;
}

async fn run_session<B: Backend>(
    id: u64,
    socket: WebSocket,
    backend: Arc<B>,
    clock: Clock,
    config: SessionConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::debug!("socket connected");
    let (sink, mut stream) = socket.split();
    let (outbox, frames) = Outbox::new(config.outbox_capacity, config.outbox_bytes);
    let (writer_tx, writer_rx) = mpsc::channel(WRITER_COMMANDS);
    let (mode_tx, mode_rx) = watch::channel(Mode::default());
    let (commands_tx, mut commands_rx) = mpsc::channel(SESSION_COMMANDS);
    let grace = config.close_grace;
    let mut session = Session {
        id,
        backend,
        clock,
        config,
        outbox,
        writer: writer_tx,
        mode: mode_tx,
        latency: Duration::ZERO,
        commands: CommandSender::new(commands_tx),
        established: None,
        timers: TokenTimers::default(),
        upstream: Upstream::default(),
        ended: false,
    };
    session.observe(SessionObservation::Accepted);

    let writer = write_loop(sink, frames, writer_rx, mode_rx, crate::frame_tap::Tap(id));
    tokio::pin!(writer);
    let end = tokio::select! {
        res = &mut writer => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "socket write failed");
            }
            End::Abrupt
        }
        end = session.run(&mut stream, &mut commands_rx, &mut shutdown) => end,
    };
    // Commands still queued will never be applied: dropping them tells their waiters so now.
    drop(commands_rx);
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

/// How the driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The writer was told to flush and close the socket; give it a moment.
    Graceful,
    /// Drop the socket now.
    Abrupt,
}

/// What to do after handling one event.
enum Flow {
    Continue,
    Close(Closing, EndReason),
}

enum Closing {
    /// Drop the socket without a close handshake.
    Abrupt,
    /// Flush the outbox, then send a WebSocket close frame.
    Socket { code: u16, reason: &'static str },
    /// Flush the outbox, send this twilsock `close` packet (status `code`), let the client close
    /// (or wait `close_grace`), then send a WebSocket close frame.
    Packet { frame: Bytes, code: u16 },
    /// The outbound queue overflowed: drop what waits in it (the client resynchronises when it
    /// reconnects), send a twilsock `close` 308, let the client close (or wait `close_grace`),
    /// then a WebSocket close 1008. A client that reads nothing at all is dropped after that.
    Overflow,
}

impl Closing {
    fn packet(frame: Bytes, code: u16) -> Closing {
        Closing::Packet { frame, code }
    }
}

/// One thing the driver reacts to; produced by the `select!`, handled after it (so that the
/// handlers may borrow the session mutably).
enum Event {
    Shutdown,
    Overflow,
    TokenExpired,
    TokenWarning,
    Command(Order),
    Upstream(Result<(task::Id, Built), JoinError>),
    RepliesDue,
    /// The bytes waiting fell below the budget: reading may resume.
    Room,
    Inbound(Option<Result<Message, axum::Error>>),
    InitTimeout,
    PingDue,
    PongTimeout,
}

/// Server-clock deadlines of the current token.
#[derive(Debug, Default, Clone, Copy)]
struct TokenTimers {
    warn_at: Option<Millis>,
    expire_at: Option<Millis>,
}

/// The driver's state.
struct Session<B: Backend> {
    id: u64,
    backend: Arc<B>,
    clock: Clock,
    config: SessionConfig,
    /// The session's own handle on its outbox, for its own frames; the backend gets clones.
    outbox: Outbox,
    writer: mpsc::Sender<WriterCommand>,
    /// The writer's mode (hold, stall): the driver is its only writer.
    mode: watch::Sender<Mode>,
    /// Added to every upstream reply (`SessionCommand::SetLatency`).
    latency: Duration,
    /// Kept to hand out in [`SessionInfo`]; also keeps the command channel open.
    commands: CommandSender,
    /// `Some` once `init` succeeded.
    established: Option<SessionInfo<B::Caller>>,
    timers: TokenTimers,
    upstream: Upstream,
    /// `Ended` was observed (and `session_closed` called if established).
    ended: bool,
}

impl<B: Backend> Session<B> {
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        commands: &mut mpsc::Receiver<Order>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        let init_deadline = time::sleep(self.config.init_timeout);
        tokio::pin!(init_deadline);
        let pinging = !self.config.ping_interval.is_zero();
        let period = self.config.ping_interval.max(Duration::from_millis(1));
        let mut ping = time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let pong_deadline = time::sleep(Duration::ZERO);
        tokio::pin!(pong_deadline);
        let mut awaiting_pong = false;

        loop {
            let stalled = self.stalled();
            // Upstream requests in flight are bounded in count here and in bytes by the outbox:
            // while the replies and pushes not yet written fill the byte budget, no new request
            // is read (each reply is reserved in the outbox as soon as it is built).
            let room = self.outbox.queued_bytes() < self.config.outbox_bytes;
            let reading = !stalled && room && self.upstream.in_flight() < self.config.max_inflight_upstream;
            let replies_due = self.upstream.next_due(self.latency);
            let TokenTimers { warn_at, expire_at } = self.timers;
            let event = tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => Event::Shutdown,
                () = self.outbox.overflow_signal() => Event::Overflow,
                () = sleep_until_opt(&self.clock, expire_at) => Event::TokenExpired,
                () = sleep_until_opt(&self.clock, warn_at) => Event::TokenWarning,
                Some(order) = commands.recv() => Event::Command(order),
                Some(done) = self.upstream.tasks.join_next_with_id() => Event::Upstream(done),
                () = sleep_until_instant(replies_due) => Event::RepliesDue,
                msg = stream.next(), if reading => Event::Inbound(msg),
                () = self.outbox.below_budget(), if !stalled && !room => Event::Room,
                () = &mut init_deadline, if self.established.is_none() => Event::InitTimeout,
                _ = ping.tick(), if pinging && !stalled => Event::PingDue,
                // While reading is paused the pong cannot be seen, so it cannot be late either.
                () = &mut pong_deadline, if awaiting_pong && reading => Event::PongTimeout,
            };

            let flow = match event {
                Event::Shutdown => Flow::Close(
                    Closing::Socket {
                        code: 1001,
                        reason: "server shutting down",
                    },
                    EndReason::Shutdown,
                ),
                Event::Overflow => {
                    let bound = match self.outbox.overflow_cause() {
                        Some(OverflowCause::Bytes) => "bytes",
                        _ => "frames",
                    };
                    tracing::warn!(
                        bound,
                        capacity = self.config.outbox_capacity,
                        max_bytes = self.config.outbox_bytes,
                        queued_bytes = self.outbox.queued_bytes(),
                        waiting_replies_bytes = self.upstream.delayed_bytes,
                        "closing session: outbound queue overflow (slow consumer): sending close 308, then WebSocket close {OVERFLOW_WS_CLOSE}"
                    );
                    Flow::Close(Closing::Overflow, EndReason::Overflow)
                }
                Event::TokenExpired => {
                    tracing::info!("token expired: sending close 410");
                    Flow::Close(Closing::packet(token_expired_close(), 410), EndReason::TokenExpired)
                }
                Event::TokenWarning => {
                    self.timers.warn_at = None;
                    tracing::debug!("token about to expire: sending client_update");
                    self.warn_token_expiry();
                    Flow::Continue
                }
                Event::Command(order) => self.on_command(order),
                Event::Upstream(done) => {
                    self.upstream.complete(done, &self.outbox);
                    self.send_due_replies();
                    Flow::Continue
                }
                Event::RepliesDue => {
                    self.send_due_replies();
                    Flow::Continue
                }
                Event::Room => Flow::Continue,
                Event::Inbound(None) => {
                    tracing::debug!("client went away");
                    Flow::Close(Closing::Abrupt, EndReason::ConnectionLost)
                }
                Event::Inbound(Some(Err(e))) if is_too_big(&e) => {
                    tracing::info!(
                        error = %e,
                        limit = self.config.max_message_bytes(),
                        "message over the size limit: closing with 1009"
                    );
                    Flow::Close(
                        Closing::Socket {
                            code: 1009,
                            reason: "message too big",
                        },
                        EndReason::MessageTooBig,
                    )
                }
                Event::Inbound(Some(Err(e))) => {
                    tracing::debug!(error = %e, "socket read failed");
                    Flow::Close(Closing::Abrupt, EndReason::ConnectionLost)
                }
                Event::Inbound(Some(Ok(msg))) => {
                    awaiting_pong = false;
                    self.on_ws_message(msg)
                }
                Event::InitTimeout => {
                    tracing::debug!("no successful init in time: closing");
                    Flow::Close(
                        Closing::Socket {
                            code: 1008,
                            reason: "no successful init in time",
                        },
                        EndReason::InitTimeout,
                    )
                }
                Event::PingDue => {
                    if !awaiting_pong && self.writer.try_send(WriterCommand::Ping).is_ok() {
                        awaiting_pong = true;
                        pong_deadline.as_mut().reset(Instant::now() + self.config.pong_timeout);
                    }
                    Flow::Continue
                }
                Event::PongTimeout => {
                    tracing::info!("no pong in time: dropping the socket");
                    Flow::Close(Closing::Abrupt, EndReason::LivenessTimeout)
                }
            };
            if let Flow::Close(closing, reason) = flow {
                return self.close(closing, reason, stream, shutdown).await;
            }
            if stalled != self.stalled() {
                // Entering a stall forgets the ping in flight (its pong will not be read);
                // leaving one starts the liveness check afresh, a full interval from now.
                awaiting_pong = false;
                if stalled {
                    ping.reset();
                }
            }
        }
    }

    async fn close(
        &mut self,
        closing: Closing,
        reason: EndReason,
        stream: &mut SplitStream<WebSocket>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        let waiting = self.upstream.delayed.len();
        if waiting > 0 {
            tracing::debug!(
                replies = waiting,
                "session ending: replies still waiting out the latency are not sent"
            );
        }
        match closing {
            Closing::Abrupt => {
                self.finish(reason);
                End::Abrupt
            }
            Closing::Overflow => {
                let code = CloseCode::Offload.code();
                let (status, _, _) = CloseCode::Offload.status();
                let frame = close_frame(code, status, OVERFLOW_CLOSE_DESCRIPTION, None, None);
                let queued = self.writer.try_send(WriterCommand::Abandon { last: frame }).is_ok();
                if queued {
                    self.observe(SessionObservation::CloseSent { code });
                }
                self.finish(reason);
                if !queued {
                    return End::Abrupt;
                }
                self.linger_then_close(stream, shutdown, OVERFLOW_WS_CLOSE, "outbound queue overflow")
                    .await
            }
            Closing::Socket { code, reason: text } => {
                // The session is over for the backend now, even if the socket lingers a moment.
                self.finish(reason);
                if self.writer.try_send(WriterCommand::Finish { last: None }).is_err()
                    || self.writer.try_send(WriterCommand::Close { code, reason: text }).is_err()
                {
                    return End::Abrupt;
                }
                End::Graceful
            }
            Closing::Packet { frame, code } => {
                let queued = self.writer.try_send(WriterCommand::Finish { last: Some(frame) }).is_ok();
                if queued {
                    self.observe(SessionObservation::CloseSent { code });
                }
                self.finish(reason);
                if !queued {
                    return End::Abrupt;
                }
                self.linger_then_close(stream, shutdown, 1000, "").await
            }
        }
    }

    /// After a twilsock `close`: the SDK acks it and closes the socket itself; wait for that (at
    /// most `close_grace`), reading and ignoring whatever else it sends meanwhile, then close the
    /// socket with `code`. Reading on also keeps the kernel from resetting the connection over
    /// unread requests, which would discard the close the client has not read yet.
    async fn linger_then_close(
        &self,
        stream: &mut SplitStream<WebSocket>,
        shutdown: &mut watch::Receiver<bool>,
        code: u16,
        reason: &'static str,
    ) -> End {
        let linger = async {
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                    () = shutdown_requested(shutdown) => return,
                }
            }
        };
        let _ = time::timeout(self.config.close_grace, linger).await;
        if self.writer.try_send(WriterCommand::Close { code, reason }).is_err() {
            return End::Abrupt;
        }
        End::Graceful
    }

    /// Observes the end, once, and tells the backend the session ended if it had been opened.
    fn finish(&mut self, reason: EndReason) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.observe(SessionObservation::Ended { reason });
        if self.established.is_some() {
            tracing::info!(reason = reason.as_str(), "session closed");
            self.backend.session_closed(self.id);
        }
    }

    fn observe(&self, what: SessionObservation<'_>) {
        self.backend.observe(self.id, self.established.as_ref(), what);
    }

    fn stalled(&self) -> bool {
        self.mode.borrow().stall
    }

    fn set_mode(&self, change: impl FnOnce(&mut Mode)) {
        self.mode.send_modify(change);
    }

    /// Queues one of the session's own frames, in order with everything else. A full queue is
    /// not handled here: the overflow signal ends the session on the next turn of the loop.
    fn send(&self, frame: Bytes) {
        if let Err(e) = self.outbox.push_own(frame) {
            tracing::debug!(error = ?e, "frame not queued");
        }
    }

    fn warn_token_expiry(&self) {
        self.send(token_about_to_expire());
        self.observe(SessionObservation::TokenWarningSent);
    }

    /// Queues the upstream replies whose latency has passed, in completion order.
    fn send_due_replies(&mut self) {
        let now = Instant::now();
        while let Some(done) = self.upstream.pop_due(now, self.latency) {
            // Its bytes were reserved when it was built.
            if let Err(e) = self.outbox.push_own_reserved(done.frame) {
                tracing::debug!(error = ?e, "reply not queued");
            }
            // Released right after its reply (a gate releases itself when dropped).
            drop(done.gate);
            let waited = now.saturating_duration_since(done.request.started);
            self.observe(SessionObservation::UpstreamReply {
                id: &done.request.packet_id,
                request: RequestLine {
                    method: &done.request.method,
                    path: &done.request.path,
                },
                status: done.status,
                duration_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            });
        }
    }

    /// Applies a command, then observes and acknowledges it (before any close it starts). A
    /// refused command is neither: its acknowledgement is dropped unanswered.
    fn on_command(&mut self, order: Order) -> Flow {
        let Order { command: cmd, applied } = order;
        tracing::debug!(?cmd, "session command");
        let name = cmd.name();
        let flow = match cmd {
            SessionCommand::Close {
                code,
                status,
                description,
                error_code,
                backoff_min_ms,
            } => Flow::Close(
                Closing::packet(close_frame(code, &status, &description, error_code, backoff_min_ms), code),
                EndReason::ClosedByCommand,
            ),
            SessionCommand::Drop => Flow::Close(Closing::Abrupt, EndReason::Dropped),
            SessionCommand::WarnTokenExpiry => {
                self.warn_token_expiry();
                Flow::Continue
            }
            SessionCommand::ExpireTokenNow => Flow::Close(Closing::packet(token_expired_close(), 410), EndReason::TokenExpired),
            SessionCommand::SendRaw(frame) => {
                self.send(frame);
                Flow::Continue
            }
            SessionCommand::SetLatency(latency) if latency > MAX_LATENCY => {
                // Refused, and not observed as applied (the control plane reports it so).
                tracing::warn!(?latency, max = ?MAX_LATENCY, "latency out of range: command refused");
                return Flow::Continue;
            }
            SessionCommand::SetLatency(latency) => {
                self.latency = latency;
                // A shorter latency may have made waiting replies due.
                self.send_due_replies();
                Flow::Continue
            }
            SessionCommand::HoldNotifications => {
                self.set_mode(|m| m.hold = true);
                Flow::Continue
            }
            SessionCommand::ReleaseNotifications => {
                self.set_mode(|m| m.hold = false);
                Flow::Continue
            }
            SessionCommand::Stall => {
                self.set_mode(|m| m.stall = true);
                Flow::Continue
            }
            SessionCommand::Unstall => {
                self.set_mode(|m| m.stall = false);
                Flow::Continue
            }
        };
        self.observe(SessionObservation::CommandApplied { name });
        if let Some(ack) = applied {
            // The waiter may have given up; the command took effect all the same.
            let _ = ack.send(());
        }
        flow
    }

    fn on_ws_message(&mut self, msg: Message) -> Flow {
        match msg {
            Message::Binary(frame) => self.on_frame(&frame),
            // The SDK only sends binary frames; text ones are decoded the same way.
            Message::Text(text) => self.on_frame(&Bytes::from(text)),
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(_) => {
                tracing::debug!("client closed the socket");
                Flow::Close(Closing::Socket { code: 1000, reason: "" }, EndReason::ClientClosed)
            }
        }
    }

    fn on_frame(&mut self, frame: &Bytes) -> Flow {
        crate::frame_tap::Tap(self.id).inbound(frame);
        let packet = match codec::decode_bytes(frame, &self.config.limits) {
            Ok(p) => p,
            Err(err) => return self.on_undecodable(frame, &err),
        };
        // `decode` guarantees both fields.
        let id = packet.id().unwrap_or_default();
        let method = packet.method().unwrap_or_default();
        tracing::trace!(method, id, "packet");
        if method != "message" {
            // An upstream request is observed with its request line, once parsed.
            self.observe(SessionObservation::PacketIn { method, id, request: None });
        }
        match method {
            "init" => self.on_init(id, &packet),
            "update" => self.on_update(id, &packet),
            "message" => self.on_upstream(id, &packet),
            "put_notification_ctx" | "delete_notification_ctx" => {
                self.send(packets::reply_ok(id));
                Flow::Continue
            }
            // Fire-and-forget; never confirmed as a capability, so a client sending it anyway
            // gets no answer either.
            "telemetry.v1" => Flow::Continue,
            // The client's acks of our notifications, client_updates and closes.
            "reply" => Flow::Continue,
            "close" => {
                tracing::debug!("client sent close");
                Flow::Close(
                    Closing::Socket {
                        code: 1000,
                        reason: "client closed",
                    },
                    EndReason::ClientClosed,
                )
            }
            other => {
                tracing::debug!(method = other, "unknown method");
                let description = format!("unknown method `{other}`");
                self.send(packets::reply_status(id, 400, "BAD_REQUEST", Some(&description), None));
                Flow::Continue
            }
        }
    }

    /// A frame the codec rejected. If its header can still be read (the problem is the payload),
    /// the packet gets an error reply and the session goes on; a frame without a readable id
    /// cannot be answered, so the session closes with 406 ("server cannot parse protocol").
    /// Client acks are never answered, even broken ones.
    fn on_undecodable(&mut self, frame: &[u8], err: &DecodeError) -> Flow {
        match salvage_header(frame, &self.config.limits) {
            Some((id, method)) if method == "reply" => {
                tracing::debug!(error = %err, "undecodable client reply ignored");
                self.observe(SessionObservation::PacketIn {
                    method: &method,
                    id: &id,
                    request: None,
                });
                Flow::Continue
            }
            Some((id, method)) => {
                tracing::debug!(error = %err, method, "undecodable packet");
                self.observe(SessionObservation::PacketIn {
                    method: &method,
                    id: &id,
                    request: None,
                });
                let (code, status) = match err {
                    DecodeError::PayloadTooLarge { .. } => (413, "PAYLOAD_TOO_LARGE"),
                    _ => (400, "BAD_REQUEST"),
                };
                self.send(packets::reply_status(&id, code, status, Some(&err.to_string()), None));
                Flow::Continue
            }
            None => {
                tracing::debug!(error = %err, "unparseable frame: closing with 406");
                let code = CloseCode::CannotParse;
                Flow::Close(Closing::packet(code.frame(None), code.code()), EndReason::ProtocolError)
            }
        }
    }

    fn verify(&self, packet: &Packet) -> Result<B::Caller, InitRejection> {
        match packet.header.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(token) => self.backend.verify_for(self.id, token),
            None => Err(TokenError::Malformed {
                reason: "no token in the packet",
            }
            .into()),
        }
    }

    /// Answers a refused `init` or `update` and observes it.
    fn refuse(&self, id: &str, kind: TokenChange, rejection: &InitRejection) {
        self.send(packets::reply_rejection(id, rejection));
        self.observe_refusal(kind, rejection.status, rejection.error_code);
    }

    fn observe_refusal(&self, kind: TokenChange, status: u16, error_code: Option<u32>) {
        self.observe(match kind {
            TokenChange::Init => SessionObservation::InitRefused { status, error_code },
            TokenChange::Update => SessionObservation::UpdateRefused { status, error_code },
        });
    }

    /// `init`. A rejected token gets a 401 reply and leaves the socket open and uninitialised:
    /// the SDK closes it, and a later `init` on it may still succeed. So does any other refusal
    /// (the control plane's 503 while refusing connections, init denials): the SDK closes the
    /// socket and retries, the server only replies.
    ///
    /// An `init` on an established session (the SDK never sends one: it uses `update` while
    /// connected) is taken as a token update that answers with a full init reply: same session
    /// id and outbox, same identity, account and service required, `session_updated`.
    fn on_init(&mut self, id: &str, packet: &Packet) -> Flow {
        let caller = match self.verify(packet) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = ?e, "init rejected");
                self.refuse(id, TokenChange::Init, &e);
                return Flow::Continue;
            }
        };
        let storage = storage_id(caller.account(), caller.identity());
        if self.established.is_some() {
            return self.replace_token(id, TokenChange::Init, caller, packets::reply_init(id, &storage));
        }
        let info = SessionInfo {
            id: self.id,
            caller,
            outbox: self.outbox.clone(),
            commands: self.commands.clone(),
        };
        self.send(packets::reply_init(id, &storage));
        tracing::info!(identity = info.caller.identity(), account = info.caller.account(), "session opened");
        let expires_at = info.caller.expires_at();
        self.established = Some(info);
        self.arm_timers(expires_at);
        self.observe(SessionObservation::InitOk);
        if let Some(info) = &self.established {
            self.backend.session_opened(info);
        }
        Flow::Continue
    }

    /// `update`: a new token for the same identity, account and service. Rejected tokens get a
    /// 401 reply and the session keeps its old token and timers.
    fn on_update(&mut self, id: &str, packet: &Packet) -> Flow {
        if self.established.is_none() {
            self.send(packets::reply_status(
                id,
                403,
                "FORBIDDEN",
                Some("update before a successful init"),
                None,
            ));
            self.observe_refusal(TokenChange::Update, 403, None);
            return Flow::Continue;
        }
        match self.verify(packet) {
            Ok(caller) => self.replace_token(id, TokenChange::Update, caller, packets::reply_ok(id)),
            Err(e) => {
                tracing::debug!(error = ?e, "update rejected");
                self.refuse(id, TokenChange::Update, &e);
                Flow::Continue
            }
        }
    }

    fn replace_token(&mut self, id: &str, kind: TokenChange, caller: B::Caller, reply: Bytes) -> Flow {
        let expires_at = caller.expires_at();
        match self.established.as_mut() {
            Some(info) if info.caller.same_principal(&caller) => info.caller = caller,
            Some(_) => {
                tracing::debug!("token update for another principal rejected");
                self.send(packets::reply_principal_mismatch(id));
                self.observe_refusal(kind, 401, Some(packets::INVALID_TOKEN_ERROR_CODE));
                return Flow::Continue;
            }
            None => return Flow::Continue,
        }
        self.send(reply);
        self.arm_timers(expires_at);
        self.observe(SessionObservation::UpdateOk);
        if let Some(info) = &self.established {
            tracing::debug!("token updated");
            self.backend.session_updated(info);
        }
        Flow::Continue
    }

    /// `message`: decoded and handed to the backend on its own task, so that a slow answer never
    /// holds up the socket.
    fn on_upstream(&mut self, id: &str, packet: &Packet) -> Flow {
        let parsed = request::parse(packet);
        self.observe(SessionObservation::PacketIn {
            method: "message",
            id,
            request: parsed.as_ref().ok().map(|r| RequestLine {
                method: &r.method,
                path: &r.path,
            }),
        });
        // The SDK queues requests until `init` succeeded, so this is a misbehaving client.
        let Some(info) = &self.established else {
            self.send(packets::reply_status(
                id,
                403,
                "FORBIDDEN",
                Some("upstream message before a successful init"),
                None,
            ));
            return Flow::Continue;
        };
        match parsed {
            Ok(req) => {
                tracing::trace!(method = %req.method, path = %req.path, "upstream");
                self.upstream.spawn(id, self.backend.clone(), info.clone(), req);
            }
            Err(e) => {
                tracing::debug!(error = %e, "bad upstream request");
                self.send(packets::reply_status(id, 400, "BAD_REQUEST", Some(&e.to_string()), None));
            }
        }
        Flow::Continue
    }

    /// Schedules the warning and the expiry of a token that expires at `expires_at` (Unix
    /// seconds), replacing any earlier schedule.
    fn arm_timers(&mut self, expires_at: i64) {
        // Token time is the caller's account time (each account has its own clock).
        if let Some(info) = &self.established {
            self.clock = info.caller.clock().clone();
        }
        let expire = Millis(expires_at.saturating_mul(1000));
        let lead = i64::try_from(self.config.token_warning_lead.as_millis()).unwrap_or(i64::MAX);
        self.timers = TokenTimers {
            warn_at: Some(Millis(expire.0.saturating_sub(lead))),
            expire_at: Some(expire),
        };
    }
}

/// Which packet a token change came in, for its observation.
#[derive(Debug, Clone, Copy)]
enum TokenChange {
    Init,
    Update,
}

/// Upstream requests in flight, each on its own task (a panicking handler fails its request
/// with a 500, not the session), and the replies waiting out a latency.
#[derive(Default)]
struct Upstream {
    tasks: JoinSet<Built>,
    /// Task → what it answers.
    requests: HashMap<task::Id, InFlight>,
    /// Replies of completed requests not queued yet, in completion order.
    delayed: VecDeque<Completed>,
    /// Bytes of the encoded replies in `delayed`.
    delayed_bytes: usize,
}

/// What the reply to an upstream request needs, and its observation.
struct InFlight {
    packet_id: String,
    method: String,
    path: String,
    started: Instant,
}

/// An upstream reply as its handler's task leaves it: encoded, and its bytes reserved in the
/// session's outbox (`frame` is `None` when they did not fit: the outbox overflowed and the
/// session is closing). Done on the handler's task, so that a burst of large replies is bounded
/// in bytes as each one is built, not only once the driver gets to it.
struct Built {
    status: u16,
    frame: Option<Bytes>,
    gate: Option<ReplyGate>,
}

impl Built {
    fn new(outbox: &Outbox, packet_id: &str, resp: UpstreamResponse) -> Built {
        let frame = packets::reply_upstream(packet_id, &resp);
        let frame = outbox.reserve(frame.len()).ok().map(|()| frame);
        Built {
            status: resp.status,
            frame,
            gate: resp.gate,
        }
    }
}

/// A completed upstream request, its reply encoded (and its bytes reserved).
struct Completed {
    request: InFlight,
    status: u16,
    frame: Bytes,
    gate: Option<ReplyGate>,
    at: Instant,
}

impl Upstream {
    fn spawn<B: Backend>(&mut self, packet_id: &str, backend: Arc<B>, info: SessionInfo<B::Caller>, req: UpstreamRequest) {
        let request = InFlight {
            packet_id: packet_id.to_owned(),
            method: req.method.clone(),
            path: req.path.clone(),
            started: Instant::now(),
        };
        let id = request.packet_id.clone();
        let handle = self.tasks.spawn(async move {
            let outbox = info.outbox.clone();
            let resp = backend.upstream(&info, req).await;
            Built::new(&outbox, &id, resp)
        });
        self.requests.insert(handle.id(), request);
    }

    /// Requests whose reply has not been queued yet.
    fn in_flight(&self) -> usize {
        self.tasks.len() + self.delayed.len()
    }

    /// Puts the reply of a finished request in line (a failed handler's is a 500).
    fn complete(&mut self, done: Result<(task::Id, Built), JoinError>, outbox: &Outbox) {
        let (request, built) = match done {
            Ok((task, built)) => match self.requests.remove(&task) {
                Some(request) => (request, built),
                None => return,
            },
            Err(e) => {
                let Some(request) = self.requests.remove(&e.id()) else {
                    return;
                };
                tracing::error!(error = %e, packet = %request.packet_id, "upstream handler failed");
                let built = Built::new(
                    outbox,
                    &request.packet_id,
                    UpstreamResponse::error(500, 20500, "Internal Server Error"),
                );
                (request, built)
            }
        };
        // Over the byte budget: the outbox overflowed and the session is closing.
        let Some(frame) = built.frame else {
            return;
        };
        self.delayed_bytes += frame.len();
        self.delayed.push_back(Completed {
            frame,
            status: built.status,
            gate: built.gate,
            request,
            at: Instant::now(),
        });
    }

    /// When the oldest waiting reply is due under `latency`. Completion times only grow, so the
    /// oldest is also the first due: the order of completion is kept.
    fn next_due(&self, latency: Duration) -> Option<Instant> {
        // `MAX_LATENCY` keeps this far from the end of `Instant`; were it ever reached, the
        // reply is due rather than the session panicking.
        self.delayed.front().map(|c| c.at.checked_add(latency).unwrap_or(c.at))
    }

    fn pop_due(&mut self, now: Instant, latency: Duration) -> Option<Completed> {
        if self.next_due(latency)? <= now {
            let done = self.delayed.pop_front()?;
            self.delayed_bytes -= done.frame.len();
            Some(done)
        } else {
            None
        }
    }
}

/// Reads `id` and `method` from a frame the codec rejected, when its header is intact.
fn salvage_header(frame: &[u8], limits: &Limits) -> Option<(String, String)> {
    let rest = frame.strip_prefix(b"TWILSOCK V3.0 ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let len: usize = std::str::from_utf8(rest.get(..digits)?).ok()?.parse().ok()?;
    if len > limits.max_header_bytes {
        return None;
    }
    let header = rest.get(digits..)?.strip_prefix(b"\r\n")?.get(..len)?;
    let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(header) else {
        return None;
    };
    let field = |name: &str| h.get(name).and_then(Value::as_str).map(str::to_owned);
    Some((field("id")?, field("method")?))
}

/// Whether a read failed because the peer sent a message or frame over the size limit (the
/// socket is still usable for our close frame, 1009 "message too big").
fn is_too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Completes when shutdown was requested or the shutdown sender is gone.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until_opt(clock: &Clock, at: Option<Millis>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Real (tokio) time, for latencies: they are about the network, like pings.
async fn sleep_until_instant(at: Option<Instant>) {
    match at {
        Some(at) => time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvages_header_of_bad_payload_only() {
        let limits = Limits::default();
        let header = r#"{"method":"message","id":"TM1","payload_size":10}"#;
        let frame = format!("TWILSOCK V3.0 {}\r\n{header}\r\nabc", header.len());
        assert!(codec::decode(frame.as_bytes(), &limits).is_err());
        assert_eq!(
            salvage_header(frame.as_bytes(), &limits),
            Some(("TM1".to_owned(), "message".to_owned()))
        );
        for garbage in [
            &b"hello"[..],
            b"TWILSOCK V3.0 \r\n{}\r\n",
            b"TWILSOCK V3.0 2\r\n{}\r\n",
            b"TWILSOCK V3.0 99\r\n{\"id\":\"x\"}",
            b"TWILSOCK V3.0 11\r\n{\"id\":\"x\"}\r\n",
        ] {
            assert_eq!(salvage_header(garbage, &limits), None, "{garbage:?}");
        }
    }

    #[test]
    fn command_close_uses_standard_texts() {
        let cmd = SessionCommand::close(CloseCode::Offload, Some(5000));
        assert_eq!(
            cmd,
            SessionCommand::Close {
                code: 308,
                status: "OFFLOAD".into(),
                description: "Server is offloading this connection, reconnect".into(),
                error_code: None,
                backoff_min_ms: Some(5000),
            }
        );
    }

    #[test]
    fn message_limit_covers_framing() {
        let c = SessionConfig::default();
        assert!(c.max_message_bytes() > c.limits.max_header_bytes + c.limits.max_payload_bytes);
    }
}
