//! Sync over twilsock end to end, against a real [`MockServer`] on the default seed: item queries
//! (inclusive `From`, `Order`, token truthiness), event ids, subscriptions with replay, live
//! events, access control, account isolation and fan-out.
//!
//! The client here speaks twilsock as the SDK does (binary frames, `init`, upstream `message`
//! requests answered by id, notifications acked). Changes are made over REST: the domain pushes
//! Sync events into the sessions' outboxes before the REST answer is sent, and a session writes
//! its outbox in order, so after a REST call returns, a probe request's reply proves that no
//! notification caused by it is still on its way (see [`Client::assert_quiet`]). Every wait is
//! bounded by [`WAIT`]; nothing sleeps for a fixed time.
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::domain::Cause;
use rehearsal_mock_server::domain::message::NewMessage;
use rehearsal_mock_server::domain::service::AddMessage;
use rehearsal_test_support::twilsock::{self, Packet};
use rehearsal_test_support::{Token, token_for};
use serde_json::{Map, Value, json};
use tokio::time::timeout;

use crate::support::{self, ACCOUNT_SID, Api, SERVICE_SID, enc, expect};

/// Upper bound for every wait.
const WAIT: Duration = Duration::from_secs(5);

/// Sync's error codes as the SDK reads them (`error.code` / body `code`).
const SYNC_NOT_FOUND: u64 = 54100;
const SYNC_FORBIDDEN: u64 = 54007;

// ---------------------------------------------------------------------------------------------
// A small twilsock client
// ---------------------------------------------------------------------------------------------

/// A server `notification` packet.
#[derive(Debug, Clone)]
struct Note {
    header: Map<String, Value>,
    payload: Value,
}

impl Note {
    fn message_type(&self) -> &str {
        self.header.get("message_type").and_then(Value::as_str).unwrap_or_default()
    }

    fn event_type(&self) -> &str {
        self.payload["event_type"].as_str().unwrap_or_default()
    }
}

/// The HTTP answer of an upstream request.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn ok(self, what: &str) -> Value {
        assert_eq!(self.status, 200, "{what}: {:#}", self.body);
        self.body
    }

    /// An error answer in the SDK's convention (`{status, code, message}`).
    #[track_caller]
    fn error(self, status: u16, code: u64, what: &str) {
        assert_eq!(self.status, status, "{what}: {:#}", self.body);
        assert_eq!(self.body["status"], status, "{what}: {:#}", self.body);
        assert_eq!(self.body["code"], code, "{what}: {:#}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {:#}",
            self.body
        );
    }
}

/// The raw twilsock client of the test-support crate, with what these tests add: packet ids,
/// notifications acked and kept while a reply is awaited, and Sync's requests.
struct Client {
    raw: twilsock::Client,
    /// `http://127.0.0.1:PORT`: stripped from the absolute URLs the server hands out.
    base: String,
    /// Notifications that arrived while a reply was awaited, in arrival order.
    pending: VecDeque<Note>,
    seq: u64,
}

impl Client {
    /// Opens the WebSocket without sending anything.
    async fn connect_raw(server: &MockServer) -> Client {
        Client {
            raw: twilsock::Client::connect(&server.twilsock_url()).await.with_wait(WAIT),
            base: server.url(),
            pending: VecDeque::new(),
            seq: 0,
        }
    }

    /// Connects and completes `init` with `token`.
    async fn connect(server: &MockServer, token: &str) -> Client {
        let mut c = Client::connect_raw(server).await;
        let reply = c.init(token).await;
        assert_eq!(reply.header["status"]["code"], 200, "init: {reply:?}");
        c
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("TMsync-{:08}", self.seq)
    }

    /// Receives until the reply to `id`; notifications on the way are acked and kept.
    async fn reply_to(&mut self, id: &str) -> Packet {
        loop {
            let p = self.raw.recv().await;
            match p.method() {
                Some("notification") => self.keep(p).await,
                Some("reply") if p.id() == Some(id) => return p,
                _ => panic!("expected the reply to {id}, got {p:?}"),
            }
        }
    }

    async fn keep(&mut self, p: Packet) {
        let id = p.id().expect("notification id").to_owned();
        let payload = if p.payload.is_empty() {
            Value::Null
        } else {
            p.payload_json().expect("notification payload is JSON")
        };
        self.raw.ack(&id).await;
        self.pending.push_back(Note { header: p.header, payload });
    }

    async fn init(&mut self, token: &str) -> Packet {
        let id = self.next_id();
        self.raw
            .send(
                json!({
                    "method": "init", "id": id, "token": token, "continuation_token": null,
                    "capabilities": ["client_update", "offline_storage", "telemetry.v1"],
                    "metadata": {"ver": "1.0.2", "env": "Node.js", "type": "conversations", "sdk": "JS", "sdkv": "3.0.1"},
                    "registrations": [{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
                                       "message_types": ["twilio.sync.event", "com.twilio.rtd.cds.document",
                                                         "com.twilio.rtd.cds.list", "com.twilio.rtd.cds.map"]}],
                    "tweaks": null,
                }),
                b"",
            )
            .await;
        self.reply_to(&id).await
    }

    /// Sends an upstream request; returns its packet id. `target` is a path or an absolute URL
    /// on the server (as `links` hold); `params` are sent percent-encoded in
    /// `http_request.params`, as the SDK does.
    async fn send_request(&mut self, method: &str, target: &str, params: &[(&str, &str)], body: Option<&Value>) -> String {
        let path = target.strip_prefix(&self.base).unwrap_or(target);
        assert!(path.starts_with('/'), "{target} is not on this server ({})", self.base);
        let id = self.next_id();
        self.raw.send_request(&id, method, path, params, body).await;
        id
    }

    /// An upstream request and its answer; notifications on the way are kept.
    async fn request(&mut self, method: &str, target: &str, params: &[(&str, &str)], body: Option<&Value>) -> Answer {
        let id = self.send_request(method, target, params, body).await;
        let reply = self.reply_to(&id).await;
        assert_eq!(
            reply.header["status"]["code"], 200,
            "twilsock status of {method} {target}: {reply:?}"
        );
        let status = reply.header["http_status"]["code"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or_else(|| panic!("no http_status in {reply:?}"));
        let body = if reply.payload.is_empty() {
            Value::Null
        } else {
            reply.payload_json().expect("reply payload is JSON")
        };
        Answer { status, body }
    }

    async fn get(&mut self, target: &str, params: &[(&str, &str)]) -> Answer {
        self.request("GET", target, params, None).await
    }

    /// The next notification, whether it already arrived or not.
    async fn notification(&mut self) -> Note {
        if let Some(n) = self.pending.pop_front() {
            return n;
        }
        let p = self.raw.recv().await;
        assert_eq!(p.method(), Some("notification"), "expected a notification, got {p:?}");
        self.keep(p).await;
        self.pending.pop_front().expect("just kept")
    }

    /// The payload of the next notification, which must be a `twilio.sync.event`.
    async fn sync_event(&mut self) -> Value {
        let n = self.notification().await;
        assert_eq!(n.message_type(), "twilio.sync.event", "{n:?}");
        n.payload
    }

    /// The next `n` Sync events (their `event` bodies, with `event_type` copied in).
    async fn item_events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(flatten(&self.sync_event().await));
        }
        out
    }

    /// Proves that no notification is queued for this client: a probe's reply comes after
    /// everything the server queued before it.
    async fn assert_quiet(&mut self) {
        let id = self.next_id();
        self.raw
            .send(
                json!({"method": "put_notification_ctx", "id": id, "notification_ctx_id": "sync-test-probe"}),
                br#"{"product_id":"ip_messaging","notification_protocol_version":4,"endpoint_platform":"node","message_types":[]}"#,
            )
            .await;
        let reply = self.reply_to(&id).await;
        assert_eq!(reply.header["status"]["code"], 200, "{reply:?}");
        let unexpected: Vec<&Value> = self.pending.iter().map(|n| &n.payload).collect();
        assert!(unexpected.is_empty(), "unexpected notifications: {unexpected:#?}");
    }

    /// `POST /v4/Subscriptions`; returns the Sync events received before the first control
    /// event (`subscription_established|failed|canceled`) with this request's correlation id,
    /// and that control event's payload.
    async fn subscriptions(&mut self, action: &str, requests: Value) -> (Vec<Value>, Value) {
        let correlation = 1_795_670_317_000 + self.seq;
        let body = json!({
            "event_protocol_version": 4, "action": action, "correlation_id": correlation,
            "retried_requests": 0, "ttl_in_s": -1, "requests": requests,
        });
        let answer = self.request("POST", "/v4/Subscriptions", &[], Some(&body)).await;
        assert!((200..300).contains(&answer.status), "subscriptions: {answer:?}");
        assert!(answer.body["estimated_delivery_in_ms"].is_u64(), "subscriptions: {answer:?}");
        assert!(answer.body["max_batch_size"].is_u64(), "subscriptions: {answer:?}");
        // Twilio answers first and delivers later; an SDK that saw the events first could act
        // on them (even shut down) with its request unanswered.
        let early: Vec<&Value> = self
            .pending
            .iter()
            .map(|n| &n.payload)
            .filter(|p| p["correlation_id"] == correlation)
            .collect();
        assert!(early.is_empty(), "events of the request arrived before its reply: {early:#?}");
        let mut events = Vec::new();
        loop {
            let p = self.sync_event().await;
            let t = p["event_type"].as_str().unwrap_or_default();
            if matches!(t, "subscription_established" | "subscription_failed" | "subscription_canceled") {
                assert_eq!(p["correlation_id"], correlation, "control event of another request: {p:#}");
                return (events, p);
            }
            events.extend(flatten_all(&p));
        }
    }

    /// Establishes one object from `last_event_id`; returns the replayed events and the
    /// established entry for the object.
    async fn establish(&mut self, sid: &str, object_type: &str, last_event_id: u64) -> (Vec<Value>, Value) {
        let (events, control) = self
            .subscriptions(
                "establish",
                json!([{"object_sid": sid, "object_type": object_type, "last_event_id": last_event_id}]),
            )
            .await;
        assert_eq!(control["event_type"], "subscription_established", "{control:#}");
        let entries = control["events"].as_array().expect("events of subscription_established");
        assert_eq!(entries.len(), 1, "{control:#}");
        (events, entries[0].clone())
    }

    /// The SDK's configuration (`sync_objects.my_conversations`, `my_user_info`).
    async fn configuration(&mut self) -> Value {
        self.get("/Client/v2/Configuration", &[]).await.ok("Configuration")
    }

    /// The Sync objects of a conversation the caller is in, from the client API.
    async fn conversation_objects(&mut self, conversation: &str) -> ConvObjects {
        let c = self
            .get(&format!("/Client/v2/Services/{SERVICE_SID}/Me/Conversations/{conversation}"), &[])
            .await
            .ok("Me/Conversations/{sid}");
        let o = &c["sync_objects"];
        ConvObjects {
            channel: o["conversation"].as_str().expect("sync_objects.conversation").to_owned(),
            messages: o["messages"].as_str().expect("sync_objects.messages").to_owned(),
            roster: o["participants"].as_str().expect("sync_objects.participants").to_owned(),
        }
    }

    async fn descriptor_answer(&mut self, kind: &str, id: &str, params: &[(&str, &str)]) -> Answer {
        self.get(&format!("/v3/{kind}/{}", enc(id)), params).await
    }

    /// `GET /v3/{Documents|Lists|Maps}/{id}`, which must succeed.
    async fn descriptor(&mut self, kind: &str, id: &str) -> Value {
        self.descriptor_answer(kind, id, &[]).await.ok(&format!("{kind}/{id}"))
    }

    /// An item query on `links.items` of `descriptor`, as the SDK sends it.
    async fn items(&mut self, descriptor: &Value, params: &[(&str, &str)]) -> Value {
        let url = descriptor["links"]["items"].as_str().expect("links.items").to_owned();
        let mut all = vec![("HideExpired", "true")];
        all.extend_from_slice(params);
        self.get(&url, &all).await.ok(&format!("items {params:?}"))
    }

    /// The items of one single-item query (`Index=` / `Key=`).
    async fn item(&mut self, descriptor: &Value, param: &str, key: &str) -> Value {
        let page = self.items(descriptor, &[(param, key)]).await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{param}={key}: {page:#}");
        items[0].clone()
    }
}

#[derive(Debug, Clone)]
struct ConvObjects {
    channel: String,
    messages: String,
    roster: String,
}

/// Every item event of a notification, which carries one (`event`) or a batch (`events`, as
/// replays do), each with `event_type` copied in.
fn flatten_all(payload: &Value) -> Vec<Value> {
    match payload["events"].as_array() {
        Some(batch) => batch
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["event_type"] = payload["event_type"].clone();
                e
            })
            .collect(),
        None => vec![flatten(payload)],
    }
}

/// An item event as one object: the `event` body plus `event_type`.
fn flatten(payload: &Value) -> Value {
    let mut e = payload["event"].clone();
    assert!(e.is_object(), "an item event has an `event` object: {payload:#}");
    e["event_type"] = payload["event_type"].clone();
    e
}

/// `(event_type, id, key)` of an item event: a compact form for comparisons.
fn brief(e: &Value) -> (String, u64, Value) {
    let key = if e.get("item_index").is_some() {
        e["item_index"].clone()
    } else if e.get("item_key").is_some() {
        e["item_key"].clone()
    } else {
        Value::Null
    };
    (
        e["event_type"].as_str().unwrap_or_default().to_owned(),
        e["id"].as_u64().unwrap_or_else(|| panic!("event without a numeric id: {e:#}")),
        key,
    )
}

fn briefs(events: &[Value]) -> Vec<(String, u64, Value)> {
    events.iter().map(brief).collect()
}

fn b(t: &str, id: u64, key: impl Into<Value>) -> (String, u64, Value) {
    (t.to_owned(), id, key.into())
}

/// The SDK reads only the truthiness of page tokens.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

/// The keys of a page: `index` for lists, `key` for maps.
fn page_keys(page: &Value) -> Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page:#}"))
        .iter()
        .map(|i| i.get("index").or_else(|| i.get("key")).cloned().unwrap_or(Value::Null))
        .collect()
}

#[track_caller]
fn assert_strictly_increasing(events: &[Value], what: &str) {
    let ids: Vec<u64> = events.iter().map(|e| brief(e).1).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{what}: ids not strictly increasing: {ids:?}");
}

/// `value` with the server's base URL replaced and every ISO date (`…T…Z`) shown as `[date]`.
fn redact(server: &MockServer, value: &Value) -> Value {
    fn dates(v: &Value) -> Value {
        match v {
            Value::String(s) if is_iso_date(s) => Value::String("[date]".into()),
            Value::Array(a) => Value::Array(a.iter().map(dates).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), dates(v))).collect()),
            other => other.clone(),
        }
    }
    dates(&support::portless(server, value))
}

/// `2024-01-02T03:04:05Z` or `2024-01-02T03:04:05.678Z`.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = |len: usize| {
        b.len() == len
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 if len == 24 => *c == b'.',
                i if i == len - 1 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    };
    shape(20) || shape(24)
}

// ---------------------------------------------------------------------------------------------
// REST helpers
// ---------------------------------------------------------------------------------------------

async fn post_message(api: &Api, conversation: &str, author: &str, body: &str) -> Value {
    expect(
        201,
        api.post(
            &format!("/v1/Conversations/{conversation}/Messages"),
            &[("Author", author), ("Body", body)],
        )
        .await,
    )
}

async fn edit_message(api: &Api, conversation: &str, index: u64, body: &str) -> Value {
    expect(
        200,
        api.post(&format!("/v1/Conversations/{conversation}/Messages/{index}"), &[("Body", body)])
            .await,
    )
}

async fn delete_message(api: &Api, conversation: &str, index: u64) {
    expect(204, api.delete(&format!("/v1/Conversations/{conversation}/Messages/{index}")).await);
}

async fn add_participant(api: &Api, conversation: &str, identity: &str) -> String {
    let p = expect(
        201,
        api.post(&format!("/v1/Conversations/{conversation}/Participants"), &[("Identity", identity)])
            .await,
    );
    p["sid"].as_str().expect("participant sid").to_owned()
}

async fn participant_sid(api: &Api, conversation: &str, identity: &str) -> String {
    let p = expect(
        200,
        api.get(&format!("/v1/Conversations/{conversation}/Participants/{identity}")).await,
    );
    p["sid"].as_str().expect("participant sid").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Item queries
// ---------------------------------------------------------------------------------------------

/// One item query (`k=v&k=v`, unencoded) and what it must answer.
struct Case {
    query: String,
    keys: Vec<Value>,
    prev: bool,
    next: bool,
}

fn case(query: &str, keys: Vec<Value>, prev: bool, next: bool) -> Case {
    Case {
        query: query.to_owned(),
        keys,
        prev,
        next,
    }
}

fn indices(it: impl IntoIterator<Item = u64>) -> Vec<Value> {
    it.into_iter().map(Value::from).collect()
}

/// Runs every case; reports all mismatches at once.
async fn run_cases(c: &mut Client, descriptor: &Value, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let params: Vec<(&str, &str)> = case
            .query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap_or_else(|| panic!("bad case query {kv}")))
            .collect();
        let page = c.items(descriptor, &params).await;
        let got = (
            page_keys(&page),
            truthy(&page["meta"]["previous_token"]),
            truthy(&page["meta"]["next_token"]),
        );
        let want = (case.keys.clone(), case.prev, case.next);
        if got != want {
            failures.push(format!(
                "{}:\n    want keys {:?} prev {} next {}\n    got  keys {:?} prev {} next {}",
                case.query, want.0, want.1, want.2, got.0, got.1, got.2
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} item queries answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn list_item_queries_page_by_index() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let objects = alice.conversation_objects(&history).await;
    let list = alice.descriptor("Lists", &objects.messages).await;
    assert_eq!(list["sid"], objects.messages.as_str());
    assert_eq!(list["last_event_id"], 120, "{list:#}");

    // Query, expected indices, previous_token and next_token truthiness.
    #[rustfmt::skip]
    let cases = [
        case("Order=asc&PageSize=50", indices(0..50), false, true),
        case("From=0&Order=asc&PageSize=5", indices(0..5), false, true),
        case("From=10&Order=asc&PageSize=5", indices(10..15), true, true),
        case("From=10&Order=desc&PageSize=5", indices([10, 9, 8, 7, 6]), true, true),
        case("From=2&Order=desc&PageSize=5", indices([2, 1, 0]), true, false),
        case("From=0&Order=desc&PageSize=5", indices([0]), true, false),
        case("Order=desc&PageSize=5", indices((115..120).rev()), false, true),
        case("From=119&Order=desc&PageSize=3", indices([119, 118, 117]), false, true),
        case("From=115&Order=asc&PageSize=5", indices(115..120), true, false), // ends exactly
        case("From=119&Order=asc&PageSize=5", indices([119]), true, false),
        case("From=500&Order=asc&PageSize=5", vec![], true, false), // beyond the end
        case("From=500&Order=desc&PageSize=3", indices([119, 118, 117]), false, true),
        case("Order=asc&PageSize=100", indices(0..100), false, true),
        case("From=20&Order=asc&PageSize=100", indices(20..120), true, false),
        case("Order=desc&PageSize=100", indices((20..120).rev()), false, true),
        case("Index=5", indices([5]), false, false),
        case("Index=500", vec![], false, false),
    ];
    run_cases(&mut alice, &list, &cases).await;

    // More than 100 per page is never served.
    let page = alice.items(&list, &[("Order", "asc"), ("PageSize", "101")]).await;
    assert!(page_keys(&page).len() <= 100, "PageSize=101 gave {} items", page_keys(&page).len());

    // An item as the SDK reads it: index, url, revision and event id from materialisation, data.
    let item = alice.item(&list, "Index", "10").await;
    let rest = expect(200, api.get(&format!("/v1/Conversations/{history}/Messages/10")).await);
    assert_eq!(item["index"], 10);
    assert_eq!(item["url"], format!("{}/10", list["links"]["items"].as_str().expect("links.items")));
    assert_eq!(item["last_event_id"], 11, "materialisation numbers items 1..=n in order: {item:#}");
    assert_eq!(item["revision"], "11", "{item:#}");
    assert_eq!(item["data"]["sid"], rest["sid"]);
    assert_eq!(item["data"]["text"], "message 11");
    assert_eq!(item["data"]["author"], rest["author"]);
    assert_eq!(item["data"]["attributes"], "{}", "attributes are a JSON string: {item:#}");
    assert_eq!(item["data"]["type"], "text");
    assert!(item["data"]["timestamp"].as_str().is_some_and(is_iso_date), "{item:#}");
    assert!(item.get("date_expires").is_some(), "{item:#}");
}

/// Follows `meta.{which}` with nothing but `PageToken`, as twilio-sync 3.1.0 does
/// (`SyncListImpl.queryItems` / `SyncMapImpl.queryItems`: `this.queryItems({ pageToken })`), and
/// returns the keys of every page walked (the first included), at most `limit` pages.
async fn walk_tokens(c: &mut Client, descriptor: &Value, first: &[(&str, &str)], which: &str, limit: usize) -> Vec<Vec<Value>> {
    let mut page = c.items(descriptor, first).await;
    let mut pages = vec![page_keys(&page)];
    while let Some(token) = page["meta"][which].as_str().map(str::to_owned) {
        assert!(pages.len() < limit, "{which} walk from {first:?} does not end: {pages:?}");
        page = c.items(descriptor, &[("PageToken", &token)]).await;
        pages.push(page_keys(&page));
    }
    pages
}

#[tokio::test]
async fn page_tokens_alone_continue_the_query() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let objects = alice.conversation_objects(&history).await;
    let list = alice.descriptor("Lists", &objects.messages).await;
    let chunks = |it: Vec<u64>, n: usize| -> Vec<Vec<Value>> { it.chunks(n).map(|c| indices(c.iter().copied())).collect() };

    // conversations 2.6.0 getMessages(30) then prevPage()…: Order=desc, then Sync's next pages.
    let backwards = walk_tokens(&mut alice, &list, &[("Order", "desc"), ("PageSize", "30")], "next_token", 10).await;
    assert_eq!(backwards, chunks((0..120).rev().collect(), 30));
    // Forwards from an anchor.
    let forwards = walk_tokens(
        &mut alice,
        &list,
        &[("From", "7"), ("Order", "asc"), ("PageSize", "25")],
        "next_token",
        10,
    )
    .await;
    assert_eq!(forwards, chunks((7..120).collect(), 25));
    // Back from an anchor with previous_token: the pages before it, each in the query's order.
    let back = walk_tokens(
        &mut alice,
        &list,
        &[("From", "60"), ("Order", "asc"), ("PageSize", "25")],
        "previous_token",
        10,
    )
    .await;
    assert_eq!(back, vec![indices(60..85), indices(35..60), indices(10..35), indices(0..10)]);
    let back_desc = walk_tokens(
        &mut alice,
        &list,
        &[("From", "100"), ("Order", "desc"), ("PageSize", "8")],
        "previous_token",
        10,
    )
    .await;
    assert_eq!(
        back_desc,
        vec![
            indices((93..=100).rev()),
            indices((101..109).rev()),
            indices((109..117).rev()),
            indices((117..120).rev())
        ]
    );

    // A page reached by a token has both neighbours' tokens, and they lead back and forth.
    let first = alice.items(&list, &[("Order", "desc"), ("PageSize", "30")]).await;
    let second = alice
        .items(&list, &[("PageToken", first["meta"]["next_token"].as_str().expect("next_token"))])
        .await;
    let again = alice
        .items(
            &list,
            &[("PageToken", second["meta"]["previous_token"].as_str().expect("previous_token"))],
        )
        .await;
    assert_eq!(page_keys(&again), page_keys(&first), "previous of next is the first page again");

    // Items arriving meanwhile do not disturb a walk in progress: a token holds a position.
    let page = alice.items(&list, &[("Order", "asc"), ("PageSize", "50")]).await;
    let token = page["meta"]["next_token"].as_str().expect("next_token").to_owned();
    post_message(&api, &history, "alice", "late").await;
    let next = alice.items(&list, &[("PageToken", &token)]).await;
    assert_eq!(page_keys(&next), indices(50..100));

    // Maps too: the roster of a conversation walked one participant at a time.
    let general = support::conversation_sid(&api, "general").await;
    let objects = alice.conversation_objects(&general).await;
    let roster = alice.descriptor("Maps", &objects.roster).await;
    let all = page_keys(&alice.items(&roster, &[("Order", "asc"), ("PageSize", "50")]).await);
    let walked: Vec<Value> = walk_tokens(&mut alice, &roster, &[("Order", "asc"), ("PageSize", "1")], "next_token", 10)
        .await
        .concat();
    assert_eq!(walked, all);

    // Something this server did not mint is Sync's 400, not a page from the start.
    // Not ours, undecodable, page size 0, a map key for a list, an unknown direction.
    for bad in ["next", "PT", "PT!!", "PTbnxhfDB8aTU", "PTbnxhfDMwfGthYmM", "PTeHxhfDMwfGk1"] {
        let answer = alice
            .get(list["links"]["items"].as_str().expect("links.items"), &[("PageToken", bad)])
            .await;
        answer.error(400, 54011, &format!("PageToken={bad}"));
    }
}

#[tokio::test]
async fn a_delete_with_a_null_body_leaves_the_conversation() {
    // @twilio/conversations 2.0.0 `leave()`: `CommandExecutor._makeRequest` sends its DELETEs
    // with a body of `null`, which twilsock 0.12.2 serializes as the payload `null`.
    let (server, api) = support::start().await;
    let general = support::conversation_sid(&api, "general").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let path = format!("/Client/v2/Services/{SERVICE_SID}/Conversations/{general}/Participants/alice");
    // Anything but an object or null is still refused.
    let answer = alice.request("DELETE", &path, &[], Some(&json!([1]))).await;
    assert_eq!(answer.status, 400, "{:#}", answer.body);
    let answer = alice.request("DELETE", &path, &[], Some(&Value::Null)).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    let participants = expect(200, api.get(&format!("/v1/Conversations/{general}/Participants")).await);
    let identities: Vec<Value> = participants["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| p["identity"].clone())
        .collect();
    assert!(!identities.contains(&json!("alice")), "alice left: {identities:?}");
}

#[tokio::test]
async fn a_removed_message_leaves_a_hole_in_the_list() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let objects = alice.conversation_objects(&history).await;
    let list = alice.descriptor("Lists", &objects.messages).await;

    delete_message(&api, "history", 7).await;

    #[rustfmt::skip]
    let cases = [
        case("From=5&Order=asc&PageSize=5", indices([5, 6, 8, 9, 10]), true, true),
        case("From=10&Order=desc&PageSize=5", indices([10, 9, 8, 6, 5]), true, true),
        case("From=7&Order=asc&PageSize=2", indices([8, 9]), true, true), // From the hole
        case("From=7&Order=desc&PageSize=2", indices([6, 5]), true, true),
        case("Index=7", vec![], false, false),
        case("Order=asc&PageSize=10", indices([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]), false, true),
    ];
    run_cases(&mut alice, &list, &cases).await;
    let after = alice.descriptor("Lists", &objects.messages).await;
    assert_eq!(after["last_event_id"], 121, "the removal is one event: {after:#}");
}

#[tokio::test]
async fn map_item_queries_order_keys_as_strings() {
    let (server, api) = support::start().await;
    let general = support::conversation_sid(&api, "general").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;

    // Roster: keyed by participant SID, plain string order.
    let objects = alice.conversation_objects(&general).await;
    let roster = alice.descriptor("Maps", &objects.roster).await;
    assert_eq!(
        roster["last_event_id"], 3,
        "one event per participant at materialisation: {roster:#}"
    );
    let mut sids = Vec::new();
    for who in ["alice", "bob", "carol"] {
        sids.push(participant_sid(&api, "general", who).await);
    }
    let mut keys = sids.clone();
    keys.sort();
    let k = |i: usize| Value::from(keys[i].as_str());
    let between = format!("{}!", keys[1]);
    #[rustfmt::skip]
    let cases = [
        case("Order=asc&PageSize=50", vec![k(0), k(1), k(2)], false, false),
        case("Order=desc&PageSize=50", vec![k(2), k(1), k(0)], false, false),
        case(&format!("From={}&Order=asc&PageSize=1", keys[1]), vec![k(1)], true, true),
        case(&format!("From={}&Order=desc&PageSize=5", keys[1]), vec![k(1), k(0)], true, false),
        case(&format!("From={}&Order=asc&PageSize=2", keys[0]), vec![k(0), k(1)], false, true),
        // A From between two keys (after keys[1], before keys[2]).
        case(&format!("From={between}&Order=asc&PageSize=5"), vec![k(2)], true, false),
        case(&format!("From={between}&Order=desc&PageSize=5"), vec![k(1), k(0)], true, false),
        case("From=MA&Order=asc&PageSize=5", vec![k(0), k(1), k(2)], false, false),
        case("From=MZ&Order=asc&PageSize=5", vec![], true, false),
        case(&format!("Key={}", keys[2]), vec![k(2)], false, false),
    ];
    run_cases(&mut alice, &roster, &cases).await;
    for (who, sid) in ["alice", "bob", "carol"].iter().zip(&sids) {
        let item = alice.item(&roster, "Key", sid).await;
        assert_eq!(item["data"]["identity"], *who, "{item:#}");
        assert_eq!(item["data"]["type"], "chat", "{item:#}");
        assert!(
            item["data"]["userInfo"].as_str().is_some_and(|u| u.ends_with(".userInfo")),
            "{item:#}"
        );
    }

    // My conversations: keyed by conversation SID; add three more conversations for alice.
    for name in ["sync-a", "sync-b", "sync-c"] {
        expect(
            201,
            api.post("/v1/Conversations", &[("UniqueName", name), ("FriendlyName", name)]).await,
        );
        add_participant(&api, name, "alice").await;
    }
    let config = alice.configuration().await;
    let mine_id = config["sync_objects"]["my_conversations"]
        .as_str()
        .expect("my_conversations")
        .to_owned();
    let mine = alice.descriptor("Maps", &mine_id).await;
    assert_eq!(mine["last_event_id"], 5, "{mine:#}");
    let mut convs = vec![general.clone(), support::conversation_sid(&api, "history").await];
    for name in ["sync-a", "sync-b", "sync-c"] {
        convs.push(support::conversation_sid(&api, name).await);
    }
    convs.sort();
    let c = |i: usize| Value::from(convs[i].as_str());
    #[rustfmt::skip]
    let cases = [
        case("Order=asc&PageSize=50", (0..5).map(c).collect(), false, false),
        case("Order=desc&PageSize=2", vec![c(4), c(3)], false, true),
        case(&format!("From={}&Order=asc&PageSize=2", convs[2]), vec![c(2), c(3)], true, true),
        case(&format!("From={}&Order=desc&PageSize=2", convs[2]), vec![c(2), c(1)], true, true),
        case(&format!("From={}&Order=desc&PageSize=5", convs[1]), vec![c(1), c(0)], true, false),
        case(&format!("From={}&Order=asc&PageSize=5", convs[3]), vec![c(3), c(4)], true, false),
        case(&format!("Key={}", convs[0]), vec![c(0)], false, false),
    ];
    run_cases(&mut alice, &mine, &cases).await;
    let item = alice.item(&mine, "Key", &general).await;
    assert_eq!(item["data"]["status"], "joined");
    assert_eq!(item["data"]["channel"], objects.channel.as_str());
    assert_eq!(item["data"]["messages"], objects.messages.as_str());
    assert_eq!(item["data"]["roster"], objects.roster.as_str());
}

#[tokio::test]
async fn user_info_map_includes_friendly_name_and_attributes() {
    let (server, _api) = support::start().await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let config = alice.configuration().await;
    let id = config["sync_objects"]["my_user_info"].as_str().expect("my_user_info").to_owned();
    let map = alice.descriptor_answer("Maps", &id, &[("Include", "items")]).await.ok("user info");
    assert_eq!(map["sid"], id.as_str());
    let items = map["items"]
        .as_array()
        .unwrap_or_else(|| panic!("Include=items gives items: {map:#}"));
    let by_key: BTreeMap<&str, &Value> = items.iter().map(|i| (i["key"].as_str().expect("item key"), i)).collect();
    assert_eq!(
        by_key.get("friendlyName").map(|i| &i["data"]),
        Some(&json!({"value": "Alice"})),
        "{map:#}"
    );
    let attributes = by_key.get("attributes").map(|i| &i["data"]["value"]).expect("attributes item");
    assert!(
        attributes.as_str().is_some_and(|s| serde_json::from_str::<Value>(s).is_ok()),
        "attributes are a JSON string: {map:#}"
    );
    assert_eq!(map["last_event_id"], items.len(), "{map:#}");
    for i in items {
        assert!(i["last_event_id"].as_u64().is_some_and(|e| e >= 1), "{i:#}");
        assert_eq!(i["revision"], i["last_event_id"].to_string(), "{i:#}");
    }
    // Without Include, no items; a single key reads the same item.
    let bare = alice.descriptor("Maps", &id).await;
    assert!(bare.get("items").is_none(), "{bare:#}");
    let fname = alice.item(&bare, "Key", "friendlyName").await;
    assert_eq!(&fname, by_key["friendlyName"]);
}

// ---------------------------------------------------------------------------------------------
// Event ids and live events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_change_takes_the_next_event_id_of_its_object() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&history).await;

    // Materialisation: a list's id is its item count, a map's too, a document's is 1.
    let list = alice.descriptor("Lists", &o.messages).await;
    assert_eq!(
        (list["last_event_id"].clone(), list["revision"].clone()),
        (json!(120), json!("120")),
        "{list:#}"
    );
    let roster = alice.descriptor("Maps", &o.roster).await;
    assert_eq!(roster["last_event_id"], 2, "{roster:#}");
    let doc = alice.descriptor("Documents", &o.channel).await;
    assert_eq!(doc["last_event_id"], 1, "{doc:#}");
    assert_eq!(doc["data"]["messages"], o.messages.as_str(), "{doc:#}");
    assert_eq!(doc["data"]["roster"], o.roster.as_str(), "{doc:#}");

    let (replay, _) = alice.establish(&o.messages, "list", 120).await;
    assert!(replay.is_empty(), "{replay:#?}");
    let (replay, _) = alice.establish(&o.roster, "map", 2).await;
    assert!(replay.is_empty(), "{replay:#?}");
    let (replay, _) = alice.establish(&o.channel, "document", 1).await;
    assert!(replay.is_empty(), "{replay:#?}");

    // A new message: the list's next id, and the document's (lastMessage changed).
    let m = post_message(&api, "history", "bob", "hello").await;
    let ev = alice.item_events(2).await;
    assert_eq!(
        briefs(&ev),
        [b("list_item_added", 121, 120), b("document_updated", 2, Value::Null)],
        "{ev:#?}"
    );
    assert_eq!(ev[0]["list_sid"], o.messages.as_str());
    assert_eq!(ev[0]["item_revision"], "121");
    assert_eq!(ev[0]["item_data"]["text"], "hello");
    assert_eq!(ev[0]["item_data"]["sid"], m["sid"]);
    assert_eq!(
        ev[0]["item_url"],
        format!("{}/120", list["links"]["items"].as_str().expect("links.items"))
    );
    assert_eq!(ev[1]["document_sid"], o.channel.as_str());
    assert_eq!(ev[1]["document_revision"], "2");
    assert_eq!(ev[1]["document_data"]["lastMessage"]["index"], 120, "{:#}", ev[1]);
    let item = alice.item(&list, "Index", "120").await;
    assert_eq!(
        (item["last_event_id"].clone(), item["revision"].clone()),
        (json!(121), json!("121"))
    );
    assert_eq!(alice.descriptor("Lists", &o.messages).await["last_event_id"], 121);

    // An edit: the list's next id becomes the item's id and revision; other items keep theirs.
    edit_message(&api, "history", 5, "five, edited").await;
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev), [b("list_item_updated", 122, 5)], "{ev:#?}");
    assert_eq!(ev[0]["item_revision"], "122");
    assert_eq!(ev[0]["item_data"]["text"], "five, edited");
    let item = alice.item(&list, "Index", "5").await;
    assert_eq!(
        (item["last_event_id"].clone(), item["revision"].clone()),
        (json!(122), json!("122"))
    );
    assert_eq!(alice.item(&list, "Index", "6").await["last_event_id"], 7);

    // A removal carries the removed data.
    let removed = expect(200, api.get("/v1/Conversations/history/Messages/6").await);
    delete_message(&api, "history", 6).await;
    let ev = alice.item_events(2).await;
    assert_eq!(
        briefs(&ev),
        [b("list_item_removed", 123, 6), b("document_updated", 3, Value::Null)],
        "{ev:#?}"
    );
    assert_eq!(ev[0]["item_data"]["sid"], removed["sid"]);
    assert_eq!(ev[0]["item_data"]["text"], "message 7");
    assert!(ev[0]["date_created"].as_str().is_some_and(is_iso_date), "{:#}", ev[0]);
    assert_eq!(alice.descriptor("Lists", &o.messages).await["last_event_id"], 123);

    // Roster: added, updated, removed, each the map's next id.
    let carol = add_participant(&api, "history", "carol").await;
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev), [b("map_item_added", 3, carol.as_str())], "{ev:#?}");
    assert_eq!(ev[0]["map_sid"], o.roster.as_str());
    assert_eq!(ev[0]["item_data"]["identity"], "carol");
    expect(
        200,
        api.post("/v1/Conversations/history/Participants/carol", &[("Attributes", r#"{"x":1}"#)])
            .await,
    );
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev), [b("map_item_updated", 4, carol.as_str())], "{ev:#?}");
    assert_eq!(ev[0]["item_revision"], "4");
    assert_eq!(ev[0]["item_data"]["attributes"], r#"{"x":1}"#);
    assert_eq!(alice.item(&roster, "Key", &carol).await["last_event_id"], 4);
    expect(204, api.delete("/v1/Conversations/history/Participants/carol").await);
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev), [b("map_item_removed", 5, carol.as_str())], "{ev:#?}");
    assert_eq!(ev[0]["item_data"]["identity"], "carol");
    assert_eq!(alice.descriptor("Maps", &o.roster).await["last_event_id"], 5);

    // The conversation document.
    expect(200, api.post("/v1/Conversations/history", &[("FriendlyName", "Renamed")]).await);
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev), [b("document_updated", 4, Value::Null)], "{ev:#?}");
    assert_eq!(ev[0]["document_data"]["friendlyName"], "Renamed");
    assert_eq!(alice.descriptor("Documents", &o.channel).await["last_event_id"], 4);
    alice.assert_quiet().await;
}

/// An item's data is only ever seen under a new revision: a client that holds revision `r` of
/// an item must not read different data under the same `r` (it would never learn of the change).
#[tokio::test]
async fn item_data_never_changes_under_the_same_revision() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let config = alice.configuration().await;
    let mine_id = config["sync_objects"]["my_conversations"]
        .as_str()
        .expect("my_conversations")
        .to_owned();
    let mine = alice.descriptor("Maps", &mine_id).await;
    let (replay, established) = alice.establish(&mine_id, "map", mine["last_event_id"].as_u64().expect("id")).await;
    assert!(replay.is_empty(), "{replay:#?}");
    let before = alice.item(&mine, "Key", &history).await;

    post_message(&api, "history", "bob", "news").await;
    let after = alice.item(&mine, "Key", &history).await;
    if after["data"] != before["data"] {
        assert_ne!(
            after["revision"], before["revision"],
            "my-conversations item {history} changed without a new revision:\nbefore {before:#}\nafter  {after:#}"
        );
        let now = alice.descriptor("Maps", &mine_id).await;
        assert!(
            now["last_event_id"].as_u64() > established["last_event_id"].as_u64(),
            "the map changed without an event: {now:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and replay
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn establishing_replays_the_changes_after_the_given_id() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let token = token_for(&server, "alice");
    let mut reader = Client::connect(&server, &token).await;
    let o = reader.conversation_objects(&history).await;
    let mine_id = reader.configuration().await["sync_objects"]["my_conversations"]
        .as_str()
        .expect("my_conversations")
        .to_owned();
    // Materialise: these are the ids a client would hold.
    assert_eq!(reader.descriptor("Lists", &o.messages).await["last_event_id"], 120);
    assert_eq!(reader.descriptor("Maps", &o.roster).await["last_event_id"], 2);
    assert_eq!(reader.descriptor("Documents", &o.channel).await["last_event_id"], 1);
    assert_eq!(reader.descriptor("Maps", &mine_id).await["last_event_id"], 2);
    let bob = participant_sid(&api, "history", "bob").await;

    // Changes over REST while nobody is subscribed.
    post_message(&api, "history", "alice", "r1").await; // idx 120: list 121, doc 2
    post_message(&api, "history", "alice", "r2").await; // idx 121: list 122, doc 3
    edit_message(&api, "history", 121, "r2 edited").await; // list 123
    edit_message(&api, "history", 3, "three, edited").await; // list 124
    delete_message(&api, "history", 4).await; // list 125, doc 4
    delete_message(&api, "history", 120).await; // list 126, doc 5 (created and removed after n)
    let carol = add_participant(&api, "history", "carol").await; // roster 3
    expect(204, api.delete(&format!("/v1/Conversations/history/Participants/{bob}")).await); // roster 4
    expect(200, api.post("/v1/Conversations/history", &[("FriendlyName", "Renamed")]).await); // doc 6, mine 3
    expect(201, api.post("/v1/Conversations", &[("UniqueName", "fresh")]).await);
    add_participant(&api, "fresh", "alice").await; // mine 4
    expect(204, api.delete("/v1/Conversations/general/Participants/alice").await); // mine 5
    let fresh = support::conversation_sid(&api, "fresh").await;
    let general = support::conversation_sid(&api, "general").await;

    // One batch establishing all four from the ids held before the changes.
    let mut alice = Client::connect(&server, &token).await;
    let (events, control) = alice
        .subscriptions(
            "establish",
            json!([
                {"object_sid": o.messages, "object_type": "list", "last_event_id": 120},
                {"object_sid": o.roster, "object_type": "map", "last_event_id": 2},
                {"object_sid": o.channel, "object_type": "document", "last_event_id": 1},
                {"object_sid": mine_id, "object_type": "map", "last_event_id": 2},
            ]),
        )
        .await;
    assert_eq!(control["event_type"], "subscription_established", "{control:#}");
    let mut by_object: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in &events {
        let sid = ["list_sid", "map_sid", "document_sid"]
            .iter()
            .find_map(|f| e.get(*f).and_then(Value::as_str))
            .unwrap_or_else(|| panic!("event without an object sid: {e:#}"));
        by_object.entry(sid.to_owned()).or_default().push(e.clone());
    }
    let of = |sid: &str| by_object.get(sid).cloned().unwrap_or_default();

    let messages = of(&o.messages);
    assert_eq!(
        briefs(&messages),
        [
            b("list_item_added", 123, 121),
            b("list_item_updated", 124, 3),
            b("list_item_removed", 125, 4),
            b("list_item_removed", 126, 120),
        ],
        "messages replay: {messages:#?}"
    );
    assert_eq!(messages[0]["item_data"]["text"], "r2 edited", "latest data under the latest id");
    assert_eq!(messages[0]["item_revision"], "123");
    assert_eq!(messages[1]["item_data"]["text"], "three, edited");
    assert_eq!(messages[2]["item_data"]["text"], "message 5", "removed data");
    assert_eq!(messages[3]["item_data"]["text"], "r1", "removed data");

    let roster = of(&o.roster);
    assert_eq!(
        briefs(&roster),
        [b("map_item_added", 3, carol.as_str()), b("map_item_removed", 4, bob.as_str())],
        "roster replay: {roster:#?}"
    );
    assert_eq!(roster[0]["item_data"]["identity"], "carol");
    assert_eq!(roster[1]["item_data"]["identity"], "bob");

    let doc = of(&o.channel);
    assert_eq!(briefs(&doc), [b("document_updated", 6, Value::Null)], "document replay: {doc:#?}");
    assert_eq!(doc[0]["document_data"]["friendlyName"], "Renamed");
    assert_eq!(doc[0]["document_data"]["lastMessage"]["index"], 121);

    let mine = of(&mine_id);
    assert_eq!(
        briefs(&mine),
        [
            b("map_item_updated", 3, history.as_str()),
            b("map_item_added", 4, fresh.as_str()),
            b("map_item_removed", 5, general.as_str()),
        ],
        "my conversations replay: {mine:#?}"
    );
    assert_eq!(mine[0]["item_data"]["friendlyName"], "Renamed");
    assert_eq!(mine[1]["item_data"]["status"], "joined");
    assert_eq!(mine[1]["item_data"]["uniqueName"], "fresh");
    assert_eq!(by_object.len(), 4, "only the subscribed objects: {by_object:#?}");

    // Established: each object at its current id, matching the descriptors.
    let entries = control["events"].as_array().expect("events");
    let established: BTreeMap<&str, &Value> = entries.iter().map(|e| (e["object_sid"].as_str().expect("object_sid"), e)).collect();
    for (sid, kind, path, id) in [
        (&o.messages, "list", "Lists", 126),
        (&o.roster, "map", "Maps", 4),
        (&o.channel, "document", "Documents", 6),
        (&mine_id, "map", "Maps", 5),
    ] {
        let e = established
            .get(sid.as_str())
            .unwrap_or_else(|| panic!("{sid} not established: {control:#}"));
        assert_eq!(e["object_type"], kind, "{e:#}");
        assert_eq!(e["replay_status"], "completed", "{e:#}");
        assert_eq!(e["last_event_id"], id, "{e:#}");
        assert_eq!(reader.descriptor(path, sid).await["last_event_id"], id, "{sid}");
    }
    alice.assert_quiet().await;

    // From an id in the middle: only what changed after it; created at exactly n is "updated".
    let mut mid = Client::connect(&server, &token).await;
    let (events, e) = mid.establish(&o.messages, "list", 122).await;
    assert_eq!(
        briefs(&events),
        [
            b("list_item_updated", 123, 121),
            b("list_item_updated", 124, 3),
            b("list_item_removed", 125, 4),
            b("list_item_removed", 126, 120),
        ]
    );
    assert_eq!(e["last_event_id"], 126);
    let (events, _) = mid.establish(&o.messages, "list", 124).await;
    assert_eq!(briefs(&events), [b("list_item_removed", 125, 4), b("list_item_removed", 126, 120)]);

    // From 0: every live item as added, plus the removals, in id order.
    let mut full = Client::connect(&server, &token).await;
    let (events, _) = full.establish(&o.messages, "list", 0).await;
    assert_strictly_increasing(&events, "replay from 0");
    let added = events.iter().filter(|e| e["event_type"] == "list_item_added").count();
    let removed = events.iter().filter(|e| e["event_type"] == "list_item_removed").count();
    assert_eq!((added, removed, events.len()), (120, 2, 122), "{:?}", briefs(&events));

    // From the current id: nothing to replay.
    let mut current = Client::connect(&server, &token).await;
    let (events, e) = current.establish(&o.messages, "list", 126).await;
    assert!(events.is_empty(), "{events:#?}");
    assert_eq!(e["last_event_id"], 126);

    // Live events continue the ids for every subscriber.
    post_message(&api, "history", "alice", "live").await;
    for c in [&mut alice, &mut mid, &mut full, &mut current] {
        let ev = c.item_events(1).await;
        assert_eq!(briefs(&ev), [b("list_item_added", 127, 122)], "{ev:#?}");
    }
    // Only `alice` subscribed to the document too.
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev), [b("document_updated", 7, Value::Null)], "{ev:#?}");
    for c in [&mut alice, &mut mid, &mut full, &mut current] {
        c.assert_quiet().await;
    }
}

#[tokio::test]
async fn live_events_arrive_in_order_until_canceled() {
    let (server, api) = support::start().await;
    let general = support::conversation_sid(&api, "general").await;
    let mut bob = Client::connect(&server, &token_for(&server, "bob")).await;
    let o = bob.conversation_objects(&general).await;
    let list = bob.descriptor("Lists", &o.messages).await;
    let start = list["last_event_id"].as_u64().expect("last_event_id");
    assert_eq!(start, 4);
    let (replay, e) = bob.establish(&o.messages, "list", start).await;
    assert!(replay.is_empty(), "{replay:#?}");
    assert_eq!(e["last_event_id"], start);

    for i in 0..3 {
        post_message(&api, "general", "alice", &format!("live {i}")).await;
    }
    edit_message(&api, "general", 5, "live 1, edited").await;
    delete_message(&api, "general", 4).await;
    let ev = bob.item_events(5).await;
    assert_eq!(
        briefs(&ev),
        [
            b("list_item_added", 5, 4),
            b("list_item_added", 6, 5),
            b("list_item_added", 7, 6),
            b("list_item_updated", 8, 5),
            b("list_item_removed", 9, 4),
        ],
        "{ev:#?}"
    );
    assert_eq!(ev[0]["item_data"]["text"], "live 0");
    assert_eq!(ev[3]["item_data"]["text"], "live 1, edited");
    assert_eq!(ev[4]["item_data"]["text"], "live 0", "removed data");
    bob.assert_quiet().await;

    let (events, control) = bob
        .subscriptions("cancel", json!([{"object_sid": o.messages, "object_type": "list"}]))
        .await;
    assert!(events.is_empty(), "{events:#?}");
    assert_eq!(control["event_type"], "subscription_canceled", "{control:#}");
    assert_eq!(control["events"][0]["object_sid"], o.messages.as_str(), "{control:#}");

    post_message(&api, "general", "alice", "after cancel").await;
    edit_message(&api, "general", 6, "after cancel, edited").await;
    bob.assert_quiet().await;
    // The object went on: a new establish from the last id seen replays what was missed.
    let (events, e) = bob.establish(&o.messages, "list", 9).await;
    assert_eq!(
        briefs(&events),
        [b("list_item_added", 10, 7), b("list_item_updated", 11, 6)],
        "{events:#?}"
    );
    assert_eq!(e["last_event_id"], 11);
}

#[tokio::test]
async fn subscriptions_fail_for_objects_the_caller_may_not_read() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&history).await;
    let alice_mine = alice.configuration().await["sync_objects"]["my_conversations"]
        .as_str()
        .expect("my_conversations")
        .to_owned();

    // carol is not in `history`.
    let mut carol = Client::connect(&server, &token_for(&server, "carol")).await;
    for (sid, kind, path) in [
        (&o.messages, "list", "Lists"),
        (&o.roster, "map", "Maps"),
        (&o.channel, "document", "Documents"),
        (&alice_mine, "map", "Maps"),
    ] {
        carol
            .descriptor_answer(path, sid, &[])
            .await
            .error(403, SYNC_FORBIDDEN, &format!("carol reads {sid}"));
        let (events, control) = carol
            .subscriptions("establish", json!([{"object_sid": sid, "object_type": kind, "last_event_id": 0}]))
            .await;
        assert!(events.is_empty(), "nothing replayed to a forbidden subscriber: {events:#?}");
        assert_eq!(control["event_type"], "subscription_failed", "{control:#}");
        let failed = &control["events"][0];
        assert_eq!(failed["object_sid"], sid.as_str(), "{control:#}");
        assert_eq!(failed["error"]["status"], 403, "{control:#}");
        assert_eq!(failed["error"]["code"], SYNC_FORBIDDEN, "{control:#}");
    }
    let list = alice.descriptor("Lists", &o.messages).await;
    carol
        .get(
            list["links"]["items"].as_str().expect("links.items"),
            &[("Order", "asc"), ("PageSize", "5")],
        )
        .await
        .error(403, SYNC_FORBIDDEN, "carol queries history messages");

    // Unknown objects: 404, whatever the reason.
    let unknown = "CH00000000000000000000000000000000.messages";
    for (sid, kind) in [
        (unknown, "list"),
        ("CH00000000000000000000000000000000.roster", "map"),
        ("nonsense", "map"),
        ("US00000000000000000000000000000000.userInfo", "map"),
        (o.messages.as_str(), "map"), // wrong type
    ] {
        let (events, control) = carol
            .subscriptions("establish", json!([{"object_sid": sid, "object_type": kind, "last_event_id": 0}]))
            .await;
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(control["event_type"], "subscription_failed", "{sid}: {control:#}");
        assert_eq!(control["events"][0]["object_sid"], sid, "{control:#}");
        assert_eq!(control["events"][0]["error"]["status"], 404, "{sid}: {control:#}");
        assert_eq!(control["events"][0]["error"]["code"], SYNC_NOT_FOUND, "{sid}: {control:#}");
    }
    carol
        .descriptor_answer("Lists", unknown, &[])
        .await
        .error(404, SYNC_NOT_FOUND, "unknown list");

    // Nothing of `history` reaches carol.
    post_message(&api, "history", "alice", "private").await;
    carol.assert_quiet().await;
}

// ---------------------------------------------------------------------------------------------
// Isolation and fan-out
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_account_cannot_reach_this_accounts_objects() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&history).await;
    let config = alice.configuration().await;
    let mine = config["sync_objects"]["my_conversations"]
        .as_str()
        .expect("my_conversations")
        .to_owned();
    let info = config["sync_objects"]["my_user_info"].as_str().expect("my_user_info").to_owned();
    let list = alice.descriptor("Lists", &o.messages).await;

    // Same identity, another tenant.
    let other = support::add_account(&server, 2);
    let other_token = Token::new(&other, "alice", server.domain().clock().now().unix_secs()).mint();
    let mut intruder = Client::connect(&server, &other_token).await;
    let their = intruder.configuration().await;
    assert_ne!(their["sync_objects"]["my_conversations"], mine.as_str(), "{their:#}");
    assert_ne!(their["sync_objects"]["my_user_info"], info.as_str(), "{their:#}");

    for (sid, kind, path) in [
        (&o.messages, "list", "Lists"),
        (&o.roster, "map", "Maps"),
        (&o.channel, "document", "Documents"),
        (&mine, "map", "Maps"),
        (&info, "map", "Maps"),
    ] {
        // Not even its existence shows: 404, as for any unknown object.
        intruder
            .descriptor_answer(path, sid, &[])
            .await
            .error(404, SYNC_NOT_FOUND, &format!("other account reads {sid}"));
        let (events, control) = intruder
            .subscriptions("establish", json!([{"object_sid": sid, "object_type": kind, "last_event_id": 0}]))
            .await;
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(control["event_type"], "subscription_failed", "{control:#}");
        assert_eq!(control["events"][0]["error"]["status"], 404, "{control:#}");
    }
    intruder
        .get(
            list["links"]["items"].as_str().expect("links.items"),
            &[("Order", "asc"), ("PageSize", "5")],
        )
        .await
        .error(404, SYNC_NOT_FOUND, "other account queries history messages");
    let answer = intruder
        .get(&format!("/Client/v2/Services/{SERVICE_SID}/Me/Conversations/{history}"), &[])
        .await;
    assert_eq!(answer.status, 404, "{answer:?}");
    // The intruder's own map is empty.
    let their_mine = their["sync_objects"]["my_conversations"]
        .as_str()
        .expect("my_conversations")
        .to_owned();
    let their_map = intruder.descriptor("Maps", &their_mine).await;
    let page = intruder.items(&their_map, &[("Order", "asc"), ("PageSize", "50")]).await;
    assert_eq!(page_keys(&page), Vec::<Value>::new(), "{page:#}");

    post_message(&api, "history", "alice", "tenant one only").await;
    intruder.assert_quiet().await;

    // A token naming the first account but signed with the second account's key is refused.
    let forged = Token::on(&server, "alice").key(&other.api_key, &other.api_secret).mint();
    let mut forger = Client::connect_raw(&server).await;
    let reply = forger.init(&forged).await;
    assert_eq!(reply.header["status"]["code"], 401, "{reply:?}");
}

#[tokio::test]
async fn every_subscriber_receives_each_message_once_in_order() {
    let (server, api) = support::start().await;
    let general = support::conversation_sid(&api, "general").await;
    let mut clients = vec![
        Client::connect(&server, &token_for(&server, "alice")).await,
        Client::connect(&server, &token_for(&server, "bob")).await,
        Client::connect(&server, &token_for(&server, "alice")).await,
    ];
    let o = clients[0].conversation_objects(&general).await;
    for c in &mut clients {
        let (replay, e) = c.establish(&o.messages, "list", 4).await;
        assert!(replay.is_empty(), "{replay:#?}");
        assert_eq!(e["last_event_id"], 4);
    }
    // The SDK re-pokes a subscription it did not see established in time: still one stream.
    let (replay, _) = clients[0].establish(&o.messages, "list", 4).await;
    assert!(replay.is_empty(), "{replay:#?}");
    let mut sids = Vec::new();
    for i in 0..5 {
        sids.push(post_message(&api, "general", "carol", &format!("fan-out {i}")).await["sid"].clone());
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let ev = c.item_events(5).await;
        let got: Vec<(String, u64, Value)> = briefs(&ev);
        let want: Vec<(String, u64, Value)> = (0..5).map(|i| b("list_item_added", 5 + i, 4 + i)).collect();
        assert_eq!(got, want, "client {n}");
        let got_sids: Vec<&Value> = ev.iter().map(|e| &e["item_data"]["sid"]).collect();
        assert_eq!(got_sids, sids.iter().collect::<Vec<_>>(), "client {n}");
        c.assert_quiet().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wire_shapes() {
    let (server, api) = support::start().await;
    let general = support::conversation_sid(&api, "general").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&general).await;

    let list = alice.descriptor("Lists", &o.messages).await;
    insta::assert_json_snapshot!("messages_list_descriptor", redact(&server, &list));
    let doc = alice.descriptor("Documents", &o.channel).await;
    insta::assert_json_snapshot!("conversation_document_descriptor", redact(&server, &doc));
    let page = alice.items(&list, &[("From", "1"), ("Order", "asc"), ("PageSize", "2")]).await;
    insta::assert_json_snapshot!("messages_page", redact(&server, &page));

    let (replay, _) = alice.establish(&o.messages, "list", 4).await;
    assert!(replay.is_empty(), "{replay:#?}");
    post_message(&api, "general", "bob", "snapshot").await;
    let note = alice.notification().await;
    let mut header = Value::Object(note.header.clone());
    assert!(header["payload_size"].as_u64().is_some_and(|n| n > 0), "{header:#}");
    header["payload_size"] = json!("[size]");
    insta::assert_json_snapshot!(
        "list_item_added_notification",
        json!({ "header": header, "payload": redact(&server, &note.payload) })
    );
    assert_eq!(note.event_type(), "list_item_added");
}

/// A client back after many changes gets a replay bigger than a session's outbox (1024 frames
/// by default). The session must survive it: either the whole replay and
/// `subscription_established` (`completed`), or an `interrupted` replay the SDK retries. Ending
/// the session instead makes the SDK reconnect and ask for the same replay again, forever.
#[tokio::test]
async fn a_replay_larger_than_the_outbox_keeps_the_session() {
    const CHANGES: u64 = 1100;
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&history).await;
    assert_eq!(alice.descriptor("Lists", &o.messages).await["last_event_id"], 120);
    // Many messages while the client is away (through the domain: REST would be slow here).
    let account = server.domain().account(ACCOUNT_SID).expect("the seed's account");
    for i in 0..CHANGES {
        let message = NewMessage {
            author: Some("bob".into()),
            body: Some(format!("while away {i}")),
            ..NewMessage::default()
        };
        let change = AddMessage {
            conversation: history.clone(),
            message,
        };
        account.perform(&Cause::api(false), None, change).await.expect("a message is added");
    }

    let correlation = 42_u64;
    let body = json!({
        "event_protocol_version": 4, "action": "establish", "correlation_id": correlation, "retried_requests": 0,
        "ttl_in_s": -1, "requests": [{"object_sid": o.messages, "object_type": "list", "last_event_id": 120}],
    });
    let id = alice.send_request("POST", "/v4/Subscriptions", &[], Some(&body)).await;
    let mut events = Vec::new();
    let mut replied = false;
    let control = loop {
        let Some(p) = alice.raw.try_recv().await else {
            panic!(
                "the session ended during the replay after {} events (reply received: {replied}): \
                 a replay of {CHANGES} events overflowed the session's outbox",
                events.len()
            );
        };
        match p.method() {
            Some("reply") if p.id() == Some(id.as_str()) => replied = true,
            Some("notification") => {
                let payload: Value = p.payload_json().expect("JSON payload");
                if payload["event_type"] == "subscription_established" {
                    assert_eq!(payload["correlation_id"], correlation, "{payload:#}");
                    break payload;
                }
                events.extend(flatten_all(&payload));
            }
            _ => panic!("unexpected packet {p:?}"),
        }
    };
    let entry = &control["events"][0];
    assert_eq!(entry["object_sid"], o.messages.as_str(), "{control:#}");
    assert_strictly_increasing(&events, "big replay");
    match entry["replay_status"].as_str() {
        Some("completed") => {
            let want: Vec<(String, u64, Value)> = (0..CHANGES).map(|i| b("list_item_added", 121 + i, 120 + i)).collect();
            assert_eq!(briefs(&events), want, "a completed replay has every event");
            assert_eq!(entry["last_event_id"], 120 + CHANGES, "{control:#}");
        }
        Some("interrupted") => {}
        other => panic!("replay_status {other:?}: {control:#}"),
    }
    if !replied {
        let p = alice.raw.recv().await;
        assert_eq!(p.id(), Some(id.as_str()), "{p:?}");
    }
    post_message(&api, "history", "alice", "still here").await;
    let ev = alice.item_events(1).await;
    assert_eq!(briefs(&ev)[0].0, "list_item_added", "{ev:#?}");
}

#[tokio::test]
async fn a_last_event_id_past_every_id_replays_nothing_and_live_events_still_flow() {
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&history).await;
    alice.descriptor("Lists", &o.messages).await;
    // The largest id a client can send: nothing is newer (it overflowed `after + 1` before).
    let (events, control) = alice
        .subscriptions(
            "establish",
            json!([{"object_sid": o.messages, "object_type": "list", "last_event_id": u64::MAX}]),
        )
        .await;
    assert_eq!(control["event_type"], "subscription_established", "{control:#}");
    assert!(events.is_empty(), "replayed: {events:#?}");
    // The session is not wedged behind the subscription's reply gate.
    post_message(&api, "history", "alice", "after the subscription").await;
    let ev = alice.item_events(1).await;
    assert_eq!(ev[0]["event_type"], "list_item_added", "{ev:#?}");
    assert_eq!(ev[0]["item_data"]["text"], "after the subscription", "{ev:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_page_reads_without_reading_is_closed_and_others_are_served() {
    // The default bounds: this is the reported attack (pipelined item pages of maximal messages),
    // made smaller: 100 messages of 32 KB, so a page is about 3.4 MB.
    let (server, api) = support::start().await;
    let history = support::conversation_sid(&api, "history").await;
    let body = "x".repeat(32 * 1024);
    for _ in 0..100 {
        post_message(&api, "history", "alice", &body).await;
    }
    let mut journal = server.control().journal().follow();
    let mut alice = Client::connect(&server, &token_for(&server, "alice")).await;
    let o = alice.conversation_objects(&history).await;
    let url = format!("/v3/Lists/{}/Items", enc(&o.messages));
    const REQUESTS: usize = 40;
    for _ in 0..REQUESTS {
        alice
            .send_request("GET", &url, &[("PageSize", "100"), ("Order", "desc")], None)
            .await;
    }
    // Nothing is read until the server gave up on the session: it must do so on its own.
    let ended = timeout(Duration::from_secs(30), async {
        loop {
            match journal.recv().await {
                Ok(e) if e.summary.starts_with("session ended") && e.identity.as_deref() == Some("alice") => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("journal closed: {e}"),
            }
        }
    })
    .await
    .expect("the session is closed while its client reads nothing");
    assert_eq!(ended.summary, "session ended: overflow", "{ended:?}");
    let mut delivered = 0;
    while alice.raw.try_recv().await.is_some() {
        delivered += 1;
    }
    assert!(delivered < REQUESTS, "all {delivered} pages were delivered");

    // Another session of the same tenant is served as before.
    let mut bob = Client::connect(&server, &token_for(&server, "bob")).await;
    let page = bob.get(&url, &[("PageSize", "2")]).await.ok("a page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page:#}");
}
