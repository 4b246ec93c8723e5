//! `Conversations/{id}/Participants`: join or add, update, leave or remove.
use serde_json::{Value, json};

use super::{Request, UpstreamResponse, render, reply, require_participant};
use crate::domain::ChatService;
use crate::domain::participant::{NewParticipant, ParticipantUpdate};
use crate::domain::service::{AddParticipant, RemoveParticipant, UpdateParticipant};

pub(super) async fn add(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    let identity = cx.s("identity");
    // Joining needs only the conversation; adding someone else needs membership.
    let joining = identity.as_deref() == Some(cx.me);
    let binding = |k: &str| {
        cx.body
            .pointer(&format!("/messaging_binding/{k}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let change = AddParticipant {
        conversation: id.to_owned(),
        participant: NewParticipant {
            identity,
            attributes: cx.s("attributes"),
            binding_address: binding("address"),
            binding_proxy_address: binding("proxy_address"),
            binding_projected_address: binding("projected_address"),
            ..Default::default()
        },
    };
    let check = |svc: &ChatService| {
        if joining {
            svc.conversation(id).map(|_| ())
        } else {
            require_participant(svc, id, cx.me)
        }
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, check, |svc, p| Ok(render::participant(svc, &p)))
        .await;
    reply(201, r)
}

pub(super) async fn update(cx: &Request<'_>, id: &str, pid: &str) -> UpstreamResponse {
    let change = UpdateParticipant {
        conversation: id.to_owned(),
        participant: pid.to_owned(),
        update: ParticipantUpdate {
            attributes: cx.s("attributes"),
            ..Default::default()
        },
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |svc, p| {
            Ok(render::participant(svc, &p))
        })
        .await;
    reply(200, r)
}

pub(super) async fn remove(cx: &Request<'_>, id: &str, pid: &str) -> UpstreamResponse {
    let change = RemoveParticipant {
        conversation: id.to_owned(),
        participant: pid.to_owned(),
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |_, _| Ok(json!({})))
        .await;
    reply(200, r)
}
