//! Integration tests of the mock server over real sockets (one test binary).
//!
//! Layout:
//! - `support`: a server per test on a loopback port, and a REST client that checks every
//!   answer against Twilio's OpenAPI spec or error body.
//! - `openapi`: Twilio's OpenAPI description of Conversations v1, as a response validator.
//! - `rest`: every REST resource under `/v1/…` and `/v1/Services/{sid}/…`, error paths,
//!   account isolation, and snapshots of wire shapes.
//! - `pagination`: properties of paging through message histories that change meanwhile.
//! - `webhooks`: webhook configuration, pre- and post-action hooks against a `wiremock` backend.

mod control;
mod inspector;
mod media;
mod openapi;
mod pagination;
mod rest;
mod support;
mod sync;
mod twilsock;
mod webhooks;
