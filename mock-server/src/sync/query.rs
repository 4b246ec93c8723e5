//! The Sync reads the SDK makes over twilsock: object descriptors, item queries and
//! `/v4/Subscriptions`, with the exact paging semantics the SDK interprets (inclusive `From`,
//! truthy `previous_token`/`next_token`).
use serde_json::{Value, json};

use super::SyncHub;
use super::object::{self, Key, Kind, ObjectRef};
use super::projection::{self, Projection};
use crate::auth::identity::Caller;
use crate::domain::{AccountState, Order};
use crate::twilsock::{UpstreamRequest, UpstreamResponse};

/// Sync's error codes (the SDK reads `status` and `code`).
const NOT_FOUND: u32 = 54100;
const FORBIDDEN: u32 = 54007;
const BAD_REQUEST: u32 = 54011;
/// Most replayed events in one notification.
const REPLAY_BATCH: usize = 200;

/// Whether the caller may read the object: its own user maps, any user's info in its service,
/// and the objects of conversations it participates in or created.
pub fn can_read(state: &AccountState, caller: &Caller, obj: &ObjectRef) -> bool {
    match obj {
        ObjectRef::MyConversations(u) => {
            object::find_user(state, u).is_some_and(|(svc, user)| svc.sid == caller.service_sid && user.identity == caller.identity())
        }
        ObjectRef::UserInfo(u) => object::find_user(state, u).is_some_and(|(svc, _)| svc.sid == caller.service_sid),
        // Participants, and the creator (who may read a conversation it created before joining).
        ObjectRef::Channel(c) | ObjectRef::Messages(c) | ObjectRef::Roster(c) => {
            object::find_conversation(state, c).is_some_and(|(svc, e)| {
                svc.sid == caller.service_sid
                    && (e.participants.get(caller.identity()).is_some() || e.conversation.created_by.as_deref() == Some(caller.identity()))
            })
        }
    }
}

fn err(status: u16, code: u32, message: impl Into<String>) -> UpstreamResponse {
    UpstreamResponse::error(status, code, message)
}

fn descriptor(base: &str, p: &Projection, state: &AccountState, obj: &ObjectRef, include_items: bool) -> Value {
    let id = obj.id();
    let kind = obj.kind();
    let url = projection::object_url(base, kind, &id);
    let last = p.last_event_id(obj);
    let updated = p.date_updated(obj).map(|m| m.iso_millis());
    let mut v = json!({
        "sid": id, "unique_name": id, "url": url, "revision": last.to_string(), "last_event_id": last,
        "date_updated": updated, "date_expires": null,
    });
    match kind {
        Kind::Document => v["data"] = object::item_data(state, obj, None).unwrap_or(Value::Null),
        Kind::List => v["links"] = json!({ "items": format!("{url}/Items"), "context": format!("{url}/Context") }),
        Kind::Map => {
            v["links"] = json!({ "items": format!("{url}/Items") });
            if include_items {
                let keys = object::current_keys(state, obj).unwrap_or_default();
                v["items"] = Value::Array(
                    keys.iter()
                        .take(100)
                        .filter_map(|k| item_descriptor(base, p, state, obj, k))
                        .collect(),
                );
            }
        }
    }
    v
}

fn item_descriptor(base: &str, p: &Projection, state: &AccountState, obj: &ObjectRef, k: &Key) -> Option<Value> {
    let data = object::item_data(state, obj, Some(k))?;
    let (last, updated) = p.item_ids(obj, k)?;
    let mut v = json!({
        "url": projection::item_url(base, obj.kind(), &obj.id(), k),
        "revision": last.to_string(),
        "last_event_id": last,
        "date_updated": updated.iso_millis(),
        "date_expires": null,
        "data": data,
    });
    match k {
        Key::Index(i) => v["index"] = json!(i),
        Key::Name(n) => v["key"] = json!(n),
    }
    Some(v)
}

/// `GET /v3/{Documents|Lists|Maps}/{id}[/Items[/{key}]]`.
pub fn get(hub: &SyncHub, caller: &Caller, req: &UpstreamRequest, segments: &[&str]) -> UpstreamResponse {
    let (kind_seg, id) = match segments {
        [k, id, ..] => (*k, *id),
        _ => return err(404, NOT_FOUND, "unknown Sync path"),
    };
    let Some(obj) = ObjectRef::parse(id) else {
        return err(404, NOT_FOUND, format!("Sync object {id} not found"));
    };
    if obj.kind().path() != kind_seg {
        return err(404, NOT_FOUND, format!("{id} is not a {kind_seg} object"));
    }
    let base = hub.base_url().to_owned();
    let account = &caller.account;
    let now = caller.account.clock().now();
    account.read(|state| {
        if !can_read(state, caller, &obj) {
            return if current_exists(state, &obj) {
                err(403, FORBIDDEN, format!("access to {id} forbidden"))
            } else {
                err(404, NOT_FOUND, format!("Sync object {id} not found"))
            };
        }
        let proj = hub.projection(&account.sid);
        let mut p = proj.lock().unwrap_or_else(|e| e.into_inner());
        if !p.ensure(state, &obj, now) {
            return err(404, NOT_FOUND, format!("Sync object {id} not found"));
        }
        match &segments[2..] {
            [] => UpstreamResponse::ok(descriptor(&base, &p, state, &obj, req.param("Include") == Some("items"))),
            ["Items"] => items(&base, &p, state, &obj, req),
            ["Items", key] => {
                let k = parse_key(&obj, key);
                match k.and_then(|k| item_descriptor(&base, &p, state, &obj, &k)) {
                    Some(v) => UpstreamResponse::ok(v),
                    None => err(404, NOT_FOUND, format!("item {key} not found in {id}")),
                }
            }
            _ => err(404, NOT_FOUND, "unknown Sync path"),
        }
    })
}

fn current_exists(state: &AccountState, obj: &ObjectRef) -> bool {
    object::current_keys(state, obj).is_some()
}

fn parse_key(obj: &ObjectRef, raw: &str) -> Option<Key> {
    match obj.kind() {
        Kind::List => raw.parse().ok().map(Key::Index),
        _ => Some(Key::Name(raw.to_owned())),
    }
}

fn items(base: &str, p: &Projection, state: &AccountState, obj: &ObjectRef, req: &UpstreamRequest) -> UpstreamResponse {
    let order = match req.param("Order") {
        None | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(o) => return err(400, BAD_REQUEST, format!("Order must be asc or desc, got {o:?}")),
    };
    let size = match req.param("PageSize").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=1000).contains(&n) => n.min(100),
        Some(_) => return err(400, BAD_REQUEST, "PageSize must be an integer from 1 to 100"),
    };
    // Single-item queries.
    if let Some(i) = req.param("Index").or(req.param("Key")) {
        let items: Vec<Value> = parse_key(obj, i)
            .and_then(|k| item_descriptor(base, p, state, obj, &k))
            .into_iter()
            .collect();
        return UpstreamResponse::ok(json!({ "items": items, "meta": { "previous_token": null, "next_token": null } }));
    }
    let from = match req.param("From") {
        None => None,
        Some(f) => match parse_key(obj, f) {
            Some(k) => Some(k),
            None => return err(400, BAD_REQUEST, format!("From {f:?} is not valid for this object")),
        },
    };
    let walker = match Walker::new(state, obj) {
        Some(w) => w,
        None => return err(404, NOT_FOUND, "list not found"),
    };
    // A page token stands for the whole query (order, size, position): twilio-sync 3.1.0
    // (pinned `~3.1.0` by @twilio/conversations 2.6.0) walks on by sending back only
    // `PageToken` (twilio-sync 3.1.0 builds/lib.js, `SyncListImpl.queryItems` and
    // `SyncMapImpl.queryItems`: `this.queryItems({ pageToken })`), while later releases page by
    // `From` and read only the tokens' truthiness. See PROTOCOL-NOTES-SDK2.md.
    let (order, size, page) = match req.param("PageToken") {
        Some(raw) => match PageToken::decode(raw, obj.kind()) {
            Some(t) => (t.order, t.size, walker.after_token(&t)),
            None => return err(400, BAD_REQUEST, format!("PageToken {raw:?} is not valid")),
        },
        None => (order, size, walker.from(from.as_ref(), size, order)),
    };
    let items: Vec<Value> = page.keys.iter().filter_map(|k| item_descriptor(base, p, state, obj, k)).collect();
    let token = |dir: TokenDir, key: &Key| {
        PageToken {
            dir,
            order,
            size,
            key: key.clone(),
        }
        .encode()
    };
    UpstreamResponse::ok(json!({
        "items": items,
        "meta": {
            "previous_token": page.before.as_ref().map(|k| token(TokenDir::Previous, k)),
            "next_token": page.after.as_ref().map(|k| token(TokenDir::Next, k)),
            "page_size": size,
        }
    }))
}

/// Which way a page token walks from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenDir {
    /// The page of items after the key (exclusive), in the query's order.
    Next,
    /// The page of items before the key (exclusive), in the query's order.
    Previous,
}

/// A Sync item query's page token: opaque to the client, it carries the order, the page size
/// and the key the page starts after (or ends before), so that it stays valid while items
/// arrive or go. Encoded as `PT` + URL-safe base64 of `n|a|30|i42` (dir, order, size, key).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageToken {
    dir: TokenDir,
    order: Order,
    size: usize,
    key: Key,
}

impl PageToken {
    fn encode(&self) -> String {
        use base64::Engine;
        let dir = match self.dir {
            TokenDir::Next => 'n',
            TokenDir::Previous => 'p',
        };
        let order = match self.order {
            Order::Asc => 'a',
            Order::Desc => 'd',
        };
        let key = match &self.key {
            Key::Index(i) => format!("i{i}"),
            Key::Name(n) => format!("k{n}"),
        };
        let raw = format!("{dir}|{order}|{}|{key}", self.size);
        format!("PT{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }

    /// `None` for anything this server did not mint for an object of `kind`.
    fn decode(token: &str, kind: Kind) -> Option<PageToken> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.strip_prefix("PT")?)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(4, '|');
        let dir = match parts.next()? {
            "n" => TokenDir::Next,
            "p" => TokenDir::Previous,
            _ => return None,
        };
        let order = match parts.next()? {
            "a" => Order::Asc,
            "d" => Order::Desc,
            _ => return None,
        };
        let size: usize = parts.next()?.parse().ok()?;
        if !(1..=100).contains(&size) {
            return None;
        }
        let key = parts.next()?;
        let key = match (kind, key.split_at_checked(1)?) {
            (Kind::List, ("i", i)) => Key::Index(i.parse().ok()?),
            (Kind::Map, ("k", n)) => Key::Name(n.to_owned()),
            _ => return None,
        };
        Some(PageToken { dir, order, size, key })
    }
}

/// One page of keys, with the keys to page on from: the first key when items exist before
/// it, the last when items exist after it.
struct KeyPage {
    keys: Vec<Key>,
    before: Option<Key>,
    after: Option<Key>,
}

/// Where a walk starts, in its order.
enum Start<'k> {
    First,
    At(&'k Key),
    After(&'k Key),
}

/// Keyset walks over one object's current items, in either order.
enum Walker<'s> {
    /// Messages: the conversation's keyset-paged collection (O(log n + page)).
    Messages(&'s crate::domain::collection::Collection<crate::domain::message::Message>),
    /// Maps and other lists: their (small) sorted key set.
    Keys(Vec<Key>),
}

fn reverse(order: Order) -> Order {
    match order {
        Order::Asc => Order::Desc,
        Order::Desc => Order::Asc,
    }
}

impl<'s> Walker<'s> {
    fn new(state: &'s AccountState, obj: &ObjectRef) -> Option<Walker<'s>> {
        match obj {
            ObjectRef::Messages(c) => object::find_conversation(state, c).map(|(_, e)| Walker::Messages(&e.messages)),
            _ => object::current_keys(state, obj).map(Walker::Keys),
        }
    }

    /// Up to `size` keys from `start`, walking in `order`; and whether more follow.
    fn walk(&self, start: Start<'_>, size: usize, order: Order) -> (Vec<Key>, bool) {
        match self {
            Walker::Messages(messages) => {
                let from = match start {
                    Start::First => None,
                    Start::At(Key::Index(i)) => Some(*i),
                    Start::After(Key::Index(i)) => {
                        let next = match order {
                            Order::Asc => i.checked_add(1),
                            Order::Desc => i.checked_sub(1),
                        };
                        // Past either end of the index space there is nothing to walk.
                        let Some(next) = next else { return (Vec::new(), false) };
                        Some(next)
                    }
                    Start::At(Key::Name(_)) | Start::After(Key::Name(_)) => return (Vec::new(), false),
                };
                let w = messages.page_from(from, size, order);
                (w.items.iter().map(|(i, _)| Key::Index(*i)).collect(), w.has_more)
            }
            Walker::Keys(keys) => {
                let ordered: Box<dyn Iterator<Item = &Key>> = match order {
                    Order::Asc => Box::new(keys.iter()),
                    Order::Desc => Box::new(keys.iter().rev()),
                };
                let ahead = |k: &Key, f: &Key, inclusive: bool| match (order, inclusive) {
                    (Order::Asc, true) => k >= f,
                    (Order::Asc, false) => k > f,
                    (Order::Desc, true) => k <= f,
                    (Order::Desc, false) => k < f,
                };
                let mut it = ordered.skip_while(|k| match start {
                    Start::First => false,
                    Start::At(f) => !ahead(k, f, true),
                    Start::After(f) => !ahead(k, f, false),
                });
                let page: Vec<Key> = it.by_ref().take(size).cloned().collect();
                (page, it.next().is_some())
            }
        }
    }

    /// Whether any item lies before `key` (exclusive) in `order`.
    fn any_before(&self, key: &Key, order: Order) -> bool {
        !self.walk(Start::After(key), 1, reverse(order)).0.is_empty()
    }

    /// A query by `From` (inclusive) or from the first item. `previous_token` is set only when
    /// items exist before `From` (wire protocol: "previous_token non-null ⇔ items exist before
    /// From in the requested order"); a query without `From` starts at the first item.
    fn from(&self, from: Option<&Key>, size: usize, order: Order) -> KeyPage {
        let start = from.map_or(Start::First, Start::At);
        let (keys, more) = self.walk(start, size, order);
        let before = from
            .filter(|f| self.any_before(f, order))
            .map(|f| keys.first().unwrap_or(f).clone());
        let after = if more { keys.last().cloned() } else { None };
        KeyPage { keys, before, after }
    }

    /// The page a token stands for.
    fn after_token(&self, t: &PageToken) -> KeyPage {
        match t.dir {
            TokenDir::Next => {
                let (keys, more) = self.walk(Start::After(&t.key), t.size, t.order);
                let first = keys.first().unwrap_or(&t.key);
                let before = self.any_before(first, t.order).then(|| first.clone());
                let after = if more { keys.last().cloned() } else { None };
                KeyPage { keys, before, after }
            }
            TokenDir::Previous => {
                // Walk backwards from the key, then present the page in the query's order.
                let (mut keys, more_before) = self.walk(Start::After(&t.key), t.size, reverse(t.order));
                keys.reverse();
                let before = if more_before { keys.first().cloned() } else { None };
                let last = keys.last().unwrap_or(&t.key);
                let after = (!self.walk(Start::After(last), 1, t.order).0.is_empty()).then(|| last.clone());
                KeyPage { keys, before, after }
            }
        }
    }
}

/// `POST /v4/Subscriptions`: establish (with replay) or cancel. Replayed events and the
/// control events are queued to the session in order, under the locks, so no live event can
/// slip between a replay and `subscription_established`; they are queued behind a reply gate,
/// so the client has the reply first (as from Twilio, which answers at once and delivers
/// later) and never acts on an event while its subscription request is still unanswered.
pub fn subscriptions(hub: &SyncHub, caller: &Caller, session: u64, body: &Value) -> UpstreamResponse {
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    let correlation = body.get("correlation_id").cloned().unwrap_or(Value::Null);
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return err(400, BAD_REQUEST, "requests must be an array");
    };
    if action != "establish" && action != "cancel" {
        return err(400, BAD_REQUEST, format!("action must be establish or cancel, got {action:?}"));
    }
    let base = hub.base_url().to_owned();
    let now = caller.account.clock().now();
    let account = &caller.account;
    account.read(|state| {
        let proj = hub.projection(&account.sid);
        let mut p = proj.lock().unwrap_or_else(|e| e.into_inner());
        let Some(outbox) = p.outbox(session).cloned() else {
            return err(409, BAD_REQUEST, "the session is not established");
        };
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let mut frames = Vec::new();
        let gate = match outbox.gate() {
            Ok(gate) => gate,
            Err(_) => return err(409, BAD_REQUEST, "the session is ending"),
        };
        for r in requests {
            let sid = r.get("object_sid").and_then(Value::as_str).unwrap_or("");
            let ty = r.get("object_type").and_then(Value::as_str).unwrap_or("");
            let obj = ObjectRef::parse(sid).filter(|o| o.kind().as_str() == ty);
            let Some(obj) = obj else {
                failed.push(json!({ "object_sid": sid, "object_type": ty, "error": { "status": 404, "code": NOT_FOUND, "message": format!("{ty} {sid} not found") } }));
                continue;
            };
            if action == "cancel" {
                p.unsubscribe(session, &obj);
                ok.push(json!({ "object_sid": sid, "object_type": ty }));
                continue;
            }
            if !can_read(state, caller, &obj) || !p.ensure(state, &obj, now) {
                let (status, code) = if current_exists(state, &obj) { (403, FORBIDDEN) } else { (404, NOT_FOUND) };
                failed.push(json!({ "object_sid": sid, "object_type": ty, "error": { "status": status, "code": code, "message": format!("cannot subscribe to {sid}") } }));
                continue;
            }
            p.subscribe(session, &obj);
            if let Some(after) = r.get("last_event_id").and_then(Value::as_u64) {
                // Consecutive events of one type travel together (`events: [...]`), so a long
                // replay takes few frames of the bounded outbox; order is kept.
                let replay = p.replay(&base, state, &obj, after);
                let mut i = 0;
                while i < replay.len() {
                    let t = replay[i].0;
                    let mut j = i;
                    while j < replay.len() && replay[j].0 == t && j - i < REPLAY_BATCH {
                        j += 1;
                    }
                    let events: Vec<Value> = replay[i..j].iter().map(|(_, e)| e.clone()).collect();
                    frames.push(p.notification_raw(&json!({ "event_type": t, "correlation_id": correlation, "events": events })));
                    i = j;
                }
            }
            ok.push(json!({ "object_sid": sid, "object_type": ty, "replay_status": "completed", "last_event_id": p.last_event_id(&obj) }));
        }
        let control = if action == "establish" { "subscription_established" } else { "subscription_canceled" };
        if !ok.is_empty() {
            frames.push(control_frame(&mut p, control, &correlation, ok));
        }
        if !failed.is_empty() {
            frames.push(control_frame(&mut p, "subscription_failed", &correlation, failed));
        }
        for f in frames {
            if outbox.push(f).is_err() {
                break;
            }
        }
        UpstreamResponse::status(202, json!({ "estimated_delivery_in_ms": 5000, "max_batch_size": 100, "ttl_in_s": -1 })).with_gate(gate)
    })
}

fn control_frame(p: &mut Projection, event_type: &str, correlation: &Value, events: Vec<Value>) -> bytes::Bytes {
    let payload = json!({ "event_type": event_type, "correlation_id": correlation, "events": events });
    p.notification_raw(&payload)
}
