//! `rehearsal bench rest`: how many REST requests a second the server answers for the request
//! the issue compares with Stoplight Prism (the mock Twilio's docs recommend): listing 50
//! conversations. Closed loop: `--connections` keep-alive connections, each sending the next
//! request as soon as the last is answered, for `--duration`; every answer is checked (200, a
//! full page of 50: parsed, or identical to the last answer that was). `--foreign` drives a server that is not Rehearsal (Stoplight Prism, from
//! `scripts/prism-bench.sh`) with the same load: nothing is created first, and any 200 answer
//! whose `conversations` is an array counts (Prism answers the spec's example, one conversation).
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::server::{Rest, Server};
use super::{Report, Target};

/// The page the bench lists (the comparison's "50 conversations").
const PAGE: usize = 50;

#[derive(Args)]
pub struct RestArgs {
    /// Concurrent keep-alive connections (Prism was measured with 16).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    duration: Duration,
    /// Requests sent (and not counted) before measuring.
    #[arg(long, default_value = "1s", value_parser = super::parse_duration_or_zero)]
    warmup: Duration,
    /// The server (`--server`) is not Rehearsal but another mock of the same API (Stoplight
    /// Prism): create nothing, and accept any 200 answer whose `conversations` is an array.
    #[arg(long, requires = "server")]
    foreign: bool,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: RestArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let server = Server::get(&args.target).await?;
    let result = measure(&args, &server).await;
    let tail = server.output_tail();
    server.stop().await;
    result.with_context(|| format!("server output:\n{tail}"))
}

/// The part of a list answer the bench checks.
#[derive(serde::Deserialize)]
struct Listed {
    conversations: Vec<serde::de::IgnoredAny>,
}

/// What one connection saw.
struct Lane {
    latencies: hdrhistogram::Histogram<u64>,
    requests: u64,
    failures: Vec<String>,
}

async fn measure(args: &RestArgs, server: &Server) -> anyhow::Result<Report> {
    let creds = rehearsal_mock_server::server::Credentials::default_seed();
    let rest = Rest::new(server, &creds.account_sid, &creds.auth_token)?;
    // At least a full page of conversations.
    let listed: Value = serde_json::from_slice(&rest.get_bytes(&format!("/v1/Conversations?PageSize={PAGE}")).await?)?;
    let have = listed["conversations"].as_array().map_or(0, Vec::len);
    if !args.foreign {
        for _ in have..PAGE {
            rest.create_conversation("bench-rest").await?;
        }
    }
    // What every answer must hold: a full page, or (another mock) whatever it answered first.
    let expected = if args.foreign { have } else { PAGE };
    anyhow::ensure!(expected > 0, "the first answer listed no conversation");
    let path = format!("/v1/Conversations?PageSize={PAGE}");

    let warm_end = Instant::now() + args.warmup;
    let end = warm_end + args.duration;
    let before = server.usage();
    let lanes = (0..args.connections).map(|_| {
        let (rest, path) = (rest.clone(), path.clone());
        tokio::spawn(async move {
            let mut lane = Lane {
                latencies: super::histogram(),
                requests: 0,
                failures: Vec::new(),
            };
            // The last answer that passed the full check: an answer equal to it byte for byte
            // passes too (nothing changes while the bench runs, so nearly all do), which keeps
            // the load generator from spending more on checking than the server on answering.
            let mut verified: Option<Vec<u8>> = None;
            loop {
                let now = Instant::now();
                if now >= end {
                    return lane;
                }
                let counted = now >= warm_end;
                let started = Instant::now();
                let answer = rest.get_bytes(&path).await;
                let took = started.elapsed();
                // Checked without building a JSON tree, so that the load generator stays light.
                match answer {
                    Ok(b) if verified.as_deref() == Some(&b[..]) => {}
                    Ok(b) => match serde_json::from_slice::<Listed>(&b) {
                        Ok(l) if l.conversations.len() == expected => verified = Some(b),
                        Ok(l) => lane
                            .failures
                            .push(format!("a page of {} conversations, not {expected}", l.conversations.len())),
                        Err(e) => lane.failures.push(format!("{e:#}")),
                    },
                    Err(e) => lane.failures.push(format!("{e:#}")),
                }
                if counted {
                    lane.requests += 1;
                    let _ = lane.latencies.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
                }
                if lane.failures.len() > 10 {
                    return lane;
                }
            }
        })
    });
    let lanes: Vec<Lane> = futures_util::future::join_all(lanes)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .context("a connection's task failed")?;
    let after = server.usage();
    let mut latencies = super::histogram();
    let mut requests = 0;
    let mut failures = Vec::new();
    for lane in lanes {
        latencies.add(&lane.latencies).context("merging histograms")?;
        requests += lane.requests;
        failures.extend(lane.failures);
    }
    failures.truncate(10);
    let secs = args.duration.as_secs_f64();
    let rate = requests as f64 / secs;
    let server_cpu = before.zip(after).map(|(b, a)| a.cpu_seconds - b.cpu_seconds);
    let json = json!({
        "bench": "rest",
        "request": format!("GET {path}"),
        "connections": args.connections,
        "duration_s": secs,
        "requests": requests,
        "requests_per_second": rate,
        "conversations_per_answer": expected,
        "foreign": args.foreign,
        "latency_ms": super::latency_json(&latencies),
        "server": { "pid": server.pid, "start_ms": server.start_ms, "cpu_seconds": server_cpu, "rss_bytes": after.map(|u| u.rss_bytes) },
        "machine": super::machine(),
        "ok": failures.is_empty(),
    });
    let text = format!(
        "rest: GET {path} over {} keep-alive connections for {} (+{} warm-up)\n\
         requests         {requests} ({rate:.0}/s), every answer a page of {expected}\n\
         latency          {}\n\
         server           cpu {}\n",
        args.connections,
        humantime(args.duration),
        humantime(args.warmup),
        super::latency_text(&latencies),
        server_cpu.map_or("n/a (no child process)".into(), |c| format!(
            "{c:.2} s ({:.0}% of one core)",
            100.0 * c / secs
        )),
    );
    Ok(Report {
        ok: failures.is_empty(),
        failures,
        json,
        text,
    })
}

fn humantime(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
