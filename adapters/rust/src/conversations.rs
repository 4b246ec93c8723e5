//! What one client knows of its conversations: the Sync objects it subscribed to, the last event
//! id of each (to drop what it has already seen and to resubscribe after a reconnect), and the
//! translation of Sync events into the protocol's events, as the SDK derives its own (wire
//! protocol §6.1): the user's conversations map drives joined/left, a conversation's document
//! drives `conversation_updated`, its message list the message events, its roster the
//! participant events.
use std::collections::HashMap;

use rehearsal_client::SyncEvent;
use serde_json::{Value, json};

/// Which of a client's Sync objects an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    MyConversations,
    Document,
    Messages,
    Roster,
}

impl ObjectKind {
    pub fn sync_type(self) -> &'static str {
        match self {
            ObjectKind::Document => "document",
            ObjectKind::Messages => "list",
            ObjectKind::MyConversations | ObjectKind::Roster => "map",
        }
    }
}

/// A subscribed object.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub kind: ObjectKind,
    /// The conversation SID (none for the user's conversations map).
    pub conversation: Option<String>,
    pub last_event_id: u64,
}

/// A conversation the client is in.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub sid: String,
    pub unique_name: Option<String>,
    pub friendly_name: Option<String>,
    pub document: String,
    pub messages: String,
    pub roster: String,
    /// `links.items` of the message list, once its descriptor was read.
    pub messages_items: Option<String>,
    /// Roster keys (participant SIDs) to identities, for `participant_left`.
    pub identities: HashMap<String, String>,
}

impl Conversation {
    /// From a REST conversation descriptor (`GET {my_conversations}`); `None` unless joined.
    pub fn from_rest(v: &Value) -> Option<Conversation> {
        if v["status"].as_str().is_some_and(|s| s != "joined") {
            return None;
        }
        Some(Conversation {
            sid: v["conversation_sid"].as_str().or(v["sid"].as_str())?.to_owned(),
            unique_name: v["unique_name"].as_str().map(str::to_owned),
            friendly_name: v["friendly_name"].as_str().map(str::to_owned),
            document: v["sync_objects"]["conversation"].as_str()?.to_owned(),
            messages: v["sync_objects"]["messages"].as_str()?.to_owned(),
            roster: v["sync_objects"]["participants"].as_str()?.to_owned(),
            ..Conversation::default()
        })
    }

    /// From an item of the user's conversations map (key: the conversation SID).
    fn from_map_item(sid: &str, data: &Value) -> Option<Conversation> {
        Some(Conversation {
            sid: sid.to_owned(),
            unique_name: data["uniqueName"].as_str().map(str::to_owned),
            friendly_name: data["friendlyName"].as_str().map(str::to_owned),
            document: data["channel"].as_str()?.to_owned(),
            messages: data["messages"].as_str()?.to_owned(),
            roster: data["roster"].as_str()?.to_owned(),
            ..Conversation::default()
        })
    }

    /// `{conversation, unique_name, friendly_name}` of the protocol's conversation events.
    pub fn fields(&self) -> Value {
        json!({ "conversation": self.sid, "unique_name": self.unique_name, "friendly_name": self.friendly_name })
    }
}

/// What applying a Sync event asks the session to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Report a protocol event.
    Emit(&'static str, Value),
    /// A conversation was joined: open (read and subscribe) its objects, then report it.
    Open(String),
    /// `identity` sent a message in `conversation`: its typing indicator ends.
    StopTyping { conversation: String, identity: String },
}

/// One client's conversations and subscribed objects.
#[derive(Debug, Default)]
pub struct Book {
    pub conversations: HashMap<String, Conversation>,
    pub objects: HashMap<String, Tracked>,
}

impl Book {
    /// Tracks the user's conversations map from `last_event_id`.
    pub fn track_my_conversations(&mut self, sid: &str, last_event_id: u64) {
        self.objects.insert(
            sid.to_owned(),
            Tracked {
                kind: ObjectKind::MyConversations,
                conversation: None,
                last_event_id,
            },
        );
    }

    /// Adds a conversation (not yet opened); `false` if it was already known.
    pub fn add(&mut self, c: Conversation) -> bool {
        if self.conversations.contains_key(&c.sid) {
            return false;
        }
        self.conversations.insert(c.sid.clone(), c);
        true
    }

    /// Tracks an opened conversation's object from `last_event_id`.
    pub fn track(&mut self, conversation: &str, kind: ObjectKind, sid: &str, last_event_id: u64) {
        self.objects.insert(
            sid.to_owned(),
            Tracked {
                kind,
                conversation: Some(conversation.to_owned()),
                last_event_id,
            },
        );
    }

    /// Forgets a conversation and its objects; its fields if it was known.
    pub fn forget(&mut self, sid: &str) -> Option<Conversation> {
        let c = self.conversations.remove(sid)?;
        self.objects.retain(|_, t| t.conversation.as_deref() != Some(sid));
        Some(c)
    }

    /// A conversation by SID or unique name.
    pub fn find(&self, reference: &str) -> Option<&Conversation> {
        self.conversations
            .get(reference)
            .or_else(|| self.conversations.values().find(|c| c.unique_name.as_deref() == Some(reference)))
    }

    /// Every tracked object with the id to resubscribe from.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.objects
            .iter()
            .map(|(sid, t)| json!({ "object_sid": sid, "object_type": t.kind.sync_type(), "last_event_id": t.last_event_id }))
            .collect()
    }

    /// Applies one Sync event; events for unknown objects or already seen ids change nothing.
    pub fn apply(&mut self, ev: &SyncEvent) -> Vec<Effect> {
        let Some(t) = self.objects.get_mut(&ev.object_sid) else {
            return Vec::new();
        };
        if ev.id != 0 {
            if ev.id <= t.last_event_id {
                return Vec::new();
            }
            t.last_event_id = ev.id;
        }
        let kind = t.kind;
        let conversation = t.conversation.clone();
        let data = ev.item_data.clone().unwrap_or(Value::Null);
        match (kind, conversation) {
            (ObjectKind::MyConversations, _) => self.my_conversations_event(ev, &data),
            (ObjectKind::Document, Some(sid)) => self.document_event(ev, &sid),
            (ObjectKind::Messages, Some(sid)) => message_event(ev, &sid, &data),
            (ObjectKind::Roster, Some(sid)) => self.roster_event(ev, &sid, &data),
            _ => Vec::new(),
        }
    }

    fn my_conversations_event(&mut self, ev: &SyncEvent, data: &Value) -> Vec<Effect> {
        let Some(sid) = ev.item_key.as_deref() else {
            return Vec::new();
        };
        let joined = match ev.event_type.as_str() {
            "map_item_added" | "map_item_updated" => data["status"].as_str().is_none_or(|s| s == "joined"),
            "map_item_removed" => false,
            _ => return Vec::new(),
        };
        if !joined {
            return match self.forget(sid) {
                Some(c) => vec![Effect::Emit("conversation_left", c.fields())],
                None => Vec::new(),
            };
        }
        // A conversation already known changed for this user (its read horizon, notification
        // level, names): the SDK's `conversationUpdated`.
        if let Some(c) = self.conversations.get_mut(sid) {
            if ev.event_type != "map_item_updated" {
                return Vec::new();
            }
            if let Some(u) = data.get("uniqueName") {
                c.unique_name = u.as_str().map(str::to_owned);
            }
            if let Some(f) = data.get("friendlyName") {
                c.friendly_name = f.as_str().map(str::to_owned);
            }
            return vec![Effect::Emit("conversation_updated", c.fields())];
        }
        match Conversation::from_map_item(sid, data) {
            Some(c) => {
                self.add(c);
                vec![Effect::Open(sid.to_owned())]
            }
            None => Vec::new(),
        }
    }

    fn document_event(&mut self, ev: &SyncEvent, sid: &str) -> Vec<Effect> {
        match ev.event_type.as_str() {
            "document_updated" => {
                let Some(c) = self.conversations.get_mut(sid) else {
                    return Vec::new();
                };
                if let Some(d) = &ev.document_data {
                    c.unique_name = d["uniqueName"].as_str().map(str::to_owned);
                    c.friendly_name = d["friendlyName"].as_str().map(str::to_owned);
                }
                vec![Effect::Emit("conversation_updated", c.fields())]
            }
            // The conversation was deleted.
            "document_removed" => match self.forget(sid) {
                Some(c) => vec![Effect::Emit("conversation_left", c.fields())],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn roster_event(&mut self, ev: &SyncEvent, sid: &str, data: &Value) -> Vec<Effect> {
        let Some(c) = self.conversations.get_mut(sid) else {
            return Vec::new();
        };
        let key = ev.item_key.clone().unwrap_or_default();
        let name = match ev.event_type.as_str() {
            "map_item_added" => "participant_joined",
            "map_item_updated" => "participant_updated",
            "map_item_removed" => "participant_left",
            _ => return Vec::new(),
        };
        let identity = data["identity"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| c.identities.get(&key).cloned());
        if name == "participant_left" {
            c.identities.remove(&key);
        } else if let Some(i) = &identity {
            c.identities.insert(key.clone(), i.clone());
        }
        vec![Effect::Emit(
            name,
            json!({ "conversation": sid, "identity": identity, "participant": key }),
        )]
    }
}

fn message_event(ev: &SyncEvent, sid: &str, data: &Value) -> Vec<Effect> {
    let name = match ev.event_type.as_str() {
        "list_item_added" => "message_added",
        "list_item_updated" => "message_updated",
        "list_item_removed" => "message_removed",
        _ => return Vec::new(),
    };
    let mut out = vec![Effect::Emit(name, message_fields(sid, ev.item_index, data))];
    if name == "message_added"
        && let Some(author) = data["author"].as_str()
    {
        out.insert(
            0,
            Effect::StopTyping {
                conversation: sid.to_owned(),
                identity: author.to_owned(),
            },
        );
    }
    out
}

/// The protocol's message fields from a message list item (`text` is the body, attributes a
/// JSON string, media in `medias` or the legacy single `media`).
pub fn message_fields(conversation: &str, index: Option<u64>, data: &Value) -> Value {
    let medias = match (&data["medias"], &data["media"]) {
        (Value::Array(a), _) => a.clone(),
        (_, m @ Value::Object(_)) => vec![m.clone()],
        _ => Vec::new(),
    };
    let media: Vec<Value> = medias
        .iter()
        .map(|m| json!({ "sid": m["sid"], "content_type": m["contentType"], "size": m["size"], "filename": m["filename"] }))
        .collect();
    let attributes = match &data["attributes"] {
        Value::String(s) => s.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    json!({
        "conversation": conversation,
        "index": index.or_else(|| data["index"].as_u64()),
        "sid": data["sid"],
        "author": data["author"],
        "body": data["text"],
        "type": data["type"].as_str().unwrap_or("text"),
        "attributes": attributes,
        "media": media,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: &str, object: &str, id: u64, key: Option<&str>, index: Option<u64>, data: Value) -> SyncEvent {
        SyncEvent {
            event_type: event_type.into(),
            object_sid: object.into(),
            id,
            item_index: index,
            item_key: key.map(str::to_owned),
            item_data: Some(data),
            document_data: None,
        }
    }

    fn book() -> Book {
        let mut b = Book::default();
        b.track_my_conversations("MAP", 3);
        b
    }

    #[test]
    fn a_joined_map_item_opens_once_and_removal_reports_left() {
        let mut b = book();
        let data = json!({"status": "joined", "channel": "D", "messages": "L", "roster": "R", "uniqueName": "general"});
        assert_eq!(
            b.apply(&ev("map_item_added", "MAP", 4, Some("CH1"), None, data.clone())),
            vec![Effect::Open("CH1".into())]
        );
        // An id already seen is ignored, and a second add of a known conversation opens nothing.
        assert!(b.apply(&ev("map_item_added", "MAP", 4, Some("CH1"), None, data.clone())).is_empty());
        // An update of a known conversation (a read horizon set elsewhere) is reported.
        assert_eq!(
            b.apply(&ev("map_item_updated", "MAP", 5, Some("CH1"), None, data)),
            vec![Effect::Emit(
                "conversation_updated",
                json!({"conversation": "CH1", "unique_name": "general", "friendly_name": null})
            )]
        );
        b.track("CH1", ObjectKind::Messages, "L", 0);
        let left = b.apply(&ev("map_item_removed", "MAP", 6, Some("CH1"), None, json!({})));
        assert_eq!(
            left,
            vec![Effect::Emit(
                "conversation_left",
                json!({"conversation": "CH1", "unique_name": "general", "friendly_name": null})
            )]
        );
        assert!(!b.objects.contains_key("L"), "the conversation's objects are forgotten");
    }

    #[test]
    fn messages_and_participants_become_protocol_events() {
        let mut b = book();
        let mut c = Conversation {
            sid: "CH1".into(),
            ..Conversation::default()
        };
        c.messages = "L".into();
        b.add(c);
        b.track("CH1", ObjectKind::Messages, "L", 10);
        b.track("CH1", ObjectKind::Roster, "R", 0);
        let added = b.apply(&ev(
            "list_item_added",
            "L",
            11,
            None,
            Some(4),
            json!({"sid": "IM1", "author": "bob", "text": "hi", "attributes": "{\"a\":1}", "type": "text"}),
        ));
        assert_eq!(
            added[0],
            Effect::StopTyping {
                conversation: "CH1".into(),
                identity: "bob".into()
            }
        );
        let Effect::Emit(name, fields) = &added[1] else {
            panic!("expected an event, got {added:?}")
        };
        assert_eq!(*name, "message_added");
        assert_eq!(fields["index"], 4);
        assert_eq!(fields["body"], "hi");
        assert_eq!(fields["attributes"], "{\"a\":1}");
        assert!(b.apply(&ev("list_item_added", "L", 9, None, Some(3), json!({}))).is_empty());
        b.apply(&ev("map_item_added", "R", 1, Some("MB1"), None, json!({"identity": "carol"})));
        let left = b.apply(&ev("map_item_removed", "R", 2, Some("MB1"), None, json!({})));
        assert_eq!(
            left,
            vec![Effect::Emit(
                "participant_left",
                json!({"conversation": "CH1", "identity": "carol", "participant": "MB1"})
            )]
        );
    }
}
