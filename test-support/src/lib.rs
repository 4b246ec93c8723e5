//! Test support for Rehearsal's own tests: one raw twilsock client, one way to mint access
//! tokens and one JWT payload decoder, instead of a copy of each in every test file.
//!
//! - [`twilsock`]: a WebSocket client that speaks twilsock frame by frame with a timeout on
//!   every wait, for tests that need raw access to the protocol (malformed and edge frames,
//!   exact packet order, how a socket ends). Tests that act as SDK users use the lean
//!   `rehearsal-client` instead.
//! - [`token`]: Conversations access tokens, minted by the server crate's own code.
//! - [`jwt`]: the claims of a token, decoded without verifying it.
//!
//! Not published and only ever a dev-dependency (`cli/tests/architecture.rs` checks both): it
//! is no API, and the `rehearsal` crate (`testkit/`) stays the stable one for users.

pub mod jwt;
pub mod token;
pub mod twilsock;

pub use jwt::jwt_payload;
pub use token::{Token, token_for};
