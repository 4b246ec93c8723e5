//! `rehearsal-adapter-rust`: the Rehearsal driver protocol (harness/PROTOCOL.md) over
//! `rehearsal-client`, a second implementation next to the JavaScript reference adapter.
//!
//! JSON lines: commands on stdin, answers and events on stdout, logs on stderr. With
//! `REHEARSAL_OBSERVED=1` it speaks no protocol: it connects as `REHEARSAL_IDENTITY` and runs
//! until SIGTERM, judged on what the server sees.
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{SignalKind, signal};

mod commands;
mod conversations;
mod protocol;
mod registry;
mod session;
mod token;

use commands::Defaults;
use protocol::{Command, CommandError, Output};
use registry::Registry;

/// Logs one line to stderr (the harness keeps its tail in the report).
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { eprintln!("[rehearsal-adapter-rust] {}", format_args!($($arg)*)) };
}

/// Bound on the answers still in flight when stdin ends, and on shutting every client down.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log!("cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let observed = std::env::var("REHEARSAL_OBSERVED").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let code = runtime.block_on(async { if observed { run_observed().await } else { run_protocol().await } });
    // Tasks of clients that were never shut down must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    std::process::ExitCode::from(code)
}

fn defaults() -> Defaults {
    Defaults {
        token_url: std::env::var("REHEARSAL_TOKEN_URL").ok(),
        twilsock_url: std::env::var("REHEARSAL_TWILSOCK_URL").ok(),
    }
}

/// Reads commands until stdin ends or `shutdown` without a client; each runs in its own task,
/// so a slow command never holds up the others (answers may come in any order).
async fn run_protocol() -> u8 {
    let out = Output::new(false);
    let registry = Arc::new(Registry::default());
    let defaults = Arc::new(defaults());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = exit_rx.recv() => break,
            Some(()) = async { match terminate.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => break,
        };
        let line = match line {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                log!("reading stdin failed: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let cmd = match Command::parse(&line) {
            Ok(c) => c,
            Err(why) => {
                log!("ignoring a line that is {why}: {}", line.chars().take(200).collect::<String>());
                continue;
            }
        };
        let (registry, defaults, out, exit_tx) = (registry.clone(), defaults.clone(), out.clone(), exit_tx.clone());
        in_flight.spawn(async move {
            let result = commands::run(&registry, &defaults, &out, &cmd).await;
            out.answer(&cmd.id, result);
            if cmd.name == "shutdown" && cmd.args.get("client").is_none_or(serde_json::Value::is_null) {
                let _ = exit_tx.try_send(());
            }
        });
        // Reap finished commands so the set does not grow with the session.
        while in_flight.try_join_next().is_some() {}
    }
    let drain = async { while in_flight.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        log!("commands still running after {DRAIN_TIMEOUT:?}; exiting");
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, commands::shutdown_all(&registry)).await;
    0
}

/// Observed mode: connect as the scenario's identity and live until SIGTERM.
async fn run_observed() -> u8 {
    let d = defaults();
    let identity = std::env::var("REHEARSAL_IDENTITY").ok();
    let (Some(identity), Some(token_url), Some(twilsock_url)) = (identity, d.token_url, d.twilsock_url) else {
        log!("observed mode needs REHEARSAL_IDENTITY, REHEARSAL_TOKEN_URL and REHEARSAL_TWILSOCK_URL");
        return 2;
    };
    log!("observed mode: connecting as {identity}");
    let registry = Registry::default();
    let session = session::Session::start(&identity, &identity, &token_url, &twilsock_url, Output::new(true));
    if let Err(e) = registry.insert(session.clone()) {
        log!("{}", e.message);
        return 1;
    }
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log!("cannot listen for SIGTERM: {e}");
            return 1;
        }
    };
    let terminated = tokio::select! {
        r = session.ready(Duration::from_secs(30)) => {
            match r {
                // Keep running: the token policy may still recover the client.
                Err(CommandError { message, .. }) => log!("observed mode: connect failed: {message}"),
                Ok(()) => log!("observed mode: connected"),
            }
            false
        }
        _ = terminate.recv() => true,
    };
    if !terminated {
        terminate.recv().await;
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, commands::shutdown_all(&registry)).await;
    0
}
