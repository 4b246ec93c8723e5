//! Plays the embedded scenario library against a client adapter process (by default the
//! reference adapter around the official JavaScript SDK) on one in-process server, and prints
//! one line per scenario: verdict, time, reason.
//!
//! ```sh
//! (cd adapters/twilio-conversations-js && npm ci)
//! cargo run -p rehearsal-scenarios --example play_library            # every scenario
//! cargo run -p rehearsal-scenarios --example play_library -- token.  # ids starting with `token.`
//! ```
//!
//! Options: `--jobs N` (scenarios at once, default 4), `--adapter "CMD"` (a shell command
//! speaking the driver protocol; default `node adapters/twilio-conversations-js/adapter.mjs`),
//! `--out DIR` (each outcome as JSON, default `target/library-run`). Observed scenarios start the
//! adapter with `REHEARSAL_OBSERVED=1` and `REHEARSAL_IDENTITY` (as `rehearsal run` does).
//!
//! This is a development tool, not the harness: `rehearsal run` is the runner (in `harness/`).
//! The driver below is deliberately small.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rehearsal_mock_server::MockServer;
use rehearsal_scenarios::engine::{Answer, ClientDriver, Command, DriverEnv, DriverError, DriverLog, Hello, Link, PlayOptions, play};
use rehearsal_scenarios::outcome::ScenarioOutcome;
use rehearsal_scenarios::{Library, Mode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command as Process};
use tokio::sync::{mpsc, oneshot};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

/// A child process speaking the driver protocol on stdin/stdout.
struct AdapterProcess {
    command: String,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    to_stdin: Option<mpsc::Sender<Value>>,
    pending: Pending,
}

impl AdapterProcess {
    fn new(command: &str) -> AdapterProcess {
        AdapterProcess {
            command: command.to_owned(),
            child: None,
            stderr: Arc::default(),
            to_stdin: None,
            pending: Arc::default(),
        }
    }
}

impl ClientDriver for AdapterProcess {
    async fn start(&mut self, env: DriverEnv) -> Result<Link, DriverError> {
        let observed = env.observed_identity.is_some();
        let line = if observed {
            format!("{} --observed", self.command)
        } else {
            self.command.clone()
        };
        let mut p = Process::new("sh");
        p.arg("-c")
            .arg(format!("exec {line}"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("REHEARSAL_URL", &env.base_url)
            .env("REHEARSAL_TWILSOCK_URL", &env.twilsock_url)
            .env("REHEARSAL_TOKEN_URL", &env.token_url)
            .env("TWILIO_ACCOUNT_SID", &env.account_sid)
            .env("TWILIO_AUTH_TOKEN", &env.auth_token)
            .env("TWILIO_API_KEY", &env.api_key)
            .env("TWILIO_API_SECRET", &env.api_secret)
            .env("TWILIO_CONVERSATIONS_SERVICE_SID", &env.service_sid)
            .env("REHEARSAL_SCENARIO", &env.scenario)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(identity) = &env.observed_identity {
            p.env("REHEARSAL_OBSERVED", "1").env("REHEARSAL_IDENTITY", identity);
        }
        if let Some(ttl) = env.observed_token_ttl {
            p.env("REHEARSAL_TOKEN_TTL", ttl.as_secs().to_string());
        }
        let mut child = p.spawn().map_err(|e| DriverError::Start(e.to_string()))?;
        let mut stdin = child.stdin.take().ok_or_else(|| DriverError::Start("no stdin".into()))?;
        let stdout = child.stdout.take().ok_or_else(|| DriverError::Start("no stdout".into()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| DriverError::Start("no stderr".into()))?;
        let collected = self.stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut s = collected.lock().unwrap();
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                if s.len() > 256 * 1024 {
                    let cut = s.len() - 128 * 1024;
                    let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
                    s.drain(..cut);
                }
            }
        });
        let (line_tx, mut line_rx) = mpsc::channel::<Value>(64);
        tokio::spawn(async move {
            while let Some(v) = line_rx.recv().await {
                let mut text = v.to_string();
                text.push('\n');
                if stdin.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        let (events_tx, events) = mpsc::channel(4096);
        let pending = self.pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v.get("event").is_some() {
                    if events_tx.send(v).await.is_err() {
                        return;
                    }
                } else if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    let answer = if v["ok"] == true {
                        Answer::Ok(v.get("result").cloned().unwrap_or(json!({})))
                    } else if v["error"]["kind"] == "unsupported" {
                        Answer::Unsupported(v["error"]["message"].as_str().unwrap_or_default().to_owned())
                    } else {
                        Answer::Failed(v.get("error").cloned().unwrap_or(Value::Null))
                    };
                    if let Some(tx) = pending.lock().unwrap().remove(&id) {
                        let _ = tx.send(answer);
                    }
                }
            }
            pending.lock().unwrap().clear();
        });
        let (commands_tx, mut commands) = mpsc::channel::<Command>(64);
        let pending = self.pending.clone();
        let to_stdin = line_tx.clone();
        tokio::spawn(async move {
            let mut next = 1u64;
            while let Some(Command { mut body, reply }) = commands.recv().await {
                next += 1;
                body["id"] = next.into();
                pending.lock().unwrap().insert(next, reply);
                if to_stdin.send(body).await.is_err() {
                    return;
                }
            }
        });
        self.child = Some(child);
        self.to_stdin = Some(line_tx.clone());
        let hello = if observed {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            self.pending.lock().unwrap().insert(1, tx);
            let _ = line_tx
                .send(json!({ "id": 1, "cmd": "hello", "protocol": 1, "scenario": env.scenario }))
                .await;
            match tokio::time::timeout(Duration::from_secs(5), rx).await {
                Ok(Ok(Answer::Ok(h))) => Some(Hello {
                    name: h["name"].as_str().unwrap_or_default().to_owned(),
                    version: h["version"].as_str().unwrap_or_default().to_owned(),
                    protocol: h["protocol"].as_u64().unwrap_or(1) as u32,
                    capabilities: h["capabilities"]
                        .as_array()
                        .map(|c| c.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                }),
                _ => None,
            }
        };
        Ok(Link {
            hello,
            commands: commands_tx,
            events,
        })
    }

    async fn stop(&mut self) -> DriverLog {
        let mut exit = None;
        if let Some(mut child) = self.child.take() {
            if let Some(tx) = self.to_stdin.take() {
                let _ = tx.send(json!({ "id": 0, "cmd": "shutdown" })).await;
            }
            if let Some(pid) = child.id() {
                // Observed mode does not read stdin: SIGTERM asks it to shut down cleanly.
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            exit = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) => Some(status.to_string()),
                _ => {
                    let _ = child.kill().await;
                    Some("killed".into())
                }
            };
        }
        self.pending.lock().unwrap().clear();
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        DriverLog { stderr, exit }
    }
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs: usize = arg_value(&args, "--jobs").and_then(|j| j.parse().ok()).unwrap_or(4).max(1);
    let adapter = arg_value(&args, "--adapter").unwrap_or_else(|| "node adapters/twilio-conversations-js/adapter.mjs".into());
    let out =
        PathBuf::from(arg_value(&args, "--out").unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/library-run").into()));
    let values: Vec<&String> = ["--jobs", "--adapter", "--out"]
        .iter()
        .filter_map(|n| args.iter().position(|a| a == n).and_then(|i| args.get(i + 1)))
        .collect();
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") && !values.iter().any(|v| std::ptr::eq(*v, *a)))
        .collect();
    let library = Library::load_embedded().unwrap_or_else(|e| panic!("{e:?}"));
    let selected: Vec<_> = library
        .iter()
        .filter(|l| filters.is_empty() || filters.iter().any(|f| l.scenario.id.starts_with(f.as_str())))
        .cloned()
        .collect();
    std::fs::create_dir_all(&out).ok();
    let server = Arc::new(MockServer::start().await);
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = Vec::new();
    for loaded in selected {
        let (server, sem, adapter, out) = (server.clone(), sem.clone(), adapter.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore");
            let mut driver = AdapterProcess::new(&adapter);
            let o: ScenarioOutcome = play(&server, &loaded, &mut driver, &PlayOptions::default()).await;
            let mode = if loaded.scenario.mode() == Mode::Observed { "obs" } else { "drv" };
            println!(
                "{:<46} {mode} {:<14} {:>6} ms  {}",
                o.id,
                format!("{:?}", o.verdict),
                o.duration.as_millis(),
                o.reason.clone().unwrap_or_default().replace('\n', " ")
            );
            let path = out.join(format!("{}.json", o.id));
            let _ = std::fs::write(&path, serde_json::to_string_pretty(&o).unwrap_or_default());
            o
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        if let Ok(o) = t.await {
            outcomes.push(o);
        }
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for o in &outcomes {
        *counts.entry(format!("{:?}", o.verdict)).or_default() += 1;
    }
    println!("\n{} scenarios: {counts:?}; outcomes in {}", outcomes.len(), out.display());
}
