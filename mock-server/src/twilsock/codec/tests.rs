//! The codec's unit tests and properties: known frames (the SDK's, rejections, the init reply),
//! round trips, and arbitrary or mutated bytes that must never panic. Apart from `codec.rs` so
//! that the framing reads on its own.
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("test header must be an object, got {other}"),
    }
}

fn frame(header: &str, payload: &[u8]) -> Vec<u8> {
    let mut f = format!("TWILSOCK V3.0 {}\r\n{header}\r\n", header.len()).into_bytes();
    f.extend_from_slice(payload);
    f
}

fn dec(f: &[u8]) -> Result<Packet, DecodeError> {
    decode(f, &Limits::default())
}

/// One table for every way a frame can be rejected: input, and the variant expected.
#[test]
fn rejections() {
    type Check = fn(&DecodeError) -> bool;
    let small = Limits {
        max_header_bytes: 64,
        max_payload_bytes: 4,
    };
    let cases: Vec<(&str, Vec<u8>, Limits, Check)> = vec![
        ("empty", vec![], Limits::default(), |e| matches!(e, DecodeError::BadMagic)),
        ("magic", b"TWILSOCKS V3.0 2\r\n{}\r\n".to_vec(), Limits::default(), |e| {
            matches!(e, DecodeError::BadMagic)
        }),
        ("lowercase magic", b"twilsock V3.0 2\r\n{}\r\n".to_vec(), Limits::default(), |e| {
            matches!(e, DecodeError::BadMagic)
        }),
        (
            "version",
            b"TWILSOCK V2.0 2\r\n{}\r\n".to_vec(),
            Limits::default(),
            |e| matches!(e, DecodeError::BadVersion { found } if found == "V2.0"),
        ),
        ("no length", b"TWILSOCK V3.0 \r\n{}\r\n".to_vec(), Limits::default(), |e| {
            matches!(e, DecodeError::BadHeaderLength)
        }),
        ("negative length", b"TWILSOCK V3.0 -2\r\n{}\r\n".to_vec(), Limits::default(), |e| {
            matches!(e, DecodeError::BadHeaderLength)
        }),
        ("length without crlf", b"TWILSOCK V3.0 2 {}\r\n".to_vec(), Limits::default(), |e| {
            matches!(e, DecodeError::BadHeaderLength)
        }),
        (
            "length overflow",
            b"TWILSOCK V3.0 99999999999999999999\r\n".to_vec(),
            Limits::default(),
            |e| matches!(e, DecodeError::BadHeaderLength),
        ),
        (
            "length too many digits",
            b"TWILSOCK V3.0 000000000000000000001\r\n".to_vec(),
            Limits::default(),
            |e| matches!(e, DecodeError::BadHeaderLength),
        ),
        ("header too large", b"TWILSOCK V3.0 65\r\n".to_vec(), small, |e| {
            matches!(e, DecodeError::HeaderTooLarge { len: 65, max: 64 })
        }),
        ("header truncated", b"TWILSOCK V3.0 10\r\n{}".to_vec(), Limits::default(), |e| {
            matches!(
                e,
                DecodeError::TruncatedHeader {
                    declared: 10,
                    available: 2
                }
            )
        }),
        ("no second crlf", b"TWILSOCK V3.0 2\r\n{}".to_vec(), Limits::default(), |e| {
            matches!(e, DecodeError::MissingSeparator)
        }),
        ("header not json", frame("{x}", b""), Limits::default(), |e| {
            matches!(e, DecodeError::HeaderNotJson(_))
        }),
        (
            "header not utf-8",
            b"TWILSOCK V3.0 3\r\n\"\xff\"\r\n".to_vec(),
            Limits::default(),
            |e| matches!(e, DecodeError::HeaderNotJson(_)),
        ),
        ("header an array", frame("[]", b""), Limits::default(), |e| {
            matches!(e, DecodeError::HeaderNotObject)
        }),
        ("no method", frame(r#"{"id":"1","payload_size":0}"#, b""), Limits::default(), |e| {
            matches!(e, DecodeError::MissingField("method"))
        }),
        (
            "method not a string",
            frame(r#"{"method":1,"id":"1","payload_size":0}"#, b""),
            Limits::default(),
            |e| matches!(e, DecodeError::MissingField("method")),
        ),
        (
            "no id",
            frame(r#"{"method":"ping","payload_size":0}"#, b""),
            Limits::default(),
            |e| matches!(e, DecodeError::MissingField("id")),
        ),
        (
            "no payload_size",
            frame(r#"{"method":"ping","id":"1"}"#, b""),
            Limits::default(),
            |e| matches!(e, DecodeError::MissingPayloadSize),
        ),
        (
            "negative payload_size",
            frame(r#"{"method":"ping","id":"1","payload_size":-1}"#, b""),
            Limits::default(),
            |e| matches!(e, DecodeError::InvalidPayloadSize),
        ),
        (
            "fractional payload_size",
            frame(r#"{"method":"ping","id":"1","payload_size":1.5}"#, b"xx"),
            Limits::default(),
            |e| matches!(e, DecodeError::InvalidPayloadSize),
        ),
        (
            "string payload_size",
            frame(r#"{"method":"ping","id":"1","payload_size":"2"}"#, b"{}"),
            Limits::default(),
            |e| matches!(e, DecodeError::InvalidPayloadSize),
        ),
        (
            "payload too large",
            frame(r#"{"method":"m","id":"1","payload_size":5}"#, b"12345"),
            small,
            |e| matches!(e, DecodeError::PayloadTooLarge { len: 5, max: 4 }),
        ),
        (
            "payload_size beyond usize and limits",
            frame(r#"{"method":"m","id":"1","payload_size":18446744073709551615}"#, b""),
            Limits::default(),
            |e| matches!(e, DecodeError::PayloadTooLarge { .. }),
        ),
        (
            "payload truncated",
            frame(r#"{"method":"m","id":"1","payload_size":3}"#, b"{}"),
            Limits::default(),
            |e| matches!(e, DecodeError::TruncatedPayload { declared: 3, available: 2 }),
        ),
    ];
    for (name, input, limits, check) in cases {
        match decode(&input, &limits) {
            Ok(p) => panic!("{name}: expected an error, decoded {p:?}"),
            Err(e) => assert!(check(&e), "{name}: unexpected error {e:?} ({e})"),
        }
    }
}

#[test]
fn decodes_sdk_frame_and_ignores_trailing_bytes() {
    let header = r#"{"method":"message","id":"TM1","payload_type":"application/json; charset=utf-8","payload_size":13}"#;
    let mut f = frame(header, br#"{"body":"hi"}"#);
    f.extend_from_slice(b"\r\ntrailing garbage");
    let p = dec(&f).expect("valid frame");
    assert_eq!(p.method(), Some("message"));
    assert_eq!(p.id(), Some("TM1"));
    assert_eq!(p.payload_type(), Some("application/json; charset=utf-8"));
    assert_eq!(&p.payload[..], br#"{"body":"hi"}"#);
    let body: Value = p.payload_json().expect("json payload");
    assert_eq!(body, json!({"body": "hi"}));

    let shared = decode_bytes(&Bytes::from(f), &Limits::default()).expect("valid frame");
    assert_eq!(shared, p);
}

#[test]
fn header_length_counts_utf8_bytes() {
    let p = Packet {
        header: map(json!({"method": "notification", "id": "é✓"})),
        payload: Bytes::new(),
    };
    let f = p.clone().into_frame();
    let header_json = r#"{"method":"notification","id":"é✓","payload_size":0}"#;
    assert!(f.starts_with(format!("TWILSOCK V3.0 {}\r\n", header_json.len()).as_bytes()));
    assert_eq!(dec(&f).expect("round trip"), p_with_size(p, 0));
}

fn p_with_size(mut p: Packet, size: usize) -> Packet {
    p.header.insert("payload_size".into(), size.into());
    p
}

#[test]
fn encode_sets_framing_fields() {
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    let expected = |header: &str, payload: &[u8]| text(Bytes::from(frame(header, payload)));
    // A stale payload_size is overwritten and moved last; payload_type defaults to JSON.
    assert_eq!(
        text(encode(map(json!({"payload_size": 99, "method": "reply", "id": "1"})), b"{}")),
        expected(
            r#"{"method":"reply","id":"1","payload_type":"application/json","payload_size":2}"#,
            b"{}"
        )
    );
    // An explicit payload_type is kept, a null one is replaced.
    assert_eq!(
        text(encode(map(json!({"method": "m", "id": "1", "payload_type": "text/plain"})), b"x")),
        expected(r#"{"method":"m","id":"1","payload_type":"text/plain","payload_size":1}"#, b"x")
    );
    assert_eq!(
        text(encode(map(json!({"method": "m", "id": "1", "payload_type": null})), b"x")),
        expected(
            r#"{"method":"m","id":"1","payload_type":"application/json","payload_size":1}"#,
            b"x"
        )
    );
    // An empty payload gets no payload_type, and the frame still ends in CRLF.
    assert_eq!(
        text(encode(map(json!({"method": "ping", "id": "1"})), b"")),
        "TWILSOCK V3.0 43\r\n{\"method\":\"ping\",\"id\":\"1\",\"payload_size\":0}\r\n"
    );
}

#[test]
fn decimal_helpers() {
    for n in [0usize, 9, 10, 99, 100, 12345, usize::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
        assert_eq!(decimal_digits(n), n.to_string().len());
    }
}

#[test]
fn snapshot_init_reply() {
    let header = map(json!({
        "method": "reply",
        "id": "TM00000000-0000-0000-0000-000000000001",
        "status": {"code": 200, "status": "OK"},
        "continuation_token": "ct-1",
        "capabilities": ["client_update", "offline_storage"],
        "offline_storage": {"ip_messaging": {"storage_id": "st-1"}},
        "init_registrations": null,
        "debug_info": null,
    }));
    let f = encode(header, b"");
    insta::assert_snapshot!(String::from_utf8_lossy(&f), @r#"
    TWILSOCK V3.0 297
    {"method":"reply","id":"TM00000000-0000-0000-0000-000000000001","status":{"code":200,"status":"OK"},"continuation_token":"ct-1","capabilities":["client_update","offline_storage"],"offline_storage":{"ip_messaging":{"storage_id":"st-1"}},"init_registrations":null,"debug_info":null,"payload_size":0}
    "#);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".*", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_header() -> impl Strategy<Value = Map<String, Value>> {
    (".*", ".*", prop::collection::btree_map(".*", arb_json(), 0..6)).prop_map(|(method, id, extra)| {
        let mut h = Map::new();
        h.insert("method".into(), method.into());
        h.insert("id".into(), id.into());
        for (k, v) in extra {
            if !matches!(k.as_str(), "method" | "id" | "payload_size" | "payload_type") {
                h.insert(k, v);
            }
        }
        h
    })
}

fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (arb_header(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(h, p)| encode(h, &p).to_vec())
}

proptest! {
    #[test]
    fn round_trip(header in arb_header(), payload in prop::collection::vec(any::<u8>(), 0..512)) {
        let frame = encode(header.clone(), &payload);
        let p = dec(&frame).expect("an encoded frame decodes");
        prop_assert_eq!(&p.payload[..], &payload[..]);
        let mut expected = header;
        if !payload.is_empty() {
            expected.insert("payload_type".into(), JSON_PAYLOAD_TYPE.into());
        }
        expected.insert("payload_size".into(), payload.len().into());
        prop_assert_eq!(p.header, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = dec(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_preamble_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut f = PREAMBLE.to_vec();
        f.extend_from_slice(&bytes);
        let _ = dec(&f);
    }

    #[test]
    fn mutated_frames_never_panic(
        frame in valid_frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = frame;
        for (at, byte) in flips {
            let i = at.index(f.len());
            f[i] = byte;
        }
        let keep = cut.index(f.len() + 1);
        f.truncate(keep);
        let tight = Limits { max_header_bytes: 128, max_payload_bytes: 32 };
        let _ = dec(&f);
        let _ = decode(&f, &tight);
        let _ = decode_bytes(&Bytes::from(f), &tight);
    }
}

// `is_reply`: the ack fast path must agree with `decode`.

fn reply_head(method: &str, extra: Value) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("method".into(), method.into());
    h.insert("id".into(), "TM1".into());
    if let Value::Object(extra) = extra {
        h.extend(extra);
    }
    h
}

#[test]
fn recognises_the_sdks_ack_and_nothing_that_decode_would_refuse() {
    let limits = Limits::default();
    let ack = encode(reply_head("reply", json!({"status": {"code": 200, "status": "ok"}})), b"");
    assert!(is_reply(&ack, &limits));
    assert!(!is_reply(&encode(reply_head("message", json!({})), b"{}"), &limits));
    for refused in [
        frame(r#"["reply","TM1",0]"#, b""),
        frame(r#"{"method":"reply","method":"reply","id":"TM1","payload_size":0}"#, b""),
        frame(r#"{"method":"reply","id":7,"payload_size":0}"#, b""),
        frame(r#"{"method":"reply","id":"TM1","payload_size":1.0}"#, b"x"),
        frame(r#"{"method":"reply","id":"TM1","payload_size":5}"#, b"abc"),
        frame(r#"{"method":"reply","id":"TM1","payload_size":0} x"#, b""),
        // What serde would skip unread under an unknown key but `decode` refuses.
        frame(r#"{"method":"reply","id":"TM1","x":"\ud800","payload_size":0}"#, b""),
        frame(r#"{"method":"reply","id":"TM1","x":1e400,"payload_size":0}"#, b""),
        frame(
            r#"{"method":"reply","id":"TM1","status":{"code":200,"x":"\ud800"},"payload_size":0}"#,
            b"",
        ),
        b"TWILSOCK V3.0 10\r\n{}".to_vec(),
    ] {
        assert!(!is_reply(&refused, &limits), "{}", String::from_utf8_lossy(&refused));
    }
    // An escaped method is still `reply`, as `decode` reads it.
    let escaped = frame(r#"{"method":"re\u0070ly","id":"TM1","payload_size":0}"#, b"");
    assert!(is_reply(&escaped, &limits));
    assert_eq!(decode(&escaped, &limits).expect("decodes").method(), Some("reply"));
    // The limits apply as in `decode`.
    let tight = Limits {
        max_header_bytes: 8,
        max_payload_bytes: 0,
    };
    assert!(!is_reply(&ack, &tight));
}

proptest! {
    /// `is_reply` never says yes where `decode` fails or finds another method, and says yes for
    /// every SDK-shaped ack (`method`, `id`, `payload_type`, `status`, `payload_size`); a header
    /// with any other key takes the full path.
    #[test]
    fn agrees_with_decode(
        method in prop_oneof![Just("reply".to_owned()), ".*"],
        status in prop::option::of((any::<u16>(), "[A-Za-z ]{0,12}")),
        extra in prop::collection::btree_map("[a-z_]{1,12}", any::<u32>(), 0..3),
        payload in prop::collection::vec(any::<u8>(), 0..32),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let limits = Limits::default();
        let mut h = reply_head(&method, json!({}));
        if let Some((code, text)) = status {
            h.insert("status".into(), json!({"code": code, "status": text}));
        }
        let mut sdk_shaped = true;
        for (k, v) in extra {
            if !matches!(k.as_str(), "method" | "id" | "payload_size" | "payload_type" | "status") {
                h.insert(k, v.into());
                sdk_shaped = false;
            }
        }
        let frame = encode(h, &payload).to_vec();
        prop_assert_eq!(is_reply(&frame, &limits), method == "reply" && sdk_shaped);
        let mut mutated = frame;
        flip(&mut mutated, &flips);
        yes_means_a_decoded_reply(&mutated, &limits)?;
    }
}

/// Overwrites one byte per `(position, value)`.
fn flip(frame: &mut [u8], flips: &[(prop::sample::Index, u8)]) {
    for (at, byte) in flips {
        let i = at.index(frame.len());
        frame[i] = *byte;
    }
}

/// Where `is_reply` says yes, `decode` must succeed with method `reply`.
fn yes_means_a_decoded_reply(frame: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    if is_reply(frame, limits) {
        let decoded = decode(frame, limits);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        let method = decoded.ok().and_then(|p| p.method().map(str::to_owned));
        prop_assert_eq!(method.as_deref(), Some("reply"));
    }
    Ok(())
}

/// The SDK's ack, byte for byte, with its id.
fn sdk_ack(id: &str) -> Vec<u8> {
    frame(
        &format!(
            r#"{{"method":"reply","id":"{id}","payload_type":"application/json","status":{{"code":200,"status":"OK"}},"payload_size":0}}"#
        ),
        b"",
    )
}

#[test]
fn the_sdks_own_ack_bytes_are_a_reply() {
    let limits = Limits::default();
    for id in ["TM1", "RQ0d1f2e3c-9", "a.b_c"] {
        assert!(is_reply(&sdk_ack(id), &limits), "{id}");
    }
    // Off the exact shape (an escape in the id, a quote), the typed parse decides as `decode`.
    assert!(is_reply(&sdk_ack(r"T\u004d1"), &limits));
    assert!(!is_reply(&sdk_ack(r#"T"M"#), &limits));
    let empty = sdk_ack("");
    let decoded_reply = decode(&empty, &limits).is_ok_and(|p| p.method() == Some("reply"));
    assert_eq!(is_reply(&empty, &limits), decoded_reply);
}

proptest! {
    /// Mutations of the SDK's exact ack never fool the byte comparison into a yes `decode`
    /// would not give.
    #[test]
    fn mutated_sdk_acks_agree_with_decode(
        id in "[A-Za-z0-9]{1,34}",
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let limits = Limits::default();
        let mut f = sdk_ack(&id);
        prop_assert!(is_reply(&f, &limits));
        flip(&mut f, &flips);
        yes_means_a_decoded_reply(&f, &limits)?;
    }
}
