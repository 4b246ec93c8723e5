//! Roles (RL…): the default service and conversation roles with Twilio's default permissions.
use serde::{Deserialize, Serialize};

use super::collection::Keyed;
use crate::clock::Millis;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    pub sid: String,
    pub friendly_name: String,
    /// `conversation` or `service`.
    #[serde(rename = "type")]
    pub kind: String,
    pub permissions: Vec<String>,
    pub date_created: Millis,
    pub date_updated: Millis,
}

impl Keyed for Role {
    fn sid(&self) -> &str {
        &self.sid
    }
}

/// Twilio's four default roles: (friendly name, type, permissions).
pub fn defaults() -> [(&'static str, &'static str, &'static [&'static str]); 4] {
    [
        (
            "service admin",
            "service",
            &[
                "addMember",
                "createChannel",
                "deleteAnyMessage",
                "destroyChannel",
                "editAnyMessage",
                "editAnyMessageAttributes",
                "editAnyUserInfo",
                "editChannelAttributes",
                "editChannelName",
                "editOwnMessage",
                "editOwnMessageAttributes",
                "editOwnUserInfo",
                "inviteMember",
                "joinChannel",
                "removeMember",
            ],
        ),
        ("service user", "service", &["createChannel", "editOwnUserInfo", "joinChannel"]),
        (
            "channel admin",
            "conversation",
            &[
                "addMember",
                "deleteAnyMessage",
                "deleteOwnMessage",
                "destroyChannel",
                "editAnyMessage",
                "editAnyMessageAttributes",
                "editChannelAttributes",
                "editChannelName",
                "editNotificationLevel",
                "editOwnMessage",
                "editOwnMessageAttributes",
                "inviteMember",
                "leaveChannel",
                "removeMember",
                "sendMediaMessage",
                "sendMessage",
            ],
        ),
        (
            "channel user",
            "conversation",
            &[
                "deleteOwnMessage",
                "editNotificationLevel",
                "editOwnMessage",
                "editOwnMessageAttributes",
                "leaveChannel",
                "sendMediaMessage",
                "sendMessage",
            ],
        ),
    ]
}
