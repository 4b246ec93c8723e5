//! The Conversations client API ("aim") the SDK calls over twilsock: configuration, my
//! conversations, conversations, participants, messages, users, typing.
//!
//! Boundary: requests arrive as [`UpstreamRequest`]s from a session; every change is a named
//! change handed to the domain service with the caller's [`Cause`] (`Origin::Sdk`, webhooks on):
//! `Account::perform` for the changes Twilio vets with a pre-action webhook (the service asks
//! the webhook with no lock held and applies the change as it modified it; a rejection is the
//! caller's error), `Account::apply` for the others. The domain's events feed the Sync
//! projection. Mutation replies carry only what the SDK reads from them (message `index`,
//! conversation `sid`/`sync_objects`, `unread_messages_count`, `typing_timeout`): everything
//! visible reaches clients through Sync.
//!
//! Layout: one file per resource, as `rest/`: `me` (configuration and my conversations),
//! `conversations`, `participants`, `messages`, `users` (users and typing); `render` (reply
//! shapes).
mod conversations;
mod me;
mod messages;
mod participants;
mod render;
mod users;

use serde_json::{Value, json};

use crate::auth::identity::Caller;
use crate::domain::{Account, Cause, ChatService, DomainError, codes};
use crate::twilsock::{UpstreamRequest, UpstreamResponse};

/// Answers one client-API request; `segments` are the decoded path segments after `/Client/v2`.
pub async fn handle(base: &str, typing_timeout: u64, caller: &Caller, req: &UpstreamRequest, segments: &[&str]) -> UpstreamResponse {
    let method = req.method.as_str();
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let links = render::Links::new(base, &caller.service_sid);
    let cx = Request {
        links: &links,
        caller,
        me: caller.identity(),
        cause: Cause::sdk(caller.identity()),
        typing_timeout,
        req,
        body: &body,
    };
    match (method, segments) {
        ("GET", ["Configuration"]) => me::configuration(&cx),
        ("GET", ["ContentTemplates"]) => {
            UpstreamResponse::ok(json!({ "templates": [], "meta": { "next_token": null, "previous_token": null } }))
        }
        (_, ["Services", svc, rest @ ..]) if *svc == caller.service_sid => service_request(&cx, method, rest).await,
        (_, ["Services", svc, ..]) => UpstreamResponse::error(404, 50050, format!("Service {svc} not found")),
        _ => UpstreamResponse::no_route(&req.method, &req.path),
    }
}

/// One request, as the resource handlers see it.
struct Request<'a> {
    links: &'a render::Links,
    caller: &'a Caller,
    /// The caller's identity.
    me: &'a str,
    cause: Cause,
    typing_timeout: u64,
    req: &'a UpstreamRequest,
    body: &'a Value,
}

impl Request<'_> {
    fn account(&self) -> &Account {
        &self.caller.account
    }

    fn service(&self) -> Option<&str> {
        Some(&self.caller.service_sid)
    }

    /// A string field of the body (`null` or absent: `None`; other JSON: its text).
    fn s(&self, k: &str) -> Option<String> {
        match self.body.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        }
    }

    /// Reads the caller's service.
    fn read(&self, f: impl FnOnce(&ChatService) -> Result<Value, DomainError>) -> UpstreamResponse {
        reply(200, self.account().read(|s| s.service(self.service()).and_then(f)))
    }

    /// The SDK's rule for changes inside a conversation: the caller must be a participant.
    fn member_of<'c>(&'c self, conversation: &'c str) -> impl Fn(&ChatService) -> Result<(), DomainError> + Send + 'c {
        move |svc: &ChatService| require_participant(svc, conversation, self.me)
    }
}

async fn service_request(cx: &Request<'_>, method: &str, rest: &[&str]) -> UpstreamResponse {
    match (method, rest) {
        ("GET", ["Me", "Conversations"]) => me::list(cx),
        ("GET", ["Me", "Conversations", id]) => me::fetch(cx, id),
        ("POST", ["Me", "Conversations", id]) => me::update(cx, id),
        ("POST", ["Conversations"]) => conversations::create(cx).await,
        ("GET", ["Conversations", id]) => conversations::fetch(cx, id),
        ("POST", ["Conversations", id]) => conversations::update(cx, id).await,
        ("DELETE", ["Conversations", id]) => conversations::remove(cx, id).await,
        ("POST", ["Conversations", id, "Participants"]) => participants::add(cx, id).await,
        ("POST", ["Conversations", id, "Participants", pid]) => participants::update(cx, id, pid).await,
        ("DELETE", ["Conversations", id, "Participants", pid]) => participants::remove(cx, id, pid).await,
        ("POST", ["Conversations", id, "Messages"]) => messages::add(cx, id).await,
        ("POST", ["Conversations", id, "Messages", mid]) => messages::update(cx, id, mid).await,
        ("DELETE", ["Conversations", id, "Messages", mid]) => messages::remove(cx, id, mid).await,
        ("GET", ["Conversations", _, "Messages", _, "Receipts"]) => {
            UpstreamResponse::ok(json!({ "delivery_receipts": [], "meta": { "previous_token": null, "next_token": null } }))
        }
        ("GET", ["Conversations", _, "Messages", _, "ChannelMetadata"]) => {
            UpstreamResponse::error(404, 50530, "No channel metadata for this message")
        }
        ("GET", ["Conversations", _, "MessageRecipients"]) => {
            UpstreamResponse::ok(json!({ "message_recipients": [], "meta": { "previous_token": null, "next_token": null } }))
        }
        ("GET", ["Users", identity]) => users::fetch(cx, identity),
        ("POST", ["Users", identity]) => users::update(cx, identity).await,
        ("POST", ["Typing"]) => users::typing(cx),
        _ => UpstreamResponse::no_route(&cx.req.method, &cx.req.path),
    }
}

/// Conversations sends a JSON string, Sync a JSON object, typing a form: read all three.
fn parse_body(req: &UpstreamRequest) -> Result<Value, UpstreamResponse> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    if req
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&req.body).map_err(|e| UpstreamResponse::error(400, 20001, format!("bad form body: {e}")))?;
        return Ok(Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()));
    }
    let v: Value =
        serde_json::from_slice(&req.body).map_err(|e| UpstreamResponse::error(400, 20001, format!("request body is not JSON: {e}")))?;
    match v {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| UpstreamResponse::error(400, 20001, format!("request body is not JSON: {e}")))
        }
        Value::Object(_) => Ok(v),
        // A body of `null`: @twilio/conversations 2.0.0 sends its DELETEs (`leave()`,
        // `removeParticipant`, message `remove()`) with one — dist/lib.js,
        // `CommandExecutor._makeRequest`: `transport.delete(url, headers, null, …)`, and twilsock
        // 0.12.2 `preparePayload` serializes any object, null included, with `JSON.stringify`.
        // 3.x sends `{}`. Both mean "no fields".
        Value::Null => Ok(json!({})),
        _ => Err(UpstreamResponse::error(400, 20001, "request body must be a JSON object")),
    }
}

fn fail(e: DomainError) -> UpstreamResponse {
    UpstreamResponse::error(e.status(), e.client_code(), e.to_string())
}

/// `status` with the value, or the domain's error.
fn reply(status: u16, r: Result<Value, DomainError>) -> UpstreamResponse {
    match r {
        Ok(v) if status == 200 => UpstreamResponse::ok(v),
        Ok(v) => UpstreamResponse::status(status, v),
        Err(e) => fail(e),
    }
}

fn require_participant(svc: &ChatService, conv: &str, identity: &str) -> Result<(), DomainError> {
    let e = svc.conversation(conv)?;
    if e.participants.get(identity).is_none() {
        return Err(DomainError::Forbidden {
            code: codes::NOT_A_PARTICIPANT,
            message: format!("User {identity} is not a participant of conversation {conv}"),
        });
    }
    Ok(())
}
