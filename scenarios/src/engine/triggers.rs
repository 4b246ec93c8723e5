//! Triggers (`[[on]]`): each fires its steps whenever its condition holds, alongside the
//! sequence.
use std::collections::HashSet;

use serde_json::json;
use tokio::sync::watch;

use super::log::ms;
use super::play::Play;
use super::steps::Flow;
use super::waits::condition_text;
use crate::format::step::Trigger;

impl Play<'_> {
    /// Fires a trigger each time its condition holds (after its `since` mark), at most `times`
    /// times; a firing runs its steps to the end, and only what happens after a firing ends can
    /// fire it again.
    pub(super) async fn run_trigger(&self, t: &Trigger, ti: usize, mut stop: watch::Receiver<bool>) {
        let mut rx = self.log.subscribe();
        let since = loop {
            let s = match &t.since {
                None => Some(0),
                Some(m) => self.log.read(|r| r.mark(m)),
            };
            if let Some(s) = s {
                break s;
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = rx.changed() => {},
                _ = stop.changed() => return,
            }
        };
        let limit = t.times.limit();
        let mut fired = 0u32;
        let mut after = since;
        let mut used = HashSet::new();
        loop {
            if limit.is_some_and(|l| fired >= l) || *stop.borrow() || self.log.aborted().is_some() {
                return;
            }
            let names = self.names.snapshot();
            let found = self.log.read(|r| self.find(&t.when, after, r, &names, &used));
            match found {
                Some((key, at)) => {
                    used.insert(key);
                    fired += 1;
                    self.log.timeline(
                        self.log.now(),
                        "action",
                        "engine",
                        format!("on[{ti}] fired ({}): {}", fired, condition_text(&t.when)),
                        json!({ "condition_at_ms": ms(at) }),
                    );
                    let flow = self.run_steps(&t.then, &format!("on[{ti}].then"), at).await;
                    after = self.log.now();
                    if flow == Flow::Stop {
                        return;
                    }
                }
                None => {
                    tokio::select! {
                        _ = rx.changed() => {},
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }
}
