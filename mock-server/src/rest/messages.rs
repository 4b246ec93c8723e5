//! `/v1/Conversations/{ConversationSid}/Messages` (and the service-scoped tree).
use axum::Json;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::error::ApiError;
use super::form::{Form, PathParams, Query};
use super::scope::{Scope, on_path};
use super::{Routes, param};
use crate::domain::message::{Message, MessageUpdate, NewMessage};
use crate::domain::service::{AddMessage, RemoveMessage, UpdateMessage};

pub(super) fn routes(r: Routes) -> Routes {
    r.both("/Conversations/{ConversationSid}/Messages", axum::routing::get(list).post(create))
        .both(
            "/Conversations/{ConversationSid}/Messages/{Sid}",
            axum::routing::get(fetch).post(update).delete(remove),
        )
}

pub(super) fn render(scope: &Scope, m: &Message) -> Value {
    let url = scope.url(&format!("/Conversations/{}/Messages/{}", m.conversation_sid, m.sid));
    let media = if m.media.is_empty() {
        Value::Null
    } else {
        Value::Array(
            m.media
                .iter()
                .map(|x| json!({"sid": x.sid, "size": x.size, "content_type": x.content_type, "filename": x.filename, "category": x.category}))
                .collect(),
        )
    };
    let mut v = json!({
        "account_sid": scope.account.sid,
        "conversation_sid": m.conversation_sid,
        "sid": m.sid,
        "index": m.index,
        "author": m.author,
        "body": m.body,
        "media": media,
        "attributes": m.attributes,
        "participant_sid": m.participant_sid,
        "date_created": m.date_created.rfc3339(),
        "date_updated": m.date_updated.rfc3339(),
        "url": url,
        "delivery": null,
        "links": {
            "delivery_receipts": format!("{url}/Receipts"),
            "channel_metadata": format!("{url}/ChannelMetadata"),
        },
        "content_sid": m.content_sid,
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
    let req = NewMessage {
        author: f.string("Author"),
        body: f.string("Body"),
        subject: f.string("Subject"),
        attributes: f.string("Attributes"),
        media_sids: f.all("MediaSid").into_iter().filter(|s| !s.is_empty()).collect(),
        content_sid: f.string("ContentSid"),
        date_created: f.date("DateCreated")?,
        date_updated: f.date("DateUpdated")?,
    };
    let change = AddMessage {
        conversation: conv.to_owned(),
        message: req,
    };
    let m = scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok((StatusCode::CREATED, Json(render(&scope, &m))))
}

async fn list(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Query(q): Query) -> Result<Json<Value>, ApiError> {
    let conv = param(&p, "ConversationSid");
    Ok(Json(super::conversation_page(
        &scope,
        &uri,
        conv,
        &q,
        "Messages",
        |e| &e.messages,
        render,
    )?))
}

async fn fetch(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let m = scope
        .account
        .read(|s| s.service(scope.service.as_deref())?.message(conv, sid).cloned())
        .map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &m)))
}

async fn update(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let update = MessageUpdate {
        author: f.string("Author"),
        body: f.string("Body"),
        subject: f.string("Subject"),
        attributes: f.string("Attributes"),
        date_created: f.date("DateCreated")?,
        date_updated: f.date("DateUpdated")?,
        updated_by: None,
    };
    let change = UpdateMessage {
        conversation: conv.to_owned(),
        message: sid.to_owned(),
        update,
    };
    let m = scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &m)))
}

async fn remove(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<StatusCode, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let change = RemoveMessage {
        conversation: conv.to_owned(),
        message: sid.to_owned(),
    };
    scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(StatusCode::NO_CONTENT)
}
