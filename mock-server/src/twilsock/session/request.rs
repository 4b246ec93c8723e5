//! Turning an upstream `message` packet into an [`UpstreamRequest`].
//!
//! The SDK splits the query string off the URL into `http_request.params` but leaves every value
//! percent-encoded, and percent-encodes path segments (identities, unique names); repeated keys
//! arrive as arrays (wire-protocol notes, section 2.7). Decoding here is plain percent-decoding:
//! the SDK encodes with `encodeURIComponent`, so a literal `+` is never a space.
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::super::backend::UpstreamRequest;
use super::super::codec::Packet;

/// Why a `message` packet is not a usable request; the text goes into a 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("message without an `http_request` object")]
    MissingRequest,
    #[error("`http_request.{0}` is missing or not a string")]
    MissingField(&'static str),
}

/// Decodes the `http_request` header of a `message` packet and takes its payload as the body.
///
/// A query string left in `path` is split off and its parameters come first, before those of
/// `params`. Parameter values that are numbers or booleans are taken as their JSON text; `null`
/// values are skipped; arrays give one pair per element.
pub fn parse(packet: &Packet) -> Result<UpstreamRequest, RequestError> {
    let req = packet
        .header
        .get("http_request")
        .and_then(Value::as_object)
        .ok_or(RequestError::MissingRequest)?;
    let text = |field: &'static str| req.get(field).and_then(Value::as_str).ok_or(RequestError::MissingField(field));
    let method = text("method")?.to_ascii_uppercase();
    let full_path = text("path")?;
    let host = req.get("host").and_then(Value::as_str).unwrap_or_default().to_owned();

    let (raw_path, query) = match full_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (full_path, None),
    };
    let mut params = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((decode(k), decode(v)));
    }
    if let Some(Value::Object(map)) = req.get("params") {
        for (k, v) in map {
            push_param(&mut params, &decode(k), v);
        }
    }

    let headers = match req.get("headers") {
        Some(Value::Object(h)) => h.clone(),
        _ => Map::new(),
    };
    Ok(UpstreamRequest {
        method,
        host,
        path: decode(raw_path),
        raw_path: raw_path.to_owned(),
        params,
        headers,
        content_type: packet.payload_type().map(str::to_owned),
        body: packet.payload.clone(),
    })
}

fn push_param(params: &mut Vec<(String, String)>, key: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::String(s) => params.push((key.to_owned(), decode(s))),
        Value::Array(items) => {
            for item in items {
                // Nested arrays are not something the SDK sends; flattening is the least
                // surprising reading.
                push_param(params, key, item);
            }
        }
        other => params.push((key.to_owned(), other.to_string())),
    }
}

/// Percent-decodes `s`; invalid UTF-8 after decoding is replaced, never rejected (the backend
/// answers an unknown name with a 404 anyway).
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn packet(header: Value, payload: &'static [u8]) -> Packet {
        let Value::Object(header) = header else { panic!("object") };
        Packet {
            header,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn decodes_path_query_and_params() {
        let p = packet(
            json!({
                "method": "message", "id": "TM1", "payload_type": "application/json; charset=utf-8",
                "http_request": {
                    "host": "aim.us1.twilio.com",
                    "path": "/Client/v2/Users/alice%20smith%2Fx?Order=desc&Flag&Enc=a%26b",
                    "method": "get",
                    "params": {"PageSize": "50", "Token": "a%2Bb%20c", "Ids": ["x%2Fy", "z"], "N": 5, "Skip": null},
                    "headers": {"X-Twilio-Mutation-Id": "m1"},
                },
            }),
            b"{}",
        );
        let r = parse(&p).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.host, "aim.us1.twilio.com");
        assert_eq!(r.path, "/Client/v2/Users/alice smith/x");
        assert_eq!(r.raw_path, "/Client/v2/Users/alice%20smith%2Fx");
        let pairs: Vec<(&str, &str)> = r.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("Order", "desc"),
                ("Flag", ""),
                ("Enc", "a&b"),
                ("PageSize", "50"),
                ("Token", "a+b c"),
                ("Ids", "x/y"),
                ("Ids", "z"),
                ("N", "5"),
            ]
        );
        assert_eq!(r.param("Token"), Some("a+b c"));
        assert_eq!(r.headers["X-Twilio-Mutation-Id"], "m1");
        assert_eq!(r.content_type.as_deref(), Some("application/json; charset=utf-8"));
        assert_eq!(&r.body[..], b"{}");
    }

    #[test]
    fn rejects_incomplete_requests() {
        let no_req = packet(json!({"method": "message", "id": "1"}), b"");
        assert_eq!(parse(&no_req).unwrap_err(), RequestError::MissingRequest);
        let no_path = packet(json!({"method": "message", "id": "1", "http_request": {"method": "GET"}}), b"");
        assert_eq!(parse(&no_path).unwrap_err(), RequestError::MissingField("path"));
        let no_method = packet(json!({"method": "message", "id": "1", "http_request": {"path": "/"}}), b"");
        assert_eq!(parse(&no_method).unwrap_err(), RequestError::MissingField("method"));
    }
}
