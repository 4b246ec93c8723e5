//! The packets a session writes: replies, `client_update`, `close`, and their status objects.
//!
//! Shapes follow the wire-protocol notes, sections 2.3 to 2.7. Everything extra lives in the
//! header; payloads are JSON or empty.
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::super::backend::UpstreamResponse;
use super::super::codec::{self, JSON_PAYLOAD_TYPE};

/// The description Twilio puts on a 410 close; the same text as `TokenError::Expired`.
pub const TOKEN_EXPIRED_DESCRIPTION: &str = "Access Token expired or expiration date invalid";

/// Twilio's error code for an expired token, the only one the SDK acts on (`tokenExpired`).
pub const TOKEN_EXPIRED_ERROR_CODE: u32 = 20104;

/// Twilio's error code for an invalid token, used when an `update` names someone else.
pub(super) const INVALID_TOKEN_ERROR_CODE: u32 = 20101;

/// The capabilities the server confirms. Never `telemetry.v1`: confirming it would make the SDK
/// send telemetry packets nobody reads.
const CAPABILITIES: [&str; 2] = ["client_update", "offline_storage"];

/// The product whose `offline_storage` entry the SDK reads (forced by Conversations).
const PRODUCT: &str = "ip_messaging";

/// The `status` object of a reply or a close.
pub fn status(code: u16, status: &str, description: Option<&str>, error_code: Option<u32>) -> Value {
    let mut s = Map::new();
    s.insert("code".into(), code.into());
    s.insert("status".into(), status.into());
    if let Some(d) = description {
        s.insert("description".into(), d.into());
    }
    if let Some(c) = error_code {
        s.insert("errorCode".into(), c.into());
    }
    Value::Object(s)
}

fn header(method: &str, id: &str) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("method".into(), method.into());
    h.insert("id".into(), id.into());
    h
}

/// A reply carrying only a status: `{method:"reply", id, status}`.
pub fn reply_status(id: &str, code: u16, status_text: &str, description: Option<&str>, error_code: Option<u32>) -> Bytes {
    let mut h = header("reply", id);
    h.insert("status".into(), status(code, status_text, description, error_code));
    codec::encode(h, b"")
}

/// `200 OK`, for `update`, notification contexts and the like.
pub fn reply_ok(id: &str) -> Bytes {
    reply_status(id, 200, "OK", None, None)
}

/// The reply to a refused `init`/`update`: its status, and for a backoff a payload
/// `{"backoff_policy":{"reconnect_min_ms":N}}` (the SDK raises its next retry delay to it).
pub fn reply_rejection(id: &str, r: &super::super::backend::InitRejection) -> Bytes {
    let mut h = header("reply", id);
    h.insert(
        "status".into(),
        status(r.status, &r.status_text, Some(&r.description), r.error_code),
    );
    match r.backoff_ms {
        Some(ms) => {
            h.insert("payload_type".into(), JSON_PAYLOAD_TYPE.into());
            codec::encode(h, json!({ "backoff_policy": { "reconnect_min_ms": ms } }).to_string().as_bytes())
        }
        None => codec::encode(h, b""),
    }
}

/// A 401 reply to an `update` (or repeated `init`) whose token is valid but names another
/// identity, account or service than the session's.
pub fn reply_principal_mismatch(id: &str) -> Bytes {
    reply_status(
        id,
        401,
        "UNAUTHORIZED",
        Some("Invalid Access Token: identity, account or service differs from this session's"),
        Some(INVALID_TOKEN_ERROR_CODE),
    )
}

/// The successful `init` reply. `storage_id` keys the SDK's browser cache, so it must be stable
/// per identity (see [`storage_id`]); the continuation token is fresh every time.
pub fn reply_init(id: &str, storage_id: &str) -> Bytes {
    let mut h = header("reply", id);
    h.insert("status".into(), status(200, "OK", None, None));
    h.insert("continuation_token".into(), format!("ct-{}", random_hex()).into());
    h.insert(
        "continuation_token_status".into(),
        json!({
            "reissued": true,
            "reissue_reason": "new",
            "reissue_message": "a new continuation token was issued",
        }),
    );
    h.insert("capabilities".into(), json!(CAPABILITIES));
    h.insert("offline_storage".into(), json!({ PRODUCT: { "storage_id": storage_id } }));
    h.insert("init_registrations".into(), Value::Null);
    h.insert("debug_info".into(), Value::Null);
    codec::encode(h, b"")
}

/// The answer to an upstream `message`: twilsock status 200 (the request was delivered), the
/// HTTP outcome in `http_status`, the body as JSON. A `null` body is sent as an empty payload
/// (a 204 has no body; the SDK then sees `undefined`).
pub fn reply_upstream(id: &str, resp: &UpstreamResponse) -> Bytes {
    let mut h = header("reply", id);
    h.insert("status".into(), status(200, "OK", None, None));
    h.insert(
        "http_status".into(),
        json!({ "code": resp.status, "status": reason_phrase(resp.status) }),
    );
    h.insert("http_headers".into(), json!({ "Content-Type": JSON_PAYLOAD_TYPE }));
    h.insert("payload_type".into(), JSON_PAYLOAD_TYPE.into());
    let body = match &resp.body {
        Value::Null => Vec::new(),
        body => serde_json::to_vec(body).unwrap_or_default(),
    };
    codec::encode(h, &body)
}

/// The HTTP reason phrase for `code` ("Created", "Not Found"), or "Unknown" for codes HTTP does
/// not name.
pub fn reason_phrase(code: u16) -> &'static str {
    axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// `client_update` / `token_about_to_expire`: the SDK emits `tokenAboutToExpire`.
pub fn token_about_to_expire() -> Bytes {
    let mut h = header("client_update", &server_packet_id());
    h.insert("client_update_type".into(), "token_about_to_expire".into());
    codec::encode(h, b"")
}

/// A server-initiated `close` packet.
///
/// What the SDK does with each code (wire-protocol notes, section 2.6): 308 (and any code not
/// listed) reconnects, after at least `backoff_min_ms` when given (sent as
/// `{"backoff_policy":{"reconnect_min_ms":N}}`); 401, 406, 410 and 417 are terminal, and 410
/// also emits `tokenExpired`. See [`CloseCode`] for ready-made statuses.
pub fn close_frame(code: u16, status_text: &str, description: &str, error_code: Option<u32>, backoff_min_ms: Option<u64>) -> Bytes {
    let mut h = header("close", &server_packet_id());
    h.insert("status".into(), status(code, status_text, Some(description), error_code));
    let payload = match backoff_min_ms {
        Some(ms) => {
            h.insert("payload_type".into(), JSON_PAYLOAD_TYPE.into());
            serde_json::to_vec(&json!({ "backoff_policy": { "reconnect_min_ms": ms } })).unwrap_or_default()
        }
        None => Vec::new(),
    };
    codec::encode(h, &payload)
}

/// The close sent when the session's token expires: 410, error code 20104.
pub fn token_expired_close() -> Bytes {
    close_frame(
        410,
        "TOKEN_EXPIRED",
        TOKEN_EXPIRED_DESCRIPTION,
        Some(TOKEN_EXPIRED_ERROR_CODE),
        None,
    )
}

/// The close codes the SDK distinguishes, with the status text and description the session
/// sends for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 308: go away and reconnect (optionally after a minimum backoff).
    Offload,
    /// 401: authentication failed; terminal.
    Unauthorized,
    /// 406: the server cannot parse the protocol; terminal.
    CannotParse,
    /// 410: the token expired; terminal, emits `tokenExpired`.
    TokenExpired,
    /// 417: the server cannot parse a client reply; terminal.
    CannotParseReply,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Offload => 308,
            CloseCode::Unauthorized => 401,
            CloseCode::CannotParse => 406,
            CloseCode::TokenExpired => 410,
            CloseCode::CannotParseReply => 417,
        }
    }

    /// `(status, description, errorCode)` as the session sends them.
    pub fn status(self) -> (&'static str, &'static str, Option<u32>) {
        match self {
            CloseCode::Offload => ("OFFLOAD", "Server is offloading this connection, reconnect", None),
            CloseCode::Unauthorized => ("UNAUTHORIZED", "Authentication failed", Some(20003)),
            CloseCode::CannotParse => ("NOT_ACCEPTABLE", "Server cannot parse protocol", None),
            CloseCode::TokenExpired => ("TOKEN_EXPIRED", TOKEN_EXPIRED_DESCRIPTION, Some(TOKEN_EXPIRED_ERROR_CODE)),
            CloseCode::CannotParseReply => ("EXPECTATION_FAILED", "Server cannot parse client reply", None),
        }
    }

    /// The close packet for this code.
    pub fn frame(self, backoff_min_ms: Option<u64>) -> Bytes {
        let (status_text, description, error_code) = self.status();
        close_frame(self.code(), status_text, description, error_code, backoff_min_ms)
    }
}

/// A stable, opaque `offline_storage` id for one identity of one account: the same identity gets
/// the same id on every connection (the SDK keys its browser cache with it), and nothing about
/// the identity can be read back from it.
pub fn storage_id(account_sid: &str, identity: &str) -> String {
    let digest = Sha256::new()
        .chain_update(account_sid.as_bytes())
        .chain_update([0u8])
        .chain_update(identity.as_bytes())
        .finalize();
    let mut id = String::with_capacity(3 + 32);
    id.push_str("st-");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// An id for a server-initiated packet. The SDK only echoes it in its ack.
pub fn server_packet_id() -> String {
    format!("TS{}", random_hex())
}

fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenError;
    use crate::twilsock::codec::{Limits, decode_bytes};

    fn dec(b: &Bytes) -> crate::twilsock::Packet {
        decode_bytes(b, &Limits::default()).expect("session packets decode")
    }

    #[test]
    fn close_with_backoff_carries_policy_payload() {
        let p = dec(&CloseCode::Offload.frame(Some(2500)));
        assert_eq!(p.method(), Some("close"));
        assert!(p.id().is_some_and(|id| id.starts_with("TS")));
        assert_eq!(p.header["status"]["code"], 308);
        assert_eq!(
            p.payload_json::<Value>().unwrap(),
            json!({"backoff_policy": {"reconnect_min_ms": 2500}})
        );

        let p = dec(&token_expired_close());
        assert_eq!(
            p.header["status"],
            json!({"code": 410, "status": "TOKEN_EXPIRED", "description": TOKEN_EXPIRED_DESCRIPTION, "errorCode": 20104})
        );
        assert!(p.payload.is_empty());
    }

    #[test]
    fn a_rejection_with_backoff_carries_the_policy() {
        let r = crate::twilsock::InitRejection {
            status: 429,
            status_text: "TOO_MANY_REQUESTS".into(),
            error_code: Some(20429),
            description: "slow down".into(),
            backoff_ms: Some(4000),
        };
        let p = dec(&reply_rejection("TM2", &r));
        assert_eq!(p.header["status"]["code"], 429);
        assert_eq!(
            p.payload_json::<Value>().unwrap(),
            json!({"backoff_policy": {"reconnect_min_ms": 4000}})
        );
    }

    #[test]
    fn token_error_reply() {
        let err = TokenError::Expired { expired_at: 1, now: 2 };
        let p = dec(&reply_rejection("TM1", &err.into()));
        assert_eq!(
            p.header["status"],
            json!({"code": 401, "status": "UNAUTHORIZED", "description": TOKEN_EXPIRED_DESCRIPTION, "errorCode": 20104})
        );
    }

    #[test]
    fn upstream_reply_shapes() {
        let p = dec(&reply_upstream("TM2", &UpstreamResponse::status(201, json!({"a": 1}))));
        assert_eq!(p.header["http_status"], json!({"code": 201, "status": "Created"}));
        assert_eq!(p.header["http_headers"], json!({"Content-Type": "application/json"}));
        assert_eq!(p.payload_json::<Value>().unwrap(), json!({"a": 1}));
        let p = dec(&reply_upstream("TM3", &UpstreamResponse::status(204, Value::Null)));
        assert!(p.payload.is_empty());
        assert_eq!(p.payload_type(), Some("application/json"));
        assert_eq!(reason_phrase(799), "Unknown");
    }

    #[test]
    fn storage_id_is_stable_and_distinct() {
        let a = storage_id("AC1", "alice");
        assert_eq!(a, storage_id("AC1", "alice"));
        assert_ne!(a, storage_id("AC1", "bob"));
        assert_ne!(a, storage_id("AC2", "alice"));
        // The separator keeps ("AC1a", "lice") apart from ("AC1", "alice").
        assert_ne!(storage_id("AC1a", "lice"), a);
        assert_eq!(a.len(), 35);
    }
}
