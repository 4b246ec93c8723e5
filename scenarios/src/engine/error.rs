//! Why the engine could not set a scenario up or run one of its steps. Each becomes a FAILED
//! outcome's reason (its `Display`): data, never a panic. Causes are part of the message and
//! never also a `source` (the workspace's convention), so `{:#}` prints each once.
use rehearsal_mock_server::control::ControlError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The scenario names a client it does not declare.
    #[error("no client `{0}` in the scenario")]
    NoClient(String),
    /// A message reference names a conversation the tenant does not have.
    #[error("no conversation `{0}`")]
    NoConversation(String),
    /// `first`/`last` message of a conversation without messages.
    #[error("conversation `{0}` has no messages")]
    NoMessages(String),
    /// An expectation's `since` mark was never reached.
    #[error("mark `{0}` was never reached")]
    MarkNotReached(String),
    /// The seed the tenant is made from does not hold.
    #[error("{0}")]
    Seed(String),
    /// The embedded default seed does not parse.
    #[error("the default seed: {0}")]
    DefaultSeed(serde_json::Error),
    #[error("could not create the tenant: {0}")]
    Tenant(ControlError),
    #[error("could not configure the webhooks: {0}")]
    Webhooks(ControlError),
    /// The control plane refused a server action.
    #[error("{0}")]
    Control(ControlError),
    /// A media spec stands for no bytes.
    #[error("{0}")]
    Media(String),
    /// What an action did could not be rendered.
    #[error("could not render the action's result: {0}")]
    Render(serde_json::Error),
}

impl From<ControlError> for EngineError {
    fn from(e: ControlError) -> EngineError {
        EngineError::Control(e)
    }
}
