//! Per-session settings and their defaults.
use std::time::Duration;

use super::super::codec::Limits;

/// Room for the framing around header and payload (`TWILSOCK V3.0 <20 digits>\r\n…\r\n`).
const FRAME_OVERHEAD: usize = 64;

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
