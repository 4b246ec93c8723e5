//! Media (MCS): Twilio's Media Content Service over plain HTTP, the one service the SDK dials
//! directly (wire-protocol notes, section 7). The Configuration response points the SDK here
//! with `links.media_service` / `links.media_set_service` (see [`media_service_url`] and
//! [`media_set_service_url`]).
//!
//! Routes (all under `/v1/Services/{ChatServiceSid}`, all answering CORS preflights):
//!
//! | Route | What |
//! |---|---|
//! | `POST /Media?Category=media\|body\|history[&Filename=…]` | upload: raw bytes (Node), or `multipart/form-data` with one file part (browsers' `FormData`) → 201 media record |
//! | `GET /Media/{MediaSid}` | the media record, with a fresh temporary URL |
//! | `POST /MediaSet` | `{"command":"get","list":[{"media_sid":"ME…"}]}` → `[{code, media_record}]` |
//! | `GET /Media/{MediaSid}/Content` | the bytes: with `Expires` + `Signature` (temporary URL, no credentials) or with `X-Twilio-Token` / HTTP Basic |
//!
//! Who may do what: an `X-Twilio-Token` access token (verified on the server's clock, its service
//! must be the path's) or the account's REST credentials (HTTP Basic; Twilio documents both for
//! MCS). A token holder may read a media record only if they uploaded it or are a participant
//! of the conversation whose message it is attached to; account credentials read everything.
//!
//! Temporary URLs (`links.content_direct_temporary`) are absolute URLs on this server signed
//! with HMAC-SHA256 over (account, service, media SID, expiry) with a key that lives as long
//! as the router (a fresh random key per [`router`] call, i.e. per server, unless
//! [`MediaConfig::signing_key`] fixes one). They stop working [`MediaConfig::url_ttl_secs`]
//! after they were issued, on the server's clock, and with the server: a restarted server
//! rejects the old URLs, as the SDK expects short-lived URLs to go stale.
//!
//! Boundary: handlers authenticate, validate, and call the domain (`ChatService::store_media`
//! through `Account::write`, reads through `Account::read`); nothing here keeps media state.
mod auth;
mod error;
mod handlers;
pub(crate) mod multipart;
mod signing;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower_http::cors::{Any, CorsLayer};

use crate::server::AppState;
use signing::UrlSigner;

/// What the Configuration response advertises as `media_attachment_size_limit_in_mb`.
pub const DEFAULT_MAX_UPLOAD_MB: usize = 16;

/// The largest upload accepted by default: [`DEFAULT_MAX_UPLOAD_MB`] MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024;

/// Bytes of media one tenant (account) may store by default, over all its services: 256 MiB,
/// sixteen maximal uploads. Media is kept in memory for the life of the tenant (there is no
/// delete in MCS); without a quota, 20 uploads of 16 MiB with a development token added 330 MB
/// to the server for good. A test suite that needs more raises it (`rehearsal serve
/// --media-quota-mib`, [`MediaConfig::quota_bytes`]); a tenant reset or deletion frees it.
pub const DEFAULT_QUOTA_BYTES: u64 = 256 * 1024 * 1024;

/// How long a temporary content URL works by default (Twilio's are short-lived).
pub const DEFAULT_URL_TTL_SECS: u64 = 300;

/// The request header carrying the access token.
pub const TOKEN_HEADER: &str = "x-twilio-token";

/// Settings of the media service.
#[derive(Clone)]
pub struct MediaConfig {
    /// The largest media content accepted, in bytes (for multipart uploads: the file part).
    pub max_upload_bytes: usize,
    /// Bytes of media content one tenant may store, over all its services (uploads only: seeds
    /// and the control plane are trusted). Default [`DEFAULT_QUOTA_BYTES`].
    pub quota_bytes: u64,
    /// Lifetime of `links.content_direct_temporary`, in seconds.
    pub url_ttl_secs: u64,
    /// The HMAC key for temporary URLs; `None`: 32 random bytes drawn when the router is built.
    pub signing_key: Option<Vec<u8>>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            url_ttl_secs: DEFAULT_URL_TTL_SECS,
            signing_key: None,
        }
    }
}

/// Hand-written so that the key never reaches a log line.
impl std::fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaConfig")
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("quota_bytes", &self.quota_bytes)
            .field("url_ttl_secs", &self.url_ttl_secs)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The absolute `links.media_service` for the Configuration response.
pub fn media_service_url(base_url: &str, service_sid: &str) -> String {
    format!("{}/v1/Services/{service_sid}/Media", base_url.trim_end_matches('/'))
}

/// The absolute `links.media_set_service` for the Configuration response.
pub fn media_set_service_url(base_url: &str, service_sid: &str) -> String {
    format!("{}/v1/Services/{service_sid}/MediaSet", base_url.trim_end_matches('/'))
}

/// The media routes with the default settings and a fresh random URL-signing key.
pub fn router() -> Router<AppState> {
    router_with(MediaConfig::default())
}

/// The media routes with the given settings.
pub fn router_with(config: MediaConfig) -> Router<AppState> {
    let signer = match &config.signing_key {
        Some(key) => UrlSigner::new(key.clone()),
        None => UrlSigner::random(),
    };
    let mcs = Arc::new(Mcs { config, signer });
    Router::new()
        .route(
            "/v1/Services/{ChatServiceSid}/Media",
            post(handlers::upload).fallback(handlers::method_not_allowed),
        )
        .route(
            "/v1/Services/{ChatServiceSid}/Media/{MediaSid}",
            get(handlers::fetch).fallback(handlers::method_not_allowed),
        )
        .route(
            "/v1/Services/{ChatServiceSid}/Media/{MediaSid}/Content",
            get(handlers::content).fallback(handlers::method_not_allowed),
        )
        .route(
            "/v1/Services/{ChatServiceSid}/MediaSet",
            post(handlers::media_set).fallback(handlers::method_not_allowed),
        )
        .layer(Extension(mcs))
        .layer(cors())
}

/// Browsers call MCS from the app's origin: any origin, no cookies, the token header allowed.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([HeaderName::from_static(TOKEN_HEADER), header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}

/// What the handlers share: settings and the URL signer.
struct Mcs {
    config: MediaConfig,
    signer: UrlSigner,
}
