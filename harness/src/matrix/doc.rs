//! The matrix as a document: what `--report matrix-json=PATH` writes, what the Markdown table and
//! the badges are rendered from, and what `rehearsal compat` reads back. Stable and documented
//! by `harness/schema/matrix.schema.json` (fields: `harness/schema/README.md`).
//!
//! ```text
//! { "format": "rehearsal-matrix-report", "version": 1,
//!   harness_version, protocol, started_at, duration_ms, jobs, exit_code,
//!   "implementations": [ { name, command, client: {name, version, protocol, capabilities} | null,
//!                          deviations, exit_code, error, summary | null,
//!                          conformance: {passed, total} } ],         // in the order given
//!   "scenarios": [ { id, title, area,
//!                    results: [ { implementation, verdict, deviated, deviation, reason,
//!                                 duration_ms } ] } ] }   // library order; one result per implementation
//! ```
//!
//! Additive changes (new fields) keep `version`; anything else bumps it.
use serde::{Deserialize, Serialize};

use super::MatrixRun;
use crate::events::area_order;
use crate::report::verdict_name;

pub const FORMAT: &str = "rehearsal-matrix-report";
pub const VERSION: u32 = 1;
/// The verdict of a scenario an implementation did not play (it could not run, or
/// `--fail-fast` stopped it).
pub const NOT_RUN: &str = "NOT-RUN";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixDoc {
    pub format: String,
    pub version: u32,
    pub harness_version: String,
    pub protocol: u32,
    pub started_at: String,
    pub duration_ms: u64,
    pub jobs: usize,
    pub exit_code: u8,
    pub implementations: Vec<Implementation>,
    pub scenarios: Vec<ScenarioRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Implementation {
    /// The `NAME` of `--client NAME=COMMAND` (`client-N` when unnamed).
    pub name: String,
    pub command: String,
    /// What the adapter said in `hello`; `null` when it did not answer or could not start.
    pub client: Option<Hello>,
    pub deviations: Option<String>,
    /// This implementation's own exit code (`rehearsal run` with it alone).
    pub exit_code: u8,
    /// Why it could not run (exit code 2), else `null`.
    pub error: Option<String>,
    /// `null` when it could not run.
    pub summary: Option<Summary>,
    pub conformance: Conformance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub name: String,
    pub version: String,
    pub protocol: u32,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub ok: usize,
    pub non_strict: usize,
    pub informational: usize,
    pub unimplemented: usize,
    pub failed: usize,
    pub deviated: usize,
    pub not_run: usize,
    pub duration_ms: u64,
}

/// Scenarios graded OK, NON-STRICT or INFORMATIONAL (no `must` failed, nothing missing) out of
/// the scenarios selected: the badge's "63/65".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conformance {
    pub passed: usize,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRow {
    pub id: String,
    pub title: String,
    pub area: String,
    /// One per implementation, in the implementations' order.
    pub results: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub implementation: String,
    /// `OK`, `NON-STRICT`, `INFORMATIONAL`, `UNIMPLEMENTED`, `FAILED` or `NOT-RUN`.
    pub verdict: String,
    pub deviated: bool,
    /// The matching deviation's reason.
    pub deviation: Option<String>,
    pub reason: Option<String>,
    pub duration_ms: u64,
}

impl Cell {
    /// Counts as passed for [`Conformance`].
    pub fn passed(&self) -> bool {
        matches!(self.verdict.as_str(), "OK" | "NON-STRICT" | "INFORMATIONAL")
    }
}

impl MatrixDoc {
    pub fn of(run: &MatrixRun) -> MatrixDoc {
        // Rows: every scenario any implementation selected, in library order.
        let mut rows: Vec<ScenarioRow> = Vec::new();
        for imp in &run.implementations {
            let Ok(report) = &imp.outcome else { continue };
            let played = report
                .results
                .iter()
                .map(|r| (r.outcome.id.clone(), r.outcome.title.clone(), r.outcome.area.clone()));
            let not_run = report.summary.not_run.iter().map(|id| {
                let area = id.split('.').next().unwrap_or_default().to_owned();
                (id.clone(), String::new(), area)
            });
            for (id, title, area) in played.chain(not_run) {
                match rows.iter_mut().find(|r| r.id == id) {
                    Some(row) if row.title.is_empty() => row.title = title,
                    Some(_) => {}
                    None => {
                        rows.push(ScenarioRow {
                            id,
                            title,
                            area,
                            results: Vec::new(),
                        });
                    }
                }
            }
        }
        // Library order: by area, then id (as the library lists them).
        rows.sort_by(|a, b| (area_order(&a.area), &a.id).cmp(&(area_order(&b.area), &b.id)));
        for row in &mut rows {
            for imp in &run.implementations {
                let found = imp
                    .outcome
                    .as_ref()
                    .ok()
                    .and_then(|report| report.results.iter().find(|r| r.outcome.id == row.id));
                row.results.push(match found {
                    Some(r) => Cell {
                        implementation: imp.client.name.clone(),
                        verdict: verdict_name(r.outcome.verdict).to_owned(),
                        deviated: r.deviated,
                        deviation: r.deviation.as_ref().map(|d| d.reason.clone()),
                        reason: r.outcome.reason.clone(),
                        duration_ms: r.outcome.duration.as_millis() as u64,
                    },
                    None => Cell {
                        implementation: imp.client.name.clone(),
                        verdict: NOT_RUN.to_owned(),
                        deviated: false,
                        deviation: None,
                        reason: Some(match &imp.outcome {
                            Ok(_) => "not played (--fail-fast stopped the run)".to_owned(),
                            Err(e) => format!("the implementation could not run: {e}"),
                        }),
                        duration_ms: 0,
                    },
                });
            }
        }
        let implementations = run
            .implementations
            .iter()
            .enumerate()
            .map(|(j, imp)| {
                let passed = rows.iter().filter(|r| r.results[j].passed()).count();
                let (client, summary, error) = match &imp.outcome {
                    Ok(report) => {
                        let s = &report.summary;
                        (
                            report.info.client.as_ref().map(|c| Hello {
                                name: c.name.clone(),
                                version: c.version.clone(),
                                protocol: c.protocol,
                                capabilities: c.capabilities.clone(),
                            }),
                            Some(Summary {
                                total: s.total,
                                ok: s.ok,
                                non_strict: s.non_strict,
                                informational: s.informational,
                                unimplemented: s.unimplemented,
                                failed: s.failed,
                                deviated: s.deviated,
                                not_run: s.not_run.len(),
                                duration_ms: s.duration_ms,
                            }),
                            None,
                        )
                    }
                    Err(e) => (None, None, Some(e.to_string())),
                };
                Implementation {
                    name: imp.client.name.clone(),
                    command: match &imp.outcome {
                        // The run's command (redacted when the run is).
                        Ok(report) => report.info.command.clone(),
                        Err(_) => imp.client.command.clone(),
                    },
                    client,
                    deviations: imp.deviations.as_ref().map(|p| p.display().to_string()),
                    exit_code: imp.exit_code(),
                    error,
                    summary,
                    conformance: Conformance { passed, total: rows.len() },
                }
            })
            .collect();
        MatrixDoc {
            format: FORMAT.to_owned(),
            version: VERSION,
            harness_version: run.harness_version.clone(),
            protocol: crate::process::PROTOCOL_VERSION,
            started_at: run.started_at.clone(),
            duration_ms: run.duration.as_millis() as u64,
            jobs: run.jobs,
            exit_code: run.exit_code(),
            implementations,
            scenarios: rows,
        }
    }

    /// Pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut out = serde_json::to_string_pretty(self).expect("the matrix serialises");
        out.push('\n');
        out
    }

    /// Reads a matrix JSON report back.
    pub fn parse(text: &str) -> Result<MatrixDoc, String> {
        let doc: MatrixDoc = serde_json::from_str(text).map_err(|e| format!("not a matrix report: {e}"))?;
        if doc.format != FORMAT {
            return Err(format!(
                "not a matrix report: format `{}`, expected `{FORMAT}` (write one with --report matrix-json=PATH)",
                doc.format
            ));
        }
        if doc.version != VERSION {
            return Err(format!(
                "matrix report version {} is not supported (this is version {VERSION})",
                doc.version
            ));
        }
        Ok(doc)
    }
}
