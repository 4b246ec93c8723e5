//! Who an access token says the caller is, checked against the accounts the server knows.
use std::sync::Arc;

use super::token::{self, Claims, TokenError};
use crate::domain::{Account, Domain};

/// A verified caller: the account, the identity and the service the token grants.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Arc<Account>,
    pub claims: Claims,
    /// The service the token names, or the account's default service.
    pub service_sid: String,
}

impl Caller {
    pub fn identity(&self) -> &str {
        &self.claims.identity
    }
}

/// Verifies `token` on the server's clock: the signing key must belong to the account named in
/// `sub`, and the service in the chat grant (if any) must exist in that account.
pub fn verify(domain: &Domain, token: &str) -> Result<Caller, TokenError> {
    let who = token::peek(token)?;
    let account =
        domain
            .account_by_key(&who.api_key_sid)
            .filter(|a| a.sid == who.account_sid)
            .ok_or(TokenError::InvalidIssuerOrSubject {
                reason: "unknown API key for this account",
            })?;
    let secret = account
        .api_key_secret(&who.api_key_sid)
        .ok_or(TokenError::InvalidIssuerOrSubject { reason: "unknown API key" })?
        .to_owned();
    let claims = token::validate(token, &secret, account.clock().now().unix_secs())?;
    if crate::domain::is_reserved_identity(&claims.identity) {
        return Err(TokenError::InvalidGrants {
            reason: "the identity is reserved for the server's own actions",
        });
    }
    let service_sid = account
        .read(|s| s.service(claims.service_sid.as_deref()).map(|svc| svc.sid.clone()))
        .map_err(|_| TokenError::InvalidGrants {
            reason: "the chat grant names a service this account does not have",
        })?;
    Ok(Caller {
        account,
        claims,
        service_sid,
    })
}

/// Why [`mint_for`] made no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("the account has no API key to sign tokens with")]
    NoApiKey,
    #[error("identity {0:?} is reserved for the server's own actions")]
    ReservedIdentity(String),
}

/// Mints a token for `identity` with the account's first API key, on the server's clock.
/// Reserved identities ([`crate::domain::is_reserved_identity`]) are refused: [`verify`] would
/// refuse the token anyway.
pub fn mint_for(account: &Account, identity: &str, ttl_secs: u64) -> Result<String, MintError> {
    if crate::domain::is_reserved_identity(identity) {
        return Err(MintError::ReservedIdentity(identity.to_owned()));
    }
    let key = account.api_keys.first().ok_or(MintError::NoApiKey)?;
    let service_sid = account.read(|s| s.default_service.clone());
    Ok(token::mint(&token::MintRequest {
        account_sid: account.sid.clone(),
        api_key_sid: key.sid.clone(),
        api_key_secret: key.secret.clone(),
        identity: identity.to_owned(),
        service_sid: Some(service_sid),
        ttl_secs,
        now_unix: account.clock().now().unix_secs(),
        nbf_unix: None,
    }))
}
