//! Twilsock v3, the WebSocket protocol of the official SDK.
pub mod codec;

pub use codec::{DecodeError, Limits, Packet};
