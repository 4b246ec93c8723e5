//! `/v1/Services`, `/v1/Services/{ChatServiceSid}/Configuration` and the account-wide
//! `/v1/Configuration`.
use axum::Json;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::Routes;
use super::error::ApiError;
use super::form::{Form, Query};
use super::paging::{PageRequest, envelope};
use super::scope::{Scope, authenticate};
use crate::domain::settings::{AccountSettings, ServiceSettings};
use crate::domain::{Cause, ChatService, Configuration};
use crate::server::AppState;

pub(super) fn routes(r: Routes) -> Routes {
    r.plain("/v1/Services", get(list).post(create))
        .plain("/v1/Services/{ChatServiceSid}", get(fetch).delete(remove))
        .plain(
            "/v1/Services/{ChatServiceSid}/Configuration",
            get(fetch_service_configuration).post(update_service_configuration),
        )
        .plain("/v1/Configuration", get(fetch_configuration).post(update_configuration))
}

fn render(base: &str, account: &str, s: &ChatService) -> Value {
    let url = format!("{base}/v1/Services/{}", s.sid);
    json!({
        "account_sid": account,
        "sid": s.sid,
        "friendly_name": s.friendly_name,
        "date_created": s.date_created.rfc3339(),
        "date_updated": s.date_updated.rfc3339(),
        "url": url,
        "links": {
            "conversations": format!("{url}/Conversations"),
            "users": format!("{url}/Users"),
            "roles": format!("{url}/Roles"),
            "bindings": format!("{url}/Bindings"),
            "configuration": format!("{url}/Configuration"),
            "participant_conversations": format!("{url}/ParticipantConversations"),
            "conversation_with_participants": format!("{url}/ConversationWithParticipants"),
        },
    })
}

async fn create(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    Form(f): Form,
) -> Result<impl IntoResponse, ApiError> {
    let account = authenticate(&st, &headers)?;
    let name = f
        .string("FriendlyName")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("FriendlyName is required"))?;
    let svc = account.create_service(&Cause::api(false), &name)?;
    Ok((StatusCode::CREATED, Json(render(&st.base_url, &account.sid, &svc))))
}

async fn list(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    let limits = account.limits().clone();
    let req = PageRequest::parse(&q, limits.page_size_max, limits.default_page_size)?;
    let body = account.read(|s| {
        let slice = req.select_from(&s.services);
        let items = slice.items.iter().map(|(_, svc)| render(&st.base_url, &account.sid, svc)).collect();
        envelope("services", &format!("{}/v1/Services", st.base_url), &[], &req, &slice, items)
    });
    Ok(Json(body))
}

async fn fetch(scope: Scope) -> Result<Json<Value>, ApiError> {
    let v = scope.account.read(|s| {
        s.service(Some(&scope.service_sid))
            .map(|svc| render(&scope.base, &scope.account.sid, svc))
    })?;
    Ok(Json(v))
}

async fn remove(scope: Scope) -> Result<StatusCode, ApiError> {
    scope.account.remove_service(&scope.cause(), &scope.service_sid)?;
    Ok(StatusCode::NO_CONTENT)
}

fn render_service_configuration(scope: &Scope, svc: &ChatService) -> Value {
    let url = scope.service_url("/Configuration");
    json!({
        "chat_service_sid": svc.sid,
        "default_conversation_creator_role_sid": svc.default_conversation_creator_role_sid,
        "default_conversation_role_sid": svc.default_conversation_role_sid,
        "default_chat_service_role_sid": svc.default_service_role_sid,
        "url": url,
        "links": {
            "notifications": format!("{url}/Notifications"),
            "webhooks": format!("{url}/Webhooks"),
        },
        "reachability_enabled": svc.reachability_enabled,
    })
}

async fn fetch_service_configuration(scope: Scope) -> Result<Json<Value>, ApiError> {
    let v = scope.account.read(|s| {
        s.service(Some(&scope.service_sid))
            .map(|svc| render_service_configuration(&scope, svc))
    })?;
    Ok(Json(v))
}

async fn update_service_configuration(scope: Scope, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let settings = ServiceSettings {
        default_conversation_creator_role_sid: f.string("DefaultConversationCreatorRoleSid"),
        default_conversation_role_sid: f.string("DefaultConversationRoleSid"),
        default_service_role_sid: f.string("DefaultChatServiceRoleSid"),
        reachability_enabled: f.bool("ReachabilityEnabled")?,
    };
    let svc = scope.account.configure_service(&scope.cause(), &scope.service_sid, settings)?;
    Ok(Json(render_service_configuration(&scope, &svc)))
}

fn render_configuration(base: &str, account: &str, default_service: &str, c: &Configuration) -> Value {
    let url = format!("{base}/v1/Configuration");
    json!({
        "account_sid": account,
        "default_chat_service_sid": default_service,
        "default_messaging_service_sid": c.default_messaging_service_sid,
        "default_inactive_timer": c.default_inactive_timer,
        "default_closed_timer": c.default_closed_timer,
        "url": url,
        "links": {
            "service": format!("{base}/v1/Services/{default_service}"),
            "webhooks": format!("{url}/Webhooks"),
        },
    })
}

async fn fetch_configuration(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    Ok(Json(account.read(|s| {
        render_configuration(&st.base_url, &account.sid, &s.default_service, &s.configuration)
    })))
}

async fn update_configuration(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    OriginalUri(_uri): OriginalUri,
    Form(f): Form,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    let settings = AccountSettings {
        default_service: f.string("DefaultChatServiceSid").filter(|s| !s.is_empty()),
        default_messaging_service_sid: f.string("DefaultMessagingServiceSid"),
        default_inactive_timer: f.string("DefaultInactiveTimer"),
        default_closed_timer: f.string("DefaultClosedTimer"),
    };
    let (default_service, c) = account.configure(&Cause::api(false), settings)?;
    Ok(Json(render_configuration(&st.base_url, &account.sid, &default_service, &c)))
}
