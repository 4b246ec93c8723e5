//! The run: one in-process server, the selected scenarios played in parallel (each against its
//! own adapter process and its own tenant), deviations applied, and [`RunEvent`]s sent to the
//! reporters, which never share state with the runner.
//!
//! ```text
//! run(opts) ─▶ load library · select · load deviations · start MockServer · probe the client
//!           ─▶ per scenario (≤ jobs at once): ProcessDriver ─▶ Play::play ─▶ ScenarioOutcome
//!           ─▶ RunEvent ─▶ (bounded channel) ─▶ reporters
//! ```
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::NewTenant;
use rehearsal_mock_server::server::{ServerConfig, Startup};
use rehearsal_scenarios::engine::{ClientDriver, DriverEnv, Hello, PlayOptions};
use rehearsal_scenarios::outcome::{ScenarioOutcome, Verdict};
use rehearsal_scenarios::{Library, LoadError, Loaded, Mode};
use tokio::sync::{Semaphore, mpsc};

use crate::deviations::{Deviations, DeviationsError};
pub use crate::events::{ClientInfo, Interruption, RunEvent, RunInfo, RunReport, RunSummary, ScenarioResult, area_order};
use crate::exit;
use crate::process::{HELLO_TIMEOUT, PROTOCOL_VERSION, ProcessDriver, SHUTDOWN_GRACE};
use crate::redact::Redactor;
use crate::report::{ReportError, Reporter};
use crate::select::{SelectError, Selection};

/// Entries the server's journal keeps. Parallel scenarios share one server, and a scenario's
/// `observed` expectations read the journal: a bigger ring than `serve`'s default keeps a busy
/// neighbour (a 10,000-message history) from evicting what another scenario is judged on.
pub const JOURNAL_SIZE: usize = 200_000;
/// Added to a scenario's own timeout before the runner gives up on the engine (the engine
/// enforces the scenario's timeout; this only catches an engine that does not return).
pub const WATCHDOG_MARGIN: Duration = Duration::from_secs(30);

/// What to run and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The client under test: a shell command starting its adapter.
    pub client: String,
    /// Play this folder's scenarios instead of the embedded library.
    pub scenarios_dir: Option<PathBuf>,
    pub selection: Selection,
    /// Scenarios played at once (at least 1).
    pub jobs: usize,
    /// A deviations file (see [`crate::deviations`]).
    pub deviations: Option<PathBuf>,
    /// Stop scheduling scenarios after the first FAILED one (not deviated).
    pub fail_fast: bool,
    /// Redact volatile values (ports, SIDs, durations, timestamps) in what reporters get.
    pub redact: bool,
    /// How long the client has to answer `hello` (default [`HELLO_TIMEOUT`]).
    pub hello_timeout: Duration,
    /// The client is known to speak no driver protocol: it is not asked `hello` at all and plays
    /// the observed scenarios only (saves the [`RunOptions::hello_timeout`] wait of the probe).
    pub observed: bool,
    pub shutdown_grace: Duration,
}

impl RunOptions {
    pub fn new(client: impl Into<String>) -> RunOptions {
        RunOptions {
            client: client.into(),
            scenarios_dir: None,
            selection: Selection::default(),
            jobs: default_jobs(),
            deviations: None,
            fail_fast: false,
            redact: false,
            hello_timeout: HELLO_TIMEOUT,
            observed: false,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Scenarios played at once per CPU by default. A scenario spends most of its time waiting on the
/// client's real-time timers (reconnect backoffs, close timers, the windows of its expectations),
/// not computing: the whole library against the reference adapter keeps a 2-core machine about a
/// third busy at 6 jobs.
pub const JOBS_PER_CPU: usize = 3;
/// The most scenarios played at once by default, whatever the machine (each is a client process).
pub const MAX_DEFAULT_JOBS: usize = 24;

/// The default of `--jobs`: [`JOBS_PER_CPU`] per CPU, at most [`MAX_DEFAULT_JOBS`].
pub fn default_jobs() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cpus * JOBS_PER_CPU).min(MAX_DEFAULT_JOBS)
}

/// Why a run could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the scenario library is invalid ({} errors); run `rehearsal scenarios validate`", .0.len())]
    Library(Vec<LoadError>),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Deviations(#[from] DeviationsError),
    #[error("cannot start the mock server: {0}")]
    Server(String),
    #[error("the client `{command}` does not start: {message}")]
    ClientStart { command: String, message: String },
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        exit::ERROR
    }
}

/// Plays one scenario: the engine's job. The runner is generic over it so that its tests can
/// play scenarios with a scripted engine; [`Engine`] is the real one.
pub trait Play: Send + Sync + 'static {
    fn play(&self, server: &MockServer, loaded: &Loaded, driver: &mut ProcessDriver) -> impl Future<Output = ScenarioOutcome> + Send;
}

/// The scenario engine of `rehearsal-scenarios`, with its options.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub options: PlayOptions,
}

impl Play for Engine {
    fn play(&self, server: &MockServer, loaded: &Loaded, driver: &mut ProcessDriver) -> impl Future<Output = ScenarioOutcome> + Send {
        crate::engine::play(server, loaded, driver, &self.options)
    }
}

/// Runs the selected scenarios against `opts.client` with the real engine, feeding
/// `reporters`, and returns the report once every reporter has finished.
pub async fn run(opts: RunOptions, reporters: Vec<Box<dyn Reporter>>) -> Result<RunReport, RunError> {
    run_until(opts, Engine::default(), reporters, std::future::pending()).await
}

/// [`run`] with another [`Play`] (tests).
pub async fn run_with<P: Play>(opts: RunOptions, player: P, reporters: Vec<Box<dyn Reporter>>) -> Result<RunReport, RunError> {
    run_until(opts, player, reporters, std::future::pending()).await
}

/// [`run_with`], cancelled when `interrupt` completes: no scenario starts after it, the ones
/// playing are stopped (their adapters' process groups killed) and reported not run with the
/// rest, the reporters still write their reports, and the exit code says which signal it was.
pub async fn run_until<P: Play>(
    opts: RunOptions,
    player: P,
    reporters: Vec<Box<dyn Reporter>>,
    interrupt: impl Future<Output = Interruption> + Send + 'static,
) -> Result<RunReport, RunError> {
    let (interrupted_tx, interrupted) = tokio::sync::watch::channel(None::<Interruption>);
    let watcher = tokio::spawn(async move {
        let why = interrupt.await;
        let _ = interrupted_tx.send(Some(why));
        // Keep the sender alive so receivers see the value rather than a closed channel.
        std::future::pending::<()>().await;
    });
    let report = run_inner(opts, player, reporters, interrupted).await;
    watcher.abort();
    report
}

async fn run_inner<P: Play>(
    opts: RunOptions,
    player: P,
    reporters: Vec<Box<dyn Reporter>>,
    interrupted: tokio::sync::watch::Receiver<Option<Interruption>>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let library = match &opts.scenarios_dir {
        Some(dir) => Library::load_dir(dir),
        None => Library::load_embedded(),
    }
    .map_err(RunError::Library)?;
    let selected: Vec<Loaded> = opts.selection.apply(&library)?.into_iter().cloned().collect();
    let deviations = match &opts.deviations {
        Some(path) => Deviations::load(path)?,
        None => Deviations::default(),
    };
    let server = Arc::new(start_server().await?);
    let hello = if opts.observed { None } else { probe(&server, &opts).await? };

    let info = RunInfo {
        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        command: opts.client.clone(),
        client: hello.as_ref().map(ClientInfo::from),
        jobs: opts.jobs.max(1),
        started_at,
        deviations: opts.deviations.as_ref().map(|p| p.display().to_string()),
    };

    // Reporters consume events in their own task, through a bounded channel.
    let (events_tx, events_rx) = mpsc::channel::<RunEvent>(256);
    let redactor = opts.redact.then(Redactor::new);
    let reporting = tokio::spawn(drive_reporters(events_rx, reporters, redactor));
    let emit = |e: RunEvent| {
        let tx = events_tx.clone();
        async move {
            // Only fails when the reporter task is gone, which `finish` reports below.
            let _ = tx.send(e).await;
        }
    };
    emit(RunEvent::RunStarted {
        total: selected.len(),
        info: info.clone(),
    })
    .await;

    let player = Arc::new(player);
    let deviations = Arc::new(deviations);
    let implementation = hello.as_ref().map(|h| h.name.clone());
    let semaphore = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(selected.len());
    for (index, loaded) in selected.iter().cloned().enumerate() {
        let permit = tokio::select! {
            p = semaphore.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = interruption(interrupted.clone()) => break,
        };
        if stop.load(Ordering::SeqCst) || interrupted.borrow().is_some() {
            break;
        }
        let ctx = ScenarioCtx {
            server: server.clone(),
            player: player.clone(),
            deviations: deviations.clone(),
            implementation: implementation.clone(),
            client_speaks_protocol: hello.is_some(),
            events: events_tx.clone(),
            stop: stop.clone(),
            interrupted: interrupted.clone(),
            opts: opts.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let result = play_one(index, loaded, ctx).await;
            drop(permit);
            (index, result)
        }));
    }
    let mut results: Vec<(usize, ScenarioResult)> = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok((index, Some(r))) => results.push((index, r)),
            // Cut short by an interruption: reported as not run.
            Ok((_, None)) => {}
            // play_one catches the engine's panics; this is the runner's own bug.
            Err(e) => tracing::error!("a scenario task failed: {e}"),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let played: Vec<usize> = results.iter().map(|(i, _)| *i).collect();
    let not_run: Vec<String> = selected
        .iter()
        .enumerate()
        .filter(|(i, _)| !played.contains(i))
        .map(|(_, l)| l.scenario.id.clone())
        .collect();
    let results: Vec<ScenarioResult> = results.into_iter().map(|(_, r)| r).collect();
    let why = *interrupted.borrow();
    let summary = RunSummary::of(selected.len(), &results, not_run, started.elapsed()).interrupted_by(why);
    emit(RunEvent::RunFinished { summary: summary.clone() }).await;
    drop(events_tx);
    match reporting.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(RunError::Report(ReportError::Crashed(e.to_string()))),
    }
    if let Ok(server) = Arc::try_unwrap(server) {
        server.shutdown().await;
    }
    Ok(RunReport { info, results, summary })
}

struct ScenarioCtx<P> {
    server: Arc<MockServer>,
    player: Arc<P>,
    deviations: Arc<Deviations>,
    implementation: Option<String>,
    client_speaks_protocol: bool,
    events: mpsc::Sender<RunEvent>,
    stop: Arc<AtomicBool>,
    interrupted: tokio::sync::watch::Receiver<Option<Interruption>>,
    opts: RunOptions,
}

/// Completes once the run is interrupted.
async fn interruption(mut interrupted: tokio::sync::watch::Receiver<Option<Interruption>>) {
    if interrupted.wait_for(Option::is_some).await.is_err() {
        // The watcher is gone without an interruption: never.
        std::future::pending::<()>().await;
    }
}

/// Plays one scenario; `None` when an interruption cut it short.
async fn play_one<P: Play>(index: usize, loaded: Loaded, ctx: ScenarioCtx<P>) -> Option<ScenarioResult> {
    let s = &loaded.scenario;
    let _ = ctx
        .events
        .send(RunEvent::ScenarioStarted {
            index,
            id: s.id.clone(),
            area: s.area.to_string(),
            title: s.title.clone(),
        })
        .await;
    let outcome = if s.mode() == Mode::Driven && !ctx.client_speaks_protocol {
        // Found once by the probe: no need to wait for `hello` again in every scenario.
        harness_outcome(
            &loaded,
            Verdict::Unimplemented,
            if ctx.opts.observed {
                "the client is run in observed mode (--observed), where only scenarios with `requires = []` apply".to_owned()
            } else {
                format!(
                    "the client did not answer `hello` within {:?}: it runs in observed mode, where only scenarios with `requires = []` apply",
                    ctx.opts.hello_timeout
                )
            },
            String::new(),
            Duration::ZERO,
        )
    } else {
        play_guarded(&loaded, &ctx).await?
    };
    let deviation = ctx.deviations.find(&s.id, ctx.implementation.as_deref()).cloned();
    let result = ScenarioResult {
        outcome: clip_outcome(outcome),
        deviated: deviation.is_some(),
        deviation,
    };
    if ctx.opts.fail_fast && result.fails_run() {
        ctx.stop.store(true, Ordering::SeqCst);
    }
    let _ = ctx
        .events
        .send(RunEvent::ScenarioFinished {
            index,
            result: result.clone(),
        })
        .await;
    Some(result)
}

/// Plays with the engine under a watchdog, catching panics; the adapter is always stopped.
/// `None`: the run was interrupted meanwhile, and the adapter's process group killed.
async fn play_guarded<P: Play>(loaded: &Loaded, ctx: &ScenarioCtx<P>) -> Option<ScenarioOutcome> {
    let started = Instant::now();
    let budget = loaded.scenario.timeout() + ctx.opts.hello_timeout + ctx.opts.shutdown_grace + WATCHDOG_MARGIN;
    let (server, player, scenario) = (ctx.server.clone(), ctx.player.clone(), loaded.clone());
    let (hello_timeout, grace) = (ctx.opts.hello_timeout, ctx.opts.shutdown_grace);
    let command = ctx.opts.client.clone();
    // Its own task, so that a panicking engine is a result, not a crashed run. The driver
    // lives in the task: dropping it (panic, abort) kills the adapter's process group.
    let task = tokio::spawn(async move {
        let mut driver = ProcessDriver::new(command).hello_timeout(hello_timeout).shutdown_grace(grace);
        let outcome = tokio::time::timeout(budget, player.play(&server, &scenario, &mut driver)).await;
        let log = driver.stop().await;
        match outcome {
            Ok(mut o) => {
                if o.stderr.is_empty() {
                    o.stderr = log.stderr;
                }
                o
            }
            Err(_) => harness_outcome(
                &scenario,
                Verdict::Failed,
                format!("the scenario did not finish within {budget:?} (harness watchdog)"),
                log.stderr,
                budget,
            ),
        }
    });
    let abort = task.abort_handle();
    let mut task = task;
    let finished = tokio::select! {
        r = tokio::time::timeout(budget + Duration::from_secs(15), &mut task) => r,
        () = interruption(ctx.interrupted.clone()) => {
            // Dropping the aborted task's driver kills the adapter's process group; wait for
            // that to have happened before the run reports and exits.
            task.abort();
            let _ = task.await;
            return None;
        }
    };
    Some(match finished {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            let why = if e.is_panic() {
                let p = e.into_panic();
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned());
                format!("the engine panicked: {msg}")
            } else {
                "the scenario was cancelled".to_owned()
            };
            harness_outcome(loaded, Verdict::Failed, why, String::new(), started.elapsed())
        }
        Err(_) => {
            abort.abort();
            harness_outcome(
                loaded,
                Verdict::Failed,
                "the scenario did not finish, even after its adapter was stopped (harness watchdog)".to_owned(),
                String::new(),
                started.elapsed(),
            )
        }
    })
}

/// Longest string kept in a timeline entry's `detail` or an expectation's `evidence` (a
/// media upload's base64 would otherwise put megabytes into every report).
pub const MAX_DETAIL_STRING: usize = 4096;

/// Clips long strings in details and evidence to [`MAX_DETAIL_STRING`] bytes, saying how many
/// were left out.
pub fn clip_outcome(mut o: ScenarioOutcome) -> ScenarioOutcome {
    fn clip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.len() > MAX_DETAIL_STRING => {
                let mut cut = MAX_DETAIL_STRING;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                let left = s.len() - cut;
                s.truncate(cut);
                s.push_str(&format!("…[{left} more bytes]"));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(clip),
            serde_json::Value::Object(map) => map.values_mut().for_each(clip),
            _ => {}
        }
    }
    for t in &mut o.timeline {
        clip(&mut t.detail);
    }
    for e in &mut o.expectations {
        e.evidence.iter_mut().for_each(clip);
    }
    o
}

/// An outcome the harness decides without the engine (nothing was judged).
pub fn harness_outcome(loaded: &Loaded, verdict: Verdict, reason: String, stderr: String, duration: Duration) -> ScenarioOutcome {
    let s = &loaded.scenario;
    ScenarioOutcome {
        id: s.id.clone(),
        title: s.title.clone(),
        area: s.area.to_string(),
        verdict,
        reason: Some(reason),
        duration,
        steps: Vec::new(),
        expectations: Vec::new(),
        timeline: Vec::new(),
        stderr,
    }
}

async fn start_server() -> Result<MockServer, RunError> {
    // No seed: every scenario creates its own tenant.
    MockServer::start_with(Startup {
        seed: None,
        config: ServerConfig {
            journal_size: JOURNAL_SIZE,
            ..ServerConfig::default()
        },
        ..Startup::default()
    })
    .await
    .map_err(|e| RunError::Server(e.to_string()))
}

/// The environment of a client playing against `tenant` of `server` (driven mode).
pub fn driver_env(server: &MockServer, scenario: &str, tenant: &rehearsal_mock_server::server::Credentials) -> DriverEnv {
    DriverEnv {
        scenario: scenario.to_owned(),
        base_url: server.url(),
        twilsock_url: server.twilsock_url(),
        token_url: tenant.token_url(&server.url()),
        account_sid: tenant.account_sid.clone(),
        auth_token: tenant.auth_token.clone(),
        api_key: tenant.api_key.clone(),
        api_secret: tenant.api_secret.clone(),
        service_sid: tenant.service_sid.clone(),
        observed_identity: None,
        observed_token_ttl: None,
    }
}

/// Starts the client once before the run, on a throwaway tenant: a client that does not start
/// fails the run at once (exit 2) instead of every scenario, and its `hello` names the
/// implementation (for deviations and reports). `None`: it did not answer (observed mode).
async fn probe(server: &MockServer, opts: &RunOptions) -> Result<Option<Hello>, RunError> {
    let tenant = server
        .control()
        .create_tenant(NewTenant::default())
        .map_err(|e| RunError::Server(e.to_string()))?;
    let env = driver_env(server, "rehearsal.probe", &tenant.credentials);
    let mut driver = ProcessDriver::new(opts.client.clone())
        .hello_timeout(opts.hello_timeout)
        .shutdown_grace(opts.shutdown_grace);
    // The link is dropped at once: the probe sends nothing but `hello`.
    let started = driver.start(env).await.map(|link| link.hello);
    let log = driver.stop().await;
    let _ = server.control().delete_tenant(&tenant.credentials.account_sid);
    match started {
        Ok(hello) => Ok(hello),
        Err(e) => {
            let mut message = e.to_string();
            if !message.contains("stderr") && !log.stderr.trim().is_empty() {
                message.push_str(&format!("; its stderr:\n{}", log.stderr.trim_end()));
            }
            Err(RunError::ClientStart {
                command: opts.client.clone(),
                message,
            })
        }
    }
}

async fn drive_reporters(
    mut events: mpsc::Receiver<RunEvent>,
    mut reporters: Vec<Box<dyn Reporter>>,
    redactor: Option<Redactor>,
) -> Result<(), ReportError> {
    while let Some(event) = events.recv().await {
        let event = match &redactor {
            Some(r) => r.event(&event),
            None => event,
        };
        for r in reporters.iter_mut() {
            r.event(&event);
        }
    }
    let mut first_error = None;
    for r in reporters.iter_mut() {
        if let Err(e) = r.finish() {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
