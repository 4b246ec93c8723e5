//! Twilsock frames as a client sends them, and the upstream requests they carry.
//!
//! Properties: decoding never panics and returns a packet or a typed error; the copying and the
//! sharing decoder agree; tighter limits only refuse more; a decoded packet re-encodes to a frame
//! that decodes to the same header (`payload_size` rewritten, `payload_type` defaulted) and the
//! same payload; the upstream request of any packet parses or is refused with a typed error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rehearsal_mock_server::fuzzing::{JSON_PAYLOAD_TYPE, Limits, decode, decode_bytes, encode, parse_upstream_request};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let copied = decode(data, &limits);
    let shared = decode_bytes(&Bytes::copy_from_slice(data), &limits);
    match (&copied, &shared) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "decode and decode_bytes disagree"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "decode and decode_bytes disagree"),
        _ => panic!("decode and decode_bytes disagree: {copied:?} / {shared:?}"),
    }
    let tight = Limits {
        max_header_bytes: 128,
        max_payload_bytes: 32,
    };
    if decode(data, &tight).is_ok() {
        assert!(copied.is_ok(), "tighter limits accepted what the default refused");
    }
    let Ok(packet) = copied else { return };
    assert!(
        packet.method().is_some() && packet.id().is_some(),
        "a decoded packet has method and id"
    );

    // Round trip. Re-encoding may lengthen the header (numbers are re-serialised), so the second
    // decode has no header limit.
    let frame = encode(packet.header.clone(), &packet.payload);
    let unlimited = Limits {
        max_header_bytes: usize::MAX,
        max_payload_bytes: usize::MAX,
    };
    let again = decode(&frame, &unlimited).expect("an encoded packet decodes");
    assert_eq!(again.payload, packet.payload, "payload changed in a round trip");
    let mut expected = packet.header.clone();
    if !packet.payload.is_empty() && matches!(expected.get("payload_type"), None | Some(Value::Null)) {
        expected.insert("payload_type".into(), JSON_PAYLOAD_TYPE.into());
    }
    expected.insert("payload_size".into(), packet.payload.len().into());
    assert!(
        same_json(&Value::Object(again.header.clone()), &Value::Object(expected)),
        "header changed in a round trip: {:?} vs {:?}",
        again.header,
        packet.header
    );

    if let Ok(request) = parse_upstream_request(&packet) {
        assert_eq!(request.method, request.method.to_ascii_uppercase());
        assert!(!request.raw_path.contains('?'), "the query string is split off the path");
        assert_eq!(request.body, packet.payload);
    }
});

/// JSON equality, numbers compared as numbers: serde_json's default float parser may land one
/// unit in the last place away from the value it printed, which is not a codec fault.
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
