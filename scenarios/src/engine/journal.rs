//! Follows the server's journal for one tenant and turns its entries into the observations
//! scenarios name (`ObservationKind`), on the play's log and timeline.
//!
//! Attribution: an entry names the tenant's account once its session is established, or once a
//! refused `init` named the account its token claimed. Entries of a session before that (the
//! socket accepted, the `init` packet) carry only the session id: they are kept aside and
//! attributed when a later entry of the same session names this tenant, or dropped when it
//! names another.
//!
//! Following is lossless while the journal's ring holds what a slow follower missed: on a lag
//! the missed entries are read back from the ring by sequence number.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rehearsal_mock_server::control::Control;
use rehearsal_mock_server::journal::{Entry, Filter, Kind};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::log::{Log, ObsRec};
use crate::format::ObservationKind;

/// Unattributed entries kept per session, and sessions kept waiting for attribution.
const PENDING_PER_SESSION: usize = 64;
const PENDING_SESSIONS: usize = 4096;

/// Follows the journal for `account` until aborted. Subscribes before returning, so nothing
/// recorded after this call is missed.
pub(crate) fn follow(control: &Control, account: &str, log: Arc<Log>) -> JoinHandle<()> {
    let journal = control.journal().clone();
    let mut live = journal.follow();
    let last_seq = journal
        .query(&Filter {
            after: Some(u64::MAX),
            ..Filter::default()
        })
        .last_seq;
    let mut state = Attribution::new(account.to_owned(), log);
    tokio::spawn(async move {
        let mut last = last_seq;
        loop {
            match live.recv().await {
                Ok(entry) => {
                    if entry.seq > last {
                        last = entry.seq;
                        state.entry(entry);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let missed = journal.query(&Filter {
                        after: Some(last),
                        ..Filter::default()
                    });
                    for entry in missed.entries {
                        last = last.max(entry.seq);
                        state.entry(entry);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

struct Attribution {
    account: String,
    log: Arc<Log>,
    /// Sessions of this tenant, with the identity they belong to.
    ours: HashMap<u64, Option<String>>,
    /// Sessions of other tenants.
    theirs: HashSet<u64>,
    /// Entries of sessions not attributed yet, in order.
    pending: HashMap<u64, Vec<Entry>>,
    /// Sessions whose `init` succeeded.
    opened: HashSet<u64>,
    /// The code of the last `close` packet sent to a session.
    close_codes: HashMap<u64, u64>,
}

impl Attribution {
    fn new(account: String, log: Arc<Log>) -> Attribution {
        Attribution {
            account,
            log,
            ours: HashMap::new(),
            theirs: HashSet::new(),
            pending: HashMap::new(),
            opened: HashSet::new(),
            close_codes: HashMap::new(),
        }
    }

    fn entry(&mut self, e: Entry) {
        let mine = e.account.as_deref() == Some(self.account.as_str());
        match (e.account.is_some(), e.session) {
            (true, Some(s)) if mine => {
                let identity = e.identity.clone();
                self.ours.entry(s).or_insert_with(|| identity.clone());
                if let Some(earlier) = self.pending.remove(&s) {
                    for p in earlier {
                        self.handle(p);
                    }
                }
                self.handle(e);
            }
            (true, Some(s)) => {
                self.theirs.insert(s);
                self.pending.remove(&s);
            }
            (true, None) if mine => self.handle(e),
            (false, Some(s)) if self.ours.contains_key(&s) => self.handle(e),
            (false, Some(s)) if !self.theirs.contains(&s) => {
                if self.pending.len() >= PENDING_SESSIONS && !self.pending.contains_key(&s) {
                    // Sessions that never said whose they are: forget the oldest few.
                    let oldest: Vec<u64> = {
                        let mut ids: Vec<u64> = self.pending.keys().copied().collect();
                        ids.sort_unstable();
                        ids.into_iter().take(PENDING_SESSIONS / 4).collect()
                    };
                    for id in oldest {
                        self.pending.remove(&id);
                    }
                }
                let list = self.pending.entry(s).or_default();
                if list.len() < PENDING_PER_SESSION {
                    list.push(e);
                }
            }
            _ => {}
        }
    }

    /// Records one entry of this tenant: on the timeline, and as observations.
    fn handle(&mut self, e: Entry) {
        let at = self.log.of_unix_us(e.wall_us);
        let identity = e
            .identity
            .clone()
            .or_else(|| e.session.and_then(|s| self.ours.get(&s).cloned().flatten()));
        let actor = identity.clone().unwrap_or_else(|| "server".to_owned());
        self.log.timeline(
            at,
            "server",
            &actor,
            e.summary.clone(),
            json!({ "seq": e.seq, "kind": e.kind, "session": e.session, "tenant_time": e.at.0, "detail": e.detail }),
        );
        for (kind, detail) in self.observations(&e, identity.as_deref()) {
            self.log.push_observation(ObsRec {
                at,
                seq: e.seq,
                kind,
                session: e.session,
                identity: identity.clone(),
                detail,
                summary: e.summary.clone(),
            });
        }
    }

    /// The observations one entry stands for (most stand for none or one).
    fn observations(&mut self, e: &Entry, identity: Option<&str>) -> Vec<(ObservationKind, Value)> {
        let d = &e.detail;
        let field = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
        let session = e.session;
        match e.kind {
            Kind::Connection => {
                let summary = e.summary.as_str();
                if summary == "socket accepted" {
                    vec![(
                        ObservationKind::ConnectionAttempt,
                        json!({ "identity": identity, "refused": false }),
                    )]
                } else if summary == "init ok" {
                    if let Some(s) = session {
                        self.opened.insert(s);
                        self.log
                            .update_observations(s, ObservationKind::ConnectionAttempt, |d| d["refused"] = false.into());
                    }
                    vec![
                        (ObservationKind::SessionOpened, json!({ "identity": identity })),
                        (
                            ObservationKind::Init,
                            json!({ "identity": identity, "outcome": "ok", "status": 200 }),
                        ),
                    ]
                } else if summary.starts_with("init refused") {
                    if let Some(s) = session {
                        self.log
                            .update_observations(s, ObservationKind::ConnectionAttempt, |d| d["refused"] = true.into());
                    }
                    let detail =
                        json!({ "identity": identity, "outcome": "denied", "status": field("status"), "error_code": field("error_code") });
                    vec![(ObservationKind::Init, detail)]
                } else if summary == "token updated" {
                    vec![(
                        ObservationKind::TokenUpdate,
                        json!({ "identity": identity, "outcome": "ok", "status": 200 }),
                    )]
                } else if summary.starts_with("update refused") {
                    let detail =
                        json!({ "identity": identity, "outcome": "denied", "status": field("status"), "error_code": field("error_code") });
                    vec![(ObservationKind::TokenUpdate, detail)]
                } else if summary.starts_with("session ended") {
                    match session {
                        Some(s) if self.opened.contains(&s) => {
                            let code = self.close_codes.get(&s).copied();
                            vec![(
                                ObservationKind::SessionClosed,
                                json!({ "identity": identity, "reason": field("reason"), "code": code }),
                            )]
                        }
                        _ => Vec::new(),
                    }
                } else {
                    Vec::new()
                }
            }
            Kind::PacketOut => {
                if let (Some(s), Some("close")) = (session, d.get("method").and_then(Value::as_str)) {
                    if let Some(code) = d.get("code").and_then(Value::as_u64) {
                        self.close_codes.insert(s, code);
                    }
                }
                Vec::new()
            }
            Kind::Upstream | Kind::Rest => {
                let kind = if e.kind == Kind::Upstream {
                    ObservationKind::Upstream
                } else {
                    ObservationKind::Rest
                };
                let raw = d.get("path").and_then(Value::as_str).unwrap_or_default();
                let (path, query) = match raw.split_once('?') {
                    Some((p, q)) => (p, Some(q.to_owned())),
                    None => (raw, d.get("query").and_then(Value::as_str).map(str::to_owned)),
                };
                vec![(
                    kind,
                    json!({ "method": field("method"), "path": path, "query": query, "status": field("status"), "duration_ms": field("duration_ms") }),
                )]
            }
            Kind::Media => media(d).into_iter().collect(),
            Kind::SyncPush => vec![(
                ObservationKind::SyncPush,
                json!({ "object": field("object"), "event_type": field("event_type") }),
            )],
            Kind::Fault => fault(&e.summary, d).into_iter().collect(),
            Kind::Webhook => vec![(
                ObservationKind::Webhook,
                json!({
                    "phase": field("phase"), "event": field("event"), "outcome": field("outcome"),
                    "status": d.pointer("/response/status").cloned().unwrap_or(Value::Null),
                    "conversation": field("conversation"),
                    "params": d.pointer("/request/params").cloned().unwrap_or(Value::Null),
                    "retry_count": field("retry_count"),
                }),
            )],
            _ => Vec::new(),
        }
    }
}

/// A media request as an upload (`POST …/Media`) or a download (`GET …/Media/{sid}/Content`).
fn media(d: &Value) -> Option<(ObservationKind, Value)> {
    let method = d.get("method").and_then(Value::as_str)?;
    let path = d.get("path").and_then(Value::as_str)?;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let status = d.get("status").cloned().unwrap_or(Value::Null);
    let side = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
    match (method, segs.as_slice()) {
        ("POST", ["v1", "Services", _, "Media"]) => {
            let req = side("request");
            Some((
                ObservationKind::MediaUpload,
                json!({ "size": req["size"], "content_type": req["content_type"], "status": status }),
            ))
        }
        ("GET", ["v1", "Services", _, "Media", sid, "Content"]) => {
            let res = side("response");
            Some((
                ObservationKind::MediaDownload,
                json!({ "size": res["size"], "content_type": res["content_type"], "status": status, "media": sid }),
            ))
        }
        _ => None,
    }
}

/// A fault that took effect: a session command applied, an HTTP fault, an init denied or
/// refused. The control plane's own note of a session command (with the sessions it reached)
/// is the action, not its effect, and is left out.
fn fault(summary: &str, d: &Value) -> Option<(ObservationKind, Value)> {
    if d.get("sessions").is_some() {
        return None;
    }
    let name = if let Some(c) = d.get("command").and_then(Value::as_str) {
        c.to_owned()
    } else if d.get("delay_ms").is_some() {
        "delay".to_owned()
    } else if summary.starts_with("init refused") {
        "refuse_connections".to_owned()
    } else if summary.starts_with("init denied") {
        "deny_init".to_owned()
    } else if d.get("status").is_some() {
        "fail".to_owned()
    } else {
        "other".to_owned()
    };
    let mut detail = d.as_object().cloned().unwrap_or_default();
    detail.insert("fault".into(), name.into());
    Some((ObservationKind::FaultApplied, Value::Object(detail)))
}
