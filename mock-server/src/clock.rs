//! The server's clock.
//!
//! Everything that depends on "now" — message timestamps, token validation, token-expiry timers,
//! temporary media URLs — reads this clock instead of the system time, so that a test (or the
//! control plane) can freeze it, advance it and resume it. The clock is a cheap `Clone` handle;
//! waiters are woken whenever the clock (or a clock it follows) is changed by hand, because a
//! deadline may have been reached without any real time passing.
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The latest instant a clock may show: 9999-12-31T23:59:59.999Z, the last one Twilio's date
/// formats (four-digit years) can write. The control plane refuses to move a clock past it, and
/// the arithmetic below saturates at the `i64` bounds so that no input can wrap time around.
pub const MAX_CLOCK_MS: i64 = 253_402_300_799_999;

/// Milliseconds since the Unix epoch, on the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Millis(pub i64);

impl Millis {
    pub fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn plus(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Twilio REST style: `2024-01-02T03:04:05Z` (second precision, UTC).
    pub fn rfc3339(self) -> String {
        let dt = self.datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    }

    /// Sync / SDK style: `2024-01-02T03:04:05.678Z` (millisecond precision, UTC).
    pub fn iso_millis(self) -> String {
        let dt = self.datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }

    /// Parses an ISO 8601 / RFC 3339 date-time, as accepted in `DateCreated` parameters.
    pub fn parse_rfc3339(s: &str) -> Option<Millis> {
        let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok().map(Millis)
    }

    fn datetime(self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ClockMode {
    /// Follows real time, shifted by `offset_ms`.
    Running { offset_ms: i64 },
    /// Stands still at `at`.
    Frozen { at: Millis },
}

#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    /// A child clock runs relative to its parent: `Running { offset_ms }` means parent + offset.
    parent: Option<Clock>,
    mode: Mutex<ClockMode>,
    /// Notified (`notify_waiters`) on every manual change of this clock or of any clock up its
    /// chain, so that its sleepers re-check their deadline. Only this clock's own sleepers wait
    /// here: see [`Clock::sleep_until`].
    changed: Notify,
    /// The clocks that follow this one, whose sleepers a change here must wake too. Weak, as a
    /// child is owned by whoever made it (an account), not by its parent; a child leaves the list
    /// when it is dropped (see `Drop for Inner`).
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Inner {
    fn new(parent: Option<Clock>) -> Arc<Inner> {
        Arc::new(Inner {
            parent,
            mode: Mutex::new(ClockMode::Running { offset_ms: 0 }),
            changed: Notify::new(),
            children: Mutex::new(Vec::new()),
        })
    }

    /// The children, whatever a panicking holder left behind (a list of weak references, always
    /// whole).
    fn lock_children(&self) -> MutexGuard<'_, Vec<Weak<Inner>>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    /// Leaves the parent's list of children. Its own entry is dead by now (the strong count
    /// reached zero before this runs), so pruning every dead entry removes it, with any other a
    /// racing drop left.
    fn drop(&mut self) {
        if let Some(parent) = &self.parent {
            parent.inner.lock_children().retain(|c| c.strong_count() > 0);
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("mode", &self.mode())
            .field("now", &self.now())
            .finish()
    }
}

impl Clock {
    /// A clock following the system time.
    pub fn system() -> Clock {
        Clock { inner: Inner::new(None) }
    }

    /// A clock that follows `parent` until it is frozen or advanced on its own. Each account
    /// has one, so parallel tests on one server can move time without touching each other,
    /// while moving the server's clock still moves every running account clock.
    pub fn child_of(parent: &Clock) -> Clock {
        let inner = Inner::new(Some(parent.clone()));
        // Registered before anyone can sleep on it, so no change of the parent goes unseen.
        parent.inner.lock_children().push(Arc::downgrade(&inner));
        Clock { inner }
    }

    /// The mode, whatever a panicking holder left behind: a clock is read by every request, so
    /// one panic must not turn into a failure of every later read (the value is a `Copy` enum,
    /// always whole).
    fn lock_mode(&self) -> MutexGuard<'_, ClockMode> {
        self.inner.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base_now(&self) -> i64 {
        match &self.inner.parent {
            Some(p) => p.now().0,
            None => Self::real_now(),
        }
    }

    /// A clock frozen at `at` (tests).
    pub fn frozen_at(at: Millis) -> Clock {
        let c = Clock::system();
        c.freeze_at(at);
        c
    }

    fn real_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    pub fn now(&self) -> Millis {
        let mode = *self.lock_mode();
        match mode {
            ClockMode::Running { offset_ms } => Millis(self.base_now().saturating_add(offset_ms)),
            ClockMode::Frozen { at } => at,
        }
    }

    pub fn mode(&self) -> ClockMode {
        *self.lock_mode()
    }

    /// Stops the clock at the current time.
    pub fn freeze(&self) {
        let now = self.now();
        self.freeze_at(now);
    }

    pub fn freeze_at(&self, at: Millis) {
        *self.lock_mode() = ClockMode::Frozen { at };
        self.bump();
    }

    /// Moves the clock forward (frozen or running).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        {
            let mut mode = self.lock_mode();
            *mode = match *mode {
                ClockMode::Running { offset_ms } => ClockMode::Running {
                    offset_ms: offset_ms.saturating_add(by),
                },
                ClockMode::Frozen { at } => ClockMode::Frozen {
                    at: Millis(at.0.saturating_add(by)),
                },
            };
        }
        self.bump();
    }

    /// Lets a frozen clock run again from where it stands.
    pub fn resume(&self) {
        {
            let base = self.base_now();
            let mut mode = self.lock_mode();
            if let ClockMode::Frozen { at } = *mode {
                *mode = ClockMode::Running {
                    offset_ms: at.0.saturating_sub(base),
                };
            }
        }
        self.bump();
    }

    /// Wakes the sleepers of this clock and of every clock that follows it, after a change.
    fn bump(&self) {
        self.inner.changed.notify_waiters();
        // Taken out of the lock first: dropping the last handle to a child (an account removed
        // meanwhile) prunes this very list.
        let children: Vec<Clock> = self
            .inner
            .lock_children()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|inner| Clock { inner })
            .collect();
        for child in &children {
            child.bump();
        }
    }

    /// Whether this clock (or the one it follows) is frozen.
    fn stands_still(&self) -> bool {
        match self.mode() {
            ClockMode::Frozen { .. } => true,
            ClockMode::Running { .. } => self.inner.parent.as_ref().is_some_and(Clock::stands_still),
        }
    }

    /// Waits until the clock reads `deadline` or later. Wakes early on manual changes to re-check,
    /// so a frozen clock advanced past the deadline releases the sleeper at once.
    ///
    /// The future owns a handle to the clock (it borrows nothing), so it can be boxed and kept
    /// as it is. Sessions keep one each for their token timers, thousands of them idle, so it is
    /// built to hold no allocation of its own and to be small: the clock handle, the deadline,
    /// and while it waits one [`Notified`](tokio::sync::futures::Notified) on this clock's
    /// `changed` (an intrusive list entry, registered without allocating) and, while the clock
    /// runs, one [`tokio::time::Sleep`], the two inline as one [`tokio::time::timeout`].
    ///
    /// Why one `Notify`, of this clock only: a change of a clock up the chain reaches this one's
    /// sleepers because [`Clock::bump`] notifies every clock that follows the changed one (each
    /// parent keeps weak references to its children). So a sleeper waits on one thing however
    /// deep the chain, where waiting on every clock up the chain would take a list of waits per
    /// sleeper (as it once did: a `Vec` of watch receivers and a boxed `changed()` future for
    /// each, made anew on every turn); and moving one account's clock wakes no sleeper of
    /// another account, as a shared notification would. The `Notified` is made before the clock
    /// is read: `notify_waiters` reaches it from then on, polled or not, so a change between the
    /// read and the wait is not lost.
    pub fn sleep_until(&self, deadline: Millis) -> impl Future<Output = ()> + Send + use<> {
        let clock = self.clone();
        async move {
            loop {
                let changed = clock.inner.changed.notified();
                match clock.time_left(deadline) {
                    None => return,
                    // A frozen clock moves only by hand: no timer.
                    Some(None) => changed.await,
                    // `timeout` clamps a far deadline instead of overflowing an `Instant`.
                    // Whichever ends the wait, the loop reads the clock again.
                    Some(Some(wait)) => {
                        let _ = tokio::time::timeout(wait, changed).await;
                    }
                }
            }
        }
    }

    /// What is left until `deadline`: `None` once it is reached; `Some(None)` while the clock
    /// stands still (only a change can bring the deadline nearer); otherwise the real time to go.
    fn time_left(&self, deadline: Millis) -> Option<Option<Duration>> {
        let now = self.now();
        if now >= deadline {
            return None;
        }
        if self.stands_still() {
            return Some(None);
        }
        let wait = u64::try_from(deadline.0.saturating_sub(now.0)).unwrap_or(u64::MAX);
        Some(Some(Duration::from_millis(wait)))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    use super::*;

    #[test]
    fn formats() {
        let m = Millis(1_700_000_000_123);
        assert_eq!(m.rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(m.iso_millis(), "2023-11-14T22:13:20.123Z");
        assert_eq!(Millis::parse_rfc3339("2023-11-14T22:13:20Z"), Some(Millis(1_700_000_000_000)));
    }

    #[test]
    fn freeze_advance_resume() {
        let c = Clock::frozen_at(Millis(1000));
        assert_eq!(c.now(), Millis(1000));
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), Millis(3000));
        c.resume();
        assert!(c.now() >= Millis(3000));
    }

    #[test]
    fn a_child_follows_its_parent_until_moved_on_its_own() {
        let parent = Clock::frozen_at(Millis(1000));
        let child = Clock::child_of(&parent);
        assert_eq!(child.now(), Millis(1000));
        parent.advance(Duration::from_secs(1));
        assert_eq!(child.now(), Millis(2000));
        child.advance(Duration::from_secs(5));
        assert_eq!(child.now(), Millis(7000));
        assert_eq!(parent.now(), Millis(2000), "moving a child never moves the parent");
        child.freeze();
        parent.advance(Duration::from_secs(1));
        assert_eq!(child.now(), Millis(7000));
        child.resume();
        assert_eq!(child.now(), Millis(7000));
        parent.advance(Duration::from_secs(1));
        assert_eq!(child.now(), Millis(8000));
    }

    #[test]
    fn extreme_moves_saturate_instead_of_wrapping_or_panicking() {
        let c = Clock::system();
        c.advance(Duration::from_millis(u64::MAX));
        assert_eq!(c.now(), Millis(i64::MAX), "saturates, never wraps negative");
        c.freeze_at(Millis(i64::MIN));
        c.resume();
        assert!(c.now().0 < i64::MIN / 2, "{:?}", c.now());
        c.freeze_at(Millis(i64::MIN));
        let child = Clock::child_of(&c);
        child.advance(Duration::from_millis(u64::MAX));
        assert_eq!(child.now(), Millis(-1), "i64::MIN + i64::MAX");
        child.advance(Duration::from_millis(u64::MAX));
        assert_eq!(child.now(), Millis(-1), "the offset stays saturated");
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn spawn_sleeper(clock: &Clock, deadline: Millis) -> tokio::task::JoinHandle<()> {
        tokio::spawn(clock.sleep_until(deadline))
    }

    async fn released(sleeper: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper released")
            .unwrap();
    }

    /// Thousands of idle sessions keep one each: the clock handle, the deadline, the change
    /// registration and the real-time timer, inline, and the state — nothing more (it was 240
    /// bytes when it kept a list of watch receivers and raced freshly boxed `changed()` futures).
    #[tokio::test]
    async fn a_sleep_stays_small() {
        let clock = Clock::system();
        let sleep = clock.sleep_until(Millis(i64::MAX));
        let notify = Notify::new();
        let parts = std::mem::size_of::<Clock>()
            + std::mem::size_of::<Millis>()
            + std::mem::size_of_val(&notify.notified())
            + std::mem::size_of::<tokio::time::Sleep>()
            + std::mem::size_of::<usize>();
        let size = std::mem::size_of_val(&sleep);
        assert!(size <= parts, "{size} > {parts}");
        // What that comes to with tokio 1.54 (`Notified` 64 bytes, `Sleep` 112).
        assert!(size <= 200, "{size}");
    }

    #[tokio::test]
    async fn a_far_deadline_on_a_running_clock_is_clamped() {
        let clock = Clock::system();
        let mut sleep = pin!(clock.sleep_until(Millis(i64::MAX)));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    }

    #[tokio::test]
    async fn advancing_a_parent_releases_a_childs_sleepers() {
        let parent = Clock::frozen_at(Millis(0));
        let child = Clock::child_of(&parent);
        let sleeper = spawn_sleeper(&child, Millis(10_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        parent.advance(Duration::from_secs(11));
        released(sleeper).await;
    }

    #[tokio::test]
    async fn advancing_any_clock_up_a_chain_releases_the_sleepers_at_its_end() {
        let root = Clock::frozen_at(Millis(0));
        let middle = Clock::child_of(&root);
        let leaf = Clock::child_of(&middle);
        let sleeper = spawn_sleeper(&leaf, Millis(10_000));
        tokio::task::yield_now().await;
        middle.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "not due yet");
        root.advance(Duration::from_secs(6));
        released(sleeper).await;
        assert_eq!(leaf.now(), Millis(10_000));
    }

    #[tokio::test]
    async fn moving_a_sibling_neither_wakes_nor_releases_a_sleeper() {
        let parent = Clock::frozen_at(Millis(0));
        let a = Clock::child_of(&parent);
        let b = Clock::child_of(&parent);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut sleep = pin!(b.sleep_until(Millis(10_000)));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        a.advance(Duration::from_secs(60));
        a.freeze();
        a.resume();
        assert_eq!(wakes.count(), 0, "another account's clock is no concern of this sleeper");
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        parent.advance(Duration::from_secs(1));
        assert_eq!(wakes.count(), 1, "the parent's clock is");
        assert!(sleep.as_mut().poll(&mut cx).is_pending(), "and not due yet");
        parent.advance(Duration::from_secs(9));
        assert_eq!(wakes.count(), 2);
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn advancing_a_frozen_clock_releases_sleepers() {
        let c = Clock::frozen_at(Millis(0));
        let sleeper = spawn_sleeper(&c, Millis(60_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "re-checked, not due");
        c.advance(Duration::from_secs(31));
        released(sleeper).await;
    }

    #[tokio::test]
    async fn a_frozen_clock_never_wakes_on_real_time_and_resuming_it_lets_real_time_run() {
        let c = Clock::frozen_at(Millis(1_000_000));
        let sleeper = spawn_sleeper(&c, Millis(1_000_050));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!sleeper.is_finished(), "a frozen clock stands still");
        c.resume();
        released(sleeper).await;
        assert!(c.now() >= Millis(1_000_050));
    }

    #[tokio::test]
    async fn setting_a_clock_back_keeps_its_sleepers_waiting() {
        let c = Clock::frozen_at(Millis(5_000));
        let sleeper = spawn_sleeper(&c, Millis(10_000));
        tokio::task::yield_now().await;
        c.freeze_at(Millis(1_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.freeze_at(Millis(10_000));
        released(sleeper).await;
    }

    #[test]
    fn a_dropped_child_leaves_its_parents_list() {
        let parent = Clock::system();
        let kept = Clock::child_of(&parent);
        let dropped = Clock::child_of(&parent);
        let grandchild = Clock::child_of(&dropped);
        assert_eq!(parent.inner.lock_children().len(), 2);
        drop(dropped);
        assert_eq!(parent.inner.lock_children().len(), 2, "the grandchild holds its parent");
        drop(grandchild);
        assert_eq!(parent.inner.lock_children().len(), 1);
        // The kept child still follows its parent. Each reading is taken before the one it is
        // compared with, so a system-clock millisecond ticking between two reads cannot fail the
        // test.
        let before = parent.now();
        parent.advance(Duration::from_secs(1));
        let kept_after = kept.now();
        assert!(kept_after >= Millis(before.0 + 1_000), "{kept_after:?} after {before:?} + 1 s");
        let parent_after = parent.now();
        assert!(kept.now() >= parent_after);
    }
}
