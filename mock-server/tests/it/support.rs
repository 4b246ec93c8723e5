//! Test support: one [`MockServer`] per test on a loopback port, and a small REST client
//! that speaks Twilio's dialect (HTTP Basic auth, form-encoded bodies, JSON answers).
//!
//! Every answer is checked where it is received, so each test gets these for free:
//! - a 2xx answer must match Twilio's OpenAPI description of the operation strictly
//!   (schema, and every property the spec lists is present; see `openapi.rs`);
//! - any other answer must be Twilio's error body: exactly `code`, `message`, `more_info`
//!   and `status`, with `status` equal to the HTTP status.
//!
//! ```ignore
//! let (server, api) = support::start().await;
//! let (status, body) = api.post("/v1/Conversations", &[("FriendlyName", "x")]).await;
//! let body = expect(201, api.get("/v1/Conversations/general").await);
//! ```

// Not every helper is used by every module of the test binary.
#![allow(dead_code)]

use std::time::Duration;

use rehearsal_mock_server::domain::{ApiKey, NewAccount};
use rehearsal_mock_server::{Credentials, MockServer};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::openapi::Spec;

/// The embedded default seed's account and credentials.
pub const ACCOUNT_SID: &str = "AC72656865617273616c00000000000001";
pub const AUTH_TOKEN: &str = "rehearsal-auth-token";
pub const API_KEY: &str = "SK72656865617273616c00000000000001";
pub const API_SECRET: &str = "rehearsal-api-secret";
pub const SERVICE_SID: &str = "IS72656865617273616c00000000000001";

/// Every request gives up after this long: a hung server fails the test instead of stalling it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What snapshots show instead of `http://127.0.0.1:PORT`.
pub const SNAPSHOT_BASE: &str = "http://rehearsal";

/// The two prefixes every resource is served under: the account's default service, and the
/// same service named explicitly.
pub fn prefixes() -> [String; 2] {
    ["/v1".to_owned(), format!("/v1/Services/{SERVICE_SID}")]
}

/// Starts a server on the default seed and a client holding the seed's auth token.
pub async fn start() -> (MockServer, Api) {
    let server = MockServer::start().await;
    let creds = server.credentials().expect("the default seed has an account with an API key");
    assert_eq!(creds.account_sid, ACCOUNT_SID, "default seed changed");
    assert_eq!(creds.auth_token, AUTH_TOKEN, "default seed changed");
    assert_eq!(creds.api_key, API_KEY, "default seed changed");
    assert_eq!(creds.api_secret, API_SECRET, "default seed changed");
    assert_eq!(creds.service_sid, SERVICE_SID, "default seed changed");
    let api = Api::new(&server.url(), Auth::basic(ACCOUNT_SID, AUTH_TOKEN));
    (server, api)
}

/// Adds an account `AC…0n` (API key `SK…0n`, service `IS…0n`) with no content to `server`.
pub fn add_account(server: &MockServer, n: u8) -> Credentials {
    let sid = |prefix: &str| format!("{prefix}{:032x}", 0xfeed_0000_u128 + u128::from(n));
    let account_sid = sid("AC");
    let key = ApiKey {
        sid: sid("SK"),
        secret: format!("secret-{n}"),
        friendly_name: None,
    };
    server
        .domain()
        .create_account(NewAccount {
            sid: Some(account_sid.clone()),
            friendly_name: Some(format!("account {n}")),
            auth_token: Some(format!("token-{n}")),
            api_keys: vec![key],
            service_sid: Some(sid("IS")),
            service_name: None,
            rng_seed: u64::from(n),
        })
        .expect("a fresh account can be created");
    Credentials::of(server.domain(), &account_sid).expect("the account just created")
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Basic(String, String),
    /// A raw `Authorization` header value.
    Header(String),
}

impl Auth {
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic(user.to_owned(), password.to_owned())
    }
}

/// One answer, with its headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// `Value::Null` for an empty body.
    pub body: Value,
}

/// A REST client for one server and one set of credentials.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl Api {
    pub fn new(base: &str, auth: Auth) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a plain HTTP client builds");
        Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        }
    }

    /// The same server with other credentials.
    pub fn with_auth(&self, auth: Auth) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            auth,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.send(Method::GET, path, None).await;
        (r.status, r.body)
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self.send(Method::POST, path, Some(form)).await;
        (r.status, r.body)
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.send(Method::DELETE, path, None).await;
        (r.status, r.body)
    }

    /// `path` is relative to the server (`/v1/…`) or an absolute URL on it (a page URL).
    pub async fn send(&self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(form) = form {
            req = req.form(form);
        }
        self.finish(method, path, req).await
    }

    /// A POST whose body is sent as given.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let req = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.finish(Method::POST, path, req).await
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            assert!(
                path.starts_with(&format!("{}/", self.base)),
                "{path} is not a URL on this server ({})",
                self.base
            );
            path.to_owned()
        } else {
            assert!(path.starts_with('/'), "{path:?} must start with /");
            format!("{}{path}", self.base)
        }
    }

    /// Sends without checking the answer; a body that is not JSON comes back as a JSON string.
    pub async fn send_unchecked(&self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(form) = form {
            req = req.form(form);
        }
        let (reply, _) = self.exchange(&method, path, req).await;
        reply
    }

    async fn exchange(&self, method: &Method, path: &str, req: reqwest::RequestBuilder) -> (Reply, Result<(), String>) {
        let req = match &self.auth {
            Auth::None => req,
            Auth::Basic(user, password) => req.basic_auth(user, Some(password)),
            Auth::Header(raw) => req.header(reqwest::header::AUTHORIZATION, raw),
        };
        let res = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body failed: {e}"));
        let (body, parsed) = if bytes.is_empty() {
            (Value::Null, Ok(()))
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => (v, Ok(())),
                Err(e) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let err = format!("{method} {path} -> {status}: body is not JSON ({e}): {text:?}");
                    (Value::String(text), Err(err))
                }
            }
        };
        (Reply { status, headers, body }, parsed)
    }

    async fn finish(&self, method: Method, path: &str, req: reqwest::RequestBuilder) -> Reply {
        let (reply, parsed) = self.exchange(&method, path, req).await;
        if let Err(e) = parsed {
            panic!("{e}");
        }
        if (200..300).contains(&reply.status) {
            Spec::get().assert_response_strict(method.as_str(), path, reply.status, &reply.body);
        } else {
            assert_error_body(&format!("{method} {path}"), reply.status, &reply.body);
        }
        reply
    }
}

/// Twilio's error body: exactly `code`, `message`, `more_info` and `status`.
#[track_caller]
pub fn assert_error_body(what: &str, status: u16, body: &Value) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("{what} -> {status}: error body is not an object: {body}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "more_info", "status"], "{what} -> {status}: {body}");
    let code = body["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what} -> {status}: code is not a number: {body}"));
    assert_eq!(body["status"], status, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what} -> {status}: {body}"
    );
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{what}: {body}"
    );
}

/// The body of an answer that must have `status`.
#[track_caller]
pub fn expect(status: u16, (got, body): (u16, Value)) -> Value {
    assert_eq!(got, status, "unexpected status; body: {body:#}");
    body
}

/// An error answer with `status` and Twilio error `code`; returns its message.
#[track_caller]
pub fn expect_error(status: u16, code: u64, (got, body): (u16, Value)) -> String {
    assert_eq!(got, status, "unexpected status; body: {body:#}");
    assert_eq!(body["code"], code, "unexpected error code; body: {body:#}");
    body["message"].as_str().unwrap_or_default().to_owned()
}

/// `value` with this server's base URL replaced by [`SNAPSHOT_BASE`], for snapshots.
pub fn portless(server: &MockServer, value: &Value) -> Value {
    replace_strings(value, &[(&server.url(), SNAPSHOT_BASE)])
}

/// `value` with every occurrence of each `from` in its strings replaced by `to` (for SIDs
/// created during a test, which snapshots show as placeholders).
pub fn replace_strings(value: &Value, pairs: &[(&str, &str)]) -> Value {
    match value {
        Value::String(s) => {
            let mut s = s.clone();
            for (from, to) in pairs {
                s = s.replace(from, to);
            }
            Value::String(s)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| replace_strings(v, pairs)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), replace_strings(v, pairs))).collect()),
        other => other.clone(),
    }
}

/// Percent-encodes a query value (`+1555…` must not become a space).
pub fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The SID of a conversation addressed by unique name.
pub async fn conversation_sid(api: &Api, unique_name: &str) -> String {
    let body = expect(200, api.get(&format!("/v1/Conversations/{unique_name}")).await);
    body["sid"].as_str().expect("sid").to_owned()
}

/// The items of a list answer, under its `meta.key`.
#[track_caller]
pub fn items(list: &Value) -> &Vec<Value> {
    let key = list["meta"]["key"].as_str().unwrap_or_else(|| panic!("no meta.key: {list}"));
    list[key].as_array().unwrap_or_else(|| panic!("no array under {key:?}: {list}"))
}

/// One string field of each item of a list answer.
#[track_caller]
pub fn field_of_items(list: &Value, field: &str) -> Vec<String> {
    items(list)
        .iter()
        .map(|i| match &i[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}
