//! The control plane: what tests and scenarios use to put a client into a situation.
//!
//! [`Control`] is the Rust API (the embedded `MockServer` hands it out); `http` mirrors it
//! one-to-one under `/_rehearsal/v1/…` for test suites in any language.
//!
//! Layout: this file is the handle and its wiring (construction, the journal it records into);
//! its methods live with their sections: `tenants` (create/reset/delete isolated accounts,
//! export/import, reading and configuring them), `connections` (live sessions and commands to
//! them, [`Delivery`]), `actors` (act as an identity or as the REST API), `faults` (HTTP faults,
//! init denials, refusals, the `init` gate), `clocks`; `error` ([`ControlError`]), `limits`
//! (bounds on numbers from outside), `http` (the HTTP API and its token check), `middleware`
//! (HTTP faults and journaling around the REST and media routes).
pub mod actors;
mod clocks;
mod connections;
mod error;
pub mod faults;
pub mod http;
pub mod limits;
pub mod middleware;
pub mod near_misses;
pub mod scenario;
pub mod sessions;
mod tenants;
pub mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::domain::Domain;
use crate::domain::seed::SeedAccount;
use crate::journal::{self, Journal, Kind, Observation};
use crate::sync::SyncHub;

pub use clocks::{ClockAction, ClockView};
pub use connections::{APPLY_TIMEOUT, Delivery};
pub use error::ControlError;
use sessions::Sessions;
pub use tenants::{NewTenant, Tenant};

/// The control plane's handle: cheap to clone.
///
/// Its parts are the crate's own: users outside it (the scenario engine, `rehearsal`, the CLI)
/// go through its methods, so that every change takes the domain service's one way in.
#[derive(Clone)]
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

    /// Where the journal is now: entries recorded from here on have a larger `seq`.
    pub fn journal_mark(&self) -> u64 {
        self.journal
            .query(&journal::Filter {
                after: Some(u64::MAX),
                ..journal::Filter::default()
            })
            .last_seq
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
}
