//! Credentials: Twilio access tokens for SDK clients and HTTP Basic credentials for REST callers.
pub mod token;

pub use token::{Claims, MintRequest, TokenError, Unverified};
pub mod identity;
