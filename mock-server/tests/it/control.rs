//! The control plane's HTTP API (`/_rehearsal/v1`) end to end, on real sockets: auth, tenants
//! and their isolation, state snapshots, clocks, HTTP faults, the journal (filters, bounds, live
//! stream), actors, and connections driven against a real twilsock client.
//!
//! Every wait is bounded by [`WAIT`] (or the REST client's timeout); nothing sleeps for a fixed
//! time. The only deliberate pause is the delay fault under test, measured as "at least".
use std::time::{Duration, Instant};

use rehearsal_mock_server::clock::Millis;
use rehearsal_mock_server::twilsock::SessionCommand;
use rehearsal_mock_server::{MockServer, ServerConfig, Startup};
use rehearsal_test_support::token_for;
use rehearsal_test_support::twilsock::Client;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::support::{self, ACCOUNT_SID, AUTH_TOKEN, Api, Auth, SERVICE_SID, expect, expect_error, items};

/// Upper bound for every wait.
const WAIT: Duration = Duration::from_secs(5);

/// A frozen instant for clock tests: 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// A control-plane client
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Ctl {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/_rehearsal/v1`
    base: String,
    token: Option<String>,
}

impl Ctl {
    fn of(server: &MockServer) -> Ctl {
        Ctl {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(support::REQUEST_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
            base: server.control_url(),
            token: Some(server.control_token().to_owned()),
        }
    }

    fn without_token(&self) -> Ctl {
        Ctl {
            token: None,
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends; checks that every failure is the control plane's error body.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path} -> {status}: not JSON ({e})"))
        };
        if status >= 400 {
            assert_control_error(&format!("{method} {path}"), status, &body);
        }
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(&body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// A new tenant on the default seed's content, and a REST client with its auth token.
    async fn tenant(&self, server: &MockServer) -> (Value, Api) {
        let t = expect(201, self.post("/tenants", json!({})).await);
        let api = Api::new(
            &server.url(),
            Auth::basic(t["account_sid"].as_str().unwrap(), t["auth_token"].as_str().unwrap()),
        );
        (t, api)
    }

    async fn journal(&self, query: &str) -> Value {
        expect(200, self.get(&format!("/journal?{query}")).await)
    }
}

/// The control plane's error body: `code` (a word), `message`, `status` (+ `twilio_code`).
#[track_caller]
fn assert_control_error(what: &str, status: u16, body: &Value) {
    let obj = body.as_object().unwrap_or_else(|| panic!("{what} -> {status}: {body}"));
    assert!(obj["code"].as_str().is_some_and(|c| !c.is_empty()), "{what}: {body}");
    assert!(obj["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    assert_eq!(obj["status"], status, "{what}: {body}");
    assert!(
        obj.keys()
            .all(|k| ["code", "message", "status", "twilio_code"].contains(&k.as_str())),
        "{what}: {body}"
    );
}

/// A control error with this status and `code`; returns the message.
#[track_caller]
fn control_error(status: u16, code: &str, (got, body): (u16, Value)) -> String {
    assert_eq!(got, status, "{body:#}");
    assert_eq!(body["code"], code, "{body:#}");
    body["message"].as_str().unwrap_or_default().to_owned()
}

async fn start() -> (MockServer, Ctl, Api) {
    let (server, api) = support::start().await;
    let ctl = Ctl::of(&server);
    (server, ctl, api)
}

async fn start_with(config: ServerConfig) -> (MockServer, Ctl) {
    let server = MockServer::start_with(Startup {
        config,
        ..Default::default()
    })
    .await
    .expect("the default seed starts");
    let ctl = Ctl::of(&server);
    (server, ctl)
}

fn tenant_sid(t: &Value) -> &str {
    t["account_sid"].as_str().expect("account_sid")
}

async fn post_message(api: &Api, conversation: &str, body: &str) -> Value {
    expect(
        201,
        api.post(&format!("/v1/Conversations/{conversation}/Messages"), &[("Body", body)])
            .await,
    )
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_control_plane_needs_its_token() {
    let (server, ctl, api) = start().await;
    assert_eq!(server.control_token().len(), 32, "a random token is generated");

    control_error(401, "unauthorized", ctl.without_token().get("/tenants").await);
    let wrong = Ctl {
        token: Some("not-the-token".into()),
        ..ctl.clone()
    };
    control_error(401, "unauthorized", wrong.get("/tenants").await);
    // Unknown routes are hidden too.
    control_error(401, "unauthorized", ctl.without_token().get("/nope").await);

    let tenants = expect(200, ctl.get("/tenants").await);
    assert_eq!(tenants["tenants"][0]["account_sid"], ACCOUNT_SID);
    let res = ctl
        .without_token()
        .request(Method::GET, "/tenants")
        .header("X-Rehearsal-Control-Token", server.control_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the token header works as well as Bearer");

    control_error(404, "not_found", ctl.get("/nope").await);
    control_error(405, "method_not_allowed", ctl.call(Method::PATCH, "/tenants", None).await);
    // The Twilio API does not need (or see) the control token.
    expect(200, api.get("/v1/Conversations").await);
}

#[tokio::test]
async fn loopback_callers_need_no_token_when_the_server_opts_in() {
    let (_server, ctl) = start_with(ServerConfig {
        control_open_loopback: true,
        control_token: Some("given-token".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ctl.token.as_deref(), Some("given-token"), "a given token is kept");
    expect(200, ctl.without_token().get("/tenants").await);
    expect(200, ctl.get("/tenants").await);
}

// ---------------------------------------------------------------------------------------------
// Tenants and state
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_are_isolated_from_each_other() {
    let (server, ctl, _api) = start().await;
    let (a, api_a) = ctl.tenant(&server).await;
    let (b, api_b) = ctl.tenant(&server).await;
    for field in ["account_sid", "auth_token", "api_key", "api_secret", "service_sid"] {
        assert_ne!(a[field], b[field], "{field} differs between tenants");
    }
    assert_eq!(expect(200, ctl.get(&format!("/tenants/{}", tenant_sid(&a))).await), a);

    let only_a = expect(201, api_a.post("/v1/Conversations", &[("FriendlyName", "only in A")]).await);
    let sid = only_a["sid"].as_str().unwrap();
    expect(200, api_a.get(&format!("/v1/Conversations/{sid}")).await);
    expect_error(404, 20404, api_b.get(&format!("/v1/Conversations/{sid}")).await);
    let listed_b = support::field_of_items(&expect(200, api_b.get("/v1/Conversations").await), "sid");
    assert!(!listed_b.iter().any(|s| s == sid), "B does not list A's conversation");
    // Each tenant has the seed's content under its own SIDs.
    let general_a = expect(200, api_a.get("/v1/Conversations/general").await);
    let general_b = expect(200, api_b.get("/v1/Conversations/general").await);
    assert_ne!(general_a["sid"], general_b["sid"]);
    // B's SID with A's secret is refused.
    let mixed = api_b.with_auth(Auth::basic(tenant_sid(&b), a["auth_token"].as_str().unwrap()));
    expect_error(401, 20003, mixed.get("/v1/Conversations").await);

    let all = expect(200, ctl.get("/tenants").await);
    let sids: Vec<&str> = all["tenants"].as_array().unwrap().iter().map(tenant_sid).collect();
    assert!(sids.contains(&tenant_sid(&a)) && sids.contains(&tenant_sid(&b)) && sids.contains(&ACCOUNT_SID));
}

#[tokio::test]
async fn a_tenant_can_be_created_from_a_seed_of_its_own() {
    let (server, ctl, _api) = start().await;
    let seed = json!({
        "friendly_name": "custom",
        "users": [{"identity": "dana"}],
        "conversations": [{"unique_name": "standup", "participants": ["dana"]}],
    });
    let t = expect(201, ctl.post("/tenants", json!({ "seed": seed, "rng_seed": 7 })).await);
    let api = Api::new(&server.url(), Auth::basic(tenant_sid(&t), t["auth_token"].as_str().unwrap()));
    expect(200, api.get("/v1/Conversations/standup").await);
    expect_error(404, 20404, api.get("/v1/Conversations/general").await);

    let msg = control_error(400, "invalid_body", ctl.post("/tenants", json!({ "nope": 1 })).await);
    assert!(msg.contains("nope"), "serde's message names the field: {msg}");
    // A seed naming an existing account is a conflict.
    let clash = json!({ "seed": { "sid": ACCOUNT_SID } });
    control_error(409, "conflict", ctl.post("/tenants", clash).await);
}

#[tokio::test]
async fn reset_restores_the_seed_and_keeps_the_credentials() {
    let (server, ctl, _api) = start().await;
    let (t, api) = ctl.tenant(&server).await;
    let sid = tenant_sid(&t);
    let created = expect(201, api.post("/v1/Conversations", &[("UniqueName", "scratch")]).await);
    post_message(&api, "general", "added after the seed").await;

    let after = expect(200, ctl.post(&format!("/tenants/{sid}/reset"), json!({})).await);
    assert_eq!(after, t, "same credentials after a reset");
    expect_error(
        404,
        20404,
        api.get(&format!("/v1/Conversations/{}", created["sid"].as_str().unwrap())).await,
    );
    let messages = expect(200, api.get("/v1/Conversations/general/Messages").await);
    assert_eq!(items(&messages).len(), 4, "the seed's four messages, nothing else");

    control_error(404, "no_tenant", ctl.post("/tenants/ACnope/reset", json!({})).await);
}

#[tokio::test]
async fn deleting_a_tenant_revokes_its_credentials() {
    let (server, ctl, _api) = start().await;
    let (t, api) = ctl.tenant(&server).await;
    let sid = tenant_sid(&t);
    expect(200, api.get("/v1/Conversations").await);
    assert_eq!(ctl.delete(&format!("/tenants/{sid}")).await.0, 204);
    expect_error(401, 20003, api.get("/v1/Conversations").await);
    control_error(404, "no_tenant", ctl.get(&format!("/tenants/{sid}")).await);
    control_error(404, "no_tenant", ctl.delete(&format!("/tenants/{sid}")).await);
}

#[tokio::test]
async fn state_round_trips_and_newer_formats_are_refused() {
    let (server, ctl, _api) = start().await;
    let (t, api) = ctl.tenant(&server).await;
    let sid = tenant_sid(&t);
    post_message(&api, "general", "kept in the snapshot").await;

    let snapshot = expect(200, ctl.get(&format!("/tenants/{sid}/state")).await);
    assert_eq!(snapshot["kind"], "rehearsal-state");
    assert_eq!(snapshot["format"], 1);
    assert_eq!(snapshot["accounts"].as_array().unwrap().len(), 1);

    expect(200, ctl.post(&format!("/tenants/{sid}/reset"), json!({})).await);
    assert_eq!(items(&expect(200, api.get("/v1/Conversations/general/Messages").await)).len(), 4);

    let imported = expect(200, ctl.put(&format!("/tenants/{sid}/state"), &snapshot).await);
    assert_eq!(imported["imported"], json!([sid]));
    let messages = expect(200, api.get("/v1/Conversations/general/Messages").await);
    let bodies = support::field_of_items(&messages, "body");
    assert_eq!(bodies.len(), 5);
    assert_eq!(bodies[4], "kept in the snapshot");

    let mut newer = snapshot.clone();
    newer["format"] = json!(99);
    let msg = control_error(409, "format_too_new", ctl.put(&format!("/tenants/{sid}/state"), &newer).await);
    assert!(msg.contains("newer") && msg.contains("99"), "{msg}");
    control_error(409, "format_too_new", ctl.put("/state", &newer).await);

    // A tenant's path takes that tenant's snapshot only.
    let (other, _) = ctl.tenant(&server).await;
    let msg = control_error(
        400,
        "invalid_request",
        ctl.put(&format!("/tenants/{}/state", tenant_sid(&other)), &snapshot).await,
    );
    assert!(msg.contains(sid), "{msg}");
    control_error(
        400,
        "invalid_snapshot",
        ctl.put(&format!("/tenants/{sid}/state"), &json!({"kind": "x"})).await,
    );

    // The whole server, in the `--state` format.
    let all = expect(200, ctl.get("/state").await);
    let sids: Vec<&str> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sid"].as_str().unwrap())
        .collect();
    assert!(sids.contains(&ACCOUNT_SID) && sids.contains(&sid), "{sids:?}");
    expect(200, ctl.put("/state", &all).await);
}

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenant_clocks_move_independently_and_follow_the_server_clock() {
    let (server, ctl, _api) = start().await;
    let (a, api_a) = ctl.tenant(&server).await;
    let (b, api_b) = ctl.tenant(&server).await;
    let (a, b) = (tenant_sid(&a).to_owned(), tenant_sid(&b).to_owned());

    let frozen = expect(
        200,
        ctl.post(&format!("/tenants/{a}/clock"), json!({"action": "freeze", "at": T0}))
            .await,
    );
    assert_eq!(frozen["now"], T0);
    assert_eq!(frozen["mode"], "frozen");
    assert_eq!(frozen["iso"], "2023-11-14T22:13:20.000Z");
    assert_eq!(
        post_message(&api_a, "general", "at T0").await["date_created"],
        "2023-11-14T22:13:20Z"
    );

    let advanced = expect(
        200,
        ctl.post(&format!("/tenants/{a}/clock"), json!({"action": "advance", "by_ms": 3_600_000}))
            .await,
    );
    assert_eq!(advanced["now"], T0 + 3_600_000);
    assert_eq!(
        post_message(&api_a, "general", "an hour later").await["date_created"],
        "2023-11-14T23:13:20Z"
    );

    // B is untouched: it runs on the server's (real) time.
    assert_eq!(expect(200, ctl.get(&format!("/tenants/{b}/clock")).await)["mode"], "running");
    let b_date = post_message(&api_b, "general", "now").await["date_created"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!b_date.starts_with("2023-11-14"), "{b_date}");

    // Moving the server clock moves running tenant clocks, not frozen ones.
    let t1 = T0 + 86_400_000;
    let server_clock = expect(200, ctl.post("/clock", json!({"action": "freeze", "at": t1})).await);
    assert_eq!(server_clock["now"], t1);
    assert_eq!(expect(200, ctl.get("/clock").await)["mode"], "frozen");
    assert_eq!(expect(200, ctl.get(&format!("/tenants/{b}/clock")).await)["now"], t1);
    assert_eq!(
        post_message(&api_b, "general", "server time").await["date_created"],
        Millis(t1).rfc3339()
    );
    assert_eq!(expect(200, ctl.get(&format!("/tenants/{a}/clock")).await)["now"], T0 + 3_600_000);
    expect(200, ctl.post("/clock", json!({"action": "advance", "by_ms": 1000})).await);
    assert_eq!(expect(200, ctl.get(&format!("/tenants/{b}/clock")).await)["now"], t1 + 1000);

    let resumed = expect(200, ctl.post(&format!("/tenants/{a}/clock"), json!({"action": "resume"})).await);
    assert_eq!(resumed["mode"], "running");
    let resumed = expect(200, ctl.post("/clock", json!({"action": "resume"})).await);
    assert_eq!(resumed["mode"], "running");

    control_error(400, "invalid_body", ctl.post("/clock", json!({"action": "advance"})).await);
    control_error(400, "invalid_body", ctl.post("/clock", json!({"action": "rewind"})).await);
    control_error(404, "no_tenant", ctl.get("/tenants/ACnope/clock").await);
    let journal = ctl.journal(&format!("account={a}&kind=control&contains=clock")).await;
    assert_eq!(
        journal["entries"].as_array().unwrap().len(),
        3,
        "freeze, advance, resume: {journal:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn failures_hit_the_next_matching_requests_then_disarm() {
    let (server, ctl, api) = start().await;
    let (_other, api_other) = ctl.tenant(&server).await;
    let rule = json!({
        "method": "POST", "path": "/v1/Conversations", "count": 2,
        "fault": {"kind": "fail", "status": 503, "code": 20503},
    });
    let armed = expect(201, ctl.post(&format!("/tenants/{ACCOUNT_SID}/faults/http"), rule).await);
    assert!(armed["id"].as_u64().is_some());
    let listed = expect(200, ctl.get("/faults").await);
    assert_eq!(listed["http"][0]["account"], ACCOUNT_SID);
    assert_eq!(listed["http"][0]["count"], 2);

    // Other methods, paths and tenants are not affected.
    expect(200, api.get("/v1/Conversations").await);
    expect(201, api_other.post("/v1/Conversations", &[("FriendlyName", "other")]).await);
    for _ in 0..2 {
        expect_error(503, 20503, api.post("/v1/Conversations", &[("FriendlyName", "x")]).await);
    }
    expect(201, api.post("/v1/Conversations", &[("FriendlyName", "x")]).await);
    assert_eq!(expect(200, ctl.get("/faults").await)["http"], json!([]));

    let faults = ctl.journal(&format!("account={ACCOUNT_SID}&kind=fault")).await;
    assert_eq!(faults["entries"].as_array().unwrap().len(), 2, "{faults:#}");
    let failed = ctl.journal(&format!("account={ACCOUNT_SID}&kind=rest&contains=-> 503")).await;
    assert_eq!(failed["entries"].as_array().unwrap().len(), 2, "{failed:#}");

    // Disarm by id, or all at once.
    let id = expect(
        201,
        ctl.post(
            "/faults/http",
            json!({"path": "/v1/*", "count": 5, "fault": {"kind": "fail", "status": 500, "code": 20500}}),
        )
        .await,
    )["id"]
        .as_u64()
        .unwrap();
    assert_eq!(ctl.delete(&format!("/faults/{id}")).await.0, 204);
    control_error(404, "no_fault", ctl.delete(&format!("/faults/{id}")).await);
    expect(200, api.get("/v1/Conversations").await);
    expect(
        201,
        ctl.post(
            "/faults/http",
            json!({"path": "/v1/*", "count": 5, "fault": {"kind": "fail", "status": 500, "code": 20500}}),
        )
        .await,
    );
    assert_eq!(ctl.delete("/faults").await.0, 204);
    expect(200, api.get("/v1/Conversations").await);

    control_error(
        400,
        "invalid_request",
        ctl.post(
            "/faults/http",
            json!({"path": "/v1/*", "count": 0, "fault": {"kind": "fail", "status": 500, "code": 1}}),
        )
        .await,
    );
    control_error(400, "invalid_body", ctl.post("/faults/http", json!({"path": "/v1/*"})).await);
}

#[tokio::test]
async fn a_delay_holds_the_request_then_lets_it_through() {
    let (_server, ctl, api) = start().await;
    let rule = json!({"method": "GET", "path": "/v1/Conversations", "count": 1, "fault": {"kind": "delay", "by": 300}});
    expect(201, ctl.post("/faults/http", rule).await);
    let started = Instant::now();
    expect(200, api.get("/v1/Conversations").await);
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    let delayed = ctl.journal("kind=fault&contains=delayed").await;
    assert_eq!(delayed["entries"].as_array().unwrap().len(), 1, "{delayed:#}");
}

#[tokio::test]
async fn media_uploads_can_be_made_to_fail() {
    let (server, ctl, _api) = start().await;
    let rule = json!({
        "method": "POST", "path": "/v1/Services/*/Media", "count": 1,
        "fault": {"kind": "fail", "status": 500, "code": 20500, "message": "upload failed on purpose"},
    });
    expect(201, ctl.post(&format!("/tenants/{ACCOUNT_SID}/faults/http"), rule).await);
    let upload = || async {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/Services/{SERVICE_SID}/Media", server.url()))
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .header("Content-Type", "image/png")
            .body(vec![7u8; 4096])
            .timeout(support::REQUEST_TIMEOUT)
            .send()
            .await
            .expect("upload");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.expect("a JSON body"))
    };
    let (status, body) = upload().await;
    support::assert_error_body("failed upload", status, &body);
    assert_eq!((status, body["code"].as_u64()), (500, Some(20500)));
    assert_eq!(body["message"], "upload failed on purpose");
    assert_eq!(upload().await.0, 201, "the fault fired once");
    let media = ctl.journal(&format!("account={ACCOUNT_SID}&kind=media")).await;
    let summaries: Vec<&str> = media["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert!(
        summaries[0].ends_with("-> 500") && summaries[1].ends_with("-> 201"),
        "{summaries:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_journal_records_rest_requests_and_filters_them() {
    let (server, ctl, api) = start().await;
    let after = ctl.journal("").await["last_seq"].as_u64().unwrap();
    expect(200, api.get("/v1/Conversations").await);
    expect(201, api.post("/v1/Conversations", &[("FriendlyName", "journaled")]).await);
    support::Api::new(&server.url(), Auth::None)
        .send_unchecked(Method::GET, "/v1/Conversations", None)
        .await;

    let page = ctl.journal(&format!("account={ACCOUNT_SID}&kind=rest&after={after}")).await;
    let entries = page["entries"].as_array().unwrap();
    let summaries: Vec<&str> = entries.iter().map(|e| e["summary"].as_str().unwrap()).collect();
    assert_eq!(summaries, ["GET /v1/Conversations -> 200", "POST /v1/Conversations -> 201"]);
    assert_eq!(entries[1]["detail"]["method"], "POST");
    assert_eq!(entries[1]["detail"]["status"], 201);
    assert!(entries[1]["detail"]["duration_ms"].is_u64());
    assert!(entries[0]["seq"].as_u64().unwrap() > after);
    assert_eq!(page["dropped"], 0);

    // The anonymous request has no account.
    let all = ctl.journal(&format!("kind=rest,media&after={after}")).await;
    assert_eq!(all["entries"].as_array().unwrap().len(), 3);
    assert!(all["entries"][2].get("account").is_none(), "{all:#}");

    let posts = ctl.journal(&format!("kind=rest&contains=POST&after={after}")).await;
    assert_eq!(posts["entries"].as_array().unwrap().len(), 1);
    let newest = ctl.journal(&format!("account={ACCOUNT_SID}&kind=rest&limit=1")).await;
    assert_eq!(newest["entries"][0]["summary"], "POST /v1/Conversations -> 201");
    assert_eq!(ctl.journal(&format!("kind=media&after={after}")).await["entries"], json!([]));
    let scoped = expect(
        200,
        ctl.get(&format!("/tenants/{ACCOUNT_SID}/journal?kind=rest&after={after}")).await,
    );
    assert_eq!(scoped["entries"].as_array().unwrap().len(), 2);

    control_error(400, "invalid_request", ctl.get("/journal?kind=bogus").await);
    control_error(400, "invalid_request", ctl.get("/journal?after=soon").await);
    control_error(400, "invalid_request", ctl.get("/journal?colour=red").await);
}

#[tokio::test]
async fn the_journal_is_bounded_and_counts_what_it_dropped() {
    let (server, ctl) = start_with(ServerConfig {
        journal_size: 5,
        ..Default::default()
    })
    .await;
    let api = Api::new(&server.url(), Auth::basic(ACCOUNT_SID, AUTH_TOKEN));
    for _ in 0..12 {
        expect(200, api.get("/v1/Conversations").await);
    }
    let page = ctl.journal("").await;
    let last = page["last_seq"].as_u64().unwrap();
    assert!(last >= 12);
    assert_eq!(page["capacity"], 5);
    assert_eq!(page["entries"].as_array().unwrap().len(), 5);
    assert_eq!(page["dropped"], last - 5);
    assert_eq!(page["entries"][4]["seq"], last, "the newest are kept");
}

/// Reads NDJSON lines from a streaming answer.
struct Lines {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    /// The next line as JSON, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON line"));
            }
            let chunk = timeout(WAIT, self.res.chunk())
                .await
                .expect("a journal line in time")
                .expect("the stream reads");
            match chunk {
                Some(c) => self.buf.extend_from_slice(&c),
                None => return None,
            }
        }
    }
}

async fn follow(ctl: &Ctl, query: &str) -> Lines {
    let res = ctl
        .http
        .get(format!("{}/journal/stream?{query}", ctl.base))
        .bearer_auth(ctl.token.as_deref().unwrap())
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    Lines { res, buf: Vec::new() }
}

#[tokio::test]
async fn the_journal_streams_new_entries_live() {
    let (_server, ctl, api) = start().await;
    expect(200, api.get("/v1/Conversations").await);
    // Without `after`: only what is recorded from now on.
    let mut live = follow(&ctl, &format!("account={ACCOUNT_SID}&kind=rest")).await;
    expect(200, api.get("/v1/Conversations/general").await);
    let entry = live.next().await.expect("an entry");
    assert_eq!(entry["summary"], "GET /v1/Conversations/general -> 200");
    expect(201, api.post("/v1/Conversations", &[("FriendlyName", "live")]).await);
    assert_eq!(live.next().await.expect("an entry")["summary"], "POST /v1/Conversations -> 201");

    // With `after`: the backlog first; `limit` ends the stream.
    let mut replay = follow(&ctl, "kind=rest&after=0&limit=2").await;
    assert_eq!(replay.next().await.expect("backlog")["summary"], "GET /v1/Conversations -> 200");
    assert_eq!(
        replay.next().await.expect("backlog")["summary"],
        "GET /v1/Conversations/general -> 200"
    );
    assert!(replay.next().await.is_none(), "the stream ends after `limit` entries");
}

// ---------------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn actors_act_as_named_identities() {
    let (_server, ctl, api) = start().await;
    let acted = expect(
        200,
        ctl.post(
            &format!("/tenants/{ACCOUNT_SID}/actors"),
            json!({"as": "alice", "action": "post", "conversation": "general", "body": "hello from alice"}),
        )
        .await,
    );
    let sid = acted["sid"].as_str().expect("the message SID");
    let message = expect(200, api.get(&format!("/v1/Conversations/general/Messages/{sid}")).await);
    assert_eq!(message["author"], "alice");
    assert_eq!(message["body"], "hello from alice");

    let created = expect(
        200,
        ctl.post(
            &format!("/tenants/{ACCOUNT_SID}/actors"),
            json!({"as": "carol", "action": "create_conversation", "unique_name": "by-carol", "participants": ["alice"]}),
        )
        .await,
    );
    assert_eq!(created["unique_name"], "by-carol");
    let participants = expect(200, api.get("/v1/Conversations/by-carol/Participants").await);
    let mut identities = support::field_of_items(&participants, "identity");
    identities.sort();
    assert_eq!(identities, ["alice", "carol"]);

    let generated = expect(
        200,
        ctl.post(
            &format!("/tenants/{ACCOUNT_SID}/actors"),
            json!({"as": "bob", "action": "generate_messages", "conversation": "by-carol", "count": 50}),
        )
        .await,
    );
    assert_eq!(generated["count"], 50);
    let listed = expect(200, api.get("/v1/Conversations/by-carol/Messages?PageSize=100").await);
    let authors = support::field_of_items(&listed, "author");
    assert_eq!(authors.len(), 50);
    assert!(authors.iter().all(|a| a == "bob"), "{authors:?}");

    let path = format!("/tenants/{ACCOUNT_SID}/actors");
    control_error(
        400,
        "invalid_request",
        ctl.post(&path, json!({"action": "typing", "conversation": "general"})).await,
    );
    let msg = control_error(
        400,
        "invalid_body",
        ctl.post(&path, json!({"as": "alice", "action": "dance"})).await,
    );
    assert!(msg.contains("dance"), "{msg}");
    let (status, body) = ctl
        .post(&path, json!({"as": "alice", "action": "post", "conversation": "nope", "body": "x"}))
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("action_failed")), "{body:#}");
    assert!(body["twilio_code"].is_u64(), "{body:#}");
    let typing = json!({"as": "alice", "action": "typing", "conversation": "general"});
    control_error(404, "no_tenant", ctl.post("/tenants/ACnope/actors", typing).await);
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// A twilsock client on `server` (not yet initialised), waiting at most [`WAIT`].
async fn connect(server: &MockServer) -> Client {
    Client::connect(&server.twilsock_url()).await.with_wait(WAIT)
}

/// Connects and completes `init` as `identity`.
async fn established(server: &MockServer, identity: &str) -> Client {
    let mut c = connect(server).await;
    let reply = c.init("TMinit", &token_for(server, identity)).await;
    assert_eq!(reply.header["status"]["code"], 200, "{reply:?}");
    c
}

async fn connections(ctl: &Ctl, query: &str) -> Vec<Value> {
    let listed = expect(200, ctl.get(&format!("/tenants/{ACCOUNT_SID}/connections{query}")).await);
    listed["connections"].as_array().expect("connections").clone()
}

/// Waits until the tenant lists `n` live sessions (registration follows the init reply).
async fn wait_for_connections(ctl: &Ctl, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = connections(ctl, "").await;
        if list.len() == n {
            return list;
        }
        assert!(Instant::now() < deadline, "expected {n} live sessions, have {list:#?}");
        tokio::task::yield_now().await;
    }
}

/// Waits until alice's session has at least one frame queued or kept back.
async fn wait_for_backlog(ctl: &Ctl) {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = connections(ctl, "?identity=alice").await;
        let queued = |field: &str| list.first().and_then(|s| s[field].as_u64()).is_some_and(|n| n >= 1);
        // Frames kept back count in bytes too, until written.
        if queued("queue_depth") && queued("queue_bytes") {
            return;
        }
        assert!(Instant::now() < deadline, "nothing kept back: {list:#?}");
        tokio::task::yield_now().await;
    }
}

async fn session_action(ctl: &Ctl, body: Value) -> (u16, Value) {
    ctl.post(&format!("/tenants/{ACCOUNT_SID}/connections/actions"), body).await
}

#[tokio::test]
async fn connections_are_listed_and_dropped_by_identity() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    let mut bob = established(&server, "bob").await;
    let list = wait_for_connections(&ctl, 2).await;
    let alices = connections(&ctl, "?identity=alice").await;
    assert_eq!(alices.len(), 1, "{list:#?}");
    let a = &alices[0];
    assert_eq!(a["identity"], "alice");
    assert_eq!(a["account"], ACCOUNT_SID);
    assert_eq!(a["state"], "connected");
    assert!(
        a["since"].is_i64() && a["queue_depth"].is_u64() && a["queue_bytes"].is_u64() && a["subscriptions"].is_array(),
        "{a:#}"
    );
    let all = expect(200, ctl.get(&format!("/connections?account={ACCOUNT_SID}")).await);
    assert_eq!(all["connections"].as_array().unwrap().len(), 2);

    let dropped = expect(
        200,
        session_action(&ctl, json!({"target": {"identity": "alice"}, "action": "drop"})).await,
    );
    assert_eq!(dropped["sessions"], json!([a["id"]]));
    alice.ended().await;
    let left = wait_for_connections(&ctl, 1).await;
    assert_eq!(left[0]["identity"], "bob");

    // Bob is still served: a warning reaches him.
    let warned = expect(
        200,
        session_action(&ctl, json!({"target": {"session": left[0]["id"]}, "action": "warn_token_expiry"})).await,
    );
    assert_eq!(warned["sessions"], json!([left[0]["id"]]));
    let update = bob.until("client_update").await;
    assert_eq!(update.header["client_update_type"], "token_about_to_expire");

    control_error(
        404,
        "no_session",
        session_action(&ctl, json!({"target": {"session": 999_999_999}, "action": "drop"})).await,
    );
    control_error(400, "invalid_body", session_action(&ctl, json!({"action": "explode"})).await);
}

#[tokio::test]
async fn a_close_308_carries_its_backoff_and_frames_can_be_injected() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    wait_for_connections(&ctl, 1).await;

    let injected = expect(
        200,
        session_action(
            &ctl,
            json!({"target": {"identity": "alice"}, "action": "inject_frame",
                   "header": {"method": "notification", "id": "TMinjected", "message_type": "custom"},
                   "payload": {"hello": "alice"}}),
        )
        .await,
    );
    assert_eq!(injected["sessions"].as_array().unwrap().len(), 1);
    let note = alice.until("notification").await;
    assert_eq!(note.id(), Some("TMinjected"));
    assert_eq!(note.payload_json::<Value>().unwrap(), json!({"hello": "alice"}));

    let closed = expect(
        200,
        session_action(
            &ctl,
            json!({"target": {"identity": "alice"}, "action": "close", "code": 308, "backoff_ms": 2500}),
        )
        .await,
    );
    assert_eq!(closed["sessions"].as_array().unwrap().len(), 1);
    let close = alice.until("close").await;
    assert_eq!(close.header["status"]["code"], 308);
    assert_eq!(
        close.payload_json::<Value>().unwrap(),
        json!({"backoff_policy": {"reconnect_min_ms": 2500}})
    );
    // As the SDK does: close the socket after a close packet (the server would wait its grace).
    alice.close(None).await;
    alice.ended().await;
    wait_for_connections(&ctl, 0).await;

    control_error(
        400,
        "invalid_request",
        session_action(&ctl, json!({"action": "close", "code": 42})).await,
    );
}

#[tokio::test]
async fn expiring_the_token_closes_with_410() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    wait_for_connections(&ctl, 1).await;
    expect(200, session_action(&ctl, json!({"action": "expire_token"})).await);
    let close = alice.until("close").await;
    assert_eq!(close.header["status"]["code"], 410);
    assert_eq!(close.header["status"]["errorCode"], 20104);
}

#[tokio::test]
async fn denied_inits_answer_with_the_given_code_then_stop() {
    let (server, ctl, _api) = start().await;
    let denial = json!({"identity": "alice", "count": 1, "status": 401, "error_code": 20157, "description": "denied on purpose"});
    expect(201, ctl.post(&format!("/tenants/{ACCOUNT_SID}/inits/deny"), denial).await);
    assert_eq!(expect(200, ctl.get("/faults").await)["inits"].as_array().unwrap().len(), 1);

    let mut bob = connect(&server).await;
    assert_eq!(
        bob.init("TMinit", &token_for(&server, "bob")).await.header["status"]["code"],
        200,
        "another identity is not denied"
    );
    let mut alice = connect(&server).await;
    let denied = alice.init("TMinit", &token_for(&server, "alice")).await;
    assert_eq!(denied.header["status"]["code"], 401, "{denied:?}");
    assert_eq!(denied.header["status"]["errorCode"], 20157, "{denied:?}");
    assert_eq!(
        alice.init("TMinit", &token_for(&server, "alice")).await.header["status"]["code"],
        200,
        "the denial was used up"
    );

    control_error(
        400,
        "invalid_request",
        ctl.post(
            &format!("/tenants/{ACCOUNT_SID}/inits/deny"),
            json!({"count": 0, "status": 401, "error_code": 20101}),
        )
        .await,
    );
}

#[tokio::test]
async fn refused_connections_answer_503_until_the_time_is_up() {
    let (server, ctl, _api) = start().await;
    expect(
        200,
        ctl.post(&format!("/tenants/{ACCOUNT_SID}/clock"), json!({"action": "freeze"}))
            .await,
    );
    let refused = expect(
        200,
        ctl.post(&format!("/tenants/{ACCOUNT_SID}/connections/refuse"), json!({"for_ms": 60_000}))
            .await,
    );
    assert!(refused["until"].is_i64(), "{refused:#}");

    let mut alice = connect(&server).await;
    let reply = alice.init("TMinit", &token_for(&server, "alice")).await;
    assert_eq!(reply.header["status"]["code"], 503, "{reply:?}");

    expect(
        200,
        ctl.post(
            &format!("/tenants/{ACCOUNT_SID}/clock"),
            json!({"action": "advance", "by_ms": 60_000}),
        )
        .await,
    );
    assert_eq!(
        alice.init("TMinit", &token_for(&server, "alice")).await.header["status"]["code"],
        200
    );
}

#[tokio::test]
async fn latency_delays_the_replies_to_upstream_requests() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    wait_for_connections(&ctl, 1).await;
    let set = expect(
        200,
        session_action(&ctl, json!({"target": {"identity": "alice"}, "action": "latency", "ms": 300})).await,
    );
    assert_eq!(set["sessions"].as_array().unwrap().len(), 1);
    // The answer comes once the session has applied it: the next request meets the latency.
    assert_eq!(set["applied"], set["sessions"], "{set:#}");

    let started = Instant::now();
    let id = "TMreq1";
    alice.send_request(id, "GET", "/v3/Nothing/here", &[], None).await;
    let reply = alice.until("reply").await;
    assert_eq!(reply.id(), Some(id));
    assert_eq!(reply.header["http_status"]["code"], 404, "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
}

#[tokio::test]
async fn requests_over_twilsock_that_no_handler_takes_are_near_misses() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    for path in ["/Client/v2/Nothing/Here", "/Client/v2/Configuration"] {
        let id = "TMreq2";
        alice.send_request(id, "GET", path, &[], None).await;
        let reply = alice.until("reply").await;
        assert_eq!(reply.id(), Some(id));
    }
    let v = expect(200, ctl.get(&format!("/tenants/{ACCOUNT_SID}/near_misses")).await);
    let groups = v["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "only the unrouted request: {v:#}");
    assert_eq!(groups[0]["transport"], "twilsock");
    assert_eq!(groups[0]["path"], "/Client/v2/Nothing/Here");
    assert_eq!((groups[0]["status"].as_u64(), groups[0]["count"].as_u64()), (Some(404), Some(1)));
}

#[tokio::test]
async fn http_faults_also_hit_requests_tunnelled_over_twilsock() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    let rule = json!({
        "method": "GET", "path": "/Client/v2/Configuration", "count": 1,
        "fault": {"kind": "fail", "status": 503, "code": 20503, "message": "planned outage"},
    });
    expect(201, ctl.post(&format!("/tenants/{ACCOUNT_SID}/faults/http"), rule).await);

    let id = "TMreq3";
    alice.send_request(id, "GET", "/Client/v2/Configuration", &[], None).await;
    let reply = alice.until("reply").await;
    assert_eq!(reply.id(), Some(id));
    assert_eq!(reply.header["http_status"]["code"], 503, "{reply:?}");
    let body: Value = serde_json::from_slice(&reply.payload).expect("error body");
    assert_eq!(body["code"], 20503, "{body:#}");
    assert_eq!(body["message"], "planned outage", "{body:#}");

    // The rule is used up: the next request is answered.
    let id = "TMreq4";
    alice.send_request(id, "GET", "/Client/v2/Configuration", &[], None).await;
    let reply = alice.until("reply").await;
    assert_eq!(reply.id(), Some(id));
    assert_eq!(reply.header["http_status"]["code"], 200, "{reply:?}");

    let faults = ctl.journal(&format!("account={ACCOUNT_SID}&kind=fault")).await;
    let entries = faults["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{faults:#}");
    assert_eq!(entries[0]["detail"]["transport"], "twilsock", "{faults:#}");
    assert_eq!(entries[0]["detail"]["identity"], "alice", "{faults:#}");

    // A delay holds the reply, then lets the request through.
    let rule = json!({"path": "/Client/v2/*", "count": 1, "fault": {"kind": "delay", "by": 300}});
    expect(201, ctl.post(&format!("/tenants/{ACCOUNT_SID}/faults/http"), rule).await);
    let started = Instant::now();
    alice.send_request("TMdelayed", "GET", "/Client/v2/Configuration", &[], None).await;
    let reply = alice.until("reply").await;
    assert_eq!(reply.header["http_status"]["code"], 200, "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
}

#[tokio::test]
async fn held_notifications_wait_for_their_release() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    wait_for_connections(&ctl, 1).await;
    expect(
        200,
        session_action(&ctl, json!({"target": {"identity": "alice"}, "action": "hold_notifications"})).await,
    );

    // A subscription to an unknown object: the server pushes `subscription_failed`, normally
    // before the reply; held, the reply comes first.
    let body = json!({
        "event_protocol_version": 4, "action": "establish", "correlation_id": 1, "retried_requests": 0, "ttl_in_s": -1,
        "requests": [{"object_sid": "MPnothing", "object_type": "map", "last_event_id": 0}],
    });
    let id = "TMsubscribe";
    alice.send_request(id, "POST", "/v4/Subscriptions", &[], Some(&body)).await;
    let first = alice.try_recv().await.expect("the reply");
    assert_eq!((first.method(), first.id()), (Some("reply"), Some(id)), "{first:?}");
    wait_for_backlog(&ctl).await;

    expect(
        200,
        session_action(&ctl, json!({"target": {"identity": "alice"}, "action": "release_notifications"})).await,
    );
    let note = alice.until("notification").await;
    assert_eq!(note.payload_json::<Value>().unwrap()["event_type"], "subscription_failed");
}

#[tokio::test]
async fn a_stalled_session_writes_nothing_until_unstalled() {
    let (server, ctl, _api) = start().await;
    let mut alice = established(&server, "alice").await;
    wait_for_connections(&ctl, 1).await;
    expect(
        200,
        session_action(&ctl, json!({"target": {"identity": "alice"}, "action": "stall"})).await,
    );
    expect(
        200,
        session_action(
            &ctl,
            json!({"target": {"identity": "alice"}, "action": "inject_frame",
                   "header": {"method": "notification", "id": "TMstalled", "message_type": "custom"}}),
        )
        .await,
    );
    wait_for_backlog(&ctl).await;
    assert_eq!(connections(&ctl, "").await.len(), 1, "a stalled session stays connected");

    expect(
        200,
        session_action(&ctl, json!({"target": {"identity": "alice"}, "action": "unstall"})).await,
    );
    assert_eq!(alice.until("notification").await.id(), Some("TMstalled"));
}

/// A session acknowledges the very command it was sent, not one whose journal summary looks
/// alike: an unstall applied after the wait began ("unstall applied" contains "stall
/// applied") must not be taken for the stall's acknowledgement. The unstall and a drop are
/// queued first, on this single-threaded runtime, so the session applies them only once the
/// wait has begun, and ends before it ever reaches the stall.
#[tokio::test]
async fn a_command_is_acknowledged_by_itself_not_by_a_lookalike() {
    let (server, ctl, _api) = start().await;
    let _alice = established(&server, "alice").await;
    let id = wait_for_connections(&ctl, 1).await[0]["id"].as_u64().expect("a session id");
    let control = server.control();
    let target = rehearsal_mock_server::control::sessions::Target {
        account: ACCOUNT_SID.to_owned(),
        session: Some(id),
        identity: None,
    };
    // Sending never yields: the session has applied neither when the stall is sent.
    assert_eq!(control.command(&target, SessionCommand::Unstall).reached(), [id]);
    assert_eq!(control.command(&target, SessionCommand::Drop).reached(), [id]);
    let (reached, applied) = control.command_applied(&target, SessionCommand::Stall).await;
    assert_eq!(reached, [id], "the stall was queued behind the drop");
    assert_eq!(applied, Vec::<u64>::new(), "the session ended before it could apply the stall");
    wait_for_connections(&ctl, 0).await;
}

#[tokio::test]
async fn the_journal_cuts_long_fields_and_is_bounded_in_bytes() {
    const MAX: u64 = 1024 * 1024;
    let (server, ctl) = start_with(ServerConfig {
        journal_bytes: MAX as usize,
        ..Default::default()
    })
    .await;
    let api = Api::new(&server.url(), Auth::basic(ACCOUNT_SID, AUTH_TOKEN));
    // 60 KB paths: before, each request kept them twice (summary and detail) in full.
    let long = "a".repeat(60 * 1024);
    for _ in 0..40 {
        expect_error(404, 20404, api.get(&format!("/v1/Conversations/{long}")).await);
    }
    let page = ctl.journal("").await;
    let bytes = page["bytes"].as_u64().expect("the journal reports its bytes");
    assert!(bytes <= MAX, "{bytes} bytes kept, more than {MAX}");
    assert_eq!(page["max_bytes"], MAX);
    assert!(page["dropped"].as_u64().unwrap() > 0, "40 entries of 120 KB fit in 1 MiB?");
    let entries = page["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        let summary = e["summary"].as_str().unwrap();
        assert!(summary.len() < 40 * 1024, "{} bytes of summary kept", summary.len());
        assert!(summary.contains("…[truncated "), "no marker in {summary:.80}…");
        let path = e["detail"]["path"].as_str().unwrap_or_default();
        assert!(path.len() < 40 * 1024, "{} bytes of path kept", path.len());
    }
    // Still journaling, and serving, afterwards.
    expect(200, api.get("/v1/Conversations").await);
    let page = ctl.journal("").await;
    let newest = page["entries"].as_array().unwrap().last().cloned().unwrap();
    assert!(
        newest["summary"].as_str().unwrap().starts_with("GET /v1/Conversations "),
        "{newest:#}"
    );
}
