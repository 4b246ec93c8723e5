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
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "AC00000000000000000000000000000000";
    const KEY: &str = "SK00000000000000000000000000000000";
    const SERVICE: &str = "IS00000000000000000000000000000000";
    const SECRET: &str = "s3cr3t";
    const NOW: i64 = 1_700_000_000;

    fn request() -> MintRequest {
        MintRequest {
            account_sid: ACCOUNT.into(),
            api_key_sid: KEY.into(),
            api_key_secret: SECRET.into(),
            identity: "alice".into(),
            service_sid: Some(SERVICE.into()),
            ttl_secs: 3600,
            now_unix: NOW,
            nbf_unix: None,
        }
    }

    fn b64_json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
    }

    fn decode_part(token: &str, i: usize) -> Value {
        let part = token.split('.').nth(i).expect("part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("json")
    }

    /// Signs arbitrary header and payload with `alg`, to build tokens `mint` never would.
    fn forge_with(alg: Algorithm, header: &Value, payload: &Value, secret: &str) -> String {
        let message = format!("{}.{}", b64_json(header), b64_json(payload));
        let sig = crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret.as_bytes()), alg).expect("sign");
        format!("{message}.{sig}")
    }

    fn forge(payload: &Value) -> String {
        forge_with(Algorithm::HS256, &twilio_header(), payload, SECRET)
    }

    fn twilio_header() -> Value {
        json!({"alg": "HS256", "typ": "JWT", "cty": CONTENT_TYPE})
    }

    fn payload() -> Value {
        json!({
            "jti": format!("{KEY}-{NOW}"),
            "grants": {"identity": "alice", "chat": {"service_sid": SERVICE}},
            "iat": NOW, "exp": NOW + 3600, "iss": KEY, "sub": ACCOUNT,
        })
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().expect("object").remove(key);
        v
    }

    /// Minted by `twilio` 5.13.1 (`AccessToken` + `ChatGrant`), `Date.now` pinned to `NOW`.
    const NODE_ALICE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0.eyJqdGkiOiJTSzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLTE3MDAwMDAwMDAiLCJncmFudHMiOnsiaWRlbnRpdHkiOiJhbGljZSIsImNoYXQiOnsic2VydmljZV9zaWQiOiJJUzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIn19LCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwiaXNzIjoiU0swMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMCIsInN1YiI6IkFDMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAifQ.xLUZz7JFCV27MEJutIVQdTZWKtuN5YiyPXa15DQPCPA";
    /// Same library, identity `bob`, ttl 600, nbf `NOW - 10`, no chat grant.
    const NODE_BOB: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0.eyJqdGkiOiJTSzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLTE3MDAwMDAwMDAiLCJncmFudHMiOnsiaWRlbnRpdHkiOiJib2IifSwibmJmIjoxNjk5OTk5OTkwLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDYwMCwiaXNzIjoiU0swMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMCIsInN1YiI6IkFDMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAifQ.1HMq9e17PfKifK8uVb-rO05QLB3p7l4nejWA-juziU0";

    #[test]
    fn mint_matches_twilio_node_helper_byte_for_byte() {
        assert_eq!(mint(&request()), NODE_ALICE);
        let bob = MintRequest {
            identity: "bob".into(),
            service_sid: None,
            ttl_secs: 600,
            nbf_unix: Some(NOW - 10),
            ..request()
        };
        assert_eq!(mint(&bob), NODE_BOB);
    }

    #[test]
    fn minted_token_has_twilio_shape() {
        let token = mint(&request());
        assert_eq!(serde_json::to_string(&decode_part(&token, 0)).expect("json"), HEADER_JSON);
        // Exact text, so key order is checked too.
        assert_eq!(
            serde_json::to_string(&decode_part(&token, 1)).expect("json"),
            format!(
                r#"{{"jti":"{KEY}-{NOW}","grants":{{"identity":"alice","chat":{{"service_sid":"{SERVICE}"}}}},"iat":{NOW},"exp":{},"iss":"{KEY}","sub":"{ACCOUNT}"}}"#,
                NOW + 3600
            )
        );
    }

    #[test]
    fn round_trip() {
        let token = mint(&MintRequest {
            nbf_unix: Some(NOW),
            ..request()
        });
        assert_eq!(
            peek(&token),
            Ok(Unverified {
                api_key_sid: KEY.into(),
                account_sid: ACCOUNT.into()
            })
        );
        assert_eq!(
            validate(&token, SECRET, NOW),
            Ok(Claims {
                account_sid: ACCOUNT.into(),
                api_key_sid: KEY.into(),
                identity: "alice".into(),
                service_sid: Some(SERVICE.into()),
                issued_at: NOW,
                expires_at: NOW + 3600,
                not_before: Some(NOW),
            })
        );
        // Tokens minted by the Node helper validate too.
        let bob = validate(NODE_BOB, SECRET, NOW).expect("node token");
        assert_eq!((bob.identity.as_str(), bob.service_sid), ("bob", None));
    }

    #[test]
    fn accepts_legacy_ip_messaging_grant_and_missing_optionals() {
        let grants = json!({"identity": "alice", "ip_messaging": {"service_sid": "ISlegacy"}});
        let claims = validate(&forge(&with(payload(), "grants", grants)), SECRET, NOW).expect("valid");
        assert_eq!(claims.service_sid.as_deref(), Some("ISlegacy"));

        // `chat` wins over `ip_messaging`.
        let both = json!({"identity": "a", "chat": {"service_sid": "IS1"}, "ip_messaging": {"service_sid": "IS2"}});
        let claims = validate(&forge(&with(payload(), "grants", both)), SECRET, NOW).expect("valid");
        assert_eq!(claims.service_sid.as_deref(), Some("IS1"));

        // No typ, no iat, no jti: still a token; lifetime is counted from now.
        let header = without(twilio_header(), "typ");
        let body = without(without(payload(), "iat"), "jti");
        let claims = validate(&forge_with(Algorithm::HS256, &header, &body, SECRET), SECRET, NOW + 5).expect("valid");
        assert_eq!(claims.issued_at, NOW + 5);
    }

    #[test]
    fn time_boundaries() {
        let token = mint(&request());
        assert!(validate(&token, SECRET, NOW + 3599).is_ok());
        assert!(matches!(validate(&token, SECRET, NOW + 3600), Err(TokenError::Expired { .. })));

        let nbf = mint(&MintRequest {
            nbf_unix: Some(NOW + 10),
            ..request()
        });
        assert!(matches!(validate(&nbf, SECRET, NOW + 9), Err(TokenError::NotYetValid { .. })));
        assert!(validate(&nbf, SECRET, NOW + 10).is_ok());

        let day = mint(&MintRequest {
            ttl_secs: 86_400,
            ..request()
        });
        assert!(validate(&day, SECRET, NOW).is_ok());

        // A backend whose clock runs a little ahead still gets its tokens accepted.
        let ahead = mint(&MintRequest {
            now_unix: NOW + ISSUED_AT_SKEW_SECS,
            ttl_secs: 600,
            ..request()
        });
        assert!(validate(&ahead, SECRET, NOW).is_ok());
    }

    /// Every rejection: a token, the time it is checked at, the Twilio code expected.
    #[test]
    fn rejections() {
        let good = mint(&request());
        let (head, rest) = good.split_once('.').expect("dots");
        let (body, sig) = rest.split_once('.').expect("dots");
        let hs512 = forge_with(Algorithm::HS512, &with(twilio_header(), "alg", json!("HS512")), &payload(), SECRET);
        let none = format!("{}.{}.", b64_json(&with(twilio_header(), "alg", json!("none"))), body);
        let tampered = format!("{head}.{}.{sig}", b64_json(&with(payload(), "sub", json!("AC1"))));

        let cases: Vec<(&str, String, i64, u32)> = vec![
            ("empty", String::new(), NOW, 20101),
            ("two parts", format!("{head}.{body}"), NOW, 20101),
            ("four parts", format!("{good}.x"), NOW, 20101),
            ("header not base64url", format!("!!.{body}.{sig}"), NOW, 20101),
            ("padded header", format!("{head}=.{body}.{sig}"), NOW, 20101),
            (
                "header not an object",
                format!("{}.{body}.{sig}", b64_json(&json!([1]))),
                NOW,
                20101,
            ),
            (
                "payload not json",
                format!("{head}.{}.{sig}", URL_SAFE_NO_PAD.encode("{")),
                NOW,
                20101,
            ),
            ("signature not base64url", format!("{head}.{body}.***"), NOW, 20101),
            ("alg none", none, NOW, 20102),
            ("alg HS512", hs512, NOW, 20102),
            (
                "alg RS256",
                forge_with(Algorithm::HS256, &with(twilio_header(), "alg", json!("RS256")), &payload(), SECRET),
                NOW,
                20102,
            ),
            (
                "alg missing",
                forge_with(Algorithm::HS256, &without(twilio_header(), "alg"), &payload(), SECRET),
                NOW,
                20102,
            ),
            (
                "cty missing",
                forge_with(Algorithm::HS256, &without(twilio_header(), "cty"), &payload(), SECRET),
                NOW,
                20102,
            ),
            (
                "cty wrong",
                forge_with(Algorithm::HS256, &with(twilio_header(), "cty", json!("JWT")), &payload(), SECRET),
                NOW,
                20102,
            ),
            (
                "typ wrong",
                forge_with(Algorithm::HS256, &with(twilio_header(), "typ", json!("JWS")), &payload(), SECRET),
                NOW,
                20102,
            ),
            ("iss missing", forge(&without(payload(), "iss")), NOW, 20103),
            ("sub empty", forge(&with(payload(), "sub", json!(""))), NOW, 20103),
            ("sub not a string", forge(&with(payload(), "sub", json!(1))), NOW, 20103),
            (
                "wrong secret",
                forge_with(Algorithm::HS256, &twilio_header(), &payload(), "other"),
                NOW,
                20107,
            ),
            ("tampered payload", tampered, NOW, 20107),
            ("empty signature", format!("{head}.{body}."), NOW, 20107),
            ("exp missing", forge(&without(payload(), "exp")), NOW, 20104),
            ("exp a string", forge(&with(payload(), "exp", json!("1700003600"))), NOW, 20104),
            ("exp fractional", forge(&with(payload(), "exp", json!(1_700_003_600.5))), NOW, 20104),
            ("expired", good.clone(), NOW + 3601, 20104),
            ("expired exactly now", good.clone(), NOW + 3600, 20104),
            ("iat not an integer", forge(&with(payload(), "iat", json!("x"))), NOW, 20101),
            ("nbf not an integer", forge(&with(payload(), "nbf", json!(null))), NOW, 20101),
            ("not yet valid", forge(&with(payload(), "nbf", json!(NOW + 1))), NOW, 20105),
            ("ttl over 24 h", forge(&with(payload(), "exp", json!(NOW + 86_401))), NOW, 20157),
            (
                "ttl over 24 h without iat",
                forge(&without(with(payload(), "exp", json!(NOW + 86_401)), "iat")),
                NOW,
                20157,
            ),
            (
                "ttl from an iat long ago",
                forge(&with(payload(), "iat", json!(i64::MIN))),
                NOW,
                20157,
            ),
            (
                "iat 30 days ahead, exp an hour after it",
                forge(&with(
                    with(payload(), "iat", json!(NOW + 30 * 86_400)),
                    "exp",
                    json!(NOW + 30 * 86_400 + 3600),
                )),
                NOW,
                20105,
            ),
            (
                "iat just beyond the skew",
                forge(&with(payload(), "iat", json!(NOW + ISSUED_AT_SKEW_SECS + 1))),
                NOW,
                20105,
            ),
            (
                "exp i64::MAX, iat 100 s before it",
                forge(&with(with(payload(), "iat", json!(i64::MAX - 100)), "exp", json!(i64::MAX))),
                NOW,
                20105,
            ),
            ("exp i64::MAX, iat now", forge(&with(payload(), "exp", json!(i64::MAX))), NOW, 20157),
            ("grants missing", forge(&without(payload(), "grants")), NOW, 20106),
            (
                "grants not an object",
                forge(&with(payload(), "grants", json!("alice"))),
                NOW,
                20106,
            ),
            (
                "identity missing",
                forge(&with(payload(), "grants", json!({"chat": {"service_sid": SERVICE}}))),
                NOW,
                20106,
            ),
            (
                "identity empty",
                forge(&with(payload(), "grants", json!({"identity": ""}))),
                NOW,
                20106,
            ),
            (
                "identity not a string",
                forge(&with(payload(), "grants", json!({"identity": 7}))),
                NOW,
                20106,
            ),
            (
                "chat not an object",
                forge(&with(payload(), "grants", json!({"identity": "a", "chat": true}))),
                NOW,
                20106,
            ),
            (
                "service_sid not a string",
                forge(&with(payload(), "grants", json!({"identity": "a", "chat": {"service_sid": 1}}))),
                NOW,
                20106,
            ),
        ];
        for (name, token, now, code) in cases {
            match validate(&token, SECRET, now) {
                Ok(claims) => panic!("{name}: accepted as {claims:?}"),
                Err(e) => {
                    assert_eq!(e.code(), code, "{name}: got {e:?}");
                    assert_eq!(e.status(), 401, "{name}");
                }
            }
        }
    }

    #[test]
    fn peek_checks_structure_but_not_signature() {
        let forged = forge_with(Algorithm::HS256, &twilio_header(), &payload(), "not the secret");
        assert_eq!(peek(&forged).map(|u| u.api_key_sid), Ok(KEY.to_owned()));
        assert_eq!(peek("a.b").map_err(|e| e.code()), Err(20101));
        let none = format!(
            "{}.{}.",
            b64_json(&with(twilio_header(), "alg", json!("none"))),
            b64_json(&payload())
        );
        assert_eq!(peek(&none).map_err(|e| e.code()), Err(20102));
        assert_eq!(peek(&forge(&without(payload(), "sub"))).map_err(|e| e.code()), Err(20103));
    }

    #[test]
    fn peek_identity_reads_the_claimed_identity_of_any_readable_token() {
        let forged = forge_with(Algorithm::HS256, &twilio_header(), &payload(), "not the secret");
        assert_eq!(peek_identity(&forged).as_deref(), Some("alice"));
        assert_eq!(peek_identity(&forge(&without(payload(), "grants"))), None);
        assert_eq!(peek_identity("not a token"), None);
    }

    #[test]
    fn messages_read_like_twilio() {
        let expired = TokenError::Expired { expired_at: 1, now: 2 };
        assert_eq!(expired.to_string(), "Access Token expired or expiration date invalid");
        assert_eq!(expired.code(), 20104);
        assert_eq!(expired.more_info(), "https://www.twilio.com/docs/errors/20104");
        assert_eq!(TokenError::Malformed { reason: "x" }.to_string(), "Invalid Access Token");
        assert_eq!(
            TokenError::TtlTooLong { lifetime_secs: 1 }.to_string(),
            "Expiration Time Exceeds Maximum Time Allowed"
        );
    }

    #[test]
    fn debug_redacts_secret() {
        assert!(!format!("{:?}", request()).contains(SECRET));
    }
}
