//! The realtime backend: what twilsock sessions are connected to. Routes upstream requests by
//! path — `/Client/v2/…` to the client API, `/v3/…` and `/v4/Subscriptions` to Sync —,
//! registers sessions with the Sync hub so pushes reach them and with the control plane so
//! commands reach them, and journals what the sessions observe.
use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::identity::{self, Caller};
use crate::control::journal::{Kind, Observation};
use crate::domain::user::UserUpdate;
use crate::domain::{Domain, Origin};
use crate::sync::{SyncHub, query};
use crate::twilsock::{Backend, InitRejection, SessionInfo, SessionObservation, UpstreamRequest, UpstreamResponse};

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
        if let Err(e) = caller.account.write(&origin, Some(&caller.service_sid), |svc, cx| {
            svc.ensure_user(cx, caller.identity())?;
            // Reachability: a user with a live session is online.
            if svc.reachability_enabled && svc.user(caller.identity())?.is_online != Some(true) {
                svc.update_user(
                    cx,
                    caller.identity(),
                    UserUpdate {
                        is_online: Some(true),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        }) {
            tracing::warn!(identity = caller.identity(), error = %e, "could not create the user of a new session");
        }
        self.hub.session_opened(
            &caller.account.sid,
            session.id,
            &caller.service_sid,
            caller.identity(),
            session.outbox.clone(),
        );
        if let Some(c) = &self.control {
            c.sessions.opened(session, caller.account.clock().now());
        }
    }

    fn session_updated(&self, session: &SessionInfo) {
        if let Some(c) = &self.control {
            c.sessions.updated(session);
        }
    }

    fn session_closed(&self, session_id: u64) {
        if let Some(closed) = self.hub.session_closed(session_id) {
            if !closed.others {
                if let Some(account) = self.domain.account(&closed.account) {
                    let _ = account.write(&Origin::System, Some(&closed.service), |svc, cx| {
                        if svc.reachability_enabled && svc.users.get(&closed.identity).is_some() {
                            svc.update_user(
                                cx,
                                &closed.identity,
                                UserUpdate {
                                    is_online: Some(false),
                                    ..Default::default()
                                },
                            )?;
                        }
                        Ok(())
                    });
                }
            }
        }
        if let Some(c) = &self.control {
            c.sessions.closed(session_id);
        }
    }

    /// Journals the observation: under the session's account, identity and account time once
    /// established, under server time before.
    fn observe(&self, session: u64, info: Option<&SessionInfo>, what: SessionObservation<'_>) {
        let Some(control) = &self.control else {
            return;
        };
        let (kind, summary, detail) = describe(what);
        let (at, account, identity) = match info {
            Some(i) => (
                i.caller.account.clock().now(),
                Some(i.caller.account.sid.clone()),
                Some(i.caller.identity().to_owned()),
            ),
            None => (self.domain.clock().now(), None, None),
        };
        control.journal.record(Observation {
            at,
            kind,
            account,
            session: Some(session),
            identity,
            summary,
            detail,
        });
    }
}

/// The journal's kind, summary line and details of one session observation.
fn describe(what: SessionObservation<'_>) -> (Kind, String, Value) {
    fn refusal(what: &str, status: u16, error_code: Option<u32>) -> (Kind, String, Value) {
        let summary = match error_code {
            Some(code) => format!("{what} refused: {status} ({code})"),
            None => format!("{what} refused: {status}"),
        };
        (Kind::Connection, summary, json!({ "status": status, "error_code": error_code }))
    }
    match what {
        SessionObservation::Accepted => (Kind::Connection, "socket accepted".into(), json!({})),
        SessionObservation::InitOk => (Kind::Connection, "init ok".into(), json!({})),
        SessionObservation::InitRefused { status, error_code } => refusal("init", status, error_code),
        SessionObservation::UpdateOk => (Kind::Connection, "token updated".into(), json!({})),
        SessionObservation::UpdateRefused { status, error_code } => refusal("update", status, error_code),
        SessionObservation::PacketIn { method, id, request } => match request {
            Some(r) => (
                Kind::PacketIn,
                format!("{method} {} {}", r.method, r.path),
                json!({ "method": method, "id": id, "http_method": r.method, "path": r.path }),
            ),
            None => (Kind::PacketIn, method.to_owned(), json!({ "method": method, "id": id })),
        },
        SessionObservation::UpstreamReply {
            id,
            request,
            status,
            duration_ms,
        } => (
            Kind::Upstream,
            format!("{} {} -> {status} ({duration_ms} ms)", request.method, request.path),
            json!({ "id": id, "method": request.method, "path": request.path, "status": status, "duration_ms": duration_ms }),
        ),
        SessionObservation::TokenWarningSent => (
            Kind::PacketOut,
            "client_update token_about_to_expire".into(),
            json!({ "method": "client_update", "client_update_type": "token_about_to_expire" }),
        ),
        SessionObservation::CloseSent { code } => (Kind::PacketOut, format!("close {code}"), json!({ "method": "close", "code": code })),
        SessionObservation::CommandApplied { name } => (Kind::Fault, format!("{name} applied"), json!({ "command": name })),
        SessionObservation::Ended { reason } => (
            Kind::Connection,
            format!("session ended: {}", reason.as_str()),
            json!({ "reason": reason.as_str() }),
        ),
    }
}
