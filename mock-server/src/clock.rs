//! The server's clock.
//!
//! Everything that depends on "now" — message timestamps, token validation, token-expiry timers,
//! temporary media URLs — reads this clock instead of the system time, so that a test (or the
//! control plane) can freeze it, advance it and resume it. The clock is a cheap `Clone` handle;
//! waiters are woken whenever the clock is changed by hand, because a deadline may have been
//! reached without any real time passing.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

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
    /// Bumped on every manual change so sleepers re-check their deadline.
    changed: watch::Sender<u64>,
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
        Clock {
            inner: Arc::new(Inner {
                parent: None,
                mode: Mutex::new(ClockMode::Running { offset_ms: 0 }),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// A clock that follows `parent` until it is frozen or advanced on its own. Each account
    /// has one, so parallel tests on one server can move time without touching each other,
    /// while moving the server's clock still moves every running account clock.
    pub fn child_of(parent: &Clock) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                parent: Some(parent.clone()),
                mode: Mutex::new(ClockMode::Running { offset_ms: 0 }),
                changed: watch::channel(0).0,
            }),
        }
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

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
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
    pub async fn sleep_until(&self, deadline: Millis) {
        // Every clock up the chain can move this one's time.
        let mut watches: Vec<watch::Receiver<u64>> = Vec::new();
        let mut c = Some(self.clone());
        while let Some(clock) = c {
            watches.push(clock.inner.changed.subscribe());
            c = clock.inner.parent.clone();
        }
        loop {
            let now = self.now();
            if now >= deadline {
                return;
            }
            let wait = Duration::from_millis(u64::try_from(deadline.0.saturating_sub(now.0)).unwrap_or(u64::MAX));
            let frozen = self.stands_still();
            let any_change = futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            if frozen {
                if any_change.await.0.is_err() {
                    return;
                }
            } else {
                tokio::select! {
                    // `sleep` clamps a far deadline instead of overflowing an `Instant`.
                    _ = tokio::time::sleep(wait) => {}
                    (r, _, _) = any_change => if r.is_err() { return },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn advancing_a_parent_releases_a_childs_sleepers() {
        let parent = Clock::frozen_at(Millis(0));
        let child = Clock::child_of(&parent);
        let c2 = child.clone();
        let sleeper = tokio::spawn(async move { c2.sleep_until(Millis(10_000)).await });
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        parent.advance(Duration::from_secs(11));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper released")
            .unwrap();
    }

    #[tokio::test]
    async fn advancing_a_frozen_clock_releases_sleepers() {
        let c = Clock::frozen_at(Millis(0));
        let c2 = c.clone();
        let sleeper = tokio::spawn(async move { c2.sleep_until(Millis(60_000)).await });
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.advance(Duration::from_secs(61));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper released")
            .unwrap();
    }
}
