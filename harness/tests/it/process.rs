//! The process driver against fake adapters: hello, observed mode, answers and events,
//! protocol errors, crashes, timeouts, killing the whole tree, stderr capture.
use std::time::{Duration, Instant};

use rehearsal_harness::ProcessDriver;
use rehearsal_scenarios::engine::{Answer, ClientDriver, Command, DriverError};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::support::{env, fake};

fn driver(mode: &str) -> ProcessDriver {
    ProcessDriver::new(fake(mode))
        .hello_timeout(Duration::from_millis(1500))
        .shutdown_grace(Duration::from_millis(1500))
}

/// The default wait for `hello` covers an adapter that takes seconds to load (it once took over
/// 5 s on a busy 2-core CI machine, and a driven client was then graded in observed mode).
#[tokio::test]
async fn a_slow_starting_adapter_still_answers_hello_within_the_default_wait() {
    let mut d = ProcessDriver::new(fake("slow")).shutdown_grace(Duration::from_millis(1500));
    let link = d.start(env("token.quickstart")).await.expect("starts");
    let hello = link.hello.as_ref().expect("answered hello: not observed mode");
    assert_eq!(hello.name, "fake");
    assert_eq!(
        send(&link, json!({"cmd": "echo"})).await.map(|a| matches!(a, Answer::Ok(_))),
        Some(true)
    );
    d.stop().await;
}

async fn send(link: &rehearsal_scenarios::engine::Link, body: Value) -> Option<Answer> {
    let (reply, answer) = oneshot::channel();
    link.commands.send(Command { body, reply }).await.ok()?;
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("answered in time")
        .ok()
}

/// Whether a process is gone (a zombie nobody reaps counts as gone).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// SIGKILL is delivered asynchronously: a killed process may take a moment to be gone.
async fn eventually_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !gone(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gone(pid)
}

#[tokio::test]
async fn hello_commands_answers_and_events() {
    let mut d = driver("ok");
    let mut link = d.start(env("messaging.x")).await.expect("starts");
    let hello = link.hello.clone().expect("answers hello");
    assert_eq!((hello.name.as_str(), hello.version.as_str(), hello.protocol), ("fake", "0.0.1", 1));
    assert!(hello.capabilities.contains(&"connect".to_owned()));
    assert_eq!(d.hello().map(|h| h.name.as_str()), Some("fake"));

    assert_eq!(
        send(&link, json!({"cmd": "connect", "client": "alice"})).await,
        Some(Answer::Ok(json!({})))
    );
    let event = tokio::time::timeout(Duration::from_secs(5), link.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event["event"], "connection_state");
    assert_eq!(event["state"], "connected");

    // Commands are numbered after hello (1): the adapter sees ids and the body.
    let Some(Answer::Ok(echo)) = send(&link, json!({"cmd": "echo", "client": "alice", "text": "hi"})).await else {
        panic!("echo answers ok");
    };
    assert_eq!(echo["line"], json!({"id": 3, "cmd": "echo", "client": "alice", "text": "hi"}));
    assert_eq!(
        send(&link, json!({"cmd": "fail", "client": "alice"})).await,
        Some(Answer::Failed(
            json!({"message": "Conversation not found", "code": 50350, "status": 404})
        ))
    );
    assert_eq!(
        send(&link, json!({"cmd": "typing", "client": "alice"})).await,
        Some(Answer::Unsupported("fake does not do typing".into()))
    );

    let started = Instant::now();
    let log = d.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown is prompt: {:?}",
        started.elapsed()
    );
    assert_eq!(log.exit.as_deref(), Some("exited with status 0"));
    assert!(log.stderr.contains("fake: shutting down"), "{}", log.stderr);
    assert!(d.protocol_errors().is_empty(), "{:?}", d.protocol_errors());
    // The events channel ends with the process; stop is idempotent.
    assert!(link.events.recv().await.is_none());
    assert_eq!(d.stop().await.exit, log.exit);
}

#[tokio::test]
async fn no_hello_means_observed_mode_and_the_process_keeps_running() {
    let mut d = driver("silent");
    let started = Instant::now();
    let link = d.start(env("connection.y")).await.expect("a silent program still starts");
    assert!(link.hello.is_none());
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let pid = d.pid().expect("running");
    assert!(!gone(pid), "the program keeps running in observed mode");
    let log = d.stop().await;
    assert!(gone(pid));
    // Observed programs get SIGTERM, their clean shutdown.
    assert_eq!(log.exit.as_deref(), Some("killed by signal 15"), "{log:?}");
    assert!(
        log.stderr.contains("observed= identity="),
        "driven scenarios get no observed variables: {}",
        log.stderr
    );
}

#[tokio::test]
async fn observed_scenarios_get_their_identity_and_no_hello() {
    let mut d = driver("silent");
    let mut e = env("token.quickstart");
    e.observed_identity = Some("alice".into());
    e.observed_token_ttl = Some(Duration::from_secs(90));
    let started = Instant::now();
    let link = d.start(e).await.expect("starts");
    assert!(link.hello.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no hello is waited for in observed mode"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = d.stop().await;
    assert!(
        log.stderr.contains("observed=1 identity=alice ttl=90 token_url=http://127.0.0.1:9/token?account=AC00000000000000000000000000000001 scenario=token.quickstart"),
        "{}",
        log.stderr
    );
}

#[tokio::test]
async fn a_program_that_exits_before_hello_does_not_start() {
    let mut d = driver("crash");
    let Err(DriverError::Start(why)) = d.start(env("x.y")).await else {
        panic!("a crash is a start error");
    };
    assert!(why.contains("exited with status 3"), "{why}");
    assert!(
        why.contains("cannot find module @twilio/conversations"),
        "stderr is in the message: {why}"
    );
}

#[tokio::test]
async fn a_newer_protocol_is_refused() {
    let mut d = driver("future");
    match d.start(env("x.y")).await {
        Err(DriverError::Protocol(2, 1)) => {}
        other => panic!("expected a protocol error, got {:?}", other.map(|l| l.hello)),
    }
    assert!(d.pid().is_none(), "the process is stopped");
}

#[tokio::test]
async fn a_crash_ends_pending_commands_and_events() {
    let mut d = driver("crash-after-hello");
    let mut link = d.start(env("x.y")).await.expect("starts");
    assert!(link.hello.is_some());
    // The adapter dies instead of answering: the reply channel closes.
    assert_eq!(send(&link, json!({"cmd": "connect", "client": "alice"})).await, None);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), link.events.recv())
            .await
            .unwrap()
            .is_none()
    );
    let log = d.stop().await;
    assert_eq!(log.exit.as_deref(), Some("exited with status 3"));
    assert!(log.stderr.contains("fake: crashing"));
}

#[tokio::test]
async fn stop_kills_the_whole_tree_of_a_program_that_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let mut d = ProcessDriver::new(format!("FAKE_PIDFILE='{}' {}", pidfile.display(), fake("hang")))
        .hello_timeout(Duration::from_secs(5))
        .shutdown_grace(Duration::from_millis(500));
    let _link = d.start(env("x.y")).await.expect("starts");
    let leader = d.pid().unwrap();
    let grandchild: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(!gone(grandchild));
    let started = Instant::now();
    let log = d.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(4),
        "waited the grace, then killed: {took:?}"
    );
    assert!(log.exit.as_deref().unwrap().starts_with("killed by signal 9 (killed:"), "{log:?}");
    assert!(gone(leader), "the shell is gone");
    assert!(eventually_gone(grandchild).await, "its child is gone too");
}

#[tokio::test]
async fn lines_that_break_the_protocol_are_recorded() {
    let mut d = driver("garbage");
    let link = d.start(env("x.y")).await.expect("garbage before hello is skipped");
    assert!(link.hello.is_some());
    let log = d.stop().await;
    let errors = d.protocol_errors();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].starts_with("stdout line 1 is not JSON"), "{}", errors[0]);
    assert!(errors[1].starts_with("stdout line 2 is not a JSON object"), "{}", errors[1]);
    assert!(errors[2].contains("answers command 99, which is not waiting"), "{}", errors[2]);
    assert!(errors[3].contains("without a boolean `ok`"), "{}", errors[3]);
    assert!(
        log.stderr.contains("[rehearsal: protocol error: stdout line 1 is not JSON"),
        "{}",
        log.stderr
    );
}

#[tokio::test]
async fn stderr_keeps_the_last_64_kib() {
    let mut d = driver("noisy");
    let _link = d.start(env("x.y")).await.expect("starts");
    let log = d.stop().await;
    assert!(log.stderr.len() <= 64 * 1024 + 100, "{}", log.stderr.len());
    assert!(log.stderr.starts_with("[rehearsal: "), "the cut is said: {}", &log.stderr[..80]);
    assert!(log.stderr.contains("fake: the last line\n"));
    assert!(log.stderr.ends_with("fake: shutting down\n"));
}

#[tokio::test]
async fn a_command_that_does_not_run_is_a_start_error() {
    let mut d = ProcessDriver::new("exec /nonexistent/adapter").hello_timeout(Duration::from_secs(2));
    let Err(DriverError::Start(why)) = d.start(env("x.y")).await else {
        panic!("a missing program is a start error");
    };
    assert!(why.contains("exited with status 127") || why.contains("status 2"), "{why}");
}

#[tokio::test]
async fn dropping_a_running_driver_kills_its_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let mut d = ProcessDriver::new(format!("FAKE_PIDFILE='{}' {}", pidfile.display(), fake("hang")));
    let _link = d.start(env("x.y")).await.expect("starts");
    let grandchild: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    drop(d);
    assert!(eventually_gone(grandchild).await);
}
