//! Twilio's request parameters: form-encoded bodies (`FriendlyName=…&MessagingBinding.Address=…`)
//! and query strings, read into one ordered multimap. Parse failures become Twilio error bodies.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use super::error::ApiError;
use crate::clock::Millis;

#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(form_urlencoded_pairs(raw))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn date(&self, name: &'static str) -> Result<Option<Millis>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => Millis::parse_rfc3339(v)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("{name} must be an ISO 8601 date-time; got {v:?}"))),
        }
    }

    pub fn u64(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("{name} must be a non-negative integer; got {v:?}"))),
        }
    }

    pub fn bool(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(format!("{name} must be true or false; got {v:?}"))),
        }
    }
}

fn form_urlencoded_pairs(raw: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw).unwrap_or_default()
}

/// The request body's form parameters (empty for an empty body).
pub struct Form(pub Params);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form_or_empty = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(400, 20001, format!("could not read the request body: {e}")))?;
        if !is_form_or_empty && !bytes.is_empty() {
            return Err(ApiError::new(
                400,
                20001,
                "request bodies must be application/x-www-form-urlencoded",
            ));
        }
        if !bytes.is_empty() && serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).is_err() {
            return Err(ApiError::invalid("the request body is not valid form encoding"));
        }
        Ok(Form(Params::parse(&bytes)))
    }
}

/// The query string's parameters.
pub struct Query(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        if serde_urlencoded::from_str::<Vec<(String, String)>>(q).is_err() {
            return Err(ApiError::invalid("the query string is not valid URL encoding"));
        }
        Ok(Query(Params::parse(q.as_bytes())))
    }
}

/// Whether the caller asked for webhooks on a REST action (`X-Twilio-Webhook-Enabled: true`).
pub fn webhooks_enabled(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-twilio-webhook-enabled")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The matched path parameters, decoded; an undecodable segment is Twilio's 404 for the path.
pub struct PathParams(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(p)) => Ok(PathParams(p)),
            Err(_) => Err(ApiError::not_found(parts.uri.path())),
        }
    }
}
