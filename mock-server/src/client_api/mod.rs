//! The Conversations client API ("aim") the SDK calls over twilsock: configuration, my
//! conversations, conversations, participants, messages, users, typing.
//!
//! Boundary: requests arrive as [`UpstreamRequest`]s from a session; every change goes through
//! the domain service (`Account::write` with `Origin::Sdk`), whose events feed the Sync
//! projection. Mutation replies carry only what the SDK reads from them (message `index`,
//! conversation `sid`/`sync_objects`, `unread_messages_count`, `typing_timeout`): everything
//! visible reaches clients through Sync.
//!
//! Mutations ask the pre-action webhook first (`webhooks::Webhooks::pre_action`, awaited with
//! no lock held) and apply the change as it modified it; a rejection is the caller's error.
mod render;

use serde_json::{Value, json};

use crate::auth::identity::Caller;
use crate::domain::conversation::{ConversationUpdate, NewConversation};
use crate::domain::message::{MessageUpdate, NewMessage};
use crate::domain::participant::{NewParticipant, ParticipantUpdate};
use crate::domain::user::UserUpdate;
use crate::domain::{ChatService, DomainError, Origin, codes};
use crate::twilsock::{UpstreamRequest, UpstreamResponse};
use crate::webhooks::{EventType, Fields, Modifications, PreError, Rejection, Webhooks, payload};

/// Answers one client-API request; `segments` are the decoded path segments after `/Client/v2`.
/// `hooks`: pre-action webhooks (absent in bare embeddings).
pub async fn handle(
    base: &str,
    typing_timeout: u64,
    hooks: Option<&Webhooks>,
    caller: &Caller,
    req: &UpstreamRequest,
    segments: &[&str],
) -> UpstreamResponse {
    let method = req.method.as_str();
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let links = render::Links::new(base, &caller.service_sid);
    match (method, segments) {
        ("GET", ["Configuration"]) => configuration(&links, caller),
        ("GET", ["ContentTemplates"]) => {
            UpstreamResponse::ok(json!({ "templates": [], "meta": { "next_token": null, "previous_token": null } }))
        }
        (_, ["Services", svc, rest @ ..]) if *svc == caller.service_sid => {
            let cx = Hooked { hooks, caller };
            service_request(&links, typing_timeout, &cx, method, rest, req, &body).await
        }
        (_, ["Services", svc, ..]) => UpstreamResponse::error(404, 50050, format!("Service {svc} not found")),
        _ => UpstreamResponse::no_route(&req.method, &req.path),
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

fn s(body: &Value, k: &str) -> Option<String> {
    match body.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}

fn configuration(links: &render::Links, caller: &Caller) -> UpstreamResponse {
    let origin = Origin::Sdk {
        identity: caller.identity().to_owned(),
    };
    let user_sid = caller.account.write(&origin, Some(&caller.service_sid), |svc, cx| {
        svc.ensure_user(cx, caller.identity())?;
        Ok((svc.user(caller.identity())?.sid.clone(), svc.reachability_enabled))
    });
    match user_sid {
        Ok((u, reachability)) => UpstreamResponse::ok(render::configuration(links, caller, &u, reachability)),
        Err(e) => fail(e),
    }
}

/// What a mutation needs to ask the pre-action webhook.
struct Hooked<'a> {
    hooks: Option<&'a Webhooks>,
    caller: &'a Caller,
}

impl Hooked<'_> {
    /// Asks the pre-action webhook about `event`, after `check` (access rules) passed.
    async fn pre(
        &self,
        origin: &Origin,
        event: EventType,
        check: impl FnOnce(&ChatService) -> Result<(), DomainError>,
        build: impl FnOnce(&ChatService) -> Result<Fields, DomainError>,
    ) -> Result<Option<Modifications>, UpstreamResponse> {
        let svc_sid = self.caller.service_sid.as_str();
        self.caller
            .account
            .read(|s| s.service(Some(svc_sid)).and_then(check))
            .map_err(fail)?;
        let Some(hooks) = self.hooks else {
            return Ok(None);
        };
        hooks
            .pre_action(&self.caller.account, Some(svc_sid), origin, event, build)
            .await
            .map_err(|e| match e {
                PreError::Domain(d) => fail(d),
                PreError::Rejected(r) => UpstreamResponse::error(Rejection::STATUS, Rejection::CODE, r.to_string()),
            })
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

async fn service_request(
    links: &render::Links,
    typing_timeout: u64,
    cx: &Hooked<'_>,
    method: &str,
    rest: &[&str],
    req: &UpstreamRequest,
    body: &Value,
) -> UpstreamResponse {
    let caller = cx.caller;
    let me = caller.identity().to_owned();
    let origin = Origin::Sdk { identity: me.clone() };
    let account = &caller.account;
    let svc_sid = caller.service_sid.as_str();
    let read = |f: &dyn Fn(&ChatService) -> Result<Value, DomainError>| {
        account
            .read(|s| s.service(Some(svc_sid)).and_then(f))
            .map(UpstreamResponse::ok)
            .unwrap_or_else(fail)
    };
    match (method, rest) {
        // ---- my conversations
        ("GET", ["Me", "Conversations"]) => {
            let size = req
                .param("PageSize")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(50)
                .clamp(1, 100);
            let after = req.param("PageToken").and_then(|t| t.parse::<u64>().ok());
            read(&|svc| {
                let all: Vec<_> = svc
                    .conversations_of(&me)
                    .filter(|(seq, _)| after.is_none_or(|a| *seq > a))
                    .take(size + 1)
                    .collect();
                let more = all.len() > size;
                let page = &all[..all.len().min(size)];
                let next = if more { page.last().map(|(seq, _)| seq.to_string()) } else { None };
                let list: Vec<Value> = page.iter().map(|(_, e)| render::conversation(links, svc, e, &me)).collect();
                Ok(json!({ "conversations": list, "meta": { "next_token": next, "previous_token": null, "page_size": size } }))
            })
        }
        ("GET", ["Me", "Conversations", id]) => read(&|svc| {
            let e = svc.conversation(id)?;
            if e.participants.get(&me).is_none() {
                return Err(DomainError::not_found(
                    crate::domain::Resource::Conversation,
                    format!("Me/Conversations/{id}"),
                ));
            }
            Ok(render::conversation(links, svc, e, &me))
        }),
        ("POST", ["Me", "Conversations", id]) => {
            let update = ParticipantUpdate {
                last_read_message_index: match body.get("last_read_message_index") {
                    None => None,
                    Some(Value::Null) => Some(None),
                    Some(v) => match v.as_u64() {
                        Some(n) => Some(Some(n)),
                        None => {
                            return UpstreamResponse::error(400, 20001, "last_read_message_index must be a non-negative integer or null");
                        }
                    },
                },
                notification_level: s(body, "notification_level"),
                ..Default::default()
            };
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    svc.update_participant(cx, id, &me, update)?;
                    Ok(render::conversation(links, svc, svc.conversation(id)?, &me))
                })
                .map(UpstreamResponse::ok)
                .unwrap_or_else(fail)
        }
        // ---- conversations
        ("POST", ["Conversations"]) => {
            let mut req = NewConversation {
                friendly_name: s(body, "friendly_name"),
                unique_name: s(body, "unique_name"),
                attributes: s(body, "attributes"),
                created_by: Some(me.clone()),
                ..Default::default()
            };
            match cx
                .pre(
                    &origin,
                    EventType::ConversationAdd,
                    |_| Ok(()),
                    |svc| Ok(payload::conversation_add(svc, &req)),
                )
                .await
            {
                Ok(Some(m)) => m.apply_new_conversation(&mut req),
                Ok(None) => {}
                Err(r) => return r,
            }
            // Like Twilio: creating does not join; the SDK app calls `join()` next. The creator
            // may read the conversation's objects meanwhile (see `sync::query::can_read`).
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    let c = svc.create_conversation(cx, req)?;
                    Ok(render::conversation(links, svc, svc.conversation(&c.sid)?, &me))
                })
                .map(|v| UpstreamResponse::status(201, v))
                .unwrap_or_else(fail)
        }
        ("GET", ["Conversations", id]) => read(&|svc| Ok(render::conversation(links, svc, svc.conversation(id)?, &me))),
        ("POST", ["Conversations", id]) => {
            let mut update = ConversationUpdate {
                friendly_name: s(body, "friendly_name"),
                unique_name: s(body, "unique_name"),
                attributes: s(body, "attributes"),
                ..Default::default()
            };
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            match cx
                .pre(&origin, EventType::ConversationUpdate, check, |svc| {
                    payload::conversation_update(svc, id, &update)
                })
                .await
            {
                Ok(Some(m)) => m.apply_conversation_update(&mut update),
                Ok(None) => {}
                Err(r) => return r,
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    let c = svc.update_conversation(cx, id, update)?;
                    Ok(render::conversation(links, svc, svc.conversation(&c.sid)?, &me))
                })
                .map(UpstreamResponse::ok)
                .unwrap_or_else(fail)
        }
        ("DELETE", ["Conversations", id]) => {
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            if let Err(r) = cx
                .pre(&origin, EventType::ConversationRemove, check, |svc| {
                    payload::conversation_remove(svc, id)
                })
                .await
            {
                return r;
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    svc.remove_conversation(cx, id)
                })
                .map(|_| UpstreamResponse::ok(json!({})))
                .unwrap_or_else(fail)
        }
        // ---- participants
        ("POST", ["Conversations", id, "Participants"]) => {
            let identity = s(body, "identity");
            let joining = identity.as_deref() == Some(me.as_str());
            let p = NewParticipant {
                identity,
                attributes: s(body, "attributes"),
                binding_address: body
                    .pointer("/messaging_binding/address")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                binding_proxy_address: body
                    .pointer("/messaging_binding/proxy_address")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                binding_projected_address: body
                    .pointer("/messaging_binding/projected_address")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..Default::default()
            };
            let check = |svc: &ChatService| {
                if joining {
                    svc.conversation(id).map(|_| ())
                } else {
                    require_participant(svc, id, &me)
                }
            };
            if let Err(r) = cx
                .pre(&origin, EventType::ParticipantAdd, check, |svc| {
                    payload::participant_add(svc, id, &p)
                })
                .await
            {
                return r;
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    if !joining {
                        require_participant(svc, id, &me)?;
                    }
                    let part = svc.add_participant(cx, id, p)?;
                    Ok(render::participant(svc, &part))
                })
                .map(|v| UpstreamResponse::status(201, v))
                .unwrap_or_else(fail)
        }
        ("POST", ["Conversations", id, "Participants", pid]) => {
            let update = ParticipantUpdate {
                attributes: s(body, "attributes"),
                ..Default::default()
            };
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            if let Err(r) = cx
                .pre(&origin, EventType::ParticipantUpdate, check, |svc| {
                    payload::participant_update(svc, id, pid, &update)
                })
                .await
            {
                return r;
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    let part = svc.update_participant(cx, id, pid, update)?;
                    Ok(render::participant(svc, &part))
                })
                .map(UpstreamResponse::ok)
                .unwrap_or_else(fail)
        }
        ("DELETE", ["Conversations", id, "Participants", pid]) => {
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            if let Err(r) = cx
                .pre(&origin, EventType::ParticipantRemove, check, |svc| {
                    payload::participant_remove(svc, id, pid)
                })
                .await
            {
                return r;
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    svc.remove_participant(cx, id, pid)
                })
                .map(|_| UpstreamResponse::ok(json!({})))
                .unwrap_or_else(fail)
        }
        // ---- messages
        ("POST", ["Conversations", id, "Messages"]) => {
            let media_sids: Vec<String> = match body.get("media_sids") {
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            let mut m = NewMessage {
                author: Some(me.clone()),
                body: s(body, "body"),
                subject: s(body, "subject"),
                attributes: s(body, "attributes"),
                content_sid: s(body, "content_sid"),
                media_sids,
                ..Default::default()
            };
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            match cx
                .pre(&origin, EventType::MessageAdd, check, |svc| {
                    payload::message_add(svc, id, &origin, &m)
                })
                .await
            {
                Ok(Some(mods)) => mods.apply_new_message(&mut m),
                Ok(None) => {}
                Err(r) => return r,
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    let msg = svc.add_message(cx, id, m)?;
                    Ok(render::message(links, &msg))
                })
                .map(|v| UpstreamResponse::status(201, v))
                .unwrap_or_else(fail)
        }
        ("POST", ["Conversations", id, "Messages", mid]) => {
            let mut update = MessageUpdate {
                body: s(body, "body"),
                attributes: s(body, "attributes"),
                updated_by: Some(me.clone()),
                ..Default::default()
            };
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            match cx
                .pre(&origin, EventType::MessageUpdate, check, |svc| {
                    payload::message_update(svc, id, mid, &update)
                })
                .await
            {
                Ok(Some(mods)) => mods.apply_message_update(&mut update),
                Ok(None) => {}
                Err(r) => return r,
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    let msg = svc.update_message(cx, id, mid, update)?;
                    Ok(render::message(links, &msg))
                })
                .map(UpstreamResponse::ok)
                .unwrap_or_else(fail)
        }
        ("DELETE", ["Conversations", id, "Messages", mid]) => {
            let check = |svc: &ChatService| require_participant(svc, id, &me);
            if let Err(r) = cx
                .pre(&origin, EventType::MessageRemove, check, |svc| {
                    payload::message_remove(svc, id, mid)
                })
                .await
            {
                return r;
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    require_participant(svc, id, &me)?;
                    svc.remove_message(cx, id, mid)
                })
                .map(|_| UpstreamResponse::ok(json!({})))
                .unwrap_or_else(fail)
        }
        ("GET", ["Conversations", _, "Messages", _, "Receipts"]) => {
            UpstreamResponse::ok(json!({ "delivery_receipts": [], "meta": { "previous_token": null, "next_token": null } }))
        }
        ("GET", ["Conversations", _, "Messages", _, "ChannelMetadata"]) => {
            UpstreamResponse::error(404, 50530, "No channel metadata for this message")
        }
        ("GET", ["Conversations", _, "MessageRecipients"]) => {
            UpstreamResponse::ok(json!({ "message_recipients": [], "meta": { "previous_token": null, "next_token": null } }))
        }
        // ---- users
        ("GET", ["Users", identity]) => {
            let ensured = account.write(&origin, Some(svc_sid), |svc, cx| {
                if svc.users.get(identity).is_none() && svc.conversations_of(identity).next().is_none() && *identity != me {
                    return Err(DomainError::not_found(crate::domain::Resource::User, format!("Users/{identity}")));
                }
                svc.ensure_user(cx, identity)?;
                Ok(render::user(svc.user(identity)?))
            });
            ensured.map(UpstreamResponse::ok).unwrap_or_else(fail)
        }
        ("POST", ["Users", identity]) => {
            if *identity != me {
                return UpstreamResponse::error(403, 50107, "users may only update themselves");
            }
            let update = UserUpdate {
                friendly_name: s(body, "friendly_name"),
                attributes: s(body, "attributes"),
                ..Default::default()
            };
            // The SDK user exists once its session is open (`session_opened` ensures it).
            if let Err(r) = cx
                .pre(
                    &origin,
                    EventType::UserUpdate,
                    |_| Ok(()),
                    |svc| payload::user_update(svc, identity, &update),
                )
                .await
            {
                return r;
            }
            account
                .write(&origin, Some(svc_sid), |svc, cx| {
                    svc.ensure_user(cx, identity)?;
                    Ok(render::user(&svc.update_user(cx, identity, update)?))
                })
                .map(UpstreamResponse::ok)
                .unwrap_or_else(fail)
        }
        // ---- typing
        ("POST", ["Typing"]) => {
            let Some(conv) = s(body, "ChannelSid") else {
                return UpstreamResponse::error(400, 20001, "ChannelSid is required");
            };
            account
                .write(&origin, Some(svc_sid), |svc, cx| svc.typing(cx, &conv, &me))
                .map(|_| UpstreamResponse::ok(json!({ "typing_timeout": typing_timeout })))
                .unwrap_or_else(fail)
        }
        _ => UpstreamResponse::no_route(&req.method, &req.path),
    }
}
