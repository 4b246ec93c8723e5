//! Rehearsal's mock Twilio Conversations backend, as a library.
//!
//! Layout:
//! - `auth`: access tokens (JWT) and REST credentials.
//! - `twilsock`: the realtime WebSocket protocol the official SDK speaks (codec, sessions).
//! - `domain`: per-account state and the one service every way in goes through.
//! - `rest`: Twilio's Conversations v1 REST API over HTTP.
//! - `webhooks`: pre- and post-action webhooks to the customer's backend.
//! - `frame_tap`: the frames of the sessions the inspector watches; a leaf twilsock calls.
//! - `journal`: the bounded log of what the server saw; a leaf every module may record into.
pub mod auth;
pub mod client_api;
pub mod clock;
pub mod control;
pub mod domain;
pub mod frame_tap;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspector;
pub mod journal;
pub mod media;
pub mod realtime;
pub mod rest;
pub mod server;
pub mod sid;
pub mod sync;
pub mod twilsock;
pub mod webhooks;

pub use server::{AppState, Credentials, MockServer, ServerConfig, Startup, run};
