//! The matrix as Markdown for a README: implementations as columns, first their client (from
//! `hello`), conformance and counts per verdict, then one row per scenario that is not OK for
//! every implementation (a scenario OK everywhere says nothing a reader needs). Nothing volatile
//! (no time, duration, port or path), so that the table in README.md only changes when a verdict
//! does. Deviated cells read `deviated` and are counted apart, never as passed: their verdict
//! may vary between runs by the deviation's own nature.
use std::fmt::Write;

use super::doc::{Implementation, MatrixDoc, Summary};

/// Text for a table cell: no line breaks, `|` escaped.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// One count of a summary.
type Count = fn(&Summary) -> usize;

fn counts(i: &Implementation, f: Count) -> String {
    i.summary.as_ref().map_or_else(|| "—".to_owned(), |s| f(s).to_string())
}

/// The table (ends with a newline).
pub fn render(doc: &MatrixDoc) -> String {
    let mut md = String::new();
    let imps = &doc.implementations;
    let row = |md: &mut String, head: &str, cells: Vec<String>| {
        let _ = writeln!(md, "| {} | {} |", head, cells.join(" | "));
    };
    row(&mut md, "", imps.iter().map(|i| format!("**{}**", cell(&i.name))).collect());
    row(&mut md, ":--", imps.iter().map(|_| ":-:".to_owned()).collect());
    row(
        &mut md,
        "client",
        imps.iter()
            .map(|i| match &i.client {
                Some(h) => cell(&format!("{} {}", h.name, h.version)),
                None if i.error.is_some() => "could not run".to_owned(),
                None => "observed mode".to_owned(),
            })
            .collect(),
    );
    // Counts come from the cells, with deviated scenarios apart: a deviation records a known
    // difference whose verdict may vary from run to run (an SDK race, an order that depends on
    // random SIDs), and the README's table must change only when a verdict that counts does. So
    // a deviated scenario is never counted as passed here, whatever its verdict in this run.
    let cells_of = |j: usize| doc.scenarios.iter().map(move |s| &s.results[j]);
    row(
        &mut md,
        "conformance",
        imps.iter()
            .enumerate()
            .map(|(j, i)| match i.error {
                Some(_) => "—".to_owned(),
                None => {
                    let passed = cells_of(j).filter(|c| !c.deviated && c.passed()).count();
                    format!("**{}/{}**", passed, i.conformance.total)
                }
            })
            .collect(),
    );
    let verdicts = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"];
    for name in verdicts {
        row(
            &mut md,
            name,
            imps.iter()
                .enumerate()
                .map(|(j, i)| match i.summary {
                    None => "—".to_owned(),
                    Some(_) => cells_of(j).filter(|c| !c.deviated && c.verdict == name).count().to_string(),
                })
                .collect(),
        );
    }
    let deviated: Count = |s| s.deviated;
    row(&mut md, "deviated", imps.iter().map(|i| counts(i, deviated)).collect());
    let notable: Vec<_> = doc
        .scenarios
        .iter()
        .filter(|s| s.results.iter().any(|c| c.verdict != "OK" || c.deviated))
        .collect();
    md.push('\n');
    if notable.is_empty() {
        let _ = writeln!(
            md,
            "Every one of the {} scenarios is OK for every implementation.",
            doc.scenarios.len()
        );
        return md;
    }
    let _ = writeln!(
        md,
        "Scenarios not OK for every implementation ({} of {}; the others are OK for all):\n",
        notable.len(),
        doc.scenarios.len()
    );
    row(&mut md, "scenario", imps.iter().map(|i| cell(&i.name)).collect());
    row(&mut md, ":--", imps.iter().map(|_| ":-:".to_owned()).collect());
    for s in notable {
        row(
            &mut md,
            &format!("`{}`", cell(&s.id)),
            s.results
                .iter()
                .map(|c| if c.deviated { "deviated".to_owned() } else { c.verdict.clone() })
                .collect(),
        );
    }
    md
}
