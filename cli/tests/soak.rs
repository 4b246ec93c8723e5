//! The soak in CI: `rehearsal bench soak` against its own `rehearsal serve` child (the real
//! binary), three rounds of 1,000 subscribed connections opened, fanned out to (every message
//! delivered once to every connection) and killed abruptly. After each round the control plane
//! lists no session and the server's RSS is at most 10 % above its value after the first round
//! (lower is fine: the allocator gives pages back lazily).
//!
//! `REHEARSAL_SOAK_ARGS` replaces the arguments for a longer run by hand (numbers in
//! BENCHMARKS.md), e.g. `REHEARSAL_SOAK_ARGS="--connections 5000 --rounds 10 --messages 20"
//! cargo test -p rehearsal-cli --release --test soak -- --nocapture`.
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A soak that takes longer than this is a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

const DEFAULT_ARGS: &str = "--connections 1000 --rounds 3 --messages 3";

fn soak(args: &[&str]) -> Value {
    let child = Command::new(env!("CARGO_BIN_EXE_rehearsal"))
        .args(["bench", "soak"])
        .args(args)
        .arg("--json")
        .env("REHEARSAL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rehearsal starts");
    // Waited for on a thread so that the wait has a deadline; a hung run is killed (its server
    // child goes with it: the bench kills it on exit, and `kill_on_drop` covers a crash).
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Output { status, stdout, stderr } = match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(out) => out.expect("output of rehearsal bench soak"),
        Err(_) => {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("rehearsal bench soak {args:?} did not finish within {RUN_TIMEOUT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.success(),
        "rehearsal bench soak {args:?} failed ({status}):\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
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
        assert!(rss <= first * 1.10, "RSS {rss} vs {first} after the first round: {r:#}");
    }
    if DEFAULT_ARGS.split_whitespace().eq(args.iter().copied()) {
        assert_eq!((connections, messages, rounds.len()), (1000, 3, 3), "{r:#}");
    }
}
