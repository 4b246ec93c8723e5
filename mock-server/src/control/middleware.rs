//! The middleware around the REST and media routes: applies armed HTTP faults and journals every
//! request.
//!
//! Faults come first, before the handler authorises anything, as a real outage would: a `Fail` rule answers with
//! Twilio's error body (`code`, `message`, `more_info`, `status`) without reaching the handler; a
//! `Delay` rule holds the request for its duration (real time: it simulates the network, not the
//! server clock), then lets it through. Each applied fault is journaled as `fault`.
//!
//! Every request, faulted or not, is then journaled as `rest` (or `media` for MCS routes):
//! method, path, query, status and duration, under the account its credentials prove (HTTP
//! Basic with the account's auth token or an API key secret, or an `X-Twilio-Token` signed by
//! one of its keys — expired or not; a temporary media URL under the account it was signed for)
//! and, for a token, its identity. Media entries also carry the sizes and content types that
//! went each way (`request`, `response`: `{content_type, size}` as the headers and body say), so
//! that uploads and downloads can be judged without the bytes.
//!
//! Only callers with an account's credentials touch that account's faults and journal: a
//! request that merely names an account (`AC…:wrong`, a forged token) is journaled under no
//! account and meets no tenant's faults, so one tenant cannot use up or read about another's.
//!
//! Answers of the router's fallbacks (no route, method not allowed: marked
//! [`Unrouted`]) are near-misses: counted in `Control::near_misses` and journaled with
//! `detail.near_miss`.
//!
//! Boundary: the control plane's own routes and the twilsock WebSocket are not wrapped; the
//! requests tunnelled over twilsock meet the same rules in `Realtime::upstream`.
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::faults::HttpFault;
use super::near_misses::{Miss, Unrouted};
use crate::auth::{identity, token};
use crate::journal::{Kind, Observation};
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
    let caller = caller_of(&st, req.headers());
    let kind = if is_media(&path) { Kind::Media } else { Kind::Rest };
    let request_body = (kind == Kind::Media).then(|| body_of(req.headers(), None));
    // A CORS preflight is the browser's, not the application's: it never consumes a fault.
    let preflight = method == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let from_browser = req.headers().contains_key(header::ORIGIN);

    let (account, identity, applied) = match caller {
        Some(Caller { account, identity }) => {
            let fault = if preflight {
                None
            } else {
                st.control.faults.take_http(Some(&account), method.as_str(), &path)
            };
            let applied = apply(&st, fault, &account, &method, &path, kind, from_browser, Before(req, next)).await;
            (Some(account), identity, applied)
        }
        None => {
            // No credentials of any account: the request belongs to no tenant, unless the
            // handler served a temporary media URL signed for one (a download: no side effect,
            // so the tenant's fault can be applied to its answer).
            let response = next.run(req).await;
            match response.extensions().get::<SignedFor>().map(|s| s.0.clone()) {
                Some(account) if !preflight => {
                    let fault = st.control.faults.take_http(Some(&account), method.as_str(), &path);
                    let applied = apply(&st, fault, &account, &method, &path, kind, from_browser, After(response)).await;
                    (Some(account), None, applied)
                }
                _ => (None, None, Applied { response, fault: None }),
            }
        }
    };
    let Applied {
        response,
        fault: fault_detail,
    } = applied;

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
    // A fallback's answer (no route, or not this method): a near-miss. A faulted request never
    // reached the router, so it is not one.
    if let Some(Unrouted(reason)) = response.extensions().get::<Unrouted>().copied() {
        detail["near_miss"] = json!(reason);
        st.control.near_misses.record(Miss {
            transport: if kind == Kind::Media { "media" } else { "rest" },
            account: account.as_deref(),
            method: method.as_str(),
            path: &path,
            reason,
            status,
            at,
            seq: st.control.journal_mark() + 1,
        });
    }
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

/// Set by the media handlers on the answer to a temporary URL whose signature they verified:
/// the account the URL was signed for.
#[derive(Debug, Clone)]
pub(crate) struct SignedFor(pub String);

/// Who a request's credentials prove it comes from.
struct Caller {
    account: String,
    /// The identity of an access token.
    identity: Option<String>,
}

/// Where a fault meets the request: before the handler runs, or (for requests only the
/// handler could attribute) on the answer it gave.
enum Stage {
    Before(Request, Next),
    After(Response),
}
use Stage::{After, Before};

struct Applied {
    response: Response,
    /// `{rule, fail | delay_ms}` when a fault was applied.
    fault: Option<serde_json::Value>,
}

/// Applies `fault` (if any) at `stage`, journaling it under `account`.
#[allow(clippy::too_many_arguments)]
async fn apply(
    st: &AppState,
    fault: Option<(u64, HttpFault)>,
    account: &str,
    method: &Method,
    path: &str,
    kind: Kind,
    from_browser: bool,
    stage: Stage,
) -> Applied {
    let run = |stage: Stage| async move {
        match stage {
            Before(req, next) => next.run(req).await,
            After(response) => response,
        }
    };
    match fault {
        Some((rule, HttpFault::Fail { status, code, message })) => {
            st.control.record(
                Kind::Fault,
                Some(account),
                format!("{method} {path} failed with {status}/{code}"),
                json!({ "rule": rule, "method": method.as_str(), "path": path, "status": status, "code": code }),
            );
            let api = ApiError::new(status, code, message.unwrap_or_else(|| DEFAULT_FAULT_MESSAGE.to_owned()));
            if let Before(req, _) = stage {
                // Read what the client sends anyway (up to a bound), so that an uploader sees
                // the answer instead of a connection reset while it is still writing.
                discard(req.into_body(), DRAIN_CAP).await;
            }
            Applied {
                response: failure(kind, api, from_browser),
                fault: Some(json!({ "rule": rule, "fail": { "status": status, "code": code } })),
            }
        }
        Some((rule, HttpFault::Delay { by })) => {
            let ms = by.as_millis() as u64;
            st.control.record(
                Kind::Fault,
                Some(account),
                format!("{method} {path} delayed by {ms} ms"),
                json!({ "rule": rule, "method": method.as_str(), "path": path, "delay_ms": ms }),
            );
            // Real time on purpose: a delay simulates the network; no lock is held here.
            tokio::time::sleep(by).await;
            Applied {
                response: run(stage).await,
                fault: Some(json!({ "rule": rule, "delay_ms": ms })),
            }
        }
        None => Applied {
            response: run(stage).await,
            fault: None,
        },
    }
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

/// The account (and, for a token, the identity) a request's credentials prove: HTTP Basic
/// with the account's auth token or one of its API keys, or an `X-Twilio-Token` signed by one of
/// the account's keys. A token that is signed but refused for a later reason (expired, not yet
/// valid, odd grants) still proves its holder had the key, so its calls stay attributed, which
/// is what a test of token expiry wants to see. Naming an account without its secret proves
/// nothing: such a request consumes no tenant's faults and lands in no tenant's journal.
fn caller_of(st: &AppState, headers: &HeaderMap) -> Option<Caller> {
    // The order MCS authorises in: the token header wins when present.
    let Some(t) = headers.get(TOKEN_HEADER) else {
        return crate::rest::scope::authenticate(st, headers).ok().map(|a| Caller {
            account: a.sid.clone(),
            identity: None,
        });
    };
    let t = t.to_str().ok()?.trim();
    match identity::verify(&st.domain, t) {
        Ok(caller) => Some(Caller {
            account: caller.account.sid.clone(),
            identity: Some(caller.identity().to_owned()),
        }),
        Err(e) if e.follows_signature() => Some(Caller {
            account: token::peek(t).ok()?.account_sid,
            identity: token::peek_identity(t),
        }),
        Err(_) => None,
    }
}

/// `{content_type, size}` of a body as its headers say (`size`: `Content-Length`, else `exact`).
fn body_of(headers: &HeaderMap, exact: Option<u64>) -> serde_json::Value {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = text(header::CONTENT_TYPE).map(|t| t.split(';').next().unwrap_or(t).trim().to_owned());
    let size = text(header::CONTENT_LENGTH).and_then(|l| l.trim().parse::<u64>().ok()).or(exact);
    json!({ "content_type": content_type, "size": size })
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
