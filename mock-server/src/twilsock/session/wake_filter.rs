//! Polling a timer only when it has woken the task.
//!
//! The driver's `select!` polls every branch each time anything wakes it, and under fan-out
//! something wakes it once per delivery (the client's ack). A timer that has not fired has
//! nothing to say then, but polling it is not free: the token alarm re-polls the tenant clock's
//! change notification and a `Sleep`, the ping interval another `Sleep`. A [`WakeFilter`] hands the
//! timer a waker of its own and polls it again only once that waker was called (or after
//! [`WakeFilter::rearm`]), so a wake-up for an ack costs one atomic swap per timer.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// See the module documentation.
pub(super) struct WakeFilter {
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    /// The filtered future's waker was called (or it must be polled for another reason).
    woken: AtomicBool,
    /// The task to wake on its behalf.
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl WakeFilter {
    /// The first poll goes through.
    pub(super) fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(flag.clone());
        WakeFilter { flag, waker }
    }

    /// The filtered thing changed (a new deadline, a reset): poll it next time.
    pub(super) fn rearm(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Polls through `poll` only if the filter's waker was called since the last poll (or it was
    /// rearmed); otherwise `Pending`, with the task's waker kept for when it is. A `Ready` leaves
    /// the filter armed, for things that can be ready again (an interval).
    pub(super) fn poll<T>(&self, cx: &mut Context<'_>, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        // Registered before the flag is read: a wake between the two still wakes this task.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let out = poll(&mut Context::from_waker(&self.waker));
        if out.is_ready() {
            self.rearm();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_timer_behind_the_filter_still_fires_and_is_polled_only_when_woken() {
        let filter = WakeFilter::new();
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(20)));
        let mut polls = 0;
        let mut poll_once = |cx: &mut Context<'_>| {
            filter.poll(cx, |cx| {
                polls += 1;
                sleep.as_mut().poll(cx)
            })
        };
        // First poll: through to the sleep, which is pending.
        assert!(std::future::poll_fn(|cx| Poll::Ready(poll_once(cx))).await.is_pending());
        // Woken by something else: the sleep is not polled again.
        assert!(std::future::poll_fn(|cx| Poll::Ready(poll_once(cx))).await.is_pending());
        // Waited on, it completes when the sleep does.
        tokio::time::timeout(Duration::from_secs(10), std::future::poll_fn(&mut poll_once))
            .await
            .expect("the sleep behind the filter fires");
        assert_eq!(polls, 2, "polled on the first poll and on its own wake-up only");
    }

    #[tokio::test]
    async fn rearm_polls_again() {
        let filter = WakeFilter::new();
        let mut polls = 0;
        let mut poll_once = |cx: &mut Context<'_>| {
            filter.poll(cx, |_| {
                polls += 1;
                Poll::<()>::Pending
            })
        };
        let _ = std::future::poll_fn(|cx| Poll::Ready(poll_once(cx))).await;
        let _ = std::future::poll_fn(|cx| Poll::Ready(poll_once(cx))).await;
        filter.rearm();
        let _ = std::future::poll_fn(|cx| {
            Poll::Ready(filter.poll(cx, |_| {
                polls += 1;
                Poll::<()>::Pending
            }))
        })
        .await;
        assert_eq!(polls, 2);
    }
}
