//! `rehearsal bench pagination`: page reads of a deep history, end to end, over the REST API
//! (`GET /v1/Conversations/{sid}/Messages`, what the helper libraries call) and over the Sync
//! item queries the SDK sends through twilsock (`GET {messages list}/Items?From=&PageSize=&Order=`).
//!
//! The history is generated through the control plane (one write per message, as the REST API
//! would do them). Then, for each transport and each position — newest page, a random page,
//! oldest page — `samples` reads one after the other (closed loop: each read's latency is the
//! request from send to parsed body); the first tenth of each series is warm-up and not timed.
//! Every page is checked: the exact indexes it must hold, in order, and its page links/tokens.
//! Before that, a full walk over REST (`next_page_url` to the end) checks that the history reads
//! back complete, each message once and in order; its pages provide the random REST positions
//! (page tokens are opaque, so a random REST page is one the server handed out).
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use rand::Rng;
use rehearsal_client::{Client, Config, Order};
use serde::Deserialize;
use serde_json::json;

use super::server::{Rest, Server};
use super::{Report, Target, histogram, latency_json, latency_text};

#[derive(Args)]
pub struct PaginationArgs {
    /// Messages in the conversation.
    #[arg(long, default_value_t = 100_000)]
    history: u64,
    /// Messages per page (REST allows up to 100; Sync item queries too).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    page_size: u32,
    /// Timed reads per transport and position (plus a tenth as warm-up).
    #[arg(long, default_value_t = 1000)]
    samples: u64,
    #[command(flatten)]
    pub target: Target,
}

/// Messages generated per control-plane call.
const GENERATE_CHUNK: u64 = 100_000;

#[derive(Deserialize)]
struct RestPage {
    messages: Vec<RestMessage>,
    meta: RestMeta,
}

#[derive(Deserialize)]
struct RestMessage {
    index: u64,
}

#[derive(Deserialize)]
struct RestMeta {
    next_page_url: Option<String>,
    previous_page_url: Option<String>,
}

/// The indexes a page must hold: `first`, then `len` more in `order`.
fn expected(first: u64, len: u64, order: Order) -> Vec<u64> {
    match order {
        Order::Asc => (first..first + len).collect(),
        Order::Desc => (0..len).map(|i| first - i).collect(),
    }
}

pub async fn run(args: PaginationArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.history >= u64::from(args.page_size),
        "--history must hold at least one full page"
    );
    anyhow::ensure!(args.samples > 0, "--samples must be at least 1");
    let server = Server::get(&args.target).await?;
    let result = measure(&args, &server).await;
    let tail = server.output_tail();
    server.stop().await;
    result.with_context(|| format!("server output:\n{tail}"))
}

/// Collects page-check failures (kept short: the first few are enough to debug).
#[derive(Default)]
struct Checks {
    pages: u64,
    failed: u64,
    first: Vec<String>,
}

impl Checks {
    fn check(&mut self, what: &str, got: &[u64], want: &[u64]) {
        self.pages += 1;
        if got != want {
            self.fail(format!(
                "{what}: got {} indexes {:?}…, want {} from {:?}",
                got.len(),
                got.first(),
                want.len(),
                want.first()
            ));
        }
    }

    fn fail(&mut self, msg: String) {
        self.failed += 1;
        if self.first.len() < 5 {
            self.first.push(msg);
        }
    }
}

async fn measure(args: &PaginationArgs, server: &Server) -> anyhow::Result<Report> {
    let creds = rehearsal_mock_server::server::Credentials::default_seed();
    let rest = Rest::new(server, &creds.account_sid, &creds.auth_token)?;
    let conversation = rest.create_conversation("bench-pages").await?;
    let reader = "bench-reader".to_owned();
    rest.add_participants(&conversation, std::slice::from_ref(&reader)).await?;

    let generate_started = Instant::now();
    let mut left = args.history;
    while left > 0 {
        let n = left.min(GENERATE_CHUNK);
        rest.control(
            &format!("/tenants/{}/actors", creds.account_sid),
            &json!({"as": null, "action": "generate_messages", "conversation": conversation, "count": n, "authors": ["bench-author"]}),
        )
        .await
        .context("generating the history (control plane)")?;
        left -= n;
    }
    let generate_s = generate_started.elapsed().as_secs_f64();
    let h = args.history;
    let p = u64::from(args.page_size);
    let warm = (args.samples / 10).max(1);
    let mut checks = Checks::default();
    let list = format!("{}/v1/Conversations/{conversation}/Messages", rest.base);

    // The full walk over REST: completeness, and the page URLs for random positions.
    let walk_started = Instant::now();
    let mut walk = histogram();
    let mut url = Some(format!("{list}?PageSize={p}&Order=asc"));
    let mut next_index = 0u64;
    let mut pages: Vec<(String, u64)> = Vec::new();
    let mut rng = rand::rng();
    let mut seen_pages = 0u64;
    while let Some(u) = url.take() {
        let t = Instant::now();
        let page: RestPage = serde_json::from_slice(&rest.get_bytes(&u).await?).context("REST page")?;
        let _ = walk.record(t.elapsed().as_micros() as u64);
        let got: Vec<u64> = page.messages.iter().map(|m| m.index).collect();
        let len = p.min(h - next_index.min(h));
        checks.check("REST walk", &got, &expected(next_index, len, Order::Asc));
        // Reservoir sample of the pages handed out, with the first index each must hold.
        seen_pages += 1;
        if pages.len() < args.samples as usize {
            pages.push((u.clone(), next_index));
        } else {
            let j = rng.random_range(0..seen_pages) as usize;
            if j < pages.len() {
                pages[j] = (u.clone(), next_index);
            }
        }
        next_index += got.len() as u64;
        if got.is_empty() {
            break;
        }
        url = page.meta.next_page_url;
    }
    if next_index != h {
        checks.fail(format!("REST walk read {next_index} messages of {h}"));
    }
    let walk_s = walk_started.elapsed().as_secs_f64();

    // REST positions.
    let mut rest_newest = histogram();
    let mut rest_oldest = histogram();
    let mut rest_random = histogram();
    for i in 0..args.samples + warm {
        let t = Instant::now();
        let page: RestPage = serde_json::from_slice(&rest.get_bytes(&format!("{list}?PageSize={p}&Order=desc")).await?)?;
        record(&mut rest_newest, i, warm, t);
        let got: Vec<u64> = page.messages.iter().map(|m| m.index).collect();
        checks.check("REST newest", &got, &expected(h - 1, p, Order::Desc));
        if (page.meta.next_page_url.is_some()) != (h > p) || page.meta.previous_page_url.is_some() {
            checks.fail("REST newest: page links".into());
        }
    }
    for i in 0..args.samples + warm {
        let (u, first) = &pages[(i as usize) % pages.len()];
        let t = Instant::now();
        let page: RestPage = serde_json::from_slice(&rest.get_bytes(u).await?)?;
        record(&mut rest_random, i, warm, t);
        let got: Vec<u64> = page.messages.iter().map(|m| m.index).collect();
        checks.check("REST random", &got, &expected(*first, p.min(h - first), Order::Asc));
    }
    for i in 0..args.samples + warm {
        let t = Instant::now();
        let page: RestPage = serde_json::from_slice(&rest.get_bytes(&format!("{list}?PageSize={p}&Order=asc")).await?)?;
        record(&mut rest_oldest, i, warm, t);
        let got: Vec<u64> = page.messages.iter().map(|m| m.index).collect();
        checks.check("REST oldest", &got, &expected(0, p, Order::Asc));
    }

    // Sync item queries over twilsock, as the SDK pages a conversation's messages.
    let mut config = Config::new(server.twilsock_url());
    // The first read materialises the list's Sync state (all of the history): give it time.
    config.timeout = Duration::from_secs(120);
    let (client, _notes) = Client::connect(&config, &super::token_for(&reader)).await.context("Sync reader")?;
    let objs = client.conversation(&conversation).await?;
    let t = Instant::now();
    let list_desc = client.descriptor("list", &objs.messages).await?;
    let first_read_ms = t.elapsed().as_secs_f64() * 1000.0;
    let items = list_desc.items_url.clone();
    let mut sync_newest = histogram();
    let mut sync_random = histogram();
    let mut sync_oldest = histogram();
    for i in 0..args.samples + warm {
        let t = Instant::now();
        let page = client.list_page(&items, None, args.page_size, Order::Desc).await?;
        record(&mut sync_newest, i, warm, t);
        checks.check("Sync newest", &page.indexes(), &expected(h - 1, p, Order::Desc));
        if page.has_previous || page.has_next != (h > p) {
            checks.fail(format!("Sync newest: tokens prev={} next={}", page.has_previous, page.has_next));
        }
    }
    for i in 0..args.samples + warm {
        let from = rng.random_range(0..=h - p);
        let t = Instant::now();
        let page = client.list_page(&items, Some(from), args.page_size, Order::Asc).await?;
        record(&mut sync_random, i, warm, t);
        checks.check("Sync random", &page.indexes(), &expected(from, p, Order::Asc));
        if page.has_previous != (from > 0) || page.has_next != (from + p < h) {
            checks.fail(format!(
                "Sync random From={from}: tokens prev={} next={}",
                page.has_previous, page.has_next
            ));
        }
    }
    for i in 0..args.samples + warm {
        let t = Instant::now();
        let page = client.list_page(&items, None, args.page_size, Order::Asc).await?;
        record(&mut sync_oldest, i, warm, t);
        checks.check("Sync oldest", &page.indexes(), &expected(0, p, Order::Asc));
    }
    client.close().await;
    let usage = server.usage();

    let ratio = |old: &Histogram<u64>, new: &Histogram<u64>| {
        (!old.is_empty() && !new.is_empty()).then(|| old.value_at_quantile(0.99) as f64 / new.value_at_quantile(0.99).max(1) as f64)
    };
    let rest_ratio = ratio(&rest_oldest, &rest_newest);
    let sync_ratio = ratio(&sync_oldest, &sync_newest);
    let mut failures = checks.first.clone();
    if checks.failed > checks.first.len() as u64 {
        failures.push(format!("{} page checks failed in all", checks.failed));
    }
    let json = json!({
        "bench": "pagination",
        "history": h,
        "page_size": p,
        "samples": args.samples,
        "generate_s": generate_s,
        "rest": {
            "newest_ms": latency_json(&rest_newest),
            "random_ms": latency_json(&rest_random),
            "oldest_ms": latency_json(&rest_oldest),
            "oldest_over_newest_p99": rest_ratio,
            "walk": {"pages": seen_pages, "messages": next_index, "seconds": walk_s, "page_ms": latency_json(&walk)},
        },
        "sync": {
            "newest_ms": latency_json(&sync_newest),
            "random_ms": latency_json(&sync_random),
            "oldest_ms": latency_json(&sync_oldest),
            "oldest_over_newest_p99": sync_ratio,
            "first_read_ms": first_read_ms,
        },
        "pages_checked": checks.pages,
        "pages_failed": checks.failed,
        "server": {
            "pid": server.pid,
            "start_ms": server.start_ms,
            "rss_bytes": usage.map(|u| u.rss_bytes),
            "cpu_seconds": usage.map(|u| u.cpu_seconds),
        },
        "machine": super::machine(),
        "ok": checks.failed == 0,
    });
    let text = format!(
        "pagination: {h} messages (generated in {generate_s:.1} s), pages of {p}, {} timed reads per series\n\
         REST walk        {seen_pages} pages, {next_index} messages in {walk_s:.2} s; per page {}\n\
         REST newest      {}\n\
         REST random      {}\n\
         REST oldest      {}\n\
         REST oldest/newest p99 {}\n\
         Sync first read  {first_read_ms:.1} ms (materialises the list)\n\
         Sync newest      {}\n\
         Sync random      {}\n\
         Sync oldest      {}\n\
         Sync oldest/newest p99 {}\n\
         pages checked {}  failed {}\n",
        args.samples,
        latency_text(&walk),
        latency_text(&rest_newest),
        latency_text(&rest_random),
        latency_text(&rest_oldest),
        rest_ratio.map_or("n/a".into(), |r| format!("{r:.2}")),
        latency_text(&sync_newest),
        latency_text(&sync_random),
        latency_text(&sync_oldest),
        sync_ratio.map_or("n/a".into(), |r| format!("{r:.2}")),
        checks.pages,
        checks.failed,
    );
    if checks.pages == 0 {
        bail!("no page was read");
    }
    Ok(Report {
        ok: checks.failed == 0,
        failures,
        json,
        text,
    })
}

fn record(h: &mut Histogram<u64>, i: u64, warm: u64, started: Instant) {
    if i >= warm {
        let _ = h.record((started.elapsed().as_micros() as u64).max(1));
    }
}
