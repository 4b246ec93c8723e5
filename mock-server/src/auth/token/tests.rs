//! Minting and validating tokens: claims, clock skew, Twilio's error codes.
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
