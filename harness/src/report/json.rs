//! The JSON report: stable and documented by `harness/schema/report.schema.json`.
//!
//! ```text
//! { "format": "rehearsal-run-report", "version": 1,
//!   "run":     { harness_version, protocol, command, client: {name, version, protocol, capabilities} | null,
//!                jobs, started_at, deviations },
//!   "summary": { total, ok, non_strict, informational, unimplemented, failed, deviated, not_run: [id],
//!                duration_ms, exit_code },
//!   "scenarios": [ { id, title, area, verdict, reason, duration (ms), steps, expectations, timeline,
//!                    stderr, deviated, deviation? } ] }   // library order
//! ```
//!
//! Additive changes (new fields) keep `version`; anything else bumps it.
use serde::Serialize;

use crate::events::{RunInfo, RunReport, RunSummary, ScenarioResult};

pub const FORMAT: &str = "rehearsal-run-report";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    version: u32,
    run: &'a RunInfo,
    summary: &'a RunSummary,
    scenarios: &'a [ScenarioResult],
}

/// The report as pretty-printed JSON (with a final newline).
pub fn render(report: &RunReport) -> String {
    let doc = JsonReport {
        format: FORMAT,
        version: VERSION,
        run: &report.info,
        summary: &report.summary,
        scenarios: &report.results,
    };
    let mut out = serde_json::to_string_pretty(&doc).expect("reports serialise");
    out.push('\n');
    out
}
