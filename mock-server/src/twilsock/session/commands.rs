//! The control plane's orders to a live session ([`SessionCommand`]), and how the driver applies
//! them.
use std::time::Duration;

use bytes::Bytes;

use super::super::backend::{Backend, EndReason, SessionObservation};
use super::orders::Order;
use super::packets::{CloseCode, close_frame, token_expired_close};
use super::{Closing, Flow, MAX_LATENCY, Session};

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

impl<B: Backend> Session<B> {
    /// Applies a command, then observes and acknowledges it (before any close it starts). A
    /// refused command is neither: its acknowledgement is dropped unanswered.
    pub(super) fn on_command(&mut self, order: Order) -> Flow {
        let Order { command: cmd, applied } = order;
        tracing::debug!(?cmd, "session command");
        let name = cmd.name();
        let flow = match *cmd {
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
                tracing::warn!(session = self.id, ?latency, max = ?MAX_LATENCY, "latency out of range: command refused");
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
}
