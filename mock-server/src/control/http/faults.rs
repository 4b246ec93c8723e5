//! Faults: HTTP rules armed by route, listed and removed.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Error;
use super::error::{Answer, JsonBody, Tenant, existing};
use crate::control::faults::HttpRule;
use crate::server::AppState;

fn faults_view(st: &AppState, account: Option<&str>) -> Json<Value> {
    let (mut http, mut inits, mut refusals) = st.control.faults.list();
    if let Some(a) = account {
        http.retain(|r| r.account.as_deref() == Some(a));
        inits.retain(|d| d.account.as_deref() == Some(a));
        refusals.retain(|r| r.account == a);
    }
    Json(json!({ "http": http, "inits": inits, "refusals": refusals }))
}

pub(super) async fn list_faults(State(st): State<AppState>) -> Json<Value> {
    faults_view(&st, None)
}

pub(super) async fn list_tenant_faults(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    existing(&st, &sid)?;
    Ok(faults_view(&st, Some(&sid)))
}

pub(super) async fn clear_faults(State(st): State<AppState>) -> StatusCode {
    st.control.faults.clear(None);
    StatusCode::NO_CONTENT
}

pub(super) async fn clear_tenant_faults(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer<StatusCode> {
    existing(&st, &sid)?;
    st.control.faults.clear(Some(&sid));
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn remove_fault(State(st): State<AppState>, Path(id): Path<String>) -> Answer<StatusCode> {
    let id: u64 = id.parse().map_err(|_| Error::invalid(format!("{id:?} is not a fault id")))?;
    if st.control.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::new(StatusCode::NOT_FOUND, "no_fault", format!("no armed fault {id}")))
    }
}

pub(super) async fn add_http_fault(State(st): State<AppState>, JsonBody(rule): JsonBody<HttpRule>) -> Answer<(StatusCode, Json<Value>)> {
    if let Some(a) = &rule.account {
        existing(&st, a)?;
    }
    arm(&st, rule)
}

pub(super) async fn add_tenant_http_fault(
    State(st): State<AppState>,
    Tenant(sid): Tenant,
    JsonBody(mut rule): JsonBody<HttpRule>,
) -> Answer<(StatusCode, Json<Value>)> {
    existing(&st, &sid)?;
    if rule.account.as_deref().is_some_and(|a| a != sid) {
        return Err(Error::invalid("account in the body differs from the path's"));
    }
    rule.account = Some(sid);
    arm(&st, rule)
}

fn arm(st: &AppState, rule: HttpRule) -> Answer<(StatusCode, Json<Value>)> {
    let id = st.control.arm_http(rule)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}
