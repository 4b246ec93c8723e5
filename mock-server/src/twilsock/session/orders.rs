//! How a [`SessionCommand`] reaches a session and how the session acknowledges it: each command
//! travels with its own acknowledgement sender, answered by the session once it applied that very
//! command. Whoever waits for a command's effect waits for its acknowledgement, never for a
//! journal entry that looks like it (the journal's "stall applied" is a substring of "unstall
//! applied").
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::super::mailbox::Mailbox;
use super::SessionCommand;

/// Pending [`SessionCommand`]s per session.
const SESSION_COMMANDS: usize = 16;

/// A command on its way to a session. Boxed: the queue is as small as its slots while commands
/// wait (a `SessionCommand` is ~90 bytes).
#[derive(Debug)]
pub(super) struct Order {
    pub(super) command: Box<SessionCommand>,
    /// Answered once the session applied the command; dropped unanswered when it did not (the
    /// command was refused, or the session ended first).
    pub(super) applied: Option<oneshot::Sender<()>>,
}

/// The sending end of one session's command queue (bounded: a full queue refuses the command).
#[derive(Debug, Clone)]
pub struct CommandSender(Arc<Mailbox<Order>>);

/// The session's end of its command queue. Dropping it closes the queue and drops the commands
/// still in it, which tells their waiters they will never be applied.
#[derive(Debug)]
pub(super) struct Orders(Arc<Mailbox<Order>>);

impl Drop for Orders {
    fn drop(&mut self) {
        self.close();
    }
}

impl Orders {
    /// Refuses every later command and drops those still queued, which tells their waiters
    /// they will never be applied.
    pub(super) fn close(&self) {
        self.0.close();
        while self.0.try_recv().is_some() {}
    }

    /// The next command (never `None` while the session holds its [`CommandSender`]).
    pub(super) async fn recv(&self) -> Option<Order> {
        self.0.recv().await
    }
}

/// A session's command queue: its sending end (to hand out) and its receiving end.
pub(super) fn queue() -> (CommandSender, Orders) {
    let mailbox = Arc::new(Mailbox::new(SESSION_COMMANDS));
    (CommandSender(mailbox.clone()), Orders(mailbox))
}

impl CommandSender {
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
