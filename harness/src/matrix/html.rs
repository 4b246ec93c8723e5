//! The matrix as one self-contained HTML page (inline CSS and SVG, no script): a grid with a row
//! per scenario (grouped by area) and a column per implementation, each cell coloured by its
//! verdict. A cell links to the same block the single-run HTML report shows for that scenario
//! (reason, sequence diagram, expectations, steps, adapter stderr), shown with CSS `:target`
//! when the cell is clicked.
use std::fmt::Write;

use super::MatrixRun;
use super::doc::{MatrixDoc, NOT_RUN};
use crate::report::html::{STYLE, anchor, css_class, escape, scenario_block};
use crate::report::{VERDICTS, verdict_name};

const MATRIX_STYLE: &str = r#"
table.grid td.v{text-align:center;min-width:110px;font-size:12px;font-weight:600;padding:2px 6px}
table.grid td.v a{color:inherit;text-decoration:none;display:block}
table.grid td.v a:hover{text-decoration:underline}
table.grid td.notrun{background:#f4f4f6;color:#99a}
table.grid tr.area th{background:#dfe4ec;font-size:13px}
table.grid th.imp{text-align:center;font-size:12px;font-weight:normal}
table.grid th.imp b{font-size:14px;display:block}
table.grid th.sc{font-weight:normal}
.dm{font-size:10px;font-weight:normal;display:block}
section.cell{display:none;border-top:2px solid #dde1e8;margin-top:16px}
section.cell:target{display:block}
"#;

/// Short labels for the grid's cells.
fn short(verdict: &str) -> &str {
    match verdict {
        "INFORMATIONAL" => "INFO",
        "UNIMPLEMENTED" => "UNIMPL",
        v => v,
    }
}

fn cell_id(implementation: usize, scenario: &str) -> String {
    format!("c{implementation}-{}", anchor(scenario))
}

/// The whole page; `doc` is [`MatrixDoc::of`] the same run.
pub fn render(run: &MatrixRun, doc: &MatrixDoc) -> String {
    let mut h = String::new();
    let names: Vec<String> = doc.implementations.iter().map(|i| i.name.clone()).collect();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Rehearsal compatibility matrix — {}</title>\n<style>{STYLE}{MATRIX_STYLE}</style>\n</head>\n<body>\n",
        escape(&names.join(", "))
    );
    let _ = writeln!(h, "<h1 id=\"grid\">Rehearsal compatibility matrix</h1>");
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} implementation(s) × {} scenario(s) · started {} · {} ms · {} job(s) per implementation · harness {} · protocol {}</p>",
        doc.implementations.len(),
        doc.scenarios.len(),
        escape(&doc.started_at),
        doc.duration_ms,
        doc.jobs,
        escape(&doc.harness_version),
        doc.protocol
    );
    let (class, text) = match doc.exit_code {
        0 => ("pass", "PASSED (exit 0): every implementation passes".to_owned()),
        1 => ("fail", "FAILED (exit 1): some implementation has a FAILED scenario".to_owned()),
        c => ("fail", format!("ERROR (exit {c}): some implementation could not run")),
    };
    let _ = writeln!(h, "<div class=\"banner {class}\">{}</div>", escape(&text));
    let _ = writeln!(
        h,
        "<p class=\"meta\">Click a cell for that scenario's sequence diagram and expectations with that implementation. Legend: {}; <i>dev</i> = deviated (known, does not fail the run).</p>",
        VERDICTS
            .iter()
            .map(|v| format!("<span class=\"badge {}\">{}</span>", css_class(*v), verdict_name(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // The grid: a header cell per implementation with its client and counts.
    h.push_str("<table class=\"grid\">\n<tr><th>scenario</th>");
    for i in &doc.implementations {
        let client = match &i.client {
            Some(c) => format!("{} {}", c.name, c.version),
            None if i.error.is_some() => "could not run".to_owned(),
            None => "observed mode".to_owned(),
        };
        let counts = match &i.summary {
            Some(s) => format!(
                "{}/{} passed · {} OK · {} NS · {} INFO · {} UNIMPL · {} FAILED · {} dev · exit {}",
                i.conformance.passed,
                i.conformance.total,
                s.ok,
                s.non_strict,
                s.informational,
                s.unimplemented,
                s.failed,
                s.deviated,
                i.exit_code
            ),
            None => format!("exit {}", i.exit_code),
        };
        let _ = write!(
            h,
            "<th class=\"imp\" title=\"{}\"><b>{}</b>{}<br><span class=\"meta\">{}</span></th>",
            escape(&i.command),
            escape(&i.name),
            escape(&client),
            escape(&counts)
        );
    }
    h.push_str("</tr>\n");
    let mut area = "";
    for row in &doc.scenarios {
        if row.area != area {
            area = &row.area;
            let _ = writeln!(
                h,
                "<tr class=\"area\"><th colspan=\"{}\">{}</th></tr>",
                doc.implementations.len() + 1,
                escape(area)
            );
        }
        let _ = write!(
            h,
            "<tr><th class=\"sc\" title=\"{}\"><code>{}</code></th>",
            escape(&row.title),
            escape(&row.id)
        );
        for (j, c) in row.results.iter().enumerate() {
            let tip = c
                .deviation
                .as_deref()
                .map(|d| format!("deviated: {d}"))
                .or_else(|| c.reason.clone())
                .unwrap_or_default();
            if c.verdict == NOT_RUN {
                let _ = write!(h, "<td class=\"v notrun\" title=\"{}\">not run</td>", escape(&tip));
                continue;
            }
            let class = VERDICTS
                .iter()
                .find(|v| verdict_name(**v) == c.verdict)
                .map_or("unimpl", |v| css_class(*v));
            let _ = write!(
                h,
                "<td class=\"v {class}\"><a href=\"#{}\" title=\"{}\">{}{}</a></td>",
                cell_id(j, &row.id),
                escape(&tip),
                escape(short(&c.verdict)),
                if c.deviated { "<span class=\"dm\">dev</span>" } else { "" }
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");

    let errors: Vec<_> = run
        .implementations
        .iter()
        .filter_map(|i| i.outcome.as_ref().err().map(|e| (i, e)))
        .collect();
    if !errors.is_empty() {
        h.push_str("<h2>Could not run</h2>\n");
        for (i, e) in errors {
            let _ = writeln!(
                h,
                "<p><b>{}</b> <code>{}</code></p>\n<pre>{}</pre>",
                escape(&i.client.name),
                escape(&i.client.command),
                escape(&e.to_string())
            );
        }
    }

    // Each played cell: the single-run report's block, shown when its cell is the target.
    for (j, imp) in run.implementations.iter().enumerate() {
        let Ok(report) = &imp.outcome else { continue };
        for r in &report.results {
            let id = cell_id(j, &r.outcome.id);
            let _ = writeln!(
                h,
                "<section class=\"cell\" id=\"{id}\">\n<h2>{} × <code>{}</code> <a class=\"meta\" href=\"#grid\">↑ matrix</a></h2>",
                escape(&imp.client.name),
                escape(&r.outcome.id)
            );
            h.push_str(&scenario_block(r, &format!("d{j}-{}", anchor(&r.outcome.id)), true));
            h.push_str("</section>\n");
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}
