//! `Configuration` and `Me/Conversations`: the caller's own view.
use serde_json::{Value, json};

use super::{Request, UpstreamResponse, render, reply, require_participant};
use crate::domain::participant::ParticipantUpdate;
use crate::domain::service::{EnsureUser, Member, UpdateMembership, unchecked};
use crate::domain::{DomainError, Resource};

pub(super) fn configuration(cx: &Request<'_>) -> UpstreamResponse {
    let ensured = cx.account().apply_guarded(
        &cx.cause,
        cx.service(),
        EnsureUser {
            identity: cx.me.to_owned(),
        },
        unchecked,
        |svc, user| Ok((user.sid, svc.reachability_enabled)),
    );
    reply(
        200,
        ensured.map(|(user, reachability)| render::configuration(cx.links, cx.caller, &user, reachability)),
    )
}

pub(super) fn list(cx: &Request<'_>) -> UpstreamResponse {
    let req = cx.req;
    let size = req
        .param("PageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let after = req.param("PageToken").and_then(|t| t.parse::<u64>().ok());
    cx.read(|svc| {
        let all: Vec<_> = svc
            .conversations_of(cx.me)
            .filter(|(seq, _)| after.is_none_or(|a| *seq > a))
            .take(size + 1)
            .collect();
        let more = all.len() > size;
        let page = &all[..all.len().min(size)];
        let next = if more { page.last().map(|(seq, _)| seq.to_string()) } else { None };
        let list: Vec<Value> = page.iter().map(|(_, e)| render::conversation(cx.links, svc, e, cx.me)).collect();
        Ok(json!({ "conversations": list, "meta": { "next_token": next, "previous_token": null, "page_size": size } }))
    })
}

pub(super) fn fetch(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    cx.read(|svc| {
        let e = svc.conversation(id)?;
        if e.participants.get(cx.me).is_none() {
            return Err(DomainError::not_found(Resource::Conversation, format!("Me/Conversations/{id}")));
        }
        Ok(render::conversation(cx.links, svc, e, cx.me))
    })
}

/// The read horizon and notification level (Twilio vets neither with a webhook).
pub(super) fn update(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    let update = ParticipantUpdate {
        last_read_message_index: match cx.body.get("last_read_message_index") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => match v.as_u64() {
                Some(n) => Some(Some(n)),
                None => {
                    return UpstreamResponse::error(400, 20001, "last_read_message_index must be a non-negative integer or null");
                }
            },
        },
        notification_level: cx.s("notification_level"),
        ..Default::default()
    };
    let change = UpdateMembership {
        conversation: id.to_owned(),
        member: Member::Participant(cx.me.to_owned()),
        update,
    };
    let r = cx.account().apply_guarded(
        &cx.cause,
        cx.service(),
        change,
        |svc| require_participant(svc, id, cx.me),
        |svc, _| Ok(render::conversation(cx.links, svc, svc.conversation(id)?, cx.me)),
    );
    reply(200, r)
}
