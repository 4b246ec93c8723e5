//! The app's backend in webhook scenarios: a loopback HTTP endpoint that answers the server's
//! pre- and post-action hooks as the scenario's `[webhooks]` says, and the tenant service's
//! webhook configuration pointing at it.
//!
//! What the backend received and answered is not recorded here: the server journals every
//! delivery (request fields, signature, answer, outcome), and scenarios judge that
//! (`observed = "webhook"`), so a report shows the exchange from the server's side, as Twilio's
//! console would.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rehearsal_mock_server::control::Control;
use rehearsal_mock_server::domain::webhook::HookConfigUpdate;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::format::{HookAnswer, Webhooks};

/// A running backend; stopped when dropped.
pub(crate) struct Backend {
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the backend on a loopback port.
pub(crate) async fn start(spec: &Webhooks) -> std::io::Result<Backend> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let rules: Arc<Vec<HookAnswer>> = Arc::new(spec.answer.clone());
    let app = Router::new().fallback(hook).with_state(rules);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Backend {
        url: format!("http://{addr}/hooks"),
        task,
    })
}

/// Points the tenant's default service at the backend (pre- and post-action URL, method,
/// filters), as `POST /v1/Services/{sid}/Configuration/Webhooks` would.
pub(crate) fn configure(
    control: &Control,
    account: &str,
    spec: &Webhooks,
    url: &str,
) -> Result<(), rehearsal_mock_server::control::ControlError> {
    let update = HookConfigUpdate {
        pre_webhook_url: Some(url.to_owned()),
        post_webhook_url: Some(url.to_owned()),
        method: spec.method.clone(),
        filters: Some(spec.filters.clone()),
        target: None,
    };
    control.configure_webhooks(account, update).map(|_| ())
}

/// One hook request: the first rule for its `EventType` whose `match` holds decides the answer.
async fn hook(State(rules): State<Arc<Vec<HookAnswer>>>, method: Method, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let fields: Vec<(String, String)> = if method == Method::GET {
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    };
    let get = |k: &str| fields.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
    let event = get("EventType").unwrap_or("");
    let rule = rules.iter().find(|r| {
        r.event == event
            && r.matches.as_ref().is_none_or(|m| {
                m.iter().all(|(k, want)| {
                    let want = match want {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    get(k) == Some(want.as_str())
                })
            })
    });
    let Some(rule) = rule else {
        return StatusCode::OK.into_response();
    };
    if let Some(delay) = rule.delay {
        tokio::time::sleep(delay).await;
    }
    let status = rule.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    match &rule.body {
        Some(body) => (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response(),
        None => status.into_response(),
    }
}
