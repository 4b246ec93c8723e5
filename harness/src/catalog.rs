//! What `rehearsal scenarios list | show | validate` print: the library as text.
use std::path::Path;

use rehearsal_scenarios::format::Step;
use rehearsal_scenarios::{Library, LoadError, Loaded};

/// Where scenarios come from: the embedded library, or a folder.
pub fn load(dir: Option<&Path>) -> Result<Library, Vec<LoadError>> {
    match dir {
        Some(d) => Library::load_dir(d),
        None => Library::load_embedded(),
    }
}

/// One line per scenario (`Scenario::summary_line`: id, which starts with the area, mode and
/// title), in library order.
pub fn list(library: &Library) -> String {
    library.iter().map(|l| l.scenario.summary_line() + "\n").collect()
}

/// A scenario's source: the file as written (embedded or on disk), else its canonical TOML.
pub fn source(loaded: &Loaded) -> String {
    let embedded = loaded
        .path
        .strip_prefix("library")
        .ok()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .and_then(|name| rehearsal_scenarios::library::embedded_files().find(|(n, _)| *n == name))
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned());
    embedded
        .or_else(|| std::fs::read_to_string(&loaded.path).ok())
        .unwrap_or_else(|| loaded.scenario.to_toml())
}

/// What `scenarios show ID` prints: what the scenario checks, its expectations, then its TOML.
pub fn show(loaded: &Loaded) -> String {
    let s = &loaded.scenario;
    let mut out = format!("{}\n  {}\n\n", s.id, s.title);
    let requires = if s.requires.is_empty() {
        "nothing (observed mode: the client connects by itself)".to_owned()
    } else {
        s.requires.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    };
    for (k, v) in [
        ("area", s.area.to_string()),
        ("mode", s.mode().to_string()),
        ("requires", requires),
        ("timeout", format!("{:?}", s.timeout())),
        ("checks", s.checks.clone()),
        ("reference", s.reference.clone()),
        ("rationale", s.rationale.clone()),
        ("source", loaded.path.display().to_string()),
    ] {
        out.push_str(&format!("{k:>10}: {v}\n"));
    }
    let inline = s.steps.iter().filter_map(|st| match st {
        Step::Expect(e) => Some((e, "inline")),
        _ => None,
    });
    let end = s.expect.iter().map(|e| (e, "at the end"));
    let all: Vec<_> = inline.chain(end).collect();
    if !all.is_empty() {
        out.push_str("\nexpectations:\n");
        for (e, when) in all {
            let grade = format!("{:?}", e.grade).to_lowercase();
            let label = e.label.as_deref().map(|l| format!(" — {l}")).unwrap_or_default();
            out.push_str(&format!("  {grade:<13} {:<12} {when}{label}\n", e.kind.name()));
        }
    }
    out.push_str("\n# ---- ");
    out.push_str(&loaded.path.display().to_string());
    out.push_str(" ----\n");
    let src = source(loaded);
    out.push_str(&src);
    if !src.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Load errors as `file:line:col: message` followed by the line and a caret.
pub fn render_errors(errors: &[LoadError]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(&e.to_string());
        out.push('\n');
        // `render()` is `error: …`, `  --> file:line:col`, then the snippet.
        for line in e.render().lines().skip(2) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("{} error{}\n", errors.len(), if errors.len() == 1 { "" } else { "s" }));
    out
}
