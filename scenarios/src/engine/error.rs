//! Why the engine could not set a scenario up or run one of its steps: one type per operation
//! (setting a play up, making a seed, a server action, a client command, a window), each with
//! only the failures that operation can have. Each becomes a FAILED outcome's reason or a step's
//! detail (its `Display`): data, never a panic.
//!
//! Causes are part of the message and never also a `source` (the workspace's convention), so
//! `{:#}` and error-chain printers print each once. A wrapper that adds nothing to its cause's
//! message displays it as `{0}`.
use rehearsal_mock_server::control::ControlError;

/// Setting a play up: its tenant, the engine's token endpoint and webhook backend, or (for a
/// server-side play) the account it plays on.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The tenant's seed does not hold.
    #[error("{0}")]
    Seed(SeedError),
    /// The control plane refused to create the tenant.
    #[error("could not create the tenant: {0}")]
    Tenant(ControlError),
    /// The loopback endpoint serving clients their first (literal) tokens did not start.
    #[error("could not start the engine's token endpoint: {0}")]
    TokenEndpoint(std::io::Error),
    /// The app's backend of a webhook scenario did not start.
    #[error("could not start the engine's webhook backend: {0}")]
    WebhookBackend(std::io::Error),
    /// The tenant's service could not be pointed at the backend.
    #[error("could not configure the webhooks: {0}")]
    Webhooks(ControlError),
    /// A server-side play names an account the server does not have.
    #[error("the server has no account {0}")]
    NoAccount(String),
}

impl From<SeedError> for SetupError {
    fn from(e: SeedError) -> SetupError {
        SetupError::Seed(e)
    }
}

/// Making a tenant's seed (or the one `rehearsal serve --scenario` starts from) out of the
/// scenario's seed or the default one.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the seed has no account")]
    NoAccount,
    #[error("the default seed has no account")]
    DefaultHasNoAccount,
    #[error("the seed's account is not an object")]
    AccountNotObject,
    /// `generate_messages` names a conversation the seed does not have.
    #[error("generate_messages: the seed has no conversation `{0}`")]
    NoConversation(String),
    /// The embedded default seed does not parse.
    #[error("the default seed: {0}")]
    DefaultSeed(serde_json::Error),
}

/// The scenario names a client it does not declare.
#[derive(Debug, thiserror::Error)]
#[error("no client `{0}` in the scenario")]
pub struct UnknownClient(pub String);

/// A message reference (`first`, `last`) that stands for no message now.
#[derive(Debug, thiserror::Error)]
pub enum MessageRefError {
    /// The tenant has no such conversation.
    #[error("no conversation `{0}`")]
    NoConversation(String),
    /// `first`/`last` message of a conversation without messages.
    #[error("conversation `{0}` has no messages")]
    NoMessages(String),
}

/// A media spec that stands for no bytes.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media size {0} is too large")]
    TooLarge(u64),
    #[error("media base64: {0}")]
    Base64(base64::DecodeError),
    /// Fixtures are read with the scenario; the loader reports a missing file, so this one was
    /// never asked for.
    #[error("media fixture `{0}` was not loaded")]
    NoFixture(String),
    #[error("media has no size, base64 or fixture")]
    Empty,
}

/// Building a command for the client: the references only the engine can resolve.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Client(UnknownClient),
    #[error("{0}")]
    Message(MessageRefError),
    #[error("{0}")]
    Media(MediaError),
}

/// A server action on the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Client(UnknownClient),
    #[error("{0}")]
    Message(MessageRefError),
    #[error("{0}")]
    Media(MediaError),
    /// The control plane refused the action.
    #[error("{0}")]
    Control(ControlError),
    /// What the action did could not be rendered.
    #[error("could not render the action's result: {0}")]
    Render(serde_json::Error),
}

/// An expectation's window: where it starts and ends.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// An expectation's `since` mark was never reached.
    #[error("mark `{0}` was never reached")]
    MarkNotReached(String),
}

// `?` across operations: each wrapper keeps its cause's message as it is.
macro_rules! wraps {
    ($outer:ident: $($variant:ident($inner:ty)),+) => {
        $(impl From<$inner> for $outer {
            fn from(e: $inner) -> $outer {
                $outer::$variant(e)
            }
        })+
    };
}
wraps!(CommandError: Client(UnknownClient), Message(MessageRefError), Media(MediaError));
wraps!(ActionError: Client(UnknownClient), Message(MessageRefError), Media(MediaError), Control(ControlError));

#[cfg(test)]
mod tests {
    use super::*;

    /// The convention this module states: a cause in the message is not also the `source`, so
    /// a chain printer (anyhow's `{:#}`, as the CLI prints errors) prints it once.
    #[test]
    fn a_cause_is_printed_once_in_a_chain() {
        let parse = serde_json::from_str::<serde_json::Value>("{").expect_err("not JSON");
        let cause = parse.to_string();
        let io = || std::io::Error::other("address in use");
        let errors: Vec<(anyhow::Error, String)> = vec![
            (SetupError::from(SeedError::DefaultSeed(parse)).into(), cause),
            (SetupError::TokenEndpoint(io()).into(), io().to_string()),
            (
                ActionError::from(MediaError::TooLarge(u64::MAX)).into(),
                format!("media size {} is too large", u64::MAX),
            ),
            (
                CommandError::from(MessageRefError::NoMessages("general".into())).into(),
                "conversation `general` has no messages".into(),
            ),
        ];
        for (e, cause) in errors {
            let printed = format!("{e:#}");
            assert_eq!(printed.matches(&cause).count(), 1, "{printed}");
            assert_eq!(e.chain().count(), 1, "{printed}: the cause is also a `source`");
        }
    }

    /// Wrappers keep the messages reports and snapshots show.
    #[test]
    fn messages_stay_as_reports_show_them() {
        assert_eq!(
            SetupError::from(SeedError::NoConversation("general".into())).to_string(),
            "generate_messages: the seed has no conversation `general`"
        );
        assert_eq!(
            ActionError::from(UnknownClient("carol".into())).to_string(),
            "no client `carol` in the scenario"
        );
        assert_eq!(
            CommandError::from(MediaError::NoFixture("cat.png".into())).to_string(),
            "media fixture `cat.png` was not loaded"
        );
    }
}
