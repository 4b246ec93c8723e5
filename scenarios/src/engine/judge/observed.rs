//! What the server observed: `observed`, `not_observed`.

use serde_json::Value;

use super::{
    EVIDENCE, Judged, NameMap, Seen, Window, count_text, counted, field, identity_of, obs_evidence, obs_name, pattern_text, window_text,
};
use crate::engine::Play;
use crate::engine::log::{ObsRec, Records, Us, ms};
use crate::format::Count;
use crate::format::duration::format as dur;
use crate::format::expect::{NotObservedExpect, ObservedExpect};
use crate::format::matching::matches;

pub(super) fn observed(play: &Play<'_>, x: &ObservedExpect, w: Window, now: Us, r: &Records) -> Judged {
    let identity = x.client.as_deref().map(|c| identity_of(play, c)).or(x.identity.as_deref());
    let count = x.count.unwrap_or(Count::AT_LEAST_ONE);
    let same: Vec<&ObsRec> = r
        .observations
        .iter()
        .filter(|o| o.kind == x.observed && w.contains(o.at, now))
        .filter(|o| identity.is_none_or(|i| o.identity.as_deref() == Some(i)))
        .collect();
    let hits: Vec<&ObsRec> = same
        .iter()
        .copied()
        .filter(|o| x.matches.as_ref().is_none_or(|m| matches(&Value::Object(m.clone()), &o.detail)))
        .collect();
    let name = obs_name(x.observed);
    if let (Some(path), Some(want)) = (&x.field, &x.values) {
        // The values in the order the server observed them.
        let got: Vec<Value> = hits
            .iter()
            .map(|o| field(&o.detail, path).cloned().unwrap_or(Value::Null))
            .collect();
        let passed = &got == want;
        let on_track = got.len() <= want.len() && want[..got.len()] == got[..];
        return Judged {
            passed,
            expected: format!(
                "the server observes {name}{}{} with {path} = {} in this order{}",
                identity.map(|i| format!(" of {i}")).unwrap_or_default(),
                pattern_text(x.matches.as_ref()),
                Value::Array(want.clone()),
                window_text(&w, x.since.as_deref())
            ),
            actual: if passed {
                String::new()
            } else {
                format!("{path} = {}", Value::Array(got))
            },
            evidence: hits.iter().take(EVIDENCE).map(|o| obs_evidence(o)).collect(),
            fin: !on_track || w.closed(now),
        };
    }
    let expected = format!(
        "the server observes {name}{}{} {}{}",
        identity.map(|i| format!(" of {i}")).unwrap_or_default(),
        pattern_text(x.matches.as_ref()),
        count_text(count),
        window_text(&w, x.since.as_deref())
    );
    let seen = Seen {
        verb: "observed",
        name: &name,
        sep: "; ",
    };
    counted(count, w, now, expected, seen, &same, &hits, |o| o.summary.clone(), obs_evidence)
}

pub(super) fn not_observed(play: &Play<'_>, x: &NotObservedExpect, w: Window, now: Us, r: &Records, _names: &NameMap) -> Judged {
    let identity = x.client.as_deref().map(|c| identity_of(play, c)).or(x.identity.as_deref());
    let hits: Vec<&ObsRec> = r
        .observations
        .iter()
        .filter(|o| o.kind == x.observed && w.contains(o.at, now))
        .filter(|o| identity.is_none_or(|i| o.identity.as_deref() == Some(i)))
        .filter(|o| x.matches.as_ref().is_none_or(|m| matches(&Value::Object(m.clone()), &o.detail)))
        .collect();
    let passed = hits.is_empty();
    Judged {
        passed,
        expected: format!(
            "the server does not observe {}{}{} for {}{}",
            obs_name(x.observed),
            identity.map(|i| format!(" of {i}")).unwrap_or_default(),
            pattern_text(x.matches.as_ref()),
            dur(x.duration),
            x.since.as_deref().map(|m| format!(" after mark `{m}`")).unwrap_or_default()
        ),
        actual: if passed {
            String::new()
        } else {
            format!(
                "observed {} time(s), first at {} ms: {}",
                hits.len(),
                ms(hits[0].at),
                hits[0].summary
            )
        },
        evidence: hits.iter().take(EVIDENCE).map(|o| obs_evidence(o)).collect(),
        fin: !passed || w.closed(now),
    }
}
