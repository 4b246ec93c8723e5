//! The HTML report: one self-contained file (inline CSS and SVG, no script, no external
//! asset). A matrix by area × verdict links to each scenario; a scenario shows its reason, a
//! sequence diagram of its timeline (lanes client · harness · server, with the expectations'
//! decisions drawn where they were taken) next to its expectations, then its steps and the
//! adapter's stderr.
use std::fmt::Write;

use rehearsal_scenarios::outcome::{ExpectationOutcome, ScenarioOutcome, TimelineEntry, Verdict};

use super::{VERDICTS, areas, verdict_name};
use crate::events::{RunReport, ScenarioResult};

/// Timeline rows drawn per scenario; the rest are counted (the JSON report has them all).
pub const MAX_ROWS: usize = 400;

const X_CLIENT: u32 = 150;
const X_HARNESS: u32 = 400;
const X_SERVER: u32 = 650;
const WIDTH: u32 = 780;
const ROW: u32 = 24;
const TOP: u32 = 44;
/// Characters of an entry's detail shown in its tooltip.
const TITLE_DETAIL_CHARS: usize = 600;
/// Characters of a label between two neighbouring lanes.
const LABEL_CHARS: usize = 38;

/// Escapes text for HTML content and attribute values (also valid inside SVG).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn css_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::NonStrict => "nonstrict",
        Verdict::Informational => "info",
        Verdict::Unimplemented => "unimpl",
        Verdict::Failed => "failed",
    }
}

pub(crate) fn anchor(id: &str) -> String {
    format!(
        "s-{}",
        id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.', "_")
    )
}

pub(crate) const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 48px;color:#1d2430;background:#fbfbfd}
h1{font-size:22px;margin:24px 0 4px}h2{font-size:18px;margin:28px 0 8px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f1f3f7;padding:8px;overflow:auto;max-height:360px;border-radius:4px}
.meta{color:#556;margin:0}
.banner{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:600;margin:8px 0}
.banner.pass{background:#d8f3dc;color:#1b5e20}.banner.fail{background:#fde2e1;color:#8b1a14}
table{border-collapse:collapse}th,td{padding:4px 8px;border:1px solid #dde1e8;vertical-align:top;text-align:left}
th{background:#eef1f6}
.matrix td.n{text-align:center;min-width:90px}.matrix td.n b{display:block;font-size:15px}
.matrix a{display:inline-block;font-size:11px;margin:1px 2px;color:inherit}
.badge{display:inline-block;min-width:104px;text-align:center;padding:1px 6px;border-radius:3px;font-size:12px;font-weight:600}
.ok{background:#d8f3dc;color:#1b5e20}.nonstrict{background:#fff3c4;color:#7a5b00}.info{background:#dfeafc;color:#174ea6}
.unimpl{background:#e9e9ee;color:#444}.failed{background:#fde2e1;color:#8b1a14}
td.zero{background:none;color:#aab}
details.scenario{border:1px solid #dde1e8;border-radius:6px;margin:8px 0;background:#fff}
details.scenario>summary{padding:8px 10px;cursor:pointer}
details.scenario>div{padding:0 12px 12px}
.dev{font-size:12px;color:#7a5b00;margin-left:6px}
.reason{margin:6px 0;color:#8b1a14;white-space:pre-wrap}
.cols{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.diagram{flex:0 0 auto;overflow:auto;max-height:720px;border:1px solid #eef;border-radius:4px}
.expect{flex:1 1 420px}.expect td{font-size:12px}.expect tr.no td{background:#fff5f4}
svg text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11px;fill:#1d2430}
svg .lane{font-weight:600;font-size:12px}svg .life{stroke:#c5cbd6;stroke-dasharray:4 4}
svg .t{fill:#889}svg line.m{stroke:#3c4a60;stroke-width:1.2}
svg .answer{stroke-dasharray:5 3}svg .event{stroke:#174ea6;stroke-dasharray:2 2}svg .obs{stroke:#6a4c93;stroke-dasharray:2 3}
svg .action{stroke:#b35c00}svg rect.pass{fill:#d8f3dc}svg rect.fail{fill:#fde2e1}svg rect.note{fill:#f1f3f7}
"#;

/// The whole page.
pub fn render(report: &RunReport) -> String {
    let mut h = String::new();
    let s = &report.summary;
    let client = match &report.info.client {
        Some(c) => format!("{} {} (protocol {})", c.name, c.version, c.protocol),
        None => "observed mode (no answer to hello)".to_owned(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Rehearsal report — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&client)
    );
    let _ = writeln!(h, "<h1>Rehearsal conformance report</h1>");
    let _ = writeln!(
        h,
        "<p class=\"meta\">client <b>{}</b> · <code>{}</code></p>",
        escape(&client),
        escape(&report.info.command)
    );
    let _ = writeln!(
        h,
        "<p class=\"meta\">started {} · {} ms · {} job(s) · harness {} · protocol {}{}</p>",
        escape(&report.info.started_at),
        s.duration_ms,
        report.info.jobs,
        escape(&report.info.harness_version),
        report.info.protocol,
        report
            .info
            .deviations
            .as_deref()
            .map(|d| format!(" · deviations <code>{}</code>", escape(d)))
            .unwrap_or_default()
    );
    let (class, text) = if s.passed() {
        ("pass", "PASSED (exit 0)")
    } else {
        ("fail", "FAILED (exit 1)")
    };
    let _ = writeln!(
        h,
        "<div class=\"banner {class}\">{text}: {} scenarios · {} OK · {} NON-STRICT · {} INFORMATIONAL · {} UNIMPLEMENTED · {} FAILED · {} deviated · {} not run</div>",
        s.total,
        s.ok,
        s.non_strict,
        s.informational,
        s.unimplemented,
        s.failed,
        s.deviated,
        s.not_run.len()
    );
    h.push_str(&matrix(report));
    let _ = writeln!(h, "<h2>Scenarios</h2>");
    for r in &report.results {
        h.push_str(&scenario(r));
    }
    if !s.not_run.is_empty() {
        let _ = writeln!(h, "<h2>Not run (--fail-fast)</h2>\n<ul>");
        for id in &s.not_run {
            let _ = writeln!(h, "<li><code>{}</code></li>", escape(id));
        }
        let _ = writeln!(h, "</ul>");
    }
    h.push_str("</body>\n</html>\n");
    h
}

fn matrix(report: &RunReport) -> String {
    let mut h = String::from("<h2>Matrix</h2>\n<table class=\"matrix\">\n<tr><th>area</th>");
    for v in VERDICTS {
        let _ = write!(h, "<th>{}</th>", verdict_name(v));
    }
    h.push_str("<th>deviated</th></tr>\n");
    for area in areas(&report.results) {
        let _ = write!(h, "<tr><th>{}</th>", escape(&area));
        let in_area: Vec<&ScenarioResult> = report.results.iter().filter(|r| r.outcome.area == area).collect();
        for v in VERDICTS {
            let these: Vec<&&ScenarioResult> = in_area.iter().filter(|r| r.outcome.verdict == v).collect();
            let class = if these.is_empty() { "zero" } else { css_class(v) };
            let _ = write!(h, "<td class=\"n {class}\"><b>{}</b>", these.len());
            for r in these {
                let short = r.outcome.id.strip_prefix(&format!("{area}.")).unwrap_or(&r.outcome.id);
                let _ = write!(
                    h,
                    "<a href=\"#{}\" title=\"{}\">{}</a>",
                    anchor(&r.outcome.id),
                    escape(&r.outcome.title),
                    escape(short)
                );
            }
            h.push_str("</td>");
        }
        let _ = writeln!(
            h,
            "<td class=\"n\"><b>{}</b></td></tr>",
            in_area.iter().filter(|r| r.deviated).count()
        );
    }
    h.push_str("</table>\n");
    h
}

fn scenario(r: &ScenarioResult) -> String {
    let open = r.outcome.verdict == Verdict::Failed && !r.deviated;
    scenario_block(r, &anchor(&r.outcome.id), open)
}

/// A scenario's block (reason, sequence diagram, expectations, steps, stderr) as a `<details>`
/// with this HTML id; the matrix report shows the same block per cell.
pub(crate) fn scenario_block(r: &ScenarioResult, id: &str, open: bool) -> String {
    let o = &r.outcome;
    let mut h = String::new();
    let open = if open { " open" } else { "" };
    let _ = write!(
        h,
        "<details class=\"scenario\" id=\"{}\"{open}>\n<summary><span class=\"badge {}\">{}</span> <code>{}</code> — {} <span class=\"meta\">({} ms)</span>",
        escape(id),
        css_class(o.verdict),
        verdict_name(o.verdict),
        escape(&o.id),
        escape(&o.title),
        o.duration.as_millis()
    );
    if let Some(d) = &r.deviation {
        let link = d
            .link
            .as_deref()
            .map(|l| format!(" <a href=\"{}\">{}</a>", escape(l), escape(l)))
            .unwrap_or_default();
        let _ = write!(h, "<span class=\"dev\">deviated: {}{link}</span>", escape(&d.reason));
    }
    h.push_str("</summary>\n<div>\n");
    if let Some(reason) = &o.reason {
        let _ = writeln!(h, "<p class=\"reason\">{}</p>", escape(reason));
    }
    h.push_str("<div class=\"cols\">\n<div class=\"diagram\">\n");
    h.push_str(&sequence_diagram(o));
    h.push_str("</div>\n<div class=\"expect\">\n");
    h.push_str(&expectations(&o.expectations));
    h.push_str("</div>\n</div>\n");
    if !o.steps.is_empty() {
        let _ = writeln!(h, "<details><summary>steps ({})</summary>\n<ol start=\"0\">", o.steps.len());
        for s in &o.steps {
            let _ = writeln!(
                h,
                "<li>{} <code>{}</code> <span class=\"meta\">+{} ms, {} ms</span>{}</li>",
                if s.ok { "✓" } else { "✗" },
                escape(&s.description),
                s.started_ms,
                s.duration_ms,
                s.detail.as_deref().map(|d| format!(" — {}", escape(d))).unwrap_or_default()
            );
        }
        h.push_str("</ol>\n</details>\n");
    }
    if !o.stderr.is_empty() {
        let _ = writeln!(
            h,
            "<details><summary>adapter stderr</summary>\n<pre>{}</pre>\n</details>",
            escape(&o.stderr)
        );
    }
    h.push_str("</div>\n</details>\n");
    h
}

fn expectations(list: &[ExpectationOutcome]) -> String {
    if list.is_empty() {
        return "<p class=\"meta\">No expectation was judged.</p>\n".to_owned();
    }
    let mut h = String::from("<table>\n<tr><th></th><th>grade</th><th>expectation</th><th>expected</th><th>actual</th></tr>\n");
    for e in list {
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{} <span class=\"meta\">{}</span></td><td>{}</td><td>{}</td></tr>",
            if e.passed { "yes" } else { "no" },
            if e.passed { "✓" } else { "✗" },
            escape(&format!("{:?}", e.grade).to_lowercase()),
            escape(&e.label),
            escape(&e.kind),
            escape(&e.expected),
            escape(&e.actual)
        );
    }
    h.push_str("</table>\n");
    h
}

enum Row<'a> {
    Entry(&'a TimelineEntry),
    Decision(&'a ExpectationOutcome),
}

fn at_ms(r: &Row) -> u64 {
    match r {
        Row::Entry(t) => t.at_ms,
        Row::Decision(e) => e.at_ms,
    }
}

/// The timeline as an SVG sequence diagram: lanes client, harness and server; commands
/// harness → client, answers and events client → harness, actions harness → server,
/// observations server → harness; expectation decisions as bands across all lanes.
pub fn sequence_diagram(o: &ScenarioOutcome) -> String {
    let mut rows: Vec<Row> = o.timeline.iter().map(Row::Entry).collect();
    // Decisions go after the entries of the same moment (stable sort keeps that order).
    rows.extend(o.expectations.iter().map(Row::Decision));
    rows.sort_by_key(|r| (at_ms(r), matches!(r, Row::Decision(_))));
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    rows.truncate(MAX_ROWS);
    let height = TOP + ROW * (rows.len() as u32 + 1) + if hidden > 0 { ROW } else { 0 };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"sequence diagram of {}\">\n",
        escape(&o.id)
    );
    s.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#3c4a60\"/></marker></defs>\n");
    for (x, name) in [(X_CLIENT, "client"), (X_HARNESS, "harness"), (X_SERVER, "server")] {
        let _ = writeln!(
            s,
            "<text class=\"lane\" x=\"{x}\" y=\"18\" text-anchor=\"middle\">{name}</text><line class=\"life\" x1=\"{x}\" y1=\"26\" x2=\"{x}\" y2=\"{}\"/>",
            height - 4
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as u32 + ROW / 2;
        let _ = write!(s, "<text class=\"t\" x=\"4\" y=\"{}\">+{}ms</text>", y + 4, at_ms(row));
        match row {
            Row::Entry(t) => s.push_str(&entry(t, y)),
            Row::Decision(e) => {
                let class = if e.passed { "pass" } else { "fail" };
                let text = format!(
                    "{} {} [{}]",
                    if e.passed { "✓" } else { "✗" },
                    e.label,
                    format!("{:?}", e.grade).to_lowercase()
                );
                let _ = writeln!(
                    s,
                    "<g><title>{}</title><rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/><text x=\"{X_HARNESS}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
                    escape(&format!("{}: expected {}; actual {}", e.label, e.expected, e.actual)),
                    X_CLIENT - 60,
                    y - ROW / 2 + 2,
                    X_SERVER - X_CLIENT + 120,
                    ROW - 4,
                    y + 4,
                    escape(&clip(&text, LABEL_CHARS * 2))
                );
            }
        }
    }
    if hidden > 0 {
        let y = TOP + ROW * rows.len() as u32 + ROW / 2;
        let _ = writeln!(
            s,
            "<text x=\"{X_HARNESS}\" y=\"{y}\" text-anchor=\"middle\">… {hidden} more rows (the JSON report has them all)</text>"
        );
    }
    s.push_str("</svg>\n");
    s
}

fn entry(t: &TimelineEntry, y: u32) -> String {
    // (from, to, class); a journal observation of a client's session is drawn as that client
    // talking to the server, one of the server itself as a note on its lane.
    let server_itself = matches!(t.actor.as_str(), "" | "server" | "engine");
    let (from, to, class) = match t.lane.as_str() {
        "command" => (X_HARNESS, X_CLIENT, "m"),
        "answer" => (X_CLIENT, X_HARNESS, "m answer"),
        "client" => (X_CLIENT, X_HARNESS, "m event"),
        "action" => (X_HARNESS, X_SERVER, "m action"),
        "server" if server_itself => (X_SERVER, X_SERVER, "note"),
        "server" => (X_CLIENT, X_SERVER, "m obs"),
        _ => (X_HARNESS, X_HARNESS, "note"),
    };
    let label = if t.actor.is_empty() || t.actor == "server" {
        t.summary.clone()
    } else {
        format!("{}: {}", t.actor, t.summary)
    };
    let title = if t.detail.is_null() {
        format!("{} · {}", t.lane, label)
    } else {
        format!("{} · {}\n{}", t.lane, label, clip(&t.detail.to_string(), TITLE_DETAIL_CHARS))
    };
    // About 7 px per character of the monospace label.
    let chars = if from == to { 240 / 7 } else { (from.abs_diff(to) as usize) / 7 };
    if from == to {
        return format!(
            "<g><title>{}</title><rect class=\"note\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/><text x=\"{from}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>\n",
            escape(&title),
            from - 120,
            y - ROW / 2 + 2,
            240,
            ROW - 4,
            y + 4,
            escape(&clip(&label, chars))
        );
    }
    format!(
        "<g><title>{}</title><line class=\"{class}\" x1=\"{from}\" y1=\"{}\" x2=\"{to}\" y2=\"{}\" marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>\n",
        escape(&title),
        y + 6,
        y + 6,
        from.min(to) + from.abs_diff(to) / 2,
        y + 1,
        escape(&clip(&label, chars))
    )
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max && !s.contains('\n') {
        return s.to_owned();
    }
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        s.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>\u{7}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(anchor("connection.drop-reconnects"), "s-connection.drop-reconnects");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
