//! A bounded single-consumer queue that holds no storage while it is empty: what a session's
//! queues (its outbox, its commands, its writer's orders) are built on.
//!
//! Why not `tokio::sync::mpsc`: a tokio channel allocates a block of 32 slots and a ~500-byte
//! shared state the moment it is made, and keeps them for its lifetime. A session had three,
//! which made ~4 KB of every idle connection's memory. Here the items live in a `VecDeque` that
//! is allocated by the first item and freed again once it is empty (when it had grown past a
//! few slots), so an idle mailbox is its mutex, a few words and an `Option<Waker>`.
//!
//! The lock is only ever held to move one item or a waker in or out, never across an `.await`.
//! One consumer: the waker of the last `poll_recv` (or [`Mailbox::register`]) is the one woken.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub use tokio::sync::mpsc::error::TrySendError;

#[derive(Debug)]
pub(crate) struct Mailbox<T> {
    state: Mutex<State<T>>,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    waker: Option<Waker>,
}

impl<T> State<T> {
    /// The oldest item; the storage is given back with the last one. Most sessions are idle most
    /// of the time, and even a few slots kept by an empty queue cost every one of them (160
    /// bytes for the outbox's frames); a busy queue allocates again on its next item, one small
    /// allocation per burst.
    fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front();
        if item.is_some() && self.items.is_empty() {
            self.items = VecDeque::new();
        }
        item
    }
}

impl<T> Mailbox<T> {
    /// A mailbox refusing items past `capacity` (at least 1) waiting in it.
    pub(crate) fn new(capacity: usize) -> Mailbox<T> {
        Mailbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                waker: None,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // Nothing panics with the lock held (moves in and out of a VecDeque), but a poisoned
        // lock must not take the session down with it either.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`, waking the consumer. Never waits: `Full` past the capacity, `Closed` once
    /// [`Mailbox::close`]d.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut s = self.lock();
            if s.closed {
                return Err(TrySendError::Closed(item));
            }
            if s.items.len() >= self.capacity {
                return Err(TrySendError::Full(item));
            }
            s.items.push_back(item);
            s.waker.take()
        };
        // Woken outside the lock: the consumer may run at once on another thread.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// The next item, if one waits.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.lock().pop()
    }

    /// The next item; `Ready(None)` once closed and empty; otherwise `Pending`, and the waker
    /// of `cx` is woken by the next item or [`Mailbox::wake`].
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.lock();
        if let Some(item) = s.pop() {
            return Poll::Ready(Some(item));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        store(&mut s.waker, cx);
        Poll::Pending
    }

    /// Waits for the next item (`None` once closed and empty).
    pub(crate) async fn recv(&self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Registers the consumer's waker without taking an item: for a consumer that waits for
    /// something else signalled through [`Mailbox::wake`] (check that condition again after
    /// registering, or a wake in between is missed).
    pub(crate) fn register(&self, cx: &mut Context<'_>) {
        store(&mut self.lock().waker, cx);
    }

    /// Wakes the consumer without an item.
    pub(crate) fn wake(&self) {
        let waker = self.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Refuses every later item (`Closed`); those waiting can still be received. Wakes the
    /// consumer, which sees `None` once it has taken them.
    pub(crate) fn close(&self) {
        let waker = {
            let mut s = self.lock();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Items waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn bounded_in_order_and_closed() {
        let m = Mailbox::new(2);
        m.try_send(1).expect("1 of 2");
        m.try_send(2).expect("2 of 2");
        assert!(matches!(m.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(m.len(), 2);
        m.close();
        assert!(matches!(m.try_send(4), Err(TrySendError::Closed(4))));
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(m.poll_recv(&mut cx), Poll::Ready(Some(1)), "queued items outlive close");
        assert_eq!(m.try_recv(), Some(2));
        assert_eq!(m.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn an_item_or_a_wake_wakes_the_waiting_consumer_once() {
        let m = Mailbox::new(8);
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(m.poll_recv(&mut cx), Poll::Pending);
        m.try_send(7).expect("room");
        m.try_send(8).expect("room");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken by the first item only");
        assert_eq!(m.poll_recv(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(m.poll_recv(&mut cx), Poll::Ready(Some(8)));
        assert_eq!(m.poll_recv(&mut cx), Poll::Pending);
        m.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        m.register(&mut cx);
        m.close();
        assert_eq!(count.0.load(Ordering::SeqCst), 3, "close wakes the consumer");
    }

    #[test]
    fn storage_is_given_back_once_empty() {
        let m = Mailbox::new(1000);
        assert_eq!(m.lock().items.capacity(), 0, "nothing allocated before the first item");
        for n in 0..100 {
            m.try_send(n).expect("room");
        }
        assert!(m.lock().items.capacity() >= 100);
        for n in 0..100 {
            assert_eq!(m.try_recv(), Some(n));
        }
        assert_eq!(m.lock().items.capacity(), 0, "a large empty queue is freed");
        m.try_send(1).expect("room");
        assert_eq!(m.try_recv(), Some(1));
        assert_eq!(m.lock().items.capacity(), 0, "so is a small one");
    }
}
