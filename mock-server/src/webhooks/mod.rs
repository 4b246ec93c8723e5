//! Webhooks: Rehearsal calls the customer's backend exactly as Twilio would.
//!
//! Configuration is domain state (`domain::webhook`): account-wide and per-service targets
//! (pre-action URL, post-action URL, method, filters) and conversation-scoped webhooks. A
//! service's configuration, when it has a URL, replaces the account's for that service, as on
//! Twilio. An event fires only if the filters name it.
//!
//! - **Pre-action** (`onMessageAdd`, …; [`Webhooks::pre_action`]): `Webhooks` is the domain's
//!   `Gate`; the domain service (`Account::perform`) asks it about each proposed change with no
//!   lock held, then applies the change — as the hook modified it. A 2xx answer proceeds (a JSON
//!   body modifies the action, see [`pre::Modifications`]); a 4xx or 5xx rejects it, and the
//!   caller gets [`pre::Rejection`]; no answer within [`WebhookSettings::timeout`] (or no
//!   connection) proceeds.
//! - **Post-action** (`onMessageAdded`, …; `post`): the `DomainObserver` turns each committed
//!   event into deliveries (account/service target and conversation-scoped webhooks) and
//!   queues them without blocking; delivery is asynchronous and in commit order per
//!   conversation (users: per service), with retries ([`WebhookSettings::post_attempts`]).
//!
//! Which actions fire is the change's `domain::Cause`: SDK actions (and the control plane acting
//! as an identity) always; REST actions only with `X-Twilio-Webhook-Enabled: true`; changes
//! Rehearsal makes itself (a session closing marks its user offline) fire post-action hooks with
//! `Source=API`.
//!
//! Every attempt — request fields, signature, status, body, duration, outcome — is journaled as
//! `webhook`; so is a delivery dropped because its queue was full.
//!
//! Layout: `event` (event types), `payload` (form fields per event), `signature`
//! (`X-Twilio-Signature`), `delivery` (one signed HTTP request), `pre`, `post`.
pub mod delivery;
pub mod event;
pub mod payload;
mod post;
pub mod pre;
pub mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use event::EventType;
pub use payload::Fields;
pub use pre::{Modifications, Rejection};

use crate::domain::conversation::ConversationState;
use crate::domain::webhook::HookConfig;
use crate::domain::{AccountState, ChatService, Domain};
use crate::journal::{Journal, Kind, Observation};
use delivery::Target;

/// Timeouts, retries and bounds. The defaults are Twilio's timeout and a small retry policy.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How long a hook may take to answer (Twilio: 5 s). A pre-action hook that does not
    /// answer in time lets the action proceed; a post-action attempt that does not is retried.
    pub timeout: Duration,
    /// Attempts per post-action delivery (`RetryCount` 0, 1, …). Retried: no answer, 429, 5xx.
    pub post_attempts: u32,
    /// Wait before the first retry; doubles for each further one.
    pub retry_backoff: Duration,
    /// Deliveries a conversation's queue holds; a delivery that does not fit is dropped and
    /// journaled.
    pub queue_capacity: usize,
    /// Conversations (and user lanes) with deliveries in flight at once, server-wide.
    pub max_lanes: usize,
    /// Bytes of a hook's answer that are read (and journaled).
    pub body_limit: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: Duration::from_secs(5),
            post_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            queue_capacity: 256,
            max_lanes: 4096,
            body_limit: 64 * 1024,
        }
    }
}

/// The webhook machinery: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    settings: WebhookSettings,
    client: reqwest::Client,
    domain: Domain,
    journal: Arc<Journal>,
    /// Where post-action lanes run (captured at construction; none: deliveries are dropped).
    runtime: Option<tokio::runtime::Handle>,
    /// Flips to `true` at shutdown; lanes stop.
    stop: tokio::sync::watch::Receiver<bool>,
    lanes: Mutex<HashMap<post::LaneKey, tokio::sync::mpsc::Sender<post::Delivery>>>,
    /// Conversations whose state is not `active` (account, conversation), to tell a state
    /// change (`onConversationStateUpdated`) from other updates.
    states: Mutex<HashMap<(String, String), ConversationState>>,
}

impl Webhooks {
    /// Builds the machinery. Call inside the Tokio runtime that should run deliveries.
    pub fn new(domain: Domain, journal: Arc<Journal>, settings: WebhookSettings, stop: tokio::sync::watch::Receiver<bool>) -> Webhooks {
        let client = reqwest::Client::builder()
            .user_agent("TwilioProxy/1.1")
            .redirect(delivery::redirect_policy())
            .build()
            .expect("a plain HTTP client builds");
        Webhooks {
            inner: Arc::new(Inner {
                settings,
                client,
                domain,
                journal,
                runtime: tokio::runtime::Handle::try_current().ok(),
                stop,
                lanes: Mutex::default(),
                states: Mutex::default(),
            }),
        }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.inner.settings
    }

    fn record(&self, account: &str, identity: Option<&str>, summary: String, detail: serde_json::Value) {
        let at = self
            .inner
            .domain
            .account(account)
            .map_or_else(|| self.inner.domain.clock().now(), |a| a.clock().now());
        self.inner.journal.record(Observation {
            at,
            kind: Kind::Webhook,
            account: Some(account.to_owned()),
            session: None,
            identity: identity.map(str::to_owned),
            summary,
            detail,
        });
    }
}

/// The targets that apply to a service: its own when configured, else the account's.
fn config_for<'a>(state: &'a AccountState, svc: &'a ChatService) -> &'a HookConfig {
    if svc.webhooks.is_configured() {
        &svc.webhooks
    } else {
        &state.configuration.webhooks
    }
}

/// The pre-action target for `event` in `svc`, if one is configured and the filters name it.
pub fn pre_target(state: &AccountState, svc: &ChatService, event: EventType) -> Option<Target> {
    let c = config_for(state, svc);
    let url = c.pre_webhook_url.as_ref()?;
    c.fires(event.name()).then(|| Target {
        url: url.clone(),
        method: c.method_or_default().to_owned(),
        scoped: None,
    })
}
