//! What a run tells its reporters: [`RunEvent`]s and the data they carry ([`RunInfo`],
//! [`ScenarioResult`], [`RunSummary`]), and the finished [`RunReport`]. Kept apart from the
//! runner (as nextest keeps its reporter events apart) so reporters depend on this vocabulary,
//! never on how a run is scheduled.

use std::time::Duration;

use rehearsal_scenarios::Area;
use rehearsal_scenarios::engine::Hello;
use rehearsal_scenarios::outcome::{ScenarioOutcome, Verdict};
use serde::Serialize;

use crate::deviations::Deviation;
use crate::exit;

/// What the reporters receive, in this order: `RunStarted`, then `ScenarioStarted` and
/// `ScenarioFinished` for each scenario played (interleaved when scenarios run in parallel),
/// then `RunFinished`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    RunStarted {
        total: usize,
        info: RunInfo,
    },
    ScenarioStarted {
        /// Position in the selection (library order): reporters sort by it.
        index: usize,
        id: String,
        area: String,
        title: String,
    },
    ScenarioFinished {
        index: usize,
        result: ScenarioResult,
    },
    RunFinished {
        summary: RunSummary,
    },
}

/// About the run as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `rehearsal-harness` version.
    pub harness_version: String,
    /// The driver protocol version the harness speaks.
    pub protocol: u32,
    /// The client command.
    pub command: String,
    /// What the client said in `hello`; `null` when it did not answer (observed mode).
    pub client: Option<ClientInfo>,
    pub jobs: usize,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The deviations file, if any.
    pub deviations: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
    pub protocol: u32,
    pub capabilities: Vec<String>,
}

impl From<&Hello> for ClientInfo {
    fn from(h: &Hello) -> ClientInfo {
        ClientInfo {
            name: h.name.clone(),
            version: h.version.clone(),
            protocol: h.protocol,
            capabilities: h.capabilities.clone(),
        }
    }
}

/// One scenario's outcome as reported: the engine's outcome plus the deviation that applied.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    #[serde(flatten)]
    pub outcome: ScenarioOutcome,
    /// A deviation entry matched: the verdict stands but does not fail the run.
    pub deviated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
}

impl ScenarioResult {
    /// FAILED and not excused by a deviation: fails the run.
    pub fn fails_run(&self) -> bool {
        self.outcome.verdict == Verdict::Failed && !self.deviated
    }
}

/// Counts of a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Scenarios selected.
    pub total: usize,
    pub ok: usize,
    pub non_strict: usize,
    pub informational: usize,
    pub unimplemented: usize,
    pub failed: usize,
    /// Of the above, how many were matched by a deviation (counted under their verdict too).
    pub deviated: usize,
    /// Selected but not played (`--fail-fast` or an interruption stopped the run), in library
    /// order; a scenario an interruption cut short is here too.
    pub not_run: Vec<String>,
    /// The signal that interrupted the run, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interruption>,
    /// Milliseconds.
    pub duration_ms: u64,
    /// [`exit::OK`], [`exit::FAILED`], or for an interrupted run [`exit::INTERRUPTED`] /
    /// [`exit::TERMINATED`] (a run that could not run has no summary).
    pub exit_code: u8,
}

/// What interrupted a run: cancelled like a test runner, adapters stopped, reports written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interruption {
    /// Ctrl-C.
    #[serde(rename = "SIGINT")]
    Interrupt,
    #[serde(rename = "SIGTERM")]
    Terminate,
}

impl Interruption {
    pub fn exit_code(self) -> u8 {
        match self {
            Interruption::Interrupt => exit::INTERRUPTED,
            Interruption::Terminate => exit::TERMINATED,
        }
    }

    pub fn signal_name(self) -> &'static str {
        match self {
            Interruption::Interrupt => "SIGINT",
            Interruption::Terminate => "SIGTERM",
        }
    }
}

impl RunSummary {
    pub fn of(total: usize, results: &[ScenarioResult], not_run: Vec<String>, duration: Duration) -> RunSummary {
        let mut s = RunSummary {
            total,
            not_run,
            duration_ms: duration.as_millis() as u64,
            ..RunSummary::default()
        };
        for r in results {
            match r.outcome.verdict {
                Verdict::Ok => s.ok += 1,
                Verdict::NonStrict => s.non_strict += 1,
                Verdict::Informational => s.informational += 1,
                Verdict::Unimplemented => s.unimplemented += 1,
                Verdict::Failed => s.failed += 1,
            }
            s.deviated += usize::from(r.deviated);
        }
        s.exit_code = if results.iter().any(ScenarioResult::fails_run) {
            exit::FAILED
        } else {
            exit::OK
        };
        s
    }

    /// Marks the run interrupted: its exit code says by what.
    pub fn interrupted_by(mut self, why: Option<Interruption>) -> RunSummary {
        if let Some(i) = why {
            self.interrupted = Some(i);
            self.exit_code = i.exit_code();
        }
        self
    }

    /// Whether the run passes (exit code 0).
    pub fn passed(&self) -> bool {
        self.exit_code == exit::OK
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub info: RunInfo,
    /// In library order.
    pub results: Vec<ScenarioResult>,
    pub summary: RunSummary,
}

impl RunReport {
    /// 0: every scenario played was OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED or deviated;
    /// 1: some scenario FAILED.
    pub fn exit_code(&self) -> u8 {
        self.summary.exit_code
    }
}

/// Areas in their canonical order (for reports).
pub fn area_order(area: &str) -> usize {
    Area::ALL.iter().position(|a| a.as_str() == area).unwrap_or(Area::ALL.len())
}
