//! Waiting on what happened: for the records to change, for a condition (`wait_for`, triggers)
//! to be met by an event or an observation, for a `wait` to pass.
use std::collections::HashSet;

use serde_json::Value;
use tokio::sync::watch;

use super::judge::{self, NameMap};
use super::log::{Records, Us, ms};
use super::play::Play;
use super::steps::{Flow, Slot};
use crate::format::step::{Condition, Step, Wait, WaitFor};
use crate::outcome::Verdict;

impl Play<'_> {
    /// A `wait` step: real time passes (the deadline still stops it).
    pub(super) async fn wait(&self, w: &Wait, step: &Step, slot: &Slot<'_>) -> Flow {
        let Slot {
            at,
            index,
            prefix,
            started,
        } = *slot;
        let until = started.saturating_add(u64::try_from(w.wait.as_micros()).unwrap_or(u64::MAX));
        let mut rx = self.log.subscribe();
        while self.log.now() < until.min(self.deadline) && self.log.aborted().is_none() {
            self.changed_or(&mut rx, until.min(self.deadline)).await;
        }
        let ok = self.log.now() >= until;
        self.record_step(index, format!("{prefix}{}", step.describe()), ok, None, started);
        if !ok && self.log.aborted().is_none() {
            self.time_up(&format!("during {at} {}", step.describe()));
        }
        if ok { Flow::Continue } else { Flow::Stop }
    }

    /// A `wait_for` step: looks from `window_start` for the condition until its timeout; a
    /// condition not met fails the play.
    pub(super) async fn wait_for(&self, wf: &WaitFor, window_start: Us, slot: &Slot<'_>) -> Flow {
        let Slot {
            at,
            index,
            prefix,
            started,
        } = *slot;
        let description = format!("{prefix}wait_for {}", condition_text(&wf.wait_for));
        let limit = started.saturating_add(u64::try_from(wf.timeout.as_micros()).unwrap_or(u64::MAX));
        let found = self.await_condition(&wf.wait_for, window_start, limit.min(self.deadline)).await;
        match found {
            Some(at) => {
                self.record_step(index, description, true, Some(format!("met at {} ms", ms(at))), started);
                Flow::Continue
            }
            None => {
                let why = if self.log.aborted().is_some() {
                    None
                } else if self.log.now() >= limit {
                    Some(format!(
                        "{at} wait_for {} was not met within {}",
                        condition_text(&wf.wait_for),
                        crate::format::duration::format(wf.timeout)
                    ))
                } else {
                    self.time_up(&format!("during {at} {description}"));
                    None
                };
                self.record_step(index, description, false, why.clone(), started);
                if let Some(why) = why {
                    self.log.abort(Verdict::Failed, why);
                }
                Flow::Stop
            }
        }
    }

    /// Waits for a change to the records, or until `until`; `false` once `until` has come.
    pub(super) async fn changed_or(&self, rx: &mut watch::Receiver<u64>, until: Us) -> bool {
        if self.log.now() >= until {
            return false;
        }
        tokio::select! {
            r = rx.changed() => r.is_ok() || { tokio::time::sleep_until(self.log.instant(until)).await; false },
            () = tokio::time::sleep_until(self.log.instant(until)) => false,
        }
    }

    /// The first record meeting `c` at or after `from`, waiting until `until`; its time.
    pub(super) async fn await_condition(&self, c: &Condition, from: Us, until: Us) -> Option<Us> {
        let mut rx = self.log.subscribe();
        loop {
            let names = self.names.snapshot();
            let found = self.log.read(|r| self.find(c, from, r, &names, &HashSet::new()));
            if let Some((_, at)) = found {
                return Some(at);
            }
            if self.log.aborted().is_some() || !self.changed_or(&mut rx, until).await {
                let names = self.names.snapshot();
                return self.log.read(|r| self.find(c, from, r, &names, &HashSet::new())).map(|(_, at)| at);
            }
        }
    }

    /// The first record meeting `c` at or after `from` not in `skip`: a key for it and its time.
    pub(super) fn find(&self, c: &Condition, from: Us, r: &Records, names: &NameMap, skip: &HashSet<(u8, u64)>) -> Option<((u8, u64), Us)> {
        match c {
            Condition::Event(e) => {
                let name = serde_json::to_value(e.event).ok()?.as_str()?.to_owned();
                r.events
                    .iter()
                    .enumerate()
                    .filter(|(_, ev)| ev.at >= from && ev.client == e.client && ev.name == name)
                    .filter(|(i, _)| !skip.contains(&(0, *i as u64)))
                    .find(|(_, ev)| judge::payload_matches(e.matches.as_ref(), &ev.payload, names))
                    .map(|(i, ev)| ((0, i as u64), ev.at))
            }
            Condition::Observed(o) => {
                let identity = o
                    .client
                    .as_deref()
                    .map(|c| self.scenario.client(c).map_or(c, |x| x.identity()))
                    .or(o.identity.as_deref());
                r.observations
                    .iter()
                    .filter(|x| x.at >= from && x.kind == o.observed)
                    .filter(|x| identity.is_none_or(|i| x.identity.as_deref() == Some(i)))
                    .filter(|x| !skip.contains(&(1 + x.kind as u8, x.seq)))
                    .find(|x| {
                        o.matches
                            .as_ref()
                            .is_none_or(|m| crate::format::matching::matches(&Value::Object(m.clone()), &x.detail))
                    })
                    .map(|x| ((1 + x.kind as u8, x.seq), x.at))
            }
        }
    }
}

/// `message_added of alice matching {…}`, `session_opened of alice`.
pub(super) fn condition_text(c: &Condition) -> String {
    let name = |v: Value| v.as_str().map(str::to_owned).unwrap_or_default();
    match c {
        Condition::Event(e) => format!(
            "{} of {}{}",
            name(serde_json::to_value(e.event).unwrap_or(Value::Null)),
            e.client,
            e.matches
                .as_ref()
                .map(|m| format!(" matching {}", Value::Object(m.clone())))
                .unwrap_or_default()
        ),
        Condition::Observed(o) => format!(
            "observed {}{}{}",
            name(serde_json::to_value(o.observed).unwrap_or(Value::Null)),
            o.client
                .as_deref()
                .or(o.identity.as_deref())
                .map(|w| format!(" of {w}"))
                .unwrap_or_default(),
            o.matches
                .as_ref()
                .map(|m| format!(" matching {}", Value::Object(m.clone())))
                .unwrap_or_default()
        ),
    }
}
