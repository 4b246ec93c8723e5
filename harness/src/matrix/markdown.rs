//! The matrix as Markdown for a README: implementations as columns, first their client (from
//! `hello`), conformance and counts per verdict, then one row per scenario that is not OK for
//! every implementation (a scenario OK everywhere says nothing a reader needs). Nothing volatile
//! (no time, duration, port or path), so that the table in README.md only changes when a verdict
//! does.
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
    row(
        &mut md,
        "conformance",
        imps.iter()
            .map(|i| match i.error {
                Some(_) => "—".to_owned(),
                None => format!("**{}/{}**", i.conformance.passed, i.conformance.total),
            })
            .collect(),
    );
    let lines: [(&str, Count); 6] = [
        ("OK", |s| s.ok),
        ("NON-STRICT", |s| s.non_strict),
        ("INFORMATIONAL", |s| s.informational),
        ("UNIMPLEMENTED", |s| s.unimplemented),
        ("FAILED", |s| s.failed),
        ("deviated", |s| s.deviated),
    ];
    for (name, f) in lines {
        row(&mut md, name, imps.iter().map(|i| counts(i, f)).collect());
    }
    let notable: Vec<_> = doc
        .scenarios
        .iter()
        .filter(|s| s.results.iter().any(|c| c.verdict != "OK"))
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
                .map(|c| {
                    if c.deviated {
                        format!("{} (deviated)", c.verdict)
                    } else {
                        c.verdict.clone()
                    }
                })
                .collect(),
        );
    }
    md
}
