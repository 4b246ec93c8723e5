//! The middleware around the REST and media routes: applies armed HTTP faults and journals every
//! request.
//!
//! Faults come first, before authentication, as a real outage would: a `Fail` rule answers with
//! Twilio's error body (`code`, `message`, `more_info`, `status`) without reaching the handler; a
//! `Delay` rule holds the request for its duration (real time: it simulates the network, not the
//! server clock), then lets it through. Each applied fault is journaled as `fault`.
//!
//! Every request, faulted or not, is then journaled as `rest` (or `media` for MCS routes):
//! method, path, query, status and duration, under the account its credentials name (HTTP Basic
//! with an account SID or API key SID, or an `X-Twilio-Token`'s `sub`; a media request without
//! credentials — a temporary URL — under the account of the service in its path) and, for a
//! token, the identity it claims. Media entries also carry the sizes and content types that went each way
//! (`request`, `response`: `{content_type, size}` as the headers and body say), so that uploads
//! and downloads can be judged without the bytes. Credentials are not
//! verified for this, only looked up: a request with a wrong secret is still attributed to the
//! account it claims, if that account exists, which is what a test wants to see.
//!
//! Boundary: the control plane's own routes and the twilsock WebSocket are not wrapped; the
//! requests tunnelled over twilsock meet the same rules in `Realtime::upstream`.
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::json;

use super::faults::HttpFault;
use super::journal::{Kind, Observation};
use crate::auth::token;
use crate::media::TOKEN_HEADER;
use crate::rest::ApiError;
use crate::server::AppState;

/// What a failure rule answers when it gives no message of its own.
pub(crate) const DEFAULT_FAULT_MESSAGE: &str = "Service unavailable (fault injected by the Rehearsal control plane)";

/// How much of a failed request's body is read and thrown away: the media upload limit and
/// some room for multipart framing.
const DRAIN_CAP: usize = crate::media::DEFAULT_MAX_UPLOAD_BYTES + 64 * 1024;

/// `axum::middleware::from_fn_with_state(state, observe)`.
pub async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let account = account_of(&st, req.headers()).or_else(|| media_service_account(&st, &path));
    let identity = identity_of(req.headers());
    let kind = if is_media(&path) { Kind::Media } else { Kind::Rest };
    let request_body = (kind == Kind::Media).then(|| body_of(req.headers(), None));
    // A CORS preflight is the browser's, not the application's: it never consumes a fault.
    let preflight = method == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let fault = if preflight {
        None
    } else {
        st.control.faults.take_http(account.as_deref(), method.as_str(), &path)
    };

    let mut fault_detail = None;
    let response = match fault {
        Some((rule, HttpFault::Fail { status, code, message })) => {
            st.control.record(
                Kind::Fault,
                account.as_deref(),
                format!("{method} {path} failed with {status}/{code}"),
                json!({ "rule": rule, "method": method.as_str(), "path": path, "status": status, "code": code }),
            );
            fault_detail = Some(json!({ "rule": rule, "fail": { "status": status, "code": code } }));
            let api = ApiError::new(status, code, message.unwrap_or_else(|| DEFAULT_FAULT_MESSAGE.to_owned()));
            let from_browser = req.headers().contains_key(header::ORIGIN);
            // Read what the client sends anyway (up to a bound), so that an uploader sees the
            // answer instead of a connection reset while it is still writing.
            discard(req.into_body(), DRAIN_CAP).await;
            failure(kind, api, from_browser)
        }
        Some((rule, HttpFault::Delay { by })) => {
            let ms = by.as_millis() as u64;
            st.control.record(
                Kind::Fault,
                account.as_deref(),
                format!("{method} {path} delayed by {ms} ms"),
                json!({ "rule": rule, "method": method.as_str(), "path": path, "delay_ms": ms }),
            );
            fault_detail = Some(json!({ "rule": rule, "delay_ms": ms }));
            // Real time on purpose: a delay simulates the network; no lock is held here.
            tokio::time::sleep(by).await;
            next.run(req).await
        }
        None => next.run(req).await,
    };

    let status = response.status().as_u16();
    let mut detail = json!({
        "method": method.as_str(),
        "path": path,
        "status": status,
        "duration_ms": started.elapsed().as_millis() as u64,
    });
    if let Some(q) = query {
        detail["query"] = q.into();
    }
    if let Some(f) = fault_detail {
        detail["fault"] = f;
    }
    if let Some(request_body) = request_body {
        detail["request"] = request_body;
        detail["response"] = body_of(response.headers(), axum::body::HttpBody::size_hint(response.body()).exact());
    }
    let at = account
        .as_deref()
        .and_then(|a| st.domain.account(a))
        .map_or_else(|| st.domain.clock().now(), |a| a.clock().now());
    st.control.journal.record(Observation {
        at,
        kind,
        account,
        session: None,
        identity,
        summary: format!("{method} {path} -> {status}"),
        detail,
    });
    response
}

/// Twilio's error body for a failure rule. MCS answers never challenge for Basic credentials
/// (browsers would pop up a login dialog) and carry CORS headers for browser callers, so that
/// the application sees the status rather than a CORS error.
fn failure(kind: Kind, api: ApiError, from_browser: bool) -> Response {
    let mut res = match kind {
        Kind::Media => {
            let status = StatusCode::from_u16(api.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, axum::Json(api.body())).into_response()
        }
        _ => api.into_response(),
    };
    if from_browser {
        res.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    res
}

/// Reads and drops up to `cap` bytes of `body`; stops at the first error.
async fn discard(body: Body, cap: usize) {
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > cap {
            return;
        }
    }
}

/// MCS routes: `/v1/Services/{sid}/Media…` and `/v1/Services/{sid}/MediaSet`.
fn is_media(path: &str) -> bool {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    matches!(
        (segs.next(), segs.next(), segs.next(), segs.next()),
        (Some("v1"), Some("Services"), Some(_), Some("Media" | "MediaSet"))
    )
}

/// The existing account a request's credentials name, unverified.
fn account_of(st: &AppState, headers: &HeaderMap) -> Option<String> {
    let claimed = basic_user(headers)
        .and_then(|user| {
            if user.starts_with("SK") {
                st.domain.account_by_key(&user).map(|a| a.sid.clone())
            } else {
                Some(user)
            }
        })
        .or_else(|| {
            let t = headers.get(TOKEN_HEADER)?.to_str().ok()?;
            token::peek(t.trim()).ok().map(|u| u.account_sid)
        })?;
    st.domain.account(&claimed).map(|a| a.sid.clone())
}

/// The account owning the service of a media path (`/v1/Services/{IS}/Media…`): temporary media
/// URLs carry no credentials, but their downloads belong to a tenant all the same.
fn media_service_account(st: &AppState, path: &str) -> Option<String> {
    if !is_media(path) {
        return None;
    }
    let service = path.split('/').filter(|s| !s.is_empty()).nth(2)?;
    st.domain
        .accounts()
        .into_iter()
        .find(|a| a.read(|s| s.services.get(service).is_some()))
        .map(|a| a.sid.clone())
}

/// The identity an `X-Twilio-Token` claims (unverified, like the account above).
fn identity_of(headers: &HeaderMap) -> Option<String> {
    let t = headers.get(TOKEN_HEADER)?.to_str().ok()?;
    token::peek_identity(t.trim())
}

/// `{content_type, size}` of a body as its headers say (`size`: `Content-Length`, else `exact`).
fn body_of(headers: &HeaderMap, exact: Option<u64>) -> serde_json::Value {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = text(header::CONTENT_TYPE).map(|t| t.split(';').next().unwrap_or(t).trim().to_owned());
    let size = text(header::CONTENT_LENGTH).and_then(|l| l.trim().parse::<u64>().ok()).or(exact);
    json!({ "content_type": content_type, "size": size })
}

fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(user, _)| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_described_by_their_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(body_of(&h, Some(3)), json!({"content_type": null, "size": 3}));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png; charset=binary"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1024"));
        assert_eq!(body_of(&h, Some(3)), json!({"content_type": "image/png", "size": 1024}));
        assert_eq!(identity_of(&h), None);
    }

    #[test]
    fn media_routes_are_told_apart() {
        assert!(is_media("/v1/Services/IS1/Media"));
        assert!(is_media("/v1/Services/IS1/Media/ME1/Content"));
        assert!(is_media("/v1/Services/IS1/MediaSet"));
        assert!(!is_media("/v1/Services/IS1/Conversations"));
        assert!(!is_media("/v1/Conversations"));
    }
}
