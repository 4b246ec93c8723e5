//! The in-run floor of `rehearsal bench fanout --floor`: a minimal server that the same load
//! generator drives beside Rehearsal, so that Rehearsal's figures can be given as ratios to what
//! this machine does at the same moment (absolute figures are noise on a shared machine).
//!
//! It does nothing but what the lean client needs to reach the subscribed state (`init`, the
//! Configuration, the conversation's Sync object ids, their descriptors and one
//! `subscription_established` per subscription request) and, on each REST publish, encode the
//! push frames once (same twilsock framing as Rehearsal's, payloads padded to the sizes the
//! Rehearsal run observed) and hand the same bytes to every subscribed socket through one
//! broadcast channel. Acks are recognised by their first bytes and dropped unparsed. No state,
//! no journal, no per-session queue beyond the broadcast receiver: what is left is the cost of
//! WebSocket framing, tokio and the syscalls.
//!
//! It runs as a child process (`rehearsal bench floor-server`, hidden), like the Rehearsal
//! server: on a 2-core machine a server inside the load generator's process would share its
//! runtime threads (the two would slow each other in ways the Rehearsal run does not see), and
//! its CPU seconds could not be told apart from the load generator's. As a child it is measured
//! from `/proc` exactly as the Rehearsal child is.
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use bytes::Bytes;
use clap::Args;
use futures_util::SinkExt;
use rehearsal_client::codec;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// Push frames buffered for the slowest subscriber (a count bound; with frames of a few hundred
/// bytes this is a few MB). A subscriber that falls further behind is disconnected, which the
/// benchmark reports as a failed correctness check.
const BROADCAST_FRAMES: usize = 8192;
/// Frames written to one socket before a flush (one syscall for a burst).
const WRITE_BATCH: usize = 64;
/// The WebSocket read buffer: Rehearsal's session uses 4 KiB (tungstenite zero-fills the whole
/// buffer before each read, so its 128 KiB default would make every ack read cost a memset).
const READ_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Args)]
pub struct FloorServerArgs {
    /// Payload bytes of each `list_item_added` push (padded to this; 0: unpadded).
    #[arg(long, default_value_t = 0)]
    list_push_bytes: usize,
    /// Also push a `document_updated` of this many payload bytes before each list push, as
    /// Rehearsal does for a subscriber of the conversation's document (0: no second push).
    #[arg(long, default_value_t = 0)]
    document_push_bytes: usize,
}

struct Floor {
    list_push_bytes: usize,
    document_push_bytes: usize,
    /// Next message index and the channel, under one lock so that frames enter the channel in
    /// index order (the subscribers check it).
    publish: Mutex<u64>,
    frames: broadcast::Sender<Bytes>,
    notification_ids: AtomicU64,
}

/// Serves until killed; prints `listening on http://ADDR` once it accepts connections.
pub async fn serve(args: FloorServerArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the floor server")?;
    let addr = listener.local_addr()?;
    let (frames, _) = broadcast::channel(BROADCAST_FRAMES);
    let floor = std::sync::Arc::new(Floor {
        list_push_bytes: args.list_push_bytes,
        document_push_bytes: args.document_push_bytes,
        publish: Mutex::new(0),
        frames,
        notification_ids: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/Services", get(|| async { Json(json!({"services": []})) }))
        .route("/v1/Conversations", post(create_conversation))
        .route(
            "/v1/Conversations/{c}/Participants",
            post(|| async { (StatusCode::CREATED, Json(json!({}))) }),
        )
        .route("/v1/Conversations/{c}/Messages", post(publish))
        .route("/v3/wsconnect", get(upgrade))
        .with_state(floor);
    println!("rehearsal floor server listening on http://{addr}");
    let _ = std::io::stdout().flush();
    axum::serve(listener, app).await.context("floor server")
}

async fn create_conversation() -> impl IntoResponse {
    (
        StatusCode::CREATED,
        Json(json!({"sid": format!("CH{:032x}", rand::random::<u128>())})),
    )
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(rename = "Body")]
    body: String,
}

/// A REST publish: the push frames are encoded once and the same bytes go to every subscriber.
async fn publish(State(floor): State<std::sync::Arc<Floor>>, Path(c): Path<String>, Form(m): Form<MessageForm>) -> impl IntoResponse {
    let mut next = floor.publish.lock().unwrap_or_else(|e| e.into_inner());
    let index = *next;
    *next += 1;
    if floor.document_push_bytes > 0 {
        let event = json!({"document_sid": document_sid(&c), "id": index + 1, "document_data": {"lastMessage": {"index": index}}});
        let _ = floor
            .frames
            .send(floor.push("document_updated", event, "document_data", floor.document_push_bytes));
    }
    let event = json!({
        "list_sid": list_sid(&c), "id": index + 1, "item_index": index,
        "item_url": format!("/v3/Lists/{}/Items/{index}", list_sid(&c)), "item_revision": (index + 1).to_string(),
        "item_data": {"text": m.body, "author": "bench-publisher"},
        "list_revision": (index + 1).to_string(),
    });
    // No subscriber yet is not an error: the frame is simply not delivered.
    let _ = floor
        .frames
        .send(floor.push("list_item_added", event, "item_data", floor.list_push_bytes));
    drop(next);
    (StatusCode::CREATED, Json(json!({"index": index})))
}

impl Floor {
    /// A `twilio.sync.event` notification whose payload is padded (inside `data_field`) to
    /// `size` bytes, so that the floor writes as many bytes per push as Rehearsal did.
    fn push(&self, event_type: &str, mut event: Value, data_field: &str, size: usize) -> Bytes {
        let mut payload = json!({"event_type": event_type, "event": event.clone()});
        let unpadded = payload.to_string().len();
        // `,"pad":""` is 9 bytes.
        if size > unpadded + 9 {
            event[data_field]["pad"] = Value::String("x".repeat(size - unpadded - 9));
            payload = json!({"event_type": event_type, "event": event});
        }
        let mut h = Map::new();
        h.insert("method".into(), json!("notification"));
        let id = self.notification_ids.fetch_add(1, Ordering::Relaxed) + 1;
        h.insert("id".into(), json!(format!("TM{id:032x}")));
        h.insert("message_type".into(), json!("twilio.sync.event"));
        h.insert("payload_type".into(), json!("application/json"));
        codec::encode(&h, payload.to_string().as_bytes())
    }
}

fn list_sid(conversation: &str) -> String {
    format!("ES{}", conversation.get(2..).unwrap_or(conversation))
}

fn document_sid(conversation: &str) -> String {
    format!("ET{}", conversation.get(2..).unwrap_or(conversation))
}

fn roster_sid(conversation: &str) -> String {
    format!("MP{}", conversation.get(2..).unwrap_or(conversation))
}

async fn upgrade(State(floor): State<std::sync::Arc<Floor>>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| connection(floor, socket))
}

/// One connection: answers requests, drops acks, and once subscribed writes every broadcast
/// frame, a burst per flush.
async fn connection(floor: std::sync::Arc<Floor>, mut ws: WebSocket) {
    let mut pushes: Option<broadcast::Receiver<Bytes>> = None;
    loop {
        let next_push = async {
            match &mut pushes {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = ws.recv() => {
                let bytes = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                if is_reply(&bytes) {
                    continue;
                }
                let Ok(p) = codec::decode(&bytes) else { return };
                let (answers, subscribe) = answer(&p);
                if subscribe && pushes.is_none() {
                    pushes = Some(floor.frames.subscribe());
                }
                for a in answers {
                    if ws.feed(Message::Binary(a)).await.is_err() {
                        return;
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
            frame = next_push => {
                let Ok(frame) = frame else { return };
                if ws.feed(Message::Binary(frame)).await.is_err() {
                    return;
                }
                if let Some(rx) = &mut pushes {
                    for _ in 1..WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(f) => {
                                if ws.feed(Message::Binary(f)).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// An ack (`reply`) from the client: recognised by its header's first field, never parsed.
fn is_reply(frame: &[u8]) -> bool {
    frame
        .windows(2)
        .position(|w| w == b"\r\n")
        .is_some_and(|i| frame[i + 2..].starts_with(br#"{"method":"reply""#))
}

/// The answers to one client packet, and whether it subscribed.
fn answer(p: &codec::Packet) -> (Vec<Bytes>, bool) {
    let Some(id) = p.id() else {
        return (Vec::new(), false);
    };
    match p.method() {
        Some("init") | Some("update") => (vec![reply(id, None, &Value::Null)], false),
        Some("message") => {
            let req = p.header.get("http_request").cloned().unwrap_or_default();
            let path = req["path"].as_str().unwrap_or_default();
            let method = req["method"].as_str().unwrap_or_default();
            upstream(id, method, path, p)
        }
        // `close`, telemetry and anything else: a plain reply.
        _ => (vec![reply(id, None, &Value::Null)], false),
    }
}

/// An upstream request the lean client makes on its way to the subscribed state.
fn upstream(id: &str, method: &str, path: &str, p: &codec::Packet) -> (Vec<Bytes>, bool) {
    let ok = |body: Value| (vec![reply(id, Some(200), &body)], false);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["Client", "v2", "Configuration"]) => ok(json!({
            "identity": "bench",
            "sync_objects": {"my_conversations": "MPmyconversations", "my_user_info": "MPmyuserinfo"},
            "links": {"my_conversations": "/Client/v2/MyConversations", "conversations": "/Client/v2/Conversations"},
        })),
        ("GET", ["Client", "v2", "MyConversations", c]) => ok(json!({
            "conversation_sid": c,
            "sync_objects": {"conversation": document_sid(c), "messages": list_sid(c), "participants": roster_sid(c)},
        })),
        ("GET", ["v3", kind @ ("Documents" | "Lists" | "Maps"), sid]) => ok(json!({
            "sid": sid, "last_event_id": 0, "links": {"items": format!("/v3/{kind}/{sid}/Items")},
        })),
        ("POST", ["v4", "Subscriptions"]) => {
            let body = p.payload_json().unwrap_or_default();
            let events: Vec<Value> = body["requests"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .map(|r| json!({"object_sid": r["object_sid"], "object_type": r["object_type"], "replay_status": "completed", "last_event_id": 0}))
                        .collect()
                })
                .unwrap_or_default();
            let established = json!({"event_type": "subscription_established", "correlation_id": body["correlation_id"], "events": events});
            let mut h = Map::new();
            h.insert("method".into(), json!("notification"));
            h.insert("id".into(), json!(format!("TMsub{id}")));
            h.insert("message_type".into(), json!("twilio.sync.event"));
            let answers = vec![
                reply(
                    id,
                    Some(200),
                    &json!({"estimated_delivery_in_ms": 5000, "max_batch_size": 100, "ttl_in_s": 3600}),
                ),
                codec::encode(&h, established.to_string().as_bytes()),
            ];
            (answers, true)
        }
        _ => (
            vec![reply(id, Some(404), &json!({"status": 404, "message": "not in the floor server"}))],
            false,
        ),
    }
}

/// A twilsock `reply` (status 200), with an `http_status` for upstream requests.
fn reply(id: &str, http_status: Option<u16>, body: &Value) -> Bytes {
    let mut h = Map::new();
    h.insert("method".into(), json!("reply"));
    h.insert("id".into(), json!(id));
    h.insert("payload_type".into(), json!("application/json"));
    h.insert("status".into(), json!({"code": 200, "status": "OK"}));
    if let Some(s) = http_status {
        h.insert(
            "http_status".into(),
            json!({"code": s, "status": if s == 200 { "OK" } else { "Not Found" }}),
        );
    }
    let payload = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    codec::encode(&h, &payload)
}
