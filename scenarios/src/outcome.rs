//! What playing a scenario produced, as data: never a panic. Reporters are pure functions of
//! these types (plus redaction).
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use crate::format::Grade as ExpectationGrade;

/// Autobahn's verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    /// Every `must` and `should` expectation held.
    Ok,
    /// Every `must` held; a `should` did not.
    NonStrict,
    /// Only informational expectations failed (or the scenario has only informational ones).
    Informational,
    /// The client does not support a command the scenario needs.
    Unimplemented,
    /// A `must` expectation failed, a wait timed out, or the scenario could not finish.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectationOutcome {
    /// The expectation's label, or a generated description.
    pub label: String,
    /// `event`, `no_event`, `observed`, `pages`, …
    pub kind: String,
    pub grade: ExpectationGrade,
    pub passed: bool,
    /// What was expected, in words.
    pub expected: String,
    /// What happened instead (empty when it passed).
    pub actual: String,
    /// The events or observations that decided it.
    pub evidence: Vec<Value>,
    /// Milliseconds from scenario start when it was decided.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub index: usize,
    /// `server drop alice`, `command send alice`, `wait_for message_added`, …
    pub description: String,
    pub ok: bool,
    pub detail: Option<String>,
    pub started_ms: u64,
    pub duration_ms: u64,
}

/// One line of the client↔server timeline (for sequence diagrams).
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    /// `client` (an event the client reported), `command` (harness → client), `answer`,
    /// `server` (a journal observation), `action` (a control-plane action the engine took, a
    /// trigger firing, the client starting), `mark` (a `mark` step reached), `engine` (a note,
    /// e.g. entries left out past the timeline's limit).
    pub lane: String,
    /// The client name, identity or `server`.
    pub actor: String,
    pub summary: String,
    pub detail: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    pub id: String,
    pub title: String,
    pub area: String,
    pub verdict: Verdict,
    /// Why, in one line (the first failing expectation, the timeout, the unsupported command).
    pub reason: Option<String>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    pub steps: Vec<StepOutcome>,
    pub expectations: Vec<ExpectationOutcome>,
    pub timeline: Vec<TimelineEntry>,
    /// The client program's stderr.
    pub stderr: String,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Verdict {
    /// The verdict of a finished run from its expectations (unimplemented/failed are decided
    /// by the engine before this).
    pub fn from_expectations(e: &[ExpectationOutcome]) -> Verdict {
        use crate::format::Grade;
        if e.iter().any(|x| !x.passed && x.grade == Grade::Must) {
            Verdict::Failed
        } else if e.iter().any(|x| !x.passed && x.grade == Grade::Should) {
            Verdict::NonStrict
        } else if e.iter().any(|x| !x.passed) || (!e.is_empty() && e.iter().all(|x| x.grade == Grade::Informational)) {
            Verdict::Informational
        } else {
            Verdict::Ok
        }
    }
}
