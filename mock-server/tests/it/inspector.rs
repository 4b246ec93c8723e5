//! The web pages (`/`, the inspector under `/_rehearsal/inspector/`) and the control-API reads
//! they use: the pages are served from the binary with headers that forbid framing and foreign
//! content; the data behind them needs the control token (or the loopback convenience, and then
//! only from the server's own origin); near-misses are unrouted requests only; the REST view
//! reads as the tenant without journaling. (The pages in a real browser: e2e/browser/.)
use reqwest::Method;
use serde_json::Value;

use crate::support::{self, ACCOUNT_SID, AUTH_TOKEN, expect, expect_error};
use rehearsal_mock_server::{MockServer, ServerConfig, Startup};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(support::REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds")
}

async fn page(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let res = http().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.expect("a body"))
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn the_landing_page_and_the_inspector_assets_are_served_from_the_binary() {
    let (server, _api) = support::start().await;
    let base = server.url();

    let (status, h, html) = page(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(header(&h, "content-type").starts_with("text/html"), "{h:?}");
    assert!(html.contains(&format!("{base}/v1/Conversations")), "the REST URL: {html}");
    assert!(html.contains("/v3/wsconnect"), "the twilsock URL");
    assert!(
        html.contains(ACCOUNT_SID) && html.contains(AUTH_TOKEN),
        "the default seed's public credentials"
    );
    assert!(html.contains("href=\"/_rehearsal/inspector/\""), "a link to the inspector");

    for (path, content_type, marker) in [
        ("/_rehearsal/inspector/", "text/html", "<script src=\"app.js\""),
        ("/_rehearsal/inspector/app.js", "text/javascript", "Authorization: `Bearer"),
        ("/_rehearsal/inspector/style.css", "text/css", "--accent"),
    ] {
        let (status, h, body) = page(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert!(header(&h, "content-type").starts_with(content_type), "{path}: {h:?}");
        assert!(body.contains(marker), "{path} is the embedded asset");
        let csp = header(&h, "content-security-policy");
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(header(&h, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&h, "referrer-policy"), "no-referrer", "{path}");
        assert!(h.get("access-control-allow-origin").is_none(), "{path}: no CORS");
    }
    for path in ["/", "/_rehearsal/inspector/", "/_rehearsal/inspector/app.js"] {
        let res = http().post(format!("{base}{path}")).send().await.expect("an answer");
        let status = res.status().as_u16();
        let body: Value = res.json().await.expect("Twilio's JSON error body");
        support::assert_error_body(&format!("POST {path}"), status, &body);
        assert_eq!((status, body["code"].as_u64()), (405, Some(20004)), "POST {path}");
    }
    let (status, h, _) = page(&format!("{base}/_rehearsal/inspector")).await;
    assert_eq!((status.as_u16(), header(&h, "location")), (308, "/_rehearsal/inspector/"));
}

#[tokio::test]
async fn a_custom_seeds_credentials_stay_off_the_landing_page() {
    let seed = rehearsal_mock_server::domain::seed::Seed::parse(
        r#"{"format": 1, "accounts": [{"sid": "ACeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "auth_token": "a-secret-token"}]}"#,
    )
    .expect("a seed");
    let server = MockServer::start_with(Startup {
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .expect("the seed starts");
    let (status, _, html) = page(&format!("{}/", server.url())).await;
    assert_eq!(status, 200);
    assert!(!html.contains("a-secret-token"), "{html}");
}

/// The control-API reads the inspector makes.
const INSPECTOR_READS: &[&str] = &[
    "/tenants",
    "/near_misses",
    "/scenario",
    "/tenants/AC72656865617273616c00000000000001/near_misses",
    "/tenants/AC72656865617273616c00000000000001/media",
    "/tenants/AC72656865617273616c00000000000001/rest/v1/Conversations",
    "/tenants/AC72656865617273616c00000000000001/connections",
    "/tenants/AC72656865617273616c00000000000001/journal/stream?limit=1",
];

#[tokio::test]
async fn the_inspectors_reads_need_the_control_token() {
    let (server, api) = support::start().await;
    // Something to stream, so that an authorised stream with limit=1 ends.
    expect(200, api.get("/v1/Conversations").await);
    for path in INSPECTOR_READS {
        let url = format!("{}{path}", server.control_url());
        let res = http().get(&url).send().await.expect("an answer");
        assert_eq!(res.status(), 401, "{path} without the token");
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(body["code"], "unauthorized", "{path}");
        let res = http().get(&url).bearer_auth("not-the-token").send().await.expect("an answer");
        assert_eq!(res.status(), 401, "{path} with a wrong token");
        let res = http()
            .get(&url)
            .bearer_auth(server.control_token())
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), 200, "{path} with the token");
    }
}

#[tokio::test]
async fn the_loopback_convenience_never_serves_another_origin() {
    let server = MockServer::start_with(Startup {
        config: ServerConfig {
            control_open_loopback: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("starts");
    let url = format!("{}/tenants", server.control_url());
    let own = server.url();
    let res = http().get(&url).header("Origin", &own).send().await.expect("an answer");
    assert_eq!(res.status(), 200, "the inspector's own origin on loopback");
    for origin in ["http://attacker.example", "null", "http://127.0.0.1:1"] {
        let res = http().get(&url).header("Origin", origin).send().await.expect("an answer");
        assert_eq!(res.status(), 401, "a page of {origin}");
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{origin}: no CORS");
        let res = http()
            .request(Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
            .await
            .expect("an answer");
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "a preflight from {origin} is not granted"
        );
    }
}

async fn control_get(server: &MockServer, path: &str) -> Value {
    let res = http()
        .get(format!("{}{path}", server.control_url()))
        .bearer_auth(server.control_token())
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.expect("JSON")
}

#[tokio::test]
async fn near_misses_are_requests_for_routes_rehearsal_lacks() {
    let (server, api) = support::start().await;
    expect_error(404, 20404, api.get("/v1/Credentials").await);
    expect_error(404, 20404, api.get("/v1/Credentials").await);
    expect_error(
        404,
        20404,
        api.get("/v1/Conversations/CH0123456789abcdef0123456789abcdef/Nothing").await,
    );
    expect_error(
        404,
        20404,
        api.get("/v1/Conversations/CHfedcba9876543210fedcba9876543210/Nothing").await,
    );
    let reply = api
        .send_unchecked(Method::PUT, "/v1/Conversations", Some(&[("FriendlyName", "x")]))
        .await;
    assert_eq!(reply.status, 405);
    // Not near-misses: a resource that does not exist, and a request without credentials is
    // counted under no tenant.
    expect_error(404, 20404, api.get("/v1/Conversations/CH00000000000000000000000000000000").await);
    let anonymous = http().get(format!("{}/v1/Nope", server.url())).send().await.expect("an answer");
    assert_eq!(anonymous.status(), 404);

    let v = control_get(&server, &format!("/tenants/{ACCOUNT_SID}/near_misses")).await;
    let groups: Vec<(String, String, u64, String)> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["method"].as_str().unwrap().to_owned(),
                g["path"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
                g["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("GET".into(), "/v1/Conversations/{SID}/Nothing".into(), 2, "no_route".into()),
            ("GET".into(), "/v1/Credentials".into(), 2, "no_route".into()),
            ("PUT".into(), "/v1/Conversations".into(), 1, "method_not_allowed".into()),
        ],
        "{v:#}"
    );
    let all = control_get(&server, "/near_misses").await;
    assert_eq!(
        all["groups"].as_array().unwrap().len(),
        4,
        "the anonymous one is listed server-wide: {all:#}"
    );

    // The journal marks the same requests.
    let j = control_get(&server, &format!("/tenants/{ACCOUNT_SID}/journal?kind=rest")).await;
    let marked = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["detail"]["near_miss"].is_null())
        .count();
    assert_eq!(marked, 5, "{j:#}");
}

#[tokio::test]
async fn the_rest_view_reads_as_the_tenant_without_journaling() {
    let (server, _api) = support::start().await;
    let page = control_get(&server, &format!("/tenants/{ACCOUNT_SID}/rest/v1/Conversations?PageSize=1")).await;
    assert_eq!(page["conversations"].as_array().map(Vec::len), Some(1), "{page:#}");
    assert_eq!(page["meta"]["page_size"], 1);
    let j = control_get(&server, &format!("/tenants/{ACCOUNT_SID}/journal?kind=rest")).await;
    assert_eq!(
        j["entries"],
        Value::Array(vec![]),
        "the inspector's reads are not the app's requests"
    );

    let res = http()
        .get(format!("{}/tenants/{ACCOUNT_SID}/rest/token", server.control_url()))
        .bearer_auth(server.control_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "only /v1/ paths");
    let res = http()
        .post(format!("{}/tenants/{ACCOUNT_SID}/rest/v1/Conversations", server.control_url()))
        .bearer_auth(server.control_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405, "only GET");
    let res = http()
        .get(format!(
            "{}/tenants/ACffffffffffffffffffffffffffffffff/rest/v1/Conversations",
            server.control_url()
        ))
        .bearer_auth(server.control_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "an unknown tenant");

    let media = control_get(&server, &format!("/tenants/{ACCOUNT_SID}/media")).await;
    assert!(media["total"].as_u64().unwrap() >= 1, "the default seed has media: {media:#}");
    assert!(media["media"][0].get("bytes").is_none(), "records without their bytes");
    assert_eq!(control_get(&server, "/scenario").await, serde_json::json!({ "scenario": null }));
}

/// `(status, headers, bytes)` of a control-plane GET with the token.
async fn control_bytes(server: &MockServer, path: &str, token: bool) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = http().get(format!("{}{path}", server.control_url()));
    if token {
        req = req.bearer_auth(server.control_token());
    }
    let res = req.send().await.expect("an answer");
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.expect("a body").to_vec())
}

#[tokio::test]
async fn media_bytes_are_read_through_the_control_api_only_and_never_run() {
    let (server, _api) = support::start().await;
    let list = control_get(&server, &format!("/tenants/{ACCOUNT_SID}/media?limit=50")).await;
    let png = list["media"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["content_type"] == "image/png"))
        .unwrap_or_else(|| panic!("the seed has a PNG: {list}"));
    let sid = png["sid"].as_str().expect("a SID");
    let path = format!("/tenants/{ACCOUNT_SID}/media/{sid}/content");

    let (status, headers, bytes) = control_bytes(&server, &path, true).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(header(&headers, "content-security-policy").contains("sandbox"));
    assert!(bytes.starts_with(b"\x89PNG"), "the PNG's bytes");
    assert_eq!(bytes.len() as u64, png["size"].as_u64().expect("a size"));

    let (status, _, _) = control_bytes(&server, &path, false).await;
    assert_eq!(status, 401, "not without the token");
    let (status, _, _) = control_bytes(
        &server,
        &format!("/tenants/{ACCOUNT_SID}/media/ME00000000000000000000000000000000/content"),
        true,
    )
    .await;
    assert_eq!(status, 404);

    // Another tenant's path does not reach this tenant's media.
    let other = support::add_account(&server, 7);
    let (status, _, _) = control_bytes(&server, &format!("/tenants/{}/media/{sid}/content", other.account_sid), true).await;
    assert_eq!(status, 404);

    // A type the page does not preview comes as a download, whatever it claims to be.
    let token = rehearsal_test_support::token_for(&server, "alice");
    let res = http()
        .post(format!("{}/v1/Services/{}/Media", server.url(), support::SERVICE_SID))
        .header("X-Twilio-Token", token)
        .header("Content-Type", "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .expect("an upload answer");
    assert_eq!(res.status(), 201);
    let uploaded: Value = res.json().await.expect("the record");
    let uploaded = uploaded["sid"].as_str().expect("a SID").to_owned();
    let (status, headers, _) = control_bytes(&server, &format!("/tenants/{ACCOUNT_SID}/media/{uploaded}/content"), true).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert_eq!(header(&headers, "content-disposition"), "attachment");
}
