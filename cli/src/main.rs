//! `rehearsal`: the command-line face of the mock Conversations backend.
//!
//! Thin on purpose: parse arguments, call the libraries, map outcomes to exit codes.
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or unreadable input. `run`: 0 every
//! scenario passed (or is UNIMPLEMENTED or deviated), 1 some scenario FAILED, 2 could not run
//! (`rehearsal_harness::exit`).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rehearsal_bench::default_credentials;
use rehearsal_mock_server::auth::token;
use rehearsal_mock_server::clock::Clock;
use rehearsal_mock_server::control::http::PREFIX as CONTROL_PREFIX;
use rehearsal_mock_server::domain::seed::Seed;
use rehearsal_mock_server::inspector::PATH as INSPECTOR_PATH;
use rehearsal_mock_server::server::{Credentials, ServerConfig, Startup, prepare, run};
use rehearsal_scenarios::Area;

mod matrix;

mod scenario_play;

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
    Serve(ServeArgs),
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

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "REHEARSAL_LISTEN")]
    listen: SocketAddr,
    /// Start from this seed file instead of the embedded default seed.
    #[arg(long, conflicts_with = "no_seed")]
    seed: Option<PathBuf>,
    /// Start with no accounts at all.
    #[arg(long)]
    no_seed: bool,
    /// Import state from FILE at start (if it exists) and export it there at clean exit.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Do not serve the development token endpoint (`GET /token?identity=…`).
    #[arg(long)]
    no_token_endpoint: bool,
    /// Base URL to put in responses, when clients reach the server through another name.
    #[arg(long)]
    public_url: Option<String>,
    /// Token the control plane (/_rehearsal/v1) requires; default: a random one, printed.
    #[arg(long, env = "REHEARSAL_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// Let loopback clients use the control plane without the token.
    #[arg(long)]
    control_open_loopback: bool,
    /// Journal entries kept before the oldest are dropped (and counted).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    journal_size: u64,
    /// Journal size bound in MiB: the oldest entries are dropped (and counted) beyond it.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    journal_max_mib: u64,
    /// Bytes (MiB) a twilsock connection may have waiting to be written before it is closed as a
    /// slow consumer.
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    outbox_max_mib: u64,
    /// Media (MCS uploads) one tenant may store, in MiB; uploads past it get 413 (code 50512).
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    media_quota_mib: u64,
    /// How long a webhook may take to answer, in milliseconds (Twilio: 5000). A pre-action hook
    /// that does not answer in time lets the action proceed; a post-action attempt is retried.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    webhook_timeout_ms: u64,
    /// HTTP connections open at once (WebSockets included); more are closed as they arrive,
    /// with a log line.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// How long a request's head may take to arrive, counted from when the server waits for it
    /// (connection opened or previous response sent): silent and idle keep-alive connections
    /// are closed after it.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    header_read_timeout_ms: u64,
    /// How long a request body may send nothing, or a response go unread, before the connection
    /// is closed (WebSockets keep their own liveness rules).
    #[arg(long, value_name = "MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    idle_timeout_ms: u64,
    /// On SIGINT/SIGTERM, how long open requests may finish before their connections are dropped
    /// (the --state export happens after it either way).
    #[arg(long, value_name = "MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    shutdown_timeout_ms: u64,
    /// Play the server side of this library scenario (see `rehearsal scenarios list`) against
    /// whatever connects: the default account starts from the scenario's seed, and the play
    /// starts when your app connects as one of its identities (again after each play).
    #[arg(long, value_name = "ID", conflicts_with_all = ["seed", "no_seed", "state"])]
    scenario: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_scenarios(args),
        Command::Compat(args) => matrix::compat(args),
        Command::Scenarios { command } => scenarios(command),
        Command::Bench(args) => rehearsal_bench::run(args),
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("REHEARSAL_LOG").unwrap_or_else(|_| "info,tower_http=warn".into()),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rehearsal: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rehearsal: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Token { identity, ttl } => {
            let c = default_credentials();
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
            let vars = env_vars(&default_credentials(), &listen, control_token.as_deref());
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let scenario = match &args.scenario {
        None => None,
        Some(id) => {
            let library = rehearsal_scenarios::Library::load_embedded()
                .map_err(|errors| anyhow::anyhow!("the embedded library does not load: {}", errors.len()))?;
            let loaded = library
                .get(id)
                .cloned()
                .with_context(|| format!("no scenario `{id}` in the library (see `rehearsal scenarios list`)"))?;
            Some(loaded)
        }
    };
    let seed = match (&args.seed, args.no_seed) {
        _ if scenario.is_some() => {
            let loaded = scenario.as_ref().expect("checked");
            let doc = rehearsal_scenarios::engine::serve_seed(loaded).map_err(|e| anyhow::anyhow!("the scenario's seed: {e}"))?;
            Some(Seed::parse(&doc.to_string()).context("the scenario's seed")?)
        }
        (_, true) => None,
        (Some(path), false) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading seed {}", path.display()))?;
            Some(Seed::parse(&text).with_context(|| format!("seed {}", path.display()))?)
        }
        (None, false) => Some(Seed::default_seed()),
    };
    if let Some(path) = &args.state {
        remove_stale_temporaries(path);
    }
    let state_json = match &args.state {
        Some(p) if p.exists() => Some(std::fs::read_to_string(p).with_context(|| format!("reading state {}", p.display()))?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let config = ServerConfig {
        token_endpoint: !args.no_token_endpoint,
        public_url: args.public_url.clone(),
        control_token: args.control_token.clone(),
        control_open_loopback: args.control_open_loopback,
        journal_size: usize::try_from(args.journal_size).unwrap_or(usize::MAX),
        journal_bytes: mib_to_bytes(args.journal_max_mib),
        session: rehearsal_mock_server::twilsock::SessionConfig {
            outbox_bytes: mib_to_bytes(args.outbox_max_mib),
            ..Default::default()
        },
        media: rehearsal_mock_server::media::MediaConfig {
            quota_bytes: args.media_quota_mib.saturating_mul(1024 * 1024),
            ..Default::default()
        },
        webhooks: rehearsal_mock_server::webhooks::WebhookSettings {
            timeout: std::time::Duration::from_millis(args.webhook_timeout_ms),
            ..Default::default()
        },
        connections: rehearsal_mock_server::server::ConnectionLimits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: std::time::Duration::from_millis(args.header_read_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(args.idle_timeout_ms),
            shutdown_timeout: std::time::Duration::from_millis(args.shutdown_timeout_ms),
        },
        ..Default::default()
    };
    let state = prepare(
        addr,
        Startup {
            seed,
            state_json,
            config,
            clock: Clock::system(),
        },
    )?;
    let signals = Signals::listen();
    print_banner(&state, addr);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    if let Some(loaded) = scenario {
        print_scenario_banner(&loaded);
        let stop = state.stop.subscribe();
        tokio::spawn(scenario_play::replay(
            state.clone(),
            format!("ws://{addr}/v3/wsconnect"),
            loaded,
            stop,
        ));
    }
    let domain = state.domain.clone();
    // `run` ends within the shutdown timeout whatever the peers do; the state is exported even
    // if serving failed, so nothing acknowledged since start is lost.
    let served = run(listener, state, shutdown_signal(signals)).await;
    if let Some(path) = &args.state {
        export_state(&domain, path)?;
        eprintln!("rehearsal: state written to {}", path.display());
    }
    Ok(served?)
}

fn print_scenario_banner(loaded: &rehearsal_scenarios::Loaded) {
    let s = &loaded.scenario;
    let mut out = format!("\n  scenario      {} — {}\n", s.id, s.title);
    for c in &s.clients {
        out.push_str(&format!(
            "  connect as    {}  (the scenario's token lifetime: {} s; ask /token?identity={}&ttl={})\n",
            c.identity(),
            c.token_ttl().as_secs(),
            c.identity(),
            c.token_ttl().as_secs()
        ));
    }
    out.push_str("  the play starts when your app connects as one of these identities\n");
    eprint!("{out}");
}

fn print_banner(state: &rehearsal_mock_server::AppState, addr: SocketAddr) {
    use std::io::Write;
    let base = &state.base_url;
    let mut out = String::new();
    out.push_str(&format!("rehearsal: listening on {base}\n"));
    out.push_str(&format!("  REST API      {base}/v1/Conversations\n"));
    out.push_str(&format!("  twilsock      ws://{addr}/v3/wsconnect\n"));
    if state.config.token_endpoint {
        out.push_str(&format!("  tokens        {base}/token?identity=alice\n"));
    }
    let control_token = state.config.control_token.as_deref().unwrap_or_default();
    let loopback = if state.config.control_open_loopback {
        "  (open to loopback)"
    } else {
        ""
    };
    out.push_str(&format!(
        "  control       {base}{CONTROL_PREFIX}  token {control_token}{loopback}\n"
    ));
    // The token rides in the fragment, which the browser never sends: it stays out of request
    // lines, server logs and `Referer`.
    out.push_str(&format!(
        "  inspector     {base}{INSPECTOR_PATH}#token={}\n",
        fragment_encode(control_token)
    ));
    if !addr.ip().is_loopback() {
        out.push_str(&format!(
            "\n  WARNING: bound to {}, beyond loopback: anyone who can reach this port can use the \
             REST API with the seed's credentials and the control plane with its token. Keep the \
             port private, and set --control-token (REHEARSAL_CONTROL_TOKEN) to a secret.\n\n",
            addr.ip()
        ));
    }
    if let Some(c) = state.default_account.as_deref().and_then(|a| Credentials::of(&state.domain, a)) {
        out.push_str(&format!("  account       {}  auth token {}\n", c.account_sid, c.auth_token));
        out.push_str(&format!("  API key       {}  secret {}\n", c.api_key, c.api_secret));
        out.push_str(&format!("  service       {}\n", c.service_sid));
        out.push_str(&format!(
            "\n  eval \"$(rehearsal env --listen {addr})\"   # exports these for your shell\n"
        ));
        out.push_str(&format!(
            "  twilio-node:   const client = twilio(ACCOUNT_SID, AUTH_TOKEN); client.conversations.baseUrl = '{base}'  (see README)\n"
        ));
        out.push_str(&format!(
            "  the SDK:       new Client(token, {{ twilsock: {{ uri: 'ws://{addr}/v3/wsconnect' }} }})\n"
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Percent-encodes everything but unreserved characters, for a value in a URL fragment that
/// the inspector reads with `decodeURIComponent`.
fn fragment_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The temporary files an export of `path` writes: `.{name}.*.tmp` beside it (and the fixed
/// `.{name}.tmp` older versions used).
fn temporary_name_parts(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    (dir.to_path_buf(), format!(".{name}."))
}

/// Writes the state atomically and durably: a uniquely named temporary file beside `path`
/// (mode 0600: the state holds auth tokens and API secrets), fsynced, renamed over `path`, and
/// the directory fsynced so the rename itself survives a crash.
fn export_state(domain: &rehearsal_mock_server::domain::Domain, path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec_pretty(&domain.export(None))?;
    let (dir, prefix) = temporary_name_parts(path);
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(&json).with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.path().display()))?;
    tmp.persist(path).with_context(|| format!("renaming into {}", path.display()))?;
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))?;
    Ok(())
}

/// Removes what an export interrupted by a crash left behind (they would pile up otherwise,
/// each a full copy of the state with its secrets).
fn remove_stale_temporaries(path: &Path) {
    let (dir, prefix) = temporary_name_parts(path);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %entry.path().display(), "removed a stale temporary state file"),
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e, "could not remove a stale temporary state file"),
            }
        }
    }
}

/// SIGINT and SIGTERM, listened for from the moment this is made. Make it before telling
/// anyone the process is ready (serve's banner, the first adapter): a signal that arrives
/// between "ready" and the first poll would otherwise kill the process with the default action,
/// so `--state` would not be exported and reports not written.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Registers the handlers now. Must be called inside the tokio runtime. A handler that
    /// cannot be registered is logged and never fires (the default action then applies).
    fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let register = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, signal = name, "cannot listen for the signal");
                    None
                }
            };
            Signals {
                interrupt: register(SignalKind::interrupt(), "SIGINT"),
                terminate: register(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The first of them to arrive.
    async fn first(self) -> rehearsal_harness::Interruption {
        use rehearsal_harness::Interruption;
        #[cfg(unix)]
        {
            async fn next(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(self.interrupt) => Interruption::Interrupt,
                () = next(self.terminate) => Interruption::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            Interruption::Interrupt
        }
    }
}

/// `rehearsal run` cancels like a test runner on the first signal. The adapters run in their
/// own process groups, so a terminal's Ctrl-C reaches only this process, which must stop them.
async fn interruption(signals: Signals) -> rehearsal_harness::Interruption {
    let why = signals.first().await;
    eprintln!("rehearsal: {}: stopping the adapters and writing the reports", why.signal_name());
    why
}

/// `rehearsal serve` shuts down (within its deadline, then exports `--state`) on the first signal.
async fn shutdown_signal(signals: Signals) {
    signals.first().await;
    tracing::info!("shutting down");
}

/// A size given in MiB, in bytes (saturating on 32-bit targets).
fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::fragment_encode;

    #[test]
    fn a_control_token_survives_the_fragment() {
        assert_eq!(fragment_encode("197d866e90e5"), "197d866e90e5");
        assert_eq!(fragment_encode("a b&c=d#e/é"), "a%20b%26c%3Dd%23e%2F%C3%A9");
    }
}
