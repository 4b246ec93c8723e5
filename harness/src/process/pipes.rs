//! The three pipes of an adapter process: commands numbered and written to stdin, stdout read
//! as bounded JSON lines and routed (answers to their `oneshot`, events to the bounded channel,
//! anything else a recorded protocol error), and the newest bytes of stderr kept.
use std::sync::Arc;

use rehearsal_scenarios::engine::{Answer, ClientEvent, Command};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use super::{EVENT_BACKPRESSURE, MAX_LINE, STDERR_LIMIT, STDIN_TIMEOUT, Shared};

/// Numbers commands and writes them to stdin, one line each.
pub(super) async fn write_commands(mut commands: mpsc::Receiver<Command>, mut stdin: ChildStdin, shared: Arc<Shared>) {
    let mut next_id: u64 = 1;
    while let Some(Command { body, reply }) = commands.recv().await {
        let id = next_id;
        next_id += 1;
        let mut line = Map::new();
        line.insert("id".into(), id.into());
        match body {
            Value::Object(fields) => line.extend(fields.into_iter().filter(|(k, _)| k != "id")),
            other => {
                let _ = reply.send(Answer::Failed(json!({"message": format!("not a command object: {other}")})));
                continue;
            }
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        shared.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, reply);
        match tokio::time::timeout(STDIN_TIMEOUT, async {
            stdin.write_all(text.as_bytes()).await?;
            stdin.flush().await
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => {
                // The program closed stdin (it ended): its commands cannot be answered.
                shared.take_pending(id);
                break;
            }
            Err(_elapsed) => {
                shared.take_pending(id);
                shared.protocol_error(format!(
                    "command {id} could not be written within {STDIN_TIMEOUT:?}: the client does not read its stdin"
                ));
                break;
            }
        }
    }
}

/// Reads stdout lines: answers to their command, events to the engine, anything else is a
/// protocol error (in observed mode, stdout is just output and joins stderr).
pub(super) async fn read_stdout(stdout: impl AsyncRead + Unpin, events: mpsc::Sender<ClientEvent>, shared: Arc<Shared>, observed: bool) {
    let mut reader = BufReader::new(stdout);
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let (n, too_long) = match read_line_bounded(&mut reader, &mut buf, MAX_LINE).await {
            Ok(x) => x,
            Err(e) => {
                shared.protocol_error(format!("reading stdout failed: {e}"));
                break;
            }
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        if observed {
            shared.stderr.lock().unwrap_or_else(|e| e.into_inner()).push(&buf, STDERR_LIMIT);
            continue;
        }
        if too_long {
            shared.protocol_error(format!("stdout line {line_no} is longer than {MAX_LINE} bytes: skipped"));
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                shared.protocol_error(format!("stdout line {line_no} is not JSON ({e}): {}", clip(text, 200)));
                continue;
            }
        };
        match classify(value) {
            Incoming::Answer(id, answer) => match shared.take_pending(id) {
                Some(reply) => {
                    let _ = reply.send(answer);
                }
                None => shared.protocol_error(format!(
                    "stdout line {line_no} answers command {id}, which is not waiting for an answer"
                )),
            },
            Incoming::Event(event) => match events.send_timeout(event, EVENT_BACKPRESSURE).await {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Timeout(e)) => shared.protocol_error(format!(
                    "event dropped: the engine took no event for {EVENT_BACKPRESSURE:?} (line {line_no}: {})",
                    clip(&e.to_string(), 200)
                )),
                // Nobody listens any more (the scenario is over): nothing to deliver to.
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {}
            },
            Incoming::Invalid(why) => shared.protocol_error(format!("stdout line {line_no} {why}: {}", clip(text, 200))),
        }
    }
    // EOF: the engine sees its pending commands and the events channel end.
    shared.drop_pending();
}

pub(super) enum Incoming {
    Answer(u64, Answer),
    Event(ClientEvent),
    Invalid(&'static str),
}

pub(super) fn classify(value: Value) -> Incoming {
    let Value::Object(mut obj) = value else {
        return Incoming::Invalid("is not a JSON object");
    };
    if obj.get("event").is_some_and(Value::is_string) {
        return Incoming::Event(Value::Object(obj));
    }
    let Some(id) = obj.get("id").and_then(Value::as_u64) else {
        return Incoming::Invalid("is neither an answer (numeric `id`, `ok`) nor an event (`event`)");
    };
    match obj.get("ok").and_then(Value::as_bool) {
        Some(true) => Incoming::Answer(id, Answer::Ok(obj.remove("result").unwrap_or_else(|| json!({})))),
        Some(false) => {
            let mut error = match obj.remove("error") {
                Some(Value::Object(e)) => e,
                _ => return Incoming::Invalid("is a failed answer without an `error` object"),
            };
            let kind = error.remove("kind");
            if kind.as_ref().and_then(Value::as_str) == Some("unsupported") {
                let message = error.get("message").and_then(Value::as_str).unwrap_or("unsupported").to_owned();
                Incoming::Answer(id, Answer::Unsupported(message))
            } else {
                Incoming::Answer(id, Answer::Failed(Value::Object(error)))
            }
        }
        None => Incoming::Invalid("is an answer without a boolean `ok`"),
    }
}

/// Reads up to and including `\n` into `buf`, keeping at most `limit` bytes (the rest of a
/// longer line is consumed and discarded). Returns the bytes consumed and whether it was cut.
pub(super) async fn read_line_bounded(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((consumed, too_long));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        if buf.len() + n <= limit {
            buf.extend_from_slice(chunk);
        } else {
            too_long = true;
        }
        reader.consume(n);
        consumed += n;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

pub(super) async fn read_stderr(mut stderr: impl AsyncRead + Unpin, shared: Arc<Shared>) {
    let mut chunk = vec![0u8; 8192];
    loop {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => shared
                .stderr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&chunk[..n], STDERR_LIMIT),
        }
    }
}

pub(super) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}
