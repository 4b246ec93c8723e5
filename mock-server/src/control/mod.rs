//! The control plane: what tests and scenarios use to put a client into a situation.
//!
//! [`Control`] is the Rust API (the embedded `MockServer` hands it out); `http` mirrors it
//! one-to-one under `/_rehearsal/v1/…` for test suites in any language.
//!
//! Layout: `tenants` (create/reset/delete isolated accounts), `sessions` (live sessions and
//! commands to them), `actors` (act as an identity or as the REST API), `faults` (HTTP faults,
//! init denials, refusals), `http` (the HTTP API and its
//! token check), `middleware` (HTTP faults and journaling around the REST and media routes).
pub mod actors;
mod clocks;
pub mod faults;
pub mod http;
pub mod middleware;
pub mod near_misses;
pub mod scenario;
pub mod sessions;
pub mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::identity::Caller;
use crate::domain::seed::{Seed, SeedAccount, SeedError};
use crate::domain::settings::HookLevel;
use crate::domain::snapshot::ImportError;
use crate::domain::webhook::{HookConfig, HookConfigUpdate};
use crate::domain::{AccountState, Cause, Domain};
use crate::journal::{self, Journal, Kind, Observation};
use crate::server::Credentials;
use crate::sync::SyncHub;
use crate::twilsock::InitRejection;
use crate::twilsock::session::{Ack, SessionCommand};

/// How long [`Control::command_applied`] waits for sessions to apply a command. A session that
/// does not apply it in time is busy beyond reason (or gone); the caller learns which.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
pub use clocks::{ClockAction, ClockView};
use sessions::{SessionView, Sessions, Target};

/// The control plane's handle: cheap to clone.
#[derive(Clone)]
///
/// Its parts are the crate's own: users outside it (the scenario engine, `rehearsal`, the CLI)
/// go through its methods, so that every change takes the domain service's one way in.
pub struct Control {
    pub(crate) domain: Domain,
    pub(crate) hub: Arc<SyncHub>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) faults: Arc<faults::Faults>,
    /// Requests answered 404/405 for want of a route, grouped (the inspector's near-misses).
    pub(crate) near_misses: Arc<near_misses::NearMisses>,
    /// The progress of `rehearsal serve --scenario`, when one plays (the inspector shows it).
    pub(crate) scenario: Arc<scenario::Board>,
    /// The seed each tenant was created from, so `reset` can rebuild it.
    seeds: Arc<Mutex<HashMap<String, SeedAccount>>>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no tenant {0}")]
    NoTenant(String),
    #[error("seed: {0}")]
    Seed(SeedError),
    #[error("state: {0}")]
    Import(ImportError),
    #[error(transparent)]
    Act(#[from] actors::ActError),

    #[error("{0}")]
    Invalid(String),
    /// A number from outside is beyond what the control plane accepts (see [`limits`]).
    #[error("{0}")]
    OutOfRange(String),
}

// Causes are part of the message (the workspace's convention: Display only, no `source`, so
// that `{:#}` and error-chain printers do not print them twice).
impl From<SeedError> for ControlError {
    fn from(e: SeedError) -> ControlError {
        ControlError::Seed(e)
    }
}

impl From<ImportError> for ControlError {
    fn from(e: ImportError) -> ControlError {
        ControlError::Import(e)
    }
}

/// Bounds on the numbers the control plane takes from outside, so that no request can make the
/// server allocate without end, sleep past the end of time or wrap a clock around.
pub mod limits {
    pub use crate::domain::limits::MAX_GENERATED_MESSAGES;
    /// Longest a clock may be moved forward in one `advance`: 100 years, far past any token
    /// lifetime or timer a test can exercise; the result must also stay before
    /// [`crate::clock::MAX_CLOCK_MS`].
    pub const MAX_CLOCK_ADVANCE_MS: u64 = 100 * 366 * 24 * 3600 * 1000;
    /// Longest duration a control request may ask for (upstream latency, connection refusals,
    /// backoff hints): one day. Longer than any test's own timeout, short enough that no deadline
    /// arithmetic overflows.
    pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;
}

/// 32 lowercase hex digits (128 bits) from the operating system's random source.
fn os_random_hex() -> Result<String, ControlError> {
    let mut bytes = [0u8; 16];
    fill_os_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fills `bytes` from the operating system's random source. Without one the server cannot make
/// a secret nobody could guess, so it refuses rather than hand out a weak one.
fn fill_os_random(bytes: &mut [u8]) -> Result<(), ControlError> {
    use rand::TryRngCore;
    rand::rngs::OsRng
        .try_fill_bytes(bytes)
        .map_err(|e| ControlError::Invalid(format!("no secret could be drawn from the OS random source: {e}")))
}

/// What a new tenant looks like.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant's content in the seed format (one account; credentials and SIDs it leaves
    /// out are generated). Default: the default seed's content with fresh credentials.
    #[serde(default)]
    pub seed: Option<Value>,
    /// Makes generated SIDs and secrets reproducible (for tests that compare runs). Without
    /// it, the auth token and API key are drawn from the OS random source.
    #[serde(default)]
    pub rng_seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    #[serde(flatten)]
    pub credentials: Credentials,
}

impl Control {
    pub fn new(domain: Domain, hub: Arc<SyncHub>) -> Control {
        Control {
            domain,
            hub,
            sessions: Arc::default(),
            journal: Arc::new(Journal::new(journal::DEFAULT_CAPACITY)),
            faults: Arc::default(),
            near_misses: Arc::default(),
            scenario: Arc::default(),
            seeds: Arc::default(),
            counter: Arc::default(),
        }
    }

    /// Remembers how an account was seeded (the server does this for its startup seed).
    pub fn remember_seed(&self, account: &str, seed: SeedAccount) {
        self.seeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_owned(), seed);
    }

    pub fn record(&self, kind: Kind, account: Option<&str>, summary: String, detail: Value) {
        let at = account
            .and_then(|a| self.domain.account(a))
            .map_or_else(|| self.domain.clock().now(), |a| a.clock().now());
        self.journal.record(Observation {
            at,
            kind,
            account: account.map(str::to_owned),
            session: None,
            identity: None,
            summary,
            detail,
        });
    }

    // ---- tenants

    /// Creates an isolated account with its own credentials and content.
    pub fn create_tenant(&self, req: NewTenant) -> Result<Tenant, ControlError> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut account: SeedAccount = match req.seed {
            Some(v) => serde_json::from_value(v).map_err(|e| ControlError::Seed(SeedError::Parse(e)))?,
            None => {
                let mut a = Seed::default_seed().accounts.remove(0);
                a.sid = None;
                a.auth_token = None;
                a.api_keys = Vec::new();
                if let Some(s) = a.service.as_mut() {
                    s.sid = None;
                }
                a
            }
        };
        let rng = match req.rng_seed {
            // Asked for: everything the seed leaves out, secrets included, follows from it.
            Some(seed) => seed,
            None => {
                // Secrets drawn from the OS, never derived from a seed someone could guess (a
                // creation time can be brute-forced from the account SID in seconds).
                if account.auth_token.is_none() {
                    account.auth_token = Some(os_random_hex()?);
                }
                if account.api_keys.is_empty() {
                    account.api_keys.push(crate::domain::ApiKey {
                        sid: format!("{}{}", crate::sid::API_KEY, os_random_hex()?),
                        secret: os_random_hex()?,
                        friendly_name: None,
                    });
                }
                let mut bytes = [0u8; 8];
                fill_os_random(&mut bytes)?;
                u64::from_le_bytes(bytes) ^ n.rotate_left(32)
            }
        };
        let seed = Seed {
            format: crate::domain::seed::FORMAT,
            description: None,
            rng_seed: rng,
            accounts: vec![account.clone()],
        };
        let sid = seed.apply(&self.domain)?.remove(0);
        // Pin the generated credentials so a reset rebuilds the same tenant.
        let created = self.domain.account(&sid).ok_or_else(|| ControlError::NoTenant(sid.clone()))?;
        account.sid = Some(created.sid.clone());
        account.auth_token = Some(created.auth_token.clone());
        account.api_keys = created.api_keys.clone();
        let service_sid = created.read(|s| s.default_service.clone());
        match account.service.as_mut() {
            Some(s) => s.sid = Some(service_sid),
            None => {
                account.service = Some(crate::domain::seed::SeedService {
                    sid: Some(service_sid),
                    friendly_name: None,
                })
            }
        }
        self.remember_seed(&sid, account);
        self.record(Kind::Control, Some(&sid), "tenant created".into(), json!({}));
        self.tenant(&sid)
    }

    pub fn tenant(&self, sid: &str) -> Result<Tenant, ControlError> {
        Credentials::of(&self.domain, sid)
            .map(|credentials| Tenant { credentials })
            .ok_or_else(|| ControlError::NoTenant(sid.to_owned()))
    }

    /// Rebuilds a tenant from its seed: same credentials, fresh content; live sessions dropped.
    pub fn reset_tenant(&self, sid: &str) -> Result<Tenant, ControlError> {
        let seed = self
            .seeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .cloned()
            .ok_or_else(|| ControlError::NoTenant(sid.to_owned()))?;
        self.teardown(sid);
        let s = Seed {
            format: crate::domain::seed::FORMAT,
            description: None,
            rng_seed: 0,
            accounts: vec![seed],
        };
        s.apply(&self.domain)?;
        self.record(Kind::Control, Some(sid), "tenant reset".into(), json!({}));
        self.tenant(sid)
    }

    pub fn delete_tenant(&self, sid: &str) -> Result<(), ControlError> {
        if self.domain.account(sid).is_none() {
            return Err(ControlError::NoTenant(sid.to_owned()));
        }
        self.teardown(sid);
        self.seeds.lock().unwrap_or_else(|e| e.into_inner()).remove(sid);
        self.journal.forget_account(sid);
        self.near_misses.clear(Some(sid));
        Ok(())
    }

    fn teardown(&self, sid: &str) {
        self.sessions.drop_account(sid);
        self.domain.remove_account(sid);
        self.hub.reset_account(sid);
        self.faults.clear(Some(sid));
    }

    /// Exports one tenant as a versioned snapshot.
    pub fn export(&self, sid: &str) -> Result<Value, ControlError> {
        if self.domain.account(sid).is_none() {
            return Err(ControlError::NoTenant(sid.to_owned()));
        }
        serde_json::to_value(self.domain.export(Some(&[sid.to_owned()]))).map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Imports a snapshot (replacing tenants with the same SIDs; their sessions are dropped).
    pub fn import(&self, snapshot: &str) -> Result<Vec<String>, ControlError> {
        let imported = self.domain.import_json(snapshot)?;
        for sid in &imported {
            self.sessions.drop_account(sid);
            self.hub.reset_account(sid);
        }
        Ok(imported)
    }

    // ---- connections

    pub fn connections(&self, account: Option<&str>) -> Vec<SessionView> {
        self.sessions.list(account, |acc, id| {
            self.hub
                .projection(acc)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .subscriptions_of(id)
        })
    }

    /// [`Control::command`], then waits until every session it reached has applied the command
    /// (at most [`APPLY_TIMEOUT`]), so that whatever the caller does next meets its effect: a
    /// message posted after `hold_notifications` is held, one posted after `drop` finds no
    /// session. Sessions apply commands on their own tasks, in order with everything else they
    /// do. Returns the sessions reached and, of those, the ones that applied it in time.
    pub async fn command_applied(&self, target: &Target, cmd: SessionCommand) -> (Vec<u64>, Vec<u64>) {
        let delivery = self.command(target, cmd);
        let reached = delivery.reached();
        (reached, delivery.applied().await)
    }

    /// Where the journal is now: entries recorded from here on have a larger `seq`.
    pub fn journal_mark(&self) -> u64 {
        self.journal
            .query(&journal::Filter {
                after: Some(u64::MAX),
                ..journal::Filter::default()
            })
            .last_seq
    }

    /// Sends a command to the target sessions; returns the ids reached, with their
    /// acknowledgements (they apply it on their own tasks, shortly after: wait with
    /// [`Delivery::applied`], or see [`Control::command_applied`]).
    pub fn command(&self, target: &Target, cmd: SessionCommand) -> Delivery {
        let acks = self.sessions.command(target, &cmd);
        let delivery = Delivery { acks };
        let reached = delivery.reached();
        self.record(
            Kind::Fault,
            Some(&target.account),
            format!("{} -> {} session(s)", command_name(&cmd), reached.len()),
            json!({ "command": command_name(&cmd), "sessions": reached, "identity": target.identity, "session": target.session }),
        );
        delivery
    }

    /// Arms an HTTP fault rule (REST, media, and requests tunnelled over twilsock) after checking
    /// it: at least one use, a path glob, a failure status of 400-599, a delay of at most
    /// [`limits::MAX_DURATION_MS`]. Returns the rule's id.
    pub fn arm_http(&self, rule: faults::HttpRule) -> Result<u64, ControlError> {
        if rule.count == 0 {
            return Err(ControlError::Invalid("count must be at least 1".into()));
        }
        if !rule.path.starts_with('/') && !rule.path.starts_with('*') {
            return Err(ControlError::Invalid("path must start with / (or be a * glob)".into()));
        }
        match &rule.fault {
            faults::HttpFault::Fail { status, .. } if !(400..=599).contains(status) => {
                return Err(ControlError::Invalid(format!("a failure status must be 400-599, not {status}")));
            }
            faults::HttpFault::Delay { by } if by.as_millis() > u128::from(limits::MAX_DURATION_MS) => {
                return Err(ControlError::OutOfRange(format!(
                    "a delay of {} ms is more than {} ms",
                    by.as_millis(),
                    limits::MAX_DURATION_MS
                )));
            }
            _ => {}
        }
        Ok(self.faults.add_http(rule))
    }

    /// Denies the next `count` inits of an account (and identity) with the given status.
    pub fn deny_inits(&self, d: faults::InitDenial) -> u64 {
        self.faults.add_init_denial(d)
    }

    /// Refuses new sessions of an account for `d` (its clock): inits answer 503, which the SDK
    /// retries with backoff.
    pub fn refuse_connections(&self, account: &str, d: Duration) -> Result<(), ControlError> {
        let clock = self.clock(Some(account))?;
        self.faults.refuse(account, clock.now().plus(d));
        Ok(())
    }

    /// Called for every `init`/`update` that passed token checks: applies armed denials and
    /// refusals.
    pub fn gate_init(&self, caller: &Caller) -> Result<(), InitRejection> {
        let account = &caller.account.sid;
        if let Some(until) = self.faults.refusing(account, caller.account.clock().now()) {
            self.record(
                Kind::Fault,
                Some(account),
                "init refused (connections refused)".into(),
                json!({ "identity": caller.identity(), "until": until }),
            );
            return Err(InitRejection {
                status: 503,
                status_text: "SERVICE_UNAVAILABLE".into(),
                error_code: None,
                description: "new connections are refused for now".into(),
                backoff_ms: None,
            });
        }
        if let Some(d) = self.faults.take_init_denial(account, caller.identity()) {
            self.record(
                Kind::Fault,
                Some(account),
                format!("init denied with {}/{}", d.status, d.error_code),
                json!({ "identity": caller.identity(), "status": d.status, "error_code": d.error_code }),
            );
            return Err(InitRejection {
                status: d.status,
                status_text: crate::twilsock::session::reason_phrase(d.status).to_uppercase().replace(' ', "_"),
                error_code: Some(d.error_code),
                description: d.description.unwrap_or_else(|| "denied by the control plane".into()),
                backoff_ms: d.backoff_ms,
            });
        }
        Ok(())
    }

    // ---- reading and configuring tenants

    /// Whether the tenant exists.
    pub fn has_tenant(&self, sid: &str) -> bool {
        self.domain.account(sid).is_some()
    }

    /// Reads a tenant's state (under its read lock: keep `f` short, and never call back into
    /// the control plane from it).
    pub fn read<R>(&self, account: &str, f: impl FnOnce(&AccountState) -> R) -> Result<R, ControlError> {
        let acc = self
            .domain
            .account(account)
            .ok_or_else(|| ControlError::NoTenant(account.to_owned()))?;
        Ok(acc.read(f))
    }

    /// Changes the webhook targets of a tenant's default service, as
    /// `POST /v1/Services/{sid}/Configuration/Webhooks` does.
    pub fn configure_webhooks(&self, account: &str, update: HookConfigUpdate) -> Result<HookConfig, ControlError> {
        let acc = self
            .domain
            .account(account)
            .ok_or_else(|| ControlError::NoTenant(account.to_owned()))?;
        acc.configure_webhooks(&Cause::api(false), HookLevel::Service(None), update)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Mints an access token for `identity` in a tenant, signed with its first API key, on the
    /// tenant's clock; `None` if there is no such tenant.
    pub fn mint_token(&self, account: &str, identity: &str, ttl_secs: u64) -> Option<Result<String, crate::auth::identity::MintError>> {
        let acc = self.domain.account(account)?;
        Some(crate::auth::identity::mint_for(&acc, identity, ttl_secs))
    }

    /// Disarms an HTTP fault rule; whether it was still armed.
    pub fn disarm_http(&self, id: u64) -> bool {
        self.faults.remove(id)
    }

    /// The journal every part of the server records into.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The progress board `rehearsal serve --scenario` writes and the inspector shows.
    pub fn scenario_board(&self) -> &Arc<scenario::Board> {
        &self.scenario
    }

    /// Registers an observer of every tenant's domain events (in commit order, under the
    /// tenant's lock: it must not block).
    pub fn observe(&self, observer: Arc<dyn crate::domain::DomainObserver>) {
        self.domain.observe(observer);
    }

    // ---- actors

    /// Performs `action` in a tenant as `who` (an SDK identity: webhooks fire as for the SDK)
    /// or, when `None`, as the REST API; see [`actors::act`].
    pub async fn act(&self, account: &str, who: Option<&str>, action: actors::Action) -> Result<Value, ControlError> {
        let acc = self
            .domain
            .account(account)
            .ok_or_else(|| ControlError::NoTenant(account.to_owned()))?;
        Ok(actors::act(&acc, who, action).await?)
    }
}

/// A session command sent by [`Control::command`]: the sessions it reached, each with its
/// acknowledgement of this very command (typed, so that no other command, and no journal entry
/// that reads alike, can stand in for it).
#[derive(Debug)]
pub struct Delivery {
    acks: Vec<(u64, Ack)>,
}

impl Delivery {
    /// The sessions the command reached, in id order.
    pub fn reached(&self) -> Vec<u64> {
        self.acks.iter().map(|(id, _)| *id).collect()
    }

    /// Waits (at most [`APPLY_TIMEOUT`] in all, holding no lock) until every session reached has
    /// applied the command or is known never to (it refused it, or ended first); returns those
    /// that applied it in time, in id order.
    pub async fn applied(self) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        let mut applied = Vec::with_capacity(self.acks.len());
        for (id, ack) in self.acks {
            if matches!(tokio::time::timeout_at(deadline, ack.applied()).await, Ok(true)) {
                applied.push(id);
            }
        }
        applied
    }
}

fn command_name(c: &SessionCommand) -> &'static str {
    c.name()
}

// ---- mirrors of the HTTP API (control/http.rs) that the methods above do not cover

impl Control {
    /// Builds the control plane with a journal of `capacity` entries instead of the default.
    /// Call before anything records (the server does it in `prepare`).
    pub fn with_journal_capacity(mut self, capacity: usize) -> Control {
        self.journal = Arc::new(Journal::new(capacity));
        self
    }

    /// Builds the control plane with a journal of `capacity` entries and `max_bytes` bytes.
    pub fn with_journal_bounds(mut self, capacity: usize, max_bytes: usize) -> Control {
        self.journal = Arc::new(Journal::bounded(capacity, max_bytes));
        self
    }

    /// Every tenant (account), by SID.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.domain.accounts().iter().filter_map(|a| self.tenant(&a.sid).ok()).collect()
    }

    /// Exports every tenant: the format of `rehearsal serve --state`.
    pub fn export_all(&self) -> Result<Value, ControlError> {
        serde_json::to_value(self.domain.export(None)).map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Imports a snapshot of exactly one tenant, `sid` (created or replaced). A snapshot from a
    /// newer format is refused before anything else is looked at.
    pub fn import_tenant(&self, sid: &str, snapshot: &str) -> Result<(), ControlError> {
        let probe: Value = serde_json::from_str(snapshot).map_err(ImportError::Parse)?;
        let newer = probe
            .get("format")
            .and_then(Value::as_u64)
            .is_some_and(|f| f > u64::from(crate::domain::snapshot::FORMAT));
        if !newer {
            let parsed: crate::domain::snapshot::Snapshot = serde_json::from_value(probe).map_err(ImportError::Parse)?;
            let sids: Vec<&str> = parsed.accounts.iter().map(|a| a.sid.as_str()).collect();
            if sids != [sid] {
                return Err(ControlError::Invalid(format!(
                    "the snapshot must hold exactly the account {sid}; it holds {sids:?}"
                )));
            }
        }
        self.import(snapshot)?;
        self.record(Kind::Control, Some(sid), "tenant imported".into(), json!({}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// The workspace's convention: an error whose message names its cause does not also expose
    /// it as `source`, so `{:#}` (anyhow, the CLI) prints the cause once.
    #[test]
    fn a_cause_in_the_message_is_not_also_the_source() {
        let parse = serde_json::from_str::<Value>("{").expect_err("not JSON");
        let cause = parse.to_string();
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(ControlError::from(SeedError::from(
                serde_json::from_str::<Value>("{").expect_err("not JSON"),
            ))),
            Box::new(ControlError::from(ImportError::from(
                serde_json::from_str::<Value>("{").expect_err("not JSON"),
            ))),
            Box::new(crate::server::StartError::from(SeedError::Parse(parse))),
        ];
        for e in errors {
            let mut chain = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                chain = format!("{chain}: {s}");
                source = s.source();
            }
            assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        }
    }
}
