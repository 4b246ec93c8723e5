//! Twilio's published Conversations limits, enforced by the domain.
use serde::{Deserialize, Serialize};

/// Messages one `generate_messages` (a control-plane action, or a seeded conversation's field)
/// may append. Deep-history scenarios need about 10,000; `rehearsal bench pagination` sends its
/// histories in chunks of this size. A message costs about 1 KB with its Sync state, so one
/// request stays near 100 MB at most instead of growing the server without end.
pub const MAX_GENERATED_MESSAGES: u64 = 100_000;

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
