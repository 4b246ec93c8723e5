//! What clients reported: `event`, `no_event`, `order`, `sequence`, `client_state`, `result`.
use std::fmt::Write;

use serde_json::{Value, json};

use super::{
    EVIDENCE, Judged, NameMap, Seen, Window, count_text, counted, event_evidence, event_name, field, pattern_text, payload_matches,
    summarize_event, truncate, window_text,
};
use crate::engine::Play;
use crate::engine::log::{EventRec, Records, Reply, Us, ms};
use crate::format::Count;
use crate::format::duration::format as dur;
use crate::format::expect::{ClientStateExpect, EventExpect, NoEventExpect, OrderExpect, ResultExpect, SequenceExpect};
use crate::format::matching::matches;

pub(super) fn event(x: &EventExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
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

pub(super) fn sequence(x: &SequenceExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
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

pub(super) fn no_event(_play: &Play<'_>, x: &NoEventExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
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

pub(super) fn order(_play: &Play<'_>, x: &OrderExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
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

pub(super) fn client_state(_play: &Play<'_>, x: &ClientStateExpect, _w: Window, _now: Us, r: &Records, _names: &NameMap) -> Judged {
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

pub(super) fn result(_play: &Play<'_>, x: &ResultExpect, _w: Window, _now: Us, r: &Records, _names: &NameMap) -> Judged {
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
