//! The control plane over HTTP: one JSON API under [`PREFIX`] that mirrors [`Control`](super::Control)
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
//! | Route (under `/_rehearsal/v1`) | Mirror on [`Control`](super::Control) |
//! |---|---|
//! | `GET /tenants` · `POST /tenants` (`NewTenant`) | `tenants` · `create_tenant` |
//! | `GET /tenants/{AC}` · `DELETE /tenants/{AC}` · `POST /tenants/{AC}/reset` | `tenant` · `delete_tenant` · `reset_tenant` |
//! | `GET /tenants/{AC}/state` · `PUT /tenants/{AC}/state` | `export` · `import_tenant` |
//! | `GET /state` · `PUT /state` (the `--state` file format) | `export_all` · `import` |
//! | `GET`/`POST /clock` · `GET`/`POST /tenants/{AC}/clock` (`ClockAction`) | `clock` · `clock_action` |
//! | `GET /connections[?account=&identity=]` · `GET /tenants/{AC}/connections[?identity=]` | `connections` |
//! | `POST /tenants/{AC}/connections/actions` (`{target, action, …}`) | `command` |
//! | `PUT`/`DELETE /tenants/{AC}/connections/{id}/tap` (frame tap on/off) | `sessions.tap` · `sessions.untap` |
//! | `GET /tenants/{AC}/connections/{id}/frames[?after=&limit=]` · `…/frames/stream[?after=]` (NDJSON) | `sessions.tapped` |
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
//! | `GET /tenants/{AC}/media/{ME}/content` (the bytes; raster images inline, the rest as a download) | — (`views`) |
//! | `GET /scenario` (`serve --scenario` progress) | `scenario.get` |
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post, put};

use super::views;
use crate::server::AppState;

mod auth;
mod connections;
mod error;
mod faults;
mod frames;
mod journal;
mod tenants;

pub use connections::{SessionAction, SessionTarget};
pub use error::Error;
pub(in crate::control) use error::{QueryOf, Tenant, existing};

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
        .route("/tenants", get(tenants::list_tenants).post(tenants::create_tenant))
        .route("/tenants/{account}", get(tenants::get_tenant).delete(tenants::delete_tenant))
        .route("/tenants/{account}/reset", post(tenants::reset_tenant))
        .route(
            "/tenants/{account}/state",
            get(tenants::export_tenant)
                .put(tenants::import_tenant)
                .layer(DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .route(
            "/state",
            get(tenants::export_all)
                .put(tenants::import_all)
                .layer(DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .route("/clock", get(tenants::server_clock).post(tenants::move_server_clock))
        .route(
            "/tenants/{account}/clock",
            get(tenants::tenant_clock).post(tenants::move_tenant_clock),
        )
        .route("/connections", get(connections::all_connections))
        .route("/tenants/{account}/connections", get(connections::tenant_connections))
        .route("/tenants/{account}/connections/actions", post(connections::connection_action))
        .route("/tenants/{account}/connections/refuse", post(connections::refuse_connections))
        .route(
            "/tenants/{account}/connections/{id}/tap",
            put(frames::start_tap).delete(frames::stop_tap),
        )
        .route("/tenants/{account}/connections/{id}/frames", get(frames::frames))
        .route("/tenants/{account}/connections/{id}/frames/stream", get(frames::stream))
        .route("/tenants/{account}/inits/deny", post(connections::deny_inits))
        .route("/tenants/{account}/actors", post(tenants::act))
        .route("/faults", get(faults::list_faults).delete(faults::clear_faults))
        .route("/faults/http", post(faults::add_http_fault))
        .route("/faults/{id}", delete(faults::remove_fault))
        .route(
            "/tenants/{account}/faults",
            get(faults::list_tenant_faults).delete(faults::clear_tenant_faults),
        )
        .route("/tenants/{account}/faults/http", post(faults::add_tenant_http_fault))
        .route("/journal", get(journal::journal))
        .route("/journal/stream", get(journal::journal_stream))
        .route("/tenants/{account}/journal", get(journal::tenant_journal))
        .route("/tenants/{account}/journal/stream", get(journal::tenant_journal_stream))
        .route("/tenants/{account}/rest/{*path}", get(views::rest_view))
        .route("/tenants/{account}/media", get(views::tenant_media))
        .route("/tenants/{account}/media/{media}/content", get(views::media_content))
        .route("/tenants/{account}/near_misses", get(views::tenant_near_misses))
        .route("/near_misses", get(views::near_misses).delete(views::clear_near_misses))
        .route("/scenario", get(views::scenario))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth::authorize));
    Router::new().nest(PREFIX, api)
}
