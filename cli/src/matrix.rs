//! `rehearsal run` with one client or several (a compatibility matrix), and `rehearsal compat`
//! (the README's compatibility table from a matrix JSON report).
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rehearsal_harness::matrix::{self, ClientSpec, ImplementationRun, MatrixDoc, MatrixObserver, OutputSpec, readme};
use rehearsal_harness::report::{FileReporter, HumanReporter, ReportSpec};
use rehearsal_harness::{Reporter, RunOptions, exit};

pub struct Args {
    pub clients: Vec<String>,
    pub deviations: Vec<String>,
    pub reports: Vec<OutputSpec>,
    pub progress: bool,
    pub opts: RunOptions,
}

fn usage(message: &str) -> ExitCode {
    eprintln!("rehearsal: {message}");
    ExitCode::from(exit::ERROR)
}

/// Which deviations file each client gets: `NAME=FILE` for that client, else the last bare
/// `FILE`. A value whose text before `=` is not a client's name is a path.
fn deviations_of(values: &[String], clients: &[ClientSpec]) -> impl Fn(&ClientSpec) -> Option<PathBuf> + use<> {
    let mut shared: Option<PathBuf> = None;
    let mut scoped: Vec<(String, PathBuf)> = Vec::new();
    for v in values {
        match v.split_once('=') {
            Some((name, file)) if clients.iter().any(|c| c.name == name) => scoped.push((name.to_owned(), PathBuf::from(file))),
            _ => shared = Some(PathBuf::from(v)),
        }
    }
    move |c: &ClientSpec| {
        scoped
            .iter()
            .rev()
            .find(|(n, _)| *n == c.name)
            .map(|(_, p)| p.clone())
            .or_else(|| shared.clone())
    }
}

struct Cli {
    progress: bool,
    run_reports: Vec<ReportSpec>,
    many: bool,
}

impl MatrixObserver for Cli {
    fn reporters(&mut self, client: &ClientSpec, index: usize, of: usize) -> Vec<Box<dyn Reporter>> {
        if self.many {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "\n=== {} ({}/{of}): {}", client.name, index + 1, client.command);
            let _ = out.flush();
        }
        let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(HumanReporter::new(Box::new(std::io::stdout()), self.progress))];
        reporters.extend(
            self.run_reports
                .iter()
                .map(|spec| Box::new(FileReporter::new(OutputSpec::for_client(spec, client))) as Box<dyn Reporter>),
        );
        reporters
    }

    fn finished(&mut self, run: &ImplementationRun) {
        if let Err(e) = &run.outcome {
            if self.many {
                eprintln!("rehearsal: {}: {e}", run.client.name);
            } else {
                eprintln!("rehearsal: {e}");
            }
        }
    }
}

/// `rehearsal run`: every client in turn, then the matrix reports. Exit code: the highest of
/// the clients' codes, 2 when a matrix report cannot be written.
pub fn run(args: Args) -> ExitCode {
    let clients = match ClientSpec::parse_all(&args.clients) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    if let Err(e) = OutputSpec::check(&args.reports, clients.len()) {
        return usage(&e);
    }
    let (run_reports, matrix_reports): (Vec<_>, Vec<_>) = args.reports.into_iter().partition(|r| matches!(r, OutputSpec::Run(_)));
    let run_reports = run_reports
        .into_iter()
        .filter_map(|r| match r {
            OutputSpec::Run(spec) => Some(spec),
            OutputSpec::Matrix { .. } => None,
        })
        .collect();
    let mut observer = Cli {
        progress: args.progress,
        run_reports,
        many: clients.len() > 1,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rehearsal: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let deviations = deviations_of(&args.deviations, &clients);
    let redact = args.opts.redact;
    let signals = {
        let _runtime = rt.enter();
        crate::signals::Signals::listen()
    };
    let played = rt.block_on(matrix::run_matrix(
        &clients,
        &args.opts,
        deviations,
        rehearsal_harness::Engine::default(),
        &mut observer,
        crate::signals::interruption(signals),
    ));
    let run = match played {
        Ok(run) => run,
        Err(e) => {
            eprintln!("rehearsal: {e}");
            if let rehearsal_harness::RunError::Library(errors) = &e {
                eprint!("{}", rehearsal_harness::catalog::render_errors(errors));
            }
            return ExitCode::from(e.exit_code());
        }
    };
    let run = if redact { run.redacted() } else { run };
    let mut code = run.exit_code();
    for r in &matrix_reports {
        if let OutputSpec::Matrix { kind, path } = r
            && let Err(e) = matrix::write(&run, *kind, path)
        {
            eprintln!("rehearsal: {e}");
            code = code.max(exit::ERROR);
        }
    }
    if observer.many {
        println!(
            "\n=== compatibility matrix (exit {code}: the highest of the clients')\n\n{}",
            matrix::markdown::render(&MatrixDoc::of(&run))
        );
    }
    ExitCode::from(code)
}

#[derive(clap::Args)]
pub struct CompatArgs {
    /// A matrix JSON report (`rehearsal run … --report matrix-json=PATH`).
    #[arg(long, value_name = "FILE")]
    matrix: PathBuf,
    /// The file holding the table between the markers.
    #[arg(long, value_name = "FILE", default_value = "README.md")]
    readme: PathBuf,
    /// Do not write: exit 1 with a diff when the table differs from the report's.
    #[arg(long)]
    check: bool,
}

/// `rehearsal compat`: 0 written or fresh, 1 stale (`--check`), 2 unreadable input or no markers.
pub fn compat(args: CompatArgs) -> ExitCode {
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let (doc, text) = match (read(&args.matrix).and_then(|t| MatrixDoc::parse(&t)), read(&args.readme)) {
        (Ok(d), Ok(t)) => (d, t),
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    let (file, matrix) = (args.readme.display().to_string(), args.matrix.display().to_string());
    if args.check {
        return match readme::check(&text, &doc, &file, &matrix) {
            Ok(()) => {
                println!("{file}: the compatibility table matches {matrix}");
                ExitCode::SUCCESS
            }
            Err(e @ readme::ReadmeError::Stale { .. }) => {
                eprintln!("rehearsal: {e}");
                ExitCode::from(exit::FAILED)
            }
            Err(e) => usage(&e.to_string()),
        };
    }
    match readme::rewrite(&text, &doc, &file) {
        Ok(new) if new == text => {
            println!("{file}: the compatibility table is already up to date");
            ExitCode::SUCCESS
        }
        Ok(new) => match std::fs::write(&args.readme, new) {
            Ok(()) => {
                println!("{file}: compatibility table rewritten from {matrix}");
                ExitCode::SUCCESS
            }
            Err(e) => usage(&format!("cannot write {file}: {e}")),
        },
        Err(e) => usage(&e.to_string()),
    }
}
