//! Access tokens from a development token endpoint (`REHEARSAL_TOKEN_URL`), as the
//! Conversations quickstart fetches them: at start, and again whenever the server says the
//! token is about to expire or has expired.
use std::time::Duration;

use serde_json::Value;

use crate::protocol::CommandError;

/// Bound on one token fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a client gets its tokens from.
#[derive(Debug, Clone)]
pub struct TokenSource {
    url: String,
    http: reqwest::Client,
}

impl TokenSource {
    /// `token_url` with `identity=` appended unless it already names one (PROTOCOL.md).
    pub fn new(token_url: &str, identity: &str) -> TokenSource {
        let has_identity = token_url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("identity=")));
        let url = if has_identity {
            token_url.to_owned()
        } else {
            let sep = if token_url.contains('?') { '&' } else { '?' };
            format!("{token_url}{sep}identity={}", rehearsal_client::enc(identity))
        };
        TokenSource {
            url,
            http: reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_default(),
        }
    }

    /// A fresh token: the endpoint answers JSON `{token}` or the bare token.
    pub async fn fetch(&self) -> Result<String, CommandError> {
        let res = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| CommandError::failed(format!("could not fetch a token from {}: {e}", self.url)))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| CommandError::failed(format!("token endpoint body: {e}")))?;
        if !status.is_success() {
            let mut e = CommandError::failed(format!(
                "token endpoint answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
            e.status = Some(u64::from(status.as_u16()));
            return Err(e);
        }
        let token = match serde_json::from_str::<Value>(&text) {
            Ok(v) => v["token"].as_str().map(str::to_owned).unwrap_or_else(|| text.trim().to_owned()),
            Err(_) => text.trim().to_owned(),
        };
        if token.is_empty() {
            return Err(CommandError::failed("token endpoint returned an empty token"));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_appended_once() {
        assert_eq!(
            TokenSource::new("http://h/token?account=AC1", "a b").url,
            "http://h/token?account=AC1&identity=a%20b"
        );
        assert_eq!(TokenSource::new("http://h/token", "alice").url, "http://h/token?identity=alice");
        assert_eq!(
            TokenSource::new("http://h/token?identity=bob", "alice").url,
            "http://h/token?identity=bob"
        );
    }
}
