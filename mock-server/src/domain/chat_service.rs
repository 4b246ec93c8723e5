//! A Conversations Service (IS…): the container of users, conversations, roles and media.
use serde::{Deserialize, Serialize};

use super::collection::{Collection, Keyed};
use super::conversation::ConversationEntry;
use super::media::Media;
use super::role::Role;
use super::user::User;
use super::{DomainError, Resource};
use crate::clock::Millis;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatService {
    pub sid: String,
    pub friendly_name: String,
    pub date_created: Millis,
    pub date_updated: Millis,
    pub reachability_enabled: bool,
    pub default_service_role_sid: String,
    pub default_conversation_role_sid: String,
    pub default_conversation_creator_role_sid: String,
    pub users: Collection<User>,
    pub conversations: Collection<ConversationEntry>,
    pub roles: Collection<Role>,
    pub media: Collection<Media>,
    /// This service's webhook targets; when configured they replace the account's.
    #[serde(default, skip_serializing_if = "super::webhook::HookConfig::is_unset")]
    pub webhooks: super::webhook::HookConfig,
}

impl Keyed for ChatService {
    fn sid(&self) -> &str {
        &self.sid
    }
}

impl ChatService {
    pub fn conversation(&self, sid_or_name: &str) -> Result<&ConversationEntry, DomainError> {
        self.conversations
            .get(sid_or_name)
            .ok_or_else(|| DomainError::not_found(Resource::Conversation, format!("/Conversations/{sid_or_name}")))
    }

    pub fn conversation_seq(&self, sid_or_name: &str) -> Result<u64, DomainError> {
        self.conversations
            .seq_of(sid_or_name)
            .ok_or_else(|| DomainError::not_found(Resource::Conversation, format!("/Conversations/{sid_or_name}")))
    }

    pub fn user(&self, sid_or_identity: &str) -> Result<&User, DomainError> {
        self.users
            .get(sid_or_identity)
            .ok_or_else(|| DomainError::not_found(Resource::User, format!("/Users/{sid_or_identity}")))
    }

    pub fn role(&self, sid: &str) -> Result<&Role, DomainError> {
        self.roles
            .get(sid)
            .ok_or_else(|| DomainError::not_found(Resource::Role, format!("/Roles/{sid}")))
    }

    /// A role named in a request parameter: an unknown one is a bad parameter, not a 404.
    pub fn role_param(&self, sid: &str, param: &'static str) -> Result<&Role, DomainError> {
        self.roles
            .get(sid)
            .ok_or_else(|| DomainError::invalid(param, format!("{param} {sid} is not a role of this service")))
    }

    pub fn media_item(&self, sid: &str) -> Result<&Media, DomainError> {
        self.media
            .get(sid)
            .ok_or_else(|| DomainError::not_found(Resource::Media, format!("/Media/{sid}")))
    }

    /// Conversations `identity` participates in, in creation order.
    pub fn conversations_of<'a>(&'a self, identity: &'a str) -> impl Iterator<Item = (u64, &'a ConversationEntry)> + 'a {
        self.conversations
            .iter()
            .filter(move |(_, c)| c.participants.seq_of_name(identity).is_some())
    }
}
