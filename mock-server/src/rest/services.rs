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
use crate::domain::{ChatService, DomainError, Resource};
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
    let svc = account.write_account(|s, now| Ok(s.create_service(&name, now)))?;
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
    let sid = scope.service_sid.clone();
    scope.account.write_account(|s, _| {
        if s.default_service == sid {
            return Err(DomainError::invalid(
                "ChatServiceSid",
                "the account's default Conversations service cannot be deleted; make another service the default first",
            ));
        }
        let seq = s
            .services
            .seq_of_sid(&sid)
            .ok_or_else(|| DomainError::not_found(Resource::Service, format!("/Services/{sid}")))?;
        s.services.remove_seq(seq);
        Ok(())
    })?;
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
    let reach = f.bool("ReachabilityEnabled")?;
    let roles = [
        f.string("DefaultConversationCreatorRoleSid"),
        f.string("DefaultConversationRoleSid"),
        f.string("DefaultChatServiceRoleSid"),
    ];
    let sid = scope.service_sid.clone();
    let v = scope.account.write_account(|s, now| {
        let seq = s
            .services
            .seq_of_sid(&sid)
            .ok_or_else(|| DomainError::not_found(Resource::Service, format!("/Services/{sid}")))?;
        let svc = s.services.get_seq_mut(seq).expect("seq from lookup");
        for r in roles.iter().flatten() {
            svc.role_param(r, "RoleSid")?;
        }
        let [creator, conv, service] = roles;
        if let Some(r) = creator {
            svc.default_conversation_creator_role_sid = r;
        }
        if let Some(r) = conv {
            svc.default_conversation_role_sid = r;
        }
        if let Some(r) = service {
            svc.default_service_role_sid = r;
        }
        if let Some(b) = reach {
            svc.reachability_enabled = b;
        }
        svc.date_updated = now;
        Ok(render_service_configuration(&scope, svc))
    })?;
    Ok(Json(v))
}

fn render_configuration(base: &str, account: &str, s: &crate::domain::AccountState) -> Value {
    let url = format!("{base}/v1/Configuration");
    json!({
        "account_sid": account,
        "default_chat_service_sid": s.default_service,
        "default_messaging_service_sid": s.configuration.default_messaging_service_sid,
        "default_inactive_timer": s.configuration.default_inactive_timer,
        "default_closed_timer": s.configuration.default_closed_timer,
        "url": url,
        "links": {
            "service": format!("{base}/v1/Services/{}", s.default_service),
            "webhooks": format!("{url}/Webhooks"),
        },
    })
}

async fn fetch_configuration(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    Ok(Json(account.read(|s| render_configuration(&st.base_url, &account.sid, s))))
}

async fn update_configuration(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    OriginalUri(_uri): OriginalUri,
    Form(f): Form,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&st, &headers)?;
    let default_service = f.string("DefaultChatServiceSid").filter(|s| !s.is_empty());
    let messaging = f.string("DefaultMessagingServiceSid");
    let inactive = f.string("DefaultInactiveTimer");
    let closed = f.string("DefaultClosedTimer");
    let v = account.write_account(|s, _| {
        if let Some(d) = default_service {
            if s.services.seq_of_sid(&d).is_none() {
                return Err(DomainError::invalid(
                    "DefaultChatServiceSid",
                    format!("Conversations service {d} was not found"),
                ));
            }
            s.default_service = d;
        }
        if let Some(m) = messaging {
            // `^MG[0-9a-fA-F]{32}$` in Twilio's OpenAPI description of `POST /v1/Configuration`.
            crate::domain::conversation::check_sid_param(
                Some(&m),
                crate::sid::MESSAGING_SERVICE,
                "DefaultMessagingServiceSid",
                "a Messaging Service SID",
            )?;
            s.configuration.default_messaging_service_sid = Some(m);
        }
        if let Some(t) = inactive {
            s.configuration.default_inactive_timer = Some(t).filter(|t| !t.is_empty());
        }
        if let Some(t) = closed {
            s.configuration.default_closed_timer = Some(t).filter(|t| !t.is_empty());
        }
        Ok(render_configuration(&st.base_url, &account.sid, s))
    })?;
    Ok(Json(v))
}
