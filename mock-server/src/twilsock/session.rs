//! One twilsock connection, from WebSocket upgrade to the last frame.
//!
//! A session is two halves joined by `select!` in one task: the **driver** reads and answers
//! packets, runs the token timers and the liveness check, and obeys [`SessionCommand`]s; the
//! **writer** is the only code that writes to the socket. Whichever half ends first ends the
//! session.
//!
//! Files: this one holds the driver's loop and how a session closes; `endpoint` the route and
//! the task of one socket; `inbound` what the client sends; `handshake` `init`/`update` and the
//! token timers; `upstream` the requests handled by the backend; `commands` the control plane's
//! [`SessionCommand`]s; `config` the settings; `writer` the socket writer; `packets` the frames
//! the session builds; `request` the parsing of upstream requests; `orders` the command queue; `socket` the
//! WebSocket both halves borrow;
//! `wake_filter` timers polled only when they fire.
//!
//! **Cost per delivery.** The driver does nothing per push (the writer takes it), and per ack
//! only counts it: the SDK's exact ack bytes are recognised without parsing
//! (`codec::is_reply`), acks are neither observed nor journaled, the token timers are one sleep
//! kept across the driver's turns and, like the ping interval, polled only when their own timer
//! woke the driver, and the acks already read are handled in the turn that woke it, so a turn
//! makes no timer and no allocation of its own.
//!
//! **Ordering.** Every twilsock frame the server sends — replies, `client_update`, backend
//! pushes (Sync notifications) — goes through the session's one bounded [`Outbox`] and is written
//! in the order it was queued. The backend queues what an upstream request causes *while* it
//! handles the request, and the session queues the reply after the handler returns, so a client
//! always sees the notifications a request caused before its reply. Upstream replies are sent in
//! order of completion, not of arrival. A final `close` packet is written after everything
//! already queued, and nothing is written after it. Exceptions, on the control plane's orders
//! only: while notifications are held, replies overtake the held pushes (which keep their own
//! order), and a latency delays upstream replies (which keep their completion order).
//!
//! **Conditions** ([`SessionCommand`]s a test puts a session into):
//! - *Latency* (`SetLatency`): the reply to an upstream `message` is queued once the latency in
//!   force has passed since its handler completed. Only upstream replies: the answers to `init`,
//!   `update` and the other packets come from the twilsock edge, not from a backend, and stay
//!   immediate (a slow or refused connect is `refuse_connections` / init denials; a silent
//!   network is a stall). Changing the latency applies to replies still waiting, so
//!   `Duration::ZERO` releases them at once. A waiting reply counts as in flight
//!   (`SessionConfig::max_inflight_upstream`).
//! - *Held notifications* (`HoldNotifications` / `ReleaseNotifications`): backend pushes are
//!   kept back in order and written on release; the session's own frames (replies,
//!   `client_update`, `SendRaw` frames) keep flowing.
//! - *Stall* (`Stall` / `Unstall`): the session neither reads nor writes, without closing the
//!   socket: inbound frames wait in the kernel buffers, outbound ones are kept back in order,
//!   no ping is sent, and the liveness check is off (the silence is on purpose; it restarts
//!   with a full ping interval on `Unstall`). Timers, commands and upstream completions still
//!   run. A close of any kind (`Close`, token expiry, shutdown) ends the stall, so that the
//!   close packet and everything queued before it are written; `Drop` drops the socket as it
//!   is.
//!
//! Frames kept back by a hold or a stall count against `SessionConfig::outbox_capacity` and
//! `SessionConfig::outbox_bytes`: more than that ends the session as a slow consumer.
//!
//! **Observation.** The session reports what it does to [`Backend::observe`] — socket accepted,
//! `init`/`update` outcomes, each packet in but the client's acks (`reply`, one per delivered
//! frame: counted, and the count logged when the session closes), each upstream reply, close
//! packets, commands applied, and why it ended — but never backend pushes.
//!
//! **Bounds.** The outbox, in frames (`SessionConfig::outbox_capacity`) and in bytes not yet
//! written (`SessionConfig::outbox_bytes`; an upstream reply counts from the moment its handler's
//! task has encoded it, so replies waiting for the driver or out a latency count too); past
//! either the session ends as a slow consumer: logged at `warn` with the bound, what waits in
//! the outbox is dropped, and the client gets a twilsock `close` 308 (the SDK reconnects and
//! resynchronises) and a WebSocket close 1008 — never a silent drop of one frame. Upstream
//! requests in flight: `SessionConfig::max_inflight_upstream`, and in bytes: while the bytes not
//! yet written fill `outbox_bytes`, the driver reads no new request until the writer has
//! handed enough to the socket. Inbound messages: [`SessionConfig::max_message_bytes`];
//! a larger one closes the socket with 1009 ("message too big"). Control channels (writer
//! commands, [`SessionCommand`]s) are small and bounded.
//!
//! A reply gate ([`ReplyGate`]) releases itself when dropped, so an upstream handler that panics
//! or is aborted with a gate open never keeps the session's later pushes behind it.
//!
//! **Time.** Token timers run on the server [`Clock`], so freezing and advancing it fires them;
//! liveness pings and the init and close timeouts run on real (tokio) time, because they are
//! about the network. Due token timers are handled before any inbound packet, so a packet sent
//! after the clock was advanced always sees the timer's effect first.
//!
//! **Boundary:** the session knows twilsock and nothing of Conversations or Sync; see
//! [`Backend`].
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt};
use tokio::sync::watch;
use tokio::task::{self, JoinError};
use tokio::time::{self, Instant};

use super::backend::{Backend, EndReason, SessionInfo, SessionObservation};
use super::mailbox::TrySendError;
use super::outbox::{Outbox, OverflowCause};
use crate::clock::Clock;

mod commands;
mod config;
mod endpoint;
mod handshake;
mod inbound;
mod orders;
mod packets;
pub(crate) mod request;
mod socket;
mod upstream;
mod wake_filter;
mod writer;

pub use commands::SessionCommand;
pub use config::{DEFAULT_MAX_INFLIGHT_UPSTREAM, DEFAULT_OUTBOX_BYTES, DEFAULT_OUTBOX_CAPACITY, MAX_LATENCY, SessionConfig};
pub use endpoint::{Endpoint, route};
use handshake::{TokenAlarm, TokenTimer, TokenTimers};
pub use orders::{Ack, CommandSender};
use orders::{Order, Orders};
pub use packets::{
    CloseCode, TOKEN_EXPIRED_DESCRIPTION, TOKEN_EXPIRED_ERROR_CODE, close_frame, reason_phrase, storage_id, token_about_to_expire,
    token_expired_close,
};
pub use request::RequestError;
use socket::{Message, ReadError, Reader};
use upstream::{Built, Upstream};
use writer::{Mode, WriterCommand, WriterLink};

/// The path the SDK connects to (`twilsock.uri` = `ws://HOST:PORT/v3/wsconnect`).
pub const PATH: &str = "/v3/wsconnect";

/// What the session sends a client whose outbound queue overflowed (status and WebSocket close
/// code): the twilsock `close` 308 makes the SDK reconnect (and resynchronise), as for any
/// server-initiated close that is not terminal; the WebSocket close 1008 (policy violation)
/// names the reason to anything watching the socket.
const OVERFLOW_CLOSE_DESCRIPTION: &str = "Outbound queue overflow: the client did not read its messages in time (slow consumer); reconnect";
const OVERFLOW_WS_CLOSE: u16 = 1008;
/// Messages already read from the socket that one turn of the driver handles after the one that
/// woke it (see `Session::run`).
const INBOUND_BURST: usize = 32;

/// How the driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The writer was told to flush and close the socket; give it a moment.
    Graceful,
    /// Drop the socket now.
    Abrupt,
}

/// What to do after handling one event.
enum Flow {
    Continue,
    Close(Closing, EndReason),
}

enum Closing {
    /// Drop the socket without a close handshake.
    Abrupt,
    /// Flush the outbox, then send a WebSocket close frame.
    Socket { code: u16, reason: &'static str },
    /// Flush the outbox, send this twilsock `close` packet (status `code`), let the client close
    /// (or wait `close_grace`), then send a WebSocket close frame.
    Packet { frame: Bytes, code: u16 },
    /// The outbound queue overflowed: drop what waits in it (the client resynchronises when it
    /// reconnects), send a twilsock `close` 308, let the client close (or wait `close_grace`),
    /// then a WebSocket close 1008. A client that reads nothing at all is dropped after that.
    Overflow,
}

impl Closing {
    fn packet(frame: Bytes, code: u16) -> Closing {
        Closing::Packet { frame, code }
    }
}

/// One thing the driver reacts to; produced by the `select!`, handled after it (so that the
/// handlers may borrow the session mutably).
enum Event {
    Shutdown,
    Overflow,
    /// A token timer is due (which one is read from the clock: see `Event::TokenExpired`).
    TokenAlarm,
    TokenExpired,
    TokenWarning,
    Command(Order),
    Upstream(Result<(task::Id, Built), JoinError>),
    RepliesDue,
    /// Go round again: the bytes waiting fell below the budget (reading may resume), or a
    /// token alarm rang for a clock set back since.
    Room,
    Inbound(Option<Result<Message, ReadError>>),
    InitTimeout,
    PingDue,
    PongTimeout,
}

/// The driver's state.
struct Session<B: Backend> {
    id: u64,
    backend: Arc<B>,
    clock: Clock,
    config: Arc<SessionConfig>,
    /// The session's own handle on its outbox, for its own frames; the backend gets clones.
    outbox: Outbox,
    /// Commands to the writer, and its mode (hold, stall): the driver is the only one to set it.
    writer: WriterLink,
    /// Added to every upstream reply (`SessionCommand::SetLatency`).
    latency: Duration,
    /// Kept to hand out in [`SessionInfo`]; also keeps the command channel open.
    commands: CommandSender,
    /// `Some` once `init` succeeded.
    established: Option<SessionInfo<B::Caller>>,
    timers: TokenTimers,
    upstream: Upstream,
    /// `Ended` was observed (and `session_closed` called if established).
    ended: bool,
    /// The client's acks (`reply` packets) read: counted, not observed one by one (one per
    /// delivered push, they were the bulk of the journal and a lock taken per delivery).
    acks: u64,
}

impl<B: Backend> Session<B> {
    async fn run(&mut self, stream: &mut Reader<'_>, commands: &Orders, shutdown: &mut watch::Receiver<bool>) -> End {
        let init_at = after(self.config.init_timeout);
        let pinging = !self.config.ping_interval.is_zero();
        let period = self.config.ping_interval.max(Duration::from_millis(1));
        let mut ping_at = after(period);
        // The pong to the last ping must have come by then; `None`: no ping awaits its pong.
        let mut pong_due: Option<Instant> = None;
        // The init timeout, the ping interval, the pong deadline and the latency of upstream
        // replies share one `Sleep`, set to whichever comes first (an idle session keeps one
        // timer, not four) and polled only when it woke the task (see `wake_filter`).
        let timer = time::sleep_until(init_at);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let timer_filter = wake_filter::WakeFilter::new();
        let mut alarm = TokenAlarm::default();

        loop {
            let stalled = self.stalled();
            let room = self.has_room();
            let reading = self.reading();
            let replies_due = self.upstream.next_due(self.latency);
            let deadlines = Deadlines {
                replies: replies_due,
                init: self.established.is_none().then_some(init_at),
                ping: (pinging && !stalled).then_some(ping_at),
                // While reading is paused the pong cannot be seen, so it cannot be late either.
                pong: pong_due.filter(|_| reading),
            };
            let next = deadlines.first();
            if next != armed {
                if let Some(at) = next {
                    timer.as_mut().reset(at);
                }
                armed = next;
                timer_filter.rearm();
            }
            alarm.arm(&self.clock, self.timers);
            let event = tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => Event::Shutdown,
                () = self.outbox.overflow_signal() => Event::Overflow,
                () = alarm.rings() => Event::TokenAlarm,
                Some(order) = commands.recv() => Event::Command(order),
                Some(done) = self.upstream.join_next() => Event::Upstream(done),
                () = std::future::poll_fn(|cx| timer_filter.poll(cx, |cx| timer.as_mut().poll(cx))), if armed.is_some() => {
                    match deadlines.due(Instant::now()) {
                        Some(Due::Replies) => Event::RepliesDue,
                        // A message already read proves the client alive or brings its `init`:
                        // it goes first, as when these timers came after reading.
                        Some(due @ (Due::Init | Due::Pong)) => match reading.then(|| stream.next().now_or_never()).flatten() {
                            Some(read) => Event::Inbound(read),
                            None if due == Due::Init => Event::InitTimeout,
                            None => Event::PongTimeout,
                        },
                        Some(Due::Ping) => Event::PingDue,
                        None => {
                            // Woken a moment early: set the timer again next turn.
                            armed = None;
                            Event::Room
                        }
                    }
                }
                msg = stream.next(), if reading => Event::Inbound(msg),
                () = self.outbox.below_budget(), if !stalled && !room => Event::Room,
            };

            let event = match event {
                Event::TokenAlarm => match self.timers.due(self.clock.now()) {
                    Some(TokenTimer::Expiry) => Event::TokenExpired,
                    Some(TokenTimer::Warning) => Event::TokenWarning,
                    // The clock was set back meanwhile: the alarm is made again next turn.
                    None => Event::Room,
                },
                other => other,
            };
            let flow = match event {
                Event::Shutdown => Flow::Close(
                    Closing::Socket {
                        code: 1001,
                        reason: "server shutting down",
                    },
                    EndReason::Shutdown,
                ),
                Event::Overflow => {
                    let bound = match self.outbox.overflow_cause() {
                        Some(OverflowCause::Bytes) => "bytes",
                        _ => "frames",
                    };
                    tracing::warn!(
                        session = self.id,
                        bound,
                        capacity = self.config.outbox_capacity,
                        max_bytes = self.config.outbox_bytes,
                        queued_bytes = self.outbox.queued_bytes(),
                        waiting_replies_bytes = self.upstream.delayed_bytes,
                        "closing session: outbound queue overflow (slow consumer): sending close 308, then WebSocket close {OVERFLOW_WS_CLOSE}"
                    );
                    Flow::Close(Closing::Overflow, EndReason::Overflow)
                }
                Event::TokenExpired => {
                    tracing::info!(session = self.id, "token expired: sending close 410");
                    Flow::Close(Closing::packet(token_expired_close(), 410), EndReason::TokenExpired)
                }
                Event::TokenWarning => {
                    self.timers.warn_at = None;
                    tracing::debug!("token about to expire: sending client_update");
                    self.warn_token_expiry();
                    Flow::Continue
                }
                Event::Command(order) => self.on_command(order),
                Event::Upstream(done) => {
                    self.upstream.complete(done, &self.outbox, self.id);
                    self.send_due_replies();
                    Flow::Continue
                }
                Event::RepliesDue => {
                    self.send_due_replies();
                    Flow::Continue
                }
                Event::Room | Event::TokenAlarm => Flow::Continue,
                Event::Inbound(read) => {
                    let mut flow = self.on_read(read, &mut pong_due);
                    // Frames the socket has already delivered (the SDK's acks come in bursts, one
                    // per push written) are handled in this turn, without polling every branch
                    // above again for each; at most INBOUND_BURST, so commands, overflow and
                    // shutdown wait for no more than that.
                    for _ in 0..INBOUND_BURST {
                        if !matches!(flow, Flow::Continue) || !self.reading() {
                            break;
                        }
                        // A pending read leaves a no-op waker behind; the next turn's select
                        // polls the stream again, with the task's own, before the task sleeps.
                        let Some(read) = stream.next().now_or_never() else { break };
                        flow = self.on_read(read, &mut pong_due);
                    }
                    flow
                }
                Event::InitTimeout => {
                    tracing::debug!("no successful init in time: closing");
                    Flow::Close(
                        Closing::Socket {
                            code: 1008,
                            reason: "no successful init in time",
                        },
                        EndReason::InitTimeout,
                    )
                }
                Event::PingDue => {
                    // The next ping a full interval after this one, however late this one was.
                    ping_at = after(period);
                    if pong_due.is_none() && self.tell_writer(WriterCommand::Ping).is_ok() {
                        pong_due = Some(after(self.config.pong_timeout));
                    }
                    Flow::Continue
                }
                Event::PongTimeout => {
                    tracing::info!(session = self.id, "no pong in time: dropping the socket");
                    Flow::Close(Closing::Abrupt, EndReason::LivenessTimeout)
                }
            };
            if let Flow::Close(closing, reason) = flow {
                return self.close(closing, reason, stream, shutdown).await;
            }
            if stalled != self.stalled() {
                // Entering a stall forgets the ping in flight (its pong will not be read);
                // leaving one starts the liveness check afresh, a full interval from now.
                pong_due = None;
                if stalled {
                    ping_at = after(period);
                }
            }
        }
    }

    async fn close(&mut self, closing: Closing, reason: EndReason, stream: &mut Reader<'_>, shutdown: &mut watch::Receiver<bool>) -> End {
        let waiting = self.upstream.delayed.len();
        if waiting > 0 {
            tracing::debug!(
                replies = waiting,
                "session ending: replies still waiting out the latency are not sent"
            );
        }
        match closing {
            Closing::Abrupt => {
                self.finish(reason);
                End::Abrupt
            }
            Closing::Overflow => {
                let code = CloseCode::Offload.code();
                let (status, _, _) = CloseCode::Offload.status();
                let frame = close_frame(code, status, OVERFLOW_CLOSE_DESCRIPTION, None, None);
                let queued = self.tell_writer(WriterCommand::Abandon { last: frame }).is_ok();
                if queued {
                    self.observe(SessionObservation::CloseSent { code });
                }
                self.finish(reason);
                if !queued {
                    return End::Abrupt;
                }
                self.linger_then_close(stream, shutdown, OVERFLOW_WS_CLOSE, "outbound queue overflow")
                    .await
            }
            Closing::Socket { code, reason: text } => {
                // The session is over for the backend now, even if the socket lingers a moment.
                self.finish(reason);
                if self.tell_writer(WriterCommand::Finish { last: None }).is_err()
                    || self.tell_writer(WriterCommand::Close { code, reason: text }).is_err()
                {
                    return End::Abrupt;
                }
                End::Graceful
            }
            Closing::Packet { frame, code } => {
                let queued = self.tell_writer(WriterCommand::Finish { last: Some(frame) }).is_ok();
                if queued {
                    self.observe(SessionObservation::CloseSent { code });
                }
                self.finish(reason);
                if !queued {
                    return End::Abrupt;
                }
                self.linger_then_close(stream, shutdown, 1000, "").await
            }
        }
    }

    /// After a twilsock `close`: the SDK acks it and closes the socket itself; wait for that (at
    /// most `close_grace`), reading and ignoring whatever else it sends meanwhile, then close the
    /// socket with `code`. Reading on also keeps the kernel from resetting the connection over
    /// unread requests, which would discard the close the client has not read yet.
    async fn linger_then_close(
        &self,
        stream: &mut Reader<'_>,
        shutdown: &mut watch::Receiver<bool>,
        code: u16,
        reason: &'static str,
    ) -> End {
        let linger = async {
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                    () = shutdown_requested(shutdown) => return,
                }
            }
        };
        let _ = time::timeout(self.config.close_grace, linger).await;
        if self.tell_writer(WriterCommand::Close { code, reason }).is_err() {
            return End::Abrupt;
        }
        End::Graceful
    }

    /// Observes the end, once, and tells the backend the session ended if it had been opened.
    fn finish(&mut self, reason: EndReason) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.observe(SessionObservation::Ended { reason });
        if self.established.is_some() {
            tracing::info!(session = self.id, reason = reason.as_str(), acks = self.acks, "session closed");
            self.backend.session_closed(self.id);
        }
    }

    fn tell_writer(&self, command: WriterCommand) -> Result<(), TrySendError<WriterCommand>> {
        self.writer.tell(command)
    }

    fn observe(&self, what: SessionObservation<'_>) {
        self.backend.observe(self.id, self.established.as_ref(), what);
    }

    fn stalled(&self) -> bool {
        self.writer.mode().stall
    }

    /// Whether the replies and pushes not yet written leave room in the outbox's byte budget.
    fn has_room(&self) -> bool {
        self.outbox.queued_bytes() < self.config.outbox_bytes
    }

    /// Whether the client's next message may be read. Upstream requests in flight are bounded in
    /// count here and in bytes by the outbox: while the replies and pushes not yet written fill
    /// the byte budget, no new request is read (each reply is reserved in the outbox as soon as
    /// it is built).
    fn reading(&self) -> bool {
        !self.stalled() && self.has_room() && self.upstream.in_flight() < self.config.max_inflight_upstream
    }

    fn set_mode(&self, change: impl FnOnce(&mut Mode)) {
        self.writer.set_mode(change);
    }

    /// Queues one of the session's own frames, in order with everything else. A full queue is
    /// not handled here: the overflow signal ends the session on the next turn of the loop.
    fn send(&self, frame: Bytes) {
        if let Err(e) = self.outbox.push_own(frame) {
            tracing::debug!(error = ?e, "frame not queued");
        }
    }
}

/// `d` from now; a duration too long for an `Instant` (a setting of years) is as good as never.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

/// The driver's deadlines in force this turn (`None`: not counting now).
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// The oldest upstream reply waiting out the latency.
    replies: Option<Instant>,
    /// No successful `init` by then closes the socket.
    init: Option<Instant>,
    /// The next WebSocket ping.
    ping: Option<Instant>,
    /// The pong to the last ping must have come by then.
    pong: Option<Instant>,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Replies,
    Init,
    Ping,
    Pong,
}

impl Deadlines {
    fn first(&self) -> Option<Instant> {
        [self.replies, self.init, self.ping, self.pong].into_iter().flatten().min()
    }

    /// The deadline passed at `now`; when several have, in the order the driver serves them.
    fn due(&self, now: Instant) -> Option<Due> {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        [
            (self.replies, Due::Replies),
            (self.init, Due::Init),
            (self.ping, Due::Ping),
            (self.pong, Due::Pong),
        ]
        .into_iter()
        .find_map(|(at, due)| passed(at).then_some(due))
    }
}

/// Completes when shutdown was requested or the shutdown sender is gone.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_timer_serves_the_first_deadline_and_names_the_one_passed() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let none = Deadlines {
            replies: None,
            init: None,
            ping: None,
            pong: None,
        };
        assert_eq!(none.first(), None);
        assert_eq!(none.due(t0 + Duration::from_secs(3600)), None);
        let d = Deadlines {
            replies: at(50),
            init: at(30),
            ping: at(10),
            pong: at(20),
        };
        assert_eq!(d.first(), at(10));
        assert_eq!(d.due(t0), None, "nothing has passed yet");
        assert_eq!(d.due(t0 + Duration::from_millis(10)), Some(Due::Ping));
        assert_eq!(d.due(t0 + Duration::from_millis(25)), Some(Due::Ping), "ping before pong");
        assert_eq!(d.due(t0 + Duration::from_millis(30)), Some(Due::Init), "init before ping");
        assert_eq!(d.due(t0 + Duration::from_millis(60)), Some(Due::Replies), "replies first");
        let pong_only = Deadlines { pong: at(20), ..none };
        assert_eq!(pong_only.due(t0 + Duration::from_millis(20)), Some(Due::Pong));
        assert!(after(Duration::MAX) > t0, "a setting of years does not panic");
    }

    #[test]
    fn command_close_uses_standard_texts() {
        let cmd = SessionCommand::close(CloseCode::Offload, Some(5000));
        assert_eq!(
            cmd,
            SessionCommand::Close {
                code: 308,
                status: "OFFLOAD".into(),
                description: "Server is offloading this connection, reconnect".into(),
                error_code: None,
                backoff_min_ms: Some(5000),
            }
        );
    }

    #[test]
    fn message_limit_covers_framing() {
        let c = SessionConfig::default();
        assert!(c.max_message_bytes() > c.limits.max_header_bytes + c.limits.max_payload_bytes);
    }
}
