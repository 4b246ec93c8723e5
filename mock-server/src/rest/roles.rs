//! `/v1/Roles` (and the service-scoped tree): Twilio's default roles, readable.
use axum::Json;
use axum::extract::OriginalUri;
use serde_json::{Value, json};

use super::error::ApiError;
use super::form::{PathParams, Query};
use super::paging::{PageRequest, envelope};
use super::scope::{Scope, on_path};
use super::{Routes, param};
use crate::domain::DomainError;
use crate::domain::role::Role;

pub(super) fn routes(r: Routes) -> Routes {
    r.both("/Roles", axum::routing::get(list))
        .both("/Roles/{Sid}", axum::routing::get(fetch))
}

fn render(scope: &Scope, r: &Role) -> Value {
    json!({
        "sid": r.sid,
        "account_sid": scope.account.sid,
        "chat_service_sid": scope.service_sid,
        "friendly_name": r.friendly_name,
        "type": r.kind,
        "permissions": r.permissions,
        "date_created": r.date_created.rfc3339(),
        "date_updated": r.date_updated.rfc3339(),
        "url": scope.url(&format!("/Roles/{}", r.sid)),
    })
}

async fn list(scope: Scope, Query(q): Query) -> Result<Json<Value>, ApiError> {
    let limits = scope.account.limits().clone();
    let req = PageRequest::parse(&q, limits.small_page_size_max, limits.default_page_size)?;
    let body = scope.account.read(|s| -> Result<Value, DomainError> {
        let svc = s.service(scope.service.as_deref())?;
        let slice = req.select_from(&svc.roles);
        let items = slice.items.iter().map(|(_, r)| render(&scope, r)).collect();
        Ok(envelope("roles", &scope.url("/Roles"), &[], &req, &slice, items))
    })?;
    Ok(Json(body))
}

async fn fetch(scope: Scope, PathParams(p): PathParams, OriginalUri(uri): OriginalUri) -> Result<Json<Value>, ApiError> {
    let sid = param(&p, "Sid");
    let r = scope
        .account
        .read(|s| s.service(scope.service.as_deref())?.role(sid).cloned())
        .map_err(on_path(uri.path()))?;
    Ok(Json(render(&scope, &r)))
}
