//! Hostile input against the real binary: what one tenant (or a web page, or anyone on the
//! machine) tries in order to reach another tenant, and REST input Twilio refuses. After each
//! attempt the server must still serve a bystander tenant normally.
mod support;

use support::{CONTROL_TOKEN, Served};

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use rehearsal_test_support::{Token, jwt_payload};
use serde_json::{Value, json};

const ACCOUNT: &str = "AC72656865617273616c00000000000001";
const AUTH_TOKEN: &str = "rehearsal-auth-token";
const API_KEY: &str = "SK72656865617273616c00000000000001";
const API_SECRET: &str = "rehearsal-api-secret";
const SERVICE: &str = "IS72656865617273616c00000000000001";

impl Served {
    /// The bystander check: `tenant` still gets REST answers and tokens, and the default
    /// account still gets its development tokens without credentials.
    async fn still_serves(&self, tenant: &Value) {
        let sid = tenant["account_sid"].as_str().unwrap();
        let res = http()
            .get(format!("{}/v1/Conversations", self.url))
            .basic_auth(sid, tenant["auth_token"].as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "REST for the bystander");
        let res = http()
            .get(format!(
                "{}/token?account={sid}&key={}&identity=bystander",
                self.url,
                tenant["token_key"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "a token for the bystander");
        let res = http().get(format!("{}/token?identity=alice", self.url)).send().await.unwrap();
        assert_eq!(res.status(), 200, "a token for the default account");
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Asserts Twilio's JSON error body with this status and code; returns the message.
async fn twilio_error(res: reqwest::Response, status: u16, code: u64) -> String {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "a JSON error body"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
    body["message"].as_str().unwrap().to_owned()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token of the default account, signed with its real key.
fn default_token(identity: &str, iat: i64, exp: i64) -> String {
    let ttl = u64::try_from(exp.saturating_sub(iat)).unwrap_or(0);
    let token = Token::of_key(ACCOUNT, API_KEY, API_SECRET, SERVICE, identity, iat).ttl(ttl).mint();
    let claims = jwt_payload(&token);
    assert_eq!((claims["iat"].as_i64(), claims["exp"].as_i64()), (Some(iat), Some(exp)));
    token
}

/// Connects over twilsock; `Err((status, errorCode))` when `init` is refused.
async fn connect(served: &Served, token: &str) -> Result<rehearsal_client::Client, (u64, u64)> {
    let config = rehearsal_client::Config::new(format!("ws://{}/v3/wsconnect", served.url.trim_start_matches("http://")));
    match rehearsal_client::Client::connect(&config, token).await {
        Ok((client, _notifications)) => Ok(client),
        Err(rehearsal_client::Error::InitRefused { status, header, .. }) => {
            Err((status, header["status"]["errorCode"].as_u64().unwrap_or(0)))
        }
        Err(e) => panic!("connect failed otherwise: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The development token endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_token_endpoint_serves_another_tenant_only_with_its_credentials() {
    let s = Served::start(&[]);
    let victim = s.tenant().await;
    let bystander = s.tenant().await;
    let sid = victim["account_sid"].as_str().unwrap();
    let url = |q: &str| format!("{}/token?identity=alice&{q}", s.url);

    // Naming the account is not enough, nor is a wrong or another tenant's key.
    let msg = twilio_error(http().get(url(&format!("account={sid}"))).send().await.unwrap(), 401, 20003).await;
    assert_eq!(msg, "Authenticate");
    let key = victim["token_key"].as_str().expect("tenants list their token key");
    let other_key = bystander["token_key"].as_str().unwrap();
    for q in [
        format!("account={sid}&key={}", "0".repeat(64)),
        format!("account={sid}&key="),
        format!("account={sid}&key={other_key}"),
        format!("account={sid}&key={}", &key[..63]),
    ] {
        let res = http().get(url(&q)).send().await.unwrap();
        assert!(
            res.headers().get("www-authenticate").is_none(),
            "no Basic challenge (browsers would prompt)"
        );
        twilio_error(res, 401, 20003).await;
    }
    // Another tenant's Basic credentials, or wrong ones, are not this tenant's.
    let res = http()
        .get(url(&format!("account={sid}")))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    twilio_error(res, 401, 20003).await;
    let res = http()
        .get(url(&format!("account={sid}")))
        .basic_auth(sid, Some("wrong"))
        .send()
        .await
        .unwrap();
    twilio_error(res, 401, 20003).await;
    // An account that does not exist looks the same as wrong credentials.
    let res = http().get(url("account=AC00000000000000000000000000000000")).send().await.unwrap();
    twilio_error(res, 401, 20003).await;

    // The tenant's own key, its auth token or its API key each work.
    let with_key: Value = http()
        .get(url(&format!("account={sid}&key={key}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwt_payload(with_key["token"].as_str().unwrap())["sub"], sid);
    let res = http()
        .get(url(&format!("account={sid}")))
        .basic_auth(sid, victim["auth_token"].as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http()
        .get(url(&format!("account={sid}")))
        .basic_auth(victim["api_key"].as_str().unwrap(), victim["api_secret"].as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The default account needs nothing, named or not.
    for q in [String::new(), format!("account={ACCOUNT}")] {
        let body: Value = http().get(url(&q)).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwt_payload(body["token"].as_str().unwrap())["sub"], ACCOUNT);
    }
    s.still_serves(&bystander).await;
}

#[tokio::test]
async fn the_token_endpoint_answers_bad_queries_with_twilio_json_errors() {
    let s = Served::start(&[]);
    let bystander = s.tenant().await;
    for q in [
        "ttl=abc&identity=alice",
        "ttl=-1&identity=alice",
        "ttl=86401&identity=alice",
        "",
        "identity=",
        "identity=a&ttl=1.5",
    ] {
        let res = http().get(format!("{}/token?{q}", s.url)).send().await.unwrap();
        twilio_error(res, 400, 20001).await;
    }
    s.still_serves(&bystander).await;
}

// ---------------------------------------------------------------------------------------------
// Internal sentinels are no identity
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_token_may_claim_the_system_sentinel() {
    let s = Served::start(&[]);
    let bystander = s.tenant().await;
    let msg = twilio_error(
        http().get(format!("{}/token?identity=system", s.url)).send().await.unwrap(),
        400,
        20001,
    )
    .await;
    assert!(msg.contains("reserved"), "{msg}");

    // A token signed with the account's real key, as the user's own backend could mint it: the
    // seed's conversations are "created by" system, so it would read their history.
    let now = now_unix();
    assert_eq!(
        connect(&s, &default_token("system", now, now + 600)).await.err(),
        Some((401, 20106))
    );
    let res = http()
        .get(format!("{}/v1/Services/{SERVICE}/Media/ME00000000000000000000000000000000", s.url))
        .header("X-Twilio-Token", default_token("system", now, now + 600))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Another identity with the same key connects.
    connect(&s, &default_token("alice", now, now + 600))
        .await
        .expect("alice connects")
        .close()
        .await;
    s.still_serves(&bystander).await;
}

// ---------------------------------------------------------------------------------------------
// Token lifetimes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_cannot_stretch_their_lifetime_with_a_future_iat() {
    let s = Served::start(&[]);
    let bystander = s.tenant().await;
    let now = now_unix();
    let month = 30 * 86_400;
    for (what, iat, exp, code) in [
        ("iat 30 days ahead, exp an hour later", now + month, now + month + 3600, 20105),
        ("exp i64::MAX, iat 100 s before it", i64::MAX - 100, i64::MAX, 20105),
    ] {
        let token = default_token("alice", iat, exp);
        assert_eq!(connect(&s, &token).await.err(), Some((401, code)), "{what}: twilsock");
        let res = http()
            .post(format!("{}/v1/Services/{SERVICE}/Media", s.url))
            .header("X-Twilio-Token", token)
            .header("Content-Type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{what}: media");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], code, "{what}: {body}");
    }
    // A backend whose clock runs a few seconds ahead is still served.
    connect(&s, &default_token("alice", now + 5, now + 3605))
        .await
        .expect("small skew")
        .close()
        .await;
    s.still_serves(&bystander).await;
}

// ---------------------------------------------------------------------------------------------
// Faults and journal belong to callers with credentials
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn naming_an_account_without_its_secret_touches_neither_its_faults_nor_its_journal() {
    let s = Served::start(&[]);
    let victim = s.tenant().await;
    let bystander = s.tenant().await;
    let sid = victim["account_sid"].as_str().unwrap();
    let res = http()
        .post(s.control(&format!("/tenants/{sid}/faults/http")))
        .bearer_auth(CONTROL_TOKEN)
        .json(&json!({"method": "GET", "path": "/v1/Conversations", "count": 1,
                      "fault": {"kind": "fail", "status": 503, "code": 20503}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let list = || http().get(format!("{}/v1/Conversations?PageSize=7", s.url));
    // Wrong secret, API key of the account with a wrong secret, a forged token naming it.
    twilio_error(list().basic_auth(sid, Some("wrong")).send().await.unwrap(), 401, 20003).await;
    twilio_error(
        list()
            .basic_auth(victim["api_key"].as_str().unwrap(), Some("wrong"))
            .send()
            .await
            .unwrap(),
        401,
        20003,
    )
    .await;
    let journal: Value = http()
        .get(s.control(&format!("/tenants/{sid}/journal")))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = journal.to_string();
    assert!(!text.contains("PageSize=7"), "the tenant's journal has none of it: {journal:#}");
    assert!(!text.contains("\"fault\""), "no fault applied: {journal:#}");

    // The fault is still armed for the tenant itself.
    let res = list().basic_auth(sid, victim["auth_token"].as_str()).send().await.unwrap();
    twilio_error(res, 503, 20503).await;
    assert_eq!(
        list().basic_auth(sid, victim["auth_token"].as_str()).send().await.unwrap().status(),
        200
    );
    s.still_serves(&bystander).await;
}

// ---------------------------------------------------------------------------------------------
// The control plane open to loopback
// ---------------------------------------------------------------------------------------------

/// A conversation the tenant made after creation: a reset (back to the seed) would remove it.
async fn mark(s: &Served, tenant: &Value) {
    let res = http()
        .post(format!("{}/v1/Conversations", s.url))
        .basic_auth(tenant["account_sid"].as_str().unwrap(), tenant["auth_token"].as_str())
        .form(&[("UniqueName", "survives")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn still_marked(s: &Served, tenant: &Value) -> bool {
    http()
        .get(format!("{}/v1/Conversations/survives", s.url))
        .basic_auth(tenant["account_sid"].as_str().unwrap(), tenant["auth_token"].as_str())
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn an_open_loopback_control_plane_refuses_foreign_origins_and_hosts() {
    let s = Served::start(&["--control-open-loopback"]);
    let victim = s.tenant().await;
    let bystander = s.tenant().await;
    mark(&s, &victim).await;
    let reset = s.control(&format!("/tenants/{}/reset", victim["account_sid"].as_str().unwrap()));
    let port = s.port();

    // A page on another origin posting a CORS "simple" request; a DNS-rebound name.
    let cross_origin = http()
        .post(&reset)
        .header("Origin", "http://attacker.example")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_origin.status(), 401);
    let null_origin = http().post(&reset).header("Origin", "null").send().await.unwrap();
    assert_eq!(null_origin.status(), 401);
    let rebound = http()
        .post(&reset)
        .header("Host", format!("attacker.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 401);
    let other_port = http()
        .post(&reset)
        .header("Host", format!("127.0.0.1:{}", port.wrapping_add(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(other_port.status(), 401);
    assert!(still_marked(&s, &victim).await, "the tenant was not reset");

    // Loopback callers of this origin, and holders of the token, still get in.
    let list = http().get(s.control("/tenants")).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let same_origin = http()
        .get(s.control("/tenants"))
        .header("Origin", format!("http://localhost:{port}"))
        .header("Host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
    let with_token = http()
        .get(s.control("/tenants"))
        .header("Host", format!("attacker.example:{port}"))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
    s.still_serves(&bystander).await;
}

/// A backend that answers every request with a `307` to `location` (which keeps the method and
/// body), on its own thread; returns its base URL.
fn redirector(location: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    url
}

#[tokio::test]
async fn webhooks_never_reach_the_control_plane() {
    let s = Served::start(&["--control-open-loopback"]);
    let attacker = s.tenant().await;
    let victim = s.tenant().await;
    let bystander = s.tenant().await;
    mark(&s, &victim).await;
    let victim_sid = victim["account_sid"].as_str().unwrap();
    let reset = s.control(&format!("/tenants/{victim_sid}/reset"));
    let port = s.port();
    let attacker_sid = attacker["account_sid"].as_str().unwrap();
    let as_attacker = |path: &str| {
        http()
            .post(format!("{}{path}", s.url))
            .basic_auth(attacker_sid, attacker["auth_token"].as_str())
    };

    // Configured directly, however the path is spelled: refused.
    for url in [
        reset.clone(),
        format!("http://localhost:{port}/_rehearsal/v1/tenants/{victim_sid}/reset"),
        format!("http://127.0.0.1:{port}/%5Frehearsal/v1/tenants/{victim_sid}/reset"),
        format!("http://127.0.0.1:{port}/x/../_REHEARSAL/v1/tenants/{victim_sid}/reset"),
        format!("http://127.0.0.1:{port}//_rehearsal/v1/tenants/{victim_sid}/reset"),
    ] {
        let res = as_attacker("/v1/Configuration/Webhooks")
            .form(&[("PreWebhookUrl", url.as_str()), ("Filters", "onConversationAdd")])
            .send()
            .await
            .unwrap();
        let msg = twilio_error(res, 400, 20001).await;
        assert!(msg.contains("PreWebhookUrl"), "{msg}");
        let res = as_attacker(&format!(
            "/v1/Services/{}/Configuration/Webhooks",
            attacker["service_sid"].as_str().unwrap()
        ))
        .form(&[("PostWebhookUrl", url.as_str()), ("Filters", "onConversationAdded")])
        .send()
        .await
        .unwrap();
        twilio_error(res, 400, 20001).await;
    }
    let res = as_attacker("/v1/Conversations")
        .form(&[("UniqueName", "lure")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = as_attacker("/v1/Conversations/lure/Webhooks")
        .form(&[
            ("Target", "webhook"),
            ("Configuration.Url", reset.as_str()),
            ("Configuration.Filters", "onMessageAdded"),
        ])
        .send()
        .await
        .unwrap();
    twilio_error(res, 400, 20001).await;

    // Bounced there by the attacker's own backend: the redirect is not followed.
    let backend = redirector(reset.clone());
    let res = as_attacker("/v1/Configuration/Webhooks")
        .form(&[
            ("PreWebhookUrl", format!("{backend}/pre").as_str()),
            ("Method", "POST"),
            ("Filters", "onConversationAdd"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = as_attacker("/v1/Conversations")
        .header("X-Twilio-Webhook-Enabled", "true")
        .form(&[("FriendlyName", "trigger")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_client_error(), "{}", res.status());
    let journal: Value = http()
        .get(s.control(&format!("/tenants/{attacker_sid}/journal?kind=webhook")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(still_marked(&s, &victim).await, "the victim was not reset: {journal:#}");
    assert!(
        journal.to_string().contains("control plane"),
        "the refusal is journaled: {journal:#}"
    );
    s.still_serves(&bystander).await;
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenant_secrets_do_not_follow_from_the_seed_of_its_sids() {
    let s = Served::start(&[]);
    let created = Instant::now();
    let tenant = s.tenant().await;
    let sid = tenant["account_sid"].as_str().unwrap();
    // The snapshot shows the seed the tenant's SIDs come from; the secrets must not come from it.
    let state: Value = http()
        .get(s.control(&format!("/tenants/{sid}/state")))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seed = find_sid_seed(&state).expect("the snapshot keeps the SID generator's seed");
    let mut derived = rehearsal_mock_server::sid::SidGen::new(seed, "accounts");
    assert_eq!(derived.next("AC"), sid, "the account SID does come from the seed");
    let key_sid = derived.next("SK");
    let key_secret = derived.next("xx")[2..].to_owned();
    let auth_token = derived.next("xx")[2..].to_owned();
    assert_ne!(tenant["api_key"].as_str(), Some(key_sid.as_str()));
    assert_ne!(tenant["api_secret"].as_str(), Some(key_secret.as_str()));
    assert_ne!(tenant["auth_token"].as_str(), Some(auth_token.as_str()));
    for field in ["auth_token", "api_secret"] {
        let v = tenant[field].as_str().unwrap();
        assert!(v.len() >= 32 && v.bytes().all(|b| b.is_ascii_hexdigit()), "{field}: {v}");
    }

    // Asked for, a seed still makes a tenant reproducible, secrets included.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let t: Value = http()
            .post(s.control("/tenants"))
            .bearer_auth(CONTROL_TOKEN)
            .json(&json!({"rng_seed": 4242}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = t["account_sid"].as_str().unwrap().to_owned();
        seen.push(t);
        let res = http()
            .delete(s.control(&format!("/tenants/{sid}")))
            .bearer_auth(CONTROL_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(created.elapsed() < Duration::from_secs(60));
    s.still_serves(&tenant).await;
}

/// The `seed` of the account's SID generator in a tenant snapshot.
fn find_sid_seed(v: &Value) -> Option<u64> {
    match v {
        Value::Object(o) => {
            if let (Some(seed), Some(_), Some(_)) = (o.get("seed").and_then(Value::as_u64), o.get("salt"), o.get("count")) {
                return Some(seed);
            }
            o.values().find_map(find_sid_seed)
        }
        Value::Array(a) => a.iter().find_map(find_sid_seed),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// REST input Twilio refuses
// ---------------------------------------------------------------------------------------------

fn rest(s: &Served, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    http()
        .request(method, format!("{}{path}", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
}

#[tokio::test]
async fn content_and_messaging_service_sids_must_match_twilios_patterns() {
    let s = Served::start(&[]);
    let bystander = s.tenant().await;
    let post = reqwest::Method::POST;
    for bad in [
        "bogus",
        "",
        "null",
        "HX123",
        &format!("MG{}", "0".repeat(32)),
        &format!("HX{}", "g".repeat(32)),
    ] {
        let res = rest(&s, post.clone(), "/v1/Conversations/general/Messages")
            .form(&[("Body", "hi"), ("ContentSid", bad)])
            .send()
            .await
            .unwrap();
        let msg = twilio_error(res, 400, 20001).await;
        assert!(msg.contains("ContentSid"), "{msg}");
    }
    let hx = format!("HX{}", "0123456789abcdefABCDEF0123456789".to_owned());
    let res = rest(&s, post.clone(), "/v1/Conversations/general/Messages")
        .form(&[("Body", "hi"), ("ContentSid", hx.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["content_sid"], hx.as_str());
    let list: Value = rest(&s, reqwest::Method::GET, "/v1/Conversations/general/Messages")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for m in list["messages"].as_array().unwrap() {
        assert!(m["content_sid"].is_null() || m["content_sid"] == hx.as_str(), "{m}");
    }

    for bad in ["", "bogus", "null", &format!("IS{}", "0".repeat(32))] {
        let res = rest(&s, post.clone(), "/v1/Conversations")
            .form(&[("FriendlyName", "x"), ("MessagingServiceSid", bad)])
            .send()
            .await
            .unwrap();
        twilio_error(res, 400, 20001).await;
        let res = rest(&s, post.clone(), "/v1/Conversations/general")
            .form(&[("MessagingServiceSid", bad)])
            .send()
            .await
            .unwrap();
        twilio_error(res, 400, 20001).await;
        let res = rest(&s, post.clone(), "/v1/Configuration")
            .form(&[("DefaultMessagingServiceSid", bad)])
            .send()
            .await
            .unwrap();
        twilio_error(res, 400, 20001).await;
    }
    let mg = format!("MG{}", "a".repeat(32));
    let res = rest(&s, post.clone(), "/v1/Conversations")
        .form(&[("FriendlyName", "x"), ("MessagingServiceSid", mg.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["messaging_service_sid"], mg.as_str());
    let res = rest(&s, post, "/v1/Conversations/general")
        .form(&[("MessagingServiceSid", mg.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    s.still_serves(&bystander).await;
}

#[tokio::test]
async fn conversation_webhook_pages_hold_at_most_five() {
    let s = Served::start(&[]);
    let bystander = s.tenant().await;
    for size in ["6", "0", "1000"] {
        let res = rest(
            &s,
            reqwest::Method::GET,
            &format!("/v1/Conversations/general/Webhooks?PageSize={size}"),
        )
        .send()
        .await
        .unwrap();
        twilio_error(res, 400, 20001).await;
    }
    let page: Value = rest(&s, reqwest::Method::GET, "/v1/Conversations/general/Webhooks?PageSize=5")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["meta"]["page_size"], 5);
    let page: Value = rest(&s, reqwest::Method::GET, "/v1/Conversations/general/Webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["meta"]["page_size"], 5, "the default page is capped too");
    s.still_serves(&bystander).await;
}

#[tokio::test]
async fn message_indexes_are_parsed_strictly() {
    let s = Served::start(&[]);
    let bystander = s.tenant().await;
    let zeros = "0".repeat(34);
    for index in ["+1", "01", zeros.as_str(), "%2B1", "1%20", "-0"] {
        let path = format!("/v1/Conversations/general/Messages/{index}");
        twilio_error(rest(&s, reqwest::Method::GET, &path).send().await.unwrap(), 404, 20404).await;
        let res = rest(&s, reqwest::Method::POST, &path)
            .form(&[("Body", "edited")])
            .send()
            .await
            .unwrap();
        twilio_error(res, 404, 20404).await;
        twilio_error(rest(&s, reqwest::Method::DELETE, &path).send().await.unwrap(), 404, 20404).await;
    }
    for index in ["0", "1"] {
        let m: Value = rest(&s, reqwest::Method::GET, &format!("/v1/Conversations/general/Messages/{index}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["index"], index.parse::<u64>().unwrap(), "{m}");
    }
    s.still_serves(&bystander).await;
}
