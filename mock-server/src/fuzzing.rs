//! The parsers that read what clients send, gathered for the fuzz targets (`fuzz/`, cargo-fuzz)
//! and the "arbitrary input never panics, always answers" properties (`tests/arbitrary_input.rs`).
//!
//! Not an API: hidden from the docs, free to change with the parsers. Everything here is the
//! code the server runs, re-exported as it is, so that what is fuzzed is what serves; the few
//! functions below only drive the REST extractors the way axum does.
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use futures_util::FutureExt;

pub use crate::auth::token::{Claims, MintRequest, TokenError, Unverified, mint, peek, peek_identity, validate};
pub use crate::media::multipart::{FilePart, form_data_boundary, single_file};
pub use crate::rest::error::ApiError;
pub use crate::rest::form::Params;
pub use crate::rest::paging::PageRequest;
pub use crate::twilsock::backend::UpstreamRequest;
pub use crate::twilsock::codec::{DecodeError, JSON_PAYLOAD_TYPE, Limits, Packet, decode, decode_bytes, encode};
pub use crate::twilsock::session::RequestError;
pub use crate::twilsock::session::request::parse as parse_upstream_request;
pub use crate::twilsock::websocket::{
    Assembler as WebSocketAssembler, MAX_HEADER_LEN as WEBSOCKET_MAX_HEADER_LEN, Message as WebSocketMessage,
};

/// What the REST extractors make of one request: the query string's parameters and the body's.
pub struct RestParams {
    pub query: Result<Params, ApiError>,
    pub form: Result<Params, ApiError>,
}

/// Runs the REST API's `Query` and `Form` extractors on `query` and a body sent with
/// `content_type`, as a handler receives them. `None` when `query` cannot be part of a URI at
/// all (the HTTP layer rejects such a request line before any extractor runs).
///
/// Both extractors finish without waiting on anything (the body is in memory), so they are
/// polled once; one that did not finish would be a bug worth a crash.
pub fn rest_params(query: &str, content_type: Option<&str>, body: &[u8]) -> Option<RestParams> {
    let mut builder = Request::builder().method("POST").uri(format!("/v1/Conversations?{query}"));
    if let Some(ct) = content_type {
        builder = builder.header(axum::http::header::CONTENT_TYPE, ct);
    }
    let request = builder.body(Body::from(body.to_vec())).ok()?;
    let (mut parts, body) = request.into_parts();
    let query = crate::rest::form::Query::from_request_parts(&mut parts, &())
        .now_or_never()
        .expect("the Query extractor reads the URI only")
        .map(|q| q.0);
    let form = crate::rest::form::Form::from_request(Request::from_parts(parts, body), &())
        .now_or_never()
        .expect("the Form extractor reads an in-memory body")
        .map(|f| f.0);
    Some(RestParams { query, form })
}
