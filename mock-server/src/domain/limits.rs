//! Twilio's published Conversations limits, enforced by the domain.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Chat message body, in bytes (Twilio: 32 KB for chat).
    pub message_body_bytes: usize,
    /// Message attributes JSON string, in bytes (4 KB).
    pub message_attributes_bytes: usize,
    /// Conversation attributes JSON string, in bytes (16 KB).
    pub conversation_attributes_bytes: usize,
    /// Participant attributes JSON string, in bytes (4 KB).
    pub participant_attributes_bytes: usize,
    /// User attributes JSON string, in bytes (16 KB).
    pub user_attributes_bytes: usize,
    /// Friendly names, in characters (256).
    pub friendly_name_chars: usize,
    pub participants_per_conversation: usize,
    /// Largest page for conversations, messages and participants.
    pub page_size_max: usize,
    /// Largest page for users and roles.
    pub small_page_size_max: usize,
    pub default_page_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_body_bytes: 32 * 1024,
            message_attributes_bytes: 4 * 1024,
            conversation_attributes_bytes: 16 * 1024,
            participant_attributes_bytes: 4 * 1024,
            user_attributes_bytes: 16 * 1024,
            friendly_name_chars: 256,
            participants_per_conversation: 1000,
            page_size_max: 100,
            small_page_size_max: 50,
            default_page_size: 50,
        }
    }
}
