//! Twilsock sessions end to end: a real `tokio-tungstenite` client against the session handler
//! mounted on a loopback port, with a fake [`Backend`] (tokens `good:<identity>[:<ttl secs>]`,
//! `other:<identity>` for a second account, `expired`, `busy` for a 503; upstream requests are
//! echoed back, and each completion is reported). The fake also records every
//! [`SessionObservation`], which is how tests wait for a command to have taken effect.
//! The last tests run the real backend (`Realtime`) in a [`MockServer`], for the journal and the
//! control plane's view of sessions.
//!
//! The server clock is frozen, so token timers fire only when a test advances it. Every wait
//! is bounded by [`WAIT`]; nothing sleeps for a fixed time. Absence of a packet is shown with a
//! probe: the session handles due timers before inbound packets, so the next packet after a
//! probe's reply would have been the timer's. Absence during a stall is shown against an event
//! that takes longer than the behaviour under test (another session's liveness timeout).
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::auth::identity::Caller;
use rehearsal_mock_server::auth::{Claims, TokenError};
use rehearsal_mock_server::clock::{Clock, Millis};
use rehearsal_mock_server::control::sessions::Target;
use rehearsal_mock_server::domain::{self, Account, Domain, NewAccount};
use rehearsal_mock_server::journal::{Filter, Kind};
use rehearsal_mock_server::twilsock::codec::{self, Limits};
use rehearsal_mock_server::twilsock::session::{self, CloseCode, Endpoint, SessionCommand, SessionConfig};
use rehearsal_mock_server::twilsock::{
    Backend, EndReason, InitRejection, OutboxError, Packet, SessionInfo, SessionObservation, UpstreamRequest, UpstreamResponse,
};
use rehearsal_test_support::Token;
use rehearsal_test_support::twilsock::{Client, Ending, Message, frame};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::timeout;

/// Upper bound for every wait.
const WAIT: Duration = Duration::from_secs(5);

/// The size of the fake backend's `/big` replies.
const BIG_REPLY_BYTES: usize = 1024 * 1024;

/// Where the frozen server clock starts (Unix millis).
const T0: Millis = Millis(1_700_000_000_000);

// ---------------------------------------------------------------------------------------------
// Fake backend
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Event {
    Opened(SessionInfo<Caller>),
    Updated { id: u64, expires_at: i64 },
    Closed(u64),
}

/// A [`SessionObservation`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Obs {
    Accepted,
    InitOk,
    InitRefused(u16, Option<u32>),
    UpdateOk,
    UpdateRefused(u16, Option<u32>),
    /// Method, packet id, and for `message` the HTTP method and path.
    PacketIn(String, String, Option<(String, String)>),
    /// Packet id, HTTP method, path, status, and the duration (0 after [`redacted`]).
    UpstreamReply(String, String, String, u16, u64),
    TokenWarningSent,
    CloseSent(u16),
    Command(&'static str),
    Ended(EndReason),
    Other(String),
}

impl From<SessionObservation<'_>> for Obs {
    fn from(what: SessionObservation<'_>) -> Obs {
        match what {
            SessionObservation::Accepted => Obs::Accepted,
            SessionObservation::InitOk => Obs::InitOk,
            SessionObservation::InitRefused { status, error_code } => Obs::InitRefused(status, error_code),
            SessionObservation::UpdateOk => Obs::UpdateOk,
            SessionObservation::UpdateRefused { status, error_code } => Obs::UpdateRefused(status, error_code),
            SessionObservation::PacketIn { method, id, request } => Obs::PacketIn(
                method.to_owned(),
                id.to_owned(),
                request.map(|r| (r.method.to_owned(), r.path.to_owned())),
            ),
            SessionObservation::UpstreamReply {
                id,
                request,
                status,
                duration_ms,
            } => Obs::UpstreamReply(
                id.to_owned(),
                request.method.to_owned(),
                request.path.to_owned(),
                status,
                duration_ms,
            ),
            SessionObservation::TokenWarningSent => Obs::TokenWarningSent,
            SessionObservation::CloseSent { code } => Obs::CloseSent(code),
            SessionObservation::CommandApplied { name } => Obs::Command(name),
            SessionObservation::Ended { reason } => Obs::Ended(reason),
            other => Obs::Other(format!("{other:?}")),
        }
    }
}

/// Durations vary from run to run.
fn redacted(o: Obs) -> Obs {
    match o {
        Obs::UpstreamReply(id, method, path, status, _) => Obs::UpstreamReply(id, method, path, status, 0),
        o => o,
    }
}

/// One observation: session id, whether the session was established, what.
type Observed = (u64, bool, Obs);

struct Fake {
    clock: Clock,
    account: Arc<Account>,
    other: Arc<Account>,
    events: mpsc::UnboundedSender<Event>,
    observations: mpsc::UnboundedSender<Observed>,
    /// The path of every upstream request whose handler completed.
    completions: mpsc::UnboundedSender<String>,
    /// `/slow` requests wait for a permit.
    gate: Arc<Semaphore>,
}

fn caller(account: &Arc<Account>, identity: &str, now: i64, expires_at: i64) -> Caller {
    let service_sid = account.read(|s| s.default_service.clone());
    Caller {
        account: account.clone(),
        claims: Claims {
            account_sid: account.sid.clone(),
            api_key_sid: account.api_keys[0].sid.clone(),
            identity: identity.to_owned(),
            service_sid: Some(service_sid.clone()),
            issued_at: now,
            expires_at,
            not_before: None,
        },
        service_sid,
    }
}

impl Fake {
    fn verify_token(&self, token: &str) -> Result<Caller, TokenError> {
        let now = self.clock.now().unix_secs();
        let mut parts = token.split(':');
        let kind = parts.next().unwrap_or_default();
        match kind {
            "expired" => Err(TokenError::Expired { expired_at: now - 10, now }),
            "good" | "other" => {
                let identity = parts
                    .next()
                    .filter(|i| !i.is_empty())
                    .ok_or(TokenError::InvalidGrants { reason: "no identity" })?;
                let ttl = parts.next().map_or(3600, |t| t.parse::<i64>().expect("ttl"));
                let account = if kind == "good" { &self.account } else { &self.other };
                Ok(caller(account, identity, now, now + ttl))
            }
            _ => Err(TokenError::Malformed {
                reason: "not a fake token",
            }),
        }
    }
}

impl Backend for Fake {
    type Caller = Caller;

    fn verify(&self, token: &str) -> Result<Caller, InitRejection> {
        if token == "busy" {
            // What the control plane answers while refusing connections.
            return Err(InitRejection {
                status: 503,
                status_text: "SERVICE_UNAVAILABLE".into(),
                error_code: None,
                description: "new connections are refused for now".into(),
                backoff_ms: None,
            });
        }
        self.verify_token(token).map_err(Into::into)
    }
    fn upstream(&self, session: &SessionInfo<Caller>, req: UpstreamRequest) -> impl Future<Output = UpstreamResponse> + Send {
        let gate = self.gate.clone();
        let completions = self.completions.clone();
        let identity = session.caller.identity().to_owned();
        let outbox = session.outbox.clone();
        async move {
            match req.path.as_str() {
                "/slow" => gate.acquire().await.expect("gate open").forget(),
                "/panic" => panic!("the fake backend panics on purpose"),
                "/gate-then-panic" => {
                    let _gate = outbox.gate().expect("the gate opens");
                    panic!("the fake backend panics with a reply gate open");
                }
                "/big" => {
                    let _ = completions.send(req.path.clone());
                    return UpstreamResponse::ok(json!({ "filler": "x".repeat(BIG_REPLY_BYTES) }));
                }
                "/slow-big" => {
                    gate.acquire().await.expect("gate open").forget();
                    let _ = completions.send(req.path.clone());
                    return UpstreamResponse::ok(json!({ "filler": "x".repeat(BIG_REPLY_BYTES) }));
                }
                _ => {}
            }
            let _ = completions.send(req.path.clone());
            let status = if req.method == "POST" { 201 } else { 200 };
            UpstreamResponse::status(
                status,
                json!({
                    "identity": identity,
                    "method": req.method,
                    "host": req.host,
                    "path": req.path,
                    "raw_path": req.raw_path,
                    "params": req.params,
                    "headers": req.headers,
                    "content_type": req.content_type,
                    "body": String::from_utf8_lossy(&req.body),
                }),
            )
        }
    }

    fn session_opened(&self, session: &SessionInfo<Caller>) {
        let _ = self.events.send(Event::Opened(session.clone()));
    }

    fn session_updated(&self, session: &SessionInfo<Caller>) {
        let _ = self.events.send(Event::Updated {
            id: session.id,
            expires_at: session.caller.claims.expires_at,
        });
    }

    fn session_closed(&self, session_id: u64) {
        let _ = self.events.send(Event::Closed(session_id));
    }

    fn observe(&self, session: u64, info: Option<&SessionInfo<Caller>>, what: SessionObservation<'_>) {
        if let Some(info) = info {
            assert_eq!(info.id, session, "observed under another session's info");
        }
        let _ = self.observations.send((session, info.is_some(), what.into()));
    }
}

// ---------------------------------------------------------------------------------------------
// Harness: server on 127.0.0.1:0 and a twilsock client
// ---------------------------------------------------------------------------------------------

struct Harness {
    url: String,
    clock: Clock,
    fake: Arc<Fake>,
    events: mpsc::UnboundedReceiver<Event>,
    observations: mpsc::UnboundedReceiver<Observed>,
    completions: mpsc::UnboundedReceiver<String>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start(config: SessionConfig) -> Harness {
    let clock = Clock::frozen_at(T0);
    let domain = Domain::new(clock.clone(), domain::Limits::default());
    let account = domain
        .create_account(NewAccount {
            rng_seed: 1,
            ..NewAccount::default()
        })
        .expect("account");
    let other = domain
        .create_account(NewAccount {
            rng_seed: 2,
            ..NewAccount::default()
        })
        .expect("second account");
    let (events_tx, events) = mpsc::unbounded_channel();
    let (observations_tx, observations) = mpsc::unbounded_channel();
    let (completions_tx, completions) = mpsc::unbounded_channel();
    let fake = Arc::new(Fake {
        clock: clock.clone(),
        account,
        other,
        events: events_tx,
        observations: observations_tx,
        completions: completions_tx,
        gate: Arc::new(Semaphore::new(0)),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let endpoint = Endpoint::new(fake.clone(), clock.clone(), config, shutdown_rx);
    let app = Router::new().route(session::PATH, session::route(endpoint));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Harness {
        url: format!("ws://{addr}{}", session::PATH),
        clock,
        fake,
        events,
        observations,
        completions,
        shutdown,
        server,
    }
}

impl Harness {
    async fn connect(&self) -> Client {
        Client::connect(&self.url).await.with_wait(WAIT)
    }

    /// Connects and completes `init` with `token`.
    async fn session(&mut self, token: &str) -> (Client, SessionInfo<Caller>) {
        let mut c = self.connect().await;
        let reply = c.init("TMinit", token).await;
        assert_eq!(reply.header["status"]["code"], 200, "{reply:?}");
        let info = self.opened().await;
        (c, info)
    }

    async fn event(&mut self) -> Event {
        timeout(WAIT, self.events.recv())
            .await
            .expect("backend event in time")
            .expect("events channel open")
    }

    async fn opened(&mut self) -> SessionInfo<Caller> {
        match self.event().await {
            Event::Opened(info) => info,
            other => panic!("expected session_opened, got {other:?}"),
        }
    }

    async fn closed(&mut self) -> u64 {
        match self.event().await {
            Event::Closed(id) => id,
            other => panic!("expected session_closed, got {other:?}"),
        }
    }

    fn no_pending_event(&mut self) {
        if let Ok(e) = self.events.try_recv() {
            panic!("unexpected backend event {e:?}");
        }
    }

    fn advance_secs(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    async fn next_observation(&mut self) -> Observed {
        timeout(WAIT, self.observations.recv())
            .await
            .expect("observation in time")
            .expect("observations channel open")
    }

    /// The observations of `session` up to and including `last` (with whether the session was
    /// established at each); other sessions' are skipped.
    async fn observed_until(&mut self, session: u64, last: &Obs) -> Vec<(Obs, bool)> {
        let mut seen = Vec::new();
        loop {
            let (id, established, what) = self.next_observation().await;
            if id != session {
                continue;
            }
            let done = &what == last;
            seen.push((what, established));
            if done {
                return seen;
            }
        }
    }

    /// Sends `cmd` and waits until the session applied it.
    async fn command(&mut self, info: &SessionInfo<Caller>, cmd: SessionCommand) {
        let name = cmd.name();
        info.commands.try_send(cmd).expect("command queued");
        self.observed_until(info.id, &Obs::Command(name)).await;
    }

    /// The observations of `session` made so far and not yet taken.
    fn observed_now(&mut self, session: u64) -> Vec<Obs> {
        let mut seen = Vec::new();
        while let Ok((id, _, what)) = self.observations.try_recv() {
            if id == session {
                seen.push(what);
            }
        }
        seen
    }

    /// Waits until the handler of an upstream request for `path` completed.
    async fn completed(&mut self, path: &str) {
        let next = async {
            loop {
                match self.completions.recv().await {
                    Some(p) if p == path => return,
                    Some(_) => {}
                    None => panic!("completions channel closed"),
                }
            }
        };
        timeout(WAIT, next).await.expect("upstream handler completed in time");
    }
}

/// An overflowed session drops what it kept back and tells the client: twilsock `close` 308
/// (reconnect) naming the overflow, then WebSocket close 1008.
async fn expect_overflow_close(c: &mut Client) {
    let (closes, ending) = c.closes_until_end().await;
    assert_eq!(closes.len(), 1, "{closes:?}");
    expect_close(&closes[0], 308);
    let description = closes[0].header["status"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("overflow"), "{description}");
    assert_eq!(ending, Ending::CloseFrame(1008));
}

/// A backend push, as the Sync hub encodes one.
fn notification(id: &str) -> Bytes {
    frame(
        json!({"method": "notification", "id": id, "message_type": "twilio.sync.event", "payload_type": "application/json"}),
        format!(r#"{{"event_type":"test","id":"{id}"}}"#).as_bytes(),
    )
}

/// Pushes like the backend until the outbox refuses, yielding between pushes so that the
/// session's writer runs.
async fn push_until_refused(outbox: &rehearsal_mock_server::twilsock::Outbox) -> (usize, OutboxError) {
    let mut pushed = 0usize;
    let refused = timeout(WAIT, async {
        loop {
            match outbox.push(notification(&format!("TSflood{pushed}"))) {
                Ok(()) => {
                    pushed += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the outbox refuses in time");
    (pushed, refused)
}

fn expect_token_warning(p: &Packet) {
    assert_eq!(p.method(), Some("client_update"), "{p:?}");
    assert_eq!(p.header["client_update_type"], "token_about_to_expire");
    assert!(p.id().is_some_and(|id| !id.is_empty()));
}

fn expect_close(p: &Packet, code: u16) {
    assert_eq!(p.method(), Some("close"), "{p:?}");
    assert_eq!(p.header["status"]["code"], code, "{p:?}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn init_reply_has_every_field_and_opens_the_session() {
    let mut h = start(SessionConfig::default()).await;
    let mut c = h.connect().await;
    let reply = c.init("TM1", "good:alice").await;
    let header = &reply.header;
    assert_eq!(header["status"], json!({"code": 200, "status": "OK"}));
    assert!(
        header["continuation_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("ct-") && t.len() > 10)
    );
    assert_eq!(header["continuation_token_status"]["reissued"], true);
    assert_eq!(header["continuation_token_status"]["reissue_reason"], "new");
    assert!(header["continuation_token_status"]["reissue_message"].is_string());
    assert_eq!(header["capabilities"], json!(["client_update", "offline_storage"]));
    let storage = session::storage_id(&h.fake.account.sid, "alice");
    assert_eq!(header["offline_storage"], json!({"ip_messaging": {"storage_id": storage}}));
    assert_eq!(header["init_registrations"], Value::Null);
    assert_eq!(header["debug_info"], Value::Null);
    assert_eq!(header["payload_size"], 0);

    let info = h.opened().await;
    assert_eq!(info.caller.identity(), "alice");
    assert_eq!(info.caller.account.sid, h.fake.account.sid);

    // Same identity again: same storage id, new continuation token, new session id.
    let mut c2 = h.connect().await;
    let reply2 = c2.init("TM2", "good:alice").await;
    assert_eq!(reply2.header["offline_storage"], header["offline_storage"]);
    assert_ne!(reply2.header["continuation_token"], header["continuation_token"]);
    let info2 = h.opened().await;
    assert_ne!(info2.id, info.id);

    drop(c);
    assert_eq!(h.closed().await, info.id);
    c2.close(Some((1000, "bye"))).await;
    assert_eq!(c2.ending().await, Ending::CloseFrame(1000));
    assert_eq!(h.closed().await, info2.id);
}

#[tokio::test]
async fn rejected_init_keeps_the_socket_open_for_a_good_one() {
    let mut h = start(SessionConfig::default()).await;
    let mut c = h.connect().await;

    let reply = c.init("TM1", "expired").await;
    assert_eq!(
        reply.header["status"],
        json!({"code": 401, "status": "UNAUTHORIZED", "description": "Access Token expired or expiration date invalid", "errorCode": 20104})
    );
    let reply = c.init("TM2", "not-a-token").await;
    assert_eq!(reply.header["status"]["code"], 401);
    assert_eq!(reply.header["status"]["errorCode"], 20101);
    c.send(json!({"method": "init", "id": "TM3"}), b"").await;
    assert_eq!(c.reply_to("TM3").await.header["status"]["errorCode"], 20101);

    // Nothing but init is allowed before a successful init.
    let reply = c.get("TM4", "/Client/v2/Configuration").await;
    assert_eq!(reply.header["status"]["code"], 403);
    assert!(reply.header.get("http_status").is_none());
    let reply = c.update("TM5", "good:alice").await;
    assert_eq!(reply.header["status"]["code"], 403);
    h.no_pending_event();

    let reply = c.init("TM6", "good:alice").await;
    assert_eq!(reply.header["status"]["code"], 200);
    let info = h.opened().await;
    assert_eq!(info.caller.identity(), "alice");
    let reply = c.get("TM7", "/ok").await;
    assert_eq!(reply.header["http_status"]["code"], 200);
}

#[tokio::test]
async fn upstream_request_is_decoded_and_answered() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, _) = h.session("good:alice").await;
    c.send(
        json!({
            "method": "message", "id": "TMup", "active_grant": "ip_messaging",
            "payload_type": "application/json; charset=utf-8",
            "http_request": {
                "host": "aim.us1.twilio.com",
                "path": "/Client/v2/Users/alice%20smith%2Fjr?Order=desc",
                "method": "POST",
                "params": {"Token": "a%2Bb%20c", "Ids": ["x%2Fy", "z"]},
                "headers": {"Content-Type": "application/json; charset=utf-8", "X-Twilio-Mutation-Id": "m-1"},
            },
        }),
        br#"{"body":"hi"}"#,
    )
    .await;
    let reply = c.reply_to("TMup").await;
    assert_eq!(reply.header["status"], json!({"code": 200, "status": "OK"}));
    assert_eq!(reply.header["http_status"], json!({"code": 201, "status": "Created"}));
    assert_eq!(reply.header["http_headers"], json!({"Content-Type": "application/json"}));
    assert_eq!(reply.payload_type(), Some("application/json"));
    let body: Value = reply.payload_json().expect("json body");
    assert_eq!(
        body,
        json!({
            "identity": "alice",
            "method": "POST",
            "host": "aim.us1.twilio.com",
            "path": "/Client/v2/Users/alice smith/jr",
            "raw_path": "/Client/v2/Users/alice%20smith%2Fjr",
            "params": [["Order", "desc"], ["Token", "a+b c"], ["Ids", "x/y"], ["Ids", "z"]],
            "headers": {"Content-Type": "application/json; charset=utf-8", "X-Twilio-Mutation-Id": "m-1"},
            "content_type": "application/json; charset=utf-8",
            "body": "{\"body\":\"hi\"}",
        })
    );

    // A message without an http_request is a twilsock-level 400.
    c.send(json!({"method": "message", "id": "TMbad"}), b"").await;
    let reply = c.reply_to("TMbad").await;
    assert_eq!(reply.header["status"]["code"], 400);
    assert!(
        reply.header["status"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("http_request"))
    );
}

#[tokio::test]
async fn upstream_replies_come_in_order_of_completion() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, _) = h.session("good:alice").await;
    c.send(
        json!({"method": "message", "id": "TMslow", "http_request": {"host": "h", "path": "/slow", "method": "GET", "params": {}, "headers": {}}}),
        b"",
    )
    .await;
    // The slow request does not hold up the socket.
    let fast = c.get("TMfast", "/fast").await;
    assert_eq!(fast.header["http_status"]["code"], 200);
    // A panicking handler fails its own request with a 500, not the session.
    let failed = c.get("TMpanic", "/panic").await;
    assert_eq!(failed.header["status"]["code"], 200);
    assert_eq!(
        failed.header["http_status"],
        json!({"code": 500, "status": "Internal Server Error"})
    );
    assert_eq!(failed.payload_json::<Value>().expect("error body")["status"], 500);

    h.fake.gate.add_permits(1);
    let slow = c.reply_to("TMslow").await;
    assert_eq!(slow.payload_json::<Value>().expect("json")["path"], "/slow");
    c.probe("TMprobe").await;
    h.no_pending_event();
}

#[tokio::test]
async fn other_methods_unknown_methods_and_text_frames() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, _) = h.session("good:alice").await;

    c.send(json!({"method": "frobnicate", "id": "TMx"}), b"").await;
    let reply = c.reply_to("TMx").await;
    assert_eq!(reply.header["status"]["code"], 400);
    assert!(
        reply.header["status"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("frobnicate"))
    );

    c.send(
        json!({"method": "put_notification_ctx", "id": "TMput", "notification_ctx_id": "c1"}),
        br#"{"product_id":"ip_messaging","notification_protocol_version":4,"endpoint_platform":"web","message_types":[]}"#,
    )
    .await;
    assert_eq!(c.reply_to("TMput").await.header["status"]["code"], 200);
    c.send(
        json!({"method": "delete_notification_ctx", "id": "TMdel", "notification_ctx_id": "c1"}),
        b"",
    )
    .await;
    assert_eq!(c.reply_to("TMdel").await.header["status"]["code"], 200);

    // Telemetry and acks get no answer: the next packet is the probe's reply.
    c.send(json!({"method": "telemetry.v1", "id": "TMtel", "events": []}), b"").await;
    c.send(
        json!({"method": "reply", "id": "TSsomething", "status": {"code": 200, "status": "OK"}}),
        b"",
    )
    .await;
    c.probe("TMprobe1").await;

    // A text frame is decoded like a binary one.
    let frame = frame(json!({"method": "put_notification_ctx", "id": "TMtext"}), b"");
    c.send_message(Message::text(String::from_utf8(frame.to_vec()).expect("utf-8 frame")))
        .await;
    assert_eq!(c.reply_to("TMtext").await.header["status"]["code"], 200);
}

#[tokio::test]
async fn garbage_closes_with_406_but_a_bad_payload_only_fails_its_packet() {
    let config = SessionConfig {
        limits: Limits {
            max_header_bytes: 64 * 1024,
            max_payload_bytes: 16,
        },
        ..SessionConfig::default()
    };
    let mut h = start(config).await;
    let (mut c, info) = h.session("good:alice").await;

    // Readable header, payload over the limit: an error reply, the session goes on.
    c.send(
        json!({"method": "message", "id": "TMbig", "http_request": {"host": "h", "path": "/p", "method": "POST", "params": {}, "headers": {}}}),
        &[b'x'; 32],
    )
    .await;
    let reply = c.reply_to("TMbig").await;
    assert_eq!(reply.header["status"]["code"], 413);
    c.probe("TMprobe").await;

    c.send_message(Message::Binary(Bytes::from_static(b"hello, not twilsock"))).await;
    let close = c.recv().await;
    expect_close(&close, 406);
    assert_eq!(close.header["status"]["status"], "NOT_ACCEPTABLE");
    // Like the SDK: ack, then close the socket.
    c.ack(close.id().expect("id")).await;
    assert_eq!(h.closed().await, info.id);
    c.close(Some((1000, "bye"))).await;
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));
}

#[tokio::test]
async fn token_timers_follow_the_server_clock() {
    let mut h = start(SessionConfig {
        token_warning_lead: Duration::from_secs(180),
        close_grace: Duration::from_millis(200),
        ..SessionConfig::default()
    })
    .await;
    let (mut c, info) = h.session("good:alice:600").await;

    h.advance_secs(419);
    c.probe("TMp1").await; // one second before the warning: nothing yet
    h.advance_secs(2);
    let warning = c.recv().await;
    expect_token_warning(&warning);
    c.ack(warning.id().expect("id")).await;
    c.probe("TMp2").await; // the warning is sent once

    h.advance_secs(180);
    let close = c.recv().await;
    expect_close(&close, 410);
    assert_eq!(
        close.header["status"],
        json!({"code": 410, "status": "TOKEN_EXPIRED", "description": "Access Token expired or expiration date invalid", "errorCode": 20104})
    );
    assert!(close.payload.is_empty());
    assert_eq!(h.closed().await, info.id);
    // This client does not close the socket: the server does, after the grace period.
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));
}

#[tokio::test]
async fn a_token_inside_the_warning_lead_is_warned_at_once() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, _) = h.session("good:alice:60").await;
    expect_token_warning(&c.recv().await);
    h.advance_secs(60);
    expect_close(&c.recv().await, 410);
}

#[tokio::test]
async fn update_replaces_the_token_and_resets_the_timers() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice:600").await;

    h.advance_secs(300);
    let reply = c.update("TMu1", "good:alice:600").await;
    assert_eq!(reply.header["status"], json!({"code": 200, "status": "OK"}));
    match h.event().await {
        Event::Updated { id, expires_at } => {
            assert_eq!(id, info.id);
            assert_eq!(expires_at, T0.unix_secs() + 900);
        }
        other => panic!("expected session_updated, got {other:?}"),
    }

    // Rejected updates leave the session and its new schedule alone.
    let reply = c.update("TMu2", "expired").await;
    assert_eq!(reply.header["status"]["errorCode"], 20104);
    let reply = c.update("TMu3", "good:bob").await;
    assert_eq!(reply.header["status"]["code"], 401);
    assert_eq!(reply.header["status"]["errorCode"], 20101);
    let reply = c.update("TMu4", "other:alice").await;
    assert_eq!(reply.header["status"]["code"], 401);
    h.no_pending_event();

    // The old warning (t=420) and expiry (t=600) are gone; the new ones are at 720 and 900.
    h.advance_secs(200); // t=500
    c.probe("TMp1").await;
    h.advance_secs(221); // t=721
    expect_token_warning(&c.recv().await);
    h.advance_secs(178); // t=899
    c.probe("TMp2").await;
    h.advance_secs(1); // t=900
    expect_close(&c.recv().await, 410);
    assert_eq!(h.closed().await, info.id);
}

#[tokio::test]
async fn a_second_init_acts_as_an_update() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice:600").await;
    let reply = c.init("TMi2", "good:alice:3600").await;
    assert_eq!(reply.header["status"]["code"], 200);
    assert!(reply.header["continuation_token"].is_string());
    match h.event().await {
        Event::Updated { id, .. } => assert_eq!(id, info.id),
        other => panic!("expected session_updated, got {other:?}"),
    }
    let reply = c.init("TMi3", "good:bob").await;
    assert_eq!(reply.header["status"]["code"], 401);
    h.advance_secs(601);
    c.probe("TMp").await; // the 600 s token was replaced: no close
    h.no_pending_event();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_overflows_its_outbox_and_is_closed() {
    let mut h = start(SessionConfig {
        outbox_capacity: 8,
        close_grace: Duration::from_millis(200),
        ..SessionConfig::default()
    })
    .await;
    let (c, info) = h.session("good:alice").await;

    // The client reads nothing from here on. Frames go to the socket until the kernel buffers
    // are full, then the outbox fills up.
    let notification = frame(
        json!({"method": "notification", "id": "TSn", "message_type": "twilio.sync.event"}),
        &vec![b' '; 64 * 1024],
    );
    let mut pushed = 0usize;
    let overflowed = timeout(WAIT, async {
        loop {
            match info.outbox.push(notification.clone()) {
                Ok(()) => {
                    pushed += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the outbox overflows in time");
    assert_eq!(overflowed, OutboxError::Overflow);
    assert!(pushed >= 8, "only {pushed} frames were accepted");
    assert!(info.outbox.overflowed());

    assert_eq!(h.closed().await, info.id);
    assert!(matches!(info.outbox.push(Bytes::from_static(b"late")), Err(OutboxError::Overflow)));
    // Reading again, the client gets what the socket already had, then the protocol's close:
    // twilsock `close` 308 (reconnect) naming the overflow, and WebSocket close 1008.
    let mut c = c;
    expect_overflow_close(&mut c).await;
    h.observed_until(info.id, &Obs::Ended(EndReason::Overflow)).await;
}

#[tokio::test]
async fn a_latency_beyond_a_day_is_refused_and_replies_still_flow() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    // Sent before the request below: the session takes commands before packets.
    for latency in [Duration::MAX, session::MAX_LATENCY + Duration::from_millis(1)] {
        info.commands.try_send(SessionCommand::SetLatency(latency)).expect("queued");
    }
    let reply = c.get("TMafter", "/after").await;
    assert_eq!(reply.header["http_status"]["code"], 200);
    let seen = h.observed_now(info.id);
    assert!(!seen.contains(&Obs::Command("latency")), "a latency was applied: {seen:?}");
    // A day is still taken (and zero lifts it).
    h.command(&info, SessionCommand::SetLatency(session::MAX_LATENCY)).await;
    c.send_request("TMday", "GET", "/day", &[], None).await;
    h.completed("/day").await;
    h.command(&info, SessionCommand::SetLatency(Duration::ZERO)).await;
    assert_eq!(c.reply_to("TMday").await.header["http_status"]["code"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_filling_the_byte_budget_stop_reading_until_they_are_written() {
    let mut h = start(SessionConfig {
        outbox_bytes: BIG_REPLY_BYTES / 2,
        ..SessionConfig::default()
    })
    .await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::SetLatency(Duration::from_secs(3600))).await;
    // One reply over the whole budget waits out the latency: alone, it is allowed, but while it
    // waits the session reads no new request (the replies in flight are bounded in bytes).
    c.send_request("TMbig", "GET", "/big", &[], None).await;
    h.completed("/big").await;
    c.send_request("TMnext", "GET", "/next", &[], None).await;
    let early = timeout(Duration::from_millis(300), c.next_message()).await;
    assert!(early.is_err(), "a request was answered while the budget was full: {early:?}");
    assert!(!info.outbox.overflowed());
    // Lifting the latency writes the big reply; then the next request is read and answered.
    h.command(&info, SessionCommand::SetLatency(Duration::ZERO)).await;
    assert_eq!(c.reply_to("TMbig").await.header["http_status"]["code"], 200);
    assert_eq!(c.reply_to("TMnext").await.header["http_status"]["code"], 200);
    assert!(!info.outbox.overflowed());
}

#[tokio::test]
async fn pings_keep_a_reading_client_alive_and_drop_a_silent_one() {
    let mut h = start(SessionConfig {
        ping_interval: Duration::from_millis(50),
        pong_timeout: Duration::from_millis(300),
        ..SessionConfig::default()
    })
    .await;

    // A reading client answers pings (tungstenite does it while reading).
    let (mut alive, alive_info) = h.session("good:alice").await;
    let pings = timeout(WAIT, async {
        let mut pings = 0;
        while pings < 8 {
            match alive.next_message().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("expected pings, got {other:?}"),
            }
        }
        pings
    })
    .await
    .expect("pings in time");
    assert_eq!(pings, 8);

    // A client that reads nothing never answers: dropped after the pong timeout.
    let (silent, silent_info) = h.session("good:bob").await;
    // Keep the first one answering meanwhile.
    let closed = timeout(WAIT, async {
        loop {
            tokio::select! {
                msg = alive.next_message() => assert!(matches!(msg, Some(Ok(Message::Ping(_)))), "{msg:?}"),
                id = h.events.recv() => return id,
            }
        }
    })
    .await
    .expect("the silent client is dropped in time");
    match closed {
        Some(Event::Closed(id)) => assert_eq!(id, silent_info.id),
        other => panic!("expected session_closed, got {other:?}"),
    }
    drop(silent);
    alive.probe("TMprobe").await;
    assert_ne!(alive_info.id, silent_info.id);
    h.no_pending_event();
}

#[tokio::test]
async fn close_command_sends_the_packet_with_backoff() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    info.commands
        .try_send(SessionCommand::close(CloseCode::Offload, Some(2500)))
        .expect("command queued");
    let close = c.recv().await;
    expect_close(&close, 308);
    assert_eq!(close.payload_type(), Some("application/json"));
    assert_eq!(
        close.payload_json::<Value>().expect("backoff payload"),
        json!({"backoff_policy": {"reconnect_min_ms": 2500}})
    );
    assert_eq!(h.closed().await, info.id);
    // The SDK acks and closes; the server answers the close handshake.
    c.ack(close.id().expect("id")).await;
    c.close(Some((1000, "bye"))).await;
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));
}

#[tokio::test]
async fn other_commands() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;

    info.commands.try_send(SessionCommand::WarnTokenExpiry).expect("queued");
    expect_token_warning(&c.recv().await);

    let raw = frame(
        json!({"method": "notification", "id": "TSraw", "message_type": "twilio.sync.event"}),
        br#"{"event_type":"x"}"#,
    );
    info.commands.try_send(SessionCommand::SendRaw(raw.clone())).expect("queued");
    let p = c.recv().await;
    assert_eq!(p, codec::decode_bytes(&raw, &Limits::default()).expect("decodes"));

    info.commands.try_send(SessionCommand::ExpireTokenNow).expect("queued");
    expect_close(&c.recv().await, 410);
    assert_eq!(h.closed().await, info.id);
    c.close(Some((1000, "bye"))).await;
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));

    // Drop: no close handshake at all, like a network failure.
    let (mut c, info) = h.session("good:alice").await;
    info.commands.try_send(SessionCommand::Drop).expect("queued");
    assert_eq!(c.ending().await, Ending::Dropped);
    assert_eq!(h.closed().await, info.id);
}

#[tokio::test]
async fn client_close_packet_closes_the_socket() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    c.send(json!({"method": "close", "id": "TMclose"}), b"").await;
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));
    assert_eq!(h.closed().await, info.id);
}

#[tokio::test]
async fn a_socket_without_init_is_closed_after_the_init_timeout() {
    let mut h = start(SessionConfig {
        init_timeout: Duration::from_millis(100),
        ..SessionConfig::default()
    })
    .await;
    let mut c = h.connect().await;
    let reply = c.init("TM1", "expired").await;
    assert_eq!(reply.header["status"]["code"], 401);
    assert_eq!(c.ending().await, Ending::CloseFrame(1008));
    // Never opened, so never reported closed.
    h.no_pending_event();
}

#[tokio::test]
async fn shutdown_closes_every_session() {
    let mut h = start(SessionConfig::default()).await;
    let (mut a, a_info) = h.session("good:alice").await;
    let (mut b, b_info) = h.session("good:bob").await;
    let mut never_initialised = h.connect().await;
    h.shutdown.send_replace(true);
    assert_eq!(a.ending().await, Ending::CloseFrame(1001));
    assert_eq!(b.ending().await, Ending::CloseFrame(1001));
    assert_eq!(never_initialised.ending().await, Ending::CloseFrame(1001));
    let mut closed = vec![h.closed().await, h.closed().await];
    closed.sort_unstable();
    let mut expected = vec![a_info.id, b_info.id];
    expected.sort_unstable();
    assert_eq!(closed, expected);
    h.no_pending_event();
}

#[tokio::test]
async fn any_origin_is_accepted() {
    // The handshake is made here because it carries a header of its own; the test-support
    // client takes the socket over after it.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut h = start(SessionConfig::default()).await;
    let mut req = h.url.as_str().into_client_request().expect("request");
    req.headers_mut()
        .insert("Origin", "http://localhost:5173".parse().expect("header value"));
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("handshake with an Origin");
    let mut c = Client::from_socket(ws).with_wait(WAIT);
    assert_eq!(c.init("TM1", "good:alice").await.header["status"]["code"], 200);
    h.opened().await;
}

// ---------------------------------------------------------------------------------------------
// Conditions: latency, held notifications, stalls
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn latency_delays_upstream_replies_and_keeps_their_completion_order() {
    const LATENCY: Duration = Duration::from_millis(300);
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::SetLatency(LATENCY)).await;

    let sent = Instant::now();
    c.send_request("TMslow", "GET", "/slow", &[], None).await;
    c.send_request("TMfast", "GET", "/fast", &[], None).await;
    // The fast one completes first, then the slow one.
    h.completed("/fast").await;
    h.fake.gate.add_permits(1);
    h.completed("/slow").await;

    let fast = c.reply_to("TMfast").await;
    assert!(sent.elapsed() >= LATENCY, "replied after {:?}", sent.elapsed());
    assert_eq!(fast.header["http_status"]["code"], 200);
    assert_eq!(c.reply_to("TMslow").await.header["http_status"]["code"], 200);

    let replies: Vec<(String, u64)> = h
        .observed_now(info.id)
        .into_iter()
        .filter_map(|o| match o {
            Obs::UpstreamReply(id, _, _, 200, ms) => Some((id, ms)),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!((replies[0].0.as_str(), replies[1].0.as_str()), ("TMfast", "TMslow"));
    assert!(replies.iter().all(|(_, ms)| *ms >= 300), "{replies:?}");
}

#[tokio::test]
async fn latency_spares_other_replies_and_zero_releases_the_waiting_ones() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::SetLatency(Duration::from_secs(3600))).await;

    c.send_request("TMheld", "GET", "/held", &[], None).await;
    h.completed("/held").await;
    // An hour of latency, yet everything else is answered at once; were the upstream reply not
    // held, it would come before the probe's (completions are handled before inbound packets).
    c.probe("TMp1").await;
    assert_eq!(c.update("TMu", "good:alice").await.header["status"]["code"], 200);
    info.outbox.push(notification("TSn1")).expect("queued");
    assert_eq!(c.recv().await.id(), Some("TSn1"));

    h.command(&info, SessionCommand::SetLatency(Duration::ZERO)).await;
    let held = c.reply_to("TMheld").await;
    assert_eq!(held.payload_json::<Value>().expect("json")["path"], "/held");
    assert_eq!(c.get("TMnext", "/next").await.header["http_status"]["code"], 200);
}

#[tokio::test]
async fn held_notifications_wait_for_release_while_the_sessions_own_frames_flow() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::HoldNotifications).await;

    for n in 1..=3 {
        info.outbox.push(notification(&format!("TSn{n}"))).expect("queued");
    }
    // Queued after the notifications, yet first: a reply, a client_update, an injected frame.
    assert_eq!(c.get("TMget", "/x").await.header["http_status"]["code"], 200);
    info.commands.try_send(SessionCommand::WarnTokenExpiry).expect("queued");
    expect_token_warning(&c.recv().await);
    info.commands
        .try_send(SessionCommand::SendRaw(notification("TSraw")))
        .expect("queued");
    assert_eq!(c.recv().await.id(), Some("TSraw"));
    assert_eq!(info.outbox.depth(), 3, "held frames count as waiting");

    info.commands.try_send(SessionCommand::ReleaseNotifications).expect("queued");
    for n in 1..=3 {
        assert_eq!(c.recv().await.id(), Some(format!("TSn{n}").as_str()));
    }
    // Released: pushes flow again, in order with the rest.
    info.outbox.push(notification("TSn4")).expect("queued");
    assert_eq!(c.recv().await.id(), Some("TSn4"));
    c.probe("TMprobe").await;
    assert_eq!(info.outbox.depth(), 0);
}

#[tokio::test]
async fn holding_more_than_the_outbox_capacity_ends_the_session_as_a_slow_consumer() {
    let mut h = start(SessionConfig {
        outbox_capacity: 4,
        close_grace: Duration::from_millis(200),
        ..SessionConfig::default()
    })
    .await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::HoldNotifications).await;

    let (pushed, refused) = push_until_refused(&info.outbox).await;
    assert_eq!(refused, OutboxError::Overflow);
    assert!(pushed >= 4, "only {pushed} frames were accepted");
    h.observed_until(info.id, &Obs::Ended(EndReason::Overflow)).await;
    assert_eq!(h.closed().await, info.id);
    expect_overflow_close(&mut c).await;
}

#[tokio::test]
async fn a_stall_outlasting_the_pong_timeout_keeps_the_socket_and_resumes_in_order() {
    let mut h = start(SessionConfig {
        ping_interval: Duration::from_millis(50),
        pong_timeout: Duration::from_millis(150),
        ..SessionConfig::default()
    })
    .await;
    let (mut a, a_info) = h.session("good:alice").await;
    h.command(&a_info, SessionCommand::Stall).await;

    a_info.outbox.push(notification("TSn1")).expect("queued");
    a.send(
        json!({"method": "put_notification_ctx", "id": "TMp1", "notification_ctx_id": "ctx"}),
        b"",
    )
    .await;
    // A silent client on the same settings is dropped by the liveness check: by then the
    // stalled session has been silent for longer than a ping interval plus the pong timeout.
    let (b, b_info) = h.session("good:bob").await;
    h.observed_until(b_info.id, &Obs::Ended(EndReason::LivenessTimeout)).await;
    assert_eq!(h.closed().await, b_info.id);

    // The stalled session is still there, and nothing moved either way: the packet it was sent
    // was not read, the notification not written.
    assert_eq!(h.observed_now(a_info.id), Vec::<Obs>::new());
    assert_eq!(a.packets_ready(), 0);

    h.command(&a_info, SessionCommand::Unstall).await;
    assert_eq!(a.recv().await.id(), Some("TSn1"));
    a.reply_to("TMp1").await;
    assert_eq!(
        h.observed_now(a_info.id),
        vec![Obs::PacketIn("put_notification_ctx".into(), "TMp1".into(), None)]
    );
    // Alive, pinged and answering again.
    a.probe("TMp2").await;
    h.no_pending_event();
    drop(b);
}

#[tokio::test]
async fn frames_queued_during_a_stall_are_bounded_by_the_outbox_capacity() {
    let mut h = start(SessionConfig {
        outbox_capacity: 4,
        close_grace: Duration::from_millis(200),
        ..SessionConfig::default()
    })
    .await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::Stall).await;
    let (pushed, refused) = push_until_refused(&info.outbox).await;
    assert_eq!(refused, OutboxError::Overflow);
    assert!(pushed >= 4, "only {pushed} frames were accepted");
    h.observed_until(info.id, &Obs::Ended(EndReason::Overflow)).await;
    assert_eq!(h.closed().await, info.id);
    expect_overflow_close(&mut c).await;
}

#[tokio::test]
async fn close_token_expiry_and_drop_work_while_stalled() {
    let mut h = start(SessionConfig {
        close_grace: Duration::from_millis(200),
        ..SessionConfig::default()
    })
    .await;

    // Close: the stall ends so that what was queued, then the close packet, are written.
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::Stall).await;
    info.outbox.push(notification("TSn1")).expect("queued");
    info.commands
        .try_send(SessionCommand::close(CloseCode::Offload, None))
        .expect("queued");
    assert_eq!(c.recv().await.id(), Some("TSn1"));
    let close = c.recv().await;
    expect_close(&close, 308);
    assert_eq!(
        h.observed_until(info.id, &Obs::Ended(EndReason::ClosedByCommand)).await,
        vec![
            (Obs::Command("close"), true),
            (Obs::CloseSent(308), true),
            (Obs::Ended(EndReason::ClosedByCommand), true),
        ]
    );
    assert_eq!(h.closed().await, info.id);
    c.ack(close.id().expect("id")).await;
    c.close(Some((1000, "bye"))).await;
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));

    // Token expiry: the same.
    let (mut c, info) = h.session("good:carol:600").await;
    h.command(&info, SessionCommand::Stall).await;
    // The expiry and the warning are both due: the expiry wins, and ends the stall.
    h.advance_secs(600);
    expect_close(&c.recv().await, 410);
    h.observed_until(info.id, &Obs::Ended(EndReason::TokenExpired)).await;
    assert_eq!(h.closed().await, info.id);
    // This client does not close: the server does after the grace period.
    assert_eq!(c.ending().await, Ending::CloseFrame(1000));

    // Drop: the socket goes as it is.
    let (mut c, info) = h.session("good:bob").await;
    h.command(&info, SessionCommand::Stall).await;
    c.send(json!({"method": "put_notification_ctx", "id": "TMunread"}), b"").await;
    info.commands.try_send(SessionCommand::Drop).expect("queued");
    assert_eq!(c.ending().await, Ending::Dropped);
    h.observed_until(info.id, &Obs::Ended(EndReason::Dropped)).await;
    assert_eq!(h.closed().await, info.id);
}

// ---------------------------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn observations_follow_the_session_but_never_backend_pushes() {
    let mut h = start(SessionConfig {
        close_grace: Duration::from_millis(200),
        ..SessionConfig::default()
    })
    .await;
    let mut c = h.connect().await;
    let (id, established, first) = h.next_observation().await;
    assert_eq!((first, established), (Obs::Accepted, false));

    assert_eq!(c.init("TM1", "expired").await.header["status"]["code"], 401);
    assert_eq!(c.init("TM2", "good:alice").await.header["status"]["code"], 200);
    let info = h.opened().await;
    assert_eq!(info.id, id);
    c.get("TM3", "/Client/v2/Users/alice%20smith?x=1").await;
    c.send(json!({"method": "message", "id": "TM4"}), b"").await;
    assert_eq!(c.reply_to("TM4").await.header["status"]["code"], 400);
    assert_eq!(c.update("TM5", "good:bob").await.header["status"]["code"], 401);
    assert_eq!(c.update("TM6", "good:alice").await.header["status"]["code"], 200);
    assert!(matches!(h.event().await, Event::Updated { id: updated, .. } if updated == id));
    info.outbox.push(notification("TSpush")).expect("queued");
    assert_eq!(c.recv().await.id(), Some("TSpush"));
    info.commands.try_send(SessionCommand::WarnTokenExpiry).expect("queued");
    let warning = c.recv().await;
    c.ack(warning.id().expect("id")).await;
    // Commands are handled before inbound packets: make sure the ack was read first.
    c.probe("TM7").await;
    info.commands.try_send(SessionCommand::ExpireTokenNow).expect("queued");
    expect_close(&c.recv().await, 410);

    let seen: Vec<(Obs, bool)> = h
        .observed_until(id, &Obs::Ended(EndReason::TokenExpired))
        .await
        .into_iter()
        .map(|(o, e)| (redacted(o), e))
        .collect();
    let packet = |method: &str, id: &str| Obs::PacketIn(method.into(), id.into(), None);
    let path = "/Client/v2/Users/alice smith";
    assert_eq!(
        seen,
        vec![
            (packet("init", "TM1"), false),
            (Obs::InitRefused(401, Some(20104)), false),
            (packet("init", "TM2"), false),
            (Obs::InitOk, true),
            (
                Obs::PacketIn("message".into(), "TM3".into(), Some(("GET".into(), path.into()))),
                true
            ),
            (Obs::UpstreamReply("TM3".into(), "GET".into(), path.into(), 200, 0), true),
            (packet("message", "TM4"), true),
            (packet("update", "TM5"), true),
            (Obs::UpdateRefused(401, Some(20101)), true),
            (packet("update", "TM6"), true),
            (Obs::UpdateOk, true),
            (Obs::TokenWarningSent, true),
            (Obs::Command("warn_token_expiry"), true),
            // The client's ack of the warning is counted, not observed: acks are one per
            // delivered push.
            (packet("put_notification_ctx", "TM7"), true),
            (Obs::Command("expire_token"), true),
            (Obs::CloseSent(410), true),
            (Obs::Ended(EndReason::TokenExpired), true),
        ]
    );
    assert_eq!(h.closed().await, id);
}

#[tokio::test]
async fn a_503_init_leaves_the_socket_usable_for_a_later_good_one() {
    let mut h = start(SessionConfig::default()).await;
    let mut c = h.connect().await;
    let reply = c.init("TM1", "busy").await;
    assert_eq!(
        reply.header["status"],
        json!({"code": 503, "status": "SERVICE_UNAVAILABLE", "description": "new connections are refused for now"})
    );
    // The SDK closes the socket and retries; the server only replies. A client that keeps the
    // socket may init again on it.
    c.probe("TMprobe").await;
    assert_eq!(c.init("TM2", "good:alice").await.header["status"]["code"], 200);
    h.opened().await;
}

// ---------------------------------------------------------------------------------------------
// The real backend: journal and control plane
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn realtime_journals_sessions_and_refused_connections_keep_the_socket_usable() {
    let server = MockServer::start().await;
    let control = server.control();
    let creds = server.credentials().expect("the default seed has an account");
    let account = creds.account_sid.clone();
    let clock = control.clock(Some(&account)).expect("account clock");
    let token = Token::new(&creds, "alice", clock.now().unix_secs()).mint();
    let mut journal = control.journal().follow();

    control.refuse_connections(&account, Duration::from_secs(60)).expect("refuse");
    let mut c = Client::connect(&server.twilsock_url()).await.with_wait(WAIT);
    let reply = c.init("TM1", &token).await;
    assert_eq!(reply.header["status"]["code"], 503);
    assert_eq!(reply.header["status"]["status"], "SERVICE_UNAVAILABLE");
    // The refusal ends on the account's clock; the socket was kept and is still usable.
    clock.advance(Duration::from_secs(61));
    assert_eq!(c.init("TM2", &token).await.header["status"]["code"], 200);
    // An ack, as the SDK sends for every push: counted by the session, never journaled (one
    // entry per delivery was most of the journal under fan-out), so it is not in the lines below.
    c.send(
        json!({"method": "reply", "id": "TM-ack", "payload_type": "application/json", "status": {"code": 200, "status": "OK"}}),
        b"",
    )
    .await;
    assert_eq!(c.get("TM3", "/Client/v2/Configuration").await.header["http_status"]["code"], 200);

    // Registered with the control plane, so commands reach it.
    let live = control.connections(Some(&account));
    assert_eq!(live.len(), 1, "{live:?}");
    let id = live[0].id;
    assert_eq!(live[0].identity, "alice");
    let target = Target {
        account: account.clone(),
        session: Some(id),
        identity: None,
    };
    assert_eq!(control.command(&target, SessionCommand::Drop).reached(), vec![id]);
    assert_eq!(c.ending().await, Ending::Dropped);
    timeout(WAIT, async {
        loop {
            let e = journal.recv().await.expect("journal entries");
            if e.session == Some(id) && e.summary.starts_with("session ended") {
                return;
            }
        }
    })
    .await
    .expect("the end is journaled in time");
    assert!(control.connections(Some(&account)).is_empty());

    let entries = control
        .journal()
        .query(&Filter {
            session: Some(id),
            ..Filter::default()
        })
        .entries;
    let lines: Vec<(Kind, String)> = entries
        .iter()
        .map(|e| {
            // Durations vary.
            let summary = match e.summary.split_once(" (") {
                Some((s, _)) if e.kind == Kind::Upstream => s.to_owned(),
                _ => e.summary.clone(),
            };
            (e.kind, summary)
        })
        .collect();
    let line = |kind: Kind, s: &str| (kind, s.to_owned());
    assert_eq!(
        lines,
        vec![
            line(Kind::Connection, "socket accepted"),
            line(Kind::PacketIn, "init"),
            line(Kind::Connection, "init refused: 503"),
            line(Kind::PacketIn, "init"),
            line(Kind::Connection, "init ok"),
            line(Kind::PacketIn, "message GET /Client/v2/Configuration"),
            line(Kind::Upstream, "GET /Client/v2/Configuration -> 200"),
            line(Kind::Fault, "drop applied"),
            line(Kind::Connection, "session ended: dropped"),
        ]
    );
    // Before the first init the account is unknown; a refused init is attributed to the
    // account and identity its token claimed (so a tenant's journal shows its refused
    // attempts); from the successful init on, entries carry the account, the identity, and the
    // account's time (61 s ahead of the server's).
    assert!(entries[..2].iter().all(|e| e.account.is_none() && e.identity.is_none()));
    for e in &entries[2..4] {
        assert_eq!(
            (e.account.as_deref(), e.identity.as_deref()),
            (Some(account.as_str()), Some("alice")),
            "{e:?}"
        );
    }
    for e in &entries[4..] {
        assert_eq!(e.account.as_deref(), Some(account.as_str()));
        assert_eq!(e.identity.as_deref(), Some("alice"));
        assert!(e.at.0 >= server.domain().clock().now().0 + 60_000, "{e:?}");
    }
    assert_eq!(entries[6].detail["status"], 200);
    assert!(entries[6].detail["duration_ms"].is_u64());
}

// ---------------------------------------------------------------------------------------------
// Bounds: bytes queued per session, reply gates, message size
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_big_requests_without_reading_is_closed_at_the_byte_bound() {
    const MAX: usize = 1024 * 1024;
    let mut h = start(SessionConfig {
        outbox_bytes: MAX,
        ..SessionConfig::default()
    })
    .await;
    let (mut c, info) = h.session("good:alice").await;
    // 48 replies of 1 MiB fit the 1,024-frame bound many times over; the client
    // reads none of them.
    for n in 0..48 {
        c.send_request(&format!("TMbig{n}"), "GET", "/big", &[], None).await;
    }
    assert_eq!(h.closed().await, info.id, "the session ends");
    assert_eq!(
        info.outbox.overflow_cause(),
        Some(rehearsal_mock_server::twilsock::OverflowCause::Bytes)
    );
    // The budget, or one frame alone when it is larger than the budget (a big page still goes
    // to a client that keeps up).
    let queued = info.outbox.queued_bytes();
    assert!(
        queued <= MAX.max(BIG_REPLY_BYTES + 1024),
        "{queued} bytes queued, more than the {MAX} allowed"
    );
    let ended = h.observed_until(info.id, &Obs::Ended(EndReason::Overflow)).await;
    assert!(!ended.is_empty());
    let read = c.packets_until_end().await;
    assert!(read < 48, "all {read} replies were delivered: the session was never cut off");

    // Another session is unaffected.
    let (mut other, _) = h.session("good:bob").await;
    let reply = other.get("TMok", "/big").await;
    assert_eq!(reply.header["http_status"]["code"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_closed_at_the_byte_bound_long_before_the_frame_bound() {
    const MAX: usize = 1024 * 1024;
    let mut h = start(SessionConfig {
        outbox_bytes: MAX,
        ..SessionConfig::default()
    })
    .await;
    let (c, info) = h.session("good:alice").await;
    let push = frame(
        json!({"method": "notification", "id": "TSn", "message_type": "twilio.sync.event"}),
        &vec![b' '; 32 * 1024],
    );
    let mut pushed = 0usize;
    let refused = timeout(WAIT, async {
        loop {
            match info.outbox.push(push.clone()) {
                Ok(()) => {
                    pushed += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the outbox refuses in time");
    assert_eq!(refused, OutboxError::Overflow);
    assert!(pushed < 1024, "{pushed} frames of 32 KiB were accepted: no byte bound");
    assert!(info.outbox.queued_bytes() <= MAX, "{} bytes queued", info.outbox.queued_bytes());
    assert_eq!(
        info.outbox.overflow_cause(),
        Some(rehearsal_mock_server::twilsock::OverflowCause::Bytes)
    );
    assert_eq!(h.closed().await, info.id);
    drop(c);
    let (mut other, _) = h.session("good:bob").await;
    other.probe("TMp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_waiting_out_a_latency_count_against_the_byte_bound() {
    const MAX: usize = 1024 * 1024;
    let mut h = start(SessionConfig {
        outbox_bytes: MAX,
        ..SessionConfig::default()
    })
    .await;
    let (mut c, info) = h.session("good:alice").await;
    h.command(&info, SessionCommand::SetLatency(Duration::from_secs(3600))).await;
    // Eight requests in flight at once (their handlers wait for the gate); a probe proves the
    // session read them all. Then they complete together: nothing reaches the outbox, as the
    // replies wait out the latency, 1 MiB each, and the second is past the byte bound.
    for n in 0..8 {
        c.send_request(&format!("TMbig{n}"), "GET", "/slow-big", &[], None).await;
    }
    c.probe("TMp").await;
    h.fake.gate.add_permits(8);
    assert_eq!(h.closed().await, info.id, "the session ends");
    assert_eq!(
        info.outbox.overflow_cause(),
        Some(rehearsal_mock_server::twilsock::OverflowCause::Bytes)
    );
    let (mut other, _) = h.session("good:bob").await;
    other.probe("TMp").await;
}

#[tokio::test]
async fn a_gate_left_open_by_a_panicking_handler_releases_itself() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, info) = h.session("good:alice").await;
    let reply = c.get("TMg", "/gate-then-panic").await;
    assert_eq!(reply.header["http_status"]["code"], 500, "{reply:?}");
    // A push queued after the failed request is not kept behind its gate.
    info.outbox.push(notification("TSafter")).expect("queued");
    let p = c.recv().await;
    assert_eq!(p.method(), Some("notification"), "{p:?}");
    assert_eq!(p.id(), Some("TSafter"));
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_closed_with_1009() {
    let config = SessionConfig {
        limits: Limits {
            max_payload_bytes: 4096,
            ..Limits::default()
        },
        ..SessionConfig::default()
    };
    let too_big = config.max_message_bytes() + 1;
    let mut h = start(config).await;
    let (mut c, info) = h.session("good:alice").await;
    c.send_message(Message::Binary(Bytes::from(vec![b'x'; too_big]))).await;
    assert_eq!(c.ending().await, Ending::CloseFrame(1009));
    assert_eq!(h.closed().await, info.id);
    h.observed_until(info.id, &Obs::Ended(EndReason::MessageTooBig)).await;
    let (mut other, _) = h.session("good:bob").await;
    other.probe("TMp").await;
}

/// A masked client frame, as a client would write it.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = rehearsal_test_support::twilsock::frame_head(opcode, payload.len() as u64, mask);
    if !fin {
        out[0] &= 0x7F;
    }
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

#[tokio::test]
async fn frames_split_across_reads_and_fragmented_messages_arrive_whole() {
    let mut h = start(SessionConfig::default()).await;
    let (mut c, _) = h.session("good:alice").await;
    let probe = frame(
        json!({"method": "put_notification_ctx", "id": "TMfrag", "notification_ctx_id": "ctx"}),
        b"{}",
    );
    let (a, rest) = probe.split_at(probe.len() / 3);
    let (b, last) = rest.split_at(rest.len() / 2);
    let mut wire = client_frame(false, 0x2, a, [1, 2, 3, 4]);
    // A ping between fragments is allowed (RFC 6455 §5.4) and answered with its payload.
    wire.extend(client_frame(true, 0x9, b"mid", [9, 9, 9, 9]));
    wire.extend(client_frame(false, 0x0, b, [5, 6, 7, 8]));
    wire.extend(client_frame(true, 0x0, last, [0xFF, 0, 0xFF, 0]));
    // Dribbled a few bytes per write, so frames and headers are cut at every kind of place.
    for chunk in wire.chunks(5) {
        c.write_raw(chunk).await.expect("written");
    }
    match timeout(WAIT, c.next_message()).await.expect("a pong in time") {
        Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"mid"),
        other => panic!("expected the pong, got {other:?}"),
    }
    let reply = c.reply_to("TMfrag").await;
    assert_eq!(reply.header["status"]["code"], 200, "{reply:?}");
    c.probe("TMafter").await;
}

#[tokio::test]
async fn websocket_protocol_violations_close_with_their_codes() {
    let mut h = start(SessionConfig::default()).await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        ("an unmasked frame", vec![0x82, 0x02, b'h', b'i'], 1002),
        (
            "a continuation with nothing to continue",
            client_frame(true, 0x0, b"x", [1; 4]),
            1002,
        ),
        ("text that is not UTF-8", client_frame(true, 0x1, &[0xC3, 0x28], [7; 4]), 1007),
        ("a reserved opcode", client_frame(true, 0x3, b"", [0; 4]), 1002),
    ];
    for (what, bytes, code) in cases {
        let (mut c, info) = h.session("good:alice").await;
        c.write_raw(&bytes).await.expect("written");
        assert_eq!(c.ending().await, Ending::CloseFrame(code), "{what}");
        assert_eq!(h.closed().await, info.id, "{what}");
        h.observed_until(info.id, &Obs::Ended(EndReason::ProtocolError)).await;
    }
}

#[tokio::test]
async fn requests_that_are_no_websocket_handshake_are_refused_with_the_reason() {
    let h = start(SessionConfig::default()).await;
    let addr = h.url.trim_start_matches("ws://").trim_end_matches(session::PATH).to_owned();
    let ask = |headers: &'static str| {
        let addr = addr.clone();
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\n\r\n",
                session::PATH
            );
            tcp.write_all(request.as_bytes()).await.expect("written");
            // The head, and the body its Content-Length announces (the connection stays open).
            let whole = |answer: &str| {
                let Some(end) = answer.find("\r\n\r\n") else { return false };
                let length = answer[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse::<usize>().expect("a length"));
                answer.len() >= end + 4 + length
            };
            let mut answer = Vec::new();
            let mut chunk = [0u8; 1024];
            while !whole(&String::from_utf8_lossy(&answer).to_ascii_lowercase()) {
                let n = timeout(WAIT, tcp.read(&mut chunk)).await.expect("an answer in time").expect("read");
                assert!(n > 0, "the connection closed mid-answer: {}", String::from_utf8_lossy(&answer));
                answer.extend_from_slice(&chunk[..n]);
            }
            String::from_utf8_lossy(&answer).to_ascii_lowercase()
        }
    };
    let plain = ask("").await;
    assert!(plain.starts_with("http/1.1 400"), "{plain}");
    assert!(plain.contains("connection header did not include 'upgrade'"), "{plain}");
    let old =
        ask("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
            .await;
    assert!(old.starts_with("http/1.1 426"), "{old}");
    assert!(old.contains("sec-websocket-version: 13"), "{old}");
    let keyless = ask("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n").await;
    assert!(keyless.starts_with("http/1.1 400"), "{keyless}");
    let good = ask("Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").await;
    assert!(good.starts_with("http/1.1 101"), "{good}");
    // RFC 6455 §1.3's example key and its accept value.
    assert!(good.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{good}");
}
