//! The JSON shapes the SDK reads from client-API replies.
use serde_json::{Value, json};

use crate::auth::identity::Caller;
use crate::domain::ChatService;
use crate::domain::conversation::ConversationEntry;
use crate::domain::message::Message;
use crate::domain::participant::Participant;
use crate::domain::user::User;
use crate::sync::object::ObjectRef;

/// The absolute URLs handed to the SDK; it builds sub-paths from them and sends them back
/// over twilsock (only media URLs are dialled directly).
pub struct Links {
    pub base: String,
    pub service: String,
}

impl Links {
    pub fn new(base: &str, service: &str) -> Links {
        Links {
            base: base.to_owned(),
            service: format!("{base}/Client/v2/Services/{service}"),
        }
    }
}

pub fn configuration(l: &Links, caller: &Caller, user_sid: &str, reachability_enabled: bool) -> Value {
    let svc = &l.service;
    let media = format!("{}/v1/Services/{}", l.base, caller.service_sid);
    json!({
        "identity": caller.identity(),
        "url": format!("{}/Client/v2/Configuration", l.base),
        "options": {
            "consumption_report_interval": "PT5S",
            "user_infos_to_subscribe": 100,
            "reachability_enabled": reachability_enabled,
            "http_cache_interval": "PT0S",
            "my_conversations_page_size": 50,
            "media_attachments_count_limit": 10,
            "media_attachment_size_limit_in_mb": 16,
            "media_attachments_total_size_limit_in_mb": 32,
            "email_histories_allowed_mime_types": ["text/plain"],
            "email_bodies_allowed_mime_types": ["text/plain"],
        },
        "sync_objects": {
            "my_conversations": ObjectRef::MyConversations(user_sid.to_owned()).id(),
            "my_user_info": ObjectRef::UserInfo(user_sid.to_owned()).id(),
        },
        "links": {
            "my_conversations": format!("{svc}/Me/Conversations"),
            "conversations": format!("{svc}/Conversations"),
            "users": format!("{svc}/Users"),
            "current_user": format!("{svc}/Users/{}", percent_encoding::utf8_percent_encode(caller.identity(), percent_encoding::NON_ALPHANUMERIC)),
            "typing": format!("{svc}/Typing"),
            "media_service": format!("{media}/Media"),
            "media_set_service": format!("{media}/MediaSet"),
            "messages_receipts": format!("{svc}/Conversations/%s/Messages/%s/Receipts"),
        },
    })
}

pub fn conversation(l: &Links, _svc: &ChatService, e: &ConversationEntry, me: &str) -> Value {
    let c = &e.conversation;
    let p = e.participants.get(me);
    // `null` until the user has a read horizon, as the SDK documents.
    let unread = p.and_then(|p| p.last_read_message_index).map(|r| e.messages.count_after(r));
    let url = format!("{}/Conversations/{}", l.service, c.sid);
    json!({
        "conversation_sid": c.sid,
        "sid": c.sid,
        "friendly_name": c.friendly_name,
        "unique_name": c.unique_name,
        "attributes": c.attributes,
        "created_by": c.creator(),
        "date_created": c.date_created.rfc3339(),
        "date_updated": c.date_updated.rfc3339(),
        "status": if p.is_some() { "joined" } else { "notParticipating" },
        "notification_level": p.map(|p| p.notification_level.as_str()).unwrap_or("default"),
        "last_read_message_index": p.and_then(|p| p.last_read_message_index),
        "unread_messages_count": unread,
        "messages_count": e.messages.len(),
        "participants_count": e.participants.len(),
        "sync_objects": {
            "conversation": ObjectRef::Channel(c.sid.clone()).id(),
            "messages": ObjectRef::Messages(c.sid.clone()).id(),
            "participants": ObjectRef::Roster(c.sid.clone()).id(),
        },
        "url": url,
        "links": { "participants": format!("{url}/Participants"), "messages": format!("{url}/Messages") },
    })
}

pub fn participant(svc: &ChatService, p: &Participant) -> Value {
    json!({
        "sid": p.sid,
        "conversation_sid": p.conversation_sid,
        "chat_service_sid": svc.sid,
        "identity": p.identity,
        "attributes": p.attributes,
        "role_sid": p.role_sid,
        "messaging_binding": p.messaging_binding.as_ref().map(|b| json!({ "type": b.kind, "address": b.address, "proxy_address": b.proxy_address })),
        "date_created": p.date_created.rfc3339(),
        "date_updated": p.date_updated.rfc3339(),
    })
}

pub fn message(l: &Links, m: &Message) -> Value {
    json!({
        "sid": m.sid,
        "index": m.index,
        "conversation_sid": m.conversation_sid,
        "author": m.author,
        "body": m.body,
        "subject": m.subject,
        "attributes": m.attributes,
        "participant_sid": m.participant_sid,
        "date_created": m.date_created.rfc3339(),
        "date_updated": m.date_updated.rfc3339(),
        "media": if m.media.is_empty() { Value::Null } else { json!(m.media.iter().map(|x| json!({ "sid": x.sid, "size": x.size, "content_type": x.content_type, "filename": x.filename, "category": x.category })).collect::<Vec<_>>()) },
        "url": format!("{}/Conversations/{}/Messages/{}", l.service, m.conversation_sid, m.sid),
    })
}

pub fn user(u: &User) -> Value {
    json!({
        "sid": u.sid,
        "identity": u.identity,
        "friendly_name": u.friendly_name,
        "attributes": u.attributes,
        "is_online": u.is_online,
        "is_notifiable": u.is_notifiable,
        "sync_objects": { "user_info_map": ObjectRef::UserInfo(u.sid.clone()).id() },
    })
}
