//! The human reporter: a progress bar while running (on stderr, when it is a terminal), one
//! line per finished scenario, then a summary table by area and, for each failure, the
//! expectation, what happened instead and the timeline entries just before it.
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rehearsal_scenarios::outcome::{ExpectationGrade, ExpectationOutcome, ScenarioOutcome, Verdict};

use super::{Collector, ReportError, Reporter, VERDICTS, areas, verdict_name};
use crate::events::{RunEvent, RunReport, RunSummary, ScenarioResult};

/// Timeline entries shown before a failure.
pub const TIMELINE_CONTEXT: usize = 10;
/// Last stderr lines shown with a failure.
pub const STDERR_CONTEXT: usize = 10;

pub struct HumanReporter {
    out: Box<dyn Write + Send>,
    /// Draw a progress bar (created when the run starts and its length is known).
    wants_progress: bool,
    progress: Option<ProgressBar>,
    running: BTreeSet<String>,
    collected: Collector,
}

impl HumanReporter {
    /// Writes to `out`; `progress` draws a bar on stderr while running (pass `false` when
    /// stderr is not a terminal, or for `--no-progress`).
    pub fn new(out: Box<dyn Write + Send>, progress: bool) -> HumanReporter {
        HumanReporter {
            out,
            wants_progress: progress,
            progress: None,
            running: BTreeSet::new(),
            collected: Collector::default(),
        }
    }

    fn line(&mut self, text: &str) {
        let out = &mut self.out;
        match &self.progress {
            Some(bar) => bar.suspend(|| {
                let _ = writeln!(out, "{text}");
            }),
            None => {
                let _ = writeln!(out, "{text}");
            }
        }
    }

    fn show_running(&self) {
        if let Some(bar) = &self.progress {
            bar.set_message(self.running.iter().cloned().collect::<Vec<_>>().join(" "));
        }
    }
}

impl Reporter for HumanReporter {
    fn event(&mut self, event: &RunEvent) {
        self.collected.event(event);
        match event {
            RunEvent::RunStarted { total, info } => {
                let client = match &info.client {
                    Some(c) => format!("{} {} (protocol {})", c.name, c.version, c.protocol),
                    None => "a client in observed mode (no answer to `hello`)".to_owned(),
                };
                self.line(&format!(
                    "rehearsal: {total} scenario{} against {client}, {} at a time\n  client: {}",
                    plural(*total),
                    info.jobs,
                    info.command
                ));
                if self.wants_progress {
                    let bar = ProgressBar::with_draw_target(Some(*total as u64), ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {wide_msg}")
                            .expect("a valid template")
                            .progress_chars("=> "),
                    );
                    self.progress = Some(bar);
                }
            }
            RunEvent::ScenarioStarted { id, .. } => {
                self.running.insert(id.clone());
                self.show_running();
            }
            RunEvent::ScenarioFinished { result, .. } => {
                self.running.remove(&result.outcome.id);
                self.show_running();
                self.line(&finished_line(result));
                if let Some(bar) = &self.progress {
                    bar.inc(1);
                }
            }
            RunEvent::RunFinished { .. } => {
                if let Some(bar) = self.progress.take() {
                    bar.finish_and_clear();
                }
                if let Some(report) = self.collected.report() {
                    let text = summary(&report);
                    let _ = write!(self.out, "{text}");
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let _ = self.out.flush();
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `        OK   1.2s connection.drop-reconnects`
pub fn finished_line(r: &ScenarioResult) -> String {
    let o = &r.outcome;
    let mut line = format!("{:>13} {:>6} {}", verdict_name(o.verdict), secs(o.duration), o.id);
    if r.deviated {
        line.push_str("  (deviated)");
    }
    if matches!(o.verdict, Verdict::Failed | Verdict::Unimplemented | Verdict::NonStrict)
        && let Some(reason) = &o.reason
    {
        line.push_str(&format!("\n{:>21}{}", "", first_line(reason)));
    }
    line
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Everything printed at the end of a run.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    out.push('\n');
    out.push_str(&table(report));
    for r in report.results.iter().filter(|r| r.outcome.verdict == Verdict::Failed) {
        out.push('\n');
        out.push_str(&failure(r));
    }
    let deviated: Vec<&ScenarioResult> = report.results.iter().filter(|r| r.deviated).collect();
    if !deviated.is_empty() {
        out.push_str("\nDeviations (recorded, not failing the run):\n");
        for r in deviated {
            let d = r.deviation.as_ref().expect("deviated results carry their deviation");
            let stale = if r.outcome.verdict == Verdict::Ok {
                "  — passes now: the deviation may be stale"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {:<13} {}: {}{}{stale}\n",
                verdict_name(r.outcome.verdict),
                r.outcome.id,
                d.reason,
                d.link.as_deref().map(|l| format!(" ({l})")).unwrap_or_default()
            ));
        }
    }
    out.push('\n');
    out.push_str(&closing(&report.summary));
    out
}

fn table(report: &RunReport) -> String {
    let heads = [
        "area",
        "total",
        "OK",
        "NON-STRICT",
        "INFORMATIONAL",
        "UNIMPLEMENTED",
        "FAILED",
        "deviated",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let row = |name: &str, rs: &[&ScenarioResult]| {
        let mut cells = vec![name.to_owned(), rs.len().to_string()];
        for v in VERDICTS {
            cells.push(rs.iter().filter(|r| r.outcome.verdict == v).count().to_string());
        }
        cells.push(rs.iter().filter(|r| r.deviated).count().to_string());
        cells
    };
    for area in areas(&report.results) {
        let rs: Vec<&ScenarioResult> = report.results.iter().filter(|r| r.outcome.area == area).collect();
        rows.push(row(&area, &rs));
    }
    let all: Vec<&ScenarioResult> = report.results.iter().collect();
    rows.push(row("total", &all));
    let widths: Vec<usize> = (0..heads.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([heads[i].len()]).max().unwrap_or(0))
        .collect();
    let fmt_row = |cells: Vec<String>| -> String {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                line.push_str(&format!("{c:<w$}", w = widths[i]));
            } else {
                line.push_str(&format!("  {c:>w$}", w = widths[i]));
            }
        }
        line.trim_end().to_owned() + "\n"
    };
    let mut out = fmt_row(heads.iter().map(|h| (*h).to_owned()).collect());
    let n = rows.len();
    for (i, r) in rows.into_iter().enumerate() {
        if i == n - 1 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
        out.push_str(&fmt_row(r));
    }
    out
}

/// One failed scenario: why, the failed expectations, the timeline before the first one, and
/// the end of the adapter's stderr.
pub fn failure(r: &ScenarioResult) -> String {
    let o = &r.outcome;
    let mut out = format!("FAILED {}{} — {}\n", o.id, if r.deviated { " (deviated)" } else { "" }, o.title);
    if let Some(reason) = &o.reason {
        out.push_str(&format!("  reason: {}\n", indent_rest(reason, "          ")));
    }
    let failed: Vec<&ExpectationOutcome> = o
        .expectations
        .iter()
        .filter(|e| !e.passed && e.grade == ExpectationGrade::Must)
        .collect();
    for e in &failed {
        out.push_str(&format!("  expectation: {} ({}, must)\n", e.label, e.kind));
        out.push_str(&format!("    expected: {}\n", indent_rest(&e.expected, "              ")));
        out.push_str(&format!("    actual:   {}\n", indent_rest(&e.actual, "              ")));
    }
    out.push_str(&timeline_before(o, failed.first().map(|e| e.at_ms)));
    let lines: Vec<&str> = o.stderr.lines().collect();
    if !lines.is_empty() {
        let from = lines.len().saturating_sub(STDERR_CONTEXT);
        out.push_str(&format!("  stderr (last {} of {} lines):\n", lines.len() - from, lines.len()));
        for l in &lines[from..] {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out
}

/// The last [`TIMELINE_CONTEXT`] entries at or before `at_ms` (or the end).
fn timeline_before(o: &ScenarioOutcome, at_ms: Option<u64>) -> String {
    let upto: Vec<_> = o.timeline.iter().filter(|t| at_ms.is_none_or(|at| t.at_ms <= at)).collect();
    if upto.is_empty() {
        return String::new();
    }
    let from = upto.len().saturating_sub(TIMELINE_CONTEXT);
    let mut out = format!(
        "  timeline before it (last {} of {} entries):\n",
        upto.len() - from,
        o.timeline.len()
    );
    for t in &upto[from..] {
        out.push_str(&format!(
            "    {:>8}  {:<7} {:<10} {}\n",
            format!("+{}ms", t.at_ms),
            t.lane,
            t.actor,
            t.summary
        ));
    }
    out
}

fn indent_rest(s: &str, pad: &str) -> String {
    s.lines().collect::<Vec<_>>().join(&format!("\n{pad}"))
}

/// `60 scenarios: 55 OK, …, in 45.2s` and what the exit code means.
pub fn closing(s: &RunSummary) -> String {
    let mut out = format!(
        "{} scenario{}: {} OK, {} NON-STRICT, {} INFORMATIONAL, {} UNIMPLEMENTED, {} FAILED",
        s.total,
        plural(s.total),
        s.ok,
        s.non_strict,
        s.informational,
        s.unimplemented,
        s.failed
    );
    if s.deviated > 0 {
        out.push_str(&format!(" ({} deviated)", s.deviated));
    }
    if !s.not_run.is_empty() {
        let why = match s.interrupted {
            Some(i) => format!("interrupted by {}", i.signal_name()),
            None => "--fail-fast".to_owned(),
        };
        out.push_str(&format!(", {} not run ({why})", s.not_run.len()));
    }
    out.push_str(&format!(" in {}\n", secs(Duration::from_millis(s.duration_ms))));
    match s.interrupted {
        Some(i) => out.push_str(&format!(
            "INTERRUPTED (exit {}): {} stopped the run; the adapters were stopped\n",
            s.exit_code,
            i.signal_name()
        )),
        None if s.passed() => out.push_str("PASSED (exit 0)\n"),
        None => out.push_str("FAILED (exit 1): some scenario FAILED\n"),
    }
    out
}
