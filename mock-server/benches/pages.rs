//! Page reads of a conversation's messages at 1k, 100k and 1M messages, through the whole REST
//! stack in process (router, auth, fault and journal middleware, keyset paging, rendering; no
//! socket): newest page, a page deep in the middle (by page token), oldest page. Keyset paging
//! promises O(log n + page) at any depth, so the three should cost about the same at every size.
//!
//! Set `REHEARSAL_BENCH_MAX_HISTORY` (e.g. 100000) to skip the larger histories on a slow machine.
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::actors::Action;
use serde_json::{Value, json};
use tower::ServiceExt;

const ACCOUNT: &str = "AC72656865617273616c00000000000001";
const AUTH: &str = "rehearsal-auth-token";
const PAGE: usize = 50;

fn get(path: &str) -> Request<Body> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{AUTH}"));
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::empty())
        .expect("a valid request")
}

async fn read(router: &axum::Router, path: &str) -> Value {
    let res = router.clone().oneshot(get(path)).await.expect("infallible router");
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let body = axum::body::to_bytes(res.into_body(), 1 << 24).await.expect("body");
    serde_json::from_slice(&body).expect("JSON page")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let max: u64 = std::env::var("REHEARSAL_BENCH_MAX_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut g = c.benchmark_group("rest_page_read");
    for history in [1_000u64, 100_000, 1_000_000].into_iter().filter(|h| *h <= max) {
        let server = rt.block_on(MockServer::start());
        let router = rehearsal_mock_server::server::app(server.state().clone());
        let sid = rt.block_on(async {
            let c = server
                .control()
                .act(
                    ACCOUNT,
                    None,
                    serde_json::from_value::<Action>(json!({"action": "create_conversation", "unique_name": "bench"})).expect("action"),
                )
                .await
                .expect("conversation");
            c["sid"].as_str().map(str::to_owned).unwrap_or_else(|| "bench".into())
        });
        // In chunks: one call appends at most `MAX_GENERATED_MESSAGES`.
        let chunk = rehearsal_mock_server::control::limits::MAX_GENERATED_MESSAGES;
        for start in (0..history).step_by(chunk as usize) {
            let count = chunk.min(history - start);
            let generate =
                serde_json::from_value::<Action>(json!({"action": "generate_messages", "conversation": "bench", "count": count}))
                    .expect("action");
            rt.block_on(server.control().act(ACCOUNT, None, generate)).expect("history");
        }
        let list = format!("/v1/Conversations/{sid}/Messages?PageSize={PAGE}");
        // The page in the middle of the history: page tokens are opaque, so walk `next_page_url`
        // there once (in process this takes well under a second even at 1M).
        let middle = rt.block_on(async {
            let mut url = format!("{list}&Order=asc");
            for _ in 0..history as usize / PAGE / 2 {
                let p = read(&router, &url).await;
                let next = p["meta"]["next_page_url"].as_str().expect("next page").to_owned();
                url = next.split_once("/v1/").map(|(_, rest)| format!("/v1/{rest}")).expect("relative");
            }
            url
        });
        for (name, path) in [
            ("newest", format!("{list}&Order=desc")),
            ("middle", middle),
            ("oldest", format!("{list}&Order=asc")),
        ] {
            g.bench_with_input(BenchmarkId::new(name, history), &path, |b, path| {
                b.to_async(&rt).iter(|| async {
                    let res = router.clone().oneshot(get(path)).await.expect("infallible router");
                    axum::body::to_bytes(res.into_body(), 1 << 24).await.expect("body")
                })
            });
        }
        drop(router);
        rt.block_on(server.shutdown());
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
