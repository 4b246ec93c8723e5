//! Encode-once fan-out to N in-process subscribers: one message committed through the domain
//! (the control plane's `post`, no HTTP), its Sync push encoded once and queued to N sessions,
//! written to N loopback sockets and read by N `rehearsal-client` connections in this process.
//! One iteration is one message until its last delivery; the throughput is deliveries.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rehearsal_client::{Client, Config};
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::actors::Action;
use rehearsal_test_support::token_for;
use serde_json::json;
use tokio::sync::Notify;

const ACCOUNT: &str = "AC72656865617273616c00000000000001";

async fn act(server: &MockServer, who: Option<&str>, action: serde_json::Value) -> serde_json::Value {
    let a: Action = serde_json::from_value(action).expect("a valid action");
    server.control().act(ACCOUNT, who, a).await.expect("the action succeeds")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut g = c.benchmark_group("fanout_in_process");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for n in [10usize, 100, 1000] {
        let server = rt.block_on(MockServer::start());
        let identities: Vec<String> = (0..n).map(|i| format!("sub-{i:04}")).collect();
        rt.block_on(act(
            &server,
            None,
            json!({"action": "create_conversation", "unique_name": "fanout", "participants": identities}),
        ));
        let delivered = Arc::new(AtomicUsize::new(0));
        let all_in = Arc::new(Notify::new());
        let clients: Vec<Client> = rt.block_on(async {
            let mut out = Vec::with_capacity(n);
            for id in &identities {
                let (d, all) = (delivered.clone(), all_in.clone());
                let client = Client::connect_with(&Config::new(server.twilsock_url()), &token_for(&server, id), move |note| {
                    if note.payload.windows(15).any(|w| w == b"list_item_added") && d.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        all.notify_one();
                    }
                })
                .await
                .expect("connect");
                let objs = client.conversation("fanout").await.expect("conversation");
                let list = client.descriptor("list", &objs.messages).await.expect("list");
                client.subscribe(&list.sid, "list", list.last_event_id).await.expect("subscribe");
                out.push(client);
            }
            out
        });
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (server, delivered, all_in) = (&server, delivered.clone(), all_in.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        delivered.store(0, Ordering::Release);
                        let t = Instant::now();
                        act(
                            server,
                            Some("sub-0000"),
                            json!({"action": "post", "conversation": "fanout", "body": "hello"}),
                        )
                        .await;
                        tokio::time::timeout(Duration::from_secs(10), all_in.notified())
                            .await
                            .expect("every subscriber gets the message in time");
                        total += t.elapsed();
                    }
                    total
                }
            })
        });
        drop(clients);
        rt.block_on(server.shutdown());
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
