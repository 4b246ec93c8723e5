//! Playing one scenario: the tenant, the client, the sequence of steps with its triggers
//! alongside, the judgement at the end, and the outcome.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::Control;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::driver::{Answer, ClientDriver, Command, DriverEnv, Link};
use super::judge::{self, Judged, NameMap, Window};
use super::log::{CommandRec, EventRec, Log, Records, Reply, Us, ms};
use super::tenant::{self, Names, Tenant};
use super::tokens::{FirstTokens, Minter};
use super::{EngineError, actions, backend, commands, journal};
use crate::format::command::{CommandStep, Outcome};
use crate::format::expect::Expectation;
use crate::format::step::{Condition, Step, Trigger};
use crate::format::{Client, Grade, Mode, Scenario};
use crate::load::Loaded;
use crate::outcome::{ExpectationOutcome, ScenarioOutcome, StepOutcome, Verdict};

/// How the engine plays scenarios (the defaults suit the library).
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// How long a command may take to be answered when its step gives no `timeout`.
    pub command_timeout: Duration,
    /// An expectation without a window (`state`, `result`, an `event` with no `within`…) is
    /// judged at the end once it has held for this long, or when the scenario's time is up:
    /// late duplicates and late convergence both get a chance to show.
    pub settle: Duration,
    /// Most timeline entries kept (further ones are counted).
    pub max_timeline: usize,
    /// Makes the tenant's generated SIDs reproducible (`None`: random, as parallel tenants
    /// want).
    pub rng_seed: Option<u64>,
    /// Leave the tenant in place after the play, for inspection.
    pub keep_tenant: bool,
    /// Told of each step as it ends (`rehearsal serve --scenario` shows the play's progress
    /// with it). Called on the engine's task: keep it short and never block.
    pub on_step: Option<OnStep>,
}

/// A callback for each step as it ends ([`PlayOptions::on_step`]).
#[derive(Clone)]
pub struct OnStep(pub Arc<dyn Fn(&StepOutcome) + Send + Sync>);

impl std::fmt::Debug for OnStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStep(..)")
    }
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions {
            command_timeout: Duration::from_secs(5),
            settle: Duration::from_secs(1),
            max_timeline: 20_000,
            rng_seed: None,
            keep_tenant: false,
            on_step: None,
        }
    }
}

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
        Err(reason) => return setup_failure(&loaded.scenario, reason.to_string(), began),
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
        return setup_failure(&loaded.scenario, format!("the server has no account {account}"), began);
    };
    let tenant = Tenant::of(t.credentials);
    let mut outcome = play_tenant(control, base_url, twilsock_url, loaded, tenant, &mut NoClient, opts, true).await;
    outcome.duration = began.elapsed();
    outcome
}

/// The client side of a server-side play: there is none to start (the app under test connects
/// by itself).
struct NoClient;

impl ClientDriver for NoClient {
    async fn start(&mut self, _env: DriverEnv) -> Result<Link, super::driver::DriverError> {
        Err(super::driver::DriverError::Start("a server-side play starts no client".into()))
    }

    async fn stop(&mut self) -> super::driver::DriverLog {
        super::driver::DriverLog::default()
    }
}

/// Why a step or expectation is not played in a server-side play, if it is not.
const SERVER_SIDE_SKIP: &str = "skipped: server-side play (the app under test acts on its own)";

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
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn setup_failure(s: &Scenario, reason: String, began: StdInstant) -> ScenarioOutcome {
    ScenarioOutcome {
        id: s.id.clone(),
        title: s.title.clone(),
        area: s.area.to_string(),
        verdict: Verdict::Failed,
        reason: Some(reason),
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
    server_side: bool,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    steps: Mutex<Vec<StepOutcome>>,
    expectations: Mutex<Vec<ExpectationOutcome>>,
}

/// Whether a sequence goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl<'a> Play<'a> {
    pub fn client(&self, name: &str) -> Result<&'a Client, EngineError> {
        self.scenario.client(name).ok_or_else(|| EngineError::NoClient(name.to_owned()))
    }

    /// The token URL a client fetches its tokens from (the adapter appends `identity`).
    pub fn token_url(&self, c: &Client) -> String {
        match &self.first_tokens {
            Some(ft) if commands::starts_with_literal_token(c) => ft.url(&c.name),
            _ => format!("{}&ttl={}", self.tenant.token_url(&self.base_url), c.token_ttl().as_secs()),
        }
    }

    fn stopped(&self) -> bool {
        self.log.aborted().is_some() || self.log.now() >= self.deadline
    }

    /// Waits for a change to the records, or until `until`; `false` once `until` has come.
    async fn changed_or(&self, rx: &mut watch::Receiver<u64>, until: Us) -> bool {
        if self.log.now() >= until {
            return false;
        }
        tokio::select! {
            r = rx.changed() => r.is_ok() || { tokio::time::sleep_until(self.log.instant(until)).await; false },
            () = tokio::time::sleep_until(self.log.instant(until)) => false,
        }
    }

    fn time_up(&self, where_: &str) {
        self.log.abort(
            Verdict::Failed,
            format!(
                "the scenario did not finish within its timeout of {} ({where_})",
                crate::format::duration::format(self.scenario.timeout())
            ),
        );
    }

    fn record_step(&self, index: usize, description: String, ok: bool, detail: Option<String>, started: Us) {
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

    fn record_expectation(&self, label: String, e: &Expectation, j: Judged, at: Us) -> bool {
        let passed = j.passed;
        self.expectations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ExpectationOutcome {
                label,
                kind: e.kind.name().to_owned(),
                grade: e.grade,
                passed,
                expected: j.expected,
                actual: j.actual,
                evidence: j.evidence,
                at_ms: ms(at),
            });
        passed
    }

    /// Runs steps in order; `start` is where the window of the first one starts.
    async fn run_steps(&self, steps: &[Step], where_: &str, mut window_start: Us) -> Flow {
        for (i, step) in steps.iter().enumerate() {
            if self.stopped() {
                if self.log.aborted().is_none() {
                    self.time_up(&format!("before {where_}[{i}] {}", step.describe()));
                }
                return Flow::Stop;
            }
            let (flow, start) = self.run_step(step, &format!("{where_}[{i}]"), i, window_start).await;
            if let Some(s) = start {
                window_start = s;
            }
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Runs one step; returns whether to go on and, for actions and commands, when they started
    /// (the window start of what follows).
    async fn run_step(&self, step: &Step, at: &str, index: usize, window_start: Us) -> (Flow, Option<Us>) {
        let started = self.log.now();
        let prefix = if at.starts_with("steps") {
            String::new()
        } else {
            format!("{at}: ")
        };
        match step {
            Step::Server(a) => {
                let description = format!("{prefix}{}", actions::describe(a));
                let mut delivered = None;
                let mut result = actions::run(self, a, &mut delivered).await.map_err(|e| e.to_string());
                // A session command takes effect on the session's own task: wait until every
                // session reached has acknowledged it, so the next step meets its effect.
                if let Ok(v) = &mut result
                    && let Some(delivery) = delivered
                {
                    v["applied"] = json!(delivery.applied().await);
                }
                self.names.refresh(self.control, &self.tenant.account);
                let (ok, detail) = match &result {
                    Ok(v) => (true, Some(v.to_string())),
                    Err(e) => (false, Some(e.clone())),
                };
                self.log.timeline(
                    started,
                    "action",
                    "engine",
                    description.clone(),
                    result.clone().unwrap_or_else(|e| json!({ "error": e })),
                );
                self.record_step(index, description.clone(), ok, detail, started);
                if let Err(e) = result {
                    self.log.abort(Verdict::Failed, format!("{at} ({description}) failed: {e}"));
                    return (Flow::Stop, Some(started));
                }
                (Flow::Continue, Some(started))
            }
            Step::Command(c) if self.server_side => {
                let description = format!("{prefix}command {} {}", c.command.name(), c.command.client());
                self.record_step(index, description, true, Some(SERVER_SIDE_SKIP.into()), started);
                // Not an action: what follows still looks from the app's connection on.
                (Flow::Continue, None)
            }
            Step::Command(c) => {
                let flow = self.command(c, at, index, &prefix).await;
                (flow, Some(started))
            }
            Step::WaitFor(wf) if self.server_side && matches!(wf.wait_for, Condition::Event(_)) => {
                let description = format!("{prefix}wait_for {}", condition_text(&wf.wait_for));
                self.record_step(index, description, true, Some(SERVER_SIDE_SKIP.into()), started);
                (Flow::Continue, None)
            }
            Step::Expect(e) if self.server_side && e.kind.needs_client_reports() => {
                self.record_step(
                    index,
                    format!("{prefix}{}", step.describe()),
                    true,
                    Some(SERVER_SIDE_SKIP.into()),
                    started,
                );
                (Flow::Continue, None)
            }
            Step::Wait(w) => {
                let until = started.saturating_add(u64::try_from(w.wait.as_micros()).unwrap_or(u64::MAX));
                let mut rx = self.log.subscribe();
                while self.log.now() < until.min(self.deadline) && self.log.aborted().is_none() {
                    self.changed_or(&mut rx, until.min(self.deadline)).await;
                }
                let ok = self.log.now() >= until;
                self.record_step(index, format!("{prefix}{}", step.describe()), ok, None, started);
                if !ok && self.log.aborted().is_none() {
                    self.time_up(&format!("during {at} {}", step.describe()));
                }
                (if ok { Flow::Continue } else { Flow::Stop }, None)
            }
            Step::WaitFor(wf) => {
                let description = format!("{prefix}wait_for {}", condition_text(&wf.wait_for));
                let limit = started.saturating_add(u64::try_from(wf.timeout.as_micros()).unwrap_or(u64::MAX));
                let found = self.await_condition(&wf.wait_for, window_start, limit.min(self.deadline)).await;
                match found {
                    Some(at) => {
                        self.record_step(index, description, true, Some(format!("met at {} ms", ms(at))), started);
                        (Flow::Continue, None)
                    }
                    None => {
                        let why = if self.log.aborted().is_some() {
                            None
                        } else if self.log.now() >= limit {
                            Some(format!(
                                "{at} wait_for {} was not met within {}",
                                condition_text(&wf.wait_for),
                                crate::format::duration::format(wf.timeout)
                            ))
                        } else {
                            self.time_up(&format!("during {at} {description}"));
                            None
                        };
                        self.record_step(index, description, false, why.clone(), started);
                        if let Some(why) = why {
                            self.log.abort(Verdict::Failed, why);
                        }
                        (Flow::Stop, None)
                    }
                }
            }
            Step::Expect(e) => {
                let label = e.label.clone().unwrap_or_else(|| format!("{at} {}", step.describe()));
                let (j, decided) = self.expect_inline(e, window_start).await;
                let passed = self.record_expectation(label.clone(), e, j, decided);
                self.record_step(
                    index,
                    format!("{prefix}{}", step.describe()),
                    passed || e.grade != Grade::Must,
                    (!passed).then(|| format!("`{label}` did not hold")),
                    started,
                );
                let flow = if !passed && e.grade == Grade::Must {
                    Flow::Stop
                } else {
                    Flow::Continue
                };
                (flow, None)
            }
            Step::Mark(m) => {
                self.log.mark(&m.mark, started);
                self.record_step(index, format!("{prefix}{}", step.describe()), true, None, started);
                (Flow::Continue, None)
            }
        }
    }

    async fn command(&self, c: &CommandStep, at: &str, index: usize, prefix: &str) -> Flow {
        let started = self.log.now();
        let name = c.command.name();
        let client = c.command.client();
        let description = format!("{prefix}command {name} {client}");
        let sender = self.commands.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(sender) = sender else {
            self.record_step(index, description, false, Some("no client is running".into()), started);
            self.log.abort(
                Verdict::Failed,
                format!("{at} (command {name}): no client is running to take commands"),
            );
            return Flow::Stop;
        };
        let body = match commands::body(self, &c.command) {
            Ok(b) => b,
            Err(e) => {
                self.record_step(index, description, false, Some(e.to_string()), started);
                self.log.abort(Verdict::Failed, format!("{at} (command {name}): {e}"));
                return Flow::Stop;
            }
        };
        let (tx, rx) = oneshot::channel();
        let position = self.log.push_command(CommandRec {
            label: c.label.clone(),
            client: client.to_owned(),
            cmd: name.to_owned(),
            conversation: c.command.conversation().map(str::to_owned),
            body: body.clone(),
            sent_at: started,
            answer: None,
        });
        let limit = started.saturating_add(u64::try_from(c.timeout.unwrap_or(self.opts.command_timeout).as_micros()).unwrap_or(u64::MAX));
        let reply = if sender.send(Command { body, reply: tx }).await.is_err() {
            Reply::Gone
        } else {
            self.await_answer(rx, limit).await
        };
        let answered = self.log.now();
        self.log.answer(position, answered, reply.clone());
        self.names.refresh(self.control, &self.tenant.account);
        let wanted_ok = match (c.outcome, &reply) {
            (_, Reply::Unsupported(_) | Reply::Gone) => false,
            (Outcome::Any, _) => true,
            (Outcome::Ok, Reply::Ok(_)) | (Outcome::Error, Reply::Error(_)) => true,
            _ => false,
        };
        let detail = match &reply {
            Reply::Ok(v) => truncate(&v.to_string()),
            other => format!("{}: {}", other.word(), truncate(&other.value().to_string())),
        };
        self.record_step(index, description.clone(), wanted_ok, Some(detail), started);
        if wanted_ok {
            return Flow::Continue;
        }
        if self.log.aborted().is_some() {
            return Flow::Stop;
        }
        match &reply {
            Reply::Unsupported(m) => self
                .log
                .abort(Verdict::Unimplemented, format!("the client does not support `{name}`: {m}")),
            Reply::Gone => self.log.abort(
                Verdict::Failed,
                format!("{at} ({description}): the client went away before answering"),
            ),
            Reply::Timeout if answered >= self.deadline => self.time_up(&format!("waiting for {at} {description}")),
            other => {
                let want = match c.outcome {
                    Outcome::Ok => "succeed",
                    Outcome::Error => "fail",
                    Outcome::Any => "answer",
                };
                self.log.abort(
                    Verdict::Failed,
                    format!(
                        "{at} ({description}) was expected to {want}; it ended {}: {}",
                        other.word(),
                        truncate(&other.value().to_string())
                    ),
                );
            }
        }
        Flow::Stop
    }

    async fn await_answer(&self, rx: oneshot::Receiver<Answer>, limit: Us) -> Reply {
        let until = limit.min(self.deadline);
        let abort_watch = async {
            let mut ticks = self.log.subscribe();
            loop {
                if self.log.aborted().is_some() {
                    return;
                }
                if ticks.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            answer = rx => match answer {
                Ok(Answer::Ok(v)) => Reply::Ok(v),
                Ok(Answer::Failed(v)) => Reply::Error(v),
                Ok(Answer::Unsupported(m)) => Reply::Unsupported(m),
                Err(_) => Reply::Gone,
            },
            () = tokio::time::sleep_until(self.log.instant(until)) => Reply::Timeout,
            () = abort_watch => Reply::Gone,
        }
    }

    /// The first record meeting `c` at or after `from`, waiting until `until`; its time.
    async fn await_condition(&self, c: &Condition, from: Us, until: Us) -> Option<Us> {
        let mut rx = self.log.subscribe();
        loop {
            let names = self.names.snapshot();
            let found = self.log.read(|r| self.find(c, from, r, &names, &HashSet::new()));
            if let Some((_, at)) = found {
                return Some(at);
            }
            if self.log.aborted().is_some() || !self.changed_or(&mut rx, until).await {
                let names = self.names.snapshot();
                return self.log.read(|r| self.find(c, from, r, &names, &HashSet::new())).map(|(_, at)| at);
            }
        }
    }

    /// The first record meeting `c` at or after `from` not in `skip`: a key for it and its time.
    fn find(&self, c: &Condition, from: Us, r: &Records, names: &NameMap, skip: &HashSet<(u8, u64)>) -> Option<((u8, u64), Us)> {
        match c {
            Condition::Event(e) => {
                let name = serde_json::to_value(e.event).ok()?.as_str()?.to_owned();
                r.events
                    .iter()
                    .enumerate()
                    .filter(|(_, ev)| ev.at >= from && ev.client == e.client && ev.name == name)
                    .filter(|(i, _)| !skip.contains(&(0, *i as u64)))
                    .find(|(_, ev)| judge::payload_matches(e.matches.as_ref(), &ev.payload, names))
                    .map(|(i, ev)| ((0, i as u64), ev.at))
            }
            Condition::Observed(o) => {
                let identity = o
                    .client
                    .as_deref()
                    .map(|c| self.scenario.client(c).map_or(c, |x| x.identity()))
                    .or(o.identity.as_deref());
                r.observations
                    .iter()
                    .filter(|x| x.at >= from && x.kind == o.observed)
                    .filter(|x| identity.is_none_or(|i| x.identity.as_deref() == Some(i)))
                    .filter(|x| !skip.contains(&(1 + x.kind as u8, x.seq)))
                    .find(|x| {
                        o.matches
                            .as_ref()
                            .is_none_or(|m| crate::format::matching::matches(&Value::Object(m.clone()), &x.detail))
                    })
                    .map(|x| ((1 + x.kind as u8, x.seq), x.at))
            }
        }
    }

    /// Judges an inline expectation: waits until it is decided (its window closes, it is met
    /// for good, or broken); returns the judgement and when it was decided.
    async fn expect_inline(&self, e: &Expectation, window_start: Us) -> (Judged, Us) {
        let w = match self.log.read(|r| judge::window(&e.kind, window_start, r)) {
            Ok(w) => w,
            Err(why) => return (unjudged(&e.kind, why.to_string()), self.log.now()),
        };
        let mut rx = self.log.subscribe();
        loop {
            let now = self.log.now();
            let names = self.names.snapshot();
            let j = self.log.read(|r| judge::judge(self, &e.kind, w, now.min(self.deadline), r, &names));
            let until = w.end.unwrap_or(now).min(self.deadline);
            if j.fin || w.end.is_none() || now >= until || self.log.aborted().is_some() {
                return (j, now);
            }
            self.changed_or(&mut rx, until).await;
        }
    }

    /// Judges the scenario's `[[expect]]`: each once its window has closed, or once it has held
    /// for `settle` if it has none, or when time is up.
    async fn judge_end(&self) {
        let exps: Vec<&Expectation> = self
            .scenario
            .expect
            .iter()
            .filter(|e| !(self.server_side && e.kind.needs_client_reports()))
            .collect();
        if exps.is_empty() {
            return;
        }
        self.names.refresh(self.control, &self.tenant.account);
        let windows: Vec<Result<Window, String>> = self.log.read(|r| {
            exps.iter()
                .map(|e| judge::window(&e.kind, 0, r).map_err(|e| e.to_string()))
                .collect()
        });
        let settle = u64::try_from(self.opts.settle.as_micros()).unwrap_or(u64::MAX);
        let mut ready: Vec<Option<(Judged, Us)>> = vec![None; exps.len()];
        let mut stable: Vec<Option<(Us, String)>> = vec![None; exps.len()];
        let mut rx = self.log.subscribe();
        loop {
            let now = self.log.now();
            let capped = now.min(self.deadline);
            let names = self.names.snapshot();
            for (i, e) in exps.iter().enumerate() {
                if ready[i].is_some() {
                    continue;
                }
                let w = match &windows[i] {
                    Ok(w) => *w,
                    Err(why) => {
                        ready[i] = Some((unjudged(&e.kind, why.clone()), now));
                        continue;
                    }
                };
                let j = self.log.read(|r| judge::judge(self, &e.kind, w, capped, r, &names));
                if j.fin || now >= self.deadline || w.closed(now) {
                    ready[i] = Some((j, now));
                } else if w.end.is_none() {
                    let print = format!("{}|{}|{}", j.passed, j.actual, j.evidence.len());
                    match &stable[i] {
                        Some((since, p)) if *p == print && j.passed => {
                            if now.saturating_sub(*since) >= settle {
                                ready[i] = Some((j, now));
                            }
                        }
                        _ => stable[i] = Some((now, print)),
                    }
                }
            }
            if ready.iter().all(Option::is_some) {
                break;
            }
            let next_end = exps
                .iter()
                .enumerate()
                .filter(|(i, _)| ready[*i].is_none())
                .filter_map(|(i, _)| windows[i].as_ref().ok().and_then(|w| w.end))
                .min()
                .unwrap_or(u64::MAX);
            let wake = next_end.min(self.deadline).min(now + 100_000);
            self.changed_or(&mut rx, wake).await;
        }
        for (i, (e, r)) in exps.into_iter().zip(ready).enumerate() {
            if let Some((j, at)) = r {
                let label = e.label.clone().unwrap_or_else(|| format!("expect[{i}] {}", e.kind.name()));
                self.record_expectation(label, e, j, at);
            }
        }
    }

    /// Fires a trigger each time its condition holds (after its `since` mark), at most `times`
    /// times; a firing runs its steps to the end, and only what happens after a firing ends can
    /// fire it again.
    async fn run_trigger(&self, t: &Trigger, ti: usize, mut stop: watch::Receiver<bool>) {
        let mut rx = self.log.subscribe();
        let since = loop {
            let s = match &t.since {
                None => Some(0),
                Some(m) => self.log.read(|r| r.mark(m)),
            };
            if let Some(s) = s {
                break s;
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = rx.changed() => {},
                _ = stop.changed() => return,
            }
        };
        let limit = t.times.limit();
        let mut fired = 0u32;
        let mut after = since;
        let mut used = HashSet::new();
        loop {
            if limit.is_some_and(|l| fired >= l) || *stop.borrow() || self.log.aborted().is_some() {
                return;
            }
            let names = self.names.snapshot();
            let found = self.log.read(|r| self.find(&t.when, after, r, &names, &used));
            match found {
                Some((key, at)) => {
                    used.insert(key);
                    fired += 1;
                    self.log.timeline(
                        self.log.now(),
                        "action",
                        "engine",
                        format!("on[{ti}] fired ({}): {}", fired, condition_text(&t.when)),
                        json!({ "condition_at_ms": ms(at) }),
                    );
                    let flow = self.run_steps(&t.then, &format!("on[{ti}].then"), at).await;
                    after = self.log.now();
                    if flow == Flow::Stop {
                        return;
                    }
                }
                None => {
                    tokio::select! {
                        _ = rx.changed() => {},
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 500 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(500).collect::<String>())
    }
}

fn unjudged(kind: &crate::format::ExpectKind, why: String) -> Judged {
    Judged {
        passed: false,
        expected: format!("a `{}` expectation", kind.name()),
        actual: format!("not judged: {why}"),
        evidence: Vec::new(),
        fin: true,
    }
}

/// `message_added of alice matching {…}`, `session_opened of alice`.
fn condition_text(c: &Condition) -> String {
    let name = |v: Value| v.as_str().map(str::to_owned).unwrap_or_default();
    match c {
        Condition::Event(e) => format!(
            "{} of {}{}",
            name(serde_json::to_value(e.event).unwrap_or(Value::Null)),
            e.client,
            e.matches
                .as_ref()
                .map(|m| format!(" matching {}", Value::Object(m.clone())))
                .unwrap_or_default()
        ),
        Condition::Observed(o) => format!(
            "observed {}{}{}",
            name(serde_json::to_value(o.observed).unwrap_or(Value::Null)),
            o.client
                .as_deref()
                .or(o.identity.as_deref())
                .map(|w| format!(" of {w}"))
                .unwrap_or_default(),
            o.matches
                .as_ref()
                .map(|m| format!(" matching {}", Value::Object(m.clone())))
                .unwrap_or_default()
        ),
    }
}

/// Copies the client's events into the log until its stream ends.
fn drain(mut events: mpsc::Receiver<Value>, log: Arc<Log>, driven: bool, stopping: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            // Arrival time, not the adapter's `at`: whole milliseconds would put an event caused
            // by an action up to a millisecond before that action; the arrival is never before
            // its cause (the protocol's `at` stays in the event's payload).
            let at = log.now();
            let name = ev.get("event").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            let client = ev.get("client").and_then(Value::as_str).unwrap_or("").to_owned();
            log.push_event(EventRec {
                at,
                client,
                name,
                payload: ev,
            });
        }
        let at = log.now();
        log.client_gone(at);
        if driven && !stopping.load(Ordering::SeqCst) {
            log.abort(
                Verdict::Failed,
                "the client's event stream ended during the scenario (did its process exit? see stderr)".into(),
            );
        }
    })
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
            Err(e) => {
                return setup_failure(
                    scenario,
                    format!("could not start the engine's token endpoint: {e}"),
                    StdInstant::now(),
                );
            }
        }
    };
    // The app's backend, for webhook scenarios: up and configured before anything happens.
    let _backend = match &scenario.webhooks {
        None => None,
        Some(spec) => {
            let started = backend::start(spec)
                .await
                .map_err(|e| format!("could not start the engine's webhook backend: {e}"))
                .and_then(|b| {
                    backend::configure(control, &tenant.account, spec, &b.url)
                        .map(|()| b)
                        .map_err(|e| e.to_string())
                });
            match started {
                Ok(b) => Some(b),
                Err(reason) => return setup_failure(scenario, reason, StdInstant::now()),
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
        drainer = start(&play, driver, env.clone(), driven, stopping.clone()).await;
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
                        drainer = start(&play, driver, env.clone(), driven, stopping.clone()).await;
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

/// Starts the client side and the copying of its events (returned); checks `hello` against
/// what a driven scenario needs. A failure to start is recorded as the play's abort.
async fn start(play: &Play<'_>, driver: &mut impl ClientDriver, env: DriverEnv, driven: bool, stopping: Arc<AtomicBool>) -> Option<Task> {
    let began = play.log.now();
    let link: Link = match driver.start(env).await {
        Ok(l) => l,
        Err(e) => {
            play.log.abort(Verdict::Failed, e.to_string());
            return None;
        }
    };
    let hello = link.hello.clone();
    play.log.timeline(
        began,
        "action",
        "engine",
        "client started".into(),
        json!({ "hello": hello.as_ref().map(|h| json!({ "name": h.name, "version": h.version, "protocol": h.protocol, "capabilities": h.capabilities })) }),
    );
    let drainer = drain(link.events, play.log.clone(), driven, stopping);
    *play.commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.commands);
    if driven {
        match &hello {
            None => play.log.abort(
                Verdict::Unimplemented,
                "the client did not answer `hello`: it can only play observed scenarios".into(),
            ),
            Some(h) => {
                let missing: Vec<&str> = play
                    .scenario
                    .requires
                    .iter()
                    .filter_map(|c| c.protocol_command())
                    .filter(|cmd| !h.capabilities.iter().any(|have| have == cmd))
                    .collect();
                if !missing.is_empty() {
                    play.log.abort(
                        Verdict::Unimplemented,
                        format!("the client does not support {}", missing.join(", ")),
                    );
                }
            }
        }
    }
    Some(Task(drainer))
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
