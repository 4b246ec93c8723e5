//! "Arbitrary input never panics, always answers": the parsers that read what clients send,
//! on stable, in every `cargo test` — the same entry points as the fuzz targets in `fuzz/`
//! (`rehearsal_mock_server::fuzzing`), which explore further on nightly.
//!
//! - bytes → the twilsock codec (and the upstream request a packet carries);
//! - query strings and forms → the REST extractors, typed readers and paging;
//! - strings → access-token validation;
//! - bodies → multipart media parsing;
//! - and end to end: arbitrary frames thrown at a real session over a loopback socket. The
//!   server answers the next request or closes the session cleanly, and serves a fresh session
//!   afterwards.
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::fuzzing::{
    ApiError, FilePart, JSON_PAYLOAD_TYPE, Limits, MintRequest, PageRequest, Params, TokenError, decode, decode_bytes, encode,
    form_data_boundary, mint, parse_upstream_request, peek, peek_identity, rest_params, single_file, validate,
};
use rehearsal_test_support::twilsock::{Client, Message};
use serde_json::{Map, Value, json};
use tokio::time::timeout;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Methods a client may send, the ones it may not, and anything.
fn arb_method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "message", "init", "update", "put_notification_ctx", "delete_notification_ctx", "telemetry.v1", "reply",
            "notification", "client_update", "ping", "",
        ])
        .prop_map(str::to_owned),
        1 => Just("close".to_owned()),
        1 => ".{0,10}",
    ]
}

/// Paths the SDK requests, with arbitrary tails and query strings.
fn arb_path() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec![
        "/Client/v2/Configuration",
        "/Client/v2/Services/IS72656865617273616c00000000000001/Conversations",
        "/Client/v2/Services/IS72656865617273616c00000000000001/Me/Conversations",
        "/Client/v2/Services/IS72656865617273616c00000000000001/Users/alice",
        "/Client/v2/Services/IS72656865617273616c00000000000001/Typing",
        "/v3/Maps/",
        "/v3/Lists/",
        "/v3/Documents/",
        "/v4/Subscriptions",
        "/_rehearsal/v1/tenants",
        "",
    ]);
    (base, "[a-zA-Z0-9%/?&=._-]{0,24}").prop_map(|(b, tail)| format!("{b}{tail}"))
}

fn arb_http_request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["GET", "POST", "DELETE", "PUT", "get", "PATCH", ""]),
        arb_path(),
        prop::option::of(prop::collection::btree_map("[a-zA-Z]{1,8}", arb_json(), 0..4)),
        prop::option::of(arb_json()),
    )
        .prop_map(|(method, path, params, headers)| {
            let mut r = json!({"host": "aim.us1.twilio.com", "method": method, "path": path});
            if let Some(p) = params {
                r["params"] = Value::Object(p.into_iter().collect());
            }
            if let Some(h) = headers {
                r["headers"] = h;
            }
            r
        })
}

fn arb_header() -> impl Strategy<Value = Map<String, Value>> {
    (
        arb_method(),
        "[a-zA-Z0-9-]{0,12}",
        prop::option::of(arb_http_request()),
        prop::collection::btree_map("[a-z_]{1,12}", arb_json(), 0..4),
    )
        .prop_map(|(method, id, request, extra)| {
            let mut h = Map::new();
            h.insert("method".into(), method.into());
            h.insert("id".into(), id.into());
            if let Some(r) = request {
                h.insert("http_request".into(), r);
            }
            for (k, v) in extra {
                if !matches!(k.as_str(), "method" | "id" | "payload_size" | "http_request") {
                    h.insert(k, v);
                }
            }
            h
        })
}

fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        arb_json().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        "[a-zA-Z0-9=&%+]{0,32}".prop_map(String::into_bytes),
    ]
}

fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (arb_header(), arb_payload()).prop_map(|(h, p)| encode(h, &p).to_vec())
}

/// A frame as a hostile client writes it: well-formed, mutated, or plain bytes.
fn hostile_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => valid_frame(),
        2 => (
            valid_frame(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            any::<prop::sample::Index>()
        )
            .prop_map(|(mut f, flips, cut)| {
                for (at, byte) in flips {
                    let i = at.index(f.len());
                    f[i] = byte;
                }
                let keep = cut.index(f.len() + 1).max(f.len() / 2);
                f.truncate(keep);
                f
            }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| {
            let mut f = b"TWILSOCK V3.0 ".to_vec();
            f.extend_from_slice(&b);
            f
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------

/// JSON equality with numbers compared as numbers (serde_json's default float parser may land
/// one unit in the last place away from what it printed; not a codec fault).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w))),
        _ => a == b,
    }
}

/// What the twilsock fuzz target asserts, for one input.
fn check_frame(data: &[u8]) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let copied = decode(data, &limits);
    let shared = decode_bytes(&Bytes::copy_from_slice(data), &limits);
    match (&copied, &shared) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
        _ => prop_assert!(false, "decode and decode_bytes disagree: {:?} / {:?}", copied, shared),
    }
    let Ok(packet) = copied else { return Ok(()) };
    let again = decode(
        &encode(packet.header.clone(), &packet.payload),
        &Limits {
            max_header_bytes: usize::MAX,
            max_payload_bytes: usize::MAX,
        },
    )
    .expect("an encoded packet decodes");
    prop_assert_eq!(&again.payload, &packet.payload);
    let mut expected = packet.header.clone();
    if !packet.payload.is_empty() && matches!(expected.get("payload_type"), None | Some(Value::Null)) {
        expected.insert("payload_type".into(), JSON_PAYLOAD_TYPE.into());
    }
    expected.insert("payload_size".into(), packet.payload.len().into());
    prop_assert!(same_json(&Value::Object(again.header), &Value::Object(expected)));
    if let Ok(request) = parse_upstream_request(&packet) {
        prop_assert_eq!(&request.method, &request.method.to_ascii_uppercase());
        prop_assert!(!request.raw_path.contains('?'));
        prop_assert_eq!(&request.body, &packet.payload);
    }
    Ok(())
}

fn assert_twilio_400(e: &ApiError) -> Result<(), TestCaseError> {
    prop_assert_eq!((e.status, e.code), (400, 20001), "{:?}", e);
    prop_assert_eq!(&e.body()["code"], 20001);
    Ok(())
}

fn check_params(params: &Params) -> Result<(), TestCaseError> {
    let encoded = serde_urlencoded::to_string(params.pairs()).expect("string pairs encode");
    let reparsed = Params::parse(encoded.as_bytes());
    prop_assert_eq!(reparsed.pairs(), params.pairs());
    for name in ["DateCreated", "DateUpdated"] {
        if let Err(e) = params.date(name) {
            assert_twilio_400(&e)?;
        }
    }
    for name in ["Page", "Index", "LastReadMessageIndex"] {
        if let Err(e) = params.u64(name) {
            assert_twilio_400(&e)?;
        }
    }
    if let Err(e) = params.bool("XTwilioWebhookEnabled") {
        assert_twilio_400(&e)?;
    }
    for (max, default) in [(50, 50), (100, 50), (5, 5)] {
        match PageRequest::parse(params, max, default) {
            Ok(page) => prop_assert!((1..=max).contains(&page.size)),
            Err(e) => assert_twilio_400(&e)?,
        }
    }
    Ok(())
}

/// Parameter names the REST API reads, and values close to what it accepts.
fn arb_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "PageSize",
            "Page",
            "PageToken",
            "Order",
            "DateCreated",
            "DateUpdated",
            "Index",
            "LastReadMessageIndex",
            "XTwilioWebhookEnabled",
            "FriendlyName",
            "Attributes",
            "Identity",
            "MessagingBinding.Address",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ];
    let value = prop_oneof![
        "[0-9]{0,22}",
        "-?[0-9]{1,5}",
        "(true|false|TRUE|yes)",
        "(asc|desc|DESC)",
        "P[AB][a-zA-Z0-9_-]{0,12}",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        ".{0,16}",
    ];
    prop::collection::vec((name, value), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn codec_arbitrary_bytes_answer(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_frame(&bytes)?;
    }

    #[test]
    fn codec_hostile_frames_answer(frame in hostile_frame()) {
        check_frame(&frame)?;
    }

    #[test]
    fn rest_arbitrary_query_and_body_answer(
        query in ".{0,64}",
        body in prop::collection::vec(any::<u8>(), 0..128),
        content_type in prop::option::of(prop::sample::select(vec![
            "application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data; boundary=x",
        ])),
    ) {
        check_params(&Params::parse(&body))?;
        if let Some(parsed) = rest_params(&query, content_type, &body) {
            for params in [parsed.query, parsed.form] {
                match params {
                    Ok(p) => check_params(&p)?,
                    Err(e) => assert_twilio_400(&e)?,
                }
            }
        }
    }

    #[test]
    fn rest_forms_read_back_what_was_sent(pairs in arb_pairs()) {
        let encoded = serde_urlencoded::to_string(&pairs).expect("encode");
        let parsed = rest_params(&encoded, Some("application/x-www-form-urlencoded"), encoded.as_bytes())
            .expect("an encoded query is a valid URI");
        let query = parsed.query.expect("an encoded query is accepted");
        let form = parsed.form.expect("an encoded form is accepted");
        prop_assert_eq!(query.pairs(), &pairs[..]);
        prop_assert_eq!(form.pairs(), &pairs[..]);
        check_params(&form)?;
    }

    #[test]
    fn token_arbitrary_strings_answer(token in prop_oneof![
        ".{0,64}",
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,43}",
    ], now in prop_oneof![Just(1_700_000_000i64), any::<i64>()]) {
        check_token(&token, now)?;
    }

    #[test]
    fn token_signed_arbitrary_payloads_answer(payload in arb_json(), now in prop_oneof![Just(1_700_000_000i64), any::<i64>()]) {
        // A payload with Twilio's header, correctly signed: reaches the checks after the signature.
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let message = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#),
            b64(&serde_json::to_vec(&payload).expect("json"))
        );
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"s3cr3t").expect("any key");
        hmac::Mac::update(&mut mac, message.as_bytes());
        let token = format!("{message}.{}", b64(&hmac::Mac::finalize(mac).into_bytes()));
        check_token(&token, now)?;
    }

    #[test]
    fn token_minted_validates_to_its_claims(
        identity in "[a-zA-Z0-9_.@+ -]{1,24}",
        account in "AC[0-9a-f]{32}",
        service in prop::option::of("IS[0-9a-f]{32}"),
        ttl in 1u64..=86_400,
        now in 0i64..4_000_000_000,
        before in prop::option::of(0i64..3600),
    ) {
        prop_assume!(identity != "system");
        let req = MintRequest {
            account_sid: account,
            api_key_sid: "SK00000000000000000000000000000000".into(),
            api_key_secret: "s3cr3t".into(),
            identity,
            service_sid: service,
            ttl_secs: ttl,
            now_unix: now,
            nbf_unix: before.map(|b| now - b),
        };
        let token = mint(&req);
        let claims = validate(&token, "s3cr3t", now).map_err(|e| TestCaseError::fail(format!("{req:?}: {e:?}")))?;
        prop_assert_eq!(&claims.identity, &req.identity);
        prop_assert_eq!(&claims.account_sid, &req.account_sid);
        prop_assert_eq!(&claims.service_sid, &req.service_sid);
        prop_assert_eq!(claims.expires_at, now + i64::try_from(ttl).expect("small"));
        prop_assert_eq!(validate(&token, "s3cr3t", claims.expires_at).map_err(|e| e.code()), Err(20104));
        prop_assert_eq!(validate(&token, "other", now), Err(TokenError::InvalidSignature));
    }

    #[test]
    fn multipart_arbitrary_bodies_answer(
        content_type in prop_oneof![".{0,40}", "multipart/form-data; boundary=[!-~]{0,72}"],
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            (prop::collection::vec(any::<u8>(), 0..64), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(a, b)| {
                let mut v = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"".to_vec();
                v.extend_from_slice(&a);
                v.extend_from_slice(b"\"\r\n\r\n");
                v.extend_from_slice(&b);
                v.extend_from_slice(b"\r\n--XyZ--\r\n");
                v
            }),
        ],
    ) {
        let body = Bytes::from(body);
        if let Some(Ok(boundary)) = form_data_boundary(&content_type) {
            check_file(&body, &boundary)?;
        }
        check_file(&body, "XyZ")?;
    }

    #[test]
    fn multipart_browser_uploads_read_back(
        boundary in "[0-9a-zA-Z'()+_,./:=?-]{1,70}",
        filename in "[0-9a-zA-Z._ ()-]{1,40}",
        content_type in prop::option::of(Just("image/png".to_owned())),
        note in prop::option::of("[a-z ]{0,20}"),
        data in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let delimiter = format!("\r\n--{boundary}");
        prop_assume!(!data.windows(delimiter.len()).any(|w| w == delimiter.as_bytes()));
        let mut body = Vec::new();
        if let Some(note) = &note {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{note}\r\n").as_bytes());
        }
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n").as_bytes());
        if let Some(ct) = &content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let header = format!("multipart/form-data; boundary={boundary}");
        prop_assert_eq!(form_data_boundary(&header), Some(Ok(boundary.clone())));
        let file = single_file(&Bytes::from(body), &boundary).map_err(TestCaseError::fail)?;
        prop_assert_eq!(file, FilePart { content_type, filename: Some(filename), data: Bytes::from(data) });
    }
}

fn check_token(token: &str, now: i64) -> Result<(), TestCaseError> {
    let codes = [20101, 20102, 20103, 20104, 20105, 20106, 20107, 20157];
    let peeked = peek(token);
    let _ = peek_identity(token);
    match validate(token, "s3cr3t", now) {
        Ok(claims) => {
            prop_assert!(peeked.is_ok());
            prop_assert!(!claims.identity.is_empty());
            prop_assert!(claims.expires_at > now);
            prop_assert!(claims.not_before.is_none_or(|nbf| nbf <= now));
            prop_assert!(claims.expires_at.saturating_sub(claims.issued_at) <= 86_400, "{:?}", claims);
        }
        Err(e) => {
            prop_assert_eq!(e.status(), 401);
            prop_assert!(codes.contains(&e.code()), "{:?}", e);
            if let Err(p) = &peeked {
                prop_assert_eq!(&e, p);
            }
        }
    }
    Ok(())
}

fn check_file(body: &Bytes, boundary: &str) -> Result<(), TestCaseError> {
    match single_file(body, boundary) {
        Ok(file) => {
            let delimiter = format!("\r\n--{boundary}");
            prop_assert!(!file.data.windows(delimiter.len()).any(|w| w == delimiter.as_bytes()));
            let base = body.as_ptr() as usize;
            let start = file.data.as_ptr() as usize;
            prop_assert!(file.data.is_empty() || (start >= base && start + file.data.len() <= base + body.len()));
        }
        Err(reason) => prop_assert!(!reason.is_empty()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// End to end: a real session over a loopback socket
// ---------------------------------------------------------------------------------------------

/// Upper bound for every wait: a hung session fails the case instead of stalling the suite.
const WAIT: Duration = Duration::from_secs(10);

/// How a session met the probe sent after the hostile frames.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The probe's reply, with its twilsock status code.
    Answered(u64),
    /// A twilsock `close` packet or a WebSocket close frame.
    ClosedCleanly,
}

async fn connect(server: &MockServer) -> Client {
    Client::connect(&server.twilsock_url()).await.with_wait(WAIT)
}

/// Reads until the reply to `id`, a close, or the end of the socket. Pings and notifications
/// are acknowledged as the SDK does; replies to the hostile frames are skipped.
async fn until_reply(ws: &mut Client, id: &str) -> Result<Outcome, String> {
    loop {
        let msg = match timeout(WAIT, ws.next_message()).await {
            Err(_) => return Err(format!("no answer to {id} within {WAIT:?}")),
            Ok(None) => return Err(format!("socket ended without a close frame before answering {id}")),
            Ok(Some(Err(e))) => return Err(format!("socket failed before answering {id}: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => return Ok(Outcome::ClosedCleanly),
            Message::Text(t) => return Err(format!("the server sent a text frame: {t}")),
            _ => continue,
        };
        let packet = decode(&bytes, &Limits::default()).map_err(|e| format!("the server sent an undecodable frame: {e}"))?;
        match packet.method() {
            Some("reply") if packet.id() == Some(id) => {
                return Ok(Outcome::Answered(packet.header["status"]["code"].as_u64().unwrap_or(0)));
            }
            Some("close") => return Ok(Outcome::ClosedCleanly),
            Some("reply") => {}
            _ => {
                let ack = json!({"method": "reply", "id": packet.id(), "status": {"code": 200, "status": "OK"}});
                ws.try_send(ack, b"").await.map_err(|e| format!("ack failed: {e}"))?;
            }
        }
    }
}

async fn init(ws: &mut Client, token: &str) -> Result<Outcome, String> {
    let init = json!({"method": "init", "id": "TMinit", "token": token, "continuation_token": null,
        "capabilities": ["client_update", "offline_storage"]});
    ws.try_send(init, b"").await.map_err(|e| format!("send init: {e}"))?;
    until_reply(ws, "TMinit").await
}

async fn probe(ws: &mut Client, id: &str) -> Result<Outcome, String> {
    let get = json!({"method": "message", "id": id, "active_grant": "ip_messaging",
        "http_request": {"host": "aim.us1.twilio.com", "path": "/Client/v2/Configuration", "method": "GET", "params": {}, "headers": {}}});
    if let Err(e) = ws.try_send(get, b"").await {
        return Err(format!("send probe: {e}"));
    }
    until_reply(ws, id).await
}

/// One case: a fresh session, `frames` thrown at it, the probe, then a second fresh session.
async fn hostile_session(server: &MockServer, token: &str, frames: &[(Vec<u8>, bool)]) -> Result<(), String> {
    let mut ws = connect(server).await;
    if init(&mut ws, token).await? != Outcome::Answered(200) {
        return Err("init refused before anything hostile was sent".into());
    }
    for (bytes, as_text) in frames {
        let msg = if *as_text {
            Message::Text(String::from_utf8_lossy(bytes).into_owned().into())
        } else {
            Message::Binary(bytes.clone().into())
        };
        // The server may already have closed the session (a `close` packet, a 406): that is an
        // answer too, checked by the probe below.
        if ws.try_send_message(msg).await.is_err() {
            break;
        }
    }
    match probe(&mut ws, "TMprobe-after-hostile-frames").await {
        Ok(_) => {}
        // Sending failed because the session was closed: the close must have been clean.
        Err(e) if e.starts_with("send probe") => {}
        Err(e) => return Err(e),
    }
    drop(ws);

    let mut fresh = connect(server).await;
    match init(&mut fresh, token).await? {
        Outcome::Answered(200) => {}
        other => return Err(format!("a fresh session's init got {other:?}")),
    }
    match probe(&mut fresh, "TMprobe-fresh").await? {
        Outcome::Answered(200) => Ok(()),
        other => Err(format!("a fresh session's request got {other:?}")),
    }
}

#[test]
fn hostile_frames_on_a_real_session_get_answers_and_the_server_serves_afterwards() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(MockServer::start());
    let creds = server.credentials().expect("the default seed has an account");
    let account = server.domain().account(&creds.account_sid).expect("the seed's account");
    let token = rehearsal_mock_server::auth::identity::mint_for(&account, "alice", 3600).expect("the seed has an API key");

    let frames = prop::collection::vec((hostile_frame(), prop::bool::weighted(0.2)), 1..8);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    let result = runner.run(&frames, |frames| {
        rt.block_on(hostile_session(&server, &token, &frames)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    rt.block_on(server.shutdown());
}
