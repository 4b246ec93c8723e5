//! The facade as a Rust test author uses it: a realtime client (`rehearsal-client`, speaking
//! twilsock as the SDK does) and the REST API (as the helper libraries do) against tenants of
//! one embedded server.
use std::time::Duration;

use rehearsal::{Clock, EntryKind, HttpFault, JournalFilter, MockServer, Target, Tenant};
use rehearsal_client::{Client, Config, Error, Notifications};
use serde_json::Value;

/// Bound of every wait: generous, so a loaded machine does not fail the tests.
const WAIT: Duration = Duration::from_secs(20);

fn config(server: &MockServer) -> Config {
    let mut c = Config::new(server.twilsock_url());
    c.timeout = WAIT;
    // `close` and `client_update` packets reach the notification stream, as an SDK sees them.
    c.control_packets = true;
    c
}

async fn connect(server: &MockServer, token: &str) -> (Client, Notifications) {
    Client::connect(&config(server), token).await.expect("init accepted")
}

/// Reads notifications until one whose payload contains `text`; fails on a timeout or the end.
async fn notification_containing(notes: &mut Notifications, text: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let n = notes.next(left).await.unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"));
        if String::from_utf8_lossy(&n.payload).contains(text) {
            return;
        }
    }
}

/// Reads notifications until the connection ends; returns the `close` code it saw, if any.
async fn closed(notes: &mut Notifications) -> Option<u64> {
    let mut code = None;
    loop {
        match notes.next(WAIT).await {
            Ok(n) if n.method() == "close" => code = n.header["status"]["code"].as_u64(),
            Ok(_) => {}
            Err(Error::Closed) => return code,
            Err(e) => panic!("waiting for the connection to end: {e}"),
        }
    }
}

fn rest_get(tenant: &Tenant, server: &MockServer, path: &str) -> reqwest::RequestBuilder {
    let c = tenant.credentials();
    reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .basic_auth(&c.account_sid, Some(&c.auth_token))
}

#[tokio::test]
async fn tenants_are_isolated_over_rest_and_twilsock() {
    let server = MockServer::start().await.expect("starts");
    let a = server.tenant().expect("tenant a");
    let b = server.tenant().expect("tenant b");
    assert_ne!(a.credentials().auth_token, b.credentials().auth_token);
    let general_a = a.post("bob", "general", "setup a").await.expect("posted").conversation_sid;
    let general_b = b.post("bob", "general", "setup b").await.expect("posted").conversation_sid;
    assert_ne!(general_a, general_b);

    // REST: each tenant's credentials reach only its own conversations.
    let own = rest_get(&b, &server, &format!("/v1/Conversations/{general_b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let foreign = rest_get(&a, &server, &format!("/v1/Conversations/{general_b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "A's credentials must not find B's conversation");

    // Twilsock: "alice" of each tenant is a different user, with her own token.
    let (alice_a, mut notes_a) = connect(&server, &a.token("alice").unwrap()).await;
    let (alice_b, mut notes_b) = connect(&server, &b.token("alice").unwrap()).await;
    alice_a.open_conversation(&general_a).await.expect("A's alice opens A's general");
    alice_b.open_conversation(&general_b).await.expect("B's alice opens B's general");
    assert!(
        alice_a.conversation(&general_b).await.is_err(),
        "A's token must not open B's conversation"
    );
    assert_eq!(a.sessions().len(), 1);
    assert_eq!(b.sessions().len(), 1);

    let mark_a = a.journal_mark();
    b.post("bob", "general", "only for B").await.unwrap();
    notification_containing(&mut notes_b, "only for B").await;
    let push = server
        .wait_for(&JournalFilter::new().kind(EntryKind::SyncPush).contains("1 subscriber"), WAIT)
        .await
        .expect("the push to B's alice was journaled");
    assert_eq!(push.account.as_deref(), Some(b.sid()));
    // B's post changed nothing in A: no push, nothing on A's socket.
    assert!(a.journal(&JournalFilter::new().kind(EntryKind::SyncPush).after(mark_a)).is_empty());
    while let Some(n) = notes_a.try_next() {
        assert!(!String::from_utf8_lossy(&n.payload).contains("only for B"), "leaked to tenant A");
    }
}

#[tokio::test]
async fn minted_tokens_follow_the_tenant_clock_and_wait_for_sees_the_session() {
    let server = MockServer::start().await.expect("starts");
    let tenant = server.tenant().unwrap();
    let mark = tenant.journal_mark();
    let (_alice, mut notes) = connect(&server, &tenant.token_with_ttl("alice", Duration::from_secs(60)).unwrap()).await;
    let init = tenant
        .wait_for(
            &JournalFilter::new()
                .kind(EntryKind::Connection)
                .identity("alice")
                .contains("init ok")
                .after(mark),
            WAIT,
        )
        .await
        .expect("init journaled");
    let session = init.session.expect("a session entry");
    assert_eq!(tenant.sessions().iter().map(|s| s.id).collect::<Vec<_>>(), [session]);

    // Past the token's lifetime on the tenant's clock: the server closes with 410.
    tenant.clock().advance(Duration::from_secs(61)).unwrap();
    assert_eq!(closed(&mut notes).await, Some(410), "token expired");
    tenant
        .wait_for(&JournalFilter::new().session(session).contains("close 410"), WAIT)
        .await
        .expect("the close journaled");

    // A token minted now is minted on the moved clock, so it is valid; the server's other
    // tenants did not move.
    let (_again, _notes) = connect(&server, &tenant.token("alice").unwrap()).await;
    assert!(tenant.clock().now() > server.clock().now() + Duration::from_secs(59));
    let stale = server.tenant().unwrap();
    stale.clock().freeze().unwrap();
    let old = stale.token_with_ttl("alice", Duration::from_secs(1)).unwrap();
    stale.clock().advance(Duration::from_secs(5)).unwrap();
    match Client::connect(&config(&server), &old).await {
        Err(Error::InitRefused { status: 401, header, .. }) => assert_eq!(header["status"]["errorCode"], 20104),
        other => panic!("an expired token must be refused, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn commands_reach_one_identity_and_a_dropped_guard_deletes_the_tenant() {
    let server = MockServer::start().await.expect("starts");
    let tenant = server.tenant().unwrap();
    let (_alice, mut alice_notes) = connect(&server, &tenant.token("alice").unwrap()).await;
    let (bob, mut bob_notes) = connect(&server, &tenant.token("bob").unwrap()).await;

    tenant.warn_token_expiry(Target::identity("bob")).await.unwrap();
    let n = bob_notes.next(WAIT).await.expect("the warning");
    assert_eq!(n.header["client_update_type"], "token_about_to_expire");

    let done = tenant.drop_sessions(Target::identity("alice")).await.unwrap();
    assert_eq!(done.sessions.len(), 1);
    assert_eq!(done.applied, done.sessions, "applied before the call returned");
    assert_eq!(closed(&mut alice_notes).await, None, "dropped without a close packet");
    tenant
        .wait_for(&JournalFilter::new().session(done.sessions[0]).contains("session ended"), WAIT)
        .await
        .expect("the end journaled");
    assert!(bob.is_open(), "bob was not targeted");
    assert!(matches!(
        tenant.drop_sessions(Target::Session(done.sessions[0])).await,
        Err(rehearsal::ControlError::NoSession(_))
    ));

    let sid = tenant.sid().to_owned();
    let creds = tenant.credentials().clone();
    drop(tenant);
    assert_eq!(closed(&mut bob_notes).await, None, "the tenant's sessions end with it");
    assert!(!server.tenant_sids().contains(&sid));
    let res = reqwest::Client::new()
        .get(format!("{}/v1/Conversations", server.url()))
        .basic_auth(&creds.account_sid, Some(&creds.auth_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a deleted tenant's credentials are refused");
}

#[tokio::test]
async fn the_builder_sets_the_clock_and_faults_fire_as_armed() {
    let server = MockServer::builder()
        .clock(Clock::frozen_at_unix_ms(1_700_000_000_000))
        .control_token("builder-token")
        .start()
        .await
        .expect("starts");
    let tenant = server.tenant().unwrap();
    let posted = tenant.post("alice", "general", "at a fixed time").await.unwrap();
    let msg: Value = rest_get(
        &tenant,
        &server,
        &format!("/v1/Conversations/{}/Messages/{}", posted.conversation_sid, posted.sid),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(msg["date_created"], "2023-11-14T22:13:20Z");

    tenant
        .arm_http_fault(HttpFault::fail("/v1/Conversations", 503, 20503).method("GET"))
        .unwrap();
    let failed = rest_get(&tenant, &server, "/v1/Conversations").send().await.unwrap();
    assert_eq!(failed.status(), 503);
    assert_eq!(failed.json::<Value>().await.unwrap()["code"], 20503);
    let again = rest_get(&tenant, &server, "/v1/Conversations").send().await.unwrap();
    assert_eq!(again.status(), 200, "armed for one request only");

    // The control token set in the builder is the one the HTTP API takes.
    let listed = reqwest::Client::new()
        .get(format!("{}/tenants", server.control_url()))
        .bearer_auth("builder-token")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
}
