//! Media (MCS) over plain HTTP: uploads (raw and browser multipart), records, media sets,
//! signed temporary URLs on the server clock, credentials, access to conversation media, size
//! limit and CORS.

use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rehearsal_mock_server::media::{DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_URL_TTL_SECS, MediaConfig};
use rehearsal_mock_server::{MockServer, ServerConfig, Startup};
use rehearsal_test_support::Token;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::support::{ACCOUNT_SID, API_KEY, API_SECRET, AUTH_TOKEN, SERVICE_SID};

/// The PNG the default seed attaches to message 2 of `general` (by carol).
const SEED_PNG: &[u8] = include_bytes!("../../../fixtures/media/rehearsal.png");

/// The keys of a media record, in Twilio's order.
const RECORD_KEYS: [&str; 15] = [
    "sid",
    "service_sid",
    "channel_sid",
    "message_sid",
    "date_created",
    "date_upload_updated",
    "date_updated",
    "size",
    "content_type",
    "filename",
    "category",
    "author",
    "is_multipart_upstream",
    "url",
    "links",
];

struct Mcs {
    server: MockServer,
    http: reqwest::Client,
}

/// One answer: status, headers, raw body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON body; JSON answers must say `application/json`.
    fn json(&self) -> Value {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "status {}: content type {ct:?}", self.status);
        serde_json::from_slice(&self.bytes).expect("a JSON body")
    }

    /// Asserts Twilio's error body with this status and code.
    #[track_caller]
    fn assert_error(&self, status: u16, code: u64) -> Value {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.bytes));
        let body = self.json();
        let keys: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["code", "message", "more_info", "status"], "{body}");
        assert_eq!(body["status"], json!(status), "{body}");
        assert_eq!(body["code"], json!(code), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        body
    }
}

impl Mcs {
    async fn start() -> Mcs {
        Mcs::start_with(ServerConfig::default()).await
    }

    async fn start_with(config: ServerConfig) -> Mcs {
        let server = MockServer::start_with(Startup {
            config,
            ..Startup::default()
        })
        .await
        .expect("the default seed starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a plain HTTP client builds");
        Mcs { server, http }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v1/Services/{SERVICE_SID}{tail}", self.server.url())
    }

    /// A token for `identity` on the default service, minted like a user's backend would.
    fn token(&self, identity: &str) -> String {
        self.token_with(identity, Some(SERVICE_SID), 3600)
    }

    fn token_with(&self, identity: &str, service: Option<&str>, ttl_secs: u64) -> String {
        Token::on(&self.server, identity).service(service).ttl(ttl_secs).mint()
    }

    async fn send(&self, req: RequestBuilder) -> Answer {
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("a body").to_vec();
        Answer { status, headers, bytes }
    }

    fn upload_req(&self, token: &str, query: &str, content_type: Option<&str>, body: Vec<u8>) -> RequestBuilder {
        let mut req = self
            .http
            .post(self.url(&format!("/Media{query}")))
            .header("X-Twilio-Token", token)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req
    }

    /// Uploads as alice; asserts 201 and returns the record.
    async fn upload(&self, query: &str, content_type: &str, body: Vec<u8>) -> Value {
        let a = self
            .send(self.upload_req(&self.token("alice"), query, Some(content_type), body))
            .await;
        assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));
        a.json()
    }

    async fn get_with_token(&self, url: &str, token: &str) -> Answer {
        self.send(self.http.get(url).header("X-Twilio-Token", token)).await
    }

    async fn get_plain(&self, url: &str) -> Answer {
        self.send(self.http.get(url)).await
    }

    async fn media_set(&self, token: &str, body: Value) -> Answer {
        self.send(self.http.post(self.url("/MediaSet")).header("X-Twilio-Token", token).json(&body))
            .await
    }

    /// The SID of the seed's PNG, through the REST API.
    async fn seed_png_sid(&self) -> String {
        let url = format!("{}/v1/Conversations/general/Messages", self.server.url());
        let a = self.send(self.http.get(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))).await;
        assert_eq!(a.status, 200);
        let body = a.json();
        let m = &body["messages"][2];
        assert_eq!(m["author"], "carol", "{m}");
        m["media"][0]["sid"].as_str().expect("message 2 of general has media").to_owned()
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// Checks the shape of a record and returns its temporary URL.
#[track_caller]
fn check_record(
    server: &MockServer,
    r: &Value,
    size: usize,
    content_type: &str,
    filename: Option<&str>,
    category: &str,
    author: &str,
) -> String {
    let keys: Vec<&str> = r.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys, RECORD_KEYS, "{r}");
    let sid = str_of(r, "sid");
    assert!(
        sid.len() == 34 && sid.starts_with("ME") && sid[2..].bytes().all(|c| c.is_ascii_hexdigit()),
        "{sid}"
    );
    assert_eq!(r["service_sid"], SERVICE_SID);
    assert_eq!(r["size"], json!(size));
    assert_eq!(r["content_type"], content_type);
    assert_eq!(r["filename"], json!(filename));
    assert_eq!(r["category"], category);
    assert_eq!(r["author"], author);
    assert_eq!(r["is_multipart_upstream"], false);
    for k in ["date_created", "date_upload_updated", "date_updated"] {
        let d = str_of(r, k);
        assert!(d.len() == 24 && d.ends_with('Z') && d.as_bytes()[10] == b'T', "{k}: {d}");
    }
    let path = format!("/v1/Services/{SERVICE_SID}/Media/{sid}");
    assert_eq!(r["url"], json!(path));
    let links = r["links"].as_object().expect("links");
    assert_eq!(links.keys().collect::<Vec<_>>(), ["content", "content_direct_temporary"]);
    assert_eq!(r["links"]["content"], json!(format!("{path}/Content")));
    let temp = str_of(&r["links"], "content_direct_temporary").to_owned();
    let prefix = format!("{}{path}/Content?Expires=", server.url());
    assert!(temp.starts_with(&prefix), "{temp}");
    let (expires, signature) = temp[prefix.len()..].split_once("&Signature=").expect("Expires then Signature");
    let expires: i64 = expires.parse().expect("Expires is unix seconds");
    let now = server.domain().clock().now().unix_secs();
    let ttl = i64::try_from(DEFAULT_URL_TTL_SECS).unwrap();
    assert!(expires > now && expires <= now + ttl, "expires {expires}, now {now}");
    assert!(
        signature.len() == 64 && signature.bytes().all(|c| c.is_ascii_hexdigit()),
        "{signature}"
    );
    temp
}

/// Replaces the query parameter `name` of `url` with `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').expect("a query");
    let query: Vec<String> = query
        .split('&')
        .map(|kv| {
            if kv.starts_with(&format!("{name}=")) {
                format!("{name}={value}")
            } else {
                kv.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn param<'a>(url: &'a str, name: &str) -> &'a str {
    let query = url.split_once('?').expect("a query").1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .expect("the parameter")
}

#[tokio::test]
async fn uploads_round_trip_through_the_temporary_url() {
    let mcs = Mcs::start().await;
    let alice = mcs.token("alice");
    let cases: [(usize, &str, &str, Option<&str>, &str); 5] = [
        (1, "", "application/octet-stream", None, "media"),
        (
            1000,
            "?Category=media&Filename=notes.txt",
            "text/plain;charset=UTF-8",
            Some("notes.txt"),
            "media",
        ),
        (65_537, "?Category=body", "text/html", None, "body"),
        (
            1_048_579,
            "?Category=history&Filename=%F0%9F%90%9F%20fish.png",
            "image/png",
            Some("🐟 fish.png"),
            "history",
        ),
        (300_000, "?Filename=blob", "video/mp4; codecs=\"avc1\"", Some("blob"), "media"),
    ];
    for (i, (size, query, content_type, filename, category)) in cases.into_iter().enumerate() {
        let bytes = random_bytes(size, i as u64);
        let rec = mcs.upload(query, content_type, bytes.clone()).await;
        let temp = check_record(&mcs.server, &rec, size, content_type, filename, category, "alice");
        assert!(rec["channel_sid"].is_null() && rec["message_sid"].is_null(), "{rec}");

        // The temporary URL needs no credentials.
        let got = mcs.get_plain(&temp).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type"), Some(content_type));
        assert_eq!(got.header("content-length"), Some(size.to_string().as_str()));
        assert!(got.bytes == bytes, "content of case {i} differs");

        // The record again, with a fresh temporary URL.
        let sid = str_of(&rec, "sid");
        let again = mcs.get_with_token(&mcs.url(&format!("/Media/{sid}")), &alice).await;
        assert_eq!(again.status, 200);
        let again = again.json();
        check_record(&mcs.server, &again, size, content_type, filename, category, "alice");
        assert_eq!(again["sid"], rec["sid"]);
        assert_eq!(again["date_created"], rec["date_created"]);

        // `links.content` with the token, and with the account's credentials.
        let content_url = format!("{}{}", mcs.server.url(), str_of(&rec["links"], "content"));
        let by_token = mcs.get_with_token(&content_url, &alice).await;
        assert_eq!((by_token.status, by_token.header("content-type")), (200, Some(content_type)));
        assert!(by_token.bytes == bytes);
        let by_basic = mcs.send(mcs.http.get(&content_url).basic_auth(API_KEY, Some(API_SECRET))).await;
        assert_eq!(by_basic.status, 200);
        assert!(by_basic.bytes == bytes);
    }
}

#[tokio::test]
async fn uploads_with_account_credentials_are_by_system() {
    let mcs = Mcs::start().await;
    let req = mcs
        .http
        .post(mcs.url("/Media?Filename=a.bin"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .header(header::CONTENT_TYPE, "application/pdf")
        .body(vec![1, 2, 3]);
    let a = mcs.send(req).await;
    assert_eq!(a.status, 201);
    check_record(&mcs.server, &a.json(), 3, "application/pdf", Some("a.bin"), "media", "system");
}

#[tokio::test]
async fn upload_without_content_type_is_octet_stream() {
    let mcs = Mcs::start().await;
    let a = mcs.send(mcs.upload_req(&mcs.token("alice"), "", None, vec![7; 10])).await;
    assert_eq!(a.status, 201);
    check_record(&mcs.server, &a.json(), 10, "application/octet-stream", None, "media", "alice");
}

/// Decision: an empty upload is refused (400), the conservative choice: what uploads here then
/// also has content on Twilio.
#[tokio::test]
async fn empty_uploads_are_refused() {
    let mcs = Mcs::start().await;
    mcs.send(mcs.upload_req(&mcs.token("alice"), "", Some("text/plain"), Vec::new()))
        .await
        .assert_error(400, 20001);
    let multipart =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"e.txt\"\r\nContent-Type: text/plain\r\n\r\n\r\n--b--\r\n"
            .to_vec();
    mcs.send(mcs.upload_req(&mcs.token("alice"), "", Some("multipart/form-data; boundary=b"), multipart))
        .await
        .assert_error(400, 20001);
}

#[tokio::test]
async fn upload_parameters_are_validated() {
    let mcs = Mcs::start().await;
    let alice = mcs.token("alice");
    let up = |query: &str, ct: &str| mcs.send(mcs.upload_req(&alice, query, Some(ct), vec![1, 2, 3]));
    up("?Category=avatar", "image/png").await.assert_error(400, 20001);
    up("?Filename=a%0Ab", "image/png").await.assert_error(400, 20001);
    up(&format!("?Filename={}", "x".repeat(2000)), "image/png")
        .await
        .assert_error(400, 20001);
    up("", "png").await.assert_error(400, 50511);
    up("", "image/").await.assert_error(400, 50511);
    up("", "multipart/form-data").await.assert_error(400, 20001);
    up("", "multipart/form-data; boundary=b").await.assert_error(400, 20001);
    // Nothing was stored.
    let stored = mcs
        .server
        .domain()
        .account(ACCOUNT_SID)
        .unwrap()
        .read(|s| s.default_service().media.len());
    assert_eq!(stored, 1, "only the seed's media");
}

#[tokio::test]
async fn browser_form_data_uploads_store_the_file_part() {
    let mcs = Mcs::start().await;
    let png = random_bytes(5000, 9);
    let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.png\"\r\nContent-Type: image/png\r\n\r\n")
            .into_bytes();
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let rec = mcs
        .upload("?Category=media", &format!("multipart/form-data; boundary={boundary}"), body)
        .await;
    let temp = check_record(&mcs.server, &rec, png.len(), "image/png", Some("photo.png"), "media", "alice");
    let got = mcs.get_plain(&temp).await;
    assert_eq!((got.status, got.header("content-type")), (200, Some("image/png")));
    assert!(got.bytes == png);
}

#[tokio::test]
async fn temporary_urls_cannot_be_forged() {
    let mcs = Mcs::start().await;
    let a = mcs.upload("", "text/plain", b"first".to_vec()).await;
    let b = mcs.upload("", "text/plain", b"second".to_vec()).await;
    let (ta, tb) = (
        str_of(&a["links"], "content_direct_temporary"),
        str_of(&b["links"], "content_direct_temporary"),
    );
    assert_eq!(mcs.get_plain(ta).await.status, 200);

    let sig = param(ta, "Signature");
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 10 { if c == '0' { '1' } else { '0' } } else { c })
        .collect();
    let later = (param(ta, "Expires").parse::<i64>().unwrap() + 3600).to_string();
    let forged = [
        with_param(ta, "Signature", &flipped),
        with_param(ta, "Signature", &sig[..63]),
        with_param(ta, "Signature", "not-hex"),
        with_param(ta, "Signature", ""),
        with_param(ta, "Expires", &later),
        with_param(ta, "Expires", "soon"),
        // a's signature on b's media
        with_param(tb, "Signature", sig),
        ta.split("&Signature=").next().unwrap().to_owned(),
    ];
    for url in &forged {
        let got = mcs.get_plain(url).await;
        got.assert_error(403, 20403);
        assert!(!got.bytes.starts_with(b"first"), "{url}");
    }
    // Another server (another key) does not accept this one's URLs, even for its own media of
    // the same SID (the seed makes SIDs deterministic).
    let other = Mcs::start().await;
    let twin = other.upload("", "text/plain", b"first".to_vec()).await;
    assert_eq!(twin["sid"], a["sid"]);
    let moved = ta.replace(&mcs.server.url(), &other.server.url());
    other.get_plain(&moved).await.assert_error(403, 20403);
}

#[tokio::test]
async fn temporary_urls_expire_on_the_server_clock() {
    let mcs = Mcs::start().await;
    let clock = mcs.server.domain().clock();
    clock.freeze();
    let rec = mcs.upload("", "text/plain", b"short-lived".to_vec()).await;
    let temp = str_of(&rec["links"], "content_direct_temporary").to_owned();
    clock.advance(Duration::from_secs(DEFAULT_URL_TTL_SECS - 1));
    assert_eq!(mcs.get_plain(&temp).await.status, 200);
    clock.advance(Duration::from_secs(1));
    let got = mcs.get_plain(&temp).await;
    let body = got.assert_error(403, 20403);
    assert!(body["message"].as_str().unwrap().contains("expired"), "{body}");
    // A fresh record gives a fresh URL.
    let sid = str_of(&rec, "sid");
    let fresh = mcs
        .get_with_token(&mcs.url(&format!("/Media/{sid}")), &mcs.token("alice"))
        .await
        .json();
    let fresh_url = str_of(&fresh["links"], "content_direct_temporary");
    assert_ne!(fresh_url, temp);
    let got = mcs.get_plain(fresh_url).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, b"short-lived");
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let mcs = Mcs::start().await;
    let sid = mcs.seed_png_sid().await;
    let record = mcs.url(&format!("/Media/{sid}"));

    // No credentials: 401, and no Basic challenge (a browser would pop up a login dialog).
    let none = mcs.send(mcs.upload_req("", "", Some("text/plain"), b"x".to_vec())).await;
    none.assert_error(401, 20101);
    let none = mcs.get_plain(&record).await;
    none.assert_error(401, 20003);
    assert!(none.header("www-authenticate").is_none());
    mcs.send(mcs.http.post(mcs.url("/Media")).body("x")).await.assert_error(401, 20003);
    mcs.get_plain(&format!("{record}/Content")).await.assert_error(401, 20003);

    // Bad tokens: 401 with the token error's code.
    let garbage = mcs.get_with_token(&record, "garbage").await;
    garbage.assert_error(401, 20101);
    assert!(garbage.header("www-authenticate").is_none());
    let expired = mcs.token_with("alice", Some(SERVICE_SID), 60);
    mcs.server.domain().clock().advance(Duration::from_secs(61));
    mcs.get_with_token(&record, &expired).await.assert_error(401, 20104);
    let wrong_key = Token::on(&mcs.server, "alice").secret("not-the-secret").ttl(600).mint();
    mcs.get_with_token(&record, &wrong_key).await.assert_error(401, 20107);
    mcs.send(mcs.upload_req(&wrong_key, "", Some("text/plain"), b"x".to_vec()))
        .await
        .assert_error(401, 20107);

    // Wrong Basic credentials: the REST API's answer, challenge included.
    let basic = mcs.send(mcs.http.get(&record).basic_auth(ACCOUNT_SID, Some("wrong"))).await;
    basic.assert_error(401, 20003);
    assert!(basic.header("www-authenticate").is_some());

    // A token without a chat grant means the account's default service.
    let no_grant = mcs.token_with("alice", None, 600);
    assert_eq!(mcs.get_with_token(&record, &no_grant).await.status, 200);
}

#[tokio::test]
async fn the_token_must_be_for_the_path_service() {
    let mcs = Mcs::start().await;
    let alice = mcs.token("alice");
    let unknown = format!("{}/v1/Services/IS{}/Media", mcs.server.url(), "0".repeat(32));
    let a = mcs.send(mcs.http.post(&unknown).header("X-Twilio-Token", &alice).body("x")).await;
    a.assert_error(404, 20404);

    // A second service of the same account: the token for one does not open the other.
    let account = mcs.server.domain().account(ACCOUNT_SID).unwrap();
    let other = account
        .create_service(&rehearsal_mock_server::domain::Cause::api(false), "Other")
        .unwrap()
        .sid;
    let other_token = mcs.token_with("alice", Some(&other), 600);
    mcs.send(mcs.upload_req(&other_token, "", Some("text/plain"), b"x".to_vec()))
        .await
        .assert_error(403, 20403);
    let other_url = format!("{}/v1/Services/{other}/Media", mcs.server.url());
    let ok = mcs
        .send(mcs.http.post(&other_url).header("X-Twilio-Token", &other_token).body("x"))
        .await;
    assert_eq!(ok.status, 201);
    let rec = ok.json();
    assert_eq!(rec["service_sid"], json!(other));
    // Media of one service is not found under another.
    let sid = str_of(&rec, "sid");
    mcs.get_with_token(&mcs.url(&format!("/Media/{sid}")), &alice)
        .await
        .assert_error(404, 20404);

    // Another account's service is not found with this account's token or credentials.
    let foreign = crate::support::add_account(&mcs.server, 7);
    let foreign_url = format!("{}/v1/Services/{}/Media", mcs.server.url(), foreign.service_sid);
    mcs.send(mcs.http.post(&foreign_url).header("X-Twilio-Token", &alice).body("x"))
        .await
        .assert_error(404, 20404);
    mcs.send(mcs.http.post(&foreign_url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).body("x"))
        .await
        .assert_error(404, 20404);
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused() {
    let mcs = Mcs::start().await;
    assert_eq!(DEFAULT_MAX_UPLOAD_BYTES, 16 * 1024 * 1024, "what the Configuration advertises");
    let at_limit = mcs
        .upload("", "application/octet-stream", vec![0x5a; DEFAULT_MAX_UPLOAD_BYTES])
        .await;
    assert_eq!(at_limit["size"], json!(DEFAULT_MAX_UPLOAD_BYTES));
    let over = mcs
        .send(mcs.upload_req(
            &mcs.token("alice"),
            "",
            Some("application/octet-stream"),
            vec![0x5a; DEFAULT_MAX_UPLOAD_BYTES + 1],
        ))
        .await;
    over.assert_error(413, 50512);
    // A multipart body may carry its envelope, but not a larger file.
    let mut body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big\"\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(0u8, DEFAULT_MAX_UPLOAD_BYTES + 1));
    body.extend_from_slice(b"\r\n--b--\r\n");
    mcs.send(mcs.upload_req(&mcs.token("alice"), "", Some("multipart/form-data; boundary=b"), body))
        .await
        .assert_error(413, 50512);
    // The connection is still usable afterwards.
    assert_eq!(mcs.upload("", "text/plain", b"small".to_vec()).await["size"], 5);
}

#[tokio::test]
async fn media_set_answers_each_sid() {
    let mcs = Mcs::start().await;
    let alice = mcs.token("alice");
    let rec = mcs.upload("?Filename=a.txt", "text/plain", b"hello".to_vec()).await;
    let sid = str_of(&rec, "sid");
    let unknown = format!("ME{}", "f".repeat(32));
    let a = mcs
        .media_set(
            &alice,
            json!({"command": "get", "list": [{"media_sid": sid}, {"media_sid": unknown}]}),
        )
        .await;
    assert_eq!(a.status, 200);
    let items = a.json();
    let items = items.as_array().expect("an array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["code"], 200);
    let temp = check_record(
        &mcs.server,
        &items[0]["media_record"],
        5,
        "text/plain",
        Some("a.txt"),
        "media",
        "alice",
    );
    assert_eq!(mcs.get_plain(&temp).await.bytes, b"hello");
    assert_eq!(items[1], json!({"code": 404, "media_record": {"sid": unknown}}));

    let empty = mcs.media_set(&alice, json!({"command": "get", "list": []})).await;
    assert_eq!((empty.status, empty.json()), (200, json!([])));
    mcs.media_set(&alice, json!({"command": "delete", "list": []}))
        .await
        .assert_error(400, 20001);
    mcs.media_set(&alice, json!({"command": "get", "list": [{"sid": sid}]}))
        .await
        .assert_error(400, 20001);
    mcs.send(
        mcs.http
            .post(mcs.url("/MediaSet"))
            .header("X-Twilio-Token", &alice)
            .body("{not json"),
    )
    .await
    .assert_error(400, 20001);
    mcs.send(mcs.http.post(mcs.url("/MediaSet")).json(&json!({"command": "get", "list": []})))
        .await
        .assert_error(401, 20003);
}

#[tokio::test]
async fn conversation_media_is_for_its_participants() {
    let mcs = Mcs::start().await;
    let sid = mcs.seed_png_sid().await;
    let record = mcs.url(&format!("/Media/{sid}"));

    // alice and bob are in `general`; carol uploaded it.
    for who in ["alice", "bob", "carol"] {
        let a = mcs.get_with_token(&record, &mcs.token(who)).await;
        assert_eq!(a.status, 200, "{who}");
        let rec = a.json();
        let temp = check_record(
            &mcs.server,
            &rec,
            SEED_PNG.len(),
            "image/png",
            Some("rehearsal.png"),
            "media",
            "carol",
        );
        assert!(
            str_of(&rec, "channel_sid").starts_with("CH") && str_of(&rec, "message_sid").starts_with("IM"),
            "{rec}"
        );
        let got = mcs.get_plain(&temp).await;
        assert_eq!((got.status, got.header("content-type")), (200, Some("image/png")));
        assert!(got.bytes == SEED_PNG);
    }

    // mallory is not: no record, no content, a 403 entry in a media set.
    let mallory = mcs.token("mallory");
    mcs.get_with_token(&record, &mallory).await.assert_error(403, 50430);
    mcs.get_with_token(&format!("{record}/Content"), &mallory)
        .await
        .assert_error(403, 50430);
    let set = mcs
        .media_set(&mallory, json!({"command": "get", "list": [{"media_sid": sid}]}))
        .await;
    assert_eq!(
        (set.status, set.json()),
        (200, json!([{"code": 403, "media_record": {"sid": sid}}]))
    );

    // The account's credentials read everything.
    let basic = mcs.send(mcs.http.get(&record).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))).await;
    assert_eq!(basic.status, 200);
}

#[tokio::test]
async fn attaching_to_a_message_opens_the_media_to_the_conversation() {
    let mcs = Mcs::start().await;
    let rec = mcs.upload("?Filename=x.txt", "text/plain", b"for general".to_vec()).await;
    let sid = str_of(&rec, "sid").to_owned();
    let record = mcs.url(&format!("/Media/{sid}"));
    // Before: only the uploader.
    mcs.get_with_token(&record, &mcs.token("bob")).await.assert_error(403, 50430);

    let post = mcs
        .http
        .post(format!("{}/v1/Conversations/general/Messages", mcs.server.url()))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("Author", "alice"), ("MediaSid", sid.as_str())]);
    let msg = mcs.send(post).await;
    assert_eq!(msg.status, 201, "{}", String::from_utf8_lossy(&msg.bytes));
    let msg = msg.json();

    let after = mcs.get_with_token(&record, &mcs.token("bob")).await;
    assert_eq!(after.status, 200);
    let after = after.json();
    assert_eq!(after["channel_sid"], msg["conversation_sid"]);
    assert_eq!(after["message_sid"], msg["sid"]);
    mcs.get_with_token(&record, &mcs.token("mallory")).await.assert_error(403, 50430);
}

#[tokio::test]
async fn cors_preflight_and_response_headers() {
    let mcs = Mcs::start().await;
    for (path, method) in [
        ("/Media", "POST"),
        ("/MediaSet", "POST"),
        (&*format!("/Media/ME{}", "0".repeat(32)), "GET"),
    ] {
        let pre = mcs
            .send(
                mcs.http
                    .request(Method::OPTIONS, mcs.url(path))
                    .header("Origin", "http://localhost:3000")
                    .header("Access-Control-Request-Method", method)
                    .header("Access-Control-Request-Headers", "x-twilio-token,content-type"),
            )
            .await;
        assert!(pre.status == 200 || pre.status == 204, "{path}: {}", pre.status);
        assert_eq!(pre.header("access-control-allow-origin"), Some("*"), "{path}");
        let methods = pre.header("access-control-allow-methods").unwrap_or_default().to_ascii_uppercase();
        assert!(["GET", "POST", "OPTIONS"].iter().all(|m| methods.contains(m)), "{methods}");
        let allowed = pre.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(allowed.contains("x-twilio-token") && allowed.contains("content-type"), "{allowed}");
    }
    // Actual answers, errors included, carry the CORS headers.
    let rec = mcs
        .send(
            mcs.upload_req(&mcs.token("alice"), "", Some("text/plain"), b"cors".to_vec())
                .header("Origin", "http://localhost:3000"),
        )
        .await;
    assert_eq!(rec.status, 201);
    assert_eq!(rec.header("access-control-allow-origin"), Some("*"));
    let temp = str_of(&rec.json()["links"], "content_direct_temporary").to_owned();
    let got = mcs.send(mcs.http.get(&temp).header("Origin", "http://localhost:3000")).await;
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
    let exposed = got.header("access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(exposed.contains("content-length") && exposed.contains("content-type"), "{exposed}");
    let denied = mcs
        .send(mcs.http.get(mcs.url("/Media/ME1")).header("Origin", "http://localhost:3000"))
        .await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn other_methods_are_refused_with_a_twilio_error() {
    let mcs = Mcs::start().await;
    let alice = mcs.token("alice");
    mcs.send(mcs.http.delete(mcs.url("/Media/ME1")).header("X-Twilio-Token", &alice))
        .await
        .assert_error(405, 20004);
    mcs.send(mcs.http.get(mcs.url("/Media")).header("X-Twilio-Token", &alice))
        .await
        .assert_error(405, 20004);
    mcs.send(mcs.http.get(mcs.url("/MediaSet")).header("X-Twilio-Token", &alice))
        .await
        .assert_error(405, 20004);
    mcs.send(mcs.http.put(mcs.url("/Media/ME1/Content")).header("X-Twilio-Token", &alice))
        .await
        .assert_error(405, 20004);
}

/// The journal describes media transfers: what went each way, by whom, under which account —
/// also for a temporary URL, which carries no credentials.
#[tokio::test]
async fn media_transfers_are_journaled_with_sizes_types_and_owners() {
    use rehearsal_mock_server::journal::{Filter, Kind};
    let mcs = Mcs::start().await;
    let rec = mcs.upload("?Filename=a.png", "image/png", random_bytes(1234, 9)).await;
    let temp = str_of(&rec["links"], "content_direct_temporary").to_owned();
    assert_eq!(mcs.get_plain(&temp).await.status, 200);

    let entries = mcs
        .server
        .control()
        .journal()
        .query(&Filter {
            kind: Some(vec![Kind::Media]),
            ..Filter::default()
        })
        .entries;
    let [upload, download] = entries.as_slice() else {
        panic!("an upload and a download: {entries:#?}");
    };
    assert_eq!(upload.account.as_deref(), Some(ACCOUNT_SID));
    assert_eq!(upload.identity.as_deref(), Some("alice"), "the identity the token claims");
    assert_eq!(upload.detail["request"], json!({ "content_type": "image/png", "size": 1234 }));
    assert_eq!(upload.detail["status"], 201);
    assert_eq!(download.account.as_deref(), Some(ACCOUNT_SID), "the service's account");
    assert_eq!(download.identity, None, "a temporary URL names nobody");
    assert_eq!(download.detail["response"], json!({ "content_type": "image/png", "size": 1234 }));
}

#[tokio::test]
async fn a_tenant_past_its_media_quota_is_refused_until_it_is_reset() {
    const UPLOAD: usize = 100_000;
    // The seed's PNG counts too: room for it and three uploads.
    let quota = (SEED_PNG.len() + 3 * UPLOAD) as u64;
    let mcs = Mcs::start_with(ServerConfig {
        media: MediaConfig {
            quota_bytes: quota,
            ..MediaConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    for n in 0..3 {
        mcs.upload("", "application/octet-stream", vec![n; UPLOAD]).await;
    }
    let over = mcs
        .send(mcs.upload_req(&mcs.token("alice"), "", Some("text/plain"), b"one byte more".to_vec()))
        .await;
    let body = over.assert_error(413, 50512);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("quota") && message.contains(&quota.to_string()), "{message}");

    // Another tenant has its own quota.
    let other = crate::support::add_account(&mcs.server, 2);
    let token = Token::new(&other, "zoe", mcs.server.domain().clock().now().unix_secs()).mint();
    let url = format!("{}/v1/Services/{}/Media", mcs.server.url(), other.service_sid);
    let a = mcs
        .send(mcs.http.post(url).header("X-Twilio-Token", token).body(vec![7u8; 2 * UPLOAD]))
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));

    // A reset frees the tenant's media (the seed's PNG comes back with the seed).
    mcs.server.control().reset_tenant(ACCOUNT_SID).expect("reset");
    for n in 0..3 {
        mcs.upload("", "application/octet-stream", vec![n; UPLOAD]).await;
    }
}
