//! The named changes the domain service applies (`service.rs`): the [`Proposal`]s Twilio vets
//! with a pre-action webhook, then the [`Unvetted`] ones. Each is a thin value over the noun
//! module's operation (`conversation.rs`, `message.rs`, …) that does the work.
use super::account::Ctx;
use super::conversation::{Conversation, ConversationUpdate, NewConversation};
use super::media::Media;
use super::message::{Message, MessageUpdate, NewMessage};
use super::participant::{NewParticipant, Participant, ParticipantUpdate};
use super::service::{Amendment, Change, Proposal, Proposed, Unvetted};
use super::user::{NewUser, User, UserUpdate};
use super::webhook::{ScopedWebhook, ScopedWebhookParams};
use super::{ChatService, DomainError, MediaReservation};

// ---- proposals

/// Creates a conversation (`onConversationAdd`).
pub struct AddConversation(pub NewConversation);

impl Change for AddConversation {
    type Output = Conversation;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Conversation, DomainError> {
        svc.create_conversation(cx, self.0)
    }
}

impl Proposal for AddConversation {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::AddConversation(&self.0)
    }
    fn amend(&mut self, a: Amendment) {
        a.apply_new_conversation(&mut self.0);
    }
}

/// Updates a conversation, by SID or unique name (`onConversationUpdate`).
pub struct UpdateConversation {
    pub conversation: String,
    pub update: ConversationUpdate,
}

impl Change for UpdateConversation {
    type Output = Conversation;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Conversation, DomainError> {
        svc.update_conversation(cx, &self.conversation, self.update)
    }
}

impl Proposal for UpdateConversation {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::UpdateConversation {
            conversation: &self.conversation,
            update: &self.update,
        }
    }
    fn amend(&mut self, a: Amendment) {
        a.apply_conversation_update(&mut self.update);
    }
}

/// Removes a conversation (`onConversationRemove`).
pub struct RemoveConversation {
    pub conversation: String,
}

impl Change for RemoveConversation {
    type Output = Conversation;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Conversation, DomainError> {
        svc.remove_conversation(cx, &self.conversation)
    }
}

impl Proposal for RemoveConversation {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::RemoveConversation {
            conversation: &self.conversation,
        }
    }
}

/// Adds a participant (`onParticipantAdd`).
pub struct AddParticipant {
    pub conversation: String,
    pub participant: NewParticipant,
}

impl Change for AddParticipant {
    type Output = Participant;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Participant, DomainError> {
        svc.add_participant(cx, &self.conversation, self.participant)
    }
}

impl Proposal for AddParticipant {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::AddParticipant {
            conversation: &self.conversation,
            participant: &self.participant,
        }
    }
}

/// Updates a participant, by SID or identity (`onParticipantUpdate`).
pub struct UpdateParticipant {
    pub conversation: String,
    pub participant: String,
    pub update: ParticipantUpdate,
}

impl Change for UpdateParticipant {
    type Output = Participant;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Participant, DomainError> {
        svc.update_participant(cx, &self.conversation, &self.participant, self.update)
    }
}

impl Proposal for UpdateParticipant {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::UpdateParticipant {
            conversation: &self.conversation,
            participant: &self.participant,
            update: &self.update,
        }
    }
}

/// Removes a participant, by SID or identity (`onParticipantRemove`).
pub struct RemoveParticipant {
    pub conversation: String,
    pub participant: String,
}

impl Change for RemoveParticipant {
    type Output = Participant;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Participant, DomainError> {
        svc.remove_participant(cx, &self.conversation, &self.participant)
    }
}

impl Proposal for RemoveParticipant {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::RemoveParticipant {
            conversation: &self.conversation,
            participant: &self.participant,
        }
    }
}

/// Appends a message (`onMessageAdd`).
pub struct AddMessage {
    pub conversation: String,
    pub message: NewMessage,
}

impl Change for AddMessage {
    type Output = Message;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Message, DomainError> {
        svc.add_message(cx, &self.conversation, self.message)
    }
}

impl Proposal for AddMessage {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::AddMessage {
            conversation: &self.conversation,
            message: &self.message,
        }
    }
    fn amend(&mut self, a: Amendment) {
        a.apply_new_message(&mut self.message);
    }
}

/// Updates a message, by SID or index (`onMessageUpdate`).
pub struct UpdateMessage {
    pub conversation: String,
    pub message: String,
    pub update: MessageUpdate,
}

impl Change for UpdateMessage {
    type Output = Message;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Message, DomainError> {
        svc.update_message(cx, &self.conversation, &self.message, self.update)
    }
}

impl Proposal for UpdateMessage {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::UpdateMessage {
            conversation: &self.conversation,
            message: &self.message,
            update: &self.update,
        }
    }
    fn amend(&mut self, a: Amendment) {
        a.apply_message_update(&mut self.update);
    }
}

/// Removes a message, by SID or index (`onMessageRemove`).
pub struct RemoveMessage {
    pub conversation: String,
    pub message: String,
}

impl Change for RemoveMessage {
    type Output = Message;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Message, DomainError> {
        svc.remove_message(cx, &self.conversation, &self.message)
    }
}

impl Proposal for RemoveMessage {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::RemoveMessage {
            conversation: &self.conversation,
            message: &self.message,
        }
    }
}

/// Updates a user, by SID or identity (`onUserUpdate`).
pub struct UpdateUser {
    pub user: String,
    pub update: UserUpdate,
}

impl Change for UpdateUser {
    type Output = User;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<User, DomainError> {
        svc.update_user(cx, &self.user, self.update)
    }
}

impl Proposal for UpdateUser {
    fn proposed(&self) -> Proposed<'_> {
        Proposed::UpdateUser {
            user: &self.user,
            update: &self.update,
        }
    }
}

// ---- changes no webhook vets

/// `identity` is typing in `conversation` (ephemeral, not stored).
pub struct Typing {
    pub conversation: String,
    pub identity: String,
}

impl Change for Typing {
    type Output = ();
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<(), DomainError> {
        svc.typing(cx, &self.conversation, &self.identity)
    }
}
impl Unvetted for Typing {}

/// Creates the user for `identity` if it does not exist yet; yields it.
pub struct EnsureUser {
    pub identity: String,
}

impl Change for EnsureUser {
    type Output = User;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<User, DomainError> {
        svc.ensure_user(cx, &self.identity)?;
        svc.user(&self.identity).cloned()
    }
}
impl Unvetted for EnsureUser {}

/// Reachability: a user with a live session is online. `online: true` also creates the user
/// (an SDK client's first connection); `false` changes only a user that exists.
pub struct Presence {
    pub identity: String,
    pub online: bool,
}

impl Change for Presence {
    type Output = ();
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<(), DomainError> {
        if self.online {
            svc.ensure_user(cx, &self.identity)?;
        } else if svc.users.get(&self.identity).is_none() {
            return Ok(());
        }
        if svc.reachability_enabled && svc.user(&self.identity)?.is_online != Some(self.online) {
            svc.update_user(
                cx,
                &self.identity,
                UserUpdate {
                    is_online: Some(self.online),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }
}
impl Unvetted for Presence {}

/// Stores uploaded bytes as a media record; settles `reservation` under the same lock, so the
/// bytes count once, as stored, from then on.
pub struct StoreMedia<'r, 'a> {
    pub bytes: bytes::Bytes,
    pub content_type: String,
    pub filename: Option<String>,
    pub category: String,
    pub author: Option<String>,
    pub reservation: Option<&'r mut MediaReservation<'a>>,
}

impl Change for StoreMedia<'_, '_> {
    type Output = Media;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Media, DomainError> {
        let media = svc.store_media(cx, self.bytes, self.content_type, self.filename, self.category, self.author);
        if let Some(r) = self.reservation {
            r.settle();
        }
        Ok(media)
    }
}
impl Unvetted for StoreMedia<'_, '_> {}

/// Creates a user (REST).
pub struct CreateUser(pub NewUser);

impl Change for CreateUser {
    type Output = User;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<User, DomainError> {
        svc.create_user(cx, self.0)
    }
}
impl Unvetted for CreateUser {}

/// Removes a user, by SID or identity (REST).
pub struct RemoveUser {
    pub user: String,
}

impl Change for RemoveUser {
    type Output = User;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<User, DomainError> {
        svc.remove_user(cx, &self.user)
    }
}
impl Unvetted for RemoveUser {}

/// Changes a member's own view of a conversation (read horizon, notification level): the SDK's
/// `Me/Conversations` update and the REST user-conversation resource, which Twilio does not vet.
/// `participant`: SID or identity; `user`: resolve it from this user (SID or identity) instead.
pub struct UpdateMembership {
    pub conversation: String,
    pub member: Member,
    pub update: ParticipantUpdate,
}

/// Who a membership change is about.
pub enum Member {
    /// A participant SID or identity.
    Participant(String),
    /// A user SID or identity.
    User(String),
}

impl Member {
    fn identity(&self, svc: &ChatService) -> Result<String, DomainError> {
        match self {
            Member::Participant(p) => Ok(p.clone()),
            Member::User(u) => Ok(svc.user(u)?.identity.clone()),
        }
    }
}

impl Change for UpdateMembership {
    type Output = Participant;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Participant, DomainError> {
        let who = self.member.identity(svc)?;
        svc.update_participant(cx, &self.conversation, &who, self.update)
    }
}
impl Unvetted for UpdateMembership {}

/// A user leaves a conversation through the REST user-conversation resource (not vetted).
pub struct LeaveConversation {
    pub conversation: String,
    pub user: String,
}

impl Change for LeaveConversation {
    type Output = Participant;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Participant, DomainError> {
        let who = svc.user(&self.user)?.identity.clone();
        svc.remove_participant(cx, &self.conversation, &who)
    }
}
impl Unvetted for LeaveConversation {}

/// Creates a conversation-scoped webhook.
pub struct CreateWebhook {
    pub conversation: String,
    pub params: ScopedWebhookParams,
}

impl Change for CreateWebhook {
    type Output = ScopedWebhook;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<ScopedWebhook, DomainError> {
        svc.create_scoped_webhook(cx, &self.conversation, self.params)
    }
}
impl Unvetted for CreateWebhook {}

/// Updates a conversation-scoped webhook.
pub struct UpdateWebhook {
    pub conversation: String,
    pub sid: String,
    pub params: ScopedWebhookParams,
}

impl Change for UpdateWebhook {
    type Output = ScopedWebhook;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<ScopedWebhook, DomainError> {
        svc.update_scoped_webhook(cx, &self.conversation, &self.sid, self.params)
    }
}
impl Unvetted for UpdateWebhook {}

/// Removes a conversation-scoped webhook.
pub struct RemoveWebhook {
    pub conversation: String,
    pub sid: String,
}

impl Change for RemoveWebhook {
    type Output = ScopedWebhook;
    fn apply(self, svc: &mut ChatService, _cx: &mut Ctx<'_>) -> Result<ScopedWebhook, DomainError> {
        svc.remove_scoped_webhook(&self.conversation, &self.sid)
    }
}
impl Unvetted for RemoveWebhook {}
