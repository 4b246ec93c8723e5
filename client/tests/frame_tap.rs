//! The inspector's frame view over a real socket: a tapped session's frames in and out, in
//! order, decoded, through the control API (a page and the live NDJSON stream); nothing of it
//! through another tenant, nothing before the tap is on.
use std::time::Duration;

use rehearsal_client::{Client, Config};
use rehearsal_mock_server::MockServer;
use rehearsal_test_support::token_for;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// `(status, JSON body or Null)` of a control-plane request.
async fn control(server: &MockServer, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.control_url()))
        .bearer_auth(server.control_token())
        .timeout(WAIT);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("an answer");
    let status = res.status().as_u16();
    let text = res.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Reads NDJSON lines from a streaming answer.
struct Lines {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    /// The next line as JSON; `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON line"));
            }
            let chunk = tokio::time::timeout(WAIT, self.res.chunk())
                .await
                .expect("a frame line in time")
                .expect("the stream reads");
            self.buf.extend_from_slice(&chunk?);
        }
    }

    /// `(direction, method)` of the next frame line.
    async fn frame(&mut self) -> (String, String) {
        let v = self.next().await.expect("a frame");
        (
            v["direction"].as_str().unwrap_or("?").to_owned(),
            v["method"].as_str().unwrap_or("?").to_owned(),
        )
    }
}

fn pair(d: &str, m: &str) -> (String, String) {
    (d.to_owned(), m.to_owned())
}

#[tokio::test]
async fn a_tapped_sessions_frames_in_and_out_arrive_in_order_and_only_in_its_tenant() {
    let server = MockServer::start().await;
    let account = server.credentials().expect("the default seed").account_sid;
    let mut config = Config::new(server.twilsock_url());
    config.control_packets = true;
    let (client, mut notes) = Client::connect(&config, &token_for(&server, "alice")).await.expect("connected");

    let (status, list) = control(&server, reqwest::Method::GET, &format!("/tenants/{account}/connections"), None).await;
    assert_eq!(status, 200);
    let id = list["connections"][0]["id"].as_u64().expect("alice's session");
    let base = format!("/tenants/{account}/connections/{id}");

    // Not tapped yet: no frames, and the init already happened unseen.
    let (status, body) = control(&server, reqwest::Method::GET, &format!("{base}/frames"), None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_tap")));
    let (status, body) = control(
        &server,
        reqwest::Method::PUT,
        &format!("/tenants/{account}/connections/999999999/tap"),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_session")));
    let (status, _) = control(
        &server,
        reqwest::Method::PUT,
        &format!("/tenants/{account}/connections/x/tap"),
        None,
    )
    .await;
    assert_eq!(status, 400);

    let (status, body) = control(&server, reqwest::Method::PUT, &format!("{base}/tap"), None).await;
    assert_eq!((status, &body["tapping"]), (200, &json!(true)));

    let res = reqwest::Client::new()
        .get(format!("{}{base}/frames/stream", server.control_url()))
        .bearer_auth(server.control_token())
        .send()
        .await
        .expect("the stream");
    assert_eq!(res.status(), 200);
    let mut lines = Lines { res, buf: Vec::new() };

    // A token update: the client's `update` in, the server's `reply` out.
    client.update_token(&token_for(&server, "alice")).await.expect("updated");
    assert_eq!(lines.frame().await, pair("in", "update"));
    assert_eq!(lines.frame().await, pair("out", "reply"));

    // A token warning: `client_update` out, the client's ack in.
    let (status, _) = control(
        &server,
        reqwest::Method::POST,
        &format!("/tenants/{account}/connections/actions"),
        Some(json!({"target": {"session": id}, "action": "warn_token_expiry"})),
    )
    .await;
    assert_eq!(status, 200);
    let n = notes.next(WAIT).await.expect("the client_update");
    assert_eq!(n.method(), "client_update");
    assert_eq!(lines.frame().await, pair("out", "client_update"));
    assert_eq!(lines.frame().await, pair("in", "reply"));

    // The page holds the same frames, decoded: headers as JSON.
    let (status, page) = control(&server, reqwest::Method::GET, &format!("{base}/frames"), None).await;
    assert_eq!(status, 200);
    let frames = page["frames"].as_array().expect("frames");
    let seen: Vec<(String, String)> = frames
        .iter()
        .map(|f| pair(f["direction"].as_str().unwrap_or("?"), f["method"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        seen,
        [
            pair("in", "update"),
            pair("out", "reply"),
            pair("out", "client_update"),
            pair("in", "reply")
        ]
    );
    assert!(frames[0]["header"]["token"].is_string(), "{}", frames[0]);
    assert_eq!(frames[1]["header"]["status"]["code"], 200, "{}", frames[1]);
    assert_eq!(frames[2]["header"]["client_update_type"], "token_about_to_expire");
    assert!(frames.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));

    // Another tenant of the same server cannot read them.
    let (status, other) = control(&server, reqwest::Method::POST, "/tenants", Some(json!({}))).await;
    assert_eq!(status, 201, "{other}");
    let other = other["account_sid"].as_str().expect("a tenant");
    let (status, body) = control(
        &server,
        reqwest::Method::GET,
        &format!("/tenants/{other}/connections/{id}/frames"),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_tap")));

    // Turning the tap off ends the stream and frees the frames.
    let (status, _) = control(&server, reqwest::Method::DELETE, &format!("{base}/tap"), None).await;
    assert_eq!(status, 204);
    assert!(lines.next().await.is_none(), "the stream ends with the tap");
    let (status, _) = control(&server, reqwest::Method::GET, &format!("{base}/frames"), None).await;
    assert_eq!(status, 404);

    client.close().await;
    server.shutdown().await;
}
