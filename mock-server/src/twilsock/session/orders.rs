//! How a [`SessionCommand`] reaches a session and how the session acknowledges it: each command
//! travels with its own acknowledgement sender, answered by the session once it applied that very
//! command. Whoever waits for a command's effect waits for its acknowledgement, never for a
//! journal entry that looks like it (the journal's "stall applied" is a substring of "unstall
//! applied").
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::SessionCommand;

/// A command on its way to a session. Boxed: a tokio channel allocates its slots in blocks of
/// 32 as soon as it is made, so an unboxed command (~90 bytes) made every session's idle queue
/// ~3 KiB.
#[derive(Debug)]
pub(super) struct Order {
    pub(super) command: Box<SessionCommand>,
    /// Answered once the session applied the command; dropped unanswered when it did not (the
    /// command was refused, or the session ended first).
    pub(super) applied: Option<oneshot::Sender<()>>,
}

/// The sending end of one session's command queue (bounded: a full queue refuses the command).
#[derive(Debug, Clone)]
pub struct CommandSender(mpsc::Sender<Order>);

impl CommandSender {
    pub(super) fn new(tx: mpsc::Sender<Order>) -> CommandSender {
        CommandSender(tx)
    }

    /// Queues a command nobody waits for. Fails when the queue is full or the session has ended.
    pub fn try_send(&self, command: SessionCommand) -> Result<(), TrySendError<SessionCommand>> {
        self.0
            .try_send(Order {
                command: Box::new(command),
                applied: None,
            })
            .map_err(unwrap_order)
    }

    /// Queues a command and returns its acknowledgement. Fails when the queue is full or the
    /// session has ended.
    pub fn try_send_acked(&self, command: SessionCommand) -> Result<Ack, TrySendError<SessionCommand>> {
        let (tx, rx) = oneshot::channel();
        self.0
            .try_send(Order {
                command: Box::new(command),
                applied: Some(tx),
            })
            .map_err(unwrap_order)?;
        Ok(Ack(rx))
    }
}

fn unwrap_order(e: TrySendError<Order>) -> TrySendError<SessionCommand> {
    match e {
        TrySendError::Full(o) => TrySendError::Full(*o.command),
        TrySendError::Closed(o) => TrySendError::Closed(*o.command),
    }
}

/// One session's acknowledgement of one command.
#[derive(Debug)]
pub struct Ack(oneshot::Receiver<()>);

impl Ack {
    /// Waits until the session applied the command (`true`), or until it is known that it never
    /// will (`false`: refused, or the session ended first). Put a timeout around it.
    pub async fn applied(self) -> bool {
        self.0.await.is_ok()
    }
}
