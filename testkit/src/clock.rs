//! Moving a running server's clock (or one tenant's): freeze, advance, resume.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rehearsal_mock_server::control::{ClockAction, ClockView, Control};

use crate::error::ControlError;

/// The clock of the server ([`crate::MockServer::clock`]) or of one tenant
/// ([`crate::Tenant::clock`]). Every tenant's clock follows the server's until it is frozen or
/// advanced on its own, so tests on one server can move time independently. Each change is
/// journaled (kind [`crate::EntryKind::Control`]); token timers and expiries follow it.
#[derive(Clone)]
pub struct ClockControl {
    pub(crate) control: Control,
    pub(crate) account: Option<String>,
}

impl ClockControl {
    /// What the clock shows now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let now = server.clock().now();
    /// assert!(now.elapsed().unwrap_or_default() < std::time::Duration::from_secs(60));
    /// # Ok(()) }
    /// ```
    pub fn now(&self) -> SystemTime {
        let ms = self
            .control
            .clock(self.account.as_deref())
            .map_or(0, |c| u64::try_from(c.now().0).unwrap_or(0));
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// Stops the clock where it stands. Returns the instant it stands at.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let at = server.clock().freeze()?;
    /// assert_eq!(server.clock().now(), at);
    /// # Ok(()) }
    /// ```
    pub fn freeze(&self) -> Result<SystemTime, ControlError> {
        self.apply(ClockAction::Freeze { at: None })
    }

    /// Stops the clock at `at` (which may be in the past).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let server = rehearsal::MockServer::start().await?;
    /// let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// server.clock().freeze_at(at)?;
    /// assert_eq!(server.clock().now(), at);
    /// # Ok(()) }
    /// ```
    pub fn freeze_at(&self, at: SystemTime) -> Result<SystemTime, ControlError> {
        let ms = crate::builder::to_millis(at).map_err(ControlError::OutOfRange)?;
        self.apply(ClockAction::Freeze { at: Some(ms.0) })
    }

    /// Moves the clock forward by `by`, frozen or running: tokens expire, timers fire.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let server = rehearsal::MockServer::start().await?;
    /// let at = server.clock().freeze()?;
    /// assert_eq!(server.clock().advance(Duration::from_secs(3600))?, at + Duration::from_secs(3600));
    /// # Ok(()) }
    /// ```
    pub fn advance(&self, by: Duration) -> Result<SystemTime, ControlError> {
        let by_ms = u64::try_from(by.as_millis()).map_err(|_| ControlError::OutOfRange(format!("{by:?} is too long")))?;
        self.apply(ClockAction::Advance { by_ms })
    }

    /// Lets a frozen clock run again from where it stands.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// server.clock().freeze()?;
    /// server.clock().resume()?;
    /// # Ok(()) }
    /// ```
    pub fn resume(&self) -> Result<SystemTime, ControlError> {
        self.apply(ClockAction::Resume)
    }

    fn apply(&self, action: ClockAction) -> Result<SystemTime, ControlError> {
        let ClockView { now, .. } = self.control.clock_action(self.account.as_deref(), action)?;
        Ok(UNIX_EPOCH + Duration::from_millis(u64::try_from(now.0).unwrap_or(0)))
    }
}
