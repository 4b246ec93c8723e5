//! The Sync objects the SDK reads, named and rendered from domain state.
//!
//! Object ids are derived from domain SIDs (`US….myConversations`, `US….userInfo`,
//! `CH….channel`, `CH….messages`, `CH….roster`), so the projection never stores item data:
//! every item is rendered from the current domain state when it is read or pushed.
use serde_json::{Value, json};

use crate::clock::Millis;
use crate::domain::conversation::ConversationEntry;
use crate::domain::message::Message;
use crate::domain::participant::Participant;
use crate::domain::user::User;
use crate::domain::{AccountState, ChatService};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Document,
    List,
    Map,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Document => "document",
            Kind::List => "list",
            Kind::Map => "map",
        }
    }

    /// The path segment of `/v3/{Documents|Lists|Maps}/…`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Document => "Documents",
            Kind::List => "Lists",
            Kind::Map => "Maps",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectRef {
    /// Map: the conversations a user is in, keyed by conversation SID.
    MyConversations(String),
    /// Map: `friendlyName`, `attributes`, `reachability` of a user.
    UserInfo(String),
    /// Document: a conversation's properties.
    Channel(String),
    /// List: a conversation's messages, item index = message index.
    Messages(String),
    /// Map: a conversation's participants, keyed by participant SID.
    Roster(String),
}

impl ObjectRef {
    pub fn id(&self) -> String {
        match self {
            ObjectRef::MyConversations(u) => format!("{u}.myConversations"),
            ObjectRef::UserInfo(u) => format!("{u}.userInfo"),
            ObjectRef::Channel(c) => format!("{c}.channel"),
            ObjectRef::Messages(c) => format!("{c}.messages"),
            ObjectRef::Roster(c) => format!("{c}.roster"),
        }
    }

    pub fn parse(id: &str) -> Option<ObjectRef> {
        let (sid, what) = id.split_once('.')?;
        Some(match what {
            "myConversations" => ObjectRef::MyConversations(sid.to_owned()),
            "userInfo" => ObjectRef::UserInfo(sid.to_owned()),
            "channel" => ObjectRef::Channel(sid.to_owned()),
            "messages" => ObjectRef::Messages(sid.to_owned()),
            "roster" => ObjectRef::Roster(sid.to_owned()),
            _ => return None,
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            ObjectRef::Channel(_) => Kind::Document,
            ObjectRef::Messages(_) => Kind::List,
            _ => Kind::Map,
        }
    }
}

/// An item key: list index or map key. Map keys order by plain string comparison, as the
/// SDK's cache does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Index(u64),
    Name(String),
}

impl Key {
    pub fn json(&self) -> Value {
        match self {
            Key::Index(i) => json!(i),
            Key::Name(n) => json!(n),
        }
    }
}

pub fn find_conversation<'a>(state: &'a AccountState, sid: &str) -> Option<(&'a ChatService, &'a ConversationEntry)> {
    state
        .services
        .iter()
        .find_map(|(_, svc)| svc.conversations.get(sid).map(|e| (svc, e)))
}

pub fn find_user<'a>(state: &'a AccountState, sid: &str) -> Option<(&'a ChatService, &'a User)> {
    state.services.iter().find_map(|(_, svc)| svc.users.get(sid).map(|u| (svc, u)))
}

pub fn user_info_id(svc: &ChatService, identity: &str) -> Option<String> {
    svc.users.get(identity).map(|u| ObjectRef::UserInfo(u.sid.clone()).id())
}

pub fn channel_data(e: &ConversationEntry) -> Value {
    let c = &e.conversation;
    let mut v = json!({
        "messages": ObjectRef::Messages(c.sid.clone()).id(),
        "roster": ObjectRef::Roster(c.sid.clone()).id(),
        "friendlyName": c.friendly_name,
        "uniqueName": c.unique_name,
        "attributes": c.attributes,
        "createdBy": c.creator(),
        "dateCreated": c.date_created.iso_millis(),
        "dateUpdated": c.date_updated.iso_millis(),
        "state": { "current": c.state.as_str(), "dateUpdated": c.date_updated.iso_millis() },
        "bindings": {},
    });
    if let Some((_, m)) = e.messages.iter().next_back() {
        v["lastMessage"] = json!({ "index": m.index, "timestamp": m.date_created.iso_millis() });
    }
    v
}

pub fn message_data(m: &Message) -> Value {
    let mut v = json!({
        "sid": m.sid,
        "author": m.author,
        "text": m.body,
        "subject": m.subject,
        "contentSid": m.content_sid,
        "attributes": m.attributes,
        "timestamp": m.date_created.iso_millis(),
        "dateUpdated": m.date_updated.iso_millis(),
        "lastUpdatedBy": m.last_updated_by,
        "memberSid": m.participant_sid,
        "type": if m.media.is_empty() { "text" } else { "media" },
        "channelMetadata": false,
    });
    if let Some(first) = m.media.first() {
        v["media"] = json!({ "sid": first.sid, "size": first.size, "contentType": first.content_type, "filename": first.filename });
        v["medias"] = Value::Array(
            m.media
                .iter()
                .map(|x| json!({ "sid": x.sid, "size": x.size, "contentType": x.content_type, "filename": x.filename, "category": x.category }))
                .collect(),
        );
    }
    v
}

pub fn roster_data(svc: &ChatService, p: &Participant) -> Value {
    json!({
        "identity": p.identity,
        "type": if p.messaging_binding.is_some() { p.messaging_binding.as_ref().map(|b| b.kind.as_str()).unwrap_or("sms") } else { "chat" },
        "attributes": p.attributes,
        "dateCreated": p.date_created.iso_millis(),
        "dateUpdated": p.date_updated.iso_millis(),
        "roleSid": p.role_sid,
        "lastConsumedMessageIndex": p.last_read_message_index,
        "lastConsumptionTimestamp": p.last_read_timestamp.map(Millis::iso_millis),
        "userInfo": p.identity.as_deref().and_then(|i| user_info_id(svc, i)),
        "bindings": p.messaging_binding.as_ref().map(|b| json!({ "type": b.kind, "address": b.address, "proxy_address": b.proxy_address })),
    })
}

/// A user's entry for one conversation. It deliberately carries no `lastMessage` (the
/// conversation document does): every message would otherwise change one item per participant.
pub fn my_conversation_data(e: &ConversationEntry, p: &Participant) -> Value {
    let c = &e.conversation;
    json!({
        "status": "joined",
        "channel": ObjectRef::Channel(c.sid.clone()).id(),
        "messages": ObjectRef::Messages(c.sid.clone()).id(),
        "roster": ObjectRef::Roster(c.sid.clone()).id(),
        "lastConsumedMessageIndex": p.last_read_message_index,
        "notificationLevel": p.notification_level,
        "friendlyName": c.friendly_name,
        "uniqueName": c.unique_name,
        "attributes": c.attributes,
        "createdBy": c.creator(),
        "dateCreated": c.date_created.iso_millis(),
        "dateUpdated": c.date_updated.iso_millis(),
    })
}

pub const USER_INFO_KEYS: [&str; 3] = ["attributes", "friendlyName", "reachability"];

pub fn user_info_item(svc: &ChatService, u: &User, key: &str) -> Option<Value> {
    match key {
        "friendlyName" => Some(json!({ "value": u.friendly_name })),
        "attributes" => Some(json!({ "value": u.attributes })),
        "reachability" if svc.reachability_enabled => {
            Some(json!({ "online": u.is_online.unwrap_or(false), "notifiable": u.is_notifiable.unwrap_or(false) }))
        }
        _ => None,
    }
}

/// Whether the object exists in domain state, and its items' current keys in order.
pub fn current_keys(state: &AccountState, obj: &ObjectRef) -> Option<Vec<Key>> {
    match obj {
        ObjectRef::Channel(c) => find_conversation(state, c).map(|_| Vec::new()),
        ObjectRef::Messages(c) => find_conversation(state, c).map(|(_, e)| e.messages.iter().map(|(i, _)| Key::Index(i)).collect()),
        ObjectRef::Roster(c) => find_conversation(state, c).map(|(_, e)| {
            let mut keys: Vec<Key> = e.participants.iter().map(|(_, p)| Key::Name(p.sid.clone())).collect();
            keys.sort();
            keys
        }),
        ObjectRef::MyConversations(u) => find_user(state, u).map(|(svc, user)| {
            let mut keys: Vec<Key> = svc
                .conversations_of(&user.identity)
                .map(|(_, e)| Key::Name(e.conversation.sid.clone()))
                .collect();
            keys.sort();
            keys
        }),
        ObjectRef::UserInfo(u) => find_user(state, u).map(|(svc, user)| {
            USER_INFO_KEYS
                .iter()
                .filter(|k| user_info_item(svc, user, k).is_some())
                .map(|k| Key::Name((*k).to_owned()))
                .collect()
        }),
    }
}

/// The current data of one item (or of the document when `key` is `None`).
pub fn item_data(state: &AccountState, obj: &ObjectRef, key: Option<&Key>) -> Option<Value> {
    match (obj, key) {
        (ObjectRef::Channel(c), None) => find_conversation(state, c).map(|(_, e)| channel_data(e)),
        (ObjectRef::Messages(c), Some(Key::Index(i))) => find_conversation(state, c)
            .and_then(|(_, e)| e.messages.get_seq(*i))
            .map(message_data),
        (ObjectRef::Roster(c), Some(Key::Name(p))) => find_conversation(state, c)
            .and_then(|(svc, e)| e.participants.get_seq(e.participants.seq_of_sid(p)?).map(|p| roster_data(svc, p))),
        (ObjectRef::MyConversations(u), Some(Key::Name(c))) => {
            let (svc, user) = find_user(state, u)?;
            let e = svc.conversations.get(c)?;
            let p = e.participants.get(&user.identity)?;
            Some(my_conversation_data(e, p))
        }
        (ObjectRef::UserInfo(u), Some(Key::Name(k))) => find_user(state, u).and_then(|(svc, user)| user_info_item(svc, user, k)),
        _ => None,
    }
}
