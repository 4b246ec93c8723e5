//! The domain: accounts and their Conversations state, and the one service that changes it.
//!
//! Every way in — REST handlers, the SDK's requests over twilsock, the control plane's actors
//! and scenarios — names its change ([`service::AddMessage`], …) and hands it to the domain
//! service (`service.rs`): [`Account::perform`] for the changes Twilio vets with a pre-action
//! webhook (check, ask the [`Gate`] with no lock held, apply, emit), [`Account::apply`] for the
//! others, and the settings operations (`settings.rs`: services, configuration, webhook
//! targets). The lock-taking write is private to this module; seeds and snapshots are the only
//! other writers, and they live here. Operations validate, apply, and emit [`DomainEvent`]s;
//! observers (the Sync projection, post-action webhooks) see those events in commit order under
//! the account's lock.
//!
//! Layout: `account` (isolation unit, lock, mutation context), `service` (the way in: causes,
//! proposals, the gate), `changes` (the named changes), `settings`, `chat_service` (IS…),
//! `conversation`, `participant`, `message`, `user`, `role`, `media`, `webhook` (one noun
//! each, with its operations), `collection` (keyset-paged tables), `event`, `error`, `limits`,
//! `memo` (renderings kept until the state changes), `seed`, `snapshot`.
mod account;
mod changes;
mod chat_service;
pub mod collection;
pub mod conversation;
mod error;
mod event;
pub mod limits;
pub mod media;
pub mod memo;
pub mod message;
pub mod participant;
pub mod role;
pub mod seed;
pub mod service;
pub mod settings;
pub mod snapshot;
pub mod user;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use account::{Account, AccountState, ApiKey, Configuration, Ctx, MediaReservation};
pub use chat_service::ChatService;
pub use collection::{Collection, Order};
pub use error::{DomainError, Resource, codes};
pub use event::{DomainEvent, DomainObserver, Origin};
pub use limits::Limits;
pub use service::{Amendment, Cause, Gate, Proposal, Proposed, Unvetted};

use crate::clock::Clock;
use crate::sid;

/// The author Twilio records for what the REST API does (messages, media), and the creator of
/// the conversations a seed makes. An internal sentinel: it must never be an identity a token
/// can claim, or its holder would read every conversation "created" by the sentinel and every
/// medium it "uploaded" (see [`is_reserved_identity`]).
pub const SYSTEM_IDENTITY: &str = "system";

/// Whether an access token may not name `identity`: the domain's sentinels.
pub fn is_reserved_identity(identity: &str) -> bool {
    identity == SYSTEM_IDENTITY
}

/// What it takes to create an account.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// Given, or generated from the seed.
    pub sid: Option<String>,
    pub friendly_name: Option<String>,
    pub auth_token: Option<String>,
    pub api_keys: Vec<ApiKey>,
    pub service_sid: Option<String>,
    pub service_name: Option<String>,
    /// Seeds the account's SID generator.
    pub rng_seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error("account {0} already exists")]
    Exists(String),
    #[error("api key {0} is already used by another account")]
    KeyTaken(String),
    #[error("{0:?} is not a SID of the form {1}…")]
    BadSid(String, &'static str),
}

/// The cheap-to-clone handle on all accounts.
#[derive(Clone)]
pub struct Domain {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: RwLock<HashMap<String, Arc<Account>>>,
    /// API key SID → account SID, for token and Basic-auth lookups.
    keys: RwLock<HashMap<String, String>>,
    shared: Arc<account::Shared>,
}

impl Domain {
    pub fn new(clock: Clock, limits: Limits) -> Domain {
        Domain {
            inner: Arc::new(Inner {
                accounts: RwLock::default(),
                keys: RwLock::default(),
                shared: Arc::new(account::Shared {
                    clock,
                    limits,
                    observers: RwLock::default(),
                    gate: RwLock::default(),
                }),
            }),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.shared.clock
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.shared.limits
    }

    /// Registers an observer of every account's events (the Sync projection).
    pub fn observe(&self, o: Arc<dyn DomainObserver>) {
        self.inner.shared.observers.write().unwrap_or_else(|e| e.into_inner()).push(o);
    }

    /// Registers the gate every proposal passes before it is applied (the pre-action
    /// webhooks); without one, proposals proceed unasked.
    pub fn set_gate(&self, gate: Arc<dyn Gate>) {
        *self.inner.shared.gate.write().unwrap_or_else(|e| e.into_inner()) = Some(gate);
    }

    pub fn account(&self, sid: &str) -> Option<Arc<Account>> {
        self.inner.accounts.read().unwrap_or_else(|e| e.into_inner()).get(sid).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        let mut v: Vec<_> = self
            .inner
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.sid.cmp(&b.sid));
        v
    }

    /// The account owning an API key.
    pub fn account_by_key(&self, key_sid: &str) -> Option<Arc<Account>> {
        let acc = self.inner.keys.read().unwrap_or_else(|e| e.into_inner()).get(key_sid).cloned()?;
        self.account(&acc)
    }

    pub fn create_account(&self, req: NewAccount) -> Result<Arc<Account>, CreateAccountError> {
        let mut sids = sid::SidGen::new(req.rng_seed, "accounts");
        let sid = req.sid.unwrap_or_else(|| sids.next(sid::ACCOUNT));
        if !sid::is_sid(&sid, sid::ACCOUNT) {
            return Err(CreateAccountError::BadSid(sid, sid::ACCOUNT));
        }
        if let Some(s) = &req.service_sid {
            if !sid::is_sid(s, sid::SERVICE) {
                return Err(CreateAccountError::BadSid(s.clone(), sid::SERVICE));
            }
        }
        let mut api_keys = req.api_keys;
        if api_keys.is_empty() {
            api_keys.push(ApiKey {
                sid: sids.next(sid::API_KEY),
                secret: hex_secret(&mut sids),
                friendly_name: None,
            });
        }
        for k in &api_keys {
            if !sid::is_sid(&k.sid, sid::API_KEY) {
                return Err(CreateAccountError::BadSid(k.sid.clone(), sid::API_KEY));
            }
        }
        let auth_token = req.auth_token.unwrap_or_else(|| hex_secret(&mut sids));
        let now = self.clock().now();
        let state = Account::fresh_state(
            &sid,
            req.rng_seed,
            req.service_sid,
            req.service_name.as_deref().unwrap_or("Default Conversations Service"),
            now,
        );
        let account = Arc::new(Account::new(
            sid.clone(),
            req.friendly_name.unwrap_or_else(|| "Rehearsal account".into()),
            auth_token,
            api_keys,
            state,
            self.inner.shared.clone(),
        ));
        self.insert(account.clone())?;
        Ok(account)
    }

    fn insert(&self, account: Arc<Account>) -> Result<(), CreateAccountError> {
        let mut accounts = self.inner.accounts.write().unwrap_or_else(|e| e.into_inner());
        let mut keys = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        if accounts.contains_key(&account.sid) {
            return Err(CreateAccountError::Exists(account.sid.clone()));
        }
        if let Some(k) = account.api_keys.iter().find(|k| keys.contains_key(&k.sid)) {
            return Err(CreateAccountError::KeyTaken(k.sid.clone()));
        }
        for k in &account.api_keys {
            keys.insert(k.sid.clone(), account.sid.clone());
        }
        accounts.insert(account.sid.clone(), account);
        Ok(())
    }

    /// Removes an account and its keys; its state goes with it.
    pub fn remove_account(&self, sid: &str) -> Option<Arc<Account>> {
        let mut accounts = self.inner.accounts.write().unwrap_or_else(|e| e.into_inner());
        let acc = accounts.remove(sid)?;
        let mut keys = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        for k in &acc.api_keys {
            keys.remove(&k.sid);
        }
        Some(acc)
    }

    fn shared(&self) -> Arc<account::Shared> {
        self.inner.shared.clone()
    }

    fn insert_account(&self, account: Arc<Account>) -> Result<(), CreateAccountError> {
        self.insert(account)
    }
}

fn hex_secret(sids: &mut sid::SidGen) -> String {
    sids.next("xx")[2..].to_owned()
}

/// Attributes are JSON *strings*: unset means `"{}"`, anything given must parse as JSON and fit
/// the limit.
pub(crate) fn check_attributes(value: Option<&str>, param: &'static str, limit: usize) -> Result<String, DomainError> {
    match value {
        None | Some("") => Ok("{}".to_owned()),
        Some(v) => {
            if v.len() > limit {
                return Err(DomainError::TooLong {
                    what: param,
                    code: codes::ATTRIBUTES_TOO_LONG,
                    actual: v.len(),
                    limit,
                });
            }
            if serde_json::from_str::<serde::de::IgnoredAny>(v).is_err() {
                return Err(DomainError::InvalidAttributes { param });
            }
            Ok(v.to_owned())
        }
    }
}

pub(crate) fn check_friendly_name(value: Option<&str>, limits: &Limits) -> Result<(), DomainError> {
    match value {
        Some(v) if v.chars().count() > limits.friendly_name_chars => Err(DomainError::TooLong {
            what: "FriendlyName",
            code: codes::NAME_TOO_LONG,
            actual: v.chars().count(),
            limit: limits.friendly_name_chars,
        }),
        _ => Ok(()),
    }
}
