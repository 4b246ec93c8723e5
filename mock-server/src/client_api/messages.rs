//! `Conversations/{id}/Messages`: send, edit, remove.
use serde_json::{Value, json};

use super::{Request, UpstreamResponse, render, reply};
use crate::domain::message::{MessageUpdate, NewMessage};
use crate::domain::service::{AddMessage, RemoveMessage, UpdateMessage};

pub(super) async fn add(cx: &Request<'_>, id: &str) -> UpstreamResponse {
    let media_sids: Vec<String> = match cx.body.get("media_sids") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let change = AddMessage {
        conversation: id.to_owned(),
        message: NewMessage {
            author: Some(cx.me.to_owned()),
            body: cx.s("body"),
            subject: cx.s("subject"),
            attributes: cx.s("attributes"),
            content_sid: cx.s("content_sid"),
            media_sids,
            ..Default::default()
        },
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |_, m| {
            Ok(render::message(cx.links, &m))
        })
        .await;
    reply(201, r)
}

pub(super) async fn update(cx: &Request<'_>, id: &str, mid: &str) -> UpstreamResponse {
    let change = UpdateMessage {
        conversation: id.to_owned(),
        message: mid.to_owned(),
        update: MessageUpdate {
            body: cx.s("body"),
            attributes: cx.s("attributes"),
            updated_by: Some(cx.me.to_owned()),
            ..Default::default()
        },
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |_, m| {
            Ok(render::message(cx.links, &m))
        })
        .await;
    reply(200, r)
}

pub(super) async fn remove(cx: &Request<'_>, id: &str, mid: &str) -> UpstreamResponse {
    let change = RemoveMessage {
        conversation: id.to_owned(),
        message: mid.to_owned(),
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, cx.member_of(id), |_, _| Ok(json!({})))
        .await;
    reply(200, r)
}
