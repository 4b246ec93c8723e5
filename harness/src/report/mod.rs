//! Reporters: pure consumers of [`RunEvent`]s. They never share state with the runner; each
//! gets every event (redacted first when the run redacts) and writes its output on `finish`.
//!
//! - `human`: progress while running, then a summary table by area and every failure with its
//!   expectation, what happened instead and the timeline before it.
//! - `junit`: JUnit XML for CI (one `<testcase>` per scenario).
//! - `json`: the stable machine-readable report (`harness/schema/report.schema.json`).
//! - `html`: one self-contained page: a matrix by area and verdict, and per scenario a sequence
//!   diagram of its timeline next to its expectations.
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rehearsal_scenarios::outcome::Verdict;

use crate::events::{RunEvent, RunInfo, RunReport, RunSummary, ScenarioResult};

pub mod html;
pub mod human;
pub mod json;
pub mod junit;

pub use human::HumanReporter;

/// Something that consumes a run's events.
pub trait Reporter: Send {
    fn event(&mut self, event: &RunEvent);
    /// Called once after the last event: write the output.
    fn finish(&mut self) -> Result<(), ReportError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the {kind} report {path}: {error}")]
    Write {
        kind: ReportKind,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the {0} report got no `RunFinished` event")]
    Incomplete(ReportKind),
    #[error("the reporters crashed: {0}")]
    Crashed(String),
}

/// A report file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Junit,
    Json,
    Html,
}

impl ReportKind {
    pub const ALL: [ReportKind; 3] = [ReportKind::Junit, ReportKind::Json, ReportKind::Html];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Junit => "junit",
            ReportKind::Json => "json",
            ReportKind::Html => "html",
        }
    }

    /// The report of a finished run in this format.
    pub fn render(self, report: &RunReport) -> String {
        match self {
            ReportKind::Junit => junit::render(report),
            ReportKind::Json => json::render(report),
            ReportKind::Html => html::render(report),
        }
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `KIND=PATH`, as given to `--report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSpec {
    pub kind: ReportKind,
    pub path: PathBuf,
}

impl FromStr for ReportSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<ReportSpec, String> {
        let (kind, path) = s
            .split_once('=')
            .ok_or_else(|| format!("expected KIND=PATH (junit, json or html), not `{s}`"))?;
        let kind = ReportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind.trim())
            .ok_or_else(|| format!("unknown report kind `{kind}`: junit, json or html"))?;
        if path.is_empty() {
            return Err(format!("`{kind}=` needs a path"));
        }
        Ok(ReportSpec {
            kind,
            path: PathBuf::from(path),
        })
    }
}

/// Rebuilds the finished run from events (what the file reporters render).
#[derive(Debug, Default)]
pub struct Collector {
    info: Option<RunInfo>,
    results: Vec<(usize, ScenarioResult)>,
    summary: Option<RunSummary>,
}

impl Collector {
    pub fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted { info, .. } => self.info = Some(info.clone()),
            RunEvent::ScenarioStarted { .. } => {}
            RunEvent::ScenarioFinished { index, result } => self.results.push((*index, result.clone())),
            RunEvent::RunFinished { summary } => self.summary = Some(summary.clone()),
        }
    }

    /// The run, once `RunStarted` and `RunFinished` were seen; results in library order.
    pub fn report(&self) -> Option<RunReport> {
        let mut results = self.results.clone();
        results.sort_by_key(|(i, _)| *i);
        Some(RunReport {
            info: self.info.clone()?,
            results: results.into_iter().map(|(_, r)| r).collect(),
            summary: self.summary.clone()?,
        })
    }
}

/// Writes one file report at the end of the run.
pub struct FileReporter {
    spec: ReportSpec,
    collected: Collector,
}

impl FileReporter {
    pub fn new(spec: ReportSpec) -> FileReporter {
        FileReporter {
            spec,
            collected: Collector::default(),
        }
    }
}

impl Reporter for FileReporter {
    fn event(&mut self, event: &RunEvent) {
        self.collected.event(event);
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let report = self.collected.report().ok_or(ReportError::Incomplete(self.spec.kind))?;
        write_atomically(&self.spec.path, self.spec.kind.render(&report).as_bytes()).map_err(|error| ReportError::Write {
            kind: self.spec.kind,
            path: self.spec.path.clone(),
            error,
        })
    }
}

/// Writes beside the target and renames, creating missing folders: a reader never sees half a
/// report.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("report");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// `OK`, `NON-STRICT`, … as in Autobahn.
pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "OK",
        Verdict::NonStrict => "NON-STRICT",
        Verdict::Informational => "INFORMATIONAL",
        Verdict::Unimplemented => "UNIMPLEMENTED",
        Verdict::Failed => "FAILED",
    }
}

pub const VERDICTS: [Verdict; 5] = [
    Verdict::Ok,
    Verdict::NonStrict,
    Verdict::Informational,
    Verdict::Unimplemented,
    Verdict::Failed,
];

/// Areas present in `results`, in the canonical order.
pub fn areas(results: &[ScenarioResult]) -> Vec<String> {
    let mut areas: Vec<String> = results.iter().map(|r| r.outcome.area.clone()).collect();
    areas.sort_by_key(|a| (crate::events::area_order(a), a.clone()));
    areas.dedup();
    areas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "junit=out/r.xml".parse::<ReportSpec>().unwrap(),
            ReportSpec {
                kind: ReportKind::Junit,
                path: "out/r.xml".into()
            }
        );
        assert!("xml=r.xml".parse::<ReportSpec>().unwrap_err().contains("unknown report kind"));
        assert!("r.xml".parse::<ReportSpec>().unwrap_err().contains("KIND=PATH"));
        assert!("json=".parse::<ReportSpec>().unwrap_err().contains("needs a path"));
    }
}
