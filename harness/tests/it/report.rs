//! The reporters on a hand-built run: snapshots (redacted), the JSON schema, the HTML page's
//! structure, exit codes.
use rehearsal_harness::report::{Collector, HumanReporter, ReportKind, Reporter, human};
use rehearsal_harness::{Redactor, RunEvent, exit};
use serde_json::Value;

use crate::support::sample_report;

fn redacted() -> rehearsal_harness::RunReport {
    Redactor::new().report(&sample_report())
}

pub fn report_schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("../../schema/report.schema.json")).unwrap();
    jsonschema::validator_for(&schema).expect("the report schema is a valid JSON Schema")
}

pub fn assert_valid_report(json: &str) {
    let doc: Value = serde_json::from_str(json).expect("the JSON report is JSON");
    let validator = report_schema();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the report does not match harness/schema/report.schema.json:\n{}",
        errors.join("\n")
    );
}

#[test]
fn json_report_matches_its_schema_redacted_or_not() {
    assert_valid_report(&ReportKind::Json.render(&sample_report()));
    assert_valid_report(&ReportKind::Json.render(&redacted()));
}

#[test]
fn json_report_snapshot() {
    insta::assert_snapshot!("report_json", ReportKind::Json.render(&redacted()));
}

#[test]
fn junit_report_snapshot_and_well_formed() {
    let xml = ReportKind::Junit.render(&redacted());
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut testcases = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"testcase" => testcases += 1,
            _ => {}
        }
    }
    assert_eq!(testcases, 6);
    assert!(xml.contains("<failure message=\"`delivered exactly once` failed: no such event in 5s\" type=\"FAILED\">"));
    assert!(
        xml.contains("<skipped message=\"deviation: the SDK drops token updates while disconnecting (https://example.com/issues/7)\"/>")
    );
    assert!(!xml.contains('\u{1b}'), "ANSI escapes are removed");
    insta::assert_snapshot!("report_junit", xml);
}

#[test]
fn human_summary_snapshot() {
    insta::assert_snapshot!("report_human", human::summary(&redacted()));
}

#[test]
fn human_reporter_prints_a_line_per_scenario_then_the_summary() {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let mut r = HumanReporter::new(Box::new(out.clone()), false);
    let report = redacted();
    r.event(&RunEvent::RunStarted {
        total: 7,
        info: report.info.clone(),
    });
    for (index, result) in report.results.iter().enumerate() {
        r.event(&RunEvent::ScenarioFinished {
            index,
            result: result.clone(),
        });
    }
    r.event(&RunEvent::RunFinished {
        summary: report.summary.clone(),
    });
    r.finish().unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    insta::assert_snapshot!("report_human_stream", text);
}

#[test]
fn html_report_is_one_self_contained_page() {
    let html = ReportKind::Html.render(&redacted());
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["<script", "<link", "src=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "no external asset: found {external}");
    }
    assert!(html.contains("<table class=\"matrix\">"));
    // One row per area, one column per verdict.
    for area in ["connection", "token", "media", "typing"] {
        assert!(html.contains(&format!("<tr><th>{area}</th>")), "{area}");
    }
    for verdict in ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"] {
        assert!(html.contains(&format!("<th>{verdict}</th>")));
    }
    // Every scenario: an anchor, a sequence diagram with three lanes, its expectations.
    assert_eq!(html.matches("<details class=\"scenario\"").count(), 6);
    assert_eq!(html.matches("<svg ").count(), 6);
    assert!(html.contains("<a href=\"#s-connection.drop-replays-missed-messages\""));
    assert!(html.contains(">client</text>") && html.contains(">harness</text>") && html.contains(">server</text>"));
    // Failed scenarios are open; text is escaped.
    assert!(html.contains("id=\"s-connection.drop-replays-missed-messages\" open>"));
    assert!(html.contains("session_closed &lt;dropped&gt; &amp; gone"));
    assert!(!html.contains("<dropped>"));
    // The not-run list.
    assert!(html.contains("<h2>Not run (--fail-fast)</h2>"));
    insta::assert_snapshot!(
        "report_html_diagram",
        rehearsal_harness::report::html::sequence_diagram(&redacted().results[0].outcome)
    );
}

#[test]
fn reporters_rebuild_the_run_from_events() {
    let report = sample_report();
    let mut c = Collector::default();
    c.event(&RunEvent::RunStarted {
        total: 7,
        info: report.info.clone(),
    });
    assert!(c.report().is_none(), "incomplete until RunFinished");
    // Finished out of order (parallel): reported in library order.
    for (index, result) in report.results.iter().enumerate().rev() {
        c.event(&RunEvent::ScenarioFinished {
            index,
            result: result.clone(),
        });
    }
    c.event(&RunEvent::RunFinished {
        summary: report.summary.clone(),
    });
    let rebuilt = c.report().unwrap();
    let ids = |r: &rehearsal_harness::RunReport| r.results.iter().map(|x| x.outcome.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rebuilt), ids(&report));
}

#[test]
fn exit_codes_follow_verdicts_and_deviations() {
    use rehearsal_harness::RunSummary;
    use std::time::Duration;
    let report = sample_report();
    let s = &report.summary;
    assert_eq!(
        (s.ok, s.non_strict, s.informational, s.unimplemented, s.failed, s.deviated),
        (1, 1, 1, 1, 2, 1)
    );
    assert_eq!(s.exit_code, exit::FAILED, "an undeviated FAILED fails the run");
    // Without it: NON-STRICT, INFORMATIONAL, UNIMPLEMENTED and a deviated FAILED pass.
    let rest: Vec<_> = report.results[1..].to_vec();
    assert_eq!(RunSummary::of(5, &rest, vec![], Duration::ZERO).exit_code, exit::OK);
    assert_eq!(RunSummary::of(0, &[], vec![], Duration::ZERO).exit_code, exit::OK);
    assert_eq!((exit::OK, exit::FAILED, exit::ERROR), (0, 1, 2));
}

#[test]
fn long_details_are_clipped_for_reports() {
    let mut o = sample_report().results[0].outcome.clone();
    o.timeline[0].detail = serde_json::json!({"media": {"base64": "A".repeat(100_000)}, "ok": "short"});
    let o = rehearsal_harness::runner::clip_outcome(o);
    let b64 = o.timeline[0].detail["media"]["base64"].as_str().unwrap();
    assert!(b64.len() < 4200 && b64.ends_with("…[95904 more bytes]"), "{}", &b64[4000..]);
    assert_eq!(o.timeline[0].detail["ok"], "short");
}
