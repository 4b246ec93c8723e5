//! The realtime backend: what twilsock sessions are connected to. Routes upstream requests by
//! path — `/Client/v2/…` to the client API, `/v3/…` and `/v4/Subscriptions` to Sync —,
//! registers sessions with the Sync hub so pushes reach them and with the control plane so
//! commands reach them, and journals what the sessions observe.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::auth::identity::{self, Caller};
use crate::clock::Clock;
use crate::control::faults::HttpFault;
use crate::control::near_misses::{Miss, Reason};
use crate::domain::service::Presence;
use crate::domain::{Cause, Domain};
use crate::journal::{Kind, Observation};
use crate::sync::{SyncHub, query};
use crate::twilsock::{Backend, InitRejection, Principal, SessionObservation, UpstreamRequest, UpstreamResponse};

/// A twilsock session of this server: its caller is a verified token's account, identity and
/// service.
pub type SessionInfo = crate::twilsock::SessionInfo<Caller>;

/// What a session reads of its caller; the rest (the account, the service) is the client API's
/// and Sync's.
impl Principal for Caller {
    fn account(&self) -> &str {
        &self.account.sid
    }

    fn identity(&self) -> &str {
        Caller::identity(self)
    }

    fn expires_at(&self) -> i64 {
        self.claims.expires_at
    }

    fn clock(&self) -> &Clock {
        self.account.clock()
    }

    /// Same account, identity and service.
    fn same_principal(&self, new: &Caller) -> bool {
        self.account.sid == new.account.sid && Caller::identity(self) == Caller::identity(new) && self.service_sid == new.service_sid
    }
}

#[derive(Clone)]
pub struct Realtime {
    pub domain: Domain,
    pub hub: Arc<SyncHub>,
    /// Faults, the session registry and the journal (absent in bare embeddings).
    pub control: Option<crate::control::Control>,
    /// Who the refused tokens of sessions not (yet) established claimed to be.
    pub claims: Claims,
}

/// The account and identity a refused token claimed (unverified), by session id: before `init`
/// succeeds a session has no account, and without this the journal could not say which tenant
/// a refused attempt belonged to. An entry lives until its session ends.
#[derive(Clone, Default)]
pub struct Claims(Arc<Mutex<HashMap<u64, Claim>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub account: String,
    pub identity: Option<String>,
}

impl Claims {
    fn insert(&self, session: u64, claim: Claim) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(session, claim);
    }

    fn get(&self, session: u64) -> Option<Claim> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&session).cloned()
    }

    fn remove(&self, session: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&session);
    }
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
    /// Who `token` claims to be, if it names an account this server has.
    fn claim_of(&self, token: &str) -> Option<Claim> {
        let who = crate::auth::token::peek(token).ok()?;
        let account = self.domain.account(&who.account_sid)?;
        Some(Claim {
            account: account.sid.clone(),
            identity: crate::auth::token::peek_identity(token),
        })
    }

    async fn route(&self, session: &SessionInfo, req: &UpstreamRequest) -> UpstreamResponse {
        let segs = segments(if req.raw_path.is_empty() { &req.path } else { &req.raw_path });
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let caller = &session.caller;
        match segs.as_slice() {
            ["Client", "v2", rest @ ..] => {
                crate::client_api::handle(self.hub.base_url(), self.hub.typing_timeout_secs, caller, req, rest).await
            }
            ["v4", "Subscriptions"] if req.method == "POST" => {
                let body: Value = match serde_json::from_slice::<Value>(&req.body) {
                    Ok(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::Null),
                    Ok(v) => v,
                    Err(e) => return UpstreamResponse::error(400, 54011, format!("subscription request is not JSON: {e}")),
                };
                query::subscriptions(&self.hub, caller, session.id, &body)
            }
            ["v3", rest @ ..] if req.method == "GET" => query::get(&self.hub, caller, req, rest),
            _ => UpstreamResponse::no_route(&req.method, &req.path),
        }
    }
}

impl Backend for Realtime {
    type Caller = Caller;

    fn verify(&self, token: &str) -> Result<Caller, InitRejection> {
        let caller = identity::verify(&self.domain, token)?;
        if let Some(control) = &self.control {
            control.gate_init(&caller)?;
        }
        Ok(caller)
    }

    fn verify_for(&self, session: u64, token: &str) -> Result<Caller, InitRejection> {
        let verified = self.verify(token);
        if verified.is_err() && self.control.is_some() {
            if let Some(claim) = self.claim_of(token) {
                self.claims.insert(session, claim);
            }
        }
        verified
    }

    /// Armed HTTP faults apply here as they do to REST: the same rules, matched on the tunnelled
    /// request's method and path (`/Client/v2/…`, `/v3/…`, `/v4/Subscriptions`), so a test can
    /// make the SDK's own requests fail or stall. A failure answers with Twilio's error body
    /// without reaching the handler; a delay holds the request in real time (the network, not
    /// the server clock), then lets it through.
    async fn upstream(&self, session: &SessionInfo, req: UpstreamRequest) -> UpstreamResponse {
        let Some(control) = &self.control else {
            return self.route(session, &req).await;
        };
        let account = &session.caller.account.sid;
        match control.faults.take_http(Some(account), &req.method, &req.path) {
            Some((rule, HttpFault::Fail { status, code, message })) => {
                control.record(
                    Kind::Fault,
                    Some(account),
                    format!("upstream {} {} failed with {status}/{code}", req.method, req.path),
                    json!({ "rule": rule, "transport": "twilsock", "session": session.id, "identity": session.caller.identity(),
                            "method": req.method, "path": req.path, "status": status, "code": code }),
                );
                UpstreamResponse::error(
                    status,
                    code,
                    message.unwrap_or_else(|| crate::control::middleware::DEFAULT_FAULT_MESSAGE.to_owned()),
                )
            }
            Some((rule, HttpFault::Delay { by })) => {
                let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
                control.record(
                    Kind::Fault,
                    Some(account),
                    format!("upstream {} {} delayed by {ms} ms", req.method, req.path),
                    json!({ "rule": rule, "transport": "twilsock", "session": session.id, "identity": session.caller.identity(),
                            "method": req.method, "path": req.path, "delay_ms": ms }),
                );
                tokio::time::sleep(by).await;
                self.route(session, &req).await
            }
            None => {
                let res = self.route(session, &req).await;
                if res.no_route {
                    control.near_misses.record(Miss {
                        transport: "twilsock",
                        account: Some(account),
                        method: &req.method,
                        path: &req.path,
                        reason: Reason::NoRoute,
                        status: res.status,
                        at: session.caller.account.clock().now(),
                        seq: control.journal_mark() + 1,
                    });
                }
                res
            }
        }
    }

    fn session_opened(&self, session: &SessionInfo) {
        let caller = &session.caller;
        // Reachability: a user with a live session is online (and exists).
        let online = Presence {
            identity: caller.identity().to_owned(),
            online: true,
        };
        if let Err(e) = caller
            .account
            .apply(&Cause::sdk(caller.identity()), Some(&caller.service_sid), online)
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
                    let offline = Presence {
                        identity: closed.identity.clone(),
                        online: false,
                    };
                    let _ = account.apply(&Cause::system(), Some(&closed.service), offline);
                }
            }
        }
        if let Some(c) = &self.control {
            c.sessions.closed(session_id);
        }
    }

    /// Journals the observation: under the session's account, identity and account time once
    /// established; before, under what a refused token claimed (if it named a known account),
    /// else under server time and no account.
    fn observe(&self, session: u64, info: Option<&SessionInfo>, what: SessionObservation<'_>) {
        let ended = matches!(what, SessionObservation::Ended { .. });
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
            None => match self.claims.get(session) {
                Some(claim) => (
                    self.domain
                        .account(&claim.account)
                        .map_or_else(|| self.domain.clock().now(), |a| a.clock().now()),
                    Some(claim.account),
                    claim.identity,
                ),
                None => (self.domain.clock().now(), None, None),
            },
        };
        if ended {
            self.claims.remove(session);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{MintRequest, mint};
    use crate::clock::Clock;
    use crate::domain::seed::Seed;
    use crate::journal::Filter;
    use crate::twilsock::EndReason;

    #[test]
    fn refused_inits_are_journaled_under_the_account_and_identity_they_claimed() {
        let domain = Domain::new(Clock::system(), crate::domain::Limits::default());
        let account = Seed::default_seed().apply(&domain).expect("the default seed").remove(0);
        let hub = SyncHub::new("http://127.0.0.1:9".into());
        let control = crate::control::Control::new(domain.clone(), hub.clone());
        let rt = Realtime {
            domain: domain.clone(),
            hub,
            control: Some(control.clone()),
            claims: Claims::default(),
        };
        let acc = domain.account(&account).expect("the account");
        let badly_signed = mint(&MintRequest {
            account_sid: acc.sid.clone(),
            api_key_sid: acc.api_keys[0].sid.clone(),
            api_key_secret: "not the secret".into(),
            identity: "alice".into(),
            service_sid: None,
            ttl_secs: 600,
            now_unix: acc.clock().now().unix_secs(),
            nbf_unix: None,
        });
        let rejection = rt.verify_for(7, &badly_signed).expect_err("a bad signature is refused");
        assert_eq!(rejection.error_code, Some(20107));
        assert!(rt.verify_for(8, "garbage").is_err());

        rt.observe(
            7,
            None,
            SessionObservation::InitRefused {
                status: 401,
                error_code: Some(20107),
            },
        );
        rt.observe(
            8,
            None,
            SessionObservation::InitRefused {
                status: 401,
                error_code: Some(20101),
            },
        );
        rt.observe(
            7,
            None,
            SessionObservation::Ended {
                reason: EndReason::ClientClosed,
            },
        );
        rt.observe(7, None, SessionObservation::Accepted);

        let of = |session| {
            control
                .journal
                .query(&Filter {
                    session: Some(session),
                    ..Filter::default()
                })
                .entries
        };
        let seven: Vec<_> = of(7).into_iter().map(|e| (e.account, e.identity)).collect();
        let claimed = (Some(account.clone()), Some("alice".to_owned()));
        assert_eq!(
            seven,
            vec![claimed.clone(), claimed, (None, None)],
            "attributed until the session ended"
        );
        let eight: Vec<_> = of(8).into_iter().map(|e| e.account).collect();
        assert_eq!(eight, vec![None], "an unreadable token names no account");
    }
}
