//! The server: one listener for REST, twilsock, media and the development token endpoint.
//!
//! `run(listener, state, shutdown)` serves until `shutdown` completes; [`MockServer`] wraps it
//! for embedding in tests (random loopback port, stopped on drop).
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::cors::{Any, CorsLayer};

mod connections;
pub use connections::{
    ConnectionLimits, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_TIMEOUT,
};

use crate::auth::identity;
use crate::clock::Clock;
use crate::domain::seed::Seed;
use crate::domain::{Domain, Limits};
use crate::rest::ApiError;
use crate::sync::SyncHub;
use crate::twilsock;

/// Settings that are not state.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Serve `GET /token?identity=…` (development tokens for browser apps).
    pub token_endpoint: bool,
    /// Lifetime of tokens from the development endpoint when none is asked for.
    pub token_ttl_secs: u64,
    /// The base URL put in responses; defaults to `http://{bound address}`.
    pub public_url: Option<String>,
    pub limits: Limits,
    /// The token the control plane (`/_rehearsal/v1/…`) requires. `None` (or empty): a random
    /// one is generated in [`prepare`]; read it back from `AppState::config` or
    /// [`MockServer::control_token`].
    pub control_token: Option<String>,
    /// Let requests from a loopback peer use the control plane without the token.
    pub control_open_loopback: bool,
    /// Entries the journal keeps before it drops the oldest (and counts them).
    pub journal_size: usize,
    /// Bytes the journal's entries may take before it drops the oldest (and counts them).
    /// Default [`crate::journal::DEFAULT_MAX_BYTES`].
    pub journal_bytes: usize,
    /// Per-connection twilsock settings (outbox bounds in frames and bytes, requests in flight,
    /// timeouts).
    pub session: twilsock::SessionConfig,
    /// Media (MCS) settings: upload size, per-tenant quota, temporary URL lifetime.
    pub media: crate::media::MediaConfig,
    /// Webhook timeout (Twilio's 5 s by default), post-action retries and queue bounds.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Connection cap, header-read and idle timeouts, shutdown deadline.
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token_endpoint: true,
            token_ttl_secs: 3600,
            public_url: None,
            limits: Limits::default(),
            control_token: None,
            control_open_loopback: false,
            journal_size: crate::journal::DEFAULT_CAPACITY,
            journal_bytes: crate::journal::DEFAULT_MAX_BYTES,
            session: twilsock::SessionConfig::default(),
            media: crate::media::MediaConfig::default(),
            webhooks: crate::webhooks::WebhookSettings::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// The shared state behind every handler: a cheap `Clone` handle.
#[derive(Clone)]
pub struct AppState {
    pub domain: Domain,
    pub config: Arc<ServerConfig>,
    /// Absolute base URL of this server, without a trailing slash.
    pub base_url: Arc<str>,
    /// The address the listener is bound to (the control plane checks `Host` against its port).
    pub local_addr: SocketAddr,
    /// The account the development token endpoint serves by default (the seed's first).
    pub default_account: Option<String>,
    /// What twilsock sessions talk to (client API and Sync).
    pub realtime: crate::realtime::Realtime,
    /// The control plane (tenants, clock, connections, faults, journal).
    pub control: crate::control::Control,
    /// Flips to `true` when the server shuts down; live sessions close on it.
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Pre-action hooks (called by handlers) and post-action deliveries (a domain observer).
    pub webhooks: crate::webhooks::Webhooks,
}

pub fn app(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any);
    let endpoint = twilsock::Endpoint::new(
        Arc::new(state.realtime.clone()),
        state.domain.clock().clone(),
        state.config.session.clone(),
        state.stop.subscribe(),
    );
    // HTTP faults and the journal wrap the Twilio-facing HTTP routes (and the 404 fallback), not
    // the control plane, the WebSocket or the development token endpoint.
    let observed = crate::rest::router()
        .merge(crate::media::router_with(state.config.media.clone()))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::control::middleware::observe,
        ));
    let router = Router::new()
        .merge(observed)
        .merge(crate::control::http::router(&state))
        .merge(crate::inspector::router())
        .route(twilsock::session::PATH, twilsock::session::route(endpoint))
        .route("/token", get(dev_token).layer(cors));
    // A route that exists only in this crate's unit tests, to prove the panic layer below.
    #[cfg(test)]
    let router = router.route(tests::PANIC_PATH, get(tests::panics));
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// What a handler that panicked answers, on every route: Twilio's own 500 body (code 20500), so
/// clients see a server error they know rather than a connection reset, and the panic is logged.
/// Nothing a client sends should reach this; it is the last line of defence.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)");
    tracing::error!(panic = detail, "a request handler panicked; answered 500");
    ApiError::new(500, 20500, "Internal Server Error").into_response()
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// for at most `config.connections.shutdown_timeout` (a peer holding a half-sent request cannot
/// keep the server up) and closes the live sessions.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let stop = state.stop.clone();
    let limits = state.config.connections.clone();
    connections::serve(listener, app(state), limits, shutdown, move || {
        // Upgraded WebSockets are not part of graceful shutdown: tell sessions to close.
        let _ = stop.send(true);
    })
    .await
}

/// No route has this path: Twilio's 404, marked [`Unrouted`](crate::control::near_misses::Unrouted)
/// so the inspector lists it among the near-misses (a missing resource is a 404 too, unmarked).
async fn fallback(method: Method, uri: Uri) -> Response {
    let _ = method;
    let mut res = ApiError::not_found(uri.path()).into_response();
    res.extensions_mut()
        .insert(crate::control::near_misses::Unrouted(crate::control::near_misses::Reason::NoRoute));
    res
}

/// `GET /token?identity=…[&ttl=SECS][&account=AC…][&key=…]`: a development access token.
///
/// The endpoint exists so that browser apps and adapters can get tokens without a backend of
/// their own, so it serves the **default** account (the seed's first) without credentials. Any
/// other account must be asked for with its own credentials, or anyone who learns an account
/// SID could act in that tenant: HTTP Basic (`AccountSid:AuthToken` or `ApiKeySid:Secret`, as
/// the REST API takes), or the account's token key (`key=`, [`crate::domain::Account::token_key`]), which is
/// what a token URL handed to a client carries (`Credentials::token_url`). Every failure is
/// Twilio's JSON error body; an account that does not exist is answered like wrong credentials
/// (401, 20003), so the endpoint does not reveal which accounts exist.
async fn dev_token(State(st): State<AppState>, headers: HeaderMap, crate::rest::form::Query(q): crate::rest::form::Query) -> Response {
    if !st.config.token_endpoint {
        return ApiError::not_found("/token").into_response();
    }
    match dev_token_for(&st, &headers, &q) {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => {
            let mut res = e.into_response();
            // A Basic challenge would make browsers pop up a login dialog for a page's fetch.
            res.headers_mut().remove(header::WWW_AUTHENTICATE);
            res
        }
    }
}

fn dev_token_for(st: &AppState, headers: &HeaderMap, q: &crate::rest::form::Params) -> Result<serde_json::Value, ApiError> {
    let identity = q
        .get("identity")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::invalid("identity is required, e.g. /token?identity=alice"))?;
    let ttl = q.u64("ttl")?.unwrap_or(st.config.token_ttl_secs);
    let max_ttl = crate::auth::token::MAX_TTL_SECS.unsigned_abs();
    if ttl > max_ttl {
        return Err(ApiError::invalid(format!(
            "ttl must be at most {max_ttl} seconds (the longest an access token may live); got {ttl}"
        )));
    }
    let named = q.get("account").filter(|a| !a.is_empty());
    let account = match (named, st.default_account.as_deref()) {
        // The default account: no credentials needed (the endpoint's purpose).
        (None, Some(default)) => st.domain.account(default),
        (Some(sid), Some(default)) if sid == default => st.domain.account(default),
        (None, None) => return Err(ApiError::invalid("no default account; pass account=AC… with its credentials")),
        (Some(sid), _) => {
            let account = st.domain.account(sid).ok_or_else(ApiError::unauthenticated)?;
            let by_key = q.get("key").is_some_and(|k| account.accepts_token_key(k));
            let by_basic = || crate::rest::scope::authenticate(st, headers).is_ok_and(|a| a.sid == account.sid);
            if !(by_key || by_basic()) {
                return Err(ApiError::unauthenticated());
            }
            Some(account)
        }
    }
    .ok_or_else(ApiError::unauthenticated)?;
    let token = identity::mint_for(&account, identity, ttl).map_err(|e| match e {
        identity::MintError::ReservedIdentity(_) => ApiError::invalid(format!("{e}; choose another identity")),
        identity::MintError::NoApiKey => ApiError::invalid(e.to_string()),
    })?;
    Ok(json!({ "identity": identity, "token": token, "ttl": ttl }))
}

/// The default seed's credentials, as `rehearsal env` prints them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credentials {
    pub account_sid: String,
    pub auth_token: String,
    pub api_key: String,
    pub api_secret: String,
    pub service_sid: String,
    /// What lets the development token endpoint serve this account without Basic credentials
    /// (`/token?account=…&key=…`); see [`Credentials::token_url`].
    pub token_key: String,
}

impl Credentials {
    /// The embedded default seed's first account: the same on every server started on that
    /// seed (what `rehearsal env`, `rehearsal token` and `rehearsal bench` use).
    pub fn default_seed() -> Credentials {
        let domain = Domain::new(Clock::system(), Default::default());
        let accounts = Seed::default_seed().apply(&domain).expect("the embedded default seed applies");
        Credentials::of(&domain, &accounts[0]).expect("the default seed has an account with an API key")
    }

    pub fn of(domain: &Domain, account_sid: &str) -> Option<Credentials> {
        let a = domain.account(account_sid)?;
        let key = a.api_keys.first()?;
        Some(Credentials {
            account_sid: a.sid.clone(),
            auth_token: a.auth_token.clone(),
            api_key: key.sid.clone(),
            api_secret: key.secret.clone(),
            service_sid: a.read(|s| s.default_service.clone()),
            token_key: a.token_key(),
        })
    }

    /// The development token endpoint of this account on the server at `base_url`, ready for a
    /// client to append `&identity=…` (and `&ttl=…`): `{base}/token?account=AC…&key=…`.
    pub fn token_url(&self, base_url: &str) -> String {
        format!(
            "{}/token?account={}&key={}",
            base_url.trim_end_matches('/'),
            self.account_sid,
            self.token_key
        )
    }
}

/// What to start a server with.
pub struct Startup {
    pub seed: Option<Seed>,
    pub state_json: Option<String>,
    pub config: ServerConfig,
    pub clock: Clock,
}

impl Default for Startup {
    fn default() -> Self {
        Startup {
            seed: Some(Seed::default_seed()),
            state_json: None,
            config: ServerConfig::default(),
            clock: Clock::system(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not bind: {0}")]
    Bind(std::io::Error),
    #[error("seed: {0}")]
    Seed(crate::domain::seed::SeedError),
    #[error("state file: {0}")]
    State(crate::domain::snapshot::ImportError),
}

// Causes are part of the message (the workspace's convention: Display only, no `source`, so
// that `{:#}` and error-chain printers do not print them twice).
impl From<crate::domain::seed::SeedError> for StartError {
    fn from(e: crate::domain::seed::SeedError) -> StartError {
        StartError::Seed(e)
    }
}

impl From<crate::domain::snapshot::ImportError> for StartError {
    fn from(e: crate::domain::snapshot::ImportError) -> StartError {
        StartError::State(e)
    }
}

/// Builds the state for a listener: domain, seed or imported state, URLs.
pub fn prepare(listener_addr: SocketAddr, mut startup: Startup) -> Result<AppState, StartError> {
    if startup.config.control_token.as_deref().is_none_or(str::is_empty) {
        startup.config.control_token = Some(crate::control::http::random_token());
    }
    let domain = Domain::new(startup.clock.clone(), startup.config.limits.clone());
    let base_url: Arc<str> = startup
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{listener_addr}"))
        .trim_end_matches('/')
        .into();
    let hub = SyncHub::new(base_url.clone());
    domain.observe(hub.clone());
    let control = crate::control::Control::new(domain.clone(), hub.clone())
        .with_journal_bounds(startup.config.journal_size, startup.config.journal_bytes);
    hub.set_journal(control.journal.clone());
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let webhooks = crate::webhooks::Webhooks::new(
        domain.clone(),
        control.journal.clone(),
        startup.config.webhooks.clone(),
        stop.subscribe(),
    );
    domain.observe(Arc::new(webhooks.clone()));
    domain.set_gate(Arc::new(webhooks.clone()));
    let mut default_account = None;
    if let Some(json) = &startup.state_json {
        default_account = domain.import_json(json)?.into_iter().next();
    } else if let Some(seed) = &startup.seed {
        let accounts = seed.apply(&domain)?;
        for (sid, a) in accounts.iter().zip(&seed.accounts) {
            control.remember_seed(sid, a.clone());
        }
        default_account = accounts.into_iter().next();
    }
    let realtime = crate::realtime::Realtime {
        domain: domain.clone(),
        hub,
        control: Some(control.clone()),
        claims: Default::default(),
    };
    Ok(AppState {
        domain,
        config: Arc::new(startup.config),
        base_url,
        local_addr: listener_addr,
        default_account,
        realtime,
        control,
        stop,
        webhooks,
    })
}

/// An embedded server on a random loopback port, stopped when dropped.
///
/// ```no_run
/// # async fn demo() {
/// let server = rehearsal_mock_server::MockServer::start().await;
/// let url = server.url(); // http://127.0.0.1:PORT
/// # }
/// ```
#[must_use = "the server stops when the handle is dropped"]
pub struct MockServer {
    addr: SocketAddr,
    state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl MockServer {
    /// Starts on the embedded default seed.
    pub async fn start() -> MockServer {
        Self::start_with(Startup::default()).await.expect("the default seed starts")
    }

    pub async fn start_with(startup: Startup) -> Result<MockServer, StartError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(StartError::Bind)?;
        let addr = listener.local_addr().map_err(StartError::Bind)?;
        let state = prepare(addr, startup)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Ok(MockServer {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.state.base_url.to_string()
    }

    /// The control plane's base URL: `http://127.0.0.1:PORT/_rehearsal/v1`.
    pub fn control_url(&self) -> String {
        format!("{}{}", self.state.base_url, crate::control::http::PREFIX)
    }

    /// The token the control plane's HTTP API requires (`Authorization: Bearer …`).
    pub fn control_token(&self) -> &str {
        self.state.config.control_token.as_deref().unwrap_or_default()
    }

    /// The twilsock endpoint for the SDK's `twilsock.uri` option.
    pub fn twilsock_url(&self) -> String {
        format!("ws://{}/v3/wsconnect", self.addr)
    }

    pub fn domain(&self) -> &Domain {
        &self.state.domain
    }

    /// The control plane: tenants, clocks, connections, faults, actors, journal.
    pub fn control(&self) -> &crate::control::Control {
        &self.state.control
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Credentials of the first seeded account.
    pub fn credentials(&self) -> Option<Credentials> {
        Credentials::of(&self.state.domain, self.state.default_account.as_deref()?)
    }

    /// Stops accepting, finishes in-flight requests, and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    pub(super) const PANIC_PATH: &str = "/_test/panic";

    pub(super) async fn panics() -> axum::http::StatusCode {
        panic!("a handler panicked on purpose")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_twilios_500_and_the_server_goes_on() {
        let server = super::MockServer::start().await;
        let http = reqwest::Client::new();
        let res = http
            .get(format!("{}{PANIC_PATH}", server.url()))
            .send()
            .await
            .expect("an answer, not a reset");
        assert_eq!(res.status(), 500);
        let body: serde_json::Value = res.json().await.expect("JSON");
        assert_eq!(body["code"], 20500);
        assert_eq!(body["status"], 500);
        assert_eq!(body["more_info"], "https://www.twilio.com/docs/errors/20500");
        let c = server.credentials().expect("seeded");
        let ok = http
            .get(format!("{}/v1/Conversations", server.url()))
            .basic_auth(&c.account_sid, Some(&c.auth_token))
            .send()
            .await
            .expect("served");
        assert_eq!(ok.status(), 200);
    }
}
