//! Read-only views the inspector needs beyond the rest of the control API: a tenant's data as
//! its own REST API shows it (without journaling or faults), its media records, the
//! near-misses, and the progress of `rehearsal serve --scenario`.
//!
//! `GET /tenants/{AC}/rest/{*path}` runs `GET /{path}` through the Conversations REST router
//! (and the MCS one) in process, as the tenant (its account SID and auth token), so that the
//! inspector shows exactly what a helper library would read — paging and rendering included —
//! without the inspector's own reads filling the journal, meeting armed HTTP faults, or
//! needing the tenant's secrets in the browser. Only `GET`, only under `/v1/`.
use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::http::{Error, existing};
use crate::server::AppState;

/// The most media records one `GET /tenants/{AC}/media` lists.
pub const MAX_MEDIA_LISTED: usize = 1000;

pub(super) async fn rest_view(
    State(st): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(q): RawQuery,
) -> Result<Response, Error> {
    let sid = params.get("account").cloned().unwrap_or_default();
    let path = params.get("path").cloned().unwrap_or_default();
    let account = st.domain.account(&sid).ok_or_else(|| Error::no_tenant(&sid))?;
    if !path.starts_with("v1/") {
        return Err(Error::invalid("the REST view reads paths under v1/ only, e.g. v1/Conversations"));
    }
    let uri = match q.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", account.sid, account.auth_token));
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::empty())
        .map_err(|e| Error::invalid(format!("not a path: {e}")))?;
    let router = crate::rest::router()
        .merge(crate::media::router_with(st.config.media.clone()))
        .with_state(st.clone());
    match router.oneshot(req).await {
        Ok(res) => Ok(res),
        Err(never) => match never {},
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MediaQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    conversation: Option<String>,
}

/// The tenant's media records (newest first, at most `limit` ≤ [`MAX_MEDIA_LISTED`]), without
/// their bytes.
pub(super) fn media(st: &AppState, sid: &str, q: MediaQuery) -> Result<Json<Value>, Error> {
    existing(st, sid)?;
    let limit = q.limit.unwrap_or(200).min(MAX_MEDIA_LISTED);
    let account = st.domain.account(sid).ok_or_else(|| Error::no_tenant(sid))?;
    let (list, total) = account.read(|s| {
        let mut list = Vec::new();
        let mut total = 0usize;
        for (_, svc) in s.services.iter() {
            for (_, m) in svc.media.iter().rev() {
                if q.conversation.as_ref().is_some_and(|c| m.conversation_sid.as_ref() != Some(c)) {
                    continue;
                }
                total += 1;
                if list.len() < limit {
                    list.push(json!({
                        "sid": m.sid, "service_sid": svc.sid, "content_type": m.content_type, "filename": m.filename,
                        "category": m.category, "author": m.author, "conversation_sid": m.conversation_sid,
                        "message_sid": m.message_sid, "size": m.size(), "date_created": m.date_created,
                    }));
                }
            }
        }
        (list, total)
    });
    Ok(Json(json!({ "media": list, "total": total })))
}

pub(super) async fn tenant_media(
    State(st): State<AppState>,
    super::http::Tenant(sid): super::http::Tenant,
    super::http::QueryOf(q): super::http::QueryOf<MediaQuery>,
) -> Result<Json<Value>, Error> {
    media(&st, &sid, q)
}

/// Media types the content route answers as themselves (the inspector previews them); any
/// other is sent as `application/octet-stream`, an attachment.
const PREVIEWABLE: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// `GET /tenants/{AC}/media/{ME}/content`: a media record's bytes, for the inspector's preview,
/// behind the control token like every control route (no new way in: the temporary URLs of MCS
/// stay the only unauthenticated one). Served so that nothing in them can run: `nosniff`, a
/// sandboxing CSP, and types other than a few raster images as a download.
pub(super) async fn media_content(State(st): State<AppState>, Path(params): Path<HashMap<String, String>>) -> Result<Response, Error> {
    let sid = params.get("account").cloned().unwrap_or_default();
    let media = params.get("media").cloned().unwrap_or_default();
    let account = st.domain.account(&sid).ok_or_else(|| Error::no_tenant(&sid))?;
    let found = account.read(|s| {
        s.services
            .iter()
            .find_map(|(_, svc)| svc.media.get(&media).map(|m| (m.content_type.clone(), m.bytes.clone())))
    });
    let Some((content_type, bytes)) = found else {
        return Err(Error::not_found(format!("no media {media} in tenant {sid}")));
    };
    let previewable = PREVIEWABLE.contains(&content_type.to_ascii_lowercase().as_str());
    let mut res = Response::new(Body::from(bytes));
    let h = res.headers_mut();
    let (ct, disposition) = if previewable {
        (content_type.to_ascii_lowercase(), "inline")
    } else {
        ("application/octet-stream".to_owned(), "attachment")
    };
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(&ct).unwrap_or(header::HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_DISPOSITION, header::HeaderValue::from_static(disposition));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

pub(super) async fn near_misses(State(st): State<AppState>) -> Json<Value> {
    Json(json!(st.control.near_misses.view(None)))
}

pub(super) async fn tenant_near_misses(
    State(st): State<AppState>,
    super::http::Tenant(sid): super::http::Tenant,
) -> Result<Json<Value>, Error> {
    existing(&st, &sid)?;
    Ok(Json(json!(st.control.near_misses.view(Some(&sid)))))
}

pub(super) async fn clear_near_misses(State(st): State<AppState>) -> StatusCode {
    st.control.near_misses.clear(None);
    StatusCode::NO_CONTENT
}

/// `{"scenario": null}` when the server plays none.
pub(super) async fn scenario(State(st): State<AppState>) -> Response {
    Json(json!({ "scenario": st.control.scenario.get() })).into_response()
}
