//! Twilio access tokens: minting (for tests and the control plane) and validation (for twilsock
//! `init`/`update` and media requests).
//!
//! An access token is a JWT signed with HS256 by an API key secret:
//!
//! ```text
//! header  {"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}
//! payload {"jti":"SK…-<iat>","grants":{"identity":"alice","chat":{"service_sid":"IS…"}},
//!          "iat":…,"exp":…,"iss":"SK…","sub":"AC…"}          (`nbf` optional, before `iat`)
//! ```
//!
//! [`mint`] writes exactly what the `twilio` npm helper library's `AccessToken` writes (same key
//! order, same bytes), so a token minted here is indistinguishable from one minted by a user's
//! own backend.
//!
//! Validation is two steps because the key secret depends on the token: [`peek`] reads the
//! issuer (API key SID) and subject (account SID) without trusting them, the caller looks up the
//! secret, then [`validate`] checks everything. The SDK never reads the token itself, so every
//! check here is the server's job (wire-protocol notes, section 4).
//!
//! **Boundary:** this module knows nothing about tenants or key stores, and never reads the
//! system time: "now" is always an argument, taken from the server's injectable clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Serialize;
use serde_json::{Map, Value};

/// The `cty` Twilio requires: it marks the JWT as a Twilio "first-party auth" token.
pub const CONTENT_TYPE: &str = "twilio-fpa;v=1";

/// Twilio's maximum token lifetime (24 h). Tokens living longer are rejected, not truncated.
pub const MAX_TTL_SECS: i64 = 86_400;

/// How far in the future (by the validating clock) a token's `iat` may lie: the clocks of the
/// backend that minted it and of the tenant may differ a little, never by days.
pub const ISSUED_AT_SKEW_SECS: i64 = 60;

/// The only algorithm accepted. Twilio documents HS256; the Node helper can also sign HS384 and
/// HS512, but accepting those would let tests pass here that fail against Twilio.
const ALG: &str = "HS256";

/// The header every minted token carries, in the helper library's key order.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#;

/// What to put in a new token.
///
/// `mint` does not refuse what `validate` rejects (a TTL over 24 h, an `nbf` in the future, an
/// empty identity): tests need such tokens to exercise the rejections.
#[derive(Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub account_sid: String,
    pub api_key_sid: String,
    pub api_key_secret: String,
    pub identity: String,
    /// The Conversations service; `None` leaves out the `chat` grant entirely.
    pub service_sid: Option<String>,
    pub ttl_secs: u64,
    /// Becomes `iat`; `exp` is `now_unix + ttl_secs`.
    pub now_unix: i64,
    pub nbf_unix: Option<i64>,
}

/// Hand-written so that the secret never reaches a log line.
impl std::fmt::Debug for MintRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintRequest")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("api_key_secret", &"[redacted]")
            .field("identity", &self.identity)
            .field("service_sid", &self.service_sid)
            .field("ttl_secs", &self.ttl_secs)
            .field("now_unix", &self.now_unix)
            .field("nbf_unix", &self.nbf_unix)
            .finish()
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`.
    pub account_sid: String,
    /// `iss`: the API key whose secret signed the token.
    pub api_key_sid: String,
    /// `grants.identity`.
    pub identity: String,
    /// `grants.chat.service_sid`, or the legacy `grants.ip_messaging.service_sid`; `None` when
    /// the token has no such grant or the grant names no service.
    pub service_sid: Option<String>,
    /// `iat`; when the token has none, the `now` it was validated at (lifetimes are then
    /// counted from that moment, see [`validate`]).
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// `nbf`.
    pub not_before: Option<i64>,
}

/// Who a token claims to come from, before anything about it has been verified.
///
/// Only good for choosing the secret to verify with; never for authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// `iss`.
    pub api_key_sid: String,
    /// `sub`.
    pub account_sid: String,
}

/// Why a token was rejected, as one of Twilio's access-token errors.
///
/// `Display` is Twilio's own error title for the code, because that text goes to clients
/// verbatim (REST `message`, twilsock `status.description`); this is a deliberate exception to
/// the lowercase house style. The `reason` fields say what exactly was wrong, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT at all: wrong number of parts, bad base64url, JSON that is not an object, or a
    /// time claim that is not an integer.
    #[error("Invalid Access Token")]
    Malformed { reason: &'static str },
    /// A readable header that is not Twilio's: `alg` other than HS256 (including `none`), `cty`
    /// other than `twilio-fpa;v=1`, `typ` other than `JWT`.
    #[error("Invalid Access Token header")]
    InvalidHeader { reason: &'static str },
    /// `iss` or `sub` missing or empty. Callers also return this when the API key is unknown or
    /// belongs to another account, as Twilio does.
    #[error("Invalid Access Token issuer/subject")]
    InvalidIssuerOrSubject { reason: &'static str },
    /// The signature does not match the key secret.
    #[error("Invalid Access Token signature")]
    InvalidSignature,
    /// `exp` is missing or not an integer.
    #[error("Access Token expired or expiration date invalid")]
    InvalidExpiration,
    /// `exp <= now`. The SDK reacts to this code (20104) alone with `tokenExpired`.
    #[error("Access Token expired or expiration date invalid")]
    Expired { expired_at: i64, now: i64 },
    /// `nbf > now`.
    #[error("Access Token not yet valid")]
    NotYetValid { not_before: i64, now: i64 },
    /// The token lives longer than 24 h.
    #[error("Expiration Time Exceeds Maximum Time Allowed")]
    TtlTooLong { lifetime_secs: i64 },
    /// `grants` missing or unreadable, or no non-empty `identity` in it.
    #[error("Invalid Access Token grants")]
    InvalidGrants { reason: &'static str },
}

impl TokenError {
    /// Twilio's error code (the `code` of an error body, `status.errorCode` in twilsock).
    pub fn code(&self) -> u32 {
        match self {
            TokenError::Malformed { .. } => 20101,
            TokenError::InvalidHeader { .. } => 20102,
            TokenError::InvalidIssuerOrSubject { .. } => 20103,
            TokenError::InvalidExpiration | TokenError::Expired { .. } => 20104,
            TokenError::NotYetValid { .. } => 20105,
            TokenError::InvalidGrants { .. } => 20106,
            TokenError::InvalidSignature => 20107,
            TokenError::TtlTooLong { .. } => 20157,
        }
    }

    /// Whether the token was refused after its signature was verified (so its holder had the
    /// key it names): expiry, not-before, lifetime and grants failures.
    pub fn follows_signature(&self) -> bool {
        !matches!(
            self,
            TokenError::Malformed { .. }
                | TokenError::InvalidHeader { .. }
                | TokenError::InvalidIssuerOrSubject { .. }
                | TokenError::InvalidSignature
        )
    }

    /// The HTTP status: always 401. In twilsock, a 401 reply to `init`/`update` is what puts the
    /// SDK in its terminal `denied` state.
    pub fn status(&self) -> u16 {
        401
    }

    /// The documentation link Twilio puts in `more_info`.
    pub fn more_info(&self) -> String {
        format!("https://www.twilio.com/docs/errors/{}", self.code())
    }
}

#[derive(Serialize)]
struct MintPayload<'a> {
    jti: String,
    grants: MintGrants<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    iat: i64,
    exp: i64,
    iss: &'a str,
    sub: &'a str,
}

#[derive(Serialize)]
struct MintGrants<'a> {
    identity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    chat: Option<ChatGrant<'a>>,
}

#[derive(Serialize)]
struct ChatGrant<'a> {
    service_sid: &'a str,
}

/// Mints a token. Field order and encoding match the `twilio` npm helper library, so the same
/// inputs give the same token, byte for byte.
pub fn mint(req: &MintRequest) -> String {
    let ttl = i64::try_from(req.ttl_secs).unwrap_or(i64::MAX);
    let payload = MintPayload {
        jti: format!("{}-{}", req.api_key_sid, req.now_unix),
        grants: MintGrants {
            identity: &req.identity,
            chat: req.service_sid.as_deref().map(|service_sid| ChatGrant { service_sid }),
        },
        nbf: req.nbf_unix,
        iat: req.now_unix,
        exp: req.now_unix.saturating_add(ttl),
        iss: &req.api_key_sid,
        sub: &req.account_sid,
    };
    let payload = serde_json::to_vec(&payload).expect("the token payload is plain data");
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER_JSON), URL_SAFE_NO_PAD.encode(payload));
    let key = EncodingKey::from_secret(req.api_key_secret.as_bytes());
    // HMAC takes keys of any length, so the RustCrypto signer cannot fail here.
    let signature = crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("HS256 signing with a secret key cannot fail");
    format!("{message}.{signature}")
}

/// Reads issuer and subject without verifying the signature, so that the caller can find the
/// secret to verify with. Structure and header are checked, so garbage is rejected before any
/// lookup.
pub fn peek(token: &str) -> Result<Unverified, TokenError> {
    let parsed = Parsed::new(token)?;
    parsed.unverified()
}

/// The identity a token claims (`grants.identity`), without verifying anything: only good for
/// attributing what a refused caller did (the journal), never for authorisation.
pub fn peek_identity(token: &str) -> Option<String> {
    let parsed = Parsed::new(token).ok()?;
    parsed
        .payload
        .get("grants")
        .and_then(|g| g.get("identity"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Verifies a token against `secret` at time `now_unix` and returns its claims.
///
/// Checks, in order (the first failure wins): structure and header, issuer/subject, signature,
/// readable time claims, expiry, not-before, lifetime, grants. Time checks come before grants so that a token which
/// is both expired and odd still reports 20104, the one code the SDK acts on.
///
/// No leeway on `exp` and `nbf`: Twilio documents none, and the mock owns its clock. A token
/// is expired from the second `exp` names (`exp <= now`) and valid from the second `nbf`
/// names. `iat` may be at most [`ISSUED_AT_SKEW_SECS`] ahead of `now` (20105 otherwise), so a
/// token cannot buy a longer life by claiming a later `iat`. The lifetime, `exp - iat` (or
/// `exp - now` when `iat` is absent, computed without overflow), must not exceed 24 h (20157).
///
/// The algorithm is checked from the header before any cryptography, and verification is
/// always asked for HS256 explicitly, so a token cannot choose its own algorithm (`none`, or an
/// asymmetric one keyed with the secret).
pub fn validate(token: &str, secret: &str, now_unix: i64) -> Result<Claims, TokenError> {
    let parsed = Parsed::new(token)?;
    let who = parsed.unverified()?;

    let key = DecodingKey::from_secret(secret.as_bytes());
    match crypto::verify(parsed.signature, parsed.message.as_bytes(), &key, Algorithm::HS256) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(TokenError::InvalidSignature),
    }

    let claims = &parsed.payload;
    let expires_at = match claims.get("exp") {
        Some(exp) => exp.as_i64().ok_or(TokenError::InvalidExpiration)?,
        None => return Err(TokenError::InvalidExpiration),
    };
    let issued_at = optional_time(claims, "iat")?;
    let not_before = optional_time(claims, "nbf")?;

    if expires_at <= now_unix {
        return Err(TokenError::Expired {
            expired_at: expires_at,
            now: now_unix,
        });
    }
    if let Some(nbf) = not_before
        && nbf > now_unix
    {
        return Err(TokenError::NotYetValid {
            not_before: nbf,
            now: now_unix,
        });
    }
    // A token issued in the future would otherwise carry its 24 h allowance forward: `iat` 30
    // days ahead with `exp = iat + 1h` is a month-long token. Only a little skew is tolerated.
    if let Some(iat) = issued_at
        && iat > now_unix.saturating_add(ISSUED_AT_SKEW_SECS)
    {
        return Err(TokenError::NotYetValid {
            not_before: iat,
            now: now_unix,
        });
    }
    let issued_at = issued_at.unwrap_or(now_unix);
    // With `iat` at most the skew ahead of now, a lifetime within 24 h also bounds what is left
    // of it (`exp - now`). A difference that overflows is a lifetime far beyond the limit.
    let lifetime_secs = expires_at.checked_sub(issued_at).unwrap_or(i64::MAX);
    if lifetime_secs > MAX_TTL_SECS {
        return Err(TokenError::TtlTooLong { lifetime_secs });
    }

    let (identity, service_sid) = grants(claims)?;
    Ok(Claims {
        account_sid: who.account_sid,
        api_key_sid: who.api_key_sid,
        identity,
        service_sid,
        issued_at,
        expires_at,
        not_before,
    })
}

/// A token split and decoded, header checked, nothing verified.
struct Parsed<'a> {
    /// `base64(header) "." base64(payload)`: the signed bytes.
    message: &'a str,
    /// The signature as sent (base64url, already checked to decode).
    signature: &'a str,
    payload: Map<String, Value>,
}

impl<'a> Parsed<'a> {
    fn new(token: &'a str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed {
                reason: "not three dot-separated parts",
            });
        };
        // Header, '.', payload: ends on the second '.', an ASCII char boundary.
        let message = token.get(..header.len() + 1 + payload.len()).ok_or(TokenError::Malformed {
            reason: "not three dot-separated parts",
        })?;

        let header = decode_object(header, Part::Header)?;
        check_header(&header)?;
        let payload = decode_object(payload, Part::Payload)?;
        if URL_SAFE_NO_PAD.decode(signature).is_err() {
            return Err(TokenError::Malformed {
                reason: "signature is not base64url",
            });
        }
        Ok(Parsed {
            message,
            signature,
            payload,
        })
    }

    fn unverified(&self) -> Result<Unverified, TokenError> {
        let field = |name: &str, reason: &'static str| {
            self.payload
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(TokenError::InvalidIssuerOrSubject { reason })
        };
        Ok(Unverified {
            api_key_sid: field("iss", "iss missing, empty or not a string")?,
            account_sid: field("sub", "sub missing, empty or not a string")?,
        })
    }
}

/// Decodes one base64url JSON part; `what` names it in the rejection reasons.
fn decode_object(part: &str, what: Part) -> Result<Map<String, Value>, TokenError> {
    let (not_base64, not_object) = match what {
        Part::Header => ("header is not base64url", "header is not a json object"),
        Part::Payload => ("payload is not base64url", "payload is not a json object"),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed { reason: not_base64 })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed { reason: not_object }),
    }
}

#[derive(Clone, Copy)]
enum Part {
    Header,
    Payload,
}

fn check_header(header: &Map<String, Value>) -> Result<(), TokenError> {
    let invalid = |reason| Err(TokenError::InvalidHeader { reason });
    match header.get("alg").and_then(Value::as_str) {
        Some(ALG) => {}
        Some("none") => return invalid("alg none is not accepted"),
        Some(_) => return invalid("alg is not HS256"),
        None => return invalid("alg missing or not a string"),
    }
    if header.get("cty").and_then(Value::as_str) != Some(CONTENT_TYPE) {
        return invalid("cty is not twilio-fpa;v=1");
    }
    // `typ` is optional in JWT; when present it must say what it is.
    match header.get("typ") {
        None => Ok(()),
        Some(typ) if typ.as_str() == Some("JWT") => Ok(()),
        Some(_) => invalid("typ is not JWT"),
    }
}

fn optional_time(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(TokenError::Malformed {
            reason: "iat or nbf is not an integer",
        }),
    }
}

/// Identity and service from `grants`. `chat` wins over the legacy `ip_messaging` key (older
/// helper libraries wrote the Programmable Chat grant under that name) when both are present.
fn grants(claims: &Map<String, Value>) -> Result<(String, Option<String>), TokenError> {
    let invalid = |reason| TokenError::InvalidGrants { reason };
    let grants = claims
        .get("grants")
        .and_then(Value::as_object)
        .ok_or(invalid("grants missing or not an object"))?;
    let identity = grants
        .get("identity")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(invalid("identity grant missing, empty or not a string"))?;
    let chat = match grants.get("chat").or_else(|| grants.get("ip_messaging")) {
        None => None,
        Some(Value::Object(chat)) => Some(chat),
        Some(_) => return Err(invalid("chat grant is not an object")),
    };
    let service_sid = match chat.and_then(|c| c.get("service_sid")) {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(invalid("chat service_sid is not a string")),
    };
    Ok((identity.to_owned(), service_sid))
}

#[cfg(test)]
mod tests;
