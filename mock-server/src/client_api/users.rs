//! `Users/{identity}` and `Typing`.
use serde_json::json;

use super::{Request, UpstreamResponse, render, reply};
use crate::domain::service::{EnsureUser, Typing, UpdateUser, unchecked};
use crate::domain::user::UserUpdate;
use crate::domain::{ChatService, DomainError, Resource};

/// A user the caller may know of: one that exists, is in a conversation, or is the caller (its
/// user is created on first sight, as Twilio does).
pub(super) fn fetch(cx: &Request<'_>, identity: &str) -> UpstreamResponse {
    let known = |svc: &ChatService| {
        if svc.users.get(identity).is_none() && svc.conversations_of(identity).next().is_none() && identity != cx.me {
            return Err(DomainError::not_found(Resource::User, format!("Users/{identity}")));
        }
        Ok(())
    };
    let change = EnsureUser {
        identity: identity.to_owned(),
    };
    reply(
        200,
        cx.account()
            .apply_guarded(&cx.cause, cx.service(), change, known, |_, u| Ok(render::user(&u))),
    )
}

pub(super) async fn update(cx: &Request<'_>, identity: &str) -> UpstreamResponse {
    if identity != cx.me {
        return UpstreamResponse::error(403, 50107, "users may only update themselves");
    }
    // The SDK user exists once its session is open (`session_opened` ensures it); ensured again
    // here so that the update always has its user.
    let ensure = EnsureUser {
        identity: identity.to_owned(),
    };
    if let Err(e) = cx.account().apply(&cx.cause, cx.service(), ensure) {
        return super::fail(e);
    }
    let change = UpdateUser {
        user: identity.to_owned(),
        update: UserUpdate {
            friendly_name: cx.s("friendly_name"),
            attributes: cx.s("attributes"),
            ..Default::default()
        },
    };
    let r = cx
        .account()
        .perform_guarded(&cx.cause, cx.service(), change, unchecked, |_, u| Ok(render::user(&u)))
        .await;
    reply(200, r)
}

pub(super) fn typing(cx: &Request<'_>) -> UpstreamResponse {
    let Some(conversation) = cx.s("ChannelSid") else {
        return UpstreamResponse::error(400, 20001, "ChannelSid is required");
    };
    let change = Typing {
        conversation,
        identity: cx.me.to_owned(),
    };
    match cx.account().apply(&cx.cause, cx.service(), change) {
        Ok(()) => UpstreamResponse::ok(json!({ "typing_timeout": cx.typing_timeout })),
        Err(e) => super::fail(e),
    }
}
