//! What an SDK-like client needs beyond notifications: the server's `client_update` and `close`
//! packets (with [`Config::control_packets`]), the in-session token `update`, and the payload of
//! a refused `init` (its backoff).
use std::time::Duration;

use rehearsal_client::{Client, Config, Error};
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::control::faults::InitDenial;
use rehearsal_mock_server::control::sessions::Target;
use rehearsal_mock_server::twilsock::{CloseCode, SessionCommand};
use rehearsal_test_support::Token;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn command(server: &MockServer, identity: &str, cmd: SessionCommand) {
    let target = Target {
        account: server.credentials().expect("the default seed").account_sid,
        session: None,
        identity: Some(identity.into()),
    };
    assert_eq!(server.control().command(&target, cmd).reached().len(), 1);
}

fn config(server: &MockServer, control_packets: bool) -> Config {
    let mut c = Config::new(server.twilsock_url());
    c.control_packets = control_packets;
    c
}

#[tokio::test]
async fn client_update_and_close_reach_the_sink_only_when_asked_for() {
    let server = MockServer::start().await;
    let (_quiet, mut quiet_notes) = Client::connect(&config(&server, false), &Token::on(&server, "bob").ttl(3600).mint())
        .await
        .unwrap();
    let (_client, mut notes) = Client::connect(&config(&server, true), &Token::on(&server, "alice").ttl(3600).mint())
        .await
        .unwrap();

    command(&server, "alice", SessionCommand::WarnTokenExpiry);
    let n = notes.next(WAIT).await.expect("the client_update");
    assert_eq!(n.method(), "client_update");
    assert_eq!(n.header["client_update_type"], "token_about_to_expire");

    command(&server, "alice", SessionCommand::close(CloseCode::Offload, Some(2500)));
    let n = notes.next(WAIT).await.expect("the close");
    assert_eq!(n.method(), "close");
    assert_eq!(n.header["status"]["code"], 308);
    assert_eq!(n.payload_json().unwrap(), json!({"backoff_policy": {"reconnect_min_ms": 2500}}));

    // Without the option, the same packets are acked but not handed over.
    command(&server, "bob", SessionCommand::WarnTokenExpiry);
    command(&server, "bob", SessionCommand::close(CloseCode::Offload, None));
    match quiet_notes.next(WAIT).await {
        Err(Error::Closed) => {}
        other => panic!("expected only the end of the connection, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn update_token_is_accepted_in_session_and_a_foreign_identity_is_refused() {
    let server = MockServer::start().await;
    let (client, _notes) = Client::connect(&config(&server, true), &Token::on(&server, "alice").ttl(3600).mint())
        .await
        .unwrap();
    client
        .update_token(&Token::on(&server, "alice").ttl(600).mint())
        .await
        .expect("a fresh token of the same identity");
    match client.update_token(&Token::on(&server, "bob").ttl(600).mint()).await {
        Err(Error::InitRefused { status: 401, header, .. }) => assert_eq!(header["status"]["errorCode"], 20101),
        other => panic!("expected a 401 refusal, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_init_carries_its_backoff() {
    let server = MockServer::start().await;
    let account = server.credentials().expect("the default seed").account_sid;
    server.control().deny_inits(InitDenial {
        id: 0,
        account: Some(account),
        identity: Some("alice".into()),
        count: 1,
        status: 429,
        error_code: 20429,
        description: None,
        backoff_ms: Some(3000),
    });
    match Client::connect(&config(&server, true), &Token::on(&server, "alice").ttl(3600).mint()).await {
        Err(Error::InitRefused { status: 429, payload, .. }) => {
            assert_eq!(*payload, json!({"backoff_policy": {"reconnect_min_ms": 3000}}));
        }
        other => panic!("expected a 429 refusal, got {:?}", other.map(|_| ())),
    }
    server.shutdown().await;
}
