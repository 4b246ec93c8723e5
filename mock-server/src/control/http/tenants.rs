//! Tenants and their state, clocks, and actors.
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::Error;
use super::connections::split_field;
use super::error::{Answer, JsonBody, Tenant};
use crate::control::actors::Action;
use crate::control::{ClockAction, ClockView, ControlError, NewTenant};
use crate::server::AppState;

pub(super) async fn list_tenants(State(st): State<AppState>) -> Json<Value> {
    Json(json!({ "tenants": st.control.tenants() }))
}

/// Runs a heavy control operation (seeding, generating history, importing or exporting a
/// snapshot: up to seconds of CPU) on the blocking pool, so the async workers keep serving
/// every other connection meanwhile. A panic in it resumes here, where the panic layer answers.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking control operation cancelled: {e}"),
    }
}

pub(super) async fn create_tenant(State(st): State<AppState>, JsonBody(req): JsonBody<NewTenant>) -> Answer<(StatusCode, Json<Value>)> {
    let t = blocking(move || st.control.create_tenant(req)).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

pub(super) async fn get_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    Ok(Json(json!(st.control.tenant(&sid)?)))
}

pub(super) async fn reset_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    let reset = {
        let (st, sid) = (st.clone(), sid.clone());
        blocking(move || st.control.reset_tenant(&sid)).await
    };
    match reset {
        Ok(t) => Ok(Json(json!(t))),
        // Imported (or bare) accounts have no seed to go back to.
        Err(ControlError::NoTenant(_)) if st.domain.account(&sid).is_some() => Err(Error::new(
            StatusCode::CONFLICT,
            "no_seed",
            format!("tenant {sid} was not created from a seed, so there is nothing to reset it to"),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer<StatusCode> {
    st.control.delete_tenant(&sid)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn export_tenant(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    Ok(Json(blocking(move || st.control.export(&sid)).await?))
}

pub(super) async fn import_tenant(State(st): State<AppState>, Tenant(sid): Tenant, body: Bytes) -> Answer {
    std::str::from_utf8(&body).map_err(|e| Error::bad_body(format!("the snapshot is not UTF-8: {e}")))?;
    let imported = sid.clone();
    blocking(move || st.control.import_tenant(&sid, std::str::from_utf8(&body).unwrap_or_default())).await?;
    Ok(Json(json!({ "imported": [imported] })))
}

pub(super) async fn export_all(State(st): State<AppState>) -> Answer {
    Ok(Json(blocking(move || st.control.export_all()).await?))
}

pub(super) async fn import_all(State(st): State<AppState>, body: Bytes) -> Answer {
    std::str::from_utf8(&body).map_err(|e| Error::bad_body(format!("the snapshot is not UTF-8: {e}")))?;
    let imported = blocking(move || st.control.import(std::str::from_utf8(&body).unwrap_or_default())).await?;
    Ok(Json(json!({ "imported": imported })))
}

pub(super) async fn server_clock(State(st): State<AppState>) -> Answer {
    Ok(Json(json!(ClockView::of(&st.control.clock(None)?))))
}

pub(super) async fn move_server_clock(State(st): State<AppState>, JsonBody(action): JsonBody<ClockAction>) -> Answer {
    Ok(Json(json!(st.control.clock_action(None, action)?)))
}

pub(super) async fn tenant_clock(State(st): State<AppState>, Tenant(sid): Tenant) -> Answer {
    Ok(Json(json!(ClockView::of(&st.control.clock(Some(&sid))?))))
}

pub(super) async fn move_tenant_clock(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(action): JsonBody<ClockAction>) -> Answer {
    Ok(Json(json!(st.control.clock_action(Some(&sid), action)?)))
}

pub(super) async fn act(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(body): JsonBody<Map<String, Value>>) -> Answer {
    let (who, action): (_, Action) = split_field(body, "as")?;
    let who = match who {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(other) => return Err(Error::bad_body(format!("\"as\" must be an identity or null, not {other}"))),
    };
    // On the blocking pool (generating messages is heavy), driving the action's awaits there
    // (pre-action webhooks).
    let runtime = tokio::runtime::Handle::current();
    Ok(Json(
        blocking(move || runtime.block_on(st.control.act(&sid, who.as_deref(), action))).await?,
    ))
}
