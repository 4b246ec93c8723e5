//! `rehearsal`: the command-line face of the mock Conversations backend.
//!
//! Thin on purpose: parse arguments, call the libraries, map outcomes to exit codes.
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or unreadable input. `run`: 0 every
//! scenario passed (or is UNIMPLEMENTED or deviated), 1 some scenario FAILED, 2 could not run
//! (`rehearsal_harness::exit`).
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rehearsal_mock_server::auth::token;
use rehearsal_mock_server::clock::Clock;
use rehearsal_mock_server::control::http::PREFIX as CONTROL_PREFIX;
use rehearsal_mock_server::server::Credentials;
use rehearsal_scenarios::Area;

mod matrix;

mod scenario_play;
mod serve;
mod signals;

/// The server builds and drops many small values per request (JSON trees, strings); mimalloc
/// serves that pattern far better than glibc's allocator under several threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_LISTEN: &str = "127.0.0.1:4510";

#[derive(Parser)]
#[command(
    name = "rehearsal",
    version,
    about = "An offline Twilio Conversations backend for testing chat clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mock backend (REST, twilsock, media, development tokens) on one port.
    Serve(serve::ServeArgs),
    /// Print an access token for the default seed's account.
    Token {
        #[arg(long)]
        identity: String,
        /// Lifetime in seconds (Twilio allows at most 86400).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print the default seed's credentials and URLs as shell exports (or JSON).
    Env {
        #[arg(long)]
        json: bool,
        /// The address the server listens on.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: String,
        /// The server's control token, to export as REHEARSAL_CONTROL_TOKEN (a random token
        /// chosen by `serve` cannot be known here: start `serve` with `--control-token`).
        #[arg(long, env = "REHEARSAL_CONTROL_TOKEN", hide_env_values = true)]
        control_token: Option<String>,
    },
    /// Play the scenario library against a client (an adapter speaking harness/PROTOCOL.md)
    /// and grade every scenario.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Keep a README's compatibility table true: rewrite the table between `<!-- compat:begin -->`
    /// and `<!-- compat:end -->` from a matrix JSON report (`run --report matrix-json=PATH`), or
    /// with --check exit 1 and print a diff when the committed table differs.
    Compat(matrix::CompatArgs),
    /// The scenario library: list, show and validate scenarios.
    Scenarios {
        #[command(subcommand)]
        command: ScenariosCommand,
    },
    /// Measure a server in its own process: fan-out, page reads, memory per connection
    /// (see BENCHMARKS.md). Exits 1 if a delivery or page check fails.
    Bench(rehearsal_bench::BenchArgs),
}

const RUN_HELP: &str = "\
Verdicts: OK, NON-STRICT (a `should` failed), INFORMATIONAL, UNIMPLEMENTED (the client lacks a
command the scenario needs), FAILED. A scenario matched by a deviation keeps its verdict and is
reported as deviated.

Exit codes:
  0  every scenario played was OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED, or deviated
  1  some scenario FAILED
  2  could not run: bad arguments, no scenario selected, invalid library or deviations file,
     the client does not start, a report cannot be written

Several clients (a compatibility matrix): repeat --client NAME=COMMAND. Each client plays the
selection in turn, with the whole --jobs and a server of its own; `{client}` in a junit/json/html
path is replaced by the client's name, and matrix-json, matrix-html, matrix-md and badges write
one report of clients × scenarios. A bare COMMAND is named client-N; a NAME=COMMAND value whose
NAME is all capitals (NODE_OPTIONS=…) is a command with an environment assignment, as always.
The exit code of a matrix run is the highest of its clients' codes: 1 if any client has a FAILED
scenario, 2 if any could not run (the others still play) or a report cannot be written.

Examples:
  rehearsal run --client \"node adapters/twilio-conversations-js/adapter.mjs\"
  rehearsal run --client \"./my-adapter\" --area token --scenario 'connection.drop-*' \\
      --jobs 4 --report junit=rehearsal.xml --report html=rehearsal.html
  rehearsal run --client \"sdk-3.0.1=node adapters/twilio-conversations-js/adapter.mjs --sdk 3.0.1\" \\
      --client \"rust=rehearsal-adapter-rust\" --report json=out/{client}.json \\
      --report matrix-html=out/matrix.html --report matrix-md=out/matrix.md --report badges=out/badges";

#[derive(clap::Args)]
struct RunArgs {
    /// The client under test: a shell command starting its adapter (run with `sh -c`), or
    /// NAME=COMMAND to name it. Repeat for a compatibility matrix: each client plays the
    /// selection in turn (see "Several clients" below).
    #[arg(long = "client", value_name = "[NAME=]COMMAND", env = "REHEARSAL_CLIENT", required = true)]
    clients: Vec<String>,
    /// Play the scenarios whose id matches (`*` matches anything); repeatable.
    #[arg(long = "scenario", value_name = "GLOB")]
    scenarios: Vec<String>,
    /// Play the scenarios of this area; repeatable.
    #[arg(long = "area", value_name = "AREA", value_parser = area_parser())]
    areas: Vec<String>,
    /// Scenarios played at once (default: 3 per CPU, at most 24).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// A deviations file (TOML `[[deviation]]` entries: scenario, implementation, reason, link);
    /// NAME=FILE: for the client NAME only (it replaces a FILE given for all). Repeatable.
    #[arg(long = "deviations", value_name = "[NAME=]FILE")]
    deviations: Vec<String>,
    /// Stop starting scenarios after the first FAILED one.
    #[arg(long)]
    fail_fast: bool,
    /// Seconds a client has to answer `hello` before it is run in observed mode.
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    hello_timeout: u64,
    /// The clients speak no driver protocol (an unmodified app): do not wait for `hello`, play
    /// the observed scenarios only.
    #[arg(long)]
    observed: bool,
    /// Write a report: junit=PATH, json=PATH or html=PATH (one client's run; with several
    /// clients PATH must contain {client}), matrix-json=PATH, matrix-html=PATH, matrix-md=PATH
    /// or badges=DIR (the matrix of every client); repeatable.
    #[arg(long = "report", value_name = "KIND=PATH")]
    reports: Vec<rehearsal_harness::OutputSpec>,
    /// Play the scenarios of this folder instead of the embedded library.
    #[arg(long, value_name = "DIR")]
    scenarios_dir: Option<PathBuf>,
    /// Redact volatile values (ports, SIDs, tokens, timestamps, durations) in every report.
    #[arg(long)]
    redact: bool,
    /// No progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Subcommand)]
enum ScenariosCommand {
    /// One line per scenario: id (which starts with its area), mode and title.
    List {
        #[arg(long, value_name = "DIR")]
        scenarios_dir: Option<PathBuf>,
    },
    /// What a scenario checks, and its TOML.
    Show {
        id: String,
        #[arg(long, value_name = "DIR")]
        scenarios_dir: Option<PathBuf>,
    },
    /// Check scenario files (a file or a folder; default: the embedded library). Exit 2 on errors.
    Validate { path: Option<PathBuf> },
}

fn area_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Area::ALL.map(Area::as_str))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_scenarios(args),
        Command::Compat(args) => matrix::compat(args),
        Command::Scenarios { command } => scenarios(command),
        Command::Bench(args) => rehearsal_bench::run(args),
        Command::Serve(args) => {
            init_logging("info,tower_http=warn");
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rehearsal: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(serve::serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rehearsal: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Token { identity, ttl } => {
            let c = Credentials::default_seed();
            let now = Clock::system().now().unix_secs();
            println!(
                "{}",
                token::mint(&token::MintRequest {
                    account_sid: c.account_sid,
                    api_key_sid: c.api_key,
                    api_key_secret: c.api_secret,
                    identity,
                    service_sid: Some(c.service_sid),
                    ttl_secs: ttl,
                    now_unix: now,
                    nbf_unix: None,
                })
            );
            ExitCode::SUCCESS
        }
        Command::Env {
            json,
            listen,
            control_token,
        } => {
            let vars = env_vars(&Credentials::default_seed(), &listen, control_token.as_deref());
            if json {
                let map: serde_json::Map<String, serde_json::Value> = vars.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                for (k, v) in vars {
                    println!("export {k}='{v}'");
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn run_scenarios(args: RunArgs) -> ExitCode {
    init_logging("warn");
    let mut opts = rehearsal_harness::RunOptions::new(String::new());
    opts.selection = rehearsal_harness::Selection {
        globs: args.scenarios,
        areas: args
            .areas
            .iter()
            .filter_map(|a| Area::ALL.into_iter().find(|x| x.as_str() == a))
            .collect(),
    };
    if let Some(j) = args.jobs {
        opts.jobs = usize::from(j);
    }
    opts.fail_fast = args.fail_fast;
    opts.hello_timeout = std::time::Duration::from_secs(args.hello_timeout);
    opts.observed = args.observed;
    opts.scenarios_dir = args.scenarios_dir;
    opts.redact = args.redact;
    let progress = !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    matrix::run(matrix::Args {
        clients: args.clients,
        deviations: args.deviations,
        reports: args.reports,
        progress,
        opts,
    })
}

fn scenarios(command: ScenariosCommand) -> ExitCode {
    use rehearsal_harness::catalog;
    let library = |dir: Option<&Path>| {
        catalog::load(dir).map_err(|errors| {
            eprint!("{}", catalog::render_errors(&errors));
            ExitCode::from(rehearsal_harness::exit::ERROR)
        })
    };
    match command {
        ScenariosCommand::List { scenarios_dir } => match library(scenarios_dir.as_deref()) {
            Ok(lib) => {
                print!("{}", catalog::list(&lib));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ScenariosCommand::Show { id, scenarios_dir } => match library(scenarios_dir.as_deref()) {
            Ok(lib) => match lib.get(&id) {
                Some(loaded) => {
                    print!("{}", catalog::show(loaded));
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("rehearsal: no scenario `{id}` (see `rehearsal scenarios list`)");
                    ExitCode::from(rehearsal_harness::exit::ERROR)
                }
            },
            Err(code) => code,
        },
        ScenariosCommand::Validate { path } => {
            let (errors, count) = match &path {
                Some(p) => (rehearsal_scenarios::validate_path(p), None),
                None => match rehearsal_scenarios::Library::load_embedded() {
                    Ok(lib) => (Vec::new(), Some(lib.len())),
                    Err(errors) => (errors, None),
                },
            };
            if errors.is_empty() {
                let what = path.as_ref().map_or("the embedded library".to_owned(), |p| p.display().to_string());
                match count {
                    Some(n) => println!("ok: {what} ({n} scenarios)"),
                    None => println!("ok: {what}"),
                }
                ExitCode::SUCCESS
            } else {
                eprint!("{}", catalog::render_errors(&errors));
                ExitCode::from(rehearsal_harness::exit::ERROR)
            }
        }
    }
}

fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("REHEARSAL_LOG").unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn env_vars(c: &Credentials, listen: &str, control_token: Option<&str>) -> Vec<(&'static str, String)> {
    let base = format!("http://{listen}");
    let mut vars = vec![
        ("TWILIO_ACCOUNT_SID", c.account_sid.clone()),
        ("TWILIO_AUTH_TOKEN", c.auth_token.clone()),
        ("TWILIO_API_KEY", c.api_key.clone()),
        ("TWILIO_API_SECRET", c.api_secret.clone()),
        ("TWILIO_CONVERSATIONS_SERVICE_SID", c.service_sid.clone()),
        ("REHEARSAL_URL", base.clone()),
        ("REHEARSAL_TWILSOCK_URL", format!("ws://{listen}/v3/wsconnect")),
        ("REHEARSAL_TOKEN_URL", format!("{base}/token")),
        ("REHEARSAL_CONTROL_URL", format!("{base}{CONTROL_PREFIX}")),
    ];
    if let Some(t) = control_token.filter(|t| !t.is_empty()) {
        vars.push(("REHEARSAL_CONTROL_TOKEN", t.to_owned()));
    }
    vars
}
