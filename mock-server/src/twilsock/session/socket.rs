//! The session's one WebSocket, shared by its two halves (the driver reads, the writer writes).
//!
//! Framing is done here, over the upgraded connection, with the rules of
//! [`websocket`](super::super::websocket); see there for why not tungstenite. What an idle
//! socket holds: the connection and two empty buffers. Bytes read are parsed where they land;
//! only the tail of a frame that has not wholly arrived is kept (a whole frame becomes its
//! message's `Bytes` without a copy). Frames are written from their `Bytes`, with their headers,
//! many per vectored write; nothing is buffered on the way, so there is nothing to flush.
//!
//! No `split()`: both halves are futures of the same task (joined by `select!` in `endpoint`), so
//! they borrow the socket from that task's own state, behind a mutex held for one poll and never
//! contended (the task polls one half at a time). `split` would put the socket behind a `BiLock`,
//! an `Arc` per connection.
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(super) use super::super::websocket::Message;
use super::super::websocket::{
    self, Assembler, FrameError, MAX_CONTROL_PAYLOAD, MAX_SERVER_HEADER_LEN, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG,
};

/// Bytes read from the connection per read, into the stack: the SDK's ack is ~150 bytes and
/// most requests a few hundred, so one read usually holds several whole frames.
const READ_CHUNK: usize = 4096;

/// Frames per vectored write (two slices each: header and payload).
const WRITE_FRAMES: usize = 32;

/// Why reading failed. After an error the reader yields nothing more.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The client broke the framing rules: the connection fails with the error's close code.
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One session's socket.
pub(super) struct Socket(Mutex<Inner>);

struct Inner {
    io: TokioIo<Upgraded>,
    /// The bytes read, made into messages.
    messages: Assembler,
    /// The connection ended, or the client broke the rules: nothing more to read.
    done: bool,
}

impl Socket {
    pub(super) fn new(io: TokioIo<Upgraded>, max_message: usize) -> Socket {
        Socket(Mutex::new(Inner {
            io,
            messages: Assembler::new(max_message),
            done: false,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poll that panicked leaves the buffers as they were between two frames or mid-frame;
        // the session ends on the error the next read or write reports, not on the poison.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reading half (the driver's).
    pub(super) fn reader(&self) -> Reader<'_> {
        Reader(self)
    }

    /// The writing half (the writer's).
    pub(super) fn writer(&self) -> Writer<'_> {
        Writer(self)
    }
}

/// Messages from the client.
pub(super) struct Reader<'a>(&'a Socket);

impl Stream for Reader<'_> {
    type Item = Result<Message, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.lock().poll_message(cx)
    }
}

impl Inner {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ReadError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match self.messages.next_message() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            if let Err(e) = ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                self.done = true;
                return Poll::Ready(Some(Err(e.into())));
            }
            if buf.filled().is_empty() {
                // The end of the stream, mid-frame or not: the connection is gone.
                self.done = true;
                return Poll::Ready(None);
            }
            self.messages.extend(buf.filled());
        }
    }
}

/// Frames to the client.
pub(super) struct Writer<'a>(&'a Socket);

impl Writer<'_> {
    /// Writes `frames` as binary messages, in order, taking each one off the front once the
    /// connection has taken all of it and then calling `sent` with it. Cancel-safe in the sense
    /// that matters here: a frame is removed only once wholly written; but a future dropped
    /// mid-frame leaves the connection mid-frame, so the session must end then (it does: the
    /// writer is only dropped with the session).
    pub(super) async fn write_binary(&mut self, frames: &mut VecDeque<Bytes>, mut sent: impl FnMut(&Bytes)) -> io::Result<()> {
        let mut offset = 0;
        std::future::poll_fn(|cx| self.0.lock().poll_write(cx, OP_BINARY, frames, &mut offset, &mut sent)).await
    }

    /// A ping with an empty payload.
    pub(super) async fn ping(&mut self) -> io::Result<()> {
        self.control(OP_PING, Bytes::new()).await
    }

    /// The answer to a ping.
    pub(super) async fn pong(&mut self, payload: Bytes) -> io::Result<()> {
        self.control(OP_PONG, payload).await
    }

    /// A close frame, then the end of the connection's sending side.
    pub(super) async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let n = websocket::close_payload(code, reason, &mut payload);
        self.control(OP_CLOSE, Bytes::copy_from_slice(&payload[..n])).await?;
        std::future::poll_fn(|cx| Pin::new(&mut self.0.lock().io).poll_shutdown(cx)).await
    }

    async fn control(&mut self, opcode: u8, payload: Bytes) -> io::Result<()> {
        let mut one = VecDeque::from([payload.slice(..payload.len().min(MAX_CONTROL_PAYLOAD))]);
        let mut offset = 0;
        std::future::poll_fn(|cx| self.0.lock().poll_write(cx, opcode, &mut one, &mut offset, &mut |_: &Bytes| {})).await
    }
}

impl Inner {
    /// Writes `frames` (all with `opcode`), as many per vectored write as fit. `offset`: bytes of
    /// the front frame (header included) already written.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        opcode: u8,
        frames: &mut VecDeque<Bytes>,
        offset: &mut usize,
        sent: &mut impl FnMut(&Bytes),
    ) -> Poll<io::Result<()>> {
        while !frames.is_empty() {
            let mut headers = [[0u8; MAX_SERVER_HEADER_LEN]; WRITE_FRAMES];
            let mut header_lens = [0usize; WRITE_FRAMES];
            for ((header, len), frame) in headers.iter_mut().zip(&mut header_lens).zip(frames.iter()) {
                *len = websocket::write_header(header, opcode, frame.len());
            }
            let mut slices = [IoSlice::new(&[]); 2 * WRITE_FRAMES];
            let mut used = 0;
            let mut skip = *offset;
            for ((header, len), frame) in headers.iter().zip(&header_lens).zip(frames.iter()) {
                for part in [&header[..*len], &frame[..]] {
                    if skip >= part.len() {
                        skip -= part.len();
                        continue;
                    }
                    slices[used] = IoSlice::new(&part[skip..]);
                    skip = 0;
                    used += 1;
                }
            }
            let mut written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..used]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // What was written lies within this batch: retire its frames from the front.
            for header_len in header_lens {
                let Some(front) = frames.front() else { break };
                let rest = header_len + front.len() - *offset;
                if written < rest {
                    *offset += written;
                    break;
                }
                written -= rest;
                *offset = 0;
                if let Some(frame) = frames.pop_front() {
                    sent(&frame);
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}
