//! The soak in CI: `rehearsal bench soak` against its own `rehearsal serve` child (the real
//! binary), three rounds of 1,000 subscribed connections opened, fanned out to (every message
//! delivered once to every connection) and killed abruptly. After each round the control plane
//! lists no session and the server's RSS is at most 25 % above its value after the first round
//! (lower is fine: the allocator gives pages back lazily). 25 %, not less: the settled RSS after a
//! round of this size varies by about ±8 % from run to run with nothing leaking (76–90 MB seen on
//! one 2-core machine, and the allocator moves it in 2 MiB huge pages), so a 10 % bound failed one
//! run in three. What the check is for still shows: a session's task and buffers left behind
//! cost ~36 KB, 36 MB per round here, +45 % by the third round.
//!
//! `REHEARSAL_SOAK_ARGS` replaces the arguments for a longer run by hand (numbers in
//! BENCHMARKS.md), e.g. `REHEARSAL_SOAK_ARGS="--connections 5000 --rounds 10 --messages 20"
//! cargo test -p rehearsal-cli --release --test soak -- --nocapture`.
mod support;

use std::time::Duration;

use serde_json::Value;

/// A soak that takes longer than this is a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

const DEFAULT_ARGS: &str = "--connections 1000 --rounds 3 --messages 3 --rss-tolerance-pct 25";
/// How far above the first round's settled RSS a later round may be (see the module docs).
const RSS_GROWTH_BOUND: f64 = 1.25;

fn soak(args: &[&str]) -> Value {
    let mut all = vec!["bench", "soak"];
    all.extend_from_slice(args);
    support::run_json(&all, RUN_TIMEOUT)
}

#[test]
fn soak_rounds_of_killed_connections_leave_no_session_and_no_memory_behind() {
    let args = std::env::var("REHEARSAL_SOAK_ARGS").unwrap_or_else(|_| DEFAULT_ARGS.to_owned());
    let args: Vec<&str> = args.split_whitespace().collect();
    let r = soak(&args);
    println!("{r:#}");
    assert_eq!(r["bench"], "soak", "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    let connections = r["connections"].as_u64().expect("connections");
    let messages = r["messages"].as_u64().expect("messages");
    let rounds = r["rounds"].as_array().expect("rounds");
    assert!(rounds.len() >= 3, "{r:#}");
    let first = rounds[0]["rss_bytes_after"].as_f64().expect("the server's RSS is read from /proc");
    for round in rounds {
        assert_eq!(round["deliveries"], connections * messages, "{round:#}");
        assert_eq!(round["deliveries_expected"], connections * messages, "{round:#}");
        assert_eq!(round["duplicated"], 0, "{round:#}");
        assert_eq!(round["sessions_left"], 0, "{round:#}");
        let rss = round["rss_bytes_after"].as_f64().expect("RSS after the round");
        assert!(rss <= first * RSS_GROWTH_BOUND, "RSS {rss} vs {first} after the first round: {r:#}");
    }
    if DEFAULT_ARGS.split_whitespace().eq(args.iter().copied()) {
        assert_eq!((connections, messages, rounds.len()), (1000, 3, 3), "{r:#}");
    }
}
