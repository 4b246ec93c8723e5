//! The MCS handlers and the media record they render.
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::auth::{Principal, authorize};
use super::error::McsError;
use super::{Mcs, multipart};
use crate::control::near_misses::{Reason, Unrouted};
use crate::domain::media::Media;
use crate::domain::service::StoreMedia;
use crate::server::AppState;

/// Room for the multipart envelope around a file part of the largest allowed size.
const MULTIPART_SLACK: usize = 64 * 1024;
/// Largest MediaSet request body.
const MAX_MEDIA_SET_BYTES: usize = 256 * 1024;
/// Most media SIDs in one MediaSet request.
const MAX_MEDIA_SET_ITEMS: usize = 100;
/// Longest `Content-Type` and `Filename` accepted.
const MAX_CONTENT_TYPE_LEN: usize = 255;
const MAX_FILENAME_LEN: usize = 1024;
/// The MCS categories (`Category` query parameter).
const CATEGORIES: [&str; 3] = ["media", "body", "history"];
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

impl Mcs {
    /// `links.content_direct_temporary`: valid for `url_ttl_secs` from now on the server clock.
    fn temporary_url(&self, st: &AppState, account: &str, service: &str, media: &str) -> String {
        let ttl = i64::try_from(self.config.url_ttl_secs).unwrap_or(i64::MAX);
        let now = st
            .domain
            .account(account)
            .map_or_else(|| st.domain.clock().now(), |a| a.clock().now());
        let expires = now.unix_secs().saturating_add(ttl);
        let signature = self.signer.sign(account, service, media, expires);
        format!(
            "{}/v1/Services/{service}/Media/{media}/Content?Expires={expires}&Signature={signature}",
            st.base_url
        )
    }

    /// The media record, as MCS renders it (keys in Twilio's order).
    fn record(&self, st: &AppState, account: &str, service: &str, m: &Media) -> Value {
        let path = format!("/v1/Services/{service}/Media/{}", m.sid);
        json!({
            "sid": m.sid,
            "service_sid": service,
            "channel_sid": m.conversation_sid,
            "message_sid": m.message_sid,
            "date_created": m.date_created.iso_millis(),
            "date_upload_updated": m.date_created.iso_millis(),
            "date_updated": m.date_updated.iso_millis(),
            "size": m.size(),
            "content_type": m.content_type,
            "filename": m.filename,
            "category": m.category,
            "author": m.author,
            "is_multipart_upstream": false,
            "url": path,
            "links": {
                "content": format!("{path}/Content"),
                "content_direct_temporary": self.temporary_url(st, account, service, &m.sid),
            },
        })
    }
}

/// Looks a media record up in the principal's account: the record and whether they may read it.
fn lookup(who: &Principal, service: &str, media_sid: &str) -> Option<(Media, bool)> {
    who.account.read(|s| {
        let svc = s.services.get_seq(s.services.seq_of_sid(service)?)?;
        let m = svc.media.get_seq(svc.media.seq_of_sid(media_sid)?)?;
        Some((m.clone(), who.may_read(svc, m)))
    })
}

/// A readable media record, or 404 / 403.
fn readable(who: &Principal, service: &str, media_sid: &str, path: &str) -> Result<Media, McsError> {
    match lookup(who, service, media_sid) {
        Some((m, true)) => Ok(m),
        Some((_, false)) => Err(McsError::not_a_participant(media_sid)),
        None => Err(McsError::not_found(path)),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// `POST /v1/Services/{ChatServiceSid}/Media?Category=…&Filename=…`
pub(super) async fn upload(
    State(st): State<AppState>,
    Extension(mcs): Extension<Arc<Mcs>>,
    service: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, McsError> {
    let limit = mcs.config.max_upload_bytes;
    let plan = match plan_upload(&st, service, &uri, &headers) {
        Ok(plan) => plan,
        Err(e) => {
            // Read what the client sends anyway (up to a bound), so that it sees the answer
            // instead of a connection reset while it is still writing.
            discard(body, drain_cap(limit)).await;
            return Err(e);
        }
    };
    let body_limit = if plan.boundary.is_some() {
        limit.saturating_add(MULTIPART_SLACK)
    } else {
        limit
    };
    let quota = mcs.config.quota_bytes;
    let account = plan.principal.account.clone();
    // The quota is reserved before the body is read, when its length is declared (the content is
    // at most that long), so that uploads in progress count as well: concurrent uploads can
    // neither pass the quota together nor buffer more than it. Released if the upload fails.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n <= body_limit as u64);
    let mut reservation = match declared {
        Some(n) => match account.reserve_media(n.min(limit as u64), quota) {
            Ok(r) => Some(r),
            Err(used) => {
                discard(body, drain_cap(limit)).await;
                return Err(over_quota(&account.sid, quota, used, n));
            }
        },
        None => None,
    };
    let raw = read_body(body, &headers, body_limit).await.map_err(|e| match e {
        BodyError::TooLarge => McsError::too_large(limit),
        BodyError::Unreadable => McsError::invalid("The request body could not be read"),
    })?;
    let (bytes, content_type, filename) = match &plan.boundary {
        None => (raw, plan.content_type, plan.filename),
        Some(boundary) => {
            let file = multipart::single_file(&raw, boundary).map_err(McsError::invalid)?;
            let content_type = match file.content_type {
                Some(ct) => check_content_type(&ct)?,
                None => DEFAULT_CONTENT_TYPE.to_owned(),
            };
            let filename = match plan.filename {
                Some(f) => Some(f),
                None => file.filename.map(|f| check_filename(&f)).transpose()?,
            };
            (file.data, content_type, filename)
        }
    };
    if bytes.len() > limit {
        return Err(McsError::too_large(limit));
    }
    if bytes.is_empty() {
        return Err(McsError::invalid("The media content is empty"));
    }
    let who = plan.principal;
    let size = bytes.len() as u64;
    let mut reservation = match reservation.take() {
        Some(mut r) if r.bytes() >= size => {
            r.shrink_to(size);
            r
        }
        held => {
            drop(held);
            account
                .reserve_media(size, quota)
                .map_err(|used| over_quota(&account.sid, quota, used, size))?
        }
    };
    // Stored and settled under the same lock: it counts once, as stored, from here on.
    let store = StoreMedia {
        bytes,
        content_type,
        filename,
        category: plan.category,
        author: Some(who.author()),
        reservation: Some(&mut reservation),
    };
    let media = who
        .account
        .apply(&who.cause(), Some(&plan.service), store)
        .map_err(|e| McsError::from(crate::rest::ApiError::from(e)))?;
    Ok(json_response(
        StatusCode::CREATED,
        mcs.record(&st, &who.account.sid, &plan.service, &media),
    ))
}

/// The answer to an upload that would take the tenant past its media quota (`used`: stored
/// plus held by uploads in progress).
fn over_quota(account: &str, quota: u64, used: u64, size: u64) -> McsError {
    tracing::info!(account, used, quota, size, "media upload over the tenant's quota refused");
    McsError::quota_exceeded(quota, used, usize::try_from(size).unwrap_or(usize::MAX))
}

/// Everything about an upload that can be checked before reading the body.
struct UploadPlan {
    principal: Principal,
    service: String,
    category: String,
    filename: Option<String>,
    /// For raw uploads; multipart uploads take the part's.
    content_type: String,
    /// `Some` for `multipart/form-data`.
    boundary: Option<String>,
}

fn plan_upload(
    st: &AppState,
    service: Result<Path<String>, PathRejection>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<UploadPlan, McsError> {
    let Path(service) = service.map_err(|_| McsError::not_found(uri.path()))?;
    let principal = authorize(st, headers, &service, uri.path())?;
    let query = query_pairs(uri)?;
    let category = match last(&query, "Category") {
        None | Some("") => "media".to_owned(),
        Some(c) if CATEGORIES.contains(&c) => c.to_owned(),
        Some(c) => {
            return Err(McsError::invalid(format!(
                "Category must be one of media, body, history, not {c:?}"
            )));
        }
    };
    let filename = match last(&query, "Filename") {
        None | Some("") => None,
        Some(f) => Some(check_filename(f)?),
    };
    let header_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| McsError::bad_content_type("The Content-Type header is not visible ASCII"))?
                .trim(),
        )
        .filter(|v| !v.is_empty()),
    };
    let (content_type, boundary) = match header_type {
        None => (DEFAULT_CONTENT_TYPE.to_owned(), None),
        Some(ct) => match multipart::form_data_boundary(ct) {
            Some(Ok(boundary)) => (DEFAULT_CONTENT_TYPE.to_owned(), Some(boundary)),
            Some(Err(why)) => return Err(McsError::invalid(why)),
            None => (check_content_type(ct)?, None),
        },
    };
    Ok(UploadPlan {
        principal,
        service,
        category,
        filename,
        content_type,
        boundary,
    })
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, McsError> {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).map_err(|_| McsError::invalid("The query string is not valid"))
}

/// The last value of a query parameter (repeated parameters: the last one wins).
fn last<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `type/subtype[; parameters]`, tokens as HTTP defines them.
fn check_content_type(ct: &str) -> Result<String, McsError> {
    let ct = ct.trim();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    let valid = ct.len() <= MAX_CONTENT_TYPE_LEN
        && ct.bytes().all(|c| c == b'\t' || (b' '..=b'~').contains(&c))
        && essence.split_once('/').is_some_and(|(t, s)| token(t) && token(s));
    if valid {
        Ok(ct.to_owned())
    } else {
        Err(McsError::bad_content_type(format!("The media content type {ct:?} is not valid")))
    }
}

fn check_filename(f: &str) -> Result<String, McsError> {
    if f.len() > MAX_FILENAME_LEN {
        return Err(McsError::invalid(format!(
            "Filename is too long: {} bytes, at most {MAX_FILENAME_LEN}",
            f.len()
        )));
    }
    if f.chars().any(char::is_control) {
        return Err(McsError::invalid("Filename must not contain control characters"));
    }
    Ok(f.to_owned())
}

/// `GET /v1/Services/{ChatServiceSid}/Media/{MediaSid}`
pub(super) async fn fetch(
    State(st): State<AppState>,
    Extension(mcs): Extension<Arc<Mcs>>,
    params: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, McsError> {
    let Path((service, media_sid)) = params.map_err(|_| McsError::not_found(uri.path()))?;
    let who = authorize(&st, &headers, &service, uri.path())?;
    let media = readable(&who, &service, &media_sid, uri.path())?;
    Ok(json_response(StatusCode::OK, mcs.record(&st, &who.account.sid, &service, &media)))
}

/// `GET /v1/Services/{ChatServiceSid}/Media/{MediaSid}/Content`: with `Expires` and `Signature`
/// (a temporary URL: no credentials, headers ignored), or with `X-Twilio-Token` / HTTP Basic.
pub(super) async fn content(
    State(st): State<AppState>,
    Extension(mcs): Extension<Arc<Mcs>>,
    params: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, McsError> {
    let Path((service, media_sid)) = params.map_err(|_| McsError::not_found(uri.path()))?;
    let query = query_pairs(&uri)?;
    let (expires, signature) = (last(&query, "Expires"), last(&query, "Signature"));
    let (media, signed_for) = if expires.is_some() || signature.is_some() {
        let (media, account) = signed_media(&st, &mcs, &service, &media_sid, expires, signature);
        match media {
            Ok(media) => (media, account),
            Err(e) => {
                // An expired URL was still signed for its tenant: its refusal is the tenant's.
                let mut res = e.into_response();
                if let Some(account) = account {
                    res.extensions_mut().insert(crate::control::middleware::SignedFor(account));
                }
                return Ok(res);
            }
        }
    } else {
        let who = authorize(&st, &headers, &service, uri.path())?;
        (readable(&who, &service, &media_sid, uri.path())?, None)
    };
    let content_type = HeaderValue::from_str(&media.content_type).unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    let mut res = Response::new(Body::from(media.bytes.clone()));
    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
    res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(media.size()));
    if let Some(account) = signed_for {
        // Attributes the download (journal, faults) to the tenant the URL was signed for.
        res.extensions_mut().insert(crate::control::middleware::SignedFor(account));
    }
    Ok(res)
}

/// The media a temporary URL names, if its signature is ours and it has not expired; and the
/// account the URL was signed for, if its signature is ours.
fn signed_media(
    st: &AppState,
    mcs: &Mcs,
    service: &str,
    media_sid: &str,
    expires: Option<&str>,
    signature: Option<&str>,
) -> (Result<Media, McsError>, Option<String>) {
    let invalid = || McsError::forbidden("The temporary media URL is not valid");
    let (Some(expires), Some(signature)) = (expires, signature) else {
        return (Err(invalid()), None);
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return (Err(invalid()), None);
    };
    // The URL does not name the account: find the one whose media this is and whose signature
    // it carries (service SIDs can be chosen by seeds, so more than one account may match).
    let media = st
        .domain
        .accounts()
        .into_iter()
        .filter(|a| mcs.signer.verify(&a.sid, service, media_sid, expires, signature))
        .find_map(|a| {
            a.read(|s| {
                let svc = s.services.get_seq(s.services.seq_of_sid(service)?)?;
                svc.media.get_seq(svc.media.seq_of_sid(media_sid)?).cloned()
            })
            .map(|m| (m, a.clock().now(), a.sid.clone()))
        });
    let Some((media, now, account)) = media else {
        return (Err(invalid()), None);
    };
    if expires <= now.unix_secs() {
        return (Err(McsError::forbidden("The temporary media URL has expired")), Some(account));
    }
    (Ok(media), Some(account))
}

/// `POST /v1/Services/{ChatServiceSid}/MediaSet` with `{"command":"get","list":[{"media_sid":…}]}`
pub(super) async fn media_set(
    State(st): State<AppState>,
    Extension(mcs): Extension<Arc<Mcs>>,
    service: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, McsError> {
    let checked = service.map_err(|_| McsError::not_found(uri.path())).and_then(|Path(service)| {
        let who = authorize(&st, &headers, &service, uri.path())?;
        Ok((service, who))
    });
    let (service, who) = match checked {
        Ok(v) => v,
        Err(e) => {
            discard(body, drain_cap(MAX_MEDIA_SET_BYTES)).await;
            return Err(e);
        }
    };
    let raw = read_body(body, &headers, MAX_MEDIA_SET_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge => McsError::from(crate::rest::ApiError::new(
            413,
            20001,
            format!("The request body is larger than {MAX_MEDIA_SET_BYTES} bytes"),
        )),
        BodyError::Unreadable => McsError::invalid("The request body could not be read"),
    })?;
    let sids = media_set_sids(&raw)?;
    let items: Vec<Value> = sids
        .iter()
        .map(|sid| match lookup(&who, &service, sid) {
            Some((m, true)) => json!({"code": 200, "media_record": mcs.record(&st, &who.account.sid, &service, &m)}),
            Some((_, false)) => json!({"code": 403, "media_record": {"sid": sid}}),
            None => json!({"code": 404, "media_record": {"sid": sid}}),
        })
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(items)))
}

/// The media SIDs of a MediaSet `get` command.
fn media_set_sids(raw: &[u8]) -> Result<Vec<String>, McsError> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| McsError::invalid(format!("The request body is not valid JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(McsError::invalid("The request body must be a JSON object"));
    };
    match obj.get("command").and_then(Value::as_str) {
        Some("get") => {}
        Some(other) => return Err(McsError::invalid(format!("Unknown command {other:?}: only \"get\" is supported"))),
        None => return Err(McsError::invalid("command is required")),
    }
    let Some(list) = obj.get("list").and_then(Value::as_array) else {
        return Err(McsError::invalid("list must be an array of {\"media_sid\": …}"));
    };
    if list.len() > MAX_MEDIA_SET_ITEMS {
        return Err(McsError::invalid(format!(
            "list has {} items, at most {MAX_MEDIA_SET_ITEMS} are allowed",
            list.len()
        )));
    }
    list.iter()
        .map(|item| {
            item.get("media_sid")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| McsError::invalid("every list item must be {\"media_sid\": \"ME…\"}"))
        })
        .collect()
}

/// Any other method on a media route.
pub(super) async fn method_not_allowed() -> axum::response::Response {
    let mut res = McsError::method_not_allowed().into_response();
    res.extensions_mut().insert(Unrouted(Reason::MethodNotAllowed));
    res
}

enum BodyError {
    TooLarge,
    Unreadable,
}

/// How much of an over-limit or rejected body is read (and dropped) before answering.
fn drain_cap(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(1024 * 1024)
}

/// Reads the body, at most `limit` bytes. A body over the limit is read on (and dropped) up to
/// [`drain_cap`] so that the client gets to read the 413; one whose `Content-Length` already
/// says more than that is refused without reading.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    let cap = drain_cap(limit);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            buf = BytesMut::new();
            if total > cap {
                return Err(BodyError::TooLarge);
            }
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    if total > limit {
        Err(BodyError::TooLarge)
    } else {
        Ok(buf.freeze())
    }
}

/// Reads and drops up to `cap` bytes of a body.
async fn discard(body: Body, cap: usize) {
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        total = total.saturating_add(chunk.len());
        if total > cap {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            "image/png",
            "text/plain;charset=UTF-8",
            "application/vnd.api+json; q=\"a b\"",
            " image/jpeg ",
        ] {
            assert!(check_content_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "png",
            "image/",
            "/png",
            "image /png",
            "image/png\u{1}",
            "im(age/png",
            &format!("a/{}", "b".repeat(300)),
        ] {
            assert!(check_content_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filenames() {
        assert_eq!(check_filename("fish – 🐟.png").unwrap(), "fish – 🐟.png");
        assert!(check_filename("a\nb").is_err());
        assert!(check_filename(&"x".repeat(MAX_FILENAME_LEN + 1)).is_err());
    }

    #[test]
    fn media_set_bodies() {
        assert_eq!(
            media_set_sids(br#"{"command":"get","list":[{"media_sid":"ME1"},{"media_sid":"ME2"}]}"#).unwrap(),
            ["ME1", "ME2"]
        );
        assert!(media_set_sids(br#"{"command":"get","list":[]}"#).unwrap().is_empty());
        for bad in [
            &br#"{"command":"put","list":[]}"#[..],
            br#"{"list":[]}"#,
            br#"{"command":"get"}"#,
            br#"{"command":"get","list":[{"sid":"ME1"}]}"#,
            b"[]",
            b"{",
            b"",
        ] {
            assert!(media_set_sids(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let many = format!(
            r#"{{"command":"get","list":[{}]}}"#,
            vec![r#"{"media_sid":"ME"}"#; MAX_MEDIA_SET_ITEMS + 1].join(",")
        );
        assert!(media_set_sids(many.as_bytes()).is_err());
    }
}
