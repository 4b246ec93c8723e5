//! Conversations (CH…) and the operations on them.
use serde::{Deserialize, Serialize};

use super::collection::{Collection, Keyed};
use super::error::codes;
use super::message::Message;
use super::participant::Participant;
use super::webhook::ScopedWebhook;
use super::{ChatService, Ctx, DomainError, DomainEvent, check_attributes, check_friendly_name};
use crate::clock::Millis;
use crate::sid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationState {
    Active,
    Inactive,
    Closed,
}

impl ConversationState {
    pub fn parse(s: &str) -> Result<ConversationState, DomainError> {
        match s {
            "active" => Ok(ConversationState::Active),
            "inactive" => Ok(ConversationState::Inactive),
            "closed" => Ok(ConversationState::Closed),
            other => Err(DomainError::invalid(
                "State",
                format!("State must be one of active, inactive, closed; got {other:?}"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Active => "active",
            ConversationState::Inactive => "inactive",
            ConversationState::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timers {
    pub date_inactive: Option<Millis>,
    pub date_closed: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub sid: String,
    pub friendly_name: Option<String>,
    pub unique_name: Option<String>,
    /// A JSON string, `"{}"` when unset.
    pub attributes: String,
    pub state: ConversationState,
    pub messaging_service_sid: Option<String>,
    pub created_by: Option<String>,
    pub date_created: Millis,
    pub date_updated: Millis,
    pub timers: Timers,
}

/// `created_by` of a conversation nobody created as a user (over REST, from the control plane
/// as the API): Twilio's Chat backend, which Conversations is built on, defaults the creator to
/// `system` (Chat v2 Channel resource, `CreatedBy`: "Default is: system"). The SDK needs a
/// string: @twilio/conversations 3.0.1 `Conversation.createdBy` returns
/// `this._internalState.createdBy ?? ""`, and `Conversation._update` (dist/conversation.js)
/// compares that getter with each update's `createdBy`, so a `null` there reads as a change on
/// every update of the conversation — one `updated` event (reason `createdBy`) per read-horizon
/// write, which an app that sets its read horizon on `updated` turns into an endless loop.
pub const SYSTEM_CREATOR: &str = "system";

impl Conversation {
    /// The creator as Twilio reports it: the identity of the user who created it, else
    /// [`SYSTEM_CREATOR`].
    pub fn creator(&self) -> &str {
        self.created_by.as_deref().unwrap_or(SYSTEM_CREATOR)
    }
}

/// A conversation with its members and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationEntry {
    pub conversation: Conversation,
    pub participants: Collection<Participant>,
    /// Keyed by message index: the collection's sequence number is the index.
    pub messages: Collection<Message>,
    /// Conversation-scoped webhooks (WH…).
    #[serde(default, skip_serializing_if = "Collection::is_empty")]
    pub webhooks: Collection<ScopedWebhook>,
}

impl Keyed for ConversationEntry {
    fn sid(&self) -> &str {
        &self.conversation.sid
    }
    fn name(&self) -> Option<&str> {
        self.conversation.unique_name.as_deref()
    }
}

impl ConversationEntry {
    pub fn last_message_index(&self) -> Option<u64> {
        self.messages.last_seq()
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewConversation {
    pub friendly_name: Option<String>,
    pub unique_name: Option<String>,
    pub attributes: Option<String>,
    pub state: Option<ConversationState>,
    pub messaging_service_sid: Option<String>,
    pub date_created: Option<Millis>,
    pub date_updated: Option<Millis>,
    pub created_by: Option<String>,
}

/// An update: each `Some` field is set; for names an empty string clears the value.
#[derive(Debug, Clone, Default)]
pub struct ConversationUpdate {
    pub friendly_name: Option<String>,
    pub unique_name: Option<String>,
    pub attributes: Option<String>,
    pub state: Option<ConversationState>,
    pub messaging_service_sid: Option<String>,
    pub date_created: Option<Millis>,
    pub date_updated: Option<Millis>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// A given `MessagingServiceSid` must be a Messaging Service SID: Twilio's OpenAPI description
/// (`twilio_conversations_v1.json`, create and update of `/v1/Conversations` and
/// `/v1/Services/{ChatServiceSid}/Conversations`) gives `^MG[0-9a-fA-F]{32}$`, 34 characters,
/// so `""`, `bogus` and `null` are all refused.
fn check_messaging_service_sid(sid: Option<&str>) -> Result<(), DomainError> {
    check_sid_param(sid, crate::sid::MESSAGING_SERVICE, "MessagingServiceSid", "a Messaging Service SID")
}

/// `Ok` when `value` is absent or a SID with `prefix` and 32 hex digits (either case, as
/// Twilio's patterns allow); Twilio's invalid-parameter error (20001) otherwise.
pub(crate) fn check_sid_param(value: Option<&str>, prefix: &str, param: &'static str, what: &str) -> Result<(), DomainError> {
    match value {
        Some(v) if !crate::sid::is_sid(v, prefix) => Err(DomainError::invalid(
            param,
            format!("{param} must be {what} ({prefix} and 32 hexadecimal digits); got {v:?}"),
        )),
        _ => Ok(()),
    }
}

impl ChatService {
    pub fn create_conversation(&mut self, cx: &mut Ctx<'_>, req: NewConversation) -> Result<Conversation, DomainError> {
        let attributes = check_attributes(req.attributes.as_deref(), "Attributes", cx.limits.conversation_attributes_bytes)?;
        check_friendly_name(req.friendly_name.as_deref(), cx.limits)?;
        let unique_name = non_empty(req.unique_name);
        if let Some(u) = &unique_name {
            self.check_unique_name_free(u, None)?;
        }
        check_messaging_service_sid(req.messaging_service_sid.as_deref())?;
        let date_created = req.date_created.unwrap_or(cx.now);
        let conversation = Conversation {
            sid: cx.sids.next(sid::CONVERSATION),
            friendly_name: non_empty(req.friendly_name),
            unique_name,
            attributes,
            state: req.state.unwrap_or(ConversationState::Active),
            messaging_service_sid: req.messaging_service_sid,
            created_by: req.created_by,
            date_created,
            date_updated: req.date_updated.unwrap_or(date_created),
            timers: Timers::default(),
        };
        self.conversations.insert(ConversationEntry {
            conversation: conversation.clone(),
            participants: Collection::default(),
            messages: Collection::default(),
            webhooks: Collection::default(),
        });
        cx.emit(DomainEvent::ConversationAdded {
            service: self.sid.clone(),
            conversation: conversation.sid.clone(),
        });
        Ok(conversation)
    }

    fn check_unique_name_free(&self, name: &str, except_seq: Option<u64>) -> Result<(), DomainError> {
        match self.conversations.seq_of_name(name).or_else(|| self.conversations.seq_of_sid(name)) {
            Some(seq) if Some(seq) != except_seq => Err(DomainError::Conflict {
                code: codes::CONVERSATION_UNIQUE_NAME_TAKEN,
                message: format!("Conversation with provided unique name already exists: {name}"),
            }),
            _ => Ok(()),
        }
    }

    pub fn update_conversation(
        &mut self,
        cx: &mut Ctx<'_>,
        sid_or_name: &str,
        req: ConversationUpdate,
    ) -> Result<Conversation, DomainError> {
        let seq = self.conversation_seq(sid_or_name)?;
        let attributes = match &req.attributes {
            Some(a) => Some(check_attributes(Some(a), "Attributes", cx.limits.conversation_attributes_bytes)?),
            None => None,
        };
        check_friendly_name(req.friendly_name.as_deref(), cx.limits)?;
        if let Some(u) = req.unique_name.as_deref().filter(|u| !u.is_empty()) {
            self.check_unique_name_free(u, Some(seq))?;
        }
        check_messaging_service_sid(req.messaging_service_sid.as_deref())?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let c = &mut entry.conversation;
        let old_name = c.unique_name.clone();
        if let Some(f) = req.friendly_name {
            c.friendly_name = non_empty(Some(f));
        }
        let renamed = req.unique_name.is_some();
        if let Some(u) = req.unique_name {
            c.unique_name = non_empty(Some(u));
        }
        if let Some(a) = attributes {
            c.attributes = a;
        }
        if let Some(s) = req.state {
            c.state = s;
        }
        if let Some(m) = req.messaging_service_sid {
            c.messaging_service_sid = Some(m);
        }
        if let Some(d) = req.date_created {
            c.date_created = d;
        }
        c.date_updated = req.date_updated.unwrap_or(cx.now);
        let out = c.clone();
        if renamed {
            self.conversations.rename(seq, old_name.as_deref(), out.unique_name.as_deref());
        }
        cx.emit(DomainEvent::ConversationUpdated {
            service: self.sid.clone(),
            conversation: out.sid.clone(),
        });
        Ok(out)
    }

    pub fn remove_conversation(&mut self, cx: &mut Ctx<'_>, sid_or_name: &str) -> Result<Conversation, DomainError> {
        let seq = self.conversation_seq(sid_or_name)?;
        let entry = self.conversations.remove_seq(seq).expect("seq from lookup");
        let participants: Vec<Participant> = entry.participants.iter().map(|(_, p)| p.clone()).collect();
        cx.emit(DomainEvent::ConversationRemoved {
            service: self.sid.clone(),
            conversation: Box::new(entry.conversation.clone()),
            participants,
        });
        Ok(entry.conversation)
    }
}

impl ChatService {
    /// Signals that `identity` is typing in `conversation` (ephemeral: nothing is stored).
    pub fn typing(&mut self, cx: &mut Ctx<'_>, conversation: &str, identity: &str) -> Result<(), DomainError> {
        let entry = self.conversation(conversation)?;
        if entry.participants.get(identity).is_none() {
            return Err(DomainError::Forbidden {
                code: codes::NOT_A_PARTICIPANT,
                message: format!("{identity} is not a participant of {conversation}"),
            });
        }
        let sid = entry.conversation.sid.clone();
        cx.emit(DomainEvent::Typing {
            service: self.sid.clone(),
            conversation: sid,
            identity: identity.to_owned(),
        });
        Ok(())
    }
}
