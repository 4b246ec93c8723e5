//! `/v1/Users`, `/v1/Users/{UserSid}/Conversations` (and the service-scoped trees).
use axum::Json;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::conversations::timers_json;
use super::error::ApiError;
use super::form::{Form, PathParams, Query};
use super::paging::{PageRequest, envelope};
use super::scope::{Scope, on_path};
use super::{Routes, param};
use crate::domain::conversation::ConversationEntry;
use crate::domain::participant::ParticipantUpdate;
use crate::domain::service::{CreateUser, LeaveConversation, Member, RemoveUser, UpdateMembership, UpdateUser};
use crate::domain::user::{NewUser, User, UserUpdate};
use crate::domain::{ChatService, DomainError, Resource};

pub(super) fn routes(r: Routes) -> Routes {
    r.both("/Users", axum::routing::get(list).post(create))
        .both("/Users/{UserSid}", axum::routing::get(fetch).post(update).delete(remove))
        .both("/Users/{UserSid}/Conversations", axum::routing::get(list_conversations))
        .both(
            "/Users/{UserSid}/Conversations/{ConversationSid}",
            axum::routing::get(fetch_conversation)
                .post(update_conversation)
                .delete(leave_conversation),
        )
}

fn render(scope: &Scope, u: &User) -> Value {
    let url = scope.url(&format!("/Users/{}", u.sid));
    json!({
        "sid": u.sid,
        "account_sid": scope.account.sid,
        "chat_service_sid": scope.service_sid,
        "role_sid": u.role_sid,
        "identity": u.identity,
        "friendly_name": u.friendly_name,
        "attributes": u.attributes,
        "is_online": u.is_online,
        "is_notifiable": u.is_notifiable,
        "date_created": u.date_created.rfc3339(),
        "date_updated": u.date_updated.rfc3339(),
        "url": url,
        "links": { "user_conversations": format!("{url}/Conversations") },
    })
}

/// The user-conversation view: a conversation as seen by one of its participants.
fn render_user_conversation(scope: &Scope, user: &User, e: &ConversationEntry) -> Option<Value> {
    let p = e.participants.get(&user.identity)?;
    let c = &e.conversation;
    // Messages after the read horizon that still exist (removed ones are not unread).
    let unread = p.last_read_message_index.map(|read| e.messages.count_after(read));
    Some(json!({
        "account_sid": scope.account.sid,
        "chat_service_sid": scope.service_sid,
        "conversation_sid": c.sid,
        "unread_messages_count": unread,
        "last_read_message_index": p.last_read_message_index,
        "participant_sid": p.sid,
        "user_sid": user.sid,
        "friendly_name": c.friendly_name,
        "conversation_state": c.state.as_str(),
        "timers": timers_json(&c.timers),
        "attributes": c.attributes,
        "date_created": c.date_created.rfc3339(),
        "date_updated": c.date_updated.rfc3339(),
        "created_by": c.creator(),
        "notification_level": p.notification_level,
        "unique_name": c.unique_name,
        "url": scope.url(&format!("/Users/{}/Conversations/{}", user.sid, c.sid)),
        "links": {
            "participant": scope.url(&format!("/Conversations/{}/Participants/{}", c.sid, p.sid)),
            "conversation": scope.url(&format!("/Conversations/{}", c.sid)),
        },
    }))
}

async fn create(scope: Scope, Form(f): Form) -> Result<impl IntoResponse, ApiError> {
    let req = NewUser {
        identity: f.string("Identity").unwrap_or_default(),
        friendly_name: f.string("FriendlyName"),
        attributes: f.string("Attributes"),
        role_sid: f.string("RoleSid"),
    };
    let u = scope.apply(CreateUser(req))?;
    Ok((StatusCode::CREATED, Json(render(&scope, &u))))
}

async fn list(scope: Scope, Query(q): Query) -> Result<Json<Value>, ApiError> {
    let limits = scope.account.limits().clone();
    let req = PageRequest::parse(&q, limits.small_page_size_max, limits.default_page_size)?;
    let body = scope.account.read(|s| -> Result<Value, DomainError> {
        let svc = s.service(scope.service.as_deref())?;
        let slice = req.select_from(&svc.users);
        let items = slice.items.iter().map(|(_, u)| render(&scope, u)).collect();
        Ok(envelope("users", &scope.url("/Users"), &[], &req, &slice, items))
    })?;
    Ok(Json(body))
}

async fn fetch(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let sid = param(&p, "UserSid");
    let u = scope
        .account
        .read(|s| s.service(scope.service.as_deref())?.user(sid).cloned())
        .map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &u)))
}

async fn update(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let sid = param(&p, "UserSid");
    let req = UserUpdate {
        friendly_name: f.string("FriendlyName"),
        attributes: f.string("Attributes"),
        role_sid: f.string("RoleSid"),
        is_online: None,
    };
    let change = UpdateUser {
        user: sid.to_owned(),
        update: req,
    };
    let u = scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &u)))
}

async fn remove(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<StatusCode, ApiError> {
    let sid = param(&p, "UserSid");
    scope.apply(RemoveUser { user: sid.to_owned() }).map_err(on_path(uri.path()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_conversations(
    scope: Scope,
    PathParams(p): PathParams,
    OriginalUri(uri): OriginalUri,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let sid = param(&p, "UserSid");
    let limits = scope.account.limits().clone();
    let req = PageRequest::parse(&q, limits.small_page_size_max, limits.default_page_size)?;
    let body = scope
        .account
        .read(|s| -> Result<Value, DomainError> {
            let svc = s.service(scope.service.as_deref())?;
            let user = svc.user(sid)?;
            let all: Vec<(u64, &ConversationEntry)> = svc.conversations_of(&user.identity).collect();
            let slice = req.select_sorted(&all);
            let items = slice
                .items
                .iter()
                .filter_map(|(_, e)| render_user_conversation(&scope, user, e))
                .collect();
            Ok(envelope(
                "conversations",
                &scope.url(&format!("/Users/{}/Conversations", user.sid)),
                &[],
                &req,
                &slice,
                items,
            ))
        })
        .map_err(on_path(uri.path()))?;
    Ok(Json(body))
}

fn membership<'a>(svc: &'a ChatService, user: &str, conv: &str, path: &str) -> Result<(&'a User, &'a ConversationEntry), DomainError> {
    let u = svc.user(user)?;
    let e = svc.conversation(conv)?;
    if e.participants.get(&u.identity).is_none() {
        return Err(DomainError::not_found(Resource::Participant, path.to_owned()));
    }
    Ok((u, e))
}

async fn fetch_conversation(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let (user, conv) = (param(&p, "UserSid"), param(&p, "ConversationSid"));
    let v = scope
        .account
        .read(|s| -> Result<Value, DomainError> {
            let svc = s.service(scope.service.as_deref())?;
            let (u, e) = membership(svc, user, conv, uri.path())?;
            Ok(render_user_conversation(&scope, u, e).unwrap_or(Value::Null))
        })
        .map_err(on_path(uri.path()))?;
    Ok(Json(v))
}

async fn update_conversation(
    scope: Scope,
    PathParams(p): PathParams,
    OriginalUri(uri): OriginalUri,
    Form(f): Form,
) -> Result<Json<Value>, ApiError> {
    let (user, conv) = (param(&p, "UserSid"), param(&p, "ConversationSid"));
    let req = ParticipantUpdate {
        last_read_message_index: if f.has("LastReadMessageIndex") {
            Some(f.u64("LastReadMessageIndex")?)
        } else {
            None
        },
        last_read_timestamp: f.date("LastReadTimestamp")?,
        notification_level: f.string("NotificationLevel"),
        ..Default::default()
    };
    let path = uri.path().to_owned();
    let change = UpdateMembership {
        conversation: conv.to_owned(),
        member: Member::User(user.to_owned()),
        update: req,
    };
    let v = scope
        .account
        .apply_guarded(
            &scope.cause(),
            scope.service.as_deref(),
            change,
            |svc| membership(svc, user, conv, &path).map(|_| ()),
            |svc, _| {
                let (u, e) = membership(svc, user, conv, &path)?;
                Ok(render_user_conversation(&scope, u, e).unwrap_or(Value::Null))
            },
        )
        .map_err(on_path(uri.path()))?;
    Ok(Json(v))
}

async fn leave_conversation(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<StatusCode, ApiError> {
    let (user, conv) = (param(&p, "UserSid"), param(&p, "ConversationSid"));
    let path = uri.path().to_owned();
    let change = LeaveConversation {
        conversation: conv.to_owned(),
        user: user.to_owned(),
    };
    scope
        .account
        .apply_guarded(
            &scope.cause(),
            scope.service.as_deref(),
            change,
            |svc| membership(svc, user, conv, &path).map(|_| ()),
            |_, _| Ok(()),
        )
        .map_err(on_path(uri.path()))?;
    Ok(StatusCode::NO_CONTENT)
}
