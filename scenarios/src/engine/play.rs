//! Playing one scenario: the entry points, the tenant and the client around the play, the
//! sequence of steps with its triggers alongside, and the outcome. What one step does is in
//! `steps`, waiting on what happened in `waits`, judging expectations in `expect`, firing
//! triggers in `triggers`, the client side in `client`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::Control;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::client::{self, NoClient};
use super::driver::{ClientDriver, Command, DriverEnv};
use super::error::{SetupError, UnknownClient};
use super::log::{Log, Us, ms};
use super::options::PlayOptions;
use super::steps::Flow;
use super::tenant::{self, Names, Tenant};
use super::tokens::{FirstTokens, Minter};
use super::{backend, commands, journal};
use crate::format::step::Step;
use crate::format::{Client, Grade, Mode, Scenario};
use crate::load::Loaded;
use crate::outcome::{ExpectationOutcome, ScenarioOutcome, StepOutcome, Verdict};

/// Plays `loaded` against a tenant of `server` with the client side `driver`: creates the
/// tenant from the scenario's seed, starts the driver, runs the steps (triggers alongside),
/// judges the expectations, stops the driver and deletes the tenant. Never panics on the
/// client's behaviour: what happened is in the outcome.
///
/// Only the tenant's own state, clock, sessions, faults and journal entries are touched, so
/// many plays can share one server.
pub async fn play(server: &MockServer, loaded: &Loaded, driver: &mut impl ClientDriver, opts: &PlayOptions) -> ScenarioOutcome {
    play_with(server.control(), &server.url(), &server.twilsock_url(), loaded, driver, opts).await
}

/// [`play`] with the control plane and the server's URLs given apart (`base_url`:
/// `http://127.0.0.1:PORT`, `twilsock_url`: `ws://127.0.0.1:PORT/v3/wsconnect`).
pub async fn play_with(
    control: &Control,
    base_url: &str,
    twilsock_url: &str,
    loaded: &Loaded,
    driver: &mut impl ClientDriver,
    opts: &PlayOptions,
) -> ScenarioOutcome {
    let began = StdInstant::now();
    let tenant = match tenant::create(control, loaded, opts.rng_seed) {
        Ok(t) => t,
        Err(e) => return setup_failure(&loaded.scenario, &e, began),
    };
    // Deletes the tenant when the play ends, also when its future is dropped half-way (a
    // runner's overall timeout).
    let _tenant = TenantGuard {
        control: control.clone(),
        account: tenant.account.clone(),
        keep: opts.keep_tenant,
    };
    let mut outcome = play_tenant(control, base_url, twilsock_url, loaded, tenant, driver, opts, false).await;
    outcome.duration = began.elapsed();
    outcome
}

/// Plays only the server side of `loaded` on an existing account (`rehearsal serve --scenario`):
/// whatever connects is the client under test. Nothing is created or deleted. The play starts
/// when a session of one of the scenario's identities opens (it waits for one as long as it
/// takes: cancel the future to give up), and its `timeout` counts from there.
///
/// What needs a driven client is skipped: commands, `wait_for` on a client's events, and
/// expectations on what a client reports. Server actions, waits, marks, triggers on what the
/// server observed, and expectations on what the server observed or holds are played and
/// judged as usual, so the outcome grades the app on what the server saw.
pub async fn play_server_side(
    control: &Control,
    base_url: &str,
    twilsock_url: &str,
    loaded: &Loaded,
    account: &str,
    opts: &PlayOptions,
) -> ScenarioOutcome {
    let began = StdInstant::now();
    let Ok(t) = control.tenant(account) else {
        return setup_failure(&loaded.scenario, &SetupError::NoAccount(account.to_owned()), began);
    };
    let tenant = Tenant::of(t.credentials);
    let mut outcome = play_tenant(control, base_url, twilsock_url, loaded, tenant, &mut NoClient, opts, true).await;
    outcome.duration = began.elapsed();
    outcome
}

struct TenantGuard {
    control: Control,
    account: String,
    keep: bool,
}

impl Drop for TenantGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.control.delete_tenant(&self.account);
        }
    }
}

/// A background task of the play, ended with it (also when the play's future is dropped).
pub(super) struct Task(pub(super) JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The outcome of a play that could not be set up: FAILED, the error its reason.
fn setup_failure(s: &Scenario, e: &SetupError, began: StdInstant) -> ScenarioOutcome {
    ScenarioOutcome {
        id: s.id.clone(),
        title: s.title.clone(),
        area: s.area.to_string(),
        verdict: Verdict::Failed,
        reason: Some(e.to_string()),
        duration: began.elapsed(),
        steps: Vec::new(),
        expectations: Vec::new(),
        timeline: Vec::new(),
        stderr: String::new(),
    }
}

/// Everything the steps, triggers and judges of one play share.
pub(crate) struct Play<'a> {
    pub control: &'a Control,
    pub loaded: &'a Loaded,
    pub scenario: &'a Scenario,
    pub tenant: Tenant,
    pub log: Arc<Log>,
    pub names: Names,
    pub minter: Minter,
    pub first_tokens: Option<FirstTokens>,
    pub base_url: String,
    pub twilsock_url: String,
    pub opts: &'a PlayOptions,
    /// When the scenario's time is up (its `timeout` from the start).
    pub deadline: Us,
    /// Only the server side is played ([`play_server_side`]).
    pub(super) server_side: bool,
    pub(super) commands: Mutex<Option<mpsc::Sender<Command>>>,
    pub(super) steps: Mutex<Vec<StepOutcome>>,
    pub(super) expectations: Mutex<Vec<ExpectationOutcome>>,
}

impl<'a> Play<'a> {
    pub fn client(&self, name: &str) -> Result<&'a Client, UnknownClient> {
        self.scenario.client(name).ok_or_else(|| UnknownClient(name.to_owned()))
    }

    /// The token URL a client fetches its tokens from (the adapter appends `identity`).
    pub fn token_url(&self, c: &Client) -> String {
        match &self.first_tokens {
            Some(ft) if commands::starts_with_literal_token(c) => ft.url(&c.name),
            _ => format!("{}&ttl={}", self.tenant.token_url(&self.base_url), c.token_ttl().as_secs()),
        }
    }

    pub(super) fn stopped(&self) -> bool {
        self.log.aborted().is_some() || self.log.now() >= self.deadline
    }

    pub(super) fn time_up(&self, where_: &str) {
        self.log.abort(
            Verdict::Failed,
            format!(
                "the scenario did not finish within its timeout of {} ({where_})",
                crate::format::duration::format(self.scenario.timeout())
            ),
        );
    }

    pub(super) fn record_step(&self, index: usize, description: String, ok: bool, detail: Option<String>, started: Us) {
        let now = self.log.now();
        if self.server_side {
            // Someone is watching their app face the scenario: say what the server does as it does it.
            tracing::info!(at_ms = ms(started), ok, detail = detail.as_deref().unwrap_or(""), "{description}");
        }
        let step = StepOutcome {
            index,
            description,
            ok,
            detail,
            started_ms: ms(started),
            duration_ms: ms(now.saturating_sub(started)),
        };
        if let Some(on_step) = &self.opts.on_step {
            (on_step.0)(&step);
        }
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).push(step);
    }
}

#[allow(clippy::too_many_arguments)]
async fn play_tenant(
    control: &Control,
    base_url: &str,
    twilsock_url: &str,
    loaded: &Loaded,
    tenant: Tenant,
    driver: &mut impl ClientDriver,
    opts: &PlayOptions,
    server_side: bool,
) -> ScenarioOutcome {
    let scenario = &loaded.scenario;
    let log = Arc::new(Log::new(opts.max_timeline));
    let _follower = Task(journal::follow(control, &tenant.account, log.clone()));
    let minter = Minter::new(control.clone(), tenant.clone());
    let literal: Vec<(String, String, Duration, crate::format::TokenKind)> = scenario
        .clients
        .iter()
        .filter(|c| commands::starts_with_literal_token(c))
        .map(|c| (c.name.clone(), c.identity().to_owned(), c.token_ttl(), c.token))
        .collect();
    let first_tokens = if literal.is_empty() || server_side {
        None
    } else {
        match FirstTokens::start(minter.clone(), literal).await {
            Ok(ft) => Some(ft),
            Err(e) => return setup_failure(scenario, &SetupError::TokenEndpoint(e), StdInstant::now()),
        }
    };
    // The app's backend, for webhook scenarios: up and configured before anything happens.
    let _backend = match &scenario.webhooks {
        None => None,
        Some(spec) => {
            let started = backend::start(spec).await.map_err(SetupError::WebhookBackend).and_then(|b| {
                backend::configure(control, &tenant.account, spec, &b.url)
                    .map(|()| b)
                    .map_err(SetupError::Webhooks)
            });
            match started {
                Ok(b) => Some(b),
                Err(e) => return setup_failure(scenario, &e, StdInstant::now()),
            }
        }
    };
    // A server-side play's time starts when the app under test connects.
    let start_at = if server_side { first_session(&log, scenario).await } else { 0 };
    let timeout = u64::try_from(scenario.timeout().as_micros()).unwrap_or(u64::MAX);
    let play = Play {
        control,
        loaded,
        scenario,
        tenant,
        log: log.clone(),
        names: Names::default(),
        minter,
        first_tokens,
        base_url: base_url.trim_end_matches('/').to_owned(),
        twilsock_url: twilsock_url.to_owned(),
        opts,
        deadline: start_at.saturating_add(timeout),
        server_side,
        commands: Mutex::new(None),
        steps: Mutex::default(),
        expectations: Mutex::default(),
    };
    play.names.refresh(control, &play.tenant.account);

    let driven = scenario.mode() == Mode::Driven;
    let observed_client = (!driven).then(|| scenario.clients.first()).flatten();
    let env = DriverEnv {
        scenario: scenario.id.clone(),
        base_url: play.base_url.clone(),
        twilsock_url: play.twilsock_url.clone(),
        token_url: match observed_client {
            Some(c) if commands::starts_with_literal_token(c) => play.token_url(c),
            Some(c) if c.token_ttl.is_some() => play.token_url(c),
            _ => play.tenant.token_url(&play.base_url),
        },
        account_sid: play.tenant.account.clone(),
        auth_token: play.tenant.auth_token.clone(),
        api_key: play.tenant.api_key.clone(),
        api_secret: play.tenant.api_secret.clone(),
        service_sid: play.tenant.service.clone(),
        observed_identity: observed_client.map(|c| c.identity().to_owned()),
        observed_token_ttl: observed_client.and_then(|c| c.token_ttl),
    };
    let launch_after = observed_client.and_then(|c| c.launch_after.clone()).filter(|_| !server_side);
    let stopping = Arc::new(AtomicBool::new(false));
    let mut drainer: Option<Task> = None;
    let mut started = false;

    if launch_after.is_none() && !server_side {
        started = true;
        drainer = client::start(&play, driver, env.clone(), driven, stopping.clone()).await;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let main = async {
        if play.log.aborted().is_none() {
            let mut window_start = start_at;
            let mut flow = Flow::Continue;
            for (i, step) in scenario.steps.iter().enumerate() {
                if play.stopped() {
                    if play.log.aborted().is_none() {
                        play.time_up(&format!("before steps[{i}] {}", step.describe()));
                    }
                    flow = Flow::Stop;
                    break;
                }
                let (f, s) = play.run_step(step, &format!("steps[{i}]"), i, window_start).await;
                if let Some(s) = s {
                    window_start = s;
                }
                if let (Step::Mark(m), Some(launch)) = (step, &launch_after) {
                    if &m.mark == launch && !started {
                        started = true;
                        drainer = client::start(&play, driver, env.clone(), driven, stopping.clone()).await;
                    }
                }
                if f == Flow::Stop {
                    flow = Flow::Stop;
                    break;
                }
            }
            if flow == Flow::Continue && play.log.aborted().is_none() {
                play.judge_end().await;
            }
        }
        let _ = stop_tx.send(true);
    };
    let triggers = futures_util::future::join_all(
        scenario
            .on
            .iter()
            .enumerate()
            .map(|(ti, t)| play.run_trigger(t, ti, stop_rx.clone())),
    );
    tokio::join!(main, triggers);

    stopping.store(true, Ordering::SeqCst);
    let driver_log = if started { Some(driver.stop().await) } else { None };
    if let Some(mut d) = drainer {
        // The transport ends the events channel with the process; do not wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut d.0).await;
    }
    finish(&play, driver_log.map(|l| l.stderr).unwrap_or_default())
}

/// Waits until a session of one of the scenario's identities opens; when it did.
async fn first_session(log: &Log, scenario: &Scenario) -> Us {
    let identities: Vec<&str> = scenario.clients.iter().map(Client::identity).collect();
    tracing::info!(identities = ?identities, scenario = %scenario.id, "waiting for the app to connect as one of the scenario's identities");
    let mut rx = log.subscribe();
    loop {
        let found = log.read(|r| {
            r.observations
                .iter()
                .find(|o| {
                    o.kind == crate::format::ObservationKind::SessionOpened
                        && o.identity.as_deref().is_some_and(|i| identities.contains(&i))
                })
                .map(|o| o.at)
        });
        if let Some(at) = found {
            return at;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn finish(play: &Play<'_>, stderr: String) -> ScenarioOutcome {
    let s = play.scenario;
    let expectations = std::mem::take(&mut *play.expectations.lock().unwrap_or_else(|e| e.into_inner()));
    let mut steps = std::mem::take(&mut *play.steps.lock().unwrap_or_else(|e| e.into_inner()));
    steps.sort_by_key(|st| st.started_ms);
    let abort = play.log.aborted();
    let verdict = match &abort {
        Some(a) => a.verdict,
        None => Verdict::from_expectations(&expectations),
    };
    let reason = match abort {
        Some(a) => Some(a.reason),
        None => [Grade::Must, Grade::Should, Grade::Informational].iter().find_map(|g| {
            expectations
                .iter()
                .find(|e| !e.passed && e.grade == *g)
                .map(|e| format!("{}: expected {}; {}", e.label, e.expected, e.actual))
        }),
    };
    ScenarioOutcome {
        id: s.id.clone(),
        title: s.title.clone(),
        area: s.area.to_string(),
        verdict,
        reason,
        duration: Duration::ZERO,
        steps,
        expectations,
        timeline: play.log.take_timeline(),
        stderr,
    }
}
