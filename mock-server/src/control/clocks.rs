//! Clocks: a tenant's (or the server's) clock, and what the control plane does with it.
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{Control, ControlError, limits};
use crate::clock::{Clock, ClockMode, Millis};
use crate::journal::Kind;

/// What to do with a clock: `{"action":"freeze"|"advance"|"resume", …}` over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClockAction {
    /// Stop the clock now, or at `at` (Unix ms; may be in the past).
    Freeze {
        #[serde(default)]
        at: Option<i64>,
    },
    /// Move the clock forward by `by_ms`, frozen or running.
    Advance { by_ms: u64 },
    /// Let a frozen clock run again from where it stands.
    Resume,
}

/// A clock as the control plane shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClockView {
    /// Unix milliseconds.
    pub now: Millis,
    /// The same instant, `2024-01-02T03:04:05.678Z`.
    pub iso: String,
    /// `{"mode":"running","offset_ms":N}` or `{"mode":"frozen","at":ms}`.
    #[serde(flatten)]
    pub mode: ClockMode,
}

impl ClockView {
    pub fn of(clock: &Clock) -> ClockView {
        let now = clock.now();
        ClockView {
            now,
            iso: now.iso_millis(),
            mode: clock.mode(),
        }
    }
}

impl Control {
    /// The clock of a tenant (`None`: the server clock, which every running tenant clock follows).
    pub fn clock(&self, account: Option<&str>) -> Result<Clock, ControlError> {
        match account {
            None => Ok(self.domain.clock().clone()),
            Some(a) => self
                .domain
                .account(a)
                .map(|acc| acc.clock().clone())
                .ok_or_else(|| ControlError::NoTenant(a.to_owned())),
        }
    }

    /// Applies a clock action to a tenant's clock (`None`: the server clock) and journals it.
    pub fn clock_action(&self, account: Option<&str>, action: ClockAction) -> Result<ClockView, ControlError> {
        let clock = self.clock(account)?;
        let summary = match action {
            ClockAction::Freeze { at: Some(at) } if !(0..=crate::clock::MAX_CLOCK_MS).contains(&at) => {
                return Err(ControlError::OutOfRange(format!(
                    "at {at} is outside 0..={} (Unix ms up to 9999-12-31T23:59:59.999Z)",
                    crate::clock::MAX_CLOCK_MS
                )));
            }
            ClockAction::Advance { by_ms }
                if by_ms > limits::MAX_CLOCK_ADVANCE_MS || clock.now().0.saturating_add(by_ms as i64) > crate::clock::MAX_CLOCK_MS =>
            {
                return Err(ControlError::OutOfRange(format!(
                    "by_ms {by_ms} is out of range: at most {} in one step, and the clock must stay before \
                     9999-12-31T23:59:59.999Z",
                    limits::MAX_CLOCK_ADVANCE_MS
                )));
            }
            ClockAction::Freeze { at: Some(at) } => {
                clock.freeze_at(Millis(at));
                format!("clock frozen at {at}")
            }
            ClockAction::Freeze { at: None } => {
                clock.freeze();
                "clock frozen".to_owned()
            }
            ClockAction::Advance { by_ms } => {
                clock.advance(Duration::from_millis(by_ms));
                format!("clock advanced by {by_ms} ms")
            }
            ClockAction::Resume => {
                clock.resume();
                "clock resumed".to_owned()
            }
        };
        let view = ClockView::of(&clock);
        self.record(Kind::Control, account, summary, json!({ "clock": view }));
        Ok(view)
    }
}
