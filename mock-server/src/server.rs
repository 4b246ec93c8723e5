//! The server: one listener for REST, twilsock, media and the development token endpoint.
//!
//! `run(listener, state, shutdown)` serves until `shutdown` completes; [`MockServer`] wraps it
//! for embedding in tests (random loopback port, stopped on drop).
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::cors::{Any, CorsLayer};

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
    /// Default [`crate::control::journal::DEFAULT_MAX_BYTES`].
    pub journal_bytes: usize,
    /// Per-connection twilsock settings (outbox bounds in frames and bytes, requests in flight,
    /// timeouts).
    pub session: twilsock::SessionConfig,
    /// Media (MCS) settings: upload size, per-tenant quota, temporary URL lifetime.
    pub media: crate::media::MediaConfig,
    /// Webhook timeout (Twilio's 5 s by default), post-action retries and queue bounds.
    pub webhooks: crate::webhooks::WebhookSettings,
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
            journal_size: crate::control::journal::DEFAULT_CAPACITY,
            journal_bytes: crate::control::journal::DEFAULT_MAX_BYTES,
            session: twilsock::SessionConfig::default(),
            media: crate::media::MediaConfig::default(),
            webhooks: crate::webhooks::WebhookSettings::default(),
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
    Router::new()
        .merge(observed)
        .merge(crate::control::http::router(&state))
        .route(twilsock::session::PATH, twilsock::session::route(endpoint))
        .route("/token", get(dev_token).layer(cors))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let stop = state.stop.clone();
    // Small frames (twilsock replies, Sync pushes) must not wait for Nagle's algorithm and the
    // peer's delayed ACK (about 40 ms each time).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // The peer address lets the control plane recognise loopback callers.
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Upgraded WebSockets are not part of graceful shutdown: tell sessions to close.
            let _ = stop.send(true);
        })
        .await
}

async fn fallback(method: Method, uri: Uri) -> Response {
    let _ = method;
    ApiError::not_found(uri.path()).into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    identity: Option<String>,
    ttl: Option<u64>,
    account: Option<String>,
}

async fn dev_token(State(st): State<AppState>, Query(q): Query<TokenQuery>) -> Result<Response, ApiError> {
    if !st.config.token_endpoint {
        return Err(ApiError::not_found("/token"));
    }
    let identity = q
        .identity
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::invalid("identity is required, e.g. /token?identity=alice"))?;
    let ttl = q.ttl.unwrap_or(st.config.token_ttl_secs);
    let account_sid = q
        .account
        .or_else(|| st.default_account.clone())
        .ok_or_else(|| ApiError::invalid("no default account; pass account=AC…"))?;
    let account = st
        .domain
        .account(&account_sid)
        .ok_or_else(|| ApiError::not_found(&format!("/token?account={account_sid}")))?;
    let token =
        identity::mint_for(&account, &identity, ttl).ok_or_else(|| ApiError::invalid("the account has no API key to sign tokens with"))?;
    Ok((StatusCode::OK, Json(json!({ "identity": identity, "token": token, "ttl": ttl }))).into_response())
}

/// The default seed's credentials, as `rehearsal env` prints them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credentials {
    pub account_sid: String,
    pub auth_token: String,
    pub api_key: String,
    pub api_secret: String,
    pub service_sid: String,
}

impl Credentials {
    pub fn of(domain: &Domain, account_sid: &str) -> Option<Credentials> {
        let a = domain.account(account_sid)?;
        let key = a.api_keys.first()?;
        Some(Credentials {
            account_sid: a.sid.clone(),
            auth_token: a.auth_token.clone(),
            api_key: key.sid.clone(),
            api_secret: key.secret.clone(),
            service_sid: a.read(|s| s.default_service.clone()),
        })
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
    Bind(#[source] std::io::Error),
    #[error("seed: {0}")]
    Seed(#[from] crate::domain::seed::SeedError),
    #[error("state file: {0}")]
    State(#[from] crate::domain::snapshot::ImportError),
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
        webhooks: Some(webhooks.clone()),
    };
    Ok(AppState {
        domain,
        config: Arc::new(startup.config),
        base_url,
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
