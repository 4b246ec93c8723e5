//! The payload of a JWT, for tests that check what a token claims.

use base64::Engine;
use serde_json::Value;

/// The claims of `token` (surrounding whitespace ignored, as printed by `rehearsal token`),
/// decoded without checking the signature; panics if it is not a JWT with a JSON payload.
#[track_caller]
pub fn jwt_payload(token: &str) -> Value {
    let part = token.trim().split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}
