//! The control plane's error answers and the extractors every route shares.
use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, RawQuery, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::control::ControlError;
use crate::control::actors::ActError;
use crate::domain::CreateAccountError;
use crate::domain::seed::SeedError;
use crate::domain::snapshot::ImportError;
use crate::server::AppState;

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
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Error {
        Error {
            status,
            code,
            message: message.into(),
            twilio_code: None,
        }
    }

    pub(in crate::control) fn bad_body(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub(in crate::control) fn invalid(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(in crate::control) fn not_found(message: impl Into<String>) -> Error {
        Error::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(in crate::control) fn no_tenant(sid: &str) -> Error {
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

pub(super) type Answer<T = Json<Value>> = Result<T, Error>;

/// A JSON body, whatever the `Content-Type` says (`curl -d` sends a form type); an empty body
/// reads as `{}`. Rejections carry serde's message.
pub(super) struct JsonBody<T>(pub(super) T);

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
pub(in crate::control) struct QueryOf<T>(pub(in crate::control) T);

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
pub(in crate::control) struct Tenant(pub(in crate::control) String);

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
pub(in crate::control) fn existing(st: &AppState, sid: &str) -> Result<(), Error> {
    match st.domain.account(sid) {
        Some(_) => Ok(()),
        None => Err(Error::no_tenant(sid)),
    }
}

pub(super) async fn not_found(OriginalUri(uri): OriginalUri) -> Error {
    Error::new(StatusCode::NOT_FOUND, "not_found", format!("no control-plane route {}", uri.path()))
}

pub(super) async fn method_not_allowed(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
