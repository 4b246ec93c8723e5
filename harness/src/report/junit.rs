//! JUnit XML: one `<testsuite>` per area, one `<testcase>` per scenario (`classname` = area).
//!
//! - FAILED → `<failure message="reason" type="FAILED">` with every failed expectation;
//! - UNIMPLEMENTED, and any deviated scenario that did not pass → `<skipped message=…>`, so CI
//!   dashboards do not count them as failures (the verdict stays in the properties);
//! - OK, NON-STRICT, INFORMATIONAL → a passing test case (warnings in `<system-out>`).
//!
//! Properties of each test case: `verdict`, `deviated`, `deviation` (reason and link),
//! `evidence` (the failed expectations' evidence as JSON). `<system-err>` holds the adapter's
//! stderr. Text is escaped by quick-xml; characters XML 1.0 cannot carry (and ANSI colour
//! sequences) are removed first.
use std::time::Duration;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use rehearsal_scenarios::outcome::ExpectationGrade;
use rehearsal_scenarios::outcome::Verdict;

use super::{areas, verdict_name};
use crate::events::{RunReport, ScenarioResult};

/// Longest `evidence` property value, in characters.
const EVIDENCE_LIMIT: usize = 8 * 1024;

pub fn render(report: &RunReport) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write(&mut w, report).expect("writing to memory does not fail");
    let mut out = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    out.push('\n');
    out
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    skipped: usize,
    time: Duration,
}

enum Kind {
    Pass,
    Failure,
    Skipped(String),
}

fn kind(r: &ScenarioResult) -> Kind {
    let o = &r.outcome;
    match (o.verdict, &r.deviation) {
        (Verdict::Failed | Verdict::Unimplemented, Some(d)) => Kind::Skipped(match &d.link {
            Some(link) => format!("deviation: {} ({link})", d.reason),
            None => format!("deviation: {}", d.reason),
        }),
        (Verdict::Failed, None) => Kind::Failure,
        (Verdict::Unimplemented, None) => Kind::Skipped(o.reason.clone().unwrap_or_else(|| "unimplemented".to_owned())),
        _ => Kind::Pass,
    }
}

fn counts<'a>(results: impl Iterator<Item = &'a ScenarioResult>) -> Counts {
    let mut c = Counts::default();
    for r in results {
        c.tests += 1;
        c.time += r.outcome.duration;
        match kind(r) {
            Kind::Failure => c.failures += 1,
            Kind::Skipped(_) => c.skipped += 1,
            Kind::Pass => {}
        }
    }
    c
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn write(w: &mut Writer<Vec<u8>>, report: &RunReport) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let all = counts(report.results.iter());
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "rehearsal"));
    push_counts(&mut root, &all, Duration::from_millis(report.summary.duration_ms));
    w.write_event(Event::Start(root))?;
    for area in areas(&report.results) {
        let in_area: Vec<&ScenarioResult> = report.results.iter().filter(|r| r.outcome.area == area).collect();
        let c = counts(in_area.iter().copied());
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", area.as_str()));
        push_counts(&mut suite, &c, c.time);
        suite.push_attribute(("timestamp", clean(&report.info.started_at).as_str()));
        w.write_event(Event::Start(suite))?;
        w.write_event(Event::Start(BytesStart::new("properties")))?;
        property(w, "command", &report.info.command)?;
        if let Some(client) = &report.info.client {
            property(w, "implementation", &format!("{} {}", client.name, client.version))?;
        }
        w.write_event(Event::End(BytesEnd::new("properties")))?;
        for r in in_area {
            testcase(w, r)?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    Ok(())
}

fn push_counts(e: &mut BytesStart, c: &Counts, time: Duration) {
    e.push_attribute(("tests", c.tests.to_string().as_str()));
    e.push_attribute(("failures", c.failures.to_string().as_str()));
    e.push_attribute(("errors", "0"));
    e.push_attribute(("skipped", c.skipped.to_string().as_str()));
    e.push_attribute(("time", secs(time).as_str()));
}

fn property(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> std::io::Result<()> {
    let mut p = BytesStart::new("property");
    p.push_attribute(("name", name));
    p.push_attribute(("value", clean(value).as_str()));
    w.write_event(Event::Empty(p))
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> std::io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))?;
    let text = clean(text);
    w.write_event(Event::Text(BytesText::new(&text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn testcase(w: &mut Writer<Vec<u8>>, r: &ScenarioResult) -> std::io::Result<()> {
    let o = &r.outcome;
    let mut tc = BytesStart::new("testcase");
    tc.push_attribute(("name", o.id.as_str()));
    tc.push_attribute(("classname", o.area.as_str()));
    tc.push_attribute(("time", secs(o.duration).as_str()));
    w.write_event(Event::Start(tc))?;

    w.write_event(Event::Start(BytesStart::new("properties")))?;
    property(w, "verdict", verdict_name(o.verdict))?;
    property(w, "deviated", if r.deviated { "true" } else { "false" })?;
    if let Some(d) = &r.deviation {
        property(w, "deviation", &d.reason)?;
        if let Some(link) = &d.link {
            property(w, "deviation_link", link)?;
        }
    }
    let evidence: Vec<serde_json::Value> = o
        .expectations
        .iter()
        .filter(|e| !e.passed)
        .map(|e| serde_json::json!({"label": e.label, "evidence": e.evidence}))
        .collect();
    if !evidence.is_empty() {
        let mut text = serde_json::Value::Array(evidence).to_string();
        if text.chars().count() > EVIDENCE_LIMIT {
            text = text.chars().take(EVIDENCE_LIMIT).collect::<String>() + "…";
        }
        property(w, "evidence", &text)?;
    }
    w.write_event(Event::End(BytesEnd::new("properties")))?;

    match kind(r) {
        Kind::Failure => {
            let mut f = BytesStart::new("failure");
            let reason = o.reason.clone().unwrap_or_else(|| "failed".to_owned());
            f.push_attribute(("message", clean(&reason).as_str()));
            f.push_attribute(("type", "FAILED"));
            w.write_event(Event::Start(f))?;
            let text = clean(&failure_text(r));
            w.write_event(Event::Text(BytesText::new(&text)))?;
            w.write_event(Event::End(BytesEnd::new("failure")))?;
        }
        Kind::Skipped(message) => {
            let mut s = BytesStart::new("skipped");
            s.push_attribute(("message", clean(&message).as_str()));
            w.write_event(Event::Empty(s))?;
        }
        Kind::Pass => {}
    }
    let out = expectations_text(r);
    if !out.is_empty() {
        text_element(w, "system-out", &out)?;
    }
    if !o.stderr.is_empty() {
        text_element(w, "system-err", &o.stderr)?;
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

/// The failed `must` expectations (and the reason), for the `<failure>` body.
fn failure_text(r: &ScenarioResult) -> String {
    let o = &r.outcome;
    let mut out = String::new();
    if let Some(reason) = &o.reason {
        out.push_str(reason);
        out.push('\n');
    }
    for e in o.expectations.iter().filter(|e| !e.passed && e.grade == ExpectationGrade::Must) {
        out.push_str(&format!(
            "\n✗ {} ({})\n  expected: {}\n  actual:   {}\n",
            e.label, e.kind, e.expected, e.actual
        ));
    }
    out
}

/// Every expectation, one line each, for `<system-out>`.
fn expectations_text(r: &ScenarioResult) -> String {
    r.outcome
        .expectations
        .iter()
        .map(|e| {
            let mark = if e.passed { "✓" } else { "✗" };
            let grade = format!("{:?}", e.grade).to_lowercase();
            if e.passed {
                format!("{mark} [{grade}] {}\n", e.label)
            } else {
                format!("{mark} [{grade}] {}: expected {}; actual {}\n", e.label, e.expected, e.actual)
            }
        })
        .collect()
}

/// Removes what XML 1.0 cannot carry: ANSI escape sequences and control characters other
/// than tab, newline and carriage return (and the non-characters U+FFFE/U+FFFF).
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        let allowed = matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
        if allowed {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_drops_what_xml_cannot_carry() {
        assert_eq!(clean("a\u{1b}[31mred\u{1b}[0m\u{0}\u{7}b\tc\n"), "aredb\tc\n");
        assert_eq!(clean("<&>\"'"), "<&>\"'");
    }
}
