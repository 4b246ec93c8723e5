//! Judging expectations against the play's record: what was expected, what happened, and the
//! events or observations that decided it, in words a report can show.
//!
//! Every judgement also says whether it is *final*: a window that has closed, a negative
//! expectation already broken, a positive one already met that more records cannot undo (no
//! upper bound on its count). The engine waits on the others (see `run`).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Play;
use super::log::{EventRec, ObsRec, Records, Reply, Us, ms};
use super::tenant;
use crate::format::duration::format as dur;
use crate::format::expect::{
    EventExpect, ExpectKind, MediaDirection, MediaExpect, ObservedExpect, PagesExpect, ReconnectsExpect, SequenceExpect, StateExpect,
};
use crate::format::matching::{glob, matches};
use crate::format::{ClientEvent, Count, ObservationKind};

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
pub(crate) fn window(kind: &ExpectKind, default_start: Us, records: &Records) -> Result<Window, super::EngineError> {
    let start = match kind.since() {
        Some(mark) => records
            .mark(mark)
            .ok_or_else(|| super::EngineError::MarkNotReached(mark.to_string()))?,
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
        ExpectKind::NoEvent(x) => {
            let name = event_name(x.event);
            let hits: Vec<&EventRec> = r
                .events
                .iter()
                .filter(|e| e.client == x.client && e.name == name && w.contains(e.at, now))
                .filter(|e| payload_matches(x.matches.as_ref(), &e.payload, names))
                .collect();
            let expected = format!(
                "{} does not report {name}{} for {}{}",
                x.client,
                pattern_text(x.matches.as_ref()),
                dur(x.duration),
                x.since.as_deref().map(|m| format!(" after mark `{m}`")).unwrap_or_default()
            );
            let passed = hits.is_empty();
            Judged {
                passed,
                actual: if passed {
                    String::new()
                } else {
                    format!("reported it {} time(s), first at {} ms", hits.len(), ms(hits[0].at))
                },
                expected,
                evidence: hits.iter().take(EVIDENCE).map(|e| event_evidence(e)).collect(),
                fin: !passed || w.closed(now),
            }
        }
        ExpectKind::Order(x) => {
            let mut found = Vec::new();
            let mut next = 0;
            for e in r.events.iter().filter(|e| e.client == x.client && w.contains(e.at, now)) {
                let Some(p) = x.events.get(next) else { break };
                if e.name == event_name(p.event) && payload_matches(p.matches.as_ref(), &e.payload, names) {
                    found.push(e);
                    next += 1;
                }
            }
            let wanted: Vec<String> = x
                .events
                .iter()
                .map(|p| format!("{}{}", event_name(p.event), pattern_text(p.matches.as_ref())))
                .collect();
            let passed = next == x.events.len();
            let actual = if passed {
                String::new()
            } else {
                let seen: Vec<String> = r
                    .events
                    .iter()
                    .filter(|e| e.client == x.client && w.contains(e.at, now))
                    .take(20)
                    .map(summarize_event)
                    .collect();
                format!(
                    "only the first {next} came in that order; missing {}; reported: [{}]",
                    wanted[next],
                    seen.join(", ")
                )
            };
            Judged {
                passed,
                expected: format!(
                    "{} reports, in this order: {}{}",
                    x.client,
                    wanted.join(" → "),
                    window_text(&w, x.since.as_deref())
                ),
                actual,
                evidence: found.iter().map(|e| event_evidence(e)).collect(),
                fin: passed || w.closed(now),
            }
        }
        ExpectKind::Sequence(x) => sequence(x, w, now, r, names),
        ExpectKind::ClientState(x) => {
            let last = r.events.iter().rev().find(|e| e.client == x.client && e.name == "connection_state");
            let want = serde_json::to_value(x.connection).unwrap_or(Value::Null);
            let got = last.and_then(|e| e.payload.get("state")).cloned();
            let passed = got.as_ref() == Some(&want);
            Judged {
                passed,
                expected: format!("{}'s last connection state is {}", x.client, want.as_str().unwrap_or_default()),
                actual: match &got {
                    _ if passed => String::new(),
                    Some(s) => format!("it is {}", s.as_str().unwrap_or_default()),
                    None => "it reported no connection state".into(),
                },
                evidence: last.map(event_evidence).into_iter().collect(),
                fin: false,
            }
        }
        ExpectKind::Result(x) => {
            let cmd = r.commands.iter().rev().find(|c| c.label.as_deref() == Some(x.command.as_str()));
            let mut expected = format!("command `{}`", x.command);
            if let Some(o) = x.outcome {
                let word = serde_json::to_value(o)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                write!(expected, " ends {word}").ok();
            }
            if let Some(m) = &x.matches {
                write!(expected, " with a result{}", pattern_text(Some(m))).ok();
            }
            let (passed, actual, evidence) = match cmd.and_then(|c| c.answer.as_ref()) {
                None => (
                    false,
                    if cmd.is_some() {
                        "no answer yet"
                    } else {
                        "the command did not run"
                    }
                    .to_owned(),
                    Vec::new(),
                ),
                Some((_, reply)) => {
                    let outcome_ok = match x.outcome {
                        None | Some(crate::format::Outcome::Any) => true,
                        Some(crate::format::Outcome::Ok) => matches!(reply, Reply::Ok(_)),
                        Some(crate::format::Outcome::Error) => matches!(reply, Reply::Error(_)),
                    };
                    let value = reply.value();
                    let match_ok = x.matches.as_ref().is_none_or(|m| matches(&Value::Object(m.clone()), &value));
                    let passed = outcome_ok && match_ok;
                    let actual = if passed {
                        String::new()
                    } else {
                        format!("it ended {}: {}", reply.word(), truncate(&value.to_string(), 300))
                    };
                    (passed, actual, vec![json!({ "outcome": reply.word(), "value": value })])
                }
            };
            Judged {
                passed,
                expected,
                actual,
                evidence,
                fin: cmd.is_some_and(|c| c.answer.is_some()),
            }
        }
        ExpectKind::Observed(x) => observed(play, x, w, now, r),
        ExpectKind::NotObserved(x) => {
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

fn event(x: &EventExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
    let name = event_name(x.event);
    let count = x.count.unwrap_or(Count::AT_LEAST_ONE);
    let same: Vec<&EventRec> = r
        .events
        .iter()
        .filter(|e| e.client == x.client && e.name == name && w.contains(e.at, now))
        .collect();
    let hits: Vec<&EventRec> = same
        .iter()
        .copied()
        .filter(|e| payload_matches(x.matches.as_ref(), &e.payload, names))
        .collect();
    let expected = format!(
        "{} reports {name}{} {}{}",
        x.client,
        pattern_text(x.matches.as_ref()),
        count_text(count),
        window_text(&w, x.since.as_deref())
    );
    let seen = Seen {
        verb: "it reported",
        name: &name,
        sep: ", ",
    };
    counted(count, w, now, expected, seen, &same, &hits, summarize_event, event_evidence)
}

fn count_text(c: Count) -> String {
    match (c.min, c.max) {
        (1, None) => "at least once".into(),
        (0, Some(0)) => "never".into(),
        (1, Some(1)) => "exactly once".into(),
        _ => format!("{c} times"),
    }
}

fn observed(play: &Play<'_>, x: &ObservedExpect, w: Window, now: Us, r: &Records) -> Judged {
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

fn sequence(x: &SequenceExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
    let name = event_name(x.event);
    let mut lists: Vec<(String, Vec<Value>)> = Vec::new();
    for client in &x.clients {
        let values = r
            .events
            .iter()
            .filter(|e| &e.client == client && e.name == name && w.contains(e.at, now))
            .filter(|e| payload_matches(x.matches.as_ref(), &e.payload, names))
            .map(|e| field(&e.payload, &x.field).cloned().unwrap_or(Value::Null))
            .collect();
        lists.push((client.clone(), values));
    }
    let mut problems = Vec::new();
    for (client, values) in &lists {
        if let Some(want) = &x.values {
            if !matches(&Value::Array(want.clone()), &Value::Array(values.clone())) {
                problems.push(format!(
                    "{client}'s are {}",
                    truncate(&Value::Array(values.clone()).to_string(), 200)
                ));
            }
        }
        if x.contiguous {
            if values.is_empty() {
                problems.push(format!("{client} reported none"));
            }
            let ints: Option<Vec<i64>> = values.iter().map(Value::as_i64).collect();
            match ints {
                None => problems.push(format!("{client}'s are not all integers")),
                Some(ints) => {
                    if let Some(p) = ints.windows(2).position(|p| p[0].checked_add(1) != Some(p[1])) {
                        problems.push(format!("{client}'s jump from {} to {} (position {})", ints[p], ints[p + 1], p + 1));
                    }
                }
            }
        }
    }
    if lists.len() > 1 {
        let first = &lists[0];
        for other in &lists[1..] {
            if other.1 != first.1 {
                problems.push(format!(
                    "{} and {} differ ({} vs {} values)",
                    first.0,
                    other.0,
                    first.1.len(),
                    other.1.len()
                ));
            }
        }
    }
    let mut expected = format!(
        "the {} of every {name}{} reported by {}",
        x.field,
        pattern_text(x.matches.as_ref()),
        x.clients.join(", ")
    );
    if let Some(v) = &x.values {
        write!(expected, " is {}", truncate(&Value::Array(v.clone()).to_string(), 200)).ok();
    }
    if x.contiguous {
        expected.push_str(if x.values.is_some() {
            ", contiguous"
        } else {
            " is a contiguous run"
        });
    }
    if x.clients.len() > 1 {
        expected.push_str(", the same for each");
    }
    expected.push_str(&window_text(&w, x.since.as_deref()));
    let passed = problems.is_empty();
    Judged {
        passed,
        expected,
        actual: problems.join("; "),
        evidence: lists.iter().map(|(c, v)| json!({ "client": c, "values": v })).collect(),
        fin: w.closed(now),
    }
}

fn reconnects(play: &Play<'_>, x: &ReconnectsExpect, w: Window, now: Us, r: &Records) -> Judged {
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

/// The indices of the messages that exist now in a conversation.
fn existing(play: &Play<'_>, conversation: &str) -> Option<BTreeSet<u64>> {
    tenant::conversation(play.control, &play.tenant.account, conversation, |c| {
        c.messages.iter().map(|(i, _)| i).collect()
    })
}

fn pages(play: &Play<'_>, x: &PagesExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
    let walks: Vec<(&super::log::CommandRec, &Value)> = r
        .commands
        .iter()
        .filter(|c| c.cmd == "page_messages" && c.client == x.client)
        .filter(|c| match &x.command {
            Some(label) => c.label.as_deref() == Some(label.as_str()),
            None => {
                w.contains(c.sent_at, now)
                    && c.conversation.as_deref().is_some_and(|name| {
                        name == x.conversation
                            || names
                                .get(&x.conversation)
                                .is_some_and(|sids| c.body.get("conversation").and_then(Value::as_str).is_some_and(|s| sids.contains(s)))
                    })
            }
        })
        .filter_map(|c| match &c.answer {
            Some((_, Reply::Ok(v))) => Some((c, v)),
            _ => None,
        })
        .collect();
    let mut expected = format!("the pages {} fetched from {}", x.client, x.conversation);
    if let Some(l) = &x.command {
        write!(expected, " (command `{l}`)").ok();
    }
    match x.covers {
        Some(c) => write!(expected, " hold every message from {} to {} once", c.from, c.to).ok(),
        None => write!(expected, " hold every message once").ok(),
    };
    if let Some(m) = x.max_page_size {
        write!(expected, ", pages of at most {m}").ok();
    }
    let Some(exists) = existing(play, &x.conversation) else {
        return Judged {
            passed: false,
            expected,
            actual: format!("conversation {} does not exist", x.conversation),
            evidence: Vec::new(),
            fin: false,
        };
    };
    let pages: Vec<Vec<Value>> = walks
        .iter()
        .flat_map(|(_, v)| v.get("pages").and_then(Value::as_array).cloned().unwrap_or_default())
        .map(|p| p.as_array().cloned().unwrap_or_default())
        .collect();
    let mut problems = Vec::new();
    if walks.is_empty() {
        problems.push("no page_messages result".to_owned());
    }
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, page) in pages.iter().enumerate() {
        let indices: Vec<Option<u64>> = page.iter().map(Value::as_u64).collect();
        if indices.iter().any(Option::is_none) {
            problems.push(format!("page {i} holds something that is not an index"));
            continue;
        }
        let indices: Vec<u64> = indices.into_iter().flatten().collect();
        if let Some(max) = x.max_page_size {
            if indices.len() > max as usize {
                problems.push(format!("page {i} holds {} messages", indices.len()));
            }
        }
        if indices.windows(2).any(|p| p[1] <= p[0]) {
            problems.push(format!("page {i} is not in ascending order"));
        }
        for idx in indices {
            *seen.entry(idx).or_default() += 1;
        }
    }
    let (from, to) = match x.covers {
        Some(c) => (c.from, c.to),
        None => (exists.first().copied().unwrap_or(0), exists.last().copied().unwrap_or(0)),
    };
    let wanted: Vec<u64> = exists.range(from..=to).copied().collect();
    let missing: Vec<u64> = wanted.iter().copied().filter(|i| !seen.contains_key(i)).collect();
    let twice: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(i, _)| *i).collect();
    let strangers: Vec<u64> = seen.keys().copied().filter(|i| !exists.contains(i)).collect();
    if !missing.is_empty() {
        problems.push(format!("{} missing ({})", missing.len(), ranges(&missing)));
    }
    if !twice.is_empty() {
        problems.push(format!("{} more than once ({})", twice.len(), ranges(&twice)));
    }
    if !strangers.is_empty() {
        problems.push(format!("{} not in the conversation ({})", strangers.len(), ranges(&strangers)));
    }
    let passed = problems.is_empty();
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    Judged {
        passed,
        expected,
        actual: if passed {
            String::new()
        } else {
            format!("{} ({} page(s) of sizes {})", problems.join("; "), pages.len(), truncate(&format!("{sizes:?}"), 120))
        },
        evidence: walks
            .iter()
            .map(|(c, v)| json!({ "command": c.body, "pages": v.get("pages").and_then(Value::as_array).map(|p| p.len()), "has_more": v.get("has_more") }))
            .collect(),
        fin: false,
    }
}

/// `3-5, 9` for a sorted list of indices (shortened).
fn ranges(v: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    if parts.len() > 8 {
        let n = parts.len();
        parts.truncate(8);
        parts.push(format!("… {} more runs", n - 8));
    }
    parts.join(", ")
}

fn media(play: &Play<'_>, x: &MediaExpect, w: Window, now: Us, r: &Records) -> Judged {
    let identity = x.client.as_deref().map(|c| identity_of(play, c)).or(x.identity.as_deref());
    let kind = match x.direction {
        MediaDirection::Upload => ObservationKind::MediaUpload,
        MediaDirection::Download => ObservationKind::MediaDownload,
    };
    // A temporary URL names nobody: a download without an identity is the client's if one of
    // its `get_media` commands was running then.
    let fetching = |i: &str, at: Us| {
        r.commands.iter().any(|c| {
            c.cmd == "get_media"
                && identity_of(play, &c.client) == i
                && c.sent_at <= at
                && c.answer.as_ref().is_none_or(|(answered, _)| at <= *answered)
        })
    };
    let all: Vec<&ObsRec> = r
        .observations
        .iter()
        .filter(|o| o.kind == kind && w.contains(o.at, now))
        .filter(|o| {
            identity.is_none_or(|i| match o.identity.as_deref() {
                Some(who) => who == i,
                None => kind == ObservationKind::MediaDownload && fetching(i, o.at),
            })
        })
        .collect();
    let selected: Vec<&ObsRec> = all
        .iter()
        .copied()
        .filter(|o| {
            x.content_type
                .as_ref()
                .is_none_or(|t| o.detail["content_type"].as_str() == Some(t.as_str()))
        })
        .filter(|o| x.size.is_none_or(|s| o.detail["size"].as_u64() == Some(s)))
        .filter(|o| x.status.is_none_or(|s| o.detail["status"].as_u64() == Some(u64::from(s))))
        .collect();
    let count = x.count.unwrap_or(Count::AT_LEAST_ONE);
    let n = selected.len() as u64;
    let mut problems = Vec::new();
    if !count.contains(n) {
        problems.push(format!(
            "{n} such transfer(s) among {} {}(s)",
            all.len(),
            if kind == ObservationKind::MediaUpload {
                "upload"
            } else {
                "download"
            }
        ));
    }
    if x.intact == Some(true) {
        for o in &selected {
            if let Some(p) = not_intact(play, &x.client, o, r) {
                problems.push(p);
            }
        }
    }
    let mut expected = format!(
        "{} {}",
        identity.unwrap_or("anyone"),
        if kind == ObservationKind::MediaUpload {
            "uploads"
        } else {
            "downloads"
        }
    );
    let mut filters = Vec::new();
    if let Some(t) = &x.content_type {
        filters.push(format!("of type {t}"));
    }
    if let Some(s) = x.size {
        filters.push(format!("of {s} bytes"));
    }
    if let Some(s) = x.status {
        filters.push(format!("answered {s}"));
    }
    write!(
        expected,
        " media {}{}",
        count_text(count),
        if filters.is_empty() {
            String::new()
        } else {
            format!(" {}", filters.join(", "))
        }
    )
    .ok();
    if x.intact == Some(true) {
        expected.push_str(", bytes intact");
    }
    let passed = problems.is_empty();
    Judged {
        passed,
        expected,
        actual: problems.join("; "),
        evidence: all.iter().take(EVIDENCE).map(|o| obs_evidence(o)).collect(),
        fin: false,
    }
}

/// Why a download was not intact, if it was not.
fn not_intact(play: &Play<'_>, client: &Option<String>, o: &ObsRec, r: &Records) -> Option<String> {
    let sid = o.detail["media"].as_str()?;
    if o.detail["status"].as_u64() != Some(200) {
        return Some(format!("the download of {sid} answered {}", o.detail["status"]));
    }
    let stored = tenant::read(play.control, &play.tenant.account, |svc| {
        svc.media.get(sid).map(|m| m.bytes.clone())
    })
    .flatten();
    let Some(stored) = stored else {
        return Some(format!("media {sid} is not stored"));
    };
    if let Some(size) = o.detail["size"].as_u64() {
        if size != stored.len() as u64 {
            return Some(format!("{sid}: served {size} bytes of {}", stored.len()));
        }
    }
    let want = hex(&Sha256::digest(&stored));
    let reported = r
        .commands
        .iter()
        .filter(|c| c.cmd == "get_media" && client.as_ref().is_none_or(|n| &c.client == n))
        .filter_map(|c| match &c.answer {
            Some((_, Reply::Ok(v))) if v.get("sid").and_then(Value::as_str).is_none_or(|s| s == sid) => {
                v.get("sha256").and_then(Value::as_str).map(str::to_owned)
            }
            _ => None,
        })
        .collect::<Vec<_>>();
    if !reported.is_empty() && !reported.iter().any(|h| h.eq_ignore_ascii_case(&want)) {
        return Some(format!(
            "{sid}: the client's bytes hash to {} , the stored ones to {want}",
            reported[0]
        ));
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn state(play: &Play<'_>, x: &StateExpect) -> Judged {
    let mut expected = format!("conversation {}", x.conversation);
    let mut parts = Vec::new();
    if let Some(e) = x.exists {
        parts.push(if e { "exists".to_owned() } else { "does not exist".to_owned() });
    }
    if let Some(f) = &x.friendly_name {
        parts.push(format!("is named {f:?}"));
    }
    if let Some(a) = &x.attributes {
        parts.push(format!("has attributes{}", pattern_text(Some(a))));
    }
    if let Some(p) = &x.participants {
        parts.push(format!("has exactly the participants {}", p.join(", ")));
    }
    if let Some(n) = x.message_count {
        parts.push(format!("holds {n} messages"));
    }
    if let Some(m) = &x.last_message {
        parts.push(format!("ends with a message{}", pattern_text(Some(m))));
    }
    if let Some(h) = &x.read_horizon {
        let hs: Vec<String> = h.iter().map(|(k, v)| format!("{k} at {v}")).collect();
        parts.push(format!("has read horizons {}", hs.join(", ")));
    }
    write!(expected, " {}", parts.join(", ")).ok();

    let snapshot = tenant::conversation(play.control, &play.tenant.account, &x.conversation, |c| {
        let mut participants: Vec<String> = c.participants.iter().filter_map(|(_, p)| p.identity.clone()).collect();
        participants.sort();
        let horizons: BTreeMap<String, Option<u64>> = c
            .participants
            .iter()
            .filter_map(|(_, p)| Some((p.identity.clone()?, p.last_read_message_index)))
            .collect();
        let last = c.messages.iter().next_back().map(|(_, m)| {
            json!({
                "index": m.index, "author": m.author, "body": m.body, "attributes": m.attributes,
                "media": m.media.iter().map(|x| json!({ "sid": x.sid, "content_type": x.content_type, "size": x.size, "filename": x.filename })).collect::<Vec<_>>(),
            })
        });
        json!({
            "sid": c.conversation.sid,
            "friendly_name": c.conversation.friendly_name,
            "attributes": c.conversation.attributes,
            "participants": participants,
            "message_count": c.messages.len(),
            "last_message": last,
            "read_horizon": horizons,
        })
    });
    let mut problems = Vec::new();
    match (&snapshot, x.exists) {
        (None, Some(false)) => {}
        (None, _) => problems.push("it does not exist".to_owned()),
        (Some(_), Some(false)) => problems.push("it still exists".to_owned()),
        (Some(s), _) => {
            if let Some(f) = &x.friendly_name {
                if s["friendly_name"].as_str() != Some(f.as_str()) {
                    problems.push(format!("it is named {}", s["friendly_name"]));
                }
            }
            if let Some(a) = &x.attributes {
                if !matches(&Value::Object(a.clone()), &s["attributes"]) {
                    problems.push(format!("its attributes are {}", s["attributes"]));
                }
            }
            if let Some(p) = &x.participants {
                let mut want = p.clone();
                want.sort();
                if s["participants"] != json!(want) {
                    problems.push(format!("its participants are {}", s["participants"]));
                }
            }
            if let Some(n) = x.message_count {
                if s["message_count"].as_u64() != Some(n) {
                    problems.push(format!("it holds {} messages", s["message_count"]));
                }
            }
            if let Some(m) = &x.last_message {
                if !matches(&Value::Object(m.clone()), &s["last_message"]) {
                    problems.push(format!("its last message is {}", truncate(&s["last_message"].to_string(), 300)));
                }
            }
            if let Some(h) = &x.read_horizon {
                for (identity, want) in h {
                    let got = s["read_horizon"].get(identity);
                    if got.and_then(Value::as_u64) != Some(*want) {
                        problems.push(format!(
                            "{identity}'s read horizon is {}",
                            got.map_or("absent (not a participant)".to_owned(), Value::to_string)
                        ));
                    }
                }
            }
        }
    }
    let passed = problems.is_empty();
    Judged {
        passed,
        expected,
        actual: problems.join("; "),
        evidence: snapshot.into_iter().collect(),
        fin: false,
    }
}
