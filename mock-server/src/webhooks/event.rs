//! Twilio's webhook event types (`EventType`), pre-action and post-action.

/// One webhook event. Pre-action events (`onMessageAdd`) fire before the action and can modify
/// or reject it; post-action events (`onMessageAdded`) report what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ConversationAdd,
    ConversationAdded,
    ConversationUpdate,
    ConversationUpdated,
    ConversationRemove,
    ConversationRemoved,
    ConversationStateUpdated,
    MessageAdd,
    MessageAdded,
    MessageUpdate,
    MessageUpdated,
    MessageRemove,
    MessageRemoved,
    ParticipantAdd,
    ParticipantAdded,
    ParticipantUpdate,
    ParticipantUpdated,
    ParticipantRemove,
    ParticipantRemoved,
    UserAdded,
    UserUpdate,
    UserUpdated,
}

impl EventType {
    /// Every event that fires (`onDeliveryUpdated` is accepted in filters but never fires).
    pub const ALL: [EventType; 22] = {
        use EventType::*;
        [
            ConversationAdd,
            ConversationAdded,
            ConversationUpdate,
            ConversationUpdated,
            ConversationRemove,
            ConversationRemoved,
            ConversationStateUpdated,
            MessageAdd,
            MessageAdded,
            MessageUpdate,
            MessageUpdated,
            MessageRemove,
            MessageRemoved,
            ParticipantAdd,
            ParticipantAdded,
            ParticipantUpdate,
            ParticipantUpdated,
            ParticipantRemove,
            ParticipantRemoved,
            UserAdded,
            UserUpdate,
            UserUpdated,
        ]
    };

    /// The `EventType` parameter, which is also the name filters use.
    pub fn name(self) -> &'static str {
        use EventType::*;
        match self {
            ConversationAdd => "onConversationAdd",
            ConversationAdded => "onConversationAdded",
            ConversationUpdate => "onConversationUpdate",
            ConversationUpdated => "onConversationUpdated",
            ConversationRemove => "onConversationRemove",
            ConversationRemoved => "onConversationRemoved",
            ConversationStateUpdated => "onConversationStateUpdated",
            MessageAdd => "onMessageAdd",
            MessageAdded => "onMessageAdded",
            MessageUpdate => "onMessageUpdate",
            MessageUpdated => "onMessageUpdated",
            MessageRemove => "onMessageRemove",
            MessageRemoved => "onMessageRemoved",
            ParticipantAdd => "onParticipantAdd",
            ParticipantAdded => "onParticipantAdded",
            ParticipantUpdate => "onParticipantUpdate",
            ParticipantUpdated => "onParticipantUpdated",
            ParticipantRemove => "onParticipantRemove",
            ParticipantRemoved => "onParticipantRemoved",
            UserAdded => "onUserAdded",
            UserUpdate => "onUserUpdate",
            UserUpdated => "onUserUpdated",
        }
    }

    /// Whether the event fires before the action (and can change or veto it).
    pub fn is_pre(self) -> bool {
        use EventType::*;
        matches!(
            self,
            ConversationAdd
                | ConversationUpdate
                | ConversationRemove
                | MessageAdd
                | MessageUpdate
                | MessageRemove
                | ParticipantAdd
                | ParticipantUpdate
                | ParticipantRemove
                | UserUpdate
        )
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_a_name_filters_accept() {
        for e in EventType::ALL {
            assert!(crate::domain::webhook::EVENT_NAMES.contains(&e.name()), "{e}");
            assert_eq!(e.is_pre(), !crate::domain::webhook::is_post_action(e.name()), "{e}");
        }
        // And every name filters accept fires, but onDeliveryUpdated (no SMS channels offline).
        for name in crate::domain::webhook::EVENT_NAMES.iter().filter(|n| **n != "onDeliveryUpdated") {
            assert!(EventType::ALL.iter().any(|e| e.name() == *name), "{name} never fires");
        }
    }
}
