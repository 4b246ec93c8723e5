//! Property tests of delivery and paging against an in-process server, through the lean client
//! (as SDK users would see them):
//!
//! - **Exactly once, in order.** Random interleavings of sends from several clients, leaves and
//!   re-joins, abrupt disconnects and reconnects: every client ends up with every message of the
//!   conversation exactly once, each connection in index order — live pushes while subscribed,
//!   the replay from its last event id after a reconnect or re-join (as the SDK subscribes) —
//!   and the Sync list it can page equals the domain's history (REST).
//! - **Paging while inserting.** Walking the history page by page (REST `next_page_url`, Sync
//!   `From` = last index + 1) while messages are inserted between page reads never skips or
//!   repeats a message.
//!
//! Every wait is bounded ([`WAIT`]); nothing sleeps.
use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use rehearsal_client::{Client, Config, Notifications, Order, sync_events};
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::actors::Action;
use rehearsal_test_support::token_for;
use serde_json::{Value, json};

const ACCOUNT: &str = "AC72656865617273616c00000000000001";
const AUTH_TOKEN: &str = "rehearsal-auth-token";
const WAIT: Duration = Duration::from_secs(5);
/// Clients (identities) in a delivery case.
const CLIENTS: usize = 3;

async fn act(server: &MockServer, who: Option<&str>, action: Value) -> Value {
    let a: Action = serde_json::from_value(action).expect("a valid action");
    server.control().act(ACCOUNT, who, a).await.expect("the action succeeds")
}

/// One page of a REST list, as the account.
async fn get_page(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .expect("GET a page")
        .json()
        .await
        .expect("a JSON page")
}

/// The domain's history of a conversation over REST: `(index, body)` in index order.
async fn rest_history(server: &MockServer, conversation: &str) -> Vec<(u64, String)> {
    let http = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("client");
    let mut out = Vec::new();
    let mut url = Some(format!("{}/v1/Conversations/{conversation}/Messages?PageSize=100", server.url()));
    while let Some(u) = url.take() {
        let page = get_page(&http, &u).await;
        for m in page["messages"].as_array().expect("messages") {
            out.push((
                m["index"].as_u64().expect("index"),
                m["body"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        url = page["meta"]["next_page_url"].as_str().map(str::to_owned);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Exactly once, in order
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Leave(usize),
    Join(usize),
    Disconnect(usize),
    Reconnect(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CLIENTS).prop_map(Op::Send),
        1 => (0..CLIENTS).prop_map(Op::Leave),
        1 => (0..CLIENTS).prop_map(Op::Join),
        1 => (0..CLIENTS).prop_map(Op::Disconnect),
        1 => (0..CLIENTS).prop_map(Op::Reconnect),
    ]
}

/// One SDK user: its connection (if connected), whether it is a participant and subscribed, and
/// what it has received of the messages list.
struct User {
    identity: String,
    conn: Option<(Client, Notifications)>,
    participant: bool,
    subscribed: bool,
    /// Highest event id of the messages list seen: where a new subscription starts.
    last_event_id: u64,
    /// Deliveries per message index.
    seen: BTreeMap<u64, u32>,
    /// Index order violations within one connection.
    out_of_order: Vec<(u64, u64)>,
    last_index_this_connection: Option<u64>,
}

impl User {
    /// Takes in every notification that already arrived (never waits).
    fn absorb(&mut self, list_sid: &str) {
        let Some((_, notes)) = &mut self.conn else { return };
        let mut got = Vec::new();
        while let Some(n) = notes.try_next() {
            if n.message_type() == "twilio.sync.event" {
                got.extend(sync_events(&n.payload).expect("Sync event payload"));
            }
        }
        for e in got {
            self.record(list_sid, &e);
        }
    }

    /// Counts one Sync event if it is a message added to the list.
    fn record(&mut self, list_sid: &str, e: &rehearsal_client::SyncEvent) {
        if e.object_sid != list_sid || e.event_type != "list_item_added" {
            return;
        }
        let index = e.item_index.expect("list events carry item_index");
        if let Some(prev) = self.last_index_this_connection
            && index <= prev
        {
            self.out_of_order.push((prev, index));
        }
        self.last_index_this_connection = Some(index);
        self.last_event_id = self.last_event_id.max(e.id);
        *self.seen.entry(index).or_default() += 1;
    }

    /// Waits (bounded) until this user has seen `total` distinct messages.
    async fn await_all(&mut self, list_sid: &str, total: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.absorb(list_sid);
            if self.seen.len() >= total {
                return;
            }
            let Some((_, notes)) = &mut self.conn else {
                panic!("{} is not connected", self.identity)
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match notes.next(left).await {
                Ok(n) => {
                    if n.message_type() == "twilio.sync.event" {
                        for e in sync_events(&n.payload).expect("Sync event payload") {
                            self.record(list_sid, &e);
                        }
                    }
                }
                Err(e) => panic!(
                    "{}: {} of {total} messages after {WAIT:?} ({e}); seen {:?}",
                    self.identity,
                    self.seen.len(),
                    self.seen.keys().collect::<Vec<_>>()
                ),
            }
        }
    }
}

async fn connect(server: &MockServer, identity: &str) -> (Client, Notifications) {
    let mut config = Config::new(server.twilsock_url());
    config.timeout = WAIT;
    Client::connect(&config, &token_for(server, identity)).await.expect("connect")
}

/// Subscribes `u` to the messages list from its last event id (what it missed is replayed).
async fn subscribe(u: &mut User, list_sid: &str) {
    let (client, _) = u.conn.as_ref().expect("connected");
    client.subscribe(list_sid, "list", u.last_event_id).await.expect("subscribe");
    u.subscribed = true;
}

async fn delivery_case(ops: Vec<Op>) {
    let server = MockServer::start().await;
    let ids: Vec<String> = (0..CLIENTS).map(|i| format!("prop-{i}")).collect();
    let conv = act(
        &server,
        None,
        json!({"action": "create_conversation", "unique_name": "props", "participants": ids}),
    )
    .await;
    let sid = conv["sid"].as_str().expect("conversation sid").to_owned();
    let mut users = Vec::new();
    let mut list_sid = String::new();
    for id in &ids {
        let conn = connect(&server, id).await;
        if list_sid.is_empty() {
            list_sid = conn.0.conversation(&sid).await.expect("objects").messages;
        }
        let mut u = User {
            identity: id.clone(),
            conn: Some(conn),
            participant: true,
            subscribed: false,
            last_event_id: 0,
            seen: BTreeMap::new(),
            out_of_order: Vec::new(),
            last_index_this_connection: None,
        };
        let d = u
            .conn
            .as_ref()
            .expect("connected")
            .0
            .descriptor("list", &list_sid)
            .await
            .expect("list");
        u.last_event_id = d.last_event_id;
        subscribe(&mut u, &list_sid).await;
        users.push(u);
    }
    let mut sent = 0usize;
    for op in ops {
        for u in &mut users {
            u.absorb(&list_sid);
        }
        match op {
            Op::Send(i) => {
                let u = &users[i];
                if let (Some((c, _)), true) = (&u.conn, u.participant) {
                    c.send_message(&sid, &format!("m{sent} from {}", u.identity)).await.expect("send");
                    sent += 1;
                }
            }
            Op::Leave(i) => {
                let u = &mut users[i];
                if let (Some((c, _)), true) = (&u.conn, u.participant) {
                    // As the SDK does when it drops a conversation: cancel, then leave.
                    c.subscriptions("cancel", json!([{"object_sid": list_sid, "object_type": "list"}]))
                        .await
                        .expect("cancel");
                    c.leave(&sid).await.expect("leave");
                    u.absorb(&list_sid);
                    u.participant = false;
                    u.subscribed = false;
                }
            }
            Op::Join(i) => {
                let u = &mut users[i];
                if let (Some((c, _)), false) = (&u.conn, u.participant) {
                    c.join(&sid).await.expect("join");
                    u.participant = true;
                    subscribe(u, &list_sid).await;
                }
            }
            Op::Disconnect(i) => {
                let u = &mut users[i];
                if let Some((c, _)) = &u.conn {
                    c.disconnect();
                }
                u.absorb(&list_sid);
                u.conn = None;
                u.subscribed = false;
            }
            Op::Reconnect(i) => {
                let u = &mut users[i];
                if u.conn.is_none() {
                    u.conn = Some(connect(&server, &u.identity).await);
                    u.last_index_this_connection = None;
                    if u.participant {
                        subscribe(u, &list_sid).await;
                    }
                }
            }
        }
    }
    // Everyone back: connected, participant, subscribed from where it stopped.
    let history = rest_history(&server, &sid).await;
    assert_eq!(history.len(), sent, "the domain holds every message sent");
    for u in &mut users {
        if u.conn.is_none() {
            u.conn = Some(connect(&server, &u.identity).await);
            u.last_index_this_connection = None;
        }
        if !u.participant {
            u.conn.as_ref().expect("connected").0.join(&sid).await.expect("join");
            u.participant = true;
        }
        if !u.subscribed {
            subscribe(u, &list_sid).await;
        }
        u.await_all(&list_sid, history.len()).await;
        u.absorb(&list_sid);
        let dups: Vec<(&u64, &u32)> = u.seen.iter().filter(|(_, n)| **n != 1).collect();
        assert!(dups.is_empty(), "{}: delivered more than once: {dups:?}", u.identity);
        assert_eq!(
            u.seen.keys().copied().collect::<Vec<_>>(),
            history.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            "{}: every message of the history",
            u.identity
        );
        assert!(
            u.out_of_order.is_empty(),
            "{}: out of index order: {:?}",
            u.identity,
            u.out_of_order
        );
        // The Sync list it can read equals the domain's history.
        let (client, _) = u.conn.as_ref().expect("connected");
        let items_url = client.descriptor("list", &list_sid).await.expect("list").items_url;
        let mut synced = Vec::new();
        let mut from = None;
        loop {
            let page = client.list_page(&items_url, from, 10, Order::Asc).await.expect("page");
            for item in &page.items {
                synced.push((
                    item["index"].as_u64().expect("index"),
                    item["data"]["text"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            match (page.has_next, synced.last()) {
                (true, Some((last, _))) => from = Some(last + 1),
                _ => break,
            }
        }
        assert_eq!(synced, history, "{}: Sync list = domain history", u.identity);
    }
    for u in users {
        if let Some((c, _)) = u.conn {
            c.close().await;
        }
    }
    server.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_participant_gets_every_message_once_in_order(ops in prop::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(delivery_case(ops));
    }
}

// ---------------------------------------------------------------------------------------------
// Paging while inserting
// ---------------------------------------------------------------------------------------------

async fn paging_case(initial: u64, page_size: u32, inserts: Vec<u8>) {
    let server = MockServer::start().await;
    let conv = act(
        &server,
        None,
        json!({"action": "create_conversation", "unique_name": "paging", "participants": ["reader"]}),
    )
    .await;
    let sid = conv["sid"].as_str().expect("sid").to_owned();
    if initial > 0 {
        act(
            &server,
            None,
            json!({"action": "generate_messages", "conversation": sid, "count": initial}),
        )
        .await;
    }
    let insert = async |k: u8| {
        if k > 0 {
            act(
                &server,
                None,
                json!({"action": "generate_messages", "conversation": sid, "count": k}),
            )
            .await;
        }
    };
    let mut schedule = inserts.into_iter();

    // REST: follow next_page_url (asc) with inserts between page reads; the walk must end with
    // everything there is.
    let http = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("client");
    let mut rest_seen = Vec::new();
    let mut url = Some(format!("{}/v1/Conversations/{sid}/Messages?PageSize={page_size}", server.url()));
    while let Some(u) = url.take() {
        let page = get_page(&http, &u).await;
        rest_seen.extend(
            page["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m["index"].as_u64().expect("index")),
        );
        url = page["meta"]["next_page_url"].as_str().map(str::to_owned);
        // Between this page and the next: after the last page, the walk is over.
        if url.is_some() {
            insert(schedule.next().unwrap_or(0)).await;
        }
    }
    let total = rest_history(&server, &sid).await.len() as u64;
    assert_eq!(rest_seen, (0..total).collect::<Vec<_>>(), "REST walk: each message once, in order");

    // Sync: From = last + 1 (inclusive From), as the SDK pages forward.
    let mut config = Config::new(server.twilsock_url());
    config.timeout = WAIT;
    let (client, _notes) = Client::connect(&config, &token_for(&server, "reader")).await.expect("connect");
    let objs = client.conversation(&sid).await.expect("objects");
    let items_url = client.descriptor("list", &objs.messages).await.expect("list").items_url;
    let mut sync_seen: Vec<u64> = Vec::new();
    let mut from = None;
    loop {
        let page = client.list_page(&items_url, from, page_size, Order::Asc).await.expect("page");
        sync_seen.extend(page.indexes());
        insert(schedule.next().unwrap_or(0)).await;
        match (page.has_next, sync_seen.last()) {
            (true, Some(last)) => from = Some(last + 1),
            _ => break,
        }
    }
    // Backwards from the newest, as getMessages() pages back: inserts land above the walk.
    let newest = sync_seen.last().copied();
    let mut back: Vec<u64> = Vec::new();
    let mut from = newest;
    while let Some(f) = from {
        let page = client.list_page(&items_url, Some(f), page_size, Order::Desc).await.expect("page");
        back.extend(page.indexes());
        insert(schedule.next().unwrap_or(0)).await;
        from = match back.last() {
            Some(0) | None => None,
            Some(l) if page.has_next => Some(l - 1),
            Some(_) => None,
        };
    }
    client.close().await;
    let total_after = rest_history(&server, &sid).await.len() as u64;
    let n = sync_seen.len() as u64;
    assert_eq!(sync_seen, (0..n).collect::<Vec<_>>(), "Sync walk forward: each once, in order");
    assert!(
        n >= total && n <= total_after,
        "the forward walk reached the end it saw ({n} of {total}..{total_after})"
    );
    assert_eq!(back, (0..n).rev().collect::<Vec<_>>(), "Sync walk backward: each once, in order");
    server.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn paging_while_inserting_never_skips_or_repeats(
        initial in 0u64..120,
        page_size in 1u32..=30,
        inserts in prop::collection::vec(0u8..8, 0..40),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(paging_case(initial, page_size, inserts));
    }
}
