//! One error type per operation: starting, parsing a seed, minting a token, a control call,
//! waiting on the journal.
use std::time::Duration;

/// Why [`crate::MockServerBuilder::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No loopback port could be bound.
    #[error("could not bind a loopback port: {0}")]
    Bind(std::io::Error),
    /// The seed's content was refused (duplicate SIDs, content beyond the limits, …).
    #[error("the seed was refused: {0}")]
    Seed(String),
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The starting clock is outside what a clock can show (before 1970 or after year 9999).
    #[error("the starting clock is out of range: {0}")]
    Clock(String),
}

/// Why [`crate::Seed::from_json`] refused a seed.
#[derive(Debug, thiserror::Error)]
#[error("invalid seed: {0}")]
pub struct SeedError(pub(crate) String);

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The server was started without any account (an empty seed): use a tenant.
    #[error("the server has no default account (it was started with an empty seed); mint from a tenant")]
    NoDefaultAccount,
    /// The tenant was deleted.
    #[error("no tenant {0}")]
    NoTenant(String),
    /// The identity is reserved by the server (e.g. `system`) or empty.
    #[error("identity {0:?} cannot be given a token; choose another identity")]
    Identity(String),
    /// The lifetime is zero or longer than an access token may live (24 hours).
    #[error("a token lifetime must be 1 s to 24 h; got {0:?}")]
    Ttl(Duration),
    /// The account has no API key to sign with.
    #[error("the account has no API key to sign tokens with")]
    NoApiKey,
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The tenant does not exist (any more).
    #[error("no tenant {0}")]
    NoTenant(String),
    /// A command was aimed at one session that is not live.
    #[error("no live session {0}")]
    NoSession(u64),
    /// The request was refused as the control plane's HTTP API would refuse it (bad glob,
    /// status out of range, unknown conversation, …).
    #[error("{0}")]
    Refused(String),
    /// The domain refused the action with Twilio's error (e.g. 404 / 20404 for an unknown
    /// conversation), as the REST API would answer it.
    #[error("{message} (HTTP {status}, Twilio error {code})")]
    Twilio { status: u16, code: u32, message: String },
    /// A number is beyond what the control plane accepts (a clock moved past year 9999, a delay
    /// over a day).
    #[error("{0}")]
    OutOfRange(String),
}

impl From<rehearsal_mock_server::control::ControlError> for ControlError {
    fn from(e: rehearsal_mock_server::control::ControlError) -> Self {
        use rehearsal_mock_server::control::ControlError as C;
        match e {
            C::NoTenant(sid) => ControlError::NoTenant(sid),
            C::OutOfRange(m) => ControlError::OutOfRange(m),
            C::Act(rehearsal_mock_server::control::actors::ActError::OutOfRange(m)) => ControlError::OutOfRange(m),
            C::Act(rehearsal_mock_server::control::actors::ActError::Domain(d)) => ControlError::Twilio {
                status: d.status(),
                code: d.code(),
                message: d.to_string(),
            },
            other => ControlError::Refused(other.to_string()),
        }
    }
}

/// Why [`crate::Tenant::wait_for`] (or [`crate::MockServer::wait_for`]) returned without an
/// entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing matched within the timeout.
    #[error("no journal entry matched {filter} within {timeout:?}")]
    Timeout {
        /// The filter, as text.
        filter: String,
        timeout: Duration,
    },
    /// The server stopped.
    #[error("the server stopped")]
    Stopped,
}
