//! Conversations access tokens for tests, minted by the server crate's own
//! `auth::token::mint` (one JWT implementation in the workspace).

use rehearsal_mock_server::auth::token::{MintRequest, mint};
use rehearsal_mock_server::{Credentials, MockServer};

/// A token for `identity` with the default seed's account, key and service, valid for an hour
/// from the server's clock.
pub fn token_for(server: &MockServer, identity: &str) -> String {
    Token::on(server, identity).mint()
}

/// An access token to mint: who signs it, for whom, and when. Starts from an account's
/// credentials (service: its default service; lifetime: an hour); every part can be changed,
/// including into a token the server must refuse (another key's secret, another account).
#[derive(Debug, Clone)]
pub struct Token {
    req: MintRequest,
}

impl Token {
    /// A token of `credentials`' account for `identity`, issued at `now_unix`.
    pub fn new(credentials: &Credentials, identity: &str, now_unix: i64) -> Token {
        let c = credentials;
        Token::of_key(&c.account_sid, &c.api_key, &c.api_secret, &c.service_sid, identity, now_unix)
    }

    /// A token signed with `api_key` (and its `api_secret`) of `account_sid` for `identity` in
    /// `service_sid`, issued at `now_unix`.
    pub fn of_key(account_sid: &str, api_key: &str, api_secret: &str, service_sid: &str, identity: &str, now_unix: i64) -> Token {
        Token {
            req: MintRequest {
                account_sid: account_sid.to_owned(),
                api_key_sid: api_key.to_owned(),
                api_key_secret: api_secret.to_owned(),
                identity: identity.to_owned(),
                service_sid: Some(service_sid.to_owned()),
                ttl_secs: 3600,
                now_unix,
                nbf_unix: None,
            },
        }
    }

    /// A token of the server's default (first seeded) account for `identity`, issued now by the
    /// server's clock.
    pub fn on(server: &MockServer, identity: &str) -> Token {
        let credentials = server.credentials().expect("the server has a seeded account with an API key");
        Token::new(&credentials, identity, server.domain().clock().now().unix_secs())
    }

    /// Lifetime in seconds (`exp` = `iat` + `ttl`).
    pub fn ttl(mut self, secs: u64) -> Token {
        self.req.ttl_secs = secs;
        self
    }

    /// The Conversations service of the `chat` grant; `None` leaves the grant out.
    pub fn service(mut self, service_sid: Option<&str>) -> Token {
        self.req.service_sid = service_sid.map(str::to_owned);
        self
    }

    /// The account the token claims (`sub`).
    pub fn account(mut self, account_sid: &str) -> Token {
        self.req.account_sid = account_sid.to_owned();
        self
    }

    /// The API key that signs it (`iss`) and its secret.
    pub fn key(mut self, api_key_sid: &str, api_key_secret: &str) -> Token {
        self.req.api_key_sid = api_key_sid.to_owned();
        self.req.api_key_secret = api_key_secret.to_owned();
        self
    }

    /// The signing secret alone (a token signed with the wrong secret).
    pub fn secret(mut self, api_key_secret: &str) -> Token {
        self.req.api_key_secret = api_key_secret.to_owned();
        self
    }

    /// Signs it.
    pub fn mint(&self) -> String {
        mint(&self.req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt_payload;

    fn credentials() -> Credentials {
        Credentials {
            account_sid: "AC00000000000000000000000000000001".into(),
            auth_token: "auth".into(),
            api_key: "SK00000000000000000000000000000001".into(),
            api_secret: "secret".into(),
            service_sid: "IS00000000000000000000000000000001".into(),
            token_key: "key".into(),
        }
    }

    #[test]
    fn a_token_claims_what_it_was_built_with() {
        let claims = jwt_payload(&Token::new(&credentials(), "alice", 1_700_000_000).ttl(60).mint());
        assert_eq!(claims["sub"], "AC00000000000000000000000000000001");
        assert_eq!(claims["iss"], "SK00000000000000000000000000000001");
        assert_eq!(claims["grants"]["identity"], "alice");
        assert_eq!(claims["grants"]["chat"]["service_sid"], "IS00000000000000000000000000000001");
        assert_eq!(
            (claims["iat"].as_i64(), claims["exp"].as_i64()),
            (Some(1_700_000_000), Some(1_700_000_060))
        );

        let other = jwt_payload(
            &Token::new(&credentials(), "bob", 1_700_000_000)
                .account("AC00000000000000000000000000000002")
                .key("SK00000000000000000000000000000002", "other")
                .service(None)
                .mint(),
        );
        assert_eq!(other["sub"], "AC00000000000000000000000000000002");
        assert_eq!(other["iss"], "SK00000000000000000000000000000002");
        assert!(other["grants"].get("chat").is_none(), "{other}");
        assert_eq!(other["exp"].as_i64(), Some(1_700_003_600), "an hour by default");
    }

    #[test]
    fn the_secret_signs_the_token() {
        use rehearsal_mock_server::auth::token::validate;
        let c = credentials();
        let good = Token::new(&c, "alice", 1_700_000_000).mint();
        assert!(validate(&good, "secret", 1_700_000_001).is_ok());
        let forged = Token::new(&c, "alice", 1_700_000_000).secret("not-it").mint();
        assert!(validate(&forged, "secret", 1_700_000_001).is_err());
    }
}
