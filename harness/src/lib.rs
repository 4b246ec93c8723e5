//! Rehearsal's conformance harness: plays the scenario library against any client wrapped in an
//! adapter that speaks the driver protocol (`harness/PROTOCOL.md`), in parallel, and reports
//! per scenario a verdict (OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED) with evidence.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rehearsal_harness::RunError> {
//! use rehearsal_harness::report::{FileReporter, HumanReporter, ReportKind, ReportSpec};
//! let opts = rehearsal_harness::RunOptions::new("node adapters/twilio-conversations-js/adapter.mjs");
//! let reporters: Vec<Box<dyn rehearsal_harness::Reporter>> = vec![
//!     Box::new(HumanReporter::new(Box::new(std::io::stdout()), false)),
//!     Box::new(FileReporter::new(ReportSpec { kind: ReportKind::Junit, path: "rehearsal.xml".into() })),
//! ];
//! let report = rehearsal_harness::run(opts, reporters).await?;
//! std::process::exit(report.exit_code().into());
//! # }
//! ```
//!
//! Layout:
//! - `process`: [`ProcessDriver`], the engine's `ClientDriver` over an adapter process.
//! - `runner`: [`run`] — one in-process server, selection, parallel scheduling, deviations,
//!   [`RunEvent`]s to reporters; the stable result types ([`ScenarioResult`], [`RunSummary`]).
//! - `select`: `--scenario` globs and `--area`; `deviations`: the deviations file.
//! - `report`: the reporters (human, JUnit, JSON, HTML), pure consumers of events;
//!   `redact`: volatile values out of reports.
//! - `matrix`: [`run_matrix`] — the library against several implementations, one after the
//!   other, graded side by side (JSON, HTML, Markdown, badges; README table upkeep).
//! - `catalog`: what `rehearsal scenarios list/show/validate` print.
//! - `exit`: the documented exit codes.
//!
//! Boundary: the harness drives clients only through the driver protocol and plays scenarios
//! only through the engine (`rehearsal_scenarios::engine`); reporters see nothing but events.
pub mod catalog;
pub mod deviations;
mod engine;
pub mod events;
pub mod exit;
pub mod matrix;
pub mod process;
pub mod redact;
pub mod report;
pub mod runner;
pub mod select;

pub use deviations::{Deviation, Deviations, DeviationsError};
pub use matrix::{ClientSpec, MatrixRun, OutputSpec, run_matrix};
pub use process::ProcessDriver;
pub use redact::Redactor;
pub use report::{ReportKind, ReportSpec, Reporter};
pub use runner::{
    ClientInfo, Engine, Interruption, Play, RunError, RunEvent, RunInfo, RunOptions, RunReport, RunSummary, ScenarioResult, run, run_until,
    run_with,
};
pub use select::Selection;
