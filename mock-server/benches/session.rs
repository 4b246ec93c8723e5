//! Per-delivery costs around a twilsock session that issue 13 removed, kept measurable so that
//! they do not creep back: what one driver turn paid for the token timers before they were kept
//! as one sleep across turns (a fresh server-clock sleep, polled once and dropped — twice per
//! turn, and a turn per ack), and a journal entry recorded with and without a live follower (acks
//! used to be one entry each; entries are cloned only for followers).
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rehearsal_mock_server::clock::{Clock, Millis};
use rehearsal_mock_server::journal::{Journal, Kind, Observation};
use serde_json::json;

fn observation() -> Observation {
    Observation {
        at: Millis(1_700_000_000_000),
        kind: Kind::PacketIn,
        account: Some("AC00000000000000000000000000000001".into()),
        session: Some(42),
        identity: Some("alice".into()),
        summary: "message GET /Client/v2/Configuration".into(),
        detail: json!({ "method": "message", "id": "TM1", "http_method": "GET", "path": "/Client/v2/Configuration" }),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut g = c.benchmark_group("server_session");
    g.throughput(Throughput::Elements(1));
    let clock = Clock::system();
    let far = Millis(clock.now().0 + 3_600_000);
    g.bench_function("fresh_clock_sleep_polled_once", |b| {
        let _guard = rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        b.iter(|| {
            let mut sleep = pin!(clock.sleep_until(std::hint::black_box(far)));
            assert!(matches!(sleep.as_mut().poll(&mut cx), Poll::Pending));
        })
    });
    let journal = Journal::new(10_000);
    g.bench_function("journal_record_no_follower", |b| b.iter(|| journal.record(observation())));
    let followed = Journal::new(10_000);
    let mut follower = followed.follow();
    g.bench_function("journal_record_one_follower", |b| {
        b.iter(|| {
            followed.record(observation());
            let _ = follower.try_recv();
        })
    });
    g.finish();
    // Keep the runtime's timer alive until the sleeps above are gone.
    rt.block_on(tokio::time::sleep(Duration::ZERO));
}

criterion_group!(benches, bench);
criterion_main!(benches);
