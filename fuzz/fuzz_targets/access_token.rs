//! Access tokens as clients present them (twilsock `init`/`update`, media's `X-Twilio-Token`).
//!
//! Input: one byte choosing the mode, then
//! - `0`: any text as a token;
//! - `1`: any bytes as the payload of a token with Twilio's header, correctly signed, so that
//!   the checks after the signature (times, lifetime, grants) are reached;
//! - `2`: the fields of a token to mint, which must then validate to exactly those claims.
//!
//! Properties: nothing panics; every refusal is one of Twilio's access-token errors (401, code
//! 2010x or 20157); a structural refusal by `peek` is the same refusal from `validate`; an
//! accepted token has an identity, is not expired, not before its `nbf`, and lives ≤ 24 h.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rehearsal_mock_server::fuzzing::{MintRequest, TokenError, mint, peek, peek_identity, validate};

const SECRET: &str = "s3cr3t";
const NOW: i64 = 1_700_000_000;
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#;
const CODES: [u32; 8] = [20101, 20102, 20103, 20104, 20105, 20106, 20107, 20157];
/// Moments a token is checked at: the server's clock can be frozen or moved anywhere.
const MOMENTS: [i64; 5] = [NOW, 0, -1, i64::MIN, i64::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => check_any(&String::from_utf8_lossy(rest)),
        1 => check_any(&signed(rest)),
        _ => check_minted(rest),
    }
});

fn check_any(token: &str) {
    let peeked = peek(token);
    let _ = peek_identity(token);
    for now in MOMENTS {
        match validate(token, SECRET, now) {
            Ok(claims) => {
                let who = peeked.clone().expect("a valid token peeks");
                assert_eq!(
                    (who.account_sid, who.api_key_sid),
                    (claims.account_sid.clone(), claims.api_key_sid.clone())
                );
                assert!(!claims.identity.is_empty(), "accepted without an identity");
                assert!(claims.expires_at > now, "accepted an expired token");
                assert!(claims.not_before.is_none_or(|nbf| nbf <= now), "accepted before nbf");
                assert!(
                    claims.expires_at.saturating_sub(claims.issued_at) <= 86_400,
                    "accepted a lifetime over 24 h: {claims:?}"
                );
            }
            Err(e) => {
                assert_twilio(&e);
                if let Err(p) = &peeked {
                    assert_eq!(&e, p, "peek and validate disagree on a structural refusal");
                }
            }
        }
    }
    if let Err(e) = &peeked {
        assert_twilio(e);
    }
}

fn check_minted(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let Ok(fields) = Fields::arbitrary(&mut u) else { return };
    let req = MintRequest {
        account_sid: fields.account_sid,
        api_key_sid: fields.api_key_sid,
        api_key_secret: fields.secret,
        identity: fields.identity,
        service_sid: fields.service_sid,
        ttl_secs: fields.ttl_secs,
        now_unix: fields.now_unix,
        nbf_unix: fields.nbf_unix,
    };
    let token = mint(&req);
    check_any(&token);
    let plain = |s: &str| !s.is_empty();
    let valid = plain(&req.account_sid)
        && plain(&req.api_key_sid)
        && plain(&req.identity)
        && req.identity != "system"
        && (1..=86_400).contains(&req.ttl_secs)
        && req.nbf_unix.is_none_or(|nbf| nbf <= req.now_unix)
        && req.now_unix.checked_add(86_400).is_some();
    if !valid {
        return;
    }
    let claims = validate(&token, &req.api_key_secret, req.now_unix).unwrap_or_else(|e| panic!("{req:?} minted a refused token: {e:?}"));
    assert_eq!(claims.account_sid, req.account_sid);
    assert_eq!(claims.api_key_sid, req.api_key_sid);
    assert_eq!(claims.identity, req.identity);
    assert_eq!(claims.service_sid, req.service_sid);
    assert_eq!(claims.issued_at, req.now_unix);
    assert_eq!(claims.not_before, req.nbf_unix);
    let ttl = i64::try_from(req.ttl_secs).expect("at most a day");
    assert_eq!(claims.expires_at, req.now_unix + ttl);
    // The second it expires, and with another key, it is refused with the code the SDK reads.
    assert_eq!(
        validate(&token, &req.api_key_secret, req.now_unix + ttl).map_err(|e| e.code()),
        Err(20104)
    );
    let other = format!("{}x", req.api_key_secret);
    assert_eq!(validate(&token, &other, req.now_unix), Err(TokenError::InvalidSignature));
}

struct Fields {
    account_sid: String,
    api_key_sid: String,
    secret: String,
    identity: String,
    service_sid: Option<String>,
    ttl_secs: u64,
    now_unix: i64,
    nbf_unix: Option<i64>,
}

impl<'a> Arbitrary<'a> for Fields {
    fn arbitrary(u: &mut Unstructured<'a>) -> libfuzzer_sys::arbitrary::Result<Self> {
        Ok(Fields {
            account_sid: u.arbitrary()?,
            api_key_sid: u.arbitrary()?,
            secret: u.arbitrary()?,
            identity: u.arbitrary()?,
            service_sid: u.arbitrary()?,
            ttl_secs: u.arbitrary()?,
            now_unix: u.arbitrary()?,
            nbf_unix: u.arbitrary()?,
        })
    }
}

/// A token with Twilio's header and `payload` as its payload, signed with [`SECRET`].
fn signed(payload: &[u8]) -> String {
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn assert_twilio(e: &TokenError) {
    assert_eq!(e.status(), 401);
    assert!(CODES.contains(&e.code()), "unexpected code {}", e.code());
}
