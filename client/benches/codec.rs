//! Client-side frame encode and decode (what a benchmark process pays per push and per ack).
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rehearsal_client::codec;
use serde_json::{Value, json};

/// A `list_item_added` push as the server sends it for a short text message.
fn push_frame() -> Bytes {
    let payload = json!({
        "event_type": "list_item_added",
        "event": {
            "list_sid": "CH00000000000000000000000000000001.messages", "id": 42, "item_index": 41,
            "item_url": "http://127.0.0.1:4510/v3/Lists/CH00000000000000000000000000000001.messages/Items/41",
            "item_revision": "42",
            "item_data": {"sid": "IM00000000000000000000000000000001", "author": "alice", "text": "hello there",
                          "attributes": "{}", "timestamp": "2026-01-01T00:00:00.000Z", "type": "text"},
            "date_created": "2026-01-01T00:00:00.000Z", "list_revision": "42"
        }
    });
    let Value::Object(h) = json!({"method": "notification", "id": "TM0000000000000000000000000000002a",
        "message_type": "twilio.sync.event", "payload_type": "application/json"})
    else {
        unreachable!()
    };
    codec::encode(&h, &serde_json::to_vec(&payload).unwrap())
}

fn bench(c: &mut Criterion) {
    let frame = push_frame();
    let mut g = c.benchmark_group("client_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_push", |b| b.iter(|| codec::decode(std::hint::black_box(&frame)).unwrap()));
    g.bench_function("decode_push_and_events", |b| {
        b.iter(|| {
            let p = codec::decode(std::hint::black_box(&frame)).unwrap();
            rehearsal_client::sync_events(&p.payload).unwrap()
        })
    });
    g.bench_function("encode_ack", |b| {
        b.iter(|| codec::ack(std::hint::black_box("TM0000000000000000000000000000002a")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
