//! `Conversations`: create, fetch, update, remove.
use serde_json::json;

use super::{Request, UpstreamResponse, render, reply};
use crate::domain::conversation::{ConversationUpdate, NewConversation};
use crate::domain::service::{AddConversation, RemoveConversation, UpdateConversation, unchecked};

pub(super) async fn create(cx: &Request<'_>) -> UpstreamResponse {
    let req = NewConversation {
        friendly_name: cx.s("friendly_name"),
        unique_name: cx.s("unique_name"),
        attributes: cx.s("attributes"),
        created_by: Some(cx.me.to_owned()),
        ..Default::default()
    };
    // Like Twilio: creating does not join; the SDK app calls `join()` next. The creator may read
    // the conversation's objects meanwhile (see `sync::query::can_read`).
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), AddConversation(req), unchecked, |svc, c| {
            Ok(render::conversation(cx.links, svc, svc.conversation(&c.sid)?, cx.me))
        })
        .await;
    reply(201, r)
}

pub(super) fn fetch(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    cx.read(|svc| Ok(render::conversation(cx.links, svc, svc.conversation(id)?, cx.me)))
}

pub(super) async fn update(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    let change = UpdateConversation {
        conversation: id.to_owned(),
        update: ConversationUpdate {
            friendly_name: cx.s("friendly_name"),
            unique_name: cx.s("unique_name"),
            attributes: cx.s("attributes"),
            ..Default::default()
        },
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |svc, c| {
            Ok(render::conversation(cx.links, svc, svc.conversation(&c.sid)?, cx.me))
        })
        .await;
    reply(200, r)
}

pub(super) async fn remove(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    let change = RemoveConversation {
        conversation: id.to_owned(),
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |_, _| Ok(json!({})))
        .await;
    reply(200, r)
}
