//! The client side of a play: starting the driver, checking its `hello` against what the
//! scenario requires, and copying its events into the log (or, in a server-side play, no client
//! at all).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::{ClientDriver, DriverEnv, DriverError, DriverLog, Link};
use super::log::{EventRec, Log};
use super::play::{Play, Task};
use crate::outcome::Verdict;

/// The client side of a server-side play: there is none to start (the app under test connects
/// by itself).
pub(super) struct NoClient;

impl ClientDriver for NoClient {
    async fn start(&mut self, _env: DriverEnv) -> Result<Link, DriverError> {
        Err(DriverError::Start("a server-side play starts no client".into()))
    }

    async fn stop(&mut self) -> DriverLog {
        DriverLog::default()
    }
}

/// Copies the client's events into the log until its stream ends.
fn drain(mut events: mpsc::Receiver<Value>, log: Arc<Log>, driven: bool, stopping: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            // Arrival time, not the adapter's `at`: whole milliseconds would put an event caused
            // by an action up to a millisecond before that action; the arrival is never before
            // its cause (the protocol's `at` stays in the event's payload).
            let at = log.now();
            let name = ev.get("event").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            let client = ev.get("client").and_then(Value::as_str).unwrap_or("").to_owned();
            log.push_event(EventRec {
                at,
                client,
                name,
                payload: ev,
            });
        }
        let at = log.now();
        log.client_gone(at);
        if driven && !stopping.load(Ordering::SeqCst) {
            log.abort(
                Verdict::Failed,
                "the client's event stream ended during the scenario (did its process exit? see stderr)".into(),
            );
        }
    })
}

/// Starts the client side and the copying of its events (returned); checks `hello` against
/// what a driven scenario needs. A failure to start is recorded as the play's abort.
pub(super) async fn start(
    play: &Play<'_>,
    driver: &mut impl ClientDriver,
    env: DriverEnv,
    driven: bool,
    stopping: Arc<AtomicBool>,
) -> Option<Task> {
    let began = play.log.now();
    let link: Link = match driver.start(env).await {
        Ok(l) => l,
        Err(e) => {
            play.log.abort(Verdict::Failed, e.to_string());
            return None;
        }
    };
    let hello = link.hello.clone();
    play.log.timeline(
        began,
        "action",
        "engine",
        "client started".into(),
        json!({ "hello": hello.as_ref().map(|h| json!({ "name": h.name, "version": h.version, "protocol": h.protocol, "capabilities": h.capabilities })) }),
    );
    let drainer = drain(link.events, play.log.clone(), driven, stopping);
    *play.commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.commands);
    if driven {
        match &hello {
            None => play.log.abort(
                Verdict::Unimplemented,
                "the client did not answer `hello`: it can only play observed scenarios".into(),
            ),
            Some(h) => {
                let missing: Vec<&str> = play
                    .scenario
                    .requires
                    .iter()
                    .filter_map(|c| c.protocol_command())
                    .filter(|cmd| !h.capabilities.iter().any(|have| have == cmd))
                    .collect();
                if !missing.is_empty() {
                    play.log.abort(
                        Verdict::Unimplemented,
                        format!("the client does not support {}", missing.join(", ")),
                    );
                }
            }
        }
    }
    Some(Task(drainer))
}
