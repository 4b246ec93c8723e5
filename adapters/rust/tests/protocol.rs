//! The adapter binary spoken to over its stdin/stdout, as the harness does, against an
//! in-process `MockServer` on a loopback port 0.
use std::process::Stdio;
use std::time::{Duration, Instant};

use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::sessions::Target;
use rehearsal_mock_server::twilsock::{CloseCode, SessionCommand};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// One adapter process: commands in, answers and events out.
struct Adapter {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    /// Events read while waiting for something else, in order.
    events: Vec<Value>,
    next_id: u64,
}

impl Adapter {
    fn start(server: &MockServer) -> Adapter {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rehearsal-adapter-rust"))
            .env("REHEARSAL_TOKEN_URL", format!("{}/token", server.url()))
            .env("REHEARSAL_TWILSOCK_URL", server.twilsock_url())
            .env_remove("REHEARSAL_OBSERVED")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the adapter starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel(4096);
        tokio::spawn(async move {
            let line_schema = schema(None);
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                assert!(line_schema.is_valid(&v), "not a protocol line: {line}");
                if tx.send(v).await.is_err() {
                    return;
                }
            }
        });
        Adapter {
            child,
            stdin,
            lines,
            events: Vec::new(),
            next_id: 0,
        }
    }

    async fn next_line(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.lines.recv()).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("the adapter closed stdout; events so far: {:#?}", self.events),
            Err(_) => panic!("nothing from the adapter in time; events so far: {:#?}", self.events),
        }
    }

    /// Sends `cmd` with a fresh id and returns its answer; events read meanwhile are kept.
    async fn call(&mut self, mut cmd: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        cmd["id"] = id.into();
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.expect("write a command");
        let deadline = Instant::now() + Duration::from_secs(35);
        loop {
            let v = self.next_line(deadline).await;
            if v.get("event").is_some() {
                assert!(v["at"].as_u64().is_some(), "event without `at`: {v}");
                self.events.push(v);
            } else if v["id"] == id {
                return v;
            } else {
                panic!("an answer to no pending command: {v}");
            }
        }
    }

    /// The result of a command that must succeed, checked against the schema of its result.
    async fn ok(&mut self, cmd: Value) -> Value {
        let a = self.call(cmd.clone()).await;
        assert_eq!(a["ok"], true, "{cmd} was answered {a}");
        let name = cmd["cmd"].as_str().unwrap_or_default();
        assert!(
            schema(Some(&format!("result_{name}"))).is_valid(&a["result"]),
            "the result of {name} does not match its schema: {a}"
        );
        a["result"].clone()
    }

    /// The first event (already read or still to come) matching `pred`; it is consumed.
    async fn event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(v)) if pred(&v) => return v,
                Ok(Some(v)) => self.events.push(v),
                _ => panic!("no {what} within {WAIT:?}; events: {:#?}", self.events),
            }
        }
    }

    /// The events read so far that match `pred` (waiting for nothing).
    fn seen(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.events.iter().filter(|e| pred(e)).cloned().collect()
    }

    async fn shutdown(mut self) {
        self.ok(json!({"cmd": "shutdown"})).await;
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("the adapter exits after shutdown")
            .expect("exit status");
        assert!(status.success(), "exit status {status}");
    }
}

/// The driver protocol's schema (harness/schema/), for one line or, given a `$defs` name, for
/// that definition.
fn schema(def: Option<&str>) -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../harness/schema/driver-protocol.schema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("the protocol schema")).expect("JSON");
    if let Some(def) = def {
        let obj = schema.as_object_mut().expect("an object");
        obj.remove("oneOf");
        obj.insert("$ref".into(), format!("#/$defs/{def}").into());
    }
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn is(event: &'static str, client: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == event && e["client"] == client
}

fn drop_sessions(server: &MockServer, identity: &str, cmd: SessionCommand) {
    let account = server.credentials().expect("the default seed").account_sid;
    let target = Target {
        account,
        session: None,
        identity: Some(identity.to_owned()),
    };
    let hit = server.control().command(&target, cmd).reached();
    assert_eq!(hit.len(), 1, "one session of {identity}");
}

#[tokio::test]
async fn hello_names_the_commands_and_unimplemented_ones_answer_unsupported() {
    let server = MockServer::start().await;
    let mut a = Adapter::start(&server);
    let hello = a.ok(json!({"cmd": "hello", "protocol": 1, "scenario": "test"})).await;
    assert_eq!(hello["name"], "rehearsal-adapter-rust");
    assert_eq!(hello["protocol"], 1);
    let caps: Vec<&str> = hello["capabilities"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for cmd in ["connect", "send", "page_messages", "update_token", "shutdown"] {
        assert!(caps.contains(&cmd), "{cmd} missing from {caps:?}");
    }
    assert!(!caps.contains(&"get_media"), "{caps:?}");
    for cmd in [json!({"cmd": "get_media", "client": "alice"}), json!({"cmd": "warp"})] {
        let answer = a.call(cmd).await;
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["error"]["kind"], "unsupported", "{answer}");
    }
    // Commands on a client that does not exist fail (evidence), not unsupported.
    let answer = a
        .call(json!({"cmd": "send", "client": "nobody", "conversation": "general", "text": "x"}))
        .await;
    assert_eq!(answer["error"]["kind"], "failed", "{answer}");
    a.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn messages_sent_by_one_client_reach_another_and_history_pages_back() {
    let server = MockServer::start().await;
    let mut a = Adapter::start(&server);
    a.ok(json!({"cmd": "connect", "client": "alice", "identity": "alice"})).await;
    a.ok(json!({"cmd": "connect", "client": "bob", "identity": "bob"})).await;
    let states: Vec<Value> = a.seen(is("connection_state", "alice")).iter().map(|e| e["state"].clone()).collect();
    assert_eq!(states, vec![json!("connecting"), json!("connected")]);
    a.event("alice initialized", is("initialized", "alice")).await;
    let joined = a
        .event("bob joined general", |e| {
            e["event"] == "conversation_joined" && e["client"] == "bob" && e["unique_name"] == "general"
        })
        .await;
    let general = joined["conversation"].as_str().unwrap().to_owned();
    assert!(general.starts_with("CH"), "{joined}");

    let sent = a
        .ok(json!({"cmd": "send", "client": "alice", "conversation": "general", "text": "hi bob", "attributes": "{\"k\":1}"}))
        .await;
    let index = sent["index"].as_u64().expect("an index");
    let got = a
        .event("bob's message_added", |e| {
            e["event"] == "message_added" && e["client"] == "bob" && e["body"] == "hi bob"
        })
        .await;
    assert_eq!(got["conversation"], general.as_str());
    assert_eq!(got["index"], index);
    assert_eq!(got["author"], "alice");
    assert_eq!(got["attributes"], "{\"k\":1}");

    // Backwards pages from the end, each ascending, contiguous, newest first.
    let r = a
        .ok(json!({"cmd": "page_messages", "client": "alice", "conversation": "general", "page_size": 2, "pages": 2}))
        .await;
    let pages: Vec<Vec<u64>> = serde_json::from_value(r["pages"].clone()).unwrap();
    assert_eq!(pages[0].last(), Some(&index), "{r}");
    assert_eq!(pages[0].len(), 2, "{r}");
    assert_eq!(pages[1].last().map(|i| i + 1), pages[0].first().copied(), "{r}");
    // Forwards from an anchor: the anchor is included.
    let r = a
        .ok(json!({"cmd": "page_messages", "client": "alice", "conversation": "general", "page_size": 1, "anchor": index, "direction": "forwards"}))
        .await;
    assert_eq!(r, json!({"pages": [[index]], "has_more": false}));

    // Media is not implemented: unsupported, not failed.
    let media = a
        .call(
            json!({"cmd": "send", "client": "alice", "conversation": "general", "media": {"content_type": "text/plain", "base64": "aGk="}}),
        )
        .await;
    assert_eq!(media["error"]["kind"], "unsupported", "{media}");
    a.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_client_reconnects_and_receives_what_it_missed() {
    let server = MockServer::start().await;
    let mut a = Adapter::start(&server);
    a.ok(json!({"cmd": "connect", "client": "alice"})).await;
    a.ok(json!({"cmd": "connect", "client": "bob"})).await;
    a.event("bob joined general", |e| {
        e["event"] == "conversation_joined" && e["client"] == "bob" && e["unique_name"] == "general"
    })
    .await;
    a.events.clear();
    let dropped = Instant::now();
    drop_sessions(&server, "bob", SessionCommand::Drop);
    a.event("bob connecting", |e| is("connection_state", "bob")(e) && e["state"] == "connecting")
        .await;
    // Sent while bob is away (his first retry comes after ~1 s).
    a.ok(json!({"cmd": "send", "client": "alice", "conversation": "general", "text": "while you were out"}))
        .await;
    a.event("bob connected again", |e| {
        is("connection_state", "bob")(e) && e["state"] == "connected"
    })
    .await;
    let waited = dropped.elapsed();
    assert!(waited >= Duration::from_millis(700), "reconnected after {waited:?}: no backoff");
    a.event("the missed message, replayed", |e| {
        e["event"] == "message_added" && e["client"] == "bob" && e["body"] == "while you were out"
    })
    .await;
    a.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_close_401_is_terminal_and_update_token_brings_the_client_back() {
    let server = MockServer::start().await;
    let mut a = Adapter::start(&server);
    a.ok(json!({"cmd": "connect", "client": "alice"})).await;
    a.events.clear();
    drop_sessions(&server, "alice", SessionCommand::close(CloseCode::Unauthorized, None));
    let error = a.event("a terminal connection_error", is("connection_error", "alice")).await;
    assert_eq!(error["terminal"], true, "{error}");
    assert_eq!(error["status"], 401, "{error}");
    a.event("alice disconnected", |e| {
        is("connection_state", "alice")(e) && e["state"] == "disconnected"
    })
    .await;
    let token = reqwest_token(&server, "alice").await;
    assert!(
        a.seen(is("connection_state", "alice")).iter().all(|e| e["state"] != "connecting"),
        "a 401 close is not retried"
    );
    a.ok(json!({"cmd": "update_token", "client": "alice", "token": token})).await;
    a.event("alice connected again", |e| {
        is("connection_state", "alice")(e) && e["state"] == "connected"
    })
    .await;
    a.ok(json!({"cmd": "send", "client": "alice", "conversation": "general", "text": "back"}))
        .await;
    a.shutdown().await;
    server.shutdown().await;
}

/// A token from the development endpoint, fetched over plain HTTP.
async fn reqwest_token(server: &MockServer, identity: &str) -> String {
    let url = format!("{}/token?identity={identity}&ttl=600", server.url());
    let v: Value = reqwest_get(&url).await;
    v["token"].as_str().expect("a token").to_owned()
}

async fn reqwest_get(url: &str) -> Value {
    let body = tokio::time::timeout(WAIT, async { reqwest::get(url).await?.text().await })
        .await
        .expect("the token endpoint answers in time")
        .expect("the token endpoint answers");
    serde_json::from_str(&body).expect("JSON")
}
