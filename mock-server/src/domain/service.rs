//! The domain service: the one way in for every change to an account's content.
//!
//! A change is a value naming what it does ([`AddMessage`], [`Typing`], …). Those Twilio vets
//! with a pre-action webhook are [`Proposal`]s and go through [`Account::perform`], which
//!
//! 1. checks the caller's access rules under the read lock,
//! 2. asks the [`Gate`] (the pre-action webhook) with **no lock held**, awaiting its answer,
//! 3. applies the change, as the gate amended it, under the write lock (checking again: another
//!    change may have landed meanwhile, as on Twilio, where the hook runs before the commit),
//! 4. hands the emitted [`DomainEvent`]s to every observer before unlocking.
//!
//! Changes Twilio has no pre-action webhook for are [`Unvetted`] and go through the synchronous
//! [`Account::apply`] (steps 3 and 4). The traits keep the two apart at compile time: a
//! proposal cannot be applied without asking the gate.
//!
//! Whether webhooks hear of a change at all is the [`Cause`]'s: SDK clients and the control
//! plane acting as an identity always; the REST API only with `X-Twilio-Webhook-Enabled: true`.
use std::future::Future;
use std::pin::Pin;

use super::account::Ctx;
use super::conversation::{Conversation, ConversationUpdate, NewConversation};
use super::media::Media;
use super::message::{Message, MessageUpdate, NewMessage};
use super::participant::{NewParticipant, Participant, ParticipantUpdate};
use super::user::{NewUser, User, UserUpdate};
use super::webhook::{ScopedWebhook, ScopedWebhookParams};
use super::{Account, ChatService, DomainError, MediaReservation, Origin};

/// Who causes a change, and whether the backend's webhooks (pre- and post-action) hear of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub origin: Origin,
    pub webhooks: bool,
}

impl Cause {
    /// An SDK client (or the control plane acting as one): webhooks fire, as for the SDK.
    pub fn sdk(identity: impl Into<String>) -> Cause {
        Cause {
            origin: Origin::Sdk { identity: identity.into() },
            webhooks: true,
        }
    }

    /// The REST API; `webhooks`: the request asked for them (`X-Twilio-Webhook-Enabled: true`).
    pub fn api(webhooks: bool) -> Cause {
        Cause {
            origin: Origin::Api,
            webhooks,
        }
    }

    /// Rehearsal itself (seeds, a session closing): post-action webhooks fire (`Source=API`);
    /// it never proposes a vetted change.
    pub fn system() -> Cause {
        Cause {
            origin: Origin::System,
            webhooks: true,
        }
    }
}

/// What the gate is asked about: a proposed change, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum Proposed<'a> {
    AddConversation(&'a NewConversation),
    UpdateConversation {
        conversation: &'a str,
        update: &'a ConversationUpdate,
    },
    RemoveConversation {
        conversation: &'a str,
    },
    AddParticipant {
        conversation: &'a str,
        participant: &'a NewParticipant,
    },
    UpdateParticipant {
        conversation: &'a str,
        participant: &'a str,
        update: &'a ParticipantUpdate,
    },
    RemoveParticipant {
        conversation: &'a str,
        participant: &'a str,
    },
    AddMessage {
        conversation: &'a str,
        message: &'a NewMessage,
    },
    UpdateMessage {
        conversation: &'a str,
        message: &'a str,
        update: &'a MessageUpdate,
    },
    RemoveMessage {
        conversation: &'a str,
        message: &'a str,
    },
    UpdateUser {
        user: &'a str,
        update: &'a UserUpdate,
    },
}

/// What a gate may change in a proposal: `body`, `author`, `attributes` of a message;
/// `friendly_name`, `unique_name`, `attributes` of a conversation. `None`: unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amendment {
    pub body: Option<String>,
    pub author: Option<String>,
    pub attributes: Option<String>,
    pub friendly_name: Option<String>,
    pub unique_name: Option<String>,
}

impl Amendment {
    pub fn apply_new_message(self, m: &mut NewMessage) {
        m.body = self.body.or(m.body.take());
        m.author = self.author.or(m.author.take());
        m.attributes = self.attributes.or(m.attributes.take());
    }

    pub fn apply_message_update(self, m: &mut MessageUpdate) {
        m.body = self.body.or(m.body.take());
        m.author = self.author.or(m.author.take());
        m.attributes = self.attributes.or(m.attributes.take());
    }

    pub fn apply_new_conversation(self, c: &mut NewConversation) {
        c.friendly_name = self.friendly_name.or(c.friendly_name.take());
        c.unique_name = self.unique_name.or(c.unique_name.take());
        c.attributes = self.attributes.or(c.attributes.take());
    }

    pub fn apply_conversation_update(self, c: &mut ConversationUpdate) {
        c.friendly_name = self.friendly_name.or(c.friendly_name.take());
        c.unique_name = self.unique_name.or(c.unique_name.take());
        c.attributes = self.attributes.or(c.attributes.take());
    }
}

/// The future a [`Gate`] answers with.
pub type GateAnswer<'a> = Pin<Box<dyn Future<Output = Result<Option<Amendment>, DomainError>> + Send + 'a>>;

/// Vets proposals before they are applied (the pre-action webhooks). Called with no lock held;
/// it may read the account. `Ok(None)`: proceed unchanged; `Ok(Some(a))`: proceed amended;
/// `Err`: the change is refused (a rejection, or a proposal already invalid).
pub trait Gate: Send + Sync {
    fn ask<'a>(&'a self, account: &'a Account, service: Option<&'a str>, cause: &'a Cause, proposed: Proposed<'a>) -> GateAnswer<'a>;
}

/// A named change to one service's content.
pub trait Change: Send {
    type Output;
    fn apply(self, svc: &mut ChatService, cx: &mut Ctx<'_>) -> Result<Self::Output, DomainError>;
}

/// A change Twilio vets with a pre-action webhook: only [`Account::perform`] applies it.
pub trait Proposal: Change {
    fn proposed(&self) -> Proposed<'_>;
    /// Takes the gate's amendment (most proposals have nothing a hook may change).
    fn amend(&mut self, _amendment: Amendment) {}
}

/// A change Twilio has no pre-action webhook for: [`Account::apply`] applies it.
pub trait Unvetted: Change {}

/// No access rule beyond the domain's own.
pub fn unchecked(_: &ChatService) -> Result<(), DomainError> {
    Ok(())
}

impl Account {
    /// Performs a vetted change in `service` (`None`: the default service): see the module.
    pub async fn perform<P: Proposal>(&self, cause: &Cause, service: Option<&str>, proposal: P) -> Result<P::Output, DomainError> {
        self.perform_guarded(cause, service, proposal, unchecked, |_, out| Ok(out)).await
    }

    /// [`Account::perform`] with the caller's access rules (`check`, run before the gate and
    /// again under the write lock) and a reading of the result under the same lock (`then`).
    pub async fn perform_guarded<P: Proposal, R>(
        &self,
        cause: &Cause,
        service: Option<&str>,
        mut proposal: P,
        check: impl Fn(&ChatService) -> Result<(), DomainError> + Send,
        then: impl FnOnce(&ChatService, P::Output) -> Result<R, DomainError> + Send,
    ) -> Result<R, DomainError> {
        self.read(|s| s.service(service).and_then(&check))?;
        if cause.webhooks {
            if let Some(gate) = self.gate() {
                // No lock is held here: the gate awaits an HTTP answer.
                if let Some(amendment) = gate.ask(self, service, cause, proposal.proposed()).await? {
                    proposal.amend(amendment);
                }
            }
        }
        self.write(cause, service, |svc, cx| {
            check(svc)?;
            let out = proposal.apply(svc, cx)?;
            then(svc, out)
        })
    }

    /// Applies a change no webhook vets, in `service` (`None`: the default service).
    pub fn apply<C: Unvetted>(&self, cause: &Cause, service: Option<&str>, change: C) -> Result<C::Output, DomainError> {
        self.apply_guarded(cause, service, change, unchecked, |_, out| Ok(out))
    }

    /// [`Account::apply`] with access rules checked and the result read under the write lock.
    pub fn apply_guarded<C: Unvetted, R>(
        &self,
        cause: &Cause,
        service: Option<&str>,
        change: C,
        check: impl FnOnce(&ChatService) -> Result<(), DomainError>,
        then: impl FnOnce(&ChatService, C::Output) -> Result<R, DomainError>,
    ) -> Result<R, DomainError> {
        self.write(cause, service, |svc, cx| {
            check(svc)?;
            let out = change.apply(svc, cx)?;
            then(svc, out)
        })
    }
}

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
