//! Who is calling MCS, and what they may read.
use std::sync::Arc;

use axum::http::{HeaderMap, header};

use super::TOKEN_HEADER;
use super::error::McsError;
use crate::auth::{TokenError, identity};
use crate::domain::media::Media;
use crate::domain::{Account, Cause, ChatService};
use crate::rest::scope;
use crate::server::AppState;

/// An authenticated caller of a service's media.
pub(super) struct Principal {
    pub account: Arc<Account>,
    /// The token's identity; `None` for the account's own REST credentials.
    pub identity: Option<String>,
}

impl Principal {
    /// Who an upload is by: an SDK client, or the REST API (whose uploads fire no webhooks).
    pub fn cause(&self) -> Cause {
        match &self.identity {
            Some(identity) => Cause::sdk(identity.clone()),
            None => Cause::api(false),
        }
    }

    /// The `author` of what this caller uploads (Twilio writes `system` for REST uploads).
    pub fn author(&self) -> String {
        self.identity.clone().unwrap_or_else(|| crate::domain::SYSTEM_IDENTITY.to_owned())
    }

    /// Account credentials read everything; a token holder reads what they uploaded and what is
    /// attached to a message of a conversation they participate in.
    pub fn may_read(&self, service: &ChatService, media: &Media) -> bool {
        let Some(identity) = self.identity.as_deref() else {
            return true;
        };
        if media.author.as_deref() == Some(identity) {
            return true;
        }
        media
            .conversation_sid
            .as_deref()
            .and_then(|c| service.conversations.seq_of_sid(c))
            .and_then(|seq| service.conversations.get_seq(seq))
            .is_some_and(|entry| entry.participants.seq_of_name(identity).is_some())
    }
}

/// Authenticates the request for `service_sid` (the path's service; `path` names it in 404s):
/// `X-Twilio-Token` if present (its service must be the path's), else HTTP Basic account
/// credentials; the service must exist in the caller's account.
pub(super) fn authorize(st: &AppState, headers: &HeaderMap, service_sid: &str, path: &str) -> Result<Principal, McsError> {
    if let Some(value) = headers.get(TOKEN_HEADER) {
        let token = value
            .to_str()
            .map_err(|_| {
                McsError::token(&TokenError::Malformed {
                    reason: "not a visible ASCII header value",
                })
            })?
            .trim();
        let caller = identity::verify(&st.domain, token).map_err(|e| McsError::token(&e))?;
        if !has_service(&caller.account, service_sid) {
            return Err(McsError::not_found(path));
        }
        if caller.service_sid != service_sid {
            return Err(McsError::forbidden(format!(
                "The access token does not grant access to service {service_sid}"
            )));
        }
        let identity = caller.identity().to_owned();
        return Ok(Principal {
            account: caller.account,
            identity: Some(identity),
        });
    }
    if headers.contains_key(header::AUTHORIZATION) {
        let account = scope::authenticate(st, headers).map_err(McsError::basic)?;
        if !has_service(&account, service_sid) {
            return Err(McsError::not_found(path));
        }
        return Ok(Principal { account, identity: None });
    }
    Err(McsError::unauthenticated())
}

fn has_service(account: &Account, service_sid: &str) -> bool {
    account.read(|s| s.services.seq_of_sid(service_sid).is_some())
}
