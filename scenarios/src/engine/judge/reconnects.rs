//! `reconnects`: how a client came back after the server dropped it.
use std::fmt::Write;
use std::time::Duration;

use super::{EVIDENCE, Judged, Window, count_text, identity_of, obs_evidence, window_text};
use crate::engine::Play;
use crate::engine::log::{ObsRec, Records, Us, ms};
use crate::format::duration::format as dur;
use crate::format::expect::ReconnectsExpect;
use crate::format::{Count, ObservationKind};

pub(super) fn reconnects(play: &Play<'_>, x: &ReconnectsExpect, w: Window, now: Us, r: &Records) -> Judged {
    let identity = identity_of(play, &x.client);
    let attempts: Vec<&ObsRec> = r
        .observations
        .iter()
        .filter(|o| o.kind == ObservationKind::ConnectionAttempt && o.identity.as_deref() == Some(identity))
        .filter(|o| w.contains(o.at, now))
        .collect();
    let count = x.count.unwrap_or(Count::AT_LEAST_ONE);
    let n = attempts.len() as u64;
    let mut problems = Vec::new();
    if !count.contains(n) {
        problems.push(format!("{n} attempt(s)"));
    }
    let range = |r: &crate::format::expect::DurationRange| match (r.min, r.max) {
        (Some(a), Some(b)) => format!("{} to {}", dur(a), dur(b)),
        (Some(a), None) => format!("at least {}", dur(a)),
        (None, Some(b)) => format!("at most {}", dur(b)),
        (None, None) => "any".into(),
    };
    if let Some(first) = &x.first_after {
        match attempts.first() {
            Some(a) if first.contains(Duration::from_micros(a.at - w.start)) => {}
            Some(a) => problems.push(format!("the first came after {} ms", ms(a.at - w.start))),
            None => problems.push("no attempt came".into()),
        }
    }
    if let Some(gap) = &x.gap {
        let gaps: Vec<u64> = attempts.windows(2).map(|p| p[1].at - p[0].at).collect();
        if let Some(bad) = gaps.iter().find(|g| !gap.contains(Duration::from_micros(**g))) {
            let in_ms: Vec<u64> = gaps.iter().map(|g| ms(*g)).collect();
            problems.push(format!("a gap of {} ms (gaps: {in_ms:?} ms)", ms(*bad)));
        }
    }
    let mut expected = format!("{} reconnects {}", x.client, count_text(count));
    if let Some(f) = &x.first_after {
        write!(expected, ", the first attempt after {}", range(f)).ok();
    }
    if let Some(g) = &x.gap {
        write!(expected, ", attempts {} apart", range(g)).ok();
    }
    expected.push_str(&window_text(&w, x.since.as_deref()));
    let passed = problems.is_empty();
    let times: Vec<u64> = attempts.iter().map(|a| ms(a.at - w.start)).collect();
    Judged {
        passed,
        expected,
        actual: if passed {
            String::new()
        } else {
            format!("{} (attempts at {times:?} ms after the window's start)", problems.join("; "))
        },
        evidence: attempts.iter().take(EVIDENCE).map(|o| obs_evidence(o)).collect(),
        fin: count.max.is_some_and(|m| n > m) || w.closed(now),
    }
}
