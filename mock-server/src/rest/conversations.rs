//! `/v1/Conversations` and `/v1/Services/{ChatServiceSid}/Conversations`.
use axum::Json;
use axum::extract::OriginalUri;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::form::{Form, PathParams, Query};
use super::paging::{PageRequest, page};
use super::scope::{Scope, on_path};
use super::{Routes, param};
use crate::domain::conversation::{Conversation, ConversationState, ConversationUpdate, NewConversation, Timers};
use crate::domain::service::{AddConversation, RemoveConversation, UpdateConversation};

pub(super) fn routes(r: Routes) -> Routes {
    r.both("/Conversations", axum::routing::get(list).post(create))
        .both("/Conversations/{Sid}", axum::routing::get(fetch).post(update).delete(remove))
}

pub(super) fn timers_json(t: &Timers) -> Value {
    serde_json::to_value(TimersView::of(t)).unwrap_or(Value::Null)
}

/// `timers`: only the timers that are set.
#[derive(Serialize)]
struct TimersView {
    #[serde(skip_serializing_if = "Option::is_none")]
    date_inactive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_closed: Option<String>,
}

impl TimersView {
    fn of(t: &Timers) -> TimersView {
        TimersView {
            date_inactive: t.date_inactive.map(|d| d.rfc3339()),
            date_closed: t.date_closed.map(|d| d.rfc3339()),
        }
    }
}

/// A conversation as the REST API shows it. Lists serialize it straight into the response;
/// single answers go through [`render`].
#[derive(Serialize)]
pub(super) struct ConversationView<'a> {
    account_sid: &'a str,
    chat_service_sid: &'a str,
    messaging_service_sid: &'a Option<String>,
    sid: &'a str,
    friendly_name: &'a Option<String>,
    unique_name: &'a Option<String>,
    attributes: &'a str,
    state: &'static str,
    date_created: String,
    date_updated: String,
    timers: TimersView,
    url: String,
    links: ConversationLinks,
    bindings: Option<()>,
}

#[derive(Serialize)]
struct ConversationLinks {
    participants: String,
    messages: String,
    webhooks: String,
    export: String,
}

impl<'a> ConversationView<'a> {
    pub(super) fn of(scope: &'a Scope, c: &'a Conversation) -> ConversationView<'a> {
        let url = scope.url(&format!("/Conversations/{}", c.sid));
        ConversationView {
            account_sid: &scope.account.sid,
            chat_service_sid: &scope.service_sid,
            messaging_service_sid: &c.messaging_service_sid,
            sid: &c.sid,
            friendly_name: &c.friendly_name,
            unique_name: &c.unique_name,
            attributes: &c.attributes,
            state: c.state.as_str(),
            date_created: c.date_created.rfc3339(),
            date_updated: c.date_updated.rfc3339(),
            timers: TimersView::of(&c.timers),
            links: ConversationLinks {
                participants: format!("{url}/Participants"),
                messages: format!("{url}/Messages"),
                webhooks: format!("{url}/Webhooks"),
                export: format!("{url}/Export"),
            },
            url,
            bindings: None,
        }
    }
}

pub(super) fn render(scope: &Scope, c: &Conversation) -> Value {
    serde_json::to_value(ConversationView::of(scope, c)).unwrap_or(Value::Null)
}

fn state_param(p: &super::form::Params) -> Result<Option<ConversationState>, ApiError> {
    p.get("State")
        .filter(|s| !s.is_empty())
        .map(ConversationState::parse)
        .transpose()
        .map_err(ApiError::from)
}

async fn create(scope: Scope, OriginalUri(uri): OriginalUri, Form(p): Form) -> Result<impl IntoResponse, ApiError> {
    let req = NewConversation {
        friendly_name: p.string("FriendlyName"),
        unique_name: p.string("UniqueName"),
        attributes: p.string("Attributes"),
        state: state_param(&p)?,
        messaging_service_sid: p.string("MessagingServiceSid"),
        date_created: p.date("DateCreated")?,
        date_updated: p.date("DateUpdated")?,
        created_by: None,
    };
    let c = scope.perform(AddConversation(req)).await.map_err(on_path(uri.path()))?;
    Ok((StatusCode::CREATED, Json(render(&scope, &c))))
}

async fn list(scope: Scope, OriginalUri(uri): OriginalUri, Query(q): Query) -> Result<impl IntoResponse, ApiError> {
    let limits = scope.account.limits().clone();
    let req = PageRequest::parse(&q, limits.page_size_max, limits.default_page_size)?;
    let state = state_param(&q)?;
    let start = q.date("StartDate")?;
    let end = q.date("EndDate")?;
    // The page depends on the state and on what the key names: where it is served from (base
    // URL, service prefix) and the query as sent. Kept until the account's state next changes.
    let key = format!("{}{}/Conversations?{}", scope.base, scope.prefix, uri.query().unwrap_or_default());
    let body = scope.account.read_memo(&key, |s| -> Result<Vec<u8>, ApiError> {
        let svc = s.service(scope.service.as_deref())?;
        let filtered = state.is_some() || start.is_some() || end.is_some();
        let slice = if filtered {
            let all: Vec<(u64, &Conversation)> = svc
                .conversations
                .iter()
                .map(|(k, e)| (k, &e.conversation))
                .filter(|(_, c)| {
                    state.is_none_or(|st| c.state == st)
                        && start.is_none_or(|d| c.date_created >= d)
                        && end.is_none_or(|d| c.date_created <= d)
                })
                .collect();
            req.select_sorted(&all)
        } else {
            let s = req.select_from(&svc.conversations);
            super::paging::PageSlice {
                items: s.items.into_iter().map(|(k, e)| (k, &e.conversation)).collect(),
                has_next: s.has_next,
                has_previous: s.has_previous,
            }
        };
        // Serialized here, from views borrowing the state: the hottest list builds no `Value`.
        let items: Vec<ConversationView> = slice.items.iter().map(|(_, c)| ConversationView::of(&scope, c)).collect();
        let mut extra = Vec::new();
        for k in ["State", "StartDate", "EndDate"] {
            if let Some(v) = q.string(k) {
                extra.push((k, v));
            }
        }
        let list = page("conversations", &scope.url("/Conversations"), &extra, &req, &slice, items);
        serde_json::to_vec(&list).map_err(|e| ApiError::new(500, 20500, e.to_string()))
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

async fn fetch(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let sid = param(&p, "Sid");
    let c = scope
        .account
        .read(|s| {
            s.service(scope.service.as_deref())?
                .conversation(sid)
                .map(|e| e.conversation.clone())
        })
        .map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &c)))
}

async fn update(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let sid = param(&p, "Sid");
    let update = ConversationUpdate {
        friendly_name: f.string("FriendlyName"),
        unique_name: f.string("UniqueName"),
        attributes: f.string("Attributes"),
        state: state_param(&f)?,
        messaging_service_sid: f.string("MessagingServiceSid"),
        date_created: f.date("DateCreated")?,
        date_updated: f.date("DateUpdated")?,
    };
    let change = UpdateConversation {
        conversation: sid.to_owned(),
        update,
    };
    let c = scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &c)))
}

async fn remove(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<StatusCode, ApiError> {
    let sid = param(&p, "Sid");
    let change = RemoveConversation {
        conversation: sid.to_owned(),
    };
    scope.perform(change).await.map_err(on_path(uri.path()))?;
    Ok(StatusCode::NO_CONTENT)
}
