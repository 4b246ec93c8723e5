//! Who is calling and which service they address: HTTP Basic credentials resolve the account;
//! `/v1/Services/{ChatServiceSid}/…` names a service, `/v1/…` means the account's default one.
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use base64::Engine;

use super::error::ApiError;
use crate::domain::{Account, Cause, DomainError, Proposal, Resource, Unvetted};
use crate::server::AppState;

pub struct Scope {
    pub account: Arc<Account>,
    /// `None`: the default service.
    pub service: Option<String>,
    /// The service's SID, resolved.
    pub service_sid: String,
    /// `/v1` or `/v1/Services/IS…`: the prefix resource URLs are built on.
    pub prefix: String,
    pub base: Arc<str>,
    /// The caller sent `X-Twilio-Webhook-Enabled: true`: this request fires webhooks.
    pub hooks_requested: bool,
}

impl Scope {
    /// An absolute URL under this scope.
    pub fn url(&self, tail: &str) -> String {
        format!("{}{}{}", self.base, self.prefix, tail)
    }

    /// An absolute URL under `/v1/Services/{sid}` whatever the scope (links Twilio always
    /// spells with the service).
    pub fn service_url(&self, tail: &str) -> String {
        format!("{}/v1/Services/{}{}", self.base, self.service_sid, tail)
    }

    pub fn scoped(&self) -> bool {
        self.service.is_some()
    }

    /// Who this request is, to the domain service: the REST API, with webhooks when the caller
    /// asked for them.
    pub fn cause(&self) -> Cause {
        Cause::api(self.hooks_requested)
    }

    /// Performs a vetted change as the REST API (the pre-action webhook is asked when the caller
    /// asked for webhooks); errors as the domain reports them.
    pub async fn perform<P: Proposal>(&self, proposal: P) -> Result<P::Output, DomainError> {
        self.account.perform(&self.cause(), self.service.as_deref(), proposal).await
    }

    /// Applies a change no webhook vets, as the REST API.
    pub fn apply<C: Unvetted>(&self, change: C) -> Result<C::Output, DomainError> {
        self.account.apply(&self.cause(), self.service.as_deref(), change)
    }
}

/// Resolves the account from an `Authorization: Basic` header.
pub fn authenticate(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Arc<Account>, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthenticated)?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(ApiError::unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::unauthenticated());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::unauthenticated())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::unauthenticated())?;
    let (user, pass) = decoded.split_once(':').ok_or_else(ApiError::unauthenticated)?;
    let account = if user.starts_with("SK") {
        state.domain.account_by_key(user)
    } else {
        state.domain.account(user)
    };
    match account {
        Some(a) if a.accepts_basic(user, pass) => Ok(a),
        _ => Err(ApiError::unauthenticated()),
    }
}

impl FromRequestParts<AppState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let account = authenticate(state, &parts.headers)?;
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found(parts.uri.path()))?;
        let service = match raw.iter().find(|(k, _)| *k == "ChatServiceSid") {
            Some((_, v)) => Some(
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| ApiError::not_found(parts.uri.path()))?
                    .into_owned(),
            ),
            None => None,
        };
        let service_sid = account
            .read(|s| s.service(service.as_deref()).map(|svc| svc.sid.clone()))
            .map_err(|e: DomainError| match e {
                DomainError::NotFound { .. } => ApiError::not_found(parts.uri.path()),
                other => other.into(),
            })?;
        let prefix = match &service {
            Some(s) => format!("/v1/Services/{s}"),
            None => "/v1".to_owned(),
        };
        Ok(Scope {
            account,
            service,
            service_sid,
            prefix,
            base: state.base_url.clone(),
            hooks_requested: super::form::webhooks_enabled(&parts.headers),
        })
    }
}

/// Maps a domain "not found" to Twilio's 404 naming the request path, as the REST API does.
pub fn on_path(path: &str) -> impl Fn(DomainError) -> ApiError + '_ {
    move |e| match e {
        DomainError::NotFound {
            kind: Resource::Service, ..
        }
        | DomainError::NotFound { .. } => ApiError::not_found(path),
        other => other.into(),
    }
}
