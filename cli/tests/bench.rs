//! The benchmark commands in smoke mode: each runs once, briefly, against its own `rehearsal
//! serve` child, and must report its documented JSON fields with every correctness check passed
//! (nothing lost, duplicated or out of order; every page complete). Timings are not asserted:
//! this is CI on a shared machine.
mod support;

use std::time::Duration;

use serde_json::Value;

/// A smoke run that takes longer than this is a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `rehearsal bench ARGS --json` and returns the parsed report.
fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    support::run_json(&all, RUN_TIMEOUT)
}

/// `fanout` with 10 subscribers at 100 msg/s for 500 ms after `warmup`, and `extra`.
fn small_fanout(warmup: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "fanout",
        "--subscribers",
        "10",
        "--rate",
        "100",
        "--duration",
        "500ms",
        "--warmup",
        warmup,
    ];
    args.extend_from_slice(extra);
    bench(&args)
}

#[track_caller]
fn latency(v: &Value, what: &str) {
    for k in ["p50", "p99", "max"] {
        assert!(v[k].as_f64().is_some_and(|x| x >= 0.0), "{what}.{k}: {v}");
    }
    assert!(v["count"].as_u64().is_some_and(|n| n > 0), "{what}.count: {v}");
}

#[test]
fn fanout_smoke_delivers_everything_once() {
    let r = bench(&[
        "fanout",
        "--subscribers",
        "20",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    assert_eq!(r["bench"], "fanout", "{r:#}");
    assert_eq!(r["subscribers"], 20, "{r:#}");
    assert_eq!((&r["generator"], &r["subscriber_threads"]), (&"lean".into(), &2.into()), "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    for k in ["lost", "duplicated", "out_of_order", "unexpected", "publish_errors", "disconnected"] {
        assert_eq!(r[k], 0, "{k}: {r:#}");
    }
    assert_eq!(r["deliveries"], r["deliveries_expected"], "{r:#}");
    assert_eq!(r["deliveries"], 20 * 240, "{r:#}");
    assert!(r["deliveries_per_sec"].as_f64().is_some_and(|d| d > 0.0), "{r:#}");
    latency(&r["delivery_latency_ms"], "delivery_latency_ms");
    latency(&r["last_delivery_latency_ms"], "last_delivery_latency_ms");
    let s = &r["server"];
    assert!(s["pid"].as_u64().is_some(), "{r:#}");
    assert!(s["start_ms"].as_f64().is_some_and(|m| m > 0.0), "{r:#}");
    assert!(s["cpu_seconds"].as_f64().is_some(), "{r:#}");
    assert!(s["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{r:#}");
}

#[test]
fn fanout_smoke_message_list_only_with_either_generator() {
    // The message list only, without warm-up, read by lean subscribers and by full
    // `rehearsal-client` connections.
    for generator in ["lean", "client"] {
        let r = small_fanout("0", &["--generator", generator, "--objects", "messages"]);
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(r["objects"], "messages", "{r:#}");
        assert_eq!(r["generator"], generator, "{r:#}");
        assert_eq!(r["lost"], 0, "{r:#}");
        assert_eq!(r["duplicated"], 0, "{r:#}");
        assert_eq!(r["deliveries"], 10 * 50, "{r:#}");
        // List only: one frame per delivery, plus each subscriber's `subscription_established`.
        assert_eq!(r["frames_received"].as_u64(), r["deliveries"].as_u64().map(|d| d + 10), "{r:#}");
    }
}

#[test]
fn fanout_smoke_with_floor_reports_ratios_and_checks_both_runs() {
    // The SDK-like subscription (two pushes per message), so the floor also sends the document
    // push; the same load runs against Rehearsal and then against the minimal server.
    let r = small_fanout("100ms", &["--floor"]);
    assert_eq!(r["ok"], true, "{r:#}");
    // Rehearsal's own figures are still where they were.
    assert_eq!(r["bench"], "fanout", "{r:#}");
    assert_eq!(r["deliveries"], 10 * 60, "{r:#}");
    latency(&r["last_delivery_latency_ms"], "last_delivery_latency_ms");
    let f = &r["floor"];
    assert_eq!(f["ok"], true, "{r:#}");
    for k in ["lost", "duplicated", "out_of_order", "unexpected", "publish_errors", "disconnected"] {
        assert_eq!(r[k], 0, "{k}: {r:#}");
        assert_eq!(f[k], 0, "floor.{k}: {r:#}");
    }
    assert_eq!(f["deliveries"], r["deliveries"], "{r:#}");
    assert_eq!(f["subscribers"], 10, "{r:#}");
    latency(&f["delivery_latency_ms"], "floor.delivery_latency_ms");
    latency(&f["last_delivery_latency_ms"], "floor.last_delivery_latency_ms");
    // The floor is a child process measured like Rehearsal's, and it is another process.
    assert!(
        f["server"]["pid"].as_u64().is_some_and(|p| Some(p) != r["server"]["pid"].as_u64()),
        "{r:#}"
    );
    assert!(f["server"]["cpu_seconds"].as_f64().is_some(), "{r:#}");
    // It writes as many frames as Rehearsal (document and list push per message) of the sizes
    // Rehearsal sent.
    assert_eq!(f["frames_received"], r["frames_received"], "{r:#}");
    let (rl, fl) = (&r["push_payload_bytes"]["list"], &f["push_payload_bytes"]["list"]);
    assert!(rl.as_u64().is_some_and(|n| n > 0) && fl.as_u64() >= rl.as_u64(), "{r:#}");
    for k in ["last_delivery_p50", "last_delivery_p99", "deliveries_per_sec"] {
        assert!(r["ratios"][k].as_f64().is_some_and(|x| x > 0.0), "ratios.{k}: {r:#}");
    }
}

#[test]
fn pagination_smoke_reads_complete_pages() {
    let r = bench(&["pagination", "--history", "1000", "--page-size", "50", "--samples", "20"]);
    assert_eq!(r["bench"], "pagination", "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["pages_failed"], 0, "{r:#}");
    assert!(r["pages_checked"].as_u64().is_some_and(|n| n >= 20 * 6), "{r:#}");
    assert_eq!(r["rest"]["walk"]["messages"], 1000, "{r:#}");
    for t in ["rest", "sync"] {
        for pos in ["newest_ms", "random_ms", "oldest_ms"] {
            latency(&r[t][pos], &format!("{t}.{pos}"));
        }
        assert!(r[t]["oldest_over_newest_p99"].as_f64().is_some(), "{r:#}");
    }
}

#[test]
fn connections_smoke_measures_memory_per_connection() {
    let r = bench(&["connections", "--n", "50"]);
    assert_eq!(r["bench"], "connections", "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["open"], 50, "{r:#}");
    assert!(r["bytes_per_connection"].as_f64().is_some(), "{r:#}");
    assert!(r["server"]["rss_bytes_after"].as_u64().is_some_and(|b| b > 0), "{r:#}");
}

#[test]
fn connections_smoke_with_floor_reports_the_ratio() {
    let r = bench(&["connections", "--n", "50", "--floor"]);
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["open"], 50, "{r:#}");
    let f = &r["floor"];
    assert_eq!(f["ok"], true, "{r:#}");
    assert_eq!(f["open"], 50, "{r:#}");
    assert!(
        f["server"]["pid"].as_u64().is_some_and(|p| Some(p) != r["server"]["pid"].as_u64()),
        "{r:#}"
    );
    assert!(f["bytes_per_connection"].as_f64().is_some_and(|b| b > 0.0), "{r:#}");
    // 50 connections of a few KB each may fit in pages the server already holds, so Rehearsal's
    // own figure can be 0 here; the ratio must still be Rehearsal's over the floor's.
    let (mine, floor) = (r["bytes_per_connection"].as_f64(), f["bytes_per_connection"].as_f64());
    let ratio = r["ratios"]["bytes_per_connection"].as_f64();
    assert!(mine.is_some_and(|b| b >= 0.0), "{r:#}");
    assert!(
        ratio.zip(mine.zip(floor)).is_some_and(|(x, (m, f))| (x - m / f).abs() < 1e-9),
        "{r:#}"
    );
}

#[test]
fn rest_smoke_lists_full_pages() {
    let r = bench(&["rest", "--connections", "2", "--duration", "500ms", "--warmup", "0"]);
    assert_eq!(r["bench"], "rest", "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["request"], "GET /v1/Conversations?PageSize=50", "{r:#}");
    assert!(r["requests"].as_u64().is_some_and(|n| n > 0), "{r:#}");
    assert!(r["requests_per_second"].as_f64().is_some_and(|x| x > 0.0), "{r:#}");
    latency(&r["latency_ms"], "latency_ms");
}
