//! The writer: the only code that writes to a session's socket.
//!
//! It takes frames from the outbox in the order they were queued and writes them in batches,
//! one flush per batch, with the driver's commands (ping, finish, close) taking precedence
//! between batches. Two modes, set by the driver through the [`WriterLink`] (the latest setting
//! always wins, and no setting can be lost to a full queue), decide where a frame goes:
//!
//! - **hold**: backend pushes ([`Frame::Push`]) are kept back, in order; the session's own frames
//!   ([`Frame::Own`]: replies, `client_update`, injected frames) are still written. On release
//!   the kept pushes are written first, then whatever follows.
//! - **stall**: nothing is written and no ping is sent; every frame is kept back, in order, and
//!   written when the stall ends (pushes still held then stay held).
//!
//! Independently of the mode, a **reply gate** ([`Frame::Gate`], opened by an upstream handler)
//! keeps back every push queued after it until the matching [`Frame::Ungate`], which the session
//! queues right after the reply to that request; the session's own frames pass. Released pushes
//! are then placed as if just taken (held if holding). Gates may be released in any order; the
//! pushes behind a gate wait for every older gate too, so pushes never overtake each other.
//!
//! The mode is read for each frame as it is taken from the queue, so a frame queued after the
//! driver changed the mode is always placed by the new mode. The writer keeps taking frames in
//! both modes, so what is kept back is bounded here: more than the outbox capacity kept back
//! marks the outbox overflowed, and the session ends as for any slow consumer (the outbox
//! refuses every frame from then on, so nothing grows while the driver reacts). Bytes are
//! bounded by the outbox itself: a frame's bytes count from its push until the writer has fed
//! it to the socket, so kept-back frames count until they are written.
//!
//! Invariant: every stalled frame was queued after every held one (held frames are only added
//! when not stalled, and the stalled ones are placed before any newer frame), so writing the
//! held ones first, then the stalled ones, keeps the order of the queue.
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::Poll;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;

use super::super::mailbox::{Mailbox, TrySendError};
use super::super::outbox::{Frame, Frames};
use crate::frame_tap::Tap;

/// Frames written per flush when the outbox has a backlog.
const WRITE_BATCH: usize = 64;

/// Pending writer commands (ping, finish, close): a handful at most at any time.
const WRITER_COMMANDS: usize = 8;

/// What the driver and the writer of one session share: the driver's commands and the mode.
/// No tokio channel or `watch`: each allocates its state (a channel also a block of 32 slots)
/// for the session's whole life, and an idle session should not pay for them.
#[derive(Debug)]
struct Link {
    commands: Mailbox<WriterCommand>,
    /// [`Mode`] as bits (`HOLD`, `STALL`); set by the driver only.
    mode: AtomicU8,
    /// Set with every change of `mode`, cleared by the writer when it takes the mode in.
    mode_changed: AtomicBool,
}

const HOLD: u8 = 1;
const STALL: u8 = 2;

impl Mode {
    fn from_bits(bits: u8) -> Mode {
        Mode {
            hold: bits & HOLD != 0,
            stall: bits & STALL != 0,
        }
    }

    fn bits(self) -> u8 {
        (if self.hold { HOLD } else { 0 }) | (if self.stall { STALL } else { 0 })
    }
}

/// The driver's end: commands to the writer and the mode. Dropping it ends the writer once it
/// has taken the commands already sent.
#[derive(Debug)]
pub(super) struct WriterLink(Arc<Link>);

/// The writer's end.
#[derive(Debug)]
pub(super) struct WriterOrders(Arc<Link>);

/// A new session's link between driver and writer.
pub(super) fn link() -> (WriterLink, WriterOrders) {
    let link = Arc::new(Link {
        commands: Mailbox::new(WRITER_COMMANDS),
        mode: AtomicU8::new(0),
        mode_changed: AtomicBool::new(false),
    });
    (WriterLink(link.clone()), WriterOrders(link))
}

impl Drop for WriterLink {
    fn drop(&mut self) {
        self.0.commands.close();
    }
}

impl WriterLink {
    /// Queues a command; fails when the (small) queue is full or the writer is gone.
    pub(super) fn tell(&self, command: WriterCommand) -> Result<(), TrySendError<WriterCommand>> {
        self.0.commands.try_send(command)
    }

    /// The mode in force.
    pub(super) fn mode(&self) -> Mode {
        Mode::from_bits(self.0.mode.load(Ordering::Acquire))
    }

    /// Changes the mode; the writer applies it before it places another frame.
    pub(super) fn set_mode(&self, change: impl FnOnce(&mut Mode)) {
        let mut mode = self.mode();
        change(&mut mode);
        if self.0.mode.swap(mode.bits(), Ordering::AcqRel) != mode.bits() {
            self.0.mode_changed.store(true, Ordering::Release);
            self.0.commands.wake();
        }
    }
}

impl WriterOrders {
    fn mode(&self) -> Mode {
        Mode::from_bits(self.0.mode.load(Ordering::Acquire))
    }

    /// The mode in force, marking any change seen.
    fn take_mode(&self) -> Mode {
        self.0.mode_changed.store(false, Ordering::Release);
        self.mode()
    }

    /// Completes when the mode changed since [`WriterOrders::take_mode`].
    async fn mode_changed(&self) {
        std::future::poll_fn(|cx| {
            if self.0.mode_changed.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.0.commands.register(cx);
            // Again after registering: a change in between woke no one.
            if self.0.mode_changed.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Where frames go (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Mode {
    /// Keep backend pushes back; write the session's own frames.
    pub hold: bool,
    /// Write nothing at all.
    pub stall: bool,
}

/// What the driver asks of the writer (besides the outbox frames).
#[derive(Debug)]
pub(super) enum WriterCommand {
    /// A WebSocket ping (ignored while stalled).
    Ping,
    /// Stop taking frames from the outbox: write everything kept back and queued (ending any
    /// hold or stall), then `last`, and nothing more from the outbox (later pushes fail with
    /// `OutboxError::Closed`).
    Finish { last: Option<Bytes> },
    /// The session overflowed: stop taking frames from the outbox, drop everything queued or
    /// kept back (the client resynchronises when it reconnects; writing it would only keep a
    /// slow consumer's memory longer), write `last` (the twilsock `close`).
    Abandon { last: Bytes },
    /// Send a WebSocket close frame and stop.
    Close { code: u16, reason: &'static str },
}

/// Runs until told to close, the driver goes away, or the socket fails.
pub(super) async fn write_loop(
    sink: SplitSink<WebSocket, Message>,
    frames: Frames,
    orders: WriterOrders,
    tap: Tap,
) -> Result<(), axum::Error> {
    let capacity = frames.capacity();
    Writer {
        sink,
        frames,
        orders,
        held: VecDeque::new(),
        stalled: VecDeque::new(),
        gated: VecDeque::new(),
        released: HashSet::new(),
        capacity,
        tap,
    }
    .run()
    .await
}

struct Writer {
    sink: SplitSink<WebSocket, Message>,
    frames: Frames,
    /// The driver's commands and the mode.
    orders: WriterOrders,
    /// Backend pushes kept back while holding, oldest first.
    held: VecDeque<Bytes>,
    /// Frames kept back while stalled, oldest first; all newer than every held one.
    stalled: VecDeque<Frame>,
    /// Open gates ([`Frame::Gate`]) and the pushes behind them, oldest first; empty or starting
    /// with a gate.
    gated: VecDeque<Frame>,
    /// Gates released while an older gate is still open.
    released: HashSet<u64>,
    capacity: usize,
    /// The inspector's frame view (free unless this session is tapped).
    tap: Tap,
}

impl Writer {
    async fn run(mut self) -> Result<(), axum::Error> {
        let mut taking_frames = true;
        loop {
            // A release or unstall (or nothing) since the last turn: write what it frees.
            let mode = self.orders.take_mode();
            if self.catch_up(mode).await? {
                self.sink.flush().await?;
            }
            tokio::select! {
                biased;
                cmd = self.orders.0.commands.recv() => match cmd {
                    None => return Ok(()),
                    Some(WriterCommand::Ping) => {
                        if !self.orders.mode().stall {
                            self.sink.send(Message::Ping(Bytes::new())).await?;
                        }
                    }
                    Some(WriterCommand::Finish { last }) => {
                        if taking_frames {
                            taking_frames = false;
                            // Closed first, the drain is finite: nothing new can arrive.
                            self.frames.close();
                            self.catch_up(Mode::default()).await?;
                            let gated = std::mem::take(&mut self.gated);
                            for frame in gated {
                                if let Some(bytes) = frame.into_bytes() {
                                    self.write(bytes).await?;
                                }
                            }
                            while let Some(frame) = self.frames.try_recv() {
                                if let Some(bytes) = frame.into_bytes() {
                                    self.write(bytes).await?;
                                }
                            }
                        }
                        if let Some(last) = last {
                            self.tap.outbound(&last);
                            self.sink.feed(Message::Binary(last)).await?;
                        }
                        self.sink.flush().await?;
                    }
                    Some(WriterCommand::Abandon { last }) => {
                        taking_frames = false;
                        self.frames.close();
                        self.held.clear();
                        self.stalled.clear();
                        self.gated.clear();
                        while self.frames.try_recv().is_some() {}
                        self.kept_back();
                        self.tap.outbound(&last);
                        self.sink.feed(Message::Binary(last)).await?;
                        self.sink.flush().await?;
                    }
                    Some(WriterCommand::Close { code, reason }) => {
                        let frame = CloseFrame { code, reason: reason.into() };
                        // The peer may have closed already; nothing to do about errors here.
                        let _ = self.sink.send(Message::Close(Some(frame))).await;
                        let _ = self.sink.close().await;
                        return Ok(());
                    }
                },
                // The driver changed the mode: go round to apply it.
                () = self.orders.mode_changed() => {}
                frame = self.frames.recv(), if taking_frames => match frame {
                    Some(frame) => {
                        let mut fed = self.place(frame).await?;
                        for _ in 1..WRITE_BATCH {
                            match self.frames.try_recv() {
                                Some(frame) => fed |= self.place(frame).await?,
                                None => break,
                            }
                        }
                        if fed {
                            self.sink.flush().await?;
                        }
                    }
                    None => taking_frames = false,
                },
            }
        }
    }

    /// Writes (without flushing) or keeps back one frame just taken from the queue, by the mode
    /// in force now. Returns whether anything was written.
    async fn place(&mut self, frame: Frame) -> Result<bool, axum::Error> {
        let mode = self.orders.mode();
        if mode.stall {
            self.stalled.push_back(frame);
            self.kept_back();
            return Ok(false);
        }
        // Older frames the current mode frees go first.
        let fed = self.catch_up(mode).await?;
        Ok(self.route(frame, mode).await? || fed)
    }

    /// Outside a stall: writes the held pushes unless holding, then places the stalled frames.
    async fn catch_up(&mut self, mode: Mode) -> Result<bool, axum::Error> {
        if mode.stall || (self.stalled.is_empty() && (mode.hold || self.held.is_empty())) {
            return Ok(false);
        }
        let mut fed = false;
        if !mode.hold {
            while let Some(frame) = self.held.pop_front() {
                self.write(frame).await?;
                fed = true;
            }
        }
        while let Some(frame) = self.stalled.pop_front() {
            fed |= self.route(frame, mode).await?;
        }
        self.kept_back();
        Ok(fed)
    }

    /// Outside a stall: keeps a push back behind an open gate or while holding, writes anything
    /// else.
    async fn route(&mut self, frame: Frame, mode: Mode) -> Result<bool, axum::Error> {
        match frame {
            Frame::Gate(_) => {
                self.gated.push_back(frame);
                self.kept_back();
                Ok(false)
            }
            Frame::Push(_) if !self.gated.is_empty() => {
                self.gated.push_back(frame);
                self.kept_back();
                Ok(false)
            }
            Frame::Ungate(id) => {
                self.released.insert(id);
                self.open_gates(mode).await
            }
            Frame::Push(bytes) => self.push(bytes, mode).await,
            Frame::Own(bytes) => {
                self.write(bytes).await?;
                Ok(true)
            }
        }
    }

    /// Removes the released gates at the front, placing the pushes each one kept back.
    async fn open_gates(&mut self, mode: Mode) -> Result<bool, axum::Error> {
        let mut fed = false;
        while let Some(Frame::Gate(id)) = self.gated.front() {
            if !self.released.remove(id) {
                break;
            }
            self.gated.pop_front();
            while let Some(Frame::Push(_)) = self.gated.front() {
                if let Some(Frame::Push(bytes)) = self.gated.pop_front() {
                    fed |= self.push(bytes, mode).await?;
                }
            }
        }
        // Gates open while a subscription is set up, then rarely again: an idle session keeps
        // no storage for them.
        if self.gated.is_empty() {
            self.gated = VecDeque::new();
        }
        if self.released.is_empty() {
            self.released = HashSet::new();
        }
        self.kept_back();
        Ok(fed)
    }

    /// Holds a push while holding, writes it otherwise.
    async fn push(&mut self, bytes: Bytes, mode: Mode) -> Result<bool, axum::Error> {
        if mode.hold {
            self.held.push_back(bytes);
            self.kept_back();
            Ok(false)
        } else {
            self.write(bytes).await?;
            Ok(true)
        }
    }

    /// Feeds one frame taken from the outbox to the socket (without flushing), and takes its
    /// bytes off the outbox's budget once the socket has it.
    async fn write(&mut self, bytes: Bytes) -> Result<(), axum::Error> {
        let n = bytes.len();
        self.tap.outbound(&bytes);
        self.sink.feed(Message::Binary(bytes)).await?;
        self.frames.wrote(n);
        Ok(())
    }

    /// Publishes the backlog for `Outbox::depth`, and applies the bound.
    fn kept_back(&self) {
        let n = self.held.len() + self.stalled.len() + self.gated.len();
        self.frames.set_backlog(n);
        if n > self.capacity {
            self.frames.mark_overflowed();
        }
    }
}
