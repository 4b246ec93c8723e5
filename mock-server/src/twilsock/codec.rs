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

/// Whether `frame` is a well-formed `reply` packet, decided without building the header map.
///
/// The SDK acknowledges every push with a `reply`, so under fan-out this runs once per
/// delivery; the session only counts acks, and parsing each header into a `Value` map was the
/// largest share of the server's per-delivery CPU after the socket itself. `true` only when
/// [`decode`] would succeed on the same bytes and return `method == "reply"`: anything unusual
/// (another method, a duplicate or mistyped field, a non-object header, a bad size) answers
/// `false`, and the caller then takes the full [`decode`] path, so errors and their messages
/// are unchanged.
pub fn is_reply(frame: &[u8], limits: &Limits) -> bool {
    // Every field the SDK's ack carries, typed, and nothing else: a field serde would skip
    // unread (an unknown key) could hold what `decode`'s `Value` parse refuses (a lone
    // surrogate escape, invalid UTF-8, a number out of range), so any other key, or a value of
    // another type, answers `false` and takes the full path.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only to check their types
    struct Head<'a> {
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(borrow)]
        id: Cow<'a, str>,
        payload_size: u64,
        #[serde(borrow, default)]
        payload_type: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        status: Option<Status<'a>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Status<'a> {
        code: Option<i64>,
        #[serde(borrow)]
        status: Option<Cow<'a, str>>,
        #[serde(borrow)]
        description: Option<Cow<'a, str>>,
        #[serde(rename = "errorCode")]
        error_code: Option<i64>,
    }
    use std::borrow::Cow;
    let Some(rest) = frame.strip_prefix(PREAMBLE) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_LENGTH_DIGITS {
        return false;
    }
    let (len_digits, rest) = rest.split_at(digits);
    let Some(header_len) = parse_decimal(len_digits)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= limits.max_header_bytes)
    else {
        return false;
    };
    let Some(header) = rest.strip_prefix(CRLF).and_then(|r| r.get(..header_len)) else {
        return false;
    };
    let Some(after) = rest.get(CRLF.len() + header_len..).and_then(|r| r.strip_prefix(CRLF)) else {
        return false;
    };
    if is_sdk_ack(header) {
        return true;
    }
    // serde also reads a struct from a JSON array; `decode` accepts only an object.
    if header.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    let Ok(head) = serde_json::from_slice::<Head<'_>>(header) else {
        return false;
    };
    head.method == "reply" && usize::try_from(head.payload_size).is_ok_and(|len| len <= limits.max_payload_bytes && len <= after.len())
}

/// The ack exactly as the SDK writes it (`TwilsockChannel.confirmReceiving`, the same bytes in
/// 2.x and 3.x), compared byte for byte: a plain id between fixed text. This is valid JSON
/// with `method` `reply` by construction, and it takes a fraction of a typed parse.
fn is_sdk_ack(header: &[u8]) -> bool {
    const HEAD: &[u8] = br#"{"method":"reply","id":""#;
    const TAIL: &[u8] = br#"","payload_type":"application/json","status":{"code":200,"status":"OK"},"payload_size":0}"#;
    let Some(rest) = header.strip_prefix(HEAD) else {
        return false;
    };
    let Some(id) = rest.strip_suffix(TAIL) else {
        return false;
    };
    !id.is_empty() && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
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
mod tests;
