//! Webhooks: configuration over REST, pre-action hooks (proceed, modify, reject, time out),
//! post-action deliveries (order, retries, drops), the REST header rule, signatures and the
//! journal. The customer's backend is a `wiremock` server.
use std::time::{Duration, Instant};

use rehearsal_mock_server::auth::Claims;
use rehearsal_mock_server::auth::identity::Caller;
use rehearsal_mock_server::journal::{Entry, Filter, Kind};
use rehearsal_mock_server::server::{ServerConfig, Startup};
use rehearsal_mock_server::twilsock::{UpstreamRequest, UpstreamResponse};
use rehearsal_mock_server::webhooks::{WebhookSettings, signature};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer as Backend, Request, ResponseTemplate};

use crate::support::{self, ACCOUNT_SID, AUTH_TOKEN, Api, SERVICE_SID, expect, expect_error};

type Server = rehearsal_mock_server::MockServer;

/// How long a test waits for deliveries that should come.
const PATIENCE: Duration = Duration::from_secs(10);

async fn start_with(settings: WebhookSettings) -> (Server, Api) {
    let server = Server::start_with(Startup {
        config: ServerConfig {
            webhooks: settings,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("the default seed starts");
    let api = Api::new(&server.url(), support::Auth::basic(ACCOUNT_SID, AUTH_TOKEN));
    (server, api)
}

/// Quick retries, so that tests of the retry policy take milliseconds.
fn fast() -> WebhookSettings {
    WebhookSettings {
        retry_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

/// The form fields of a request the backend received (query string for `GET`).
fn form(r: &Request) -> Vec<(String, String)> {
    if r.method.as_str() == "GET" {
        r.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    } else {
        serde_urlencoded::from_bytes(&r.body).expect("a form body")
    }
}

fn field(r: &Request, name: &str) -> Option<String> {
    form(r).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A wiremock matcher on one form field.
struct Field(&'static str, &'static str);

impl Match for Field {
    fn matches(&self, r: &Request) -> bool {
        field(r, self.0).as_deref() == Some(self.1)
    }
}

/// Waits until the backend has received `n` requests (and a moment more, to catch extras).
async fn received(backend: &Backend, n: usize) -> Vec<Request> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = backend.received_requests().await.unwrap_or_default();
        if got.len() >= n {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return backend.received_requests().await.unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "expected {n} webhook requests, got {}", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events(requests: &[Request]) -> Vec<String> {
    requests.iter().map(|r| field(r, "EventType").unwrap_or_default()).collect()
}

fn journal(server: &Server) -> Vec<Entry> {
    server
        .control()
        .journal()
        .query(&Filter {
            kind: Some(vec![Kind::Webhook]),
            ..Default::default()
        })
        .entries
}

/// Waits until the journal holds a webhook entry with this outcome.
async fn journaled(server: &Server, outcome: &str) -> Entry {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(e) = journal(server).into_iter().find(|e| e.detail["outcome"] == outcome) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {outcome:?} webhook in the journal: {:#?}",
            journal(server)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Points the account-wide configuration at `backend` (`/pre`, `/post`) with these filters.
async fn configure(api: &Api, backend: &Backend, method: &str, filters: &[&str]) {
    let pre = format!("{}/pre", backend.uri());
    let post = format!("{}/post", backend.uri());
    let mut form = vec![
        ("PreWebhookUrl", pre.as_str()),
        ("PostWebhookUrl", post.as_str()),
        ("Method", method),
    ];
    form.extend(filters.iter().map(|f| ("Filters", *f)));
    expect(200, api.post("/v1/Configuration/Webhooks", &form).await);
}

async fn ok_backend() -> Backend {
    let backend = Backend::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    backend
}

/// REST with `X-Twilio-Webhook-Enabled: true`.
async fn hooked_post(api: &Api, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", api.base()))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .header("X-Twilio-Webhook-Enabled", "true")
        .form(form)
        .send()
        .await
        .expect("the request is answered")
}

// ---- the SDK's requests, through the client API as a twilsock session would send them

fn caller(server: &Server, identity: &str) -> Caller {
    let account = server.domain().account(ACCOUNT_SID).expect("the seeded account");
    Caller {
        claims: Claims {
            account_sid: account.sid.clone(),
            api_key_sid: account.api_keys[0].sid.clone(),
            identity: identity.to_owned(),
            service_sid: Some(SERVICE_SID.to_owned()),
            issued_at: 0,
            expires_at: i64::MAX,
            not_before: None,
        },
        account,
        service_sid: SERVICE_SID.to_owned(),
    }
}

async fn sdk(server: &Server, identity: &str, method: &str, path: &str, body: Value) -> UpstreamResponse {
    let req = UpstreamRequest {
        method: method.into(),
        host: "aim.us1.twilio.com".into(),
        path: format!("/Client/v2/Services/{SERVICE_SID}{path}"),
        raw_path: String::new(),
        params: Vec::new(),
        headers: Default::default(),
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(&body).expect("JSON").into(),
    };
    let segments: Vec<String> = req.path.split('/').filter(|s| !s.is_empty()).skip(2).map(str::to_owned).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    rehearsal_mock_server::client_api::handle(&server.url(), 5, &caller(server, identity), &req, &segments).await
}

async fn general(api: &Api) -> String {
    support::conversation_sid(api, "general").await
}

async fn bodies(api: &Api, conv: &str) -> Vec<String> {
    let list = expect(200, api.get(&format!("/v1/Conversations/{conv}/Messages?PageSize=100")).await);
    support::items(&list)
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---- configuration over REST

#[tokio::test]
async fn account_and_service_configuration_are_fetched_and_updated() {
    let (_server, api) = support::start().await;
    let empty = expect(200, api.get("/v1/Configuration/Webhooks").await);
    assert_eq!(empty["pre_webhook_url"], Value::Null);
    assert_eq!(empty["filters"], Value::Null);
    assert_eq!(empty["method"], "POST");
    let set = expect(
        200,
        api.post(
            "/v1/Configuration/Webhooks",
            &[
                ("PreWebhookUrl", "http://127.0.0.1:9/pre"),
                ("PostWebhookUrl", "http://127.0.0.1:9/post"),
                ("Method", "GET"),
                ("Filters", "onMessageAdd"),
                ("Filters", "onMessageAdded"),
                ("Target", "webhook"),
            ],
        )
        .await,
    );
    assert_eq!(set["method"], "GET");
    assert_eq!(set["filters"], json!(["onMessageAdd", "onMessageAdded"]));
    assert_eq!(expect(200, api.get("/v1/Configuration/Webhooks").await), set);
    expect_error(
        400,
        20001,
        api.post("/v1/Configuration/Webhooks", &[("Filters", "onMessageSent")]).await,
    );
    expect_error(400, 20001, api.post("/v1/Configuration/Webhooks", &[("Method", "PUT")]).await);
    expect_error(
        400,
        20001,
        api.post("/v1/Configuration/Webhooks", &[("PostWebhookUrl", "ftp://x")]).await,
    );

    let path = format!("/v1/Services/{SERVICE_SID}/Configuration/Webhooks");
    let svc = expect(200, api.get(&path).await);
    assert_eq!(svc["chat_service_sid"], SERVICE_SID);
    assert_eq!(svc["post_webhook_url"], Value::Null);
    let svc = expect(
        200,
        api.post(&path, &[("PostWebhookUrl", "http://127.0.0.1:9/svc"), ("Filters", "onUserAdded")])
            .await,
    );
    assert_eq!(svc["post_webhook_url"], "http://127.0.0.1:9/svc");
    // An empty value clears a URL.
    let svc = expect(200, api.post(&path, &[("PostWebhookUrl", "")]).await);
    assert_eq!(svc["post_webhook_url"], Value::Null);
    assert_eq!(svc["filters"], json!(["onUserAdded"]));
}

#[tokio::test]
async fn conversation_scoped_webhooks_are_listed_fetched_updated_and_deleted() {
    let (_server, api) = support::start().await;
    let conv = general(&api).await;
    for prefix in support::prefixes() {
        let base = format!("{prefix}/Conversations/{conv}/Webhooks");
        let created = expect(
            201,
            api.post(
                &base,
                &[
                    ("Target", "webhook"),
                    ("Configuration.Url", "http://127.0.0.1:9/scoped"),
                    ("Configuration.Method", "GET"),
                    ("Configuration.Filters", "onMessageAdded"),
                ],
            )
            .await,
        );
        let sid = created["sid"].as_str().expect("a SID").to_owned();
        assert!(sid.starts_with("WH"), "{sid}");
        assert_eq!(created["configuration"]["method"], "get");
        assert_eq!(created["configuration"]["filters"], json!(["onMessageAdded"]));
        let list = expect(200, api.get(&base).await);
        assert_eq!(support::field_of_items(&list, "sid"), vec![sid.clone()]);
        let one = format!("{base}/{sid}");
        assert_eq!(expect(200, api.get(&one).await)["sid"], sid);
        let updated = expect(200, api.post(&one, &[("Configuration.Filters", "onParticipantAdded")]).await);
        assert_eq!(updated["configuration"]["filters"], json!(["onParticipantAdded"]));
        let trigger = expect(
            201,
            api.post(
                &base,
                &[
                    ("Target", "trigger"),
                    ("Configuration.Url", "http://127.0.0.1:9/kw"),
                    ("Configuration.Triggers", "help"),
                ],
            )
            .await,
        );
        assert_eq!(trigger["configuration"]["filters"], json!(["help"]));
        expect(204, api.delete(&one).await);
        expect(204, api.delete(&format!("{base}/{}", trigger["sid"].as_str().unwrap())).await);
        expect_error(404, 20404, api.get(&one).await);
        assert!(support::items(&expect(200, api.get(&base).await)).is_empty());
    }
    let base = format!("/v1/Conversations/{conv}/Webhooks");
    expect_error(400, 50368, api.post(&base, &[("Configuration.Url", "http://x/")]).await);
    expect_error(400, 50364, api.post(&base, &[("Target", "email")]).await);
    expect_error(
        400,
        50365,
        api.post(
            &base,
            &[
                ("Target", "webhook"),
                ("Configuration.Url", "http://x/"),
                ("Configuration.Filters", "onMessageAdd"),
            ],
        )
        .await,
    );
    expect_error(
        400,
        50370,
        api.post(&base, &[("Target", "webhook"), ("Configuration.Url", "http://x/")]).await,
    );
    expect_error(
        400,
        50371,
        api.post(&base, &[("Target", "trigger"), ("Configuration.Url", "http://x/")]).await,
    );
    for _ in 0..5 {
        expect(
            201,
            api.post(
                &base,
                &[
                    ("Target", "webhook"),
                    ("Configuration.Url", "http://x/"),
                    ("Configuration.Filters", "onMessageAdded"),
                ],
            )
            .await,
        );
    }
    expect_error(
        400,
        20001,
        api.post(
            &base,
            &[
                ("Target", "webhook"),
                ("Configuration.Url", "http://x/"),
                ("Configuration.Filters", "onMessageAdded"),
            ],
        )
        .await,
    );
    expect_error(404, 20404, api.get("/v1/Conversations/CHnope/Webhooks").await);
}

#[tokio::test]
async fn configuration_survives_a_snapshot() {
    let (server, api) = support::start().await;
    configure(&api, &ok_backend().await, "POST", &["onMessageAdded"]).await;
    let conv = general(&api).await;
    expect(
        201,
        api.post(
            &format!("/v1/Conversations/{conv}/Webhooks"),
            &[
                ("Target", "webhook"),
                ("Configuration.Url", "http://x/"),
                ("Configuration.Filters", "onMessageAdded"),
            ],
        )
        .await,
    );
    let snapshot = server.control().export(ACCOUNT_SID).expect("export");
    server.control().import(&snapshot.to_string()).expect("import");
    assert_eq!(
        expect(200, api.get("/v1/Configuration/Webhooks").await)["filters"],
        json!(["onMessageAdded"])
    );
    assert_eq!(
        support::items(&expect(200, api.get(&format!("/v1/Conversations/{conv}/Webhooks")).await)).len(),
        1
    );
}

// ---- the REST header rule

#[tokio::test]
async fn rest_actions_fire_webhooks_only_with_the_header() {
    let (server, api) = start_with(fast()).await;
    let backend = ok_backend().await;
    configure(&api, &backend, "POST", &["onMessageAdd", "onMessageAdded"]).await;
    let conv = general(&api).await;
    expect(
        201,
        api.post(&format!("/v1/Conversations/{conv}/Messages"), &[("Body", "quiet")]).await,
    );
    // The next delivery is the first one: nothing was queued for the quiet message.
    let res = hooked_post(
        &api,
        &format!("/v1/Conversations/{conv}/Messages"),
        &[("Body", "loud"), ("Author", "ops")],
    )
    .await;
    assert_eq!(res.status(), 201);
    let got = received(&backend, 2).await;
    assert_eq!(events(&got), ["onMessageAdd", "onMessageAdded"]);
    assert_eq!(got[0].url.path(), "/pre");
    assert_eq!(got[1].url.path(), "/post");
    for r in &got {
        assert_eq!(field(r, "Source").as_deref(), Some("API"));
        assert_eq!(field(r, "Body").as_deref(), Some("loud"));
        assert_eq!(field(r, "Author").as_deref(), Some("ops"));
        assert_eq!(field(r, "ConversationSid"), Some(conv.clone()));
        assert_eq!(field(r, "AccountSid").as_deref(), Some(ACCOUNT_SID));
        assert_eq!(field(r, "ClientIdentity"), None, "only SDK actions name a client");
    }
    assert!(field(&got[1], "MessageSid").is_some_and(|s| s.starts_with("IM")));
    assert!(field(&got[1], "Index").is_some());
    assert!(field(&got[1], "DateCreated").is_some());
    assert_eq!(field(&got[0], "MessageSid"), None, "the pre-action event has no SID yet");
    assert_eq!(field(&got[0], "RetryCount").as_deref(), Some("0"));
    assert_eq!(events(&received(&backend, 2).await).len(), 2, "the quiet message fired nothing");
    drop(server);
}

/// The control plane's actors endpoint, `{"as": …, "action": …}`.
async fn act(server: &Server, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/tenants/{ACCOUNT_SID}/actors", server.control_url()))
        .bearer_auth(server.control_token())
        .json(&body)
        .send()
        .await
        .expect("the control plane answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn actors_acting_as_an_identity_fire_pre_and_post_action_hooks_like_the_sdk() {
    let (server, api) = start_with(fast()).await;
    let backend = Backend::start().await;
    Mock::given(path("/pre"))
        .and(Field("EventType", "onMessageAdd"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "body": "[checked by the backend]" })))
        .mount(&backend)
        .await;
    Mock::given(path("/pre"))
        .and(Field("EventType", "onParticipantAdd"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&backend)
        .await;
    Mock::given(path("/post"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdd", "onMessageAdded", "onParticipantAdd"]).await;
    let conv = general(&api).await;

    // As the REST API (no "as"): no webhook, as a REST call without the header.
    let (status, _) = act(&server, json!({"action": "post", "conversation": conv, "body": "from ops"})).await;
    assert_eq!(status, 200);

    // As alice: asked before (and modified by) the backend, told after, as the SDK's send is.
    let (status, acted) = act(
        &server,
        json!({"as": "alice", "action": "post", "conversation": conv, "body": "hello"}),
    )
    .await;
    assert_eq!(status, 200, "{acted}");
    let got = received(&backend, 2).await;
    assert_eq!(events(&got), ["onMessageAdd", "onMessageAdded"], "only alice's post fired");
    assert_eq!(got[0].url.path(), "/pre");
    assert_eq!(field(&got[0], "Source").as_deref(), Some("SDK"));
    assert_eq!(field(&got[0], "ClientIdentity").as_deref(), Some("alice"));
    assert_eq!(field(&got[0], "Body").as_deref(), Some("hello"), "the hook saw the proposal");
    assert_eq!(got[1].url.path(), "/post");
    assert_eq!(field(&got[1], "Body").as_deref(), Some("[checked by the backend]"));
    let sid = acted["sid"].as_str().expect("the message SID");
    let stored = expect(200, api.get(&format!("/v1/Conversations/{conv}/Messages/{sid}")).await);
    assert_eq!(stored["body"], "[checked by the backend]", "the action was applied as modified");

    // A rejecting hook stops the actor's action, with the SDK's error.
    let (status, body) = act(&server, json!({"as": "dave", "action": "join", "conversation": conv})).await;
    assert!(status >= 400, "a rejected join fails: {status} {body}");
    assert!(body.to_string().contains("rejected"), "{body}");
    let participants = expect(200, api.get(&format!("/v1/Conversations/{conv}/Participants?PageSize=100")).await);
    assert!(
        support::items(&participants).iter().all(|p| p["identity"] != "dave"),
        "dave was not added"
    );
    assert_eq!(journaled(&server, "rejected").await.detail["event"], "onParticipantAdd");
}

// ---- pre-action semantics

#[tokio::test]
async fn a_rejecting_pre_action_hook_stops_the_action_for_rest_and_sdk_callers() {
    let (server, api) = start_with(fast()).await;
    let backend = Backend::start().await;
    Mock::given(path("/pre"))
        .and(Field("EventType", "onMessageAdd"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&backend)
        .await;
    Mock::given(path("/post"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdd", "onMessageAdded"]).await;
    let conv = general(&api).await;
    let before = bodies(&api, &conv).await;

    let res = hooked_post(&api, &format!("/v1/Conversations/{conv}/Messages"), &[("Body", "spam")]).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.expect("an error body");
    support::assert_error_body("rejected POST", 403, &body);
    assert_eq!(body["code"], 20403);

    let reply = sdk(
        &server,
        "alice",
        "POST",
        &format!("/Conversations/{conv}/Messages"),
        json!({ "body": "spam" }),
    )
    .await;
    assert_eq!(reply.status, 403, "{:?}", reply.body);
    assert_eq!(reply.body["code"], 20403);

    assert_eq!(bodies(&api, &conv).await, before, "nothing was stored");
    let got = received(&backend, 2).await;
    assert_eq!(events(&got), ["onMessageAdd", "onMessageAdd"]);
    assert_eq!(field(&got[1], "Source").as_deref(), Some("SDK"));
    assert_eq!(field(&got[1], "ClientIdentity").as_deref(), Some("alice"));
    assert_eq!(field(&got[1], "Author").as_deref(), Some("alice"));
    assert!(field(&got[1], "ParticipantSid").is_some_and(|p| p.starts_with("MB")));
    let e = journaled(&server, "rejected").await;
    assert_eq!(e.detail["response"]["status"], 403);
    assert_eq!(e.detail["phase"], "pre");
    backend.verify().await;
}

#[tokio::test]
async fn a_modifying_pre_action_hook_changes_what_everyone_sees() {
    let (server, api) = start_with(fast()).await;
    let backend = Backend::start().await;
    Mock::given(path("/pre"))
        .and(Field("EventType", "onMessageAdd"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "body": "[redacted]", "attributes": { "moderated": true } })))
        .mount(&backend)
        .await;
    Mock::given(path("/pre"))
        .and(Field("EventType", "onConversationAdd"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "friendly_name": "Renamed by the backend" })))
        .mount(&backend)
        .await;
    Mock::given(path("/post"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdd", "onMessageAdded", "onConversationAdd"]).await;
    let conv = general(&api).await;

    let reply = sdk(
        &server,
        "alice",
        "POST",
        &format!("/Conversations/{conv}/Messages"),
        json!({ "body": "bad words" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(reply.body["body"], "[redacted]");
    let list = expect(
        200,
        api.get(&format!("/v1/Conversations/{conv}/Messages?Order=desc&PageSize=1")).await,
    );
    let stored = &support::items(&list)[0];
    assert_eq!(stored["body"], "[redacted]");
    assert_eq!(stored["attributes"], r#"{"moderated":true}"#);
    let got = received(&backend, 2).await;
    assert_eq!(field(&got[0], "Body").as_deref(), Some("bad words"), "the hook saw the original");
    assert_eq!(field(&got[1], "EventType").as_deref(), Some("onMessageAdded"));
    assert_eq!(
        field(&got[1], "Body").as_deref(),
        Some("[redacted]"),
        "the post-action hook sees the modified"
    );

    let res = hooked_post(&api, "/v1/Conversations", &[("FriendlyName", "Original")]).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("a conversation");
    assert_eq!(created["friendly_name"], "Renamed by the backend");
    assert_eq!(journaled(&server, "modified").await.detail["phase"], "pre");
}

#[tokio::test]
async fn a_pre_action_hook_that_does_not_answer_in_time_lets_the_action_proceed() {
    let (server, api) = start_with(WebhookSettings {
        timeout: Duration::from_millis(300),
        ..fast()
    })
    .await;
    let backend = Backend::start().await;
    Mock::given(path("/pre"))
        .respond_with(ResponseTemplate::new(403).set_delay(Duration::from_secs(3)))
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdd"]).await;
    let conv = general(&api).await;
    let started = Instant::now();
    let reply = sdk(
        &server,
        "bob",
        "POST",
        &format!("/Conversations/{conv}/Messages"),
        json!({ "body": "late" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
    assert_eq!(bodies(&api, &conv).await.last().map(String::as_str), Some("late"));
    let e = journaled(&server, "timed_out").await;
    assert_eq!(e.identity.as_deref(), Some("bob"));
}

#[tokio::test]
async fn an_unreachable_pre_action_hook_lets_the_action_proceed() {
    let (server, api) = start_with(fast()).await;
    expect(
        200,
        api.post(
            "/v1/Configuration/Webhooks",
            &[("PreWebhookUrl", "http://127.0.0.1:9/nobody"), ("Filters", "onConversationAdd")],
        )
        .await,
    );
    let reply = sdk(&server, "alice", "POST", "/Conversations", json!({ "friendly_name": "still here" })).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    journaled(&server, "unreachable").await;
}

#[tokio::test]
async fn pre_action_hooks_fire_only_for_events_in_the_filters() {
    let (server, api) = start_with(fast()).await;
    let backend = ok_backend().await;
    configure(&api, &backend, "POST", &["onMessageRemove"]).await;
    let conv = general(&api).await;
    let reply = sdk(
        &server,
        "alice",
        "POST",
        &format!("/Conversations/{conv}/Messages"),
        json!({ "body": "x" }),
    )
    .await;
    assert_eq!(reply.status, 201);
    let index = reply.body["index"].as_u64().expect("an index");
    let reply = sdk(
        &server,
        "alice",
        "DELETE",
        &format!("/Conversations/{conv}/Messages/{index}"),
        json!({}),
    )
    .await;
    assert_eq!(reply.status, 200);
    let got = received(&backend, 1).await;
    assert_eq!(events(&got), ["onMessageRemove"]);
    assert_eq!(field(&got[0], "Index"), Some(index.to_string()));
    assert_eq!(field(&got[0], "Body").as_deref(), Some("x"));
}

// ---- post-action delivery

#[tokio::test]
async fn post_action_hooks_arrive_in_commit_order_per_conversation_even_across_retries() {
    let (server, api) = start_with(fast()).await;
    let backend = Backend::start().await;
    // The first delivery fails twice; the ones after it must wait.
    Mock::given(path("/post"))
        .and(Field("Body", "m0"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&backend)
        .await;
    Mock::given(path("/post"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdded"]).await;
    let conv = general(&api).await;
    for i in 0..10 {
        let reply = sdk(
            &server,
            "alice",
            "POST",
            &format!("/Conversations/{conv}/Messages"),
            json!({ "body": format!("m{i}") }),
        )
        .await;
        assert_eq!(reply.status, 201);
    }
    let got = received(&backend, 12).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (field(r, "Body").unwrap_or_default(), field(r, "RetryCount").unwrap_or_default()))
        .collect();
    let mut expected = vec![
        ("m0".to_owned(), "0".to_owned()),
        ("m0".into(), "1".into()),
        ("m0".into(), "2".into()),
    ];
    expected.extend((1..10).map(|i| (format!("m{i}"), "0".to_owned())));
    assert_eq!(seen, expected);
    let indexes: Vec<u64> = got[2..].iter().map(|r| field(r, "Index").unwrap().parse().unwrap()).collect();
    assert!(indexes.windows(2).all(|w| w[0] + 1 == w[1]), "{indexes:?}");
    assert_eq!(journal(&server).iter().filter(|e| e.detail["outcome"] == "retrying").count(), 2);
}

#[tokio::test]
async fn a_failing_backend_gets_three_attempts_and_the_failure_is_journaled() {
    let (server, api) = start_with(fast()).await;
    let backend = Backend::start().await;
    Mock::given(path("/post"))
        .and(Field("EventType", "onConversationAdded"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&backend)
        .await;
    Mock::given(path("/post"))
        .and(Field("EventType", "onConversationUpdated"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onConversationAdded", "onConversationUpdated"]).await;
    let res = hooked_post(&api, "/v1/Conversations", &[("UniqueName", "doomed")]).await;
    assert_eq!(res.status(), 201, "the action never waits for post-action hooks");
    let e = journaled(&server, "gave_up").await;
    assert_eq!(e.detail["retry_count"], 2);
    let res = hooked_post(&api, "/v1/Conversations/doomed", &[("FriendlyName", "x")]).await;
    assert_eq!(res.status(), 200);
    let e = journaled(&server, "failed").await;
    assert_eq!(e.detail["response"]["status"], 404);
    backend.verify().await;
}

#[tokio::test]
async fn a_full_queue_drops_deliveries_and_journals_them_without_blocking() {
    let (server, api) = start_with(WebhookSettings {
        queue_capacity: 2,
        ..fast()
    })
    .await;
    let backend = Backend::start().await;
    Mock::given(path("/post"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdded"]).await;
    let conv = general(&api).await;
    let started = Instant::now();
    for i in 0..8 {
        let reply = sdk(
            &server,
            "alice",
            "POST",
            &format!("/Conversations/{conv}/Messages"),
            json!({ "body": format!("m{i}") }),
        )
        .await;
        assert_eq!(reply.status, 201);
    }
    assert!(started.elapsed() < Duration::from_millis(400), "the domain waited for deliveries");
    let dropped = journaled(&server, "dropped").await;
    assert!(dropped.summary.contains("dropped"), "{}", dropped.summary);
    assert_eq!(dropped.detail["reason"], "its conversation's queue is full");
    // At most the queue's two and the one in flight are delivered; every other is journaled.
    let deadline = Instant::now() + PATIENCE;
    let (delivered, drops) = loop {
        let outcomes: Vec<Value> = journal(&server).iter().map(|e| e.detail["outcome"].clone()).collect();
        let delivered = outcomes.iter().filter(|o| *o == "delivered").count();
        let drops = outcomes.iter().filter(|o| *o == "dropped").count();
        if delivered + drops == 8 || Instant::now() > deadline {
            break (delivered, drops);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        (2..=3).contains(&delivered) && delivered + drops == 8,
        "delivered {delivered}, dropped {drops}"
    );
    assert_eq!(received(&backend, delivered).await.len(), delivered);
}

#[tokio::test]
async fn every_event_pair_fires_with_its_fields() {
    let (server, api) = start_with(fast()).await;
    let backend = ok_backend().await;
    let all = [
        "onConversationAdd",
        "onConversationAdded",
        "onConversationUpdate",
        "onConversationUpdated",
        "onConversationStateUpdated",
        "onConversationRemove",
        "onConversationRemoved",
        "onParticipantAdd",
        "onParticipantAdded",
        "onParticipantUpdate",
        "onParticipantUpdated",
        "onParticipantRemove",
        "onParticipantRemoved",
        "onMessageAdd",
        "onMessageAdded",
        "onMessageUpdate",
        "onMessageUpdated",
        "onMessageRemove",
        "onMessageRemoved",
        "onUserAdded",
        "onUserUpdate",
        "onUserUpdated",
    ];
    configure(&api, &backend, "POST", &all).await;
    let s = &server;
    let created = sdk(
        s,
        "alice",
        "POST",
        "/Conversations",
        json!({ "friendly_name": "Flow", "unique_name": "flow" }),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let ch = created.body["sid"].as_str().unwrap().to_owned();
    let c = format!("/Conversations/{ch}");
    assert_eq!(
        sdk(s, "alice", "POST", &format!("{c}/Participants"), json!({ "identity": "alice" }))
            .await
            .status,
        201
    );
    assert_eq!(
        sdk(s, "alice", "POST", &format!("{c}/Participants"), json!({ "identity": "dave" }))
            .await
            .status,
        201
    );
    let msg = sdk(s, "alice", "POST", &format!("{c}/Messages"), json!({ "body": "hello" })).await;
    let index = msg.body["index"].as_u64().unwrap();
    assert_eq!(
        sdk(s, "alice", "POST", &format!("{c}/Messages/{index}"), json!({ "body": "edited" }))
            .await
            .status,
        200
    );
    assert_eq!(
        sdk(s, "alice", "DELETE", &format!("{c}/Messages/{index}"), json!({})).await.status,
        200
    );
    assert_eq!(
        sdk(
            s,
            "alice",
            "POST",
            &format!("{c}/Participants/dave"),
            json!({ "attributes": "{\"x\":1}" })
        )
        .await
        .status,
        200
    );
    assert_eq!(
        sdk(s, "alice", "DELETE", &format!("{c}/Participants/dave"), json!({})).await.status,
        200
    );
    assert_eq!(
        sdk(s, "alice", "POST", c.as_str(), json!({ "friendly_name": "Flow 2" }))
            .await
            .status,
        200
    );
    assert_eq!(
        sdk(s, "alice", "POST", "/Users/alice", json!({ "friendly_name": "Alice A." }))
            .await
            .status,
        200
    );
    // A state change comes from the REST API (with the header): onConversationStateUpdated.
    assert_eq!(hooked_post(&api, &format!("/v1{c}"), &[("State", "inactive")]).await.status(), 200);
    assert_eq!(hooked_post(&api, "/v1/Users", &[("Identity", "erin")]).await.status(), 201);
    assert_eq!(sdk(s, "alice", "DELETE", c.as_str(), json!({})).await.status, 200);

    let got = received(&backend, 27).await;
    let seen = events(&got);
    for e in all {
        assert!(seen.iter().any(|s| s == e), "{e} never fired: {seen:?}");
    }
    let one = |name: &str| got.iter().find(|r| field(r, "EventType").as_deref() == Some(name)).unwrap();
    let has = |name: &str, fields: &[&str]| {
        let r = one(name);
        for f in fields {
            assert!(field(r, f).is_some(), "{name} lacks {f}: {:?}", form(r));
        }
        for f in ["AccountSid", "EventType", "Source", "RetryCount"] {
            assert!(field(r, f).is_some(), "{name} lacks {f}");
        }
    };
    has(
        "onConversationAdd",
        &[
            "ChatServiceSid",
            "FriendlyName",
            "UniqueName",
            "Attributes",
            "State",
            "ClientIdentity",
        ],
    );
    has(
        "onConversationAdded",
        &[
            "ConversationSid",
            "ChatServiceSid",
            "FriendlyName",
            "State",
            "DateCreated",
            "DateUpdated",
        ],
    );
    has(
        "onConversationStateUpdated",
        &[
            "ConversationSid",
            "ChatServiceSid",
            "StateFrom",
            "StateTo",
            "StateUpdated",
            "Reason",
        ],
    );
    assert_eq!(field(one("onConversationStateUpdated"), "StateFrom").as_deref(), Some("active"));
    assert_eq!(field(one("onConversationStateUpdated"), "StateTo").as_deref(), Some("inactive"));
    has("onParticipantAdd", &["ConversationSid", "Identity", "RoleSid", "Attributes"]);
    has(
        "onParticipantAdded",
        &["ConversationSid", "ParticipantSid", "Identity", "RoleSid", "DateCreated"],
    );
    has("onParticipantRemoved", &["ParticipantSid", "Identity", "DateUpdated"]);
    has(
        "onMessageAdded",
        &[
            "MessageSid",
            "Index",
            "Author",
            "Body",
            "Attributes",
            "ParticipantSid",
            "DateCreated",
        ],
    );
    has("onMessageUpdated", &["MessageSid", "Index", "Body", "DateUpdated"]);
    assert_eq!(field(one("onMessageUpdate"), "Body").as_deref(), Some("edited"));
    has("onUserAdded", &["ChatServiceSid", "UserSid", "Identity", "RoleSid", "DateCreated"]);
    has("onUserUpdated", &["UserSid", "Identity", "FriendlyName"]);
    let added: Vec<(Option<String>, Option<String>)> = got
        .iter()
        .filter(|r| field(r, "EventType").as_deref() == Some("onUserAdded"))
        .map(|r| (field(r, "Identity"), field(r, "Source")))
        .collect();
    let who = |i: &str, s: &str| (Some(i.to_owned()), Some(s.to_owned()));
    assert_eq!(
        added,
        vec![who("dave", "SDK"), who("erin", "API")],
        "dave joined through alice's SDK"
    );
    assert_eq!(field(one("onUserUpdate"), "ClientIdentity").as_deref(), Some("alice"));
}

#[tokio::test]
async fn media_is_a_json_string_of_the_attached_files() {
    let (server, api) = start_with(fast()).await;
    let backend = ok_backend().await;
    configure(&api, &backend, "POST", &["onMessageAdded"]).await;
    let conv = general(&api).await;
    // The default seed's history has a media message; re-fire it through an edit.
    let list = expect(200, api.get(&format!("/v1/Conversations/{conv}/Messages?PageSize=100")).await);
    let with_media = support::items(&list)
        .iter()
        .find(|m| !m["media"].is_null())
        .expect("a seeded media message")
        .clone();
    let me = with_media["media"][0]["sid"].as_str().unwrap().to_owned();
    expect(
        200,
        api.post(
            "/v1/Configuration/Webhooks",
            &[
                ("Filters", "onMessageUpdated"),
                ("PostWebhookUrl", &format!("{}/post", backend.uri())),
            ],
        )
        .await,
    );
    let path = format!("/v1/Conversations/{conv}/Messages/{}", with_media["sid"].as_str().unwrap());
    assert_eq!(hooked_post(&api, &path, &[("Attributes", "{}")]).await.status(), 200);
    let got = received(&backend, 1).await;
    let media: Value = serde_json::from_str(&field(&got[0], "Media").expect("Media")).expect("Media is JSON");
    assert_eq!(media[0]["Sid"], me);
    assert!(media[0]["ContentType"].is_string() && media[0]["Size"].is_u64(), "{media}");
    drop(server);
}

// ---- targets: service over account, conversation-scoped, GET

#[tokio::test]
async fn a_service_configuration_replaces_the_accounts_and_scoped_webhooks_add_to_it() {
    let (server, api) = start_with(fast()).await;
    let account_backend = ok_backend().await;
    let service_backend = ok_backend().await;
    let scoped_backend = ok_backend().await;
    configure(&api, &account_backend, "POST", &["onMessageAdded"]).await;
    expect(
        200,
        api.post(
            &format!("/v1/Services/{SERVICE_SID}/Configuration/Webhooks"),
            &[
                ("PostWebhookUrl", &format!("{}/svc", service_backend.uri())),
                ("Filters", "onMessageAdded"),
            ],
        )
        .await,
    );
    let conv = general(&api).await;
    let scoped = expect(
        201,
        api.post(
            &format!("/v1/Conversations/{conv}/Webhooks"),
            &[
                ("Target", "trigger"),
                ("Configuration.Url", &format!("{}/kw", scoped_backend.uri())),
                ("Configuration.Triggers", "help"),
            ],
        )
        .await,
    );
    for body in ["hello", "help me"] {
        let reply = sdk(
            &server,
            "alice",
            "POST",
            &format!("/Conversations/{conv}/Messages"),
            json!({ "body": body }),
        )
        .await;
        assert_eq!(reply.status, 201);
    }
    assert_eq!(received(&service_backend, 2).await.len(), 2);
    let kw = received(&scoped_backend, 1).await;
    assert_eq!(kw.len(), 1, "only the message with the keyword");
    assert_eq!(field(&kw[0], "WebhookSid").as_deref(), scoped["sid"].as_str());
    assert_eq!(field(&kw[0], "WebhookType").as_deref(), Some("trigger"));
    assert_eq!(field(&kw[0], "Body").as_deref(), Some("help me"));
    assert!(account_backend.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn get_hooks_carry_the_fields_in_the_query_and_are_signed_over_the_url() {
    let (server, api) = start_with(fast()).await;
    let backend = ok_backend().await;
    configure(&api, &backend, "GET", &["onParticipantAdded"]).await;
    let conv = general(&api).await;
    let res = hooked_post(&api, &format!("/v1/Conversations/{conv}/Participants"), &[("Identity", "zoe")]).await;
    assert_eq!(res.status(), 201);
    let got = received(&backend, 1).await;
    assert_eq!(got[0].method.as_str(), "GET");
    assert!(got[0].body.is_empty());
    assert_eq!(field(&got[0], "Identity").as_deref(), Some("zoe"));
    let sig = got[0].headers.get("x-twilio-signature").expect("signed").to_str().unwrap();
    // wiremock shows the URL on `http://localhost`; the backend was called on its own address.
    let url = format!("{}{}?{}", backend.uri(), got[0].url.path(), got[0].url.query().expect("a query"));
    assert_eq!(sig, signature::sign(AUTH_TOKEN, &url, &[]));
    drop(server);
}

#[tokio::test]
async fn post_hooks_are_signed_over_the_url_and_sorted_fields() {
    let (server, api) = start_with(fast()).await;
    let backend = ok_backend().await;
    configure(&api, &backend, "POST", &["onConversationAdded"]).await;
    let reply = sdk(
        &server,
        "alice",
        "POST",
        "/Conversations",
        json!({ "friendly_name": "Signed & sealed ✓" }),
    )
    .await;
    assert_eq!(reply.status, 201);
    let got = received(&backend, 1).await;
    let r = &got[0];
    let sig = r.headers.get("x-twilio-signature").expect("signed").to_str().unwrap();
    assert_eq!(sig, signature::sign(AUTH_TOKEN, &format!("{}/post", backend.uri()), &form(r)));
    assert_ne!(sig, signature::sign("another-token", &format!("{}/post", backend.uri()), &form(r)));
    let ct = r.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(ct.starts_with("application/x-www-form-urlencoded"), "{ct}");
    assert_eq!(r.headers.get("user-agent").unwrap(), "TwilioProxy/1.1");
}

#[tokio::test]
async fn deliveries_are_journaled_with_request_response_timing_and_outcome() {
    let (server, api) = start_with(fast()).await;
    let backend = Backend::start().await;
    Mock::given(path("/post"))
        .respond_with(ResponseTemplate::new(200).set_body_string("thanks"))
        .mount(&backend)
        .await;
    configure(&api, &backend, "POST", &["onMessageAdded"]).await;
    let conv = general(&api).await;
    let reply = sdk(
        &server,
        "carol",
        "POST",
        &format!("/Conversations/{conv}/Messages"),
        json!({ "body": "logged" }),
    )
    .await;
    assert_eq!(reply.status, 201);
    let e = journaled(&server, "delivered").await;
    assert_eq!(e.account.as_deref(), Some(ACCOUNT_SID));
    assert_eq!(e.identity.as_deref(), Some("carol"));
    assert_eq!(e.detail["event"], "onMessageAdded");
    assert_eq!(e.detail["method"], "POST");
    assert_eq!(e.detail["request"]["params"]["Body"], "logged");
    assert!(e.detail["request"]["signature"].is_string());
    assert_eq!(e.detail["response"], json!({ "status": 200, "body": "thanks" }));
    assert!(e.detail["duration_ms"].is_u64());
    assert_eq!(e.detail["conversation"], conv.as_str());
    assert!(e.summary.starts_with("post onMessageAdded POST "), "{}", e.summary);
    // The control plane's HTTP API filters on the new kind.
    let http = reqwest::Client::new()
        .get(format!("{}/journal?kind=webhook", server.control_url()))
        .bearer_auth(server.control_token())
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 200);
    let page: Value = http.json().await.unwrap();
    assert!(page["entries"].as_array().unwrap().iter().all(|e| e["kind"] == "webhook"));
    assert!(!page["entries"].as_array().unwrap().is_empty());
}
