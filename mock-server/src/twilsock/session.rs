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
//! already queued, and nothing is written after it.
//!
//! **Bounds.** Frames: the outbox (`SessionConfig::outbox_capacity`); a full outbox ends the
//! session (slow consumer: logged at `warn`, the socket is dropped so that the SDK reconnects and
//! resynchronises; never a silent drop of one frame). Upstream requests in flight:
//! `SessionConfig::max_inflight_upstream`; at the limit the driver stops reading the socket
//! until one completes. Control channels (writer commands, [`SessionCommand`]s) are small and
//! bounded.
//!
//! **Time.** Token timers run on the server [`Clock`], so freezing and advancing it fires them;
//! liveness pings and the init and close timeouts run on real (tokio) time, because they are
//! about the network. Due token timers are handled before any inbound packet, so a packet sent
//! after the clock was advanced always sees the timer's effect first.
//!
//! **Boundary:** the session knows twilsock and nothing of Conversations or Sync; see
//! [`Backend`].
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::{self, JoinError, JoinSet};
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::Instrument;

use super::backend::{Backend, InitRejection, Outbox, SessionInfo, UpstreamRequest, UpstreamResponse};
use super::codec::{self, DecodeError, Limits, Packet};
use crate::auth::TokenError;
use crate::auth::identity::Caller;
use crate::clock::{Clock, Millis};

mod packets;
mod request;

pub use packets::{
    CloseCode, TOKEN_EXPIRED_DESCRIPTION, TOKEN_EXPIRED_ERROR_CODE, close_frame, reason_phrase, storage_id, token_about_to_expire,
    token_expired_close,
};
pub use request::RequestError;

/// The path the SDK connects to (`twilsock.uri` = `ws://HOST:PORT/v3/wsconnect`).
pub const PATH: &str = "/v3/wsconnect";

/// Room for the framing around header and payload (`TWILSOCK V3.0 <20 digits>\r\n…\r\n`).
const FRAME_OVERHEAD: usize = 64;

/// Frames written per flush when the outbox has a backlog.
const WRITE_BATCH: usize = 64;

/// Pending writer commands (ping, finish, close): a handful at most at any time.
const WRITER_COMMANDS: usize = 8;

/// Pending [`SessionCommand`]s per session.
const SESSION_COMMANDS: usize = 16;

/// Source of session ids: unique per process, also across several servers in one test binary.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Per-session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Frames the outbox holds before the session is closed as a slow consumer. Default 1024: far
    /// more than a healthy client ever has queued, few enough to bound memory per socket.
    pub outbox_capacity: usize,
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
    /// completes. Default 64.
    pub max_inflight_upstream: usize,
    /// Frame size limits; the WebSocket message limit is derived from them.
    pub limits: Limits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            outbox_capacity: 1024,
            token_warning_lead: Duration::from_secs(180),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(15),
            init_timeout: Duration::from_secs(30),
            close_grace: Duration::from_secs(3),
            max_inflight_upstream: 64,
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
    /// Queue an already-encoded frame, in order with everything else.
    SendRaw(Bytes),
}

impl SessionCommand {
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

async fn upgrade<B: Backend>(State(ep): State<Endpoint<B>>, ws: WebSocketUpgrade) -> Response {
    let max = ep.config.max_message_bytes();
    ws.max_message_size(max)
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
    let (outbox, frames) = Outbox::new(config.outbox_capacity);
    let (writer_tx, writer_rx) = mpsc::channel(WRITER_COMMANDS);
    let (commands_tx, mut commands_rx) = mpsc::channel(SESSION_COMMANDS);
    let grace = config.close_grace;
    let mut session = Session {
        id,
        backend,
        clock,
        config,
        outbox,
        writer: writer_tx,
        commands: commands_tx,
        established: None,
        timers: TokenTimers::default(),
        closed_reported: false,
    };

    let writer = write_loop(sink, frames, writer_rx);
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
    session.report_closed();
    if end == End::Graceful && time::timeout(grace, &mut writer).await.is_err() {
        tracing::debug!("close frame not written in time");
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
    Close(Closing),
}

enum Closing {
    /// Drop the socket without a close handshake.
    Abrupt,
    /// Flush the outbox, then send a WebSocket close frame.
    Socket { code: u16, reason: &'static str },
    /// Flush the outbox, send this twilsock `close` packet, let the client close (or wait
    /// `close_grace`), then send a WebSocket close frame.
    Packet(Bytes),
}

/// One thing the driver reacts to; produced by the `select!`, handled after it (so that the
/// handlers may borrow the session mutably).
enum Event {
    Shutdown,
    Overflow,
    TokenExpired,
    TokenWarning,
    Command(SessionCommand),
    Upstream(Result<(task::Id, UpstreamResponse), JoinError>),
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
    /// The session's own handle on its outbox, for replies; the backend gets clones.
    outbox: Outbox,
    writer: mpsc::Sender<WriterCommand>,
    /// Kept to hand out in [`SessionInfo`]; also keeps the command channel open.
    commands: mpsc::Sender<SessionCommand>,
    /// `Some` once `init` succeeded.
    established: Option<SessionInfo>,
    timers: TokenTimers,
    closed_reported: bool,
}

impl<B: Backend> Session<B> {
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        commands: &mut mpsc::Receiver<SessionCommand>,
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
        let mut upstream = Upstream::default();

        loop {
            let reading = upstream.tasks.len() < self.config.max_inflight_upstream;
            let TokenTimers { warn_at, expire_at } = self.timers;
            let event = tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => Event::Shutdown,
                () = self.outbox.overflow_signal() => Event::Overflow,
                () = sleep_until_opt(&self.clock, expire_at) => Event::TokenExpired,
                () = sleep_until_opt(&self.clock, warn_at) => Event::TokenWarning,
                Some(cmd) = commands.recv() => Event::Command(cmd),
                Some(done) = upstream.tasks.join_next_with_id() => Event::Upstream(done),
                msg = stream.next(), if reading => Event::Inbound(msg),
                () = &mut init_deadline, if self.established.is_none() => Event::InitTimeout,
                _ = ping.tick(), if pinging => Event::PingDue,
                // While reading is paused the pong cannot be seen, so it cannot be late either.
                () = &mut pong_deadline, if awaiting_pong && reading => Event::PongTimeout,
            };

            let flow = match event {
                Event::Shutdown => Flow::Close(Closing::Socket {
                    code: 1001,
                    reason: "server shutting down",
                }),
                Event::Overflow => {
                    tracing::warn!(
                        capacity = self.config.outbox_capacity,
                        "closing session: outbound queue overflow (slow consumer)"
                    );
                    Flow::Close(Closing::Abrupt)
                }
                Event::TokenExpired => {
                    tracing::info!("token expired: sending close 410");
                    Flow::Close(Closing::Packet(token_expired_close()))
                }
                Event::TokenWarning => {
                    self.timers.warn_at = None;
                    tracing::debug!("token about to expire: sending client_update");
                    self.send(token_about_to_expire());
                    Flow::Continue
                }
                Event::Command(cmd) => self.on_command(cmd),
                Event::Upstream(done) => {
                    if let Some((id, resp)) = upstream.complete(done) {
                        self.send(packets::reply_upstream(&id, &resp));
                    }
                    Flow::Continue
                }
                Event::Inbound(None) => {
                    tracing::debug!("client went away");
                    Flow::Close(Closing::Abrupt)
                }
                Event::Inbound(Some(Err(e))) => {
                    tracing::debug!(error = %e, "socket read failed");
                    Flow::Close(Closing::Abrupt)
                }
                Event::Inbound(Some(Ok(msg))) => {
                    awaiting_pong = false;
                    self.on_ws_message(msg, &mut upstream)
                }
                Event::InitTimeout => {
                    tracing::debug!("no successful init in time: closing");
                    Flow::Close(Closing::Socket {
                        code: 1008,
                        reason: "no successful init in time",
                    })
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
                    Flow::Close(Closing::Abrupt)
                }
            };
            if let Flow::Close(closing) = flow {
                return self.close(closing, stream, shutdown).await;
            }
        }
    }

    async fn close(&mut self, closing: Closing, stream: &mut SplitStream<WebSocket>, shutdown: &mut watch::Receiver<bool>) -> End {
        // The session is over for the backend now, even if the socket lingers a moment.
        self.report_closed();
        match closing {
            Closing::Abrupt => End::Abrupt,
            Closing::Socket { code, reason } => {
                if self.writer.try_send(WriterCommand::Finish { last: None }).is_err()
                    || self.writer.try_send(WriterCommand::Close { code, reason }).is_err()
                {
                    return End::Abrupt;
                }
                End::Graceful
            }
            Closing::Packet(frame) => {
                if self.writer.try_send(WriterCommand::Finish { last: Some(frame) }).is_err() {
                    return End::Abrupt;
                }
                // The SDK acks the close and closes the socket itself; wait for that, ignoring
                // whatever else it sends meanwhile.
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
                if self.writer.try_send(WriterCommand::Close { code: 1000, reason: "" }).is_err() {
                    return End::Abrupt;
                }
                End::Graceful
            }
        }
    }

    /// Tells the backend the session ended, once, and only if it had been opened.
    fn report_closed(&mut self) {
        if self.closed_reported {
            return;
        }
        self.closed_reported = true;
        if self.established.is_some() {
            tracing::info!("session closed");
            self.backend.session_closed(self.id);
        }
    }

    /// Queues a frame in order with everything else. A full queue is not handled here: the
    /// overflow signal ends the session on the next turn of the loop.
    fn send(&self, frame: Bytes) {
        if let Err(e) = self.outbox.push(frame) {
            tracing::debug!(error = ?e, "frame not queued");
        }
    }

    fn on_command(&mut self, cmd: SessionCommand) -> Flow {
        tracing::debug!(?cmd, "session command");
        match cmd {
            SessionCommand::Close {
                code,
                status,
                description,
                error_code,
                backoff_min_ms,
            } => Flow::Close(Closing::Packet(close_frame(
                code,
                &status,
                &description,
                error_code,
                backoff_min_ms,
            ))),
            SessionCommand::Drop => Flow::Close(Closing::Abrupt),
            SessionCommand::WarnTokenExpiry => {
                self.send(token_about_to_expire());
                Flow::Continue
            }
            SessionCommand::ExpireTokenNow => Flow::Close(Closing::Packet(token_expired_close())),
            SessionCommand::SendRaw(frame) => {
                self.send(frame);
                Flow::Continue
            }
        }
    }

    fn on_ws_message(&mut self, msg: Message, upstream: &mut Upstream) -> Flow {
        match msg {
            Message::Binary(frame) => self.on_frame(&frame, upstream),
            // The SDK only sends binary frames; text ones are decoded the same way.
            Message::Text(text) => self.on_frame(&Bytes::from(text), upstream),
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(_) => {
                tracing::debug!("client closed the socket");
                Flow::Close(Closing::Socket { code: 1000, reason: "" })
            }
        }
    }

    fn on_frame(&mut self, frame: &Bytes, upstream: &mut Upstream) -> Flow {
        let packet = match codec::decode_bytes(frame, &self.config.limits) {
            Ok(p) => p,
            Err(err) => return self.on_undecodable(frame, &err),
        };
        // `decode` guarantees both fields.
        let id = packet.id().unwrap_or_default();
        let method = packet.method().unwrap_or_default();
        tracing::trace!(method, id, "packet");
        match method {
            "init" => self.on_init(id, &packet),
            "update" => self.on_update(id, &packet),
            "message" => self.on_upstream(id, &packet, upstream),
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
                Flow::Close(Closing::Socket {
                    code: 1000,
                    reason: "client closed",
                })
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
            Some((_, method)) if method == "reply" => {
                tracing::debug!(error = %err, "undecodable client reply ignored");
                Flow::Continue
            }
            Some((id, method)) => {
                tracing::debug!(error = %err, method, "undecodable packet");
                let (code, status) = match err {
                    DecodeError::PayloadTooLarge { .. } => (413, "PAYLOAD_TOO_LARGE"),
                    _ => (400, "BAD_REQUEST"),
                };
                self.send(packets::reply_status(&id, code, status, Some(&err.to_string()), None));
                Flow::Continue
            }
            None => {
                tracing::debug!(error = %err, "unparseable frame: closing with 406");
                Flow::Close(Closing::Packet(CloseCode::CannotParse.frame(None)))
            }
        }
    }

    fn verify(&self, packet: &Packet) -> Result<Caller, InitRejection> {
        match packet.header.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(token) => self.backend.verify(token),
            None => Err(TokenError::Malformed {
                reason: "no token in the packet",
            }
            .into()),
        }
    }

    /// `init`. A rejected token gets a 401 reply and leaves the socket open and uninitialised:
    /// the SDK closes it, and a later `init` on it may still succeed.
    ///
    /// An `init` on an established session (the SDK never sends one: it uses `update` while
    /// connected) is taken as a token update that answers with a full init reply: same session
    /// id and outbox, same identity, account and service required, `session_updated`.
    fn on_init(&mut self, id: &str, packet: &Packet) -> Flow {
        let caller = match self.verify(packet) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = ?e, "init rejected");
                self.send(packets::reply_rejection(id, &e));
                return Flow::Continue;
            }
        };
        let storage = storage_id(&caller.account.sid, caller.identity());
        if self.established.is_some() {
            return self.replace_token(id, caller, packets::reply_init(id, &storage));
        }
        let info = SessionInfo {
            id: self.id,
            caller,
            outbox: self.outbox.clone(),
            commands: self.commands.clone(),
        };
        self.send(packets::reply_init(id, &storage));
        self.arm_timers(info.caller.claims.expires_at);
        tracing::info!(
            identity = info.caller.identity(),
            account = %info.caller.account.sid,
            "session opened"
        );
        self.backend.session_opened(&info);
        self.established = Some(info);
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
            return Flow::Continue;
        }
        match self.verify(packet) {
            Ok(caller) => self.replace_token(id, caller, packets::reply_ok(id)),
            Err(e) => {
                tracing::debug!(error = ?e, "update rejected");
                self.send(packets::reply_rejection(id, &e));
                Flow::Continue
            }
        }
    }

    fn replace_token(&mut self, id: &str, caller: Caller, reply: Bytes) -> Flow {
        let expires_at = caller.claims.expires_at;
        match self.established.as_mut() {
            Some(info) if same_principal(&info.caller, &caller) => info.caller = caller,
            Some(_) => {
                tracing::debug!("token update for another principal rejected");
                self.send(packets::reply_principal_mismatch(id));
                return Flow::Continue;
            }
            None => return Flow::Continue,
        }
        self.send(reply);
        self.arm_timers(expires_at);
        if let Some(info) = &self.established {
            tracing::debug!("token updated");
            self.backend.session_updated(info);
        }
        Flow::Continue
    }

    /// `message`: decoded and handed to the backend on its own task, so that a slow answer never
    /// holds up the socket.
    fn on_upstream(&mut self, id: &str, packet: &Packet, upstream: &mut Upstream) -> Flow {
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
        match request::parse(packet) {
            Ok(req) => {
                tracing::trace!(method = %req.method, path = %req.path, "upstream");
                upstream.spawn(id, self.backend.clone(), info.clone(), req);
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
            self.clock = info.caller.account.clock().clone();
        }
        let expire = Millis(expires_at.saturating_mul(1000));
        let lead = i64::try_from(self.config.token_warning_lead.as_millis()).unwrap_or(i64::MAX);
        self.timers = TokenTimers {
            warn_at: Some(Millis(expire.0.saturating_sub(lead))),
            expire_at: Some(expire),
        };
    }
}

/// Whether a new token may replace `current` on the same session: the backend's view of who is
/// connected (subscriptions, notification routing) must not change under it.
fn same_principal(current: &Caller, new: &Caller) -> bool {
    current.account.sid == new.account.sid && current.identity() == new.identity() && current.service_sid == new.service_sid
}

/// Upstream requests in flight, each on its own task (a panicking handler fails its request
/// with a 500, not the session).
#[derive(Default)]
struct Upstream {
    tasks: JoinSet<UpstreamResponse>,
    /// Task → the packet id to reply to.
    ids: HashMap<task::Id, String>,
}

impl Upstream {
    fn spawn<B: Backend>(&mut self, packet_id: &str, backend: Arc<B>, info: SessionInfo, req: UpstreamRequest) {
        let handle = self.tasks.spawn(async move { backend.upstream(&info, req).await });
        self.ids.insert(handle.id(), packet_id.to_owned());
    }

    /// The packet id and answer of a finished request.
    fn complete(&mut self, done: Result<(task::Id, UpstreamResponse), JoinError>) -> Option<(String, UpstreamResponse)> {
        match done {
            Ok((task, resp)) => Some((self.ids.remove(&task)?, resp)),
            Err(e) => {
                let id = self.ids.remove(&e.id())?;
                tracing::error!(error = %e, packet = %id, "upstream handler failed");
                Some((id, UpstreamResponse::error(500, 20500, "Internal Server Error")))
            }
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

/// What the driver asks of the writer (besides the outbox frames).
#[derive(Debug)]
enum WriterCommand {
    /// A WebSocket ping.
    Ping,
    /// Stop taking frames from the outbox: write what is queued, then `last`, and nothing more
    /// from the outbox (later pushes fail with `OutboxError::Closed`).
    Finish { last: Option<Bytes> },
    /// Send a WebSocket close frame and stop.
    Close { code: u16, reason: &'static str },
}

/// The only code writing to the socket: outbox frames in order, batched per flush, with the
/// driver's commands taking precedence between batches.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Bytes>,
    mut commands: mpsc::Receiver<WriterCommand>,
) -> Result<(), axum::Error> {
    let mut taking_frames = true;
    loop {
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                None => return Ok(()),
                Some(WriterCommand::Ping) => sink.send(Message::Ping(Bytes::new())).await?,
                Some(WriterCommand::Finish { last }) => {
                    if taking_frames {
                        taking_frames = false;
                        // Closed first, the drain is finite: nothing new can arrive.
                        frames.close();
                        while let Ok(frame) = frames.try_recv() {
                            sink.feed(Message::Binary(frame)).await?;
                        }
                    }
                    if let Some(last) = last {
                        sink.feed(Message::Binary(last)).await?;
                    }
                    sink.flush().await?;
                }
                Some(WriterCommand::Close { code, reason }) => {
                    let frame = CloseFrame { code, reason: reason.into() };
                    // The peer may have closed already; nothing to do about errors here.
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.close().await;
                    return Ok(());
                }
            },
            frame = frames.recv(), if taking_frames => match frame {
                Some(frame) => {
                    sink.feed(Message::Binary(frame)).await?;
                    for _ in 1..WRITE_BATCH {
                        match frames.try_recv() {
                            Ok(frame) => sink.feed(Message::Binary(frame)).await?,
                            Err(_) => break,
                        }
                    }
                    sink.flush().await?;
                }
                None => taking_frames = false,
            },
        }
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
