//! The server's twilsock codec on the frames that dominate traffic: a Sync push (encoded once
//! per event, then shared by every subscriber), an upstream request (decoded per request), and
//! the SDK's ack of a push (decoded per delivery: at N subscribers, N acks per message); and the
//! WebSocket framing under them (a read holding a burst of acks, a push's header).
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rehearsal_mock_server::sync::projection::notification_frame;
use rehearsal_mock_server::twilsock::codec::{self, Limits};
use rehearsal_mock_server::twilsock::websocket::{self, Assembler};
use rehearsal_test_support::twilsock::frame_head;
use serde_json::{Map, Value, json};

fn push_payload() -> Value {
    json!({
        "event_type": "list_item_added",
        "event": {
            "list_sid": "CH00000000000000000000000000000001.messages", "id": 42, "item_index": 41,
            "item_url": "http://127.0.0.1:4510/v3/Lists/CH00000000000000000000000000000001.messages/Items/41",
            "item_revision": "42",
            "item_data": {"sid": "IM00000000000000000000000000000001", "author": "alice", "text": "hello there, this is a message of moderate length",
                          "attributes": "{}", "timestamp": "2026-01-01T00:00:00.000Z", "dateUpdated": "2026-01-01T00:00:00.000Z",
                          "type": "text", "memberSid": "MB00000000000000000000000000000001"},
            "date_created": "2026-01-01T00:00:00.000Z", "list_revision": "42"
        }
    })
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

fn bench(c: &mut Criterion) {
    let payload = push_payload();
    let request = codec::encode(
        object(
            json!({"method": "message", "id": "TM3f1c2a9e-7d41-4b8e-9c55-0a1b2c3d4e5f", "active_grant": "ip_messaging",
            "payload_type": "application/json; charset=utf-8",
            "http_request": {"host": "aim.us1.twilio.com", "path": "/Client/v2/Services/IS72656865617273616c00000000000001/Conversations/CH00000000000000000000000000000001/Messages",
                             "method": "POST", "params": {}, "headers": {"Content-Type": "application/json; charset=utf-8", "X-Twilio-Mutation-Id": "5b0c9d6e-3f7a-4e21-8d90-1a2b3c4d5e6f"}}}),
        ),
        br#""{\"body\":\"hello there\",\"attributes\":\"{}\"}""#,
    );
    let ack = codec::encode(
        object(
            json!({"method": "reply", "id": "TM0000000000000000000000000000002a", "payload_type": "application/json",
            "status": {"code": 200, "status": "OK"}}),
        ),
        b"",
    );
    let limits = Limits::default();
    let mut g = c.benchmark_group("server_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_sync_push", |b| {
        b.iter(|| {
            notification_frame(
                "TM0000000000000000000000000000002a".into(),
                "twilio.sync.event",
                std::hint::black_box(&payload),
            )
        })
    });
    g.bench_function("decode_upstream_request", |b| {
        b.iter(|| codec::decode_bytes(std::hint::black_box(&request), &limits).expect("decodes"))
    });
    g.bench_function("decode_ack", |b| {
        b.iter(|| codec::decode_bytes(std::hint::black_box(&ack), &limits).expect("decodes"))
    });
    g.bench_function("is_reply_sdk_ack", |b| {
        // The session's path for each ack: the SDK's exact bytes, compared without parsing.
        b.iter(|| assert!(codec::is_reply(std::hint::black_box(&ack), &limits)))
    });
    let header = r#"{"id":"TM0000000000000000000000000000002a","method":"reply","status":{"code":200,"status":"OK"},"payload_size":0}"#;
    let reordered = Bytes::from(format!("TWILSOCK V3.0 {}\r\n{header}\r\n", header.len()));
    g.bench_function("is_reply_other_ack", |b| {
        // A valid ack in another shape: the typed borrowing parse.
        b.iter(|| assert!(codec::is_reply(std::hint::black_box(&reordered), &limits)))
    });
    let frame: Bytes = notification_frame("TM1".into(), "twilio.sync.event", &payload);
    g.bench_function("share_push_1000", |b| {
        // What fan-out costs per event besides the queues: one clone of the shared frame per
        // subscriber (a reference count, no copy).
        b.iter(|| {
            for _ in 0..1000 {
                std::hint::black_box(frame.clone());
            }
        })
    });
    g.finish();

    // The SDK's acks as they arrive under fan-out: several masked frames in one read.
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut masked = ack.to_vec();
    websocket::unmask(&mut masked, mask);
    let mut burst = Vec::new();
    for _ in 0..32 {
        burst.extend(frame_head(websocket::OP_BINARY, ack.len() as u64, mask));
        burst.extend_from_slice(&masked);
    }
    let mut g = c.benchmark_group("server_websocket");
    g.throughput(Throughput::Elements(32));
    g.bench_function("assemble_32_acks", |b| {
        // What the socket does per read: parse, unmask, hand out each ack as `Bytes`.
        b.iter(|| {
            let mut assembler = Assembler::new(1 << 20);
            assembler.extend(std::hint::black_box(&burst));
            let mut n = 0;
            while let Ok(Some(_)) = assembler.next_message() {
                n += 1;
            }
            assert_eq!(n, 32);
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_header", |b| {
        // Each push written: its header, beside the shared payload in a vectored write.
        let mut header = [0u8; websocket::MAX_SERVER_HEADER_LEN];
        b.iter(|| websocket::write_header(&mut header, websocket::OP_BINARY, std::hint::black_box(frame.len())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
