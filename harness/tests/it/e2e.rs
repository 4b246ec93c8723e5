//! End to end: library scenarios played by the real engine against the reference adapter
//! (`adapters/twilio-conversations-js`, the official SDK), with every report written.
use std::path::{Path, PathBuf};
use std::process::Command;

use rehearsal_harness::report::{FileReporter, ReportKind, ReportSpec};
use rehearsal_harness::{Reporter, RunOptions, Selection, exit};
use rehearsal_scenarios::outcome::Verdict;

/// Driven and observed scenarios from several areas that the clean adapter passes quickly.
const SCENARIOS: [&str; 5] = [
    "messaging.send-reaches-others",
    "typing.ended-by-message",
    "pagination.anchor-in-the-middle",
    "token.stale-token-at-start",
    "pagination.conversation-list-pages",
];

fn adapter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/twilio-conversations-js")
}

/// `npm ci` in the adapter's folder when its packages are missing (scripts/test.sh installs
/// them first; this makes `cargo test` alone work too, as the adapter's self-test does).
fn ensure_adapter_installed() {
    let dir = adapter_dir();
    if dir.join("node_modules/@twilio/conversations").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("npm runs (Node 20+ is needed for the reference adapter)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_scenarios_against_the_reference_adapter() {
    ensure_adapter_installed();
    let out = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(format!("node '{}'", adapter_dir().join("adapter.mjs").display()));
    opts.selection = Selection {
        globs: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        areas: vec![],
    };
    opts.jobs = 2;
    let reporters: Vec<Box<dyn Reporter>> = ReportKind::ALL
        .into_iter()
        .map(|kind| {
            Box::new(FileReporter::new(ReportSpec {
                kind,
                path: out.path().join(format!("report.{kind}")),
            })) as Box<dyn Reporter>
        })
        .collect();
    let report = rehearsal_harness::run(opts, reporters).await.expect("the run runs");

    let client = report.info.client.as_ref().expect("the reference adapter answers hello");
    assert_eq!((client.name.as_str(), client.protocol), ("twilio-conversations-js", 1));
    assert_eq!(report.results.len(), SCENARIOS.len());
    for r in &report.results {
        assert_eq!(
            r.outcome.verdict,
            Verdict::Ok,
            "{}: {:?}\n{}",
            r.outcome.id,
            r.outcome.reason,
            rehearsal_harness::report::human::failure(r)
        );
        assert!(!r.outcome.timeline.is_empty(), "{} has a timeline", r.outcome.id);
    }
    assert_eq!(report.exit_code(), exit::OK);

    let json = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    crate::report::assert_valid_report(&json);
    let xml = std::fs::read_to_string(out.path().join("report.junit")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), SCENARIOS.len());
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<svg ").count(), SCENARIOS.len());
}
