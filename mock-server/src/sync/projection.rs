//! One account's Sync projection: per-object event ids, replay, subscriptions and pushes.
//!
//! Objects are materialised lazily, on the first read, subscription or change after a read:
//! an object nobody has looked at costs nothing, and a history seeded with a million messages
//! does not pay for Sync bookkeeping until a client opens it. Materialising numbers the existing
//! items 1..=n in order; every later change takes the next event id of its object.
//!
//! Invariant: for every object, event ids strictly increase, and a subscriber that establishes
//! from id `n` receives (replay) exactly one event per item changed after `n` — the item's
//! current state under its latest id — and removals after `n`, in id order, before
//! `subscription_established`; live events follow in order.
use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::object::{self, Key, Kind, ObjectRef};
use crate::clock::Millis;
use crate::domain::AccountState;
use crate::twilsock::Outbox;
use crate::twilsock::codec;

#[derive(Debug, Clone, Copy)]
struct ItemMeta {
    created: u64,
    last: u64,
    updated: Millis,
}

#[derive(Debug)]
struct ObjState {
    kind: Kind,
    last_event_id: u64,
    date_updated: Millis,
    items: BTreeMap<Key, ItemMeta>,
    /// Latest event id of each live item → its key (for replay by range).
    by_event: BTreeMap<u64, Key>,
    /// Removal event id → (key, data at removal).
    tombstones: BTreeMap<u64, (Key, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Removed,
}

struct SessionEntry {
    outbox: Outbox,
    service: String,
    identity: String,
    objects: HashSet<String>,
}

/// One Sync event pushed to the subscribers of an object.
#[derive(Debug, Clone)]
pub struct PushRecord {
    pub object: String,
    pub event_type: String,
    pub id: u64,
    /// Subscribers whose outbox took the frame.
    pub delivered: usize,
    /// Subscribers whose outbox refused it (overflowed or closed: those sessions are ending).
    pub refused: usize,
}

/// Bounds the push records kept between two drains.
const MAX_PENDING_PUSH_RECORDS: usize = 4096;

#[derive(Default)]
pub struct Projection {
    pushes: Vec<PushRecord>,
    objects: HashMap<String, ObjState>,
    subs: HashMap<String, HashMap<u64, Outbox>>,
    sessions: HashMap<u64, SessionEntry>,
    notifications: u64,
}

/// An event ready to send: its type and body.
pub type SyncEvent = (&'static str, Value);

impl Projection {
    pub fn add_session(&mut self, id: u64, service: String, identity: String, outbox: Outbox) {
        self.sessions.insert(
            id,
            SessionEntry {
                outbox,
                service,
                identity,
                objects: HashSet::new(),
            },
        );
    }

    /// Forgets a session; returns its service and identity, if it was known.
    pub fn remove_session(&mut self, id: u64) -> Option<(String, String)> {
        let s = self.sessions.remove(&id)?;
        for o in s.objects {
            if let Some(m) = self.subs.get_mut(&o) {
                m.remove(&id);
                if m.is_empty() {
                    self.subs.remove(&o);
                }
            }
        }
        Some((s.service, s.identity))
    }

    /// Live sessions of `identity` in `service`, with their outboxes.
    pub fn sessions_of<'a>(&'a self, service: &'a str, identity: &'a str) -> impl Iterator<Item = (u64, &'a Outbox)> + 'a {
        self.sessions
            .iter()
            .filter(move |(_, s)| s.service == service && s.identity == identity)
            .map(|(id, s)| (*id, &s.outbox))
    }

    pub fn subscriptions_of(&self, session: u64) -> Vec<String> {
        let mut v: Vec<String> = self
            .sessions
            .get(&session)
            .map(|s| s.objects.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Materialises `obj` if needed; `false` if it does not exist in domain state.
    pub fn ensure(&mut self, state: &AccountState, obj: &ObjectRef, now: Millis) -> bool {
        let id = obj.id();
        if self.objects.contains_key(&id) {
            return true;
        }
        let Some(keys) = object::current_keys(state, obj) else {
            return false;
        };
        let mut items = BTreeMap::new();
        let mut by_event = BTreeMap::new();
        let mut n = 0;
        for k in keys {
            n += 1;
            items.insert(
                k.clone(),
                ItemMeta {
                    created: n,
                    last: n,
                    updated: now,
                },
            );
            by_event.insert(n, k);
        }
        if obj.kind() == Kind::Document {
            n = 1;
        }
        self.objects.insert(
            id,
            ObjState {
                kind: obj.kind(),
                last_event_id: n,
                date_updated: now,
                items,
                by_event,
                tombstones: BTreeMap::new(),
            },
        );
        true
    }

    pub fn forget(&mut self, obj: &ObjectRef) {
        self.objects.remove(&obj.id());
    }

    #[allow(clippy::too_many_arguments)]
    /// Records a change to a materialised object and pushes the event to its subscribers.
    /// Unmaterialised objects are skipped: nobody can hold an event id for them.
    pub fn change(
        &mut self,
        base: &str,
        state: &AccountState,
        obj: &ObjectRef,
        key: Option<Key>,
        change: Change,
        removed_data: Option<Value>,
        now: Millis,
    ) {
        let id = obj.id();
        let Some(o) = self.objects.get_mut(&id) else { return };
        o.last_event_id += 1;
        let eid = o.last_event_id;
        o.date_updated = now;
        let (event_type, event) = match (o.kind, &key) {
            (Kind::Document, _) => match change {
                Change::Removed => ("document_removed", json!({ "document_sid": id, "id": eid })),
                _ => {
                    let data = object::item_data(state, obj, None).unwrap_or(Value::Null);
                    (
                        "document_updated",
                        json!({ "document_sid": id, "id": eid, "document_revision": eid.to_string(), "document_data": data, "date_created": now.iso_millis() }),
                    )
                }
            },
            (_, Some(k)) => match change {
                Change::Removed => {
                    if let Some(meta) = o.items.remove(k) {
                        o.by_event.remove(&meta.last);
                    }
                    let data = removed_data.unwrap_or(Value::Null);
                    o.tombstones.insert(eid, (k.clone(), data.clone()));
                    item_event(o.kind, &id, eid, k, data, None, Change::Removed, now, base)
                }
                _ => {
                    let created = match o.items.get(k) {
                        Some(meta) => {
                            o.by_event.remove(&meta.last);
                            meta.created
                        }
                        None => eid,
                    };
                    let ch = if created == eid { Change::Added } else { Change::Updated };
                    o.items.insert(
                        k.clone(),
                        ItemMeta {
                            created,
                            last: eid,
                            updated: now,
                        },
                    );
                    o.by_event.insert(eid, k.clone());
                    let data = object::item_data(state, obj, Some(k)).unwrap_or(Value::Null);
                    item_event(o.kind, &id, eid, k, data, Some(eid), ch, now, base)
                }
            },
            (_, None) => match change {
                Change::Removed => (
                    if o.kind == Kind::List { "list_removed" } else { "map_removed" },
                    json!({ format!("{}_sid", o.kind.as_str()): id, "id": eid }),
                ),
                _ => return,
            },
        };
        let removed_whole = matches!(
            (o.kind, &key, change),
            (Kind::Document, _, Change::Removed) | (_, None, Change::Removed)
        );
        self.push(&id, event_type, &event, None);
        if removed_whole {
            self.objects.remove(&id);
        }
    }

    fn next_notification_id(&mut self) -> String {
        self.notifications += 1;
        format!("TM{:032x}", self.notifications)
    }

    /// Encodes once and queues to every subscriber of `object_id`.
    fn push(&mut self, object_id: &str, event_type: &str, event: &Value, correlation: Option<&Value>) {
        if !self.subs.contains_key(object_id) {
            return;
        }
        let frame = self.notification(event_type, event, correlation);
        let mut delivered = 0;
        let mut refused = 0;
        if let Some(subs) = self.subs.get(object_id) {
            for outbox in subs.values() {
                match outbox.push(frame.clone()) {
                    Ok(()) => delivered += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        if self.pushes.len() < MAX_PENDING_PUSH_RECORDS {
            self.pushes.push(PushRecord {
                object: object_id.to_owned(),
                event_type: event_type.to_owned(),
                id: event.get("id").and_then(Value::as_u64).unwrap_or(0),
                delivered,
                refused,
            });
        }
    }

    /// The pushes since the last call, for the journal (one record per event, not per socket).
    pub fn take_pushes(&mut self) -> Vec<PushRecord> {
        std::mem::take(&mut self.pushes)
    }

    pub fn notification(&mut self, event_type: &str, event: &Value, correlation: Option<&Value>) -> Bytes {
        let mut payload = Map::new();
        payload.insert("event_type".into(), json!(event_type));
        if let Some(c) = correlation {
            payload.insert("correlation_id".into(), c.clone());
        }
        payload.insert("event".into(), event.clone());
        notification_frame(self.next_notification_id(), "twilio.sync.event", &Value::Object(payload))
    }

    /// A `twilio.sync.event` notification with an arbitrary payload (control events).
    pub fn notification_raw(&mut self, payload: &Value) -> Bytes {
        notification_frame(self.next_notification_id(), "twilio.sync.event", payload)
    }

    /// Every event after `after`, from current state, in id order.
    pub fn replay(&self, base: &str, state: &AccountState, obj: &ObjectRef, after: u64) -> Vec<SyncEvent> {
        let id = obj.id();
        let Some(o) = self.objects.get(&id) else { return Vec::new() };
        let mut out: Vec<(u64, SyncEvent)> = Vec::new();
        if o.kind == Kind::Document {
            if o.last_event_id > after {
                let data = object::item_data(state, obj, None).unwrap_or(Value::Null);
                out.push((
                    o.last_event_id,
                    ("document_updated", json!({ "document_sid": id, "id": o.last_event_id, "document_revision": o.last_event_id.to_string(), "document_data": data, "date_created": o.date_updated.iso_millis() })),
                ));
            }
        } else {
            // Nothing is newer than the largest id (a client can send any u64): replay nothing,
            // as for any id at or past the object's own.
            let Some(first) = after.checked_add(1) else {
                return Vec::new();
            };
            for (eid, k) in o.by_event.range(first..) {
                let meta = o.items[k];
                let ch = if meta.created > after { Change::Added } else { Change::Updated };
                let data = object::item_data(state, obj, Some(k)).unwrap_or(Value::Null);
                out.push((*eid, item_event(o.kind, &id, *eid, k, data, Some(*eid), ch, meta.updated, base)));
            }
            for (eid, (k, data)) in o.tombstones.range(first..) {
                out.push((
                    *eid,
                    item_event(o.kind, &id, *eid, k, data.clone(), None, Change::Removed, o.date_updated, base),
                ));
            }
            out.sort_by_key(|(e, _)| *e);
        }
        out.into_iter().map(|(_, e)| e).collect()
    }

    pub fn last_event_id(&self, obj: &ObjectRef) -> u64 {
        self.objects.get(&obj.id()).map_or(0, |o| o.last_event_id)
    }

    pub fn date_updated(&self, obj: &ObjectRef) -> Option<Millis> {
        self.objects.get(&obj.id()).map(|o| o.date_updated)
    }

    pub fn item_ids(&self, obj: &ObjectRef, key: &Key) -> Option<(u64, Millis)> {
        self.objects
            .get(&obj.id())
            .and_then(|o| o.items.get(key))
            .map(|m| (m.last, m.updated))
    }

    pub fn subscribe(&mut self, session: u64, obj: &ObjectRef) {
        let id = obj.id();
        if let Some(s) = self.sessions.get_mut(&session) {
            s.objects.insert(id.clone());
            self.subs.entry(id).or_default().insert(session, s.outbox.clone());
        }
    }

    pub fn unsubscribe(&mut self, session: u64, obj: &ObjectRef) {
        let id = obj.id();
        if let Some(s) = self.sessions.get_mut(&session) {
            s.objects.remove(&id);
        }
        if let Some(m) = self.subs.get_mut(&id) {
            m.remove(&session);
            if m.is_empty() {
                self.subs.remove(&id);
            }
        }
    }

    pub fn outbox(&self, session: u64) -> Option<&Outbox> {
        self.sessions.get(&session).map(|s| &s.outbox)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

#[allow(clippy::too_many_arguments)]
fn item_event(
    kind: Kind,
    id: &str,
    eid: u64,
    k: &Key,
    data: Value,
    revision: Option<u64>,
    change: Change,
    at: Millis,
    base: &str,
) -> SyncEvent {
    let (sid_field, key_field) = if kind == Kind::List {
        ("list_sid", "item_index")
    } else {
        ("map_sid", "item_key")
    };
    let mut e = Map::new();
    e.insert(sid_field.into(), json!(id));
    e.insert("id".into(), json!(eid));
    e.insert(key_field.into(), k.json());
    if change != Change::Removed {
        e.insert("item_url".into(), json!(item_url(base, kind, id, k)));
        e.insert("item_revision".into(), json!(revision.unwrap_or(eid).to_string()));
    }
    e.insert("item_data".into(), data);
    e.insert("date_created".into(), json!(at.iso_millis()));
    if change != Change::Removed {
        e.insert(format!("{}_revision", kind.as_str()), json!(eid.to_string()));
    }
    let t = match (kind, change) {
        (Kind::List, Change::Added) => "list_item_added",
        (Kind::List, Change::Updated) => "list_item_updated",
        (Kind::List, Change::Removed) => "list_item_removed",
        (_, Change::Added) => "map_item_added",
        (_, Change::Updated) => "map_item_updated",
        (_, Change::Removed) => "map_item_removed",
    };
    (t, Value::Object(e))
}

pub fn object_url(base: &str, kind: Kind, id: &str) -> String {
    format!(
        "{base}/v3/{}/{}",
        kind.path(),
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

pub fn item_url(base: &str, kind: Kind, id: &str, k: &Key) -> String {
    match k {
        Key::Index(i) => format!("{}/Items/{i}", object_url(base, kind, id)),
        Key::Name(n) => format!(
            "{}/Items/{}",
            object_url(base, kind, id),
            percent_encoding::utf8_percent_encode(n, percent_encoding::NON_ALPHANUMERIC)
        ),
    }
}

/// A `notification` packet.
pub fn notification_frame(id: String, message_type: &str, payload: &Value) -> Bytes {
    let mut h = Map::new();
    h.insert("method".into(), json!("notification"));
    h.insert("id".into(), json!(id));
    h.insert("message_type".into(), json!(message_type));
    h.insert("payload_type".into(), json!("application/json"));
    codec::encode(h, serde_json::to_vec(payload).unwrap_or_default().as_slice())
}
