//! What a twilsock session needs from the rest of the server, and what it offers it.
//!
//! Boundary: the session knows the twilsock protocol (framing, init/update, acknowledgements,
//! close codes, token timers, liveness) and nothing of Conversations or Sync. Everything an
//! upstream `message` asks for is answered by [`Backend::upstream`]; Sync pushes reach the socket
//! through the session's [`Outbox`]; what the session does is reported to
//! [`Backend::observe`] as [`SessionObservation`]s.
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

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

/// Which bound a session's outbound queue overflowed (for the log line that ends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowCause {
    /// More frames than `SessionConfig::outbox_capacity`, queued or kept back.
    Frames,
    /// More bytes than `SessionConfig::outbox_bytes`, queued or kept back.
    Bytes,
}

/// Why a session's outbound queue refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxError {
    /// The consumer cannot keep up: the session is being closed for it.
    Overflow,
    /// The session has ended.
    Closed,
}

/// One queued frame, tagged with where it came from, so that the session can hold back the
/// backend's pushes while its own frames keep flowing (`SessionCommand::HoldNotifications`).
/// One queue for both keeps them in the order they were queued.
#[derive(Debug)]
pub(in crate::twilsock) enum Frame {
    /// Queued by the backend through [`Outbox::push`]: Sync notifications, typing, anything
    /// encoded once and shared between sessions.
    Push(Bytes),
    /// Written by the session itself: replies, `client_update`, injected frames.
    Own(Bytes),
    /// Pushes queued after this marker wait until the matching [`Frame::Ungate`] (queued with
    /// the reply to the request that opened the gate). Never written.
    Gate(u64),
    /// Releases the pushes behind [`Frame::Gate`] with the same number. Never written.
    Ungate(u64),
}

impl Frame {
    /// Bytes on the wire (none for gate markers).
    fn len(&self) -> usize {
        match self {
            Frame::Push(b) | Frame::Own(b) => b.len(),
            Frame::Gate(_) | Frame::Ungate(_) => 0,
        }
    }

    /// What goes on the wire, if anything (gate markers do not).
    pub(in crate::twilsock) fn into_bytes(self) -> Option<Bytes> {
        match self {
            Frame::Push(b) | Frame::Own(b) => Some(b),
            Frame::Gate(_) | Frame::Ungate(_) => None,
        }
    }
}

/// A gate opened in an outbox by an upstream handler ([`Outbox::gate`]); put it in the reply
/// ([`UpstreamResponse::with_gate`]) and the session releases it right after queueing the reply.
///
/// Released on drop, whatever happens to the reply: a handler that panics, fails or is aborted
/// with a gate open must never keep every later push of the session behind it. (The session
/// drops the gate right after queueing the reply, which is the release it is made for.)
#[derive(Debug)]
#[must_use = "dropping a gate releases it at once"]
pub struct ReplyGate {
    id: u64,
    outbox: Outbox,
}

impl Drop for ReplyGate {
    fn drop(&mut self) {
        // A full or closed outbox is ending the session anyway: nothing is left to release.
        if let Err(e) = self.outbox.send(Frame::Ungate(self.id)) {
            tracing::debug!(error = ?e, gate = self.id, "gate release not queued");
        }
    }
}

/// A value alone on its cache line (no false sharing with its neighbours).
#[derive(Debug, Default)]
#[repr(align(128))]
struct CacheLine<T>(T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// What the pushing side and the writing side of one outbox share.
#[derive(Debug, Default)]
struct Shared {
    overflowed: AtomicBool,
    /// An [`OverflowCause`] as `u8` (0: frames, 1: bytes), set with `overflowed`.
    cause: AtomicU8,
    kill: Notify,
    /// Signalled when `bytes` falls below `max_bytes` again (see [`Outbox::below_budget`]).
    drained: Notify,
    /// Bytes of the frames queued or kept back by the writer, not yet written to the socket,
    /// and of the upstream replies reserved for but not queued yet ([`Outbox::reserve`]).
    /// On its own cache line: the writer updates it for every frame it writes, while pushers on
    /// other cores read the fields above for every frame they queue.
    bytes: CacheLine<AtomicUsize>,
    /// The bound on `bytes` (see [`Outbox::push`]).
    max_bytes: usize,
    /// Frames the writer took from the queue but keeps back (held notifications, a stall,
    /// pushes behind a reply gate).
    backlog: AtomicUsize,
    /// Numbers the outbox's reply gates.
    gates: AtomicU64,
}

/// The bounded outbound queue of one session, shared (cheap clone) with whoever pushes to it.
///
/// A push never waits: a full queue means a consumer that cannot keep up, and the policy is to
/// end that session with a recorded reason (`overflowed()`), never to drop frames silently.
///
/// Bounded twice: in frames (the channel's capacity, which also bounds what the writer keeps
/// back) and in bytes. A frame is refused, and the outbox overflows, when it would take the
/// bytes not yet written past `max_bytes` while other frames are already waiting: a single
/// frame larger than the whole budget (a big page read by a client that keeps up) still goes
/// through, so the budget bounds a session's memory to `max_bytes` plus one frame.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    shared: Arc<Shared>,
}

impl Outbox {
    /// A queue of `capacity` frames and `max_bytes` bytes, and its receiving end for the socket
    /// writer.
    pub(in crate::twilsock) fn new(capacity: usize, max_bytes: usize) -> (Outbox, Frames) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared {
            max_bytes: max_bytes.max(1),
            ..Shared::default()
        });
        (
            Outbox {
                tx,
                shared: shared.clone(),
            },
            Frames { rx, shared },
        )
    }

    /// Queues a backend push (held back while the session holds notifications).
    pub fn push(&self, frame: Bytes) -> Result<(), OutboxError> {
        self.send(Frame::Push(frame))
    }

    /// Queues one of the session's own frames (never held back).
    pub(in crate::twilsock) fn push_own(&self, frame: Bytes) -> Result<(), OutboxError> {
        self.send(Frame::Own(frame))
    }

    /// Opens a reply gate: pushes queued from now on are written only after the reply that
    /// carries the gate. An upstream handler that queues pushes *caused by* its request (a Sync
    /// subscription's replay and `subscription_established`) opens one first, so that the client
    /// sees its reply before them, as it would from Twilio (which answers the request at once and
    /// delivers the events later), while the pushes still keep their order with every live event.
    ///
    /// The gate is released when the returned [`ReplyGate`] is dropped.
    pub fn gate(&self) -> Result<ReplyGate, OutboxError> {
        let id = self.shared.gates.fetch_add(1, Ordering::Relaxed);
        self.send(Frame::Gate(id))?;
        Ok(ReplyGate { id, outbox: self.clone() })
    }

    fn send(&self, frame: Frame) -> Result<(), OutboxError> {
        if self.overflowed() {
            return Err(OutboxError::Overflow);
        }
        let len = frame.len();
        self.reserve(len)?;
        self.send_reserved(frame)
    }

    /// Counts `len` bytes against the budget before the frame that needs them is queued: an
    /// upstream reply from the moment it is encoded, so that replies built but not yet queued
    /// (waiting for the driver, or out a latency) are bounded in bytes like queued ones. Fails,
    /// and the outbox overflows, under the same rule as a push. The frame must then be queued
    /// with [`Outbox::push_own_reserved`] (a reserved frame never queued is only dropped when
    /// the session ends, with its outbox).
    pub(in crate::twilsock) fn reserve(&self, len: usize) -> Result<(), OutboxError> {
        if self.overflowed() {
            return Err(OutboxError::Overflow);
        }
        if len > 0 {
            let before = self.shared.bytes.fetch_add(len, Ordering::Relaxed);
            if before > 0 && before.saturating_add(len) > self.shared.max_bytes {
                self.shared.bytes.fetch_sub(len, Ordering::Relaxed);
                self.shared.mark_overflowed(OverflowCause::Bytes);
                return Err(OutboxError::Overflow);
            }
        }
        Ok(())
    }

    /// Queues one of the session's own frames whose bytes were reserved ([`Outbox::reserve`]).
    pub(in crate::twilsock) fn push_own_reserved(&self, frame: Bytes) -> Result<(), OutboxError> {
        let len = frame.len();
        if self.overflowed() {
            self.shared.release(len);
            return Err(OutboxError::Overflow);
        }
        self.send_reserved(Frame::Own(frame))
    }

    /// Queues a frame whose bytes are already counted; gives them back if it is refused.
    fn send_reserved(&self, frame: Frame) -> Result<(), OutboxError> {
        let len = frame.len();
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.release(len);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        self.shared.mark_overflowed(OverflowCause::Frames);
                        Err(OutboxError::Overflow)
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(OutboxError::Closed),
                }
            }
        }
    }

    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// Which bound overflowed, once [`Outbox::overflowed`].
    pub fn overflow_cause(&self) -> Option<OverflowCause> {
        self.overflowed().then(|| match self.shared.cause.load(Ordering::Relaxed) {
            1 => OverflowCause::Bytes,
            _ => OverflowCause::Frames,
        })
    }

    /// Bytes waiting to be written: queued, plus those the writer keeps back (held
    /// notifications, a stall, pushes behind a reply gate).
    pub fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// The bound on [`Outbox::queued_bytes`].
    pub fn max_bytes(&self) -> usize {
        self.shared.max_bytes
    }

    /// Completes once the bytes waiting are below the budget (at once if they are): the session
    /// reads no new request while its unwritten replies and pushes fill the budget.
    pub(in crate::twilsock) async fn below_budget(&self) {
        loop {
            let drained = self.shared.drained.notified();
            if self.queued_bytes() < self.shared.max_bytes {
                return;
            }
            drained.await;
        }
    }

    /// Completes when the queue overflowed (the session must then close).
    pub async fn overflow_signal(&self) {
        loop {
            if self.overflowed() {
                return;
            }
            self.shared.kill.notified().await;
        }
    }

    /// Frames waiting to be written: queued, plus those the writer keeps back (held
    /// notifications, frames queued during a stall).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.shared.backlog.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Shared {
    /// Takes `n` written or abandoned bytes off the count, waking a driver waiting for room.
    fn release(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::Relaxed);
        if before >= self.max_bytes && before.saturating_sub(n) < self.max_bytes {
            self.drained.notify_waiters();
        }
    }

    fn mark_overflowed(&self, cause: OverflowCause) {
        // The first cause wins: later refusals are consequences.
        if !self.overflowed.swap(true, Ordering::Relaxed) {
            self.cause.store(u8::from(cause == OverflowCause::Bytes), Ordering::Relaxed);
        }
        self.kill.notify_one();
    }
}

/// The receiving end of an [`Outbox`], owned by the session's writer.
#[derive(Debug)]
pub(in crate::twilsock) struct Frames {
    rx: mpsc::Receiver<Frame>,
    shared: Arc<Shared>,
}

impl Frames {
    pub(in crate::twilsock) async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await
    }

    pub(in crate::twilsock) fn try_recv(&mut self) -> Option<Frame> {
        self.rx.try_recv().ok()
    }

    /// No more frames are accepted (pushes fail with [`OutboxError::Closed`]); those queued can
    /// still be received.
    pub(in crate::twilsock) fn close(&mut self) {
        self.rx.close();
    }

    /// The queue's capacity: also the bound on frames the writer may keep back.
    pub(in crate::twilsock) fn capacity(&self) -> usize {
        self.rx.max_capacity()
    }

    /// How many frames the writer keeps back (for [`Outbox::depth`]).
    pub(in crate::twilsock) fn set_backlog(&self, n: usize) {
        self.shared.backlog.store(n, Ordering::Relaxed);
    }

    /// The writer kept back more than the capacity: the session ends as a slow consumer, and
    /// every later push is refused.
    pub(in crate::twilsock) fn mark_overflowed(&self) {
        self.shared.mark_overflowed(OverflowCause::Frames);
    }

    /// `n` bytes of frames taken from the queue were handed to the socket.
    pub(in crate::twilsock) fn wrote(&self, n: usize) {
        self.shared.release(n);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(frames: &mut Frames) -> Vec<String> {
        std::iter::from_fn(|| frames.try_recv())
            .map(|f| match f {
                Frame::Push(b) => format!("push {}", b.len()),
                Frame::Own(b) => format!("own {}", b.len()),
                Frame::Gate(n) => format!("gate {n}"),
                Frame::Ungate(n) => format!("ungate {n}"),
            })
            .collect()
    }

    #[test]
    fn a_gate_dropped_without_its_reply_releases_itself() {
        let (outbox, mut frames) = Outbox::new(8, 1024);
        let gate = outbox.gate().expect("opens");
        outbox.push(Bytes::from_static(b"x")).expect("queued");
        // What a panicking or aborted handler does to the gate it opened.
        drop(gate);
        assert_eq!(drain(&mut frames), ["gate 0", "push 1", "ungate 0"]);
    }

    #[test]
    fn the_byte_bound_refuses_a_frame_past_it_but_lets_one_big_frame_through() {
        let (outbox, mut frames) = Outbox::new(64, 10);
        outbox.push(Bytes::from_static(b"123456")).expect("6 of 10");
        assert_eq!(outbox.queued_bytes(), 6);
        assert_eq!(outbox.push(Bytes::from_static(b"123456")), Err(OutboxError::Overflow));
        assert_eq!(outbox.overflow_cause(), Some(OverflowCause::Bytes));
        assert_eq!(outbox.queued_bytes(), 6, "a refused frame is not counted");
        assert_eq!(drain(&mut frames), ["push 6"]);

        let (outbox, frames) = Outbox::new(64, 10);
        outbox
            .push(Bytes::from(vec![0; 100]))
            .expect("alone, a frame over the budget passes");
        frames.wrote(100);
        assert_eq!(outbox.queued_bytes(), 0, "written frames leave the budget");
        outbox.push_own(Bytes::from_static(b"0123456789")).expect("exactly the budget");
        assert!(!outbox.overflowed());
        assert_eq!(outbox.gate().map(|g| g.id), Ok(0), "gate markers take no bytes");
    }

    #[test]
    fn the_frame_bound_names_its_cause() {
        let (outbox, _frames) = Outbox::new(1, 1024);
        outbox.push(Bytes::from_static(b"a")).expect("1 of 1");
        assert_eq!(outbox.push(Bytes::from_static(b"b")), Err(OutboxError::Overflow));
        assert_eq!(outbox.overflow_cause(), Some(OverflowCause::Frames));
        assert_eq!(outbox.queued_bytes(), 1);
    }
}
