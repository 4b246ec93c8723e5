//! Hostile input against the real binary: control-plane numbers out of range, idle and
//! over-the-cap connections, shutdown with a peer holding a half-sent request, crash leftovers,
//! and an interrupted `rehearsal run`. After each hostile case the server must still serve
//! another tenant.
mod support;

use support::{BIN, CONTROL_TOKEN, Served, raw_get, sid};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ACCOUNT: &str = "AC72656865617273616c00000000000001";
const AUTH_TOKEN: &str = "rehearsal-auth-token";
/// Longest any single answer may take here; far beyond what a healthy server needs.
const ANSWER: Duration = Duration::from_secs(10);

impl Served {
    /// The default tenant still answers REST: the server survived whatever came before.
    async fn assert_serves_another_tenant(&self) {
        let res = client()
            .get(format!("{}/v1/Conversations", self.url))
            .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
            .send()
            .await
            .expect("the server still answers");
        assert_eq!(res.status(), 200);
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(ANSWER).build().unwrap()
}

/// Waits for the process to exit, at most `within`.
fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(pid: u32) {
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
}

/// Whether the peer closed the connection (EOF or reset) within `within`; any bytes it sends
/// first (an error response) are read and ignored.
fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Control-plane numbers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn advancing_a_clock_by_u64_max_is_refused_and_the_clock_still_reads() {
    let s = Served::start(&[]);
    let tenant = sid(&s.tenant().await).to_owned();
    for path in [format!("/tenants/{tenant}/clock"), "/clock".to_owned()] {
        let (status, body) = s.post(&path, json!({"action": "advance", "by_ms": u64::MAX})).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{path}: {body}");
        let (status, body) = s.post(&path, json!({"action": "freeze", "at": i64::MAX})).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{path}: {body}");
        // The clock is unharmed: it reads, and still moves by sane amounts.
        let (status, body) = s.post(&path, json!({"action": "advance", "by_ms": 1000})).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["now"].as_i64().unwrap() > 1_700_000_000_000, "{body}");
    }
    let res = client()
        .get(s.control(&format!("/tenants/{tenant}/clock")))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    s.assert_serves_another_tenant().await;
}

#[tokio::test]
async fn generating_u64_max_messages_is_refused_at_once() {
    let s = Served::start(&[]);
    let tenant = sid(&s.tenant().await).to_owned();
    let actors = format!("/tenants/{tenant}/actors");
    let (status, body) = s
        .post(&actors, json!({"as": null, "action": "create_conversation", "unique_name": "deep"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .post(
            &actors,
            json!({"as": null, "action": "generate_messages", "conversation": "deep", "count": u64::MAX}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{body}");
    let (status, body) = s
        .post(
            &actors,
            json!({"as": null, "action": "generate_messages", "conversation": "deep", "count": 100_001}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{body}");
    // A seed asking for as many is refused the same way, before anything is created.
    let seed = json!({"conversations": [{"unique_name": "deep", "generate_messages": u64::MAX}]});
    let (status, body) = s.post("/tenants", json!({"seed": seed})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_seed")), "{body}");
    // Within the cap it works.
    let (status, body) = s
        .post(
            &actors,
            json!({"as": null, "action": "generate_messages", "conversation": "deep", "count": 3}),
        )
        .await;
    assert_eq!((status, &body["last_index"]), (200, &json!(2)), "{body}");
    s.assert_serves_another_tenant().await;
}

#[tokio::test]
async fn generated_media_of_u64_max_bytes_is_refused() {
    let s = Served::start(&[]);
    let tenant = sid(&s.tenant().await).to_owned();
    let actors = format!("/tenants/{tenant}/actors");
    let (status, body) = s
        .post(&actors, json!({"as": null, "action": "create_conversation", "unique_name": "pics"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let media = json!({"content_type": "image/png", "size": u64::MAX});
    let (status, body) = s
        .post(
            &actors,
            json!({"as": null, "action": "post", "conversation": "pics", "media": media}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{body}");
    s.assert_serves_another_tenant().await;
}

#[tokio::test]
async fn durations_beyond_a_day_are_refused() {
    let s = Served::start(&[]);
    let tenant = sid(&s.tenant().await).to_owned();
    let day_and_a_bit = 24 * 3600 * 1000 + 1;
    let cases = [
        (
            format!("/tenants/{tenant}/connections/actions"),
            json!({"action": "latency", "ms": u64::MAX}),
        ),
        (
            format!("/tenants/{tenant}/connections/actions"),
            json!({"action": "close", "code": 308, "backoff_ms": day_and_a_bit}),
        ),
        (format!("/tenants/{tenant}/connections/refuse"), json!({"for_ms": u64::MAX})),
        (
            format!("/tenants/{tenant}/inits/deny"),
            json!({"count": 1, "status": 429, "error_code": 51202, "backoff_ms": u64::MAX}),
        ),
        (
            format!("/tenants/{tenant}/faults/http"),
            json!({"path": "/v1/*", "count": 1, "fault": {"kind": "delay", "by": u64::MAX}}),
        ),
    ];
    for (path, body) in cases {
        let (status, answer) = s.post(&path, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_body")),
            "{path} {body}: {answer}"
        );
    }
    // Nothing was armed: the tenant's REST requests are not delayed or refused.
    let res = client()
        .get(s.control(&format!("/tenants/{tenant}/faults")))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    let faults: Value = res.json().await.unwrap();
    assert_eq!(faults, json!({"http": [], "inits": [], "refusals": []}));
    s.assert_serves_another_tenant().await;
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_half_sent_request_line_is_closed_after_the_header_read_timeout() {
    let s = Served::start(&["--header-read-timeout-ms", "300"]);
    let mut slow = TcpStream::connect(&s.addr).unwrap();
    slow.write_all(b"GET /v1/Conver").unwrap();
    let started = Instant::now();
    assert!(closed_by_peer(&mut slow, ANSWER), "the half-sent request line was not closed");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // A silent connection too.
    let mut silent = TcpStream::connect(&s.addr).unwrap();
    assert!(closed_by_peer(&mut silent, ANSWER), "the silent connection was not closed");
    s.assert_serves_another_tenant().await;
}

#[tokio::test]
async fn a_stalled_request_body_is_closed_after_the_idle_timeout() {
    let s = Served::start(&["--idle-timeout-ms", "300"]);
    let mut stalled = TcpStream::connect(&s.addr).unwrap();
    let auth = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{AUTH_TOKEN}"))
        )
    };
    // The head is complete (so the header-read timeout is not what ends it); the body stops.
    write!(
        stalled,
        "POST /v1/Conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nFriendlyName=sta"
    )
    .unwrap();
    let started = Instant::now();
    assert!(closed_by_peer(&mut stalled, ANSWER), "the stalled request was not closed");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    s.assert_serves_another_tenant().await;
    // Nothing of the stalled request was created.
    let res = client()
        .get(format!("{}/v1/Conversations", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains("\"sta\""), "{text}");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_while_open_ones_work() {
    let s = Served::start(&["--max-connections", "2"]);
    // Two connections, each proven accepted by an answer, kept alive.
    let mut first = TcpStream::connect(&s.addr).unwrap();
    assert_eq!(raw_get(&mut first, "/token?identity=a", ANSWER), 200);
    let mut second = TcpStream::connect(&s.addr).unwrap();
    assert_eq!(raw_get(&mut second, "/token?identity=b", ANSWER), 200);
    // A third is closed at once, without an answer.
    let mut third = TcpStream::connect(&s.addr).unwrap();
    let _ = third.write_all(b"GET /token?identity=c HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(closed_by_peer(&mut third, ANSWER), "a connection over the cap was served");
    // The open ones still work.
    assert_eq!(raw_get(&mut first, "/token?identity=a", ANSWER), 200);
    assert_eq!(raw_get(&mut second, "/token?identity=b", ANSWER), 200);
    assert!(
        s.log().contains("connection cap reached"),
        "no log line about the cap:\n{}",
        s.log()
    );
    // Once one closes, a new connection is served again.
    drop(first);
    let deadline = Instant::now() + ANSWER;
    loop {
        let mut next = TcpStream::connect(&s.addr).unwrap();
        next.set_read_timeout(Some(ANSWER)).unwrap();
        let sent = next.write_all(b"GET /token?identity=d HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut buf = [0u8; 12];
        if sent.is_ok() && next.read_exact(&mut buf).is_ok() {
            assert_eq!(&buf, b"HTTP/1.1 200");
            break;
        }
        // The server has not yet seen the first connection end; it answers within ANSWER.
        assert!(Instant::now() < deadline, "no connection served after one closed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Shutdown and the state file
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_with_a_half_sent_request_exits_within_the_deadline_and_writes_the_state_0600() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    let mut s = Served::start(&["--state", state_arg, "--shutdown-timeout-ms", "500"]);
    let res = client()
        .post(format!("{}/v1/Conversations", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .form(&[("UniqueName", "kept")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Headers complete, body promised and never sent: the handler waits on it.
    let mut holder = TcpStream::connect(&s.addr).unwrap();
    let auth = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{AUTH_TOKEN}"))
        )
    };
    write!(
        holder,
        "POST /v1/Conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nUniqueName=ha"
    )
    .unwrap();
    // And one that sent half a request line.
    let mut half = TcpStream::connect(&s.addr).unwrap();
    half.write_all(b"POST /v1/Conv").unwrap();
    s.assert_serves_another_tenant().await;
    sigterm(s.child.id());
    let status = wait_exit(&mut s.child, Duration::from_secs(8)).expect("serve did not exit within its shutdown deadline");
    assert!(status.success(), "{status:?}\n{}", s.log());
    let text = std::fs::read_to_string(&state).expect("the state was written");
    assert!(text.contains("\"kept\""), "the state holds what was acknowledged");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the state holds secrets: mode {mode:o}");
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    drop((holder, half));
}

#[tokio::test]
async fn stale_temporary_state_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let stale = [".state.json.tmp", ".state.json.a1B2c3.tmp"];
    for name in stale {
        std::fs::write(dir.path().join(name), "{\"half\": ").unwrap();
    }
    let unrelated = dir.path().join(".other.json.tmp");
    std::fs::write(&unrelated, "keep me").unwrap();
    let s = Served::start(&["--state", state.to_str().unwrap()]);
    for name in stale {
        assert!(!dir.path().join(name).exists(), "{name} was left behind");
    }
    assert!(unrelated.exists(), "only this state's temporaries are removed");
    s.assert_serves_another_tenant().await;
}

// ---------------------------------------------------------------------------------------------
// An interrupted run
// ---------------------------------------------------------------------------------------------

/// Whether a process is gone (or a zombie waiting to be reaped, which runs nothing).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("Z"),
    }
}

fn lines_of(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn an_interrupted_run_stops_its_adapters_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let report = dir.path().join("report.json");
    // Never answers `hello` (observed mode); records itself and a child, and sleeps.
    let adapter = format!(
        "sleep 1000 & echo $! >> '{p}'; echo $$ >> '{p}'; exec sleep 1000",
        p = pids.display()
    );
    let mut run = Command::new(BIN)
        .args(["run", "--no-progress", "--observed", "--client", &adapter])
        .args(["--scenario", "token.three-moments-by-clock"])
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `--observed`: no probe, so the scenario's start is the only one (two pids).
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines_of(&pids).len() < 2 {
        assert!(Instant::now() < deadline, "the scenario's adapter did not start");
        assert!(run.try_wait().unwrap().is_none(), "the run ended before it was interrupted");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(run.id());
    let status = wait_exit(&mut run, Duration::from_secs(15)).expect("the run did not end after SIGTERM");
    assert_eq!(status.code(), Some(143), "{status:?}");
    let recorded = lines_of(&pids);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !recorded.iter().all(|p| gone(*p)) {
        assert!(
            Instant::now() < deadline,
            "adapter processes outlived the run: {:?}",
            recorded.iter().filter(|p| !gone(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("the JSON report was written")).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["interrupted"], "SIGTERM", "{summary}");
    assert_eq!(summary["exit_code"], 143);
    assert_eq!(summary["not_run"], json!(["token.three-moments-by-clock"]), "{summary}");
    assert_eq!(doc["scenarios"], json!([]));
}
