//! Judging expectations against the play's record: what was expected, what happened, and the
//! events or observations that decided it, in words a report can show.
//!
//! Every judgement also says whether it is *final*: a window that has closed, a negative
//! expectation already broken, a positive one already met that more records cannot undo (no
//! upper bound on its count). The engine waits on the others (see `run`).
//!
//! One file per family of expectation kinds; this file holds the dispatch ([`judge`]) and
//! what they share (windows, payload patterns, evidence, counting).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Play;
use super::log::{EventRec, ObsRec, Records, Us, ms};
use crate::format::duration::format as dur;
use crate::format::expect::ExpectKind;
use crate::format::matching::{glob, matches};
use crate::format::{ClientEvent, Count, ObservationKind};

mod events;
mod media;
mod observed;
mod pages;
mod reconnects;
mod state;

use events::{client_state, event, no_event, order, result, sequence};
use media::media;
use observed::{not_observed, observed};
use pages::pages;
use reconnects::reconnects;
use state::state;

/// Unique name → the SIDs it has stood for.
pub(crate) type NameMap = BTreeMap<String, BTreeSet<String>>;

/// How many records a judgement shows as evidence.
const EVIDENCE: usize = 10;

#[derive(Debug, Clone)]
pub(crate) struct Judged {
    pub passed: bool,
    pub expected: String,
    pub actual: String,
    pub evidence: Vec<Value>,
    /// More records cannot change the result.
    pub fin: bool,
}

/// When an expectation's window starts and, if it has one, ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: Us,
    pub end: Option<Us>,
}

impl Window {
    fn contains(&self, at: Us, now: Us) -> bool {
        at >= self.start && at <= self.end.map_or(now, |e| e.min(now))
    }

    pub fn closed(&self, now: Us) -> bool {
        self.end.is_some_and(|e| now >= e)
    }
}

fn us(d: Duration) -> Us {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The window of an expectation: from its `since` mark (else `default_start`) for its
/// `within`/`for`. `Err` names a mark that was not reached.
pub(crate) fn window(kind: &ExpectKind, default_start: Us, records: &Records) -> Result<Window, super::error::WindowError> {
    let start = match kind.since() {
        Some(mark) => records
            .mark(mark)
            .ok_or_else(|| super::error::WindowError::MarkNotReached(mark.to_string()))?,
        None => default_start,
    };
    Ok(Window {
        start,
        end: kind.window().map(|d| start.saturating_add(us(d))),
    })
}

/// Whether a client event's payload contains `pattern`. A `conversation` written as a unique
/// name matches the SID the event carries (or its `unique_name`).
pub(crate) fn payload_matches(pattern: Option<&Map<String, Value>>, payload: &Value, names: &NameMap) -> bool {
    let Some(pattern) = pattern else { return true };
    pattern.iter().all(|(k, p)| {
        let actual = payload.get(k);
        if k == "conversation" {
            if let (Value::String(name), Some(Value::String(sid))) = (p, actual) {
                return glob(name, sid)
                    || names.get(name).is_some_and(|sids| sids.contains(sid))
                    || payload.get("unique_name").and_then(Value::as_str) == Some(name.as_str());
            }
        }
        actual.is_some_and(|a| matches(p, a))
    })
}

fn pattern_text(m: Option<&Map<String, Value>>) -> String {
    match m {
        Some(m) if !m.is_empty() => format!(" matching {}", Value::Object(m.clone())),
        _ => String::new(),
    }
}

fn event_evidence(e: &EventRec) -> Value {
    let mut v = e.payload.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("at_ms".into(), ms(e.at).into());
        o.entry("event").or_insert_with(|| e.name.clone().into());
    }
    v
}

fn obs_evidence(o: &ObsRec) -> Value {
    json!({ "at_ms": ms(o.at), "observed": o.kind, "identity": o.identity, "detail": o.detail, "summary": o.summary })
}

fn event_name(e: ClientEvent) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn obs_name(k: ObservationKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn window_text(w: &Window, since: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(m) = since {
        write!(s, " after mark `{m}`").ok();
    }
    if let Some(end) = w.end {
        write!(s, " within {}", dur(Duration::from_micros(end - w.start))).ok();
    }
    s
}

/// The identity a scenario client connects as.
fn identity_of<'a>(play: &'a Play<'_>, client: &'a str) -> &'a str {
    play.scenario.client(client).map_or(client, |c| c.identity())
}

/// Judges one expectation at `now`.
pub(crate) fn judge(play: &Play<'_>, kind: &ExpectKind, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
    match kind {
        ExpectKind::Event(x) => event(x, w, now, r, names),
        ExpectKind::NoEvent(x) => no_event(play, x, w, now, r, names),
        ExpectKind::Order(x) => order(play, x, w, now, r, names),
        ExpectKind::Sequence(x) => sequence(x, w, now, r, names),
        ExpectKind::ClientState(x) => client_state(play, x, w, now, r, names),
        ExpectKind::Result(x) => result(play, x, w, now, r, names),
        ExpectKind::Observed(x) => observed(play, x, w, now, r),
        ExpectKind::NotObserved(x) => not_observed(play, x, w, now, r, names),
        ExpectKind::Reconnects(x) => reconnects(play, x, w, now, r),
        ExpectKind::Pages(x) => pages(play, x, w, now, r, names),
        ExpectKind::Media(x) => media(play, x, w, now, r),
        ExpectKind::State(x) => state(play, x),
    }
}

fn summarize_event(e: &EventRec) -> String {
    let p = &e.payload;
    let mut s = e.name.clone();
    for k in ["state", "index", "identity", "body"] {
        if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
            write!(s, " {k}={}", truncate(&v.to_string(), 40)).ok();
        }
    }
    s
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn count_text(c: Count) -> String {
    match (c.min, c.max) {
        (1, None) => "at least once".into(),
        (0, Some(0)) => "never".into(),
        (1, Some(1)) => "exactly once".into(),
        _ => format!("{c} times"),
    }
}

/// How a count expectation words what it saw: `it reported message_added …`.
struct Seen<'a> {
    verb: &'a str,
    name: &'a str,
    sep: &'a str,
}

/// Judges a count over `same` (records of the right kind in the window) and `hits` (those that
/// also match): the count holds, or what came instead (the near misses when nothing matched);
/// the evidence is the hits, else the near misses.
#[allow(clippy::too_many_arguments)]
fn counted<T>(
    count: Count,
    w: Window,
    now: Us,
    expected: String,
    seen: Seen<'_>,
    same: &[&T],
    hits: &[&T],
    summary: impl Fn(&T) -> String,
    evidence: impl Fn(&T) -> Value,
) -> Judged {
    let n = hits.len() as u64;
    let passed = count.contains(n);
    let actual = if passed {
        String::new()
    } else if n == 0 && !same.is_empty() {
        let near: Vec<String> = same.iter().take(5).map(|r| summary(r)).collect();
        format!(
            "{} {} {} time(s), none matching: [{}]",
            seen.verb,
            seen.name,
            same.len(),
            near.join(seen.sep)
        )
    } else {
        format!("{} it {n} time(s)", seen.verb)
    };
    let shown = if hits.is_empty() { same } else { hits };
    Judged {
        passed,
        expected,
        actual,
        evidence: shown.iter().take(EVIDENCE).map(|r| evidence(r)).collect(),
        fin: count.max.is_some_and(|m| n > m) || (passed && count.max.is_none()) || w.closed(now),
    }
}

/// A payload field by dotted path; a number picks an array element.
fn field<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, seg| match v {
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(seg),
    })
}
