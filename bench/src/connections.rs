//! `rehearsal bench connections`: what an idle, subscribed connection costs the server.
//!
//! The conversation and its participants are created first, so that the baseline already holds
//! them; then N connections each `init`, read the Configuration and open the conversation as the
//! SDK does (document, message list and roster, one subscription request). The server's RSS
//! after, minus before, over N is the memory per connection (socket buffers in the kernel are
//! not in RSS and not counted).
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use rehearsal_client::{Client, Config};
use serde_json::json;

use super::server::{Rest, Server};
use super::{MAX_IDENTITIES, Report, Target};

#[derive(Args)]
pub struct ConnectionsArgs {
    /// Connections to open (identities are shared beyond 1,000, the participant limit).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Also open the same connections, in this invocation, to the minimal server of
    /// `fanout --floor` (`bench/src/floor.rs`) and report Rehearsal's bytes per connection as a ratio
    /// to its (`floor` and `ratios` in the JSON).
    #[arg(long)]
    floor: bool,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: ConnectionsArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.n > 0, "--n must be at least 1");
    let server = Server::get(&args.target).await?;
    let result = measure(&args, &server).await;
    let tail = server.output_tail();
    server.stop().await;
    let report = result.with_context(|| format!("server output:\n{tail}"))?;
    if !args.floor {
        return Ok(report);
    }
    let floor = Server::spawn_floor(0, 0).await?;
    let result = measure(&args, &floor).await;
    let tail = floor.output_tail();
    floor.stop().await;
    let floor_report = result.with_context(|| format!("floor server output:\n{tail}"))?;
    Ok(with_floor(report, floor_report))
}

/// Rehearsal's report with the floor's beside it (`floor`) and the Rehearsal/floor ratio of
/// bytes per connection (`ratios`, null when the floor's is not positive).
fn with_floor(r: Report, f: Report) -> Report {
    let per = |j: &serde_json::Value| j["bytes_per_connection"].as_f64();
    let ratio = per(&r.json).zip(per(&f.json)).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
    let line = format!("bytes per connection {}", ratio.map_or("n/a".into(), |x| format!("{x:.2}×")));
    r.beside_floor(
        f,
        "the same connections to a minimal server",
        json!({ "bytes_per_connection": ratio }),
        &line,
    )
}

async fn measure(args: &ConnectionsArgs, server: &Server) -> anyhow::Result<Report> {
    let creds = rehearsal_mock_server::server::Credentials::default_seed();
    let rest = Rest::new(server, &creds.account_sid, &creds.auth_token)?;
    let conversation = rest.create_conversation("bench-connections").await?;
    let identities: Vec<String> = (0..args.n.min(MAX_IDENTITIES)).map(|i| format!("bench-{i:05}")).collect();
    rest.add_participants(&conversation, &identities).await?;
    let tokens: Vec<String> = identities.iter().map(|i| super::token_for(i)).collect();
    // Warm the server's lazy state (the conversation's Sync objects) with one connection that
    // is not counted, so the baseline does not charge it to the first connection.
    let mut config = Config::new(server.twilsock_url());
    config.timeout = Duration::from_secs(30);
    let (warm, _notes) = Client::connect(&config, &tokens[0]).await.context("warm-up connection")?;
    warm.open_conversation(&conversation).await.context("warm-up open")?;
    warm.close().await;
    let before = server.usage();

    let started = Instant::now();
    let clients: Vec<anyhow::Result<Client>> = futures_util::stream::iter(0..args.n)
        .map(|i| {
            let (config, conversation, token) = (&config, &conversation, &tokens[i % tokens.len()]);
            async move {
                // Pushes are counted, not kept: an idle connection gets none anyway.
                let client = Client::connect_with(config, token, |_| {})
                    .await
                    .with_context(|| format!("connection {i}"))?;
                client
                    .open_conversation(conversation)
                    .await
                    .with_context(|| format!("connection {i}: open"))?;
                Ok(client)
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let clients: Vec<Client> = clients.into_iter().collect::<anyhow::Result<_>>()?;
    let connect_secs = started.elapsed().as_secs_f64();
    let after = server.usage();
    let open = clients.iter().filter(|c| c.is_open()).count();

    let per_conn = before
        .zip(after)
        .map(|(b, a)| (a.rss_bytes as f64 - b.rss_bytes as f64) / args.n as f64);
    let mut failures = Vec::new();
    if open != args.n {
        failures.push(format!("{} of {} connections closed", args.n - open, args.n));
    }
    let json = json!({
        "bench": "connections",
        "connections": args.n,
        "identities": identities.len(),
        "open": open,
        "connect_s": connect_secs,
        "server": {
            "pid": server.pid,
            "start_ms": server.start_ms,
            "rss_bytes_before": before.map(|u| u.rss_bytes),
            "rss_bytes_after": after.map(|u| u.rss_bytes),
            "cpu_seconds": after.map(|u| u.cpu_seconds),
        },
        "bytes_per_connection": per_conn.map(f64::round),
        "machine": super::machine(),
        "ok": failures.is_empty(),
    });
    let text = format!(
        "connections: {} subscribed connections ({} identities) opened in {:.2} s, {} open\n\
         server rss       before {}  after {}\n\
         per connection   {}\n",
        args.n,
        identities.len(),
        connect_secs,
        open,
        before.map_or("n/a".into(), |u| format!("{:.1} MiB", u.rss_bytes as f64 / 1048576.0)),
        after.map_or("n/a".into(), |u| format!("{:.1} MiB", u.rss_bytes as f64 / 1048576.0)),
        per_conn.map_or("n/a (no child process)".into(), |b| format!(
            "{:.0} bytes ({:.2} KiB)",
            b,
            b / 1024.0
        )),
    );
    drop(clients);
    Ok(Report {
        ok: failures.is_empty(),
        failures,
        json,
        text,
    })
}
