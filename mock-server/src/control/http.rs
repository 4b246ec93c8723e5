//! The control plane over HTTP: one JSON API under [`PREFIX`] that mirrors [`Control`]
//! one-to-one, so that test suites in any language can drive the server.
//!
//! **Auth.** Every request needs the control token (`Authorization: Bearer <token>` or
//! `X-Rehearsal-Control-Token: <token>`; `ServerConfig::control_token`, printed at start-up),
//! except from a loopback peer when the server runs with `ServerConfig::control_open_loopback`
//! and the request names the server by a loopback address and its port in `Host`, and, if it
//! carries an `Origin`, comes from that same loopback origin (so that neither a web page's
//! cross-origin request nor a DNS-rebound name gets in without the token). Anything else is a
//! 401, before routing, so the API reveals nothing without the token.
//!
//! **Shapes.** Bodies and answers are JSON (whatever the `Content-Type`; an empty body is `{}`).
//! Errors are `{code, message, status}` with a machine-readable `code`: `unauthorized`,
//! `not_found`, `no_tenant`, `no_session`, `no_fault`, `invalid_body`, `invalid_request`,
//! `invalid_seed`, `invalid_snapshot`, `format_too_new`, `conflict`, `no_seed`,
//! `action_failed` (with the domain's `twilio_code`), `method_not_allowed`. A tenant is shown
//! as its credentials (`account_sid`, `auth_token`, `api_key`, `api_secret`, `service_sid`)
//! and its `token_key`, which a development token URL for it carries
//! (`/token?account=AC…&key=…`).
//!
//! | Route (under `/_rehearsal/v1`) | Mirror on [`Control`] |
//! |---|---|
//! | `GET /tenants` · `POST /tenants` (`NewTenant`) | `tenants` · `create_tenant` |
//! | `GET /tenants/{AC}` · `DELETE /tenants/{AC}` · `POST /tenants/{AC}/reset` | `tenant` · `delete_tenant` · `reset_tenant` |
//! | `GET /tenants/{AC}/state` · `PUT /tenants/{AC}/state` | `export` · `import_tenant` |
//! | `GET /state` · `PUT /state` (the `--state` file format) | `export_all` · `import` |
//! | `GET`/`POST /clock` · `GET`/`POST /tenants/{AC}/clock` (`ClockAction`) | `clock` · `clock_action` |
//! | `GET /connections[?account=&identity=]` · `GET /tenants/{AC}/connections[?identity=]` | `connections` |
//! | `POST /tenants/{AC}/connections/actions` (`{target, action, …}`) | `command` |
//! | `POST /tenants/{AC}/connections/refuse` (`{for_ms}`) | `refuse_connections` |
//! | `POST /tenants/{AC}/inits/deny` (`InitDenial`) | `deny_inits` |
//! | `POST /tenants/{AC}/actors` (`{as, action, …}`) | `act` |
//! | `GET`/`DELETE /faults` · `POST /faults/http` · `DELETE /faults/{id}` | `faults.list` · `faults.clear` · `faults.add_http` · `faults.remove` |
//! | `GET`/`DELETE /tenants/{AC}/faults` · `POST /tenants/{AC}/faults/http` | the same, for one account |
//! | `GET /journal` · `GET /tenants/{AC}/journal` (filters in the query) | `journal.query` |
//! | `GET /journal/stream` · `GET /tenants/{AC}/journal/stream` (NDJSON) | `journal.follow` |
//! | `GET`/`DELETE /near_misses` · `GET /tenants/{AC}/near_misses` | `near_misses.view` · `near_misses.clear` |
//! | `GET /tenants/{AC}/rest/{path}` (the tenant's REST API, read-only, not journaled) | — (`views`) |
//! | `GET /tenants/{AC}/media[?limit=&conversation=]` (records, no bytes) | — (`views`) |
//! | `GET /scenario` (`serve --scenario` progress) | `scenario.get` |
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, OriginalUri, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use super::actors::{ActError, Action};
use super::faults::{HttpRule, InitDenial};
use super::limits::MAX_DURATION_MS;
use super::sessions::Target;
use super::views;
use super::{ClockAction, ClockView, ControlError, NewTenant};
use crate::domain::CreateAccountError;
use crate::domain::seed::SeedError;
use crate::domain::snapshot::ImportError;
use crate::journal::{Entry, Filter, Kind};
use crate::server::AppState;
use crate::twilsock::codec;
use crate::twilsock::session::{CloseCode, SessionCommand, reason_phrase};

/// The reserved path prefix of the control plane.
pub const PREFIX: &str = "/_rehearsal/v1";

/// The header that carries the control token (the alternative to `Authorization: Bearer`).
pub const TOKEN_HEADER: &str = "x-rehearsal-control-token";

/// Snapshots carry media as base64, so they may be far larger than other bodies.
const STATE_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// A fresh control token: 32 random hex digits.
pub fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The control plane's routes, under [`PREFIX`], behind the control-token check.
pub fn router(state: &AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/tenants/{account}", get(get_tenant).delete(delete_tenant))
        .route("/tenants/{account}/reset", post(reset_tenant))
        .route(
            "/tenants/{account}/state",
            get(export_tenant).put(import_tenant).layer(DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .route(
            "/state",
            get(export_all).put(import_all).layer(DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .route("/clock", get(server_clock).post(move_server_clock))
        .route("/tenants/{account}/clock", get(tenant_clock).post(move_tenant_clock))
        .route("/connections", get(all_connections))
        .route("/tenants/{account}/connections", get(tenant_connections))
        .route("/tenants/{account}/connections/actions", post(connection_action))
        .route("/tenants/{account}/connections/refuse", post(refuse_connections))
        .route("/tenants/{account}/inits/deny", post(deny_inits))
        .route("/tenants/{account}/actors", post(act))
        .route("/faults", get(list_faults).delete(clear_faults))
        .route("/faults/http", post(add_http_fault))
        .route("/faults/{id}", delete(remove_fault))
        .route("/tenants/{account}/faults", get(list_tenant_faults).delete(clear_tenant_faults))
        .route("/tenants/{account}/faults/http", post(add_tenant_http_fault))
        .route("/journal", get(journal))
        .route("/journal/stream", get(journal_stream))
        .route("/tenants/{account}/journal", get(tenant_journal))
        .route("/tenants/{account}/journal/stream", get(tenant_journal_stream))
        .route("/tenants/{account}/rest/{*path}", get(views::rest_view))
        .route("/tenants/{account}/media", get(views::tenant_media))
        .route("/tenants/{account}/near_misses", get(views::tenant_near_misses))
        .route("/near_misses", get(views::near_misses).delete(views::clear_near_misses))
        .route("/scenario", get(views::scenario))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new().nest(PREFIX, api)
}

// ---------------------------------------------------------------------------------------------
// Errors and extractors
// ---------------------------------------------------------------------------------------------

/// A control-plane failure: `{code, message, status}` (plus `twilio_code` when the domain
/// refused an actor's action).
#[derive(Debug, Clone)]
pub struct Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub twilio_code: Option<u32>,
}

impl Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Error {
        Error {
            status,
            code,
            message: message.into(),
            twilio_code: None,
        }
    }

    pub(super) fn bad_body(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub(super) fn invalid(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(super) fn no_tenant(sid: &str) -> Error {
        Error::new(StatusCode::NOT_FOUND, "no_tenant", format!("no tenant {sid}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message, "status": self.status.as_u16() });
        if let Some(c) = self.twilio_code {
            body["twilio_code"] = c.into();
        }
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rehearsal-control\""),
            );
        }
        res
    }
}

impl From<ControlError> for Error {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        let conflict = |c: &CreateAccountError| matches!(c, CreateAccountError::Exists(_) | CreateAccountError::KeyTaken(_));
        match e {
            ControlError::NoTenant(sid) => Error::no_tenant(&sid),
            ControlError::Seed(SeedError::Format { .. }) | ControlError::Import(ImportError::Format { .. }) => {
                Error::new(StatusCode::CONFLICT, "format_too_new", message)
            }
            ControlError::Seed(SeedError::Account { error: source, .. }) if conflict(&source) => {
                Error::new(StatusCode::CONFLICT, "conflict", message)
            }
            ControlError::Import(ImportError::Account(source)) if conflict(&source) => {
                Error::new(StatusCode::CONFLICT, "conflict", message)
            }
            ControlError::Seed(_) => Error::new(StatusCode::BAD_REQUEST, "invalid_seed", message),
            ControlError::Import(_) => Error::new(StatusCode::BAD_REQUEST, "invalid_snapshot", message),
            ControlError::Act(ActError::Domain(d)) => Error {
                status: StatusCode::from_u16(d.status()).unwrap_or(StatusCode::BAD_REQUEST),
                code: "action_failed",
                message,
                twilio_code: Some(d.code()),
            },
            ControlError::Act(ActError::OutOfRange(_)) | ControlError::OutOfRange(_) => Error::bad_body(message),
            ControlError::Act(_) => Error::new(StatusCode::BAD_REQUEST, "invalid_request", message),
            ControlError::Invalid(_) => Error::invalid(message),
        }
    }
}

type Answer<T = Json<Value>> = Result<T, Error>;

/// A JSON body, whatever the `Content-Type` says (`curl -d` sends a form type); an empty body
/// reads as `{}`. Rejections carry serde's message.
struct JsonBody<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| Error::bad_body(e.body_text()))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(text)
            .map(JsonBody)
            .map_err(|e| Error::bad_body(format!("invalid JSON body: {e}")))
    }
}

/// The query string, deserialised; rejections carry serde's message.
pub(super) struct QueryOf<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let RawQuery(q) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::invalid(e.to_string()))?;
        serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map(QueryOf)
            .map_err(|e| Error::invalid(format!("invalid query: {e}")))
    }
}

/// The `{account}` of a `/tenants/{account}/…` path (not checked to exist).
pub(super) struct Tenant(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::invalid(e.body_text()))?;
        params
            .remove("account")
            .map(Tenant)
            .ok_or_else(|| Error::invalid("no account in the path"))
    }
}

/// `Ok` if the tenant exists.
pub(super) fn existing(st: &AppState, sid: &str) -> Result<(), Error> {
    match st.domain.account(sid) {
        Some(_) => Ok(()),
        None => Err(Error::no_tenant(sid)),
    }
}

async fn not_found(OriginalUri(uri): OriginalUri) -> Error {
    Error::new(StatusCode::NOT_FOUND, "not_found", format!("no control-plane route {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

/// Lets a request through if it presents the control token, or comes from loopback when the
/// server opted in; otherwise answers 401.
async fn authorize(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(&st, &req) {
        next.run(req).await
    } else {
        Error::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the control plane needs the control token printed at start-up: \
             `Authorization: Bearer <token>` or `X-Rehearsal-Control-Token: <token>`",
        )
        .into_response()
    }
}

fn authorized(st: &AppState, req: &Request) -> bool {
    if st.config.control_open_loopback && same_host_loopback(st.local_addr.port(), req) {
        // Present when served with `into_make_service_with_connect_info` (as `server::run` does).
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            if peer.ip().to_canonical().is_loopback() {
                return true;
            }
        }
    }
    let Some(expected) = st.config.control_token.as_deref().filter(|t| !t.is_empty()) else {
        return false;
    };
    presented_token(req.headers()).is_some_and(|t| constant_eq(t.as_bytes(), expected.as_bytes()))
}

/// Whether a request is addressed to this server by a loopback name (`Host` is
/// `127.x.x.x`, `[::1]` or `localhost` with the server's port) and, if a browser sent it, from a
/// page of this same origin. A loopback peer alone is not enough to go without the token: a web
/// page in the user's browser is a loopback peer too. Its cross-origin "simple" requests
/// (`text/plain` POSTs) carry a foreign `Origin`, and a DNS-rebound name (`attacker.example`
/// resolving to 127.0.0.1) arrives as a foreign `Host`; both are refused.
fn same_host_loopback(port: u16, req: &Request) -> bool {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| is_loopback_authority(h, port)) {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|authority| is_loopback_authority(authority, port)),
    }
}

/// `host:port` where host is a loopback IP literal or `localhost` and port is `port`.
fn is_loopback_authority(authority: &str, port: u16) -> bool {
    let Some((host, p)) = authority.rsplit_once(':') else {
        return false;
    };
    if p.parse::<u16>().ok() != Some(port) {
        return false;
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(t.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Tenants and state
// ---------------------------------------------------------------------------------------------

async fn list_tenants(State(st): State<AppState>) -> Json<Value> {
    Json(json!({ "tenants": st.control.tenants() }))
}

/// Runs a heavy control operation (seeding, generating history, importing or exporting a
/// snapshot: up to seconds of CPU) on the blocking pool, so the async workers keep serving
/// every other connection meanwhile. A panic in it resumes here, where the panic layer answers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking control operation cancelled: {e}"),
    }
}

async fn create_tenant(State(st): State<AppState>, JsonBody(req): JsonBody<NewTenant>) -> Answer<(StatusCode, Json<Value>)> {
    let t = blocking(move || st.control.create_tenant(req)).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

async fn get_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    Ok(Json(json!(st.control.tenant(&sid)?)))
}

async fn reset_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    let reset = {
        let (st, sid) = (st.clone(), sid.clone());
        blocking(move || st.control.reset_tenant(&sid)).await
    };
    match reset {
        Ok(t) => Ok(Json(json!(t))),
        // Imported (or bare) accounts have no seed to go back to.
        Err(ControlError::NoTenant(_)) if st.domain.account(&sid).is_some() => Err(Error::new(
            StatusCode::CONFLICT,
            "no_seed",
            format!("tenant {sid} was not created from a seed, so there is nothing to reset it to"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn delete_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer<StatusCode> {
    st.control.delete_tenant(&sid)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    Ok(Json(blocking(move || st.control.export(&sid)).await?))
}

async fn import_tenant(State(st): State<AppState>, Tenant(sid): Tenant, body: Bytes) -> Answer {
    std::str::from_utf8(&body).map_err(|e| Error::bad_body(format!("the snapshot is not UTF-8: {e}")))?;
    let imported = sid.clone();
    blocking(move || st.control.import_tenant(&sid, std::str::from_utf8(&body).unwrap_or_default())).await?;
    Ok(Json(json!({ "imported": [imported] })))
}

async fn export_all(State(st): State<AppState>) -> Answer {
    Ok(Json(blocking(move || st.control.export_all()).await?))
}

async fn import_all(State(st): State<AppState>, body: Bytes) -> Answer {
    std::str::from_utf8(&body).map_err(|e| Error::bad_body(format!("the snapshot is not UTF-8: {e}")))?;
    let imported = blocking(move || st.control.import(std::str::from_utf8(&body).unwrap_or_default())).await?;
    Ok(Json(json!({ "imported": imported })))
}

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

async fn server_clock(State(st): State<AppState>) -> Answer {
    Ok(Json(json!(ClockView::of(&st.control.clock(None)?))))
}

async fn move_server_clock(State(st): State<AppState>, JsonBody(action): JsonBody<ClockAction>) -> Answer {
    Ok(Json(json!(st.control.clock_action(None, action)?)))
}

async fn tenant_clock(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    Ok(Json(json!(ClockView::of(&st.control.clock(Some(&sid))?))))
}

async fn move_tenant_clock(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(action): JsonBody<ClockAction>) -> Answer {
    Ok(Json(json!(st.control.clock_action(Some(&sid), action)?)))
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    identity: Option<String>,
}

async fn all_connections(State(st): State<AppState>, QueryOf(q): QueryOf<ConnectionsQuery>) -> Answer {
    Ok(connections(&st, q.account.as_deref(), q.identity.as_deref()))
}

async fn tenant_connections(State(st): State<AppState>, Tenant(sid): Tenant, QueryOf(q): QueryOf<ConnectionsQuery>) -> Answer {
    existing(&st, &sid)?;
    if q.account.as_deref().is_some_and(|a| a != sid) {
        return Err(Error::invalid("account in the query differs from the path's"));
    }
    Ok(connections(&st, Some(&sid), q.identity.as_deref()))
}

fn connections(st: &AppState, account: Option<&str>, identity: Option<&str>) -> Json<Value> {
    let mut list = st.control.connections(account);
    list.retain(|s| identity.is_none_or(|i| s.identity == i));
    Json(json!({ "connections": list }))
}

/// Which of a tenant's live sessions an action is for: one session, all of an identity's, or
/// (both absent) all of the tenant's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionTarget {
    #[serde(default)]
    pub session: Option<u64>,
    #[serde(default)]
    pub identity: Option<String>,
}

/// What to do to the target sessions (`"action"` tag, the other fields beside it).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionAction {
    /// Drop the socket without a close handshake, like a network failure.
    Drop,
    /// Send a twilsock `close` with `code` (308 reconnects, after `backoff_ms` if given; 401,
    /// 406, 410 and 417 are terminal), then end the session.
    Close {
        code: u16,
        #[serde(default)]
        backoff_ms: Option<u64>,
        /// Overrides the standard description of the code.
        #[serde(default)]
        description: Option<String>,
        /// Overrides the standard `errorCode` of the code.
        #[serde(default)]
        error_code: Option<u32>,
    },
    /// Send `client_update` / `token_about_to_expire` now.
    WarnTokenExpiry,
    /// Act as if the token expired now: `close` 410 (20104).
    ExpireToken,
    /// Queue a raw frame: `frame_base64` (bytes as given), or `header` (+ `payload`: a string
    /// sent as is, other JSON serialised) encoded as a twilsock packet.
    InjectFrame {
        #[serde(default)]
        frame_base64: Option<String>,
        #[serde(default)]
        header: Option<Map<String, Value>>,
        #[serde(default)]
        payload: Option<Value>,
    },
    /// Answer upstream requests `ms` later than their handlers complete (a slow backend; 0
    /// removes the latency and releases the replies waiting for it).
    Latency {
        ms: u64,
    },
    /// Keep Sync notifications and other backend pushes back, in order, while replies keep
    /// flowing, until `release_notifications`.
    HoldNotifications,
    ReleaseNotifications,
    /// Stop reading and writing without closing the socket (a silent connection), until
    /// `unstall`.
    Stall,
    Unstall,
}

impl SessionAction {
    /// The session command this action sends.
    pub fn command(self) -> Result<SessionCommand, Error> {
        use base64::Engine;
        let duration_ms = |field: &str, ms: u64| {
            if ms > MAX_DURATION_MS {
                Err(Error::bad_body(format!("{field} {ms} is more than {MAX_DURATION_MS} ms")))
            } else {
                Ok(ms)
            }
        };
        Ok(match self {
            SessionAction::Drop => SessionCommand::Drop,
            SessionAction::Close {
                code,
                backoff_ms,
                description,
                error_code,
            } => {
                let standard = match code {
                    308 => Some(CloseCode::Offload),
                    401 => Some(CloseCode::Unauthorized),
                    406 => Some(CloseCode::CannotParse),
                    410 => Some(CloseCode::TokenExpired),
                    417 => Some(CloseCode::CannotParseReply),
                    _ => None,
                };
                let (status, standard_description, standard_error_code) = match standard {
                    Some(c) => {
                        let (s, d, e) = c.status();
                        (s.to_owned(), d.to_owned(), e)
                    }
                    None if (300..=599).contains(&code) => (
                        reason_phrase(code).to_uppercase().replace(' ', "_"),
                        "closed by the control plane".to_owned(),
                        None,
                    ),
                    None => {
                        return Err(Error::invalid(format!(
                            "close code {code} is not a twilsock status (308, 401, 406, 410, 417, or another 3xx-5xx)"
                        )));
                    }
                };
                SessionCommand::Close {
                    code,
                    status,
                    description: description.unwrap_or(standard_description),
                    error_code: error_code.or(standard_error_code),
                    backoff_min_ms: backoff_ms.map(|ms| duration_ms("backoff_ms", ms)).transpose()?,
                }
            }
            SessionAction::WarnTokenExpiry => SessionCommand::WarnTokenExpiry,
            SessionAction::ExpireToken => SessionCommand::ExpireTokenNow,
            SessionAction::InjectFrame {
                frame_base64,
                header,
                payload,
            } => match (frame_base64, header) {
                (Some(b64), None) if payload.is_none() => SessionCommand::SendRaw(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| Error::invalid(format!("frame_base64: {e}")))?
                        .into(),
                ),
                (None, Some(header)) => {
                    let payload = match payload {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::String(s)) => s.into_bytes(),
                        Some(other) => other.to_string().into_bytes(),
                    };
                    SessionCommand::SendRaw(codec::encode(header, &payload))
                }
                _ => return Err(Error::invalid("inject_frame takes either frame_base64 or header (+ payload)")),
            },
            SessionAction::Latency { ms } => SessionCommand::SetLatency(Duration::from_millis(duration_ms("ms", ms)?)),
            SessionAction::HoldNotifications => SessionCommand::HoldNotifications,
            SessionAction::ReleaseNotifications => SessionCommand::ReleaseNotifications,
            SessionAction::Stall => SessionCommand::Stall,
            SessionAction::Unstall => SessionCommand::Unstall,
        })
    }
}

/// `{"target": {...}, "action": "...", ...}`: the target beside the flattened action (parsed by
/// hand because serde cannot flatten into an enum that denies unknown fields).
fn split_field<T: DeserializeOwned>(mut body: Map<String, Value>, field: &str) -> Result<(Option<Value>, T), Error> {
    let taken = body.remove(field);
    let rest = serde_json::from_value(Value::Object(body)).map_err(|e| Error::bad_body(format!("invalid JSON body: {e}")))?;
    Ok((taken, rest))
}

async fn connection_action(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(body): JsonBody<Map<String, Value>>) -> Answer {
    existing(&st, &sid)?;
    let (target, action): (_, SessionAction) = split_field(body, "target")?;
    let target: SessionTarget = match target {
        None | Some(Value::Null) => SessionTarget::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| Error::bad_body(format!("invalid target: {e}")))?,
    };
    let cmd = action.command()?;
    let target = Target {
        account: sid,
        session: target.session,
        identity: target.identity,
    };
    let (reached, applied) = st.control.command_applied(&target, cmd).await;
    if let Some(id) = target.session.filter(|_| reached.is_empty()) {
        return Err(Error::new(
            StatusCode::NOT_FOUND,
            "no_session",
            format!("no live session {id} in tenant {}", target.account),
        ));
    }
    Ok(Json(json!({ "sessions": reached, "applied": applied })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Refuse {
    for_ms: u64,
}

async fn refuse_connections(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(r): JsonBody<Refuse>) -> Answer {
    if r.for_ms > MAX_DURATION_MS {
        return Err(Error::bad_body(format!("for_ms {} is more than {MAX_DURATION_MS} ms", r.for_ms)));
    }
    st.control.refuse_connections(&sid, Duration::from_millis(r.for_ms))?;
    let until = st.control.faults.list().2.into_iter().find(|r| r.account == sid).map(|r| r.until);
    Ok(Json(json!({ "until": until })))
}

async fn deny_inits(
    State(st): State<AppState>,
    Tenant(sid): Tenant,
    JsonBody(mut d): JsonBody<InitDenial>,
) -> Answer<(StatusCode, Json<Value>)> {
    existing(&st, &sid)?;
    if d.account.as_deref().is_some_and(|a| a != sid) {
        return Err(Error::invalid("account in the body differs from the path's"));
    }
    if d.count == 0 {
        return Err(Error::invalid("count must be at least 1"));
    }
    if !(100..=999).contains(&d.status) {
        return Err(Error::invalid(format!("status {} is not a twilsock status", d.status)));
    }
    if let Some(ms) = d.backoff_ms.filter(|ms| *ms > MAX_DURATION_MS) {
        return Err(Error::bad_body(format!("backoff_ms {ms} is more than {MAX_DURATION_MS} ms")));
    }
    d.account = Some(sid);
    let id = st.control.deny_inits(d);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

// ---------------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------------

async fn act(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(body): JsonBody<Map<String, Value>>) -> Answer {
    let (who, action): (_, Action) = split_field(body, "as")?;
    let who = match who {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(other) => return Err(Error::bad_body(format!("\"as\" must be an identity or null, not {other}"))),
    };
    // On the blocking pool (generating messages is heavy), driving the action's awaits there
    // (pre-action webhooks).
    let runtime = tokio::runtime::Handle::current();
    Ok(Json(
        blocking(move || runtime.block_on(st.control.act(&sid, who.as_deref(), action))).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

fn faults_view(st: &AppState, account: Option<&str>) -> Json<Value> {
    let (mut http, mut inits, mut refusals) = st.control.faults.list();
    if let Some(a) = account {
        http.retain(|r| r.account.as_deref() == Some(a));
        inits.retain(|d| d.account.as_deref() == Some(a));
        refusals.retain(|r| r.account == a);
    }
    Json(json!({ "http": http, "inits": inits, "refusals": refusals }))
}

async fn list_faults(State(st): State<AppState>) -> Json<Value> {
    faults_view(&st, None)
}

async fn list_tenant_faults(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    existing(&st, &sid)?;
    Ok(faults_view(&st, Some(&sid)))
}

async fn clear_faults(State(st): State<AppState>) -> StatusCode {
    st.control.faults.clear(None);
    StatusCode::NO_CONTENT
}

async fn clear_tenant_faults(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer<StatusCode> {
    existing(&st, &sid)?;
    st.control.faults.clear(Some(&sid));
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_fault(State(st): State<AppState>, Path(id): Path<String>) -> Answer<StatusCode> {
    let id: u64 = id.parse().map_err(|_| Error::invalid(format!("{id:?} is not a fault id")))?;
    if st.control.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::new(StatusCode::NOT_FOUND, "no_fault", format!("no armed fault {id}")))
    }
}

async fn add_http_fault(State(st): State<AppState>, JsonBody(rule): JsonBody<HttpRule>) -> Answer<(StatusCode, Json<Value>)> {
    if let Some(a) = &rule.account {
        existing(&st, a)?;
    }
    arm(&st, rule)
}

async fn add_tenant_http_fault(
    State(st): State<AppState>,
    Tenant(sid): Tenant,
    JsonBody(mut rule): JsonBody<HttpRule>,
) -> Answer<(StatusCode, Json<Value>)> {
    existing(&st, &sid)?;
    if rule.account.as_deref().is_some_and(|a| a != sid) {
        return Err(Error::invalid("account in the body differs from the path's"));
    }
    rule.account = Some(sid);
    arm(&st, rule)
}

fn arm(st: &AppState, rule: HttpRule) -> Answer<(StatusCode, Json<Value>)> {
    let id = st.control.arm_http(rule)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

// ---------------------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------------------

/// Journal filters in a query string: `kind` is a comma-separated list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    session: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

impl JournalQuery {
    fn into_filter(self, account: Option<String>) -> Result<Filter, Error> {
        if let (Some(path), Some(query)) = (&account, &self.account) {
            if path != query {
                return Err(Error::invalid("account in the query differs from the path's"));
            }
        }
        let kind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|k| {
                        serde_json::from_value::<Kind>(Value::String(k.trim().to_owned())).map_err(|_| {
                            Error::invalid(format!(
                                "unknown journal kind {k:?}; kinds: connection, packet_in, packet_out, upstream, rest, \
                                 sync_push, media, fault, control"
                            ))
                        })
                    })
                    .collect::<Result<Vec<Kind>, Error>>()?,
            ),
        };
        Ok(Filter {
            account: account.or(self.account),
            kind,
            identity: self.identity,
            session: self.session,
            after: self.after,
            contains: self.contains,
            limit: self.limit,
        })
    }
}

async fn journal(State(st): State<AppState>, QueryOf(q): QueryOf<JournalQuery>) -> Answer {
    Ok(Json(json!(st.control.journal.query(&q.into_filter(None)?))))
}

async fn tenant_journal(State(st): State<AppState>, Tenant(sid): Tenant, QueryOf(q): QueryOf<JournalQuery>) -> Answer {
    existing(&st, &sid)?;
    Ok(Json(json!(st.control.journal.query(&q.into_filter(Some(sid))?))))
}

async fn journal_stream(State(st): State<AppState>, QueryOf(q): QueryOf<JournalQuery>) -> Answer<Response> {
    Ok(stream(&st, q.into_filter(None)?))
}

async fn tenant_journal_stream(State(st): State<AppState>, Tenant(sid): Tenant, QueryOf(q): QueryOf<JournalQuery>) -> Answer<Response> {
    existing(&st, &sid)?;
    Ok(stream(&st, q.into_filter(Some(sid))?))
}

/// Newline-delimited JSON: with `after`, the matching entries still in the ring first; then new
/// entries as they are recorded. `limit` ends the stream after that many entries. A follower
/// that falls more than the broadcast's capacity behind gets `{"lagged": N}` (entries it
/// missed) and goes on; the stream ends when the server shuts down.
fn stream(st: &AppState, mut filter: Filter) -> Response {
    // Follow before reading the ring, so nothing recorded in between is missed; duplicates are
    // skipped by `seq`.
    let live = st.control.journal.follow();
    let remaining = filter.limit.take();
    let backlog: VecDeque<Entry> = match filter.after {
        Some(_) => st.control.journal.query(&filter).entries.into(),
        None => VecDeque::new(),
    };
    let follower = Follower {
        live,
        backlog,
        filter,
        last_seq: 0,
        remaining,
        stop: st.stop.subscribe(),
    };
    let body = futures_util::stream::unfold(follower, |mut f| async move {
        let line = f.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(line), f))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

struct Follower {
    live: broadcast::Receiver<Entry>,
    backlog: VecDeque<Entry>,
    filter: Filter,
    last_seq: u64,
    remaining: Option<usize>,
    stop: watch::Receiver<bool>,
}

impl Follower {
    /// The next line to send, or `None` when the stream is over.
    async fn next_line(&mut self) -> Option<Bytes> {
        if self.remaining == Some(0) {
            return None;
        }
        let entry = match self.backlog.pop_front() {
            Some(e) => e,
            None => loop {
                tokio::select! {
                    r = self.live.recv() => match r {
                        Ok(e) if e.seq > self.last_seq && self.filter.matches(&e) => break e,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(n)) => return Some(line(&json!({ "lagged": n }))),
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    () = stopped(&mut self.stop) => return None,
                }
            },
        };
        self.last_seq = entry.seq;
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        Some(line(&entry))
    }
}

fn line(v: &impl serde::Serialize) -> Bytes {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes.into()
}

/// Completes when the server shuts down (or its stop flag is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_authority;

    #[test]
    fn only_loopback_names_with_the_servers_port_are_this_server() {
        for ok in ["127.0.0.1:4510", "127.1.2.3:4510", "localhost:4510", "LOCALHOST:4510", "[::1]:4510"] {
            assert!(is_loopback_authority(ok, 4510), "{ok}");
        }
        for bad in [
            "attacker.example:4510",
            "127.0.0.1:4511",
            "127.0.0.1",
            "localhost",
            "10.0.0.1:4510",
            "localhost.attacker.example:4510",
            "127.0.0.1.nip.io:4510",
            "[::ffff:7f00:1]x:4510",
            "",
        ] {
            assert!(!is_loopback_authority(bad, 4510), "{bad}");
        }
    }
}
