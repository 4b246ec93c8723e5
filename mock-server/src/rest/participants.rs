//! `/v1/Conversations/{ConversationSid}/Participants` (and the service-scoped tree).
use axum::Json;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::error::ApiError;
use super::form::{Form, PathParams, Query};
use super::scope::{Scope, on_path};
use super::{Routes, param};
use crate::domain::participant::{NewParticipant, Participant, ParticipantUpdate};
use crate::domain::service::{AddParticipant, RemoveParticipant, UpdateParticipant};

pub(super) fn routes(r: Routes) -> Routes {
    r.both(
        "/Conversations/{ConversationSid}/Participants",
        axum::routing::get(list).post(create),
    )
    .both(
        "/Conversations/{ConversationSid}/Participants/{Sid}",
        axum::routing::get(fetch).post(update).delete(remove),
    )
}

pub(super) fn binding_json(p: &Participant) -> Value {
    match &p.messaging_binding {
        None => Value::Null,
        Some(b) => {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), json!(b.kind));
            m.insert("address".into(), json!(b.address));
            if let Some(x) = &b.proxy_address {
                m.insert("proxy_address".into(), json!(x));
            }
            if let Some(x) = &b.projected_address {
                m.insert("projected_address".into(), json!(x));
            }
            Value::Object(m)
        }
    }
}

pub(super) fn render(scope: &Scope, p: &Participant) -> Value {
    let mut v = json!({
        "account_sid": scope.account.sid,
        "conversation_sid": p.conversation_sid,
        "sid": p.sid,
        "identity": p.identity,
        "attributes": p.attributes,
        "messaging_binding": binding_json(p),
        "role_sid": p.role_sid,
        "date_created": p.date_created.rfc3339(),
        "date_updated": p.date_updated.rfc3339(),
        "url": scope.url(&format!("/Conversations/{}/Participants/{}", p.conversation_sid, p.sid)),
        "last_read_message_index": p.last_read_message_index,
        "last_read_timestamp": p.last_read_timestamp.map(|t| t.rfc3339()),
    });
    if scope.scoped() {
        v["chat_service_sid"] = json!(scope.service_sid);
    }
    v
}

async fn create(
    scope: Scope,
    PathParams(p): PathParams,
    OriginalUri(uri): OriginalUri,
    Form(f): Form,
) -> Result<impl IntoResponse, ApiError> {
    let conv = param(&p, "ConversationSid");
    let req = NewParticipant {
        identity: f.string("Identity"),
        binding_address: f.string("MessagingBinding.Address"),
        binding_proxy_address: f.string("MessagingBinding.ProxyAddress"),
        binding_projected_address: f.string("MessagingBinding.ProjectedAddress"),
        attributes: f.string("Attributes"),
        role_sid: f.string("RoleSid"),
        date_created: f.date("DateCreated")?,
        date_updated: f.date("DateUpdated")?,
    };
    let change = AddParticipant {
        conversation: conv.to_owned(),
        participant: req,
    };
    let part = scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok((StatusCode::CREATED, Json(render(&scope, &part))))
}

async fn list(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Query(q): Query) -> Result<Json<Value>, ApiError> {
    let conv = param(&p, "ConversationSid");
    Ok(Json(super::conversation_page(
        &scope,
        &uri,
        conv,
        &q,
        "Participants",
        |e| &e.participants,
        render,
    )?))
}

async fn fetch(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let part = scope
        .account
        .read(|s| s.service(scope.service.as_deref())?.participant(conv, sid).cloned())
        .map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &part)))
}

async fn update(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let req = ParticipantUpdate {
        attributes: f.string("Attributes"),
        role_sid: f.string("RoleSid"),
        last_read_message_index: if f.has("LastReadMessageIndex") {
            Some(f.u64("LastReadMessageIndex")?)
        } else {
            None
        },
        last_read_timestamp: f.date("LastReadTimestamp")?,
        notification_level: None,
        date_created: f.date("DateCreated")?,
        date_updated: f.date("DateUpdated")?,
    };
    let change = UpdateParticipant {
        conversation: conv.to_owned(),
        participant: sid.to_owned(),
        update: req,
    };
    let part = scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &part)))
}

async fn remove(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<StatusCode, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let change = RemoveParticipant {
        conversation: conv.to_owned(),
        participant: sid.to_owned(),
    };
    scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(StatusCode::NO_CONTENT)
}
