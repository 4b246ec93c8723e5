//! The boundary between the engine and a client under test.
//!
//! The engine never knows how a client runs: the harness implements [`ClientDriver`] over an
//! adapter process speaking the driver protocol (`harness/PROTOCOL.md`); engine tests implement
//! it in-process. Commands and events are the protocol's JSON objects, so nothing is translated
//! twice.
use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// What the client side is told about the tenant it plays against (the harness turns this into
/// the adapter's environment variables).
#[derive(Debug, Clone)]
pub struct DriverEnv {
    pub scenario: String,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `ws://127.0.0.1:PORT/v3/wsconnect`
    pub twilsock_url: String,
    /// The tenant's token endpoint without `identity`: `http://…/token?account=AC…&key=…` (the
    /// key lets the endpoint serve a tenant other than the default account).
    pub token_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub api_key: String,
    pub api_secret: String,
    pub service_sid: String,
    /// Observed mode: the identity the client connects as (and the token lifetime to ask for).
    pub observed_identity: Option<String>,
    pub observed_token_ttl: Option<Duration>,
}

/// The adapter's answer to `hello`.
#[derive(Debug, Clone)]
pub struct Hello {
    pub name: String,
    pub version: String,
    pub protocol: u32,
    /// Command names it supports.
    pub capabilities: Vec<String>,
}

/// The answer to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok(Value),
    /// The implementation cannot do this (the scenario is UNIMPLEMENTED).
    Unsupported(String),
    /// It tried and failed: `{message, code?, status?}`.
    Failed(Value),
}

/// A command on its way to the client, with where to put the answer.
#[derive(Debug)]
pub struct Command {
    /// `{"cmd": "...", "client": "...", ...}` without `id` (the transport numbers commands).
    pub body: Value,
    pub reply: oneshot::Sender<Answer>,
}

/// One event the client reported: the protocol's event object (`event`, `at`, `client`, …).
pub type ClientEvent = Value;

/// A started client side: where to send commands and where events arrive. Both channels are
/// bounded; the transport ends them when the client process ends.
pub struct Link {
    /// `None`: observed mode (the program did not answer `hello`).
    pub hello: Option<Hello>,
    pub commands: mpsc::Sender<Command>,
    pub events: mpsc::Receiver<ClientEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("could not start the client: {0}")]
    Start(String),
    #[error("the client speaks protocol {0}, newer than this harness ({1})")]
    Protocol(u32, u32),
}

/// What the client process left behind (for reports).
#[derive(Debug, Clone, Default)]
pub struct DriverLog {
    pub stderr: String,
    pub exit: Option<String>,
}

/// Starts and stops the client side of one scenario.
pub trait ClientDriver: Send {
    fn start(&mut self, env: DriverEnv) -> impl Future<Output = Result<Link, DriverError>> + Send;
    /// Ends the client (sending `shutdown` first where it can) and returns its log.
    fn stop(&mut self) -> impl Future<Output = DriverLog> + Send;
}
