//! A session's outbound queue: one bounded queue (frames and bytes) that both the backend's
//! pushes and the session's own frames go through, in the order they were queued, with reply
//! gates that hold pushes back until the reply they follow is written.
//!
//! Apart from `backend.rs` because it is the one piece of the boundary with state of its own:
//! the bounds, the overflow that ends a slow consumer, and the gate bookkeeping.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

use super::mailbox::{Mailbox, TrySendError};

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

/// What the pushing side and the writing side of one outbox share.
#[derive(Debug)]
struct Shared {
    /// The frames, in the order they were queued (no storage while empty).
    queue: Mailbox<Frame>,
    overflowed: AtomicBool,
    /// An [`OverflowCause`] as `u8` (0: frames, 1: bytes), set with `overflowed`.
    cause: AtomicU8,
    kill: Notify,
    /// Signalled when `bytes` falls below `max_bytes` again (see [`Outbox::below_budget`]).
    drained: Notify,
    /// Bytes of the frames queued or kept back by the writer, not yet written to the socket,
    /// and of the upstream replies reserved for but not queued yet ([`Outbox::reserve`]).
    /// Not padded to a cache line of its own: pushers and the writer both write it and the
    /// queue's lock for every frame, so padding would isolate nothing, and it cost every
    /// session ~300 bytes (the whole `Arc` aligned to 128).
    bytes: AtomicUsize,
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
/// Bounded twice: in frames (the queue's capacity, which also bounds what the writer keeps
/// back) and in bytes. A frame is refused, and the outbox overflows, when it would take the
/// bytes not yet written past `max_bytes` while other frames are already waiting: a single
/// frame larger than the whole budget (a big page read by a client that keeps up) still goes
/// through, so the budget bounds a session's memory to `max_bytes` plus one frame.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// A queue of `capacity` frames and `max_bytes` bytes, and its receiving end for the socket
    /// writer.
    pub(in crate::twilsock) fn new(capacity: usize, max_bytes: usize) -> (Outbox, Frames) {
        let shared = Arc::new(Shared {
            queue: Mailbox::new(capacity),
            overflowed: AtomicBool::new(false),
            cause: AtomicU8::new(0),
            kill: Notify::new(),
            drained: Notify::new(),
            bytes: AtomicUsize::new(0),
            max_bytes: max_bytes.max(1),
            backlog: AtomicUsize::new(0),
            gates: AtomicU64::new(0),
        });
        (Outbox { shared: shared.clone() }, Frames { shared })
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
        match self.shared.queue.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.release(len);
                match e {
                    TrySendError::Full(_) => {
                        self.shared.mark_overflowed(OverflowCause::Frames);
                        Err(OutboxError::Overflow)
                    }
                    TrySendError::Closed(_) => Err(OutboxError::Closed),
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
        self.shared.queue.len() + self.shared.backlog.load(Ordering::Relaxed)
    }

    /// The session's writer stopped taking frames (it finished, or the session ended).
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
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
    shared: Arc<Shared>,
}

impl Drop for Frames {
    /// Pushes to a session whose writer is gone fail with [`OutboxError::Closed`].
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

impl Frames {
    /// The next frame; `None` once closed ([`Frames::close`]) and drained.
    pub(in crate::twilsock) async fn recv(&mut self) -> Option<Frame> {
        self.shared.queue.recv().await
    }

    pub(in crate::twilsock) fn try_recv(&mut self) -> Option<Frame> {
        self.shared.queue.try_recv()
    }

    /// No more frames are accepted (pushes fail with [`OutboxError::Closed`]); those queued can
    /// still be received.
    pub(in crate::twilsock) fn close(&mut self) {
        self.shared.queue.close();
    }

    /// The queue's capacity: also the bound on frames the writer may keep back.
    pub(in crate::twilsock) fn capacity(&self) -> usize {
        self.shared.queue.capacity()
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
