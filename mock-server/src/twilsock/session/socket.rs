//! The session's one WebSocket, shared by its two halves (the driver reads, the writer writes)
//! without `split()`: `split` puts the socket behind a `BiLock`, an `Arc` of ~400 bytes per
//! connection, to let the halves live in different tasks. Here both halves are futures of the
//! same task (joined by `select!` in `endpoint`), so they borrow the socket from that task's
//! own state, behind a mutex that is only held for one poll and is never contended: the task
//! polls one half at a time.
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{Sink, Stream};

/// One session's socket.
pub(super) struct Socket(Mutex<WebSocket>);

impl Socket {
    pub(super) fn new(ws: WebSocket) -> Socket {
        Socket(Mutex::new(ws))
    }

    fn lock(&self) -> MutexGuard<'_, WebSocket> {
        // A poll that panicked leaves the socket as tungstenite left it; the session ends on
        // the error it reports next, not on the poison.
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
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.lock()).poll_next(cx)
    }
}

/// Messages to the client.
pub(super) struct Writer<'a>(&'a Socket);

impl Sink<Message> for Writer<'_> {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock()).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut *self.0.lock()).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock()).poll_close(cx)
    }
}
