//! The form fields of each event, named as Twilio names them.
//!
//! Every request carries `AccountSid`, `EventType`, `Source` (`SDK` or `API`), `RetryCount`, and
//! `ClientIdentity` when an SDK user acted; conversation-scoped webhooks add `WebhookSid` and
//! `WebhookType`. Fields without a value are left out, as Twilio does (a chat participant has
//! `Identity` and no `MessagingBinding.*`). Dates are ISO 8601 with milliseconds. Per resource:
//!
//! - conversation: `ConversationSid`, `ChatServiceSid`, `MessagingServiceSid`, `FriendlyName`,
//!   `UniqueName`, `Attributes`, `State`, `DateCreated`, `DateUpdated` (`onConversationAdd`:
//!   the proposed values, no SID or dates);
//! - `onConversationStateUpdated`: `ConversationSid`, `ChatServiceSid`, `MessagingServiceSid`,
//!   `StateFrom`, `StateTo`, `StateUpdated`, `Reason` (`API`);
//! - message: `ConversationSid`, `MessageSid`, `Index`, `Author`, `Body`, `Subject`,
//!   `Attributes`, `ParticipantSid`, `ContentSid`, `Media` (a JSON string: an array of
//!   `{Sid, Filename, ContentType, Size, Category}`), `DateCreated`, and `DateUpdated` for
//!   update/remove events (`onMessageAdd`: the proposed values, no SID, index or dates);
//! - participant: `ConversationSid`, `ParticipantSid`, `Identity`, `RoleSid`, `Attributes`,
//!   `MessagingBinding.Type`/`Address`/`ProxyAddress`/`ProjectedAddress`, `DateCreated`, and
//!   `DateUpdated`/`LastReadMessageIndex` for update/remove events (`onParticipantAdd`: the
//!   proposed values);
//! - user: `ChatServiceSid`, `UserSid`, `Identity`, `FriendlyName`, `Attributes`, `RoleSid`,
//!   `IsOnline`, `IsNotifiable`, `DateCreated`, `DateUpdated`.
use serde_json::json;

use crate::clock::Millis;
use crate::domain::conversation::{Conversation, ConversationState, ConversationUpdate, NewConversation};
use crate::domain::media::MediaRef;
use crate::domain::message::{Message, MessageUpdate, NewMessage};
use crate::domain::participant::{NewParticipant, Participant, ParticipantUpdate};
use crate::domain::user::{User, UserUpdate};
use crate::domain::{ChatService, DomainError, Origin};

/// Form fields in the order they were added (the signature sorts them itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn put(&mut self, name: &str, value: impl Into<String>) -> &mut Fields {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
        self
    }

    pub fn opt(&mut self, name: &str, value: Option<impl Into<String>>) -> &mut Fields {
        if let Some(v) = value {
            self.put(name, v);
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// As a JSON object, for the journal.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    }
}

/// `Source`: `SDK` for an SDK user, `API` for the REST API and everything else.
pub fn source(origin: &Origin) -> &'static str {
    match origin {
        Origin::Sdk { .. } => "SDK",
        _ => "API",
    }
}

/// The fields every event carries.
pub fn common(account_sid: &str, event: &str, origin: &Origin) -> Fields {
    let mut f = Fields::default();
    f.put("AccountSid", account_sid)
        .put("EventType", event)
        .put("Source", source(origin));
    f.opt("ClientIdentity", origin.identity());
    f.put("RetryCount", "0");
    f
}

fn date(m: Millis) -> String {
    m.iso_millis()
}

fn media_json(media: &[MediaRef]) -> Option<String> {
    if media.is_empty() {
        return None;
    }
    let list: Vec<_> = media
        .iter()
        .map(|m| json!({ "Sid": m.sid, "Filename": m.filename, "ContentType": m.content_type, "Size": m.size, "Category": m.category }))
        .collect();
    Some(serde_json::Value::Array(list).to_string())
}

// ---- conversations

pub fn conversation(svc: &str, c: &Conversation) -> Fields {
    let mut f = Fields::default();
    f.put("ConversationSid", &c.sid).put("ChatServiceSid", svc);
    f.opt("MessagingServiceSid", c.messaging_service_sid.as_deref());
    f.opt("FriendlyName", c.friendly_name.as_deref());
    f.opt("UniqueName", c.unique_name.as_deref());
    f.put("Attributes", &c.attributes).put("State", c.state.as_str());
    f.put("DateCreated", date(c.date_created)).put("DateUpdated", date(c.date_updated));
    f
}

pub fn conversation_add(svc: &ChatService, req: &NewConversation) -> Fields {
    let mut f = Fields::default();
    f.put("ChatServiceSid", &svc.sid);
    f.opt(
        "MessagingServiceSid",
        req.messaging_service_sid.as_deref().filter(|s| !s.is_empty()),
    );
    f.opt("FriendlyName", req.friendly_name.as_deref().filter(|s| !s.is_empty()));
    f.opt("UniqueName", req.unique_name.as_deref().filter(|s| !s.is_empty()));
    f.put(
        "Attributes",
        req.attributes.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "{}".into()),
    );
    f.put("State", req.state.unwrap_or(ConversationState::Active).as_str());
    f
}

/// The conversation as it would be after `req` (for `onConversationUpdate`).
pub fn conversation_update(svc: &ChatService, sid_or_name: &str, req: &ConversationUpdate) -> Result<Fields, DomainError> {
    let mut c = svc.conversation(sid_or_name)?.conversation.clone();
    if let Some(n) = &req.friendly_name {
        c.friendly_name = Some(n.clone()).filter(|n| !n.is_empty());
    }
    if let Some(n) = &req.unique_name {
        c.unique_name = Some(n.clone()).filter(|n| !n.is_empty());
    }
    if let Some(a) = &req.attributes {
        c.attributes = a.clone();
    }
    if let Some(s) = req.state {
        c.state = s;
    }
    Ok(conversation(&svc.sid, &c))
}

pub fn conversation_remove(svc: &ChatService, sid_or_name: &str) -> Result<Fields, DomainError> {
    Ok(conversation(&svc.sid, &svc.conversation(sid_or_name)?.conversation))
}

pub fn state_updated(svc: &str, c: &Conversation, from: ConversationState, at: Millis) -> Fields {
    let mut f = Fields::default();
    f.put("ConversationSid", &c.sid).put("ChatServiceSid", svc);
    f.opt("MessagingServiceSid", c.messaging_service_sid.as_deref());
    f.put("StateFrom", from.as_str()).put("StateTo", c.state.as_str());
    f.put("StateUpdated", date(at)).put("Reason", "API");
    f
}

// ---- messages

pub fn message(m: &Message, with_updated: bool) -> Fields {
    let mut f = Fields::default();
    f.put("ConversationSid", &m.conversation_sid)
        .put("MessageSid", &m.sid)
        .put("Index", m.index.to_string());
    f.opt("Author", m.author.as_deref());
    f.opt("Body", m.body.as_deref());
    f.opt("Subject", m.subject.as_deref());
    f.put("Attributes", &m.attributes);
    f.opt("ParticipantSid", m.participant_sid.as_deref());
    f.opt("ContentSid", m.content_sid.as_deref());
    f.opt("Media", media_json(&m.media));
    f.put("DateCreated", date(m.date_created));
    if with_updated {
        f.put("DateUpdated", date(m.date_updated));
    }
    f
}

/// The proposed message (for `onMessageAdd`): author resolved as the domain will resolve it.
pub fn message_add(svc: &ChatService, conversation: &str, origin: &Origin, req: &NewMessage) -> Result<Fields, DomainError> {
    let entry = svc.conversation(conversation)?;
    let author = req
        .author
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| origin.identity().map(str::to_owned))
        .unwrap_or_else(|| crate::domain::SYSTEM_IDENTITY.into());
    let mut media = Vec::new();
    for sid in &req.media_sids {
        if let Ok(m) = svc.media_item(sid) {
            media.push(MediaRef::from(m));
        }
    }
    let mut f = Fields::default();
    f.put("ConversationSid", &entry.conversation.sid);
    f.opt("MessagingServiceSid", entry.conversation.messaging_service_sid.as_deref());
    f.opt("Body", req.body.as_deref().filter(|b| !b.is_empty()));
    f.opt("Subject", req.subject.as_deref());
    f.put(
        "Attributes",
        req.attributes.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "{}".into()),
    );
    f.opt("ParticipantSid", entry.participants.get(&author).map(|p| p.sid.as_str()));
    f.put("Author", author);
    f.opt("ContentSid", req.content_sid.as_deref());
    f.opt("Media", media_json(&media));
    Ok(f)
}

pub fn message_update(svc: &ChatService, conversation: &str, sid_or_index: &str, req: &MessageUpdate) -> Result<Fields, DomainError> {
    let mut m = svc.message(conversation, sid_or_index)?.clone();
    if let Some(a) = &req.author {
        m.author = Some(a.clone());
    }
    if let Some(b) = &req.body {
        m.body = Some(b.clone()).filter(|b| !b.is_empty());
    }
    if let Some(a) = &req.attributes {
        m.attributes = a.clone();
    }
    Ok(message(&m, true))
}

pub fn message_remove(svc: &ChatService, conversation: &str, sid_or_index: &str) -> Result<Fields, DomainError> {
    Ok(message(svc.message(conversation, sid_or_index)?, true))
}

// ---- participants

fn binding(f: &mut Fields, p: &Participant) {
    if let Some(b) = &p.messaging_binding {
        f.put("MessagingBinding.Type", &b.kind).put("MessagingBinding.Address", &b.address);
        f.opt("MessagingBinding.ProxyAddress", b.proxy_address.as_deref());
        f.opt("MessagingBinding.ProjectedAddress", b.projected_address.as_deref());
    }
}

pub fn participant(p: &Participant, with_updated: bool) -> Fields {
    let mut f = Fields::default();
    f.put("ConversationSid", &p.conversation_sid).put("ParticipantSid", &p.sid);
    f.opt("Identity", p.identity.as_deref());
    f.put("RoleSid", &p.role_sid).put("Attributes", &p.attributes);
    binding(&mut f, p);
    f.put("DateCreated", date(p.date_created));
    if with_updated {
        f.put("DateUpdated", date(p.date_updated));
        f.opt("LastReadMessageIndex", p.last_read_message_index.map(|i| i.to_string()));
    }
    f
}

pub fn participant_add(svc: &ChatService, conversation: &str, req: &NewParticipant) -> Result<Fields, DomainError> {
    let entry = svc.conversation(conversation)?;
    let mut f = Fields::default();
    f.put("ConversationSid", &entry.conversation.sid);
    f.opt("MessagingServiceSid", entry.conversation.messaging_service_sid.as_deref());
    f.opt("Identity", req.identity.as_deref().filter(|i| !i.is_empty()));
    let role = req
        .role_sid
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| svc.default_conversation_role_sid.clone());
    f.put("RoleSid", role);
    f.put(
        "Attributes",
        req.attributes.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "{}".into()),
    );
    if let Some(a) = req.binding_address.as_deref().filter(|a| !a.is_empty()) {
        let kind = if a.starts_with("whatsapp:") { "whatsapp" } else { "sms" };
        f.put("MessagingBinding.Type", kind).put("MessagingBinding.Address", a);
        f.opt("MessagingBinding.ProxyAddress", req.binding_proxy_address.as_deref());
        f.opt("MessagingBinding.ProjectedAddress", req.binding_projected_address.as_deref());
    }
    Ok(f)
}

pub fn participant_update(
    svc: &ChatService,
    conversation: &str,
    sid_or_identity: &str,
    req: &ParticipantUpdate,
) -> Result<Fields, DomainError> {
    let mut p = svc.participant(conversation, sid_or_identity)?.clone();
    if let Some(a) = &req.attributes {
        p.attributes = a.clone();
    }
    if let Some(r) = &req.role_sid {
        p.role_sid = r.clone();
    }
    if let Some(i) = req.last_read_message_index {
        p.last_read_message_index = i;
    }
    Ok(participant(&p, true))
}

pub fn participant_remove(svc: &ChatService, conversation: &str, sid_or_identity: &str) -> Result<Fields, DomainError> {
    Ok(participant(svc.participant(conversation, sid_or_identity)?, true))
}

// ---- users

pub fn user(svc: &str, u: &User) -> Fields {
    let mut f = Fields::default();
    f.put("ChatServiceSid", svc).put("UserSid", &u.sid).put("Identity", &u.identity);
    f.opt("FriendlyName", u.friendly_name.as_deref());
    f.put("Attributes", &u.attributes).put("RoleSid", &u.role_sid);
    f.opt("IsOnline", u.is_online.map(|b| b.to_string()));
    f.opt("IsNotifiable", u.is_notifiable.map(|b| b.to_string()));
    f.put("DateCreated", date(u.date_created)).put("DateUpdated", date(u.date_updated));
    f
}

pub fn user_update(svc: &ChatService, sid_or_identity: &str, req: &UserUpdate) -> Result<Fields, DomainError> {
    let mut u = svc.user(sid_or_identity)?.clone();
    if let Some(n) = &req.friendly_name {
        u.friendly_name = Some(n.clone()).filter(|n| !n.is_empty());
    }
    if let Some(a) = &req.attributes {
        u.attributes = a.clone();
    }
    if let Some(r) = &req.role_sid {
        u.role_sid = r.clone();
    }
    Ok(user(&svc.sid, &u))
}
