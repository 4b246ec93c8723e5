//! The Sync and Conversations calls an SDK user makes, over one [`Client`]: open a
//! conversation's objects and subscribe to them, page a message list the way the SDK does
//! (inclusive `From`, truthy page tokens), send and remove messages, join and leave.
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connection::{Client, Error, enc};

/// The body of `POST /v4/Subscriptions` as the SDK sends it: `action` (`establish` or
/// `cancel`) for `requests` (`[{object_sid, object_type, last_event_id}]`); the server answers
/// with a control event carrying `correlation_id`.
pub fn subscriptions_body(action: &str, correlation_id: u64, requests: Value) -> Value {
    json!({
        "event_protocol_version": 4, "action": action, "correlation_id": correlation_id,
        "retried_requests": 0, "ttl_in_s": -1, "requests": requests,
    })
}

/// The three Sync objects of a conversation (ids as the server names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationObjects {
    pub sid: String,
    pub document: String,
    pub messages: String,
    pub roster: String,
}

/// A list or map descriptor: what a subscription and item queries need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub sid: String,
    pub last_event_id: u64,
    /// `links.items` (lists and maps; empty for documents).
    pub items_url: String,
}

impl Descriptor {
    /// The entry for this object in a subscription request's `requests` (see
    /// [`subscriptions_body`]): subscribed from its current event id.
    pub fn subscription(&self, object_type: &str) -> Value {
        json!({"object_sid": self.sid, "object_type": object_type, "last_event_id": self.last_event_id})
    }
}

/// A conversation opened as the SDK opens it: descriptors read, all three objects subscribed.
#[derive(Debug, Clone)]
pub struct OpenConversation {
    pub objects: ConversationObjects,
    pub document: Descriptor,
    pub messages: Descriptor,
    pub roster: Descriptor,
    /// The `subscription_established` payload.
    pub established: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One page of an item query.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    /// `meta.previous_token` is truthy: items exist before `From` in this order.
    pub has_previous: bool,
    /// `meta.next_token` is truthy: items exist after this page.
    pub has_next: bool,
}

impl Page {
    /// The `index` of each item (list pages).
    pub fn indexes(&self) -> Vec<u64> {
        self.items.iter().filter_map(|i| i["index"].as_u64()).collect()
    }
}

/// One Sync event as pushed (`event`) or replayed (`events`), flattened.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SyncEvent {
    #[serde(skip)]
    pub event_type: String,
    #[serde(alias = "list_sid", alias = "map_sid", alias = "document_sid", default)]
    pub object_sid: String,
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub item_index: Option<u64>,
    #[serde(default)]
    pub item_key: Option<String>,
    #[serde(default)]
    pub item_data: Option<Value>,
    #[serde(default)]
    pub document_data: Option<Value>,
}

#[derive(Deserialize)]
struct Envelope {
    event_type: String,
    #[serde(default)]
    event: Option<SyncEvent>,
    #[serde(default)]
    events: Option<Vec<SyncEvent>>,
}

/// The data events of a `twilio.sync.event` payload; control events
/// (`subscription_established`, …) give an empty list.
pub fn sync_events(payload: &[u8]) -> Result<Vec<SyncEvent>, Error> {
    let e: Envelope = serde_json::from_slice(payload).map_err(|e| Error::Protocol(format!("sync event: {e}")))?;
    if e.event_type.starts_with("subscription_") {
        return Ok(Vec::new());
    }
    let mut out = match (e.event, e.events) {
        (Some(one), _) => vec![one],
        (None, Some(many)) => many,
        (None, None) => Vec::new(),
    };
    for ev in &mut out {
        ev.event_type.clone_from(&e.event_type);
    }
    Ok(out)
}

fn descriptor(v: &Value) -> Result<Descriptor, Error> {
    Ok(Descriptor {
        sid: v["sid"]
            .as_str()
            .ok_or_else(|| Error::Protocol(format!("descriptor without sid: {v}")))?
            .to_owned(),
        last_event_id: v["last_event_id"].as_u64().unwrap_or(0),
        items_url: v["links"]["items"].as_str().unwrap_or_default().to_owned(),
    })
}

impl Client {
    /// The Sync objects of a conversation the caller is in (`GET {my_conversations}/{id}`).
    pub async fn conversation(&self, id: &str) -> Result<ConversationObjects, Error> {
        let cfg = self.configuration().await?;
        let c = self
            .call("GET", &format!("{}/{}", cfg.my_conversations_url, enc(id)), &[], None)
            .await?;
        let s = |p: &str| {
            c.pointer(p)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Error::Protocol(format!("conversation has no {p}: {c}")))
        };
        Ok(ConversationObjects {
            sid: s("/conversation_sid")?,
            document: s("/sync_objects/conversation")?,
            messages: s("/sync_objects/messages")?,
            roster: s("/sync_objects/participants")?,
        })
    }

    /// `GET /v3/{Documents|Lists|Maps}/{id}`.
    pub async fn descriptor(&self, kind: &str, id: &str) -> Result<Descriptor, Error> {
        let path = match kind {
            "document" => "Documents",
            "list" => "Lists",
            "map" => "Maps",
            other => return Err(Error::Protocol(format!("no Sync object type {other}"))),
        };
        descriptor(&self.call("GET", &format!("/v3/{path}/{}", enc(id)), &[], None).await?)
    }

    /// Opens a conversation as the SDK does: its descriptors, then one subscription request for
    /// the document, the message list and the roster from their current event ids.
    pub async fn open_conversation(&self, id: &str) -> Result<OpenConversation, Error> {
        let objects = self.conversation(id).await?;
        let document = self.descriptor("document", &objects.document).await?;
        let messages = self.descriptor("list", &objects.messages).await?;
        let roster = self.descriptor("map", &objects.roster).await?;
        let established = self
            .subscriptions(
                "establish",
                json!([
                    document.subscription("document"),
                    messages.subscription("list"),
                    roster.subscription("map")
                ]),
            )
            .await?;
        Ok(OpenConversation {
            objects,
            document,
            messages,
            roster,
            established,
        })
    }

    /// Subscribes to one object from `last_event_id` (events after it are replayed first).
    pub async fn subscribe(&self, sid: &str, object_type: &str, last_event_id: u64) -> Result<Value, Error> {
        self.subscriptions(
            "establish",
            json!([{"object_sid": sid, "object_type": object_type, "last_event_id": last_event_id}]),
        )
        .await
    }

    /// One item query on `items_url` as the SDK sends it: `From` (inclusive) if given,
    /// `PageSize`, `Order`.
    pub async fn list_page(&self, items_url: &str, from: Option<u64>, page_size: u32, order: Order) -> Result<Page, Error> {
        let from = from.map(|f| f.to_string());
        let size = page_size.to_string();
        let mut params = vec![("HideExpired", "true")];
        if let Some(f) = &from {
            params.push(("From", f));
        }
        params.push(("PageSize", &size));
        params.push((
            "Order",
            match order {
                Order::Asc => "asc",
                Order::Desc => "desc",
            },
        ));
        let v = self.call("GET", items_url, &params, None).await?;
        let truthy = |t: &Value| !matches!(t, Value::Null | Value::Bool(false)) && t.as_str() != Some("");
        Ok(Page {
            has_previous: truthy(&v["meta"]["previous_token"]),
            has_next: truthy(&v["meta"]["next_token"]),
            items: match v.get("items") {
                Some(Value::Array(a)) => a.clone(),
                _ => return Err(Error::Protocol(format!("item query without items: {v}"))),
            },
        })
    }

    /// Sends a text message (`POST {conversations}/{sid}/Messages`); returns its index.
    pub async fn send_message(&self, conversation_sid: &str, body: &str) -> Result<u64, Error> {
        let cfg = self.configuration().await?;
        // The SDK sends the body as a JSON string.
        let payload = Value::String(json!({"body": body, "attributes": "{}"}).to_string());
        let v = self
            .call(
                "POST",
                &format!("{}/{conversation_sid}/Messages", cfg.conversations_url),
                &[],
                Some(&payload),
            )
            .await?;
        v["index"]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("message answer without index: {v}")))
    }

    /// Joins a conversation as the caller (`POST {conversations}/{sid}/Participants`).
    pub async fn join(&self, conversation_sid: &str) -> Result<(), Error> {
        let cfg = self.configuration().await?;
        let payload = Value::String(json!({"identity": cfg.identity}).to_string());
        self.call(
            "POST",
            &format!("{}/{conversation_sid}/Participants", cfg.conversations_url),
            &[],
            Some(&payload),
        )
        .await
        .map(drop)
    }

    /// Leaves a conversation (`DELETE {conversations}/{sid}/Participants/{identity}`).
    pub async fn leave(&self, conversation_sid: &str) -> Result<(), Error> {
        let cfg = self.configuration().await?;
        self.call(
            "DELETE",
            &format!("{}/{conversation_sid}/Participants/{}", cfg.conversations_url, enc(&cfg.identity)),
            &[],
            Some(&Value::String("{}".into())),
        )
        .await
        .map(drop)
    }
}
