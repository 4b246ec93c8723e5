//! Twilsock v3 framing, client side:
//! `TWILSOCK V3.0 <H>\r\n<header JSON, H bytes>\r\n<payload, header.payload_size bytes>`.
//!
//! Written independently of the server's codec on purpose: a client that shared the server's
//! framing code could not catch a framing bug in it. Frames from the server are trusted only as
//! far as their declared sizes fit the frame (a bad frame is an error, never a panic).
use std::io::Write as _;

use bytes::Bytes;
use serde_json::{Map, Value, json};

const PREAMBLE: &[u8] = b"TWILSOCK V3.0 ";
const CRLF: &[u8] = b"\r\n";

/// One decoded packet: the header fields as sent and the raw payload (sharing the frame's
/// buffer, so decoding a push copies nothing but the header).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub header: Map<String, Value>,
    pub payload: Bytes,
}

impl Packet {
    pub fn method(&self) -> Option<&str> {
        self.header.get("method").and_then(Value::as_str)
    }

    pub fn id(&self) -> Option<&str> {
        self.header.get("id").and_then(Value::as_str)
    }

    /// The payload as JSON; `Null` when empty (acks and most control packets carry none).
    pub fn payload_json(&self) -> Result<Value, serde_json::Error> {
        if self.payload.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice(&self.payload)
        }
    }
}

/// Why a frame from the server is not a twilsock packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame does not start with `TWILSOCK V3.0 `")]
    BadPreamble,
    #[error("bad header length")]
    BadHeaderLength,
    #[error("frame shorter than its declared sizes")]
    Truncated,
    #[error("header is not a JSON object: {0}")]
    BadHeader(String),
    #[error("header has no numeric payload_size")]
    NoPayloadSize,
}

/// Encodes a packet. `payload_size` is written last, from `payload.len()`, as the SDK does; a
/// non-empty payload without `payload_type` is labelled JSON.
pub fn encode(header: &Map<String, Value>, payload: &[u8]) -> Bytes {
    let mut h = header.clone();
    if !payload.is_empty() && !h.contains_key("payload_type") {
        h.insert("payload_type".into(), Value::from("application/json"));
    }
    h.shift_remove("payload_size");
    h.insert("payload_size".into(), Value::from(payload.len()));
    let header_json = serde_json::to_vec(&h).expect("a JSON map always serialises");
    frame(&header_json, payload)
}

/// Assembles a frame from an already serialised header (which must end with `payload_size`
/// equal to `payload.len()`). Hot paths (acks) build their header text directly.
pub fn frame(header_json: &[u8], payload: &[u8]) -> Bytes {
    let len = header_json.len().to_string();
    let mut out = Vec::with_capacity(PREAMBLE.len() + len.len() + 4 + header_json.len() + payload.len());
    out.extend_from_slice(PREAMBLE);
    out.extend_from_slice(len.as_bytes());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(header_json);
    out.extend_from_slice(CRLF);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The SDK's acknowledgement of a server packet (`notification`, `ping`, `client_update`,
/// `close`): a `reply` with the packet's id and status 200.
pub fn ack(id: &str) -> Bytes {
    let mut out = Vec::new();
    ack_into(&mut out, id);
    Bytes::from(out)
}

/// [`ack`], appended to `out`: a caller that acks every push reuses one buffer and allocates
/// nothing per ack.
pub fn ack_into(out: &mut Vec<u8>, id: &str) {
    let start = out.len();
    out.extend_from_slice(br#"{"method":"reply","id":"#);
    serde_json::to_writer(&mut *out, id).expect("a string serialises");
    out.extend_from_slice(br#","payload_type":"application/json","status":{"code":200,"status":"OK"},"payload_size":0}"#);
    let header_len = out.len() - start;
    // The preamble goes before the header, whose length it names.
    let mut preamble = std::io::Cursor::new([0u8; 40]);
    write!(preamble, "TWILSOCK V3.0 {header_len}\r\n").expect("40 bytes hold the preamble");
    let n = preamble.position() as usize;
    out.splice(start..start, preamble.get_ref()[..n].iter().copied());
    out.extend_from_slice(CRLF);
}

/// The SDK's `init`: the first packet of a connection, with the token, the capabilities and
/// the Conversations registration the official SDK sends.
pub fn init(id: &str, token: &str) -> Bytes {
    let Value::Object(header) = json!({
        "method": "init", "id": id, "token": token, "continuation_token": null,
        "capabilities": ["client_update", "offline_storage", "telemetry.v1"],
        "metadata": {"ver": "1.0.2", "env": "Rust", "type": "conversations", "sdk": "rehearsal-client", "sdkv": env!("CARGO_PKG_VERSION")},
        "registrations": [{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
            "message_types": ["twilio.ipmsg.typing_indicator", "twilio.sync.event", "com.twilio.rtd.cds.document",
                              "com.twilio.rtd.cds.list", "com.twilio.rtd.cds.map"]}],
        "tweaks": null,
    }) else {
        unreachable!("a JSON object literal")
    };
    encode(&header, b"")
}

/// An upstream (HTTP-over-twilsock) request as the SDK sends it: a `message` packet whose
/// `http_request` names the host the SDK would use for `path` (`aim` for `/Client/…`, `cds`
/// otherwise). `params` must already be percent-encoded, as the SDK sends them.
pub fn upstream_request(id: &str, method: &str, path: &str, params: Map<String, Value>, content_type: &str, payload: &[u8]) -> Bytes {
    let host = if path.starts_with("/Client/") {
        "aim.us1.twilio.com"
    } else {
        "cds.us1.twilio.com"
    };
    let Value::Object(header) = json!({
        "method": "message", "id": id, "active_grant": "ip_messaging", "payload_type": content_type,
        "http_request": {"host": host, "path": path, "method": method, "params": params,
                         "headers": {"Content-Type": content_type}},
    }) else {
        unreachable!("a JSON object literal")
    };
    encode(&header, payload)
}

/// Splits a frame into its header JSON and what follows the header's CRLF (the payload and
/// anything after it), checking the preamble and the declared header length. For a reader that
/// parses the header its own way; [`decode`] is the usual one.
pub fn split(frame: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let rest = frame.strip_prefix(PREAMBLE).ok_or(DecodeError::BadPreamble)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return Err(DecodeError::BadHeaderLength);
    }
    let header_len: usize = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError::BadHeaderLength)?;
    let rest = rest[digits..].strip_prefix(CRLF).ok_or(DecodeError::BadHeaderLength)?;
    if rest.len() < header_len {
        return Err(DecodeError::Truncated);
    }
    let (header_bytes, rest) = rest.split_at(header_len);
    let rest = rest.strip_prefix(CRLF).ok_or(DecodeError::Truncated)?;
    Ok((header_bytes, rest))
}

/// Decodes one frame; the payload shares `frame`'s buffer. Bytes after `payload_size` are
/// ignored, as the SDK ignores them.
pub fn decode(frame: &Bytes) -> Result<Packet, DecodeError> {
    let (header_bytes, rest) = split(frame)?;
    let header: Map<String, Value> = serde_json::from_slice(header_bytes).map_err(|e| DecodeError::BadHeader(e.to_string()))?;
    let size = header
        .get("payload_size")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(DecodeError::NoPayloadSize)?;
    if rest.len() < size {
        return Err(DecodeError::Truncated);
    }
    let start = frame.len() - rest.len();
    Ok(Packet {
        header,
        payload: frame.slice(start..start + size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_puts_payload_size_last_and_labels_json() {
        let Value::Object(h) = json!({"method": "message", "id": "TM1", "payload_size": 99}) else {
            unreachable!()
        };
        let f = encode(&h, br#"{"a":1}"#);
        let text = std::str::from_utf8(&f).unwrap();
        assert!(text.starts_with("TWILSOCK V3.0 "), "{text}");
        assert!(text.contains(r#""payload_type":"application/json","payload_size":7}"#), "{text}");
        let p = decode(&f).unwrap();
        assert_eq!(p.method(), Some("message"));
        assert_eq!(p.payload_json().unwrap(), json!({"a": 1}));
    }

    #[test]
    fn ack_is_a_reply_with_the_same_id() {
        let mut appended = b"before".to_vec();
        ack_into(&mut appended, "TM\"x");
        assert_eq!(&appended[..6], b"before");
        assert_eq!(&appended[6..], &ack("TM\"x")[..], "appended as it is alone");
        let p = decode(&ack("TM\"x")).unwrap();
        assert_eq!(p.method(), Some("reply"));
        assert_eq!(p.id(), Some("TM\"x"));
        assert_eq!(p.header["status"]["code"], 200);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn init_and_upstream_requests_are_what_the_sdk_sends() {
        let p = decode(&init("TMinit-0", "tok")).unwrap();
        assert_eq!((p.method(), p.id()), (Some("init"), Some("TMinit-0")));
        assert_eq!(p.header["token"], "tok");
        assert_eq!(p.header["registrations"][0]["product"], "ip_messaging");
        let p = decode(&upstream_request(
            "TM1",
            "GET",
            "/Client/v2/Configuration",
            Map::new(),
            "application/json",
            b"",
        ))
        .unwrap();
        assert_eq!(p.header["http_request"]["host"], "aim.us1.twilio.com");
        let p = decode(&upstream_request(
            "TM2",
            "POST",
            "/v4/Subscriptions",
            Map::new(),
            "application/json",
            b"{}",
        ))
        .unwrap();
        assert_eq!(p.header["http_request"]["host"], "cds.us1.twilio.com");
        assert_eq!(p.header["http_request"]["method"], "POST");
        assert_eq!(&p.payload[..], b"{}");
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(decode(&Bytes::from_static(b"HELLO")), Err(DecodeError::BadPreamble));
        assert_eq!(decode(&Bytes::from_static(b"TWILSOCK V3.0 99\r\n{}")), Err(DecodeError::Truncated));
        assert_eq!(
            decode(&Bytes::from_static(b"TWILSOCK V3.0 17\r\n{\"payload_size\":5}\r\nab")),
            Err(DecodeError::Truncated)
        );
    }
}
