//! The engine against an in-process scripted client: verdicts (OK, FAILED, NON-STRICT,
//! UNIMPLEMENTED), waits that time out, triggers, observed mode, and a redacted snapshot of an
//! outcome.
//!
//! The scripted client is a small real client: it opens twilsock sessions (so the server's
//! journal sees attempts, sessions and drops, and it reconnects after a drop like the SDK),
//! acts through the control plane for `send`, and reports events as the driver protocol's JSON
//! objects, fanning new messages out to every connected participant it plays.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::Control;
use rehearsal_mock_server::control::actors::Action;
use rehearsal_mock_server::domain::{AccountState, Cause, DomainEvent, DomainObserver};
use rehearsal_scenarios::engine::{
    Answer, ClientDriver, Command, DriverEnv, DriverError, DriverLog, Hello, Link, PlayOptions, play, play_server_side,
};
use rehearsal_scenarios::outcome::{ScenarioOutcome, Verdict};
use rehearsal_scenarios::{Loaded, load_str};
use rehearsal_test_support::Token;
use rehearsal_test_support::twilsock;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const ALL: &[&str] = &["hello", "connect", "send", "typing", "list_conversations", "shutdown"];
/// How long the scripted client waits before it reconnects after losing its socket.
const RECONNECT_AFTER: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// The scripted client
// ---------------------------------------------------------------------------------------------

struct Scripted {
    control: Control,
    /// Commands it lists in `hello` (`None`: it never answers `hello`, observed mode).
    capabilities: Option<Vec<&'static str>>,
    /// Commands it lists but answers `unsupported`.
    refuses: Vec<&'static str>,
    running: Option<(watch::Sender<bool>, Vec<JoinHandle<()>>, EventSink)>,
}

/// Where the client's events go; emptied when it stops, which ends the event stream.
type EventSink = Arc<Mutex<Option<mpsc::Sender<Value>>>>;

impl Scripted {
    fn new(server: &MockServer) -> Scripted {
        Scripted {
            control: server.control().clone(),
            capabilities: Some(ALL.to_vec()),
            refuses: Vec::new(),
            running: None,
        }
    }

    fn observed(server: &MockServer) -> Scripted {
        Scripted {
            capabilities: None,
            ..Scripted::new(server)
        }
    }
}

/// Everything the command task and the sockets share.
#[derive(Clone)]
struct World {
    control: Control,
    env: DriverEnv,
    /// Emptied when the client stops (the observer registered with the domain outlives it).
    events: EventSink,
    /// Connected client name → identity.
    clients: Arc<Mutex<BTreeMap<String, String>>>,
    stop: watch::Receiver<bool>,
}

impl World {
    fn emit(&self, client: &str, event: &str, fields: Value) {
        let mut v = json!({ "event": event, "at": now_ms(), "client": client });
        if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
            o.extend(f);
        }
        if let Some(tx) = self.events.lock().unwrap().as_ref() {
            let _ = tx.try_send(v);
        }
    }

    fn token(&self, identity: &str) -> String {
        let now = self
            .control
            .clock(Some(&self.env.account_sid))
            .map(|c| c.now().unix_secs())
            .unwrap_or_default();
        let env = &self.env;
        Token::of_key(&env.account_sid, &env.api_key, &env.api_secret, &env.service_sid, identity, now).mint()
    }

    /// Keeps a twilsock session open as `identity`, reconnecting after a loss, reporting the
    /// connection states; `ready` fires after the first successful init.
    async fn socket(self, client: String, identity: String, ready: Option<tokio::sync::oneshot::Sender<()>>) {
        let mut ready = ready;
        let mut stop = self.stop.clone();
        loop {
            self.emit(&client, "connection_state", json!({ "state": "connecting" }));
            if let Ok(mut ws) = twilsock::Client::try_connect(&self.env.twilsock_url).await {
                let init = json!({
                    "method": "init", "id": "TMinit", "token": self.token(&identity), "continuation_token": null,
                    "capabilities": ["client_update"], "registrations": [], "tweaks": null,
                });
                if ws.try_send(init, b"").await.is_ok() {
                    loop {
                        tokio::select! {
                            msg = ws.next_message() => match msg {
                                Some(Ok(twilsock::Message::Binary(b))) => {
                                    let Ok(p) = twilsock::decode(&b) else { continue };
                                    if p.method() == Some("reply") && p.id() == Some("TMinit") {
                                        self.emit(&client, "connection_state", json!({ "state": "connected" }));
                                        if let Some(r) = ready.take() {
                                            let _ = r.send(());
                                        }
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            },
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Reports `message_added` to every connected client in the conversation, like Sync would.
struct Fanout(World);

impl DomainObserver for Fanout {
    fn on_events(
        &self,
        account: &str,
        _now: rehearsal_mock_server::clock::Millis,
        state: &AccountState,
        _: &Cause,
        events: &[DomainEvent],
    ) {
        if account != self.0.env.account_sid {
            return;
        }
        let clients = self.0.clients.lock().unwrap().clone();
        for ev in events {
            let DomainEvent::MessageAdded {
                service,
                conversation,
                index,
            } = ev
            else {
                continue;
            };
            let Some(c) = state.services.get(service).and_then(|s| s.conversations.get(conversation)) else {
                continue;
            };
            let Some(m) = c.messages.get_seq(*index) else { continue };
            for (client, identity) in &clients {
                if c.participants.get(identity).is_some() {
                    self.0.emit(
                        client,
                        "message_added",
                        json!({ "conversation": c.conversation.sid, "index": m.index, "author": m.author, "body": m.body, "attributes": m.attributes }),
                    );
                }
            }
        }
    }
}

impl World {
    async fn run(&self, cmd: &Value) -> Answer {
        let client = cmd["client"].as_str().unwrap_or_default().to_owned();
        let account = self.env.account_sid.as_str();
        match cmd["cmd"].as_str().unwrap_or_default() {
            "connect" => {
                let identity = cmd["identity"].as_str().unwrap_or(&client).to_owned();
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(self.clone().socket(client.clone(), identity.clone(), Some(tx)));
                if tokio::time::timeout(Duration::from_secs(3), rx).await.is_err() {
                    return Answer::Failed(json!({ "message": "not connected in time" }));
                }
                self.emit(&client, "initialized", json!({}));
                let mine: Vec<(String, Option<String>)> = self
                    .control
                    .read(account, |s| {
                        s.default_service()
                            .conversations
                            .iter()
                            .filter(|(_, c)| c.participants.get(&identity).is_some())
                            .map(|(_, c)| (c.conversation.sid.clone(), c.conversation.unique_name.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (sid, name) in mine {
                    self.emit(&client, "conversation_joined", json!({ "conversation": sid, "unique_name": name }));
                }
                self.clients.lock().unwrap().insert(client, identity);
                Answer::Ok(json!({}))
            }
            "send" => {
                let identity = self.clients.lock().unwrap().get(&client).cloned();
                let Some(identity) = identity else {
                    return Answer::Failed(json!({ "message": "not connected" }));
                };
                let action = Action::Post {
                    conversation: cmd["conversation"].as_str().unwrap_or_default().to_owned(),
                    body: cmd["text"].as_str().map(str::to_owned),
                    attributes: cmd["attributes"].as_str().map(str::to_owned),
                    media: None,
                };
                match self.control.act(account, Some(&identity), action).await {
                    Ok(v) => Answer::Ok(json!({ "index": v["index"] })),
                    Err(e) => Answer::Failed(json!({ "message": e.to_string() })),
                }
            }
            "list_conversations" | "typing" | "shutdown" => Answer::Ok(json!({})),
            other => Answer::Unsupported(format!("{other} is not scripted")),
        }
    }
}

impl ClientDriver for Scripted {
    async fn start(&mut self, env: DriverEnv) -> Result<Link, DriverError> {
        let (commands_tx, mut commands) = mpsc::channel::<Command>(16);
        let (events_tx, events) = mpsc::channel(1024);
        let (stop_tx, stop) = watch::channel(false);
        let world = World {
            control: self.control.clone(),
            env: env.clone(),
            events: Arc::new(Mutex::new(Some(events_tx))),
            clients: Arc::default(),
            stop,
        };
        self.control.observe(Arc::new(Fanout(world.clone())));
        let world_events = world.events.clone();
        let mut tasks = Vec::new();
        if let Some(identity) = &env.observed_identity {
            tasks.push(tokio::spawn(world.clone().socket(identity.clone(), identity.clone(), None)));
        }
        let refuses = self.refuses.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Command { body, reply }) = commands.recv().await {
                let name = body["cmd"].as_str().unwrap_or_default();
                let answer = if refuses.contains(&name) {
                    Answer::Unsupported(format!("{name} is refused on purpose"))
                } else {
                    world.run(&body).await
                };
                let _ = reply.send(answer);
            }
        }));
        self.running = Some((stop_tx, tasks, world_events));
        Ok(Link {
            hello: self.capabilities.as_ref().map(|caps| Hello {
                name: "scripted".into(),
                version: "0".into(),
                protocol: 1,
                capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            }),
            commands: commands_tx,
            events,
        })
    }

    async fn stop(&mut self) -> DriverLog {
        if let Some((stop, tasks, events)) = self.running.take() {
            let _ = stop.send(true);
            for t in tasks {
                t.abort();
            }
            events.lock().unwrap().take();
        }
        DriverLog {
            stderr: "scripted client stopped\n".into(),
            exit: Some("0".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn scenario(text: &str) -> Loaded {
    match load_str("engine-test.toml", text) {
        Ok(l) => l,
        Err(errors) => panic!("{}", errors.iter().map(|e| e.render()).collect::<String>()),
    }
}

fn opts() -> PlayOptions {
    PlayOptions {
        settle: Duration::from_millis(200),
        ..PlayOptions::default()
    }
}

async fn run(server: &MockServer, driver: &mut Scripted, text: &str) -> ScenarioOutcome {
    play(server, &scenario(text), driver, &opts()).await
}

const HEAD: &str = r#"
title = "A test scenario"
checks = "What the engine does."
reference = "protocol §6.1"
rationale = "The engine must judge right."
"#;

fn driven(id: &str, requires: &str, body: &str) -> String {
    format!(
        "id = \"messaging.{id}\"\narea = \"messaging\"\nrequires = {requires}\ntimeout = \"3s\"\n{HEAD}\n[[clients]]\nname = \"alice\"\n\n[[clients]]\nname = \"bob\"\n{body}"
    )
}

/// Alice and Bob connected, Alice sends; Bob's event and the server's state are judged.
const SEND: &str = r#"
[[steps]]
command = "connect"
client = "alice"

[[steps]]
command = "connect"
client = "bob"

[[steps]]
wait_for = { event = "conversation_joined", client = "bob", match = { conversation = "general" } }
timeout = "2s"

[[steps]]
command = "send"
client = "alice"
conversation = "general"
text = "hello from alice"
attributes = { mood = "fine" }
label = "sent"

[[steps]]
expect = "event"
event = "message_added"
client = "bob"
match = { conversation = "general", index = 4, author = "alice", body = "hello from alice", attributes = { mood = "fine" } }
within = "2s"
"#;

fn verdict_line(o: &ScenarioOutcome) -> String {
    format!("{:?} {}", o.verdict, o.reason.clone().unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_run_whose_expectations_hold_is_ok() {
    let server = MockServer::start().await;
    let text = driven(
        "pass",
        r#"["events", "connect", "send"]"#,
        &format!(
            r#"{SEND}
[[expect]]
expect = "result"
command = "sent"
match = {{ index = 4 }}

[[expect]]
expect = "event"
event = "message_added"
client = "bob"
match = {{ body = "hello from alice" }}
count = 1

[[expect]]
expect = "state"
conversation = "general"
message_count = 5
last_message = {{ author = "alice", body = "hello from alice", attributes = {{ mood = "fine" }} }}
"#
        ),
    );
    let o = run(&server, &mut Scripted::new(&server), &text).await;
    assert_eq!(o.verdict, Verdict::Ok, "{}\n{:#?}", verdict_line(&o), o.expectations);
    assert_eq!(o.expectations.len(), 4);
    assert!(o.expectations.iter().all(|e| e.passed));
    assert_eq!(o.stderr, "scripted client stopped\n");
    let lanes: std::collections::BTreeSet<&str> = o.timeline.iter().map(|t| t.lane.as_str()).collect();
    for lane in ["client", "command", "answer", "server"] {
        assert!(lanes.contains(lane), "the timeline has a {lane} lane: {lanes:?}");
    }
    assert!(
        server.control().tenants().len() == 1,
        "the scenario's tenant is deleted (only the default account is left)"
    );
}

/// `PlayOptions::on_step` hears of each step as it ends, in order, as the outcome lists them.
#[tokio::test]
async fn on_step_hears_each_step_as_it_ends() {
    let server = MockServer::start().await;
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(usize, String, bool)>::new()));
    let sink = heard.clone();
    let opts = PlayOptions {
        on_step: Some(rehearsal_scenarios::engine::OnStep(std::sync::Arc::new(move |s| {
            sink.lock().unwrap().push((s.index, s.description.clone(), s.ok));
        }))),
        ..opts()
    };
    let text = driven("steps", r#"["events", "connect", "send"]"#, SEND);
    let o = play(&server, &scenario(&text), &mut Scripted::new(&server), &opts).await;
    let from_outcome: Vec<(usize, String, bool)> = o.steps.iter().map(|s| (s.index, s.description.clone(), s.ok)).collect();
    assert!(!from_outcome.is_empty(), "the scenario has steps");
    assert_eq!(*heard.lock().unwrap(), from_outcome);
}

#[tokio::test]
async fn a_failed_must_fails_the_run_with_expected_and_actual() {
    let server = MockServer::start().await;
    let text = driven(
        "fail",
        r#"["events", "connect", "send"]"#,
        &format!(
            r#"{SEND}
[[expect]]
expect = "event"
event = "message_added"
client = "alice"
match = {{ body = "never sent" }}
within = "500ms"
label = "alice gets a message nobody sent"
"#
        ),
    );
    let o = run(&server, &mut Scripted::new(&server), &text).await;
    assert_eq!(o.verdict, Verdict::Failed, "{}", verdict_line(&o));
    let failed = o.expectations.iter().find(|e| !e.passed).expect("a failed expectation");
    assert_eq!(failed.label, "alice gets a message nobody sent");
    assert_eq!(
        failed.expected,
        r#"alice reports message_added matching {"body":"never sent"} at least once within 500ms"#
    );
    assert!(
        failed
            .actual
            .starts_with("it reported message_added 1 time(s), none matching: [message_added index=4"),
        "{}",
        failed.actual
    );
    assert!(!failed.evidence.is_empty(), "the near misses are the evidence");
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .starts_with("alice gets a message nobody sent: expected alice reports")
    );
}

#[tokio::test]
async fn a_failed_should_is_non_strict() {
    let server = MockServer::start().await;
    let text = driven(
        "should",
        r#"["events", "connect", "send"]"#,
        &format!(
            r#"{SEND}
[[expect]]
expect = "no_event"
event = "message_added"
client = "bob"
for = "300ms"
since = "start"
grade = "should"
"#
        ),
    );
    let o = run(&server, &mut Scripted::new(&server), &text).await;
    assert_eq!(o.verdict, Verdict::NonStrict, "{}", verdict_line(&o));
    assert!(o.reason.unwrap().contains("does not report message_added"));
}

#[tokio::test]
async fn a_command_answered_unsupported_is_unimplemented() {
    let server = MockServer::start().await;
    let text = driven(
        "unsupported",
        r#"["events", "connect", "typing"]"#,
        r#"
[[steps]]
command = "connect"
client = "alice"

[[steps]]
command = "connect"
client = "bob"

[[steps]]
command = "typing"
client = "alice"
conversation = "general"

[[steps]]
expect = "event"
event = "typing_started"
client = "bob"
within = "1s"
"#,
    );
    let mut driver = Scripted::new(&server);
    driver.refuses = vec!["typing"];
    let o = run(&server, &mut driver, &text).await;
    assert_eq!(o.verdict, Verdict::Unimplemented, "{}", verdict_line(&o));
    assert_eq!(
        o.reason.as_deref(),
        Some("the client does not support `typing`: typing is refused on purpose")
    );
    assert!(o.expectations.is_empty(), "nothing is judged after an unsupported command");

    // A capability missing from `hello` is found before anything runs.
    let mut driver = Scripted::new(&server);
    driver.capabilities = Some(vec!["hello", "connect"]);
    let o = run(&server, &mut driver, &text).await;
    assert_eq!(verdict_line(&o), "Unimplemented the client does not support typing");
    assert!(o.steps.is_empty());
}

#[tokio::test]
async fn a_wait_for_that_times_out_fails_the_run_naming_the_condition() {
    let server = MockServer::start().await;
    let text = driven(
        "wait-for",
        r#"["events", "connect"]"#,
        r#"
[[steps]]
command = "connect"
client = "alice"

[[steps]]
command = "connect"
client = "bob"

[[steps]]
wait_for = { event = "conversation_joined", client = "alice", match = { conversation = "history", unique_name = "nope" } }
timeout = "300ms"

[[expect]]
expect = "client_state"
client = "alice"
connection = "connected"
"#,
    );
    let o = run(&server, &mut Scripted::new(&server), &text).await;
    assert_eq!(o.verdict, Verdict::Failed);
    assert_eq!(
        o.reason.as_deref(),
        Some(
            r#"steps[2] wait_for conversation_joined of alice matching {"conversation":"history","unique_name":"nope"} was not met within 300ms"#
        )
    );
    assert!(o.expectations.is_empty(), "an aborted run judges nothing more");
    assert!(!o.steps.last().unwrap().ok);
}

// ---------------------------------------------------------------------------------------------
// Triggers and observed mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_trigger_drops_the_session_200ms_after_it_opened() {
    let server = MockServer::start().await;
    let text = format!(
        r#"id = "connection.trigger"
area = "connection"
requires = ["events", "connect"]
{HEAD}
[[clients]]
name = "alice"

[[steps]]
command = "connect"
client = "alice"

[[on]]
when = {{ observed = "session_opened", client = "alice" }}
[[on.then]]
wait = "200ms"
[[on.then]]
server = "drop"
target = "alice"

[[expect]]
expect = "order"
client = "alice"
within = "3s"
events = [
  {{ event = "connection_state", match = {{ state = "connected" }} }},
  {{ event = "connection_state", match = {{ state = "connecting" }} }},
  {{ event = "connection_state", match = {{ state = "connected" }} }},
]

[[expect]]
expect = "observed"
observed = "session_closed"
client = "alice"
match = {{ reason = "dropped" }}
count = 1
"#
    );
    let o = run(&server, &mut Scripted::new(&server), &text).await;
    assert_eq!(o.verdict, Verdict::Ok, "{}\n{:#?}", verdict_line(&o), o.expectations);
    let opened = o
        .timeline
        .iter()
        .find(|t| t.lane == "server" && t.summary == "init ok")
        .expect("init ok");
    let dropped = o
        .steps
        .iter()
        .find(|s| s.description == "on[0].then[1]: server drop alice")
        .expect("the trigger's drop ran");
    let after = dropped.started_ms - opened.at_ms;
    assert!((200..600).contains(&after), "dropped {after} ms after the session opened");
    assert_eq!(
        o.steps.iter().filter(|s| s.description.contains("server drop")).count(),
        1,
        "fired once"
    );
}

#[tokio::test]
async fn an_observed_client_is_judged_by_what_the_server_saw() {
    let server = MockServer::start().await;
    let text = format!(
        r#"id = "connection.observed"
area = "connection"
requires = []
{HEAD}
[[clients]]
name = "alice"

[[steps]]
wait_for = {{ observed = "session_opened", client = "alice" }}
timeout = "2s"

[[steps]]
mark = "dropped"

[[steps]]
server = "drop"
target = "alice"

[[expect]]
expect = "reconnects"
client = "alice"
since = "dropped"
within = "1500ms"
count = 1
first_after = {{ min = "200ms", max = "1s" }}

[[expect]]
expect = "observed"
observed = "init"
client = "alice"
match = {{ outcome = "ok" }}
since = "dropped"
count = 1

[[expect]]
expect = "not_observed"
observed = "init"
identity = "bob"
for = "500ms"
"#
    );
    let o = run(&server, &mut Scripted::observed(&server), &text).await;
    assert_eq!(o.verdict, Verdict::Ok, "{}\n{:#?}", verdict_line(&o), o.expectations);
    let attempts = &o.expectations[0].evidence;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["identity"], "alice");
    assert!(o.timeline.iter().all(|t| t.lane != "command"), "no commands in observed mode");
}

// ---------------------------------------------------------------------------------------------
// Server-side play (`rehearsal serve --scenario`)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_side_play_starts_when_the_app_connects_and_skips_the_client_side() {
    let server = MockServer::start().await;
    let control = server.control().clone();
    let account = "AC72656865617273616c00000000000001";
    let text = format!(
        r#"id = "connection.server-side"
area = "connection"
requires = ["events", "connect"]
timeout = "1s"
{HEAD}
[[clients]]
name = "alice"

[[steps]]
command = "connect"
client = "alice"

[[steps]]
wait_for = {{ observed = "session_opened", client = "alice" }}
timeout = "500ms"

[[steps]]
mark = "dropped"

[[steps]]
server = "drop"
target = "alice"

[[steps]]
wait_for = {{ event = "connection_state", client = "alice", match = {{ state = "connecting" }} }}
timeout = "500ms"

[[expect]]
expect = "reconnects"
client = "alice"
since = "dropped"
within = "800ms"
count = 1

[[expect]]
expect = "event"
event = "connection_state"
client = "alice"
match = {{ state = "connected" }}
"#
    );
    let loaded = scenario(&text);
    let (base, ws) = (server.url(), server.twilsock_url());
    let mut play = tokio::spawn(async move { play_server_side(&control, &base, &ws, &loaded, account, &opts()).await });

    // No app yet: the play waits, though the scenario's own timeout (1 s) has long passed.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), &mut play).await.is_err(),
        "the play must wait for the app"
    );

    // The app: a real twilsock client as alice on the default account, reconnecting after a loss.
    let (stop_tx, stop) = watch::channel(false);
    let credentials = server.control().tenant(account).expect("default account").credentials;
    let world = World {
        control: server.control().clone(),
        env: DriverEnv {
            scenario: "app".into(),
            base_url: server.url(),
            twilsock_url: server.twilsock_url(),
            token_url: String::new(),
            account_sid: credentials.account_sid,
            auth_token: credentials.auth_token,
            api_key: credentials.api_key,
            api_secret: credentials.api_secret,
            service_sid: credentials.service_sid,
            observed_identity: None,
            observed_token_ttl: None,
        },
        events: Arc::new(Mutex::new(None)),
        clients: Arc::default(),
        stop,
    };
    let app = tokio::spawn(world.socket("alice".into(), "alice".into(), None));
    let o = tokio::time::timeout(Duration::from_secs(10), play)
        .await
        .expect("the play ends")
        .expect("no panic");
    let _ = stop_tx.send(true);
    app.abort();

    assert_eq!(
        o.verdict,
        Verdict::Ok,
        "{}\n{:#?}\n{:#?}",
        verdict_line(&o),
        o.steps,
        o.expectations
    );
    let labels: Vec<&str> = o.expectations.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(labels, ["reconnects"], "client-side expectations are not judged");
    let skipped: Vec<&str> = o
        .steps
        .iter()
        .filter(|s| s.detail.as_deref().is_some_and(|d| d.starts_with("skipped")))
        .map(|s| s.description.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "command connect alice",
            "wait_for connection_state of alice matching {\"state\":\"connecting\"}"
        ],
        "{:#?}",
        o.steps
    );
    assert!(
        o.steps.iter().any(|s| s.description == "server drop alice" && s.ok),
        "{:#?}",
        o.steps
    );
    // The default account is the app's: nothing was deleted.
    assert!(server.control().has_tenant(account));
}

// ---------------------------------------------------------------------------------------------
// A redacted outcome
// ---------------------------------------------------------------------------------------------

/// Replaces what changes from run to run: SIDs, ports, times, token keys.
fn redact(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(redact_text(s)),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "at_ms" | "started_ms" | "duration_ms" | "duration" | "at" => json!("[ms]"),
                        _ => redact(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn redact_text(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("met at ") {
        return format!(
            "met at [ms]{}",
            rest.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start_matches(" ms")
        );
    }
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let sid = i + 34 <= chars.len()
            && chars[i].is_ascii_uppercase()
            && chars[i + 1].is_ascii_uppercase()
            && chars[i + 2..i + 34].iter().all(|c| c.is_ascii_hexdigit());
        let key = s[s.char_indices().nth(i).map_or(0, |(b, _)| b)..].starts_with("key=")
            && i + 68 <= chars.len()
            && chars[i + 4..i + 68].iter().all(|c| c.is_ascii_hexdigit());
        if sid {
            out.push_str(&format!("{}{}[sid]", chars[i], chars[i + 1]));
            i += 34;
        } else if key {
            out.push_str("key=[key]");
            i += 68;
        } else if s[s.char_indices().nth(i).map_or(0, |(b, _)| b)..].starts_with("127.0.0.1:") {
            out.push_str("127.0.0.1:[port]");
            i += "127.0.0.1:".len();
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn an_outcome_reads_well_once_redacted() {
    let server = MockServer::start().await;
    let text = driven(
        "snapshot",
        r#"["events", "connect", "send"]"#,
        &format!(
            r#"{SEND}
[[expect]]
expect = "result"
command = "sent"
match = {{ index = 4 }}

[[expect]]
expect = "state"
conversation = "general"
message_count = 6
label = "a message too many"
"#
        ),
    );
    let o = run(&server, &mut Scripted::new(&server), &text).await;
    let mut v = serde_json::to_value(&o).unwrap();
    // Client events and journal entries interleave differently from run to run; commands,
    // answers, marks and actions are in the scenario's order.
    let timeline: Vec<Value> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| ["command", "answer", "action"].contains(&t["lane"].as_str().unwrap()))
        .cloned()
        .collect();
    v["timeline"] = Value::Array(timeline);
    insta::assert_json_snapshot!(redact(&v));
}

#[test]
fn redaction_finds_sids_and_ports() {
    assert_eq!(
        redact_text("CH0123456789abcdef0123456789abcdef at http://127.0.0.1:4567/x"),
        "CH[sid] at http://127.0.0.1:[port]/x"
    );
}
