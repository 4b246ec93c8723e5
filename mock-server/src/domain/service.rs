//! The domain service: the one way in for every change to an account's content.
//!
//! A change is a value naming what it does ([`AddMessage`], [`Typing`], …; `changes.rs`). Those Twilio vets
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
pub use super::changes::*;
use super::conversation::{ConversationUpdate, NewConversation};
use super::message::{MessageUpdate, NewMessage};
use super::participant::{NewParticipant, ParticipantUpdate};
use super::user::UserUpdate;
use super::{Account, ChatService, DomainError, Origin};

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
