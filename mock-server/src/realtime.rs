//! The realtime backend: what twilsock sessions are connected to. Routes upstream requests by
//! path — `/Client/v2/…` to the client API, `/v3/…` and `/v4/Subscriptions` to Sync — and
//! registers sessions with the Sync hub so pushes reach them.
use std::sync::Arc;

use serde_json::Value;

use crate::auth::identity::{self, Caller};
use crate::domain::{Domain, Origin};
use crate::sync::{SyncHub, query};
use crate::twilsock::{Backend, InitRejection, SessionInfo, UpstreamRequest, UpstreamResponse};

#[derive(Clone)]
pub struct Realtime {
    pub domain: Domain,
    pub hub: Arc<SyncHub>,
    /// Faults, the session registry and the journal (absent in bare embeddings).
    pub control: Option<crate::control::Control>,
}

/// Percent-decoded path segments, split on the raw path so an encoded `/` inside an identity
/// stays inside its segment.
pub fn segments(raw_path: &str) -> Vec<String> {
    let path = raw_path.split('?').next().unwrap_or("");
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

impl Realtime {
    fn route(&self, session: &SessionInfo, req: &UpstreamRequest) -> UpstreamResponse {
        let segs = segments(if req.raw_path.is_empty() { &req.path } else { &req.raw_path });
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let caller = &session.caller;
        match segs.as_slice() {
            ["Client", "v2", rest @ ..] => crate::client_api::handle(self.hub.base_url(), self.hub.typing_timeout_secs, caller, req, rest),
            ["v4", "Subscriptions"] if req.method == "POST" => {
                let body: Value = match serde_json::from_slice::<Value>(&req.body) {
                    Ok(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::Null),
                    Ok(v) => v,
                    Err(e) => return UpstreamResponse::error(400, 54011, format!("subscription request is not JSON: {e}")),
                };
                query::subscriptions(&self.hub, caller, session.id, &body)
            }
            ["v3", rest @ ..] if req.method == "GET" => query::get(&self.hub, caller, req, rest),
            _ => UpstreamResponse::error(404, 20404, format!("No route for {} {}", req.method, req.path)),
        }
    }
}

impl Backend for Realtime {
    fn verify(&self, token: &str) -> Result<Caller, InitRejection> {
        let caller = identity::verify(&self.domain, token)?;
        if let Some(control) = &self.control {
            control.gate_init(&caller)?;
        }
        Ok(caller)
    }

    async fn upstream(&self, session: &SessionInfo, req: UpstreamRequest) -> UpstreamResponse {
        self.route(session, &req)
    }

    fn session_opened(&self, session: &SessionInfo) {
        let caller = &session.caller;
        let origin = Origin::Sdk {
            identity: caller.identity().to_owned(),
        };
        if let Err(e) = caller
            .account
            .write(&origin, Some(&caller.service_sid), |svc, cx| svc.ensure_user(cx, caller.identity()))
        {
            tracing::warn!(identity = caller.identity(), error = %e, "could not create the user of a new session");
        }
        self.hub.session_opened(
            &caller.account.sid,
            session.id,
            &caller.service_sid,
            caller.identity(),
            session.outbox.clone(),
        );
    }

    fn session_updated(&self, session: &SessionInfo) {
        if let Some(c) = &self.control {
            c.sessions.updated(session);
        }
    }

    fn session_closed(&self, session_id: u64) {
        self.hub.session_closed(session_id);
        if let Some(c) = &self.control {
            c.sessions.closed(session_id);
        }
    }
}
