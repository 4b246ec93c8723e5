//! The compatibility matrix: the library played against several implementations (clients), one
//! after the other, and graded side by side, the way Bowtie and Autobahn present theirs.
//!
//! ```text
//! run_matrix(clients) ─▶ for each client: runner::run_with (its own MockServer, --jobs at once,
//!                        its own deviations and reporters) ─▶ RunReport | RunError
//!                     ─▶ MatrixRun ─▶ matrix reports: JSON (doc), HTML, Markdown, badges
//! ```
//!
//! Clients are played one after the other, each with the whole `--jobs` and a server of its own:
//! one implementation's load or state can never change another's verdicts, and a matrix of one
//! client is exactly today's `rehearsal run`.
//!
//! Exit code of a matrix run: the highest of its implementations' codes — 0 when every
//! implementation passes, 1 when some implementation has a FAILED scenario that no deviation
//! covers, 2 when some implementation could not run (the others are still played and reported)
//! or a matrix report cannot be written.
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::exit;
use crate::redact::Redactor;
use crate::report::{ReportKind, ReportSpec, Reporter};
use crate::runner::{Interruption, Play, RunError, RunOptions, RunReport, run_until};

pub mod badge;
pub mod doc;
pub mod html;
pub mod markdown;
pub mod readme;

pub use doc::MatrixDoc;

/// The placeholder of a per-implementation report path (`json=out/{client}.json`).
pub const CLIENT_PLACEHOLDER: &str = "{client}";
/// Longest implementation name.
pub const MAX_NAME: usize = 64;

/// One implementation under test: a name (column, badge, file names) and its adapter command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    pub name: String,
    pub command: String,
}

impl ClientSpec {
    /// Parses a `--client` value: `NAME=COMMAND`, or a bare `COMMAND` named `client-{position}`
    /// (1-based).
    ///
    /// The text before the first `=` is a NAME when it is a name (letters, digits and `.` `_`
    /// `-` `@` `+`, starting with a letter or digit, at most [`MAX_NAME`]) and does not look like
    /// an environment assignment, i.e. is not all of `A-Z`, `0-9` and `_`: so
    /// `NODE_OPTIONS=--trace-warnings node adapter.mjs` stays a command, as it always was, while
    /// `sdk-3.0.1=node adapter.mjs --sdk 3.0.1` and `rust=rehearsal-adapter-rust` are named.
    /// A command that starts with a lower-case assignment can still be named explicitly:
    /// `mine=foo=1 ./adapter`.
    pub fn parse(value: &str, position: usize) -> Result<ClientSpec, String> {
        if value.trim().is_empty() {
            return Err("`--client` needs a command".to_owned());
        }
        if let Some((name, command)) = value.split_once('=')
            && is_name(name)
            && !is_env_assignment_name(name)
        {
            if command.trim().is_empty() {
                return Err(format!("`--client {name}=` needs a command after `=`"));
            }
            return Ok(ClientSpec {
                name: name.to_owned(),
                command: command.to_owned(),
            });
        }
        Ok(ClientSpec {
            name: format!("client-{position}"),
            command: value.to_owned(),
        })
    }

    /// Parses every `--client` value and checks that the names are distinct.
    pub fn parse_all(values: &[String]) -> Result<Vec<ClientSpec>, String> {
        let specs = values
            .iter()
            .enumerate()
            .map(|(i, v)| ClientSpec::parse(v, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name) {
                return Err(format!("two clients are named `{}`: give each a distinct NAME=COMMAND", s.name));
            }
        }
        Ok(specs)
    }
}

/// Letters, digits, `.`, `_`, `-`, `@`, `+`; starts with a letter or digit; at most
/// [`MAX_NAME`]. Safe as a file name and in HTML ids.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
}

/// `NODE_OPTIONS`, `DEBUG`, `A1`: what an environment assignment in front of a command looks like.
fn is_env_assignment_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A matrix report file format (`--report KIND=PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatrixKind {
    /// `matrix-json`: the documented document ([`doc`], `harness/schema/matrix.schema.json`).
    Json,
    /// `matrix-html`: the grid, each cell opening its scenario's timeline.
    Html,
    /// `matrix-md`: the Markdown table for a README.
    Markdown,
    /// `badges`: a folder with one SVG badge per implementation.
    Badges,
}

impl MatrixKind {
    pub const ALL: [MatrixKind; 4] = [MatrixKind::Json, MatrixKind::Html, MatrixKind::Markdown, MatrixKind::Badges];

    pub fn as_str(self) -> &'static str {
        match self {
            MatrixKind::Json => "matrix-json",
            MatrixKind::Html => "matrix-html",
            MatrixKind::Markdown => "matrix-md",
            MatrixKind::Badges => "badges",
        }
    }
}

/// What `--report` asks for: a run report per implementation (`junit`, `json`, `html`; with
/// several clients the path must contain `{client}`), or a matrix report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    Run(ReportSpec),
    Matrix { kind: MatrixKind, path: PathBuf },
}

impl FromStr for OutputSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<OutputSpec, String> {
        let kinds = "junit, json, html, matrix-json, matrix-html, matrix-md or badges";
        let (kind, path) = s
            .split_once('=')
            .ok_or_else(|| format!("expected KIND=PATH ({kinds}), not `{s}`"))?;
        if let Some(k) = MatrixKind::ALL.into_iter().find(|k| k.as_str() == kind.trim()) {
            if path.is_empty() {
                return Err(format!("`{kind}=` needs a path"));
            }
            return Ok(OutputSpec::Matrix {
                kind: k,
                path: PathBuf::from(path),
            });
        }
        if !ReportKind::ALL.iter().any(|k| k.as_str() == kind.trim()) {
            return Err(format!("unknown report kind `{kind}`: {kinds}"));
        }
        s.parse::<ReportSpec>().map(OutputSpec::Run)
    }
}

impl OutputSpec {
    /// The run report of `client`: `{client}` in the path replaced by its name.
    pub fn for_client(spec: &ReportSpec, client: &ClientSpec) -> ReportSpec {
        let path = spec.path.to_string_lossy().replace(CLIENT_PLACEHOLDER, &client.name);
        ReportSpec {
            kind: spec.kind,
            path: PathBuf::from(path),
        }
    }

    /// With several clients, every run report must say where each one goes.
    pub fn check(specs: &[OutputSpec], clients: usize) -> Result<(), String> {
        if clients > 1 {
            for s in specs {
                if let OutputSpec::Run(r) = s
                    && !r.path.to_string_lossy().contains(CLIENT_PLACEHOLDER)
                {
                    return Err(format!(
                        "with several clients, `{}={}` must contain {CLIENT_PLACEHOLDER} (one report per client), or use a matrix report: matrix-json, matrix-html, matrix-md, badges",
                        r.kind,
                        r.path.display()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One implementation's part of the matrix.
#[derive(Debug)]
pub struct ImplementationRun {
    pub client: ClientSpec,
    /// The deviations file it was graded with.
    pub deviations: Option<PathBuf>,
    /// Its run, or why it could not run (exit 2 for the matrix; the others still play).
    pub outcome: Result<RunReport, RunError>,
}

impl ImplementationRun {
    pub fn exit_code(&self) -> u8 {
        match &self.outcome {
            Ok(r) => r.exit_code(),
            Err(e) => e.exit_code(),
        }
    }
}

/// A finished matrix run, implementations in the order given.
#[derive(Debug)]
pub struct MatrixRun {
    pub implementations: Vec<ImplementationRun>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration: Duration,
    pub jobs: usize,
    /// `rehearsal-harness` version.
    pub harness_version: String,
}

impl MatrixRun {
    /// The highest of the implementations' exit codes (see the module docs).
    pub fn exit_code(&self) -> u8 {
        self.implementations
            .iter()
            .map(ImplementationRun::exit_code)
            .max()
            .unwrap_or(exit::OK)
    }

    /// The same run with volatile values redacted (what `--redact` reports show).
    pub fn redacted(self) -> MatrixRun {
        let r = Redactor::new();
        MatrixRun {
            implementations: self
                .implementations
                .into_iter()
                .map(|i| ImplementationRun {
                    outcome: i.outcome.map(|report| r.report(&report)),
                    ..i
                })
                .collect(),
            started_at: crate::redact::TIMESTAMP.to_owned(),
            duration: Duration::ZERO,
            jobs: self.jobs,
            harness_version: crate::redact::VERSION.to_owned(),
        }
    }
}

/// Hooks of a matrix run: the reporters of each implementation's run, and a word before each.
pub trait MatrixObserver {
    /// Called before `client` plays; returns its reporters.
    fn reporters(&mut self, client: &ClientSpec, index: usize, of: usize) -> Vec<Box<dyn Reporter>>;
    /// Called after `client` played (or could not).
    fn finished(&mut self, _run: &ImplementationRun) {}
}

/// Plays the selection of `base` against every client in turn with `player`.
///
/// `deviations_of` gives each client's deviations file. A library or selection that cannot be
/// loaded is the same for every client: that error ends the matrix at once (`Err`); anything
/// else (the client does not start, its deviations file is invalid, a report cannot be
/// written) is that implementation's result and the next one plays.
pub async fn run_matrix<P: Play + Clone>(
    clients: &[ClientSpec],
    base: &RunOptions,
    deviations_of: impl Fn(&ClientSpec) -> Option<PathBuf>,
    player: P,
    observer: &mut dyn MatrixObserver,
    interrupt: impl Future<Output = Interruption> + Send + 'static,
) -> Result<MatrixRun, RunError> {
    // One signal watcher for the whole matrix: each client's run is cancelled by it, and no
    // client starts after it fired.
    let (interrupted_tx, interrupted) = tokio::sync::watch::channel(None::<Interruption>);
    let watcher = tokio::spawn(async move {
        let why = interrupt.await;
        let _ = interrupted_tx.send(Some(why));
        std::future::pending::<()>().await;
    });
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut implementations = Vec::with_capacity(clients.len());
    for (index, client) in clients.iter().enumerate() {
        if interrupted.borrow().is_some() {
            break;
        }
        let mut opts = base.clone();
        opts.client = client.command.clone();
        opts.deviations = deviations_of(client);
        let reporters = observer.reporters(client, index, clients.len());
        let mut signal = interrupted.clone();
        let this_run = async move {
            let why = signal.wait_for(Option::is_some).await.ok().and_then(|why| *why);
            match why {
                Some(why) => why,
                None => std::future::pending().await,
            }
        };
        let outcome = run_until(opts.clone(), player.clone(), reporters, this_run).await;
        if let Err(e @ (RunError::Library(_) | RunError::Select(_))) = outcome {
            watcher.abort();
            return Err(e);
        }
        let run = ImplementationRun {
            client: client.clone(),
            deviations: opts.deviations,
            outcome,
        };
        observer.finished(&run);
        implementations.push(run);
    }
    watcher.abort();
    Ok(MatrixRun {
        implementations,
        started_at,
        duration: started.elapsed(),
        jobs: base.jobs.max(1),
        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Why a matrix report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {} report {}: {error}", kind.as_str(), path.display())]
pub struct WriteError {
    pub kind: MatrixKind,
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Writes one matrix report (for [`MatrixKind::Badges`], `path` is a folder: one
/// `NAME.svg` per implementation).
pub fn write(run: &MatrixRun, kind: MatrixKind, path: &Path) -> Result<(), WriteError> {
    let err = |error| WriteError {
        kind,
        path: path.to_owned(),
        error,
    };
    let doc = MatrixDoc::of(run);
    match kind {
        MatrixKind::Json => crate::report::write_atomically(path, doc.to_json().as_bytes()).map_err(err),
        MatrixKind::Markdown => crate::report::write_atomically(path, markdown::render(&doc).as_bytes()).map_err(err),
        MatrixKind::Html => crate::report::write_atomically(path, html::render(run, &doc).as_bytes()).map_err(err),
        MatrixKind::Badges => {
            std::fs::create_dir_all(path).map_err(err)?;
            for (file, svg) in badge::badges(&doc) {
                crate::report::write_atomically(&path.join(file), svg.as_bytes()).map_err(err)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_values_parse() {
        let named = ClientSpec::parse("sdk-3.0.1=node adapter.mjs --sdk 3.0.1", 1).unwrap();
        assert_eq!(
            (named.name.as_str(), named.command.as_str()),
            ("sdk-3.0.1", "node adapter.mjs --sdk 3.0.1")
        );
        let rust = ClientSpec::parse("rust=rehearsal-adapter-rust", 2).unwrap();
        assert_eq!((rust.name.as_str(), rust.command.as_str()), ("rust", "rehearsal-adapter-rust"));
        // A bare command keeps its meaning, environment assignments included.
        for cmd in [
            "node adapters/twilio-conversations-js/adapter.mjs",
            "NODE_OPTIONS=--trace-warnings node adapter.mjs",
            "DEBUG=1 ./adapter --x=y",
            "./adapter --mode=fast",
            "sh -c 'a=b'",
        ] {
            let s = ClientSpec::parse(cmd, 3).unwrap();
            assert_eq!((s.name.as_str(), s.command.as_str()), ("client-3", cmd), "{cmd}");
        }
        // Named explicitly, a command may start with a lower-case assignment.
        assert_eq!(ClientSpec::parse("mine=foo=1 ./adapter", 1).unwrap().command, "foo=1 ./adapter");
        assert!(ClientSpec::parse("js=", 1).unwrap_err().contains("needs a command"));
        assert!(ClientSpec::parse("  ", 1).is_err());
        let dup = ClientSpec::parse_all(&["a=x".into(), "a=y".into()]).unwrap_err();
        assert!(dup.contains("two clients are named `a`"), "{dup}");
        let two = ClientSpec::parse_all(&["x".into(), "y".into()]).unwrap();
        assert_eq!(two.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["client-1", "client-2"]);
    }

    #[test]
    fn output_specs_parse_and_need_the_placeholder_with_several_clients() {
        assert_eq!(
            "matrix-md=out/compat.md".parse::<OutputSpec>().unwrap(),
            OutputSpec::Matrix {
                kind: MatrixKind::Markdown,
                path: "out/compat.md".into()
            }
        );
        assert!(matches!("json=r.json".parse::<OutputSpec>().unwrap(), OutputSpec::Run(_)));
        assert!("pdf=x".parse::<OutputSpec>().unwrap_err().contains("unknown report kind"));
        assert!("badges=".parse::<OutputSpec>().unwrap_err().contains("needs a path"));
        let plain: Vec<OutputSpec> = vec!["json=r.json".parse().unwrap()];
        assert!(OutputSpec::check(&plain, 1).is_ok());
        assert!(OutputSpec::check(&plain, 2).unwrap_err().contains("{client}"));
        let templated: Vec<OutputSpec> = vec!["json=out/{client}.json".parse().unwrap(), "badges=out/b".parse().unwrap()];
        assert!(OutputSpec::check(&templated, 2).is_ok());
        let OutputSpec::Run(spec) = &templated[0] else { unreachable!() };
        let client = ClientSpec::parse("sdk-2.6.0=x", 1).unwrap();
        assert_eq!(OutputSpec::for_client(spec, &client).path, PathBuf::from("out/sdk-2.6.0.json"));
    }
}
