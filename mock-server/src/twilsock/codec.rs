//! Twilsock v3 framing: one packet per WebSocket binary message.
//!
//! ```text
//! TWILSOCK V3.0 <H>\r\n<header JSON, H bytes>\r\n<payload, header.payload_size bytes>
//! ```
//!
//! **Boundary:** the codec knows the frame layout and the three header fields that frame it
//! (`method`, `id`, `payload_size`, plus the `payload_type` default). It knows nothing about what a
//! method means, about sessions, Sync or Conversations: everything else in the header is passed
//! through untouched as a JSON map.
//!
//! **Invariant:** [`decode`] never panics, whatever the bytes, and never allocates more than the
//! frame it was given plus the parsed header (sizes are checked against [`Limits`] and against
//! the frame length before anything is sliced or copied).

use std::io;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Everything up to the header length. The SDK writes exactly this, and rejects any other magic
/// or version (it drops the packet), so there is nothing to negotiate.
const PREAMBLE: &[u8] = b"TWILSOCK V3.0 ";
const MAGIC: &[u8] = b"TWILSOCK";
const VERSION: &[u8] = b"V3.0";
const CRLF: &[u8] = b"\r\n";

/// The `payload_type` the SDK assumes when the field is absent, and the only one (with
/// `text/plain`) it does not throw away; see the wire-protocol notes, section 2.2.
pub const JSON_PAYLOAD_TYPE: &str = "application/json";

/// A `u64` has at most 20 decimal digits; a longer length field is garbage, not a big header.
const MAX_LENGTH_DIGITS: usize = 20;

/// Size limits applied while decoding untrusted frames.
///
/// They exist so that a hostile or buggy client cannot make the server parse a huge header or
/// trust a `payload_size` it never sent; the transport's own message-size limit still applies
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted header JSON, in bytes. Real headers are a few hundred bytes; the biggest
    /// is `init`, which carries the access token.
    pub max_header_bytes: usize,
    /// Largest accepted payload, in bytes. Upstream requests carry message bodies and attributes,
    /// never media (media goes over direct HTTP).
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    /// 64 KiB of header, 16 MiB of payload: far above anything the SDK sends, far below what
    /// would hurt the server.
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_payload_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One twilsock packet: its header fields as sent, and its raw payload.
///
/// The header stays a JSON map rather than a struct because each method carries different
/// fields and the server must echo some it does not understand; typed views belong to the
/// session layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub header: Map<String, Value>,
    pub payload: Bytes,
}

impl Packet {
    /// The packet type (`init`, `message`, `reply`, ...). Always present on a decoded packet.
    pub fn method(&self) -> Option<&str> {
        self.header.get("method").and_then(Value::as_str)
    }

    /// The packet id; a reply must carry the id of the packet it answers. Always present on a
    /// decoded packet.
    pub fn id(&self) -> Option<&str> {
        self.header.get("id").and_then(Value::as_str)
    }

    /// The declared payload type, if any. Absent means JSON to the SDK.
    pub fn payload_type(&self) -> Option<&str> {
        self.header.get("payload_type").and_then(Value::as_str)
    }

    /// Parses the payload as JSON into `T` (use `Value` for untyped access).
    ///
    /// It does not look at `payload_type`: upstream requests label form-encoded bodies
    /// correctly, so the caller decides which parser applies. An empty payload is an error here
    /// (JSON has no empty document); check `payload.is_empty()` first where a body is optional.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// Encodes this packet (see [`encode`]); consumes it so that the header is not cloned.
    pub fn into_frame(self) -> Bytes {
        encode(self.header, &self.payload)
    }
}

/// Why a frame could not be decoded.
///
/// Every variant is a client (or test) mistake; the session layer decides whether that closes
/// the socket (twilsock `close` 406) or just drops the packet, as the SDK itself does.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("bad magic: frame does not start with `TWILSOCK `")]
    BadMagic,
    #[error("unsupported protocol version `{found}`, expected `V3.0`")]
    BadVersion { found: String },
    #[error("bad header length: expected decimal digits followed by crlf")]
    BadHeaderLength,
    #[error("header of {len} bytes exceeds the limit of {max} bytes")]
    HeaderTooLarge { len: u64, max: usize },
    #[error("header declared {declared} bytes but the frame holds only {available}")]
    TruncatedHeader { declared: usize, available: usize },
    #[error("missing crlf between header and payload")]
    MissingSeparator,
    #[error("header is not valid json: {0}")]
    HeaderNotJson(serde_json::Error),
    #[error("header is not a json object")]
    HeaderNotObject,
    #[error("header field `{0}` is missing or not a string")]
    MissingField(&'static str),
    #[error("header field `payload_size` is missing")]
    MissingPayloadSize,
    #[error("header field `payload_size` is not a non-negative integer")]
    InvalidPayloadSize,
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge { len: u64, max: usize },
    #[error("payload declared {declared} bytes but the frame holds only {available}")]
    TruncatedPayload { declared: usize, available: usize },
}

/// Encodes one packet.
///
/// `payload_size` is always (re)written from `payload.len()`, so callers cannot get it wrong,
/// and moved to the end of the header as the SDK does. A non-empty payload without a
/// `payload_type` (or with a null one) is labelled `application/json`, because the SDK discards
/// payloads of any type it does not know. The second CRLF is emitted even for an empty payload,
/// like the SDK.
///
/// Allocation: exactly one buffer, sized up front. The header is serialised twice (once into a
/// byte counter, once into the buffer) because the length prefix precedes the header; for
/// headers of a few hundred bytes that is cheaper than growing or copying the buffer, and the
/// result is a `Bytes` that fan-out can clone without copying.
pub fn encode(mut header: Map<String, Value>, payload: &[u8]) -> Bytes {
    if !payload.is_empty() && matches!(header.get("payload_type"), None | Some(Value::Null)) {
        header.insert("payload_type".to_owned(), Value::from(JSON_PAYLOAD_TYPE));
    }
    // `shift_remove` (not `remove`, which swaps under `preserve_order`) keeps the other fields in
    // the caller's order; re-inserting puts `payload_size` last.
    header.shift_remove("payload_size");
    header.insert("payload_size".to_owned(), Value::from(payload.len()));

    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, &header).expect(INFALLIBLE_JSON);
    let header_len = counter.0;

    let capacity = PREAMBLE.len() + decimal_digits(header_len) + CRLF.len() + header_len + CRLF.len() + payload.len();
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(PREAMBLE);
    push_decimal(&mut out, header_len);
    out.extend_from_slice(CRLF);
    serde_json::to_writer(&mut out, &header).expect(INFALLIBLE_JSON);
    out.extend_from_slice(CRLF);
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len(), capacity, "encode capacity must be exact");
    Bytes::from(out)
}

const INFALLIBLE_JSON: &str = "a JSON map serialises without error into an infallible writer";

/// Decodes one frame, copying the payload out of `frame`.
///
/// Bytes after `payload_size` are ignored, as the SDK ignores them.
pub fn decode(frame: &[u8], limits: &Limits) -> Result<Packet, DecodeError> {
    let (header, payload) = parse(frame, limits)?;
    Ok(Packet {
        header,
        // In bounds: `parse` derived the range from checked slices of this same `frame`.
        payload: Bytes::copy_from_slice(&frame[payload]),
    })
}

/// Like [`decode`], but the payload shares `frame`'s buffer instead of being copied; use it
/// when the transport already hands over a `Bytes` (as axum's WebSocket messages do).
pub fn decode_bytes(frame: &Bytes, limits: &Limits) -> Result<Packet, DecodeError> {
    let (header, payload) = parse(frame, limits)?;
    Ok(Packet {
        header,
        payload: frame.slice(payload),
    })
}

/// Validates the frame and returns the header and the payload's range within `frame`. The
/// returned range is always within bounds (it was obtained with checked slicing).
fn parse(frame: &[u8], limits: &Limits) -> Result<(Map<String, Value>, std::ops::Range<usize>), DecodeError> {
    let rest = frame
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(b" "))
        .ok_or(DecodeError::BadMagic)?;
    let rest = match rest.strip_prefix(VERSION).and_then(|r| r.strip_prefix(b" ")) {
        Some(r) => r,
        None => {
            return Err(DecodeError::BadVersion {
                found: version_token(rest),
            });
        }
    };

    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_LENGTH_DIGITS {
        return Err(DecodeError::BadHeaderLength);
    }
    let (len_digits, rest) = rest.split_at(digits);
    let declared = parse_decimal(len_digits).ok_or(DecodeError::BadHeaderLength)?;
    let rest = rest.strip_prefix(CRLF).ok_or(DecodeError::BadHeaderLength)?;

    let header_len = usize::try_from(declared)
        .ok()
        .filter(|len| *len <= limits.max_header_bytes)
        .ok_or(DecodeError::HeaderTooLarge {
            len: declared,
            max: limits.max_header_bytes,
        })?;
    let header_bytes = rest.get(..header_len).ok_or(DecodeError::TruncatedHeader {
        declared: header_len,
        available: rest.len(),
    })?;
    let rest = rest
        .get(header_len..)
        .and_then(|r| r.strip_prefix(CRLF))
        .ok_or(DecodeError::MissingSeparator)?;

    let header = match serde_json::from_slice::<Value>(header_bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(DecodeError::HeaderNotObject),
        Err(e) => return Err(DecodeError::HeaderNotJson(e)),
    };
    for field in ["method", "id"] {
        if !header.get(field).is_some_and(Value::is_string) {
            return Err(DecodeError::MissingField(field));
        }
    }
    let declared = header
        .get("payload_size")
        .ok_or(DecodeError::MissingPayloadSize)?
        .as_u64()
        .ok_or(DecodeError::InvalidPayloadSize)?;
    let payload_len = usize::try_from(declared)
        .ok()
        .filter(|len| *len <= limits.max_payload_bytes)
        .ok_or(DecodeError::PayloadTooLarge {
            len: declared,
            max: limits.max_payload_bytes,
        })?;
    if rest.len() < payload_len {
        return Err(DecodeError::TruncatedPayload {
            declared: payload_len,
            available: rest.len(),
        });
    }
    // `rest` is a suffix of `frame`, so its offset is the difference of the lengths.
    let start = frame.len() - rest.len();
    Ok((header, start..start + payload_len))
}

/// The version field as found, for the error message: up to the next space, at most 16 bytes,
/// lossily decoded (it is attacker-controlled and only ever logged).
fn version_token(rest: &[u8]) -> String {
    let end = rest.iter().position(|b| *b == b' ' || *b == b'\r').unwrap_or(rest.len()).min(16);
    String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned()
}

/// Parses ASCII digits (already checked) into a `u64`, `None` on overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    digits
        .iter()
        .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d.wrapping_sub(b'0'))))
}

fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// Appends `n` in decimal without going through `fmt` (which would need a fallible writer or a
/// temporary `String`).
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; MAX_LENGTH_DIGITS];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        // `n % 10` < 10, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// An `io::Write` that only counts, to learn the serialised header length without allocating.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
}
