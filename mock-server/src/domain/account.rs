//! Accounts (AC…): the unit of isolation. Each account has its own credentials, services and
//! state behind its own lock; nothing reaches across accounts.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use serde::{Deserialize, Serialize};

use super::chat_service::ChatService;
use super::collection::Collection;
use super::event::{DomainEvent, DomainObserver};
use super::limits::Limits;
use super::memo::Memo;
use super::role;
use super::service::{Cause, Gate};
use super::{DomainError, Resource};
use crate::clock::{Clock, Millis};
use crate::sid::{self, SidGen};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub sid: String,
    pub secret: String,
    #[serde(default)]
    pub friendly_name: Option<String>,
}

/// Everything an account stores.
pub struct AccountState {
    pub services: Collection<ChatService>,
    pub default_service: String,
    pub configuration: Configuration,
    pub(super) sids: SidGen,
}

/// Account-wide Conversations configuration (`/v1/Configuration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    pub default_messaging_service_sid: Option<String>,
    /// ISO 8601 durations, as Twilio stores them.
    pub default_inactive_timer: Option<String>,
    pub default_closed_timer: Option<String>,
    /// Account-wide webhook targets (`/v1/Configuration/Webhooks`).
    #[serde(default, skip_serializing_if = "super::webhook::HookConfig::is_unset")]
    pub webhooks: super::webhook::HookConfig,
}

impl AccountState {
    /// The service with this SID, or the default service.
    pub fn service(&self, sid: Option<&str>) -> Result<&ChatService, DomainError> {
        let sid = sid.unwrap_or(&self.default_service);
        self.services
            .get(sid)
            .ok_or_else(|| DomainError::not_found(Resource::Service, format!("/Services/{sid}")))
    }

    pub fn default_service(&self) -> &ChatService {
        self.services
            .get(&self.default_service)
            .expect("an account always has its default service")
    }
}

/// Shared by every account of a [`super::Domain`].
pub(super) struct Shared {
    pub clock: Clock,
    pub limits: Limits,
    pub observers: RwLock<Vec<Arc<dyn DomainObserver>>>,
    /// Vets proposals before they are applied (the pre-action webhooks), once registered.
    pub gate: RwLock<Option<Arc<dyn Gate>>>,
}

/// The context of one mutation: the time it happens at, the SID generator, the limits, who
/// caused it, and the events it emits.
pub struct Ctx<'a> {
    pub now: Millis,
    pub sids: &'a mut SidGen,
    pub limits: &'a Limits,
    pub cause: &'a Cause,
    events: Vec<DomainEvent>,
}

impl Ctx<'_> {
    pub fn emit(&mut self, e: DomainEvent) {
        self.events.push(e);
    }
}

pub struct Account {
    pub sid: String,
    /// This account's time: follows the server clock until frozen or advanced on its own.
    clock: Clock,
    pub friendly_name: String,
    pub auth_token: String,
    pub api_keys: Vec<ApiKey>,
    state: RwLock<AccountState>,
    shared: Arc<Shared>,
    /// Media bytes reserved by uploads in progress ([`Account::reserve_media`]). Always locked
    /// inside `state` (never the other way round).
    media_reserved: Mutex<u64>,
    /// Bumped by every write while it holds the write lock, so a revision read under the read
    /// lock names the state exactly ([`Account::read_memo`]).
    revision: AtomicU64,
    /// Renderings of the state at a revision (`memo.rs`). Locked alone, or inside `state`'s
    /// read lock (never the other way round).
    memo: Mutex<Memo>,
}

/// Media bytes an upload in progress holds against its account's quota, from before its body is
/// read until it is stored ([`MediaReservation::settle`]) or fails (dropped: released).
#[derive(Debug)]
#[must_use = "dropping a reservation releases it"]
pub struct MediaReservation<'a> {
    account: &'a Account,
    bytes: u64,
}

impl MediaReservation<'_> {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds only `bytes` (no more than now).
    pub fn shrink_to(&mut self, bytes: u64) {
        let freed = self.bytes.saturating_sub(bytes);
        self.account.release_media(freed);
        self.bytes -= freed;
    }

    /// The media is stored: it counts as stored from now on, so the reservation goes. Call it
    /// inside the [`Account::write`] that stores the media, so that no reader sees both or
    /// neither.
    pub fn settle(&mut self) {
        self.account.release_media(std::mem::take(&mut self.bytes));
    }
}

impl Drop for MediaReservation<'_> {
    fn drop(&mut self) {
        self.account.release_media(self.bytes);
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("sid", &self.sid).finish_non_exhaustive()
    }
}

impl Account {
    pub(super) fn new(
        sid: String,
        friendly_name: String,
        auth_token: String,
        api_keys: Vec<ApiKey>,
        state: AccountState,
        shared: Arc<Shared>,
    ) -> Account {
        let clock = Clock::child_of(&shared.clock);
        Account {
            sid,
            clock,
            friendly_name,
            auth_token,
            api_keys,
            state: RwLock::new(state),
            shared,
            media_reserved: Mutex::new(0),
            revision: AtomicU64::new(0),
            memo: Mutex::default(),
        }
    }

    /// Creates an account's state with one default service holding Twilio's default roles.
    pub(super) fn fresh_state(account_sid: &str, seed: u64, service_sid: Option<String>, service_name: &str, now: Millis) -> AccountState {
        let mut sids = SidGen::new(seed, account_sid);
        let service_sid = service_sid.unwrap_or_else(|| sids.next(sid::SERVICE));
        let service = new_service(&mut sids, service_sid.clone(), service_name, now);
        let mut services = Collection::default();
        services.insert(service);
        AccountState {
            services,
            default_service: service_sid,
            configuration: Configuration::default(),
            sids,
        }
    }

    pub(super) fn from_parts(
        services: Collection<ChatService>,
        default_service: String,
        configuration: Configuration,
        sids: SidGen,
    ) -> AccountState {
        AccountState {
            services,
            default_service,
            configuration,
            sids,
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Whether `(username, password)` are this account's REST credentials (auth token or API key).
    pub fn accepts_basic(&self, username: &str, password: &str) -> bool {
        (username == self.sid && constant_eq(password, &self.auth_token))
            || self.api_keys.iter().any(|k| k.sid == username && constant_eq(password, &k.secret))
    }

    /// The secret that lets the development token endpoint mint tokens for this account without
    /// Basic credentials (`GET /token?account=AC…&key=…`), so that a token URL can be handed to
    /// a client that cannot send an `Authorization` header (browsers, Node's `fetch` refuses
    /// `user:pass@` URLs). Derived from the auth token with HMAC-SHA256: it needs no state of its
    /// own, survives resets and snapshots with the auth token, and does not reveal it.
    pub fn token_key(&self) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.auth_token.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(b"rehearsal development token key\0");
        mac.update(self.sid.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `key` is this account's [`token_key`](Self::token_key), compared in constant time.
    pub fn accepts_token_key(&self, key: &str) -> bool {
        constant_eq(key, &self.token_key())
    }

    pub fn api_key_secret(&self, key_sid: &str) -> Option<&str> {
        self.api_keys.iter().find(|k| k.sid == key_sid).map(|k| k.secret.as_str())
    }

    /// Media content bytes the account stores, over all its services.
    pub fn media_bytes(state: &AccountState) -> u64 {
        state
            .services
            .iter()
            .flat_map(|(_, svc)| svc.media.iter())
            .map(|(_, m)| m.size() as u64)
            .sum()
    }

    /// Reserves `size` bytes of media for an upload in progress if what the account stores, plus
    /// what other uploads hold, plus `size` stays within `quota`; otherwise `Err(used)` (stored
    /// plus held). Atomic with other reservations and with stores: the check runs under the
    /// state's read lock (a store needs the write lock) and the reservations' mutex, so
    /// concurrent uploads, to one service or several, can never pass the quota together.
    pub fn reserve_media(&self, size: u64, quota: u64) -> Result<MediaReservation<'_>, u64> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let stored = Self::media_bytes(&state);
        let mut reserved = self.media_reserved.lock().unwrap_or_else(|e| e.into_inner());
        let used = stored.saturating_add(*reserved);
        if used.saturating_add(size) > quota {
            return Err(used);
        }
        *reserved += size;
        Ok(MediaReservation {
            account: self,
            bytes: size,
        })
    }

    fn release_media(&self, bytes: u64) {
        if bytes > 0 {
            let mut reserved = self.media_reserved.lock().unwrap_or_else(|e| e.into_inner());
            *reserved = reserved.saturating_sub(bytes);
        }
    }

    /// Runs `f` with read access. Never call a writer from inside.
    pub fn read<R>(&self, f: impl FnOnce(&AccountState) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// What `render` makes of the state, kept under `key` until the state next changes: the
    /// same `key` must always mean the same rendering of the same state (put everything the
    /// caller renders from besides the state — query, URLs — into it). Errors are not kept.
    ///
    /// A hit takes no lock on the state. A write in progress while a hit is served has not
    /// returned yet, so the answer is ordered before it, as a read taking the lock first would
    /// be; a write that has returned has bumped the revision.
    pub fn read_memo<E>(&self, key: &str, render: impl FnOnce(&AccountState) -> Result<Vec<u8>, E>) -> Result<Bytes, E> {
        let revision = self.revision.load(Ordering::Acquire);
        if let Some(hit) = self.memo.lock().unwrap_or_else(|e| e.into_inner()).get(key, revision) {
            return Ok(hit);
        }
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        // Stable while the read lock is held: writers bump it under the write lock.
        let revision = self.revision.load(Ordering::Acquire);
        let rendered = Bytes::from(render(&guard)?);
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, revision, rendered.clone());
        Ok(rendered)
    }

    /// Runs one mutation on a service (`None`: the default service). The emitted events reach
    /// every observer in commit order before the lock is released. Private to the domain: every
    /// way in goes through [`Account::perform`] or [`Account::apply`] (`service.rs`) or the
    /// account's settings operations (`settings.rs`).
    pub(super) fn write<R>(
        &self,
        cause: &Cause,
        service: Option<&str>,
        f: impl FnOnce(&mut ChatService, &mut Ctx<'_>) -> Result<R, DomainError>,
    ) -> Result<R, DomainError> {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Before anything changes: a failed mutation may still have changed something.
        self.revision.fetch_add(1, Ordering::AcqRel);
        let state = &mut *guard;
        let service_sid = service.unwrap_or(&state.default_service).to_owned();
        let seq = state
            .services
            .seq_of_sid(&service_sid)
            .ok_or_else(|| DomainError::not_found(Resource::Service, format!("/Services/{service_sid}")))?;
        let now = self.clock.now();
        let mut cx = Ctx {
            now,
            sids: &mut state.sids,
            limits: &self.shared.limits,
            cause,
            events: Vec::new(),
        };
        let svc = state.services.get_seq_mut(seq).expect("seq from lookup");
        let result = f(svc, &mut cx);
        let events = std::mem::take(&mut cx.events);
        self.notify(state, now, cause, &events);
        result
    }

    /// Changes account-level settings and services under the write lock; the events `f` pushes
    /// reach the observers before the lock is released, as [`Account::write`]'s do.
    pub(super) fn write_settings<R>(
        &self,
        cause: &Cause,
        f: impl FnOnce(&mut AccountState, Millis, &mut Vec<DomainEvent>) -> Result<R, DomainError>,
    ) -> Result<R, DomainError> {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        self.revision.fetch_add(1, Ordering::AcqRel);
        let now = self.clock.now();
        let mut events = Vec::new();
        let result = f(&mut guard, now, &mut events);
        self.notify(&guard, now, cause, &events);
        result
    }

    fn notify(&self, state: &AccountState, now: Millis, cause: &Cause, events: &[DomainEvent]) {
        if events.is_empty() {
            return;
        }
        let observers = self.shared.observers.read().unwrap_or_else(|e| e.into_inner());
        for o in observers.iter() {
            o.on_events(&self.sid, now, state, cause, events);
        }
    }

    /// The gate proposals must pass, if one is registered.
    pub(super) fn gate(&self) -> Option<Arc<dyn Gate>> {
        self.shared.gate.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn sid_state(&self) -> crate::sid::SidGenState {
        self.read(|s| s.sids.state())
    }
}

impl AccountState {
    /// Adds a service with Twilio's default roles.
    pub(super) fn create_service(&mut self, friendly_name: &str, now: Millis) -> ChatService {
        let sid = self.sids.next(sid::SERVICE);
        let svc = new_service(&mut self.sids, sid, friendly_name, now);
        self.services.insert(svc.clone());
        svc
    }
}

fn new_service(sids: &mut SidGen, sid: String, name: &str, now: Millis) -> ChatService {
    let mut roles = Collection::default();
    let mut role_sids = Vec::new();
    for (friendly_name, kind, perms) in role::defaults() {
        let r = role::Role {
            sid: sids.next(sid::ROLE),
            friendly_name: friendly_name.into(),
            kind: kind.into(),
            permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
            date_created: now,
            date_updated: now,
        };
        role_sids.push(r.sid.clone());
        roles.insert(r);
    }
    ChatService {
        sid,
        friendly_name: name.to_owned(),
        date_created: now,
        date_updated: now,
        reachability_enabled: true,
        default_service_role_sid: role_sids[1].clone(),
        default_conversation_creator_role_sid: role_sids[2].clone(),
        default_conversation_role_sid: role_sids[3].clone(),
        users: Collection::default(),
        conversations: Collection::default(),
        roles,
        media: Collection::default(),
        webhooks: Default::default(),
    }
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
