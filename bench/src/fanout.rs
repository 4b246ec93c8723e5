//! `rehearsal bench fanout`: one conversation, N subscribed connections, messages published over
//! REST on an open-loop schedule.
//!
//! Open loop: message `k` is due at `start + k / rate` whether or not earlier ones were
//! answered (a bounded number of publishes may be in flight), and every latency is measured
//! from that due time, so a server that falls behind shows it in the latencies instead of
//! slowing the load down (no coordinated omission). Each message body starts with its sequence
//! number, which is how a subscriber maps a push to its due time.
//!
//! Per delivery (one `list_item_added` on one connection) the subscriber records
//! `received - due`; per message, the last of the N deliveries gives the last-delivery latency.
//! Every subscriber also checks that it gets every message exactly once, in index order.
//! Messages of the warm-up are checked but not timed.
mod lean;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use rehearsal_client::{Client, Config};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::server::{Rest, Server, Usage};
use super::{MAX_IDENTITIES, Report, Target, histogram, latency_json, latency_text, parse_duration, parse_duration_or_zero};

#[derive(Args)]
pub struct FanoutArgs {
    /// Connections subscribed to the conversation (identities are shared beyond 1,000, the
    /// participant limit: one user on several devices).
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Messages published per second (open loop).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to publish after the warm-up (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Publishing before the measured part: checked for loss, not timed.
    #[arg(long, default_value = "2s", value_parser = parse_duration_or_zero)]
    warmup: Duration,
    /// Message body size in bytes (at least 11: the sequence number and a space).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// What each subscriber subscribes to: the conversation's document, message list and roster
    /// as the SDK does (`conversation`: two pushes per message), or the message list only.
    #[arg(long, value_enum, default_value = "conversation")]
    objects: Objects,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Publishes in flight at once (beyond it, sends wait; their latency still counts from
    /// their due time).
    #[arg(long, default_value_t = 128)]
    max_in_flight: usize,
    /// Do not ack pushes (the SDK does); shows what acks cost the server.
    #[arg(long)]
    no_ack: bool,
    /// How subscribers read: `lean` (handshake, init and one subscription request, then raw
    /// frames read on one thread; `fanout/lean.rs`) or `client` (a full `rehearsal-client`
    /// connection each, every push decoded as the client decodes it). Both ack as the SDK does;
    /// `lean` costs the load generator about a third of `client`'s CPU per push.
    #[arg(long, value_enum, default_value = "lean")]
    generator: Generator,
    /// Threads the lean subscribers run on (each a current-thread runtime; subscribers are
    /// dealt out round-robin; `--generator client` uses the shared runtime instead). On a 2-core machine two keep the generator's queueing below
    /// the server's at 150,000 deliveries/s.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    subscriber_threads: u16,
    /// Also run the same load, in this invocation, against a minimal server that only writes
    /// the same push frames to the subscribed sockets (`bench/src/floor.rs`), and report Rehearsal's
    /// figures as ratios to it (`floor` and `ratios` in the JSON).
    #[arg(long)]
    floor: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Generator {
    Lean,
    Client,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Objects {
    Conversation,
    Messages,
}

/// What every subscriber shares with the benchmark.
struct Shared {
    t0: Instant,
    /// Due time of message 0, in µs after `t0` (set before publishing starts).
    start_us: AtomicU64,
    period_us: f64,
    total: usize,
    warmup: usize,
    /// Per message: deliveries so far and the latest delivery time (µs after `t0`).
    slots: Vec<(AtomicU32, AtomicU64)>,
    frames: AtomicU64,
    deliveries: AtomicU64,
    /// Largest payload seen of a `list_item_added` push and of any other data push (the
    /// document update a conversation subscriber also gets): the sizes the floor pads to.
    list_payload_bytes: AtomicU64,
    other_payload_bytes: AtomicU64,
}

impl Shared {
    fn due_us(&self, seq: usize) -> u64 {
        self.start_us.load(Ordering::Relaxed) + (seq as f64 * self.period_us) as u64
    }
}

/// One subscriber's record.
struct Sub {
    /// Per-delivery latencies: the subscriber's own (`client`) or shared by the subscribers of
    /// one thread (`lean`), which keeps the histograms a thread writes in its cache.
    hist: Arc<Mutex<Histogram<u64>>>,
    seen: Vec<u64>,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    unexpected: u64,
    last_index: Option<u64>,
}

impl Sub {
    fn new(total: usize, hist: Arc<Mutex<Histogram<u64>>>) -> Sub {
        Sub {
            hist,
            seen: vec![0; total.div_ceil(64)],
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            unexpected: 0,
            last_index: None,
        }
    }
}

/// A subscribed connection of either generator.
enum Subscriber {
    Client(Box<Client>),
    Lean(tokio::task::JoinHandle<anyhow::Result<()>>),
}

impl Subscriber {
    /// `None` while connected, else why it is not.
    fn ended(&mut self) -> Option<String> {
        use futures_util::FutureExt;
        match self {
            Subscriber::Client(c) => (!c.is_open()).then(|| "connection closed".to_owned()),
            Subscriber::Lean(task) if task.is_finished() => Some(match task.now_or_never() {
                Some(Ok(Err(e))) => format!("{e:#}"),
                Some(Err(e)) => format!("subscriber task: {e}"),
                _ => "read loop ended".to_owned(),
            }),
            Subscriber::Lean(_) => None,
        }
    }
}

// Borrowed where the JSON allows it: a push is parsed without allocating.
#[derive(Deserialize)]
struct PushLite<'a> {
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow, default)]
    event: Option<EventLite<'a>>,
}

#[derive(Deserialize)]
struct EventLite<'a> {
    #[serde(borrow, default)]
    list_sid: Option<Cow<'a, str>>,
    #[serde(default)]
    item_index: Option<u64>,
    #[serde(borrow, default)]
    item_data: Option<DataLite<'a>>,
}

#[derive(Deserialize)]
struct DataLite<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

fn on_push(payload: &[u8], received: Instant, messages_sid: &str, shared: &Shared, sub: &Mutex<Sub>) {
    shared.frames.fetch_add(1, Ordering::Relaxed);
    let Ok(p) = serde_json::from_slice::<PushLite>(payload) else {
        return;
    };
    let size = payload.len() as u64;
    if p.event_type != "list_item_added" {
        if !p.event_type.starts_with("subscription_") {
            shared.other_payload_bytes.fetch_max(size, Ordering::Relaxed);
        }
        return;
    }
    let Some(e) = p.event else { return };
    if e.list_sid.as_deref() != Some(messages_sid) {
        return;
    }
    shared.list_payload_bytes.fetch_max(size, Ordering::Relaxed);
    let mut s = sub.lock().unwrap_or_else(|e| e.into_inner());
    let seq = e
        .item_data
        .and_then(|d| d.text)
        .and_then(|t| t.get(..10).and_then(|d| d.parse::<usize>().ok()))
        .filter(|&q| q < shared.total);
    let (Some(seq), Some(index)) = (seq, e.item_index) else {
        s.unexpected += 1;
        return;
    };
    if s.last_index.is_some_and(|l| index <= l) {
        s.out_of_order += 1;
    }
    s.last_index = Some(index);
    let (word, bit) = (seq / 64, 1u64 << (seq % 64));
    if s.seen[word] & bit != 0 {
        s.duplicated += 1;
        return;
    }
    s.seen[word] |= bit;
    s.received += 1;
    let at = received.saturating_duration_since(shared.t0).as_micros() as u64;
    if seq >= shared.warmup {
        let _ = s
            .hist
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(at.saturating_sub(shared.due_us(seq)).max(1));
    }
    drop(s);
    let (count, last) = &shared.slots[seq];
    last.fetch_max(at, Ordering::Relaxed);
    count.fetch_add(1, Ordering::Release);
    shared.deliveries.fetch_add(1, Ordering::Relaxed);
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.subscribers > 0, "--subscribers must be at least 1");
    anyhow::ensure!(args.rate > 0.0 && args.rate.is_finite(), "--rate must be positive");
    anyhow::ensure!(args.payload >= 11, "--payload must be at least 11 bytes");
    let server = Server::get(&args.target).await?;
    let result = measure(&args, &server).await;
    let tail = server.output_tail();
    server.stop().await;
    let report = result.with_context(|| format!("server output:\n{tail}"))?;
    if !args.floor {
        return Ok(report);
    }
    // The floor runs after Rehearsal has stopped (the two never share the machine) and pads its
    // pushes to the payload sizes Rehearsal sent.
    let sizes = &report.json["push_payload_bytes"];
    let size = |k: &str| sizes[k].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let floor = Server::spawn_floor(size("list"), size("other")).await?;
    let result = measure(&args, &floor).await;
    let tail = floor.output_tail();
    floor.stop().await;
    let floor_report = result.with_context(|| format!("floor server output:\n{tail}"))?;
    Ok(with_floor(report, floor_report))
}

/// Rehearsal's report with the floor's beside it (`floor`) and Rehearsal/floor ratios
/// (`ratios`); the checks of both count.
fn with_floor(r: Report, f: Report) -> Report {
    let ratio = |path: &str| -> Option<f64> {
        let a = r.json.pointer(path)?.as_f64()?;
        let b = f.json.pointer(path)?.as_f64()?;
        (b > 0.0).then(|| a / b)
    };
    let ratios = json!({
        "last_delivery_p50": ratio("/last_delivery_latency_ms/p50"),
        "last_delivery_p99": ratio("/last_delivery_latency_ms/p99"),
        "delivery_p99": ratio("/delivery_latency_ms/p99"),
        "deliveries_per_sec": ratio("/deliveries_per_sec"),
        "server_cpu_seconds": ratio("/server/cpu_seconds"),
    });
    let x = |k: &str| ratios[k].as_f64().map_or("n/a".into(), |v| format!("{v:.2}×"));
    let line = format!(
        "last delivery p50 {}  p99 {}  per-delivery p99 {}  deliveries/s {}  server cpu {}",
        x("last_delivery_p50"),
        x("last_delivery_p99"),
        x("delivery_p99"),
        x("deliveries_per_sec"),
        x("server_cpu_seconds"),
    );
    r.beside_floor(
        f,
        "the same load against a minimal server (same framing and push sizes)",
        ratios,
        &line,
    )
}

async fn measure(args: &FanoutArgs, server: &Server) -> anyhow::Result<Report> {
    let creds = rehearsal_mock_server::server::Credentials::default_seed();
    let rest = Rest::new(server, &creds.account_sid, &creds.auth_token)?;
    let conversation = rest.create_conversation("bench-fanout").await?;
    let identities: Vec<String> = (0..args.subscribers.min(MAX_IDENTITIES)).map(|i| format!("bench-{i:05}")).collect();
    rest.add_participants(&conversation, &identities).await?;
    let tokens: Vec<String> = identities.iter().map(|i| super::token_for(i)).collect();

    let warmup = (args.warmup.as_secs_f64() * args.rate).round() as usize;
    let measured = ((args.duration.as_secs_f64() * args.rate).round() as usize).max(1);
    let total = warmup + measured;
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        start_us: AtomicU64::new(u64::MAX / 2),
        period_us: 1e6 / args.rate,
        total,
        warmup,
        slots: (0..total).map(|_| (AtomicU32::new(0), AtomicU64::new(0))).collect(),
        frames: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
        list_payload_bytes: AtomicU64::new(0),
        other_payload_bytes: AtomicU64::new(0),
    });

    // Connect and subscribe every subscriber.
    let mut config = Config::new(server.twilsock_url());
    config.ack = !args.no_ack;
    config.timeout = Duration::from_secs(30);
    let connect_started = Instant::now();
    let (mut subs, _subscriber_thread) = match args.generator {
        Generator::Client => (connect_clients(args, &config, &tokens, &conversation, &shared).await?, None),
        Generator::Lean => {
            let threads = (0..args.subscriber_threads)
                .map(|_| lean::SubscriberThread::start())
                .collect::<anyhow::Result<Vec<_>>>()?;
            (
                connect_lean(args, &config, &tokens, &conversation, &shared, &threads).await?,
                Some(threads),
            )
        }
    };
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let idle = server.usage();

    // Publish, open loop.
    let start = Instant::now() + Duration::from_millis(100);
    shared
        .start_us
        .store(start.duration_since(shared.t0).as_micros() as u64, Ordering::Relaxed);
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let path = format!("/v1/Conversations/{conversation}/Messages");
    let padding = "x".repeat(args.payload - 11);
    let mut at_measure_start: Option<(Instant, Option<Usage>, Option<Usage>)> = None;
    let mut sends = Vec::with_capacity(total);
    for seq in 0..total {
        let due = start + Duration::from_micros((seq as f64 * shared.period_us) as u64);
        tokio::time::sleep_until(due.into()).await;
        if seq == warmup {
            at_measure_start = Some((Instant::now(), server.usage(), super::server::usage(std::process::id())));
        }
        let permit = in_flight.clone().acquire_owned().await.context("publish slots")?;
        let (rest, path, errors, first_error) = (rest.clone(), path.clone(), errors.clone(), first_error.clone());
        let body = format!("{seq:010} {padding}");
        sends.push(tokio::spawn(async move {
            if let Err(e) = rest.post(&path, &[("Author", "bench-publisher"), ("Body", &body)]).await {
                errors.fetch_add(1, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(format!("{e:#}"));
            }
            drop(permit);
        }));
    }
    for s in sends {
        let _ = s.await;
    }
    // Wait (bounded) for the last deliveries.
    let expected = (total * args.subscribers) as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(10).max(args.duration / 2);
    while shared.deliveries.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end = Instant::now();
    let (measure_start, server_before, self_before) = at_measure_start.unwrap_or((start, idle, None));
    let server_after = server.usage();
    let self_after = super::server::usage(std::process::id());

    // Results.
    let mut per_delivery = histogram();
    let mut merged = std::collections::HashSet::new();
    let (mut lost, mut duplicated, mut out_of_order, mut unexpected) = (0u64, 0u64, 0u64, 0u64);
    let mut disconnected = 0u64;
    let mut first_disconnect = None;
    for (subscriber, sub) in &mut subs {
        let s = sub.lock().unwrap_or_else(|e| e.into_inner());
        if merged.insert(Arc::as_ptr(&s.hist)) {
            per_delivery
                .add(&*s.hist.lock().unwrap_or_else(|e| e.into_inner()))
                .context("merging histograms")?;
        }
        lost += total as u64 - s.received;
        duplicated += s.duplicated;
        out_of_order += s.out_of_order;
        unexpected += s.unexpected;
        if let Some(why) = subscriber.ended() {
            disconnected += 1;
            first_disconnect.get_or_insert(why);
        }
    }
    let mut last_delivery = histogram();
    let mut last_at = 0u64;
    for seq in warmup..total {
        let (count, last) = &shared.slots[seq];
        if count.load(Ordering::Acquire) as usize == args.subscribers {
            let l = last.load(Ordering::Relaxed);
            last_at = last_at.max(l);
            let _ = last_delivery.record(l.saturating_sub(shared.due_us(seq)).max(1));
        }
    }
    let measured_deliveries: u64 = (warmup..total).map(|s| u64::from(shared.slots[s].0.load(Ordering::Relaxed))).sum();
    let window_start_us = shared.due_us(warmup);
    let window = if last_at > window_start_us {
        (last_at - window_start_us) as f64 / 1e6
    } else {
        end.duration_since(measure_start).as_secs_f64()
    };
    let deliveries_per_sec = measured_deliveries as f64 / window.max(1e-9);
    let wall = end.duration_since(measure_start).as_secs_f64();
    let frames = shared.frames.load(Ordering::Relaxed);
    let publish_errors = errors.load(Ordering::Relaxed);
    let cpu = |a: Option<Usage>, b: Option<Usage>| a.zip(b).map(|(a, b)| b.cpu_seconds - a.cpu_seconds);
    let server_cpu = cpu(server_before, server_after);
    let bench_cpu = cpu(self_before, self_after);

    let mut failures = Vec::new();
    for (what, n) in [
        ("lost", lost),
        ("duplicated", duplicated),
        ("out_of_order", out_of_order),
        ("unexpected", unexpected),
        ("publish_errors", publish_errors),
        ("disconnected", disconnected),
    ] {
        if n > 0 {
            failures.push(format!("{what}: {n}"));
        }
    }
    if let Some(e) = first_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        failures.push(format!("first publish error: {e}"));
    }
    if let Some(why) = first_disconnect {
        failures.push(format!("first disconnect: {why}"));
    }
    let json = json!({
        "bench": "fanout",
        "subscribers": args.subscribers,
        "identities": identities.len(),
        "objects": match args.objects { Objects::Conversation => "conversation", Objects::Messages => "messages" },
        "acks": !args.no_ack,
        "generator": match args.generator { Generator::Lean => "lean", Generator::Client => "client" },
        "subscriber_threads": (args.generator == Generator::Lean).then_some(args.subscriber_threads),
        "rate": args.rate,
        "duration_s": args.duration.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "payload_bytes": args.payload,
        "messages_sent": total as u64 - publish_errors,
        "messages_measured": measured,
        "deliveries": shared.deliveries.load(Ordering::Relaxed),
        "deliveries_expected": expected,
        "offered_deliveries_per_sec": args.rate * args.subscribers as f64,
        "deliveries_per_sec": deliveries_per_sec.round(),
        "frames_received": frames,
        "push_payload_bytes": {
            "list": shared.list_payload_bytes.load(Ordering::Relaxed),
            "other": shared.other_payload_bytes.load(Ordering::Relaxed),
        },
        "delivery_latency_ms": latency_json(&per_delivery),
        "last_delivery_latency_ms": latency_json(&last_delivery),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "unexpected": unexpected,
        "publish_errors": publish_errors,
        "disconnected": disconnected,
        "connect_s": connect_secs,
        "server": {
            "pid": server.pid,
            "start_ms": server.start_ms,
            "cpu_seconds": server_cpu,
            "cpu_utilization": server_cpu.map(|c| c / wall.max(1e-9)),
            "rss_bytes": server_after.map(|u| u.rss_bytes),
            "rss_bytes_subscribed": idle.map(|u| u.rss_bytes),
        },
        "bench_cpu_seconds": bench_cpu,
        "machine": super::machine(),
        "ok": failures.is_empty(),
    });
    let mb = |u: Option<Usage>| u.map_or("n/a".into(), |u| format!("{:.1} MiB", u.rss_bytes as f64 / 1048576.0));
    let text = format!(
        "fanout: {} subscribers ({} identities, {}), {} msg/s for {:?} (+{:?} warm-up), {} B bodies\n\
         connected and subscribed in {:.2} s\n\
         deliveries       {} of {} ({:.0}/s measured; offered {:.0}/s), {} frames\n\
         per delivery     {}\n\
         last delivery    {}\n\
         lost {}  duplicated {}  out of order {}  publish errors {}  disconnected {}\n\
         server           start {}  cpu {}  rss {} (subscribed, before publishing {})\n\
         bench process    cpu {}\n",
        args.subscribers,
        identities.len(),
        if args.objects == Objects::Conversation {
            "document+list+roster"
        } else {
            "list only"
        },
        args.rate,
        args.duration,
        args.warmup,
        args.payload,
        connect_secs,
        shared.deliveries.load(Ordering::Relaxed),
        expected,
        deliveries_per_sec,
        args.rate * args.subscribers as f64,
        frames,
        latency_text(&per_delivery),
        latency_text(&last_delivery),
        lost,
        duplicated,
        out_of_order,
        publish_errors,
        disconnected,
        server.start_ms.map_or("n/a".into(), |m| format!("{m:.1} ms")),
        server_cpu.map_or("n/a".into(), |c| format!(
            "{c:.2} s ({:.0}% of one core)",
            c / wall.max(1e-9) * 100.0
        )),
        mb(server_after),
        mb(idle),
        bench_cpu.map_or("n/a".into(), |c| format!(
            "{c:.2} s ({:.0}% of one core)",
            c / wall.max(1e-9) * 100.0
        )),
    );
    drop(subs);
    Ok(Report {
        ok: failures.is_empty(),
        failures,
        json,
        text,
    })
}

/// Subscribers as full `rehearsal-client` connections (`--generator client`).
async fn connect_clients(
    args: &FanoutArgs,
    config: &Config,
    tokens: &[String],
    conversation: &str,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<(Subscriber, Arc<Mutex<Sub>>)>> {
    let subs: Vec<anyhow::Result<(Subscriber, Arc<Mutex<Sub>>)>> = futures_util::stream::iter(0..args.subscribers)
        .map(|i| {
            let shared = shared.clone();
            let token = &tokens[i % tokens.len()];
            let objects = args.objects;
            async move {
                let sub = Arc::new(Mutex::new(Sub::new(shared.total, Arc::new(Mutex::new(histogram())))));
                let messages_sid = Arc::new(Mutex::new(String::new()));
                let (h_sub, h_sid) = (sub.clone(), messages_sid.clone());
                // The messages list's id is known only after the first request; until then no
                // push of it can arrive (nothing is subscribed).
                let mut sid_cache = String::new();
                let client = Client::connect_with(config, token, move |n| {
                    if sid_cache.is_empty() {
                        sid_cache = h_sid.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    }
                    on_push(&n.payload, n.received, &sid_cache, &shared, &h_sub);
                })
                .await
                .with_context(|| format!("subscriber {i}: connect"))?;
                let objs = client.conversation(conversation).await.with_context(|| format!("subscriber {i}"))?;
                *messages_sid.lock().unwrap_or_else(|e| e.into_inner()) = objs.messages.clone();
                match objects {
                    Objects::Conversation => {
                        client
                            .open_conversation(conversation)
                            .await
                            .with_context(|| format!("subscriber {i}: open"))?;
                    }
                    Objects::Messages => {
                        let d = client.descriptor("list", &objs.messages).await?;
                        client
                            .subscribe(&d.sid, "list", d.last_event_id)
                            .await
                            .with_context(|| format!("subscriber {i}: subscribe"))?;
                    }
                }
                Ok((Subscriber::Client(Box::new(client)), sub))
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    subs.into_iter().collect()
}

/// Lean subscribers (`--generator lean`), dealt out over `threads`. One full client first reads the objects'
/// ids and event ids (the same for every subscriber: nothing is published yet), then every
/// subscriber sends the subscription request the SDK would send for them.
async fn connect_lean(
    args: &FanoutArgs,
    config: &Config,
    tokens: &[String],
    conversation: &str,
    shared: &Arc<Shared>,
    threads: &[lean::SubscriberThread],
) -> anyhow::Result<Vec<(Subscriber, Arc<Mutex<Sub>>)>> {
    let (probe, _) = Client::connect(config, &tokens[0]).await.context("the probe connection")?;
    let objs = probe.conversation(conversation).await.context("the probe connection")?;
    let mut requests = Vec::new();
    let kinds: &[(&str, &str)] = match args.objects {
        Objects::Messages => &[("list", &objs.messages)],
        Objects::Conversation => &[("document", &objs.document), ("list", &objs.messages), ("map", &objs.roster)],
    };
    for (kind, sid) in kinds {
        let d = probe.descriptor(kind, sid).await.context("the probe connection")?;
        requests.push(d.subscription(kind));
    }
    probe.close().await;
    let requests = serde_json::Value::Array(requests);
    let url = config.url.clone();
    let hists: Vec<_> = threads.iter().map(|_| Arc::new(Mutex::new(histogram()))).collect();
    let subs: Vec<anyhow::Result<(Subscriber, Arc<Mutex<Sub>>)>> = futures_util::stream::iter(0..args.subscribers)
        .map(|i| {
            let thread = i % threads.len();
            let sub = Arc::new(Mutex::new(Sub::new(shared.total, hists[thread].clone())));
            let (h_sub, shared) = (sub.clone(), shared.clone());
            let (url, token, requests, sid) = (
                url.clone(),
                tokens[i % tokens.len()].clone(),
                requests.clone(),
                objs.messages.clone(),
            );
            let (ack, wait) = (!args.no_ack, config.timeout);
            let (ready, subscribed) = tokio::sync::oneshot::channel::<Result<(), String>>();
            let task = threads[thread].handle().spawn(async move {
                let mut on = move |payload: &[u8], received| on_push(payload, received, &sid, &shared, &h_sub);
                match lean::Lean::subscribe(&url, &token, requests, ack, wait, &mut on).await {
                    Ok(lean) => {
                        let _ = ready.send(Ok(()));
                        lean.run(on).await
                    }
                    Err(e) => {
                        let _ = ready.send(Err(format!("{e:#}")));
                        Err(e)
                    }
                }
            });
            async move {
                match subscribed.await {
                    Ok(Ok(())) => Ok((Subscriber::Lean(task), sub)),
                    Ok(Err(e)) => Err(anyhow::anyhow!("subscriber {i}: {e}")),
                    Err(_) => Err(anyhow::anyhow!("subscriber {i}: its task ended before subscribing")),
                }
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    subs.into_iter().collect()
}
