//! `rehearsal bench soak`: rounds of many subscribed connections opened, fanned out to and
//! killed, checking that the server returns to where it was after each round.
//!
//! A round: N connections each `init` and open one conversation as the SDK does (document,
//! message list and roster, one subscription request); M messages are posted over REST and every
//! connection must receive each exactly once; then every connection is killed abruptly (no
//! twilsock close, no WebSocket close: what a network drop or a killed browser tab looks like).
//! After each round the control plane must list no session of the tenant, and the server's RSS
//! (`VmRSS`) must come back to within the tolerance above its value after the first round (the
//! first round pays for what stays: the conversation's Sync state, allocator pools, buffers).
//! Lower is fine: the allocator gives pages back lazily, so a later round may well end lower.
//! The RSS after a round is the least of a few samples over half a second once every session
//! is gone, so that one sample caught mid-purge does not decide.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use rehearsal_client::{Client, Config, sync_events};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::server::{Rest, Server};
use super::{MAX_IDENTITIES, Report, Target, parse_duration};

#[derive(Args)]
pub struct SoakArgs {
    /// Subscribed connections per round (identities are shared beyond 1,000, the participant
    /// limit).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Rounds of open, fan out, kill.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Messages fanned out to every connection per round.
    #[arg(long, default_value_t = 3)]
    messages: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// How far the RSS after a round may be above the RSS after the first round, in percent.
    #[arg(long, default_value_t = 10.0)]
    rss_tolerance_pct: f64,
    /// How long deliveries, and the sessions' disappearance after the kill, may take per round.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    wait: Duration,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!((1..=64).contains(&args.messages), "--messages must be from 1 to 64");
    let server = Server::get(&args.target).await?;
    let result = soak(&args, &server).await;
    let tail = server.output_tail();
    server.stop().await;
    result.with_context(|| format!("server output:\n{tail}"))
}

/// One connection's view of a round's messages: which it got (bit k for message k) and how
/// many it got twice.
#[derive(Default)]
struct Seen {
    mask: u64,
    duplicated: u64,
}

/// What every connection of a round shares: the round's message list, and a count of
/// connections that have all messages, with a notification each time it grows.
struct Round {
    messages_sid: Mutex<String>,
    expected_mask: u64,
    complete: AtomicUsize,
    progress: Notify,
}

/// Counts a push if it adds one of this round's messages (`soak <round> <k>`) to the list.
fn on_push(payload: &[u8], round: &Round, tag: &str, seen: &Mutex<Seen>) {
    let Ok(events) = sync_events(payload) else { return };
    let list = round.messages_sid.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for e in events {
        if e.event_type != "list_item_added" || e.object_sid != list {
            continue;
        }
        let body = e
            .item_data
            .as_ref()
            .and_then(|d| d.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(k) = body.strip_prefix(tag).and_then(|k| k.parse::<u32>().ok()).filter(|k| *k < 64) else {
            continue;
        };
        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
        let bit = 1u64 << k;
        if s.mask & bit != 0 {
            s.duplicated += 1;
            continue;
        }
        s.mask |= bit;
        if s.mask == round.expected_mask {
            round.complete.fetch_add(1, Ordering::AcqRel);
            round.progress.notify_one();
        }
    }
}

/// The tenant's live sessions, as the control plane lists them.
async fn sessions_left(http: &reqwest::Client, server: &Server, account: &str) -> anyhow::Result<usize> {
    let mut req = http.get(format!("{}/_rehearsal/v1/tenants/{account}/connections", server.url));
    if let Some(t) = &server.control_token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.context("control: connections")?;
    let status = res.status();
    let body: Value = res.json().await.context("control: connections body")?;
    if !status.is_success() {
        bail!("control: connections: HTTP {status}: {body}");
    }
    body["connections"]
        .as_array()
        .map(Vec::len)
        .context("control: no `connections` list")
}

/// The server's RSS once it stops falling: the least of samples 100 ms apart, taken until five
/// in a row brought no new low (at most 3 s). Memory the allocator is about to give back is not
/// memory the round kept, and on a busy machine giving it back takes longer than a fixed window.
async fn settled_rss(server: &Server) -> Option<u64> {
    const QUIET_SAMPLES: u32 = 5;
    const MOST: Duration = Duration::from_secs(3);
    let started = tokio::time::Instant::now();
    let mut least = server.usage().map(|u| u.rss_bytes);
    let mut since_low = 0;
    while since_low < QUIET_SAMPLES && started.elapsed() < MOST {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = server.usage().map(|u| u.rss_bytes);
        match (least, now) {
            (Some(a), Some(b)) if b < a => {
                least = Some(b);
                since_low = 0;
            }
            (None, Some(b)) => {
                least = Some(b);
                since_low = 0;
            }
            _ => since_low += 1,
        }
    }
    least
}

async fn soak(args: &SoakArgs, server: &Server) -> anyhow::Result<Report> {
    let creds = rehearsal_mock_server::server::Credentials::default_seed();
    let rest = Rest::new(server, &creds.account_sid, &creds.auth_token)?;
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let conversation = rest.create_conversation("bench-soak").await?;
    let identities: Vec<String> = (0..args.connections.min(MAX_IDENTITIES)).map(|i| format!("soak-{i:05}")).collect();
    rest.add_participants(&conversation, &identities).await?;
    let tokens: Vec<String> = identities.iter().map(|i| super::token_for(i)).collect();
    let mut config = Config::new(server.twilsock_url());
    config.timeout = Duration::from_secs(60);
    let expected_mask = if args.messages == 64 {
        u64::MAX
    } else {
        (1u64 << args.messages) - 1
    };
    let before = server.usage();

    let mut rounds = Vec::new();
    let mut failures = Vec::new();
    let mut first_rss: Option<u64> = None;
    for r in 0..args.rounds {
        let tag = format!("soak {r} ");
        let round = Arc::new(Round {
            messages_sid: Mutex::new(String::new()),
            expected_mask,
            complete: AtomicUsize::new(0),
            progress: Notify::new(),
        });

        // Open and subscribe every connection.
        let started = Instant::now();
        let opened: Vec<anyhow::Result<(Client, Arc<Mutex<Seen>>)>> = futures_util::stream::iter(0..args.connections)
            .map(|i| {
                let (config, conversation, token) = (&config, &conversation, &tokens[i % tokens.len()]);
                let (round, tag) = (round.clone(), tag.clone());
                async move {
                    let seen = Arc::new(Mutex::new(Seen::default()));
                    let (h_round, h_seen) = (round.clone(), seen.clone());
                    let client = Client::connect_with(config, token, move |n| on_push(&n.payload, &h_round, &tag, &h_seen))
                        .await
                        .with_context(|| format!("round {r}, connection {i}: connect"))?;
                    let open = client
                        .open_conversation(conversation)
                        .await
                        .with_context(|| format!("round {r}, connection {i}: open"))?;
                    round
                        .messages_sid
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone_from(&open.messages.sid);
                    Ok((client, seen))
                }
            })
            .buffer_unordered(args.connect_concurrency.max(1))
            .collect()
            .await;
        let clients: Vec<(Client, Arc<Mutex<Seen>>)> = opened.into_iter().collect::<anyhow::Result<_>>()?;
        let connect_s = started.elapsed().as_secs_f64();
        let open_rss = server.usage().map(|u| u.rss_bytes);

        // Fan out.
        let started = Instant::now();
        let path = format!("/v1/Conversations/{conversation}/Messages");
        for k in 0..args.messages {
            rest.post(&path, &[("Author", "soak-publisher"), ("Body", &format!("{tag}{k}"))])
                .await
                .with_context(|| format!("round {r}: posting message {k}"))?;
        }
        let deadline = tokio::time::Instant::now() + args.wait;
        loop {
            // Registered before the check, so a completion between the two is not missed.
            let progressed = round.progress.notified();
            if round.complete.load(Ordering::Acquire) >= args.connections {
                break;
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                break;
            }
        }
        let fanout_s = started.elapsed().as_secs_f64();
        let (mut delivered, mut duplicated, mut incomplete) = (0u64, 0u64, 0usize);
        for (_, seen) in &clients {
            let s = seen.lock().unwrap_or_else(|e| e.into_inner());
            delivered += u64::from(s.mask.count_ones());
            duplicated += s.duplicated;
            if s.mask != expected_mask {
                incomplete += 1;
            }
        }
        let expected = (args.connections * args.messages) as u64;
        if delivered != expected || duplicated != 0 {
            failures.push(format!(
                "round {r}: {delivered} of {expected} deliveries, {duplicated} duplicated, {incomplete} connections incomplete"
            ));
        }

        // Kill every connection, then wait for the server to notice them all.
        let started = Instant::now();
        for (client, _) in &clients {
            client.disconnect();
        }
        drop(clients);
        let deadline = Instant::now() + args.wait;
        let mut left = sessions_left(&http, server, &creds.account_sid).await?;
        while left > 0 && Instant::now() < deadline {
            // The control plane has no "session ended" stream to wait on; a short poll, bounded.
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = sessions_left(&http, server, &creds.account_sid).await?;
        }
        let cleanup_s = started.elapsed().as_secs_f64();
        if left > 0 {
            failures.push(format!(
                "round {r}: {left} sessions still listed {:.1} s after the kill",
                args.wait.as_secs_f64()
            ));
        }
        let rss = settled_rss(server).await;
        let deviation_pct = match (first_rss, rss) {
            (Some(first), Some(now)) => Some((now as f64 - first as f64) / first as f64 * 100.0),
            _ => None,
        };
        if first_rss.is_none() {
            first_rss = rss;
        }
        if let Some(d) = deviation_pct
            && d > args.rss_tolerance_pct
        {
            failures.push(format!(
                "round {r}: RSS {:.1} MiB is {d:+.1} % from the first round's (tolerance +{} %)",
                rss.unwrap_or(0) as f64 / 1048576.0,
                args.rss_tolerance_pct
            ));
        }
        rounds.push(json!({
            "round": r,
            "connect_s": connect_s,
            "fanout_s": fanout_s,
            "cleanup_s": cleanup_s,
            "deliveries": delivered,
            "deliveries_expected": expected,
            "duplicated": duplicated,
            "sessions_left": left,
            "rss_bytes_open": open_rss,
            "rss_bytes_after": rss,
            "rss_deviation_pct": deviation_pct,
        }));
    }

    let mib = |b: Option<u64>| b.map_or("n/a".to_owned(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
    let mut text = format!(
        "soak: {} rounds of {} subscribed connections ({} identities), {} messages each, killed abruptly\n\
         server rss before {}\n",
        args.rounds,
        args.connections,
        identities.len(),
        args.messages,
        mib(before.map(|u| u.rss_bytes)),
    );
    for r in &rounds {
        text.push_str(&format!(
            "round {}: open {:.2} s (rss {}), fan-out {:.2} s ({}/{} delivered, {} duplicated), \
             all sessions gone {:.2} s after the kill ({} left), rss after {} ({})\n",
            r["round"],
            r["connect_s"].as_f64().unwrap_or(0.0),
            mib(r["rss_bytes_open"].as_u64()),
            r["fanout_s"].as_f64().unwrap_or(0.0),
            r["deliveries"],
            r["deliveries_expected"],
            r["duplicated"],
            r["cleanup_s"].as_f64().unwrap_or(0.0),
            r["sessions_left"],
            mib(r["rss_bytes_after"].as_u64()),
            r["rss_deviation_pct"]
                .as_f64()
                .map_or("first round".to_owned(), |d| format!("{d:+.1} % from the first round")),
        ));
    }
    let json = json!({
        "bench": "soak",
        "connections": args.connections,
        "identities": identities.len(),
        "rounds": rounds,
        "messages": args.messages,
        "rss_tolerance_pct": args.rss_tolerance_pct,
        "server": {
            "pid": server.pid,
            "start_ms": server.start_ms,
            "rss_bytes_before": before.map(|u| u.rss_bytes),
            "cpu_seconds": server.usage().map(|u| u.cpu_seconds),
        },
        "machine": super::machine(),
        "failures": failures,
        "ok": failures.is_empty(),
    });
    Ok(Report {
        json,
        text,
        ok: failures.is_empty(),
        failures,
    })
}
