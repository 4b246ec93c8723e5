//! Live sessions seen from the control plane: listing them, and session commands sent to them
//! with their typed acknowledgements ([`Delivery`]).
use std::time::Duration;

use serde_json::json;

use super::Control;
use super::sessions::{SessionView, Target};
use crate::journal::Kind;
use crate::twilsock::session::{Ack, SessionCommand};

/// How long [`Control::command_applied`] waits for sessions to apply a command. A session that
/// does not apply it in time is busy beyond reason (or gone); the caller learns which.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

impl Control {
    pub fn connections(&self, account: Option<&str>) -> Vec<SessionView> {
        self.sessions.list(account, |acc, id| {
            self.hub
                .projection(acc)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .subscriptions_of(id)
        })
    }

    /// [`Control::command`], then waits until every session it reached has applied the command
    /// (at most [`APPLY_TIMEOUT`]), so that whatever the caller does next meets its effect: a
    /// message posted after `hold_notifications` is held, one posted after `drop` finds no
    /// session. Sessions apply commands on their own tasks, in order with everything else they
    /// do. Returns the sessions reached and, of those, the ones that applied it in time.
    pub async fn command_applied(&self, target: &Target, cmd: SessionCommand) -> (Vec<u64>, Vec<u64>) {
        let delivery = self.command(target, cmd);
        let reached = delivery.reached();
        (reached, delivery.applied().await)
    }

    /// Sends a command to the target sessions; returns the ids reached, with their
    /// acknowledgements (they apply it on their own tasks, shortly after: wait with
    /// [`Delivery::applied`], or see [`Control::command_applied`]).
    pub fn command(&self, target: &Target, cmd: SessionCommand) -> Delivery {
        let acks = self.sessions.command(target, &cmd);
        let delivery = Delivery { acks };
        let reached = delivery.reached();
        self.record(
            Kind::Fault,
            Some(&target.account),
            format!("{} -> {} session(s)", cmd.name(), reached.len()),
            json!({ "command": cmd.name(), "sessions": reached, "identity": target.identity, "session": target.session }),
        );
        delivery
    }
}

/// A session command sent by [`Control::command`]: the sessions it reached, each with its
/// acknowledgement of this very command (typed, so that no other command, and no journal entry
/// that reads alike, can stand in for it).
#[derive(Debug)]
pub struct Delivery {
    acks: Vec<(u64, Ack)>,
}

impl Delivery {
    /// The sessions the command reached, in id order.
    pub fn reached(&self) -> Vec<u64> {
        self.acks.iter().map(|(id, _)| *id).collect()
    }

    /// Waits (at most [`APPLY_TIMEOUT`] in all, holding no lock) until every session reached has
    /// applied the command or is known never to (it refused it, or ended first); returns those
    /// that applied it in time, in id order.
    pub async fn applied(self) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        let mut applied = Vec::with_capacity(self.acks.len());
        for (id, ack) in self.acks {
            if matches!(tokio::time::timeout_at(deadline, ack.applied()).await, Ok(true)) {
                applied.push(id);
            }
        }
        applied
    }
}
