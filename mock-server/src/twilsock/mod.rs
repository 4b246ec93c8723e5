//! Twilsock v3, the WebSocket protocol of the official SDK.
//!
//! Layout: `codec` (framing; knows nothing of sessions), `backend` (the boundary between a
//! session and the rest of the server), `mailbox` (the bounded queue a session's queues are built on), `outbox` (a session's bounded outbound queue and reply
//! gates), `session` (one connection's lifecycle), `websocket` (RFC 6455 framing, for the
//! session's socket).
pub mod backend;
pub mod codec;
mod mailbox;
pub mod outbox;
pub mod session;
pub mod websocket;

pub use backend::{
    Backend, EndReason, InitRejection, Principal, RequestLine, SessionInfo, SessionObservation, UpstreamRequest, UpstreamResponse,
};
pub use codec::{DecodeError, Limits, Packet};
pub use outbox::{Outbox, OutboxError, OverflowCause, ReplyGate};
pub use session::{Ack, CloseCode, CommandSender, Endpoint, SessionCommand, SessionConfig, close_frame};
