//! When expectations are judged: inline ones hold the sequence until decided, the scenario's
//! `[[expect]]` once their windows close, settle, or time is up. What each kind means is in
//! `judge`.
use super::error::WindowError;
use super::judge::{self, Judged, Window};
use super::log::{Us, ms};
use super::play::Play;
use super::steps::{Flow, Slot};
use crate::format::Grade;
use crate::format::expect::Expectation;
use crate::format::step::Step;
use crate::outcome::ExpectationOutcome;

impl Play<'_> {
    /// An `expect` step: judged inline (the sequence waits until it is decided); a failed
    /// `must` stops the sequence.
    pub(super) async fn expect_step(&self, e: &Expectation, step: &Step, window_start: Us, slot: &Slot<'_>) -> Flow {
        let Slot {
            at,
            index,
            prefix,
            started,
        } = *slot;
        let label = e.label.clone().unwrap_or_else(|| format!("{at} {}", step.describe()));
        let (j, decided) = self.expect_inline(e, window_start).await;
        let passed = self.record_expectation(label.clone(), e, j, decided);
        self.record_step(
            index,
            format!("{prefix}{}", step.describe()),
            passed || e.grade != Grade::Must,
            (!passed).then(|| format!("`{label}` did not hold")),
            started,
        );
        if !passed && e.grade == Grade::Must {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    pub(super) fn record_expectation(&self, label: String, e: &Expectation, j: Judged, at: Us) -> bool {
        let passed = j.passed;
        self.expectations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ExpectationOutcome {
                label,
                kind: e.kind.name().to_owned(),
                grade: e.grade,
                passed,
                expected: j.expected,
                actual: j.actual,
                evidence: j.evidence,
                at_ms: ms(at),
            });
        passed
    }

    /// Judges an inline expectation: waits until it is decided (its window closes, it is met
    /// for good, or broken); returns the judgement and when it was decided.
    pub(super) async fn expect_inline(&self, e: &Expectation, window_start: Us) -> (Judged, Us) {
        let w = match self.log.read(|r| judge::window(&e.kind, window_start, r)) {
            Ok(w) => w,
            Err(why) => return (unjudged(&e.kind, &why), self.log.now()),
        };
        let mut rx = self.log.subscribe();
        loop {
            let now = self.log.now();
            let names = self.names.snapshot();
            let j = self.log.read(|r| judge::judge(self, &e.kind, w, now.min(self.deadline), r, &names));
            let until = w.end.unwrap_or(now).min(self.deadline);
            if j.fin || w.end.is_none() || now >= until || self.log.aborted().is_some() {
                return (j, now);
            }
            self.changed_or(&mut rx, until).await;
        }
    }

    /// Judges the scenario's `[[expect]]`: each once its window has closed, or once it has held
    /// for `settle` if it has none, or when time is up.
    pub(super) async fn judge_end(&self) {
        let exps: Vec<&Expectation> = self
            .scenario
            .expect
            .iter()
            .filter(|e| !(self.server_side && e.kind.needs_client_reports()))
            .collect();
        if exps.is_empty() {
            return;
        }
        self.names.refresh(self.control, &self.tenant.account);
        let windows: Vec<Result<Window, WindowError>> = self.log.read(|r| exps.iter().map(|e| judge::window(&e.kind, 0, r)).collect());
        let settle = u64::try_from(self.opts.settle.as_micros()).unwrap_or(u64::MAX);
        let mut ready: Vec<Option<(Judged, Us)>> = vec![None; exps.len()];
        let mut stable: Vec<Option<(Us, String)>> = vec![None; exps.len()];
        let mut rx = self.log.subscribe();
        loop {
            let now = self.log.now();
            let capped = now.min(self.deadline);
            let names = self.names.snapshot();
            for (i, e) in exps.iter().enumerate() {
                if ready[i].is_some() {
                    continue;
                }
                let w = match &windows[i] {
                    Ok(w) => *w,
                    Err(why) => {
                        ready[i] = Some((unjudged(&e.kind, why), now));
                        continue;
                    }
                };
                let j = self.log.read(|r| judge::judge(self, &e.kind, w, capped, r, &names));
                if j.fin || now >= self.deadline || w.closed(now) {
                    ready[i] = Some((j, now));
                } else if w.end.is_none() {
                    let print = format!("{}|{}|{}", j.passed, j.actual, j.evidence.len());
                    match &stable[i] {
                        Some((since, p)) if *p == print && j.passed => {
                            if now.saturating_sub(*since) >= settle {
                                ready[i] = Some((j, now));
                            }
                        }
                        _ => stable[i] = Some((now, print)),
                    }
                }
            }
            if ready.iter().all(Option::is_some) {
                break;
            }
            let next_end = exps
                .iter()
                .enumerate()
                .filter(|(i, _)| ready[*i].is_none())
                .filter_map(|(i, _)| windows[i].as_ref().ok().and_then(|w| w.end))
                .min()
                .unwrap_or(u64::MAX);
            let wake = next_end.min(self.deadline).min(now + 100_000);
            self.changed_or(&mut rx, wake).await;
        }
        for (i, (e, r)) in exps.into_iter().zip(ready).enumerate() {
            if let Some((j, at)) = r {
                let label = e.label.clone().unwrap_or_else(|| format!("expect[{i}] {}", e.kind.name()));
                self.record_expectation(label, e, j, at);
            }
        }
    }
}

/// The judgement of an expectation that could not be judged (its window never opened).
fn unjudged(kind: &crate::format::ExpectKind, why: &WindowError) -> Judged {
    Judged {
        passed: false,
        expected: format!("a `{}` expectation", kind.name()),
        actual: format!("not judged: {why}"),
        evidence: Vec::new(),
        fin: true,
    }
}
