//! What a twilsock session needs from the rest of the server, and what it offers it.
//!
//! Boundary: the session knows the twilsock protocol (framing, init/update, acknowledgements,
//! close codes, token timers, liveness) and nothing of Conversations or Sync. Everything an
//! upstream `message` asks for is answered by [`Backend::upstream`]; Sync pushes reach the socket
//! through the session's [`Outbox`].
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use super::session::SessionCommand;
use crate::auth::TokenError;
use crate::auth::identity::Caller;

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
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

impl UpstreamResponse {
    pub fn ok(body: serde_json::Value) -> Self {
        UpstreamResponse { status: 200, body }
    }

    pub fn status(status: u16, body: serde_json::Value) -> Self {
        UpstreamResponse { status, body }
    }

    /// The error body the SDK reads: `{status, code, message}`.
    pub fn error(status: u16, code: u32, message: impl Into<String>) -> Self {
        UpstreamResponse {
            status,
            body: serde_json::json!({ "status": status, "code": code, "message": message.into() }),
        }
    }
}

/// Why a session's outbound queue refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxError {
    /// The consumer cannot keep up: the session is being closed for it.
    Overflow,
    /// The session has ended.
    Closed,
}

/// The bounded outbound queue of one session, shared (cheap clone) with whoever pushes to it.
///
/// A push never waits: a full queue means a consumer that cannot keep up, and the policy is to
/// end that session with a recorded reason (`overflowed()`), never to drop frames silently.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    overflowed: Arc<AtomicBool>,
    kill: Arc<Notify>,
}

impl Outbox {
    /// A queue of `capacity` frames, and its receiving end for the socket writer.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Outbox {
                tx,
                overflowed: Arc::default(),
                kill: Arc::new(Notify::new()),
            },
            rx,
        )
    }

    pub fn push(&self, frame: Bytes) -> Result<(), OutboxError> {
        if self.overflowed.load(Ordering::Relaxed) {
            return Err(OutboxError::Overflow);
        }
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Relaxed);
                self.kill.notify_one();
                Err(OutboxError::Overflow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(OutboxError::Closed),
        }
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Completes when the queue overflowed (the session must then close).
    pub async fn overflow_signal(&self) {
        loop {
            if self.overflowed() {
                return;
            }
            self.kill.notified().await;
        }
    }

    /// Frames waiting to be written.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
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

/// One established (initialised) session, as the backend sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Unique per server process.
    pub id: u64,
    pub caller: Caller,
    pub outbox: Outbox,
    /// Orders to this live session (control plane: close with a code, drop, expire the token).
    /// Bounded: use `try_send`; a closed channel means the session has ended.
    pub commands: mpsc::Sender<SessionCommand>,
}

/// The rest of the server, from a session's point of view.
pub trait Backend: Send + Sync + 'static {
    /// Verifies an access token presented in `init` or `update`.
    fn verify(&self, token: &str) -> Result<Caller, InitRejection>;

    /// Answers one upstream request of an established session.
    fn upstream(&self, session: &SessionInfo, req: UpstreamRequest) -> impl Future<Output = UpstreamResponse> + Send;

    /// A session completed `init` (also after a reconnect: a new session id).
    fn session_opened(&self, session: &SessionInfo);

    /// The session's token was replaced by `update` (same session id).
    fn session_updated(&self, session: &SessionInfo);

    /// The session ended, for whatever reason.
    fn session_closed(&self, session_id: u64);
}
