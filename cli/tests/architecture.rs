//! The import directions ARCHITECTURE.md states ("Boundaries", and the leaf modules of the code
//! map), checked on the source: a file that imports across a boundary fails here with the line
//! to look at, instead of the rule quietly turning false. The CLI crate hosts the check because it
//! sits on top of every other crate of the workspace.
//!
//! Only `crate::…` paths (including `use crate::{a, b}` groups) are read, comments excluded;
//! `super::` paths never leave the module tree they start in here, so they cannot cross these
//! boundaries.
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The `.rs` files at `rel` (a file, or a folder walked recursively), relative to the workspace.
fn sources(rel: &str) -> Vec<PathBuf> {
    let root = workspace().join(rel);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    assert!(!out.is_empty(), "no sources at {rel}: the rule names a path that moved");
    out.sort();
    out
}

/// The text with `//` comments (and doc comments) removed, line numbers kept.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module a file names through `crate::`, with the line it is named on.
fn crate_modules(text: &str) -> Vec<(String, usize)> {
    let text = without_comments(text);
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        // `rehearsal_mock_server::` and other paths ending in "crate" are not `crate::`.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let line = text[..start].matches('\n').count() + 1;
        if bytes.get(at) == Some(&b'{') {
            // A group: the first segment of each top-level item.
            let mut depth = 0usize;
            let mut item = String::new();
            for &b in &bytes[at..] {
                match b {
                    b'{' => {
                        depth += 1;
                        if depth > 1 {
                            item.push('{');
                        }
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                        item.push('}');
                    }
                    b',' if depth == 1 => {
                        push_first_segment(&item, line, &mut found);
                        item.clear();
                    }
                    _ => item.push(b as char),
                }
            }
            push_first_segment(&item, line, &mut found);
        } else {
            push_first_segment(&text[at..], line, &mut found);
        }
    }
    found
}

fn push_first_segment(item: &str, line: usize, found: &mut Vec<(String, usize)>) {
    let name: String = item
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if !name.is_empty() && name != "self" {
        found.push((name, line));
    }
}

/// Fails listing every `crate::M` in the files at `rel` where `M` is in `forbidden`.
fn forbid(rel: &str, forbidden: &[&str], why: &str) {
    let mut offences = Vec::new();
    for file in sources(rel) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (module, line) in crate_modules(&text) {
            if forbidden.contains(&module.as_str()) {
                let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
                offences.push(format!("{shown}:{line}: crate::{module}"));
            }
        }
    }
    assert!(offences.is_empty(), "{why}:\n{}", offences.join("\n"));
}

/// Fails unless every `crate::M` in the files at `rel` has `M` in `allowed`.
fn allow_only(rel: &str, allowed: &[&str], why: &str) {
    let mut offences = Vec::new();
    for file in sources(rel) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (module, line) in crate_modules(&text) {
            if !allowed.contains(&module.as_str()) {
                let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
                offences.push(format!("{shown}:{line}: crate::{module}"));
            }
        }
    }
    assert!(offences.is_empty(), "{why}:\n{}", offences.join("\n"));
}

#[test]
fn the_domain_knows_nothing_of_http_twilsock_or_sync() {
    allow_only(
        "mock-server/src/domain",
        &["domain", "clock", "sid"],
        "domain/ imports only the clock and SIDs (ARCHITECTURE.md, Boundaries)",
    );
}

#[test]
fn the_journal_is_a_leaf() {
    allow_only(
        "mock-server/src/journal.rs",
        &["journal", "clock"],
        "the journal imports nothing of the crate but the clock",
    );
}

#[test]
fn the_frame_tap_is_a_leaf() {
    allow_only(
        "mock-server/src/frame_tap.rs",
        &["frame_tap", "clock"],
        "the frame tap imports nothing of the crate but the clock (twilsock calls into it)",
    );
}

#[test]
fn twilsock_knows_no_conversations_sync_or_control_plane() {
    forbid(
        "mock-server/src/twilsock",
        &[
            "domain",
            "rest",
            "client_api",
            "sync",
            "control",
            "webhooks",
            "media",
            "server",
            "realtime",
            "inspector",
        ],
        "twilsock sees only its `Backend` (ARCHITECTURE.md, Boundaries)",
    );
}

#[test]
fn the_codec_knows_no_sessions() {
    // The codec and its tests (`codec/tests.rs`): a test that needs a session belongs elsewhere.
    let files = sources("mock-server/src/twilsock/codec.rs")
        .into_iter()
        .chain(sources("mock-server/src/twilsock/codec"));
    for file in files {
        let code = without_comments(&std::fs::read_to_string(&file).unwrap());
        let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
        for needle in ["session::", "super::session", "Session"] {
            assert!(
                !code.contains(needle),
                "{shown} names `{needle}`: the codec knows nothing of sessions"
            );
        }
    }
}

#[test]
fn sync_and_webhooks_are_fed_by_domain_events_not_by_the_ways_in() {
    for rel in ["mock-server/src/sync", "mock-server/src/webhooks"] {
        forbid(
            rel,
            &["control", "rest", "client_api", "server", "inspector", "realtime", "media"],
            "Sync and webhooks depend on the domain (and the journal), never on a way in or the control plane",
        );
    }
}

#[test]
fn reporters_read_run_events_not_the_runner() {
    for rel in ["harness/src/report", "harness/src/redact.rs", "harness/src/events.rs"] {
        forbid(
            rel,
            &["runner", "process", "matrix"],
            "reporters and redaction are functions of the run's events (harness/src/events.rs)",
        );
    }
}

/// The crates' sources (not their tests: a test may wrap errors as it likes).
const CRATE_SOURCES: [&str; 8] = [
    "mock-server/src",
    "scenarios/src",
    "harness/src",
    "client/src",
    "testkit/src",
    "bench/src",
    "adapters/rust/src",
    "cli/src",
];

/// Where an error type would expose a cause as `source`: `#[source]`, `#[from]` (unless the
/// variant is `#[error(transparent)]`, whose message and source are both its inner error's), a
/// field named `source` in a `thiserror` type, or a hand-written `fn source`. Lines, 1-based.
fn source_exposures(text: &str) -> Vec<(usize, String)> {
    let code = without_comments(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    let mut in_error_type = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let derives_error = t.contains("thiserror::Error") || (t.contains("Error") && code.contains("use thiserror::Error"));
        if t.starts_with("#[derive(") && derives_error {
            in_error_type = true;
        } else if in_error_type && (line.starts_with('}') || (t.ends_with(';') && !line.starts_with(' '))) {
            in_error_type = false;
        }
        let transparent = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !l.starts_with("///"))
            .is_some_and(|l| l.contains("#[error(transparent)]"));
        if line.contains("#[source]") {
            found.push((i + 1, "#[source]".to_owned()));
        }
        if line.contains("#[from]") && !(transparent || t.contains("#[error(transparent)]")) {
            found.push((i + 1, "#[from] on a variant that prints its own message".to_owned()));
        }
        if in_error_type && (t.starts_with("source:") || t.contains("{ source:") || t.contains(", source:")) {
            found.push((i + 1, "a field named `source` (thiserror makes it the source)".to_owned()));
        }
        if t.contains("fn source(&self)") {
            found.push((i + 1, "a hand-written `fn source`".to_owned()));
        }
    }
    found
}

/// ARCHITECTURE.md, Boundaries: errors name their cause in their message and never also as
/// `source`, so `{:#}` (anyhow, the CLI's error line) prints each cause once.
#[test]
fn errors_print_their_cause_once() {
    let mut offences = Vec::new();
    for rel in CRATE_SOURCES {
        for file in sources(rel) {
            let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
            for (line, what) in source_exposures(&std::fs::read_to_string(&file).unwrap()) {
                offences.push(format!("{shown}:{line}: {what}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "errors that print their cause must not also expose it as `source` (or print only \
         `#[error(transparent)]`):\n{}",
        offences.join("\n")
    );
}

/// The error scanner itself: what counts as exposing a cause, and what does not.
#[test]
fn the_error_scanner_tells_a_source_from_a_message() {
    let offending = "#[derive(Debug, thiserror::Error)]\npub enum E {\n    #[error(\"io: {0}\")]\n    Io(#[from] std::io::Error),\n    #[error(\"x\")]\n    X(#[source] Inner),\n    #[error(\"y: {source}\")]\n    Y { source: Inner },\n}\nimpl std::error::Error for F {\n    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { None }\n}";
    let lines: Vec<usize> = source_exposures(offending).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, [4, 6, 8, 11]);
    let fine = "#[derive(Debug, thiserror::Error)]\npub enum E {\n    #[error(transparent)]\n    Act(#[from] ActError),\n    #[error(\"io: {0}\")]\n    Io(std::io::Error),\n}\n// #[source] in a comment\nstruct Spec {\n    source: PathBuf,\n}";
    assert_eq!(source_exposures(fine), []);
}

/// The scanner itself: groups, nested groups, paths that merely end in `crate`, comments.
#[test]
fn the_scanner_reads_groups_and_skips_comments() {
    let text = "use crate::{clock::Millis, domain::{A, B}, self};\n// use crate::rest;\nlet x = rehearsal_crate::x; crate::sync::go();";
    let names: Vec<String> = crate_modules(text).into_iter().map(|(m, _)| m).collect();
    assert_eq!(names, ["clock", "domain", "sync"]);
    assert_eq!(crate_modules("\n\nuse crate::journal::Kind;")[0], ("journal".to_owned(), 3));
}

// ---------------------------------------------------------------------------------------------
// Test support stays in the tests
// ---------------------------------------------------------------------------------------------

/// The workspace's member crates, from the root manifest's `members = [...]`.
fn workspace_members() -> Vec<String> {
    let root = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let start = root.find("members = [").expect("the root manifest lists its members") + "members = [".len();
    let end = start + root[start..].find(']').unwrap();
    let members: Vec<String> = root[start..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() > 1, "members not read: {members:?}");
    members
}

/// The lines of a manifest that name `package` outside a dev-dependencies table (section headers
/// `[dev-dependencies]` and `[target.….dev-dependencies]`), with their line numbers.
fn named_outside_dev_dependencies(manifest: &str, package: &str) -> Vec<(usize, String)> {
    let mut section = String::new();
    let mut found = Vec::new();
    for (n, raw) in manifest.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            // `[dependencies.rehearsal-test-support]` names it in its header.
            if !section.ends_with("dev-dependencies") && !section.contains("dev-dependencies.") && line.contains(package) {
                found.push((n + 1, raw.to_owned()));
            }
            continue;
        }
        let dev = section == "dev-dependencies" || section.ends_with(".dev-dependencies") || section.starts_with("dev-dependencies.");
        if !dev && line.contains(package) {
            found.push((n + 1, raw.to_owned()));
        }
    }
    found
}

/// `rehearsal-test-support` (a raw twilsock client, token minting) is for the workspace's own
/// tests: no crate may ship it as a normal or build dependency, and it is never published.
#[test]
fn test_support_is_only_ever_a_dev_dependency() {
    let mut offences = Vec::new();
    for member in workspace_members() {
        if member == "test-support" {
            continue;
        }
        let rel = format!("{member}/Cargo.toml");
        let manifest = std::fs::read_to_string(workspace().join(&rel)).unwrap();
        for (line, text) in named_outside_dev_dependencies(&manifest, "rehearsal-test-support") {
            offences.push(format!("{rel}:{line}: {}", text.trim()));
        }
    }
    assert!(
        offences.is_empty(),
        "rehearsal-test-support outside [dev-dependencies] (it is test-only, see test-support/src/lib.rs):\n{}",
        offences.join("\n")
    );
    let own = std::fs::read_to_string(workspace().join("test-support/Cargo.toml")).unwrap();
    assert!(
        own.lines().any(|l| l.trim() == "publish = false"),
        "test-support/Cargo.toml must say publish = false"
    );
}

/// The manifest scanner itself: sections, dotted tables, comments.
#[test]
fn the_manifest_scanner_tells_dev_dependencies_apart() {
    let manifest = "[dependencies]\nserde = \"1\"\n# rehearsal-test-support in a comment\n\
                    [dev-dependencies]\nrehearsal-test-support.workspace = true\n\
                    [build-dependencies]\nrehearsal-test-support = { path = \"x\" }\n\
                    [target.'cfg(unix)'.dev-dependencies]\nrehearsal-test-support.workspace = true\n\
                    [dependencies.rehearsal-test-support]\npath = \"x\"\n";
    let found = named_outside_dev_dependencies(manifest, "rehearsal-test-support");
    let lines: Vec<usize> = found.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [7, 10], "{found:?}");
}
