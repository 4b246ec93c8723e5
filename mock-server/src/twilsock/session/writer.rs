//! The writer: the only code that writes to a session's socket.
//!
//! It takes frames from the outbox in the order they were queued and writes them in batches
//! (many frames per vectored write, straight from their `Bytes`), with the driver's commands
//! (ping, pong, finish, close) taking precedence between batches. Two modes, set by the driver
//! through the [`WriterLink`] (the latest setting always wins, and no setting can be lost to a
//! full queue), decide where a frame goes:
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
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::Poll;

use bytes::Bytes;

use super::super::mailbox::{Mailbox, TrySendError};
use super::super::outbox::{Frame, Frames};
use super::socket;
use crate::frame_tap::Tap;

/// Frames taken from the outbox per turn when it has a backlog (written in vectored writes of
/// up to `socket::WRITE_FRAMES`).
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

impl Link {
    fn mode(&self) -> Mode {
        Mode::from_bits(self.mode.load(Ordering::Acquire))
    }
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
        self.0.mode()
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
        self.0.mode()
    }

    /// The driver's next command; `None` once the driver is gone and its commands are taken.
    async fn recv(&self) -> Option<WriterCommand> {
        self.0.commands.recv().await
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
    /// The answer to the client's WebSocket ping (ignored while stalled).
    Pong(Bytes),
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
pub(super) async fn write_loop(sink: socket::Writer<'_>, frames: Frames, orders: WriterOrders, tap: Tap) -> io::Result<()> {
    let capacity = frames.capacity();
    // Borrowed by `run`, not moved into it: a future that takes `self` by value keeps it twice
    // (as its argument and as its local), ~200 bytes per session.
    let mut writer = Writer {
        sink,
        frames,
        orders,
        ready: VecDeque::new(),
        held: VecDeque::new(),
        stalled: VecDeque::new(),
        gated: VecDeque::new(),
        released: HashSet::new(),
        capacity,
        tap,
    };
    writer.run().await
}

struct Writer<'a> {
    sink: socket::Writer<'a>,
    frames: Frames,
    /// The driver's commands and the mode.
    orders: WriterOrders,
    /// Frames placed to be written now, oldest first (filled and emptied within one turn).
    ready: VecDeque<Bytes>,
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

impl Writer<'_> {
    async fn run(&mut self) -> io::Result<()> {
        let mut taking_frames = true;
        loop {
            // A release or unstall (or nothing) since the last turn: write what it frees.
            let mode = self.orders.take_mode();
            if self.catch_up(mode) {
                self.write_ready().await?;
            }
            tokio::select! {
                biased;
                cmd = self.orders.recv() => match cmd {
                    None => return Ok(()),
                    Some(WriterCommand::Ping) => {
                        if !self.orders.mode().stall {
                            self.sink.ping().await?;
                        }
                    }
                    Some(WriterCommand::Pong(payload)) => {
                        if !self.orders.mode().stall {
                            self.sink.pong(payload).await?;
                        }
                    }
                    Some(WriterCommand::Finish { last }) => {
                        if taking_frames {
                            taking_frames = false;
                            // Closed first, the drain is finite: nothing new can arrive.
                            self.frames.close();
                            self.catch_up(Mode::default());
                            let gated = std::mem::take(&mut self.gated);
                            self.ready.extend(gated.into_iter().filter_map(Frame::into_bytes));
                            self.ready.extend(std::iter::from_fn(|| self.frames.try_recv()).filter_map(Frame::into_bytes));
                            self.write_ready().await?;
                        }
                        if let Some(last) = last {
                            self.write_last(last).await?;
                        }
                    }
                    Some(WriterCommand::Abandon { last }) => {
                        taking_frames = false;
                        self.frames.close();
                        self.held.clear();
                        self.stalled.clear();
                        self.gated.clear();
                        self.ready.clear();
                        while self.frames.try_recv().is_some() {}
                        self.kept_back();
                        self.write_last(last).await?;
                    }
                    Some(WriterCommand::Close { code, reason }) => {
                        // The peer may have closed already; nothing to do about errors here.
                        let _ = self.sink.close(code, reason).await;
                        return Ok(());
                    }
                },
                // The driver changed the mode: go round to apply it.
                () = self.orders.mode_changed() => {}
                frame = self.frames.recv(), if taking_frames => match frame {
                    Some(frame) => {
                        let mut fed = self.place(frame);
                        for _ in 1..WRITE_BATCH {
                            match self.frames.try_recv() {
                                Some(frame) => fed |= self.place(frame),
                                None => break,
                            }
                        }
                        if fed {
                            self.write_ready().await?;
                        }
                    }
                    None => taking_frames = false,
                },
            }
        }
    }

    /// Makes ready (to write) or keeps back one frame just taken from the queue, by the mode in
    /// force now. Returns whether anything was made ready.
    fn place(&mut self, frame: Frame) -> bool {
        let mode = self.orders.mode();
        if mode.stall {
            self.stalled.push_back(frame);
            self.kept_back();
            return false;
        }
        // Older frames the current mode frees go first.
        let fed = self.catch_up(mode);
        self.route(frame, mode) || fed
    }

    /// Outside a stall: makes the held pushes ready unless holding, then places the stalled
    /// frames.
    fn catch_up(&mut self, mode: Mode) -> bool {
        if mode.stall || (self.stalled.is_empty() && (mode.hold || self.held.is_empty())) {
            return false;
        }
        let mut fed = false;
        if !mode.hold && !self.held.is_empty() {
            self.ready.append(&mut self.held);
            self.held = VecDeque::new();
            fed = true;
        }
        while let Some(frame) = self.stalled.pop_front() {
            fed |= self.route(frame, mode);
        }
        self.stalled = VecDeque::new();
        self.kept_back();
        fed
    }

    /// Outside a stall: keeps a push back behind an open gate or while holding, makes anything
    /// else ready.
    fn route(&mut self, frame: Frame, mode: Mode) -> bool {
        match frame {
            Frame::Gate(_) => {
                self.gated.push_back(frame);
                self.kept_back();
                false
            }
            Frame::Push(_) if !self.gated.is_empty() => {
                self.gated.push_back(frame);
                self.kept_back();
                false
            }
            Frame::Ungate(id) => {
                self.released.insert(id);
                self.open_gates(mode)
            }
            Frame::Push(bytes) => self.push(bytes, mode),
            Frame::Own(bytes) => {
                self.ready.push_back(bytes);
                true
            }
        }
    }

    /// Removes the released gates at the front, placing the pushes each one kept back.
    fn open_gates(&mut self, mode: Mode) -> bool {
        let mut fed = false;
        while let Some(Frame::Gate(id)) = self.gated.front() {
            if !self.released.remove(id) {
                break;
            }
            self.gated.pop_front();
            while let Some(Frame::Push(_)) = self.gated.front() {
                if let Some(Frame::Push(bytes)) = self.gated.pop_front() {
                    fed |= self.push(bytes, mode);
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
        fed
    }

    /// Holds a push while holding, makes it ready otherwise.
    fn push(&mut self, bytes: Bytes, mode: Mode) -> bool {
        if mode.hold {
            self.held.push_back(bytes);
            self.kept_back();
            false
        } else {
            self.ready.push_back(bytes);
            true
        }
    }

    /// Writes the ready frames to the socket, in order, taking each one's bytes off the
    /// outbox's budget once the socket has it. The one `.await` of placement: the deciding
    /// above is plain code, so the writer's future stays small.
    async fn write_ready(&mut self) -> io::Result<()> {
        let (frames, tap) = (&self.frames, &self.tap);
        self.sink
            .write_binary(&mut self.ready, |bytes| {
                tap.outbound(bytes);
                frames.wrote(bytes.len());
            })
            .await?;
        // Nothing kept between turns: an idle session holds nothing here (8 slots kept were 128
        // bytes per session); each turn that writes allocates its batch's worth once.
        self.ready = VecDeque::new();
        Ok(())
    }

    /// Writes a session's last frame (a twilsock `close`), which the outbox never counted.
    async fn write_last(&mut self, last: Bytes) -> io::Result<()> {
        let tap = &self.tap;
        let mut last = VecDeque::from([last]);
        self.sink.write_binary(&mut last, |bytes| tap.outbound(bytes)).await
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
