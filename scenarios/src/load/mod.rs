//! Loading scenario files: TOML syntax, the format (serde), then consistency (`validate`), each
//! failure located at file, line and column.
//!
//! Files a scenario names (a seed file, media fixtures) are read beside it, from disk or from
//! the embedded library, and handed to the engine with the scenario, so that it never touches
//! the file system.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::format::{Media, Scenario, SeedBase, Step};

mod error;
mod validate;

pub use error::{LoadError, LoadErrorKind};

/// The server's embedded default seed (the scenarios' default starting state).
pub(crate) const DEFAULT_SEED: &str = include_str!("../../../fixtures/seeds/default.json");

/// A scenario ready to play: the scenario and everything it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub scenario: Scenario,
    /// Where it was read from (`library/<area>/<name>.toml` for the embedded library).
    pub path: PathBuf,
    /// The starting state: `None` for the server's default seed, else the seed document (from
    /// the seed file or inline), in the mock server's seed format.
    pub seed: Option<Value>,
    /// The media fixtures it names, by the name as written.
    pub fixtures: BTreeMap<String, Vec<u8>>,
}

/// Where files named by a scenario come from.
pub(crate) trait Files {
    /// The bytes of `relative` (as written in the scenario), beside the scenario file `scenario`.
    fn read_beside(&self, scenario: &Path, relative: &str) -> Result<Vec<u8>, String>;
}

/// The file system.
pub(crate) struct Disk;

impl Files for Disk {
    fn read_beside(&self, scenario: &Path, relative: &str) -> Result<Vec<u8>, String> {
        let path = scenario.parent().unwrap_or(Path::new("")).join(relative);
        fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Joins `relative` to `scenario`'s folder and removes `.` and `..` without touching the disk.
pub(crate) fn join_lexically(scenario: &Path, relative: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in scenario.parent().unwrap_or(Path::new("")).join(relative).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Loads one scenario file from disk (files it names are read beside it).
pub fn load_file(path: impl AsRef<Path>) -> Result<Loaded, Vec<LoadError>> {
    let path = path.as_ref();
    let text = fs::read_to_string(path).map_err(|e| vec![LoadError::whole_file(path, LoadErrorKind::Io, format!("cannot read: {e}"))])?;
    load_str(path, &text)
}

/// Loads a scenario from `text`; `path` names it in errors and locates the files it names.
pub fn load_str(path: impl AsRef<Path>, text: &str) -> Result<Loaded, Vec<LoadError>> {
    load_with(path.as_ref(), text, &Disk)
}

pub(crate) fn load_with(path: &Path, text: &str, files: &dyn Files) -> Result<Loaded, Vec<LoadError>> {
    let doc = DeTable::parse(text).map_err(|e| vec![toml_error(path, text, &e, LoadErrorKind::Syntax)])?;
    let scenario: Scenario = toml::from_str(text).map_err(|e| vec![toml_error(path, text, &e, LoadErrorKind::Format)])?;

    let mut problems = Vec::new();
    let (seed, seed_summary) = resolve_seed(&scenario, path, files, &mut problems);
    let fixtures = resolve_fixtures(&scenario, path, files, &mut problems);
    problems.extend(validate::validate(&scenario, seed_summary.as_ref()));
    if !problems.is_empty() {
        let mut errors: Vec<LoadError> = problems.into_iter().map(|p| locate(path, text, doc.get_ref(), p)).collect();
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(errors);
    }
    Ok(Loaded {
        scenario,
        path: path.to_owned(),
        seed,
        fixtures,
    })
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error, kind: LoadErrorKind) -> LoadError {
    let message = with_suggestion(e.message().trim_end().replace('\n', "; "));
    match e.span() {
        Some(span) => LoadError::at(path, text, span.start, kind, message),
        None => LoadError::whole_file(path, kind, message),
    }
}

/// Serde lists every accepted name after an unknown one; when one of them is close to what was
/// written, say that one instead (`unknown variant `dorp`: did you mean `drop`?`).
fn with_suggestion(message: String) -> String {
    for what in ["unknown variant `", "unknown field `"] {
        let Some(rest) = message.strip_prefix(what) else { continue };
        let Some((written, list)) = rest.split_once("`, expected ") else {
            continue;
        };
        let names: Vec<&str> = list
            .trim_start_matches("one of ")
            .split(", ")
            .map(|n| n.trim_matches('`'))
            .collect();
        if let Some(best) = suggest(written, &names) {
            return format!("{what}{written}`: did you mean `{best}`?");
        }
    }
    message
}

/// The name closest to `written`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'n>(written: &str, names: &[&'n str]) -> Option<&'n str> {
    let limit = (written.chars().count() / 3).max(1);
    names
        .iter()
        .map(|n| (distance(written, n), *n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Edit distance in characters, a swap of two neighbours counting as one edit (optimal string
/// alignment): `dorp` is one edit from `drop`.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(distance("dorp", "drop"), 1);
        assert_eq!(distance("titel", "title"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(suggest("dorp", &["drop", "close"]), Some("drop"));
        assert_eq!(suggest("bobb", &["alice", "bob"]), Some("bob"));
        assert_eq!(suggest("dance", &["drop", "close"]), None);
        assert_eq!(
            with_suggestion("unknown variant `shuold`, expected one of `must`, `should`".into()),
            "unknown variant `shuold`: did you mean `should`?"
        );
        assert_eq!(with_suggestion("something else".into()), "something else");
    }
}

/// One step of a path into the document: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

/// A consistency problem found on a parsed scenario, at a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub at: Vec<Seg>,
    pub kind: LoadErrorKind,
    pub message: String,
}

impl Problem {
    pub fn invalid(at: Vec<Seg>, message: impl Into<String>) -> Problem {
        Problem {
            at,
            kind: LoadErrorKind::Invalid,
            message: message.into(),
        }
    }
}

/// Builds a `Vec<Seg>`: `at!["steps", 3, "client"]`.
macro_rules! at {
    ($($seg:expr),* $(,)?) => { vec![$($crate::load::Seg::from($seg)),*] };
}
pub(crate) use at;

/// Points a problem at the deepest part of its path that exists in the document (a default
/// that was not written points at the table that would hold it).
fn locate(path: &Path, text: &str, doc: &DeTable<'_>, p: Problem) -> LoadError {
    let mut span = 0..0;
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    for seg in &p.at {
        let next = match (seg, current) {
            (Seg::Key(k), None) => doc.get(k.as_str()),
            (Seg::Key(k), Some(v)) => v.get_ref().get(k.as_str()),
            (Seg::Index(i), Some(v)) => v.get_ref().get(*i),
            (Seg::Index(_), None) => None,
        };
        match next {
            Some(v) => {
                span = v.span();
                current = Some(v);
            }
            None => break,
        }
    }
    LoadError::at(path, text, span.start, p.kind, p.message)
}

/// What validation needs to know about a seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeedSummary {
    pub identities: Vec<String>,
    pub conversations: Vec<String>,
}

/// Checks a seed document's shape (the mock server's seed format, one account) and lists its
/// users and conversations.
pub(crate) fn summarise_seed(seed: &Value) -> Result<SeedSummary, String> {
    let obj = seed.as_object().ok_or("a seed is a JSON object")?;
    if !obj.get("format").is_some_and(Value::is_u64) {
        return Err("a seed needs `format` (a number; 1 today)".into());
    }
    let accounts = obj
        .get("accounts")
        .and_then(Value::as_array)
        .ok_or("a seed needs `accounts` (an array)")?;
    let [account] = accounts.as_slice() else {
        return Err(format!(
            "a scenario's seed has exactly one account (the tenant), this one has {}",
            accounts.len()
        ));
    };
    let strings = |list: &str, key: &str| -> Vec<String> {
        account
            .get(list)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get(key).and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(SeedSummary {
        identities: strings("users", "identity"),
        conversations: strings("conversations", "unique_name"),
    })
}

fn resolve_seed(scenario: &Scenario, path: &Path, files: &dyn Files, problems: &mut Vec<Problem>) -> (Option<Value>, Option<SeedSummary>) {
    let (seed, at) = match scenario.seed.base() {
        SeedBase::Default => {
            let seed: Value = serde_json::from_str(DEFAULT_SEED).expect("the default seed is JSON");
            return (None, summarise_seed(&seed).ok());
        }
        SeedBase::Inline(table) => (Value::Object(table.clone()), at!["seed", "inline"]),
        SeedBase::File(file) => {
            let at = at!["seed", "file"];
            let bytes = match files.read_beside(path, file) {
                Ok(bytes) => bytes,
                Err(e) => {
                    problems.push(Problem {
                        at,
                        kind: LoadErrorKind::Io,
                        message: format!("cannot read seed file `{file}`: {e}"),
                    });
                    return (None, None);
                }
            };
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => (v, at),
                Err(e) => {
                    problems.push(Problem::invalid(at, format!("seed file `{file}` is not JSON: {e}")));
                    return (None, None);
                }
            }
        }
    };
    match summarise_seed(&seed) {
        Ok(summary) => (Some(seed), Some(summary)),
        Err(e) => {
            problems.push(Problem::invalid(at, e));
            (None, None)
        }
    }
}

fn resolve_fixtures(scenario: &Scenario, path: &Path, files: &dyn Files, problems: &mut Vec<Problem>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (at, media) in media_of(scenario) {
        let Some(fixture) = &media.fixture else { continue };
        if out.contains_key(fixture) {
            continue;
        }
        match files.read_beside(path, fixture) {
            Ok(bytes) => {
                out.insert(fixture.clone(), bytes);
            }
            Err(e) => {
                let mut at = at;
                at.push(Seg::from("fixture"));
                problems.push(Problem {
                    at,
                    kind: LoadErrorKind::Io,
                    message: format!("cannot read media fixture `{fixture}`: {e}"),
                });
            }
        }
    }
    out
}

/// Every media spec in the scenario, with its path.
pub(crate) fn media_of(scenario: &Scenario) -> Vec<(Vec<Seg>, &Media)> {
    use crate::format::{ClientCommand, ServerAction};
    let mut out = Vec::new();
    for (at, step) in step_paths(scenario) {
        let media = match step {
            Step::Server(ServerAction::Post(p)) => p.media.as_ref(),
            Step::Command(c) => match &c.command {
                ClientCommand::Send(s) => s.media.as_ref(),
                _ => None,
            },
            _ => None,
        };
        if let Some(m) = media {
            let mut at = at;
            at.push(Seg::from("media"));
            out.push((at, m));
        }
    }
    out
}

/// Every step with its path: `steps[i]`, then `on[t].then[i]`.
pub(crate) fn step_paths(scenario: &Scenario) -> Vec<(Vec<Seg>, &Step)> {
    let mut out: Vec<(Vec<Seg>, &Step)> = scenario.steps.iter().enumerate().map(|(i, s)| (at!["steps", i], s)).collect();
    for (t, trigger) in scenario.on.iter().enumerate() {
        out.extend(trigger.then.iter().enumerate().map(|(i, s)| (at!["on", t, "then", i], s)));
    }
    out
}

/// Loads each source (a path and its text, or why it could not be read) with `files` resolving
/// what the scenarios name, and checks that ids are unique across them.
pub(crate) fn load_all(sources: Vec<(PathBuf, Result<String, LoadError>)>, files: &dyn Files) -> (Vec<Loaded>, Vec<LoadError>) {
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut errors = Vec::new();
    for (path, text) in sources {
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match load_with(&path, &text, files) {
            Ok(l) => {
                if let Some(first) = loaded.iter().find(|o| o.scenario.id == l.scenario.id) {
                    errors.push(duplicate(&l, &text, first));
                } else {
                    loaded.push(l);
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    (loaded, errors)
}

fn duplicate(second: &Loaded, text: &str, first: &Loaded) -> LoadError {
    let message = format!(
        "duplicate scenario id `{}`: {} has it too",
        second.scenario.id,
        first.path.display()
    );
    let doc = DeTable::parse(text).expect("it parsed before");
    locate(
        &second.path,
        text,
        doc.get_ref(),
        Problem {
            at: at!["id"],
            kind: LoadErrorKind::Duplicate,
            message,
        },
    )
}

/// The `*.toml` files under `dir`, recursively, sorted by path.
pub(crate) fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let entries = fs::read_dir(&d).map_err(|e| LoadError::whole_file(&d, LoadErrorKind::Io, format!("cannot read folder: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| LoadError::whole_file(&d, LoadErrorKind::Io, format!("cannot read folder: {e}")))?;
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads a scenario file, or every scenario under a folder, and returns every problem found
/// (none: all valid). What `rehearsal scenarios validate PATH` reports.
pub fn validate_path(path: impl AsRef<Path>) -> Vec<LoadError> {
    let path = path.as_ref();
    if path.is_dir() {
        match crate::library::Library::load_dir(path) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    } else {
        load_file(path).err().unwrap_or_default()
    }
}
