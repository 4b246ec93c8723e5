//! `rehearsal bench` (crate `rehearsal-bench`; the CLI only wires it in): end-to-end measurements of a server in its own process, driven from this
//! process through the lean twilsock client (`rehearsal-client`) and the REST API.
//!
//! Every subcommand checks correctness as it measures (nothing lost, duplicated or out of order;
//! every page complete) and exits 1 when a check fails, so a short run of each is a CI smoke
//! test. Timings are reported, never asserted. Method and results: BENCHMARKS.md.
mod connections;
mod fanout;
mod floor;
mod pagination;
mod rest;
mod server;
mod soak;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rehearsal_mock_server::auth::token;
use rehearsal_mock_server::clock::Clock;
use rehearsal_mock_server::server::Credentials;
use serde_json::{Value, json};

/// Most participants a conversation may have (Twilio's limit, enforced by the server): beyond
/// it, subscribers share identities, like one user on several devices.
pub const MAX_IDENTITIES: usize = 1000;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Fan-out: N subscribers of one conversation, messages published open loop at a fixed
    /// rate; per-delivery and last-delivery latency, throughput, loss, server CPU and RSS.
    Fanout(fanout::FanoutArgs),
    /// Page reads over REST and over Sync item queries at the newest, random and oldest
    /// positions of a deep history; every page checked for completeness.
    Pagination(pagination::PaginationArgs),
    /// Server memory per idle connection that has subscribed to a conversation.
    Connections(connections::ConnectionsArgs),
    /// REST throughput: listing 50 conversations over keep-alive connections, closed loop;
    /// requests per second and latency, every answer checked.
    Rest(rest::RestArgs),
    /// Soak: rounds of N subscribed connections opened, fanned out to and killed abruptly;
    /// after each, no session may be left and the server's RSS must come back.
    Soak(soak::SoakArgs),
    /// The minimal server `fanout --floor` measures beside Rehearsal (started by it as a child).
    #[command(hide = true)]
    FloorServer(floor::FloorServerArgs),
}

/// Where the server is; shared by every subcommand.
#[derive(Args, Clone)]
pub struct Target {
    /// Benchmark a running server (default seed credentials) instead of starting
    /// `rehearsal serve` as a child process. Server CPU and RSS are then not reported.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The control token of `--server` (needed to generate histories).
    #[arg(long, env = "REHEARSAL_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// Print the results as one JSON object (field names in BENCHMARKS.md).
    #[arg(long)]
    json: bool,
    /// Start this `rehearsal` binary as the server instead of this one (A/B comparisons of two
    /// builds with the same load generator).
    #[arg(long, value_name = "PATH", conflicts_with = "server")]
    serve_binary: Option<std::path::PathBuf>,
}

pub fn run(args: BenchArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rehearsal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (outcome, json_out) = match args.command {
        BenchCommand::Fanout(a) => {
            let j = a.target.json;
            (rt.block_on(fanout::run(a)), j)
        }
        BenchCommand::Pagination(a) => {
            let j = a.target.json;
            (rt.block_on(pagination::run(a)), j)
        }
        BenchCommand::Connections(a) => {
            let j = a.target.json;
            (rt.block_on(connections::run(a)), j)
        }
        BenchCommand::Rest(a) => {
            let j = a.target.json;
            (rt.block_on(rest::run(a)), j)
        }
        BenchCommand::Soak(a) => {
            let j = a.target.json;
            (rt.block_on(soak::run(a)), j)
        }
        BenchCommand::FloorServer(a) => {
            return match rt.block_on(floor::serve(a)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rehearsal bench floor-server: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
    };
    // Connection tasks may still be closing; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(report) => {
            if json_out {
                println!("{}", report.json);
            } else {
                print!("{}", report.text);
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("rehearsal bench: correctness check failed: {}", report.failures.join("; "));
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("rehearsal bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// What a subcommand found.
pub struct Report {
    pub json: Value,
    pub text: String,
    /// Every correctness check passed.
    pub ok: bool,
    pub failures: Vec<String>,
}

impl Report {
    /// This (Rehearsal's) report with the floor's beside it: the floor's JSON under `floor`
    /// (without the machine and bench fields it shares), `ratios`, the text `ratio_line` after
    /// both texts, and the checks of both counting.
    pub fn beside_floor(mut self, mut floor: Report, floor_title: &str, ratios: Value, ratio_line: &str) -> Report {
        let text = format!(
            "{}\nfloor: {floor_title}\n{}\nRehearsal/floor  {ratio_line}\n",
            self.text, floor.text
        );
        if let Some(o) = floor.json.as_object_mut() {
            o.remove("machine");
            o.remove("bench");
        }
        let ok = self.ok && floor.ok;
        self.json["floor"] = floor.json;
        self.json["ratios"] = ratios;
        self.json["ok"] = json!(ok);
        self.failures.extend(floor.failures.into_iter().map(|e| format!("floor: {e}")));
        Report {
            json: self.json,
            text,
            ok,
            failures: self.failures,
        }
    }
}

/// An access token for `identity` on the default seed's account.
pub fn token_for(identity: &str) -> String {
    let c = Credentials::default_seed();
    token::mint(&token::MintRequest {
        account_sid: c.account_sid,
        api_key_sid: c.api_key,
        api_key_secret: c.api_secret,
        identity: identity.to_owned(),
        service_sid: Some(c.service_sid),
        ttl_secs: 6 * 3600,
        now_unix: Clock::system().now().unix_secs(),
        nbf_unix: None,
    })
}

/// Latency histograms record microseconds, up to an hour, with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// `{p50, p99, max, count}` in milliseconds (from a microsecond histogram).
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return json!({"p50": null, "p99": null, "max": null, "count": 0});
    }
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p99": ms(h.value_at_quantile(0.99)),
        "max": ms(h.max()),
        "count": h.len(),
    })
}

/// `p50 … p99 … max … (n)` for the human report.
pub fn latency_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} samples)",
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    )
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds (positive).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(s)? {
        d if d.is_zero() => Err(format!("a duration must be positive: {s:?}")),
        d => Ok(d),
    }
}

/// Like [`parse_duration`], but `0` is allowed (no warm-up).
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?} (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (ms, s or m)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The machine, for the record: CPUs, CPU model, memory.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
        .map(|m| m.trim().to_owned());
    let mem_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    });
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": model,
        "memory_bytes": mem_kb.map(|k| k * 1024),
    })
}
