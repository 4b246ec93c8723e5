//! What a twilsock session needs from the rest of the server, and what it offers it.
//!
//! Boundary: the session knows the twilsock protocol (framing, init/update, acknowledgements,
//! close codes, token timers, liveness) and nothing of Conversations or Sync. Everything an
//! upstream `message` asks for is answered by [`Backend::upstream`]; Sync pushes reach the socket
//! through the session's [`Outbox`]; what the session does is reported to
//! [`Backend::observe`] as [`SessionObservation`]s.
use std::future::Future;

use bytes::Bytes;

use super::outbox::{Outbox, ReplyGate};
use super::session::CommandSender;
use crate::auth::TokenError;
use crate::clock::Clock;

/// An HTTP request tunnelled over twilsock (`message` packet), decoded.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// The host label (`aim.us1.twilio.com`, `cds.us1.twilio.com`): informational only.
    pub host: String,
    /// Percent-decoded path without the query string, e.g. `/Client/v2/Configuration`.
    pub path: String,
    /// The raw (still percent-encoded) path segments, for identities and unique names that
    /// contain `/` after decoding.
    pub raw_path: String,
    /// Query parameters, percent-decoded; repeated keys appear repeatedly.
    pub params: Vec<(String, String)>,
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The packet's `payload_type` (the request's content type).
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl UpstreamRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The HTTP answer to an upstream request; goes back in a `reply` with twilsock status 200 and
/// this as `http_status`, `Content-Type: application/json`.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: u16,
    pub body: serde_json::Value,
    /// Released once this reply is queued: the pushes queued behind it (see [`Outbox::gate`]).
    pub gate: Option<ReplyGate>,
    /// No handler takes the request (the inspector lists it among the near-misses).
    pub no_route: bool,
}

impl UpstreamResponse {
    pub fn ok(body: serde_json::Value) -> Self {
        UpstreamResponse {
            status: 200,
            body,
            gate: None,
            no_route: false,
        }
    }

    pub fn status(status: u16, body: serde_json::Value) -> Self {
        UpstreamResponse {
            status,
            body,
            gate: None,
            no_route: false,
        }
    }

    /// No handler takes this request: 404 (20404), marked as a near-miss (see
    /// `control::near_misses`).
    pub fn no_route(method: &str, path: &str) -> Self {
        UpstreamResponse {
            no_route: true,
            ..UpstreamResponse::error(404, 20404, format!("No client API at {method} {path}"))
        }
    }

    /// Pushes queued behind `gate` are written only after this reply.
    pub fn with_gate(mut self, gate: ReplyGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The error body the SDK reads: `{status, code, message}`.
    pub fn error(status: u16, code: u32, message: impl Into<String>) -> Self {
        UpstreamResponse {
            status,
            body: serde_json::json!({ "status": status, "code": code, "message": message.into() }),
            gate: None,
            no_route: false,
        }
    }
}

/// Why an `init` or `update` is refused: the reply's `status` (and, for 429, a backoff policy).
/// Token errors become 401 replies with Twilio's code; the control plane can deny inits with
/// any status (401/403 end in `denied`, 429 and 5xx make the SDK retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRejection {
    pub status: u16,
    pub status_text: String,
    pub error_code: Option<u32>,
    pub description: String,
    /// Sent as `backoff_policy.reconnect_min_ms` in the reply payload.
    pub backoff_ms: Option<u64>,
}

impl From<TokenError> for InitRejection {
    fn from(e: TokenError) -> Self {
        InitRejection {
            status: e.status(),
            status_text: "UNAUTHORIZED".into(),
            error_code: Some(e.code()),
            description: e.to_string(),
            backoff_ms: None,
        }
    }
}

/// Who a session's token says the client is: all a session reads of the backend's caller, so
/// that twilsock knows nothing of accounts, services or Conversations.
pub trait Principal: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The tenant the token belongs to (an account SID): names the session's storage and logs.
    fn account(&self) -> &str;
    fn identity(&self) -> &str;
    /// When the token expires, Unix seconds: the session's token timers.
    fn expires_at(&self) -> i64;
    /// The clock token time runs on (the tenant's: each tenant may move its own).
    fn clock(&self) -> &Clock;
    /// Whether a new token for `new` may replace this one on the same session: the backend's
    /// view of who is connected (subscriptions, notification routing) must not change under it.
    fn same_principal(&self, new: &Self) -> bool;
}

/// One established (initialised) session, as the backend sees it; `C` is the backend's caller
/// ([`Backend::Caller`]).
#[derive(Debug, Clone)]
pub struct SessionInfo<C> {
    /// Unique per server process.
    pub id: u64,
    pub caller: C,
    pub outbox: Outbox,
    /// Orders to this live session (control plane: close with a code, drop, expire the token,
    /// latency, held notifications, stalls).
    /// Bounded: use `try_send`; a closed channel means the session has ended.
    pub commands: CommandSender,
}

/// Something a session did or saw, reported through [`Backend::observe`] (the control plane
/// journals it). Borrowed from the session, so observing costs the session nothing beyond the
/// call. Backend pushes (Sync notifications, typing) are never observed here: whoever pushes
/// them records them once per event, not once per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionObservation<'a> {
    /// The WebSocket upgrade completed; nothing has been read yet.
    Accepted,
    /// `init` succeeded: the session is established (`info` is `Some` from here on).
    InitOk,
    /// `init` was answered with this status (and Twilio error code); the socket stays open.
    InitRefused { status: u16, error_code: Option<u32> },
    /// `update` (or a repeated `init`) replaced the token.
    UpdateOk,
    /// `update` was refused; the session keeps its token.
    UpdateRefused { status: u16, error_code: Option<u32> },
    /// A packet was decoded: its method and id, and for an upstream `message` its HTTP request
    /// line (absent when the request is malformed). Not for the client's acks (`reply`, one per
    /// delivered frame), which the session only counts; an undecodable one is still observed.
    PacketIn {
        method: &'a str,
        id: &'a str,
        request: Option<RequestLine<'a>>,
    },
    /// The reply to an upstream `message` was queued: the HTTP status, and the time from the
    /// packet's arrival to the reply being queued (handler plus any latency set).
    UpstreamReply {
        id: &'a str,
        request: RequestLine<'a>,
        status: u16,
        duration_ms: u64,
    },
    /// `client_update` / `token_about_to_expire` was queued.
    TokenWarningSent,
    /// A twilsock `close` packet with this status code was queued, after everything else.
    CloseSent { code: u16 },
    /// A [`SessionCommand`](super::SessionCommand) took effect (see [`SessionCommand::name`](super::SessionCommand::name)); observed after its
    /// immediate effects, before the close it may start.
    CommandApplied { name: &'static str },
    /// The session ended. Observed exactly once per socket, initialised or not.
    Ended { reason: EndReason },
}

/// The HTTP method and (percent-decoded) path of an upstream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// The client closed: a twilsock `close` packet or a WebSocket close frame.
    ClientClosed,
    /// The connection ended without a close handshake (end of stream, read or write error).
    ConnectionLost,
    /// [`SessionCommand::Drop`](super::SessionCommand::Drop).
    Dropped,
    /// [`SessionCommand::Close`](super::SessionCommand::Close): the close packet was sent.
    ClosedByCommand,
    /// The outbound queue overflowed (a slow consumer, or too much held back or stalled).
    Overflow,
    /// The token expired (its timer, or [`SessionCommand::ExpireTokenNow`](super::SessionCommand::ExpireTokenNow)): close 410.
    TokenExpired,
    /// No pong in time after a WebSocket ping.
    LivenessTimeout,
    /// No successful `init` in time after connecting.
    InitTimeout,
    /// The server is shutting down.
    Shutdown,
    /// A frame that is not twilsock: close 406.
    ProtocolError,
    /// A WebSocket message or frame over the size limit: WebSocket close 1009.
    MessageTooBig,
}

impl EndReason {
    /// `snake_case` name, as journaled.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientClosed => "client_closed",
            EndReason::ConnectionLost => "connection_lost",
            EndReason::Dropped => "dropped",
            EndReason::ClosedByCommand => "closed_by_command",
            EndReason::Overflow => "overflow",
            EndReason::TokenExpired => "token_expired",
            EndReason::LivenessTimeout => "liveness_timeout",
            EndReason::InitTimeout => "init_timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::ProtocolError => "protocol_error",
            EndReason::MessageTooBig => "message_too_big",
        }
    }
}

/// The rest of the server, from a session's point of view.
pub trait Backend: Send + Sync + 'static {
    /// Who a verified token says the client is.
    type Caller: Principal;

    /// Verifies an access token presented in `init` or `update`.
    fn verify(&self, token: &str) -> Result<Self::Caller, InitRejection>;

    /// [`Backend::verify`] for session `session`: what the session calls. A backend that journals
    /// overrides it to remember who a refused token claimed to be, so that it can attribute the
    /// observations of a session that never got established.
    fn verify_for(&self, session: u64, token: &str) -> Result<Self::Caller, InitRejection> {
        let _ = session;
        self.verify(token)
    }

    /// Answers one upstream request of an established session.
    fn upstream(&self, session: &SessionInfo<Self::Caller>, req: UpstreamRequest) -> impl Future<Output = UpstreamResponse> + Send;

    /// A session completed `init` (also after a reconnect: a new session id).
    fn session_opened(&self, session: &SessionInfo<Self::Caller>);

    /// The session's token was replaced by `update` (same session id).
    fn session_updated(&self, session: &SessionInfo<Self::Caller>);

    /// The session ended, for whatever reason.
    fn session_closed(&self, session_id: u64);

    /// What session `session` did or saw (`info`: once established). Called on the session's
    /// task, in order, at every point [`SessionObservation`] lists; keep it cheap.
    fn observe(&self, session: u64, info: Option<&SessionInfo<Self::Caller>>, what: SessionObservation<'_>) {
        let _ = (session, info, what);
    }
}
