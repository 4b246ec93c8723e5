//! Hostile input against the real binary, for the memory and resource bounds: session outboxes
//! (a connection pipelining large Sync page reads without reading, a subscriber that never
//! reads), twilsock messages over the size limit, `last_event_id` = 2^64−1, journal entries
//! with 65 KB paths, the per-tenant media quota. Each case runs `rehearsal serve` with small
//! limits (its flags) and asserts the answer, that the server's RSS stays bounded, and that the
//! server still serves another tenant afterwards. (Idle and header-read timeouts and the
//! connection cap are in `hostile_control.rs`.)
mod support;

use support::{CONTROL_TOKEN, Served, raw_get, sid};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rehearsal_test_support::twilsock::{Client, Ending, frame_head};
use serde_json::{Value, json};

/// Longest any single answer or event may take here; far beyond what a healthy server needs.
const ANSWER: Duration = Duration::from_secs(20);
const MIB: u64 = 1024 * 1024;

impl Served {
    /// Acts on a tenant as the REST API (`as: null`); the answer must be 200.
    async fn act(&self, tenant: &Value, action: Value) -> Value {
        let path = format!("/tenants/{}/actors", sid(tenant));
        let mut body = json!({"as": null});
        body.as_object_mut().unwrap().extend(action.as_object().unwrap().clone());
        let (status, answer) = self.post(&path, body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// An access token for `identity` of `tenant`, from the development token endpoint.
    async fn token(&self, tenant: &Value, identity: &str) -> String {
        let res = http()
            .get(format!("{}/token", self.url))
            .query(&[
                ("account", sid(tenant)),
                ("key", tenant["token_key"].as_str().unwrap()),
                ("identity", identity),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["token"].as_str().expect("a token").to_owned()
    }

    async fn client(&self, token: &str) -> (rehearsal_client::Client, rehearsal_client::Notifications) {
        let config = rehearsal_client::Config::new(format!("ws://{}/v3/wsconnect", self.addr));
        rehearsal_client::Client::connect(&config, token).await.expect("connected")
    }

    /// The bystander check: a fresh tenant gets REST answers, and a twilsock session of its own
    /// that answers an upstream request.
    async fn serves_another_tenant(&self) {
        let other = self.tenant().await;
        let res = http()
            .get(format!("{}/v1/Conversations", self.url))
            .basic_auth(sid(&other), other["auth_token"].as_str())
            .send()
            .await
            .expect("the server still answers REST");
        assert_eq!(res.status(), 200);
        let token = self.token(&other, "bystander").await;
        let (client, _notifications) = self.client(&token).await;
        client.configuration().await.expect("an upstream request is answered");
        client.close().await;
    }

    /// Sessions the control plane lists for a tenant.
    async fn sessions(&self, tenant: &Value) -> Vec<Value> {
        let res = http()
            .get(self.control(&format!("/tenants/{}/connections", sid(tenant))))
            .bearer_auth(CONTROL_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["connections"].as_array().cloned().expect("a connections list")
    }

    /// Waits until the tenant has no live session.
    async fn no_session_left(&self, tenant: &Value) {
        let deadline = Instant::now() + ANSWER;
        loop {
            let left = self.sessions(tenant).await;
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "sessions left: {left:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(ANSWER).build().unwrap()
}

/// The raw twilsock client of the test-support crate on `s`: it pipelines without reading
/// (nothing is read unless the test reads), and writes frame heads of any declared size.
async fn raw_socket(s: &Served) -> Client {
    Client::connect(&format!("ws://{}/v3/wsconnect", s.addr)).await.with_wait(ANSWER)
}

/// Completes `init` with `token`; the reply must be a 200.
async fn init(raw: &mut Client, token: &str) {
    let reply = raw.init("TMinit", token).await;
    assert_eq!(reply.header["status"]["code"], 200, "{:?}", reply.header);
}

/// The mask of the frame written by hand.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A message body of `n` quote characters: each is escaped in JSON, so its items are twice as
/// large on the wire.
fn heavy_body(n: usize) -> String {
    "\"".repeat(n)
}

/// A tenant with a conversation `big` that `reader` is in, holding `count` messages of
/// `body_chars` quote characters each; returns the tenant and the items URL of its message list.
async fn big_conversation(s: &Served, count: u64, body_chars: usize) -> (Value, String, String) {
    let tenant = s.tenant().await;
    s.act(
        &tenant,
        json!({"action": "create_conversation", "unique_name": "big", "participants": ["reader"]}),
    )
    .await;
    if count > 0 {
        s.act(
            &tenant,
            json!({"action": "generate_messages", "conversation": "big", "count": count,
                   "body_prefix": heavy_body(body_chars)}),
        )
        .await;
    }
    let token = s.token(&tenant, "reader").await;
    let (client, _notifications) = s.client(&token).await;
    let objects = client.conversation("big").await.expect("the conversation's Sync objects");
    let list = client.descriptor("list", &objects.messages).await.expect("the message list");
    client.close().await;
    (tenant, list.sid, list.items_url)
}

// ---------------------------------------------------------------------------------------------
// Session outboxes
// ---------------------------------------------------------------------------------------------

/// One connection asks for 200 pages of 100 heavy items (several MB each) and reads nothing:
/// without a byte bound on the outbox and on the replies in flight that is ~1 GB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_page_reads_that_are_never_read_close_the_session_with_bounded_memory() {
    let s = Served::start(&["--outbox-max-mib", "1"]);
    let (tenant, _, items_url) = big_conversation(&s, 100, 16_000).await;
    let token = s.token(&tenant, "reader").await;
    let before = s.rss();

    let mut raw = raw_socket(&s).await;
    init(&mut raw, &token).await;
    // One page, read, to know its size.
    raw.send_request("TMprobe", "GET", &items_url, &[("PageSize", "100"), ("Order", "asc")], None)
        .await;
    let page = raw.try_recv().await.expect("the page");
    assert_eq!(page.header["http_status"]["code"], 200, "{:?}", page.header);
    let page_bytes = page.payload.len() as u64;
    assert!(page_bytes > 3 * MIB, "a page of {page_bytes} bytes");
    let requests = 200u64;
    for n in 0..requests {
        raw.send_request(
            &format!("TMp{n}"),
            "GET",
            &items_url,
            &[("PageSize", "100"), ("Order", "asc")],
            None,
        )
        .await;
    }
    let line = s.wait_log_line(&["closing session: outbound queue overflow", "bound=\"bytes\""], ANSWER);
    let after = s.rss();
    let grown = after.saturating_sub(before);
    // The budget (1 MiB), the one reply allowed over it, the kernel's socket buffers and the
    // replies being built at once on the server's worker threads; nowhere near 200 pages.
    assert!(
        grown < 128 * MIB,
        "RSS grew by {} MiB (pages of {} MiB, {requests} asked for): {line}",
        grown / MIB,
        page_bytes / MIB
    );
    // The client is told, after whatever the socket already had: close 308, WebSocket 1008.
    let (closes, ending) = raw.closes_until_end().await;
    assert_eq!(closes.len(), 1, "{closes:?} {ending:?}\n{}", s.log());
    assert_eq!(closes[0].header["status"]["code"], 308, "{:?}", closes[0].header);
    assert!(
        closes[0].header["status"]["description"]
            .as_str()
            .unwrap_or("")
            .contains("overflow"),
        "{:?}",
        closes[0].header
    );
    assert_eq!(ending, Ending::CloseFrame(1008));
    s.no_session_left(&tenant).await;
    s.serves_another_tenant().await;
}

/// A subscriber whose socket never reads, while heavy messages arrive: its session is closed
/// with a logged reason, and the server's memory does not follow the pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_closed_with_a_logged_reason() {
    let s = Served::start(&["--outbox-max-mib", "1"]);
    let (tenant, list_sid, _) = big_conversation(&s, 0, 0).await;
    let token = s.token(&tenant, "reader").await;

    let mut raw = raw_socket(&s).await;
    init(&mut raw, &token).await;
    raw.send_request(
        "TMsub",
        "POST",
        "/v4/Subscriptions",
        &[],
        Some(&json!({"event_protocol_version": 4, "action": "establish",
                     "requests": [{"object_sid": list_sid, "object_type": "list", "last_event_id": 0}]})),
    )
    .await;
    let reply = raw.try_recv().await.expect("the subscription reply");
    assert_eq!(reply.id(), Some("TMsub"));
    assert_eq!(reply.header["http_status"]["code"], 202, "{:?}", reply.header);
    let before = s.rss();
    // From here on the socket reads nothing. 800 messages of ~32 KB on the wire each: 25 MB,
    // several times the kernel's socket buffers plus the 1 MiB budget.
    for _ in 0..8 {
        s.act(
            &tenant,
            json!({"action": "generate_messages", "conversation": "big", "count": 100, "body_prefix": heavy_body(16_000)}),
        )
        .await;
    }
    s.wait_log_line(&["closing session: outbound queue overflow", "bound=\"bytes\""], ANSWER);
    s.no_session_left(&tenant).await;
    let grown = s.rss().saturating_sub(before);
    // The messages themselves are stored (~13 MB); the pushes must not be kept on top.
    assert!(grown < 48 * MIB, "RSS grew by {} MiB", grown / MIB);
    let (closes, ending) = raw.closes_until_end().await;
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0].header["status"]["code"], 308, "{:?}", closes[0].header);
    assert_eq!(ending, Ending::CloseFrame(1008));
    s.serves_another_tenant().await;
}

// ---------------------------------------------------------------------------------------------
// Message size
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_limit_gets_websocket_close_1009() {
    let s = Served::start(&[]);
    let tenant = s.tenant().await;
    let token = s.token(&tenant, "big-sender").await;
    let mut raw = raw_socket(&s).await;
    init(&mut raw, &token).await;
    // A frame declaring 16 MiB + 128 KiB (the limit is 16 MiB of payload plus 64 KiB of header):
    // the server refuses it from its head, without buffering it. Some of it follows anyway.
    let declared = 16 * MIB + 128 * 1024;
    let mut head = frame_head(2, declared, MASK);
    head.extend(std::iter::repeat_n(b'x' ^ MASK[0], 4096));
    let _ = raw.write_raw(&head).await;
    let (closes, ending) = raw.closes_until_end().await;
    assert!(closes.is_empty(), "{closes:?}");
    assert_eq!(ending, Ending::CloseFrame(1009));
    s.wait_log_line(&["message over the size limit: closing with 1009"], ANSWER);
    s.no_session_left(&tenant).await;
    s.serves_another_tenant().await;
}

// ---------------------------------------------------------------------------------------------
// Sync replay from the end of the id space
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_from_last_event_id_u64_max_is_answered_and_pushes_still_arrive() {
    let s = Served::start(&[]);
    let (tenant, list_sid, _) = big_conversation(&s, 3, 10).await;
    let token = s.token(&tenant, "reader").await;
    let (client, mut notifications) = s.client(&token).await;
    let answer = client.subscribe(&list_sid, "list", u64::MAX).await.expect("answered");
    assert!(answer.is_object(), "{answer}");
    // A live event after it reaches the subscriber (no reply gate left closed).
    s.act(&tenant, json!({"action": "post", "conversation": "big", "body": "after the max"}))
        .await;
    let deadline = Instant::now() + ANSWER;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = notifications.next(left).await.expect("a notification in time");
        let payload = String::from_utf8_lossy(&n.payload).into_owned();
        if payload.contains("after the max") {
            break;
        }
        seen.push(payload);
        assert!(seen.len() < 50, "the live event never came: {seen:?}");
    }
    assert!(!s.log().contains("panicked"), "{}", s.log());
    client.close().await;
    s.serves_another_tenant().await;
}

// ---------------------------------------------------------------------------------------------
// The journal
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_entries_of_65_kb_paths_are_cut_and_the_ring_stays_within_its_bytes() {
    let s = Served::start(&["--journal-max-mib", "1"]);
    let path = format!("/v1/Conversations/{}", "x".repeat(65_000));
    let before = s.rss();
    let requests = 1_000;
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(ANSWER)).unwrap();
    for _ in 0..requests {
        let status = raw_get(&mut conn, &path, ANSWER);
        assert!(status == 401 || status == 404, "{status}");
    }
    let grown = s.rss().saturating_sub(before);
    // 65 MB of paths went through; the journal keeps at most 1 MiB of them.
    assert!(grown < 24 * MIB, "RSS grew by {} MiB", grown / MIB);
    let res = http()
        .get(s.control("/journal"))
        .query(&[("kind", "rest")])
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let journal: Value = serde_json::from_str(&text).unwrap();
    let entries = journal["entries"].as_array().expect("entries");
    assert!(!entries.is_empty());
    assert!(journal["dropped"].as_u64().unwrap() > 0, "nothing evicted: {}", journal["dropped"]);
    // Each entry cut with a visible marker; all of them together within the ring's bytes.
    for e in entries {
        let entry = e.to_string();
        assert!(entry.contains("[truncated"), "no marker in {}", &entry[..200.min(entry.len())]);
        // Every string an entry keeps is cut to 34 KiB (plus the marker).
        let mut strings = vec![e];
        while let Some(v) = strings.pop() {
            match v {
                Value::String(text) => assert!(text.len() <= 34 * 1024 + 64, "a string of {} bytes", text.len()),
                Value::Array(a) => strings.extend(a),
                Value::Object(o) => strings.extend(o.values()),
                _ => {}
            }
        }
    }
    assert!(text.len() as u64 <= 2 * MIB, "the journal holds {} bytes", text.len());
    s.serves_another_tenant().await;
}

// ---------------------------------------------------------------------------------------------
// Media quota
// ---------------------------------------------------------------------------------------------

fn upload_url(s: &Served, tenant: &Value) -> String {
    let service = tenant["service_sid"].as_str().expect("the tenant's chat service");
    format!("{}/v1/Services/{service}/Media", s.url)
}

async fn upload(s: &Served, tenant: &Value, size: usize) -> (u16, Value) {
    let res = http()
        .post(upload_url(s, tenant))
        .basic_auth(sid(tenant), tenant["auth_token"].as_str())
        .header("Content-Type", "image/png")
        .body(vec![7u8; size])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_a_tenants_media_quota_get_twilios_error_and_other_tenants_still_upload() {
    let s = Served::start(&["--media-quota-mib", "1"]);
    let tenant = s.tenant().await;
    let (status, body) = upload(&s, &tenant, 600 * 1024).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = upload(&s, &tenant, 600 * 1024).await;
    assert_eq!((status, body["code"].as_u64()), (413, Some(50512)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("quota"), "{body}");
    assert_eq!(body["status"], 413, "{body}");
    // What still fits is taken.
    let (status, body) = upload(&s, &tenant, 400 * 1024).await;
    assert_eq!(status, 201, "{body}");
    // Another tenant has its own quota.
    let other = s.tenant().await;
    let (status, body) = upload(&s, &other, 600 * 1024).await;
    assert_eq!(status, 201, "{body}");
    s.serves_another_tenant().await;
}

/// An upload in progress holds its declared length against the quota from the moment its body
/// is read (shown by `100 Continue`): a concurrent one that would pass the quota with it is
/// refused, and an aborted one gives its share back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_progress_count_against_the_quota_and_aborted_ones_give_it_back() {
    use base64::Engine;
    let s = Served::start(&["--media-quota-mib", "1"]);
    let tenant = s.tenant().await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", sid(&tenant), tenant["auth_token"].as_str().unwrap()));
    let path = upload_url(&s, &tenant).trim_start_matches(&s.url).to_owned();
    let start_upload = |size: usize| {
        let mut conn = TcpStream::connect(&s.addr).unwrap();
        conn.set_read_timeout(Some(ANSWER)).unwrap();
        write!(
            conn,
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nContent-Type: image/png\r\n\
             Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).expect("100 Continue"), 1);
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 100"), "{head}");
        conn
    };
    // 800 KiB in progress: its body is being read.
    let mut first = start_upload(800 * 1024);
    first.write_all(&[1u8; 1000]).unwrap();
    // 300 KiB more would pass the 1 MiB quota with it.
    let (status, body) = upload(&s, &tenant, 300 * 1024).await;
    assert_eq!((status, body["code"].as_u64()), (413, Some(50512)), "{body}");
    // The first completes within the quota.
    first.write_all(&vec![1u8; 800 * 1024 - 1000]).unwrap();
    let mut answer = [0u8; 12];
    first.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 201");
    // An upload aborted half-way gives its share back (once the server has seen the abort).
    let mut aborted = start_upload(200 * 1024);
    aborted.write_all(&[1u8; 1000]).unwrap();
    drop(aborted);
    let deadline = Instant::now() + ANSWER;
    loop {
        let (status, body) = upload(&s, &tenant, 200 * 1024).await;
        if status == 201 {
            break;
        }
        assert_eq!(body["code"].as_u64(), Some(50512), "{body}");
        assert!(Instant::now() < deadline, "the aborted upload's share never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.serves_another_tenant().await;
}
