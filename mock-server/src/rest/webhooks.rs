//! Webhook configuration: `/v1/Configuration/Webhooks` (account-wide),
//! `/v1/Services/{ChatServiceSid}/Configuration/Webhooks` (per service) and
//! `/v1/Conversations/{ConversationSid}/Webhooks` (conversation-scoped, also service-scoped).
use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::error::ApiError;
use super::form::{Form, Params, PathParams, Query};
use super::paging::{PageRequest, envelope};
use super::scope::{Scope, authenticate, on_path};
use super::{Routes, param};
use crate::domain::service::{CreateWebhook, RemoveWebhook, UpdateWebhook};
use crate::domain::settings::HookLevel;
use crate::domain::webhook::{HookConfig, HookConfigUpdate, ScopedWebhook, ScopedWebhookParams};
use crate::domain::{Cause, DomainError};
use crate::server::AppState;

pub(super) fn routes(r: Routes) -> Routes {
    r.plain("/v1/Configuration/Webhooks", get(fetch_account).post(update_account))
        .plain(
            "/v1/Services/{ChatServiceSid}/Configuration/Webhooks",
            get(fetch_service).post(update_service),
        )
        .both("/Conversations/{ConversationSid}/Webhooks", get(list).post(create))
        .both(
            "/Conversations/{ConversationSid}/Webhooks/{Sid}",
            get(fetch).post(update).delete(remove),
        )
}

fn filters_json(c: &HookConfig) -> Value {
    if c.filters.is_empty() { Value::Null } else { json!(c.filters) }
}

/// `Filters` given (possibly as one empty value, which clears them).
fn filters_param(f: &Params, name: &str) -> Option<Vec<String>> {
    f.has(name).then(|| f.all(name).into_iter().filter(|v| !v.is_empty()).collect())
}

fn config_update(f: &Params) -> HookConfigUpdate {
    HookConfigUpdate {
        pre_webhook_url: f.string("PreWebhookUrl"),
        post_webhook_url: f.string("PostWebhookUrl"),
        method: f.string("Method").filter(|m| !m.is_empty()),
        filters: filters_param(f, "Filters"),
        target: f.string("Target"),
    }
}

// ---- account-wide

fn render_account(base: &str, account: &str, c: &HookConfig) -> Value {
    json!({
        "account_sid": account,
        "method": c.method_or_default(),
        "filters": filters_json(c),
        "pre_webhook_url": c.pre_webhook_url,
        "post_webhook_url": c.post_webhook_url,
        "target": c.target.as_deref().unwrap_or("webhook"),
        "url": format!("{base}/v1/Configuration/Webhooks"),
    })
}

async fn fetch_account(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    let v = account.read(|s| render_account(&st.base_url, &account.sid, &s.configuration.webhooks));
    Ok(Json(v))
}

async fn update_account(State(st): State<AppState>, headers: axum::http::HeaderMap, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    let update = config_update(&f);
    let c = account.configure_webhooks(&Cause::api(false), HookLevel::Account, update)?;
    Ok(Json(render_account(&st.base_url, &account.sid, &c)))
}

// ---- per service

fn render_service(scope: &Scope, c: &HookConfig) -> Value {
    json!({
        "account_sid": scope.account.sid,
        "chat_service_sid": scope.service_sid,
        "pre_webhook_url": c.pre_webhook_url,
        "post_webhook_url": c.post_webhook_url,
        "filters": filters_json(c),
        "method": c.method_or_default(),
        "url": scope.service_url("/Configuration/Webhooks"),
    })
}

async fn fetch_service(scope: Scope) -> Result<Json<Value>, ApiError> {
    let v = scope
        .account
        .read(|s| s.service(Some(&scope.service_sid)).map(|svc| render_service(&scope, &svc.webhooks)))?;
    Ok(Json(v))
}

async fn update_service(scope: Scope, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let update = config_update(&f);
    if update.target.is_some() {
        return Err(ApiError::invalid("Target is not a parameter of a service's webhook configuration"));
    }
    let level = HookLevel::Service(Some(&scope.service_sid));
    let c = scope.account.configure_webhooks(&scope.cause(), level, update)?;
    Ok(Json(render_service(&scope, &c)))
}

// ---- conversation-scoped

fn render_scoped(scope: &Scope, w: &ScopedWebhook) -> Value {
    let mut configuration = match w.target.as_str() {
        "studio" => json!({ "flow_sid": w.flow_sid }),
        "trigger" => json!({ "url": w.url, "method": w.method, "filters": w.triggers }),
        _ => json!({ "url": w.url, "method": w.method, "filters": w.filters }),
    };
    if let Some(r) = w.replay_after {
        configuration["replay_after"] = json!(r);
    }
    let mut v = json!({
        "account_sid": scope.account.sid,
        "conversation_sid": w.conversation_sid,
        "sid": w.sid,
        "target": w.target,
        "configuration": configuration,
        "date_created": w.date_created.rfc3339(),
        "date_updated": w.date_updated.rfc3339(),
        "url": scope.url(&format!("/Conversations/{}/Webhooks/{}", w.conversation_sid, w.sid)),
    });
    if scope.scoped() {
        v["chat_service_sid"] = json!(scope.service_sid);
    }
    v
}

fn scoped_params(f: &Params) -> Result<ScopedWebhookParams, ApiError> {
    Ok(ScopedWebhookParams {
        target: f.string("Target"),
        url: f.string("Configuration.Url"),
        method: f.string("Configuration.Method").filter(|m| !m.is_empty()),
        filters: filters_param(f, "Configuration.Filters"),
        triggers: filters_param(f, "Configuration.Triggers"),
        flow_sid: f.string("Configuration.FlowSid"),
        replay_after: f.u64("Configuration.ReplayAfter")?,
    })
}

/// The largest `PageSize` of a conversation's webhook list: Twilio's OpenAPI description
/// (`twilio_conversations_v1.json`, `GET …/Conversations/{ConversationSid}/Webhooks`) gives
/// `maximum: 5`, the most webhooks a conversation may have.
const PAGE_SIZE_MAX: usize = 5;

async fn list(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Query(q): Query) -> Result<Json<Value>, ApiError> {
    let conv = param(&p, "ConversationSid");
    let limits = scope.account.limits().clone();
    let req = PageRequest::parse(&q, PAGE_SIZE_MAX, limits.default_page_size)?;
    let body = scope
        .account
        .read(|s| -> Result<Value, DomainError> {
            let entry = s.service(scope.service.as_deref())?.conversation(conv)?;
            let slice = req.select_from(&entry.webhooks);
            let items = slice.items.iter().map(|(_, w)| render_scoped(&scope, w)).collect();
            let url = scope.url(&format!("/Conversations/{}/Webhooks", entry.conversation.sid));
            Ok(envelope("webhooks", &url, &[], &req, &slice, items))
        })
        .map_err(on_path(uri.path()))?;
    Ok(Json(body))
}

async fn create(
    scope: Scope,
    PathParams(p): PathParams,
    OriginalUri(uri): OriginalUri,
    Form(f): Form,
) -> Result<impl IntoResponse, ApiError> {
    let conv = param(&p, "ConversationSid");
    let params = scoped_params(&f)?;
    let change = CreateWebhook {
        conversation: conv.to_owned(),
        params,
    };
    let w = scope.apply(change).map_err(on_path(uri.path()))?;
    Ok((StatusCode::CREATED, Json(render_scoped(&scope, &w))))
}

async fn fetch(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let w = scope
        .account
        .read(|s| s.service(scope.service.as_deref())?.scoped_webhook(conv, sid).cloned())
        .map_err(on_path(uri.path()))?;
    Ok(Json(render_scoped(&scope, &w)))
}

async fn update(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri, Form(f): Form) -> Result<Json<Value>, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let params = scoped_params(&f)?;
    let change = UpdateWebhook {
        conversation: conv.to_owned(),
        sid: sid.to_owned(),
        params,
    };
    let w = scope.apply(change).map_err(on_path(uri.path()))?;
    Ok(Json(render_scoped(&scope, &w)))
}

async fn remove(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<StatusCode, ApiError> {
    let (conv, sid) = (param(&p, "ConversationSid"), param(&p, "Sid"));
    let change = RemoveWebhook {
        conversation: conv.to_owned(),
        sid: sid.to_owned(),
    };
    scope.apply(change).map_err(on_path(uri.path()))?;
    Ok(StatusCode::NO_CONTENT)
}
