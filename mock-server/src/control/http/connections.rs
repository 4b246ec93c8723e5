//! Live sessions: listing them, and the actions sent to them.
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::Error;
use super::error::{Answer, JsonBody, QueryOf, Tenant, existing};
use crate::control::faults::InitDenial;
use crate::control::limits::MAX_DURATION_MS;
use crate::control::sessions::Target;
use crate::server::AppState;
use crate::twilsock::codec;
use crate::twilsock::session::{CloseCode, SessionCommand, reason_phrase};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectionsQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    identity: Option<String>,
}

pub(super) async fn all_connections(State(st): State<AppState>, QueryOf(q): QueryOf<ConnectionsQuery>) -> Answer {
    Ok(connections(&st, q.account.as_deref(), q.identity.as_deref()))
}

pub(super) async fn tenant_connections(State(st): State<AppState>, Tenant(sid): Tenant, QueryOf(q): QueryOf<ConnectionsQuery>) -> Answer {
    existing(&st, &sid)?;
    if q.account.as_deref().is_some_and(|a| a != sid) {
        return Err(Error::invalid("account in the query differs from the path's"));
    }
    Ok(connections(&st, Some(&sid), q.identity.as_deref()))
}

fn connections(st: &AppState, account: Option<&str>, identity: Option<&str>) -> Json<Value> {
    let mut list = st.control.connections(account);
    list.retain(|s| identity.is_none_or(|i| s.identity == i));
    Json(json!({ "connections": list }))
}

/// Which of a tenant's live sessions an action is for: one session, all of an identity's, or
/// (both absent) all of the tenant's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionTarget {
    #[serde(default)]
    pub session: Option<u64>,
    #[serde(default)]
    pub identity: Option<String>,
}

/// What to do to the target sessions (`"action"` tag, the other fields beside it).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionAction {
    /// Drop the socket without a close handshake, like a network failure.
    Drop,
    /// Send a twilsock `close` with `code` (308 reconnects, after `backoff_ms` if given; 401,
    /// 406, 410 and 417 are terminal), then end the session.
    Close {
        code: u16,
        #[serde(default)]
        backoff_ms: Option<u64>,
        /// Overrides the standard description of the code.
        #[serde(default)]
        description: Option<String>,
        /// Overrides the standard `errorCode` of the code.
        #[serde(default)]
        error_code: Option<u32>,
    },
    /// Send `client_update` / `token_about_to_expire` now.
    WarnTokenExpiry,
    /// Act as if the token expired now: `close` 410 (20104).
    ExpireToken,
    /// Queue a raw frame: `frame_base64` (bytes as given), or `header` (+ `payload`: a string
    /// sent as is, other JSON serialised) encoded as a twilsock packet.
    InjectFrame {
        #[serde(default)]
        frame_base64: Option<String>,
        #[serde(default)]
        header: Option<Map<String, Value>>,
        #[serde(default)]
        payload: Option<Value>,
    },
    /// Answer upstream requests `ms` later than their handlers complete (a slow backend; 0
    /// removes the latency and releases the replies waiting for it).
    Latency {
        ms: u64,
    },
    /// Keep Sync notifications and other backend pushes back, in order, while replies keep
    /// flowing, until `release_notifications`.
    HoldNotifications,
    ReleaseNotifications,
    /// Stop reading and writing without closing the socket (a silent connection), until
    /// `unstall`.
    Stall,
    Unstall,
}

impl SessionAction {
    /// The session command this action sends.
    pub fn command(self) -> Result<SessionCommand, Error> {
        use base64::Engine;
        let duration_ms = |field: &str, ms: u64| {
            if ms > MAX_DURATION_MS {
                Err(Error::bad_body(format!("{field} {ms} is more than {MAX_DURATION_MS} ms")))
            } else {
                Ok(ms)
            }
        };
        Ok(match self {
            SessionAction::Drop => SessionCommand::Drop,
            SessionAction::Close {
                code,
                backoff_ms,
                description,
                error_code,
            } => {
                let standard = match code {
                    308 => Some(CloseCode::Offload),
                    401 => Some(CloseCode::Unauthorized),
                    406 => Some(CloseCode::CannotParse),
                    410 => Some(CloseCode::TokenExpired),
                    417 => Some(CloseCode::CannotParseReply),
                    _ => None,
                };
                let (status, standard_description, standard_error_code) = match standard {
                    Some(c) => {
                        let (s, d, e) = c.status();
                        (s.to_owned(), d.to_owned(), e)
                    }
                    None if (300..=599).contains(&code) => (
                        reason_phrase(code).to_uppercase().replace(' ', "_"),
                        "closed by the control plane".to_owned(),
                        None,
                    ),
                    None => {
                        return Err(Error::invalid(format!(
                            "close code {code} is not a twilsock status (308, 401, 406, 410, 417, or another 3xx-5xx)"
                        )));
                    }
                };
                SessionCommand::Close {
                    code,
                    status,
                    description: description.unwrap_or(standard_description),
                    error_code: error_code.or(standard_error_code),
                    backoff_min_ms: backoff_ms.map(|ms| duration_ms("backoff_ms", ms)).transpose()?,
                }
            }
            SessionAction::WarnTokenExpiry => SessionCommand::WarnTokenExpiry,
            SessionAction::ExpireToken => SessionCommand::ExpireTokenNow,
            SessionAction::InjectFrame {
                frame_base64,
                header,
                payload,
            } => match (frame_base64, header) {
                (Some(b64), None) if payload.is_none() => SessionCommand::SendRaw(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| Error::invalid(format!("frame_base64: {e}")))?
                        .into(),
                ),
                (None, Some(header)) => {
                    let payload = match payload {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::String(s)) => s.into_bytes(),
                        Some(other) => other.to_string().into_bytes(),
                    };
                    SessionCommand::SendRaw(codec::encode(header, &payload))
                }
                _ => return Err(Error::invalid("inject_frame takes either frame_base64 or header (+ payload)")),
            },
            SessionAction::Latency { ms } => SessionCommand::SetLatency(Duration::from_millis(duration_ms("ms", ms)?)),
            SessionAction::HoldNotifications => SessionCommand::HoldNotifications,
            SessionAction::ReleaseNotifications => SessionCommand::ReleaseNotifications,
            SessionAction::Stall => SessionCommand::Stall,
            SessionAction::Unstall => SessionCommand::Unstall,
        })
    }
}

/// `{"target": {...}, "action": "...", ...}`: the target beside the flattened action (parsed by
/// hand because serde cannot flatten into an enum that denies unknown fields).
pub(super) fn split_field<T: DeserializeOwned>(mut body: Map<String, Value>, field: &str) -> Result<(Option<Value>, T), Error> {
    let taken = body.remove(field);
    let rest = serde_json::from_value(Value::Object(body)).map_err(|e| Error::bad_body(format!("invalid JSON body: {e}")))?;
    Ok((taken, rest))
}

pub(super) async fn connection_action(
    State(st): State<AppState>,
    Tenant(sid): Tenant,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Answer {
    existing(&st, &sid)?;
    let (target, action): (_, SessionAction) = split_field(body, "target")?;
    let target: SessionTarget = match target {
        None | Some(Value::Null) => SessionTarget::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| Error::bad_body(format!("invalid target: {e}")))?,
    };
    let cmd = action.command()?;
    let target = Target {
        account: sid,
        session: target.session,
        identity: target.identity,
    };
    let (reached, applied) = st.control.command_applied(&target, cmd).await;
    if let Some(id) = target.session.filter(|_| reached.is_empty()) {
        return Err(Error::new(
            StatusCode::NOT_FOUND,
            "no_session",
            format!("no live session {id} in tenant {}", target.account),
        ));
    }
    Ok(Json(json!({ "sessions": reached, "applied": applied })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Refuse {
    for_ms: u64,
}

pub(super) async fn refuse_connections(State(st): State<AppState>, Tenant(sid): Tenant, JsonBody(r): JsonBody<Refuse>) -> Answer {
    if r.for_ms > MAX_DURATION_MS {
        return Err(Error::bad_body(format!("for_ms {} is more than {MAX_DURATION_MS} ms", r.for_ms)));
    }
    st.control.refuse_connections(&sid, Duration::from_millis(r.for_ms))?;
    let until = st.control.faults.list().2.into_iter().find(|r| r.account == sid).map(|r| r.until);
    Ok(Json(json!({ "until": until })))
}

pub(super) async fn deny_inits(
    State(st): State<AppState>,
    Tenant(sid): Tenant,
    JsonBody(mut d): JsonBody<InitDenial>,
) -> Answer<(StatusCode, Json<Value>)> {
    existing(&st, &sid)?;
    if d.account.as_deref().is_some_and(|a| a != sid) {
        return Err(Error::invalid("account in the body differs from the path's"));
    }
    if d.count == 0 {
        return Err(Error::invalid("count must be at least 1"));
    }
    if !(100..=999).contains(&d.status) {
        return Err(Error::invalid(format!("status {} is not a twilsock status", d.status)));
    }
    if let Some(ms) = d.backoff_ms.filter(|ms| *ms > MAX_DURATION_MS) {
        return Err(Error::bad_body(format!("backoff_ms {ms} is more than {MAX_DURATION_MS} ms")));
    }
    d.account = Some(sid);
    let id = st.control.deny_inits(d);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}
