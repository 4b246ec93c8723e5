//! Domain events: what changed, emitted by the domain service after each applied mutation.
//!
//! The Sync projection, webhooks and the journal are derived from these; nothing else learns
//! about changes. Events name the changed resource by SID; removals carry the removed value,
//! because it can no longer be read from state.
use super::conversation::Conversation;
use super::message::Message;
use super::participant::Participant;

/// Who caused a change (Twilio's webhook `Source`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Origin {
    /// The REST API.
    Api,
    /// An SDK client over twilsock, as this identity.
    Sdk { identity: String },
    /// The control plane, a scenario or a seed.
    System,
}

impl Origin {
    pub fn identity(&self) -> Option<&str> {
        match self {
            Origin::Sdk { identity } => Some(identity),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum DomainEvent {
    ConversationAdded {
        service: String,
        conversation: String,
    },
    ConversationUpdated {
        service: String,
        conversation: String,
    },
    /// The conversation is gone; `participants` were its members when it was removed.
    ConversationRemoved {
        service: String,
        conversation: Box<Conversation>,
        participants: Vec<Participant>,
    },
    ParticipantAdded {
        service: String,
        conversation: String,
        participant: String,
    },
    ParticipantUpdated {
        service: String,
        conversation: String,
        participant: String,
    },
    ParticipantRemoved {
        service: String,
        conversation: String,
        participant: Box<Participant>,
    },
    MessageAdded {
        service: String,
        conversation: String,
        index: u64,
    },
    MessageUpdated {
        service: String,
        conversation: String,
        index: u64,
    },
    MessageRemoved {
        service: String,
        conversation: String,
        message: Box<Message>,
    },
    UserAdded {
        service: String,
        user: String,
    },
    UserUpdated {
        service: String,
        user: String,
    },
    UserRemoved {
        service: String,
        identity: String,
        user: String,
    },
    /// A Conversations service was created (REST `POST /v1/Services`).
    ServiceAdded {
        service: String,
    },
    /// A service's configuration (roles, reachability, webhook targets) changed.
    ServiceUpdated {
        service: String,
    },
    /// A service and everything in it are gone.
    ServiceRemoved {
        service: String,
    },
    /// The account-wide configuration (default service, timers, webhook targets) changed.
    ConfigurationUpdated,
    /// Ephemeral: `identity` is typing in `conversation`. Not stored.
    Typing {
        service: String,
        conversation: String,
        identity: String,
    },
}

/// Something that must see every event in commit order, while the account is still locked
/// (the Sync projection is one). Implementations must not block or await.
pub trait DomainObserver: Send + Sync {
    fn on_events(
        &self,
        account_sid: &str,
        now: crate::clock::Millis,
        state: &super::AccountState,
        cause: &super::Cause,
        events: &[DomainEvent],
    );
}
